/*
 * tests/test_crash.c - the at-least-once loop under SIGKILL.
 *
 * A worker process (samples/demo in --worker mode) runs ksafe_run() over
 * 20 000 records and appends the id of every record it handles to its own
 * file before returning OK. It is SIGKILLed at random points at least ten
 * times (the seed is printed; set KSAFE_CRASH_SEED to replay) and restarted
 * each time. At the end every record was handled at least once, and what
 * each restart handled again is bounded by the commit policy.
 *
 * Then the same with deduplication: tests/dedup_worker.c writes each
 * record's effect to a database table in the transaction of its dedup mark
 * (SQLite, one member; PostgreSQL, two members so that partitions move
 * between them), and after ten SIGKILLs every effect is there exactly once.
 */
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"
#ifdef TEST_HAVE_SQLITE
#include <sqlite3.h>
#endif
#ifdef TEST_HAVE_PG
#include <libpq-fe.h>
#endif

#define RECORDS 20000
#define PARTITIONS 8
#define KILLS 10
#define COMMIT_EVERY 200
#define HANDLER_US 400

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static off_t file_size(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 ? sb.st_size : 0;
}

/* Adds the ids in `path` to seen[]; returns how many were already there. */
static int absorb(const char *path, unsigned char *seen, int *lines)
{
    char line[64];
    int again = 0;
    FILE *f = fopen(path, "r");

    *lines = 0;
    if (!f)
        return 0;
    while (fgets(line, sizeof(line), f)) {
        int i;
        ck_assert_int_eq(sscanf(line, "value-%d", &i), 1);
        ck_assert(i >= 0 && i < RECORDS);
        if (seen[i])
            again++;
        seen[i] = 1;
        (*lines)++;
    }
    fclose(f);
    return again;
}

static int count_seen(const unsigned char *seen)
{
    int i, n = 0;
    for (i = 0; i < RECORDS; i++)
        n += seen[i];
    return n;
}

START_TEST(sigkilled_loop_loses_nothing_and_redelivers_within_policy)
{
    static unsigned char seen[RECORDS];
    const char *worker = getenv("KSAFE_DEMO_WORKER");
    const char *seed_env = getenv("KSAFE_CRASH_SEED");
    char topic[64], group[64], dir[] = "/tmp/ksafe-crash-XXXXXX";
    char out[KILLS + 1][600], stats[600];
    unsigned seed;
    int run, status, total_again = 0, max_again = 0, lines;
    ksafe_error err;
    pid_t pid;
    time_t deadline;

    ck_assert_msg(worker && *worker, "KSAFE_DEMO_WORKER is not set");
    seed = seed_env ? (unsigned)strtoul(seed_env, NULL, 10)
                    : (unsigned)time(NULL) ^ (unsigned)getpid();
    printf("crash test seed %u (KSAFE_CRASH_SEED=%u replays it)\n", seed,
           seed);
    srand(seed);
    ck_assert_ptr_nonnull(mkdtemp(dir));
    ksafe_test_unique_name(topic, sizeof(topic), "crash");
    ksafe_test_unique_name(group, sizeof(group), "crash-g");
    ck_assert_ok(ksafe_test_cluster_create_topic(tc, topic, PARTITIONS, &err),
                 err);
    test_produce(tc, topic, 0, RECORDS);
    snprintf(stats, sizeof(stats), "%s/stats", dir);

    for (run = 0; run < KILLS; run++) {
        int wait_ms = 50 + rand() % 450;
        snprintf(out[run], sizeof(out[run]), "%s/run-%d.out", dir, run);
        pid = test_spawn_demo_worker(tc, worker, topic, group, out[run], stats,
                                     test_session_ms(tc), HANDLER_US,
                                     COMMIT_EVERY);
        /* kill once it is handling records, at a random point */
        deadline = time(NULL) + 60;
        while (file_size(out[run]) == 0 && time(NULL) < deadline)
            sleep_ms(5);
        ck_assert_msg(file_size(out[run]) > 0, "run %d never started", run);
        sleep_ms(wait_ms);
        kill(pid, SIGKILL);
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        ck_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    }

    /* the last run finishes the work, then stops gracefully */
    snprintf(out[KILLS], sizeof(out[KILLS]), "%s/run-%d.out", dir, KILLS);
    pid = test_spawn_demo_worker(tc, worker, topic, group, out[KILLS], stats,
                                 test_session_ms(tc), HANDLER_US,
                                 COMMIT_EVERY);
    deadline = time(NULL) + 120;
    for (;;) {
        memset(seen, 0, sizeof(seen));
        for (run = 0; run <= KILLS; run++)
            absorb(out[run], seen, &lines);
        if (count_seen(seen) == RECORDS || time(NULL) > deadline)
            break;
        sleep_ms(200);
    }
    kill(pid, SIGTERM);
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "final worker did not stop cleanly (status %d)", status);

    memset(seen, 0, sizeof(seen));
    for (run = 0; run <= KILLS; run++) {
        int again = absorb(out[run], seen, &lines);
        /* What run N handles again was marked by run N-1 after its last
         * acknowledged commit: at most two commit windows (one commit may
         * have been in flight at the kill) plus the record being handled. */
        ck_assert_msg(again <= 2 * COMMIT_EVERY + 1,
                      "run %d handled %d records again (bound %d)", run,
                      again, 2 * COMMIT_EVERY + 1);
        total_again += again;
        if (again > max_again)
            max_again = again;
        printf("run %2d: handled %5d, again %3d\n", run, lines, again);
    }
    ck_assert_int_eq(count_seen(seen), RECORDS); /* 0 lost */
    printf("kills %d, lost 0, redelivered %d (max %d per kill, bound %d)\n",
           KILLS, total_again, max_again, 2 * COMMIT_EVERY + 1);
}
END_TEST

