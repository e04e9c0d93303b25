/*
 * tests/test_mock.c - the embedded cluster and the test kit.
 */
#include "testutil.h"

static ksafe_mock_cluster *mc;

static void cluster_up(void)
{
    ksafe_error err;
    ck_assert_ok(ksafe_mock_cluster_new(&mc, 3, &err), err);
}

static void cluster_down(void)
{
    ksafe_mock_cluster_free(mc);
    mc = NULL;
}

START_TEST(bad_broker_count_is_refused)
{
    ksafe_mock_cluster *m = (ksafe_mock_cluster *)1;
    ksafe_error err;

    ck_assert_int_eq(ksafe_mock_cluster_new(&m, 0, &err), KSAFE_EINVAL);
    ck_assert_ptr_null(m);
    ck_assert_ptr_nonnull(strstr(err.message, "broker_count"));
    ck_assert_int_eq(ksafe_mock_cluster_new(&m, 17, &err), KSAFE_EINVAL);
}
END_TEST

START_TEST(bootstrap_lists_every_broker_on_loopback)
{
    const char *b = ksafe_mock_cluster_bootstrap(mc);
    int commas = 0;

    ck_assert_ptr_nonnull(b);
    ck_assert_ptr_nonnull(strstr(b, "127.0.0.1:"));
    for (; *b; b++)
        commas += *b == ',';
    ck_assert_int_eq(commas, 2);
    ck_assert_ptr_nonnull(ksafe_mock_cluster_rdkafka(mc));
}
END_TEST

/* A topic created on the cluster is visible to a client with its partitions. */
START_TEST(created_topic_is_visible_in_metadata)
{
    ksafe_producer_options o = KSAFE_PRODUCER_OPTIONS_INIT;
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_topic_t *rkt;
    ksafe_producer *p;
    ksafe_error err;
    char topic[64];

    ksafe_test_unique_name(topic, sizeof(topic), "meta");
    ck_assert_ok(ksafe_mock_cluster_create_topic(mc, topic, 7, &err), err);
    o.bootstrap_servers = ksafe_mock_cluster_bootstrap(mc);
    o.log_cb = test_quiet_log;
    ck_assert_ok(ksafe_producer_new(&p, &o, &err), err);
    rkt = rd_kafka_topic_new(ksafe_producer_rdkafka(p), topic, NULL);
    ck_assert_int_eq(rd_kafka_metadata(ksafe_producer_rdkafka(p), 0, rkt, &md,
                                       5000),
                     RD_KAFKA_RESP_ERR_NO_ERROR);
    ck_assert_int_eq(md->topic_cnt, 1);
    ck_assert_str_eq(md->topics[0].topic, topic);
    ck_assert_int_eq(md->topics[0].partition_cnt, 7);
    rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(rkt);
    ksafe_producer_free(p);
}
END_TEST

START_TEST(bad_arguments_are_refused)
{
    rd_kafka_resp_err_t e = RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS;
    ksafe_error err;

    ck_assert_int_eq(ksafe_mock_cluster_create_topic(mc, "t", 0, &err),
                     KSAFE_EINVAL);
    ck_assert_int_eq(ksafe_mock_cluster_create_topic(mc, "", 1, &err),
                     KSAFE_EINVAL);
    ck_assert_int_eq(ksafe_mock_cluster_broker_down(mc, 4, &err), KSAFE_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.message, "1..3"));
    ck_assert_int_eq(ksafe_mock_cluster_broker_up(mc, 0, &err), KSAFE_EINVAL);
    ck_assert_int_eq(
        ksafe_mock_cluster_push_request_errors(mc, 0, 1, NULL, &err),
        KSAFE_EINVAL);
    ck_assert_ok(ksafe_mock_cluster_push_request_errors(mc, 3, 0, &e, &err),
                 err);
    ck_assert_ok(ksafe_mock_cluster_broker_down(mc, 2, &err), err);
    ck_assert_ok(ksafe_mock_cluster_broker_up(mc, 2, &err), err);
}
END_TEST

/* The test kit picks the real cluster named by the environment variable. */
START_TEST(test_cluster_honours_environment)
{
    ksafe_test_cluster *tc;
    ksafe_consumer_options co;
    ksafe_error err;

    setenv(KSAFE_TEST_BOOTSTRAP_ENV, "broker.example:9092", 1);
    ck_assert_ok(ksafe_test_cluster_new(&tc, &err), err);
    ck_assert_int_eq(ksafe_test_cluster_is_embedded(tc), 0);
    ck_assert_ptr_null(ksafe_test_cluster_mock(tc));
    ck_assert_str_eq(ksafe_test_cluster_bootstrap(tc), "broker.example:9092");
    ksafe_test_cluster_consumer_options(tc, &co, "g1");
    ck_assert_str_eq(co.bootstrap_servers, "broker.example:9092");
    ck_assert_str_eq(co.group_id, "g1");
    ck_assert_ok(ksafe_consumer_options_validate(&co, &err), err);
    ksafe_test_cluster_free(tc);

    unsetenv(KSAFE_TEST_BOOTSTRAP_ENV);
    ck_assert_ok(ksafe_test_cluster_new(&tc, &err), err);
    ck_assert_int_eq(ksafe_test_cluster_is_embedded(tc), 1);
    ck_assert_ptr_nonnull(ksafe_test_cluster_mock(tc));
    ksafe_test_cluster_free(tc);
}
END_TEST

