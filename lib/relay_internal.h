/*
 * lib/relay_internal.h - what the relay's files share (ksafe_relay_run).
 * Never installed.
 *
 * lib/relay.c      the driver: options, the poll loop, transforms, failures,
 *                  rebalance hooks
 * lib/relay_txn.c  the open transaction: its partitions, commit, abort,
 *                  rewind, fatal errors
 */
#ifndef KSAFE_RELAY_INTERNAL_H
#define KSAFE_RELAY_INTERNAL_H

#include "producer_internal.h"
#include "retry_policy.h"

#include <ksafe/relay.h>

/* A record of a partition that the failure policy settled (SKIP or
 * DEAD_LETTER) while its transaction is not committed yet: each abort
 * brings it back, and it must be settled again, not transformed. */
typedef struct rsettled {
    int64_t offset;
    int attempts;
    ksafe_failure_policy verdict;
    char why[160];
} rsettled;

/* A partition the relay has seen since it was assigned. */
typedef struct rpart {
    char *topic;
    int32_t partition;
    /* The open transaction's records of this partition: the first one's
     * offset (-1: none in it) and the offset after the last one, with
     * that record's leader epoch. */
    int64_t first, next;
    int32_t epoch;
    /* A rewind asked for inside a rebalance callback (where seeking is
     * refused), done once poll returns: the offset, or -1. */
    int64_t rewind_to;
    /* The record being retried: its offset (-1: none) and the transform
     * calls it had. */
    int64_t fail_offset;
    int attempts;
    /* Records settled by the failure policy since the last commit of this
     * partition, in offset order: more than one can fail in a
     * transaction, and every abort rewinds to its first record. */
    rsettled *settled;
    size_t n_settled, cap_settled;
    int64_t resume_at; /* paused for a retry until then; 0: not paused */
} rpart;

typedef struct relay {
    ksafe_consumer *c;
    ksafe_producer *p;
    rd_kafka_t *crk;
    const ksafe_relay_options *o;
    ksafe_relay_stats *st;
    ksafe_error *err;
    int rc; /* the first outcome that ends the relay */
    rpart *parts;
    size_t n_parts, cap_parts, last;
    size_t paused;         /* partitions paused for a retry */
    int open;              /* a transaction is open */
    int64_t opened_ms;
    size_t count;          /* input records in the open transaction */
    int rewind_pending;    /* some rpart has rewind_to set */
    int abort_pending;     /* an abort timed out: end it before the next */
    int commit_unknown;    /* a commit timed out for good: outcome unknown */
    /* an abort inside a rebalance callback met a fatal error: handled once
     * poll returns */
    int fatal_pending;
    ksafe_error fatal_err;
    ksafe__backoff backoff;
    /* transactions failing to commit: since when (0: they are not), in a
     * row, and the last reason */
    int64_t txn_failing_since;
    int txn_failures;
    char group[256];
    char txn_id[256];
} relay;

struct ksafe_relay_emitter {
    relay *R;
    int failed;      /* an emit failed: the record fails */
    int txn_failed;  /* ... because the transaction had failed already */
    ksafe_error err; /* ... with this */
};

/* The short names the relay files use; the linker sees ksafe__relay_. */
#define rpart_get ksafe__relay_rpart_get
#define rpart_find ksafe__relay_rpart_find
#define rpart_remove ksafe__relay_rpart_remove
#define rpart_pause ksafe__relay_rpart_pause
#define txn_begin ksafe__relay_txn_begin
#define txn_add ksafe__relay_txn_add
#define txn_commit ksafe__relay_txn_commit
#define txn_abort ksafe__relay_txn_abort
#define txn_rewind ksafe__relay_txn_rewind
#define txn_rewind_pending ksafe__relay_txn_rewind_pending
#define txn_trouble ksafe__relay_txn_trouble
#define relay_fatal ksafe__relay_fatal

/* ---- relay_txn.c ---- */
/* The partition of `m` (added when new); NULL when out of memory. */
rpart *rpart_get(relay *R, const char *topic, int32_t partition);
rpart *rpart_find(relay *R, const char *topic, int32_t partition);
void rpart_remove(relay *R, rpart *rp);
void rpart_pause(relay *R, rpart *rp, int64_t pause); /* until; 0: resume */
/* Opens a transaction if none is open: 0; R->rc when the relay must stop;
 * 1 when none could be opened now (retried later, with backoff). */
int txn_begin(relay *R);
/* Counts a settled input record into the open transaction. */
void txn_add(relay *R, rpart *rp, const rd_kafka_message_t *m);
/* Sends the transaction's offsets and commits; on failure aborts, rewinds
 * and backs off (txn_trouble). 0, or R->rc when the relay must stop. */
int txn_commit(relay *R);
/* Aborts the open transaction (the reason for the log) and rewinds every
 * partition that had records in it; `defer`: only note the rewinds (inside
 * a rebalance callback). 0, or R->rc. */
int txn_abort(relay *R, const char *why, int defer);
/* Before an abort: waits until no partition registration is in flight
 * (see the definition for the librdkafka assertion this avoids). */
void ksafe__relay_settle_registrations(relay *R);
/* Seeks each partition to its first record in the open transaction (or
 * to rewind_to) and forgets the transaction's records. 0 or R->rc. */
int txn_rewind(relay *R);
/* Rewinds noted inside a rebalance callback. */
int txn_rewind_pending(relay *R);
/* A transaction failed to commit (why in *e): back off the rewound
 * partitions; stops the relay once failures lasted txn_retry_max_ms. */
void txn_trouble(relay *R, const ksafe_error *e);
/* A fatal producer error (*e): stop, or recreate the producer when the
 * options say so. 0 when the relay goes on, else R->rc. */
int relay_fatal(relay *R, const ksafe_error *e);

#endif
