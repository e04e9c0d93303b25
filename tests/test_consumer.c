/*
 * tests/test_consumer.c - rebalances and commits of the safe consumer on the
 * embedded cluster (or the one named by KSAFE_TEST_BOOTSTRAP): ownership
 * through joins and leaves with both protocols, commit on revoke, lost
 * partitions, refused commits, static membership (real cluster only).
 */
#include "consumer_kit.h"

static const ksafe_assignment_strategy strategies[] = {
    KSAFE_ASSIGN_COOPERATIVE_STICKY, KSAFE_ASSIGN_RANGE};

#define PARTS 6

/*
 * Two members, a third joins, one leaves: after each step every partition
 * has exactly one owner (and never two at once). With cooperative-sticky a
 * join revokes only what moves to the newcomer; eager revokes everything.
 * No librdkafka or ksafe error line (e.g. assign() on a cooperative group).
 */
START_TEST(every_partition_has_one_owner_through_rebalances)
{
    ksafe_assignment_strategy strategy = strategies[_i];
    char topic[64], group[64];
    member ms[3];
    ksafe_error err;
    int before[PARTS], p, i;

    atomic_store(&kit_err_lines, 0);
    ksafe_test_unique_name(topic, sizeof(topic), "own");
    ksafe_test_unique_name(group, sizeof(group), "own-g");
    ck_assert_ok(ksafe_test_cluster_create_topic(tc, topic, PARTS, &err),
                 err);
    kit_join(tc, &ms[0], topic, group, strategy);
    kit_join(tc, &ms[1], topic, group, strategy);
    memset(&ms[2], 0, sizeof(ms[2]));
    kit_settle(ms, 2, PARTS);

    for (p = 0; p < PARTS; p++) {
        before[p] = ms[0].owned[p] ? 0 : 1;
        ms[0].revoked[p] = ms[1].revoked[p] = 0;
    }
    kit_join(tc, &ms[2], topic, group, strategy);
    kit_settle(ms, 3, PARTS);
    for (p = 0; p < PARTS; p++) {
        int kept = ms[before[p]].owned[p];
        int revocations = ms[before[p]].revoked[p];
        if (strategy == KSAFE_ASSIGN_COOPERATIVE_STICKY)
            ck_assert_msg(revocations == (kept ? 0 : 1),
                          "partition %d (kept: %d) revoked %d times", p,
                          kept, revocations);
        else /* eager revokes everything; a join that lands between two
              * rounds of the group can make it revoke twice */
            ck_assert_msg(revocations >= 1,
                          "eager: partition %d never revoked", p);
    }

    kit_leave(&ms[1]);
    kit_settle(ms, 3, PARTS);
    kit_leave(&ms[0]);
    kit_leave(&ms[2]);
    ck_assert_msg(atomic_load(&kit_err_lines) == 0, "%d error line(s), last: %s",
                  atomic_load(&kit_err_lines), kit_last_err);
    for (i = 0; i < 3; i++)
        ck_assert_int_gt(ms[i].assigned_events, 0);
}
END_TEST

#define PER_PART 100
#define MARKED 60

/*
 * A marks the first 60 records of each partition and reads the rest without
 * marking, then gives partitions up: with cooperative-sticky because B
 * joins (an incremental revoke), eager by unsubscribing (outside a join:
 * the embedded cluster refuses commits while a join is under way, real
 * Kafka only once every member rejoined). The revoke commits exactly the
 * marks - asserted on the broker - and B starts every partition it gets at
 * 60: no redelivery of marked records, the read but unmarked ones come
 * again (at-least-once, no gap).
 *
 * On a busy machine the embedded cluster can already be in B's second join
 * when A's cooperative revoke commits, and refuses it (REBALANCE_IN_PROGRESS,
 * which a real broker does not answer a member of the current generation).
 * Then nothing may be silent or lost: the refusal is logged ("REVOKE") and
 * B reads those partitions from the start.
 */
