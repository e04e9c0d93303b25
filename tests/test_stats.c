/*
 * tests/test_stats.c - typed statistics (ksafe/stats.h): the parser on
 * documents captured from librdkafka 2.0.2 and 2.15.1 (tests/data/stats),
 * on documents with fields missing, added or of another type, and on
 * garbage; the Prometheus text under a strict line checker; the consumer's
 * statistics options; and, on the embedded cluster (KSAFE_STATS_PART=
 * cluster, test `stats-cluster`), lag and processed lag falling to 0.
 */
#include <jansson.h>
#include <pthread.h>

#include <ksafe/stats.h>

#include "testutil.h"

#define U KSAFE_STATS_UNKNOWN

static char *read_data(const char *name, size_t *len)
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

static ksafe_stats *parse_data(const char *name)
{
    ksafe_stats *st;
    ksafe_error err;
    size_t len;
    char *doc = read_data(name, &len);

    ck_assert_ok(ksafe_stats_parse(&st, doc, len, &err), err);
    free(doc);
    return st;
}

static ksafe_stats *parse_text(const char *doc)
{
    ksafe_stats *st;
    ksafe_error err;

    ck_assert_ok(ksafe_stats_parse(&st, doc, strlen(doc), &err), err);
    return st;
}

static const ksafe_stats_partition *part(const ksafe_stats *st,
                                         int32_t partition)
{
    size_t i;

    for (i = 0; i < st->partition_count; i++)
        if (st->partitions[i].partition == partition)
            return &st->partitions[i];
    ck_abort_msg("partition %d not in the stats", (int)partition);
    return NULL;
}

static const char *const versions[] = {"2.0.2", "2.15.1"};

/* ---- captured documents ------------------------------------------------ */

/* Caught up and committed: every value librdkafka has is there, and the
 * internal partition -1 is not. */
START_TEST(caught_up_consumer)
{
    char name[96];
    ksafe_stats *st;
    int32_t p;

    snprintf(name, sizeof(name), "rdkafka-%s-consumer-caught-up.json",
             versions[_i]);
    st = parse_data(name);
    ck_assert_str_eq(st->type, "consumer");
    ck_assert_ptr_nonnull(st->name);
    ck_assert_ptr_null(st->group_id);
    ck_assert_int_eq(st->partition_count, 3);
    for (p = 0; p < 3; p++) {
        const ksafe_stats_partition *sp = part(st, p);
        ck_assert_str_eq(sp->topic, "orders");
        ck_assert_int_eq(sp->high_watermark, 100);
        ck_assert_int_eq(sp->last_stable_offset, 100);
        ck_assert_int_eq(sp->committed_offset, 100);
        ck_assert_int_eq(sp->lag, 0);
        ck_assert_int_eq(sp->fetch_queue, 0);
        ck_assert_int_eq(sp->assigned, -1);
        /* only the consumer knows what was marked */
        ck_assert(!ksafe_stats_known(sp->marked_offset));
        ck_assert(!ksafe_stats_known(sp->processed_lag));
    }
    ck_assert_str_eq(st->join_state, "steady");
    ck_assert_str_eq(st->group_state, "up");
    ck_assert_int_eq(st->assignment_size, 3);
    ck_assert_int_eq(st->rebalances, 1);
    ck_assert(ksafe_stats_known(st->rebalance_age_ms));
    ck_assert(st->time_s > 1700000000);
    ck_assert(st->broker_count >= 1);
    ck_assert(ksafe_stats_known(st->requests_in_flight));
    ck_assert(ksafe_stats_known(st->requests_queued));
    ck_assert(ksafe_stats_known(st->retries));
    ksafe_stats_free(st);
}
END_TEST

/* Half-way: the fetch queue holds records; a partition never committed
 * has an unknown committed offset and lag, not 0. */
START_TEST(midway_consumer)
{
    char name[96];
    ksafe_stats *st;
    int32_t p;

    snprintf(name, sizeof(name), "rdkafka-%s-consumer-midway.json",
             versions[_i]);
    st = parse_data(name);
    ck_assert_int_eq(st->partition_count, 3);
    for (p = 0; p < 3; p++) {
        const ksafe_stats_partition *sp = part(st, p);
        ck_assert_int_eq(sp->high_watermark, 100);
        ck_assert(sp->fetch_queue > 100);
    }
    if (_i == 0) { /* 2.0.2: nothing committed yet */
        for (p = 0; p < 3; p++) {
            ck_assert(!ksafe_stats_known(part(st, p)->committed_offset));
            ck_assert(!ksafe_stats_known(part(st, p)->lag));
        }
    } else { /* 2.15.1: 100, 50, none */
        ck_assert_int_eq(part(st, 0)->lag, 0);
        ck_assert_int_eq(part(st, 1)->committed_offset, 50);
        ck_assert_int_eq(part(st, 1)->lag, 50);
        ck_assert(!ksafe_stats_known(part(st, 2)->lag));
    }
    ksafe_stats_free(st);
}
END_TEST

