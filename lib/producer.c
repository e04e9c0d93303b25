/*
 * lib/producer.c - the safe producer: preset, creation, send, flush, close.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "producer_internal.h"

static const ksafe_producer_options producer_preset =
    KSAFE_PRODUCER_OPTIONS_INIT;

int ksafe_producer_options_init(ksafe_producer_options *opts,
                                unsigned int version)
{
    if (!opts)
        return KSAFE_EINVAL;
    if (version != KSAFE_PRODUCER_OPTIONS_VERSION)
        return KSAFE_EVERSION;
    *opts = producer_preset;
    return 0;
}

static int check_range(ksafe_error *err, const char *field, long long value,
                       long long lo, long long hi)
{
    if (value >= lo && value <= hi)
        return 0;
    return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                            "%s is %lld, outside %lld..%lld", field, value,
                            lo, hi);
}

int ksafe_producer_options_validate(const ksafe_producer_options *opts,
                                    ksafe_error *err)
{
    ksafe__client_view v;
    int rc;

    if (!opts)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "producer options are NULL");
    if (opts->version != KSAFE_PRODUCER_OPTIONS_VERSION)
        return ksafe__error_set(err, KSAFE_EVERSION, 0, 0,
                                "ksafe_producer_options.version is %u; this "
                                "library knows version %d (initialise with "
                                "KSAFE_PRODUCER_OPTIONS_INIT)",
                                opts->version, KSAFE_PRODUCER_OPTIONS_VERSION);
    KSAFE__CLIENT_VIEW(v, opts);
    if ((rc = ksafe__client_validate(&v, err)))
        return rc;
    if ((rc = check_range(err, "max_in_flight", opts->max_in_flight, 1, 5)))
        return rc == KSAFE_EINVAL && opts->max_in_flight > 5
                   ? ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                      "max_in_flight is %d: the idempotent "
                                      "producer keeps order with at most 5 "
                                      "requests in flight",
                                      opts->max_in_flight)
                   : rc;
    if ((rc = check_range(err, "delivery_timeout_ms", opts->delivery_timeout_ms,
                          1, 2147483647)))
        return rc;
    if ((rc = check_range(err, "linger_ms", opts->linger_ms, 0, 900000)))
        return rc;
    if ((unsigned)opts->compression > KSAFE_COMPRESSION_ZSTD)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "compression %d is not a ksafe_compression "
                                "value",
                                (int)opts->compression);
    if ((unsigned)opts->queue_full > KSAFE_QUEUE_FULL_RETURN)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "queue_full %d is not a "
                                "ksafe_queue_full_policy value",
                                (int)opts->queue_full);
    if ((rc = check_range(err, "queue_full_timeout_ms",
                          opts->queue_full_timeout_ms, 0, 2147483647)))
        return rc;
    if (opts->transactional_id) {
        if (!*opts->transactional_id)
            return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                    "transactional_id is empty: use NULL for "
                                    "a producer without transactions");
        if ((rc = check_range(err, "transaction_timeout_ms",
                              opts->transaction_timeout_ms, 1000,
                              2147483647)))
            return rc;
        if (opts->delivery_timeout_ms > opts->transaction_timeout_ms)
            return ksafe__error_set(
                err, KSAFE_EINVAL, 0, 0,
                "delivery_timeout_ms (%d) exceeds transaction_timeout_ms "
                "(%d): a record could outlive its transaction",
                opts->delivery_timeout_ms, opts->transaction_timeout_ms);
    }
    return 0;
}

static const char *const compression_names[] = {"none", "gzip", "snappy",
                                                 "lz4", "zstd"};

/* The safe preset's fixed properties, then the typed ones. */
static int producer_conf(const ksafe_producer_options *o,
                         rd_kafka_conf_t *conf, ksafe_error *err)
{
    char inflight[16], delivery[16], linger[16], txn_timeout[16];
    struct {
        const char *key, *value;
    } set[] = {
        {"acks", "all"},
        {"enable.idempotence", "true"},
        {"max.in.flight.requests.per.connection", inflight},
        {"delivery.timeout.ms", delivery},
        {"linger.ms", linger},
        {"compression.type", compression_names[o->compression]},
        {"transactional.id", o->transactional_id},
        {"transaction.timeout.ms", o->transactional_id ? txn_timeout : NULL},
    };
    size_t i;
    int rc;

    snprintf(inflight, sizeof(inflight), "%d", o->max_in_flight);
    snprintf(delivery, sizeof(delivery), "%d", o->delivery_timeout_ms);
    snprintf(linger, sizeof(linger), "%d", o->linger_ms);
    snprintf(txn_timeout, sizeof(txn_timeout), "%d",
             o->transaction_timeout_ms);
    for (i = 0; i < sizeof(set) / sizeof(set[0]); i++)
        if (set[i].value &&
            (rc = ksafe__conf_set(conf, set[i].key, set[i].value, err)))
            return rc;
    return 0;
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
        opts = &producer_preset;
    if ((rc = ksafe_producer_options_validate(opts, err)))
        return rc;
    KSAFE__CLIENT_VIEW(v, opts);
    if (!(p = calloc(1, sizeof(*p))))
        return ksafe__error_set(err, KSAFE_ENOMEM, 0, 0, "out of memory");
    if ((rc = ksafe__client_init(&p->cl, KSAFE__PRODUCER, &v, err))) {
        ksafe__client_release(&p->cl);
        free(p);
        return rc;
    }
    p->on_delivery = opts->on_delivery;
    p->delivery_payload = opts->delivery_payload;
    p->queue_full = opts->queue_full;
    p->queue_full_timeout_ms = opts->queue_full_timeout_ms;
    p->delivery_timeout_ms = opts->delivery_timeout_ms;
    p->transactional = opts->transactional_id != NULL;

    conf = rd_kafka_conf_new();
    if ((rc = ksafe__client_conf(&v, conf, err)) ||
        (rc = producer_conf(opts, conf, err)) ||
        (rc = ksafe__client_conf_raw(&p->cl, &v, conf, err))) {
        rd_kafka_conf_destroy(conf);
        ksafe__client_release(&p->cl);
        free(p);
        return rc;
    }
    rd_kafka_conf_set_dr_msg_cb(conf, ksafe__producer_dr_cb);
    if ((rc = ksafe__client_start(&p->cl, conf, err))) {
        ksafe__client_release(&p->cl);
        free(p);
        return rc;
    }
    *out = p;
    return 0;
}

