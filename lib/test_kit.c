/*
 * lib/test_kit.c - the test kit: the cluster a test runs against (embedded
 * or KSAFE_TEST_BOOTSTRAP), unique names, and client options with timings
 * that keep tests fast on either kind of cluster.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

struct ksafe_test_cluster {
    ksafe_mock_cluster *mock; /* NULL on a real cluster */
    char *bootstrap;
};

/*
 * Client settings that keep tests fast on either cluster. The mock holds an
 * empty fetch for the whole fetch.wait.max.ms (default 500 ms); with the
 * default 10 s reconnect backoff a record sent just after start-up can
 * time out.
 */
static const char *const test_producer_props[] = {
    "reconnect.backoff.max.ms", "500", NULL};
static const char *const test_consumer_props[] = {
    "fetch.wait.max.ms", "10", "reconnect.backoff.max.ms", "500", NULL};

int ksafe_test_cluster_new(ksafe_test_cluster **out, ksafe_error *err)
{
    return ksafe_test_cluster_new_brokers(out, 1, err);
}

int ksafe_test_cluster_new_brokers(ksafe_test_cluster **out, int broker_count,
                                   ksafe_error *err)
{
    ksafe_test_cluster *tc;
    const char *env = getenv(KSAFE_TEST_BOOTSTRAP_ENV);
    int rc;

    ksafe_group_protocol protocol;

    if (!out)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0, "out is NULL");
    *out = NULL;
    if (broker_count < 1 || broker_count > 16)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "broker_count is %d, outside 1..16",
                                broker_count);
    if ((rc = ksafe_test_group_protocol(&protocol, err)))
        return rc;
    if (!(tc = calloc(1, sizeof(*tc))))
        return ksafe__error_set(err, KSAFE_ENOMEM, 0, 0, "out of memory");
    if (env && *env) {
        tc->bootstrap = ksafe__strdup(env);
    } else {
        if ((rc = ksafe_mock_cluster_new(&tc->mock, broker_count, err))) {
            free(tc);
            return rc;
        }
        tc->bootstrap = ksafe__strdup(ksafe_mock_cluster_bootstrap(tc->mock));
    }
    if (!tc->bootstrap) {
        ksafe_test_cluster_free(tc);
        return ksafe__error_set(err, KSAFE_ENOMEM, 0, 0, "out of memory");
    }
    *out = tc;
    return 0;
}

int ksafe_test_cluster_is_embedded(const ksafe_test_cluster *tc)
{
    return tc && tc->mock;
}

const char *ksafe_test_cluster_bootstrap(const ksafe_test_cluster *tc)
{
    return tc ? tc->bootstrap : NULL;
}

ksafe_mock_cluster *ksafe_test_cluster_mock(ksafe_test_cluster *tc)
{
    return tc ? tc->mock : NULL;
}

int ksafe_test_cluster_create_topic(ksafe_test_cluster *tc, const char *topic,
                                    int partitions, ksafe_error *err)
{
    if (!tc || !topic || !*topic || partitions < 1)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "create_topic needs a cluster, a name and at "
                                "least one partition");
    if (tc->mock) {
        ksafe_error e;
        int rc = ksafe_mock_cluster_create_topic(tc->mock, topic, partitions,
                                                 &e);
        /* There already: the check below compares its partition count. */
        if (rc && e.rdkafka_code != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
            if (err)
                *err = e;
            return rc;
        }
    }
    return ksafe_cluster_ensure_topic(tc->bootstrap, topic, partitions, 30000,
                                      err);
}

void ksafe_test_unique_name(char *buf, size_t size, const char *prefix)
{
    static atomic_uint counter;
    struct timespec ts;

    if (!buf || !size)
        return;
    clock_gettime(CLOCK_REALTIME, &ts);
    snprintf(buf, size, "%s-%ld-%u-%lx", prefix ? prefix : "ksafe",
             (long)getpid(), atomic_fetch_add(&counter, 1) + 1,
             (unsigned long)(ts.tv_nsec ^ ts.tv_sec));
}

void ksafe_test_cluster_producer_options(ksafe_test_cluster *tc,
                                         ksafe_producer_options *opts)
{
    if (!opts)
        return;
    ksafe_producer_options_init(opts, KSAFE_PRODUCER_OPTIONS_VERSION);
    opts->bootstrap_servers = ksafe_test_cluster_bootstrap(tc);
    opts->rdkafka_properties = test_producer_props;
}

ksafe_test_timing ksafe_test_group_timing(int embedded)
{
    /* The embedded cluster waits session - 1 s at every join; below ~3000
     * its group never forms. A stock broker refuses a session below its
     * group.min.session.timeout.ms (6000 by default). */
    ksafe_test_timing t;

    t.session_timeout_ms = embedded ? 4000 : 6000;
    t.heartbeat_interval_ms = embedded ? 500 : 1000;
    return t;
}

int ksafe_test_group_protocol(ksafe_group_protocol *out, ksafe_error *err)
{
    const char *env = getenv(KSAFE_TEST_GROUP_PROTOCOL_ENV);

    if (!out)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0, "out is NULL");
    *out = KSAFE_GROUP_PROTOCOL_CLASSIC;
    if (!env || !*env || strcmp(env, "classic") == 0)
        return 0;
    if (strcmp(env, "consumer") == 0) {
        *out = KSAFE_GROUP_PROTOCOL_CONSUMER;
        return 0;
    }
    return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                            "%s is \"%.64s\": use \"classic\" or "
                            "\"consumer\" (KIP-848)",
                            KSAFE_TEST_GROUP_PROTOCOL_ENV, env);
}

int ksafe_test_consumer_group(ksafe_consumer_options *opts,
                              ksafe_test_timing t, ksafe_error *err)
{
    ksafe_group_protocol protocol;
    int rc;

    if (!opts)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0, "opts is NULL");
    if ((rc = ksafe_test_group_protocol(&protocol, err)))
        return rc;
    opts->group_protocol = protocol;
    if (protocol == KSAFE_GROUP_PROTOCOL_CLASSIC) {
        opts->session_timeout_ms = t.session_timeout_ms;
        opts->heartbeat_interval_ms = t.heartbeat_interval_ms;
    }
    return 0;
}

void ksafe_test_cluster_consumer_options(ksafe_test_cluster *tc,
                                         ksafe_consumer_options *opts,
                                         const char *group_id)
{
    ksafe_test_timing t =
        ksafe_test_group_timing(ksafe_test_cluster_is_embedded(tc));

    if (!opts)
        return;
    ksafe_consumer_options_init(opts, KSAFE_CONSUMER_OPTIONS_VERSION);
    opts->bootstrap_servers = ksafe_test_cluster_bootstrap(tc);
    opts->group_id = group_id;
    /* ksafe_test_cluster_new() refused an unknown protocol already. */
    (void)ksafe_test_consumer_group(opts, t, NULL);
    opts->max_poll_interval_ms = 30000;
    opts->rdkafka_properties = test_consumer_props;
}

void ksafe_test_cluster_free(ksafe_test_cluster *tc)
{
    if (!tc)
        return;
    ksafe_mock_cluster_free(tc->mock);
    free(tc->bootstrap);
    free(tc);
}
