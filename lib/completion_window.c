/*
 * lib/completion_window.c - a partition's records in flight and the
 * contiguous completed prefix (see completion_window.h).
 */
#include "completion_window.h"

#include <stdlib.h>

int ksafe__cwin_init(ksafe__cwin *w, size_t cap)
{
    w->off = cap ? malloc(cap * sizeof *w->off) : NULL;
    w->item = cap ? malloc(cap * sizeof *w->item) : NULL;
    w->done = cap ? malloc(cap) : NULL;
    w->head = w->len = 0;
    w->cap = cap;
    w->position = -1;
    if (w->off && w->item && w->done)
        return 0;
    ksafe__cwin_free(w);
    return KSAFE__CWIN_NOMEM;
}

void ksafe__cwin_free(ksafe__cwin *w)
{
    free(w->off);
    free(w->item);
    free(w->done);
    w->off = NULL;
    w->item = NULL;
    w->done = NULL;
    w->head = w->len = w->cap = 0;
    w->position = -1;
}

static size_t slot(const ksafe__cwin *w, size_t i)
{
    size_t s = w->head + i;
    return s >= w->cap ? s - w->cap : s;
}

int ksafe__cwin_add(ksafe__cwin *w, int64_t offset, void *item)
{
    size_t s;

    if (w->len == w->cap)
        return KSAFE__CWIN_FULL;
    if (offset < 0 || (w->len && offset <= w->off[slot(w, w->len - 1)]) ||
        (!w->len && w->position >= 0 && offset < w->position))
        return KSAFE__CWIN_ORDER;
    s = slot(w, w->len);
    w->off[s] = offset;
    w->item[s] = item;
    w->done[s] = 0;
    w->len++;
    return 0;
}

int ksafe__cwin_complete(ksafe__cwin *w, int64_t offset,
                         ksafe__cwin_passed_fn passed, void *arg)
{
    size_t lo = 0, hi = w->len, s;
    int moved = 0;

    while (lo < hi) { /* the first slot whose offset is >= offset */
        size_t mid = lo + (hi - lo) / 2;
        if (w->off[slot(w, mid)] < offset)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == w->len)
        return KSAFE__CWIN_UNKNOWN;
    s = slot(w, lo);
    if (w->off[s] != offset || w->done[s])
        return KSAFE__CWIN_UNKNOWN;
    w->done[s] = 1;
    while (w->len && w->done[w->head]) {
        void *it = w->item[w->head];
        w->position = w->off[w->head] + 1;
        w->head = slot(w, 1);
        w->len--;
        moved = 1;
        if (passed)
            passed(it, !w->len || !w->done[w->head], arg);
    }
    return moved;
}

int64_t ksafe__cwin_position(const ksafe__cwin *w)
{
    return w->position;
}

size_t ksafe__cwin_inflight(const ksafe__cwin *w)
{
    return w->len;
}

int64_t ksafe__cwin_oldest(const ksafe__cwin *w)
{
    return w->len ? w->off[w->head] : -1;
}

void *ksafe__cwin_oldest_item(const ksafe__cwin *w)
{
    return w->len ? w->item[w->head] : NULL; /* the head is never done */
}

void ksafe__cwin_reset(ksafe__cwin *w, ksafe__cwin_forget_fn forget,
                       void *arg)
{
    size_t i;

    if (forget)
        for (i = 0; i < w->len; i++)
            forget(w->item[slot(w, i)], w->done[slot(w, i)], arg);
    w->head = w->len = 0;
    w->position = -1;
}
