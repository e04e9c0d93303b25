/*
 * tests/bench/bench_loop.c - ksafe_run() against a hand-written librdkafka
 * loop doing the same work, in one run, on one embedded cluster.
 *
 * Both consume the same topic from the start with a new group, with the
 * same librdkafka settings (ksafe's consumer preset) and the same commit
 * policy (async commit every 1000 records or 1 s). The raw loop stores each
 * record's offset with rd_kafka_offset_store() as the librdkafka examples
 * do; ksafe_run keeps the last processed offset per partition itself and
 * hands librdkafka the positions once per commit. Rounds alternate so that
 * machine noise hits both alike; the clock starts at the first record (the
 * group join is not measured) and stops at the last record (closing is
 * not measured either).
 *
 *   meson test -C build --benchmark bench-loop   (or run the binary)
 *   env: KSAFE_BENCH_RECORDS (default 1000000), KSAFE_BENCH_ROUNDS (5),
 *        KSAFE_BENCH_JSON=path or --json path: results as JSON
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <ksafe/ksafe.h>

#include "bench_json.h"

#define PARTITIONS 32
#define VALUE_SIZE 100
#define COMMIT_EVERY 1000
#define COMMIT_MS 1000

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* CPU time of the calling thread: the polling thread's own cost per record,
 * free of the broker's and the scheduler's noise. */
static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(const char *what, const ksafe_error *err)
{
    fprintf(stderr, "%s: %s\n", what, err ? err->message : "failed");
    exit(1);
}

static void produce(const char *bootstrap, const char *topic, long n)
{
    ksafe_producer_options o = KSAFE_PRODUCER_OPTIONS_INIT;
    static const char *const props[] = {"queue.buffering.max.messages",
                                        "1000000", NULL};
    char value[VALUE_SIZE];
    ksafe_producer *p;
    ksafe_error err;
    long i;

    memset(value, 'x', sizeof(value));
    o.bootstrap_servers = bootstrap;
    o.rdkafka_properties = props;
    o.linger_ms = 20;
    if (ksafe_producer_new(&p, &o, &err))
        die("producer", &err);
    for (i = 0; i < n; i++) {
        ksafe_record r = KSAFE_RECORD_INIT;
        r.topic = topic;
        r.partition = (int32_t)(i % PARTITIONS);
        r.value = value;
        r.value_len = sizeof(value);
        if (ksafe_producer_send(p, &r, &err))
            die("send", &err);
    }
    if (ksafe_producer_close(p, &err))
        die("producer close", &err);
    ksafe_producer_free(p);
}

typedef struct result {
    double seconds;
    double cpu_seconds; /* the polling thread's, first to last record */
    long records;
    long commits;
} result;

/* The embedded broker holds an empty fetch for the whole fetch.wait.max.ms:
 * keep it short for every contender so a drained partition costs no stall.
 * A full prefetch queue makes librdkafka 2.0.2 back off fetching for a
 * whole second: a queue large enough for the data set keeps those stalls
 * (the same for every contender) from drowning the per-record costs. */
static const char *const fetch_props[] = {
    "fetch.wait.max.ms", "10", "queued.min.messages", "10000000",
    "queued.max.messages.kbytes", "2000000", NULL};

/* ---- ksafe ------------------------------------------------------------- */

typedef struct count {
    ksafe_consumer *c;
    long n, want;
    double first, last, cpu_first, cpu_last;
} count;

static ksafe_handler_result noop(const ksafe_message *m, ksafe_error *err,
                                 void *payload)
{
    count *k = payload;

    (void)m;
    (void)err;
    if (k->n++ == 0) {
        k->first = now_s();
        k->cpu_first = cpu_s();
    }
    if (k->n == k->want) {
        k->last = now_s();
        k->cpu_last = cpu_s();
        ksafe_consumer_stop(k->c);
    }
    return KSAFE_HANDLER_OK;
}

static result run_ksafe(const char *bootstrap, const char *topic,
                        const char *group, long n)
{
    ksafe_consumer_options co = KSAFE_CONSUMER_OPTIONS_INIT;
    ksafe_loop_options lo = KSAFE_LOOP_OPTIONS_INIT;
    ksafe_loop_stats st;
    ksafe_error err;
    count k = {NULL, 0, n, 0, 0, 0, 0};
    result r;

    co.bootstrap_servers = bootstrap;
    co.group_id = group;
    co.rdkafka_properties = fetch_props;
    if (ksafe_consumer_new(&k.c, &co, &err) ||
        ksafe_consumer_subscribe(k.c, &topic, 1, &err))
        die("consumer", &err);
    lo.handler = noop;
    lo.payload = &k;
    lo.stats = &st;
    lo.commit_every_records = COMMIT_EVERY;
    lo.commit_interval_ms = COMMIT_MS;
    if (ksafe_run(k.c, &lo, &err))
        die("ksafe_run", &err);
    ksafe_consumer_free(k.c);
    r.seconds = k.last - k.first;
    r.cpu_seconds = k.cpu_last - k.cpu_first;
    r.records = k.n;
    r.commits = (long)st.commits;
    return r;
}

