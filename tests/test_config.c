/*
 * tests/test_config.c - options from JSON: the mapping of every key, the
 * preset for what is missing, errors located by path and line:column,
 * files, secrets, and handles created from a document.
 */
#include <errno.h>
#include <unistd.h>

#include "testutil.h"

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

/* Loading `json` fails with KSAFE_EJSON and exactly `expected`. */
#define EXPECT_JSON_ERROR(json, expected)                                     \
    do {                                                                     \
        ksafe_config *cfg_ = (ksafe_config *)1;                              \
        ksafe_error err_;                                                    \
        ck_assert_int_eq(ksafe_config_load_string(&cfg_, (json), &err_),     \
                         KSAFE_EJSON);                                       \
        ck_assert_ptr_null(cfg_);                                            \
        ck_assert_int_eq(err_.code, KSAFE_EJSON);                            \
        ck_assert_str_eq(err_.message, (expected));                           \
    } while (0)

static ksafe_config *load_ok(const char *json)
{
    ksafe_config *cfg = NULL;
    ksafe_error err;

    ck_assert_ok(ksafe_config_load_string(&cfg, json, &err), err);
    ck_assert_ptr_nonnull(cfg);
    return cfg;
}

/* ---- full documents, field by field ------------------------------------ */

static const char full_doc[] =
    "{\n"
    "  \"bootstrap_servers\": \"b1:9093,b2:9093\",\n"
    "  \"client_id\": \"billing\",\n"
    "  \"security\": {\n"
    "    \"protocol\": \"sasl_ssl\",\n"
    "    \"sasl_mechanism\": \"SCRAM-SHA-512\",\n"
    "    \"username\": \"svc\",\n"
    "    \"password\": \"pw\",\n"
    "    \"ca_location\": \"/ca.pem\",\n"
    "    \"certificate_location\": \"/cert.pem\",\n"
    "    \"key_location\": \"/key.pem\",\n"
    "    \"key_password\": \"kpw\"\n"
    "  },\n"
    "  \"allow_unsafe\": true,\n"
    "  \"rdkafka_properties\": {\"socket.keepalive.enable\": true,\n"
    "                         \"message.max.bytes\": 2000000,\n"
    "                         \"debug\": \"broker\"},\n"
    "  \"producer\": {\n"
    "    \"max_in_flight\": 3, \"delivery_timeout_ms\": 60000,\n"
    "    \"linger_ms\": 20, \"compression\": \"zstd\",\n"
    "    \"transactional_id\": \"billing-tx\",\n"
    "    \"transaction_timeout_ms\": 90000, \"queue_full\": \"return\",\n"
    "    \"queue_full_timeout_ms\": 100, \"partitioner\": \"murmur2_random\"\n"
    "  },\n"
    "  \"consumer\": {\n"
    "    \"group_id\": \"billing-group\", \"group_instance_id\": \"pod-1\",\n"
    "    \"auto_offset_reset\": \"latest\",\n"
    "    \"assignment_strategy\": \"roundrobin\",\n"
    "    \"session_timeout_ms\": 30000, \"heartbeat_interval_ms\": 2000,\n"
    "    \"max_poll_interval_ms\": 600000\n"
    "  }\n"
    "}\n";

#define CHECK_SHARED(o)                                                      \
    do {                                                                     \
        ck_assert_str_eq((o).bootstrap_servers, "b1:9093,b2:9093");          \
        ck_assert_str_eq((o).client_id, "billing");                          \
        ck_assert_int_eq((o).security_protocol, KSAFE_SECURITY_SASL_SSL);    \
        ck_assert_int_eq((o).sasl_mechanism, KSAFE_SASL_SCRAM_SHA_512);      \
        ck_assert_str_eq((o).sasl_username, "svc");                          \
        ck_assert_str_eq((o).sasl_password, "pw");                           \
        ck_assert_str_eq((o).ssl_ca_location, "/ca.pem");                    \
        ck_assert_str_eq((o).ssl_certificate_location, "/cert.pem");         \
        ck_assert_str_eq((o).ssl_key_location, "/key.pem");                  \
        ck_assert_str_eq((o).ssl_key_password, "kpw");                       \
        ck_assert_int_eq((o).allow_unsafe, 1);                               \
        ck_assert_ptr_null((o).log_cb);                                      \
        ck_assert_ptr_null((o).log_payload);                                 \
        ck_assert_ptr_nonnull((o).rdkafka_properties);                       \
        ck_assert_str_eq((o).rdkafka_properties[0],                          \
                         "socket.keepalive.enable");                         \
        ck_assert_str_eq((o).rdkafka_properties[1], "true");                 \
        ck_assert_str_eq((o).rdkafka_properties[2], "message.max.bytes");    \
        ck_assert_str_eq((o).rdkafka_properties[3], "2000000");              \
        ck_assert_str_eq((o).rdkafka_properties[4], "debug");                \
        ck_assert_str_eq((o).rdkafka_properties[5], "broker");               \
        ck_assert_ptr_null((o).rdkafka_properties[6]);                       \
    } while (0)

