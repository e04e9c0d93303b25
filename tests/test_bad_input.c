/*
 * tests/test_bad_input.c - every public entry point on NULL, empty,
 * oversized and malformed input: a negative KSAFE_E* code and a message
 * that names the bad argument, never a crash, never a silent default.
 * docs/bad-input.md is the table of these cases, by test name.
 *
 * No cluster: bad input is refused before any broker is contacted, so the
 * handles point at 127.0.0.1:1, where nothing listens.
 */
#include <errno.h>
#include <stdint.h>
#include <unistd.h>

#include "testutil.h"

/* Kafka refuses topic names longer than 249 characters. */
#define LONG_TOPIC_LEN 300

/*
 * Runs `call` (which passes `E` as its ksafe_error *) twice: with an error
 * struct filled with junk, which must come back with `want` and a message
 * containing `word`, then with E = NULL, which must give the same code.
 */
#define BAD(want, word, call)                                                \
    do {                                                                     \
        ksafe_error e_;                                                      \
        int rc_;                                                             \
        memset(&e_, 0x5a, sizeof(e_));                                       \
        e_.message[0] = '\0';                                                \
        {                                                                    \
            ksafe_error *E = &e_;                                            \
            rc_ = (call);                                                    \
        }                                                                    \
        ck_assert_msg(rc_ == (want), "%s returned %d (%s), want %d", #call,  \
                      rc_, rc_ ? e_.message : "", (int)(want));              \
        ck_assert_msg(e_.code == rc_, "%s: err.code %d, returned %d", #call, \
                      e_.code, rc_);                                         \
        ck_assert_msg(e_.message[0] && strstr(e_.message, (word)),           \
                      "%s: message \"%s\" does not name \"%s\"", #call,      \
                      e_.message, (word));                                   \
        {                                                                    \
            ksafe_error *E = NULL;                                           \
            rc_ = (call);                                                    \
        }                                                                    \
        ck_assert_msg(rc_ == (want), "%s with err NULL returned %d", #call,  \
                      rc_);                                                  \
    } while (0)

static char long_topic[LONG_TOPIC_LEN + 1];

static void make_long_topic(void)
{
    memset(long_topic, 't', LONG_TOPIC_LEN);
    long_topic[LONG_TOPIC_LEN] = '\0';
}

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static ksafe_producer *offline_producer(const char *transactional_id)
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

static ksafe_consumer *offline_consumer(void)
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

static ksafe_dedup_store *memory_store(void)
{
    ksafe_dedup_memory_options o = KSAFE_DEDUP_MEMORY_OPTIONS_INIT;
    ksafe_dedup_store *s = NULL;
    ksafe_error err;

    o.capacity = 16;
    ck_assert_ok(ksafe_dedup_memory_new(&s, &o, &err), err);
    return s;
}

/*
 * A real librdkafka message without a broker: produced to a producer that
 * has none, purged at once, and handed to `fn` from its delivery report,
 * where it is the message a consumer would see (topic "bad-input",
 * partition 3, `value`, one header "h" = "1").
 */
typedef void (*message_fn)(const ksafe_message *msg, void *arg);

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

static void with_message(const char *value, message_fn fn, void *arg)
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

/* ---- error, version ---------------------------------------------------- */

START_TEST(error_helpers_take_anything)
{
    ck_assert_ptr_nonnull(ksafe_strerror(0));
    ck_assert_ptr_nonnull(ksafe_strerror(-12345));
    ck_assert_ptr_nonnull(ksafe_strerror(12345));
    ck_assert_str_ne(ksafe_strerror(-12345), "");
    ksafe_error_clear(NULL);
    ck_assert_ptr_nonnull(ksafe_version());
    ck_assert_ptr_nonnull(ksafe_rdkafka_version());
}
END_TEST

/* ---- options ----------------------------------------------------------- */

START_TEST(options_init_refuses_null_and_unknown_version)
{
    ksafe_producer_options po;
    ksafe_consumer_options co;
    ksafe_loop_options lo;
    ksafe_dedup_memory_options mo;
    ksafe_dedup_sqlite_options so;
    ksafe_dedup_pg_options go;

    /* No error struct to fill: the code is the whole answer. */
    ck_assert_int_eq(ksafe_producer_options_init(NULL, 1), KSAFE_EINVAL);
    ck_assert_int_eq(ksafe_producer_options_init(&po, 99), KSAFE_EVERSION);
    ck_assert_int_eq(ksafe_consumer_options_init(NULL, 1), KSAFE_EINVAL);
    ck_assert_int_eq(ksafe_consumer_options_init(&co, 99), KSAFE_EVERSION);
    ck_assert_int_eq(ksafe_loop_options_init(NULL, 1), KSAFE_EINVAL);
    ck_assert_int_eq(ksafe_loop_options_init(&lo, 99), KSAFE_EVERSION);
    ck_assert_int_eq(ksafe_dedup_memory_options_init(NULL, 1), KSAFE_EINVAL);
    ck_assert_int_eq(ksafe_dedup_memory_options_init(&mo, 99),
                     KSAFE_EVERSION);
    ck_assert_int_eq(ksafe_dedup_sqlite_options_init(NULL, 1), KSAFE_EINVAL);
    ck_assert_int_eq(ksafe_dedup_sqlite_options_init(&so, 99),
                     KSAFE_EVERSION);
    ck_assert_int_eq(ksafe_dedup_pg_options_init(NULL, 1), KSAFE_EINVAL);
    ck_assert_int_eq(ksafe_dedup_pg_options_init(&go, 99), KSAFE_EVERSION);
}
END_TEST

START_TEST(options_unknown_version_is_refused)
{
    ksafe_producer_options po = KSAFE_PRODUCER_OPTIONS_INIT;
    ksafe_consumer_options co = KSAFE_CONSUMER_OPTIONS_INIT;
    ksafe_producer *p = NULL;
    ksafe_consumer *c = NULL;

    po.version = 99;
    po.bootstrap_servers = "127.0.0.1:1";
    co.version = 99;
    co.bootstrap_servers = "127.0.0.1:1";
    co.group_id = "g";
    BAD(KSAFE_EVERSION, "version", ksafe_producer_options_validate(&po, E));
    BAD(KSAFE_EVERSION, "version", ksafe_producer_new(&p, &po, E));
    ck_assert_ptr_null(p);
    BAD(KSAFE_EVERSION, "version", ksafe_consumer_options_validate(&co, E));
    BAD(KSAFE_EVERSION, "version", ksafe_consumer_new(&c, &co, E));
    ck_assert_ptr_null(c);
}
END_TEST

