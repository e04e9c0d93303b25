/*
 * tests/test_stats.c - typed statistics (ksafe/stats.h): the parser on
 * documents captured from librdkafka 2.0.2 and 2.15.1 (tests/data/stats),
 * on documents with fields missing, added or of another type, and on
 * garbage; the consumer's statistics options. The suite's Prometheus cases
 * are in test_stats_prometheus.c, its embedded-cluster case (test
 * `stats-cluster`, KSAFE_STATS_PART=cluster) in test_stats_cluster.c.
 */
#include <jansson.h>

#include "stats_kit.h"

/* ---- captured documents ------------------------------------------------ */

/* Caught up and committed: every value librdkafka has is there, and the
 * internal partition -1 is not. */
START_TEST(caught_up_consumer)
{
    char name[96];
    ksafe_stats *st;
    int32_t p;

    snprintf(name, sizeof(name), "rdkafka-%s-consumer-caught-up.json",
             stats_versions[_i]);
    st = stats_parse_data(name);
    ck_assert_str_eq(st->type, "consumer");
    ck_assert_ptr_nonnull(st->name);
    ck_assert_ptr_null(st->group_id);
    ck_assert_int_eq(st->partition_count, 3);
    for (p = 0; p < 3; p++) {
        const ksafe_stats_partition *sp = stats_part(st, p);
        ck_assert_str_eq(sp->topic, "orders");
        ck_assert_int_eq(sp->high_watermark, 100);
        ck_assert_int_eq(sp->last_stable_offset, 100);
        ck_assert_int_eq(sp->committed_offset, 100);
        ck_assert_int_eq(sp->lag, 0);
        ck_assert_int_eq(sp->assigned, -1);
        /* only the consumer knows what was marked */
        ck_assert(!ksafe_stats_known(sp->marked_offset));
        ck_assert(!ksafe_stats_known(sp->processed_lag));
    }
    ck_assert_int_eq(st->fetch_queue, 0);
    ck_assert_str_eq(st->join_state, "steady");
    ck_assert_str_eq(st->group_state, "up");
    ck_assert_int_eq(st->assignment_size, 3);
    ck_assert_int_eq(st->rebalances, 1);
    ck_assert(ksafe_stats_known(st->rebalance_age_ms));
    ck_assert(st->time_s > 1700000000);
    ck_assert(st->broker_count >= 1);
    ck_assert(ksafe_stats_known(st->requests_in_flight));
    ck_assert(ksafe_stats_known(st->requests_queued));
    ck_assert(ksafe_stats_known(st->retries));
    ksafe_stats_free(st);
}
END_TEST

/* Half-way: the fetch queue holds records (one queue for all partitions:
 * 150 of 300 on 2.0.2, 147 on 2.15.1, more than any partition's 100); a
 * partition never committed has an unknown committed offset and lag, not
 * 0. */
START_TEST(midway_consumer)
{
    char name[96];
    ksafe_stats *st;
    int32_t p;

    snprintf(name, sizeof(name), "rdkafka-%s-consumer-midway.json",
             stats_versions[_i]);
    st = stats_parse_data(name);
    ck_assert_int_eq(st->partition_count, 3);
    for (p = 0; p < 3; p++) {
        const ksafe_stats_partition *sp = stats_part(st, p);
        ck_assert_int_eq(sp->high_watermark, 100);
    }
    ck_assert_int_eq(st->fetch_queue, _i == 0 ? 150 : 147);
    if (_i == 0) { /* 2.0.2: nothing committed yet */
        for (p = 0; p < 3; p++) {
            ck_assert(!ksafe_stats_known(stats_part(st, p)->committed_offset));
            ck_assert(!ksafe_stats_known(stats_part(st, p)->lag));
        }
    } else { /* 2.15.1: 100, 50, none */
        ck_assert_int_eq(stats_part(st, 0)->lag, 0);
        ck_assert_int_eq(stats_part(st, 1)->committed_offset, 50);
        ck_assert_int_eq(stats_part(st, 1)->lag, 50);
        ck_assert(!ksafe_stats_known(stats_part(st, 2)->lag));
    }
    ksafe_stats_free(st);
}
END_TEST

