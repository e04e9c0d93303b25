/*
 * lib/scenario_records.c - the scenario kit's record sets: copies of
 * records in the order they came, duplicates kept, with an index by
 * (partition, offset) so "which produced record was never handled" costs
 * one lookup per record. Locked, because a handler fills one on the loop's
 * thread while the test reads it.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

typedef struct entry {
    ksafe_test_record rec;
} entry;

struct ksafe_test_records {
    pthread_mutex_t lock;
    entry *entries;
    size_t count, cap;
    /* open addressing: index + 1 of the first entry at that (p, o); 0 free */
    size_t *slots;
    size_t slot_cap, distinct;
};

int ksafe_test_records_new(ksafe_test_records **out, ksafe_error *err)
{
    ksafe_test_records *rs;

    if (!out)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0, "out is NULL");
    *out = NULL;
    if (!(rs = calloc(1, sizeof(*rs))))
        return ksafe__error_set(err, KSAFE_ENOMEM, 0, 0, "out of memory");
    if (pthread_mutex_init(&rs->lock, NULL)) {
        free(rs);
        return ksafe__error_set(err, KSAFE_ENOMEM, 0, 0,
                                "records_new: no lock could be made");
    }
    *out = rs;
    return 0;
}

static size_t slot_of(int32_t partition, int64_t offset, size_t cap)
{
    uint64_t h = (uint64_t)offset * 0x9E3779B97F4A7C15ull ^
                 (uint64_t)(uint32_t)partition * 0xC2B2AE3D27D4EB4Full;
    h ^= h >> 31;
    return (size_t)(h & (cap - 1));
}

/* The entry index + 1 at (partition, offset), or 0. Locked by the caller. */
static size_t find(const ksafe_test_records *rs, int32_t partition,
                   int64_t offset)
{
    size_t i;

    if (!rs->slot_cap)
        return 0;
    for (i = slot_of(partition, offset, rs->slot_cap); rs->slots[i];
         i = (i + 1) & (rs->slot_cap - 1)) {
        const ksafe_test_record *r = &rs->entries[rs->slots[i] - 1].rec;
        if (r->partition == partition && r->offset == offset)
            return rs->slots[i];
    }
    return 0;
}

static int grow_slots(ksafe_test_records *rs)
{
    size_t cap = rs->slot_cap ? rs->slot_cap * 2 : 64, i, j;
    size_t *slots = calloc(cap, sizeof(*slots));

    if (!slots)
        return -1;
    for (i = 0; i < rs->slot_cap; i++) {
        const ksafe_test_record *r;
        if (!rs->slots[i])
            continue;
        r = &rs->entries[rs->slots[i] - 1].rec;
        for (j = slot_of(r->partition, r->offset, cap); slots[j];
             j = (j + 1) & (cap - 1))
            ;
        slots[j] = rs->slots[i];
    }
    free(rs->slots);
    rs->slots = slots;
    rs->slot_cap = cap;
    return 0;
}

static void *copy_bytes(const void *src, size_t len)
{
    char *p;

    if (!src)
        return NULL;
    if (!(p = malloc(len + 1)))
        return NULL;
    memcpy(p, src, len);
    p[len] = '\0';
    return p;
}

int ksafe_test_records_add(ksafe_test_records *rs, int32_t partition,
                           int64_t offset, const void *key, size_t key_len,
                           const void *value, size_t value_len,
                           ksafe_error *err)
{
    ksafe_test_record r;
    int rc = 0;

    if (!rs)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0, "record set is NULL");
    if (partition < 0 || offset < 0)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "record at partition %d offset %lld: both "
                                "must be >= 0",
                                (int)partition, (long long)offset);
    if ((!key && key_len) || (!value && value_len))
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "record at partition %d offset %lld: %s is "
                                "NULL with a length",
                                (int)partition, (long long)offset,
                                !key && key_len ? "key" : "value");
    r.partition = partition;
    r.offset = offset;
    r.key = copy_bytes(key, key_len);
    r.key_len = key ? key_len : 0;
    r.value = copy_bytes(value, value_len);
    r.value_len = value ? value_len : 0;
    if ((key && !r.key) || (value && !r.value))
        goto nomem;

    pthread_mutex_lock(&rs->lock);
    if (rs->count == rs->cap) {
        size_t cap = rs->cap ? rs->cap * 2 : 64;
        entry *e = realloc(rs->entries, cap * sizeof(*e));
        if (!e) {
            rc = -1;
            goto unlock;
        }
        rs->entries = e;
        rs->cap = cap;
    }
    rs->entries[rs->count].rec = r;
    rs->count++;
    if (!find(rs, partition, offset)) {
        size_t i;
        if ((rs->distinct + 1) * 2 > rs->slot_cap && grow_slots(rs)) {
            rs->count--;
            rc = -1;
            goto unlock;
        }
        for (i = slot_of(partition, offset, rs->slot_cap); rs->slots[i];
             i = (i + 1) & (rs->slot_cap - 1))
            ;
        rs->slots[i] = rs->count;
        rs->distinct++;
    }
