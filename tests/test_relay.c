/*
 * tests/test_relay.c - the exactly-once relay on the embedded cluster:
 * the flow, batch boundaries by count and by time, a transform failure
 * that aborts and rewinds to the transaction's first record, the failure
 * policies (skip, dead letter, stop), a revoke in the middle of a
 * transaction, fatal producer errors (stop, recreate), a graceful stop,
 * and the options the relay refuses.
 *
 * The embedded cluster shows aborted records to every reader and stores no
 * transactional offsets, so the output is read with read_uncommitted and
 * checked for what the relay wrote, aborted runs included; what only a
 * real broker shows (read_committed output, committed offsets, fencing)
 * is in tests/test_relay_real.c.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

#include "testutil.h"

#define N_MAX 1000

/* What the transform saw and does. */
typedef struct xform {
    ksafe_consumer *c;
    const char *out;       /* output topic */
    atomic_int calls[N_MAX];
    atomic_int ok[N_MAX];
    atomic_int total_calls;
    atomic_int seen_part[2]; /* records seen of partitions 0 and 1 */
    int distinct_ok;       /* indexes that had an OK call */
    int stop_at;           /* stop once this many indexes had one */
    int fail_index;        /* -1: none */
    int fail_times;        /* RETRY this many times, then OK; -1: FAIL */
    int emit_twice;        /* two output records per input */
    ksafe_producer *fatal_p; /* raise a fatal error on it at fatal_index */
    int fatal_index;
    int fatal_done;
    size_t oversize_index; /* emit a record too large for the broker */
} xform;

static void xform_init(xform *x, ksafe_consumer *c, const char *out)
{
    memset(x, 0, sizeof(*x));
    x->c = c;
    x->out = out;
    x->fail_index = -1;
    x->fatal_index = -1;
    x->oversize_index = (size_t)-1;
}

static int emit_invoice(ksafe_relay_emitter *em, const xform *x,
                        const ksafe_message *m, int i, const char *tag)
{
    char value[64];
    ksafe_record r = KSAFE_RECORD_INIT;
    ksafe_error err;
    static char big[2 * 1024 * 1024];

    snprintf(value, sizeof(value), "inv%s-%d", tag, i);
    r.topic = x->out;
    r.key = ksafe_message_key(m, &r.key_len);
    r.value = value;
    r.value_len = strlen(value);
    if ((size_t)i == x->oversize_index) {
        r.value = big;
        r.value_len = sizeof(big);
    }
    return ksafe_relay_emit(em, &r, &err);
}

static ksafe_handler_result transform(const ksafe_message *m,
                                      ksafe_relay_emitter *em,
                                      ksafe_error *err, void *payload)
{
    xform *x = payload;
    int i = test_value_index(m);
    int calls;

    ck_assert_int_lt(i, N_MAX);
    calls = atomic_fetch_add(&x->calls[i], 1) + 1;
    if (ksafe_message_partition(m) < 2)
        atomic_fetch_add(&x->seen_part[ksafe_message_partition(m)], 1);
    atomic_fetch_add(&x->total_calls, 1);
    if (i == x->fatal_index && !x->fatal_done) {
        x->fatal_done = 1;
        ck_assert_int_eq(
            rd_kafka_test_fatal_error(ksafe_producer_rdkafka(x->fatal_p),
                                      RD_KAFKA_RESP_ERR_PRODUCER_FENCED,
                                      "ksafe test: fenced"),
            RD_KAFKA_RESP_ERR_NO_ERROR);
    }
    if (emit_invoice(em, x, m, i, ""))
        return KSAFE_HANDLER_OK; /* the relay knows the emit failed */
    if (x->emit_twice && emit_invoice(em, x, m, i, "b"))
        return KSAFE_HANDLER_OK;
    if (i == x->fail_index) {
        /* Emitted first, then failed: the abort must hide the emit. */
        if (x->fail_times < 0) {
            snprintf(err->message, sizeof(err->message), "poison %d", i);
            return KSAFE_HANDLER_FAIL;
        }
        if (calls <= x->fail_times) {
            snprintf(err->message, sizeof(err->message), "transient %d", i);
            return KSAFE_HANDLER_RETRY;
        }
    }
    if (atomic_fetch_add(&x->ok[i], 1) == 0 &&
        ++x->distinct_ok == x->stop_at)
        ksafe_consumer_stop(x->c);
    return KSAFE_HANDLER_OK;
}

/* ---- clients and the output ------------------------------------------- */

static void new_topic(char *topic, size_t size, const char *prefix,
                      int partitions)
{
    ksafe_error err;

    ksafe_test_unique_name(topic, size, prefix);
    ck_assert_ok(ksafe_test_cluster_create_topic(tc, topic, partitions, &err),
                 err);
}

/* A transactional producer whose transaction timeout fits the test
 * consumers' session. */
