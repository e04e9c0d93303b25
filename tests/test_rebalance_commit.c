/*
 * tests/test_rebalance_commit.c - asynchronous commits of a busy member
 * while the group rebalances around it (issue 9 item 9).
 *
 * librdkafka 2.0.2 (issue 4059, fixed in 2.10) treats an OffsetCommit that
 * the broker answers with ILLEGAL_GENERATION as a lost assignment, even in
 * the middle of a rebalance, and the broker answers so exactly when the
 * commit went out on the coordinator connection behind the member's pending
 * JoinGroup. A member that keeps committing while others join and leave
 * then loses its partitions: its marks since the last accepted commit are
 * dropped and handled again. ksafe must not send those commits.
 */
#include "consumer_kit.h"

#define PARTS 4
#define PER_PART 40000
#define EVERY 100 /* commit policy: every 100 records or 100 ms */

/* How often each record was handled, by anyone. */
static unsigned char handled[PARTS][PER_PART];

static void busy_member(ksafe_test_cluster *tc, member *m, const char *topic,
                        const char *group)
{
    ksafe_commit_policy often = KSAFE_COMMIT_POLICY_INIT;
    ksafe_error err;

    kit_join(tc, m, topic, group, KSAFE_ASSIGN_COOPERATIVE_STICKY);
    often.every_records = EVERY;
    often.every_ms = 100;
    ck_assert_ok(ksafe_consumer_set_commit_policy(m->c, &often, &err), err);
}

/* One poll: a record is "handled" (counted), marked, and the commit policy
 * runs, as ksafe_run does; ~0.2 ms of work per record keeps the supply
 * lasting through the rebalances. Returns 1 when a record came. */
static int work(member *m)
{
    struct timespec ts = {0, 200000L};
    ksafe_message *msg;
    ksafe_error err;
    int32_t p;
    int64_t off;

    ck_assert_ok(ksafe_consumer_poll(m->c, 5, &msg, &err), err);
    if (!msg) {
        ck_assert_ok(ksafe_consumer_commit_maybe(m->c, &err), err);
        return 0;
    }
    p = ksafe_message_partition(msg);
    off = ksafe_message_offset(msg);
    ck_assert(p >= 0 && p < PARTS && off >= 0 && off < PER_PART);
    ck_assert_msg(m->owned[p], "record of partition %d not assigned", p);
    m->seen[p]++;
    if (handled[p][off] < 255)
        handled[p][off]++;
    nanosleep(&ts, NULL);
    ck_assert_ok(ksafe_consumer_done(m->c, msg, &err), err);
    ksafe_message_free(msg);
    ck_assert_ok(ksafe_consumer_commit_maybe(m->c, &err), err);
    return 1;
}

static int owned_by(const member *m)
{
    int p, n = 0;
    for (p = 0; p < PARTS; p++)
        n += m->owned[p];
    return n;
}

/* Works both members until `a` owns want_a partitions and b (if any) the
 * rest, then 2 s more without a rebalance event; fails after 60 s. */
static void work_until(member *a, member *b, int want_a)
{
    time_t deadline = time(NULL) + 60, quiet_until = 0;
    int events = -1;

    while (time(NULL) < deadline) {
        int now_events, settled;
        work(a);
        if (b && b->c)
            work(b);
        now_events = a->assigned_events + a->revoked_events + a->lost_events +
                     (b ? b->assigned_events + b->revoked_events +
                              b->lost_events
                        : 0);
        settled = owned_by(a) == want_a &&
                  (!b || !b->c || owned_by(b) == PARTS - want_a);
        if (!settled || now_events != events) {
            events = now_events;
            quiet_until = time(NULL) + 2;
        } else if (time(NULL) >= quiet_until) {
            return;
        }
    }
    ck_abort_msg("group did not settle with %d partition(s) on the busy "
                 "member in 60 s (it owns %d, lost events %d)",
                 want_a, owned_by(a), a->lost_events);
}

/*
 * A consumes and commits asynchronously all the time (every 100 records or
 * 100 ms) while B joins and leaves, twice. A never loses its partitions,
 * and the records handled twice stay within what the commit policy
 * bounds: 2 x EVERY (a graceful handover commits on revoke).
 */
START_TEST(busy_member_keeps_partitions_through_rebalances)
{
    char topic[64], group[64];
    member a, b;
    ksafe_error err;
    int64_t committed[PARTS];
    long twice = 0;
    int cycle, p, i;

    memset(handled, 0, sizeof(handled));
    ksafe_test_unique_name(topic, sizeof(topic), "busy");
    ksafe_test_unique_name(group, sizeof(group), "busy-g");
    ck_assert_ok(ksafe_test_cluster_create_topic(tc, topic, PARTS, &err), err);
    kit_produce(tc, topic, PARTS, PER_PART);

    busy_member(tc, &a, topic, group);
    work_until(&a, NULL, PARTS);
    for (cycle = 0; cycle < 2; cycle++) {
        busy_member(tc, &b, topic, group);
        work_until(&a, &b, PARTS / 2);
        ck_assert_msg(a.lost_events == 0,
                      "cycle %d: the busy member lost its partitions while "
                      "B joined (%d lost event(s))",
                      cycle, a.lost_events);
        kit_leave(&b);
        work_until(&a, NULL, PARTS);
        ck_assert_msg(a.lost_events == 0,
                      "cycle %d: the busy member lost its partitions while "
                      "B left (%d lost event(s))",
                      cycle, a.lost_events);
    }
    /* The supply lasted: A was still busy at the end. */
    ck_assert_int_eq(work(&a) || work(&a) || work(&a), 1);
    kit_leave(&a);

    test_committed(tc, topic, group, PARTS, committed);
    for (p = 0; p < PARTS; p++) {
        ck_assert_msg(committed[p] > 0, "partition %d: nothing committed", p);
        for (i = 0; i < committed[p]; i++)
            ck_assert_msg(handled[p][i] > 0,
                          "partition %d offset %d committed, never handled",
                          p, i);
        for (i = 0; i < PER_PART; i++)
            twice += handled[p][i] > 1 ? handled[p][i] - 1 : 0;
    }
    ck_assert_msg(twice <= 2 * EVERY,
                  "%ld record(s) handled twice through graceful rebalances; "
                  "the commit policy bounds it at %d",
                  twice, 2 * EVERY);
}
END_TEST

static Suite *rebalance_commit_suite(void)
{
    Suite *s = suite_create("rebalance_commit");
    TCase *t = tcase_create("busy_member");

    tcase_add_unchecked_fixture(t, test_cluster_up, test_cluster_down);
    tcase_set_timeout(t, 300);
    tcase_add_test(t, busy_member_keeps_partitions_through_rebalances);
    suite_add_tcase(s, t);
    return s;
}

KSAFE_TEST_MAIN(rebalance_commit_suite)
