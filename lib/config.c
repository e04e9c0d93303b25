/*
 * lib/config.c - options from a JSON document.
 *
 * jansson parses and holds the document; the strings of the filled options
 * point into it. jansson does not remember where a value was written, so
 * when something is wrong a small scanner walks the original text again to
 * turn the JSON path into line:column.
 */
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "internal.h"

struct ksafe_config {
    json_t *root;            /* owns the strings the options point to */
    ksafe__client_view shared;
    ksafe_producer_options producer; /* only its own fields are used */
    ksafe_consumer_options consumer; /* idem */
    char **props;            /* "key", "value", ..., NULL; all owned */
    size_t n_props;          /* pairs */
    char *origin;            /* file name for messages, or NULL */
};

/* Enums are stored through an int. */
_Static_assert(sizeof(ksafe_security_protocol) == sizeof(int) &&
                   sizeof(ksafe_compression) == sizeof(int) &&
                   sizeof(ksafe_partitioner) == sizeof(int) &&
                   sizeof(ksafe_offset_reset) == sizeof(int),
               "enums are int-sized");

/* ---- the schema -------------------------------------------------------- */

typedef enum { T_SHARED, T_PRODUCER, T_CONSUMER } target;
typedef enum { K_STRING, K_INT, K_BOOL, K_ENUM, K_SECTION, K_PROPS } kind;

typedef struct field {
    const char *key;
    kind kind;
    target target;
    size_t offset;
    const char *const *names;     /* K_ENUM: in enum order, NULL-ended */
    const struct field *section;  /* K_SECTION: its fields */
} field;

#define END_FIELDS {NULL, K_STRING, T_SHARED, 0, NULL, NULL}
#define SH(k, kd, m, n) {k, kd, T_SHARED, offsetof(ksafe__client_view, m), n, NULL}
#define PR(k, kd, m, n) {k, kd, T_PRODUCER, offsetof(ksafe_producer_options, m), n, NULL}
#define CO(k, kd, m, n) {k, kd, T_CONSUMER, offsetof(ksafe_consumer_options, m), n, NULL}

static const char *const protocol_names[] = {"plaintext", "ssl",
                                             "sasl_plaintext", "sasl_ssl",
                                             NULL};
static const char *const mechanism_names[] = {"PLAIN", "SCRAM-SHA-256",
                                              "SCRAM-SHA-512", NULL};
static const char *const compression_names[] = {"none", "gzip", "snappy",
                                                 "lz4", "zstd", NULL};
static const char *const queue_full_names[] = {"block", "return", NULL};
static const char *const partitioner_names[] = {
    "consistent_random", "murmur2_random", "fnv1a_random", NULL};
static const char *const reset_names[] = {"earliest", "latest", "error",
                                          NULL};
static const char *const strategy_names[] = {"cooperative-sticky", "range",
                                             "roundrobin", NULL};

static const field security_fields[] = {
    SH("protocol", K_ENUM, security_protocol, protocol_names),
    SH("sasl_mechanism", K_ENUM, sasl_mechanism, mechanism_names),
    SH("username", K_STRING, sasl_username, NULL),
    SH("password", K_STRING, sasl_password, NULL),
    SH("ca_location", K_STRING, ssl_ca_location, NULL),
    SH("certificate_location", K_STRING, ssl_certificate_location, NULL),
    SH("key_location", K_STRING, ssl_key_location, NULL),
    SH("key_password", K_STRING, ssl_key_password, NULL),
    END_FIELDS,
};

static const field producer_fields[] = {
    PR("max_in_flight", K_INT, max_in_flight, NULL),
    PR("delivery_timeout_ms", K_INT, delivery_timeout_ms, NULL),
    PR("linger_ms", K_INT, linger_ms, NULL),
    PR("compression", K_ENUM, compression, compression_names),
    PR("transactional_id", K_STRING, transactional_id, NULL),
    PR("transaction_timeout_ms", K_INT, transaction_timeout_ms, NULL),
    PR("queue_full", K_ENUM, queue_full, queue_full_names),
    PR("queue_full_timeout_ms", K_INT, queue_full_timeout_ms, NULL),
    PR("partitioner", K_ENUM, partitioner, partitioner_names),
    END_FIELDS,
};

