/*
 * tests/test_loop_rebalance.c - ksafe_run() under rebalances: two members of
 * one group, each loop on its own thread, partitions that are paused for a
 * retry or hold buffered records when they are revoked, lost, or handed back
 * to the same member. What is checked against what was produced: every
 * record handled, nothing committed past a record nobody handled yet, no
 * record handled twice unless the committed offsets allow it.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"

#define NPARTS 4
#define PER_PART 20
#define HOLD_AT 5 /* a held member retries every record from this offset */

typedef struct lmember lmember;

/* What every member handled; written by the loop threads. */
typedef struct ledger {
    pthread_mutex_t mu;
    /* [member][epoch][partition][offset]; epoch 1 = after a lost event */
    int calls[2][2][NPARTS][PER_PART];
    int ok[2][2][NPARTS][PER_PART];
    int buffered[2][NPARTS]; /* records of a batch after a held one */
    atomic_int bad;          /* a thread saw something impossible */
    char bad_msg[256];
} ledger;

struct lmember {
    int id;
    ledger *lg;
    ksafe_consumer *c;
    pthread_t th;
    int running;
    ksafe_loop_options lo;
    ksafe_loop_stats st; /* read only after the thread ended */
    int rc;
    ksafe_error err;
    atomic_int hold;       /* RETRY offsets >= HOLD_AT */
    atomic_int hold_all;   /* RETRY everything */
    atomic_int lose_armed; /* at (0, HOLD_AT): wait until the assignment is
                              lost, then succeed */
    atomic_int owned[NPARTS];
    atomic_int assigns, revokes, losts;
    atomic_int ended;
};

static ledger *ledger_new(void)
{
    ledger *lg = calloc(1, sizeof(*lg));

    ck_assert_ptr_nonnull(lg);
    pthread_mutex_init(&lg->mu, NULL);
    return lg;
}

static void ledger_free(ledger *lg)
{
    pthread_mutex_destroy(&lg->mu);
    free(lg);
}

static void note_bad(ledger *lg, const char *what, int p, long long o)
{
    pthread_mutex_lock(&lg->mu);
    if (!atomic_load(&lg->bad))
        snprintf(lg->bad_msg, sizeof(lg->bad_msg), "%s: partition %d offset %lld",
                 what, p, o);
    atomic_store(&lg->bad, 1);
    pthread_mutex_unlock(&lg->mu);
}

/* Counts a handler call; 0 when the record is outside what was produced. */
static int note_call(lmember *m, const ksafe_message *msg, int *p, int *o)
{
    int e = atomic_load(&m->losts) > 0;

    *p = ksafe_message_partition(msg);
    *o = (int)ksafe_message_offset(msg);
    if (*p < 0 || *p >= NPARTS || *o < 0 || *o >= PER_PART) {
        note_bad(m->lg, "record never produced", *p, *o);
        return 0;
    }
    if (!atomic_load(&m->owned[*p]))
        note_bad(m->lg, "record of a partition not assigned", *p, *o);
    pthread_mutex_lock(&m->lg->mu);
    m->lg->calls[m->id][e][*p][*o]++;
    pthread_mutex_unlock(&m->lg->mu);
    return 1;
}

static void note_ok(lmember *m, int p, int o)
{
    int e = atomic_load(&m->losts) > 0;

    pthread_mutex_lock(&m->lg->mu);
    m->lg->ok[m->id][e][p][o]++;
    pthread_mutex_unlock(&m->lg->mu);
}

static int held(lmember *m, int o)
{
    return atomic_load(&m->hold_all) || (atomic_load(&m->hold) && o >= HOLD_AT);
}

/* In the handler: the member exceeds max.poll.interval.ms by not returning
 * until librdkafka has declared its assignment lost. */
static void wait_until_lost(lmember *m)
{
    rd_kafka_t *rk = ksafe_consumer_rdkafka(m->c);
    time_t deadline = time(NULL) + 60;
    struct timespec ts = {0, 50 * 1000000L};

    while (!rd_kafka_assignment_lost(rk) && time(NULL) < deadline)
        nanosleep(&ts, NULL);
    if (!rd_kafka_assignment_lost(rk))
        note_bad(m->lg, "assignment not lost after 60 s in the handler", 0,
                 HOLD_AT);
}

