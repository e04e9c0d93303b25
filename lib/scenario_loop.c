/*
 * lib/scenario_loop.c - the scenario kit's background loop and waits:
 * ksafe_run() on a thread of its own, so the test thread is free to inject
 * faults, and waits on conditions that give up early when the loop ended.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"

struct ksafe_test_loop {
    pthread_t thread;
    ksafe_consumer *c;
    ksafe_loop_options opts;
    ksafe_loop_stats *user_stats; /* filled at stop */
    ksafe_loop_stats stats;       /* written by the loop's thread only */
    int rc;
    ksafe_error err;
    atomic_int running;
};

static void *loop_main(void *arg)
{
    ksafe_test_loop *l = arg;

    l->rc = ksafe_run(l->c, &l->opts, &l->err);
    atomic_store(&l->running, 0);
    return NULL;
}

int ksafe_test_loop_start(ksafe_test_loop **out, ksafe_consumer *c,
                          const ksafe_loop_options *opts, ksafe_error *err)
{
    ksafe_test_loop *l;
    int rc;

    if (!out || !c || !opts)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0, "loop_start: %s is NULL",
                                !out ? "out" : !c ? "consumer" : "options");
    *out = NULL;
    /* The copy below is of this version's struct: a caller's of another
     * size must not be read past its end. */
    if (opts->version != KSAFE_LOOP_OPTIONS_VERSION)
        return ksafe__error_set(err, KSAFE_EVERSION, 0, 0,
                                "loop_start: ksafe_loop_options.version is "
                                "%u; this library knows version %d",
                                opts->version, KSAFE_LOOP_OPTIONS_VERSION);
    if (!(l = calloc(1, sizeof(*l))))
        return ksafe__error_set(err, KSAFE_ENOMEM, 0, 0, "out of memory");
    l->c = c;
    l->opts = *opts;
    l->user_stats = opts->stats;
    l->opts.stats = &l->stats;
    atomic_store(&l->running, 1);
    if ((rc = pthread_create(&l->thread, NULL, loop_main, l))) {
        free(l);
        return ksafe__error_set(err, KSAFE_ESTATE, 0, 0,
                                "could not start the loop's thread: %s",
                                strerror(rc));
    }
    *out = l;
    return 0;
}

int ksafe_test_loop_running(const ksafe_test_loop *l)
{
    return l ? atomic_load(&((ksafe_test_loop *)l)->running) : 0;
}

int ksafe_test_loop_stop(ksafe_test_loop *l, ksafe_loop_stats *stats,
                         ksafe_error *err)
{
    int rc;

    if (!l)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0, "loop_stop: loop is NULL");
    ksafe_consumer_stop(l->c);
    pthread_join(l->thread, NULL);
    if (stats)
        *stats = l->stats;
    if (l->user_stats)
        *l->user_stats = l->stats;
    rc = l->rc;
    if (err)
        *err = l->err;
    free(l);
    return rc;
}

static void sleep_10ms(void)
{
    struct timespec ts = {0, 10 * 1000 * 1000};
    nanosleep(&ts, NULL);
}

int ksafe_test_wait_for(ksafe_test_condition cond, void *payload,
                        const ksafe_test_loop *loop, int timeout_ms,
                        ksafe_error *err)
{
    int64_t deadline;

    if (!cond)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "wait_for: condition is NULL");
    if (timeout_ms < 0)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "wait_for: timeout_ms is %d, below 0",
                                timeout_ms);
    deadline = ksafe__now_ms() + timeout_ms;
    for (;;) {
        if (cond(payload))
            return 0;
        if (loop && !ksafe_test_loop_running(loop))
            return cond(payload)
                       ? 0
                       : ksafe__error_set(err, KSAFE_ESTOPPED, 0, 0,
                                          "the loop ended before the "
                                          "condition was met (its result: "
                                          "ksafe_test_loop_stop())");
        if (ksafe__now_ms() >= deadline)
            return ksafe__error_set(err, KSAFE_ETIMEDOUT, 0, 0,
                                    "condition not met in %d ms", timeout_ms);
        sleep_10ms();
    }
}

typedef struct cover {
    const ksafe_test_records *expected, *actual;
} cover;

static int covered(void *payload)
{
    const cover *cv = payload;
    return ksafe_test_records_missing(cv->expected, cv->actual, NULL) == 0;
}

int ksafe_test_wait_records(const ksafe_test_records *expected,
                            const ksafe_test_records *actual,
                            const ksafe_test_loop *loop, int timeout_ms,
                            ksafe_error *err)
{
    cover cv;
    ksafe_test_record first;
    size_t missing;
    int rc;

    if (!expected || !actual)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "wait_records: %s set is NULL",
                                expected ? "actual" : "expected");
    cv.expected = expected;
    cv.actual = actual;
    if (!(rc = ksafe_test_wait_for(covered, &cv, loop, timeout_ms, err)))
        return 0;
    if (rc != KSAFE_ETIMEDOUT && rc != KSAFE_ESTOPPED)
        return rc;
    if (!(missing = ksafe_test_records_missing(expected, actual, &first)))
        return 0; /* covered just now */
    return ksafe__error_set(err, rc, 0, 0,
                            "%s: %zu of %zu record(s) missing, the first at "
                            "partition %d offset %lld",
                            rc == KSAFE_ETIMEDOUT ? "timed out"
                                                  : "the loop ended",
                            missing, ksafe_test_records_count(expected),
                            (int)first.partition, (long long)first.offset);
}