static const field consumer_fields[] = {
    CO("group_id", K_STRING, group_id, NULL),
    CO("group_instance_id", K_STRING, group_instance_id, NULL),
    CO("auto_offset_reset", K_ENUM, auto_offset_reset, reset_names),
    CO("assignment_strategy", K_ENUM, assignment_strategy, strategy_names),
    CO("session_timeout_ms", K_INT, session_timeout_ms, NULL),
    CO("heartbeat_interval_ms", K_INT, heartbeat_interval_ms, NULL),
    CO("max_poll_interval_ms", K_INT, max_poll_interval_ms, NULL),
    END_FIELDS,
};

static const field top_fields[] = {
    SH("bootstrap_servers", K_STRING, bootstrap_servers, NULL),
    SH("client_id", K_STRING, client_id, NULL),
    {"security", K_SECTION, T_SHARED, 0, NULL, security_fields},
    SH("allow_unsafe", K_BOOL, allow_unsafe, NULL),
    {"rdkafka_properties", K_PROPS, T_SHARED, 0, NULL, NULL},
    {"producer", K_SECTION, T_PRODUCER, 0, NULL, producer_fields},
    {"consumer", K_SECTION, T_CONSUMER, 0, NULL, consumer_fields},
    END_FIELDS,
};

/* Where a key lives, for "it belongs in ..." hints. */
static const struct {
    const char *path;
    const field *fields;
} sections[] = {
    {"$", top_fields},
    {"$.security", security_fields},
    {"$.producer", producer_fields},
    {"$.consumer", consumer_fields},
};

/* Values of keys named like this are never shown in a message. */
static int is_secret_name(const char *key)
{
    static const char *const words[] = {"password", "secret"};
    size_t i, j, n = strlen(key);

    for (i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
        size_t w = strlen(words[i]);
        for (j = 0; j + w <= n; j++)
            if (strncasecmp(key + j, words[i], w) == 0)
                return 1;
    }
    return ksafe__is_secret_key(key);
}

/* ---- small text helpers ------------------------------------------------ */

/* Appends at most n bytes of s; the buffer always stays NUL-terminated. */
static void buf_add(char *buf, size_t size, size_t *len, const char *s,
                    size_t n)
{
    if (*len + 1 >= size)
        return;
    if (n > size - 1 - *len)
        n = size - 1 - *len;
    memcpy(buf + *len, s, n);
    *len += n;
    buf[*len] = '\0';
}

/* A string for a message: quoted, escaped, shortened when long. */
static void add_quoted(char *buf, size_t size, size_t *len, const char *s,
                       size_t max)
{
    size_t i;

    buf_add(buf, size, len, "\"", 1);
    for (i = 0; s[i] && i < max; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[8];

        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            buf_add(buf, size, len, esc, 2);
        } else if (c < 0x20 || c == 0x7f) {
            snprintf(esc, sizeof(esc), "\\u%04x", c);
            buf_add(buf, size, len, esc, 6);
        } else {
            buf_add(buf, size, len, s + i, 1);
        }
    }
    if (s[i])
        buf_add(buf, size, len, "...", 3);
    buf_add(buf, size, len, "\"", 1);
}

