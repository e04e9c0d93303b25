/*
 * tests/test_loop.c - the at-least-once loop on the embedded cluster:
 * handler contract, retry with a paused partition, failure policies,
 * backpressure, graceful stop; dedup batches and a store that fails
 * (a fault-injecting wrapper of the memory store); at-most-once across a
 * crash (tests/loop_worker.c, exec'd) and under refused commits; a group
 * configuration the broker refuses.
 */
#include <pthread.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"

/* A topic with `partitions` partitions holding `n` records. */
static void topic_with(char *topic, size_t size, const char *prefix,
                       int partitions, int n)
{
    ksafe_error err;

    ksafe_test_unique_name(topic, size, prefix);
    ck_assert_ok(ksafe_test_cluster_create_topic(tc, topic, partitions, &err),
                 err);
    test_produce(tc, topic, 0, n);
}

/* What the handlers saw. */
typedef struct seen {
    ksafe_consumer *c;
    int calls[1000];     /* handler calls per record index */
    int ok[1000];        /* successful handler calls per record index */
    int total_ok;
    int stop_after;      /* ask the loop to stop after this many OKs */
    int fail_index;      /* record that fails (-1: none) */
    int fail_times;      /* RETRY this many times, then OK (-1: FAIL) */
    int sleep_ms;        /* per handler call */
    int raise_signal;    /* stop via SIGTERM instead of ksafe_consumer_stop */
    int64_t committed_while_retrying[4];
    const char *topic, *group;
} seen;

static ksafe_handler_result record_handler(const ksafe_message *m,
                                           ksafe_error *err, void *payload)
{
    seen *s = payload;
    int i = test_value_index(m);

    s->calls[i]++;
    if (s->sleep_ms) {
        struct timespec ts = {s->sleep_ms / 1000,
                              (long)(s->sleep_ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
    if (i == s->fail_index) {
        if (s->fail_times < 0) {
            snprintf(err->message, sizeof(err->message), "poison record %d",
                     i);
            return KSAFE_HANDLER_FAIL;
        }
        if (s->calls[i] <= s->fail_times) {
            snprintf(err->message, sizeof(err->message), "transient %d", i);
            return KSAFE_HANDLER_RETRY;
        }
    }
    s->ok[i]++;
    s->total_ok++;
    if (s->stop_after && s->total_ok == s->stop_after) {
        if (s->raise_signal)
            raise(SIGTERM);
        else
            ksafe_consumer_stop(s->c);
    }
    return KSAFE_HANDLER_OK;
}

static void seen_init(seen *s, ksafe_consumer *c)
{
    memset(s, 0, sizeof(*s));
    s->c = c;
    s->fail_index = -1;
}

/* Runs the loop until `want` OK calls, or an error. */
static int run(ksafe_consumer *c, ksafe_loop_options *lo, seen *s, int want,
               ksafe_error *err)
{
    s->stop_after = want;
    lo->payload = s;
    return ksafe_run(c, lo, err);
}

START_TEST(options_are_validated)
{
    ksafe_loop_options lo = KSAFE_LOOP_OPTIONS_INIT, d;
    ksafe_consumer_options co = KSAFE_CONSUMER_OPTIONS_INIT;
    ksafe_consumer *c;
    ksafe_error err;

    co.bootstrap_servers = "127.0.0.1:1";
    co.group_id = "g";
    co.log_cb = test_quiet_log;
    ck_assert_ok(ksafe_consumer_new(&c, &co, &err), err);
    ck_assert_int_eq(ksafe_run(c, &lo, &err), KSAFE_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.message, "exactly one of handler"));
    lo.handler = record_handler;
    lo.max_attempts = 0;
    ck_assert_int_eq(ksafe_run(c, &lo, &err), KSAFE_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.message, "max_attempts is 0"));
    lo.max_attempts = 3;
    lo.on_failure = KSAFE_FAILURE_DEAD_LETTER;
    ck_assert_int_eq(ksafe_run(c, &lo, &err), KSAFE_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.message, "dead_letter_topic"));
    lo.on_failure = KSAFE_FAILURE_STOP;
    lo.commit_every_records = 0;
    lo.commit_interval_ms = 0;
    ck_assert_int_eq(ksafe_run(c, &lo, &err), KSAFE_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.message, "nothing would be committed"));
    lo = (ksafe_loop_options)KSAFE_LOOP_OPTIONS_INIT;
    lo.handler = record_handler;
    lo.backoff_multiplier = 0.5;
    ck_assert_int_eq(ksafe_run(c, &lo, &err), KSAFE_EINVAL);
    lo.backoff_multiplier = 2.0;
    lo.store_retry_max_ms = -1;
    ck_assert_int_eq(ksafe_run(c, &lo, &err), KSAFE_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.message, "store_retry_max_ms"));
    lo.version = 7;
    ck_assert_int_eq(ksafe_run(c, &lo, &err), KSAFE_EVERSION);
    ck_assert_int_eq(ksafe_run(c, NULL, &err), KSAFE_EINVAL);
    ck_assert_int_eq(ksafe_loop_options_init(&d, 1), 0);
    ck_assert_int_eq(d.semantics, KSAFE_AT_LEAST_ONCE);
    ck_assert_int_eq(d.on_failure, KSAFE_FAILURE_STOP);
    ck_assert_int_eq(d.store_retry_max_ms, 60000);
    ksafe_consumer_free(c);
}
END_TEST

/* Every record handled once, commits carry exactly what was processed. */
START_TEST(processes_and_commits_everything)
{
    char topic[64], group[64];
    ksafe_loop_options lo = KSAFE_LOOP_OPTIONS_INIT;
    ksafe_loop_stats st;
    int64_t committed[4];
    ksafe_consumer *c;
    ksafe_error err;
    seen s;
    int i;

    topic_with(topic, sizeof(topic), "loop-all", 4, 400);
    ksafe_test_unique_name(group, sizeof(group), "loop-all-g");
    c = test_subscribed(tc, topic, group);
    seen_init(&s, c);
    lo.handler = record_handler;
    lo.commit_every_records = 50;
    lo.stats = &st;
    ck_assert_ok(run(c, &lo, &s, 400, &err), err);
    for (i = 0; i < 400; i++)
        ck_assert_int_eq(s.ok[i], 1);
    ck_assert_uint_eq(st.processed, 400);
    ck_assert_uint_eq(st.polled, 400);
    /* 400 marks at 50 per commit: about 8 policy commits plus the final
     * one; never one per record. */
    ck_assert_uint_ge(st.commits, 2);
    ck_assert_uint_le(st.commits, 12);
    ksafe_consumer_free(c);
    test_committed(tc, topic, group, 4, committed);
    ck_assert_int_eq(committed[0] + committed[1] + committed[2] + committed[3],
                     400);
}
END_TEST

/* The failing record's partition never commits past it while retrying;
 * returns what was committed there (negative: nothing yet). */
static int64_t check_committed_during_retry(seen *s, int partition_of_failing,
                                            int64_t failing_offset)
{
    int64_t committed[4];

    test_committed(tc, s->topic, s->group, 4, committed);
    ck_assert_int_le(committed[partition_of_failing], failing_offset);
    return committed[partition_of_failing];
}

typedef struct retry_probe {
    seen s;
    int partition;
    int64_t offset;
    int probed;
    int64_t max_committed; /* on the failing partition, seen while retrying */
} retry_probe;

static ksafe_handler_result probing_handler(const ksafe_message *m,
                                            ksafe_error *err, void *payload)
{
    retry_probe *rp = payload;
    int i = test_value_index(m);

    if (i == rp->s.fail_index) {
        rp->partition = ksafe_message_partition(m);
        rp->offset = ksafe_message_offset(m);
        if (rp->s.calls[i] >= 1) { /* a retry: the record failed before */
            int64_t c = check_committed_during_retry(&rp->s, rp->partition,
                                                     rp->offset);
            rp->probed++;
            if (c > rp->max_committed)
                rp->max_committed = c;
        }
    }
    return record_handler(m, err, &rp->s);
}

