/*
 * lib/dedup_pg.c - durable marks in PostgreSQL, shared across machines.
 *
 * A claim is INSERT ... ON CONFLICT DO NOTHING of the key in the open
 * transaction. PostgreSQL makes a second transaction inserting the same key
 * wait for the first: it then sees the committed row (DUPLICATE) or, after a
 * rollback, inserts it (NEW). So two members of a group that both got the
 * record during a rebalance never both process it.
 *
 * A lost connection (a dropped network, a terminated backend, a server
 * restart) takes the open transaction with it: every later statement of
 * that batch fails, so nothing of it is reported done, and the next begin
 * reconnects (one PQreset) before it starts the next transaction. Only
 * begin reconnects: a statement run on a new connection in the middle of
 * a batch would autocommit outside the transaction it belongs to.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "dedup_internal.h"

typedef struct pg_store {
    PGconn *conn;
    int own_conn;
    ksafe_dedup_txn_mode txn_mode;
    ksafe_dedup_clock_fn clock;
    void *clock_payload;
    char *sql_claim, *sql_release, *sql_save, *sql_load, *sql_expire;
    unsigned char *last;
    size_t last_len, last_cap;
} pg_store;

static int64_t wall_clock(void *payload)
{
    KSAFE__UNUSED(payload);
    return ksafe__wall_ms();
}

static int pg_error(PGconn *conn, const PGresult *res, const char *what,
                    ksafe_error *err)
{
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    const char *msg = res ? PQresultErrorMessage(res) : NULL;
    unsigned int flags = 0;
    char text[200];
    size_t n;

    if (!msg || !*msg)
        msg = conn ? PQerrorMessage(conn) : "no connection";
    /* Serialization failure, deadlock, lock timeout: try the batch again.
     * So too after a lost connection: the next begin reconnects. */
    if (state && (!strncmp(state, "40", 2) || !strcmp(state, "55P03")))
        flags |= KSAFE_ERROR_RETRIABLE;
    if (!conn || PQstatus(conn) != CONNECTION_OK)
        flags |= KSAFE_ERROR_RETRIABLE;
    snprintf(text, sizeof(text), "%s", msg);
    n = strlen(text);
    while (n && (text[n - 1] == '\n' || text[n - 1] == ' '))
        text[--n] = '\0';
    return ksafe__error_set(err, KSAFE_ESTORE, 0, flags,
                            "postgresql dedup store: %s: %s%s%s%s", what, text,
                            state ? " (SQLSTATE " : "", state ? state : "",
                            state ? ")" : "");
}

/* Runs `sql` with text parameters except those flagged binary. */
static int run(pg_store *p, const char *sql, int n, const char *const *vals,
               const int *lens, const int *binary, const char *what,
               PGresult **keep, uint64_t *affected, ksafe_error *err)
{
    PGresult *res = PQexecParams(p->conn, sql, n, NULL, vals, lens, binary, 0);
    ExecStatusType st = PQresultStatus(res);
    int rc = 0;

    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        rc = pg_error(p->conn, res, what, err);
        PQclear(res);
        return rc;
    }
    if (affected) {
        const char *t = PQcmdTuples(res);
        *affected = *t ? strtoull(t, NULL, 10) : 0;
    }
    if (keep)
        *keep = res;
    else
        PQclear(res);
    return 0;
}

static int simple(pg_store *p, const char *sql, ksafe_error *err)
{
    return run(p, sql, 0, NULL, NULL, NULL, sql, NULL, NULL, err);
}

static int lost(const pg_store *p)
{
    return PQstatus(p->conn) != CONNECTION_OK;
}

/* One attempt, bounded by the conninfo's connect_timeout. A shared
 * connection is the application's too: it gets the new session (without
 * the settings it made with SET). */
static int reconnect(pg_store *p, ksafe_error *err)
{
    PQreset(p->conn);
    if (!lost(p))
        return 0;
    return pg_error(p->conn, NULL, "connection lost, reconnect failed", err);
}

