/*
 * lib/consumer_internal.h - the consumer's state, shared by its files:
 * consumer.c (life cycle, poll, seek), consumer_options.c (preset,
 * validation, properties, static membership ids), consumer_positions.c (positions and
 * marking), consumer_offsets.c (commits, commit policy),
 * consumer_rebalance.c (the rebalance callback), consumer_stats.c
 * (statistics for on_stats),
 * consumer_close.c (close and its librdkafka workarounds).
 *
 * Everything here is touched only by the thread that polls: rebalance and
 * commit-result callbacks run inside poll/commit/close, so no lock is needed.
 */
#ifndef KSAFE_CONSUMER_INTERNAL_H
#define KSAFE_CONSUMER_INTERNAL_H

#include <signal.h>

#include "internal.h"
#include "rdkafka_versions.h"

/* No start offset requested by ksafe_consumer_seek() inside on_assigned. */
#define KSAFE__NO_START INT64_MIN

/* The processed position of one assigned partition. */
typedef struct ksafe__position {
    char *topic;
    /* Our reference to the topic handle: while we hold it no other topic
     * can reuse the address, so pointer equality identifies the topic. */
    rd_kafka_topic_t *rkt;
    int32_t partition;
    int64_t marked;    /* next offset to consume, -1 when nothing marked */
    int64_t committed; /* last position the broker accepted, -1 if none */
    int64_t in_flight; /* position sent in the async commit, -1 if none */
    int64_t start;     /* start offset set in on_assigned, or NO_START */
    /* Where this assignment's delivery began: the first record polled
     * since the partition was (re)assigned or sought, -1 while none was
     * (issue 9: done() refuses records of an earlier assignment). */
    int64_t first;
    /* Leader epoch of the record that set `marked` (KIP-320), -1 unknown:
     * the commit carries it so the next owner's librdkafka can tell a
     * truncated log from a valid position. */
    int32_t marked_epoch;
} ksafe__position;

struct ksafe_consumer {
    ksafe__client cl; /* first: rd_kafka_opaque() points here */
    ksafe_partitions_cb on_assigned;
    ksafe_partitions_cb on_revoked;
    ksafe_partitions_cb on_lost;
    void *rebalance_payload;

    /* Statistics (consumer_stats.c): on_stats NULL when off. */
    ksafe_stats_cb on_stats;
    void *stats_payload;
    char *group_id;       /* copy, for ksafe_stats::group_id */
    int stats_warned;     /* a document that did not parse was logged */

    /*
     * For the loop built on this consumer: called on revoke (lost = 0)
     * before on_revoked and the revoke commit, and on loss (lost = 1) before
     * on_lost, so the loop can drop retry state of those partitions and mark
     * finished work. Runs on the polling thread; `parts` is borrowed.
     */
    void (*loop_on_revoke)(ksafe_consumer *c,
                           const rd_kafka_topic_partition_list_t *parts,
                           int lost, void *arg);
    /* For the loop: called when partitions are assigned, before
     * on_assigned, while ksafe_consumer_seek() sets start offsets. */
    void (*loop_on_assign)(ksafe_consumer *c,
                           const rd_kafka_topic_partition_list_t *parts,
                           void *arg);
    void *loop_arg;

    /* Positions of the assigned partitions, and an open-addressing index on
     * (topic handle, partition): slot holds index + 1, 0 is empty. */
    ksafe__position *pos;
    size_t n_pos, cap_pos;
    uint32_t *slots;
    size_t slot_mask;
    ksafe__position *last; /* the last hit: records come in runs */

    /* Commit policy (see ksafe_consumer_commit_maybe). */
    uint64_t marks;        /* done() calls so far */
    uint64_t next_count;   /* marks at which a commit is due, or MAX */
    unsigned int ticks;    /* commit_maybe calls since the clock was read */
    unsigned int tick_limit; /* read the clock every tick_limit calls */
    int64_t last_commit_ms;
    int64_t last_clock_ms;
    unsigned int every_records, every_ms;

