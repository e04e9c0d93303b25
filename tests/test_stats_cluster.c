/*
 * tests/test_stats_cluster.c - a consumer's on_stats on the embedded
 * cluster: runs on the polling thread; lag and processed lag go from
 * unknown through the exact half to 0 as the records are marked, then
 * committed; a partition given to another member is left out of the page;
 * a closed (or, issue 4312, kept) consumer stops queuing documents (test
 * `stats-cluster`, KSAFE_STATS_PART=cluster).
 */
#include <pthread.h>
#include <time.h>

#include <ksafe/mock.h>

#include "stats_kit.h"

#define PARTS 2
#define RECORDS 60

typedef struct seen {
    pthread_t poller;
    int calls, wrong_thread;
    int64_t hi[PARTS], lag[PARTS], processed_lag[PARTS], marked[PARTS];
    int64_t want[PARTS]; /* phases 3 and 4: the marked position */
    int assigned[PARTS];
    char group[64];
    char *text; /* the last Prometheus rendering */
} seen;

static void keep_stats(ksafe_consumer *c, const ksafe_stats *st, void *arg)
{
    seen *s = arg;
    ksafe_error err;
    size_t i;

    (void)c;
    s->calls++;
    if (!pthread_equal(pthread_self(), s->poller))
        s->wrong_thread++;
    ck_assert_str_eq(st->group_id, s->group);
    for (i = 0; i < st->partition_count; i++) {
        const ksafe_stats_partition *p = &st->partitions[i];
        if (p->partition >= PARTS)
            continue;
        s->hi[p->partition] = p->high_watermark;
        s->lag[p->partition] = p->lag;
        s->processed_lag[p->partition] = p->processed_lag;
        s->marked[p->partition] = p->marked_offset;
        s->assigned[p->partition] = p->assigned;
    }
    free(s->text);
    ck_assert_ok(ksafe_stats_prometheus(&s->text, st, NULL, &err), err);
}

/* Polls (marking nothing) until phase `what` holds for every partition
 * with records, or 30 s: 0 all polled, 1 processed lag 0, 2 lag 0, 3
 * processed lag hi - want, 4 lag hi - want. */
static int settled(const seen *s, int what)
{
    int p, with_records = 0;

    for (p = 0; p < PARTS; p++) {
        if (s->assigned[p] != 1 || !ksafe_stats_known(s->hi[p]))
            return 0;
        if (s->hi[p] == 0)
            continue;
        with_records++;
        if (what == 0 && !ksafe_stats_known(s->processed_lag[p]))
            continue; /* consuming */
        if (what == 1 && s->processed_lag[p] != 0)
            return 0;
        if (what == 2 && s->lag[p] != 0)
            return 0;
        if (what == 3 && s->processed_lag[p] != s->hi[p] - s->want[p])
            return 0;
        if (what == 4 && s->lag[p] != s->hi[p] - s->want[p])
            return 0;
    }
    return with_records > 0;
}

/* Every record polled, by partition and offset (RECORDS at most). */
typedef struct polled {
    ksafe_message *m[PARTS][RECORDS];
    int n[PARTS];
} polled;

static void poll_until(ksafe_consumer *c, seen *s, int what, polled *keep,
                       int *got)
{
    int64_t deadline = (int64_t)time(NULL) + 30;
    ksafe_error err;

    s->calls = 0;
    while (time(NULL) < deadline) {
        ksafe_message *m;
        ck_assert_ok(ksafe_consumer_poll(c, 50, &m, &err), err);
        if (m) {
            int p = ksafe_message_partition(m);
            ck_assert(p < PARTS && keep->n[p] < RECORDS);
            keep->m[p][keep->n[p]++] = m;
            (*got)++;
        }
        if (s->calls >= 2 && *got == RECORDS && settled(s, what))
            return;
    }
    ck_abort_msg("statistics did not settle (phase %d, %d records, %d "
                 "calls)",
                 what, *got, s->calls);
}

/* The line `family{consumergroup,topic,partition} value` is in s->text. */
static void assert_line(const seen *s, const char *family, const char *topic,
                        int p, int64_t value)
{
    char expect[320];

    snprintf(expect, sizeof(expect),
             "\n%s{consumergroup=\"%s\",topic=\"%s\",partition=\"%d\"} "
             "%lld\n",
             family, s->group, topic, p, (long long)value);
    ck_assert_msg(strstr(s->text, expect), "no \"%s\" in:\n%.1500s", expect,
                  s->text);
}

