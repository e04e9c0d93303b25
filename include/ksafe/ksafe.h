/**
 * @file
 * ksafe/ksafe.h - the whole public API.
 *
 * ksafe is a small C library over librdkafka that makes the safe way to use
 * Kafka the easy way. See README.md for the tour, docs/ for the guides.
 */
#ifndef KSAFE_KSAFE_H
#define KSAFE_KSAFE_H

/**
 * @mainpage ksafe API reference
 *
 * Generated from the doc comments of the public headers; include
 * ksafe/ksafe.h for all of them. One header per module:
 * - ksafe/error.h: ksafe_error and the KSAFE_E* codes;
 * - ksafe/options.h: the fields both clients share, logging, the guard;
 * - ksafe/producer.h and ksafe/txn.h: sending, reports, transactions;
 * - ksafe/consumer.h: marking, commits, rebalances;
 * - ksafe/loop.h: the at-least-once loop ksafe_run();
 * - ksafe/relay.h: exactly-once consume-transform-produce, ksafe_relay_run();
 * - ksafe/dedup.h: dedup keys and stores;
 * - ksafe/config.h: options from JSON;
 * - ksafe/mock.h: the embedded cluster and the test kit;
 * - ksafe/scenario.h: the scenario kit, for testing handlers under faults.
 *
 * The guides (README.md and docs/ in the source tree) explain the
 * guarantees and the choices behind them.
 */

#include "common.h"
#include "error.h"
#include "options.h"
#include "producer.h"
#include "txn.h"
#include "consumer.h"
#include "stats.h"
#include "config.h"
#include "loop.h"
#include "mock.h"
#include "scenario.h"
#include "dedup.h"
#include "relay.h"

#endif
