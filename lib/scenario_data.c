/*
 * lib/scenario_data.c - the scenario kit's data on the cluster: produce a
 * data set, read a topic back as a fresh reader, read a group's committed
 * offsets. The reader and the offset lookup are plain librdkafka clients:
 * they must not join a group, commit, or hide aborted records, which is
 * everything a ksafe consumer is made to do.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"

/* ---- produce ------------------------------------------------------------ */

typedef struct produce_state {
    ksafe_test_records *produced;
    size_t delivered, failed;
    ksafe_error first; /* the first failure */
    int add_rc;
    ksafe_error add_err;
} produce_state;

static void on_report(const ksafe_delivery *d, void *payload)
{
    produce_state *st = payload;

    if (d->error) {
        if (!st->failed++)
            ksafe__error_set(&st->first, KSAFE_EUNDELIVERED,
                             d->error->rdkafka_code, 0,
                             "record %.*s to %s [%d] not delivered: %s",
                             (int)(d->value_len < 40 ? d->value_len : 40),
                             (const char *)d->value, d->topic,
                             (int)d->partition, d->error->message);
        return;
    }
    if (d->offset < 0) {
        /* librdkafka acknowledged it for a later batch's success (see
         * ksafe_test_produce()): no offset, so no proof it was written. */
        if (!st->failed++)
            ksafe__error_set(&st->first, KSAFE_EUNDELIVERED, 0, 0,
                             "record %.*s to %s [%d] acknowledged without "
                             "an offset: it may not have been written",
                             (int)(d->value_len < 40 ? d->value_len : 40),
                             (const char *)d->value, d->topic,
                             (int)d->partition);
        return;
    }
    st->delivered++;
    if (st->produced && !st->add_rc)
        st->add_rc = ksafe_test_records_add(st->produced, d->partition,
                                            d->offset, d->key, d->key_len,
                                            d->value, d->value_len,
                                            &st->add_err);
}

int ksafe_test_produce(ksafe_test_cluster *tc, const char *topic,
                       size_t count, ksafe_test_records *produced,
                       ksafe_error *err)
{
    ksafe_producer_options o;
    ksafe_producer *p;
    produce_state st;
    size_t i;
    int rc;

    if (!tc || !topic)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0, "produce: %s is NULL",
                                tc ? "topic" : "cluster");
    memset(&st, 0, sizeof(st));
    st.produced = produced;
    ksafe_test_cluster_producer_options(tc, &o);
    /* The embedded cluster checks sequence numbers only for transactional
     * producers: with more in flight, a batch it refused (an injected
     * Produce error) followed by one it took is "implicitly acked" by
     * librdkafka without being written (docs/testing.md). */
    if (ksafe_test_cluster_is_embedded(tc))
        o.max_in_flight = 1;
    o.on_delivery = on_report;
    o.delivery_payload = &st;
    if ((rc = ksafe_producer_new(&p, &o, err)))
        return rc;
    for (i = 0; i < count && !rc; i++) {
        char key[32], value[32];
        ksafe_record r = KSAFE_RECORD_INIT;
        snprintf(key, sizeof(key), "key-%zu", i % 16);
        snprintf(value, sizeof(value), "value-%zu", i);
        r.topic = topic;
        r.key = key;
        r.key_len = strlen(key);
        r.value = value;
        r.value_len = strlen(value);
        rc = ksafe_producer_send(p, &r, err);
    }
    /* Even after a refused send, the records already sent get their
     * reports (into `produced`, or counted failed) before the producer
     * goes: none is dropped unreported. */
    if (rc) {
        ksafe_error close_err;
        ksafe_producer_close(p, &close_err);
        ksafe_producer_free(p);
        if (st.failed && err) {
            size_t n = strlen(err->message);
            snprintf(err->message + n, sizeof(err->message) - n,
                     "; %zu record(s) sent before were not delivered either",
                     st.failed);
        }
        return rc;
    }
    rc = ksafe_producer_flush(p, 30000, err);
    if (!rc)
        rc = ksafe_producer_close(p, err);
    else {
        ksafe_error close_err;
        ksafe_producer_close(p, &close_err);
    }
    ksafe_producer_free(p);
    if (rc)
        return rc;
    if (st.failed) {
        if (err) {
            *err = st.first;
            if (st.failed > 1) {
                size_t n = strlen(err->message);
                snprintf(err->message + n, sizeof(err->message) - n,
                         " (and %zu more)", st.failed - 1);
            }
        }
        return KSAFE_EUNDELIVERED;
    }
    if (st.add_rc) {
        if (err)
            *err = st.add_err;
        return st.add_rc;
    }
    return 0;
}

