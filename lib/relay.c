/*
 * lib/relay.c - ksafe_relay_run: poll, transform, emit into the open
 * transaction, commit by the batch policy; failures abort and rewind, a
 * rebalance touching the transaction aborts it before the partitions go.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "relay_internal.h"

static const ksafe_relay_options relay_defaults = KSAFE_RELAY_OPTIONS_INIT;

int ksafe_relay_options_init(ksafe_relay_options *opts, unsigned int version)
{
    if (!opts)
        return KSAFE_EINVAL;
    if (version != KSAFE_RELAY_OPTIONS_VERSION)
        return KSAFE_EVERSION;
    *opts = relay_defaults;
    return 0;
}

static int validate(const ksafe_relay_options *o, ksafe_error *err)
{
    if (o->version != KSAFE_RELAY_OPTIONS_VERSION)
        return ksafe__error_set(err, KSAFE_EVERSION, 0, 0,
                                "ksafe_relay_options.version is %u; this "
                                "library knows version %d (initialise with "
                                "KSAFE_RELAY_OPTIONS_INIT)",
                                o->version, KSAFE_RELAY_OPTIONS_VERSION);
    if (!o->transform)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "relay options: transform is required");
    if (o->batch_records < 1 || o->batch_records > 1000000)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "relay options: batch_records is %zu, "
                                "outside 1..1000000",
                                o->batch_records);
    if (o->batch_max_ms < 1)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "relay options: batch_max_ms is %d; it must "
                                "be at least 1",
                                o->batch_max_ms);
    if (o->max_attempts < 1)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "relay options: max_attempts is %d; it must "
                                "be at least 1",
                                o->max_attempts);
    if (o->backoff_initial_ms < 0 || o->backoff_max_ms < o->backoff_initial_ms)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "relay options: backoff_initial_ms %d and "
                                "backoff_max_ms %d must satisfy 0 <= initial "
                                "<= max",
                                o->backoff_initial_ms, o->backoff_max_ms);
    if (!(o->backoff_multiplier >= 1.0 && o->backoff_multiplier <= 1000.0))
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "relay options: backoff_multiplier must be "
                                "within 1..1000");
    if (!(o->backoff_jitter >= 0.0 && o->backoff_jitter <= 1.0))
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "relay options: backoff_jitter must be "
                                "within 0..1");
    if ((unsigned)o->on_failure > KSAFE_FAILURE_DEAD_LETTER)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "relay options: on_failure %d is not a "
                                "ksafe_failure_policy",
                                (int)o->on_failure);
    if (o->on_failure == KSAFE_FAILURE_DEAD_LETTER &&
        (!o->dead_letter_topic || !o->dead_letter_topic[0]))
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "relay options: on_failure DEAD_LETTER needs "
                                "dead_letter_topic");
    /* Refused now, not when the first dead letter cannot be written. */
    if (o->on_failure == KSAFE_FAILURE_DEAD_LETTER &&
        ksafe__topic_check(o->dead_letter_topic, "relay options: "
                                                 "dead_letter_topic", err))
        return KSAFE_EINVAL;
    if ((unsigned)o->on_fatal > KSAFE_RELAY_FATAL_RECREATE)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "relay options: on_fatal %d is not a "
                                "ksafe_relay_on_fatal",
                                (int)o->on_fatal);
    if (o->txn_retry_max_ms < 0 || o->poll_timeout_ms < 0)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "relay options: txn_retry_max_ms (%d) and "
                                "poll_timeout_ms (%d) must not be negative",
                                o->txn_retry_max_ms, o->poll_timeout_ms);
    return 0;
}

/* The clients' timing: a transaction must fit in the producer's
 * transaction timeout, and must not outlive the member's session. */
