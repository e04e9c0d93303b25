/*
 * lib/loop_parts.c - the loop's partition table. A partition gets an entry
 * when it needs state: paused, backing off, holding pending records, or
 * counted for backpressure. Its pending records wait in a ring in offset
 * order.
 */
#include <stdlib.h>
#include <string.h>

#include "loop_internal.h"

lpart *part_find(loop *L, const rd_kafka_message_t *m)
{
    size_t i;

    /* Records of one partition come in runs: try the last hit first. */
    if (L->last < L->n_parts && L->parts[L->last].rkt == m->rkt &&
        L->parts[L->last].partition == m->partition)
        return &L->parts[L->last];
    for (i = 0; i < L->n_parts; i++)
        if (L->parts[i].rkt == m->rkt &&
            L->parts[i].partition == m->partition) {
            L->last = i;
            return &L->parts[i];
        }
    return NULL;
}

lpart *part_get(loop *L, const rd_kafka_message_t *m)
{
    lpart *p = part_find(L, m);

    if (p)
        return p;
    if (L->n_parts == L->cap_parts) {
        size_t cap = L->cap_parts ? L->cap_parts * 2 : 8;
        lpart *grown = realloc(L->parts, cap * sizeof(*grown));
        if (!grown)
            return NULL;
        L->parts = grown;
        L->cap_parts = cap;
    }
    p = &L->parts[L->n_parts];
    memset(p, 0, sizeof(*p));
    if (!(p->topic = ksafe__strdup(rd_kafka_topic_name(m->rkt))))
        return NULL;
    p->rkt = m->rkt;
    p->partition = m->partition;
    L->n_parts++;
    return p;
}

void ksafe__loop_pause_partition(loop *L, const char *topic,
                                 int32_t partition, int pause)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);

    rd_kafka_topic_partition_list_add(l, topic, partition);
    if (pause)
        rd_kafka_pause_partitions(L->rk, l);
    else
        rd_kafka_resume_partitions(L->rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    if (pause)
        L->st->pauses++;
    else
        L->st->resumes++;
}

void set_paused(loop *L, lpart *p, int pause)
{
    if (p->paused == pause)
        return;
    ksafe__loop_pause_partition(L, p->topic, p->partition, pause);
    p->paused = pause;
    if (pause)
        L->paused++;
    else
        L->paused--;
}

/* Keeps L->blocked in step with each partition's state. */
void update_blocked(loop *L, lpart *p)
{
    int now = p->len > 0 || p->retry_at > 0;

    if (now != p->blocked) {
        p->blocked = now;
        if (now)
            L->blocked++;
        else
            L->blocked--;
    }
}

static int q_reserve(lpart *p)
{
    rd_kafka_message_t **grown;
    size_t cap, i;

    if (p->len < p->cap)
        return 0;
    cap = p->cap ? p->cap * 2 : 16;
    if (!(grown = malloc(cap * sizeof(*grown))))
        return -1;
    for (i = 0; i < p->len; i++)
        grown[i] = p->q[(p->head + i) % p->cap];
    free(p->q);
    p->q = grown;
    p->cap = cap;
    p->head = 0;
    return 0;
}

int q_push_back(lpart *p, rd_kafka_message_t *m)
{
    if (q_reserve(p))
        return -1;
    p->q[(p->head + p->len) % p->cap] = m;
    p->len++;
    return 0;
}

int q_push_front(lpart *p, rd_kafka_message_t *m)
{
    if (q_reserve(p))
        return -1;
    p->head = (p->head + p->cap - 1) % p->cap;
    p->q[p->head] = m;
    p->len++;
    return 0;
}

rd_kafka_message_t *q_pop_front(lpart *p)
{
    rd_kafka_message_t *m = p->q[p->head];

    p->head = (p->head + 1) % p->cap;
    p->len--;
    return m;
}

int settle_later(loop *L, lpart *p, int64_t offset)
{
    if (p->n_settled == p->cap_settled) {
        size_t cap = p->cap_settled ? p->cap_settled * 2 : 4;
        int64_t *grown = realloc(p->settled, cap * sizeof(*grown));
        if (!grown)
            return -1;
        p->settled = grown;
        p->cap_settled = cap;
    }
    p->settled[p->n_settled++] = offset;
    L->settled++;
    return 0;
}

static size_t settled_index(lpart *p, int64_t offset)
{
    size_t i;

    for (i = 0; i < p->n_settled; i++)
        if (p->settled[i] == offset)
            return i;
    return (size_t)-1;
}

int is_settled(loop *L, const rd_kafka_message_t *m)
{
    lpart *p;

    if (!L->settled || !(p = part_find(L, m)))
        return 0;
    return settled_index(p, m->offset) != (size_t)-1;
}

void forget_settled(loop *L, const rd_kafka_message_t *m)
{
    lpart *p;
    size_t i;

    if (!L->settled || !(p = part_find(L, m)) ||
        (i = settled_index(p, m->offset)) == (size_t)-1)
        return;
    p->settled[i] = p->settled[--p->n_settled];
    L->settled--;
}

/*
 * At-most-once marks a batch before its sync commit; when that commit is
 * refused the batch waits, marked but not handled. Dropped now (stop,
 * revoke, loss), its position may still be committed by a later commit:
 * at-most-once loses such a record, but never silently. Any other record
 * dropped here was not marked, so it comes again.
 */
void drop_unhandled(loop *L, rd_kafka_message_t *m)
{
    if (L->o->semantics == KSAFE_AT_MOST_ONCE) {
        const char *topic = rd_kafka_topic_name(m->rkt);
        ksafe__position *pos =
            ksafe__consumer_find(L->c, topic, m->partition);

        if (pos && pos->marked > m->offset) {
            L->st->failed++;
            ksafe__log(&L->c->cl, KSAFE_LOG_ERR, "AT-MOST-ONCE",
                       "%s [%d] offset %lld dropped unhandled: its position "
                       "was marked before a refused commit and may be "
                       "committed later (at-most-once loses the record)",
                       topic, (int)m->partition, (long long)m->offset);
        }
    }
    rd_kafka_message_destroy(m);
}

void part_remove(loop *L, lpart *p)
{
    while (p->len)
        drop_unhandled(L, q_pop_front(p));
    if (p->paused) {
        p->paused = 0;
        L->paused--;
    }
    p->retry_at = 0;
    update_blocked(L, p);
    L->settled -= p->n_settled;
    free(p->settled);
    free(p->q);
    free(p->topic);
    *p = L->parts[--L->n_parts];
}