START_TEST(options_null_and_missing_fields_are_refused)
{
    ksafe_producer_options po = KSAFE_PRODUCER_OPTIONS_INIT;
    ksafe_consumer_options co = KSAFE_CONSUMER_OPTIONS_INIT;
    ksafe_producer *p = NULL;
    ksafe_consumer *c = NULL;

    BAD(KSAFE_EINVAL, "out", ksafe_producer_new(NULL, &po, E));
    BAD(KSAFE_EINVAL, "out", ksafe_consumer_new(NULL, &co, E));
    /* NULL options mean the preset, which has no bootstrap servers. */
    BAD(KSAFE_EINVAL, "bootstrap_servers", ksafe_producer_new(&p, NULL, E));
    BAD(KSAFE_EINVAL, "bootstrap_servers", ksafe_consumer_new(&c, NULL, E));
    BAD(KSAFE_EINVAL, "bootstrap_servers",
        ksafe_producer_options_validate(&po, E));
    po.bootstrap_servers = "";
    BAD(KSAFE_EINVAL, "bootstrap_servers",
        ksafe_producer_options_validate(&po, E));
    co.bootstrap_servers = "127.0.0.1:1";
    BAD(KSAFE_EINVAL, "group_id", ksafe_consumer_options_validate(&co, E));
    co.group_id = "";
    BAD(KSAFE_EINVAL, "group_id", ksafe_consumer_options_validate(&co, E));
    BAD(KSAFE_EINVAL, "options", ksafe_producer_options_validate(NULL, E));
    BAD(KSAFE_EINVAL, "options", ksafe_consumer_options_validate(NULL, E));
}
END_TEST

START_TEST(options_malformed_values_are_refused)
{
    static const char *const no_value[] = {"linger.ms", NULL};
    static const char *const unknown[] = {"no.such.property", "1", NULL};
    static const char *const empty_key[] = {"", "1", NULL};
    ksafe_producer_options po = KSAFE_PRODUCER_OPTIONS_INIT;

    po.bootstrap_servers = "127.0.0.1:1";
    po.max_in_flight = 0;
    BAD(KSAFE_EINVAL, "max_in_flight",
        ksafe_producer_options_validate(&po, E));
    po.max_in_flight = 5;
    po.compression = (ksafe_compression)42;
    BAD(KSAFE_EINVAL, "compression", ksafe_producer_options_validate(&po, E));
    po.compression = KSAFE_COMPRESSION_NONE;
    po.rdkafka_properties = no_value;
    BAD(KSAFE_EINVAL, "linger.ms", ksafe_producer_options_validate(&po, E));
    po.rdkafka_properties = unknown;
    BAD(KSAFE_EINVAL, "no.such.property",
        ksafe_producer_options_validate(&po, E));
    po.rdkafka_properties = empty_key;
    BAD(KSAFE_EINVAL, "empty key", ksafe_producer_options_validate(&po, E));
    po.rdkafka_properties = NULL;
    /* Empty where NULL means "the default": said, not guessed. */
    po.client_id = "";
    BAD(KSAFE_EINVAL, "client_id", ksafe_producer_options_validate(&po, E));
    po.client_id = NULL;
    po.transactional_id = "";
    BAD(KSAFE_EINVAL, "transactional_id",
        ksafe_producer_options_validate(&po, E));
    po.transactional_id = NULL;
    /* A list that names no broker: the client would never connect. */
    po.bootstrap_servers = " , ";
    BAD(KSAFE_EINVAL, "bootstrap_servers",
        ksafe_producer_options_validate(&po, E));
}
END_TEST

/* ---- config ------------------------------------------------------------ */

START_TEST(config_null_empty_and_malformed)
{
    ksafe_config *cfg = (ksafe_config *)1;
    ksafe_producer_options po;
    ksafe_consumer_options co;

    BAD(KSAFE_EINVAL, "out", ksafe_config_load_string(NULL, "{}", E));
    BAD(KSAFE_EINVAL, "json", ksafe_config_load_string(&cfg, NULL, E));
    ck_assert_ptr_null(cfg);
    BAD(KSAFE_EJSON, "line", ksafe_config_load_string(&cfg, "", E));
    BAD(KSAFE_EJSON, "line", ksafe_config_load_string(&cfg, "{\"a\":", E));
    BAD(KSAFE_EJSON, "an object", ksafe_config_load_string(&cfg, "[]", E));
    BAD(KSAFE_EJSON, "$.no_such_key",
        ksafe_config_load_string(&cfg, "{\"no_such_key\": 1}", E));
    ck_assert_ptr_null(cfg);
    BAD(KSAFE_EINVAL, "path", ksafe_config_load_file(&cfg, NULL, E));
    BAD(KSAFE_EIO, "/nonexistent/ksafe.json",
        ksafe_config_load_file(&cfg, "/nonexistent/ksafe.json", E));
    BAD(KSAFE_EIO, "/", ksafe_config_load_file(&cfg, "/", E));
    BAD(KSAFE_EINVAL, "cfg", ksafe_config_producer_options(NULL, &po, E));
    BAD(KSAFE_EINVAL, "cfg", ksafe_config_consumer_options(NULL, &co, E));
    ck_assert_ok(ksafe_config_load_string(&cfg, "{}", NULL),
                 (ksafe_error){0});
    BAD(KSAFE_EINVAL, "opts", ksafe_config_producer_options(cfg, NULL, E));
    BAD(KSAFE_EINVAL, "opts", ksafe_config_consumer_options(cfg, NULL, E));
    /* An empty document is valid but lacks what the options need. */
    BAD(KSAFE_EINVAL, "bootstrap_servers",
        ksafe_config_producer_options(cfg, &po, E));
    ksafe_config_free(cfg);
    ksafe_config_free(NULL);
}
END_TEST

#define TEN_MB (10u * 1024 * 1024)

/*
 * The loader has no size limit (a document is read whole and parsed by
 * jansson), so a 10 MB document loads if it is valid and is refused with
 * its position if not, in bounded time either way.
 */