static ksafe_handler_result on_record(const ksafe_message *msg,
                                      ksafe_error *err, void *payload)
{
    lmember *m = payload;
    int p, o;

    if (!note_call(m, msg, &p, &o))
        return KSAFE_HANDLER_OK;
    if (p == 0 && o == HOLD_AT && atomic_exchange(&m->lose_armed, 0)) {
        wait_until_lost(m);
        note_ok(m, p, o);
        return KSAFE_HANDLER_OK;
    }
    if (held(m, o)) {
        snprintf(err->message, sizeof(err->message), "held by the test");
        return KSAFE_HANDLER_RETRY;
    }
    note_ok(m, p, o);
    return KSAFE_HANDLER_OK;
}

static ksafe_handler_result on_batch(const ksafe_message *const *msgs,
                                     size_t count, size_t *succeeded,
                                     ksafe_error *err, void *payload)
{
    lmember *m = payload;
    size_t i, j;
    int p, o;

    for (i = 0; i < count; i++) {
        if (!note_call(m, msgs[i], &p, &o))
            continue;
        if (held(m, o)) {
            /* The records of p after this one go back to the loop's
             * queue for p: buffered while p waits for its retry. */
            int later = 0;
            for (j = i + 1; j < count; j++)
                later += ksafe_message_partition(msgs[j]) == p;
            pthread_mutex_lock(&m->lg->mu);
            if (later > m->lg->buffered[m->id][p])
                m->lg->buffered[m->id][p] = later;
            pthread_mutex_unlock(&m->lg->mu);
            *succeeded = i;
            snprintf(err->message, sizeof(err->message), "held by the test");
            return KSAFE_HANDLER_RETRY;
        }
        note_ok(m, p, o);
    }
    return KSAFE_HANDLER_OK;
}

/* Rebalance hooks: run on the member's loop thread. */
static void set_owned(const rd_kafka_topic_partition_list_t *l, lmember *m,
                      int v)
{
    int i;

    for (i = 0; i < l->cnt; i++)
        if (l->elems[i].partition >= 0 && l->elems[i].partition < NPARTS)
            atomic_store(&m->owned[l->elems[i].partition], v);
}

static void on_assigned(ksafe_consumer *c,
                        const rd_kafka_topic_partition_list_t *l, void *p)
{
    lmember *m = p;
    (void)c;
    set_owned(l, m, 1);
    atomic_fetch_add(&m->assigns, 1);
}

static void on_revoked(ksafe_consumer *c,
                       const rd_kafka_topic_partition_list_t *l, void *p)
{
    lmember *m = p;
    (void)c;
    set_owned(l, m, 0);
    atomic_fetch_add(&m->revokes, 1);
}

static void on_lost(ksafe_consumer *c, const rd_kafka_topic_partition_list_t *l,
                    void *p)
{
    lmember *m = p;
    (void)c;
    set_owned(l, m, 0);
    atomic_fetch_add(&m->losts, 1);
}

static void *member_main(void *arg)
{
    lmember *m = arg;

    m->rc = ksafe_run(m->c, &m->lo, &m->err);
    atomic_store(&m->ended, 1);
    return NULL;
}

enum { RECORDS = 0, BATCHES = 1 };

