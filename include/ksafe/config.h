/*
 * ksafe/config.h - options from a JSON document (schema in README.md).
 *
 * A ksafe_config owns the strings of the options it fills: keep it alive
 * until the *_new() call that uses them has returned, then free it.
 */
#ifndef KSAFE_CONFIG_H
#define KSAFE_CONFIG_H

#include "common.h"
#include "consumer.h"
#include "error.h"
#include "producer.h"

KSAFE_BEGIN_DECLS

typedef struct ksafe_config ksafe_config;

/**
 * Parses a JSON text. Syntax errors, unknown keys, wrong types and bad enum
 * values fail with KSAFE_EJSON; the message carries the JSON path
 * (e.g. "$.consumer.auto_offset_reset") and line:column.
 */
KSAFE_EXTERN int ksafe_config_load_string(ksafe_config **out,
                                          const char *json, ksafe_error *err);

/** As ksafe_config_load_string() on a file's contents; KSAFE_EIO if unreadable. */
KSAFE_EXTERN int ksafe_config_load_file(ksafe_config **out, const char *path,
                                        ksafe_error *err);

/**
 * Fills `opts` with the safe preset overlaid by the document's shared and
 * "producer" parts. Strings point into `cfg`. The options are validated.
 */
KSAFE_EXTERN int ksafe_config_producer_options(const ksafe_config *cfg,
                                               ksafe_producer_options *opts,
                                               ksafe_error *err);

/** As ksafe_config_producer_options() for the "consumer" part. */
KSAFE_EXTERN int ksafe_config_consumer_options(const ksafe_config *cfg,
                                               ksafe_consumer_options *opts,
                                               ksafe_error *err);

/** Releases the configuration. Accepts NULL. */
KSAFE_EXTERN void ksafe_config_free(ksafe_config *cfg);

KSAFE_END_DECLS

#endif
