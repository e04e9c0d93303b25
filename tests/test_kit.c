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

/* What the crash test hands its worker processes, for both kinds. */
START_TEST(group_timing_of_each_kind)
{
    ksafe_test_timing real = ksafe_test_group_timing(0);
    ksafe_test_timing embedded = ksafe_test_group_timing(1);
    ksafe_consumer_options o;
    ksafe_error err;

    ck_assert_int_ge(real.session_timeout_ms, STOCK_MIN_SESSION_MS);
    ck_assert_int_gt(real.heartbeat_interval_ms, 0);
    ck_assert_int_le(real.heartbeat_interval_ms * 3, real.session_timeout_ms);
    /* The embedded cluster's group never forms below ~3000 ms and each
     * join costs session - 1 s: short, but not that short. */
    ck_assert_int_ge(embedded.session_timeout_ms, 3000);
    ck_assert_int_lt(embedded.session_timeout_ms, real.session_timeout_ms);
    ck_assert_int_le(embedded.heartbeat_interval_ms * 3,
                     embedded.session_timeout_ms);
    /* A worker derives its heartbeat as a sixth of the session. */
    ksafe_consumer_options_init(&o, KSAFE_CONSUMER_OPTIONS_VERSION);
    o.bootstrap_servers = "broker.invalid:9092";
    o.group_id = "kit-group";
    o.session_timeout_ms = real.session_timeout_ms;
    o.heartbeat_interval_ms = real.session_timeout_ms / 6;
    ck_assert_ok(ksafe_consumer_options_validate(&o, &err), err);
}
END_TEST

static Suite *kit_suite(void)
{
    Suite *s = suite_create("kit");
    TCase *t = tcase_create("timings");

    tcase_add_test(t, real_cluster_consumer_timings_suit_a_stock_broker);
    tcase_add_test(t, group_timing_of_each_kind);
    suite_add_tcase(s, t);
    return s;
}

KSAFE_TEST_MAIN(kit_suite)
