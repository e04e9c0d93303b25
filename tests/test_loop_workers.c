/*
 * tests/test_loop_workers.c - ksafe_run with workers on the embedded
 * cluster: per-key order under parallel handlers, commits that never pass
 * an unfinished record, a retrying key that blocks only itself, a handler
 * call longer than max.poll.interval.ms, a revoke while records are in
 * flight, and a stop that drains. The options' refusals are here too.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include "testutil.h"

#define KEYS 10 /* test_produce: key-<i % 10> */

static void nap_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* What the handlers saw, shared by the worker threads. */
typedef struct seen {
    pthread_mutex_t lock;
    int last[KEYS];      /* per key: the last index handled, -1 none */
    int order_errors;    /* a key's index not above its last */
    int handled;         /* OK results */
    int calls;
    char first_error[256];
    atomic_int inside, max_inside;
    /* a record whose index is `slow` sleeps `slow_ms` (or, with gate,
     * waits until `gate_open`) */
    int slow, slow_ms, gate;
    atomic_int gate_open;
    atomic_int slow_started;
    int slow_partition;
    int64_t slow_offset;
    /* gate_first: the first record of each partition waits for the gate;
     * gate_all: every record does */
    int gate_first;
    atomic_int gate_all;
    int64_t hung[8]; /* per partition: offset of its hung record, -1 */
    /* a record whose index is `retry` asks for RETRY `retries` times */
    int retry, retries, retry_calls;
    int done_while_retrying; /* other keys' records done meanwhile */
    int sleep_us;            /* every call */
    atomic_int stop_asked;   /* set by the test before it stops the loop */
    atomic_int started_after_stop;
} seen;

static void seen_init(seen *s)
{
    int k;

    memset(s, 0, sizeof(*s));
    pthread_mutex_init(&s->lock, NULL);
    for (k = 0; k < KEYS; k++)
        s->last[k] = -1;
    for (k = 0; k < 8; k++)
        s->hung[k] = -1;
    s->slow = s->retry = -1;
}

static ksafe_handler_result handler(const ksafe_message *m, ksafe_error *err,
                                    void *payload)
{
    seen *s = payload;
    int i = test_value_index(m), k = i % KEYS, now, max;
    ksafe_handler_result r = KSAFE_HANDLER_OK;

    if (atomic_load(&s->stop_asked))
        atomic_fetch_add(&s->started_after_stop, 1);
    now = atomic_fetch_add(&s->inside, 1) + 1;
    while (now > (max = atomic_load(&s->max_inside)) &&
           !atomic_compare_exchange_weak(&s->max_inside, &max, now))
        ;
    if (s->sleep_us)
        nap_ms(s->sleep_us / 1000 ? s->sleep_us / 1000 : 1);
    if (s->gate_first) {
        int p = (int)ksafe_message_partition(m), hang = 0;
        pthread_mutex_lock(&s->lock);
        if (p < 8 && s->hung[p] < 0) {
            s->hung[p] = ksafe_message_offset(m);
            hang = 1;
        }
        pthread_mutex_unlock(&s->lock);
        if (hang)
            while (!atomic_load(&s->gate_open))
                nap_ms(5);
    }
    if (atomic_load(&s->gate_all))
        while (!atomic_load(&s->gate_open))
            nap_ms(5);
    if (i == s->slow) {
        s->slow_partition = (int)ksafe_message_partition(m);
        s->slow_offset = ksafe_message_offset(m);
        atomic_store(&s->slow_started, 1);
        if (s->gate)
            while (!atomic_load(&s->gate_open))
                nap_ms(5);
        else
            nap_ms(s->slow_ms);
    }
    pthread_mutex_lock(&s->lock);
    s->calls++;
    if (i == s->retry && s->retry_calls < s->retries) {
        s->retry_calls++;
        r = KSAFE_HANDLER_RETRY;
        snprintf(err->message, sizeof(err->message), "retry %d",
                 s->retry_calls);
    } else {
        if (i <= s->last[k]) {
            if (!s->order_errors++)
                snprintf(s->first_error, sizeof(s->first_error),
                         "key %d: index %d after %d", k, i, s->last[k]);
        }
        s->last[k] = i;
        s->handled++;
        if (s->retry >= 0 && s->retry_calls > 0 &&
            s->retry_calls < s->retries && k != s->retry % KEYS)
            s->done_while_retrying++;
    }
    pthread_mutex_unlock(&s->lock);
    atomic_fetch_sub(&s->inside, 1);
    return r;
}

