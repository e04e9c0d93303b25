/*
 * tests/test_completion_window.c - the per-partition completion window of
 * ksafe_run with workers (lib/completion_window.c): records complete out of
 * order, and the commit position never passes an unfinished one.
 * KSAFE_CWIN_SEED replays the randomized case.
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"
#include "../lib/completion_window.h"

/* What the window handed back: the items it passed, and the last flags. */
typedef struct passed_log {
    const void *item[64];
    int last[64];
    int n;
} passed_log;

static void log_passed(void *item, int last, void *arg)
{
    passed_log *l = arg;
    l->item[l->n] = item;
    l->last[l->n++] = last;
}

START_TEST(in_order_moves_the_position_each_time)
{
    ksafe__cwin w;
    int64_t o;

    ck_assert_int_eq(ksafe__cwin_init(&w, 4), 0);
    ck_assert_int_eq(ksafe__cwin_position(&w), -1);
    ck_assert_int_eq(ksafe__cwin_oldest(&w), -1);
    for (o = 10; o < 14; o++)
        ck_assert_int_eq(ksafe__cwin_add(&w, o, NULL), 0);
    for (o = 10; o < 14; o++) {
        ck_assert_int_eq(ksafe__cwin_oldest(&w), o);
        ck_assert_int_eq(ksafe__cwin_complete(&w, o, NULL, NULL), 1);
        ck_assert_int_eq(ksafe__cwin_position(&w), o + 1);
    }
    ck_assert_uint_eq(ksafe__cwin_inflight(&w), 0);
    ksafe__cwin_free(&w);
}
END_TEST

START_TEST(a_gap_holds_the_position_until_it_completes)
{
    ksafe__cwin w;

    ck_assert_int_eq(ksafe__cwin_init(&w, 8), 0);
    /* offsets with holes, as compaction or transaction markers leave */
    ck_assert_int_eq(ksafe__cwin_add(&w, 5, NULL), 0);
    ck_assert_int_eq(ksafe__cwin_add(&w, 7, NULL), 0);
    ck_assert_int_eq(ksafe__cwin_add(&w, 8, NULL), 0);
    ck_assert_int_eq(ksafe__cwin_add(&w, 12, NULL), 0);
    ck_assert_int_eq(ksafe__cwin_complete(&w, 8, NULL, NULL), 0);
    ck_assert_int_eq(ksafe__cwin_complete(&w, 12, NULL, NULL), 0);
    ck_assert_int_eq(ksafe__cwin_position(&w), -1);
    ck_assert_uint_eq(ksafe__cwin_inflight(&w), 4);
    ck_assert_int_eq(ksafe__cwin_complete(&w, 5, NULL, NULL), 1);
    ck_assert_int_eq(ksafe__cwin_position(&w), 6); /* 7 is unfinished */
    ck_assert_int_eq(ksafe__cwin_oldest(&w), 7);
    ck_assert_int_eq(ksafe__cwin_complete(&w, 7, NULL, NULL), 1);
    ck_assert_int_eq(ksafe__cwin_position(&w), 13);
    ck_assert_uint_eq(ksafe__cwin_inflight(&w), 0);
    ksafe__cwin_free(&w);
}
END_TEST

START_TEST(bad_calls_are_refused_and_change_nothing)
{
    ksafe__cwin w;

    ck_assert_int_eq(ksafe__cwin_init(&w, 2), 0);
    ck_assert_int_eq(ksafe__cwin_add(&w, -1, NULL), KSAFE__CWIN_ORDER);
    ck_assert_int_eq(ksafe__cwin_add(&w, 3, NULL), 0);
    ck_assert_int_eq(ksafe__cwin_add(&w, 3, NULL), KSAFE__CWIN_ORDER);
    ck_assert_int_eq(ksafe__cwin_add(&w, 2, NULL), KSAFE__CWIN_ORDER);
    ck_assert_int_eq(ksafe__cwin_add(&w, 4, NULL), 0);
    ck_assert_int_eq(ksafe__cwin_add(&w, 5, NULL), KSAFE__CWIN_FULL);
    ck_assert_int_eq(ksafe__cwin_complete(&w, 9, NULL, NULL), KSAFE__CWIN_UNKNOWN);
    ck_assert_int_eq(ksafe__cwin_complete(&w, 1, NULL, NULL), KSAFE__CWIN_UNKNOWN);
    ck_assert_int_eq(ksafe__cwin_complete(&w, 4, NULL, NULL), 0);
    ck_assert_int_eq(ksafe__cwin_complete(&w, 4, NULL, NULL), KSAFE__CWIN_UNKNOWN);
    ck_assert_int_eq(ksafe__cwin_complete(&w, 3, NULL, NULL), 1);
    ck_assert_int_eq(ksafe__cwin_complete(&w, 3, NULL, NULL), KSAFE__CWIN_UNKNOWN);
    ck_assert_int_eq(ksafe__cwin_position(&w), 5);
    /* an empty window still refuses what lies behind its position */
    ck_assert_int_eq(ksafe__cwin_add(&w, 4, NULL), KSAFE__CWIN_ORDER);
    ck_assert_int_eq(ksafe__cwin_add(&w, 5, NULL), 0);
    ksafe__cwin_free(&w);
}
END_TEST