START_TEST(revoke_commits_marked_offsets)
{
    ksafe_assignment_strategy strategy = strategies[_i];
    int cooperative = strategy == KSAFE_ASSIGN_COOPERATIVE_STICKY;
    char topic[64], group[64];
    member ms[2];
    ksafe_error err;
    int64_t committed[4];
    time_t deadline;
    int p, moved = 0, all, refused;

    atomic_store(&kit_revoke_refused, 0);
    ksafe_test_unique_name(topic, sizeof(topic), "rev");
    ksafe_test_unique_name(group, sizeof(group), "rev-g");
    ck_assert_ok(ksafe_test_cluster_create_topic(tc, topic, 4, &err), err);
    kit_produce(tc, topic, 4, PER_PART);

    kit_join(tc, &ms[0], topic, group, strategy);
    ms[0].mark_below = MARKED;
    memset(&ms[1], 0, sizeof(ms[1]));
    deadline = time(NULL) + 30;
    do {
        kit_poll(&ms[0], 100);
        for (all = 1, p = 0; p < 4; p++)
            all &= ms[0].seen[p] == PER_PART;
    } while (!all && time(NULL) < deadline);
    ck_assert_msg(all, "A did not read all records");

    if (cooperative) {
        kit_join(tc, &ms[1], topic, group, strategy);
        ms[1].mark_below = PER_PART;
        kit_settle(ms, 2, 4);
    } else {
        /* The revoke runs inside A's next poll, commits, then A leaves. */
        ck_assert_int_eq(rd_kafka_unsubscribe(ksafe_consumer_rdkafka(ms[0].c)),
                         0);
        deadline = time(NULL) + 30;
        while (ms[0].revoked_events == 0 && time(NULL) < deadline)
            kit_poll(&ms[0], 100);
        ck_assert_int_eq(ms[0].revoked_events, 1);
    }
    /* What A gave up was committed at its marks, by the revoke. */
    test_committed(tc, topic, group, 4, committed);
    refused = cooperative && ksafe_test_cluster_is_embedded(tc) &&
              atomic_load(&kit_revoke_refused) > 0;
    if (refused)
        fprintf(stderr, "revoke commit refused by the embedded cluster "
                        "(a join under way): %s\n", kit_last_warn);
    for (p = 0; p < 4; p++)
        if (!ms[0].owned[p])
            ck_assert_msg(committed[p] == (refused ? -1001 : MARKED),
                          "partition %d revoked from A, committed at %lld, "
                          "A marked up to %d (last warning: %s)", p,
                          (long long)committed[p], MARKED, kit_last_warn);
    if (!cooperative) {
        kit_join(tc, &ms[1], topic, group, strategy);
        ms[1].mark_below = PER_PART;
        deadline = time(NULL) + 30;
        while (kit_owned(&ms[1], 1, 4, NULL) < 4 && time(NULL) < deadline)
            kit_poll(&ms[1], 100);
    }
    /* B reads its partitions from where A's marks ended. */
    deadline = time(NULL) + 30;
    for (;;) {
        int waiting = 0;
        for (p = 0; p < 4; p++)
            waiting += ms[1].owned[p] &&
                       ms[1].seen[p] < (refused ? PER_PART : PER_PART - MARKED);
        if (!waiting || time(NULL) > deadline)
            break;
        kit_poll(&ms[1], 100);
        if (cooperative)
            kit_poll(&ms[0], 0);
    }
    for (p = 0; p < 4; p++) {
        if (!ms[1].owned[p])
            continue;
        moved++;
        ck_assert_msg(ms[1].first[p] == (refused ? 0 : MARKED),
                      "partition %d: B started at %lld, A marked up to %d", p,
                      (long long)ms[1].first[p], MARKED);
        ck_assert_int_eq(ms[1].seen[p], refused ? PER_PART : PER_PART - MARKED);
    }
    ck_assert_int_eq(moved, cooperative ? 2 : 4);
    /* Commit while the group is stable: a member closing right after
     * another left meets the next rebalance, and on the embedded cluster
     * its commit can be refused for a stale generation (close then reports
     * KSAFE_ECOMMIT naming the partitions). */
    if (cooperative)
        ck_assert_ok(ksafe_consumer_commit(ms[0].c, KSAFE_COMMIT_SYNC, &err),
                     err);
    ck_assert_ok(ksafe_consumer_commit(ms[1].c, KSAFE_COMMIT_SYNC, &err), err);
    kit_leave(&ms[1]);
    kit_leave(&ms[0]);
    /* B's partitions: B marked everything; A's: A's marks. */
    test_committed(tc, topic, group, 4, committed);
    for (p = 0; p < 4; p++)
        ck_assert_msg(committed[p] == MARKED || committed[p] == PER_PART,
                      "partition %d committed at %lld", p,
                      (long long)committed[p]);
}
END_TEST