static atomic_int drain_warnings;

static void count_drain(int level, const char *fac, const char *msg,
                        void *payload)
{
    (void)level;
    (void)msg;
    (void)payload;
    if (!strcmp(fac, "DRAIN"))
        atomic_fetch_add(&drain_warnings, 1);
}

/* A test consumer subscribed to `topic` with `strategy`, counting the
 * loop's DRAIN warnings. */
static ksafe_consumer *subscribed(const char *topic, const char *group,
                                  ksafe_assignment_strategy strategy)
{
    ksafe_consumer_options o;
    ksafe_consumer *c;
    ksafe_error err;

    ksafe_test_cluster_consumer_options(tc, &o, group);
    o.log_cb = count_drain;
    if (!test_kip848())
        o.assignment_strategy = strategy;
    ck_assert_ok(ksafe_consumer_new(&c, &o, &err), err);
    ck_assert_ok(ksafe_consumer_subscribe(c, &topic, 1, &err), err);
    return c;
}

typedef struct run {
    ksafe_consumer *c;
    ksafe_loop_options lo;
    ksafe_loop_stats st;
    ksafe_error err;
    int rc;
    int running;
    pthread_t t;
} run;

/* Runs and what their handlers saw live in static storage: a failed
 * assertion leaves the test function (CK_FORK=no), and the teardown must
 * still find a loop to stop before its options go away. */
static run R[2];
static seen S[2];

static void *run_thread(void *arg)
{
    run *r = arg;
    r->rc = ksafe_run(r->c, &r->lo, &r->err);
    return NULL;
}

/* Sets r->lo up; run_go() starts the loop (change r->lo between them). */
static void run_prepare(run *r, ksafe_consumer *c, seen *s, int workers,
                        ksafe_ordering ordering)
{
    ksafe_loop_options lo = KSAFE_LOOP_OPTIONS_INIT;

    if (r->c && r->c != c)
        ksafe_consumer_free(r->c);
    memset(r, 0, sizeof(*r));
    lo.handler = handler;
    lo.payload = s;
    lo.workers = workers;
    lo.ordering = ordering;
    lo.commit_every_records = 50;
    lo.commit_interval_ms = 100;
    lo.backoff_initial_ms = 200;
    lo.backoff_max_ms = 200;
    lo.stats = &r->st;
    r->lo = lo;
    r->c = c;
}

static void run_go(run *r)
{
    ck_assert_int_eq(pthread_create(&r->t, NULL, run_thread, r), 0);
    r->running = 1;
}

static void run_start(run *r, ksafe_consumer *c, seen *s, int workers,
                      ksafe_ordering ordering)
{
    run_prepare(r, c, s, workers, ordering);
    run_go(r);
}

static int run_stop(run *r)
{
    if (r->running) {
        ksafe_consumer_stop(r->c);
        pthread_join(r->t, NULL);
        r->running = 0;
    }
    return r->rc;
}

static void teardown(void)
{
    int i;

    for (i = 0; i < 2; i++) {
        if (R[i].running) {
            atomic_store(&S[i].gate_open, 1);
            run_stop(&R[i]);
        }
        if (R[i].c)
            ksafe_consumer_free(R[i].c);
        memset(&R[i], 0, sizeof(R[i]));
    }
}

