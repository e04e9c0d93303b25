/**
 * @file
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

/**
 * A safe producer (opaque). Created by ksafe_producer_new(), shut down by
 * ksafe_producer_close(), released by ksafe_producer_free(). Sends may come
 * from several threads; recover, close and free must not run concurrently
 * with other calls on it.
 */
typedef struct ksafe_producer ksafe_producer;

/** compression.type */
typedef enum ksafe_compression {
    KSAFE_COMPRESSION_NONE = 0, /**< "none" (default) */
    KSAFE_COMPRESSION_GZIP,     /**< "gzip" */
    KSAFE_COMPRESSION_SNAPPY,   /**< "snappy" */
    KSAFE_COMPRESSION_LZ4,      /**< "lz4" */
    KSAFE_COMPRESSION_ZSTD      /**< "zstd" (if built into librdkafka) */
} ksafe_compression;

/** What a send does when librdkafka's local queue is full. */
typedef enum ksafe_queue_full_policy {
    /** Serve delivery reports and wait up to queue_full_timeout_ms for room,
     * then fail with KSAFE_EQUEUEFULL (RETRIABLE). */
    KSAFE_QUEUE_FULL_BLOCK = 0,
    /** Fail at once with KSAFE_EQUEUEFULL (RETRIABLE). */
    KSAFE_QUEUE_FULL_RETURN
} ksafe_queue_full_policy;

/** Let the partitioner pick the partition from the key (see
 * ksafe_partitioner). */
#define KSAFE_PARTITION_ANY (-1)

/**
 * How a record with partition KSAFE_PARTITION_ANY finds its partition.
 * Every choice sends equal keys to the same partition (while the partition
 * count stays the same), which is what keeps per-key order; records with a
 * NULL or empty key are spread at random.
 */
typedef enum ksafe_partitioner {
    /** librdkafka's default, consistent_random: CRC32 of the key. Other
     * librdkafka-based clients (Python, Go, .NET, ...) place keys the same
     * way by default. */
    KSAFE_PARTITIONER_CONSISTENT_RANDOM = 0,
    /** murmur2_random: murmur2 of the key, as the Java client's default
     * partitioner does. Choose it when Java producers write the same keys
     * to the same topic. */
    KSAFE_PARTITIONER_MURMUR2_RANDOM,
    /** fnv1a_random: FNV-1a of the key (Sarama's default hash). */
    KSAFE_PARTITIONER_FNV1A_RANDOM
} ksafe_partitioner;

/** One record header. Strings and bytes are borrowed by the send call. */
typedef struct ksafe_header {
    const char *name;  /**< NUL-terminated header name, required */
    const void *value; /**< value bytes, may be NULL */
    size_t value_len;  /**< bytes at value */
} ksafe_header;

/**
 * A record to send. Everything is borrowed for the duration of the send call,
 * which copies what it needs.
 */
typedef struct ksafe_record {
    const char *topic;            /**< required */
    int32_t partition;            /**< KSAFE_PARTITION_ANY: by key */
    const void *key;              /**< may be NULL */
    size_t key_len;               /**< bytes at key */
    const void *value;            /**< may be NULL (a tombstone) */
    size_t value_len;             /**< bytes at value */
    const ksafe_header *headers;  /**< header_count entries, may be NULL */
    size_t header_count;          /**< entries at headers */
    int64_t timestamp_ms;         /**< 0: now */
    void *opaque;                 /**< handed back in the delivery report */
} ksafe_record;

/** An empty record: no topic yet, partition KSAFE_PARTITION_ANY. */
#define KSAFE_RECORD_INIT                                                    \
    { NULL, KSAFE_PARTITION_ANY, NULL, 0, NULL, 0, NULL, 0, 0, NULL }

/**
 * The fate of one record, as given to ksafe_delivery_cb. All pointers are
 * borrowed for the duration of the callback.
 */
typedef struct ksafe_delivery {
    const char *topic;            /**< the record's topic */
    int32_t partition;            /**< where it was written, or was headed */
    int64_t offset;               /**< -1 when not delivered */
    const void *key;              /**< the record's key, may be NULL */
    size_t key_len;               /**< bytes at key */
    const void *value;            /**< the record's value, may be NULL */
    size_t value_len;             /**< bytes at value */
    void *opaque;                 /**< ksafe_record.opaque */
    const ksafe_error *error;     /**< NULL when delivered */
    /** For a failed record: 1 when the broker may have written it anyway
     * (it was in flight when it failed), so sending it again may duplicate
     * it; 0 when it was certainly not written. */
    int possibly_delivered;
} ksafe_delivery;