START_TEST(config_of_ten_megabytes)
{
    static const char head[] = "{\"bootstrap_servers\": \"127.0.0.1:1\",";
    static const char tail[] = "\"client_id\": \"big\"}";
    char *text = malloc(TEN_MB + 1), path[] = "/tmp/ksafe-bad-input-XXXXXX";
    ksafe_producer_options po;
    ksafe_config *cfg = NULL;
    ksafe_error err;
    int64_t t0;
    size_t i;
    FILE *f;
    int fd;

    ck_assert_ptr_nonnull(text);
    /* Valid: 10 MB of whitespace between two keys. */
    memset(text, ' ', TEN_MB);
    memcpy(text, head, strlen(head));
    memcpy(text + TEN_MB - strlen(tail), tail, strlen(tail));
    text[TEN_MB] = '\0';
    t0 = now_ms();
    ck_assert_ok(ksafe_config_load_string(&cfg, text, &err), err);
    ck_assert_ok(ksafe_config_producer_options(cfg, &po, &err), err);
    ck_assert_str_eq(po.client_id, "big");
    ksafe_config_free(cfg);
    ck_assert_int_lt(now_ms() - t0, 20000);

    /* Malformed: 10 MB of '[' (nesting far past the parser's limit). */
    memset(text, '[', TEN_MB);
    t0 = now_ms();
    BAD(KSAFE_EJSON, "line", ksafe_config_load_string(&cfg, text, E));
    ck_assert_ptr_null(cfg);
    ck_assert_int_lt(now_ms() - t0, 20000);

    /* Malformed at the end of a 10 MB file: the message has the name and
     * the position. */
    memset(text, ' ', TEN_MB);
    memcpy(text, "{}", 2);
    for (i = TEN_MB - 100; i < TEN_MB; i++)
        text[i] = 'x';
    ck_assert_int_ge(fd = mkstemp(path), 0);
    ck_assert_ptr_nonnull(f = fdopen(fd, "wb"));
    ck_assert_uint_eq(fwrite(text, 1, TEN_MB, f), TEN_MB);
    ck_assert_int_eq(fclose(f), 0);
    t0 = now_ms();
    BAD(KSAFE_EJSON, path, ksafe_config_load_file(&cfg, path, E));
    BAD(KSAFE_EJSON, "line", ksafe_config_load_file(&cfg, path, E));
    ck_assert_ptr_null(cfg);
    ck_assert_int_lt(now_ms() - t0, 20000);
    unlink(path);
    free(text);
}
END_TEST

/* ---- producer ---------------------------------------------------------- */

START_TEST(producer_null_handle)
{
    ksafe_record r = KSAFE_RECORD_INIT;
    ksafe_producer_stats st = KSAFE_PRODUCER_STATS_INIT;

    r.topic = "t";
    BAD(KSAFE_EINVAL, "producer", ksafe_producer_send(NULL, &r, E));
    BAD(KSAFE_EINVAL, "producer",
        ksafe_producer_send_sync(NULL, &r, 100, NULL, E));
    BAD(KSAFE_EINVAL, "producer", ksafe_producer_flush(NULL, 0, E));
    BAD(KSAFE_EINVAL, "producer", ksafe_producer_close(NULL, E));
    BAD(KSAFE_EINVAL, "producer", ksafe_producer_close_timeout(NULL, 0, E));
    BAD(KSAFE_EINVAL, "producer",
        ksafe_producer_recover(NULL, KSAFE_RECOVER_RESEND, NULL, NULL, NULL,
                               E));
    BAD(KSAFE_EINVAL, "producer", ksafe_producer_get_stats(NULL, &st, E));
    ck_assert_int_eq(ksafe_producer_poll(NULL, 0), 0);
    ck_assert_ptr_null(ksafe_producer_rdkafka(NULL));
    ksafe_producer_free(NULL);
}
END_TEST

START_TEST(producer_bad_records)
{
    ksafe_producer *p = offline_producer(NULL);
    ksafe_header h[2] = {{"id", "1", 1}, {NULL, "2", 1}};
    ksafe_record r = KSAFE_RECORD_INIT;
    ksafe_record_metadata meta;

    BAD(KSAFE_EINVAL, "record", ksafe_producer_send(p, NULL, E));
    BAD(KSAFE_EINVAL, "record",
        ksafe_producer_send_sync(p, NULL, 100, &meta, E));
    BAD(KSAFE_EINVAL, "record.topic", ksafe_producer_send(p, &r, E));
    r.topic = "";
    BAD(KSAFE_EINVAL, "record.topic", ksafe_producer_send(p, &r, E));
    r.topic = "t";
    r.partition = -2;
    BAD(KSAFE_EINVAL, "record.partition", ksafe_producer_send(p, &r, E));
    r.partition = KSAFE_PARTITION_ANY;
    r.header_count = 2;
    BAD(KSAFE_EINVAL, "record.header_count", ksafe_producer_send(p, &r, E));
    r.headers = h;
    BAD(KSAFE_EINVAL, "record.headers[1].name",
        ksafe_producer_send(p, &r, E));
    r.header_count = 0;
    r.key_len = 4;
    BAD(KSAFE_EINVAL, "record.key_len", ksafe_producer_send(p, &r, E));
    r.key_len = 0;
    r.value_len = 4;
    BAD(KSAFE_EINVAL, "record.value_len", ksafe_producer_send(p, &r, E));
    r.value_len = 0;
    r.timestamp_ms = -1;
    BAD(KSAFE_EINVAL, "record.timestamp_ms", ksafe_producer_send(p, &r, E));
    ksafe_producer_free(p);
}
END_TEST

START_TEST(producer_topic_of_300_characters)
{
    ksafe_producer *p = offline_producer(NULL);
    ksafe_record r = KSAFE_RECORD_INIT;

    make_long_topic();
    r.topic = long_topic;
    r.value = "v";
    r.value_len = 1;
    /* Kafka's limit is 249: the record could never be delivered. */
    BAD(KSAFE_EINVAL, "249", ksafe_producer_send(p, &r, E));
    BAD(KSAFE_EINVAL, "record.topic",
        ksafe_producer_send_sync(p, &r, 100, NULL, E));
    ksafe_producer_free(p);
}
END_TEST

/* Kafka's topic names are [a-zA-Z0-9._-], and neither "." nor "..". */
START_TEST(producer_topic_with_illegal_characters)
{
    ksafe_producer *p = offline_producer(NULL);
    ksafe_record r = KSAFE_RECORD_INIT;

    r.topic = "orders/eu";
    BAD(KSAFE_EINVAL, "[a-zA-Z0-9._-]", ksafe_producer_send(p, &r, E));
    BAD(KSAFE_EINVAL, "orders/eu", ksafe_producer_send(p, &r, E));
    r.topic = "my topic";
    BAD(KSAFE_EINVAL, "record.topic", ksafe_producer_send(p, &r, E));
    r.topic = "..";
    BAD(KSAFE_EINVAL, "record.topic", ksafe_producer_send(p, &r, E));
    ksafe_producer_free(p);
}
END_TEST

START_TEST(producer_bad_arguments)
{
    ksafe_producer *p = offline_producer(NULL);
    ksafe_producer_stats st = KSAFE_PRODUCER_STATS_INIT;

    BAD(KSAFE_EINVAL, "out", ksafe_producer_get_stats(p, NULL, E));
    st.version = 99;
    BAD(KSAFE_EVERSION, "version", ksafe_producer_get_stats(p, &st, E));
    BAD(KSAFE_EINVAL, "mode",
        ksafe_producer_recover(p, (ksafe_recover_mode)9, NULL, NULL, NULL,
                               E));
    BAD(KSAFE_EINVAL, "on_handback",
        ksafe_producer_recover(p, KSAFE_RECOVER_HAND_BACK, NULL, NULL, NULL,
                               E));
    BAD(KSAFE_ESTATE, "fatal",
        ksafe_producer_recover(p, KSAFE_RECOVER_RESEND, NULL, NULL, NULL,
                               E));
    BAD(KSAFE_EINVAL, "timeout", ksafe_producer_close_timeout(p, -1, E));
    ksafe_producer_free(p);
}
END_TEST

