/*
 * tests/test_scenario.c - the scenario kit (ksafe/scenario.h): record sets,
 * producing and reading back, committed offsets, the background loop, the
 * waits, and each fault, each shown doing what it says to a running loop.
 */
#include <stdatomic.h>

#include "testutil.h"

static ksafe_test_cluster *cl; /* three brokers when embedded */

static void cluster_up(void)
{
    ksafe_error err;
    ck_assert_ok(ksafe_test_cluster_new_brokers(&cl, 3, &err), err);
}

static void cluster_down(void)
{
    ksafe_test_cluster_free(cl);
    cl = NULL;
}

/* ---- record sets --------------------------------------------------------- */

START_TEST(records_count_duplicates_and_compare_bytes)
{
    ksafe_test_records *a, *b;
    ksafe_test_record r, first;
    ksafe_error err;

    ck_assert_ok(ksafe_test_records_new(&a, &err), err);
    ck_assert_ok(ksafe_test_records_new(&b, &err), err);
    ck_assert_ok(ksafe_test_records_add(a, 0, 5, "k", 1, "v5", 2, &err), err);
    ck_assert_ok(ksafe_test_records_add(a, 1, 5, NULL, 0, "w5", 2, &err), err);
    ck_assert_ok(ksafe_test_records_add(a, 0, 6, "k", 1, "v6", 2, &err), err);
    ck_assert_ok(ksafe_test_records_add(b, 0, 5, "k", 1, "v5", 2, &err), err);
    ck_assert_ok(ksafe_test_records_add(b, 0, 5, "k", 1, "v5", 2, &err), err);
    /* same place, other bytes: not the record a holds */
    ck_assert_ok(ksafe_test_records_add(b, 1, 5, NULL, 0, "XX", 2, &err), err);

    ck_assert_uint_eq(ksafe_test_records_count(b), 3);
    ck_assert_uint_eq(ksafe_test_records_distinct(b), 2);
    ck_assert_uint_eq(ksafe_test_records_missing(a, b, &first), 2);
    ck_assert_int_eq(first.partition, 1);
    ck_assert_int_eq(first.offset, 5);
    ck_assert_uint_eq(ksafe_test_records_missing(b, a, NULL), 1);
    ck_assert_uint_eq(ksafe_test_records_missing(a, NULL, NULL), 3);
    ck_assert_uint_eq(ksafe_test_records_missing(a, a, NULL), 0);

    ck_assert_ok(ksafe_test_records_get(a, 1, &r, &err), err);
    ck_assert_ptr_null(r.key);
    ck_assert_str_eq(r.value, "w5");
    ck_assert_int_eq(ksafe_test_records_get(a, 3, &r, &err), KSAFE_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.message, "past"));
    ck_assert_int_eq(ksafe_test_records_add(a, -1, 0, NULL, 0, NULL, 0, &err),
                     KSAFE_EINVAL);
    ck_assert_int_eq(ksafe_test_records_add(a, 0, 1, NULL, 3, NULL, 0, &err),
                     KSAFE_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.message, "key"));
    ck_assert_uint_eq(ksafe_test_records_count(a), 3);
    ksafe_test_records_free(a);
    ksafe_test_records_free(b);
}
END_TEST

START_TEST(records_index_grows_past_its_first_table)
{
    ksafe_test_records *a;
    ksafe_error err;
    int i;

    ck_assert_ok(ksafe_test_records_new(&a, &err), err);
    for (i = 0; i < 5000; i++)
        ck_assert_ok(
            ksafe_test_records_add(a, i % 7, i / 7, "k", 1, "v", 1, &err),
            err);
    for (i = 0; i < 5000; i += 3)
        ck_assert_ok(
            ksafe_test_records_add(a, i % 7, i / 7, "k", 1, "v", 1, &err),
            err);
    ck_assert_uint_eq(ksafe_test_records_distinct(a), 5000);
    ck_assert_uint_eq(ksafe_test_records_count(a), 5000 + 1667);
    ksafe_test_records_free(a);
}
END_TEST

