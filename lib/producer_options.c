/*
 * lib/producer_options.c - the producer's options: the safe preset, their
 * validation (ksafe_producer_new runs the same), and the librdkafka
 * properties they become.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "internal.h"
#include "producer_internal.h"

const ksafe_producer_options ksafe__producer_preset =
    KSAFE_PRODUCER_OPTIONS_INIT;

int ksafe_producer_options_init(ksafe_producer_options *opts,
                                unsigned int version)
{
    if (!opts)
        return KSAFE_EINVAL;
    if (version != KSAFE_PRODUCER_OPTIONS_VERSION)
        return KSAFE_EVERSION;
    *opts = ksafe__producer_preset;
    return 0;
}

static int is_true(const char *v)
{
    return strcasecmp(v, "true") == 0 || strcmp(v, "1") == 0 ||
           strcasecmp(v, "t") == 0;
}

/*
 * Raw properties the producer's own machinery depends on. The general guard
 * (client.c) lets allow_unsafe through; these it must not: transactions
 * need idempotence and acks=all, and a transactional.id set behind the
 * typed field would leave ksafe's transaction state blind.
 */
static int check_raw_properties(const ksafe_producer_options *o,
                                ksafe_error *err)
{
    const char *const *kv;

    for (kv = o->rdkafka_properties; kv && kv[0] && kv[1]; kv += 2) {
        const char *k = kv[0], *v = kv[1];

        if (strcmp(k, "transactional.id") == 0)
            return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                    "rdkafka property transactional.id: use "
                                    "the transactional_id field");
        if (!o->transactional_id)
            continue;
        if (strcmp(k, "enable.idempotence") == 0 && !is_true(v))
            return ksafe__error_set(
                err, KSAFE_EUNSAFE, 0, 0,
                "refused rdkafka property %s=%s: a transactional producer "
                "(transactional_id is set) needs idempotence; allow_unsafe "
                "does not apply",
                k, v);
        if ((strcmp(k, "acks") == 0 ||
             strcmp(k, "request.required.acks") == 0) &&
            strcasecmp(v, "all") != 0 && strcmp(v, "-1") != 0)
            return ksafe__error_set(
                err, KSAFE_EUNSAFE, 0, 0,
                "refused rdkafka property %s=%s: a transactional producer "
                "(transactional_id is set) needs acks=all; allow_unsafe "
                "does not apply",
                k, v);
    }
    return 0;
}

/*
 * librdkafka refuses, when it creates the instance, settings that cannot
 * go with idempotence. The preset keeps idempotence on, so an override
 * that allow_unsafe let through would only fail in _new, as KSAFE_EKAFKA;
 * found here, validation refuses it too and says what else to change.
 */
static int check_idempotence_conflicts(const ksafe_producer_options *o,
                                       ksafe_error *err)
{
    const char *const *kv;

    for (kv = o->rdkafka_properties; kv && kv[0]; kv += 2)
        if (strcmp(kv[0], "enable.idempotence") == 0 && !is_true(kv[1]))
            return 0;
    for (kv = o->rdkafka_properties; kv && kv[0]; kv += 2) {
        const char *k = kv[0], *v = kv[1];
        const char *needs = NULL;

        if ((strcmp(k, "acks") == 0 ||
             strcmp(k, "request.required.acks") == 0) &&
            strcasecmp(v, "all") != 0 && strcmp(v, "-1") != 0)
            needs = "acks=all";
        else if ((strcmp(k, "max.in.flight") == 0 ||
                  strcmp(k, "max.in.flight.requests.per.connection") == 0) &&
                 atoi(v) > 5)
            needs = "at most 5 requests in flight";
        else if ((strcmp(k, "retries") == 0 ||
                  strcmp(k, "message.send.max.retries") == 0) &&
                 atoi(v) < 1)
            needs = "retries >= 1";
        else if (strcmp(k, "queuing.strategy") == 0 &&
                 strcmp(v, "fifo") != 0)
            needs = "queuing.strategy=fifo";
        if (needs)
            return ksafe__error_set(
                err, KSAFE_EINVAL, 0, 0,
                "rdkafka property %s=%s: the idempotent producer needs %s "
                "and librdkafka would refuse it; set enable.idempotence="
                "false too to go without idempotence",
                k, v, needs);
    }
    return 0;
}

