/*
 * tests/test_options.c - typed options: the safe preset, validation, the
 * mapping to librdkafka properties (read back from the created handle), the
 * unsafe-override guard, logging and secrets.
 */
#include "testutil.h"

#define BOOT "127.0.0.1:1"

/* The value librdkafka holds for `key` in the handle's own configuration. */
static const char *prop(rd_kafka_t *rk, const char *key)
{
    static char buf[512];
    size_t size = sizeof(buf);

    if (rd_kafka_conf_get(rd_kafka_conf(rk), key, buf, &size) !=
        RD_KAFKA_CONF_OK)
        return "<unknown>";
    return buf;
}

static ksafe_producer_options popts(void)
{
    ksafe_producer_options o = KSAFE_PRODUCER_OPTIONS_INIT;
    o.bootstrap_servers = BOOT;
    o.log_cb = test_quiet_log;
    return o;
}

static ksafe_consumer_options copts(void)
{
    ksafe_consumer_options o = KSAFE_CONSUMER_OPTIONS_INIT;
    o.bootstrap_servers = BOOT;
    o.group_id = "g";
    o.log_cb = test_quiet_log;
    return o;
}

/* ---- preset ------------------------------------------------------------ */

START_TEST(init_function_equals_init_macro)
{
    ksafe_producer_options a = KSAFE_PRODUCER_OPTIONS_INIT, b;
    ksafe_consumer_options c = KSAFE_CONSUMER_OPTIONS_INIT, d;

    memset(&b, 0x7f, sizeof(b));
    memset(&d, 0x7f, sizeof(d));
    ck_assert_int_eq(ksafe_producer_options_init(&b, 1), 0);
    ck_assert_int_eq(ksafe_consumer_options_init(&d, 1), 0);
    ck_assert_mem_eq(&a.max_in_flight, &b.max_in_flight, sizeof(int) * 3);
    ck_assert_int_eq(b.version, KSAFE_PRODUCER_OPTIONS_VERSION);
    ck_assert_int_eq(d.version, KSAFE_CONSUMER_OPTIONS_VERSION);
    ck_assert_int_eq(c.session_timeout_ms, d.session_timeout_ms);
    ck_assert_int_eq(c.auto_offset_reset, KSAFE_OFFSET_RESET_EARLIEST);
    ck_assert_int_eq(d.auto_offset_reset, KSAFE_OFFSET_RESET_EARLIEST);
    ck_assert_int_eq(d.assignment_strategy, KSAFE_ASSIGN_COOPERATIVE_STICKY);
    ck_assert_int_eq(d.allow_unsafe, 0);
    ck_assert_int_eq(ksafe_producer_options_init(&b, 2), KSAFE_EVERSION);
    ck_assert_int_eq(ksafe_consumer_options_init(&d, 0), KSAFE_EVERSION);
    ck_assert_int_eq(ksafe_producer_options_init(NULL, 1), KSAFE_EINVAL);
}
END_TEST

START_TEST(producer_preset_maps_to_safe_properties)
{
    ksafe_producer_options o = popts();
    ksafe_producer *p;
    ksafe_error err;
    rd_kafka_t *rk;

    ck_assert_ok(ksafe_producer_new(&p, &o, &err), err);
    rk = ksafe_producer_rdkafka(p);
    ck_assert_str_eq(prop(rk, "bootstrap.servers"), BOOT);
    ck_assert_str_eq(prop(rk, "enable.idempotence"), "true");
    ck_assert_str_eq(prop(rk, "acks"), "-1");
    ck_assert_str_eq(prop(rk, "max.in.flight.requests.per.connection"), "5");
    ck_assert_str_eq(prop(rk, "delivery.timeout.ms"), "120000");
    ck_assert_str_eq(prop(rk, "linger.ms"), "5");
    ck_assert_str_eq(prop(rk, "compression.type"), "none");
    ck_assert_str_eq(prop(rk, "security.protocol"), "plaintext");
    ksafe_producer_free(p);
}
END_TEST