/* Before the group was joined: no partition, no assignment. */
START_TEST(joining_consumer)
{
    char name[96];
    ksafe_stats *st;

    snprintf(name, sizeof(name), "rdkafka-%s-consumer-joining.json",
             stats_versions[_i]);
    st = stats_parse_data(name);
    ck_assert_int_eq(st->partition_count, 0);
    ck_assert_str_eq(st->join_state, "wait-join");
    ck_assert_int_eq(st->assignment_size, 0);
    ck_assert_int_eq(st->rebalances, 0);
    /* no rebalance yet: librdkafka writes rebalance_age 0, which is no age */
    ck_assert_int_eq(st->rebalance_age_ms, U);
    ksafe_stats_free(st);
}
END_TEST

/* A producer: its queue, round trips; no group. */
START_TEST(producer_document)
{
    char name[96];
    ksafe_stats *st;
    size_t i;
    int rtt = 0;

    snprintf(name, sizeof(name), "rdkafka-%s-producer.json", stats_versions[_i]);
    st = stats_parse_data(name);
    ck_assert_str_eq(st->type, "producer");
    if (_i == 1) {
        ck_assert_int_eq(st->queue_messages, 151);
        ck_assert_int_eq(st->queue_bytes, 494);
    } else {
        ck_assert_int_eq(st->queue_messages, 0);
    }
    ck_assert_ptr_null(st->join_state);
    ck_assert(!ksafe_stats_known(st->rebalances));
    ck_assert(!ksafe_stats_known(st->assignment_size));
    for (i = 0; i < st->broker_count; i++) {
        const ksafe_stats_broker *b = &st->brokers[i];
        ck_assert_ptr_nonnull(b->name);
        if (ksafe_stats_known(b->rtt_avg_us)) {
            ck_assert(b->rtt_avg_us > 0);
            ck_assert(b->rtt_p99_us >= b->rtt_avg_us);
            rtt++;
        }
    }
    ck_assert_msg(rtt > 0, "no broker round trip in %s", name);
    ksafe_stats_free(st);
}
END_TEST

/* ---- fields missing, added, of another type ---------------------------- */

/* Each partition field deleted from a captured document: the document
 * still parses and exactly that value becomes unknown. */
START_TEST(each_partition_field_missing)
{
    static const struct {
        const char *key;
        size_t field;
    } fields[] = {
        {"hi_offset", offsetof(ksafe_stats_partition, high_watermark)},
        {"ls_offset", offsetof(ksafe_stats_partition, last_stable_offset)},
        {"committed_offset",
         offsetof(ksafe_stats_partition, committed_offset)},
    };
    char name[96];
    size_t len, f, i;
    char *doc;

    snprintf(name, sizeof(name), "rdkafka-%s-consumer-caught-up.json",
             stats_versions[_i]);
    doc = stats_read_data(name, &len);
    for (f = 0; f < sizeof(fields) / sizeof(*fields); f++) {
        json_t *root = json_loadb(doc, len, 0, NULL), *parts, *p;
        const char *key;
        ksafe_stats *st;
        char *text;

        ck_assert_ptr_nonnull(root);
        parts = json_object_get(json_object_get(json_object_get(root,
                                                                "topics"),
                                                "orders"),
                                "partitions");
        json_object_foreach(parts, key, p)
            json_object_del(p, fields[f].key);
        text = json_dumps(root, 0);
        st = stats_parse_text(text);
        ck_assert_int_eq(st->partition_count, 3);
        for (i = 0; i < st->partition_count; i++) {
            int64_t v;
            memcpy(&v, (char *)&st->partitions[i] + fields[f].field,
                   sizeof(v));
            ck_assert_msg(!ksafe_stats_known(v), "%s deleted, value %lld",
                          fields[f].key, (long long)v);
            /* the lag needs hi_offset and committed_offset */
            ck_assert_int_eq(ksafe_stats_known(st->partitions[i].lag),
                                 f == 1);
        }
        ksafe_stats_free(st);
        free(text);
        json_decref(root);
    }
    free(doc);
}
END_TEST