static ksafe_producer *txn_producer(void)
{
    ksafe_producer_options o;
    ksafe_producer *p;
    ksafe_error err;
    static char ids[16][64];
    static int n;
    char *id = ids[n++ % 16];

    ksafe_test_cluster_producer_options(tc, &o);
    ksafe_test_unique_name(id, sizeof(ids[0]), "relay-txn");
    o.transactional_id = id;
    o.transaction_timeout_ms = test_session_ms(tc);
    o.delivery_timeout_ms = o.transaction_timeout_ms;
    o.log_cb = test_quiet_log;
    ck_assert_ok(ksafe_producer_new(&p, &o, &err), err);
    return p;
}

static void relay_options(ksafe_relay_options *o, xform *x,
                          ksafe_relay_stats *st)
{
    ck_assert_int_eq(ksafe_relay_options_init(o, KSAFE_RELAY_OPTIONS_VERSION),
                     0);
    o->transform = transform;
    o->payload = x;
    o->stats = st;
    o->backoff_initial_ms = 20;
    o->backoff_max_ms = 100;
}

/* One record of the output, in the order of its partition. */
typedef struct outrec {
    int index;
    int tag_b; /* the second record of emit_twice */
    int32_t partition;
    int64_t offset;
    char key[16];
    char origin_offset[24]; /* dead letters: ksafe.origin.offset */
} outrec;

/* Reads every record of `topic` (read_uncommitted: the embedded cluster
 * shows aborted records anyway) into out[]; returns how many. */
static int read_all(const char *topic, int partitions, outrec *out, int max)
{
    char errstr[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_topic_partition_list_t *l;
    rd_kafka_t *rk;
    int n = 0, eof = 0, i;
    int64_t deadline = 0;
    struct timespec ts;

    ck_assert_int_eq(rd_kafka_conf_set(conf, "bootstrap.servers",
                                       ksafe_test_cluster_bootstrap(tc),
                                       errstr, sizeof(errstr)),
                     RD_KAFKA_CONF_OK);
    rd_kafka_conf_set(conf, "group.id", "relay-reader", errstr,
                      sizeof(errstr));
    rd_kafka_conf_set(conf, "enable.partition.eof", "true", errstr,
                      sizeof(errstr));
    rd_kafka_conf_set(conf, "isolation.level", "read_uncommitted", errstr,
                      sizeof(errstr));
    rd_kafka_conf_set(conf, "log_level", "0", errstr, sizeof(errstr));
    rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
    ck_assert_ptr_nonnull(rk);
    l = rd_kafka_topic_partition_list_new(partitions);
    for (i = 0; i < partitions; i++)
        rd_kafka_topic_partition_list_add(l, topic, i)->offset =
            RD_KAFKA_OFFSET_BEGINNING;
    ck_assert_int_eq(rd_kafka_assign(rk, l), 0);
    rd_kafka_topic_partition_list_destroy(l);
    clock_gettime(CLOCK_MONOTONIC, &ts);
    deadline = ts.tv_sec + 30;
    while (eof < partitions) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 200);
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ck_assert_msg(ts.tv_sec < deadline, "reading %s: no end after 30 s",
                      topic);
        if (!m)
            continue;
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            eof++;
        } else if (!m->err) {
            outrec *o = &out[n++];
            char v[64];
            const void *hv;
            size_t hl;
            rd_kafka_headers_t *h = NULL;
            ck_assert_int_le(n, max);
            memset(o, 0, sizeof(*o));
            snprintf(v, sizeof(v), "%.*s", (int)m->len,
                     (const char *)m->payload);
            if (sscanf(v, "invb-%d", &o->index) == 1)
                o->tag_b = 1;
            else if (sscanf(v, "inv-%d", &o->index) != 1 &&
                     sscanf(v, "value-%d", &o->index) != 1)
                ck_abort_msg("unexpected output value %s", v);
            o->partition = m->partition;
            o->offset = m->offset;
            snprintf(o->key, sizeof(o->key), "%.*s", (int)m->key_len,
                     (const char *)m->key);
            if (!rd_kafka_message_headers(m, &h) &&
                !rd_kafka_header_get_last(h, "ksafe.origin.offset", &hv,
                                          &hl))
                snprintf(o->origin_offset, sizeof(o->origin_offset), "%.*s",
                         (int)hl, (const char *)hv);
        }
        rd_kafka_message_destroy(m);
    }
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return n;
}

/* Times each index appears in out[0..n) (first records only). */
static void count_indexes(const outrec *out, int n, int *counts, int max)
{
    int i;

    memset(counts, 0, sizeof(int) * (size_t)max);
    for (i = 0; i < n; i++)
        if (!out[i].tag_b)
            counts[out[i].index]++;
}

/* The last run of each key - what a redo leaves - is complete and in input
 * order: per key, the indexes of the last occurrences rise. */