/* More than Kafka lets a topic have in practice; a bound for arrays. */
#define MAX_PARTITIONS 100000

/* ---- plain librdkafka clients --------------------------------------------- */

static int plain_consumer(ksafe_test_cluster *tc, const char *group,
                          rd_kafka_t **out, ksafe_error *err)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char errstr[256], reader_group[96];
    rd_kafka_t *rk;
    /* librdkafka 2.0.2 wants a group.id even to assign; the reader never
     * joins it nor commits to it. */
    const char *props[] = {
        "bootstrap.servers", ksafe_test_cluster_bootstrap(tc),
        "group.id", group ? group : reader_group,
        "enable.auto.commit", "false",
        "isolation.level", "read_uncommitted",
        "enable.partition.eof", "true",
        "allow.auto.create.topics", "false",
        /* the log start passing the reader is an error, not a jump */
        "auto.offset.reset", "error",
        "fetch.wait.max.ms", "10",
        "reconnect.backoff.max.ms", "500",
    };
    size_t i;
    int rc;

    ksafe_test_unique_name(reader_group, sizeof(reader_group),
                           "ksafe-test-reader");
    rd_kafka_conf_set_log_cb(conf, ksafe__mock_quiet_log);
    for (i = 0; i < sizeof(props) / sizeof(props[0]); i += 2)
        if ((rc = ksafe__conf_set(conf, props[i], props[i + 1], err))) {
            rd_kafka_conf_destroy(conf);
            return rc;
        }
    if (!(rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr)))) {
        rd_kafka_conf_destroy(conf);
        return ksafe__error_set(err, KSAFE_EKAFKA, 0, 0, "test reader: %s",
                                errstr);
    }
    *out = rk;
    return 0;
}

/* Errors of a lookup or a fetch that go away by themselves (a broker
 * down, a coordinator moving or loading): wait on. Any other is reported
 * at once. */
static int transient(rd_kafka_resp_err_t e)
{
    switch (e) {
    case RD_KAFKA_RESP_ERR__TRANSPORT:
    case RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN:
    case RD_KAFKA_RESP_ERR__TIMED_OUT:
    case RD_KAFKA_RESP_ERR__WAIT_COORD:
    case RD_KAFKA_RESP_ERR__RESOLVE:
    case RD_KAFKA_RESP_ERR_NOT_COORDINATOR:
    case RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE:
    case RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS:
    case RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION:
    case RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE:
    case RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT:
    case RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS:
    case RD_KAFKA_RESP_ERR_UNSTABLE_OFFSET_COMMIT:
        return 1;
    default:
        return 0;
    }
}

/* ---- read back ------------------------------------------------------------- */

typedef struct part_state {
    int64_t high; /* stop below this */
    int64_t next; /* next offset expected */
    int done;
} part_state;