/*
 * A member stops polling for longer than max.poll.interval.ms: librdkafka
 * leaves the group for it and reports its partitions lost at the next poll,
 * while the coordinator stays up and goes on accepting commits. Nothing is
 * committed for them (the 20 marks per partition are dropped), on_lost and
 * the loop's hook hear of it, and the member gets them back. There the old
 * marks must not come back either: after a seek to 0 it marks 5 records per
 * partition, and its commit - which the coordinator accepts - puts 5 on the
 * broker, not 20.
 */
START_TEST(lost_partitions_are_never_committed)
{
    char topic[64], group[64];
    ksafe_consumer_options o;
    ksafe_commit_policy never = KSAFE_COMMIT_POLICY_INIT;
    member m;
    ksafe_error err;
    int64_t committed[2];
    time_t deadline;
    struct timespec nap = {6, 0};

    ksafe_test_unique_name(topic, sizeof(topic), "lost");
    ksafe_test_unique_name(group, sizeof(group), "lost-g");
    ck_assert_ok(ksafe_test_cluster_create_topic(tc, topic, 2, &err), err);
    kit_produce(tc, topic, 2, 20);
    memset(&m, 0, sizeof(m));
    m.first[0] = m.first[1] = -1;
    ksafe_test_cluster_consumer_options(tc, &o, group);
    o.log_cb = kit_log;
    o.max_poll_interval_ms = test_session_ms(tc);
    o.on_assigned = kit_on_assigned;
    o.on_revoked = kit_on_revoked;
    o.on_lost = kit_on_lost;
    o.rebalance_payload = &m;
    ck_assert_ok(ksafe_consumer_new(&m.c, &o, &err), err);
    m.c->loop_on_revoke = kit_loop_hook;
    m.c->loop_arg = &m;
    never.every_ms = 0;
    ck_assert_ok(ksafe_consumer_set_commit_policy(m.c, &never, &err), err);
    {
        const char *t = topic;
        ck_assert_ok(ksafe_consumer_subscribe(m.c, &t, 1, &err), err);
    }
    m.mark_below = 1000;
    deadline = time(NULL) + 30;
    while (m.seen[0] + m.seen[1] < 40 && time(NULL) < deadline)
        kit_poll(&m, 100);
    ck_assert_int_eq(m.seen[0] + m.seen[1], 40);

    /* Past max.poll.interval.ms without a poll: the next poll says so. */
    nanosleep(&nap, NULL);
    deadline = time(NULL) + 30;
    while (!m.lost_events && time(NULL) < deadline) {
        ksafe_message *msg = NULL;
        int rc = ksafe_consumer_poll(m.c, 100, &msg, &err);
        ck_assert_msg(rc == 0 || err.rdkafka_code ==
                                     RD_KAFKA_RESP_ERR__MAX_POLL_EXCEEDED,
                      "poll: %s", err.message);
        /* Nothing was left to read before the loss. Under KIP-848 the new
         * assignment can come in the same poll as the loss, and with it
         * the (uncommitted) records again. */
        ck_assert_msg(!msg || m.lost_events,
                      "a record of partition %d before the loss",
                      (int)ksafe_message_partition(msg));
        ksafe_message_free(msg);
    }
    ck_assert_int_eq(m.lost_events, 1);
    ck_assert_int_eq(m.loop_lost_calls, 1);
    ck_assert_int_eq(m.revoked_events, 0);
    test_committed(tc, topic, group, 2, committed);
    ck_assert_int_eq(committed[0], RD_KAFKA_OFFSET_INVALID);
    ck_assert_int_eq(committed[1], RD_KAFKA_OFFSET_INVALID);

    /* Back in the group, the marks are gone. */
    m.mark_below = 0;
    deadline = time(NULL) + 30;
    while (!(m.owned[0] && m.owned[1]) && time(NULL) < deadline)
        kit_poll(&m, 100);
    ck_assert_msg(m.owned[0] && m.owned[1], "partitions not reassigned");
    ck_assert_ok(ksafe_consumer_seek(m.c, topic, 0, 0, &err), err);
    ck_assert_ok(ksafe_consumer_seek(m.c, topic, 1, 0, &err), err);
    m.seen[0] = m.seen[1] = 0;
    m.mark_below = 5;
    deadline = time(NULL) + 30;
    while (m.seen[0] + m.seen[1] < 40 && time(NULL) < deadline)
        kit_poll(&m, 100);
    ck_assert_ok(ksafe_consumer_commit(m.c, KSAFE_COMMIT_SYNC, &err), err);
    test_committed(tc, topic, group, 2, committed);
    ck_assert_int_eq(committed[0], 5);
    ck_assert_int_eq(committed[1], 5);
    kit_leave(&m);
}
END_TEST

