/*
 * lib/relay_txn.c - the relay's open transaction: which partitions have
 * records in it and from where, its commit with the offsets the relay
 * computed, abort and rewind, and what a fatal producer error does.
 */
#include <stdlib.h>
#include <string.h>

#include "relay_internal.h"

/* ---- partitions -------------------------------------------------------- */

rpart *rpart_find(relay *R, const char *topic, int32_t partition)
{
    size_t i;

    if (R->last < R->n_parts && R->parts[R->last].partition == partition &&
        !strcmp(R->parts[R->last].topic, topic))
        return &R->parts[R->last];
    for (i = 0; i < R->n_parts; i++)
        if (R->parts[i].partition == partition &&
            !strcmp(R->parts[i].topic, topic)) {
            R->last = i;
            return &R->parts[i];
        }
    return NULL;
}

rpart *rpart_get(relay *R, const char *topic, int32_t partition)
{
    rpart *rp = rpart_find(R, topic, partition);

    if (rp)
        return rp;
    if (R->n_parts == R->cap_parts) {
        size_t cap = R->cap_parts ? R->cap_parts * 2 : 16;
        rpart *n = realloc(R->parts, cap * sizeof(*n));
        if (!n)
            return NULL;
        R->parts = n;
        R->cap_parts = cap;
    }
    rp = &R->parts[R->n_parts];
    memset(rp, 0, sizeof(*rp));
    if (!(rp->topic = ksafe__strdup(topic)))
        return NULL;
    rp->partition = partition;
    rp->first = rp->next = rp->rewind_to = rp->fail_offset = -1;
    rp->epoch = -1;
    R->last = R->n_parts++;
    return rp;
}

void rpart_remove(relay *R, rpart *rp)
{
    size_t i = (size_t)(rp - R->parts);

    free(rp->topic);
    free(rp->settled);
    R->parts[i] = R->parts[--R->n_parts];
    R->last = 0;
}

/* pause != 0: pause until `pause` (a clock time); 0: resume. */
void rpart_pause(relay *R, rpart *rp, int64_t pause)
{
    rd_kafka_topic_partition_list_t *l;

    if (!pause == !rp->resume_at) {
        rp->resume_at = pause;
        return;
    }
    l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, rp->topic, rp->partition);
    if (pause)
        rd_kafka_pause_partitions(R->crk, l);
    else
        rd_kafka_resume_partitions(R->crk, l);
    rd_kafka_topic_partition_list_destroy(l);
    rp->resume_at = pause;
    if (pause)
        R->paused++;
    else
        R->paused--;
}

/* ---- the transaction --------------------------------------------------- */

int txn_begin(relay *R)
{
    ksafe_error e;

    if (R->open)
        return 0;
    if (R->abort_pending) {
        /* An abort timed out inside a rebalance: the producer still has
         * that transaction; it must end before the next one begins. */
        if (ksafe_txn_abort(R->p, -1, &e)) {
            if (e.code == KSAFE_EFATAL) /* recreated: none open yet */
                return relay_fatal(R, &e) ? R->rc : 1;
            txn_trouble(R, &e);
            return R->rc ? R->rc : 1;
        }
        R->abort_pending = 0;
    }
    if (ksafe_txn_begin(R->p, &e)) {
        if (e.code == KSAFE_EFATAL)
            return relay_fatal(R, &e) ? R->rc : 1;
        return R->rc = ksafe__error_set(R->err, e.code, e.rdkafka_code,
                                        e.flags, "relay: %s", e.message);
    }
    R->open = 1;
    R->opened_ms = ksafe__now_ms();
    R->count = 0;
    return 0;
}

void txn_add(relay *R, rpart *rp, const rd_kafka_message_t *m)
{
    if (rp->first < 0)
        rp->first = m->offset;
    rp->next = m->offset + 1;
    rp->epoch = ksafe__message_leader_epoch(m);
    R->count++;
}

/* The transaction ended (committed or aborted): its records are done or
 * will come again; either way they no longer belong to it. */
static void forget_records(relay *R)
{
    size_t i;

    for (i = 0; i < R->n_parts; i++)
        R->parts[i].first = -1;
    R->open = 0;
    R->count = 0;
}

/* 1 when librdkafka still counts the partition as assigned. */
static int assigned(relay *R, const rpart *rp)
{
    rd_kafka_topic_partition_list_t *l = NULL;
    int found;

    if (rd_kafka_assignment(R->crk, &l) || !l)
        return 1; /* cannot tell: assume the worst */
    found = rd_kafka_topic_partition_list_find(l, rp->topic, rp->partition) !=
            NULL;
    rd_kafka_topic_partition_list_destroy(l);
    return found;
}

