/*
 * lib/producer_internal.h - the producer's state, shared by its files.
 */
#ifndef KSAFE_PRODUCER_INTERNAL_H
#define KSAFE_PRODUCER_INTERNAL_H

#include "internal.h"

struct ksafe_producer {
    ksafe__client cl; /* first: rd_kafka_opaque() points here */
    ksafe_delivery_cb on_delivery;
    void *delivery_payload;
    ksafe_queue_full_policy queue_full;
    int queue_full_timeout_ms;
    int delivery_timeout_ms;
    int transactional;
    int closed;
    uint64_t delivered; /* delivery reports served, by outcome */
    uint64_t failed;
};

void ksafe__producer_dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m,
                           void *opaque);
int ksafe__producer_fatal_error(ksafe_producer *p, ksafe_error *err);

#endif
