/*
 * tests/test_relay_real.c - the exactly-once guarantees of ksafe_relay_run()
 * that only a real Kafka broker can show, each relay a child process
 * (tests/relay_worker.c, $KSAFE_RELAY_WORKER) that can be killed:
 *
 *   - read_committed output equals the input transformed exactly once, in
 *     input order per key, across transform failures that abort, SIGKILLs
 *     of the relay at random points (seeded, the seed printed), a
 *     rebalance in the middle of transactions, and fencing;
 *   - the group's committed offsets equal the end of the input;
 *   - a second producer with the same transactional_id fences a running
 *     relay: it stops with KSAFE_EFATAL saying a newer instance took over.
 *
 *   test-relay-real                 needs KSAFE_TEST_BOOTSTRAP; without it
 *                                   exits 77 (meson reports SKIP)
 *   test-relay-real --embedded-part the same flows on the embedded cluster
 *                                   with what it can show: every input is
 *                                   transformed at least once (it stores no
 *                                   transactional offsets, hides no aborted
 *                                   records, fences nobody)
 */
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

#define PARTITIONS 4
#define KEYS 10 /* test_produce(): "key-<i % 10>" */
#define MAX_RECORDS 8000

static int embedded_part;
static char dir[] = "/tmp/ksafe-relay-real-XXXXXX";

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void up(void)
{
    test_cluster_up();
    ck_assert_ptr_nonnull(mkdtemp(dir));
}

/* ---- a case: input topic with n records, output topic, group ---------- */

typedef struct relay_case {
    char in[64], out[64], group[64];
    int n;
} relay_case;

/*
 * test_produce()'s records, flushed every `chunk` records: the log then
 * holds small batches, which a consumer with a small
 * max.partition.fetch.bytes (the worker's) receives a few at a time from
 * each partition in turn, so every transaction holds records of every
 * partition.
 */
static void produce_chunked(const char *topic, int from, int to, int chunk)
{
    ksafe_producer_options o;
    ksafe_producer *p;
    ksafe_error err;
    int i;

    ksafe_test_cluster_producer_options(tc, &o);
    o.log_cb = test_quiet_log;
    ck_assert_ok(ksafe_producer_new(&p, &o, &err), err);
    for (i = from; i < to; i++) {
        char key[32], value[32];
        ksafe_record rec = KSAFE_RECORD_INIT;

        snprintf(key, sizeof(key), "key-%d", i % KEYS);
        snprintf(value, sizeof(value), "value-%d", i);
        rec.topic = topic;
        rec.key = key;
        rec.key_len = strlen(key);
        rec.value = value;
        rec.value_len = strlen(value);
        ck_assert_ok(ksafe_producer_send(p, &rec, &err), err);
        if ((i - from + 1) % chunk == 0)
            ck_assert_ok(ksafe_producer_flush(p, 30000, &err), err);
    }
    /* no delivery callback: close says if any record failed */
    ck_assert_ok(ksafe_producer_close(p, &err), err);
    ksafe_producer_free(p);
}

/* New topics and group; `n` input records, flushed every `chunk` (0: in
 * one go). */
static void case_new(relay_case *k, const char *name, int n, int chunk)
{
    ksafe_error err;
    char prefix[48];

    ck_assert_int_le(n, MAX_RECORDS);
    snprintf(prefix, sizeof(prefix), "%s-in", name);
    ksafe_test_unique_name(k->in, sizeof(k->in), prefix);
    snprintf(prefix, sizeof(prefix), "%s-out", name);
    ksafe_test_unique_name(k->out, sizeof(k->out), prefix);
    snprintf(prefix, sizeof(prefix), "%s-g", name);
    ksafe_test_unique_name(k->group, sizeof(k->group), prefix);
    ck_assert_ok(ksafe_test_cluster_create_topic(tc, k->in, PARTITIONS, &err),
                 err);
    ck_assert_ok(
        ksafe_test_cluster_create_topic(tc, k->out, PARTITIONS, &err), err);
    k->n = n;
    if (chunk > 0)
        produce_chunked(k->in, 0, n, chunk);
    else
        test_produce(tc, k->in, 0, n);
}

