/*
 * samples/idempotent_consumer.c - exactly-once effects in a database.
 *
 *   idempotent_consumer [--bootstrap host:port]
 *
 * At-least-once delivery brings some records twice (a crash before the
 * commit, a rebalance, a producer retry). Here each record updates a
 * business table in SQLite, and ksafe's SQLite dedup store writes its mark
 * (and the partition's offset) in the SAME transaction, on the same
 * connection: either the effect and the mark both exist, or neither does.
 * A repeated event is skipped. One machine; for a group spread over
 * machines use the PostgreSQL store the same way (ksafe_dedup_pg_new).
 */
#include <sqlite3.h>

#include "common.h"

#define TOPIC "payments"

/* The business effect: credit an account. Runs inside the store's
 * transaction because it uses the store's connection. */
static ksafe_handler_result credit(const ksafe_message *m, ksafe_error *err,
                                   void *payload)
{
    sqlite3 *db = payload;
    sqlite3_stmt *st;
    size_t klen;
    const char *account = ksafe_message_key(m, &klen);
    int ok;

    if (sqlite3_prepare_v2(db,
                           "INSERT INTO balances(account, amount) VALUES (?, 10)"
                           " ON CONFLICT(account) DO UPDATE SET amount = amount + 10",
                           -1, &st, NULL) != SQLITE_OK)
        return KSAFE_HANDLER_RETRY;
    sqlite3_bind_text(st, 1, account, (int)klen, SQLITE_TRANSIENT);
    ok = sqlite3_step(st) == SQLITE_DONE;
    sqlite3_finalize(st);
    if (!ok)
        snprintf(err->message, sizeof(err->message), "%s", sqlite3_errmsg(db));
    return ok ? KSAFE_HANDLER_OK : KSAFE_HANDLER_RETRY; /* rolled back */
}

static void send_demo_payments(sample_cluster *sc)
{
    ksafe_producer_options o = KSAFE_PRODUCER_OPTIONS_INIT;
    ksafe_producer *p;
    int i;

    o.bootstrap_servers = sc->bootstrap;
    if (ksafe_producer_new(&p, &o, NULL))
        exit(1);
    for (i = 0; i < 12; i++) { /* payment 3 is sent twice: a producer retry */
        int id = i < 11 ? i : 3;
        char key[16], evt[16];
        ksafe_header h = {"event-id", evt, 0};
        ksafe_record r = KSAFE_RECORD_INIT;
        snprintf(key, sizeof(key), "acct-%d", id % 3);
        h.value_len = (size_t)snprintf(evt, sizeof(evt), "pay-%d", id);
        r.topic = TOPIC;
        r.key = key;
        r.key_len = strlen(key);
        r.headers = &h;
        r.header_count = 1;
        ksafe_producer_send(p, &r, NULL);
    }
    ksafe_producer_close(p, NULL);
    ksafe_producer_free(p);
}

int main(int argc, char **argv)
{
    ksafe_consumer_options co = KSAFE_CONSUMER_OPTIONS_INIT;
    ksafe_loop_options lo = KSAFE_LOOP_OPTIONS_INIT;
    ksafe_dedup_sqlite_options so = KSAFE_DEDUP_SQLITE_OPTIONS_INIT;
    const char *topics[] = {TOPIC};
    ksafe_dedup_store *store = NULL;
    ksafe_dedup_key *key = NULL;
    ksafe_loop_stats stats;
    ksafe_consumer *c = NULL;
    sample_cluster sc;
    ksafe_error err;
    sqlite3 *db;
    sqlite3_stmt *st;
    int rc;

    char path[64] = "payments.db";

    sample_cluster_open(&sc, argc, argv);
    if (sc.embedded) { /* a fresh cluster gets a fresh database */
        sample_cluster_topic(&sc, TOPIC, 2);
        send_demo_payments(&sc);
        snprintf(path, sizeof(path), "/tmp/ksafe-payments-%ld.db",
                 (long)getpid());
    }
    /* Your database: the business table and the store share it. */
    if (sqlite3_open(path, &db) != SQLITE_OK ||
        sqlite3_exec(db, "CREATE TABLE IF NOT EXISTS balances("
                         "account TEXT PRIMARY KEY, amount INTEGER)",
                     NULL, NULL, NULL) != SQLITE_OK) {
        fprintf(stderr, "sqlite: %s\n", sqlite3_errmsg(db));
        return 1;
    }
    so.db = db; /* marks join the handler's transaction on this connection */
    co.bootstrap_servers = sc.bootstrap;
    sample_consumer_group(&sc, &co, 0);
    co.group_id = "payments-service";
    lo.handler = credit;
    lo.payload = db;
    lo.stats = &stats;
    lo.dedup_offsets = 1; /* positions live with the effects too */
    if (ksafe_dedup_sqlite_new(&store, &so, &err) ||
        ksafe_dedup_key_parse(&key, "header:event-id", &err) ||
        ksafe_consumer_new(&c, &co, &err) ||
        ksafe_consumer_subscribe(c, topics, 1, &err) ||
        ksafe_stop_on_signals(c, &err)) {
        fprintf(stderr, "%s\n", err.message);
        return 1;
    }
    lo.dedup_store = store;
    lo.dedup_key = key; /* "the same event" = the same event-id header */
    if (sc.embedded)
        sample_stop_after(c, 8000); /* demo only */
    rc = ksafe_run(c, &lo, &err);
    if (rc)
        fprintf(stderr, "stopped: %s\n", err.message);
    printf("%s: applied %llu, skipped as duplicates %llu\n", path,
           (unsigned long long)stats.processed,
           (unsigned long long)stats.duplicates);
    if (sqlite3_prepare_v2(db, "SELECT account, amount FROM balances ORDER BY 1",
                           -1, &st, NULL) == SQLITE_OK) {
        while (sqlite3_step(st) == SQLITE_ROW)
            printf("  %s: %d\n", sqlite3_column_text(st, 0),
                   sqlite3_column_int(st, 1));
        sqlite3_finalize(st);
    }
    ksafe_consumer_free(c);
    ksafe_dedup_store_free(store);
    ksafe_dedup_key_free(key);
    sqlite3_close(db);
    sample_cluster_close(&sc);
    return rc ? 1 : 0;
}