START_TEST(consumer_preset_maps_to_safe_properties)
{
    ksafe_consumer_options o = copts();
    ksafe_consumer *c;
    ksafe_error err;
    rd_kafka_t *rk;

    ck_assert_ok(ksafe_consumer_new(&c, &o, &err), err);
    rk = ksafe_consumer_rdkafka(c);
    ck_assert_str_eq(prop(rk, "group.id"), "g");
    ck_assert_str_eq(prop(rk, "enable.auto.commit"), "false");
    ck_assert_str_eq(prop(rk, "enable.auto.offset.store"), "false");
    ck_assert_str_eq(prop(rk, "isolation.level"), "read_committed");
    ck_assert_str_eq(prop(rk, "partition.assignment.strategy"),
                     "cooperative-sticky");
    ck_assert_str_eq(prop(rk, "auto.offset.reset"), "smallest");
    ck_assert_str_eq(prop(rk, "session.timeout.ms"), "45000");
    ck_assert_str_eq(prop(rk, "heartbeat.interval.ms"), "3000");
    ck_assert_str_eq(prop(rk, "max.poll.interval.ms"), "300000");
    ck_assert_str_eq(prop(rk, "group.instance.id"), "<unknown>"); /* unset */
    ksafe_consumer_free(c);
}
END_TEST

/* Every typed field lands on exactly its property. */
START_TEST(typed_producer_fields_map_one_to_one)
{
    ksafe_producer_options o = popts();
    ksafe_producer *p;
    ksafe_error err;
    rd_kafka_t *rk;

    o.client_id = "billing";
    o.max_in_flight = 3;
    o.delivery_timeout_ms = 30000;
    o.linger_ms = 20;
    o.compression = KSAFE_COMPRESSION_LZ4;
    o.transactional_id = "billing-tx";
    o.transaction_timeout_ms = 45000;
    o.security_protocol = KSAFE_SECURITY_SASL_PLAINTEXT;
    o.sasl_mechanism = KSAFE_SASL_SCRAM_SHA_512;
    o.sasl_username = "alice";
    o.sasl_password = "s3cret-pw";
    ck_assert_ok(ksafe_producer_new(&p, &o, &err), err);
    rk = ksafe_producer_rdkafka(p);
    ck_assert_str_eq(prop(rk, "client.id"), "billing");
    ck_assert_str_eq(prop(rk, "max.in.flight.requests.per.connection"), "3");
    ck_assert_str_eq(prop(rk, "delivery.timeout.ms"), "30000");
    ck_assert_str_eq(prop(rk, "linger.ms"), "20");
    ck_assert_str_eq(prop(rk, "compression.type"), "lz4");
    ck_assert_str_eq(prop(rk, "transactional.id"), "billing-tx");
    ck_assert_str_eq(prop(rk, "transaction.timeout.ms"), "45000");
    ck_assert_str_eq(prop(rk, "security.protocol"), "sasl_plaintext");
    ck_assert_str_eq(prop(rk, "sasl.mechanisms"), "SCRAM-SHA-512");
    ck_assert_str_eq(prop(rk, "sasl.username"), "alice");
    ksafe_producer_free(p);
}
END_TEST

START_TEST(typed_consumer_fields_map_one_to_one)
{
    ksafe_consumer_options o = copts();
    ksafe_consumer *c;
    ksafe_error err;
    rd_kafka_t *rk;

    o.group_instance_id = "host-a-1";
    o.auto_offset_reset = KSAFE_OFFSET_RESET_LATEST;
    o.assignment_strategy = KSAFE_ASSIGN_RANGE;
    o.session_timeout_ms = 30000;
    o.heartbeat_interval_ms = 10000;
    o.max_poll_interval_ms = 60000;
    ck_assert_ok(ksafe_consumer_new(&c, &o, &err), err);
    rk = ksafe_consumer_rdkafka(c);
    ck_assert_str_eq(prop(rk, "group.instance.id"), "host-a-1");
    ck_assert_str_eq(prop(rk, "auto.offset.reset"), "largest");
    ck_assert_str_eq(prop(rk, "partition.assignment.strategy"), "range");
    ck_assert_str_eq(prop(rk, "session.timeout.ms"), "30000");
    ck_assert_str_eq(prop(rk, "heartbeat.interval.ms"), "10000");
    ck_assert_str_eq(prop(rk, "max.poll.interval.ms"), "60000");
    ksafe_consumer_free(c);

    o = copts();
    o.auto_offset_reset = KSAFE_OFFSET_RESET_ERROR;
    o.assignment_strategy = KSAFE_ASSIGN_ROUNDROBIN;
    ck_assert_ok(ksafe_consumer_new(&c, &o, &err), err);
    rk = ksafe_consumer_rdkafka(c);
    ck_assert_str_eq(prop(rk, "auto.offset.reset"), "error");
    ck_assert_str_eq(prop(rk, "partition.assignment.strategy"), "roundrobin");
    ksafe_consumer_free(c);
}
END_TEST

