/*
 * samples/common.h - picking a cluster for the samples.
 *
 * `--bootstrap host:port` names a real cluster; without it the sample starts
 * an embedded one (ksafe's wrapper of librdkafka's mock cluster) in this
 * process. Either way the sample makes the topics it needs (on a real
 * cluster through the admin API). Your service only needs the --bootstrap
 * half.
 */
#ifndef KSAFE_SAMPLES_COMMON_H
#define KSAFE_SAMPLES_COMMON_H

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ksafe/ksafe.h>

typedef struct sample_cluster {
    const char *bootstrap;
    ksafe_mock_cluster *embedded; /* NULL on a real cluster */
    ksafe_group_protocol group_protocol; /* --group-protocol */
} sample_cluster;

/* "classic" or "consumer" (KIP-848) into *out: 0, or -1 for other names. */
static inline int sample_group_protocol(const char *name,
                                        ksafe_group_protocol *out)
{
    if (strcmp(name, "classic") == 0)
        *out = KSAFE_GROUP_PROTOCOL_CLASSIC;
    else if (strcmp(name, "consumer") == 0)
        *out = KSAFE_GROUP_PROTOCOL_CONSUMER;
    else
        return -1;
    return 0;
}

/*
 * Reads --bootstrap and --group-protocol from argv, or starts an embedded
 * cluster; exits with a message on bad usage. --group-protocol consumer
 * runs the sample's consumers under KIP-848 (librdkafka >= 2.12, Kafka
 * 4.0+ or the embedded cluster of librdkafka >= 2.12).
 */
static inline void sample_cluster_open(sample_cluster *sc, int argc,
                                       char **argv)
{
    ksafe_error err;
    int i;

    memset(sc, 0, sizeof(*sc));
    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--bootstrap") == 0 && i + 1 < argc) {
            sc->bootstrap = argv[++i];
        } else if (strcmp(argv[i], "--group-protocol") == 0 && i + 1 < argc &&
                   sample_group_protocol(argv[i + 1], &sc->group_protocol) ==
                       0) {
            i++;
        } else {
            fprintf(stderr,
                    "usage: %s [--bootstrap host:port] [--group-protocol "
                    "classic|consumer]\n",
                    argv[0]);
            exit(2);
        }
    }
    if (sc->bootstrap)
        return;
    if (ksafe_mock_cluster_new(&sc->embedded, 1, &err)) {
        fprintf(stderr, "embedded cluster: %s\n", err.message);
        exit(1);
    }
    sc->bootstrap = ksafe_mock_cluster_bootstrap(sc->embedded);
    fprintf(stderr, "no --bootstrap: using an embedded cluster at %s\n",
            sc->bootstrap);
}

/*
 * The group protocol of the command line into consumer options; under the
 * classic protocol also a session of `session_ms` (0 keeps the preset's
 * 45 s) with a heartbeat of a sixth of it. Under KIP-848 the broker owns
 * both: ksafe refuses them changed.
 */
static inline void sample_consumer_group(const sample_cluster *sc,
                                         ksafe_consumer_options *o,
                                         int session_ms)
{
    o->group_protocol = sc->group_protocol;
    if (sc->group_protocol == KSAFE_GROUP_PROTOCOL_CLASSIC && session_ms) {
        o->session_timeout_ms = session_ms;
        o->heartbeat_interval_ms = session_ms / 6;
    }
}

/*
 * Makes sure `topic` exists with `partitions` partitions and returns that
 * count, read back from the cluster's metadata. On a real cluster it is
 * created through the admin API when missing; one that exists with another
 * count stops the sample with a message (never rely on a broker's
 * auto-creation: it makes its default count, 1 on a stock broker).
 */
static inline int sample_cluster_topic(sample_cluster *sc, const char *topic,
                                       int partitions)
{
    ksafe_error err;
    int count;

    if (sc->embedded &&
        ksafe_mock_cluster_create_topic(sc->embedded, topic, partitions,
                                        &err)) {
        fprintf(stderr, "create topic %s: %s\n", topic, err.message);
        exit(1);
    }
    if (ksafe_cluster_ensure_topic(sc->bootstrap, topic, partitions, 15000,
                                   &err) ||
        ksafe_cluster_topic_partitions(sc->bootstrap, topic, &count, 15000,
                                       &err)) {
        fprintf(stderr, "topic %s: %s\n", topic, err.message);
        exit(1);
    }
    return count;
}

/* Sends `n` demo records "order-<i>" keyed "customer-<i % keys>". */
static inline void sample_produce_demo(sample_cluster *sc, const char *topic,
                                       int n, int keys)
{
    ksafe_producer_options o = KSAFE_PRODUCER_OPTIONS_INIT;
    ksafe_producer *p;
    ksafe_error err;
    int i;

    o.bootstrap_servers = sc->bootstrap;
    if (ksafe_producer_new(&p, &o, &err)) {
        fprintf(stderr, "producer: %s\n", err.message);
        exit(1);
    }
    for (i = 0; i < n; i++) {
        char key[24], value[24];
        ksafe_record r = KSAFE_RECORD_INIT;
        snprintf(key, sizeof(key), "customer-%d", i % keys);
        snprintf(value, sizeof(value), "order-%d", i);
        r.topic = topic;
        r.key = key;
        r.key_len = strlen(key);
        r.value = value;
        r.value_len = strlen(value);
        if (ksafe_producer_send(p, &r, &err)) {
            fprintf(stderr, "send: %s\n", err.message);
            exit(1);
        }
    }
    if (ksafe_producer_close(p, &err)) {
        fprintf(stderr, "producer close: %s\n", err.message);
        exit(1);
    }
    ksafe_producer_free(p);
}

/* Demo runs end by themselves: SIGALRM after `ms` stops the loop, the same
 * way a SIGTERM would (ksafe_consumer_stop is async-signal-safe). */
static ksafe_consumer *sample_alarm_consumer;

static void sample_on_alarm(int sig)
{
    (void)sig;
    ksafe_consumer_stop(sample_alarm_consumer);
}

static inline void sample_stop_after(ksafe_consumer *c, int ms)
{
    sample_alarm_consumer = c;
    signal(SIGALRM, sample_on_alarm);
    alarm((unsigned)((ms + 999) / 1000));
}

static inline void sample_cluster_close(sample_cluster *sc)
{
    ksafe_mock_cluster_free(sc->embedded);
    sc->embedded = NULL;
}

#endif
