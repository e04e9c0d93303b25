/*
 * tests/test_consumer_close.c - closing works around librdkafka 2.0.2's
 * close bugs: a cooperative-sticky consumer closed before or during its
 * first join must not abort (issue 4312) nor hang (issue 4527); eager too.
 * A failure here aborts or times out the whole executable.
 */
#include "consumer_kit.h"

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* loop index: strategy (even: cooperative, odd: range) x when to close
 * (0 ms: right after subscribe, 1500 ms / 2800 ms: during the first join). */
static const int close_after_ms[] = {0, 1500, 2800};

START_TEST(close_before_or_during_first_join)
{
    ksafe_assignment_strategy strategy =
        _i % 2 ? KSAFE_ASSIGN_RANGE : KSAFE_ASSIGN_COOPERATIVE_STICKY;
    int after = close_after_ms[_i / 2];
    char topic[64], group[64];
    member m[2];
    ksafe_error err;
    int64_t end;

    ksafe_test_unique_name(topic, sizeof(topic), "close");
    ksafe_test_unique_name(group, sizeof(group), "close-g");
    ck_assert_ok(ksafe_test_cluster_create_topic(tc, topic, 4, &err), err);
    /* A second member makes the first join a real rebalance. */
    kit_join(tc, &m[0], topic, group, strategy);
    kit_join(tc, &m[1], topic, group, strategy);
    end = now_ms() + after;
    while (now_ms() < end) {
        kit_poll(&m[0], 20);
        kit_poll(&m[1], 20);
    }
    ck_assert_ok(ksafe_consumer_close(m[0].c, &err), err);
    ck_assert_ok(ksafe_consumer_close(m[1].c, &err), err);
    /* Closed consumers hold nothing and refuse work. */
    ck_assert_int_eq(m[0].c->n_pos, 0);
    ck_assert_int_eq(ksafe_consumer_commit(m[0].c, KSAFE_COMMIT_SYNC, &err),
                     KSAFE_ESTATE);
    ksafe_consumer_free(m[0].c);
    ksafe_consumer_free(m[1].c);
}
END_TEST

/* Close of a consumer that never subscribed is immediate and harmless. */
START_TEST(close_without_subscribe)
{
    ksafe_consumer_options o;
    ksafe_consumer *c;
    ksafe_error err;

    ksafe_test_cluster_consumer_options(tc, &o, "never-subscribed");
    o.log_cb = test_quiet_log;
    ck_assert_ok(ksafe_consumer_new(&c, &o, &err), err);
    ck_assert_ok(ksafe_consumer_close(c, &err), err);
    ck_assert_ok(ksafe_consumer_close(c, &err), err);
    ksafe_consumer_free(c);
}
END_TEST

static Suite *consumer_close_suite(void)
{
    Suite *s = suite_create("consumer_close");
    TCase *t = tcase_create("close");

    tcase_add_unchecked_fixture(t, test_cluster_up, test_cluster_down);
    tcase_set_timeout(t, 120);
    tcase_add_loop_test(t, close_before_or_during_first_join, 0, 6);
    tcase_add_test(t, close_without_subscribe);
    suite_add_tcase(s, t);
    return s;
}

KSAFE_TEST_MAIN(consumer_close_suite)
