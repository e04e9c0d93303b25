/*
 * tests/relay_fixture.c - the relay suites' shared helpers (relay_fixture.h).
 */
#include <unistd.h>

#include "relay_fixture.h"

void xform_init(xform *x, ksafe_consumer *c, const char *out)
{
    memset(x, 0, sizeof(*x));
    x->c = c;
    x->out = out;
    x->fail_index = -1;
    x->fatal_index = -1;
    x->oversize_index = (size_t)-1;
    x->sleep_index = -1;
}

static int emit_invoice(ksafe_relay_emitter *em, const xform *x,
                        const ksafe_message *m, int i, const char *tag)
{
    char value[64];
    ksafe_record r = KSAFE_RECORD_INIT;
    ksafe_error err;
    static char big[2 * 1024 * 1024];

    snprintf(value, sizeof(value), "inv%s-%d", tag, i);
    r.topic = x->out;
    r.key = ksafe_message_key(m, &r.key_len);
    r.value = value;
    r.value_len = strlen(value);
    if ((size_t)i == x->oversize_index) {
        r.value = big;
        r.value_len = sizeof(big);
    }
    return ksafe_relay_emit(em, &r, &err);
}

ksafe_handler_result transform(const ksafe_message *m,
                               ksafe_relay_emitter *em, ksafe_error *err,
                               void *payload)
{
    xform *x = payload;
    int i = test_value_index(m);
    int calls;

    ck_assert_int_lt(i, N_MAX);
    calls = atomic_fetch_add(&x->calls[i], 1) + 1;
    if (ksafe_message_partition(m) < 2)
        atomic_fetch_add(&x->seen_part[ksafe_message_partition(m)], 1);
    atomic_fetch_add(&x->total_calls, 1);
    if (i == x->fatal_index && !x->fatal_done) {
        x->fatal_done = 1;
        ck_assert_int_eq(
            rd_kafka_test_fatal_error(ksafe_producer_rdkafka(x->fatal_p),
                                      RD_KAFKA_RESP_ERR_PRODUCER_FENCED,
                                      "ksafe test: fenced"),
            RD_KAFKA_RESP_ERR_NO_ERROR);
    }
    if (i == x->sleep_index && calls == 1) {
        struct timespec ts = {x->sleep_ms / 1000,
                              (long)(x->sleep_ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
    if (emit_invoice(em, x, m, i, ""))
        return KSAFE_HANDLER_OK; /* the relay knows the emit failed */
    if (x->emit_twice && emit_invoice(em, x, m, i, "b"))
        return KSAFE_HANDLER_OK;
    if (i == x->fail_index) {
        /* Emitted first, then failed: the abort must hide the emit. */
        if (x->fail_times < 0) {
            snprintf(err->message, sizeof(err->message), "poison %d", i);
            return KSAFE_HANDLER_FAIL;
        }
        if (calls <= x->fail_times) {
            snprintf(err->message, sizeof(err->message), "transient %d", i);
            return KSAFE_HANDLER_RETRY;
        }
    }
    if (atomic_fetch_add(&x->ok[i], 1) == 0 &&
        ++x->distinct_ok == x->stop_at)
        ksafe_consumer_stop(x->c);
    return KSAFE_HANDLER_OK;
}

/* ---- clients and the output ------------------------------------------- */

void new_topic(char *topic, size_t size, const char *prefix, int partitions)
{
    ksafe_error err;

    ksafe_test_unique_name(topic, size, prefix);
    ck_assert_ok(ksafe_test_cluster_create_topic(tc, topic, partitions, &err),
                 err);
}

/* A transactional producer whose transaction timeout fits the test
 * consumers' session. */
ksafe_producer *txn_producer(void)
{
    ksafe_producer_options o;
    ksafe_producer *p;
    ksafe_error err;
    static char ids[16][64];
    static int n;
    char *id = ids[n++ % 16];

    ksafe_test_cluster_producer_options(tc, &o);
    ksafe_test_unique_name(id, sizeof(ids[0]), "relay-txn");
    o.transactional_id = id;
    o.transaction_timeout_ms = test_session_ms(tc);
    o.delivery_timeout_ms = o.transaction_timeout_ms;
    o.log_cb = test_quiet_log;
    ck_assert_ok(ksafe_producer_new(&p, &o, &err), err);
    return p;
}

void relay_options(ksafe_relay_options *o, xform *x, ksafe_relay_stats *st)
{
    ck_assert_int_eq(ksafe_relay_options_init(o, KSAFE_RELAY_OPTIONS_VERSION),
                     0);
    o->transform = transform;
    o->payload = x;
    o->stats = st;
    o->backoff_initial_ms = 20;
    o->backoff_max_ms = 100;
}

void relay_case_new(relay_case *rc, const char *prefix, int partitions,
                    int n)
{
    char out_prefix[48];

    snprintf(out_prefix, sizeof(out_prefix), "%s-out", prefix);
    new_topic(rc->in, sizeof(rc->in), prefix, partitions);
    new_topic(rc->out, sizeof(rc->out), out_prefix, partitions);
    if (n)
        test_produce(tc, rc->in, 0, n);
    ksafe_test_unique_name(rc->group, sizeof(rc->group), "relay");
    rc->c = test_subscribed(tc, rc->in, rc->group);
    rc->p = txn_producer();
}

void relay_case_free(relay_case *rc)
{
    ksafe_producer_free(rc->p);
    ksafe_consumer_free(rc->c);
}

/* Reads every record of `topic` (read_uncommitted: the embedded cluster
 * shows aborted records anyway) into out[]; returns how many. */
int read_all(const char *topic, int partitions, outrec *out, int max)
{
    char errstr[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_topic_partition_list_t *l;
    rd_kafka_t *rk;
    int n = 0, eof = 0, i;
    int64_t deadline = 0;
    struct timespec ts;

    ck_assert_int_eq(rd_kafka_conf_set(conf, "bootstrap.servers",
                                       ksafe_test_cluster_bootstrap(tc),
                                       errstr, sizeof(errstr)),
                     RD_KAFKA_CONF_OK);
    rd_kafka_conf_set(conf, "group.id", "relay-reader", errstr,
                      sizeof(errstr));
    rd_kafka_conf_set(conf, "enable.partition.eof", "true", errstr,
                      sizeof(errstr));
    rd_kafka_conf_set(conf, "isolation.level", "read_uncommitted", errstr,
                      sizeof(errstr));
    rd_kafka_conf_set(conf, "log_level", "0", errstr, sizeof(errstr));
    rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
    ck_assert_ptr_nonnull(rk);
    l = rd_kafka_topic_partition_list_new(partitions);
    for (i = 0; i < partitions; i++)
        rd_kafka_topic_partition_list_add(l, topic, i)->offset =
            RD_KAFKA_OFFSET_BEGINNING;
    ck_assert_int_eq(rd_kafka_assign(rk, l), 0);
    rd_kafka_topic_partition_list_destroy(l);
    clock_gettime(CLOCK_MONOTONIC, &ts);
    deadline = ts.tv_sec + 30;
    while (eof < partitions) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 200);
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ck_assert_msg(ts.tv_sec < deadline, "reading %s: no end after 30 s",
                      topic);
        if (!m)
            continue;
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            eof++;
        } else if (!m->err) {
            outrec *o = &out[n++];
            char v[64];
            const void *hv;
            size_t hl;
            rd_kafka_headers_t *h = NULL;
            ck_assert_int_le(n, max);
            memset(o, 0, sizeof(*o));
            snprintf(v, sizeof(v), "%.*s", (int)m->len,
                     (const char *)m->payload);
            if (sscanf(v, "invb-%d", &o->index) == 1)
                o->tag_b = 1;
            else if (sscanf(v, "inv-%d", &o->index) != 1 &&
                     sscanf(v, "value-%d", &o->index) != 1)
                ck_abort_msg("unexpected output value %s", v);
            o->partition = m->partition;
            o->offset = m->offset;
            snprintf(o->key, sizeof(o->key), "%.*s", (int)m->key_len,
                     (const char *)m->key);
            if (!rd_kafka_message_headers(m, &h) &&
                !rd_kafka_header_get_last(h, "ksafe.origin.offset", &hv,
                                          &hl))
                snprintf(o->origin_offset, sizeof(o->origin_offset), "%.*s",
                         (int)hl, (const char *)hv);
        }
        rd_kafka_message_destroy(m);
    }
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return n;
}

/* Times each index appears in out[0..n) (first records only). */
void count_indexes(const outrec *out, int n, int *counts, int max)
{
    int i;

    memset(counts, 0, sizeof(int) * (size_t)max);
    for (i = 0; i < n; i++)
        if (!out[i].tag_b)
            counts[out[i].index]++;
}

/* The last run of each key - what a redo leaves - is complete and in input
 * order: per key, the indexes of the last occurrences rise. */
void assert_last_runs_in_order(const outrec *out, int n, int total)
{
    int last_pos[N_MAX], i, k;

    for (i = 0; i < total; i++)
        last_pos[i] = -1;
    for (i = 0; i < n; i++)
        if (!out[i].tag_b)
            last_pos[out[i].index] = i;
    for (i = 0; i < total; i++)
        ck_assert_msg(last_pos[i] >= 0, "index %d missing in the output", i);
    for (k = 0; k < 10; k++) {
        int prev = -1;
        for (i = k; i < total; i += 10) {
            /* one partition per key: positions in out[] follow offsets */
            ck_assert_msg(last_pos[i] > prev,
                          "key-%d: index %d was last written before index "
                          "%d",
                          k, i, i - 10);
            prev = last_pos[i];
        }
    }
}

void wait_distinct(xform *x, int n)
{
    struct timespec tick = {0, 20 * 1000000L};
    int i;

    for (i = 0; i < 3000 && x->distinct_ok < n; i++)
        nanosleep(&tick, NULL);
}

ksafe_consumer *eager_member(const char *topic, const char *group)
{
    ksafe_consumer_options o;
    ksafe_consumer *c;
    ksafe_error err;

    ksafe_test_cluster_consumer_options(tc, &o, group);
    o.log_cb = test_quiet_log;
    o.assignment_strategy = KSAFE_ASSIGN_RANGE;
    ck_assert_ok(ksafe_consumer_new(&c, &o, &err), err);
    ck_assert_ok(ksafe_consumer_subscribe(c, &topic, 1, &err), err);
    return c;
}

