/*
 * lib/error.c - filling ksafe_error and naming codes.
 */
#include <stdio.h>
#include <string.h>

#include "internal.h"

const char *ksafe_strerror(int code)
{
    switch (code) {
    case KSAFE_OK: return "success";
    case KSAFE_EINVAL: return "invalid argument";
    case KSAFE_EUNSAFE: return "refused: weakens a safety guarantee";
    case KSAFE_ENOMEM: return "out of memory";
    case KSAFE_EKAFKA: return "Kafka client error";
    case KSAFE_ETIMEDOUT: return "timed out";
    case KSAFE_EQUEUEFULL: return "producer queue full";
    case KSAFE_EFATAL: return "fatal client error";
    case KSAFE_ETXNABORTED: return "transaction aborted";
    case KSAFE_EVERSION: return "unknown options version";
    case KSAFE_EJSON: return "invalid JSON configuration";
    case KSAFE_EIO: return "input/output error";
    case KSAFE_ESTATE: return "not valid in the current state";
    case KSAFE_EHANDLER: return "record handler failed";
    case KSAFE_EUNDELIVERED: return "records left undelivered";
    case KSAFE_ECOMMIT: return "offsets not committed";
    case KSAFE_ESTORE: return "deduplication store failed";
    case KSAFE_ESTOPPED: return "stopped";
    default: return "unknown error code";
    }
}

void ksafe_error_clear(ksafe_error *err)
{
    if (err)
        memset(err, 0, sizeof(*err));
}

int ksafe__error_set(ksafe_error *err, int code, int rdkafka_code,
                     unsigned int flags, const char *fmt, ...)
{
    va_list ap;

    if (!err)
        return code;
    memset(err, 0, sizeof(*err));
    err->code = code;
    err->rdkafka_code = rdkafka_code;
    err->flags = flags;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof(err->message), fmt, ap);
    va_end(ap);
    return code;
}

int ksafe__error_from_rd(ksafe_error *err, const rd_kafka_error_t *rderr,
                         const char *what)
{
    unsigned int flags = 0;
    int code;

    if (rd_kafka_error_is_retriable(rderr))
        flags |= KSAFE_ERROR_RETRIABLE;
    if (rd_kafka_error_is_fatal(rderr))
        flags |= KSAFE_ERROR_FATAL;
    if (rd_kafka_error_txn_requires_abort(rderr))
        flags |= KSAFE_ERROR_TXN_REQUIRES_ABORT;
    code = (flags & KSAFE_ERROR_FATAL) ? KSAFE_EFATAL : KSAFE_EKAFKA;
    return ksafe__error_set(err, code, rd_kafka_error_code(rderr), flags,
                            "%s: %s (%s)", what, rd_kafka_error_string(rderr),
                            rd_kafka_error_name(rderr));
}

int ksafe__error_from_resp(ksafe_error *err, rd_kafka_resp_err_t code,
                           const char *what)
{
    int kcode = KSAFE_EKAFKA;
    unsigned int flags = 0;

    if (code == RD_KAFKA_RESP_ERR__TIMED_OUT)
        kcode = KSAFE_ETIMEDOUT;
    if (code == RD_KAFKA_RESP_ERR__FATAL) {
        kcode = KSAFE_EFATAL;
        flags |= KSAFE_ERROR_FATAL;
    }
    if (code == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
        kcode = KSAFE_EQUEUEFULL;
        flags |= KSAFE_ERROR_RETRIABLE;
    }
    return ksafe__error_set(err, kcode, code, flags, "%s: %s (%s)", what,
                            rd_kafka_err2str(code), rd_kafka_err2name(code));
}
