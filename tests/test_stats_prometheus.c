/*
 * tests/test_stats_prometheus.c - ksafe_stats_prometheus(): the text of
 * captured and made-up stats under the strict checker of stats_kit.c
 * (which is first shown refusing bad text), the series exporters use,
 * unknown values left out, escapes and units.
 */
#include "stats_kit.h"

/* The checker takes good text (and, below, refuses bad). */
START_TEST(checker_refuses_bad_text)
{
    /* one good text as a baseline */
    stats_check_exposition("# HELP a_total x\n# TYPE a_total counter\n"
                     "a_total{l=\"\\\"\\\\\\n\"} 1\n");
}
END_TEST

static const char *const bad_texts[] = {
    "a 1\n",                                              /* no HELP/TYPE */
    "# HELP a x\n# TYPE a gauge\na{l=\"\\t\"} 1\n",      /* bad escape */
    "# HELP a x\n# TYPE a gauge\na{1l=\"v\"} 1\n",       /* label name */
    "# HELP a x\n# TYPE a gauge\na 1\na 2\n",            /* duplicate */
    "# HELP a x\n# TYPE a summary\na 1\n",               /* type */
    "# HELP a x\n# TYPE a gauge\na one\n",               /* value */
    "# HELP a x\n# TYPE a gauge\n# HELP b x\n# TYPE b gauge\nb 1\n",
    "# HELP a x\n# TYPE a gauge\na 1",                    /* no final LF */
    "# HELP a x\n# TYPE a gauge\n# HELP b x\n# TYPE b gauge\na 1\nb 1\na{x=\"y\"} 2\n",
    "# HELP a x\n# TYPE a counter\na 1\n",               /* no _total */
};

START_TEST(checker_refuses)
{
    char why[2048];

    ck_assert_msg(stats_prom_problem(bad_texts[_i], why, sizeof(why)),
                  "the checker took:\n%s", bad_texts[_i]);
}
END_TEST

static void loop_counts(ksafe_loop_stats *ls)
{
    memset(ls, 0, sizeof(*ls));
    ls->polled = 120;
    ls->processed = 117;
    ls->retries = 4;
    ls->failed = 1;
    ls->dead_lettered = 1;
    ls->commits = 9;
}

START_TEST(prometheus_caught_up)
{
    char name[96];
    ksafe_stats *st;
    ksafe_loop_stats ls;
    ksafe_error err;
    char *text;

    snprintf(name, sizeof(name), "rdkafka-%s-consumer-caught-up.json",
             stats_versions[_i]);
    st = stats_parse_data(name);
    st->group_id = "billing";
    loop_counts(&ls);
    ck_assert_ok(ksafe_stats_prometheus(&text, st, &ls, &err), err);
    stats_check_exposition(text);
    ck_assert_ptr_nonnull(strstr(text, "\nkafka_consumergroup_lag{"
                                       "consumergroup=\"billing\","
                                       "topic=\"orders\",partition=\"1\"} 0\n"));
    ck_assert_ptr_nonnull(strstr(text, "\nkafka_consumergroup_current_offset{"
                                       "consumergroup=\"billing\","
                                       "topic=\"orders\",partition=\"2\"} "
                                       "100\n"));
    ck_assert_ptr_nonnull(strstr(text, "\nkafka_topic_partition_current_offset"
                                       "{topic=\"orders\",partition=\"0\"} "
                                       "100\n"));
    ck_assert_ptr_nonnull(strstr(text, "\nksafe_loop_processed_total 117\n"));
    ck_assert_ptr_nonnull(strstr(text, "\nksafe_loop_dead_lettered_total 1\n"));
    ck_assert_ptr_nonnull(strstr(text, "# TYPE ksafe_loop_commits_total "
                                       "counter\n"));
    ck_assert_ptr_nonnull(strstr(text, "ksafe_consumergroup_join_state{"));
    ck_assert_ptr_nonnull(strstr(text, "state=\"steady\"} 1\n"));
    ck_assert_ptr_nonnull(strstr(text, "\nksafe_consumergroup_assigned_"
                                       "partitions{"));
    /* unknown everywhere: no family at all, not a 0 */
    ck_assert_ptr_null(strstr(text, "processed_lag"));
    ck_assert_ptr_null(strstr(text, "marked_offset"));
    ck_assert_ptr_null(strstr(text, "partition=\"-1\""));
    free(text);
    ksafe_stats_free(st);
}
END_TEST

/* An unknown lag is left out; a known one next to it stays. */
START_TEST(prometheus_leaves_out_unknown)
{
    ksafe_stats *st = stats_parse_data("rdkafka-2.15.1-consumer-midway.json");
    ksafe_error err;
    char *text;

    st->group_id = "g";
    ck_assert_ok(ksafe_stats_prometheus(&text, st, NULL, &err), err);
    stats_check_exposition(text);
    ck_assert_ptr_nonnull(strstr(text, "kafka_consumergroup_lag{consumergroup="
                                       "\"g\",topic=\"orders\",partition="
                                       "\"1\"} 50\n"));
    ck_assert_ptr_null(strstr(text, "kafka_consumergroup_lag{consumergroup="
                                    "\"g\",topic=\"orders\",partition=\"2\"}"));
    ck_assert_ptr_null(strstr(text, "ksafe_loop_"));
    free(text);
    ksafe_stats_free(st);
}
END_TEST

