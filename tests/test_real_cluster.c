/*
 * tests/test_real_cluster.c - what only a real Kafka broker shows:
 * read_committed hides aborted and fenced records, a newer instance fences
 * an older one, transactional offset commits are stored.
 *
 *   test-real-cluster              needs KSAFE_TEST_BOOTSTRAP; without it
 *                                  exits 77 (meson reports SKIP)
 *   test-real-cluster --embedded-part
 *                                  the part any cluster can show: the
 *                                  aborted and fenced records really reached
 *                                  the broker (a read_uncommitted reader
 *                                  sees them), so on a real broker their
 *                                  absence for read_committed proves the
 *                                  filtering and not a purge before send
 *
 * The embedded cluster (librdkafka 2.0.2's mock) ignores the isolation
 * level, fences nobody and drops transactional offsets.
 */
#include <unistd.h>

#include "testutil.h"

#define MAX_RECORDS 64
#define KEYS 3

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

/* ---- producing ---------------------------------------------------------- */

typedef struct reports {
    int delivered, failed;
} reports;

static void on_delivery(const ksafe_delivery *d, void *payload)
{
    reports *r = payload;
    if (d->error)
        r->failed++;
    else
        r->delivered++;
}

/* A transactional producer whose records would sit a whole second in its
 * queue: only a flush puts them on the broker before an abort. */
static ksafe_producer *txn_producer(const char *txn_id, reports *r)
{
    ksafe_producer_options o;
    ksafe_producer *p;
    ksafe_error err;

    ksafe_test_cluster_producer_options(tc, &o);
    o.log_cb = test_quiet_log;
    o.on_delivery = on_delivery;
    o.delivery_payload = r;
    o.transactional_id = txn_id;
    o.transaction_timeout_ms = 30000;
    o.delivery_timeout_ms = 20000;
    o.linger_ms = 1000;
    ck_assert_ok(ksafe_producer_new(&p, &o, &err), err);
    return p;
}

static void send_range(ksafe_producer *p, const char *topic, int from, int to)
{
    ksafe_error err;
    int i;

    for (i = from; i < to; i++) {
        char key[32], value[32];
        ksafe_record rec = KSAFE_RECORD_INIT;

        snprintf(key, sizeof(key), "key-%d", i % KEYS);
        snprintf(value, sizeof(value), "value-%d", i);
        rec.topic = topic;
        rec.key = key;
        rec.key_len = strlen(key);
        rec.value = value;
        rec.value_len = strlen(value);
        ck_assert_ok(ksafe_producer_send(p, &rec, &err), err);
    }
}

/* ---- reading back ------------------------------------------------------- */

typedef struct seen {
    int count[MAX_RECORDS];
    int total;
} seen;

/*
 * Reads every partition of `topic` from the start to its end with a plain
 * librdkafka consumer at `isolation` (the ksafe consumer only reads
 * committed). The end for read_committed is the last stable offset, so
 * nothing can arrive later that the reader missed.
 */
static void read_all(const char *topic, int partitions, const char *isolation,
                     seen *out)
{
    static const char *const props[] = {
        "enable.partition.eof", "true", "enable.auto.commit", "false",
        "auto.offset.reset", "earliest", "fetch.wait.max.ms", "10", NULL};
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_topic_partition_list_t *l;
    rd_kafka_t *rk;
    char errstr[256], group[64];
    int64_t deadline = now_ms() + 30000;
    int i, at_end = 0;

    memset(out, 0, sizeof(*out));
    ksafe_test_unique_name(group, sizeof(group), "rc-read");
    ck_assert_int_eq(rd_kafka_conf_set(conf, "bootstrap.servers",
                                       ksafe_test_cluster_bootstrap(tc),
                                       errstr, sizeof(errstr)),
                     RD_KAFKA_CONF_OK);
    ck_assert_int_eq(rd_kafka_conf_set(conf, "group.id", group, errstr,
                                       sizeof(errstr)),
                     RD_KAFKA_CONF_OK);
    ck_assert_int_eq(rd_kafka_conf_set(conf, "isolation.level", isolation,
                                       errstr, sizeof(errstr)),
                     RD_KAFKA_CONF_OK);
    for (i = 0; props[i]; i += 2)
        ck_assert_int_eq(rd_kafka_conf_set(conf, props[i], props[i + 1],
                                           errstr, sizeof(errstr)),
                         RD_KAFKA_CONF_OK);
    rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
    ck_assert_msg(rk != NULL, "reader: %s", errstr);
    l = rd_kafka_topic_partition_list_new(partitions);
    for (i = 0; i < partitions; i++)
        rd_kafka_topic_partition_list_add(l, topic, i)->offset =
            RD_KAFKA_OFFSET_BEGINNING;
    ck_assert_int_eq(rd_kafka_assign(rk, l), 0);
    rd_kafka_topic_partition_list_destroy(l);
    while (at_end < partitions && now_ms() < deadline) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
        int v;
        char buf[32];

        if (!m)
            continue;
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            at_end++;
        } else {
            ck_assert_msg(!m->err, "reader: %s", rd_kafka_message_errstr(m));
            ck_assert_int_lt(m->len, sizeof(buf));
            memcpy(buf, m->payload, m->len);
            buf[m->len] = '\0';
            ck_assert_int_eq(sscanf(buf, "value-%d", &v), 1);
            ck_assert(v >= 0 && v < MAX_RECORDS);
            out->count[v]++;
            out->total++;
        }
        rd_kafka_message_destroy(m);
    }
    ck_assert_msg(at_end == partitions,
                  "%s reader reached the end of %d of %d partitions of %s "
                  "in 30 s",
                  isolation, at_end, partitions, topic);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
}

