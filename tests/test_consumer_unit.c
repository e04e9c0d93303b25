/*
 * tests/test_consumer_unit.c - consumer parts that need no cluster: the
 * static membership id helper, instance id validation, commit policy and
 * seek arguments, the stop flag, marking a record of no assigned partition.
 */
#include <unistd.h>

#include "testutil.h"
/* The quirk table is an inline function of the consumer's internals. */
#include "../lib/consumer_internal.h"

static ksafe_consumer *offline(const char *instance_id)
{
    ksafe_consumer_options o = KSAFE_CONSUMER_OPTIONS_INIT;
    ksafe_consumer *c = NULL;
    ksafe_error err;

    o.bootstrap_servers = "127.0.0.1:1";
    o.group_id = "unit";
    o.group_instance_id = instance_id;
    o.log_cb = test_quiet_log;
    ck_assert_ok(ksafe_consumer_new(&c, &o, &err), err);
    return c;
}

START_TEST(instance_id_is_host_and_suffix)
{
    char host[256], id[300], again[300], want[300];
    ksafe_error err;
    size_t i;

    ck_assert_int_eq(gethostname(host, sizeof(host)), 0);
    for (i = 0; host[i]; i++)
        if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                    "0123456789._-", host[i]))
            host[i] = '-';
    snprintf(want, sizeof(want), "%s-worker_1.a", host);
    ck_assert_ok(ksafe_group_instance_id(id, sizeof(id), "worker_1.a", &err),
                 err);
    ck_assert_str_eq(id, want);
    ck_assert_ok(ksafe_group_instance_id(again, sizeof(again), "worker_1.a",
                                         &err), err);
    ck_assert_str_eq(id, again); /* stable across calls (and restarts) */
    ck_assert_ok(ksafe_group_instance_id(id, sizeof(id), NULL, &err), err);
    ck_assert_str_eq(id, host);
}
END_TEST

START_TEST(instance_id_rejects_bad_input)
{
    char id[300], big[300];
    ksafe_error err;

    ck_assert_int_eq(ksafe_group_instance_id(id, sizeof(id), "a b", &err),
                     KSAFE_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.message, "[a-zA-Z0-9._-]"));
    ck_assert_int_eq(ksafe_group_instance_id(id, sizeof(id), "a/b", &err),
                     KSAFE_EINVAL);
    memset(big, 'x', 260);
    big[260] = '\0';
    ck_assert_int_eq(ksafe_group_instance_id(id, sizeof(id), big, &err),
                     KSAFE_EINVAL);
    ck_assert_int_eq(ksafe_group_instance_id(id, 3, "w1", &err),
                     KSAFE_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.message, "needs"));
    ck_assert_int_eq(ksafe_group_instance_id(NULL, 3, "w1", &err),
                     KSAFE_EINVAL);
}
END_TEST

START_TEST(long_host_part_is_shortened_to_kafka_limit)
{
    char id[300], suffix[300];
    ksafe_error err;

    memset(suffix, 's', 240);
    suffix[240] = '\0';
    ck_assert_ok(ksafe_group_instance_id(id, sizeof(id), suffix, &err), err);
    ck_assert_uint_le(strlen(id), 249);
    ck_assert_ptr_nonnull(strstr(id, suffix)); /* suffix kept whole */
}
END_TEST

START_TEST(instance_id_option_is_validated_and_applied)
{
    ksafe_consumer_options o = KSAFE_CONSUMER_OPTIONS_INIT;
    ksafe_consumer *c;
    ksafe_error err;
    char value[300];
    size_t n = sizeof(value);
    char id[300];

    o.bootstrap_servers = "127.0.0.1:1";
    o.group_id = "unit";
    o.group_instance_id = "bad id";
    ck_assert_int_eq(ksafe_consumer_options_validate(&o, &err), KSAFE_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.message, "group_instance_id"));

    ck_assert_ok(ksafe_group_instance_id(id, sizeof(id), "w7", &err), err);
    c = offline(id);
    ck_assert_int_eq(rd_kafka_conf_get(rd_kafka_conf(ksafe_consumer_rdkafka(c)),
                                       "group.instance.id", value, &n),
                     RD_KAFKA_CONF_OK);
    ck_assert_str_eq(value, id);
    ksafe_consumer_free(c);
}
END_TEST

START_TEST(commit_policy_is_validated)
{
    ksafe_consumer *c = offline(NULL);
    ksafe_commit_policy p = KSAFE_COMMIT_POLICY_INIT;
    ksafe_error err;

    ck_assert_ok(ksafe_consumer_set_commit_policy(c, &p, &err), err);
    p.version = 99;
    ck_assert_int_eq(ksafe_consumer_set_commit_policy(c, &p, &err),
                     KSAFE_EVERSION);
    p.version = KSAFE_COMMIT_POLICY_VERSION;
    p.every_ms = 3600001;
    ck_assert_int_eq(ksafe_consumer_set_commit_policy(c, &p, &err),
                     KSAFE_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.message, "every_ms"));
    ck_assert_int_eq(ksafe_consumer_set_commit_policy(c, NULL, &err),
                     KSAFE_EINVAL);
    /* Nothing marked: nothing due, nothing sent, no error. */
    ck_assert_ok(ksafe_consumer_commit_maybe(c, &err), err);
    ck_assert_ok(ksafe_consumer_commit(c, KSAFE_COMMIT_SYNC, &err), err);
    ck_assert_int_eq(ksafe_consumer_commit_maybe(NULL, &err), KSAFE_EINVAL);
    ksafe_consumer_free(c);
}
END_TEST

