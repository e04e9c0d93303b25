/*
 * samples/common.h - picking a cluster for the samples.
 *
 * `--bootstrap host:port` names a real cluster; without it the sample starts
 * an embedded one (ksafe's wrapper of librdkafka's mock cluster) in this
 * process and creates the topics it needs. Your service only needs the
 * --bootstrap half.
 */
#ifndef KSAFE_SAMPLES_COMMON_H
#define KSAFE_SAMPLES_COMMON_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ksafe/ksafe.h>

typedef struct sample_cluster {
    const char *bootstrap;
    ksafe_mock_cluster *embedded; /* NULL on a real cluster */
} sample_cluster;

/* Reads --bootstrap from argv or starts an embedded cluster; exits with a
 * message on bad usage. */
static inline void sample_cluster_open(sample_cluster *sc, int argc,
                                       char **argv)
{
    ksafe_error err;
    int i;

    memset(sc, 0, sizeof(*sc));
    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--bootstrap") == 0 && i + 1 < argc) {
            sc->bootstrap = argv[++i];
        } else {
            fprintf(stderr, "usage: %s [--bootstrap host:port]\n", argv[0]);
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

/* Creates a topic on the embedded cluster; a real cluster's topics are
 * yours to create (or its auto-creation). */
static inline void sample_cluster_topic(sample_cluster *sc, const char *topic,
                                        int partitions)
{
    ksafe_error err;

    if (sc->embedded &&
        ksafe_mock_cluster_create_topic(sc->embedded, topic, partitions,
                                        &err)) {
        fprintf(stderr, "create topic %s: %s\n", topic, err.message);
        exit(1);
    }
}

static inline void sample_cluster_close(sample_cluster *sc)
{
    ksafe_mock_cluster_free(sc->embedded);
    sc->embedded = NULL;
}

#endif
