/*
 * tests/test_bad_input_consumer.c - bad input to the consumer, its records
 * and the loop (the bad_input suite; rows of docs/bad-input.md).
 */
#include "bad_input.h"

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

static ksafe_handler_result ok_transform(const ksafe_message *msg,
                                         ksafe_relay_emitter *em,
                                         ksafe_error *err, void *payload)
{
    (void)msg;
    (void)em;
    (void)err;
    (void)payload;
    return KSAFE_HANDLER_OK;
}

/* A transactional producer whose transaction fits the offline consumer's
 * session, so the relay's timing check passes. */
static ksafe_producer *relay_producer(void)
{
    ksafe_producer_options o = KSAFE_PRODUCER_OPTIONS_INIT;
    ksafe_producer *p = NULL;
    ksafe_error err;

    o.bootstrap_servers = "127.0.0.1:1";
    o.transactional_id = "bad-input-relay";
    o.transaction_timeout_ms = 30000;
    o.delivery_timeout_ms = 30000;
    o.log_cb = test_quiet_log;
    ck_assert_ok(ksafe_producer_new(&p, &o, &err), err);
    return p;
}

START_TEST(relay_null_handles_and_bad_options)
{
    ksafe_consumer *c = offline_consumer();
    ksafe_producer *p = relay_producer();
    ksafe_relay_options o = KSAFE_RELAY_OPTIONS_INIT;

    o.transform = ok_transform;
    BAD(KSAFE_EINVAL, "consumer", ksafe_relay_run(NULL, p, &o, E));
    BAD(KSAFE_EINVAL, "producer", ksafe_relay_run(c, NULL, &o, E));
    BAD(KSAFE_EINVAL, "options", ksafe_relay_run(c, p, NULL, E));
    o.on_failure = KSAFE_FAILURE_DEAD_LETTER;
    BAD(KSAFE_EINVAL, "dead_letter_topic", ksafe_relay_run(c, p, &o, E));
    ksafe_producer_free(p);
    ksafe_consumer_free(c);
}
END_TEST

/* Refused at the start, not when the first record fails and its dead
 * letter cannot be written. */
START_TEST(relay_dead_letter_topic_of_300_characters)
{
    ksafe_consumer *c = offline_consumer();
    ksafe_producer *p = relay_producer();
    ksafe_relay_options o = KSAFE_RELAY_OPTIONS_INIT;

    make_long_topic();
    o.transform = ok_transform;
    o.on_failure = KSAFE_FAILURE_DEAD_LETTER;
    o.dead_letter_topic = long_topic;
    /* Should the options pass, the relay waits for the absent broker to
     * initialise transactions: the case's 10 s timeout fails it. */
    BAD(KSAFE_EINVAL, "249", ksafe_relay_run(c, p, &o, E));
    o.dead_letter_topic = "orders/dead";
    BAD(KSAFE_EINVAL, "dead_letter_topic", ksafe_relay_run(c, p, &o, E));
    ksafe_producer_free(p);
    ksafe_consumer_free(c);
}
END_TEST

void bad_input_consumer_cases(Suite *s)
{
    TCase *t;

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
    t = tcase_create("relay");
    tcase_set_timeout(t, 10);
    tcase_add_test(t, relay_null_handles_and_bad_options);
    tcase_add_test(t, relay_dead_letter_topic_of_300_characters);
    suite_add_tcase(s, t);
}