/* RETRY n times then OK: n + 1 calls, processed once, marked only after. */
START_TEST(retry_then_success_marks_after_success)
{
    char topic[64], group[64];
    ksafe_loop_options lo = KSAFE_LOOP_OPTIONS_INIT;
    ksafe_loop_stats st;
    int64_t committed[4];
    ksafe_consumer *c;
    ksafe_error err;
    retry_probe rp;
    int i;

    topic_with(topic, sizeof(topic), "loop-retry", 4, 200);
    ksafe_test_unique_name(group, sizeof(group), "loop-retry-g");
    c = test_subscribed(tc, topic, group);
    memset(&rp, 0, sizeof(rp));
    rp.max_committed = -1;
    seen_init(&rp.s, c);
    rp.s.topic = topic;
    rp.s.group = group;
    rp.s.fail_index = 37;
    rp.s.fail_times = 3;
    lo.handler = probing_handler;
    lo.max_attempts = 5;
    lo.backoff_initial_ms = 200;
    lo.backoff_jitter = 0;
    lo.commit_every_records = 1; /* commits race the retry if they could */
    lo.commit_interval_ms = 100;
    lo.stats = &st;
    rp.s.stop_after = 200;
    lo.payload = &rp;
    ck_assert_ok(ksafe_run(c, &lo, &err), err);
    ck_assert_int_eq(rp.s.calls[37], 4);
    for (i = 0; i < 200; i++)
        ck_assert_int_eq(rp.s.ok[i], 1);
    ck_assert_int_eq(rp.probed, 3);
    /* Commits went on during the 1.4 s of retries and reached the failing
     * record (everything before it was processed), never past it. */
    ck_assert_int_gt(rp.offset, 0);
    ck_assert_int_eq(rp.max_committed, rp.offset);
    ck_assert_uint_eq(st.retries, 3);
    ck_assert_uint_ge(st.pauses, 1);     /* the partition waited paused */
    ck_assert_uint_eq(st.pauses, st.resumes);
    ksafe_consumer_free(c);
    test_committed(tc, topic, group, 4, committed);
    ck_assert_int_gt(committed[rp.partition], rp.offset);
}
END_TEST

/* Permanent failure with the stop policy: the error names the record and
 * nothing at or after it is committed on its partition. */
START_TEST(stop_policy_names_the_record_and_commits_nothing_after)
{
    char topic[64], group[64];
    ksafe_loop_options lo = KSAFE_LOOP_OPTIONS_INIT;
    int64_t committed[1];
    ksafe_consumer *c;
    ksafe_error err;
    char expect[128];
    seen s;

    topic_with(topic, sizeof(topic), "loop-stop", 1, 100);
    ksafe_test_unique_name(group, sizeof(group), "loop-stop-g");
    c = test_subscribed(tc, topic, group);
    seen_init(&s, c);
    s.fail_index = 42; /* one partition: offset 42 */
    s.fail_times = -1;
    lo.handler = record_handler;
    lo.commit_every_records = 1;
    ck_assert_int_eq(run(c, &lo, &s, 0, &err), KSAFE_EHANDLER);
    snprintf(expect, sizeof(expect), "%s [0] offset 42", topic);
    ck_assert_msg(strstr(err.message, expect) != NULL, "message: %s",
                  err.message);
    ck_assert_ptr_nonnull(strstr(err.message, "poison record 42"));
    ck_assert_int_eq(s.calls[42], 1); /* FAIL is not retried */
    ck_assert_int_eq(s.calls[43], 0);
    ksafe_consumer_free(c);
    test_committed(tc, topic, group, 1, committed);
    ck_assert_int_eq(committed[0], 42);
}
END_TEST

typedef struct dlq_probe {
    ksafe_test_cluster *tc;
    const char *source, *group;
} dlq_probe;

/* Permanent failure with a dead-letter topic: the DLQ holds the record with
 * its origin, and the source offset moves past it only after that. */
START_TEST(dead_letter_holds_record_with_origin_headers)
{
    char topic[64], group[64], dlq[64], dgroup[64];
    ksafe_loop_options lo = KSAFE_LOOP_OPTIONS_INIT;
    ksafe_producer_options po;
    ksafe_loop_stats st;
    ksafe_producer *dp;
    int64_t committed[1];
    ksafe_consumer *c, *dc;
    ksafe_message *m = NULL;
    ksafe_error err;
    const void *hv;
    size_t hl;
    seen s;
    time_t deadline;

    topic_with(topic, sizeof(topic), "loop-dlq", 1, 50);
    ksafe_test_unique_name(dlq, sizeof(dlq), "loop-dlq-dead");
    ck_assert_ok(ksafe_test_cluster_create_topic(tc, dlq, 1, &err), err);
    ksafe_test_unique_name(group, sizeof(group), "loop-dlq-g");
    ksafe_test_cluster_producer_options(tc, &po);
    ck_assert_ok(ksafe_producer_new(&dp, &po, &err), err);
    c = test_subscribed(tc, topic, group);
    seen_init(&s, c);
    s.fail_index = 7;
    s.fail_times = 100; /* keeps asking for retries: exhausts them */
    lo.handler = record_handler;
    lo.max_attempts = 3;
    lo.backoff_initial_ms = 10;
    lo.on_failure = KSAFE_FAILURE_DEAD_LETTER;
    lo.dead_letter_topic = dlq;
    lo.dead_letter_producer = dp;
    lo.stats = &st;
    ck_assert_ok(run(c, &lo, &s, 49, &err), err);
    ck_assert_int_eq(s.calls[7], 3);
    ck_assert_int_eq(s.ok[7], 0);
    ck_assert_uint_eq(st.dead_lettered, 1);
    ck_assert_uint_eq(st.failed, 1);
    ksafe_consumer_free(c);
    ksafe_producer_free(dp);
    test_committed(tc, topic, group, 1, committed);
    ck_assert_int_eq(committed[0], 50);

    ksafe_test_unique_name(dgroup, sizeof(dgroup), "loop-dlq-reader");
    dc = test_subscribed(tc, dlq, dgroup);
    deadline = time(NULL) + 30;
    while (!m && time(NULL) < deadline)
        ck_assert_ok(ksafe_consumer_poll(dc, 200, &m, &err), err);
    ck_assert_ptr_nonnull(m);
    ck_assert_int_eq(test_value_index(m), 7);
    ck_assert_int_eq(ksafe_message_header(m, "ksafe.origin.topic", &hv, &hl),
                     0);
    ck_assert_int_eq((int)hl, (int)strlen(topic));
    ck_assert_int_eq(memcmp(hv, topic, hl), 0);
    ck_assert_int_eq(ksafe_message_header(m, "ksafe.origin.offset", &hv, &hl),
                     0);
    ck_assert_int_eq(memcmp(hv, "7", 1), 0);
    ck_assert_int_eq(
        ksafe_message_header(m, "ksafe.origin.partition", &hv, &hl), 0);
    ck_assert_int_eq(ksafe_message_header(m, "ksafe.attempts", &hv, &hl), 0);
    ck_assert_int_eq(memcmp(hv, "3", 1), 0);
    ck_assert_int_eq(ksafe_message_header(m, "ksafe.error", &hv, &hl), 0);
    ck_assert_int_gt((int)hl, 0);
    ksafe_message_free(m);
    ksafe_consumer_free(dc);
}
END_TEST

/*
 * A record that keeps failing for longer than max.poll.interval in total
 * does not cost the member its partitions: the loop polls between attempts.
 * (One single handler call longer than max.poll.interval would: see
 * docs/loop.md, the limit under "Retries do not stall the group".)
 */
START_TEST(long_retry_keeps_group_membership)
{
    char topic[64], group[64];
    ksafe_loop_options lo = KSAFE_LOOP_OPTIONS_INIT;
    ksafe_consumer_options co;
    ksafe_loop_stats st;
    const char *t;
    ksafe_consumer *c;
    ksafe_error err;
    seen s;

    topic_with(topic, sizeof(topic), "loop-slow", 2, 20);
    ksafe_test_unique_name(group, sizeof(group), "loop-slow-g");
    ksafe_test_cluster_consumer_options(tc, &co, group);
    co.max_poll_interval_ms = 5000;
    co.log_cb = test_quiet_log;
    ck_assert_ok(ksafe_consumer_new(&c, &co, &err), err);
    t = topic;
    ck_assert_ok(ksafe_consumer_subscribe(c, &t, 1, &err), err);
    seen_init(&s, c);
    s.fail_index = 3;
    s.fail_times = 4;
    s.sleep_ms = 0;
    lo.handler = record_handler;
    lo.max_attempts = 10;
    lo.backoff_initial_ms = 2000; /* 4 retries x 2 s = 8 s > 5 s */
    lo.backoff_multiplier = 1.0;
    lo.backoff_jitter = 0;
    lo.stats = &st;
    ck_assert_ok(run(c, &lo, &s, 20, &err), err);
    ck_assert_int_eq(s.calls[3], 5);
    ck_assert_int_eq(s.ok[3], 1);
    ck_assert_uint_eq(st.revoked, 0); /* the member kept its partitions */
    ck_assert_uint_eq(st.lost, 0);
    ksafe_consumer_free(c);
}
END_TEST

/* Batch handler: leading successes are marked; the failing record is
 * retried; the rest is handed again. */