/* The consumer's position entry of partition `p` (one topic). */
static const ksafe__position *position_of(const ksafe_consumer *c, int32_t p)
{
    size_t i;
    for (i = 0; i < c->n_pos; i++)
        if (c->pos[i].partition == p)
            return &c->pos[i];
    ck_abort_msg("partition %d not tracked", p);
    return NULL;
}

/* Waits until the consumer's async commit was answered. */
static void await_async(member *m)
{
    time_t deadline = time(NULL) + 30;
    while (m->c->async_in_flight && time(NULL) < deadline)
        kit_poll(m, 50);
    ck_assert_int_eq(m->c->async_in_flight, 0);
}

/*
 * OffsetCommit refused with REBALANCE_IN_PROGRESS, COORDINATOR_NOT_AVAILABLE
 * and NOT_COORDINATOR: sync commits retry, a refused async commit keeps its
 * positions for the next one, and in the end the committed offsets are the
 * marked ones.
 */
/*
 * KIP-320: a commit carries the leader epoch of the record it follows
 * (librdkafka >= 2.1). The embedded cluster checks that epoch against the
 * partition's current one, so after the leader moved the commit is refused
 * with FENCED_LEADER_EPOCH: ksafe resends it without the epoch and the
 * position is committed. The refusal itself shows the epoch was sent; with
 * librdkafka 2.0 there is none to send and the commit simply succeeds.
 */
static atomic_int epoch_notices;

static void epoch_log(int level, const char *fac, const char *msg, void *p)
{
    kit_log(level, fac, msg, p);
    if (strstr(msg, "refused for its leader epoch"))
        atomic_fetch_add(&epoch_notices, 1);
}

