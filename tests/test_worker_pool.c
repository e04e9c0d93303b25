/*
 * tests/test_worker_pool.c - the handler threads of ksafe_run with workers
 * (lib/worker_pool.c): every item runs once and comes back, several run at
 * once, queued items can be taken back, and stop lets running ones finish.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include "testutil.h"
#include "../lib/worker_pool.h"

typedef struct item {
    ksafe__pool_item link; /* first: a link is its item */
    int id;
    int runs;
} item;

typedef struct world {
    atomic_int inside, max_inside, wakes, ran;
    pthread_mutex_t gate_lock;
    pthread_cond_t gate_cond;
    int gate_open; /* 0: item 0 waits in run until it opens */
    int sleep_ms;
} world;

static void nap(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void run(ksafe__pool_item *l, void *arg)
{
    world *w = arg;
    item *it = (item *)l;
    int now = atomic_fetch_add(&w->inside, 1) + 1, max;

    while (now > (max = atomic_load(&w->max_inside)) &&
           !atomic_compare_exchange_weak(&w->max_inside, &max, now))
        ;
    if (it->id == 0) {
        pthread_mutex_lock(&w->gate_lock);
        while (!w->gate_open)
            pthread_cond_wait(&w->gate_cond, &w->gate_lock);
        pthread_mutex_unlock(&w->gate_lock);
    }
    if (w->sleep_ms)
        nap(w->sleep_ms);
    it->runs++;
    atomic_fetch_add(&w->ran, 1);
    atomic_fetch_sub(&w->inside, 1);
}

static void wake(void *arg)
{
    atomic_fetch_add(&((world *)arg)->wakes, 1);
}

static void world_init(world *w, int gate_open, int sleep_ms)
{
    memset(w, 0, sizeof *w);
    pthread_mutex_init(&w->gate_lock, NULL);
    pthread_cond_init(&w->gate_cond, NULL);
    w->gate_open = gate_open;
    w->sleep_ms = sleep_ms;
}

static void open_gate(world *w)
{
    pthread_mutex_lock(&w->gate_lock);
    w->gate_open = 1;
    pthread_cond_broadcast(&w->gate_cond);
    pthread_mutex_unlock(&w->gate_lock);
}

/* Takes done items until `n` came back (30 s at most); returns how many. */
static int collect(ksafe__pool *p, item **order, int n)
{
    time_t deadline = time(NULL) + 30;
    int got = 0;

    while (got < n && time(NULL) < deadline) {
        ksafe__pool_item *l;
        ksafe__pool_wait(p, 100);
        for (l = ksafe__pool_take_done(p); l; l = l->next)
            order[got++] = (item *)l;
    }
    return got;
}

START_TEST(every_item_runs_once_and_comes_back)
{
    enum { N = 200 };
    static item items[N];
    item *order[N];
    ksafe__pool p;
    world w;
    int i;

    world_init(&w, 1, 2);
    ck_assert_int_eq(ksafe__pool_start(&p, 8, run, wake, &w), 0);
    for (i = 0; i < N; i++) {
        items[i].id = i + 1; /* no gate */
        items[i].runs = 0;
        ksafe__pool_submit(&p, &items[i].link);
    }
    ck_assert_int_eq(collect(&p, order, N), N);
    for (i = 0; i < N; i++)
        ck_assert_int_eq(items[i].runs, 1);
    ck_assert_uint_eq(ksafe__pool_outstanding(&p), 0);
    /* 8 workers sleeping 2 ms each: they overlap */
    ck_assert_int_ge(atomic_load(&w.max_inside), 2);
    ck_assert_int_le(atomic_load(&w.max_inside), 8);
    ck_assert_uint_ge(ksafe__pool_busy_ns(&p), (uint64_t)N * 2000000u);
    ksafe__pool_stop(&p);
    /* a wake per item, each after its item was on the done list (the last
     * may come after we took it: counted once the workers joined) */
    ck_assert_int_eq(atomic_load(&w.wakes), N);
}
END_TEST

static int keep_even(ksafe__pool_item *l, void *arg)
{
    (void)arg;
    return ((item *)l)->id % 2 == 0;
}

static void count_drop(ksafe__pool_item *l, void *arg)
{
    (void)l;
    (*(int *)arg)++;
}

START_TEST(queued_items_can_be_taken_back)
{
    static item items[10];
    item *order[10];
    ksafe__pool p;
    world w;
    int i, dropped = 0;
    time_t deadline = time(NULL) + 30;

    world_init(&w, 0, 0);
    ck_assert_int_eq(ksafe__pool_start(&p, 1, run, NULL, &w), 0);
    for (i = 0; i < 10; i++) {
        items[i].id = i;
        items[i].runs = 0;
        ksafe__pool_submit(&p, &items[i].link);
        if (i == 0) /* item 0 holds the only worker */
            while (atomic_load(&w.inside) == 0 && time(NULL) < deadline)
                nap(1);
    }
    ck_assert_uint_eq(ksafe__pool_unqueue(&p, keep_even, count_drop, &dropped),
                      5);
    ck_assert_int_eq(dropped, 5);
    ck_assert_uint_eq(ksafe__pool_outstanding(&p), 5);
    /* the list's tail survived: a new item queues behind 8 */
    items[9].runs = 0;
    items[9].id = 10;
    ksafe__pool_submit(&p, &items[9].link);
    open_gate(&w);
    ck_assert_int_eq(collect(&p, order, 6), 6);
    for (i = 0; i < 5; i++)
        ck_assert_int_eq(order[i]->id, 2 * i); /* oldest first */
    ck_assert_int_eq(order[5]->id, 10);
    for (i = 1; i < 9; i += 2)
        ck_assert_int_eq(items[i].runs, 0);
    ksafe__pool_stop(&p);
}
END_TEST

static void *open_later(void *arg)
{
    nap(200);
    open_gate(arg);
    return NULL;
}

START_TEST(stop_lets_the_running_item_finish_and_runs_no_more)
{
    static item items[6];
    ksafe__pool p;
    ksafe__pool_item *l;
    pthread_t t;
    world w;
    int i, done = 0;
    time_t deadline = time(NULL) + 30;

    world_init(&w, 0, 0);
    ck_assert_int_eq(ksafe__pool_start(&p, 1, run, NULL, &w), 0);
    for (i = 0; i < 6; i++) {
        items[i].id = i;
        items[i].runs = 0;
        ksafe__pool_submit(&p, &items[i].link);
        if (i == 0)
            while (atomic_load(&w.inside) == 0 && time(NULL) < deadline)
                nap(1);
    }
    ck_assert_int_eq(pthread_create(&t, NULL, open_later, &w), 0);
    ksafe__pool_stop(&p); /* waits for item 0, which waits for the gate */
    pthread_join(t, NULL);
    ck_assert_int_eq(items[0].runs, 1);
    for (i = 1; i < 6; i++)
        ck_assert_int_eq(items[i].runs, 0);
    /* the finished item is still there to take; the rest stay queued */
    for (l = p.done_head; l; l = l->next)
        done++;
    ck_assert_int_eq(done, 1);
    ck_assert_uint_eq(p.todo, 5);
}
END_TEST

START_TEST(bad_worker_counts_are_refused)
{
    ksafe__pool p;
    world w;

    world_init(&w, 1, 0);
    ck_assert_int_eq(ksafe__pool_start(&p, 0, run, NULL, &w), -1);
    ck_assert_int_eq(ksafe__pool_start(&p, 1025, run, NULL, &w), -1);
    ck_assert_int_eq(ksafe__pool_start(&p, 1, NULL, NULL, &w), -1);
}
END_TEST

static Suite *worker_pool_suite(void)
{
    Suite *s = suite_create("worker_pool");
    TCase *t = tcase_create("pool");

    tcase_add_test(t, every_item_runs_once_and_comes_back);
    tcase_add_test(t, queued_items_can_be_taken_back);
    tcase_add_test(t, stop_lets_the_running_item_finish_and_runs_no_more);
    tcase_add_test(t, bad_worker_counts_are_refused);
    suite_add_tcase(s, t);
    return s;
}

KSAFE_TEST_MAIN(worker_pool_suite)
