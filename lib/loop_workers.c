/*
 * lib/loop_workers.c - ksafe_run with workers (ksafe_loop_options.workers
 * > 1). The polling thread never runs user code: it polls, dispatches each
 * record to the worker pool in the order the options ask (key lanes),
 * collects completions, marks each partition's completed prefix (the
 * completion window) and commits by the consumer's policy.
 *
 * A record's job lives from its poll until the commit position passes it
 * (or its partition goes): in its partition's window, and meanwhile in one
 * of these states.
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "completion_window.h"
#include "key_lanes.h"
#include "loop_internal.h"
#include "worker_pool.h"

enum {
    J_WAITING,   /* in a lane behind the record running there */
    J_SUBMITTED, /* handed to the pool: queued or running, or done and not
                    yet taken back */
    J_BACKOFF,   /* back from a RETRY, waiting for retry_at (or parked for
                    good: the loop is ending); holds its lane */
    J_DONE,      /* finished, behind an unfinished record of its partition */
    J_UNQUEUED   /* taken back from the lanes or the pool at a revoke */
};

typedef struct wpart wpart;

typedef struct wjob {
    ksafe__pool_item item; /* first: a pool item is its job */
    ksafe__lane_link lane;
    rd_kafka_message_t *m;
    wpart *part;            /* NULL: orphaned, its result is dropped */
    struct wjob *next;      /* the retry list, the held list, free jobs */
    int state;
    int attempts;
    int64_t since_ms;       /* polled */
    int64_t retry_at;
    ksafe_handler_result r; /* written by the worker */
    ksafe_error err;        /* written by the worker */
} wjob;

struct wpart {
    char *topic;
    const rd_kafka_topic_t *rkt;
    int32_t partition;
    ksafe__cwin win;
    int paused;
    int draining;     /* revoked: nothing more is dispatched */
    size_t submitted; /* jobs J_SUBMITTED */
    wjob *held, *held_tail; /* polled, not yet in the window (full, or a
                               rewound offset waiting for it to empty) */
};

typedef struct workers {
    loop *L;
    ksafe__pool pool;
    ksafe__lanes lanes;
    rd_kafka_queue_t *q;
    wpart **parts;
    size_t n_parts, cap_parts, last;
    wjob *retry;       /* J_BACKOFF jobs, unsorted */
    wjob *free_jobs;
    size_t in_flight;  /* jobs in windows */
    size_t held;       /* jobs in held lists */
    int all_paused;    /* max_in_flight reached */
    int stopping;
    int check_resume;  /* a paused partition's window shrank */
} workers;

#define INT64_NEVER INT64_MAX

/* ---- validation -------------------------------------------------------- */

int ksafe__loop_validate_workers(const ksafe_loop_options *o, ksafe_error *err)
{
    if (o->workers < 0 || o->workers > 1024)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "workers is %d, outside 0..1024 (0 or 1: "
                                "the handler runs on ksafe_run's thread)",
                                o->workers);
    if ((unsigned)o->ordering > KSAFE_ORDER_NONE)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "ordering %d is not a ksafe_ordering value",
                                (int)o->ordering);
    if (o->max_in_flight < 1 || o->max_in_flight > 1000000)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "max_in_flight is %zu, outside 1..1000000",
                                o->max_in_flight);
    if (o->max_in_flight_per_partition < 1 ||
        o->max_in_flight_per_partition > o->max_in_flight)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "max_in_flight_per_partition is %zu, outside "
                                "1..max_in_flight (%zu)",
                                o->max_in_flight_per_partition,
                                o->max_in_flight);
    if (o->drain_timeout_ms < 0 || o->drain_timeout_ms > 3600000)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "drain_timeout_ms is %d, outside 0..3600000",
                                o->drain_timeout_ms);
    if (o->workers <= 1)
        return 0; /* one at a time in offset order: every ordering holds */
    if (o->batch_handler)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "workers is %d with a batch_handler: workers "
                                "take one record at a time (use handler)",
                                o->workers);
    if (o->semantics != KSAFE_AT_LEAST_ONCE)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "workers is %d with KSAFE_AT_MOST_ONCE: "
                                "workers need KSAFE_AT_LEAST_ONCE",
                                o->workers);
    if (o->dedup_store)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "workers is %d with a dedup_store: a store "
                                "shared by worker threads is not supported "
                                "yet (it would need a connection per "
                                "worker); use workers 0 with a store",
                                o->workers);
    return 0;
}