/* ---- the same with deduplication in a database ------------------------- */

#if defined(TEST_HAVE_SQLITE) || defined(TEST_HAVE_PG)

typedef struct db_counts {
    long rows, distinct;
} db_counts;

typedef struct dbctx {
    const char *store; /* worker argument: sqlite:PATH or pg:CONNINFO */
    char prefix[48];
#ifdef TEST_HAVE_SQLITE
    sqlite3 *db;
#endif
#ifdef TEST_HAVE_PG
    PGconn *pg;
#endif
} dbctx;

static db_counts db_count(dbctx *d)
{
    char sql[160];
    db_counts n = {0, 0};

    snprintf(sql, sizeof(sql),
             "SELECT count(*), count(DISTINCT v) FROM %s_applied", d->prefix);
#ifdef TEST_HAVE_PG
    if (d->pg) {
        PGresult *r = PQexec(d->pg, sql);
        if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1) {
            n.rows = atol(PQgetvalue(r, 0, 0));
            n.distinct = atol(PQgetvalue(r, 0, 1));
        }
        PQclear(r);
        return n;
    }
#endif
#ifdef TEST_HAVE_SQLITE
    {
        sqlite3_stmt *st;
        if (sqlite3_prepare_v2(d->db, sql, -1, &st, NULL) == SQLITE_OK &&
            sqlite3_step(st) == SQLITE_ROW) {
            n.rows = sqlite3_column_int64(st, 0);
            n.distinct = sqlite3_column_int64(st, 1);
        }
        sqlite3_finalize(st);
    }
#endif
    return n;
}

static pid_t spawn_dedup(const char *worker, const char *topic,
                         const char *group, dbctx *d)
{
    char session[16];
    pid_t pid;

    snprintf(session, sizeof(session), "%d", test_session_ms(tc));
    pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* no orphans if the test dies */
        execl(worker, worker, ksafe_test_cluster_bootstrap(tc), topic, group,
              d->store, d->prefix, session, (char *)NULL);
        _exit(127);
    }
    ck_assert_int_gt(pid, 0);
    return pid;
}

/* Waits until the applied rows grew past `from` (the worker is busy). */
static void wait_busy(dbctx *d, long from)
{
    time_t deadline = time(NULL) + 60;

    while (db_count(d).rows <= from && time(NULL) < deadline)
        sleep_ms(5);
    ck_assert_msg(db_count(d).rows > from, "worker never started");
}

static void finish(dbctx *d, const pid_t *pid, int members, int events,
                   const char *what);

/*
 * `members` workers run at once; KILLS times one of them (in turn) is
 * SIGKILLed mid-work and started again, so partitions move between members
 * each time. Every record's effect must be in the table exactly once.
 */