/* ---- validation -------------------------------------------------------- */

/* Expects `code` and a message containing `needle`. */
#define EXPECT_PRODUCER_ERROR(o, code_, needle)                              \
    do {                                                                     \
        ksafe_producer *p_ = (ksafe_producer *)1;                            \
        ksafe_error e_;                                                      \
        ck_assert_int_eq(ksafe_producer_new(&p_, &(o), &e_), (code_));       \
        ck_assert_int_eq(e_.code, (code_));                                  \
        ck_assert_ptr_null(p_);                                              \
        ck_assert_msg(strstr(e_.message, (needle)) != NULL,                  \
                      "message \"%s\" lacks \"%s\"", e_.message, (needle));  \
    } while (0)

#define EXPECT_CONSUMER_ERROR(o, code_, needle)                              \
    do {                                                                     \
        ksafe_consumer *c_ = (ksafe_consumer *)1;                            \
        ksafe_error e_;                                                      \
        ck_assert_int_eq(ksafe_consumer_new(&c_, &(o), &e_), (code_));       \
        ck_assert_int_eq(e_.code, (code_));                                  \
        ck_assert_ptr_null(c_);                                              \
        ck_assert_msg(strstr(e_.message, (needle)) != NULL,                  \
                      "message \"%s\" lacks \"%s\"", e_.message, (needle));  \
    } while (0)

START_TEST(required_fields_are_named)
{
    ksafe_producer_options p = popts();
    ksafe_consumer_options c = copts();

    p.bootstrap_servers = NULL;
    EXPECT_PRODUCER_ERROR(p, KSAFE_EINVAL, "bootstrap_servers is required");
    p.bootstrap_servers = "";
    EXPECT_PRODUCER_ERROR(p, KSAFE_EINVAL, "bootstrap_servers is required");
    c.group_id = NULL;
    EXPECT_CONSUMER_ERROR(c, KSAFE_EINVAL, "group_id is required");
    c.group_id = "";
    EXPECT_CONSUMER_ERROR(c, KSAFE_EINVAL, "group_id is required");
}
END_TEST

START_TEST(unknown_version_is_refused)
{
    ksafe_producer_options p = popts();
    ksafe_consumer_options c = copts();

    p.version = 99;
    EXPECT_PRODUCER_ERROR(p, KSAFE_EVERSION, "version is 99");
    c.version = 0;
    EXPECT_CONSUMER_ERROR(c, KSAFE_EVERSION, "KSAFE_CONSUMER_OPTIONS_INIT");
}
END_TEST

START_TEST(consumer_timing_rules)
{
    ksafe_consumer_options c = copts();

    c.session_timeout_ms = 9000;
    c.heartbeat_interval_ms = 3001;
    EXPECT_CONSUMER_ERROR(c, KSAFE_EINVAL,
                          "heartbeat_interval_ms (3001) is above a third");
    c.heartbeat_interval_ms = 3000; /* exactly a third is fine */
    ck_assert_int_eq(ksafe_consumer_options_validate(&c, NULL), 0);

    c = copts();
    c.max_poll_interval_ms = c.session_timeout_ms - 1;
    EXPECT_CONSUMER_ERROR(c, KSAFE_EINVAL, "max_poll_interval_ms (44999)");
    c = copts();
    c.session_timeout_ms = 0;
    EXPECT_CONSUMER_ERROR(c, KSAFE_EINVAL, "session_timeout_ms is 0, outside");
    c = copts();
    c.max_poll_interval_ms = 86400001;
    EXPECT_CONSUMER_ERROR(c, KSAFE_EINVAL, "max_poll_interval_ms is 86400001");
    c = copts();
    c.auto_offset_reset = (ksafe_offset_reset)7;
    EXPECT_CONSUMER_ERROR(c, KSAFE_EINVAL, "auto_offset_reset 7");
    c = copts();
    c.assignment_strategy = (ksafe_assignment_strategy)-1;
    EXPECT_CONSUMER_ERROR(c, KSAFE_EINVAL, "assignment_strategy -1");
    c = copts();
    c.group_instance_id = "";
    EXPECT_CONSUMER_ERROR(c, KSAFE_EINVAL, "group_instance_id is empty");
}
END_TEST

