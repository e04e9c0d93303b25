/*
 * lib/dedup_memory.c - a bounded window of done keys in this process.
 *
 * Entries live in a ring in insertion order, so the oldest key is always at
 * the head: eviction for capacity and for age are both "pop the head", O(1).
 * An open-addressing table (linear probing, at most half full) maps a key's
 * 64-bit hash to its ring slot; deletion shifts later entries back instead
 * of leaving tombstones, so lookups never slow down over time. Each table
 * slot carries the low 32 bits of its key's hash beside the ring position:
 * the probe compares those and its home slot follows from them, so a
 * lookup touches the ring (a cache miss in a large window) only for a
 * likely match, and a deletion never does. A
 * transaction's entries are the ring's tail from the sequence number at
 * begin, which makes rollback "pop the tail"; the ring has room for one
 * transaction beyond capacity and commit evicts down to capacity, so a
 * rollback restores the window exactly. Ages (ttl_ms) are read from
 * CLOCK_MONOTONIC_COARSE where it exists (resolution: one kernel tick,
 * 4 ms at 250 Hz), so an entry may outlive ttl_ms by up to a tick.
 */
/* mmap's MAP_ANONYMOUS, madvise's MADV_HUGEPAGE and CLOCK_MONOTONIC_COARSE
 * are outside POSIX 2008, which the build asks for: without this they are
 * undefined and the code that uses them is compiled out. */
#define _DEFAULT_SOURCE
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "dedup_internal.h"

#include <sys/mman.h>
#include <time.h>

/* A table slot: hash low 32 bits << 32 | ring position + 1. Zero is an
 * empty slot, so a fresh table is the zero pages mmap gives, untouched
 * until used. */
#define EMPTY ((uint64_t)0)
#define SLOT(h, pos) (((uint64_t)(uint32_t)(h) << 32) | (uint32_t)((pos) + 1))
#define SLOT_POS(v) ((uint32_t)(v) - 1)
#define SLOT_HOME(m, v) ((size_t)((v) >> 32) & (m)->mask)
#define MAX_CAPACITY ((size_t)1 << 30)
/* New keys one transaction may add beyond capacity before old ones are
 * evicted early (and then not restored by a rollback). */
#define TXN_ROOM ((size_t)4096)

enum { E_FREE = 0, E_CLAIMED, E_DONE };

typedef struct mem_entry {
    uint64_t hash;
    int64_t time_ms;
    uint32_t key_len;
    uint8_t state;
} mem_entry;

typedef struct mem_offset {
    char *group;
    char *topic;
    int32_t partition;
    int64_t committed; /* -1: none */
    int64_t pending;   /* -1: none in this transaction */
} mem_offset;

typedef struct mem_store {
    size_t cap;          /* committed keys kept */
    size_t size;         /* ring slots: cap + room for one transaction */
    mem_entry *ring;
    unsigned char *slab; /* cap * key_bytes, when keys are kept */
    size_t key_bytes;
    uint64_t *table;
    size_t mask;
    size_t head, count;  /* count includes released (E_FREE) slots */
    uint64_t head_seq;   /* sequence number of ring[head] */
    uint64_t txn_seq;    /* first sequence number of the transaction */
    int in_txn;
    int64_t ttl_ms;
    ksafe_dedup_clock_fn clock;
    void *clock_payload;
    uint64_t seed;
    uint64_t evicted, expired;
    mem_offset *offsets;
    size_t n_offsets, cap_offsets;
} mem_store;

/* The coarse clock costs a fraction of the precise one, and every claim
 * and mark reads it. Its resolution is the kernel's tick (4 ms on a
 * 250 Hz kernel; clock_getres() tells), far finer than any useful age
 * limit: an entry may outlive ttl_ms by up to one tick. Where the coarse
 * clock does not exist, the precise one. */
#ifdef CLOCK_MONOTONIC_COARSE
#define MONO_CLOCK CLOCK_MONOTONIC_COARSE
#else
#define MONO_CLOCK CLOCK_MONOTONIC
#endif

