/*
 * lib/txn.c - transactions: librdkafka's three error classes turned into
 * one answer each (retry inside the call, abort for the caller, or fatal).
 */
#include <stdlib.h>
#include <string.h>

#include "producer_internal.h"

typedef enum {
    TXN_INIT,
    TXN_SEND_OFFSETS,
    TXN_COMMIT,
    TXN_ABORT,
    TXN_BEGIN /* not retried: begin is local */
} txn_op;

static const char *const op_names[] = {"txn_init", "txn_send_offsets",
                                       "txn_commit", "txn_abort", "txn_begin"};

typedef struct txn_args {
    const rd_kafka_topic_partition_list_t *offsets;
    const rd_kafka_consumer_group_metadata_t *group;
} txn_args;

static rd_kafka_error_t *call(ksafe_producer *p, txn_op op, int timeout_ms,
                              const txn_args *a)
{
    switch (op) {
    case TXN_INIT:
        return rd_kafka_init_transactions(p->cl.rk, timeout_ms);
    case TXN_SEND_OFFSETS:
        return rd_kafka_send_offsets_to_transaction(p->cl.rk, a->offsets,
                                                    a->group, timeout_ms);
    case TXN_COMMIT:
        return rd_kafka_commit_transaction(p->cl.rk, timeout_ms);
    case TXN_ABORT:
    default:
        return rd_kafka_abort_transaction(p->cl.rk, timeout_ms);
    }
}

static int not_transactional(ksafe_producer *p, txn_op op, ksafe_error *err)
{
    if (!p)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0, "producer is NULL");
    if (!p->transactional)
        return ksafe__error_set(err, KSAFE_ESTATE, 0, 0,
                                "%s: the producer has no transactional_id",
                                op_names[op]);
    if (atomic_load(&p->closed))
        return ksafe__error_set(err, KSAFE_ESTATE, 0, 0,
                                "%s: the producer is closed", op_names[op]);
    return 0;
}

/*
 * Once the instance has a fatal error librdkafka may answer transactional
 * calls with a plain state error: report the fatal error itself, whose code
 * says what happened (e.g. PRODUCER_FENCED).
 */
static int fatal(ksafe_producer *p, const rd_kafka_error_t *e, txn_op op,
                 ksafe_error *err)
{
    char reason[160] = "";
    rd_kafka_resp_err_t code =
        rd_kafka_fatal_error(p->cl.rk, reason, sizeof(reason));

    if (!code)
        return ksafe__error_set(err, KSAFE_EFATAL, rd_kafka_error_code(e),
                                KSAFE_ERROR_FATAL, "%s: fatal: %s (%s)",
                                op_names[op], rd_kafka_error_string(e),
                                rd_kafka_error_name(e));
    return ksafe__error_set(err, KSAFE_EFATAL, code, KSAFE_ERROR_FATAL,
                            "%s: fatal producer error: %s (%s)",
                            op_names[op], reason, rd_kafka_err2name(code));
}

/* Errors that are neither retriable, abortable nor fatal. */
static int plain_error(ksafe_error *err, const rd_kafka_error_t *e, txn_op op)
{
    rd_kafka_resp_err_t code = rd_kafka_error_code(e);

    if (code == RD_KAFKA_RESP_ERR__STATE ||
        code == RD_KAFKA_RESP_ERR__NOT_CONFIGURED)
        return ksafe__error_set(err, KSAFE_ESTATE, code, 0, "%s: %s (%s)",
                                op_names[op], rd_kafka_error_string(e),
                                rd_kafka_error_name(e));
    return ksafe__error_from_rd(err, e, op_names[op]);
}

/*
 * Runs `op`, retrying retriable errors until `timeout_ms` (< 0: the
 * transaction timeout) has passed. `rd_timeout` < 0 asks librdkafka to use
 * the transaction's remaining time, as it recommends for commit and abort.
 * Returns 0, or the first non-retriable error (fatal mapped to EFATAL) with
 * `*abortable` set when the transaction requires an abort.
 */
static int run(ksafe_producer *p, txn_op op, int timeout_ms, const txn_args *a,
               int *abortable, ksafe_error *err)
{
    int budget = timeout_ms >= 0 ? timeout_ms : p->transaction_timeout_ms;
    int64_t deadline = ksafe__now_ms() + budget;

    *abortable = 0;
    for (;;) {
        int64_t left = deadline - ksafe__now_ms();
        int rd_timeout;
        rd_kafka_error_t *e;
        int rc;

        if (left < 0)
            left = 0;
        rd_timeout = (timeout_ms < 0 && (op == TXN_COMMIT || op == TXN_ABORT))
                         ? -1
                         : (int)left;
        e = call(p, op, rd_timeout, a);
        ksafe__producer_serve(p);
        if (!e)
            return 0;
        if (rd_kafka_error_is_fatal(e) || ksafe__producer_is_fatal(p->cl.rk)) {
            rc = fatal(p, e, op, err);
        } else if (rd_kafka_error_txn_requires_abort(e)) {
            *abortable = 1;
            rc = ksafe__error_from_rd(err, e, op_names[op]);
        } else if (rd_kafka_error_is_retriable(e)) {
            if (ksafe__now_ms() < deadline) {
                rd_kafka_error_destroy(e);
                rd_kafka_poll(p->cl.rk, 100); /* a short grace, serving */
                continue;
            }
            rc = ksafe__error_set(err, KSAFE_ETIMEDOUT,
                                  rd_kafka_error_code(e),
                                  KSAFE_ERROR_RETRIABLE,
                                  "%s: still failing after %d ms: %s (%s)",
                                  op_names[op], budget,
                                  rd_kafka_error_string(e),
                                  rd_kafka_error_name(e));
        } else {
            rc = plain_error(err, e, op);
        }
        rd_kafka_error_destroy(e);
        return rc;
    }
}

