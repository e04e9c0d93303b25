/**
 * @file
 * ksafe/scenario.h - the scenario kit: test your own handler under faults.
 *
 * Built on the test kit (ksafe/mock.h) and independent of any test
 * framework: every function returns 0 or a negative KSAFE_E* code with a
 * message, and your framework asserts on it. A scenario reads like
 *
 *   given my handler and a topic holding a data set
 *   (ksafe_test_produce()), when a broker drops mid-batch
 *   (ksafe_test_loop_start(), ksafe_test_broker_outage()), then every record
 *   was handled (ksafe_test_records_missing()) and nothing past an
 *   unhandled one was committed (ksafe_test_committed()).
 *
 * Records are identified by (partition, offset). The faults need the
 * embedded cluster: on a real one (KSAFE_TEST_BOOTSTRAP) they return
 * KSAFE_ESTATE, and the test should report itself skipped. Producing,
 * reading back, committed offsets, the background loop and the forced
 * rebalance work on both. See docs/testing.md, "The scenario kit", and
 * samples/test_my_handler.c.
 */
#ifndef KSAFE_SCENARIO_H
#define KSAFE_SCENARIO_H

#include <stddef.h>
#include <stdint.h>

#include "common.h"
#include "consumer.h"
#include "error.h"
#include "loop.h"
#include "mock.h"

KSAFE_BEGIN_DECLS

/* ---- record sets ------------------------------------------------------- */

/** One record of a set; the pointers are owned by the set. */
typedef struct ksafe_test_record {
    int32_t partition;  /**< partition */
    int64_t offset;     /**< offset in the partition */
    const void *key;    /**< key bytes (NUL-terminated copy), NULL when none */
    size_t key_len;     /**< key length */
    const void *value;  /**< value bytes (NUL-terminated copy), NULL when none */
    size_t value_len;   /**< value length */
} ksafe_test_record;

/**
 * A set of records (opaque), in the order they were added, duplicates kept.
 * Thread-safe: a handler on the loop's thread may add to it while the test
 * thread reads it. Created by ksafe_test_records_new(), released by
 * ksafe_test_records_free().
 */
typedef struct ksafe_test_records ksafe_test_records;

/** Creates an empty set. Errors: KSAFE_EINVAL (NULL out), KSAFE_ENOMEM. */
KSAFE_EXTERN int ksafe_test_records_new(ksafe_test_records **out,
                                        ksafe_error *err);

/**
 * Adds a copy of a record. NULL key or value with length 0 means none.
 * Errors: KSAFE_EINVAL (NULL set, negative partition or offset, NULL bytes
 * with a length), KSAFE_ENOMEM.
 */
KSAFE_EXTERN int ksafe_test_records_add(ksafe_test_records *rs,
                                        int32_t partition, int64_t offset,
                                        const void *key, size_t key_len,
                                        const void *value, size_t value_len,
                                        ksafe_error *err);

/** Adds a copy of a consumed record: what a handler calls. Errors: as
 * ksafe_test_records_add(), KSAFE_EINVAL for a NULL message. */
KSAFE_EXTERN int ksafe_test_records_add_message(ksafe_test_records *rs,
                                                const ksafe_message *msg,
                                                ksafe_error *err);

/** Records added, duplicates included; 0 for NULL. */
KSAFE_EXTERN size_t ksafe_test_records_count(const ksafe_test_records *rs);

/** Distinct (partition, offset) pairs; 0 for NULL. */
KSAFE_EXTERN size_t ksafe_test_records_distinct(const ksafe_test_records *rs);

/**
 * Copies the `index`-th record added into *out; its pointers stay valid
 * until the set is freed. Errors: KSAFE_EINVAL (NULL argument or index
 * past the end).
 */
KSAFE_EXTERN int ksafe_test_records_get(const ksafe_test_records *rs,
                                        size_t index, ksafe_test_record *out,
                                        ksafe_error *err);

/**
 * How many records of `expected` have no record at the same (partition,
 * offset) in `actual`; the first of them (in `expected`'s order) goes into
 * *first when `first` is not NULL and one is missing. Each record of
 * `expected` counts, duplicates too. It is compared with the first record
 * added at its place in `actual`: other key or value bytes there count as
 * missing (the topic was not what the test thinks). NULL sets count as
 * empty.
 */
KSAFE_EXTERN size_t ksafe_test_records_missing(
    const ksafe_test_records *expected, const ksafe_test_records *actual,
    ksafe_test_record *first);

/** Releases the set. Accepts NULL. */
KSAFE_EXTERN void ksafe_test_records_free(ksafe_test_records *rs);

/* ---- data on the cluster ----------------------------------------------- */

