/*
 * lib/producer_msg.c - the pool of per-record wrappers (see
 * producer_internal.h for why it exists and how its free list is safe).
 */
#include <stdlib.h>
#include <string.h>

#include "producer_internal.h"

ksafe__msg_pool *ksafe__msg_pool_new(void)
{
    ksafe__msg_pool *pool = calloc(1, sizeof(*pool));

    if (!pool)
        return NULL;
    atomic_init(&pool->head, 0);
    atomic_init(&pool->n_chunks, 0);
    pthread_mutex_init(&pool->grow, NULL);
    return pool;
}

void ksafe__msg_pool_free(ksafe__msg_pool *pool)
{
    size_t i;

    if (!pool)
        return;
    for (i = 0; i < atomic_load(&pool->n_chunks); i++)
        free(pool->chunks[i]);
    pthread_mutex_destroy(&pool->grow);
    free(pool);
}

static ksafe__msg *slot(ksafe__msg_pool *pool, uint32_t index)
{
    return &pool->chunks[(index - 1) / KSAFE__POOL_CHUNK]
                        [(index - 1) % KSAFE__POOL_CHUNK];
}

/* Pushes the chain first..last (linked by next_free) onto the stack. */
static void push_chain(ksafe__msg_pool *pool, ksafe__msg *first,
                       ksafe__msg *last)
{
    uint64_t head = atomic_load(&pool->head), next;

    do {
        atomic_store_explicit(&last->next_free, (uint32_t)head,
                              memory_order_relaxed);
        next = (((head >> 32) + 1) << 32) | first->index;
    } while (!atomic_compare_exchange_weak(&pool->head, &head, next));
}

/* Adds a chunk: returns its first wrapper, the rest go on the stack. */
static ksafe__msg *grow(ksafe__msg_pool *pool)
{
    ksafe__msg *c = NULL;
    size_t n, i;

    pthread_mutex_lock(&pool->grow);
    n = atomic_load(&pool->n_chunks);
    if (n < KSAFE__POOL_CHUNKS &&
        (c = calloc(KSAFE__POOL_CHUNK, sizeof(*c)))) {
        for (i = 0; i < KSAFE__POOL_CHUNK; i++) {
            c[i].index = (uint32_t)(n * KSAFE__POOL_CHUNK + i + 1);
            atomic_init(&c[i].next_free,
                        i + 1 < KSAFE__POOL_CHUNK ? c[i].index + 1 : 0);
        }
        pool->chunks[n] = c;
        /* Published before any of its indexes reaches the stack. */
        atomic_store(&pool->n_chunks, n + 1);
        push_chain(pool, &c[1], &c[KSAFE__POOL_CHUNK - 1]);
    }
    pthread_mutex_unlock(&pool->grow);
    return c;
}

ksafe__msg *ksafe__msg_get(ksafe__msg_pool *pool)
{
    uint64_t head = atomic_load(&pool->head);
    ksafe__msg *w = NULL;

    while ((uint32_t)head) {
        uint64_t next;
        w = slot(pool, (uint32_t)head);
        /* Possibly stale if another thread took w meanwhile: then the
         * generation has moved on and the swap fails. */
        next = (((head >> 32) + 1) << 32) |
               atomic_load_explicit(&w->next_free, memory_order_relaxed);
        if (atomic_compare_exchange_weak(&pool->head, &head, next))
            break;
        w = NULL;
    }
    if (!w && !(w = grow(pool)) && !(w = calloc(1, sizeof(*w))))
        return NULL;
    w->user_opaque = NULL;
    w->seq = 0;
    w->sync = NULL;
    return w;
}

void ksafe__msg_put(ksafe__msg_pool *pool, ksafe__msg *w)
{
    if (!w)
        return;
    if (!w->index)
        free(w);
    else
        push_chain(pool, w, w);
}
