/*
 * lib/consumer_options.c - the consumer's options: the safe preset, their
 * validation under either group protocol, the librdkafka properties they
 * become, and static membership ids.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "consumer_internal.h"

const ksafe_consumer_options ksafe__consumer_preset =
    KSAFE_CONSUMER_OPTIONS_INIT;

int ksafe_consumer_options_init(ksafe_consumer_options *opts,
                                unsigned int version)
{
    if (!opts)
        return KSAFE_EINVAL;
    if (version != KSAFE_CONSUMER_OPTIONS_VERSION)
        return KSAFE_EVERSION;
    *opts = ksafe__consumer_preset;
    return 0;
}

static int check_instance_id(const char *id, const char *what,
                             ksafe_error *err);

static const char *const strategy_names[] = {"cooperative-sticky", "range",
                                             "roundrobin"};

/* Under KIP-848 the broker owns these: librdkafka refuses them at
 * rd_kafka_new() (not at rd_kafka_conf_set(), so check_raw misses them). */
static const char *const broker_side_keys[] = {
    "session.timeout.ms", "heartbeat.interval.ms",
    "partition.assignment.strategy", "group.protocol.type"};

static int is_broker_side(const char *key)
{
    size_t i;

    for (i = 0; i < sizeof(broker_side_keys) / sizeof(*broker_side_keys); i++)
        if (strcmp(key, broker_side_keys[i]) == 0)
            return 1;
    return 0;
}

static int check_raw_group_keys(const ksafe_consumer_options *o,
                                ksafe_error *err)
{
    const char *const *p;

    for (p = o->rdkafka_properties; p && p[0] && p[1]; p += 2) {
        /* A raw group.protocol would put the consumer under a protocol
         * other than the one validation checked the options for. */
        if (strcmp(p[0], "group.protocol") == 0)
            return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                    "rdkafka_properties sets "
                                    "group.protocol=%s: use the typed "
                                    "group_protocol field, which decides "
                                    "which other options apply",
                                    p[1]);
        /* Without ksafe's callback librdkafka's documents would pile up
         * unread in the consumer's queue. */
        if (strcmp(p[0], "statistics.interval.ms") == 0)
            return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                    "rdkafka_properties sets "
                                    "statistics.interval.ms=%s: use the "
                                    "typed statistics_interval_ms field "
                                    "with on_stats, which receives them",
                                    p[1]);
        /* librdkafka takes it under the classic protocol and ignores it. */
        if (o->group_protocol != KSAFE_GROUP_PROTOCOL_CONSUMER &&
            strcmp(p[0], "group.remote.assignor") == 0)
            return ksafe__error_set(
                err, KSAFE_EINVAL, 0, 0,
                "rdkafka_properties sets group.remote.assignor=%s, which "
                "only group_protocol CONSUMER (KIP-848) uses: under the "
                "classic protocol it would be ignored (assignment_strategy "
                "picks the assignor there)",
                p[1]);
        if (o->group_protocol == KSAFE_GROUP_PROTOCOL_CONSUMER &&
            is_broker_side(p[0]))
            return ksafe__error_set(
                err, KSAFE_EINVAL, 0, 0,
                "rdkafka_properties sets %s, which the broker decides under "
                "group_protocol CONSUMER (KIP-848): librdkafka refuses it; "
                "remove it",
                p[0]);
    }
    return 0;
}

/*
 * KIP-848: the broker owns the session, the heartbeat and the assignor, so
 * the three classic fields must stay at the preset. Refusing a changed one
 * (rather than dropping it) tells the user their value does not apply.
 */
static int check_kip848(const ksafe_consumer_options *o, ksafe_error *err)
{
    const ksafe_consumer_options *d = &ksafe__consumer_preset;
    int rc;

    if (rd_kafka_version() < KSAFE__RDKAFKA_KIP848)
        return ksafe__error_set(
            err, KSAFE_EINVAL, 0, 0,
            "group_protocol CONSUMER (KIP-848) needs librdkafka 2.12.0 or "
            "newer, where it is generally available; this process runs "
            "librdkafka %s: use KSAFE_GROUP_PROTOCOL_CLASSIC or a newer "
            "librdkafka",
            rd_kafka_version_str());
    if (o->session_timeout_ms != d->session_timeout_ms)
        return ksafe__error_set(
            err, KSAFE_EINVAL, 0, 0,
            "session_timeout_ms is %d, but under group_protocol CONSUMER "
            "(KIP-848) the broker sets the session timeout (its "
            "group.consumer.session.timeout.ms): leave session_timeout_ms "
            "at its default %d",
            o->session_timeout_ms, d->session_timeout_ms);
    if (o->heartbeat_interval_ms != d->heartbeat_interval_ms)
        return ksafe__error_set(
            err, KSAFE_EINVAL, 0, 0,
            "heartbeat_interval_ms is %d, but under group_protocol CONSUMER "
            "(KIP-848) the broker sets the heartbeat interval (its "
            "group.consumer.heartbeat.interval.ms): leave "
            "heartbeat_interval_ms at its default %d",
            o->heartbeat_interval_ms, d->heartbeat_interval_ms);
    if (o->assignment_strategy != d->assignment_strategy)
        return ksafe__error_set(
            err, KSAFE_EINVAL, 0, 0,
            "assignment_strategy is %s, but under group_protocol CONSUMER "
            "(KIP-848) the broker assigns the partitions, incrementally "
            "(rdkafka property group.remote.assignor picks its assignor): "
            "leave assignment_strategy at its default",
            (unsigned)o->assignment_strategy <= KSAFE_ASSIGN_ROUNDROBIN
                ? strategy_names[o->assignment_strategy]
                : "not a ksafe_assignment_strategy value");
    /* The session belongs to the broker: max.poll.interval.ms is not
     * compared with it (librdkafka does not either). */
    if ((rc = ksafe__check_range(err, "max_poll_interval_ms",
                                 o->max_poll_interval_ms, 1, 86400000)))
        return rc;
    return 0;
}