typedef struct batch_seen {
    seen s;
    int batches;
    size_t max_per_partition;
} batch_seen;

static ksafe_handler_result batch_handler(const ksafe_message *const *msgs,
                                          size_t n, size_t *succeeded,
                                          ksafe_error *err, void *payload)
{
    batch_seen *b = payload;
    size_t per[8] = {0};
    size_t i;

    b->batches++;
    for (i = 0; i < n; i++) {
        int p = ksafe_message_partition(msgs[i]);
        if (++per[p] > b->max_per_partition)
            b->max_per_partition = per[p];
    }
    for (i = 0; i < n; i++) {
        ksafe_handler_result r = record_handler(msgs[i], err, &b->s);
        if (r != KSAFE_HANDLER_OK) {
            *succeeded = i;
            return r;
        }
    }
    return KSAFE_HANDLER_OK;
}

START_TEST(batch_partial_success_and_retry)
{
    char topic[64], group[64];
    ksafe_loop_options lo = KSAFE_LOOP_OPTIONS_INIT;
    ksafe_loop_stats st;
    int64_t committed[2];
    ksafe_consumer *c;
    ksafe_error err;
    batch_seen b;
    int i;

    topic_with(topic, sizeof(topic), "loop-batch", 2, 300);
    ksafe_test_unique_name(group, sizeof(group), "loop-batch-g");
    c = test_subscribed(tc, topic, group);
    memset(&b, 0, sizeof(b));
    seen_init(&b.s, c);
    b.s.fail_index = 150;
    b.s.fail_times = 2;
    b.s.stop_after = 300;
    lo.batch_handler = batch_handler;
    lo.batch_size = 64;
    lo.batch_max_wait_ms = 50;
    lo.backoff_initial_ms = 50;
    lo.payload = &b;
    lo.stats = &st;
    ck_assert_ok(ksafe_run(c, &lo, &err), err);
    for (i = 0; i < 300; i++)
        ck_assert_msg(b.s.ok[i] == 1, "record %d ok %d times", i, b.s.ok[i]);
    ck_assert_int_eq(b.s.calls[150], 3);
    ck_assert_uint_eq(st.processed, 300);
    ksafe_consumer_free(c);
    test_committed(tc, topic, group, 2, committed);
    ck_assert_int_eq(committed[0] + committed[1], 300);
}
END_TEST

/* Backpressure: a partition holding max_buffered_per_partition records is
 * paused until they are handled, so no batch holds more of it. */
START_TEST(backpressure_pauses_and_resumes)
{
    char topic[64], group[64];
    ksafe_loop_options lo = KSAFE_LOOP_OPTIONS_INIT;
    ksafe_loop_stats st;
    ksafe_consumer *c;
    ksafe_error err;
    batch_seen b;

    topic_with(topic, sizeof(topic), "loop-bp", 1, 200);
    ksafe_test_unique_name(group, sizeof(group), "loop-bp-g");
    c = test_subscribed(tc, topic, group);
    memset(&b, 0, sizeof(b));
    seen_init(&b.s, c);
    b.s.stop_after = 200;
    lo.batch_handler = batch_handler;
    lo.batch_size = 100;
    lo.batch_max_wait_ms = 200;
    lo.max_buffered_per_partition = 10;
    lo.payload = &b;
    lo.stats = &st;
    ck_assert_ok(ksafe_run(c, &lo, &err), err);
    ck_assert_int_eq(b.s.total_ok, 200);
    ck_assert_uint_le(b.max_per_partition, 10);
    ck_assert_uint_ge(st.pauses, 10);
    ck_assert_uint_eq(st.pauses, st.resumes);
    ksafe_consumer_free(c);
}
END_TEST

/* Stop from a signal handler: the loop returns 0 and the final commit equals
 * exactly what was processed. */
START_TEST(stop_from_signal_commits_what_was_marked)
{
    char topic[64], group[64];
    ksafe_loop_options lo = KSAFE_LOOP_OPTIONS_INIT;
    int64_t committed[2];
    ksafe_consumer *c;
    ksafe_error err;
    int64_t next[2] = {0, 0};
    seen s;
    int i;

    topic_with(topic, sizeof(topic), "loop-sig", 2, 300);
    ksafe_test_unique_name(group, sizeof(group), "loop-sig-g");
    c = test_subscribed(tc, topic, group);
    seen_init(&s, c);
    s.raise_signal = 1;
    ck_assert_ok(ksafe_stop_on_signals(c, &err), err);
    lo.handler = record_handler;
    lo.commit_every_records = 1000000; /* only the final commit */
    lo.commit_interval_ms = 600000;
    ck_assert_ok(run(c, &lo, &s, 123, &err), err);
    ck_assert_int_eq(s.total_ok, 123);
    signal(SIGTERM, SIG_DFL);
    signal(SIGINT, SIG_DFL);
    ksafe_consumer_free(c);
    /* Records of one key land on one partition; the processed ones per
     * partition are a prefix, so the committed offsets sum to 123. */
    test_committed(tc, topic, group, 2, committed);
    for (i = 0; i < 2; i++)
        next[i] = committed[i] < 0 ? 0 : committed[i];
    ck_assert_int_eq(next[0] + next[1], 123);
}
END_TEST

/* At-most-once: a failing record is not retried and is still committed. */
START_TEST(at_most_once_loses_failed_records_by_design)
{
    char topic[64], group[64];
    ksafe_loop_options lo = KSAFE_LOOP_OPTIONS_INIT;
    ksafe_loop_stats st;
    int64_t committed[1];
    ksafe_consumer *c;
    ksafe_error err;
    seen s;

    topic_with(topic, sizeof(topic), "loop-amo", 1, 30);
    ksafe_test_unique_name(group, sizeof(group), "loop-amo-g");
    c = test_subscribed(tc, topic, group);
    seen_init(&s, c);
    s.fail_index = 5;
    s.fail_times = 10;
    lo.handler = record_handler;
    lo.semantics = KSAFE_AT_MOST_ONCE;
    lo.stats = &st;
    ck_assert_ok(run(c, &lo, &s, 29, &err), err);
    ck_assert_int_eq(s.calls[5], 1);
    ck_assert_int_eq(s.ok[5], 0);
    ck_assert_uint_eq(st.failed, 1); /* failed, not processed */
    ck_assert_uint_eq(st.processed, 29);
    ck_assert_uint_eq(st.retries, 0);
    ksafe_consumer_free(c);
    test_committed(tc, topic, group, 1, committed);
    ck_assert_int_eq(committed[0], 30);
}
END_TEST

/* ---- deduplication ----------------------------------------------------- */

/* Sends value "value-<i>" with header event-id "evt-<id>" for each id. */
static void produce_events(const char *topic, const int *ids, int n)
{
    ksafe_producer_options o;
    ksafe_producer *p;
    ksafe_error err;
    int i;

    ksafe_test_cluster_producer_options(tc, &o);
    ck_assert_ok(ksafe_producer_new(&p, &o, &err), err);
    for (i = 0; i < n; i++) {
        char value[32], evt[32];
        ksafe_header h;
        ksafe_record r = KSAFE_RECORD_INIT;
        snprintf(value, sizeof(value), "value-%d", i);
        snprintf(evt, sizeof(evt), "evt-%d", ids[i]);
        h.name = "event-id";
        h.value = evt;
        h.value_len = strlen(evt);
        r.topic = topic;
        r.value = value;
        r.value_len = strlen(value);
        if (ids[i] >= 0) {
            r.headers = &h;
            r.header_count = 1;
        }
        ck_assert_ok(ksafe_producer_send(p, &r, &err), err);
    }
    ck_assert_ok(ksafe_producer_close(p, &err), err);
    ksafe_producer_free(p);
}

typedef struct applied {
    ksafe_consumer *c;
    int by_event[100];
    int total, stop_after;
} applied;

static ksafe_handler_result apply_event(const ksafe_message *m,
                                        ksafe_error *err, void *payload)
{
    applied *a = payload;
    const void *v;
    size_t len;
    int id;
    char buf[16];

    (void)err;
    ck_assert_int_eq(ksafe_message_header(m, "event-id", &v, &len), 0);
    ck_assert_int_lt(len, sizeof(buf));
    memcpy(buf, v, len);
    buf[len] = '\0';
    ck_assert_int_eq(sscanf(buf, "evt-%d", &id), 1);
    a->by_event[id]++;
    if (++a->total == a->stop_after)
        ksafe_consumer_stop(a->c);
    return KSAFE_HANDLER_OK;
}

/* The producer sent some events twice (a retry outside idempotence): each
 * is applied once and the repeats are counted as duplicates. */