/* ---- raw librdkafka ---------------------------------------------------- */

/* Hands the last offset of each partition to librdkafka in one call. */
static void store_batched(rd_kafka_t *rk, const char *topic,
                          const int64_t *next)
{
    rd_kafka_topic_partition_list_t *l =
        rd_kafka_topic_partition_list_new(PARTITIONS);
    int p;

    for (p = 0; p < PARTITIONS; p++)
        if (next[p] >= 0)
            rd_kafka_topic_partition_list_add(l, topic, p)->offset = next[p];
    rd_kafka_offsets_store(rk, l);
    rd_kafka_topic_partition_list_destroy(l);
}

/* per_record: rd_kafka_offset_store() after each record (the librdkafka
 * examples' way); otherwise the loop keeps the last offset per partition
 * and stores them before each commit (what ksafe_run does). */
static result run_raw(const char *bootstrap, const char *topic,
                      const char *group, long n, int per_record)
{
    int64_t next[PARTITIONS];
    static const char *const conf_kv[] = {
        "enable.auto.commit", "false", "enable.auto.offset.store", "false",
        "isolation.level", "read_committed", "enable.partition.eof", "false",
        "partition.assignment.strategy", "cooperative-sticky",
        "auto.offset.reset", "earliest", "fetch.wait.max.ms", "10",
        "queued.min.messages", "10000000", "queued.max.messages.kbytes",
        "2000000", NULL};
    rd_kafka_topic_partition_list_t *sub;
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char errstr[256];
    rd_kafka_t *rk;
    long got = 0, since = 0, commits = 0;
    double first = 0, last = 0, last_commit, cpu_first = 0, cpu_last = 0;
    result r;
    int i;

    rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap, errstr,
                      sizeof(errstr));
    rd_kafka_conf_set(conf, "group.id", group, errstr, sizeof(errstr));
    for (i = 0; conf_kv[i]; i += 2)
        if (rd_kafka_conf_set(conf, conf_kv[i], conf_kv[i + 1], errstr,
                              sizeof(errstr)))
            die(errstr, NULL);
    if (!(rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr))))
        die(errstr, NULL);
    rd_kafka_poll_set_consumer(rk);
    sub = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(sub, topic, RD_KAFKA_PARTITION_UA);
    rd_kafka_subscribe(rk, sub);
    rd_kafka_topic_partition_list_destroy(sub);
    for (i = 0; i < PARTITIONS; i++)
        next[i] = -1;
    last_commit = now_s();
    while (got < n) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
        if (!m)
            continue;
        if (!m->err) {
            if (got++ == 0) {
                first = now_s();
                cpu_first = cpu_s();
            }
            /* the handler would run here */
            if (per_record)
                rd_kafka_offset_store(m->rkt, m->partition, m->offset);
            else
                next[m->partition] = m->offset + 1;
            if (++since >= COMMIT_EVERY ||
                ((since & 63) == 0 && now_s() - last_commit >= COMMIT_MS / 1e3)) {
                if (!per_record)
                    store_batched(rk, topic, next);
                rd_kafka_commit(rk, NULL, 1);
                commits++;
                since = 0;
                last_commit = now_s();
            }
        }
        rd_kafka_message_destroy(m);
    }
    last = now_s();
    cpu_last = cpu_s();
    if (!per_record)
        store_batched(rk, topic, next);
    rd_kafka_commit(rk, NULL, 0);
    commits++;
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    r.seconds = last - first;
    r.cpu_seconds = cpu_last - cpu_first;
    r.records = got;
    r.commits = commits;
    return r;
}

