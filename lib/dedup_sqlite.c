/*
 * lib/dedup_sqlite.c - durable marks in SQLite.
 *
 * A claim is an INSERT OR IGNORE of the key: the row is the mark, written in
 * the open transaction, so it becomes durable with the effects written on
 * the same connection and disappears with them on rollback or crash. A
 * later mark of the key just claimed costs nothing.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "dedup_internal.h"

enum { S_CLAIM, S_RELEASE, S_SAVE, S_LOAD, S_EXPIRE, S_COUNT };

typedef struct sql_store {
    sqlite3 *db;
    int own_db;
    ksafe_dedup_txn_mode txn_mode;
    sqlite3_stmt *st[S_COUNT];
    ksafe_dedup_clock_fn clock;
    void *clock_payload;
    unsigned char *last;  /* the key claimed last, until marked */
    size_t last_len, last_cap;
} sql_store;

static int64_t wall_clock(void *payload)
{
    KSAFE__UNUSED(payload);
    return ksafe__wall_ms();
}

static int sql_error(sqlite3 *db, int rc, const char *what, ksafe_error *err)
{
    unsigned int flags = 0;
    int base = rc & 0xff;

    if (base == SQLITE_BUSY || base == SQLITE_LOCKED)
        flags |= KSAFE_ERROR_RETRIABLE;
    return ksafe__error_set(err, KSAFE_ESTORE, 0, flags,
                            "sqlite dedup store: %s: %s (%s)", what,
                            db ? sqlite3_errmsg(db) : "no connection",
                            sqlite3_errstr(rc));
}

static int exec(sql_store *q, const char *sql, ksafe_error *err)
{
    int rc = sqlite3_exec(q->db, sql, NULL, NULL, NULL);

    return rc == SQLITE_OK ? 0 : sql_error(q->db, rc, sql, err);
}

/* Runs a bound statement to completion; resets it in every case. */
static int step_done(sql_store *q, sqlite3_stmt *st, const char *what,
                     ksafe_error *err)
{
    int rc = sqlite3_step(st);

    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW)
        return sql_error(q->db, rc, what, err);
    return 0;
}

static int sq_begin(void *self, ksafe_error *err)
{
    sql_store *q = self;

    q->last_len = 0;
    if (q->txn_mode == KSAFE_DEDUP_TXN_CALLER)
        return 0;
    /* IMMEDIATE: take the write lock now, so a second writer waits for it
     * here (busy timeout) rather than failing at commit. */
    return exec(q, "BEGIN IMMEDIATE", err);
}

static int insert_key(sql_store *q, const void *key, size_t len, int *added,
                      ksafe_error *err)
{
    sqlite3_stmt *st = q->st[S_CLAIM];
    int rc;

    sqlite3_bind_blob(st, 1, key, (int)len, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, q->clock(q->clock_payload));
    if ((rc = step_done(q, st, "claim", err)))
        return rc;
    *added = sqlite3_changes(q->db) == 1;
    return 0;
}

static int sq_claim(void *self, const void *key, size_t len, int *duplicate,
                    ksafe_error *err)
{
    sql_store *q = self;
    int added = 0, rc;

    if (len > INT32_MAX)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0, "key too long");
    if ((rc = insert_key(q, key, len, &added, err)))
        return rc;
    *duplicate = !added;
    if (added) {
        if (len > q->last_cap) {
            unsigned char *n = realloc(q->last, len);
            if (!n) {
                q->last_len = 0;
                return 0; /* only the shortcut in mark is lost */
            }
            q->last = n;
            q->last_cap = len;
        }
        memcpy(q->last, key, len);
        q->last_len = len;
    }
    return 0;
}

static int sq_mark(void *self, const void *key, size_t len, ksafe_error *err)
{
    sql_store *q = self;
    int added;

    if (q->last_len == len && !memcmp(q->last, key, len)) {
        q->last_len = 0; /* the claim's row is the mark */
        return 0;
    }
    if (len > INT32_MAX)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0, "key too long");
    return insert_key(q, key, len, &added, err);
}

static int sq_release(void *self, const void *key, size_t len,
                      ksafe_error *err)
{
    sql_store *q = self;
    sqlite3_stmt *st = q->st[S_RELEASE];

    /* The wrapper only lets an open claim of this transaction through, so
     * the row deleted is our own uncommitted one. */
    q->last_len = 0;
    sqlite3_bind_blob(st, 1, key, (int)len, SQLITE_STATIC);
    return step_done(q, st, "release", err);
}

