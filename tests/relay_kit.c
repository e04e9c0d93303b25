/*
 * tests/relay_kit.c - what the relay's real-cluster tests share: cases
 * (topics, input, group), relay workers in child processes, the group's
 * offsets and the output read back. See tests/relay_kit.h.
 */
#include <dirent.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "relay_kit.h"

static char dir[] = "/tmp/ksafe-relay-real-XXXXXX";

int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

void relay_kit_up(void)
{
    test_cluster_up();
    ck_assert_ptr_nonnull(mkdtemp(dir));
}

void relay_kit_down(void)
{
    DIR *d = opendir(dir);
    struct dirent *e;

    while (d && (e = readdir(d))) {
        char path[600];

        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        unlink(path);
    }
    if (d) {
        closedir(d);
        rmdir(dir);
    }
    test_cluster_down();
}

/* ---- a case: input topic with n records, output topic, group ---------- */

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
void case_new(relay_case *k, const char *name, int n, int chunk)
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

/* Workers still running: killed after each test, so that a failed one
 * leaves none behind to relay its topics during the next. */
#define MAX_LIVE 8
static pid_t live[MAX_LIVE];

static void live_add(pid_t pid)
{
    int i;

    for (i = 0; i < MAX_LIVE; i++)
        if (live[i] == 0) {
            live[i] = pid;
            return;
        }
    ck_abort_msg("more than %d relay workers at once", MAX_LIVE);
}

static void live_remove(pid_t pid)
{
    int i;

    for (i = 0; i < MAX_LIVE; i++)
        if (live[i] == pid)
            live[i] = 0;
}

void reap_workers(void)
{
    int i;

    for (i = 0; i < MAX_LIVE; i++)
        if (live[i] > 0) {
            kill(live[i], SIGKILL);
            waitpid(live[i], NULL, 0);
            live[i] = 0;
        }
}

void worker_start(worker *w, const relay_case *k, const char *txn_id,
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
    live_add(w->pid);
}

/* Transform calls the worker made so far (lines of its trace). */
long trace_lines(const worker *w)
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
int worker_poll(worker *w)
{
    int status;
    pid_t got;

    ck_assert_int_gt(w->pid, 0); /* never kill() or wait for pid 0 */
    got = waitpid(w->pid, &status, WNOHANG);
    if (got == 0)
        return -1;
    ck_assert_int_eq(got, w->pid);
    live_remove(w->pid);
    w->pid = 0;
    ck_assert_msg(WIFEXITED(status), "relay worker died (status %d)", status);
    return WEXITSTATUS(status);
}

/* Waits up to timeout_ms for the worker to exit by itself. */
int worker_wait(worker *w, int timeout_ms)
{
    int64_t deadline = now_ms() + timeout_ms;
    int status;

    while ((status = worker_poll(w)) < 0 && now_ms() < deadline)
        sleep_ms(50);
    return status;
}

/* SIGTERM: the relay commits its open transaction, closes and returns. */
int worker_stop(worker *w)
{
    int status;

    ck_assert_int_gt(w->pid, 0);
    ck_assert_int_eq(kill(w->pid, SIGTERM), 0);
    status = worker_wait(w, 60000);
    ck_assert_msg(status >= 0, "relay worker did not stop within 60 s of "
                               "SIGTERM");
    return status;
}

void worker_kill(worker *w)
{
    ck_assert_int_gt(w->pid, 0);
    ck_assert_int_eq(kill(w->pid, SIGKILL), 0);
    ck_assert_int_eq(waitpid(w->pid, NULL, 0), w->pid);
    live_remove(w->pid);
    w->pid = 0;
}

/* Waits until the worker made `lines` transform calls; fails if it exits
 * first or takes longer than timeout_ms. */
void wait_trace(worker *w, long lines, int timeout_ms)
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

void result_read(const worker *w, worker_result *r)
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
void worker_stop_ok(worker *w, worker_result *r)
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

/*
 * Reads every partition of the output topic from the start to its end at
 * `isolation`. With no transaction open (every relay stopped, or replaced
 * by one with its id) the read_committed end is the log end.
 */
void read_output(const relay_case *k, const char *isolation, output *o)
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
void wait_relayed(const relay_case *k, int timeout_ms)
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
void assert_exactly_once(const relay_case *k)
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
