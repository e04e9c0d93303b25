/*
 * tests/test_dedup.c - the dedup store contract, run against every store.
 *
 * Each behaviour is one TCase holding a loop test over the store kinds: the
 * loop index picks the store (memory, SQLite; PostgreSQL in test-dedup-pg,
 * which is this file built with DEDUP_PG_ONLY). Behaviours that need a
 * durable, shared database loop over those kinds only.
 */
#include <errno.h>
#include <pthread.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

#if defined(TEST_HAVE_SQLITE) && !defined(DEDUP_PG_ONLY)
#include <sqlite3.h>
#endif
#if defined(TEST_HAVE_PG) && defined(DEDUP_PG_ONLY)
#include <libpq-fe.h>
#endif

#define GROUP "orders-sink"

/* ---- per-test context and the fake clock -------------------------------- */

static int64_t fake_now = 1000000;
static int64_t fake_clock(void *payload)
{
    (void)payload;
    return fake_now;
}

static char tmpdir[64];
static char db_path[128];
static char marks_t[64], offsets_t[64], biz_t[64];

static void names_up(void)
{
    static int counter;
    char prefix[40];

    snprintf(prefix, sizeof(prefix), "kd_%d_%d_%ld", (int)getpid(),
             ++counter, (long)(time(NULL) % 100000));
    snprintf(marks_t, sizeof(marks_t), "%s_marks", prefix);
    snprintf(offsets_t, sizeof(offsets_t), "%s_offsets", prefix);
    snprintf(biz_t, sizeof(biz_t), "%s_biz", prefix);
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/ksafe-dedup-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
    snprintf(db_path, sizeof(db_path), "%s/dedup.db", tmpdir);
    fake_now = 1000000;
}

static void files_down(void)
{
    static const char *const suffix[] = {"", "-wal", "-shm", "-journal"};
    char path[160];
    size_t i;

    for (i = 0; i < sizeof(suffix) / sizeof(suffix[0]); i++) {
        snprintf(path, sizeof(path), "%s%s", db_path, suffix[i]);
        unlink(path);
    }
    rmdir(tmpdir);
}

/* ---- store kinds -------------------------------------------------------- */

typedef struct store_kind {
    const char *name;
    /* Opens a handle on this test's database (a new window for memory). */
    int (*open)(ksafe_dedup_store **out, ksafe_error *err);
    /* Durable kinds: a connection of "the application", its business table
     * and a store sharing that connection. */
    void (*app_open)(void);
    int (*app_store)(ksafe_dedup_store **out, ksafe_error *err);
    void (*app_write)(const char *id); /* INSERT INTO biz in the open txn */
    int (*app_count)(void);            /* rows in biz, committed */
    void (*app_close)(void);
} store_kind;

static int open_memory(ksafe_dedup_store **out, ksafe_error *err)
{
    ksafe_dedup_memory_options o = KSAFE_DEDUP_MEMORY_OPTIONS_INIT;

    o.capacity = 1000;
    o.clock = fake_clock;
    return ksafe_dedup_memory_new(out, &o, err);
}

#if defined(TEST_HAVE_SQLITE) && !defined(DEDUP_PG_ONLY)
static sqlite3 *app_db;

static int open_sqlite(ksafe_dedup_store **out, ksafe_error *err)
{
    ksafe_dedup_sqlite_options o = KSAFE_DEDUP_SQLITE_OPTIONS_INIT;

    o.path = db_path;
    o.marks_table = marks_t;
    o.offsets_table = offsets_t;
    o.busy_timeout_ms = 30000;
    o.clock = fake_clock;
    return ksafe_dedup_sqlite_new(out, &o, err);
}

static void sqlite_exec(const char *sql)
{
    char *msg = NULL;
    int rc = sqlite3_exec(app_db, sql, NULL, NULL, &msg);
    ck_assert_msg(rc == SQLITE_OK, "%s: %s", sql, msg ? msg : "?");
}

static void sqlite_app_open(void)
{
    char sql[200];

    ck_assert_int_eq(sqlite3_open(db_path, &app_db), SQLITE_OK);
    sqlite3_busy_timeout(app_db, 30000);
    snprintf(sql, sizeof(sql),
             "CREATE TABLE IF NOT EXISTS %s (id TEXT PRIMARY KEY)", biz_t);
    sqlite_exec(sql);
}

static int sqlite_app_store(ksafe_dedup_store **out, ksafe_error *err)
{
    ksafe_dedup_sqlite_options o = KSAFE_DEDUP_SQLITE_OPTIONS_INIT;

    o.db = app_db;
    o.marks_table = marks_t;
    o.offsets_table = offsets_t;
    o.clock = fake_clock;
    return ksafe_dedup_sqlite_new(out, &o, err);
}

static void sqlite_app_write(const char *id)
{
    char sql[200];

    snprintf(sql, sizeof(sql), "INSERT INTO %s VALUES ('%s')", biz_t, id);
    sqlite_exec(sql);
}