START_TEST(commit_carries_the_leader_epoch_across_a_leader_change)
{
    char topic[64], group[64];
    ksafe_mock_cluster *mc = ksafe_test_cluster_mock(tc);
    ksafe_consumer_options o;
    ksafe_consumer *c;
    ksafe_message *msg;
    ksafe_error err;
    int64_t committed[1];
    const char *t;
    time_t deadline;
    int n = 0;

    ck_assert_msg(mc != NULL, "needs the embedded cluster's fault injection");
    ksafe_test_unique_name(topic, sizeof(topic), "epoch");
    ksafe_test_unique_name(group, sizeof(group), "epoch-g");
    ck_assert_ok(ksafe_test_cluster_create_topic(tc, topic, 1, &err), err);
    kit_produce(tc, topic, 1, 10);
    ksafe_test_cluster_consumer_options(tc, &o, group);
    o.log_cb = epoch_log;
    ck_assert_ok(ksafe_consumer_new(&c, &o, &err), err);
    t = topic;
    ck_assert_ok(ksafe_consumer_subscribe(c, &t, 1, &err), err);
    deadline = time(NULL) + 30;
    while (n < 10 && time(NULL) < deadline) {
        ck_assert_ok(ksafe_consumer_poll(c, 100, &msg, &err), err);
        if (!msg)
            continue;
        ck_assert_ok(ksafe_consumer_done(c, msg, &err), err);
        ksafe_message_free(msg);
        n++;
    }
    ck_assert_int_eq(n, 10);
    /* The same broker leads again: the partition's epoch goes up by one. */
    rd_kafka_mock_partition_set_leader(ksafe_mock_cluster_rdkafka(mc), topic,
                                       0, 1);
    atomic_store(&epoch_notices, 0);
    ck_assert_ok(ksafe_consumer_commit(c, KSAFE_COMMIT_SYNC, &err), err);
    test_committed(tc, topic, group, 1, committed);
    ck_assert_int_eq(committed[0], 10);
    /* ksafe sends epochs when built with headers that have them (and so
     * runs on such a librdkafka). */
    if (RD_KAFKA_VERSION >= 0x020100ff)
        ck_assert_int_eq(atomic_load(&epoch_notices), 1);
    else
        ck_assert_int_eq(atomic_load(&epoch_notices), 0);
    ck_assert_ok(ksafe_consumer_close(c, &err), err);
    ksafe_consumer_free(c);
}
END_TEST

START_TEST(refused_commits_lose_nothing)
{
    static const rd_kafka_resp_err_t refusals[] = {
        RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS,
        RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE,
        RD_KAFKA_RESP_ERR_NOT_COORDINATOR};
    char topic[64], group[64];
    ksafe_mock_cluster *mc = ksafe_test_cluster_mock(tc);
    member m;
    ksafe_error err;
    int64_t committed[2];
    time_t deadline;

    ck_assert_msg(mc != NULL, "needs the embedded cluster's fault injection");
    ksafe_test_unique_name(topic, sizeof(topic), "refuse");
    ksafe_test_unique_name(group, sizeof(group), "refuse-g");
    ck_assert_ok(ksafe_test_cluster_create_topic(tc, topic, 2, &err), err);
    kit_produce(tc, topic, 2, 50);
    kit_join(tc, &m, topic, group, KSAFE_ASSIGN_COOPERATIVE_STICKY);
    m.mark_below = 30;
    deadline = time(NULL) + 30;
    while (m.seen[0] + m.seen[1] < 100 && time(NULL) < deadline)
        kit_poll(&m, 100);
    ck_assert_int_eq(m.seen[0] + m.seen[1], 100);

    /* Sync: the retries absorb all three refusals. */
    ck_assert_ok(ksafe_mock_cluster_push_request_errors(mc, 8, 3, refusals,
                                                        &err), err);
    ck_assert_ok(ksafe_consumer_commit(m.c, KSAFE_COMMIT_SYNC, &err), err);
    test_committed(tc, topic, group, 2, committed);
    ck_assert_int_eq(committed[0], 30);
    ck_assert_int_eq(committed[1], 30);

    /* Async: a refused commit is not recorded as committed... */
    m.mark_below = 1000;
    ck_assert_ok(ksafe_consumer_seek(m.c, topic, 0, 30, &err), err);
    ck_assert_ok(ksafe_consumer_seek(m.c, topic, 1, 30, &err), err);
    deadline = time(NULL) + 30;
    while (m.seen[0] + m.seen[1] < 140 && time(NULL) < deadline)
        kit_poll(&m, 100);
    ck_assert_int_eq(m.seen[0] + m.seen[1], 140);
    ck_assert_ok(ksafe_mock_cluster_push_request_errors(mc, 8, 1, refusals,
                                                        &err), err);
    ck_assert_ok(ksafe_consumer_commit(m.c, KSAFE_COMMIT_ASYNC, &err), err);
    ck_assert_int_eq(m.c->async_in_flight, 1);
    await_async(&m);
    ck_assert_int_eq(position_of(m.c, 0)->committed, 30);
    /* ...and goes out again with the next one. */
    ck_assert_ok(ksafe_consumer_commit(m.c, KSAFE_COMMIT_ASYNC, &err), err);
    await_async(&m);
    ck_assert_int_eq(position_of(m.c, 0)->committed, 50);
    test_committed(tc, topic, group, 2, committed);
    ck_assert_int_eq(committed[0], 50);
    ck_assert_int_eq(committed[1], 50);
    kit_leave(&m);
}
END_TEST