static void assert_last_runs_in_order(const outrec *out, int n, int total)
{
    int last_pos[N_MAX], i, k;

    for (i = 0; i < total; i++)
        last_pos[i] = -1;
    for (i = 0; i < n; i++)
        if (!out[i].tag_b)
            last_pos[out[i].index] = i;
    for (i = 0; i < total; i++)
        ck_assert_msg(last_pos[i] >= 0, "index %d missing in the output", i);
    for (k = 0; k < 10; k++) {
        int prev = -1;
        for (i = k; i < total; i += 10) {
            /* one partition per key: positions in out[] follow offsets */
            ck_assert_msg(last_pos[i] > prev,
                          "key-%d: index %d was last written before index "
                          "%d",
                          k, i, i - 10);
            prev = last_pos[i];
        }
    }
}

/* ---- the flow ---------------------------------------------------------- */

START_TEST(relays_every_record_once)
{
    char in[64], out[64], group[64];
    static xform x;
    static outrec got[2 * N_MAX];
    int counts[N_MAX], n, i;
    ksafe_relay_options o;
    ksafe_relay_stats st;
    ksafe_consumer *c;
    ksafe_producer *p;
    ksafe_error err;

    new_topic(in, sizeof(in), "relay-in", 2);
    new_topic(out, sizeof(out), "relay-out", 2);
    test_produce(tc, in, 0, 200);
    ksafe_test_unique_name(group, sizeof(group), "relay");
    c = test_subscribed(tc, in, group);
    p = txn_producer();
    xform_init(&x, c, out);
    x.stop_at = 200;
    x.emit_twice = 1;
    relay_options(&o, &x, &st);
    o.batch_records = 25;
    ck_assert_ok(ksafe_relay_run(c, p, &o, &err), err);
    ck_assert_uint_eq(st.polled, 200);
    ck_assert_uint_eq(st.transformed, 200);
    ck_assert_uint_eq(st.emitted, 400);
    ck_assert_uint_eq(st.committed, 200);
    ck_assert_uint_eq(st.aborts, 0);
    ck_assert_uint_ge(st.transactions, 8);
    n = read_all(out, 2, got, 2 * N_MAX);
    ck_assert_int_eq(n, 400);
    count_indexes(got, n, counts, N_MAX);
    for (i = 0; i < 200; i++)
        ck_assert_int_eq(counts[i], 1);
    assert_last_runs_in_order(got, n, 200);
    ksafe_producer_free(p);
    ksafe_consumer_free(c);
}
END_TEST

START_TEST(batches_close_by_count)
{
    char in[64], out[64], group[64];
    static xform x;
    ksafe_relay_options o;
    ksafe_relay_stats st;
    ksafe_consumer *c;
    ksafe_producer *p;
    ksafe_error err;

    new_topic(in, sizeof(in), "relay-count", 1);
    new_topic(out, sizeof(out), "relay-count-out", 1);
    test_produce(tc, in, 0, 70);
    ksafe_test_unique_name(group, sizeof(group), "relay");
    c = test_subscribed(tc, in, group);
    p = txn_producer();
    xform_init(&x, c, out);
    x.stop_at = 70;
    relay_options(&o, &x, &st);
    o.batch_records = 7;
    o.batch_max_ms = test_session_ms(tc) / 2; /* time never closes one */
    ck_assert_ok(ksafe_relay_run(c, p, &o, &err), err);
    ck_assert_uint_eq(st.transactions, 10);
    ck_assert_uint_eq(st.committed, 70);
    ksafe_producer_free(p);
    ksafe_consumer_free(c);
}
END_TEST

/* Once the relay handled the first three records: waits, produces three
 * more, waits until they are handled too, waits, stops the relay. */
typedef struct trickle {
    const char *topic;
    ksafe_consumer *c;
    xform *x;
} trickle;

static void wait_distinct(xform *x, int n)
{
    struct timespec tick = {0, 20 * 1000000L};
    int i;

    for (i = 0; i < 3000 && x->distinct_ok < n; i++)
        nanosleep(&tick, NULL);
}

static void *trickle_run(void *arg)
{
    trickle *t = arg;
    struct timespec gap = {0, 700 * 1000000L};

    wait_distinct(t->x, 3);
    nanosleep(&gap, NULL);
    test_produce(tc, t->topic, 3, 6);
    wait_distinct(t->x, 6);
    nanosleep(&gap, NULL);
    ksafe_consumer_stop(t->c);
    return NULL;
}

START_TEST(batches_close_by_time)
{
    char in[64], out[64], group[64];
    static xform x;
    ksafe_relay_options o;
    ksafe_relay_stats st;
    ksafe_consumer *c;
    ksafe_producer *p;
    ksafe_error err;
    pthread_t th;
    trickle t;

    new_topic(in, sizeof(in), "relay-time", 1);
    new_topic(out, sizeof(out), "relay-time-out", 1);
    ksafe_test_unique_name(group, sizeof(group), "relay");
    c = test_subscribed(tc, in, group);
    p = txn_producer();
    xform_init(&x, c, out);
    relay_options(&o, &x, &st);
    o.batch_records = 1000;
    o.batch_max_ms = 200;
    test_produce(tc, in, 0, 3);
    t.topic = in;
    t.c = c;
    t.x = &x;
    /* Two groups of records 700 ms apart, then 700 ms before the stop: a
     * 200 ms batch time closes each group in a transaction of its own. */
    ck_assert_int_eq(pthread_create(&th, NULL, trickle_run, &t), 0);
    ck_assert_ok(ksafe_relay_run(c, p, &o, &err), err);
    pthread_join(th, NULL);
    ck_assert_uint_eq(st.committed, 6);
    ck_assert_uint_eq(st.transactions, 2);
    ksafe_producer_free(p);
    ksafe_consumer_free(c);
}
END_TEST

