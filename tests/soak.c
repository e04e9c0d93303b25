/*
 * tests/soak.c - the soak: random faults on a seeded schedule while a safe
 * producer writes and two consumer groups read through ksafe_run(), members
 * joining and leaving. At the end: nothing produced is missing, duplicates
 * only where the at-least-once policy allows them, and the effects written
 * under a durable SQLite dedup store have no duplicates at all.
 *
 *   soak [--seconds N] [--rate R] [--members M] [--seed S] [--verbose]
 *
 * N seconds of faults (default 60) at R records/s (default 300), 1..M
 * members per group (2..3, default 3). The seed (KSAFE_SOAK_SEED or --seed;
 * default from the clock) is printed first: it replays the schedule of
 * faults and membership changes (thread timing still differs run to run).
 * Exit 0 when every check passed, 1 with the reason and the seed otherwise.
 *
 * Groups: "plain" members record every handling in memory, so duplicates are
 * counted per offset and per partition episode (an owner's hold of a
 * partition, from on_assigned to on_revoked/on_lost); the same record at a
 * second offset is a copy the embedded cluster wrote, counted apart. "dedup" members write
 * an effect row per record into SQLite inside the transaction of a SQLite
 * dedup store on the same connection (the loop's dedup_store option).
 *
 * The duplicate bound. Records are marked after their handler succeeded and
 * the loop commits them every 200 records or 500 ms, and synchronously at
 * revoke. After a clean revoke (its commit accepted) the next owner starts
 * after every record the old one handled, so a record may be handled again
 * only when every earlier handling of it was in an unclean episode (lost,
 * revoke commit failed, rebalance failed, loop ended with an error): that is
 * checked offset by offset. Duplicates are therefore at most the records
 * handled in unclean episodes, the figure printed as the bound.
 */
#include "soak.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum { F_PRODUCE, F_FETCH, F_COMMIT, F_COORD, F_DOWN, F_RTT, F_KINDS };
static const char *const fault_names[F_KINDS] = {
    "produce-errors", "fetch-errors", "commit-errors", "coordinator-errors",
    "broker-down", "rtt"};

typedef struct args {
    int seconds, rate, members, verbose;
    uint64_t seed;
} args;

static uint64_t rng_state;

/* splitmix64: small, and the same sequence everywhere for one seed */
static uint64_t rng(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static int rng_in(int lo, int hi) /* [lo, hi] */
{
    return lo + (int)(rng() % (uint64_t)(hi - lo + 1));
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) && errno == EINTR)
        ;
}

/* A whole decimal number or nothing: "12x", "" and "-1" are refused, never read
 * as 0 (a typo in a seed must not replay another schedule). */
static int parse_u64(const char *v, uint64_t *out)
{
    char *end;
    unsigned long long n;

    if (!v || *v < '0' || *v > '9')
        return -1;
    errno = 0;
    n = strtoull(v, &end, 10);
    if (errno || *end)
        return -1;
    *out = n;
    return 0;
}

static int parse_int(const char *v, int *out)
{
    uint64_t n;

    if (parse_u64(v, &n) || n > 1000000000u)
        return -1;
    *out = (int)n;
    return 0;
}

static int parse_args(int argc, char **argv, args *a)
{
    const char *env = getenv("KSAFE_SOAK_SEED");
    int i;

    a->seconds = 60;
    a->rate = 300;
    a->members = 3;
    a->verbose = 0;
    a->seed = ((uint64_t)time(NULL) << 16) ^ (uint64_t)getpid();
    if (env && *env && parse_u64(env, &a->seed)) {
        fprintf(stderr, "soak: KSAFE_SOAK_SEED=\"%s\" is not a decimal seed\n",
                env);
        return -1;
    }
    for (i = 1; i < argc; i++) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        int bad;
        if (!strcmp(argv[i], "--verbose")) {
            a->verbose = 1;
            continue;
        }
        if (!v)
            goto usage;
        if (!strcmp(argv[i], "--seconds"))
            bad = parse_int(v, &a->seconds);
        else if (!strcmp(argv[i], "--rate"))
            bad = parse_int(v, &a->rate);
        else if (!strcmp(argv[i], "--members"))
            bad = parse_int(v, &a->members);
        else if (!strcmp(argv[i], "--seed"))
            bad = parse_u64(v, &a->seed);
        else
            goto usage;
        if (bad) {
            fprintf(stderr, "soak: %s \"%s\" is not a whole number\n", argv[i], v);
            goto usage;
        }
        i++;
    }
    if (a->seconds >= 10 && a->rate >= 1 && a->rate <= 100000 &&
        a->members >= 2 && a->members <= 3)
        return 0;
