/*
 * lib/key_lanes.c - lanes of records kept in order (see key_lanes.h).
 */
#include "key_lanes.h"

#include <stdlib.h>

int ksafe__lanes_init(ksafe__lanes *L, size_t count)
{
    size_t n = 1;

    while (n < count && n < ((size_t)1 << 24))
        n <<= 1;
    L->lane = calloc(n, sizeof *L->lane);
    L->mask = (uint32_t)(n - 1);
    L->queued = 0;
    return L->lane ? 0 : -1;
}

void ksafe__lanes_free(ksafe__lanes *L)
{
    free(L->lane);
    L->lane = NULL;
    L->mask = 0;
    L->queued = 0;
}

static uint32_t fnv(uint32_t h, const unsigned char *p, size_t n)
{
    while (n--)
        h = (h ^ *p++) * 16777619u;
    return h;
}

uint32_t ksafe__lanes_pick(const ksafe__lanes *L, const void *owner,
                           const void *key, size_t key_len)
{
    uint32_t h = fnv(2166136261u, (const unsigned char *)&owner,
                     sizeof owner);

    if (key)
        h = fnv(fnv(h, (const unsigned char *)"k", 1), key, key_len);
    return h & L->mask;
}

int ksafe__lanes_push(ksafe__lanes *L, ksafe__lane_link *r, uint32_t lane,
                      const void *owner)
{
    ksafe__lane *l = &L->lane[lane & L->mask];

    r->next = NULL;
    r->lane = lane & L->mask;
    r->owner = owner;
    if (!l->head) {
        l->head = l->tail = r;
        return 1;
    }
    l->tail->next = r;
    l->tail = r;
    L->queued++;
    return 0;
}

ksafe__lane_link *ksafe__lanes_done(ksafe__lanes *L, ksafe__lane_link *r)
{
    ksafe__lane *l = &L->lane[r->lane];

    if (l->head != r)
        return NULL; /* not running: a caller bug, never a lane change */
    l->head = r->next;
    r->next = NULL;
    if (!l->head) {
        l->tail = NULL;
        return NULL;
    }
    L->queued--;
    return l->head;
}

size_t ksafe__lanes_drop(ksafe__lanes *L, const void *owner,
                         void (*drop)(ksafe__lane_link *r, void *opaque),
                         void *opaque)
{
    size_t i, n = 0;

    for (i = 0; i <= L->mask; i++) {
        ksafe__lane *l = &L->lane[i];
        ksafe__lane_link *prev, *r;

        if (!l->head)
            continue;
        prev = l->head; /* the head runs: the caller settles it */
        while ((r = prev->next)) {
            if (r->owner != owner) {
                prev = r;
                continue;
            }
            prev->next = r->next;
            if (l->tail == r)
                l->tail = prev;
            L->queued--;
            n++;
            if (drop)
                drop(r, opaque);
        }
    }
    return n;
}
