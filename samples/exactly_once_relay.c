/*
 * samples/exactly_once_relay.c - the template for consume-transform-produce,
 * exactly once from Kafka to Kafka.
 *
 *   exactly_once_relay                  embedded cluster: demo orders are
 *                                       relayed for a few seconds, then the
 *                                       invoices are read back
 *   exactly_once_relay --bootstrap host:port
 *                                       relays `orders` to `invoices` until
 *                                       SIGINT or SIGTERM
 *
 * Copy this file. Replace to_invoice() with your transform. Keep the rest.
 *
 * Each batch of orders, the invoices made from them and the orders' offsets
 * go into one transaction: a read_committed reader of `invoices` sees one
 * invoice per order, and the group's offsets move past an order exactly
 * when its invoice becomes visible, whatever crashes, aborts or rebalances
 * happen in between. What the transform does outside Kafka is not covered:
 * see docs/exactly-once.md.
 *
 * The embedded cluster runs the transactions but does not hide aborted
 * records from read_committed readers: the demo's read-back says so when
 * it sees them.
 */
#include <time.h>

#include "common.h"

#define IN_TOPIC "orders"
#define OUT_TOPIC "invoices"
#define DEAD_LETTER_TOPIC "orders-dead-letter"
#define PARTITIONS 3
#define DEMO_ORDERS 20 /* good ones; the demo adds one malformed order */

/*
 * Your transform: one order line "order <n>: <quantity> x <unit price in
 * cents>" becomes one invoice with the same key (so invoices of a customer
 * stay in order on one partition). It may run more than once for an order
 * (after an abort, only the last run's output counts): it must depend on
 * the record alone and have no effects outside Kafka, or make those
 * idempotent (docs/dedup.md). FAIL: the line can never be an invoice;
 * having emitted nothing for it, the relay dead-letters the order in the
 * open transaction, with its offset (a FAIL after an emit would abort and
 * redo the batch first, so that the emit goes).
 */
static ksafe_handler_result to_invoice(const ksafe_message *m,
                                       ksafe_relay_emitter *out,
                                       ksafe_error *err, void *payload)
{
    ksafe_record rec = KSAFE_RECORD_INIT;
    size_t key_len, len;
    const void *key = ksafe_message_key(m, &key_len);
    const char *v = ksafe_message_value(m, &len);
    char line[128], invoice[128];
    int n, quantity, cents, end = 0;
    long long total;

    (void)payload;
    if (v && len < sizeof(line)) {
        memcpy(line, v, len);
        line[len] = '\0';
    } else {
        line[0] = '\0';
    }
    if (sscanf(line, "order %d: %d x %d%n", &n, &quantity, &cents, &end) !=
            3 ||
        line[end] != '\0' || quantity < 1 || quantity > 1000000 ||
        cents < 0) {
        if (err)
            snprintf(err->message, sizeof(err->message),
                     "not an order line (\"order <n>: <quantity> x "
                     "<cents>\")");
        return KSAFE_HANDLER_FAIL;
    }
    total = (long long)quantity * cents;
    snprintf(invoice, sizeof(invoice), "invoice for order %d: %lld.%02lld",
             n, total / 100, total % 100);
    rec.topic = OUT_TOPIC;
    rec.key = key;
    rec.key_len = key_len;
    rec.value = invoice;
    rec.value_len = strlen(invoice);
    /* Part of the open transaction. A failed emit fails the record
     * whatever we return: the relay aborts and retries it. */
    if (ksafe_relay_emit(out, &rec, err))
        return KSAFE_HANDLER_RETRY;
    return KSAFE_HANDLER_OK;
}

/* ---- demo only: orders in, invoices read back (embedded cluster) ------- */

static void produce_orders(const sample_cluster *sc)
{
    ksafe_producer_options o = KSAFE_PRODUCER_OPTIONS_INIT;
    ksafe_producer *p;
    ksafe_error err;
    int i;

    o.bootstrap_servers = sc->bootstrap;
    if (ksafe_producer_new(&p, &o, &err)) {
        fprintf(stderr, "producer: %s\n", err.message);
        exit(1);
    }
    for (i = 0; i <= DEMO_ORDERS; i++) {
        ksafe_record r = KSAFE_RECORD_INIT;
        char key[24], value[64];

        snprintf(key, sizeof(key), "customer-%d", i % 5);
        if (i == DEMO_ORDERS / 2) /* one that no transform can turn into */
            snprintf(value, sizeof(value), "order ?: lots x cheap");
        else
            snprintf(value, sizeof(value), "order %d: %d x %d",
                     i < DEMO_ORDERS / 2 ? i : i - 1, 1 + i % 4,
                     199 + 100 * i);
        r.topic = IN_TOPIC;
        r.key = key;
        r.key_len = strlen(key);
        r.value = value;
        r.value_len = strlen(value);
        if (ksafe_producer_send(p, &r, &err)) {
            fprintf(stderr, "send: %s\n", err.message);
            exit(1);
        }
    }
    if (ksafe_producer_close(p, &err)) {
        fprintf(stderr, "producer close: %s\n", err.message);
        exit(1);
    }
    ksafe_producer_free(p);
    printf("produced %d orders (one of them malformed) to %s\n",
           DEMO_ORDERS + 1, IN_TOPIC);
}

