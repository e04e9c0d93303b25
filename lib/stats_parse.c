/*
 * lib/stats_parse.c - librdkafka's statistics JSON into a ksafe_stats.
 *
 * The document is the only source: whatever it lacks, holds with another
 * type or out of range, is unknown. No field is required, so documents of
 * older and newer librdkafka versions parse alike. The strings of the
 * result point into the jansson tree, which the stats keep.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "stats_internal.h"

/* An integer member of `obj`: a JSON integer, or a real that holds one. */
static int64_t number(const json_t *obj, const char *key)
{
    const json_t *v = json_object_get(obj, key);
    double d;

    if (json_is_integer(v))
        return (int64_t)json_integer_value(v);
    if (!json_is_real(v))
        return KSAFE_STATS_UNKNOWN;
    d = json_real_value(v);
    /* within +-2^53 every integral double is exact */
    if (!isfinite(d) || d != floor(d) || fabs(d) > 9007199254740992.0)
        return KSAFE_STATS_UNKNOWN;
    return (int64_t)d;
}

/* Offsets, counts, sizes and ages are never negative: librdkafka writes
 * -1001 (RD_KAFKA_OFFSET_INVALID) or -1 for "none". */
static int64_t count(const json_t *obj, const char *key)
{
    int64_t v = number(obj, key);

    return v >= 0 ? v : KSAFE_STATS_UNKNOWN;
}

static const char *string(const json_t *obj, const char *key)
{
    return json_string_value(json_object_get(obj, key));
}

/* a + b where both are known; unknown otherwise. */
static int64_t add(int64_t a, int64_t b)
{
    if (!ksafe_stats_known(a) || !ksafe_stats_known(b))
        return KSAFE_STATS_UNKNOWN;
    if (a > INT64_MAX - b)
        return INT64_MAX;
    return a + b;
}

/* A sum over brokers: unknown only when no broker holds the field. */
static void sum_into(int64_t *total, int64_t v)
{
    if (!ksafe_stats_known(v))
        return;
    *total = ksafe_stats_known(*total) ? add(*total, v) : v;
}

int64_t ksafe__stats_behind(int64_t end, int64_t position)
{
    if (!ksafe_stats_known(end) || !ksafe_stats_known(position))
        return KSAFE_STATS_UNKNOWN;
    return end > position ? end - position : 0;
}

static void parse_broker(const json_t *b, ksafe_stats_broker *out)
{
    const json_t *rtt = json_object_get(b, "rtt");
    int64_t samples = count(rtt, "cnt");

    memset(out, 0, sizeof(*out));
    out->name = string(b, "name");
    out->node_id = number(b, "nodeid");
    out->state = string(b, "state");
    out->requests_queued = count(b, "outbuf_cnt");
    out->requests_in_flight = count(b, "waitresp_cnt");
    out->retries = count(b, "txretries");
    /* No sample in the window: librdkafka writes 0, which is no time. */
    out->rtt_avg_us = out->rtt_p99_us = KSAFE_STATS_UNKNOWN;
    if (ksafe_stats_known(samples) && samples > 0) {
        out->rtt_avg_us = count(rtt, "avg");
        out->rtt_p99_us = count(rtt, "p99");
    }
}

static int parse_brokers(ksafe_stats *st, const json_t *brokers)
{
    const char *key;
    json_t *b;
    size_t n = 0;

    st->requests_queued = st->requests_in_flight = st->retries =
        KSAFE_STATS_UNKNOWN;
    if (!json_is_object(brokers) || !json_object_size(brokers))
        return 0;
    st->brokers = calloc(json_object_size(brokers), sizeof(*st->brokers));
    if (!st->brokers)
        return KSAFE_ENOMEM;
    json_object_foreach((json_t *)brokers, key, b) {
        ksafe_stats_broker *o = &st->brokers[n];

        if (!json_is_object(b))
            continue;
        parse_broker(b, o);
        if (!o->name)
            o->name = key;
        sum_into(&st->requests_queued, o->requests_queued);
        sum_into(&st->requests_in_flight, o->requests_in_flight);
        sum_into(&st->retries, o->retries);
        n++;
    }
    st->broker_count = n;
    return 0;
}