/* Before the group was joined: no partition, no assignment. */
START_TEST(joining_consumer)
{
    char name[96];
    ksafe_stats *st;

    snprintf(name, sizeof(name), "rdkafka-%s-consumer-joining.json",
             versions[_i]);
    st = parse_data(name);
    ck_assert_int_eq(st->partition_count, 0);
    ck_assert_str_eq(st->join_state, "wait-join");
    ck_assert_int_eq(st->assignment_size, 0);
    ck_assert_int_eq(st->rebalances, 0);
    ksafe_stats_free(st);
}
END_TEST

/* A producer: its queue, round trips; no group. */
START_TEST(producer_document)
{
    char name[96];
    ksafe_stats *st;
    size_t i;
    int rtt = 0;

    snprintf(name, sizeof(name), "rdkafka-%s-producer.json", versions[_i]);
    st = parse_data(name);
    ck_assert_str_eq(st->type, "producer");
    if (_i == 1) {
        ck_assert_int_eq(st->queue_messages, 151);
        ck_assert_int_eq(st->queue_bytes, 494);
    } else {
        ck_assert_int_eq(st->queue_messages, 0);
    }
    ck_assert_ptr_null(st->join_state);
    ck_assert(!ksafe_stats_known(st->rebalances));
    ck_assert(!ksafe_stats_known(st->assignment_size));
    for (i = 0; i < st->broker_count; i++) {
        const ksafe_stats_broker *b = &st->brokers[i];
        ck_assert_ptr_nonnull(b->name);
        if (ksafe_stats_known(b->rtt_avg_us)) {
            ck_assert(b->rtt_avg_us > 0);
            ck_assert(b->rtt_p99_us >= b->rtt_avg_us);
            rtt++;
        }
    }
    ck_assert_msg(rtt > 0, "no broker round trip in %s", name);
    ksafe_stats_free(st);
}
END_TEST

/* ---- fields missing, added, of another type ---------------------------- */

/* Each partition field deleted from a captured document: the document
 * still parses and exactly that value becomes unknown. */
START_TEST(each_partition_field_missing)
{
    static const struct {
        const char *key;
        size_t field;
    } fields[] = {
        {"hi_offset", offsetof(ksafe_stats_partition, high_watermark)},
        {"ls_offset", offsetof(ksafe_stats_partition, last_stable_offset)},
        {"committed_offset",
         offsetof(ksafe_stats_partition, committed_offset)},
        {"fetchq_cnt", offsetof(ksafe_stats_partition, fetch_queue)},
    };
    char name[96];
    size_t len, f, i;
    char *doc;

    snprintf(name, sizeof(name), "rdkafka-%s-consumer-caught-up.json",
             versions[_i]);
    doc = read_data(name, &len);
    for (f = 0; f < sizeof(fields) / sizeof(*fields); f++) {
        json_t *root = json_loadb(doc, len, 0, NULL), *parts, *p;
        const char *key;
        ksafe_stats *st;
        char *text;

        ck_assert_ptr_nonnull(root);
        parts = json_object_get(json_object_get(json_object_get(root,
                                                                "topics"),
                                                "orders"),
                                "partitions");
        json_object_foreach(parts, key, p)
            json_object_del(p, fields[f].key);
        text = json_dumps(root, 0);
        st = parse_text(text);
        ck_assert_int_eq(st->partition_count, 3);
        for (i = 0; i < st->partition_count; i++) {
            int64_t v;
            memcpy(&v, (char *)&st->partitions[i] + fields[f].field,
                   sizeof(v));
            ck_assert_msg(!ksafe_stats_known(v), "%s deleted, value %lld",
                          fields[f].key, (long long)v);
            if (f != 3) /* the lag needs hi_offset and committed_offset */
                ck_assert_int_eq(ksafe_stats_known(st->partitions[i].lag),
                                 f == 1);
        }
        ksafe_stats_free(st);
        free(text);
        json_decref(root);
    }
    free(doc);
}
END_TEST

/* Every top-level member deleted in turn: no crash, and what it held is
 * unknown. */
