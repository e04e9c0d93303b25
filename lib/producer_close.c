/*
 * lib/producer_close.c - close: flush with a deadline, then account for
 * every record that could not be delivered.
 */
#include <stdlib.h>
#include <string.h>

#include "producer_internal.h"

/* ---- close ------------------------------------------------------------- */

int ksafe_producer_close_timeout(ksafe_producer *p, int timeout_ms,
                                 ksafe_error *err)
{
    uint64_t failed_before;
    ksafe__rescued *r;
    ksafe_error fatal_err, txn_err;
    int fatal, txn_aborted = 0;
    size_t n;

    if (!p)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0, "producer is NULL");
    if (timeout_ms < 0)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "close timeout_ms is %d: it must be >= 0",
                                timeout_ms);
    if (atomic_exchange(&p->closed, 1))
        return 0;
    memset(&fatal_err, 0, sizeof(fatal_err));
    failed_before = atomic_load(&p->failed);
    fatal = ksafe__producer_is_fatal(p->cl.rk);
    if (!fatal && p->transactional && atomic_load(&p->txn_open)) {
        /* Uncommitted records would never become visible: say so. */
        ksafe__txn_abort_for_close(p, timeout_ms, &txn_err);
        txn_aborted = 1;
    }
    rd_kafka_flush(p->cl.rk, timeout_ms);
    if (rd_kafka_outq_len(p->cl.rk) > 0) {
        /* Still queued at the deadline: purge so each record gets a failed
         * report, never a silent drop. */
        rd_kafka_purge(p->cl.rk,
                       RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
        rd_kafka_flush(p->cl.rk, 5000);
    }
    ksafe__producer_serve(p);
    fatal = ksafe__producer_is_fatal(p->cl.rk);
    if (fatal)
        ksafe__producer_fatal_error(p, &fatal_err);
    for (r = ksafe__producer_take_rescued(p, &n); r;) {
        ksafe__rescued *next = r->next;
        ksafe__producer_report_rescued(p, r, &fatal_err);
        r = next;
    }
    n = (size_t)(atomic_load(&p->failed) - failed_before);
    if (!n)
        return 0;
    return ksafe__error_set(
        err, KSAFE_EUNDELIVERED, 0, fatal ? KSAFE_ERROR_FATAL : 0,
        "close: %zu records were not delivered and were reported failed%s%s",
        n, txn_aborted ? " (the open transaction was aborted)" : "",
        fatal ? " (after a fatal producer error)" : "");
}

int ksafe_producer_close(ksafe_producer *p, ksafe_error *err)
{
    if (!p)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0, "producer is NULL");
    return ksafe_producer_close_timeout(p, p->delivery_timeout_ms + 1000, err);
}