/* Label values with \, " and a line feed; rtt in seconds; a producer. */
START_TEST(prometheus_escapes_and_units)
{
    ksafe_stats *st = stats_parse_text(
        "{\"type\":\"producer\",\"name\":\"a\\\\b\\\"c\\nd\",\"msg_cnt\":3,"
        "\"brokers\":{\"x\":{\"name\":\"h:1/1\",\"rtt\":{\"cnt\":2,"
        "\"avg\":1500,\"p99\":2000001}}},\"topics\":{\"t\\\"q\":{"
        "\"partitions\":{\"0\":{\"hi_offset\":4}}}}}");
    ksafe_error err;
    char *text;

    ck_assert_ok(ksafe_stats_prometheus(&text, st, NULL, &err), err);
    stats_check_exposition(text);
    ck_assert_ptr_nonnull(strstr(text, "ksafe_producer_queue_messages{client="
                                       "\"a\\\\b\\\"c\\nd\"} 3\n"));
    ck_assert_ptr_nonnull(strstr(text, "ksafe_broker_rtt_avg_seconds{client="
                                       "\"a\\\\b\\\"c\\nd\",broker=\"h:1/1\"} "
                                       "0.001500\n"));
    ck_assert_ptr_nonnull(strstr(text, "ksafe_broker_rtt_p99_seconds{client="
                                       "\"a\\\\b\\\"c\\nd\",broker=\"h:1/1\"} "
                                       "2.000001\n"));
    ck_assert_ptr_nonnull(strstr(text, "kafka_topic_partition_current_offset"
                                       "{topic=\"t\\\"q\",partition=\"0\"} "
                                       "4\n"));
    /* no group: no group series, and no consumergroup label */
    ck_assert_ptr_null(strstr(text, "consumergroup=\""));
    ck_assert_ptr_null(strstr(text, "kafka_consumergroup_lag"));
    free(text);
    ksafe_stats_free(st);
}
END_TEST

START_TEST(prometheus_bad_arguments)
{
    ksafe_loop_stats ls;
    ksafe_error err;
    char *text = (char *)&text;

    ck_assert_int_eq(ksafe_stats_prometheus(&text, NULL, NULL, &err),
                     KSAFE_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.message, "stats, loop counters or both"));
    ck_assert_ptr_null(text);
    ck_assert_int_eq(ksafe_stats_prometheus(&text, NULL, NULL, NULL),
                     KSAFE_EINVAL);
    loop_counts(&ls);
    ck_assert_int_eq(ksafe_stats_prometheus(NULL, NULL, &ls, &err),
                     KSAFE_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.message, "needs an out pointer"));
    ck_assert_ok(ksafe_stats_prometheus(&text, NULL, &ls, &err), err);
    stats_check_exposition(text);
    ck_assert_ptr_nonnull(strstr(text, "ksafe_loop_polled_total 120\n"));
    free(text);
}
END_TEST

/* The fetch queue is the consumer's one queue (librdkafka forwards every
 * partition's fetch queue to it and writes its length on each partition):
 * one per-client series, none per partition. */
START_TEST(prometheus_fetch_queue_per_client)
{
    static const char *const lengths[] = {"150", "147"};
    char name[96], expect[160];
    ksafe_stats *st;
    ksafe_error err;
    char *text;

    snprintf(name, sizeof(name), "rdkafka-%s-consumer-midway.json",
             stats_versions[_i]);
    st = stats_parse_data(name);
    ck_assert_ok(ksafe_stats_prometheus(&text, st, NULL, &err), err);
    stats_check_exposition(text);
    ck_assert_msg(!strstr(text, "ksafe_consumer_fetch_queue_messages{topic="),
                  "a per-partition fetch queue: %.200s",
                  strstr(text, "ksafe_consumer_fetch_queue_messages{topic="));
    snprintf(expect, sizeof(expect),
             "\nksafe_consumer_fetch_queue_messages{client=\"%s\"} %s\n",
             st->name, lengths[_i]);
    ck_assert_msg(strstr(text, expect), "no \"%s\"", expect);
    free(text);
    ksafe_stats_free(st);
}
END_TEST

/* A partition no longer assigned to this member keeps the values of its
 * last fetch: rendered, they would be a lag that never moves (and the
 * member it went to counts it too). */