static int pq_begin(void *self, ksafe_error *err)
{
    pg_store *p = self;
    int rc;

    p->last_len = 0;
    if (p->txn_mode == KSAFE_DEDUP_TXN_CALLER)
        return 0;
    if (lost(p) && (rc = reconnect(p, err)))
        return rc;
    rc = simple(p, "BEGIN", err);
    /* A server restart between batches shows only now, when the old
     * connection is first used. Nothing is in the transaction yet, so
     * reconnecting and beginning again loses nothing. */
    if (rc && lost(p)) {
        if ((rc = reconnect(p, err)))
            return rc;
        rc = simple(p, "BEGIN", err);
    }
    return rc;
}

static int insert_key(pg_store *p, const void *key, size_t len,
                      uint64_t *added, ksafe_error *err)
{
    char created[24];
    const char *vals[2];
    int lens[2], bin[2] = {1, 0};

    snprintf(created, sizeof(created), "%" PRId64, p->clock(p->clock_payload));
    vals[0] = key;
    vals[1] = created;
    lens[0] = (int)len;
    lens[1] = 0;
    return run(p, p->sql_claim, 2, vals, lens, bin, "claim", NULL, added, err);
}

static int pq_claim(void *self, const void *key, size_t len, int *duplicate,
                    ksafe_error *err)
{
    pg_store *p = self;
    uint64_t added = 0;
    int rc;

    if (len > 1000000)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "dedup key of %zu bytes is too long", len);
    if ((rc = insert_key(p, key, len, &added, err)))
        return rc;
    *duplicate = added == 0;
    if (added) {
        if (len > p->last_cap) {
            unsigned char *n = realloc(p->last, len);
            if (!n) {
                p->last_len = 0;
                return 0; /* only the shortcut in mark is lost */
            }
            p->last = n;
            p->last_cap = len;
        }
        memcpy(p->last, key, len);
        p->last_len = len;
    }
    return 0;
}

static int pq_mark(void *self, const void *key, size_t len, ksafe_error *err)
{
    pg_store *p = self;
    uint64_t added;

    if (p->last_len == len && !memcmp(p->last, key, len)) {
        p->last_len = 0; /* the claim's row is the mark: no round trip */
        return 0;
    }
    if (len > 1000000)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "dedup key of %zu bytes is too long", len);
    return insert_key(p, key, len, &added, err);
}

static int pq_release(void *self, const void *key, size_t len,
                      ksafe_error *err)
{
    pg_store *p = self;
    const char *vals[1] = {key};
    int lens[1] = {(int)len}, bin[1] = {1};

    p->last_len = 0;
    return run(p, p->sql_release, 1, vals, lens, bin, "release", NULL, NULL,
               err);
}

static int pq_save_offset(void *self, const char *group, const char *topic,
                          int32_t partition, int64_t next_offset,
                          ksafe_error *err)
{
    pg_store *p = self;
    char part[16], off[24], now[24];
    const char *vals[5];

    snprintf(part, sizeof(part), "%" PRId32, partition);
    snprintf(off, sizeof(off), "%" PRId64, next_offset);
    snprintf(now, sizeof(now), "%" PRId64, p->clock(p->clock_payload));
    vals[0] = group;
    vals[1] = topic;
    vals[2] = part;
    vals[3] = off;
    vals[4] = now;
    return run(p, p->sql_save, 5, vals, NULL, NULL, "store offset", NULL,
               NULL, err);
}

static int pq_load_offset(void *self, const char *group, const char *topic,
                          int32_t partition, int64_t *next_offset,
                          ksafe_error *err)
{
    pg_store *p = self;
    char part[16];
    const char *vals[3];
    PGresult *res = NULL;
    int rc;

    *next_offset = -1;
    snprintf(part, sizeof(part), "%" PRId32, partition);
    vals[0] = group;
    vals[1] = topic;
    vals[2] = part;
    if ((rc = run(p, p->sql_load, 3, vals, NULL, NULL, "load offset", &res,
                  NULL, err)))
        return rc;
    if (PQntuples(res) == 1 && !PQgetisnull(res, 0, 0))
        *next_offset = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    return 0;
}

static int pq_commit(void *self, ksafe_error *err)
{
    pg_store *p = self;

    p->last_len = 0;
    return p->txn_mode == KSAFE_DEDUP_TXN_CALLER ? 0
                                                 : simple(p, "COMMIT", err);
}

