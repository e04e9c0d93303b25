#!/usr/bin/env bash
# The README's first command: dependencies, build, the main demo on the
# embedded cluster.
set -euo pipefail
cd "$(dirname "$0")/.."
bash .ci/deps.sh
[ -d build ] || meson setup build >/dev/null
ninja -C build
./build/samples/demo
