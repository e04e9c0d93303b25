/*
 * ksafe/producer.h - the safe producer.
 *
 * The preset is acks=all with the idempotent producer: a record is reported
 * delivered only once every in-sync replica has it, and librdkafka's retries
 * can neither duplicate nor reorder it.
 */
#ifndef KSAFE_PRODUCER_H
#define KSAFE_PRODUCER_H

#include <librdkafka/rdkafka.h>

#include "common.h"
#include "error.h"
#include "options.h"

KSAFE_BEGIN_DECLS

typedef struct ksafe_producer ksafe_producer;

/** compression.type */
typedef enum ksafe_compression {
    KSAFE_COMPRESSION_NONE = 0,
    KSAFE_COMPRESSION_GZIP,
    KSAFE_COMPRESSION_SNAPPY,
    KSAFE_COMPRESSION_LZ4,
    KSAFE_COMPRESSION_ZSTD
} ksafe_compression;

/** What a send does when librdkafka's local queue is full. */
typedef enum ksafe_queue_full_policy {
    /** Serve delivery reports and wait up to queue_full_timeout_ms for room,
     * then fail with KSAFE_EQUEUEFULL (RETRIABLE). */
    KSAFE_QUEUE_FULL_BLOCK = 0,
    /** Fail at once with KSAFE_EQUEUEFULL (RETRIABLE). */
    KSAFE_QUEUE_FULL_RETURN
} ksafe_queue_full_policy;

/** Use librdkafka's partitioner (see README: consistent_random on the key). */
#define KSAFE_PARTITION_ANY (-1)

/** One record header. Strings and bytes are borrowed by the send call. */
typedef struct ksafe_header {
    const char *name;
    const void *value;
    size_t value_len;
} ksafe_header;

/**
 * A record to send. Everything is borrowed for the duration of the send call,
 * which copies what it needs.
 */
typedef struct ksafe_record {
    const char *topic;            /**< required */
    int32_t partition;            /**< KSAFE_PARTITION_ANY: by key */
    const void *key;              /**< may be NULL */
    size_t key_len;
    const void *value;            /**< may be NULL (a tombstone) */
    size_t value_len;
    const ksafe_header *headers;  /**< header_count entries, may be NULL */
    size_t header_count;
    int64_t timestamp_ms;         /**< 0: now */
    void *opaque;                 /**< handed back in the delivery report */
} ksafe_record;

#define KSAFE_RECORD_INIT                                                    \
    { NULL, KSAFE_PARTITION_ANY, NULL, 0, NULL, 0, NULL, 0, 0, NULL }

/**
 * The fate of one record, as given to ksafe_delivery_cb. All pointers are
 * borrowed for the duration of the callback.
 */
typedef struct ksafe_delivery {
    const char *topic;
    int32_t partition;
    int64_t offset;               /**< -1 when not delivered */
    const void *key;
    size_t key_len;
    const void *value;
    size_t value_len;
    void *opaque;                 /**< ksafe_record.opaque */
    const ksafe_error *error;     /**< NULL when delivered */
} ksafe_delivery;

/**
 * Called once per record, delivered or failed, on the thread that calls
 * ksafe_producer_poll(), _flush() or _close() (and inside blocking sends).
 */
typedef void (*ksafe_delivery_cb)(const ksafe_delivery *delivery,
                                  void *payload);

#define KSAFE_PRODUCER_OPTIONS_VERSION 1

/** Producer options. Initialise with KSAFE_PRODUCER_OPTIONS_INIT. */
typedef struct ksafe_producer_options {
    unsigned int version;
    KSAFE_CLIENT_OPTIONS_FIELDS
    int max_in_flight;          /**< 1..5; default 5 (idempotence allows 5) */
    int delivery_timeout_ms;    /**< delivery.timeout.ms; default 120000 */
    int linger_ms;              /**< linger.ms; default 5 */
    ksafe_compression compression;          /**< default NONE */
    const char *transactional_id;           /**< NULL: not transactional */
    int transaction_timeout_ms;             /**< default 60000 */
    ksafe_delivery_cb on_delivery;          /**< may be NULL */
    void *delivery_payload;
    ksafe_queue_full_policy queue_full;     /**< default BLOCK */
    int queue_full_timeout_ms;              /**< default 30000 */
} ksafe_producer_options;

