/*
 * tests/test_relay_failures.c - the relay's failure policy when more than
 * one record of a partition fails inside one transaction (found running
 * samples/exactly_once_relay as a service over records it cannot parse).
 *
 * A failing record that emitted something aborts the transaction and
 * rewinds the partition to the transaction's first record, so the records
 * settled before (dead-lettered or skipped in the aborted transaction)
 * come again: the relay must still know their verdict, or two failing
 * records in a row take turns aborting each other's transaction and
 * nothing ever commits. A failing record that emitted nothing is settled
 * where it stands, with no abort at all.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

#include "testutil.h"

#define RECORDS 12

typedef struct xform {
    ksafe_consumer *c;
    const char *out;
    atomic_int calls;
    int reached_last; /* the last input was transformed */
    int emit_first;   /* the poison records emit before they fail */
} xform;

/* value-<i> with i % 3 == 0 and i < 9 fails for good: 0, 3, 6 in one
 * partition, each in the transaction of the ones before it. */
static ksafe_handler_result transform(const ksafe_message *m,
                                      ksafe_relay_emitter *em,
                                      ksafe_error *err, void *payload)
{
    xform *x = payload;
    ksafe_record r = KSAFE_RECORD_INIT;
    char value[32];
    int i = test_value_index(m);

    atomic_fetch_add(&x->calls, 1);
    snprintf(value, sizeof(value), "out-%d", i);
    r.topic = x->out;
    r.value = value;
    r.value_len = strlen(value);
    if (i % 3 == 0 && i < 9) {
        if (x->emit_first && ksafe_relay_emit(em, &r, err))
            return KSAFE_HANDLER_RETRY;
        snprintf(err->message, sizeof(err->message), "poison %d", i);
        return KSAFE_HANDLER_FAIL;
    }
    if (ksafe_relay_emit(em, &r, err))
        return KSAFE_HANDLER_RETRY;
    if (i == RECORDS - 1) {
        x->reached_last = 1;
        ksafe_consumer_stop(x->c); /* commits this transaction */
    }
    return KSAFE_HANDLER_OK;
}

/* A deadline for a relay that never gets there. */
static void *stop_later(void *arg)
{
    sleep(30);
    ksafe_consumer_stop(arg);
    return NULL;
}

static void run(ksafe_failure_policy policy, int emit_first)
{
    char in[64], out[64], dlq[64], group[64], txn_id[64];
    ksafe_producer_options po;
    ksafe_relay_options o;
    ksafe_relay_stats st;
    ksafe_consumer *c;
    ksafe_producer *p;
    ksafe_error err;
    pthread_t timer;
    static xform x;
    int rc;

    ksafe_test_unique_name(in, sizeof(in), "relay-fail-in");
    ksafe_test_unique_name(out, sizeof(out), "relay-fail-out");
    ksafe_test_unique_name(dlq, sizeof(dlq), "relay-fail-dlq");
    ck_assert_ok(ksafe_test_cluster_create_topic(tc, in, 1, &err), err);
    ck_assert_ok(ksafe_test_cluster_create_topic(tc, out, 1, &err), err);
    ck_assert_ok(ksafe_test_cluster_create_topic(tc, dlq, 1, &err), err);
    test_produce(tc, in, 0, RECORDS);
    ksafe_test_unique_name(group, sizeof(group), "relay-fail");
    c = test_subscribed(tc, in, group);

    ksafe_test_cluster_producer_options(tc, &po);
    ksafe_test_unique_name(txn_id, sizeof(txn_id), "relay-fail-txn");
    po.transactional_id = txn_id;
    po.transaction_timeout_ms = test_session_ms(tc);
    po.delivery_timeout_ms = po.transaction_timeout_ms;
    po.log_cb = test_quiet_log;
    ck_assert_ok(ksafe_producer_new(&p, &po, &err), err);

    memset(&x, 0, sizeof(x));
    x.c = c;
    x.out = out;
    x.emit_first = emit_first;
    memset(&st, 0, sizeof(st));
    ck_assert_int_eq(ksafe_relay_options_init(&o, KSAFE_RELAY_OPTIONS_VERSION),
                     0);
    o.transform = transform;
    o.payload = &x;
    o.stats = &st;
    o.batch_records = 100; /* all twelve in one transaction */
    o.batch_max_ms = 1000;
    o.backoff_initial_ms = 20;
    o.backoff_max_ms = 100;
    o.on_failure = policy;
    o.dead_letter_topic = policy == KSAFE_FAILURE_DEAD_LETTER ? dlq : NULL;
    ck_assert_int_eq(pthread_create(&timer, NULL, stop_later, c), 0);
    rc = ksafe_relay_run(c, p, &o, &err);
    pthread_cancel(timer);
    pthread_join(timer, NULL);
    ksafe_producer_free(p);
    ksafe_consumer_free(c);

    ck_assert_ok(rc, err);
    ck_assert_msg(x.reached_last,
                  "the relay never got past the failing records in 30 s: "
                  "%llu aborts, %llu transactions, %d transform calls",
                  (unsigned long long)st.aborts,
                  (unsigned long long)st.transactions,
                  atomic_load(&x.calls));
    ck_assert_uint_eq(st.failed, 3);
    ck_assert_uint_eq(st.committed, RECORDS);
    if (policy == KSAFE_FAILURE_DEAD_LETTER)
        ck_assert_uint_ge(st.dead_lettered, 3);
    else
        ck_assert_uint_ge(st.skipped, 3);
    /* Output of a poison record: one abort each, and each verdict is kept
     * across the later ones. None: no abort. */
    ck_assert_uint_eq(st.aborts, emit_first ? 3 : 0);
}

START_TEST(failing_records_in_a_row_are_all_dead_lettered)
{
    run(KSAFE_FAILURE_DEAD_LETTER, 1);
}
END_TEST

START_TEST(failing_records_in_a_row_are_all_skipped)
{
    run(KSAFE_FAILURE_SKIP, 1);
}
END_TEST

START_TEST(failing_records_that_emitted_nothing_cost_no_abort)
{
    run(KSAFE_FAILURE_DEAD_LETTER, 0);
}
END_TEST

static Suite *relay_failures_suite(void)
{
    Suite *s = suite_create("relay-failures");
    TCase *t = tcase_create("failures");

    tcase_add_unchecked_fixture(t, test_cluster_up, test_cluster_down);
    tcase_set_timeout(t, 120);
    tcase_add_test(t, failing_records_in_a_row_are_all_dead_lettered);
    tcase_add_test(t, failing_records_in_a_row_are_all_skipped);
    tcase_add_test(t, failing_records_that_emitted_nothing_cost_no_abort);
    suite_add_tcase(s, t);
    return s;
}

KSAFE_TEST_MAIN(relay_failures_suite)
