/*
 * lib/dedup.c - dedup keys and the store wrapper every store goes through.
 *
 * The wrapper owns the rules that must not depend on how well a store is
 * written: call order, "no commit while a claim is unresolved", one offset
 * write per partition per batch, and the counters.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "dedup_internal.h"

/* ---- helpers shared by the stores -------------------------------------- */

static uint64_t mix64(uint64_t x)
{
    /* splitmix64's finaliser: every input bit reaches every output bit. */
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

uint64_t ksafe__dedup_hash(const void *key, size_t len, uint64_t seed)
{
    const unsigned char *p = key;
    uint64_t h = seed ^ ((uint64_t)len * 0x9e3779b97f4a7c15ULL);
    uint64_t w;

    while (len >= 8) {
        memcpy(&w, p, 8);
        h = (h ^ mix64(w)) * 0x9e3779b97f4a7c15ULL;
        h = (h << 27) | (h >> 37);
        p += 8;
        len -= 8;
    }
    w = 0;
    if (len)
        memcpy(&w, p, len);
    h ^= mix64(w ^ ((uint64_t)len << 56));
    return mix64(h);
}

uint64_t ksafe__dedup_seed(void)
{
    static uint64_t counter;
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return mix64((uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 32) ^
                 ((uint64_t)getpid() << 16) ^
                 __atomic_add_fetch(&counter, 1, __ATOMIC_RELAXED));
}

int64_t ksafe__wall_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int ident_part_ok(const char *s, size_t n)
{
    size_t i;

    if (n == 0 || n > 63 || !(isalpha((unsigned char)s[0]) || s[0] == '_'))
        return 0;
    for (i = 1; i < n; i++)
        if (!(isalnum((unsigned char)s[i]) || s[i] == '_'))
            return 0;
    return 1;
}

int ksafe__dedup_check_ident(const char *name, int dotted, const char *field,
                             ksafe_error *err)
{
    const char *dot = name ? strchr(name, '.') : NULL;
    int ok;

    if (!name)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0, "%s is NULL", field);
    if (dot && dotted)
        ok = ident_part_ok(name, (size_t)(dot - name)) &&
             ident_part_ok(dot + 1, strlen(dot + 1));
    else
        ok = ident_part_ok(name, strlen(name));
    if (!ok)
        return ksafe__error_set(
            err, KSAFE_EINVAL, 0, 0,
            "%s \"%.64s\" is not a plain SQL identifier ([A-Za-z_][A-Za-z0-9_]*, "
            "at most 63 characters%s)",
            field, name, dotted ? ", optionally schema.table" : "");
    return 0;
}

const char *ksafe__dedup_bare_name(const char *name)
{
    const char *dot = strchr(name, '.');
    return dot ? dot + 1 : name;
}

/* ---- dedup keys -------------------------------------------------------- */

typedef struct json_step {
    char *name;   /* member name */
    long index;   /* array index when name is all digits, else -1 */
} json_step;

struct ksafe_dedup_key {
    ksafe_dedup_key_kind kind;
    char *arg;            /* header name or path as given */
    json_step *steps;
    size_t n_steps;
    ksafe_dedup_key_fn fn;
    void *payload;
};

static int parse_path(ksafe_dedup_key *k, ksafe_error *err)
{
    const char *p = k->arg, *dot;
    size_t n = 1, i;

    for (dot = p; *dot; dot++)
        n += *dot == '.';
    k->steps = calloc(n, sizeof(*k->steps));
    if (!k->steps)
        return ksafe__error_set(err, KSAFE_ENOMEM, 0, 0, "out of memory");
    k->n_steps = n;
    for (i = 0; i < n; i++) {
        size_t len, j;
        int digits = 1;

        dot = strchr(p, '.');
        len = dot ? (size_t)(dot - p) : strlen(p);
        if (len == 0)
            return ksafe__error_set(
                err, KSAFE_EINVAL, 0, 0,
                "JSON path \"%s\": empty segment %zu (use \"a.b.c\")",
                k->arg, i + 1);
        k->steps[i].name = malloc(len + 1);
        if (!k->steps[i].name)
            return ksafe__error_set(err, KSAFE_ENOMEM, 0, 0, "out of memory");
        memcpy(k->steps[i].name, p, len);
        k->steps[i].name[len] = '\0';
        for (j = 0; j < len; j++)
            digits = digits && isdigit((unsigned char)p[j]);
        k->steps[i].index = digits && len < 10 ? atol(k->steps[i].name) : -1;
        p += len + 1;
    }
    return 0;
}

