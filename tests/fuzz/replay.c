/*
 * tests/fuzz/replay.c - feeds every file of the given directories (or the
 * given files) to a fuzz target's LLVMFuzzerTestOneInput, once each, in
 * name order.
 *
 * This is how the seed corpus and every crash kept in it run as an ordinary
 * test in every build (gcc, sanitizers, valgrind) without clang or
 * libFuzzer. A broken contract aborts; the line printed before it names the
 * input.
 */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

static int replay_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    uint8_t *data = NULL, *grown;
    size_t len = 0, cap = 0, got;

    if (!f) {
        fprintf(stderr, "replay: cannot open %s: %s\n", path,
                strerror(errno));
        return -1;
    }
    do {
        if (len == cap) {
            cap = cap ? 2 * cap : 65536;
            if (!(grown = realloc(data, cap))) {
                fprintf(stderr, "replay: out of memory for %s\n", path);
                free(data);
                fclose(f);
                return -1;
            }
            data = grown;
        }
        got = fread(data + len, 1, cap - len, f);
        len += got;
    } while (got);
    if (ferror(f)) {
        fprintf(stderr, "replay: cannot read %s\n", path);
        free(data);
        fclose(f);
        return -1;
    }
    fclose(f);
    /* Exactly `len` bytes, as libFuzzer hands them: a read past the end
     * must show under ASan and valgrind, not land in spare capacity. */
    if (len && (grown = realloc(data, len)))
        data = grown;
    printf("replay: %s (%zu bytes)\n", path, len);
    fflush(stdout);
    LLVMFuzzerTestOneInput(data, len);
    free(data);
    return 0;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The number of inputs replayed from `dir`, or -1. */
static long replay_dir(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char **names = NULL, **grown;
    size_t n = 0, cap = 0, i;
    long done = 0;

    if (!d) {
        fprintf(stderr, "replay: cannot open directory %s: %s\n", dir,
                strerror(errno));
        return -1;
    }
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            if (!(grown = realloc(names, cap * sizeof(*names))))
                break;
            names = grown;
        }
        if (!(names[n] = malloc(strlen(dir) + strlen(e->d_name) + 2)))
            break;
        sprintf(names[n], "%s/%s", dir, e->d_name);
        n++;
    }
    closedir(d);
    if (n)
        qsort(names, n, sizeof(*names), by_name);
    for (i = 0; i < n; i++) {
        if (done >= 0 && replay_file(names[i]) == 0)
            done++;
        else
            done = -1;
        free(names[i]);
    }
    free(names);
    return done;
}

int main(int argc, char **argv)
{
    long total = 0;
    int i;

    if (argc < 2) {
        fprintf(stderr, "usage: %s DIR_OR_FILE...\n", argv[0]);
        return 2;
    }
    for (i = 1; i < argc; i++) {
        struct stat st;
        long n;

        if (stat(argv[i], &st) != 0) {
            fprintf(stderr, "replay: %s: %s\n", argv[i], strerror(errno));
            return 1;
        }
        n = S_ISDIR(st.st_mode) ? replay_dir(argv[i])
                                : (replay_file(argv[i]) == 0 ? 1 : -1);
        if (n < 0)
            return 1;
        total += n;
    }
    if (total == 0) {
        /* an empty corpus would make this test pass having run nothing */
        fprintf(stderr, "replay: no input found\n");
        return 1;
    }
    printf("%ld passed, 0 failed\n", total);
    return 0;
}