int ksafe_producer_options_validate(const ksafe_producer_options *opts,
                                    ksafe_error *err)
{
    ksafe__client_view v;
    int rc;

    if (!opts)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "producer options are NULL");
    if (opts->version != KSAFE_PRODUCER_OPTIONS_VERSION)
        return ksafe__error_set(err, KSAFE_EVERSION, 0, 0,
                                "ksafe_producer_options.version is %u; this "
                                "library knows version %d (initialise with "
                                "KSAFE_PRODUCER_OPTIONS_INIT)",
                                opts->version, KSAFE_PRODUCER_OPTIONS_VERSION);
    /* First: for a transactional producer its refusal says why
     * allow_unsafe does not help, which the general guard cannot. */
    if ((rc = check_raw_properties(opts, err)))
        return rc;
    KSAFE__CLIENT_VIEW(v, opts);
    if ((rc = ksafe__client_validate(&v, err)) ||
        (rc = check_idempotence_conflicts(opts, err)))
        return rc;
    if ((rc = ksafe__check_range(err, "max_in_flight", opts->max_in_flight, 1, 5)))
        return rc == KSAFE_EINVAL && opts->max_in_flight > 5
                   ? ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                      "max_in_flight is %d: the idempotent "
                                      "producer keeps order with at most 5 "
                                      "requests in flight",
                                      opts->max_in_flight)
                   : rc;
    if ((rc = ksafe__check_range(err, "delivery_timeout_ms", opts->delivery_timeout_ms,
                          1, 2147483647)))
        return rc;
    if ((rc = ksafe__check_range(err, "linger_ms", opts->linger_ms, 0, 900000)))
        return rc;
    if ((unsigned)opts->compression > KSAFE_COMPRESSION_ZSTD)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "compression %d is not a ksafe_compression "
                                "value",
                                (int)opts->compression);
    if ((unsigned)opts->queue_full > KSAFE_QUEUE_FULL_RETURN)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "queue_full %d is not a "
                                "ksafe_queue_full_policy value",
                                (int)opts->queue_full);
    if ((rc = ksafe__check_range(err, "queue_full_timeout_ms",
                          opts->queue_full_timeout_ms, 0, 2147483647)))
        return rc;
    if ((unsigned)opts->partitioner > KSAFE_PARTITIONER_FNV1A_RANDOM)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "partitioner %d is not a ksafe_partitioner "
                                "value",
                                (int)opts->partitioner);
    if (opts->transactional_id) {
        if (!*opts->transactional_id)
            return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                    "transactional_id is empty: use NULL for "
                                    "a producer without transactions");
        if ((rc = ksafe__check_range(err, "transaction_timeout_ms",
                              opts->transaction_timeout_ms, 1000,
                              2147483647)))
            return rc;
        if (opts->delivery_timeout_ms > opts->transaction_timeout_ms)
            return ksafe__error_set(
                err, KSAFE_EINVAL, 0, 0,
                "delivery_timeout_ms (%d) exceeds transaction_timeout_ms "
                "(%d): a record could outlive its transaction",
                opts->delivery_timeout_ms, opts->transaction_timeout_ms);
    }
    return 0;
}

static const char *const compression_names[] = {"none", "gzip", "snappy",
                                                 "lz4", "zstd"};
static const char *const partitioner_names[] = {
    "consistent_random", "murmur2_random", "fnv1a_random"};

/* The safe preset's fixed properties, then the typed ones. */
int ksafe__producer_conf(const ksafe_producer_options *o,
                         rd_kafka_conf_t *conf, ksafe_error *err)
{
    char inflight[16], delivery[16], linger[16], txn_timeout[16];
    struct {
        const char *key, *value;
    } set[] = {
        {"acks", "all"},
        {"enable.idempotence", "true"},
        {"max.in.flight.requests.per.connection", inflight},
        {"delivery.timeout.ms", delivery},
        {"linger.ms", linger},
        {"compression.type", compression_names[o->compression]},
        {"partitioner", partitioner_names[o->partitioner]},
        {"transactional.id", o->transactional_id},
        {"transaction.timeout.ms", o->transactional_id ? txn_timeout : NULL},
    };
    size_t i;
    int rc;

    snprintf(inflight, sizeof(inflight), "%d", o->max_in_flight);
    snprintf(delivery, sizeof(delivery), "%d", o->delivery_timeout_ms);
    snprintf(linger, sizeof(linger), "%d", o->linger_ms);
    snprintf(txn_timeout, sizeof(txn_timeout), "%d",
             o->transaction_timeout_ms);
    for (i = 0; i < sizeof(set) / sizeof(set[0]); i++)
        if (set[i].value &&
            (rc = ksafe__conf_set(conf, set[i].key, set[i].value, err)))
            return rc;
    return 0;
}