static int sq_save_offset(void *self, const char *group, const char *topic,
                          int32_t partition, int64_t next_offset,
                          ksafe_error *err)
{
    sql_store *q = self;
    sqlite3_stmt *st = q->st[S_SAVE];

    sqlite3_bind_text(st, 1, group, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, topic, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 3, partition);
    sqlite3_bind_int64(st, 4, next_offset);
    sqlite3_bind_int64(st, 5, q->clock(q->clock_payload));
    return step_done(q, st, "store offset", err);
}

static int sq_load_offset(void *self, const char *group, const char *topic,
                          int32_t partition, int64_t *next_offset,
                          ksafe_error *err)
{
    sql_store *q = self;
    sqlite3_stmt *st = q->st[S_LOAD];
    int rc;

    *next_offset = -1;
    sqlite3_bind_text(st, 1, group, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, topic, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 3, partition);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        *next_offset = sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return sql_error(q->db, rc, "load offset", err);
    return 0;
}

static int sq_commit(void *self, ksafe_error *err)
{
    sql_store *q = self;

    q->last_len = 0;
    if (q->txn_mode == KSAFE_DEDUP_TXN_CALLER)
        return 0;
    return exec(q, "COMMIT", err);
}

static int sq_rollback(void *self, ksafe_error *err)
{
    sql_store *q = self;

    q->last_len = 0;
    if (q->txn_mode == KSAFE_DEDUP_TXN_CALLER)
        return 0;
    /* SQLite ends a transaction itself on some errors (e.g. SQLITE_FULL). */
    if (sqlite3_get_autocommit(q->db))
        return 0;
    return exec(q, "ROLLBACK", err);
}

static int sq_expire(void *self, int64_t max_age_ms, uint64_t *removed,
                     ksafe_error *err)
{
    sql_store *q = self;
    sqlite3_stmt *st = q->st[S_EXPIRE];
    int rc;

    sqlite3_bind_int64(st, 1, q->clock(q->clock_payload) - max_age_ms);
    if ((rc = step_done(q, st, "expire", err)))
        return rc;
    *removed += (uint64_t)sqlite3_changes(q->db);
    return 0;
}

static void sq_close(void *self)
{
    sql_store *q = self;
    int i;

    if (!q)
        return;
    for (i = 0; i < S_COUNT; i++)
        sqlite3_finalize(q->st[i]);
    if (q->own_db)
        sqlite3_close(q->db);
    free(q->last);
    free(q);
}

static const ksafe_dedup_store_ops sqlite_ops = {
    KSAFE_DEDUP_STORE_OPS_VERSION, "sqlite", sq_begin, sq_claim, sq_mark,
    sq_release, sq_save_offset, sq_load_offset, sq_commit, sq_rollback,
    sq_expire, NULL, sq_close,
};

static int prepare(sql_store *q, int which, const char *sql, ksafe_error *err)
{
    int rc = sqlite3_prepare_v2(q->db, sql, -1, &q->st[which], NULL);

    return rc == SQLITE_OK ? 0 : sql_error(q->db, rc, sql, err);
}

static int setup(sql_store *q, const char *marks, const char *offsets,
                 ksafe_error *err)
{
    char sql[512];
    int rc;

    snprintf(sql, sizeof(sql),
             "CREATE TABLE IF NOT EXISTS %s (dedup_key BLOB PRIMARY KEY, "
             "created_ms INTEGER NOT NULL) WITHOUT ROWID",
             marks);
    if ((rc = exec(q, sql, err)))
        return rc;
    snprintf(sql, sizeof(sql),
             "CREATE INDEX IF NOT EXISTS %s_created ON %s (created_ms)",
             marks, marks);
    if ((rc = exec(q, sql, err)))
        return rc;
    snprintf(sql, sizeof(sql),
             "CREATE TABLE IF NOT EXISTS %s (group_id TEXT NOT NULL, "
             "topic TEXT NOT NULL, partition_id INTEGER NOT NULL, "
             "next_offset INTEGER NOT NULL, updated_ms INTEGER NOT NULL, "
             "PRIMARY KEY (group_id, topic, partition_id)) WITHOUT ROWID",
             offsets);
    if ((rc = exec(q, sql, err)))
        return rc;

    snprintf(sql, sizeof(sql),
             "INSERT OR IGNORE INTO %s (dedup_key, created_ms) "
             "VALUES (?1, ?2)",
             marks);
    if ((rc = prepare(q, S_CLAIM, sql, err)))
        return rc;
    snprintf(sql, sizeof(sql), "DELETE FROM %s WHERE dedup_key = ?1", marks);
    if ((rc = prepare(q, S_RELEASE, sql, err)))
        return rc;
    snprintf(sql, sizeof(sql),
             "INSERT INTO %s (group_id, topic, partition_id, next_offset, "
             "updated_ms) VALUES (?1, ?2, ?3, ?4, ?5) "
             "ON CONFLICT (group_id, topic, partition_id) DO UPDATE SET "
             "next_offset = excluded.next_offset, "
             "updated_ms = excluded.updated_ms "
             "WHERE excluded.next_offset > %s.next_offset",
             offsets, offsets);
    if ((rc = prepare(q, S_SAVE, sql, err)))
        return rc;
    snprintf(sql, sizeof(sql),
             "SELECT next_offset FROM %s WHERE group_id = ?1 AND topic = ?2 "
             "AND partition_id = ?3",
             offsets);
    if ((rc = prepare(q, S_LOAD, sql, err)))
        return rc;
    snprintf(sql, sizeof(sql), "DELETE FROM %s WHERE created_ms < ?1", marks);
    return prepare(q, S_EXPIRE, sql, err);
}

