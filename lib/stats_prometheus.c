/*
 * lib/stats_prometheus.c - a ksafe_stats and the loop's counters in the
 * Prometheus text exposition format 0.0.4.
 *
 * Each metric family is written whole: "# HELP", "# TYPE", then all its
 * samples, so no family is split. A family without one known value is left
 * out entirely: an unknown value is never written, not even as 0.
 * Numbers are formatted from integers (seconds too), never through printf's
 * %f, whose decimal separator follows the process's locale.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stats_internal.h"

typedef struct text {
    char *buf;
    size_t len, cap;
    int oom;
} text;

static void grow(text *t, size_t more)
{
    size_t cap = t->cap ? t->cap : 4096;
    char *b;

    if (t->oom)
        return;
    while (cap - t->len <= more)
        cap *= 2;
    if (cap == t->cap)
        return;
    if (!(b = realloc(t->buf, cap))) {
        t->oom = 1;
        return;
    }
    t->buf = b;
    t->cap = cap;
}

static void put_n(text *t, const char *s, size_t n)
{
    grow(t, n);
    if (t->oom)
        return;
    memcpy(t->buf + t->len, s, n);
    t->len += n;
    t->buf[t->len] = '\0';
}

static void put(text *t, const char *s)
{
    put_n(t, s, strlen(s));
}

/* A label value: backslash, double quote and line feed escaped. */
static void put_value(text *t, const char *s)
{
    const char *run = s;

    for (; *s; s++) {
        const char *esc = *s == '\\' ? "\\\\"
                          : *s == '"' ? "\\\""
                          : *s == '\n' ? "\\n"
                                       : NULL;
        if (!esc)
            continue;
        put_n(t, run, (size_t)(s - run));
        put(t, esc);
        run = s + 1;
    }
    put_n(t, run, (size_t)(s - run));
}

/* Labels of one sample; NULL values are left out. */
typedef struct label {
    const char *name, *value;
} label;

static void put_sample(text *t, const char *name, const label *labels,
                       size_t n, const char *value)
{
    size_t i;
    int first = 1;

    put(t, name);
    for (i = 0; i < n; i++) {
        if (!labels[i].value)
            continue;
        put(t, first ? "{" : ",");
        put(t, labels[i].name);
        put(t, "=\"");
        put_value(t, labels[i].value);
        put(t, "\"");
        first = 0;
    }
    if (!first)
        put(t, "}");
    put(t, " ");
    put(t, value);
    put(t, "\n");
}

/* HELP text (our constants, escaped all the same) and TYPE. */
static void put_family(text *t, const char *name, const char *type,
                       const char *help)
{
    put(t, "# HELP ");
    put(t, name);
    put(t, " ");
    for (; *help; help++) {
        if (*help == '\\')
            put(t, "\\\\");
        else if (*help == '\n')
            put(t, "\\n");
        else
            put_n(t, help, 1);
    }
    put(t, "\n# TYPE ");
    put(t, name);
    put(t, " ");
    put(t, type);
    put(t, "\n");
}

/* Value formats: a count, or a count of 1/scale seconds as seconds. */
static void format_value(char *buf, size_t size, int64_t v, int64_t scale,
                         int digits)
{
    if (scale <= 1)
        snprintf(buf, size, "%lld", (long long)v);
    else
        snprintf(buf, size, "%lld.%0*lld", (long long)(v / scale), digits,
                 (long long)(v % scale));
}

/* ---- per partition ----------------------------------------------------- */

typedef struct partition_family {
    const char *name, *help;
    size_t field; /* offset of an int64_t in ksafe_stats_partition */
    int grouped;  /* labelled with the consumer group */
} partition_family;

#define PF(m) offsetof(ksafe_stats_partition, m)

static const partition_family partition_families[] = {
    {"kafka_consumergroup_lag",
     "Records of the partition the group has not committed: high watermark "
     "minus committed offset.",
     PF(lag), 1},
    {"kafka_consumergroup_current_offset",
     "The group's committed offset of the partition.", PF(committed_offset),
     1},
    {"kafka_topic_partition_current_offset",
     "The partition's high watermark: the offset of its next record.",
     PF(high_watermark), 0},
    {"ksafe_consumergroup_processed_lag",
     "Records of the partition not yet processed: high watermark minus the "
     "position marked by ksafe_consumer_done().",
     PF(processed_lag), 1},
    {"ksafe_consumergroup_marked_offset",
     "The processed position: the offset after the last record marked by "
     "ksafe_consumer_done().",
     PF(marked_offset), 1},
    {"ksafe_topic_partition_last_stable_offset",
     "The partition's last stable offset: where read_committed reading "
     "ends.",
     PF(last_stable_offset), 0},
};

static int64_t partition_value(const ksafe_stats_partition *p, size_t field)
{
    int64_t v;

    memcpy(&v, (const char *)p + field, sizeof(v));
    return v;
}