static int handled(seen *s)
{
    int n;

    pthread_mutex_lock(&s->lock);
    n = s->handled;
    pthread_mutex_unlock(&s->lock);
    return n;
}

static int wait_handled(seen *s, int n, int seconds)
{
    time_t deadline = time(NULL) + seconds;

    while (handled(s) < n && time(NULL) < deadline)
        nap_ms(10);
    return handled(s);
}

/* The sum of committed offsets over `parts` partitions (none counts 0). */
static int64_t committed_sum(const char *topic, const char *group, int parts)
{
    int64_t c[16], sum = 0;
    int p;

    test_committed(tc, topic, group, parts, c);
    for (p = 0; p < parts; p++)
        sum += c[p] > 0 ? c[p] : 0;
    return sum;
}

static const ksafe_ordering orders[] = {KSAFE_ORDER_KEY,
                                        KSAFE_ORDER_PARTITION};

/* 8 workers over 4 partitions: every record handled once, in key order
 * (key order: different keys of a partition overlap; partition order:
 * still per key), and everything committed at the end. */
START_TEST(records_keep_key_order_and_all_commit)
{
    char topic[64], group[64];
#define s S[0]
#define r R[0]
    int n = 2000;

    ksafe_test_unique_name(topic, sizeof(topic), "wk-order");
    ksafe_test_unique_name(group, sizeof(group), "wk-order-g");
    ck_assert_ok(ksafe_test_cluster_create_topic(tc, topic, 4, &r.err), r.err);
    test_produce(tc, topic, 0, n);
    seen_init(&s);
    s.sleep_us = 1000;
    run_start(&r, test_subscribed(tc, topic, group), &s, 8, orders[_i]);
    ck_assert_int_eq(wait_handled(&s, n, 60), n);
    ck_assert_int_eq(run_stop(&r), 0);
    ck_assert_msg(s.order_errors == 0, "%d order error(s), first: %s",
                  s.order_errors, s.first_error);
    ck_assert_int_eq(s.handled, n);
    ck_assert_int_eq(s.calls, n);
    ck_assert_uint_eq(r.st.processed, (uint64_t)n);
    ck_assert_uint_eq(r.st.polled, (uint64_t)n);
    ck_assert_int_gt(atomic_load(&s.max_inside), 1); /* it did run in parallel */
    ck_assert_int_eq(committed_sum(topic, group, 4), n);
    ck_assert_uint_eq(r.st.in_flight, 0);
}
END_TEST
#undef s
#undef s2
#undef r
#undef r2

/* One record hangs in its handler: the others of its partition finish,
 * but the committed offset stays at the hung one until it returns. */
START_TEST(commits_never_pass_an_unfinished_record)
{
    char topic[64], group[64];
    int64_t c[1];
#define s S[0]
#define r R[0]
    int n = 200;

    ksafe_test_unique_name(topic, sizeof(topic), "wk-gap");
    ksafe_test_unique_name(group, sizeof(group), "wk-gap-g");
    ck_assert_ok(ksafe_test_cluster_create_topic(tc, topic, 1, &r.err), r.err);
    test_produce(tc, topic, 0, n);
    seen_init(&s);
    s.slow = 20; /* offset 20 of the only partition */
    s.gate = 1;
    run_start(&r, test_subscribed(tc, topic, group), &s, 4, KSAFE_ORDER_KEY);
    /* all but the hung record (key 0) and the later records of its key,
     * which wait behind it */
    ck_assert_int_eq(wait_handled(&s, n - 1 - (n - 1 - 20) / KEYS, 60),
                     n - 1 - (n - 1 - 20) / KEYS);
    nap_ms(500); /* several commit intervals */
    test_committed(tc, topic, group, 1, c);
    ck_assert_msg(c[0] == 20, "committed %lld with offset 20 unfinished",
                  (long long)c[0]);
    ck_assert_uint_ge(r.st.in_flight, (uint64_t)(n - 20));
    atomic_store(&s.gate_open, 1);
    ck_assert_int_eq(wait_handled(&s, n, 30), n);
    nap_ms(500);
    test_committed(tc, topic, group, 1, c);
    ck_assert_int_eq(c[0], n);
    ck_assert_int_eq(run_stop(&r), 0);
    ck_assert_int_eq(s.order_errors, 0);
}
END_TEST
#undef s
#undef s2
#undef r
#undef r2