static int sqlite_app_count(void)
{
    sqlite3 *db;
    sqlite3_stmt *st;
    char sql[200];
    int n;

    /* A separate connection sees only what was committed. */
    ck_assert_int_eq(sqlite3_open(db_path, &db), SQLITE_OK);
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s", biz_t);
    ck_assert_int_eq(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
    n = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return n;
}

static void sqlite_app_close(void)
{
    sqlite3_close(app_db);
    app_db = NULL;
}
#endif

#if defined(TEST_HAVE_PG) && defined(DEDUP_PG_ONLY)
static PGconn *app_conn;

static const char *pg_conninfo(void)
{
    return getenv("KSAFE_TEST_PG");
}

static int open_pg(ksafe_dedup_store **out, ksafe_error *err)
{
    ksafe_dedup_pg_options o = KSAFE_DEDUP_PG_OPTIONS_INIT;

    o.conninfo = pg_conninfo();
    o.marks_table = marks_t;
    o.offsets_table = offsets_t;
    o.clock = fake_clock;
    return ksafe_dedup_pg_new(out, &o, err);
}

static void pg_quiet(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

static PGconn *pg_connect(void)
{
    PGconn *c = PQconnectdb(pg_conninfo());

    ck_assert_msg(PQstatus(c) == CONNECTION_OK, "connect: %s",
                  PQerrorMessage(c));
    PQsetNoticeProcessor(c, pg_quiet, NULL);
    return c;
}

static void pg_exec(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    ck_assert_msg(PQresultStatus(r) == PGRES_COMMAND_OK ||
                      PQresultStatus(r) == PGRES_TUPLES_OK,
                  "%s: %s", sql, PQerrorMessage(c));
    PQclear(r);
}

static void pg_app_open(void)
{
    char sql[200];

    app_conn = pg_connect();
    snprintf(sql, sizeof(sql),
             "CREATE TABLE IF NOT EXISTS %s (id TEXT PRIMARY KEY)", biz_t);
    pg_exec(app_conn, sql);
}

static int pg_app_store(ksafe_dedup_store **out, ksafe_error *err)
{
    ksafe_dedup_pg_options o = KSAFE_DEDUP_PG_OPTIONS_INIT;

    o.conn = app_conn;
    o.marks_table = marks_t;
    o.offsets_table = offsets_t;
    o.clock = fake_clock;
    return ksafe_dedup_pg_new(out, &o, err);
}

static void pg_app_write(const char *id)
{
    char sql[200];

    snprintf(sql, sizeof(sql), "INSERT INTO %s VALUES ('%s')", biz_t, id);
    pg_exec(app_conn, sql);
}

static int pg_app_count(void)
{
    PGconn *c = pg_connect();
    char sql[200];
    PGresult *r;
    int n;

    snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s", biz_t);
    r = PQexec(c, sql);
    ck_assert_int_eq(PQresultStatus(r), PGRES_TUPLES_OK);
    n = atoi(PQgetvalue(r, 0, 0));
    PQclear(r);
    PQfinish(c);
    return n;
}

static void pg_app_close(void)
{
    PQfinish(app_conn);
    app_conn = NULL;
}

static void pg_tables_down(void)
{
    PGconn *c = PQconnectdb(pg_conninfo());
    char sql[300];

    PQsetNoticeProcessor(c, pg_quiet, NULL);
    if (PQstatus(c) == CONNECTION_OK) {
        snprintf(sql, sizeof(sql), "DROP TABLE IF EXISTS %s, %s, %s", marks_t,
                 offsets_t, biz_t);
        PQclear(PQexec(c, sql));
    }
    PQfinish(c);
}
#endif

static store_kind kinds[4];
static int n_kinds, first_durable;

static void kinds_init(void)
{
    store_kind mem = {"memory", open_memory, NULL, NULL, NULL, NULL, NULL};

    n_kinds = 0;
#ifndef DEDUP_PG_ONLY
    kinds[n_kinds++] = mem;
    first_durable = n_kinds;
#ifdef TEST_HAVE_SQLITE
    {
        store_kind k = {"sqlite", open_sqlite, sqlite_app_open,
                        sqlite_app_store, sqlite_app_write, sqlite_app_count,
                        sqlite_app_close};
        kinds[n_kinds++] = k;
    }
#endif
#else
    (void)mem;
    first_durable = 0;
#ifdef TEST_HAVE_PG
    {
        store_kind k = {"postgresql", open_pg, pg_app_open, pg_app_store,
                        pg_app_write, pg_app_count, pg_app_close};
        kinds[n_kinds++] = k;
    }
#endif
#endif
}

static void ctx_up(void)
{
    names_up();
}

static void ctx_down(void)
{
#if defined(TEST_HAVE_PG) && defined(DEDUP_PG_ONLY)
    pg_tables_down();
#endif
    files_down();
}

/* ---- helpers ------------------------------------------------------------ */

static ksafe_dedup_store *open_kind(int i)
{
    ksafe_dedup_store *s = NULL;
    ksafe_error err;

    ck_assert_msg(kinds[i].open(&s, &err) == 0, "[%s] open: %s",
                  kinds[i].name, err.message);
    return s;
}

#define KEY(k) (k), strlen(k)

static ksafe_dedup_status claim(ksafe_dedup_store *s, const char *k)
{
    ksafe_dedup_status st = KSAFE_DEDUP_NEW;
    ksafe_error err;

    ck_assert_ok(ksafe_dedup_claim(s, KEY(k), &st, &err), err);
    return st;
}

static void begin(ksafe_dedup_store *s)
{
    ksafe_error err;
    ck_assert_ok(ksafe_dedup_begin(s, &err), err);
}

static void mark(ksafe_dedup_store *s, const char *k)
{
    ksafe_error err;
    ck_assert_ok(ksafe_dedup_mark(s, KEY(k), &err), err);
}

static void commit(ksafe_dedup_store *s)
{
    ksafe_error err;
    ck_assert_ok(ksafe_dedup_commit(s, &err), err);
}

static void rollback(ksafe_dedup_store *s)
{
    ksafe_error err;
    ck_assert_ok(ksafe_dedup_rollback(s, &err), err);
}

/* claim -> NEW, mark, in its own transaction. */
static void process(ksafe_dedup_store *s, const char *k)
{
    begin(s);
    ck_assert_int_eq(claim(s, k), KSAFE_DEDUP_NEW);
    mark(s, k);
    commit(s);
}

/* The status of `k` now, leaving no trace. */
static ksafe_dedup_status peek(ksafe_dedup_store *s, const char *k)
{
    ksafe_dedup_status st;

    begin(s);
    st = claim(s, k);
    rollback(s);
    return st;
}

/* ---- the contract: every store ----------------------------------------- */

START_TEST(claim_mark_duplicate)
{
    ksafe_dedup_store *s = open_kind(_i);
    ksafe_dedup_stats st;

    begin(s);
    ck_assert_int_eq(claim(s, "order-1"), KSAFE_DEDUP_NEW);
    mark(s, "order-1");
    ck_assert_int_eq(claim(s, "order-2"), KSAFE_DEDUP_NEW);
    mark(s, "order-2");
    commit(s);

    begin(s);
    ck_assert_int_eq(claim(s, "order-1"), KSAFE_DEDUP_DUPLICATE);
    ck_assert_int_eq(claim(s, "order-2"), KSAFE_DEDUP_DUPLICATE);
    ck_assert_int_eq(claim(s, "order-3"), KSAFE_DEDUP_NEW);
    mark(s, "order-3");
    commit(s);

    ksafe_dedup_stats_get(s, &st);
    ck_assert_uint_eq(st.claimed, 3);
    ck_assert_uint_eq(st.duplicates, 2);
    ck_assert_uint_eq(st.marked, 3);
    ck_assert_uint_eq(st.commits, 2);
    ksafe_dedup_store_free(s);
}
END_TEST

START_TEST(duplicate_within_batch)
{
    ksafe_dedup_store *s = open_kind(_i);

    /* The same key twice in one poll batch: the second is a duplicate even
     * before the batch commits. */
    begin(s);
    ck_assert_int_eq(claim(s, "k"), KSAFE_DEDUP_NEW);
    mark(s, "k");
    ck_assert_int_eq(claim(s, "k"), KSAFE_DEDUP_DUPLICATE);
    commit(s);
    ck_assert_int_eq(peek(s, "k"), KSAFE_DEDUP_DUPLICATE);
    ksafe_dedup_store_free(s);
}
END_TEST

START_TEST(rollback_releases)
{
    ksafe_dedup_store *s = open_kind(_i);
    ksafe_dedup_stats st;

    process(s, "kept");
    begin(s);
    ck_assert_int_eq(claim(s, "a"), KSAFE_DEDUP_NEW);
    mark(s, "a");
    ck_assert_int_eq(claim(s, "b"), KSAFE_DEDUP_NEW); /* handler failed */
    rollback(s);
    ck_assert_int_eq(peek(s, "a"), KSAFE_DEDUP_NEW);
    ck_assert_int_eq(peek(s, "b"), KSAFE_DEDUP_NEW);
    ck_assert_int_eq(peek(s, "kept"), KSAFE_DEDUP_DUPLICATE);
    ksafe_dedup_stats_get(s, &st);
    ck_assert_uint_eq(st.rollbacks, 4);
    ksafe_dedup_store_free(s);
}
END_TEST

START_TEST(release_one_claim)
{
    ksafe_dedup_store *s = open_kind(_i);
    ksafe_error err;

    process(s, "done");
    begin(s);
    ck_assert_int_eq(claim(s, "ok"), KSAFE_DEDUP_NEW);
    mark(s, "ok");
    ck_assert_int_eq(claim(s, "failed"), KSAFE_DEDUP_NEW);
    ck_assert_ok(ksafe_dedup_release(s, KEY("failed"), &err), err);
    /* Only an open claim may be released: a done key stays done. */
    ck_assert_int_eq(ksafe_dedup_release(s, KEY("done"), &err), KSAFE_ESTATE);
    ck_assert_int_eq(ksafe_dedup_release(s, KEY("ok"), &err), KSAFE_ESTATE);
    commit(s);
    ck_assert_int_eq(peek(s, "failed"), KSAFE_DEDUP_NEW);
    ck_assert_int_eq(peek(s, "ok"), KSAFE_DEDUP_DUPLICATE);
    ck_assert_int_eq(peek(s, "done"), KSAFE_DEDUP_DUPLICATE);
    ksafe_dedup_store_free(s);
}
END_TEST

START_TEST(commit_refuses_open_claim)
{
    ksafe_dedup_store *s = open_kind(_i);
    ksafe_error err;

    begin(s);
    ck_assert_int_eq(claim(s, "pending"), KSAFE_DEDUP_NEW);
    ck_assert_int_eq(ksafe_dedup_commit(s, &err), KSAFE_ESTATE);
    ck_assert_ptr_nonnull(strstr(err.message, "neither marked nor released"));
    ck_assert_int_eq(ksafe_dedup_in_transaction(s), 1);
    ck_assert_ok(ksafe_dedup_release(s, KEY("pending"), &err), err);
    commit(s);
    ck_assert_int_eq(peek(s, "pending"), KSAFE_DEDUP_NEW);
    ksafe_dedup_store_free(s);
}
END_TEST

START_TEST(call_order)
{
    ksafe_dedup_store *s = open_kind(_i);
    ksafe_dedup_status st;
    ksafe_error err;

    ck_assert_int_eq(ksafe_dedup_claim(s, KEY("k"), &st, &err), KSAFE_ESTATE);
    ck_assert_ptr_nonnull(strstr(err.message, "ksafe_dedup_begin"));
    ck_assert_int_eq(ksafe_dedup_mark(s, KEY("k"), &err), KSAFE_ESTATE);
    ck_assert_int_eq(ksafe_dedup_commit(s, &err), KSAFE_ESTATE);
    ck_assert_int_eq(ksafe_dedup_rollback(s, &err), KSAFE_ESTATE);
    ck_assert_int_eq(ksafe_dedup_store_offset(s, GROUP, "t", 0, 1, &err),
                     KSAFE_ESTATE);
    begin(s);
    ck_assert_int_eq(ksafe_dedup_begin(s, &err), KSAFE_ESTATE);
    ck_assert_int_eq(ksafe_dedup_claim(s, "", 0, &st, &err), KSAFE_EINVAL);
    ck_assert_int_eq(ksafe_dedup_expire(s, 1000, NULL, &err), KSAFE_ESTATE);
    ck_assert_int_eq(ksafe_dedup_store_offset(s, GROUP, "t", -1, 1, &err),
                     KSAFE_EINVAL);
    ck_assert_int_eq(ksafe_dedup_store_offset(s, "", "t", 0, 1, &err),
                     KSAFE_EINVAL);
    rollback(s);
    ck_assert_str_eq(ksafe_dedup_store_name(s), kinds[_i].name);
    ksafe_dedup_store_free(s);
}
END_TEST

START_TEST(offsets_round_trip)
{
    ksafe_dedup_store *s = open_kind(_i);
    rd_kafka_topic_partition_list_t *l;
    ksafe_error err;
    size_t found = 99;

    begin(s);
    ck_assert_ok(ksafe_dedup_store_offset(s, GROUP, "orders", 0, 10, &err),
                 err);
    ck_assert_ok(ksafe_dedup_store_offset(s, GROUP, "orders", 0, 15, &err),
                 err);
    ck_assert_ok(ksafe_dedup_store_offset(s, GROUP, "orders", 1, 7, &err),
                 err);
    ck_assert_ok(ksafe_dedup_store_offset(s, GROUP, "orders", 0, 12, &err),
                 err);
    commit(s);

    /* Rolled back offsets are not stored. */
    begin(s);
    ck_assert_ok(ksafe_dedup_store_offset(s, GROUP, "orders", 0, 100, &err),
                 err);
    rollback(s);
    /* A lower position never replaces a stored one. */
    begin(s);
    ck_assert_ok(ksafe_dedup_store_offset(s, GROUP, "orders", 1, 3, &err),
                 err);
    commit(s);

    l = rd_kafka_topic_partition_list_new(3);
    rd_kafka_topic_partition_list_add(l, "orders", 0)->offset =
        RD_KAFKA_OFFSET_INVALID;
    rd_kafka_topic_partition_list_add(l, "orders", 1)->offset =
        RD_KAFKA_OFFSET_INVALID;
    rd_kafka_topic_partition_list_add(l, "orders", 2)->offset =
        RD_KAFKA_OFFSET_INVALID;
    ck_assert_ok(ksafe_dedup_load_offsets(s, GROUP, l, &found, &err), err);
    ck_assert_uint_eq(found, 2);
    ck_assert_int_eq(l->elems[0].offset, 15);
    ck_assert_int_eq(l->elems[1].offset, 7);
    ck_assert_int_eq(l->elems[2].offset, RD_KAFKA_OFFSET_INVALID);

    /* Offsets belong to their group. */
    l->elems[0].offset = RD_KAFKA_OFFSET_INVALID;
    ck_assert_ok(ksafe_dedup_load_offsets(s, "other-group", l, &found, &err),
                 err);
    ck_assert_uint_eq(found, 0);
    ck_assert_int_eq(l->elems[0].offset, RD_KAFKA_OFFSET_INVALID);

    begin(s);
    ck_assert_int_eq(ksafe_dedup_load_offsets(s, GROUP, l, NULL, &err),
                     KSAFE_ESTATE);
    rollback(s);
    rd_kafka_topic_partition_list_destroy(l);
    ksafe_dedup_store_free(s);
}
END_TEST

START_TEST(expire_old_keys)
{
    ksafe_dedup_store *s = open_kind(_i);
    ksafe_error err;
    uint64_t removed = 0;
    ksafe_dedup_stats st;

    fake_now = 1000000;
    process(s, "old");
    fake_now += 5000;
    process(s, "young");
    fake_now += 5000;
    /* "old" is 10 s old, "young" 5 s. */
    ck_assert_int_eq(ksafe_dedup_expire(s, 0, NULL, &err), KSAFE_EINVAL);
    ck_assert_ok(ksafe_dedup_expire(s, 7000, &removed, &err), err);
    ck_assert_uint_eq(removed, 1);
    ck_assert_int_eq(peek(s, "old"), KSAFE_DEDUP_NEW);
    ck_assert_int_eq(peek(s, "young"), KSAFE_DEDUP_DUPLICATE);
    ksafe_dedup_stats_get(s, &st);
    ck_assert_uint_eq(st.expired, 1);
    ksafe_dedup_store_free(s);
}
END_TEST

START_TEST(free_rolls_back)
{
    ksafe_dedup_store *s = open_kind(_i);

    process(s, "a");
    begin(s);
    ck_assert_int_eq(claim(s, "b"), KSAFE_DEDUP_NEW);
    mark(s, "b");
    ksafe_dedup_store_free(s); /* with the transaction open */
    if (_i >= first_durable) {
        s = open_kind(_i);
        ck_assert_int_eq(peek(s, "a"), KSAFE_DEDUP_DUPLICATE);
        ck_assert_int_eq(peek(s, "b"), KSAFE_DEDUP_NEW);
        ksafe_dedup_store_free(s);
    }
}
END_TEST

/* ---- durable, shared stores --------------------------------------------- */

START_TEST(survives_reopen)
{
    ksafe_dedup_store *s = open_kind(_i);
    rd_kafka_topic_partition_list_t *l;
    ksafe_error err;
    size_t found = 0;

    begin(s);
    ck_assert_int_eq(claim(s, "order-1"), KSAFE_DEDUP_NEW);
    mark(s, "order-1");
    ck_assert_ok(ksafe_dedup_store_offset(s, GROUP, "orders", 2, 11, &err),
                 err);
    commit(s);
    ksafe_dedup_store_free(s);

    s = open_kind(_i);
    ck_assert_int_eq(peek(s, "order-1"), KSAFE_DEDUP_DUPLICATE);
    ck_assert_int_eq(peek(s, "order-2"), KSAFE_DEDUP_NEW);
    l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, "orders", 2);
    ck_assert_ok(ksafe_dedup_load_offsets(s, GROUP, l, &found, &err), err);
    ck_assert_uint_eq(found, 1);
    ck_assert_int_eq(l->elems[0].offset, 11);
    rd_kafka_topic_partition_list_destroy(l);
    ksafe_dedup_store_free(s);
}
END_TEST

START_TEST(effects_commit_with_marks)
{
    const store_kind *k = &kinds[_i];
    ksafe_dedup_store *s;
    ksafe_error err;

    k->app_open();
    ck_assert_ok(k->app_store(&s, &err), err);
    begin(s);
    ck_assert_int_eq(claim(s, "a"), KSAFE_DEDUP_NEW);
    k->app_write("a");
    mark(s, "a");
    ck_assert_ok(ksafe_dedup_store_offset(s, GROUP, "orders", 0, 1, &err),
                 err);
    commit(s);
    ck_assert_int_eq(k->app_count(), 1);

    begin(s);
    ck_assert_int_eq(claim(s, "b"), KSAFE_DEDUP_NEW);
    k->app_write("b");
    mark(s, "b");
    rollback(s);
    /* The effect went with the mark. */
    ck_assert_int_eq(k->app_count(), 1);
    ck_assert_int_eq(peek(s, "b"), KSAFE_DEDUP_NEW);
    ck_assert_int_eq(peek(s, "a"), KSAFE_DEDUP_DUPLICATE);
    ksafe_dedup_store_free(s);
    k->app_close();
}
END_TEST

START_TEST(crash_leaves_nothing)
{
    const store_kind *k = &kinds[_i];
    ksafe_dedup_store *s;
    rd_kafka_topic_partition_list_t *l;
    ksafe_error err;
    size_t found = 9;
    pid_t pid;
    int status = 0;

    k->app_open();
    k->app_close();
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        /* The consumer: processes a record, then dies before committing. */
        ksafe_dedup_status st = KSAFE_DEDUP_DUPLICATE;

        k->app_open();
        if (k->app_store(&s, &err) || ksafe_dedup_begin(s, &err))
            _exit(2);
        if (ksafe_dedup_claim(s, KEY("x"), &st, &err) ||
            st != KSAFE_DEDUP_NEW)
            _exit(3);
        k->app_write("x");
        if (ksafe_dedup_mark(s, KEY("x"), &err) ||
            ksafe_dedup_store_offset(s, GROUP, "orders", 0, 42, &err))
            _exit(4);
        _exit(0);
    }
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "child status %d", status);

    ck_assert_int_eq(k->app_count(), 0);
    s = open_kind(_i);
    ck_assert_int_eq(peek(s, "x"), KSAFE_DEDUP_NEW);
    l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, "orders", 0);
    ck_assert_ok(ksafe_dedup_load_offsets(s, GROUP, l, &found, &err), err);
    ck_assert_uint_eq(found, 0);
    rd_kafka_topic_partition_list_destroy(l);
    ksafe_dedup_store_free(s);
}
END_TEST

