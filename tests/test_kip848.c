/*
 * tests/test_kip848.c - what is particular to KIP-848's consumer group
 * protocol (group_protocol CONSUMER), on the embedded cluster of librdkafka
 * >= 2.12, which implements it: rebalances are incremental and driven by
 * the broker, commits are refused with the member-epoch errors of the new
 * protocol, and two processes sharing a group.instance.id fence the new
 * one, not the old one.
 *
 * The consumer, loop, rebalance and crash suites also run under this
 * protocol (their `-kip848` runs); this suite holds what they cannot show.
 * It exits 77 (SKIP) where the linked librdkafka lacks the protocol.
 */
#include "consumer_kit.h"

#define PARTS 4

/* OffsetCommit and ConsumerGroupHeartbeat, Kafka's API keys. */
#define API_OFFSET_COMMIT 8
#define API_CONSUMER_GROUP_HEARTBEAT 68

static void topic_with(char *topic, size_t size, const char *prefix,
                       int parts, int per_part)
{
    ksafe_error err;

    ksafe_test_unique_name(topic, size, prefix);
    ck_assert_ok(ksafe_test_cluster_create_topic(tc, topic, parts, &err),
                 err);
    kit_produce(tc, topic, parts, per_part);
}

/* Polls `m` until it owns `want` partitions and saw `records`, or 30 s. */
static void poll_until(member *m, int parts, int want, int64_t records)
{
    time_t deadline = time(NULL) + 30;
    int owned, p;
    int64_t seen;

    do {
        kit_poll(m, 20);
        for (owned = 0, seen = 0, p = 0; p < parts; p++) {
            owned += m->owned[p];
            seen += m->seen[p];
        }
    } while ((owned != want || seen < records) && time(NULL) < deadline);
    ck_assert_msg(owned == want && seen >= records,
                  "member owns %d of %d partitions, saw %lld of %lld records",
                  owned, want, (long long)seen, (long long)records);
}

/*
 * The broker moves partitions one member at a time: the first member keeps
 * what it is not asked to give up, and librdkafka names the protocol
 * COOPERATIVE, so ksafe commits only the revoked partitions.
 */
START_TEST(rebalances_are_incremental)
{
    char topic[64], group[64];
    member ms[2];
    int p, kept = 0;

    topic_with(topic, sizeof(topic), "k848-inc", PARTS, 5);
    ksafe_test_unique_name(group, sizeof(group), "k848-inc-g");
    kit_join(tc, &ms[0], topic, group, KSAFE_ASSIGN_COOPERATIVE_STICKY);
    ms[0].mark_below = INT64_MAX;
    poll_until(&ms[0], PARTS, PARTS, PARTS * 5);
    ck_assert_str_eq(rd_kafka_rebalance_protocol(
                         ksafe_consumer_rdkafka(ms[0].c)),
                     "COOPERATIVE");
    ms[0].revoked_events = 0;
    kit_join(tc, &ms[1], topic, group, KSAFE_ASSIGN_COOPERATIVE_STICKY);
    kit_settle(ms, 2, PARTS);
    for (p = 0; p < PARTS; p++)
        kept += ms[0].owned[p] && !ms[0].revoked[p];
    /* Eager would have revoked all four first. */
    ck_assert_int_eq(kept, PARTS / 2);
    kit_leave(&ms[1]);
    kit_leave(&ms[0]);
}
END_TEST

/*
 * STALE_MEMBER_EPOCH: the commit carried an epoch the broker already moved
 * past, while the member still owns the partition. A retry after the next
 * heartbeat is accepted, so close retries it: nothing is handled twice.
 * Four refusals: more than close's commit, the revoke commit and one more
 * attempt (what a close that does not retry makes).
 */
START_TEST(stale_member_epoch_at_close_is_retried)
{
    char topic[64], group[64];
    rd_kafka_resp_err_t stale[4] = {
        KSAFE__ERR_STALE_MEMBER_EPOCH, KSAFE__ERR_STALE_MEMBER_EPOCH,
        KSAFE__ERR_STALE_MEMBER_EPOCH, KSAFE__ERR_STALE_MEMBER_EPOCH};
    int64_t committed[1];
    member m;
    ksafe_error err;
    int rc;

    topic_with(topic, sizeof(topic), "k848-stale", 1, 10);
    ksafe_test_unique_name(group, sizeof(group), "k848-stale-g");
    kit_join(tc, &m, topic, group, KSAFE_ASSIGN_COOPERATIVE_STICKY);
    m.mark_below = INT64_MAX;
    poll_until(&m, 1, 1, 10);
    ck_assert_ok(ksafe_mock_cluster_push_request_errors(
                     ksafe_test_cluster_mock(tc), API_OFFSET_COMMIT, 4,
                     stale, &err),
                 err);
    rc = ksafe_consumer_close(m.c, &err);
    ck_assert_msg(rc == 0, "close: %d %s", rc, err.message);
    ksafe_consumer_free(m.c);
    test_committed(tc, topic, group, 1, committed);
    ck_assert_int_eq(committed[0], 10);
}
END_TEST

/*
 * UNKNOWN_MEMBER_ID on the close commit: the broker no longer knows the
 * member, the commit cannot be made. Close says so, naming the position,
 * and it is not a fatal error; the next member of the group gets the
 * records again (at least once: nothing lost).
 */
