/*
 * tests/fuzz/fuzz_stats.c - the statistics parser (ksafe/stats.h) on any
 * bytes, and the Prometheus rendering of whatever parses.
 *
 * Contract checked: 0 or KSAFE_EINVAL (KSAFE_ENOMEM aside) with a message;
 * stats exist exactly when the parse succeeded; every partition has a
 * topic and a number >= 0; a known offset, count or lag is never negative;
 * the rendering succeeds, ends with a line feed, never writes the unknown
 * marker as a value and never writes one series (name and labels) twice;
 * and (libFuzzer's -detect_leaks) nothing leaks.
 */
#include <ksafe/stats.h>

#include "fuzz.h"

static void check_count(const char *what, int64_t v)
{
    FUZZ_ASSERT(!ksafe_stats_known(v) || v >= 0, "%s is %lld", what,
                (long long)v);
}

static int series_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* A sample line is "series value"; a label value holds no raw line feed
 * (escaped), so lines split the text. Works on a copy. */
static void check_no_repeated_series(const char *text)
{
    char *copy = strdup(text), *line, *save = NULL;
    char **series;
    size_t n = 0, cap = 1, i;

    FUZZ_ASSERT(copy != NULL, "out of memory");
    for (i = 0; text[i]; i++)
        cap += text[i] == '\n';
    series = malloc(cap * sizeof(*series));
    FUZZ_ASSERT(series != NULL, "out of memory");
    for (line = strtok_r(copy, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
        char *value = strrchr(line, ' ');
        if (*line == '#' || !value)
            continue;
        *value = '\0';
        series[n++] = line;
    }
    qsort(series, n, sizeof(*series), series_cmp);
    for (i = 1; i < n; i++)
        FUZZ_ASSERT(strcmp(series[i - 1], series[i]) != 0,
                    "series written twice: %.200s", series[i]);
    free(series);
    free(copy);
}

static void check_stats(const ksafe_stats *st)
{
    ksafe_error err;
    char *text = NULL;
    size_t i;
    int rc;

    check_count("queue_messages", st->queue_messages);
    check_count("queue_bytes", st->queue_bytes);
    check_count("requests_in_flight", st->requests_in_flight);
    check_count("rebalances", st->rebalances);
    check_count("fetch_queue", st->fetch_queue);
    FUZZ_ASSERT(st->broker_count == 0 || st->brokers, "no broker array");
    for (i = 0; i < st->broker_count; i++) {
        FUZZ_ASSERT(st->brokers[i].name != NULL, "broker %zu has no name", i);
        check_count("rtt_avg_us", st->brokers[i].rtt_avg_us);
    }
    FUZZ_ASSERT(st->partition_count == 0 || st->partitions,
                "no partition array");
    for (i = 0; i < st->partition_count; i++) {
        const ksafe_stats_partition *p = &st->partitions[i];
        FUZZ_ASSERT(p->topic != NULL, "partition %zu has no topic", i);
        FUZZ_ASSERT(p->partition >= 0, "partition %d", (int)p->partition);
        check_count("high_watermark", p->high_watermark);
        check_count("committed_offset", p->committed_offset);
        check_count("lag", p->lag);
    }
    memset(&err, 0xa5, sizeof(err));
    rc = ksafe_stats_prometheus(&text, st, NULL, &err);
    fuzz_check_rc("ksafe_stats_prometheus", rc, &err);
    if (rc) {
        FUZZ_ASSERT(rc == KSAFE_ENOMEM, "render failed: %s", err.message);
        return;
    }
    FUZZ_ASSERT(text != NULL, "render gave no text");
    FUZZ_ASSERT(!*text || text[strlen(text) - 1] == '\n',
                "text does not end with a line feed");
    /* as a value: a label value holds no raw line feed, so only a
     * sample's value can precede one (the input's strings may hold the
     * digits) */
    FUZZ_ASSERT(!strstr(text, " -9223372036854775808\n"),
                "the unknown marker was rendered as a value");
    check_no_repeated_series(text);
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ksafe_stats *st = NULL;
    ksafe_error err;
    int rc;

    memset(&err, 0xa5, sizeof(err));
    rc = ksafe_stats_parse(&st, (const char *)data, size, &err);
    fuzz_check_rc("ksafe_stats_parse", rc, &err);
    if (rc) {
        FUZZ_ASSERT(st == NULL, "failed (%d) but gave stats", rc);
        FUZZ_ASSERT(rc == KSAFE_EINVAL || rc == KSAFE_ENOMEM,
                    "unexpected code %d: %s", rc, err.message);
        return 0;
    }
    FUZZ_ASSERT(st != NULL, "returned 0 without stats");
    check_stats(st);
    ksafe_stats_free(st);
    return 0;
}