/*
 * Reads `invoices` from the start with a ksafe consumer (read_committed,
 * its preset) and counts invoices per order into seen[]. Returns how many
 * invoices it read, -1 on error.
 */
static int read_invoices(const sample_cluster *sc, int *seen)
{
    ksafe_consumer_options co = KSAFE_CONSUMER_OPTIONS_INIT;
    rd_kafka_topic_partition_list_t *l;
    ksafe_consumer *c;
    ksafe_error err;
    int i, read = 0, distinct = 0;
    time_t deadline = time(NULL) + 30, settle = 0;

    co.bootstrap_servers = sc->bootstrap;
    sample_consumer_group(sc, &co, 0);
    co.group_id = "invoices-reader"; /* assigned below: no group work */
    if (ksafe_consumer_new(&c, &co, &err)) {
        fprintf(stderr, "reader: %s\n", err.message);
        return -1;
    }
    l = rd_kafka_topic_partition_list_new(PARTITIONS);
    for (i = 0; i < PARTITIONS; i++)
        rd_kafka_topic_partition_list_add(l, OUT_TOPIC, i)->offset =
            RD_KAFKA_OFFSET_BEGINNING;
    rd_kafka_assign(ksafe_consumer_rdkafka(c), l);
    rd_kafka_topic_partition_list_destroy(l);
    /* Once every order has its invoice, wait a little for duplicates. */
    while (time(NULL) < deadline && (!settle || time(NULL) < settle)) {
        ksafe_message *m;
        const char *v;
        char buf[128];
        size_t len;
        int n;

        if (ksafe_consumer_poll(c, 200, &m, &err)) {
            fprintf(stderr, "reader poll: %s\n", err.message);
            break;
        }
        if (!m)
            continue;
        v = ksafe_message_value(m, &len);
        snprintf(buf, sizeof(buf), "%.*s", (int)len, v ? v : "");
        printf("  %s [%d] @%lld: %s\n", OUT_TOPIC,
               (int)ksafe_message_partition(m),
               (long long)ksafe_message_offset(m), buf);
        if (sscanf(buf, "invoice for order %d:", &n) == 1 && n >= 0 &&
            n < DEMO_ORDERS) {
            read++;
            if (seen[n]++ == 0 && ++distinct == DEMO_ORDERS)
                settle = time(NULL) + 2;
        }
        ksafe_message_free(m);
    }
    ksafe_consumer_free(c);
    return read;
}

/* What the read-back shows, against what exactly-once promises. */
static int check_invoices(const sample_cluster *sc,
                          const ksafe_relay_stats *st)
{
    int seen[DEMO_ORDERS] = {0}, read, i, missing = 0;

    printf("invoices, read back by a read_committed reader:\n");
    if ((read = read_invoices(sc, seen)) < 0)
        return 1;
    for (i = 0; i < DEMO_ORDERS; i++)
        if (!seen[i]) {
            fprintf(stderr, "order %d has no invoice\n", i);
            missing++;
        }
    if (missing)
        return 1;
    if (st->dead_lettered != 1) {
        fprintf(stderr, "the malformed order was dead-lettered %llu times, "
                        "not once\n",
                (unsigned long long)st->dead_lettered);
        return 1;
    }
    if (read == DEMO_ORDERS) {
        printf("every order has exactly one invoice\n");
        return 0;
    }
    if (st->aborts > 0) {
        /* Kafka hides an aborted transaction's records from read_committed
         * readers; librdkafka's mock cluster does not. */
        printf("%d invoices of aborted transactions are visible: the "
               "embedded cluster does not hide them (a Kafka broker shows "
               "each order's invoice once)\n",
               read - DEMO_ORDERS);
        return 0;
    }
    fprintf(stderr, "%d invoices for %d orders, with no transaction "
                    "aborted\n",
            read, DEMO_ORDERS);
    return 1;
}