/* ---- a handler under test ------------------------------------------------ */

typedef struct handled {
    ksafe_test_records *set;
    atomic_int fail_value; /* -1: none; the value index to FAIL for good */
    atomic_int delay_ms;
} handled;

static ksafe_handler_result record(const ksafe_message *msg, ksafe_error *err,
                                   void *payload)
{
    handled *h = payload;
    int d = atomic_load(&h->delay_ms);

    if (test_value_index(msg) == atomic_load(&h->fail_value)) {
        snprintf(err->message, sizeof(err->message), "refused on purpose");
        return KSAFE_HANDLER_FAIL;
    }
    if (d) {
        struct timespec ts = {0, (long)d * 1000000L};
        nanosleep(&ts, NULL);
    }
    ksafe_test_records_add_message(h->set, msg, NULL);
    return KSAFE_HANDLER_OK;
}

typedef struct scenario {
    char topic[96], group[96];
    ksafe_test_records *produced;
    handled h;
    ksafe_consumer_options co;
    ksafe_consumer *c;
    ksafe_loop_options lo;
    ksafe_test_loop *loop;
} scenario;

/* One scenario at a time, in static storage: a failed assertion leaves
 * the test function (CK_FORK=no), and the teardown must still find the
 * loop to stop it before anything it uses goes away. */
static scenario s;

static void given(scenario *sc, const char *name, int partitions, size_t n)
{
    ksafe_error err;

    memset(sc, 0, sizeof(*sc));
    ksafe_test_unique_name(sc->topic, sizeof(sc->topic), name);
    ksafe_test_unique_name(sc->group, sizeof(sc->group), name);
    ck_assert_ok(ksafe_test_cluster_create_topic(cl, sc->topic, partitions, &err),
                 err);
    ck_assert_ok(ksafe_test_records_new(&sc->produced, &err), err);
    ck_assert_ok(ksafe_test_records_new(&sc->h.set, &err), err);
    atomic_store(&sc->h.fail_value, -1);
    ck_assert_ok(ksafe_test_produce(cl, sc->topic, n, sc->produced, &err), err);
    ck_assert_uint_eq(ksafe_test_records_count(sc->produced), n);
    ksafe_test_cluster_consumer_options(cl, &sc->co, sc->group);
    sc->co.log_cb = test_quiet_log;
    sc->lo.version = 0;
}

static void start_loop(scenario *sc)
{
    ksafe_loop_options lo = KSAFE_LOOP_OPTIONS_INIT;
    const char *topic = sc->topic;
    ksafe_error err;

    ck_assert_ok(ksafe_consumer_new(&sc->c, &sc->co, &err), err);
    ck_assert_ok(ksafe_consumer_subscribe(sc->c, &topic, 1, &err), err);
    lo.handler = record;
    lo.payload = &sc->h;
    lo.commit_interval_ms = 100;
    lo.commit_every_records = 10;
    lo.max_attempts = 1;
    sc->lo = lo;
    ck_assert_ok(ksafe_test_loop_start(&sc->loop, sc->c, &sc->lo, &err), err);
}

static int stop_loop(scenario *sc, ksafe_loop_stats *st, ksafe_error *err)
{
    int rc = ksafe_test_loop_stop(sc->loop, st, err);
    sc->loop = NULL;
    ksafe_consumer_free(sc->c);
    sc->c = NULL;
    return rc;
}

/* Committed == one past the last produced record, on every partition. */
static void then_all_committed(scenario *sc, int partitions)
{
    int64_t want[16], got[16];
    ksafe_test_record r;
    ksafe_error err;
    size_t i;
    int p;

    for (p = 0; p < partitions; p++)
        want[p] = KSAFE_TEST_NO_OFFSET;
    for (i = 0; i < ksafe_test_records_count(sc->produced); i++) {
        ck_assert_ok(ksafe_test_records_get(sc->produced, i, &r, &err), err);
        if (r.offset + 1 > want[r.partition])
            want[r.partition] = r.offset + 1;
    }
    ck_assert_ok(ksafe_test_committed(cl, sc->group, sc->topic, got, partitions,
                                      10000, &err),
                 err);
    for (p = 0; p < partitions; p++)
        ck_assert_msg(got[p] == want[p],
                      "partition %d: committed %lld, want %lld", p,
                      (long long)got[p], (long long)want[p]);
}