START_TEST(unknown_member_at_close_is_reported_and_records_come_again)
{
    char topic[64], group[64];
    rd_kafka_resp_err_t unknown[8];
    member m, next;
    ksafe_error err;
    char where[96];
    int rc, i;

    for (i = 0; i < 8; i++)
        unknown[i] = RD_KAFKA_RESP_ERR_UNKNOWN_MEMBER_ID;
    topic_with(topic, sizeof(topic), "k848-unknown", 1, 10);
    ksafe_test_unique_name(group, sizeof(group), "k848-unknown-g");
    kit_join(tc, &m, topic, group, KSAFE_ASSIGN_COOPERATIVE_STICKY);
    m.mark_below = INT64_MAX;
    poll_until(&m, 1, 1, 10);
    ck_assert_ok(ksafe_mock_cluster_push_request_errors(
                     ksafe_test_cluster_mock(tc), API_OFFSET_COMMIT, 8,
                     unknown, &err),
                 err);
    rc = ksafe_consumer_close(m.c, &err);
    ck_assert_msg(rc == KSAFE_ECOMMIT, "close: %d %s", rc, err.message);
    ck_assert_uint_eq(err.flags & KSAFE_ERROR_FATAL, 0);
    snprintf(where, sizeof(where), "%s [0] at 10", topic);
    ck_assert_msg(strstr(err.message, where) != NULL, "%s", err.message);
    ksafe_consumer_free(m.c);
    /* Close used only some of them: none may reach a later case. */
    rd_kafka_mock_clear_request_errors(
        ksafe_mock_cluster_rdkafka(ksafe_test_cluster_mock(tc)),
        API_OFFSET_COMMIT);

    kit_join(tc, &next, topic, group, KSAFE_ASSIGN_COOPERATIVE_STICKY);
    poll_until(&next, 1, 1, 10);
    ck_assert_int_eq(next.first[0], 0); /* from the start: again */
    kit_leave(&next);
}
END_TEST

/*
 * A second process with the same group.instance.id: under KIP-848 a broker
 * refuses the new member (UNRELEASED_INSTANCE_ID) - the opposite of the
 * classic protocol, which fences the old one. librdkafka makes it a fatal
 * error; ksafe's message says what to do and names the id. The error is
 * injected: the embedded cluster answers a real duplicate with
 * UNKNOWN_MEMBER_ID instead (docs/testing.md, its limits).
 */
START_TEST(duplicate_instance_id_fences_the_new_member_clearly)
{
    char topic[64], group[64], id[64];
    rd_kafka_resp_err_t unreleased = KSAFE__ERR_UNRELEASED_INSTANCE_ID;
    ksafe_consumer_options o;
    ksafe_consumer *c;
    ksafe_message *msg;
    ksafe_error err;
    const char *t;
    time_t deadline;
    int rc = 0;

    topic_with(topic, sizeof(topic), "k848-static", 1, 1);
    ksafe_test_unique_name(group, sizeof(group), "k848-static-g");
    ksafe_test_unique_name(id, sizeof(id), "pod");
    ck_assert_ok(ksafe_mock_cluster_push_request_errors(
                     ksafe_test_cluster_mock(tc),
                     API_CONSUMER_GROUP_HEARTBEAT, 1, &unreleased, &err),
                 err);
    ksafe_test_cluster_consumer_options(tc, &o, group);
    o.log_cb = test_quiet_log;
    o.group_instance_id = id;
    ck_assert_ok(ksafe_consumer_new(&c, &o, &err), err);
    t = topic;
    ck_assert_ok(ksafe_consumer_subscribe(c, &t, 1, &err), err);
    deadline = time(NULL) + 30;
    while (rc == 0 && time(NULL) < deadline) {
        rc = ksafe_consumer_poll(c, 100, &msg, &err);
        ksafe_message_free(msg);
    }
    ck_assert_msg(rc == KSAFE_EFATAL, "poll: %d %s", rc, err.message);
    ck_assert_int_eq(err.rdkafka_code, KSAFE__ERR_UNRELEASED_INSTANCE_ID);
    ck_assert_uint_ne(err.flags & KSAFE_ERROR_FATAL, 0);
    ck_assert_msg(strstr(err.message, id) != NULL &&
                      strstr(err.message, "Stop the other process"),
                  "%s", err.message);
    ksafe_consumer_free(c);
}
END_TEST

static Suite *kip848_suite(void)
{
    Suite *s = suite_create("kip848");
    TCase *t = tcase_create("kip848");

    tcase_add_unchecked_fixture(t, test_cluster_up, test_cluster_down);
    tcase_set_timeout(t, 180);
    tcase_add_test(t, rebalances_are_incremental);
    tcase_add_test(t, stale_member_epoch_at_close_is_retried);
    tcase_add_test(t, unknown_member_at_close_is_reported_and_records_come_again);
    tcase_add_test(t, duplicate_instance_id_fences_the_new_member_clearly);
    suite_add_tcase(s, t);
    return s;
}

int main(int argc, char **argv)
{
    if (rd_kafka_version() < KSAFE__RDKAFKA_KIP848) {
        printf("SKIP: librdkafka %s has no generally available KIP-848 "
               "(2.12.0 or newer)\n",
               rd_kafka_version_str());
        return 77;
    }
    if (!test_kip848()) {
        printf("SKIP: run with %s=consumer\n", KSAFE_TEST_GROUP_PROTOCOL_ENV);
        return 77;
    }
    return test_run(kip848_suite(), argc, argv);
}