#define KSAFE_PRODUCER_OPTIONS_INIT                                          \
    { KSAFE_PRODUCER_OPTIONS_VERSION, KSAFE_CLIENT_OPTIONS_INIT_VALUES,      \
      5, 120000, 5, KSAFE_COMPRESSION_NONE, NULL, 60000, NULL, NULL,        \
      KSAFE_QUEUE_FULL_BLOCK, 30000 }

/**
 * Sets `opts` to the safe preset of `version` (pass
 * KSAFE_PRODUCER_OPTIONS_VERSION). Fails with KSAFE_EVERSION for an unknown
 * version, KSAFE_EINVAL for NULL.
 */
KSAFE_EXTERN int ksafe_producer_options_init(ksafe_producer_options *opts,
                                             unsigned int version);

/**
 * Checks `opts` as ksafe_producer_new() would, without creating anything.
 */
KSAFE_EXTERN int ksafe_producer_options_validate(
    const ksafe_producer_options *opts, ksafe_error *err);

/**
 * Creates a producer. `opts` NULL means the preset, which still needs
 * bootstrap servers, so in practice pass options. Copies every string.
 * Errors: KSAFE_EINVAL / KSAFE_EVERSION / KSAFE_EUNSAFE for options (the
 * message names the field or property), KSAFE_EKAFKA when librdkafka refuses.
 */
KSAFE_EXTERN int ksafe_producer_new(ksafe_producer **out,
                                    const ksafe_producer_options *opts,
                                    ksafe_error *err);

/**
 * Queues a record for delivery; its fate arrives in the delivery callback.
 * Errors: KSAFE_EINVAL (no topic), KSAFE_EQUEUEFULL (RETRIABLE, per
 * queue_full), KSAFE_EFATAL, KSAFE_EKAFKA.
 */
KSAFE_EXTERN int ksafe_producer_send(ksafe_producer *p,
                                     const ksafe_record *record,
                                     ksafe_error *err);

/** Where a record was written. */
typedef struct ksafe_record_metadata {
    int32_t partition;
    int64_t offset;
    int64_t timestamp_ms; /**< the record's timestamp, -1 if unknown */
} ksafe_record_metadata;

/** TEMPORARY (replaced by the producer branch): send and wait. */
KSAFE_EXTERN int ksafe_producer_send_sync(ksafe_producer *p,
                                          const ksafe_record *record,
                                          int timeout_ms,
                                          ksafe_record_metadata *out_meta,
                                          ksafe_error *err);

/** Serves delivery reports for up to timeout_ms; returns how many fired. */
KSAFE_EXTERN int ksafe_producer_poll(ksafe_producer *p, int timeout_ms);

/**
 * Waits until every queued record is delivered or failed (their reports are
 * served), up to timeout_ms. KSAFE_ETIMEDOUT if some are still in flight.
 */
KSAFE_EXTERN int ksafe_producer_flush(ksafe_producer *p, int timeout_ms,
                                      ksafe_error *err);

/**
 * Flushes with a bounded wait (the delivery timeout). Records still
 * undelivered are never dropped silently: they are reported failed through
 * the delivery callback and the call returns KSAFE_EUNDELIVERED with their
 * count in the message. Calling it twice is harmless.
 */
KSAFE_EXTERN int ksafe_producer_close(ksafe_producer *p, ksafe_error *err);

/** Releases the producer (closing it first if needed). Accepts NULL. */
KSAFE_EXTERN void ksafe_producer_free(ksafe_producer *p);

/** The underlying librdkafka handle, borrowed: do not destroy it. */
KSAFE_EXTERN rd_kafka_t *ksafe_producer_rdkafka(ksafe_producer *p);

KSAFE_END_DECLS

#endif
