/*
 * tests/test_crash.c - the at-least-once loop under SIGKILL.
 *
 * A worker process (samples/demo in --worker mode) runs ksafe_run() over
 * 20 000 records and appends the id of every record it handles to its own
 * file before returning OK. It is SIGKILLed at random points at least ten
 * times (the seed is printed; set KSAFE_CRASH_SEED to replay) and restarted
 * each time. At the end every record was handled at least once, and what
 * each restart handled again is bounded by the commit policy.
 */
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"

#define RECORDS 20000
#define PARTITIONS 8
#define KILLS 10
#define COMMIT_EVERY 200
#define HANDLER_US 400

static ksafe_test_cluster *tc;

static void cluster_up(void)
{
    ksafe_error err;
    ck_assert_ok(ksafe_test_cluster_new(&tc, &err), err);
}

static void cluster_down(void)
{
    ksafe_test_cluster_free(tc);
    tc = NULL;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static pid_t spawn(const char *worker, const char *topic, const char *group,
                   const char *out, const char *stats)
{
    char every[16], us[16];
    pid_t pid;

    snprintf(every, sizeof(every), "%d", COMMIT_EVERY);
    snprintf(us, sizeof(us), "%d", HANDLER_US);
    pid = fork();
    if (pid == 0) {
        execl(worker, worker, "--worker", ksafe_test_cluster_bootstrap(tc),
              topic, group, out, stats, "4000", us, every, (char *)NULL);
        _exit(127);
    }
    ck_assert_int_gt(pid, 0);
    return pid;
}

static off_t file_size(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 ? sb.st_size : 0;
}

/* Adds the ids in `path` to seen[]; returns how many were already there. */
static int absorb(const char *path, unsigned char *seen, int *lines)
{
    char line[64];
    int again = 0;
    FILE *f = fopen(path, "r");

    *lines = 0;
    if (!f)
        return 0;
    while (fgets(line, sizeof(line), f)) {
        int i;
        ck_assert_int_eq(sscanf(line, "value-%d", &i), 1);
        ck_assert(i >= 0 && i < RECORDS);
        if (seen[i])
            again++;
        seen[i] = 1;
        (*lines)++;
    }
    fclose(f);
    return again;
}

static int count_seen(const unsigned char *seen)
{
    int i, n = 0;
    for (i = 0; i < RECORDS; i++)
        n += seen[i];
    return n;
}

START_TEST(sigkilled_loop_loses_nothing_and_redelivers_within_policy)
{
    static unsigned char seen[RECORDS];
    const char *worker = getenv("KSAFE_DEMO_WORKER");
    const char *seed_env = getenv("KSAFE_CRASH_SEED");
    char topic[64], group[64], dir[] = "/tmp/ksafe-crash-XXXXXX";
    char out[KILLS + 1][600], stats[600];
    unsigned seed;
    int run, status, total_again = 0, max_again = 0, lines;
    ksafe_error err;
    pid_t pid;
    time_t deadline;

    ck_assert_msg(worker && *worker, "KSAFE_DEMO_WORKER is not set");
    seed = seed_env ? (unsigned)strtoul(seed_env, NULL, 10)
                    : (unsigned)time(NULL) ^ (unsigned)getpid();
    printf("crash test seed %u (KSAFE_CRASH_SEED=%u replays it)\n", seed,
           seed);
    srand(seed);
    ck_assert_ptr_nonnull(mkdtemp(dir));
    ksafe_test_unique_name(topic, sizeof(topic), "crash");
    ksafe_test_unique_name(group, sizeof(group), "crash-g");
    ck_assert_ok(ksafe_test_cluster_create_topic(tc, topic, PARTITIONS, &err),
                 err);
    test_produce(tc, topic, 0, RECORDS);
    snprintf(stats, sizeof(stats), "%s/stats", dir);

    for (run = 0; run < KILLS; run++) {
        int wait_ms = 50 + rand() % 450;
        snprintf(out[run], sizeof(out[run]), "%s/run-%d.out", dir, run);
        pid = spawn(worker, topic, group, out[run], stats);
        /* kill once it is handling records, at a random point */
        deadline = time(NULL) + 60;
        while (file_size(out[run]) == 0 && time(NULL) < deadline)
            sleep_ms(5);
        ck_assert_msg(file_size(out[run]) > 0, "run %d never started", run);
        sleep_ms(wait_ms);
        kill(pid, SIGKILL);
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        ck_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    }

    /* the last run finishes the work, then stops gracefully */
    snprintf(out[KILLS], sizeof(out[KILLS]), "%s/run-%d.out", dir, KILLS);
    pid = spawn(worker, topic, group, out[KILLS], stats);
    deadline = time(NULL) + 120;
    for (;;) {
        memset(seen, 0, sizeof(seen));
        for (run = 0; run <= KILLS; run++)
            absorb(out[run], seen, &lines);
        if (count_seen(seen) == RECORDS || time(NULL) > deadline)
            break;
        sleep_ms(200);
    }
    kill(pid, SIGTERM);
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "final worker did not stop cleanly (status %d)", status);

    memset(seen, 0, sizeof(seen));
    for (run = 0; run <= KILLS; run++) {
        int again = absorb(out[run], seen, &lines);
        /* What run N handles again was marked by run N-1 after its last
         * acknowledged commit: at most two commit windows (one commit may
         * have been in flight at the kill) plus the record being handled. */
        ck_assert_msg(again <= 2 * COMMIT_EVERY + 1,
                      "run %d handled %d records again (bound %d)", run,
                      again, 2 * COMMIT_EVERY + 1);
        total_again += again;
        if (again > max_again)
            max_again = again;
        printf("run %2d: handled %5d, again %3d\n", run, lines, again);
    }
    ck_assert_int_eq(count_seen(seen), RECORDS); /* 0 lost */
    printf("kills %d, lost 0, redelivered %d (max %d per kill, bound %d)\n",
           KILLS, total_again, max_again, 2 * COMMIT_EVERY + 1);
}
END_TEST

static Suite *crash_suite(void)
{
    Suite *s = suite_create("crash");
    TCase *t = tcase_create("sigkill");

    tcase_add_unchecked_fixture(t, cluster_up, cluster_down);
    tcase_set_timeout(t, 600);
    tcase_add_test(t, sigkilled_loop_loses_nothing_and_redelivers_within_policy);
    suite_add_tcase(s, t);
    return s;
}

KSAFE_TEST_MAIN(crash_suite)
