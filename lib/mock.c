/*
 * lib/mock.c - the embedded cluster and the test kit.
 *
 * The only file that includes rdkafka_mock.h: librdkafka's mock cluster is
 * experimental API, and its quirks (measured on 2.0.2) stay here.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>


#include "internal.h"

struct ksafe_mock_cluster {
    rd_kafka_t *rk; /* owns the mock cluster's threads */
    rd_kafka_mock_cluster_t *mcluster;
    char *bootstrap;
    int broker_count;
};

static void quiet_log(const rd_kafka_t *rk, int level, const char *fac,
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

    if (!out)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0, "out is NULL");
    *out = NULL;
    if (broker_count < 1 || broker_count > 16)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "broker_count is %d, outside 1..16",
                                broker_count);
    if (!(mc = calloc(1, sizeof(*mc))))
        return ksafe__error_set(err, KSAFE_ENOMEM, 0, 0, "out of memory");
    conf = rd_kafka_conf_new();
    rd_kafka_conf_set_log_cb(conf, quiet_log);
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

static int broker_state(ksafe_mock_cluster *mc, int broker_id, int up,
                        ksafe_error *err)
{
    rd_kafka_resp_err_t rerr;

    if (!mc || broker_id < 1 || broker_id > mc->broker_count)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "broker_id %d is not in 1..%d", broker_id,
                                mc ? mc->broker_count : 0);
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

/* ---- topics on any cluster ------------------------------------------- */

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int left_ms(int64_t deadline)
{
    int64_t left = deadline - mono_ms();
    return left < 1 ? 1 : left > 30000 ? 30000 : (int)left;
}

static int admin_handle(rd_kafka_t **out, const char *bootstrap,
                        ksafe_error *err)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char errstr[256];

    rd_kafka_conf_set_log_cb(conf, quiet_log);
    if (rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap, errstr,
                          sizeof(errstr))) {
        rd_kafka_conf_destroy(conf);
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0, "%s", errstr);
    }
    if (!(*out = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr,
                              sizeof(errstr)))) {
        rd_kafka_conf_destroy(conf);
        return ksafe__error_set(err, KSAFE_EKAFKA, 0, 0, "%s", errstr);
    }
    return 0;
}

/*
 * The partition count of `topic` (0: no such topic) from a metadata request
 * for all topics: one that names the topic makes a broker with
 * auto.create.topics.enable (and the embedded cluster) create it with its
 * default count, which is how a "8 partition" topic ends up with 1.
 */
static int find_topic(rd_kafka_t *rk, const char *topic, int timeout_ms,
                      int *count, ksafe_error *err)
{
    const rd_kafka_metadata_t *md;
    rd_kafka_resp_err_t rerr;
    int i, rc = 0;

    *count = 0;
    rerr = rd_kafka_metadata(rk, 1, NULL, &md, timeout_ms);
    if (rerr)
        return ksafe__error_set(err, rerr == RD_KAFKA_RESP_ERR__TIMED_OUT
                                         ? KSAFE_ETIMEDOUT
                                         : KSAFE_EKAFKA,
                                rerr, 0, "metadata for topic %s: %s", topic,
                                rd_kafka_err2str(rerr));
    for (i = 0; i < md->topic_cnt; i++) {
        const rd_kafka_metadata_topic_t *t = &md->topics[i];
        if (strcmp(t->topic, topic) != 0)
            continue;
        if (t->err == RD_KAFKA_RESP_ERR_NO_ERROR)
            *count = t->partition_cnt;
        else if (t->err != RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART &&
                 t->err != RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE)
            rc = ksafe__error_set(err, KSAFE_EKAFKA, t->err, 0,
                                  "metadata for topic %s: %s", topic,
                                  rd_kafka_err2str(t->err));
        break;
    }
    rd_kafka_metadata_destroy(md);
    return rc;
}

static int admin_create_topic(rd_kafka_t *rk, const char *topic,
                              int partitions, int64_t deadline,
                              ksafe_error *err)
{
    rd_kafka_AdminOptions_t *ao =
        rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_NewTopic_t *nt;
    rd_kafka_event_t *ev;
    char errstr[256];
    int rc = 0;

    nt = rd_kafka_NewTopic_new(topic, partitions, -1, errstr, sizeof(errstr));
    if (!nt) {
        rc = ksafe__error_set(err, KSAFE_EINVAL, 0, 0, "topic %s: %s", topic,
                              errstr);
        goto out;
    }
    rd_kafka_AdminOptions_set_request_timeout(ao, left_ms(deadline), errstr,
                                              sizeof(errstr));
    rd_kafka_AdminOptions_set_operation_timeout(ao, left_ms(deadline), errstr,
                                                sizeof(errstr));
    rd_kafka_CreateTopics(rk, &nt, 1, ao, q);
    ev = rd_kafka_queue_poll(q, left_ms(deadline) + 1000);
    if (!ev) {
        rc = ksafe__error_set(err, KSAFE_ETIMEDOUT, 0, 0,
                              "create topic %s (%d partitions): no answer",
                              topic, partitions);
    } else {
        const rd_kafka_CreateTopics_result_t *res =
            rd_kafka_event_CreateTopics_result(ev);
        size_t n = 0;
        const rd_kafka_topic_result_t **tr =
            res ? rd_kafka_CreateTopics_result_topics(res, &n) : NULL;
        rd_kafka_resp_err_t rerr = rd_kafka_event_error(ev);
        const char *why = rd_kafka_event_error_string(ev);

        if (!rerr && n == 1) {
            rerr = rd_kafka_topic_result_error(tr[0]);
            why = rd_kafka_topic_result_error_string(tr[0]);
        }
        /* Already there (someone else was quicker): the caller checks its
         * partition count. */
        if (rerr && rerr != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS)
            rc = ksafe__error_set(
                err,
                rerr == RD_KAFKA_RESP_ERR__TIMED_OUT ? KSAFE_ETIMEDOUT
                                                     : KSAFE_EKAFKA,
                rerr, 0,
                "create topic %s (%d partitions) through the admin API: "
                "%s; create it yourself",
                topic, partitions, why && *why ? why : rd_kafka_err2str(rerr));
        rd_kafka_event_destroy(ev);
    }
out:
    rd_kafka_NewTopic_destroy(nt);
    rd_kafka_AdminOptions_destroy(ao);
    rd_kafka_queue_destroy(q);
    return rc;
}

