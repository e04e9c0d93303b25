/*
 * lib/consumer.c - the safe consumer: preset, creation, poll, marking,
 * commits, close.
 */
#include <stdlib.h>
#include <string.h>

#include "consumer_internal.h"

static const ksafe_consumer_options consumer_preset =
    KSAFE_CONSUMER_OPTIONS_INIT;

int ksafe_consumer_options_init(ksafe_consumer_options *opts,
                                unsigned int version)
{
    if (!opts)
        return KSAFE_EINVAL;
    if (version != KSAFE_CONSUMER_OPTIONS_VERSION)
        return KSAFE_EVERSION;
    *opts = consumer_preset;
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

int ksafe_consumer_options_validate(const ksafe_consumer_options *o,
                                    ksafe_error *err)
{
    ksafe__client_view v;
    int rc;

    if (!o)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "consumer options are NULL");
    if (o->version != KSAFE_CONSUMER_OPTIONS_VERSION)
        return ksafe__error_set(err, KSAFE_EVERSION, 0, 0,
                                "ksafe_consumer_options.version is %u; this "
                                "library knows version %d (initialise with "
                                "KSAFE_CONSUMER_OPTIONS_INIT)",
                                o->version, KSAFE_CONSUMER_OPTIONS_VERSION);
    KSAFE__CLIENT_VIEW(v, o);
    if ((rc = ksafe__client_validate(&v, err)))
        return rc;
    if (!o->group_id || !*o->group_id)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "group_id is required: offsets are committed "
                                "per consumer group");
    if (o->group_instance_id && !*o->group_instance_id)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "group_instance_id is empty: use NULL for "
                                "dynamic membership");
    if ((unsigned)o->auto_offset_reset > KSAFE_OFFSET_RESET_ERROR)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "auto_offset_reset %d is not a "
                                "ksafe_offset_reset value",
                                (int)o->auto_offset_reset);
    if ((unsigned)o->assignment_strategy > KSAFE_ASSIGN_ROUNDROBIN)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "assignment_strategy %d is not a "
                                "ksafe_assignment_strategy value",
                                (int)o->assignment_strategy);
    if ((rc = check_range(err, "session_timeout_ms", o->session_timeout_ms, 1,
                          3600000)) ||
        (rc = check_range(err, "heartbeat_interval_ms",
                          o->heartbeat_interval_ms, 1, 3600000)) ||
        (rc = check_range(err, "max_poll_interval_ms", o->max_poll_interval_ms,
                          1, 86400000)))
        return rc;
    if ((long long)o->heartbeat_interval_ms * 3 > o->session_timeout_ms)
        return ksafe__error_set(
            err, KSAFE_EINVAL, 0, 0,
            "heartbeat_interval_ms (%d) is above a third of "
            "session_timeout_ms (%d): one late heartbeat would cost the "
            "member its partitions",
            o->heartbeat_interval_ms, o->session_timeout_ms);
    if (o->max_poll_interval_ms < o->session_timeout_ms)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "max_poll_interval_ms (%d) is below "
                                "session_timeout_ms (%d)",
                                o->max_poll_interval_ms,
                                o->session_timeout_ms);
    return 0;
}

static const char *const reset_names[] = {"earliest", "latest", "error"};
static const char *const strategy_names[] = {"cooperative-sticky", "range",
                                             "roundrobin"};

static int consumer_conf(const ksafe_consumer_options *o,
                         rd_kafka_conf_t *conf, ksafe_error *err)
{
    char session[16], heartbeat[16], poll[16];
    struct {
        const char *key, *value;
    } set[] = {
        {"group.id", o->group_id},
        {"group.instance.id", o->group_instance_id},
        {"enable.auto.commit", "false"},
        {"enable.auto.offset.store", "false"},
        {"isolation.level", "read_committed"},
        {"enable.partition.eof", "false"},
        {"partition.assignment.strategy",
         strategy_names[o->assignment_strategy]},
        {"auto.offset.reset", reset_names[o->auto_offset_reset]},
        {"session.timeout.ms", session},
        {"heartbeat.interval.ms", heartbeat},
        {"max.poll.interval.ms", poll},
    };
    size_t i;
    int rc;

    snprintf(session, sizeof(session), "%d", o->session_timeout_ms);
    snprintf(heartbeat, sizeof(heartbeat), "%d", o->heartbeat_interval_ms);
    snprintf(poll, sizeof(poll), "%d", o->max_poll_interval_ms);
    for (i = 0; i < sizeof(set) / sizeof(set[0]); i++)
        if (set[i].value &&
            (rc = ksafe__conf_set(conf, set[i].key, set[i].value, err)))
            return rc;
    return 0;
}