/* Items behind a gap come back when it closes, in offset order, the last
 * one flagged (the record to mark); reset names each leftover item, done or
 * still running. */
START_TEST(items_come_back_when_the_position_passes_them)
{
    ksafe__cwin w;
    passed_log l = {.n = 0};
    int it[6];

    ck_assert_int_eq(ksafe__cwin_init(&w, 8), 0);
    ck_assert_int_eq(ksafe__cwin_add(&w, 1, &it[1]), 0);
    ck_assert_int_eq(ksafe__cwin_add(&w, 2, &it[2]), 0);
    ck_assert_int_eq(ksafe__cwin_add(&w, 4, &it[4]), 0);
    ck_assert_int_eq(ksafe__cwin_add(&w, 5, &it[5]), 0);
    ck_assert_int_eq(ksafe__cwin_complete(&w, 2, log_passed, &l), 0);
    ck_assert_int_eq(ksafe__cwin_complete(&w, 4, log_passed, &l), 0);
    ck_assert_int_eq(l.n, 0);
    ck_assert_ptr_eq(ksafe__cwin_oldest_item(&w), &it[1]);
    ck_assert_int_eq(ksafe__cwin_complete(&w, 1, log_passed, &l), 1);
    ck_assert_ptr_eq(ksafe__cwin_oldest_item(&w), &it[5]);
    ck_assert_int_eq(l.n, 3);
    ck_assert_ptr_eq(l.item[0], &it[1]);
    ck_assert_ptr_eq(l.item[1], &it[2]);
    ck_assert_ptr_eq(l.item[2], &it[4]);
    ck_assert_int_eq(l.last[0] + l.last[1], 0);
    ck_assert_int_eq(l.last[2], 1);
    ck_assert_int_eq(ksafe__cwin_position(&w), 5);
    ksafe__cwin_free(&w);
}
END_TEST

static void log_forgotten(void *item, int done, void *arg)
{
    log_passed(item, done, arg); /* "last" records done here */
}

START_TEST(reset_names_what_it_forgets)
{
    ksafe__cwin w;
    passed_log l = {.n = 0};
    int it[4];

    ck_assert_int_eq(ksafe__cwin_init(&w, 4), 0);
    ck_assert_int_eq(ksafe__cwin_add(&w, 10, &it[0]), 0);
    ck_assert_int_eq(ksafe__cwin_add(&w, 11, &it[1]), 0);
    ck_assert_int_eq(ksafe__cwin_add(&w, 12, &it[2]), 0);
    ck_assert_int_eq(ksafe__cwin_complete(&w, 11, NULL, NULL), 0);
    ksafe__cwin_reset(&w, log_forgotten, &l);
    ck_assert_int_eq(l.n, 3);
    ck_assert_ptr_eq(l.item[0], &it[0]);
    ck_assert_int_eq(l.last[0], 0); /* running: its completion comes later */
    ck_assert_ptr_eq(l.item[1], &it[1]);
    ck_assert_int_eq(l.last[1], 1); /* done behind the gap: free it */
    ck_assert_int_eq(l.last[2], 0);
    ck_assert_uint_eq(ksafe__cwin_inflight(&w), 0);
    ksafe__cwin_free(&w);
}
END_TEST