static int check_timing(const ksafe_relay_options *o, ksafe_consumer *c,
                        ksafe_producer *p, ksafe_error *err)
{
    if (!p->transactional)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "relay: the producer has no transactional_id "
                                "(set ksafe_producer_options."
                                "transactional_id)");
    if ((long long)o->batch_max_ms * 2 > p->transaction_timeout_ms)
        return ksafe__error_set(
            err, KSAFE_EINVAL, 0, 0,
            "relay: batch_max_ms (%d) is more than half of the producer's "
            "transaction_timeout_ms (%d): a batch must leave time for its "
            "commit; lower batch_max_ms or raise transaction_timeout_ms",
            o->batch_max_ms, p->transaction_timeout_ms);
    if (p->transaction_timeout_ms > c->session_timeout_ms && c->kip848)
        /* The broker owns the session timeout; 45 s is its default. */
        return ksafe__error_set(
            err, KSAFE_EINVAL, 0, 0,
            "relay: the producer's transaction_timeout_ms (%d) is longer "
            "than the group's session timeout under group_protocol "
            "CONSUMER (the broker's group.consumer.session.timeout.ms, "
            "45000 by default): a relay that dies with a transaction open "
            "would hold its partitions' next owner and every "
            "read_committed reader of the output until the transaction "
            "times out; set transaction_timeout_ms to at most the "
            "broker's value",
            p->transaction_timeout_ms);
    if (p->transaction_timeout_ms > c->session_timeout_ms)
        return ksafe__error_set(
            err, KSAFE_EINVAL, 0, 0,
            "relay: the producer's transaction_timeout_ms (%d) is longer "
            "than the consumer's session_timeout_ms (%d): a relay that dies "
            "with a transaction open would hold its partitions' next owner "
            "and every read_committed reader of the output until the "
            "transaction times out; set transaction_timeout_ms to at most "
            "%d (Kafka Streams uses 10000)",
            p->transaction_timeout_ms, c->session_timeout_ms,
            c->session_timeout_ms);
    return 0;
}

/* ---- emitting ---------------------------------------------------------- */

int ksafe_relay_emit(ksafe_relay_emitter *out, const ksafe_record *record,
                     ksafe_error *err)
{
    ksafe_error e;
    int rc;

    if (!out || !record)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "ksafe_relay_emit: %s is NULL",
                                out ? "record" : "emitter");
    if ((rc = ksafe_producer_send(out->R->p, record, &e))) {
        if (!out->failed) {
            out->failed = 1;
            out->err = e;
            /* librdkafka refuses sends once the transaction has failed
             * (an earlier output could not be delivered): the
             * transaction's trouble, not this record's. */
            out->txn_failed = e.code == KSAFE_ESTATE &&
                              e.rdkafka_code == RD_KAFKA_RESP_ERR__STATE;
        }
        if (err)
            *err = e;
        return rc;
    }
    out->R->st->emitted++;
    return 0;
}

/* ---- one input record -------------------------------------------------- */

/* The failure policy already settled this record (it comes again after
 * the abort that its failure caused): skip it or dead-letter it in the
 * open transaction. */
static int settle(relay *R, rpart *rp, const rsettled *s,
                  const rd_kafka_message_t *m)
{
    ksafe__dead_letter d;
    ksafe_error e;

    if (s->verdict == KSAFE_FAILURE_SKIP) {
        ksafe__log(&R->c->cl, KSAFE_LOG_WARNING, "SKIP",
                   "skipping %s [%d] offset %lld after %d attempt(s): %s",
                   rp->topic, (int)rp->partition, (long long)m->offset,
                   s->attempts, s->why);
        R->st->skipped++;
        return 0;
    }
    ksafe__dead_letter_init(&d, m, R->o->dead_letter_topic, s->attempts,
                            s->why);
    if (ksafe_producer_send(R->p, &d.r, &e)) {
        if (e.code == KSAFE_EFATAL)
            return relay_fatal(R, &e) ? R->rc : 1;
        if (e.code == KSAFE_ESTATE &&
            e.rdkafka_code == RD_KAFKA_RESP_ERR__STATE) {
            /* The transaction failed (an earlier output): redo it. */
            if (!txn_abort(R, e.message, 0))
                txn_trouble(R, &e);
            return R->rc ? R->rc : 1;
        }
        return R->rc = ksafe__error_set(
                   R->err, KSAFE_EHANDLER, e.rdkafka_code, e.flags,
                   "%s [%d] offset %lld failed (%s) and could not be "
                   "dead-lettered to %s: %s",
                   rp->topic, (int)rp->partition, (long long)m->offset,
                   s->why, R->o->dead_letter_topic, e.message);
    }
    R->st->dead_lettered++;
    return 0;
}

/* The verdict of the failure policy on `offset`, if it has one. */
static const rsettled *settled_find(const rpart *rp, int64_t offset)
{
    size_t i;

    for (i = 0; i < rp->n_settled; i++)
        if (rp->settled[i].offset == offset)
            return &rp->settled[i];
    return NULL;
}

