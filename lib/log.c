/*
 * lib/log.c - one path for every log line: librdkafka's and ours.
 *
 * Lines go to the user's log_cb or, by default, warnings and worse to
 * stderr. Never stdout: it belongs to the application. Passwords are
 * scrubbed from each line before anyone sees it.
 */
#include <stdio.h>
#include <string.h>

#include "internal.h"

#define LOG_LINE_MAX 1024

/* Replaces every occurrence of each secret by "***", into `out`. */
static const char *scrub(const ksafe__client *cl, const char *in, char *out,
                         size_t size)
{
    size_t i, o = 0;
    int touched = 0;

    for (i = 0; i < cl->n_secrets; i++)
        if (strstr(in, cl->secrets[i]))
            touched = 1;
    if (!touched)
        return in;
    while (*in && o + 1 < size) {
        size_t len = 0;
        for (i = 0; i < cl->n_secrets && !len; i++)
            if (strncmp(in, cl->secrets[i], strlen(cl->secrets[i])) == 0)
                len = strlen(cl->secrets[i]);
        if (len) {
            size_t k;
            for (k = 0; k < 3 && o + 1 < size; k++)
                out[o++] = '*';
            in += len;
        } else {
            out[o++] = *in++;
        }
    }
    out[o] = '\0';
    return out;
}

static void emit(const ksafe__client *cl, int level, const char *facility,
                 const char *line)
{
    char clean[LOG_LINE_MAX];
    const char *msg = cl ? scrub(cl, line, clean, sizeof(clean)) : line;

    if (cl && cl->log_cb) {
        cl->log_cb(level, facility, msg, cl->log_payload);
        return;
    }
    if (level <= KSAFE_LOG_WARNING)
        fprintf(stderr, "ksafe %s %s: %s\n",
                level <= KSAFE_LOG_ERR ? "error" : "warning", facility, msg);
}

void ksafe__log_bridge(const rd_kafka_t *rk, int level, const char *fac,
                       const char *buf)
{
    emit((const ksafe__client *)rd_kafka_opaque(rk), level, fac, buf);
}

void ksafe__log(const ksafe__client *cl, int level, const char *facility,
                const char *fmt, ...)
{
    char line[LOG_LINE_MAX];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    emit(cl, level, facility, line);
}
