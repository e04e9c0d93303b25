/*
 * tests/test_relay_real.c - the exactly-once guarantees of ksafe_relay_run()
 * that only a real Kafka broker can show, each relay a child process
 * (tests/relay_worker.c, $KSAFE_RELAY_WORKER) that can be killed:
 *
 *   - read_committed output equals the input transformed exactly once, in
 *     input order per key, across transform failures that abort, SIGKILLs
 *     of the relay at random points (seeded, the seed printed), a
 *     rebalance in the middle of transactions, and fencing;
 *   - the group's committed offsets equal the end of the input;
 *   - a second producer with the same transactional_id fences a running
 *     relay: it stops with KSAFE_EFATAL saying a newer instance took over.
 *
 *   test-relay-real                 needs KSAFE_TEST_BOOTSTRAP; without it
 *                                   exits 77 (meson reports SKIP)
 *   test-relay-real --embedded-part the same flows on the embedded cluster
 *                                   with what it can show: every input is
 *                                   transformed at least once (it stores no
 *                                   transactional offsets, hides no aborted
 *                                   records, fences nobody)
 */
#include <unistd.h>

#include "relay_kit.h"

static int embedded_part;

/* ---- tests -------------------------------------------------------------- */

/*
 * Every 50th input fails its first transform call after its output was
 * emitted and put on the broker: each failure aborts a transaction with
 * output in the log, and the batch is done again. read_committed shows each
 * output once; read_uncommitted shows the aborted ones too, which proves
 * they were there to hide.
 */
START_TEST(abort_output_is_hidden_and_redone_once)
{
    relay_case k;
    worker w;
    worker_result r;
    char txn_id[64];
    output *o;

    case_new(&k, "rr-abort", 1000, 0);
    ksafe_test_unique_name(txn_id, sizeof(txn_id), "rr-abort-txn");
    worker_start(&w, &k, txn_id, 50, 0, 100, 100);
    wait_relayed(&k, 180000);
    worker_stop_ok(&w, &r);
    ck_assert_msg(r.retries >= 20 && r.aborts >= 20,
                  "20 inputs failed once: %llu retries, %llu aborts",
                  r.retries, r.aborts);
    assert_exactly_once(&k);
    if (ksafe_test_cluster_is_embedded(tc))
        return;
    o = malloc(sizeof(*o));
    ck_assert_ptr_nonnull(o);
    read_output(&k, "read_uncommitted", o);
    ck_assert_msg(o->total >= k.n + 20,
                  "read_uncommitted sees %d records for %d inputs: the "
                  "aborted output never reached the broker, so its absence "
                  "for read_committed proves nothing",
                  o->total, k.n);
    free(o);
}
END_TEST

/*
 * The relay is SIGKILLed at random points - inside transforms, between
 * them, in commits - and restarted with the same transactional id, which
 * aborts what the killed one left open. The seed is printed: the same seed
 * chooses the same kill points.
 */
START_TEST(sigkill_at_random_points_then_restart)
{
    const char *env = getenv("KSAFE_RELAY_SEED");
    unsigned seed = env && *env ? (unsigned)strtoul(env, NULL, 10)
                                : (unsigned)time(NULL) ^ (unsigned)getpid();
    relay_case k;
    worker w;
    worker_result r;
    char txn_id[64];
    int kill_no;

    printf("sigkill_at_random_points_then_restart: seed %u "
           "(KSAFE_RELAY_SEED=%u repeats it)\n",
           seed, seed);
    srand(seed);
    /* 1000 transform calls a second: a worker makes at most ~900 before
     * its kill, so the four never finish the input between them and
     * each has a kill point ahead of it. */
    case_new(&k, "rr-kill", 5000, 0);
    ksafe_test_unique_name(txn_id, sizeof(txn_id), "rr-kill-txn");
    for (kill_no = 0; kill_no < 4; kill_no++) {
        long calls = 1 + rand() % 600;
        int extra_ms = rand() % 300;

        worker_start(&w, &k, txn_id, 0, 1000, 50, 100);
        wait_trace(&w, calls, 180000);
        /* the random part of the point in time: past the N-th transform
         * call, anywhere in the next 300 ms (another transform, a commit) */
        sleep_ms(extra_ms);
        printf("  kill %d: after %ld transform calls + %d ms (%ld made)\n",
               kill_no + 1, calls, extra_ms, trace_lines(&w));
        ck_assert_msg(worker_poll(&w) < 0, "relay worker exited early");
        worker_kill(&w);
    }
    worker_start(&w, &k, txn_id, 0, 0, 50, 100);
    wait_relayed(&k, 240000);
    worker_stop_ok(&w, &r);
    assert_exactly_once(&k);
}
END_TEST

/*
 * A second relay joins the group while the first is in the middle of long
 * transactions (1.5 s, every partition in each: small fetches interleave
 * them): the partitions it takes over had records in the open
 * transaction, which is aborted before they go.
 */