START_TEST(stop_commits_the_open_batch)
{
    char in[64], out[64], group[64];
    static xform x;
    ksafe_relay_options o;
    ksafe_relay_stats st;
    ksafe_consumer *c;
    ksafe_producer *p;
    ksafe_error err;

    new_topic(in, sizeof(in), "relay-stop", 1);
    new_topic(out, sizeof(out), "relay-stop-out", 1);
    test_produce(tc, in, 0, 50);
    ksafe_test_unique_name(group, sizeof(group), "relay");
    c = test_subscribed(tc, in, group);
    p = txn_producer();
    xform_init(&x, c, out);
    x.stop_at = 5;
    relay_options(&o, &x, &st);
    o.batch_records = 1000;
    o.batch_max_ms = test_session_ms(tc) / 2;
    ck_assert_ok(ksafe_relay_run(c, p, &o, &err), err);
    ck_assert_uint_eq(st.transactions, 1);
    ck_assert_uint_eq(st.committed, 5);
    ck_assert_uint_eq(st.aborts, 0);
    ksafe_producer_free(p);
    ksafe_consumer_free(c);
}
END_TEST

/* ---- failures ---------------------------------------------------------- */

START_TEST(transform_failure_aborts_and_rewinds_to_the_batch_start)
{
    char in[64], out[64], group[64];
    static xform x;
    static outrec got[2 * N_MAX];
    int counts[N_MAX], n, i;
    ksafe_relay_options o;
    ksafe_relay_stats st;
    ksafe_consumer *c;
    ksafe_producer *p;
    ksafe_error err;

    new_topic(in, sizeof(in), "relay-retry", 1);
    new_topic(out, sizeof(out), "relay-retry-out", 1);
    test_produce(tc, in, 0, 30);
    ksafe_test_unique_name(group, sizeof(group), "relay");
    c = test_subscribed(tc, in, group);
    p = txn_producer();
    xform_init(&x, c, out);
    x.stop_at = 30;
    x.fail_index = 15;
    x.fail_times = 1;
    relay_options(&o, &x, &st);
    o.batch_records = 10;
    o.batch_max_ms = test_session_ms(tc) / 2;
    ck_assert_ok(ksafe_relay_run(c, p, &o, &err), err);
    /* Batches 0-9 and 20-29 once; 10-14 twice (the aborted run and the
     * redo), 15 failed once then passed: the rewind went to offset 10,
     * the first record of the aborted transaction - not to the last
     * commit, which the embedded cluster does not even store. */
    for (i = 0; i < 30; i++)
        ck_assert_msg(atomic_load(&x.calls[i]) ==
                          (i >= 10 && i <= 15 ? 2 : 1),
                      "index %d: %d transform calls", i,
                      atomic_load(&x.calls[i]));
    ck_assert_uint_eq(st.aborts, 1);
    ck_assert_uint_eq(st.retries, 1);
    ck_assert_uint_eq(st.transformed, 35);
    ck_assert_uint_eq(st.committed, 30);
    ck_assert_uint_eq(st.transactions, 3);
    /* The aborted records stay in the log (a read_committed reader skips
     * them); the redo is complete and in order. */
    n = read_all(out, 1, got, 2 * N_MAX);
    count_indexes(got, n, counts, N_MAX);
    for (i = 0; i < 30; i++)
        ck_assert_int_eq(counts[i], i >= 10 && i <= 15 ? 2 : 1);
    ck_assert_int_eq(n, 36);
    assert_last_runs_in_order(got, n, 30);
    ksafe_producer_free(p);
    ksafe_consumer_free(c);
}
END_TEST

static void run_with_policy(ksafe_failure_policy policy, const char *dlq,
                            xform *x, ksafe_relay_stats *st, int *rc,
                            ksafe_error *err, char *out, size_t out_size)
{
    char in[64], group[64];
    ksafe_relay_options o;
    ksafe_consumer *c;
    ksafe_producer *p;

    new_topic(in, sizeof(in), "relay-policy", 1);
    new_topic(out, out_size, "relay-policy-out", 1);
    test_produce(tc, in, 0, 20);
    ksafe_test_unique_name(group, sizeof(group), "relay");
    c = test_subscribed(tc, in, group);
    p = txn_producer();
    xform_init(x, c, out);
    x->stop_at = 19; /* every index but the poison one */
    x->fail_index = 7;
    x->fail_times = -1;
    relay_options(&o, x, st);
    o.batch_records = 5;
    o.on_failure = policy;
    o.dead_letter_topic = dlq;
    *rc = ksafe_relay_run(c, p, &o, err);
    ksafe_producer_free(p);
    ksafe_consumer_free(c);
}

