/*
 * tests/test_kit.c - the test kit's choices, checked without any broker.
 *
 * With KSAFE_TEST_BOOTSTRAP set the kit talks to a real cluster, which a
 * stock Kafka broker only accepts with group timings inside its limits
 * (group.min.session.timeout.ms defaults to 6000). Making the kit's options
 * connects to nothing, so this runs anywhere.
 */
#include "testutil.h"

/* Kafka's default group.min.session.timeout.ms. */
#define STOCK_MIN_SESSION_MS 6000

static void real_cluster_env(void)
{
    ck_assert_int_eq(setenv(KSAFE_TEST_BOOTSTRAP_ENV, "broker.invalid:9092",
                            1),
                     0);
}

START_TEST(real_cluster_consumer_timings_suit_a_stock_broker)
{
    ksafe_test_cluster *real;
    ksafe_consumer_options o;
    ksafe_error err;

    real_cluster_env();
    ck_assert_ok(ksafe_test_cluster_new(&real, &err), err);
    ck_assert_int_eq(ksafe_test_cluster_is_embedded(real), 0);
    ksafe_test_cluster_consumer_options(real, &o, "kit-group");
    ck_assert_msg(o.session_timeout_ms >= STOCK_MIN_SESSION_MS,
                  "real-cluster session timeout %d ms is below a stock "
                  "broker's minimum %d ms",
                  o.session_timeout_ms, STOCK_MIN_SESSION_MS);
    ck_assert_int_gt(o.heartbeat_interval_ms, 0);
    ck_assert_int_le(o.heartbeat_interval_ms * 3, o.session_timeout_ms);
    ck_assert_ok(ksafe_consumer_options_validate(&o, &err), err);
    ksafe_test_cluster_free(real);
}
END_TEST

static Suite *kit_suite(void)
{
    Suite *s = suite_create("kit");
    TCase *t = tcase_create("timings");

    tcase_add_test(t, real_cluster_consumer_timings_suit_a_stock_broker);
    suite_add_tcase(s, t);
    return s;
}

KSAFE_TEST_MAIN(kit_suite)
