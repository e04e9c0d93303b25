/*
 * tests/soak.h - what the soak's two files share: the ledger of produced and
 * handled records, the partition episodes, the group members.
 */
#ifndef KSAFE_SOAK_H
#define KSAFE_SOAK_H

#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdint.h>

#include <ksafe/ksafe.h>

#define SOAK_PARTS 6
#define SOAK_MAX_MEMBERS 512 /* members over a whole run, both groups */
#define SOAK_KEEP_EPS 6      /* handlings of one record remembered */

enum { GROUP_PLAIN = 0, GROUP_DEDUP = 1, GROUPS = 2 };

/* How an owner's hold of a partition ended. CLEAN: revoked and its commit at
 * revoke went through, so the next owner starts after every record it
 * handled. UNCLEAN: lost, a failed revoke commit, a failed rebalance or a
 * loop that ended with an error: records it handled after its last accepted
 * commit may come again. */
enum { EP_RUNNING = 0, EP_CLEAN, EP_UNCLEAN };

typedef struct episode {
    int group, member, partition, kind;
    uint64_t handled;
} episode;

/* One produced record, by sequence number (its key is "k<seq>"). */
typedef struct rec {
    uint8_t state;      /* 0 in flight, 1 delivered, 2 failed, 3 failed but
                           possibly written */
    uint8_t handled;    /* plain group: some copy of it handled */
    int16_t hp;         /* partition of the first handling */
    int32_t dp;         /* delivered partition */
    int64_t doff, hoff; /* delivered / first handled offset */
} rec;

/* One offset of a partition, as the plain group handled it. */
typedef struct slot {
    int64_t seq;               /* 0 until handled, then seq + 1 */
    uint8_t nh;                /* handlings */
    int32_t ep[SOAK_KEEP_EPS]; /* episode of each handling */
} slot;

typedef struct soak soak;

typedef struct member {
    soak *s;
    int id, group;
    ksafe_consumer *c;
    pthread_t th;
    int stopping, reaped;
    atomic_int ended;
    int rc;
    ksafe_error err;
    ksafe_loop_options lo;
    ksafe_loop_stats st;
    int ep[SOAK_PARTS];       /* current episode of each partition, or -1 */
    int revoking[SOAK_PARTS]; /* episodes of the last on_revoked */
    int n_revoking;
    sqlite3 *db;              /* dedup group: the effects' connection */
    sqlite3_stmt *ins;
    ksafe_dedup_store *store;
} member;

struct soak {
    const char *bootstrap, *topic, *group[GROUPS], *db_path;
    pthread_mutex_t mu;       /* ledger, episodes, counters below */
    rec *recs;
    uint64_t cap;             /* records that may be produced */
    atomic_uint_fast64_t sent;
    uint64_t delivered, failed, failed_possibly, no_offset;
    episode *eps;
    size_t n_eps, cap_eps;
    slot *slots[SOAK_PARTS];  /* by offset, grown as needed */
    int64_t n_slots[SOAK_PARTS];
    uint64_t plain_handled, plain_distinct, copies, odd;
    char odd_msg[256];        /* the first impossible thing seen */
    ksafe_dedup_key *key;
    member *m[SOAK_MAX_MEMBERS];
    int n_members, joins[GROUPS], leaves[GROUPS];
    uint64_t store_skipped, parts_lost, parts_revoked; /* loop stats */
    int verbose;
};

typedef struct soak_producer {
    soak *s;
    int rate;
    atomic_int stop;
    int rc;
    ksafe_error err;
    pthread_t th;
} soak_producer;

/* soak_producer.c */
void *soak_producer_main(void *arg); /* a soak_producer */
int64_t soak_now_ms(void);           /* monotonic */

/* soak_member.c */
int soak_member_start(soak *s, int group, ksafe_error *err);
void soak_member_stop(member *m);      /* asks; soak_reap() collects */
int soak_reap(soak *s, int wait_all);  /* joins ended members; count */
int soak_running(soak *s, int group);  /* members not asked to stop */
void soak_odd(soak *s, const char *fmt, ...);
int soak_effects(soak *s, sqlite3 *db, int64_t *rows, int64_t *distinct);

#endif