START_TEST(full_document_maps_every_producer_field)
{
    ksafe_config *cfg = load_ok(full_doc);
    ksafe_producer_options o;
    ksafe_error err;

    memset(&o, 0x5a, sizeof(o));
    ck_assert_ok(ksafe_config_producer_options(cfg, &o, &err), err);
    ck_assert_uint_eq(o.version, KSAFE_PRODUCER_OPTIONS_VERSION);
    CHECK_SHARED(o);
    ck_assert_int_eq(o.max_in_flight, 3);
    ck_assert_int_eq(o.delivery_timeout_ms, 60000);
    ck_assert_int_eq(o.linger_ms, 20);
    ck_assert_int_eq(o.compression, KSAFE_COMPRESSION_ZSTD);
    ck_assert_str_eq(o.transactional_id, "billing-tx");
    ck_assert_int_eq(o.transaction_timeout_ms, 90000);
    ck_assert_int_eq(o.queue_full, KSAFE_QUEUE_FULL_RETURN);
    ck_assert_int_eq(o.queue_full_timeout_ms, 100);
    ck_assert_int_eq(o.partitioner, KSAFE_PARTITIONER_MURMUR2_RANDOM);
    ck_assert_ptr_null(o.on_delivery);
    ck_assert_ptr_null(o.delivery_payload);
    ksafe_config_free(cfg);
}
END_TEST

START_TEST(full_document_maps_every_consumer_field)
{
    ksafe_config *cfg = load_ok(full_doc);
    ksafe_consumer_options o;
    ksafe_error err;

    memset(&o, 0x5a, sizeof(o));
    ck_assert_ok(ksafe_config_consumer_options(cfg, &o, &err), err);
    ck_assert_uint_eq(o.version, KSAFE_CONSUMER_OPTIONS_VERSION);
    CHECK_SHARED(o);
    ck_assert_str_eq(o.group_id, "billing-group");
    ck_assert_str_eq(o.group_instance_id, "pod-1");
    ck_assert_int_eq(o.auto_offset_reset, KSAFE_OFFSET_RESET_LATEST);
    ck_assert_int_eq(o.assignment_strategy, KSAFE_ASSIGN_ROUNDROBIN);
    ck_assert_int_eq(o.session_timeout_ms, 30000);
    ck_assert_int_eq(o.heartbeat_interval_ms, 2000);
    ck_assert_int_eq(o.max_poll_interval_ms, 600000);
    ck_assert_ptr_null(o.on_assigned);
    ck_assert_ptr_null(o.on_revoked);
    ck_assert_ptr_null(o.on_lost);
    ck_assert_ptr_null(o.rebalance_payload);
    /* not in the document: the preset's */
    ck_assert_int_eq(o.group_protocol, KSAFE_GROUP_PROTOCOL_CLASSIC);
    ksafe_config_free(cfg);
}
END_TEST

/* KIP-848 is one key away, and a misspelt protocol lists the two names. */
START_TEST(group_protocol_is_read_and_checked)
{
    ksafe_config *cfg = load_ok("{\"bootstrap_servers\": \"h:1\", "
                                "\"consumer\": {\"group_id\": \"g\", "
                                "\"group_protocol\": \"consumer\"}}");
    ksafe_consumer_options o;
    ksafe_error err;
    int rc;

    rc = ksafe_config_consumer_options(cfg, &o, &err);
    if (rd_kafka_version() >= 0x020c00ff) {
        ck_assert_ok(rc, err);
    } else {
        /* The options are filled, validation refuses them on 2.0.2. */
        ck_assert_int_eq(rc, KSAFE_EINVAL);
        ck_assert_msg(strstr(err.message, "2.12.0") != NULL, "%s",
                      err.message);
    }
    ck_assert_int_eq(o.group_protocol, KSAFE_GROUP_PROTOCOL_CONSUMER);
    ksafe_config_free(cfg);

    rc = ksafe_config_load_string(
        &cfg,
        "{\"bootstrap_servers\": \"h:1\",\n \"consumer\": "
        "{\"group_protocol\": \"kip848\"}}",
        &err);
    ck_assert_int_eq(rc, KSAFE_EJSON);
    ck_assert_msg(strstr(err.message, "$.consumer.group_protocol") &&
                      strstr(err.message, "classic") &&
                      strstr(err.message, "consumer") &&
                      strstr(err.message, "line 2"),
                  "%s", err.message);
}
END_TEST

START_TEST(enum_values_ignore_case)
{
    ksafe_config *cfg = load_ok(
        "{\"bootstrap_servers\": \"h:1\", \"security\": {\"protocol\": "
        "\"SSL\"}, \"producer\": {\"compression\": \"Lz4\"}}");
    ksafe_producer_options o;
    ksafe_error err;

    ck_assert_ok(ksafe_config_producer_options(cfg, &o, &err), err);
    ck_assert_int_eq(o.security_protocol, KSAFE_SECURITY_SSL);
    ck_assert_int_eq(o.compression, KSAFE_COMPRESSION_LZ4);
    ksafe_config_free(cfg);
}
END_TEST

/* ---- the preset for what the document leaves out ------------------------ */