static void done(scenario *sc)
{
    ksafe_test_records_free(sc->produced);
    ksafe_test_records_free(sc->h.set);
    sc->produced = NULL;
    sc->h.set = NULL;
}

/* ---- data on the cluster ------------------------------------------------- */

START_TEST(produced_set_is_what_a_fresh_reader_reads)
{
    ksafe_test_records *read;
    ksafe_error err;
    int64_t got[4];

    given(&s, "scn-read", 4, 200);
    ck_assert_ok(ksafe_test_records_new(&read, &err), err);
    ck_assert_ok(ksafe_test_read_topic(cl, s.topic, read, 20000, &err), err);
    ck_assert_uint_eq(ksafe_test_records_count(read), 200);
    ck_assert_uint_eq(ksafe_test_records_missing(s.produced, read, NULL), 0);
    ck_assert_uint_eq(ksafe_test_records_missing(read, s.produced, NULL), 0);
    /* a group that never ran has nothing committed */
    ck_assert_ok(ksafe_test_committed(cl, s.group, s.topic, got, 4, 10000,
                                      &err),
                 err);
    ck_assert_int_eq(got[0], KSAFE_TEST_NO_OFFSET);
    ck_assert_int_eq(got[3], KSAFE_TEST_NO_OFFSET);
    ksafe_test_records_free(read);
    done(&s);
}
END_TEST

START_TEST(read_topic_of_an_unknown_topic_fails)
{
    ksafe_test_records *read;
    char topic[96];
    ksafe_error err;

    ksafe_test_unique_name(topic, sizeof(topic), "scn-none");
    ck_assert_ok(ksafe_test_records_new(&read, &err), err);
    ck_assert_int_lt(ksafe_test_read_topic(cl, topic, read, 5000, &err), 0);
    ck_assert_ptr_nonnull(strstr(err.message, topic));
    ksafe_test_records_free(read);
}
END_TEST

/* ---- the loop in the background ------------------------------------------ */

START_TEST(loop_handles_everything_and_commits_the_end)
{
    ksafe_loop_stats st;
    ksafe_error err;

    given(&s, "scn-loop", 4, 300);
    start_loop(&s);
    ck_assert_ok(
        ksafe_test_wait_records(s.produced, s.h.set, s.loop, 60000, &err), err);
    ck_assert_ok(stop_loop(&s, &st, &err), err);
    ck_assert_uint_ge(st.processed, 300);
    ck_assert_uint_ge(st.commits, 1);
    then_all_committed(&s, 4);
    done(&s);
}
END_TEST

static int never(void *payload)
{
    (void)payload;
    return 0;
}

START_TEST(wait_gives_up_when_the_loop_ended)
{
    ksafe_loop_stats st;
    ksafe_error err;
    int64_t committed[1];
    ksafe_test_record r;

    given(&s, "scn-fail", 1, 50);
    atomic_store(&s.h.fail_value, 20); /* value-20 is offset 20 */
    start_loop(&s);
    ck_assert_int_eq(ksafe_test_wait_for(never, NULL, s.loop, 60000, &err),
                     KSAFE_ESTOPPED);
    ck_assert_int_eq(
        ksafe_test_wait_records(s.produced, s.h.set, s.loop, 1000, &err),
        KSAFE_ESTOPPED);
    ck_assert_ptr_nonnull(strstr(err.message, "30 of 50"));
    ck_assert_ptr_nonnull(strstr(err.message, "offset 20"));
    ck_assert_int_eq(stop_loop(&s, &st, &err), KSAFE_EHANDLER);
    ck_assert_ptr_nonnull(strstr(err.message, "refused on purpose"));
    ck_assert_uint_eq(st.processed, 20);
    /* then nothing past the unhandled record was committed */
    ck_assert_ok(ksafe_test_records_get(s.produced, 20, &r, &err), err);
    ck_assert_ok(ksafe_test_committed(cl, s.group, s.topic, committed, 1,
                                      10000, &err),
                 err);
    ck_assert_int_le(committed[0], r.offset);
    ck_assert_int_eq(committed[0], 20);
    done(&s);
}
END_TEST

