/*
 * tests/fuzz/fuzz_dedup_key.c - the dedup key extractors (ksafe/dedup.h):
 * the spec or path string and the record they key, both from the input.
 *
 * Input: two flag bytes, then NUL-separated fields: the extractor spec
 * ("key", "position", "header:<name>", "json:<path>", or anything), the
 * record key, the value, then header name/value pairs.
 *   byte 0: bits 0-1 topic, bits 2-4 key buffer size, bit 5 no record key,
 *           bit 6 no value (a tombstone), bit 7 ksafe_dedup_key_new() with
 *           the kind from byte 1 (invalid kinds too) instead of _parse()
 *   byte 1: partition; the kind for bit 7
 *
 * Records with headers exist only inside librdkafka, so each one is
 * produced to a producer that has no broker, purged at once, and keyed in
 * its delivery report, where the message is the one a consumer would see
 * (key, value, headers, topic, partition). Contract checked: 0 or a negative
 * KSAFE_E* code with a message naming the record; a key of 1 to `size`
 * bytes written within the buffer (allocated at exactly `size`, so ASan
 * sees a write past it); every extractor gives exactly the bytes it names
 * (for json:<path> worked out here with jansson); nothing leaks.
 */
#include <inttypes.h>

#include <jansson.h>
#include <librdkafka/rdkafka.h>

#include "fuzz.h"

#define MAX_HEADERS 16

static const size_t buf_sizes[8] = {KSAFE_DEDUP_KEY_MAX, 1, 2, 8,
                                    16, 64, 4096, 0};

typedef struct field {
    const char *p;
    size_t n;
} field;

typedef struct input {
    const ksafe_dedup_key *k;
    int kind; /* expected kind, or -1: the extractor was refused */
    size_t size;
    field key, value;
    int has_key, has_value;
    field hname[MAX_HEADERS], hvalue[MAX_HEADERS];
    size_t n_headers;
    const char *arg; /* the header name or JSON path */
    int keyed;              /* the delivery report came and was checked */
} input;

/*
 * What json:<path> must give, worked out apart from the library: 1 and the
 * bytes (in `digits` for an integer; `*root` to release), or 0 when the
 * record cannot be keyed.
 */
static int json_expect(const char *path, const void *v, size_t n,
                       const void **want, size_t *want_len, char *digits,
                       size_t dsize, json_t **root)
{
    json_t *cur;
    const char *p = path;

    *root = NULL;
    if (!v || !n || !(*root = json_loadb(v, n, JSON_DECODE_ANY, NULL)))
        return 0;
    cur = *root;
    for (;;) {
        const char *dot = strchr(p, '.');
        size_t len = dot ? (size_t)(dot - p) : strlen(p), i;
        char name[256];
        int all_digits = len > 0;

        if (len >= sizeof(name))
            return 0;
        memcpy(name, p, len);
        name[len] = '\0';
        for (i = 0; i < len; i++)
            all_digits = all_digits && name[i] >= '0' && name[i] <= '9';
        if (json_is_object(cur))
            cur = json_object_get(cur, name);
        else if (json_is_array(cur) && all_digits && len < 10)
            cur = json_array_get(cur, (size_t)strtol(name, NULL, 10));
        else
            cur = NULL;
        if (!cur)
            return 0;
        if (!dot)
            break;
        p = dot + 1;
    }
    if (json_is_string(cur) && json_string_length(cur) > 0) {
        *want = json_string_value(cur);
        *want_len = json_string_length(cur);
        return 1;
    }
    if (json_is_integer(cur)) {
        *want_len = (size_t)snprintf(digits, dsize, "%" JSON_INTEGER_FORMAT,
                                     json_integer_value(cur));
        *want = digits;
        return 1;
    }
    return 0;
}

static rd_kafka_t *rk;
static rd_kafka_topic_t *topics[4];

