#!/usr/bin/env bash
# The fuzz smoke run: builds the libFuzzer targets (tests/fuzz) with clang,
# AddressSanitizer and UBSan in build-fuzz, then runs each on a copy of its
# seed corpus for KSAFE_FUZZ_SECONDS (60) with a seed that is printed, so a
# failure replays: KSAFE_FUZZ_SEED=<seed> bash .ci/fuzz.sh. Any crash,
# leak, sanitizer report or slow input fails the run; the input is printed
# (base64) and kept in build-fuzz/fuzz-artifacts/. docs/testing.md#fuzzing.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${KSAFE_FUZZ_SECONDS:-60}
seed=${KSAFE_FUZZ_SEED:-$(( (RANDOM << 15 | RANDOM) + 1 ))}
targets="config dedup_key stats"

bash .ci/deps.sh
if [ ! -f build-fuzz/build.ninja ]; then
    CC=clang-14 CXX=clang++-14 meson setup build-fuzz -Dfuzz=true \
        -Db_sanitize=address,undefined -Db_lundef=false \
        -Dbuildtype=debugoptimized -Dsamples=false >/dev/null
fi
# shellcheck disable=SC2046
ninja -C build-fuzz $(for t in $targets; do echo "tests/fuzz/fuzz-$t"; done)

artifacts=$PWD/build-fuzz/fuzz-artifacts
rm -rf "$artifacts"
mkdir -p "$artifacts"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
failed=""
for t in $targets; do
    # libFuzzer adds what it finds to the corpus directory: a copy keeps
    # the repository's corpus the small, chosen one. Longer seeds (the
    # 86 kB config) are cut to -max_len for mutating; the replay test runs
    # them whole.
    cp -r "tests/fuzz/corpus/$t" "$work/$t"
    echo "fuzz-$t: ${seconds} s, -seed=$seed"
    rc=0
    build-fuzz/tests/fuzz/fuzz-"$t" "$work/$t" -seed="$seed" \
        -max_total_time="$seconds" -timeout=10 -max_len=8192 \
        -print_final_stats=1 \
        -dict="tests/fuzz/$t.dict" -artifact_prefix="$artifacts/$t-" \
        >"$work/$t.log" 2>&1 || rc=$?
    grep -E '^stat::(number_of_executed_units|average_exec_per_sec|new_units_added|peak_rss_mb)' \
        "$work/$t.log" | sed "s/^/fuzz-$t: /"
    if [ "$rc" -ne 0 ]; then
        tail -n 60 "$work/$t.log"
        for f in "$artifacts/$t-"*; do
            [ -e "$f" ] || continue
            echo "fuzz-$t: input $f (base64; add it to tests/fuzz/corpus/$t/):"
            base64 -w0 "$f"
            echo
        done
        echo "fuzz-$t: FAILED (exit $rc); replay: KSAFE_FUZZ_SEED=$seed bash .ci/fuzz.sh"
        failed="$failed $t"
    fi
done
if [ -n "$failed" ]; then
    echo "fuzz: failed:$failed"
    exit 1
fi
echo "fuzz: every target ran ${seconds} s without a finding (-seed=$seed)"