/* The partition number: its `partition` member, else its key. */
static int64_t partition_number(const json_t *p, const char *key)
{
    int64_t v = number(p, "partition");
    char *end;
    long long k;

    if (ksafe_stats_known(v) || !*key)
        return v;
    k = strtoll(key, &end, 10);
    return *end ? KSAFE_STATS_UNKNOWN : (int64_t)k;
}

static void parse_partition(const json_t *p, const char *topic,
                            int32_t partition, ksafe_stats_partition *out)
{
    memset(out, 0, sizeof(*out));
    out->topic = topic;
    out->partition = partition;
    out->assigned = -1;
    out->high_watermark = count(p, "hi_offset");
    out->last_stable_offset = count(p, "ls_offset");
    out->committed_offset = count(p, "committed_offset");
    out->marked_offset = KSAFE_STATS_UNKNOWN;
    out->lag = ksafe__stats_behind(out->high_watermark, out->committed_offset);
    out->processed_lag = KSAFE_STATS_UNKNOWN;
}

static int64_t max_known(int64_t a, int64_t b)
{
    if (!ksafe_stats_known(a))
        return b;
    return ksafe_stats_known(b) && b > a ? b : a;
}

/* ---- one entry per series ----------------------------------------------
 *
 * A hostile (or broken) document can name one partition twice: two topic
 * keys with one "topic", keys "0" and "00", a "partition" member against
 * another's key; or one broker twice (a "name" against another's key).
 * Rendered, each would be a series written twice, which a scraper
 * refuses. The first entry counts; the others are dropped. Sorting an
 * index keeps this O(n log n) on documents of any size. */

typedef struct entry_key {
    const char *name;
    int64_t number;
    size_t index;
} entry_key;

static int entry_cmp(const void *a, const void *b)
{
    const entry_key *x = a, *y = b;
    int c = strcmp(x->name, y->name);

    if (c)
        return c;
    if (x->number != y->number)
        return x->number < y->number ? -1 : 1;
    return x->index < y->index ? -1 : x->index > y->index;
}

/* keys[i] describes element i of `base` (n of `size` bytes); the array is
 * compacted in place, in its order; returns the new count, or (size_t)-1
 * out of memory. */
static size_t drop_repeats(void *base, size_t size, entry_key *keys,
                           size_t n)
{
    unsigned char *repeat, *b = base;
    size_t i, kept = 0;

    if (n < 2)
        return n;
    if (!(repeat = calloc(n, 1)))
        return (size_t)-1;
    qsort(keys, n, sizeof(*keys), entry_cmp);
    for (i = 1; i < n; i++)
        if (!strcmp(keys[i].name, keys[i - 1].name) &&
            keys[i].number == keys[i - 1].number)
            repeat[keys[i].index] = 1;
    for (i = 0; i < n; i++) {
        if (repeat[i])
            continue;
        if (kept != i)
            memcpy(b + kept * size, b + i * size, size);
        kept++;
    }
    free(repeat);
    return kept;
}

static int unique_entries(ksafe_stats *st)
{
    size_t n = st->partition_count > st->broker_count ? st->partition_count
                                                       : st->broker_count;
    entry_key *keys;
    size_t i, left;

    if (n < 2)
        return 0;
    if (!(keys = malloc(n * sizeof(*keys))))
        return KSAFE_ENOMEM;
    for (i = 0; i < st->partition_count; i++) {
        keys[i].name = st->partitions[i].topic;
        keys[i].number = st->partitions[i].partition;
        keys[i].index = i;
    }
    left = drop_repeats(st->partitions, sizeof(*st->partitions), keys,
                        st->partition_count);
    if (left == (size_t)-1)
        goto oom;
    st->partition_count = left;
    for (i = 0; i < st->broker_count; i++) {
        keys[i].name = st->brokers[i].name;
        keys[i].number = 0;
        keys[i].index = i;
    }
    left = drop_repeats(st->brokers, sizeof(*st->brokers), keys,
                        st->broker_count);
    if (left == (size_t)-1)
        goto oom;
    st->broker_count = left;
    free(keys);
    return 0;
oom:
    free(keys);
    return KSAFE_ENOMEM;
}

static size_t partitions_of(const json_t *topics)
{
    const char *key;
    json_t *t;
    size_t n = 0;

    json_object_foreach((json_t *)topics, key, t) {
        const json_t *parts = json_object_get(t, "partitions");
        if (json_is_object(parts))
            n += json_object_size(parts);
    }
    return n;
}

