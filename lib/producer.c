/*
 * lib/producer.c - the safe producer: creation, async and sync sends,
 * flush. Options live in producer_options.c, reports in producer_report.c,
 * close in producer_close.c, recovery from fatal errors in
 * producer_recover.c, the per-record wrappers in producer_msg.c.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "producer_internal.h"

static void producer_destroy(ksafe_producer *p)
{
    ksafe__client_release(&p->cl);
    /* After the instance: its purge may still hand wrappers back. */
    ksafe__msg_pool_free(p->pool);
    if (p->conf)
        rd_kafka_conf_destroy(p->conf);
    pthread_mutex_destroy(&p->lock);
    free(p);
}

int ksafe_producer_new(ksafe_producer **out, const ksafe_producer_options *opts,
                       ksafe_error *err)
{
    ksafe__client_view v;
    ksafe_producer *p;
    rd_kafka_conf_t *conf;
    int rc;

    if (!out)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0, "out is NULL");
    *out = NULL;
    if (!opts)
        opts = &ksafe__producer_preset;
    if ((rc = ksafe_producer_options_validate(opts, err)))
        return rc;
    KSAFE__CLIENT_VIEW(v, opts);
    if (!(p = calloc(1, sizeof(*p))))
        return ksafe__error_set(err, KSAFE_ENOMEM, 0, 0, "out of memory");
    pthread_mutex_init(&p->lock, NULL);
    p->rescued_tail = &p->rescued;
    if (!(p->pool = ksafe__msg_pool_new())) {
        producer_destroy(p);
        return ksafe__error_set(err, KSAFE_ENOMEM, 0, 0, "out of memory");
    }
    if ((rc = ksafe__client_init(&p->cl, KSAFE__PRODUCER, &v, err))) {
        producer_destroy(p);
        return rc;
    }
    p->on_delivery = opts->on_delivery;
    p->delivery_payload = opts->delivery_payload;
    p->queue_full = opts->queue_full;
    p->queue_full_timeout_ms = opts->queue_full_timeout_ms;
    p->delivery_timeout_ms = opts->delivery_timeout_ms;
    p->transaction_timeout_ms = opts->transaction_timeout_ms;
    p->transactional = opts->transactional_id != NULL;

    conf = rd_kafka_conf_new();
    if ((rc = ksafe__client_conf(&v, conf, err)) ||
        (rc = ksafe__producer_conf(opts, conf, err)) ||
        (rc = ksafe__client_conf_raw(&p->cl, &v, conf, err))) {
        rd_kafka_conf_destroy(conf);
        producer_destroy(p);
        return rc;
    }
    rd_kafka_conf_set_dr_msg_cb(conf, ksafe__producer_dr_cb);
    /* Kept so that recover can build an identical instance. */
    p->conf = rd_kafka_conf_dup(conf);
    if ((rc = ksafe__client_start(&p->cl, conf, err))) {
        producer_destroy(p);
        return rc;
    }
    *out = p;
    return 0;
}

/* ---- sending ----------------------------------------------------------- */

/*
 * The common case of ksafe__topic_check() without strspn(), whose general
 * set search cost more per record than librdkafka's whole send: 1 when the
 * name is certainly legal; 0 sends it to the full check, which explains.
 */
