/*
 * tests/test_key_lanes.c - the order keeper of ksafe_run with workers
 * (lib/key_lanes.c): one record at a time per lane, in arrival order, other
 * lanes free to run; revoking a partition unlinks only its waiting records.
 * KSAFE_LANES_SEED replays the randomized case.
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"
#include "../lib/key_lanes.h"

/* The owner of partition p of the test's one topic. */
static const char owners[64];
#define OWNER(p) ((const void *)&owners[p])

typedef struct rec {
    ksafe__lane_link link; /* first: a link is its record */
    int32_t partition;
    int key; /* -1: no key */
    int seq; /* per (partition, key): arrival order */
    int state; /* 0 waiting, 1 running, 2 done, 3 dropped */
} rec;

static uint32_t lane_of(const ksafe__lanes *L, const rec *r)
{
    char k[16];
    int n = snprintf(k, sizeof k, "key-%d", r->key);
    return ksafe__lanes_pick(L, OWNER(r->partition), r->key < 0 ? NULL : k,
                             (size_t)n);
}

START_TEST(same_lane_waits_other_lanes_run)
{
    ksafe__lanes L;
    rec a = {.partition = 0, .key = 1}, b = {.partition = 0, .key = 1};
    rec c = {.partition = 0, .key = 2};
    uint32_t la, lc;

    ck_assert_int_eq(ksafe__lanes_init(&L, 1024), 0);
    ck_assert_uint_eq(L.mask, 1023);
    la = lane_of(&L, &a);
    lc = lane_of(&L, &c);
    ck_assert_uint_ne(la, lc); /* these two do not collide at 1024 lanes */
    ck_assert_uint_eq(la, lane_of(&L, &b));
    ck_assert_int_eq(ksafe__lanes_push(&L, &a.link, la, OWNER(0)), 1);
    ck_assert_int_eq(ksafe__lanes_push(&L, &b.link, la, OWNER(0)), 0);
    ck_assert_int_eq(ksafe__lanes_push(&L, &c.link, lc, OWNER(0)), 1);
    ck_assert_uint_eq(L.queued, 1);
    /* b is not the head: finishing it is refused and changes nothing */
    ck_assert_ptr_null(ksafe__lanes_done(&L, &b.link));
    ck_assert_uint_eq(L.queued, 1);
    ck_assert_ptr_eq(ksafe__lanes_done(&L, &a.link), &b.link);
    ck_assert_uint_eq(L.queued, 0);
    ck_assert_ptr_null(ksafe__lanes_done(&L, &b.link));
    ck_assert_ptr_null(ksafe__lanes_done(&L, &c.link));
    /* idle again: the next record runs at once */
    ck_assert_int_eq(ksafe__lanes_push(&L, &a.link, la, OWNER(0)), 1);
    ksafe__lanes_free(&L);
}
END_TEST

START_TEST(no_key_follows_the_partition_lane)
{
    ksafe__lanes L;

    ck_assert_int_eq(ksafe__lanes_init(&L, 100), 0);
    ck_assert_uint_eq(L.mask, 127); /* rounded up to a power of two */
    ck_assert_uint_eq(ksafe__lanes_pick(&L, OWNER(3), NULL, 0),
                      ksafe__lanes_pick(&L, OWNER(3), NULL, 0));
    ck_assert_uint_ne(ksafe__lanes_pick(&L, OWNER(3), NULL, 0),
                      ksafe__lanes_pick(&L, OWNER(3), "", 0)); /* empty key != none */
    ksafe__lanes_free(&L);
    ck_assert_int_eq(ksafe__lanes_init(&L, 1), 0);
    ck_assert_uint_eq(L.mask, 0); /* one lane: everything in order */
    ck_assert_uint_eq(ksafe__lanes_pick(&L, OWNER(9), "x", 1), 0);
    ksafe__lanes_free(&L);
}
END_TEST

static void mark_dropped(ksafe__lane_link *l, void *opaque)
{
    (*(int *)opaque)++;
    ((rec *)l)->state = 3;
}

START_TEST(drop_unlinks_only_waiting_records_of_the_partition)
{
    ksafe__lanes L;
    rec r[6] = {{.partition = 0}, {.partition = 1}, {.partition = 0},
                {.partition = 1}, {.partition = 1}, {.partition = 0}};
    int dropped = 0, i;

    ck_assert_int_eq(ksafe__lanes_init(&L, 1), 0); /* all collide */
    for (i = 0; i < 6; i++)
        ck_assert_int_eq(ksafe__lanes_push(&L, &r[i].link, 0, OWNER(r[i].partition)),
                         i == 0);
    ck_assert_uint_eq(ksafe__lanes_drop(&L, OWNER(0), mark_dropped, &dropped), 2);
    ck_assert_int_eq(dropped, 2);
    ck_assert_int_eq(r[2].state, 3);
    ck_assert_int_eq(r[5].state, 3);
    ck_assert_int_eq(r[0].state, 0); /* the running head stays */
    ck_assert_uint_eq(L.queued, 3);
    ck_assert_ptr_eq(ksafe__lanes_done(&L, &r[0].link), &r[1].link);
    ck_assert_ptr_eq(ksafe__lanes_done(&L, &r[1].link), &r[3].link);
    ck_assert_ptr_eq(ksafe__lanes_done(&L, &r[3].link), &r[4].link);
    /* the tail moved back correctly: a push lands behind r[4] */
    ck_assert_int_eq(ksafe__lanes_push(&L, &r[2].link, 0, OWNER(0)), 0);
    ck_assert_ptr_eq(ksafe__lanes_done(&L, &r[4].link), &r[2].link);
    ck_assert_ptr_null(ksafe__lanes_done(&L, &r[2].link));
    ck_assert_uint_eq(L.queued, 0);
    ksafe__lanes_free(&L);
}
END_TEST