static void check_extract(const input *in, const ksafe_message *msg)
{
    uint8_t *buf = malloc(in->size ? in->size : 1);
    size_t len = 12345, want_len = 0;
    const void *want = NULL;
    char pos[600];
    json_t *root = NULL;
    ksafe_error err;
    int rc, rc2, expect_ok = -1;

    FUZZ_ASSERT(buf != NULL, "out of memory");
    memset(&err, 0xa5, sizeof(err));
    rc = ksafe_dedup_key_extract(in->k, msg, buf, in->size, &len, &err);
    fuzz_check_rc("ksafe_dedup_key_extract", rc, &err);
    if (rc) {
        FUZZ_ASSERT(rc == KSAFE_EINVAL || rc == KSAFE_ENOMEM,
                    "extract: code %d: %s", rc, err.message);
        FUZZ_ASSERT(strncmp(err.message, "record ", 7) == 0,
                    "extract: message does not name the record: \"%s\"",
                    err.message);
    } else {
        FUZZ_ASSERT(len >= 1 && len <= in->size,
                    "extract gave a %zu-byte key for a %zu-byte buffer "
                    "(a key is 1 byte or more)",
                    len, in->size);
    }

    switch (in->kind) {
    case KSAFE_DEDUP_KEY_RECORD_KEY:
        want = ksafe_message_key(msg, &want_len);
        expect_ok = want && want_len >= 1;
        break;
    case KSAFE_DEDUP_KEY_HEADER: {
        size_t i;
        for (i = in->n_headers; i-- > 0;)
            if (strlen(in->arg) == in->hname[i].n &&
                memcmp(in->arg, in->hname[i].p, in->hname[i].n) == 0) {
                want = in->hvalue[i].p;
                want_len = in->hvalue[i].n;
                break;
            }
        expect_ok = want && want_len >= 1;
        break;
    }
    case KSAFE_DEDUP_KEY_POSITION:
        want_len = (size_t)snprintf(
            pos, sizeof(pos), "%s/%" PRId32 "/%" PRId64,
            ksafe_message_topic(msg), ksafe_message_partition(msg),
            ksafe_message_offset(msg));
        want = pos;
        expect_ok = 1;
        break;
    case KSAFE_DEDUP_KEY_JSON_FIELD: {
        const void *v = ksafe_message_value(msg, &want_len);
        expect_ok = json_expect(in->arg, v, want_len, &want, &want_len, pos,
                                sizeof(pos), &root);
        break;
    }
    default:
        break;
    }
    if (expect_ok >= 0) {
        int fits = expect_ok && want_len <= in->size;
        FUZZ_ASSERT((rc == 0) == fits,
                    "kind %d: extract returned %d (%s), expected %s", in->kind,
                    rc, rc ? err.message : "", fits ? "a key" : "an error");
        if (fits)
            FUZZ_ASSERT(len == want_len && memcmp(buf, want, len) == 0,
                        "kind %d: wrong key bytes (%zu, expected %zu)",
                        in->kind, len, want_len);
    }

    json_decref(root);

    rc2 = ksafe_dedup_key_extract(in->k, msg, buf, in->size, &len, NULL);
    FUZZ_ASSERT(rc2 == rc, "extract gave %d with err, %d without", rc, rc2);
    free(buf);
}

static void on_report(rd_kafka_t *h, const rd_kafka_message_t *m,
                      void *opaque)
{
    input *in = m->_private;

    (void)h;
    (void)opaque;
    if (!in)
        return;
    check_extract(in, (const ksafe_message *)m);
    in->keyed = 1;
}

/* A producer that never connects: records only reach delivery reports. */
static void setup(void)
{
    static const char *const names[4] = {"t", "orders.v1", NULL, "a-b_c"};
    char errstr[512], longest[250];
    rd_kafka_conf_t *conf;
    int i;

    if (rk)
        return;
    conf = rd_kafka_conf_new();
    if (rd_kafka_conf_set(conf, "log_level", "0", errstr, sizeof(errstr)) ||
        rd_kafka_conf_set(conf, "message.timeout.ms", "3600000", errstr,
                          sizeof(errstr))) {
        fprintf(stderr, "conf: %s\n", errstr);
        abort();
    }
    rd_kafka_conf_set_dr_msg_cb(conf, on_report);
    rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    FUZZ_ASSERT(rk != NULL, "rd_kafka_new: %s", errstr);
    memset(longest, 'x', 249); /* Kafka's longest topic name */
    longest[249] = '\0';
    for (i = 0; i < 4; i++) {
        topics[i] = rd_kafka_topic_new(rk, names[i] ? names[i] : longest,
                                       NULL);
        FUZZ_ASSERT(topics[i] != NULL, "rd_kafka_topic_new");
    }
}

/* Splits data at NULs into fields; the last one runs to the end. */
static size_t split(const uint8_t *data, size_t size, field *out, size_t max)
{
    size_t n = 0, start = 0, i;

    for (i = 0; i < size && n + 1 < max; i++)
        if (data[i] == '\0') {
            out[n].p = (const char *)data + start;
            out[n].n = i - start;
            n++;
            start = i + 1;
        }
    out[n].p = (const char *)data + start;
    out[n].n = size - start;
    return n + 1;
}