/* Keeps the verdict on `offset` until its transaction commits. */
static int settled_add(rpart *rp, int64_t offset, int attempts,
                       ksafe_failure_policy verdict, const char *why)
{
    rsettled *s;

    if (settled_find(rp, offset))
        return 0;
    if (rp->n_settled == rp->cap_settled) {
        size_t cap = rp->cap_settled ? rp->cap_settled * 2 : 4;
        rsettled *grown = realloc(rp->settled, cap * sizeof(*grown));
        if (!grown)
            return -1;
        rp->settled = grown;
        rp->cap_settled = cap;
    }
    s = &rp->settled[rp->n_settled++];
    s->offset = offset;
    s->attempts = attempts;
    s->verdict = verdict;
    snprintf(s->why, sizeof(s->why), "%s", why);
    return 0;
}

/* The transform failed for `m` (or an emit did): abort and rewind, then
 * back off for a retry or let the failure policy settle the record. */
static void failed(relay *R, rpart *rp, const rd_kafka_message_t *m,
                   ksafe_handler_result r, const char *why, int emitted)
{
    int retry, rc;

    if (rp->fail_offset == m->offset) {
        rp->attempts++;
    } else {
        rp->fail_offset = m->offset;
        rp->attempts = 1;
    }
    retry = r == KSAFE_HANDLER_RETRY && rp->attempts < R->o->max_attempts;
    if (retry)
        R->st->retries++;
    else
        R->st->failed++;
    if (!retry && R->o->on_failure == KSAFE_FAILURE_STOP) {
        R->rc = ksafe__error_set(R->err, KSAFE_EHANDLER, 0, 0,
                                 "%s [%d] offset %lld failed after %d "
                                 "attempt(s): %s",
                                 rp->topic, (int)rp->partition,
                                 (long long)m->offset, rp->attempts, why);
        return; /* the run's end aborts the transaction */
    }
    if (!retry && !emitted) {
        /* Nothing of its own is in the transaction: the policy settles it
         * where it stands, and the records before it need no redo (a run
         * of poison records costs no abort each). */
        if (settled_add(rp, m->offset, rp->attempts, R->o->on_failure, why)) {
            R->rc = ksafe__error_set(R->err, KSAFE_ENOMEM, 0, 0,
                                     "out of memory");
            return;
        }
        rp->fail_offset = -1;
        if ((rc = settle(R, rp, settled_find(rp, m->offset), m))) {
            if (rc == 1 && !R->rc) /* recreated: the record comes again */
                txn_rewind(R);
            return;
        }
        rp->rewind_to = -1;
        txn_add(R, rp, m);
        return;
    }
    /* rewind_to is m's offset: the record itself comes again too, even
     * when it is the first of its partition in the transaction. */
    if (txn_abort(R, why, 0))
        return;
    if (retry)
        rpart_pause(R, rp,
                    ksafe__now_ms() +
                        ksafe__backoff_ms(&R->backoff, rp->attempts));
    else if (settled_add(rp, m->offset, rp->attempts, R->o->on_failure,
                         why))
        R->rc = ksafe__error_set(R->err, KSAFE_ENOMEM, 0, 0,
                                 "out of memory");
    else
        rp->fail_offset = -1; /* settled: its verdict is kept */
}

static void relay_record(relay *R, const rd_kafka_message_t *m)
{
    rpart *rp = rpart_get(R, rd_kafka_topic_name(m->rkt), m->partition);
    const rsettled *s;
    ksafe_relay_emitter em;
    ksafe_handler_result r;
    ksafe_error he;
    uint64_t emitted; /* emits so far: did this record emit any? */
    int rc;

    if (!rp) {
        R->rc = ksafe__error_set(R->err, KSAFE_ENOMEM, 0, 0,
                                 "out of memory");
        return;
    }
    /* Whatever rewinds while this record is in hand rewinds to it at the
     * latest, so it comes again; cleared once it is in the transaction. */
    rp->rewind_to = m->offset;
    if ((rc = txn_begin(R))) {
        if (rc == 1 && !R->rc) /* it comes again once a begin works */
            txn_rewind(R);
        return;
    }
    if ((s = settled_find(rp, m->offset))) {
        if ((rc = settle(R, rp, s, m))) {
            if (rc == 1 && !R->rc) /* recreated: the record comes again */
                txn_rewind(R);
            return;
        }
        rp->rewind_to = -1;
        txn_add(R, rp, m);
        return;
    }
    memset(&em, 0, sizeof(em));
    em.R = R;
    emitted = R->st->emitted;
    memset(&he, 0, sizeof(he));
    r = R->o->transform((const ksafe_message *)m, &em, &he, R->o->payload);
    if (em.failed) {
        char why[KSAFE_ERROR_MESSAGE_SIZE + 16];
        if (em.err.code == KSAFE_EFATAL) {
            relay_fatal(R, &em.err); /* recreated: rewound, m included */
            return;
        }
        if (em.txn_failed) { /* rewound with m included; m not charged */
            if (!txn_abort(R, em.err.message, 0))
                txn_trouble(R, &em.err);
            return;
        }
        snprintf(why, sizeof(why), "emit: %s", em.err.message);
        failed(R, rp, m, KSAFE_HANDLER_RETRY, why,
               R->st->emitted != emitted);
        return;
    }
    if (r == KSAFE_HANDLER_OK) {
        R->st->transformed++;
        rp->rewind_to = -1;
        txn_add(R, rp, m);
        return;
    }
    failed(R, rp, m, r == KSAFE_HANDLER_RETRY ? KSAFE_HANDLER_RETRY
                                              : KSAFE_HANDLER_FAIL,
           he.message[0] ? he.message
           : r == KSAFE_HANDLER_RETRY ? "retries exhausted"
                                      : "transform failed",
           R->st->emitted != emitted);
}