/* ---- transactions ------------------------------------------------------ */

START_TEST(txn_bad_arguments)
{
    ksafe_producer *plain = offline_producer(NULL);
    ksafe_producer *tx = offline_producer("bad-input-txn");
    rd_kafka_topic_partition_list_t *offsets =
        rd_kafka_topic_partition_list_new(1);
    rd_kafka_consumer_group_metadata_t *group =
        rd_kafka_consumer_group_metadata_new("g");

    BAD(KSAFE_EINVAL, "producer", ksafe_txn_init(NULL, 0, E));
    BAD(KSAFE_EINVAL, "producer", ksafe_txn_begin(NULL, E));
    BAD(KSAFE_EINVAL, "producer",
        ksafe_txn_send_offsets(NULL, offsets, group, 0, E));
    BAD(KSAFE_EINVAL, "producer", ksafe_txn_commit(NULL, 0, E));
    BAD(KSAFE_EINVAL, "producer", ksafe_txn_abort(NULL, 0, E));
    BAD(KSAFE_ESTATE, "transactional_id", ksafe_txn_begin(plain, E));
    BAD(KSAFE_ESTATE, "transactional_id", ksafe_txn_init(plain, 0, E));
    BAD(KSAFE_EINVAL, "offsets",
        ksafe_txn_send_offsets(tx, NULL, group, 0, E));
    BAD(KSAFE_EINVAL, "offsets",
        ksafe_txn_send_offsets(tx, offsets, NULL, 0, E));
    BAD(KSAFE_ESTATE, "no transaction", ksafe_txn_commit(tx, 0, E));
    BAD(KSAFE_ESTATE, "no transaction", ksafe_txn_abort(tx, 0, E));
    rd_kafka_consumer_group_metadata_destroy(group);
    rd_kafka_topic_partition_list_destroy(offsets);
    ksafe_producer_free(tx);
    ksafe_producer_free(plain);
}
END_TEST

/* ---- consumer ---------------------------------------------------------- */

START_TEST(consumer_null_handle)
{
    static const char *const topics[] = {"t"};
    ksafe_commit_policy pol = KSAFE_COMMIT_POLICY_INIT;
    ksafe_message *m = (ksafe_message *)1;

    BAD(KSAFE_EINVAL, "consumer",
        ksafe_consumer_subscribe(NULL, topics, 1, E));
    BAD(KSAFE_EINVAL, "consumer", ksafe_consumer_poll(NULL, 0, &m, E));
    ck_assert_ptr_null(m);
    BAD(KSAFE_EINVAL, "consumer",
        ksafe_consumer_done(NULL, (const ksafe_message *)topics, E));
    BAD(KSAFE_EINVAL, "consumer",
        ksafe_consumer_commit(NULL, KSAFE_COMMIT_SYNC, E));
    BAD(KSAFE_EINVAL, "consumer", ksafe_consumer_commit_maybe(NULL, E));
    BAD(KSAFE_EINVAL, "consumer",
        ksafe_consumer_set_commit_policy(NULL, &pol, E));
    BAD(KSAFE_EINVAL, "consumer", ksafe_consumer_seek(NULL, "t", 0, 0, E));
    BAD(KSAFE_EINVAL, "consumer", ksafe_consumer_close(NULL, E));
    ksafe_consumer_stop(NULL);
    ck_assert_int_eq(ksafe_consumer_stop_requested(NULL), 0);
    ck_assert_ptr_null(ksafe_consumer_rdkafka(NULL));
    ksafe_consumer_free(NULL);
}
END_TEST

START_TEST(consumer_bad_arguments)
{
    static const char *const with_null[] = {"t", NULL};
    static const char *const with_empty[] = {"t", ""};
    ksafe_consumer *c = offline_consumer();
    ksafe_commit_policy pol = KSAFE_COMMIT_POLICY_INIT;

    BAD(KSAFE_EINVAL, "topic", ksafe_consumer_subscribe(c, NULL, 1, E));
    BAD(KSAFE_EINVAL, "topic", ksafe_consumer_subscribe(c, with_null, 0, E));
    BAD(KSAFE_EINVAL, "topics[1]",
        ksafe_consumer_subscribe(c, with_null, 2, E));
    BAD(KSAFE_EINVAL, "topics[1]",
        ksafe_consumer_subscribe(c, with_empty, 2, E));
    BAD(KSAFE_EINVAL, "out", ksafe_consumer_poll(c, 0, NULL, E));
    BAD(KSAFE_EINVAL, "record", ksafe_consumer_done(c, NULL, E));
    BAD(KSAFE_EINVAL, "mode",
        ksafe_consumer_commit(c, (ksafe_commit_mode)7, E));
    BAD(KSAFE_EINVAL, "policy", ksafe_consumer_set_commit_policy(c, NULL, E));
    pol.version = 99;
    BAD(KSAFE_EVERSION, "version",
        ksafe_consumer_set_commit_policy(c, &pol, E));
    pol.version = KSAFE_COMMIT_POLICY_VERSION;
    pol.every_ms = 3600001;
    BAD(KSAFE_EINVAL, "every_ms",
        ksafe_consumer_set_commit_policy(c, &pol, E));
    BAD(KSAFE_EINVAL, "topic", ksafe_consumer_seek(c, NULL, 0, 0, E));
    BAD(KSAFE_EINVAL, "topic", ksafe_consumer_seek(c, "", 0, 0, E));
    BAD(KSAFE_EINVAL, "partition", ksafe_consumer_seek(c, "t", -1, 0, E));
    BAD(KSAFE_EINVAL, "offset", ksafe_consumer_seek(c, "t", 0, -5, E));
    ksafe_consumer_free(c);
}
END_TEST

START_TEST(consumer_topic_of_300_characters)
{
    ksafe_consumer *c = offline_consumer();
    const char *topics[1];

    make_long_topic();
    topics[0] = long_topic;
    /* Kafka's limit is 249: the subscription could never be served. */
    BAD(KSAFE_EINVAL, "249", ksafe_consumer_subscribe(c, topics, 1, E));
    BAD(KSAFE_EINVAL, "249", ksafe_consumer_seek(c, long_topic, 0, 0, E));
    ksafe_consumer_free(c);
}
END_TEST

START_TEST(consumer_topic_with_illegal_characters)
{
    static const char *const bad[] = {"orders", "orders eu"};
    static const char *const regex[] = {"^orders (eu|us)"};
    ksafe_consumer *c = offline_consumer();
    ksafe_error err;

    BAD(KSAFE_EINVAL, "topics[1]", ksafe_consumer_subscribe(c, bad, 2, E));
    BAD(KSAFE_EINVAL, "[a-zA-Z0-9._-]",
        ksafe_consumer_subscribe(c, bad, 2, E));
    BAD(KSAFE_EINVAL, "seek topic", ksafe_consumer_seek(c, ".", 0, 0, E));
    /* A regex is not a name: librdkafka matches it against the cluster's. */
    ck_assert_ok(ksafe_consumer_subscribe(c, regex, 1, &err), err);
    ksafe_consumer_free(c);
}
END_TEST