int ksafe_dedup_key_new(ksafe_dedup_key **out, ksafe_dedup_key_kind kind,
                        const char *arg, ksafe_error *err)
{
    ksafe_dedup_key *k;
    int rc;

    if (!out)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0, "out is NULL");
    *out = NULL;
    switch (kind) {
    case KSAFE_DEDUP_KEY_RECORD_KEY:
    case KSAFE_DEDUP_KEY_POSITION:
        if (arg)
            return ksafe__error_set(
                err, KSAFE_EINVAL, 0, 0,
                "dedup key kind %d takes no argument (got \"%.64s\")",
                (int)kind, arg);
        break;
    case KSAFE_DEDUP_KEY_HEADER:
    case KSAFE_DEDUP_KEY_JSON_FIELD:
        if (!arg || !*arg)
            return ksafe__error_set(
                err, KSAFE_EINVAL, 0, 0, "dedup key %s needs a non-empty %s",
                kind == KSAFE_DEDUP_KEY_HEADER ? "header" : "JSON field",
                kind == KSAFE_DEDUP_KEY_HEADER ? "header name" : "path");
        break;
    case KSAFE_DEDUP_KEY_CUSTOM:
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "KSAFE_DEDUP_KEY_CUSTOM: use "
                                "ksafe_dedup_key_new_custom()");
    default:
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "unknown dedup key kind %d", (int)kind);
    }
    k = calloc(1, sizeof(*k));
    if (!k)
        return ksafe__error_set(err, KSAFE_ENOMEM, 0, 0, "out of memory");
    k->kind = kind;
    if (arg && !(k->arg = ksafe__strdup(arg))) {
        free(k);
        return ksafe__error_set(err, KSAFE_ENOMEM, 0, 0, "out of memory");
    }
    if (kind == KSAFE_DEDUP_KEY_JSON_FIELD && (rc = parse_path(k, err))) {
        ksafe_dedup_key_free(k);
        return rc;
    }
    *out = k;
    return 0;
}

int ksafe_dedup_key_new_custom(ksafe_dedup_key **out, ksafe_dedup_key_fn fn,
                               void *payload, ksafe_error *err)
{
    ksafe_dedup_key *k;

    if (!out)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0, "out is NULL");
    *out = NULL;
    if (!fn)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "custom dedup key: fn is NULL");
    k = calloc(1, sizeof(*k));
    if (!k)
        return ksafe__error_set(err, KSAFE_ENOMEM, 0, 0, "out of memory");
    k->kind = KSAFE_DEDUP_KEY_CUSTOM;
    k->fn = fn;
    k->payload = payload;
    *out = k;
    return 0;
}

int ksafe_dedup_key_parse(ksafe_dedup_key **out, const char *spec,
                          ksafe_error *err)
{
    if (out)
        *out = NULL;
    if (!spec)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "dedup key spec is NULL");
    if (!strcmp(spec, "key"))
        return ksafe_dedup_key_new(out, KSAFE_DEDUP_KEY_RECORD_KEY, NULL, err);
    if (!strcmp(spec, "position"))
        return ksafe_dedup_key_new(out, KSAFE_DEDUP_KEY_POSITION, NULL, err);
    if (!strncmp(spec, "header:", 7))
        return ksafe_dedup_key_new(out, KSAFE_DEDUP_KEY_HEADER, spec + 7, err);
    if (!strncmp(spec, "json:", 5))
        return ksafe_dedup_key_new(out, KSAFE_DEDUP_KEY_JSON_FIELD, spec + 5,
                                   err);
    return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                            "dedup key spec \"%.64s\": expected \"key\", "
                            "\"position\", \"header:<name>\" or "
                            "\"json:<path>\"",
                            spec);
}