/* ---- rebalances -------------------------------------------------------- */

/* Before partitions go (revoked or lost): a transaction holding records of
 * any of them is aborted now, so the next owner redoes them and this
 * member's output of them never becomes visible. */
static void on_revoke(ksafe_consumer *c,
                      const rd_kafka_topic_partition_list_t *parts, int lost,
                      void *arg)
{
    relay *R = arg;
    int touched = 0, i;
    size_t j;

    KSAFE__UNUSED(c);
    for (j = 0; j < R->n_parts && !touched; j++)
        if (R->parts[j].first >= 0 &&
            rd_kafka_topic_partition_list_find(parts, R->parts[j].topic,
                                               R->parts[j].partition))
            touched = 1;
    if (R->open && touched) {
        R->st->rebalance_aborts++;
        txn_abort(R, lost ? "partitions in it were lost"
                          : "partitions in it are being revoked",
                  1);
    }
    for (i = 0; i < parts->cnt; i++) {
        rpart *rp = rpart_find(R, parts->elems[i].topic,
                               parts->elems[i].partition);
        if (!rp)
            continue;
        rpart_pause(R, rp, 0); /* a later owner must not find it paused */
        rpart_remove(R, rp);
    }
}

/* ---- run --------------------------------------------------------------- */

static int poll_timeout(relay *R)
{
    int64_t now = 0, t = R->o->poll_timeout_ms;
    size_t i;

    if (R->open) {
        now = ksafe__now_ms();
        if (R->opened_ms + R->o->batch_max_ms - now < t)
            t = R->opened_ms + R->o->batch_max_ms - now;
    }
    if (R->paused) {
        if (!now)
            now = ksafe__now_ms();
        for (i = 0; i < R->n_parts; i++)
            if (R->parts[i].resume_at && R->parts[i].resume_at - now < t)
                t = R->parts[i].resume_at - now;
    }
    return t < 0 ? 0 : (int)t;
}

static void resume_due(relay *R)
{
    int64_t now = ksafe__now_ms();
    size_t i;

    for (i = 0; i < R->n_parts && R->paused; i++)
        if (R->parts[i].resume_at && R->parts[i].resume_at <= now)
            rpart_pause(R, &R->parts[i], 0);
}

static void step(relay *R)
{
    rd_kafka_message_t *m = rd_kafka_consumer_poll(R->crk, poll_timeout(R));
    rpart *rp;

    /* A record polled after a rebalance abort, of a partition that is to
     * be rewound: it comes again. Decided before anything below rewinds
     * and forgets where to. */
    if (m && !m->err &&
        (rp = rpart_find(R, rd_kafka_topic_name(m->rkt), m->partition)) &&
        rp->rewind_to >= 0 && m->offset >= rp->rewind_to) {
        rd_kafka_message_destroy(m);
        m = NULL;
    }
    if (R->fatal_pending && relay_fatal(R, &R->fatal_err)) {
        rd_kafka_message_destroy(m);
        return;
    }
    if (R->rewind_pending && txn_rewind_pending(R)) {
        rd_kafka_message_destroy(m);
        return;
    }
    if (m && m->err) {
        int rc = ksafe__poll_error(R->c, m, R->group, R->err);
        if (rc)
            R->rc = rc;
        m = NULL;
    } else if (m) {
        R->st->polled++;
        relay_record(R, m);
        rd_kafka_message_destroy(m);
    }
    if (R->paused)
        resume_due(R);
    if (!R->rc && R->open &&
        (R->count >= R->o->batch_records ||
         ksafe__now_ms() - R->opened_ms >= R->o->batch_max_ms))
        txn_commit(R);
}