/* A fresh topic of PARTS partitions holding RECORDS records, and a
 * consumer of it in a fresh group whose statistics land in `s`. */
static ksafe_consumer *stats_consumer(seen *s, char *topic, size_t size,
                                      const char *prefix)
{
    ksafe_consumer_options o;
    ksafe_consumer *c;
    ksafe_error err;
    char group[64];
    const char *t = topic;

    memset(s, 0, sizeof(*s));
    s->poller = pthread_self();
    ksafe_test_unique_name(topic, size, prefix);
    snprintf(group, sizeof(group), "%s-g", prefix);
    ksafe_test_unique_name(s->group, sizeof(s->group), group);
    ck_assert_ok(ksafe_test_cluster_create_topic(tc, topic, PARTS, &err), err);
    test_produce(tc, topic, 0, RECORDS);
    ksafe_test_cluster_consumer_options(tc, &o, s->group);
    o.log_cb = test_quiet_log;
    o.statistics_interval_ms = 100;
    o.on_stats = keep_stats;
    o.stats_payload = s;
    ck_assert_ok(ksafe_consumer_new(&c, &o, &err), err);
    ck_assert_ok(ksafe_consumer_subscribe(c, &t, 1, &err), err);
    return c;
}

START_TEST(lag_falls_to_zero)
{
    polled *got_m = calloc(1, sizeof(*got_m));
    ksafe_consumer *c;
    ksafe_error err;
    char topic[64];
    seen s;
    int p, i, got = 0;

    ck_assert_ptr_nonnull(got_m);
    c = stats_consumer(&s, topic, sizeof(topic), "stats");

    /* everything polled, nothing marked or committed: lag and processed
     * lag are unknown, not 0 */
    poll_until(c, &s, 0, got_m, &got);
    for (p = 0; p < PARTS; p++)
        if (s.hi[p] > 0) {
            ck_assert(!ksafe_stats_known(s.lag[p]));
            ck_assert(!ksafe_stats_known(s.processed_lag[p]));
        }
    /* half of each partition marked: processed lag is what is left after
     * the record marked, exactly */
    for (p = 0; p < PARTS; p++) {
        const ksafe_message *half;

        if (!got_m->n[p])
            continue;
        ck_assert_int_eq(got_m->n[p], s.hi[p]); /* offsets 0..hi-1 */
        half = got_m->m[p][(got_m->n[p] - 1) / 2];
        s.want[p] = ksafe_message_offset(half) + 1;
        ck_assert_ok(ksafe_consumer_done(c, half, &err), err);
    }
    poll_until(c, &s, 3, got_m, &got);
    for (p = 0; p < PARTS; p++) {
        if (s.hi[p] == 0)
            continue;
        ck_assert_int_eq(s.marked[p], s.want[p]);
        ck_assert_int_eq(s.processed_lag[p], s.hi[p] - s.want[p]);
        ck_assert(s.processed_lag[p] > 0);
        ck_assert(!ksafe_stats_known(s.lag[p])); /* not committed */
        assert_line(&s, "ksafe_consumergroup_processed_lag", topic, p,
                    s.hi[p] - s.want[p]);
        assert_line(&s, "ksafe_consumergroup_marked_offset", topic, p,
                    s.want[p]);
    }
    /* the half committed: lag is the other half */
    ck_assert_ok(ksafe_consumer_commit(c, KSAFE_COMMIT_SYNC, &err), err);
    poll_until(c, &s, 4, got_m, &got);
    for (p = 0; p < PARTS; p++)
        if (s.hi[p] > 0)
            assert_line(&s, "kafka_consumergroup_lag", topic, p,
                        s.hi[p] - s.want[p]);
    /* all marked: processed lag 0; lag still the committed half's */
    for (p = 0; p < PARTS; p++)
        if (got_m->n[p])
            ck_assert_ok(ksafe_consumer_done(c, got_m->m[p][got_m->n[p] - 1],
                                             &err),
                         err);
    poll_until(c, &s, 1, got_m, &got);
    for (p = 0; p < PARTS; p++)
        if (s.hi[p] > 0)
            ck_assert_int_eq(s.lag[p], s.hi[p] - s.want[p]);
    /* committed: lag 0 */
    ck_assert_ok(ksafe_consumer_commit(c, KSAFE_COMMIT_SYNC, &err), err);
    poll_until(c, &s, 2, got_m, &got);
    ck_assert_int_eq(s.wrong_thread, 0);
    for (p = 0; p < PARTS; p++) {
        if (s.hi[p] == 0)
            continue;
        assert_line(&s, "kafka_consumergroup_lag", topic, p, 0);
        stats_check_exposition(s.text);
    }
    for (p = 0; p < PARTS; p++)
        for (i = 0; i < got_m->n[p]; i++)
            ksafe_message_free(got_m->m[p][i]);
    free(got_m);
    ck_assert_ok(ksafe_consumer_close(c, &err), err);
    ksafe_consumer_free(c);
    free(s.text);
}
END_TEST