int main(int argc, char **argv)
{
    const char *env_n = getenv("KSAFE_BENCH_RECORDS");
    const char *env_r = getenv("KSAFE_BENCH_ROUNDS");
    long n = env_n ? atol(env_n) : 1000000;
    int rounds = env_r ? atoi(env_r) : 5, i;
    double ks[16], rw[16], rb[16], ratio[16], ratio_b[16];
    double cks[16], crw[16], crb[16];
    double m_ks, m_rw, m_rb, m_ratio, m_ratio_b, m_cks, m_crw, m_crb;
    ksafe_mock_cluster *mc;
    ksafe_error err;
    const char *bootstrap, *topic = "bench";
    bench_json *js = bench_json_open("bench-loop", argc, argv);

    if (rounds < 1 || rounds > 16 || n < 1000)
        die("KSAFE_BENCH_ROUNDS 1..16, KSAFE_BENCH_RECORDS >= 1000", NULL);
    if (ksafe_mock_cluster_new(&mc, 1, &err) ||
        ksafe_mock_cluster_create_topic(mc, topic, PARTITIONS, &err))
        die("embedded cluster", &err);
    bootstrap = ksafe_mock_cluster_bootstrap(mc);
    printf("librdkafka %s, 1 embedded broker, %d partitions, %ld records x "
           "%d B, commit every %d records or %d ms\n",
           ksafe_rdkafka_version(), PARTITIONS, n, VALUE_SIZE, COMMIT_EVERY,
           COMMIT_MS);
    bench_json_setting(js, "records", (double)n);
    bench_json_setting(js, "rounds", rounds);
    bench_json_setting(js, "partitions", PARTITIONS);
    bench_json_setting(js, "value_bytes", VALUE_SIZE);
    bench_json_setting(js, "commit_every_records", COMMIT_EVERY);
    bench_json_setting(js, "commit_interval_ms", COMMIT_MS);
    produce(bootstrap, topic, n);
    printf("raw = rd_kafka_offset_store() per record; raw-batched = last "
           "offset per partition stored before each commit\n");
    printf("polling-thread CPU ns/record: ksafe, raw, raw-batched (the "
           "steadier measure)\n");
    printf("%-6s %12s %12s %14s %8s %14s %14s   %s\n", "round", "ksafe rec/s",
           "raw rec/s", "raw-batched", "ksafe/raw", "ksafe/batched",
           "ksafe commit/s", "cpu ns/rec");
    for (i = 0; i < rounds; i++) {
        char g1[64], g2[64], g3[64];
        result a, b, c;
        snprintf(g1, sizeof(g1), "bench-ksafe-%d", i);
        snprintf(g2, sizeof(g2), "bench-raw-%d", i);
        snprintf(g3, sizeof(g3), "bench-raw-batched-%d", i);
        /* rotate which goes first */
        if (i % 3 == 0) {
            a = run_ksafe(bootstrap, topic, g1, n);
            b = run_raw(bootstrap, topic, g2, n, 1);
            c = run_raw(bootstrap, topic, g3, n, 0);
        } else if (i % 3 == 1) {
            b = run_raw(bootstrap, topic, g2, n, 1);
            c = run_raw(bootstrap, topic, g3, n, 0);
            a = run_ksafe(bootstrap, topic, g1, n);
        } else {
            c = run_raw(bootstrap, topic, g3, n, 0);
            a = run_ksafe(bootstrap, topic, g1, n);
            b = run_raw(bootstrap, topic, g2, n, 1);
        }
        ks[i] = a.records / a.seconds;
        rw[i] = b.records / b.seconds;
        rb[i] = c.records / c.seconds;
        ratio[i] = ks[i] / rw[i];
        ratio_b[i] = ks[i] / rb[i];
        cks[i] = 1e9 * a.cpu_seconds / a.records;
        crw[i] = 1e9 * b.cpu_seconds / b.records;
        crb[i] = 1e9 * c.cpu_seconds / c.records;
        printf("%-6d %12.0f %12.0f %14.0f %8.1f%% %13.1f%% %14.1f   "
               "%4.0f %4.0f %4.0f\n", i + 1, ks[i], rw[i], rb[i],
               100 * ratio[i], 100 * ratio_b[i], a.commits / a.seconds,
               cks[i], crw[i], crb[i]);
        bench_json_round(js);
        bench_json_round_set(js, "ksafe_rec_per_s", ks[i]);
        bench_json_round_set(js, "raw_rec_per_s", rw[i]);
        bench_json_round_set(js, "raw_batched_rec_per_s", rb[i]);
        bench_json_round_set(js, "ratio", ratio[i]);
        bench_json_round_set(js, "ratio_batched", ratio_b[i]);
        bench_json_round_set(js, "ksafe_thread_cpu_ns_per_rec", cks[i]);
        bench_json_round_set(js, "raw_thread_cpu_ns_per_rec", crw[i]);
        bench_json_round_set(js, "raw_batched_thread_cpu_ns_per_rec", crb[i]);
    }
    m_ks = bench_median(ks, rounds);
    m_rw = bench_median(rw, rounds);
    m_rb = bench_median(rb, rounds);
    m_ratio = bench_median(ratio, rounds);
    m_ratio_b = bench_median(ratio_b, rounds);
    m_cks = bench_median(cks, rounds);
    m_crw = bench_median(crw, rounds);
    m_crb = bench_median(crb, rounds);
    printf("median: ksafe %.0f rec/s, raw %.0f, raw-batched %.0f; "
           "ksafe/raw %.1f%% (target >= 97%%), ksafe/raw-batched %.1f%%\n",
           m_ks, m_rw, m_rb,
           100 * m_ratio, 100 * m_ratio_b);
    printf("median polling-thread CPU per record: ksafe %.0f ns, raw %.0f ns, "
           "raw-batched %.0f ns\n",
           m_cks, m_crw, m_crb);
    bench_json_median(js, "ksafe_rec_per_s", m_ks);
    bench_json_median(js, "raw_rec_per_s", m_rw);
    bench_json_median(js, "raw_batched_rec_per_s", m_rb);
    bench_json_median(js, "ratio", m_ratio);
    bench_json_median(js, "ratio_batched", m_ratio_b);
    bench_json_median(js, "ksafe_thread_cpu_ns_per_rec", m_cks);
    bench_json_median(js, "raw_thread_cpu_ns_per_rec", m_crw);
    bench_json_median(js, "raw_batched_thread_cpu_ns_per_rec",
                      m_crb);
    ksafe_mock_cluster_free(mc);
    return bench_json_close(js) ? 1 : 0;
}
