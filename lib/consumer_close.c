/*
 * lib/consumer_close.c - closing the consumer: the last commits, leaving
 * the group, the report of what could not be committed, and the librdkafka
 * bugs close works around (each only on the versions that have it, see
 * ksafe__consumer_quirks).
 */
#include <pthread.h>
#include <string.h>

#include "consumer_internal.h"

/* Serves callbacks for up to `ms`, dropping records (not marked, so they are
 * delivered again), until `done` says so. */
static void serve_until(ksafe_consumer *c, int (*done)(ksafe_consumer *),
                        int ms)
{
    int64_t deadline = ksafe__now_ms() + ms;

    while (!done(c) && ksafe__now_ms() < deadline) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(c->cl.rk, 50);
        if (m)
            rd_kafka_message_destroy(m);
    }
}

static int first_assignment_seen(ksafe_consumer *c)
{
    return c->assigned_once;
}

static int assignment_empty(ksafe_consumer *c)
{
    rd_kafka_topic_partition_list_t *l = NULL;
    int empty;

    if (rd_kafka_assignment(c->cl.rk, &l))
        return 1; /* nothing more to learn from waiting */
    empty = l->cnt == 0;
    rd_kafka_topic_partition_list_destroy(l);
    return empty && c->n_pos == 0;
}

static int nothing_dirty(ksafe_consumer *c)
{
    size_t i;

    for (i = 0; i < c->n_pos; i++)
        if (c->pos[i].marked >= 0 && c->pos[i].marked != c->pos[i].committed)
            return 0;
    return 1;
}

/*
 * Close's own commit. A refusal mid-rebalance is retried by polling, never
 * by sleeping: a member that stops polling stops serving its rebalance and
 * gets fenced, and the revoke that polling serves commits (or reports) the
 * partitions it takes away.
 */
static void close_commit(ksafe_consumer *c)
{
    int64_t deadline = ksafe__now_ms() + c->session_timeout_ms + 5000;
    ksafe_error ce;
    int rc;

    rc = ksafe__consumer_commit_marked(c, NULL, KSAFE__COMMIT_SYNC_ONCE, &ce);
    while (rc && (ce.flags & KSAFE_ERROR_RETRIABLE) && c->subscribed &&
           ksafe__now_ms() < deadline) {
        serve_until(c, nothing_dirty, 200);
        rc = ksafe__consumer_commit_marked(c, NULL, KSAFE__COMMIT_SYNC_ONCE,
                                           &ce);
    }
}

/* The ECOMMIT of close: every position it could not commit. */
static int close_report(ksafe_consumer *c, ksafe_error *err)
{
    const rd_kafka_topic_partition_list_t *l = c->close_failed;
    char what[200];
    size_t used = 0;
    int i;

    what[0] = '\0';
    for (i = 0; i < l->cnt; i++) {
        const rd_kafka_topic_partition_t *tp = &l->elems[i];
        int n;

        ksafe__log(&c->cl, KSAFE_LOG_ERR, "CLOSE",
                   "%s [%d]: position %lld not committed (%s): records from "
                   "the last commit on come again",
                   tp->topic, (int)tp->partition, (long long)tp->offset,
                   rd_kafka_err2str(tp->err));
        if (used + 1 >= sizeof(what))
            continue;
        n = snprintf(what + used, sizeof(what) - used, "%s%s [%d] at %lld",
                     i ? ", " : "", tp->topic, (int)tp->partition,
                     (long long)tp->offset);
        if (n > 0)
            used += (size_t)n;
    }
    if (used >= sizeof(what))
        memcpy(what + sizeof(what) - 4, "...", 4);
    return ksafe__error_set(err, KSAFE_ECOMMIT, l->elems[0].err, 0,
                            "close: %d position(s) not committed (%s): %s",
                            l->cnt, rd_kafka_err2name(l->elems[0].err), what);
}

/* The member has an id: some JoinGroup was answered, so librdkafka may
 * have chosen the assignor and be waiting for the SyncGroup that creates
 * its state (issue 4312). No id: no JoinGroup succeeded, nothing is
 * half-built, and destroying is safe by any path. */
static int join_answered(ksafe_consumer *c)
{
    char *id = rd_kafka_memberid(c->cl.rk);
    int answered = id && *id;

    if (id)
        rd_kafka_mem_free(c->cl.rk, id);
    return answered;
}

