/*
 * lib/consumer.c - the safe consumer: creation, subscribe, poll, seek,
 * release. Options and their validation live in consumer_options.c,
 * marking and commits in consumer_offsets.c, the rebalance callback in
 * consumer_rebalance.c, statistics in consumer_stats.c, close and its librdkafka workarounds in
 * consumer_close.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "consumer_internal.h"

/* How long a seek outside on_assigned waits to take effect. */
#define SEEK_WAIT_MS 30000

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
    free(c->group_id);
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
        opts = &ksafe__consumer_preset;
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
    /* KIP-848's rebalances are incremental whatever the strategy field. */
    c->cooperative_conf =
        opts->assignment_strategy == KSAFE_ASSIGN_COOPERATIVE_STICKY ||
        opts->group_protocol == KSAFE_GROUP_PROTOCOL_CONSUMER;
    c->kip848 = opts->group_protocol == KSAFE_GROUP_PROTOCOL_CONSUMER;
    c->session_timeout_ms = opts->session_timeout_ms;
    c->protocol = -1;
    ksafe__consumer_quirks_of(rd_kafka_version(), &c->quirks);
    ksafe__consumer_policy_init(c);

    conf = rd_kafka_conf_new();
    if ((rc = ksafe__client_conf(&v, conf, err)) ||
        (rc = ksafe__consumer_conf(opts, conf, err)) ||
        (rc = ksafe__consumer_stats_conf(c, opts, conf, err)) ||
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
    for (i = 0; i < count; i++) {
        char what[32];

        if (topics[i][0] == '^')
            continue; /* a regex, not a name */
        snprintf(what, sizeof(what), "topics[%zu]", i);
        if (ksafe__topic_check(topics[i], what, err))
            return KSAFE_EINVAL;
    }
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

/*
 * What a fatal error of static membership means for the user: the two
 * protocols fence opposite members when two processes share one
 * group.instance.id. The advice comes first and the id last, so a long id
 * is what the message size cuts. 1 when `code` is one of them.
 */
static int fatal_hint(ksafe_consumer *c, rd_kafka_resp_err_t code,
                      char *buf, size_t size)
{
    char id[256] = "?";
    size_t n = sizeof(id);

    if (code != KSAFE__ERR_UNRELEASED_INSTANCE_ID &&
        code != RD_KAFKA_RESP_ERR_FENCED_INSTANCE_ID)
        return 0;
    if (rd_kafka_conf_get(rd_kafka_conf(c->cl.rk), "group.instance.id", id,
                          &n) != RD_KAFKA_CONF_OK)
        snprintf(id, sizeof(id), "?");
    if (code == KSAFE__ERR_UNRELEASED_INSTANCE_ID)
        snprintf(buf, size,
                 "refused: a running member holds this group_instance_id "
                 "(UNRELEASED_INSTANCE_ID; under KIP-848 the broker refuses "
                 "the new member). Stop the other process, or give this one "
                 "its own id: \"%s\"",
                 id);
    else
        snprintf(buf, size,
                 "fenced: another process joined with this "
                 "group_instance_id (FENCED_INSTANCE_ID; the classic "
                 "protocol fences the older member). Run one process per "
                 "id: \"%s\"",
                 id);
    return 1;
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
        if (code == RD_KAFKA_RESP_ERR__MAX_POLL_EXCEEDED)
            ksafe__commit_guard_losing(c);
        if (code == RD_KAFKA_RESP_ERR__FATAL) {
            char reason[200], hint[KSAFE_ERROR_MESSAGE_SIZE];
            code = rd_kafka_fatal_error(c->cl.rk, reason, sizeof(reason));
            if (fatal_hint(c, code, hint, sizeof(hint))) {
                /* The advice fits the message; librdkafka's words go to the
                 * log whole. */
                ksafe__log(&c->cl, KSAFE_LOG_ERR, "FATAL", "%s: %s", hint,
                           reason);
                rc = ksafe__error_set(err, KSAFE_EFATAL, code,
                                      KSAFE_ERROR_FATAL, "%s", hint);
            } else {
                rc = ksafe__error_set(err, KSAFE_EFATAL, code,
                                      KSAFE_ERROR_FATAL,
                                      "fatal consumer error: %s", reason);
            }
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
    struct timespec nap = {0, 10 * 1000 * 1000};
    int64_t deadline;
    int rc = 0;

    if (!c || !topic || !*topic || partition < 0)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "seek needs a consumer, a topic and a "
                                "partition >= 0");
    if (ksafe__topic_check(topic, "seek topic", err))
        return KSAFE_EINVAL;
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
    deadline = ksafe__now_ms() + SEEK_WAIT_MS;
    for (;;) {
        /* Before 2.1.0 the timeout is taken 1000x too short (issue 4230):
         * there only "wait for ever" (-1) means what it says. */
        e = rd_kafka_seek_partitions(c->cl.rk, l,
                                     c->quirks.seek_timeout_unit
                                         ? -1
                                         : SEEK_WAIT_MS);
        /* A newly assigned partition is not fetching yet while the group
         * coordinator is asked where it starts, and librdkafka refuses to
         * seek it until then (_STATE): it is ours, so wait for that. */
        if (e || l->elems[0].err != RD_KAFKA_RESP_ERR__STATE ||
            ksafe__now_ms() >= deadline)
            break;
        nanosleep(&nap, NULL);
        l->elems[0].err = 0;
        l->elems[0].offset = offset;
    }
    if (e) {
        rc = ksafe__error_from_rd(err, e, "seek");
        rd_kafka_error_destroy(e);
    } else if (l->elems[0].err == RD_KAFKA_RESP_ERR__STATE) {
        rc = ksafe__error_set(err, KSAFE_EKAFKA, RD_KAFKA_RESP_ERR__STATE, 0,
                              "seek %s [%d]: librdkafka did not start "
                              "fetching it within %d s (is the group "
                              "coordinator answering?)",
                              topic, (int)partition, SEEK_WAIT_MS / 1000);
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
    const void *v;
    size_t n;

    if (!m || !name)
        return KSAFE_EINVAL;
    if (rd_kafka_message_headers(RK(m), &h) || !h)
        return KSAFE_EINVAL;
    /* librdkafka writes both outputs; a caller asking only whether the
     * header is there passes NULL. */
    if (rd_kafka_header_get_last(h, name, &v, &n))
        return KSAFE_EINVAL;
    if (value)
        *value = v;
    if (len)
        *len = n;
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
