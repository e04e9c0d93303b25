#!/usr/bin/env bash
# Builds a librdkafka newer than Debian's from the C source that the npm
# package @confluentinc/kafka-javascript ships in deps/librdkafka/ (the only
# route to a current librdkafka on machines that reach Debian's archive and
# the npm registry, nothing else), and prints the installed prefix.
#
# The prefix is cached outside the clone, keyed by librdkafka version, so
# repeated CI runs reuse it (a build took 43 s on 2 cores here; the issue
# that asked for it measured about 6 minutes on a slower machine).
#
#   prefix=$(bash .ci/librdkafka.sh)        # 2.15.1, the newest tested
#   PKG_CONFIG_PATH=$prefix/lib/pkgconfig meson setup build-2.15 ...
#
# KSAFE_CACHE overrides the cache root (default /var/cache/ksafe).
set -euo pipefail

version=2.15.1
npm_pkg=@confluentinc/kafka-javascript@1.10.1
# sha256 of the npm tarball we tested: a changed upload is refused, not built.
npm_sha256=ada7d703bb1d3237e2292bfabf438d663b6160c9f1ac2a2406b5dc4257c81b66

cache=${KSAFE_CACHE:-/var/cache/ksafe}
prefix=$cache/librdkafka-$version

if [ -f "$prefix/.complete" ]; then
    echo "$prefix"
    exit 0
fi

# Build dependencies: Debian's -dev packages for the features ksafe's tests
# use (SSL, SASL, zstd, lz4, zlib). Progress goes to stderr; stdout is the
# prefix alone.
pkgs="libssl-dev zlib1g-dev libzstd-dev liblz4-dev libsasl2-dev npm make gcc g++ python3"
missing=""
for p in $pkgs; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
        missing="$missing $p"
done
# npm may come from outside Debian (a machine's own Node.js): accept it.
if command -v npm >/dev/null; then missing=${missing/ npm/}; fi
if [ -n "${missing// /}" ]; then
    echo "librdkafka.sh: installing:$missing" >&2
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq $missing >&2
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "librdkafka.sh: fetching $npm_pkg (librdkafka $version source)" >&2
(cd "$work" && npm pack --silent "$npm_pkg" >/dev/null)
tgz=$(ls "$work"/*.tgz)
got=$(sha256sum "$tgz" | cut -d' ' -f1)
if [ "$got" != "$npm_sha256" ]; then
    echo "librdkafka.sh: $npm_pkg has sha256 $got, expected $npm_sha256" >&2
    exit 1
fi
tar -xzf "$tgz" -C "$work"
src=$work/package/deps/librdkafka
found=$(sed -n 's/^#define RD_KAFKA_VERSION *\(0x[0-9a-f]*\).*/\1/p' "$src/src/rdkafka.h")
if [ "$found" != "0x020f01ff" ]; then
    echo "librdkafka.sh: $npm_pkg holds librdkafka $found, expected $version" >&2
    exit 1
fi

echo "librdkafka.sh: building librdkafka $version into $prefix (about 6 min)" >&2
stage=$prefix.partial
rm -rf "$stage"
mkdir -p "$cache"
(
    cd "$src"
    # No curl (OIDC token fetch is not used by ksafe); no mklove downloads:
    # everything comes from Debian's packages.
    bash ./configure --prefix="$stage" --no-download --disable-curl \
        --enable-ssl --enable-gssapi --enable-zstd --enable-lz4-ext \
        --enable-zlib
    make -j"$(nproc)" libs
    make install-subdirs
) >"$work/build.log" 2>&1 || {
    tail -n 40 "$work/build.log" >&2
    echo "librdkafka.sh: build failed (log above)" >&2
    exit 1
}
# The .pc files name the prefix they were configured with; move atomically
# so a half-built cache is never used.
sed -i "s|$stage|$prefix|g" "$stage"/lib/pkgconfig/*.pc
rm -rf "$prefix"
mv "$stage" "$prefix"
touch "$prefix/.complete"
echo "$prefix"
