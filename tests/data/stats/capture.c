/* tests/data/stats/capture.c - how the documents beside it were captured:
 * librdkafka statistics JSON from a producer and a consumer on the embedded
 * cluster (not built; see docs/stats.md, "Captured documents"). */
#include <stdio.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>
#include <librdkafka/rdkafka.h>
#include <ksafe/ksafe.h>

static const char *outdir;
static int n_prod, n_cons;

static int stats_cb(rd_kafka_t *rk, char *json, size_t len, void *op)
{
    char path[512];
    FILE *f;
    int *n = rd_kafka_type(rk) == RD_KAFKA_PRODUCER ? &n_prod : &n_cons;
    (void)op;
    (*n)++;
    snprintf(path, sizeof(path), "%s/%s-%d.json", outdir,
             rd_kafka_type(rk) == RD_KAFKA_PRODUCER ? "producer" : "consumer", *n);
    f = fopen(path, "w");
    fwrite(json, 1, len, f);
    fclose(f);
    return 0;
}

static rd_kafka_t *mk(rd_kafka_type_t t, const char *bs)
{
    char e[512];
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    rd_kafka_conf_set(c, "bootstrap.servers", bs, e, sizeof e);
    rd_kafka_conf_set(c, "statistics.interval.ms", "500", e, sizeof e);
    if (t == RD_KAFKA_CONSUMER) {
        rd_kafka_conf_set(c, "group.id", "cap-group", e, sizeof e);
        rd_kafka_conf_set(c, "auto.offset.reset", "earliest", e, sizeof e);
        rd_kafka_conf_set(c, "enable.auto.commit", "false", e, sizeof e);
        rd_kafka_conf_set(c, "enable.auto.offset.store", "true", e, sizeof e);
        rd_kafka_conf_set(c, "partition.assignment.strategy", "cooperative-sticky", e, sizeof e);
    } else {
        rd_kafka_conf_set(c, "enable.idempotence", "true", e, sizeof e);
        rd_kafka_conf_set(c, "linger.ms", "200", e, sizeof e);
    }
    rd_kafka_conf_set_stats_cb(c, stats_cb);
    rd_kafka_t *rk = rd_kafka_new(t, c, e, sizeof e);
    if (!rk) { fprintf(stderr, "%s\n", e); exit(1); }
    return rk;
}

int main(int argc, char **argv)
{
    ksafe_mock_cluster *mc;
    ksafe_error err;
    rd_kafka_t *p, *c;
    int i, got = 0;
    outdir = argv[1];
    if (ksafe_mock_cluster_new(&mc, 1, &err)) { fprintf(stderr, "%s\n", err.message); return 1; }
    ksafe_mock_cluster_create_topic(mc, "orders", 3, &err);
    const char *bs = ksafe_mock_cluster_bootstrap(mc);
    p = mk(RD_KAFKA_PRODUCER, bs);
    for (i = 0; i < 300; i++) {
        char v[32]; snprintf(v, sizeof v, "v%d", i);
        rd_kafka_producev(p, RD_KAFKA_V_TOPIC("orders"), RD_KAFKA_V_PARTITION(i % 3),
                          RD_KAFKA_V_VALUE(v, strlen(v)), RD_KAFKA_V_END);
        if (i == 150) { rd_kafka_poll(p, 600); }
    }
    rd_kafka_poll(p, 100); /* a stats doc with messages queued */
    rd_kafka_flush(p, 10000);
    for (i = 0; i < 3; i++) rd_kafka_poll(p, 500);
    c = mk(RD_KAFKA_CONSUMER, bs);
    rd_kafka_poll_set_consumer(c);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, "orders", RD_KAFKA_PARTITION_UA);
    rd_kafka_subscribe(c, l);
    rd_kafka_topic_partition_list_destroy(l);
    int target = 0;
    for (i = 0; i < 400 && (!target || n_cons < target); i++) {
        if (got == 300 && !target) { rd_kafka_commit(c, NULL, 0); target = n_cons + 3; }
        rd_kafka_message_t *m = rd_kafka_consumer_poll(c, 200);
        if (m) {
            if (!m->err) {
                got++; usleep(12000);
                if (got == 150) rd_kafka_commit_message(c, m, 0);
                /* partition 0 fully committed */
                if (m->partition == 0 && m->offset == 99) rd_kafka_commit_message(c, m, 0);
            }
            rd_kafka_message_destroy(m);
        }
    }
    fprintf(stderr, "consumed %d, %d producer docs, %d consumer docs\n", got, n_prod, n_cons);
    rd_kafka_consumer_close(c);
    rd_kafka_destroy(c);
    rd_kafka_destroy(p);
    ksafe_mock_cluster_free(mc);
    return 0;
}
