#!/usr/bin/env bash
# The README's test command: dependencies, build, every suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash .ci/deps.sh
[ -d build ] || meson setup build >/dev/null
ninja -C build
meson test -C build --print-errorlogs
