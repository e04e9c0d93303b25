#!/usr/bin/env bash
# Installs the Debian 12 packages ksafe builds and tests with; a no-op when
# they are all present. Needs root (or sudo) for apt-get. clang-14 with
# libclang-rt-14-dev (libFuzzer and the sanitizer runtimes) builds the fuzz
# targets; llvm-14 gives their crash reports symbols (llvm-symbolizer).
set -euo pipefail
pkgs="meson ninja-build pkg-config gcc g++ librdkafka-dev libjansson-dev check
      libsqlite3-dev libpq-dev postgresql valgrind doxygen dpkg-dev
      clang-14 libclang-rt-14-dev llvm-14"
missing=""
for p in $pkgs; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
        missing="$missing $p"
done
if [ -n "$missing" ]; then
    echo "installing:$missing"
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq $missing
fi
