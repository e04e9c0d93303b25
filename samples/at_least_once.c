/*
 * samples/at_least_once.c - the template for a consuming service.
 *
 *   at_least_once [--bootstrap host:port]
 *
 * Copy this file. Replace handle() with your work. Keep the rest.
 */
#include "common.h"

#define TOPIC "orders"

/* Your work. Return OK only once its effects are durable: that is when the
 * record gets marked processed. A record can arrive again after a crash or a
 * rebalance (at-least-once), so make the effect idempotent, or use a dedup
 * store. RETRY = transient (it comes back after a backoff, its partition
 * paused meanwhile); FAIL = permanent (on_failure decides). */
static ksafe_handler_result handle(const ksafe_message *m, ksafe_error *err,
                                   void *payload)
{
    size_t len;
    const char *v = ksafe_message_value(m, &len);

    (void)err;
    (*(int *)payload)++;
    printf("%s [%d] @%lld: %.*s\n", ksafe_message_topic(m),
           (int)ksafe_message_partition(m), (long long)ksafe_message_offset(m),
           (int)len, v);
    return KSAFE_HANDLER_OK;
}

int main(int argc, char **argv)
{
    ksafe_consumer_options co = KSAFE_CONSUMER_OPTIONS_INIT; /* safe preset */
    ksafe_loop_options lo = KSAFE_LOOP_OPTIONS_INIT;
    const char *topics[] = {TOPIC};
    ksafe_consumer *c = NULL;
    sample_cluster sc;
    ksafe_error err;
    int handled = 0, rc;

    sample_cluster_open(&sc, argc, argv);
    if (sc.embedded) { /* demo data; a real service has a producer elsewhere */
        sample_cluster_topic(&sc, TOPIC, 3);
        sample_produce_demo(&sc, TOPIC, 10, 5);
    }
    co.bootstrap_servers = sc.bootstrap;
    sample_consumer_group(&sc, &co, 0);
    co.group_id = "orders-service";     /* offsets are kept per group */
    lo.handler = handle;
    lo.payload = &handled;
    lo.commit_every_records = 500;      /* commit traffic follows this, */
    lo.commit_interval_ms = 1000;       /* not the message rate */
    lo.max_attempts = 5;                /* then on_failure: STOP (default), */
    lo.on_failure = KSAFE_FAILURE_STOP; /* SKIP, or DEAD_LETTER */
    if (ksafe_consumer_new(&c, &co, &err) ||
        ksafe_consumer_subscribe(c, topics, 1, &err) ||
        ksafe_stop_on_signals(c, &err)) { /* SIGTERM: finish, commit, leave */
        fprintf(stderr, "%s\n", err.message);
        return 1;
    }
    if (sc.embedded)
        sample_stop_after(c, 8000); /* demo only: stop after 8 s */
    rc = ksafe_run(c, &lo, &err); /* returns after stop: committed, closed */
    if (rc)
        fprintf(stderr, "stopped: %s\n", err.message);
    ksafe_consumer_free(c);
    fprintf(stderr, "handled %d records\n", handled);
    sample_cluster_close(&sc);
    return rc ? 1 : 0;
}