typedef struct racer {
    ksafe_dedup_store *s;
    int rc;
    ksafe_dedup_status st;
    ksafe_error err;
} racer;

/* Another member got the same record: claim, and process it if NEW. */
static void *race(void *arg)
{
    racer *r = arg;

    r->rc = ksafe_dedup_begin(r->s, &r->err);
    if (!r->rc)
        r->rc = ksafe_dedup_claim(r->s, KEY("contested"), &r->st, &r->err);
    if (!r->rc && r->st == KSAFE_DEDUP_NEW) {
        r->rc = ksafe_dedup_mark(r->s, KEY("contested"), &r->err);
        if (!r->rc)
            r->rc = ksafe_dedup_commit(r->s, &r->err);
    } else if (!r->rc) {
        r->rc = ksafe_dedup_rollback(r->s, &r->err);
    }
    return NULL;
}

/* Lets the other thread reach its lock wait; the outcome asserted does not
 * depend on whether it got there. */
static void pause_briefly(void)
{
    struct timespec ts = {0, 100 * 1000 * 1000};
    nanosleep(&ts, NULL);
}

START_TEST(concurrent_claim_commit)
{
    ksafe_dedup_store *a = open_kind(_i);
    racer b;
    pthread_t th;

    memset(&b, 0, sizeof(b));
    b.s = open_kind(_i);
    begin(a);
    ck_assert_int_eq(claim(a, "contested"), KSAFE_DEDUP_NEW);
    ck_assert_int_eq(pthread_create(&th, NULL, race, &b), 0);
    pause_briefly();
    mark(a, "contested");
    commit(a);
    ck_assert_int_eq(pthread_join(th, NULL), 0);
    ck_assert_msg(b.rc == 0, "second member: %s", b.err.message);
    ck_assert_int_eq(b.st, KSAFE_DEDUP_DUPLICATE);
    ksafe_dedup_store_free(b.s);
    ksafe_dedup_store_free(a);
}
END_TEST