START_TEST(each_top_level_member_missing)
{
    char name[96];
    size_t len;
    json_t *orig;
    const char *key;
    json_t *v;
    char *doc;

    snprintf(name, sizeof(name), "rdkafka-%s-consumer-midway.json",
             versions[_i]);
    doc = read_data(name, &len);
    orig = json_loadb(doc, len, 0, NULL);
    ck_assert_ptr_nonnull(orig);
    json_object_foreach(orig, key, v) {
        json_t *copy = json_deep_copy(orig);
        ksafe_stats *st;
        char *text;

        json_object_del(copy, key);
        text = json_dumps(copy, 0);
        st = parse_text(text);
        if (strcmp(key, "topics") == 0)
            ck_assert_int_eq(st->partition_count, 0);
        if (strcmp(key, "brokers") == 0) {
            ck_assert_int_eq(st->broker_count, 0);
            ck_assert(!ksafe_stats_known(st->requests_in_flight));
        }
        if (strcmp(key, "cgrp") == 0) {
            ck_assert_ptr_null(st->join_state);
            ck_assert(!ksafe_stats_known(st->rebalances));
        }
        if (strcmp(key, "msg_cnt") == 0)
            ck_assert(!ksafe_stats_known(st->queue_messages));
        if (strcmp(key, "type") == 0)
            ck_assert_ptr_null(st->type);
        ksafe_stats_free(st);
        free(text);
        json_decref(copy);
    }
    json_decref(orig);
    free(doc);
}
END_TEST

START_TEST(empty_object_is_all_unknown)
{
    ksafe_stats *st = parse_text("{}");

    ck_assert_ptr_null(st->type);
    ck_assert_ptr_null(st->name);
    ck_assert_int_eq(st->partition_count, 0);
    ck_assert_int_eq(st->broker_count, 0);
    ck_assert_int_eq(st->queue_messages, U);
    ck_assert_int_eq(st->queue_bytes, U);
    ck_assert_int_eq(st->requests_in_flight, U);
    ck_assert_int_eq(st->retries, U);
    ck_assert_int_eq(st->rebalances, U);
    ck_assert_int_eq(st->rebalance_age_ms, U);
    ck_assert_int_eq(st->assignment_size, U);
    ck_assert_int_eq(st->time_s, U);
    ksafe_stats_free(st);
}
END_TEST

/* Added members are ignored; members of another type, out of range or
 * librdkafka's "none" (-1001, -1) are unknown; partition -1 is skipped. */
START_TEST(odd_members)
{
    ksafe_stats *st = parse_text(
        "{\"type\":7,\"future\":[1,{\"x\":null}],\"msg_cnt\":5.0,"
        "\"msg_size\":5.5,\"cgrp\":{\"rebalance_cnt\":\"3\","
        "\"assignment_size\":-1,\"join_state\":\"steady\",\"new\":{}},"
        "\"brokers\":{\"b1\":{\"nodeid\":1,\"outbuf_cnt\":2,"
        "\"waitresp_cnt\":3,\"txretries\":1,\"rtt\":{\"cnt\":0,\"avg\":0,"
        "\"p99\":0}},\"b2\":{\"outbuf_cnt\":1,\"waitresp_cnt\":true,"
        "\"rtt\":{\"cnt\":4,\"avg\":1500,\"p99\":9000}},\"b3\":[]},"
        "\"topics\":{\"t\":{\"partitions\":{\"-1\":{\"partition\":-1,"
        "\"hi_offset\":-1001},\"0\":{\"partition\":0,\"hi_offset\":10,"
        "\"committed_offset\":-1001,\"fetchq_cnt\":1e300},\"1\":{"
        "\"hi_offset\":7,\"committed_offset\":9},\"x\":{},\"2\":3}},"
        "\"u\":{\"topic\":\"renamed\",\"partitions\":[]},\"v\":null}}");
    const ksafe_stats_broker *b1, *b2;

    ck_assert_ptr_null(st->type);
    ck_assert_int_eq(st->queue_messages, 5);
    ck_assert_int_eq(st->queue_bytes, U);
    ck_assert_int_eq(st->rebalances, U);
    ck_assert_int_eq(st->assignment_size, U);
    ck_assert_str_eq(st->join_state, "steady");
    ck_assert_int_eq(st->broker_count, 2);
    b1 = strcmp(st->brokers[0].name, "b1") == 0 ? &st->brokers[0]
                                                : &st->brokers[1];
    b2 = b1 == &st->brokers[0] ? &st->brokers[1] : &st->brokers[0];
    ck_assert_int_eq(b1->node_id, 1);
    ck_assert_int_eq(b1->rtt_avg_us, U); /* no sample: not 0 */
    ck_assert_int_eq(b2->node_id, U);
    ck_assert_int_eq(b2->requests_in_flight, U);
    ck_assert_int_eq(b2->rtt_avg_us, 1500);
    ck_assert_int_eq(b2->rtt_p99_us, 9000);
    /* sums over the brokers that hold the field */
    ck_assert_int_eq(st->requests_queued, 3);
    ck_assert_int_eq(st->requests_in_flight, 3);
    ck_assert_int_eq(st->retries, 1);
    ck_assert_int_eq(st->partition_count, 2);
    ck_assert_int_eq(part(st, 0)->high_watermark, 10);
    ck_assert_int_eq(part(st, 0)->committed_offset, U);
    ck_assert_int_eq(part(st, 0)->lag, U);
    ck_assert_int_eq(part(st, 0)->fetch_queue, U);
    /* partition from its key; committed past the (older) watermark */
    ck_assert_int_eq(part(st, 1)->lag, 0);
    ksafe_stats_free(st);
}
END_TEST

