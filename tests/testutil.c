/*
 * tests/testutil.c - cluster helpers shared by the integration suites.
 */
#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "testutil.h"

ksafe_test_cluster *tc;

int test_rdkafka_has_feature(const char *feature)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char features[512], *tok, *save = NULL;
    size_t size = sizeof(features);
    int found = 0;

    if (rd_kafka_conf_get(conf, "builtin.features", features, &size) ==
        RD_KAFKA_CONF_OK)
        for (tok = strtok_r(features, ",", &save); tok && !found;
             tok = strtok_r(NULL, ",", &save))
            found = strcmp(tok, feature) == 0;
    rd_kafka_conf_destroy(conf);
    return found;
}

int test_kip848(void)
{
    ksafe_group_protocol p;

    /* test_run() refused an unknown value before any case ran. */
    return ksafe_test_group_protocol(&p, NULL) == 0 &&
           p == KSAFE_GROUP_PROTOCOL_CONSUMER;
}

void test_group_fields(ksafe_test_cluster *tc, ksafe_consumer_options *o)
{
    ksafe_error err;

    ck_assert_ok(ksafe_test_consumer_group(
                     o,
                     ksafe_test_group_timing(ksafe_test_cluster_is_embedded(tc)),
                     &err),
                 err);
}

int test_session_ms(ksafe_test_cluster *tc)
{
    int embedded = ksafe_test_cluster_is_embedded(tc);

    if (test_kip848() && !embedded)
        return 45000; /* group.consumer.session.timeout.ms's default */
    return ksafe_test_group_timing(embedded).session_timeout_ms;
}

pid_t test_spawn_demo_worker(ksafe_test_cluster *tc, const char *worker,
                             const char *topic, const char *group,
                             const char *out, const char *stats,
                             int session_ms, int handler_us,
                             int commit_every)
{
    char session[16], us[16], every[16];
    pid_t pid;

    /* The argv of samples/demo.c's worker mode. */
    snprintf(session, sizeof(session), "%d", session_ms);
    snprintf(us, sizeof(us), "%d", handler_us);
    snprintf(every, sizeof(every), "%d", commit_every);
    pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* no orphans if the test dies */
        execl(worker, worker, "--worker", ksafe_test_cluster_bootstrap(tc),
              topic, group, out, stats, session, us, every,
              test_kip848() ? "consumer" : "classic", (char *)NULL);
        _exit(127);
    }
    ck_assert_int_gt(pid, 0);
    return pid;
}

/* Features a case may need: their tags are left out of the plain run. */
static const char *const feature_tags = TEST_NEEDS_ZSTD;

int test_run(Suite *s, int argc, char **argv)
{
    const char *bootstrap = getenv(KSAFE_TEST_BOOTSTRAP_ENV);
    int embedded = !bootstrap || !*bootstrap;
    const char *only = NULL;
    char needs[64];
    int wants_embedded = 0;
    ksafe_group_protocol protocol;
    ksafe_error err;
    SRunner *sr;
    int failed;

    if (ksafe_test_group_protocol(&protocol, &err)) {
        fprintf(stderr, "%s\n", err.message);
        srunner_free(srunner_create(s)); /* frees the suite */
        return EXIT_FAILURE;
    }

    if (argc == 2 && strcmp(argv[1], "--embedded-only") == 0) {
        only = TEST_EMBEDDED_ONLY;
        wants_embedded = 1;
    } else if (argc == 2 && strcmp(argv[1], "--real-only") == 0) {
        only = TEST_REAL_ONLY;
    } else if (argc == 3 && strcmp(argv[1], "--needs") == 0) {
        snprintf(needs, sizeof(needs), "needs-%s", argv[2]);
        if (!test_rdkafka_has_feature(argv[2])) {
            printf("SKIP: librdkafka %s is built without %s (its "
                   "builtin.features)\n",
                   rd_kafka_version_str(), argv[2]);
            srunner_free(srunner_create(s)); /* frees the suite */
            return 77;
        }
        sr = srunner_create(s);
        srunner_run_tagged(sr, NULL, NULL, needs, NULL, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed ? EXIT_FAILURE : EXIT_SUCCESS;
    } else if (argc != 1) {
        fprintf(stderr,
                "usage: %s [--embedded-only | --real-only | --needs "
                "<feature>]\n",
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
    /* Which librdkafka and protocol this run tested, for the logs. */
    printf("librdkafka %s (headers 0x%08x), group protocol %s\n",
           rd_kafka_version_str(), (unsigned)RD_KAFKA_VERSION,
           protocol == KSAFE_GROUP_PROTOCOL_CONSUMER ? "consumer (KIP-848)"
                                                     : "classic");
    sr = srunner_create(s);
    {
        char exclude[256];
        snprintf(exclude, sizeof(exclude), "%s %s %s", TEST_EMBEDDED_ONLY,
                 TEST_REAL_ONLY, feature_tags);
        srunner_run_tagged(sr, NULL, NULL, only, only ? feature_tags : exclude,
                           CK_NORMAL);
    }
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