/* A record asks for a retry three times (200 ms backoff each): records of
 * other keys keep finishing meanwhile; its own key's later records wait. */
START_TEST(a_retrying_key_blocks_only_itself)
{
    char topic[64], group[64];
#define s S[0]
#define r R[0]
    int n = 300;

    ksafe_test_unique_name(topic, sizeof(topic), "wk-retry");
    ksafe_test_unique_name(group, sizeof(group), "wk-retry-g");
    ck_assert_ok(ksafe_test_cluster_create_topic(tc, topic, 1, &r.err), r.err);
    test_produce(tc, topic, 0, n);
    seen_init(&s);
    s.retry = 3;
    s.retries = 3;
    s.sleep_us = 2000;
    run_start(&r, test_subscribed(tc, topic, group), &s, 4, KSAFE_ORDER_KEY);
    ck_assert_int_eq(wait_handled(&s, n, 60), n);
    ck_assert_int_eq(run_stop(&r), 0);
    ck_assert_int_eq(s.retry_calls, 3);
    ck_assert_uint_eq(r.st.retries, 3);
    ck_assert_msg(s.order_errors == 0, "%s", s.first_error);
    /* 600 ms of retries at 4 workers x 2 ms: far more than 10 others */
    ck_assert_int_gt(s.done_while_retrying, 10);
    ck_assert_int_eq(committed_sum(topic, group, 1), n);
}
END_TEST
#undef s
#undef s2
#undef r
#undef r2

/* One handler call takes twice max.poll.interval.ms: the polling thread
 * goes on polling, so the member keeps its partitions. */
START_TEST(a_long_handler_call_keeps_membership)
{
    char topic[64], group[64];
    ksafe_consumer_options co;
    ksafe_consumer *c = NULL;
    const char *t = topic;
#define s S[0]
#define r R[0]
    int n = 50, max_poll = 6000;

    ksafe_test_unique_name(topic, sizeof(topic), "wk-long");
    ksafe_test_unique_name(group, sizeof(group), "wk-long-g");
    ck_assert_ok(ksafe_test_cluster_create_topic(tc, topic, 2, &r.err), r.err);
    test_produce(tc, topic, 0, n);
    ksafe_test_cluster_consumer_options(tc, &co, group);
    co.log_cb = test_quiet_log;
    if (!test_kip848()) {
        co.session_timeout_ms = max_poll;
        co.heartbeat_interval_ms = 1000;
    }
    co.max_poll_interval_ms = max_poll;
    ck_assert_ok(ksafe_consumer_new(&c, &co, &r.err), r.err);
    ck_assert_ok(ksafe_consumer_subscribe(c, &t, 1, &r.err), r.err);
    seen_init(&s);
    s.slow = 10;
    s.slow_ms = 2 * max_poll;
    run_start(&r, c, &s, 4, KSAFE_ORDER_KEY);
    ck_assert_int_eq(wait_handled(&s, n, 60), n);
    ck_assert_int_eq(run_stop(&r), 0);
    ck_assert_uint_eq(r.st.lost, 0);
    ck_assert_uint_eq(r.st.revoked, 0);
    ck_assert_int_eq(s.calls, n); /* nothing handed twice */
    ck_assert_int_eq(committed_sum(topic, group, 2), n);
}
END_TEST
#undef s
#undef s2
#undef r
#undef r2

/* Two topics with one partition each, partition order: a record hung in
 * the first topic's partition 0 holds only that partition, never the other
 * topic's partition 0. */
