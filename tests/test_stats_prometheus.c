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
    ck_assert_ptr_null(text);
    loop_counts(&ls);
    ck_assert_int_eq(ksafe_stats_prometheus(NULL, NULL, &ls, &err),
                     KSAFE_EINVAL);
    ck_assert_ok(ksafe_stats_prometheus(&text, NULL, &ls, &err), err);
    stats_check_exposition(text);
    ck_assert_ptr_nonnull(strstr(text, "ksafe_loop_polled_total 120\n"));
    free(text);
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
    return t;
}