    uint64_t commits_sent; /* commit requests sent (sync and async) */

    /* The asynchronous commit in flight (at most one). */
    rd_kafka_queue_t *commit_q;
    int async_in_flight;
    int64_t async_sent_ms;

    /*
     * No async commit while a rebalance is under way (librdkafka issue
     * 4059; consumer_commit_guard.c says why and when).
     */
    int guard_probe;        /* the linked librdkafka has the bug: probe */
    int commit_hold;        /* async commits wait for the next assignment */
    int64_t commit_hold_until_ms; /* ... or until then at the latest */
    int probe_rtt_ms;       /* smoothed answer time of the probe */

    /* Rebalance state. */
    const rd_kafka_topic_partition_list_t *assigning; /* in on_assigned */
    int in_revoke;        /* inside on_revoked / on_lost */
    int kip848;           /* group_protocol CONSUMER: the broker assigns */
    int cooperative_conf; /* strategy we configured: fallback when librdkafka
                             never named the protocol yet */
    int assigned_once;    /* the first assignment was handled (issue 4312) */
    int rebalances;

    int session_timeout_ms;
    int subscribed;
    int closing;
    int closed;

    volatile sig_atomic_t stop;

    /* ---- close report and protocol (issue 9 item 5) ---------------------
     * close_failed: during close, every position a sync commit could not
     * commit (revoke or close's own), offset and error (.err) per
     * partition; an accepted commit at or past that offset removes it.
     * protocol: the rebalance protocol librdkafka last named (1
     * cooperative, 0 eager, -1 not yet): it returns NULL inside callbacks
     * run during close (2.0.2). */
    rd_kafka_topic_partition_list_t *close_failed;
    int protocol;

    /* ---- librdkafka workarounds (issue 9 item 14) -----------------------
     * detached: closed without destroying the librdkafka handle, because
     * destroying it would abort the process (quirks.sticky_destroy_asserts);
     * freeing parks it on a list instead (consumer_close.c). */
    ksafe__consumer_quirks quirks;
    int detached;
    struct ksafe_consumer *parked_next;
};

/* ---- consumer_positions.c ---------------------------------------------- */

/* Every allocation of the position table goes through this (realloc; a
 * failing one in tests/test_consumer_table.c). */
extern void *(*ksafe__consumer_realloc)(void *ptr, size_t size);

/* Adds entries for newly assigned partitions (existing ones are kept). */
int ksafe__consumer_track(ksafe_consumer *c,
                          const rd_kafka_topic_partition_list_t *parts);

/* The entry of a consumed record (index, then names), or NULL. */
ksafe__position *ksafe__consumer_entry(ksafe_consumer *c,
                                       const rd_kafka_message_t *m);

/* Finds the entry of topic/partition by name, or NULL. */
ksafe__position *ksafe__consumer_find(ksafe_consumer *c, const char *topic,
                                      int32_t partition);

/* Forgets positions of these partitions (after revoke or loss). */
void ksafe__consumer_forget(ksafe_consumer *c,
                            const rd_kafka_topic_partition_list_t *parts);

/* Forgets every position (consumer destroyed). */
void ksafe__consumer_forget_all(ksafe_consumer *c);

/* ---- consumer_offsets.c ------------------------------------------------ */

/* How ksafe__consumer_commit_marked() commits. */
enum {
    /* Synchronous; retriable refusals are retried for about 1.5 s, except
     * inside a rebalance callback (the generation cannot change there). */
    KSAFE__COMMIT_SYNC = 0,
    /* Asynchronous, at most one in flight. */
    KSAFE__COMMIT_ASYNC = 1,
    /* Synchronous, one attempt: close retries by polling instead. */
    KSAFE__COMMIT_SYNC_ONCE = 2
};