START_TEST(wait_times_out_with_the_first_missing_record)
{
    ksafe_test_records *none;
    ksafe_error err;

    given(&s, "scn-tmo", 1, 3);
    ck_assert_ok(ksafe_test_records_new(&none, &err), err);
    ck_assert_int_eq(
        ksafe_test_wait_records(s.produced, none, NULL, 50, &err),
        KSAFE_ETIMEDOUT);
    ck_assert_ptr_nonnull(strstr(err.message, "3 of 3"));
    ck_assert_ptr_nonnull(strstr(err.message, "offset 0"));
    ck_assert_int_eq(ksafe_test_wait_for(NULL, NULL, NULL, 10, &err),
                     KSAFE_EINVAL);
    ksafe_test_records_free(none);
    done(&s);
}
END_TEST

/* ---- faults ------------------------------------------------------------- */

static int handled_some(void *payload)
{
    return ksafe_test_records_distinct(payload) >= 30;
}

/* Each broker in turn goes away for 700 ms mid-run (the leaders of two
 * partitions each, and the group's coordinator once): every record is
 * still handled, and the end is committed. */
START_TEST(broker_outage_mid_run_loses_nothing)
{
    ksafe_loop_stats st;
    ksafe_error err;
    int b;

    given(&s, "scn-down", 6, 600);
    atomic_store(&s.h.delay_ms, 10);
    start_loop(&s);
    ck_assert_ok(ksafe_test_wait_for(handled_some, s.h.set, s.loop, 60000,
                                     &err),
                 err);
    for (b = 1; b <= 3; b++)
        ck_assert_ok(ksafe_test_broker_outage(cl, b, 700, &err), err);
    ck_assert_uint_lt(ksafe_test_records_distinct(s.h.set), 600);
    atomic_store(&s.h.delay_ms, 0);
    ck_assert_ok(
        ksafe_test_wait_records(s.produced, s.h.set, s.loop, 90000, &err), err);
    ck_assert_ok(stop_loop(&s, &st, &err), err);
    then_all_committed(&s, 6);
    done(&s);
}
END_TEST

static void count_refusals(int level, const char *fac, const char *msg,
                           void *payload)
{
    (void)level;
    if (!strcmp(fac, "COMMIT") && strstr(msg, "async commit refused"))
        atomic_fetch_add((atomic_int *)payload, 1);
}

/* Commits the broker refuses reach the consumer (logged), and the commit
 * policy's next commit carries the positions: the end is committed. */
START_TEST(refused_commits_are_retried_by_the_policy)
{
    ksafe_loop_stats st;
    ksafe_error err;
    atomic_int refusals;

    atomic_store(&refusals, 0);
    given(&s, "scn-commit", 2, 100);
    s.co.log_cb = count_refusals;
    s.co.log_payload = &refusals;
    ck_assert_ok(ksafe_test_fail_commits(
                     cl, 6, RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS, &err),
                 err);
    start_loop(&s);
    ck_assert_ok(
        ksafe_test_wait_records(s.produced, s.h.set, s.loop, 60000, &err), err);
    ck_assert_ok(ksafe_test_wait_committed(cl, s.group, s.topic, s.produced,
                                           s.loop, 60000, &err),
                 err);
    ck_assert_ok(stop_loop(&s, &st, &err), err);
    ck_assert_int_ge(atomic_load(&refusals), 1);
    then_all_committed(&s, 2);
    done(&s);
}
END_TEST

/* A refusal the producer may retry is retried (all delivered); one it may
 * not is reported, naming the broker's error. */
