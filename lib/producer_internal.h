/*
 * lib/producer_internal.h - the producer's state, shared by its files
 * (producer.c, producer_report.c, producer_close.c, producer_recover.c and
 * txn.c).
 */
#ifndef KSAFE_PRODUCER_INTERNAL_H
#define KSAFE_PRODUCER_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "internal.h"

/* States of a sync send's handshake with the delivery report. */
enum { KSAFE__SYNC_WAITING = 0, KSAFE__SYNC_DONE, KSAFE__SYNC_ABANDONED };

/* The outcome of a sync send, filled by the delivery report. */
typedef struct ksafe__sync {
    atomic_int state;
    rd_kafka_resp_err_t err;
    int fatal;            /* failed because the instance had a fatal error */
    int possibly_delivered;
    ksafe_record_metadata meta;
} ksafe__sync;

/*
 * librdkafka's per-message opaque is one of these, so the user's opaque
 * survives untouched and a sync send can find its waiter; or, for an
 * async send without a user opaque, the send's sequence number itself,
 * shifted left with bit 0 set (a wrapper's address is even). The report
 * then reads no memory of ours: the wrapper, written a long queue ago,
 * was a cache miss per record, the largest cost left over raw librdkafka.
 */
typedef struct ksafe__msg {
    void *user_opaque;
    uint64_t seq;      /* send order, to restore it after a fatal error */
    ksafe__sync *sync; /* NULL for ksafe_producer_send() */
    atomic_uint_least32_t next_free; /* pool index of the next free one */
    uint32_t index;    /* its pool index; 0: from the heap */
} ksafe__msg;

/*
 * The wrappers, from chunks that live as long as the producer: a send takes
 * one and its report gives it back, without a heap allocation per record
 * (malloc's slow path, as a million wrappers are outstanding at once, was
 * the largest cost ksafe added over raw librdkafka). The free list is a
 * lock-free stack of indexes whose head carries a generation count, so a
 * wrapper taken and given back between a pop's read and its swap cannot
 * fool it (the ABA problem); sends and reports may run on any threads.
 */
#define KSAFE__POOL_CHUNK 4096
#define KSAFE__POOL_CHUNKS 1024 /* 4 M wrappers; beyond, the heap */
typedef struct ksafe__msg_pool {
    _Atomic uint64_t head;    /* generation << 32 | index (0: empty) */
    pthread_mutex_t grow;     /* serialises adding chunks */
    ksafe__msg *chunks[KSAFE__POOL_CHUNKS];
    atomic_size_t n_chunks;
} ksafe__msg_pool;

/* A record held back after a fatal error, owned copies of everything. */
typedef struct ksafe__rescued {
    struct ksafe__rescued *next;
    uint64_t seq;
    char *topic;
    int32_t partition;
    void *key, *value;
    size_t key_len, value_len;
    int has_key, has_value; /* NULL and empty are different records */
    rd_kafka_headers_t *headers;
    int64_t timestamp_ms;
    void *opaque;
    rd_kafka_resp_err_t err;
    int possibly_delivered;
} ksafe__rescued;

struct ksafe_producer {
    ksafe__client cl; /* first: rd_kafka_opaque() points here */
    rd_kafka_conf_t *conf; /* template for the instance that recover builds */
    ksafe_delivery_cb on_delivery;
    void *delivery_payload;
    ksafe_queue_full_policy queue_full;
    int queue_full_timeout_ms;
    int delivery_timeout_ms;
    int transaction_timeout_ms;
    int transactional;
    int txn_initialised;
    atomic_int txn_open;
    atomic_uint_fast64_t txn_records; /* sent in the open transaction */
    atomic_int closed;
    atomic_uint_fast64_t delivered; /* fates of all sends, by outcome */
    atomic_uint_fast64_t failed;
    /* Failures nobody was told of (no on_delivery) since the last flush or
     * close, which return their count. */
    atomic_uint_fast64_t unreported;
    atomic_uint_fast64_t handed_back;
    /* Records handed to librdkafka (each attempt takes a sequence number)
     * and records done with: reported, or refused by produce. Their
     * difference is what librdkafka holds unreported (any instance), kept
     * as two counters so a send pays one atomic operation, not two. */
    atomic_uint_fast64_t next_seq;
    atomic_uint_fast64_t done;
    ksafe__msg_pool *pool;
    pthread_mutex_t lock;           /* guards the rescued list */
    ksafe__rescued *rescued, **rescued_tail;
    size_t n_rescued;
};

/* Records librdkafka has and has not reported yet. `done` is read first:
 * every record's sequence number is taken before it can be done, so the
 * difference never goes below the true count. */
static inline uint64_t ksafe__producer_pending(ksafe_producer *p)
{
    uint64_t done = atomic_load(&p->done);

    return atomic_load(&p->next_seq) - done;
}

/* ---- producer_report.c --------------------------------------------------- */

void ksafe__producer_dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m,
                           void *opaque);
/* 1 once the instance has had a fatal error. */
int ksafe__producer_is_fatal(rd_kafka_t *rk);
int ksafe__producer_fatal_error(ksafe_producer *p, ksafe_error *err);
/* Serves ready reports without blocking. */
void ksafe__producer_serve(ksafe_producer *p);
void ksafe__rescued_free(ksafe__rescued *r);
/* Takes the held records, in send order; *n receives how many. */
ksafe__rescued *ksafe__producer_take_rescued(ksafe_producer *p, size_t *n);
/* A failure with no delivery callback to hear it: logged at error level
 * and counted for the next flush or close. */
void ksafe__producer_unwatched_failure(ksafe_producer *p, const char *topic,
                                      int32_t partition, const ksafe_error *e,
                                      int possibly_delivered);
/* Reports a held record failed with `e` and frees it. */
void ksafe__producer_report_rescued(ksafe_producer *p, ksafe__rescued *r,
                                    const ksafe_error *e);

/* 1 when a record with this user opaque can go without a wrapper: there
 * is nothing to keep but the sequence number, and it fits the pointer. */
#define KSAFE__MSG_TAGGABLE(user_opaque)                                     \
    ((user_opaque) == NULL && sizeof(uintptr_t) >= sizeof(uint64_t))

/* ---- producer_options.c -------------------------------------------------- */

extern const ksafe_producer_options ksafe__producer_preset;
/* The preset's fixed properties, then the typed ones, into conf. */
int ksafe__producer_conf(const ksafe_producer_options *o,
                         rd_kafka_conf_t *conf, ksafe_error *err);

/* ---- producer_msg.c ------------------------------------------------------ */

ksafe__msg_pool *ksafe__msg_pool_new(void);
void ksafe__msg_pool_free(ksafe__msg_pool *pool);
/* A zeroed wrapper, or NULL when memory ran out. */
ksafe__msg *ksafe__msg_get(ksafe__msg_pool *pool);
void ksafe__msg_put(ksafe__msg_pool *pool, ksafe__msg *w);

/* ---- producer.c ---------------------------------------------------------- */

/* Hands one record to librdkafka (see the definition for ownership). */
int ksafe__producer_produce(ksafe_producer *p, const char *topic,
                            int32_t partition, const void *key,
                            size_t key_len, const void *value,
                            size_t value_len, rd_kafka_headers_t *hdrs,
                            int64_t timestamp_ms, ksafe__msg *w,
                            ksafe_error *err);

/* txn.c: aborts an open transaction during close; 0 or an error code. */
int ksafe__txn_abort_for_close(ksafe_producer *p, int timeout_ms,
                               ksafe_error *err);

#endif
