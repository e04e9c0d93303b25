/*
 * lib/consumer_offsets.c - commits of the marked positions (sync, async,
 * what close could not commit) and the commit policy. The positions
 * themselves and marking live in consumer_positions.c.
 *
 * Each commit hands librdkafka an explicit list from our table. A position
 * counts as committed only after the broker accepted it; anything else
 * stays "dirty" and goes out with the next commit.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "consumer_internal.h"

/* An async commit without an answer for this long is given up on (its
 * positions stay dirty and go out again). */
#define ASYNC_STUCK_MS 30000
/* Most calls between two clock reads in commit_maybe. */
#define TICK_LIMIT_MAX 1024u

/* ---- commits ----------------------------------------------------------- */

/* A commit refused for the leader epoch it carried (the leader moved on
 * since the record was read); resent without one, it is accepted. */
static int is_epoch_refusal(rd_kafka_resp_err_t e)
{
    return e == RD_KAFKA_RESP_ERR_FENCED_LEADER_EPOCH ||
           e == RD_KAFKA_RESP_ERR_UNKNOWN_LEADER_EPOCH;
}

static int retriable(ksafe_consumer *c, rd_kafka_resp_err_t e)
{
    /* Cooperative members keep their partitions across generations: after
     * the rejoin the same commit is valid again. Eager members do not. */
    if (e == RD_KAFKA_RESP_ERR_ILLEGAL_GENERATION)
        return ksafe__consumer_cooperative(c);
    /* KIP-848: the commit carried an epoch the broker moved past while the
     * member still owns the partition; the next heartbeat brings the new
     * epoch and the same commit is accepted. (FENCED_MEMBER_EPOCH and
     * UNKNOWN_MEMBER_ID mean the partitions are gone: not retried.) */
    if (e == KSAFE__ERR_STALE_MEMBER_EPOCH || is_epoch_refusal(e))
        return 1;
    switch (e) {
    case RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS:
    case RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE:
    case RD_KAFKA_RESP_ERR_NOT_COORDINATOR:
    case RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS:
    case RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT:
    case RD_KAFKA_RESP_ERR__TIMED_OUT:
    case RD_KAFKA_RESP_ERR__TRANSPORT:
    case RD_KAFKA_RESP_ERR__WAIT_COORD:
        return 1;
    default:
        return 0;
    }
}

/* The dirty positions of `only` (NULL: all); NULL when there are none. */
static rd_kafka_topic_partition_list_t *
dirty_list(ksafe_consumer *c, const rd_kafka_topic_partition_list_t *only,
           int async)
{
    rd_kafka_topic_partition_list_t *l = NULL;
    rd_kafka_topic_partition_t *tp;
    size_t i;

    for (i = 0; i < c->n_pos; i++) {
        ksafe__position *p = &c->pos[i];
        if (p->marked < 0 || p->marked == p->committed)
            continue;
        /* Sync commits resend an in-flight position: revoke and close must
         * know the answer. */
        if (async && p->marked == p->in_flight)
            continue;
        if (only &&
            !rd_kafka_topic_partition_list_find(only, p->topic, p->partition))
            continue;
        if (!l)
            l = rd_kafka_topic_partition_list_new((int)c->n_pos);
        tp = rd_kafka_topic_partition_list_add(l, p->topic, p->partition);
        tp->offset = p->marked;
        if (p->marked_epoch >= 0)
            ksafe__set_leader_epoch(tp, p->marked_epoch);
    }
    return l;
}

/* Records accepted positions. A request-level error records nothing: the
 * per-partition fields may not have been filled in then. */
static void record_result(ksafe_consumer *c, rd_kafka_resp_err_t rerr,
                          const rd_kafka_topic_partition_list_t *offsets,
                          int async)
{
    int i;

    for (i = 0; offsets && i < offsets->cnt; i++) {
        const rd_kafka_topic_partition_t *tp = &offsets->elems[i];
        ksafe__position *p = ksafe__consumer_find(c, tp->topic,
                                                  tp->partition);
        if (!p)
            continue; /* revoked meanwhile */
        if (async) {
            /* Only the answer to the commit we sent from this entry. */
            if (p->in_flight != tp->offset)
                continue;
            p->in_flight = -1;
        }
        if (!rerr && !tp->err)
            p->committed = tp->offset;
        if (is_epoch_refusal(tp->err) && p->marked_epoch >= 0) {
            /* The leader changed since the record was read and this broker
             * checks the epoch of a commit: the next commit of the
             * partition goes without one, as librdkafka 2.0's do. */
            ksafe__log(&c->cl, KSAFE_LOG_NOTICE, "COMMIT",
                       "%s [%d]: commit at %lld refused for its leader epoch "
                       "%d (%s): committing without an epoch",
                       tp->topic, (int)tp->partition, (long long)tp->offset,
                       (int)p->marked_epoch, rd_kafka_err2str(tp->err));
            p->marked_epoch = -1;
        }
    }
}

