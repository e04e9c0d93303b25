/*
 * tests/test_bad_input.c - bad input to the error helpers, the options, the
 * JSON configuration, the producer and transactions: a negative KSAFE_E*
 * code and a message that names the bad argument, never a crash, never a
 * silent default. Rows of docs/bad-input.md, by case name.
 *
 * No cluster: bad input is refused before any broker is contacted.
 */
#include <unistd.h>

#include "bad_input.h"

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
    ksafe_error err;

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
    ck_assert_ok(ksafe_config_load_string(&cfg, "{}", &err), err);
    BAD(KSAFE_EINVAL, "opts", ksafe_config_producer_options(cfg, NULL, E));
    BAD(KSAFE_EINVAL, "opts", ksafe_config_consumer_options(cfg, NULL, E));
    /* An empty document is valid but lacks what the options need. */
    BAD(KSAFE_EINVAL, "bootstrap_servers",
        ksafe_config_producer_options(cfg, &po, E));
    ksafe_config_free(cfg);
    ksafe_config_free(NULL);
}
END_TEST

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


void bad_input_client_cases(Suite *s)
{
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
}
