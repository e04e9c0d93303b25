/*
 * tests/testutil.c - cluster helpers shared by the integration suites.
 */
#include "testutil.h"

ksafe_test_cluster *tc;

int test_run(Suite *s, int argc, char **argv)
{
    const char *bootstrap = getenv(KSAFE_TEST_BOOTSTRAP_ENV);
    int embedded = !bootstrap || !*bootstrap;
    const char *only = NULL;
    int wants_embedded = 0;
    SRunner *sr;
    int failed;

    if (argc == 2 && strcmp(argv[1], "--embedded-only") == 0) {
        only = TEST_EMBEDDED_ONLY;
        wants_embedded = 1;
    } else if (argc == 2 && strcmp(argv[1], "--real-only") == 0) {
        only = TEST_REAL_ONLY;
    } else if (argc != 1) {
        fprintf(stderr, "usage: %s [--embedded-only | --real-only]\n",
                argv[0]);
        srunner_free(srunner_create(s)); /* frees the suite */
        return EXIT_FAILURE;
    }
    if (only && wants_embedded != embedded) {
        printf("SKIP: these cases need %s\n",
               embedded ? "a real cluster (set " KSAFE_TEST_BOOTSTRAP_ENV ")"
                        : "the embedded cluster's fault injection");
        srunner_free(srunner_create(s)); /* frees the suite */
        return 77;
    }
    sr = srunner_create(s);
    srunner_run_tagged(sr, NULL, NULL, only,
                       only ? NULL : TEST_EMBEDDED_ONLY " " TEST_REAL_ONLY,
                       CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

void test_cluster_up(void)
{
    ksafe_error err;
    ck_assert_ok(ksafe_test_cluster_new(&tc, &err), err);
}

void test_cluster_down(void)
{
    ksafe_test_cluster_free(tc);
    tc = NULL;
}

typedef struct reports {
    int delivered, failed;
} reports;

static void count_delivery(const ksafe_delivery *d, void *payload)
{
    reports *r = payload;
    if (d->error)
        r->failed++;
    else
        r->delivered++;
}

void test_produce(ksafe_test_cluster *tc, const char *topic, int from, int to)
{
    ksafe_producer_options o;
    ksafe_producer *p;
    ksafe_error err;
    reports r = {0, 0};
    int i;

    ksafe_test_cluster_producer_options(tc, &o);
    o.on_delivery = count_delivery;
    o.delivery_payload = &r;
    ck_assert_ok(ksafe_producer_new(&p, &o, &err), err);
    for (i = from; i < to; i++) {
        char key[32], value[32];
        ksafe_record rec = KSAFE_RECORD_INIT;
        snprintf(key, sizeof(key), "key-%d", i % 10);
        snprintf(value, sizeof(value), "value-%d", i);
        rec.topic = topic;
        rec.key = key;
        rec.key_len = strlen(key);
        rec.value = value;
        rec.value_len = strlen(value);
        ck_assert_ok(ksafe_producer_send(p, &rec, &err), err);
    }
    ck_assert_ok(ksafe_producer_flush(p, 30000, &err), err);
    ck_assert_int_eq(r.delivered, to - from);
    ck_assert_int_eq(r.failed, 0);
    ck_assert_ok(ksafe_producer_close(p, &err), err);
    ksafe_producer_free(p);
}

int test_value_index(const ksafe_message *m)
{
    size_t len;
    const char *v = ksafe_message_value(m, &len);
    char buf[32];
    int i;

    ck_assert_int_lt(len, sizeof(buf));
    memcpy(buf, v, len);
    buf[len] = '\0';
    ck_assert_int_eq(sscanf(buf, "value-%d", &i), 1);
    return i;
}

void test_committed(ksafe_test_cluster *tc, const char *topic,
                    const char *group, int partitions, int64_t *out)
{
    ksafe_consumer_options o;
    rd_kafka_topic_partition_list_t *l;
    ksafe_consumer *c;
    ksafe_error err;
    int i;

    ksafe_test_cluster_consumer_options(tc, &o, group);
    o.log_cb = test_quiet_log;
    ck_assert_ok(ksafe_consumer_new(&c, &o, &err), err);
    l = rd_kafka_topic_partition_list_new(partitions);
    for (i = 0; i < partitions; i++)
        rd_kafka_topic_partition_list_add(l, topic, i);
    ck_assert_int_eq(rd_kafka_committed(ksafe_consumer_rdkafka(c), l, 10000),
                     0);
    for (i = 0; i < l->cnt; i++)
        out[l->elems[i].partition] = l->elems[i].offset;
    rd_kafka_topic_partition_list_destroy(l);
    ksafe_consumer_free(c);
}

ksafe_consumer *test_subscribed(ksafe_test_cluster *tc, const char *topic,
                                const char *group)
{
    ksafe_consumer_options o;
    ksafe_consumer *c;
    ksafe_error err;

    ksafe_test_cluster_consumer_options(tc, &o, group);
    o.log_cb = test_quiet_log;
    ck_assert_ok(ksafe_consumer_new(&c, &o, &err), err);
    ck_assert_ok(ksafe_consumer_subscribe(c, &topic, 1, &err), err);
    return c;
}

/* Runs .ci/postgres.sh restart: the server stops (cutting every
 * connection) and starts again on the same port. */
void test_pg_restart(void)
{
    const char *script = getenv("KSAFE_PG_SCRIPT");
    char cmd[700];

    ck_assert_msg(script && *script, "KSAFE_PG_SCRIPT is not set");
    snprintf(cmd, sizeof(cmd), "bash '%s' restart >/dev/null 2>&1", script);
    ck_assert_msg(system(cmd) == 0,
                  "%s restart failed: is KSAFE_PG_DIR the directory of the "
                  "server KSAFE_TEST_PG names?",
                  script);
}
