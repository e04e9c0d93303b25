/**
 * @file
 * ksafe/mock.h - the embedded cluster and the test kit.
 *
 * ksafe_mock_cluster wraps librdkafka's experimental mock cluster
 * (rdkafka_mock.h): a real Kafka-protocol server on loopback TCP ports, in
 * this process. It is what the samples use when no --bootstrap is given and
 * what tests use when no real cluster is named. It is NOT a full Kafka: see
 * docs/testing.md, "Embedded cluster limits" (in librdkafka 2.0.2 it does
 * not filter aborted transactions for read_committed readers, does not
 * fence producers, ignores group.instance.id, and keeps at most 5 MiB per
 * partition).
 *
 * ksafe_test_cluster is what a test should use: the cluster named by the
 * KSAFE_TEST_BOOTSTRAP environment variable when it is set, an embedded one
 * otherwise, with one way to create topics and test-friendly client options
 * for both.
 */
#ifndef KSAFE_MOCK_H
#define KSAFE_MOCK_H

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "common.h"
#include "consumer.h"
#include "error.h"
#include "producer.h"

KSAFE_BEGIN_DECLS

/**
 * An embedded cluster (opaque): brokers on loopback in this process.
 * Created by ksafe_mock_cluster_new(), stopped and released by
 * ksafe_mock_cluster_free().
 */
typedef struct ksafe_mock_cluster ksafe_mock_cluster;

/**
 * Starts an embedded cluster of `broker_count` (1..16) brokers on loopback.
 * Starting takes a few milliseconds; freeing takes about a second, so share
 * one per test file and use unique topic and group names.
 */
KSAFE_EXTERN int ksafe_mock_cluster_new(ksafe_mock_cluster **out,
                                        int broker_count, ksafe_error *err);

/** "127.0.0.1:port,..." for bootstrap_servers; borrowed from `mc`. */
KSAFE_EXTERN const char *
ksafe_mock_cluster_bootstrap(const ksafe_mock_cluster *mc);

/** Creates `topic` with `partitions` partitions (replication factor 1). */
KSAFE_EXTERN int ksafe_mock_cluster_create_topic(ksafe_mock_cluster *mc,
                                                 const char *topic,
                                                 int partitions,
                                                 ksafe_error *err);

/**
 * Makes the next `count` requests of type `api_key` (Kafka API key, e.g. 0
 * Produce, 8 OffsetCommit) fail with the given librdkafka error codes, one
 * per request, cluster-wide.
 */
KSAFE_EXTERN int ksafe_mock_cluster_push_request_errors(
    ksafe_mock_cluster *mc, int api_key, size_t count,
    const rd_kafka_resp_err_t *errors, ksafe_error *err);

/** Takes broker `broker_id` (1-based) down: connections close and are refused. */
KSAFE_EXTERN int ksafe_mock_cluster_broker_down(ksafe_mock_cluster *mc,
                                                int broker_id,
                                                ksafe_error *err);

/** Brings broker `broker_id` back up. */
KSAFE_EXTERN int ksafe_mock_cluster_broker_up(ksafe_mock_cluster *mc,
                                              int broker_id, ksafe_error *err);

/**
 * Delays every answer of broker `broker_id` (1-based) by rtt_ms
 * (0..60000; 0 restores it).
 */
KSAFE_EXTERN int ksafe_mock_cluster_set_rtt(ksafe_mock_cluster *mc,
                                            int broker_id, int rtt_ms,
                                            ksafe_error *err);

/**
 * Makes broker `broker_id` (1-based) the coordinator of consumer group
 * `group_id`: the old coordinator answers NOT_COORDINATOR from then on.
 */
KSAFE_EXTERN int ksafe_mock_cluster_set_coordinator(ksafe_mock_cluster *mc,
                                                    const char *group_id,
                                                    int broker_id,
                                                    ksafe_error *err);

