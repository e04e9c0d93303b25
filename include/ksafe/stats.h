/**
 * @file
 * ksafe/stats.h - librdkafka's statistics as typed values: lag per
 * partition, queues, requests, round trips and the group's state, and their
 * rendering in the Prometheus text format.
 *
 * librdkafka emits a JSON document every statistics.interval.ms (the
 * consumer's typed option statistics_interval_ms). ksafe_stats_parse()
 * turns one into a ksafe_stats; a consumer with the option set hands one to
 * its on_stats callback, with ksafe's processed (marked) positions filled
 * in. Which JSON field each value comes from: docs/stats.md.
 *
 * A value the document does not hold (librdkafka left it out, in this
 * version or this state, or gave its own "no offset" -1001) is
 * KSAFE_STATS_UNKNOWN, never 0: test it with ksafe_stats_known().
 */
#ifndef KSAFE_STATS_H
#define KSAFE_STATS_H

#include "common.h"
#include "error.h"

KSAFE_BEGIN_DECLS

struct ksafe_loop_stats; /* ksafe/loop.h */

/** A value the statistics do not hold. No offset, count or time is this
 * negative, so it cannot be mistaken for one. */
#define KSAFE_STATS_UNKNOWN INT64_MIN

/** 1 when `v` is a value, 0 when it is KSAFE_STATS_UNKNOWN. */
static inline int ksafe_stats_known(int64_t v)
{
    return v != KSAFE_STATS_UNKNOWN;
}

/** One broker connection of the client (librdkafka's `brokers` object). */
typedef struct ksafe_stats_broker {
    /** `name`: "host:port/id", or a logical broker such as
     * "GroupCoordinator"; NULL if absent. */
    const char *name;
    int64_t node_id;       /**< `nodeid` */
    const char *state;     /**< `state`, e.g. "UP"; NULL if absent */
    int64_t requests_queued;    /**< `outbuf_cnt`: waiting to be sent */
    int64_t requests_in_flight; /**< `waitresp_cnt`: sent, no answer yet */
    int64_t retries;       /**< `txretries`: requests sent again (total) */
    /** `rtt.avg` in microseconds; unknown while `rtt.cnt` is 0 (no sample
     * in the last interval). */
    int64_t rtt_avg_us;
    int64_t rtt_p99_us;    /**< `rtt.p99` in microseconds; as rtt_avg_us */
    int64_t reserved[4];   /**< for future fields; zero */
} ksafe_stats_broker;

/** One partition of a topic the client knows (`topics.TOPIC.partitions`);
 * librdkafka's internal partition -1 is left out, and so is a partition
 * the document names twice (the first one counts). */
typedef struct ksafe_stats_partition {
    const char *topic;         /**< the topic; never NULL */
    int32_t partition;         /**< `partition`, >= 0 */
    /** 1 when assigned to this consumer, 0 when not, -1 unknown (only a
     * consumer's on_stats knows; ksafe_stats_parse() leaves -1). A
     * partition not assigned (0) keeps the values librdkafka last had for
     * it, frozen since it was revoked: ksafe_stats_prometheus() leaves it
     * out, and its lag is not this member's. */
    int assigned;
    int64_t high_watermark;    /**< `hi_offset` */
    int64_t last_stable_offset; /**< `ls_offset` (read_committed's end) */
    int64_t committed_offset;  /**< `committed_offset`: the group's position */
    /**
     * ksafe's processed position: the offset after the last record marked
     * with ksafe_consumer_done(), or the committed offset when nothing was
     * marked since the partition was assigned. Filled by the consumer for
     * on_stats; unknown from ksafe_stats_parse() and for partitions not
     * assigned to the consumer.
     */
    int64_t marked_offset;
    /** high_watermark - committed_offset, at least 0: records the group
     * has not committed yet. */
    int64_t lag;
    /** high_watermark - marked_offset, at least 0: records not processed
     * yet. */
    int64_t processed_lag;
    /** For future fields (the stall watchdog's state); zero. (librdkafka's
     * per-partition `fetchq_cnt` is not the partition's: see
     * ksafe_stats.fetch_queue.) */
    int64_t reserved[9];
} ksafe_stats_partition;

/**
 * One statistics document of a client. Created by ksafe_stats_parse() or
 * handed to a consumer's on_stats callback (borrowed for the call).
 * Strings and arrays live in the stats' own storage.
 */
