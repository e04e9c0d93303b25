#!/usr/bin/env python3
"""Prints the ratio new/old of each median in two benchmark JSON files.

    python3 tests/bench/compare.py old.json new.json

The files are what a benchmark writes with --json PATH or
KSAFE_BENCH_JSON=PATH (tests/bench/bench_json.h). Medians present in only
one file are listed as such; a machine or librdkafka that differs between
the two is said first, since it changes what the ratios mean.
"""
import json
import sys


def load(path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        sys.exit(f"{path}: {e}")


def main(argv):
    if len(argv) != 3:
        sys.exit("usage: compare.py OLD.json NEW.json")
    old, new = load(argv[1]), load(argv[2])
    if old.get("benchmark") != new.get("benchmark"):
        print(f"note: different benchmarks: {old.get('benchmark')} "
              f"vs {new.get('benchmark')}")
    for key in ("machine", "librdkafka", "settings"):
        if old.get(key) != new.get(key):
            print(f"note: {key} differs: {old.get(key)} -> {new.get(key)}")
    om, nm = old.get("medians", {}), new.get("medians", {})
    width = max((len(k) for k in list(om) + list(nm)), default=6)
    print(f"{'median':<{width}} {'old':>14} {'new':>14} {'new/old':>9}")
    for k in sorted(set(om) | set(nm)):
        if k not in om or k not in nm:
            where = "old" if k in om else "new"
            print(f"{k:<{width}} only in {where}")
            continue
        o, n = om[k], nm[k]
        ratio = f"{n / o:9.3f}" if o else f"{'-':>9}"
        print(f"{k:<{width}} {o:14.6g} {n:14.6g} {ratio}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
