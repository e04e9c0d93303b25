/**
 * @file
 * ksafe/consumer.h - the safe consumer.
 *
 * The preset never lets librdkafka decide that a record was processed:
 * enable.auto.commit=false and enable.auto.offset.store=false. A record
 * counts as processed when the application says so with ksafe_consumer_done();
 * commits carry only such offsets. isolation.level=read_committed hides
 * aborted transactions; partition.assignment.strategy=cooperative-sticky keeps
 * rebalances incremental.
 */
#ifndef KSAFE_CONSUMER_H
#define KSAFE_CONSUMER_H

#include <librdkafka/rdkafka.h>

#include "common.h"
#include "error.h"
#include "options.h"
#include "stats.h"

KSAFE_BEGIN_DECLS

/**
 * A safe consumer (opaque): offsets only after processing. Created by
 * ksafe_consumer_new(), shut down by ksafe_consumer_close() (final commit,
 * leave the group), released by ksafe_consumer_free(). Use it from the
 * thread that polls; ksafe_consumer_stop() may come from any thread or a
 * signal handler.
 */
typedef struct ksafe_consumer ksafe_consumer;

/**
 * A consumed record. It is librdkafka's message: no copy, no allocation.
 * Messages returned by ksafe_consumer_poll() are owned by the caller and
 * released with ksafe_message_free(); messages handed to callbacks are
 * borrowed for the duration of the call.
 */
typedef struct ksafe_message ksafe_message;

/** auto.offset.reset: where a group with no committed offset starts. */
typedef enum ksafe_offset_reset {
    /** The oldest retained record: a new group misses nothing (default). */
    KSAFE_OFFSET_RESET_EARLIEST = 0,
    /** Only records produced after the group joined: skips the backlog. */
    KSAFE_OFFSET_RESET_LATEST,
    /** No reset: the consumer reports an error instead. */
    KSAFE_OFFSET_RESET_ERROR
} ksafe_offset_reset;

/** partition.assignment.strategy */
typedef enum ksafe_assignment_strategy {
    /** Incremental (cooperative) rebalancing; default. */
    KSAFE_ASSIGN_COOPERATIVE_STICKY = 0,
    /** Eager: every rebalance revokes everything first. */
    KSAFE_ASSIGN_RANGE,
    /** Eager, round-robin. */
    KSAFE_ASSIGN_ROUNDROBIN
} ksafe_assignment_strategy;

/**
 * group.protocol: who decides the assignment of a consumer group.
 * Which librdkafka versions and brokers support each: docs/compatibility.md.
 */
typedef enum ksafe_group_protocol {
    /**
     * The classic protocol (default): the members agree on an assignment
     * through JoinGroup/SyncGroup, with the session_timeout_ms,
     * heartbeat_interval_ms and assignment_strategy set here.
     */
    KSAFE_GROUP_PROTOCOL_CLASSIC = 0,
    /**
     * KIP-848's consumer protocol: the broker computes the assignment and
     * changes it incrementally (the rebalance hooks see cooperative
     * rebalances). The broker's group.consumer.session.timeout.ms,
     * group.consumer.heartbeat.interval.ms and assignor replace
     * session_timeout_ms, heartbeat_interval_ms and assignment_strategy,
     * which must stay at their defaults (validation refuses them
     * otherwise). Needs librdkafka >= 2.12.0, where it is generally
     * available, and a broker that supports it (Kafka 4.0+).
     */
    KSAFE_GROUP_PROTOCOL_CONSUMER
} ksafe_group_protocol;

/**
 * Rebalance hook: the partitions just assigned, about to be revoked, or lost.
 * Runs on the thread that polls, inside ksafe_consumer_poll() (or the loop,
 * or ksafe_consumer_close()); `partitions` is borrowed for the call.
 *
 * on_assigned runs once the group has given these partitions to this member
 * and before fetching from them starts: ksafe_consumer_seek() called from it
 * sets where each one starts (default: the committed offset).
 * on_revoked runs before the marked offsets of these partitions are
 * committed: finish in-flight work for them and ksafe_consumer_done() it.
 * on_lost runs when the member was thrown out of the group (session timed
 * out, coordinator unreachable): another member may already own these
 * partitions, so nothing is committed for them and their marks are dropped;
 * records after their last commit will be delivered again, to someone.
 */
