/* Compiled with -std=c11 -pedantic -Werror: the public headers must not
 * trip a user's strict compiler. */
#include <ksafe/ksafe.h>
#include <ksafe/stats.h>

int ksafe_header_check_c11(void);
int ksafe_header_check_c11(void)
{
    ksafe_producer_options p = KSAFE_PRODUCER_OPTIONS_INIT;
    ksafe_consumer_options c = KSAFE_CONSUMER_OPTIONS_INIT;
    ksafe_record r = KSAFE_RECORD_INIT;
    ksafe_dedup_memory_options dm = KSAFE_DEDUP_MEMORY_OPTIONS_INIT;
    ksafe_dedup_sqlite_options ds = KSAFE_DEDUP_SQLITE_OPTIONS_INIT;
    ksafe_dedup_pg_options dp = KSAFE_DEDUP_PG_OPTIONS_INIT;
    return (int)p.version + (int)c.version + (int)r.partition +
           (int)dm.version + (int)ds.version + (int)dp.version +
           ksafe_stats_known(KSAFE_STATS_UNKNOWN);
}
