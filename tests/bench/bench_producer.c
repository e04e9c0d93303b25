/*
 * tests/bench/bench_producer.c - ksafe_producer_send() against
 * rd_kafka_producev() with identical settings, in one run, on one embedded
 * cluster.
 *
 * Both send N records of 100 B round-robin over 32 partitions with
 * acks=all and idempotence, a delivery callback counting reports, and
 * rd_kafka_poll(rk, 0) after each send (what ksafe_producer_send does
 * inside; the librdkafka examples do it too). The clock runs from the
 * first send to the end of the flush that returns once every record is
 * acknowledged. The settings that shape batching (linger, batch, queue
 * limits, in-flight requests) are read back from both instances, printed,
 * and must be equal. Rounds alternate which contender goes first.
 *
 * CPU per record: of the whole process (librdkafka's threads and the
 * embedded broker included, the same broker for both) and of the sending
 * thread alone (send path plus the reports it serves).
 *
 *   meson test -C build --benchmark bench-producer   (or run the binary)
 *   env: KSAFE_BENCH_RECORDS (default 1000000), KSAFE_BENCH_ROUNDS (5),
 *        KSAFE_BENCH_JSON=path or --json path: results as JSON,
 *        KSAFE_BENCH_ONLY=ksafe|raw runs one contender (for a profiler),
 *        KSAFE_BENCH_OPAQUE=1 gives every record an opaque (both
 *        contenders), which makes ksafe keep a wrapper per record
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <ksafe/ksafe.h>

#include "bench_json.h"

#define PARTITIONS 32
#define VALUE_SIZE 100
#define LINGER_MS "5"
#define QUEUE_MESSAGES "1000000"

/* Applied to both instances; the rest are librdkafka's defaults, read back
 * and compared below. */
static const char *const shared_props[] = {
    "queue.buffering.max.messages", QUEUE_MESSAGES, NULL};

static const char *const compared[] = {
    "acks", "enable.idempotence", "linger.ms", "batch.num.messages",
    "batch.size", "queue.buffering.max.messages",
    "queue.buffering.max.kbytes", "max.in.flight.requests.per.connection",
    "compression.type", "delivery.timeout.ms", "message.max.bytes",
    "sticky.partitioning.linger.ms", "retries", "retry.backoff.ms", NULL};