static void key_record(input *in, rd_kafka_topic_t *rkt, int32_t partition)
{
    rd_kafka_vu_t vus[5 + MAX_HEADERS];
    char names[MAX_HEADERS][256];
    rd_kafka_error_t *e;
    size_t nv = 0, i;
    int polls;

    vus[nv].vtype = RD_KAFKA_VTYPE_RKT;
    vus[nv++].u.rkt = rkt;
    vus[nv].vtype = RD_KAFKA_VTYPE_PARTITION;
    vus[nv++].u.i32 = partition;
    vus[nv].vtype = RD_KAFKA_VTYPE_KEY;
    vus[nv].u.mem.ptr = in->has_key ? (void *)in->key.p : NULL;
    vus[nv++].u.mem.size = in->has_key ? in->key.n : 0;
    vus[nv].vtype = RD_KAFKA_VTYPE_VALUE;
    vus[nv].u.mem.ptr = in->has_value ? (void *)in->value.p : NULL;
    vus[nv++].u.mem.size = in->has_value ? in->value.n : 0;
    vus[nv].vtype = RD_KAFKA_VTYPE_OPAQUE;
    vus[nv++].u.ptr = in;
    for (i = 0; i < in->n_headers; i++) {
        size_t n = in->hname[i].n < 255 ? in->hname[i].n : 255;
        memcpy(names[i], in->hname[i].p, n);
        names[i][n] = '\0';
        in->hname[i].n = n;
        vus[nv].vtype = RD_KAFKA_VTYPE_HEADER;
        vus[nv].u.header.name = names[i];
        vus[nv].u.header.val = in->hvalue[i].p;
        vus[nv++].u.header.size = (ssize_t)in->hvalue[i].n;
    }
    e = rd_kafka_produceva(rk, vus, nv);
    FUZZ_ASSERT(e == NULL, "produceva: %s", rd_kafka_error_string(e));
    FUZZ_ASSERT(rd_kafka_purge(rk, RD_KAFKA_PURGE_F_QUEUE) == 0, "purge");
    for (polls = 0; !in->keyed && polls < 1000; polls++)
        rd_kafka_poll(rk, polls ? 10 : 0);
    FUZZ_ASSERT(in->keyed, "no delivery report for the purged record");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    field f[3 + 2 * MAX_HEADERS];
    ksafe_dedup_key *k = NULL;
    ksafe_error err;
    char *spec;
    size_t nf, i;
    input in;
    int rc, rc2, kind;

    if (size < 2)
        return 0;
    setup();
    memset(&in, 0, sizeof(in));
    nf = split(data + 2, size - 2, f, sizeof(f) / sizeof(f[0]));
    spec = malloc(f[0].n + 1);
    FUZZ_ASSERT(spec != NULL, "out of memory");
    memcpy(spec, f[0].p, f[0].n);
    spec[f[0].n] = '\0';

    memset(&err, 0xa5, sizeof(err));
    if (data[0] & 0x80) {
        kind = (int)(data[1] % 7) - 1; /* -1 and 5 are no kind */
        rc = ksafe_dedup_key_new(&k, (ksafe_dedup_key_kind)kind,
                                 f[0].n ? spec : NULL, &err);
        fuzz_check_rc("ksafe_dedup_key_new", rc, &err);
        in.arg = spec;
    } else {
        rc = ksafe_dedup_key_parse(&k, spec, &err);
        fuzz_check_rc("ksafe_dedup_key_parse", rc, &err);
        kind = !strcmp(spec, "key")             ? KSAFE_DEDUP_KEY_RECORD_KEY
               : !strcmp(spec, "position")      ? KSAFE_DEDUP_KEY_POSITION
               : !strncmp(spec, "header:", 7)   ? KSAFE_DEDUP_KEY_HEADER
               : !strncmp(spec, "json:", 5)     ? KSAFE_DEDUP_KEY_JSON_FIELD
                                                : -1;
        in.arg = kind == KSAFE_DEDUP_KEY_JSON_FIELD ? spec + 5
                 : kind == KSAFE_DEDUP_KEY_HEADER   ? spec + 7
                                                    : spec;
    }
    FUZZ_ASSERT((rc == 0) == (k != NULL), "rc %d but key %p", rc, (void *)k);
    if (rc) {
        FUZZ_ASSERT(rc == KSAFE_EINVAL || rc == KSAFE_ENOMEM,
                    "key: code %d: %s", rc, err.message);
        rc2 = (data[0] & 0x80)
                  ? ksafe_dedup_key_new(&k, (ksafe_dedup_key_kind)kind,
                                        f[0].n ? spec : NULL, NULL)
                  : ksafe_dedup_key_parse(&k, spec, NULL);
        FUZZ_ASSERT(rc2 == rc && k == NULL, "without err: %d", rc2);
        free(spec);
        return 0;
    }
    FUZZ_ASSERT(kind >= 0 && (int)ksafe_dedup_key_kind_of(k) == kind,
                "spec \"%s\": kind %d, expected %d", spec,
                (int)ksafe_dedup_key_kind_of(k), kind);

    in.k = k;
    in.kind = kind;
    in.size = buf_sizes[(data[0] >> 2) & 7];
    in.has_key = !(data[0] & 0x20) && nf > 1;
    in.has_value = !(data[0] & 0x40) && nf > 2;
    if (nf > 1)
        in.key = f[1];
    if (nf > 2)
        in.value = f[2];
    for (i = 3; i + 1 < nf && in.n_headers < MAX_HEADERS; i += 2) {
        in.hname[in.n_headers] = f[i];
        in.hvalue[in.n_headers++] = f[i + 1];
    }
    key_record(&in, topics[data[0] & 3], (int32_t)data[1]);
    ksafe_dedup_key_free(k);
    free(spec);
    return 0;
}
