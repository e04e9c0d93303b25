/*
 * lib/dedup_internal.h - what the dedup files share. Never installed.
 */
#ifndef KSAFE_DEDUP_INTERNAL_H
#define KSAFE_DEDUP_INTERNAL_H

#include "internal.h"
#include "ksafe/dedup.h"

/* 64-bit hash of a key, seeded so that keys crafted to collide with one
 * process's table do not collide with another's. */
uint64_t ksafe__dedup_hash(const void *key, size_t len, uint64_t seed);

/* A seed that differs between handles and runs. */
uint64_t ksafe__dedup_seed(void);

/* Wall clock, ms since the epoch: durable marks outlive the process. */
int64_t ksafe__wall_ms(void);

/* 0 if `name` is [A-Za-z_][A-Za-z0-9_]* (at most 63 chars), optionally
 * "schema.table" when `dotted`; else KSAFE_EINVAL naming `field`. Names are
 * interpolated into SQL, so nothing else gets through. */
int ksafe__dedup_check_ident(const char *name, int dotted, const char *field,
                             ksafe_error *err);

/* Common part of the SQL stores: which part of a possibly dotted name is the
 * bare table name (for index names). */
const char *ksafe__dedup_bare_name(const char *name);

/* Creates the wrapper of a SQL store and records whether its transactions
 * are the application's (KSAFE_DEDUP_TXN_CALLER): the loop refuses those. */
int ksafe__dedup_store_new_sql(ksafe_dedup_store **out,
                               const ksafe_dedup_store_ops *ops, void *self,
                               ksafe_dedup_txn_mode mode, ksafe_error *err);

/* 1 if the store leaves BEGIN/COMMIT/ROLLBACK to the application. */
int ksafe__dedup_store_caller_txn(const ksafe_dedup_store *s);

#endif