START_TEST(missing_keys_keep_the_preset)
{
    const ksafe_producer_options pp = KSAFE_PRODUCER_OPTIONS_INIT;
    const ksafe_consumer_options cp = KSAFE_CONSUMER_OPTIONS_INIT;
    ksafe_config *cfg = load_ok("{\"bootstrap_servers\": \"h:1\"}");
    ksafe_producer_options p;
    ksafe_consumer_options c;
    ksafe_error err;

    ck_assert_ok(ksafe_config_producer_options(cfg, &p, &err), err);
    ck_assert_str_eq(p.bootstrap_servers, "h:1");
    ck_assert_ptr_null(p.client_id);
    ck_assert_int_eq(p.security_protocol, pp.security_protocol);
    ck_assert_ptr_null(p.sasl_username);
    ck_assert_ptr_null(p.sasl_password);
    ck_assert_ptr_null(p.ssl_ca_location);
    ck_assert_ptr_null(p.rdkafka_properties);
    ck_assert_int_eq(p.allow_unsafe, 0);
    ck_assert_int_eq(p.max_in_flight, pp.max_in_flight);
    ck_assert_int_eq(p.delivery_timeout_ms, pp.delivery_timeout_ms);
    ck_assert_int_eq(p.linger_ms, pp.linger_ms);
    ck_assert_int_eq(p.compression, pp.compression);
    ck_assert_ptr_null(p.transactional_id);
    ck_assert_int_eq(p.transaction_timeout_ms, pp.transaction_timeout_ms);
    ck_assert_int_eq(p.queue_full, pp.queue_full);
    ck_assert_int_eq(p.queue_full_timeout_ms, pp.queue_full_timeout_ms);

    /* validation still applies: a consumer needs a group */
    ck_assert_int_eq(ksafe_config_consumer_options(cfg, &c, &err),
                     KSAFE_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.message, "JSON config: group_id"));
    ck_assert_int_eq(c.auto_offset_reset, cp.auto_offset_reset);
    ck_assert_int_eq(c.assignment_strategy, cp.assignment_strategy);
    ck_assert_int_eq(c.session_timeout_ms, cp.session_timeout_ms);
    ck_assert_int_eq(c.heartbeat_interval_ms, cp.heartbeat_interval_ms);
    ck_assert_int_eq(c.max_poll_interval_ms, cp.max_poll_interval_ms);
    ck_assert_ptr_null(c.group_instance_id);
    ksafe_config_free(cfg);
}
END_TEST

START_TEST(empty_document_fails_validation_for_bootstrap)
{
    ksafe_config *cfg = load_ok(" {\n}\n");
    ksafe_producer_options p;
    ksafe_error err;

    ck_assert_int_eq(ksafe_config_producer_options(cfg, &p, &err),
                     KSAFE_EINVAL);
    ck_assert_int_eq(err.code, KSAFE_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.message, "bootstrap_servers is required"));
    ksafe_config_free(cfg);
}
END_TEST

START_TEST(each_side_ignores_the_other_section)
{
    ksafe_config *cfg;
    ksafe_producer_options p;
    ksafe_consumer_options c;
    ksafe_error err;

    /* a consumer section that validation refuses does not stop producers */
    cfg = load_ok("{\"bootstrap_servers\": \"h:1\", \"consumer\": "
                  "{\"group_id\": \"g\", \"heartbeat_interval_ms\": 20000}}");
    ck_assert_ok(ksafe_config_producer_options(cfg, &p, &err), err);
    ck_assert_int_eq(ksafe_config_consumer_options(cfg, &c, &err),
                     KSAFE_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.message, "heartbeat_interval_ms"));
    ksafe_config_free(cfg);

    cfg = load_ok("{\"bootstrap_servers\": \"h:1\", \"producer\": "
                  "{\"linger_ms\": 1000000}, \"consumer\": "
                  "{\"group_id\": \"g\"}}");
    ck_assert_ok(ksafe_config_consumer_options(cfg, &c, &err), err);
    ck_assert_int_eq(ksafe_config_producer_options(cfg, &p, &err),
                     KSAFE_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.message, "linger_ms is 1000000"));
    ksafe_config_free(cfg);
}
END_TEST

/* ---- rdkafka_properties ------------------------------------------------ */

START_TEST(properties_keep_order_and_convert_scalars)
{
    ksafe_config *cfg = load_ok(
        "{\"bootstrap_servers\": \"h:1\", \"rdkafka_properties\": "
        "{\"b\": \"x\", \"a\": 5, \"c\": false, \"d\": -7, \"e\": true}}");
    const char *const want[] = {"b", "x",     "a", "5",    "c",
                                "false", "d", "-7", "e", "true"};
    ksafe_producer_options o;
    ksafe_error err;
    size_t i;

    /* librdkafka knows none of these names, so validation refuses them as
     * _new would; the options are filled all the same. */
    ck_assert_int_eq(ksafe_config_producer_options(cfg, &o, &err),
                     KSAFE_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.message, "\"b\"=\"x\""));
    for (i = 0; i < 10; i++)
        ck_assert_str_eq(o.rdkafka_properties[i], want[i]);
    ck_assert_ptr_null(o.rdkafka_properties[10]);
    ksafe_config_free(cfg);

    cfg = load_ok("{\"bootstrap_servers\": \"h:1\", \"rdkafka_properties\": "
                  "{}}");
    ck_assert_ok(ksafe_config_producer_options(cfg, &o, &err), err);
    ck_assert_ptr_null(o.rdkafka_properties);
    ksafe_config_free(cfg);
}
END_TEST

START_TEST(properties_refuse_other_values)
{
    EXPECT_JSON_ERROR("{\"rdkafka_properties\": {\"\": \"x\"}}",
                      "$.rdkafka_properties[\"\"]: empty property name "
                      "(line 1, column 25)");
    EXPECT_JSON_ERROR("{\"rdkafka_properties\": {\"a\": null}}",
                      "$.rdkafka_properties.a: expected a string, an integer "
                      "or a boolean, got null (line 1, column 30)");
    EXPECT_JSON_ERROR("{\"rdkafka_properties\": {\"a\\\"b\": 1.5}}",
                      "$.rdkafka_properties[\"a\\\"b\"]: expected a string, "
                      "an integer or a boolean (write real numbers as "
                      "strings), got a real number (line 1, column 33)");
    EXPECT_JSON_ERROR("{\"rdkafka_properties\": [\"a\", \"b\"]}",
                      "$.rdkafka_properties: expected an object, got an "
                      "array (line 1, column 24)");
}
END_TEST

