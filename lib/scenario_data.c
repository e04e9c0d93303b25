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
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "produce needs a cluster and a topic (%s is "
                                "NULL)",
                                tc ? "topic" : "cluster");
    memset(&st, 0, sizeof(st));
    st.produced = produced;
    ksafe_test_cluster_producer_options(tc, &o);
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
    if (!rc)
        rc = ksafe_producer_flush(p, 30000, err);
    if (rc) {
        ksafe_producer_free(p);
        return rc;
    }
    if ((rc = ksafe_producer_close(p, err))) {
        ksafe_producer_free(p);
        return rc;
    }
    ksafe_producer_free(p);
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
            return ksafe__error_set(err, KSAFE_ETIMEDOUT, 0, 0,
                                    "reading %s back: %d partition(s), about "
                                    "%lld record(s) still unread",
                                    topic, left, (long long)unread);
        }
        if (!(m = rd_kafka_consumer_poll(rk, (int)(deadline - now < 100
                                                       ? deadline - now
                                                       : 100))))
            continue;
        i = m->partition;
        if (m->err && m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            /* Transient fetch trouble (a broker down) is retried by
             * librdkafka; only the deadline ends the read. */
            rd_kafka_message_destroy(m);
            continue;
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

    if (!tc || !topic || !out || timeout_ms < 0)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "read_topic needs a cluster, a topic, a "
                                "record set and a timeout >= 0");
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
            rk, topic, i, &low, &high, left > 0 ? (int)left : 0);
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

static int committed_with(rd_kafka_t *rk, const char *group,
                          const char *topic, int64_t *offsets, int partitions,
                          int timeout_ms, ksafe_error *err)
{
    rd_kafka_topic_partition_list_t *l;
    rd_kafka_resp_err_t rerr;
    int i, rc = 0;

    l = rd_kafka_topic_partition_list_new(partitions);
    for (i = 0; i < partitions; i++)
        rd_kafka_topic_partition_list_add(l, topic, i);
    rerr = rd_kafka_committed(rk, l, timeout_ms);
    if (rerr == RD_KAFKA_RESP_ERR__TIMED_OUT)
        rc = ksafe__error_set(err, KSAFE_ETIMEDOUT, rerr, 0,
                              "committed offsets of group %s: no answer in "
                              "%d ms",
                              group, timeout_ms);
    else if (rerr)
        rc = ksafe__error_from_resp(err, rerr, "committed offsets");
    for (i = 0; !rc && i < l->cnt; i++) {
        const rd_kafka_topic_partition_t *tp = &l->elems[i];
        if (tp->err) {
            rc = ksafe__error_from_resp(err, tp->err, "committed offset");
            break;
        }
        offsets[tp->partition] =
            tp->offset >= 0 ? tp->offset : KSAFE_TEST_NO_OFFSET;
    }
    rd_kafka_topic_partition_list_destroy(l);
    return rc;
}

int ksafe_test_committed(ksafe_test_cluster *tc, const char *group,
                         const char *topic, int64_t *offsets, int partitions,
                         int timeout_ms, ksafe_error *err)
{
    rd_kafka_t *rk;
    int rc;

    if (!tc || !group || !*group || !topic || !offsets || partitions < 1 ||
        timeout_ms < 0)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "committed needs a cluster, a group, a topic, "
                                "an offsets array of partitions >= 1 and a "
                                "timeout >= 0");
    if ((rc = plain_consumer(tc, group, &rk, err)))
        return rc;
    rc = committed_with(rk, group, topic, offsets, partitions, timeout_ms,
                        err);
    rd_kafka_destroy(rk);
    return rc;
}

/* The end of each partition in `records` (last offset + 1; -1 none) into
 * a new array of *parts entries. */
static int64_t *ends_of(const ksafe_test_records *records, int *parts)
{
    size_t i, n = ksafe_test_records_count(records);
    int64_t *ends;
    int max = -1, p;

    for (i = 0; i < n; i++) {
        ksafe_test_record r;
        if (!ksafe_test_records_get(records, i, &r, NULL) && r.partition > max)
            max = r.partition;
    }
    *parts = max + 1;
    if (!(ends = malloc((size_t)(max + 2) * sizeof(*ends))))
        return NULL;
    for (p = 0; p <= max; p++)
        ends[p] = -1;
    for (i = 0; i < n; i++) {
        ksafe_test_record r;
        if (!ksafe_test_records_get(records, i, &r, NULL) &&
            r.offset + 1 > ends[r.partition])
            ends[r.partition] = r.offset + 1;
    }
    return ends;
}

int ksafe_test_wait_committed(ksafe_test_cluster *tc, const char *group,
                              const char *topic,
                              const ksafe_test_records *records,
                              const ksafe_test_loop *loop, int timeout_ms,
                              ksafe_error *err)
{
    int64_t deadline, *ends = NULL, *got = NULL;
    rd_kafka_t *rk = NULL;
    int parts = 0, behind = -1, ended = 0, rc;

    if (!tc || !group || !*group || !topic || !records || timeout_ms < 0)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "wait_committed needs a cluster, a group, a "
                                "topic, a record set and a timeout >= 0");
    deadline = ksafe__now_ms() + timeout_ms;
    if (!(ends = ends_of(records, &parts)) ||
        !(got = calloc((size_t)parts + 1, sizeof(*got)))) {
        rc = ksafe__error_set(err, KSAFE_ENOMEM, 0, 0, "out of memory");
        goto out;
    }
    if (!parts) {
        rc = 0; /* nothing to wait for */
        goto out;
    }
    if ((rc = plain_consumer(tc, group, &rk, err)))
        goto out;
    for (;;) {
        int64_t left = deadline - ksafe__now_ms();
        int p;
        ended = loop && !ksafe_test_loop_running(loop);
        rc = committed_with(rk, group, topic, got, parts,
                            left > 1000 ? (int)left : 1000, err);
        if (rc && rc != KSAFE_ETIMEDOUT)
            goto out;
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
    if (rc) /* the lookup itself timed out */
        goto out;
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