/* ---- garbage ----------------------------------------------------------- */

static void refused(const char *doc, size_t len)
{
    ksafe_stats *st = (ksafe_stats *)&st;
    ksafe_error err;
    int rc;

    memset(&err, 0, sizeof(err));
    rc = ksafe_stats_parse(&st, doc, len, &err);
    ck_assert_msg(rc == KSAFE_EINVAL, "%d for \"%.40s\" (%zu bytes)", rc, doc,
                  len);
    ck_assert_int_eq(err.code, KSAFE_EINVAL);
    ck_assert_ptr_null(st);
    ck_assert_msg(strlen(err.message) > 10, "message \"%s\"", err.message);
}

START_TEST(garbage_is_refused)
{
    static const char *const docs[] = {
        "", " ", "{", "}", "[1,2]", "null", "42", "\"consumer\"",
        "{\"a\":", "{\"a\" 1}", "{\"topics\":{\"t\":{\"partitions\":{",
        "\xff\xfe{}", "{\"a\":\"\xc3\x28\"}", "{} {}", "{\"a\":1e99999}",
        "{\"a\":123456789012345678901234567890}",
    };
    ksafe_stats *st = NULL;
    ksafe_error err;
    char *deep, *doc;
    size_t i, len;

    for (i = 0; i < sizeof(docs) / sizeof(*docs); i++)
        refused(docs[i], strlen(docs[i]));
    /* nested past jansson's depth limit */
    deep = malloc(200001);
    for (i = 0; i < 100000; i++) {
        deep[i] = '[';
        deep[200000 - 1 - i] = ']';
    }
    deep[200000] = '\0';
    refused(deep, 200000);
    free(deep);
    /* a captured document cut anywhere */
    doc = read_data("rdkafka-2.15.1-consumer-midway.json", &len);
    while (len > 0 && (doc[len - 1] == '\n' || doc[len - 1] == ' '))
        len--;
    for (i = 0; i < len; i += 37)
        refused(doc, i);
    refused(doc, len - 1);
    /* a NUL inside */
    doc[len / 2] = '\0';
    refused(doc, len);
    free(doc);
    ck_assert_int_eq(ksafe_stats_parse(NULL, "{}", 2, &err), KSAFE_EINVAL);
    ck_assert_int_eq(ksafe_stats_parse(&st, NULL, 0, &err), KSAFE_EINVAL);
    ck_assert_ptr_null(st);
    ksafe_stats_free(NULL);
}
END_TEST

/* ---- Prometheus: a strict line checker --------------------------------- */

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

static void check_exposition(const char *text)
{
    checker *ck = calloc(1, sizeof(*ck));

    ck->current = -1;
    ck_assert_msg(!exposition_problem(ck, text), "%s in:\n%s", ck->why,
                  text);
    free(ck);
}

/* The checker itself refuses what it must. */
START_TEST(checker_refuses_bad_text)
{
    /* one good text as a baseline */
    check_exposition("# HELP a_total x\n# TYPE a_total counter\n"
                     "a_total{l=\"\\\"\\\\\\n\"} 1\n");
}
END_TEST

