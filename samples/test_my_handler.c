/*
 * samples/test_my_handler.c - testing your own handler under faults, with
 * Check and ksafe's scenario kit (ksafe/scenario.h), nothing else.
 *
 *   test_my_handler [--bootstrap host:port]
 *
 * Copy this file next to your service's tests and replace my_handler()
 * with yours (or link your handler in). Each test reads
 * given / when / then. Without --bootstrap (or KSAFE_TEST_BOOTSTRAP) they
 * run on an embedded cluster in this process; on a real cluster the fault
 * tests are reported skipped (they need the embedded cluster's fault
 * injection) and the exit code is 77, the SKIP of meson and automake.
 */
#include <check.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <ksafe/ksafe.h>

/* ---- the code under test: your handler ----------------------------------- */

/* What my service's handler needs: a place for its effects, and (for the
 * second test) a record it refuses for good. */
typedef struct my_service {
    ksafe_test_records *effects; /* stands for your database */
    const char *poison;          /* a value the handler refuses */
} my_service;

static ksafe_handler_result my_handler(const ksafe_message *msg,
                                       ksafe_error *err, void *payload)
{
    my_service *svc = payload;
    size_t len;
    const char *value = ksafe_message_value(msg, &len);

    if (svc->poison && len == strlen(svc->poison) &&
        memcmp(value, svc->poison, len) == 0) {
        snprintf(err->message, sizeof(err->message), "cannot parse %.*s",
                 (int)len, value);
        return KSAFE_HANDLER_FAIL;
    }
    /* the effect (a database write takes about a millisecond), then OK:
     * the loop marks the record only after this */
    nanosleep(&(struct timespec){0, 1000000L}, NULL);
    if (ksafe_test_records_add_message(svc->effects, msg, err))
        return KSAFE_HANDLER_RETRY;
    return KSAFE_HANDLER_OK;
}

/* ---- the tests ----------------------------------------------------------- */

static ksafe_test_cluster *tc; /* three brokers when embedded */

static void cluster_up(void)
{
    ksafe_error err;
    if (ksafe_test_cluster_new_brokers(&tc, 3, &err)) {
        fprintf(stderr, "no test cluster: %s\n", err.message);
        exit(1);
    }
}

static void cluster_down(void)
{
    ksafe_test_cluster_free(tc);
}

/* Fixtures a test in this file shares: a topic with records, a consumer in
 * a group of its own, and the service. */
typedef struct given {
    char topic[96], group[96];
    ksafe_test_records *produced;
    my_service svc;
    ksafe_consumer_options co;
    ksafe_consumer *c;
    ksafe_loop_options lo;
    ksafe_test_loop *loop;
} given;

static void given_records(given *gv, int partitions, size_t count)
{
    const char *topic = gv->topic;
    ksafe_error err;

    memset(gv, 0, sizeof(*gv));
    ksafe_test_unique_name(gv->topic, sizeof(gv->topic), "orders");
    ksafe_test_unique_name(gv->group, sizeof(gv->group), "orders-service");
    ck_assert_msg(!ksafe_test_cluster_create_topic(tc, gv->topic, partitions,
                                                   &err) &&
                      !ksafe_test_records_new(&gv->produced, &err) &&
                      !ksafe_test_records_new(&gv->svc.effects, &err) &&
                      !ksafe_test_produce(tc, gv->topic, count, gv->produced,
                                          &err),
                  "given: %s", err.message);

    /* the consumer and loop settings of your service, on the test cluster */
    ksafe_test_cluster_consumer_options(tc, &gv->co, gv->group);
    ck_assert_msg(!ksafe_consumer_new(&gv->c, &gv->co, &err) &&
                      !ksafe_consumer_subscribe(gv->c, &topic, 1, &err),
                  "given: %s", err.message);
    ksafe_loop_options_init(&gv->lo, KSAFE_LOOP_OPTIONS_VERSION);
    gv->lo.handler = my_handler;
    gv->lo.payload = &gv->svc;
    gv->lo.max_attempts = 3;
    gv->lo.on_failure = KSAFE_FAILURE_STOP;
}

/* The test's fixtures, static: with CK_FORK=no a failed assertion leaves
 * the test function, and the teardown below must still find a loop that
 * is running, to stop it before the cluster and the service go away. */
static given g;

static void given_teardown(void)
{
    ksafe_error err;

    if (g.loop)
        ksafe_test_loop_stop(g.loop, NULL, &err);
    ksafe_consumer_free(g.c);
    ksafe_test_records_free(g.produced);
    ksafe_test_records_free(g.svc.effects);
    memset(&g, 0, sizeof(g));
}

static int handling_started(void *payload)
{
    return ksafe_test_records_distinct(payload) >= 100;
}

