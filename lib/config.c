/*
 * lib/config.c - options from a JSON document: the schema, and the
 * loader that checks a document against it.
 *
 * jansson parses and holds the document; the strings of the filled options
 * point into it. Where in the text something is wrong is config_text.c's
 * work.
 */
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "config_internal.h"

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
                   sizeof(ksafe_offset_reset) == sizeof(int) &&
                   sizeof(ksafe_group_protocol) == sizeof(int),
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
static const char *const group_protocol_names[] = {"classic", "consumer",
                                                   NULL};

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
    CO("group_protocol", K_ENUM, group_protocol, group_protocol_names),
    CO("statistics_interval_ms", K_INT, statistics_interval_ms, NULL),
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