static const char *const bad_texts[] = {
    "a 1\n",                                              /* no HELP/TYPE */
    "# HELP a x\n# TYPE a gauge\na{l=\"\\t\"} 1\n",      /* bad escape */
    "# HELP a x\n# TYPE a gauge\na{1l=\"v\"} 1\n",       /* label name */
    "# HELP a x\n# TYPE a gauge\na 1\na 2\n",            /* duplicate */
    "# HELP a x\n# TYPE a summary\na 1\n",               /* type */
    "# HELP a x\n# TYPE a gauge\na one\n",               /* value */
    "# HELP a x\n# TYPE a gauge\n# HELP b x\n# TYPE b gauge\nb 1\n",
    "# HELP a x\n# TYPE a gauge\na 1",                    /* no final LF */
    "# HELP a x\n# TYPE a gauge\n# HELP b x\n# TYPE b gauge\na 1\nb 1\na{x=\"y\"} 2\n",
    "# HELP a x\n# TYPE a counter\na 1\n",               /* no _total */
};

START_TEST(checker_refuses)
{
    checker *ck = calloc(1, sizeof(*ck));

    ck->current = -1;
    ck_assert_msg(exposition_problem(ck, bad_texts[_i]),
                  "the checker took:\n%s", bad_texts[_i]);
    free(ck);
}
END_TEST

static void loop_counts(ksafe_loop_stats *ls)
{
    memset(ls, 0, sizeof(*ls));
    ls->polled = 120;
    ls->processed = 117;
    ls->retries = 4;
    ls->failed = 1;
    ls->dead_lettered = 1;
    ls->commits = 9;
}

START_TEST(prometheus_caught_up)
{
    char name[96];
    ksafe_stats *st;
    ksafe_loop_stats ls;
    ksafe_error err;
    char *text;

    snprintf(name, sizeof(name), "rdkafka-%s-consumer-caught-up.json",
             versions[_i]);
    st = parse_data(name);
    st->group_id = "billing";
    loop_counts(&ls);
    ck_assert_ok(ksafe_stats_prometheus(&text, st, &ls, &err), err);
    check_exposition(text);
    ck_assert_ptr_nonnull(strstr(text, "\nkafka_consumergroup_lag{"
                                       "consumergroup=\"billing\","
                                       "topic=\"orders\",partition=\"1\"} 0\n"));
    ck_assert_ptr_nonnull(strstr(text, "\nkafka_consumergroup_current_offset{"
                                       "consumergroup=\"billing\","
                                       "topic=\"orders\",partition=\"2\"} "
                                       "100\n"));
    ck_assert_ptr_nonnull(strstr(text, "\nkafka_topic_partition_current_offset"
                                       "{topic=\"orders\",partition=\"0\"} "
                                       "100\n"));
    ck_assert_ptr_nonnull(strstr(text, "\nksafe_loop_processed_total 117\n"));
    ck_assert_ptr_nonnull(strstr(text, "\nksafe_loop_dead_lettered_total 1\n"));
    ck_assert_ptr_nonnull(strstr(text, "# TYPE ksafe_loop_commits_total "
                                       "counter\n"));
    ck_assert_ptr_nonnull(strstr(text, "ksafe_consumergroup_join_state{"));
    ck_assert_ptr_nonnull(strstr(text, "state=\"steady\"} 1\n"));
    ck_assert_ptr_nonnull(strstr(text, "\nksafe_consumergroup_assigned_"
                                       "partitions{"));
    /* unknown everywhere: no family at all, not a 0 */
    ck_assert_ptr_null(strstr(text, "processed_lag"));
    ck_assert_ptr_null(strstr(text, "marked_offset"));
    ck_assert_ptr_null(strstr(text, "partition=\"-1\""));
    free(text);
    ksafe_stats_free(st);
}
END_TEST

/* An unknown lag is left out; a known one next to it stays. */
START_TEST(prometheus_leaves_out_unknown)
{
    ksafe_stats *st = parse_data("rdkafka-2.15.1-consumer-midway.json");
    ksafe_error err;
    char *text;

    st->group_id = "g";
    ck_assert_ok(ksafe_stats_prometheus(&text, st, NULL, &err), err);
    check_exposition(text);
    ck_assert_ptr_nonnull(strstr(text, "kafka_consumergroup_lag{consumergroup="
                                       "\"g\",topic=\"orders\",partition="
                                       "\"1\"} 50\n"));
    ck_assert_ptr_null(strstr(text, "kafka_consumergroup_lag{consumergroup="
                                    "\"g\",topic=\"orders\",partition=\"2\"}"));
    ck_assert_ptr_null(strstr(text, "ksafe_loop_"));
    free(text);
    ksafe_stats_free(st);
}
END_TEST

