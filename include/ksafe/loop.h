/**
 * @file
 * ksafe/loop.h - the at-least-once loop.
 *
 * ksafe_run() polls, hands each record (or batch) to your handler, marks a
 * record processed only after the handler succeeded, and commits marked
 * positions by a policy. A failing record is retried with backoff while its
 * partition is paused (other partitions keep flowing and poll keeps being
 * called, so the member stays in the group); when retries run out, the
 * failure policy decides: stop (default), skip, or dead-letter topic.
 * Trouble that is not the record's (a failing dedup store, a refused
 * at-most-once commit) is never charged to it: the batch waits and is
 * tried again. A configuration the broker refuses for good ends the loop.
 */
#ifndef KSAFE_LOOP_H
#define KSAFE_LOOP_H

#include "common.h"
#include "consumer.h"
#include "dedup.h"
#include "error.h"
#include "producer.h"

KSAFE_BEGIN_DECLS

/** What a handler says about a record (or the first unfinished one of a batch). */
typedef enum ksafe_handler_result {
    KSAFE_HANDLER_OK = 0,  /**< done: the record may be marked processed */
    KSAFE_HANDLER_RETRY,   /**< transient failure: try again after a backoff */
    KSAFE_HANDLER_FAIL     /**< permanent failure: apply the failure policy */
} ksafe_handler_result;

/**
 * Handles one record. `msg` is borrowed for the call. On RETRY or FAIL the
 * handler may describe the problem in `err->message` (it is logged and goes
 * into dead-letter headers). Runs on the thread that called ksafe_run(),
 * or with ksafe_loop_options.workers on a worker thread, beside other
 * calls of itself. Without workers each single call must return within
 * max_poll_interval_ms of the consumer (retries do not count against it,
 * one long call does); with workers it need not.
 */
typedef ksafe_handler_result (*ksafe_record_handler)(const ksafe_message *msg,
                                                     ksafe_error *err,
                                                     void *payload);

/**
 * Handles a batch of `count` records (in poll order; per partition in offset
 * order). Returning OK means all succeeded. On RETRY or FAIL, set
 * `*succeeded` to the number of leading records that did succeed: those are
 * marked, msgs[*succeeded] is the failing one, the rest are handed again
 * later.
 */
typedef ksafe_handler_result (*ksafe_batch_handler)(
    const ksafe_message *const *msgs, size_t count, size_t *succeeded,
    ksafe_error *err, void *payload);

/** Delivery semantics. */
typedef enum ksafe_semantics {
    /** Mark after the handler succeeded: nothing lost, duplicates possible
     * after a crash (default). */
    KSAFE_AT_LEAST_ONCE = 0,
    /** Each batch's position is committed synchronously (acknowledged by
     * the broker) before the handler sees its records, and nothing is
     * retried: no record is handled twice, even across a crash, but a
     * crash or a failure loses the record. A failed record counts in
     * stats.failed (not processed) and is logged; on_failure does not
     * apply. A commit the broker refuses holds the batch, unhandled, and is
     * tried again with backoff (partitions paused, poll going on); its
     * records are marked already, so if the loop stops or loses their
     * partition before they come back, a later commit may pass them: each
     * is then logged at error level and counted in stats.failed. One sync
     * commit per batch: use batch_handler for throughput. Named so that
     * nobody picks it by accident. */
    KSAFE_AT_MOST_ONCE
} ksafe_semantics;

/** What to do with a record whose retries ran out or that failed for good. */
typedef enum ksafe_failure_policy {
    KSAFE_FAILURE_STOP = 0,   /**< ksafe_run returns KSAFE_EHANDLER (default) */
    KSAFE_FAILURE_SKIP,       /**< log it, mark it, go on */
    KSAFE_FAILURE_DEAD_LETTER /**< publish to dead_letter_topic, then mark */
} ksafe_failure_policy;

/**
 * With workers: which records must wait for which (docs/loop.md,
 * "Workers").
 */
typedef enum ksafe_ordering {
    /** Records of one partition one at a time, in offset order (default):
     * the single-threaded loop's order, parallel across partitions. */
    KSAFE_ORDER_PARTITION = 0,
    /** Records with the same key one at a time, in offset order; different
     * keys of one partition in parallel. Records without a key follow
     * their partition's order. */
    KSAFE_ORDER_KEY,
    /** No order: any record may run beside any other. */
    KSAFE_ORDER_NONE
} ksafe_ordering;

