/*
 * tests/test_producer.c - the safe producer: record checks, placement,
 * async reports under injected faults, sync sends, close accounting, fatal
 * error recovery and transactions. On the embedded cluster by default (fault
 * injection needs it), on KSAFE_TEST_BOOTSTRAP's cluster when set. What only
 * a real broker shows (read_committed, fencing, transactional offsets) is in
 * tests/test_real_cluster.c.
 */
#include <pthread.h>
#include <stdint.h>
#include <unistd.h>

#include "testutil.h"

/* The embedded cluster, for the cases tagged TEST_EMBEDDED_ONLY (they run
 * only where it exists; see test_run()). */
static ksafe_mock_cluster *fault_cluster(const char *why)
{
    ksafe_mock_cluster *mc = ksafe_test_cluster_mock(tc);

    ck_assert_msg(mc != NULL, "%s needs the embedded cluster", why);
    return mc;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void new_topic(char *buf, size_t size, const char *prefix,
                      int partitions)
{
    ksafe_error err;

    ksafe_test_unique_name(buf, size, prefix);
    ck_assert_ok(ksafe_test_cluster_create_topic(tc, buf, partitions, &err),
                 err);
}

/* ---- reports ----------------------------------------------------------- */

#define MAX_RECORDS 1024

/* What the delivery callback saw, per record index (the opaque). */
typedef struct reports {
    int delivered, failed;
    int seen[MAX_RECORDS];        /* reports per record */
    int failed_code[MAX_RECORDS]; /* rdkafka_code of the failure */
    int64_t offset[MAX_RECORDS];
    int32_t partition[MAX_RECORDS];
    int foreign; /* reports without one of our opaques */
} reports;

static int index_slot[MAX_RECORDS]; /* stable addresses used as opaques */

static void *opaque_of(int i)
{
    return &index_slot[i];
}

/* Set: send_one sends without an opaque (ksafe then keeps no wrapper per
 * record) and reports are matched by their value "value-<i>" instead. */
static int without_opaques;

/* Checked fixture: every case starts with opaques, even after a case that
 * set without_opaques failed before resetting it (CK_FORK=no). */
static void with_opaques(void)
{
    without_opaques = 0;
}

/* The record index of a report without an opaque, from its value. */
static int *slot_of_value(const ksafe_delivery *d)
{
    char buf[32];
    int i;

    if (!d->value || d->value_len >= sizeof(buf))
        return NULL;
    memcpy(buf, d->value, d->value_len);
    buf[d->value_len] = 0;
    if (sscanf(buf, "value-%d", &i) != 1 || i < 0 || i >= MAX_RECORDS)
        return NULL;
    return &index_slot[i];
}

static void on_delivery(const ksafe_delivery *d, void *payload)
{
    reports *r = payload;
    int *slot = d->opaque;
    int i;

    if (!slot && without_opaques)
        slot = slot_of_value(d);
    if (!slot || slot < index_slot || slot >= index_slot + MAX_RECORDS) {
        r->foreign++;
        return;
    }
    i = (int)(slot - index_slot);
    r->seen[i]++;
    if (d->error) {
        r->failed++;
        r->failed_code[i] = d->error->rdkafka_code;
        ck_assert_int_eq(d->offset, -1);
    } else {
        r->delivered++;
        r->offset[i] = d->offset;
        r->partition[i] = d->partition;
    }
}

static void producer_options(ksafe_producer_options *o, reports *r)
{
    ksafe_test_cluster_producer_options(tc, o);
    o->log_cb = test_quiet_log;
    o->on_delivery = on_delivery;
    o->delivery_payload = r;
}

/* Sends "value-<i>" with key "key-<i % keys>" and opaque i. */
static int send_one(ksafe_producer *p, const char *topic, int i, int keys,
                    ksafe_error *err)
{
    char key[32], value[32];
    ksafe_header h = {"index", value + 6, 0};
    ksafe_record rec = KSAFE_RECORD_INIT;

    snprintf(key, sizeof(key), "key-%d", i % keys);
    snprintf(value, sizeof(value), "value-%d", i);
    h.value_len = strlen(value) - 6;
    rec.topic = topic;
    rec.key = key;
    rec.key_len = strlen(key);
    rec.value = value;
    rec.value_len = strlen(value);
    rec.headers = &h;
    rec.header_count = 1;
    rec.opaque = without_opaques ? NULL : opaque_of(i);
    return ksafe_producer_send(p, &rec, err);
}

static void send_range(ksafe_producer *p, const char *topic, int from, int to,
                       int keys)
{
    ksafe_error err;
    int i;

    for (i = from; i < to; i++)
        ck_assert_ok(send_one(p, topic, i, keys, &err), err);
}

/* ---- consuming back ---------------------------------------------------- */

typedef struct consumed {
    int count[MAX_RECORDS];
    int64_t offset[MAX_RECORDS];
    int32_t partition[MAX_RECORDS];
    int total, bad_header, out_of_order;
} consumed;

/*
 * Reads every partition of `topic` from the start with a plain ksafe
 * consumer (assigned, not subscribed: no group join to wait for) until
 * `want` records arrived, then a little longer so that duplicates show.
 * Checks per-key order (keys = i % keys) and the "index" header.
 */
static void consume_back_within(const char *topic, int partitions,
                                int want, int keys, int max_ms,
                                consumed *out)
{
    ksafe_consumer_options o;
    ksafe_consumer *c;
    ksafe_error err;
    rd_kafka_topic_partition_list_t *l;
    int last[MAX_RECORDS];
    char group[64];
    int64_t deadline = now_ms() + max_ms, settle = -1;
    int i;

    memset(out, 0, sizeof(*out));
    for (i = 0; i < MAX_RECORDS; i++)
        last[i] = -1;
    ksafe_test_unique_name(group, sizeof(group), "prod-check");
    ksafe_test_cluster_consumer_options(tc, &o, group);
    o.log_cb = test_quiet_log;
    ck_assert_ok(ksafe_consumer_new(&c, &o, &err), err);
    l = rd_kafka_topic_partition_list_new(partitions);
    for (i = 0; i < partitions; i++)
        rd_kafka_topic_partition_list_add(l, topic, i)->offset =
            RD_KAFKA_OFFSET_BEGINNING;
    ck_assert_int_eq(rd_kafka_assign(ksafe_consumer_rdkafka(c), l), 0);
    rd_kafka_topic_partition_list_destroy(l);
    while (now_ms() < deadline && (settle < 0 || now_ms() < settle)) {
        ksafe_message *m;
        const char *v;
        const void *hv;
        size_t len, hlen;
        int value;
        char buf[32];

        ck_assert_ok(ksafe_consumer_poll(c, 100, &m, &err), err);
        if (!m)
            continue;
        v = ksafe_message_value(m, &len);
        ck_assert_int_lt(len, sizeof(buf));
        memcpy(buf, v, len);
        buf[len] = 0;
        ck_assert_int_eq(sscanf(buf, "value-%d", &value), 1);
        ck_assert_int_ge(value, 0);
        ck_assert_int_lt(value, MAX_RECORDS);
        out->count[value]++;
        out->offset[value] = ksafe_message_offset(m);
        out->partition[value] = ksafe_message_partition(m);
        if (ksafe_message_header(m, "index", &hv, &hlen) != 0 ||
            hlen != len - 6 || memcmp(hv, buf + 6, hlen) != 0)
            out->bad_header++;
        if (value <= last[value % keys])
            out->out_of_order++;
        last[value % keys] = value;
        out->total++;
        ksafe_message_free(m);
        if (out->total >= want && settle < 0)
            settle = now_ms() + 1000;
    }
    ksafe_consumer_free(c);
}

static void consume_back(const char *topic, int partitions, int want,
                         int keys, consumed *out)
{
    consume_back_within(topic, partitions, want, keys, 30000, out);
}

/* Every record in [from, to) was consumed exactly once, in key order. */
static void assert_exactly_once(const consumed *c, int from, int to)
{
    int i;

    for (i = from; i < to; i++)
        ck_assert_msg(c->count[i] == 1, "value-%d consumed %d times", i,
                      c->count[i]);
    ck_assert_int_eq(c->total, to - from);
    ck_assert_int_eq(c->out_of_order, 0);
    ck_assert_int_eq(c->bad_header, 0);
}

/* ---- records ----------------------------------------------------------- */

#define EXPECT_SEND_ERROR(p, rec, code_, needle)                             \
    do {                                                                     \
        ksafe_error e_;                                                      \
        ksafe_record_metadata md_;                                           \
        ck_assert_int_eq(ksafe_producer_send((p), &(rec), &e_), (code_));    \
        ck_assert_msg(strstr(e_.message, (needle)) != NULL,                  \
                      "message \"%s\" lacks \"%s\"", e_.message, (needle));  \
        ck_assert_int_eq(                                                    \
            ksafe_producer_send_sync((p), &(rec), 1000, &md_, &e_),          \
            (code_));                                                        \
        ck_assert_msg(strstr(e_.message, (needle)) != NULL,                  \
                      "message \"%s\" lacks \"%s\"", e_.message, (needle));  \
    } while (0)

START_TEST(bad_records_are_refused_naming_the_field)
{
    ksafe_producer_options o;
    ksafe_producer *p;
    ksafe_error err;
    reports r;
    ksafe_header nameless = {NULL, "v", 1};
    ksafe_record ok = KSAFE_RECORD_INIT, rec;

    memset(&r, 0, sizeof(r));
    producer_options(&o, &r);
    ck_assert_ok(ksafe_producer_new(&p, &o, &err), err);
    ok.topic = "t";
    ok.value = "v";
    ok.value_len = 1;

    rec = ok;
    rec.topic = NULL;
    EXPECT_SEND_ERROR(p, rec, KSAFE_EINVAL, "record.topic is required");
    rec.topic = "";
    EXPECT_SEND_ERROR(p, rec, KSAFE_EINVAL, "record.topic is required");
    rec = ok;
    rec.partition = -2;
    EXPECT_SEND_ERROR(p, rec, KSAFE_EINVAL, "record.partition is -2");
    rec = ok;
    rec.header_count = 2;
    EXPECT_SEND_ERROR(p, rec, KSAFE_EINVAL,
                      "record.header_count is 2 but headers is NULL");
    rec = ok;
    rec.headers = &nameless;
    rec.header_count = 1;
    EXPECT_SEND_ERROR(p, rec, KSAFE_EINVAL, "record.headers[0].name");
    rec = ok;
    rec.key_len = 3;
    EXPECT_SEND_ERROR(p, rec, KSAFE_EINVAL, "record.key_len is 3");
    rec = ok;
    rec.value = NULL;
    EXPECT_SEND_ERROR(p, rec, KSAFE_EINVAL, "record.value_len is 1");
    ck_assert_int_eq(ksafe_producer_send(p, NULL, &err), KSAFE_EINVAL);

    ck_assert_ok(ksafe_producer_close(p, &err), err);
    EXPECT_SEND_ERROR(p, ok, KSAFE_ESTATE, "closed");
    ksafe_producer_free(p);
    /* Refused records never produce a report. */
    ck_assert_int_eq(r.delivered + r.failed + r.foreign, 0);
}
END_TEST

/* Reference hashes, written from their definitions, to check placement. */
static uint32_t crc32_of(const char *s)
{
    uint32_t c = 0xffffffffu;
    int k;

    for (; *s; s++) {
        c ^= (unsigned char)*s;
        for (k = 0; k < 8; k++)
            c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1u)));
    }
    return c ^ 0xffffffffu;
}