START_TEST(dedup_applies_producer_duplicates_once)
{
    char topic[64], group[64];
    ksafe_loop_options lo = KSAFE_LOOP_OPTIONS_INIT;
    ksafe_dedup_memory_options mo = KSAFE_DEDUP_MEMORY_OPTIONS_INIT;
    ksafe_dedup_store *store;
    ksafe_dedup_key *key;
    ksafe_loop_stats st;
    ksafe_consumer *c;
    ksafe_error err;
    applied a;
    int ids[61], i;

    for (i = 0; i < 50; i++)
        ids[i] = i;
    for (i = 50; i < 60; i++)
        ids[i] = (i - 50) * 3; /* events 0, 3, ..., 27 again */
    ids[60] = 99;              /* the last one: the handler stops there */
    ksafe_test_unique_name(topic, sizeof(topic), "loop-dedup");
    ksafe_test_unique_name(group, sizeof(group), "loop-dedup-g");
    ck_assert_ok(ksafe_test_cluster_create_topic(tc, topic, 1, &err), err);
    produce_events(topic, ids, 61);
    mo.capacity = 1000;
    ck_assert_ok(ksafe_dedup_memory_new(&store, &mo, &err), err);
    ck_assert_ok(ksafe_dedup_key_parse(&key, "header:event-id", &err), err);
    c = test_subscribed(tc, topic, group);
    memset(&a, 0, sizeof(a));
    a.c = c;
    a.stop_after = 51;
    lo.handler = apply_event;
    lo.payload = &a;
    lo.dedup_store = store;
    lo.dedup_key = key;
    lo.stats = &st;
    ck_assert_ok(ksafe_run(c, &lo, &err), err);
    for (i = 0; i < 50; i++)
        ck_assert_msg(a.by_event[i] == 1, "event %d applied %d times", i,
                      a.by_event[i]);
    ck_assert_int_eq(a.by_event[99], 1);
    ck_assert_uint_eq(st.processed, 51);
    ck_assert_uint_eq(st.duplicates, 10);
    ksafe_consumer_free(c);
    ksafe_dedup_store_free(store);
    ksafe_dedup_key_free(key);
}
END_TEST

/* A record without the key the store needs fails for good: the stop policy
 * names it. */
START_TEST(dedup_record_without_key_fails_by_policy)
{
    char topic[64], group[64];
    ksafe_loop_options lo = KSAFE_LOOP_OPTIONS_INIT;
    ksafe_dedup_memory_options mo = KSAFE_DEDUP_MEMORY_OPTIONS_INIT;
    ksafe_dedup_store *store;
    ksafe_dedup_key *key;
    ksafe_consumer *c;
    ksafe_error err;
    int64_t committed[1];
    applied a;
    int ids[5] = {0, 1, -1, 3, 4}; /* the third has no event-id header */

    ksafe_test_unique_name(topic, sizeof(topic), "loop-nokey");
    ksafe_test_unique_name(group, sizeof(group), "loop-nokey-g");
    ck_assert_ok(ksafe_test_cluster_create_topic(tc, topic, 1, &err), err);
    produce_events(topic, ids, 5);
    mo.capacity = 100;
    ck_assert_ok(ksafe_dedup_memory_new(&store, &mo, &err), err);
    ck_assert_ok(ksafe_dedup_key_parse(&key, "header:event-id", &err), err);
    c = test_subscribed(tc, topic, group);
    memset(&a, 0, sizeof(a));
    a.c = c;
    lo.handler = apply_event;
    lo.payload = &a;
    lo.dedup_store = store;
    lo.dedup_key = key;
    lo.commit_every_records = 1;
    ck_assert_int_eq(ksafe_run(c, &lo, &err), KSAFE_EHANDLER);
    ck_assert_msg(strstr(err.message, "[0] offset 2") != NULL, "%s",
                  err.message);
    ck_assert_ptr_nonnull(strstr(err.message, "event-id"));
    ck_assert_int_eq(a.total, 2);
    ksafe_consumer_free(c);
    test_committed(tc, topic, group, 1, committed);
    ck_assert_int_eq(committed[0], 2);
    ksafe_dedup_store_free(store);
    ksafe_dedup_key_free(key);
}
END_TEST


/* A JSON key field that is an empty string keys nothing: that record fails
 * by the policy, named, like a record without its key; the store is not to
 * blame (before, the store refused the 0-byte key at claim time and the
 * loop retried a healthy store until KSAFE_ESTORE). Found by fuzzing. */
START_TEST(dedup_empty_json_key_fails_by_policy)
{
    static const char *const values[5] = {"{\"id\":\"a\"}", "{\"id\":\"b\"}",
                                          "{\"id\":\"\"}", "{\"id\":\"d\"}",
                                          "{\"id\":\"e\"}"};
    char topic[64], group[64];
    ksafe_loop_options lo = KSAFE_LOOP_OPTIONS_INIT;
    ksafe_dedup_memory_options mo = KSAFE_DEDUP_MEMORY_OPTIONS_INIT;
    ksafe_producer_options po;
    ksafe_dedup_store *store;
    ksafe_dedup_key *key;
    ksafe_producer *p;
    ksafe_consumer *c;
    ksafe_error err;
    int64_t committed[1];
    applied a;
    int i;

    ksafe_test_unique_name(topic, sizeof(topic), "loop-emptykey");
    ksafe_test_unique_name(group, sizeof(group), "loop-emptykey-g");
    ck_assert_ok(ksafe_test_cluster_create_topic(tc, topic, 1, &err), err);
    ksafe_test_cluster_producer_options(tc, &po);
    ck_assert_ok(ksafe_producer_new(&p, &po, &err), err);
    for (i = 0; i < 5; i++) {
        char evt[16];
        ksafe_header h = {"event-id", evt, 0};
        ksafe_record r = KSAFE_RECORD_INIT;
        snprintf(evt, sizeof(evt), "evt-%d", i);
        h.value_len = strlen(evt);
        r.topic = topic;
        r.value = values[i];
        r.value_len = strlen(values[i]);
        r.headers = &h;
        r.header_count = 1;
        ck_assert_ok(ksafe_producer_send(p, &r, &err), err);
    }
    ck_assert_ok(ksafe_producer_close(p, &err), err);
    ksafe_producer_free(p);
    mo.capacity = 100;
    ck_assert_ok(ksafe_dedup_memory_new(&store, &mo, &err), err);
    ck_assert_ok(ksafe_dedup_key_parse(&key, "json:id", &err), err);
    c = test_subscribed(tc, topic, group);
    memset(&a, 0, sizeof(a));
    a.c = c;
    lo.handler = apply_event;
    lo.payload = &a;
    lo.dedup_store = store;
    lo.dedup_key = key;
    lo.commit_every_records = 1;
    ck_assert_int_eq(ksafe_run(c, &lo, &err), KSAFE_EHANDLER);
    ck_assert_msg(strstr(err.message, "[0] offset 2") != NULL, "%s",
                  err.message);
    ck_assert_msg(strstr(err.message, "empty string") != NULL, "%s",
                  err.message);
    ck_assert_int_eq(a.total, 2);
    ksafe_consumer_free(c);
    test_committed(tc, topic, group, 1, committed);
    ck_assert_int_eq(committed[0], 2);
    ksafe_dedup_store_free(store);
    ksafe_dedup_key_free(key);
}
END_TEST

/* A dedup batch is all or nothing: when record 5 fails for good after the
 * handler said 0..4 succeeded, those are rolled back with the transaction,
 * so the skipped record may be marked only once they are done again. */
typedef struct skip_probe {
    ksafe_consumer *c;
    int calls[10], ok_after_fail[10];
    int failed;           /* the FAIL was returned */
    int stop_at_failure;  /* stop the loop right after the FAIL */
    int64_t batch_first;  /* first offset of the failing batch */
} skip_probe;

static ksafe_handler_result skip_batch_handler(const ksafe_message *const *msgs,
                                               size_t n, size_t *succeeded,
                                               ksafe_error *err, void *payload)
{
    skip_probe *sp = payload;
    size_t i;
    int saw_last = 0;

    for (i = 0; i < n; i++) {
        int idx = test_value_index(msgs[i]);
        sp->calls[idx]++;
        if (idx == 5 && !sp->failed) {
            sp->failed = 1;
            sp->batch_first = ksafe_message_offset(msgs[0]);
            *succeeded = i;
            snprintf(err->message, sizeof(err->message), "poison 5");
            if (sp->stop_at_failure)
                ksafe_consumer_stop(sp->c);
            return KSAFE_HANDLER_FAIL;
        }
        if (idx == 9)
            saw_last = 1;
    }
    /* Only a batch that succeeded as a whole counts: its transaction
     * commits. */
    for (i = 0; i < n && sp->failed; i++)
        sp->ok_after_fail[test_value_index(msgs[i])]++;
    if (saw_last && sp->failed)
        ksafe_consumer_stop(sp->c);
    return KSAFE_HANDLER_OK;
}

