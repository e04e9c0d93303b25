/*
 * lib/rdkafka_versions.h - what ksafe does differently per librdkafka
 * version, in one place: the bugs it works around (each only on the
 * versions that have it) and the features it needs a version for.
 *
 * rd_kafka_version() is 0xMMmmrrpp: a release is 0xMMmmrrff, its
 * pre-releases are lower. "Fixed in M.m.r" therefore means
 * version >= 0xMMmmrrff. Decisions are taken from the library linked at run
 * time (rd_kafka_version()), never from the headers: a program built
 * against 2.0.2 and run on 2.15.1 must not keep 2.0.2's workarounds.
 *
 * docs/compatibility.md tells users the same facts.
 */
#ifndef KSAFE_RDKAFKA_VERSIONS_H
#define KSAFE_RDKAFKA_VERSIONS_H

#include <librdkafka/rdkafka.h>

/* The oldest librdkafka ksafe supports: Debian 12's. */
#define KSAFE__RDKAFKA_MIN 0x020002ff

/*
 * A librdkafka older than the headers ksafe was compiled with may lack
 * functions ksafe calls and has bugs its version decisions assume fixed:
 * _new() refuses it (client.c). `built` is RD_KAFKA_VERSION of the build.
 */
static inline int ksafe__rdkafka_too_old(int linked, int built)
{
    /* Compare releases: a pre-release of the same version (lower last
     * byte) is too old too, it may predate an API of the release. */
    return linked < built || linked < KSAFE__RDKAFKA_MIN;
}

/* KIP-848's group.protocol=consumer: generally available from 2.12.0
 * (2.4-2.11 ship it as early access, 2.0-2.3 do not know the property). */
#define KSAFE__RDKAFKA_KIP848 0x020c00ff

/* Kafka protocol errors of KIP-848 that 2.0.2's rdkafka.h does not name
 * (the codes are Kafka's, the same in every librdkafka). */
#define KSAFE__ERR_FENCED_MEMBER_EPOCH ((rd_kafka_resp_err_t)110)
#define KSAFE__ERR_UNRELEASED_INSTANCE_ID ((rd_kafka_resp_err_t)111)
#define KSAFE__ERR_STALE_MEMBER_EPOCH ((rd_kafka_resp_err_t)113)

/*
 * KIP-320 (librdkafka 2.1.0): records and committed offsets carry the
 * partition leader's epoch, so a consumer resuming from a committed
 * position can detect a log truncated below it (unclean leader election)
 * instead of silently re-reading or skipping. Built against older headers
 * the epoch is unknown (-1) and commits carry none, as librdkafka 2.0's do.
 * Compile-time is enough here: _new() refuses a librdkafka older than the
 * headers.
 */
static inline int32_t ksafe__message_leader_epoch(const rd_kafka_message_t *m)
{
#if RD_KAFKA_VERSION >= 0x020100ff
    return rd_kafka_message_leader_epoch(m);
#else
    (void)m;
    return -1;
#endif
}

static inline void ksafe__set_leader_epoch(rd_kafka_topic_partition_t *tp,
                                           int32_t epoch)
{
#if RD_KAFKA_VERSION >= 0x020100ff
    rd_kafka_topic_partition_set_leader_epoch(tp, epoch);
#else
    (void)tp;
    (void)epoch;
#endif
}

/*
 * librdkafka bugs the consumer works around, each only where it exists;
 * decided once, in ksafe_consumer_new(), from rd_kafka_version().
 */
typedef struct ksafe__consumer_quirks {
    /* Issue 4230, fixed in 2.1.0: rd_kafka_seek_partitions() takes its
     * timeout 1000x too short. */
    unsigned int seek_timeout_unit : 1;
    /* Issue 4312, fixed in 2.3.0: destroying a cooperative-sticky consumer
     * whose JoinGroup was answered, before its first assignment, asserts -
     * with or without consumer close. */
    unsigned int sticky_destroy_asserts : 1;
    /* Issue 4527, fixed in 2.4.0: an incremental assignment arriving while
     * the consumer closes can hang close. */
    unsigned int close_hangs_on_assign : 1;
    /* Issue 4059, fixed in 2.10.0: an ILLEGAL_GENERATION answer to a commit
     * sent while the member's JoinGroup is pending drops the assignment
     * the join just obtained (consumer_commit_guard.c probes first). */
    unsigned int commit_drops_assignment : 1;
} ksafe__consumer_quirks;

static inline void ksafe__consumer_quirks_of(int version,
                                             ksafe__consumer_quirks *q)
{
    q->seek_timeout_unit = version < 0x020100ff;
    q->sticky_destroy_asserts = version < 0x020300ff;
    q->close_hangs_on_assign = version < 0x020400ff;
    q->commit_drops_assignment = version < 0x020a00ff;
}

#endif