int main(int argc, char **argv)
{
    ksafe_consumer_options co = KSAFE_CONSUMER_OPTIONS_INIT;
    ksafe_producer_options po = KSAFE_PRODUCER_OPTIONS_INIT;
    ksafe_relay_options ro = KSAFE_RELAY_OPTIONS_INIT;
    ksafe_relay_stats stats;
    const char *topics[] = {IN_TOPIC};
    const char *worker = getenv("INVOICER_WORKER");
    char txn_id[256], suffix[64];
    ksafe_consumer *c = NULL;
    ksafe_producer *p = NULL;
    sample_cluster sc;
    ksafe_error err;
    int rc;

    sample_cluster_open(&sc, argc, argv);
    sample_cluster_topic(&sc, IN_TOPIC, PARTITIONS);
    sample_cluster_topic(&sc, OUT_TOPIC, PARTITIONS);
    sample_cluster_topic(&sc, DEAD_LETTER_TOPIC, PARTITIONS);
    if (sc.embedded) /* demo data; a real service has a producer elsewhere */
        produce_orders(&sc);

    /*
     * The transactional id names this process slot, not this run: the same
     * after a restart, so the restarted relay fences its predecessor and
     * aborts the transaction it left open at once (read_committed readers
     * and the partitions' next owner do not wait for it to time out). The
     * consumer group metadata fences members that lost their partitions
     * (KIP-447), so one id per process is enough - but two processes
     * running at the same time must not share one: the newer fences the
     * older. Host name + worker number (INVOICER_WORKER, e.g. a StatefulSet
     * ordinal; [a-zA-Z0-9._-]) gives both.
     */
    snprintf(suffix, sizeof(suffix), "invoicer-%s",
             worker && *worker ? worker : "0");
    if (ksafe_group_instance_id(txn_id, sizeof(txn_id), suffix, &err)) {
        fprintf(stderr, "transactional id: %s\n", err.message);
        sample_cluster_close(&sc);
        return 1;
    }
    po.bootstrap_servers = sc.bootstrap;
    po.transactional_id = txn_id;
    /*
     * Shorter than the consumer's session (45 s here), or the relay refuses
     * to start: a relay that dies with a transaction open blocks every
     * read_committed reader of `invoices`, and the next owner of its
     * partitions, until the broker aborts that transaction. 10 s is Kafka
     * Streams' choice for exactly-once; a batch (batch_max_ms) must fit in
     * half of it.
     */
    po.transaction_timeout_ms = 10000;
    po.delivery_timeout_ms = 10000; /* a record cannot outlive its txn */

    co.bootstrap_servers = sc.bootstrap;
    sample_consumer_group(&sc, &co, 0);
    co.group_id = "invoicer"; /* the offsets committed in the transactions */

    memset(&stats, 0, sizeof(stats));
    ro.transform = to_invoice;
    ro.batch_records = 500;   /* one transaction per 500 orders */
    ro.batch_max_ms = 100;    /* or per 100 ms, whichever comes first */
    ro.max_attempts = 5;      /* for RETRY; FAIL goes to on_failure at once */
    ro.on_failure = KSAFE_FAILURE_DEAD_LETTER; /* written in the same */
    ro.dead_letter_topic = DEAD_LETTER_TOPIC;  /* txn as its offset */
    ro.on_fatal = KSAFE_RELAY_FATAL_STOP; /* fenced: a newer one took over */
    ro.stats = &stats;

    if (ksafe_producer_new(&p, &po, &err) ||
        ksafe_consumer_new(&c, &co, &err) ||
        ksafe_consumer_subscribe(c, topics, 1, &err) ||
        ksafe_stop_on_signals(c, &err)) { /* SIGTERM: commit, leave */
        fprintf(stderr, "%s\n", err.message);
        ksafe_consumer_free(c);
        ksafe_producer_free(p);
        sample_cluster_close(&sc);
        return 1;
    }
    fprintf(stderr, "relaying %s -> %s as transactional id %s\n", IN_TOPIC,
            OUT_TOPIC, txn_id);
    if (sc.embedded)
        sample_stop_after(c, 12000); /* demo only: stop after 12 s */
    /* Returns after stop with the last transaction committed and the
     * consumer closed, or with the error that ended it. */
    rc = ksafe_relay_run(c, p, &ro, &err);
    if (rc)
        fprintf(stderr, "relay stopped: %s\n", err.message);
    ksafe_consumer_free(c);
    if (ksafe_producer_close(p, &err) && !rc) {
        fprintf(stderr, "producer close: %s\n", err.message);
        rc = KSAFE_EUNDELIVERED;
    }
    ksafe_producer_free(p);
    printf("relayed %llu orders in %llu transactions (%llu aborted, %llu "
           "of them by rebalances), %llu invoices emitted, %llu "
           "dead-lettered\n",
           (unsigned long long)stats.committed,
           (unsigned long long)stats.transactions,
           (unsigned long long)stats.aborts,
           (unsigned long long)stats.rebalance_aborts,
           (unsigned long long)stats.emitted,
           (unsigned long long)stats.dead_lettered);
    if (!rc && sc.embedded)
        rc = check_invoices(&sc, &stats);
    sample_cluster_close(&sc);
    return rc ? 1 : 0;
}
