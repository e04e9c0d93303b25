/*
 * tests/stats_kit.c - what the stats suite's files share: the captured
 * documents of tests/data/stats ($KSAFE_STATS_DATA), and a strict checker
 * of the Prometheus text exposition format 0.0.4.
 */
#include "stats_kit.h"

char *stats_read_data(const char *name, size_t *len)
{
    const char *dir = getenv("KSAFE_STATS_DATA");
    char path[1024];
    char *buf;
    long n;
    FILE *f;

    ck_assert_msg(dir && *dir, "KSAFE_STATS_DATA is not set");
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    ck_assert_msg((f = fopen(path, "rb")) != NULL, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = malloc((size_t)n + 1);
    ck_assert_int_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = '\0';
    fclose(f);
    *len = (size_t)n;
    return buf;
}

ksafe_stats *stats_parse_data(const char *name)
{
    ksafe_stats *st;
    ksafe_error err;
    size_t len;
    char *doc = stats_read_data(name, &len);

    ck_assert_ok(ksafe_stats_parse(&st, doc, len, &err), err);
    free(doc);
    return st;
}

ksafe_stats *stats_parse_text(const char *doc)
{
    ksafe_stats *st;
    ksafe_error err;

    ck_assert_ok(ksafe_stats_parse(&st, doc, strlen(doc), &err), err);
    return st;
}

const ksafe_stats_partition *stats_part(const ksafe_stats *st,
                                         int32_t partition)
{
    size_t i;

    for (i = 0; i < st->partition_count; i++)
        if (st->partitions[i].partition == partition)
            return &st->partitions[i];
    ck_abort_msg("partition %d not in the stats", (int)partition);
    return NULL;
}

const char *const stats_versions[] = {"2.0.2", "2.15.1"};

/* ---- the Prometheus text checker --------------------------------------- */


#define MAX_FAMILIES 64

typedef struct family {
    char name[96];
    int help, type, samples, closed;
    char kind[16];
} family;

typedef struct checker {
    family f[MAX_FAMILIES];
    int n;
    int current; /* family whose samples are being read, or -1 */
    char seen[512][256]; /* samples (name + labels), for duplicates */
    int n_seen;
    char why[2048]; /* the first problem found */
} checker;

/* In the checker: a problem is noted in ck->why and ends the check. */
#define REQ(cond, ...)                                                       \
    do {                                                                     \
        if (!(cond)) {                                                       \
            snprintf(ck->why, sizeof(ck->why), __VA_ARGS__);                 \
            return 1;                                                        \
        }                                                                    \
    } while (0)

static int name_start(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
           c == ':';
}

static int name_char(char c)
{
    return name_start(c) || (c >= '0' && c <= '9');
}

/* Length of a metric (colon allowed) or label name at s, 0 if none. */
static size_t name_len(const char *s, int metric)
{
    size_t n = 0;

    if (!name_start(s[0]) || (!metric && s[0] == ':'))
        return 0;
    while (name_char(s[n]) && (metric || s[n] != ':'))
        n++;
    return n;
}

static family *family_of(checker *ck, const char *name, size_t n)
{
    int i;

    for (i = 0; i < ck->n; i++)
        if (strlen(ck->f[i].name) == n && strncmp(ck->f[i].name, name, n) == 0)
            return &ck->f[i];
    ck_assert_int_lt(ck->n, MAX_FAMILIES);
    ck_assert_int_lt(n, sizeof(ck->f[0].name));
    memset(&ck->f[ck->n], 0, sizeof(ck->f[0]));
    memcpy(ck->f[ck->n].name, name, n);
    return &ck->f[ck->n++];
}

static int check_comment(checker *ck, const char *line)
{
    int help = strncmp(line, "# HELP ", 7) == 0;
    const char *s = line + 7, *p;
    family *f;
    size_t n;

    REQ(help || strncmp(line, "# TYPE ", 7) == 0,
                  "comment is neither HELP nor TYPE: \"%s\"", line);
    REQ((n = name_len(s, 1)) > 0 && s[n] == ' ',
                  "bad metric name in \"%s\"", line);
    f = family_of(ck, s, n);
    REQ(f->samples == 0, "%s after samples: \"%s\"",
                  help ? "HELP" : "TYPE", line);
    if (help) {
        REQ(!f->help++, "second HELP: \"%s\"", line);
        for (p = s + n + 1; *p; p++)
            if (*p == '\\') {
                REQ(p[1] == '\\' || p[1] == 'n',
                    "bad escape in HELP: \"%s\"", line);
                p++;
            }
        REQ(s[n + 1] != '\0', "empty HELP text: \"%s\"", line);
    } else {
        REQ(!f->type++, "second TYPE: \"%s\"", line);
        REQ(strcmp(s + n + 1, "gauge") == 0 ||
                          strcmp(s + n + 1, "counter") == 0,
                      "TYPE not gauge|counter: \"%s\"", line);
        snprintf(f->kind, sizeof(f->kind), "%s", s + n + 1);
        if (strcmp(f->kind, "counter") == 0)
            REQ(n > 6 && strncmp(s + n - 6, "_total", 6) == 0,
                          "counter without _total: \"%s\"", line);
    }
    return 0;
}

static int check_sample(checker *ck, const char *line)
{
    const char *s = line, *v;
    size_t n = name_len(s, 1), key;
    char *end;
    family *f;
    int i, fi;

    REQ(n > 0, "bad metric name: \"%s\"", line);
    f = family_of(ck, s, n);
    fi = (int)(f - ck->f);
    REQ(f->help && f->type, "sample before HELP and TYPE: \"%s\"",
                  line);
    REQ(!f->closed, "family %s split: \"%s\"", f->name, line);
    if (ck->current >= 0 && ck->current != fi)
        ck->f[ck->current].closed = 1;
    ck->current = fi;
    f->samples++;
    s += n;
    if (*s == '{') {
        s++;
        for (;;) {
            size_t ln = name_len(s, 0);
            REQ(ln > 0, "bad label name at \"%s\"", s);
            s += ln;
            REQ(s[0] == '=' && s[1] == '"', "no =\" at \"%s\"", s);
            for (s += 2; *s != '"'; s++) {
                REQ(*s != '\0' && *s != '\n', "unterminated value");
                if (*s == '\\') {
                    REQ(s[1] == '\\' || s[1] == '"' || s[1] == 'n',
                                  "bad escape in \"%s\"", line);
                    s++;
                }
            }
            s++;
            if (*s == ',') {
                s++;
                continue;
            }
            REQ(*s == '}', "labels not closed in \"%s\"", line);
            s++;
            break;
        }
    }
    REQ(*s == ' ', "no space before the value: \"%s\"", line);
    key = (size_t)(s - line);
    v = s + 1;
    strtod(v, &end);
    REQ(end != v && *end == '\0', "bad value in \"%s\"", line);
    if (strcmp(f->kind, "counter") == 0)
        REQ(v[0] != '-', "negative counter: \"%s\"", line);
    for (i = 0; i < ck->n_seen; i++)
        REQ(strlen(ck->seen[i]) != key ||
                          strncmp(ck->seen[i], line, key) != 0,
                      "duplicate series: \"%s\"", line);
    ck_assert_int_lt(ck->n_seen, 512);
    ck_assert_int_lt(key, sizeof(ck->seen[0]));
    memcpy(ck->seen[ck->n_seen], line, key);
    ck->seen[ck->n_seen++][key] = '\0';
    return 0;
}

/* Every line a HELP, a TYPE or a sample; each family's HELP and TYPE once,
 * before its samples, which stay together; no family without samples. */
static int exposition_problem(checker *ck, const char *text)
{
    const char *line = text;
    int i;

    REQ(*text == '\0' || text[strlen(text) - 1] == '\n',
                  "the text does not end with a line feed");
    while (*line) {
        const char *nl = strchr(line, '\n');
        char buf[1024];
        size_t n = (size_t)(nl - line);

        ck_assert_int_lt(n, sizeof(buf));
        memcpy(buf, line, n);
        buf[n] = '\0';
        REQ(n > 0, "empty line");
        if (buf[0] == '#' ? check_comment(ck, buf) : check_sample(ck, buf))
            return 1;
        line = nl + 1;
    }
    for (i = 0; i < ck->n; i++)
        REQ(ck->f[i].samples > 0 && ck->f[i].help && ck->f[i].type,
                      "family %s: %d samples, HELP %d, TYPE %d",
                      ck->f[i].name, ck->f[i].samples, ck->f[i].help,
                      ck->f[i].type);
    return 0;
}

int stats_prom_problem(const char *text, char *why, size_t size)
{
    checker *ck = calloc(1, sizeof(*ck));
    int bad;

    ck_assert_ptr_nonnull(ck);
    ck->current = -1;
    bad = exposition_problem(ck, text);
    snprintf(why, size, "%s", bad ? ck->why : "");
    free(ck);
    return bad;
}

void stats_check_exposition(const char *text)
{
    char why[2048];

    ck_assert_msg(!stats_prom_problem(text, why, sizeof(why)), "%s in:\n%s",
                  why, text);
}