typedef void (*ksafe_partitions_cb)(
    ksafe_consumer *c, const rd_kafka_topic_partition_list_t *partitions,
    void *payload);

/**
 * Statistics hook: librdkafka's statistics of this consumer, typed, every
 * statistics_interval_ms, with ksafe's processed positions
 * (ksafe_stats_partition::marked_offset, processed_lag) and the group id
 * filled in. Runs on the thread that polls, inside ksafe_consumer_poll()
 * (or the loop, or ksafe_consumer_close()); `stats` is borrowed for the
 * call: copy what you keep, or render it at once with
 * ksafe_stats_prometheus(). A document librdkafka sends that does not
 * parse is logged (warning) and skipped.
 */
typedef void (*ksafe_stats_cb)(ksafe_consumer *c, const ksafe_stats *stats,
                               void *payload);

/** @def KSAFE_CONSUMER_OPTIONS_VERSION
 * The version of ksafe_consumer_options these headers define. */
/** @def KSAFE_CONSUMER_OPTIONS_INIT
 * The safe preset: see each field's default. */
/** @var ksafe_consumer_options::version
 * KSAFE_CONSUMER_OPTIONS_VERSION */
/** @var ksafe_consumer_options::assignment_strategy
 * default KSAFE_ASSIGN_COOPERATIVE_STICKY */
/** @var ksafe_consumer_options::rebalance_payload
 * passed to on_assigned, on_revoked and on_lost */

#define KSAFE_CONSUMER_OPTIONS_VERSION 1

/** Consumer options. Initialise with KSAFE_CONSUMER_OPTIONS_INIT. */
typedef struct ksafe_consumer_options {
    unsigned int version;
    KSAFE_CLIENT_OPTIONS_FIELDS
    const char *group_id;              /**< required */
    const char *group_instance_id;     /**< static membership; NULL: dynamic */
    ksafe_offset_reset auto_offset_reset;      /**< default EARLIEST */
    ksafe_assignment_strategy assignment_strategy;
    int session_timeout_ms;            /**< default 45000 */
    int heartbeat_interval_ms;         /**< default 3000; <= session / 3 */
    int max_poll_interval_ms;          /**< default 300000; >= session */
    ksafe_partitions_cb on_assigned;   /**< after the assignment took effect */
    ksafe_partitions_cb on_revoked;    /**< before the final commit */
    ksafe_partitions_cb on_lost;       /**< nothing is committed for these */
    void *rebalance_payload;
    ksafe_group_protocol group_protocol; /**< default CLASSIC */
    /**
     * librdkafka's statistics.interval.ms: how often on_stats receives the
     * statistics. 0 (default): off; otherwise 100..86400000. Without
     * on_stats nothing is collected (ksafe_consumer_new() logs a warning):
     * a JSON configuration sets the interval, code sets the callback.
     */
    int statistics_interval_ms;
    ksafe_stats_cb on_stats; /**< requires statistics_interval_ms */
    void *stats_payload;     /**< passed to on_stats */
} ksafe_consumer_options;

#define KSAFE_CONSUMER_OPTIONS_INIT                                          \
    { KSAFE_CONSUMER_OPTIONS_VERSION, KSAFE_CLIENT_OPTIONS_INIT_VALUES,      \
      NULL, NULL, KSAFE_OFFSET_RESET_EARLIEST,                               \
      KSAFE_ASSIGN_COOPERATIVE_STICKY, 45000, 3000, 300000, NULL, NULL,      \
      NULL, NULL, KSAFE_GROUP_PROTOCOL_CLASSIC, 0, NULL, NULL }

/** Sets `opts` to the safe preset of `version`. */
KSAFE_EXTERN int ksafe_consumer_options_init(ksafe_consumer_options *opts,
                                             unsigned int version);