/* Given my handler, when a broker drops mid-batch, then every record was
 * handled and everything was committed once it was back. */
START_TEST(broker_drop_mid_batch_loses_nothing)
{
    ksafe_error err;
    int rc;

    if (!ksafe_test_cluster_is_embedded(tc))
        return; /* counted as skipped by main() */
    given_records(&g, 6, 2000);
    ck_assert_msg(!ksafe_test_loop_start(&g.loop, g.c, &g.lo, &err), "%s",
                  err.message);
    ck_assert_msg(!ksafe_test_wait_for(handling_started, g.svc.effects,
                                       g.loop, 60000, &err),
                  "given: %s", err.message);

    /* when: broker 2, now the group's coordinator, slows down, then drops,
     * while records are handled */
    ck_assert_msg(!ksafe_test_move_coordinator(tc, g.group, 2, &err) &&
                      !ksafe_test_set_rtt(tc, 2, 50, &err) &&
                      !ksafe_test_broker_outage(tc, 2, 2000, &err) &&
                      !ksafe_test_set_rtt(tc, 2, 0, &err),
                  "when: %s", err.message);
    ck_assert_msg(ksafe_test_records_distinct(g.svc.effects) < 2000,
                  "when: the handler was done before the broker dropped");

    /* then: every produced record reached my handler, and was committed */
    rc = ksafe_test_wait_records(g.produced, g.svc.effects, g.loop, 60000, &err);
    ck_assert_msg(rc == 0, "then: %s", err.message);
    rc = ksafe_test_wait_committed(tc, g.group, g.topic, g.produced, g.loop,
                                   60000, &err);
    ck_assert_msg(rc == 0, "then: %s", err.message);
    rc = ksafe_test_loop_stop(g.loop, NULL, &err);
    g.loop = NULL;
    ck_assert_msg(rc == 0, "the loop: %s", err.message);
}
END_TEST

/* Given my handler and a record it cannot parse, when the loop meets it,
 * then the loop stops, says why, and nothing at or past that record was
 * committed: a fixed handler will see it again. */
START_TEST(poison_record_stops_and_is_not_committed)
{
    ksafe_test_record poison;
    int64_t committed[1];
    ksafe_error err;
    int rc;

    given_records(&g, 1, 100);
    g.svc.poison = "value-42";
    ck_assert_msg(!ksafe_test_records_get(g.produced, 42, &poison, &err), "%s",
                  err.message);
    ck_assert_msg(!ksafe_test_loop_start(&g.loop, g.c, &g.lo, &err), "%s",
                  err.message);

    /* when: the loop gets to it (and ends) */
    rc = ksafe_test_wait_records(g.produced, g.svc.effects, g.loop, 60000, &err);
    ck_assert_int_eq(rc, KSAFE_ESTOPPED);
    rc = ksafe_test_loop_stop(g.loop, NULL, &err);
    g.loop = NULL;

    /* then */
    ck_assert_int_eq(rc, KSAFE_EHANDLER);
    ck_assert_msg(strstr(err.message, "cannot parse value-42"), "%s",
                  err.message);
    ck_assert_uint_eq(ksafe_test_records_distinct(g.svc.effects), 42);
    ck_assert_msg(!ksafe_test_committed(tc, g.group, g.topic, committed, 1,
                                        10000, &err),
                  "%s", err.message);
    ck_assert_int_le(committed[0], poison.offset);
}
END_TEST

int main(int argc, char **argv)
{
    Suite *s = suite_create("my_handler");
    TCase *t = tcase_create("faults");
    SRunner *sr;
    int failed, embedded;

    if (argc == 3 && strcmp(argv[1], "--bootstrap") == 0)
        setenv(KSAFE_TEST_BOOTSTRAP_ENV, argv[2], 1);
    else if (argc != 1) {
        fprintf(stderr, "usage: %s [--bootstrap host:port]\n", argv[0]);
        return 2;
    }
    /* librdkafka's threads do not survive fork(): one process, no fork */
    setenv("CK_FORK", "no", 0);
    cluster_up();
    embedded = ksafe_test_cluster_is_embedded(tc);
    tcase_set_timeout(t, 180);
    tcase_add_checked_fixture(t, NULL, given_teardown);
    tcase_add_test(t, broker_drop_mid_batch_loses_nothing);
    tcase_add_test(t, poison_record_stops_and_is_not_committed);
    suite_add_tcase(s, t);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    cluster_down();
    if (failed)
        return 1;
    if (!embedded) {
        fprintf(stderr, "SKIP: broker_drop_mid_batch_loses_nothing needs the "
                        "embedded cluster\n");
        return 77;
    }
    return 0;
}