START_TEST(late_completions_after_a_reset_are_unknown)
{
    ksafe__cwin w;

    ck_assert_int_eq(ksafe__cwin_init(&w, 4), 0);
    ck_assert_int_eq(ksafe__cwin_add(&w, 100, NULL), 0);
    ck_assert_int_eq(ksafe__cwin_add(&w, 101, NULL), 0);
    ck_assert_int_eq(ksafe__cwin_complete(&w, 100, NULL, NULL), 1);
    ksafe__cwin_reset(&w, NULL, NULL); /* revoked with 101 in flight */
    ck_assert_int_eq(ksafe__cwin_position(&w), -1);
    ck_assert_int_eq(ksafe__cwin_complete(&w, 101, NULL, NULL), KSAFE__CWIN_UNKNOWN);
    ck_assert_int_eq(ksafe__cwin_position(&w), -1);
    /* assigned again: redelivery from the committed offset is accepted */
    ck_assert_int_eq(ksafe__cwin_add(&w, 101, NULL), 0);
    ck_assert_int_eq(ksafe__cwin_complete(&w, 101, NULL, NULL), 1);
    ck_assert_int_eq(ksafe__cwin_position(&w), 102);
    ksafe__cwin_free(&w);
}
END_TEST

/* Random offsets with holes, added while the window has room and completed
 * in a random order, against a model: the position is always one past the
 * longest completed prefix of everything added, and the ring wraps many
 * times. */
START_TEST(random_orders_match_the_model)
{
    enum { N = 20000, CAP = 37 };
    static int64_t offs[N];
    static unsigned char done[N];
    const char *env = getenv("KSAFE_CWIN_SEED");
    unsigned seed = (unsigned)time(NULL) ^ (unsigned)getpid();
    size_t added = 0, prefix = 0, i;
    int64_t o = 0;
    ksafe__cwin w;
    passed_log l;

    if (env && *env) {
        char *end;
        unsigned long v = strtoul(env, &end, 10);
        ck_assert_msg(*env >= '0' && *env <= '9' && !*end && v <= UINT32_MAX,
                      "KSAFE_CWIN_SEED=\"%s\" is not a decimal seed", env);
        seed = (unsigned)v;
    }
    printf("completion_window: seed %u (KSAFE_CWIN_SEED replays it)\n", seed);
    fflush(stdout);
    srand(seed);
    ck_assert_int_eq(ksafe__cwin_init(&w, CAP), 0);
    while (prefix < N) {
        if (added < N && added - prefix < CAP && rand() % 3) {
            o += 1 + (rand() % 4 == 0 ? rand() % 5 : 0);
            offs[added] = o;
            ck_assert_int_eq(ksafe__cwin_add(&w, o, &offs[added]), 0);
            added++;
        } else if (added > prefix) {
            size_t pick = prefix + (size_t)rand() % (added - prefix);
            int r;
            if (done[pick])
                continue;
            l.n = 0;
            r = ksafe__cwin_complete(&w, offs[pick], log_passed, &l);
            done[pick] = 1;
            i = prefix;
            while (prefix < added && done[prefix])
                prefix++;
            ck_assert_int_eq(r, prefix != i);
            ck_assert_int_eq(l.n, (int)(prefix - i)); /* CAP < 64 */
            for (; i < prefix; i++) {
                ck_assert_ptr_eq(l.item[l.n - (int)(prefix - i)], &offs[i]);
                ck_assert_int_eq(l.last[l.n - (int)(prefix - i)],
                                 i + 1 == prefix);
            }
        }
        ck_assert_uint_eq(ksafe__cwin_inflight(&w), added - prefix);
        ck_assert_int_eq(ksafe__cwin_position(&w),
                         prefix ? offs[prefix - 1] + 1 : -1);
        ck_assert_int_eq(ksafe__cwin_oldest(&w),
                         added > prefix ? offs[prefix] : -1);
        if (added - prefix == CAP)
            ck_assert_int_eq(ksafe__cwin_add(&w, o + 1, NULL), KSAFE__CWIN_FULL);
    }
    ksafe__cwin_free(&w);
}
END_TEST

static Suite *completion_window_suite(void)
{
    Suite *s = suite_create("completion_window");
    TCase *t = tcase_create("window");

    tcase_add_test(t, in_order_moves_the_position_each_time);
    tcase_add_test(t, a_gap_holds_the_position_until_it_completes);
    tcase_add_test(t, bad_calls_are_refused_and_change_nothing);
    tcase_add_test(t, items_come_back_when_the_position_passes_them);
    tcase_add_test(t, reset_names_what_it_forgets);
    tcase_add_test(t, late_completions_after_a_reset_are_unknown);
    tcase_add_test(t, random_orders_match_the_model);
    suite_add_tcase(s, t);
    return s;
}

KSAFE_TEST_MAIN(completion_window_suite)