static ksafe_handler_result ok_handler(const ksafe_message *msg,
                                       ksafe_error *err, void *payload)
{
    (void)msg; (void)err; (void)payload;
    return KSAFE_HANDLER_OK;
}

static ksafe_handler_result ok_batch(const ksafe_message *const *msgs,
                                     size_t count, size_t *succeeded,
                                     ksafe_error *err, void *payload)
{
    (void)msgs; (void)count; (void)succeeded; (void)err; (void)payload;
    return KSAFE_HANDLER_OK;
}

/* A closed handle is not a crash either: every call says it is closed. */
START_TEST(closed_handles)
{
    static const char *const topics[] = {"t"};
    ksafe_consumer *c = offline_consumer();
    ksafe_producer *p = offline_producer(NULL);
    ksafe_loop_options o = KSAFE_LOOP_OPTIONS_INIT;
    ksafe_record r = KSAFE_RECORD_INIT;
    ksafe_message *m;
    ksafe_error err;

    ck_assert_ok(ksafe_consumer_close(c, &err), err);
    ck_assert_ok(ksafe_consumer_close(c, &err), err); /* twice: harmless */
    BAD(KSAFE_ESTATE, "closed", ksafe_consumer_subscribe(c, topics, 1, E));
    BAD(KSAFE_ESTATE, "closed", ksafe_consumer_poll(c, 0, &m, E));
    BAD(KSAFE_ESTATE, "closed",
        ksafe_consumer_commit(c, KSAFE_COMMIT_SYNC, E));
    BAD(KSAFE_ESTATE, "closed", ksafe_consumer_seek(c, "t", 0, 0, E));
    o.handler = ok_handler;
    BAD(KSAFE_ESTATE, "closed", ksafe_run(c, &o, E));
    ck_assert_ok(ksafe_producer_close(p, &err), err);
    ck_assert_ok(ksafe_producer_close(p, &err), err);
    r.topic = "t";
    BAD(KSAFE_ESTATE, "closed", ksafe_producer_send(p, &r, E));
    BAD(KSAFE_ESTATE, "closed",
        ksafe_producer_send_sync(p, &r, 100, NULL, E));
    ksafe_producer_free(p);
    ksafe_consumer_free(c);
}
END_TEST

START_TEST(instance_id_bad_arguments)
{
    char buf[300];

    BAD(KSAFE_EINVAL, "buf", ksafe_group_instance_id(NULL, 10, "w", E));
    BAD(KSAFE_EINVAL, "needs", ksafe_group_instance_id(buf, 0, "w", E));
    BAD(KSAFE_EINVAL, "[a-zA-Z0-9._-]",
        ksafe_group_instance_id(buf, sizeof(buf), "a b", E));
}
END_TEST

START_TEST(message_accessors_on_null)
{
    size_t len = 7;
    const void *v = (const void *)1;

    ck_assert_ptr_null(ksafe_message_topic(NULL));
    ck_assert_int_eq(ksafe_message_partition(NULL), -1);
    ck_assert_int_eq(ksafe_message_offset(NULL), -1);
    ck_assert_ptr_null(ksafe_message_key(NULL, &len));
    ck_assert_uint_eq(len, 0);
    len = 7;
    ck_assert_ptr_null(ksafe_message_value(NULL, &len));
    ck_assert_uint_eq(len, 0);
    ck_assert_int_eq(ksafe_message_timestamp(NULL), -1);
    ck_assert_int_eq(ksafe_message_header(NULL, "h", &v, &len),
                     KSAFE_EINVAL);
    ck_assert_ptr_null(ksafe_message_rdkafka(NULL));
    ksafe_message_free(NULL);
}
END_TEST

static void header_absent_or_unnamed(const ksafe_message *msg, void *arg)
{
    const void *v = NULL;
    size_t len = 0;

    (void)arg;
    ck_assert_int_eq(ksafe_message_header(msg, NULL, &v, &len),
                     KSAFE_EINVAL);
    ck_assert_int_eq(ksafe_message_header(msg, "absent", &v, &len),
                     KSAFE_EINVAL);
}

START_TEST(message_header_absent_or_unnamed)
{
    with_message("v", header_absent_or_unnamed, NULL);
}
END_TEST

static void header_without_outputs(const ksafe_message *msg, void *arg)
{
    const void *v = NULL;
    size_t len = 0;

    (void)arg;
    /* Asking only whether the header is there. */
    ck_assert_int_eq(ksafe_message_header(msg, "h", NULL, NULL), 0);
    ck_assert_int_eq(ksafe_message_header(msg, "h", &v, NULL), 0);
    ck_assert_int_eq(memcmp(v, "1", 1), 0);
    ck_assert_int_eq(ksafe_message_header(msg, "h", NULL, &len), 0);
    ck_assert_uint_eq(len, 1);
}

START_TEST(message_header_without_outputs)
{
    with_message("v", header_without_outputs, NULL);
}
END_TEST

/* ---- loop -------------------------------------------------------------- */

START_TEST(loop_bad_options)
{
    ksafe_consumer *c = offline_consumer();
    ksafe_dedup_store *s = memory_store();
    ksafe_loop_options o = KSAFE_LOOP_OPTIONS_INIT;

    BAD(KSAFE_EINVAL, "consumer", ksafe_run(NULL, &o, E));
    BAD(KSAFE_EINVAL, "options", ksafe_run(c, NULL, E));
    BAD(KSAFE_EINVAL, "handler", ksafe_run(c, &o, E));
    o.handler = ok_handler;
    o.batch_handler = ok_batch;
    BAD(KSAFE_EINVAL, "handler", ksafe_run(c, &o, E));
    o.batch_handler = NULL;
    o.version = 99;
    BAD(KSAFE_EVERSION, "version", ksafe_run(c, &o, E));
    o.version = KSAFE_LOOP_OPTIONS_VERSION;
    o.max_attempts = 0;
    BAD(KSAFE_EINVAL, "max_attempts", ksafe_run(c, &o, E));
    o.max_attempts = 5;
    o.on_failure = KSAFE_FAILURE_DEAD_LETTER;
    BAD(KSAFE_EINVAL, "dead_letter_topic", ksafe_run(c, &o, E));
    o.on_failure = KSAFE_FAILURE_STOP;
    o.dedup_store = s;
    BAD(KSAFE_EINVAL, "dedup_key", ksafe_run(c, &o, E));
    BAD(KSAFE_EINVAL, "consumer", ksafe_stop_on_signals(NULL, E));
    ksafe_dedup_store_free(s);
    ksafe_consumer_free(c);
}
END_TEST

