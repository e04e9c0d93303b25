/*
 * lib/client.c - the options shared by producers and consumers, the raw
 * property escape hatch and its safety guard.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "internal.h"
#include "rdkafka_versions.h"

/* 1 when `word` (lower case) occurs in `s`, in any case. */
static int contains_nocase(const char *s, const char *word)
{
    size_t n = strlen(s), w = strlen(word), i;

    for (i = 0; i + w <= n; i++)
        if (strncasecmp(s + i, word, w) == 0)
            return 1;
    return 0;
}

/* In any case: a mistyped "sasl.Password" is refused by librdkafka with a
 * message, and its value must stay out of that message as well. */
int ksafe__is_secret_key(const char *key)
{
    return contains_nocase(key, "password") ||
           contains_nocase(key, "secret") ||
           strstr(key, "sasl.oauthbearer.config") ||
           strcmp(key, "ssl.key.pem") == 0 ||
           strcmp(key, "ssl_key") == 0;
}

int ksafe__conf_set(rd_kafka_conf_t *conf, const char *key, const char *value,
                    ksafe_error *err)
{
    char errstr[256];

    if (rd_kafka_conf_set(conf, key, value, errstr, sizeof(errstr)) ==
        RD_KAFKA_CONF_OK)
        return 0;
    if (ksafe__is_secret_key(key))
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "librdkafka refused property \"%s\" "
                                "(value not shown: it is a secret)",
                                key);
    return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                            "librdkafka refused property \"%s\"=\"%s\": %s",
                            key, value, errstr);
}

/* ---- validation -------------------------------------------------------- */

int ksafe__check_range(ksafe_error *err, const char *field, long long value,
                       long long lo, long long hi)
{
    if (value >= lo && value <= hi)
        return 0;
    return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                            "%s is %lld, outside %lld..%lld", field, value,
                            lo, hi);
}

static int check_raw(const ksafe__client_view *v, ksafe_error *err);

static int is_sasl(ksafe_security_protocol p)
{
    return p == KSAFE_SECURITY_SASL_PLAINTEXT || p == KSAFE_SECURITY_SASL_SSL;
}

static int is_ssl(ksafe_security_protocol p)
{
    return p == KSAFE_SECURITY_SSL || p == KSAFE_SECURITY_SASL_SSL;
}

int ksafe__rdkafka_version_check(ksafe_error *err)
{
    if (!ksafe__rdkafka_too_old(rd_kafka_version(), RD_KAFKA_VERSION))
        return 0;
    return ksafe__error_set(
        err, KSAFE_EKAFKA, 0, 0,
        "this process runs librdkafka %s (0x%08x), older than the librdkafka "
        "headers ksafe was built with (0x%08x) or than 2.0.2: it may lack "
        "functions and fixes ksafe relies on. Run with the librdkafka ksafe "
        "was built against (check LD_LIBRARY_PATH), or rebuild ksafe",
        rd_kafka_version_str(), (unsigned)rd_kafka_version(),
        (unsigned)RD_KAFKA_VERSION);
}

int ksafe__client_validate(const ksafe__client_view *v, ksafe_error *err)
{
    size_t n;
    int rc;

    if ((rc = ksafe__rdkafka_version_check(err)))
        return rc;

    if (!v->bootstrap_servers || !*v->bootstrap_servers)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "bootstrap_servers is required "
                                "(\"host:port[,host:port...]\")");
    if ((unsigned)v->security_protocol > KSAFE_SECURITY_SASL_SSL)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "security_protocol %d is not a "
                                "ksafe_security_protocol value",
                                (int)v->security_protocol);
    if ((unsigned)v->sasl_mechanism > KSAFE_SASL_SCRAM_SHA_512)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "sasl_mechanism %d is not a "
                                "ksafe_sasl_mechanism value",
                                (int)v->sasl_mechanism);
    if (is_sasl(v->security_protocol)) {
        if (!v->sasl_username || !*v->sasl_username)
            return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                    "sasl_username is required with a SASL "
                                    "security_protocol");
        if (!v->sasl_password)
            return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                    "sasl_password is required with a SASL "
                                    "security_protocol");
    } else if (v->sasl_username || v->sasl_password) {
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "sasl_username/sasl_password are set but "
                                "security_protocol is not SASL: the "
                                "credentials would be ignored");
    }
    if (!is_ssl(v->security_protocol) &&
        (v->ssl_ca_location || v->ssl_certificate_location ||
         v->ssl_key_location || v->ssl_key_password))
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "ssl_* paths are set but security_protocol "
                                "does not use SSL: they would be ignored");
    if (v->rdkafka_properties) {
        for (n = 0; v->rdkafka_properties[n]; n += 2) {
            if (!v->rdkafka_properties[n + 1])
                return ksafe__error_set(
                    err, KSAFE_EINVAL, 0, 0,
                    "rdkafka_properties: \"%s\" has no value (the list is "
                    "key, value, ..., NULL)",
                    v->rdkafka_properties[n]);
            if (!*v->rdkafka_properties[n])
                return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                        "rdkafka_properties: empty key at "
                                        "index %zu",
                                        n);
        }
    }
    if (v->allow_unsafe != 0 && v->allow_unsafe != 1)
        return ksafe__error_set(err, KSAFE_EINVAL, 0, 0,
                                "allow_unsafe must be 0 or 1, not %d",
                                v->allow_unsafe);
    return check_raw(v, err);
}