int txn_rewind(relay *R)
{
    size_t i;
    int rc = 0;

    for (i = 0; i < R->n_parts; i++) {
        rpart *rp = &R->parts[i];
        int64_t to = rp->first;
        ksafe_error e;

        if (rp->rewind_to >= 0 && (to < 0 || rp->rewind_to < to))
            to = rp->rewind_to;
        rp->first = rp->rewind_to = -1;
        if (to < 0 || rc)
            continue;
        if (ksafe_consumer_seek(R->c, rp->topic, rp->partition, to, &e) &&
            (e.code != KSAFE_ESTATE || assigned(R, rp)))
            /* ESTATE for a partition no longer ours is fine: its owner
             * redoes it. For one still assigned: */
            /* Going on would consume past records whose output was just
             * aborted and commit their offsets: lost. */
            rc = R->rc = ksafe__error_set(
                R->err, e.code, e.rdkafka_code, e.flags,
                "relay: could not rewind %s [%d] to offset %lld after an "
                "abort (%s); stopped so that nothing after it is committed",
                rp->topic, (int)rp->partition, (long long)to, e.message);
    }
    R->rewind_pending = 0;
    forget_records(R);
    return rc;
}

int txn_rewind_pending(relay *R)
{
    return txn_rewind(R);
}

/*
 * Waits until the transaction's records are delivered or failed before it
 * is aborted or its offsets are sent: their reports come first, and no
 * partition registration is left in flight (a record cannot be sent before
 * its partition is registered). librdkafka (2.0.2 to 2.15.1) asserts on
 * its request count (rdkafka_txnmgr.c, txn_req_cnt > 0) when a registration
 * fails with "destroyed" before it was counted. The relay suite's crashes
 * were of that kind, from destroying an instance right after
 * rd_kafka_test_fatal_error() (docs/exactly-once.md); this wait is kept as
 * the cheap guard against in-flight registrations at the end of a
 * transaction.
 */
void ksafe__relay_settle_registrations(relay *R)
{
    /* librdkafka's flush serves the reports; ksafe_producer_flush would
     * also reset the count of failures the application's next flush or
     * close reports. */
    if (rd_kafka_flush(R->p->cl.rk, R->p->transaction_timeout_ms))
        ksafe__log(&R->c->cl, KSAFE_LOG_WARNING, "RELAY",
                   "%d record(s) still undelivered after %d ms before an "
                   "abort or commit",
                   rd_kafka_outq_len(R->p->cl.rk),
                   R->p->transaction_timeout_ms);
}

int txn_abort(relay *R, const char *why, int defer)
{
    ksafe_error e;
    size_t i;

    if (R->open) {
        ksafe__log(&R->c->cl, KSAFE_LOG_NOTICE, "RELAY",
                   "aborting the transaction of %zu record(s): %s", R->count,
                   why);
        R->st->aborts++;
        R->open = 0;
        ksafe__relay_settle_registrations(R);
        if (ksafe_txn_abort(R->p, -1, &e)) {
            if (e.code == KSAFE_EFATAL) {
                /* The transaction died with the instance: nothing of it
                 * becomes visible. */
                R->fatal_pending = 1;
                R->fatal_err = e;
            } else if (e.code == KSAFE_ETIMEDOUT) {
                R->abort_pending = 1;
                ksafe__log(&R->c->cl, KSAFE_LOG_WARNING, "RELAY",
                           "abort timed out (%s); it is tried again before "
                           "the next transaction", e.message);
            } else {
                R->rc = ksafe__error_set(R->err, e.code, e.rdkafka_code,
                                         e.flags, "relay: abort: %s",
                                         e.message);
            }
        }
    }
    if (!defer) {
        txn_rewind(R);
        return R->rc;
    }
    for (i = 0; i < R->n_parts; i++) {
        rpart *rp = &R->parts[i];
        if (rp->first >= 0 &&
            (rp->rewind_to < 0 || rp->first < rp->rewind_to))
            rp->rewind_to = rp->first;
        if (rp->rewind_to >= 0)
            R->rewind_pending = 1;
    }
    forget_records(R);
    return R->rc;
}

