/*
 * lib/worker_pool.c - handler threads for ksafe_run with workers (see
 * worker_pool.h).
 */
#include "worker_pool.h"

#include <errno.h>
#include <stdlib.h>
#include <time.h>

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void *worker(void *arg)
{
    ksafe__pool *p = arg;

    pthread_mutex_lock(&p->lock);
    for (;;) {
        ksafe__pool_item *it;
        uint64_t t0;

        while (!p->todo_head && !p->stopping)
            pthread_cond_wait(&p->work, &p->lock);
        if (p->stopping)
            break; /* what is still queued stays for the caller */
        it = p->todo_head;
        p->todo_head = it->next;
        if (!p->todo_head)
            p->todo_tail = NULL;
        p->todo--;
        p->running++;
        pthread_mutex_unlock(&p->lock);

        t0 = now_ns();
        it->next = NULL;
        p->run(it, p->arg);
        t0 = now_ns() - t0;

        pthread_mutex_lock(&p->lock);
        p->busy_ns += t0;
        p->running--;
        if (p->done_tail)
            p->done_tail->next = it;
        else
            p->done_head = it;
        p->done_tail = it;
        p->done++;
        pthread_cond_broadcast(&p->idle);
        pthread_mutex_unlock(&p->lock);
        if (p->wake)
            p->wake(p->arg);
        pthread_mutex_lock(&p->lock);
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

int ksafe__pool_start(ksafe__pool *p, size_t n,
                      void (*run)(ksafe__pool_item *it, void *arg),
                      void (*wake)(void *arg), void *arg)
{
    pthread_condattr_t ca;
    size_t i;

    if (n < 1 || n > 1024 || !run)
        return -1;
    p->todo_head = p->todo_tail = p->done_head = p->done_tail = NULL;
    p->todo = p->running = p->done = 0;
    p->stopping = 0;
    p->run = run;
    p->wake = wake;
    p->arg = arg;
    p->busy_ns = 0;
    p->n_threads = 0;
    if (!(p->threads = calloc(n, sizeof *p->threads)))
        return -1;
    pthread_mutex_init(&p->lock, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&p->work, NULL);
    pthread_cond_init(&p->idle, &ca);
    pthread_condattr_destroy(&ca);
    for (i = 0; i < n; i++) {
        if (pthread_create(&p->threads[i], NULL, worker, p)) {
            ksafe__pool_stop(p);
            return -1;
        }
        p->n_threads++;
    }
    return 0;
}

void ksafe__pool_submit(ksafe__pool *p, ksafe__pool_item *it)
{
    it->next = NULL;
    pthread_mutex_lock(&p->lock);
    if (p->todo_tail)
        p->todo_tail->next = it;
    else
        p->todo_head = it;
    p->todo_tail = it;
    p->todo++;
    pthread_cond_signal(&p->work);
    pthread_mutex_unlock(&p->lock);
}

ksafe__pool_item *ksafe__pool_take_done(ksafe__pool *p)
{
    ksafe__pool_item *it;

    pthread_mutex_lock(&p->lock);
    it = p->done_head;
    p->done_head = p->done_tail = NULL;
    p->done = 0;
    pthread_mutex_unlock(&p->lock);
    return it;
}

size_t ksafe__pool_outstanding(ksafe__pool *p)
{
    size_t n;

    pthread_mutex_lock(&p->lock);
    n = p->todo + p->running + p->done;
    pthread_mutex_unlock(&p->lock);
    return n;
}

void ksafe__pool_wait(ksafe__pool *p, int timeout_ms)
{
    struct timespec until;

    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += timeout_ms / 1000;
    until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&p->lock);
    while (!p->done_head && (p->todo || p->running))
        if (pthread_cond_timedwait(&p->idle, &p->lock, &until) == ETIMEDOUT)
            break;
    pthread_mutex_unlock(&p->lock);
}

size_t ksafe__pool_unqueue(ksafe__pool *p,
                           int (*keep)(ksafe__pool_item *it, void *arg),
                           void (*drop)(ksafe__pool_item *it, void *arg),
                           void *arg)
{
    ksafe__pool_item *it, *gone = NULL, **link, *prev = NULL;
    size_t n = 0;

    pthread_mutex_lock(&p->lock);
    for (link = &p->todo_head; (it = *link);) {
        if (keep(it, arg)) {
            prev = it;
            link = &it->next;
            continue;
        }
        *link = it->next;
        it->next = gone;
        gone = it;
        p->todo--;
        n++;
    }
    p->todo_tail = prev;
    pthread_mutex_unlock(&p->lock);
    while (gone) { /* outside the lock: drop may take its time */
        it = gone;
        gone = it->next;
        it->next = NULL;
        if (drop)
            drop(it, arg);
    }
    return n;
}

uint64_t ksafe__pool_busy_ns(ksafe__pool *p)
{
    uint64_t n;

    pthread_mutex_lock(&p->lock);
    n = p->busy_ns;
    pthread_mutex_unlock(&p->lock);
    return n;
}

void ksafe__pool_stop(ksafe__pool *p)
{
    size_t i;

    pthread_mutex_lock(&p->lock);
    p->stopping = 1;
    pthread_cond_broadcast(&p->work);
    pthread_mutex_unlock(&p->lock);
    for (i = 0; i < p->n_threads; i++)
        pthread_join(p->threads[i], NULL);
    free(p->threads);
    p->threads = NULL;
    p->n_threads = 0;
    pthread_cond_destroy(&p->work);
    pthread_cond_destroy(&p->idle);
    pthread_mutex_destroy(&p->lock);
}