/* ---- jobs and partitions ----------------------------------------------- */

static wjob *job_new(workers *W)
{
    wjob *j = W->free_jobs;

    if (j)
        W->free_jobs = j->next;
    else if (!(j = malloc(sizeof(*j))))
        return NULL;
    memset(j, 0, offsetof(wjob, err));
    j->err.code = 0;
    j->err.message[0] = '\0';
    return j;
}

static void job_free(workers *W, wjob *j)
{
    if (j->m)
        rd_kafka_message_destroy(j->m);
    j->m = NULL;
    j->next = W->free_jobs;
    W->free_jobs = j;
}

static wjob *job_of_lane(ksafe__lane_link *l)
{
    return (wjob *)(void *)((char *)l - offsetof(wjob, lane));
}

static wpart *part_find_w(workers *W, const rd_kafka_message_t *m)
{
    size_t i;

    if (W->last < W->n_parts && W->parts[W->last]->rkt == m->rkt &&
        W->parts[W->last]->partition == m->partition)
        return W->parts[W->last];
    for (i = 0; i < W->n_parts; i++)
        if (W->parts[i]->rkt == m->rkt &&
            W->parts[i]->partition == m->partition) {
            W->last = i;
            return W->parts[i];
        }
    return NULL;
}

static void set_paused_w(workers *W, wpart *p, int pause)
{
    if (p->paused == pause)
        return;
    ksafe__loop_pause_partition(W->L, p->topic, p->partition, pause);
    p->paused = pause;
}

static wpart *part_get_w(workers *W, const rd_kafka_message_t *m)
{
    wpart *p = part_find_w(W, m);

    if (p)
        return p;
    if (W->n_parts == W->cap_parts) {
        size_t cap = W->cap_parts ? W->cap_parts * 2 : 16;
        wpart **grown = realloc(W->parts, cap * sizeof(*grown));
        if (!grown)
            return NULL;
        W->parts = grown;
        W->cap_parts = cap;
    }
    if (!(p = calloc(1, sizeof(*p))))
        return NULL;
    /* Twice the bound: records polled before a pause takes effect fit. */
    if (!(p->topic = ksafe__strdup(rd_kafka_topic_name(m->rkt))) ||
        ksafe__cwin_init(&p->win,
                         2 * W->L->o->max_in_flight_per_partition)) {
        free(p->topic);
        free(p);
        return NULL;
    }
    p->rkt = m->rkt;
    p->partition = m->partition;
    W->parts[W->n_parts++] = p;
    if (W->all_paused) /* max_in_flight reached: it waits with the rest */
        set_paused_w(W, p, 1);
    return p;
}

/* ---- the worker's side ------------------------------------------------- */

static void run_job(ksafe__pool_item *it, void *arg)
{
    workers *W = arg;
    wjob *j = (wjob *)it;

    j->err.code = 0;
    j->err.message[0] = '\0';
    j->r = W->L->o->handler((const ksafe_message *)j->m, &j->err,
                            W->L->o->payload);
    j->err.message[sizeof(j->err.message) - 1] = '\0';
}

static void wake(void *arg)
{
    rd_kafka_queue_yield(((workers *)arg)->q);
}

/* ---- dispatching --------------------------------------------------------*/

static void submit(workers *W, wjob *j)
{
    j->state = J_SUBMITTED;
    j->part->submitted++;
    ksafe__pool_submit(&W->pool, &j->item);
}

/* A job is in its window: it runs now, or waits in its lane. */
static void start(workers *W, wjob *j)
{
    const ksafe_loop_options *o = W->L->o;
    uint32_t lane;

    if (o->ordering == KSAFE_ORDER_NONE) {
        submit(W, j);
        return;
    }
    if (o->ordering == KSAFE_ORDER_KEY && j->m->key)
        lane = ksafe__lanes_pick(&W->lanes, j->part, j->m->key,
                                 j->m->key_len);
    else
        lane = ksafe__lanes_pick(&W->lanes, j->part, NULL, 0);
    if (ksafe__lanes_push(&W->lanes, &j->lane, lane, j->part))
        submit(W, j);
    else
        j->state = J_WAITING;
}

/* Puts a polled job into its partition's window. 1: in, 0: it must wait
 * (the window is full, or it holds records and this offset is not after
 * them: a rewind, taken once the window emptied). */