START_TEST(failed_record_is_skipped)
{
    char out[64];
    static xform x;
    static outrec got[N_MAX];
    int counts[N_MAX], n, i, rc;
    ksafe_relay_stats st;
    ksafe_error err;

    run_with_policy(KSAFE_FAILURE_SKIP, NULL, &x, &st, &rc, &err, out,
                    sizeof(out));
    ck_assert_ok(rc, err);
    ck_assert_uint_eq(st.failed, 1);
    ck_assert_uint_eq(st.skipped, 1);
    ck_assert_uint_eq(st.committed, 20); /* the skipped one counts too */
    ck_assert_int_eq(atomic_load(&x.calls[7]), 1); /* FAIL: no retry */
    n = read_all(out, 1, got, N_MAX);
    count_indexes(got, n, counts, N_MAX);
    /* 5 and 6 were written in the aborted transaction, then redone; 7's
     * output was aborted and never redone. */
    for (i = 0; i < 20; i++)
        ck_assert_int_eq(counts[i], i == 5 || i == 6 ? 2 : 1);
}
END_TEST

START_TEST(failed_record_is_dead_lettered_in_the_transaction)
{
    char out[64], dlq[64];
    static xform x;
    static outrec got[N_MAX];
    int n, rc;
    ksafe_relay_stats st;
    ksafe_error err;

    new_topic(dlq, sizeof(dlq), "relay-dlq", 1);
    run_with_policy(KSAFE_FAILURE_DEAD_LETTER, dlq, &x, &st, &rc, &err, out,
                    sizeof(out));
    ck_assert_ok(rc, err);
    ck_assert_uint_eq(st.dead_lettered, 1);
    ck_assert_uint_eq(st.committed, 20);
    n = read_all(dlq, 1, got, N_MAX);
    ck_assert_int_eq(n, 1);
    ck_assert_int_eq(got[0].index, 7); /* the input record itself */
    ck_assert_str_eq(got[0].origin_offset, "7");
}
END_TEST

START_TEST(failed_record_stops_the_relay)
{
    char out[64];
    static xform x;
    int rc;
    ksafe_relay_stats st;
    ksafe_error err;

    run_with_policy(KSAFE_FAILURE_STOP, NULL, &x, &st, &rc, &err, out,
                    sizeof(out));
    ck_assert_int_eq(rc, KSAFE_EHANDLER);
    ck_assert_ptr_nonnull(strstr(err.message, "offset 7 failed"));
    ck_assert_ptr_nonnull(strstr(err.message, "poison 7"));
    /* The batches before the poison one committed; its own did not. */
    ck_assert_uint_eq(st.transactions, 1);
    ck_assert_uint_eq(st.committed, 5);
    ck_assert_uint_eq(st.aborts, 1);
}
END_TEST

START_TEST(failed_emit_fails_the_record)
{
    char in[64], out[64], group[64];
    static xform x;
    ksafe_relay_options o;
    ksafe_relay_stats st;
    ksafe_consumer *c;
    ksafe_producer *p;
    ksafe_error err;

    new_topic(in, sizeof(in), "relay-emit", 1);
    new_topic(out, sizeof(out), "relay-emit-out", 1);
    test_produce(tc, in, 0, 10);
    ksafe_test_unique_name(group, sizeof(group), "relay");
    c = test_subscribed(tc, in, group);
    p = txn_producer();
    xform_init(&x, c, out);
    x.stop_at = 9;
    x.oversize_index = 4;
    relay_options(&o, &x, &st);
    o.max_attempts = 2;
    o.on_failure = KSAFE_FAILURE_SKIP;
    ck_assert_ok(ksafe_relay_run(c, p, &o, &err), err);
    ck_assert_int_eq(atomic_load(&x.calls[4]), 2);
    ck_assert_uint_eq(st.retries, 1);
    ck_assert_uint_eq(st.skipped, 1);
    ck_assert_uint_eq(st.committed, 10);
    ksafe_producer_free(p);
    ksafe_consumer_free(c);
}
END_TEST