/* Label values with \, " and a line feed; rtt in seconds; a producer. */
START_TEST(prometheus_escapes_and_units)
{
    ksafe_stats *st = parse_text(
        "{\"type\":\"producer\",\"name\":\"a\\\\b\\\"c\\nd\",\"msg_cnt\":3,"
        "\"brokers\":{\"x\":{\"name\":\"h:1/1\",\"rtt\":{\"cnt\":2,"
        "\"avg\":1500,\"p99\":2000001}}},\"topics\":{\"t\\\"q\":{"
        "\"partitions\":{\"0\":{\"hi_offset\":4}}}}}");
    ksafe_error err;
    char *text;

    ck_assert_ok(ksafe_stats_prometheus(&text, st, NULL, &err), err);
    check_exposition(text);
    ck_assert_ptr_nonnull(strstr(text, "ksafe_producer_queue_messages{client="
                                       "\"a\\\\b\\\"c\\nd\"} 3\n"));
    ck_assert_ptr_nonnull(strstr(text, "ksafe_broker_rtt_avg_seconds{client="
                                       "\"a\\\\b\\\"c\\nd\",broker=\"h:1/1\"} "
                                       "0.001500\n"));
    ck_assert_ptr_nonnull(strstr(text, "ksafe_broker_rtt_p99_seconds{client="
                                       "\"a\\\\b\\\"c\\nd\",broker=\"h:1/1\"} "
                                       "2.000001\n"));
    ck_assert_ptr_nonnull(strstr(text, "kafka_topic_partition_current_offset"
                                       "{topic=\"t\\\"q\",partition=\"0\"} "
                                       "4\n"));
    /* no group: no group series, and no consumergroup label */
    ck_assert_ptr_null(strstr(text, "consumergroup=\""));
    ck_assert_ptr_null(strstr(text, "kafka_consumergroup_lag"));
    free(text);
    ksafe_stats_free(st);
}
END_TEST

START_TEST(prometheus_bad_arguments)
{
    ksafe_loop_stats ls;
    ksafe_error err;
    char *text = (char *)&text;

    ck_assert_int_eq(ksafe_stats_prometheus(&text, NULL, NULL, &err),
                     KSAFE_EINVAL);
    ck_assert_ptr_null(text);
    loop_counts(&ls);
    ck_assert_int_eq(ksafe_stats_prometheus(NULL, NULL, &ls, &err),
                     KSAFE_EINVAL);
    ck_assert_ok(ksafe_stats_prometheus(&text, NULL, &ls, &err), err);
    check_exposition(text);
    ck_assert_ptr_nonnull(strstr(text, "ksafe_loop_polled_total 120\n"));
    free(text);
}
END_TEST

/* ---- the consumer's options -------------------------------------------- */

static void no_stats(ksafe_consumer *c, const ksafe_stats *st, void *payload)
{
    (void)c;
    (void)st;
    (void)payload;
}

static int validate(int interval, ksafe_stats_cb cb, const char *raw,
                    ksafe_error *err)
{
    ksafe_consumer_options o = KSAFE_CONSUMER_OPTIONS_INIT;
    const char *props[] = {"statistics.interval.ms", raw, NULL};

    o.bootstrap_servers = "127.0.0.1:9";
    o.group_id = "g";
    o.statistics_interval_ms = interval;
    o.on_stats = cb;
    if (raw)
        o.rdkafka_properties = props;
    return ksafe_consumer_options_validate(&o, err);
}

START_TEST(options_are_checked)
{
    ksafe_consumer_options o;
    ksafe_error err;

    ck_assert_int_eq(ksafe_consumer_options_init(&o,
                                                 KSAFE_CONSUMER_OPTIONS_VERSION),
                     0);
    ck_assert_int_eq(o.statistics_interval_ms, 0);
    ck_assert_ptr_null(o.on_stats);
    ck_assert_ok(validate(0, NULL, NULL, &err), err);
    ck_assert_ok(validate(100, no_stats, NULL, &err), err);
    ck_assert_ok(validate(86400000, no_stats, NULL, &err), err);
    /* a JSON config sets the interval before code sets the callback */
    ck_assert_ok(validate(1000, NULL, NULL, &err), err);
    ck_assert_int_eq(validate(-1, no_stats, NULL, &err), KSAFE_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.message, "statistics_interval_ms is -1"));
    ck_assert_int_eq(validate(99, no_stats, NULL, &err), KSAFE_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.message, "below 100 ms"));
    ck_assert_int_eq(validate(86400001, no_stats, NULL, &err), KSAFE_EINVAL);
    ck_assert_int_eq(validate(0, no_stats, NULL, &err), KSAFE_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.message, "never be called"));
    ck_assert_int_eq(validate(0, NULL, "1000", &err), KSAFE_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.message, "typed statistics_interval_ms"));
}
END_TEST