/** The librdkafka mock cluster, borrowed, for anything not wrapped here. */
KSAFE_EXTERN rd_kafka_mock_cluster_t *
ksafe_mock_cluster_rdkafka(ksafe_mock_cluster *mc);

/** Stops the cluster. Free it before freeing clients still connected is fine.
 * Accepts NULL. */
KSAFE_EXTERN void ksafe_mock_cluster_free(ksafe_mock_cluster *mc);

/* ---- topics on any cluster ------------------------------------------- */

/**
 * Makes sure `topic` exists on the cluster at `bootstrap` with exactly
 * `partitions` partitions: when it is missing, creates it through the admin
 * API (the broker's default replication factor) and waits until the
 * cluster's metadata shows it. It never lets a metadata request create the
 * topic: a broker with auto.create.topics.enable (and the embedded cluster)
 * would make it with its default partition count. Opens and closes its own
 * client; at most timeout_ms in all.
 * Errors: KSAFE_EINVAL (bad argument, or the topic exists - or was made -
 * with another partition count: the message names both counts),
 * KSAFE_ETIMEDOUT, KSAFE_EKAFKA (the cluster refused, e.g. not authorized;
 * the embedded cluster does not implement topic creation by the admin API).
 */
KSAFE_EXTERN int ksafe_cluster_ensure_topic(const char *bootstrap,
                                            const char *topic, int partitions,
                                            int timeout_ms, ksafe_error *err);

/**
 * Sets *out to the partition count of `topic` read from the cluster's
 * metadata, without creating it. Errors: KSAFE_EINVAL (bad argument, or no
 * such topic), KSAFE_ETIMEDOUT, KSAFE_EKAFKA.
 */
KSAFE_EXTERN int ksafe_cluster_topic_partitions(const char *bootstrap,
                                                const char *topic, int *out,
                                                int timeout_ms,
                                                ksafe_error *err);

/* ---- test kit ---------------------------------------------------------- */

/** The environment variable naming a real cluster for tests. */
#define KSAFE_TEST_BOOTSTRAP_ENV "KSAFE_TEST_BOOTSTRAP"

/**
 * A cluster for tests (opaque): the real one named by KSAFE_TEST_BOOTSTRAP,
 * or an embedded one. Created by ksafe_test_cluster_new(), released by
 * ksafe_test_cluster_free().
 */
typedef struct ksafe_test_cluster ksafe_test_cluster;

/**
 * The cluster a test runs against: KSAFE_TEST_BOOTSTRAP if set and not
 * empty, else a new embedded cluster with one broker. Errors: those of
 * ksafe_mock_cluster_new(), and KSAFE_EINVAL when
 * KSAFE_TEST_GROUP_PROTOCOL holds an unknown value.
 */
KSAFE_EXTERN int ksafe_test_cluster_new(ksafe_test_cluster **out,
                                        ksafe_error *err);

/**
 * As ksafe_test_cluster_new(), with `broker_count` (1..16) brokers when the
 * cluster is embedded: what moving a coordinator or taking one broker down
 * while others serve needs. A real cluster is used as it is.
 */
KSAFE_EXTERN int ksafe_test_cluster_new_brokers(ksafe_test_cluster **out,
                                                int broker_count,
                                                ksafe_error *err);

/** 1 when the cluster is embedded, 0 for a real one. */
KSAFE_EXTERN int ksafe_test_cluster_is_embedded(const ksafe_test_cluster *tc);

/** Bootstrap servers; borrowed. */
KSAFE_EXTERN const char *
ksafe_test_cluster_bootstrap(const ksafe_test_cluster *tc);

/** The embedded cluster, or NULL on a real one (skip fault injection then). */
KSAFE_EXTERN ksafe_mock_cluster *
ksafe_test_cluster_mock(ksafe_test_cluster *tc);

/**
 * Creates a topic (on a real cluster with ksafe_cluster_ensure_topic(), 30 s
 * at most). A topic that already exists with that many partitions is fine;
 * with another count it is an error.
 */
