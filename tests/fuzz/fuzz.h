/*
 * tests/fuzz/fuzz.h - what the fuzz targets share: the library's contract
 * for every public call, checked on each input.
 *
 * A target aborts on a broken contract, so libFuzzer (or the replay driver,
 * tests/fuzz/replay.c) reports it as a crash with the input that caused it.
 */
#ifndef KSAFE_FUZZ_H
#define KSAFE_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ksafe/ksafe.h>

/* libFuzzer's entry point; the replay driver calls it too. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_ASSERT(cond, ...)                                              \
    do {                                                                    \
        if (!(cond)) {                                                      \
            fprintf(stderr, "%s:%d: contract broken: %s: ", __FILE__,       \
                    __LINE__, #cond);                                       \
            fprintf(stderr, __VA_ARGS__);                                   \
            fputc('\n', stderr);                                            \
            abort();                                                        \
        }                                                                   \
    } while (0)

/*
 * Every public call returns 0 or a negative KSAFE_E* code; on an error the
 * ksafe_error it was given holds that code and a non-empty, NUL-terminated
 * message naming what failed.
 */
static inline void fuzz_check_rc(const char *call, int rc,
                                 const ksafe_error *err)
{
    FUZZ_ASSERT(rc <= 0 && rc >= KSAFE_ESTOPPED, "%s returned %d", call, rc);
    if (rc == 0)
        return;
    FUZZ_ASSERT(err->code == rc, "%s returned %d but err.code is %d", call,
                rc, err->code);
    FUZZ_ASSERT(memchr(err->message, '\0', sizeof(err->message)) != NULL,
                "%s: message not NUL-terminated", call);
    FUZZ_ASSERT(err->message[0] != '\0', "%s returned %d (%s) with an "
                "empty message", call, rc, ksafe_strerror(rc));
}

#endif