/* Appends "topic[p]@offset: error" items for what the result refused. */
static void describe_failures(char *buf, size_t size, rd_kafka_resp_err_t rerr,
                              const rd_kafka_topic_partition_list_t *l)
{
    size_t used = 0;
    int i;

    buf[0] = '\0';
    for (i = 0; l && i < l->cnt && used + 1 < size; i++) {
        rd_kafka_resp_err_t e = l->elems[i].err ? l->elems[i].err : rerr;
        int n;
        if (!e)
            continue;
        n = snprintf(buf + used, size - used, "%s%s [%d] at %lld",
                     used ? ", " : "", l->elems[i].topic,
                     (int)l->elems[i].partition,
                     (long long)l->elems[i].offset);
        if (n < 0)
            break;
        used += (size_t)n;
    }
    if (used >= size && size > 4)
        memcpy(buf + size - 4, "...", 4);
}

typedef struct sync_result {
    ksafe_consumer *c;
    rd_kafka_resp_err_t err;       /* the request's or a partition's error */
    rd_kafka_resp_err_t request_err; /* the request's own */
    rd_kafka_topic_partition_list_t *refused; /* NULL until answered */
} sync_result;

static void sync_cb(rd_kafka_t *rk, rd_kafka_resp_err_t rerr,
                    rd_kafka_topic_partition_list_t *offsets, void *opaque)
{
    sync_result *r = opaque;
    int i;

    KSAFE__UNUSED(rk);
    r->err = r->request_err = rerr;
    record_result(r->c, rerr, offsets, 0);
    if (r->refused)
        rd_kafka_topic_partition_list_destroy(r->refused);
    r->refused = rd_kafka_topic_partition_list_new(offsets ? offsets->cnt : 0);
    for (i = 0; offsets && i < offsets->cnt; i++)
        if (rerr || offsets->elems[i].err) {
            rd_kafka_topic_partition_t *tp = rd_kafka_topic_partition_list_add(
                r->refused, offsets->elems[i].topic,
                offsets->elems[i].partition);
            tp->offset = offsets->elems[i].offset;
            tp->err = offsets->elems[i].err ? offsets->elems[i].err : rerr;
            if (!r->err)
                r->err = tp->err;
        }
}

/*
 * During close: notes what this sync commit attempt left uncommitted (`l`
 * sent, `r` its answer), and forgets earlier failures an accepted position
 * now covers.
 */
static void close_note(ksafe_consumer *c,
                       const rd_kafka_topic_partition_list_t *l,
                       const sync_result *r)
{
    int i;

    if (!c->closing)
        return;
    if (!c->close_failed &&
        !(c->close_failed = rd_kafka_topic_partition_list_new(l->cnt)))
        return;
    for (i = 0; i < l->cnt; i++) {
        const rd_kafka_topic_partition_t *sent = &l->elems[i];
        const rd_kafka_topic_partition_t *no =
            r->refused ? rd_kafka_topic_partition_list_find(
                             r->refused, sent->topic, sent->partition)
                       : NULL;
        rd_kafka_topic_partition_t *old = rd_kafka_topic_partition_list_find(
            c->close_failed, sent->topic, sent->partition);
        /* Unanswered, or refused as a whole: every partition failed. */
        rd_kafka_resp_err_t e = no           ? no->err
                                : r->refused ? r->request_err
                                             : r->err;

        if (!e) {
            if (old && old->offset <= sent->offset)
                rd_kafka_topic_partition_list_del(c->close_failed,
                                                  sent->topic,
                                                  sent->partition);
            continue;
        }
        if (!old)
            old = rd_kafka_topic_partition_list_add(
                c->close_failed, sent->topic, sent->partition);
        if (old->offset < sent->offset)
            old->offset = sent->offset;
        old->err = e;
    }
}