START_TEST(concurrent_claim_rollback)
{
    ksafe_dedup_store *a = open_kind(_i);
    racer b;
    pthread_t th;

    memset(&b, 0, sizeof(b));
    b.s = open_kind(_i);
    begin(a);
    ck_assert_int_eq(claim(a, "contested"), KSAFE_DEDUP_NEW);
    ck_assert_int_eq(pthread_create(&th, NULL, race, &b), 0);
    pause_briefly();
    rollback(a); /* the first member's handler failed */
    ck_assert_int_eq(pthread_join(th, NULL), 0);
    ck_assert_msg(b.rc == 0, "second member: %s", b.err.message);
    ck_assert_int_eq(b.st, KSAFE_DEDUP_NEW);
    /* ... and the second one's mark is now what everybody sees. */
    ck_assert_int_eq(peek(a, "contested"), KSAFE_DEDUP_DUPLICATE);
    ksafe_dedup_store_free(b.s);
    ksafe_dedup_store_free(a);
}
END_TEST

/* ---- memory store ------------------------------------------------------- */

#ifndef DEDUP_PG_ONLY
static ksafe_dedup_store *memory(size_t cap, int64_t ttl, size_t key_bytes)
{
    ksafe_dedup_memory_options o;
    ksafe_dedup_store *s;
    ksafe_error err;

    ck_assert_int_eq(ksafe_dedup_memory_options_init(
                         &o, KSAFE_DEDUP_MEMORY_OPTIONS_VERSION),
                     0);
    o.capacity = cap;
    o.ttl_ms = ttl;
    o.key_bytes = key_bytes;
    o.clock = fake_clock;
    ck_assert_ok(ksafe_dedup_memory_new(&s, &o, &err), err);
    return s;
}