static int enter(workers *W, wjob *j)
{
    wpart *p = j->part;
    int rc = ksafe__cwin_add(&p->win, j->m->offset, j);

    if (rc == KSAFE__CWIN_ORDER && !ksafe__cwin_inflight(&p->win)) {
        /* Everything before was passed: the partition went back (an
         * offset reset). Its records are handled again from there. */
        ksafe__cwin_reset(&p->win, NULL, NULL);
        rc = ksafe__cwin_add(&p->win, j->m->offset, j);
    }
    if (rc)
        return 0;
    W->in_flight++;
    start(W, j);
    return 1;
}

static void hold(workers *W, wpart *p, wjob *j)
{
    j->next = NULL;
    if (p->held_tail)
        p->held_tail->next = j;
    else
        p->held = j;
    p->held_tail = j;
    W->held++;
    set_paused_w(W, p, 1);
}

/* Held records enter their window while it takes them, in order. */
static void release_held(workers *W, wpart *p)
{
    while (p->held && !p->draining && !W->stopping) {
        wjob *j = p->held;
        if (!enter(W, j))
            return;
        p->held = j->next;
        if (!p->held)
            p->held_tail = NULL;
        W->held--;
    }
}

static void dispatch(workers *W, rd_kafka_message_t *m)
{
    loop *L = W->L;
    wpart *p;
    wjob *j;

    L->st->polled++;
    if (!(p = part_get_w(W, m)) || !(j = job_new(W))) {
        rd_kafka_message_destroy(m);
        L->rc = ksafe__error_set(L->err, KSAFE_ENOMEM, 0, 0, "out of memory");
        return;
    }
    j->m = m;
    j->part = p;
    j->since_ms = ksafe__now_ms();
    if (p->held || !enter(W, j)) {
        hold(W, p, j);
        return;
    }
    if (ksafe__cwin_inflight(&p->win) >= L->o->max_in_flight_per_partition)
        set_paused_w(W, p, 1);
    if (W->in_flight >= L->o->max_in_flight && !W->all_paused) {
        size_t i;
        W->all_paused = 1;
        for (i = 0; i < W->n_parts; i++)
            set_paused_w(W, W->parts[i], 1);
    }
}

/* Partitions below half their bound (and, after max_in_flight was reached,
 * once the total is below half of it) fetch again. */
static void resume_some(workers *W)
{
    const ksafe_loop_options *o = W->L->o;
    size_t i;

    W->check_resume = 0;
    if (W->all_paused) {
        if (W->in_flight * 2 >= o->max_in_flight)
            return;
        W->all_paused = 0;
    }
    for (i = 0; i < W->n_parts; i++) {
        wpart *p = W->parts[i];
        if (p->paused && !p->held && !p->draining &&
            ksafe__cwin_inflight(&p->win) * 2 < o->max_in_flight_per_partition)
            set_paused_w(W, p, 0);
    }
}

/* ---- completions ------------------------------------------------------- */

/* The lane's next record runs (not while the loop is stopping: it stays
 * waiting, and unfinished). */
static void release_lane(workers *W, wjob *j)
{
    ksafe__lane_link *n;

    if (W->L->o->ordering == KSAFE_ORDER_NONE)
        return;
    if ((n = ksafe__lanes_done(&W->lanes, &j->lane)) && !W->stopping)
        submit(W, job_of_lane(n));
}

/* The commit position passed this job: its record is marked and freed. */
static void passed(void *item, int last, void *arg)
{
    workers *W = arg;
    wjob *j = item;
    loop *L = W->L;
    ksafe_error e;

    KSAFE__UNUSED(last);
    if (!L->rc && ksafe_consumer_done(L->c, (const ksafe_message *)j->m, &e))
        L->rc = ksafe__error_set(L->err, e.code, 0, 0, "%s", e.message);
    W->in_flight--;
    if (j->part->paused)
        W->check_resume = 1;
    job_free(W, j);
}

static void finish(workers *W, wjob *j)
{
    wpart *p = j->part;

    release_lane(W, j);
    j->state = J_DONE;
    ksafe__cwin_complete(&p->win, j->m->offset, passed, W);
    if (p->held)
        release_held(W, p);
}

static void park(workers *W, wjob *j, int64_t until)
{
    j->state = J_BACKOFF;
    j->retry_at = until;
    j->next = W->retry;
    W->retry = j;
}

