/**
 * @file
 * ksafe/relay.h - exactly-once consume-transform-produce.
 *
 * ksafe_relay_run() reads records with a ksafe consumer, hands each to your
 * transform, and writes what the transform emits with a transactional
 * ksafe producer. The records emitted for a batch of input and the input's
 * offsets go into one transaction: a read_committed reader of the output
 * sees each input record's output once, and the group's committed offsets
 * move past an input record exactly when its output becomes visible. The
 * relay computes the offsets itself, from the records it consumed (the
 * offset of the next record to read, the "+1" people forget); your code
 * never handles an offset.
 *
 * When a transaction cannot commit it is aborted and every partition that
 * had records in it is rewound to the first of them: the batch is done
 * again, so the transform may run more than once for a record. Only the
 * output of the transaction that commits counts; side effects the
 * transform has outside Kafka are not covered (use the dedup stores of
 * ksafe/dedup.h for those).
 *
 * Zombie fencing uses the consumer group metadata (KIP-447): the offsets
 * are committed with the member's generation, so the output of a member
 * that lost its partitions can never commit. One transactional_id per
 * process is therefore enough; keep it stable across restarts of the same
 * process slot (e.g. "<service>-<host>-<worker number>") so that a
 * restarted relay aborts its predecessor's open transaction at once,
 * and unique among processes running at the same time: a second live
 * producer with the same id fences the first.
 */
#ifndef KSAFE_RELAY_H
#define KSAFE_RELAY_H

#include "common.h"
#include "consumer.h"
#include "error.h"
#include "loop.h"
#include "producer.h"

KSAFE_BEGIN_DECLS

/**
 * Handed to the transform: what it emits through it belongs to the open
 * transaction. Borrowed for the transform call; never keep it.
 */
typedef struct ksafe_relay_emitter ksafe_relay_emitter;

/**
 * Sends `record` as part of the open transaction. The record is copied;
 * `record->opaque` reaches the producer's delivery callback, if it has
 * one. Call it only from inside the transform, with the emitter it was
 * given. Errors: KSAFE_EINVAL (NULL, or a record ksafe_producer_send()
 * refuses), KSAFE_EFATAL, KSAFE_EKAFKA (e.g. a record larger than the
 * client's message.max.bytes), KSAFE_ESTATE (the transaction failed
 * already, an earlier output could not be delivered: the relay aborts and
 * redoes it, and the record is not charged). Any other failed emit fails
 * the record whatever the transform then returns: it is retried, then
 * handed to the failure policy. An output the broker refuses (too large
 * for the topic, not authorized) shows only when the transaction commits:
 * the commit fails, and the relay redoes the batch until
 * txn_retry_max_ms, then stops; the failure policy cannot take it.
 * With KSAFE_RELAY_FATAL_RECREATE, the records of a transaction lost to a
 * fatal error get no delivery report (their opaque is not handed back).
 */
KSAFE_EXTERN int ksafe_relay_emit(ksafe_relay_emitter *out,
                                  const ksafe_record *record,
                                  ksafe_error *err);

/**
 * Transforms one input record: emits zero, one or many records with
 * ksafe_relay_emit() and returns KSAFE_HANDLER_OK, or RETRY / FAIL (the
 * message may say why in `err->message`; it is logged and goes into the
 * dead-letter headers). RETRY aborts the transaction, and so does a
 * failure after the transform emitted records for this input: what the
 * transaction held is never visible to read_committed readers and the
 * batch is redone. A record that fails for good having emitted nothing is
 * settled by the failure policy inside the open transaction, with no
 * abort. `msg` is borrowed for the call.
 * Runs on the thread that called ksafe_relay_run(), possibly more than
 * once per record (after an abort): keep it free of effects outside
 * Kafka, or make those idempotent.
 */
typedef ksafe_handler_result (*ksafe_relay_transform)(
    const ksafe_message *msg, ksafe_relay_emitter *out, ksafe_error *err,
    void *payload);