static void dedup_crash(dbctx *d, int members)
{
    const char *worker = getenv("KSAFE_DEDUP_WORKER");
    char topic[64], group[64];
    pid_t pid[2];
    int kill_no, m, status;
    ksafe_error err;
    db_counts n;

    ck_assert_msg(worker && *worker, "KSAFE_DEDUP_WORKER is not set");
    ksafe_test_unique_name(topic, sizeof(topic), "dcrash");
    ksafe_test_unique_name(group, sizeof(group), "dcrash-g");
    ck_assert_ok(ksafe_test_cluster_create_topic(tc, topic, PARTITIONS, &err),
                 err);
    test_produce(tc, topic, 0, RECORDS);
    for (m = 0; m < members; m++) {
        pid[m] = spawn_dedup(worker, topic, group, d);
        wait_busy(d, db_count(d).rows); /* one creates the tables first */
    }
    for (kill_no = 0; kill_no < KILLS; kill_no++) {
        int victim = kill_no % members;
        sleep_ms(50 + rand() % 450);
        kill(pid[victim], SIGKILL);
        ck_assert_int_eq(waitpid(pid[victim], &status, 0), pid[victim]);
        n = db_count(d);
        printf("%s kill %2d: member %d, rows %ld, distinct %ld\n", d->store,
               kill_no, victim, n.rows, n.distinct);
        ck_assert_int_lt(n.distinct, RECORDS); /* killed mid-work */
        pid[victim] = spawn_dedup(worker, topic, group, d);
        wait_busy(d, n.rows);
    }
    finish(d, pid, members, KILLS, "kills");
}

/* Lets the members finish the topic, stops them, and checks that every
 * record's effect is in the table exactly once. */
static void finish(dbctx *d, const pid_t *pid, int members, int events,
                   const char *what)
{
    time_t deadline = time(NULL) + 180;
    db_counts n;
    int m, status;

    while (db_count(d).distinct < RECORDS && time(NULL) < deadline)
        sleep_ms(200);
    for (m = 0; m < members; m++) {
        kill(pid[m], SIGTERM);
        ck_assert_int_eq(waitpid(pid[m], &status, 0), pid[m]);
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                      "member %d did not stop cleanly (status %d)", m, status);
    }
    n = db_count(d);
    printf("%s: %d %s, %d members: rows %ld, distinct %ld of %d\n", d->store,
           events, what, members, n.rows, n.distinct, RECORDS);
    ck_assert_int_eq(n.distinct, RECORDS); /* 0 lost */
    ck_assert_int_eq(n.rows, RECORDS);     /* 0 duplicate effects */
}

static void unique_prefix(char *buf, size_t size)
{
    static int counter;
    snprintf(buf, size, "t%ld_%d_%ld", (long)getpid(), ++counter,
             (long)time(NULL) % 100000);
}

#endif

#ifdef TEST_HAVE_SQLITE
START_TEST(sigkilled_sqlite_dedup_applies_each_effect_once)
{
    char path[] = "/tmp/ksafe-dcrash-XXXXXX", dbfile[600], store[620];
    dbctx d;

    memset(&d, 0, sizeof(d));
    ck_assert_ptr_nonnull(mkdtemp(path));
    snprintf(dbfile, sizeof(dbfile), "%s/effects.db", path);
    snprintf(store, sizeof(store), "sqlite:%s", dbfile);
    d.store = store;
    unique_prefix(d.prefix, sizeof(d.prefix));
    ck_assert_int_eq(sqlite3_open(dbfile, &d.db), SQLITE_OK);
    sqlite3_busy_timeout(d.db, 5000);
    dedup_crash(&d, 1);
    sqlite3_close(d.db);
}
END_TEST
#endif

#ifdef TEST_HAVE_PG
START_TEST(sigkilled_pg_group_applies_each_effect_once)
{
    const char *conninfo = getenv("KSAFE_TEST_PG");
    char store[600];
    dbctx d;

    ck_assert_msg(conninfo && *conninfo, "KSAFE_TEST_PG is not set");
    memset(&d, 0, sizeof(d));
    snprintf(store, sizeof(store), "pg:%s", conninfo);
    d.store = store;
    unique_prefix(d.prefix, sizeof(d.prefix));
    d.pg = PQconnectdb(conninfo);
    ck_assert_int_eq(PQstatus(d.pg), CONNECTION_OK);
    dedup_crash(&d, 2); /* two members: partitions move between them */
    PQfinish(d.pg);
}
END_TEST

/*
 * The database goes away under a running group: KILLS times the server is
 * restarted mid-work (every connection cut). The store reconnects, the loop
 * retries its store errors without charging them to a record, and every
 * effect is still applied exactly once.
 */
