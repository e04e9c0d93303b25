/*
 * samples/transactional_producer.c - all-or-nothing batches.
 *
 *   transactional_producer                      embedded cluster
 *   transactional_producer --bootstrap host:port
 *
 * Records sent inside a transaction become visible to read_committed
 * consumers (the ksafe consumer's preset) together at commit, or never.
 * The middle batch is aborted after its records reached the broker; reading
 * the topic back shows a read_committed consumer the other two batches only.
 * Note: the embedded cluster runs the API but does not hide aborted records.
 */
#include <time.h>

#include "common.h"

#define TOPIC "payment-batches" /* its own: other samples' records differ */
#define BATCHES 3
#define PER_BATCH 10

/* Tells this run's records from an earlier run's on a real cluster. */
static long run_id;

/* Sends one batch in a transaction; `fail` simulates a processing error. */
static int send_batch(ksafe_producer *p, int batch, int fail)
{
    ksafe_error err;
    int i, rc;

    if ((rc = ksafe_txn_begin(p, &err))) {
        fprintf(stderr, "begin: %s\n", err.message);
        return rc;
    }
    for (i = 0; i < PER_BATCH; i++) {
        char key[32], value[64];
        ksafe_record rec = KSAFE_RECORD_INIT;

        snprintf(key, sizeof(key), "account-%d", i % 3);
        snprintf(value, sizeof(value),
                 "{\"run\": %ld, \"batch\": %d, \"n\": %d}", run_id, batch,
                 i);
        rec.topic = TOPIC;
        rec.key = key;
        rec.key_len = strlen(key);
        rec.value = value;
        rec.value_len = strlen(value);
        if ((rc = ksafe_producer_send(p, &rec, &err)))
            break;
    }
    if (!rc && fail) {
        /* A batch usually fails after some of its records went out. Flush
         * so that all of this one are on the broker: the abort then really
         * has records to hide (without it they could be purged from the
         * queue unsent, and there would be nothing to show). */
        if ((rc = ksafe_producer_flush(p, 30000, &err)))
            fprintf(stderr, "flush: %s\n", err.message);
        else
            printf("batch %d: %d records on the broker, now aborting\n",
                   batch, PER_BATCH);
    }
    if (rc || fail) {
        /* Roll back: none of this batch's records will be visible. */
        if (rc)
            fprintf(stderr, "send: %s\n", err.message);
        if (ksafe_txn_abort(p, -1, &err))
            fprintf(stderr, "abort: %s\n", err.message);
        printf("batch %d aborted\n", batch);
        return 0;
    }
    rc = ksafe_txn_commit(p, -1, &err);
    if (rc == KSAFE_ETXNABORTED) {
        /* Already aborted for us (e.g. a record failed): redo the batch. */
        fprintf(stderr, "batch %d aborted: %s\n", batch, err.message);
        return 0;
    }
    if (rc) {
        /* KSAFE_EFATAL: e.g. fenced by a newer instance with the same
         * transactional_id. Stop; never carry on with this producer. */
        fprintf(stderr, "commit: %s\n", err.message);
        return rc;
    }
    printf("batch %d committed\n", batch);
    return 0;
}

/*
 * Reads the topic back with a ksafe consumer (read_committed, its preset)
 * and counts this run's records per batch into seen[].
 */
