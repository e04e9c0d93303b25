/*
 * samples/demo.c - the at-least-once loop surviving a SIGKILL.
 *
 * Produces a workload, runs a consumer group of worker processes through
 * ksafe_run(), SIGKILLs one of them in the middle of its work, lets the group
 * rebalance and finish, then prints what really happened. Every count is
 * computed by reading the data back: the records' effects (each worker
 * appends the id of every record it handled to its own file) and the
 * group's committed offsets.
 *
 *   demo                        embedded cluster, 3 workers
 *   demo --bootstrap host:port  a real cluster: topic "ksafe-demo-<pid>" is
 *                               created with 8 partitions (admin API)
 *   demo ... --topic NAME       use NAME instead: created when missing, and
 *                               if it exists it must have 8 partitions
 *   demo ... --group-protocol consumer
 *                               the workers' group under KIP-848 (the
 *                               broker assigns; librdkafka >= 2.12)
 *
 * Workers are this program run again with --worker (a fresh process: a
 * librdkafka client must not cross fork()).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common.h"

#define PARTITIONS 8
#define MAX_WORKERS 64

/* ---- worker ------------------------------------------------------------ */

typedef struct worker_args {
    const char *bootstrap, *topic, *group, *out, *stats;
    const char *protocol; /* "classic" or "consumer" (KIP-848) */
    int session_ms, handler_us;
    uint64_t commit_every;
} worker_args;

typedef struct effects {
    int fd;
    int handler_us;
} effects;

/* The "business effect" of a record: its id appended to the worker's file.
 * write(2) reaches the kernel before the handler returns, so the effect
 * survives a SIGKILL that comes before the record is marked. */
static ksafe_handler_result handle(const ksafe_message *m, ksafe_error *err,
                                   void *payload)
{
    effects *e = payload;
    char line[48];
    size_t len;
    const char *v = ksafe_message_value(m, &len);
    int n = snprintf(line, sizeof(line), "%.*s\n", (int)len, v);

    if (e->handler_us) {
        struct timespec ts = {0, e->handler_us * 1000L};
        nanosleep(&ts, NULL); /* pretend to work */
    }
    if (write(e->fd, line, (size_t)n) != n) {
        snprintf(err->message, sizeof(err->message), "write: %s",
                 strerror(errno));
        return KSAFE_HANDLER_RETRY;
    }
    return KSAFE_HANDLER_OK;
}

static int worker(const worker_args *a)
{
    ksafe_consumer_options co = KSAFE_CONSUMER_OPTIONS_INIT;
    ksafe_loop_options lo = KSAFE_LOOP_OPTIONS_INIT;
    static const char *const fast[] = {"fetch.wait.max.ms", "10",
                                       "reconnect.backoff.max.ms", "500",
                                       NULL};
    ksafe_loop_stats *stats = NULL;
    ksafe_consumer *c = NULL;
    ksafe_error err;
    effects e;
    int rc, sfd;

    e.fd = open(a->out, O_WRONLY | O_CREAT | O_APPEND, 0644);
    e.handler_us = a->handler_us;
    /* Stats live in a shared file so they outlive a SIGKILL. */
    sfd = open(a->stats, O_RDWR | O_CREAT, 0644);
    if (e.fd < 0 || sfd < 0 || ftruncate(sfd, sizeof(*stats)) ||
        (stats = mmap(NULL, sizeof(*stats), PROT_READ | PROT_WRITE,
                      MAP_SHARED, sfd, 0)) == MAP_FAILED) {
        perror("worker files");
        return 1;
    }
    co.bootstrap_servers = a->bootstrap;
    co.group_id = a->group;
    if (sample_group_protocol(a->protocol, &co.group_protocol)) {
        fprintf(stderr, "worker: unknown group protocol %s\n", a->protocol);
        return 1;
    }
    /* Under KIP-848 the broker owns the session: ksafe refuses it set. */
    if (co.group_protocol == KSAFE_GROUP_PROTOCOL_CLASSIC) {
        co.session_timeout_ms = a->session_ms;
        co.heartbeat_interval_ms = a->session_ms / 6;
    }
    co.rdkafka_properties = fast;
    lo.handler = handle;
    lo.payload = &e;
    lo.stats = stats;
    lo.commit_every_records = a->commit_every;
    lo.commit_interval_ms = 500;
    if (ksafe_consumer_new(&c, &co, &err) ||
        ksafe_consumer_subscribe(c, &a->topic, 1, &err) ||
        ksafe_stop_on_signals(c, &err)) {
        fprintf(stderr, "worker: %s\n", err.message);
        ksafe_consumer_free(c);
        return 1;
    }
    rc = ksafe_run(c, &lo, &err);
    if (rc)
        fprintf(stderr, "worker: %s\n", err.message);
    ksafe_consumer_free(c);
    close(e.fd);
    return rc ? 1 : 0;
}

/* ---- the demo ---------------------------------------------------------- */

