/**
 * @file
 * ksafe/dedup.h - idempotent-consumer deduplication.
 *
 * At-least-once delivery means a record can arrive again: after a crash,
 * after a rebalance revoked a partition before its offset was committed, or
 * when a producer retried outside idempotence. Kafka offers no consumer-side
 * idempotence; this module is the application side of it.
 *
 * Two pieces:
 *
 * - A dedup key names what "the same record" means: the record key, a
 *   header, a field of a JSON value, the record's topic/partition/offset, or
 *   a function of yours (ksafe_dedup_key).
 *
 * - A store remembers which keys are done (ksafe_dedup_store). The contract
 *   is claim-then-process, inside a transaction:
 *
 *       ksafe_dedup_begin(s)                      once per batch
 *         ksafe_dedup_claim(s, key) -> NEW        per record
 *           ... your handler writes its effects (same transaction for the
 *               SQL stores: same sqlite3 * / PGconn *) ...
 *         ksafe_dedup_mark(s, key)                handler succeeded
 *         ksafe_dedup_release(s, key)             or: handler failed
 *         ksafe_dedup_store_offset(s, ...)        position of the batch
 *       ksafe_dedup_commit(s)                     marks + effects + offsets
 *       ksafe_dedup_rollback(s)                   or: none of them
 *
 *   A claim that answers KSAFE_DEDUP_DUPLICATE means the key is done (or
 *   claimed earlier in this transaction): skip the record. A crash before the
 *   commit leaves no mark, and for the SQL stores no effects either.
 *
 * Stores: memory (bounded window, one process), SQLite (durable, one
 * machine), PostgreSQL (durable, shared by a group spread over machines), or
 * your own through ksafe_dedup_store_ops. The SQLite and PostgreSQL entry
 * points always exist; when the library was built without them they fail
 * with KSAFE_EINVAL ("built without ... support"). Ask at run time with
 * ksafe_dedup_has_sqlite() / ksafe_dedup_has_postgresql(). This header does
 * not include <sqlite3.h> or <libpq-fe.h>: `struct sqlite3` and
 * `struct pg_conn` are what `sqlite3` and `PGconn` name.
 *
 * Threads: a store handle is used by one thread at a time (the thread that
 * polls). Two processes or threads share a durable store by each opening
 * their own handle on the same database.
 */
#ifndef KSAFE_DEDUP_H
#define KSAFE_DEDUP_H

#include "common.h"
#include "consumer.h"
#include "error.h"

struct sqlite3;
struct pg_conn;

KSAFE_BEGIN_DECLS

/* ---- dedup keys -------------------------------------------------------- */

/** A buffer of this size holds any key the built-in extractors produce from
 * reasonable records; longer keys are refused with KSAFE_EINVAL. */
#define KSAFE_DEDUP_KEY_MAX 512

/** What identifies a record. */
typedef enum ksafe_dedup_key_kind {
    /** The record key, as bytes. A record without a key is an error. */
    KSAFE_DEDUP_KEY_RECORD_KEY = 0,
    /** The last header of a given name (e.g. "event-id"), as bytes. */
    KSAFE_DEDUP_KEY_HEADER,
    /**
     * A field of a JSON value, by a dot-separated path ("event.id",
     * "items.0.id": a number segment indexes an array). A string field gives
     * its UTF-8 bytes, an integer its decimal digits; anything else (an
     * empty string too), a value that is not JSON or lacks the field is an
     * error for that record.
     */
    KSAFE_DEDUP_KEY_JSON_FIELD,
    /**
     * "<topic>/<partition>/<offset>". Catches redelivery of the same record
     * (crash, rebalance), not a producer that sent a record twice.
     */
    KSAFE_DEDUP_KEY_POSITION,
    /** Your function (ksafe_dedup_key_new_custom()). */
    KSAFE_DEDUP_KEY_CUSTOM
} ksafe_dedup_key_kind;

/**
 * A key function: writes the key of `msg` into `buf` (`size` bytes) and its
 * length into `*len`. Returns 0, or a negative `KSAFE_E*` code and fills `err`
 * (a record it cannot key is KSAFE_EINVAL). A key longer than `size` must be
 * refused, not cut. Runs on the thread that extracts (the polling thread).
 */
typedef int (*ksafe_dedup_key_fn)(const ksafe_message *msg, void *buf,
                                  size_t size, size_t *len, ksafe_error *err,
                                  void *payload);