START_TEST(dedup_batch_skip_marks_only_after_earlier_records)
{
    char topic[64], group[64], group2[64];
    ksafe_loop_options lo = KSAFE_LOOP_OPTIONS_INIT;
    ksafe_dedup_memory_options mo = KSAFE_DEDUP_MEMORY_OPTIONS_INIT;
    ksafe_dedup_store *store;
    ksafe_dedup_key *key;
    ksafe_loop_stats st;
    int64_t committed[1];
    ksafe_consumer *c;
    ksafe_error err;
    skip_probe sp;
    int i;

    topic_with(topic, sizeof(topic), "loop-dskip", 1, 10);
    mo.capacity = 1000;
    ck_assert_ok(ksafe_dedup_memory_new(&store, &mo, &err), err);
    ck_assert_ok(ksafe_dedup_key_parse(&key, "position", &err), err);
    lo.batch_handler = skip_batch_handler;
    lo.batch_size = 10;
    lo.batch_max_wait_ms = 500;
    lo.on_failure = KSAFE_FAILURE_SKIP;
    lo.commit_every_records = 1;
    lo.dedup_store = store;
    lo.dedup_key = key;
    lo.stats = &st;

    /* Stopped right after the failure: nothing of the rolled-back batch
     * may be committed. */
    ksafe_test_unique_name(group, sizeof(group), "loop-dskip-g");
    c = test_subscribed(tc, topic, group);
    memset(&sp, 0, sizeof(sp));
    sp.c = c;
    sp.stop_at_failure = 1;
    lo.payload = &sp;
    ck_assert_ok(ksafe_run(c, &lo, &err), err);
    ck_assert_int_eq(sp.failed, 1);
    ksafe_consumer_free(c);
    test_committed(tc, topic, group, 1, committed);
    ck_assert_msg(committed[0] <= sp.batch_first,
                  "committed %lld, past the rolled-back records from %lld",
                  (long long)committed[0], (long long)sp.batch_first);

    /* Run on: the records before 5 are handled again, 5 is skipped once,
     * the rest follows. */
    ksafe_test_unique_name(group2, sizeof(group2), "loop-dskip-g2");
    c = test_subscribed(tc, topic, group2);
    memset(&sp, 0, sizeof(sp));
    sp.c = c;
    lo.payload = &sp;
    ck_assert_ok(ksafe_run(c, &lo, &err), err);
    ck_assert_int_eq(sp.calls[5], 1);
    for (i = (int)sp.batch_first; i < 10; i++)
        if (i != 5)
            ck_assert_msg(sp.ok_after_fail[i] == 1,
                          "record %d committed %d times after the failure", i,
                          sp.ok_after_fail[i]);
    ck_assert_uint_eq(st.skipped, 1);
    ksafe_consumer_free(c);
    test_committed(tc, topic, group2, 1, committed);
    ck_assert_int_eq(committed[0], 10);
    ksafe_dedup_store_free(store);
    ksafe_dedup_key_free(key);
}
END_TEST



/* ---- a store that fails on request --------------------------------------
 * Wraps the memory store and fails the next `fail_left` calls of the
 * operations in `fail_ops`, like a database that restarts. It also keeps
 * the test handler's effects the way a database would: pending until the
 * transaction commits, dropped by a rollback. */
enum { F_BEGIN = 1, F_CLAIM = 2, F_MARK = 4, F_OFFSET = 8, F_COMMIT = 16 };

typedef struct faulty {
    ksafe_dedup_store *inner;
    unsigned fail_ops;
    long fail_left;
    long failed;          /* calls failed so far */
    int pending[100], applied[100];
    int applied_total, stop_after;
    ksafe_consumer *c;
    const ksafe_loop_stats *st; /* a policy decision also stops the loop */
    time_t deadline;
} faulty;

static int faulty_trip(faulty *f, unsigned op, ksafe_error *err)
{
    if (!(f->fail_ops & op) || f->fail_left <= 0)
        return 0;
    f->fail_left--;
    f->failed++;
    snprintf(err->message, sizeof(err->message),
             "injected store failure %ld", f->failed);
    err->code = KSAFE_ESTORE;
    err->rdkafka_code = 0;
    err->flags = KSAFE_ERROR_RETRIABLE;
    return KSAFE_ESTORE;
}

static int faulty_begin(void *self, ksafe_error *err)
{
    faulty *f = self;
    int rc = faulty_trip(f, F_BEGIN, err);

    if ((f->st && (f->st->skipped || f->st->failed)) ||
        (f->deadline && time(NULL) > f->deadline))
        ksafe_consumer_stop(f->c);
    return rc ? rc : ksafe_dedup_begin(f->inner, err);
}

static int faulty_claim(void *self, const void *key, size_t len,
                        int *duplicate, ksafe_error *err)
{
    faulty *f = self;
    ksafe_dedup_status st;
    int rc = faulty_trip(f, F_CLAIM, err);

    if (rc || (rc = ksafe_dedup_claim(f->inner, key, len, &st, err)))
        return rc;
    *duplicate = st == KSAFE_DEDUP_DUPLICATE;
    return 0;
}

static int faulty_mark(void *self, const void *key, size_t len,
                       ksafe_error *err)
{
    faulty *f = self;
    int rc = faulty_trip(f, F_MARK, err);
    return rc ? rc : ksafe_dedup_mark(f->inner, key, len, err);
}

static int faulty_release(void *self, const void *key, size_t len,
                          ksafe_error *err)
{
    return ksafe_dedup_release(((faulty *)self)->inner, key, len, err);
}

static int faulty_save_offset(void *self, const char *group,
                              const char *topic, int32_t partition,
                              int64_t next_offset, ksafe_error *err)
{
    faulty *f = self;
    int rc = faulty_trip(f, F_OFFSET, err);
    return rc ? rc
              : ksafe_dedup_store_offset(f->inner, group, topic, partition,
                                         next_offset, err);
}

static int faulty_load_offset(void *self, const char *group,
                              const char *topic, int32_t partition,
                              int64_t *next_offset, ksafe_error *err)
{
    faulty *f = self;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    int rc;

    rd_kafka_topic_partition_list_add(l, topic, partition)->offset = -1;
    rc = ksafe_dedup_load_offsets(f->inner, group, l, NULL, err);
    *next_offset = l->elems[0].offset;
    rd_kafka_topic_partition_list_destroy(l);
    return rc;
}

static int faulty_commit(void *self, ksafe_error *err)
{
    faulty *f = self;
    int rc = faulty_trip(f, F_COMMIT, err);
    int i;

    if (rc || (rc = ksafe_dedup_commit(f->inner, err)))
        return rc;
    for (i = 0; i < 100; i++) {
        f->applied[i] += f->pending[i];
        f->applied_total += f->pending[i];
        f->pending[i] = 0;
    }
    if (f->stop_after && f->applied_total >= f->stop_after)
        ksafe_consumer_stop(f->c);
    return 0;
}

static int faulty_rollback(void *self, ksafe_error *err)
{
    faulty *f = self;

    memset(f->pending, 0, sizeof(f->pending));
    return ksafe_dedup_rollback(f->inner, err);
}

static void faulty_close(void *self)
{
    ksafe_dedup_store_free(((faulty *)self)->inner);
}

static ksafe_dedup_store *faulty_new(faulty *f)
{
    static const ksafe_dedup_store_ops ops = {
        KSAFE_DEDUP_STORE_OPS_VERSION, "faulty", faulty_begin, faulty_claim,
        faulty_mark, faulty_release, faulty_save_offset, faulty_load_offset,
        faulty_commit, faulty_rollback, NULL, NULL, faulty_close};
    ksafe_dedup_memory_options mo = KSAFE_DEDUP_MEMORY_OPTIONS_INIT;
    ksafe_dedup_store *s;
    ksafe_error err;

    mo.capacity = 1000;
    ck_assert_ok(ksafe_dedup_memory_new(&f->inner, &mo, &err), err);
    ck_assert_ok(ksafe_dedup_store_new(&s, &ops, f, &err), err);
    return s;
}

/* The test handler's effect: pending in the store's transaction. */
static ksafe_handler_result faulty_apply(const ksafe_message *m,
                                         ksafe_error *err, void *payload)
{
    faulty *f = payload;

    (void)err;
    f->pending[test_value_index(m)]++;
    return KSAFE_HANDLER_OK;
}

