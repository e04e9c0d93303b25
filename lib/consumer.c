/*
 * lib/consumer.c - the safe consumer: preset, creation, subscribe, poll,
 * seek, static membership ids, release. Marking and commits live in
 * consumer_offsets.c, the rebalance callback in consumer_rebalance.c, close
 * and its librdkafka workarounds in consumer_close.c.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "consumer_internal.h"

/* How long a seek outside on_assigned waits to take effect. */
#define SEEK_WAIT_MS 30000

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

static int check_instance_id(const char *id, const char *what,
                             ksafe_error *err);

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
    if (o->group_instance_id &&
        (rc = check_instance_id(o->group_instance_id, "group_instance_id",
                                err)))
        return rc;
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
    if ((rc = ksafe__check_range(err, "session_timeout_ms", o->session_timeout_ms, 1,
                          3600000)) ||
        (rc = ksafe__check_range(err, "heartbeat_interval_ms",
                          o->heartbeat_interval_ms, 1, 3600000)) ||
        (rc = ksafe__check_range(err, "max_poll_interval_ms", o->max_poll_interval_ms,
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
    /* Topic references and the commit queue go before the handle. */
    ksafe__consumer_forget_all(c);
    if (c->close_failed)
        rd_kafka_topic_partition_list_destroy(c->close_failed);
    c->close_failed = NULL;
    if (c->commit_q)
        rd_kafka_queue_destroy(c->commit_q);
    c->commit_q = NULL;
    if (c->detached) {
        /* Destroying the handle would abort the process (see
         * ksafe__consumer_park): it, and `c` its opaque, stay. */
        ksafe__consumer_park(c);
        return;
    }
    ksafe__client_release(&c->cl);
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
    c->cooperative_conf =
        opts->assignment_strategy == KSAFE_ASSIGN_COOPERATIVE_STICKY;
    c->session_timeout_ms = opts->session_timeout_ms;
    c->protocol = -1;
    ksafe__consumer_quirks_of(rd_kafka_version(), &c->quirks);
    ksafe__consumer_policy_init(c);

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
    c->commit_q = rd_kafka_queue_new(c->cl.rk);
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
    if (c->async_in_flight)
        ksafe__consumer_serve_commits(c);
    m = rd_kafka_consumer_poll(c->cl.rk, timeout_ms);
    if (!m) {
        /* Idle: let the next commit_maybe() read the clock. */
        c->ticks = c->tick_limit;
        return 0;
    }
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
    {
        /* Where this assignment's delivery of the partition began. */
        ksafe__position *p = ksafe__consumer_entry(c, m);
        if (p && p->first < 0)
            p->first = m->offset;
    }
    *out = (ksafe_message *)m;
    return 0;
}

/* ---- seek -------------------------------------------------------------- */

int ksafe_consumer_seek(ksafe_consumer *c, const char *topic,
                        int32_t partition, int64_t offset, ksafe_error *err)
{
    rd_kafka_topic_partition_list_t *l;
    rd_kafka_error_t *e;
    ksafe__position *p;
    int rc = 0;

    if (!c || !topic || !*topic || partition < 0)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "seek needs a consumer, a topic and a "
                                "partition >= 0");
    if (offset < 0 && offset != RD_KAFKA_OFFSET_BEGINNING &&
        offset != RD_KAFKA_OFFSET_END)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "seek offset %lld for %s [%d]: use an offset "
                                ">= 0, RD_KAFKA_OFFSET_BEGINNING or "
                                "RD_KAFKA_OFFSET_END",
                                (long long)offset, topic, (int)partition);
    if (c->closed || c->in_revoke)
        return ksafe__error_set(err, KSAFE_ESTATE, 0, 0,
                                "seek %s [%d]: not while the consumer is %s",
                                topic, (int)partition,
                                c->closed ? "closed"
                                          : "giving up partitions");
    p = ksafe__consumer_find(c, topic, partition);
    if (c->assigning) {
        /* Inside on_assigned: applied by the assignment itself. */
        if (!p || !rd_kafka_topic_partition_list_find(c->assigning, topic,
                                                      partition))
            return ksafe__error_set(err, KSAFE_ESTATE, 0, 0,
                                    "seek %s [%d] in on_assigned: not part "
                                    "of this assignment",
                                    topic, (int)partition);
        p->start = offset;
        return 0;
    }
    if (!p)
        return ksafe__error_set(err, KSAFE_ESTATE, 0, 0,
                                "seek %s [%d]: partition not assigned to "
                                "this consumer",
                                topic, (int)partition);
    /* Delivery begins again where the seek lands. */
    p->first = -1;
    l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, topic, partition)->offset = offset;
    /* Before 2.1.0 the timeout is taken 1000x too short (issue 4230):
     * there only "wait for ever" (-1) means what it says. */
    e = rd_kafka_seek_partitions(c->cl.rk, l,
                                 c->quirks.seek_timeout_unit ? -1
                                                             : SEEK_WAIT_MS);
    if (e) {
        rc = ksafe__error_from_rd(err, e, "seek");
        rd_kafka_error_destroy(e);
    } else if (l->elems[0].err) {
        rc = ksafe__error_from_resp(err, l->elems[0].err, "seek");
    }
    rd_kafka_topic_partition_list_destroy(l);
    return rc;
}