/* ---- workers ------------------------------------------------------------ */

typedef struct worker {
    pid_t pid;
    char trace[320], result[320];
} worker;

typedef struct worker_result {
    int rc;
    unsigned long long aborts, rebalance_aborts, retries, transactions,
        committed;
    char message[600];
} worker_result;

static void worker_start(worker *w, const relay_case *k, const char *txn_id,
                         int retry_every, int slow_us, int batch_records,
                         int batch_ms)
{
    const char *exe = getenv("KSAFE_RELAY_WORKER");
    char retry[16], slow[16], records[16], ms[16];
    static int started;

    ck_assert_msg(exe && *exe, "KSAFE_RELAY_WORKER is not set");
    memset(w, 0, sizeof(*w));
    started++;
    snprintf(w->trace, sizeof(w->trace), "%s/trace-%d", dir, started);
    snprintf(w->result, sizeof(w->result), "%s/result-%d", dir, started);
    snprintf(retry, sizeof(retry), "%d", retry_every);
    snprintf(slow, sizeof(slow), "%d", slow_us);
    snprintf(records, sizeof(records), "%d", batch_records);
    snprintf(ms, sizeof(ms), "%d", batch_ms);
    fflush(stdout);
    w->pid = fork();
    if (w->pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* no orphans if the test dies */
        execl(exe, exe, ksafe_test_cluster_bootstrap(tc), k->in, k->out,
              k->group, txn_id, w->trace, w->result, retry, slow, records, ms,
              ksafe_test_cluster_is_embedded(tc) ? "1" : "0", (char *)NULL);
        _exit(127);
    }
    ck_assert_int_gt(w->pid, 0);
}

/* Transform calls the worker made so far (lines of its trace). */
static long trace_lines(const worker *w)
{
    FILE *f = fopen(w->trace, "r");
    long lines = 0;
    int ch;

    if (!f)
        return 0;
    while ((ch = getc(f)) != EOF)
        lines += ch == '\n';
    fclose(f);
    return lines;
}

/* The worker's exit status, or -1 while it runs. */
static int worker_poll(worker *w)
{
    int status;
    pid_t got = waitpid(w->pid, &status, WNOHANG);

    if (got == 0)
        return -1;
    ck_assert_int_eq(got, w->pid);
    w->pid = 0;
    ck_assert_msg(WIFEXITED(status), "relay worker died (status %d)", status);
    return WEXITSTATUS(status);
}

/* Waits up to timeout_ms for the worker to exit by itself. */
static int worker_wait(worker *w, int timeout_ms)
{
    int64_t deadline = now_ms() + timeout_ms;
    int status;

    while ((status = worker_poll(w)) < 0 && now_ms() < deadline)
        sleep_ms(50);
    return status;
}

/* SIGTERM: the relay commits its open transaction, closes and returns. */
static int worker_stop(worker *w)
{
    int status;

    ck_assert_int_eq(kill(w->pid, SIGTERM), 0);
    status = worker_wait(w, 60000);
    ck_assert_msg(status >= 0, "relay worker did not stop within 60 s of "
                               "SIGTERM");
    return status;
}

static void worker_kill(worker *w)
{
    ck_assert_int_eq(kill(w->pid, SIGKILL), 0);
    ck_assert_int_eq(waitpid(w->pid, NULL, 0), w->pid);
    w->pid = 0;
}

/* Waits until the worker made `lines` transform calls; fails if it exits
 * first or takes longer than timeout_ms. */