usage:
    fprintf(stderr, "usage: soak [--seconds N>=10] [--rate R] "
                    "[--members 2|3] [--seed S] [--verbose]\n");
    return -1;
}

/* ---- faults ------------------------------------------------------------ */

typedef struct faults {
    ksafe_mock_cluster *mc;
    uint64_t count[F_KINDS]; /* errors pushed / brokers downed / rtt spells */
    int64_t down_until[4], rtt_until[4];
} faults;

static void push(faults *f, int kind, int api, const rd_kafka_resp_err_t *pool,
                 int pool_n, int max)
{
    rd_kafka_resp_err_t e[8];
    ksafe_error err;
    int i, n = rng_in(1, max);

    for (i = 0; i < n; i++)
        e[i] = pool[rng_in(0, pool_n - 1)];
    if (!ksafe_mock_cluster_push_request_errors(f->mc, api, (size_t)n, e, &err))
        f->count[kind] += (uint64_t)n;
}

static void fault_once(faults *f, int64_t t)
{
    static const rd_kafka_resp_err_t produce[] = {
        RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
        RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION};
    static const rd_kafka_resp_err_t fetch[] = {
        RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
        RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE};
    static const rd_kafka_resp_err_t commit[] = {
        RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS,
        RD_KAFKA_RESP_ERR_NOT_COORDINATOR,
        RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS,
        RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT};
    /* Heartbeat (12): a moved coordinator, or a rebalance forced on the
     * member that gets it. */
    static const rd_kafka_resp_err_t coord[] = {
        RD_KAFKA_RESP_ERR_NOT_COORDINATOR,
        RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE,
        RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS};
    int kind = rng_in(0, F_KINDS - 1), b = rng_in(1, 3), i, down = 0;
    ksafe_error err;

    switch (kind) {
    case F_PRODUCE: push(f, kind, 0, produce, 2, 5); break;
    case F_FETCH: push(f, kind, 1, fetch, 2, 5); break;
    case F_COMMIT: push(f, kind, 8, commit, 4, 3); break;
    case F_COORD: push(f, kind, 12, coord, 3, 2); break;
    case F_DOWN:
        for (i = 1; i <= 3; i++)
            down += f->down_until[i] > 0;
        if (down || f->down_until[b]) /* one broker at a time */
            break;
        if (!ksafe_mock_cluster_broker_down(f->mc, b, &err)) {
            f->down_until[b] = t + rng_in(1000, 5000);
            f->count[kind]++;
        }
        break;
    case F_RTT:
        if (f->rtt_until[b])
            break;
        rd_kafka_mock_broker_set_rtt(ksafe_mock_cluster_rdkafka(f->mc), b,
                                     rng_in(20, 300));
        f->rtt_until[b] = t + rng_in(2000, 6000);
        f->count[kind]++;
        break;
    }
}

/* Ends broker spells whose time came (all of them with `all`). */
static void fault_restore(faults *f, int64_t t, int all)
{
    ksafe_error err;
    int b;

    for (b = 1; b <= 3; b++) {
        if (f->down_until[b] && (all || t >= f->down_until[b])) {
            ksafe_mock_cluster_broker_up(f->mc, b, &err);
            f->down_until[b] = 0;
        }
        if (f->rtt_until[b] && (all || t >= f->rtt_until[b])) {
            rd_kafka_mock_broker_set_rtt(ksafe_mock_cluster_rdkafka(f->mc), b,
                                         0);
            f->rtt_until[b] = 0;
        }
    }
}

/* One membership change: a join while a group has room, else a leave. */
static void member_change(soak *s, int max)
{
    int g = rng_in(0, GROUPS - 1), n = soak_running(s, g), i;
    int join = n <= 1 || (n < max && rng_in(0, 1));
    ksafe_error err;

    if (join) {
        if (soak_member_start(s, g, &err))
            soak_odd(s, "a member could not start: %s", err.message);
        return;
    }
    /* the leaver: one of the group's running members, by the seed */
    i = rng_in(0, n - 1);
    for (int k = 0; k < s->n_members; k++) {
        member *m = s->m[k];
        if (m->group == g && !m->stopping && i-- == 0) {
            soak_member_stop(m);
            return;
        }
    }
}

/* ---- checks ------------------------------------------------------------ */

typedef struct tally {
    uint64_t lost, lost_no_offset, dups, bound, bad_dups, unowned;
    int64_t first_lost, bad_o;
    int bad_p, bad_member;
    int64_t eff_rows, eff_distinct;
    uint64_t eff_lost;
    int64_t first_eff_lost;
} tally;