static void consumer_destroy(ksafe_consumer *c)
{
    size_t i;

    ksafe__client_release(&c->cl);
    for (i = 0; i < c->n_pos; i++)
        free(c->pos[i].topic);
    free(c->pos);
    free(c);
}

int ksafe_consumer_new(ksafe_consumer **out, const ksafe_consumer_options *opts,
                       ksafe_error *err)
{
    ksafe__client_view v;
    ksafe_consumer *c;
    rd_kafka_conf_t *conf;
    int rc;

    if (!out)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0, "out is NULL");
    *out = NULL;
    if (!opts)
        opts = &consumer_preset;
    if ((rc = ksafe_consumer_options_validate(opts, err)))
        return rc;
    KSAFE__CLIENT_VIEW(v, opts);
    if (!(c = calloc(1, sizeof(*c))))
        return ksafe__error_set(err, KSAFE_ENOMEM, 0, 0, "out of memory");
    if ((rc = ksafe__client_init(&c->cl, KSAFE__CONSUMER, &v, err))) {
        consumer_destroy(c);
        return rc;
    }
    c->on_assigned = opts->on_assigned;
    c->on_revoked = opts->on_revoked;
    c->on_lost = opts->on_lost;
    c->rebalance_payload = opts->rebalance_payload;

    conf = rd_kafka_conf_new();
    if ((rc = ksafe__client_conf(&v, conf, err)) ||
        (rc = consumer_conf(opts, conf, err)) ||
        (rc = ksafe__client_conf_raw(&c->cl, &v, conf, err))) {
        rd_kafka_conf_destroy(conf);
        consumer_destroy(c);
        return rc;
    }
    rd_kafka_conf_set_rebalance_cb(conf, ksafe__consumer_rebalance_cb);
    if ((rc = ksafe__client_start(&c->cl, conf, err))) {
        consumer_destroy(c);
        return rc;
    }
    /* Route the main queue (errors, logs' events) through poll(). */
    rd_kafka_poll_set_consumer(c->cl.rk);
    *out = c;
    return 0;
}

int ksafe_consumer_subscribe(ksafe_consumer *c, const char *const *topics,
                             size_t count, ksafe_error *err)
{
    rd_kafka_topic_partition_list_t *l;
    rd_kafka_resp_err_t rerr;
    size_t i;

    if (!c || !topics || !count)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "subscribe needs a consumer and at least one "
                                "topic");
    if (c->closed)
        return ksafe__error_set(err, KSAFE_ESTATE, 0, 0,
                                "the consumer is closed");
    for (i = 0; i < count; i++)
        if (!topics[i] || !*topics[i])
            return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                    "topics[%zu] is empty", i);
    l = rd_kafka_topic_partition_list_new((int)count);
    for (i = 0; i < count; i++)
        rd_kafka_topic_partition_list_add(l, topics[i],
                                          RD_KAFKA_PARTITION_UA);
    rerr = rd_kafka_subscribe(c->cl.rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    if (rerr)
        return ksafe__error_from_resp(err, rerr, "subscribe");
    c->subscribed = 1;
    return 0;
}

int ksafe_consumer_poll(ksafe_consumer *c, int timeout_ms, ksafe_message **out,
                        ksafe_error *err)
{
    rd_kafka_message_t *m;

    if (out)
        *out = NULL;
    if (!c || !out)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "poll needs a consumer and an out pointer");
    if (c->closed)
        return ksafe__error_set(err, KSAFE_ESTATE, 0, 0,
                                "the consumer is closed");
    m = rd_kafka_consumer_poll(c->cl.rk, timeout_ms);
    if (!m)
        return 0;
    if (m->err) {
        rd_kafka_resp_err_t code = m->err;
        int rc;

        if (code == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            rd_kafka_message_destroy(m);
            return 0;
        }
        if (code == RD_KAFKA_RESP_ERR__FATAL) {
            char reason[200];
            code = rd_kafka_fatal_error(c->cl.rk, reason, sizeof(reason));
            rc = ksafe__error_set(err, KSAFE_EFATAL, code, KSAFE_ERROR_FATAL,
                                  "fatal consumer error: %s", reason);
        } else {
            rc = ksafe__error_set(
                err, KSAFE_EKAFKA, code, 0, "consumer error%s%s [%d]: %s",
                m->rkt ? " on " : "", m->rkt ? rd_kafka_topic_name(m->rkt) : "",
                (int)m->partition, rd_kafka_message_errstr(m));
        }
        rd_kafka_message_destroy(m);
        return rc;
    }
    *out = (ksafe_message *)m;
    return 0;
}

/* ---- positions --------------------------------------------------------- */