/* ---- errors, each located exactly -------------------------------------- */

START_TEST(syntax_errors_carry_janssons_position)
{
    ksafe_config *cfg = (ksafe_config *)1;
    ksafe_error err;

    ck_assert_int_eq(ksafe_config_load_string(&cfg, "{", &err), KSAFE_EJSON);
    ck_assert_ptr_null(cfg);
    ck_assert_str_eq(err.message, "$: string or '}' expected near end of "
                                  "file (line 1, column 1)");
    EXPECT_JSON_ERROR("{\n"
                      "  \"producer\": {\n"
                      "    \"linger_ms\": 5\n"
                      "    \"compression\": \"lz4\"\n"
                      "  }\n"
                      "}\n",
                      "$.producer: '}' expected near '\"compression\"' "
                      "(line 4, column 17)");
    EXPECT_JSON_ERROR("{\"producer\": [1, {\"a\": }]}",
                      "$.producer[1].a: unexpected token near '}' "
                      "(line 1, column 24)");
    EXPECT_JSON_ERROR("{\"client_id\": \"x\"} x",
                      "$: end of file expected near 'x' (line 1, column 20)");
    EXPECT_JSON_ERROR("", "$: '[' or '{' expected near end of file "
                          "(line 1, column 1)");
}
END_TEST

START_TEST(duplicate_keys_point_at_the_second)
{
    EXPECT_JSON_ERROR("{\n"
                      "  \"producer\": {\n"
                      "    \"linger_ms\": 5,\n"
                      "    \"linger_ms\": 6\n"
                      "  }\n"
                      "}\n",
                      "$.producer.linger_ms: duplicate key (line 4, "
                      "column 5)");
    EXPECT_JSON_ERROR("{\"client_id\": \"a\", \"client\\u005fid\": \"b\"}",
                      "$.client_id: duplicate key (line 1, column 20)");
}
END_TEST

START_TEST(unknown_keys_are_named_with_a_hint)
{
    EXPECT_JSON_ERROR("{\n"
                      "  \"producer\": {\n"
                      "    \"lingr_ms\": 5\n"
                      "  }\n"
                      "}\n",
                      "$.producer.lingr_ms: unknown key; did you mean "
                      "\"linger_ms\"? (line 3, column 5)");
    EXPECT_JSON_ERROR("{\"producer\": {\"linger\": 5}}",
                      "$.producer.linger: unknown key; did you mean "
                      "\"linger_ms\"? (line 1, column 15)");
    EXPECT_JSON_ERROR("{\"producer\": {\"group_id\": \"g\"}}",
                      "$.producer.group_id: unknown key here; it belongs in "
                      "$.consumer (line 1, column 15)");
    EXPECT_JSON_ERROR("{\"security\": {}, \"password\": \"x\"}",
                      "$.password: unknown key here; it belongs in "
                      "$.security (line 1, column 18)");
    EXPECT_JSON_ERROR("{\"linger.ms\": 5}",
                      "$[\"linger.ms\"]: unknown key; librdkafka properties "
                      "go in $.rdkafka_properties (line 1, column 2)");
    EXPECT_JSON_ERROR("{\"consumer\": {\"topics\": [\"a\"]}}",
                      "$.consumer.topics: unknown key (line 1, column 15)");
}
END_TEST

START_TEST(wrong_types_say_what_was_expected)
{
    EXPECT_JSON_ERROR("{\"producer\": {\"linger_ms\": \"5\"}}",
                      "$.producer.linger_ms: expected an integer, got a "
                      "string (line 1, column 28)");
    EXPECT_JSON_ERROR("{\"producer\": {\"linger_ms\": 5.0}}",
                      "$.producer.linger_ms: expected an integer, got a real "
                      "number (line 1, column 28)");
    EXPECT_JSON_ERROR("{\"security\": []}",
                      "$.security: expected an object, got an array "
                      "(line 1, column 14)");
    EXPECT_JSON_ERROR("{\"allow_unsafe\": \"yes\"}",
                      "$.allow_unsafe: expected a boolean (true or false), "
                      "got a string (line 1, column 18)");
    EXPECT_JSON_ERROR("{\"client_id\": null}",
                      "$.client_id: expected a string, got null "
                      "(line 1, column 15)");
    EXPECT_JSON_ERROR("{\"consumer\": {\"auto_offset_reset\": 1}}",
                      "$.consumer.auto_offset_reset: expected a string, got "
                      "an integer (line 1, column 36)");
    EXPECT_JSON_ERROR("\n  [1]", "$: expected an object, got an array "
                                 "(line 2, column 3)");
}
END_TEST

START_TEST(bad_enum_values_list_the_allowed_ones)
{
    EXPECT_JSON_ERROR("{\n"
                      "  \"bootstrap_servers\": \"127.0.0.1:1\",\n"
                      "  \"producer\": {\n"
                      "    \"linger_ms\": 5\n"
                      "  },\n"
                      "  \"consumer\": {\n"
                      "    \"auto_offset_reset\": \"oldest\"\n"
                      "  }\n"
                      "}\n",
                      "$.consumer.auto_offset_reset: \"oldest\" is not one "
                      "of earliest, latest, error (line 7, column 26)");
    EXPECT_JSON_ERROR("{\"security\": {\"sasl_mechanism\": \"GSSAPI\"}}",
                      "$.security.sasl_mechanism: \"GSSAPI\" is not one of "
                      "PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 (line 1, "
                      "column 33)");
    EXPECT_JSON_ERROR("{\"producer\": {\"queue_full\": \"drop\\n\"}}",
                      "$.producer.queue_full: \"drop\\u000a\" is not one of "
                      "block, return (line 1, column 29)");
}
END_TEST