/** Checks `opts` as ksafe_consumer_new() would, without creating anything. */
KSAFE_EXTERN int ksafe_consumer_options_validate(
    const ksafe_consumer_options *opts, ksafe_error *err);

/**
 * Creates a consumer (not yet subscribed). Copies every string.
 * Errors: KSAFE_EINVAL / KSAFE_EVERSION / KSAFE_EUNSAFE for options,
 * KSAFE_EKAFKA when librdkafka refuses.
 */
KSAFE_EXTERN int ksafe_consumer_new(ksafe_consumer **out,
                                    const ksafe_consumer_options *opts,
                                    ksafe_error *err);

/**
 * Subscribes to `count` topics (a name starting with '^' is a regex).
 * Replaces any earlier subscription. Errors: KSAFE_EINVAL (no topics, a
 * NULL or empty entry, or a name Kafka does not allow: over 249
 * characters, a character outside [a-zA-Z0-9._-], "." or ".."; regexes are
 * not checked), KSAFE_ESTATE (closed), KSAFE_EKAFKA.
 */
KSAFE_EXTERN int ksafe_consumer_subscribe(ksafe_consumer *c,
                                          const char *const *topics,
                                          size_t count, ksafe_error *err);

/**
 * Waits up to timeout_ms for a record. On success *out is a record owned by
 * the caller (free it with ksafe_message_free()) or NULL when none arrived in
 * time. Rebalances and their hooks run inside this call. Consumer errors
 * (not records) are returned as errors: KSAFE_EKAFKA with rdkafka_code, and
 * KSAFE_EFATAL when the consumer can no longer be used.
 */
KSAFE_EXTERN int ksafe_consumer_poll(ksafe_consumer *c, int timeout_ms,
                                     ksafe_message **out, ksafe_error *err);

/**
 * Marks `msg` processed: its offset + 1 becomes the next commit position of
 * its partition. The position is a high-water mark: marking a later record
 * marks every earlier one of its partition, so call it for a record only
 * once every earlier record of that partition is processed too. Marking an
 * older record than the last marked one of the partition is ignored
 * (positions never move back). Does not commit, does not allocate or lock:
 * call it per record. Not thread-safe: call it from the thread that polls.
 *
 * Errors: KSAFE_EINVAL (NULL); KSAFE_ESTATE when the record's partition is
 * no longer assigned to this member (revoked or lost: the record will be
 * delivered to the new owner), or was revoked and assigned to it again
 * since the record was polled and the record lies before where the new
 * assignment's delivery began (marking it would move the position back;
 * the new assignment delivers it again if it is still due). A record of an
 * earlier assignment at or past that point is the same record the new
 * assignment delivers; it is taken. Records polled other than with
 * ksafe_consumer_poll() are judged by librdkafka's position only.
 */
KSAFE_EXTERN int ksafe_consumer_done(ksafe_consumer *c,
                                     const ksafe_message *msg,
                                     ksafe_error *err);

/** Commit modes for ksafe_consumer_commit(). */
typedef enum ksafe_commit_mode {
    KSAFE_COMMIT_SYNC = 0, /**< wait for the coordinator's answer */
    KSAFE_COMMIT_ASYNC     /**< send and return; failures are logged */
} ksafe_commit_mode;

/**
 * Commits the positions marked with ksafe_consumer_done() that the broker
 * has not yet accepted, and nothing else. Nothing to commit: returns 0 at
 * once.
 *
 * SYNC waits for the answer; a commit refused while a rebalance is in
 * progress or while the coordinator moves is retried for about 1.5 s before
 * KSAFE_ECOMMIT (flag KSAFE_ERROR_RETRIABLE) is returned; the message names
 * the partitions left uncommitted. Called from a rebalance hook it makes one
 * attempt: the group cannot move on while the hook runs.
 *
 * ASYNC sends and returns; at most one asynchronous commit is in flight, its
 * result is read inside the next ksafe_consumer_poll()/commit call, and a
 * refused position stays uncommitted and goes out again with the next
 * commit. On librdkafka before 2.10 (issue 4059) it first probes the
 * coordinator (two round trips) and does not send while a rejoin is
 * pending; the commit policy's asynchronous commits also wait for the next
 * assignment while a rebalance is under way. A position is only recorded as
 * committed once the broker accepted it.
 */
