/*
 * tests/test_bad_input_dedup.c - bad input to the dedup keys and stores
 * and to the test kit (the bad_input suite; rows of docs/bad-input.md).
 */
#include "bad_input.h"

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

/* Table names go into SQL text: only plain identifiers pass. Without
 * SQLite support each call is the "built without" error instead. */
START_TEST(dedup_sqlite_bad_options)
{
    ksafe_dedup_sqlite_options so = KSAFE_DEDUP_SQLITE_OPTIONS_INIT;
    ksafe_dedup_store *s = NULL;
    char big[300];
    int have = ksafe_dedup_has_sqlite();

    memset(big, 'm', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    so.path = ":memory:";
    so.marks_table = "x; DROP TABLE y";
    BAD(KSAFE_EINVAL, have ? "marks_table \"x; DROP TABLE y\"" : "SQLite",
        ksafe_dedup_sqlite_new(&s, &so, E));
    so.marks_table = "";
    BAD(KSAFE_EINVAL, have ? "identifier" : "SQLite",
        ksafe_dedup_sqlite_new(&s, &so, E));
    so.marks_table = NULL;
    so.offsets_table = big;
    BAD(KSAFE_EINVAL, have ? "offsets_table" : "SQLite",
        ksafe_dedup_sqlite_new(&s, &so, E));
    so.offsets_table = NULL;
    so.txn_mode = (ksafe_dedup_txn_mode)9;
    BAD(KSAFE_EINVAL, have ? "txn_mode" : "SQLite",
        ksafe_dedup_sqlite_new(&s, &so, E));
    so.txn_mode = KSAFE_DEDUP_TXN_STORE;
    so.busy_timeout_ms = -5;
    BAD(KSAFE_EINVAL, have ? "busy_timeout_ms" : "SQLite",
        ksafe_dedup_sqlite_new(&s, &so, E));
    so.busy_timeout_ms = 5000;
    so.path = "/nonexistent/dir/x.db";
    BAD(have ? KSAFE_ESTORE : KSAFE_EINVAL,
        have ? "/nonexistent/dir/x.db" : "SQLite",
        ksafe_dedup_sqlite_new(&s, &so, E));
    ck_assert_ptr_null(s);
}
END_TEST

START_TEST(dedup_memory_key_longer_than_key_bytes)
{
    ksafe_dedup_memory_options mo = KSAFE_DEDUP_MEMORY_OPTIONS_INIT;
    ksafe_dedup_store *s = NULL;
    ksafe_dedup_status st;
    ksafe_error err;

    mo.capacity = 4;
    mo.key_bytes = 8;
    ck_assert_ok(ksafe_dedup_memory_new(&s, &mo, &err), err);
    ck_assert_ok(ksafe_dedup_begin(s, &err), err);
    BAD(KSAFE_EINVAL, "key_bytes=8",
        ksafe_dedup_claim(s, "123456789", 9, &st, E));
    ck_assert_ok(ksafe_dedup_rollback(s, &err), err);
    ksafe_dedup_store_free(s);
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


void bad_input_dedup_cases(Suite *s)
{
    TCase *t;

    t = tcase_create("dedup");
    tcase_add_test(t, dedup_key_bad_construction);
    tcase_add_test(t, dedup_key_on_non_json_payload);
    tcase_add_test(t, dedup_key_on_ten_megabyte_payload);
    tcase_add_test(t, dedup_key_too_long_for_the_buffer);
    tcase_add_test(t, dedup_key_null_extractor);
    tcase_add_test(t, dedup_store_bad_construction);
    tcase_add_test(t, dedup_store_null_handle);
    tcase_add_test(t, dedup_store_bad_arguments);
    tcase_add_test(t, dedup_sqlite_bad_options);
    tcase_add_test(t, dedup_memory_key_longer_than_key_bytes);
    suite_add_tcase(s, t);
    t = tcase_create("test_kit");
    tcase_add_test(t, test_kit_null_handles);
    tcase_add_test(t, test_kit_fillers_on_null);
    suite_add_tcase(s, t);
}