/* Every delivered record handled by the plain group and its effect in the
 * effects table? */
static int complete(soak *s, sqlite3 *db, int64_t *eff_distinct)
{
    int64_t rows;
    uint64_t plain;

    pthread_mutex_lock(&s->mu);
    plain = s->plain_distinct;
    pthread_mutex_unlock(&s->mu);
    if (soak_effects(s, db, &rows, eff_distinct))
        return 0;
    return plain >= s->delivered && (uint64_t)*eff_distinct >= s->delivered;
}

/* Delivered records without an effect row. */
static void effects_lost(soak *s, sqlite3 *db, tally *t)
{
    uint8_t *seen = calloc(s->cap, 1);
    sqlite3_stmt *st;
    uint64_t q;
    int64_t v;

    t->first_eff_lost = -1;
    if (!seen || sqlite3_prepare_v2(db, "SELECT DISTINCT seq FROM effects",
                                    -1, &st, NULL) != SQLITE_OK) {
        soak_odd(s, "effects table: cannot read it");
        free(seen);
        return;
    }
    while (sqlite3_step(st) == SQLITE_ROW)
        if ((v = sqlite3_column_int64(st, 0)) >= 0 && (uint64_t)v < s->cap)
            seen[v] = 1;
    sqlite3_finalize(st);
    for (q = 0; q < s->cap; q++) {
        if (s->recs[q].state == 1 && !seen[q] && !t->eff_lost++)
            t->first_eff_lost = (int64_t)q;
        if (seen[q] && s->recs[q].state != 1 && s->recs[q].state != 3)
            soak_odd(s, "record %llu has an effect but was never delivered",
                     (unsigned long long)q);
    }
    free(seen);
}

static void check(soak *s, sqlite3 *db, tally *t)
{
    uint64_t q;
    size_t e;
    int i, p;
    int64_t o;

    memset(t, 0, sizeof(*t));
    t->first_lost = -1;
    for (e = 0; e < s->n_eps; e++)
        if (s->eps[e].kind == EP_UNCLEAN && s->eps[e].group == GROUP_PLAIN)
            t->bound += s->eps[e].handled;
        else if (s->eps[e].kind == EP_RUNNING)
            soak_odd(s, "member %d's hold of partition %d never ended",
                     s->eps[e].member, s->eps[e].partition);
    for (q = 0; q < s->cap; q++) {
        rec *r = &s->recs[q];
        if (r->state == 1 && !r->handled) {
            if (!t->lost++)
                t->first_lost = (int64_t)q;
            t->lost_no_offset += r->doff < 0;
        }
        if (r->state != 1 && r->state != 3 && r->handled && !t->unowned++)
            soak_odd(s, "record %llu was handled but never delivered",
                     (unsigned long long)q);
    }
    /* Redeliveries: one offset handled more than once. */
    for (p = 0; p < SOAK_PARTS; p++)
        for (o = 0; o < s->n_slots[p]; o++) {
            slot *sl = &s->slots[p][o];
            if (sl->nh < 2)
                continue;
            t->dups += sl->nh - 1u;
            for (i = 0; i < sl->nh - 1 && i < SOAK_KEEP_EPS; i++)
                if (s->eps[sl->ep[i]].kind != EP_UNCLEAN) {
                    if (!t->bad_dups++) {
                        t->bad_p = p;
                        t->bad_o = o;
                        t->bad_member = s->eps[sl->ep[i]].member;
                    }
                    break;
                }
        }
    if (soak_effects(s, db, &t->eff_rows, &t->eff_distinct))
        soak_odd(s, "effects table: %s", sqlite3_errmsg(db));
    effects_lost(s, db, t);
}

static sqlite3 *effects_db(soak *s)
{
    sqlite3 *db = NULL;
    ksafe_dedup_store *st = NULL;
    ksafe_dedup_sqlite_options so;
    ksafe_error err;

    if (sqlite3_open(s->db_path, &db) != SQLITE_OK ||
        sqlite3_busy_timeout(db, 30000) ||
        sqlite3_exec(db, "PRAGMA journal_mode=WAL;"
                         "CREATE TABLE effects(seq INTEGER NOT NULL, "
                         "part INTEGER, off INTEGER, member INTEGER)",
                     NULL, NULL, NULL) != SQLITE_OK) {
        fprintf(stderr, "soak: %s: %s\n", s->db_path,
                db ? sqlite3_errmsg(db) : "no memory");
        sqlite3_close(db);
        return NULL;
    }
    /* the store's tables, once, before members open theirs */
    ksafe_dedup_sqlite_options_init(&so, KSAFE_DEDUP_SQLITE_OPTIONS_VERSION);
    so.db = db;
    if (ksafe_dedup_sqlite_new(&st, &so, &err)) {
        fprintf(stderr, "soak: dedup store: %s\n", err.message);
        sqlite3_close(db);
        return NULL;
    }
    ksafe_dedup_store_free(st);
    return db;
}