/* Each document is parsed on the polling thread: more often than this,
 * statistics would become the consumer's main work. */
#define STATS_INTERVAL_MIN_MS 100
#define STATS_INTERVAL_MAX_MS 86400000 /* librdkafka's limit */

static int check_stats(const ksafe_consumer_options *o, ksafe_error *err)
{
    int ms = o->statistics_interval_ms;

    if (ms < 0)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "statistics_interval_ms is %d: use 0 for "
                                "no statistics, or an interval of %d..%d ms",
                                ms, STATS_INTERVAL_MIN_MS,
                                STATS_INTERVAL_MAX_MS);
    if (ms > 0 && ms < STATS_INTERVAL_MIN_MS)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "statistics_interval_ms is %d, below %d ms: "
                                "each document is parsed on the polling "
                                "thread, so statistics would crowd out the "
                                "records (0 turns them off)",
                                ms, STATS_INTERVAL_MIN_MS);
    if (ms > STATS_INTERVAL_MAX_MS)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "statistics_interval_ms is %d, above "
                                "librdkafka's limit of %d (a day)",
                                ms, STATS_INTERVAL_MAX_MS);
    if (o->on_stats && !ms)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "on_stats is set but statistics_interval_ms "
                                "is 0: it would never be called (set an "
                                "interval of %d..%d ms)",
                                STATS_INTERVAL_MIN_MS,
                                STATS_INTERVAL_MAX_MS);
    return 0;
}

int ksafe_consumer_options_validate(const ksafe_consumer_options *o,
                                    ksafe_error *err)
{
    ksafe__client_view v;
    int rc;

    if (!o)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "consumer options are NULL");
    if (o->version != KSAFE_CONSUMER_OPTIONS_VERSION)
        return ksafe__error_set(err, KSAFE_EVERSION, 0, 0,
                                "ksafe_consumer_options.version is %u; this "
                                "library knows version %d (initialise with "
                                "KSAFE_CONSUMER_OPTIONS_INIT)",
                                o->version, KSAFE_CONSUMER_OPTIONS_VERSION);
    /* Before the client's checks: librdkafka's own check of the raw
     * properties would refuse group.protocol on 2.0.2 with a message that
     * does not name the typed field. */
    if ((rc = check_raw_group_keys(o, err)))
        return rc;
    KSAFE__CLIENT_VIEW(v, o);
    if ((rc = ksafe__client_validate(&v, err)))
        return rc;
    if (!o->group_id || !*o->group_id)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "group_id is required: offsets are committed "
                                "per consumer group");
    if (o->group_instance_id && !*o->group_instance_id)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "group_instance_id is empty: use NULL for "
                                "dynamic membership");
    if (o->group_instance_id &&
        (rc = check_instance_id(o->group_instance_id, "group_instance_id",
                                err)))
        return rc;
    if ((unsigned)o->auto_offset_reset > KSAFE_OFFSET_RESET_ERROR)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "auto_offset_reset %d is not a "
                                "ksafe_offset_reset value",
                                (int)o->auto_offset_reset);
    if ((unsigned)o->assignment_strategy > KSAFE_ASSIGN_ROUNDROBIN)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "assignment_strategy %d is not a "
                                "ksafe_assignment_strategy value",
                                (int)o->assignment_strategy);
    if ((unsigned)o->group_protocol > KSAFE_GROUP_PROTOCOL_CONSUMER)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "group_protocol %d is not a "
                                "ksafe_group_protocol value",
                                (int)o->group_protocol);
    if ((rc = check_stats(o, err)))
        return rc;
    if (o->group_protocol == KSAFE_GROUP_PROTOCOL_CONSUMER)
        return check_kip848(o, err);
    if ((rc = ksafe__check_range(err, "session_timeout_ms", o->session_timeout_ms, 1,
                          3600000)) ||
        (rc = ksafe__check_range(err, "heartbeat_interval_ms",
                          o->heartbeat_interval_ms, 1, 3600000)) ||
        (rc = ksafe__check_range(err, "max_poll_interval_ms", o->max_poll_interval_ms,
                          1, 86400000)))
        return rc;
    if ((long long)o->heartbeat_interval_ms * 3 > o->session_timeout_ms)
        return ksafe__error_set(
            err, KSAFE_EINVAL, 0, 0,
            "heartbeat_interval_ms (%d) is above a third of "
            "session_timeout_ms (%d): one late heartbeat would cost the "
            "member its partitions",
            o->heartbeat_interval_ms, o->session_timeout_ms);
    if (o->max_poll_interval_ms < o->session_timeout_ms)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "max_poll_interval_ms (%d) is below "
                                "session_timeout_ms (%d)",
                                o->max_poll_interval_ms,
                                o->session_timeout_ms);
    return 0;
}