ksafe_dedup_key_kind ksafe_dedup_key_kind_of(const ksafe_dedup_key *k)
{
    return k ? k->kind : KSAFE_DEDUP_KEY_RECORD_KEY;
}

void ksafe_dedup_key_free(ksafe_dedup_key *k)
{
    size_t i;

    if (!k)
        return;
    for (i = 0; i < k->n_steps; i++)
        free(k->steps[i].name);
    free(k->steps);
    free(k->arg);
    free(k);
}

/* Fills err with "<topic> [<partition>] @ <offset>: <what>". */
KSAFE__PRINTF(3, 4)
static int record_error(ksafe_error *err, const ksafe_message *msg,
                        const char *fmt, ...)
{
    char what[200];
    const char *topic = ksafe_message_topic(msg);
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                            "record %.80s [%" PRId32 "] @ %" PRId64 ": %s",
                            topic ? topic : "(unknown topic)",
                            ksafe_message_partition(msg),
                            ksafe_message_offset(msg), what);
}

static int put(const ksafe_message *msg, const void *src, size_t n, void *buf,
               size_t size, size_t *len, const char *what, ksafe_error *err)
{
    if (n > size)
        return record_error(err, msg,
                            "dedup key (%s) is %zu bytes, longer than the "
                            "%zu-byte key buffer",
                            what, n, size);
    memcpy(buf, src, n);
    *len = n;
    return 0;
}

static const char *json_type_name(const json_t *j)
{
    switch (json_typeof(j)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a real number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    case JSON_NULL: return "null";
    }
    return "unknown";
}

static int extract_json(const ksafe_dedup_key *k, const ksafe_message *msg,
                        void *buf, size_t size, size_t *len, ksafe_error *err)
{
    size_t vlen = 0, i;
    const void *v = ksafe_message_value(msg, &vlen);
    json_error_t jerr;
    json_t *root, *cur;
    int rc;

    if (!v || vlen == 0)
        return record_error(err, msg,
                            "value is empty, not JSON (dedup key json:%s)",
                            k->arg);
    root = json_loadb(v, vlen, JSON_DECODE_ANY,
                      &jerr);
    if (!root)
        return record_error(err, msg,
                            "value is not JSON (line %d column %d: %.80s); "
                            "dedup key json:%s",
                            jerr.line, jerr.column, jerr.text, k->arg);
    cur = root;
    for (i = 0; i < k->n_steps && cur; i++) {
        if (json_is_object(cur))
            cur = json_object_get(cur, k->steps[i].name);
        else if (json_is_array(cur) && k->steps[i].index >= 0)
            cur = json_array_get(cur, (size_t)k->steps[i].index);
        else
            cur = NULL;
    }
    if (!cur) {
        rc = record_error(err, msg, "JSON value has no field \"%s\"", k->arg);
    } else if (json_is_string(cur) && json_string_length(cur) == 0) {
        /* as an empty record key or header: no key, and a store would
         * refuse it at claim time, far from the record's name */
        rc = record_error(err, msg, "JSON field \"%s\" is an empty string",
                          k->arg);
    } else if (json_is_string(cur)) {
        rc = put(msg, json_string_value(cur), json_string_length(cur), buf,
                 size, len, k->arg, err);
    } else if (json_is_integer(cur)) {
        char digits[32];
        int n = snprintf(digits, sizeof(digits), "%" JSON_INTEGER_FORMAT,
                         json_integer_value(cur));
        rc = put(msg, digits, (size_t)n, buf, size, len, k->arg, err);
    } else {
        rc = record_error(err, msg,
                          "JSON field \"%s\" is %s, not a string or integer",
                          k->arg, json_type_name(cur));
    }
    json_decref(root);
    return rc;
}