/**
 * Called exactly once per record sent with ksafe_producer_send(), delivered
 * or failed, on the thread that serves reports: inside ksafe_producer_send()
 * (ready reports are served without waiting, so an application that never
 * polls still gets them), _send_sync(), _poll(), _flush(), _close(),
 * ksafe_txn_commit()/_abort() and _recover(). Records sent with
 * ksafe_producer_send_sync() do not fire it: the call returns their fate.
 * After a fatal error, records that were not acknowledged do not fire it
 * either: they wait for ksafe_producer_recover() (or close, which reports
 * them failed).
 *
 * The callback is optional. Without one, each failed record is logged at
 * KSAFE_LOG_ERR (facility "DELIVERY": topic, partition and error, never
 * the payload) and the next ksafe_producer_flush() or _close() returns
 * KSAFE_EUNDELIVERED with the count of records that failed since the
 * previous flush (or since creation). With a callback, the callback is
 * the report: flush does not count failures again (close still does for
 * the records that fail during close, see ksafe_producer_close()).
 */
typedef void (*ksafe_delivery_cb)(const ksafe_delivery *delivery,
                                  void *payload);

/** The version of ksafe_producer_options these headers define. */
#define KSAFE_PRODUCER_OPTIONS_VERSION 1

/** Producer options. Initialise with KSAFE_PRODUCER_OPTIONS_INIT. */
typedef struct ksafe_producer_options {
    unsigned int version;       /**< KSAFE_PRODUCER_OPTIONS_VERSION */
    KSAFE_CLIENT_OPTIONS_FIELDS
    int max_in_flight;          /**< 1..5; default 5 (idempotence allows 5) */
    int delivery_timeout_ms;    /**< delivery.timeout.ms; default 120000 */
    int linger_ms;              /**< linger.ms; default 5 */
    ksafe_compression compression;          /**< default NONE */
    const char *transactional_id;           /**< NULL: not transactional */
    int transaction_timeout_ms;             /**< default 60000 */
    ksafe_delivery_cb on_delivery;          /**< may be NULL */
    void *delivery_payload;                 /**< passed to on_delivery */
    ksafe_queue_full_policy queue_full;     /**< default BLOCK */
    int queue_full_timeout_ms;              /**< default 30000 */
    ksafe_partitioner partitioner;          /**< default CONSISTENT_RANDOM */
} ksafe_producer_options;

/** The safe preset: acks=all, idempotence, the defaults noted above. */
#define KSAFE_PRODUCER_OPTIONS_INIT                                          \
    { KSAFE_PRODUCER_OPTIONS_VERSION, KSAFE_CLIENT_OPTIONS_INIT_VALUES,      \
      5, 120000, 5, KSAFE_COMPRESSION_NONE, NULL, 60000, NULL, NULL,        \
      KSAFE_QUEUE_FULL_BLOCK, 30000, KSAFE_PARTITIONER_CONSISTENT_RANDOM }

/**
 * Sets `opts` to the safe preset of `version` (pass
 * KSAFE_PRODUCER_OPTIONS_VERSION). Fails with KSAFE_EVERSION for an unknown
 * version, KSAFE_EINVAL for NULL.
 */
KSAFE_EXTERN int ksafe_producer_options_init(ksafe_producer_options *opts,
                                             unsigned int version);

/**
 * Checks `opts` as ksafe_producer_new() would, without creating anything:
 * the same function runs in both, raw properties included (the unsafe
 * guard, and librdkafka's refusal of an unknown property or a value it
 * cannot parse), with the same code and message. Overrides that
 * allow_unsafe lets through but librdkafka refuses while idempotence stays
 * on (acks other than all, more than 5 requests in flight, retries 0,
 * queuing.strategy other than fifo) are refused with KSAFE_EINVAL, which
 * names what else to change (enable.idempotence=false).
 */
KSAFE_EXTERN int ksafe_producer_options_validate(
    const ksafe_producer_options *opts, ksafe_error *err);

/**
 * Creates a producer. `opts` NULL means the preset, which still needs
 * bootstrap servers, so in practice pass options. Copies every string.
 * Errors: KSAFE_EINVAL / KSAFE_EVERSION / KSAFE_EUNSAFE for options (the
 * message names the field or property), KSAFE_EKAFKA when librdkafka refuses.
 * With a transactional_id, raw properties that turn off idempotence or
 * acks=all are refused with KSAFE_EUNSAFE even when allow_unsafe is set:
 * transactions cannot work without them.
 *
 * Threads: send, send_sync, poll and flush may be called from several
 * threads at once; close, recover and free must not run concurrently with
 * any other call on the same producer.
 */
KSAFE_EXTERN int ksafe_producer_new(ksafe_producer **out,
                                    const ksafe_producer_options *opts,
                                    ksafe_error *err);

