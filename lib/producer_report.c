/*
 * lib/producer_report.c - delivery reports: the callback librdkafka calls,
 * the records held after a fatal error, and their reports.
 */
#include <stdlib.h>
#include <string.h>

#include "producer_internal.h"

/* ---- delivery reports -------------------------------------------------- */

int ksafe__producer_is_fatal(rd_kafka_t *rk)
{
    return rd_kafka_fatal_error(rk, NULL, 0) != RD_KAFKA_RESP_ERR_NO_ERROR;
}

static void *copy_bytes(const void *src, size_t len)
{
    void *dst = malloc(len ? len : 1);

    if (dst && len)
        memcpy(dst, src, len);
    return dst;
}

void ksafe__rescued_free(ksafe__rescued *r)
{
    free(r->topic);
    free(r->key);
    free(r->value);
    if (r->headers)
        rd_kafka_headers_destroy(r->headers);
    free(r);
}

/*
 * Keeps a copy of a record the dead instance gave back (librdkafka still
 * has its bytes during the report because every send copies). Returns 0 if
 * memory ran out: the caller then reports the record failed instead.
 */
static int rescue(ksafe_producer *p, const rd_kafka_message_t *m,
                  void *user_opaque, uint64_t seq)
{
    ksafe__rescued *r = calloc(1, sizeof(*r));
    rd_kafka_headers_t *h = NULL;
    rd_kafka_timestamp_type_t tstype;

    if (!r)
        return 0;
    r->topic = ksafe__strdup(m->rkt ? rd_kafka_topic_name(m->rkt) : "");
    r->partition = m->partition >= 0 ? m->partition : KSAFE_PARTITION_ANY;
    r->has_key = m->key != NULL;
    r->has_value = m->payload != NULL;
    r->key_len = m->key_len;
    r->value_len = m->len;
    r->key = r->has_key ? copy_bytes(m->key, m->key_len) : NULL;
    r->value = r->has_value ? copy_bytes(m->payload, m->len) : NULL;
    if (rd_kafka_message_headers(m, &h) == RD_KAFKA_RESP_ERR_NO_ERROR && h)
        r->headers = rd_kafka_headers_copy(h);
    r->timestamp_ms = rd_kafka_message_timestamp(m, &tstype);
    if (r->timestamp_ms < 0)
        r->timestamp_ms = 0;
    r->opaque = user_opaque;
    r->seq = seq;
    r->err = m->err;
    r->possibly_delivered =
        rd_kafka_message_status(m) != RD_KAFKA_MSG_STATUS_NOT_PERSISTED;
    if (!r->topic || (r->has_key && !r->key) ||
        (r->has_value && !r->value)) {
        ksafe__rescued_free(r);
        return 0;
    }
    pthread_mutex_lock(&p->lock);
    *p->rescued_tail = r;
    p->rescued_tail = &r->next;
    p->n_rescued++;
    pthread_mutex_unlock(&p->lock);
    return 1;
}

static void finish_sync(ksafe_producer *p, ksafe__sync *s,
                        const rd_kafka_message_t *m, int fatal)
{
    rd_kafka_timestamp_type_t tstype;
    int expected = KSAFE__SYNC_WAITING;

    atomic_fetch_add(m->err ? &p->failed : &p->delivered, 1);
    s->err = m->err;
    s->fatal = fatal;
    s->possibly_delivered =
        rd_kafka_message_status(m) != RD_KAFKA_MSG_STATUS_NOT_PERSISTED;
    s->meta.partition = m->partition;
    s->meta.offset = m->err ? -1 : m->offset;
    s->meta.timestamp_ms = rd_kafka_message_timestamp(m, &tstype);
    /* The waiter gave up: nobody else will free the outcome. */
    if (!atomic_compare_exchange_strong(&s->state, &expected,
                                        KSAFE__SYNC_DONE))
        free(s);
}

void ksafe__producer_dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m,
                           void *opaque)
{
    ksafe_producer *p = opaque;
    uintptr_t priv = (uintptr_t)m->_private;
    ksafe__msg *w = priv & 1 ? NULL : m->_private;
    void *user_opaque = w ? w->user_opaque : NULL;
    uint64_t seq = w ? w->seq : (uint64_t)(priv >> 1);
    int fatal = m->err && ksafe__producer_is_fatal(rk);
    ksafe_delivery d;
    ksafe_error e;

    if (priv)
        atomic_fetch_add(&p->done, 1);
    if (w && w->sync) {
        finish_sync(p, w->sync, m, fatal);
        ksafe__msg_put(p->pool, w);
        return;
    }
    ksafe__msg_put(p->pool, w);
    /* After a fatal error an unacknowledged record is held for recover
     * instead of being reported: its bytes are only available now. */
    if (fatal && !atomic_load(&p->closed) && rescue(p, m, user_opaque, seq))
        return;
    if (!m->err) {
        atomic_fetch_add(&p->delivered, 1);
    } else {
        atomic_fetch_add(&p->failed, 1);
        if (fatal)
            ksafe__producer_fatal_error(p, &e);
        else
            ksafe__error_from_resp(&e, m->err, "delivery failed");
    }
    if (!p->on_delivery) {
        if (m->err)
            ksafe__producer_unwatched_failure(
                p, m->rkt ? rd_kafka_topic_name(m->rkt) : "",
                m->partition, &e,
                rd_kafka_message_status(m) !=
                    RD_KAFKA_MSG_STATUS_NOT_PERSISTED);
        return;
    }
    memset(&d, 0, sizeof(d));
    d.topic = m->rkt ? rd_kafka_topic_name(m->rkt) : NULL;
    d.partition = m->partition;
    d.offset = m->err ? -1 : m->offset;
    d.key = m->key;
    d.key_len = m->key_len;
    d.value = m->payload;
    d.value_len = m->len;
    d.opaque = user_opaque;
    if (m->err) {
        d.error = &e;
        d.possibly_delivered =
            rd_kafka_message_status(m) != RD_KAFKA_MSG_STATUS_NOT_PERSISTED;
    }
    p->on_delivery(&d, p->delivery_payload);
}

