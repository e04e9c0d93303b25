/*
 * tests/relay_kit.h - cases, relay workers and read-back for
 * tests/test_relay_real.c (tests/relay_kit.c). Workers are
 * tests/relay_worker.c ($KSAFE_RELAY_WORKER) in child processes; every
 * assertion is a Check one, so call these from a test only.
 */
#ifndef KSAFE_RELAY_KIT_H
#define KSAFE_RELAY_KIT_H

#include <sys/types.h>

#include "testutil.h"

#define PARTITIONS 4
#define KEYS 10 /* test_produce(): "key-<i % 10>" */
#define MAX_RECORDS 8000

typedef struct relay_case {
    char in[64], out[64], group[64];
    int n;
} relay_case;

typedef struct worker {
    pid_t pid;
    char trace[320], result[320];
} worker;

typedef struct worker_result {
    int rc;
    unsigned long long aborts, rebalance_aborts, retries, transactions,
        committed;
    char message[600];
} worker_result;

typedef struct output {
    int count[MAX_RECORDS];
    int total;
    char disorder[160]; /* the first record out of input order per key */
} output;

/* CLOCK_MONOTONIC in milliseconds. */
int64_t now_ms(void);

void sleep_ms(int ms);

/* Unchecked fixture: the cluster (test_cluster_up()) and a directory for
 * the workers' traces and results. */
void relay_kit_up(void);

/* Its teardown: the directory removed, the cluster freed. */
void relay_kit_down(void);

/* New topics and group; `n` input records, flushed every `chunk` (0: in
 * one go). */
void case_new(relay_case *k, const char *name, int n, int chunk);

/* Starts a relay worker on case `k` as `txn_id` (its arguments: see
 * tests/relay_worker.c); it dies with the test process. */
void worker_start(worker *w, const relay_case *k, const char *txn_id,
                  int retry_every, int slow_us, int batch_records,
                  int batch_ms);

/* Transform calls the worker made so far (lines of its trace). */
long trace_lines(const worker *w);

/* The worker's exit status, or -1 while it runs. */
int worker_poll(worker *w);

/* Waits up to timeout_ms for the worker to exit by itself. */
int worker_wait(worker *w, int timeout_ms);

/* SIGTERM: the relay commits its open transaction, closes and returns. */
int worker_stop(worker *w);

/* SIGKILL: no commit, no close, the transaction left open. */
void worker_kill(worker *w);

/* Waits until the worker made `lines` transform calls; fails if it exits
 * first or takes longer than timeout_ms. */
void wait_trace(worker *w, long lines, int timeout_ms);

/* What the worker wrote on its way out (fails when it wrote nothing). */
void result_read(const worker *w, worker_result *r);

/* Stops the worker and asserts that the relay returned 0. */
void worker_stop_ok(worker *w, worker_result *r);

/* Checked teardown: SIGKILLs the workers a failed test left running. */
void reap_workers(void);

/*
 * Reads every partition of the output topic from the start to its end at
 * `isolation`. With no transaction open (every relay stopped, or replaced
 * by one with its id) the read_committed end is the log end.
 */
void read_output(const relay_case *k, const char *isolation, output *o);

/*
 * Waits until the relays are done with the input: on a real cluster the
 * group's committed offsets are the end of the input; the embedded one
 * stores no transactional offsets, so there every input has output.
 */
void wait_relayed(const relay_case *k, int timeout_ms);

/*
 * What every case ends with, all relays stopped: the committed offsets
 * are still the end of the input, and a read_committed reader sees each
 * input's output once, per key in input order. On the embedded cluster:
 * each input's output at least once.
 */
void assert_exactly_once(const relay_case *k);

#endif