int ksafe_dedup_key_extract(const ksafe_dedup_key *k, const ksafe_message *msg,
                            void *buf, size_t size, size_t *len,
                            ksafe_error *err)
{
    const void *p;
    size_t n = 0;

    if (!k || !msg || !buf || !len)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "ksafe_dedup_key_extract: %s is NULL",
                                !k ? "key" : !msg ? "msg" : !buf ? "buf"
                                                                 : "len");
    *len = 0;
    switch (k->kind) {
    case KSAFE_DEDUP_KEY_RECORD_KEY:
        p = ksafe_message_key(msg, &n);
        if (!p || n == 0)
            return record_error(err, msg, "record has no key (dedup key: "
                                          "record key)");
        return put(msg, p, n, buf, size, len, "record key", err);
    case KSAFE_DEDUP_KEY_HEADER:
        if (ksafe_message_header(msg, k->arg, &p, &n))
            return record_error(err, msg, "record has no header \"%s\"",
                                k->arg);
        if (!p || n == 0)
            return record_error(err, msg, "header \"%s\" is empty", k->arg);
        return put(msg, p, n, buf, size, len, k->arg, err);
    case KSAFE_DEDUP_KEY_JSON_FIELD:
        return extract_json(k, msg, buf, size, len, err);
    case KSAFE_DEDUP_KEY_POSITION: {
        const char *topic = ksafe_message_topic(msg);
        char tmp[KSAFE_DEDUP_KEY_MAX];
        int w;

        if (!topic)
            return record_error(err, msg, "record has no topic");
        w = snprintf(tmp, sizeof(tmp), "%s/%" PRId32 "/%" PRId64, topic,
                     ksafe_message_partition(msg), ksafe_message_offset(msg));
        if (w < 0 || (size_t)w >= sizeof(tmp))
            return record_error(err, msg, "topic name too long for a key");
        return put(msg, tmp, (size_t)w, buf, size, len, "position", err);
    }
    case KSAFE_DEDUP_KEY_CUSTOM: {
        ksafe_error mine;
        int rc;

        memset(&mine, 0, sizeof(mine));
        rc = k->fn(msg, buf, size, len, &mine, k->payload);
        if (rc == 0 && (*len == 0 || *len > size))
            return record_error(err, msg,
                                "dedup key function returned a %zu-byte key "
                                "(must be 1..%zu)",
                                *len, size);
        if (rc == 0)
            return 0;
        if (rc > 0)
            rc = KSAFE_EINVAL;
        if (mine.code == 0 || mine.message[0] == '\0')
            return record_error(err, msg, "dedup key function failed: %s",
                                ksafe_strerror(rc));
        if (err)
            *err = mine;
        return rc;
    }
    }
    return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                            "unknown dedup key kind %d", (int)k->kind);
}

/* ---- the store wrapper ------------------------------------------------- */

typedef struct pending_offset {
    char *group;
    char *topic;
    int32_t partition;
    int64_t next_offset;
    int active;
} pending_offset;

struct ksafe_dedup_store {
    ksafe_dedup_store_ops ops;
    void *self;
    int in_txn;
    int poisoned;       /* a store call failed in this transaction */
    uint64_t seed;
    uint64_t *open;     /* hashes of claims not yet marked or released */
    size_t n_open, cap_open;
    pending_offset *pend;
    size_t n_pend, cap_pend;
    ksafe_dedup_stats st;
    int caller_txn;     /* a SQL store in KSAFE_DEDUP_TXN_CALLER mode */
};

