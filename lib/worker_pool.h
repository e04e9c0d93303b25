/*
 * lib/worker_pool.h - the threads that run handlers for ksafe_run with
 * workers. Never installed.
 *
 * The polling thread submits items; a worker takes the oldest, runs the
 * pool's `run` on it, puts it on the done list and calls `wake` (the loop
 * passes rd_kafka_queue_yield of the consumer's queue, so a poll waiting
 * for records returns to collect completions at once). Only the polling
 * thread submits and takes; items are the caller's structs, linked through
 * an embedded ksafe__pool_item: nothing is allocated per item.
 */
#ifndef KSAFE_WORKER_POOL_H
#define KSAFE_WORKER_POOL_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

typedef struct ksafe__pool_item {
    struct ksafe__pool_item *next;
} ksafe__pool_item;

typedef struct ksafe__pool {
    pthread_mutex_t lock;
    pthread_cond_t work; /* an item was submitted, or stop */
    pthread_cond_t idle; /* a worker finished an item */
    ksafe__pool_item *todo_head, *todo_tail;
    ksafe__pool_item *done_head, *done_tail;
    size_t todo, running, done;
    int stopping;
    void (*run)(ksafe__pool_item *it, void *arg);
    void (*wake)(void *arg);
    void *arg;
    pthread_t *threads;
    size_t n_threads;
    uint64_t busy_ns; /* summed handler time, under lock */
} ksafe__pool;

/* Starts `n` workers (1..1024). 0; -1 when a thread or memory could not be
 * had (nothing is left running then). */
int ksafe__pool_start(ksafe__pool *p, size_t n,
                      void (*run)(ksafe__pool_item *it, void *arg),
                      void (*wake)(void *arg), void *arg);

/* Queues an item for the next free worker. */
void ksafe__pool_submit(ksafe__pool *p, ksafe__pool_item *it);

/* Takes every finished item, oldest first (NULL: none). */
ksafe__pool_item *ksafe__pool_take_done(ksafe__pool *p);

/* Items submitted and not yet taken back: queued, running or done. */
size_t ksafe__pool_outstanding(ksafe__pool *p);

/* Waits up to `timeout_ms` for a worker to finish an item (returns at once
 * when one is done and not taken, or nothing runs or waits). */
void ksafe__pool_wait(ksafe__pool *p, int timeout_ms);

/* Removes the queued (not running) items for which `keep` returns 0,
 * handing each to `drop`; returns how many. */
size_t ksafe__pool_unqueue(ksafe__pool *p,
                           int (*keep)(ksafe__pool_item *it, void *arg),
                           void (*drop)(ksafe__pool_item *it, void *arg),
                           void *arg);

/* Total time the workers spent in `run`, in nanoseconds. */
uint64_t ksafe__pool_busy_ns(ksafe__pool *p);

/* Lets the running items finish, then joins the workers. Queued items that
 * never ran and finished ones not taken stay on their lists: take them with
 * ksafe__pool_take_done() and ksafe__pool_unqueue() before this, or they
 * are simply forgotten (the pool owns none of them). Once per start. */
void ksafe__pool_stop(ksafe__pool *p);

#endif