/* Records of 4 partitions and 50 keys (and some without), run by a pretend
 * pool that finishes a random running record at each step, with random
 * partition revocations: per (partition, key) the records finish in arrival
 * order, at most one record per lane runs, and every record ends done or
 * dropped. 64 lanes, so keys collide too. */
START_TEST(random_runs_keep_per_key_order)
{
    enum { N = 20000, P = 4, K = 50 };
    static rec r[N];
    static rec *running[N];
    static int next_seq[P][K + 1], last_done[P][K + 1];
    static int lane_busy[64];
    const char *env = getenv("KSAFE_LANES_SEED");
    unsigned seed = (unsigned)time(NULL) ^ (unsigned)getpid();
    size_t n_running = 0, pushed = 0, finished = 0;
    int dropped = 0, i, j;
    ksafe__lanes L;

    if (env && *env) {
        char *end;
        unsigned long v = strtoul(env, &end, 10);
        ck_assert_msg(*env >= '0' && *env <= '9' && !*end && v <= UINT32_MAX,
                      "KSAFE_LANES_SEED=\"%s\" is not a decimal seed", env);
        seed = (unsigned)v;
    }
    printf("key_lanes: seed %u (KSAFE_LANES_SEED replays it)\n", seed);
    fflush(stdout);
    srand(seed);
    for (i = 0; i < P; i++)
        for (j = 0; j <= K; j++)
            last_done[i][j] = -1;
    ck_assert_int_eq(ksafe__lanes_init(&L, 64), 0);
    while (finished + (size_t)dropped < N) {
        int what = rand() % 100;
        if (pushed < N && what < 55) {
            rec *x = &r[pushed++];
            uint32_t lane;
            x->partition = rand() % P;
            x->key = rand() % 10 ? rand() % K : -1;
            x->seq = next_seq[x->partition][x->key + 1]++;
            lane = lane_of(&L, x);
            if (ksafe__lanes_push(&L, &x->link, lane, OWNER(x->partition))) {
                ck_assert_int_eq(lane_busy[lane], 0);
                lane_busy[lane] = 1;
                x->state = 1;
                running[n_running++] = x;
            }
        } else if (n_running && what < 98) {
            size_t pick = (size_t)rand() % n_running;
            rec *x = running[pick], *nx;
            running[pick] = running[--n_running];
            if (x->state == 1) { /* not dropped meanwhile */
                ck_assert_int_eq(x->seq, last_done[x->partition][x->key + 1] + 1);
                last_done[x->partition][x->key + 1] = x->seq;
            }
            x->state = 2;
            finished++;
            nx = (rec *)ksafe__lanes_done(&L, &x->link);
            if (nx) {
                ck_assert_int_eq(nx->state, 0);
                nx->state = 1;
                running[n_running++] = nx;
            } else {
                lane_busy[x->link.lane] = 0;
            }
        } else if (what >= 98) {
            /* revoke: waiting records dropped; running ones finish with
             * their results discarded; sequences restart after them */
            int p = rand() % P;
            size_t k;
            dropped += (int)ksafe__lanes_drop(&L, OWNER(p), mark_dropped, &(int){0});
            for (k = 0; k < n_running; k++)
                if (running[k]->partition == p)
                    running[k]->state = 4; /* result discarded */
            for (j = 0; j <= K; j++)
                last_done[p][j] = next_seq[p][j] - 1;
        }
        ck_assert_uint_le(L.queued, N);
    }
    for (i = 0; i < N; i++)
        ck_assert_int_ge(r[i].state, 2);
    ck_assert_uint_eq(L.queued, 0);
    ksafe__lanes_free(&L);
}
END_TEST

static Suite *key_lanes_suite(void)
{
    Suite *s = suite_create("key_lanes");
    TCase *t = tcase_create("lanes");

    tcase_add_test(t, same_lane_waits_other_lanes_run);
    tcase_add_test(t, no_key_follows_the_partition_lane);
    tcase_add_test(t, drop_unlinks_only_waiting_records_of_the_partition);
    tcase_add_test(t, random_runs_keep_per_key_order);
    suite_add_tcase(s, t);
    return s;
}

KSAFE_TEST_MAIN(key_lanes_suite)
