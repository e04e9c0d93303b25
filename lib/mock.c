/*
 * lib/mock.c - the embedded cluster: librdkafka's mock cluster behind our
 * API. The only file that calls rdkafka_mock.h: the mock is experimental
 * API, and its quirks (measured on 2.0.2 and 2.15.1) stay here. Topics on
 * any cluster are in cluster_topics.c, the test kit in test_kit.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "rdkafka_versions.h"

struct ksafe_mock_cluster {
    rd_kafka_t *rk; /* owns the mock cluster's threads */
    rd_kafka_mock_cluster_t *mcluster;
    char *bootstrap;
    int broker_count;
};

void ksafe__mock_quiet_log(const rd_kafka_t *rk, int level, const char *fac,
                      const char *buf)
{
    KSAFE__UNUSED(rk);
    if (level <= KSAFE_LOG_ERR)
        fprintf(stderr, "ksafe mock %s: %s\n", fac, buf);
}

int ksafe_mock_cluster_new(ksafe_mock_cluster **out, int broker_count,
                           ksafe_error *err)
{
    ksafe_mock_cluster *mc;
    rd_kafka_conf_t *conf;
    char errstr[256];
    int rc;

    if (!out)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0, "out is NULL");
    *out = NULL;
    if (broker_count < 1 || broker_count > 16)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "broker_count is %d, outside 1..16",
                                broker_count);
    if ((rc = ksafe__rdkafka_version_check(err)))
        return rc;
    if (!(mc = calloc(1, sizeof(*mc))))
        return ksafe__error_set(err, KSAFE_ENOMEM, 0, 0, "out of memory");
    conf = rd_kafka_conf_new();
    rd_kafka_conf_set_log_cb(conf, ksafe__mock_quiet_log);
    mc->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    if (!mc->rk) {
        rd_kafka_conf_destroy(conf);
        free(mc);
        return ksafe__error_set(err, KSAFE_EKAFKA, 0, 0,
                                "embedded cluster: %s", errstr);
    }
    mc->mcluster = rd_kafka_mock_cluster_new(mc->rk, broker_count);
    if (!mc->mcluster) {
        rd_kafka_destroy(mc->rk);
        free(mc);
        return ksafe__error_set(err, KSAFE_EKAFKA, 0, 0,
                                "embedded cluster: librdkafka could not start "
                                "%d mock brokers",
                                broker_count);
    }
#if RD_KAFKA_VERSION >= KSAFE__RDKAFKA_KIP848
    /* KIP-848 groups take their session and heartbeat from the broker:
     * the mock's defaults (30 s, 3 s) make a dead member's partitions wait
     * 30 s. The embedded cluster's classic groups run with
     * ksafe_test_group_timing(1); its KIP-848 groups get the same. */
    rd_kafka_mock_set_group_consumer_session_timeout_ms(
        mc->mcluster, ksafe_test_group_timing(1).session_timeout_ms);
    rd_kafka_mock_set_group_consumer_heartbeat_interval_ms(
        mc->mcluster, ksafe_test_group_timing(1).heartbeat_interval_ms);
#endif
    mc->bootstrap =
        ksafe__strdup(rd_kafka_mock_cluster_bootstraps(mc->mcluster));
    mc->broker_count = broker_count;
    if (!mc->bootstrap) {
        ksafe_mock_cluster_free(mc);
        return ksafe__error_set(err, KSAFE_ENOMEM, 0, 0, "out of memory");
    }
    *out = mc;
    return 0;
}

const char *ksafe_mock_cluster_bootstrap(const ksafe_mock_cluster *mc)
{
    return mc ? mc->bootstrap : NULL;
}

