/**
 * @file
 * ksafe/txn.h - transactions on a producer created with a transactional_id.
 *
 * A transaction groups records (and, for consume-transform-produce, the
 * consumer's offsets) so that they become visible to read_committed
 * consumers together, or not at all. librdkafka sorts transaction errors
 * into three classes; ksafe handles each so the caller only has to decide
 * what to do next:
 *
 *   retriable  retried inside the call until its timeout expires;
 *   abortable  the transaction is aborted for you and the call returns
 *              KSAFE_ETXNABORTED (flag KSAFE_ERROR_TXN_REQUIRES_ABORT):
 *              redo the work in a new transaction;
 *   fatal      KSAFE_EFATAL (flag KSAFE_ERROR_FATAL): typically this
 *              instance was fenced by a newer one with the same
 *              transactional_id. Stop, and free the producer.
 *
 * All calls block and serve delivery reports on the calling thread.
 * Not thread-safe with each other: drive a transaction from one thread.
 *
 * ksafe_producer_close() with a transaction still open aborts it and
 * returns KSAFE_ETXNABORTED with the number of records the transaction
 * held, even when every one was acknowledged (none will be visible to
 * read_committed readers), and with the abort's own error if the abort
 * failed.
 */
#ifndef KSAFE_TXN_H
#define KSAFE_TXN_H

#include <librdkafka/rdkafka.h>

#include "common.h"
#include "error.h"
#include "producer.h"

KSAFE_BEGIN_DECLS

/**
 * Registers the transactional_id with the cluster: fences older instances
 * using the same id and aborts (or completes) their unfinished transaction.
 * ksafe_txn_begin() does it on first use; call it yourself to fail fast at
 * start-up. timeout_ms < 0: twice transaction_timeout_ms. Idempotent.
 * Errors: KSAFE_ESTATE (no transactional_id), KSAFE_ETIMEDOUT, KSAFE_EFATAL.
 */
KSAFE_EXTERN int ksafe_txn_init(ksafe_producer *p, int timeout_ms,
                                ksafe_error *err);

/**
 * Starts a transaction: records sent until commit or abort belong to it.
 * Errors: KSAFE_ESTATE (no transactional_id, or one already open),
 * KSAFE_EFATAL, and those of ksafe_txn_init().
 */
KSAFE_EXTERN int ksafe_txn_begin(ksafe_producer *p, ksafe_error *err);

/**
 * Adds consumed positions to the transaction: they are committed for the
 * consumer group described by `group` if and only if the transaction
 * commits. `offsets` holds, per partition, the offset of the next record to
 * consume (last processed + 1); `group` comes from
 * rd_kafka_consumer_group_metadata() on the consumer (for a ksafe consumer:
 * ksafe_consumer_rdkafka()). Both are borrowed. timeout_ms < 0: the
 * transaction timeout.
 * Errors: KSAFE_EINVAL, KSAFE_ESTATE (no open transaction),
 * KSAFE_ETXNABORTED, KSAFE_EFATAL, KSAFE_ETIMEDOUT.
 */
KSAFE_EXTERN int ksafe_txn_send_offsets(
    ksafe_producer *p, const rd_kafka_topic_partition_list_t *offsets,
    const rd_kafka_consumer_group_metadata_t *group, int timeout_ms,
    ksafe_error *err);

/**
 * Delivers the transaction's outstanding records (their reports fire on
 * this thread) and commits it. timeout_ms < 0: what is left of the
 * transaction timeout (recommended). On KSAFE_ETXNABORTED the transaction
 * was aborted for you: none of its records or offsets take effect.
 * Errors: KSAFE_ESTATE, KSAFE_ETXNABORTED, KSAFE_EFATAL, KSAFE_ETIMEDOUT
 * (RETRIABLE: the commit may still complete; call commit again or abort).
 */
KSAFE_EXTERN int ksafe_txn_commit(ksafe_producer *p, int timeout_ms,
                                  ksafe_error *err);

/**
 * Aborts the open transaction: records not yet delivered are purged and
 * reported failed (_PURGE_QUEUE / _PURGE_INFLIGHT); records already
 * reported delivered stay in the log but read_committed consumers never see
 * them. Returns 0 once aborted. timeout_ms < 0: what is left of the
 * transaction timeout. Errors: KSAFE_ESTATE (no open transaction),
 * KSAFE_EFATAL, KSAFE_ETIMEDOUT (RETRIABLE: call abort again).
 */
KSAFE_EXTERN int ksafe_txn_abort(ksafe_producer *p, int timeout_ms,
                                 ksafe_error *err);

KSAFE_END_DECLS

#endif