static double clock_s(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(const char *what, const char *why)
{
    fprintf(stderr, "%s: %s\n", what, why ? why : "failed");
    exit(1);
}

typedef struct result {
    double seconds, cpu_process, cpu_thread;
    long delivered;
} result;

typedef struct stamp {
    double wall, proc, thread;
} stamp;

static stamp now(void)
{
    stamp s = {clock_s(CLOCK_MONOTONIC), clock_s(CLOCK_PROCESS_CPUTIME_ID),
               clock_s(CLOCK_THREAD_CPUTIME_ID)};
    return s;
}

static result finish(stamp a, long delivered)
{
    stamp b = now();
    result r = {b.wall - a.wall, b.proc - a.proc, b.thread - a.thread,
                delivered};
    return r;
}

/* Each compared setting of rk, as "k=v" joined by ", ", into buf. */
static void settings_of(rd_kafka_t *rk, char *buf, size_t size)
{
    const rd_kafka_conf_t *conf = rd_kafka_conf(rk);
    size_t used = 0;
    int i;

    buf[0] = '\0';
    for (i = 0; compared[i]; i++) {
        char v[128];
        size_t vn = sizeof(v);
        if (rd_kafka_conf_get(conf, compared[i], v, &vn) != RD_KAFKA_CONF_OK)
            snprintf(v, sizeof(v), "?");
        used += (size_t)snprintf(buf + used, size - used, "%s%s=%s",
                                 i ? ", " : "", compared[i], v);
        if (used >= size)
            die("settings", "buffer too small");
    }
}

static char ksafe_settings[2048], raw_settings[2048];
static int with_opaque; /* KSAFE_BENCH_OPAQUE */

/* ---- ksafe ------------------------------------------------------------- */

static void on_delivery(const ksafe_delivery *d, void *payload)
{
    long *n = payload;

    if (d->error)
        die("ksafe delivery", d->error->message);
    (*n)++;
}

static result run_ksafe(const char *bootstrap, const char *topic, long n)
{
    ksafe_producer_options o = KSAFE_PRODUCER_OPTIONS_INIT;
    char value[VALUE_SIZE];
    ksafe_producer *p;
    ksafe_error err;
    long i, delivered = 0;
    stamp t0;
    result r;

    memset(value, 'k', sizeof(value));
    o.bootstrap_servers = bootstrap;
    o.rdkafka_properties = shared_props;
    o.linger_ms = atoi(LINGER_MS);
    o.on_delivery = on_delivery;
    o.delivery_payload = &delivered;
    if (ksafe_producer_new(&p, &o, &err))
        die("ksafe producer", err.message);
    settings_of(ksafe_producer_rdkafka(p), ksafe_settings,
                sizeof(ksafe_settings));
    t0 = now();
    for (i = 0; i < n; i++) {
        ksafe_record rec = KSAFE_RECORD_INIT;
        rec.topic = topic;
        rec.partition = (int32_t)(i % PARTITIONS);
        rec.value = value;
        rec.value_len = sizeof(value);
        rec.opaque = with_opaque ? value : NULL;
        if (ksafe_producer_send(p, &rec, &err))
            die("ksafe send", err.message);
    }
    if (ksafe_producer_flush(p, 120000, &err))
        die("ksafe flush", err.message);
    r = finish(t0, delivered);
    if (ksafe_producer_close(p, &err))
        die("ksafe close", err.message);
    ksafe_producer_free(p);
    return r;
}

/* ---- raw librdkafka ---------------------------------------------------- */

static void raw_dr(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    long *n = opaque;

    (void)rk;
    if (m->err)
        die("raw delivery", rd_kafka_err2str(m->err));
    (*n)++;
}

static result run_raw(const char *bootstrap, const char *topic, long n)
{
    static const char *const kv[] = {
        "acks", "all", "enable.idempotence", "true",
        "max.in.flight.requests.per.connection", "5",
        "delivery.timeout.ms", "120000", "linger.ms", LINGER_MS,
        "compression.type", "none", "partitioner", "consistent_random",
        NULL};
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char value[VALUE_SIZE], errstr[256];
    rd_kafka_t *rk;
    long i, delivered = 0;
    stamp t0;
    result r;
    int k;

    memset(value, 'r', sizeof(value));
    for (k = 0; kv[k]; k += 2)
        if (rd_kafka_conf_set(conf, kv[k], kv[k + 1], errstr,
                              sizeof(errstr)))
            die(kv[k], errstr);
    for (k = 0; shared_props[k]; k += 2)
        if (rd_kafka_conf_set(conf, shared_props[k], shared_props[k + 1],
                              errstr, sizeof(errstr)))
            die(shared_props[k], errstr);
    if (rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap, errstr,
                          sizeof(errstr)))
        die("bootstrap.servers", errstr);
    rd_kafka_conf_set_dr_msg_cb(conf, raw_dr);
    rd_kafka_conf_set_opaque(conf, &delivered);
    if (!(rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr))))
        die("rd_kafka_new", errstr);
    settings_of(rk, raw_settings, sizeof(raw_settings));
    t0 = now();
    for (i = 0; i < n; i++) {
        rd_kafka_resp_err_t e;
        while ((e = rd_kafka_producev(
                    rk, RD_KAFKA_V_TOPIC(topic),
                    RD_KAFKA_V_PARTITION((int32_t)(i % PARTITIONS)),
                    RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                    RD_KAFKA_V_VALUE(value, sizeof(value)),
                    RD_KAFKA_V_OPAQUE(with_opaque ? value : NULL),
                    RD_KAFKA_V_END)) == RD_KAFKA_RESP_ERR__QUEUE_FULL)
            rd_kafka_poll(rk, 10); /* what ksafe's BLOCK policy does */
        if (e)
            die("rd_kafka_producev", rd_kafka_err2str(e));
        rd_kafka_poll(rk, 0);
    }
    if (rd_kafka_flush(rk, 120000))
        die("rd_kafka_flush", "timed out");
    r = finish(t0, delivered);
    rd_kafka_destroy(rk);
    return r;
}

