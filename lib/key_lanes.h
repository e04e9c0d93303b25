/*
 * lib/key_lanes.h - the order keeper of ksafe_run with workers: records that
 * must stay in order share a lane, and a lane runs one record at a time.
 * Never installed.
 *
 * The caller picks the lane: by key, the hash of (partition, key) (records
 * without a key use the partition's own lane); by partition, the partition.
 * Two keys whose hashes meet share a lane: they are then kept in order
 * together, which is stricter than needed and never wrong. A record asking
 * for a retry stays at the head of its lane, so only the records behind it
 * wait; other lanes keep flowing.
 *
 * Records are linked through a ksafe__lane_link the caller embeds in its own
 * record struct: nothing is allocated per record.
 */
#ifndef KSAFE_KEY_LANES_H
#define KSAFE_KEY_LANES_H

#include <stddef.h>
#include <stdint.h>

typedef struct ksafe__lane_link {
    struct ksafe__lane_link *next;
    uint32_t lane;
    const void *owner; /* the record's partition, for ksafe__lanes_drop */
} ksafe__lane_link;

typedef struct ksafe__lane {
    ksafe__lane_link *head, *tail; /* head: running (or backing off) */
} ksafe__lane;

typedef struct ksafe__lanes {
    ksafe__lane *lane;
    uint32_t mask; /* lane count - 1, a power of two minus one */
    size_t queued; /* records waiting behind a running one */
} ksafe__lanes;

/* `count` lanes, rounded up to a power of two (1 .. 2^24). -1 when out of
 * memory. */
int ksafe__lanes_init(ksafe__lanes *L, size_t count);
void ksafe__lanes_free(ksafe__lanes *L);

/* The lane of a key of partition `owner` (the pointer that names the
 * partition, as for ksafe__lanes_push: a partition number alone would make
 * the same number of two topics share lanes); FNV-1a over both. A NULL key
 * gives the partition's lane, the one ordering by partition uses. */
uint32_t ksafe__lanes_pick(const ksafe__lanes *L, const void *owner,
                           const void *key, size_t key_len);

/* Adds a record of partition `owner` (any pointer naming it: partitions of
 * two topics share numbers) at the tail of lane `lane` (masked). 1: its
 * lane was idle, so the record may run now; 0: it waits behind the lane's
 * head. */
int ksafe__lanes_push(ksafe__lanes *L, ksafe__lane_link *r, uint32_t lane,
                      const void *owner);

/* The lane's head finished for good (handled, skipped, dead-lettered). Returns
 * the record that may run next in that lane, or NULL when the lane is now
 * idle. `r` must be the head of its lane. */
ksafe__lane_link *ksafe__lanes_done(ksafe__lanes *L, ksafe__lane_link *r);

/* A partition was revoked or lost: unlinks every waiting (not head) record
 * of `owner`, calling `drop` for each, and returns how many. Heads
 * are running or backing off: the caller discards their results by
 * ownership epoch and still calls ksafe__lanes_done for each, which frees
 * the lane for whatever of other partitions waits behind. */
size_t ksafe__lanes_drop(ksafe__lanes *L, const void *owner,
                         void (*drop)(ksafe__lane_link *r, void *opaque),
                         void *opaque);

#endif