START_TEST(a_hung_partition_holds_no_other_topics_partition)
{
#define s S[0]
#define r R[0]
    char topic_a[64], topic_b[64], group[64];
    const char *topics[2];
    ksafe_consumer_options co;
    ksafe_consumer *c = NULL;
    int n = 100;

    ksafe_test_unique_name(topic_a, sizeof(topic_a), "wk-ta");
    ksafe_test_unique_name(topic_b, sizeof(topic_b), "wk-tb");
    ksafe_test_unique_name(group, sizeof(group), "wk-t-g");
    ck_assert_ok(ksafe_test_cluster_create_topic(tc, topic_a, 1, &r.err), r.err);
    ck_assert_ok(ksafe_test_cluster_create_topic(tc, topic_b, 1, &r.err), r.err);
    test_produce(tc, topic_a, 0, n);
    test_produce(tc, topic_b, 0, n);
    topics[0] = topic_a;
    topics[1] = topic_b;
    ksafe_test_cluster_consumer_options(tc, &co, group);
    co.log_cb = test_quiet_log;
    ck_assert_ok(ksafe_consumer_new(&c, &co, &r.err), r.err);
    ck_assert_ok(ksafe_consumer_subscribe(c, topics, 2, &r.err), r.err);
    seen_init(&s);
    s.gate_first = 1; /* the first record of partition 0, of either topic */
    run_start(&r, c, &s, 4, KSAFE_ORDER_PARTITION);
    /* the other topic's 100 records all finish while that one hangs */
    ck_assert_int_eq(wait_handled(&s, n, 30), n);
    nap_ms(300);
    ck_assert_int_eq(handled(&s), n);
    atomic_store(&s.gate_open, 1);
    ck_assert_int_eq(wait_handled(&s, 2 * n, 30), 2 * n);
    ck_assert_int_eq(run_stop(&r), 0);
#undef s
#undef r
}
END_TEST

/* Key order queues a few records at a time, no order all of them. */
static const ksafe_ordering stop_orders[] = {KSAFE_ORDER_KEY,
                                             KSAFE_ORDER_NONE};

/* A stop while records are in the handlers: they finish (the drain), are
 * marked, and the committed offsets cover exactly what was handled. */
START_TEST(stop_drains_and_commits_what_finished)
{
    char topic[64], group[64];
#define s S[0]
#define r R[0]
    int n = 400, got;

    ksafe_test_unique_name(topic, sizeof(topic), "wk-stop");
    ksafe_test_unique_name(group, sizeof(group), "wk-stop-g");
    ck_assert_ok(ksafe_test_cluster_create_topic(tc, topic, 2, &r.err), r.err);
    test_produce(tc, topic, 0, n);
    seen_init(&s);
    s.sleep_us = 50000; /* 50 ms a call */
    run_start(&r, test_subscribed(tc, topic, group), &s, 8, stop_orders[_i]);
    wait_handled(&s, 40, 30);
    atomic_store(&s.stop_asked, 1);
    ck_assert_int_eq(run_stop(&r), 0);
    got = handled(&s);
    /* nothing queued starts after the stop: at most the calls a worker took
     * before the loop saw it (one per worker) */
    ck_assert_msg(atomic_load(&s.started_after_stop) <= 8,
                  "%d handler calls started after the stop",
                  atomic_load(&s.started_after_stop));
    ck_assert_int_lt(got, n); /* it did stop early */
    ck_assert_int_eq(atomic_load(&s.inside), 0); /* nothing runs after */
    ck_assert_uint_eq(r.st.in_flight, 0);
    /* in key order each partition's committed prefix is what finished
     * before the first unfinished record: at most what was handled */
    ck_assert_int_le(committed_sum(topic, group, 2), got);
    ck_assert_int_ge(committed_sum(topic, group, 2), 1);
}
END_TEST
#undef s
#undef s2
#undef r
#undef r2

