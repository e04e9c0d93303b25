/*
 * lib/retry_policy.h - what the two loops (ksafe_run in loop*.c and
 * ksafe_relay_run in relay*.c) decide the same way: how long to back off,
 * what a dead letter looks like, and which consumer errors end a loop.
 * Never installed.
 */
#ifndef KSAFE_RETRY_POLICY_H
#define KSAFE_RETRY_POLICY_H

#include "consumer_internal.h"

/* A backoff schedule, as the loop options give it. */
typedef struct ksafe__backoff {
    int initial_ms;
    double multiplier;
    int max_ms;
    double jitter;
    uint64_t rng; /* xorshift64 state, never 0 */
} ksafe__backoff;

/* Seeds the jitter from the clock and the process id. */
void ksafe__backoff_seed(ksafe__backoff *b);

/* The wait before attempt `attempts` + 1 (attempts >= 1 failed so far). */
int64_t ksafe__backoff_ms(ksafe__backoff *b, int attempts);

/* The dead-letter copy of a consumed record: its key and value, and the
 * ksafe.origin.{topic,partition,offset}, ksafe.error and ksafe.attempts
 * headers. Everything borrowed from `m`, `why` and the struct itself. */
typedef struct ksafe__dead_letter {
    char part[16], off[24], att[16];
    ksafe_header h[5];
    ksafe_record r;
} ksafe__dead_letter;

void ksafe__dead_letter_init(ksafe__dead_letter *d,
                             const rd_kafka_message_t *m, const char *topic,
                             int attempts, const char *why);

/*
 * A consumer error polled by a loop: a fatal error gives KSAFE_EFATAL, a
 * member the broker refuses for good (its configuration or rights)
 * KSAFE_EKAFKA naming the setting to fix; anything else is logged and
 * gives 0 (librdkafka recovers on its own). Destroys `m`.
 */
int ksafe__poll_error(ksafe_consumer *c, rd_kafka_message_t *m,
                      const char *group, ksafe_error *err);

#endif
