/*
 * lib/consumer_stats.c - the consumer's statistics: librdkafka's document,
 * parsed and completed with ksafe's processed positions, handed to
 * on_stats.
 *
 * The consumer forwards librdkafka's main queue to its own
 * (rd_kafka_poll_set_consumer), so librdkafka's stats callback runs inside
 * rd_kafka_consumer_poll(), on the thread that polls: the position table
 * can be read without a lock, and on_stats runs where the user expects.
 * After close the main queue moves to librdkafka's background thread
 * (consumer_close.c), where stats_cb only sees `closed` and returns 0.
 */
#include <stdio.h>
#include <stdlib.h>

#include "consumer_internal.h"
#include "stats_internal.h"

void ksafe__consumer_stats_fill(ksafe_consumer *c, ksafe_stats *st)
{
    size_t i;

    st->group_id = c->group_id;
    for (i = 0; i < st->partition_count; i++) {
        ksafe_stats_partition *sp = &st->partitions[i];
        ksafe__position *p = ksafe__consumer_find(c, sp->topic,
                                                  sp->partition);
        int64_t committed = sp->committed_offset;

        sp->assigned = p != NULL;
        if (!p)
            continue;
        /* The document was taken on librdkafka's thread a moment ago;
         * ksafe's own record of an accepted commit may be newer. */
        if (p->committed >= 0 &&
            (!ksafe_stats_known(committed) || p->committed > committed))
            committed = p->committed;
        sp->marked_offset = p->marked >= 0 ? p->marked : committed;
        sp->processed_lag =
            ksafe__stats_behind(sp->high_watermark, sp->marked_offset);
    }
}

static int stats_cb(rd_kafka_t *rk, char *json, size_t len, void *opaque)
{
    ksafe_consumer *c = opaque;
    ksafe_stats *st;
    ksafe_error err;

    KSAFE__UNUSED(rk);
    if (!c->on_stats || c->closed)
        return 0; /* 0: librdkafka frees the document */
    if (ksafe_stats_parse(&st, json, len, &err)) {
        /* Once: a librdkafka that writes what we cannot read does so
         * every interval. */
        if (!c->stats_warned++)
            ksafe__log(&c->cl, KSAFE_LOG_WARNING, "STATS",
                       "statistics document skipped (further ones are "
                       "skipped silently): %s",
                       err.message);
        return 0;
    }
    ksafe__consumer_stats_fill(c, st);
    c->on_stats(c, st, c->stats_payload);
    ksafe_stats_free(st);
    return 0;
}

int ksafe__consumer_stats_conf(ksafe_consumer *c,
                               const ksafe_consumer_options *o,
                               rd_kafka_conf_t *conf, ksafe_error *err)
{
    char interval[16];

    if (!o->statistics_interval_ms)
        return 0;
    if (!o->on_stats) {
        ksafe__log(&c->cl, KSAFE_LOG_WARNING, "STATS",
                   "statistics_interval_ms is %d but on_stats is NULL: no "
                   "statistics are collected (set on_stats to receive them)",
                   o->statistics_interval_ms);
        return 0;
    }
    if (!(c->group_id = ksafe__strdup(o->group_id)))
        return ksafe__error_set(err, KSAFE_ENOMEM, 0, 0, "out of memory");
    c->on_stats = o->on_stats;
    c->stats_payload = o->stats_payload;
    snprintf(interval, sizeof(interval), "%d", o->statistics_interval_ms);
    rd_kafka_conf_set_stats_cb(conf, stats_cb);
    return ksafe__conf_set(conf, "statistics.interval.ms", interval, err);
}