/* A second member joins while the first has a record hung in the handler
 * on every partition: the first gives up partitions after
 * drain_timeout_ms (eager: all of them; cooperative: some), commits nothing
 * past a hung record, and drops the late results; the new owner reads from
 * the committed position, so nothing is lost. */
static const ksafe_assignment_strategy strategies[] = {
    KSAFE_ASSIGN_COOPERATIVE_STICKY, KSAFE_ASSIGN_RANGE};

START_TEST(revoke_with_records_in_flight_drops_late_results)
{
#define s S[0]
#define s2 S[1]
#define r R[0]
#define r2 R[1]
    char topic[64], group[64];
    int n = 200, p, k;
    int64_t c[4];
    time_t deadline;

    ksafe_test_unique_name(topic, sizeof(topic), "wk-rev");
    ksafe_test_unique_name(group, sizeof(group), "wk-rev-g");
    ck_assert_ok(ksafe_test_cluster_create_topic(tc, topic, 4, &r.err), r.err);
    test_produce(tc, topic, 0, n);
    atomic_store(&drain_warnings, 0);
    seen_init(&s);
    s.gate_first = 1;
    run_prepare(&r, subscribed(topic, group, strategies[_i]), &s, 8,
                KSAFE_ORDER_KEY);
    r.lo.drain_timeout_ms = 500;
    run_go(&r);
    deadline = time(NULL) + 30;
    for (;;) {
        int hung = 0;
        pthread_mutex_lock(&s.lock);
        for (p = 0; p < 4; p++)
            hung += s.hung[p] >= 0;
        pthread_mutex_unlock(&s.lock);
        if (hung == 4 || time(NULL) > deadline)
            break;
        nap_ms(10);
    }
    nap_ms(300); /* the records around the hung ones finish */

    /* Until the check below, neither member finishes another record: a
     * partition handled again after the rebalance (by the second member,
     * or by the first when it gets it back) would commit past its hung
     * offset rightly, and the check is about the first's revoke commit. */
    atomic_store(&s.gate_all, 1);
    seen_init(&s2);
    atomic_store(&s2.gate_all, 1);
    run_start(&r2, subscribed(topic, group, strategies[_i]), &s2, 8,
              KSAFE_ORDER_KEY);
    deadline = time(NULL) + 60;
    while (r.st.revoked + r.st.lost == 0 && time(NULL) < deadline)
        nap_ms(50);
    ck_assert_uint_gt(r.st.revoked, 0);
    /* the revoke waits drain_timeout_ms, says so, then commits */
    deadline = time(NULL) + 10;
    while (atomic_load(&drain_warnings) < 1 && time(NULL) < deadline)
        nap_ms(10);
    ck_assert_int_ge(atomic_load(&drain_warnings), 1);
    nap_ms(500);
    /* nothing committed past a hung record */
    test_committed(tc, topic, group, 4, c);
    for (p = 0; p < 4; p++)
        ck_assert_msg(c[p] <= s.hung[p],
                      "partition %d committed at %lld, its offset %lld hangs",
                      p, (long long)c[p], (long long)s.hung[p]);
    atomic_store(&s.gate_open, 1); /* the late results come after */
    atomic_store(&s2.gate_open, 1);
    /* every key's last record is handled by one of the two */
    deadline = time(NULL) + 60;
    for (;;) {
        int missing = 0;
        pthread_mutex_lock(&s.lock);
        pthread_mutex_lock(&s2.lock);
        for (k = 0; k < KEYS; k++)
            missing += (s.last[k] > s2.last[k] ? s.last[k] : s2.last[k]) <
                       n - KEYS + k;
        pthread_mutex_unlock(&s2.lock);
        pthread_mutex_unlock(&s.lock);
        if (!missing || time(NULL) > deadline)
            break;
        nap_ms(50);
    }
    /* Everything committed while the group is stable (a member closing
     * right after another left meets the next rebalance, and the embedded
     * cluster refuses its commit), then both stop. */
    deadline = time(NULL) + 30;
    while (committed_sum(topic, group, 4) < n && time(NULL) < deadline)
        nap_ms(100);
    ck_assert_int_eq(committed_sum(topic, group, 4), n);
    ck_assert_int_eq(run_stop(&r2), 0);
    ck_assert_int_eq(run_stop(&r), 0);
    ck_assert_int_eq(s2.order_errors, 0);
#undef s
#undef s2
#undef r
#undef r2
}
END_TEST

