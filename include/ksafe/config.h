/**
 * @file
 * ksafe/config.h - options from a JSON document (schema in
 * docs/configuration.md).
 *
 * A ksafe_config owns every string of the options it fills (the
 * rdkafka_properties list included): keep it alive until the *_new() call
 * that uses them has returned (that call copies them), then free it.
 * A config is read-only once loaded: several threads may fill options from
 * the same one.
 */
#ifndef KSAFE_CONFIG_H
#define KSAFE_CONFIG_H

#include "common.h"
#include "consumer.h"
#include "error.h"
#include "producer.h"

KSAFE_BEGIN_DECLS

/**
 * A loaded JSON configuration (opaque), never modified after loading, so
 * several threads may fill options from it. Owns the strings of the options
 * it fills; release with ksafe_config_free() after the *_new() calls.
 */
typedef struct ksafe_config ksafe_config;

/**
 * Parses and checks a JSON text (NUL-terminated, UTF-8); on success *out is
 * a new config owned by the caller (release it with ksafe_config_free()).
 * Every key is optional. Syntax errors, duplicate and unknown keys, wrong
 * types, bad enum values and integers outside int fail with KSAFE_EJSON; the
 * message carries the JSON path and line:column, e.g.
 * "$.consumer.auto_offset_reset: "oldest" is not one of earliest, latest,
 * error (line 7, column 26)". Values of keys naming a password or secret are
 * never shown. KSAFE_EINVAL for NULL arguments. *out is NULL on failure.
 */
KSAFE_EXTERN int ksafe_config_load_string(ksafe_config **out,
                                          const char *json, ksafe_error *err);

/**
 * As ksafe_config_load_string() on a file's contents; messages start with
 * the file name. KSAFE_EIO (with the path and the system's reason) if the
 * file cannot be opened or read.
 */
KSAFE_EXTERN int ksafe_config_load_file(ksafe_config **out, const char *path,
                                        ksafe_error *err);

/**
 * Fills all of `opts` with the safe preset (KSAFE_PRODUCER_OPTIONS_INIT)
 * overlaid by the document's shared keys and its "producer" section (the
 * "consumer" section is ignored), then validates it as
 * ksafe_producer_options_validate() does: e.g. a missing bootstrap_servers
 * fails here with KSAFE_EINVAL. Strings point into `cfg`. Callbacks cannot
 * come from JSON: they are NULL; set log_cb, on_delivery etc. afterwards.
 * On a validation failure `opts` is filled all the same.
 */
KSAFE_EXTERN int ksafe_config_producer_options(const ksafe_config *cfg,
                                               ksafe_producer_options *opts,
                                               ksafe_error *err);

/**
 * As ksafe_config_producer_options() for the consumer: the shared keys and
 * the "consumer" section over KSAFE_CONSUMER_OPTIONS_INIT, validated as
 * ksafe_consumer_options_validate() does (group_id is required). The
 * rebalance hooks and log_cb are NULL.
 */
KSAFE_EXTERN int ksafe_config_consumer_options(const ksafe_config *cfg,
                                               ksafe_consumer_options *opts,
                                               ksafe_error *err);

/** Releases the configuration and the strings it owns. Accepts NULL. */
KSAFE_EXTERN void ksafe_config_free(ksafe_config *cfg);

KSAFE_END_DECLS

#endif