START_TEST(unique_names_differ)
{
    char a[64], b[64];

    ksafe_test_unique_name(a, sizeof(a), "t");
    ksafe_test_unique_name(b, sizeof(b), "t");
    ck_assert_str_ne(a, b);
    ck_assert_int_eq(strncmp(a, "t-", 2), 0);
}
END_TEST

/* Topics through a bootstrap string, as on a real cluster: an existing
 * topic is checked, a missing one is never auto-created by the check. */
START_TEST(ensure_topic_checks_and_never_auto_creates)
{
    const char *bs = ksafe_mock_cluster_bootstrap(mc);
    char topic[64], missing[64];
    ksafe_error err;
    int n = -1, rc;

    ksafe_test_unique_name(topic, sizeof(topic), "ensure");
    ksafe_test_unique_name(missing, sizeof(missing), "ensure-missing");
    ck_assert_ok(ksafe_mock_cluster_create_topic(mc, topic, 3, &err), err);
    ck_assert_ok(ksafe_cluster_ensure_topic(bs, topic, 3, 10000, &err), err);
    ck_assert_ok(ksafe_cluster_topic_partitions(bs, topic, &n, 10000, &err),
                 err);
    ck_assert_int_eq(n, 3);
    ck_assert_int_eq(ksafe_cluster_ensure_topic(bs, topic, 5, 10000, &err),
                     KSAFE_EINVAL);
    ck_assert_msg(strstr(err.message, "exists with 3 partition(s), not the "
                                      "5 needed") != NULL,
                  "%s", err.message);

    /* The embedded cluster cannot create topics by the admin API: a clear
     * error, and no topic made behind our back with a default count. */
    rc = ksafe_cluster_ensure_topic(bs, missing, 8, 2000, &err);
    ck_assert_msg(rc == KSAFE_ETIMEDOUT || rc == KSAFE_EKAFKA, "rc %d: %s",
                  rc, err.message);
    ck_assert_msg(strstr(err.message, missing) != NULL &&
                      strstr(err.message, "admin API") != NULL,
                  "%s", err.message);
    ck_assert_int_eq(ksafe_cluster_topic_partitions(bs, missing, &n, 10000,
                                                    &err),
                     KSAFE_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.message, "does not exist"));
    ck_assert_int_eq(n, 0);

    ck_assert_int_eq(ksafe_cluster_ensure_topic(NULL, topic, 3, 1000, &err),
                     KSAFE_EINVAL);
    ck_assert_int_eq(ksafe_cluster_ensure_topic(bs, topic, 0, 1000, &err),
                     KSAFE_EINVAL);
}
END_TEST

/* The kit's create_topic on the embedded cluster: again with the same
 * count is fine, with another count it is an error. */
START_TEST(test_cluster_create_topic_checks_the_count)
{
    ksafe_test_cluster *t;
    char topic[64];
    ksafe_error err;

    unsetenv(KSAFE_TEST_BOOTSTRAP_ENV);
    ck_assert_ok(ksafe_test_cluster_new(&t, &err), err);
    ksafe_test_unique_name(topic, sizeof(topic), "kit-topic");
    ck_assert_ok(ksafe_test_cluster_create_topic(t, topic, 2, &err), err);
    ck_assert_ok(ksafe_test_cluster_create_topic(t, topic, 2, &err), err);
    ck_assert_int_eq(ksafe_test_cluster_create_topic(t, topic, 4, &err),
                     KSAFE_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.message, "2 partition(s)"));
    ksafe_test_cluster_free(t);
}
END_TEST

static Suite *mock_suite(void)
{
    Suite *s = suite_create("mock");
    TCase *tc = tcase_create("cluster");
    TCase *kit = tcase_create("testkit");

    tcase_add_unchecked_fixture(tc, cluster_up, cluster_down);
    tcase_add_test(tc, bootstrap_lists_every_broker_on_loopback);
    tcase_add_test(tc, created_topic_is_visible_in_metadata);
    tcase_add_test(tc, bad_arguments_are_refused);
    tcase_add_test(tc, ensure_topic_checks_and_never_auto_creates);
    suite_add_tcase(s, tc);
    tcase_add_test(kit, bad_broker_count_is_refused);
    tcase_add_test(kit, test_cluster_honours_environment);
    tcase_add_test(kit, unique_names_differ);
    tcase_add_test(kit, test_cluster_create_topic_checks_the_count);
    suite_add_tcase(s, kit);
    return s;
}

KSAFE_TEST_MAIN(mock_suite)