int ksafe_dedup_store_new(ksafe_dedup_store **out,
                          const ksafe_dedup_store_ops *ops, void *self,
                          ksafe_error *err)
{
    ksafe_dedup_store *s;
    const char *missing = NULL;

    if (!out)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0, "out is NULL");
    *out = NULL;
    if (!ops)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0, "ops is NULL");
    if (ops->version != KSAFE_DEDUP_STORE_OPS_VERSION)
        return ksafe__error_set(err, KSAFE_EVERSION, 0, 0,
                                "dedup store ops version %u unknown "
                                "(this library knows %u)",
                                ops->version, KSAFE_DEDUP_STORE_OPS_VERSION);
    if (!ops->name) missing = "name";
    else if (!ops->begin) missing = "begin";
    else if (!ops->claim) missing = "claim";
    else if (!ops->mark) missing = "mark";
    else if (!ops->release) missing = "release";
    else if (!ops->save_offset) missing = "save_offset";
    else if (!ops->load_offset) missing = "load_offset";
    else if (!ops->commit) missing = "commit";
    else if (!ops->rollback) missing = "rollback";
    else if (!ops->close) missing = "close";
    if (missing)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "dedup store ops: %s is required", missing);
    s = calloc(1, sizeof(*s));
    if (!s) {
        ops->close(self);
        return ksafe__error_set(err, KSAFE_ENOMEM, 0, 0, "out of memory");
    }
    s->ops = *ops;
    s->self = self;
    s->seed = ksafe__dedup_seed();
    *out = s;
    return 0;
}

int ksafe__dedup_store_new_sql(ksafe_dedup_store **out,
                               const ksafe_dedup_store_ops *ops, void *self,
                               ksafe_dedup_txn_mode mode, ksafe_error *err)
{
    int rc = ksafe_dedup_store_new(out, ops, self, err);

    if (!rc)
        (*out)->caller_txn = mode == KSAFE_DEDUP_TXN_CALLER;
    return rc;
}

int ksafe__dedup_store_caller_txn(const ksafe_dedup_store *s)
{
    return s && s->caller_txn;
}

static int need_txn(const ksafe_dedup_store *s, const char *call,
                    ksafe_error *err)
{
    if (!s->in_txn)
        return ksafe__error_set(err, KSAFE_ESTATE, 0, 0,
                                "%s: no transaction (call ksafe_dedup_begin "
                                "first)",
                                call);
    if (s->poisoned)
        return ksafe__error_set(err, KSAFE_ESTATE, 0, 0,
                                "%s: a %s store call failed in this "
                                "transaction; roll it back",
                                call, s->ops.name);
    return 0;
}

static int check_key(const ksafe_dedup_store *s, const void *key, size_t len,
                     const char *call, ksafe_error *err)
{
    if (!s)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0, "%s: store is NULL",
                                call);
    if (!key || len == 0)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "%s: key is empty", call);
    return need_txn(s, call, err);
}

/* A store failure other than a bad argument leaves the transaction in an
 * unknown state (PostgreSQL aborts it): only rollback may follow. */
static int store_failed(ksafe_dedup_store *s, int rc, ksafe_error *err)
{
    if (rc != KSAFE_EINVAL)
        s->poisoned = 1;
    if (err && err->code == 0)
        ksafe__error_set(err, rc, 0, 0, "%s store: %s", s->ops.name,
                         ksafe_strerror(rc));
    return rc;
}

/* Forgets an open claim; 0 when `h` was not one. Usually one claim is open
 * at a time, so the scan is short. */
static int resolve_open(ksafe_dedup_store *s, uint64_t h)
{
    size_t i;

    for (i = s->n_open; i-- > 0;) {
        if (s->open[i] == h) {
            s->open[i] = s->open[--s->n_open];
            return 1;
        }
    }
    return 0;
}

static int is_open(const ksafe_dedup_store *s, uint64_t h)
{
    size_t i;

    for (i = 0; i < s->n_open; i++)
        if (s->open[i] == h)
            return 1;
    return 0;
}

int ksafe_dedup_begin(ksafe_dedup_store *s, ksafe_error *err)
{
    int rc;

    if (!s)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0, "store is NULL");
    if (s->in_txn)
        return ksafe__error_set(err, KSAFE_ESTATE, 0, 0,
                                "ksafe_dedup_begin: a transaction is open");
    if ((rc = s->ops.begin(s->self, err)))
        return rc;
    s->in_txn = 1;
    s->poisoned = 0;
    s->n_open = 0;
    return 0;
}