START_TEST(integers_must_fit_an_int)
{
    ksafe_config *cfg;

    EXPECT_JSON_ERROR("{\"consumer\": {\"session_timeout_ms\": 2147483648}}",
                      "$.consumer.session_timeout_ms: 2147483648 is out of "
                      "range (-2147483648..2147483647) (line 1, column 37)");
    EXPECT_JSON_ERROR("{\"producer\": {\"linger_ms\": -2147483649}}",
                      "$.producer.linger_ms: -2147483649 is out of range "
                      "(-2147483648..2147483647) (line 1, column 28)");
    cfg = load_ok("{\"producer\": {\"linger_ms\": 2147483647, "
                  "\"queue_full_timeout_ms\": -2147483648}}");
    ksafe_config_free(cfg);
}
END_TEST

/* The locator walks the raw text: escapes, decoys, nesting and multi-byte
 * characters must not shift it. */
START_TEST(locations_survive_escapes_nesting_and_utf8)
{
    /* a string holding a look-alike of the path, and escaped keys */
    EXPECT_JSON_ERROR(
        "{\n"
        "  \"client_id\": \"say \\\"producer\\\": {\\\"linger_ms\\\": 1}\",\n"
        "  \"rdkafka_properties\": {\"a\\\"b\": \"x\", \"\\u00e9t\\u00e9\": "
        "\"y\", \"n\\\\\": \"z\"},\n"
        "  \"producer\": {\n"
        "    \"compression\": \"lz4\", \"linger_ms\": \"9\"\n"
        "  }\n"
        "}\n",
        "$.producer.linger_ms: expected an integer, got a string "
        "(line 5, column 40)");
    /* a key spelled with an escape, after a key that almost matches */
    EXPECT_JSON_ERROR("{\"rdkafka_properties\": {\"xA \": \"1\", "
                      "\"x\\u0041\": 1.5}}",
                      "$.rdkafka_properties.xA: expected a string, an "
                      "integer or a boolean (write real numbers as strings), "
                      "got a real number (line 1, column 48)");
    /* braces and quotes inside strings of skipped objects */
    EXPECT_JSON_ERROR(
        "{\n"
        "  \"security\": {\"protocol\": \"ssl\", \"ca_location\": "
        "\"/etc/{weird}\\\"[dir]/ca.pem\"},\n"
        "  \"rdkafka_properties\": {\"x}\": \"{\", \"y\": \"]\"},\n"
        "  \"consumer\": {\n"
        "    \"group_id\": \"g\",\n"
        "    \"assignment_strategy\": \"sticky\"\n"
        "  }\n"
        "}\n",
        "$.consumer.assignment_strategy: \"sticky\" is not one of "
        "cooperative-sticky, range, roundrobin (line 6, column 28)");
    /* columns count characters, not bytes */
    EXPECT_JSON_ERROR("{\"client_id\": \"h\xc3\xa9llo \xf0\x9f\x98\x80\", "
                      "\"allow_unsafe\": 1}",
                      "$.allow_unsafe: expected a boolean (true or false), "
                      "got an integer (line 1, column 42)");
    /* CRLF line ends */
    EXPECT_JSON_ERROR("{\r\n  \"producer\": {\r\n    \"linger_ms\": true\r\n"
                      "  }\r\n}",
                      "$.producer.linger_ms: expected an integer, got a "
                      "boolean (line 3, column 18)");
    /* a non-ASCII key is shown as written */
    EXPECT_JSON_ERROR("{\"caf\\u00e9\": 1}",
                      "$[\"caf\xc3\xa9\"]: unknown key (line 1, column 2)");
}
END_TEST

/* ---- secrets ----------------------------------------------------------- */

START_TEST(secret_values_are_never_echoed)
{
    ksafe_config *cfg;
    ksafe_error err;

    EXPECT_JSON_ERROR("{\"security\": {\"password\": 12345}}",
                      "$.security.password: expected a string, got an "
                      "integer (value not shown) (line 1, column 27)");
    EXPECT_JSON_ERROR("{\"security\": {\"key_password\": [\"hunter2\"]}}",
                      "$.security.key_password: expected a string, got an "
                      "array (value not shown) (line 1, column 31)");
    EXPECT_JSON_ERROR("{\"rdkafka_properties\": {\"sasl.password\": 98.6}}",
                      "$.rdkafka_properties[\"sasl.password\"]: expected a "
                      "string, an integer or a boolean (write real numbers "
                      "as strings), got a real number (value not shown) "
                      "(line 1, column 42)");
    /* jansson quotes the text near a syntax error: not for secrets */
    EXPECT_JSON_ERROR("{\"security\": {\"protocol\": \"sasl_ssl\", "
                      "\"password\": hunter2}}",
                      "$.security.password: invalid token (value not shown) "
                      "(line 1, column 56)");
    EXPECT_JSON_ERROR("{\"security\": {\"password\": \"hunter2",
                      "$.security.password: premature end of input (value "
                      "not shown) (line 1, column 34)");
    EXPECT_JSON_ERROR("{\"rdkafka_properties\": {\"sasl.oauthbearer."
                      "client.secret\": \"s3\\qcret\"}}",
                      "$.rdkafka_properties[\"sasl.oauthbearer.client."
                      "secret\"]: invalid escape (value not shown) (line 1, "
                      "column 63)");
    /* ...but other syntax errors keep jansson's hint */
    EXPECT_JSON_ERROR("{\"client_id\": hello}",
                      "$.client_id: invalid token near 'hello' (line 1, "
                      "column 19)");

    /* a secret that reaches validation is not quoted either */
    cfg = load_ok("{\"bootstrap_servers\": \"h:1\", \"security\": "
                  "{\"password\": \"hunter2\"}}");
    ck_assert_int_eq(ksafe_config_producer_options(cfg, NULL, &err),
                     KSAFE_EINVAL);
    {
        ksafe_producer_options o;
        ck_assert_int_eq(ksafe_config_producer_options(cfg, &o, &err),
                         KSAFE_EINVAL);
        ck_assert_ptr_null(strstr(err.message, "hunter2"));
        ck_assert_ptr_nonnull(strstr(err.message, "sasl_password"));
    }
    ksafe_config_free(cfg);
}
END_TEST