/*
 * commit_maybe by count: commits happen without explicit calls, at most one
 * in flight, and the marked position ends up committed.
 */
START_TEST(commit_policy_commits_by_count)
{
    char topic[64], group[64];
    ksafe_commit_policy pol = KSAFE_COMMIT_POLICY_INIT;
    member m;
    ksafe_error err;
    int64_t committed[1];
    time_t deadline;
    int commits = 0;

    ksafe_test_unique_name(topic, sizeof(topic), "policy");
    ksafe_test_unique_name(group, sizeof(group), "policy-g");
    ck_assert_ok(ksafe_test_cluster_create_topic(tc, topic, 1, &err), err);
    kit_produce(tc, topic, 1, 500);
    kit_join(tc, &m, topic, group, KSAFE_ASSIGN_COOPERATIVE_STICKY);
    pol.every_records = 100;
    pol.every_ms = 0;
    ck_assert_ok(ksafe_consumer_set_commit_policy(m.c, &pol, &err), err);
    m.mark_below = 1000;
    deadline = time(NULL) + 30;
    while (m.seen[0] < 500 && time(NULL) < deadline) {
        int before = m.c->async_in_flight;
        kit_poll(&m, 100);
        ck_assert_ok(ksafe_consumer_commit_maybe(m.c, &err), err);
        ck_assert_int_le(m.c->async_in_flight, 1);
        commits += m.c->async_in_flight > before;
    }
    ck_assert_int_eq(m.seen[0], 500);
    ck_assert_int_ge(commits, 1);
    ck_assert_int_le(commits, 5);
    await_async(&m);
    /* The last hundred may still be due: close commits them. */
    kit_leave(&m);
    test_committed(tc, topic, group, 1, committed);
    ck_assert_int_eq(committed[0], 500);
}
END_TEST

/*
 * Static membership: a member that closes and returns with the same
 * group.instance.id within the session timeout gets the same partitions,
 * and the other member loses none. The embedded cluster ignores
 * group.instance.id, so this runs against a real cluster only.
 */