int ksafe_dedup_claim(ksafe_dedup_store *s, const void *key, size_t len,
                      ksafe_dedup_status *out, ksafe_error *err)
{
    int dup = 0, rc;

    if (!out)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "ksafe_dedup_claim: out is NULL");
    *out = KSAFE_DEDUP_DUPLICATE;
    if ((rc = check_key(s, key, len, "ksafe_dedup_claim", err)))
        return rc;
    if (s->n_open == s->cap_open) {
        size_t cap = s->cap_open ? s->cap_open * 2 : 16;
        uint64_t *o = realloc(s->open, cap * sizeof(*o));
        if (!o)
            return ksafe__error_set(err, KSAFE_ENOMEM, 0, 0, "out of memory");
        s->open = o;
        s->cap_open = cap;
    }
    if ((rc = s->ops.claim(s->self, key, len, &dup, err)))
        return store_failed(s, rc, err);
    if (dup) {
        s->st.duplicates++;
        return 0;
    }
    s->open[s->n_open++] = ksafe__dedup_hash(key, len, s->seed);
    s->st.claimed++;
    *out = KSAFE_DEDUP_NEW;
    return 0;
}

int ksafe_dedup_mark(ksafe_dedup_store *s, const void *key, size_t len,
                     ksafe_error *err)
{
    int rc;

    if ((rc = check_key(s, key, len, "ksafe_dedup_mark", err)))
        return rc;
    if ((rc = s->ops.mark(s->self, key, len, err)))
        return store_failed(s, rc, err);
    resolve_open(s, ksafe__dedup_hash(key, len, s->seed));
    s->st.marked++;
    return 0;
}

int ksafe_dedup_release(ksafe_dedup_store *s, const void *key, size_t len,
                        ksafe_error *err)
{
    int rc;

    uint64_t h;

    if ((rc = check_key(s, key, len, "ksafe_dedup_release", err)))
        return rc;
    h = ksafe__dedup_hash(key, len, s->seed);
    /* Only an open claim may be dropped: releasing a done key would let a
     * processed record through again. */
    if (!is_open(s, h))
        return ksafe__error_set(err, KSAFE_ESTATE, 0, 0,
                                "ksafe_dedup_release: the key is not claimed "
                                "(and unmarked) in this transaction");
    if ((rc = s->ops.release(s->self, key, len, err)))
        return store_failed(s, rc, err);
    resolve_open(s, h);
    s->st.released++;
    return 0;
}

int ksafe_dedup_store_offset(ksafe_dedup_store *s, const char *group,
                             const char *topic, int32_t partition,
                             int64_t next_offset, ksafe_error *err)
{
    pending_offset *p = NULL;
    size_t i;
    int rc;

    if (!s)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0, "store is NULL");
    if (!group || !*group || !topic || !*topic || partition < 0 ||
        next_offset < 0)
        return ksafe__error_set(
            err, KSAFE_EINVAL, 0, 0,
            "ksafe_dedup_store_offset: %s",
            !group || !*group ? "group is empty"
            : !topic || !*topic ? "topic is empty"
            : partition < 0 ? "partition is negative"
                            : "next_offset is negative");
    if ((rc = need_txn(s, "ksafe_dedup_store_offset", err)))
        return rc;
    for (i = 0; i < s->n_pend; i++) {
        pending_offset *c = &s->pend[i];
        if (c->partition == partition && !strcmp(c->topic, topic) &&
            !strcmp(c->group, group)) {
            p = c;
            break;
        }
    }
    if (!p) {
        /* Entries are kept across batches: one allocation per partition
         * ever seen, none per record. */
        if (s->n_pend == s->cap_pend) {
            size_t cap = s->cap_pend ? s->cap_pend * 2 : 8;
            pending_offset *n = realloc(s->pend, cap * sizeof(*n));
            if (!n)
                return ksafe__error_set(err, KSAFE_ENOMEM, 0, 0,
                                        "out of memory");
            s->pend = n;
            s->cap_pend = cap;
        }
        p = &s->pend[s->n_pend];
        memset(p, 0, sizeof(*p));
        p->group = ksafe__strdup(group);
        p->topic = ksafe__strdup(topic);
        if (!p->group || !p->topic) {
            free(p->group);
            free(p->topic);
            return ksafe__error_set(err, KSAFE_ENOMEM, 0, 0, "out of memory");
        }
        p->partition = partition;
        s->n_pend++;
    }
    if (!p->active || next_offset > p->next_offset)
        p->next_offset = next_offset;
    p->active = 1;
    return 0;
}