/* Store trouble is not the record's fault: with one attempt per record and
 * the skip policy, a store that fails a few times must not cost a record. */
START_TEST(store_errors_do_not_consume_attempts)
{
    char topic[64], group[64];
    ksafe_loop_options lo = KSAFE_LOOP_OPTIONS_INIT;
    ksafe_dedup_store *store;
    ksafe_dedup_key *key;
    ksafe_loop_stats st;
    int64_t committed[1];
    ksafe_consumer *c;
    ksafe_error err;
    faulty f;
    int i;

    topic_with(topic, sizeof(topic), "loop-storeerr", 1, 20);
    ksafe_test_unique_name(group, sizeof(group), "loop-storeerr-g");
    memset(&f, 0, sizeof(f));
    store = faulty_new(&f);
    ck_assert_ok(ksafe_dedup_key_parse(&key, "position", &err), err);
    c = test_subscribed(tc, topic, group);
    f.c = c;
    f.stop_after = 20;
    f.st = &st;
    f.deadline = time(NULL) + 60;
    /* begin, claim, mark, offset and commit each fail at some point */
    f.fail_ops = F_BEGIN | F_CLAIM | F_MARK | F_OFFSET | F_COMMIT;
    f.fail_left = 6;
    lo.handler = faulty_apply;
    lo.payload = &f;
    lo.max_attempts = 1;
    lo.on_failure = KSAFE_FAILURE_SKIP;
    lo.backoff_initial_ms = 20;
    lo.backoff_max_ms = 100;
    lo.commit_every_records = 1;
    lo.dedup_store = store;
    lo.dedup_key = key;
    lo.dedup_offsets = 1;
    lo.stats = &st;
    ck_assert_ok(ksafe_run(c, &lo, &err), err);
    ck_assert_uint_eq(st.skipped, 0);
    ck_assert_uint_eq(st.failed, 0);
    ck_assert_int_eq(f.failed, 6);
    ck_assert_uint_eq(st.store_errors, 6);
    ck_assert_uint_eq(st.retries, 0); /* no handler asked for one */
    for (i = 0; i < 20; i++)
        ck_assert_msg(f.applied[i] == 1, "record %d applied %d times", i,
                      f.applied[i]);
    ksafe_consumer_free(c);
    test_committed(tc, topic, group, 1, committed);
    ck_assert_int_eq(committed[0], 20);
    ksafe_dedup_store_free(store);
    ksafe_dedup_key_free(key);
}
END_TEST


/* A store that never recovers ends the loop with KSAFE_ESTORE after
 * store_retry_max_ms, charging no record and committing nothing. */
START_TEST(store_that_never_recovers_ends_the_loop)
{
    char topic[64], group[64];
    ksafe_loop_options lo = KSAFE_LOOP_OPTIONS_INIT;
    ksafe_dedup_store *store;
    ksafe_dedup_key *key;
    ksafe_loop_stats st;
    int64_t committed[1];
    ksafe_consumer *c;
    ksafe_error err;
    faulty f;
    int rc, i;

    topic_with(topic, sizeof(topic), "loop-storedead", 1, 10);
    ksafe_test_unique_name(group, sizeof(group), "loop-storedead-g");
    memset(&f, 0, sizeof(f));
    store = faulty_new(&f);
    ck_assert_ok(ksafe_dedup_key_parse(&key, "position", &err), err);
    c = test_subscribed(tc, topic, group);
    f.c = c;
    f.st = &st;
    f.deadline = time(NULL) + 60;
    f.fail_ops = F_CLAIM | F_COMMIT;
    f.fail_left = 1000000;
    lo.handler = faulty_apply;
    lo.payload = &f;
    lo.on_failure = KSAFE_FAILURE_SKIP;
    lo.backoff_initial_ms = 50;
    lo.backoff_max_ms = 200;
    lo.store_retry_max_ms = 1500;
    lo.commit_every_records = 1;
    lo.dedup_store = store;
    lo.dedup_key = key;
    lo.stats = &st;
    rc = ksafe_run(c, &lo, &err);
    ck_assert_msg(rc == KSAFE_ESTORE, "ksafe_run: %d %s", rc, err.message);
    ck_assert_ptr_nonnull(strstr(err.message, "faulty"));
    ck_assert_ptr_nonnull(strstr(err.message, "injected store failure"));
    ck_assert_uint_eq(st.skipped, 0);
    ck_assert_uint_eq(st.failed, 0);
    ck_assert_uint_ge(st.store_errors, 3); /* it was retried, with backoff */
    for (i = 0; i < 10; i++)
        ck_assert_int_eq(f.applied[i], 0);
    ksafe_consumer_free(c);
    test_committed(tc, topic, group, 1, committed);
    ck_assert_int_lt(committed[0], 0); /* nothing committed */
    ksafe_dedup_store_free(store);
    ksafe_dedup_key_free(key);
}
END_TEST


/* ---- group errors the broker will not stop giving ---------------------- */

typedef struct watchdog {
    ksafe_consumer *c;
    int seconds;
    volatile int done;
} watchdog;

/* Stops a loop that would otherwise never return (the defect). */
static void *watchdog_main(void *arg)
{
    watchdog *w = arg;
    int i;

    for (i = 0; i < w->seconds * 10 && !w->done; i++)
        nanosleep(&(struct timespec){0, 100 * 1000000L}, NULL);
    if (!w->done)
        ksafe_consumer_stop(w->c);
    return NULL;
}

/*
 * A broker that refuses the member's configuration (JoinGroup answered
 * INVALID_SESSION_TIMEOUT, as a stock Kafka does for a session timeout
 * below group.min.session.timeout.ms) does so on every retry: the loop ends
 * with KSAFE_EKAFKA naming the cause and the setting to change.
 */
START_TEST(refused_group_configuration_ends_the_loop)
{
    char topic[64], group[64];
    ksafe_loop_options lo = KSAFE_LOOP_OPTIONS_INIT;
    ksafe_consumer_options co;
    rd_kafka_resp_err_t refusal = RD_KAFKA_RESP_ERR_INVALID_SESSION_TIMEOUT;
    ksafe_consumer *c;
    ksafe_error err;
    const char *t;
    watchdog w;
    pthread_t th;
    seen s;
    int rc;

    topic_with(topic, sizeof(topic), "loop-refused", 1, 5);
    ksafe_test_unique_name(group, sizeof(group), "loop-refused-g");
    /* One: the first refusal must end the loop, and none may be left for
     * the next test. */
    ck_assert_ok(ksafe_mock_cluster_push_request_errors(
                     ksafe_test_cluster_mock(tc), 11, 1, &refusal, &err),
                 err);
    ksafe_test_cluster_consumer_options(tc, &co, group);
    co.log_cb = test_quiet_log;
    ck_assert_ok(ksafe_consumer_new(&c, &co, &err), err);
    t = topic;
    ck_assert_ok(ksafe_consumer_subscribe(c, &t, 1, &err), err);
    seen_init(&s, c);
    lo.handler = record_handler;
    lo.payload = &s;
    w.c = c;
    w.seconds = 30;
    w.done = 0;
    ck_assert_int_eq(pthread_create(&th, NULL, watchdog_main, &w), 0);
    memset(&err, 0, sizeof(err));
    rc = ksafe_run(c, &lo, &err);
    w.done = 1;
    pthread_join(th, NULL);
    ck_assert_msg(rc == KSAFE_EKAFKA, "ksafe_run: %d %s", rc, err.message);
    ck_assert_int_eq(err.rdkafka_code, RD_KAFKA_RESP_ERR_INVALID_SESSION_TIMEOUT);
    ck_assert_msg(strstr(err.message, "session_timeout_ms") != NULL, "%s",
                  err.message);
    ck_assert_msg(strstr(err.message, group) != NULL, "%s", err.message);
    ck_assert_int_eq(s.total_ok, 0);
    ksafe_consumer_free(c);
}
END_TEST


/* ---- at-most-once across a crash --------------------------------------- */

static pid_t spawn_loop_worker(const char *topic, const char *group,
                               const char *out, const char *exit_after)
{
    const char *worker = getenv("KSAFE_LOOP_WORKER");
    pid_t pid;

    ck_assert_msg(worker && *worker, "KSAFE_LOOP_WORKER is not set");
    pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* no orphans if the test dies */
        execl(worker, worker, ksafe_test_cluster_bootstrap(tc), topic, group,
              out, "at-most-once", exit_after, (char *)NULL);
        _exit(127);
    }
    ck_assert_int_gt(pid, 0);
    return pid;
}

