/*
 * tests/dedup_worker.c - a consumer-group member whose effects go to a
 * database in the same transaction as its dedup marks; driven (and
 * SIGKILLed) by tests/test_crash.c.
 *
 *   dedup-worker BOOTSTRAP TOPIC GROUP sqlite:PATH|pg:CONNINFO PREFIX SESSION_MS
 *
 * SESSION_MS is the group session timeout (the test passes the kit's, see
 * ksafe_test_group_timing()); the heartbeat is a sixth of it.
 * Each record's value is inserted into table PREFIX_applied (marks and
 * offsets go to PREFIX_marks and PREFIX_offsets); the loop's store
 * (SQLite or PostgreSQL, on the same connection) claims the value as the
 * dedup key. SIGTERM stops it gracefully.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <ksafe/ksafe.h>
#ifdef TEST_HAVE_SQLITE
#include <sqlite3.h>
#endif
#ifdef TEST_HAVE_PG
#include <libpq-fe.h>
#endif

typedef struct sink {
#ifdef TEST_HAVE_SQLITE
    sqlite3 *db;
    sqlite3_stmt *insert;
#endif
#ifdef TEST_HAVE_PG
    PGconn *pg;
#endif
    int is_pg;
    char insert_sql[160];
} sink;

/* The dedup key: the record's value ("value-<i>"), unique per event. */
static int value_key(const ksafe_message *m, void *buf, size_t size,
                     size_t *len, ksafe_error *err, void *payload)
{
    size_t n;
    const void *v = ksafe_message_value(m, &n);

    (void)payload;
    if (!v || n > size) {
        snprintf(err->message, sizeof(err->message), "no usable value");
        return KSAFE_EINVAL;
    }
    memcpy(buf, v, n);
    *len = n;
    return 0;
}

/* Batch handler: the effects of every fresh record, inside the store's
 * transaction (same connection). */
static ksafe_handler_result apply(const ksafe_message *const *msgs, size_t n,
                                  size_t *succeeded, ksafe_error *err,
                                  void *payload)
{
    sink *s = payload;
    size_t i;

    for (i = 0; i < n; i++) {
        struct timespec work = {0, 1000 * 1000L}; /* pretend to work */
        size_t len;
        const char *v = ksafe_message_value(msgs[i], &len);
        char value[64];

        nanosleep(&work, NULL);
        snprintf(value, sizeof(value), "%.*s", (int)len, v);
#ifdef TEST_HAVE_PG
        if (s->is_pg) {
            const char *params[1] = {value};
            PGresult *r = PQexecParams(s->pg, s->insert_sql, 1, NULL, params,
                                       NULL, NULL, 0);
            int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
            PQclear(r);
            if (!ok)
                goto fail;
            continue;
        }
#endif
#ifdef TEST_HAVE_SQLITE
        sqlite3_reset(s->insert);
        sqlite3_bind_text(s->insert, 1, value, -1, SQLITE_TRANSIENT);
        if (sqlite3_step(s->insert) != SQLITE_DONE)
            goto fail;
        continue;
#endif
        goto fail;
    }
    return KSAFE_HANDLER_OK;
fail:
    *succeeded = i;
    snprintf(err->message, sizeof(err->message), "insert failed");
    return KSAFE_HANDLER_RETRY;
}