void ksafe__producer_unwatched_failure(ksafe_producer *p, const char *topic,
                                      int32_t partition, const ksafe_error *e,
                                      int possibly_delivered)
{
    /* The payload stays out of the log: it may hold personal data. */
    ksafe__log(&p->cl, KSAFE_LOG_ERR, "DELIVERY",
               "record to %s [%d] failed: %s%s; no delivery callback is set, "
               "so the next flush or close returns KSAFE_EUNDELIVERED",
               topic, (int)partition, e->message,
               possibly_delivered ? " (the broker may have written it)" : "");
    atomic_fetch_add(&p->unreported, 1);
}

void ksafe__producer_serve(ksafe_producer *p)
{
    rd_kafka_poll(p->cl.rk, 0);
}

int ksafe__producer_fatal_error(ksafe_producer *p, ksafe_error *err)
{
    char reason[200] = "";
    rd_kafka_resp_err_t code =
        rd_kafka_fatal_error(p->cl.rk, reason, sizeof(reason));

    return ksafe__error_set(err, KSAFE_EFATAL, code, KSAFE_ERROR_FATAL,
                            "fatal producer error: %s (%s); unacknowledged "
                            "records are held for ksafe_producer_recover()",
                            reason, rd_kafka_err2name(code));
}

static int by_seq(const void *a, const void *b)
{
    const ksafe__rescued *x = *(ksafe__rescued *const *)a;
    const ksafe__rescued *y = *(ksafe__rescued *const *)b;

    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/*
 * Takes the held records in send order: librdkafka gives them back queue
 * by queue (a partition's transmit queue and its waiting queue separately),
 * which is not the order they were sent in, and per-key order matters.
 */
ksafe__rescued *ksafe__producer_take_rescued(ksafe_producer *p,
                                             size_t *n)
{
    ksafe__rescued *list, **v, *r;
    size_t i;

    pthread_mutex_lock(&p->lock);
    list = p->rescued;
    *n = p->n_rescued;
    p->rescued = NULL;
    p->rescued_tail = &p->rescued;
    p->n_rescued = 0;
    pthread_mutex_unlock(&p->lock);
    if (*n < 2 || !(v = malloc(*n * sizeof(*v))))
        return list; /* out of memory: unsorted beats lost */
    for (i = 0, r = list; r; r = r->next)
        v[i++] = r;
    qsort(v, *n, sizeof(*v), by_seq);
    for (i = 0; i + 1 < *n; i++)
        v[i]->next = v[i + 1];
    v[*n - 1]->next = NULL;
    list = v[0];
    free(v);
    return list;
}

/* Reports a held record failed with `e` and frees it. */
void ksafe__producer_report_rescued(ksafe_producer *p, ksafe__rescued *r,
                                    const ksafe_error *e)
{
    ksafe_delivery d;

    atomic_fetch_add(&p->failed, 1);
    if (p->on_delivery) {
        memset(&d, 0, sizeof(d));
        d.topic = r->topic;
        d.partition = r->partition;
        d.offset = -1;
        d.key = r->key;
        d.key_len = r->key_len;
        d.value = r->value;
        d.value_len = r->value_len;
        d.opaque = r->opaque;
        d.error = e;
        d.possibly_delivered = r->possibly_delivered;
        p->on_delivery(&d, p->delivery_payload);
    } else {
        ksafe__producer_unwatched_failure(p, r->topic, r->partition, e,
                                          r->possibly_delivered);
    }
    ksafe__rescued_free(r);
}

int ksafe_producer_get_stats(ksafe_producer *p, ksafe_producer_stats *out,
                             ksafe_error *err)
{
    if (!p || !out)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "get_stats needs a producer and out");
    if (out->version != KSAFE_PRODUCER_STATS_VERSION)
        return ksafe__error_set(err, KSAFE_EVERSION, 0, 0,
                                "ksafe_producer_stats.version is %u; this "
                                "library knows version %d (initialise with "
                                "KSAFE_PRODUCER_STATS_INIT)",
                                out->version, KSAFE_PRODUCER_STATS_VERSION);
    out->delivered = atomic_load(&p->delivered);
    out->failed = atomic_load(&p->failed);
    pthread_mutex_lock(&p->lock);
    out->held = p->n_rescued;
    pthread_mutex_unlock(&p->lock);
    out->handed_back = atomic_load(&p->handed_back);
    out->in_flight = ksafe__producer_pending(p);
    return 0;
}