START_TEST(json_config_sets_the_interval)
{
    ksafe_consumer_options o;
    ksafe_config *cfg;
    ksafe_error err;

    ck_assert_ok(ksafe_config_load_string(&cfg,
                                          "{\"bootstrap_servers\":\"h:1\","
                                          "\"consumer\":{\"group_id\":\"g\","
                                          "\"statistics_interval_ms\":5000}}",
                                          &err),
                 err);
    ck_assert_ok(ksafe_config_consumer_options(cfg, &o, &err), err);
    ck_assert_int_eq(o.statistics_interval_ms, 5000);
    ksafe_config_free(cfg);
    ck_assert_ok(ksafe_config_load_string(&cfg,
                                          "{\"bootstrap_servers\":\"h:1\","
                                          "\"consumer\":{\"group_id\":\"g\","
                                          "\"statistics_interval_ms\":-5}}",
                                          &err),
                 err);
    ck_assert_int_eq(ksafe_config_consumer_options(cfg, &o, &err),
                     KSAFE_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.message, "statistics_interval_ms"));
    ksafe_config_free(cfg);
}
END_TEST

/* ---- on the embedded cluster ------------------------------------------- */

#define PARTS 2
#define RECORDS 60

typedef struct seen {
    pthread_t poller;
    int calls, wrong_thread;
    int64_t hi[PARTS], lag[PARTS], processed_lag[PARTS];
    int assigned[PARTS];
    char group[64];
    char *text; /* the last Prometheus rendering */
} seen;

static void keep_stats(ksafe_consumer *c, const ksafe_stats *st, void *arg)
{
    seen *s = arg;
    ksafe_error err;
    size_t i;

    (void)c;
    s->calls++;
    if (!pthread_equal(pthread_self(), s->poller))
        s->wrong_thread++;
    ck_assert_str_eq(st->group_id, s->group);
    for (i = 0; i < st->partition_count; i++) {
        const ksafe_stats_partition *p = &st->partitions[i];
        if (p->partition >= PARTS)
            continue;
        s->hi[p->partition] = p->high_watermark;
        s->lag[p->partition] = p->lag;
        s->processed_lag[p->partition] = p->processed_lag;
        s->assigned[p->partition] = p->assigned;
    }
    free(s->text);
    ck_assert_ok(ksafe_stats_prometheus(&s->text, st, NULL, &err), err);
}

/* Polls (marking nothing) until `done` holds for every partition with
 * records, or 30 s. */
static int settled(const seen *s, int what)
{
    int p, with_records = 0;

    for (p = 0; p < PARTS; p++) {
        if (s->assigned[p] != 1 || !ksafe_stats_known(s->hi[p]))
            return 0;
        if (s->hi[p] == 0)
            continue;
        with_records++;
        if (what == 0 && !ksafe_stats_known(s->processed_lag[p]))
            continue; /* consuming */
        if (what == 1 && s->processed_lag[p] != 0)
            return 0;
        if (what == 2 && s->lag[p] != 0)
            return 0;
    }
    return with_records > 0;
}

static void poll_until(ksafe_consumer *c, seen *s, int what,
                       ksafe_message **keep, int *got)
{
    int64_t deadline = (int64_t)time(NULL) + 30;
    ksafe_error err;

    s->calls = 0;
    while (time(NULL) < deadline) {
        ksafe_message *m;
        ck_assert_ok(ksafe_consumer_poll(c, 50, &m, &err), err);
        if (m) {
            int p = ksafe_message_partition(m);
            ksafe_message_free(keep[p]);
            keep[p] = m; /* the last record of each partition */
            (*got)++;
        }
        if (s->calls >= 2 && *got == RECORDS && settled(s, what))
            return;
    }
    ck_abort_msg("statistics did not settle (phase %d, %d records, %d "
                 "calls)",
                 what, *got, s->calls);
}