/* Member `id` of `group` starts its loop on a thread. */
static void member_start(lmember *m, ledger *lg, int id, const char *topic,
                         const char *group, ksafe_assignment_strategy strategy,
                         int batches, int short_max_poll)
{
    ksafe_consumer_options co;
    ksafe_error err;

    m->id = id;
    m->lg = lg;
    ksafe_test_cluster_consumer_options(tc, &co, group);
    co.log_cb = test_quiet_log;
    co.assignment_strategy = strategy;
    co.on_assigned = on_assigned;
    co.on_revoked = on_revoked;
    co.on_lost = on_lost;
    co.rebalance_payload = m;
    /* As short as librdkafka allows: the session timeout. */
    if (short_max_poll)
        co.max_poll_interval_ms = test_session_ms(tc);
    ck_assert_ok(ksafe_consumer_new(&m->c, &co, &err), err);
    ck_assert_ok(ksafe_consumer_subscribe(m->c, &topic, 1, &err), err);
    ck_assert_ok(ksafe_loop_options_init(&m->lo, KSAFE_LOOP_OPTIONS_VERSION),
                 err);
    if (batches) {
        m->lo.batch_handler = on_batch;
        m->lo.batch_size = 40;
        m->lo.batch_max_wait_ms = 300;
        m->lo.max_buffered_per_partition = 3;
    } else {
        m->lo.handler = on_record;
    }
    m->lo.payload = m;
    m->lo.commit_every_records = 0;
    m->lo.commit_interval_ms = 200;
    /* A held record waits a whole second per attempt and never runs out:
     * its partition is paused for a retry most of the time. */
    m->lo.max_attempts = 1000000;
    m->lo.backoff_initial_ms = 1000;
    m->lo.backoff_max_ms = 1000;
    m->lo.backoff_multiplier = 1.0;
    m->lo.backoff_jitter = 0.0;
    m->lo.stats = &m->st;
    ck_assert_int_eq(pthread_create(&m->th, NULL, member_main, m), 0);
    m->running = 1;
}

/* Stops the loop and waits for it; it must have ended cleanly. */
static void member_stop(lmember *m)
{
    if (!m->running)
        return;
    ksafe_consumer_stop(m->c);
    ck_assert_int_eq(pthread_join(m->th, NULL), 0);
    m->running = 0;
    ck_assert_msg(m->rc == 0, "member %d: ksafe_run returned %d: %s", m->id,
                  m->rc, m->err.message);
    ksafe_consumer_free(m->c);
    m->c = NULL;
}

/* ---- what the test thread checks --------------------------------------- */

typedef struct scene {
    char topic[128], group[128];
    ledger *lg;
    lmember m[2];
    int64_t committed[NPARTS];
    int checks;
    /* > 0: no partition may be committed past this, whatever was handled
     * (marks dropped with a lost assignment) */
    int64_t bound;
} scene;

static int handled_ok(ledger *lg, int p, int o)
{
    int i, e, n = 0;

    for (i = 0; i < 2; i++)
        for (e = 0; e < 2; e++)
            n += lg->ok[i][e][p][o];
    return n;
}

/* The first offset of p that nobody has handled yet (PER_PART: none). */
static int first_unprocessed(ledger *lg, int p)
{
    int o;

    for (o = 0; o < PER_PART && handled_ok(lg, p, o); o++)
        ;
    return o;
}

/*
 * Reads the committed offsets, then what has been handled: a record handled
 * after the read only raises the bound, so a commit past an unhandled
 * record can never hide behind the race.
 */
static void check_committed(scene *s)
{
    int p, u[NPARTS];

    test_committed(tc, s->topic, s->group, NPARTS, s->committed);
    pthread_mutex_lock(&s->lg->mu);
    for (p = 0; p < NPARTS; p++)
        u[p] = first_unprocessed(s->lg, p);
    pthread_mutex_unlock(&s->lg->mu);
    for (p = 0; p < NPARTS; p++)
        ck_assert_msg(s->committed[p] <= u[p],
                      "partition %d committed at %lld, but offset %d was never "
                      "handled",
                      p, (long long)s->committed[p], u[p]);
    for (p = 0; s->bound > 0 && p < NPARTS; p++)
        ck_assert_msg(s->committed[p] <= s->bound,
                      "partition %d committed at %lld after its assignment "
                      "was lost; its last commit before was %lld",
                      p, (long long)s->committed[p], (long long)s->bound);
    s->checks++;
    ck_assert_msg(!atomic_load(&s->lg->bad), "%s", s->lg->bad_msg);
    for (p = 0; p < 2; p++)
        ck_assert_msg(!s->m[p].running || !atomic_load(&s->m[p].ended),
                      "member %d's loop ended on its own: %d %s", p,
                      s->m[p].rc, s->m[p].err.message);
}

