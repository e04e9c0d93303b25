/*
 * tests/bench/bench_json.h - the benchmarks' results as one JSON document,
 * written only when asked: `--json PATH` on the command line or the
 * environment's KSAFE_BENCH_JSON=PATH. A PATH that is a directory (or ends
 * in '/') receives <benchmark>.json, so one variable serves
 * `meson test --benchmark`, which runs them all.
 *
 * The document: {"benchmark", "machine": {"cores", "cpu_model"},
 * "librdkafka", "ksafe", "settings": {...}, "rounds": [{...}...],
 * "medians": {...}}. compare.py reads two of them.
 */
#ifndef KSAFE_BENCH_JSON_H
#define KSAFE_BENCH_JSON_H

#include <jansson.h>

typedef struct bench_json bench_json;

/* NULL when no JSON was asked for; every other call accepts NULL. Exits
 * on a bad --json argument. */
bench_json *bench_json_open(const char *benchmark, int argc, char **argv);
/* Setting and median values: numbers, or strings via the _str form. */
void bench_json_setting(bench_json *j, const char *key, double value);
void bench_json_setting_str(bench_json *j, const char *key, const char *value);
void bench_json_median(bench_json *j, const char *key, double value);
/* Starts a new round object; bench_json_round_set fills the newest one. */
void bench_json_round(bench_json *j);
void bench_json_round_set(bench_json *j, const char *key, double value);
/* The median of v[0..n) (n >= 1), sorting v: the middle value, or the mean
 * of the two middle ones when n is even. Every benchmark's medians. */
double bench_median(double *v, int n);
/* Writes the file and frees; 0, or -1 after saying why on stderr. */
int bench_json_close(bench_json *j);

#endif