ksafe__position *ksafe__consumer_position(ksafe_consumer *c,
                                          const char *topic,
                                          int32_t partition)
{
    ksafe__position *p;
    size_t i;

    for (i = 0; i < c->n_pos; i++)
        if (c->pos[i].partition == partition &&
            strcmp(c->pos[i].topic, topic) == 0)
            return &c->pos[i];
    if (c->n_pos == c->cap_pos) {
        size_t cap = c->cap_pos ? c->cap_pos * 2 : 16;
        ksafe__position *grown = realloc(c->pos, cap * sizeof(*grown));
        if (!grown)
            return NULL;
        c->pos = grown;
        c->cap_pos = cap;
    }
    p = &c->pos[c->n_pos];
    memset(p, 0, sizeof(*p));
    if (!(p->topic = ksafe__strdup(topic)))
        return NULL;
    p->partition = partition;
    p->marked = -1;
    p->committed = -1;
    c->n_pos++;
    return p;
}

int ksafe_consumer_done(ksafe_consumer *c, const ksafe_message *msg,
                        ksafe_error *err)
{
    const rd_kafka_message_t *m = (const rd_kafka_message_t *)msg;
    ksafe__position *p = NULL;

    if (!c || !m || !m->rkt)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "done needs a consumer and a consumed record");
    /* Fast path: records of one partition tend to come in runs. */
    if (c->last_hit < c->n_pos && c->pos[c->last_hit].rkt == m->rkt &&
        c->pos[c->last_hit].partition == m->partition)
        p = &c->pos[c->last_hit];
    if (!p) {
        p = ksafe__consumer_position(c, rd_kafka_topic_name(m->rkt),
                                     m->partition);
        if (!p)
            return ksafe__error_set(err, KSAFE_ENOMEM, 0, 0,
                                    "out of memory");
        p->rkt = m->rkt;
        c->last_hit = (size_t)(p - c->pos);
    }
    if (m->offset + 1 > p->marked)
        p->marked = m->offset + 1;
    return 0;
}

int ksafe__consumer_commit_marked(ksafe_consumer *c,
                                  const rd_kafka_topic_partition_list_t *only,
                                  int async, ksafe_error *err)
{
    rd_kafka_topic_partition_list_t *l;
    rd_kafka_resp_err_t rerr;
    size_t i;
    int n = 0;

    l = rd_kafka_topic_partition_list_new((int)c->n_pos + 1);
    for (i = 0; i < c->n_pos; i++) {
        ksafe__position *p = &c->pos[i];
        if (p->marked < 0 || p->marked == p->committed)
            continue;
        if (only &&
            !rd_kafka_topic_partition_list_find(only, p->topic, p->partition))
            continue;
        rd_kafka_topic_partition_list_add(l, p->topic, p->partition)->offset =
            p->marked;
        n++;
    }
    if (!n) {
        rd_kafka_topic_partition_list_destroy(l);
        return 0;
    }
    rerr = rd_kafka_commit(c->cl.rk, l, async);
    if (!rerr && !async) {
        /* Per-partition results: only record what the broker accepted. */
        for (i = 0; i < (size_t)l->cnt; i++) {
            ksafe__position *p;
            if (l->elems[i].err) {
                rerr = l->elems[i].err;
                continue;
            }
            p = ksafe__consumer_position(c, l->elems[i].topic,
                                         l->elems[i].partition);
            if (p)
                p->committed = l->elems[i].offset;
        }
    }
    rd_kafka_topic_partition_list_destroy(l);
    if (rerr)
        return ksafe__error_set(err, KSAFE_ECOMMIT, rerr,
                                rerr == RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS
                                    ? KSAFE_ERROR_RETRIABLE
                                    : 0,
                                "commit of %d partition(s) failed: %s", n,
                                rd_kafka_err2str(rerr));
    return 0;
}

int ksafe_consumer_commit(ksafe_consumer *c, ksafe_commit_mode mode,
                          ksafe_error *err)
{
    if (!c)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0, "consumer is NULL");
    if (mode != KSAFE_COMMIT_SYNC && mode != KSAFE_COMMIT_ASYNC)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "commit mode %d is not a ksafe_commit_mode",
                                (int)mode);
    return ksafe__consumer_commit_marked(c, NULL, mode == KSAFE_COMMIT_ASYNC,
                                         err);
}

void ksafe__consumer_forget(ksafe_consumer *c,
                            const rd_kafka_topic_partition_list_t *parts)
{
    size_t i = 0;

    while (i < c->n_pos) {
        if (rd_kafka_topic_partition_list_find(parts, c->pos[i].topic,
                                               c->pos[i].partition)) {
            free(c->pos[i].topic);
            c->pos[i] = c->pos[--c->n_pos];
        } else {
            i++;
        }
    }
    c->last_hit = (size_t)-1;
}