int ksafe_mock_cluster_create_topic(ksafe_mock_cluster *mc, const char *topic,
                                    int partitions, ksafe_error *err)
{
    rd_kafka_resp_err_t rerr;

    if (!mc || !topic || !*topic)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "create_topic needs a cluster and a name");
    if (partitions < 1 || partitions > 10000)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "partitions is %d, outside 1..10000",
                                partitions);
    rerr = rd_kafka_mock_topic_create(mc->mcluster, topic, partitions, 1);
    if (rerr)
        return ksafe__error_from_resp(err, rerr, "create topic");
    return 0;
}

int ksafe_mock_cluster_push_request_errors(ksafe_mock_cluster *mc, int api_key,
                                           size_t count,
                                           const rd_kafka_resp_err_t *errors,
                                           ksafe_error *err)
{
    if (!mc || (count && !errors) || api_key < 0 || api_key > 32767)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "push_request_errors needs a cluster, an API "
                                "key and count error codes");
    rd_kafka_mock_push_request_errors_array(mc->mcluster, (int16_t)api_key,
                                            count, errors);
    return 0;
}

static int broker_check(const ksafe_mock_cluster *mc, int broker_id,
                        ksafe_error *err)
{
    if (!mc)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0, "cluster is NULL");
    if (broker_id < 1 || broker_id > mc->broker_count)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "broker_id %d is not in 1..%d", broker_id,
                                mc->broker_count);
    return 0;
}

static int broker_state(ksafe_mock_cluster *mc, int broker_id, int up,
                        ksafe_error *err)
{
    rd_kafka_resp_err_t rerr;
    int rc;

    if ((rc = broker_check(mc, broker_id, err)))
        return rc;
    rerr = up ? rd_kafka_mock_broker_set_up(mc->mcluster, broker_id)
              : rd_kafka_mock_broker_set_down(mc->mcluster, broker_id);
    return rerr ? ksafe__error_from_resp(err, rerr, "broker state") : 0;
}

int ksafe_mock_cluster_broker_down(ksafe_mock_cluster *mc, int broker_id,
                                   ksafe_error *err)
{
    return broker_state(mc, broker_id, 0, err);
}

int ksafe_mock_cluster_broker_up(ksafe_mock_cluster *mc, int broker_id,
                                 ksafe_error *err)
{
    return broker_state(mc, broker_id, 1, err);
}

int ksafe_mock_cluster_set_rtt(ksafe_mock_cluster *mc, int broker_id,
                               int rtt_ms, ksafe_error *err)
{
    rd_kafka_resp_err_t rerr;
    int rc;

    if ((rc = broker_check(mc, broker_id, err)))
        return rc;
    if ((rc = ksafe__check_range(err, "rtt_ms", rtt_ms, 0, 60000)))
        return rc;
    rerr = rd_kafka_mock_broker_set_rtt(mc->mcluster, broker_id, rtt_ms);
    return rerr ? ksafe__error_from_resp(err, rerr, "broker rtt") : 0;
}

int ksafe_mock_cluster_set_coordinator(ksafe_mock_cluster *mc,
                                       const char *group_id, int broker_id,
                                       ksafe_error *err)
{
    rd_kafka_resp_err_t rerr;
    int rc;

    if ((rc = broker_check(mc, broker_id, err)))
        return rc;
    if (!group_id || !*group_id)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "set_coordinator: group_id is %s",
                                group_id ? "empty" : "NULL");
    rerr = rd_kafka_mock_coordinator_set(mc->mcluster, "group", group_id,
                                         broker_id);
    return rerr ? ksafe__error_from_resp(err, rerr, "group coordinator") : 0;
}

rd_kafka_mock_cluster_t *ksafe_mock_cluster_rdkafka(ksafe_mock_cluster *mc)
{
    return mc ? mc->mcluster : NULL;
}

void ksafe_mock_cluster_free(ksafe_mock_cluster *mc)
{
    if (!mc)
        return;
    /* The cluster must go before the handle that owns it. */
    if (mc->mcluster)
        rd_kafka_mock_cluster_destroy(mc->mcluster);
    if (mc->rk)
        rd_kafka_destroy(mc->rk);
    free(mc->bootstrap);
    free(mc);
}