int ksafe_cluster_topic_partitions(const char *bootstrap, const char *topic,
                                   int *out, int timeout_ms, ksafe_error *err)
{
    rd_kafka_t *rk;
    int rc, count = 0;

    if (!bootstrap || !*bootstrap || !topic || !*topic || !out ||
        timeout_ms < 1)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "topic_partitions needs bootstrap servers, "
                                "a topic, out and a timeout");
    *out = 0;
    if ((rc = admin_handle(&rk, bootstrap, err)))
        return rc;
    rc = find_topic(rk, topic, timeout_ms, &count, err);
    rd_kafka_destroy(rk);
    if (!rc && count < 1)
        rc = ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                              "topic %s does not exist at %s", topic,
                              bootstrap);
    if (!rc)
        *out = count;
    return rc;
}

int ksafe_cluster_ensure_topic(const char *bootstrap, const char *topic,
                               int partitions, int timeout_ms,
                               ksafe_error *err)
{
    int64_t deadline = mono_ms() + timeout_ms;
    rd_kafka_t *rk;
    int rc, count = 0, created = 0;

    if (!bootstrap || !*bootstrap || !topic || !*topic || timeout_ms < 1)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "ensure_topic needs bootstrap servers, a "
                                "topic and a timeout");
    if (partitions < 1 || partitions > 100000)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "topic %s: partitions is %d, outside "
                                "1..100000",
                                topic, partitions);
    if ((rc = admin_handle(&rk, bootstrap, err)))
        return rc;
    rc = find_topic(rk, topic, left_ms(deadline), &count, err);
    if (!rc && count == 0) {
        rc = admin_create_topic(rk, topic, partitions, deadline, err);
        created = 1;
    }
    /* A new topic reaches every broker's metadata a little later. */
    while (!rc && count == 0) {
        struct timespec pause = {0, 100 * 1000000L};
        if (mono_ms() >= deadline) {
            rc = ksafe__error_set(err, KSAFE_ETIMEDOUT, 0, 0,
                                  "topic %s was created but is not in the "
                                  "cluster's metadata after %d ms",
                                  topic, timeout_ms);
            break;
        }
        nanosleep(&pause, NULL);
        rc = find_topic(rk, topic, left_ms(deadline), &count, err);
    }
    rd_kafka_destroy(rk);
    if (!rc && count != partitions)
        rc = ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                              "topic %s %s %d partition(s), not the %d "
                              "needed: delete it or use another topic",
                              topic, created ? "was made with" : "exists with",
                              count, partitions);
    return rc;
}

/* ---- test kit ---------------------------------------------------------- */

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
    ksafe_test_cluster *tc;
    const char *env = getenv(KSAFE_TEST_BOOTSTRAP_ENV);
    int rc;

    if (!out)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0, "out is NULL");
    *out = NULL;
    if (!(tc = calloc(1, sizeof(*tc))))
        return ksafe__error_set(err, KSAFE_ENOMEM, 0, 0, "out of memory");
    if (env && *env) {
        tc->bootstrap = ksafe__strdup(env);
    } else {
        if ((rc = ksafe_mock_cluster_new(&tc->mock, 1, err))) {
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

    clock_gettime(CLOCK_REALTIME, &ts);
    snprintf(buf, size, "%s-%ld-%u-%lx", prefix ? prefix : "ksafe",
             (long)getpid(), atomic_fetch_add(&counter, 1) + 1,
             (unsigned long)(ts.tv_nsec ^ ts.tv_sec));
}

void ksafe_test_cluster_producer_options(ksafe_test_cluster *tc,
                                         ksafe_producer_options *opts)
{
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

void ksafe_test_cluster_consumer_options(ksafe_test_cluster *tc,
                                         ksafe_consumer_options *opts,
                                         const char *group_id)
{
    ksafe_test_timing t =
        ksafe_test_group_timing(ksafe_test_cluster_is_embedded(tc));

    ksafe_consumer_options_init(opts, KSAFE_CONSUMER_OPTIONS_VERSION);
    opts->bootstrap_servers = ksafe_test_cluster_bootstrap(tc);
    opts->group_id = group_id;
    opts->session_timeout_ms = t.session_timeout_ms;
    opts->heartbeat_interval_ms = t.heartbeat_interval_ms;
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