void ksafe__producer_dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m,
                           void *opaque)
{
    ksafe_producer *p = opaque;
    ksafe_delivery d;
    ksafe_error e;

    KSAFE__UNUSED(rk);
    if (m->err)
        p->failed++;
    else
        p->delivered++;
    if (!p->on_delivery)
        return;
    memset(&d, 0, sizeof(d));
    d.topic = m->rkt ? rd_kafka_topic_name(m->rkt) : NULL;
    d.partition = m->partition;
    d.offset = m->err ? -1 : m->offset;
    d.key = m->key;
    d.key_len = m->key_len;
    d.value = m->payload;
    d.value_len = m->len;
    d.opaque = m->_private;
    if (m->err) {
        ksafe__error_from_resp(&e, m->err, "delivery failed");
        d.error = &e;
    }
    p->on_delivery(&d, p->delivery_payload);
}

int ksafe_producer_send(ksafe_producer *p, const ksafe_record *r,
                        ksafe_error *err)
{
    rd_kafka_headers_t *hdrs = NULL;
    rd_kafka_resp_err_t rerr;
    int64_t deadline = 0;
    size_t i;

    if (!p || !r)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "producer and record are required");
    if (!r->topic || !*r->topic)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "record.topic is required");
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
    if (p->closed)
        return ksafe__error_set(err, KSAFE_ESTATE, 0, 0,
                                "the producer is closed");
    for (;;) {
        if (r->header_count) {
            hdrs = rd_kafka_headers_new(r->header_count);
            for (i = 0; i < r->header_count; i++) {
                if (!r->headers[i].name) {
                    rd_kafka_headers_destroy(hdrs);
                    return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                            "record.headers[%zu].name is "
                                            "NULL",
                                            i);
                }
                rd_kafka_header_add(hdrs, r->headers[i].name, -1,
                                    r->headers[i].value,
                                    (ssize_t)r->headers[i].value_len);
            }
        }
        {
            rd_kafka_vu_t vu[9];
            rd_kafka_error_t *e;
            size_t n = 0;

            vu[n].vtype = RD_KAFKA_VTYPE_TOPIC;
            vu[n++].u.cstr = r->topic;
            vu[n].vtype = RD_KAFKA_VTYPE_PARTITION;
            vu[n++].u.i32 = r->partition;
            vu[n].vtype = RD_KAFKA_VTYPE_MSGFLAGS;
            vu[n++].u.i = RD_KAFKA_MSG_F_COPY;
            vu[n].vtype = RD_KAFKA_VTYPE_KEY;
            vu[n].u.mem.ptr = (void *)r->key;
            vu[n++].u.mem.size = r->key_len;
            vu[n].vtype = RD_KAFKA_VTYPE_VALUE;
            vu[n].u.mem.ptr = (void *)r->value;
            vu[n++].u.mem.size = r->value_len;
            vu[n].vtype = RD_KAFKA_VTYPE_TIMESTAMP;
            vu[n++].u.i64 = r->timestamp_ms;
            vu[n].vtype = RD_KAFKA_VTYPE_OPAQUE;
            vu[n++].u.ptr = r->opaque;
            if (hdrs) {
                vu[n].vtype = RD_KAFKA_VTYPE_HEADERS;
                vu[n++].u.headers = hdrs;
            }
            e = rd_kafka_produceva(p->cl.rk, vu, n);
            rerr = e ? rd_kafka_error_code(e) : RD_KAFKA_RESP_ERR_NO_ERROR;
            if (e)
                rd_kafka_error_destroy(e);
        }
        if (!rerr)
            break;
        if (hdrs) /* not taken over on failure */
            rd_kafka_headers_destroy(hdrs);
        hdrs = NULL;
        if (rerr == RD_KAFKA_RESP_ERR__QUEUE_FULL &&
            p->queue_full == KSAFE_QUEUE_FULL_BLOCK) {
            int64_t now = ksafe__now_ms();
            if (!deadline)
                deadline = now + p->queue_full_timeout_ms;
            if (now < deadline) {
                rd_kafka_poll(p->cl.rk, 10);
                continue;
            }
        }
        if (rerr == RD_KAFKA_RESP_ERR__FATAL)
            return ksafe__producer_fatal_error(p, err);
        return ksafe__error_from_resp(err, rerr, "send");
    }
    /* Serve reports that are ready without waiting: applications that never
     * poll still get their callbacks, on this thread. */
    rd_kafka_poll(p->cl.rk, 0);
    return 0;
}