void txn_trouble(relay *R, const ksafe_error *e)
{
    int64_t now = ksafe__now_ms(), delay;
    size_t i;

    if (!R->txn_failing_since)
        R->txn_failing_since = now;
    R->txn_failures++;
    if (now - R->txn_failing_since >= R->o->txn_retry_max_ms) {
        R->rc = ksafe__error_set(
            R->err, KSAFE_ETXNABORTED, e->rdkafka_code, e->flags,
            "relay: transactions kept failing for %lld ms (%d in a row, "
            "txn_retry_max_ms %d); the last: %s",
            (long long)(now - R->txn_failing_since), R->txn_failures,
            R->o->txn_retry_max_ms, e->message);
        return;
    }
    delay = ksafe__backoff_ms(&R->backoff, R->txn_failures);
    ksafe__log(&R->c->cl, KSAFE_LOG_WARNING, "RELAY",
               "transaction failed (%s); its records are redone in %lld ms",
               e->message, (long long)delay);
    for (i = 0; i < R->n_parts; i++)
        rpart_pause(R, &R->parts[i], now + delay);
}

/* Commits the transaction's records by retrying the commit itself: after
 * a timed-out commit the coordinator may already be committing it, so an
 * abort and a redo could make the output visible twice. */
static int commit_until_known(relay *R, ksafe_error *e)
{
    int64_t since = ksafe__now_ms();
    int rc;

    while ((rc = ksafe_txn_commit(R->p, -1, e)) == KSAFE_ETIMEDOUT) {
        if (ksafe__now_ms() - since >= R->o->txn_retry_max_ms)
            return R->rc = ksafe__error_set(
                       R->err, KSAFE_ETIMEDOUT, e->rdkafka_code, e->flags,
                       "relay: the commit of a transaction of %zu "
                       "record(s) timed out for %d ms (txn_retry_max_ms); "
                       "its outcome is unknown: %s",
                       R->count, R->o->txn_retry_max_ms, e->message);
        ksafe__log(&R->c->cl, KSAFE_LOG_WARNING, "RELAY",
                   "commit timed out (%s); trying it again", e->message);
    }
    return rc;
}

int txn_commit(relay *R)
{
    rd_kafka_topic_partition_list_t *l;
    rd_kafka_consumer_group_metadata_t *gm;
    ksafe_error e;
    size_t i;
    int rc, committing = 0;

    if (!R->open)
        return 0;
    if (rd_kafka_assignment_lost(R->crk)) {
        /* The member is out of the group (e.g. max_poll_interval_ms
         * passed): its partitions may have a new owner already. A broker
         * refuses these offsets for the old generation; abort rather than
         * count on it. The loss itself is served by the next poll. */
        R->st->rebalance_aborts++;
        return txn_abort(R, "the assignment was lost", 1);
    }
    l = rd_kafka_topic_partition_list_new((int)R->n_parts);
    for (i = 0; i < R->n_parts; i++) {
        rpart *rp = &R->parts[i];
        rd_kafka_topic_partition_t *tp;
        if (rp->first < 0)
            continue;
        /* The offset of the next record to read: the "+1". */
        tp = rd_kafka_topic_partition_list_add(l, rp->topic, rp->partition);
        tp->offset = rp->next;
        ksafe__set_leader_epoch(tp, rp->epoch);
    }
    gm = rd_kafka_consumer_group_metadata(R->crk);
    if (!gm) {
        rd_kafka_topic_partition_list_destroy(l);
        return R->rc = ksafe__error_set(R->err, KSAFE_ESTATE, 0, 0,
                                        "relay: the consumer has no group "
                                        "metadata (no group.id?)");
    }
    /* Every record delivered (or failed) first: an abortable failure
     * found by the offsets or the commit is then aborted with no
     * partition registration in flight (see settle_registrations). */
    ksafe__relay_settle_registrations(R);
    rc = l->cnt ? ksafe_txn_send_offsets(R->p, l, gm, -1, &e) : 0;
    if (!rc) {
        committing = 1;
        rc = commit_until_known(R, &e);
    }
    rd_kafka_consumer_group_metadata_destroy(gm);
    rd_kafka_topic_partition_list_destroy(l);
    if (!rc) {
        R->st->transactions++;
        R->st->committed += R->count;
        for (i = 0; i < R->n_parts; i++) {
            rpart *rp = &R->parts[i];
            size_t k, keep = 0;
            if (rp->first < 0)
                continue;
            if (rp->fail_offset >= 0 && rp->fail_offset < rp->next) {
                rp->fail_offset = -1;
                rp->attempts = 0;
            }
            /* committed: they never come again */
            for (k = 0; k < rp->n_settled; k++)
                if (rp->settled[k].offset >= rp->next)
                    rp->settled[keep++] = rp->settled[k];
            rp->n_settled = keep;
        }
        forget_records(R);
        R->txn_failing_since = 0;
        R->txn_failures = 0;
        return 0;
    }
    if (R->rc) { /* commit outcome unknown */
        R->commit_unknown = 1;
        return R->rc;
    }
    R->open = 0;
    switch (e.code) {
    case KSAFE_EFATAL:
        if (committing && R->o->on_fatal == KSAFE_RELAY_FATAL_RECREATE)
            /* The commit may have reached the coordinator before the
             * instance died: a rewind and redo could show the batch
             * twice. */
            return R->rc = ksafe__error_set(
                       R->err, KSAFE_EFATAL, e.rdkafka_code,
                       KSAFE_ERROR_FATAL,
                       "relay: %s, during the commit of a transaction of "
                       "%zu record(s), whose outcome is unknown: not "
                       "recreating the producer (a redo could duplicate "
                       "its output)",
                       e.message, R->count);
        return relay_fatal(R, &e);
    case KSAFE_ETXNABORTED: /* aborted for us */
    case KSAFE_ETIMEDOUT:   /* send_offsets: still open, safe to abort */
        R->st->aborts++;
        if (e.code == KSAFE_ETIMEDOUT) {
            ksafe_error ae;
            ksafe__relay_settle_registrations(R);
            if (ksafe_txn_abort(R->p, -1, &ae)) {
                if (ae.code == KSAFE_EFATAL)
                    return relay_fatal(R, &ae);
                R->abort_pending = 1;
            }
        }
        ksafe__log(&R->c->cl, KSAFE_LOG_NOTICE, "RELAY",
                   "the transaction of %zu record(s) was aborted: %s",
                   R->count, e.message);
        if (txn_rewind(R))
            return R->rc;
        txn_trouble(R, &e);
        return R->rc;
    default:
        ksafe__relay_settle_registrations(R);
        ksafe_txn_abort(R->p, -1, NULL);
        return R->rc = ksafe__error_set(R->err, e.code, e.rdkafka_code,
                                        e.flags, "relay: commit: %s",
                                        e.message);
    }
}

