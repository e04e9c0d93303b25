/*
 * tests/relay_worker.c - one ksafe_relay_run() in its own process, for
 * tests/test_relay_real.c: it can be SIGKILLed at any point, fenced, or
 * joined by a second worker (children are exec'd: librdkafka is not
 * fork-safe).
 *
 *   relay-worker BOOTSTRAP IN OUT GROUP TXN_ID TRACE RESULT RETRY_EVERY
 *                SLOW_US BATCH_RECORDS BATCH_MS EMBEDDED
 *
 * The transform turns "value-<i>" (keyed "key-<i % 10>", as test_produce()
 * writes) into "out-<i>" with the same key, so a key's output lands on one
 * partition in input order. Each transform call appends "<i>\n" to TRACE
 * before it returns: the test watches it to kill at a point of its
 * choosing. RETRY_EVERY > 0: the first call in this process for each i
 * with i % RETRY_EVERY == RETRY_EVERY - 1 emits its output, puts the
 * transaction's records on the broker (flush) and returns RETRY, so the
 * relay aborts a transaction whose output really reached the broker.
 * SLOW_US: sleep per transform call. EMBEDDED 1: the embedded cluster's
 * group timing, else a stock broker's (session 6 s).
 *
 * It runs until SIGTERM/SIGINT and writes RESULT on its way out:
 * "rc <rc>\n", the stats as "<name> <value>\n" lines, and "message <text>\n"
 * (written to a temporary file and renamed: a reader never sees half).
 * Exit status: 0 when the relay returned 0, 3 on KSAFE_EFATAL, 1 otherwise.
 */
#define _POSIX_C_SOURCE 200809L
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <ksafe/ksafe.h>

#define MAX_INDEX (1 << 20)

typedef struct worker {
    const char *out_topic;
    ksafe_producer *p;
    int trace_fd;
    long retry_every, slow_us;
    unsigned char *retried; /* MAX_INDEX flags: RETRY given once per i */
} worker;

static ksafe_handler_result transform(const ksafe_message *m,
                                      ksafe_relay_emitter *out,
                                      ksafe_error *err, void *payload)
{
    worker *w = payload;
    ksafe_record rec = KSAFE_RECORD_INIT;
    size_t key_len, len;
    const void *key = ksafe_message_key(m, &key_len);
    const char *v = ksafe_message_value(m, &len);
    char buf[32], value[32], line[24];
    int i, n;

    if (!v || len >= sizeof(buf))
        goto bad;
    memcpy(buf, v, len);
    buf[len] = '\0';
    if (sscanf(buf, "value-%d", &i) != 1 || i < 0 || i >= MAX_INDEX)
        goto bad;
    n = snprintf(line, sizeof(line), "%d\n", i);
    if (write(w->trace_fd, line, (size_t)n) != n)
        _exit(4);
    if (w->slow_us > 0) {
        struct timespec ts = {w->slow_us / 1000000,
                              (w->slow_us % 1000000) * 1000};
        nanosleep(&ts, NULL);
    }
    snprintf(value, sizeof(value), "out-%d", i);
    rec.topic = w->out_topic;
    rec.key = key;
    rec.key_len = key_len;
    rec.value = value;
    rec.value_len = strlen(value);
    if (ksafe_relay_emit(out, &rec, err))
        return KSAFE_HANDLER_RETRY;
    if (w->retry_every > 0 && i % w->retry_every == w->retry_every - 1 &&
        !w->retried[i]) {
        w->retried[i] = 1;
        /* On the broker before the abort: a read_committed reader that
         * does not see it proves the abort, not a purge of our queue. */
        if (ksafe_producer_flush(w->p, 30000, err))
            fprintf(stderr, "relay-worker: flush before retry: %s\n",
                    err->message);
        snprintf(err->message, sizeof(err->message),
                 "test: first attempt of value-%d fails", i);
        return KSAFE_HANDLER_RETRY;
    }
    return KSAFE_HANDLER_OK;
bad:
    snprintf(err->message, sizeof(err->message), "not a test record");
    return KSAFE_HANDLER_FAIL;
}