/* ---- files ------------------------------------------------------------- */

/* Writes `text` to a new temporary file; its path goes to `path`. */
static void write_temp(char *path, size_t size, const char *text)
{
    int fd;
    size_t len = strlen(text);

    snprintf(path, size, "/tmp/ksafe-config-XXXXXX");
    fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, text, len), (ssize_t)len);
    close(fd);
}

START_TEST(files_load_and_errors_name_the_file)
{
    char path[64], want[256];
    ksafe_config *cfg = NULL;
    ksafe_consumer_options o;
    ksafe_error err;

    write_temp(path, sizeof(path),
               "{\n  \"bootstrap_servers\": \"h:1\",\n"
               "  \"consumer\": {\"group_id\": \"from-file\"}\n}\n");
    ck_assert_ok(ksafe_config_load_file(&cfg, path, &err), err);
    ck_assert_ok(ksafe_config_consumer_options(cfg, &o, &err), err);
    ck_assert_str_eq(o.group_id, "from-file");
    ksafe_config_free(cfg);
    unlink(path);

    write_temp(path, sizeof(path),
               "{\n  \"bootstrap_servers\": \"h:1\",\n"
               "  \"consumer\": {\"group\": \"g\"}\n}\n");
    ck_assert_int_eq(ksafe_config_load_file(&cfg, path, &err), KSAFE_EJSON);
    ck_assert_ptr_null(cfg);
    snprintf(want, sizeof(want),
             "%s: $.consumer.group: unknown key; did you mean \"group_id\"? "
             "(line 3, column 16)",
             path);
    ck_assert_str_eq(err.message, want);
    unlink(path);

    /* jansson says column 0 at the start of a line; columns start at 1 */
    write_temp(path, sizeof(path), "{\"producer\": {\n");
    ck_assert_int_eq(ksafe_config_load_file(&cfg, path, &err), KSAFE_EJSON);
    snprintf(want, sizeof(want),
             "%s: $.producer: string or '}' expected near end of file "
             "(line 2, column 1)",
             path);
    ck_assert_str_eq(err.message, want);
    unlink(path);

    /* validation failures name the file too */
    write_temp(path, sizeof(path), "{\"client_id\": \"x\"}");
    ck_assert_ok(ksafe_config_load_file(&cfg, path, &err), err);
    ck_assert_int_eq(ksafe_config_consumer_options(cfg, &o, &err),
                     KSAFE_EINVAL);
    snprintf(want, sizeof(want), "%s: bootstrap_servers is required", path);
    ck_assert_msg(strncmp(err.message, want, strlen(want)) == 0, "%s",
                  err.message);
    ksafe_config_free(cfg);
    unlink(path);
}
END_TEST

START_TEST(unreadable_files_fail_with_eio)
{
    const char *missing = "/nonexistent-ksafe-dir/ksafe.json";
    ksafe_config *cfg = (ksafe_config *)1;
    ksafe_error err;
    char want[256];

    ck_assert_int_eq(ksafe_config_load_file(&cfg, missing, &err), KSAFE_EIO);
    ck_assert_ptr_null(cfg);
    ck_assert_int_eq(err.code, KSAFE_EIO);
    snprintf(want, sizeof(want), "cannot open config file \"%s\": %s",
             missing, strerror(ENOENT));
    ck_assert_str_eq(err.message, want);

    ck_assert_int_eq(ksafe_config_load_file(&cfg, "/tmp", &err), KSAFE_EIO);
    snprintf(want, sizeof(want), "cannot read config file \"/tmp\": %s",
             strerror(EISDIR));
    ck_assert_str_eq(err.message, want);
}
END_TEST

START_TEST(example_file_loads)
{
    const char *path = getenv("KSAFE_EXAMPLE_CONFIG");
    ksafe_config *cfg = NULL;
    ksafe_producer_options p;
    ksafe_consumer_options c;
    ksafe_error err;

    ck_assert_msg(path != NULL, "KSAFE_EXAMPLE_CONFIG is not set");
    ck_assert_ok(ksafe_config_load_file(&cfg, path, &err), err);
    ck_assert_ok(ksafe_config_producer_options(cfg, &p, &err), err);
    ck_assert_ok(ksafe_config_consumer_options(cfg, &c, &err), err);
    ck_assert_ptr_nonnull(c.group_id);
    ksafe_config_free(cfg);
}
END_TEST

/* ---- handles from a document ------------------------------------------- */

