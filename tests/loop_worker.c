/*
 * tests/loop_worker.c - a consumer-group member running ksafe_run() that
 * appends each record it handles to a file and can die right after the
 * Nth one without closing anything; driven by tests/test_loop.c (children
 * are exec'd: librdkafka is not fork-safe).
 *
 *   loop-worker BOOTSTRAP TOPIC GROUP OUT SEMANTICS EXIT_AFTER
 *
 * SEMANTICS is "at-most-once" or "at-least-once". EXIT_AFTER > 0: _exit(0)
 * inside the handler once that many records were handled (a crash: no
 * commit, no close). 0: run until SIGTERM.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ksafe/ksafe.h>

typedef struct worker {
    int fd;
    long handled, exit_after;
} worker;

static ksafe_handler_result handle(const ksafe_message *m, ksafe_error *err,
                                   void *payload)
{
    worker *w = payload;
    size_t n;
    const char *v = ksafe_message_value(m, &n);
    char line[80];
    int len;

    (void)err;
    len = snprintf(line, sizeof(line), "%.*s\n", (int)(n < 64 ? n : 64), v);
    if (write(w->fd, line, (size_t)len) != len)
        _exit(3);
    if (w->exit_after && ++w->handled == w->exit_after)
        _exit(0);
    return KSAFE_HANDLER_OK;
}

int main(int argc, char **argv)
{
    static const char *const fast[] = {"fetch.wait.max.ms", "10",
                                       "reconnect.backoff.max.ms", "500",
                                       NULL};
    ksafe_consumer_options co = KSAFE_CONSUMER_OPTIONS_INIT;
    ksafe_loop_options lo = KSAFE_LOOP_OPTIONS_INIT;
    ksafe_consumer *c = NULL;
    ksafe_error err;
    worker w;
    int rc;

    if (argc != 7) {
        fprintf(stderr, "usage: loop-worker BOOTSTRAP TOPIC GROUP OUT "
                        "at-most-once|at-least-once EXIT_AFTER\n");
        return 2;
    }
    memset(&w, 0, sizeof(w));
    w.exit_after = strtol(argv[6], NULL, 10);
    w.fd = open(argv[4], O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (w.fd < 0) {
        perror(argv[4]);
        return 1;
    }
    co.bootstrap_servers = argv[1];
    co.group_id = argv[3];
    /* The embedded cluster's timing, under the test run's protocol. */
    if (ksafe_test_consumer_group(&co, ksafe_test_group_timing(1), &err)) {
        fprintf(stderr, "loop-worker: %s\n", err.message);
        return 2;
    }
    co.rdkafka_properties = fast;
    lo.handler = handle;
    lo.payload = &w;
    lo.semantics = strcmp(argv[5], "at-most-once") == 0 ? KSAFE_AT_MOST_ONCE
                                                       : KSAFE_AT_LEAST_ONCE;
    if (ksafe_consumer_new(&c, &co, &err) ||
        ksafe_consumer_subscribe(c, (const char *const *)&argv[2], 1, &err) ||
        ksafe_stop_on_signals(c, &err)) {
        fprintf(stderr, "loop-worker: %s\n", err.message);
        return 1;
    }
    rc = ksafe_run(c, &lo, &err);
    if (rc)
        fprintf(stderr, "loop-worker: %s\n", err.message);
    ksafe_consumer_free(c);
    close(w.fd);
    return rc ? 1 : 0;
}