START_TEST(refused_produces_are_retried_by_the_producer)
{
    ksafe_test_records *read;
    ksafe_error err;

    given(&s, "scn-produce", 2, 0);
    ck_assert_ok(ksafe_test_fail_produces(
                     cl, 3, RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION, &err),
                 err);
    ck_assert_ok(ksafe_test_produce(cl, s.topic, 50, s.produced, &err), err);
    ck_assert_ok(ksafe_test_records_new(&read, &err), err);
    ck_assert_ok(ksafe_test_read_topic(cl, s.topic, read, 20000, &err), err);
    ck_assert_uint_eq(ksafe_test_records_count(read), 50);
    ck_assert_uint_eq(ksafe_test_records_missing(s.produced, read, NULL), 0);
    ksafe_test_records_free(read);

    ck_assert_ok(ksafe_test_fail_produces(
                     cl, 1, RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE, &err),
                 err);
    ck_assert_int_eq(ksafe_test_produce(cl, s.topic, 1, NULL, &err),
                     KSAFE_EUNDELIVERED);
    ck_assert_msg(strstr(err.message, "too large"), "%s", err.message);
    done(&s);
}
END_TEST

/* Slow brokers, then the coordinator moved twice: records produced after
 * the moves are handled and committed too, so commits reach the new
 * coordinator. */
START_TEST(slow_broker_and_moved_coordinator_lose_nothing)
{
    ksafe_loop_stats st;
    ksafe_error err;
    int b;

    given(&s, "scn-slow", 3, 150);
    atomic_store(&s.h.delay_ms, 2);
    start_loop(&s);
    ck_assert_ok(ksafe_test_wait_for(handled_some, s.h.set, s.loop, 60000,
                                     &err),
                 err);
    for (b = 1; b <= 3; b++)
        ck_assert_ok(ksafe_test_set_rtt(cl, b, 150, &err), err);
    ck_assert_ok(ksafe_test_move_coordinator(cl, s.group, 2, &err), err);
    ck_assert_ok(ksafe_test_move_coordinator(cl, s.group, 3, &err), err);
    atomic_store(&s.h.delay_ms, 0);
    ck_assert_ok(
        ksafe_test_wait_records(s.produced, s.h.set, s.loop, 90000, &err), err);
    for (b = 1; b <= 3; b++)
        ck_assert_ok(ksafe_test_set_rtt(cl, b, 0, &err), err);
    ck_assert_ok(ksafe_test_produce(cl, s.topic, 60, s.produced, &err), err);
    ck_assert_ok(
        ksafe_test_wait_records(s.produced, s.h.set, s.loop, 90000, &err), err);
    ck_assert_ok(ksafe_test_wait_committed(cl, s.group, s.topic, s.produced,
                                           s.loop, 90000, &err),
                 err);
    ck_assert_ok(stop_loop(&s, &st, &err), err);
    then_all_committed(&s, 3);
    done(&s);
}
END_TEST

/* A second member takes some partitions mid-run and leaves: this member
 * gives them up (revoked), gets them back, and handles and commits
 * everything. */
START_TEST(forced_rebalance_hands_everything_back)
{
    ksafe_loop_stats st;
    ksafe_error err;

    given(&s, "scn-rebalance", 4, 400);
    atomic_store(&s.h.delay_ms, 20); /* 400 records: 8 s of work */
    start_loop(&s);
    ck_assert_ok(ksafe_test_wait_for(handled_some, s.h.set, s.loop, 60000,
                                     &err),
                 err);
    ck_assert_ok(ksafe_test_rebalance(cl, &s.co, s.topic, 500, &err), err);
    ck_assert_uint_lt(ksafe_test_records_distinct(s.h.set), 400);
    atomic_store(&s.h.delay_ms, 0);
    ck_assert_ok(
        ksafe_test_wait_records(s.produced, s.h.set, s.loop, 90000, &err), err);
    /* The embedded cluster may take a member's partitions while it
     * rebalances (docs/testing.md): wait for the commits, not only the
     * handling, before stopping. */
    ck_assert_ok(ksafe_test_wait_committed(cl, s.group, s.topic, s.produced,
                                           s.loop, 90000, &err),
                 err);
    ck_assert_ok(stop_loop(&s, &st, &err), err);
    ck_assert_uint_ge(st.revoked, 1);
    /* the first assignment, the second member's join and its leave */
    ck_assert_uint_ge(st.rebalances, 3);
    then_all_committed(&s, 4);
    done(&s);
}
END_TEST