/* Every top-level member deleted in turn: no crash, and what it held is
 * unknown. */
START_TEST(each_top_level_member_missing)
{
    char name[96];
    size_t len;
    json_t *orig;
    const char *key;
    json_t *v;
    char *doc;

    snprintf(name, sizeof(name), "rdkafka-%s-consumer-midway.json",
             stats_versions[_i]);
    doc = stats_read_data(name, &len);
    orig = json_loadb(doc, len, 0, NULL);
    ck_assert_ptr_nonnull(orig);
    json_object_foreach(orig, key, v) {
        json_t *copy = json_deep_copy(orig);
        ksafe_stats *st;
        char *text;

        json_object_del(copy, key);
        text = json_dumps(copy, 0);
        st = stats_parse_text(text);
        if (strcmp(key, "topics") == 0)
            ck_assert_int_eq(st->partition_count, 0);
        if (strcmp(key, "brokers") == 0) {
            ck_assert_int_eq(st->broker_count, 0);
            ck_assert(!ksafe_stats_known(st->requests_in_flight));
        }
        if (strcmp(key, "cgrp") == 0) {
            ck_assert_ptr_null(st->join_state);
            ck_assert(!ksafe_stats_known(st->rebalances));
        }
        if (strcmp(key, "msg_cnt") == 0)
            ck_assert(!ksafe_stats_known(st->queue_messages));
        if (strcmp(key, "type") == 0)
            ck_assert_ptr_null(st->type);
        ksafe_stats_free(st);
        free(text);
        json_decref(copy);
    }
    json_decref(orig);
    free(doc);
}
END_TEST

START_TEST(empty_object_is_all_unknown)
{
    ksafe_stats *st = stats_parse_text("{}");

    ck_assert_ptr_null(st->type);
    ck_assert_ptr_null(st->name);
    ck_assert_int_eq(st->partition_count, 0);
    ck_assert_int_eq(st->broker_count, 0);
    ck_assert_int_eq(st->queue_messages, U);
    ck_assert_int_eq(st->queue_bytes, U);
    ck_assert_int_eq(st->requests_in_flight, U);
    ck_assert_int_eq(st->retries, U);
    ck_assert_int_eq(st->rebalances, U);
    ck_assert_int_eq(st->rebalance_age_ms, U);
    ck_assert_int_eq(st->assignment_size, U);
    ck_assert_int_eq(st->time_s, U);
    ksafe_stats_free(st);
}
END_TEST

/* Added members are ignored; members of another type, out of range or
 * librdkafka's "none" (-1001, -1) are unknown; partition -1 is skipped. */
