/*
 * samples/rebalance_hooks.c - watch a group rebalance: two consumers share a
 * topic, a third joins, one leaves; each prints what it is given and what it
 * gives up. Cooperative-sticky (the preset) moves only what must move.
 * One thread drives all three by polling each in turn.
 *
 *   rebalance_hooks [--bootstrap host:port]
 */
#include <time.h>

#include "common.h"

#define TOPIC "rebalance-hooks"

static void show(const char *what, const rd_kafka_topic_partition_list_t *l,
                 void *name)
{
    int i;

    if (!l->cnt)
        return; /* cooperative: an incremental step with nothing new */
    printf("%s %-9s", (const char *)name, what);
    for (i = 0; i < l->cnt; i++)
        printf(" %s[%d]", l->elems[i].topic, (int)l->elems[i].partition);
    printf("\n");
    fflush(stdout);
}

static void on_assigned(ksafe_consumer *c,
                        const rd_kafka_topic_partition_list_t *l, void *name)
{
    (void)c;
    show("assigned", l, name);
}

static void on_revoked(ksafe_consumer *c,
                       const rd_kafka_topic_partition_list_t *l, void *name)
{
    /* Finish and ksafe_consumer_done() in-flight work here: ksafe commits
     * it right after this hook returns. */
    (void)c;
    show("revoked", l, name);
}

static void on_lost(ksafe_consumer *c,
                    const rd_kafka_topic_partition_list_t *l, void *name)
{
    (void)c; /* nothing was committed for these: they come again */
    show("LOST", l, name);
}

static ksafe_consumer *member(const sample_cluster *sc, const char *name)
{
    ksafe_consumer_options o = KSAFE_CONSUMER_OPTIONS_INIT;
    const char *topic = TOPIC;
    ksafe_consumer *c;
    ksafe_error err;

    o.bootstrap_servers = sc->bootstrap;
    o.group_id = "rebalance-hooks-sample";
    /* A short session, so the embedded cluster is quick (under KIP-848
     * the broker sets it). */
    sample_consumer_group(sc, &o, 6000);
    o.on_assigned = on_assigned;
    o.on_revoked = on_revoked;
    o.on_lost = on_lost;
    o.rebalance_payload = (void *)name;
    if (ksafe_consumer_new(&c, &o, &err) ||
        ksafe_consumer_subscribe(c, &topic, 1, &err)) {
        fprintf(stderr, "consumer %s: %s\n", name, err.message);
        exit(1);
    }
    return c;
}

/* Polls every member for `seconds`; records are marked as processed. */
static void run(ksafe_consumer **cs, int n, int seconds)
{
    time_t end = time(NULL) + seconds;
    ksafe_error err;
    int i;

    while (time(NULL) < end)
        for (i = 0; i < n; i++) {
            ksafe_message *m = NULL;
            if (!cs[i])
                continue;
            if (ksafe_consumer_poll(cs[i], 50, &m, &err))
                fprintf(stderr, "poll: %s\n", err.message);
            if (m && ksafe_consumer_done(cs[i], m, &err))
                fprintf(stderr, "done: %s\n", err.message);
            ksafe_message_free(m);
            ksafe_consumer_commit_maybe(cs[i], NULL);
        }
}

int main(int argc, char **argv)
{
    sample_cluster sc;
    ksafe_consumer *cs[3] = {NULL, NULL, NULL};
    ksafe_error err;
    int i;

    sample_cluster_open(&sc, argc, argv);
    sample_cluster_topic(&sc, TOPIC, 6);
    printf("-- A and B join\n");
    cs[0] = member(&sc, "A");
    cs[1] = member(&sc, "B");
    run(cs, 3, 12);
    printf("-- C joins\n");
    cs[2] = member(&sc, "C");
    run(cs, 3, 16);
    printf("-- A leaves\n");
    if (ksafe_consumer_close(cs[0], &err))
        fprintf(stderr, "close A: %s\n", err.message);
    ksafe_consumer_free(cs[0]);
    cs[0] = NULL;
    run(cs, 3, 12);
    printf("-- done\n");
    for (i = 1; i < 3; i++)
        ksafe_consumer_free(cs[i]); /* closes: commits, leaves the group */
    sample_cluster_close(&sc);
    return 0;
}