KSAFE_EXTERN int ksafe_test_cluster_create_topic(ksafe_test_cluster *tc,
                                                 const char *topic,
                                                 int partitions,
                                                 ksafe_error *err);

/**
 * Writes "<prefix>-<pid>-<counter>-<random>" into buf: topic and group names
 * that do not collide between tests or runs. NULL `buf` or `size` 0: does
 * nothing.
 */
KSAFE_EXTERN void ksafe_test_unique_name(char *buf, size_t size,
                                         const char *prefix);

/**
 * Sets `opts` to the safe preset pointed at the cluster, with timings that
 * keep tests fast (short reconnect backoff, short fetch wait).
 * rdkafka_properties points into `tc`. NULL `opts`: does nothing; NULL
 * `tc`: no bootstrap servers, which ksafe_producer_new() then refuses.
 */
KSAFE_EXTERN void ksafe_test_cluster_producer_options(
    ksafe_test_cluster *tc, ksafe_producer_options *opts);

/** Consumer-group timings for tests. */
typedef struct ksafe_test_timing {
    int session_timeout_ms;    /**< session.timeout.ms */
    int heartbeat_interval_ms; /**< heartbeat.interval.ms */
} ksafe_test_timing;

/**
 * The group timings a test consumer uses: on the embedded cluster
 * (`embedded` 1) session 4000 ms and heartbeat 500 ms, because each join or
 * leave there takes about session_timeout - 1 s; on a real cluster session
 * 6000 ms and heartbeat 1000 ms, which a stock Kafka broker accepts (its
 * group.min.session.timeout.ms defaults to 6000: a shorter session fails
 * JoinGroup). Child processes of a test take theirs from here too.
 */
KSAFE_EXTERN ksafe_test_timing ksafe_test_group_timing(int embedded);

/**
 * The environment variable choosing the group protocol of test consumers:
 * unset, empty or "classic" for the classic protocol, "consumer" for
 * KIP-848's. One suite then runs under either protocol unchanged.
 */
#define KSAFE_TEST_GROUP_PROTOCOL_ENV "KSAFE_TEST_GROUP_PROTOCOL"

/**
 * The group protocol KSAFE_TEST_GROUP_PROTOCOL asks for, into *out.
 * Errors: KSAFE_EINVAL for any other value of the variable (named in the
 * message), *out then CLASSIC. Thread-safe (reads the environment only).
 */
KSAFE_EXTERN int ksafe_test_group_protocol(ksafe_group_protocol *out,
                                           ksafe_error *err);

/**
 * Sets the group fields of `opts` for a test: group_protocol from
 * ksafe_test_group_protocol() and, under the classic protocol,
 * session_timeout_ms and heartbeat_interval_ms from `t`. Under KIP-848 the
 * broker owns both, so they stay at the preset (the embedded cluster runs
 * its KIP-848 groups with ksafe_test_group_timing(1)).
 * Errors: as ksafe_test_group_protocol().
 */
KSAFE_EXTERN int ksafe_test_consumer_group(ksafe_consumer_options *opts,
                                           ksafe_test_timing t,
                                           ksafe_error *err);

/**
 * As above for a consumer in `group_id` (borrowed), with the group
 * protocol of ksafe_test_group_protocol(), the timings of
 * ksafe_test_group_timing() for this cluster (classic protocol),
 * max.poll.interval 30 s and fetch.wait.max.ms=10. NULL `opts`: does
 * nothing.
 */
KSAFE_EXTERN void ksafe_test_cluster_consumer_options(
    ksafe_test_cluster *tc, ksafe_consumer_options *opts,
    const char *group_id);

/** Releases the cluster (stops it when embedded). Accepts NULL. */
KSAFE_EXTERN void ksafe_test_cluster_free(ksafe_test_cluster *tc);

KSAFE_END_DECLS

#endif
