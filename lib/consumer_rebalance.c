/*
 * lib/consumer_rebalance.c - the rebalance callback: both protocols, commit
 * on revoke, nothing committed on loss, the user's and the loop's hooks.
 *
 * Runs on the polling thread inside rd_kafka_consumer_poll() (or close).
 */
#include <string.h>

#include "consumer_internal.h"

int ksafe__consumer_cooperative(ksafe_consumer *c)
{
    /* NULL before the first join and inside a callback run during close
     * (2.0.2): the protocol last named still holds then; only before any
     * does the configured strategy decide. */
    const char *proto = rd_kafka_rebalance_protocol(c->cl.rk);

    if (proto && strcmp(proto, "COOPERATIVE") == 0)
        c->protocol = 1;
    else if (proto && strcmp(proto, "EAGER") == 0)
        c->protocol = 0;
    return c->protocol >= 0 ? c->protocol : c->cooperative_conf;
}

static void log_error(ksafe_consumer *c, const char *what,
                      rd_kafka_error_t *e)
{
    if (!e)
        return;
    ksafe__log(&c->cl, KSAFE_LOG_ERR, "REBALANCE", "%s: %s", what,
               rd_kafka_error_string(e));
    rd_kafka_error_destroy(e);
}

static void log_resp(ksafe_consumer *c, const char *what,
                     rd_kafka_resp_err_t rerr)
{
    if (rerr)
        ksafe__log(&c->cl, KSAFE_LOG_ERR, "REBALANCE", "%s: %s", what,
                   rd_kafka_err2str(rerr));
}

static void assigned(ksafe_consumer *c, int cooperative,
                     rd_kafka_topic_partition_list_t *parts)
{
    rd_kafka_topic_partition_list_t *start;
    int i;

    ksafe__consumer_commits_assigned(c); /* item 9: rebalance over */
    if (ksafe__consumer_track(c, parts))
        ksafe__log(&c->cl, KSAFE_LOG_ERR, "REBALANCE",
                   "out of memory tracking %d assigned partition(s): their "
                   "records cannot be marked",
                   parts->cnt);
    c->assigned_once = 1;
    c->assigning = parts;
    if (c->loop_on_assign)
        c->loop_on_assign(c, parts, c->loop_arg);
    if (c->on_assigned)
        c->on_assigned(c, parts, c->rebalance_payload);
    c->assigning = NULL;
    /* Start offsets go into the assignment itself: a seek right after
     * assign races with the committed-offset fetch. */
    start = rd_kafka_topic_partition_list_copy(parts);
    for (i = 0; i < start->cnt; i++) {
        ksafe__position *p = ksafe__consumer_find(c, start->elems[i].topic,
                                                  start->elems[i].partition);
        if (p && p->start != KSAFE__NO_START) {
            start->elems[i].offset = p->start;
            p->start = KSAFE__NO_START;
        }
    }
    if (cooperative)
        log_error(c, "incremental assign",
                  rd_kafka_incremental_assign(c->cl.rk, start));
    else
        log_resp(c, "assign", rd_kafka_assign(c->cl.rk, start));
    rd_kafka_topic_partition_list_destroy(start);
}

static void revoked(ksafe_consumer *c, int cooperative,
                    rd_kafka_topic_partition_list_t *parts)
{
    int lost = rd_kafka_assignment_lost(c->cl.rk);
    ksafe_error ce;

    ksafe__consumer_commits_revoking(c, cooperative, lost); /* item 9 */
    c->in_revoke = 1;
    if (c->loop_on_revoke)
        c->loop_on_revoke(c, parts, lost, c->loop_arg);
    if (lost) {
        /* Another member may own them already: a commit now could move its
         * position back or forward. Marks are dropped; records after the
         * last commit come again. */
        ksafe__log(&c->cl, KSAFE_LOG_WARNING, "LOST",
                   "%d partition(s) lost (member left the group "
                   "involuntarily): marked offsets not committed, dropped",
                   parts->cnt);
        ksafe__consumer_close_note_lost(c, parts);
        if (c->on_lost)
            c->on_lost(c, parts, c->rebalance_payload);
    } else {
        if (c->on_revoked)
            c->on_revoked(c, parts, c->rebalance_payload);
        /* One attempt: the generation cannot change inside this callback.
         * During close, the failure goes into close's report. */
        if (ksafe__consumer_commit_marked(c, parts, KSAFE__COMMIT_SYNC_ONCE,
                                          &ce))
            ksafe__log(&c->cl, KSAFE_LOG_WARNING, "REVOKE",
                       "commit on revoke: %s (the new owner starts from "
                       "the last commit: those records come again)",
                       ce.message);
    }
    c->in_revoke = 0;
    ksafe__consumer_forget(c, parts);
    if (cooperative)
        log_error(c, "incremental unassign",
                  rd_kafka_incremental_unassign(c->cl.rk, parts));
    else
        log_resp(c, "unassign", rd_kafka_assign(c->cl.rk, NULL));
}

void ksafe__consumer_rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t rerr,
                                  rd_kafka_topic_partition_list_t *parts,
                                  void *opaque)
{
    ksafe_consumer *c = opaque;
    int cooperative = ksafe__consumer_cooperative(c);

    KSAFE__UNUSED(rk);
    c->rebalances++;
    if (rerr == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        assigned(c, cooperative, parts);
    } else if (rerr == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) {
        revoked(c, cooperative, parts);
    } else {
        /* librdkafka's contract: give up the partitions on any other
         * error; their marks cannot be trusted to be ours. */
        ksafe__log(&c->cl, KSAFE_LOG_ERR, "REBALANCE",
                   "rebalance failed: %s; dropping %d partition(s)",
                   rd_kafka_err2str(rerr), parts ? parts->cnt : 0);
        if (parts && c->loop_on_revoke)
            /* as a loss: the loop drops their queued records and pauses,
             * and nothing of them is committed */
            c->loop_on_revoke(c, parts, 1, c->loop_arg);
        if (parts) {
            ksafe__consumer_close_note_lost(c, parts); /* close reports it */
            ksafe__consumer_forget(c, parts);
        }
        if (cooperative && parts)
            log_error(c, "incremental unassign",
                      rd_kafka_incremental_unassign(c->cl.rk, parts));
        else
            log_resp(c, "unassign", rd_kafka_assign(c->cl.rk, NULL));
    }
}