static uint32_t murmur2_of(const char *s)
{
    const uint32_t m = 0x5bd1e995u;
    size_t len = strlen(s), i;
    uint32_t h = 0x9747b28cu ^ (uint32_t)len;
    const unsigned char *d = (const unsigned char *)s;

    for (i = 0; i + 4 <= len; i += 4) {
        uint32_t k = (uint32_t)d[i] | (uint32_t)d[i + 1] << 8 |
                     (uint32_t)d[i + 2] << 16 | (uint32_t)d[i + 3] << 24;
        k *= m;
        k ^= k >> 24;
        k *= m;
        h *= m;
        h ^= k;
    }
    switch (len & 3) {
    case 3:
        h ^= (uint32_t)d[i + 2] << 16; /* fall through */
    case 2:
        h ^= (uint32_t)d[i + 1] << 8; /* fall through */
    case 1:
        h ^= d[i];
        h *= m;
    }
    h ^= h >> 13;
    h *= m;
    h ^= h >> 15;
    return h;
}

static void check_placement(ksafe_partitioner which, int partitions)
{
    ksafe_producer_options o;
    ksafe_producer *p;
    ksafe_error err;
    char topic[64];
    int i;

    new_topic(topic, sizeof(topic), "place", partitions);
    ksafe_test_cluster_producer_options(tc, &o);
    o.log_cb = test_quiet_log;
    o.partitioner = which;
    ck_assert_ok(ksafe_producer_new(&p, &o, &err), err);
    for (i = 0; i < 40; i++) {
        char key[32];
        ksafe_record rec = KSAFE_RECORD_INIT;
        ksafe_record_metadata md;
        uint32_t want;

        snprintf(key, sizeof(key), "customer-%d", i * 7919);
        rec.topic = topic;
        rec.key = key;
        rec.key_len = strlen(key);
        ck_assert_ok(ksafe_producer_send_sync(p, &rec, -1, &md, &err), err);
        want = which == KSAFE_PARTITIONER_MURMUR2_RANDOM
                   ? (murmur2_of(key) & 0x7fffffffu) % (uint32_t)partitions
                   : crc32_of(key) % (uint32_t)partitions;
        ck_assert_msg(md.partition == (int32_t)want,
                      "key %s went to %d, expected %u", key,
                      (int)md.partition, want);
    }
    ck_assert_ok(ksafe_producer_close(p, &err), err);
    ksafe_producer_free(p);
}

/* The default matches other librdkafka clients (CRC32 of the key); the
 * murmur2 option matches the Java client. */
START_TEST(keys_are_placed_as_documented)
{
    ksafe_producer_options o = KSAFE_PRODUCER_OPTIONS_INIT;
    ksafe_error err;

    ck_assert_int_eq(o.partitioner, KSAFE_PARTITIONER_CONSISTENT_RANDOM);
    check_placement(KSAFE_PARTITIONER_CONSISTENT_RANDOM, 7);
    check_placement(KSAFE_PARTITIONER_MURMUR2_RANDOM, 7);
    o.bootstrap_servers = "127.0.0.1:1";
    o.partitioner = (ksafe_partitioner)9;
    ck_assert_int_eq(ksafe_producer_options_validate(&o, &err), KSAFE_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.message, "partitioner 9"));
}
END_TEST

/* ---- async under faults ------------------------------------------------ */

#define KEYS 10

START_TEST(retriable_faults_lose_and_duplicate_nothing)
{
    static const rd_kafka_resp_err_t produce_errors[] = {
        RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
        RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
        RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
        RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
        RD_KAFKA_RESP_ERR__TRANSPORT,
        RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS_AFTER_APPEND,
    };
    ksafe_mock_cluster *mc = fault_cluster("injecting produce errors");
    ksafe_producer_options o;
    ksafe_producer *p;
    ksafe_error err;
    char topic[64];
    static reports r;
    static consumed c;
    int i;

    memset(&r, 0, sizeof(r));
    new_topic(topic, sizeof(topic), "faults", 4);
    producer_options(&o, &r);
    ck_assert_ok(ksafe_producer_new(&p, &o, &err), err);

    send_range(p, topic, 0, 100, KEYS);
    ck_assert_ok(ksafe_mock_cluster_push_request_errors(
                     mc, 0 /* Produce */,
                     sizeof(produce_errors) / sizeof(produce_errors[0]),
                     produce_errors, &err),
                 err);
    send_range(p, topic, 100, 200, KEYS);
    ck_assert_ok(ksafe_producer_flush(p, 60000, &err), err);

    /* The broker goes away with records queued, then comes back. */
    ck_assert_ok(ksafe_mock_cluster_broker_down(mc, 1, &err), err);
    send_range(p, topic, 200, 300, KEYS);
    ksafe_producer_poll(p, 1000);
    ck_assert_ok(ksafe_mock_cluster_broker_up(mc, 1, &err), err);
    send_range(p, topic, 300, 400, KEYS);
    ck_assert_ok(ksafe_producer_flush(p, 60000, &err), err);

    ck_assert_int_eq(r.failed, 0);
    ck_assert_int_eq(r.delivered, 400);
    for (i = 0; i < 400; i++)
        ck_assert_msg(r.seen[i] == 1, "record %d reported %d times", i,
                      r.seen[i]);
    ck_assert_ok(ksafe_producer_close(p, &err), err);
    ksafe_producer_free(p);

    consume_back(topic, 4, 400, KEYS, &c);
    assert_exactly_once(&c, 0, 400);
    /* The reports told the truth about where each record is. */
    for (i = 0; i < 400; i++) {
        ck_assert_int_eq(c.offset[i], r.offset[i]);
        ck_assert_int_eq(c.partition[i], r.partition[i]);
    }
}
END_TEST