static int read_loop(rd_kafka_t *rk, const char *topic, part_state *ps,
                     int parts, ksafe_test_records *out, int64_t deadline,
                     ksafe_error *err)
{
    rd_kafka_resp_err_t last = RD_KAFKA_RESP_ERR_NO_ERROR;
    int left = 0, i, rc;

    for (i = 0; i < parts; i++)
        left += !ps[i].done;
    while (left) {
        rd_kafka_message_t *m;
        int64_t now = ksafe__now_ms();
        if (now >= deadline) {
            int64_t unread = 0;
            for (i = 0; i < parts; i++)
                if (!ps[i].done)
                    unread += ps[i].high - ps[i].next;
            return ksafe__error_set(err, KSAFE_ETIMEDOUT, last, 0,
                                    "reading %s back: %d partition(s), about "
                                    "%lld record(s) still unread%s%s",
                                    topic, left, (long long)unread,
                                    last ? "; last error: " : "",
                                    last ? rd_kafka_err2str(last) : "");
        }
        if (!(m = rd_kafka_consumer_poll(rk, (int)(deadline - now < 100
                                                       ? deadline - now
                                                       : 100))))
            continue;
        i = m->partition;
        if (m->err && m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            /* A broker down is retried by librdkafka: wait on, and name
             * it if the deadline comes. Anything else (not authorized,
             * the log start moved past where this read began) would
             * leave records unread: fail now, with the cause. */
            rd_kafka_resp_err_t e = m->err;
            int32_t at = m->partition;
            rd_kafka_message_destroy(m);
            if (transient(e)) {
                last = e;
                continue;
            }
            return ksafe__error_set(err, KSAFE_EKAFKA, e, 0,
                                    "reading %s [%d] back: %s", topic,
                                    (int)at, rd_kafka_err2str(e));
        }
        if (i < 0 || i >= parts || ps[i].done) {
            rd_kafka_message_destroy(m);
            continue;
        }
        if (!m->err && m->offset < ps[i].high) {
            rc = ksafe_test_records_add(out, m->partition, m->offset, m->key,
                                        m->key_len, m->payload, m->len, err);
            if (rc) {
                rd_kafka_message_destroy(m);
                return rc;
            }
        }
        ps[i].next = m->offset + (m->err ? 0 : 1);
        /* An EOF is at the watermark of its fetch, never below ours. */
        if (m->err || ps[i].next >= ps[i].high) {
            ps[i].done = 1;
            left--;
        }
        rd_kafka_message_destroy(m);
    }
    return 0;
}

int ksafe_test_read_topic(ksafe_test_cluster *tc, const char *topic,
                          ksafe_test_records *out, int timeout_ms,
                          ksafe_error *err)
{
    rd_kafka_topic_partition_list_t *assign = NULL;
    int64_t deadline = ksafe__now_ms() + timeout_ms;
    part_state *ps = NULL;
    rd_kafka_t *rk;
    int parts = 0, i, rc;

    if (!tc || !topic || !out || timeout_ms < 1)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0, "read_topic: %s",
                                !tc      ? "cluster is NULL"
                                : !topic ? "topic is NULL"
                                : !out   ? "record set is NULL"
                                         : "timeout_ms is below 1");
    /* all-topics metadata: asking for the topic by name would let the
     * embedded cluster (or auto.create.topics.enable) create it */
    if ((rc = ksafe_cluster_topic_partitions(ksafe_test_cluster_bootstrap(tc),
                                             topic, &parts, timeout_ms, err)))
        return rc;
    if ((rc = plain_consumer(tc, NULL, &rk, err)))
        return rc;
    if (!(ps = calloc((size_t)parts, sizeof(*ps)))) {
        rc = ksafe__error_set(err, KSAFE_ENOMEM, 0, 0, "out of memory");
        goto out;
    }
    assign = rd_kafka_topic_partition_list_new(parts);
    for (i = 0; i < parts; i++) {
        int64_t low, high;
        int64_t left = deadline - ksafe__now_ms();
        rd_kafka_resp_err_t rerr = rd_kafka_query_watermark_offsets(
            rk, topic, i, &low, &high, left > 1 ? (int)left : 1);
        if (rerr) {
            rc = ksafe__error_from_resp(err, rerr, "watermarks");
            goto out;
        }
        ps[i].high = high;
        ps[i].next = low;
        if (low >= high) {
            ps[i].done = 1;
            continue;
        }
        rd_kafka_topic_partition_list_add(assign, topic, i)->offset = low;
    }
    if (assign->cnt) {
        rd_kafka_resp_err_t rerr = rd_kafka_assign(rk, assign);
        if (rerr) {
            rc = ksafe__error_from_resp(err, rerr, "assign");
            goto out;
        }
    }
    rc = read_loop(rk, topic, ps, parts, out, deadline, err);
