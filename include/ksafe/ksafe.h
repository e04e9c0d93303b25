/**
 * @file
 * ksafe/ksafe.h - the whole public API.
 *
 * ksafe is a small C library over librdkafka that makes the safe way to use
 * Kafka the easy way. See README.md for the tour, docs/ for the guides.
 */
#ifndef KSAFE_KSAFE_H
#define KSAFE_KSAFE_H

#include "common.h"
#include "error.h"
#include "options.h"
#include "producer.h"
#include "txn.h"
#include "consumer.h"
#include "config.h"
#include "loop.h"
#include "mock.h"
#include "dedup.h"

#endif
