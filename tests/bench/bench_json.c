/*
 * tests/bench/bench_json.c - see bench_json.h.
 */
#include "bench_json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ksafe/ksafe.h>

struct bench_json {
    char *path;
    json_t *doc, *settings, *rounds, *medians;
};

/* "model name" from /proc/cpuinfo (x86), else "unknown". */
static json_t *cpu_model(void)
{
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[512];
    json_t *v = NULL;

    while (f && !v && fgets(line, sizeof(line), f)) {
        char *colon = strchr(line, ':');
        if (strncmp(line, "model name", 10) != 0 || !colon)
            continue;
        colon += strspn(colon + 1, " \t") + 1;
        colon[strcspn(colon, "\n")] = '\0';
        v = json_string(colon);
    }
    if (f)
        fclose(f);
    return v ? v : json_string("unknown");
}

static char *choose_path(const char *benchmark, int argc, char **argv)
{
    const char *p = getenv("KSAFE_BENCH_JSON");
    struct stat st;
    size_t n;
    char *out;
    int i;

    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") != 0)
            continue;
        if (i + 1 >= argc || !*argv[i + 1]) {
            fprintf(stderr, "--json needs a file or directory\n");
            exit(2);
        }
        p = argv[i + 1];
    }
    if (!p || !*p)
        return NULL;
    n = strlen(p);
    if (p[n - 1] == '/' || (stat(p, &st) == 0 && S_ISDIR(st.st_mode))) {
        out = malloc(n + strlen(benchmark) + 7);
        if (out)
            sprintf(out, "%s%s%s.json", p, p[n - 1] == '/' ? "" : "/",
                    benchmark);
        return out;
    }
    return strdup(p);
}

bench_json *bench_json_open(const char *benchmark, int argc, char **argv)
{
    bench_json *j;
    char *path = choose_path(benchmark, argc, argv);
    json_t *machine;

    if (!path)
        return NULL;
    if (!(j = calloc(1, sizeof(*j)))) {
        free(path);
        return NULL;
    }
    j->path = path;
    j->doc = json_object();
    j->settings = json_object();
    j->rounds = json_array();
    j->medians = json_object();
    machine = json_object();
    json_object_set_new(machine, "cores",
                        json_integer(sysconf(_SC_NPROCESSORS_ONLN)));
    json_object_set_new(machine, "cpu_model", cpu_model());
    json_object_set_new(j->doc, "benchmark", json_string(benchmark));
    json_object_set_new(j->doc, "machine", machine);
    json_object_set_new(j->doc, "librdkafka",
                        json_string(ksafe_rdkafka_version()));
    json_object_set_new(j->doc, "ksafe", json_string(ksafe_version()));
    json_object_set(j->doc, "settings", j->settings);
    json_object_set(j->doc, "rounds", j->rounds);
    json_object_set(j->doc, "medians", j->medians);
    return j;
}

void bench_json_setting(bench_json *j, const char *key, double value)
{
    if (j)
        json_object_set_new(j->settings, key, json_real(value));
}

void bench_json_setting_str(bench_json *j, const char *key, const char *value)
{
    if (j)
        json_object_set_new(j->settings, key, json_string(value));
}

void bench_json_median(bench_json *j, const char *key, double value)
{
    if (j)
        json_object_set_new(j->medians, key, json_real(value));
}

void bench_json_round(bench_json *j)
{
    if (j)
        json_array_append_new(j->rounds, json_object());
}

void bench_json_round_set(bench_json *j, const char *key, double value)
{
    size_t n = j ? json_array_size(j->rounds) : 0;

    if (n)
        json_object_set_new(json_array_get(j->rounds, n - 1), key,
                            json_real(value));
}

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

double bench_median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(double), by_value);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int bench_json_close(bench_json *j)
{
    int rc = 0;

    if (!j)
        return 0;
    if (json_dump_file(j->doc, j->path, JSON_INDENT(2) | JSON_SORT_KEYS)) {
        fprintf(stderr, "could not write %s\n", j->path);
        rc = -1;
    } else {
        printf("results written to %s\n", j->path);
    }
    json_decref(j->settings);
    json_decref(j->rounds);
    json_decref(j->medians);
    json_decref(j->doc);
    free(j->path);
    free(j);
    return rc;
}