/*
 * KIP-848: the broker owns session, heartbeat and assignor, so a consumer
 * under group_protocol CONSUMER refuses them changed (librdkafka would
 * refuse the handle), and a librdkafka without the protocol's general
 * availability refuses the protocol itself.
 */
START_TEST(group_protocol_rules)
{
    static const char *const broker_side[] = {
        "session.timeout.ms", "heartbeat.interval.ms",
        "partition.assignment.strategy", "group.protocol.type"};
    static const char *const raw_assignor[] = {"group.remote.assignor",
                                               "uniform", NULL};
    const char *raw_session[] = {"session.timeout.ms", "6000", NULL};
    char needle[96];
    size_t i;
    static const char *const raw_protocol[] = {"group.protocol", "consumer",
                                               NULL};
    ksafe_consumer_options c = copts();
    ksafe_consumer *k;
    ksafe_error err;

    ck_assert_int_eq(c.group_protocol, KSAFE_GROUP_PROTOCOL_CLASSIC);
    c.group_protocol = (ksafe_group_protocol)2;
    EXPECT_CONSUMER_ERROR(c, KSAFE_EINVAL, "group_protocol 2 is not");
    /* The protocol is a typed field, under either protocol. */
    c = copts();
    c.rdkafka_properties = raw_protocol;
    EXPECT_CONSUMER_ERROR(c, KSAFE_EINVAL,
                          "rdkafka_properties sets group.protocol=consumer");
    /* KIP-848's assignor means nothing to the classic protocol. */
    c = copts();
    c.rdkafka_properties = raw_assignor;
    EXPECT_CONSUMER_ERROR(c, KSAFE_EINVAL,
                          "group.remote.assignor=uniform, which only");

    c = copts();
    c.group_protocol = KSAFE_GROUP_PROTOCOL_CONSUMER;
    if (rd_kafka_version() < 0x020c00ff) {
        EXPECT_CONSUMER_ERROR(c, KSAFE_EINVAL, "needs librdkafka 2.12.0");
        ck_assert_int_eq(ksafe_consumer_new(&k, &c, &err), KSAFE_EINVAL);
        ck_assert_ptr_null(k);
        return;
    }
    /* The preset's timings are accepted: they are not sent. */
    ck_assert_ok(ksafe_consumer_options_validate(&c, &err), err);
    c.max_poll_interval_ms = 10000; /* below the preset session: fine */
    ck_assert_ok(ksafe_consumer_new(&k, &c, &err), err);
    ck_assert_str_eq(prop(ksafe_consumer_rdkafka(k), "group.protocol"),
                     "consumer");
    ck_assert_str_eq(prop(ksafe_consumer_rdkafka(k), "enable.auto.commit"),
                     "false");
    ck_assert_str_eq(prop(ksafe_consumer_rdkafka(k), "isolation.level"),
                     "read_committed");
    ksafe_consumer_free(k);

    c = copts();
    c.group_protocol = KSAFE_GROUP_PROTOCOL_CONSUMER;
    c.session_timeout_ms = 6000;
    EXPECT_CONSUMER_ERROR(c, KSAFE_EINVAL,
                          "group.consumer.session.timeout.ms");
    c = copts();
    c.group_protocol = KSAFE_GROUP_PROTOCOL_CONSUMER;
    c.heartbeat_interval_ms = 1000;
    EXPECT_CONSUMER_ERROR(c, KSAFE_EINVAL,
                          "group.consumer.heartbeat.interval.ms");
    c = copts();
    c.group_protocol = KSAFE_GROUP_PROTOCOL_CONSUMER;
    c.assignment_strategy = KSAFE_ASSIGN_RANGE;
    EXPECT_CONSUMER_ERROR(c, KSAFE_EINVAL, "assignment_strategy is range");
    /* The broker-side properties, raw: each refused by name. */
    for (i = 0; i < sizeof(broker_side) / sizeof(broker_side[0]); i++) {
        c = copts();
        c.group_protocol = KSAFE_GROUP_PROTOCOL_CONSUMER;
        raw_session[0] = broker_side[i];
        c.rdkafka_properties = raw_session;
        snprintf(needle, sizeof(needle), "rdkafka_properties sets %s, which",
                 broker_side[i]);
        EXPECT_CONSUMER_ERROR(c, KSAFE_EINVAL, needle);
    }
    /* KIP-848 takes its assignor. */
    c = copts();
    c.group_protocol = KSAFE_GROUP_PROTOCOL_CONSUMER;
    c.rdkafka_properties = raw_assignor;
    ck_assert_ok(ksafe_consumer_options_validate(&c, &err), err);
    /* Under the classic protocol the raw session is fine. */
    raw_session[0] = "session.timeout.ms";
    c = copts();
    c.rdkafka_properties = raw_session;
    c.group_protocol = KSAFE_GROUP_PROTOCOL_CLASSIC;
    c.session_timeout_ms = 6000;
    c.heartbeat_interval_ms = 1000;
    ck_assert_ok(ksafe_consumer_options_validate(&c, &err), err);
}
END_TEST