int ksafe_dedup_load_offsets(ksafe_dedup_store *s, const char *group,
                             rd_kafka_topic_partition_list_t *parts,
                             size_t *found, ksafe_error *err)
{
    size_t n = 0;
    int i, rc;

    if (found)
        *found = 0;
    if (!s || !group || !*group || !parts)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "ksafe_dedup_load_offsets: %s",
                                !s ? "store is NULL"
                                : !parts ? "parts is NULL"
                                         : "group is empty");
    if (s->in_txn)
        return ksafe__error_set(err, KSAFE_ESTATE, 0, 0,
                                "ksafe_dedup_load_offsets: a transaction is "
                                "open (load offsets on assignment, between "
                                "batches)");
    for (i = 0; i < parts->cnt; i++) {
        rd_kafka_topic_partition_t *tp = &parts->elems[i];
        int64_t off = -1;

        if ((rc = s->ops.load_offset(s->self, group, tp->topic, tp->partition,
                                     &off, err)))
            return rc;
        if (off >= 0) {
            tp->offset = off;
            n++;
        }
    }
    if (found)
        *found = n;
    return 0;
}

static void end_txn(ksafe_dedup_store *s)
{
    size_t i;

    for (i = 0; i < s->n_pend; i++)
        s->pend[i].active = 0;
    s->in_txn = 0;
    s->poisoned = 0;
    s->n_open = 0;
}

int ksafe_dedup_rollback(ksafe_dedup_store *s, ksafe_error *err)
{
    int rc;

    if (!s)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0, "store is NULL");
    if (!s->in_txn)
        return ksafe__error_set(err, KSAFE_ESTATE, 0, 0,
                                "ksafe_dedup_rollback: no transaction");
    rc = s->ops.rollback(s->self, err);
    end_txn(s);
    s->st.rollbacks++;
    return rc;
}

int ksafe_dedup_commit(ksafe_dedup_store *s, ksafe_error *err)
{
    size_t i;
    int rc;

    if (!s)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0, "store is NULL");
    if ((rc = need_txn(s, "ksafe_dedup_commit", err)))
        return rc;
    if (s->n_open)
        return ksafe__error_set(err, KSAFE_ESTATE, 0, 0,
                                "ksafe_dedup_commit: %zu claim(s) neither "
                                "marked nor released; committing would skip "
                                "those records forever",
                                s->n_open);
    for (i = 0; i < s->n_pend; i++) {
        pending_offset *p = &s->pend[i];
        if (!p->active)
            continue;
        if ((rc = s->ops.save_offset(s->self, p->group, p->topic,
                                     p->partition, p->next_offset, err)))
            goto failed;
    }
    if ((rc = s->ops.commit(s->self, err)))
        goto failed;
    end_txn(s);
    s->st.commits++;
    return 0;

failed:
    {
        ksafe_error ignored;
        s->ops.rollback(s->self, &ignored);
    }
    end_txn(s);
    s->st.rollbacks++;
    return rc;
}