/* Each of [from, to) was read `times` times. */
static void assert_seen(const seen *s, int from, int to, int times,
                        const char *what)
{
    int i;

    for (i = from; i < to; i++)
        ck_assert_msg(s->count[i] == times,
                      "%s: value-%d read %d times, expected %d", what, i,
                      s->count[i], times);
}

/* ---- tests -------------------------------------------------------------- */

/*
 * An aborted transaction's records are on the broker (flushed and
 * acknowledged before the abort), a read_uncommitted reader sees them, a
 * read_committed reader does not.
 */
START_TEST(read_committed_hides_aborted_records)
{
    ksafe_producer *p;
    ksafe_error err;
    char topic[64], txn_id[64];
    reports r = {0, 0};
    seen s;

    new_topic(topic, sizeof(topic), "rc-abort", 2);
    ksafe_test_unique_name(txn_id, sizeof(txn_id), "rc-abort-txn");
    p = txn_producer(txn_id, &r);
    ck_assert_ok(ksafe_txn_begin(p, &err), err);
    send_range(p, topic, 0, 20);
    /* Without the flush the abort would purge them from our queue (linger
     * 1 s): a read_committed reader would see nothing either way. */
    ck_assert_ok(ksafe_producer_flush(p, 30000, &err), err);
    ck_assert_int_eq(r.delivered, 20); /* on the broker, acknowledged */
    ck_assert_ok(ksafe_txn_abort(p, -1, &err), err);
    ck_assert_ok(ksafe_txn_begin(p, &err), err);
    send_range(p, topic, 20, 30);
    ck_assert_ok(ksafe_txn_commit(p, -1, &err), err);
    ck_assert_int_eq(r.delivered, 30);
    ck_assert_ok(ksafe_producer_close(p, &err), err);
    ksafe_producer_free(p);

    read_all(topic, 2, "read_uncommitted", &s);
    assert_seen(&s, 0, 30, 1, "read_uncommitted");
    ck_assert_int_eq(s.total, 30);
    if (ksafe_test_cluster_is_embedded(tc))
        return; /* it ignores the isolation level */
    read_all(topic, 2, "read_committed", &s);
    assert_seen(&s, 0, 20, 0, "read_committed (aborted)");
    assert_seen(&s, 20, 30, 1, "read_committed (committed)");
    ck_assert_int_eq(s.total, 10);
}
END_TEST

/*
 * A producer fenced mid-transaction by a newer instance with the same
 * transactional_id: its records reached the broker before the newer one
 * started, its commit fails, and read_committed never shows them.
 */
