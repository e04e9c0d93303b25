/*
 * lib/consumer_commit_guard.c - no asynchronous commit while a rebalance is
 * under way.
 *
 * The broker answers the requests of one connection in order, and the
 * member's JoinGroup is answered only when the join completes. An
 * OffsetCommit sent while this member's JoinGroup is pending therefore
 * waits behind it and then carries a generation the group has left: the
 * answer is ILLEGAL_GENERATION. librdkafka before 2.10 (issue 4059) takes
 * that answer as a lost assignment even in the middle of the rebalance: it
 * resets the generation the join just obtained, its SyncGroup fails, and the
 * member's partitions are revoked as lost, their marks dropped and their
 * records since the last commit handled again - thousands where the commit
 * policy promises about two commit intervals.
 *
 * So the commit policy's asynchronous commits wait (their positions stay
 * dirty) from the moment we know a rebalance has begun until the next
 * assignment, at most a session timeout:
 *   - an incremental revoke: librdkafka rejoins right after it;
 *   - a refusal that means "rebalancing" (REBALANCE_IN_PROGRESS,
 *     ILLEGAL_GENERATION, UNKNOWN_MEMBER_ID): resending before the rebalance
 *     ends earns the same answer, or the lost assignment above;
 *   - with a librdkafka that has the bug, a probe: the rejoin that a
 *     heartbeat starts is not visible to the application, so before each
 *     asynchronous commit an OffsetFetch goes out on the same connection
 *     (twice, see ksafe__commit_guard_busy: two round trips and 5 ms).
 *     Answered promptly, no JoinGroup is pending ahead of the commit; not
 *     answered in time, one is (or the coordinator is away or slow): hold
 *     for a short while, then probe again. The
 *     probe also guards an explicit ksafe_consumer_commit(ASYNC), which is
 *     otherwise sent when asked.
 * The revoke commit (synchronous, consumer_offsets.c) is not held: inside
 * the revoke callback no JoinGroup of ours is pending. It first waits for
 * the asynchronous commit in flight, so their answers cannot cross.
 */
#include <time.h>

#include "consumer_internal.h"

/* The longest wait for the in-flight commit's answer inside a revoke. */
#define AWAIT_ASYNC_MS 2000
/* Probe timeout: this much plus four answer times, at most PROBE_MAX_MS. */
#define PROBE_BASE_MS 250
#define PROBE_MAX_MS 2000
/* Between the two probes: time for the group thread to send a JoinGroup. */
#define PROBE_SETTLE_MS 5
/* After a probe went unanswered, probe again this much later. */
#define PROBE_HOLD_MS 500

void ksafe__commit_guard_init(ksafe_consumer *c)
{
    c->guard_probe = c->quirks.commit_drops_assignment;
    c->commit_hold = 0;
    c->probe_rtt_ms = 5;
}

/* Until the next assignment, or for at most `ms`. */
static void hold(ksafe_consumer *c, int64_t ms, const char *why)
{
    int64_t until = ksafe__now_ms() + ms;

    if (!c->commit_hold)
        ksafe__log(&c->cl, KSAFE_LOG_NOTICE, "COMMIT",
                   "async commits wait for the next assignment (%lld ms at "
                   "most): %s",
                   (long long)ms, why);
    if (!c->commit_hold || until > c->commit_hold_until_ms)
        c->commit_hold_until_ms = until;
    c->commit_hold = 1;
}

/* 1 when the OffsetFetch of one of `l`'s partitions was not answered in
 * time: something (a pending JoinGroup) is ahead of us on the connection. */