START_TEST(producer_ranges)
{
    ksafe_producer_options p = popts();

    p.max_in_flight = 6;
    EXPECT_PRODUCER_ERROR(p, KSAFE_EINVAL, "at most 5 requests");
    p = popts();
    p.max_in_flight = 0;
    EXPECT_PRODUCER_ERROR(p, KSAFE_EINVAL, "max_in_flight is 0");
    p = popts();
    p.linger_ms = -1;
    EXPECT_PRODUCER_ERROR(p, KSAFE_EINVAL, "linger_ms is -1");
    p = popts();
    p.delivery_timeout_ms = 0;
    EXPECT_PRODUCER_ERROR(p, KSAFE_EINVAL, "delivery_timeout_ms is 0");
    p = popts();
    p.compression = (ksafe_compression)9;
    EXPECT_PRODUCER_ERROR(p, KSAFE_EINVAL, "compression 9");
    p = popts();
    p.queue_full = (ksafe_queue_full_policy)5;
    EXPECT_PRODUCER_ERROR(p, KSAFE_EINVAL, "queue_full 5");
    p = popts();
    p.transactional_id = "";
    EXPECT_PRODUCER_ERROR(p, KSAFE_EINVAL, "transactional_id is empty");
    p = popts();
    p.transactional_id = "tx";
    p.transaction_timeout_ms = 10000;
    EXPECT_PRODUCER_ERROR(p, KSAFE_EINVAL,
                          "delivery_timeout_ms (120000) exceeds "
                          "transaction_timeout_ms (10000)");
}
END_TEST

START_TEST(security_combinations)
{
    ksafe_producer_options p = popts();

    p.security_protocol = KSAFE_SECURITY_SASL_SSL;
    EXPECT_PRODUCER_ERROR(p, KSAFE_EINVAL, "sasl_username is required");
    p.sasl_username = "u";
    EXPECT_PRODUCER_ERROR(p, KSAFE_EINVAL, "sasl_password is required");
    p = popts();
    p.sasl_username = "u";
    p.sasl_password = "pw";
    EXPECT_PRODUCER_ERROR(p, KSAFE_EINVAL, "credentials would be ignored");
    p = popts();
    p.ssl_ca_location = "/etc/ssl/certs/ca-certificates.crt";
    EXPECT_PRODUCER_ERROR(p, KSAFE_EINVAL, "ssl_* paths are set");
    p = popts();
    p.security_protocol = (ksafe_security_protocol)4;
    EXPECT_PRODUCER_ERROR(p, KSAFE_EINVAL, "security_protocol 4");
    p = popts();
    p.security_protocol = KSAFE_SECURITY_SASL_PLAINTEXT;
    p.sasl_mechanism = (ksafe_sasl_mechanism)3;
    p.sasl_username = "u";
    p.sasl_password = "pw";
    EXPECT_PRODUCER_ERROR(p, KSAFE_EINVAL, "sasl_mechanism 3");
}
END_TEST

START_TEST(raw_property_list_shape)
{
    static const char *const odd[] = {"linger.ms", NULL};
    static const char *const empty_key[] = {"", "1", NULL};
    static const char *const unknown[] = {"no.such.property", "1", NULL};
    ksafe_producer_options p = popts();

    p.rdkafka_properties = odd;
    EXPECT_PRODUCER_ERROR(p, KSAFE_EINVAL, "\"linger.ms\" has no value");
    p.rdkafka_properties = empty_key;
    EXPECT_PRODUCER_ERROR(p, KSAFE_EINVAL, "empty key at index 0");
    p.rdkafka_properties = unknown;
    EXPECT_PRODUCER_ERROR(p, KSAFE_EINVAL, "no.such.property");
    p.allow_unsafe = 2;
    p.rdkafka_properties = NULL;
    EXPECT_PRODUCER_ERROR(p, KSAFE_EINVAL, "allow_unsafe must be 0 or 1");
}
END_TEST

