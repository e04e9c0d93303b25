/*
 * tests/stats_kit.h - what the stats suite's files share (stats_kit.c).
 */
#ifndef KSAFE_STATS_KIT_H
#define KSAFE_STATS_KIT_H

#include <ksafe/stats.h>

#include "testutil.h"

#define U KSAFE_STATS_UNKNOWN

/* The librdkafka versions of the captured documents:
 * tests/data/stats/rdkafka-<version>-*.json. */
extern const char *const stats_versions[2];

/* A file of $KSAFE_STATS_DATA, NUL-terminated, its length in *len. */
char *stats_read_data(const char *name, size_t *len);

/* The captured document `name`, parsed (asserts it parses). */
ksafe_stats *stats_parse_data(const char *name);

/* `doc` parsed (asserts it parses). */
ksafe_stats *stats_parse_text(const char *doc);

/* The entry of `partition` (asserts there is one). */
const ksafe_stats_partition *stats_part(const ksafe_stats *st,
                                        int32_t partition);

/*
 * 0 when `text` is a valid exposition: every line "# HELP name text",
 * "# TYPE name gauge|counter" or "name{label="value",...} number", with
 * valid metric and label names and escapes; each family's HELP and TYPE
 * once, before its samples, which stay together; no family without
 * samples, no series twice, counters named *_total and not negative; a
 * line feed at the end. Otherwise 1 and the first problem in `why`.
 */
int stats_prom_problem(const char *text, char *why, size_t size);

/* Fails the test with the problem when stats_prom_problem() finds one. */
void stats_check_exposition(const char *text);

/* The suite's other cases (test_stats_prometheus.c, test_stats_cluster.c). */
TCase *stats_prometheus_tcase(void);
TCase *stats_cluster_tcase(void);

#endif
