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
 * config exists exactly when the load succeeded, the value of a key
 * naming a password or secret is never in a message, and (libFuzzer's
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

/*
 * The line:column an error names lies in the text: a line that exists, a
 * column at most one past its last character. `text` is what was parsed
 * (for a string, up to its NUL).
 */
static void check_location(const char *call, const char *msg,
                           const char *text, size_t len)
{
    const char *at = NULL, *p;
    long line, col, l = 1, chars = 0;
    size_t i;

    for (p = msg; (p = strstr(p, "(line ")); p++)
        at = p; /* the last one: a value shown in the message may hold one */
    if (!at || sscanf(at, "(line %ld, column %ld)", &line, &col) != 2)
        return;
    FUZZ_ASSERT(line >= 1 && col >= 1, "%s: line %ld column %ld in \"%s\"",
                call, line, col, msg);
    for (i = 0; i < len && l < line; i++)
        l += text[i] == '\n';
    FUZZ_ASSERT(l == line, "%s: line %ld of a %ld-line text: \"%s\"", call,
                line, l, msg);
    for (; i < len && text[i] != '\n'; i++)
        chars += ((unsigned char)text[i] & 0xc0) != 0x80;
    FUZZ_ASSERT(col <= chars + 1,
                "%s: column %ld of a %ld-character line %ld: \"%s\"", call,
                col, chars, line, msg);
}

/* A load's result, and what its error says. */
static void check_load(const char *call, int rc, ksafe_config *cfg,
                       const ksafe_error *err, const char *origin,
                       const char *text, size_t len)
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
            check_location(call, err->message, text, len);
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

/* ---- secrets never shown ----------------------------------------------- */

static int has_word(const char *s, size_t n, const char *w)
{
    size_t wl = strlen(w), i, j;

    for (i = 0; i + wl <= n; i++) {
        for (j = 0; j < wl && (s[i + j] | 0x20) == w[j]; j++)
            ;
        if (j == wl)
            return 1;
    }
    return 0;
}

static size_t count(const char *s, size_t n, const char *w, size_t wl)
{
    size_t i, c = 0;

    for (i = 0; i + wl <= n; i++)
        c += memcmp(s + i, w, wl) == 0;
    return c;
}

static int is_plain(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || c == '_' || c == '-';
}

/*
 * The first `"...password..." : "<value>"` (or "secret") in the text whose
 * value is 6 to 64 plain characters written nowhere else: 0 and where the
 * value is, or -1.
 */
static int find_secret(const char *t, size_t n, size_t *off, size_t *len)
{
    size_t i, j, k;

    for (i = 0; i < n; i++) {
        if (t[i] != '"')
            continue;
        for (j = i + 1; j < n && t[j] != '"' && t[j] != '\\'; j++)
            ;
        if (j >= n || t[j] != '"')
            continue;
        if (!has_word(t + i + 1, j - i - 1, "password") &&
            !has_word(t + i + 1, j - i - 1, "secret"))
            continue;
        for (k = j + 1; k < n && (t[k] == ' ' || t[k] == '\n'); k++)
            ;
        if (k >= n || t[k] != ':')
            continue;
        for (k++; k < n && (t[k] == ' ' || t[k] == '\n'); k++)
            ;
        if (k >= n || t[k] != '"')
            continue;
        for (j = ++k; j < n && is_plain(t[j]); j++)
            ;
        if (j < n && t[j] == '"' && j - k >= 6 && j - k <= 64 &&
            count(t, n, t + k, j - k) == 1) {
            *off = k;
            *len = j - k;
            return 0;
        }
    }
    return -1;
}

/* Every message the text leads to: the load's, or the two options'. */
static void messages(const char *text, char *out, size_t size)
{
    ksafe_config *cfg = NULL;
    ksafe_producer_options po;
    ksafe_consumer_options co;
    ksafe_error err;

    out[0] = '\0';
    if (ksafe_config_load_string(&cfg, text, &err)) {
        snprintf(out, size, "%s", err.message);
        return;
    }
    if (ksafe_config_producer_options(cfg, &po, &err))
        snprintf(out, size, "%s\n", err.message);
    if (ksafe_config_consumer_options(cfg, &co, &err))
        snprintf(out + strlen(out), size - strlen(out), "%s", err.message);
    ksafe_config_free(cfg);
}

/*
 * A secret's value may be in a message only where a different value would
 * be too (a key name or hint that happens to match): replace it by another
 * of the same length and see whether the messages still hold the original.
 */
static void check_secret(const char *text, size_t n)
{
    char shown[2 * KSAFE_ERROR_MESSAGE_SIZE + 2];
    char other[2 * KSAFE_ERROR_MESSAGE_SIZE + 2];
    char value[65], *changed;
    size_t off, len, i;

    if (find_secret(text, n, &off, &len))
        return;
    memcpy(value, text + off, len);
    value[len] = '\0';
    messages(text, shown, sizeof(shown));
    if (!strstr(shown, value))
        return;
    changed = malloc(n + 1);
    FUZZ_ASSERT(changed != NULL, "out of memory");
    memcpy(changed, text, n + 1);
    for (i = 0; i < len; i++) /* a letter for each character: same length */
        changed[off + i] = (char)('a' + ((unsigned char)text[off + i] + 7) % 26);
    if (count(changed, n, changed + off, len) == 1) {
        messages(changed, other, sizeof(other));
        FUZZ_ASSERT(strstr(other, value) != NULL,
                    "a secret's value is shown: \"%s\" in \"%s\"", value,
                    shown);
    }
    free(changed);
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
    check_load("ksafe_config_load_string", rc, cfg, &err, NULL, text,
               strlen(text));
    /* without an error struct: same answer */
    rc2 = ksafe_config_load_string(&again, text, NULL);
    FUZZ_ASSERT(rc2 == rc, "load_string gave %d with err, %d without", rc,
                rc2);
    ksafe_config_free(again);
    check_secret(text, strlen(text));
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
    check_load("ksafe_config_load_file", rc, cfg, &err, tmp_path,
               (const char *)data, size);
    if (cfg)
        check_options(cfg);
    ksafe_config_free(cfg);
    return 0;
}
