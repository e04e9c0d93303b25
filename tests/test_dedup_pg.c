/*
 * tests/test_dedup_pg.c - the store contract of tests/test_dedup.c against
 * PostgreSQL. Needs a server named by KSAFE_TEST_PG (.ci/postgres.sh starts
 * a throwaway one); without it the binary exits 77 and meson reports SKIP.
 */
#define DEDUP_PG_ONLY 1
#include "test_dedup.c"
