/*
 * tests/test_samples.c - the samples against a cluster named by
 * --bootstrap, as a user runs them on a real one.
 *
 * The cluster is the kit's: KSAFE_TEST_BOOTSTRAP's when set, else an
 * embedded one reached only through its bootstrap string, so the samples
 * take their real-cluster path (no embedded cluster of their own, topics
 * through the admin API). The embedded cluster does not implement topic
 * creation by the admin API and auto-creates any topic a metadata request
 * names with 4 partitions: a sample that trusts auto-creation gets the
 * wrong partition count there, as it would on a stock broker (1).
 */
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

static char dir[] = "/tmp/ksafe-samples-XXXXXX";

static void dir_up(void)
{
    test_cluster_up();
    ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void sample_path(char *buf, size_t size, const char *name)
{
    const char *d = getenv("KSAFE_SAMPLES_DIR");

    ck_assert_msg(d && *d, "KSAFE_SAMPLES_DIR is not set");
    snprintf(buf, size, "%s/%s", d, name);
    ck_assert_msg(access(buf, X_OK) == 0, "no sample at %s", buf);
}

/*
 * Runs sample `name` with --bootstrap and `extra` arguments, output (both
 * streams) into `out`. SIGTERM after term_after_s seconds when > 0 (a
 * service-style sample runs until told to stop). Returns its exit status.
 */
static int run_sample(const char *name, const char *const *extra,
                      int term_after_s, char *out, size_t out_size)
{
    char path[512];
    const char *argv[12];
    int n = 0, status, fd;
    time_t start = time(NULL);
    static int runs;
    pid_t pid;

    sample_path(path, sizeof(path), name);
    snprintf(out, out_size, "%s/%s-%d.out", dir, name, ++runs);
    argv[n++] = path;
    argv[n++] = "--bootstrap";
    argv[n++] = ksafe_test_cluster_bootstrap(tc);
    while (extra && *extra && n < 11)
        argv[n++] = *extra++;
    argv[n] = NULL;
    fflush(stdout);
    pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0)
            _exit(126);
        dup2(fd, 1);
        dup2(fd, 2);
        /* what a sample writes next to it (a database) stays in dir */
        if (chdir(dir))
            _exit(126);
        execv(path, (char *const *)argv);
        _exit(127);
    }
    ck_assert_int_gt(pid, 0);
    for (;;) {
        pid_t w = waitpid(pid, &status, WNOHANG);
        if (w == pid)
            break;
        if (term_after_s > 0 && time(NULL) - start >= term_after_s) {
            kill(pid, SIGTERM);
            term_after_s = 0;
        }
        if (time(NULL) - start > 240) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            ck_abort_msg("sample %s ran over 240 s (output in %s)", name,
                         out);
        }
        sleep_ms(100);
    }
    ck_assert_msg(WIFEXITED(status), "sample %s died (status %d, output %s)",
                  name, status, out);
    return WEXITSTATUS(status);
}

/* 1 when the file at `path` contains `needle`. */
static int output_has(const char *path, const char *needle)
{
    static char buf[1 << 16];
    FILE *f = fopen(path, "r");
    size_t n;

    ck_assert_ptr_nonnull(f);
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    return strstr(buf, needle) != NULL;
}

/* The demo's table row that says nothing was lost. */
static const char *lost_none(void)
{
    static char row[64];
    snprintf(row, sizeof(row), "%-28s %8d\n", "lost", 0);
    return row;
}

#define ASSERT_OUTPUT(path, needle)                                          \
    ck_assert_msg(output_has((path), (needle)),                              \
                  "output %s lacks \"%s\"", (path), (needle))

/*
 * demo --bootstrap on a cluster without its topic: it creates the topic
 * with 8 partitions through the admin API, or - where the cluster cannot -
 * stops with a message saying so, never running on whatever a broker's
 * auto-creation made.
 */
START_TEST(demo_creates_its_topic_or_says_it_cannot)
{
    char out[600];
    int rc = run_sample("demo", NULL, 0, out, sizeof(out));

    if (ksafe_test_cluster_is_embedded(tc)) {
        ck_assert_msg(rc != 0,
                      "demo exited 0 on a cluster where it cannot create "
                      "its topic: it ran on an auto-created one (%s)",
                      out);
        ASSERT_OUTPUT(out, "admin API");
        ck_assert_msg(!output_has(out, "producing"),
                      "demo went on without its topic (%s)", out);
    } else {
        ck_assert_msg(rc == 0, "demo failed (%s)", out);
        ASSERT_OUTPUT(out, "(8 partitions)");
        ASSERT_OUTPUT(out, lost_none());
    }
}
END_TEST

