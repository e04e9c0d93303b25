/*
 * tests/test_dedup_key.c - dedup key extractors on real consumed records.
 *
 * Records carry headers, so they must come from librdkafka: produced to the
 * embedded cluster (or $KSAFE_TEST_BOOTSTRAP) and read back by a plain
 * assigned consumer (no group join, so this stays fast).
 */
#include "testutil.h"

#define N_RECORDS 5

static char topic[128];
static rd_kafka_t *reader;
static rd_kafka_message_t *got[N_RECORDS];

static const char good_json[] =
    "{\"event\":{\"id\":\"abc\",\"seq\":42,\"items\":[{\"id\":\"i0\"}],"
    "\"ok\":true,\"price\":1.5}}";
static char long_key[600];

static void produce_all(void)
{
    ksafe_producer_options o;
    ksafe_producer *p;
    ksafe_error err;
    ksafe_header h0 = {"event-id", "ev-1", 4};
    ksafe_header h3 = {"event-id", "", 0};
    ksafe_record r[N_RECORDS];
    int i;

    memset(long_key, 'x', sizeof(long_key));
    for (i = 0; i < N_RECORDS; i++) {
        ksafe_record init = KSAFE_RECORD_INIT;
        r[i] = init;
        r[i].topic = topic;
        r[i].partition = 0;
    }
    r[0].key = "order-1";
    r[0].key_len = 7;
    r[0].headers = &h0;
    r[0].header_count = 1;
    r[0].value = good_json;
    r[0].value_len = strlen(good_json);
    r[1].value = "not json {";
    r[1].value_len = 10;
    r[2].key = "";
    r[2].key_len = 0;
    r[2].value = "{\"other\":1}";
    r[2].value_len = 11;
    r[3].key = long_key;
    r[3].key_len = sizeof(long_key);
    r[3].headers = &h3;
    r[3].header_count = 1;
    /* r[4]: a tombstone, no key, no value */

    ksafe_test_cluster_producer_options(tc, &o);
    o.log_cb = test_quiet_log;
    ck_assert_ok(ksafe_producer_new(&p, &o, &err), err);
    for (i = 0; i < N_RECORDS; i++)
        ck_assert_ok(ksafe_producer_send(p, &r[i], &err), err);
    ck_assert_ok(ksafe_producer_flush(p, 30000, &err), err);
    ck_assert_ok(ksafe_producer_close(p, &err), err);
    ksafe_producer_free(p);
}

static void read_all(void)
{
    char errstr[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_topic_partition_list_t *parts;
    int n = 0, polls = 0;

    ck_assert_int_eq(rd_kafka_conf_set(conf, "bootstrap.servers",
                                       ksafe_test_cluster_bootstrap(tc),
                                       errstr, sizeof(errstr)),
                     RD_KAFKA_CONF_OK);
    rd_kafka_conf_set(conf, "group.id", "dedup-key-reader", NULL, 0);
    rd_kafka_conf_set(conf, "enable.auto.commit", "false", NULL, 0);
    rd_kafka_conf_set(conf, "fetch.wait.max.ms", "10", NULL, 0);
    rd_kafka_conf_set(conf, "log_level", "0", NULL, 0);
    reader = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
    ck_assert_msg(reader != NULL, "rd_kafka_new: %s", errstr);
    parts = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(parts, topic, 0)->offset =
        RD_KAFKA_OFFSET_BEGINNING;
    ck_assert_int_eq(rd_kafka_assign(reader, parts), 0);
    rd_kafka_topic_partition_list_destroy(parts);
    while (n < N_RECORDS && polls++ < 300) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(reader, 100);
        if (!m)
            continue;
        if (m->err) {
            rd_kafka_message_destroy(m);
            continue;
        }
        ck_assert_int_lt(m->offset, N_RECORDS);
        got[m->offset] = m;
        n++;
    }
    ck_assert_int_eq(n, N_RECORDS);
}

static void cluster_up(void)
{
    ksafe_error err;

    ck_assert_ok(ksafe_test_cluster_new(&tc, &err), err);
    ksafe_test_unique_name(topic, sizeof(topic), "dedup-key");
    ck_assert_ok(ksafe_test_cluster_create_topic(tc, topic, 1, &err), err);
    produce_all();
    read_all();
}

static void cluster_down(void)
{
    int i;

    for (i = 0; i < N_RECORDS; i++) {
        rd_kafka_message_destroy(got[i]);
        got[i] = NULL;
    }
    if (reader) {
        rd_kafka_consumer_close(reader);
        rd_kafka_destroy(reader);
        reader = NULL;
    }
    ksafe_test_cluster_free(tc);
    tc = NULL;
}

static const ksafe_message *rec(int i)
{
    return (const ksafe_message *)got[i];
}

