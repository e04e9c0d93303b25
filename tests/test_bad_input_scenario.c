/*
 * tests/test_bad_input_scenario.c - bad input to the scenario kit
 * (ksafe/scenario.h) and the mock's rtt and coordinator faults: NULL
 * handles, impossible records and indexes, negative timeouts, faults asked
 * of a real cluster. No broker is reached: the calls refuse before using
 * one, the "real" cluster is an address where nothing listens, and the
 * embedded one is only started.
 */
#include "bad_input.h"

static int no(void *payload)
{
    (void)payload;
    return 0;
}

START_TEST(scenario_records_bad_input)
{
    ksafe_test_records *rs;
    ksafe_test_record r;
    ksafe_error err;

    BAD(KSAFE_EINVAL, "out", ksafe_test_records_new(NULL, E));
    ck_assert_ok(ksafe_test_records_new(&rs, &err), err);
    BAD(KSAFE_EINVAL, "record set",
        ksafe_test_records_add(NULL, 0, 0, NULL, 0, NULL, 0, E));
    BAD(KSAFE_EINVAL, "partition -1",
        ksafe_test_records_add(rs, -1, 0, NULL, 0, NULL, 0, E));
    BAD(KSAFE_EINVAL, "offset -3",
        ksafe_test_records_add(rs, 0, -3, NULL, 0, NULL, 0, E));
    BAD(KSAFE_EINVAL, "key is NULL with a length",
        ksafe_test_records_add(rs, 0, 0, NULL, 4, NULL, 0, E));
    BAD(KSAFE_EINVAL, "value is NULL with a length",
        ksafe_test_records_add(rs, 0, 0, NULL, 0, NULL, 4, E));
    BAD(KSAFE_EINVAL, "message", ksafe_test_records_add_message(rs, NULL, E));
    BAD(KSAFE_EINVAL, "past", ksafe_test_records_get(rs, 0, &r, E));
    BAD(KSAFE_EINVAL, "out", ksafe_test_records_get(rs, 0, NULL, E));
    BAD(KSAFE_EINVAL, "record set", ksafe_test_records_get(NULL, 0, &r, E));
    ck_assert_uint_eq(ksafe_test_records_count(rs), 0);
    ck_assert_uint_eq(ksafe_test_records_count(NULL), 0);
    ck_assert_uint_eq(ksafe_test_records_distinct(NULL), 0);
    ck_assert_uint_eq(ksafe_test_records_missing(NULL, rs, NULL), 0);
    ksafe_test_records_free(rs);
    ksafe_test_records_free(NULL);
}
END_TEST

START_TEST(scenario_data_and_waits_bad_input)
{
    ksafe_test_records *rs;
    ksafe_consumer_options co = KSAFE_CONSUMER_OPTIONS_INIT;
    ksafe_loop_options lo = KSAFE_LOOP_OPTIONS_INIT;
    ksafe_test_cluster *real = (ksafe_test_cluster *)1, *tc1;
    ksafe_test_loop *l;
    ksafe_consumer *c = offline_consumer();
    ksafe_error err;
    int64_t offs[2];

    ck_assert_ok(ksafe_test_records_new(&rs, &err), err);
    ck_assert_ok(ksafe_test_cluster_new_brokers(&tc1, 1, &err), err);
    BAD(KSAFE_EINVAL, "cluster is NULL",
        ksafe_test_produce(NULL, "t", 1, rs, E));
    BAD(KSAFE_EINVAL, "topic is NULL", ksafe_test_produce(tc1, NULL, 1, rs, E));
    BAD(KSAFE_EINVAL, "cluster is NULL",
        ksafe_test_read_topic(NULL, "t", rs, 1000, E));
    BAD(KSAFE_EINVAL, "topic is NULL",
        ksafe_test_read_topic(tc1, NULL, rs, 1000, E));
    BAD(KSAFE_EINVAL, "record set is NULL",
        ksafe_test_read_topic(tc1, "t", NULL, 1000, E));
    BAD(KSAFE_EINVAL, "timeout_ms",
        ksafe_test_read_topic(tc1, "t", rs, 0, E));
    BAD(KSAFE_EINVAL, "cluster is NULL",
        ksafe_test_committed(NULL, "g", "t", offs, 2, 1000, E));
    BAD(KSAFE_EINVAL, "group is NULL",
        ksafe_test_committed(tc1, NULL, "t", offs, 2, 1000, E));
    BAD(KSAFE_EINVAL, "group is empty",
        ksafe_test_committed(tc1, "", "t", offs, 2, 1000, E));
    BAD(KSAFE_EINVAL, "topic is NULL",
        ksafe_test_committed(tc1, "g", NULL, offs, 2, 1000, E));
    BAD(KSAFE_EINVAL, "offsets is NULL",
        ksafe_test_committed(tc1, "g", "t", NULL, 2, 1000, E));
    BAD(KSAFE_EINVAL, "partitions is 0",
        ksafe_test_committed(tc1, "g", "t", offs, 0, 1000, E));
    BAD(KSAFE_EINVAL, "partitions is 2147483647",
        ksafe_test_committed(tc1, "g", "t", offs, INT32_MAX, 1000, E));
    BAD(KSAFE_EINVAL, "timeout_ms is 0",
        ksafe_test_committed(tc1, "g", "t", offs, 2, 0, E));
    BAD(KSAFE_EINVAL, "group is NULL",
        ksafe_test_wait_committed(tc1, NULL, "t", rs, NULL, 1000, E));
    BAD(KSAFE_EINVAL, "record set is NULL",
        ksafe_test_wait_committed(tc1, "g", "t", NULL, NULL, 1000, E));
    BAD(KSAFE_EINVAL, "timeout_ms is -1",
        ksafe_test_wait_committed(tc1, "g", "t", rs, NULL, -1, E));
    BAD(KSAFE_EINVAL, "empty",
        ksafe_test_wait_committed(tc1, "g", "t", rs, NULL, 1000, E));
    ck_assert_ok(ksafe_test_records_add(rs, INT32_MAX, 0, NULL, 0, NULL, 0,
                                        &err),
                 err);
    BAD(KSAFE_EINVAL, "partition 2147483647",
        ksafe_test_wait_committed(tc1, "g", "t", rs, NULL, 1000, E));
    BAD(KSAFE_EINVAL, "out is NULL", ksafe_test_loop_start(NULL, c, &lo, E));
    BAD(KSAFE_EINVAL, "consumer is NULL",
        ksafe_test_loop_start(&l, NULL, &lo, E));
    BAD(KSAFE_EINVAL, "options is NULL", ksafe_test_loop_start(&l, c, NULL, E));
    lo.version = 99;
    BAD(KSAFE_EVERSION, "version is 99", ksafe_test_loop_start(&l, c, &lo, E));
    BAD(KSAFE_EINVAL, "loop is NULL", ksafe_test_loop_stop(NULL, NULL, E));
    ck_assert_int_eq(ksafe_test_loop_running(NULL), 0);
    BAD(KSAFE_EINVAL, "condition is NULL",
        ksafe_test_wait_for(NULL, NULL, NULL, 1, E));
    BAD(KSAFE_EINVAL, "timeout_ms is -1",
        ksafe_test_wait_for(no, NULL, NULL, -1, E));
    BAD(KSAFE_ETIMEDOUT, "0 ms", ksafe_test_wait_for(no, NULL, NULL, 0, E));
    BAD(KSAFE_EINVAL, "actual set is NULL",
        ksafe_test_wait_records(rs, NULL, NULL, 1, E));
    BAD(KSAFE_EINVAL, "expected set is NULL",
        ksafe_test_wait_records(NULL, rs, NULL, 1, E));
    BAD(KSAFE_EINVAL, "cluster is NULL",
        ksafe_test_rebalance(NULL, &co, "t", 1, E));
    BAD(KSAFE_EINVAL, "options", ksafe_test_rebalance(tc1, NULL, "t", 1, E));
    BAD(KSAFE_EINVAL, "topic is NULL",
        ksafe_test_rebalance(tc1, &co, NULL, 1, E));
    BAD(KSAFE_EINVAL, "stay_ms", ksafe_test_rebalance(tc1, &co, "t", -1, E));
    ksafe_test_cluster_free(tc1);
    BAD(KSAFE_EINVAL, "out", ksafe_test_cluster_new_brokers(NULL, 3, E));
    BAD(KSAFE_EINVAL, "broker_count",
        ksafe_test_cluster_new_brokers(&real, 17, E));
    BAD(KSAFE_EINVAL, "broker_count is 0",
        ksafe_test_cluster_new_brokers(&real, 0, E));
    ck_assert_ptr_null(real);
    ksafe_consumer_free(c);
    ksafe_test_records_free(rs);
}
END_TEST

