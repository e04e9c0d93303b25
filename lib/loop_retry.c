/*
 * lib/loop_retry.c - a failed record: retry with backoff while its
 * partition is paused, then the failure policy (stop, skip, dead letter).
 */
#include <stdio.h>
#include <string.h>

#include "loop_internal.h"

int ksafe__loop_dead_letter(loop *L, const rd_kafka_message_t *m,
                            int attempts, const char *why)
{
    const char *topic = rd_kafka_topic_name(m->rkt);
    ksafe__dead_letter d;
    ksafe_error e;

    ksafe__dead_letter_init(&d, m, L->o->dead_letter_topic, attempts, why);
    if (ksafe_producer_send_sync(L->o->dead_letter_producer, &d.r, -1, NULL,
                                 &e)) {
        L->rc = ksafe__error_set(
            L->err, KSAFE_EHANDLER, e.rdkafka_code, e.flags,
            "%s [%d] offset %lld failed (%s) and could not be dead-lettered "
            "to %s: %s",
            topic, (int)m->partition, (long long)m->offset, why,
            L->o->dead_letter_topic, e.message);
        return -1;
    }
    L->st->dead_lettered++;
    return 0;
}

/* The record at the head of the failure: decide retry or policy. Returns 1
 * if the record is settled (may be marked), 0 if it waits for a retry, -1 if
 * the loop must stop. */
int settle_failure(loop *L, lpart *p, rd_kafka_message_t *m,
                   ksafe_handler_result r, const ksafe_error *he)
{
    const ksafe_loop_options *o = L->o;
    const char *why = he->message[0] ? he->message
                      : r == KSAFE_HANDLER_RETRY ? "retries exhausted"
                                                 : "handler failed";

    p->attempts++;
    if (r == KSAFE_HANDLER_RETRY && p->attempts < o->max_attempts) {
        L->st->retries++;
        p->retry_at = ksafe__now_ms() + ksafe__backoff_ms(&L->backoff, p->attempts);
        set_paused(L, p, 1);
        return 0;
    }
    L->st->failed++;
    switch (o->on_failure) {
    case KSAFE_FAILURE_SKIP:
        ksafe__log(&L->c->cl, KSAFE_LOG_WARNING, "SKIP",
                   "skipping %s [%d] offset %lld after %d attempt(s): %s",
                   p->topic, (int)p->partition, (long long)m->offset,
                   p->attempts, why);
        L->st->skipped++;
        return 1;
    case KSAFE_FAILURE_DEAD_LETTER:
        return ksafe__loop_dead_letter(L, m, p->attempts, why) ? -1 : 1;
    case KSAFE_FAILURE_STOP:
    default:
        L->rc = ksafe__error_set(L->err, KSAFE_EHANDLER, 0, 0,
                                 "%s [%d] offset %lld failed after %d "
                                 "attempt(s): %s",
                                 p->topic, (int)p->partition,
                                 (long long)m->offset, p->attempts, why);
        return -1;
    }
}

/* Puts batch[from..blen) back at the front of their partitions' queues. */
int requeue(loop *L, size_t from)
{
    size_t j;

    for (j = L->blen; j > from; j--) {
        rd_kafka_message_t *m = L->batch[j - 1];
        lpart *p = part_get(L, m);
        if (!p || q_push_front(p, m)) {
            L->rc = ksafe__error_set(L->err, KSAFE_ENOMEM, 0, 0,
                                     "out of memory");
            for (; j > from; j--)
                rd_kafka_message_destroy(L->batch[j - 1]);
            return -1;
        }
        update_blocked(L, p);
    }
    L->blen = from;
    return 0;
}

/* The whole batch goes back to its partitions, which wait paused until
 * `until`; no record is charged. 0, or -1 out of memory (L->rc set). */
static int hold_batch(loop *L, int64_t until)
{
    size_t i;

    for (i = 0; i < L->blen; i++) {
        lpart *p = part_get(L, L->batch[i]);
        if (!p) {
            L->rc = ksafe__error_set(L->err, KSAFE_ENOMEM, 0, 0,
                                     "out of memory");
            return -1;
        }
        p->retry_at = until;
        set_paused(L, p, 1);
    }
    return requeue(L, 0);
}

void store_trouble(loop *L, const ksafe_error *he)
{
    const char *name = ksafe_dedup_store_name(L->o->dedup_store);
    int64_t now = ksafe__now_ms(), delay;

    L->st->store_errors++;
    if (!L->store_failing_since)
        L->store_failing_since = now;
    L->store_failures++;
    if (now - L->store_failing_since >= L->o->store_retry_max_ms) {
        L->rc = ksafe__error_set(
            L->err, KSAFE_ESTORE, he->rdkafka_code, 0,
            "the %s dedup store kept failing for %lld ms (%d attempt(s), "
            "store_retry_max_ms %d): %s",
            name, (long long)(now - L->store_failing_since),
            L->store_failures, L->o->store_retry_max_ms, he->message);
        return;
    }
    delay = ksafe__backoff_ms(&L->backoff, L->store_failures);
    ksafe__log(&L->c->cl, KSAFE_LOG_WARNING, "DEDUP",
               "the %s dedup store failed (%s): %zu record(s) wait %lld ms "
               "and are tried again",
               name, he->message, L->blen, (long long)delay);
    hold_batch(L, now + delay);
}

void commit_trouble(loop *L, const ksafe_error *e)
{
    int64_t delay;

    L->commit_failures++;
    delay = ksafe__backoff_ms(&L->backoff, L->commit_failures);
    ksafe__log(&L->c->cl, KSAFE_LOG_WARNING, "COMMIT",
               "at-most-once: the position of %zu record(s) was not "
               "committed (%s); they wait %lld ms, unhandled",
               L->blen, e->message, (long long)delay);
    hold_batch(L, ksafe__now_ms() + delay);
}