static const char *const reset_names[] = {"earliest", "latest", "error"};

int ksafe__consumer_conf(const ksafe_consumer_options *o,
                         rd_kafka_conf_t *conf, ksafe_error *err)
{
    char session[16], heartbeat[16], poll[16];
    struct {
        const char *key, *value;
    } set[] = {
        {"group.id", o->group_id},
        {"group.instance.id", o->group_instance_id},
        {"enable.auto.commit", "false"},
        {"enable.auto.offset.store", "false"},
        {"isolation.level", "read_committed"},
        {"enable.partition.eof", "false"},
        {"partition.assignment.strategy",
         strategy_names[o->assignment_strategy]},
        {"auto.offset.reset", reset_names[o->auto_offset_reset]},
        {"session.timeout.ms", session},
        {"heartbeat.interval.ms", heartbeat},
        {"max.poll.interval.ms", poll},
    };
    int kip848 = o->group_protocol == KSAFE_GROUP_PROTOCOL_CONSUMER;
    size_t i;
    int rc;

    snprintf(session, sizeof(session), "%d", o->session_timeout_ms);
    snprintf(heartbeat, sizeof(heartbeat), "%d", o->heartbeat_interval_ms);
    snprintf(poll, sizeof(poll), "%d", o->max_poll_interval_ms);
    /* Not set at all under KIP-848, not even to librdkafka's default:
     * librdkafka refuses a consumer with any of them modified. */
    if (kip848 &&
        (rc = ksafe__conf_set(conf, "group.protocol", "consumer", err)))
        return rc;
    for (i = 0; i < sizeof(set) / sizeof(set[0]); i++)
        if (set[i].value && !(kip848 && is_broker_side(set[i].key)) &&
            (rc = ksafe__conf_set(conf, set[i].key, set[i].value, err)))
            return rc;
    return 0;
}

/* ---- static membership ------------------------------------------------- */

#define INSTANCE_ID_MAX 249

static int id_char_ok(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
           (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == '-';
}

/* Checks a group.instance.id as the broker would. */
static int check_instance_id(const char *id, const char *what,
                             ksafe_error *err)
{
    size_t i, n = strlen(id);

    if (n > INSTANCE_ID_MAX)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "%s is %zu characters long, above Kafka's "
                                "limit of %d",
                                what, n, INSTANCE_ID_MAX);
    for (i = 0; i < n; i++)
        if (!id_char_ok(id[i]))
            return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                    "%s has character 0x%02x at %zu: Kafka "
                                    "accepts only [a-zA-Z0-9._-]",
                                    what, (unsigned)(unsigned char)id[i], i);
    return 0;
}

int ksafe_group_instance_id(char *buf, size_t size, const char *suffix,
                            ksafe_error *err)
{
    char host[256];
    size_t hlen, slen, i, total;
    int rc;

    if (!buf)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0, "buf is NULL");
    if (size)
        buf[0] = '\0';
    if (!suffix)
        suffix = "";
    slen = strlen(suffix);
    if (slen && (rc = check_instance_id(suffix, "suffix", err)))
        return rc;
    if (gethostname(host, sizeof(host)) != 0)
        return ksafe__error_set(err, KSAFE_EIO, 0, 0,
                                "gethostname failed: no host name to derive "
                                "a group.instance.id from");
    host[sizeof(host) - 1] = '\0';
    hlen = strlen(host);
    if (!hlen)
        return ksafe__error_set(err, KSAFE_EIO, 0, 0,
                                "the host name is empty: no stable "
                                "group.instance.id can be derived");
    for (i = 0; i < hlen; i++)
        if (!id_char_ok(host[i]))
            host[i] = '-';
    if (slen + 1 >= INSTANCE_ID_MAX)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "suffix is %zu characters long: with the "
                                "host name it would exceed Kafka's limit of "
                                "%d",
                                slen, INSTANCE_ID_MAX);
    /* Shorten the host part, never the caller's suffix. */
    if (hlen + (slen ? slen + 1 : 0) > INSTANCE_ID_MAX)
        hlen = INSTANCE_ID_MAX - (slen ? slen + 1 : 0);
    total = hlen + (slen ? slen + 1 : 0);
    if (total + 1 > size)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "buf holds %zu bytes; the id \"%.*s%s%s\" "
                                "needs %zu",
                                size, (int)hlen, host, slen ? "-" : "",
                                suffix, total + 1);
    memcpy(buf, host, hlen);
    if (slen) {
        buf[hlen] = '-';
        memcpy(buf + hlen + 1, suffix, slen);
    }
    buf[total] = '\0';
    return 0;
}