/** What the relay does after a fatal producer error (e.g. fenced). */
typedef enum ksafe_relay_on_fatal {
    /** Abort, close the consumer and return KSAFE_EFATAL (default). When
     * the producer was fenced, the message says that a newer instance
     * with the same transactional_id took over. */
    KSAFE_RELAY_FATAL_STOP = 0,
    /** Replace the producer's librdkafka instance
     * (ksafe_producer_recover(); the open transaction's records are
     * dropped), rewind, and go on. For a producer fenced by the
     * coordinator after a transaction outlived transaction_timeout_ms;
     * when a live twin with the same id is the cause, the two keep
     * fencing each other: give each process its own id. A fatal error
     * during a commit still stops the relay (KSAFE_EFATAL): the commit
     * may have gone through, and a redo would duplicate its output. */
    KSAFE_RELAY_FATAL_RECREATE
} ksafe_relay_on_fatal;

/** Counters of one ksafe_relay_run(), readable while it runs (same thread). */
typedef struct ksafe_relay_stats {
    uint64_t polled;        /**< records received from the consumer */
    uint64_t transformed;   /**< transform calls that returned OK (again
                                 after an abort: counted again) */
    uint64_t emitted;       /**< records accepted by ksafe_relay_emit() */
    uint64_t committed;     /**< input records whose transaction committed */
    uint64_t transactions;  /**< transactions committed */
    uint64_t aborts;        /**< transactions aborted, for any reason */
    uint64_t rebalance_aborts; /**< ... of which because partitions in the
                                    transaction were revoked or lost */
    uint64_t retries;       /**< failed transform calls (RETRY, or an emit
                                 failed) that will be tried again */
    uint64_t failed;        /**< records that exhausted retries or failed */
    uint64_t skipped;       /**< skips of failed records (SKIP policy);
                                 a redone transaction skips again */
    uint64_t dead_lettered; /**< dead letters written (in the transaction);
                                 a redone transaction writes again, and
                                 only the committed write is visible */
    uint64_t recreated;     /**< producer instances replaced (RECREATE) */
    uint64_t reserved[4];   /**< for future counters; zero */
} ksafe_relay_stats;

/** The version of ksafe_relay_options these headers define. */
#define KSAFE_RELAY_OPTIONS_VERSION 1

/** Relay options. Initialise with KSAFE_RELAY_OPTIONS_INIT. */
typedef struct ksafe_relay_options {
    unsigned int version;            /**< KSAFE_RELAY_OPTIONS_VERSION */
    ksafe_relay_transform transform; /**< required */
    void *payload;                   /**< passed to the transform */
    /** A transaction commits once it holds this many input records
     * (1..1000000); default 500. */
    size_t batch_records;
    /** ... or once it has been open this long (ms, 1..): default 100. Must
     * leave half of the producer's transaction_timeout_ms for the commit. */
    int batch_max_ms;
    /* retry with exponential backoff, as in ksafe_loop_options */
    int max_attempts;            /**< transform calls per record, >= 1; default 5 */
    int backoff_initial_ms;      /**< default 100 */
    double backoff_multiplier;   /**< >= 1.0; default 2.0 */
    int backoff_max_ms;          /**< default 10000 */
    double backoff_jitter;       /**< 0..1, +/- fraction; default 0.2 */
    /**
     * A record whose retries ran out or that failed for good: STOP
     * (default: ksafe_relay_run returns KSAFE_EHANDLER, nothing of its
     * transaction commits), SKIP (logged, its offset goes into the next
     * transaction with no output for it) or DEAD_LETTER: the input record
     * is written to dead_letter_topic with the ksafe.origin.* headers of
     * ksafe_run, by the same producer and in the same transaction as its
     * offset, so the dead letter is visible exactly when the record counts
     * as consumed.
     */
    ksafe_failure_policy on_failure;
    const char *dead_letter_topic;   /**< for DEAD_LETTER; copied */
    ksafe_relay_on_fatal on_fatal;   /**< default KSAFE_RELAY_FATAL_STOP */
    /**
     * How long transactions may keep failing to commit (aborted by the
     * cluster, e.g. an output record that cannot be delivered) before
     * ksafe_relay_run stops with KSAFE_ETXNABORTED naming the last error;
     * each failure rewinds and waits with the backoff. Default 60000; 0:
     * stop at the first.
     */
    int txn_retry_max_ms;
    int poll_timeout_ms;             /**< default 100 */
    ksafe_relay_stats *stats;        /**< optional, filled as it runs */
} ksafe_relay_options;