static void settle(workers *W, wjob *j)
{
    loop *L = W->L;
    const ksafe_loop_options *o = L->o;
    wpart *p = j->part;
    const char *why = j->err.message[0] ? j->err.message
                      : j->r == KSAFE_HANDLER_RETRY ? "retries exhausted"
                                                    : "handler failed";

    j->attempts++;
    if (j->r == KSAFE_HANDLER_RETRY && j->attempts < o->max_attempts) {
        L->st->retries++;
        park(W, j, ksafe__now_ms() +
                       ksafe__backoff_ms(&L->backoff, j->attempts));
        return;
    }
    L->st->failed++;
    switch (o->on_failure) {
    case KSAFE_FAILURE_SKIP:
        ksafe__log(&L->c->cl, KSAFE_LOG_WARNING, "SKIP",
                   "skipping %s [%d] offset %lld after %d attempt(s): %s",
                   p->topic, (int)p->partition, (long long)j->m->offset,
                   j->attempts, why);
        L->st->skipped++;
        finish(W, j);
        return;
    case KSAFE_FAILURE_DEAD_LETTER:
        if (ksafe__loop_dead_letter(L, j->m, j->attempts, why) == 0) {
            finish(W, j);
            return;
        }
        break; /* L->rc says why */
    case KSAFE_FAILURE_STOP:
    default:
        L->rc = ksafe__error_set(L->err, KSAFE_EHANDLER, 0, 0,
                                 "%s [%d] offset %lld failed after %d "
                                 "attempt(s): %s",
                                 p->topic, (int)p->partition,
                                 (long long)j->m->offset, j->attempts, why);
        break;
    }
    park(W, j, INT64_NEVER); /* unfinished: nothing at or after it commits */
}

static void complete(workers *W, wjob *j)
{
    if (!j->part) { /* its partition went while it ran */
        release_lane(W, j);
        job_free(W, j);
        return;
    }
    j->part->submitted--;
    if (j->r == KSAFE_HANDLER_OK) {
        W->L->st->processed++;
        finish(W, j);
    } else {
        settle(W, j);
    }
}

static int take_completions(workers *W)
{
    ksafe__pool_item *it = ksafe__pool_take_done(&W->pool);
    int n = 0;

    while (it) {
        ksafe__pool_item *next = it->next;
        complete(W, (wjob *)it);
        it = next;
        n++;
    }
    return n;
}

/* Resubmits the retries that are due; returns the time of the next one
 * (0: none waits). */
static int64_t retry_due(workers *W)
{
    int64_t now = ksafe__now_ms(), next = 0;
    wjob **link = &W->retry, *j;

    while ((j = *link)) {
        if (j->retry_at <= now && !j->part->draining && !W->stopping) {
            *link = j->next;
            submit(W, j);
            continue;
        }
        if (j->retry_at != INT64_NEVER && (!next || j->retry_at < next))
            next = j->retry_at;
        link = &j->next;
    }
    return next;
}

/* ---- giving partitions up ---------------------------------------------- */

static void unlinked(ksafe__lane_link *l, void *arg)
{
    KSAFE__UNUSED(arg);
    job_of_lane(l)->state = J_UNQUEUED;
}

static int keep_queued(ksafe__pool_item *it, void *arg)
{
    wjob *j = (wjob *)it;

    KSAFE__UNUSED(arg);
    return j->part && !j->part->draining;
}

static int keep_none(ksafe__pool_item *it, void *arg)
{
    KSAFE__UNUSED(it);
    KSAFE__UNUSED(arg);
    return 0;
}

/* Taken back from the pool at a revoke or a stop: it heads its lane, which
 * the next record (of a partition that stays) may now have. */
static void unqueued(ksafe__pool_item *it, void *arg)
{
    workers *W = arg;
    wjob *j = (wjob *)it;

    if (j->part)
        j->part->submitted--;
    j->state = J_UNQUEUED;
    release_lane(W, j);
}

/* Taken back from the pool at the end: an orphan no window holds. */
static void unqueued_free(ksafe__pool_item *it, void *arg)
{
    job_free(arg, (wjob *)it);
}

/* reset's report on a job of a partition given up. */
static void forget(void *item, int done, void *arg)
{
    workers *W = arg;
    wjob *j = item;

    KSAFE__UNUSED(done);
    W->in_flight--;
    if (j->state == J_SUBMITTED) {
        j->part = NULL; /* running: dropped when it comes back */
        return;
    }
    job_free(W, j);
}