/**
 * A dedup key extractor (opaque): says what counts as "the same record".
 * Created by ksafe_dedup_key_parse(), _new() or _new_custom(), released by
 * ksafe_dedup_key_free(). Never modified after creation.
 */
typedef struct ksafe_dedup_key ksafe_dedup_key;

/**
 * Creates an extractor of `kind`. `arg` is the header name for
 * KSAFE_DEDUP_KEY_HEADER, the path for KSAFE_DEDUP_KEY_JSON_FIELD, and must
 * be NULL otherwise; it is copied (and the path parsed) here.
 * KSAFE_DEDUP_KEY_CUSTOM is refused: use ksafe_dedup_key_new_custom().
 * Errors: KSAFE_EINVAL naming the bad argument, KSAFE_ENOMEM.
 */
KSAFE_EXTERN int ksafe_dedup_key_new(ksafe_dedup_key **out,
                                     ksafe_dedup_key_kind kind,
                                     const char *arg, ksafe_error *err);

/** Creates an extractor that calls `fn` (required) with `payload`. */
KSAFE_EXTERN int ksafe_dedup_key_new_custom(ksafe_dedup_key **out,
                                            ksafe_dedup_key_fn fn,
                                            void *payload, ksafe_error *err);

/**
 * Creates an extractor from text, as a configuration file would name it:
 * "key", "position", "header:<name>" or "json:<path>".
 */
KSAFE_EXTERN int ksafe_dedup_key_parse(ksafe_dedup_key **out,
                                       const char *spec, ksafe_error *err);

/** The kind of an extractor. */
KSAFE_EXTERN ksafe_dedup_key_kind
ksafe_dedup_key_kind_of(const ksafe_dedup_key *k);

/**
 * Writes the dedup key of `msg` into `buf` (`size` bytes, no terminating
 * NUL added) and its length into *len. The record key, header and position
 * extractors allocate nothing; the JSON one parses the value (jansson
 * allocates while parsing). A record that cannot be keyed (no key, no such
 * header, value not JSON, field missing, empty or not a string/integer, key
 * longer than `size`) is KSAFE_EINVAL with a message naming topic, partition and
 * offset: a per-record failure, never a crash.
 */
KSAFE_EXTERN int ksafe_dedup_key_extract(const ksafe_dedup_key *k,
                                         const ksafe_message *msg, void *buf,
                                         size_t size, size_t *len,
                                         ksafe_error *err);

/** Releases an extractor. Accepts NULL. */
KSAFE_EXTERN void ksafe_dedup_key_free(ksafe_dedup_key *k);

/* ---- stores ------------------------------------------------------------ */

/**
 * A deduplication store (opaque): remembers which keys are done, in
 * transactions of claims and marks. Opened by ksafe_dedup_memory_new(),
 * _sqlite_new(), _pg_new() or ksafe_dedup_store_new(), released by
 * ksafe_dedup_store_free(). One thread at a time per handle.
 */
typedef struct ksafe_dedup_store ksafe_dedup_store;

/** The answer of ksafe_dedup_claim(). */
typedef enum ksafe_dedup_status {
    KSAFE_DEDUP_NEW = 0,      /**< claimed: process the record */
    KSAFE_DEDUP_DUPLICATE = 1 /**< done already (or claimed in this batch) */
} ksafe_dedup_status;

/**
 * A clock in milliseconds, for TTLs and ksafe_dedup_expire(); tests inject
 * one. Stores call it on the thread that uses them.
 */
typedef int64_t (*ksafe_dedup_clock_fn)(void *payload);

/** Who runs BEGIN/COMMIT/ROLLBACK on a SQL store's connection. */
typedef enum ksafe_dedup_txn_mode {
    /** ksafe_dedup_begin/commit/rollback issue them (default). */
    KSAFE_DEDUP_TXN_STORE = 0,
    /** You do, on your connection; the store only adds its statements to
     * whatever transaction is open. ksafe_dedup_rollback() then only resets
     * the handle: roll back your transaction too, or its claims stay. */
    KSAFE_DEDUP_TXN_CALLER
} ksafe_dedup_txn_mode;