int main(int argc, char **argv)
{
    args a;
    soak s;
    faults f;
    soak_producer pr;
    tally ty;
    ksafe_mock_cluster *mc = NULL;
    ksafe_error err;
    sqlite3 *db;
    char dir[] = "/tmp/ksafe-soak-XXXXXX", path[64];
    int64_t t0, t, next_fault, next_member, deadline, eff = 0;
    int ok, i;

    if (parse_args(argc, argv, &a))
        return 2;
    setvbuf(stdout, NULL, _IOLBF, 0);
    printf("soak: seed %llu (KSAFE_SOAK_SEED=%llu replays the schedule), "
           "%d s of faults, %d records/s, up to %d members per group, "
           "librdkafka %s\n",
           (unsigned long long)a.seed, (unsigned long long)a.seed, a.seconds,
           a.rate, a.members, rd_kafka_version_str());
    rng_state = a.seed;
    memset(&s, 0, sizeof(s));
    memset(&f, 0, sizeof(f));
    memset(&pr, 0, sizeof(pr));
    pthread_mutex_init(&s.mu, NULL);
    s.verbose = a.verbose;
    s.topic = "soak";
    s.group[GROUP_PLAIN] = "soak-plain";
    s.group[GROUP_DEDUP] = "soak-dedup";
    s.cap = (uint64_t)a.seconds * (uint64_t)a.rate + 1000;
    if (!(s.recs = calloc(s.cap, sizeof(*s.recs))) || !mkdtemp(dir))
        return 2;
    snprintf(path, sizeof(path), "%s/effects.db", dir);
    s.db_path = path;
    if (!(db = effects_db(&s)) ||
        ksafe_dedup_key_new(&s.key, KSAFE_DEDUP_KEY_RECORD_KEY, NULL, &err) ||
        ksafe_mock_cluster_new(&mc, 3, &err) ||
        ksafe_mock_cluster_create_topic(mc, s.topic, SOAK_PARTS, &err)) {
        fprintf(stderr, "soak: setup: %s\n", err.message);
        return 2;
    }
    f.mc = mc;
    s.bootstrap = ksafe_mock_cluster_bootstrap(mc);

    /* Two members per group to start, then the schedule. */
    for (i = 0; i < 2 * GROUPS; i++)
        if (soak_member_start(&s, i % GROUPS, &err)) {
            fprintf(stderr, "soak: member: %s\n", err.message);
            return 2;
        }
    pr.s = &s;
    pr.rate = a.rate;
    pthread_create(&pr.th, NULL, soak_producer_main, &pr);
    t0 = soak_now_ms();
    next_fault = t0 + 2000;
    next_member = t0 + 8000;
    while ((t = soak_now_ms()) < t0 + (int64_t)a.seconds * 1000) {
        fault_restore(&f, t, 0);
        if (t >= next_fault) {
            fault_once(&f, t);
            next_fault = t + rng_in(300, 2500);
        }
        if (t >= next_member) {
            member_change(&s, a.members);
            /* room for the rebalance: a join or leave takes about the
             * session timeout - 1 s on the embedded cluster */
            next_member = t + rng_in(6000, 12000);
        }
        soak_reap(&s, 0);
        sleep_ms(100);
    }

    /* Faults stop; the producer finishes; the members catch up. */
    fault_restore(&f, soak_now_ms(), 1);
    atomic_store(&pr.stop, 1);
    pthread_join(pr.th, NULL);
    if (pr.rc && pr.rc != -1)
        soak_odd(&s, "producer: %d %s", pr.rc, pr.err.message);
    deadline = soak_now_ms() + 180000;
    while (!(ok = complete(&s, db, &eff)) && soak_now_ms() < deadline) {
        soak_reap(&s, 0);
        sleep_ms(500);
    }
    if (!ok)
        fprintf(stderr, "soak: after 180 s of settling: plain group handled "
                "%llu distinct, effects %lld distinct, of %llu delivered\n",
                (unsigned long long)s.plain_distinct, (long long)eff,
                (unsigned long long)s.delivered);
    for (i = 0; i < s.n_members; i++)
        soak_member_stop(s.m[i]);
    soak_reap(&s, 1);
    check(&s, db, &ty);
    ksafe_mock_cluster_free(mc);

    printf("soak: seed %llu: produced %llu (sent %llu, failed %llu), "
           "handled %llu, distinct %llu, lost %llu, duplicates %llu "
           "(bound %llu: records handled in %s; written twice by the "
           "embedded cluster %llu; acknowledged without an offset %llu), "
           "faults",
           (unsigned long long)a.seed, (unsigned long long)s.delivered,
           (unsigned long long)atomic_load(&s.sent),
           (unsigned long long)s.failed, (unsigned long long)s.plain_handled,
           (unsigned long long)s.plain_distinct, (unsigned long long)ty.lost,
           (unsigned long long)ty.dups, (unsigned long long)ty.bound,
           "unclean hand-overs", (unsigned long long)s.copies,
           (unsigned long long)s.no_offset);
    for (i = 0; i < F_KINDS; i++)
        printf(" %s=%llu", fault_names[i], (unsigned long long)f.count[i]);
    printf(", joins %d+%d leaves %d+%d, partitions revoked %llu lost %llu, "
           "dedup: effects %lld distinct %lld lost %llu duplicates %lld, "
           "redeliveries skipped by the store %llu\n",
           s.joins[0], s.joins[1], s.leaves[0], s.leaves[1],
           (unsigned long long)s.parts_revoked,
           (unsigned long long)s.parts_lost, (long long)ty.eff_rows,
           (long long)ty.eff_distinct, (unsigned long long)ty.eff_lost,
           (long long)(ty.eff_rows - ty.eff_distinct),
           (unsigned long long)s.store_skipped);

    ok = 1;
#define FAIL(...)                                                            \
    do {                                                                     \
        fprintf(stderr, "soak: FAILED (KSAFE_SOAK_SEED=%llu): ",             \
                (unsigned long long)a.seed);                                 \
        fprintf(stderr, __VA_ARGS__);                                        \
        fprintf(stderr, "\n");                                               \
        ok = 0;                                                              \
    } while (0)
    if (ty.lost)
        FAIL("%llu delivered record(s) never handled by the plain group "
             "(%llu of them acknowledged without an offset), the first: "
             "%lld at [%d] %lld", (unsigned long long)ty.lost,
             (unsigned long long)ty.lost_no_offset, (long long)ty.first_lost,
             s.recs[ty.first_lost].dp, (long long)s.recs[ty.first_lost].doff);
    if (ty.bad_dups)
        FAIL("%llu offset(s) handled again after a clean hand-over (the "
             "commit at revoke covered them), the first: [%d] %lld, handled "
             "before by member %d", (unsigned long long)ty.bad_dups, ty.bad_p,
             (long long)ty.bad_o, ty.bad_member);
    if (ty.eff_lost)
        FAIL("%llu delivered record(s) without an effect in the dedup group, "
             "the first: %lld at [%d] %lld", (unsigned long long)ty.eff_lost,
             (long long)ty.first_eff_lost, s.recs[ty.first_eff_lost].dp,
             (long long)s.recs[ty.first_eff_lost].doff);
    if (ty.eff_rows != ty.eff_distinct)
        FAIL("%lld duplicate effect(s) under the dedup store",
             (long long)(ty.eff_rows - ty.eff_distinct));
    if (s.delivered + s.failed != atomic_load(&s.sent))
        FAIL("%llu record(s) sent without a delivery report",
             (unsigned long long)(atomic_load(&s.sent) - s.delivered -
                                  s.failed));
    if (s.odd)
        FAIL("%llu impossible event(s), the first: %s",
             (unsigned long long)s.odd, s.odd_msg);
    sqlite3_close(db);
    for (i = 0; i < s.n_members; i++)
        free(s.m[i]);
    for (i = 0; i < SOAK_PARTS; i++)
        free(s.slots[i]);
    free(s.eps);
    free(s.recs);
    ksafe_dedup_key_free(s.key);
    pthread_mutex_destroy(&s.mu);
    if (ok) {
        unlink(path);
        snprintf(path, sizeof(path), "%s/effects.db-wal", dir);
        unlink(path);
        snprintf(path, sizeof(path), "%s/effects.db-shm", dir);
        unlink(path);
        rmdir(dir);
        printf("soak: passed\n");
    } else {
        fprintf(stderr, "soak: effects database kept: %s\n", s.db_path);
    }
    return ok ? 0 : 1;
}