/** Counters of one ksafe_run(), readable while it runs (same thread) and after. */
typedef struct ksafe_loop_stats {
    uint64_t polled;        /**< records received from the consumer */
    uint64_t processed;     /**< records whose handler returned OK */
    uint64_t retries;       /**< handler calls that asked for a retry */
    uint64_t failed;        /**< records that exhausted retries or failed
                                 (at-most-once: whose handler failed) */
    uint64_t skipped;       /**< failed records skipped (SKIP policy) */
    uint64_t dead_lettered; /**< failed records published to the DLQ */
    uint64_t duplicates;    /**< records skipped as already processed (dedup) */
    uint64_t commits;       /**< commit requests sent (at-most-once: one
                                 sync commit per batch, plus the policy's) */
    uint64_t rebalances;    /**< rebalance events (assign, revoke, lost) */
    uint64_t pauses;        /**< partitions paused (retry or backpressure) */
    uint64_t resumes;       /**< partitions resumed */
    uint64_t revoked;       /**< partitions revoked from this member */
    uint64_t lost;          /**< partitions lost (no commit for them) */
    uint64_t store_errors;  /**< dedup store failures retried (no record
                                 was charged for them) */
    /* with workers (0 without) */
    uint64_t in_flight;     /**< records received and not yet committable
                                 (running, waiting their turn, or done
                                 behind an unfinished one) */
    uint64_t waiting;       /**< of those, waiting behind their key or
                                 partition, or for a free worker */
    uint64_t oldest_in_flight_ms; /**< age of the oldest unfinished record */
    uint64_t worker_busy_ms; /**< time the workers spent in the handler */
    uint64_t reserved[1];   /**< for future counters; zero */
} ksafe_loop_stats;

/** The version of ksafe_loop_options these headers define. */
#define KSAFE_LOOP_OPTIONS_VERSION 1

/** Loop options. Initialise with KSAFE_LOOP_OPTIONS_INIT. */
typedef struct ksafe_loop_options {
    unsigned int version;       /**< KSAFE_LOOP_OPTIONS_VERSION */
    /** Exactly one of handler / batch_handler. */
    ksafe_record_handler handler;
    ksafe_batch_handler batch_handler; /**< or handler, not both */
    void *payload;              /**< passed to the handler */
    size_t batch_size;          /**< batch handler: at most; default 100 */
    int batch_max_wait_ms;      /**< batch handler: wait to fill; default 100 */
    ksafe_semantics semantics;  /**< default KSAFE_AT_LEAST_ONCE */
    /* commit policy: async commit when either is reached (0 disables one,
     * not both); sync commits at revoke and stop come on top. */
    uint64_t commit_every_records; /**< default 1000 */
    int commit_interval_ms;        /**< default 1000 */
    /* retry with exponential backoff */
    int max_attempts;            /**< handler calls per record, >= 1; default 5 */
    int backoff_initial_ms;      /**< default 100 */
    double backoff_multiplier;   /**< >= 1.0; default 2.0 */
    int backoff_max_ms;          /**< default 10000 */
    double backoff_jitter;       /**< 0..1, +/- fraction; default 0.2 */
    /* failures */
    ksafe_failure_policy on_failure;  /**< default KSAFE_FAILURE_STOP */
    const char *dead_letter_topic;    /**< for DEAD_LETTER; copied */
    ksafe_producer *dead_letter_producer; /**< borrowed; required for
                                              DEAD_LETTER (ksafe_run refuses
                                              NULL with KSAFE_EINVAL) */
    /* backpressure */
    size_t max_buffered_per_partition; /**< pause above this; default 1000 */
    int poll_timeout_ms;               /**< default 100 */
    ksafe_loop_stats *stats;           /**< optional, filled as it runs */
    /*
     * Deduplication (ksafe/dedup.h). With a store, each record's key is
     * claimed before the handler runs; a key already done is skipped and
     * counted in stats.duplicates. The claim, the handler's effects (when
     * they use the store's database connection) and the mark commit in one
     * store transaction: one per record with `handler`, one per batch with
     * `batch_handler` (then a batch is all or nothing: on a failure every
     * record of it is handed again, its effects rolled back with the
     * transaction). A record whose key cannot be extracted fails for good
     * (the failure policy applies). A record that the policy skips or
     * dead-letters in a batch whose earlier records of its partition were
     * rolled back is marked only once those are done again: nothing is
     * committed past a record whose effects were rolled back.
     * The loop opens and ends the store's transactions itself, so a SQL
     * store in KSAFE_DEDUP_TXN_CALLER mode is refused (KSAFE_EINVAL).
     */
    ksafe_dedup_store *dedup_store;   /**< borrowed; NULL: no dedup */
    const ksafe_dedup_key *dedup_key; /**< borrowed; required with a store */
    /** 1: the store also keeps each partition's next offset with the marks,
     * and partitions assigned to this member start from it, so a database
     * sink sees each record's effects once even across crashes and
     * rebalances. */
    int dedup_offsets;
    /**
     * How long the dedup store may keep failing (begin, claim, mark,
     * store_offset, commit, or the start check) before ksafe_run stops with
     * KSAFE_ESTORE naming the store's error; default 60000, 0: stop at the
     * first failure. Store trouble is never charged to a record: it does
     * not count against max_attempts and never reaches on_failure. The
     * batch is rolled back and its partitions wait paused with the loop's
     * backoff (backoff_initial_ms .. backoff_max_ms) while poll keeps the
     * member in the group; a success resets the clock.
     */
    int store_retry_max_ms;
    /**
     * Workers (docs/loop.md, "Workers"). 0 or 1 (default): the handler runs
     * on the thread that called ksafe_run, one record at a time. 2..1024:
     * the handler runs on that many worker threads, in the order
     * `ordering` asks, while the calling thread only polls, dispatches and
     * commits, so the member keeps its partitions however long one call
     * takes. The handler must then be safe to call from several threads at
     * once (`payload` is shared) and may not call the consumer; the record
     * it gets stays valid for the call. Each partition commits only up to
     * its lowest unfinished record, so a crash repeats at most the records
     * after that. With workers: a record `handler` (no batch_handler),
     * KSAFE_AT_LEAST_ONCE, no dedup_store (yet); anything else is refused
     * with KSAFE_EINVAL.
     */
    int workers;
    /** With workers; default KSAFE_ORDER_PARTITION. Without workers every
     * ordering holds (one record at a time, in offset order). */
    ksafe_ordering ordering;
    /** With workers: records in flight (see ksafe_loop_stats.in_flight) over
     * all partitions before every partition is paused; default 10000. */
    size_t max_in_flight;
    /** With workers: in flight per partition before it is paused; default
     * 1000. A paused partition resumes at half. */
    size_t max_in_flight_per_partition;
    /** With workers: at a revoke or a stop, how long running handler calls
     * of the partitions given up are waited for before their results are
     * dropped (their records come again); default 10000, keep it well
     * under the consumer's session_timeout_ms. */
    int drain_timeout_ms;
} ksafe_loop_options;