void ksafe__consumer_close_note_lost(ksafe_consumer *c,
                                     const rd_kafka_topic_partition_list_t *parts)
{
    rd_kafka_topic_partition_list_t *l;
    sync_result r = {c, RD_KAFKA_RESP_ERR__ASSIGNMENT_LOST,
                     RD_KAFKA_RESP_ERR__ASSIGNMENT_LOST, NULL};

    if (c->closing && (l = dirty_list(c, parts, 0))) {
        close_note(c, l, &r);
        rd_kafka_topic_partition_list_destroy(l);
    }
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int commit_sync(ksafe_consumer *c,
                       const rd_kafka_topic_partition_list_t *only, int mode,
                       ksafe_error *err)
{
    static const int backoff_ms[] = {100, 200, 400, 800};
    rd_kafka_topic_partition_list_t *l;
    sync_result r = {c, RD_KAFKA_RESP_ERR_NO_ERROR, RD_KAFKA_RESP_ERR_NO_ERROR,
                     NULL};
    /* Inside a rebalance callback the generation cannot change, and close
     * retries by polling: there one attempt tells all. */
    size_t retries = mode == KSAFE__COMMIT_SYNC && !c->in_revoke &&
                             !c->assigning
                         ? sizeof(backoff_ms) / sizeof(backoff_ms[0])
                         : 0;
    size_t attempt;
    char what[160];
    int n = 0, epoch_resent = 0;

    for (attempt = 0;; attempt++) {
        rd_kafka_resp_err_t rerr;

        if (!(l = dirty_list(c, only, 0))) {
            if (r.refused)
                rd_kafka_topic_partition_list_destroy(r.refused);
            return 0;
        }
        n = l->cnt;
        r.err = r.request_err = RD_KAFKA_RESP_ERR_NO_ERROR;
        if (r.refused) {
            rd_kafka_topic_partition_list_destroy(r.refused);
            r.refused = NULL;
        }
        c->commits_sent++;
        rerr = rd_kafka_commit_queue(c->cl.rk, l, NULL, sync_cb, &r);
        if (rerr && !r.err)
            r.err = rerr;
        close_note(c, l, &r);
        if (!r.err) {
            rd_kafka_topic_partition_list_destroy(l);
            if (attempt < sizeof(backoff_ms) / sizeof(backoff_ms[0]))
                continue; /* anything left dirty? normally not */
            /* Accepted, yet not recorded: never claim it was committed. */
            l = dirty_list(c, only, 0);
            r.err = RD_KAFKA_RESP_ERR__FAIL;
            if (!l)
                return 0;
            break;
        }
        /* Refused for the leader epoch it carried: record_result() dropped
         * the epoch, and the same commit without one is accepted at once -
         * worth one more attempt even where no retries are made (revoke). */
        if (is_epoch_refusal(r.err) && !epoch_resent) {
            epoch_resent = 1;
            rd_kafka_topic_partition_list_destroy(l);
            continue;
        }
        if (!retriable(c, r.err) || attempt >= retries)
            break;
        ksafe__log(&c->cl, KSAFE_LOG_NOTICE, "COMMIT",
                   "commit of %d partition(s) refused (%s); retrying", n,
                   rd_kafka_err2str(r.err));
        rd_kafka_topic_partition_list_destroy(l);
        sleep_ms(backoff_ms[attempt]);
    }
    describe_failures(what, sizeof(what), r.err, r.refused ? r.refused : l);
    rd_kafka_topic_partition_list_destroy(l);
    if (r.refused)
        rd_kafka_topic_partition_list_destroy(r.refused);
    return ksafe__error_set(err, KSAFE_ECOMMIT, r.err,
                            retriable(c, r.err) ? KSAFE_ERROR_RETRIABLE : 0,
                            "commit of %d partition(s) failed (%s): %s", n,
                            rd_kafka_err2str(r.err),
                            *what ? what : "no partition accepted");
}

static void async_cb(rd_kafka_t *rk, rd_kafka_resp_err_t rerr,
                     rd_kafka_topic_partition_list_t *offsets, void *opaque)
{
    ksafe_consumer *c = opaque;
    int i, refused = 0;

    KSAFE__UNUSED(rk);
    if (c->async_in_flight > 0)
        c->async_in_flight--;
    record_result(c, rerr, offsets, 1);
    for (i = 0; offsets && i < offsets->cnt; i++)
        if (rerr || offsets->elems[i].err)
            refused++;
    if (refused) {
        rd_kafka_resp_err_t why = rerr ? rerr : offsets->elems[0].err;
        ksafe__commit_guard_refused(c, why);
        /* Refusals during a rebalance are routine: the next commit (or the
         * revoke commit) carries the positions. */
        ksafe__log(&c->cl,
                   why == RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS
                       ? KSAFE_LOG_NOTICE
                       : KSAFE_LOG_WARNING,
                   "COMMIT",
                   "async commit refused for %d partition(s) (%s): "
                   "positions kept, they go out with the next commit",
                   refused, rd_kafka_err2str(why));
    }
}

void ksafe__consumer_serve_commits(ksafe_consumer *c)
{
    if (c->async_in_flight && c->commit_q)
        while (c->async_in_flight &&
               rd_kafka_queue_poll_callback(c->commit_q, 0) > 0)
            ;
}

static int commit_async(ksafe_consumer *c, ksafe_error *err)
{
    rd_kafka_topic_partition_list_t *l;
    rd_kafka_resp_err_t rerr;
    int i, n;

    if (!(l = dirty_list(c, NULL, 1)))
        return 0;
    if (ksafe__commit_guard_busy(c, l)) {
        rd_kafka_topic_partition_list_destroy(l);
        return 0;
    }
    n = l->cnt;
    c->commits_sent++;
    rerr = rd_kafka_commit_queue(c->cl.rk, l, c->commit_q, async_cb, c);
    if (!rerr) {
        for (i = 0; i < l->cnt; i++) {
            ksafe__position *p = ksafe__consumer_find(c, l->elems[i].topic,
                                                      l->elems[i].partition);
            if (p)
                p->in_flight = l->elems[i].offset;
        }
        c->async_in_flight++;
        c->async_sent_ms = ksafe__now_ms();
    }
    rd_kafka_topic_partition_list_destroy(l);
    if (rerr)
        return ksafe__error_set(err, KSAFE_ECOMMIT, rerr,
                                retriable(c, rerr) ? KSAFE_ERROR_RETRIABLE : 0,
                                "async commit of %d partition(s) not sent: %s",
                                n, rd_kafka_err2str(rerr));
    return 0;
}

int ksafe__consumer_commit_marked(ksafe_consumer *c,
                                  const rd_kafka_topic_partition_list_t *only,
                                  int mode, ksafe_error *err)
{
    ksafe__consumer_serve_commits(c);
    if (mode == KSAFE__COMMIT_ASYNC) {
        if (c->async_in_flight &&
            ksafe__now_ms() - c->async_sent_ms < ASYNC_STUCK_MS)
            return 0; /* one at a time; the next one carries the rest */
        if (c->async_in_flight) {
            size_t i;
            ksafe__log(&c->cl, KSAFE_LOG_WARNING, "COMMIT",
                       "async commit unanswered for %d s: sending again",
                       ASYNC_STUCK_MS / 1000);
            c->async_in_flight = 0;
            for (i = 0; i < c->n_pos; i++)
                c->pos[i].in_flight = -1;
        }
        return commit_async(c, err);
    }
    return commit_sync(c, only, mode, err);
}

int ksafe_consumer_commit(ksafe_consumer *c, ksafe_commit_mode mode,
                          ksafe_error *err)
{
    if (!c)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0, "consumer is NULL");
    if (mode != KSAFE_COMMIT_SYNC && mode != KSAFE_COMMIT_ASYNC)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "commit mode %d is not a ksafe_commit_mode",
                                (int)mode);
    if (c->closed)
        return ksafe__error_set(err, KSAFE_ESTATE, 0, 0,
                                "the consumer is closed");
    return ksafe__consumer_commit_marked(
        c, NULL, mode == KSAFE_COMMIT_ASYNC ? KSAFE__COMMIT_ASYNC
                                            : KSAFE__COMMIT_SYNC,
        err);
}