/**
 * Produces `count` records to `topic` with a safe-preset producer
 * (ksafe_test_cluster_producer_options()): key "key-<i % 16>", value
 * "value-<i>", i from 0, partitioned by key. Waits for every delivery
 * report (30 s at most) and adds each delivered record, with its
 * partition and offset, to `produced` (may be NULL). On the embedded
 * cluster it sends one request at a time: that cluster does not check an
 * idempotent producer's sequence numbers, and with more in flight a batch
 * refused by an injected error can be acknowledged by the next one's
 * success without being written (a record acknowledged without an offset
 * is reported undelivered).
 * Errors: KSAFE_EINVAL, KSAFE_EUNDELIVERED (a record was not delivered:
 * the message names it and the broker's error; the delivered ones are in
 * `produced`), and those of ksafe_producer_new() and _send().
 */
KSAFE_EXTERN int ksafe_test_produce(ksafe_test_cluster *tc, const char *topic,
                                    size_t count, ksafe_test_records *produced,
                                    ksafe_error *err);

/**
 * Reads `topic` back as a fresh reader would: every partition from its
 * start up to its high watermark at the time of the call, read_uncommitted
 * (what the log holds, aborted transactions included), no group, nothing
 * committed. Adds each record to `out`. At most timeout_ms (>= 1) in all;
 * a broker that is down is waited for, any other fetch error ends the read
 * at once. Errors: KSAFE_EINVAL (a bad argument, or no such topic: it is
 * not created), KSAFE_ETIMEDOUT (the message says how many records were
 * still unread and the last error seen), KSAFE_EKAFKA (the fetch error,
 * e.g. the log start moved past where the read began).
 */
KSAFE_EXTERN int ksafe_test_read_topic(ksafe_test_cluster *tc,
                                       const char *topic,
                                       ksafe_test_records *out,
                                       int timeout_ms, ksafe_error *err);

/** The offset ksafe_test_committed() reports for a partition with no
 * committed offset. */
#define KSAFE_TEST_NO_OFFSET (-1)

/**
 * Reads the committed offsets of `group` for partitions 0..partitions-1 of
 * `topic` into offsets[] (the next offset to read, as Kafka stores it;
 * KSAFE_TEST_NO_OFFSET when none), without joining the group. partitions
 * 1..100000, at most timeout_ms (>= 1). Errors: KSAFE_EINVAL,
 * KSAFE_EKAFKA, KSAFE_ETIMEDOUT.
 */
KSAFE_EXTERN int ksafe_test_committed(ksafe_test_cluster *tc,
                                      const char *group, const char *topic,
                                      int64_t *offsets, int partitions,
                                      int timeout_ms, ksafe_error *err);

/* ---- the loop in the background ---------------------------------------- */

/**
 * A ksafe_run() on a thread of its own (opaque), so the test thread can
 * inject faults and wait while it runs. Created by ksafe_test_loop_start(),
 * ended and released by ksafe_test_loop_stop().
 */
typedef struct ksafe_test_loop ksafe_test_loop;

/**
 * Starts ksafe_run(c, opts) on a new thread. `opts` is copied (its strings
 * and pointers stay the caller's, as for ksafe_run()); the handler runs on
 * the loop's thread, so what it writes must be safe to read from the test's
 * (a ksafe_test_records set is). opts->stats, when set, is filled once, by
 * ksafe_test_loop_stop(). `c` must be subscribed, stays the caller's, and
 * is closed by ksafe_run() when the loop ends: free it after
 * ksafe_test_loop_stop(). Always stop a loop you started, also when a
 * test fails (in a teardown): a loop left running calls the handler with
 * a payload that may be gone. Errors: KSAFE_EINVAL (NULL argument),
 * KSAFE_EVERSION (options of another version), KSAFE_ENOMEM, KSAFE_ESTATE
 * (no thread could be started).
 */
KSAFE_EXTERN int ksafe_test_loop_start(ksafe_test_loop **out, ksafe_consumer *c,
                                       const ksafe_loop_options *opts,
                                       ksafe_error *err);

/** 1 while ksafe_run() has not returned; 0 after, and for NULL. */
KSAFE_EXTERN int ksafe_test_loop_running(const ksafe_test_loop *l);

/**
 * Asks the loop to stop (ksafe_consumer_stop()), waits for ksafe_run() to
 * return and releases `l`. Returns what ksafe_run() returned, its error in
 * `err`, and the loop's counters in *stats (may be NULL).
 * Errors: KSAFE_EINVAL for a NULL loop, else ksafe_run()'s result.
 */
KSAFE_EXTERN int ksafe_test_loop_stop(ksafe_test_loop *l,
                                      ksafe_loop_stats *stats,
                                      ksafe_error *err);

/** A condition for ksafe_test_wait_for(): nonzero when met. */
typedef int (*ksafe_test_condition)(void *payload);

/**
 * Calls cond(payload) every 10 ms until it is met (0) or timeout_ms passed
 * (KSAFE_ETIMEDOUT). With a `loop`, a loop that ended first is
 * KSAFE_ESTOPPED (ksafe_test_loop_stop() then gives its result), so a
 * handler that stopped the loop does not cost the whole timeout.
 * Errors: KSAFE_EINVAL (NULL cond, negative timeout).
 */