static int topic_legal(const char *t)
{
    static const unsigned char legal[256] = {
        ['.'] = 1, ['_'] = 1, ['-'] = 1,
        ['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1,
        ['5'] = 1, ['6'] = 1, ['7'] = 1, ['8'] = 1, ['9'] = 1,
        ['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1,
        ['g'] = 1, ['h'] = 1, ['i'] = 1, ['j'] = 1, ['k'] = 1, ['l'] = 1,
        ['m'] = 1, ['n'] = 1, ['o'] = 1, ['p'] = 1, ['q'] = 1, ['r'] = 1,
        ['s'] = 1, ['t'] = 1, ['u'] = 1, ['v'] = 1, ['w'] = 1, ['x'] = 1,
        ['y'] = 1, ['z'] = 1,
        ['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1, ['F'] = 1,
        ['G'] = 1, ['H'] = 1, ['I'] = 1, ['J'] = 1, ['K'] = 1, ['L'] = 1,
        ['M'] = 1, ['N'] = 1, ['O'] = 1, ['P'] = 1, ['Q'] = 1, ['R'] = 1,
        ['S'] = 1, ['T'] = 1, ['U'] = 1, ['V'] = 1, ['W'] = 1, ['X'] = 1,
        ['Y'] = 1, ['Z'] = 1};
    size_t n = 0;

    while (legal[(unsigned char)t[n]]) /* '\0' is not legal */
        n++;
    if (t[n] || n > KSAFE__TOPIC_MAX)
        return 0;
    return !(t[0] == '.' && (n == 1 || (n == 2 && t[1] == '.')));
}

static int check_record(const ksafe_producer *p, const ksafe_record *r,
                        ksafe_error *err)
{
    size_t i;

    if (!p || !r)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "producer and record are required");
    if (!r->topic || !*r->topic)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "record.topic is required");
    if (!topic_legal(r->topic) &&
        ksafe__topic_check(r->topic, "record.topic", err))
        return KSAFE_EINVAL;
    if (r->partition < KSAFE_PARTITION_ANY)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "record.partition is %d: use a partition "
                                "number or KSAFE_PARTITION_ANY",
                                (int)r->partition);
    if (r->header_count && !r->headers)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "record.header_count is %zu but headers is "
                                "NULL",
                                r->header_count);
    for (i = 0; i < r->header_count; i++)
        if (!r->headers[i].name || !*r->headers[i].name)
            return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                    "record.headers[%zu].name is empty", i);
    if (r->key_len && !r->key)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "record.key_len is %zu but key is NULL",
                                r->key_len);
    if (r->value_len && !r->value)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "record.value_len is %zu but value is NULL",
                                r->value_len);
    if (r->timestamp_ms < 0)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "record.timestamp_ms is %lld: use 0 for now",
                                (long long)r->timestamp_ms);
    if (atomic_load(&p->closed))
        return ksafe__error_set(err, KSAFE_ESTATE, 0, 0,
                                "the producer is closed");
    if (p->transactional && !atomic_load(&p->txn_open))
        return ksafe__error_set(err, KSAFE_ESTATE, 0, 0,
                                "the producer is transactional: call "
                                "ksafe_txn_begin() before sending");
    return 0;
}

static rd_kafka_headers_t *headers_from(const ksafe_record *r)
{
    rd_kafka_headers_t *h;
    size_t i;

    if (!r->header_count)
        return NULL;
    h = rd_kafka_headers_new(r->header_count);
    for (i = 0; i < r->header_count; i++)
        rd_kafka_header_add(h, r->headers[i].name, -1, r->headers[i].value,
                            (ssize_t)r->headers[i].value_len);
    return h;
}

/*
 * Hands one record to librdkafka, copying it, applying the queue-full
 * policy. `hdrs` is taken on success and destroyed on failure; `w` is
 * librdkafka's from success on (freed by the report), the caller's on
 * failure; NULL `w` sends the sequence number as the opaque (see
 * ksafe__msg).
 */