START_TEST(fenced_producer_records_stay_hidden)
{
    ksafe_producer *old, *newer;
    ksafe_error err;
    char topic[64], txn_id[64];
    reports r_old = {0, 0}, r_new = {0, 0};
    seen s;
    int rc;

    new_topic(topic, sizeof(topic), "rc-fence", 1);
    ksafe_test_unique_name(txn_id, sizeof(txn_id), "rc-fence-txn");
    old = txn_producer(txn_id, &r_old);
    ck_assert_ok(ksafe_txn_begin(old, &err), err);
    send_range(old, topic, 0, 3);
    /* On the broker before the newer instance fences this one: otherwise
     * they would fail in our queue and never be there to hide. */
    ck_assert_ok(ksafe_producer_flush(old, 30000, &err), err);
    ck_assert_int_eq(r_old.delivered, 3);
    newer = txn_producer(txn_id, &r_new);
    ck_assert_ok(ksafe_txn_init(newer, -1, &err), err);
    rc = ksafe_txn_commit(old, -1, &err);
    if (!ksafe_test_cluster_is_embedded(tc))
        ck_assert_msg(rc == KSAFE_EFATAL || rc == KSAFE_ETXNABORTED,
                      "commit of a fenced producer returned %d: %s", rc,
                      err.message);
    ksafe_producer_free(old);
    ck_assert_ok(ksafe_txn_begin(newer, &err), err);
    send_range(newer, topic, 3, 6);
    ck_assert_ok(ksafe_txn_commit(newer, -1, &err), err);
    ck_assert_int_eq(r_new.delivered, 3);
    ck_assert_ok(ksafe_producer_close(newer, &err), err);
    ksafe_producer_free(newer);

    read_all(topic, 1, "read_uncommitted", &s);
    assert_seen(&s, 0, 6, 1, "read_uncommitted");
    if (ksafe_test_cluster_is_embedded(tc))
        return; /* it fences nobody and ignores the isolation level */
    read_all(topic, 1, "read_committed", &s);
    assert_seen(&s, 0, 3, 0, "read_committed (fenced)");
    assert_seen(&s, 3, 6, 1, "read_committed (newer instance)");
    ck_assert_int_eq(s.total, 3);
}
END_TEST

/* Offsets sent to a transaction are the group's committed offsets after
 * the commit. */
START_TEST(transactional_offsets_are_stored)
{
    ksafe_consumer_options co;
    ksafe_consumer *c;
    ksafe_producer *p;
    ksafe_error err;
    char topic[64], txn_id[64], group[64];
    rd_kafka_consumer_group_metadata_t *meta;
    rd_kafka_topic_partition_list_t *l, *got;
    reports r = {0, 0};

    new_topic(topic, sizeof(topic), "rc-offsets", 1);
    ksafe_test_unique_name(group, sizeof(group), "rc-offsets-g");
    ksafe_test_unique_name(txn_id, sizeof(txn_id), "rc-offsets-txn");
    ksafe_test_cluster_consumer_options(tc, &co, group);
    co.log_cb = test_quiet_log;
    ck_assert_ok(ksafe_consumer_new(&c, &co, &err), err);
    meta = rd_kafka_consumer_group_metadata(ksafe_consumer_rdkafka(c));
    l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, topic, 0)->offset = 5;

    p = txn_producer(txn_id, &r);
    ck_assert_ok(ksafe_txn_begin(p, &err), err);
    send_range(p, topic, 0, 6);
    ck_assert_ok(ksafe_txn_send_offsets(p, l, meta, -1, &err), err);
    ck_assert_ok(ksafe_txn_commit(p, -1, &err), err);
    ck_assert_int_eq(r.delivered, 6);
    ck_assert_ok(ksafe_producer_close(p, &err), err);
    ksafe_producer_free(p);

    got = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(got, topic, 0);
    ck_assert_int_eq(rd_kafka_committed(ksafe_consumer_rdkafka(c), got, 10000),
                     0);
    ck_assert_int_eq(got->elems[0].offset, 5);
    rd_kafka_topic_partition_list_destroy(got);
    rd_kafka_topic_partition_list_destroy(l);
    rd_kafka_consumer_group_metadata_destroy(meta);
    ksafe_consumer_free(c);
}
END_TEST

static Suite *real_cluster_suite(int embedded_part)
{
    Suite *s = suite_create("real-cluster");
    TCase *t = tcase_create("transactions");

    tcase_add_unchecked_fixture(t, test_cluster_up, test_cluster_down);
    tcase_set_timeout(t, 120);
    tcase_add_test(t, read_committed_hides_aborted_records);
    tcase_add_test(t, fenced_producer_records_stay_hidden);
    if (!embedded_part)
        tcase_add_test(t, transactional_offsets_are_stored);
    suite_add_tcase(s, t);
    return s;
}

int main(int argc, char **argv)
{
    const char *bootstrap = getenv(KSAFE_TEST_BOOTSTRAP_ENV);
    int embedded_part = argc == 2 && strcmp(argv[1], "--embedded-part") == 0;
    SRunner *sr;
    int failed;

    if (argc > 1 && !embedded_part) {
        fprintf(stderr, "usage: %s [--embedded-part]\n", argv[0]);
        return 2;
    }
    if (!embedded_part && (!bootstrap || !*bootstrap)) {
        printf("SKIP: %s is not set; read_committed filtering, fencing and "
               "transactional offsets need a real Kafka broker "
               "(KSAFE_TEST_BOOTSTRAP=host:port meson test real-cluster)\n",
               KSAFE_TEST_BOOTSTRAP_ENV);
        return 77;
    }
    sr = srunner_create(real_cluster_suite(embedded_part));
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