out:
    if (assign)
        rd_kafka_topic_partition_list_destroy(assign);
    free(ps);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return rc;
}

/* ---- committed offsets ------------------------------------------------------ */

/* The committed offsets into offsets[]; the librdkafka error, if any,
 * into *why. */
static int committed_with(rd_kafka_t *rk, const char *group,
                          const char *topic, int64_t *offsets, int partitions,
                          int timeout_ms, rd_kafka_resp_err_t *why,
                          ksafe_error *err)
{
    rd_kafka_topic_partition_list_t *l;
    rd_kafka_resp_err_t rerr;
    int i, rc = 0;

    l = rd_kafka_topic_partition_list_new(partitions);
    for (i = 0; i < partitions; i++)
        rd_kafka_topic_partition_list_add(l, topic, i);
    rerr = rd_kafka_committed(rk, l, timeout_ms);
    for (i = 0; !rerr && i < l->cnt; i++)
        if (l->elems[i].err)
            rerr = l->elems[i].err;
    *why = rerr;
    if (rerr == RD_KAFKA_RESP_ERR__TIMED_OUT)
        rc = ksafe__error_set(err, KSAFE_ETIMEDOUT, rerr, 0,
                              "committed offsets of group %s: no answer in "
                              "%d ms",
                              group, timeout_ms);
    else if (rerr)
        rc = ksafe__error_set(err, KSAFE_EKAFKA, rerr, 0,
                              "committed offsets of group %s on %s: %s",
                              group, topic, rd_kafka_err2str(rerr));
    for (i = 0; !rc && i < l->cnt; i++) {
        const rd_kafka_topic_partition_t *tp = &l->elems[i];
        offsets[tp->partition] =
            tp->offset >= 0 ? tp->offset : KSAFE_TEST_NO_OFFSET;
    }
    rd_kafka_topic_partition_list_destroy(l);
    return rc;
}

/* The arguments the offset lookups share, checked in order. */
static int offsets_args(ksafe_test_cluster *tc, const char *group,
                        const char *topic, const char *what, ksafe_error *err)
{
    if (!tc)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "%s: cluster is NULL", what);
    if (!group || !*group)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0, "%s: group is %s",
                                what, group ? "empty" : "NULL");
    if (!topic)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0, "%s: topic is NULL",
                                what);
    return 0;
}

int ksafe_test_committed(ksafe_test_cluster *tc, const char *group,
                         const char *topic, int64_t *offsets, int partitions,
                         int timeout_ms, ksafe_error *err)
{
    rd_kafka_resp_err_t why;
    rd_kafka_t *rk;
    int rc;

    if ((rc = offsets_args(tc, group, topic, "committed", err)))
        return rc;
    if (!offsets)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "committed: offsets is NULL");
    if (partitions < 1 || partitions > MAX_PARTITIONS)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "committed: partitions is %d, outside "
                                "1..%d",
                                partitions, MAX_PARTITIONS);
    if (timeout_ms < 1)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "committed: timeout_ms is %d, below 1",
                                timeout_ms);
    if ((rc = plain_consumer(tc, group, &rk, err)))
        return rc;
    rc = committed_with(rk, group, topic, offsets, partitions, timeout_ms,
                        &why, err);
    rd_kafka_destroy(rk);
    return rc;
}

/* The end of each partition in `records` (last offset + 1; -1 none) into
 * *out, a new array of *parts entries. */