START_TEST(stale_generation_at_commit_aborts_rewinds_and_redoes)
{
    char in[64], out[64], group[64];
    static xform x;
    static outrec got[2 * N_MAX];
    int counts[N_MAX], n, i;
    ksafe_mock_cluster *mc = ksafe_test_cluster_mock(tc);
    /* The offsets refused as from an old generation - a rebalance landed
     * between produce and commit (KIP-447): librdkafka makes the
     * transaction abortable. */
    static const rd_kafka_resp_err_t refusals[] = {
        RD_KAFKA_RESP_ERR_ILLEGAL_GENERATION};
    ksafe_relay_options o;
    ksafe_relay_stats st;
    ksafe_consumer *c;
    ksafe_producer *p;
    ksafe_error err;

    new_topic(in, sizeof(in), "relay-abort", 1);
    new_topic(out, sizeof(out), "relay-abort-out", 1);
    test_produce(tc, in, 0, 20);
    ksafe_test_unique_name(group, sizeof(group), "relay");
    c = test_subscribed(tc, in, group);
    p = txn_producer();
    xform_init(&x, c, out);
    x.stop_at = 20;
    relay_options(&o, &x, &st);
    o.batch_records = 10;
    o.batch_max_ms = test_session_ms(tc) / 2;
    ck_assert_ok(ksafe_mock_cluster_push_request_errors(mc, 28 /* TxnOffsetCommit */,
                                                        1, refusals, &err),
                 err);
    ck_assert_ok(ksafe_relay_run(c, p, &o, &err), err);
    ck_assert_uint_ge(st.aborts, 1);
    ck_assert_uint_eq(st.committed, 20);
    n = read_all(out, 1, got, 2 * N_MAX);
    count_indexes(got, n, counts, N_MAX);
    for (i = 0; i < 20; i++)
        ck_assert_int_ge(counts[i], 1);
    assert_last_runs_in_order(got, n, 20);
    ksafe_producer_free(p);
    ksafe_consumer_free(c);
}
END_TEST

/* ---- fatal errors ------------------------------------------------------ */

START_TEST(fenced_producer_stops_the_relay)
{
    char in[64], out[64], group[64];
    static xform x;
    ksafe_relay_options o;
    ksafe_relay_stats st;
    ksafe_consumer *c;
    ksafe_producer *p;
    ksafe_error err;

    new_topic(in, sizeof(in), "relay-fatal", 1);
    new_topic(out, sizeof(out), "relay-fatal-out", 1);
    test_produce(tc, in, 0, 20);
    ksafe_test_unique_name(group, sizeof(group), "relay");
    c = test_subscribed(tc, in, group);
    p = txn_producer();
    xform_init(&x, c, out);
    x.fatal_p = p;
    x.fatal_index = 12;
    relay_options(&o, &x, &st);
    o.batch_records = 5;
    ck_assert_int_eq(ksafe_relay_run(c, p, &o, &err), KSAFE_EFATAL);
    ck_assert_uint_eq(err.flags & KSAFE_ERROR_FATAL, KSAFE_ERROR_FATAL);
    ck_assert_ptr_nonnull(strstr(err.message, "newer instance"));
    ck_assert_ptr_nonnull(strstr(err.message, "took over"));
    ck_assert_uint_eq(st.committed, 10);
    ksafe_producer_free(p);
    ksafe_consumer_free(c);
}
END_TEST

START_TEST(fatal_error_recreates_the_producer_when_asked)
{
    char in[64], out[64], group[64];
    static xform x;
    static outrec got[2 * N_MAX];
    int counts[N_MAX], n, i;
    ksafe_relay_options o;
    ksafe_relay_stats st;
    ksafe_consumer *c;
    ksafe_producer *p;
    ksafe_error err;

    new_topic(in, sizeof(in), "relay-recreate", 1);
    new_topic(out, sizeof(out), "relay-recreate-out", 1);
    test_produce(tc, in, 0, 20);
    ksafe_test_unique_name(group, sizeof(group), "relay");
    c = test_subscribed(tc, in, group);
    p = txn_producer();
    xform_init(&x, c, out);
    x.stop_at = 20;
    x.fatal_p = p;
    x.fatal_index = 12;
    relay_options(&o, &x, &st);
    o.batch_records = 5;
    o.on_fatal = KSAFE_RELAY_FATAL_RECREATE;
    ck_assert_ok(ksafe_relay_run(c, p, &o, &err), err);
    ck_assert_uint_eq(st.recreated, 1);
    ck_assert_uint_eq(st.committed, 20);
    n = read_all(out, 1, got, 2 * N_MAX);
    count_indexes(got, n, counts, N_MAX);
    for (i = 0; i < 20; i++)
        ck_assert_int_ge(counts[i], 1);
    assert_last_runs_in_order(got, n, 20);
    ksafe_producer_free(p);
    ksafe_consumer_free(c);
}
END_TEST

/* ---- rebalances -------------------------------------------------------- */

/* Keeps records coming (two every 50 ms) while a second member joins the
 * group, stays a second and leaves; then stops the relay once every
 * record was relayed. */
typedef struct joiner {
    const char *in, *group;
    ksafe_consumer *relay_c;
    xform *x;
    int produced;
    int joined; /* the second member received records */
    int eager;  /* both members use an eager strategy */
} joiner;