int ksafe_dedup_expire(ksafe_dedup_store *s, int64_t max_age_ms,
                       uint64_t *removed, ksafe_error *err)
{
    uint64_t n = 0;
    int rc;

    if (removed)
        *removed = 0;
    if (!s)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0, "store is NULL");
    if (max_age_ms <= 0)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "ksafe_dedup_expire: max_age_ms must be > 0 "
                                "(got %" PRId64 ")",
                                max_age_ms);
    if (!s->ops.expire)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "the %s store cannot expire keys",
                                s->ops.name);
    if (s->in_txn)
        return ksafe__error_set(err, KSAFE_ESTATE, 0, 0,
                                "ksafe_dedup_expire: a transaction is open");
    if ((rc = s->ops.expire(s->self, max_age_ms, &n, err)))
        return rc;
    s->st.expired += n;
    if (removed)
        *removed = n;
    return 0;
}

int ksafe_dedup_in_transaction(const ksafe_dedup_store *s)
{
    return s ? s->in_txn : 0;
}

void ksafe_dedup_stats_get(const ksafe_dedup_store *s, ksafe_dedup_stats *out)
{
    if (!out)
        return;
    memset(out, 0, sizeof(*out));
    if (!s)
        return;
    *out = s->st;
    if (s->ops.stats)
        s->ops.stats(s->self, out);
}

const char *ksafe_dedup_store_name(const ksafe_dedup_store *s)
{
    return s ? s->ops.name : NULL;
}

void ksafe_dedup_store_free(ksafe_dedup_store *s)
{
    size_t i;

    if (!s)
        return;
    if (s->in_txn) {
        ksafe_error ignored;
        s->ops.rollback(s->self, &ignored);
    }
    s->ops.close(s->self);
    for (i = 0; i < s->n_pend; i++) {
        free(s->pend[i].group);
        free(s->pend[i].topic);
    }
    free(s->pend);
    free(s->open);
    free(s);
}

/* ---- options init and stores left out of the build --------------------- */

int ksafe_dedup_sqlite_options_init(ksafe_dedup_sqlite_options *opts,
                                    unsigned int version)
{
    ksafe_dedup_sqlite_options d = KSAFE_DEDUP_SQLITE_OPTIONS_INIT;

    if (!opts)
        return KSAFE_EINVAL;
    if (version != KSAFE_DEDUP_SQLITE_OPTIONS_VERSION)
        return KSAFE_EVERSION;
    *opts = d;
    return 0;
}

int ksafe_dedup_pg_options_init(ksafe_dedup_pg_options *opts,
                                unsigned int version)
{
    ksafe_dedup_pg_options d = KSAFE_DEDUP_PG_OPTIONS_INIT;

    if (!opts)
        return KSAFE_EINVAL;
    if (version != KSAFE_DEDUP_PG_OPTIONS_VERSION)
        return KSAFE_EVERSION;
    *opts = d;
    return 0;
}

int ksafe_dedup_has_sqlite(void)
{
#ifdef KSAFE_HAVE_SQLITE
    return 1;
#else
    return 0;
#endif
}

int ksafe_dedup_has_postgresql(void)
{
#ifdef KSAFE_HAVE_POSTGRESQL
    return 1;
#else
    return 0;
#endif
}

#ifndef KSAFE_HAVE_SQLITE
int ksafe_dedup_sqlite_new(ksafe_dedup_store **out,
                           const ksafe_dedup_sqlite_options *opts,
                           ksafe_error *err)
{
    KSAFE__UNUSED(opts);
    if (out)
        *out = NULL;
    return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                            "ksafe was built without SQLite support "
                            "(meson -Dsqlite=enabled, libsqlite3-dev)");
}
#endif

#ifndef KSAFE_HAVE_POSTGRESQL
int ksafe_dedup_pg_new(ksafe_dedup_store **out,
                       const ksafe_dedup_pg_options *opts, ksafe_error *err)
{
    KSAFE__UNUSED(opts);
    if (out)
        *out = NULL;
    return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                            "ksafe was built without PostgreSQL support "
                            "(meson -Dpostgresql=enabled, libpq-dev)");
}
#endif