static void wait_trace(worker *w, long lines, int timeout_ms)
{
    int64_t deadline = now_ms() + timeout_ms;

    while (trace_lines(w) < lines) {
        int status = worker_poll(w);
        ck_assert_msg(status < 0, "relay worker exited (%d) after %ld of "
                                  "%ld transform calls (result %s)",
                      status, trace_lines(w), lines, w->result);
        ck_assert_msg(now_ms() < deadline,
                      "relay worker made %ld of %ld transform calls in %d ms",
                      trace_lines(w), lines, timeout_ms);
        sleep_ms(20);
    }
}

static void result_read(const worker *w, worker_result *r)
{
    FILE *f = fopen(w->result, "r");
    char line[600];

    memset(r, 0, sizeof(*r));
    r->rc = 1; /* no "rc" line: not a relay return code */
    ck_assert_msg(f != NULL, "no result from the relay worker (%s)",
                  w->result);
    while (fgets(line, sizeof(line), f)) {
        char name[32];
        unsigned long long v;

        line[strcspn(line, "\n")] = '\0';
        if (strncmp(line, "message ", 8) == 0)
            snprintf(r->message, sizeof(r->message), "%s", line + 8);
        else if (sscanf(line, "rc %d", &r->rc) == 1)
            continue;
        else if (sscanf(line, "%31s %llu", name, &v) == 2) {
            if (!strcmp(name, "aborts"))
                r->aborts = v;
            else if (!strcmp(name, "rebalance_aborts"))
                r->rebalance_aborts = v;
            else if (!strcmp(name, "retries"))
                r->retries = v;
            else if (!strcmp(name, "transactions"))
                r->transactions = v;
            else if (!strcmp(name, "committed"))
                r->committed = v;
        }
    }
    fclose(f);
}

/* Stops the worker and asserts that the relay returned 0. */
static void worker_stop_ok(worker *w, worker_result *r)
{
    int status = worker_stop(w);

    result_read(w, r);
    ck_assert_msg(status == 0 && r->rc == 0,
                  "relay worker exited %d, relay returned %d: %s", status,
                  r->rc, r->message);
    printf("  relay: %llu transactions, %llu input records committed, %llu "
           "aborts (%llu by rebalances), %llu retries\n",
           r->transactions, r->committed, r->aborts, r->rebalance_aborts,
           r->retries);
}

/* ---- offsets ------------------------------------------------------------ */

/* A plain librdkafka consumer (no group work unless asked). */
static rd_kafka_t *plain_consumer(const char *group, const char *isolation)
{
    static const char *const props[] = {
        "enable.partition.eof", "true", "enable.auto.commit", "false",
        "auto.offset.reset", "earliest", "fetch.wait.max.ms", "10", NULL};
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_t *rk;
    char errstr[256];
    int i;

    ck_assert_int_eq(rd_kafka_conf_set(conf, "bootstrap.servers",
                                       ksafe_test_cluster_bootstrap(tc),
                                       errstr, sizeof(errstr)),
                     RD_KAFKA_CONF_OK);
    ck_assert_int_eq(rd_kafka_conf_set(conf, "group.id", group, errstr,
                                       sizeof(errstr)),
                     RD_KAFKA_CONF_OK);
    ck_assert_int_eq(rd_kafka_conf_set(conf, "isolation.level", isolation,
                                       errstr, sizeof(errstr)),
                     RD_KAFKA_CONF_OK);
    for (i = 0; props[i]; i += 2)
        ck_assert_int_eq(rd_kafka_conf_set(conf, props[i], props[i + 1],
                                           errstr, sizeof(errstr)),
                         RD_KAFKA_CONF_OK);
    rd_kafka_conf_set_log_cb(conf, NULL);
    rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
    ck_assert_msg(rk != NULL, "consumer: %s", errstr);
    return rk;
}

/* The end (high watermark) of each input partition: test_produce() writes
 * no transactions, so the end is the offset after the last record. */
