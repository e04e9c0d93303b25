/*
 * samples/safe_producer.c - send records safely: asynchronously with
 * delivery reports, then one synchronously.
 *
 *   safe_producer                      embedded cluster, no setup
 *   safe_producer --bootstrap host:port
 *
 * The preset is acks=all with the idempotent producer: a record is reported
 * delivered once every in-sync replica has it, and retries can neither
 * duplicate nor reorder it.
 */
#include "common.h"

#define TOPIC "orders"

typedef struct tally {
    int delivered, failed;
} tally;

/* One call per record, on the thread that sends, polls, flushes or closes. */
static void on_delivery(const ksafe_delivery *d, void *payload)
{
    tally *t = payload;

    if (d->error) {
        /* Failed for good (e.g. delivery_timeout_ms expired): your records,
         * your decision - log, store, alert. Never silently lost. */
        t->failed++;
        fprintf(stderr, "order %.*s failed: %s\n", (int)d->key_len,
                (const char *)d->key, d->error->message);
        return;
    }
    t->delivered++;
}

int main(int argc, char **argv)
{
    sample_cluster sc;
    ksafe_producer_options opts;
    ksafe_producer *p;
    ksafe_error err;
    tally t = {0, 0};
    int i, rc;

    sample_cluster_open(&sc, argc, argv);
    sample_cluster_topic(&sc, TOPIC, 3);

    /* The safe preset; only say where the cluster is and who gets reports. */
    ksafe_producer_options_init(&opts, KSAFE_PRODUCER_OPTIONS_VERSION);
    opts.bootstrap_servers = sc.bootstrap;
    opts.on_delivery = on_delivery;
    opts.delivery_payload = &t;
    if (ksafe_producer_new(&p, &opts, &err)) {
        fprintf(stderr, "producer: %s\n", err.message);
        return 1;
    }

    /* Async: queue records; the same key always lands in the same
     * partition, so each customer's orders stay in order. */
    for (i = 0; i < 100; i++) {
        char key[32], value[64];
        ksafe_record rec = KSAFE_RECORD_INIT;

        snprintf(key, sizeof(key), "customer-%d", i % 7);
        snprintf(value, sizeof(value), "{\"order\": %d}", i);
        rec.topic = TOPIC;
        rec.key = key;          /* copied by the call: reuse the buffers */
        rec.key_len = strlen(key);
        rec.value = value;
        rec.value_len = strlen(value);
        if (ksafe_producer_send(p, &rec, &err)) {
            /* KSAFE_EQUEUEFULL carries KSAFE_ERROR_RETRIABLE; KSAFE_EFATAL
             * means ksafe_producer_recover() (see docs/producer.md). */
            fprintf(stderr, "send: %s\n", err.message);
            break;
        }
    }
    /* Wait for every report (served here, on this thread). */
    if (ksafe_producer_flush(p, 30000, &err))
        fprintf(stderr, "flush: %s\n", err.message);
    printf("async: %d delivered, %d failed\n", t.delivered, t.failed);

    /* Sync: returns once the broker acknowledged, with the real offset. */
    {
        ksafe_record rec = KSAFE_RECORD_INIT;
        ksafe_record_metadata where;

        rec.topic = TOPIC;
        rec.key = "customer-0";
        rec.key_len = strlen("customer-0");
        rec.value = "{\"order\": \"last\"}";
        rec.value_len = strlen("{\"order\": \"last\"}");
        if (ksafe_producer_send_sync(p, &rec, -1, &where, &err)) {
            fprintf(stderr, "send_sync: %s\n", err.message);
            t.failed++;
        } else {
            printf("sync: written to %s [%d] at offset %lld\n", TOPIC,
                   (int)where.partition, (long long)where.offset);
        }
    }

    /* Close never drops a record silently: anything it could not deliver
     * is reported failed and counted in the error. */
    rc = ksafe_producer_close(p, &err);
    if (rc)
        fprintf(stderr, "close: %s\n", err.message);
    ksafe_producer_free(p);
    sample_cluster_close(&sc);
    return rc || t.failed ? 1 : 0;
}