/* ---- a partition that went to another member --------------------------- */

/* Polls `c`, marking what it gets; 1 when it got a record. */
static int poll_mark(ksafe_consumer *c)
{
    ksafe_message *m;
    ksafe_error err;

    ck_assert_ok(ksafe_consumer_poll(c, 50, &m, &err), err);
    if (!m)
        return 0;
    ck_assert_ok(ksafe_consumer_done(c, m, &err), err);
    ksafe_message_free(m);
    return 1;
}

/* One member's partition -1 aside: which of PARTS it holds. */
static int split_seen(const seen *s, int *kept, int *gone)
{
    int p;

    *kept = *gone = -1;
    for (p = 0; p < PARTS; p++) {
        if (s->assigned[p] == 1)
            *kept = p;
        else if (s->assigned[p] == 0)
            *gone = p;
    }
    return *kept >= 0 && *gone >= 0;
}

/*
 * A holds both partitions and commits them; B joins and takes one. A's
 * statistics still list the one it gave away, with the values of A's
 * last fetch and commit: rendered, they are a lag that never moves and
 * that B's page counts again. A's page leaves it out; the struct keeps
 * it with assigned 0.
 */
START_TEST(revoked_partition_is_not_rendered)
{
    ksafe_consumer *a, *b;
    ksafe_error err;
    char topic[64], where[32];
    seen s;
    int got = 0, kept, gone, calls;
    int64_t deadline;

    a = stats_consumer(&s, topic, sizeof(topic), "stats-two");
    deadline = (int64_t)time(NULL) + 30;
    while (got < RECORDS && (int64_t)time(NULL) < deadline)
        got += poll_mark(a);
    ck_assert_int_eq(got, RECORDS);
    ck_assert_ok(ksafe_consumer_commit(a, KSAFE_COMMIT_SYNC, &err), err);

    b = test_subscribed(tc, topic, s.group);
    deadline = (int64_t)time(NULL) + 60;
    calls = -1;
    while ((int64_t)time(NULL) < deadline) {
        poll_mark(a);
        poll_mark(b);
        if (calls < 0 && split_seen(&s, &kept, &gone))
            calls = s.calls;
        if (calls >= 0 && s.calls >= calls + 3)
            break; /* a few documents since the split */
    }
    ck_assert_msg(split_seen(&s, &kept, &gone),
                  "A's statistics never showed one partition kept and one "
                  "given away (assigned %d, %d)",
                  s.assigned[0], s.assigned[1]);
    snprintf(where, sizeof(where), "partition=\"%d\"", gone);
    ck_assert_msg(!strstr(s.text, where),
                  "A renders partition %d, now B's: %.300s", gone,
                  strstr(s.text, where));
    snprintf(where, sizeof(where), "partition=\"%d\"", kept);
    if (s.hi[kept] > 0)
        ck_assert_msg(strstr(s.text, where), "A leaves out its partition %d",
                      kept);
    stats_check_exposition(s.text);
    ck_assert_ok(ksafe_consumer_close(b, &err), err);
    ksafe_consumer_free(b);
    ck_assert_ok(ksafe_consumer_close(a, &err), err);
    ksafe_consumer_free(a);
    free(s.text);
}
END_TEST