/* What a timed-out wait saw, for the log. Ledger locked. */
static void scene_dump(scene *s)
{
    int p, i, e;

    for (p = 0; p < NPARTS; p++) {
        fprintf(stderr, "  partition %d: committed %lld, first unhandled %d,"
                " owners a=%d b=%d, calls at %d:", p,
                (long long)s->committed[p], first_unprocessed(s->lg, p),
                atomic_load(&s->m[0].owned[p]), atomic_load(&s->m[1].owned[p]),
                HOLD_AT);
        for (i = 0; i < 2; i++)
            for (e = 0; e < 2; e++)
                fprintf(stderr, " %c%d=%d", 'a' + i, e,
                        s->lg->calls[i][e][p][HOLD_AT]);
        fprintf(stderr, "\n");
    }
    for (i = 0; i < 2; i++)
        fprintf(stderr, "  member %c: %d assigned, %d revoked, %d lost\n",
                'a' + i, atomic_load(&s->m[i].assigns),
                atomic_load(&s->m[i].revokes), atomic_load(&s->m[i].losts));
}

/* Polls cond (checking the commits on the way) until it holds or `secs`
 * pass; the machine is busy, so deadlines are generous. */
#define WAIT_FOR(s, cond, secs, what)                                        \
    do {                                                                     \
        time_t dl_ = time(NULL) + (secs);                                    \
        struct timespec ts_ = {0, 200 * 1000000L};                           \
        for (;;) {                                                           \
            int ok_;                                                         \
            check_committed(s);                                              \
            pthread_mutex_lock(&(s)->lg->mu);                                \
            ok_ = (cond);                                                    \
            if (!ok_ && time(NULL) >= dl_)                                   \
                scene_dump(s);                                               \
            pthread_mutex_unlock(&(s)->lg->mu);                              \
            if (ok_)                                                         \
                break;                                                       \
            ck_assert_msg(time(NULL) < dl_, "waited %d s for %s", (secs),    \
                          (what));                                           \
            nanosleep(&ts_, NULL);                                           \
        }                                                                    \
    } while (0)

/* A topic of NPARTS partitions holding PER_PART records each. Allocated: a
 * failed test leaves its threads running on it. */
static scene *scene_new(const char *prefix)
{
    scene *s = calloc(1, sizeof(*s));
    ksafe_error err;
    ksafe_producer_options po;
    ksafe_producer *pr;
    int p, k;

    ck_assert_ptr_nonnull(s);
    s->lg = ledger_new();
    ksafe_test_unique_name(s->topic, sizeof(s->topic), prefix);
    ksafe_test_unique_name(s->group, sizeof(s->group), prefix);
    ck_assert_ok(ksafe_test_cluster_create_topic(tc, s->topic, NPARTS, &err),
                 err);
    ksafe_test_cluster_producer_options(tc, &po);
    po.log_cb = test_quiet_log;
    ck_assert_ok(ksafe_producer_new(&pr, &po, &err), err);
    for (k = 0; k < PER_PART; k++)
        for (p = 0; p < NPARTS; p++) {
            ksafe_record r = KSAFE_RECORD_INIT;
            r.topic = s->topic;
            r.partition = p;
            r.value = "v";
            r.value_len = 1;
            ck_assert_ok(ksafe_producer_send(pr, &r, &err), err);
        }
    ck_assert_ok(ksafe_producer_flush(pr, 30000, &err), err);
    ck_assert_ok(ksafe_producer_close(pr, &err), err);
    ksafe_producer_free(pr);
    return s;
}

static void scene_free(scene *s)
{
    member_stop(&s->m[1]);
    member_stop(&s->m[0]);
    ledger_free(s->lg);
    free(s);
}

/* Conditions, evaluated with the ledger locked. */

static int owns_all(lmember *m)
{
    int p;
    for (p = 0; p < NPARTS; p++)
        if (!atomic_load(&m->owned[p]))
            return 0;
    return 1;
}

/* Member i handled 0..HOLD_AT-1 of every partition and retried HOLD_AT at
 * least once (epoch e). */
static int held_everywhere(scene *s, int i, int e)
{
    int p, o;
    for (p = 0; p < NPARTS; p++) {
        for (o = 0; o < HOLD_AT; o++)
            if (!handled_ok(s->lg, p, o))
                return 0;
        if (s->lg->calls[i][e][p][HOLD_AT] < 2)
            return 0;
    }
    return 1;
}

static int committed_all(scene *s, int64_t want)
{
    int p;
    for (p = 0; p < NPARTS; p++)
        if (s->committed[p] != want)
            return 0;
    return 1;
}