/** Counters of one store handle since it was opened. */
typedef struct ksafe_dedup_stats {
    uint64_t claimed;    /**< claims that answered NEW */
    uint64_t duplicates; /**< claims that answered DUPLICATE: records skipped */
    uint64_t marked;     /**< claims marked done */
    uint64_t released;   /**< claims released (handler failed) */
    uint64_t commits;    /**< transactions committed */
    uint64_t rollbacks;  /**< transactions rolled back */
    uint64_t evicted;    /**< memory store: done keys dropped for capacity */
    uint64_t expired;    /**< keys forgotten by TTL or ksafe_dedup_expire() */
    uint64_t reserved[4]; /**< for future counters; zero */
} ksafe_dedup_stats;

/* -- your own store -- */

/** The version of ksafe_dedup_store_ops these headers define. */
#define KSAFE_DEDUP_STORE_OPS_VERSION 1

/**
 * A store's operations, for plugging in your own database. `self` is the
 * pointer given to ksafe_dedup_store_new(). Every int-returning operation
 * returns 0 or a negative KSAFE_E* code and fills `err`. The wrapper checks
 * the call order (claim only inside begin/commit, ...) before calling you.
 * Every member is required except `expire` (NULL: ksafe_dedup_expire()
 * answers KSAFE_EINVAL) and `stats`.
 */
typedef struct ksafe_dedup_store_ops {
    unsigned int version; /**< KSAFE_DEDUP_STORE_OPS_VERSION */
    const char *name;     /**< for messages, e.g. "redis"; borrowed, static */
    /** Starts a transaction. */
    int (*begin)(void *self, ksafe_error *err);
    /** Claims `key` tentatively in the transaction, or sets *duplicate=1
     * when it is done or claimed already. */
    int (*claim)(void *self, const void *key, size_t len, int *duplicate,
                 ksafe_error *err);
    /** Records `key` as done in the transaction (claimed or not). */
    int (*mark)(void *self, const void *key, size_t len, ksafe_error *err);
    /** Drops the claim of `key` made in this transaction. */
    int (*release)(void *self, const void *key, size_t len,
                   ksafe_error *err);
    /** Sets the next offset of group/topic/partition in the transaction;
     * an offset lower than the stored one must be ignored. */
    int (*save_offset)(void *self, const char *group, const char *topic,
                       int32_t partition, int64_t next_offset,
                       ksafe_error *err);
    /** The committed next offset, or *next_offset = -1 when none. */
    int (*load_offset)(void *self, const char *group, const char *topic,
                       int32_t partition, int64_t *next_offset,
                       ksafe_error *err);
    /** Makes the transaction durable. On failure the wrapper rolls back. */
    int (*commit)(void *self, ksafe_error *err);
    /** Forgets everything since begin. */
    int (*rollback)(void *self, ksafe_error *err);
    /** Forgets done keys older than max_age_ms; adds the count to
     * *removed. Called outside transactions. Optional. */
    int (*expire)(void *self, int64_t max_age_ms, uint64_t *removed,
                  ksafe_error *err);
    /** Adds store-specific counters (evicted, expired). Optional. */
    void (*stats)(void *self, ksafe_dedup_stats *stats);
    /** Releases `self`. Never fails; called once. */
    void (*close)(void *self);
} ksafe_dedup_store_ops;

/**
 * Wraps your store. `ops` is copied; `self` is owned by the new handle from
 * now on (ops->close(self) runs in ksafe_dedup_store_free(), and also here
 * when this call fails after validating `ops`).
 * Errors: KSAFE_EINVAL naming a missing operation, KSAFE_EVERSION.
 */
KSAFE_EXTERN int ksafe_dedup_store_new(ksafe_dedup_store **out,
                                       const ksafe_dedup_store_ops *ops,
                                       void *self, ksafe_error *err);

/* -- memory store -- */

/** The version of ksafe_dedup_memory_options these headers define. */
#define KSAFE_DEDUP_MEMORY_OPTIONS_VERSION 1

/**
 * A bounded window of done keys in this process: O(1) claim and mark, lost
 * on exit. The oldest keys are dropped first (insertion order: a duplicate
 * does not refresh its key) when `capacity` is reached or when they are
 * older than `ttl_ms`.
 *
 * A transaction may add up to min(capacity, 4096) keys beyond capacity;
 * commit evicts back down to capacity, so a rollback restores the window
 * exactly (a bigger transaction evicts early, and those keys stay gone).
 * Everything is allocated here: claim, mark and commit never allocate.
 *
 * With key_bytes = 0 only a 64-bit hash of each key is kept (about 40 bytes
 * per key): two different keys with the same hash make the second look like
 * a duplicate and be skipped. With n keys in the window a new key collides
 * with probability about n / 2^64 (1e-13 per record for a million keys).
 * key_bytes > 0 keeps each key too (up to that many bytes, longer keys are
 * refused) and compares it, so nothing is skipped wrongly.
 */