typedef struct ksafe_stats {
    const char *type;      /**< `type`: "consumer" or "producer"; or NULL */
    const char *name;      /**< `name`: the handle's name, e.g.
                                "rdkafka#consumer-1"; or NULL */
    const char *client_id; /**< `client_id`; or NULL */
    /** The consumer group: not in librdkafka's document; the consumer
     * fills it for on_stats, ksafe_stats_parse() leaves NULL. You may point
     * it to a string of yours that outlives the stats. */
    const char *group_id;
    int64_t time_s;        /**< `time`: wall clock, seconds since the epoch */
    /* producer queue: unknown in a document of another `type` (a
     * consumer's holds 0, which is no queue) */
    int64_t queue_messages; /**< `msg_cnt`: records in the producer queue */
    int64_t queue_bytes;    /**< `msg_size`: their bytes */
    /* requests, summed over `brokers` */
    int64_t requests_queued;    /**< sum of `outbuf_cnt` */
    int64_t requests_in_flight; /**< sum of `waitresp_cnt` */
    int64_t retries;            /**< sum of `txretries` */
    /* consumer group (`cgrp`; all unknown for a producer) */
    const char *group_state; /**< `cgrp.state`, e.g. "up"; or NULL */
    const char *join_state;  /**< `cgrp.join_state`, e.g. "steady"; or NULL */
    int64_t rebalances;      /**< `cgrp.rebalance_cnt` */
    /** `cgrp.rebalance_age`: since the last rebalance; unknown while
     * rebalances is 0 or unknown (librdkafka writes 0 then). */
    int64_t rebalance_age_ms;
    int64_t assignment_size; /**< `cgrp.assignment_size` */
    /** The loop's counters when the loop drives the consumer, or NULL
     * (reserved: ksafe_run does not fill it yet). */
    const struct ksafe_loop_stats *loop;
    ksafe_stats_broker *brokers;       /**< broker_count entries */
    size_t broker_count;               /**< entries in brokers */
    ksafe_stats_partition *partitions; /**< partition_count entries */
    size_t partition_count;            /**< entries in partitions */
    /**
     * Records fetched and not yet polled, over all partitions: librdkafka
     * forwards every partition's fetch queue to the consumer's one queue
     * and writes that queue's length as each partition's `fetchq_cnt`, so
     * this is their largest, and no partition has one of its own.
     */
    int64_t fetch_queue;
    int64_t reserved[7];               /**< for future fields; zero */
} ksafe_stats;

/**
 * Parses one librdkafka statistics document (`len` bytes, need not be
 * NUL-terminated). On success *out is new stats owned by the caller:
 * release them with ksafe_stats_free(). Fields missing, of another type
 * or out of range are unknown; fields ksafe does not know are ignored, so
 * documents of any librdkafka version parse. Errors: KSAFE_EINVAL (NULL
 * arguments, text that is not JSON or is cut short, a document that is not
 * an object: the message says where), KSAFE_ENOMEM. *out is NULL on error.
 */
KSAFE_EXTERN int ksafe_stats_parse(ksafe_stats **out, const char *json,
                                   size_t len, ksafe_error *err);

/** Releases stats from ksafe_stats_parse(). Accepts NULL. */
KSAFE_EXTERN void ksafe_stats_free(ksafe_stats *stats);

/**
 * Renders `stats` and the loop's counters `loop` (either may be NULL, not
 * both; with `loop` NULL, stats->loop is used) in the Prometheus text
 * exposition format 0.0.4, for a service's own /metrics. Per partition:
 * kafka_consumergroup_lag, kafka_consumergroup_current_offset and
 * kafka_topic_partition_current_offset (the names and labels of the common
 * Kafka exporters: consumergroup, topic, partition), ksafe_-prefixed
 * gauges for the rest, ksafe_loop_*_total counters for the loop. An
 * unknown value is left out, never written as 0, and so are partitions
 * with assigned == 0 (revoked: their values are frozen). The text is one
 * whole page: each call writes every family's HELP and TYPE, so two
 * renderings concatenated are not valid 0.0.4; render a client's stats and
 * its loop counters in one call, and two clients as two pages. On success
 * *out is a NUL-terminated text owned by the caller (release it with
 * free()).
 * Errors: KSAFE_EINVAL, KSAFE_ENOMEM; *out is NULL on error.
 */
KSAFE_EXTERN int ksafe_stats_prometheus(char **out, const ksafe_stats *stats,
                                        const struct ksafe_loop_stats *loop,
                                        ksafe_error *err);

KSAFE_END_DECLS

#endif