/* Raw properties come after the typed fields, so they win. */
START_TEST(raw_properties_apply_after_typed_fields)
{
    static const char *const props[] = {"linger.ms", "50",
                                        "queue.buffering.max.messages",
                                        "1000", NULL};
    ksafe_producer_options o = popts();
    ksafe_producer *p;
    ksafe_error err;

    o.rdkafka_properties = props;
    ck_assert_ok(ksafe_producer_new(&p, &o, &err), err);
    ck_assert_str_eq(prop(ksafe_producer_rdkafka(p), "linger.ms"), "50");
    ck_assert_str_eq(
        prop(ksafe_producer_rdkafka(p), "queue.buffering.max.messages"),
        "1000");
    ksafe_producer_free(p);
}
END_TEST

/* ---- the unsafe guard -------------------------------------------------- */

typedef struct unsafe_case {
    int consumer;
    const char *key, *value, *risk;
} unsafe_case;

static const unsafe_case unsafe_cases[] = {
    {1, "enable.auto.commit", "true", "loss on crash"},
    {1, "enable.auto.commit", "1", "auto commit can mark records processed"},
    {1, "enable.auto.offset.store", "true", "loss on crash"},
    {1, "isolation.level", "read_uncommitted", "aborted"},
    {0, "acks", "1", "loss when the leader fails"},
    {0, "acks", "0", "loss when the leader fails"},
    {0, "request.required.acks", "1", "loss when the leader fails"},
    {0, "enable.idempotence", "false", "duplicate and reorder"},
    {0, "max.in.flight.requests.per.connection", "10", "idempotent ordering"},
};

START_TEST(unsafe_override_is_refused_with_its_risk)
{
    const unsafe_case *u = &unsafe_cases[_i];
    const char *props[] = {u->key, u->value, NULL};

    if (u->consumer) {
        ksafe_consumer_options o = copts();
        o.rdkafka_properties = props;
        EXPECT_CONSUMER_ERROR(o, KSAFE_EUNSAFE, u->risk);
        EXPECT_CONSUMER_ERROR(o, KSAFE_EUNSAFE, "allow_unsafe");
        EXPECT_CONSUMER_ERROR(o, KSAFE_EUNSAFE, u->key);
    } else {
        ksafe_producer_options o = popts();
        o.rdkafka_properties = props;
        EXPECT_PRODUCER_ERROR(o, KSAFE_EUNSAFE, u->risk);
        EXPECT_PRODUCER_ERROR(o, KSAFE_EUNSAFE, u->key);
    }
}
END_TEST

/* Restating the safe value is not an override. */
START_TEST(safe_values_pass_the_guard)
{
    static const char *const cprops[] = {
        "enable.auto.commit", "false", "enable.auto.offset.store", "0",
        "isolation.level", "read_committed", NULL};
    static const char *const pprops[] = {
        "acks", "all", "request.required.acks", "-1", "enable.idempotence",
        "true", "max.in.flight.requests.per.connection", "5", NULL};
    ksafe_consumer_options co = copts();
    ksafe_producer_options po = popts();
    ksafe_consumer *c;
    ksafe_producer *p;
    ksafe_error err;

    co.rdkafka_properties = cprops;
    po.rdkafka_properties = pprops;
    ck_assert_ok(ksafe_consumer_new(&c, &co, &err), err);
    ck_assert_ok(ksafe_producer_new(&p, &po, &err), err);
    ksafe_consumer_free(c);
    ksafe_producer_free(p);
}
END_TEST

/*
 * Validate answers as _new does: every property _new refuses (an unsafe
 * override, a property librdkafka does not know, a value it refuses) is
 * refused by validate with the same code and message, and what _new
 * accepts validates.
 */
typedef struct same_case {
    int consumer, allow_unsafe;
    const char *key, *value;
    int code;
} same_case;