/* ---- commit policy ----------------------------------------------------- */

static void policy_apply(ksafe_consumer *c, unsigned int records,
                         unsigned int ms)
{
    c->every_records = records;
    c->every_ms = ms;
    c->next_count = records ? c->marks + records : UINT64_MAX;
    c->ticks = 0;
    c->tick_limit = 1;
    c->last_commit_ms = c->last_clock_ms = ksafe__now_ms();
}

void ksafe__consumer_policy_init(ksafe_consumer *c)
{
    static const ksafe_commit_policy def = KSAFE_COMMIT_POLICY_INIT;
    policy_apply(c, def.every_records, def.every_ms);
    ksafe__commit_guard_init(c);
}

int ksafe_consumer_set_commit_policy(ksafe_consumer *c,
                                     const ksafe_commit_policy *policy,
                                     ksafe_error *err)
{
    if (!c || !policy)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "set_commit_policy needs a consumer and a "
                                "policy");
    if (policy->version != KSAFE_COMMIT_POLICY_VERSION)
        return ksafe__error_set(err, KSAFE_EVERSION, 0, 0,
                                "ksafe_commit_policy.version is %u; this "
                                "library knows version %d (initialise with "
                                "KSAFE_COMMIT_POLICY_INIT)",
                                policy->version, KSAFE_COMMIT_POLICY_VERSION);
    if (policy->every_records > 1000000000u)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "every_records is %u, above 1000000000",
                                policy->every_records);
    if (policy->every_ms > 3600000u)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "every_ms is %u, above 3600000 (one hour)",
                                policy->every_ms);
    policy_apply(c, policy->every_records, policy->every_ms);
    return 0;
}