static int pq_rollback(void *self, ksafe_error *err)
{
    pg_store *p = self;

    p->last_len = 0;
    if (p->txn_mode == KSAFE_DEDUP_TXN_CALLER)
        return 0;
    /* The server rolled back the transaction of a lost connection. */
    if (lost(p))
        return 0;
    return simple(p, "ROLLBACK", err);
}

static int pq_expire(void *self, int64_t max_age_ms, uint64_t *removed,
                     ksafe_error *err)
{
    pg_store *p = self;
    char cutoff[24];
    const char *vals[1] = {cutoff};
    uint64_t n = 0;
    int rc;

    snprintf(cutoff, sizeof(cutoff), "%" PRId64,
             p->clock(p->clock_payload) - max_age_ms);
    if ((rc = run(p, p->sql_expire, 1, vals, NULL, NULL, "expire", NULL, &n,
                  err)))
        return rc;
    *removed += n;
    return 0;
}

static void pq_close(void *self)
{
    pg_store *p = self;

    if (!p)
        return;
    if (p->own_conn)
        PQfinish(p->conn);
    free(p->sql_claim);
    free(p->sql_release);
    free(p->sql_save);
    free(p->sql_load);
    free(p->sql_expire);
    free(p->last);
    free(p);
}

static const ksafe_dedup_store_ops pg_ops = {
    KSAFE_DEDUP_STORE_OPS_VERSION, "postgresql", pq_begin, pq_claim, pq_mark,
    pq_release, pq_save_offset, pq_load_offset, pq_commit, pq_rollback,
    pq_expire, NULL, pq_close,
};

KSAFE__PRINTF(1, 2)
static char *sqlf(const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    return n < 0 || (size_t)n >= sizeof(buf) ? NULL : ksafe__strdup(buf);
}

/* CREATE ... IF NOT EXISTS can still fail when two members create the same
 * table at the same moment (unique violation on the catalog); the other
 * member's table is then there, so one retry settles it. */
static int create(pg_store *p, const char *sql, ksafe_error *err)
{
    int rc = simple(p, sql, err);

    if (rc && p->txn_mode == KSAFE_DEDUP_TXN_STORE &&
        PQtransactionStatus(p->conn) == PQTRANS_IDLE)
        rc = simple(p, sql, err);
    return rc;
}

/* 1 when both tables and the index exist: then nothing is created, and
 * the server sends no "already exists, skipping" notices to a connection
 * that may be the application's. */
static int schema_present(pg_store *p, const char *marks, const char *offsets)
{
    char idx[140];
    const char *dot = strchr(marks, '.');
    const char *vals[3];
    PGresult *res = NULL;
    ksafe_error ignored;
    int yes;

    if (dot)
        snprintf(idx, sizeof(idx), "%.*s.%s_created", (int)(dot - marks),
                 marks, dot + 1);
    else
        snprintf(idx, sizeof(idx), "%s_created", marks);
    vals[0] = marks;
    vals[1] = offsets;
    vals[2] = idx;
    if (run(p,
            "SELECT to_regclass($1) IS NOT NULL AND to_regclass($2) IS NOT "
            "NULL AND to_regclass($3) IS NOT NULL",
            3, vals, NULL, NULL, "schema check", &res, NULL, &ignored))
        return 0;
    yes = PQntuples(res) == 1 && !strcmp(PQgetvalue(res, 0, 0), "t");
    PQclear(res);
    return yes;
}