static void write_result(const char *path, int rc, const ksafe_error *err,
                         const ksafe_relay_stats *s)
{
    char tmp[4096];
    FILE *f;

    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    if (!(f = fopen(tmp, "w"))) {
        perror(tmp);
        return;
    }
    fprintf(f, "rc %d\n", rc);
    fprintf(f, "polled %llu\ntransformed %llu\nemitted %llu\n"
               "committed %llu\ntransactions %llu\naborts %llu\n"
               "rebalance_aborts %llu\nretries %llu\nfailed %llu\n",
            (unsigned long long)s->polled, (unsigned long long)s->transformed,
            (unsigned long long)s->emitted, (unsigned long long)s->committed,
            (unsigned long long)s->transactions,
            (unsigned long long)s->aborts,
            (unsigned long long)s->rebalance_aborts,
            (unsigned long long)s->retries, (unsigned long long)s->failed);
    fprintf(f, "message %s\n", rc ? err->message : "");
    if (fclose(f) == 0 && rename(tmp, path) != 0)
        perror(path);
}

int main(int argc, char **argv)
{
    /* Small fetches: partitions come a few batches at a time each, in
     * turn, so a transaction holds records of all of them (the rebalance
     * case needs its revoked partitions in the open transaction). */
    static const char *const consumer_props[] = {
        "fetch.wait.max.ms", "10", "reconnect.backoff.max.ms", "500",
        "max.partition.fetch.bytes", "2048", NULL};
    static const char *const producer_props[] = {
        "reconnect.backoff.max.ms", "500", NULL};
    ksafe_consumer_options co = KSAFE_CONSUMER_OPTIONS_INIT;
    ksafe_producer_options po = KSAFE_PRODUCER_OPTIONS_INIT;
    ksafe_relay_options ro = KSAFE_RELAY_OPTIONS_INIT;
    ksafe_relay_stats stats;
    ksafe_consumer *c = NULL;
    ksafe_error err;
    worker w;
    int rc, txn_ms;

    if (argc != 13) {
        fprintf(stderr,
                "usage: relay-worker BOOTSTRAP IN OUT GROUP TXN_ID TRACE "
                "RESULT RETRY_EVERY SLOW_US BATCH_RECORDS BATCH_MS "
                "EMBEDDED\n");
        return 2;
    }
    memset(&w, 0, sizeof(w));
    memset(&stats, 0, sizeof(stats));
    w.out_topic = argv[3];
    w.retry_every = strtol(argv[8], NULL, 10);
    w.slow_us = strtol(argv[9], NULL, 10);
    w.retried = calloc(MAX_INDEX, 1);
    w.trace_fd = open(argv[6], O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (!w.retried || w.trace_fd < 0) {
        perror(argv[6]);
        return 2;
    }

    co.bootstrap_servers = argv[1];
    co.group_id = argv[4];
    /* The test run's group protocol (KSAFE_TEST_GROUP_PROTOCOL, inherited)
     * with this cluster kind's timings. */
    if (ksafe_test_consumer_group(
            &co, ksafe_test_group_timing(strcmp(argv[12], "1") == 0), &err)) {
        fprintf(stderr, "relay-worker: %s\n", err.message);
        return 2;
    }
    co.rdkafka_properties = consumer_props;

    /* At most the session, as ksafe_relay_run demands; 10 s at most. */
    txn_ms = co.session_timeout_ms < 10000 ? co.session_timeout_ms : 10000;
    po.bootstrap_servers = argv[1];
    po.transactional_id = argv[5];
    po.transaction_timeout_ms = txn_ms;
    po.delivery_timeout_ms = txn_ms;
    po.rdkafka_properties = producer_props;

    ro.transform = transform;
    ro.payload = &w;
    ro.batch_records = (size_t)strtoul(argv[10], NULL, 10);
    ro.batch_max_ms = (int)strtol(argv[11], NULL, 10);
    ro.max_attempts = 5;
    ro.backoff_initial_ms = 50;
    ro.backoff_max_ms = 500;
    ro.on_failure = KSAFE_FAILURE_STOP;
    ro.on_fatal = KSAFE_RELAY_FATAL_STOP;
    ro.stats = &stats;

    if (ksafe_producer_new(&w.p, &po, &err) ||
        ksafe_consumer_new(&c, &co, &err) ||
        ksafe_consumer_subscribe(c, (const char *const *)&argv[2], 1,
                                 &err) ||
        ksafe_stop_on_signals(c, &err)) {
        fprintf(stderr, "relay-worker: %s\n", err.message);
        write_result(argv[7], err.code, &err, &stats);
        return 1;
    }
    rc = ksafe_relay_run(c, w.p, &ro, &err);
    if (rc)
        fprintf(stderr, "relay-worker: %s\n", err.message);
    write_result(argv[7], rc, &err, &stats);
    ksafe_consumer_free(c);
    ksafe_producer_free(w.p);
    close(w.trace_fd);
    free(w.retried);
    return rc == 0 ? 0 : rc == KSAFE_EFATAL ? 3 : 1;
}