static pid_t spawn_worker(const char *self, const worker_args *a)
{
    char session[16], us[16], every[24];
    pid_t pid;

    snprintf(session, sizeof(session), "%d", a->session_ms);
    snprintf(us, sizeof(us), "%d", a->handler_us);
    snprintf(every, sizeof(every), "%llu", (unsigned long long)a->commit_every);
    pid = fork();
    if (pid == 0) {
        execl(self, self, "--worker", a->bootstrap, a->topic, a->group, a->out,
              a->stats, session, us, every, a->protocol, (char *)NULL);
        _exit(127);
    }
    return pid;
}

/* Reads the ids of every worker file: counts[i] = times record i was handled.
 * Returns the number of lines. */
static long read_effects(const char *dir, int workers, int *counts, int n)
{
    long lines = 0;
    int w;

    memset(counts, 0, sizeof(int) * (size_t)n);
    for (w = 0; w < workers; w++) {
        char path[512], line[64];
        FILE *f;
        snprintf(path, sizeof(path), "%s/worker-%d.out", dir, w);
        if (!(f = fopen(path, "r")))
            continue;
        while (fgets(line, sizeof(line), f)) {
            int i;
            if (sscanf(line, "order-%d", &i) == 1 && i >= 0 && i < n) {
                counts[i]++;
                lines++;
            }
        }
        fclose(f);
    }
    return lines;
}

static int unique(const int *counts, int n)
{
    int i, u = 0;
    for (i = 0; i < n; i++)
        u += counts[i] > 0;
    return u;
}

/* The committed offsets of every one of the topic's `partitions`
 * partitions (a count read from the cluster's metadata), summed. */
