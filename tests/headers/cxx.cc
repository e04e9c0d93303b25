// The public headers used from C++.
#include <ksafe/ksafe.h>
#include <ksafe/stats.h>

int ksafe_header_check_cxx();
int ksafe_header_check_cxx()
{
    ksafe_producer_options p = KSAFE_PRODUCER_OPTIONS_INIT;
    ksafe_consumer_options c = KSAFE_CONSUMER_OPTIONS_INIT;
    ksafe_record r = KSAFE_RECORD_INIT;
    return static_cast<int>(p.version + c.version) + r.partition +
           ksafe_stats_known(KSAFE_STATS_UNKNOWN);
}