typedef struct ksafe_dedup_memory_options {
    unsigned int version; /**< KSAFE_DEDUP_MEMORY_OPTIONS_VERSION */
    size_t capacity;    /**< keys kept, required, 1 .. 2^30 */
    int64_t ttl_ms;     /**< 0: no age limit */
    size_t key_bytes;   /**< 0: hashes only; else max key length kept */
    ksafe_dedup_clock_fn clock; /**< NULL: monotonic clock */
    void *clock_payload;        /**< passed to clock */
} ksafe_dedup_memory_options;

/** The defaults; capacity (0 here) must still be set. */
#define KSAFE_DEDUP_MEMORY_OPTIONS_INIT                                      \
    { KSAFE_DEDUP_MEMORY_OPTIONS_VERSION, 0, 0, 0, NULL, NULL }

/** Sets `opts` to the defaults of `version` (capacity still to be set). */
KSAFE_EXTERN int ksafe_dedup_memory_options_init(
    ksafe_dedup_memory_options *opts, unsigned int version);

/**
 * Opens a memory store; all memory is allocated here. Offsets stored with
 * it live as long as the handle. Errors: KSAFE_EINVAL, KSAFE_EVERSION,
 * KSAFE_ENOMEM.
 */
KSAFE_EXTERN int ksafe_dedup_memory_new(ksafe_dedup_store **out,
                                        const ksafe_dedup_memory_options *opts,
                                        ksafe_error *err);

/* -- SQLite store -- */

/** The marks table of the SQL stores when marks_table is NULL. */
#define KSAFE_DEDUP_TABLE_DEFAULT "ksafe_dedup_marks"
/** The offsets table of the SQL stores when offsets_table is NULL. */
#define KSAFE_DEDUP_OFFSETS_TABLE_DEFAULT "ksafe_dedup_offsets"

/** The version of ksafe_dedup_sqlite_options these headers define. */
#define KSAFE_DEDUP_SQLITE_OPTIONS_VERSION 1

/**
 * Durable marks in a SQLite database: one machine, survives restarts.
 * Give `db` (your connection, borrowed: it must outlive the store and is
 * never closed by it) to commit the marks with your own writes, or `path`
 * to let the store open (and close) its own. Tables are created if absent:
 * @verbatim
   <marks_table>(dedup_key BLOB PRIMARY KEY, created_ms INTEGER NOT NULL)
   <offsets_table>(group_id TEXT, topic TEXT, partition_id INTEGER,
                   next_offset INTEGER, updated_ms INTEGER,
                   PRIMARY KEY(group_id, topic, partition_id))
   @endverbatim
 * With KSAFE_DEDUP_TXN_STORE, begin is BEGIN IMMEDIATE: the write lock is
 * taken up front, so a second writer waits (busy_timeout_ms) instead of
 * failing at commit. Use one transaction per poll batch.
 */
typedef struct ksafe_dedup_sqlite_options {
    unsigned int version;        /**< KSAFE_DEDUP_SQLITE_OPTIONS_VERSION */
    const char *path;            /**< opened by the store when db is NULL */
    struct sqlite3 *db;          /**< your connection, or NULL */
    const char *marks_table;     /**< identifier; NULL: default */
    const char *offsets_table;   /**< identifier; NULL: default */
    ksafe_dedup_txn_mode txn_mode; /**< default KSAFE_DEDUP_TXN_STORE */
    int busy_timeout_ms;         /**< own connection only; default 5000 */
    ksafe_dedup_clock_fn clock;  /**< NULL: wall clock (ms since epoch) */
    void *clock_payload;         /**< passed to clock */
} ksafe_dedup_sqlite_options;

/** The defaults: store-run transactions, busy timeout 5 s. */
#define KSAFE_DEDUP_SQLITE_OPTIONS_INIT                                      \
    { KSAFE_DEDUP_SQLITE_OPTIONS_VERSION, NULL, NULL, NULL, NULL,            \
      KSAFE_DEDUP_TXN_STORE, 5000, NULL, NULL }

