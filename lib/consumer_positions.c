/*
 * lib/consumer_positions.c - the processed positions of the assigned
 * partitions: the table and its index, tracking and forgetting partitions
 * on rebalances, and marking (ksafe_consumer_done).
 *
 * Positions live in our table, not in librdkafka's offset store: marking a
 * record is a pointer compare and a store; consumer_offsets.c commits them.
 */
#include <stdlib.h>
#include <string.h>

#include "consumer_internal.h"

void *(*ksafe__consumer_realloc)(void *ptr, size_t size) = realloc;

static char *copy_name(const char *name)
{
    size_t n = strlen(name) + 1;
    char *s = ksafe__consumer_realloc(NULL, n);

    if (s)
        memcpy(s, name, n);
    return s;
}

static size_t slot_of(const ksafe_consumer *c, const void *rkt,
                      int32_t partition)
{
    uint64_t h = (uint64_t)(uintptr_t)rkt >> 4;

    h ^= (uint64_t)(uint32_t)partition * 0x9E3779B97F4A7C15ull;
    h ^= h >> 29;
    return (size_t)h & c->slot_mask;
}

/* Rebuilds the index after entries were added or moved (rebalances only). */
static int reindex(ksafe_consumer *c)
{
    size_t want = 16, i;
    uint32_t *slots;

    c->last = NULL; /* entries may have moved */
    while (want < c->n_pos * 2)
        want *= 2;
    if (!(slots = ksafe__consumer_realloc(NULL, want * sizeof(*slots))))
        return KSAFE_ENOMEM;
    memset(slots, 0, want * sizeof(*slots));
    free(c->slots);
    c->slots = slots;
    c->slot_mask = want - 1;
    for (i = 0; i < c->n_pos; i++) {
        size_t s = slot_of(c, c->pos[i].rkt, c->pos[i].partition);
        while (c->slots[s])
            s = (s + 1) & c->slot_mask;
        c->slots[s] = (uint32_t)(i + 1);
    }
    return 0;
}

/* Out of memory for a new index: one that finds nothing still works (every
 * lookup takes the slow path by name); a stale one could point past the
 * table. */
static void index_clear(ksafe_consumer *c)
{
    if (c->slots)
        memset(c->slots, 0, (c->slot_mask + 1) * sizeof(*c->slots));
}

ksafe__position *ksafe__consumer_find(ksafe_consumer *c, const char *topic,
                                      int32_t partition)
{
    size_t i;

    for (i = 0; i < c->n_pos; i++)
        if (c->pos[i].partition == partition &&
            strcmp(c->pos[i].topic, topic) == 0)
            return &c->pos[i];
    return NULL;
}

int ksafe__consumer_track(ksafe_consumer *c,
                          const rd_kafka_topic_partition_list_t *parts)
{
    int i, rc = 0;

    /* The array may move below: the last-hit cache must not point into
     * the old one, whatever fails. */
    c->last = NULL;
    for (i = 0; i < parts->cnt && !rc; i++) {
        const rd_kafka_topic_partition_t *tp = &parts->elems[i];
        ksafe__position *p;

        if (ksafe__consumer_find(c, tp->topic, tp->partition))
            continue;
        if (c->n_pos == c->cap_pos) {
            size_t cap = c->cap_pos ? c->cap_pos * 2 : 16;
            ksafe__position *grown =
                ksafe__consumer_realloc(c->pos, cap * sizeof(*grown));
            if (!grown) {
                rc = KSAFE_ENOMEM;
                break;
            }
            c->pos = grown;
            c->cap_pos = cap;
        }
        p = &c->pos[c->n_pos];
        memset(p, 0, sizeof(*p));
        if (!(p->topic = copy_name(tp->topic))) {
            rc = KSAFE_ENOMEM;
            break;
        }
        /* The same handle the toppar (and so every record) points to. */
        p->rkt = rd_kafka_topic_new(c->cl.rk, tp->topic, NULL);
        p->partition = tp->partition;
        p->marked = p->committed = p->in_flight = -1;
        p->start = KSAFE__NO_START;
        p->first = -1;
        p->marked_epoch = -1;
        c->n_pos++;
    }
    /* Entries added before a failure stay (their records can be marked);
     * the index covers them, or nothing. */
    if (reindex(c)) {
        index_clear(c);
        rc = KSAFE_ENOMEM;
    }
    return rc;
}