/* Reads the "value-<i>" lines of `path` into count[]; returns the lines. */
static int read_handled(const char *path, int *count, int n)
{
    char line[64];
    int lines = 0, i;
    FILE *f = fopen(path, "r");

    if (!f)
        return 0;
    while (fgets(line, sizeof(line), f)) {
        ck_assert_int_eq(sscanf(line, "value-%d", &i), 1);
        ck_assert(i >= 0 && i < n);
        count[i]++;
        lines++;
    }
    fclose(f);
    return lines;
}

/*
 * At-most-once means a record is never handled twice, crash or not: the
 * position is committed (broker-acknowledged) before the handler sees the
 * record. A member dies right after handling 5 records; the next member of
 * the group must not hand it those 5 again.
 */
START_TEST(at_most_once_survives_a_crash_without_redelivery)
{
    char topic[64], group[64], dir[] = "/tmp/ksafe-amo-XXXXXX";
    char out_a[600], out_b[600];
    int count_a[20] = {0}, count_b[20] = {0};
    int status, lines_b = 0, i;
    pid_t a, b;
    time_t deadline;

    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(out_a, sizeof(out_a), "%s/a", dir);
    snprintf(out_b, sizeof(out_b), "%s/b", dir);
    topic_with(topic, sizeof(topic), "loop-amo-crash", 1, 20);
    ksafe_test_unique_name(group, sizeof(group), "loop-amo-crash-g");

    a = spawn_loop_worker(topic, group, out_a, "5");
    ck_assert_int_eq(waitpid(a, &status, 0), a);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "first member: status %d", status);
    ck_assert_int_eq(read_handled(out_a, count_a, 20), 5);

    b = spawn_loop_worker(topic, group, out_b, "0");
    deadline = time(NULL) + 90;
    while (time(NULL) < deadline) {
        int c[20] = {0};
        lines_b = read_handled(out_b, c, 20);
        if (lines_b >= 15)
            break;
        nanosleep(&(struct timespec){0, 200 * 1000000L}, NULL);
    }
    kill(b, SIGTERM);
    ck_assert_int_eq(waitpid(b, &status, 0), b);
    lines_b = read_handled(out_b, count_b, 20);
    for (i = 0; i < 20; i++) {
        ck_assert_msg(count_a[i] + count_b[i] <= 1,
                      "record %d handled %d + %d times", i, count_a[i],
                      count_b[i]);
        ck_assert_msg(count_a[i] + count_b[i] == 1, "record %d never handled",
                      i);
    }
    ck_assert_int_eq(lines_b, 15);
    unlink(out_a);
    unlink(out_b);
    rmdir(dir);
}
END_TEST


/* Counts the loop's "position ... was not committed" warnings. */
static void count_held(int level, const char *fac, const char *msg,
                       void *payload)
{
    (void)level;
    if (!strcmp(fac, "COMMIT") && strstr(msg, "at-most-once"))
        (*(int *)payload)++;
}

typedef struct amo_probe {
    ksafe_consumer *c;
    const char *topic, *group;
    int calls[10];
    int64_t committed_at_call[10];
    int handled;
} amo_probe;

static ksafe_handler_result amo_probe_handler(const ksafe_message *m,
                                              ksafe_error *err, void *payload)
{
    amo_probe *p = payload;
    int64_t committed[1];
    int i = test_value_index(m);

    (void)err;
    p->calls[i]++;
    test_committed(tc, p->topic, p->group, 1, committed);
    p->committed_at_call[i] = committed[0];
    if (++p->handled == 10)
        ksafe_consumer_stop(p->c);
    return KSAFE_HANDLER_OK;
}

/* At-most-once: the handler never sees a record whose position the broker
 * has not acknowledged; commits refused for a while hold the records back
 * (unhandled, not lost, not charged). */
START_TEST(at_most_once_handles_a_record_only_after_its_commit)
{
    char topic[64], group[64];
    ksafe_loop_options lo = KSAFE_LOOP_OPTIONS_INIT;
    rd_kafka_resp_err_t busy[25];
    ksafe_consumer_options co;
    ksafe_loop_stats st;
    ksafe_consumer *c;
    ksafe_error err;
    amo_probe p;
    const char *t;
    int i, held = 0;

    topic_with(topic, sizeof(topic), "loop-amo-commit", 1, 10);
    ksafe_test_unique_name(group, sizeof(group), "loop-amo-commit-g");
    ksafe_test_cluster_consumer_options(tc, &co, group);
    co.log_cb = count_held;
    co.log_payload = &held;
    ck_assert_ok(ksafe_consumer_new(&c, &co, &err), err);
    t = topic;
    ck_assert_ok(ksafe_consumer_subscribe(c, &t, 1, &err), err);
    memset(&p, 0, sizeof(p));
    p.c = c;
    p.topic = topic;
    p.group = group;
    for (i = 0; i < 25; i++)
        busy[i] = RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS;
    /* OffsetCommit (8) refused 25 times: more than one sync commit's own
     * retries take. */
    ck_assert_ok(ksafe_mock_cluster_push_request_errors(
                     ksafe_test_cluster_mock(tc), 8, 25, busy, &err),
                 err);
    lo.handler = amo_probe_handler;
    lo.payload = &p;
    lo.semantics = KSAFE_AT_MOST_ONCE;
    lo.backoff_initial_ms = 50;
    lo.backoff_max_ms = 200;
    lo.stats = &st;
    ck_assert_ok(ksafe_run(c, &lo, &err), err);
    for (i = 0; i < 10; i++) {
        ck_assert_int_eq(p.calls[i], 1);
        ck_assert_msg(p.committed_at_call[i] == i + 1,
                      "record %d handled while %lld was committed", i,
                      (long long)p.committed_at_call[i]);
    }
    ck_assert_uint_eq(st.processed, 10);
    ck_assert_uint_eq(st.failed, 0);
    ck_assert_int_ge(held, 1); /* the refusals did hold records back */
    ksafe_consumer_free(c);
}
END_TEST

typedef struct amo_drop {
    ksafe_consumer *c;
    int held, dropped, handled;
} amo_drop;

/* Stops the loop at its first held batch; counts the dropped records. */
static void amo_drop_log(int level, const char *fac, const char *msg,
                         void *payload)
{
    amo_drop *d = payload;

    (void)level;
    if (!strcmp(fac, "COMMIT") && strstr(msg, "at-most-once") &&
        d->held++ == 0)
        ksafe_consumer_stop(d->c);
    if (!strcmp(fac, "AT-MOST-ONCE") && strstr(msg, "dropped unhandled"))
        d->dropped++;
}

static ksafe_handler_result amo_drop_handler(const ksafe_message *m,
                                             ksafe_error *err, void *payload)
{
    (void)m;
    (void)err;
    ((amo_drop *)payload)->handled++;
    return KSAFE_HANDLER_OK;
}

/* At-most-once marks a batch before its commit: when the commit is refused
 * and the loop stops before the batch comes back, those records may be
 * committed without ever being handled. That is at-most-once's loss, and
 * it must be counted and logged, never silent. */
START_TEST(at_most_once_reports_held_records_dropped_at_stop)
{
    char topic[64], group[64];
    ksafe_loop_options lo = KSAFE_LOOP_OPTIONS_INIT;
    static rd_kafka_resp_err_t busy[400];
    ksafe_consumer_options co;
    ksafe_loop_stats st;
    ksafe_consumer *c;
    ksafe_error err;
    amo_drop d;
    const char *t;
    int i, rc;

    topic_with(topic, sizeof(topic), "loop-amo-drop", 1, 10);
    ksafe_test_unique_name(group, sizeof(group), "loop-amo-drop-g");
    ksafe_test_cluster_consumer_options(tc, &co, group);
    memset(&d, 0, sizeof(d));
    co.log_cb = amo_drop_log;
    co.log_payload = &d;
    ck_assert_ok(ksafe_consumer_new(&c, &co, &err), err);
    d.c = c;
    t = topic;
    ck_assert_ok(ksafe_consumer_subscribe(c, &t, 1, &err), err);
    for (i = 0; i < 400; i++)
        busy[i] = RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS;
    /* OffsetCommit (8): every commit of this test is refused */
    ck_assert_ok(ksafe_mock_cluster_push_request_errors(
                     ksafe_test_cluster_mock(tc), 8, 400, busy, &err),
                 err);
    lo.handler = amo_drop_handler;
    lo.payload = &d;
    lo.semantics = KSAFE_AT_MOST_ONCE;
    lo.stats = &st;
    rc = ksafe_run(c, &lo, &err);
    ck_assert_msg(rc == 0 || rc == KSAFE_ECOMMIT, "ksafe_run: %d %s", rc,
                  err.message);
    ck_assert_int_ge(d.held, 1);
    ck_assert_int_eq(d.handled, 0);
    ck_assert_int_ge(d.dropped, 1);
    ck_assert_uint_eq(st.failed, (uint64_t)d.dropped);
    ck_assert_uint_eq(st.processed, 0);
    ksafe_consumer_free(c);
}
END_TEST

