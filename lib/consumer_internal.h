/*
 * lib/consumer_internal.h - the consumer's state, shared by its files.
 */
#ifndef KSAFE_CONSUMER_INTERNAL_H
#define KSAFE_CONSUMER_INTERNAL_H

#include <signal.h>

#include "internal.h"

/* The processed position of one assigned partition. */
typedef struct ksafe__position {
    char *topic;
    const rd_kafka_topic_t *rkt; /* identity shortcut for the hot path */
    int32_t partition;
    int64_t marked;    /* next offset to consume, -1 when nothing marked */
    int64_t committed; /* last position handed to a commit, -1 if none */
} ksafe__position;

struct ksafe_consumer {
    ksafe__client cl; /* first: rd_kafka_opaque() points here */
    ksafe_partitions_cb on_assigned;
    ksafe_partitions_cb on_revoked;
    ksafe_partitions_cb on_lost;
    void *rebalance_payload;
    ksafe__position *pos;
    size_t n_pos, cap_pos;
    size_t last_hit;
    int subscribed;
    int closed;
    int rebalances;
    volatile sig_atomic_t stop_requested;
    /* The loop's view of revocations: called before the revoke commit (and
     * on lost) so it can drop state of partitions it no longer owns. */
    void (*loop_on_revoke)(ksafe_consumer *c,
                           const rd_kafka_topic_partition_list_t *parts,
                           int lost, void *arg);
    void *loop_arg;
};

/* Finds or adds the position entry of topic/partition; NULL on ENOMEM. */
ksafe__position *ksafe__consumer_position(ksafe_consumer *c,
                                          const char *topic,
                                          int32_t partition);

/* Commits marked positions of `only` (NULL: all) synchronously or not. */
int ksafe__consumer_commit_marked(ksafe_consumer *c,
                                  const rd_kafka_topic_partition_list_t *only,
                                  int async, ksafe_error *err);

/* Forgets positions of these partitions (after revoke or loss). */
void ksafe__consumer_forget(ksafe_consumer *c,
                            const rd_kafka_topic_partition_list_t *parts);

void ksafe__consumer_rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                                  rd_kafka_topic_partition_list_t *parts,
                                  void *opaque);

#endif