START_TEST(odd_members)
{
    ksafe_stats *st = stats_parse_text(
        "{\"type\":7,\"future\":[1,{\"x\":null}],\"msg_cnt\":5.0,"
        "\"msg_size\":5.5,\"cgrp\":{\"rebalance_cnt\":\"3\","
        "\"assignment_size\":-1,\"join_state\":\"steady\",\"new\":{}},"
        "\"brokers\":{\"b1\":{\"nodeid\":1,\"outbuf_cnt\":2,"
        "\"waitresp_cnt\":3,\"txretries\":1,\"rtt\":{\"cnt\":0,\"avg\":0,"
        "\"p99\":0}},\"b2\":{\"outbuf_cnt\":1,\"waitresp_cnt\":true,"
        "\"rtt\":{\"cnt\":4,\"avg\":1500,\"p99\":9000}},\"b3\":[]},"
        "\"topics\":{\"t\":{\"partitions\":{\"-1\":{\"partition\":-1,"
        "\"hi_offset\":-1001},\"0\":{\"partition\":0,\"hi_offset\":10,"
        "\"committed_offset\":-1001,\"fetchq_cnt\":1e300},\"1\":{"
        "\"hi_offset\":7,\"committed_offset\":9},\"x\":{},\"2\":3}},"
        "\"u\":{\"topic\":\"renamed\",\"partitions\":[]},\"v\":null}}");
    const ksafe_stats_broker *b1, *b2;

    ck_assert_ptr_null(st->type);
    ck_assert_int_eq(st->queue_messages, 5);
    ck_assert_int_eq(st->queue_bytes, U);
    ck_assert_int_eq(st->rebalances, U);
    ck_assert_int_eq(st->assignment_size, U);
    ck_assert_str_eq(st->join_state, "steady");
    ck_assert_int_eq(st->broker_count, 2);
    b1 = strcmp(st->brokers[0].name, "b1") == 0 ? &st->brokers[0]
                                                : &st->brokers[1];
    b2 = b1 == &st->brokers[0] ? &st->brokers[1] : &st->brokers[0];
    ck_assert_int_eq(b1->node_id, 1);
    ck_assert_int_eq(b1->rtt_avg_us, U); /* no sample: not 0 */
    ck_assert_int_eq(b2->node_id, U);
    ck_assert_int_eq(b2->requests_in_flight, U);
    ck_assert_int_eq(b2->rtt_avg_us, 1500);
    ck_assert_int_eq(b2->rtt_p99_us, 9000);
    /* sums over the brokers that hold the field */
    ck_assert_int_eq(st->requests_queued, 3);
    ck_assert_int_eq(st->requests_in_flight, 3);
    ck_assert_int_eq(st->retries, 1);
    ck_assert_int_eq(st->partition_count, 2);
    ck_assert_int_eq(stats_part(st, 0)->high_watermark, 10);
    ck_assert_int_eq(stats_part(st, 0)->committed_offset, U);
    ck_assert_int_eq(stats_part(st, 0)->lag, U);
    ck_assert_int_eq(st->fetch_queue, U); /* 1e300: out of range */
    /* partition from its key; committed past the (older) watermark */
    ck_assert_int_eq(stats_part(st, 1)->lag, 0);
    ksafe_stats_free(st);
}
END_TEST

/* ---- garbage ----------------------------------------------------------- */

static void refused(const char *doc, size_t len)
{
    ksafe_stats *st = (ksafe_stats *)&st;
    ksafe_error err;
    int rc;

    memset(&err, 0, sizeof(err));
    rc = ksafe_stats_parse(&st, doc, len, &err);
    ck_assert_msg(rc == KSAFE_EINVAL, "%d for \"%.40s\" (%zu bytes)", rc, doc,
                  len);
    ck_assert_int_eq(err.code, KSAFE_EINVAL);
    ck_assert_ptr_null(st);
    ck_assert_msg(strstr(err.message, "statistics JSON"), "message \"%s\"",
                  err.message);
}

