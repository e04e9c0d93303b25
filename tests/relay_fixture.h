/*
 * tests/relay_fixture.h - what the relay suites share (test_relay.c,
 * test_relay_rebalance.c): a transform that counts and misbehaves on
 * request, transactional producers that fit the test consumers, and a
 * reader of a topic's every record.
 */
#ifndef KSAFE_RELAY_FIXTURE_H
#define KSAFE_RELAY_FIXTURE_H

#include <stdatomic.h>

#include "testutil.h"

#define N_MAX 1000

/* What the transform saw and does. */
typedef struct xform {
    ksafe_consumer *c;
    const char *out;       /* output topic */
    atomic_int calls[N_MAX];
    atomic_int ok[N_MAX];
    atomic_int total_calls;
    atomic_int seen_part[2]; /* records seen of partitions 0 and 1 */
    int distinct_ok;       /* indexes that had an OK call */
    int stop_at;           /* stop once this many indexes had one */
    int fail_index;        /* -1: none */
    int fail_times;        /* RETRY this many times, then OK; -1: FAIL */
    int emit_twice;        /* two output records per input */
    ksafe_producer *fatal_p; /* raise a fatal error on it at fatal_index */
    int fatal_index;
    int fatal_done;
    size_t oversize_index; /* emit a record too large for the broker */
    int sleep_index;       /* the first call for it sleeps sleep_ms */
    int sleep_ms;
} xform;

/* One record of the output, in the order of its partition. */
typedef struct outrec {
    int index;
    int tag_b; /* the second record of emit_twice */
    int32_t partition;
    int64_t offset;
    char key[16];
    char origin_offset[24]; /* dead letters: ksafe.origin.offset */
} outrec;

/* A test's input topic (`n` records of test_produce), output topic, a
 * consumer of the input in a new group and a transactional producer. */
typedef struct relay_case {
    char in[64], out[64], group[64];
    ksafe_consumer *c;
    ksafe_producer *p;
} relay_case;

/* Topics "<prefix>-<unique>" in and out with `partitions` each. */
void relay_case_new(relay_case *rc, const char *prefix, int partitions,
                    int n);
void relay_case_free(relay_case *rc);

void xform_init(xform *x, ksafe_consumer *c, const char *out);
/* The relay's transform: emits "inv-<i>" (and "invb-<i>") with the
 * record's key to x->out; fails, sleeps or raises a fatal error as x
 * says; stops the consumer once x->stop_at indexes had an OK call. */
ksafe_handler_result transform(const ksafe_message *m,
                               ksafe_relay_emitter *em, ksafe_error *err,
                               void *payload);
void new_topic(char *topic, size_t size, const char *prefix, int partitions);
/* A transactional producer whose transaction timeout fits the test
 * consumers' session. */
ksafe_producer *txn_producer(void);
/* Relay defaults with the transform, x and st, and short backoffs. */
void relay_options(ksafe_relay_options *o, xform *x, ksafe_relay_stats *st);
/* Reads every record of `topic` into out[]; returns how many. */
int read_all(const char *topic, int partitions, outrec *out, int max);
/* Times each index appears in out[0..n) (first records only). */
void count_indexes(const outrec *out, int n, int *counts, int max);
/* Every index below total is in out[], and per key the last occurrences
 * follow input order. */
void assert_last_runs_in_order(const outrec *out, int n, int total);
/* Waits (up to 60 s) until n indexes had an OK transform call. */
void wait_distinct(xform *x, int n);
/* A consumer of `topic` in `group` with the eager range strategy. */
ksafe_consumer *eager_member(const char *topic, const char *group);

#endif