/* An existing topic with another partition count is a clear error. */
START_TEST(demo_refuses_a_topic_with_another_partition_count)
{
    const char *extra[] = {"--topic", NULL, NULL};
    char topic[64], out[600];
    ksafe_error err;

    ksafe_test_unique_name(topic, sizeof(topic), "demo-one");
    ck_assert_ok(ksafe_test_cluster_create_topic(tc, topic, 1, &err), err);
    extra[1] = topic;
    ck_assert_int_ne(run_sample("demo", extra, 0, out, sizeof(out)), 0);
    ASSERT_OUTPUT(out, "1 partition(s), not the 8 needed");
    ck_assert(!output_has(out, "producing"));
}
END_TEST

/* On an existing 8-partition topic the demo runs through --bootstrap and
 * accounts for every record. */
START_TEST(demo_runs_on_an_existing_topic)
{
    const char *extra[] = {"--topic", NULL, NULL};
    char topic[64], out[600];
    ksafe_error err;

    ksafe_test_unique_name(topic, sizeof(topic), "demo-eight");
    ck_assert_ok(ksafe_test_cluster_create_topic(tc, topic, 8, &err), err);
    extra[1] = topic;
    ck_assert_msg(run_sample("demo", extra, 0, out, sizeof(out)) == 0,
                  "demo failed (%s)", out);
    ASSERT_OUTPUT(out, "(8 partitions)");
    ASSERT_OUTPUT(out, lost_none());
    ck_assert_msg(!output_has(out, "no --bootstrap"),
                  "demo started its own cluster (%s)", out);
}
END_TEST

/*
 * Every other sample accepts --bootstrap and does its job there once its
 * topic exists (made here: the embedded cluster cannot create topics by
 * the admin API). The service-style ones run until SIGTERM.
 */
START_TEST(every_sample_runs_with_bootstrap)
{
    static const struct {
        const char *name, *topic;
        int partitions, term_after_s;
        const char *expect;
        const char *more_topics[3]; /* with the same partition count */
    } samples[] = {
        {"safe_producer", "orders", 3, 0, "sync: written to orders", {0}},
        {"at_least_once", "orders", 3, 8, "handled", {0}},
        {"roundtrip", "ksafe-roundtrip", 4, 0, "processed", {0}},
        {"rebalance_hooks", "rebalance-hooks", 6, 0, "-- done", {0}},
        {"transactional_producer", "payment-batches", 3, 0,
         "batch 2 committed", {0}},
        /* A service: relays what the samples before it left in orders
         * (safe_producer's are no order lines: dead-lettered). */
        {"exactly_once_relay", "orders", 3, 10, "relayed ",
         {"invoices", "orders-dead-letter", NULL}},
#ifdef TEST_HAVE_SQLITE
        {"idempotent_consumer", "payments", 2, 8, "", {0}},
#endif
    };
    size_t i, j;

    for (i = 0; i < sizeof(samples) / sizeof(samples[0]); i++) {
        char out[600];
        ksafe_error err;
        int rc;

        ck_assert_ok(ksafe_test_cluster_create_topic(
                         tc, samples[i].topic, samples[i].partitions, &err),
                     err);
        for (j = 0; j < 3 && samples[i].more_topics[j]; j++)
            ck_assert_ok(ksafe_test_cluster_create_topic(
                             tc, samples[i].more_topics[j],
                             samples[i].partitions, &err),
                         err);
        rc = run_sample(samples[i].name, NULL, samples[i].term_after_s, out,
                        sizeof(out));
        printf("sample %s --bootstrap: exit %d\n", samples[i].name, rc);
        ASSERT_OUTPUT(out, samples[i].expect);
        if (ksafe_test_cluster_is_embedded(tc) &&
            !strcmp(samples[i].name, "transactional_producer")) {
            /* Reached by its address it passes for a real broker, one that
             * shows aborted records to read_committed: the sample must
             * notice, not claim what it could not show. */
            ck_assert_int_eq(rc, 1);
            ASSERT_OUTPUT(out, "the aborted batch is visible");
            continue;
        }
        ck_assert_msg(rc == 0, "sample %s --bootstrap exited %d (output %s)",
                      samples[i].name, rc, out);
        ck_assert_msg(!output_has(out, "no --bootstrap"),
                      "sample %s started its own cluster (%s)",
                      samples[i].name, out);
    }
}
END_TEST

static Suite *samples_suite(void)
{
    Suite *s = suite_create("samples-bootstrap");
    TCase *t = tcase_create("bootstrap");

    tcase_add_unchecked_fixture(t, dir_up, test_cluster_down);
    tcase_set_timeout(t, 600);
    tcase_add_test(t, demo_creates_its_topic_or_says_it_cannot);
    tcase_add_test(t, demo_refuses_a_topic_with_another_partition_count);
    tcase_add_test(t, demo_runs_on_an_existing_topic);
    tcase_add_test(t, every_sample_runs_with_bootstrap);
    suite_add_tcase(s, t);
    return s;
}

KSAFE_TEST_MAIN(samples_suite)
