/*
 * lib/util.c - small helpers without a better home.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"

char *ksafe__strdup(const char *s)
{
    size_t n;
    char *d;

    if (!s)
        return NULL;
    n = strlen(s) + 1;
    d = malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

int64_t ksafe__now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int ksafe__topic_check(const char *topic, const char *what,
                       ksafe_error *err)
{
    static const char legal[] = "abcdefghijklmnopqrstuvwxyz"
                                "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-";
    size_t n = strlen(topic);

    if (n > KSAFE__TOPIC_MAX)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "%s \"%.32s...\" is %zu characters long: "
                                "Kafka allows at most %d",
                                what, topic, n, KSAFE__TOPIC_MAX);
    if (topic[strspn(topic, legal)] || !strcmp(topic, ".") ||
        !strcmp(topic, ".."))
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "%s \"%.64s\" is not a Kafka topic name "
                                "([a-zA-Z0-9._-], not \".\" or \"..\")",
                                what, topic);
    return 0;
}

const char *ksafe_version(void)
{
    return KSAFE_VERSION_STRING;
}

const char *ksafe_rdkafka_version(void)
{
    return rd_kafka_version_str();
}