START_TEST(rebalance_mid_transaction_keeps_exactly_once)
{
    relay_case k;
    worker a, b;
    worker_result ra, rb;
    char txn_a[64], txn_b[64];

    case_new(&k, "rr-rebalance", 6000, 20);
    ksafe_test_unique_name(txn_a, sizeof(txn_a), "rr-rebalance-a");
    ksafe_test_unique_name(txn_b, sizeof(txn_b), "rr-rebalance-b");
    worker_start(&a, &k, txn_a, 0, 1000, 100000, 1500);
    wait_trace(&a, 300, 120000);
    worker_start(&b, &k, txn_b, 0, 1000, 100000, 1500);
    wait_trace(&b, 1, 120000); /* b owns partitions now */
    wait_relayed(&k, 240000);
    worker_stop_ok(&a, &ra);
    worker_stop_ok(&b, &rb);
    ck_assert_msg(ra.rebalance_aborts >= 1,
                  "the first relay had no transaction aborted by the "
                  "rebalance (%llu aborts): the case did not test a "
                  "rebalance between produce and commit",
                  ra.aborts);
    assert_exactly_once(&k);
}
END_TEST

/*
 * A producer with the relay's transactional id initialises while the
 * relay runs: the relay is fenced and stops with KSAFE_EFATAL saying a
 * newer instance took over; a new relay with that id finishes the input,
 * and the fenced one's open transaction never shows.
 */
START_TEST(same_transactional_id_fences_the_running_relay)
{
    ksafe_producer_options po;
    ksafe_producer *fencer;
    ksafe_error err;
    relay_case k;
    worker w;
    worker_result r;
    char txn_id[64];
    int status;

    case_new(&k, "rr-fence", 2000, 0);
    ksafe_test_unique_name(txn_id, sizeof(txn_id), "rr-fence-txn");
    worker_start(&w, &k, txn_id, 0, 1000, 100, 100);
    wait_trace(&w, 200, 120000);

    ksafe_test_cluster_producer_options(tc, &po);
    po.log_cb = test_quiet_log;
    po.transactional_id = txn_id;
    po.transaction_timeout_ms = 6000;
    po.delivery_timeout_ms = 6000;
    ck_assert_ok(ksafe_producer_new(&fencer, &po, &err), err);
    ck_assert_ok(ksafe_txn_init(fencer, -1, &err), err);
    ck_assert_ok(ksafe_producer_close(fencer, &err), err);
    ksafe_producer_free(fencer);
    /* Work for it, should it have finished the input meanwhile: a relay
     * learns of the fencing from its next transaction. */
    test_produce(tc, k.in, k.n, k.n + 500);
    k.n += 500;

    status = worker_wait(&w, 60000);
    ck_assert_msg(status >= 0, "the fenced relay still runs 60 s later");
    result_read(&w, &r);
    printf("  fenced relay: exit %d, rc %d: %s\n", status, r.rc, r.message);
    ck_assert_int_eq(r.rc, KSAFE_EFATAL);
    ck_assert_int_eq(status, 3);
    ck_assert_msg(strstr(r.message, "newer instance") != NULL,
                  "the message does not say a newer instance took over: %s",
                  r.message);

    worker_start(&w, &k, txn_id, 0, 0, 100, 100);
    wait_relayed(&k, 180000);
    worker_stop_ok(&w, &r);
    assert_exactly_once(&k);
}
END_TEST

static Suite *relay_real_suite(void)
{
    Suite *s = suite_create("relay-real");
    TCase *t = tcase_create("exactly-once");

    tcase_add_unchecked_fixture(t, relay_kit_up, relay_kit_down);
    tcase_add_checked_fixture(t, NULL, reap_workers);
    tcase_set_timeout(t, 600);
    tcase_add_test(t, abort_output_is_hidden_and_redone_once);
    tcase_add_test(t, sigkill_at_random_points_then_restart);
    tcase_add_test(t, rebalance_mid_transaction_keeps_exactly_once);
    if (!embedded_part) /* the embedded cluster fences nobody */
        tcase_add_test(t, same_transactional_id_fences_the_running_relay);
    suite_add_tcase(s, t);
    return s;
}

int main(int argc, char **argv)
{
    const char *bootstrap = getenv(KSAFE_TEST_BOOTSTRAP_ENV);
    SRunner *sr;
    int failed;

    embedded_part = argc == 2 && strcmp(argv[1], "--embedded-part") == 0;
    if (argc > 1 && !embedded_part) {
        fprintf(stderr, "usage: %s [--embedded-part]\n", argv[0]);
        return 2;
    }
    if (!embedded_part && (!bootstrap || !*bootstrap)) {
        printf("SKIP: %s is not set; the relay's exactly-once guarantees "
               "(read_committed filtering, transactional offsets, fencing) "
               "need a real Kafka broker (KSAFE_TEST_BOOTSTRAP=host:port "
               "meson test relay-real)\n",
               KSAFE_TEST_BOOTSTRAP_ENV);
        return 77;
    }
    if (embedded_part && bootstrap && *bootstrap) {
        printf("SKIP: --embedded-part runs on the embedded cluster; %s is "
               "set (run relay-real there)\n",
               KSAFE_TEST_BOOTSTRAP_ENV);
        return 77;
    }
    sr = srunner_create(relay_real_suite());
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
