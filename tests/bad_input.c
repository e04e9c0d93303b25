/*
 * tests/bad_input.c - the bad_input suite's shared handles and its runner:
 * every public entry point on NULL, empty, oversized and malformed input
 * (docs/bad-input.md is the table of the cases, by name).
 */
#include "bad_input.h"

char long_topic[LONG_TOPIC_LEN + 1];

void make_long_topic(void)
{
    memset(long_topic, 't', LONG_TOPIC_LEN);
    long_topic[LONG_TOPIC_LEN] = '\0';
}

int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

ksafe_producer *offline_producer(const char *transactional_id)
{
    ksafe_producer_options o = KSAFE_PRODUCER_OPTIONS_INIT;
    ksafe_producer *p = NULL;
    ksafe_error err;

    o.bootstrap_servers = "127.0.0.1:1";
    o.transactional_id = transactional_id;
    if (transactional_id)
        o.delivery_timeout_ms = 30000; /* within transaction_timeout_ms */
    o.log_cb = test_quiet_log;
    ck_assert_ok(ksafe_producer_new(&p, &o, &err), err);
    return p;
}

ksafe_consumer *offline_consumer(void)
{
    ksafe_consumer_options o = KSAFE_CONSUMER_OPTIONS_INIT;
    ksafe_consumer *c = NULL;
    ksafe_error err;

    o.bootstrap_servers = "127.0.0.1:1";
    o.group_id = "bad-input";
    o.log_cb = test_quiet_log;
    ck_assert_ok(ksafe_consumer_new(&c, &o, &err), err);
    return c;
}

ksafe_dedup_store *memory_store(void)
{
    ksafe_dedup_memory_options o = KSAFE_DEDUP_MEMORY_OPTIONS_INIT;
    ksafe_dedup_store *s = NULL;
    ksafe_error err;

    o.capacity = 16;
    ck_assert_ok(ksafe_dedup_memory_new(&s, &o, &err), err);
    return s;
}

typedef struct report_ctx {
    message_fn fn;
    void *arg;
    int called;
} report_ctx;

static void on_report(rd_kafka_t *rk, const rd_kafka_message_t *m,
                      void *opaque)
{
    report_ctx *ctx = opaque;

    (void)rk;
    ctx->fn((const ksafe_message *)m, ctx->arg);
    ctx->called = 1;
}

void with_message(const char *value, message_fn fn, void *arg)
{
    char errstr[256];
    report_ctx ctx = {fn, arg, 0};
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_t *rk;
    rd_kafka_resp_err_t rerr;
    int64_t deadline;

    ck_assert_int_eq(rd_kafka_conf_set(conf, "log_level", "0", errstr,
                                       sizeof(errstr)), RD_KAFKA_CONF_OK);
    /* Room for the 10 MB values (librdkafka's default limit is 1 MB). */
    ck_assert_int_eq(rd_kafka_conf_set(conf, "message.max.bytes", "20000000",
                                       errstr, sizeof(errstr)),
                     RD_KAFKA_CONF_OK);
    rd_kafka_conf_set_dr_msg_cb(conf, on_report);
    rd_kafka_conf_set_opaque(conf, &ctx);
    rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    ck_assert_msg(rk != NULL, "rd_kafka_new: %s", errstr);
    rerr = rd_kafka_producev(rk, RD_KAFKA_V_TOPIC("bad-input"),
                             RD_KAFKA_V_PARTITION(3),
                             RD_KAFKA_V_VALUE((void *)value, strlen(value)),
                             RD_KAFKA_V_HEADER("h", "1", 1),
                             RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                             RD_KAFKA_V_END);
    ck_assert_int_eq(rerr, RD_KAFKA_RESP_ERR_NO_ERROR);
    ck_assert_int_eq(rd_kafka_purge(rk, RD_KAFKA_PURGE_F_QUEUE), 0);
    deadline = now_ms() + 10000;
    while (!ctx.called && now_ms() < deadline)
        rd_kafka_poll(rk, 10);
    rd_kafka_destroy(rk);
    ck_assert_msg(ctx.called, "no delivery report within 10 s");
}

static Suite *bad_input_suite(void)
{
    Suite *s = suite_create("bad_input");

    bad_input_client_cases(s);
    bad_input_consumer_cases(s);
    bad_input_dedup_cases(s);
    bad_input_scenario_cases(s);
    return s;
}

KSAFE_TEST_MAIN(bad_input_suite)