START_TEST(timed_out_records_are_reported_failed)
{
    ksafe_mock_cluster *mc = fault_cluster("taking the broker down");
    ksafe_producer_options o;
    ksafe_producer *p;
    ksafe_error err;
    ksafe_record rec = KSAFE_RECORD_INIT;
    ksafe_record_metadata md;
    char topic[64];
    static reports r;
    static consumed c;
    int i;

    memset(&r, 0, sizeof(r));
    new_topic(topic, sizeof(topic), "timeout", 2);
    producer_options(&o, &r);
    o.delivery_timeout_ms = 1500;
    ck_assert_ok(ksafe_producer_new(&p, &o, &err), err);
    ck_assert_ok(ksafe_mock_cluster_broker_down(mc, 1, &err), err);
    send_range(p, topic, 0, 20, KEYS);
    rec.topic = topic;
    rec.value = "value-20";
    rec.value_len = 8;
    ck_assert_int_eq(ksafe_producer_send_sync(p, &rec, -1, &md, &err),
                     KSAFE_ETIMEDOUT);
    ck_assert_int_eq(err.rdkafka_code, RD_KAFKA_RESP_ERR__MSG_TIMED_OUT);
    ck_assert_int_eq(md.offset, -1);
    ck_assert_ok(ksafe_producer_flush(p, 30000, &err), err);
    ck_assert_int_eq(r.delivered, 0);
    ck_assert_int_eq(r.failed, 20);
    for (i = 0; i < 20; i++)
        ck_assert_int_eq(r.failed_code[i], RD_KAFKA_RESP_ERR__MSG_TIMED_OUT);
    ck_assert_ok(ksafe_producer_close(p, &err), err);
    ksafe_producer_free(p);
    ck_assert_ok(ksafe_mock_cluster_broker_up(mc, 1, &err), err);
    /* None of them reached the log either. */
    consume_back_within(topic, 2, 1, KEYS, 3000, &c);
    ck_assert_int_eq(c.total, 0);
}
END_TEST

/* ---- close ------------------------------------------------------------- */

START_TEST(close_counts_what_it_could_not_deliver)
{
    ksafe_mock_cluster *mc = fault_cluster("taking the broker down");
    ksafe_producer_options o;
    ksafe_producer *p;
    ksafe_error err;
    char topic[64];
    static reports r;
    int i;

    new_topic(topic, sizeof(topic), "close", 2);

    /* Deadline before the delivery timeout: the rest is purged, reported. */
    memset(&r, 0, sizeof(r));
    producer_options(&o, &r);
    ck_assert_ok(ksafe_producer_new(&p, &o, &err), err);
    send_range(p, topic, 0, 3, KEYS);
    ck_assert_ok(ksafe_producer_flush(p, 30000, &err), err);
    ck_assert_ok(ksafe_mock_cluster_broker_down(mc, 1, &err), err);
    send_range(p, topic, 3, 10, KEYS);
    ck_assert_int_eq(ksafe_producer_close_timeout(p, 300, &err),
                     KSAFE_EUNDELIVERED);
    ck_assert_int_eq(err.code, KSAFE_EUNDELIVERED);
    ck_assert_msg(strstr(err.message, "7 records were not delivered"),
                  "%s", err.message);
    ck_assert_int_eq(r.delivered, 3);
    ck_assert_int_eq(r.failed, 7);
    for (i = 3; i < 10; i++) {
        ck_assert_int_eq(r.seen[i], 1);
        ck_assert_msg(r.failed_code[i] == RD_KAFKA_RESP_ERR__PURGE_QUEUE ||
                          r.failed_code[i] ==
                              RD_KAFKA_RESP_ERR__PURGE_INFLIGHT,
                      "record %d failed with %s", i,
                      rd_kafka_err2name(r.failed_code[i]));
    }
    /* Twice is harmless and sends are refused. */
    ck_assert_ok(ksafe_producer_close(p, &err), err);
    ck_assert_int_eq(send_one(p, topic, 11, KEYS, &err), KSAFE_ESTATE);
    ksafe_producer_free(p);

    /* Plain close waits out the delivery timeout and counts the records
     * that timed out meanwhile. */
    memset(&r, 0, sizeof(r));
    producer_options(&o, &r);
    o.delivery_timeout_ms = 1000;
    ck_assert_ok(ksafe_producer_new(&p, &o, &err), err);
    send_range(p, topic, 0, 5, KEYS);
    ck_assert_int_eq(ksafe_producer_close(p, &err), KSAFE_EUNDELIVERED);
    ck_assert_msg(strstr(err.message, "5 records were not delivered"), "%s",
                  err.message);
    ck_assert_int_eq(r.failed, 5);
    ck_assert_int_eq(r.delivered, 0);
    ksafe_producer_free(p);
    ck_assert_ok(ksafe_mock_cluster_broker_up(mc, 1, &err), err);

    /* A healthy close reports nothing. */
    memset(&r, 0, sizeof(r));
    producer_options(&o, &r);
    ck_assert_ok(ksafe_producer_new(&p, &o, &err), err);
    send_range(p, topic, 0, 5, KEYS);
    ck_assert_ok(ksafe_producer_close(p, &err), err);
    ck_assert_int_eq(r.delivered, 5);
    ksafe_producer_free(p);
}
END_TEST

/* ---- without a delivery callback --------------------------------------- */

/* The producer's error-level delivery lines, from any thread. */
typedef struct failure_log {
    pthread_mutex_t lock;
    const char *topic;
    int lines, without_topic, with_payload;
} failure_log;

static void capture_failures(int level, const char *fac, const char *msg,
                             void *payload)
{
    failure_log *fl = payload;

    if (level > KSAFE_LOG_ERR || strcmp(fac, "DELIVERY") != 0)
        return;
    pthread_mutex_lock(&fl->lock);
    fl->lines++;
    if (!strstr(msg, fl->topic) || !strstr(msg, "timed out"))
        fl->without_topic++;
    if (strstr(msg, "value-"))
        fl->with_payload++;
    pthread_mutex_unlock(&fl->lock);
}

static int failure_lines(failure_log *fl)
{
    int n;

    pthread_mutex_lock(&fl->lock);
    n = fl->lines;
    pthread_mutex_unlock(&fl->lock);
    return n;
}