static int64_t mono_clock(void *payload)
{
    struct timespec ts;

    KSAFE__UNUSED(payload);
    if (clock_gettime(MONO_CLOCK, &ts) != 0)
        return ksafe__now_ms();
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Ring position `x` (< 2 * size) folded into the ring: no division on
 * the hot path. */
static size_t wrap(const mem_store *m, size_t x)
{
    return x >= m->size ? x - m->size : x;
}

static uint64_t seq_of(const mem_store *m, size_t pos)
{
    return m->head_seq + (uint64_t)(pos >= m->head ? pos - m->head
                                                   : pos + m->size - m->head);
}

/* Table slot holding the entry equal to key, or -1. */
static long find(const mem_store *m, uint64_t h, const void *key, size_t len)
{
    size_t i = (size_t)(uint32_t)h & m->mask;
    uint32_t tag = (uint32_t)h;
    uint64_t v;

    while ((v = m->table[i]) != EMPTY) {
        if ((uint32_t)(v >> 32) == tag) {
            uint32_t pos = SLOT_POS(v);
            const mem_entry *e = &m->ring[pos];
            if (e->hash == h &&
                (!m->key_bytes ||
                 (e->key_len == len &&
                  !memcmp(m->slab + (size_t)pos * m->key_bytes, key, len))))
                return (long)i;
        }
        i = (i + 1) & m->mask;
    }
    return -1;
}

static void table_delete(mem_store *m, size_t i)
{
    size_t j = i;

    for (;;) {
        size_t home;
        j = (j + 1) & m->mask;
        if (m->table[j] == EMPTY)
            break;
        home = SLOT_HOME(m, m->table[j]);
        /* Move j back into the hole i unless its home lies after i (on the
         * way from i to j), where a lookup would never pass i. */
        if (((j - home) & m->mask) >= ((j - i) & m->mask)) {
            m->table[i] = m->table[j];
            i = j;
        }
    }
    m->table[i] = EMPTY;
}

static void remove_entry(mem_store *m, size_t pos)
{
    size_t i = (size_t)(uint32_t)m->ring[pos].hash & m->mask;

    while (SLOT_POS(m->table[i]) != (uint32_t)pos)
        i = (i + 1) & m->mask;
    table_delete(m, i);
    m->ring[pos].state = E_FREE;
}

/* Drops the oldest slot; returns 1 when it held a key. */
/* Evictions come in runs (commit pops down to capacity): the table slot
 * of an entry a few places behind the head is fetched ahead, so the runs'
 * cache misses overlap instead of queueing. */
#define PREFETCH_AHEAD 8

static int pop_head(mem_store *m)
{
    int live = m->ring[m->head].state != E_FREE;

#if defined(__GNUC__) || defined(__clang__)
    if (m->count > PREFETCH_AHEAD)
        __builtin_prefetch(
            &m->table[(size_t)(uint32_t)m->ring[wrap(m, m->head +
                                                        PREFETCH_AHEAD)]
                          .hash &
                      m->mask]);
#endif

    if (live)
        remove_entry(m, m->head);
    m->head = wrap(m, m->head + 1);
    m->count--;
    m->head_seq++;
    return live;
}

/* Pops keys older than max_age; never this transaction's. */
static uint64_t pop_older(mem_store *m, int64_t now, int64_t max_age)
{
    uint64_t n = 0;

    while (m->count > 0 && !(m->in_txn && m->head_seq >= m->txn_seq)) {
        const mem_entry *e = &m->ring[m->head];
        if (e->state != E_FREE && now - e->time_ms < max_age)
            break;
        n += (uint64_t)pop_head(m);
    }
    return n;
}

static void insert(mem_store *m, uint64_t h, const void *key, size_t len,
                   uint8_t state, int64_t now)
{
    size_t pos, i;
    mem_entry *e;

    /* Only a transaction larger than the spare room evicts here; normally
     * commit does, so a rollback gives back exactly what was there. */
    if (m->count == m->size)
        m->evicted += (uint64_t)pop_head(m);
    pos = wrap(m, m->head + m->count);
    e = &m->ring[pos];
    e->hash = h;
    e->time_ms = now;
    e->key_len = (uint32_t)len;
    e->state = state;
    if (m->key_bytes)
        memcpy(m->slab + pos * m->key_bytes, key, len);
    m->count++;
    i = (size_t)(uint32_t)h & m->mask;
    while (m->table[i] != EMPTY)
        i = (i + 1) & m->mask;
    m->table[i] = SLOT(h, pos);
}

static int key_fits(const mem_store *m, size_t len, ksafe_error *err)
{
    if (m->key_bytes && len > m->key_bytes)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "dedup key is %zu bytes; this memory store "
                                "keeps keys of at most key_bytes=%zu",
                                len, m->key_bytes);
    return 0;
}