START_TEST(garbage_is_refused)
{
    static const char *const docs[] = {
        "", " ", "{", "}", "[1,2]", "null", "42", "\"consumer\"",
        "{\"a\":", "{\"a\" 1}", "{\"topics\":{\"t\":{\"partitions\":{",
        "\xff\xfe{}", "{\"a\":\"\xc3\x28\"}", "{} {}", "{\"a\":1e99999}",
        "{\"a\":123456789012345678901234567890}",
    };
    ksafe_stats *st = NULL;
    ksafe_error err;
    char *deep, *doc;
    size_t i, len;

    for (i = 0; i < sizeof(docs) / sizeof(*docs); i++)
        refused(docs[i], strlen(docs[i]));
    /* nested past jansson's depth limit */
    deep = malloc(200001);
    for (i = 0; i < 100000; i++) {
        deep[i] = '[';
        deep[200000 - 1 - i] = ']';
    }
    deep[200000] = '\0';
    refused(deep, 200000);
    free(deep);
    /* a captured document cut anywhere */
    doc = stats_read_data("rdkafka-2.15.1-consumer-midway.json", &len);
    while (len > 0 && (doc[len - 1] == '\n' || doc[len - 1] == ' '))
        len--;
    for (i = 0; i < len; i += 37)
        refused(doc, i);
    refused(doc, len - 1);
    /* a NUL inside */
    doc[len / 2] = '\0';
    refused(doc, len);
    free(doc);
    ck_assert_int_eq(ksafe_stats_parse(&st, "{", 1, NULL), KSAFE_EINVAL);
    ck_assert_ptr_null(st);
    ck_assert_int_eq(ksafe_stats_parse(NULL, "{}", 2, &err), KSAFE_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.message, "needs an out pointer"));
    ck_assert_int_eq(ksafe_stats_parse(&st, NULL, 0, &err), KSAFE_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.message, "and a document"));
    ck_assert_ptr_null(st);
    ck_assert_int_eq(ksafe_stats_parse(&st, NULL, 0, NULL), KSAFE_EINVAL);
    ksafe_stats_free(NULL);
}
END_TEST

/* ---- the consumer's options -------------------------------------------- */

static void no_stats(ksafe_consumer *c, const ksafe_stats *st, void *payload)
{
    (void)c;
    (void)st;
    (void)payload;
}

static int validate(int interval, ksafe_stats_cb cb, const char *raw,
                    ksafe_error *err)
{
    ksafe_consumer_options o = KSAFE_CONSUMER_OPTIONS_INIT;
    const char *props[] = {"statistics.interval.ms", raw, NULL};

    o.bootstrap_servers = "127.0.0.1:9";
    o.group_id = "g";
    o.statistics_interval_ms = interval;
    o.on_stats = cb;
    if (raw)
        o.rdkafka_properties = props;
    return ksafe_consumer_options_validate(&o, err);
}

START_TEST(options_are_checked)
{
    ksafe_consumer_options o;
    ksafe_error err;

    ck_assert_int_eq(ksafe_consumer_options_init(&o,
                                                 KSAFE_CONSUMER_OPTIONS_VERSION),
                     0);
    ck_assert_int_eq(o.statistics_interval_ms, 0);
    ck_assert_ptr_null(o.on_stats);
    ck_assert_ok(validate(0, NULL, NULL, &err), err);
    ck_assert_ok(validate(100, no_stats, NULL, &err), err);
    ck_assert_ok(validate(86400000, no_stats, NULL, &err), err);
    /* a JSON config sets the interval before code sets the callback */
    ck_assert_ok(validate(1000, NULL, NULL, &err), err);
    ck_assert_int_eq(validate(-1, no_stats, NULL, &err), KSAFE_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.message, "statistics_interval_ms is -1"));
    ck_assert_int_eq(validate(99, no_stats, NULL, &err), KSAFE_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.message, "below 100 ms"));
    ck_assert_int_eq(validate(86400001, no_stats, NULL, &err), KSAFE_EINVAL);
    ck_assert_int_eq(validate(0, no_stats, NULL, &err), KSAFE_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.message, "never be called"));
    ck_assert_int_eq(validate(0, NULL, "1000", &err), KSAFE_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.message, "typed statistics_interval_ms"));
}
END_TEST

typedef struct lines {
    int stats_warnings;
} lines;

static void count_lines(int level, const char *fac, const char *msg,
                        void *payload)
{
    lines *l = payload;

    if (level <= KSAFE_LOG_WARNING && strcmp(fac, "STATS") == 0 &&
        strstr(msg, "on_stats is NULL"))
        l->stats_warnings++;
}

/* The interval reaches librdkafka only with a callback to receive the
 * documents; without one, a warning says nothing is collected. */