START_TEST(failures_without_a_callback_are_logged_and_returned)
{
    ksafe_mock_cluster *mc = fault_cluster("taking the broker down");
    ksafe_producer_options o;
    ksafe_producer *p;
    ksafe_error err;
    char topic[64];
    static failure_log fl = {PTHREAD_MUTEX_INITIALIZER, NULL, 0, 0, 0};
    ksafe_producer_stats st = KSAFE_PRODUCER_STATS_INIT;
    int64_t deadline;

    new_topic(topic, sizeof(topic), "no-cb", 2);
    fl.topic = topic;
    ksafe_test_cluster_producer_options(tc, &o);
    o.log_cb = capture_failures;
    o.log_payload = &fl;
    o.delivery_timeout_ms = 1500;
    ck_assert_ok(ksafe_producer_new(&p, &o, &err), err);
    send_range(p, topic, 0, 2, KEYS);
    ck_assert_ok(ksafe_producer_flush(p, 30000, &err), err);

    /* Each failure is logged at error level, and flush says how many. */
    ck_assert_ok(ksafe_mock_cluster_broker_down(mc, 1, &err), err);
    send_range(p, topic, 2, 6, KEYS);
    ck_assert_int_eq(ksafe_producer_flush(p, 30000, &err),
                     KSAFE_EUNDELIVERED);
    ck_assert_int_eq(err.code, KSAFE_EUNDELIVERED);
    ck_assert_msg(strstr(err.message, "4 records"), "%s", err.message);
    ck_assert_int_eq(failure_lines(&fl), 4);
    ck_assert_int_eq(fl.without_topic, 0);
    ck_assert_int_eq(fl.with_payload, 0);
    ck_assert_ok(ksafe_producer_get_stats(p, &st, &err), err);
    ck_assert_uint_eq(st.delivered, 2);
    ck_assert_uint_eq(st.failed, 4);
    ck_assert_uint_eq(st.held, 0);
    /* Counted once: the next flush starts from zero. */
    ck_assert_ok(ksafe_producer_flush(p, 1000, &err), err);

    /* Failures served by a poll, not a flush, are close's to report. */
    send_range(p, topic, 6, 8, KEYS);
    deadline = now_ms() + 20000;
    while (failure_lines(&fl) < 6 && now_ms() < deadline)
        ksafe_producer_poll(p, 100);
    ck_assert_int_eq(failure_lines(&fl), 6);
    ck_assert_ok(ksafe_mock_cluster_broker_up(mc, 1, &err), err);
    ck_assert_int_eq(ksafe_producer_close(p, &err), KSAFE_EUNDELIVERED);
    ck_assert_msg(strstr(err.message, "2 records"), "%s", err.message);
    ck_assert_ok(ksafe_producer_get_stats(p, &st, &err), err);
    ck_assert_uint_eq(st.delivered, 2);
    ck_assert_uint_eq(st.failed, 6);
    st.version = 99;
    ck_assert_int_eq(ksafe_producer_get_stats(p, &st, &err), KSAFE_EVERSION);
    ksafe_producer_free(p);
}
END_TEST

/* ---- queue full -------------------------------------------------------- */

static const char *const small_queue[] = {
    "reconnect.backoff.max.ms", "500", "queue.buffering.max.messages", "10",
    NULL};

START_TEST(queue_full_returns_or_blocks_as_chosen)
{
    ksafe_producer_options o;
    ksafe_producer *p;
    ksafe_error err;
    char topic[64];
    static reports r;
    int i;

    new_topic(topic, sizeof(topic), "qfull", 2);

    /* RETURN: a long linger keeps the queue full; the 11th fails at once. */
    memset(&r, 0, sizeof(r));
    producer_options(&o, &r);
    o.rdkafka_properties = small_queue;
    o.linger_ms = 60000;
    o.queue_full = KSAFE_QUEUE_FULL_RETURN;
    ck_assert_ok(ksafe_producer_new(&p, &o, &err), err);
    send_range(p, topic, 0, 10, KEYS);
    ck_assert_int_eq(send_one(p, topic, 10, KEYS, &err), KSAFE_EQUEUEFULL);
    ck_assert_uint_eq(err.flags & KSAFE_ERROR_RETRIABLE,
                      KSAFE_ERROR_RETRIABLE);
    ck_assert_ok(ksafe_producer_close(p, &err), err);
    ck_assert_int_eq(r.delivered, 10);
    ck_assert_int_eq(r.seen[10], 0);
    ksafe_producer_free(p);

    /* BLOCK with the queue held full: waits, then fails retriably. */
    memset(&r, 0, sizeof(r));
    o.queue_full = KSAFE_QUEUE_FULL_BLOCK;
    o.queue_full_timeout_ms = 300;
    ck_assert_ok(ksafe_producer_new(&p, &o, &err), err);
    send_range(p, topic, 0, 10, KEYS);
    {
        int64_t t0 = now_ms();
        ck_assert_int_eq(send_one(p, topic, 10, KEYS, &err),
                         KSAFE_EQUEUEFULL);
        ck_assert_int_ge(now_ms() - t0, 250);
    }
    ck_assert_ok(ksafe_producer_close(p, &err), err);
    ksafe_producer_free(p);

    /* BLOCK with a draining queue: every send gets through, in the end. */
    memset(&r, 0, sizeof(r));
    o.linger_ms = 0;
    o.queue_full_timeout_ms = 30000;
    ck_assert_ok(ksafe_producer_new(&p, &o, &err), err);
    send_range(p, topic, 0, 300, KEYS);
    ck_assert_ok(ksafe_producer_close(p, &err), err);
    ck_assert_int_eq(r.delivered, 300);
    for (i = 0; i < 300; i++)
        ck_assert_int_eq(r.seen[i], 1);
    ksafe_producer_free(p);
}
END_TEST

/* ---- sync -------------------------------------------------------------- */

START_TEST(sync_send_returns_the_real_offset)
{
    ksafe_producer_options o;
    ksafe_producer *p;
    ksafe_error err;
    char topic[64];
    static reports r;
    static consumed c;
    ksafe_record_metadata md[20];
    int i;

    memset(&r, 0, sizeof(r));
    new_topic(topic, sizeof(topic), "sync", 3);
    producer_options(&o, &r);
    ck_assert_ok(ksafe_producer_new(&p, &o, &err), err);
    /* Even indexes async, odd ones sync: they mix, and only the async ones
     * reach the delivery callback. */
    for (i = 0; i < 20; i++) {
        char key[32], value[32], index[16];
        ksafe_header h = {"index", index, 0};
        ksafe_record rec = KSAFE_RECORD_INIT;

        if (i % 2 == 0) {
            ck_assert_ok(send_one(p, topic, i, KEYS, &err), err);
            continue;
        }
        snprintf(key, sizeof(key), "key-%d", i % KEYS);
        snprintf(value, sizeof(value), "value-%d", i);
        snprintf(index, sizeof(index), "%d", i);
        h.value_len = strlen(index);
        rec.topic = topic;
        rec.key = key;
        rec.key_len = strlen(key);
        rec.value = value;
        rec.value_len = strlen(value);
        rec.headers = &h;
        rec.header_count = 1;
        rec.opaque = opaque_of(i);
        ck_assert_ok(ksafe_producer_send_sync(p, &rec, -1, &md[i], &err),
                     err);
        ck_assert_int_ge(md[i].offset, 0);
        ck_assert_int_ge(md[i].partition, 0);
        ck_assert_int_gt(md[i].timestamp_ms, 0);
    }
    ck_assert_ok(ksafe_producer_flush(p, 30000, &err), err);
    ck_assert_int_eq(r.delivered, 10);
    for (i = 0; i < 20; i++)
        ck_assert_int_eq(r.seen[i], i % 2 == 0);
    ck_assert_ok(ksafe_producer_close(p, &err), err);
    ksafe_producer_free(p);

    consume_back(topic, 3, 20, KEYS, &c);
    assert_exactly_once(&c, 0, 20);
    for (i = 1; i < 20; i += 2) {
        ck_assert_int_eq(c.offset[i], md[i].offset);
        ck_assert_int_eq(c.partition[i], md[i].partition);
    }
}
END_TEST

/* ---- fatal errors ------------------------------------------------------ */

static void trigger_fatal(ksafe_producer *p)
{
    ck_assert_int_eq(
        rd_kafka_test_fatal_error(ksafe_producer_rdkafka(p),
                                  RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER,
                                  "ksafe test"),
        RD_KAFKA_RESP_ERR_NO_ERROR);
}

/* _i 1: the same without opaques, whose send order ksafe keeps in
 * librdkafka's opaque itself rather than in a wrapper. */