static int64_t now_and_expire(mem_store *m)
{
    int64_t now = m->clock(m->clock_payload);

    if (m->ttl_ms > 0)
        m->expired += pop_older(m, now, m->ttl_ms);
    return now;
}

/*
 * The table and the ring are touched at random: with 4 kB pages nearly
 * every lookup in a large window also misses the TLB. Large arrays are
 * mapped (zero pages, resident only once written, so an empty store costs
 * no memory), aligned to 2 MB and marked so the kernel can back them with
 * huge pages where it lets a process ask (transparent huge pages in
 * "madvise" mode, as well as "always"). Small ones come from calloc.
 */
#define HUGE_PAGE ((size_t)2 << 20)

static int big_mapped(size_t bytes)
{
    return bytes >= 4 * HUGE_PAGE;
}

static size_t big_length(size_t bytes)
{
    return (bytes + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1);
}

static void *big_alloc(size_t bytes)
{
    size_t len, lead;
    unsigned char *p;

    if (!big_mapped(bytes))
        return calloc(1, bytes);
    len = big_length(bytes);
    /* Map one huge page more and trim both ends to an aligned run. */
    p = mmap(NULL, len + HUGE_PAGE, PROT_READ | PROT_WRITE,
             MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    lead = (HUGE_PAGE - ((uintptr_t)p & (HUGE_PAGE - 1))) & (HUGE_PAGE - 1);
    if (lead)
        munmap(p, lead);
    if (HUGE_PAGE - lead)
        munmap(p + lead + len, HUGE_PAGE - lead);
    p += lead;
#ifdef MADV_HUGEPAGE
    madvise(p, len, MADV_HUGEPAGE); /* advice: refusal changes nothing */
#endif
    return p;
}

static void big_free(void *p, size_t bytes)
{
    if (!p)
        return;
    if (big_mapped(bytes))
        munmap(p, big_length(bytes));
    else
        free(p);
}

static int mem_begin(void *self, ksafe_error *err)
{
    mem_store *m = self;

    KSAFE__UNUSED(err);
    m->in_txn = 1;
    m->txn_seq = m->head_seq + m->count;
    return 0;
}

static int mem_claim(void *self, const void *key, size_t len, int *duplicate,
                     ksafe_error *err)
{
    mem_store *m = self;
    uint64_t h;
    int64_t now;
    int rc;

    if ((rc = key_fits(m, len, err)))
        return rc;
    now = now_and_expire(m);
    h = ksafe__dedup_hash(key, len, m->seed);
    if (find(m, h, key, len) >= 0) {
        *duplicate = 1;
        return 0;
    }
    *duplicate = 0;
    insert(m, h, key, len, E_CLAIMED, now);
    return 0;
}

static int mem_mark(void *self, const void *key, size_t len, ksafe_error *err)
{
    mem_store *m = self;
    uint64_t h;
    int64_t now;
    long slot;
    int rc;

    if ((rc = key_fits(m, len, err)))
        return rc;
    now = now_and_expire(m);
    h = ksafe__dedup_hash(key, len, m->seed);
    slot = find(m, h, key, len);
    if (slot >= 0)
        m->ring[SLOT_POS(m->table[slot])].state = E_DONE;
    else
        insert(m, h, key, len, E_DONE, now);
    return 0;
}

static int mem_release(void *self, const void *key, size_t len,
                       ksafe_error *err)
{
    mem_store *m = self;
    uint64_t h;
    long slot;
    int rc;

    if ((rc = key_fits(m, len, err)))
        return rc;
    h = ksafe__dedup_hash(key, len, m->seed);
    slot = find(m, h, key, len);
    if (slot >= 0 && seq_of(m, SLOT_POS(m->table[slot])) >= m->txn_seq)
        remove_entry(m, SLOT_POS(m->table[slot]));
    /* Usually the released claim is the newest entry: give its slot back
     * at once. An older one stays an E_FREE hole until it reaches the head,
     * so capacity counts it until then. */
    while (m->count > 0 &&
           m->ring[wrap(m, m->head + m->count - 1)].state == E_FREE &&
           m->head_seq + m->count - 1 >= m->txn_seq)
        m->count--;
    return 0;
}

static mem_offset *offset_entry(mem_store *m, const char *group,
                                const char *topic, int32_t partition,
                                int add)
{
    mem_offset *o;
    size_t i;

    for (i = 0; i < m->n_offsets; i++) {
        o = &m->offsets[i];
        if (o->partition == partition && !strcmp(o->topic, topic) &&
            !strcmp(o->group, group))
            return o;
    }
    if (!add)
        return NULL;
    if (m->n_offsets == m->cap_offsets) {
        size_t cap = m->cap_offsets ? m->cap_offsets * 2 : 8;
        mem_offset *n = realloc(m->offsets, cap * sizeof(*n));
        if (!n)
            return NULL;
        m->offsets = n;
        m->cap_offsets = cap;
    }
    o = &m->offsets[m->n_offsets];
    o->group = ksafe__strdup(group);
    o->topic = ksafe__strdup(topic);
    if (!o->group || !o->topic) {
        free(o->group);
        free(o->topic);
        return NULL;
    }
    o->partition = partition;
    o->committed = -1;
    o->pending = -1;
    m->n_offsets++;
    return o;
}

static int mem_save_offset(void *self, const char *group, const char *topic,
                           int32_t partition, int64_t next_offset,
                           ksafe_error *err)
{
    mem_offset *o = offset_entry(self, group, topic, partition, 1);

    if (!o)
        return ksafe__error_set(err, KSAFE_ENOMEM, 0, 0, "out of memory");
    if (next_offset > o->pending)
        o->pending = next_offset;
    return 0;
}

static int mem_load_offset(void *self, const char *group, const char *topic,
                           int32_t partition, int64_t *next_offset,
                           ksafe_error *err)
{
    mem_offset *o = offset_entry(self, group, topic, partition, 0);

    KSAFE__UNUSED(err);
    *next_offset = o ? o->committed : -1;
    return 0;
}

static int mem_commit(void *self, ksafe_error *err)
{
    mem_store *m = self;
    size_t i;

    KSAFE__UNUSED(err);
    for (i = 0; i < m->n_offsets; i++) {
        mem_offset *o = &m->offsets[i];
        if (o->pending > o->committed)
            o->committed = o->pending;
        o->pending = -1;
    }
    m->in_txn = 0;
    while (m->count > m->cap)
        m->evicted += (uint64_t)pop_head(m);
    return 0;
}

static int mem_rollback(void *self, ksafe_error *err)
{
    mem_store *m = self;
    size_t i;

    KSAFE__UNUSED(err);
    while (m->count > 0 && m->head_seq + m->count - 1 >= m->txn_seq) {
        size_t tail = wrap(m, m->head + m->count - 1);
        if (m->ring[tail].state != E_FREE)
            remove_entry(m, tail);
        m->count--;
    }
    for (i = 0; i < m->n_offsets; i++)
        m->offsets[i].pending = -1;
    m->in_txn = 0;
    return 0;
}

static int mem_expire(void *self, int64_t max_age_ms, uint64_t *removed,
                      ksafe_error *err)
{
    mem_store *m = self;
    uint64_t n;

    KSAFE__UNUSED(err);
    n = pop_older(m, m->clock(m->clock_payload), max_age_ms);
    *removed += n;
    return 0;
}

static void mem_stats(void *self, ksafe_dedup_stats *st)
{
    mem_store *m = self;

    st->evicted += m->evicted;
    st->expired += m->expired;
}

static void mem_close(void *self)
{
    mem_store *m = self;
    size_t i;

    if (!m)
        return;
    for (i = 0; i < m->n_offsets; i++) {
        free(m->offsets[i].group);
        free(m->offsets[i].topic);
    }
    free(m->offsets);
    big_free(m->ring, m->size * sizeof(*m->ring));
    free(m->slab);
    big_free(m->table, (m->mask + 1) * sizeof(*m->table));
    free(m);
}

static const ksafe_dedup_store_ops mem_ops = {
    KSAFE_DEDUP_STORE_OPS_VERSION, "memory", mem_begin, mem_claim, mem_mark,
    mem_release, mem_save_offset, mem_load_offset, mem_commit, mem_rollback,
    mem_expire, mem_stats, mem_close,
};

int ksafe_dedup_memory_options_init(ksafe_dedup_memory_options *opts,
                                    unsigned int version)
{
    ksafe_dedup_memory_options d = KSAFE_DEDUP_MEMORY_OPTIONS_INIT;

    if (!opts)
        return KSAFE_EINVAL;
    if (version != KSAFE_DEDUP_MEMORY_OPTIONS_VERSION)
        return KSAFE_EVERSION;
    *opts = d;
    return 0;
}

int ksafe_dedup_memory_new(ksafe_dedup_store **out,
                           const ksafe_dedup_memory_options *opts,
                           ksafe_error *err)
{
    mem_store *m;
    size_t tsize = 2;

    if (!out)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0, "out is NULL");
    *out = NULL;
    if (!opts)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "memory store: options are required "
                                "(capacity has no default)");
    if (opts->version != KSAFE_DEDUP_MEMORY_OPTIONS_VERSION)
        return ksafe__error_set(err, KSAFE_EVERSION, 0, 0,
                                "memory store options version %u unknown",
                                opts->version);
    if (opts->capacity < 1 || opts->capacity > MAX_CAPACITY)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "memory store: capacity %zu out of range "
                                "1..%zu",
                                opts->capacity, MAX_CAPACITY);
    if (opts->ttl_ms < 0)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "memory store: ttl_ms %" PRId64
                                " is negative (0 means no age limit)",
                                opts->ttl_ms);
    if (opts->key_bytes > 65536)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "memory store: key_bytes %zu above 65536",
                                opts->key_bytes);
    m = calloc(1, sizeof(*m));
    if (!m)
        return ksafe__error_set(err, KSAFE_ENOMEM, 0, 0, "out of memory");
    m->cap = opts->capacity;
    m->size = m->cap + (m->cap < TXN_ROOM ? m->cap : TXN_ROOM);
    while (tsize < m->size * 2)
        tsize *= 2;
    m->key_bytes = opts->key_bytes;
    m->ttl_ms = opts->ttl_ms;
    m->clock = opts->clock ? opts->clock : mono_clock;
    m->clock_payload = opts->clock_payload;
    m->seed = ksafe__dedup_seed();
    m->mask = tsize - 1;
    m->ring = big_alloc(m->size * sizeof(*m->ring));
    m->table = big_alloc(tsize * sizeof(*m->table));
    if (m->key_bytes)
        m->slab = malloc(m->size * m->key_bytes);
    if (!m->ring || !m->table || (m->key_bytes && !m->slab)) {
        mem_close(m);
        return ksafe__error_set(err, KSAFE_ENOMEM, 0, 0,
                                "memory store: out of memory for %zu keys",
                                opts->capacity);
    }
    return ksafe_dedup_store_new(out, &mem_ops, m, err);
}
