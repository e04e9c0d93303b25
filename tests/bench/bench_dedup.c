/*
 * tests/bench/bench_dedup.c - how fast the dedup stores claim and mark.
 *
 * Not a test: it prints numbers (`meson test -C build --benchmark`). Every
 * record is claim + mark (one check-and-mark op); transactions hold 500
 * records, as a poll batch would. Half the memory-store checks hit a key
 * already done. The keys ("event-<n>") are formatted by hand: snprintf
 * alone cost more than the store. The memory store runs several rounds
 * (median), and its bytes per entry are measured, not computed: the
 * resident memory grown by a store of 4 M entries, filled, divided by 4 M
 * (the store maps its large arrays itself, so malloc's statistics would
 * miss them), and how much of it is in transparent huge pages.
 *
 *   env: KSAFE_BENCH_RECORDS (records per timed round, 4000000),
 *   KSAFE_BENCH_ROUNDS (5), KSAFE_BENCH_CAPACITY (window of the timed
 *   runs, 1000000), KSAFE_BENCH_JSON=path or --json path
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <ksafe/ksafe.h>

#include "bench_json.h"

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

/* "event-<id>" into key (>= 32 bytes); returns its length. */
static int format_key(char *key, long id)
{
    char digits[24];
    int n = 0, len = 6;

    memcpy(key, "event-", 6);
    do {
        digits[n++] = (char)('0' + id % 10);
        id /= 10;
    } while (id);
    while (n)
        key[len++] = digits[--n];
    key[len] = '\0';
    return len;
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
        int len = format_key(key, id);

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

static long rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long size = 0, rss = 0;

    if (f) {
        if (fscanf(f, "%ld %ld", &size, &rss) != 2)
            rss = 0;
        fclose(f);
    }
    return rss * sysconf(_SC_PAGESIZE);
}

/* AnonHugePages of this process, in bytes (0 where the kernel does not
 * say). */
static double huge_bytes(void)
{
    FILE *f = fopen("/proc/self/smaps_rollup", "r");
    char line[256];
    double kb = 0;

    if (!f)
        return 0;
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "AnonHugePages: %lf kB", &kb) == 1)
            break;
    fclose(f);
    return kb * 1024;
}

/* Bytes per entry of a full store of `entries`, measured two ways. */
static int measure_memory(size_t key_bytes, bench_json *js)
{
    ksafe_dedup_memory_options o = KSAFE_DEDUP_MEMORY_OPTIONS_INIT;
    const long entries = 4000000;
    double huge0 = huge_bytes(), secs, huge_share, rss_per;
    long rss0 = rss_bytes();
    ksafe_dedup_store *s;
    ksafe_error err;
    char name[64];

    o.capacity = (size_t)entries;
    o.key_bytes = key_bytes;
    if (ksafe_dedup_memory_new(&s, &o, &err))
        return die("memory store", &err);
    if (run(s, entries, 0, &secs))
        return 1;
    rss_per = (double)(rss_bytes() - rss0) / (double)entries;
    huge_share = (huge_bytes() - huge0) / ((double)(rss_bytes() - rss0));
    printf("memory store (%s), full with %ld entries: %.1f B/entry "
           "resident, %.0f%% of it in huge pages\n",
           key_bytes ? "16-byte keys kept" : "hashes only", entries,
           rss_per, 100 * huge_share);
    snprintf(name, sizeof(name), "%s_huge_page_share",
             key_bytes ? "keys" : "hashes");
    bench_json_median(js, name, huge_share);
    snprintf(name, sizeof(name), "%s_rss_bytes_per_entry",
             key_bytes ? "keys" : "hashes");
    bench_json_median(js, name, rss_per);
    ksafe_dedup_store_free(s);
    return 0;
}

static size_t capacity = 1000000;
static long records = 4000000; /* per timed round */

static int bench_memory(size_t key_bytes, int rounds, bench_json *js)
{
    ksafe_dedup_memory_options o = KSAFE_DEDUP_MEMORY_OPTIONS_INIT;
    const char *what = key_bytes ? "keys" : "hashes";
    double ops[16], med;
    char name[64];
    int r;

    o.capacity = capacity;
    o.key_bytes = key_bytes;
    for (r = 0; r < rounds; r++) {
        ksafe_dedup_store *s;
        ksafe_dedup_stats st;
        ksafe_error err;
        const long n = records;
        double secs;

        if (ksafe_dedup_memory_new(&s, &o, &err))
            return die("memory store", &err);
        /* 4 M records, half of them redelivered: the window (1 M) evicts
         * as it goes (by default). */
        if (run(s, n, 1, &secs))
            return 1;
        ksafe_dedup_stats_get(s, &st);
        ops[r] = (double)n / secs;
        printf("round %d memory store (capacity %zu, %s): %.0f "
               "check-and-mark ops/s (%ld records, %llu new, %llu "
               "duplicates, %llu evicted)\n",
               r + 1, capacity, key_bytes ? "keys kept" : "hashes only", ops[r], n,
               (unsigned long long)st.claimed,
               (unsigned long long)st.duplicates,
               (unsigned long long)st.evicted);
        bench_json_round(js);
        snprintf(name, sizeof(name), "%s_ops_per_s", what);
        bench_json_round_set(js, name, ops[r]);
        ksafe_dedup_store_free(s);
    }
    med = bench_median(ops, rounds);
    printf("median memory store (%s): %.0f check-and-mark ops/s (target "
           ">= 10 M)\n", key_bytes ? "keys kept" : "hashes only", med);
    snprintf(name, sizeof(name), "%s_ops_per_s", what);
    bench_json_median(js, name, med);
    return 0;
}

static int bench_sqlite(bench_json *js)
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
    if (!rc) {
        printf("sqlite store (WAL, file in %s): %.0f marks/s "
               "(%ld records, one transaction per %d)\n",
               dir, (double)n / secs, n, BATCH);
        bench_json_median(js, "sqlite_marks_per_s", (double)n / secs);
    }
    ksafe_dedup_store_free(s);
    unlink(path);
    snprintf(side, sizeof(side), "%s-wal", path);
    unlink(side);
    snprintf(side, sizeof(side), "%s-shm", path);
    unlink(side);
    rmdir(dir);
    return rc;
}

int main(int argc, char **argv)
{
    const char *env_r = getenv("KSAFE_BENCH_ROUNDS");
    const char *env_c = getenv("KSAFE_BENCH_CAPACITY");
    const char *env_n = getenv("KSAFE_BENCH_RECORDS");
    int rounds = env_r ? atoi(env_r) : 5;
    bench_json *js = bench_json_open("bench-dedup", argc, argv);

    if (env_c)
        capacity = (size_t)atol(env_c);
    if (env_n)
        records = atol(env_n);
    if (rounds < 1 || rounds > 16 || capacity < 2000 || capacity > 100000000 ||
        records < 2000 || records > 1000000000) {
        fprintf(stderr, "KSAFE_BENCH_ROUNDS 1..16, KSAFE_BENCH_CAPACITY "
                        "2000..100000000, KSAFE_BENCH_RECORDS "
                        "2000..1000000000\n");
        return 1;
    }
    bench_json_setting(js, "rounds", rounds);
    bench_json_setting(js, "records_per_round", (double)records);
    bench_json_setting(js, "capacity", (double)capacity);
    bench_json_setting(js, "batch", BATCH);
    if (measure_memory(0, js) || measure_memory(16, js) ||
        bench_memory(0, rounds, js) || bench_memory(16, rounds, js) ||
        bench_sqlite(js))
        return 1;
    return bench_json_close(js) ? 1 : 0;
}