START_TEST(memory_capacity_evicts_oldest)
{
    ksafe_dedup_store *s = memory(3, 0, 0);
    ksafe_dedup_stats st;

    process(s, "k1");
    process(s, "k2");
    process(s, "k3");
    /* A duplicate does not refresh k1: eviction is by insertion order. */
    ck_assert_int_eq(peek(s, "k1"), KSAFE_DEDUP_DUPLICATE);
    process(s, "k4");
    ck_assert_int_eq(peek(s, "k2"), KSAFE_DEDUP_DUPLICATE);
    ck_assert_int_eq(peek(s, "k3"), KSAFE_DEDUP_DUPLICATE);
    ck_assert_int_eq(peek(s, "k4"), KSAFE_DEDUP_DUPLICATE);
    ksafe_dedup_stats_get(s, &st);
    ck_assert_uint_eq(st.evicted, 1);
    ck_assert_int_eq(peek(s, "k1"), KSAFE_DEDUP_NEW);
    ksafe_dedup_store_free(s);
}
END_TEST

START_TEST(memory_ttl)
{
    ksafe_dedup_store *s = memory(100, 1000, 0);
    ksafe_dedup_stats st;

    fake_now = 0;
    process(s, "a");
    fake_now = 500;
    process(s, "b");
    fake_now = 999;
    ck_assert_int_eq(peek(s, "a"), KSAFE_DEDUP_DUPLICATE);
    fake_now = 1000; /* a is ttl old: gone */
    ck_assert_int_eq(peek(s, "a"), KSAFE_DEDUP_NEW);
    ck_assert_int_eq(peek(s, "b"), KSAFE_DEDUP_DUPLICATE);
    fake_now = 1500;
    ck_assert_int_eq(peek(s, "b"), KSAFE_DEDUP_NEW);
    ksafe_dedup_stats_get(s, &st);
    ck_assert_uint_eq(st.expired, 2);
    ck_assert_uint_eq(st.evicted, 0);
    ksafe_dedup_store_free(s);
}
END_TEST

START_TEST(memory_ttl_spares_open_batch)
{
    ksafe_dedup_store *s = memory(100, 1000, 0);

    /* A batch that runs longer than the TTL still sees its own keys. */
    fake_now = 0;
    begin(s);
    ck_assert_int_eq(claim(s, "slow"), KSAFE_DEDUP_NEW);
    mark(s, "slow");
    fake_now = 5000;
    ck_assert_int_eq(claim(s, "slow"), KSAFE_DEDUP_DUPLICATE);
    commit(s);
    ck_assert_int_eq(peek(s, "slow"), KSAFE_DEDUP_NEW);
    ksafe_dedup_store_free(s);
}
END_TEST

/* Heavy churn through a small table: exercises eviction, deletion without
 * tombstones and rollback over wrapped slots. */
static void churn(size_t key_bytes)
{
    ksafe_dedup_store *s = memory(1000, 0, key_bytes);
    char k[32];
    int i;

    for (i = 0; i < 10000; i++) {
        snprintf(k, sizeof(k), "key-%d", i);
        begin(s);
        ck_assert_int_eq(claim(s, k), KSAFE_DEDUP_NEW);
        if (i % 7 == 3) { /* a failed handler */
            ksafe_error err;
            ck_assert_ok(ksafe_dedup_release(s, KEY(k), &err), err);
            ck_assert_int_eq(claim(s, k), KSAFE_DEDUP_NEW);
        }
        mark(s, k);
        if (i % 11 == 5) {
            rollback(s);
            process(s, k);
        } else {
            commit(s);
        }
    }
    begin(s);
    for (i = 9999; i >= 9000; i--) {
        snprintf(k, sizeof(k), "key-%d", i);
        ck_assert_msg(claim(s, k) == KSAFE_DEDUP_DUPLICATE, "%s forgotten", k);
    }
    for (i = 0; i < 1000; i++) {
        snprintf(k, sizeof(k), "key-%d", i);
        ck_assert_msg(claim(s, k) == KSAFE_DEDUP_NEW, "%s remembered", k);
    }
    rollback(s);
    begin(s);
    for (i = 9000; i < 10000; i++) {
        snprintf(k, sizeof(k), "key-%d", i);
        ck_assert_int_eq(claim(s, k), KSAFE_DEDUP_DUPLICATE);
    }
    rollback(s);
    ksafe_dedup_store_free(s);
}

START_TEST(memory_churn_hashes)
{
    churn(0);
}
END_TEST

START_TEST(memory_churn_keys)
{
    churn(16);
}
END_TEST

START_TEST(memory_key_bytes_limit)
{
    ksafe_dedup_store *s = memory(10, 0, 8);
    ksafe_dedup_status st;
    ksafe_error err;

    begin(s);
    ck_assert_int_eq(ksafe_dedup_claim(s, KEY("123456789"), &st, &err),
                     KSAFE_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.message, "key_bytes=8"));
    /* A refused key is a per-record failure: the batch goes on. */
    ck_assert_int_eq(claim(s, "12345678"), KSAFE_DEDUP_NEW);
    mark(s, "12345678");
    commit(s);
    ksafe_dedup_store_free(s);
}
END_TEST

START_TEST(memory_forgets_on_close)
{
    ksafe_dedup_store *s = memory(10, 0, 0);

    process(s, "a");
    ksafe_dedup_store_free(s);
    s = memory(10, 0, 0);
    ck_assert_int_eq(peek(s, "a"), KSAFE_DEDUP_NEW);
    ksafe_dedup_store_free(s);
}
END_TEST

START_TEST(memory_options)
{
    ksafe_dedup_memory_options o = KSAFE_DEDUP_MEMORY_OPTIONS_INIT;
    ksafe_dedup_store *s = (ksafe_dedup_store *)1;
    ksafe_error err;

    ck_assert_int_eq(ksafe_dedup_memory_new(&s, &o, &err), KSAFE_EINVAL);
    ck_assert_ptr_null(s);
    ck_assert_ptr_nonnull(strstr(err.message, "capacity"));
    o.capacity = 10;
    o.ttl_ms = -1;
    ck_assert_int_eq(ksafe_dedup_memory_new(&s, &o, &err), KSAFE_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.message, "ttl_ms"));
    o.ttl_ms = 0;
    o.version = 99;
    ck_assert_int_eq(ksafe_dedup_memory_new(&s, &o, &err), KSAFE_EVERSION);
    ck_assert_int_eq(ksafe_dedup_memory_new(&s, NULL, &err), KSAFE_EINVAL);
    ck_assert_int_eq(ksafe_dedup_memory_options_init(&o, 99), KSAFE_EVERSION);
}
END_TEST
#endif