int ksafe__producer_produce(ksafe_producer *p, const char *topic,
                            int32_t partition, const void *key,
                            size_t key_len, const void *value,
                            size_t value_len, rd_kafka_headers_t *hdrs,
                            int64_t timestamp_ms, ksafe__msg *w,
                            ksafe_error *err)
{
    rd_kafka_resp_err_t rerr;
    int64_t deadline = 0;
    uint64_t seq = atomic_fetch_add(&p->next_seq, 1);
    void *opaque = w ? (void *)w : (void *)(uintptr_t)((seq << 1) | 1);

    if (w)
        w->seq = seq;
    for (;;) {
        rd_kafka_vu_t vu[9];
        rd_kafka_error_t *e;
        size_t n = 0;

        vu[n].vtype = RD_KAFKA_VTYPE_TOPIC;
        vu[n++].u.cstr = topic;
        vu[n].vtype = RD_KAFKA_VTYPE_PARTITION;
        vu[n++].u.i32 = partition;
        vu[n].vtype = RD_KAFKA_VTYPE_MSGFLAGS;
        vu[n++].u.i = RD_KAFKA_MSG_F_COPY;
        vu[n].vtype = RD_KAFKA_VTYPE_KEY;
        vu[n].u.mem.ptr = (void *)key;
        vu[n++].u.mem.size = key_len;
        vu[n].vtype = RD_KAFKA_VTYPE_VALUE;
        vu[n].u.mem.ptr = (void *)value;
        vu[n++].u.mem.size = value_len;
        vu[n].vtype = RD_KAFKA_VTYPE_TIMESTAMP;
        vu[n++].u.i64 = timestamp_ms;
        vu[n].vtype = RD_KAFKA_VTYPE_OPAQUE;
        vu[n++].u.ptr = opaque;
        if (hdrs) {
            vu[n].vtype = RD_KAFKA_VTYPE_HEADERS;
            vu[n++].u.headers = hdrs;
        }
        /* Counted (by next_seq above) before the record can be reported:
         * another thread may serve its report before produceva returns. */
        if (p->transactional)
            atomic_fetch_add(&p->txn_records, 1);
        e = rd_kafka_produceva(p->cl.rk, vu, n);
        if (!e)
            return 0;
        if (p->transactional)
            atomic_fetch_sub(&p->txn_records, 1);
        rerr = rd_kafka_error_code(e);
        /* After a fatal error produce fails with the original code. */
        if (rd_kafka_error_is_fatal(e) ||
            ksafe__producer_is_fatal(p->cl.rk))
            rerr = RD_KAFKA_RESP_ERR__FATAL;
        rd_kafka_error_destroy(e);
        if (rerr == RD_KAFKA_RESP_ERR__QUEUE_FULL &&
            p->queue_full == KSAFE_QUEUE_FULL_BLOCK) {
            int64_t now = ksafe__now_ms();
            if (!deadline)
                deadline = now + p->queue_full_timeout_ms;
            if (now < deadline) {
                /* Serving reports is what frees room in the queue. */
                rd_kafka_poll(p->cl.rk, 10);
                continue;
            }
        }
        break;
    }
    atomic_fetch_add(&p->done, 1); /* refused: librdkafka does not hold it */
    if (hdrs)
        rd_kafka_headers_destroy(hdrs);
    if (rerr == RD_KAFKA_RESP_ERR__FATAL)
        return ksafe__producer_fatal_error(p, err);
    if (rerr == RD_KAFKA_RESP_ERR__QUEUE_FULL)
        return ksafe__error_set(
            err, KSAFE_EQUEUEFULL, rerr, KSAFE_ERROR_RETRIABLE,
            "send to %s: the local queue is full%s (serve reports with "
            "ksafe_producer_poll() and retry)",
            topic,
            p->queue_full == KSAFE_QUEUE_FULL_BLOCK ? " after waiting" : "");
    if (rerr == RD_KAFKA_RESP_ERR__STATE && p->transactional)
        return ksafe__error_set(err, KSAFE_ESTATE, rerr, 0,
                                "send to %s: no transaction is open (%s)",
                                topic, rd_kafka_err2str(rerr));
    return ksafe__error_set(err,
                            rerr == RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION ||
                                    rerr == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC
                                ? KSAFE_EINVAL
                                : KSAFE_EKAFKA,
                            rerr, 0, "send to %s [%d]: %s (%s)", topic,
                            (int)partition, rd_kafka_err2str(rerr),
                            rd_kafka_err2name(rerr));
}

int ksafe_producer_send(ksafe_producer *p, const ksafe_record *r,
                        ksafe_error *err)
{
    ksafe__msg *w;
    int rc;

    if ((rc = check_record(p, r, err)))
        return rc;
    if (KSAFE__MSG_TAGGABLE(r->opaque))
        w = NULL;
    else if (!(w = ksafe__msg_get(p->pool)))
        return ksafe__error_set(err, KSAFE_ENOMEM, 0, 0, "out of memory");
    else
        w->user_opaque = r->opaque;
    rc = ksafe__producer_produce(p, r->topic, r->partition, r->key,
                                 r->key_len, r->value, r->value_len,
                                 headers_from(r), r->timestamp_ms, w, err);
    if (rc) {
        ksafe__msg_put(p->pool, w);
        return rc;
    }
    /* Serve reports that are ready without waiting: applications that never
     * poll still get their callbacks, on this thread. */
    rd_kafka_poll(p->cl.rk, 0);
    return 0;
}

