/*
 * tests/test_stats_cluster.c - a consumer's on_stats on the embedded
 * cluster: runs on the polling thread, and lag and processed lag go from
 * unknown to 0 as the records are marked, then committed (test
 * `stats-cluster`, KSAFE_STATS_PART=cluster).
 */
#include <pthread.h>

#include "stats_kit.h"

#define PARTS 2
#define RECORDS 60

typedef struct seen {
    pthread_t poller;
    int calls, wrong_thread;
    int64_t hi[PARTS], lag[PARTS], processed_lag[PARTS];
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
        s->assigned[p->partition] = p->assigned;
    }
    free(s->text);
    ck_assert_ok(ksafe_stats_prometheus(&s->text, st, NULL, &err), err);
}

/* Polls (marking nothing) until `done` holds for every partition with
 * records, or 30 s. */
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
    }
    return with_records > 0;
}

static void poll_until(ksafe_consumer *c, seen *s, int what,
                       ksafe_message **keep, int *got)
{
    int64_t deadline = (int64_t)time(NULL) + 30;
    ksafe_error err;

    s->calls = 0;
    while (time(NULL) < deadline) {
        ksafe_message *m;
        ck_assert_ok(ksafe_consumer_poll(c, 50, &m, &err), err);
        if (m) {
            int p = ksafe_message_partition(m);
            ksafe_message_free(keep[p]);
            keep[p] = m; /* the last record of each partition */
            (*got)++;
        }
        if (s->calls >= 2 && *got == RECORDS && settled(s, what))
            return;
    }
    ck_abort_msg("statistics did not settle (phase %d, %d records, %d "
                 "calls)",
                 what, *got, s->calls);
}

START_TEST(lag_falls_to_zero)
{
    ksafe_consumer_options o;
    ksafe_consumer *c;
    ksafe_message *last[PARTS] = {NULL, NULL};
    ksafe_error err;
    char topic[64], expect[256];
    seen s;
    int p, got = 0;
    const char *t = topic;

    memset(&s, 0, sizeof(s));
    s.poller = pthread_self();
    ksafe_test_unique_name(topic, sizeof(topic), "stats");
    ksafe_test_unique_name(s.group, sizeof(s.group), "stats-g");
    ck_assert_ok(ksafe_test_cluster_create_topic(tc, topic, PARTS, &err), err);
    test_produce(tc, topic, 0, RECORDS);

    ksafe_test_cluster_consumer_options(tc, &o, s.group);
    o.log_cb = test_quiet_log;
    o.statistics_interval_ms = 100;
    o.on_stats = keep_stats;
    o.stats_payload = &s;
    ck_assert_ok(ksafe_consumer_new(&c, &o, &err), err);
    ck_assert_ok(ksafe_consumer_subscribe(c, &t, 1, &err), err);

    /* everything polled, nothing marked or committed: lag and processed
     * lag are unknown, not 0 */
    poll_until(c, &s, 0, last, &got);
    for (p = 0; p < PARTS; p++)
        if (s.hi[p] > 0) {
            ck_assert(!ksafe_stats_known(s.lag[p]));
            ck_assert(!ksafe_stats_known(s.processed_lag[p]));
        }
    /* marked: processed lag 0; not committed: lag still unknown */
    for (p = 0; p < PARTS; p++)
        if (last[p])
            ck_assert_ok(ksafe_consumer_done(c, last[p], &err), err);
    poll_until(c, &s, 1, last, &got);
    for (p = 0; p < PARTS; p++)
        if (s.hi[p] > 0)
            ck_assert(!ksafe_stats_known(s.lag[p]));
    /* committed: lag 0 */
    ck_assert_ok(ksafe_consumer_commit(c, KSAFE_COMMIT_SYNC, &err), err);
    poll_until(c, &s, 2, last, &got);
    ck_assert_int_eq(s.wrong_thread, 0);
    for (p = 0; p < PARTS; p++) {
        if (s.hi[p] == 0)
            continue;
        snprintf(expect, sizeof(expect),
                 "\nkafka_consumergroup_lag{consumergroup=\"%s\",topic=\"%s\","
                 "partition=\"%d\"} 0\n",
                 s.group, topic, p);
        ck_assert_msg(strstr(s.text, expect), "no \"%s\" in:\n%s", expect,
                      s.text);
        stats_check_exposition(s.text);
    }
    for (p = 0; p < PARTS; p++)
        ksafe_message_free(last[p]);
    ck_assert_ok(ksafe_consumer_close(c, &err), err);
    ksafe_consumer_free(c);
    free(s.text);
}
END_TEST

TCase *stats_cluster_tcase(void)
{
    TCase *t = tcase_create("cluster");

    tcase_add_unchecked_fixture(t, test_cluster_up, test_cluster_down);
    tcase_add_test(t, lag_falls_to_zero);
    return t;
}