int ksafe__producer_fatal_error(ksafe_producer *p, ksafe_error *err)
{
    char reason[200];
    rd_kafka_resp_err_t code =
        rd_kafka_fatal_error(p->cl.rk, reason, sizeof(reason));

    return ksafe__error_set(err, KSAFE_EFATAL, code, KSAFE_ERROR_FATAL,
                            "fatal producer error: %s (%s)", reason,
                            rd_kafka_err2name(code));
}

int ksafe_producer_poll(ksafe_producer *p, int timeout_ms)
{
    return p ? rd_kafka_poll(p->cl.rk, timeout_ms) : 0;
}

int ksafe_producer_flush(ksafe_producer *p, int timeout_ms, ksafe_error *err)
{
    rd_kafka_resp_err_t rerr;

    if (!p)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0, "producer is NULL");
    rerr = rd_kafka_flush(p->cl.rk, timeout_ms);
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

int ksafe_producer_close(ksafe_producer *p, ksafe_error *err)
{
    int left;

    if (!p)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0, "producer is NULL");
    if (p->closed)
        return 0;
    p->closed = 1;
    rd_kafka_flush(p->cl.rk, p->delivery_timeout_ms);
    left = rd_kafka_outq_len(p->cl.rk);
    if (left <= 0)
        return 0;
    /* Still queued after the delivery timeout: purge so each record gets a
     * failed delivery report, never a silent drop. */
    {
        uint64_t failed_before = p->failed;
        rd_kafka_purge(p->cl.rk,
                       RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
        rd_kafka_flush(p->cl.rk, 5000);
        return ksafe__error_set(err, KSAFE_EUNDELIVERED, 0, 0,
                                "close: %llu records were not delivered and "
                                "were reported failed",
                                (unsigned long long)(p->failed -
                                                     failed_before));
    }
}

void ksafe_producer_free(ksafe_producer *p)
{
    if (!p)
        return;
    ksafe_producer_close(p, NULL);
    ksafe__client_release(&p->cl);
    free(p);
}

rd_kafka_t *ksafe_producer_rdkafka(ksafe_producer *p)
{
    return p ? p->cl.rk : NULL;
}

/* TEMPORARY (replaced by the producer branch). */
int ksafe_producer_send_sync(ksafe_producer *p, const ksafe_record *record,
                             int timeout_ms, ksafe_record_metadata *out_meta,
                             ksafe_error *err)
{
    int rc = ksafe_producer_send(p, record, err);
    KSAFE__UNUSED(out_meta);
    if (rc)
        return rc;
    return ksafe_producer_flush(p, timeout_ms < 0 ? 60000 : timeout_ms, err);
}
