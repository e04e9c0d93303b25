/*
 * samples/parallel_consumer.c - the template for a consuming service whose
 * handler waits (a database, an HTTP call): ksafe_run with workers.
 *
 *   parallel_consumer [--bootstrap host:port] [--workers N]
 *
 * Copy this file. Replace handle() with your work. Keep the rest. With 32
 * workers a handler that waits 1 ms handles up to ~32 000 records/s per
 * member instead of ~1 000, records with the same key stay in order, and
 * a commit never passes a record that has not finished.
 */
#include <pthread.h>
#include <time.h>

#include "common.h"

#define TOPIC "payments"
#define RECORDS 20000
#define KEYS 1000

/* Shared by the workers: everything here is under `lock`. */
typedef struct work {
    pthread_mutex_t lock;
    int last[KEYS];   /* per key: the last order number seen, -1 none */
    int handled;
    int out_of_order; /* a key's order number not above its last */
    double t_first, t_last; /* when the first and the last record finished */
} work;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void wait_like_a_database(void)
{
    struct timespec ms = {0, 1000000L};
    nanosleep(&ms, NULL);
}

/* Your work. It runs on a worker thread, beside other calls of itself:
 * anything it shares (`payload`) needs a lock, and it must not call the
 * consumer. The record is valid for the call. Return OK only once its
 * effects are durable; RETRY makes only this record's key wait (other keys
 * go on); FAIL applies on_failure. */
static ksafe_handler_result handle(const ksafe_message *m, ksafe_error *err,
                                   void *payload)
{
    work *w = payload;
    size_t klen, vlen;
    const char *k = ksafe_message_key(m, &klen);
    const char *v = ksafe_message_value(m, &vlen);
    int key = -1, order = -1;

    (void)err;
    wait_like_a_database();
    /* the demo's data: key "customer-<k>", value "order-<n>" */
    if (k && klen > 9 && v && vlen > 6) {
        key = atoi(k + 9) % KEYS;
        order = atoi(v + 6);
    }
    pthread_mutex_lock(&w->lock);
    if (key >= 0) {
        if (order <= w->last[key])
            w->out_of_order++;
        w->last[key] = order;
    }
    w->t_last = now_s();
    if (!w->handled++)
        w->t_first = w->t_last;
    pthread_mutex_unlock(&w->lock);
    return KSAFE_HANDLER_OK;
}

int main(int argc, char **argv)
{
    ksafe_consumer_options co = KSAFE_CONSUMER_OPTIONS_INIT; /* safe preset */
    ksafe_loop_options lo = KSAFE_LOOP_OPTIONS_INIT;
    ksafe_loop_stats st;
    const char *topics[] = {TOPIC};
    ksafe_consumer *c = NULL;
    sample_cluster sc;
    ksafe_error err;
    work w;
    int i, rc, workers = 32;
    double t;

    for (i = 1; i + 1 < argc; i++)
        if (!strcmp(argv[i], "--workers")) {
            workers = atoi(argv[i + 1]);
            memmove(&argv[i], &argv[i + 2],
                    (size_t)(argc - i - 1) * sizeof(*argv));
            argc -= 2;
            break;
        }
    memset(&w, 0, sizeof(w));
    pthread_mutex_init(&w.lock, NULL);
    for (i = 0; i < KEYS; i++)
        w.last[i] = -1;
    sample_cluster_open(&sc, argc, argv);
    if (sc.embedded) { /* demo data; a real service has a producer elsewhere */
        sample_cluster_topic(&sc, TOPIC, 32);
        sample_produce_demo(&sc, TOPIC, RECORDS, KEYS);
    }
    co.bootstrap_servers = sc.bootstrap;
    sample_consumer_group(&sc, &co, 0);
    co.group_id = "payments-service";
    lo.handler = handle;
    lo.payload = &w;
    lo.workers = workers;              /* handler threads */
    lo.ordering = KSAFE_ORDER_KEY;     /* same key: in order; others: parallel */
    lo.max_in_flight = 10000;          /* then partitions pause */
    lo.drain_timeout_ms = 10000;       /* at a revoke or a stop */
    lo.commit_every_records = 1000;
    lo.commit_interval_ms = 1000;
    lo.max_attempts = 5;               /* then on_failure: STOP (default) */
    lo.stats = &st;
    if (ksafe_consumer_new(&c, &co, &err) ||
        ksafe_consumer_subscribe(c, topics, 1, &err) ||
        ksafe_stop_on_signals(c, &err)) { /* SIGTERM: drain, commit, leave */
        fprintf(stderr, "%s\n", err.message);
        return 1;
    }
    if (sc.embedded)
        sample_stop_after(c, 8000); /* demo only: stop after 8 s */
    rc = ksafe_run(c, &lo, &err); /* returns after stop: drained, committed */
    t = w.t_last - w.t_first;
    if (rc)
        fprintf(stderr, "stopped: %s\n", err.message);
    ksafe_consumer_free(c);
    fprintf(stderr,
            "handled %d records in %.2f s with %d workers (the handler waits "
            "1 ms): %.0f records/s; %llu commits; per-key order: %s\n",
            w.handled, t, workers, t > 0 ? w.handled / t : 0.0,
            (unsigned long long)st.commits,
            w.out_of_order ? "VIOLATED" : "kept");
    sample_cluster_close(&sc);
    return rc || w.out_of_order || (sc.embedded && w.handled < RECORDS) ? 1
                                                                        : 0;
}