/* Destroying now would abort the process (issue 4312). */
static int destroy_would_abort(ksafe_consumer *c)
{
    return c->quirks.sticky_destroy_asserts && c->cooperative_conf &&
           c->subscribed && !c->assigned_once && join_answered(c);
}

static pthread_mutex_t parked_lock = PTHREAD_MUTEX_INITIALIZER;
static ksafe_consumer *parked;

static void parked_log(int level, const char *facility, const char *message,
                       void *payload)
{
    KSAFE__UNUSED(level);
    KSAFE__UNUSED(facility);
    KSAFE__UNUSED(message);
    KSAFE__UNUSED(payload);
}

void ksafe__consumer_park(ksafe_consumer *c)
{
    /* librdkafka's threads still log through c: never to a callback whose
     * payload the application may free after ksafe_consumer_free(). */
    c->cl.log_cb = parked_log;
    pthread_mutex_lock(&parked_lock);
    c->parked_next = parked;
    parked = c;
    pthread_mutex_unlock(&parked_lock);
}

/*
 * librdkafka keeps emitting a statistics document every interval until
 * the handle is destroyed, onto the main queue, which the consumer
 * forwards to its own: after close nobody polls that, and a parked handle
 * (issue 4312) lives until the process exits, so the documents would pile
 * up without end. Forwarded to librdkafka's background queue instead,
 * they are served by its background thread, which calls stats_cb with no
 * background event callback set; stats_cb sees `closed` and returns 0, so
 * librdkafka frees each one. Rebalances and records stay on the consumer
 * queue (only the main queue moves).
 */
static void drain_statistics(ksafe_consumer *c)
{
    rd_kafka_queue_t *main_q, *bg;

    if (!c->on_stats)
        return; /* no statistics.interval.ms: nothing is emitted */
    if (!(bg = rd_kafka_queue_get_background(c->cl.rk))) {
        ksafe__log(&c->cl, KSAFE_LOG_WARNING, "STATS",
                   "no background queue: statistics documents queue up "
                   "unread until the handle is destroyed");
        return;
    }
    main_q = rd_kafka_queue_get_main(c->cl.rk);
    rd_kafka_queue_forward(main_q, bg);
    rd_kafka_queue_destroy(main_q);
    rd_kafka_queue_destroy(bg);
}

int ksafe_consumer_close(ksafe_consumer *c, ksafe_error *err)
{
    ksafe_error ce;

    if (!c)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0, "consumer is NULL");
    if (c->closed)
        return 0;
    c->closing = 1;
    if (c->close_failed)
        rd_kafka_topic_partition_list_destroy(c->close_failed);
    c->close_failed = NULL;
    close_commit(c);
    /* Nothing assigned yet but a join answered: only the first assignment
     * makes destroying safe again; give it a bounded wait. Nothing was
     * assigned, so nothing is marked: when no join was answered there is
     * nothing to wait for. */
    if (destroy_would_abort(c))
        serve_until(c, first_assignment_seen, c->session_timeout_ms + 10000);
    if (c->subscribed && c->quirks.close_hangs_on_assign) {
        /* Leave through unsubscribe instead, serving the revoke (which
         * commits), until nothing is assigned. */
        rd_kafka_unsubscribe(c->cl.rk);
        serve_until(c, assignment_empty, c->session_timeout_ms + 10000);
    }
    /* Anything still tracked (unsubscribe timed out): last chance. */
    if (c->n_pos)
        ksafe__consumer_commit_marked(c, NULL, KSAFE__COMMIT_SYNC_ONCE, &ce);
    if (destroy_would_abort(c)) {
        /* No path out of this handle is safe: it has left the group (the
         * unsubscribe above), holds nothing, and is kept, idle, until the
         * process exits. */
        ksafe__log(&c->cl, KSAFE_LOG_ERR, "CLOSE",
                   "closed before the first assignment arrived: librdkafka "
                   "%s aborts the process when such a consumer is destroyed "
                   "(issue 4312, fixed in 2.3.0), so its handle is kept "
                   "until the process exits; nothing was assigned, nothing "
                   "is lost",
                   rd_kafka_version_str());
        if (!c->quirks.close_hangs_on_assign)
            rd_kafka_unsubscribe(c->cl.rk);
        c->detached = 1;
    } else {
        rd_kafka_consumer_close(c->cl.rk);
    }
    ksafe__consumer_serve_commits(c);
    c->closed = 1;
    c->closing = 0;
    drain_statistics(c); /* after closed = 1: stats_cb must see it */
    if (c->close_failed && c->close_failed->cnt)
        return close_report(c, err);
    return 0;
}