/**
 * Queues a record for delivery; its fate arrives in the delivery callback
 * (exactly once). The record is copied (key, value, headers, topic): the
 * caller may reuse its buffers when the call returns.
 * Errors: KSAFE_EINVAL naming the field (no topic, a topic name Kafka does
 * not allow - over 249 characters, a character outside [a-zA-Z0-9._-], "."
 * or ".." -, partition below -1, headers NULL with a count, a header
 * without a name), KSAFE_EQUEUEFULL
 * (RETRIABLE, per queue_full), KSAFE_ESTATE (closed, or a transactional
 * producer outside a transaction), KSAFE_EFATAL (see
 * ksafe_producer_recover()), KSAFE_EKAFKA. On error no report will fire.
 */
KSAFE_EXTERN int ksafe_producer_send(ksafe_producer *p,
                                     const ksafe_record *record,
                                     ksafe_error *err);

/** Where a record was written. */
typedef struct ksafe_record_metadata {
    int32_t partition;    /**< the partition it was written to */
    int64_t offset;       /**< its offset in that partition */
    int64_t timestamp_ms; /**< the record's timestamp, -1 if unknown */
} ksafe_record_metadata;

/**
 * Sends a record and waits until the broker acknowledged it (0, with its
 * partition and offset in `out_meta`, which may be NULL) or it failed (the
 * delivery error, e.g. KSAFE_EKAFKA with rdkafka_code _MSG_TIMED_OUT).
 * timeout_ms < 0 waits for librdkafka's verdict, which delivery_timeout_ms
 * bounds; a shorter wait that expires returns KSAFE_ETIMEDOUT and the
 * record's fate is then unknown to the caller (it may still be delivered).
 * The delivery callback does not fire for this record; reports of other
 * records may be served (on this thread) while it waits. Sync and async
 * sends mix freely. After a fatal error the record is not held for
 * ksafe_producer_recover(): the call fails with KSAFE_EFATAL and the caller
 * still has the record.
 */
KSAFE_EXTERN int ksafe_producer_send_sync(ksafe_producer *p,
                                          const ksafe_record *record,
                                          int timeout_ms,
                                          ksafe_record_metadata *out_meta,
                                          ksafe_error *err);

/** Serves delivery reports for up to timeout_ms; returns how many fired. */
KSAFE_EXTERN int ksafe_producer_poll(ksafe_producer *p, int timeout_ms);

/**
 * Waits until every queued record is delivered or failed (their reports are
 * served), up to timeout_ms. KSAFE_ETIMEDOUT if some are still in flight;
 * KSAFE_EFATAL (FATAL flag) once the producer has had a fatal error.
 * Without an on_delivery callback: KSAFE_EUNDELIVERED when records failed
 * since the previous flush or since creation (the count is in the message;
 * each was logged; the count restarts at zero).
 */
KSAFE_EXTERN int ksafe_producer_flush(ksafe_producer *p, int timeout_ms,
                                      ksafe_error *err);

/**
 * Flushes with a bounded wait (delivery_timeout_ms plus a second, after
 * which librdkafka has failed every record it could not deliver). Records
 * still undelivered are never dropped silently: they are reported failed
 * (through the delivery callback, or logged without one) and the call
 * returns KSAFE_EUNDELIVERED with a count in the message: with a callback,
 * of the records that failed during the close; without one, of every
 * record that failed since the last flush. Records held after a fatal
 * error are reported failed and counted.
 * An open transaction is aborted: the call then returns KSAFE_ETXNABORTED
 * whether or not its records were acknowledged, with the number of records
 * the transaction held (none of them will be visible to read_committed
 * readers) and how many were reported failed. If the abort itself fails
 * (e.g. the coordinator is unreachable) the message says so with the
 * abort's error; the coordinator then aborts the transaction once
 * transaction_timeout_ms has passed. After a fatal error the transaction is
 * lost with the instance (KSAFE_ETXNABORTED with the FATAL flag).
 * Calling it twice is harmless.
 */
KSAFE_EXTERN int ksafe_producer_close(ksafe_producer *p, ksafe_error *err);

/**
 * As ksafe_producer_close() with the flush bounded by timeout_ms (>= 0):
 * for a shutdown deadline. Records still queued when it expires are purged
 * and reported failed (KSAFE_EUNDELIVERED, count in the message).
 */
KSAFE_EXTERN int ksafe_producer_close_timeout(ksafe_producer *p,
                                              int timeout_ms,
                                              ksafe_error *err);

/* ---- fatal errors ------------------------------------------------------ */

/** What ksafe_producer_recover() does with the records it rescued. */
typedef enum ksafe_recover_mode {
    /** Send them again, in their original order per partition, through the
     * fresh producer; their reports then arrive as for any send. */
    KSAFE_RECOVER_RESEND = 0,
    /** Hand each to the callback; the producer is fresh and empty. */
    KSAFE_RECOVER_HAND_BACK
} ksafe_recover_mode;

