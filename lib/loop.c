/*
 * lib/loop.c - the at-least-once loop (ksafe_run).
 *
 * Records flow poll -> batch -> handler -> mark -> commit policy. The fast
 * path (no partition retrying or holding records) touches no table and
 * allocates nothing. A partition whose record failed is "blocked": it is
 * paused in librdkafka (which also drops its prefetched records and resumes
 * after the last record we received), its pending records wait in a small
 * per-partition queue, and poll keeps running so other partitions flow and
 * the member keeps its place in the group.
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dedup_internal.h"
#include "loop_internal.h"

static const ksafe_loop_options loop_defaults = KSAFE_LOOP_OPTIONS_INIT;

int ksafe_loop_options_init(ksafe_loop_options *opts, unsigned int version)
{
    if (!opts)
        return KSAFE_EINVAL;
    if (version != KSAFE_LOOP_OPTIONS_VERSION)
        return KSAFE_EVERSION;
    *opts = loop_defaults;
    return 0;
}

static int validate(const ksafe_loop_options *o, ksafe_error *err)
{
    if (o->version != KSAFE_LOOP_OPTIONS_VERSION)
        return ksafe__error_set(err, KSAFE_EVERSION, 0, 0,
                                "ksafe_loop_options.version is %u; this "
                                "library knows version %d (initialise with "
                                "KSAFE_LOOP_OPTIONS_INIT)",
                                o->version, KSAFE_LOOP_OPTIONS_VERSION);
    if (!o->handler == !o->batch_handler)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "set exactly one of handler and "
                                "batch_handler");
    if (o->batch_handler && (o->batch_size < 1 || o->batch_size > 100000))
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "batch_size is %zu, outside 1..100000",
                                o->batch_size);
    if (o->batch_max_wait_ms < 0)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "batch_max_wait_ms is %d, below 0",
                                o->batch_max_wait_ms);
    if ((unsigned)o->semantics > KSAFE_AT_MOST_ONCE)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "semantics %d is not a ksafe_semantics value",
                                (int)o->semantics);
    if (o->commit_every_records > 1000000000u)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "commit_every_records is %llu, above 1e9",
                                (unsigned long long)o->commit_every_records);
    if (o->commit_interval_ms > 3600000)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "commit_interval_ms is %d, above one hour",
                                o->commit_interval_ms);
    if (!o->commit_every_records && o->commit_interval_ms <= 0)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "commit_every_records and commit_interval_ms "
                                "are both off: nothing would be committed "
                                "until stop");
    if (o->commit_interval_ms < 0)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "commit_interval_ms is %d, below 0",
                                o->commit_interval_ms);
    if (o->max_attempts < 1 || o->max_attempts > 1000000)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "max_attempts is %d, outside 1..1000000",
                                o->max_attempts);
    if (o->backoff_initial_ms < 0 || o->backoff_max_ms < o->backoff_initial_ms)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "backoff_initial_ms (%d) must be >= 0 and "
                                "<= backoff_max_ms (%d)",
                                o->backoff_initial_ms, o->backoff_max_ms);
    if (!(o->backoff_multiplier >= 1.0 && o->backoff_multiplier <= 100.0))
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "backoff_multiplier is %g, outside 1..100",
                                o->backoff_multiplier);
    if (!(o->backoff_jitter >= 0.0 && o->backoff_jitter <= 1.0))
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "backoff_jitter is %g, outside 0..1",
                                o->backoff_jitter);
    if ((unsigned)o->on_failure > KSAFE_FAILURE_DEAD_LETTER)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "on_failure %d is not a ksafe_failure_policy "
                                "value",
                                (int)o->on_failure);
    if (o->on_failure == KSAFE_FAILURE_DEAD_LETTER &&
        (!o->dead_letter_topic || !*o->dead_letter_topic ||
         !o->dead_letter_producer))
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "on_failure is KSAFE_FAILURE_DEAD_LETTER: "
                                "dead_letter_topic and dead_letter_producer "
                                "are required");
    if (o->on_failure == KSAFE_FAILURE_DEAD_LETTER &&
        ksafe__topic_check(o->dead_letter_topic, "dead_letter_topic", err))
        return KSAFE_EINVAL;
    if (o->dedup_store && !o->dedup_key)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "dedup_store is set but dedup_key is NULL: "
                                "say what makes two records the same");
    if (o->dedup_store && o->semantics != KSAFE_AT_LEAST_ONCE)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "deduplication needs KSAFE_AT_LEAST_ONCE: "
                                "at-most-once never sees a record twice");
    if (ksafe__dedup_store_caller_txn(o->dedup_store))
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "dedup_store is in KSAFE_DEDUP_TXN_CALLER "
                                "mode: ksafe_run opens no transaction of "
                                "yours, so each claim would commit alone and "
                                "a retried record would be skipped as a "
                                "duplicate; use KSAFE_DEDUP_TXN_STORE");
    if (o->dedup_offsets && !o->dedup_store)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "dedup_offsets needs a dedup_store");
    if (o->max_buffered_per_partition < 1)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "max_buffered_per_partition must be >= 1");
    if (o->store_retry_max_ms < 0 || o->store_retry_max_ms > 86400000)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "store_retry_max_ms is %d, outside "
                                "0..86400000",
                                o->store_retry_max_ms);
    if (o->poll_timeout_ms < 1 || o->poll_timeout_ms > 60000)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "poll_timeout_ms is %d, outside 1..60000",
                                o->poll_timeout_ms);
    return ksafe__loop_validate_workers(o, err);
}

/* ---- rebalance --------------------------------------------------------- */

