/*
 * ksafe/options.h - the part of the typed options shared by producers and
 * consumers: where the cluster is, how to authenticate, logging, and the
 * raw-property escape hatch with its safety guard.
 *
 * The shared fields are spelled out in both ksafe_producer_options and
 * ksafe_consumer_options (through KSAFE_CLIENT_OPTIONS_FIELDS), so they are
 * reachable directly: opts.bootstrap_servers, opts.rdkafka_properties, ...
 */
#ifndef KSAFE_OPTIONS_H
#define KSAFE_OPTIONS_H

#include "common.h"

KSAFE_BEGIN_DECLS

/** security.protocol */
typedef enum ksafe_security_protocol {
    KSAFE_SECURITY_PLAINTEXT = 0,
    KSAFE_SECURITY_SSL,
    KSAFE_SECURITY_SASL_PLAINTEXT,
    KSAFE_SECURITY_SASL_SSL
} ksafe_security_protocol;

/** sasl.mechanisms (used with the two SASL protocols only) */
typedef enum ksafe_sasl_mechanism {
    KSAFE_SASL_PLAIN = 0,
    KSAFE_SASL_SCRAM_SHA_256,
    KSAFE_SASL_SCRAM_SHA_512
} ksafe_sasl_mechanism;

/** Syslog-style levels used by librdkafka and by ksafe's own log lines. */
#define KSAFE_LOG_ERR 3
#define KSAFE_LOG_WARNING 4
#define KSAFE_LOG_NOTICE 5
#define KSAFE_LOG_INFO 6
#define KSAFE_LOG_DEBUG 7

/**
 * Receives every log line of the client (librdkafka's and ksafe's).
 * Runs on librdkafka's internal threads or on the thread calling into ksafe:
 * it must be thread-safe and must not call back into the client.
 * Secrets (SASL and key passwords) are replaced by "***" before the call.
 * When NULL, lines at KSAFE_LOG_WARNING and more severe go to stderr.
 */
typedef void (*ksafe_log_cb)(int level, const char *facility,
                             const char *message, void *payload);

/*
 * Fields shared by the producer and consumer options, in this order.
 * All strings are borrowed until the *_new() call, which copies them.
 *
 * bootstrap_servers   "host:port[,host:port]"; required.
 * client_id           client.id; NULL keeps librdkafka's "rdkafka".
 * security_protocol   KSAFE_SECURITY_PLAINTEXT by default.
 * sasl_mechanism      for the SASL protocols; username and password required.
 * ssl_*               CA bundle, client certificate and key (PEM paths).
 * log_cb, log_payload see ksafe_log_cb.
 * rdkafka_properties  NULL-terminated list "key", "value", "key", "value",
 *                     ..., NULL applied after the typed fields for anything
 *                     ksafe does not type. A property that weakens a safety
 *                     guarantee is refused with KSAFE_EUNSAFE unless
 *                     allow_unsafe is set, in which case it is applied and
 *                     logged once at warning level.
 * allow_unsafe        0 (default) or 1.
 */
#define KSAFE_CLIENT_OPTIONS_FIELDS                                          \
    const char *bootstrap_servers;                                           \
    const char *client_id;                                                   \
    ksafe_security_protocol security_protocol;                               \
    ksafe_sasl_mechanism sasl_mechanism;                                     \
    const char *sasl_username;                                               \
    const char *sasl_password;                                               \
    const char *ssl_ca_location;                                             \
    const char *ssl_certificate_location;                                    \
    const char *ssl_key_location;                                            \
    const char *ssl_key_password;                                            \
    ksafe_log_cb log_cb;                                                     \
    void *log_payload;                                                       \
    const char *const *rdkafka_properties;                                   \
    int allow_unsafe;

/* The _INIT values of the shared fields, in the same order. */
#define KSAFE_CLIENT_OPTIONS_INIT_VALUES                                     \
    NULL, NULL, KSAFE_SECURITY_PLAINTEXT, KSAFE_SASL_PLAIN, NULL, NULL,      \
        NULL, NULL, NULL, NULL, NULL, NULL, NULL, 0

KSAFE_END_DECLS

#endif