static void input_end(const relay_case *k, int64_t *end)
{
    rd_kafka_t *rk = plain_consumer("relay-real-ends", "read_uncommitted");
    int p;

    for (p = 0; p < PARTITIONS; p++) {
        int64_t low, high;
        ck_assert_int_eq(rd_kafka_query_watermark_offsets(rk, k->in, p, &low,
                                                          &high, 10000),
                         0);
        end[p] = high;
    }
    rd_kafka_destroy(rk);
}

/* The group's committed offsets (read_committed: waits for pending
 * transactional offsets). 0, or the librdkafka error; none: -1. */
static int committed(const relay_case *k, int64_t *out)
{
    rd_kafka_t *rk = plain_consumer(k->group, "read_committed");
    rd_kafka_topic_partition_list_t *l =
        rd_kafka_topic_partition_list_new(PARTITIONS);
    rd_kafka_resp_err_t e;
    int p;

    for (p = 0; p < PARTITIONS; p++)
        rd_kafka_topic_partition_list_add(l, k->in, p);
    e = rd_kafka_committed(rk, l, 10000);
    for (p = 0; p < l->cnt; p++)
        out[l->elems[p].partition] =
            e || l->elems[p].err ? -1 : l->elems[p].offset;
    rd_kafka_topic_partition_list_destroy(l);
    rd_kafka_destroy(rk);
    return (int)e;
}

static int at_end(const int64_t *got, const int64_t *end)
{
    int p;

    for (p = 0; p < PARTITIONS; p++)
        if (got[p] != end[p])
            return 0;
    return 1;
}

/* ---- output ------------------------------------------------------------- */

typedef struct output {
    int count[MAX_RECORDS];
    int total;
    char disorder[160]; /* the first record out of input order per key */
} output;

/*
 * Reads every partition of the output topic from the start to its end at
 * `isolation`. With no transaction open (every relay stopped, or replaced
 * by one with its id) the read_committed end is the log end.
 */
static void read_output(const relay_case *k, const char *isolation,
                        output *o)
{
    rd_kafka_topic_partition_list_t *l;
    rd_kafka_t *rk;
    char group[64];
    int64_t deadline = now_ms() + 60000;
    int last[KEYS], p, eof = 0;

    memset(o, 0, sizeof(*o));
    for (p = 0; p < KEYS; p++)
        last[p] = -1;
    ksafe_test_unique_name(group, sizeof(group), "relay-real-read");
    rk = plain_consumer(group, isolation);
    l = rd_kafka_topic_partition_list_new(PARTITIONS);
    for (p = 0; p < PARTITIONS; p++)
        rd_kafka_topic_partition_list_add(l, k->out, p)->offset =
            RD_KAFKA_OFFSET_BEGINNING;
    ck_assert_int_eq(rd_kafka_assign(rk, l), 0);
    rd_kafka_topic_partition_list_destroy(l);
    while (eof < PARTITIONS && now_ms() < deadline) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
        char buf[32];
        int i;

        if (!m)
            continue;
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            eof++;
        } else {
            ck_assert_msg(!m->err, "reader: %s", rd_kafka_message_errstr(m));
            ck_assert_int_lt(m->len, sizeof(buf));
            memcpy(buf, m->payload, m->len);
            buf[m->len] = '\0';
            ck_assert_msg(sscanf(buf, "out-%d", &i) == 1 && i >= 0 &&
                              i < k->n,
                          "not an output of this case: %s", buf);
            o->count[i]++;
            o->total++;
            if (i <= last[i % KEYS] && !o->disorder[0])
                snprintf(o->disorder, sizeof(o->disorder),
                         "out-%d after out-%d (key-%d, partition %d)", i,
                         last[i % KEYS], i % KEYS, (int)m->partition);
            last[i % KEYS] = i;
        }
        rd_kafka_message_destroy(m);
    }
    ck_assert_msg(eof == PARTITIONS,
                  "%s reader reached the end of %d of %d partitions of %s",
                  isolation, eof, PARTITIONS, k->out);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
}

/*
 * Waits until the relays are done with the input: on a real cluster the
 * group's committed offsets are the end of the input; the embedded one
 * stores no transactional offsets, so there every input has output.
 */