int ksafe_dedup_sqlite_new(ksafe_dedup_store **out,
                           const ksafe_dedup_sqlite_options *opts,
                           ksafe_error *err)
{
    const char *marks, *offsets;
    sql_store *q;
    int rc;

    if (!out)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0, "out is NULL");
    *out = NULL;
    if (!opts)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "sqlite store: options are required "
                                "(path or db)");
    if (opts->version != KSAFE_DEDUP_SQLITE_OPTIONS_VERSION)
        return ksafe__error_set(err, KSAFE_EVERSION, 0, 0,
                                "sqlite store options version %u unknown",
                                opts->version);
    if (!opts->db && (!opts->path || !*opts->path))
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "sqlite store: set path or db");
    if (opts->db && opts->path)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "sqlite store: set path or db, not both");
    if (opts->txn_mode != KSAFE_DEDUP_TXN_STORE &&
        opts->txn_mode != KSAFE_DEDUP_TXN_CALLER)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "sqlite store: unknown txn_mode %d",
                                (int)opts->txn_mode);
    if (opts->busy_timeout_ms < 0)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "sqlite store: busy_timeout_ms is negative");
    marks = opts->marks_table ? opts->marks_table : KSAFE_DEDUP_TABLE_DEFAULT;
    offsets = opts->offsets_table ? opts->offsets_table
                                  : KSAFE_DEDUP_OFFSETS_TABLE_DEFAULT;
    if ((rc = ksafe__dedup_check_ident(marks, 0, "sqlite store: marks_table",
                                       err)) ||
        (rc = ksafe__dedup_check_ident(offsets, 0,
                                       "sqlite store: offsets_table", err)))
        return rc;
    if (!strcmp(marks, offsets))
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "sqlite store: marks_table and offsets_table "
                                "are both \"%s\"",
                                marks);

    q = calloc(1, sizeof(*q));
    if (!q)
        return ksafe__error_set(err, KSAFE_ENOMEM, 0, 0, "out of memory");
    q->txn_mode = opts->txn_mode;
    q->clock = opts->clock ? opts->clock : wall_clock;
    q->clock_payload = opts->clock_payload;
    if (opts->db) {
        q->db = opts->db;
    } else {
        q->own_db = 1;
        rc = sqlite3_open_v2(opts->path, &q->db,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
                                 SQLITE_OPEN_NOMUTEX,
                             NULL);
        if (rc != SQLITE_OK) {
            char what[300];
            snprintf(what, sizeof(what), "opening \"%.200s\"", opts->path);
            rc = sql_error(q->db, rc, what, err);
            sq_close(q);
            return rc;
        }
        sqlite3_busy_timeout(q->db, opts->busy_timeout_ms);
        /* WAL: readers do not block the writer, and one fsync per commit.
         * An in-memory database answers "memory"; that is fine. */
        if ((rc = exec(q, "PRAGMA journal_mode=WAL", err))) {
            sq_close(q);
            return rc;
        }
    }
    if ((rc = setup(q, marks, offsets, err))) {
        sq_close(q);
        return rc;
    }
    return ksafe__dedup_store_new_sql(out, &sqlite_ops, q, q->txn_mode, err);
}
