/*
 * lib/producer_close.c - close: flush with a deadline, then account for
 * every record that could not be delivered.
 */
#include <stdlib.h>
#include <string.h>

#include "producer_internal.h"

/* ---- close ------------------------------------------------------------- */

/*
 * Close's verdict when a transaction was open: its records never become
 * visible to read_committed readers, acknowledged or not, so close says
 * how many it held whatever else happened.
 */
static int open_txn_verdict(uint64_t held, uint64_t undelivered, int fatal,
                            int abort_rc, const ksafe_error *abort_err,
                            ksafe_error *err)
{
    if (fatal)
        return ksafe__error_set(
            err, KSAFE_ETXNABORTED, 0, KSAFE_ERROR_FATAL,
            "close: the open transaction and its %llu records are lost with "
            "the instance (fatal producer error); %llu records were not "
            "delivered and were reported failed",
            (unsigned long long)held, (unsigned long long)undelivered);
    if (abort_rc)
        return ksafe__error_set(
            err, KSAFE_ETXNABORTED, abort_err->rdkafka_code, 0,
            "close: the open transaction (%llu records) was not committed "
            "and its abort failed; the coordinator aborts it after "
            "transaction_timeout_ms: %s",
            (unsigned long long)held, abort_err->message);
    return ksafe__error_set(
        err, KSAFE_ETXNABORTED, 0, 0,
        "close: the open transaction was aborted: its %llu records will "
        "never be visible (%llu were not delivered and were reported "
        "failed)",
        (unsigned long long)held, (unsigned long long)undelivered);
}

int ksafe_producer_close_timeout(ksafe_producer *p, int timeout_ms,
                                 ksafe_error *err)
{
    uint64_t failed_before, undelivered, unreported, txn_held = 0;
    ksafe__rescued *r;
    ksafe_error fatal_err, txn_err;
    int fatal, txn_open, abort_rc = 0;
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
    memset(&txn_err, 0, sizeof(txn_err));
    failed_before = atomic_load(&p->failed);
    fatal = ksafe__producer_is_fatal(p->cl.rk);
    txn_open = p->transactional && atomic_load(&p->txn_open);
    if (txn_open) {
        txn_held = atomic_load(&p->txn_records);
        /* Uncommitted records would never become visible: say so. */
        if (!fatal)
            abort_rc = ksafe__txn_abort_for_close(p, timeout_ms, &txn_err);
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
    /* With a callback close counts what failed during close (the callback
     * heard of each); without one, every failure since the last flush,
     * which nobody has been told of yet. */
    if (p->on_delivery)
        undelivered = atomic_load(&p->failed) - failed_before;
    else
        undelivered = atomic_exchange(&p->unreported, 0);
    /* Reports librdkafka never gave (it fails every record within the
     * flush deadline, so this is a safety net): free would drop them
     * unseen, so they are counted here as records of unknown fate. */
    if ((unreported = ksafe__producer_pending(p)) > 0)
        undelivered += unreported;
    if (txn_open)
        return open_txn_verdict(txn_held, undelivered, fatal, abort_rc,
                                &txn_err, err);
    if (!undelivered)
        return 0;
    if (unreported)
        return ksafe__error_set(
            err, KSAFE_EUNDELIVERED, 0, fatal ? KSAFE_ERROR_FATAL : 0,
            "close: %llu records were not delivered; %llu of them got no "
            "report from librdkafka (their fate is unknown: they may have "
            "been written)",
            (unsigned long long)undelivered,
            (unsigned long long)unreported);
    return ksafe__error_set(
        err, KSAFE_EUNDELIVERED, 0, fatal ? KSAFE_ERROR_FATAL : 0,
        "close: %llu records were not delivered and were reported %s%s",
        (unsigned long long)undelivered,
        p->on_delivery ? "failed" : "in the log (no delivery callback)",
        fatal ? " (after a fatal producer error)" : "");
}

int ksafe_producer_close(ksafe_producer *p, ksafe_error *err)
{
    if (!p)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0, "producer is NULL");
    return ksafe_producer_close_timeout(p, p->delivery_timeout_ms + 1000, err);
}