START_TEST(loop_dead_letter_topic_of_300_characters)
{
    ksafe_consumer *c = offline_consumer();
    ksafe_producer *p = offline_producer(NULL);
    ksafe_loop_options o = KSAFE_LOOP_OPTIONS_INIT;

    make_long_topic();
    o.handler = ok_handler;
    o.on_failure = KSAFE_FAILURE_DEAD_LETTER;
    o.dead_letter_producer = p;
    o.dead_letter_topic = long_topic;
    /* Should the options pass, the loop stops at once instead of running
     * on a consumer with no subscription. */
    ksafe_consumer_stop(c);
    BAD(KSAFE_EINVAL, "249", ksafe_run(c, &o, E));
    ksafe_producer_free(p);
    ksafe_consumer_free(c);
}
END_TEST

/* ---- dedup keys -------------------------------------------------------- */

static int one_byte_key(const ksafe_message *msg, void *buf, size_t size,
                        size_t *len, ksafe_error *err, void *payload)
{
    (void)msg; (void)size; (void)err; (void)payload;
    *(char *)buf = 'k';
    *len = 1;
    return 0;
}

START_TEST(dedup_key_bad_construction)
{
    ksafe_dedup_key *k = (ksafe_dedup_key *)1;

    BAD(KSAFE_EINVAL, "out",
        ksafe_dedup_key_new(NULL, KSAFE_DEDUP_KEY_RECORD_KEY, NULL, E));
    BAD(KSAFE_EINVAL, "kind",
        ksafe_dedup_key_new(&k, (ksafe_dedup_key_kind)42, NULL, E));
    ck_assert_ptr_null(k);
    BAD(KSAFE_EINVAL, "header",
        ksafe_dedup_key_new(&k, KSAFE_DEDUP_KEY_HEADER, NULL, E));
    BAD(KSAFE_EINVAL, "header",
        ksafe_dedup_key_new(&k, KSAFE_DEDUP_KEY_HEADER, "", E));
    BAD(KSAFE_EINVAL, "path",
        ksafe_dedup_key_new(&k, KSAFE_DEDUP_KEY_JSON_FIELD, NULL, E));
    BAD(KSAFE_EINVAL, "path",
        ksafe_dedup_key_new(&k, KSAFE_DEDUP_KEY_JSON_FIELD, "a..b", E));
    BAD(KSAFE_EINVAL, "takes no argument",
        ksafe_dedup_key_new(&k, KSAFE_DEDUP_KEY_RECORD_KEY, "x", E));
    BAD(KSAFE_EINVAL, "custom",
        ksafe_dedup_key_new(&k, KSAFE_DEDUP_KEY_CUSTOM, NULL, E));
    BAD(KSAFE_EINVAL, "fn", ksafe_dedup_key_new_custom(&k, NULL, NULL, E));
    BAD(KSAFE_EINVAL, "out",
        ksafe_dedup_key_new_custom(NULL, one_byte_key, NULL, E));
    BAD(KSAFE_EINVAL, "spec", ksafe_dedup_key_parse(&k, NULL, E));
    BAD(KSAFE_EINVAL, "bogus", ksafe_dedup_key_parse(&k, "bogus", E));
    BAD(KSAFE_EINVAL, "", ksafe_dedup_key_parse(&k, "", E));
    BAD(KSAFE_EINVAL, "path", ksafe_dedup_key_parse(&k, "json:", E));
    BAD(KSAFE_EINVAL, "header", ksafe_dedup_key_parse(&k, "header:", E));
    ck_assert_ptr_null(k);
    ksafe_dedup_key_free(NULL);
}
END_TEST

typedef struct extract_case {
    const ksafe_dedup_key *k;
    size_t size;
    const char *word;
} extract_case;

static void extract_fails(const ksafe_message *msg, void *arg)
{
    const extract_case *x = arg;
    char buf[KSAFE_DEDUP_KEY_MAX];
    size_t len = 99;

    BAD(KSAFE_EINVAL, x->word,
        ksafe_dedup_key_extract(x->k, msg, buf, x->size, &len, E));
    /* The record is named: topic, partition and offset. */
    BAD(KSAFE_EINVAL, "bad-input",
        ksafe_dedup_key_extract(x->k, msg, buf, x->size, &len, E));
    BAD(KSAFE_EINVAL, "buf",
        ksafe_dedup_key_extract(x->k, msg, NULL, x->size, &len, E));
    BAD(KSAFE_EINVAL, "len",
        ksafe_dedup_key_extract(x->k, msg, buf, x->size, NULL, E));
}

START_TEST(dedup_key_on_non_json_payload)
{
    ksafe_dedup_key *k = NULL;
    ksafe_error err;
    extract_case x;

    ck_assert_ok(ksafe_dedup_key_parse(&k, "json:event.id", &err), err);
    x.k = k;
    x.size = KSAFE_DEDUP_KEY_MAX;
    x.word = "JSON";
    with_message("this is not JSON {", extract_fails, &x);
    x.word = "event.id";
    with_message("{\"event\": {}}", extract_fails, &x);
    with_message("{\"event\": {\"id\": [1]}}", extract_fails, &x);
    with_message("{\"event\": {\"id\": \"\"}}", extract_fails, &x);
    ksafe_dedup_key_free(k);
}
END_TEST

/* A value of 10 MB: nested far past the parser's depth limit, or not JSON
 * at its end; refused per record in bounded time. */
START_TEST(dedup_key_on_ten_megabyte_payload)
{
    char *value = malloc(TEN_MB + 1);
    ksafe_dedup_key *k = NULL;
    ksafe_error err;
    extract_case x;
    int64_t t0 = now_ms();

    ck_assert_ptr_nonnull(value);
    ck_assert_ok(ksafe_dedup_key_parse(&k, "json:id", &err), err);
    x.k = k;
    x.size = KSAFE_DEDUP_KEY_MAX;
    x.word = "JSON";
    memset(value, '[', TEN_MB);
    value[TEN_MB] = '\0';
    with_message(value, extract_fails, &x);
    memset(value, ' ', TEN_MB);
    memcpy(value, "{\"id\": \"a\"}", 11);
    value[TEN_MB - 1] = 'x';
    with_message(value, extract_fails, &x);
    ck_assert_int_lt(now_ms() - t0, 30000);
    ksafe_dedup_key_free(k);
    free(value);
}
END_TEST