/*
 * Called by the consumer before it commits and gives up `parts`: records of
 * those partitions that were received but not handled are dropped (the new
 * owner gets them again from the committed position), and paused ones are
 * resumed so a later assignment does not inherit the pause.
 */
static void on_revoke(ksafe_consumer *c,
                      const rd_kafka_topic_partition_list_t *parts, int lost,
                      void *arg)
{
    loop *L = arg;
    size_t i, kept = 0;

    KSAFE__UNUSED(c);
    if (lost)
        L->st->lost += (uint64_t)parts->cnt;
    else
        L->st->revoked += (uint64_t)parts->cnt;
    for (i = 0; i < L->blen; i++) {
        rd_kafka_message_t *m = L->batch[i];
        if (rd_kafka_topic_partition_list_find(
                parts, rd_kafka_topic_name(m->rkt), m->partition))
            drop_unhandled(L, m);
        else
            L->batch[kept++] = m;
    }
    L->blen = kept;
    i = 0;
    while (i < L->n_parts) {
        lpart *p = &L->parts[i];
        if (rd_kafka_topic_partition_list_find(parts, p->topic,
                                               p->partition)) {
            set_paused(L, p, 0);
            part_remove(L, p);
        } else {
            p->in_batch = 0;
            i++;
        }
    }
    for (i = 0; i < L->blen; i++) {
        lpart *p = part_find(L, L->batch[i]);
        if (p)
            p->in_batch++;
    }
}

/* Partitions assigned to us start where the store says their effects end. */
static void on_assign(ksafe_consumer *c,
                      const rd_kafka_topic_partition_list_t *parts, void *arg)
{
    loop *L = arg;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_copy(parts);
    ksafe_error e;
    int i;

    for (i = 0; i < l->cnt; i++)
        l->elems[i].offset = RD_KAFKA_OFFSET_INVALID;
    if (ksafe_dedup_load_offsets(L->o->dedup_store, L->group, l, NULL, &e)) {
        /* Safe to go on: the committed offset is at or before the store's,
         * and the marks skip what was already done. */
        ksafe__log(&c->cl, KSAFE_LOG_WARNING, "DEDUP",
                   "could not load offsets from the store (%s): starting "
                   "from the committed offsets",
                   e.message);
    } else {
        for (i = 0; i < l->cnt; i++)
            if (l->elems[i].offset >= 0 &&
                ksafe_consumer_seek(c, l->elems[i].topic,
                                    l->elems[i].partition, l->elems[i].offset,
                                    &e))
                ksafe__log(&c->cl, KSAFE_LOG_WARNING, "DEDUP", "%s",
                           e.message);
    }
    rd_kafka_topic_partition_list_destroy(l);
}

/* ---- handling ---------------------------------------------------------- */

static int mark(loop *L, rd_kafka_message_t *m)
{
    ksafe_error e;

    if (ksafe_consumer_done(L->c, (const ksafe_message *)m, &e)) {
        L->rc = ksafe__error_set(L->err, e.code, 0, 0, "%s", e.message);
        return -1;
    }
    return 0;
}

/* At-most-once: a failed record is counted and logged, never retried (its
 * position is committed already). */
static void amo_failed(loop *L, const rd_kafka_message_t *m,
                       const ksafe_error *he)
{
    L->st->failed++;
    ksafe__log(&L->c->cl, KSAFE_LOG_WARNING, "FAILED",
               "at-most-once: %s [%d] offset %lld failed and is not retried: "
               "%s",
               rd_kafka_topic_name(m->rkt), (int)m->partition,
               (long long)m->offset,
               he->message[0] ? he->message : "handler failed");
}