/**
 * Receives one rescued record during ksafe_producer_recover(), on the
 * calling thread. `record` (headers and opaque included) and `error` are
 * borrowed for the call; the record can be passed straight to
 * ksafe_producer_send() on the recovered producer. `possibly_delivered` is
 * as in ksafe_delivery.
 */
typedef void (*ksafe_handback_cb)(const ksafe_record *record,
                                  const ksafe_error *error,
                                  int possibly_delivered, void *payload);

/**
 * Replaces the producer's librdkafka instance after a fatal error (sends
 * then return KSAFE_EFATAL with the FATAL flag; for the idempotent producer
 * e.g. OUT_OF_ORDER_SEQUENCE_NUMBER). Accounts for every record sent with
 * ksafe_producer_send(): those acknowledged before the error were reported
 * delivered; every other one was held back (no report) and is now either
 * sent again (KSAFE_RECOVER_RESEND) or given to `on_handback`
 * (KSAFE_RECOVER_HAND_BACK, required then). The new instance uses the same
 * options; the ksafe_producer pointer stays valid. `out_count` (may be
 * NULL) receives how many records were rescued.
 * Records that were in flight when the error struck may have been written
 * (possibly_delivered): RESEND can duplicate those, never lose them.
 * A transactional producer only supports HAND_BACK (its open transaction is
 * lost; call ksafe_txn_begin() again). The failed instance is destroyed
 * only once it has reported every record it had (librdkafka gives purged
 * records back at once; the wait is bounded by 10 s).
 * Errors: KSAFE_ESTATE when there was no fatal error, KSAFE_EINVAL for a
 * bad mode, KSAFE_EKAFKA if the new instance cannot be created (the
 * records stay held; try again), KSAFE_ETIMEDOUT (RETRIABLE) when records
 * are still unreported after the wait: the count is in the message,
 * nothing was replaced or dropped; call recover again, or close, which
 * counts them.
 */
KSAFE_EXTERN int ksafe_producer_recover(ksafe_producer *p,
                                        ksafe_recover_mode mode,
                                        ksafe_handback_cb on_handback,
                                        void *payload, size_t *out_count,
                                        ksafe_error *err);

/* ---- accounting -------------------------------------------------------- */

/** The version of ksafe_producer_stats these headers define. */
#define KSAFE_PRODUCER_STATS_VERSION 1

/**
 * What became of the records this producer was given, since it was
 * created (recover keeps the counts). Versioned: set `version` (use
 * KSAFE_PRODUCER_STATS_INIT); later versions only append fields.
 */
typedef struct ksafe_producer_stats {
    unsigned int version; /**< KSAFE_PRODUCER_STATS_VERSION */
    uint64_t delivered;   /**< acknowledged by the broker (send and sync) */
    uint64_t failed;      /**< reported failed: callback, log or sync return */
    uint64_t held;        /**< held after a fatal error, for recover */
    uint64_t handed_back; /**< given to on_handback by recover */
    uint64_t in_flight;   /**< with librdkafka, not reported yet */
} ksafe_producer_stats;

/** Zero counts of the current version. */
#define KSAFE_PRODUCER_STATS_INIT                                            \
    { KSAFE_PRODUCER_STATS_VERSION, 0, 0, 0, 0, 0 }

/**
 * Fills `out` with the counts. Any thread, any time before
 * ksafe_producer_free(); the counts are read one by one, so a record
 * finishing meanwhile can show in one and not yet in another. Every record
 * a send call accepted is in exactly one of them: delivered + failed +
 * held + handed_back + in_flight counts all of them (a re-sent record is
 * counted once, by its final fate).
 * Errors: KSAFE_EINVAL (NULL), KSAFE_EVERSION (unknown out->version).
 */
KSAFE_EXTERN int ksafe_producer_get_stats(ksafe_producer *p,
                                          ksafe_producer_stats *out,
                                          ksafe_error *err);

/** Releases the producer (closing it first if needed). Accepts NULL. */
KSAFE_EXTERN void ksafe_producer_free(ksafe_producer *p);

/**
 * The underlying librdkafka handle, borrowed: do not destroy it, and do not
 * send records through it (rd_kafka_produce*()): ksafe would not count
 * them in flight, so flush, close and the stats would not wait for or
 * account for them, and their delivery reports would reach ksafe's
 * callback with an opaque it did not make. For reading metadata, settings
 * and statistics. After ksafe_producer_recover() it is a new handle.
 */
KSAFE_EXTERN rd_kafka_t *ksafe_producer_rdkafka(ksafe_producer *p);

KSAFE_END_DECLS

#endif