static ksafe_consumer *eager_member(const char *topic, const char *group)
{
    ksafe_consumer_options o;
    ksafe_consumer *c;
    ksafe_error err;

    ksafe_test_cluster_consumer_options(tc, &o, group);
    o.log_cb = test_quiet_log;
    o.assignment_strategy = KSAFE_ASSIGN_RANGE;
    ck_assert_ok(ksafe_consumer_new(&c, &o, &err), err);
    ck_assert_ok(ksafe_consumer_subscribe(c, &topic, 1, &err), err);
    return c;
}

static void *joiner_run(void *arg)
{
    joiner *j = arg;
    ksafe_consumer *b;
    ksafe_error err;
    struct timespec gap = {0, 50 * 1000000L};
    int64_t joined_at = 0;
    int i;

    /* The relay owns both partitions (it has records of each) before the
     * second member comes to take one. */
    for (i = 0; i < 300 && j->produced + 2 < N_MAX - 40 &&
                (i < 10 || !atomic_load(&j->x->seen_part[0]) ||
                 !atomic_load(&j->x->seen_part[1]));
         i++, j->produced += 2) {
        test_produce(tc, j->in, j->produced, j->produced + 2);
        nanosleep(&gap, NULL);
    }
    b = j->eager ? eager_member(j->in, j->group)
                 : test_subscribed(tc, j->in, j->group);
    for (i = 0; i < 400 && j->produced + 2 < N_MAX - 40; i++, j->produced += 2) {
        ksafe_message *m = NULL;
        struct timespec now;
        test_produce(tc, j->in, j->produced, j->produced + 2);
        /* Never marked: what it polls is redone by the next owner. */
        if (!ksafe_consumer_poll(b, 50, &m, &err) && m) {
            ksafe_message_free(m);
            clock_gettime(CLOCK_MONOTONIC, &now);
            if (!j->joined)
                joined_at = now.tv_sec;
            j->joined = 1;
        }
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (j->joined && now.tv_sec > joined_at + 1)
            break;
    }
    ksafe_consumer_close(b, &err);
    ksafe_consumer_free(b);
    for (i = 0; i < 10; i++, j->produced += 2) {
        test_produce(tc, j->in, j->produced, j->produced + 2);
        nanosleep(&gap, NULL);
    }
    wait_distinct(j->x, j->produced);
    ksafe_consumer_stop(j->relay_c);
    return NULL;
}

static void revoke_mid_transaction(int eager)
{
    char in[64], out[64], group[64];
    static xform x;
    static outrec got[4 * N_MAX];
    int counts[N_MAX], n, i;
    ksafe_relay_options o;
    ksafe_relay_stats st;
    ksafe_consumer *c;
    ksafe_producer *p;
    ksafe_error err;
    pthread_t th;
    joiner j;

    new_topic(in, sizeof(in), "relay-rebalance", 2);
    new_topic(out, sizeof(out), "relay-rebalance-out", 2);
    ksafe_test_unique_name(group, sizeof(group), "relay");
    c = eager ? eager_member(in, group) : test_subscribed(tc, in, group);
    p = txn_producer();
    xform_init(&x, c, out);
    relay_options(&o, &x, &st);
    /* Transactions stay open as long as allowed, so the revoke finds one. */
    o.batch_records = 100000;
    o.batch_max_ms = test_session_ms(tc) / 2;
    memset(&j, 0, sizeof(j));
    j.in = in;
    j.group = group;
    j.relay_c = c;
    j.x = &x;
    j.eager = eager;
    ck_assert_int_eq(pthread_create(&th, NULL, joiner_run, &j), 0);
    ck_assert_ok(ksafe_relay_run(c, p, &o, &err), err);
    pthread_join(th, NULL);
    ck_assert_msg(j.joined, "the second member never received a record");
    ck_assert_uint_ge(st.rebalance_aborts, 1);
    ck_assert_uint_ge(st.aborts, st.rebalance_aborts);
    n = read_all(out, 2, got, 4 * N_MAX);
    count_indexes(got, n, counts, N_MAX);
    for (i = 0; i < j.produced; i++)
        ck_assert_msg(counts[i] >= 1, "index %d never relayed", i);
    ksafe_producer_free(p);
    ksafe_consumer_free(c);
}

/* Cooperative: the second member takes one of the two partitions; the
 * transaction had records of it, so it is aborted and the partition the
 * relay keeps is rewound (after the callback, where seeking is refused). */
START_TEST(revoke_mid_transaction_aborts_it)
{
    revoke_mid_transaction(0);
}
END_TEST

/* Eager: every rebalance revokes everything, the open transaction too. */
START_TEST(eager_revoke_mid_transaction_aborts_it)
{
    revoke_mid_transaction(1);
}
END_TEST

/* ---- refusals ---------------------------------------------------------- */