/** The defaults: at-least-once, commits every 1000 records or 1 s, 5
 * attempts with backoff, then KSAFE_FAILURE_STOP. */
#define KSAFE_LOOP_OPTIONS_INIT                                              \
    { KSAFE_LOOP_OPTIONS_VERSION, NULL, NULL, NULL, 100, 100,                \
      KSAFE_AT_LEAST_ONCE, 1000, 1000, 5, 100, 2.0, 10000, 0.2,              \
      KSAFE_FAILURE_STOP, NULL, NULL, 1000, 100, NULL, NULL, NULL, 0,        \
      60000, 0, KSAFE_ORDER_PARTITION, 10000, 1000, 10000 }

/** Sets `opts` to the defaults of `version`. */
KSAFE_EXTERN int ksafe_loop_options_init(ksafe_loop_options *opts,
                                         unsigned int version);

/**
 * Runs the loop on a subscribed consumer until ksafe_consumer_stop() is
 * called (returns 0) or:
 * - a record fails under KSAFE_FAILURE_STOP: KSAFE_EHANDLER naming topic,
 *   partition and offset; nothing at or after that record is committed;
 * - the dedup store kept failing for store_retry_max_ms: KSAFE_ESTORE with
 *   the store's error;
 * - the broker refuses the member for a reason retrying cannot change
 *   (invalid session timeout, group or topic authorization failed, invalid
 *   group id, inconsistent group protocol, group full): KSAFE_EKAFKA with
 *   rdkafka_code, the group and the setting to fix;
 * - the consumer hits a fatal error: KSAFE_EFATAL.
 * Refused at start: invalid options (KSAFE_EINVAL, KSAFE_EVERSION), a
 * dedup store in caller-owned transaction mode (KSAFE_EINVAL).
 * In every case it commits what was marked and closes the consumer before
 * returning; free it afterwards.
 */
KSAFE_EXTERN int ksafe_run(ksafe_consumer *c, const ksafe_loop_options *opts,
                           ksafe_error *err);

/**
 * Installs SIGINT and SIGTERM handlers that call ksafe_consumer_stop(c).
 * For programs with one loop (the samples); 0 or KSAFE_EINVAL.
 */
KSAFE_EXTERN int ksafe_stop_on_signals(ksafe_consumer *c, ksafe_error *err);

KSAFE_END_DECLS

#endif