START_TEST(pg_restarts_mid_run_lose_and_duplicate_nothing)
{
    const char *worker = getenv("KSAFE_DEDUP_WORKER");
    const char *conninfo = getenv("KSAFE_TEST_PG");
    char store[600], topic[64], group[64];
    pid_t pid[2];
    int restart, m;
    ksafe_error err;
    db_counts n;
    dbctx d;

    ck_assert_msg(worker && *worker, "KSAFE_DEDUP_WORKER is not set");
    ck_assert_msg(conninfo && *conninfo, "KSAFE_TEST_PG is not set");
    memset(&d, 0, sizeof(d));
    snprintf(store, sizeof(store), "pg:%s", conninfo);
    d.store = store;
    unique_prefix(d.prefix, sizeof(d.prefix));
    d.pg = PQconnectdb(conninfo);
    ck_assert_int_eq(PQstatus(d.pg), CONNECTION_OK);
    ksafe_test_unique_name(topic, sizeof(topic), "pgrestart");
    ksafe_test_unique_name(group, sizeof(group), "pgrestart-g");
    ck_assert_ok(ksafe_test_cluster_create_topic(tc, topic, PARTITIONS, &err),
                 err);
    test_produce(tc, topic, 0, RECORDS);
    for (m = 0; m < 2; m++) {
        pid[m] = spawn_dedup(worker, topic, group, &d);
        wait_busy(&d, db_count(&d).rows);
    }
    for (restart = 0; restart < KILLS / 2; restart++) {
        sleep_ms(100 + rand() % 400);
        test_pg_restart();
        PQreset(d.pg);
        ck_assert_int_eq(PQstatus(d.pg), CONNECTION_OK);
        n = db_count(&d);
        printf("%s restart %d: rows %ld, distinct %ld\n", d.store, restart,
               n.rows, n.distinct);
        ck_assert_int_lt(n.distinct, RECORDS); /* restarted mid-work */
        wait_busy(&d, n.rows);                  /* and the members go on */
    }
    finish(&d, pid, 2, restart, "server restarts");
    PQfinish(d.pg);
}
END_TEST
#endif

/* test-crash runs everything but PostgreSQL; `test-crash --pg` (meson test
 * crash-pg) runs the PostgreSQL part and exits 77 - meson's SKIP - without
 * a server, so a skipped run shows as skipped. */
static Suite *crash_suite(int pg)
{
    Suite *s = suite_create("crash");
    TCase *t = tcase_create("sigkill");

    tcase_add_unchecked_fixture(t, test_cluster_up, test_cluster_down);
    tcase_set_timeout(t, 600);
    if (!pg) {
        tcase_add_test(t,
                       sigkilled_loop_loses_nothing_and_redelivers_within_policy);
#ifdef TEST_HAVE_SQLITE
        tcase_add_test(t, sigkilled_sqlite_dedup_applies_each_effect_once);
#endif
    }
#ifdef TEST_HAVE_PG
    if (pg) {
        tcase_add_test(t, sigkilled_pg_group_applies_each_effect_once);
        tcase_add_test(t, pg_restarts_mid_run_lose_and_duplicate_nothing);
    }
#endif
    suite_add_tcase(s, t);
    return s;
}

int main(int argc, char **argv)
{
    const char *conninfo = getenv("KSAFE_TEST_PG");
    int pg = argc == 2 && strcmp(argv[1], "--pg") == 0;
    SRunner *sr;
    int failed;

    if (argc > 1 && !pg) {
        fprintf(stderr, "usage: %s [--pg]\n", argv[0]);
        return 2;
    }
#ifndef TEST_HAVE_PG
    if (pg) {
        printf("SKIP: the tests were built without libpq\n");
        return 77;
    }
#endif
    if (pg && (!conninfo || !*conninfo)) {
        printf("SKIP: KSAFE_TEST_PG is not set (eval \"$(.ci/postgres.sh "
               "start)\" starts a server)\n");
        return 77;
    }
    if (pg) { /* the kill and restart times of the PostgreSQL part */
        const char *seed_env = getenv("KSAFE_CRASH_SEED");
        unsigned seed = seed_env ? (unsigned)strtoul(seed_env, NULL, 10)
                                 : (unsigned)time(NULL) ^ (unsigned)getpid();
        printf("crash-pg seed %u (KSAFE_CRASH_SEED=%u replays it)\n", seed,
               seed);
        srand(seed);
    }
    sr = srunner_create(crash_suite(pg));
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