static void wait_relayed(const relay_case *k, int timeout_ms)
{
    int64_t end[PARTITIONS], got[PARTITIONS];
    int64_t deadline = now_ms() + timeout_ms;
    output *o;

    if (ksafe_test_cluster_is_embedded(tc)) {
        o = malloc(sizeof(*o));
        ck_assert_ptr_nonnull(o);
        for (;;) {
            int i, missing = 0;
            read_output(k, "read_uncommitted", o);
            for (i = 0; i < k->n; i++)
                missing += o->count[i] == 0;
            if (!missing)
                break;
            ck_assert_msg(now_ms() < deadline,
                          "%d of %d inputs have no output after %d ms",
                          missing, k->n, timeout_ms);
            sleep_ms(500);
        }
        free(o);
        return;
    }
    input_end(k, end);
    for (;;) {
        int e = committed(k, got);
        if (!e && at_end(got, end))
            return;
        ck_assert_msg(now_ms() < deadline,
                      "after %d ms the group's committed offsets are "
                      "%lld %lld %lld %lld (error %d), the input ends at "
                      "%lld %lld %lld %lld",
                      timeout_ms, (long long)got[0], (long long)got[1],
                      (long long)got[2], (long long)got[3], e,
                      (long long)end[0], (long long)end[1],
                      (long long)end[2], (long long)end[3]);
        sleep_ms(500);
    }
}

/*
 * What every case ends with, all relays stopped: the committed offsets
 * are still the end of the input, and a read_committed reader sees each
 * input's output once, per key in input order. On the embedded cluster:
 * each input's output at least once.
 */
static void assert_exactly_once(const relay_case *k)
{
    int64_t end[PARTITIONS], got[PARTITIONS];
    output *o = malloc(sizeof(*o));
    int i;

    ck_assert_ptr_nonnull(o);
    if (ksafe_test_cluster_is_embedded(tc)) {
        read_output(k, "read_uncommitted", o);
        for (i = 0; i < k->n; i++)
            ck_assert_msg(o->count[i] >= 1, "out-%d is missing", i);
        free(o);
        return;
    }
    input_end(k, end);
    ck_assert_int_eq(committed(k, got), 0);
    ck_assert_msg(at_end(got, end),
                  "committed %lld %lld %lld %lld, input end %lld %lld %lld "
                  "%lld",
                  (long long)got[0], (long long)got[1], (long long)got[2],
                  (long long)got[3], (long long)end[0], (long long)end[1],
                  (long long)end[2], (long long)end[3]);
    read_output(k, "read_committed", o);
    for (i = 0; i < k->n; i++)
        ck_assert_msg(o->count[i] == 1,
                      "read_committed: out-%d read %d times, expected once",
                      i, o->count[i]);
    ck_assert_int_eq(o->total, k->n);
    ck_assert_msg(!o->disorder[0], "read_committed: %s", o->disorder);
    free(o);
}

/* ---- tests -------------------------------------------------------------- */

/*
 * Every 50th input fails its first transform call after its output was
 * emitted and put on the broker: each failure aborts a transaction with
 * output in the log, and the batch is done again. read_committed shows each
 * output once; read_uncommitted shows the aborted ones too, which proves
 * they were there to hide.
 */
START_TEST(abort_output_is_hidden_and_redone_once)
{
    relay_case k;
    worker w;
    worker_result r;
    char txn_id[64];
    output *o;

    case_new(&k, "rr-abort", 1000, 0);
    ksafe_test_unique_name(txn_id, sizeof(txn_id), "rr-abort-txn");
    worker_start(&w, &k, txn_id, 50, 0, 100, 100);
    wait_relayed(&k, 180000);
    worker_stop_ok(&w, &r);
    ck_assert_msg(r.retries >= 20 && r.aborts >= 20,
                  "20 inputs failed once: %llu retries, %llu aborts",
                  r.retries, r.aborts);
    assert_exactly_once(&k);
    if (ksafe_test_cluster_is_embedded(tc))
        return;
    o = malloc(sizeof(*o));
    ck_assert_ptr_nonnull(o);
    read_output(&k, "read_uncommitted", o);
    ck_assert_msg(o->total >= k.n + 20,
                  "read_uncommitted sees %d records for %d inputs: the "
                  "aborted output never reached the broker, so its absence "
                  "for read_committed proves nothing",
                  o->total, k.n);
    free(o);
}
END_TEST