START_TEST(lag_falls_to_zero)
{
    ksafe_consumer_options o;
    ksafe_consumer *c;
    ksafe_message *last[PARTS] = {NULL, NULL};
    ksafe_error err;
    char topic[64], expect[256];
    seen s;
    int p, got = 0;
    const char *t = topic;

    memset(&s, 0, sizeof(s));
    s.poller = pthread_self();
    ksafe_test_unique_name(topic, sizeof(topic), "stats");
    ksafe_test_unique_name(s.group, sizeof(s.group), "stats-g");
    ck_assert_ok(ksafe_test_cluster_create_topic(tc, topic, PARTS, &err), err);
    test_produce(tc, topic, 0, RECORDS);

    ksafe_test_cluster_consumer_options(tc, &o, s.group);
    o.log_cb = test_quiet_log;
    o.statistics_interval_ms = 100;
    o.on_stats = keep_stats;
    o.stats_payload = &s;
    ck_assert_ok(ksafe_consumer_new(&c, &o, &err), err);
    ck_assert_ok(ksafe_consumer_subscribe(c, &t, 1, &err), err);

    /* everything polled, nothing marked or committed: lag and processed
     * lag are unknown, not 0 */
    poll_until(c, &s, 0, last, &got);
    for (p = 0; p < PARTS; p++)
        if (s.hi[p] > 0) {
            ck_assert(!ksafe_stats_known(s.lag[p]));
            ck_assert(!ksafe_stats_known(s.processed_lag[p]));
        }
    /* marked: processed lag 0; not committed: lag still unknown */
    for (p = 0; p < PARTS; p++)
        if (last[p])
            ck_assert_ok(ksafe_consumer_done(c, last[p], &err), err);
    poll_until(c, &s, 1, last, &got);
    for (p = 0; p < PARTS; p++)
        if (s.hi[p] > 0)
            ck_assert(!ksafe_stats_known(s.lag[p]));
    /* committed: lag 0 */
    ck_assert_ok(ksafe_consumer_commit(c, KSAFE_COMMIT_SYNC, &err), err);
    poll_until(c, &s, 2, last, &got);
    ck_assert_int_eq(s.wrong_thread, 0);
    for (p = 0; p < PARTS; p++) {
        if (s.hi[p] == 0)
            continue;
        snprintf(expect, sizeof(expect),
                 "\nkafka_consumergroup_lag{consumergroup=\"%s\",topic=\"%s\","
                 "partition=\"%d\"} 0\n",
                 s.group, topic, p);
        ck_assert_msg(strstr(s.text, expect), "no \"%s\" in:\n%s", expect,
                      s.text);
        check_exposition(s.text);
    }
    for (p = 0; p < PARTS; p++)
        ksafe_message_free(last[p]);
    ck_assert_ok(ksafe_consumer_close(c, &err), err);
    ksafe_consumer_free(c);
    free(s.text);
}
END_TEST

static Suite *stats_suite(void)
{
    Suite *s = suite_create("stats");
    const char *part = getenv("KSAFE_STATS_PART");
    TCase *tc_case;

    if (part && strcmp(part, "cluster") == 0) {
        tc_case = tcase_create("cluster");
        tcase_add_unchecked_fixture(tc_case, test_cluster_up,
                                    test_cluster_down);
        tcase_add_test(tc_case, lag_falls_to_zero);
        suite_add_tcase(s, tc_case);
        return s;
    }
    tc_case = tcase_create("captured");
    tcase_add_loop_test(tc_case, caught_up_consumer, 0, 2);
    tcase_add_loop_test(tc_case, midway_consumer, 0, 2);
    tcase_add_loop_test(tc_case, joining_consumer, 0, 2);
    tcase_add_loop_test(tc_case, producer_document, 0, 2);
    suite_add_tcase(s, tc_case);

    tc_case = tcase_create("changed");
    tcase_add_loop_test(tc_case, each_partition_field_missing, 0, 2);
    tcase_add_loop_test(tc_case, each_top_level_member_missing, 0, 2);
    tcase_add_test(tc_case, empty_object_is_all_unknown);
    tcase_add_test(tc_case, odd_members);
    tcase_add_test(tc_case, garbage_is_refused);
    suite_add_tcase(s, tc_case);

    tc_case = tcase_create("prometheus");
    tcase_add_test(tc_case, checker_refuses_bad_text);
    tcase_add_loop_test(tc_case, checker_refuses, 0,
                        (int)(sizeof(bad_texts) / sizeof(*bad_texts)));
    tcase_add_loop_test(tc_case, prometheus_caught_up, 0, 2);
    tcase_add_test(tc_case, prometheus_leaves_out_unknown);
    tcase_add_test(tc_case, prometheus_escapes_and_units);
    tcase_add_test(tc_case, prometheus_bad_arguments);
    suite_add_tcase(s, tc_case);

    tc_case = tcase_create("options");
    tcase_add_test(tc_case, options_are_checked);
    tcase_add_test(tc_case, json_config_sets_the_interval);
    suite_add_tcase(s, tc_case);
    return s;
}

KSAFE_TEST_MAIN(stats_suite)