/*
 * The slow half of commit_maybe: read the clock, adapt how often to read it
 * (aim at four reads per every_ms at the current rate), commit if due.
 */
static int commit_due(ksafe_consumer *c, ksafe_error *err)
{
    int64_t now = ksafe__now_ms();
    int64_t elapsed = now - c->last_clock_ms;
    unsigned int calls = c->ticks;
    int64_t prev_commit_ms;
    int due, rc;

    c->ticks = 0;
    c->last_clock_ms = now;
    if (c->every_ms) {
        uint64_t want = elapsed > 0
                            ? (uint64_t)calls * (c->every_ms / 4 + 1) /
                                  (uint64_t)elapsed
                            : (uint64_t)c->tick_limit * 2;
        c->tick_limit = want < 1 ? 1
                        : want > TICK_LIMIT_MAX ? TICK_LIMIT_MAX
                                                : (unsigned int)want;
    } else {
        c->tick_limit = TICK_LIMIT_MAX;
    }
    ksafe__consumer_serve_commits(c);
    due = c->marks >= c->next_count ||
          (c->every_ms && now - c->last_commit_ms >= (int64_t)c->every_ms);
    if (!due)
        return 0;
    if (c->async_in_flight && now - c->async_sent_ms < ASYNC_STUCK_MS) {
        /* Wait for the answer; look again in a few records. */
        if (c->marks >= c->next_count)
            c->next_count = c->marks + 64;
        return 0;
    }
    if (rd_kafka_assignment_lost(c->cl.rk))
        /* librdkafka decided the assignment is lost and its callback is
         * still to be served: the marks of a lost assignment are not
         * committed (under KIP-848 the broker would still take them, but
         * the next owner's view must not depend on the protocol). */
        ksafe__commit_guard_losing(c);
    if (ksafe__commit_guard_holding(c)) {
        /* Rebalance under way: look again in a few records, so the commit
         * goes out as soon as the hold ends (the policy's bound). */
        if (c->marks >= c->next_count)
            c->next_count = c->marks + 64;
        return 0;
    }
    prev_commit_ms = c->last_commit_ms;
    c->last_commit_ms = now;
    c->next_count = c->every_records ? c->marks + c->every_records
                                     : UINT64_MAX;
    rc = ksafe__consumer_commit_marked(c, NULL, 1, err);
    if (ksafe__commit_guard_holding(c)) {
        /* the probe found a rejoin pending: nothing was sent */
        c->last_commit_ms = prev_commit_ms;
        c->next_count = c->marks + 64;
    }
    return rc;
}

int ksafe_consumer_commit_maybe(ksafe_consumer *c, ksafe_error *err)
{
    if (!c)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0, "consumer is NULL");
    if (c->marks < c->next_count && ++c->ticks < c->tick_limit)
        return 0;
    if (c->closed)
        return ksafe__error_set(err, KSAFE_ESTATE, 0, 0,
                                "the consumer is closed");
    return commit_due(c, err);
}

int ksafe__consumer_commit_idle(ksafe_consumer *c, ksafe_error *err)
{
    /* Nothing arrived: a cheap moment to read the clock, and the only way
     * marks left after a burst reach the broker on time when the adaptive
     * read interval was tuned for a high rate. */
    if (c->closed)
        return 0;
    return commit_due(c, err);
}