/*
 * The relay is SIGKILLed at random points - inside transforms, between
 * them, in commits - and restarted with the same transactional id, which
 * aborts what the killed one left open. The seed is printed: the same seed
 * chooses the same kill points.
 */
START_TEST(sigkill_at_random_points_then_restart)
{
    const char *env = getenv("KSAFE_TEST_SEED");
    unsigned seed = env && *env ? (unsigned)strtoul(env, NULL, 10)
                                : (unsigned)time(NULL) ^ (unsigned)getpid();
    relay_case k;
    worker w;
    worker_result r;
    char txn_id[64];
    int kill_no;

    printf("sigkill_at_random_points_then_restart: seed %u "
           "(KSAFE_TEST_SEED=%u repeats it)\n",
           seed, seed);
    srand(seed);
    case_new(&k, "rr-kill", 3000, 0);
    ksafe_test_unique_name(txn_id, sizeof(txn_id), "rr-kill-txn");
    for (kill_no = 0; kill_no < 4; kill_no++) {
        long calls = 1 + rand() % 600;
        int extra_ms = rand() % 300;

        worker_start(&w, &k, txn_id, 0, 500, 50, 100);
        wait_trace(&w, calls, 180000);
        /* the random part of the point in time: past the N-th transform
         * call, anywhere in the next 300 ms (another transform, a commit) */
        sleep_ms(extra_ms);
        printf("  kill %d: after %ld transform calls + %d ms (%ld made)\n",
               kill_no + 1, calls, extra_ms, trace_lines(&w));
        ck_assert_msg(worker_poll(&w) < 0, "relay worker exited early");
        worker_kill(&w);
    }
    worker_start(&w, &k, txn_id, 0, 0, 50, 100);
    wait_relayed(&k, 240000);
    worker_stop_ok(&w, &r);
    assert_exactly_once(&k);
}
END_TEST

/*
 * A second relay joins the group while the first is in the middle of long
 * transactions (1.5 s, every partition in each: small fetches interleave
 * them): the partitions it takes over had records in the open
 * transaction, which is aborted before they go.
 */
START_TEST(rebalance_mid_transaction_keeps_exactly_once)
{
    relay_case k;
    worker a, b;
    worker_result ra, rb;
    char txn_a[64], txn_b[64];

    case_new(&k, "rr-rebalance", 6000, 20);
    ksafe_test_unique_name(txn_a, sizeof(txn_a), "rr-rebalance-a");
    ksafe_test_unique_name(txn_b, sizeof(txn_b), "rr-rebalance-b");
    worker_start(&a, &k, txn_a, 0, 1000, 100000, 1500);
    wait_trace(&a, 300, 120000);
    worker_start(&b, &k, txn_b, 0, 1000, 100000, 1500);
    wait_trace(&b, 1, 120000); /* b owns partitions now */
    wait_relayed(&k, 240000);
    worker_stop_ok(&a, &ra);
    worker_stop_ok(&b, &rb);
    ck_assert_msg(ra.rebalance_aborts >= 1,
                  "the first relay had no transaction aborted by the "
                  "rebalance (%llu aborts): the case did not test a "
                  "rebalance between produce and commit",
                  ra.aborts);
    assert_exactly_once(&k);
}
END_TEST

/*
 * A producer with the relay's transactional id initialises while the
 * relay runs: the relay is fenced and stops with KSAFE_EFATAL saying a
 * newer instance took over; a new relay with that id finishes the input,
 * and the fenced one's open transaction never shows.
 */