/* The group is split: b owns at least one partition, a the rest, and b has
 * called its handler on the held record of each of its partitions (and, if
 * `finished`, handled all of them). */
static int split_and_reached(scene *s, int finished)
{
    lmember *a = &s->m[0], *b = &s->m[1];
    int p, nb = 0;
    for (p = 0; p < NPARTS; p++) {
        int ia = atomic_load(&a->owned[p]), ib = atomic_load(&b->owned[p]);
        if (ia == ib)
            return 0;
        if (ib) {
            nb++;
            if (!s->lg->calls[1][0][p][HOLD_AT])
                return 0;
            if (finished && !s->lg->ok[1][0][p][PER_PART - 1])
                return 0;
        }
    }
    return nb > 0;
}

static int all_handled(scene *s)
{
    int p, o;
    for (p = 0; p < NPARTS; p++)
        for (o = 0; o < PER_PART; o++)
            if (!handled_ok(s->lg, p, o))
                return 0;
    return 1;
}

/* Every record handled exactly once over all members and epochs. */
static void assert_exactly_once(scene *s)
{
    int p, o;
    for (p = 0; p < NPARTS; p++)
        for (o = 0; o < PER_PART; o++)
            ck_assert_msg(handled_ok(s->lg, p, o) == 1,
                          "partition %d offset %d handled %d times", p, o,
                          handled_ok(s->lg, p, o));
}

/* ---- scenarios --------------------------------------------------------- */

enum { NEW_OWNER_HANDLES, COMES_BACK };

/*
 * Member a holds every partition at HOLD_AT (paused for a retry; with
 * batches, the records after it buffered in the loop) after committing what
 * it handled. b joins and takes some partitions. NEW_OWNER_HANDLES: b
 * handles the held records and the rest of its partitions. COMES_BACK: b
 * holds too, then leaves, so those partitions return to a, which must
 * resume them. Either way every record is handled exactly once: the
 * committed offset at each revoke was the held record's.
 */
static void revoke_held(const char *prefix, ksafe_assignment_strategy strategy,
                        int batches, int ending)
{
    scene *s = scene_new(prefix);
    lmember *a = &s->m[0], *b = &s->m[1];
    int p, o, moved[NPARTS], nmoved = 0, buffered = 0;

    atomic_store(&a->hold, 1);
    member_start(a, s->lg, 0, s->topic, s->group, strategy, batches, 0);
    WAIT_FOR(s, owns_all(a) && held_everywhere(s, 0, 0), 90,
             "member a to hold every partition at its held record");
    WAIT_FOR(s, committed_all(s, HOLD_AT), 60,
             "member a to commit up to the held records");
    if (batches) {
        pthread_mutex_lock(&s->lg->mu);
        for (p = 0; p < NPARTS; p++)
            buffered += s->lg->buffered[0][p];
        pthread_mutex_unlock(&s->lg->mu);
        ck_assert_msg(buffered > 0, "no record was buffered behind a held "
                      "one: the scenario did not happen");
    }

    if (ending == COMES_BACK)
        atomic_store(&b->hold_all, 1);
    member_start(b, s->lg, 1, s->topic, s->group, strategy, batches, 0);
    WAIT_FOR(s, split_and_reached(s, ending == NEW_OWNER_HANDLES), 120,
             "member b to take partitions and reach the held records");
    for (p = 0; p < NPARTS; p++) {
        moved[p] = atomic_load(&b->owned[p]);
        nmoved += moved[p];
    }
    ck_assert_int_gt(atomic_load(&a->revokes), 0);
    pthread_mutex_lock(&s->lg->mu);
    for (p = 0; p < NPARTS; p++) {
        if (!moved[p])
            continue;
        /* b starts at the committed offset: the held record is its first */
        for (o = 0; o < HOLD_AT; o++)
            ck_assert_msg(!s->lg->calls[1][0][p][o],
                          "member b got partition %d offset %d, already "
                          "handled and committed",
                          p, o);
        ck_assert_int_gt(s->lg->calls[1][0][p][HOLD_AT], 0);
    }
    pthread_mutex_unlock(&s->lg->mu);

    if (ending == COMES_BACK) {
        member_stop(b);
        WAIT_FOR(s, owns_all(a), 120,
                 "member a to get every partition back");
        pthread_mutex_lock(&s->lg->mu);
        for (p = 0; p < NPARTS; p++)
            for (o = 0; o < PER_PART; o++)
                ck_assert_int_eq(s->lg->ok[1][0][p][o], 0);
        pthread_mutex_unlock(&s->lg->mu);
    }
    /* Partitions a kept (or got back) resume once the hold ends. */
    atomic_store(&a->hold, 0);
    WAIT_FOR(s, all_handled(s), 120, "every record to be handled");
    WAIT_FOR(s, committed_all(s, PER_PART), 60,
             "every partition to be committed to its end");
    pthread_mutex_lock(&s->lg->mu);
    assert_exactly_once(s);
    if (ending == COMES_BACK)
        for (p = 0; p < NPARTS; p++)
            if (moved[p])
                ck_assert_msg(s->lg->ok[0][0][p][PER_PART - 1] == 1,
                              "partition %d came back to member a and did "
                              "not resume",
                              p);
    pthread_mutex_unlock(&s->lg->mu);
    member_stop(b);
    member_stop(a);
    ck_assert_uint_gt(a->st.revoked, 0);
    ck_assert_uint_gt(a->st.retries, 0);
    fprintf(stderr, "%s: %d partition(s) moved, %d commit checks\n", prefix,
            nmoved, s->checks);
    scene_free(s);
}