/* ---- a closed consumer stops queuing statistics ------------------------ */

static void count_stats(ksafe_consumer *c, const ksafe_stats *st, void *arg)
{
    (void)c;
    (void)st;
    (*(int *)arg)++;
}

/* Notes close's "handle is kept" (issue 4312) message. */
static void note_parked(int level, const char *facility, const char *message,
                        void *payload)
{
    (void)level;
    (void)facility;
    if (strstr(message, "issue 4312"))
        *(int *)payload = 1;
}

/*
 * librdkafka emits a document every interval until the handle is
 * destroyed; after close nobody polls. _i 0: an ordinary close, measured
 * before free. _i 1: issue 4312's close (every SyncGroup refused, so the
 * member has joined and never been assigned): on librdkafka < 2.3 close
 * keeps the handle until the process exits, and the queue would grow by
 * one document an interval for ever. Either way: bounded, and on_stats is
 * not called after close.
 */
START_TEST(closed_consumer_stops_queuing_statistics)
{
    rd_kafka_resp_err_t errs[400];
    ksafe_mock_cluster *mc;
    ksafe_consumer_options o = KSAFE_CONSUMER_OPTIONS_INIT;
    ksafe_consumer *c;
    ksafe_message *m;
    ksafe_error err;
    const char *topic = "parked";
    int calls = 0, before, most = 0, len, k, parked = 0;
    int64_t end;
    rd_kafka_t *rk;
    size_t i;

    ck_assert_ok(ksafe_mock_cluster_new(&mc, 1, &err), err);
    ck_assert_ok(ksafe_mock_cluster_create_topic(mc, topic, 2, &err), err);
    if (_i == 1) {
        for (i = 0; i < 400; i++)
            errs[i] = RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS;
        ck_assert_ok(ksafe_mock_cluster_push_request_errors(mc, 14, 400, errs,
                                                            &err),
                     err); /* 14: SyncGroup */
    }
    o.bootstrap_servers = ksafe_mock_cluster_bootstrap(mc);
    o.group_id = "parked-g";
    o.statistics_interval_ms = 100;
    o.on_stats = count_stats;
    o.stats_payload = &calls;
    o.log_cb = note_parked;
    o.log_payload = &parked;
    o.session_timeout_ms = 6000;
    o.heartbeat_interval_ms = 2000;
    ck_assert_ok(ksafe_consumer_new(&c, &o, &err), err);
    ck_assert_ok(ksafe_consumer_subscribe(c, &topic, 1, &err), err);
    end = (int64_t)time(NULL) + (_i ? 5 : 3); /* 5: JoinGroup answered */
    while ((int64_t)time(NULL) < end) {
        ck_assert_ok(ksafe_consumer_poll(c, 50, &m, &err), err);
        ksafe_message_free(m);
    }
    ck_assert_int_gt(calls, 5); /* statistics are on */
    rk = ksafe_consumer_rdkafka(c);
    ck_assert_ok(ksafe_consumer_close(c, &err), err);
    before = calls;
    for (k = 0; k < 15; k++) { /* 1.5 s: 15 intervals */
        struct timespec tick = {0, 100 * 1000 * 1000};
        nanosleep(&tick, NULL);
        len = rd_kafka_outq_len(rk);
        most = len > most ? len : most;
    }
    ck_assert_msg(most <= 3, "%d events queued after close (%s)", most,
                  rd_kafka_version_str());
    ck_assert_int_eq(calls, before);
    /* the case is the one meant: librdkafka < 2.3 kept the handle */
    if (_i == 1)
        ck_assert_int_eq(parked, rd_kafka_version() < 0x020300ff);
    ksafe_consumer_free(c);
    ksafe_mock_cluster_free(mc);
}
END_TEST

TCase *stats_cluster_tcase(void)
{
    TCase *t = tcase_create("cluster");

    tcase_add_unchecked_fixture(t, test_cluster_up, test_cluster_down);
    tcase_add_test(t, lag_falls_to_zero);
    tcase_add_test(t, revoked_partition_is_not_rendered);
    tcase_add_loop_test(t, closed_consumer_stops_queuing_statistics, 0, 2);
    return t;
}