static int parse_topics(ksafe_stats *st, const json_t *topics)
{
    const char *tkey, *pkey;
    json_t *t, *p;
    size_t cap, n = 0;

    st->fetch_queue = KSAFE_STATS_UNKNOWN;
    if (!json_is_object(topics) || !(cap = partitions_of(topics)))
        return 0;
    if (!(st->partitions = calloc(cap, sizeof(*st->partitions))))
        return KSAFE_ENOMEM;
    json_object_foreach((json_t *)topics, tkey, t) {
        const json_t *parts = json_object_get(t, "partitions");
        const char *topic = string(t, "topic");

        if (!json_is_object(parts))
            continue;
        if (!topic || !*topic)
            topic = tkey;
        json_object_foreach((json_t *)parts, pkey, p) {
            int64_t num;

            if (!json_is_object(p))
                continue;
            num = partition_number(p, pkey);
            /* -1 is librdkafka's internal "unassigned" partition */
            if (!ksafe_stats_known(num) || num < 0 || num > INT32_MAX)
                continue;
            parse_partition(p, topic, (int32_t)num, &st->partitions[n++]);
            /* the consumer queue's length, written on every partition */
            st->fetch_queue = max_known(st->fetch_queue,
                                        count(p, "fetchq_cnt"));
        }
    }
    st->partition_count = n;
    return 0;
}

static void parse_group(ksafe_stats *st, const json_t *cgrp)
{
    /* json_object_get(NULL or a non-object) is NULL: all unknown */
    st->group_state = string(cgrp, "state");
    st->join_state = string(cgrp, "join_state");
    st->rebalances = count(cgrp, "rebalance_cnt");
    /* before the first rebalance librdkafka writes an age of 0 */
    st->rebalance_age_ms = ksafe_stats_known(st->rebalances) &&
                                   st->rebalances > 0
                               ? count(cgrp, "rebalance_age")
                               : KSAFE_STATS_UNKNOWN;
    st->assignment_size = count(cgrp, "assignment_size");
}

int ksafe_stats_parse(ksafe_stats **out, const char *json, size_t len,
                      ksafe_error *err)
{
    ksafe__stats *s;
    json_error_t je;
    json_t *root;
    int rc;

    if (out)
        *out = NULL;
    if (!out || !json)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "stats_parse needs an out pointer and a "
                                "document");
    root = json_loadb(json, len, 0, &je);
    if (!root)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "statistics JSON refused at line %d, column "
                                "%d (byte %d of %zu): %s",
                                je.line, je.column, je.position, len,
                                je.text);
    if (!json_is_object(root)) {
        json_decref(root);
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "statistics JSON is not an object: not a "
                                "librdkafka statistics document");
    }
    if (!(s = calloc(1, sizeof(*s)))) {
        json_decref(root);
        return ksafe__error_set(err, KSAFE_ENOMEM, 0, 0, "out of memory");
    }
    s->root = root;
    s->pub.type = string(root, "type");
    s->pub.name = string(root, "name");
    s->pub.client_id = string(root, "client_id");
    s->pub.time_s = count(root, "time");
    s->pub.queue_messages = s->pub.queue_bytes = KSAFE_STATS_UNKNOWN;
    /* a consumer writes msg_cnt 0: it has no producer queue */
    if (!s->pub.type || !strcmp(s->pub.type, "producer")) {
        s->pub.queue_messages = count(root, "msg_cnt");
        s->pub.queue_bytes = count(root, "msg_size");
    }
    parse_group(&s->pub, json_object_get(root, "cgrp"));
    if ((rc = parse_brokers(&s->pub, json_object_get(root, "brokers"))) ||
        (rc = parse_topics(&s->pub, json_object_get(root, "topics"))) ||
        (rc = unique_entries(&s->pub))) {
        ksafe_stats_free(&s->pub);
        return ksafe__error_set(err, rc, 0, 0, "out of memory");
    }
    *out = &s->pub;
    return 0;
}

void ksafe_stats_free(ksafe_stats *stats)
{
    ksafe__stats *s = (ksafe__stats *)stats;

    if (!s)
        return;
    free(s->pub.brokers);
    free(s->pub.partitions);
    json_decref(s->root);
    free(s);
}
