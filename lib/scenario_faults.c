/*
 * lib/scenario_faults.c - the scenario kit's faults: refused commits and
 * produces, a broker outage for a while, a slow broker, a moved
 * coordinator (all on the embedded cluster), and a rebalance forced by a
 * member that joins for a while and leaves (on any cluster).
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"

static int embedded(ksafe_test_cluster *tc, const char *what,
                    ksafe_mock_cluster **out, ksafe_error *err)
{
    if (!tc)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0, "%s: cluster is NULL",
                                what);
    if (!(*out = ksafe_test_cluster_mock(tc)))
        return ksafe__error_set(err, KSAFE_ESTATE, 0, 0,
                                "%s needs the embedded cluster, and this "
                                "test runs against %s",
                                what, ksafe_test_cluster_bootstrap(tc));
    return 0;
}

static int fail_requests(ksafe_test_cluster *tc, int api_key, const char *what,
                         size_t count, rd_kafka_resp_err_t code,
                         ksafe_error *err)
{
    ksafe_mock_cluster *mc;
    rd_kafka_resp_err_t *codes;
    size_t i;
    int rc;

    if ((rc = embedded(tc, what, &mc, err)))
        return rc;
    if (!count)
        return 0;
    if (count > 100000)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "%s: count %zu is above 100000", what, count);
    if (!(codes = malloc(count * sizeof(*codes))))
        return ksafe__error_set(err, KSAFE_ENOMEM, 0, 0, "out of memory");
    for (i = 0; i < count; i++)
        codes[i] = code;
    rc = ksafe_mock_cluster_push_request_errors(mc, api_key, count, codes, err);
    free(codes);
    return rc;
}

int ksafe_test_fail_commits(ksafe_test_cluster *tc, size_t count,
                            rd_kafka_resp_err_t code, ksafe_error *err)
{
    return fail_requests(tc, 8 /* OffsetCommit */, "fail_commits", count, code,
                         err);
}

int ksafe_test_fail_produces(ksafe_test_cluster *tc, size_t count,
                             rd_kafka_resp_err_t code, ksafe_error *err)
{
    return fail_requests(tc, 0 /* Produce */, "fail_produces", count, code,
                         err);
}

static void sleep_ms(int ms)
{
    struct timespec ts;

    ts.tv_sec = ms / 1000;
    ts.tv_nsec = (long)(ms % 1000) * 1000000L;
    while (nanosleep(&ts, &ts))
        ;
}

int ksafe_test_broker_outage(ksafe_test_cluster *tc, int broker_id,
                             int duration_ms, ksafe_error *err)
{
    ksafe_mock_cluster *mc;
    int rc;

    if ((rc = embedded(tc, "broker_outage", &mc, err)))
        return rc;
    if (duration_ms < 0)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "broker_outage: duration_ms is %d",
                                duration_ms);
    if ((rc = ksafe_mock_cluster_broker_down(mc, broker_id, err)))
        return rc;
    sleep_ms(duration_ms);
    return ksafe_mock_cluster_broker_up(mc, broker_id, err);
}

int ksafe_test_set_rtt(ksafe_test_cluster *tc, int broker_id, int rtt_ms,
                       ksafe_error *err)
{
    ksafe_mock_cluster *mc;
    int rc;

    if ((rc = embedded(tc, "set_rtt", &mc, err)))
        return rc;
    return ksafe_mock_cluster_set_rtt(mc, broker_id, rtt_ms, err);
}

int ksafe_test_move_coordinator(ksafe_test_cluster *tc, const char *group,
                                int broker_id, ksafe_error *err)
{
    ksafe_mock_cluster *mc;
    int rc;

    if ((rc = embedded(tc, "move_coordinator", &mc, err)))
        return rc;
    return ksafe_mock_cluster_set_coordinator(mc, group, broker_id, err);
}

/* ---- a member that joins for a while ----------------------------------- */

/* Partitions the second member holds. Cooperative assignment hands a new
 * member nothing in its first round and its share in the next, so a join
 * counts only once something arrived. No atomics needed: the hooks run
 * inside ksafe_consumer_poll(), on the thread that reads the count. */
static void gained(ksafe_consumer *c,
                   const rd_kafka_topic_partition_list_t *parts, void *payload)
{
    KSAFE__UNUSED(c);
    *(int *)payload += parts->cnt;
}

static void dropped(ksafe_consumer *c,
                    const rd_kafka_topic_partition_list_t *parts,
                    void *payload)
{
    KSAFE__UNUSED(c);
    *(int *)payload -= parts->cnt;
}

static void quiet(int level, const char *fac, const char *msg, void *p)
{
    KSAFE__UNUSED(level);
    KSAFE__UNUSED(fac);
    KSAFE__UNUSED(msg);
    KSAFE__UNUSED(p);
}

/* Polls for ms (or, with `held`, until it is above 0), dropping every
 * record unmarked. */
static void poll_for(ksafe_consumer *c, int ms, const int *held)
{
    int64_t deadline = ksafe__now_ms() + ms;

    while (ksafe__now_ms() < deadline && !(held && *held > 0)) {
        ksafe_message *m = NULL;
        if (ksafe_consumer_poll(c, 50, &m, NULL) == 0 && m)
            ksafe_message_free(m);
    }
}

int ksafe_test_rebalance(ksafe_test_cluster *tc,
                         const ksafe_consumer_options *like, const char *topic,
                         int stay_ms, ksafe_error *err)
{
    ksafe_consumer_options o;
    ksafe_consumer *c;
    int held = 0, rc;

    if (!tc || !like || !topic || stay_ms < 0)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0, "rebalance: %s",
                                !tc     ? "cluster is NULL"
                                : !like ? "options (like) are NULL"
                                : !topic ? "topic is NULL"
                                         : "stay_ms is negative");
    o = *like;
    o.on_assigned = gained;
    o.on_revoked = dropped;
    o.on_lost = dropped;
    o.rebalance_payload = &held;
    o.log_cb = quiet;
    o.group_instance_id = NULL; /* a second member, not a restart of one */
    if ((rc = ksafe_consumer_new(&c, &o, err)))
        return rc;
    if ((rc = ksafe_consumer_subscribe(c, &topic, 1, err))) {
        ksafe_consumer_free(c);
        return rc;
    }
    poll_for(c, 30000, &held);
    if (held <= 0) {
        ksafe_consumer_free(c);
        return ksafe__error_set(err, KSAFE_ETIMEDOUT, 0, 0,
                                "rebalance: the second member of group %s "
                                "was given no partition of %s in 30 s (it "
                                "needs more partitions than members)",
                                like->group_id ? like->group_id : "(none)",
                                topic);
    }
    poll_for(c, stay_ms, NULL);
    rc = ksafe_consumer_close(c, err);
    ksafe_consumer_free(c);
    return rc;
}
