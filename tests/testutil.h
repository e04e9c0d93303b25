/*
 * tests/testutil.h - what the suites share: the runner and cluster helpers.
 */
#ifndef KSAFE_TESTUTIL_H
#define KSAFE_TESTUTIL_H

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <ksafe/ksafe.h>

/*
 * Test cases that only one kind of cluster can run carry a Check tag:
 * TEST_EMBEDDED_ONLY (fault injection of the embedded cluster) or
 * TEST_REAL_ONLY (what only a real broker does). Meson runs such a binary
 * once more per tag (`--embedded-only`, `--real-only`, see
 * tests/meson.build), and that run exits 77 - meson's SKIP - on the other
 * kind of cluster, so a case that cannot run shows as skipped, never as a
 * pass. Without an argument the untagged cases run.
 */
#define TEST_EMBEDDED_ONLY "embedded-only"
#define TEST_REAL_ONLY "real-only"

/* Runs (and frees) `s` as argv asks; returns the exit code for meson.
 * CK_FORK etc. come from the environment (valgrind sets CK_FORK=no). */
int test_run(Suite *s, int argc, char **argv);

#define KSAFE_TEST_MAIN(suite_fn)                                            \
    int main(int argc, char **argv)                                          \
    {                                                                        \
        return test_run(suite_fn(), argc, argv);                             \
    }

/* Fails the test with the error's message when rc is not 0; evaluates rc
 * once. */
#define ck_assert_ok(rc, err)                                                \
    do {                                                                     \
        int rc_ = (rc);                                                      \
        ck_assert_msg(rc_ == 0, "%s failed: %d %s", #rc, rc_,                \
                      (err).message);                                        \
    } while (0)

/* A log callback that keeps tests quiet (connection noise etc.). */
static inline void test_quiet_log(int level, const char *fac, const char *msg,
                                  void *payload)
{
    (void)level; (void)fac; (void)msg; (void)payload;
}

/* ---- testutil.c: helpers for integration suites ---- */

/* The cluster of an integration suite (see ksafe_test_cluster_new()), set
 * by test_cluster_up(), an unchecked fixture: one cluster per test file. */
extern ksafe_test_cluster *tc;
void test_cluster_up(void);
void test_cluster_down(void);

/* Produces "value-<i>" with key "key-<i % 10>" for i in [from, to) and
 * asserts every record was delivered. */
void test_produce(ksafe_test_cluster *tc, const char *topic, int from, int to);

/* The <i> of a record produced by test_produce(). */
int test_value_index(const ksafe_message *m);

/* Committed offsets of `group` for partitions 0..partitions-1 of `topic`
 * into out[] (negative: none). */
void test_committed(ksafe_test_cluster *tc, const char *topic,
                    const char *group, int partitions, int64_t *out);

/* A preset test consumer in `group`, subscribed to `topic`. */
ksafe_consumer *test_subscribed(ksafe_test_cluster *tc, const char *topic,
                                const char *group);

/* Restarts the PostgreSQL server of .ci/postgres.sh ($KSAFE_PG_SCRIPT):
 * every connection is cut, the server comes back on the same port. */
void test_pg_restart(void);

#endif