START_TEST(scenario_faults_bad_input)
{
    ksafe_test_cluster *real;
    ksafe_error err;
    char *old = getenv(KSAFE_TEST_BOOTSTRAP_ENV);

    BAD(KSAFE_EINVAL, "cluster", ksafe_test_fail_commits(NULL, 1, 1, E));
    BAD(KSAFE_EINVAL, "cluster", ksafe_test_fail_produces(NULL, 1, 1, E));
    BAD(KSAFE_EINVAL, "cluster", ksafe_test_broker_outage(NULL, 1, 1, E));
    BAD(KSAFE_EINVAL, "cluster", ksafe_test_set_rtt(NULL, 1, 1, E));
    BAD(KSAFE_EINVAL, "cluster", ksafe_test_move_coordinator(NULL, "g", 1, E));
    BAD(KSAFE_EINVAL, "cluster", ksafe_mock_cluster_set_rtt(NULL, 1, 1, E));
    BAD(KSAFE_EINVAL, "cluster",
        ksafe_mock_cluster_set_coordinator(NULL, "g", 1, E));

    /* a real cluster: nothing there to inject faults into */
    old = old ? strdup(old) : NULL;
    setenv(KSAFE_TEST_BOOTSTRAP_ENV, "127.0.0.1:1", 1);
    ck_assert_ok(ksafe_test_cluster_new(&real, &err), err);
    if (old)
        setenv(KSAFE_TEST_BOOTSTRAP_ENV, old, 1);
    else
        unsetenv(KSAFE_TEST_BOOTSTRAP_ENV);
    free(old);
    BAD(KSAFE_ESTATE, "needs the embedded cluster",
        ksafe_test_fail_commits(real, 1, 1, E));
    BAD(KSAFE_ESTATE, "127.0.0.1:1", ksafe_test_fail_produces(real, 1, 1, E));
    BAD(KSAFE_ESTATE, "broker_outage", ksafe_test_broker_outage(real, 1, 1, E));
    BAD(KSAFE_ESTATE, "set_rtt", ksafe_test_set_rtt(real, 1, 1, E));
    BAD(KSAFE_ESTATE, "move_coordinator",
        ksafe_test_move_coordinator(real, "g", 1, E));
    ksafe_test_cluster_free(real);
}
END_TEST

void bad_input_scenario_cases(Suite *s)
{
    TCase *t = tcase_create("scenario");

    tcase_add_test(t, scenario_records_bad_input);
    tcase_add_test(t, scenario_data_and_waits_bad_input);
    tcase_add_test(t, scenario_faults_bad_input);
    suite_add_tcase(s, t);
}