START_TEST(fatal_error_then_resend_delivers_each_record_once)
{
    ksafe_producer_options o;
    ksafe_producer *p;
    ksafe_error err;
    char topic[64];
    static reports r;
    static consumed c;
    size_t rescued = 0;
    int i;

    memset(&r, 0, sizeof(r));
    without_opaques = _i;
    new_topic(topic, sizeof(topic), "fatal-rs", 4);
    producer_options(&o, &r);
    /* Records wait in the local queue (a long linger), so that the fatal
     * error strikes while they are unacknowledged, on any cluster. */
    o.linger_ms = 5000;
    ck_assert_ok(ksafe_producer_new(&p, &o, &err), err);
    send_range(p, topic, 0, 50, KEYS);
    ck_assert_ok(ksafe_producer_flush(p, 30000, &err), err);
    ck_assert_int_eq(r.delivered, 50);

    send_range(p, topic, 50, 120, KEYS);
    trigger_fatal(p);
    i = send_one(p, topic, 120, KEYS, &err);
    ck_assert_msg(i == KSAFE_EFATAL, "send after fatal: %d %s", i,
                  err.message);
    ck_assert_uint_eq(err.flags & KSAFE_ERROR_FATAL, KSAFE_ERROR_FATAL);
    ck_assert_int_eq(err.rdkafka_code,
                     RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER);
    ck_assert_int_eq(ksafe_producer_flush(p, 1000, &err), KSAFE_EFATAL);
    /* Held, not reported: no record has been given up on. */
    ck_assert_int_eq(r.failed, 0);
    ck_assert_int_eq(r.delivered, 50);

    ck_assert_ok(ksafe_producer_recover(p, KSAFE_RECOVER_RESEND, NULL, NULL,
                                        &rescued, &err),
                 err);
    ck_assert_uint_eq(rescued, 70);
    /* The record refused with EFATAL is still the caller's to send. */
    ck_assert_ok(send_one(p, topic, 120, KEYS, &err), err);
    ck_assert_ok(ksafe_producer_flush(p, 30000, &err), err);
    ck_assert_int_eq(r.failed, 0);
    ck_assert_int_eq(r.delivered, 121);
    for (i = 0; i < 121; i++)
        ck_assert_msg(r.seen[i] == 1, "record %d reported %d times", i,
                      r.seen[i]);
    ck_assert_int_eq(r.foreign, 0);
    ck_assert_ok(ksafe_producer_close(p, &err), err);
    ksafe_producer_free(p);

    without_opaques = 0;
    consume_back(topic, 4, 121, KEYS, &c);
    assert_exactly_once(&c, 0, 121);
}
END_TEST

typedef struct handback {
    int count, bad;
    int seen[MAX_RECORDS];
    ksafe_producer *p; /* re-send through here when set */
} handback;

static void on_handback(const ksafe_record *rec, const ksafe_error *error,
                        int possibly_delivered, void *payload)
{
    handback *h = payload;
    char buf[32];
    int i;

    h->count++;
    if (!rec->opaque || error->code != KSAFE_EFATAL ||
        !(error->flags & KSAFE_ERROR_FATAL) || possibly_delivered ||
        rec->header_count != 1 || strcmp(rec->headers[0].name, "index") ||
        rec->value_len >= sizeof(buf)) {
        h->bad++;
        return;
    }
    memcpy(buf, rec->value, rec->value_len);
    buf[rec->value_len] = 0;
    if (sscanf(buf, "value-%d", &i) != 1 || i < 0 || i >= MAX_RECORDS ||
        rec->opaque != opaque_of(i)) {
        h->bad++;
        return;
    }
    h->seen[i]++;
    if (h->p) {
        ksafe_error err;
        if (ksafe_producer_send(h->p, rec, &err))
            h->bad++;
    }
}

START_TEST(fatal_error_then_hand_back_returns_each_record)
{
    ksafe_producer_options o;
    ksafe_producer *p;
    ksafe_error err;
    char topic[64];
    static reports r;
    static handback h;
    static consumed c;
    ksafe_producer_stats st = KSAFE_PRODUCER_STATS_INIT;
    size_t rescued = 0;
    int i;

    memset(&r, 0, sizeof(r));
    memset(&h, 0, sizeof(h));
    new_topic(topic, sizeof(topic), "fatal-hb", 2);
    producer_options(&o, &r);
    o.linger_ms = 5000;
    ck_assert_ok(ksafe_producer_new(&p, &o, &err), err);
    ck_assert_int_eq(ksafe_producer_recover(p, KSAFE_RECOVER_RESEND, NULL,
                                            NULL, NULL, &err),
                     KSAFE_ESTATE);
    send_range(p, topic, 0, 10, KEYS);
    ck_assert_ok(ksafe_producer_flush(p, 30000, &err), err);
    send_range(p, topic, 10, 40, KEYS);
    trigger_fatal(p);
    ck_assert_int_eq(ksafe_producer_flush(p, 1000, &err), KSAFE_EFATAL);
    ck_assert_int_eq(ksafe_producer_recover(p, KSAFE_RECOVER_HAND_BACK, NULL,
                                            NULL, NULL, &err),
                     KSAFE_EINVAL);
    /* The callback re-sends half of them itself, keeps the other half. */
    h.p = p;
    ck_assert_ok(ksafe_producer_recover(p, KSAFE_RECOVER_HAND_BACK,
                                        on_handback, &h, &rescued, &err),
                 err);
    ck_assert_uint_eq(rescued, 30);
    ck_assert_int_eq(h.count, 30);
    ck_assert_int_eq(h.bad, 0);
    ck_assert_ok(ksafe_producer_get_stats(p, &st, &err), err);
    ck_assert_uint_eq(st.handed_back, 30);
    ck_assert_uint_eq(st.held, 0);
    ck_assert_uint_eq(st.delivered, 10);
    for (i = 10; i < 40; i++)
        ck_assert_int_eq(h.seen[i], 1);
    ck_assert_ok(ksafe_producer_flush(p, 30000, &err), err);
    /* 10 before the error, the 30 handed back and re-sent after it. */
    ck_assert_int_eq(r.delivered, 40);
    ck_assert_int_eq(r.failed, 0);
    ck_assert_ok(ksafe_producer_close(p, &err), err);
    ksafe_producer_free(p);
    consume_back(topic, 2, 40, KEYS, &c);
    assert_exactly_once(&c, 0, 40);
}
END_TEST

/* The order records were handed back in, by index ("value-<i>"). */
typedef struct handback_order {
    int n, bad;
    int index[MAX_RECORDS];
} handback_order;

static void on_handback_in_order(const ksafe_record *rec,
                                 const ksafe_error *error,
                                 int possibly_delivered, void *payload)
{
    handback_order *h = payload;
    char buf[32];
    int i;

    (void)possibly_delivered;
    if (error->code != KSAFE_EFATAL || rec->value_len >= sizeof(buf) ||
        h->n >= MAX_RECORDS) {
        h->bad++;
        return;
    }
    memcpy(buf, rec->value, rec->value_len);
    buf[rec->value_len] = 0;
    if (sscanf(buf, "value-%d", &i) != 1 ||
        rec->opaque != (without_opaques ? NULL : opaque_of(i))) {
        h->bad++;
        return;
    }
    h->index[h->n++] = i;
}

/*
 * One partition, with records in flight (the broker answers slowly) and
 * more queued behind them when the fatal error strikes: librdkafka gives
 * the two groups back separately, yet the hand-back comes in send order,
 * which per-key order needs. _i 1: without opaques, where the order rides
 * in librdkafka's opaque itself.
 */
START_TEST(fatal_error_hands_back_in_send_order)
{
    ksafe_mock_cluster *mc = fault_cluster("slowing the broker down");
    ksafe_producer_options o;
    ksafe_producer *p;
    ksafe_error err;
    char topic[64];
    static reports r;
    static handback_order h;
    size_t rescued = 0;
    int i;

    memset(&r, 0, sizeof(r));
    memset(&h, 0, sizeof(h));
    without_opaques = _i;
    new_topic(topic, sizeof(topic), "fatal-order", 1);
    producer_options(&o, &r);
    o.linger_ms = 20;
    ck_assert_ok(ksafe_producer_new(&p, &o, &err), err);
    send_range(p, topic, 0, 5, KEYS);
    ck_assert_ok(ksafe_producer_flush(p, 30000, &err), err);
    ck_assert_ok(ksafe_mock_cluster_set_rtt(mc, 1, 3000, &err), err);
    send_range(p, topic, 5, 40, KEYS);
    nanosleep(&(struct timespec){0, 500000000}, NULL); /* sent: waiting
                                                         for the slow answer */
    send_range(p, topic, 40, 80, KEYS);
    trigger_fatal(p);
    ck_assert_int_eq(ksafe_producer_flush(p, 1000, &err), KSAFE_EFATAL);
    ck_assert_ok(ksafe_producer_recover(p, KSAFE_RECOVER_HAND_BACK,
                                        on_handback_in_order, &h, &rescued,
                                        &err),
                 err);
    ck_assert_ok(ksafe_mock_cluster_set_rtt(mc, 1, 0, &err), err);
    ck_assert_int_eq(h.bad, 0);
    ck_assert_uint_eq(rescued, (size_t)h.n);
    ck_assert_int_eq(r.delivered + h.n, 80);
    for (i = 0; i < h.n; i++)
        ck_assert_msg(h.index[i] == r.delivered + i,
                      "hand-back %d is record %d, expected %d", i,
                      h.index[i], r.delivered + i);
    ck_assert_ok(ksafe_producer_close(p, &err), err);
    ksafe_producer_free(p);
}
END_TEST