static const char handle_doc[] =
    "{\n"
    "  \"bootstrap_servers\": \"127.0.0.1:1\",\n"
    "  \"client_id\": \"cfg-test\",\n"
    "  \"rdkafka_properties\": {\"socket.keepalive.enable\": true,\n"
    "                         \"message.max.bytes\": 2000000},\n"
    "  \"producer\": {\"linger_ms\": 17, \"compression\": \"lz4\",\n"
    "               \"max_in_flight\": 3, \"delivery_timeout_ms\": 60000},\n"
    "  \"consumer\": {\"group_id\": \"cfg-group\",\n"
    "               \"auto_offset_reset\": \"%s\",\n"
    "               \"assignment_strategy\": \"range\",\n"
    "               \"session_timeout_ms\": 30000,\n"
    "               \"heartbeat_interval_ms\": 2000}\n"
    "}\n";

START_TEST(producer_from_json_has_the_documents_settings)
{
    char json[1024];
    ksafe_config *cfg;
    ksafe_producer_options o;
    ksafe_producer *p = NULL;
    ksafe_error err;
    rd_kafka_t *rk;

    snprintf(json, sizeof(json), handle_doc, "earliest");
    cfg = load_ok(json);
    ck_assert_ok(ksafe_config_producer_options(cfg, &o, &err), err);
    o.log_cb = test_quiet_log;
    ck_assert_ok(ksafe_producer_new(&p, &o, &err), err);
    /* the handle copied what it needs: the config may go now */
    ksafe_config_free(cfg);
    rk = ksafe_producer_rdkafka(p);
    ck_assert_str_eq(prop(rk, "bootstrap.servers"), "127.0.0.1:1");
    ck_assert_str_eq(prop(rk, "client.id"), "cfg-test");
    ck_assert_str_eq(prop(rk, "linger.ms"), "17");
    ck_assert_str_eq(prop(rk, "compression.type"), "lz4");
    ck_assert_str_eq(prop(rk, "max.in.flight.requests.per.connection"), "3");
    ck_assert_str_eq(prop(rk, "delivery.timeout.ms"), "60000");
    ck_assert_str_eq(prop(rk, "socket.keepalive.enable"), "true");
    ck_assert_str_eq(prop(rk, "message.max.bytes"), "2000000");
    ck_assert_str_eq(prop(rk, "enable.idempotence"), "true");
    ksafe_producer_free(p);
}
END_TEST

/* zstd is compiled into librdkafka only when libzstd was there: tagged
 * TEST_NEEDS_ZSTD, SKIP (77) on a librdkafka without it. */
START_TEST(zstd_from_json_reaches_librdkafka)
{
    ksafe_config *cfg = load_ok("{\"bootstrap_servers\": \"127.0.0.1:1\", "
                                "\"producer\": {\"compression\": "
                                "\"zstd\"}}");
    ksafe_producer_options o;
    ksafe_producer *p = NULL;
    ksafe_error err;

    ck_assert_ok(ksafe_config_producer_options(cfg, &o, &err), err);
    o.log_cb = test_quiet_log;
    ck_assert_ok(ksafe_producer_new(&p, &o, &err), err);
    ksafe_config_free(cfg);
    ck_assert_str_eq(prop(ksafe_producer_rdkafka(p), "compression.type"),
                     "zstd");
    ksafe_producer_free(p);
}
END_TEST

START_TEST(consumer_from_json_has_the_documents_settings)
{
    static const char *const resets[][2] = {{"earliest", "smallest"},
                                            {"latest", "largest"}};
    size_t i;

    for (i = 0; i < 2; i++) {
        char json[1024];
        ksafe_config *cfg;
        ksafe_consumer_options o;
        ksafe_consumer *c = NULL;
        ksafe_error err;
        rd_kafka_t *rk;

        snprintf(json, sizeof(json), handle_doc, resets[i][0]);
        cfg = load_ok(json);
        ck_assert_ok(ksafe_config_consumer_options(cfg, &o, &err), err);
        o.log_cb = test_quiet_log;
        ck_assert_ok(ksafe_consumer_new(&c, &o, &err), err);
        ksafe_config_free(cfg);
        rk = ksafe_consumer_rdkafka(c);
        ck_assert_str_eq(prop(rk, "group.id"), "cfg-group");
        ck_assert_str_eq(prop(rk, "client.id"), "cfg-test");
        ck_assert_str_eq(prop(rk, "auto.offset.reset"), resets[i][1]);
        ck_assert_str_eq(prop(rk, "partition.assignment.strategy"), "range");
        ck_assert_str_eq(prop(rk, "session.timeout.ms"), "30000");
        ck_assert_str_eq(prop(rk, "heartbeat.interval.ms"), "2000");
        ck_assert_str_eq(prop(rk, "socket.keepalive.enable"), "true");
        ck_assert_str_eq(prop(rk, "enable.auto.commit"), "false");
        ksafe_consumer_free(c);
    }
}
END_TEST

/*
 * A document whose raw properties the handle would refuse fails when the
 * options are read, with the code and the message _new would give.
 */