static void conf_string(rd_kafka_t *rk, const char *key, char *buf,
                        size_t size)
{
    if (rd_kafka_conf_get(rd_kafka_conf(rk), key, buf, &size) !=
        RD_KAFKA_CONF_OK)
        buf[0] = '\0';
}

int ksafe_relay_run(ksafe_consumer *c, ksafe_producer *p,
                    const ksafe_relay_options *opts, ksafe_error *err)
{
    ksafe_relay_stats local;
    ksafe_error cerr;
    relay R;
    size_t i;
    int rc;

    if (!c || !p || !opts)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "ksafe_relay_run: %s is NULL",
                                !c ? "consumer" : !p ? "producer"
                                                     : "options");
    if ((rc = validate(opts, err)) || (rc = check_timing(opts, c, p, err)))
        return rc;
    if (c->closed || atomic_load(&p->closed))
        return ksafe__error_set(err, KSAFE_ESTATE, 0, 0,
                                "ksafe_relay_run: the %s is closed",
                                c->closed ? "consumer" : "producer");
    if (c->loop_on_revoke)
        return ksafe__error_set(err, KSAFE_ESTATE, 0, 0,
                                "ksafe_relay_run: another loop drives this "
                                "consumer");
    if ((rc = ksafe_txn_init(p, -1, err)))
        return rc;
    memset(&R, 0, sizeof(R));
    memset(&local, 0, sizeof(local));
    R.c = c;
    R.p = p;
    R.crk = c->cl.rk;
    R.o = opts;
    R.st = opts->stats ? opts->stats : &local;
    memset(R.st, 0, sizeof(*R.st));
    R.err = err;
    R.backoff.initial_ms = opts->backoff_initial_ms;
    R.backoff.multiplier = opts->backoff_multiplier;
    R.backoff.max_ms = opts->backoff_max_ms;
    R.backoff.jitter = opts->backoff_jitter;
    ksafe__backoff_seed(&R.backoff);
    conf_string(R.crk, "group.id", R.group, sizeof(R.group));
    conf_string(p->cl.rk, "transactional.id", R.txn_id, sizeof(R.txn_id));
    c->loop_on_revoke = on_revoke;
    c->loop_arg = &R;

    while (!R.rc && !ksafe_consumer_stop_requested(c))
        step(&R);

    if (!R.rc && R.open) { /* graceful stop: the last batch commits */
        uint64_t before = R.st->transactions;
        size_t n = R.count;
        txn_commit(&R);
        if (!R.rc && R.st->transactions == before)
            /* Nothing is lost (its offsets are not committed either: the
             * next owner redoes it), but the stop did not do its job. */
            R.rc = ksafe__error_set(err, KSAFE_ETXNABORTED, 0, 0,
                                    "relay: the last transaction (%zu "
                                    "record(s)) did not commit at stop; "
                                    "its input is read again from the "
                                    "last commit",
                                    n);
    }
    if (R.open && R.commit_unknown) {
        /* Committing at the coordinator, maybe: an abort would fail, and
         * saying it was aborted would be false. */
        ksafe__log(&c->cl, KSAFE_LOG_ERR, "RELAY",
                   "stopping with a transaction whose commit outcome is "
                   "unknown; ksafe_producer_close() settles it");
    } else if (R.open) {
        ksafe_error e;
        ksafe__relay_settle_registrations(&R);
        if (ksafe_txn_abort(p, -1, &e))
            ksafe__log(&c->cl, KSAFE_LOG_WARNING, "RELAY",
                       "abort at stop failed (%s); the coordinator aborts "
                       "the transaction after transaction_timeout_ms",
                       e.message);
        R.st->aborts++;
        R.open = 0;
    } else if (R.abort_pending) {
        ksafe_error e;
        if (ksafe_txn_abort(p, -1, &e))
            ksafe__log(&c->cl, KSAFE_LOG_WARNING, "RELAY",
                       "abort at stop failed (%s); the coordinator aborts "
                       "the transaction after transaction_timeout_ms",
                       e.message);
    }
    rc = R.rc;
    c->loop_on_revoke = NULL; /* closing revokes everything: not ours */
    c->loop_arg = NULL;
    if (ksafe_consumer_close(c, &cerr) && !rc)
        rc = ksafe__error_set(err, cerr.code, cerr.rdkafka_code, cerr.flags,
                              "%s", cerr.message);
    for (i = 0; i < R.n_parts; i++) {
        free(R.parts[i].topic);
        free(R.parts[i].settled);
    }
    free(R.parts);
    return rc;
}
