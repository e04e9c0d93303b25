/*
 * tests/soak_member.c - the soak's group members: one thread per member,
 * each running ksafe_run() on its own consumer. Members of the plain group
 * write every handling into the ledger (duplicates counted per record and
 * per partition episode); members of the dedup group write each record's
 * effect into a SQLite table, in the transaction of a durable SQLite dedup
 * store on the same connection.
 */
#include "soak.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const consumer_props[] = {
    "fetch.wait.max.ms", "10", "reconnect.backoff.max.ms", "500", NULL};

void soak_odd(soak *s, const char *fmt, ...)
{
    va_list ap;

    pthread_mutex_lock(&s->mu);
    if (!s->odd++) {
        va_start(ap, fmt);
        vsnprintf(s->odd_msg, sizeof(s->odd_msg), fmt, ap);
        va_end(ap);
    }
    pthread_mutex_unlock(&s->mu);
}

/* A new episode; mutex held. */
static int episode_new(soak *s, member *m, int p)
{
    if (s->n_eps == s->cap_eps) {
        size_t n = s->cap_eps ? s->cap_eps * 2 : 256;
        episode *e = realloc(s->eps, n * sizeof(*e));
        if (!e)
            abort();
        s->eps = e;
        s->cap_eps = n;
    }
    s->eps[s->n_eps] = (episode){m->group, m->id, p, EP_RUNNING, 0};
    return (int)s->n_eps++;
}

static void episode_end(soak *s, int ep, int kind)
{
    if (ep >= 0 && s->eps[ep].kind != EP_UNCLEAN)
        s->eps[ep].kind = kind;
}

static int part_of(soak *s, const rd_kafka_topic_partition_t *tp)
{
    if (strcmp(tp->topic, s->topic) || tp->partition < 0 ||
        tp->partition >= SOAK_PARTS) {
        soak_odd(s, "hook for %s [%d], not a soak partition", tp->topic,
                 (int)tp->partition);
        return -1;
    }
    return tp->partition;
}

static void on_assigned(ksafe_consumer *c,
                        const rd_kafka_topic_partition_list_t *l, void *pl)
{
    member *m = pl;
    int i, p;

    (void)c;
    pthread_mutex_lock(&m->s->mu);
    for (i = 0; i < l->cnt; i++)
        if ((p = part_of(m->s, &l->elems[i])) >= 0) {
            episode_end(m->s, m->ep[p], EP_UNCLEAN); /* assigned twice? */
            m->ep[p] = episode_new(m->s, m, p);
        }
    pthread_mutex_unlock(&m->s->mu);
}

/* Revoke: clean unless the commit that follows this hook fails (log_cb). */
static void on_revoked(ksafe_consumer *c,
                       const rd_kafka_topic_partition_list_t *l, void *pl)
{
    member *m = pl;
    int i, p;

    (void)c;
    pthread_mutex_lock(&m->s->mu);
    m->n_revoking = 0;
    for (i = 0; i < l->cnt; i++)
        if ((p = part_of(m->s, &l->elems[i])) >= 0 && m->ep[p] >= 0) {
            episode_end(m->s, m->ep[p], EP_CLEAN);
            m->revoking[m->n_revoking++] = m->ep[p];
            m->ep[p] = -1;
        }
    pthread_mutex_unlock(&m->s->mu);
}

static void on_lost(ksafe_consumer *c, const rd_kafka_topic_partition_list_t *l,
                    void *pl)
{
    member *m = pl;
    int i, p;

    (void)c;
    pthread_mutex_lock(&m->s->mu);
    for (i = 0; i < l->cnt; i++)
        if ((p = part_of(m->s, &l->elems[i])) >= 0) {
            episode_end(m->s, m->ep[p], EP_UNCLEAN);
            m->ep[p] = -1;
        }
    pthread_mutex_unlock(&m->s->mu);
}

/* ksafe's own lines say when a hand-over was not clean: the commit at revoke
 * failed ("REVOKE", right after on_revoked on the same thread), or the
 * rebalance failed and the partitions were dropped without a hook. */