KSAFE_EXTERN int ksafe_consumer_commit(ksafe_consumer *c,
                                       ksafe_commit_mode mode,
                                       ksafe_error *err);

/** The version of ksafe_commit_policy these headers define. */
#define KSAFE_COMMIT_POLICY_VERSION 1

/**
 * When ksafe_consumer_commit_maybe() commits. Both triggers may be set; 0
 * turns a trigger off (both off: only revoke, close and explicit commits).
 */
typedef struct ksafe_commit_policy {
    unsigned int version; /**< KSAFE_COMMIT_POLICY_VERSION */
    /** commit once this many records were marked since the last commit */
    unsigned int every_records;
    /** commit once this long passed since the last commit */
    unsigned int every_ms;
} ksafe_commit_policy;

/** Default: every second, whatever the rate (like auto commit, but only
 * marked records). */
#define KSAFE_COMMIT_POLICY_INIT { KSAFE_COMMIT_POLICY_VERSION, 0, 1000 }

/**
 * Replaces the commit policy (the default is KSAFE_COMMIT_POLICY_INIT).
 * Errors: KSAFE_EVERSION, KSAFE_EINVAL (every_records above 1e9, every_ms
 * above one hour).
 */
KSAFE_EXTERN int ksafe_consumer_set_commit_policy(
    ksafe_consumer *c, const ksafe_commit_policy *policy, ksafe_error *err);

/**
 * Call after each processed record or batch (and after a poll that returned
 * nothing): sends an asynchronous commit of the marked positions when the
 * policy says one is due. When nothing is due it costs two integer compares;
 * the clock is read at most every few records (how many adapts to the rate
 * so that every_ms is kept within about a quarter). At most one commit is
 * in flight, so commit traffic never grows past the policy or the broker's
 * round trip, whatever the message rate. Revoke and close commit
 * synchronously on their own. Errors: as ksafe_consumer_commit() ASYNC.
 */
KSAFE_EXTERN int ksafe_consumer_commit_maybe(ksafe_consumer *c,
                                             ksafe_error *err);

/**
 * Where fetching of one assigned partition continues: `offset` is a record
 * offset (>= 0) or RD_KAFKA_OFFSET_BEGINNING / RD_KAFKA_OFFSET_END. Called
 * from on_assigned it sets the start offset of a partition of that
 * assignment before fetching starts (the reliable way to resume from
 * offsets kept outside Kafka); elsewhere it seeks a partition this member
 * owns and waits for the seek. A partition assigned a moment ago may still
 * be waiting for its committed offset: the seek waits for that too (up to
 * 30 s). Marks are kept: a record already marked stays processed. Errors:
 * KSAFE_EINVAL (bad offset or topic name), KSAFE_ESTATE (partition not
 * assigned to this member, or called from on_revoked/on_lost),
 * KSAFE_EKAFKA.
 */
KSAFE_EXTERN int ksafe_consumer_seek(ksafe_consumer *c, const char *topic,
                                     int32_t partition, int64_t offset,
                                     ksafe_error *err);

/**
 * Writes a stable group.instance.id for static membership into `buf`:
 * "<host>-<suffix>", the host name with characters Kafka does not accept in
 * an id replaced by '-' (and shortened if needed), and `suffix` (e.g. the
 * worker number; NULL or "" for none) which must already consist of
 * [a-zA-Z0-9._-]. The same host and suffix give the same id after a restart,
 * so a member that returns within session_timeout_ms gets its partitions
 * back without a rebalance. Errors: KSAFE_EINVAL (bad suffix, result
 * longer than 249 characters, or `size` too small: the message says how
 * much is needed), KSAFE_EIO (no host name).
 */
KSAFE_EXTERN int ksafe_group_instance_id(char *buf, size_t size,
                                         const char *suffix,
                                         ksafe_error *err);