/* ---- SQLite specifics --------------------------------------------------- */

#ifndef DEDUP_PG_ONLY
START_TEST(sqlite_options)
{
    ksafe_dedup_sqlite_options o = KSAFE_DEDUP_SQLITE_OPTIONS_INIT;
    ksafe_dedup_store *s = NULL;
    ksafe_error err;

    o.path = db_path;
    if (!ksafe_dedup_has_sqlite()) {
        ck_assert_int_eq(ksafe_dedup_sqlite_new(&s, &o, &err), KSAFE_EINVAL);
        ck_assert_ptr_nonnull(strstr(err.message, "without SQLite"));
        return;
    }
    o.marks_table = "marks; DROP TABLE x";
    ck_assert_int_eq(ksafe_dedup_sqlite_new(&s, &o, &err), KSAFE_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.message, "marks_table"));
    o.marks_table = "same";
    o.offsets_table = "same";
    ck_assert_int_eq(ksafe_dedup_sqlite_new(&s, &o, &err), KSAFE_EINVAL);
    o.marks_table = NULL;
    o.offsets_table = NULL;
    o.path = NULL;
    ck_assert_int_eq(ksafe_dedup_sqlite_new(&s, &o, &err), KSAFE_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.message, "path or db"));
    o.path = "/nonexistent-dir/x/y.db";
    ck_assert_int_eq(ksafe_dedup_sqlite_new(&s, &o, &err), KSAFE_ESTORE);
    ck_assert_ptr_nonnull(strstr(err.message, "/nonexistent-dir/x/y.db"));
    /* Default table names work. */
    o.path = db_path;
    ck_assert_ok(ksafe_dedup_sqlite_new(&s, &o, &err), err);
    process(s, "k");
    ksafe_dedup_store_free(s);
}
END_TEST

#ifdef TEST_HAVE_SQLITE
START_TEST(sqlite_caller_transaction)
{
    ksafe_dedup_sqlite_options o = KSAFE_DEDUP_SQLITE_OPTIONS_INIT;
    ksafe_dedup_store *s;
    ksafe_error err;

    sqlite_app_open();
    o.db = app_db;
    o.txn_mode = KSAFE_DEDUP_TXN_CALLER;
    ck_assert_ok(ksafe_dedup_sqlite_new(&s, &o, &err), err);
    /* The application runs the transaction; the store only joins it. */
    sqlite_exec("BEGIN");
    begin(s);
    ck_assert_int_eq(claim(s, "a"), KSAFE_DEDUP_NEW);
    sqlite_app_write("a");
    mark(s, "a");
    commit(s);
    ck_assert_int_eq(sqlite3_get_autocommit(app_db), 0);
    sqlite_exec("ROLLBACK");
    ck_assert_int_eq(sqlite_app_count(), 0);
    /* The application's rollback took the claim with it. */
    sqlite_exec("BEGIN");
    begin(s);
    ck_assert_int_eq(claim(s, "a"), KSAFE_DEDUP_NEW);
    sqlite_app_write("a");
    mark(s, "a");
    commit(s);
    sqlite_exec("COMMIT");
    ck_assert_int_eq(sqlite_app_count(), 1);
    sqlite_exec("BEGIN");
    begin(s);
    ck_assert_int_eq(claim(s, "a"), KSAFE_DEDUP_DUPLICATE);
    rollback(s);
    sqlite_exec("ROLLBACK");
    ksafe_dedup_store_free(s);
    sqlite_app_close();
}
END_TEST
#endif
#endif

/* ---- the wrapper around your own store ---------------------------------- */

#ifndef DEDUP_PG_ONLY
typedef struct spy {
    int begins, commits, rollbacks, saves, closes;
    int64_t saved[4];
    int fail_commit;
} spy;

static int spy_begin(void *self, ksafe_error *err)
{
    (void)err;
    ((spy *)self)->begins++;
    return 0;
}
static int spy_claim(void *self, const void *key, size_t len, int *dup,
                     ksafe_error *err)
{
    (void)self; (void)key; (void)len; (void)err;
    *dup = 0;
    return 0;
}
static int spy_mark(void *self, const void *key, size_t len, ksafe_error *err)
{
    (void)self; (void)key; (void)len; (void)err;
    return 0;
}
static int spy_save(void *self, const char *group, const char *topic,
                    int32_t partition, int64_t next, ksafe_error *err)
{
    spy *p = self;
    (void)group; (void)topic; (void)err;
    p->saves++;
    p->saved[partition] = next;
    return 0;
}
static int spy_load(void *self, const char *group, const char *topic,
                    int32_t partition, int64_t *next, ksafe_error *err)
{
    (void)self; (void)group; (void)topic; (void)partition; (void)err;
    *next = -1;
    return 0;
}
static int spy_commit(void *self, ksafe_error *err)
{
    spy *p = self;
    p->commits++;
    if (p->fail_commit) {
        memset(err, 0, sizeof(*err));
        err->code = KSAFE_ESTORE;
        snprintf(err->message, sizeof(err->message), "spy commit failed");
        return KSAFE_ESTORE;
    }
    return 0;
}
static int spy_rollback(void *self, ksafe_error *err)
{
    (void)err;
    ((spy *)self)->rollbacks++;
    return 0;
}
static void spy_close(void *self)
{
    ((spy *)self)->closes++;
}

static const ksafe_dedup_store_ops spy_ops = {
    KSAFE_DEDUP_STORE_OPS_VERSION, "spy", spy_begin, spy_claim, spy_mark,
    spy_mark /* release */, spy_save, spy_load, spy_commit, spy_rollback,
    NULL, NULL, spy_close,
};

START_TEST(custom_store_offsets_once_per_batch)
{
    spy p;
    ksafe_dedup_store *s;
    ksafe_error err;
    int i;

    memset(&p, 0, sizeof(p));
    ck_assert_ok(ksafe_dedup_store_new(&s, &spy_ops, &p, &err), err);
    begin(s);
    for (i = 0; i < 500; i++) {
        char k[16];
        snprintf(k, sizeof(k), "%d", i);
        ck_assert_int_eq(claim(s, k), KSAFE_DEDUP_NEW);
        mark(s, k);
        ck_assert_ok(ksafe_dedup_store_offset(s, GROUP, "t", i % 2, i + 1,
                                              &err),
                     err);
    }
    ck_assert_int_eq(p.saves, 0);
    commit(s);
    /* One write per partition per batch, with the highest position. */
    ck_assert_int_eq(p.saves, 2);
    ck_assert_int_eq(p.saved[0], 499);
    ck_assert_int_eq(p.saved[1], 500);

    begin(s);
    ck_assert_ok(ksafe_dedup_store_offset(s, GROUP, "t", 0, 600, &err), err);
    rollback(s);
    begin(s);
    commit(s);
    ck_assert_int_eq(p.saves, 2); /* nothing left over from the rollback */

    /* A failed commit is rolled back, and the handle is usable again. */
    p.fail_commit = 1;
    begin(s);
    ck_assert_int_eq(ksafe_dedup_commit(s, &err), KSAFE_ESTORE);
    ck_assert_ptr_nonnull(strstr(err.message, "spy commit failed"));
    ck_assert_int_eq(ksafe_dedup_in_transaction(s), 0);
    ck_assert_int_eq(p.rollbacks, 2);
    p.fail_commit = 0;
    begin(s);
    commit(s);
    ck_assert_int_eq(ksafe_dedup_expire(s, 10, NULL, &err), KSAFE_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.message, "spy store cannot expire"));
    ksafe_dedup_store_free(s);
    ck_assert_int_eq(p.closes, 1);
}
END_TEST