START_TEST(seek_needs_an_assigned_partition)
{
    ksafe_consumer *c = offline(NULL);
    ksafe_error err;

    ck_assert_int_eq(ksafe_consumer_seek(c, "t", 0, -7, &err), KSAFE_EINVAL);
    ck_assert_int_eq(ksafe_consumer_seek(c, "t", -1, 0, &err), KSAFE_EINVAL);
    ck_assert_int_eq(ksafe_consumer_seek(c, "t", 0, 5, &err), KSAFE_ESTATE);
    ck_assert_ptr_nonnull(strstr(err.message, "not assigned"));
    ksafe_consumer_free(c);
}
END_TEST

START_TEST(stop_only_sets_a_flag)
{
    ksafe_consumer *c = offline(NULL);

    ck_assert_int_eq(ksafe_consumer_stop_requested(c), 0);
    ksafe_consumer_stop(c);
    ck_assert_int_eq(ksafe_consumer_stop_requested(c), 1);
    ksafe_consumer_stop(NULL);
    ck_assert_int_eq(ksafe_consumer_stop_requested(NULL), 0);
    ksafe_consumer_free(c);
}
END_TEST

/* A record of a partition this consumer does not own cannot be marked. */
START_TEST(done_refuses_unassigned_partition)
{
    ksafe_consumer *c = offline(NULL);
    rd_kafka_topic_t *rkt =
        rd_kafka_topic_new(ksafe_consumer_rdkafka(c), "elsewhere", NULL);
    rd_kafka_message_t m;
    ksafe_error err;

    memset(&m, 0, sizeof(m));
    m.rkt = rkt;
    m.partition = 3;
    m.offset = 41;
    ck_assert_int_eq(ksafe_consumer_done(c, (const ksafe_message *)&m, &err),
                     KSAFE_ESTATE);
    ck_assert_ptr_nonnull(strstr(err.message, "elsewhere [3] offset 41"));
    ck_assert_int_eq(ksafe_consumer_done(c, NULL, &err), KSAFE_EINVAL);
    rd_kafka_topic_destroy(rkt);
    ksafe_consumer_free(c);
}
END_TEST

/* Each librdkafka workaround applies to the versions with the bug only. */
START_TEST(quirks_follow_the_linked_version)
{
    static const struct {
        int version;
        unsigned int sticky, hang, seek, commit;
    } cases[] = {
        {0x020002ff, 1, 1, 1, 1}, /* 2.0.2, Debian 12 */
        {0x02010001, 1, 1, 1, 1}, /* 2.1.0-RC1: not yet fixed */
        {0x020100ff, 1, 1, 0, 1}, /* 2.1.0: seek timeout fixed (4230) */
        {0x020201ff, 1, 1, 0, 1},
        {0x020300ff, 0, 1, 0, 1}, /* 2.3.0: sticky destroy fixed (4312) */
        {0x020400ff, 0, 0, 0, 1}, /* 2.4.0: close hang fixed (4527) */
        {0x020a0001, 0, 0, 0, 1}, /* 2.10.0-RC1 */
        {0x020a00ff, 0, 0, 0, 0}, /* 2.10.0: commit keeps the join (4059) */
        {0x020f01ff, 0, 0, 0, 0}, /* 2.15.1 */
    };
    ksafe_consumer *c = offline(NULL);
    ksafe__consumer_quirks q, linked;
    size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ksafe__consumer_quirks_of(cases[i].version, &q);
        ck_assert_msg(q.sticky_destroy_asserts == cases[i].sticky &&
                          q.close_hangs_on_assign == cases[i].hang &&
                          q.seek_timeout_unit == cases[i].seek &&
                          q.commit_drops_assignment == cases[i].commit,
                      "version 0x%08x: quirks %u%u%u%u", cases[i].version,
                      q.sticky_destroy_asserts, q.close_hangs_on_assign,
                      q.seek_timeout_unit, q.commit_drops_assignment);
    }
    /* The consumer decided from the library it runs with. */
    ksafe__consumer_quirks_of(rd_kafka_version(), &linked);
    ck_assert_uint_eq(c->quirks.sticky_destroy_asserts,
                      linked.sticky_destroy_asserts);
    ck_assert_uint_eq(c->quirks.close_hangs_on_assign,
                      linked.close_hangs_on_assign);
    ck_assert_uint_eq(c->quirks.seek_timeout_unit, linked.seek_timeout_unit);
    ck_assert_uint_eq(c->quirks.commit_drops_assignment,
                      linked.commit_drops_assignment);
    /* the commit guard probes exactly where the bug is */
    ck_assert_int_eq(c->guard_probe, (int)linked.commit_drops_assignment);
    ksafe_consumer_free(c);
}
END_TEST

static Suite *consumer_unit_suite(void)
{
    Suite *s = suite_create("consumer_unit");
    TCase *t;

    t = tcase_create("instance_id");
    tcase_add_test(t, instance_id_is_host_and_suffix);
    tcase_add_test(t, instance_id_rejects_bad_input);
    tcase_add_test(t, long_host_part_is_shortened_to_kafka_limit);
    tcase_add_test(t, instance_id_option_is_validated_and_applied);
    suite_add_tcase(s, t);
    t = tcase_create("policy");
    tcase_add_test(t, commit_policy_is_validated);
    suite_add_tcase(s, t);
    t = tcase_create("seek");
    tcase_add_test(t, seek_needs_an_assigned_partition);
    suite_add_tcase(s, t);
    t = tcase_create("stop");
    tcase_add_test(t, stop_only_sets_a_flag);
    suite_add_tcase(s, t);
    t = tcase_create("done");
    tcase_add_test(t, done_refuses_unassigned_partition);
    suite_add_tcase(s, t);
    t = tcase_create("quirks");
    tcase_add_test(t, quirks_follow_the_linked_version);
    suite_add_tcase(s, t);
    return s;
}

KSAFE_TEST_MAIN(consumer_unit_suite)