static const same_case same_cases[] = {
    {1, 0, "enable.auto.commit", "true", KSAFE_EUNSAFE},
    {1, 0, "enable.auto.offset.store", "1", KSAFE_EUNSAFE},
    {1, 0, "isolation.level", "read_uncommitted", KSAFE_EUNSAFE},
    {1, 0, "no.such.property", "1", KSAFE_EINVAL},
    {1, 0, "session.timeout.ms", "soon", KSAFE_EINVAL},
    {1, 1, "enable.auto.commit", "true", 0},
    {0, 0, "acks", "1", KSAFE_EUNSAFE},
    {0, 0, "enable.idempotence", "false", KSAFE_EUNSAFE},
    {0, 0, "max.in.flight", "6", KSAFE_EUNSAFE},
    {0, 0, "no.such.property", "1", KSAFE_EINVAL},
    {0, 0, "linger.ms", "later", KSAFE_EINVAL},
    {0, 1, "enable.idempotence", "false", 0},
    /* allowed by allow_unsafe, but librdkafka refuses them beside the
     * preset's idempotence */
    {0, 1, "acks", "1", KSAFE_EINVAL},
    {0, 1, "max.in.flight.requests.per.connection", "6", KSAFE_EINVAL},
    {0, 1, "retries", "0", KSAFE_EINVAL},
};

START_TEST(validate_refuses_what_new_refuses)
{
    const same_case *u = &same_cases[_i];
    const char *props[] = {u->key, u->value, NULL};
    ksafe_error by_new, by_validate;
    int rc_new, rc_validate;

    memset(&by_new, 0, sizeof(by_new));
    memset(&by_validate, 0, sizeof(by_validate));
    if (u->consumer) {
        ksafe_consumer_options o = copts();
        ksafe_consumer *c = NULL;
        o.rdkafka_properties = props;
        o.allow_unsafe = u->allow_unsafe;
        rc_validate = ksafe_consumer_options_validate(&o, &by_validate);
        rc_new = ksafe_consumer_new(&c, &o, &by_new);
        ksafe_consumer_free(c);
    } else {
        ksafe_producer_options o = popts();
        ksafe_producer *p = NULL;
        o.rdkafka_properties = props;
        o.allow_unsafe = u->allow_unsafe;
        rc_validate = ksafe_producer_options_validate(&o, &by_validate);
        rc_new = ksafe_producer_new(&p, &o, &by_new);
        ksafe_producer_free(p);
    }
    ck_assert_int_eq(rc_new, u->code);
    ck_assert_msg(rc_validate == u->code,
                  "%s=%s: validate returned %d (%s), _new %d (%s)", u->key,
                  u->value, rc_validate, by_validate.message, rc_new,
                  by_new.message);
    if (u->code) {
        ck_assert_str_eq(by_validate.message, by_new.message);
        ck_assert_ptr_nonnull(strstr(by_validate.message, u->key));
    }
}
END_TEST

typedef struct log_capture {
    int warnings;
    char last[1024];
    char all[16384];
} log_capture;

static void capture_log(int level, const char *fac, const char *msg,
                        void *payload)
{
    log_capture *lc = payload;
    size_t used = strlen(lc->all);

    (void)fac;
    if (level <= KSAFE_LOG_WARNING) {
        lc->warnings++;
        snprintf(lc->last, sizeof(lc->last), "%s", msg);
    }
    if (used + strlen(msg) + 2 < sizeof(lc->all)) {
        strcat(lc->all, msg);
        strcat(lc->all, "\n");
    }
}

START_TEST(allow_unsafe_applies_and_warns_once)
{
    static const char *const props[] = {"enable.auto.commit", "true", NULL};
    ksafe_consumer_options o = copts();
    log_capture lc;
    ksafe_consumer *c;
    ksafe_error err;

    memset(&lc, 0, sizeof(lc));
    o.rdkafka_properties = props;
    o.allow_unsafe = 1;
    o.log_cb = capture_log;
    o.log_payload = &lc;
    ck_assert_ok(ksafe_consumer_new(&c, &o, &err), err);
    ck_assert_str_eq(prop(ksafe_consumer_rdkafka(c), "enable.auto.commit"),
                     "true");
    ck_assert_int_ge(lc.warnings, 1);
    ck_assert_ptr_nonnull(strstr(lc.all, "enable.auto.commit=true"));
    ck_assert_ptr_nonnull(strstr(lc.all, "loss on crash"));
    /* once: the line appears a single time */
    ck_assert_ptr_null(
        strstr(strstr(lc.all, "enable.auto.commit=true") + 1,
               "enable.auto.commit=true"));
    ksafe_consumer_free(c);
}
END_TEST

/* ---- secrets ----------------------------------------------------------- */

#define SECRET "hunter2-Very-Secret"