/* ---- typed fields ------------------------------------------------------ */

static const char *const security_names[] = {"plaintext", "ssl",
                                             "sasl_plaintext", "sasl_ssl"};
static const char *const sasl_names[] = {"PLAIN", "SCRAM-SHA-256",
                                         "SCRAM-SHA-512"};

int ksafe__client_conf(const ksafe__client_view *v, rd_kafka_conf_t *conf,
                       ksafe_error *err)
{
    struct {
        const char *key, *value;
    } set[] = {
        {"bootstrap.servers", v->bootstrap_servers},
        {"client.id", v->client_id},
        {"security.protocol", security_names[v->security_protocol]},
        {"sasl.mechanisms",
         is_sasl(v->security_protocol) ? sasl_names[v->sasl_mechanism] : NULL},
        {"sasl.username", v->sasl_username},
        {"sasl.password", v->sasl_password},
        {"ssl.ca.location", v->ssl_ca_location},
        {"ssl.certificate.location", v->ssl_certificate_location},
        {"ssl.key.location", v->ssl_key_location},
        {"ssl.key.password", v->ssl_key_password},
    };
    size_t i;
    int rc;

    for (i = 0; i < sizeof(set) / sizeof(set[0]); i++)
        if (set[i].value &&
            (rc = ksafe__conf_set(conf, set[i].key, set[i].value, err)))
            return rc;
    rd_kafka_conf_set_log_cb(conf, ksafe__log_bridge);
    return 0;
}

/* ---- raw properties and the guard -------------------------------------- */

/*
 * Each guard lists the values that keep the guarantee; any other value is
 * unsafe. Listing the safe ones (rather than the unsafe) means a spelling
 * librdkafka accepts but we did not foresee is refused, not let through.
 */
typedef struct guard {
    const char *key;
    const char *safe[4];
    const char *risk;
} guard;

static const guard guards[] = {
    {"enable.auto.commit", {"false", "0", "f", NULL},
     "auto commit can mark records processed before your handler ran: "
     "loss on crash"},
    {"enable.auto.offset.store", {"false", "0", "f", NULL},
     "auto offset store marks each record processed as soon as poll "
     "returns it: loss on crash"},
    {"acks", {"all", "-1", NULL},
     "a leader can acknowledge a record that no other replica has: loss "
     "when the leader fails"},
    {"request.required.acks", {"all", "-1", NULL},
     "a leader can acknowledge a record that no other replica has: loss "
     "when the leader fails"},
    {"enable.idempotence", {"true", "1", "t", NULL},
     "producer retries can duplicate and reorder records"},
    {"isolation.level", {"read_committed", NULL},
     "records of aborted and unfinished transactions become visible: "
     "effects of work that was rolled back"},
    {"max.in.flight.requests.per.connection", {"1", "2", "3", "4"},
     "more than 5 in-flight requests break idempotent ordering"},
    {"max.in.flight", {"1", "2", "3", "4"},
     "more than 5 in-flight requests break idempotent ordering"},
};

/* max.in.flight's safe list does not fit in four slots: 5 is added here. */
static int is_safe_value(const guard *g, const char *value)
{
    size_t i;

    if (strncmp(g->key, "max.in.flight", 13) == 0 && strcmp(value, "5") == 0)
        return 1;
    for (i = 0; i < 4 && g->safe[i]; i++)
        if (strcasecmp(value, g->safe[i]) == 0)
            return 1;
    return 0;
}

static const guard *find_guard(const char *key)
{
    size_t i;

    for (i = 0; i < sizeof(guards) / sizeof(guards[0]); i++)
        if (strcmp(guards[i].key, key) == 0)
            return &guards[i];
    return NULL;
}

/* The guard `value` breaks for `key`, or NULL when it keeps the guarantee. */
static const guard *broken_guard(const char *key, const char *value)
{
    const guard *g = find_guard(key);

    return g && !is_safe_value(g, value) ? g : NULL;
}