static void on_log(int level, const char *fac, const char *msg, void *pl)
{
    member *m = pl;
    int i;

    if (m->s->verbose && level <= KSAFE_LOG_WARNING)
        fprintf(stderr, "soak: member %d: %s: %s\n", m->id, fac, msg);
    if (!strcmp(fac, "REVOKE") && strstr(msg, "commit on revoke")) {
        pthread_mutex_lock(&m->s->mu);
        for (i = 0; i < m->n_revoking; i++)
            episode_end(m->s, m->revoking[i], EP_UNCLEAN);
        m->n_revoking = 0;
        pthread_mutex_unlock(&m->s->mu);
    } else if (!strcmp(fac, "REBALANCE") && strstr(msg, "rebalance failed")) {
        pthread_mutex_lock(&m->s->mu);
        for (i = 0; i < SOAK_PARTS; i++) {
            episode_end(m->s, m->ep[i], EP_UNCLEAN);
            m->ep[i] = -1;
        }
        pthread_mutex_unlock(&m->s->mu);
    }
}

/* The record's sequence number, from its key "k<seq>"; -1 if foreign. */
static int64_t seq_of(soak *s, const ksafe_message *msg)
{
    size_t len;
    const char *k = ksafe_message_key(msg, &len);
    char buf[32];
    char *end;
    unsigned long long v;

    if (!k || len < 2 || len >= sizeof(buf) || k[0] != 'k')
        return -1;
    memcpy(buf, k + 1, len - 1);
    buf[len - 1] = '\0';
    v = strtoull(buf, &end, 10);
    if (*end || v >= s->cap)
        return -1;
    return (int64_t)v;
}

/* The ledger slot of partition p's offset o; mutex held. */
static slot *slot_at(soak *s, int p, int64_t o)
{
    if (o < 0)
        return NULL;
    if (o >= s->n_slots[p]) {
        int64_t n = s->n_slots[p] ? s->n_slots[p] : 1024;
        slot *v;
        while (n <= o)
            n *= 2;
        if (!(v = realloc(s->slots[p], (size_t)n * sizeof(*v))))
            return NULL;
        memset(v + s->n_slots[p], 0,
               (size_t)(n - s->n_slots[p]) * sizeof(*v));
        s->slots[p] = v;
        s->n_slots[p] = n;
    }
    return &s->slots[p][o];
}

static ksafe_handler_result plain_handler(const ksafe_message *msg,
                                          ksafe_error *err, void *pl)
{
    member *m = pl;
    soak *s = m->s;
    int64_t q = seq_of(s, msg);
    int p = ksafe_message_partition(msg), ep;
    rec *r;
    slot *sl;

    (void)err;
    if (q < 0 || p < 0 || p >= SOAK_PARTS) {
        soak_odd(s, "member %d handled a record the soak never sent "
                 "(partition %d offset %lld)", m->id, p,
                 (long long)ksafe_message_offset(msg));
        return KSAFE_HANDLER_OK;
    }
    pthread_mutex_lock(&s->mu);
    ep = m->ep[p];
    r = &s->recs[q];
    if (ep < 0) {
        pthread_mutex_unlock(&s->mu);
        soak_odd(s, "member %d handled partition %d offset %lld, a partition "
                 "it does not own", m->id, p,
                 (long long)ksafe_message_offset(msg));
        return KSAFE_HANDLER_OK;
    }
    if (!(sl = slot_at(s, p, ksafe_message_offset(msg)))) {
        pthread_mutex_unlock(&s->mu);
        soak_odd(s, "out of memory for the ledger");
        return KSAFE_HANDLER_OK;
    }
    s->eps[ep].handled++;
    s->plain_handled++;
    if (!sl->nh)
        sl->seq = q + 1;
    else if (sl->seq != q + 1)
        soak_odd(s, "partition %d offset %lld held record %lld, now %lld", p,
                 (long long)ksafe_message_offset(msg), (long long)sl->seq - 1,
                 (long long)q);
    if (sl->nh < SOAK_KEEP_EPS)
        sl->ep[sl->nh] = ep;
    if (sl->nh < UINT8_MAX)
        sl->nh++;
    if (!r->handled) {
        s->plain_distinct++;
        r->handled = 1;
        r->hp = (int16_t)p;
        r->hoff = ksafe_message_offset(msg);
    } else if (sl->nh == 1) {
        /* The same record at a second offset: written twice. The embedded
         * cluster does not deduplicate an idempotent producer's retries
         * (only a transactional producer's), so a Produce whose answer a
         * downed broker never sent is appended again. */
        s->copies++;
    }
    pthread_mutex_unlock(&s->mu);
    return KSAFE_HANDLER_OK;
}