/* Every record a send accepted is in exactly one count. */
static void assert_accounted(ksafe_producer *p, uint64_t sent)
{
    ksafe_producer_stats st = KSAFE_PRODUCER_STATS_INIT;
    ksafe_error err;

    ck_assert_ok(ksafe_producer_get_stats(p, &st, &err), err);
    ck_assert_msg(st.delivered + st.failed + st.held + st.handed_back +
                          st.in_flight ==
                      sent,
                  "sent %llu: delivered %llu failed %llu held %llu handed "
                  "back %llu in flight %llu",
                  (unsigned long long)sent,
                  (unsigned long long)st.delivered,
                  (unsigned long long)st.failed, (unsigned long long)st.held,
                  (unsigned long long)st.handed_back,
                  (unsigned long long)st.in_flight);
}

/*
 * A fatal error while the broker is down: recover waits for the failed
 * instance to give back every record before replacing it, re-sends them,
 * and once the broker is back each is delivered exactly once.
 */
START_TEST(recover_during_an_outage_accounts_for_every_record)
{
    ksafe_mock_cluster *mc = fault_cluster("taking the broker down");
    ksafe_producer_options o;
    ksafe_producer *p;
    ksafe_error err;
    ksafe_producer_stats st = KSAFE_PRODUCER_STATS_INIT;
    char topic[64];
    static reports r;
    static consumed c;
    size_t rescued = 0;
    int i;

    memset(&r, 0, sizeof(r));
    new_topic(topic, sizeof(topic), "fatal-down", 2);
    producer_options(&o, &r);
    o.delivery_timeout_ms = 30000;
    ck_assert_ok(ksafe_producer_new(&p, &o, &err), err);
    send_range(p, topic, 0, 5, KEYS);
    ck_assert_ok(ksafe_producer_flush(p, 30000, &err), err);
    ck_assert_ok(ksafe_mock_cluster_broker_down(mc, 1, &err), err);
    send_range(p, topic, 5, 35, KEYS);
    ksafe_producer_poll(p, 200);
    assert_accounted(p, 35);
    trigger_fatal(p);
    ck_assert_int_eq(ksafe_producer_flush(p, 1000, &err), KSAFE_EFATAL);
    assert_accounted(p, 35);
    ck_assert_ok(ksafe_producer_recover(p, KSAFE_RECOVER_RESEND, NULL, NULL,
                                        &rescued, &err),
                 err);
    ck_assert_uint_eq(rescued, 30);
    ck_assert_ok(ksafe_producer_get_stats(p, &st, &err), err);
    ck_assert_uint_eq(st.held, 0);
    ck_assert_uint_eq(st.in_flight, 30);
    assert_accounted(p, 35);
    ck_assert_int_eq(r.failed, 0);
    ck_assert_ok(ksafe_mock_cluster_broker_up(mc, 1, &err), err);
    ck_assert_ok(ksafe_producer_flush(p, 30000, &err), err);
    ck_assert_int_eq(r.delivered, 35);
    for (i = 0; i < 35; i++)
        ck_assert_msg(r.seen[i] == 1, "record %d reported %d times", i,
                      r.seen[i]);
    ck_assert_ok(ksafe_producer_get_stats(p, &st, &err), err);
    ck_assert_uint_eq(st.delivered, 35);
    ck_assert_uint_eq(st.in_flight, 0);
    ck_assert_ok(ksafe_producer_close(p, &err), err);
    ksafe_producer_free(p);
    consume_back(topic, 2, 35, KEYS, &c);
    assert_exactly_once(&c, 0, 35);
}
END_TEST

START_TEST(close_after_fatal_error_reports_held_records)
{
    ksafe_producer_options o;
    ksafe_producer *p;
    ksafe_error err;
    char topic[64];
    static reports r;
    int i;

    memset(&r, 0, sizeof(r));
    new_topic(topic, sizeof(topic), "fatal-close", 2);
    producer_options(&o, &r);
    o.linger_ms = 5000;
    ck_assert_ok(ksafe_producer_new(&p, &o, &err), err);
    send_range(p, topic, 0, 12, KEYS);
    trigger_fatal(p);
    ck_assert_int_eq(ksafe_producer_close(p, &err), KSAFE_EUNDELIVERED);
    ck_assert_msg(strstr(err.message, "12 records"), "%s", err.message);
    ck_assert_uint_eq(err.flags & KSAFE_ERROR_FATAL, KSAFE_ERROR_FATAL);
    ck_assert_int_eq(r.failed, 12);
    for (i = 0; i < 12; i++) {
        ck_assert_int_eq(r.seen[i], 1);
        ck_assert_int_eq(r.failed_code[i],
                         RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER);
    }
    ksafe_producer_free(p);
}
END_TEST

/* ---- transactions ------------------------------------------------------ */

static void txn_options(ksafe_producer_options *o, reports *r,
                        char *txn_id, size_t size)
{
    producer_options(o, r);
    ksafe_test_unique_name(txn_id, size, "txn");
    o->transactional_id = txn_id;
    o->transaction_timeout_ms = 30000;
    o->delivery_timeout_ms = 20000;
}

START_TEST(transactions_keep_idempotence_even_when_unsafe_is_allowed)
{
    static const char *const no_idem[] = {"enable.idempotence", "false",
                                          NULL};
    static const char *const acks1[] = {"acks", "1", NULL};
    static const char *const raw_id[] = {"transactional.id", "x", NULL};
    ksafe_producer_options o = KSAFE_PRODUCER_OPTIONS_INIT;
    ksafe_producer *p;
    ksafe_error err;

    o.bootstrap_servers = "127.0.0.1:1";
    o.log_cb = test_quiet_log;
    o.allow_unsafe = 1;
    o.transactional_id = "tx";
    o.transaction_timeout_ms = 200000;
    o.rdkafka_properties = no_idem;
    ck_assert_int_eq(ksafe_producer_new(&p, &o, &err), KSAFE_EUNSAFE);
    ck_assert_ptr_nonnull(strstr(err.message, "enable.idempotence=false"));
    ck_assert_ptr_nonnull(strstr(err.message, "allow_unsafe does not apply"));
    o.rdkafka_properties = acks1;
    ck_assert_int_eq(ksafe_producer_new(&p, &o, &err), KSAFE_EUNSAFE);
    ck_assert_ptr_nonnull(strstr(err.message, "acks=1"));
    /* Without a transactional_id allow_unsafe still means what it says. */
    o.transactional_id = NULL;
    o.rdkafka_properties = no_idem;
    ck_assert_ok(ksafe_producer_new(&p, &o, &err), err);
    ksafe_producer_free(p);
    o.rdkafka_properties = raw_id;
    ck_assert_int_eq(ksafe_producer_new(&p, &o, &err), KSAFE_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.message, "transactional_id field"));
}
END_TEST

