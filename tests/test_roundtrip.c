/*
 * tests/test_roundtrip.c - produce -> consume with the safe presets, and the
 * preset consumer's manual offsets, on the embedded cluster (or the one named
 * by KSAFE_TEST_BOOTSTRAP).
 */
#include "testutil.h"

#define N_RECORDS 200
#define PARTITIONS 4

/* Polls until `want` records arrived (or 30 s), recording each value seen.
 * Marks each record processed when `mark` is set. */
static int consume(ksafe_consumer *c, int want, int *seen, int mark)
{
    int got = 0;
    int64_t deadline = (int64_t)time(NULL) + 30;

    while (got < want && time(NULL) < deadline) {
        ksafe_message *m;
        ksafe_error err;
        const char *v;
        size_t len;
        int i;

        ck_assert_ok(ksafe_consumer_poll(c, 200, &m, &err), err);
        if (!m)
            continue;
        v = ksafe_message_value(m, &len);
        ck_assert_int_gt(len, 6);
        ck_assert_int_eq(sscanf(v, "value-%d", &i), 1);
        ck_assert_int_ge(i, 0);
        seen[i]++;
        got++;
        if (mark)
            ck_assert_ok(ksafe_consumer_done(c, m, &err), err);
        ksafe_message_free(m);
    }
    return got;
}

/* The committed offsets of `group` summed over the topic's partitions;
 * *without counts partitions with none. */
static int64_t committed_total(const char *topic, const char *group,
                               int *without)
{
    int64_t off[PARTITIONS], total = 0;
    int i;

    test_committed(tc, topic, group, PARTITIONS, off);
    *without = 0;
    for (i = 0; i < PARTITIONS; i++) {
        if (off[i] < 0)
            (*without)++;
        else
            total += off[i];
    }
    return total;
}

START_TEST(records_round_trip_with_safe_presets)
{
    char topic[64], group[64];
    int seen[N_RECORDS] = {0};
    ksafe_consumer *c;
    ksafe_error err;
    int i, without;

    ksafe_test_unique_name(topic, sizeof(topic), "rt");
    ksafe_test_unique_name(group, sizeof(group), "rt-g");
    ck_assert_ok(ksafe_test_cluster_create_topic(tc, topic, PARTITIONS, &err),
                 err);
    test_produce(tc, topic, 0, N_RECORDS);

    c = test_subscribed(tc, topic, group);
    ck_assert_int_eq(consume(c, N_RECORDS, seen, 1), N_RECORDS);
    for (i = 0; i < N_RECORDS; i++)
        ck_assert_msg(seen[i] == 1, "value-%d seen %d times", i, seen[i]);
    ck_assert_ok(ksafe_consumer_commit(c, KSAFE_COMMIT_SYNC, &err), err);
    ck_assert_ok(ksafe_consumer_close(c, &err), err);
    ksafe_consumer_free(c);

    /* Committed = one past the last processed record of every partition:
     * their sum is the record count. */
    ck_assert_int_eq(committed_total(topic, group, &without), N_RECORDS);
    ck_assert_int_eq(without, 0);
}
END_TEST

/* Records are ordered per key: one key, one partition, ascending values. */
START_TEST(records_keep_order_per_key)
{
    char topic[64], group[64];
    int last[10], partition_of[10];
    ksafe_consumer *c;
    ksafe_error err;
    int got = 0, i;
    time_t deadline = time(NULL) + 30;

    for (i = 0; i < 10; i++)
        last[i] = partition_of[i] = -1;
    ksafe_test_unique_name(topic, sizeof(topic), "order");
    ksafe_test_unique_name(group, sizeof(group), "order-g");
    ck_assert_ok(ksafe_test_cluster_create_topic(tc, topic, PARTITIONS, &err),
                 err);
    test_produce(tc, topic, 0, N_RECORDS);
    c = test_subscribed(tc, topic, group);
    while (got < N_RECORDS && time(NULL) < deadline) {
        ksafe_message *m;
        const char *v;
        size_t len;
        int value, key;

        ck_assert_ok(ksafe_consumer_poll(c, 200, &m, &err), err);
        if (!m)
            continue;
        v = ksafe_message_value(m, &len);
        ck_assert_int_eq(sscanf(v, "value-%d", &value), 1);
        key = value % 10;
        ck_assert_int_gt(value, last[key]);
        if (partition_of[key] >= 0)
            ck_assert_int_eq(partition_of[key], ksafe_message_partition(m));
        partition_of[key] = ksafe_message_partition(m);
        last[key] = value;
        got++;
        ksafe_message_free(m);
    }
    ck_assert_int_eq(got, N_RECORDS);
    ksafe_consumer_free(c);
}
END_TEST