/* ---- options ------------------------------------------------------------ */

START_TEST(worker_options_are_checked)
{
    ksafe_loop_options lo = KSAFE_LOOP_OPTIONS_INIT;
    ksafe_consumer *c = NULL;
    ksafe_consumer_options co = KSAFE_CONSUMER_OPTIONS_INIT;
    ksafe_error err;

    co.bootstrap_servers = "127.0.0.1:1";
    co.group_id = "unit";
    co.log_cb = test_quiet_log;
    lo.handler = handler;
    lo.workers = -1;
    ck_assert_ok(ksafe_consumer_new(&c, &co, &err), err);
    ck_assert_int_eq(ksafe_run(c, &lo, &err), KSAFE_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.message, "workers is -1"));
    lo.workers = 1025;
    ck_assert_int_eq(ksafe_run(c, &lo, &err), KSAFE_EINVAL);
    lo.workers = 4;
    lo.ordering = (ksafe_ordering)7;
    ck_assert_int_eq(ksafe_run(c, &lo, &err), KSAFE_EINVAL);
    lo.ordering = KSAFE_ORDER_NONE;
    lo.max_in_flight = 0;
    ck_assert_int_eq(ksafe_run(c, &lo, &err), KSAFE_EINVAL);
    lo.max_in_flight = 10;
    lo.max_in_flight_per_partition = 11;
    ck_assert_int_eq(ksafe_run(c, &lo, &err), KSAFE_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.message, "max_in_flight_per_partition"));
    lo.max_in_flight_per_partition = 10;
    lo.drain_timeout_ms = -1;
    ck_assert_int_eq(ksafe_run(c, &lo, &err), KSAFE_EINVAL);
    lo.drain_timeout_ms = 100;
    lo.semantics = KSAFE_AT_MOST_ONCE;
    ck_assert_int_eq(ksafe_run(c, &lo, &err), KSAFE_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.message, "KSAFE_AT_MOST_ONCE"));
    lo.semantics = KSAFE_AT_LEAST_ONCE;
    lo.handler = NULL;
    lo.batch_handler = (ksafe_batch_handler)1; /* never called */
    ck_assert_int_eq(ksafe_run(c, &lo, &err), KSAFE_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.message, "batch_handler"));
    ksafe_consumer_free(c);
}
END_TEST
#undef s
#undef s2
#undef r
#undef r2

static Suite *loop_workers_suite(void)
{
    Suite *s = suite_create("loop_workers");
    TCase *t = tcase_create("workers");

    tcase_add_unchecked_fixture(t, test_cluster_up, test_cluster_down);
    tcase_add_checked_fixture(t, NULL, teardown);
    tcase_set_timeout(t, 240);
    tcase_add_test(t, worker_options_are_checked);
    tcase_add_loop_test(t, records_keep_key_order_and_all_commit, 0, 2);
    tcase_add_test(t, commits_never_pass_an_unfinished_record);
    tcase_add_test(t, a_retrying_key_blocks_only_itself);
    tcase_add_test(t, a_long_handler_call_keeps_membership);
    tcase_add_loop_test(t, stop_drains_and_commits_what_finished, 0, 2);
    tcase_add_test(t, a_hung_partition_holds_no_other_topics_partition);
    tcase_add_loop_test(t, revoke_with_records_in_flight_drops_late_results,
                        0, test_eager_runs() ? 2 : 1);
    suite_add_tcase(s, t);
    return s;
}

KSAFE_TEST_MAIN(loop_workers_suite)