static int read_back(sample_cluster *sc, int partitions, int *seen)
{
    ksafe_consumer_options co = KSAFE_CONSUMER_OPTIONS_INIT;
    rd_kafka_topic_partition_list_t *l;
    ksafe_consumer *c;
    ksafe_error err;
    char group[64];
    int i, total = 0;
    time_t deadline = time(NULL) + 30, settle = 0;

    snprintf(group, sizeof(group), "payment-batches-reader-%ld", run_id);
    co.bootstrap_servers = sc->bootstrap;
    sample_consumer_group(sc, &co, 0);
    co.group_id = group;
    if (ksafe_consumer_new(&c, &co, &err)) {
        fprintf(stderr, "consumer: %s\n", err.message);
        return -1;
    }
    /* Assigned, not subscribed: a reader of everything needs no group. */
    l = rd_kafka_topic_partition_list_new(partitions);
    for (i = 0; i < partitions; i++)
        rd_kafka_topic_partition_list_add(l, TOPIC, i)->offset =
            RD_KAFKA_OFFSET_BEGINNING;
    rd_kafka_assign(ksafe_consumer_rdkafka(c), l);
    rd_kafka_topic_partition_list_destroy(l);
    /* The committed batches are there by now; wait a little longer for
     * anything that should not be. */
    while (time(NULL) < deadline && (!settle || time(NULL) < settle)) {
        ksafe_message *m;
        size_t len;
        const char *v;
        char buf[96];
        long run;
        int batch, n;

        if (ksafe_consumer_poll(c, 200, &m, &err)) {
            fprintf(stderr, "poll: %s\n", err.message);
            break;
        }
        if (!m)
            continue;
        v = ksafe_message_value(m, &len);
        snprintf(buf, sizeof(buf), "%.*s", (int)len, v);
        if (sscanf(buf, "{\"run\": %ld, \"batch\": %d, \"n\": %d}", &run,
                   &batch, &n) == 3 &&
            run == run_id && batch >= 0 && batch < BATCHES) {
            seen[batch]++;
            if (++total == (BATCHES - 1) * PER_BATCH)
                settle = time(NULL) + 3;
        }
        ksafe_message_free(m);
    }
    ksafe_consumer_free(c);
    return 0;
}

int main(int argc, char **argv)
{
    int seen[BATCHES] = {0}, partitions;
    sample_cluster sc;
    ksafe_producer_options opts;
    ksafe_producer *p;
    ksafe_error err;
    int rc = 0, batch;

    sample_cluster_open(&sc, argc, argv);
    partitions = sample_cluster_topic(&sc, TOPIC, 3);
    run_id = (long)time(NULL) * 100000 + (long)getpid() % 100000;

    ksafe_producer_options_init(&opts, KSAFE_PRODUCER_OPTIONS_VERSION);
    opts.bootstrap_servers = sc.bootstrap;
    /* Stable per application instance: a restarted instance fences its
     * predecessor and finishes or aborts what it left open. */
    opts.transactional_id = "payment-batches-writer-1";
    opts.transaction_timeout_ms = 60000;
    opts.delivery_timeout_ms = 30000; /* must not outlive the transaction */
    if (ksafe_producer_new(&p, &opts, &err)) {
        fprintf(stderr, "producer: %s\n", err.message);
        return 1;
    }
    /* Optional (begin does it too): fail fast if the cluster refuses. */
    if (ksafe_txn_init(p, -1, &err)) {
        fprintf(stderr, "init: %s\n", err.message);
        ksafe_producer_free(p);
        sample_cluster_close(&sc);
        return 1;
    }
    for (batch = 0; batch < BATCHES && !rc; batch++)
        rc = send_batch(p, batch, batch == 1 /* abort the middle one */);

    if (ksafe_producer_close(p, &err)) {
        fprintf(stderr, "close: %s\n", err.message);
        rc = 1;
    }
    ksafe_producer_free(p);
    if (!rc && read_back(&sc, partitions, seen))
        rc = 1;
    if (!rc) {
        printf("a read_committed consumer reads: batch 0 %d, batch 1 %d, "
               "batch 2 %d records\n",
               seen[0], seen[1], seen[2]);
        if (seen[0] != PER_BATCH || seen[2] != PER_BATCH) {
            fprintf(stderr, "a committed batch is incomplete\n");
            rc = 1;
        } else if (seen[1] && sc.embedded) {
            printf("(the embedded cluster does not hide aborted records; a "
                   "Kafka broker would show batch 1 as 0)\n");
        } else if (seen[1]) {
            fprintf(stderr, "the aborted batch is visible: the cluster does "
                            "not filter aborted transactions\n");
            rc = 1;
        } else {
            printf("the aborted batch reached the broker and stays hidden\n");
        }
    }
    sample_cluster_close(&sc);
    return rc ? 1 : 0;
}