static int ends_of(const ksafe_test_records *records, int64_t **out,
                   int *parts, ksafe_error *err)
{
    size_t i, n = ksafe_test_records_count(records);
    int64_t *ends;
    int32_t max = -1;
    int p;

    for (i = 0; i < n; i++) {
        ksafe_test_record r;
        if (!ksafe_test_records_get(records, i, &r, NULL) && r.partition > max)
            max = r.partition;
    }
    if (max < 0)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "wait_committed: the record set is empty, "
                                "so there is nothing to wait for");
    if (max >= MAX_PARTITIONS)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "wait_committed: a record at partition %d, "
                                "past %d partitions",
                                (int)max, MAX_PARTITIONS);
    if (!(ends = malloc((size_t)(max + 1) * sizeof(*ends))))
        return ksafe__error_set(err, KSAFE_ENOMEM, 0, 0, "out of memory");
    for (p = 0; p <= max; p++)
        ends[p] = -1;
    for (i = 0; i < n; i++) {
        ksafe_test_record r;
        if (!ksafe_test_records_get(records, i, &r, NULL) &&
            r.offset + 1 > ends[r.partition])
            ends[r.partition] = r.offset + 1;
    }
    *out = ends;
    *parts = max + 1;
    return 0;
}

int ksafe_test_wait_committed(ksafe_test_cluster *tc, const char *group,
                              const char *topic,
                              const ksafe_test_records *records,
                              const ksafe_test_loop *loop, int timeout_ms,
                              ksafe_error *err)
{
    rd_kafka_resp_err_t why = RD_KAFKA_RESP_ERR_NO_ERROR;
    int64_t deadline, *ends = NULL, *got = NULL;
    rd_kafka_t *rk = NULL;
    int parts = 0, behind = -1, ended = 0, rc;

    if ((rc = offsets_args(tc, group, topic, "wait_committed", err)))
        return rc;
    if (!records)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "wait_committed: record set is NULL");
    if (timeout_ms < 0)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "wait_committed: timeout_ms is %d, below 0",
                                timeout_ms);
    deadline = ksafe__now_ms() + timeout_ms;
    if ((rc = ends_of(records, &ends, &parts, err)))
        return rc;
    if (!(got = calloc((size_t)parts, sizeof(*got)))) {
        rc = ksafe__error_set(err, KSAFE_ENOMEM, 0, 0, "out of memory");
        goto out;
    }
    if ((rc = plain_consumer(tc, group, &rk, err)))
        goto out;
    for (;;) {
        int64_t left = deadline - ksafe__now_ms();
        int p;
        ended = loop && !ksafe_test_loop_running(loop);
        /* short lookups, so that a loop that ended is noticed */
        rc = committed_with(rk, group, topic, got, parts,
                            left > 2000 ? 2000 : left > 100 ? (int)left : 100,
                            &why, err);
        if (rc && !transient(why))
            goto out; /* e.g. not authorized: waiting will not help */
        for (behind = -1, p = 0; !rc && p < parts && behind < 0; p++)
            if (ends[p] >= 0 && got[p] < ends[p])
                behind = p;
        if (!rc && behind < 0)
            goto out;
        if (ended || ksafe__now_ms() >= deadline)
            break;
        {
            struct timespec ts = {0, 250 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
    }
    if (rc) { /* the last lookup failed, and the trouble did not pass */
        if (err) {
            size_t n = strlen(err->message);
            snprintf(err->message + n, sizeof(err->message) - n,
                     " (still, after %s)",
                     ended ? "the loop ended" : "the whole timeout");
        }
        goto out;
    }
    rc = ksafe__error_set(err, ended ? KSAFE_ESTOPPED : KSAFE_ETIMEDOUT, 0, 0,
                          "%s: group %s committed %lld on %s [%d], want %lld",
                          ended ? "the loop ended" : "timed out", group,
                          (long long)got[behind], topic, behind,
                          (long long)ends[behind]);
out:
    if (rk)
        rd_kafka_destroy(rk);
    free(ends);
    free(got);
    return rc;
}
