/**
 * @file
 * ksafe/error.h - the error model.
 *
 * Every public function that can fail returns an int: 0 on success or a
 * negative KSAFE_E* code. It also takes an optional, caller-owned
 * `ksafe_error *` (NULL is always accepted) that receives the details: our
 * code, librdkafka's error code when one was involved, three flags carried
 * over from librdkafka's rd_kafka_error_t, and a message that names the
 * offending field, property or record.
 *
 * There is no thread-local "last error": librdkafka calls back from its own
 * threads, so the caller always owns the storage.
 */
#ifndef KSAFE_ERROR_H
#define KSAFE_ERROR_H

#include "common.h"

KSAFE_BEGIN_DECLS

/** Error codes. 0 is success; every error is negative. */
typedef enum ksafe_error_code {
    KSAFE_OK = 0,            /**< success */
    KSAFE_EINVAL = -1,       /**< invalid argument or option value */
    KSAFE_EUNSAFE = -2,      /**< refused: the setting weakens a safety guarantee */
    KSAFE_ENOMEM = -3,       /**< out of memory */
    KSAFE_EKAFKA = -4,       /**< librdkafka reported an error (see rdkafka_code) */
    KSAFE_ETIMEDOUT = -5,    /**< the operation did not finish in time */
    KSAFE_EQUEUEFULL = -6,   /**< the producer queue is full (retriable) */
    KSAFE_EFATAL = -7,       /**< fatal client error: the handle must be replaced */
    KSAFE_ETXNABORTED = -8,  /**< the transaction was aborted */
    KSAFE_EVERSION = -9,     /**< unknown options version */
    KSAFE_EJSON = -10,       /**< malformed JSON configuration */
    KSAFE_EIO = -11,         /**< file could not be read */
    KSAFE_ESTATE = -12,      /**< call not valid in the handle's current state */
    KSAFE_EHANDLER = -13,    /**< a record handler failed permanently */
    KSAFE_EUNDELIVERED = -14,/**< records were left undelivered */
    KSAFE_ECOMMIT = -15,     /**< offsets could not be committed */
    KSAFE_ESTORE = -16,      /**< a deduplication store failed */
    KSAFE_ESTOPPED = -17     /**< stopped on request before completion */
} ksafe_error_code;

/** Flags carried over from librdkafka's rd_kafka_error_t. */
#define KSAFE_ERROR_RETRIABLE 0x1u          /**< trying again may succeed */
#define KSAFE_ERROR_FATAL 0x2u              /**< the client instance is unusable */
#define KSAFE_ERROR_TXN_REQUIRES_ABORT 0x4u /**< abort the transaction, then go on */

/** Size of ksafe_error::message, terminating NUL included. */
#define KSAFE_ERROR_MESSAGE_SIZE 256

/**
 * Details of a failure. Caller-owned, never allocated by ksafe; zero it or
 * leave it uninitialised, every failing call fills all of it.
 */
typedef struct ksafe_error {
    int code;                 /**< a ksafe_error_code, 0 when no error */
    int rdkafka_code;         /**< rd_kafka_resp_err_t involved, or 0 */
    unsigned int flags;       /**< KSAFE_ERROR_* flags */
    char message[KSAFE_ERROR_MESSAGE_SIZE]; /**< NUL-terminated, never secrets */
    unsigned char reserved[32];             /**< for future fields; zeroed */
} ksafe_error;

/** A static description of an error code; never NULL. */
KSAFE_EXTERN const char *ksafe_strerror(int code);

/** Resets `err` to "no error". Accepts NULL. */
KSAFE_EXTERN void ksafe_error_clear(ksafe_error *err);

KSAFE_END_DECLS

#endif