/* 1 if a record before batch[fi] belongs to the same partition. */
static int earlier_in_partition(const loop *L, size_t fi)
{
    const rd_kafka_message_t *m = L->batch[fi];
    size_t j;

    for (j = 0; j < fi; j++)
        if (L->batch[j]->rkt == m->rkt &&
            L->batch[j]->partition == m->partition)
            return 1;
    return 0;
}

static void handle_batch(loop *L)
{
    const ksafe_loop_options *o = L->o;
    ksafe_handler_result r = KSAFE_HANDLER_OK;
    ksafe_error he;
    size_t k = 0, i, f = 0;

    memset(&he, 0, sizeof(he));
    if (o->dedup_store) {
        size_t handled = 0;
        int d = dedup_batch(L, &r, &he, &f, &handled);
        if (d == DEDUP_STOP)
            return;
        if (d == DEDUP_STORE) {
            store_trouble(L, &he);
            return;
        }
        /* the store answered (a record may still be to blame) */
        L->store_failing_since = 0;
        L->store_failures = 0;
        if (d == 0) {
            k = L->blen;
            for (i = 0; i < k; i++) {
                if (mark(L, L->batch[i]))
                    return;
                forget_settled(L, L->batch[i]);
            }
            L->st->processed += handled;
        }
    } else if (o->semantics == KSAFE_AT_MOST_ONCE) {
        size_t ok = 0;
        ksafe_error ce;

        /* The broker holds the position past these records before the
         * handler sees one: a crash after it cannot hand them again. */
        for (i = 0; i < L->blen; i++)
            if (mark(L, L->batch[i]))
                return;
        if (ksafe_consumer_commit(L->c, KSAFE_COMMIT_SYNC, &ce)) {
            commit_trouble(L, &ce);
            return;
        }
        L->commit_failures = 0;
        if (o->handler) {
            for (i = 0; i < L->blen; i++) {
                memset(&he, 0, sizeof(he));
                if (o->handler((const ksafe_message *)L->batch[i], &he,
                               o->payload) == KSAFE_HANDLER_OK)
                    ok++;
                else
                    amo_failed(L, L->batch[i], &he);
            }
        } else if (o->batch_handler((const ksafe_message *const *)L->batch,
                                    L->blen, &ok, &he, o->payload) ==
                   KSAFE_HANDLER_OK) {
            ok = L->blen;
        } else {
            if (ok > L->blen)
                ok = L->blen;
            for (i = ok; i < L->blen; i++)
                amo_failed(L, L->batch[i], &he);
        }
        L->st->processed += ok;
        k = L->blen;
    } else if (o->handler) {
        for (k = 0; k < L->blen; k++) {
            r = o->handler((const ksafe_message *)L->batch[k], &he,
                           o->payload);
            if (r != KSAFE_HANDLER_OK)
                break;
            if (mark(L, L->batch[k]))
                return;
        }
    } else {
        size_t ok = 0;
        r = o->batch_handler((const ksafe_message *const *)L->batch, L->blen,
                             &ok, &he, o->payload);
        k = r == KSAFE_HANDLER_OK ? L->blen : (ok < L->blen ? ok : L->blen - 1);
        for (i = 0; i < k; i++)
            if (mark(L, L->batch[i]))
                return;
    }
    if (o->semantics == KSAFE_AT_LEAST_ONCE && !o->dedup_store)
        L->st->processed += k;
    /* A partition whose record succeeded starts its next record afresh. */
    if (L->blocked || L->n_parts)
        for (i = 0; i < k; i++) {
            lpart *p = part_find(L, L->batch[i]);
            if (p)
                p->attempts = 0;
        }
    for (i = 0; i < k; i++)
        rd_kafka_message_destroy(L->batch[i]);
    if (k < L->blen) {
        /* Without dedup the failing record follows the k that succeeded;
         * a dedup batch is all or nothing and names its culprit. */
        size_t fi = o->dedup_store ? f : k;
        rd_kafka_message_t *m = L->batch[fi];
        lpart *p = part_get(L, m);
        int s;

        if (!p) {
            L->rc = ksafe__error_set(L->err, KSAFE_ENOMEM, 0, 0,
                                     "out of memory");
            return;
        }
        s = settle_failure(L, p, m, r, &he);
        memmove(L->batch, L->batch + k, (L->blen - k) * sizeof(*L->batch));
        L->blen -= k;
        fi -= k;
        if (s == 1 && earlier_in_partition(L, fi)) {
            /* Its partition's earlier records of this dedup batch were
             * rolled back: marking it now would commit past them. It is
             * marked with the batch that gets them done. */
            p->attempts = 0;
            if (settle_later(L, p, m->offset)) {
                L->rc = ksafe__error_set(L->err, KSAFE_ENOMEM, 0, 0,
                                         "out of memory");
                return;
            }
        } else if (s == 1) {
            p->attempts = 0;
            if (mark(L, m))
                return;
            rd_kafka_message_destroy(m);
            memmove(L->batch + fi, L->batch + fi + 1,
                    (L->blen - fi - 1) * sizeof(*L->batch));
            L->blen--;
        }
        requeue(L, 0); /* updates each partition's state itself */
    } else {
        L->blen = 0;
    }
}