static int is_identifier(const char *s)
{
    size_t i;

    if (!*s || (*s >= '0' && *s <= '9'))
        return 0;
    for (i = 0; s[i]; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
              (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
            return 0;
    return 1;
}

/* One path step: .name for plain names, ["any.thing"] otherwise. */
static void add_path_key(char *buf, size_t size, size_t *len, const char *key)
{
    if (is_identifier(key) && strlen(key) <= 64) {
        buf_add(buf, size, len, ".", 1);
        buf_add(buf, size, len, key, strlen(key));
        return;
    }
    buf_add(buf, size, len, "[", 1);
    add_quoted(buf, size, len, key, 64);
    buf_add(buf, size, len, "]", 1);
}

static void line_col(const char *s, size_t len, size_t off, int *line,
                     int *col)
{
    size_t i;

    *line = 1;
    *col = 1;
    for (i = 0; i < off && i < len; i++) {
        if (s[i] == '\n') {
            ++*line;
            *col = 1;
        } else if (((unsigned char)s[i] & 0xc0) != 0x80) {
            /* columns count characters, as jansson's do */
            ++*col;
        }
    }
}

/* ---- the scanner: positions jansson does not keep ---------------------- */

typedef struct scanner {
    const char *s;
    size_t len, pos;
} scanner;

static void sc_ws(scanner *sc)
{
    while (sc->pos < sc->len &&
           (sc->s[sc->pos] == ' ' || sc->s[sc->pos] == '\t' ||
            sc->s[sc->pos] == '\n' || sc->s[sc->pos] == '\r'))
        sc->pos++;
}

static int hex4(const char *p, unsigned *out)
{
    unsigned v = 0;
    int i;

    for (i = 0; i < 4; i++) {
        char c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (unsigned)(c - 'A' + 10);
        else
            return -1;
    }
    *out = v;
    return 0;
}

static size_t utf8_put(char *d, unsigned cp)
{
    if (cp < 0x80) {
        d[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        d[0] = (char)(0xc0 | (cp >> 6));
        d[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        d[0] = (char)(0xe0 | (cp >> 12));
        d[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        d[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    d[0] = (char)(0xf0 | (cp >> 18));
    d[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    d[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    d[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

/*
 * Reads the string at pos (which must be at its opening quote). When `out`
 * is given, the decoded text is returned there (malloc'd; a decoded string is
 * never longer than its escaped form). -1 on anything malformed.
 */
static int sc_string(scanner *sc, char **out)
{
    const char *s = sc->s;
    size_t i = sc->pos + 1, n = 0;
    char *d = NULL;

    if (sc->pos >= sc->len || s[sc->pos] != '"')
        return -1;
    if (out) {
        /* measure first: the decoded text fits in the escaped length */
        scanner probe = *sc;
        if (sc_string(&probe, NULL) || !(d = malloc(probe.pos - sc->pos)))
            return -1;
    }
    for (;;) {
        unsigned char c;

        if (i >= sc->len)
            goto bad;
        c = (unsigned char)s[i];
        if (c == '"')
            break;
        if (c < 0x20)
            goto bad;
        if (c != '\\') {
            if (d)
                d[n++] = (char)c;
            i++;
            continue;
        }
        if (i + 1 >= sc->len)
            goto bad;
        c = (unsigned char)s[i + 1];
        if (c == 'u') {
            unsigned cp, lo;

            if (i + 6 > sc->len || hex4(s + i + 2, &cp))
                goto bad;
            i += 6;
            if (cp >= 0xd800 && cp <= 0xdbff && i + 6 <= sc->len &&
                s[i] == '\\' && s[i + 1] == 'u' && !hex4(s + i + 2, &lo) &&
                lo >= 0xdc00 && lo <= 0xdfff) {
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                i += 6;
            } else if (cp >= 0xd800 && cp <= 0xdfff) {
                cp = 0xfffd; /* jansson refuses these before we get here */
            }
            if (d)
                n += utf8_put(d + n, cp);
            continue;
        }
        {
            const char *from = "\"\\/bfnrt", *to = "\"\\/\b\f\n\r\t";
            const char *hit = c ? strchr(from, c) : NULL;
            if (!hit)
                goto bad;
            if (d)
                d[n++] = to[hit - from];
            i += 2;
        }
    }
    sc->pos = i + 1;
    if (out) {
        d[n] = '\0';
        *out = d;
    }
    return 0;
bad:
    free(d);
    return -1;
}

static int is_literal_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || c == '+' || c == '-' || c == '.';
}

/* Skips a number, true, false or null; -1 if there is none. */
static int sc_literal(scanner *sc)
{
    size_t start = sc->pos;

    while (sc->pos < sc->len && is_literal_char(sc->s[sc->pos]))
        sc->pos++;
    return sc->pos > start ? 0 : -1;
}

/* Skips one complete value; iterative, so nesting depth costs no stack. */
static int sc_skip_value(scanner *sc)
{
    size_t depth = 0;

    do {
        char c;

        sc_ws(sc);
        if (sc->pos >= sc->len)
            return -1;
        c = sc->s[sc->pos];
        if (c == '"') {
            if (sc_string(sc, NULL))
                return -1;
        } else if (c == '{' || c == '[') {
            depth++;
            sc->pos++;
        } else if (depth && (c == '}' || c == ']')) {
            depth--;
            sc->pos++;
        } else if (depth && (c == ',' || c == ':')) {
            sc->pos++;
        } else if (sc_literal(sc)) {
            return -1;
        }
    } while (depth);
    return 0;
}

/*
 * Finds the member at keys[0..n-1] of a document jansson accepted: where its
 * key and its value start. For n == 0 (the document itself) both are the
 * first token.
 */
static int sc_find(const char *s, size_t len, const char *const *keys,
                   size_t n, size_t *key_off, size_t *value_off)
{
    scanner sc = {s, len, 0};
    size_t d;

    sc_ws(&sc);
    *key_off = *value_off = sc.pos;
    for (d = 0; d < n; d++) {
        if (sc.pos >= len || s[sc.pos] != '{')
            return -1;
        sc.pos++;
        for (;;) {
            size_t kstart;
            char *key;
            int match;

            sc_ws(&sc);
            kstart = sc.pos;
            if (sc_string(&sc, &key))
                return -1; /* '}' included: not found */
            match = strcmp(key, keys[d]) == 0;
            free(key);
            sc_ws(&sc);
            if (sc.pos >= len || s[sc.pos] != ':')
                return -1;
            sc.pos++;
            sc_ws(&sc);
            if (match) {
                *key_off = kstart;
                *value_off = sc.pos;
                break;
            }
            if (sc_skip_value(&sc))
                return -1;
            sc_ws(&sc);
            if (sc.pos >= len || s[sc.pos] != ',')
                return -1;
            sc.pos++;
        }
    }
    return 0;
}

/*
 * For a document jansson refused: the path of what was being read when the
 * scan reached `stop` (jansson's error position) or met something it could
 * not read. Works on the broken text as far as it goes.
 */
typedef struct tracer {
    scanner sc;
    size_t stop;
    char path[160];
    size_t plen;
    int done;
    int secret;     /* the frozen path passes through a secret's key */
    size_t key_off; /* where the innermost key read so far starts */
} tracer;

#define TRACE_MAX_DEPTH 64

static void tr_freeze(tracer *t, int secret)
{
    t->done = 1;
    t->secret = secret;
}

static int tr_stopped(tracer *t)
{
    return t->sc.pos >= t->stop || t->sc.pos >= t->sc.len;
}

static void tr_value(tracer *t, int depth, int secret)
{
    scanner *sc = &t->sc;
    char close;
    size_t index = 0;

    sc_ws(sc);
    if (tr_stopped(t)) {
        tr_freeze(t, secret);
        return;
    }
    if (sc->s[sc->pos] == '"') {
        if (sc_string(sc, NULL))
            tr_freeze(t, secret);
        return;
    }
    if (sc->s[sc->pos] != '{' && sc->s[sc->pos] != '[') {
        if (sc_literal(sc))
            tr_freeze(t, secret);
        return;
    }
    if (depth >= TRACE_MAX_DEPTH) {
        tr_freeze(t, 1); /* unknown territory: show nothing of it */
        return;
    }
    close = sc->s[sc->pos] == '{' ? '}' : ']';
    sc->pos++;
    for (;;) {
        size_t saved = t->plen;
        int msecret = secret;

        sc_ws(sc);
        if (tr_stopped(t)) {
            tr_freeze(t, secret);
            return;
        }
        if (sc->s[sc->pos] == close && index == 0) {
            sc->pos++;
            return;
        }
        if (close == '}') {
            char *key;
            size_t kstart = sc->pos;

            if (sc_string(sc, &key)) {
                tr_freeze(t, secret);
                return;
            }
            t->key_off = kstart;
            add_path_key(t->path, sizeof(t->path), &t->plen, key);
            msecret |= is_secret_name(key);
            free(key);
            sc_ws(sc);
            if (tr_stopped(t) || sc->s[sc->pos] != ':') {
                tr_freeze(t, msecret);
                return;
            }
            sc->pos++;
        } else {
            char step[32];
            snprintf(step, sizeof(step), "[%zu]", index);
            buf_add(t->path, sizeof(t->path), &t->plen, step, strlen(step));
        }
        index++;
        tr_value(t, depth + 1, msecret);
        if (t->done)
            return;
        if (tr_stopped(t)) { /* the error is at the end of this value */
            tr_freeze(t, msecret);
            return;
        }
        t->plen = saved;
        t->path[saved] = '\0';
        sc_ws(sc);
        if (tr_stopped(t)) {
            tr_freeze(t, secret);
            return;
        }
        if (sc->s[sc->pos] == close) {
            sc->pos++;
            return;
        }
        if (sc->s[sc->pos] != ',') {
            tr_freeze(t, secret);
            return;
        }
        sc->pos++;
    }
}

/* ---- messages ---------------------------------------------------------- */

typedef struct loader {
    const char *text;
    size_t len;
    const char *origin; /* file name, or NULL */
    ksafe_config *cfg;
    ksafe_error *err;
    const char *keys[4]; /* the path being checked */
    size_t depth;
} loader;

/* "[origin: ]path: detail (line L, column C)"; the location survives any
 * truncation. */
static int report(ksafe_error *err, const char *origin, const char *path,
                  const char *detail, int line, int col)
{
    char head[KSAFE_ERROR_MESSAGE_SIZE], tail[64];
    size_t hlen = 0, room;

    if (!err)
        return KSAFE_EJSON;
    if (origin) {
        buf_add(head, sizeof(head), &hlen, origin, strlen(origin));
        buf_add(head, sizeof(head), &hlen, ": ", 2);
    }
    buf_add(head, sizeof(head), &hlen, path, strlen(path));
    buf_add(head, sizeof(head), &hlen, ": ", 2);
    buf_add(head, sizeof(head), &hlen, detail, strlen(detail));
    if (line > 0)
        snprintf(tail, sizeof(tail), " (line %d, column %d)", line, col);
    else
        snprintf(tail, sizeof(tail), " (position unknown)");
    room = sizeof(head) - 1 - strlen(tail);
    if (hlen > room) {
        memcpy(head + room - 3, "...", 4);
        hlen = room;
    }
    return ksafe__error_set(err, KSAFE_EJSON, 0, 0, "%s%s", head, tail);
}

static void current_path(const loader *ld, char *buf, size_t size)
{
    size_t i, len = 0;

    buf[0] = '\0';
    buf_add(buf, size, &len, "$", 1);
    for (i = 0; i < ld->depth; i++)
        add_path_key(buf, size, &len, ld->keys[i]);
}

/* Fails at the current path, pointing at its key or at its value. */
static int fail(loader *ld, int at_value, const char *fmt, ...)
    KSAFE__PRINTF(3, 4);

static int fail(loader *ld, int at_value, const char *fmt, ...)
{
    char path[KSAFE_ERROR_MESSAGE_SIZE], detail[KSAFE_ERROR_MESSAGE_SIZE];
    size_t key_off, value_off;
    int line = 0, col = 0;
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(detail, sizeof(detail), fmt, ap);
    va_end(ap);
    current_path(ld, path, sizeof(path));
    if (!sc_find(ld->text, ld->len, ld->keys, ld->depth, &key_off,
                 &value_off))
        line_col(ld->text, ld->len, at_value ? value_off : key_off, &line,
                 &col);
    return report(ld->err, ld->origin, path, detail, line, col);
}

static const char *type_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a real number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    case JSON_NULL: return "null";
    }
    return "something else";
}

static int fail_type(loader *ld, const char *expected, const json_t *v)
{
    const char *key = ld->depth ? ld->keys[ld->depth - 1] : "";

    return fail(ld, 1, "expected %s, got %s%s", expected, type_name(v),
                is_secret_name(key) ? " (value not shown)" : "");
}

/* ---- unknown keys ------------------------------------------------------ */

/* Edit distance, case-insensitive; long keys are not compared. */
static size_t distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b), i, j;
    size_t row[65], prev, tmp;

    if (la > 64 || lb > 64)
        return (size_t)-1;
    for (j = 0; j <= lb; j++)
        row[j] = j;
    for (i = 1; i <= la; i++) {
        prev = row[0];
        row[0] = i;
        for (j = 1; j <= lb; j++) {
            size_t cost = (a[i - 1] | 0x20) == (b[j - 1] | 0x20) ? 0 : 1;
            size_t best = prev + cost;
            if (row[j] + 1 < best)
                best = row[j] + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            tmp = row[j];
            row[j] = best;
            prev = tmp;
        }
    }
    return row[lb];
}

/* The obviously meant key of `fields`, or NULL. */
static const char *nearest(const field *fields, const char *key)
{
    const char *best = NULL;
    size_t best_d = (size_t)-1, i;

    for (i = 0; fields[i].key; i++) {
        size_t d = distance(key, fields[i].key);
        size_t limit = strlen(fields[i].key) / 3;
        size_t klen = strlen(key);

        if (limit < 1)
            limit = 1;
        if (limit > 3)
            limit = 3;
        /* "linger" for "linger_ms": a prefix of a real key */
        if (klen >= 4 && strncasecmp(fields[i].key, key, klen) == 0)
            d = 0;
        if (d <= limit && d < best_d) {
            best = fields[i].key;
            best_d = d;
        }
    }
    return best;
}

static int fail_unknown(loader *ld, const field *fields, const char *key)
{
    const char *hint;
    size_t i, j;

    if ((hint = nearest(fields, key)))
        return fail(ld, 0, "unknown key; did you mean \"%s\"?", hint);
    for (i = 0; i < sizeof(sections) / sizeof(sections[0]); i++)
        for (j = 0; sections[i].fields[j].key; j++)
            if (sections[i].fields != fields &&
                strcmp(sections[i].fields[j].key, key) == 0)
                return fail(ld, 0, "unknown key here; it belongs in %s",
                            sections[i].path);
    if (strchr(key, '.'))
        return fail(ld, 0, "unknown key; librdkafka properties go in "
                           "$.rdkafka_properties");
    return fail(ld, 0, "unknown key");
}

/* ---- loading ----------------------------------------------------------- */

static void *target_base(ksafe_config *cfg, target t)
{
    switch (t) {
    case T_PRODUCER: return &cfg->producer;
    case T_CONSUMER: return &cfg->consumer;
    case T_SHARED: break;
    }
    return &cfg->shared;
}

static int load_object(loader *ld, const json_t *obj, const field *fields);

/* Scalars are accepted as property values and kept in librdkafka's
 * spelling; a real number is refused because its text form is ambiguous. */
static int load_props(loader *ld, const json_t *obj)
{
    ksafe_config *cfg = ld->cfg;
    const char *key;
    json_t *v;
    size_t n = 0;

    if (!json_is_object(obj))
        return fail_type(ld, "an object", obj);
    if (!json_object_size(obj))
        return 0;
    cfg->props = calloc(2 * json_object_size(obj) + 1, sizeof(char *));
    if (!cfg->props)
        return ksafe__error_set(ld->err, KSAFE_ENOMEM, 0, 0, "out of memory");
    json_object_foreach((json_t *)obj, key, v) {
        char num[32];
        const char *text = NULL;
        int rc = 0;

        ld->keys[ld->depth++] = key;
        if (!*key)
            rc = fail(ld, 0, "empty property name");
        else if (json_is_string(v))
            text = json_string_value(v);
        else if (json_is_integer(v)) {
            snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT,
                     json_integer_value(v));
            text = num;
        } else if (json_is_boolean(v))
            text = json_is_true(v) ? "true" : "false";
        else
            rc = fail_type(ld,
                           json_is_real(v)
                               ? "a string, an integer or a boolean (write "
                                 "real numbers as strings)"
                               : "a string, an integer or a boolean",
                           v);
        ld->depth--;
        if (rc)
            return rc;
        cfg->props[2 * n] = ksafe__strdup(key);
        cfg->props[2 * n + 1] = ksafe__strdup(text);
        cfg->n_props = ++n;
        if (!cfg->props[2 * n - 2] || !cfg->props[2 * n - 1])
            return ksafe__error_set(ld->err, KSAFE_ENOMEM, 0, 0,
                                    "out of memory");
    }
    cfg->shared.rdkafka_properties = (const char *const *)cfg->props;
    return 0;
}

static int load_field(loader *ld, const field *f, const json_t *v)
{
    char *at = (char *)target_base(ld->cfg, f->target) + f->offset;

    switch (f->kind) {
    case K_STRING: {
        const char *s = json_string_value(v);
        if (!json_is_string(v))
            return fail_type(ld, "a string", v);
        memcpy(at, &s, sizeof(s));
        return 0;
    }
    case K_INT: {
        json_int_t i;
        int n;
        if (!json_is_integer(v))
            return fail_type(ld, "an integer", v);
        i = json_integer_value(v);
        if (i < INT_MIN || i > INT_MAX)
            return fail(ld, 1, "%" JSON_INTEGER_FORMAT " is out of range "
                               "(-2147483648..2147483647)", i);
        n = (int)i;
        memcpy(at, &n, sizeof(n));
        return 0;
    }
    case K_BOOL: {
        int b = json_is_true(v);
        if (!json_is_boolean(v))
            return fail_type(ld, "a boolean (true or false)", v);
        memcpy(at, &b, sizeof(b));
        return 0;
    }
    case K_ENUM: {
        char allowed[160], shown[80];
        size_t alen = 0, slen = 0;
        int i;
        if (!json_is_string(v))
            return fail_type(ld, "a string", v);
        for (i = 0; f->names[i]; i++) {
            if (strcasecmp(f->names[i], json_string_value(v)) == 0) {
                memcpy(at, &i, sizeof(i));
                return 0;
            }
            if (i)
                buf_add(allowed, sizeof(allowed), &alen, ", ", 2);
            buf_add(allowed, sizeof(allowed), &alen, f->names[i],
                    strlen(f->names[i]));
        }
        if (is_secret_name(f->key))
            snprintf(shown, sizeof(shown), "the value (not shown)");
        else
            add_quoted(shown, sizeof(shown), &slen, json_string_value(v), 40);
        return fail(ld, 1, "%s is not one of %s", shown, allowed);
    }
    case K_SECTION:
        if (!json_is_object(v))
            return fail_type(ld, "an object", v);
        return load_object(ld, v, f->section);
    case K_PROPS:
        return load_props(ld, v);
    }
    return 0;
}

static int load_object(loader *ld, const json_t *obj, const field *fields)
{
    const char *key;
    json_t *v;

    json_object_foreach((json_t *)obj, key, v) {
        const field *f = NULL;
        size_t i;
        int rc;

        for (i = 0; fields[i].key && !f; i++)
            if (strcmp(fields[i].key, key) == 0)
                f = &fields[i];
        ld->keys[ld->depth++] = key;
        rc = f ? load_field(ld, f, v) : fail_unknown(ld, fields, key);
        ld->depth--;
        if (rc)
            return rc;
    }
    return 0;
}

/* jansson's message, located by jansson, with the path we can work out. */
static int syntax_error(const char *text, size_t len, const char *origin,
                        const json_error_t *je, ksafe_error *err)
{
    tracer t;
    char detail[KSAFE_ERROR_MESSAGE_SIZE];
    int line = je->line, col = je->column;
    size_t i;

    memset(&t, 0, sizeof(t));
    t.sc.s = text;
    t.sc.len = len;
    t.stop = je->position > 0 ? (size_t)je->position : 0;
    t.path[0] = '$';
    t.plen = 1;
    tr_value(&t, 0, 0);
    if (t.plen >= sizeof(t.path) - 1) /* cut short: say so */
        memcpy(t.path + sizeof(t.path) - 4, "...", 4);
    if (json_error_code(je) == json_error_duplicate_key) {
        /* point at the second key itself, not past it */
        line_col(text, len, t.key_off, &line, &col);
        return report(err, origin, t.path, "duplicate key", line, col);
    }
    snprintf(detail, sizeof(detail), "%s", je->text);
    for (i = 0; detail[i]; i++)
        if ((unsigned char)detail[i] < 0x20)
            detail[i] = '?';
    if (t.secret) {
        /* jansson quotes the text around the error: it may be a secret */
        char *near = strstr(detail, " near ");
        if (near)
            snprintf(near, sizeof(detail) - (size_t)(near - detail),
                     " (value not shown)");
    }
    if (line < 1)
        line = 1;
    if (col < 1)
        col = 1;
    return report(err, origin, t.path, detail, line, col);
}

static int load_text(ksafe_config **out, const char *text, size_t len,
                     const char *origin, ksafe_error *err)
{
    static const ksafe_producer_options pp = KSAFE_PRODUCER_OPTIONS_INIT;
    static const ksafe_consumer_options cp = KSAFE_CONSUMER_OPTIONS_INIT;
    static const ksafe__client_view sp = {KSAFE_CLIENT_OPTIONS_INIT_VALUES};
    json_error_t je;
    ksafe_config *cfg;
    loader ld;
    int rc;

    if (!(cfg = calloc(1, sizeof(*cfg))))
        return ksafe__error_set(err, KSAFE_ENOMEM, 0, 0, "out of memory");
    cfg->shared = sp;
    cfg->producer = pp;
    cfg->consumer = cp;
    if (origin && !(cfg->origin = ksafe__strdup(origin))) {
        free(cfg);
        return ksafe__error_set(err, KSAFE_ENOMEM, 0, 0, "out of memory");
    }
    cfg->root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    if (!cfg->root) {
        ksafe_config_free(cfg);
        return syntax_error(text, len, origin, &je, err);
    }
    memset(&ld, 0, sizeof(ld));
    ld.text = text;
    ld.len = len;
    ld.origin = origin;
    ld.cfg = cfg;
    ld.err = err;
    if (!json_is_object(cfg->root))
        rc = fail_type(&ld, "an object", cfg->root);
    else
        rc = load_object(&ld, cfg->root, top_fields);
    if (rc) {
        ksafe_config_free(cfg);
        return rc;
    }
    *out = cfg;
    return 0;
}

int ksafe_config_load_string(ksafe_config **out, const char *json,
                             ksafe_error *err)
{
    if (!out)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0, "out is NULL");
    *out = NULL;
    if (!json)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0, "json is NULL");
    return load_text(out, json, strlen(json), NULL, err);
}

int ksafe_config_load_file(ksafe_config **out, const char *path,
                           ksafe_error *err)
{
    char *text = NULL, *grown;
    size_t len = 0, cap = 0;
    FILE *f;
    int rc;

    if (!out)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0, "out is NULL");
    *out = NULL;
    if (!path)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0, "path is NULL");
    if (!(f = fopen(path, "rb")))
        return ksafe__error_set(err, KSAFE_EIO, 0, 0,
                                "cannot open config file \"%s\": %s", path,
                                strerror(errno));
    for (;;) {
        size_t got;

        if (len == cap) {
            cap = cap ? cap * 2 : 4096;
            if (!(grown = realloc(text, cap))) {
                free(text);
                fclose(f);
                return ksafe__error_set(err, KSAFE_ENOMEM, 0, 0,
                                        "out of memory");
            }
            text = grown;
        }
        got = fread(text + len, 1, cap - len, f);
        len += got;
        if (got)
            continue;
        if (ferror(f)) {
            int e = errno;
            free(text);
            fclose(f);
            return ksafe__error_set(err, KSAFE_EIO, 0, 0,
                                    "cannot read config file \"%s\": %s",
                                    path, strerror(e));
        }
        break;
    }
    fclose(f);
    rc = load_text(out, text, len, path, err);
    free(text);
    return rc;
}

/* ---- options ----------------------------------------------------------- */

#define SHARED_INTO(o, v)                                                    \
    do {                                                                     \
        (o)->bootstrap_servers = (v).bootstrap_servers;                      \
        (o)->client_id = (v).client_id;                                      \
        (o)->security_protocol = (v).security_protocol;                      \
        (o)->sasl_mechanism = (v).sasl_mechanism;                            \
        (o)->sasl_username = (v).sasl_username;                              \
        (o)->sasl_password = (v).sasl_password;                              \
        (o)->ssl_ca_location = (v).ssl_ca_location;                          \
        (o)->ssl_certificate_location = (v).ssl_certificate_location;        \
        (o)->ssl_key_location = (v).ssl_key_location;                        \
        (o)->ssl_key_password = (v).ssl_key_password;                        \
        (o)->rdkafka_properties = (v).rdkafka_properties;                    \
        (o)->allow_unsafe = (v).allow_unsafe;                                \
    } while (0)

/* Validation messages name the option; say which document it came from. */
static int from_document(const ksafe_config *cfg, int rc, ksafe_error *err)
{
    char msg[KSAFE_ERROR_MESSAGE_SIZE];
    const char *from = cfg->origin ? cfg->origin : "JSON config";
    size_t len = 0;

    if (!rc || !err)
        return rc;
    memcpy(msg, err->message, sizeof(msg));
    err->message[0] = '\0';
    buf_add(err->message, sizeof(err->message), &len, from, strlen(from));
    buf_add(err->message, sizeof(err->message), &len, ": ", 2);
    buf_add(err->message, sizeof(err->message), &len, msg, strlen(msg));
    return rc;
}

int ksafe_config_producer_options(const ksafe_config *cfg,
                                  ksafe_producer_options *opts,
                                  ksafe_error *err)
{
    if (!cfg || !opts)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0, "%s is NULL",
                                cfg ? "opts" : "cfg");
    *opts = cfg->producer;
    SHARED_INTO(opts, cfg->shared);
    return from_document(cfg, ksafe_producer_options_validate(opts, err),
                         err);
}

int ksafe_config_consumer_options(const ksafe_config *cfg,
                                  ksafe_consumer_options *opts,
                                  ksafe_error *err)
{
    if (!cfg || !opts)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0, "%s is NULL",
                                cfg ? "opts" : "cfg");
    *opts = cfg->consumer;
    SHARED_INTO(opts, cfg->shared);
    return from_document(cfg, ksafe_consumer_options_validate(opts, err),
                         err);
}

void ksafe_config_free(ksafe_config *cfg)
{
    size_t i;

    if (!cfg)
        return;
    for (i = 0; i < 2 * cfg->n_props; i++)
        free(cfg->props[i]);
    free(cfg->props);
    json_decref(cfg->root);
    free(cfg->origin);
    free(cfg);
}