/**
 * Sets `opts` to the defaults of `version` (db or path still to be set).
 * Fails with KSAFE_EVERSION for an unknown version, KSAFE_EINVAL for NULL.
 */
KSAFE_EXTERN int ksafe_dedup_sqlite_options_init(
    ksafe_dedup_sqlite_options *opts, unsigned int version);

/**
 * Opens a SQLite store and creates its tables if absent. Errors:
 * KSAFE_EINVAL (options, or built without SQLite support), KSAFE_EVERSION,
 * KSAFE_ESTORE (SQLite refused; the message has its text).
 */
KSAFE_EXTERN int ksafe_dedup_sqlite_new(ksafe_dedup_store **out,
                                        const ksafe_dedup_sqlite_options *opts,
                                        ksafe_error *err);

/** 1 when the library was built with the SQLite store. */
KSAFE_EXTERN int ksafe_dedup_has_sqlite(void);

/* -- PostgreSQL store -- */

/** The version of ksafe_dedup_pg_options these headers define. */
#define KSAFE_DEDUP_PG_OPTIONS_VERSION 1

/**
 * Durable marks in PostgreSQL, shared by every member of a group wherever
 * it runs. Give `conn` (your connection, borrowed, never closed by the
 * store) so a mark is an INSERT ... ON CONFLICT DO NOTHING in the same
 * transaction as your writes, or `conninfo` to let the store connect.
 * Tables (created if absent; a name may be schema-qualified):
 * @verbatim
   <marks_table>(dedup_key BYTEA PRIMARY KEY, created_ms BIGINT NOT NULL)
   <offsets_table>(group_id TEXT, topic TEXT, partition_id INTEGER,
                   next_offset BIGINT, updated_ms BIGINT,
                   PRIMARY KEY(group_id, topic, partition_id))
   @endverbatim
 * Two members claiming the same key: the second one's claim waits for the
 * first transaction, then answers DUPLICATE if it committed, NEW if it
 * rolled back.
 *
 * A lost connection (network, terminated backend, server restart) fails
 * the rest of its batch with KSAFE_ESTORE, RETRIABLE flag, libpq's message:
 * that transaction is gone, nothing in it counts as done. The next
 * ksafe_dedup_begin() reconnects once (PQreset, bounded by the conninfo's
 * connect_timeout) - your `conn` too, which then is a new session without
 * your earlier SET commands - and fails the same way if it cannot.
 * In KSAFE_DEDUP_TXN_CALLER mode reconnecting is yours.
 */
typedef struct ksafe_dedup_pg_options {
    unsigned int version;        /**< KSAFE_DEDUP_PG_OPTIONS_VERSION */
    const char *conninfo;        /**< used when conn is NULL */
    struct pg_conn *conn;        /**< your connection, or NULL */
    const char *marks_table;     /**< identifier; NULL: default */
    const char *offsets_table;   /**< identifier; NULL: default */
    ksafe_dedup_txn_mode txn_mode; /**< default KSAFE_DEDUP_TXN_STORE */
    ksafe_dedup_clock_fn clock;  /**< NULL: wall clock (ms since epoch) */
    void *clock_payload;         /**< passed to clock */
} ksafe_dedup_pg_options;

/** The defaults: store-run transactions, default table names. */
#define KSAFE_DEDUP_PG_OPTIONS_INIT                                          \
    { KSAFE_DEDUP_PG_OPTIONS_VERSION, NULL, NULL, NULL, NULL,                \
      KSAFE_DEDUP_TXN_STORE, NULL, NULL }

/**
 * Sets `opts` to the defaults of `version` (conn or conninfo still to be
 * set). Fails with KSAFE_EVERSION for an unknown version, KSAFE_EINVAL for
 * NULL.
 */
KSAFE_EXTERN int ksafe_dedup_pg_options_init(ksafe_dedup_pg_options *opts,
                                             unsigned int version);

/**
 * Opens a PostgreSQL store and creates its tables if absent. Errors:
 * KSAFE_EINVAL (options, or built without PostgreSQL support),
 * KSAFE_EVERSION, KSAFE_ESTORE (server error; the message has its text).
 */
KSAFE_EXTERN int ksafe_dedup_pg_new(ksafe_dedup_store **out,
                                    const ksafe_dedup_pg_options *opts,
                                    ksafe_error *err);

