/*
 * lib/config.c - options from JSON (placeholder until the loader lands).
 */
#include "internal.h"

int ksafe_config_load_string(ksafe_config **out, const char *json,
                             ksafe_error *err)
{
    KSAFE__UNUSED(json);
    if (out)
        *out = NULL;
    return ksafe__error_set(err, KSAFE_EJSON, 0, 0, "not implemented");
}

int ksafe_config_load_file(ksafe_config **out, const char *path,
                           ksafe_error *err)
{
    KSAFE__UNUSED(path);
    if (out)
        *out = NULL;
    return ksafe__error_set(err, KSAFE_EIO, 0, 0, "not implemented");
}

int ksafe_config_producer_options(const ksafe_config *cfg,
                                  ksafe_producer_options *opts,
                                  ksafe_error *err)
{
    KSAFE__UNUSED(cfg);
    KSAFE__UNUSED(opts);
    return ksafe__error_set(err, KSAFE_EINVAL, 0, 0, "not implemented");
}

int ksafe_config_consumer_options(const ksafe_config *cfg,
                                  ksafe_consumer_options *opts,
                                  ksafe_error *err)
{
    KSAFE__UNUSED(cfg);
    KSAFE__UNUSED(opts);
    return ksafe__error_set(err, KSAFE_EINVAL, 0, 0, "not implemented");
}

void ksafe_config_free(ksafe_config *cfg)
{
    KSAFE__UNUSED(cfg);
}