START_TEST(custom_store_validation)
{
    ksafe_dedup_store_ops ops = spy_ops;
    ksafe_dedup_store *s = (ksafe_dedup_store *)1;
    ksafe_error err;
    spy p;

    memset(&p, 0, sizeof(p));
    ops.claim = NULL;
    ck_assert_int_eq(ksafe_dedup_store_new(&s, &ops, &p, &err), KSAFE_EINVAL);
    ck_assert_ptr_null(s);
    ck_assert_str_eq(err.message, "dedup store ops: claim is required");
    ops = spy_ops;
    ops.version = 2;
    ck_assert_int_eq(ksafe_dedup_store_new(&s, &ops, &p, &err),
                     KSAFE_EVERSION);
    ck_assert_int_eq(p.closes, 0);
}
END_TEST
#endif

#if defined(TEST_HAVE_PG) && defined(DEDUP_PG_ONLY)
/* ---- PostgreSQL: a lost connection ------------------------------------- */

/* Ends the server process behind `victim` from a second connection, as a
 * dropped connection or a DBA would, and waits until it is gone. */
static void pg_kill_backend(PGconn *victim)
{
    PGconn *c = pg_connect();
    char sql[160];
    int i, gone = 0;

    snprintf(sql, sizeof(sql), "SELECT pg_terminate_backend(%d)",
             PQbackendPID(victim));
    pg_exec(c, sql);
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM pg_stat_activity WHERE pid = %d",
             PQbackendPID(victim));
    for (i = 0; i < 100 && !gone; i++) {
        PGresult *r = PQexec(c, sql);
        struct timespec pause = {0, 50 * 1000000L};
        gone = PQresultStatus(r) == PGRES_TUPLES_OK &&
               atoi(PQgetvalue(r, 0, 0)) == 0;
        PQclear(r);
        if (!gone)
            nanosleep(&pause, NULL);
    }
    PQfinish(c);
    ck_assert_msg(gone, "backend %d still there", PQbackendPID(victim));
}

/* A store error that says what libpq said, retriable. */
static void assert_lost(int rc, const ksafe_error *err, const char *what)
{
    ck_assert_msg(rc == KSAFE_ESTORE, "%s after a lost connection returned %d "
                                      "(%s), not KSAFE_ESTORE",
                  what, rc, err->message);
    ck_assert_msg(strstr(err->message, "postgresql dedup store") != NULL,
                  "%s: %s", what, err->message);
    ck_assert_msg(err->flags & KSAFE_ERROR_RETRIABLE,
                  "%s: a lost connection is worth another try: %s", what,
                  err->message);
}

/*
 * The application's connection, shared with the store, is cut mid-batch:
 * the commit fails (the claim, the mark and the effect were lost with the
 * transaction: none of them is reported done or is there), and the next
 * batch reconnects and does the work once.
 */
START_TEST(pg_reconnects_after_a_lost_connection)
{
    ksafe_dedup_store *s;
    ksafe_dedup_status st;
    ksafe_error err;
    int pid;

    pg_app_open();
    ck_assert_ok(pg_app_store(&s, &err), err);
    process(s, "before");

    /* lost before the commit */
    begin(s);
    ck_assert_int_eq(claim(s, "a"), KSAFE_DEDUP_NEW);
    pg_app_write("a");
    mark(s, "a");
    pid = PQbackendPID(app_conn);
    pg_kill_backend(app_conn);
    assert_lost(ksafe_dedup_commit(s, &err), &err, "commit");
    ck_assert_int_eq(ksafe_dedup_in_transaction(s), 0);
    ck_assert_int_eq(pg_app_count(), 0);

    /* the next batch reconnects; the lost one left nothing behind */
    ck_assert_ok(ksafe_dedup_begin(s, &err), err);
    ck_assert_int_ne(PQbackendPID(app_conn), pid);
    ck_assert_int_eq(claim(s, "a"), KSAFE_DEDUP_NEW);
    pg_app_write("a");
    mark(s, "a");
    commit(s);
    ck_assert_int_eq(pg_app_count(), 1);
    ck_assert_int_eq(peek(s, "a"), KSAFE_DEDUP_DUPLICATE);
    ck_assert_int_eq(peek(s, "before"), KSAFE_DEDUP_DUPLICATE);

    /* lost between two claims */
    begin(s);
    ck_assert_int_eq(claim(s, "b"), KSAFE_DEDUP_NEW);
    pg_app_write("b");
    mark(s, "b");
    pg_kill_backend(app_conn);
    assert_lost(ksafe_dedup_claim(s, KEY("c"), &st, &err), &err, "claim");
    ck_assert_ok(ksafe_dedup_rollback(s, &err), err);
    ck_assert_int_eq(peek(s, "b"), KSAFE_DEDUP_NEW);
    ck_assert_int_eq(pg_app_count(), 1);

    /* lost between batches: begin itself reconnects */
    pg_kill_backend(app_conn);
    process(s, "d");
    ck_assert_int_eq(peek(s, "d"), KSAFE_DEDUP_DUPLICATE);
    ksafe_dedup_store_free(s);
    pg_app_close();
}
END_TEST

/* Runs .ci/postgres.sh restart: the server stops (cutting every
 * connection) and starts again on the same port. */
static void pg_restart_server(void)
{
    const char *script = getenv("KSAFE_PG_SCRIPT");
    char cmd[700];

    ck_assert_msg(script && *script, "KSAFE_PG_SCRIPT is not set");
    snprintf(cmd, sizeof(cmd), "bash '%s' restart >/dev/null 2>&1", script);
    ck_assert_msg(system(cmd) == 0,
                  "%s restart failed: is KSAFE_PG_DIR the directory of the "
                  "server KSAFE_TEST_PG names?",
                  script);
}

/*
 * The server restarts mid-batch under a store with its own connection:
 * the batch fails, what was committed before is still there, the next
 * batch reconnects.
 */
START_TEST(pg_reconnects_after_a_server_restart)
{
    ksafe_dedup_store *s;
    ksafe_error err;

    ck_assert_ok(open_pg(&s, &err), err);
    process(s, "x");
    begin(s);
    ck_assert_int_eq(claim(s, "y"), KSAFE_DEDUP_NEW);
    mark(s, "y");
    pg_restart_server();
    assert_lost(ksafe_dedup_commit(s, &err), &err, "commit");
    ck_assert_ok(ksafe_dedup_begin(s, &err), err);
    ck_assert_int_eq(claim(s, "y"), KSAFE_DEDUP_NEW);
    mark(s, "y");
    commit(s);
    ck_assert_int_eq(peek(s, "x"), KSAFE_DEDUP_DUPLICATE);
    ck_assert_int_eq(peek(s, "y"), KSAFE_DEDUP_DUPLICATE);

    /* a restart between batches */
    pg_restart_server();
    process(s, "z");
    ksafe_dedup_store_free(s);
}
END_TEST