/* ---- stop flag --------------------------------------------------------- */

void ksafe_consumer_stop(ksafe_consumer *c)
{
    if (c)
        c->stop = 1;
}

int ksafe_consumer_stop_requested(const ksafe_consumer *c)
{
    return c && c->stop ? 1 : 0;
}

/* ---- static membership ------------------------------------------------- */

#define INSTANCE_ID_MAX 249

static int id_char_ok(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
           (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == '-';
}

/* Checks a group.instance.id as the broker would. */
static int check_instance_id(const char *id, const char *what,
                             ksafe_error *err)
{
    size_t i, n = strlen(id);

    if (n > INSTANCE_ID_MAX)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "%s is %zu characters long, above Kafka's "
                                "limit of %d",
                                what, n, INSTANCE_ID_MAX);
    for (i = 0; i < n; i++)
        if (!id_char_ok(id[i]))
            return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                    "%s has character 0x%02x at %zu: Kafka "
                                    "accepts only [a-zA-Z0-9._-]",
                                    what, (unsigned)(unsigned char)id[i], i);
    return 0;
}

int ksafe_group_instance_id(char *buf, size_t size, const char *suffix,
                            ksafe_error *err)
{
    char host[256];
    size_t hlen, slen, i, total;
    int rc;

    if (!buf)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0, "buf is NULL");
    if (size)
        buf[0] = '\0';
    if (!suffix)
        suffix = "";
    slen = strlen(suffix);
    if (slen && (rc = check_instance_id(suffix, "suffix", err)))
        return rc;
    if (gethostname(host, sizeof(host)) != 0)
        return ksafe__error_set(err, KSAFE_EIO, 0, 0,
                                "gethostname failed: no host name to derive "
                                "a group.instance.id from");
    host[sizeof(host) - 1] = '\0';
    hlen = strlen(host);
    if (!hlen)
        return ksafe__error_set(err, KSAFE_EIO, 0, 0,
                                "the host name is empty: no stable "
                                "group.instance.id can be derived");
    for (i = 0; i < hlen; i++)
        if (!id_char_ok(host[i]))
            host[i] = '-';
    if (slen + 1 >= INSTANCE_ID_MAX)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "suffix is %zu characters long: with the "
                                "host name it would exceed Kafka's limit of "
                                "%d",
                                slen, INSTANCE_ID_MAX);
    /* Shorten the host part, never the caller's suffix. */
    if (hlen + (slen ? slen + 1 : 0) > INSTANCE_ID_MAX)
        hlen = INSTANCE_ID_MAX - (slen ? slen + 1 : 0);
    total = hlen + (slen ? slen + 1 : 0);
    if (total + 1 > size)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "buf holds %zu bytes; the id \"%.*s%s%s\" "
                                "needs %zu",
                                size, (int)hlen, host, slen ? "-" : "",
                                suffix, total + 1);
    memcpy(buf, host, hlen);
    if (slen) {
        buf[hlen] = '-';
        memcpy(buf + hlen + 1, suffix, slen);
    }
    buf[total] = '\0';
    return 0;
}

void ksafe_consumer_free(ksafe_consumer *c)
{
    if (!c)
        return;
    ksafe_consumer_close(c, NULL);
    consumer_destroy(c);
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
