/*
 * lib/producer.c - the safe producer: preset, creation, async and sync
 * sends, flush, close, and recovery from fatal errors.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

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

/*
 * Raw properties the producer's own machinery depends on. The general guard
 * (client.c) lets allow_unsafe through; these it must not: transactions
 * need idempotence and acks=all, and a transactional.id set behind the
 * typed field would leave ksafe's transaction state blind.
 */
static int check_raw_properties(const ksafe_producer_options *o,
                                ksafe_error *err)
{
    const char *const *kv;

    for (kv = o->rdkafka_properties; kv && kv[0] && kv[1]; kv += 2) {
        const char *k = kv[0], *v = kv[1];

        if (strcmp(k, "transactional.id") == 0)
            return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                    "rdkafka property transactional.id: use "
                                    "the transactional_id field");
        if (!o->transactional_id)
            continue;
        if (strcmp(k, "enable.idempotence") == 0 &&
            strcasecmp(v, "true") != 0 && strcmp(v, "1") != 0 &&
            strcasecmp(v, "t") != 0)
            return ksafe__error_set(
                err, KSAFE_EUNSAFE, 0, 0,
                "refused rdkafka property %s=%s: a transactional producer "
                "(transactional_id is set) needs idempotence; allow_unsafe "
                "does not apply",
                k, v);
        if ((strcmp(k, "acks") == 0 ||
             strcmp(k, "request.required.acks") == 0) &&
            strcasecmp(v, "all") != 0 && strcmp(v, "-1") != 0)
            return ksafe__error_set(
                err, KSAFE_EUNSAFE, 0, 0,
                "refused rdkafka property %s=%s: a transactional producer "
                "(transactional_id is set) needs acks=all; allow_unsafe "
                "does not apply",
                k, v);
    }
    return 0;
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
    if ((rc = ksafe__check_range(err, "max_in_flight", opts->max_in_flight, 1, 5)))
        return rc == KSAFE_EINVAL && opts->max_in_flight > 5
                   ? ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                      "max_in_flight is %d: the idempotent "
                                      "producer keeps order with at most 5 "
                                      "requests in flight",
                                      opts->max_in_flight)
                   : rc;
    if ((rc = ksafe__check_range(err, "delivery_timeout_ms", opts->delivery_timeout_ms,
                          1, 2147483647)))
        return rc;
    if ((rc = ksafe__check_range(err, "linger_ms", opts->linger_ms, 0, 900000)))
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
    if ((rc = ksafe__check_range(err, "queue_full_timeout_ms",
                          opts->queue_full_timeout_ms, 0, 2147483647)))
        return rc;
    if ((unsigned)opts->partitioner > KSAFE_PARTITIONER_FNV1A_RANDOM)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "partitioner %d is not a ksafe_partitioner "
                                "value",
                                (int)opts->partitioner);
    if ((rc = check_raw_properties(opts, err)))
        return rc;
    if (opts->transactional_id) {
        if (!*opts->transactional_id)
            return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                    "transactional_id is empty: use NULL for "
                                    "a producer without transactions");
        if ((rc = ksafe__check_range(err, "transaction_timeout_ms",
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
static const char *const partitioner_names[] = {
    "consistent_random", "murmur2_random", "fnv1a_random"};

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
        {"partitioner", partitioner_names[o->partitioner]},
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

static void producer_destroy(ksafe_producer *p)
{
    ksafe__client_release(&p->cl);
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
        opts = &producer_preset;
    if ((rc = ksafe_producer_options_validate(opts, err)))
        return rc;
    KSAFE__CLIENT_VIEW(v, opts);
    if (!(p = calloc(1, sizeof(*p))))
        return ksafe__error_set(err, KSAFE_ENOMEM, 0, 0, "out of memory");
    pthread_mutex_init(&p->lock, NULL);
    p->rescued_tail = &p->rescued;
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
        (rc = producer_conf(opts, conf, err)) ||
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

/* ---- delivery reports -------------------------------------------------- */

static int is_fatal(rd_kafka_t *rk)
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

static void rescued_free(ksafe__rescued *r)
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
        rescued_free(r);
        return 0;
    }
    pthread_mutex_lock(&p->lock);
    *p->rescued_tail = r;
    p->rescued_tail = &r->next;
    p->n_rescued++;
    pthread_mutex_unlock(&p->lock);
    return 1;
}

static void finish_sync(ksafe__sync *s, const rd_kafka_message_t *m,
                        int fatal)
{
    rd_kafka_timestamp_type_t tstype;
    int expected = KSAFE__SYNC_WAITING;

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
    ksafe__msg *w = m->_private;
    void *user_opaque = w ? w->user_opaque : NULL;
    uint64_t seq = w ? w->seq : 0;
    int fatal = m->err && is_fatal(rk);
    ksafe_delivery d;
    ksafe_error e;

    if (w && w->sync) {
        finish_sync(w->sync, m, fatal);
        free(w);
        return;
    }
    free(w);
    /* After a fatal error an unacknowledged record is held for recover
     * instead of being reported: its bytes are only available now. */
    if (fatal && !atomic_load(&p->closed) && rescue(p, m, user_opaque, seq))
        return;
    if (m->err)
        atomic_fetch_add(&p->failed, 1);
    else
        atomic_fetch_add(&p->delivered, 1);
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
    d.opaque = user_opaque;
    if (m->err) {
        if (fatal)
            ksafe__producer_fatal_error(p, &e);
        else
            ksafe__error_from_resp(&e, m->err, "delivery failed");
        d.error = &e;
        d.possibly_delivered =
            rd_kafka_message_status(m) != RD_KAFKA_MSG_STATUS_NOT_PERSISTED;
    }
    p->on_delivery(&d, p->delivery_payload);
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

/* ---- sending ----------------------------------------------------------- */

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
 * failure.
 */
static int produce(ksafe_producer *p, const char *topic, int32_t partition,
                   const void *key, size_t key_len, const void *value,
                   size_t value_len, rd_kafka_headers_t *hdrs,
                   int64_t timestamp_ms, ksafe__msg *w, ksafe_error *err)
{
    rd_kafka_resp_err_t rerr;
    int64_t deadline = 0;

    w->seq = atomic_fetch_add(&p->next_seq, 1);
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
        vu[n++].u.ptr = w;
        if (hdrs) {
            vu[n].vtype = RD_KAFKA_VTYPE_HEADERS;
            vu[n++].u.headers = hdrs;
        }
        e = rd_kafka_produceva(p->cl.rk, vu, n);
        if (!e)
            return 0;
        rerr = rd_kafka_error_code(e);
        /* After a fatal error produce fails with the original code. */
        if (rd_kafka_error_is_fatal(e) || is_fatal(p->cl.rk))
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
    if (!(w = calloc(1, sizeof(*w))))
        return ksafe__error_set(err, KSAFE_ENOMEM, 0, 0, "out of memory");
    w->user_opaque = r->opaque;
    rc = produce(p, r->topic, r->partition, r->key, r->key_len, r->value,
                 r->value_len, headers_from(r), r->timestamp_ms, w, err);
    if (rc) {
        free(w);
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
    w = calloc(1, sizeof(*w));
    if (!s || !w) {
        free(s);
        free(w);
        return ksafe__error_set(err, KSAFE_ENOMEM, 0, 0, "out of memory");
    }
    atomic_init(&s->state, KSAFE__SYNC_WAITING);
    w->user_opaque = r->opaque;
    w->sync = s;
    /* librdkafka fails every record within delivery.timeout.ms; the margin
     * covers its once-a-second timeout scan. */
    deadline = ksafe__now_ms() +
               (timeout_ms >= 0 ? timeout_ms : p->delivery_timeout_ms + 5000);
    rc = produce(p, r->topic, r->partition, r->key, r->key_len, r->value,
                 r->value_len, headers_from(r), r->timestamp_ms, w, err);
    if (rc) {
        free(w);
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

    if (!p)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0, "producer is NULL");
    rerr = rd_kafka_flush(p->cl.rk, timeout_ms);
    if (is_fatal(p->cl.rk)) {
        ksafe__producer_serve(p);
        return ksafe__producer_fatal_error(p, err);
    }
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

/* ---- close ------------------------------------------------------------- */

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
static ksafe__rescued *take_rescued(ksafe_producer *p, size_t *n)
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
static void report_rescued(ksafe_producer *p, ksafe__rescued *r,
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
    }
    rescued_free(r);
}

int ksafe_producer_close_timeout(ksafe_producer *p, int timeout_ms,
                                 ksafe_error *err)
{
    uint64_t failed_before;
    ksafe__rescued *r;
    ksafe_error fatal_err, txn_err;
    int fatal, txn_aborted = 0;
    size_t n;

    if (!p)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0, "producer is NULL");
    if (timeout_ms < 0)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "close timeout_ms is %d: it must be >= 0",
                                timeout_ms);
    if (atomic_exchange(&p->closed, 1))
        return 0;
    memset(&fatal_err, 0, sizeof(fatal_err));
    failed_before = atomic_load(&p->failed);
    fatal = is_fatal(p->cl.rk);
    if (!fatal && p->transactional && atomic_load(&p->txn_open)) {
        /* Uncommitted records would never become visible: say so. */
        ksafe__txn_abort_for_close(p, timeout_ms, &txn_err);
        txn_aborted = 1;
    }
    rd_kafka_flush(p->cl.rk, timeout_ms);
    if (rd_kafka_outq_len(p->cl.rk) > 0) {
        /* Still queued at the deadline: purge so each record gets a failed
         * report, never a silent drop. */
        rd_kafka_purge(p->cl.rk,
                       RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
        rd_kafka_flush(p->cl.rk, 5000);
    }
    ksafe__producer_serve(p);
    fatal = is_fatal(p->cl.rk);
    if (fatal)
        ksafe__producer_fatal_error(p, &fatal_err);
    for (r = take_rescued(p, &n); r;) {
        ksafe__rescued *next = r->next;
        report_rescued(p, r, &fatal_err);
        r = next;
    }
    n = (size_t)(atomic_load(&p->failed) - failed_before);
    if (!n)
        return 0;
    return ksafe__error_set(
        err, KSAFE_EUNDELIVERED, 0, fatal ? KSAFE_ERROR_FATAL : 0,
        "close: %zu records were not delivered and were reported failed%s%s",
        n, txn_aborted ? " (the open transaction was aborted)" : "",
        fatal ? " (after a fatal producer error)" : "");
}

int ksafe_producer_close(ksafe_producer *p, ksafe_error *err)
{
    if (!p)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0, "producer is NULL");
    return ksafe_producer_close_timeout(p, p->delivery_timeout_ms + 1000, err);
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

int ksafe_producer_recover(ksafe_producer *p, ksafe_recover_mode mode,
                           ksafe_handback_cb on_handback, void *payload,
                           size_t *out_count, ksafe_error *err)
{
    rd_kafka_t *dead;
    ksafe__rescued *r;
    ksafe_error fatal_err;
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
    if (!is_fatal(p->cl.rk))
        return ksafe__error_set(err, KSAFE_ESTATE, 0, 0,
                                "recover: the producer has had no fatal "
                                "error");
    ksafe__producer_fatal_error(p, &fatal_err);

    /* Make the dead instance give back everything it still holds; the
     * reports land in the held list (or with their sync senders). */
    dead = p->cl.rk;
    rd_kafka_purge(dead, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    {
        int64_t deadline = ksafe__now_ms() + 10000;
        while (rd_kafka_outq_len(dead) > 0 && ksafe__now_ms() < deadline)
            rd_kafka_poll(dead, 50);
        rd_kafka_poll(dead, 0);
    }

    p->cl.rk = NULL;
    if ((rc = ksafe__client_start(&p->cl, rd_kafka_conf_dup(p->conf), err))) {
        p->cl.rk = dead;
        return rc;
    }
    rd_kafka_destroy(dead);
    p->txn_initialised = 0;
    atomic_store(&p->txn_open, 0);

    for (r = take_rescued(p, &n); r;) {
        ksafe__rescued *next = r->next;
        ksafe_record rec;
        ksafe_header *hv;
        ksafe_error e;

        if (mode == KSAFE_RECOVER_HAND_BACK) {
            if (record_of(r, &rec, &hv) == 0) {
                on_handback(&rec, &fatal_err, r->possibly_delivered,
                            payload);
                rescued_free(r);
            } else {
                ksafe__error_set(&e, KSAFE_ENOMEM, 0, 0,
                                 "recover: out of memory handing back");
                report_rescued(p, r, &e);
            }
            free(hv);
        } else {
            ksafe__msg *w = calloc(1, sizeof(*w));
            rd_kafka_headers_t *h = r->headers;

            r->headers = NULL; /* produce() takes or destroys it */
            if (!w) {
                if (h)
                    rd_kafka_headers_destroy(h);
                ksafe__error_set(&e, KSAFE_ENOMEM, 0, 0,
                                 "recover: out of memory re-sending");
                report_rescued(p, r, &e);
            } else {
                w->user_opaque = r->opaque;
                /* A record that cannot be queued again is reported failed
                 * with the reason: accounted for, not dropped. */
                if (produce(p, r->topic, r->partition,
                            r->has_key ? r->key : NULL, r->key_len,
                            r->has_value ? r->value : NULL, r->value_len, h,
                            r->timestamp_ms, w, &e)) {
                    free(w);
                    report_rescued(p, r, &e);
                } else {
                    rescued_free(r);
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