/* The server is gone and stays gone: begin fails as a store error naming
 * the reason, after one bounded attempt. */
START_TEST(pg_begin_reports_a_failed_reconnect)
{
    ksafe_dedup_pg_options o = KSAFE_DEDUP_PG_OPTIONS_INIT;
    ksafe_dedup_store *s;
    ksafe_error err;
    PGconn *c = pg_connect();
    char sql[200];
    time_t start;
    int rc;

    /* The tables belong to the usual user, so the role can go at the end. */
    ck_assert_ok(open_pg(&s, &err), err);
    ksafe_dedup_store_free(s);
    /* A role that may log in once: after the cut it cannot come back. */
    snprintf(sql, sizeof(sql), "DROP ROLE IF EXISTS %s_once", marks_t);
    pg_exec(c, sql);
    snprintf(sql, sizeof(sql), "CREATE ROLE %s_once LOGIN SUPERUSER",
             marks_t);
    pg_exec(c, sql);
    snprintf(sql, sizeof(sql), "%s user=%s_once connect_timeout=5",
             pg_conninfo(), marks_t);
    o.conninfo = sql;
    o.marks_table = marks_t;
    o.offsets_table = offsets_t;
    o.clock = fake_clock;
    ck_assert_ok(ksafe_dedup_pg_new(&s, &o, &err), err);
    process(s, "p");
    {
        char q[200];
        snprintf(q, sizeof(q), "ALTER ROLE %s_once NOLOGIN", marks_t);
        pg_exec(c, q);
        snprintf(q, sizeof(q),
                 "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                 "WHERE usename = '%s_once'",
                 marks_t);
        pg_exec(c, q);
    }
    start = time(NULL);
    do {
        rc = ksafe_dedup_begin(s, &err);
        if (rc == 0) /* not cut yet */
            ck_assert_ok(ksafe_dedup_rollback(s, &err), err);
    } while (rc == 0 && time(NULL) - start < 10);
    assert_lost(rc, &err, "begin");
    ck_assert_msg(strstr(err.message, "reconnect") != NULL, "%s",
                  err.message);
    ck_assert_msg(strstr(err.message, "not permitted to log in") != NULL,
                  "the libpq reason is missing: %s", err.message);
    ck_assert_int_eq(ksafe_dedup_in_transaction(s), 0);
    ksafe_dedup_store_free(s);
    snprintf(sql, sizeof(sql), "DROP ROLE IF EXISTS %s_once", marks_t);
    pg_exec(c, sql);
    PQfinish(c);
}
END_TEST

static void add_pg(Suite *s, const char *name, const TTest *test)
{
    TCase *t = tcase_create(name);

    tcase_add_checked_fixture(t, ctx_up, ctx_down);
    tcase_set_timeout(t, 60);
    tcase_add_test(t, test);
    suite_add_tcase(s, t);
}
#endif

/* ---- suite -------------------------------------------------------------- */

static void add_loop(Suite *s, const char *name, const TTest *test, int from)
{
    TCase *t;

    if (from >= n_kinds)
        return;
    t = tcase_create(name);
    tcase_add_checked_fixture(t, ctx_up, ctx_down);
    tcase_set_timeout(t, 60);
    tcase_add_loop_test(t, test, from, n_kinds);
    suite_add_tcase(s, t);
}

#ifndef DEDUP_PG_ONLY
static void add_one(Suite *s, const char *name, const TTest *test)
{
    TCase *t = tcase_create(name);

    tcase_add_checked_fixture(t, ctx_up, ctx_down);
    tcase_add_test(t, test);
    suite_add_tcase(s, t);
}
#endif

static Suite *dedup_suite(void)
{
    Suite *s = suite_create("dedup");

    kinds_init();
    add_loop(s, "claim_mark_duplicate", claim_mark_duplicate, 0);
    add_loop(s, "duplicate_within_batch", duplicate_within_batch, 0);
    add_loop(s, "rollback_releases", rollback_releases, 0);
    add_loop(s, "release_one_claim", release_one_claim, 0);
    add_loop(s, "commit_refuses_open_claim", commit_refuses_open_claim, 0);
    add_loop(s, "call_order", call_order, 0);
    add_loop(s, "offsets_round_trip", offsets_round_trip, 0);
    add_loop(s, "expire_old_keys", expire_old_keys, 0);
    add_loop(s, "free_rolls_back", free_rolls_back, 0);
    add_loop(s, "survives_reopen", survives_reopen, first_durable);
    add_loop(s, "effects_commit_with_marks", effects_commit_with_marks,
             first_durable);
    add_loop(s, "crash_leaves_nothing", crash_leaves_nothing, first_durable);
    add_loop(s, "concurrent_claim_commit", concurrent_claim_commit,
             first_durable);
    add_loop(s, "concurrent_claim_rollback", concurrent_claim_rollback,
             first_durable);
#if defined(TEST_HAVE_PG) && defined(DEDUP_PG_ONLY)
    add_pg(s, "pg_reconnects_after_a_lost_connection",
           pg_reconnects_after_a_lost_connection);
    add_pg(s, "pg_reconnects_after_a_server_restart",
           pg_reconnects_after_a_server_restart);
    add_pg(s, "pg_begin_reports_a_failed_reconnect",
           pg_begin_reports_a_failed_reconnect);
#endif
#ifndef DEDUP_PG_ONLY
    add_one(s, "memory_capacity_evicts_oldest", memory_capacity_evicts_oldest);
    add_one(s, "memory_ttl", memory_ttl);
    add_one(s, "memory_ttl_spares_open_batch", memory_ttl_spares_open_batch);
    add_one(s, "memory_churn_hashes", memory_churn_hashes);
    add_one(s, "memory_churn_keys", memory_churn_keys);
    add_one(s, "memory_key_bytes_limit", memory_key_bytes_limit);
    add_one(s, "memory_forgets_on_close", memory_forgets_on_close);
    add_one(s, "memory_options", memory_options);
    add_one(s, "sqlite_options", sqlite_options);
#ifdef TEST_HAVE_SQLITE
    add_one(s, "sqlite_caller_transaction", sqlite_caller_transaction);
#endif
    add_one(s, "custom_store_offsets_once_per_batch",
            custom_store_offsets_once_per_batch);
    add_one(s, "custom_store_validation", custom_store_validation);
#endif
    return s;
}

#ifdef DEDUP_PG_ONLY
int main(void)
{
    SRunner *sr;
    int failed;

    if (!ksafe_dedup_has_postgresql()) {
        printf("SKIP: ksafe was built without PostgreSQL support "
               "(meson setup -Dpostgresql=enabled needs libpq-dev)\n");
        return 77;
    }
#ifndef TEST_HAVE_PG
    printf("SKIP: the tests were built without libpq\n");
    return 77;
#endif
    if (!getenv("KSAFE_TEST_PG") || !*getenv("KSAFE_TEST_PG")) {
        printf("SKIP: KSAFE_TEST_PG is not set, so no PostgreSQL test ran.\n"
               "  Start a throwaway server (as root): "
               "eval \"$(.ci/postgres.sh start)\"\n"
               "  then: meson test -C build dedup-pg; stop it with "
               ".ci/postgres.sh stop\n");
        return 77;
    }
    sr = srunner_create(dedup_suite());
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
#else
KSAFE_TEST_MAIN(dedup_suite)
#endif
