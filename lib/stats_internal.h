/*
 * lib/stats_internal.h - what the stats files share: stats_parse.c (the
 * document), stats_prometheus.c (the text format) and consumer_stats.c
 * (the consumer's on_stats).
 */
#ifndef KSAFE_STATS_INTERNAL_H
#define KSAFE_STATS_INTERNAL_H

#include <jansson.h>

#include "internal.h"

/* What ksafe_stats_parse() allocates: the public part first, so the
 * pointer handed out is the allocation. */
typedef struct ksafe__stats {
    ksafe_stats pub;
    json_t *root; /* owns every string pub points to */
} ksafe__stats;

/* end - position, at least 0; unknown unless both are known. */
int64_t ksafe__stats_behind(int64_t end, int64_t position);

#endif
