/*
 * lib/retry_policy.c - backoff, dead letters and loop-ending consumer
 * errors, shared by ksafe_run and ksafe_relay_run.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "retry_policy.h"

void ksafe__backoff_seed(ksafe__backoff *b)
{
    b->rng = (uint64_t)ksafe__now_ms() * 2654435761u ^ (uint64_t)getpid();
    if (!b->rng)
        b->rng = 1;
}

int64_t ksafe__backoff_ms(ksafe__backoff *b, int attempts)
{
    double d = b->initial_ms * pow(b->multiplier, attempts - 1);
    double u;

    if (d > b->max_ms)
        d = b->max_ms;
    /* xorshift64: jitter only, not security */
    b->rng ^= b->rng << 13;
    b->rng ^= b->rng >> 7;
    b->rng ^= b->rng << 17;
    u = (double)(b->rng >> 11) / (double)(1ull << 53) * 2.0 - 1.0;
    d *= 1.0 + b->jitter * u;
    return d < 0 ? 0 : (int64_t)d;
}

void ksafe__dead_letter_init(ksafe__dead_letter *d,
                             const rd_kafka_message_t *m, const char *topic,
                             int attempts, const char *why)
{
    static const char *const names[5] = {
        "ksafe.origin.topic", "ksafe.origin.partition", "ksafe.origin.offset",
        "ksafe.error", "ksafe.attempts"};
    const char *values[5];
    ksafe_record r = KSAFE_RECORD_INIT;
    size_t i;

    snprintf(d->part, sizeof(d->part), "%d", (int)m->partition);
    snprintf(d->off, sizeof(d->off), "%lld", (long long)m->offset);
    snprintf(d->att, sizeof(d->att), "%d", attempts);
    values[0] = rd_kafka_topic_name(m->rkt);
    values[1] = d->part;
    values[2] = d->off;
    values[3] = why;
    values[4] = d->att;
    for (i = 0; i < 5; i++) {
        d->h[i].name = names[i];
        d->h[i].value = values[i];
        d->h[i].value_len = strlen(values[i]);
    }
    r.topic = topic;
    r.key = m->key;
    r.key_len = m->key_len;
    r.value = m->payload;
    r.value_len = m->len;
    r.headers = d->h;
    r.header_count = 5;
    d->r = r;
}

/*
 * Errors the group coordinator gives for the member's configuration or
 * rights. librdkafka reports each as a consumer error from poll and joins
 * again; the broker answers the same every time, so the loop would retry
 * forever. What the user has to change comes with it.
 */
static const struct {
    rd_kafka_resp_err_t code;
    const char *fix;
} refused[] = {
    {RD_KAFKA_RESP_ERR_INVALID_SESSION_TIMEOUT,
     "set session_timeout_ms within the broker's group.min/max.session."
     "timeout.ms (Kafka's default minimum is 6000)"},
    {RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED,
     "grant this principal READ on the group (ACL) or change group_id"},
    {RD_KAFKA_RESP_ERR_INVALID_GROUP_ID, "group_id is not a valid group id"},
    {RD_KAFKA_RESP_ERR_INCONSISTENT_GROUP_PROTOCOL,
     "assignment_strategy must match the group's other members"},
    {RD_KAFKA_RESP_ERR_GROUP_MAX_SIZE_REACHED,
     "the group has the broker's group.max.size members already"},
    {RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED,
     "grant this principal READ on the subscribed topics (ACL)"},
};

int ksafe__poll_error(ksafe_consumer *c, rd_kafka_message_t *m,
                      const char *group, ksafe_error *err)
{
    size_t i;
    int rc;

    if (m->err == RD_KAFKA_RESP_ERR__FATAL) {
        char reason[256];
        rd_kafka_resp_err_t code =
            rd_kafka_fatal_error(c->cl.rk, reason, sizeof(reason));
        rd_kafka_message_destroy(m);
        return ksafe__error_set(err, KSAFE_EFATAL, code, KSAFE_ERROR_FATAL,
                                "fatal consumer error: %s", reason);
    }
    for (i = 0; i < sizeof(refused) / sizeof(refused[0]); i++)
        if (m->err == refused[i].code) {
            rc = ksafe__error_set(err, KSAFE_EKAFKA, m->err, 0,
                                  "group %s: the broker refuses this "
                                  "member (%s): %s",
                                  group, rd_kafka_message_errstr(m),
                                  refused[i].fix);
            rd_kafka_message_destroy(m);
            return rc;
        }
    if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
        ksafe__log(&c->cl, KSAFE_LOG_WARNING, "CONSUME",
                   "consumer error: %s", rd_kafka_message_errstr(m));
    rd_kafka_message_destroy(m);
    return 0;
}
