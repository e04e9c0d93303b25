/*
 * tests/bad_input.h - what the bad_input suite's files share: the BAD()
 * check and handles that need no cluster.
 */
#ifndef KSAFE_TESTS_BAD_INPUT_H
#define KSAFE_TESTS_BAD_INPUT_H

#include <stdint.h>

#include "testutil.h"

/* A topic name past Kafka's limit of 249 characters. */
#define LONG_TOPIC_LEN 300

/*
 * Runs `call` (which passes `E` as its ksafe_error *) twice: with an error
 * struct filled with junk, which must come back with `want` and a message
 * containing `word`, then with E = NULL, which must give the same code.
 */
#define BAD(want, word, call)                                                \
    do {                                                                     \
        ksafe_error e_;                                                      \
        int rc_;                                                             \
        memset(&e_, 0x5a, sizeof(e_));                                       \
        e_.message[0] = '\0';                                                \
        {                                                                    \
            ksafe_error *E = &e_;                                            \
            rc_ = (call);                                                    \
        }                                                                    \
        ck_assert_msg(rc_ == (want), "%s returned %d (%s), want %d", #call,  \
                      rc_, rc_ ? e_.message : "", (int)(want));              \
        ck_assert_msg(e_.code == rc_, "%s: err.code %d, returned %d", #call, \
                      e_.code, rc_);                                         \
        ck_assert_msg(e_.message[0] && strstr(e_.message, (word)),           \
                      "%s: message \"%s\" does not name \"%s\"", #call,      \
                      e_.message, (word));                                   \
        {                                                                    \
            ksafe_error *E = NULL;                                           \
            rc_ = (call);                                                    \
        }                                                                    \
        ck_assert_msg(rc_ == (want), "%s with err NULL returned %d", #call,  \
                      rc_);                                                  \
    } while (0)

#define TEN_MB (10u * 1024 * 1024)

/* A topic name of LONG_TOPIC_LEN 't's, set by make_long_topic(). */
extern char long_topic[LONG_TOPIC_LEN + 1];
void make_long_topic(void);

int64_t now_ms(void);

/* Handles pointed at 127.0.0.1:1, where nothing listens; asserted. */
ksafe_producer *offline_producer(const char *transactional_id);
ksafe_consumer *offline_consumer(void);
ksafe_dedup_store *memory_store(void); /* capacity 16 */

/*
 * Calls `fn` with a real librdkafka message without a broker: produced to
 * a producer that has none, purged at once, and handed over from its
 * delivery report, where it is the message a consumer would see (topic
 * "bad-input", partition 3, `value`, one header "h" = "1").
 */
typedef void (*message_fn)(const ksafe_message *msg, void *arg);
void with_message(const char *value, message_fn fn, void *arg);

/* Each file's cases, as TCases of `s`. */
void bad_input_client_cases(Suite *s);  /* test_bad_input.c */
void bad_input_consumer_cases(Suite *s); /* test_bad_input_consumer.c */
void bad_input_dedup_cases(Suite *s);   /* test_bad_input_dedup.c */
void bad_input_scenario_cases(Suite *s); /* test_bad_input_scenario.c */

#endif