START_TEST(static_member_returns_without_rebalance)
{
    char topic[64], group[64], id[160], suffix[80];
    const char *tp = topic;
    ksafe_consumer_options o;
    member ms[2];
    ksafe_error err;
    int p, owned_before[PARTS];
    time_t until;

    /* tagged TEST_REAL_ONLY: the embedded cluster ignores group.instance.id */
    ck_assert(!ksafe_test_cluster_is_embedded(tc));
    ksafe_test_unique_name(topic, sizeof(topic), "static");
    ksafe_test_unique_name(group, sizeof(group), "static-g");
    ck_assert_ok(ksafe_test_cluster_create_topic(tc, topic, PARTS, &err),
                 err);
    for (p = 0; p < 2; p++) {
        snprintf(suffix, sizeof(suffix), "%s-%d", group, p);
        ck_assert_ok(ksafe_group_instance_id(id, sizeof(id), suffix, &err),
                     err);
        memset(&ms[p], 0, sizeof(ms[p]));
        ksafe_test_cluster_consumer_options(tc, &o, group);
        if (!test_kip848()) { /* under KIP-848 the broker's session */
            o.session_timeout_ms = 30000;
            o.heartbeat_interval_ms = 1000;
        }
        o.group_instance_id = id;
        o.on_assigned = kit_on_assigned;
        o.on_revoked = kit_on_revoked;
        o.on_lost = kit_on_lost;
        o.rebalance_payload = &ms[p];
        o.log_cb = kit_log;
        ck_assert_ok(ksafe_consumer_new(&ms[p].c, &o, &err), err);
        ck_assert_ok(ksafe_consumer_subscribe(ms[p].c, &tp, 1, &err), err);
    }
    kit_settle(ms, 2, PARTS);
    for (p = 0; p < PARTS; p++) {
        owned_before[p] = ms[1].owned[p];
        ms[0].revoked[p] = 0;
    }
    /* Member 1 "restarts": a static member's close does not leave. */
    ksafe_consumer_free(ms[1].c);
    snprintf(suffix, sizeof(suffix), "%s-1", group);
    ck_assert_ok(ksafe_group_instance_id(id, sizeof(id), suffix, &err), err);
    memset(&ms[1], 0, sizeof(ms[1]));
    o.group_instance_id = id;
    o.rebalance_payload = &ms[1];
    ck_assert_ok(ksafe_consumer_new(&ms[1].c, &o, &err), err);
    ck_assert_ok(ksafe_consumer_subscribe(ms[1].c, &tp, 1, &err), err);
    kit_settle(ms, 2, PARTS);
    until = time(NULL) + 5;
    while (time(NULL) < until) {
        kit_poll(&ms[0], 50);
        kit_poll(&ms[1], 50);
    }
    for (p = 0; p < PARTS; p++) {
        ck_assert_int_eq(ms[1].owned[p], owned_before[p]);
        ck_assert_int_eq(ms[0].revoked[p], 0);
    }
    kit_leave(&ms[0]);
    kit_leave(&ms[1]);
}
END_TEST

/*
 * done() takes only records of the current assignment: A holds the first
 * record of each partition; B joins, takes one of them (Q), processes all
 * of Q and leaves (committing it); Q comes back to A. A's record of Q from
 * before is refused (KSAFE_ESTATE) while B owns Q and after Q came back -
 * marking it would move Q's position back over B's commit. The record of
 * the partition A kept, and a record of Q polled after its return, are
 * taken.
 */