/* Drops a draining partition's backoff jobs from the retry list, releasing
 * their lanes (the job itself is freed by forget). */
static void unpark(workers *W, wpart *p)
{
    wjob **link = &W->retry, *j;

    while ((j = *link)) {
        if (j->part != p) {
            link = &j->next;
            continue;
        }
        *link = j->next;
        j->state = J_UNQUEUED;
        release_lane(W, j);
    }
}

static size_t draining_submitted(workers *W)
{
    size_t i, n = 0;

    for (i = 0; i < W->n_parts; i++)
        if (W->parts[i]->draining)
            n += W->parts[i]->submitted;
    return n;
}

/* Waits up to drain_timeout_ms for the running records of draining
 * partitions (all of them when stopping), handling what comes back. */
static void drain(workers *W, int all)
{
    int64_t deadline = ksafe__now_ms() + W->L->o->drain_timeout_ms;
    size_t left;

    for (;;) {
        int64_t now;
        take_completions(W);
        left = all ? ksafe__pool_outstanding(&W->pool)
                   : draining_submitted(W);
        now = ksafe__now_ms();
        if (!left || now >= deadline)
            break;
        ksafe__pool_wait(&W->pool,
                         deadline - now < 100 ? (int)(deadline - now) : 100);
    }
    if (left)
        ksafe__log(&W->L->c->cl, KSAFE_LOG_WARNING, "DRAIN",
                   "%zu handler call(s) still running after "
                   "drain_timeout_ms (%d ms): their results are dropped "
                   "and their records come again from the committed "
                   "position",
                   left, W->L->o->drain_timeout_ms);
}

static void part_drop(workers *W, size_t i)
{
    wpart *p = W->parts[i];

    while (p->held) {
        wjob *j = p->held;
        p->held = j->next;
        W->held--;
        job_free(W, j);
    }
    ksafe__cwin_reset(&p->win, forget, W);
    set_paused_w(W, p, 0); /* a later assignment starts unpaused */
    ksafe__cwin_free(&p->win);
    free(p->topic);
    free(p);
    W->parts[i] = W->parts[--W->n_parts];
    W->last = 0;
}

/* Gives up every draining partition: waiting and queued records are taken
 * back, running ones are dropped when they come back, everything in the
 * window is forgotten (what passed was marked already). */
static void give_up(workers *W)
{
    size_t i;

    for (i = 0; i < W->n_parts; i++)
        if (W->parts[i]->draining) {
            ksafe__lanes_drop(&W->lanes, W->parts[i], unlinked, W);
            unpark(W, W->parts[i]);
        }
    i = 0;
    while (i < W->n_parts) {
        if (W->parts[i]->draining)
            part_drop(W, i);
        else
            i++;
    }
}

/*
 * The consumer gives up `parts` (revoked: it commits the marks after this
 * returns; lost: it commits nothing). Their records are dispatched no more;
 * for a revoke, running ones get drain_timeout_ms to finish and be marked.
 */
static void on_revoke_w(ksafe_consumer *c,
                        const rd_kafka_topic_partition_list_t *parts,
                        int lost, void *arg)
{
    workers *W = arg;
    size_t i, n = 0;

    KSAFE__UNUSED(c);
    if (lost)
        W->L->st->lost += (uint64_t)parts->cnt;
    else
        W->L->st->revoked += (uint64_t)parts->cnt;
    for (i = 0; i < W->n_parts; i++) {
        wpart *p = W->parts[i];
        if (rd_kafka_topic_partition_list_find(parts, p->topic,
                                               p->partition)) {
            p->draining = 1;
            n++;
        }
    }
    if (!n)
        return;
    /* Nothing more of them starts: waiting records leave their lanes, and
     * queued ones the pool. */
    for (i = 0; i < W->n_parts; i++)
        if (W->parts[i]->draining)
            ksafe__lanes_drop(&W->lanes, W->parts[i], unlinked, W);
    ksafe__pool_unqueue(&W->pool, keep_queued, unqueued, W);
    if (!lost)
        drain(W, 0);
    give_up(W);
}

/* ---- run --------------------------------------------------------------- */