/** 1 when the library was built with the PostgreSQL store. */
KSAFE_EXTERN int ksafe_dedup_has_postgresql(void);

/* -- using a store -- */

/**
 * Starts a transaction (one per poll batch). KSAFE_ESTATE if one is open.
 * Store errors are KSAFE_ESTORE; a lock wait that timed out has the
 * RETRIABLE flag.
 */
KSAFE_EXTERN int ksafe_dedup_begin(ksafe_dedup_store *s, ksafe_error *err);

/**
 * Claims `key` (`len` bytes, 1 or more): *out is KSAFE_DEDUP_NEW (process
 * the record, then mark or release it) or KSAFE_DEDUP_DUPLICATE (skip it;
 * counted in stats.duplicates). KSAFE_ESTATE outside a transaction.
 */
KSAFE_EXTERN int ksafe_dedup_claim(ksafe_dedup_store *s, const void *key,
                                   size_t len, ksafe_dedup_status *out,
                                   ksafe_error *err);

/** Records `key` as done in the transaction: your handler succeeded. */
KSAFE_EXTERN int ksafe_dedup_mark(ksafe_dedup_store *s, const void *key,
                                  size_t len, ksafe_error *err);

/**
 * Drops this transaction's claim of `key`: the handler failed and the record
 * may be tried again. Effects the handler already wrote into a shared
 * transaction stay; roll back the transaction to drop those too.
 */
KSAFE_EXTERN int ksafe_dedup_release(ksafe_dedup_store *s, const void *key,
                                     size_t len, ksafe_error *err);

/**
 * Remembers `next_offset` (the offset of the last processed record + 1) of
 * group/topic/partition in the transaction, so a database sink commits its
 * position with its effects. Only the highest value per partition reaches
 * the store, at commit; positions never move back. Strings are copied.
 */
KSAFE_EXTERN int ksafe_dedup_store_offset(ksafe_dedup_store *s,
                                          const char *group,
                                          const char *topic, int32_t partition,
                                          int64_t next_offset,
                                          ksafe_error *err);

/**
 * Fills the offset of each partition in `parts` that has a committed
 * position in the store (others are left as they are), e.g. in an
 * on_assigned hook before seeking. Returns 0 and sets *found (optional) to
 * the number filled. Outside a transaction only.
 */
KSAFE_EXTERN int ksafe_dedup_load_offsets(
    ksafe_dedup_store *s, const char *group,
    rd_kafka_topic_partition_list_t *parts, size_t *found, ksafe_error *err);

/**
 * Commits marks, offsets and (SQL stores, shared connection) your effects.
 * KSAFE_ESTATE, and the transaction stays open, while a claim is neither
 * marked nor released: committing it would skip that record forever. When
 * the store fails to commit, the transaction is rolled back and the error
 * returned (KSAFE_ESTORE).
 */
KSAFE_EXTERN int ksafe_dedup_commit(ksafe_dedup_store *s, ksafe_error *err);

/** Drops every claim, mark and offset since begin. */
KSAFE_EXTERN int ksafe_dedup_rollback(ksafe_dedup_store *s, ksafe_error *err);

/**
 * Forgets done keys older than `max_age_ms` (> 0) by the store's clock, so
 * durable tables do not grow forever; *removed (optional) gets the count.
 * Outside a transaction only.
 */
KSAFE_EXTERN int ksafe_dedup_expire(ksafe_dedup_store *s, int64_t max_age_ms,
                                    uint64_t *removed, ksafe_error *err);

/** 1 between begin and commit/rollback. */
KSAFE_EXTERN int ksafe_dedup_in_transaction(const ksafe_dedup_store *s);

/** Copies the counters into *out. */
KSAFE_EXTERN void ksafe_dedup_stats_get(const ksafe_dedup_store *s,
                                        ksafe_dedup_stats *out);

/** The store's name ("memory", "sqlite", "postgresql" or yours). */
KSAFE_EXTERN const char *ksafe_dedup_store_name(const ksafe_dedup_store *s);

/**
 * Rolls back an open transaction, closes the store (its own connection, not
 * yours) and releases it. Accepts NULL.
 */
KSAFE_EXTERN void ksafe_dedup_store_free(ksafe_dedup_store *s);

KSAFE_END_DECLS

#endif