START_TEST(same_transactional_id_fences_the_running_relay)
{
    ksafe_producer_options po;
    ksafe_producer *fencer;
    ksafe_error err;
    relay_case k;
    worker w;
    worker_result r;
    char txn_id[64];
    int status;

    case_new(&k, "rr-fence", 2000, 0);
    ksafe_test_unique_name(txn_id, sizeof(txn_id), "rr-fence-txn");
    worker_start(&w, &k, txn_id, 0, 1000, 100, 100);
    wait_trace(&w, 200, 120000);

    ksafe_test_cluster_producer_options(tc, &po);
    po.log_cb = test_quiet_log;
    po.transactional_id = txn_id;
    po.transaction_timeout_ms = 6000;
    po.delivery_timeout_ms = 6000;
    ck_assert_ok(ksafe_producer_new(&fencer, &po, &err), err);
    ck_assert_ok(ksafe_txn_init(fencer, -1, &err), err);
    ck_assert_ok(ksafe_producer_close(fencer, &err), err);
    ksafe_producer_free(fencer);
    /* Work for it, should it have finished the input meanwhile: a relay
     * learns of the fencing from its next transaction. */
    test_produce(tc, k.in, k.n, k.n + 500);
    k.n += 500;

    status = worker_wait(&w, 60000);
    ck_assert_msg(status >= 0, "the fenced relay still runs 60 s later");
    result_read(&w, &r);
    printf("  fenced relay: exit %d, rc %d: %s\n", status, r.rc, r.message);
    ck_assert_int_eq(r.rc, KSAFE_EFATAL);
    ck_assert_int_eq(status, 3);
    ck_assert_msg(strstr(r.message, "newer instance") != NULL,
                  "the message does not say a newer instance took over: %s",
                  r.message);

    worker_start(&w, &k, txn_id, 0, 0, 100, 100);
    wait_relayed(&k, 180000);
    worker_stop_ok(&w, &r);
    assert_exactly_once(&k);
}
END_TEST

static Suite *relay_real_suite(void)
{
    Suite *s = suite_create("relay-real");
    TCase *t = tcase_create("exactly-once");

    tcase_add_unchecked_fixture(t, up, test_cluster_down);
    tcase_set_timeout(t, 600);
    tcase_add_test(t, abort_output_is_hidden_and_redone_once);
    tcase_add_test(t, sigkill_at_random_points_then_restart);
    tcase_add_test(t, rebalance_mid_transaction_keeps_exactly_once);
    if (!embedded_part) /* the embedded cluster fences nobody */
        tcase_add_test(t, same_transactional_id_fences_the_running_relay);
    suite_add_tcase(s, t);
    return s;
}

int main(int argc, char **argv)
{
    const char *bootstrap = getenv(KSAFE_TEST_BOOTSTRAP_ENV);
    SRunner *sr;
    int failed;

    embedded_part = argc == 2 && strcmp(argv[1], "--embedded-part") == 0;
    if (argc > 1 && !embedded_part) {
        fprintf(stderr, "usage: %s [--embedded-part]\n", argv[0]);
        return 2;
    }
    if (!embedded_part && (!bootstrap || !*bootstrap)) {
        printf("SKIP: %s is not set; the relay's exactly-once guarantees "
               "(read_committed filtering, transactional offsets, fencing) "
               "need a real Kafka broker (KSAFE_TEST_BOOTSTRAP=host:port "
               "meson test relay-real)\n",
               KSAFE_TEST_BOOTSTRAP_ENV);
        return 77;
    }
    if (embedded_part && bootstrap && *bootstrap) {
        printf("SKIP: --embedded-part runs on the embedded cluster; %s is "
               "set (run relay-real there)\n",
               KSAFE_TEST_BOOTSTRAP_ENV);
        return 77;
    }
    sr = srunner_create(relay_real_suite());
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
