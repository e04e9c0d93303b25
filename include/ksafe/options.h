/**
 * @file
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
    KSAFE_SECURITY_PLAINTEXT = 0,  /**< "plaintext": no TLS or SASL; default */
    KSAFE_SECURITY_SSL,            /**< "ssl": TLS, client cert optional */
    KSAFE_SECURITY_SASL_PLAINTEXT, /**< "sasl_plaintext": SASL without TLS */
    KSAFE_SECURITY_SASL_SSL        /**< "sasl_ssl": SASL over TLS */
} ksafe_security_protocol;

/** sasl.mechanisms (used with the two SASL protocols only) */
typedef enum ksafe_sasl_mechanism {
    KSAFE_SASL_PLAIN = 0,     /**< "PLAIN" (default) */
    KSAFE_SASL_SCRAM_SHA_256, /**< "SCRAM-SHA-256" */
    KSAFE_SASL_SCRAM_SHA_512  /**< "SCRAM-SHA-512" */
} ksafe_sasl_mechanism;

/** Syslog-style levels used by librdkafka and by ksafe's own log lines. */
#define KSAFE_LOG_ERR 3
#define KSAFE_LOG_WARNING 4 /**< warning; default log: this and worse */
#define KSAFE_LOG_NOTICE 5  /**< notice */
#define KSAFE_LOG_INFO 6    /**< informational */
#define KSAFE_LOG_DEBUG 7   /**< debug (librdkafka's `debug` property) */

/**
 * Receives every log line of the client (librdkafka's and ksafe's).
 * Runs on librdkafka's internal threads or on the thread calling into ksafe:
 * it must be thread-safe and must not call back into the client.
 * Secrets (SASL and key passwords) are replaced by "***" before the call.
 * When NULL, lines at KSAFE_LOG_WARNING and more severe go to stderr.
 */
typedef void (*ksafe_log_cb)(int level, const char *facility,
                             const char *message, void *payload);

/**
 * Fields shared by the producer and consumer options, in this order.
 * All strings are borrowed until the *_new() call, which copies them.
 */
#define KSAFE_CLIENT_OPTIONS_FIELDS                                          \
    /** "host:port[,host:port]"; required. */                                \
    const char *bootstrap_servers;                                           \
    /** client.id; NULL keeps librdkafka's "rdkafka". */                     \
    const char *client_id;                                                   \
    /** KSAFE_SECURITY_PLAINTEXT by default. */                              \
    ksafe_security_protocol security_protocol;                               \
    /** For the SASL protocols; username and password required there. */    \
    ksafe_sasl_mechanism sasl_mechanism;                                     \
    const char *sasl_username; /**< SASL user name */                        \
    const char *sasl_password; /**< SASL password; never logged */           \
    const char *ssl_ca_location;          /**< CA bundle (PEM path) */       \
    const char *ssl_certificate_location; /**< client certificate (PEM) */   \
    const char *ssl_key_location;         /**< client key (PEM path) */      \
    const char *ssl_key_password; /**< the key's password; never logged */   \
    ksafe_log_cb log_cb; /**< NULL: warnings and errors to stderr */         \
    void *log_payload;   /**< passed to log_cb */                            \
    /** NULL-terminated list "key", "value", "key", "value", ..., NULL      \
        applied after the typed fields for anything ksafe does not type. A   \
        property that weakens a safety guarantee is refused with             \
        KSAFE_EUNSAFE unless allow_unsafe is set, in which case it is        \
        applied and logged once at warning level. */                         \
    const char *const *rdkafka_properties;                                   \
    int allow_unsafe; /**< 0 (default) or 1: apply refused raw properties */

/** The _INIT values of KSAFE_CLIENT_OPTIONS_FIELDS, in the same order. */
#define KSAFE_CLIENT_OPTIONS_INIT_VALUES                                     \
    NULL, NULL, KSAFE_SECURITY_PLAINTEXT, KSAFE_SASL_PLAIN, NULL, NULL,      \
        NULL, NULL, NULL, NULL, NULL, NULL, NULL, 0

KSAFE_END_DECLS

#endif
