/*
 * lib/loop_dedup.c - a batch in one dedup store transaction: claims, the
 * handler on the records not done yet, marks, offsets, commit.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "loop_internal.h"

static void copy_error(ksafe_error *to, const ksafe_error *from)
{
    snprintf(to->message, sizeof(to->message), "%s", from->message);
    to->code = from->code;
    to->rdkafka_code = from->rdkafka_code;
}

/*
 * One store transaction over the whole batch: claims, the handler on the
 * records not done yet, marks, offsets, commit. Returns 0 when every record
 * is settled (handled or a duplicate); otherwise the transaction is rolled
 * back and *he says why: DEDUP_RECORD when a record is to blame (*fail, *r),
 * DEDUP_STORE when the store failed (no record is), DEDUP_STOP when the
 * loop must end (L->rc is set).
 */
int dedup_batch(loop *L, ksafe_handler_result *r, ksafe_error *he,
                size_t *fail, size_t *handled)
{
    const ksafe_loop_options *o = L->o;
    ksafe_dedup_store *s = o->dedup_store;
    size_t i, nfresh = 0, ok = 0, nsettled = 0;
    ksafe_error e;

    *fail = 0;
    *r = KSAFE_HANDLER_RETRY;
    if (ksafe_dedup_begin(s, &e)) {
        copy_error(he, &e);
        return DEDUP_STORE;
    }
    for (i = 0; i < L->blen; i++) {
        const ksafe_message *m = (const ksafe_message *)L->batch[i];
        char *key = L->keys + i * KEY_MAX;
        ksafe_dedup_status st;

        if (L->settled && is_settled(L, L->batch[i])) {
            /* the policy decided: no claim, no handler, no mark */
            L->dup[i] = 2;
            nsettled++;
            continue;
        }
        if (ksafe_dedup_key_extract(o->dedup_key, m, key, KEY_MAX, &L->klen[i],
                                    &e)) {
            *r = KSAFE_HANDLER_FAIL; /* the record itself is bad */
            *fail = i;
            copy_error(he, &e);
            ksafe_dedup_rollback(s, NULL);
            return DEDUP_RECORD;
        }
        if (ksafe_dedup_claim(s, key, L->klen[i], &st, &e))
            goto store_failed;
        L->dup[i] = st == KSAFE_DEDUP_DUPLICATE ? 1 : 0;
        if (!L->dup[i])
            L->fresh[nfresh++] = L->batch[i];
    }
    if (nfresh) {
        if (o->handler)
            *r = o->handler((const ksafe_message *)L->fresh[0], he,
                            o->payload);
        else
            *r = o->batch_handler((const ksafe_message *const *)L->fresh,
                                  nfresh, &ok, he, o->payload);
        if (*r != KSAFE_HANDLER_OK) {
            rd_kafka_message_t *bad = L->fresh[ok < nfresh ? ok : nfresh - 1];
            for (*fail = 0; L->batch[*fail] != bad; (*fail)++)
                ;
            ksafe_dedup_rollback(s, NULL);
            return DEDUP_RECORD;
        }
    }
    for (i = 0; i < L->blen; i++) {
        const rd_kafka_message_t *m = L->batch[i];
        if ((!L->dup[i] &&
             ksafe_dedup_mark(s, L->keys + i * KEY_MAX, L->klen[i], &e)) ||
            (o->dedup_offsets &&
             ksafe_dedup_store_offset(s, L->group, rd_kafka_topic_name(m->rkt),
                                      m->partition, m->offset + 1, &e)))
            goto store_failed;
    }
    if (ksafe_dedup_commit(s, &e)) { /* rolled back by the store */
        copy_error(he, &e);
        return DEDUP_STORE;
    }
    *handled = nfresh;
    L->st->duplicates += L->blen - nfresh - nsettled;
    return 0;
store_failed:
    copy_error(he, &e);
    ksafe_dedup_rollback(s, NULL);
    return DEDUP_STORE;
}