/* ---- fatal producer errors --------------------------------------------- */

static int is_fenced(int code)
{
    return code == RD_KAFKA_RESP_ERR_PRODUCER_FENCED ||
           code == RD_KAFKA_RESP_ERR_INVALID_PRODUCER_EPOCH ||
           code == RD_KAFKA_RESP_ERR__FENCED;
}

/* The aborted transaction's records: the rewind produces them again. */
static void drop_handback(const ksafe_record *record, const ksafe_error *error,
                          int possibly_delivered, void *payload)
{
    KSAFE__UNUSED(record);
    KSAFE__UNUSED(error);
    KSAFE__UNUSED(possibly_delivered);
    KSAFE__UNUSED(payload);
}

int relay_fatal(relay *R, const ksafe_error *e)
{
    ksafe_error e2;
    size_t n = 0;

    R->open = 0;
    R->fatal_pending = 0;
    R->abort_pending = 0; /* the transaction went with the instance */
    if (R->o->on_fatal != KSAFE_RELAY_FATAL_RECREATE) {
        if (is_fenced(e->rdkafka_code))
            return R->rc = ksafe__error_set(
                       R->err, KSAFE_EFATAL, e->rdkafka_code,
                       KSAFE_ERROR_FATAL,
                       "relay: the producer was fenced: a newer instance "
                       "with transactional_id '%s' took over (%s); nothing "
                       "of the open transaction commits",
                       R->txn_id, e->message);
        return R->rc = ksafe__error_set(R->err, KSAFE_EFATAL, e->rdkafka_code,
                                        KSAFE_ERROR_FATAL, "relay: %s",
                                        e->message);
    }
    if (ksafe_producer_recover(R->p, KSAFE_RECOVER_HAND_BACK, drop_handback,
                               NULL, &n, &e2) ||
        ksafe_txn_init(R->p, -1, &e2))
        return R->rc = ksafe__error_set(
                   R->err, KSAFE_EFATAL, e->rdkafka_code, KSAFE_ERROR_FATAL,
                   "relay: %s; the producer could not be recreated: %s",
                   e->message, e2.message);
    R->st->recreated++;
    ksafe__log(&R->c->cl, KSAFE_LOG_WARNING, "RELAY",
               "%s; recreated the producer (transactional_id '%s'), "
               "dropped %zu record(s) of the lost transaction, rewinding",
               e->message, R->txn_id, n);
    if (txn_rewind(R))
        return R->rc;
    txn_trouble(R, e); /* twins fencing each other end here in time */
    return R->rc;
}