/**
 * Commits what was marked, leaves the group and stops fetching. Rebalance
 * hooks (on_revoked) run inside it; a commit refused mid-rebalance is
 * retried while close keeps serving the group (records polled meanwhile are
 * dropped unmarked: they come again). Returns KSAFE_ECOMMIT (after still
 * closing) when any marked position could not be committed, by close itself
 * or by a revoke or loss during close; the message names each such
 * partition and offset ("topic [p] at offset"), and each is also logged at
 * error level. Calling it twice is harmless (the second call returns 0).
 *
 * Workarounds, each applied only when the linked librdkafka has the bug
 * (rd_kafka_version()): before 2.4.0 an assignment arriving during close
 * can hang it, so close unsubscribes and waits for the assignment to be
 * empty first. Before 2.3.0 destroying a cooperative-sticky consumer whose
 * JoinGroup was answered but which has no assignment yet aborts the
 * process: close then waits for the first assignment (at most the session
 * timeout plus 10 s); if none comes, it leaves the group but keeps the
 * librdkafka handle, idle and silent, until the process exits (an error is
 * logged; ksafe_consumer_free() still releases what it can). A consumer
 * whose JoinGroup was never answered closes at once.
 */
KSAFE_EXTERN int ksafe_consumer_close(ksafe_consumer *c, ksafe_error *err);

/**
 * Asks the loop driving `c` to stop: ksafe_run() finishes its current
 * record or batch, commits and returns; an application's own loop checks
 * ksafe_consumer_stop_requested(). Only sets a flag: async-signal-safe,
 * callable from a signal handler or another thread. ksafe_consumer_poll()
 * does not react to it. Accepts NULL (does nothing).
 */
KSAFE_EXTERN void ksafe_consumer_stop(ksafe_consumer *c);

/** 1 once ksafe_consumer_stop() was called on `c`, else 0 (also for NULL). */
KSAFE_EXTERN int ksafe_consumer_stop_requested(const ksafe_consumer *c);

/** Releases the consumer (closing it first if needed). Accepts NULL. */
KSAFE_EXTERN void ksafe_consumer_free(ksafe_consumer *c);

/** The underlying librdkafka handle, borrowed: do not destroy it. */
KSAFE_EXTERN rd_kafka_t *ksafe_consumer_rdkafka(ksafe_consumer *c);

/* Record accessors. Pointers are borrowed from the message. */
/** The record's topic, borrowed from the message. */
KSAFE_EXTERN const char *ksafe_message_topic(const ksafe_message *msg);
/** The record's partition. */
KSAFE_EXTERN int32_t ksafe_message_partition(const ksafe_message *msg);
/** The record's offset in its partition. */
KSAFE_EXTERN int64_t ksafe_message_offset(const ksafe_message *msg);
/** The record's key (NULL if it has none) and its length in `*len`
 * (`len` may be NULL); borrowed from the message. */
KSAFE_EXTERN const void *ksafe_message_key(const ksafe_message *msg,
                                           size_t *len);
/** The record's value (NULL for a tombstone) and its length in `*len`
 * (`len` may be NULL); borrowed from the message. */
KSAFE_EXTERN const void *ksafe_message_value(const ksafe_message *msg,
                                             size_t *len);
/** Creation or log-append time in ms since the epoch; -1 if unknown. */
KSAFE_EXTERN int64_t ksafe_message_timestamp(const ksafe_message *msg);
/**
 * The last header called `name`: 0 and its bytes (borrowed) in `*value` and
 * `*len`, either of which may be NULL; KSAFE_EINVAL if absent or `msg` or
 * `name` is NULL.
 */
KSAFE_EXTERN int ksafe_message_header(const ksafe_message *msg,
                                      const char *name, const void **value,
                                      size_t *len);
/** The underlying librdkafka message, borrowed. */
KSAFE_EXTERN const rd_kafka_message_t *
ksafe_message_rdkafka(const ksafe_message *msg);
/** Releases a message returned by ksafe_consumer_poll(). Accepts NULL. */
KSAFE_EXTERN void ksafe_message_free(ksafe_message *msg);

KSAFE_END_DECLS

#endif
