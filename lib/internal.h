/*
 * lib/internal.h - what the library's files share. Never installed.
 */
#ifndef KSAFE_INTERNAL_H
#define KSAFE_INTERNAL_H

#include <stdarg.h>

#include <librdkafka/rdkafka.h>

#include "ksafe/ksafe.h"

#define KSAFE__UNUSED(x) ((void)(x))

#if defined(__GNUC__)
#define KSAFE__PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define KSAFE__PRINTF(f, a)
#endif

/* ---- error.c ----------------------------------------------------------- */

/* Fills `err` (if not NULL) and returns `code`. */
int ksafe__error_set(ksafe_error *err, int code, int rdkafka_code,
                     unsigned int flags, const char *fmt, ...)
    KSAFE__PRINTF(5, 6);

/* Fills `err` from librdkafka's error object (flags included), prefixing the
 * message with `what`; returns the ksafe code (KSAFE_EFATAL for fatal
 * errors, KSAFE_EKAFKA otherwise). Does not destroy `rderr`. */
int ksafe__error_from_rd(ksafe_error *err, const rd_kafka_error_t *rderr,
                         const char *what);

/* The same from a plain response code. */
int ksafe__error_from_resp(ksafe_error *err, rd_kafka_resp_err_t code,
                           const char *what);

/* ---- client.c: what a producer and a consumer have in common ----------- */

/* 0, or KSAFE_EKAFKA when the librdkafka linked at run time is older than
 * the headers ksafe was compiled with (every _new() checks). */
int ksafe__rdkafka_version_check(ksafe_error *err);

/* The shared option fields, copied out of either options struct. */
typedef struct ksafe__client_view {
    KSAFE_CLIENT_OPTIONS_FIELDS
} ksafe__client_view;

#define KSAFE__CLIENT_VIEW(v, o)                                             \
    do {                                                                     \
        (v).bootstrap_servers = (o)->bootstrap_servers;                      \
        (v).client_id = (o)->client_id;                                      \
        (v).security_protocol = (o)->security_protocol;                      \
        (v).sasl_mechanism = (o)->sasl_mechanism;                            \
        (v).sasl_username = (o)->sasl_username;                              \
        (v).sasl_password = (o)->sasl_password;                              \
        (v).ssl_ca_location = (o)->ssl_ca_location;                          \
        (v).ssl_certificate_location = (o)->ssl_certificate_location;        \
        (v).ssl_key_location = (o)->ssl_key_location;                        \
        (v).ssl_key_password = (o)->ssl_key_password;                        \
        (v).log_cb = (o)->log_cb;                                            \
        (v).log_payload = (o)->log_payload;                                  \
        (v).rdkafka_properties = (o)->rdkafka_properties;                    \
        (v).allow_unsafe = (o)->allow_unsafe;                                \
    } while (0)

typedef enum { KSAFE__PRODUCER, KSAFE__CONSUMER } ksafe__client_kind;

/*
 * The first member of both ksafe_producer and ksafe_consumer, and the
 * opaque of their rd_kafka_t: librdkafka callbacks find the handle with
 * rd_kafka_opaque(rk).
 */
typedef struct ksafe__client {
    ksafe__client_kind kind;
    rd_kafka_t *rk;
    ksafe_log_cb log_cb;
    void *log_payload;
    char **secrets;   /* copies of every secret value, scrubbed from logs */
    size_t n_secrets;
} ksafe__client;

/* 0 if lo <= value <= hi, else KSAFE_EINVAL naming `field` and the range. */
int ksafe__check_range(ksafe_error *err, const char *field, long long value,
                       long long lo, long long hi);

/* Checks the shared fields, the raw properties included: the guard and
 * librdkafka's own refusals, exactly as _new would meet them. */
int ksafe__client_validate(const ksafe__client_view *v, ksafe_error *err);

/* Sets the typed shared fields on `conf` and installs the log bridge. */
int ksafe__client_conf(const ksafe__client_view *v, rd_kafka_conf_t *conf,
                       ksafe_error *err);

/* Applies the raw properties (after ksafe__client_validate); logs the
 * unsafe ones allow_unsafe lets through. */
int ksafe__client_conf_raw(ksafe__client *cl, const ksafe__client_view *v,
                           rd_kafka_conf_t *conf, ksafe_error *err);

/* Sets one property; on refusal the message names it (value redacted if
 * secret). */
int ksafe__conf_set(rd_kafka_conf_t *conf, const char *key, const char *value,
                    ksafe_error *err);

/* Copies log settings and secrets into `cl`. */
int ksafe__client_init(ksafe__client *cl, ksafe__client_kind kind,
                       const ksafe__client_view *v, ksafe_error *err);

/* Creates the rd_kafka_t (takes `conf` in all cases). */
int ksafe__client_start(ksafe__client *cl, rd_kafka_conf_t *conf,
                        ksafe_error *err);

/* Frees what ksafe__client_init allocated and destroys rk if set. */
void ksafe__client_release(ksafe__client *cl);

/* 1 if a property's value must never be shown. */
int ksafe__is_secret_key(const char *key);

/* ---- log.c ------------------------------------------------------------- */

/* librdkafka's log_cb: forwards to the client's log_cb or stderr. */
void ksafe__log_bridge(const rd_kafka_t *rk, int level, const char *fac,
                       const char *buf);

/* A ksafe log line through the same path as librdkafka's. */
void ksafe__log(const ksafe__client *cl, int level, const char *facility,
                const char *fmt, ...) KSAFE__PRINTF(4, 5);

/* ---- mock.c ------------------------------------------------------------ */

/* The log_cb of the kit's own librdkafka handles (embedded cluster, admin):
 * errors to stderr, the rest dropped. */
void ksafe__mock_quiet_log(const rd_kafka_t *rk, int level, const char *fac,
                           const char *buf);

/* ---- util.c ------------------------------------------------------------ */

char *ksafe__strdup(const char *s); /* NULL stays NULL */
int64_t ksafe__now_ms(void);        /* monotonic clock */

/* Kafka refuses topic names longer than this. */
#define KSAFE__TOPIC_MAX 249

/* 0, or KSAFE_EINVAL naming `what` when `topic` (non-empty) is not a name
 * Kafka allows (too long, a character outside [a-zA-Z0-9._-], "." or
 * ".."): refused up front, as no broker would ever take it. */
int ksafe__topic_check(const char *topic, const char *what,
                       ksafe_error *err);

#endif