START_TEST(dedup_key_too_long_for_the_buffer)
{
    ksafe_dedup_key *k = NULL;
    ksafe_error err;
    extract_case x;

    ck_assert_ok(ksafe_dedup_key_parse(&k, "json:id", &err), err);
    x.k = k;
    x.size = 3;
    x.word = "3";
    with_message("{\"id\": \"abcdef\"}", extract_fails, &x);
    ksafe_dedup_key_free(k);
    ck_assert_ok(ksafe_dedup_key_parse(&k, "key", &err), err);
    x.k = k;
    x.size = KSAFE_DEDUP_KEY_MAX;
    x.word = "no key";
    with_message("v", extract_fails, &x);
    ksafe_dedup_key_free(k);
}
END_TEST

START_TEST(dedup_key_null_extractor)
{
    char buf[8];
    size_t len;

    BAD(KSAFE_EINVAL, "key",
        ksafe_dedup_key_extract(NULL, NULL, buf, sizeof(buf), &len, E));
}
END_TEST

/* ---- dedup stores ------------------------------------------------------ */

START_TEST(dedup_store_bad_construction)
{
    ksafe_dedup_memory_options mo = KSAFE_DEDUP_MEMORY_OPTIONS_INIT;
    ksafe_dedup_sqlite_options so = KSAFE_DEDUP_SQLITE_OPTIONS_INIT;
    ksafe_dedup_pg_options go = KSAFE_DEDUP_PG_OPTIONS_INIT;
    ksafe_dedup_store_ops ops;
    ksafe_dedup_store *s = (ksafe_dedup_store *)1;

    BAD(KSAFE_EINVAL, "out", ksafe_dedup_memory_new(NULL, &mo, E));
    BAD(KSAFE_EINVAL, "options", ksafe_dedup_memory_new(&s, NULL, E));
    ck_assert_ptr_null(s);
    BAD(KSAFE_EINVAL, "capacity", ksafe_dedup_memory_new(&s, &mo, E));
    mo.capacity = (size_t)1 << 31;
    BAD(KSAFE_EINVAL, "capacity", ksafe_dedup_memory_new(&s, &mo, E));
    mo.capacity = 16;
    mo.version = 99;
    BAD(KSAFE_EVERSION, "version", ksafe_dedup_memory_new(&s, &mo, E));
    mo.version = KSAFE_DEDUP_MEMORY_OPTIONS_VERSION;
    mo.ttl_ms = -1;
    BAD(KSAFE_EINVAL, "ttl_ms", ksafe_dedup_memory_new(&s, &mo, E));

    BAD(KSAFE_EINVAL, "out", ksafe_dedup_store_new(NULL, &ops, NULL, E));
    BAD(KSAFE_EINVAL, "ops", ksafe_dedup_store_new(&s, NULL, NULL, E));
    memset(&ops, 0, sizeof(ops));
    ops.version = 99;
    BAD(KSAFE_EVERSION, "version", ksafe_dedup_store_new(&s, &ops, NULL, E));
    ops.version = KSAFE_DEDUP_STORE_OPS_VERSION;
    BAD(KSAFE_EINVAL, "name", ksafe_dedup_store_new(&s, &ops, NULL, E));
    ops.name = "mine";
    BAD(KSAFE_EINVAL, "begin", ksafe_dedup_store_new(&s, &ops, NULL, E));
    ck_assert_ptr_null(s);

    /* Whether or not SQLite/PostgreSQL support was built in, bad options
     * are an error (and "built without" is one, naming the store). */
    BAD(KSAFE_EINVAL, ksafe_dedup_has_sqlite() ? "options" : "SQLite",
        ksafe_dedup_sqlite_new(&s, NULL, E));
    BAD(KSAFE_EINVAL, ksafe_dedup_has_sqlite() ? "path or db" : "SQLite",
        ksafe_dedup_sqlite_new(&s, &so, E));
    BAD(KSAFE_EINVAL, ksafe_dedup_has_postgresql() ? "options" : "PostgreSQL",
        ksafe_dedup_pg_new(&s, NULL, E));
    BAD(KSAFE_EINVAL,
        ksafe_dedup_has_postgresql() ? "conninfo or conn" : "PostgreSQL",
        ksafe_dedup_pg_new(&s, &go, E));
    ck_assert_ptr_null(s);
}
END_TEST

START_TEST(dedup_store_null_handle)
{
    ksafe_dedup_status st;
    ksafe_dedup_stats stats;
    rd_kafka_topic_partition_list_t *parts =
        rd_kafka_topic_partition_list_new(1);

    BAD(KSAFE_EINVAL, "store", ksafe_dedup_begin(NULL, E));
    BAD(KSAFE_EINVAL, "store", ksafe_dedup_claim(NULL, "k", 1, &st, E));
    BAD(KSAFE_EINVAL, "store", ksafe_dedup_mark(NULL, "k", 1, E));
    BAD(KSAFE_EINVAL, "store", ksafe_dedup_release(NULL, "k", 1, E));
    BAD(KSAFE_EINVAL, "store",
        ksafe_dedup_store_offset(NULL, "g", "t", 0, 1, E));
    BAD(KSAFE_EINVAL, "store",
        ksafe_dedup_load_offsets(NULL, "g", parts, NULL, E));
    BAD(KSAFE_EINVAL, "store", ksafe_dedup_commit(NULL, E));
    BAD(KSAFE_EINVAL, "store", ksafe_dedup_rollback(NULL, E));
    BAD(KSAFE_EINVAL, "store", ksafe_dedup_expire(NULL, 1000, NULL, E));
    ck_assert_int_eq(ksafe_dedup_in_transaction(NULL), 0);
    ck_assert_ptr_null(ksafe_dedup_store_name(NULL));
    memset(&stats, 0xff, sizeof(stats));
    ksafe_dedup_stats_get(NULL, &stats);
    ck_assert_uint_eq(stats.claimed, 0);
    ksafe_dedup_stats_get(NULL, NULL);
    ksafe_dedup_store_free(NULL);
    rd_kafka_topic_partition_list_destroy(parts);
}
END_TEST

START_TEST(dedup_store_bad_arguments)
{
    ksafe_dedup_store *s = memory_store();
    ksafe_dedup_status st;
    rd_kafka_topic_partition_list_t *parts =
        rd_kafka_topic_partition_list_new(1);
    ksafe_error err;

    BAD(KSAFE_ESTATE, "transaction", ksafe_dedup_claim(s, "k", 1, &st, E));
    BAD(KSAFE_EINVAL, "expire", ksafe_dedup_expire(s, 0, NULL, E));
    BAD(KSAFE_EINVAL, "group",
        ksafe_dedup_load_offsets(s, NULL, parts, NULL, E));
    BAD(KSAFE_EINVAL, "parts",
        ksafe_dedup_load_offsets(s, "g", NULL, NULL, E));
    ck_assert_ok(ksafe_dedup_begin(s, &err), err);
    BAD(KSAFE_EINVAL, "out", ksafe_dedup_claim(s, "k", 1, NULL, E));
    BAD(KSAFE_EINVAL, "key", ksafe_dedup_claim(s, NULL, 1, &st, E));
    BAD(KSAFE_EINVAL, "key", ksafe_dedup_claim(s, "k", 0, &st, E));
    BAD(KSAFE_EINVAL, "key", ksafe_dedup_mark(s, NULL, 0, E));
    BAD(KSAFE_EINVAL, "key", ksafe_dedup_release(s, "", 0, E));
    BAD(KSAFE_EINVAL, "group",
        ksafe_dedup_store_offset(s, NULL, "t", 0, 1, E));
    BAD(KSAFE_EINVAL, "topic",
        ksafe_dedup_store_offset(s, "g", "", 0, 1, E));
    BAD(KSAFE_EINVAL, "partition",
        ksafe_dedup_store_offset(s, "g", "t", -1, 1, E));
    BAD(KSAFE_EINVAL, "offset",
        ksafe_dedup_store_offset(s, "g", "t", 0, -7, E));
    BAD(KSAFE_ESTATE, "transaction", ksafe_dedup_begin(s, E));
    ck_assert_ok(ksafe_dedup_rollback(s, &err), err);
    ksafe_dedup_store_free(s);
    rd_kafka_topic_partition_list_destroy(parts);
}
END_TEST