static void render_partitions(text *t, const ksafe_stats *st)
{
    size_t f, i;

    for (f = 0; f < sizeof(partition_families) / sizeof(*partition_families);
         f++) {
        const partition_family *pf = &partition_families[f];
        int header = 0;

        for (i = 0; i < st->partition_count; i++) {
            const ksafe_stats_partition *p = &st->partitions[i];
            int64_t v = partition_value(p, pf->field);
            char part[16], value[32];
            label l[3];

            /* not assigned: values frozen at the revoke, and another
             * member's now */
            if (!ksafe_stats_known(v) || p->assigned == 0)
                continue;
            if (!header++)
                put_family(t, pf->name, "gauge", pf->help);
            snprintf(part, sizeof(part), "%d", (int)p->partition);
            format_value(value, sizeof(value), v, 1, 0);
            l[0].name = "consumergroup";
            l[0].value = pf->grouped ? st->group_id : NULL;
            l[1].name = "topic";
            l[1].value = p->topic;
            l[2].name = "partition";
            l[2].value = part;
            put_sample(t, pf->name, l, 3, value);
        }
    }
}

/* ---- per client -------------------------------------------------------- */

/* A family of one sample, labelled with the client (and the group). */
static void client_value(text *t, const ksafe_stats *st, const char *name,
                         const char *type, const char *help, int64_t v,
                         int grouped, int64_t scale, int digits)
{
    char value[32];
    label l[2];

    if (!ksafe_stats_known(v))
        return;
    put_family(t, name, type, help);
    format_value(value, sizeof(value), v, scale, digits);
    l[0].name = "client";
    l[0].value = st->name;
    l[1].name = "consumergroup";
    l[1].value = grouped ? st->group_id : NULL;
    put_sample(t, name, l, 2, value);
}

/* A state as a one-sample state set: {state="<name>"} 1. */
static void client_state(text *t, const ksafe_stats *st, const char *name,
                         const char *help, const char *state)
{
    label l[3];

    if (!state)
        return;
    put_family(t, name, "gauge", help);
    l[0].name = "client";
    l[0].value = st->name;
    l[1].name = "consumergroup";
    l[1].value = st->group_id;
    l[2].name = "state";
    l[2].value = state;
    put_sample(t, name, l, 3, "1");
}

static void render_client(text *t, const ksafe_stats *st)
{
    /* only a producer has the queue; a document of no type proves none */
    if (st->type && !strcmp(st->type, "producer")) {
        client_value(t, st, "ksafe_producer_queue_messages", "gauge",
                     "Records in the producer queue (librdkafka msg_cnt).",
                     st->queue_messages, 0, 1, 0);
        client_value(t, st, "ksafe_producer_queue_bytes", "gauge",
                     "Bytes of the records in the producer queue "
                     "(msg_size).",
                     st->queue_bytes, 0, 1, 0);
    }
    client_value(t, st, "ksafe_consumer_fetch_queue_messages", "gauge",
                 "Records fetched and not yet polled, over all partitions "
                 "(librdkafka's consumer queue).",
                 st->fetch_queue, 0, 1, 0);
    client_value(t, st, "ksafe_client_requests_in_flight", "gauge",
                 "Requests sent to brokers and not answered yet.",
                 st->requests_in_flight, 0, 1, 0);
    client_value(t, st, "ksafe_client_requests_queued", "gauge",
                 "Requests waiting to be sent to brokers.",
                 st->requests_queued, 0, 1, 0);
    client_value(t, st, "ksafe_client_request_retries_total", "counter",
                 "Requests sent to brokers again (txretries).", st->retries,
                 0, 1, 0);
    client_value(t, st, "ksafe_consumergroup_rebalances_total", "counter",
                 "Rebalances of this member (cgrp.rebalance_cnt).",
                 st->rebalances, 1, 1, 0);
    client_value(t, st, "ksafe_consumergroup_rebalance_age_seconds", "gauge",
                 "Time since the last rebalance.", st->rebalance_age_ms, 1,
                 1000, 3);
    client_value(t, st, "ksafe_consumergroup_assigned_partitions", "gauge",
                 "Partitions assigned to this member.", st->assignment_size,
                 1, 1, 0);
    client_state(t, st, "ksafe_consumergroup_join_state",
                 "The member's join state (cgrp.join_state), as a label.",
                 st->join_state);
    client_state(t, st, "ksafe_consumergroup_state",
                 "The group handler's state (cgrp.state), as a label.",
                 st->group_state);
}

/* ---- per broker -------------------------------------------------------- */

typedef struct broker_family {
    const char *name, *help;
    size_t field; /* offset of an int64_t in ksafe_stats_broker */
    int64_t scale;
    int digits;
} broker_family;