static int setup(pg_store *p, const char *marks, const char *offsets,
                 ksafe_error *err)
{
    char sql[600];
    int rc;

    if (schema_present(p, marks, offsets))
        goto statements;
    snprintf(sql, sizeof(sql),
             "CREATE TABLE IF NOT EXISTS %s (dedup_key BYTEA PRIMARY KEY, "
             "created_ms BIGINT NOT NULL)",
             marks);
    if ((rc = create(p, sql, err)))
        return rc;
    snprintf(sql, sizeof(sql),
             "CREATE INDEX IF NOT EXISTS %s_created ON %s (created_ms)",
             ksafe__dedup_bare_name(marks), marks);
    if ((rc = create(p, sql, err)))
        return rc;
    snprintf(sql, sizeof(sql),
             "CREATE TABLE IF NOT EXISTS %s (group_id TEXT NOT NULL, "
             "topic TEXT NOT NULL, partition_id INTEGER NOT NULL, "
             "next_offset BIGINT NOT NULL, updated_ms BIGINT NOT NULL, "
             "PRIMARY KEY (group_id, topic, partition_id))",
             offsets);
    if ((rc = create(p, sql, err)))
        return rc;

statements:
    p->sql_claim = sqlf("INSERT INTO %s (dedup_key, created_ms) "
                        "VALUES ($1, $2::bigint) ON CONFLICT DO NOTHING",
                        marks);
    p->sql_release = sqlf("DELETE FROM %s WHERE dedup_key = $1", marks);
    p->sql_save = sqlf(
        "INSERT INTO %s AS cur (group_id, topic, partition_id, next_offset, "
        "updated_ms) VALUES ($1, $2, $3::integer, $4::bigint, $5::bigint) "
        "ON CONFLICT (group_id, topic, partition_id) DO UPDATE SET "
        "next_offset = EXCLUDED.next_offset, updated_ms = EXCLUDED.updated_ms "
        "WHERE cur.next_offset < EXCLUDED.next_offset",
        offsets);
    p->sql_load = sqlf("SELECT next_offset FROM %s WHERE group_id = $1 AND "
                       "topic = $2 AND partition_id = $3::integer",
                       offsets);
    p->sql_expire = sqlf("DELETE FROM %s WHERE created_ms < $1::bigint",
                         marks);
    if (!p->sql_claim || !p->sql_release || !p->sql_save || !p->sql_load ||
        !p->sql_expire)
        return ksafe__error_set(err, KSAFE_ENOMEM, 0, 0, "out of memory");
    return 0;
}

int ksafe_dedup_pg_new(ksafe_dedup_store **out,
                       const ksafe_dedup_pg_options *opts, ksafe_error *err)
{
    const char *marks, *offsets;
    pg_store *p;
    int rc;

    if (!out)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0, "out is NULL");
    *out = NULL;
    if (!opts)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "postgresql store: options are required "
                                "(conninfo or conn)");
    if (opts->version != KSAFE_DEDUP_PG_OPTIONS_VERSION)
        return ksafe__error_set(err, KSAFE_EVERSION, 0, 0,
                                "postgresql store options version %u unknown",
                                opts->version);
    if (!opts->conn && !opts->conninfo)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "postgresql store: set conninfo or conn");
    if (opts->conn && opts->conninfo)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "postgresql store: set conninfo or conn, "
                                "not both");
    if (opts->txn_mode != KSAFE_DEDUP_TXN_STORE &&
        opts->txn_mode != KSAFE_DEDUP_TXN_CALLER)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "postgresql store: unknown txn_mode %d",
                                (int)opts->txn_mode);
    marks = opts->marks_table ? opts->marks_table : KSAFE_DEDUP_TABLE_DEFAULT;
    offsets = opts->offsets_table ? opts->offsets_table
                                  : KSAFE_DEDUP_OFFSETS_TABLE_DEFAULT;
    if ((rc = ksafe__dedup_check_ident(marks, 1,
                                       "postgresql store: marks_table", err)) ||
        (rc = ksafe__dedup_check_ident(offsets, 1,
                                       "postgresql store: offsets_table",
                                       err)))
        return rc;
    if (!strcmp(marks, offsets))
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "postgresql store: marks_table and "
                                "offsets_table are both \"%s\"",
                                marks);

    p = calloc(1, sizeof(*p));
    if (!p)
        return ksafe__error_set(err, KSAFE_ENOMEM, 0, 0, "out of memory");
    p->txn_mode = opts->txn_mode;
    p->clock = opts->clock ? opts->clock : wall_clock;
    p->clock_payload = opts->clock_payload;
    if (opts->conn) {
        p->conn = opts->conn;
    } else {
        p->own_conn = 1;
        p->conn = PQconnectdb(opts->conninfo);
    }
    if (!p->conn || PQstatus(p->conn) != CONNECTION_OK) {
        /* The conninfo may hold a password: show libpq's reason only. */
        rc = pg_error(p->conn, NULL, "connecting", err);
        pq_close(p);
        return rc;
    }
    if ((rc = setup(p, marks, offsets, err))) {
        pq_close(p);
        return rc;
    }
    return ksafe_dedup_store_new(out, &pg_ops, p, err);
}
