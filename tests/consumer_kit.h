/*
 * tests/consumer_kit.h - members of one consumer group driven from one
 * thread, shared by the consumer suites.
 */
#ifndef KSAFE_CONSUMER_KIT_H
#define KSAFE_CONSUMER_KIT_H

#include <stdatomic.h>

#include "testutil.h"
/* The loop's internal hook is a field of the consumer. */
#include "../lib/consumer_internal.h"

#define KIT_MAX_PARTS 16

typedef struct member {
    ksafe_consumer *c;
    int owned[KIT_MAX_PARTS];
    int revoked[KIT_MAX_PARTS];  /* revocations seen, per partition */
    int assigned_events, revoked_events, lost_events, loop_lost_calls;
    int64_t first[KIT_MAX_PARTS]; /* first offset after each assignment */
    int64_t seen[KIT_MAX_PARTS];  /* records seen per partition */
    int64_t mark_below;           /* mark records with offset < this */
} member;

static atomic_int kit_err_lines;
static char kit_last_err[512];
static char kit_last_warn[512]; /* the last warning, for failure messages */
static atomic_int kit_revoke_refused; /* "commit on revoke" warnings */

static inline void kit_log(int level, const char *fac, const char *msg, void *p)
{
    (void)p;
    if (getenv("KIT_VERBOSE") && level <= KSAFE_LOG_NOTICE)
        fprintf(stderr, "%ld log %d %s: %s\n", (long)(time(NULL) % 1000), level, fac, msg);
    if (level <= KSAFE_LOG_ERR) {
        atomic_fetch_add(&kit_err_lines, 1);
        snprintf(kit_last_err, sizeof(kit_last_err), "%s: %s", fac, msg);
    } else if (level == KSAFE_LOG_WARNING) {
        snprintf(kit_last_warn, sizeof(kit_last_warn), "%s: %s", fac, msg);
        if (!strcmp(fac, "REVOKE"))
            atomic_fetch_add(&kit_revoke_refused, 1);
    }
}

static inline void kit_on_assigned(ksafe_consumer *c,
                            const rd_kafka_topic_partition_list_t *l,
                            void *payload)
{
    member *m = payload;
    int i;
    (void)c;
    m->assigned_events++;
    for (i = 0; i < l->cnt; i++) {
        m->owned[l->elems[i].partition] = 1;
        m->first[l->elems[i].partition] = -1;
    }
}

static inline void kit_on_revoked(ksafe_consumer *c,
                           const rd_kafka_topic_partition_list_t *l,
                           void *payload)
{
    member *m = payload;
    int i;
    (void)c;
    m->revoked_events++;
    for (i = 0; i < l->cnt; i++) {
        m->owned[l->elems[i].partition] = 0;
        m->revoked[l->elems[i].partition]++;
    }
}

static inline void kit_on_lost(ksafe_consumer *c,
                        const rd_kafka_topic_partition_list_t *l,
                        void *payload)
{
    member *m = payload;
    int i;
    (void)c;
    m->lost_events++;
    for (i = 0; i < l->cnt; i++)
        m->owned[l->elems[i].partition] = 0;
}

static inline void kit_loop_hook(ksafe_consumer *c,
                          const rd_kafka_topic_partition_list_t *l, int lost,
                          void *arg)
{
    member *m = arg;
    (void)c;
    (void)l;
    if (lost)
        m->loop_lost_calls++;
}

/* A member of `group` on `topic`; marks nothing until mark_below is set.
 * `props` replaces the test kit's rdkafka properties when not NULL. */
static inline void kit_join_props(ksafe_test_cluster *tc, member *m,
                                  const char *topic, const char *group,
                                  ksafe_assignment_strategy strategy,
                                  const char *const *props)
{
    ksafe_consumer_options o;
    ksafe_commit_policy never = KSAFE_COMMIT_POLICY_INIT;
    ksafe_error err;
    int i;

    memset(m, 0, sizeof(*m));
    for (i = 0; i < KIT_MAX_PARTS; i++)
        m->first[i] = -1;
    ksafe_test_cluster_consumer_options(tc, &o, group);
    o.log_cb = kit_log;
    o.assignment_strategy = strategy;
    if (props)
        o.rdkafka_properties = props;
    o.on_assigned = kit_on_assigned;
    o.on_revoked = kit_on_revoked;
    o.on_lost = kit_on_lost;
    o.rebalance_payload = m;
    ck_assert_ok(ksafe_consumer_new(&m->c, &o, &err), err);
    m->c->loop_on_revoke = kit_loop_hook;
    m->c->loop_arg = m;
    /* Only revoke/close/explicit commits: tests decide when. */
    never.every_ms = 0;
    ck_assert_ok(ksafe_consumer_set_commit_policy(m->c, &never, &err), err);
    ck_assert_ok(ksafe_consumer_subscribe(m->c, &topic, 1, &err), err);
}