START_TEST(prometheus_leaves_out_unassigned)
{
    ksafe_stats *st = stats_parse_data("rdkafka-2.15.1-consumer-midway.json");
    ksafe_error err;
    char *text;
    size_t i;

    st->group_id = "g";
    for (i = 0; i < st->partition_count; i++)
        st->partitions[i].assigned = st->partitions[i].partition != 1;
    ck_assert_ok(ksafe_stats_prometheus(&text, st, NULL, &err), err);
    stats_check_exposition(text);
    ck_assert_msg(!strstr(text, "partition=\"1\""),
                  "the unassigned partition 1 rendered: %.200s",
                  strstr(text, "partition=\"1\""));
    ck_assert_ptr_nonnull(strstr(text, "kafka_consumergroup_lag{consumergroup="
                                       "\"g\",topic=\"orders\",partition="
                                       "\"0\"} 0\n"));
    ck_assert_ptr_nonnull(strstr(text, "kafka_topic_partition_current_offset"
                                       "{topic=\"orders\",partition=\"2\"} "
                                       "100\n"));
    free(text);
    ksafe_stats_free(st);
}
END_TEST

/* Before the first rebalance: no rebalance age (librdkafka writes 0); a
 * consumer has no producer queue (librdkafka writes msg_cnt 0). */
START_TEST(prometheus_joining_leaves_out_what_is_not)
{
    char name[96];
    ksafe_stats *st;
    ksafe_error err;
    char *text;

    snprintf(name, sizeof(name), "rdkafka-%s-consumer-joining.json",
             stats_versions[_i]);
    st = stats_parse_data(name);
    ck_assert_ok(ksafe_stats_prometheus(&text, st, NULL, &err), err);
    stats_check_exposition(text);
    ck_assert_msg(!strstr(text, "rebalance_age"), "%.200s",
                  strstr(text, "rebalance_age"));
    ck_assert_msg(!strstr(text, "ksafe_producer_queue"), "%.200s",
                  strstr(text, "ksafe_producer_queue"));
    ck_assert_ptr_nonnull(strstr(text, "ksafe_consumergroup_rebalances_total{"));
    free(text);
    ksafe_stats_free(st);
    /* a producer's page keeps its queue */
    snprintf(name, sizeof(name), "rdkafka-%s-producer.json",
             stats_versions[_i]);
    st = stats_parse_data(name);
    ck_assert_ok(ksafe_stats_prometheus(&text, st, NULL, &err), err);
    ck_assert_ptr_nonnull(strstr(text, "\nksafe_producer_queue_messages{"));
    free(text);
    ksafe_stats_free(st);
}
END_TEST

/* Hostile documents naming one partition or broker twice (two topic keys
 * with one "topic", "0" and "00", a "partition" member against its key, a
 * broker's "name" against another's key): the first one counts, so no
 * series is written twice. */
static const char *const duplicate_docs[] = {
    "{\"topics\":{\"a\":{\"topic\":\"x\",\"partitions\":{\"0\":{"
    "\"hi_offset\":5}}},\"b\":{\"topic\":\"x\",\"partitions\":{\"0\":{"
    "\"hi_offset\":7}}}}}",
    "{\"topics\":{\"x\":{\"partitions\":{\"0\":{\"hi_offset\":5},\"00\":{"
    "\"hi_offset\":6},\" 0\":{\"hi_offset\":8},\"1\":{\"partition\":0,"
    "\"hi_offset\":9}}}}}",
    "{\"brokers\":{\"a\":{\"name\":\"b\",\"rtt\":{\"cnt\":1,\"avg\":5}},"
    "\"b\":{\"rtt\":{\"cnt\":1,\"avg\":6}}}}",
};

START_TEST(prometheus_no_duplicate_series)
{
    ksafe_stats *st = stats_parse_text(duplicate_docs[_i]);
    ksafe_error err;
    char *text;

    ck_assert_ok(ksafe_stats_prometheus(&text, st, NULL, &err), err);
    stats_check_exposition(text);
    if (_i < 2) {
        ck_assert_int_eq(st->partition_count, 1);
        ck_assert_int_eq(st->partitions[0].high_watermark, 5);
    } else {
        ck_assert_int_eq(st->broker_count, 1);
        ck_assert_int_eq(st->brokers[0].rtt_avg_us, 5);
    }
    free(text);
    ksafe_stats_free(st);
}
END_TEST

TCase *stats_prometheus_tcase(void)
{
    TCase *t = tcase_create("prometheus");

    tcase_add_test(t, checker_refuses_bad_text);
    tcase_add_loop_test(t, checker_refuses, 0,
                        (int)(sizeof(bad_texts) / sizeof(*bad_texts)));
    tcase_add_loop_test(t, prometheus_caught_up, 0, 2);
    tcase_add_test(t, prometheus_leaves_out_unknown);
    tcase_add_test(t, prometheus_escapes_and_units);
    tcase_add_test(t, prometheus_bad_arguments);
    tcase_add_loop_test(t, prometheus_fetch_queue_per_client, 0, 2);
    tcase_add_test(t, prometheus_leaves_out_unassigned);
    tcase_add_loop_test(t, prometheus_joining_leaves_out_what_is_not, 0, 2);
    tcase_add_loop_test(t, prometheus_no_duplicate_series, 0,
                        (int)(sizeof(duplicate_docs) /
                              sizeof(*duplicate_docs)));
    return t;
}