static void update_stats(workers *W, int all)
{
    ksafe_loop_stats *st = W->L->st;

    st->in_flight = W->in_flight + W->held;
    st->waiting = W->lanes.queued + W->held;
    if (all) {
        int64_t now = ksafe__now_ms(), oldest = 0;
        size_t i;
        for (i = 0; i < W->n_parts; i++) {
            const wjob *j = ksafe__cwin_oldest_item(&W->parts[i]->win);
            if (j && (!oldest || j->since_ms < oldest))
                oldest = j->since_ms;
        }
        st->oldest_in_flight_ms = oldest ? (uint64_t)(now - oldest) : 0;
        st->worker_busy_ms = ksafe__pool_busy_ns(&W->pool) / 1000000u;
    }
}

static void workers_free(workers *W)
{
    while (W->free_jobs) {
        wjob *j = W->free_jobs;
        W->free_jobs = j->next;
        free(j);
    }
    free(W->parts);
    ksafe__lanes_free(&W->lanes);
    if (W->q)
        rd_kafka_queue_destroy(W->q);
}

int ksafe__loop_run_workers(loop *L)
{
    const ksafe_loop_options *o = L->o;
    ksafe_consumer *c = L->c;
    int rebalances_before = c->rebalances;
    uint64_t commits_before = c->commits_sent;
    int64_t next_stats = 0;
    workers W;
    size_t i;

    memset(&W, 0, sizeof(W));
    W.L = L;
    if (ksafe__lanes_init(&W.lanes, 2 * o->max_in_flight) ||
        !(W.q = rd_kafka_queue_get_consumer(L->rk))) {
        workers_free(&W);
        return L->rc = ksafe__error_set(L->err, KSAFE_ENOMEM, 0, 0,
                                        "out of memory");
    }
    if (ksafe__pool_start(&W.pool, (size_t)o->workers, run_job, wake, &W)) {
        workers_free(&W);
        return L->rc = ksafe__error_set(L->err, KSAFE_ENOMEM, 0, 0,
                                        "could not start %d worker threads",
                                        o->workers);
    }
    c->loop_on_revoke = on_revoke_w;
    c->loop_arg = &W;

    while (!L->rc && !ksafe_consumer_stop_requested(c)) {
        rd_kafka_message_t *m;
        int64_t next_retry;
        int timeout = o->poll_timeout_ms, done;

        done = take_completions(&W);
        next_retry = W.retry ? retry_due(&W) : 0;
        if (W.check_resume || W.all_paused)
            resume_some(&W);
        if (next_retry) {
            int64_t d = next_retry - ksafe__now_ms();
            timeout = d <= 0 ? 0 : (d < timeout ? (int)d : timeout);
        }
        /* Workers wake the poll (rd_kafka_queue_yield) when they finish. */
        m = rd_kafka_consumer_poll(L->rk, done ? 0 : timeout);
        if (m) {
            if (m->err) {
                int rc = ksafe__poll_error(c, m, L->group, L->err);
                if (rc)
                    L->rc = rc;
            } else {
                dispatch(&W, m);
            }
        }
        if (done)
            ksafe_consumer_commit_maybe(c, NULL);
        else if (!m)
            ksafe__consumer_commit_idle(c, NULL);
        L->st->rebalances = (uint64_t)(c->rebalances - rebalances_before);
        L->st->commits = c->commits_sent - commits_before;
        if (!m || L->st->polled % 1024 == 0) {
            int64_t now = ksafe__now_ms();
            int all = now >= next_stats;
            if (all)
                next_stats = now + 1000;
            update_stats(&W, all);
        }
    }

    /* Stop: nothing more starts (queued records are taken back from the
     * pool); running records get drain_timeout_ms, then whatever did not
     * finish is forgotten (it comes again). */
    W.stopping = 1;
    ksafe__pool_unqueue(&W.pool, keep_none, unqueued, &W);
    drain(&W, 1);
    for (i = 0; i < W.n_parts; i++)
        W.parts[i]->draining = 1;
    give_up(&W);
    update_stats(&W, 1);
    ksafe__pool_unqueue(&W.pool, keep_queued, unqueued_free, &W);
    ksafe__pool_stop(&W.pool); /* a handler still running is waited for */
    {
        ksafe__pool_item *it = ksafe__pool_take_done(&W.pool);
        while (it) {
            ksafe__pool_item *next = it->next;
            job_free(&W, (wjob *)it);
            it = next;
        }
    }
    c->loop_on_revoke = NULL;
    c->loop_arg = NULL;
    workers_free(&W);
    return L->rc;
}
