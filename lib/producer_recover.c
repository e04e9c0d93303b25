/*
 * lib/producer_recover.c - replacing the librdkafka instance after a fatal
 * error, re-sending or handing back the records it held.
 */
#include <stdlib.h>
#include <string.h>

#include "producer_internal.h"

/* ---- recovery from fatal errors ----------------------------------------- */

/* The held record as a ksafe_record, headers in `hv` (caller frees). */
static int record_of(const ksafe__rescued *r, ksafe_record *rec,
                     ksafe_header **hv)
{
    size_t i, n = r->headers ? rd_kafka_header_cnt(r->headers) : 0;

    *hv = NULL;
    memset(rec, 0, sizeof(*rec));
    rec->topic = r->topic;
    rec->partition = r->partition;
    rec->key = r->key;
    rec->key_len = r->key_len;
    rec->value = r->value;
    rec->value_len = r->value_len;
    rec->timestamp_ms = r->timestamp_ms;
    rec->opaque = r->opaque;
    if (!n)
        return 0;
    if (!(*hv = calloc(n, sizeof(**hv))))
        return -1;
    for (i = 0; i < n; i++) {
        const void *v;
        size_t len;
        rd_kafka_header_get_all(r->headers, i, &(*hv)[i].name, &v, &len);
        (*hv)[i].value = v;
        (*hv)[i].value_len = len;
    }
    rec->headers = *hv;
    rec->header_count = n;
    return 0;
}

/* librdkafka reports purged records at once; this covers a slow report. */
#define RECOVER_WAIT_MS 10000

int ksafe_producer_recover(ksafe_producer *p, ksafe_recover_mode mode,
                           ksafe_handback_cb on_handback, void *payload,
                           size_t *out_count, ksafe_error *err)
{
    rd_kafka_t *dead;
    ksafe__rescued *r;
    ksafe_error fatal_err;
    int64_t deadline;
    uint64_t missing;
    size_t n;
    int rc;

    if (out_count)
        *out_count = 0;
    if (!p)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0, "producer is NULL");
    if (mode != KSAFE_RECOVER_RESEND && mode != KSAFE_RECOVER_HAND_BACK)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "recover mode %d is not a ksafe_recover_mode",
                                (int)mode);
    if (mode == KSAFE_RECOVER_HAND_BACK && !on_handback)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "KSAFE_RECOVER_HAND_BACK needs on_handback");
    if (mode == KSAFE_RECOVER_RESEND && p->transactional)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "a transactional producer cannot re-send "
                                "outside its lost transaction: use "
                                "KSAFE_RECOVER_HAND_BACK");
    if (atomic_load(&p->closed))
        return ksafe__error_set(err, KSAFE_ESTATE, 0, 0,
                                "the producer is closed");
    if (!ksafe__producer_is_fatal(p->cl.rk))
        return ksafe__error_set(err, KSAFE_ESTATE, 0, 0,
                                "recover: the producer has had no fatal "
                                "error");
    ksafe__producer_fatal_error(p, &fatal_err);

    /* Make the dead instance give back everything it still holds; the
     * reports land in the held list (or with their sync senders). Only a
     * live instance reports: destroying it with reports outstanding would
     * drop those records unseen, so wait for ours (not outq_len, which also
     * counts requests that are no record), and if they do not come, replace
     * nothing and say how many are missing. */
    dead = p->cl.rk;
    rd_kafka_purge(dead, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    deadline = ksafe__now_ms() + RECOVER_WAIT_MS;
    rd_kafka_poll(dead, 0);
    while (ksafe__producer_pending(p) > 0 && ksafe__now_ms() < deadline)
        rd_kafka_poll(dead, 50);
    if ((missing = ksafe__producer_pending(p)) > 0) {
        pthread_mutex_lock(&p->lock);
        n = p->n_rescued;
        pthread_mutex_unlock(&p->lock);
        return ksafe__error_set(
            err, KSAFE_ETIMEDOUT, 0, KSAFE_ERROR_RETRIABLE,
            "recover: %llu records have no report from the failed instance "
            "after %d ms: nothing was replaced or dropped (%zu are held); "
            "call recover again, or close, which counts them",
            (unsigned long long)missing, RECOVER_WAIT_MS, n);
    }

    p->cl.rk = NULL;
    if ((rc = ksafe__client_start(&p->cl, rd_kafka_conf_dup(p->conf), err))) {
        p->cl.rk = dead;
        return rc;
    }
    rd_kafka_destroy(dead);
    p->txn_initialised = 0;
    atomic_store(&p->txn_open, 0);

    for (r = ksafe__producer_take_rescued(p, &n); r;) {
        ksafe__rescued *next = r->next;
        ksafe_record rec;
        ksafe_header *hv;
        ksafe_error e;

        if (mode == KSAFE_RECOVER_HAND_BACK) {
            if (record_of(r, &rec, &hv) == 0) {
                atomic_fetch_add(&p->handed_back, 1);
                on_handback(&rec, &fatal_err, r->possibly_delivered,
                            payload);
                ksafe__rescued_free(r);
            } else {
                ksafe__error_set(&e, KSAFE_ENOMEM, 0, 0,
                                 "recover: out of memory handing back");
                ksafe__producer_report_rescued(p, r, &e);
            }
            free(hv);
        } else {
            int tagged = KSAFE__MSG_TAGGABLE(r->opaque);
            ksafe__msg *w = tagged ? NULL : ksafe__msg_get(p->pool);
            rd_kafka_headers_t *h = r->headers;

            r->headers = NULL; /* produce takes or destroys it */
            if (!tagged && !w) {
                if (h)
                    rd_kafka_headers_destroy(h);
                ksafe__error_set(&e, KSAFE_ENOMEM, 0, 0,
                                 "recover: out of memory re-sending");
                ksafe__producer_report_rescued(p, r, &e);
            } else {
                if (w)
                    w->user_opaque = r->opaque;
                /* A record that cannot be queued again is reported failed
                 * with the reason: accounted for, not dropped. */
                if (ksafe__producer_produce(
                        p, r->topic, r->partition,
                        r->has_key ? r->key : NULL, r->key_len,
                        r->has_value ? r->value : NULL, r->value_len, h,
                        r->timestamp_ms, w, &e)) {
                    ksafe__msg_put(p->pool, w);
                    ksafe__producer_report_rescued(p, r, &e);
                } else {
                    ksafe__rescued_free(r);
                }
            }
        }
        r = next;
    }
    if (out_count)
        *out_count = n;
    ksafe__producer_serve(p);
    return 0;
}