START_TEST(done_refuses_records_of_an_earlier_assignment)
{
    char topic[64], group[64];
    ksafe_message *old[2] = {NULL, NULL}, *msg;
    member ms[2];
    ksafe_error err;
    time_t deadline;
    int q, p;

    ksafe_test_unique_name(topic, sizeof(topic), "epoch");
    ksafe_test_unique_name(group, sizeof(group), "epoch-g");
    ck_assert_ok(ksafe_test_cluster_create_topic(tc, topic, 2, &err), err);
    kit_produce(tc, topic, 2, 10);
    kit_join(tc, &ms[0], topic, group, KSAFE_ASSIGN_COOPERATIVE_STICKY);
    memset(&ms[1], 0, sizeof(ms[1]));
    deadline = time(NULL) + 30;
    while (!(old[0] && old[1]) && time(NULL) < deadline) {
        ck_assert_ok(ksafe_consumer_poll(ms[0].c, 100, &msg, &err), err);
        if (msg && !old[ksafe_message_partition(msg)])
            old[ksafe_message_partition(msg)] = msg;
        else
            ksafe_message_free(msg);
    }
    ck_assert_msg(old[0] && old[1], "A got no record of each partition");

    kit_join(tc, &ms[1], topic, group, KSAFE_ASSIGN_COOPERATIVE_STICKY);
    ms[1].mark_below = 1000;
    kit_settle(ms, 2, 2);
    q = ms[1].owned[0] ? 0 : 1;
    ck_assert_int_eq(ksafe_consumer_done(ms[0].c, old[q], &err),
                     KSAFE_ESTATE);
    ck_assert_ok(ksafe_consumer_done(ms[0].c, old[1 - q], &err), err);
    deadline = time(NULL) + 30;
    while (ms[1].seen[q] < 10 && time(NULL) < deadline) {
        kit_poll(&ms[1], 50);
        kit_poll(&ms[0], 0);
    }
    ck_assert_int_eq(ms[1].seen[q], 10);

    kit_leave(&ms[1]);
    kit_settle(ms, 1, 2);
    ck_assert_int_eq(ksafe_consumer_done(ms[0].c, old[q], &err),
                     KSAFE_ESTATE);
    ck_assert_ptr_nonnull(strstr(err.message, "assigned again"));
    ck_assert_ok(ksafe_consumer_done(ms[0].c, old[1 - q], &err), err);
    /* A record of Q from the current assignment is taken. */
    ck_assert_ok(ksafe_consumer_seek(ms[0].c, topic, q, 0, &err), err);
    deadline = time(NULL) + 30;
    for (p = -1; p != q && time(NULL) < deadline;) {
        ck_assert_ok(ksafe_consumer_poll(ms[0].c, 100, &msg, &err), err);
        if (!msg)
            continue;
        p = ksafe_message_partition(msg);
        if (p == q)
            ck_assert_ok(ksafe_consumer_done(ms[0].c, msg, &err), err);
        ksafe_message_free(msg);
    }
    ck_assert_int_eq(p, q);
    ksafe_message_free(old[0]);
    ksafe_message_free(old[1]);
    kit_leave(&ms[0]);
}
END_TEST

static Suite *consumer_suite(void)
{
    Suite *s = suite_create("consumer");
    struct {
        const char *name;
        const TTest *test;
        int loops;
        const char *tags; /* TEST_EMBEDDED_ONLY / TEST_REAL_ONLY, or NULL */
    } cases[] = {
        {"ownership", every_partition_has_one_owner_through_rebalances, 2, NULL},
        {"revoke_commit", revoke_commits_marked_offsets, 2, NULL},
        {"lost", lost_partitions_are_never_committed, 1, NULL},
        {"refused_commits", refused_commits_lose_nothing, 1,
         TEST_EMBEDDED_ONLY},
        {"leader_epoch", commit_carries_the_leader_epoch_across_a_leader_change,
         1, TEST_EMBEDDED_ONLY},
        {"commit_policy", commit_policy_commits_by_count, 1, NULL},
        {"static_membership", static_member_returns_without_rebalance, 1,
         TEST_REAL_ONLY},
        {"done_epoch", done_refuses_records_of_an_earlier_assignment, 1, NULL},
    };
    size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        TCase *t = tcase_create(cases[i].name);
        tcase_add_unchecked_fixture(t, test_cluster_up, test_cluster_down);
        tcase_set_timeout(t, 180);
        /* Two loops run both strategies; eager has no KIP-848 run. */
        tcase_add_loop_test(t, cases[i].test, 0,
                            cases[i].loops == 2 && !test_eager_runs()
                                ? 1
                                : cases[i].loops);
        if (cases[i].tags)
            tcase_set_tags(t, cases[i].tags);
        suite_add_tcase(s, t);
    }
    return s;
}

KSAFE_TEST_MAIN(consumer_suite)
