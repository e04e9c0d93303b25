/*
 * lib/completion_window.h - one partition's records in flight, completed
 * out of order, and the offset that may be committed: the lowest offset not
 * yet completed (ksafe_run with workers). Never installed.
 *
 * Records are added in the order the partition delivers them (ascending
 * offsets, not always contiguous: compaction and transaction markers leave
 * holes) and complete in any order. The commit position only ever covers a
 * prefix of completed records, so a crash repeats at most the records after
 * it and never skips an unfinished one.
 *
 * Each slot also holds the caller's item (the loop's record), handed back
 * when the commit position passes it: a record that completed behind an
 * unfinished one stays alive until then, and the last one passed is the
 * record to mark.
 *
 * Memory: 17 bytes per slot, `cap` slots allocated once at init; nothing is
 * allocated per record.
 */
#ifndef KSAFE_COMPLETION_WINDOW_H
#define KSAFE_COMPLETION_WINDOW_H

#include <stddef.h>
#include <stdint.h>

typedef struct ksafe__cwin {
    int64_t *off;        /* ring of added offsets, ascending from head */
    void **item;         /* per slot: the caller's item */
    unsigned char *done; /* per slot: completed */
    size_t head, len, cap;
    int64_t position;    /* next offset to commit; -1: nothing completed */
} ksafe__cwin;

enum {
    KSAFE__CWIN_FULL = -1,    /* add: `cap` records already in the window */
    KSAFE__CWIN_ORDER = -2,   /* add: offset not above the last one added */
    KSAFE__CWIN_UNKNOWN = -3, /* complete: not in the window, or done twice */
    KSAFE__CWIN_NOMEM = -4    /* init */
};

/* An empty window of `cap` slots (cap >= 1). */
int ksafe__cwin_init(ksafe__cwin *w, size_t cap);
void ksafe__cwin_free(ksafe__cwin *w);

/* A dispatched record and its item. 0, KSAFE__CWIN_FULL or
 * KSAFE__CWIN_ORDER. */
int ksafe__cwin_add(ksafe__cwin *w, int64_t offset, void *item);

/* Called for each item the commit position passes, in offset order; `last`
 * is 1 for the final one of a move (the record to mark). It must not call
 * into the window. */
typedef void (*ksafe__cwin_passed_fn)(void *item, int last, void *arg);

/* A record finished (handled, skipped or dead-lettered). 1 when the commit
 * position moved (`passed`, if not NULL, got each item it passed), 0 when
 * an earlier record is still unfinished, KSAFE__CWIN_UNKNOWN for an offset
 * not in flight here. */
int ksafe__cwin_complete(ksafe__cwin *w, int64_t offset,
                         ksafe__cwin_passed_fn passed, void *arg);

/* The offset to commit (the one after the completed prefix), or -1 when no
 * prefix has completed since init or reset. */
int64_t ksafe__cwin_position(const ksafe__cwin *w);

/* Records added and not yet covered by the commit position (completed ones
 * behind a gap included: they hold a slot). */
size_t ksafe__cwin_inflight(const ksafe__cwin *w);

/* The lowest unfinished offset, or -1 when none is in flight. */
int64_t ksafe__cwin_oldest(const ksafe__cwin *w);

/* Its item, or NULL. */
void *ksafe__cwin_oldest_item(const ksafe__cwin *w);

/* Called by reset for each item still in the window, with done = 1 for a
 * record that completed behind an unfinished one (free it) and 0 for one
 * still running (its completion comes later and must be dropped). */
typedef void (*ksafe__cwin_forget_fn)(void *item, int done, void *arg);

/* Forgets everything (a revoked or lost partition), telling `forget` (if
 * not NULL) about each item: late completions of the old records then
 * return KSAFE__CWIN_UNKNOWN. */
void ksafe__cwin_reset(ksafe__cwin *w, ksafe__cwin_forget_fn forget,
                       void *arg);

#endif
