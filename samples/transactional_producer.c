/*
 * samples/transactional_producer.c - all-or-nothing batches.
 *
 *   transactional_producer                      embedded cluster
 *   transactional_producer --bootstrap host:port
 *
 * Records sent inside a transaction become visible to read_committed
 * consumers (the ksafe consumer's preset) together at commit, or never.
 * Note: the embedded cluster runs the API but does not hide aborted records.
 */
#include "common.h"

#define TOPIC "payments"

/* Sends one batch in a transaction; `fail` simulates a processing error. */
static int send_batch(ksafe_producer *p, int batch, int fail)
{
    ksafe_error err;
    int i, rc;

    if ((rc = ksafe_txn_begin(p, &err))) {
        fprintf(stderr, "begin: %s\n", err.message);
        return rc;
    }
    for (i = 0; i < 10; i++) {
        char key[32], value[64];
        ksafe_record rec = KSAFE_RECORD_INIT;

        snprintf(key, sizeof(key), "account-%d", i % 3);
        snprintf(value, sizeof(value), "{\"batch\": %d, \"n\": %d}", batch,
                 i);
        rec.topic = TOPIC;
        rec.key = key;
        rec.key_len = strlen(key);
        rec.value = value;
        rec.value_len = strlen(value);
        if ((rc = ksafe_producer_send(p, &rec, &err)))
            break;
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

int main(int argc, char **argv)
{
    sample_cluster sc;
    ksafe_producer_options opts;
    ksafe_producer *p;
    ksafe_error err;
    int rc = 0, batch;

    sample_cluster_open(&sc, argc, argv);
    sample_cluster_topic(&sc, TOPIC, 3);

    ksafe_producer_options_init(&opts, KSAFE_PRODUCER_OPTIONS_VERSION);
    opts.bootstrap_servers = sc.bootstrap;
    /* Stable per application instance: a restarted instance fences its
     * predecessor and finishes or aborts what it left open. */
    opts.transactional_id = "payments-writer-1";
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
    for (batch = 0; batch < 3 && !rc; batch++)
        rc = send_batch(p, batch, batch == 1 /* abort the middle one */);

    if (ksafe_producer_close(p, &err)) {
        fprintf(stderr, "close: %s\n", err.message);
        rc = 1;
    }
    ksafe_producer_free(p);
    sample_cluster_close(&sc);
    return rc ? 1 : 0;
}
