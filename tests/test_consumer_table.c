/*
 * tests/test_consumer_table.c - the consumer's position table when memory
 * runs out: tracking a new assignment or forgetting a revoked one may fail
 * half way, and afterwards the table must still be consistent (no pointer
 * into a freed array, no mark on a dropped entry). Links the library's
 * objects to reach its internal allocator hook and table functions.
 */
#include <malloc.h>
#include <stdlib.h>

#include "testutil.h"
#include "../lib/consumer_internal.h"

/* Fails the call numbered `fail_at` (1-based, 0: never); every other call
 * moves the block, as a realloc that cannot grow in place does. */
static int calls, fail_at;

static void *test_realloc(void *ptr, size_t size)
{
    size_t n;
    void *p;

    if (++calls == fail_at)
        return NULL;
    if (!ptr)
        return malloc(size);
    if (!(p = malloc(size)))
        return NULL;
    n = malloc_usable_size(ptr);
    memcpy(p, ptr, n < size ? n : size);
    free(ptr);
    return p;
}

static ksafe_consumer *offline(void)
{
    ksafe_consumer_options o = KSAFE_CONSUMER_OPTIONS_INIT;
    ksafe_consumer *c = NULL;
    ksafe_error err;

    o.bootstrap_servers = "127.0.0.1:1";
    o.group_id = "unit";
    o.log_cb = test_quiet_log;
    ck_assert_ok(ksafe_consumer_new(&c, &o, &err), err);
    return c;
}

/* The assignment: partitions from..to-1 of "t", in that order. */
static rd_kafka_topic_partition_list_t *parts(int from, int to)
{
    rd_kafka_topic_partition_list_t *l =
        rd_kafka_topic_partition_list_new(to - from);
    int i;

    for (i = from; i < to; i++)
        rd_kafka_topic_partition_list_add(l, "t", i);
    return l;
}

/* A consumed record of "t" [partition] at `offset`. */
static rd_kafka_message_t record(ksafe_consumer *c, rd_kafka_topic_t *rkt,
                                 int32_t partition, int64_t offset)
{
    rd_kafka_message_t m;

    (void)c;
    memset(&m, 0, sizeof(m));
    m.rkt = rkt;
    m.partition = partition;
    m.offset = offset;
    return m;
}

static const ksafe__position *entry(const ksafe_consumer *c, int32_t p)
{
    size_t i;

    for (i = 0; i < c->n_pos; i++)
        if (c->pos[i].partition == p)
            return &c->pos[i];
    return NULL;
}

/* As if a poll had delivered records of every tracked partition since its
 * assignment began at offset 0 (done() takes only such records). */
static void delivered(ksafe_consumer *c)
{
    size_t i;

    for (i = 0; i < c->n_pos; i++)
        c->pos[i].first = 0;
}

/* What done() relies on, whatever failed. */
static void consistent(const ksafe_consumer *c)
{
    size_t i;

    ck_assert_msg(!c->last || (c->last >= c->pos && c->last < c->pos + c->n_pos),
                  "last hit points outside the table");
    for (i = 0; i < c->n_pos; i++)
        ck_assert_ptr_nonnull(c->pos[i].topic);
}

/*
 * A record of partition 2 is marked (the last-hit cache points at its
 * entry); a 40-partition assignment grows the table (moving it) and runs
 * out of memory at call k. Marking partition 2 again must mark the entry
 * in the table, not a freed copy.
 */
START_TEST(track_out_of_memory_keeps_the_table_usable)
{
    ksafe_consumer *c = offline();
    rd_kafka_topic_t *rkt =
        rd_kafka_topic_new(ksafe_consumer_rdkafka(c), "t", NULL);
    rd_kafka_topic_partition_list_t *first = parts(0, 3), *more = parts(3, 40);
    ksafe_error err;
    int k, rc, failed = 0;

    ksafe__consumer_realloc = test_realloc;
    /* Table growth 16 -> 32 -> 64, 37 topic copies, the index: each
     * allocation of the 40-partition assignment fails once. */
    for (k = 1; k <= 42; k++) {
        rd_kafka_message_t m = record(c, rkt, 2, 7);

        ksafe__consumer_forget_all(c);
        calls = 0;
        fail_at = 0;
        ck_assert_int_eq(ksafe__consumer_track(c, first), 0);
        delivered(c);
        ck_assert_ok(ksafe_consumer_done(c, (ksafe_message *)&m, &err), err);
        calls = 0;
        fail_at = k;
        rc = ksafe__consumer_track(c, more);
        fail_at = 0;
        failed += rc != 0;
        consistent(c);
        delivered(c);
        m.offset = 8;
        ck_assert_ok(ksafe_consumer_done(c, (ksafe_message *)&m, &err), err);
        ck_assert_msg(entry(c, 2)->marked == 9,
                      "allocation %d failed: partition 2 marked at %lld", k,
                      (long long)entry(c, 2)->marked);
    }
    ck_assert_int_eq(failed, 40); /* the last two runs had nothing to fail */
    ksafe__consumer_forget_all(c);
    rd_kafka_topic_partition_list_destroy(first);
    rd_kafka_topic_partition_list_destroy(more);
    rd_kafka_topic_destroy(rkt);
    ksafe_consumer_free(c);
    ksafe__consumer_realloc = realloc;
}
END_TEST

/*
 * Partition 5 is the last entry and its record was marked; it is revoked
 * and the index cannot be rebuilt. Its record must then be refused (not
 * marked on the dropped entry), the others still marked.
 */
START_TEST(forget_out_of_memory_drops_the_entry)
{
    ksafe_consumer *c = offline();
    rd_kafka_topic_t *rkt =
        rd_kafka_topic_new(ksafe_consumer_rdkafka(c), "t", NULL);
    rd_kafka_topic_partition_list_t *all = parts(0, 6), *gone = parts(5, 6);
    rd_kafka_message_t m5 = record(c, rkt, 5, 3), m1 = record(c, rkt, 1, 3);
    ksafe_error err;

    ksafe__consumer_realloc = test_realloc;
    calls = 0;
    fail_at = 0;
    ck_assert_int_eq(ksafe__consumer_track(c, all), 0);
    delivered(c);
    ck_assert_ok(ksafe_consumer_done(c, (ksafe_message *)&m5, &err), err);
    calls = 0;
    fail_at = 1; /* the index rebuild */
    ksafe__consumer_forget(c, gone);
    fail_at = 0;
    consistent(c);
    ck_assert_ptr_null(entry(c, 5));
    m5.offset = 4;
    ck_assert_int_eq(ksafe_consumer_done(c, (ksafe_message *)&m5, &err),
                     KSAFE_ESTATE);
    ck_assert_ok(ksafe_consumer_done(c, (ksafe_message *)&m1, &err), err);
    ck_assert_int_eq(entry(c, 1)->marked, 4);
    /* No cluster: close must find nothing to commit. */
    ksafe__consumer_forget_all(c);
    rd_kafka_topic_partition_list_destroy(all);
    rd_kafka_topic_partition_list_destroy(gone);
    rd_kafka_topic_destroy(rkt);
    ksafe_consumer_free(c);
    ksafe__consumer_realloc = realloc;
}
END_TEST

static Suite *consumer_table_suite(void)
{
    Suite *s = suite_create("consumer_table");
    TCase *t = tcase_create("out_of_memory");

    tcase_add_test(t, track_out_of_memory_keeps_the_table_usable);
    tcase_add_test(t, forget_out_of_memory_drops_the_entry);
    suite_add_tcase(s, t);
    return s;
}

KSAFE_TEST_MAIN(consumer_table_suite)