START_TEST(retry_paused_partition_revoked_range)
{
    revoke_held("lrb-retry-range", KSAFE_ASSIGN_RANGE, RECORDS,
                NEW_OWNER_HANDLES);
}
END_TEST

START_TEST(retry_paused_partition_revoked_cooperative)
{
    revoke_held("lrb-retry-coop", KSAFE_ASSIGN_COOPERATIVE_STICKY, RECORDS,
                NEW_OWNER_HANDLES);
}
END_TEST

START_TEST(buffered_partition_revoked_range)
{
    revoke_held("lrb-buf-range", KSAFE_ASSIGN_RANGE, BATCHES,
                NEW_OWNER_HANDLES);
}
END_TEST

START_TEST(buffered_partition_revoked_cooperative)
{
    revoke_held("lrb-buf-coop", KSAFE_ASSIGN_COOPERATIVE_STICKY, BATCHES,
                NEW_OWNER_HANDLES);
}
END_TEST

START_TEST(paused_partition_comes_back_range)
{
    revoke_held("lrb-back-range", KSAFE_ASSIGN_RANGE, RECORDS, COMES_BACK);
}
END_TEST

START_TEST(paused_partition_comes_back_cooperative)
{
    revoke_held("lrb-back-coop", KSAFE_ASSIGN_COOPERATIVE_STICKY, RECORDS,
                COMES_BACK);
}
END_TEST

START_TEST(buffered_partition_comes_back_cooperative)
{
    revoke_held("lrb-bufback-coop", KSAFE_ASSIGN_COOPERATIVE_STICKY, BATCHES,
                COMES_BACK);
}
END_TEST

/*
 * One member holds every partition at HOLD_AT, then handles (0, HOLD_AT)
 * but only returns after exceeding max.poll.interval.ms: librdkafka
 * declares the assignment lost. The mark of (0, HOLD_AT) must not be
 * committed; the member rejoins, gets every partition again, and the
 * records after the last commit, (0, HOLD_AT) included, come again.
 */