/* ---- rebalance --------------------------------------------------------- */

void ksafe__consumer_rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t rerr,
                                  rd_kafka_topic_partition_list_t *parts,
                                  void *opaque)
{
    ksafe_consumer *c = opaque;
    const char *proto = rd_kafka_rebalance_protocol(rk);
    int cooperative = proto && strcmp(proto, "COOPERATIVE") == 0;
    rd_kafka_error_t *e = NULL;

    c->rebalances++;
    if (rerr == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        if (cooperative)
            e = rd_kafka_incremental_assign(rk, parts);
        else
            rd_kafka_assign(rk, parts);
        if (c->on_assigned)
            c->on_assigned(c, parts, c->rebalance_payload);
    } else {
        int lost = rd_kafka_assignment_lost(rk);
        if (c->loop_on_revoke)
            c->loop_on_revoke(c, parts, lost, c->loop_arg);
        if (lost) {
            if (c->on_lost)
                c->on_lost(c, parts, c->rebalance_payload);
        } else {
            ksafe_error ce;
            if (c->on_revoked)
                c->on_revoked(c, parts, c->rebalance_payload);
            if (ksafe__consumer_commit_marked(c, parts, 0, &ce))
                ksafe__log(&c->cl, KSAFE_LOG_WARNING, "REVOKE",
                           "commit on revoke: %s", ce.message);
        }
        ksafe__consumer_forget(c, parts);
        if (cooperative)
            e = rd_kafka_incremental_unassign(rk, parts);
        else
            rd_kafka_assign(rk, NULL);
    }
    if (e) {
        ksafe__log(&c->cl, KSAFE_LOG_ERR, "REBALANCE", "%s",
                   rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
    }
}

/* ---- close ------------------------------------------------------------- */

int ksafe_consumer_close(ksafe_consumer *c, ksafe_error *err)
{
    ksafe_error ce;
    int rc = 0;

    if (!c)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0, "consumer is NULL");
    if (c->closed)
        return 0;
    c->closed = 1;
    if (ksafe__consumer_commit_marked(c, NULL, 0, &ce)) {
        rc = ksafe__error_set(err, KSAFE_ECOMMIT, ce.rdkafka_code, ce.flags,
                              "close: %s", ce.message);
    }
    rd_kafka_consumer_close(c->cl.rk);
    return rc;
}

void ksafe_consumer_free(ksafe_consumer *c)
{
    if (!c)
        return;
    ksafe_consumer_close(c, NULL);
    consumer_destroy(c);
}

void ksafe_consumer_stop(ksafe_consumer *c)
{
    if (c)
        c->stop_requested = 1;
}

int ksafe_consumer_stop_requested(const ksafe_consumer *c)
{
    return c && c->stop_requested;
}

rd_kafka_t *ksafe_consumer_rdkafka(ksafe_consumer *c)
{
    return c ? c->cl.rk : NULL;
}

/* ---- messages ---------------------------------------------------------- */

#define RK(m) ((const rd_kafka_message_t *)(m))

const char *ksafe_message_topic(const ksafe_message *m)
{
    return m && RK(m)->rkt ? rd_kafka_topic_name(RK(m)->rkt) : NULL;
}

int32_t ksafe_message_partition(const ksafe_message *m)
{
    return m ? RK(m)->partition : -1;
}

int64_t ksafe_message_offset(const ksafe_message *m)
{
    return m ? RK(m)->offset : -1;
}

const void *ksafe_message_key(const ksafe_message *m, size_t *len)
{
    if (len)
        *len = m ? RK(m)->key_len : 0;
    return m ? RK(m)->key : NULL;
}

const void *ksafe_message_value(const ksafe_message *m, size_t *len)
{
    if (len)
        *len = m ? RK(m)->len : 0;
    return m ? RK(m)->payload : NULL;
}

int64_t ksafe_message_timestamp(const ksafe_message *m)
{
    return m ? rd_kafka_message_timestamp(RK(m), NULL) : -1;
}

int ksafe_message_header(const ksafe_message *m, const char *name,
                         const void **value, size_t *len)
{
    rd_kafka_headers_t *h = NULL;

    if (!m || !name)
        return KSAFE_EINVAL;
    if (rd_kafka_message_headers(RK(m), &h) || !h)
        return KSAFE_EINVAL;
    if (rd_kafka_header_get_last(h, name, value, len))
        return KSAFE_EINVAL;
    return 0;
}

const rd_kafka_message_t *ksafe_message_rdkafka(const ksafe_message *m)
{
    return RK(m);
}

void ksafe_message_free(ksafe_message *m)
{
    if (m)
        rd_kafka_message_destroy((rd_kafka_message_t *)m);
}
