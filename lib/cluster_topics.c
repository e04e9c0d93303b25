/*
 * lib/cluster_topics.c - topics on any cluster, embedded or real: find a
 * topic's partition count, create it if missing (the samples and the test
 * kit use these against a real cluster, where topics are not implicit).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"

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

    rd_kafka_conf_set_log_cb(conf, ksafe__mock_quiet_log);
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