static void lost_while_held(const char *prefix,
                            ksafe_assignment_strategy strategy)
{
    scene *s = scene_new(prefix);
    lmember *a = &s->m[0];
    int p, o;

    atomic_store(&a->hold, 1);
    member_start(a, s->lg, 0, s->topic, s->group, strategy, RECORDS, 1);
    WAIT_FOR(s, owns_all(a) && held_everywhere(s, 0, 0), 90,
             "the member to hold every partition at its held record");
    WAIT_FOR(s, committed_all(s, HOLD_AT), 60,
             "the member to commit up to the held records");
    s->bound = HOLD_AT;
    atomic_store(&a->lose_armed, 1);
    WAIT_FOR(s, atomic_load(&a->losts) > 0, 90,
             "the assignment to be lost (max.poll.interval.ms exceeded)");
    /* Back in the group, every record after the last commit comes again:
     * the held ones, and (0, HOLD_AT), handled and marked before the loss. */
    WAIT_FOR(s, owns_all(a) && held_everywhere(s, 0, 1), 120,
             "the member to rejoin and reach the held records again");
    check_committed(s);
    ck_assert_msg(committed_all(s, HOLD_AT),
                  "a lost partition was committed: partition 0 at %lld "
                  "(its last commit before the loss was %d)",
                  (long long)s->committed[0], HOLD_AT);
    pthread_mutex_lock(&s->lg->mu);
    ck_assert_int_eq(s->lg->ok[0][0][0][HOLD_AT], 1);
    for (p = 0; p < NPARTS; p++)
        for (o = 0; o < HOLD_AT; o++)
            ck_assert_msg(!s->lg->calls[0][1][p][o],
                          "partition %d offset %d, committed before the "
                          "loss, came again",
                          p, o);
    pthread_mutex_unlock(&s->lg->mu);

    s->bound = 0;
    atomic_store(&a->hold, 0);
    WAIT_FOR(s, all_handled(s) && s->lg->ok[0][1][0][HOLD_AT] == 1, 120,
             "every record to be handled after the rejoin");
    WAIT_FOR(s, committed_all(s, PER_PART), 60,
             "every partition to be committed to its end");
    pthread_mutex_lock(&s->lg->mu);
    for (p = 0; p < NPARTS; p++)
        for (o = 0; o < PER_PART; o++) {
            int want = p == 0 && o == HOLD_AT ? 2 : 1;
            ck_assert_msg(handled_ok(s->lg, p, o) == want,
                          "partition %d offset %d handled %d times, not %d",
                          p, o, handled_ok(s->lg, p, o), want);
        }
    pthread_mutex_unlock(&s->lg->mu);
    member_stop(a);
    ck_assert_uint_ge(a->st.lost, NPARTS);
    fprintf(stderr, "%s: %d commit checks\n", prefix, s->checks);
    scene_free(s);
}

START_TEST(lost_partitions_commit_nothing_and_come_again)
{
    lost_while_held("lrb-lost-coop", KSAFE_ASSIGN_COOPERATIVE_STICKY);
}
END_TEST

START_TEST(lost_partitions_commit_nothing_and_come_again_range)
{
    lost_while_held("lrb-lost-range", KSAFE_ASSIGN_RANGE);
}
END_TEST

/* One case per behaviour (CK_RUN_CASE picks one); each starts its own
 * embedded cluster, about a second apiece. */
static TCase *behaviour(Suite *s, const char *name)
{
    TCase *t = tcase_create(name);

    tcase_add_unchecked_fixture(t, test_cluster_up, test_cluster_down);
    tcase_set_timeout(t, 300);
    suite_add_tcase(s, t);
    return t;
}

static Suite *loop_rebalance_suite(void)
{
    Suite *s = suite_create("loop-rebalance");
    TCase *t;

    /* The eager (range) cases have no KIP-848 run: there every rebalance
     * is incremental (test_eager_runs()). */
    int eager = test_eager_runs();

    t = behaviour(s, "revoked-while-retrying");
    if (eager)
        tcase_add_test(t, retry_paused_partition_revoked_range);
    tcase_add_test(t, retry_paused_partition_revoked_cooperative);
    t = behaviour(s, "revoked-while-buffered");
    if (eager)
        tcase_add_test(t, buffered_partition_revoked_range);
    tcase_add_test(t, buffered_partition_revoked_cooperative);
    t = behaviour(s, "comes-back-to-same-member");
    if (eager)
        tcase_add_test(t, paused_partition_comes_back_range);
    tcase_add_test(t, paused_partition_comes_back_cooperative);
    tcase_add_test(t, buffered_partition_comes_back_cooperative);
    t = behaviour(s, "lost");
    tcase_add_test(t, lost_partitions_commit_nothing_and_come_again);
    if (eager)
        tcase_add_test(t, lost_partitions_commit_nothing_and_come_again_range);
    return s;
}

KSAFE_TEST_MAIN(loop_rebalance_suite)