START_TEST(options_from_json_refuse_what_new_refuses)
{
    static const struct {
        int consumer;
        const char *props;
        int code;
        const char *needle;
    } cases[] = {
        {1, "{\"enable.auto.commit\": true}", KSAFE_EUNSAFE,
         "enable.auto.commit=true"},
        {1, "{\"no.such.property\": 1}", KSAFE_EINVAL, "no.such.property"},
        {0, "{\"acks\": 1}", KSAFE_EUNSAFE, "acks=1"},
        {0, "{\"enable.idempotence\": false}", KSAFE_EUNSAFE,
         "enable.idempotence=false"},
        {0, "{\"no.such.property\": 1}", KSAFE_EINVAL, "no.such.property"},
    };
    size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char json[512];
        ksafe_config *cfg;
        ksafe_error from_json, from_new;
        int rc_json, rc_new;

        snprintf(json, sizeof(json),
                 "{\"bootstrap_servers\": \"127.0.0.1:1\",\n"
                 " \"rdkafka_properties\": %s,\n"
                 " \"consumer\": {\"group_id\": \"g\"}}\n",
                 cases[i].props);
        cfg = load_ok(json);
        memset(&from_new, 0, sizeof(from_new));
        if (cases[i].consumer) {
            ksafe_consumer_options o;
            ksafe_consumer *c = NULL;
            rc_json = ksafe_config_consumer_options(cfg, &o, &from_json);
            o.log_cb = test_quiet_log;
            rc_new = ksafe_consumer_new(&c, &o, &from_new);
            ksafe_consumer_free(c);
        } else {
            ksafe_producer_options o;
            ksafe_producer *p = NULL;
            rc_json = ksafe_config_producer_options(cfg, &o, &from_json);
            o.log_cb = test_quiet_log;
            rc_new = ksafe_producer_new(&p, &o, &from_new);
            ksafe_producer_free(p);
        }
        ksafe_config_free(cfg);
        ck_assert_int_eq(rc_new, cases[i].code);
        ck_assert_msg(rc_json == cases[i].code,
                      "%s: config options returned %d (%s), _new %d (%s)",
                      cases[i].props, rc_json,
                      rc_json ? from_json.message : "", rc_new,
                      from_new.message);
        ck_assert_msg(strstr(from_json.message, cases[i].needle) &&
                          strstr(from_json.message, from_new.message),
                      "\"%s\" lacks \"%s\" or _new's \"%s\"",
                      from_json.message, cases[i].needle, from_new.message);
    }
}
END_TEST

/* ---- arguments --------------------------------------------------------- */

START_TEST(null_arguments_are_refused)
{
    ksafe_config *cfg = (ksafe_config *)1;
    ksafe_producer_options p;
    ksafe_consumer_options c;
    ksafe_error err;

    ck_assert_int_eq(ksafe_config_load_string(NULL, "{}", &err),
                     KSAFE_EINVAL);
    ck_assert_int_eq(ksafe_config_load_string(&cfg, NULL, &err),
                     KSAFE_EINVAL);
    ck_assert_ptr_null(cfg);
    ck_assert_int_eq(ksafe_config_load_file(&cfg, NULL, &err), KSAFE_EINVAL);
    ck_assert_int_eq(ksafe_config_producer_options(NULL, &p, &err),
                     KSAFE_EINVAL);
    ck_assert_int_eq(ksafe_config_consumer_options(NULL, &c, NULL),
                     KSAFE_EINVAL);
    ck_assert_int_eq(ksafe_config_load_string(&cfg, "{\"x\": 1}", NULL),
                     KSAFE_EJSON);
    ksafe_config_free(NULL);
}
END_TEST

static Suite *config_suite(void)
{
    Suite *s = suite_create("config");
    TCase *mapping = tcase_create("mapping");
    TCase *preset = tcase_create("preset");
    TCase *errors = tcase_create("errors");
    TCase *secrets = tcase_create("secrets");
    TCase *files = tcase_create("files");
    TCase *handles = tcase_create("handles");
    TCase *args = tcase_create("arguments");
    TCase *t;

    tcase_add_test(mapping, full_document_maps_every_producer_field);
    tcase_add_test(mapping, full_document_maps_every_consumer_field);
    tcase_add_test(mapping, group_protocol_is_read_and_checked);
    tcase_add_test(mapping, enum_values_ignore_case);
    tcase_add_test(mapping, properties_keep_order_and_convert_scalars);
    suite_add_tcase(s, mapping);

    tcase_add_test(preset, missing_keys_keep_the_preset);
    tcase_add_test(preset, empty_document_fails_validation_for_bootstrap);
    tcase_add_test(preset, each_side_ignores_the_other_section);
    suite_add_tcase(s, preset);

    tcase_add_test(errors, syntax_errors_carry_janssons_position);
    tcase_add_test(errors, duplicate_keys_point_at_the_second);
    tcase_add_test(errors, unknown_keys_are_named_with_a_hint);
    tcase_add_test(errors, wrong_types_say_what_was_expected);
    tcase_add_test(errors, bad_enum_values_list_the_allowed_ones);
    tcase_add_test(errors, integers_must_fit_an_int);
    tcase_add_test(errors, properties_refuse_other_values);
    tcase_add_test(errors, locations_survive_escapes_nesting_and_utf8);
    suite_add_tcase(s, errors);

    tcase_add_test(secrets, secret_values_are_never_echoed);
    suite_add_tcase(s, secrets);

    tcase_add_test(files, files_load_and_errors_name_the_file);
    tcase_add_test(files, unreadable_files_fail_with_eio);
    tcase_add_test(files, example_file_loads);
    suite_add_tcase(s, files);

    tcase_add_test(handles, producer_from_json_has_the_documents_settings);
    tcase_add_test(handles, consumer_from_json_has_the_documents_settings);
    tcase_add_test(handles, options_from_json_refuse_what_new_refuses);
    suite_add_tcase(s, handles);
    t = tcase_create("zstd");
    tcase_set_tags(t, TEST_NEEDS_ZSTD);
    tcase_add_test(t, zstd_from_json_reaches_librdkafka);
    suite_add_tcase(s, t);

    tcase_add_test(args, null_arguments_are_refused);
    suite_add_tcase(s, args);
    return s;
}

KSAFE_TEST_MAIN(config_suite)