static void drop(ksafe_consumer *c, size_t i)
{
    free(c->pos[i].topic);
    if (c->pos[i].rkt)
        rd_kafka_topic_destroy(c->pos[i].rkt);
    c->pos[i] = c->pos[--c->n_pos];
}

void ksafe__consumer_forget(ksafe_consumer *c,
                            const rd_kafka_topic_partition_list_t *parts)
{
    size_t i = 0;

    c->last = NULL; /* may point at an entry dropped or moved below */
    while (i < c->n_pos) {
        if (rd_kafka_topic_partition_list_find(parts, c->pos[i].topic,
                                               c->pos[i].partition))
            drop(c, i);
        else
            i++;
    }
    if (reindex(c))
        index_clear(c);
}

void ksafe__consumer_forget_all(ksafe_consumer *c)
{
    while (c->n_pos)
        drop(c, c->n_pos - 1);
    free(c->pos);
    free(c->slots);
    c->pos = NULL;
    c->slots = NULL;
    c->cap_pos = 0;
    c->last = NULL;
}

/* The hot path's miss: the index, then names (a handle we do not hold). */
static ksafe__position *lookup(ksafe_consumer *c, const rd_kafka_message_t *m)
{
    size_t s;

    if (c->slots) {
        s = slot_of(c, m->rkt, m->partition);
        while (c->slots[s]) {
            ksafe__position *p = &c->pos[c->slots[s] - 1];
            if (p->rkt == m->rkt && p->partition == m->partition)
                return p;
            s = (s + 1) & c->slot_mask;
        }
    }
    if (!m->rkt)
        return NULL;
    return ksafe__consumer_find(c, rd_kafka_topic_name(m->rkt), m->partition);
}

ksafe__position *ksafe__consumer_entry(ksafe_consumer *c,
                                       const rd_kafka_message_t *m)
{
    ksafe__position *p = c->last;

    if (!p || p->rkt != m->rkt || p->partition != m->partition) {
        if (!(p = lookup(c, m)))
            return NULL;
        c->last = p;
    }
    return p;
}

/*
 * Whether `m` may belong to an earlier assignment of its partition. A
 * record carries no assignment, so its offset has to tell: this
 * assignment's delivery starts at `first` and goes up, so a record below
 * it was polled before (marking it would move the position back over what
 * the partition's other owner committed meanwhile). At or above `first` an
 * old copy is the same record again, which it processed then: by done()'s
 * contract every earlier record of it was processed as well, so marking
 * it loses nothing. Nothing polled yet through ksafe_consumer_poll()
 * (records polled another way): librdkafka's position says whether this
 * assignment delivered anything; if not, the record is old.
 */
static int from_earlier_assignment(ksafe_consumer *c, ksafe__position *p,
                                   const rd_kafka_message_t *m)
{
    rd_kafka_topic_partition_list_t *l;
    int64_t pos;

    if (p->first >= 0)
        return m->offset < p->first;
    l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, p->topic, p->partition);
    pos = rd_kafka_position(c->cl.rk, l) ? RD_KAFKA_OFFSET_INVALID
                                         : l->elems[0].offset;
    rd_kafka_topic_partition_list_destroy(l);
    if (pos < 0)
        return 1;
    p->first = 0; /* delivered meanwhile, where from is unknown */
    return 0;
}

int ksafe_consumer_done(ksafe_consumer *c, const ksafe_message *msg,
                        ksafe_error *err)
{
    const rd_kafka_message_t *m = (const rd_kafka_message_t *)msg;
    ksafe__position *p;

    if (!c || !m)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "done needs a consumer and a consumed record");
    if (!(p = ksafe__consumer_entry(c, m)))
        return ksafe__error_set(
            err, KSAFE_ESTATE, 0, 0,
            "%s [%d] offset %lld: partition no longer assigned to this "
            "consumer (revoked or lost); its new owner will get the "
            "record again",
            m->rkt ? rd_kafka_topic_name(m->rkt) : "?", (int)m->partition,
            (long long)m->offset);
    if (m->offset >= p->marked) { /* positions never move back */
        if (from_earlier_assignment(c, p, m))
            return ksafe__error_set(
                err, KSAFE_ESTATE, 0, 0,
                "%s [%d] offset %lld: record polled before its partition "
                "was revoked and assigned again; this assignment delivers "
                "it again if it is still due",
                p->topic, (int)p->partition, (long long)m->offset);
        p->marked = m->offset + 1;
        p->marked_epoch = ksafe__message_leader_epoch(m);
    }
    c->marks++;
    return 0;
}