#ifdef TEST_HAVE_SQLITE
/* A store in caller-owned transaction mode has nobody to open its
 * transaction inside the loop: each claim would autocommit and a retried
 * record would come back as a duplicate. The loop refuses it up front. */
START_TEST(dedup_store_in_caller_txn_mode_is_refused)
{
    char path[] = "/tmp/ksafe-loopcaller-XXXXXX", db[600];
    ksafe_loop_options lo = KSAFE_LOOP_OPTIONS_INIT;
    ksafe_dedup_sqlite_options so = KSAFE_DEDUP_SQLITE_OPTIONS_INIT;
    ksafe_consumer_options co = KSAFE_CONSUMER_OPTIONS_INIT;
    ksafe_dedup_store *store;
    ksafe_dedup_key *key;
    ksafe_consumer *c;
    ksafe_error err;
    int rc;

    ck_assert_ptr_nonnull(mkdtemp(path));
    snprintf(db, sizeof(db), "%s/caller.db", path);
    so.path = db;
    so.txn_mode = KSAFE_DEDUP_TXN_CALLER;
    ck_assert_ok(ksafe_dedup_sqlite_new(&store, &so, &err), err);
    ck_assert_ok(ksafe_dedup_key_parse(&key, "position", &err), err);
    co.bootstrap_servers = "127.0.0.1:1";
    co.group_id = "g";
    co.log_cb = test_quiet_log;
    ck_assert_ok(ksafe_consumer_new(&c, &co, &err), err);
    /* A loop that accepted the store would return 0 at once. */
    ksafe_consumer_stop(c);
    lo.handler = record_handler;
    lo.dedup_store = store;
    lo.dedup_key = key;
    memset(&err, 0, sizeof(err));
    rc = ksafe_run(c, &lo, &err);
    ck_assert_msg(rc == KSAFE_EINVAL, "ksafe_run: %d %s", rc, err.message);
    ck_assert_msg(strstr(err.message, "KSAFE_DEDUP_TXN_CALLER") != NULL, "%s",
                  err.message);
    ck_assert_ptr_nonnull(strstr(err.message, "transaction"));
    ksafe_consumer_free(c);
    ksafe_dedup_store_free(store);

    /* The same database with the store owning its transactions is fine. */
    so.txn_mode = KSAFE_DEDUP_TXN_STORE;
    ck_assert_ok(ksafe_dedup_sqlite_new(&store, &so, &err), err);
    ck_assert_ok(ksafe_consumer_new(&c, &co, &err), err);
    ksafe_consumer_stop(c);
    lo.dedup_store = store;
    ck_assert_ok(ksafe_run(c, &lo, &err), err);
    ksafe_consumer_free(c);
    ksafe_dedup_store_free(store);
    ksafe_dedup_key_free(key);
    unlink(db);
    rmdir(path);
}
END_TEST
#endif

#ifdef TEST_HAVE_SQLITE
/* Offsets kept with the effects: a partition assigned to the loop starts
 * where the store says its effects end, not at the group's committed
 * offset. */
START_TEST(dedup_offsets_start_where_the_effects_end)
{
    char topic[64], group[64], path[] = "/tmp/ksafe-loopdb-XXXXXX", db[600];
    ksafe_loop_options lo = KSAFE_LOOP_OPTIONS_INIT;
    ksafe_dedup_sqlite_options so = KSAFE_DEDUP_SQLITE_OPTIONS_INIT;
    ksafe_dedup_store *store;
    ksafe_dedup_key *key;
    ksafe_consumer *c;
    ksafe_error err;
    seen s;
    int i;

    ck_assert_ptr_nonnull(mkdtemp(path));
    snprintf(db, sizeof(db), "%s/effects.db", path);
    topic_with(topic, sizeof(topic), "loop-dboff", 1, 100);
    ksafe_test_unique_name(group, sizeof(group), "loop-dboff-g");
    so.path = db;
    ck_assert_ok(ksafe_dedup_sqlite_new(&store, &so, &err), err);
    /* an earlier run's effects ended at offset 60, its commit never came */
    ck_assert_ok(ksafe_dedup_begin(store, &err), err);
    ck_assert_ok(ksafe_dedup_store_offset(store, group, topic, 0, 60, &err),
                 err);
    ck_assert_ok(ksafe_dedup_commit(store, &err), err);
    ck_assert_ok(ksafe_dedup_key_parse(&key, "position", &err), err);
    c = test_subscribed(tc, topic, group);
    seen_init(&s, c);
    lo.handler = record_handler;
    lo.dedup_store = store;
    lo.dedup_key = key;
    lo.dedup_offsets = 1;
    ck_assert_ok(run(c, &lo, &s, 40, &err), err);
    for (i = 0; i < 60; i++)
        ck_assert_msg(s.calls[i] == 0, "record %d handled again", i);
    for (i = 60; i < 100; i++)
        ck_assert_int_eq(s.ok[i], 1);
    ksafe_consumer_free(c);
    ksafe_dedup_store_free(store);
    ksafe_dedup_key_free(key);
}
END_TEST
#endif

static Suite *loop_suite(void)
{
    Suite *s = suite_create("loop");
    TCase *t = tcase_create("loop");

    tcase_add_unchecked_fixture(t, test_cluster_up, test_cluster_down);
    tcase_set_timeout(t, 120);
    tcase_add_test(t, options_are_validated);
    tcase_add_test(t, processes_and_commits_everything);
    tcase_add_test(t, retry_then_success_marks_after_success);
    tcase_add_test(t, stop_policy_names_the_record_and_commits_nothing_after);
    tcase_add_test(t, dead_letter_holds_record_with_origin_headers);
    tcase_add_test(t, long_retry_keeps_group_membership);
    tcase_add_test(t, batch_partial_success_and_retry);
    tcase_add_test(t, backpressure_pauses_and_resumes);
    tcase_add_test(t, stop_from_signal_commits_what_was_marked);
    tcase_add_test(t, at_most_once_loses_failed_records_by_design);
    tcase_add_test(t, dedup_applies_producer_duplicates_once);
    tcase_add_test(t, dedup_record_without_key_fails_by_policy);
#ifdef TEST_HAVE_SQLITE
    tcase_add_test(t, dedup_offsets_start_where_the_effects_end);
#endif
    suite_add_tcase(s, t);

    /* Found by fuzz-dedup_key (own case: CK_RUN_CASE=dedup-json). */
    t = tcase_create("dedup-json");
    tcase_add_unchecked_fixture(t, test_cluster_up, test_cluster_down);
    tcase_set_timeout(t, 120);
    tcase_add_test(t, dedup_empty_json_key_fails_by_policy);
    suite_add_tcase(s, t);

    /* Regression tests of issue 9 (own case: CK_RUN_CASE=safety). */
    t = tcase_create("safety");
    tcase_add_unchecked_fixture(t, test_cluster_up, test_cluster_down);
    tcase_set_timeout(t, 120);
    tcase_add_test(t, dedup_batch_skip_marks_only_after_earlier_records);
    tcase_add_test(t, store_errors_do_not_consume_attempts);
    tcase_add_test(t, store_that_never_recovers_ends_the_loop);
    tcase_add_test(t, at_most_once_survives_a_crash_without_redelivery);
#ifdef TEST_HAVE_SQLITE
    tcase_add_test(t, dedup_store_in_caller_txn_mode_is_refused);
#endif
    suite_add_tcase(s, t);

    /* Its own cluster: the errors they queue must not reach other tests. */
    t = tcase_create("injected-errors");
    tcase_add_unchecked_fixture(t, test_cluster_up, test_cluster_down);
    tcase_set_tags(t, TEST_EMBEDDED_ONLY);
    tcase_set_timeout(t, 120);
    tcase_add_test(t, refused_group_configuration_ends_the_loop);
    tcase_add_test(t, at_most_once_handles_a_record_only_after_its_commit);
    suite_add_tcase(s, t);

    /* Its own cluster: every commit is refused there. */
    t = tcase_create("refused-commits");
    tcase_add_unchecked_fixture(t, test_cluster_up, test_cluster_down);
    tcase_set_tags(t, TEST_EMBEDDED_ONLY);
    tcase_set_timeout(t, 120);
    tcase_add_test(t, at_most_once_reports_held_records_dropped_at_stop);
    suite_add_tcase(s, t);
    return s;
}

KSAFE_TEST_MAIN(loop_suite)