KSAFE_EXTERN int ksafe_test_wait_for(ksafe_test_condition cond, void *payload,
                                     const ksafe_test_loop *loop,
                                     int timeout_ms, ksafe_error *err);

/**
 * Waits as ksafe_test_wait_for() until every record of `expected` is in
 * `actual` (ksafe_test_records_missing() is 0). On KSAFE_ETIMEDOUT the
 * message gives the count missing and the first of them.
 */
KSAFE_EXTERN int ksafe_test_wait_records(const ksafe_test_records *expected,
                                         const ksafe_test_records *actual,
                                         const ksafe_test_loop *loop,
                                         int timeout_ms, ksafe_error *err);

/**
 * Waits until `group` has committed past every record of `records` on
 * `topic` (for each partition holding one, a committed offset above the
 * set's last offset there): the "then" of a scenario whose loop must catch
 * up and commit. Looks every 250 ms, at most timeout_ms; with a `loop`, a
 * loop that ended is looked at once more, then KSAFE_ESTOPPED. A lookup
 * refused for a while (coordinator moving or loading, broker down) is
 * tried again; one refused for good (not authorized) ends the wait with
 * KSAFE_EKAFKA. On KSAFE_ETIMEDOUT the message names a partition behind,
 * its committed offset and the one wanted. An empty set is KSAFE_EINVAL:
 * a "then" that checks nothing must not pass.
 */
KSAFE_EXTERN int ksafe_test_wait_committed(ksafe_test_cluster *tc,
                                           const char *group,
                                           const char *topic,
                                           const ksafe_test_records *records,
                                           const ksafe_test_loop *loop,
                                           int timeout_ms, ksafe_error *err);

/* ---- faults ------------------------------------------------------------ */

/**
 * Makes the next `count` OffsetCommit requests fail with `code` (e.g.
 * RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS, _COORDINATOR_NOT_AVAILABLE).
 * Errors: KSAFE_ESTATE on a real cluster, KSAFE_EINVAL.
 */
KSAFE_EXTERN int ksafe_test_fail_commits(ksafe_test_cluster *tc, size_t count,
                                         rd_kafka_resp_err_t code,
                                         ksafe_error *err);

/**
 * Makes the next `count` Produce requests fail with `code` (e.g.
 * RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION, _REQUEST_TIMED_OUT). A
 * producer of your own under these faults should send one request at a
 * time (max_in_flight 1), as ksafe_test_produce() does: the embedded
 * cluster takes the batch after a refused one where Kafka would refuse it
 * as out of order, and librdkafka then counts the refused records as
 * delivered. Errors: as ksafe_test_fail_commits().
 */
KSAFE_EXTERN int ksafe_test_fail_produces(ksafe_test_cluster *tc, size_t count,
                                          rd_kafka_resp_err_t code,
                                          ksafe_error *err);

/**
 * Takes broker `broker_id` down, waits duration_ms, brings it back up
 * (blocks the calling thread; the loop goes on in its own).
 * Errors: KSAFE_ESTATE on a real cluster, KSAFE_EINVAL (unknown broker,
 * negative duration).
 */
KSAFE_EXTERN int ksafe_test_broker_outage(ksafe_test_cluster *tc,
                                          int broker_id, int duration_ms,
                                          ksafe_error *err);

/**
 * Delays every answer of broker `broker_id` by rtt_ms (0 restores it).
 * Errors: as ksafe_test_broker_outage().
 */
KSAFE_EXTERN int ksafe_test_set_rtt(ksafe_test_cluster *tc, int broker_id,
                                    int rtt_ms, ksafe_error *err);

/**
 * Moves the coordinator of `group` to broker `broker_id`: its members
 * find the old one answering NOT_COORDINATOR and look the group up again.
 * Errors: as ksafe_test_broker_outage().
 */
KSAFE_EXTERN int ksafe_test_move_coordinator(ksafe_test_cluster *tc,
                                             const char *group, int broker_id,
                                             ksafe_error *err);

/**
 * Forces two rebalances of a group: a second member, made with a copy of
 * `like` (the options of your own members: same group_id, group protocol
 * and assignment strategy, or the group refuses it; its hooks and log
 * callback are not used), subscribes to `topic`, waits until it holds at
 * least one partition (30 s at most; under cooperative assignment that is
 * the second round of its join), holds them stay_ms, then leaves. It marks
 * and commits nothing: your members handle the records it was given again,
 * from the committed offsets. Blocks the calling thread. Errors:
 * KSAFE_EINVAL, KSAFE_ETIMEDOUT (given no partition in 30 s: the topic
 * needs more partitions than the group has members), and those of
 * ksafe_consumer_new(), _subscribe() and _close().
 */
KSAFE_EXTERN int ksafe_test_rebalance(ksafe_test_cluster *tc,
                                      const ksafe_consumer_options *like,
                                      const char *topic, int stay_ms,
                                      ksafe_error *err);

KSAFE_END_DECLS

#endif
