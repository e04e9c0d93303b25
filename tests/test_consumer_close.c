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

/*
 * Issue 9 item 5: member A (range) marks 10 records on each of 2
 * partitions, B joins, A closes while the join is under way. Whatever the
 * cluster does with A's commits, close either committed every mark or
 * reports each partition it could not commit, with its offset.
 */
START_TEST(close_reports_what_it_could_not_commit)
{
    char topic[64], group[64];
    member a, b;
    ksafe_error err;
    int64_t committed[2], end;
    time_t deadline;
    int rc, p;

    ksafe_test_unique_name(topic, sizeof(topic), "closerep");
    ksafe_test_unique_name(group, sizeof(group), "closerep-g");
    ck_assert_ok(ksafe_test_cluster_create_topic(tc, topic, 2, &err), err);
    kit_produce(tc, topic, 2, 20);
    kit_join(tc, &a, topic, group, KSAFE_ASSIGN_RANGE);
    a.mark_below = 10;
    deadline = time(NULL) + 30;
    while (a.seen[0] + a.seen[1] < 40 && time(NULL) < deadline)
        kit_poll(&a, 100);
    ck_assert_int_eq(a.seen[0] + a.seen[1], 40);

    kit_join(tc, &b, topic, group, KSAFE_ASSIGN_RANGE);
    /* Let B's JoinGroup reach the coordinator: the join is under way. A
     * is not polled, so its revoke is still to come: inside close. */
    end = now_ms() + 1000;
    while (now_ms() < end)
        kit_poll(&b, 20);
    memset(&err, 0, sizeof(err));
    rc = ksafe_consumer_close(a.c, &err);
    test_committed(tc, topic, group, 2, committed);
    fprintf(stderr, "close: rc %d, committed %lld %lld, message: %s\n", rc,
            (long long)committed[0], (long long)committed[1], err.message);
    if (rc == 0) {
        for (p = 0; p < 2; p++)
            ck_assert_msg(committed[p] == 10,
                          "close returned 0 but partition %d is committed "
                          "at %lld, not at A's mark 10", p,
                          (long long)committed[p]);
    } else {
        ck_assert_int_eq(rc, KSAFE_ECOMMIT);
        for (p = 0; p < 2; p++) {
            char item[96];
            if (committed[p] == 10)
                continue;
            snprintf(item, sizeof(item), "%s [%d] at 10", topic, p);
            ck_assert_msg(strstr(err.message, item),
                          "partition %d (committed %lld) not named in "
                          "\"%s\"", p, (long long)committed[p], err.message);
        }
    }
    ksafe_consumer_free(a.c);
    kit_leave(&b);
}
END_TEST

/*
 * Issue 9 item 14: a cooperative-sticky consumer whose group never forms
 * is closed after a short wait. It must return - librdkafka before 2.3.0
 * aborts the process when a consumer whose JoinGroup was answered is
 * destroyed before its first assignment (issue 4312), whatever the close
 * path - and without waiting for an assignment that is not coming.
 * Loop index 0: every JoinGroup fails (no member id, nothing half-built);
 * 1: JoinGroup succeeds, every SyncGroup fails (the assertion's window).
 * Each case has a cluster of its own: the injected errors outlast it.
 */
START_TEST(close_when_the_group_never_forms)
{
    static const int api_key[] = {11 /* JoinGroup */, 14 /* SyncGroup */};
    rd_kafka_resp_err_t errs[200];
    ksafe_mock_cluster *mc = ksafe_test_cluster_mock(tc);
    char topic[64], group[64];
    member m;
    ksafe_error err;
    int64_t start, took, bound;
    size_t i;
    int rc;

    if (!mc) {
        fprintf(stderr, "needs the embedded cluster's fault injection\n");
        exit(77);
    }
    for (i = 0; i < sizeof(errs) / sizeof(errs[0]); i++)
        errs[i] = RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS;
    ksafe_test_unique_name(topic, sizeof(topic), "noform");
    ksafe_test_unique_name(group, sizeof(group), "noform-g");
    ck_assert_ok(ksafe_test_cluster_create_topic(tc, topic, 2, &err), err);
    ck_assert_ok(ksafe_mock_cluster_push_request_errors(
                     mc, api_key[_i], sizeof(errs) / sizeof(errs[0]), errs,
                     &err), err);
    kit_join(tc, &m, topic, group, KSAFE_ASSIGN_COOPERATIVE_STICKY);
    /* Past the first join's answer (3 s on the embedded cluster). */
    start = now_ms() + 5000;
    while (now_ms() < start)
        kit_poll(&m, 50);
    ck_assert_int_eq(m.assigned_events, 0);
    start = now_ms();
    rc = ksafe_consumer_close(m.c, &err);
    took = now_ms() - start;
    fprintf(stderr, "group never formed (%s errors): close rc %d in %lld ms\n",
            _i ? "SyncGroup" : "JoinGroup", rc, (long long)took);
    ck_assert_ok(rc, err);
    /* Nothing was assigned, so nothing can be waited for: no JoinGroup
     * answer means close at once; an answered one gets the bounded wait
     * for the assignment. */
    bound = _i ? m.c->session_timeout_ms + 15000 : 3000;
    ck_assert_msg(took < bound, "close took %lld ms (bound %lld)",
                  (long long)took, (long long)bound);
    ksafe_consumer_free(m.c);
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
    t = tcase_create("close_report");
    tcase_add_unchecked_fixture(t, test_cluster_up, test_cluster_down);
    tcase_set_timeout(t, 120);
    tcase_add_test(t, close_reports_what_it_could_not_commit);
    suite_add_tcase(s, t);
    /* One cluster per case; the one that aborts on old librdkafka last. */
    t = tcase_create("never_formed_join");
    tcase_add_unchecked_fixture(t, test_cluster_up, test_cluster_down);
    tcase_set_timeout(t, 120);
    tcase_add_loop_test(t, close_when_the_group_never_forms, 0, 1);
    suite_add_tcase(s, t);
    t = tcase_create("never_formed_sync");
    tcase_add_unchecked_fixture(t, test_cluster_up, test_cluster_down);
    tcase_set_timeout(t, 120);
    tcase_add_loop_test(t, close_when_the_group_never_forms, 1, 2);
    suite_add_tcase(s, t);
    return s;
}

KSAFE_TEST_MAIN(consumer_close_suite)