/*
 * The preset has auto commit off: a consumer that reads everything but marks
 * nothing leaves no committed offset, and the next member of the group gets
 * every record again.
 */
START_TEST(closing_without_marking_commits_nothing)
{
    char topic[64], group[64];
    int seen[N_RECORDS] = {0};
    ksafe_consumer *c;
    ksafe_error err;
    int without;

    ksafe_test_unique_name(topic, sizeof(topic), "noauto");
    ksafe_test_unique_name(group, sizeof(group), "noauto-g");
    ck_assert_ok(ksafe_test_cluster_create_topic(tc, topic, PARTITIONS, &err),
                 err);
    test_produce(tc, topic, 0, N_RECORDS);

    c = test_subscribed(tc, topic, group);
    ck_assert_int_eq(consume(c, N_RECORDS, seen, 0), N_RECORDS);
    ck_assert_ok(ksafe_consumer_close(c, &err), err);
    ksafe_consumer_free(c);
    ck_assert_int_eq(committed_total(topic, group, &without), 0);
    ck_assert_int_eq(without, PARTITIONS);

    memset(seen, 0, sizeof(seen));
    c = test_subscribed(tc, topic, group);
    ck_assert_int_eq(consume(c, N_RECORDS, seen, 0), N_RECORDS);
    ksafe_consumer_free(c);
}
END_TEST

/* Commits carry what was marked, never what was merely polled. */
START_TEST(commit_carries_only_marked_records)
{
    char topic[64], group[64];
    ksafe_consumer *c;
    ksafe_error err;
    int got = 0, marked = 0, without;
    time_t deadline = time(NULL) + 30;

    ksafe_test_unique_name(topic, sizeof(topic), "marked");
    ksafe_test_unique_name(group, sizeof(group), "marked-g");
    ck_assert_ok(ksafe_test_cluster_create_topic(tc, topic, 1, &err), err);
    test_produce(tc, topic, 0, 50);
    c = test_subscribed(tc, topic, group);
    while (got < 50 && time(NULL) < deadline) {
        ksafe_message *m;
        ck_assert_ok(ksafe_consumer_poll(c, 200, &m, &err), err);
        if (!m)
            continue;
        /* mark the first 20 only */
        if (ksafe_message_offset(m) < 20) {
            ck_assert_ok(ksafe_consumer_done(c, m, &err), err);
            marked++;
        }
        got++;
        ksafe_message_free(m);
    }
    ck_assert_int_eq(got, 50);
    ck_assert_int_eq(marked, 20);
    ck_assert_ok(ksafe_consumer_commit(c, KSAFE_COMMIT_SYNC, &err), err);
    ksafe_consumer_free(c);
    /* partition 0 holds 20; the other three were never created */
    ck_assert_int_eq(committed_total(topic, group, &without), 20);
}
END_TEST

static Suite *roundtrip_suite(void)
{
    Suite *s = suite_create("roundtrip");
    TCase *tcase = tcase_create("roundtrip");

    tcase_add_unchecked_fixture(tcase, test_cluster_up, test_cluster_down);
    tcase_set_timeout(tcase, 120);
    tcase_add_test(tcase, records_round_trip_with_safe_presets);
    tcase_add_test(tcase, records_keep_order_per_key);
    tcase_add_test(tcase, closing_without_marking_commits_nothing);
    tcase_add_test(tcase, commit_carries_only_marked_records);
    suite_add_tcase(s, tcase);
    return s;
}

KSAFE_TEST_MAIN(roundtrip_suite)
