/*
 * tests/test_error.c - the error model.
 */
#include "testutil.h"

static const int all_codes[] = {
    KSAFE_OK,        KSAFE_EINVAL,      KSAFE_EUNSAFE,   KSAFE_ENOMEM,
    KSAFE_EKAFKA,    KSAFE_ETIMEDOUT,   KSAFE_EQUEUEFULL, KSAFE_EFATAL,
    KSAFE_ETXNABORTED, KSAFE_EVERSION,  KSAFE_EJSON,     KSAFE_EIO,
    KSAFE_ESTATE,    KSAFE_EHANDLER,    KSAFE_EUNDELIVERED, KSAFE_ECOMMIT,
    KSAFE_ESTORE,    KSAFE_ESTOPPED,
};
#define N_CODES (sizeof(all_codes) / sizeof(all_codes[0]))

START_TEST(strerror_names_every_code_distinctly)
{
    size_t i, j;

    for (i = 0; i < N_CODES; i++) {
        const char *s = ksafe_strerror(all_codes[i]);
        ck_assert_ptr_nonnull(s);
        ck_assert_str_ne(s, ksafe_strerror(12345));
        for (j = 0; j < i; j++)
            ck_assert_str_ne(s, ksafe_strerror(all_codes[j]));
    }
    ck_assert_str_eq(ksafe_strerror(-999), "unknown error code");
}
END_TEST

START_TEST(codes_are_negative_and_ok_is_zero)
{
    size_t i;

    ck_assert_int_eq(KSAFE_OK, 0);
    for (i = 1; i < N_CODES; i++)
        ck_assert_int_lt(all_codes[i], 0);
}
END_TEST

START_TEST(clear_resets_and_accepts_null)
{
    ksafe_error err;

    memset(&err, 0x5a, sizeof(err));
    ksafe_error_clear(&err);
    ck_assert_int_eq(err.code, 0);
    ck_assert_int_eq(err.rdkafka_code, 0);
    ck_assert_uint_eq(err.flags, 0);
    ck_assert_str_eq(err.message, "");
    ksafe_error_clear(NULL);
}
END_TEST

START_TEST(failure_fills_every_field)
{
    ksafe_error err;
    ksafe_producer *p = (ksafe_producer *)1;
    ksafe_producer_options o = KSAFE_PRODUCER_OPTIONS_INIT;

    memset(&err, 0x5a, sizeof(err));
    ck_assert_int_eq(ksafe_producer_new(&p, &o, &err), KSAFE_EINVAL);
    ck_assert_ptr_null(p); /* out is reset on failure */
    ck_assert_int_eq(err.code, KSAFE_EINVAL);
    ck_assert_int_eq(err.rdkafka_code, 0);
    ck_assert_uint_eq(err.flags, 0);
    ck_assert_ptr_nonnull(strstr(err.message, "bootstrap_servers"));
    ck_assert_ptr_nonnull(memchr(err.message, '\0', sizeof(err.message)));
    {
        size_t i;
        for (i = 0; i < sizeof(err.reserved); i++)
            ck_assert_uint_eq(err.reserved[i], 0);
    }
}
END_TEST

START_TEST(null_error_is_accepted_everywhere)
{
    ksafe_producer *p;
    ksafe_consumer *c;
    ksafe_mock_cluster *mc;
    ksafe_config *cfg;

    ck_assert_int_eq(ksafe_producer_new(&p, NULL, NULL), KSAFE_EINVAL);
    ck_assert_int_eq(ksafe_consumer_new(&c, NULL, NULL), KSAFE_EINVAL);
    ck_assert_int_eq(ksafe_producer_new(NULL, NULL, NULL), KSAFE_EINVAL);
    ck_assert_int_eq(ksafe_mock_cluster_new(&mc, 0, NULL), KSAFE_EINVAL);
    ck_assert_int_eq(ksafe_config_load_string(&cfg, "{", NULL), KSAFE_EJSON);
    ck_assert_int_eq(ksafe_producer_close(NULL, NULL), KSAFE_EINVAL);
    ck_assert_int_eq(ksafe_consumer_close(NULL, NULL), KSAFE_EINVAL);
    ksafe_producer_free(NULL);
    ksafe_consumer_free(NULL);
    ksafe_mock_cluster_free(NULL);
    ksafe_config_free(NULL);
}
END_TEST

START_TEST(versions_are_reported)
{
    ck_assert_str_eq(ksafe_version(), KSAFE_VERSION_STRING);
    ck_assert_ptr_nonnull(ksafe_rdkafka_version());
    ck_assert_int_ge(strlen(ksafe_rdkafka_version()), 5);
}
END_TEST

static Suite *error_suite(void)
{
    Suite *s = suite_create("error");
    TCase *tc = tcase_create("model");

    tcase_add_test(tc, strerror_names_every_code_distinctly);
    tcase_add_test(tc, codes_are_negative_and_ok_is_zero);
    tcase_add_test(tc, clear_resets_and_accepts_null);
    tcase_add_test(tc, failure_fills_every_field);
    tcase_add_test(tc, null_error_is_accepted_everywhere);
    tcase_add_test(tc, versions_are_reported);
    suite_add_tcase(s, tc);
    return s;
}

KSAFE_TEST_MAIN(error_suite)