unlock:
    pthread_mutex_unlock(&rs->lock);
    if (!rc)
        return 0;
nomem:
    free((void *)r.key);
    free((void *)r.value);
    return ksafe__error_set(err, KSAFE_ENOMEM, 0, 0,
                            "out of memory adding a record to the set");
}

int ksafe_test_records_add_message(ksafe_test_records *rs,
                                   const ksafe_message *msg, ksafe_error *err)
{
    const void *key, *value;
    size_t key_len = 0, value_len = 0;

    if (!msg)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0, "message is NULL");
    key = ksafe_message_key(msg, &key_len);
    value = ksafe_message_value(msg, &value_len);
    return ksafe_test_records_add(rs, ksafe_message_partition(msg),
                                  ksafe_message_offset(msg), key, key_len,
                                  value, value_len, err);
}

size_t ksafe_test_records_count(const ksafe_test_records *rs)
{
    size_t n;

    if (!rs)
        return 0;
    pthread_mutex_lock((pthread_mutex_t *)&rs->lock);
    n = rs->count;
    pthread_mutex_unlock((pthread_mutex_t *)&rs->lock);
    return n;
}

size_t ksafe_test_records_distinct(const ksafe_test_records *rs)
{
    size_t n;

    if (!rs)
        return 0;
    pthread_mutex_lock((pthread_mutex_t *)&rs->lock);
    n = rs->distinct;
    pthread_mutex_unlock((pthread_mutex_t *)&rs->lock);
    return n;
}

int ksafe_test_records_get(const ksafe_test_records *rs, size_t index,
                           ksafe_test_record *out, ksafe_error *err)
{
    int rc = 0;

    if (!rs || !out)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0, "%s is NULL",
                                rs ? "out" : "record set");
    pthread_mutex_lock((pthread_mutex_t *)&rs->lock);
    if (index < rs->count)
        *out = rs->entries[index].rec;
    else
        rc = ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                              "index %zu is past the set's %zu records",
                              index, rs->count);
    pthread_mutex_unlock((pthread_mutex_t *)&rs->lock);
    return rc;
}

static int same_bytes(const void *a, size_t alen, const void *b, size_t blen)
{
    if (!a || !b)
        return !a && !b;
    return alen == blen && !memcmp(a, b, alen);
}

size_t ksafe_test_records_missing(const ksafe_test_records *expected,
                                  const ksafe_test_records *actual,
                                  ksafe_test_record *first)
{
    size_t missing = 0, i;
    pthread_mutex_t *le, *la = NULL;

    if (!expected)
        return 0;
    /* Both locks, in address order: two threads comparing a with b and b
     * with a must not deadlock. */
    le = (pthread_mutex_t *)&expected->lock;
    if (actual && actual != expected)
        la = (pthread_mutex_t *)&actual->lock;
    if (la && (uintptr_t)la < (uintptr_t)le) {
        pthread_mutex_lock(la);
        pthread_mutex_lock(le);
    } else {
        pthread_mutex_lock(le);
        if (la)
            pthread_mutex_lock(la);
    }
    for (i = 0; i < expected->count; i++) {
        const ksafe_test_record *e = &expected->entries[i].rec;
        size_t at = actual ? find(actual, e->partition, e->offset) : 0;
        const ksafe_test_record *a = at ? &actual->entries[at - 1].rec : NULL;
        if (a && same_bytes(e->key, e->key_len, a->key, a->key_len) &&
            same_bytes(e->value, e->value_len, a->value, a->value_len))
            continue;
        if (!missing && first)
            *first = *e;
        missing++;
    }
    if (la)
        pthread_mutex_unlock(la);
    pthread_mutex_unlock(le);
    return missing;
}

void ksafe_test_records_free(ksafe_test_records *rs)
{
    size_t i;

    if (!rs)
        return;
    for (i = 0; i < rs->count; i++) {
        free((void *)rs->entries[i].rec.key);
        free((void *)rs->entries[i].rec.value);
    }
    free(rs->entries);
    free(rs->slots);
    pthread_mutex_destroy(&rs->lock);
    free(rs);
}