/*
 * Commits marked, not yet accepted positions of `only` (NULL: all), `mode`
 * one of the KSAFE__COMMIT_* values; the error message names what stayed
 * uncommitted. During close, failures and successes of sync commits are
 * noted in c->close_failed.
 */
int ksafe__consumer_commit_marked(ksafe_consumer *c,
                                  const rd_kafka_topic_partition_list_t *only,
                                  int mode, ksafe_error *err);

/* During close: notes the marked, uncommitted positions of lost `parts`
 * in c->close_failed (they are dropped, never committed). */
void ksafe__consumer_close_note_lost(ksafe_consumer *c,
                                     const rd_kafka_topic_partition_list_t *parts);

/* Serves results of an asynchronous commit, if one is in flight. */
void ksafe__consumer_serve_commits(ksafe_consumer *c);

/* commit_maybe for a poll that returned nothing: always reads the clock. */
int ksafe__consumer_commit_idle(ksafe_consumer *c, ksafe_error *err);

/* Sets the default commit policy. */
void ksafe__consumer_policy_init(ksafe_consumer *c);

/* ---- consumer_options.c ---- */

/* KSAFE_CONSUMER_OPTIONS_INIT, for NULL options. */
extern const ksafe_consumer_options ksafe__consumer_preset;

/* Sets the properties the (validated) options stand for on `conf`. */
int ksafe__consumer_conf(const ksafe_consumer_options *o,
                         rd_kafka_conf_t *conf, ksafe_error *err);

/* ---- consumer_commit_guard.c -------------------------------------------- */

void ksafe__commit_guard_init(ksafe_consumer *c);

/* 1 while the commit policy's async commits wait for the next assignment
 * (a rebalance is under way). */
int ksafe__commit_guard_holding(ksafe_consumer *c);

/* 1: do not send the async commit of `l` now: the coordinator connection
 * has a JoinGroup pending (probed only on librdkafka < 2.10; blocks for one
 * round trip). Starts a hold. */
int ksafe__commit_guard_busy(ksafe_consumer *c,
                             const rd_kafka_topic_partition_list_t *l);

/* An async commit was refused with `e`. */
void ksafe__commit_guard_refused(ksafe_consumer *c, rd_kafka_resp_err_t e);

/* The assignment is about to be revoked as lost (poll() reported
 * max.poll.interval.ms exceeded, or rd_kafka_assignment_lost() says so). */
void ksafe__commit_guard_losing(ksafe_consumer *c);

/* From the rebalance callback: partitions were assigned. */
void ksafe__consumer_commits_assigned(ksafe_consumer *c);

/* From the rebalance callback, before the revoke commit: waits for the
 * async commit in flight (not when lost) and holds async commits until the
 * next assignment when the group rejoins after this revoke. */
void ksafe__consumer_commits_revoking(ksafe_consumer *c, int cooperative,
                                      int lost);

/* ---- consumer_stats.c -------------------------------------------------- */

/* Enables statistics on `conf` when the options ask for them, and keeps
 * the callback in `c`; logs the interval set without a callback. */
int ksafe__consumer_stats_conf(ksafe_consumer *c,
                               const ksafe_consumer_options *o,
                               rd_kafka_conf_t *conf, ksafe_error *err);

/* Fills ksafe's positions (marked_offset, processed_lag, assigned) and the
 * group id into parsed stats of this consumer. */
void ksafe__consumer_stats_fill(ksafe_consumer *c, ksafe_stats *st);

/* ---- consumer_close.c -------------------------------------------------- */

/* Keeps a detached consumer (and its librdkafka handle) until the process
 * exits, reachable and quiet: its log lines are dropped. */
void ksafe__consumer_park(ksafe_consumer *c);

/* ---- consumer_rebalance.c ---------------------------------------------- */

void ksafe__consumer_rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                                  rd_kafka_topic_partition_list_t *parts,
                                  void *opaque);

/* Whether the group runs the cooperative protocol right now. */
int ksafe__consumer_cooperative(ksafe_consumer *c);

#endif