int main(int argc, char **argv)
{
    static const char *const fast[] = {"fetch.wait.max.ms", "10",
                                       "reconnect.backoff.max.ms", "500",
                                       NULL};
    ksafe_consumer_options co = KSAFE_CONSUMER_OPTIONS_INIT;
    ksafe_loop_options lo = KSAFE_LOOP_OPTIONS_INIT;
    ksafe_dedup_store *store = NULL;
    ksafe_dedup_key *key = NULL;
    ksafe_consumer *c = NULL;
    ksafe_error err;
    sink s;
    int rc;

    char create[160], marks[64], offsets[64];

    if (argc != 7 || atoi(argv[6]) < 1) {
        fprintf(stderr, "usage: %s BOOTSTRAP TOPIC GROUP "
                        "sqlite:PATH|pg:CONNINFO PREFIX SESSION_MS\n",
                argv[0]);
        return 2;
    }
    memset(&s, 0, sizeof(s));
    snprintf(create, sizeof(create), "CREATE TABLE IF NOT EXISTS %s_applied(v TEXT)",
             argv[5]);
    snprintf(marks, sizeof(marks), "%s_marks", argv[5]);
    snprintf(offsets, sizeof(offsets), "%s_offsets", argv[5]);
    if (strncmp(argv[4], "sqlite:", 7) == 0) {
#ifdef TEST_HAVE_SQLITE
        ksafe_dedup_sqlite_options so;
        ksafe_dedup_sqlite_options_init(&so, KSAFE_DEDUP_SQLITE_OPTIONS_VERSION);
        snprintf(s.insert_sql, sizeof(s.insert_sql),
                 "INSERT INTO %s_applied(v) VALUES (?)", argv[5]);
        if (sqlite3_open(argv[4] + 7, &s.db) != SQLITE_OK ||
            sqlite3_exec(s.db, "PRAGMA journal_mode=WAL; PRAGMA busy_timeout=5000",
                         NULL, NULL, NULL) != SQLITE_OK ||
            sqlite3_exec(s.db, create, NULL, NULL, NULL) != SQLITE_OK ||
            sqlite3_prepare_v2(s.db, s.insert_sql, -1, &s.insert, NULL) !=
                SQLITE_OK) {
            fprintf(stderr, "sqlite: %s\n", sqlite3_errmsg(s.db));
            return 1;
        }
        so.db = s.db;
        so.marks_table = marks;
        so.offsets_table = offsets;
        rc = ksafe_dedup_sqlite_new(&store, &so, &err);
#else
        fprintf(stderr, "built without SQLite\n");
        return 1;
#endif
    } else if (strncmp(argv[4], "pg:", 3) == 0) {
#ifdef TEST_HAVE_PG
        ksafe_dedup_pg_options po;
        PGresult *r;
        ksafe_dedup_pg_options_init(&po, KSAFE_DEDUP_PG_OPTIONS_VERSION);
        s.is_pg = 1;
        s.pg = PQconnectdb(argv[4] + 3);
        if (PQstatus(s.pg) != CONNECTION_OK) {
            fprintf(stderr, "pg: %s\n", PQerrorMessage(s.pg));
            return 1;
        }
        snprintf(s.insert_sql, sizeof(s.insert_sql),
                 "INSERT INTO %s_applied(v) VALUES ($1)", argv[5]);
        PQclear(PQexec(s.pg, "SET client_min_messages = warning"));
        r = PQexec(s.pg, create);
        PQclear(r);
        po.conn = s.pg;
        po.marks_table = marks;
        po.offsets_table = offsets;
        rc = ksafe_dedup_pg_new(&store, &po, &err);
#else
        fprintf(stderr, "built without PostgreSQL\n");
        return 1;
#endif
    } else {
        fprintf(stderr, "store must be sqlite:PATH or pg:CONNINFO\n");
        return 2;
    }
    if (rc || ksafe_dedup_key_new_custom(&key, value_key, NULL, &err)) {
        fprintf(stderr, "dedup: %s\n", err.message);
        return 1;
    }
    co.bootstrap_servers = argv[1];
    co.group_id = argv[3];
    /* The protocol of the test run (KSAFE_TEST_GROUP_PROTOCOL); under the
     * classic one the session of argv[6]. */
    {
        ksafe_test_timing t;
        t.session_timeout_ms = atoi(argv[6]);
        t.heartbeat_interval_ms = t.session_timeout_ms / 6;
        if (ksafe_test_consumer_group(&co, t, &err)) {
            fprintf(stderr, "dedup: %s\n", err.message);
            return 2;
        }
    }
    co.rdkafka_properties = fast;
    lo.batch_handler = apply;
    lo.batch_size = 200;
    lo.batch_max_wait_ms = 20;
    lo.payload = &s;
    /* a failed insert is the database's trouble (a restart): retry it for
     * as long as a restart may take, never skip the record */
    lo.max_attempts = 100;
    lo.backoff_max_ms = 1000;
    lo.commit_every_records = 200;
    lo.commit_interval_ms = 500;
    lo.dedup_store = store;
    lo.dedup_key = key;
    lo.dedup_offsets = 1;
    if (ksafe_consumer_new(&c, &co, &err) ||
        ksafe_consumer_subscribe(c, (const char *const *)&argv[2], 1, &err) ||
        ksafe_stop_on_signals(c, &err)) {
        fprintf(stderr, "worker: %s\n", err.message);
        return 1;
    }
    rc = ksafe_run(c, &lo, &err);
    if (rc)
        fprintf(stderr, "worker: %s\n", err.message);
    if (rc == KSAFE_ECOMMIT) {
        /* Kafka did not take the last positions (e.g. the group was still
         * rebalancing at stop), but with dedup_offsets the store holds
         * them, in the same transactions as the effects: the next owner
         * starts there, so nothing is applied twice and this stop is
         * clean. The line above still reports it. */
        fprintf(stderr, "worker: the store keeps those offsets\n");
        rc = 0;
    }
    ksafe_consumer_free(c);
    ksafe_dedup_store_free(store);
    ksafe_dedup_key_free(key);
#ifdef TEST_HAVE_SQLITE
    if (s.insert)
        sqlite3_finalize(s.insert);
    if (s.db)
        sqlite3_close(s.db);
#endif
#ifdef TEST_HAVE_PG
    if (s.pg)
        PQfinish(s.pg);
#endif
    return rc ? 1 : 0;
}