static int64_t committed_sum(const char *bootstrap, const char *topic,
                             const char *group, int partitions)
{
    ksafe_consumer_options o = KSAFE_CONSUMER_OPTIONS_INIT;
    rd_kafka_topic_partition_list_t *l;
    ksafe_consumer *c;
    int64_t sum = 0;
    int i;

    o.bootstrap_servers = bootstrap;
    o.group_id = group;
    if (ksafe_consumer_new(&c, &o, NULL))
        return -1;
    l = rd_kafka_topic_partition_list_new(partitions);
    for (i = 0; i < partitions; i++)
        rd_kafka_topic_partition_list_add(l, topic, i);
    if (rd_kafka_committed(ksafe_consumer_rdkafka(c), l, 10000))
        sum = -1;
    for (i = 0; sum >= 0 && i < l->cnt; i++)
        sum += l->elems[i].offset > 0 ? l->elems[i].offset : 0;
    rd_kafka_topic_partition_list_destroy(l);
    ksafe_consumer_free(c);
    return sum;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

int main(int argc, char **argv)
{
    enum { RECORDS = 20000, WORKERS = 3 };
    static int counts[RECORDS];
    char topic[64], group[64], dir[] = "/tmp/ksafe-demo-XXXXXX";
    worker_args a[WORKERS];
    ksafe_loop_stats *st[WORKERS];
    pid_t pid[WORKERS];
    sample_cluster sc;
    long lines, again;
    uint64_t commits = 0, rebalances = 0, survivors_lost = 0, bound;
    int64_t committed;
    int w, u, victim = 1, status, partitions;
    const char *named_topic = NULL;
    time_t deadline;

    if (argc == 11 && strcmp(argv[1], "--worker") == 0) {
        worker_args wa = {argv[2], argv[3], argv[4], argv[5], argv[6],
                          argv[10], atoi(argv[7]), atoi(argv[8]),
                          strtoull(argv[9], NULL, 10)};
        return worker(&wa);
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    /* --topic NAME is the demo's own; the rest is every sample's. */
    for (w = 1; w + 1 < argc; w++)
        if (strcmp(argv[w], "--topic") == 0) {
            named_topic = argv[w + 1];
            memmove(&argv[w], &argv[w + 2],
                    sizeof(char *) * (size_t)(argc - w - 1));
            argc -= 2;
            break;
        }
    sample_cluster_open(&sc, argc, argv);
    if (named_topic)
        snprintf(topic, sizeof(topic), "%s", named_topic);
    else
        snprintf(topic, sizeof(topic), "ksafe-demo-%ld", (long)getpid());
    snprintf(group, sizeof(group), "ksafe-demo-group-%ld", (long)getpid());
    /* Created, or checked, with 8 partitions; the count printed and summed
     * below is the cluster's. */
    partitions = sample_cluster_topic(&sc, topic, PARTITIONS);
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    printf("producing %d records to %s (%d partitions)...\n", RECORDS, topic,
           partitions);
    sample_produce_demo(&sc, topic, RECORDS, 997);

    for (w = 0; w < WORKERS; w++) {
        static char out[WORKERS][600], stats[WORKERS][600];
        int fd;
        snprintf(out[w], sizeof(out[w]), "%s/worker-%d.out", dir, w);
        snprintf(stats[w], sizeof(stats[w]), "%s/worker-%d.stats", dir, w);
        a[w] = (worker_args){sc.bootstrap, topic, group, out[w], stats[w],
                             sc.group_protocol == KSAFE_GROUP_PROTOCOL_CONSUMER
                                 ? "consumer"
                                 : "classic",
                             6000, 200, 1000};
        fd = open(stats[w], O_RDWR | O_CREAT, 0644);
        if (fd < 0 || ftruncate(fd, sizeof(ksafe_loop_stats)))
            return 1;
        st[w] = mmap(NULL, sizeof(ksafe_loop_stats), PROT_READ, MAP_SHARED,
                     fd, 0);
        close(fd);
        pid[w] = spawn_worker(argv[0], &a[w]);
    }
    printf("%d workers in group %s; each handles a record in ~0.2 ms\n",
           WORKERS, group);

    /* Kill one worker once it is well into its share, in a group that
     * formed: every worker has records (a kill during the group's first
     * rounds only shows that commits are refused while a join runs). */
    deadline = time(NULL) + 120;
    while (time(NULL) < deadline &&
           (st[0]->processed < 200 || st[1]->processed < 200 ||
            st[2]->processed < 200))
        sleep_ms(20);
    while (time(NULL) < deadline && st[victim]->processed < 1500)
        sleep_ms(20);
    kill(pid[victim], SIGKILL);
    waitpid(pid[victim], &status, 0);
    pid[victim] = 0;
    printf("SIGKILLed worker %d after it handled %llu records (its last "
           "commit was up to 1000 records / 0.5 s behind)\n",
           victim, (unsigned long long)st[victim]->processed);

    /* The group rebalances; the survivors finish everything. */
    while (time(NULL) < deadline) {
        read_effects(dir, WORKERS, counts, RECORDS);
        if (unique(counts, RECORDS) == RECORDS)
            break;
        sleep_ms(200);
    }
    /* Graceful stop: finish, commit, leave. One at a time, letting the
     * group settle in between: a member that closes while the group is
     * still rebalancing after another one left may find its partitions
     * lost (no commit for them: the next owner would handle them again). */
    for (w = 0; w < WORKERS; w++)
        if (pid[w]) {
            kill(pid[w], SIGTERM);
            waitpid(pid[w], &status, 0);
            if (w + 1 < WORKERS)
                sleep_ms(a[w].session_ms);
        }

    lines = read_effects(dir, WORKERS, counts, RECORDS);
    bound = 2 * a[victim].commit_every;
    u = unique(counts, RECORDS);
    for (w = 0; w < WORKERS; w++) {
        commits += st[w]->commits;
        rebalances += st[w]->rebalances;
        if (w != victim)
            survivors_lost += st[w]->lost;
    }
    printf("\n%-28s %8s\n", "", "records");
    printf("%-28s %8d\n", "produced", RECORDS);
    printf("%-28s %8d\n", "processed (unique)", u);
    printf("%-28s %8d\n", "lost", RECORDS - u);
    printf("%-28s %8ld\n", "redelivered (handled twice)", lines - u);
    printf("%-28s %8llu\n", "bound (2 x commit_every)",
           (unsigned long long)bound);
    committed = committed_sum(sc.bootstrap, topic, group, partitions);
    printf("%-28s %8lld\n", "committed offsets (sum)", (long long)committed);
    printf("%-28s %8llu\n", "commits", (unsigned long long)commits);
    printf("%-28s %8llu\n", "rebalance events",
           (unsigned long long)rebalances);
    printf("%-28s %8llu\n", "partitions lost (survivors)",
           (unsigned long long)survivors_lost);
    printf("\nredelivered records are the at-least-once price of the kill: "
           "handled by worker %d\nafter its last commit, handled again by the "
           "new owner. Nothing was lost.\neffects: %s\n",
           victim, dir);
    if (committed >= 0 && committed < RECORDS)
        printf("%lld records were handled but are past the group's committed "
               "offsets:\na member lost partitions in a rebalance (their marks "
               "are then never committed),\nso the next consumer of this group "
               "would handle them again: at-least-once.\n",
               (long long)(RECORDS - committed));
    /* The promise the table shows: a kill costs at most about two commit
     * intervals of work, counting what a next consumer of the group would
     * handle again (records past the committed offsets). */
    again = lines - u;
    if (committed >= 0 && committed < RECORDS)
        again += RECORDS - committed;
    if ((uint64_t)again > bound)
        fprintf(stderr,
                "demo: FAILED: %ld records handled more than once (or left "
                "past the committed offsets), above the bound of %llu "
                "(2 x commit_every_records)\n",
                again, (unsigned long long)bound);
    /* Only the killed worker's partitions may move without a commit. */
    if (survivors_lost)
        fprintf(stderr,
                "demo: FAILED: surviving workers lost %llu partition(s) in "
                "the rebalances (their marks were dropped, their records "
                "since the last commit handled again; see the LOST warnings "
                "above)\n",
                (unsigned long long)survivors_lost);
    sample_cluster_close(&sc);
    return u == RECORDS && (uint64_t)again <= bound && !survivors_lost ? 0
                                                                       : 1;
}