/* Aborts after an abortable failure of `op` and tells the caller. */
static int abort_after(ksafe_producer *p, txn_op op, ksafe_error *err)
{
    ksafe_error abort_err;
    int abortable, rc;
    int code = err ? err->rdkafka_code : 0;
    char reason[KSAFE_ERROR_MESSAGE_SIZE] = "";

    if (err)
        snprintf(reason, sizeof(reason), "%s", err->message);
    rc = run(p, TXN_ABORT, -1, NULL, &abortable, &abort_err);
    if (rc) {
        if (err)
            *err = abort_err;
        return rc;
    }
    atomic_store(&p->txn_open, 0);
    return ksafe__error_set(err, KSAFE_ETXNABORTED, code,
                            KSAFE_ERROR_TXN_REQUIRES_ABORT,
                            "%s failed and the transaction was aborted: %s",
                            op_names[op], reason);
}

/* After a fatal error the transaction is gone with the instance. */
static int after(ksafe_producer *p, txn_op op, int rc, int abortable,
                 ksafe_error *err)
{
    if (rc == KSAFE_EFATAL) {
        atomic_store(&p->txn_open, 0);
        return rc;
    }
    if (rc && abortable)
        return abort_after(p, op, err);
    return rc;
}

int ksafe_txn_init(ksafe_producer *p, int timeout_ms, ksafe_error *err)
{
    int abortable, rc;

    if ((rc = not_transactional(p, TXN_INIT, err)))
        return rc;
    if (p->txn_initialised)
        return 0;
    if (timeout_ms < 0)
        timeout_ms = 2 * p->transaction_timeout_ms;
    if ((rc = run(p, TXN_INIT, timeout_ms, NULL, &abortable, err)))
        return rc;
    p->txn_initialised = 1;
    return 0;
}

int ksafe_txn_begin(ksafe_producer *p, ksafe_error *err)
{
    rd_kafka_error_t *e;
    int rc;

    if ((rc = not_transactional(p, TXN_BEGIN, err)))
        return rc;
    if (atomic_load(&p->txn_open))
        return ksafe__error_set(err, KSAFE_ESTATE, 0, 0,
                                "txn_begin: a transaction is already open: "
                                "commit or abort it first");
    if ((rc = ksafe_txn_init(p, -1, err)))
        return rc;
    if ((e = rd_kafka_begin_transaction(p->cl.rk))) {
        rc = rd_kafka_error_is_fatal(e) || ksafe__producer_is_fatal(p->cl.rk)
                 ? fatal(p, e, TXN_BEGIN, err)
                 : plain_error(err, e, TXN_BEGIN);
        rd_kafka_error_destroy(e);
        return rc;
    }
    atomic_store(&p->txn_records, 0);
    atomic_store(&p->txn_open, 1);
    return 0;
}

int ksafe_txn_send_offsets(ksafe_producer *p,
                           const rd_kafka_topic_partition_list_t *offsets,
                           const rd_kafka_consumer_group_metadata_t *group,
                           int timeout_ms, ksafe_error *err)
{
    txn_args a;
    int abortable, rc;

    if ((rc = not_transactional(p, TXN_SEND_OFFSETS, err)))
        return rc;
    if (!offsets || !group)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "txn_send_offsets needs offsets and the "
                                "consumer's group metadata");
    if (!atomic_load(&p->txn_open))
        return ksafe__error_set(err, KSAFE_ESTATE, 0, 0,
                                "txn_send_offsets: no transaction is open");
    a.offsets = offsets;
    a.group = group;
    rc = run(p, TXN_SEND_OFFSETS, timeout_ms, &a, &abortable, err);
    return after(p, TXN_SEND_OFFSETS, rc, abortable, err);
}

int ksafe_txn_commit(ksafe_producer *p, int timeout_ms, ksafe_error *err)
{
    int abortable, rc;

    if ((rc = not_transactional(p, TXN_COMMIT, err)))
        return rc;
    if (!atomic_load(&p->txn_open))
        return ksafe__error_set(err, KSAFE_ESTATE, 0, 0,
                                "txn_commit: no transaction is open");
    rc = run(p, TXN_COMMIT, timeout_ms, NULL, &abortable, err);
    if (!rc)
        atomic_store(&p->txn_open, 0);
    return after(p, TXN_COMMIT, rc, abortable, err);
}

int ksafe_txn_abort(ksafe_producer *p, int timeout_ms, ksafe_error *err)
{
    int abortable, rc;

    if ((rc = not_transactional(p, TXN_ABORT, err)))
        return rc;
    if (!atomic_load(&p->txn_open))
        return ksafe__error_set(err, KSAFE_ESTATE, 0, 0,
                                "txn_abort: no transaction is open");
    rc = run(p, TXN_ABORT, timeout_ms, NULL, &abortable, err);
    if (!rc || rc == KSAFE_EFATAL)
        atomic_store(&p->txn_open, 0);
    return rc;
}

int ksafe__txn_abort_for_close(ksafe_producer *p, int timeout_ms,
                               ksafe_error *err)
{
    int abortable, rc;

    rc = run(p, TXN_ABORT, timeout_ms, NULL, &abortable, err);
    atomic_store(&p->txn_open, 0);
    return rc;
}