START_TEST(secrets_never_reach_error_messages)
{
    static const char *const props[] = {"my.password", SECRET, NULL};
    ksafe_producer_options o = popts();
    ksafe_producer *p;
    ksafe_error err;

    o.rdkafka_properties = props; /* unknown key: librdkafka refuses it */
    ck_assert_int_eq(ksafe_producer_new(&p, &o, &err), KSAFE_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.message, "my.password"));
    ck_assert_ptr_null(strstr(err.message, SECRET));
}
END_TEST

/* A secret's name in another case (a typo librdkafka refuses) hides its
 * value too. Found by fuzz-config. */
START_TEST(secrets_in_any_case_never_reach_error_messages)
{
    static const char *const names[] = {"sasl.Password", "my.SECRET",
                                        "x.PassWord"};
    size_t i;

    for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        const char *props[] = {names[i], SECRET, NULL};
        ksafe_producer_options o = popts();
        ksafe_producer *p;
        ksafe_error err;

        o.rdkafka_properties = props;
        ck_assert_int_eq(ksafe_producer_new(&p, &o, &err), KSAFE_EINVAL);
        ck_assert_ptr_nonnull(strstr(err.message, names[i]));
        ck_assert_msg(strstr(err.message, SECRET) == NULL, "%s",
                      err.message);
    }
}
END_TEST

/* Our log path scrubs passwords from every line, whoever wrote it. */
START_TEST(secrets_never_reach_log_lines)
{
    static const char *const props[] = {"enable.idempotence", "false",
                                        "debug", "generic,conf", NULL};
    ksafe_producer_options o = popts();
    log_capture lc;
    ksafe_producer *p;
    ksafe_error err;

    memset(&lc, 0, sizeof(lc));
    o.security_protocol = KSAFE_SECURITY_SASL_PLAINTEXT;
    o.sasl_username = "alice";
    o.sasl_password = SECRET;
    /* librdkafka logs its client id: put the secret there to prove lines
     * are scrubbed. */
    o.client_id = "svc-" SECRET;
    o.rdkafka_properties = props;
    o.allow_unsafe = 1;
    o.log_cb = capture_log;
    o.log_payload = &lc;
    ck_assert_ok(ksafe_producer_new(&p, &o, &err), err);
    ksafe_producer_free(p);
    ck_assert_ptr_nonnull(strstr(lc.all, "svc-***"));
    ck_assert_ptr_null(strstr(lc.all, SECRET));
}
END_TEST

static Suite *options_suite(void)
{
    Suite *s = suite_create("options");
    TCase *preset = tcase_create("preset");
    TCase *valid = tcase_create("validation");
    TCase *guard = tcase_create("guard");
    TCase *secrets = tcase_create("secrets");

    tcase_add_test(preset, init_function_equals_init_macro);
    tcase_add_test(preset, producer_preset_maps_to_safe_properties);
    tcase_add_test(preset, consumer_preset_maps_to_safe_properties);
    tcase_add_test(preset, typed_producer_fields_map_one_to_one);
    tcase_add_test(preset, typed_consumer_fields_map_one_to_one);
    suite_add_tcase(s, preset);

    tcase_add_test(valid, required_fields_are_named);
    tcase_add_test(valid, unknown_version_is_refused);
    tcase_add_test(valid, consumer_timing_rules);
    tcase_add_test(valid, group_protocol_rules);
    tcase_add_test(valid, producer_ranges);
    tcase_add_test(valid, security_combinations);
    tcase_add_test(valid, raw_property_list_shape);
    tcase_add_test(valid, raw_properties_apply_after_typed_fields);
    suite_add_tcase(s, valid);

    tcase_add_loop_test(guard, unsafe_override_is_refused_with_its_risk, 0,
                        (int)(sizeof(unsafe_cases) / sizeof(unsafe_cases[0])));
    tcase_add_test(guard, safe_values_pass_the_guard);
    tcase_add_test(guard, allow_unsafe_applies_and_warns_once);
    tcase_add_loop_test(guard, validate_refuses_what_new_refuses, 0,
                        (int)(sizeof(same_cases) / sizeof(same_cases[0])));
    suite_add_tcase(s, guard);

    tcase_add_test(secrets, secrets_never_reach_error_messages);
    tcase_add_test(secrets, secrets_in_any_case_never_reach_error_messages);
    tcase_add_test(secrets, secrets_never_reach_log_lines);
    suite_add_tcase(s, secrets);
    return s;
}

KSAFE_TEST_MAIN(options_suite)