/* ---- the test kit ------------------------------------------------------ */

/* The kit's fillers return nothing: on NULL they do nothing. */
START_TEST(test_kit_fillers_on_null)
{
    char buf[4] = "abc";

    ksafe_test_unique_name(NULL, 64, "x");
    ksafe_test_unique_name(buf, 0, "x");
    ck_assert_str_eq(buf, "abc");
    ksafe_test_cluster_producer_options(NULL, NULL);
    ksafe_test_cluster_consumer_options(NULL, NULL, "g");
}
END_TEST

START_TEST(test_kit_null_handles)
{
    rd_kafka_resp_err_t errs[1] = {RD_KAFKA_RESP_ERR_NOT_COORDINATOR};
    ksafe_mock_cluster *mc = (ksafe_mock_cluster *)1;
    int n;

    BAD(KSAFE_EINVAL, "out", ksafe_mock_cluster_new(NULL, 1, E));
    BAD(KSAFE_EINVAL, "broker_count", ksafe_mock_cluster_new(&mc, 0, E));
    ck_assert_ptr_null(mc);
    BAD(KSAFE_EINVAL, "broker_count", ksafe_mock_cluster_new(&mc, 17, E));
    BAD(KSAFE_EINVAL, "topic",
        ksafe_mock_cluster_create_topic(NULL, "t", 1, E));
    BAD(KSAFE_EINVAL, "cluster",
        ksafe_mock_cluster_push_request_errors(NULL, 8, 1, errs, E));
    BAD(KSAFE_EINVAL, "cluster", ksafe_mock_cluster_broker_down(NULL, 1, E));
    BAD(KSAFE_EINVAL, "cluster", ksafe_mock_cluster_broker_up(NULL, 1, E));
    ck_assert_ptr_null(ksafe_mock_cluster_bootstrap(NULL));
    ck_assert_ptr_null(ksafe_mock_cluster_rdkafka(NULL));
    ksafe_mock_cluster_free(NULL);
    BAD(KSAFE_EINVAL, "topic",
        ksafe_test_cluster_create_topic(NULL, "t", 1, E));
    ck_assert_int_eq(ksafe_test_cluster_is_embedded(NULL), 0);
    ck_assert_ptr_null(ksafe_test_cluster_bootstrap(NULL));
    ck_assert_ptr_null(ksafe_test_cluster_mock(NULL));
    ksafe_test_cluster_free(NULL);
    BAD(KSAFE_EINVAL, "bootstrap",
        ksafe_cluster_ensure_topic(NULL, "t", 1, 1000, E));
    BAD(KSAFE_EINVAL, "bootstrap",
        ksafe_cluster_topic_partitions(NULL, "t", &n, 1000, E));
    BAD(KSAFE_EINVAL, "out", ksafe_test_group_protocol(NULL, E));
    BAD(KSAFE_EINVAL, "opts",
        ksafe_test_consumer_group(NULL, ksafe_test_group_timing(1), E));
}
END_TEST

static Suite *bad_input_suite(void)
{
    Suite *s = suite_create("bad_input");
    TCase *t;

    t = tcase_create("error");
    tcase_add_test(t, error_helpers_take_anything);
    suite_add_tcase(s, t);
    t = tcase_create("options");
    tcase_add_test(t, options_init_refuses_null_and_unknown_version);
    tcase_add_test(t, options_unknown_version_is_refused);
    tcase_add_test(t, options_null_and_missing_fields_are_refused);
    tcase_add_test(t, options_malformed_values_are_refused);
    suite_add_tcase(s, t);
    t = tcase_create("config");
    tcase_add_test(t, config_null_empty_and_malformed);
    tcase_add_test(t, config_of_ten_megabytes);
    suite_add_tcase(s, t);
    t = tcase_create("producer");
    tcase_add_test(t, producer_null_handle);
    tcase_add_test(t, producer_bad_records);
    tcase_add_test(t, producer_topic_of_300_characters);
    tcase_add_test(t, producer_topic_with_illegal_characters);
    tcase_add_test(t, producer_bad_arguments);
    tcase_add_test(t, txn_bad_arguments);
    suite_add_tcase(s, t);
    t = tcase_create("consumer");
    tcase_add_test(t, consumer_null_handle);
    tcase_add_test(t, consumer_bad_arguments);
    tcase_add_test(t, consumer_topic_of_300_characters);
    tcase_add_test(t, consumer_topic_with_illegal_characters);
    tcase_add_test(t, instance_id_bad_arguments);
    tcase_add_test(t, closed_handles);
    tcase_add_test(t, message_accessors_on_null);
    tcase_add_test(t, message_header_absent_or_unnamed);
    tcase_add_test(t, message_header_without_outputs);
    suite_add_tcase(s, t);
    t = tcase_create("loop");
    tcase_add_test(t, loop_bad_options);
    tcase_add_test(t, loop_dead_letter_topic_of_300_characters);
    suite_add_tcase(s, t);
    t = tcase_create("dedup");
    tcase_add_test(t, dedup_key_bad_construction);
    tcase_add_test(t, dedup_key_on_non_json_payload);
    tcase_add_test(t, dedup_key_on_ten_megabyte_payload);
    tcase_add_test(t, dedup_key_too_long_for_the_buffer);
    tcase_add_test(t, dedup_key_null_extractor);
    tcase_add_test(t, dedup_store_bad_construction);
    tcase_add_test(t, dedup_store_null_handle);
    tcase_add_test(t, dedup_store_bad_arguments);
    suite_add_tcase(s, t);
    t = tcase_create("test_kit");
    tcase_add_test(t, test_kit_null_handles);
    tcase_add_test(t, test_kit_fillers_on_null);
    suite_add_tcase(s, t);
    return s;
}

KSAFE_TEST_MAIN(bad_input_suite)