/* The effect of each record: one row, in the dedup store's transaction. */
static ksafe_handler_result dedup_handler(const ksafe_message *const *msgs,
                                          size_t count, size_t *succeeded,
                                          ksafe_error *err, void *pl)
{
    member *m = pl;
    size_t i;
    int64_t q;

    *succeeded = 0;
    for (i = 0; i < count; i++) {
        if ((q = seq_of(m->s, msgs[i])) < 0) {
            soak_odd(m->s, "dedup member %d handled a record the soak never "
                     "sent", m->id);
            q = -1;
        }
        sqlite3_reset(m->ins);
        sqlite3_bind_int64(m->ins, 1, q);
        sqlite3_bind_int(m->ins, 2, ksafe_message_partition(msgs[i]));
        sqlite3_bind_int64(m->ins, 3, ksafe_message_offset(msgs[i]));
        sqlite3_bind_int(m->ins, 4, m->id);
        if (sqlite3_step(m->ins) != SQLITE_DONE) {
            snprintf(err->message, sizeof(err->message), "effect insert: %s",
                     sqlite3_errmsg(m->db));
            return KSAFE_HANDLER_RETRY; /* the store rolls the batch back */
        }
    }
    return KSAFE_HANDLER_OK;
}

static void *member_main(void *arg)
{
    member *m = arg;
    int i;

    m->rc = ksafe_run(m->c, &m->lo, &m->err);
    if (m->rc) {
        /* Whatever it still held was not handed over cleanly. */
        pthread_mutex_lock(&m->s->mu);
        for (i = 0; i < SOAK_PARTS; i++)
            episode_end(m->s, m->ep[i], EP_UNCLEAN);
        for (i = 0; i < m->n_revoking; i++)
            episode_end(m->s, m->revoking[i], EP_UNCLEAN);
        pthread_mutex_unlock(&m->s->mu);
    }
    atomic_store(&m->ended, 1);
    return NULL;
}

static int open_effects(member *m, ksafe_error *err)
{
    ksafe_dedup_sqlite_options so;

    if (sqlite3_open(m->s->db_path, &m->db) != SQLITE_OK ||
        sqlite3_busy_timeout(m->db, 30000) != SQLITE_OK ||
        sqlite3_exec(m->db, "PRAGMA synchronous=NORMAL", NULL, NULL, NULL) ||
        sqlite3_prepare_v2(m->db,
                           "INSERT INTO effects(seq, part, off, member) "
                           "VALUES (?, ?, ?, ?)",
                           -1, &m->ins, NULL) != SQLITE_OK) {
        snprintf(err->message, sizeof(err->message), "effects db %s: %s",
                 m->s->db_path, m->db ? sqlite3_errmsg(m->db) : "no memory");
        return KSAFE_ESTORE;
    }
    ksafe_dedup_sqlite_options_init(&so, KSAFE_DEDUP_SQLITE_OPTIONS_VERSION);
    so.db = m->db;
    return ksafe_dedup_sqlite_new(&m->store, &so, err);
}

static void member_free(member *m)
{
    ksafe_consumer_free(m->c);
    ksafe_dedup_store_free(m->store);
    sqlite3_finalize(m->ins);
    sqlite3_close(m->db);
    m->c = NULL;
    m->store = NULL;
    m->ins = NULL;
    m->db = NULL;
}