START_TEST(interval_reaches_librdkafka)
{
    static const struct {
        int interval;
        ksafe_stats_cb cb;
        const char *conf;
        int warnings;
    } cases[] = {
        {1000, no_stats, "1000", 0},
        {1000, NULL, "0", 1},
        {0, NULL, "0", 0},
    };
    ksafe_consumer_options o = KSAFE_CONSUMER_OPTIONS_INIT;
    ksafe_consumer *c;
    ksafe_error err;
    lines l = {0};
    char value[32];
    size_t n = sizeof(value);

    o.bootstrap_servers = "127.0.0.1:9";
    o.group_id = "g";
    o.statistics_interval_ms = cases[_i].interval;
    o.on_stats = cases[_i].cb;
    o.log_cb = count_lines;
    o.log_payload = &l;
    ck_assert_ok(ksafe_consumer_new(&c, &o, &err), err);
    ck_assert_int_eq(rd_kafka_conf_get(rd_kafka_conf(ksafe_consumer_rdkafka(c)),
                                       "statistics.interval.ms", value, &n),
                     RD_KAFKA_CONF_OK);
    ck_assert_str_eq(value, cases[_i].conf);
    ck_assert_int_eq(l.stats_warnings, cases[_i].warnings);
    ksafe_consumer_free(c);
}
END_TEST

START_TEST(json_config_sets_the_interval)
{
    ksafe_consumer_options o;
    ksafe_config *cfg;
    ksafe_error err;

    ck_assert_ok(ksafe_config_load_string(&cfg,
                                          "{\"bootstrap_servers\":\"h:1\","
                                          "\"consumer\":{\"group_id\":\"g\","
                                          "\"statistics_interval_ms\":5000}}",
                                          &err),
                 err);
    ck_assert_ok(ksafe_config_consumer_options(cfg, &o, &err), err);
    ck_assert_int_eq(o.statistics_interval_ms, 5000);
    ksafe_config_free(cfg);
    ck_assert_ok(ksafe_config_load_string(&cfg,
                                          "{\"bootstrap_servers\":\"h:1\","
                                          "\"consumer\":{\"group_id\":\"g\","
                                          "\"statistics_interval_ms\":-5}}",
                                          &err),
                 err);
    ck_assert_int_eq(ksafe_config_consumer_options(cfg, &o, &err),
                     KSAFE_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.message, "statistics_interval_ms"));
    ksafe_config_free(cfg);
}
END_TEST

static Suite *stats_suite(void)
{
    Suite *s = suite_create("stats");
    const char *part = getenv("KSAFE_STATS_PART");
    TCase *tc_case;

    if (part && strcmp(part, "cluster") == 0) {
        suite_add_tcase(s, stats_cluster_tcase());
        return s;
    }
    tc_case = tcase_create("captured");
    tcase_add_loop_test(tc_case, caught_up_consumer, 0, 2);
    tcase_add_loop_test(tc_case, midway_consumer, 0, 2);
    tcase_add_loop_test(tc_case, joining_consumer, 0, 2);
    tcase_add_loop_test(tc_case, producer_document, 0, 2);
    suite_add_tcase(s, tc_case);

    tc_case = tcase_create("changed");
    tcase_add_loop_test(tc_case, each_partition_field_missing, 0, 2);
    tcase_add_loop_test(tc_case, each_top_level_member_missing, 0, 2);
    tcase_add_test(tc_case, empty_object_is_all_unknown);
    tcase_add_test(tc_case, odd_members);
    tcase_add_test(tc_case, garbage_is_refused);
    suite_add_tcase(s, tc_case);

    suite_add_tcase(s, stats_prometheus_tcase());

    tc_case = tcase_create("options");
    tcase_add_test(tc_case, options_are_checked);
    tcase_add_test(tc_case, json_config_sets_the_interval);
    tcase_add_loop_test(tc_case, interval_reaches_librdkafka, 0, 3);
    suite_add_tcase(s, tc_case);
    return s;
}

KSAFE_TEST_MAIN(stats_suite)