/** The defaults: 500 records or 100 ms per transaction, 5 attempts with
 * backoff, then KSAFE_FAILURE_STOP. */
#define KSAFE_RELAY_OPTIONS_INIT                                             \
    { KSAFE_RELAY_OPTIONS_VERSION, NULL, NULL, 500, 100, 5, 100, 2.0,        \
      10000, 0.2, KSAFE_FAILURE_STOP, NULL, KSAFE_RELAY_FATAL_STOP, 60000,   \
      100, NULL }

/** Sets `opts` to the defaults of `version`. */
KSAFE_EXTERN int ksafe_relay_options_init(ksafe_relay_options *opts,
                                          unsigned int version);

/**
 * Relays from the subscribed consumer `c` through the transform to the
 * transactional producer `p` (created with a transactional_id; the relay
 * calls ksafe_txn_init() itself) until ksafe_consumer_stop() is called:
 * the open transaction is committed, the consumer closed, and 0 returned.
 * Neither handle is taken over: free both afterwards (close the producer
 * first if you like; the relay leaves no transaction open).
 *
 * Do not mark records of `c` with ksafe_consumer_done() and do not commit
 * it: its offsets are committed through the transactions only.
 *
 * Rebalances: a revoke or loss of a partition that has records in the
 * open transaction aborts the transaction before the partition is
 * released, so its next owner redoes the batch and this member's output
 * of it never becomes visible; partitions this member keeps are rewound.
 *
 * Refused at start, with nothing consumed and both handles left open:
 * KSAFE_EINVAL for NULL arguments, invalid options, a producer without a
 * transactional_id, batch_max_ms above half of the producer's
 * transaction_timeout_ms, or a transaction_timeout_ms longer than the
 * consumer's session_timeout_ms (a relay that dies with a transaction
 * open would hold every read_committed reader of its output, and its
 * partitions' next owner, until the transaction times out: the message
 * says which value to lower); KSAFE_EVERSION; KSAFE_ESTATE for a closed
 * handle or a consumer another loop drives; the errors of
 * ksafe_txn_init().
 *
 * Aborts and commits flush the producer first (its reports are served):
 * librdkafka can assert when an abort overtakes a partition
 * registration. An abort that times out inside a rebalance is tried
 * again later; the partitions are released meanwhile with the
 * transaction still open, which their next owner waits out.
 *
 * Other returns, each after ending the open transaction and closing the
 * consumer: KSAFE_EHANDLER (a record failed under KSAFE_FAILURE_STOP, or
 * could not be dead-lettered; topic, partition and offset named),
 * KSAFE_EFATAL (fatal producer error under KSAFE_RELAY_FATAL_STOP, or a
 * fatal consumer error), KSAFE_ETXNABORTED (commits kept failing for
 * txn_retry_max_ms, or the last transaction did not commit at stop: its
 * input is read again from the last commit), KSAFE_ETIMEDOUT (a commit
 * kept timing out for txn_retry_max_ms: its outcome is unknown, and the
 * transaction is left to ksafe_producer_close()), KSAFE_EKAFKA (the
 * broker refused the member for good, as in ksafe_run()), KSAFE_ENOMEM,
 * and the errors of ksafe_consumer_seek() when a rewind fails (stopped so
 * that nothing past the aborted records is committed).
 */
KSAFE_EXTERN int ksafe_relay_run(ksafe_consumer *c, ksafe_producer *p,
                                 const ksafe_relay_options *opts,
                                 ksafe_error *err);

KSAFE_END_DECLS

#endif
