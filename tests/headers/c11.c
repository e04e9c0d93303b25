/* Compiled with -std=c11 -pedantic -Werror: the public headers must not
 * trip a user's strict compiler. */
#include <ksafe/ksafe.h>

int ksafe_header_check_c11(void);
int ksafe_header_check_c11(void)
{
    ksafe_producer_options p = KSAFE_PRODUCER_OPTIONS_INIT;
    ksafe_consumer_options c = KSAFE_CONSUMER_OPTIONS_INIT;
    ksafe_record r = KSAFE_RECORD_INIT;
    return (int)p.version + (int)c.version + (int)r.partition;
}