START_TEST(committed_transaction_delivers_its_records)
{
    ksafe_producer_options o;
    ksafe_producer *p;
    ksafe_error err;
    char topic[64], txn_id[64];
    static reports r;
    static consumed c;

    memset(&r, 0, sizeof(r));
    new_topic(topic, sizeof(topic), "txn-ok", 2);
    txn_options(&o, &r, txn_id, sizeof(txn_id));
    ck_assert_ok(ksafe_producer_new(&p, &o, &err), err);
    ck_assert_int_eq(send_one(p, topic, 0, KEYS, &err), KSAFE_ESTATE);
    ck_assert_ptr_nonnull(strstr(err.message, "ksafe_txn_begin"));
    ck_assert_int_eq(ksafe_txn_commit(p, -1, &err), KSAFE_ESTATE);
    ck_assert_ok(ksafe_txn_init(p, -1, &err), err);
    ck_assert_ok(ksafe_txn_begin(p, &err), err);
    ck_assert_int_eq(ksafe_txn_begin(p, &err), KSAFE_ESTATE);
    send_range(p, topic, 0, 30, KEYS);
    ck_assert_ok(ksafe_txn_commit(p, -1, &err), err);
    /* Commit delivers first: every report is in when it returns. */
    ck_assert_int_eq(r.delivered, 30);
    ck_assert_int_eq(r.failed, 0);
    ck_assert_int_eq(send_one(p, topic, 30, KEYS, &err), KSAFE_ESTATE);
    ck_assert_ok(ksafe_producer_close(p, &err), err);
    ksafe_producer_free(p);
    consume_back(topic, 2, 30, KEYS, &c);
    assert_exactly_once(&c, 0, 30);
}
END_TEST

START_TEST(aborted_transaction_is_quiet_and_accounted)
{
    ksafe_producer_options o;
    ksafe_producer *p;
    ksafe_error err;
    char topic[64], txn_id[64];
    static reports r;
    int i;

    memset(&r, 0, sizeof(r));
    new_topic(topic, sizeof(topic), "txn-abort", 2);
    txn_options(&o, &r, txn_id, sizeof(txn_id));
    o.linger_ms = 1000; /* some are still queued when the abort comes */
    ck_assert_ok(ksafe_producer_new(&p, &o, &err), err);
    ck_assert_ok(ksafe_txn_begin(p, &err), err);
    send_range(p, topic, 0, 20, KEYS);
    ck_assert_ok(ksafe_txn_abort(p, -1, &err), err);
    ck_assert_int_eq(ksafe_txn_abort(p, -1, &err), KSAFE_ESTATE);
    ksafe_producer_poll(p, 100);
    /* One report each; those not delivered say they were purged. */
    ck_assert_int_eq(r.delivered + r.failed, 20);
    for (i = 0; i < 20; i++) {
        ck_assert_int_eq(r.seen[i], 1);
        if (r.failed_code[i])
            ck_assert_msg(
                r.failed_code[i] == RD_KAFKA_RESP_ERR__PURGE_QUEUE ||
                    r.failed_code[i] == RD_KAFKA_RESP_ERR__PURGE_INFLIGHT,
                "record %d failed with %s", i,
                rd_kafka_err2name(r.failed_code[i]));
    }
    /* The next transaction works and is what a reader sees. */
    ck_assert_ok(ksafe_txn_begin(p, &err), err);
    send_range(p, topic, 20, 30, KEYS);
    ck_assert_ok(ksafe_txn_commit(p, -1, &err), err);
    ck_assert_ok(ksafe_producer_close(p, &err), err);
    ksafe_producer_free(p);
}
END_TEST

START_TEST(close_aborts_an_open_transaction)
{
    ksafe_producer_options o;
    ksafe_producer *p;
    ksafe_error err;
    char topic[64], txn_id[64];
    static reports r;

    memset(&r, 0, sizeof(r));
    new_topic(topic, sizeof(topic), "txn-close", 1);
    txn_options(&o, &r, txn_id, sizeof(txn_id));
    o.linger_ms = 5000;
    ck_assert_ok(ksafe_producer_new(&p, &o, &err), err);
    ck_assert_ok(ksafe_txn_begin(p, &err), err);
    send_range(p, topic, 0, 6, KEYS);
    ck_assert_int_eq(ksafe_producer_close(p, &err), KSAFE_ETXNABORTED);
    ck_assert_ptr_nonnull(strstr(err.message, "6 records"));
    ck_assert_ptr_nonnull(strstr(err.message, "transaction was aborted"));
    ck_assert_int_eq(r.failed, 6);
    ksafe_producer_free(p);
}
END_TEST

START_TEST(abortable_error_aborts_for_the_caller)
{
    static const rd_kafka_resp_err_t too_large[] = {
        RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE};
    ksafe_mock_cluster *mc = fault_cluster("failing a record in a txn");
    ksafe_producer_options o;
    ksafe_producer *p;
    ksafe_error err;
    char topic[64], txn_id[64];
    static reports r;

    memset(&r, 0, sizeof(r));
    new_topic(topic, sizeof(topic), "txn-abortable", 1);
    txn_options(&o, &r, txn_id, sizeof(txn_id));
    ck_assert_ok(ksafe_producer_new(&p, &o, &err), err);
    ck_assert_ok(ksafe_txn_begin(p, &err), err);
    ck_assert_ok(ksafe_mock_cluster_push_request_errors(mc, 0, 1, too_large,
                                                        &err),
                 err);
    send_range(p, topic, 0, 1, KEYS);
    ck_assert_int_eq(ksafe_txn_commit(p, -1, &err), KSAFE_ETXNABORTED);
    ck_assert_uint_eq(err.flags & KSAFE_ERROR_TXN_REQUIRES_ABORT,
                      KSAFE_ERROR_TXN_REQUIRES_ABORT);
    ck_assert_int_eq(r.failed, 1);
    ck_assert_int_eq(r.failed_code[0], RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE);
    /* Aborted for us: nothing open, and the next one commits. The next
     * records go to another topic: after the abort librdkafka restarts the
     * failed partition's sequence numbers, which the embedded cluster
     * (2.0.2) answers with OUT_OF_ORDER_SEQUENCE_NUMBER. */
    ck_assert_int_eq(ksafe_txn_abort(p, -1, &err), KSAFE_ESTATE);
    ck_assert_ok(ksafe_txn_begin(p, &err), err);
    new_topic(topic, sizeof(topic), "txn-abortable-next", 1);
    send_range(p, topic, 1, 2, KEYS);
    ck_assert_ok(ksafe_txn_commit(p, -1, &err), err);
    ck_assert_int_eq(r.delivered, 1);
    ck_assert_ok(ksafe_producer_close(p, &err), err);
    ksafe_producer_free(p);
}
END_TEST

/* Records acknowledged inside a transaction that close aborts are lost to
 * read_committed readers all the same: close must say so. */
START_TEST(close_reports_an_acknowledged_open_transaction)
{
    ksafe_producer_options o;
    ksafe_producer *p;
    ksafe_error err;
    char topic[64], txn_id[64];
    static reports r;

    memset(&r, 0, sizeof(r));
    new_topic(topic, sizeof(topic), "txn-close-acked", 1);
    txn_options(&o, &r, txn_id, sizeof(txn_id));
    ck_assert_ok(ksafe_producer_new(&p, &o, &err), err);
    ck_assert_ok(ksafe_txn_begin(p, &err), err);
    send_range(p, topic, 0, 5, KEYS);
    ck_assert_ok(ksafe_producer_flush(p, 30000, &err), err);
    ck_assert_int_eq(r.delivered, 5);
    ck_assert_int_eq(ksafe_producer_close(p, &err), KSAFE_ETXNABORTED);
    ck_assert_int_eq(err.code, KSAFE_ETXNABORTED);
    ck_assert_msg(strstr(err.message, "5 records") &&
                      strstr(err.message, "aborted"),
                  "%s", err.message);
    ck_assert_int_eq(r.failed, 0);
    ck_assert_ok(ksafe_producer_close(p, &err), err);
    ksafe_producer_free(p);
}
END_TEST

START_TEST(close_reports_an_abort_that_failed)
{
    ksafe_mock_cluster *mc = fault_cluster("taking the coordinator down");
    ksafe_producer_options o;
    ksafe_producer *p;
    ksafe_error err;
    char topic[64], txn_id[64];
    static reports r;

    memset(&r, 0, sizeof(r));
    new_topic(topic, sizeof(topic), "txn-close-down", 1);
    txn_options(&o, &r, txn_id, sizeof(txn_id));
    ck_assert_ok(ksafe_producer_new(&p, &o, &err), err);
    ck_assert_ok(ksafe_txn_begin(p, &err), err);
    send_range(p, topic, 0, 3, KEYS);
    ck_assert_ok(ksafe_producer_flush(p, 30000, &err), err);
    ck_assert_int_eq(r.delivered, 3);
    ck_assert_ok(ksafe_mock_cluster_broker_down(mc, 1, &err), err);
    ck_assert_int_eq(ksafe_producer_close_timeout(p, 1000, &err),
                     KSAFE_ETXNABORTED);
    ck_assert_msg(strstr(err.message, "3 records") &&
                      strstr(err.message, "abort failed"),
                  "%s", err.message);
    ck_assert_ok(ksafe_mock_cluster_broker_up(mc, 1, &err), err);
    ksafe_producer_free(p);
}
END_TEST

