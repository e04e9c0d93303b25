/*
 * samples/roundtrip.c - the smallest safe round trip.
 *
 * Produces records with the safe producer preset (acks=all, idempotence),
 * reads them back with the safe consumer preset (manual offsets,
 * read_committed), marks each one processed after "handling" it, commits,
 * and shows what the group committed.
 *
 *   roundtrip                      embedded cluster in this process
 *   roundtrip --bootstrap host:port   a real cluster
 */
#include <time.h>

#include "common.h"

#define TOPIC "ksafe-roundtrip"
#define RECORDS 1000

static void on_delivery(const ksafe_delivery *d, void *payload)
{
    int *delivered = payload;

    if (d->error) /* never silent: every failure arrives here */
        fprintf(stderr, "record not delivered: %s\n", d->error->message);
    else
        (*delivered)++;
}

static int produce(const char *bootstrap)
{
    ksafe_producer_options o = KSAFE_PRODUCER_OPTIONS_INIT;
    ksafe_producer *p;
    ksafe_error err;
    int i, delivered = 0;

    o.bootstrap_servers = bootstrap;
    o.on_delivery = on_delivery;
    o.delivery_payload = &delivered;
    if (ksafe_producer_new(&p, &o, &err)) {
        fprintf(stderr, "producer: %s\n", err.message);
        return -1;
    }
    for (i = 0; i < RECORDS; i++) {
        char key[16], value[32];
        ksafe_record r = KSAFE_RECORD_INIT;

        snprintf(key, sizeof(key), "user-%d", i % 50); /* same key, same partition */
        snprintf(value, sizeof(value), "event-%d", i);
        r.topic = TOPIC;
        r.key = key;
        r.key_len = strlen(key);
        r.value = value;
        r.value_len = strlen(value);
        if (ksafe_producer_send(p, &r, &err)) {
            fprintf(stderr, "send: %s\n", err.message);
            break;
        }
    }
    /* close waits for every report (bounded) and says if any is missing */
    if (ksafe_producer_close(p, &err))
        fprintf(stderr, "close: %s\n", err.message);
    ksafe_producer_free(p);
    return delivered;
}

static int consume(const sample_cluster *sc, int expected)
{
    ksafe_consumer_options o = KSAFE_CONSUMER_OPTIONS_INIT;
    const char *topics[] = {TOPIC};
    ksafe_consumer *c;
    ksafe_error err;
    int processed = 0;
    time_t deadline = time(NULL) + 60;

    o.bootstrap_servers = sc->bootstrap;
    o.group_id = "ksafe-roundtrip-group";
    sample_consumer_group(sc, &o, 0);
    if (ksafe_consumer_new(&c, &o, &err) ||
        ksafe_consumer_subscribe(c, topics, 1, &err)) {
        fprintf(stderr, "consumer: %s\n", err.message);
        ksafe_consumer_free(c);
        return -1;
    }
    while (processed < expected && time(NULL) < deadline) {
        ksafe_message *m;

        if (ksafe_consumer_poll(c, 500, &m, &err)) {
            fprintf(stderr, "poll: %s\n", err.message);
            continue;
        }
        if (!m)
            continue;
        /* ... handle the record here; only then mark it processed ... */
        processed++;
        ksafe_consumer_done(c, m, NULL);
        ksafe_message_free(m);
        if (processed % 200 == 0) /* commit what was marked, not more */
            ksafe_consumer_commit(c, KSAFE_COMMIT_ASYNC, NULL);
    }
    /* close commits what was marked and leaves the group */
    if (ksafe_consumer_close(c, &err))
        fprintf(stderr, "close: %s\n", err.message);
    ksafe_consumer_free(c);
    return processed;
}

int main(int argc, char **argv)
{
    sample_cluster sc;
    int delivered, processed;

    sample_cluster_open(&sc, argc, argv);
    sample_cluster_topic(&sc, TOPIC, 4);
    delivered = produce(sc.bootstrap);
    processed = delivered > 0 ? consume(&sc, delivered) : 0;
    printf("produced %d, delivered %d, processed %d\n", RECORDS, delivered,
           processed);
    sample_cluster_close(&sc);
    return delivered == RECORDS && processed == delivered ? 0 : 1;
}
