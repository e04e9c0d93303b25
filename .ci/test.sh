#!/usr/bin/env bash
# The README's test command: dependencies, build, every suite (the
# PostgreSQL dedup tests against a throwaway server started here).
set -euo pipefail
cd "$(dirname "$0")/.."
bash .ci/deps.sh
if [ -z "${KSAFE_TEST_PG:-}" ]; then
    eval "$(bash .ci/postgres.sh start)"
    trap 'bash .ci/postgres.sh stop' EXIT
fi
[ -d build ] || meson setup build >/dev/null
ninja -C build
meson test -C build --print-errorlogs