static int refuse_unsafe(const guard *g, const char *key, const char *value,
                         ksafe_error *err)
{
    return ksafe__error_set(err, KSAFE_EUNSAFE, 0, 0,
                            "refused rdkafka property %s=%s: %s (set "
                            "allow_unsafe to accept the risk)",
                            key, value, g->risk);
}

/*
 * What _new would refuse of the raw properties, found without creating
 * anything: the guard, then librdkafka's own checks on a scratch
 * configuration (unknown properties, values it cannot parse). Validation
 * and _new both run this, so a validated set is one _new accepts.
 */
static int check_raw(const ksafe__client_view *v, ksafe_error *err)
{
    const char *const *p = v->rdkafka_properties;
    rd_kafka_conf_t *scratch;
    int rc = 0;

    for (; p && p[0]; p += 2) {
        const guard *g = broken_guard(p[0], p[1]);
        if (g && !v->allow_unsafe)
            return refuse_unsafe(g, p[0], p[1], err);
    }
    if (!v->rdkafka_properties)
        return 0;
    if (!(scratch = rd_kafka_conf_new()))
        return ksafe__error_set(err, KSAFE_ENOMEM, 0, 0, "out of memory");
    for (p = v->rdkafka_properties; !rc && p[0]; p += 2)
        rc = ksafe__conf_set(scratch, p[0], p[1], err);
    rd_kafka_conf_destroy(scratch);
    return rc;
}

int ksafe__client_conf_raw(ksafe__client *cl, const ksafe__client_view *v,
                           rd_kafka_conf_t *conf, ksafe_error *err)
{
    const char *const *p = v->rdkafka_properties;
    int rc;

    /* Validation ran check_raw(): the guard only has allowed overrides left
     * to log here, but it stays a guard if a caller skipped validation. */
    for (; p && p[0]; p += 2) {
        const guard *g = broken_guard(p[0], p[1]);

        if (g && !v->allow_unsafe)
            return refuse_unsafe(g, p[0], p[1], err);
        if (g)
            ksafe__log(cl, KSAFE_LOG_WARNING, "UNSAFE",
                       "allow_unsafe: applying %s=%s: %s", p[0], p[1],
                       g->risk);
        if ((rc = ksafe__conf_set(conf, p[0], p[1], err)))
            return rc;
    }
    return 0;
}

/* ---- lifetime ---------------------------------------------------------- */

static int add_secret(ksafe__client *cl, const char *value)
{
    char **grown;

    if (!value || !*value)
        return 0;
    grown = realloc(cl->secrets, (cl->n_secrets + 1) * sizeof(*grown));
    if (!grown)
        return -1;
    cl->secrets = grown;
    if (!(cl->secrets[cl->n_secrets] = ksafe__strdup(value)))
        return -1;
    cl->n_secrets++;
    return 0;
}

int ksafe__client_init(ksafe__client *cl, ksafe__client_kind kind,
                       const ksafe__client_view *v, ksafe_error *err)
{
    const char *const *p;
    int rc = 0;

    cl->kind = kind;
    cl->log_cb = v->log_cb;
    cl->log_payload = v->log_payload;
    rc |= add_secret(cl, v->sasl_password);
    rc |= add_secret(cl, v->ssl_key_password);
    for (p = v->rdkafka_properties; p && p[0]; p += 2)
        if (ksafe__is_secret_key(p[0]))
            rc |= add_secret(cl, p[1]);
    if (rc)
        return ksafe__error_set(err, KSAFE_ENOMEM, 0, 0, "out of memory");
    return 0;
}

int ksafe__client_start(ksafe__client *cl, rd_kafka_conf_t *conf,
                        ksafe_error *err)
{
    char errstr[512];
    rd_kafka_type_t type =
        cl->kind == KSAFE__PRODUCER ? RD_KAFKA_PRODUCER : RD_KAFKA_CONSUMER;

    rd_kafka_conf_set_opaque(conf, cl);
    cl->rk = rd_kafka_new(type, conf, errstr, sizeof(errstr));
    if (!cl->rk) {
        rd_kafka_conf_destroy(conf);
        return ksafe__error_set(err, KSAFE_EKAFKA, 0, 0,
                                "librdkafka could not create the %s: %s",
                                cl->kind == KSAFE__PRODUCER ? "producer"
                                                            : "consumer",
                                errstr);
    }
    return 0;
}

void ksafe__client_release(ksafe__client *cl)
{
    if (cl->rk)
        rd_kafka_destroy(cl->rk);
    cl->rk = NULL;
    while (cl->n_secrets)
        free(cl->secrets[--cl->n_secrets]);
    free(cl->secrets);
    cl->secrets = NULL;
}