int main(int argc, char **argv)
{
    const char *env_n = getenv("KSAFE_BENCH_RECORDS");
    const char *env_r = getenv("KSAFE_BENCH_ROUNDS");
    long n = env_n ? atol(env_n) : 1000000;
    int rounds = env_r ? atoi(env_r) : 5, i;
    double ks[16], rw[16], ratio[16], cpk[16], cpr[16], cpratio[16];
    double ctk[16], ctr[16], ctratio[16];
    bench_json *js = bench_json_open("bench-producer", argc, argv);
    ksafe_mock_cluster *mc;
    ksafe_error err;
    const char *bootstrap, *topic = "bench";

    with_opaque = getenv("KSAFE_BENCH_OPAQUE") &&
                  atoi(getenv("KSAFE_BENCH_OPAQUE"));
    if (rounds < 1 || rounds > 16 || n < 1000 || n > atol(QUEUE_MESSAGES))
        die("KSAFE_BENCH_ROUNDS 1..16, KSAFE_BENCH_RECORDS 1000.."
            QUEUE_MESSAGES, NULL);
    if (ksafe_mock_cluster_new(&mc, 1, &err) ||
        ksafe_mock_cluster_create_topic(mc, topic, PARTITIONS, &err))
        die("embedded cluster", err.message);
    bootstrap = ksafe_mock_cluster_bootstrap(mc);
    printf("librdkafka %s, 1 embedded broker, %d partitions, %ld records x "
           "%d B, acks=all, idempotence, delivery callback, poll(0) per "
           "send, %s\n",
           ksafe_rdkafka_version(), PARTITIONS, n, VALUE_SIZE,
           with_opaque ? "an opaque per record" : "no opaque");
    /* A warm-up round each, which also reads back the settings. */
    run_ksafe(bootstrap, topic, 1000);
    run_raw(bootstrap, topic, 1000);
    if (strcmp(ksafe_settings, raw_settings) != 0) {
        fprintf(stderr, "settings differ:\n ksafe: %s\n raw:   %s\n",
                ksafe_settings, raw_settings);
        return 1;
    }
    printf("settings (both): %s\n", ksafe_settings);
    bench_json_setting(js, "records", (double)n);
    bench_json_setting(js, "rounds", rounds);
    bench_json_setting(js, "partitions", PARTITIONS);
    bench_json_setting(js, "value_bytes", VALUE_SIZE);
    bench_json_setting(js, "opaque_per_record", with_opaque);
    bench_json_setting_str(js, "rdkafka_settings", ksafe_settings);
    printf("CPU ns/record: process (all threads, broker included) and "
           "sending thread\n");
    printf("%-6s %12s %12s %8s %20s %8s %20s %8s\n", "round", "ksafe rec/s",
           "raw rec/s", "ratio", "proc ksafe/raw", "ratio", "thread ksafe/raw",
           "ratio");
    if (getenv("KSAFE_BENCH_ONLY")) {
        int raw = strcmp(getenv("KSAFE_BENCH_ONLY"), "raw") == 0;
        for (i = 0; i < rounds; i++) {
            result a = raw ? run_raw(bootstrap, topic, n)
                           : run_ksafe(bootstrap, topic, n);
            printf("%s: %.0f rec/s, %.0f ns/rec process CPU\n",
                   raw ? "raw" : "ksafe", n / a.seconds,
                   1e9 * a.cpu_process / n);
            bench_json_round(js);
            bench_json_round_set(js, raw ? "raw_rec_per_s" : "ksafe_rec_per_s",
                                 n / a.seconds);
            bench_json_round_set(js,
                                 raw ? "raw_cpu_ns_per_rec"
                                     : "ksafe_cpu_ns_per_rec",
                                 1e9 * a.cpu_process / n);
        }
        bench_json_setting_str(js, "only", raw ? "raw" : "ksafe");
        ksafe_mock_cluster_free(mc);
        return bench_json_close(js) ? 1 : 0;
    }
    for (i = 0; i < rounds; i++) {
        result a, b;
        if (i % 2 == 0) {
            a = run_ksafe(bootstrap, topic, n);
            b = run_raw(bootstrap, topic, n);
        } else {
            b = run_raw(bootstrap, topic, n);
            a = run_ksafe(bootstrap, topic, n);
        }
        if (a.delivered != n || b.delivered != n)
            die("delivery count", "a contender lost reports");
        ks[i] = n / a.seconds;
        rw[i] = n / b.seconds;
        ratio[i] = ks[i] / rw[i];
        cpk[i] = 1e9 * a.cpu_process / n;
        cpr[i] = 1e9 * b.cpu_process / n;
        cpratio[i] = cpk[i] / cpr[i];
        ctk[i] = 1e9 * a.cpu_thread / n;
        ctr[i] = 1e9 * b.cpu_thread / n;
        ctratio[i] = ctk[i] / ctr[i];
        printf("%-6d %12.0f %12.0f %7.1f%% %9.0f %9.0f %7.1f%% %9.0f %9.0f "
               "%7.1f%%\n",
               i + 1, ks[i], rw[i], 100 * ratio[i], cpk[i], cpr[i],
               100 * cpratio[i], ctk[i], ctr[i], 100 * ctratio[i]);
        bench_json_round(js);
        bench_json_round_set(js, "ksafe_rec_per_s", ks[i]);
        bench_json_round_set(js, "raw_rec_per_s", rw[i]);
        bench_json_round_set(js, "ratio", ratio[i]);
        bench_json_round_set(js, "ksafe_cpu_ns_per_rec", cpk[i]);
        bench_json_round_set(js, "raw_cpu_ns_per_rec", cpr[i]);
        bench_json_round_set(js, "cpu_ratio", cpratio[i]);
        bench_json_round_set(js, "ksafe_thread_cpu_ns_per_rec", ctk[i]);
        bench_json_round_set(js, "raw_thread_cpu_ns_per_rec", ctr[i]);
        bench_json_round_set(js, "thread_cpu_ratio", ctratio[i]);
    }
    {
        double m[9] = {bench_median(ks, rounds),     bench_median(rw, rounds),
                       bench_median(ratio, rounds),  bench_median(cpk, rounds),
                       bench_median(cpr, rounds),    bench_median(cpratio, rounds),
                       bench_median(ctk, rounds),    bench_median(ctr, rounds),
                       bench_median(ctratio, rounds)};
        static const char *const names[9] = {
            "ksafe_rec_per_s", "raw_rec_per_s", "ratio",
            "ksafe_cpu_ns_per_rec", "raw_cpu_ns_per_rec", "cpu_ratio",
            "ksafe_thread_cpu_ns_per_rec", "raw_thread_cpu_ns_per_rec",
            "thread_cpu_ratio"};
        int k;

        printf("median: ksafe %.0f rec/s, raw %.0f; ksafe/raw %.1f%% "
               "(target >= 98%%)\n", m[0], m[1], 100 * m[2]);
        printf("median CPU per record: process ksafe %.0f ns, raw %.0f ns "
               "(%.1f%%, target <= 105%%); sending thread ksafe %.0f ns, "
               "raw %.0f ns (%.1f%%)\n",
               m[3], m[4], 100 * m[5], m[6], m[7], 100 * m[8]);
        for (k = 0; k < 9; k++)
            bench_json_median(js, names[k], m[k]);
    }
    ksafe_mock_cluster_free(mc);
    return bench_json_close(js) ? 1 : 0;
}