int soak_member_start(soak *s, int group, ksafe_error *err)
{
    ksafe_consumer_options co;
    member *m;
    int i, rc;

    if (s->n_members == SOAK_MAX_MEMBERS)
        return 0; /* the schedule asked for more joins than a run keeps */
    if (!(m = calloc(1, sizeof(*m))))
        return KSAFE_ENOMEM;
    m->s = s;
    m->id = s->n_members;
    m->group = group;
    for (i = 0; i < SOAK_PARTS; i++)
        m->ep[i] = -1;
    ksafe_consumer_options_init(&co, KSAFE_CONSUMER_OPTIONS_VERSION);
    co.bootstrap_servers = s->bootstrap;
    co.group_id = s->group[group];
    co.rdkafka_properties = consumer_props;
    co.max_poll_interval_ms = 30000;
    co.log_cb = on_log;
    co.log_payload = m;
    co.on_assigned = on_assigned;
    co.on_revoked = on_revoked;
    co.on_lost = on_lost;
    co.rebalance_payload = m;
    if ((rc = ksafe_test_consumer_group(&co, ksafe_test_group_timing(1), err)) ||
        (rc = ksafe_consumer_new(&m->c, &co, err)) ||
        (rc = ksafe_consumer_subscribe(m->c, &s->topic, 1, err)))
        goto fail;
    ksafe_loop_options_init(&m->lo, KSAFE_LOOP_OPTIONS_VERSION);
    m->lo.payload = m;
    m->lo.stats = &m->st;
    /* Commit every 200 records or 500 ms; the sync commit at revoke comes
     * on top. */
    m->lo.commit_every_records = 200;
    m->lo.commit_interval_ms = 500;
    m->lo.max_attempts = 1000000; /* an effect insert that fails waits */
    m->lo.backoff_max_ms = 1000;
    if (group == GROUP_PLAIN) {
        m->lo.handler = plain_handler;
    } else {
        if ((rc = open_effects(m, err)))
            goto fail;
        m->lo.batch_handler = dedup_handler;
        m->lo.batch_size = 200;
        m->lo.batch_max_wait_ms = 50;
        m->lo.dedup_store = m->store;
        m->lo.dedup_key = s->key;
    }
    if (pthread_create(&m->th, NULL, member_main, m)) {
        rc = KSAFE_ENOMEM;
        snprintf(err->message, sizeof(err->message), "pthread_create");
        goto fail;
    }
    s->m[s->n_members++] = m;
    s->joins[group]++;
    return 0;
fail:
    member_free(m);
    free(m);
    return rc;
}

void soak_member_stop(member *m)
{
    if (!m->stopping) {
        m->stopping = 1;
        m->s->leaves[m->group]++;
        ksafe_consumer_stop(m->c);
    }
}

int soak_running(soak *s, int group)
{
    int i, n = 0;

    for (i = 0; i < s->n_members; i++)
        n += s->m[i]->group == group && !s->m[i]->stopping;
    return n;
}

int soak_reap(soak *s, int wait_all)
{
    int i, n = 0;

    for (i = 0; i < s->n_members; i++) {
        member *m = s->m[i];
        if (m->reaped || (!wait_all && !atomic_load(&m->ended)))
            continue;
        pthread_join(m->th, NULL);
        m->reaped = 1;
        n++;
        if (!m->stopping) /* ended on its own: a failure, reported */
            soak_odd(s, "member %d's loop ended on its own: %d %s", m->id,
                     m->rc, m->err.message);
        else if (m->rc && m->rc != KSAFE_ECOMMIT)
            soak_odd(s, "member %d's loop returned %d: %s", m->id, m->rc,
                     m->err.message);
        else if (m->rc && s->verbose)
            fprintf(stderr, "soak: member %d: %s\n", m->id, m->err.message);
        s->store_skipped += m->st.duplicates;
        s->parts_lost += m->st.lost;
        s->parts_revoked += m->st.revoked;
        member_free(m);
    }
    return n;
}

int soak_effects(soak *s, sqlite3 *db, int64_t *rows, int64_t *distinct)
{
    sqlite3_stmt *st;
    int rc;

    (void)s;
    if (sqlite3_prepare_v2(db, "SELECT count(*), count(DISTINCT seq) "
                               "FROM effects",
                           -1, &st, NULL) != SQLITE_OK)
        return -1;
    rc = sqlite3_step(st) == SQLITE_ROW ? 0 : -1;
    if (!rc) {
        *rows = sqlite3_column_int64(st, 0);
        *distinct = sqlite3_column_int64(st, 1);
    }
    sqlite3_finalize(st);
    return rc;
}
