/*
 * tests/test_rdkafka_version.c - a process that runs ksafe on a librdkafka
 * older than the headers ksafe was built with gets a clear error from
 * every _new(), not a crash on a missing function or a workaround that no
 * longer matches the library.
 *
 * Meson runs it with LD_LIBRARY_PATH pointing at Debian's librdkafka 2.0.2
 * when the build used newer headers; anywhere else (the same library as
 * the headers) there is nothing to show and it exits 77 (SKIP).
 */
#include "testutil.h"

START_TEST(every_new_refuses_an_older_librdkafka)
{
    ksafe_consumer_options co = KSAFE_CONSUMER_OPTIONS_INIT;
    ksafe_producer_options po = KSAFE_PRODUCER_OPTIONS_INIT;
    ksafe_mock_cluster *mc = (ksafe_mock_cluster *)1;
    ksafe_consumer *c = (ksafe_consumer *)1;
    ksafe_producer *p = (ksafe_producer *)1;
    ksafe_error err;
    char linked[64];

    snprintf(linked, sizeof(linked), "runs librdkafka %s",
             rd_kafka_version_str());
    co.bootstrap_servers = po.bootstrap_servers = "127.0.0.1:1";
    co.group_id = "g";
    ck_assert_int_eq(ksafe_consumer_new(&c, &co, &err), KSAFE_EKAFKA);
    ck_assert_ptr_null(c);
    ck_assert_msg(strstr(err.message, linked) &&
                      strstr(err.message, "older than the librdkafka headers"),
                  "%s", err.message);
    ck_assert_int_eq(ksafe_producer_new(&p, &po, &err), KSAFE_EKAFKA);
    ck_assert_ptr_null(p);
    ck_assert_msg(strstr(err.message, linked) != NULL, "%s", err.message);
    ck_assert_int_eq(ksafe_mock_cluster_new(&mc, 1, &err), KSAFE_EKAFKA);
    ck_assert_ptr_null(mc);
    ck_assert_int_eq(ksafe_consumer_options_validate(&co, &err),
                     KSAFE_EKAFKA);
}
END_TEST

static Suite *rdkafka_version_suite(void)
{
    Suite *s = suite_create("rdkafka_version");
    TCase *t = tcase_create("skew");

    tcase_add_test(t, every_new_refuses_an_older_librdkafka);
    suite_add_tcase(s, t);
    return s;
}

int main(int argc, char **argv)
{
    if (rd_kafka_version() >= RD_KAFKA_VERSION) {
        printf("SKIP: librdkafka %s is not older than the headers "
               "(0x%08x): run with an older one on LD_LIBRARY_PATH\n",
               rd_kafka_version_str(), (unsigned)RD_KAFKA_VERSION);
        return 77;
    }
    return test_run(rdkafka_version_suite(), argc, argv);
}