START_TEST(fatal_error_in_transaction_hands_records_back)
{
    ksafe_producer_options o;
    ksafe_producer *p;
    ksafe_error err;
    char topic[64], txn_id[64];
    static reports r;
    static handback h;
    size_t rescued;

    memset(&r, 0, sizeof(r));
    memset(&h, 0, sizeof(h));
    new_topic(topic, sizeof(topic), "txn-fatal", 1);
    txn_options(&o, &r, txn_id, sizeof(txn_id));
    o.linger_ms = 5000;
    ck_assert_ok(ksafe_producer_new(&p, &o, &err), err);
    ck_assert_ok(ksafe_txn_begin(p, &err), err);
    send_range(p, topic, 0, 5, KEYS);
    ck_assert_int_eq(
        rd_kafka_test_fatal_error(ksafe_producer_rdkafka(p),
                                  RD_KAFKA_RESP_ERR_PRODUCER_FENCED,
                                  "ksafe test"),
        RD_KAFKA_RESP_ERR_NO_ERROR);
    ck_assert_int_eq(ksafe_txn_commit(p, -1, &err), KSAFE_EFATAL);
    ck_assert_uint_eq(err.flags & KSAFE_ERROR_FATAL, KSAFE_ERROR_FATAL);
    ck_assert_int_eq(ksafe_producer_recover(p, KSAFE_RECOVER_RESEND, NULL,
                                            NULL, NULL, &err),
                     KSAFE_EINVAL);
    ck_assert_ok(ksafe_producer_recover(p, KSAFE_RECOVER_HAND_BACK,
                                        on_handback, &h, &rescued, &err),
                 err);
    ck_assert_uint_eq(rescued, 5);
    ck_assert_int_eq(h.count, 5);
    ck_assert_int_eq(h.bad, 0);
    ck_assert_int_eq(r.delivered + r.failed, 0);
    /* The fresh instance runs transactions again. */
    ck_assert_ok(ksafe_txn_begin(p, &err), err);
    send_range(p, topic, 0, 5, KEYS);
    ck_assert_ok(ksafe_txn_commit(p, -1, &err), err);
    ck_assert_int_eq(r.delivered, 5);
    ck_assert_ok(ksafe_producer_close(p, &err), err);
    ksafe_producer_free(p);
}
END_TEST

START_TEST(offsets_join_the_transaction)
{
    ksafe_producer_options o;
    ksafe_consumer_options co;
    ksafe_producer *p;
    ksafe_consumer *c;
    ksafe_error err;
    char topic[64], txn_id[64], group[64];
    rd_kafka_consumer_group_metadata_t *meta;
    rd_kafka_topic_partition_list_t *l;
    static reports r;

    memset(&r, 0, sizeof(r));
    new_topic(topic, sizeof(topic), "txn-offsets", 1);
    ksafe_test_unique_name(group, sizeof(group), "txn-offsets-g");
    ksafe_test_cluster_consumer_options(tc, &co, group);
    co.log_cb = test_quiet_log;
    ck_assert_ok(ksafe_consumer_new(&c, &co, &err), err);
    meta = rd_kafka_consumer_group_metadata(ksafe_consumer_rdkafka(c));
    l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, topic, 0)->offset = 5;

    txn_options(&o, &r, txn_id, sizeof(txn_id));
    ck_assert_ok(ksafe_producer_new(&p, &o, &err), err);
    ck_assert_int_eq(ksafe_txn_send_offsets(p, l, meta, -1, &err),
                     KSAFE_ESTATE);
    ck_assert_ok(ksafe_txn_begin(p, &err), err);
    ck_assert_int_eq(ksafe_txn_send_offsets(p, NULL, meta, -1, &err),
                     KSAFE_EINVAL);
    send_range(p, topic, 0, 6, KEYS);
    ck_assert_ok(ksafe_txn_send_offsets(p, l, meta, -1, &err), err);
    ck_assert_ok(ksafe_txn_commit(p, -1, &err), err);
    ck_assert_int_eq(r.delivered, 6);
    ck_assert_ok(ksafe_producer_close(p, &err), err);
    ksafe_producer_free(p);
    rd_kafka_topic_partition_list_destroy(l);
    rd_kafka_consumer_group_metadata_destroy(meta);
    ksafe_consumer_free(c);
}
END_TEST

static Suite *producer_suite(void)
{
    Suite *s = suite_create("producer");
    struct {
        const char *name;
        const TTest *test;
        const char *tags; /* TEST_EMBEDDED_ONLY: fault injection */
    } cases[] = {
        {"bad records", bad_records_are_refused_naming_the_field, NULL},
        {"placement", keys_are_placed_as_documented, NULL},
        {"retriable faults", retriable_faults_lose_and_duplicate_nothing,
         TEST_EMBEDDED_ONLY},
        {"delivery timeout", timed_out_records_are_reported_failed,
         TEST_EMBEDDED_ONLY},
        {"close", close_counts_what_it_could_not_deliver, TEST_EMBEDDED_ONLY},
        {"queue full", queue_full_returns_or_blocks_as_chosen, NULL},
        {"sync", sync_send_returns_the_real_offset, NULL},
        {"fatal resend", fatal_error_then_resend_delivers_each_record_once, NULL},
        {"fatal resend without opaques",
         fatal_error_then_resend_delivers_each_record_once, NULL},
        {"fatal hand back", fatal_error_then_hand_back_returns_each_record, NULL},
        {"fatal hand-back order", fatal_error_hands_back_in_send_order,
         TEST_EMBEDDED_ONLY},
        {"fatal hand-back order without opaques",
         fatal_error_hands_back_in_send_order, TEST_EMBEDDED_ONLY},
        {"fatal close", close_after_fatal_error_reports_held_records, NULL},
        {"no callback", failures_without_a_callback_are_logged_and_returned,
         TEST_EMBEDDED_ONLY},
        {"fatal outage", recover_during_an_outage_accounts_for_every_record,
         TEST_EMBEDDED_ONLY},
        {"txn close acked", close_reports_an_acknowledged_open_transaction, NULL},
        {"txn close abort fails", close_reports_an_abort_that_failed,
         TEST_EMBEDDED_ONLY},
        {"txn safety",
         transactions_keep_idempotence_even_when_unsafe_is_allowed, NULL},
        {"txn commit", committed_transaction_delivers_its_records, NULL},
        {"txn abort", aborted_transaction_is_quiet_and_accounted, NULL},
        {"txn close", close_aborts_an_open_transaction, NULL},
        {"txn abortable", abortable_error_aborts_for_the_caller,
         TEST_EMBEDDED_ONLY},
        {"txn fatal", fatal_error_in_transaction_hands_records_back, NULL},
        {"txn offsets", offsets_join_the_transaction, NULL},
    };
    size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        TCase *t = tcase_create(cases[i].name);
        tcase_set_timeout(t, 120);
        tcase_add_checked_fixture(t, with_opaques, NULL);
        /* The second of two cases on one test runs it with _i = 1. */
        if (i > 0 && cases[i].test == cases[i - 1].test)
            tcase_add_loop_test(t, cases[i].test, 1, 2);
        else
            tcase_add_test(t, cases[i].test);
        if (cases[i].tags)
            tcase_set_tags(t, cases[i].tags);
        suite_add_tcase(s, t);
    }
    return s;
}

/* One cluster for the whole file (created before, freed after all cases). */
int main(int argc, char **argv)
{
    ksafe_error err;
    int rc;

    if (ksafe_test_cluster_new(&tc, &err)) {
        fprintf(stderr, "cluster: %s\n", err.message);
        return EXIT_FAILURE;
    }
    rc = test_run(producer_suite(), argc, argv);
    ksafe_test_cluster_free(tc);
    return rc;
}
