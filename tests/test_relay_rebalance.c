/*
 * tests/test_relay_rebalance.c - the exactly-once relay when partitions
 * go in the middle of a transaction: revoked under cooperative and eager
 * assignment (a second member joins), and lost (one transform call
 * outlasts max_poll_interval_ms). Each aborts the transaction before the
 * partitions are released; every record is relayed in the end.
 */
#include <pthread.h>
#include <unistd.h>

#include "relay_fixture.h"

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

/* One transform call outlasts max_poll_interval_ms: the member is out of
 * the group when the batch is due, so the transaction is aborted, not
 * committed, and the records are redone after the member joins again. */
START_TEST(lost_mid_transaction_aborts_it)
{
    char in[64], out[64], group[64];
    static xform x;
    static outrec got[2 * N_MAX];
    int counts[N_MAX], n, i;
    ksafe_consumer_options co;
    ksafe_relay_options o;
    ksafe_relay_stats st;
    ksafe_consumer *c;
    ksafe_producer *p;
    ksafe_error err;
    const char *topic = in;

    new_topic(in, sizeof(in), "relay-lost", 1);
    new_topic(out, sizeof(out), "relay-lost-out", 1);
    test_produce(tc, in, 0, 20);
    ksafe_test_unique_name(group, sizeof(group), "relay");
    ksafe_test_cluster_consumer_options(tc, &co, group);
    co.log_cb = test_quiet_log;
    co.max_poll_interval_ms = test_session_ms(tc);
    ck_assert_ok(ksafe_consumer_new(&c, &co, &err), err);
    ck_assert_ok(ksafe_consumer_subscribe(c, &topic, 1, &err), err);
    p = txn_producer();
    xform_init(&x, c, out);
    x.stop_at = 20;
    x.sleep_index = 5;
    x.sleep_ms = co.max_poll_interval_ms + 1500;
    relay_options(&o, &x, &st);
    o.batch_records = 1000;
    o.batch_max_ms = test_session_ms(tc) / 2;
    ck_assert_ok(ksafe_relay_run(c, p, &o, &err), err);
    ck_assert_uint_ge(st.rebalance_aborts, 1);
    for (i = 0; i <= 5; i++)
        ck_assert_int_eq(atomic_load(&x.calls[i]), 2);
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

static Suite *relay_rebalance_suite(void)
{
    Suite *s = suite_create("relay-rebalance");
    TCase *t = tcase_create("relay-rebalance");

    tcase_add_unchecked_fixture(t, test_cluster_up, test_cluster_down);
    tcase_set_timeout(t, 120);
    tcase_add_test(t, revoke_mid_transaction_aborts_it);
    if (test_eager_runs())
        tcase_add_test(t, eager_revoke_mid_transaction_aborts_it);
    tcase_add_test(t, lost_mid_transaction_aborts_it);
    suite_add_tcase(s, t);
    return s;
}

KSAFE_TEST_MAIN(relay_rebalance_suite)