int ksafe_producer_send_sync(ksafe_producer *p, const ksafe_record *r,
                             int timeout_ms, ksafe_record_metadata *out_meta,
                             ksafe_error *err)
{
    ksafe__sync *s;
    ksafe__msg *w;
    int64_t deadline;
    int rc, expected, wait_ms;

    if (out_meta) {
        out_meta->partition = -1;
        out_meta->offset = -1;
        out_meta->timestamp_ms = -1;
    }
    if ((rc = check_record(p, r, err)))
        return rc;
    s = calloc(1, sizeof(*s));
    w = ksafe__msg_get(p->pool);
    if (!s || !w) {
        free(s);
        ksafe__msg_put(p->pool, w);
        return ksafe__error_set(err, KSAFE_ENOMEM, 0, 0, "out of memory");
    }
    atomic_init(&s->state, KSAFE__SYNC_WAITING);
    w->user_opaque = r->opaque;
    w->sync = s;
    /* librdkafka fails every record within delivery.timeout.ms; the margin
     * covers its once-a-second timeout scan. */
    deadline = ksafe__now_ms() +
               (timeout_ms >= 0 ? timeout_ms : p->delivery_timeout_ms + 5000);
    rc = ksafe__producer_produce(p, r->topic, r->partition, r->key,
                                 r->key_len, r->value, r->value_len,
                                 headers_from(r), r->timestamp_ms, w, err);
    if (rc) {
        ksafe__msg_put(p->pool, w);
        free(s);
        return rc;
    }
    wait_ms = (int)(deadline - ksafe__now_ms());
    while (atomic_load(&s->state) != KSAFE__SYNC_DONE) {
        int64_t left = deadline - ksafe__now_ms();
        if (left <= 0)
            break;
        /* Another thread may serve our report: wake up now and then. */
        rd_kafka_poll(p->cl.rk, left < 100 ? (int)left : 100);
    }
    expected = KSAFE__SYNC_WAITING;
    if (atomic_compare_exchange_strong(&s->state, &expected,
                                       KSAFE__SYNC_ABANDONED))
        return ksafe__error_set(err, KSAFE_ETIMEDOUT, 0,
                                KSAFE_ERROR_RETRIABLE,
                                "send_sync to %s: no acknowledgement within "
                                "%d ms; the record may still be delivered",
                                r->topic, wait_ms);
    if (!s->err) {
        if (out_meta)
            *out_meta = s->meta;
        rc = 0;
    } else if (s->fatal) {
        rc = ksafe__producer_fatal_error(p, err);
    } else {
        rc = ksafe__error_set(
            err,
            s->err == RD_KAFKA_RESP_ERR__MSG_TIMED_OUT ? KSAFE_ETIMEDOUT
                                                       : KSAFE_EKAFKA,
            s->err, 0, "send_sync to %s: delivery failed: %s (%s)%s",
            r->topic, rd_kafka_err2str(s->err), rd_kafka_err2name(s->err),
            s->possibly_delivered ? "; the broker may have written it" : "");
    }
    free(s);
    return rc;
}

int ksafe_producer_poll(ksafe_producer *p, int timeout_ms)
{
    return p ? rd_kafka_poll(p->cl.rk, timeout_ms) : 0;
}

int ksafe_producer_flush(ksafe_producer *p, int timeout_ms, ksafe_error *err)
{
    rd_kafka_resp_err_t rerr;
    uint64_t n;

    if (!p)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0, "producer is NULL");
    rerr = rd_kafka_flush(p->cl.rk, timeout_ms);
    if (ksafe__producer_is_fatal(p->cl.rk)) {
        ksafe__producer_serve(p);
        return ksafe__producer_fatal_error(p, err);
    }
    /* Without a callback flush is where failures surface (each was logged
     * when it happened); with one, the callback already had each. */
    if ((n = atomic_exchange(&p->unreported, 0)) > 0)
        return ksafe__error_set(
            err, KSAFE_EUNDELIVERED, 0, 0,
            "flush: %llu records failed since the last flush (each was "
            "logged at error level: no delivery callback is set)%s",
            (unsigned long long)n,
            rerr == RD_KAFKA_RESP_ERR__TIMED_OUT
                ? "; more are still in flight"
                : "");
    if (rerr == RD_KAFKA_RESP_ERR__TIMED_OUT)
        return ksafe__error_set(err, KSAFE_ETIMEDOUT, rerr,
                                KSAFE_ERROR_RETRIABLE,
                                "flush: %d records still in flight after "
                                "%d ms",
                                rd_kafka_outq_len(p->cl.rk), timeout_ms);
    if (rerr)
        return ksafe__error_from_resp(err, rerr, "flush");
    return 0;
}

void ksafe_producer_free(ksafe_producer *p)
{
    if (!p)
        return;
    ksafe_producer_close(p, NULL);
    producer_destroy(p);
}

rd_kafka_t *ksafe_producer_rdkafka(ksafe_producer *p)
{
    return p ? p->cl.rk : NULL;
}