/* ---- collecting a batch ------------------------------------------------ */

/* Moves ready queued records (backoff over) into the batch. Returns the time
 * of the next retry, 0 if none is waiting. */
static int64_t take_ready(loop *L, int64_t now)
{
    int64_t next = 0;
    size_t i;

    for (i = 0; i < L->n_parts && L->blen < L->bmax; i++) {
        lpart *p = &L->parts[i];
        if (!p->blocked)
            continue;
        if (p->retry_at > now) {
            if (!next || p->retry_at < next)
                next = p->retry_at;
            continue;
        }
        p->retry_at = 0;
        while (p->len && L->blen < L->bmax) {
            L->batch[L->blen++] = q_pop_front(p);
            p->in_batch++;
        }
        update_blocked(L, p);
    }
    return next;
}

/* Routes one polled record: behind its partition's queue if blocked,
 * otherwise into the batch. */
static void route(loop *L, rd_kafka_message_t *m)
{
    lpart *p = NULL;

    L->st->polled++;
    if (L->blocked && (p = part_find(L, m)) && p->blocked) {
        if (q_push_back(p, m)) {
            rd_kafka_message_destroy(m);
            L->rc = ksafe__error_set(L->err, KSAFE_ENOMEM, 0, 0,
                                     "out of memory");
        }
        return;
    }
    L->batch[L->blen++] = m;
    if (L->bmax > 1) {
        /* Backpressure: a partition holding its share of the batch is
         * paused until the batch is handled. */
        if (!p && !(p = part_get(L, m)))
            return;
        if (++p->in_batch >= L->o->max_buffered_per_partition)
            set_paused(L, p, 1);
    }
}

/* After a batch: partitions paused for backpressure, or whose backoff is
 * over, fetch again (their pending records still go first). */
static void release_paused(loop *L)
{
    size_t i;

    for (i = 0; i < L->n_parts; i++) {
        lpart *p = &L->parts[i];
        p->in_batch = 0;
        if (p->paused && !p->retry_at)
            set_paused(L, p, 0);
    }
}

static void collect(loop *L)
{
    /* No clock read on the fast path: only a backoff needs the time. */
    int64_t next_retry = L->blocked ? take_ready(L, ksafe__now_ms()) : 0;
    int64_t deadline = 0;

    while (L->blen < L->bmax && !L->rc) {
        rd_kafka_message_t *m;
        int timeout;

        if (L->blen == 0) {
            timeout = L->o->poll_timeout_ms;
            if (next_retry) {
                int64_t d = next_retry - ksafe__now_ms();
                timeout = d <= 0 ? 0 : (d < timeout ? (int)d : timeout);
            }
        } else {
            int64_t d;
            if (!deadline)
                deadline = ksafe__now_ms() + L->o->batch_max_wait_ms;
            d = deadline - ksafe__now_ms();
            if (d <= 0)
                break;
            timeout = (int)d;
        }
        m = rd_kafka_consumer_poll(L->rk, timeout);
        if (!m) {
            if (L->blen == 0)
                break; /* idle: let the caller commit, retry, stop */
            continue;
        }
        if (m->err) {
            int rc = ksafe__poll_error(L->c, m, L->group, L->err);
            if (rc)
                L->rc = rc;
            continue;
        }
        route(L, m);
        if (L->c->stop) /* ksafe_consumer_stop(), read without a call */
            break;
    }
}

/* ---- run --------------------------------------------------------------- */

static void loop_free(loop *L)
{
    free(L->batch);
    free(L->parts);
    free(L->keys);
    free(L->klen);
    free(L->dup);
    free(L->fresh);
}

