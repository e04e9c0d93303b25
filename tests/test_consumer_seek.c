/*
 * tests/test_consumer_seek.c - ksafe_consumer_seek() outside on_assigned, on
 * the embedded cluster (or the one named by KSAFE_TEST_BOOTSTRAP): a
 * partition this member owns can be sought as soon as it is assigned, even
 * while librdkafka is still looking up where it starts.
 */
#include "consumer_kit.h"

/*
 * Seek right after the assignment arrived. librdkafka starts fetching a
 * partition only once the group coordinator answered where it starts
 * (OffsetFetch); until then its own seek refuses with "Erroneous state".
 * On the embedded cluster OffsetFetch is refused a few times first, which
 * holds that window open for a while; elsewhere the test only shows that the
 * seek lands.
 */
START_TEST(seek_right_after_assignment_lands)
{
    static const rd_kafka_resp_err_t loading[] = {
        RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS,
        RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS,
        RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS,
        RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS,
        RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS};
    char topic[64], group[64];
    ksafe_mock_cluster *mc = ksafe_test_cluster_mock(tc);
    member m;
    ksafe_error err;
    time_t deadline;

    ksafe_test_unique_name(topic, sizeof(topic), "seek");
    ksafe_test_unique_name(group, sizeof(group), "seek-g");
    ck_assert_ok(ksafe_test_cluster_create_topic(tc, topic, 2, &err), err);
    kit_produce(tc, topic, 2, 20);
    if (mc) /* OffsetFetch is API key 9 */
        ck_assert_ok(ksafe_mock_cluster_push_request_errors(
                         mc, 9, sizeof(loading) / sizeof(loading[0]), loading,
                         &err),
                     err);
    kit_join(tc, &m, topic, group, KSAFE_ASSIGN_COOPERATIVE_STICKY);
    deadline = time(NULL) + 30;
    while (!(m.owned[0] && m.owned[1]) && time(NULL) < deadline)
        kit_poll(&m, 20);
    ck_assert_msg(m.owned[0] && m.owned[1], "partitions not assigned");

    ck_assert_ok(ksafe_consumer_seek(m.c, topic, 0, 15, &err), err);
    ck_assert_ok(ksafe_consumer_seek(m.c, topic, 1, 12, &err), err);
    deadline = time(NULL) + 30;
    while (m.seen[0] + m.seen[1] < 13 && time(NULL) < deadline)
        kit_poll(&m, 100);
    /* Nothing before the seek positions arrived: they were the first. */
    ck_assert_int_eq(m.first[0], 15);
    ck_assert_int_eq(m.first[1], 12);
    ck_assert_int_eq(m.seen[0] + m.seen[1], 13);
    kit_leave(&m);
}
END_TEST

/* A partition this member does not own: KSAFE_ESTATE, named. */
START_TEST(seek_of_a_partition_not_owned_is_refused)
{
    char topic[64], group[64];
    member m;
    ksafe_error err;
    time_t deadline;

    ksafe_test_unique_name(topic, sizeof(topic), "seek-x");
    ksafe_test_unique_name(group, sizeof(group), "seek-x-g");
    ck_assert_ok(ksafe_test_cluster_create_topic(tc, topic, 2, &err), err);
    kit_join(tc, &m, topic, group, KSAFE_ASSIGN_COOPERATIVE_STICKY);
    deadline = time(NULL) + 30;
    while (!(m.owned[0] && m.owned[1]) && time(NULL) < deadline)
        kit_poll(&m, 20);
    ck_assert_msg(m.owned[0] && m.owned[1], "partitions not assigned");
    ck_assert_int_eq(ksafe_consumer_seek(m.c, topic, 2, 0, &err),
                     KSAFE_ESTATE);
    ck_assert_msg(strstr(err.message, "[2]") &&
                      strstr(err.message, "not assigned"),
                  "message: %s", err.message);
    kit_leave(&m);
}
END_TEST

static Suite *consumer_seek_suite(void)
{
    Suite *s = suite_create("consumer_seek");
    TCase *t = tcase_create("seek");

    tcase_add_unchecked_fixture(t, test_cluster_up, test_cluster_down);
    tcase_set_timeout(t, 120);
    tcase_add_test(t, seek_right_after_assignment_lands);
    tcase_add_test(t, seek_of_a_partition_not_owned_is_refused);
    suite_add_tcase(s, t);
    return s;
}

KSAFE_TEST_MAIN(consumer_seek_suite)
