/*
 * tests/bench/bench_dedup.c - how fast the dedup stores claim and mark.
 *
 * Not a test: it prints numbers (`meson test -C build --benchmark`). Every
 * record is claim + mark; transactions hold 500 records, as a poll batch
 * would. Half the memory-store checks hit a key already done.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <ksafe/ksafe.h>

#define BATCH 500

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int die(const char *what, const ksafe_error *err)
{
    fprintf(stderr, "%s: %s\n", what, err->message);
    return 1;
}

/* Runs n records through s; with `redeliver` every odd record repeats the
 * key of a record 1001 earlier (a previous batch). 0 or 1. */
static int run(ksafe_dedup_store *s, long n, int redeliver, double *secs)
{
    ksafe_error err;
    char key[32];
    double t0 = now_s();
    long i;

    for (i = 0; i < n; i++) {
        ksafe_dedup_status st;
        long id = redeliver && (i & 1) && i > 1001 ? i - 1001 : i;
        int len = snprintf(key, sizeof(key), "event-%ld", id);

        if (i % BATCH == 0 && ksafe_dedup_begin(s, &err))
            return die("begin", &err);
        if (ksafe_dedup_claim(s, key, (size_t)len, &st, &err))
            return die("claim", &err);
        if (st == KSAFE_DEDUP_NEW && ksafe_dedup_mark(s, key, (size_t)len, &err))
            return die("mark", &err);
        if ((i % BATCH == BATCH - 1 || i == n - 1) &&
            ksafe_dedup_commit(s, &err))
            return die("commit", &err);
    }
    *secs = now_s() - t0;
    return 0;
}

static int bench_memory(size_t key_bytes)
{
    ksafe_dedup_memory_options o = KSAFE_DEDUP_MEMORY_OPTIONS_INIT;
    ksafe_dedup_store *s;
    ksafe_dedup_stats st;
    ksafe_error err;
    const long n = 4000000;
    double secs;

    o.capacity = 1000000;
    o.key_bytes = key_bytes;
    if (ksafe_dedup_memory_new(&s, &o, &err))
        return die("memory store", &err);
    /* 4 M records, half of them redelivered: the window (1 M) evicts as it
     * goes. */
    if (run(s, n, 1, &secs))
        return 1;
    ksafe_dedup_stats_get(s, &st);
    printf("memory store (capacity 1M, %s): %.0f check-and-mark ops/s "
           "(%ld records, %llu new, %llu duplicates, %llu evicted)\n",
           key_bytes ? "keys kept" : "hashes only", (double)n / secs, n,
           (unsigned long long)st.claimed, (unsigned long long)st.duplicates,
           (unsigned long long)st.evicted);
    ksafe_dedup_store_free(s);
    return 0;
}

static int bench_sqlite(void)
{
    ksafe_dedup_sqlite_options o = KSAFE_DEDUP_SQLITE_OPTIONS_INIT;
    char dir[] = "/tmp/ksafe-bench-XXXXXX", path[128], side[160];
    ksafe_dedup_store *s;
    ksafe_error err;
    const long n = 200000;
    double secs;
    int rc;

    if (!ksafe_dedup_has_sqlite()) {
        printf("sqlite store: not built into this ksafe (meson -Dsqlite)\n");
        return 0;
    }
    if (!mkdtemp(dir))
        return 1;
    snprintf(path, sizeof(path), "%s/bench.db", dir);
    o.path = path;
    if (ksafe_dedup_sqlite_new(&s, &o, &err))
        return die("sqlite store", &err);
    rc = run(s, n, 0, &secs);
    if (!rc)
        printf("sqlite store (WAL, file in %s): %.0f marks/s "
               "(%ld records, one transaction per %d)\n",
               dir, (double)n / secs, n, BATCH);
    ksafe_dedup_store_free(s);
    unlink(path);
    snprintf(side, sizeof(side), "%s-wal", path);
    unlink(side);
    snprintf(side, sizeof(side), "%s-shm", path);
    unlink(side);
    rmdir(dir);
    return rc;
}

int main(void)
{
    if (bench_memory(0) || bench_memory(16) || bench_sqlite())
        return 1;
    return 0;
}