int ksafe_run(ksafe_consumer *c, const ksafe_loop_options *opts,
              ksafe_error *err)
{
    ksafe_loop_stats local;
    ksafe_error cerr;
    ksafe_commit_policy policy = KSAFE_COMMIT_POLICY_INIT;
    uint64_t commits_before;
    int rebalances_before;
    loop L;
    size_t i, group_size;
    int rc;

    if (!c)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0, "consumer is NULL");
    if (!opts)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "loop options are required (a handler)");
    if ((rc = validate(opts, err)))
        return rc;
    if (c->closed)
        return ksafe__error_set(err, KSAFE_ESTATE, 0, 0,
                                "the consumer is closed");
    memset(&L, 0, sizeof(L));
    memset(&local, 0, sizeof(local));
    L.c = c;
    L.rk = c->cl.rk;
    L.o = opts;
    L.st = opts->stats ? opts->stats : &local;
    memset(L.st, 0, sizeof(*L.st));
    L.err = err;
    L.bmax = opts->batch_handler ? opts->batch_size : 1;
    policy.every_records = (unsigned int)opts->commit_every_records;
    policy.every_ms = (unsigned int)opts->commit_interval_ms;
    if ((rc = ksafe_consumer_set_commit_policy(c, &policy, err)))
        return rc;
    L.backoff.initial_ms = opts->backoff_initial_ms;
    L.backoff.multiplier = opts->backoff_multiplier;
    L.backoff.max_ms = opts->backoff_max_ms;
    L.backoff.jitter = opts->backoff_jitter;
    ksafe__backoff_seed(&L.backoff);
    L.batch = malloc(L.bmax * sizeof(*L.batch));
    group_size = sizeof(L.group);
    if (rd_kafka_conf_get(rd_kafka_conf(L.rk), "group.id", L.group,
                          &group_size) != RD_KAFKA_CONF_OK)
        L.group[0] = '\0';
    if (opts->dedup_store) {
        L.keys = malloc(L.bmax * KEY_MAX);
        L.klen = malloc(L.bmax * sizeof(*L.klen));
        L.dup = malloc(L.bmax);
        L.fresh = malloc(L.bmax * sizeof(*L.fresh));
    }
    if (!L.batch || (opts->dedup_store &&
                     (!L.keys || !L.klen || !L.dup || !L.fresh))) {
        loop_free(&L);
        return ksafe__error_set(err, KSAFE_ENOMEM, 0, 0, "out of memory");
    }
    c->loop_on_revoke = on_revoke;
    c->loop_on_assign = opts->dedup_offsets ? on_assign : NULL;
    c->loop_arg = &L;

    rebalances_before = c->rebalances;
    commits_before = c->commits_sent;
    if (opts->workers > 1)
        ksafe__loop_run_workers(&L);
    else while (!L.rc && !ksafe_consumer_stop_requested(c)) {
        collect(&L);
        if (L.blen) {
            handle_batch(&L);
            if (L.paused || L.bmax > 1)
                release_paused(&L);
            /* The consumer's policy: two compares when nothing is due. */
            ksafe_consumer_commit_maybe(c, NULL);
        } else {
            ksafe__consumer_commit_idle(c, NULL);
        }
        L.st->rebalances = (uint64_t)(c->rebalances - rebalances_before);
        L.st->commits = c->commits_sent - commits_before;
    }

    /* Unhandled records are not marked, so the next owner gets them again;
     * drop_unhandled reports at-most-once records that were. */
    for (i = 0; i < L.blen; i++)
        drop_unhandled(&L, L.batch[i]);
    L.blen = 0;
    while (L.n_parts)
        part_remove(&L, &L.parts[0]);
    rc = L.rc;
    c->loop_on_revoke = NULL; /* closing revokes everything: not ours */
    c->loop_on_assign = NULL;
    c->loop_arg = NULL;
    if (ksafe_consumer_close(c, &cerr) && !rc)
        rc = ksafe__error_set(err, cerr.code, cerr.rdkafka_code, cerr.flags,
                              "%s", cerr.message);
    L.st->commits = c->commits_sent - commits_before;
    loop_free(&L);
    return rc;
}

/* ---- signals ----------------------------------------------------------- */

static ksafe_consumer *volatile signal_consumer;

static void on_stop_signal(int sig)
{
    ksafe_consumer *c = signal_consumer;

    KSAFE__UNUSED(sig);
    if (c)
        ksafe_consumer_stop(c);
}

int ksafe_stop_on_signals(ksafe_consumer *c, ksafe_error *err)
{
    struct sigaction sa;

    if (!c)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0, "consumer is NULL");
    signal_consumer = c;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGINT, &sa, NULL) || sigaction(SIGTERM, &sa, NULL))
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "could not install signal handlers");
    return 0;
}