static int coordinator_busy(ksafe_consumer *c,
                            const rd_kafka_topic_partition_list_t *l)
{
    rd_kafka_topic_partition_list_t *one = rd_kafka_topic_partition_list_new(1);
    int timeout = PROBE_BASE_MS + 4 * c->probe_rtt_ms;
    int64_t t0 = ksafe__now_ms();
    rd_kafka_resp_err_t e;
    int rtt;

    if (timeout > PROBE_MAX_MS)
        timeout = PROBE_MAX_MS;
    rd_kafka_topic_partition_list_add(one, l->elems[0].topic,
                                      l->elems[0].partition);
    e = rd_kafka_committed(c->cl.rk, one, timeout);
    rd_kafka_topic_partition_list_destroy(one);
    if (e == RD_KAFKA_RESP_ERR__TIMED_OUT)
        return 1;
    rtt = (int)(ksafe__now_ms() - t0);
    c->probe_rtt_ms = (3 * c->probe_rtt_ms + rtt) / 4;
    return 0;
}

int ksafe__commit_guard_holding(ksafe_consumer *c)
{
    if (!c->commit_hold)
        return 0;
    /* Normally the assignment ends the hold. Should it not come (a
     * rebalance that ends without a callback for us, a probe that was only
     * slow), the probe and the next refusal decide again. */
    if (ksafe__now_ms() < c->commit_hold_until_ms)
        return 1;
    c->commit_hold = 0;
    return 0;
}

int ksafe__commit_guard_busy(ksafe_consumer *c,
                             const rd_kafka_topic_partition_list_t *l)
{
    struct timespec settle = {0, PROBE_SETTLE_MS * 1000000L};

    if (!c->guard_probe)
        return 0;
    /* Twice: waking the group thread for the first probe can send a due
     * heartbeat just ahead of it, and the answer that starts the rejoin
     * then arrives with ours. The second probe goes out after the
     * JoinGroup that answer causes, and waits behind it. */
    if (!coordinator_busy(c, l)) {
        nanosleep(&settle, NULL);
        if (!coordinator_busy(c, l))
            return 0;
    }
    /* Short: a slow answer is not always a pending rejoin, and a long
     * hold would cost the commit policy's bound on a crash. */
    hold(c, PROBE_HOLD_MS,
         "the group coordinator did not answer a probe in time (a rejoin is "
         "pending; a commit now would cost the assignment, librdkafka issue "
         "4059)");
    return 1;
}

void ksafe__commit_guard_refused(ksafe_consumer *c, rd_kafka_resp_err_t e)
{
    if (e == RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS ||
        e == RD_KAFKA_RESP_ERR_ILLEGAL_GENERATION ||
        e == RD_KAFKA_RESP_ERR_UNKNOWN_MEMBER_ID)
        hold(c, c->session_timeout_ms, rd_kafka_err2str(e));
}

/*
 * From poll() on MAX_POLL_EXCEEDED and from the commit policy when
 * rd_kafka_assignment_lost() says so. librdkafka decides an assignment is
 * lost (max.poll.interval.ms exceeded, session gone) before the
 * application's lost callback is served: under
 * the classic protocol in the same step, under KIP-848 only at the next
 * heartbeat (the leave waits for the revoke). A policy commit in between
 * would carry marks the loss is about to drop, so async commits wait for
 * the next assignment, as after a loss.
 */
void ksafe__commit_guard_losing(ksafe_consumer *c)
{
    hold(c, c->session_timeout_ms,
         "the assignment is being lost (max.poll.interval.ms exceeded or "
         "the session ended): its marks are not committed");
}

void ksafe__consumer_commits_assigned(ksafe_consumer *c)
{
    c->commit_hold = 0;
}

void ksafe__consumer_commits_revoking(ksafe_consumer *c, int cooperative,
                                      int lost)
{
    int64_t until = ksafe__now_ms() + AWAIT_ASYNC_MS;

    /* The revoke commit goes after the answer to the one in flight. */
    while (!lost && c->async_in_flight && c->commit_q &&
           ksafe__now_ms() < until)
        rd_kafka_queue_poll_callback(c->commit_q, 100);
    /* Under KIP-848 no join follows an incremental revoke (the broker
     * sends the next assignment with a heartbeat, and a commit carries the
     * member epoch, not a generation): nothing to wait for. */
    if (lost || (cooperative && !c->kip848))
        hold(c, c->session_timeout_ms,
             lost ? "partitions lost" : "incremental revoke");
}