static inline void kit_join(ksafe_test_cluster *tc, member *m, const char *topic,
                     const char *group, ksafe_assignment_strategy strategy)
{
    kit_join_props(tc, m, topic, group, strategy, NULL);
}

/* One short poll of one member; records are counted and maybe marked. */
static inline void kit_poll(member *m, int timeout_ms)
{
    ksafe_message *msg;
    ksafe_error err;
    int32_t p;

    ck_assert_ok(ksafe_consumer_poll(m->c, timeout_ms, &msg, &err), err);
    if (!msg)
        return;
    p = ksafe_message_partition(msg);
    ck_assert_int_lt(p, KIT_MAX_PARTS);
    ck_assert_msg(m->owned[p], "record of partition %d not assigned", p);
    if (m->first[p] < 0)
        m->first[p] = ksafe_message_offset(msg);
    m->seen[p]++;
    if (ksafe_message_offset(msg) < m->mark_below)
        ck_assert_ok(ksafe_consumer_done(m->c, msg, &err), err);
    ksafe_message_free(msg);
}

/* No partition has two owners; returns how many are owned, and the count of
 * each member in `per` (may be NULL). */
static inline int kit_owned(member *ms, int n, int parts, int *per)
{
    int p, i, total = 0;

    for (i = 0; per && i < n; i++)
        per[i] = 0;
    for (p = 0; p < parts; p++) {
        int owners = 0;
        for (i = 0; i < n; i++)
            if (ms[i].c && ms[i].owned[p]) {
                owners++;
                if (per)
                    per[i]++;
            }
        ck_assert_msg(owners <= 1, "partition %d has %d owners", p, owners);
        total += owners;
    }
    return total;
}

/* Polls every live member in turn until each of them owns parts/live
 * partitions (and every partition has one owner), or 60 s. */
static inline void kit_settle(member *ms, int n, int parts)
{
    time_t deadline = time(NULL) + 60;
    int per[8], live = 0, i, balanced = 0;

    for (i = 0; i < n; i++)
        live += ms[i].c != NULL;
    while (time(NULL) < deadline) {
        for (i = 0; i < n; i++)
            if (ms[i].c)
                kit_poll(&ms[i], 20);
        balanced = kit_owned(ms, n, parts, per) == parts;
        for (i = 0; i < n && balanced; i++)
            if (ms[i].c && per[i] != parts / live)
                balanced = 0;
        if (balanced)
            break;
    }
    ck_assert_msg(balanced, "group did not settle on %d partitions over %d "
                  "members in 60 s", parts, live);
    /* A cooperative rebalance ends with a follow-up join: wait until no
     * hook has run for a while. */
    for (;;) {
        int events = 0, before = -1;
        time_t quiet = time(NULL) + 2;
        while (time(NULL) < quiet && time(NULL) < deadline) {
            for (events = 0, i = 0; i < n; i++)
                if (ms[i].c) {
                    kit_poll(&ms[i], 20);
                    events += ms[i].assigned_events + ms[i].revoked_events +
                              ms[i].lost_events;
                }
            if (before < 0)
                before = events;
        }
        if (events == before || time(NULL) >= deadline)
            break;
    }
    ck_assert_int_eq(kit_owned(ms, n, parts, NULL), parts);
}

static inline void kit_leave(member *m)
{
    ksafe_error err;
    ck_assert_ok(ksafe_consumer_close(m->c, &err), err);
    ksafe_consumer_free(m->c);
    m->c = NULL;
}

/* Sends `per_part` records to each partition of `topic`. */
static inline void kit_produce(ksafe_test_cluster *tc, const char *topic, int parts,
                        int per_part)
{
    ksafe_producer_options o;
    ksafe_producer *p;
    ksafe_error err;
    int i, k;

    ksafe_test_cluster_producer_options(tc, &o);
    o.log_cb = test_quiet_log;
    ck_assert_ok(ksafe_producer_new(&p, &o, &err), err);
    for (k = 0; k < per_part; k++)
        for (i = 0; i < parts; i++) {
            ksafe_record r = KSAFE_RECORD_INIT;
            r.topic = topic;
            r.partition = i;
            r.value = "v";
            r.value_len = 1;
            ck_assert_ok(ksafe_producer_send(p, &r, &err), err);
        }
    ck_assert_ok(ksafe_producer_flush(p, 30000, &err), err);
    ck_assert_ok(ksafe_producer_close(p, &err), err);
    ksafe_producer_free(p);
}

#endif