#define BF(m) offsetof(ksafe_stats_broker, m)

static const broker_family broker_families[] = {
    {"ksafe_broker_rtt_avg_seconds",
     "Average request round trip to the broker over the last interval.",
     BF(rtt_avg_us), 1000000, 6},
    {"ksafe_broker_rtt_p99_seconds",
     "99th percentile of the request round trip to the broker over the "
     "last interval.",
     BF(rtt_p99_us), 1000000, 6},
    {"ksafe_broker_requests_in_flight",
     "Requests sent to the broker and not answered yet.",
     BF(requests_in_flight), 1, 0},
    {"ksafe_broker_requests_queued",
     "Requests waiting to be sent to the broker.", BF(requests_queued), 1,
     0},
};

static void render_brokers(text *t, const ksafe_stats *st)
{
    size_t f, i;

    for (f = 0; f < sizeof(broker_families) / sizeof(*broker_families); f++) {
        const broker_family *bf = &broker_families[f];
        int header = 0;

        for (i = 0; i < st->broker_count; i++) {
            const ksafe_stats_broker *b = &st->brokers[i];
            char value[32];
            int64_t v;
            label l[2];

            memcpy(&v, (const char *)b + bf->field, sizeof(v));
            if (!ksafe_stats_known(v) || !b->name)
                continue;
            if (!header++)
                put_family(t, bf->name, "gauge", bf->help);
            format_value(value, sizeof(value), v, bf->scale, bf->digits);
            l[0].name = "client";
            l[0].value = st->name;
            l[1].name = "broker";
            l[1].value = b->name;
            put_sample(t, bf->name, l, 2, value);
        }
    }
}

/* ---- the loop ---------------------------------------------------------- */

#define LF(m) offsetof(ksafe_loop_stats, m)

static const struct {
    const char *name, *help;
    size_t field;
} loop_counters[] = {
    {"ksafe_loop_polled_total", "Records received from the consumer.",
     LF(polled)},
    {"ksafe_loop_processed_total", "Records whose handler returned OK.",
     LF(processed)},
    {"ksafe_loop_retries_total", "Handler calls that asked for a retry.",
     LF(retries)},
    {"ksafe_loop_failed_total",
     "Records that exhausted their retries or failed for good.",
     LF(failed)},
    {"ksafe_loop_skipped_total", "Failed records skipped (SKIP policy).",
     LF(skipped)},
    {"ksafe_loop_dead_lettered_total",
     "Failed records published to the dead-letter topic.",
     LF(dead_lettered)},
    {"ksafe_loop_duplicates_total",
     "Records skipped as already processed (dedup store).",
     LF(duplicates)},
    {"ksafe_loop_commits_total", "Commit requests sent.", LF(commits)},
    {"ksafe_loop_rebalances_total",
     "Rebalance events (assign, revoke, lost).", LF(rebalances)},
    {"ksafe_loop_pauses_total",
     "Partitions paused (retry backoff or backpressure).", LF(pauses)},
    {"ksafe_loop_resumes_total", "Partitions resumed.", LF(resumes)},
    {"ksafe_loop_revoked_total", "Partitions revoked from this member.",
     LF(revoked)},
    {"ksafe_loop_lost_total", "Partitions lost (nothing committed for them).",
     LF(lost)},
    {"ksafe_loop_store_errors_total",
     "Dedup store failures retried (charged to no record).",
     LF(store_errors)},
};

static void render_loop(text *t, const ksafe_loop_stats *ls)
{
    size_t i;

    for (i = 0; i < sizeof(loop_counters) / sizeof(*loop_counters); i++) {
        char value[32];
        uint64_t v;

        memcpy(&v, (const char *)ls + loop_counters[i].field, sizeof(v));
        put_family(t, loop_counters[i].name, "counter",
                   loop_counters[i].help);
        snprintf(value, sizeof(value), "%llu", (unsigned long long)v);
        put_sample(t, loop_counters[i].name, NULL, 0, value);
    }
}

int ksafe_stats_prometheus(char **out, const ksafe_stats *stats,
                           const ksafe_loop_stats *loop, ksafe_error *err)
{
    text t = {NULL, 0, 0, 0};

    if (out)
        *out = NULL;
    if (!out || (!stats && !loop))
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "stats_prometheus needs an out pointer and "
                                "stats, loop counters or both");
    if (!loop && stats)
        loop = stats->loop;
    put_n(&t, "", 0); /* an empty text is still a string */
    if (stats) {
        render_partitions(&t, stats);
        render_client(&t, stats);
        render_brokers(&t, stats);
    }
    if (loop)
        render_loop(&t, loop);
    if (t.oom) {
        free(t.buf);
        return ksafe__error_set(err, KSAFE_ENOMEM, 0, 0, "out of memory");
    }
    *out = t.buf;
    return 0;
}
