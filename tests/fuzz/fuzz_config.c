/*
 * tests/fuzz/fuzz_config.c - the JSON config loader (ksafe/config.h) on
 * any bytes.
 *
 * Each input is loaded twice: as a string (the bytes up to the first NUL)
 * and as a file (every byte, NULs included, through
 * ksafe_config_load_file()). A document that loads is then turned into
 * producer and consumer options, and every string they point to is read,
 * so a pointer into freed or unowned memory shows under ASan. Contract
 * checked: 0 or a negative KSAFE_E* code, an error names what failed and
 * where (a JSON path and line:column; the file name first for a file), a
 * config exists exactly when the load succeeded, and (libFuzzer's
 * -detect_leaks, on with ASan) nothing leaks.
 */
#include <unistd.h>

#include "fuzz.h"

static int tmp_fd = -1;
static char tmp_path[64];

/* One scratch file per process, already unlinked: nothing to clean up,
 * reachable through /proc while the descriptor is open. */
static int scratch_file(void)
{
    char name[] = "/tmp/ksafe-fuzz-config-XXXXXX";
    const char *dir = getenv("TMPDIR");
    char buf[512];

    if (tmp_fd >= 0)
        return 0;
    if (dir && *dir && strlen(dir) < sizeof(buf) - 32) {
        snprintf(buf, sizeof(buf), "%s/ksafe-fuzz-config-XXXXXX", dir);
        tmp_fd = mkstemp(buf);
        if (tmp_fd >= 0)
            unlink(buf);
    }
    if (tmp_fd < 0 && (tmp_fd = mkstemp(name)) >= 0)
        unlink(name);
    FUZZ_ASSERT(tmp_fd >= 0, "cannot create a scratch file");
    snprintf(tmp_path, sizeof(tmp_path), "/proc/self/fd/%d", tmp_fd);
    return 0;
}

static size_t touch(const char *s)
{
    return s ? strlen(s) : 0;
}

/* Reads every string the options point to. */
static size_t touch_shared(const char *bootstrap, const char *client_id,
                           const char *user, const char *password,
                           const char *ca, const char *cert, const char *key,
                           const char *key_password,
                           const char *const *props)
{
    size_t n = touch(bootstrap) + touch(client_id) + touch(user) +
               touch(password) + touch(ca) + touch(cert) + touch(key) +
               touch(key_password);

    for (; props && props[0]; props += 2) {
        FUZZ_ASSERT(props[1] != NULL, "property \"%s\" has no value",
                    props[0]);
        n += touch(props[0]) + touch(props[1]);
    }
    return n;
}

#define TOUCH_SHARED(o)                                                      \
    touch_shared((o).bootstrap_servers, (o).client_id, (o).sasl_username,    \
                 (o).sasl_password, (o).ssl_ca_location,                     \
                 (o).ssl_certificate_location, (o).ssl_key_location,         \
                 (o).ssl_key_password, (o).rdkafka_properties)

static void check_options(const ksafe_config *cfg)
{
    ksafe_producer_options po;
    ksafe_consumer_options co;
    ksafe_error err;
    volatile size_t sink;
    int rc;

    memset(&err, 0xa5, sizeof(err));
    rc = ksafe_config_producer_options(cfg, &po, &err);
    fuzz_check_rc("ksafe_config_producer_options", rc, &err);
    /* filled on a validation failure too */
    sink = TOUCH_SHARED(po) + touch(po.transactional_id);

    memset(&err, 0xa5, sizeof(err));
    rc = ksafe_config_consumer_options(cfg, &co, &err);
    fuzz_check_rc("ksafe_config_consumer_options", rc, &err);
    sink = TOUCH_SHARED(co) + touch(co.group_id) + touch(co.group_instance_id);
    (void)sink;
}

/* A load's result, and what its error says. */
static void check_load(const char *call, int rc, ksafe_config *cfg,
                       const ksafe_error *err, const char *origin)
{
    fuzz_check_rc(call, rc, err);
    if (rc) {
        FUZZ_ASSERT(cfg == NULL, "%s failed (%d) but gave a config", call,
                    rc);
        FUZZ_ASSERT(rc == KSAFE_EJSON || rc == KSAFE_ENOMEM ||
                        (origin && rc == KSAFE_EIO),
                    "%s: unexpected code %d: %s", call, rc, err->message);
        if (rc == KSAFE_EJSON) {
            FUZZ_ASSERT(strstr(err->message, "$") != NULL,
                        "%s: no JSON path in \"%s\"", call, err->message);
            FUZZ_ASSERT(strstr(err->message, "(line ") != NULL,
                        "%s: no line:column in \"%s\"", call, err->message);
        }
        if (origin)
            FUZZ_ASSERT(strncmp(err->message, origin, strlen(origin)) == 0,
                        "%s: message does not start with the file name: "
                        "\"%s\"",
                        call, err->message);
        return;
    }
    FUZZ_ASSERT(cfg != NULL, "%s returned 0 without a config", call);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ksafe_config *cfg = NULL, *again = NULL;
    ksafe_error err;
    char *text;
    int rc, rc2;

    /* as a string: NUL-terminated, so the bytes up to the first NUL */
    text = malloc(size + 1);
    FUZZ_ASSERT(text != NULL, "out of memory");
    memcpy(text, data, size);
    text[size] = '\0';
    memset(&err, 0xa5, sizeof(err));
    rc = ksafe_config_load_string(&cfg, text, &err);
    check_load("ksafe_config_load_string", rc, cfg, &err, NULL);
    /* without an error struct: same answer */
    rc2 = ksafe_config_load_string(&again, text, NULL);
    FUZZ_ASSERT(rc2 == rc, "load_string gave %d with err, %d without", rc,
                rc2);
    ksafe_config_free(again);
    free(text);
    if (cfg)
        check_options(cfg);
    ksafe_config_free(cfg);
    cfg = NULL;

    /* as a file: every byte */
    scratch_file();
    FUZZ_ASSERT(ftruncate(tmp_fd, 0) == 0, "ftruncate");
    FUZZ_ASSERT(size == 0 || pwrite(tmp_fd, data, size, 0) == (ssize_t)size,
                "pwrite");
    memset(&err, 0xa5, sizeof(err));
    rc = ksafe_config_load_file(&cfg, tmp_path, &err);
    check_load("ksafe_config_load_file", rc, cfg, &err, tmp_path);
    if (cfg)
        check_options(cfg);
    ksafe_config_free(cfg);
    return 0;
}