/* What needs a cluster of three brokers to refuse; the NULL handles and
 * the real-cluster refusals are in the bad_input suite. */
START_TEST(faults_refuse_bad_brokers_and_values)
{
    ksafe_error err;

    if (!ksafe_test_cluster_is_embedded(cl))
        return; /* these go to the embedded cluster's mock */
    ck_assert_int_eq(ksafe_test_broker_outage(cl, 4, 1, &err), KSAFE_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.message, "1..3"));
    ck_assert_int_eq(ksafe_test_broker_outage(cl, 1, -1, &err), KSAFE_EINVAL);
    ck_assert_int_eq(ksafe_test_set_rtt(cl, 1, -5, &err), KSAFE_EINVAL);
    ck_assert_int_eq(ksafe_test_set_rtt(cl, 1, 60001, &err), KSAFE_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.message, "rtt_ms"));
    ck_assert_int_eq(ksafe_mock_cluster_set_coordinator(
                         ksafe_test_cluster_mock(cl), "g", 4, &err),
                     KSAFE_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.message, "1..3"));
    ck_assert_int_eq(ksafe_mock_cluster_set_coordinator(
                         ksafe_test_cluster_mock(cl), "", 1, &err),
                     KSAFE_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.message, "empty"));
    ck_assert_int_eq(ksafe_test_move_coordinator(cl, NULL, 1, &err),
                     KSAFE_EINVAL);
}
END_TEST

/* Stops a loop a failed test left running, then frees its scenario. */
static void scenario_teardown(void)
{
    ksafe_error err;

    if (s.loop)
        stop_loop(&s, NULL, &err);
    ksafe_consumer_free(s.c);
    s.c = NULL;
    done(&s);
    memset(&s, 0, sizeof(s));
}

static Suite *scenario_suite(void)
{
    Suite *suite = suite_create("scenario");
    TCase *t = tcase_create("records");
    TCase *d = tcase_create("data");
    TCase *f = tcase_create("faults");

    tcase_add_test(t, records_count_duplicates_and_compare_bytes);
    tcase_add_test(t, records_index_grows_past_its_first_table);
    suite_add_tcase(suite, t);

    tcase_add_unchecked_fixture(d, cluster_up, cluster_down);
    tcase_add_checked_fixture(d, NULL, scenario_teardown);
    tcase_set_timeout(d, 120);
    tcase_add_test(d, produced_set_is_what_a_fresh_reader_reads);
    tcase_add_test(d, read_topic_of_an_unknown_topic_fails);
    tcase_add_test(d, loop_handles_everything_and_commits_the_end);
    tcase_add_test(d, wait_gives_up_when_the_loop_ended);
    tcase_add_test(d, wait_times_out_with_the_first_missing_record);
    tcase_add_test(d, forced_rebalance_hands_everything_back);
    tcase_add_test(d, faults_refuse_bad_brokers_and_values);
    suite_add_tcase(suite, d);

    tcase_add_unchecked_fixture(f, cluster_up, cluster_down);
    tcase_add_checked_fixture(f, NULL, scenario_teardown);
    tcase_set_timeout(f, 180);
    tcase_set_tags(f, TEST_EMBEDDED_ONLY);
    tcase_add_test(f, broker_outage_mid_run_loses_nothing);
    tcase_add_test(f, refused_commits_are_retried_by_the_policy);
    tcase_add_test(f, refused_produces_are_retried_by_the_producer);
    tcase_add_test(f, slow_broker_and_moved_coordinator_lose_nothing);
    suite_add_tcase(suite, f);
    return suite;
}

KSAFE_TEST_MAIN(scenario_suite)