START_TEST(refuses_what_cannot_be_exactly_once)
{
    static xform x;
    ksafe_relay_options o;
    ksafe_relay_stats st;
    ksafe_producer_options po;
    ksafe_consumer *c;
    ksafe_producer *p, *plain;
    ksafe_error err;
    char in[64], group[64];

    new_topic(in, sizeof(in), "relay-refuse", 1);
    ksafe_test_unique_name(group, sizeof(group), "relay");
    c = test_subscribed(tc, in, group);
    p = txn_producer();
    xform_init(&x, c, "out");
    memset(&st, 0, sizeof(st));
    relay_options(&o, &x, &st);

    ck_assert_int_eq(ksafe_relay_run(NULL, p, &o, &err), KSAFE_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.message, "consumer is NULL"));
    ck_assert_int_eq(ksafe_relay_run(c, p, NULL, &err), KSAFE_EINVAL);
    ck_assert_int_eq(ksafe_relay_options_init(NULL, 1), KSAFE_EINVAL);
    ck_assert_int_eq(ksafe_relay_options_init(&o, 99), KSAFE_EVERSION);
    relay_options(&o, &x, &st);
    o.version = 99;
    ck_assert_int_eq(ksafe_relay_run(c, p, &o, &err), KSAFE_EVERSION);
    relay_options(&o, &x, &st);
    o.transform = NULL;
    ck_assert_int_eq(ksafe_relay_run(c, p, &o, &err), KSAFE_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.message, "transform"));
    relay_options(&o, &x, &st);
    o.batch_records = 0;
    ck_assert_int_eq(ksafe_relay_run(c, p, &o, &err), KSAFE_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.message, "batch_records"));
    relay_options(&o, &x, &st);
    o.on_failure = KSAFE_FAILURE_DEAD_LETTER;
    ck_assert_int_eq(ksafe_relay_run(c, p, &o, &err), KSAFE_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.message, "dead_letter_topic"));
    relay_options(&o, &x, &st);
    o.on_fatal = (ksafe_relay_on_fatal)7;
    ck_assert_int_eq(ksafe_relay_run(c, p, &o, &err), KSAFE_EINVAL);
    relay_options(&o, &x, &st);
    o.batch_max_ms = test_session_ms(tc); /* > half the txn timeout */
    ck_assert_int_eq(ksafe_relay_run(c, p, &o, &err), KSAFE_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.message, "batch_max_ms"));

    /* Not transactional. */
    relay_options(&o, &x, &st);
    ksafe_test_cluster_producer_options(tc, &po);
    ck_assert_ok(ksafe_producer_new(&plain, &po, &err), err);
    ck_assert_int_eq(ksafe_relay_run(c, plain, &o, &err), KSAFE_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.message, "transactional_id"));
    ksafe_producer_free(plain);

    /* A transaction that could outlive the member's session. */
    po.transactional_id = "relay-refuse-long";
    po.transaction_timeout_ms = test_session_ms(tc) + 1;
    po.delivery_timeout_ms = po.transaction_timeout_ms;
    ck_assert_ok(ksafe_producer_new(&plain, &po, &err), err);
    ck_assert_int_eq(ksafe_relay_run(c, plain, &o, &err), KSAFE_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.message, "transaction_timeout_ms"));
    ck_assert_ptr_nonnull(strstr(err.message, "session_timeout_ms"));
    ksafe_producer_free(plain);

    /* Refused before anything ran: no record was consumed. */
    ck_assert_uint_eq(st.polled, 0);
    ksafe_producer_free(p);
    ksafe_consumer_free(c);
}
END_TEST

static Suite *relay_suite(void)
{
    Suite *s = suite_create("relay");
    TCase *t = tcase_create("relay");

    tcase_add_unchecked_fixture(t, test_cluster_up, test_cluster_down);
    tcase_set_timeout(t, 120);
    tcase_add_test(t, refuses_what_cannot_be_exactly_once);
    tcase_add_test(t, relays_every_record_once);
    tcase_add_test(t, batches_close_by_count);
    tcase_add_test(t, batches_close_by_time);
    tcase_add_test(t, stop_commits_the_open_batch);
    tcase_add_test(t, transform_failure_aborts_and_rewinds_to_the_batch_start);
    tcase_add_test(t, failed_record_is_skipped);
    tcase_add_test(t, failed_record_is_dead_lettered_in_the_transaction);
    tcase_add_test(t, failed_record_stops_the_relay);
    tcase_add_test(t, failed_emit_fails_the_record);
    tcase_add_test(t, fenced_producer_stops_the_relay);
    tcase_add_test(t, fatal_error_recreates_the_producer_when_asked);
    tcase_add_test(t, revoke_mid_transaction_aborts_it);
    if (test_eager_runs())
        tcase_add_test(t, eager_revoke_mid_transaction_aborts_it);
    suite_add_tcase(s, t);
    t = tcase_create("relay-faults");
    tcase_add_unchecked_fixture(t, test_cluster_up, test_cluster_down);
    tcase_set_timeout(t, 120);
    tcase_set_tags(t, TEST_EMBEDDED_ONLY);
    tcase_add_test(t, stale_generation_at_commit_aborts_rewinds_and_redoes);
    suite_add_tcase(s, t);
    return s;
}

KSAFE_TEST_MAIN(relay_suite)