/* Extracts with `spec` from record i; returns the rc, key in buf. */
static int extract(const char *spec, int i, char *buf, size_t size,
                   size_t *len, ksafe_error *err)
{
    ksafe_dedup_key *k;
    ksafe_error perr;
    int rc;

    ck_assert_ok(ksafe_dedup_key_parse(&k, spec, &perr), perr);
    memset(buf, 0, size);
    rc = ksafe_dedup_key_extract(k, rec(i), buf, size, len, err);
    ksafe_dedup_key_free(k);
    return rc;
}

/* Asserts a per-record failure that names the record's position. */
static void assert_record_error(int rc, const ksafe_error *err, int offset,
                                const char *needle)
{
    char where[160];

    ck_assert_int_eq(rc, KSAFE_EINVAL);
    ck_assert_int_eq(err->code, KSAFE_EINVAL);
    snprintf(where, sizeof(where), "%s [0] @ %d", topic, offset);
    ck_assert_msg(strstr(err->message, where), "no position in \"%s\"",
                  err->message);
    ck_assert_msg(strstr(err->message, needle), "\"%s\" not in \"%s\"",
                  needle, err->message);
}

START_TEST(record_key)
{
    char buf[KSAFE_DEDUP_KEY_MAX];
    size_t len;
    ksafe_error err;

    ck_assert_ok(extract("key", 0, buf, sizeof(buf), &len, &err), err);
    ck_assert_uint_eq(len, 7);
    ck_assert_mem_eq(buf, "order-1", 7);
    assert_record_error(extract("key", 1, buf, sizeof(buf), &len, &err), &err,
                        1, "no key");
    assert_record_error(extract("key", 2, buf, sizeof(buf), &len, &err), &err,
                        2, "no key");
    /* Longer than the buffer: refused, never cut (two records would share
     * a truncated key). */
    assert_record_error(extract("key", 3, buf, sizeof(buf), &len, &err), &err,
                        3, "longer than");
}
END_TEST

START_TEST(header)
{
    char buf[KSAFE_DEDUP_KEY_MAX];
    size_t len;
    ksafe_error err;

    ck_assert_ok(extract("header:event-id", 0, buf, sizeof(buf), &len, &err),
                 err);
    ck_assert_uint_eq(len, 4);
    ck_assert_mem_eq(buf, "ev-1", 4);
    assert_record_error(
        extract("header:event-id", 1, buf, sizeof(buf), &len, &err), &err, 1,
        "no header \"event-id\"");
    assert_record_error(
        extract("header:trace-id", 0, buf, sizeof(buf), &len, &err), &err, 0,
        "no header \"trace-id\"");
    assert_record_error(
        extract("header:event-id", 3, buf, sizeof(buf), &len, &err), &err, 3,
        "empty");
}
END_TEST

START_TEST(json_field)
{
    char buf[KSAFE_DEDUP_KEY_MAX];
    size_t len;
    ksafe_error err;

    ck_assert_ok(extract("json:event.id", 0, buf, sizeof(buf), &len, &err),
                 err);
    ck_assert_uint_eq(len, 3);
    ck_assert_mem_eq(buf, "abc", 3);
    ck_assert_ok(extract("json:event.seq", 0, buf, sizeof(buf), &len, &err),
                 err);
    ck_assert_uint_eq(len, 2);
    ck_assert_mem_eq(buf, "42", 2);
    ck_assert_ok(
        extract("json:event.items.0.id", 0, buf, sizeof(buf), &len, &err),
        err);
    ck_assert_mem_eq(buf, "i0", 2);
}
END_TEST

START_TEST(json_errors)
{
    char buf[KSAFE_DEDUP_KEY_MAX];
    size_t len;
    ksafe_error err;

    assert_record_error(
        extract("json:event.id", 1, buf, sizeof(buf), &len, &err), &err, 1,
        "not JSON");
    assert_record_error(
        extract("json:event.id", 2, buf, sizeof(buf), &len, &err), &err, 2,
        "no field \"event.id\"");
    assert_record_error(
        extract("json:event.items.1.id", 0, buf, sizeof(buf), &len, &err),
        &err, 0, "no field");
    assert_record_error(
        extract("json:event.ok", 0, buf, sizeof(buf), &len, &err), &err, 0,
        "a boolean, not a string or integer");
    assert_record_error(
        extract("json:event.price", 0, buf, sizeof(buf), &len, &err), &err, 0,
        "a real number");
    assert_record_error(extract("json:event", 0, buf, sizeof(buf), &len, &err),
                        &err, 0, "an object");
    /* A tombstone has no value at all. */
    assert_record_error(
        extract("json:event.id", 4, buf, sizeof(buf), &len, &err), &err, 4,
        "empty");
    /* Buffer too small for the field. */
    assert_record_error(extract("json:event.id", 0, buf, 2, &len, &err), &err,
                        0, "longer than");
}
END_TEST

