/*
 * lib/loop_internal.h - what the loop files share (ksafe_run). Never
 * installed.
 *
 * lib/loop.c        the driver: options, rebalance hooks, batches, run
 * lib/loop_parts.c  the partition table: pause state and pending queues
 * lib/loop_retry.c  retry with backoff, failure policy, dead letters
 * lib/loop_dedup.c  a batch in one dedup store transaction
 * lib/loop_workers.c the loop with workers (completion windows, key lanes,
 *                    the worker pool)
 */
#ifndef KSAFE_LOOP_INTERNAL_H
#define KSAFE_LOOP_INTERNAL_H

#include "retry_policy.h"

typedef struct lpart {
    char *topic;
    const rd_kafka_topic_t *rkt;
    int32_t partition;
    rd_kafka_message_t **q; /* ring of pending records, in offset order */
    size_t head, len, cap;
    int attempts;           /* handler calls for the head record */
    int64_t retry_at;       /* 0: not backing off */
    int blocked;            /* len > 0 || retry_at > 0, as counted */
    int paused;
    size_t in_batch;        /* records of this partition in the batch */
    /* Offsets the failure policy settled (skipped or dead-lettered) while
     * earlier records of the partition were still undone: each is marked
     * when a batch gets everything before it done (dedup batches). */
    int64_t *settled;
    size_t n_settled, cap_settled;
} lpart;

typedef struct loop {
    ksafe_consumer *c;
    rd_kafka_t *rk;
    const ksafe_loop_options *o;
    ksafe_loop_stats *st;
    lpart *parts;
    size_t n_parts, cap_parts;
    size_t last;    /* index of the last partition found */
    size_t blocked; /* partitions with pending records or a backoff */
    size_t paused;  /* partitions paused */
    size_t settled; /* settled offsets waiting, over all partitions */
    /* dedup store trouble: since when it has been failing (0: it is not),
     * failures in a row */
    int64_t store_failing_since;
    int store_failures;
    int commit_failures; /* at-most-once commits refused in a row */
    rd_kafka_message_t **batch;
    size_t blen, bmax;
    ksafe__backoff backoff; /* the options' schedule */
    int rc;            /* first fatal outcome; ends the loop */
    ksafe_error *err;
    /* dedup: per batch slot, the record's key and whether it is a
     * duplicate; the fresh records handed to a batch handler */
    char *keys;
    size_t *klen;
    unsigned char *dup;
    rd_kafka_message_t **fresh;
    char group[256];
} loop;

#define KEY_MAX 512

/* The loop's helpers keep their short names in the loop files; the linker
 * sees the ksafe__loop_ ones. */
#define part_find ksafe__loop_part_find
#define part_get ksafe__loop_part_get
#define set_paused ksafe__loop_set_paused
#define settle_later ksafe__loop_settle_later
#define is_settled ksafe__loop_is_settled
#define forget_settled ksafe__loop_forget_settled
#define update_blocked ksafe__loop_update_blocked
#define q_push_back ksafe__loop_q_push_back
#define q_push_front ksafe__loop_q_push_front
#define q_pop_front ksafe__loop_q_pop_front
#define part_remove ksafe__loop_part_remove
#define drop_unhandled ksafe__loop_drop_unhandled
#define settle_failure ksafe__loop_settle_failure
#define requeue ksafe__loop_requeue
#define store_trouble ksafe__loop_store_trouble
#define commit_trouble ksafe__loop_commit_trouble
#define dedup_batch ksafe__loop_dedup_batch

/* ---- loop_parts.c ---- */
lpart *part_find(loop *L, const rd_kafka_message_t *m);
/* Finds or adds the partition of `m`; NULL when out of memory. */
lpart *part_get(loop *L, const rd_kafka_message_t *m);
void set_paused(loop *L, lpart *p, int pause);
/* Pauses or resumes one partition in librdkafka and counts it in the
 * loop's stats (pauses, resumes). */
void ksafe__loop_pause_partition(loop *L, const char *topic,
                                 int32_t partition, int pause);
void update_blocked(loop *L, lpart *p);
int q_push_back(lpart *p, rd_kafka_message_t *m);
int q_push_front(lpart *p, rd_kafka_message_t *m);
rd_kafka_message_t *q_pop_front(lpart *p);
/* Settled offsets (see lpart.settled): add one (-1 when out of memory),
 * ask and forget. */
int settle_later(loop *L, lpart *p, int64_t offset);
int is_settled(loop *L, const rd_kafka_message_t *m);
void forget_settled(loop *L, const rd_kafka_message_t *m);
/* Drops the partition's pending records and its entry (moves the last
 * entry into its place). */
void part_remove(loop *L, lpart *p);
/* Destroys a record that will not be handled; reports it when its
 * position was already marked (at-most-once after a refused commit). */
void drop_unhandled(loop *L, rd_kafka_message_t *m);

/* ---- loop_retry.c ---- */
int settle_failure(loop *L, lpart *p, rd_kafka_message_t *m,
                   ksafe_handler_result r, const ksafe_error *he);
int requeue(loop *L, size_t from);
/* The dedup store failed (why in *he): the batch goes back to its
 * partitions, which wait paused with backoff; no record is charged. Ends
 * the loop with KSAFE_ESTORE once the store has failed for longer than
 * store_retry_max_ms. */
void store_trouble(loop *L, const ksafe_error *he);
/* At-most-once: the batch's position was not acknowledged (why in *e), so
 * its records may not be handled yet; they wait with backoff, paused. */
void commit_trouble(loop *L, const ksafe_error *e);

/* Publishes `m` to the dead-letter topic and waits for the broker: 0, or
 * -1 with L->rc set (KSAFE_EHANDLER naming the record and why). */
int ksafe__loop_dead_letter(loop *L, const rd_kafka_message_t *m,
                            int attempts, const char *why);

/* ---- loop_workers.c ---- */
/* The workers' options (any `workers` value): 0 or KSAFE_EINVAL. */
int ksafe__loop_validate_workers(const ksafe_loop_options *o, ksafe_error *err);
/* ksafe_run's loop when o->workers > 1: runs until stop or L->rc, drains,
 * and returns L->rc; the caller closes the consumer. */
int ksafe__loop_run_workers(loop *L);

/* ---- loop_dedup.c ---- */
enum { DEDUP_RECORD = -1, DEDUP_STORE = -2, DEDUP_STOP = -3 };
int dedup_batch(loop *L, ksafe_handler_result *r, ksafe_error *he,
                size_t *fail, size_t *handled);

#endif
