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

/*
 * Cases that need a feature librdkafka may be built without carry the tag
 * "needs-<feature>" (a name from librdkafka's builtin.features). Meson runs
 * them with `--needs <feature>`: that run exits 77 (SKIP) when the linked
 * librdkafka lacks the feature. The untagged run leaves them out.
 */
#define TEST_NEEDS_ZSTD "needs-zstd"

/* 1 when the linked librdkafka's builtin.features lists `feature`. */
int test_rdkafka_has_feature(const char *feature);

/* Runs (and frees) `s` as argv asks ([--embedded-only | --real-only |
 * --needs <feature>]); returns the exit code for meson.
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

/*
 * The group protocol: suites run under the classic protocol, or under
 * KIP-848's when KSAFE_TEST_GROUP_PROTOCOL=consumer (the `-kip848` runs of
 * tests/meson.build, librdkafka >= 2.12 only). Eager assignment strategies
 * do not exist under KIP-848: cases about them are registered only in a
 * classic run (test_eager_runs()), so a KIP-848 run never reports them as
 * passed.
 */
int test_kip848(void);
static inline int test_eager_runs(void) { return !test_kip848(); }

/* Sets the group fields of test consumer options for the protocol in use
 * (ksafe_test_consumer_group() with the timings of this cluster kind). */
void test_group_fields(ksafe_test_cluster *tc, ksafe_consumer_options *o);

/* The session timeout that applies to test consumers of `tc`: the classic
 * protocol's from ksafe_test_group_timing(), or under KIP-848 the
 * broker's (the embedded cluster's is the same; a stock broker's 45 s). */
int test_session_ms(ksafe_test_cluster *tc);

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

/* Starts samples/demo (`worker`, $KSAFE_DEMO_WORKER) in --worker mode on
 * `tc`: ksafe_run() over `topic` in `group`, each handled id appended to
 * `out`, loop stats in the file `stats`, under this run's group protocol
 * (the classic one with `session_ms`). The child dies with the test. */
pid_t test_spawn_demo_worker(ksafe_test_cluster *tc, const char *worker,
                             const char *topic, const char *group,
                             const char *out, const char *stats,
                             int session_ms, int handler_us,
                             int commit_every);

/* Restarts the PostgreSQL server of .ci/postgres.sh ($KSAFE_PG_SCRIPT):
 * every connection is cut, the server comes back on the same port. */
void test_pg_restart(void);

#endif