START_TEST(position)
{
    char buf[KSAFE_DEDUP_KEY_MAX], want[200];
    size_t len;
    ksafe_error err;

    ck_assert_ok(extract("position", 3, buf, sizeof(buf), &len, &err), err);
    snprintf(want, sizeof(want), "%s/0/3", topic);
    ck_assert_uint_eq(len, strlen(want));
    ck_assert_mem_eq(buf, want, len);
    /* Works on records nothing else can key. */
    ck_assert_ok(extract("position", 4, buf, sizeof(buf), &len, &err), err);
    ck_assert_mem_eq(buf + len - 2, "/4", 2);
}
END_TEST

static int value_prefix_key(const ksafe_message *msg, void *buf, size_t size,
                            size_t *len, ksafe_error *err, void *payload)
{
    size_t n = 0;
    const void *v = ksafe_message_value(msg, &n);

    (void)payload;
    if (!v || n < 3) {
        snprintf(err->message, sizeof(err->message), "value too short");
        err->code = KSAFE_EINVAL;
        return KSAFE_EINVAL;
    }
    if (size < 3)
        return KSAFE_EINVAL;
    memcpy(buf, v, 3);
    *len = 3;
    return 0;
}

static int silent_failure(const ksafe_message *msg, void *buf, size_t size,
                          size_t *len, ksafe_error *err, void *payload)
{
    (void)msg; (void)buf; (void)size; (void)len; (void)err; (void)payload;
    return KSAFE_EINVAL;
}

START_TEST(custom)
{
    char buf[KSAFE_DEDUP_KEY_MAX];
    size_t len;
    ksafe_error err;
    ksafe_dedup_key *k;

    ck_assert_ok(ksafe_dedup_key_new_custom(&k, value_prefix_key, NULL, &err),
                 err);
    ck_assert_int_eq(ksafe_dedup_key_kind_of(k), KSAFE_DEDUP_KEY_CUSTOM);
    ck_assert_ok(ksafe_dedup_key_extract(k, rec(1), buf, sizeof(buf), &len,
                                         &err),
                 err);
    ck_assert_uint_eq(len, 3);
    ck_assert_mem_eq(buf, "not", 3);
    ck_assert_int_eq(
        ksafe_dedup_key_extract(k, rec(4), buf, sizeof(buf), &len, &err),
        KSAFE_EINVAL);
    ck_assert_str_eq(err.message, "value too short");
    ksafe_dedup_key_free(k);

    /* A function that fails without saying why still yields a message that
     * names the record. */
    ck_assert_ok(ksafe_dedup_key_new_custom(&k, silent_failure, NULL, &err),
                 err);
    assert_record_error(
        ksafe_dedup_key_extract(k, rec(2), buf, sizeof(buf), &len, &err),
        &err, 2, "key function failed");
    ksafe_dedup_key_free(k);
}
END_TEST

START_TEST(bad_specs)
{
    ksafe_dedup_key *k = (ksafe_dedup_key *)1;
    ksafe_error err;

    ck_assert_int_eq(ksafe_dedup_key_parse(&k, "hash", &err), KSAFE_EINVAL);
    ck_assert_ptr_null(k);
    ck_assert_ptr_nonnull(strstr(err.message, "\"hash\""));
    ck_assert_int_eq(ksafe_dedup_key_parse(&k, "header:", &err),
                     KSAFE_EINVAL);
    ck_assert_int_eq(ksafe_dedup_key_parse(&k, "json:a..b", &err),
                     KSAFE_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.message, "empty segment"));
    ck_assert_int_eq(ksafe_dedup_key_new(&k, KSAFE_DEDUP_KEY_RECORD_KEY, "x",
                                         &err),
                     KSAFE_EINVAL);
    ck_assert_int_eq(ksafe_dedup_key_new(&k, KSAFE_DEDUP_KEY_CUSTOM, NULL,
                                         &err),
                     KSAFE_EINVAL);
    ck_assert_int_eq(ksafe_dedup_key_new_custom(&k, NULL, NULL, &err),
                     KSAFE_EINVAL);
    ck_assert_int_eq(ksafe_dedup_key_new(&k, (ksafe_dedup_key_kind)99, NULL,
                                         &err),
                     KSAFE_EINVAL);
}
END_TEST

static Suite *dedup_key_suite(void)
{
    Suite *s = suite_create("dedup_key");
    TCase *t = tcase_create("extract");

    /* One cluster and one set of records for every extractor test. */
    tcase_add_unchecked_fixture(t, cluster_up, cluster_down);
    tcase_set_timeout(t, 120);
    tcase_add_test(t, record_key);
    tcase_add_test(t, header);
    tcase_add_test(t, json_field);
    tcase_add_test(t, json_errors);
    tcase_add_test(t, position);
    tcase_add_test(t, custom);
    tcase_add_test(t, bad_specs);
    suite_add_tcase(s, t);
    return s;
}

KSAFE_TEST_MAIN(dedup_key_suite)
