#!/bin/sh
# Installs every Debian package that the build, the tests, the demo and the
# benchmarks need.  Idempotent: packages already present are left alone and
# apt-get is only called when something is missing.  Runs as root on a fresh
# Debian 12 (bookworm) machine.

set -eu

PACKAGES="
build-essential
dpkg-dev
nginx
nginx-dev
libpcre2-dev
zlib1g-dev
libssl-dev
libjansson-dev
libhiredis-dev
openssl
curl
redis-server
redis-sentinel
redis-tools
python3
python3-grpcio
python3-protobuf
python3-cryptography
perl
nghttp2-client
libnginx-mod-http-js
libnghttp2-dev
g++
pkg-config
libgrpc++-dev
libprotobuf-dev
protobuf-compiler
protobuf-compiler-grpc
valgrind
clang
libclang-rt-14-dev
llvm-14
procps
iproute2
prometheus
"

missing=""
for p in $PACKAGES; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null \
         | grep -q "install ok installed"
    then
        missing="$missing $p"
    fi
done

# the ASan build of nginx needs Debian's nginx source package
src_list=/etc/apt/sources.list.d/grpc-guard-deb-src.sources
need_update=""

if [ "${GRPC_GUARD_NO_DEB_SRC:-}" = "" ] && [ ! -f "$src_list" ]; then
    if [ "$(id -u)" = 0 ]; then
        cat > "$src_list" <<'SRC'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb-src
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
        need_update=yes
    fi
fi

# the OpenID provider of the JWKS tests (t/idp): exactly what
# t/idp/package-lock.json pins, nothing else
idp() {
    root=$(cd "$(dirname "$0")/.." && pwd)

    if ! command -v npm >/dev/null 2>&1; then
        echo "install-deps: npm not found: the t/idp tests will be skipped" >&2
        return 0
    fi

    if [ -f "$root/t/idp/node_modules/.package-lock.json" ] \
       && cmp -s "$root/t/idp/package-lock.json" \
                 "$root/t/idp/node_modules/.grpc-guard-lock"
    then
        return 0
    fi

    echo "install-deps: npm ci in t/idp"
    (cd "$root/t/idp" && npm ci --no-audit --no-fund --ignore-scripts \
                              --loglevel=error)
    cp "$root/t/idp/package-lock.json" "$root/t/idp/node_modules/.grpc-guard-lock"
}

if [ -z "$missing" ] && [ -z "$need_update" ]; then
    echo "install-deps: all packages present"
    idp
    exit 0
fi

SUDO=""
if [ "$(id -u)" != 0 ]; then
    SUDO=sudo
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq

if [ -n "$missing" ]; then
    echo "install-deps: installing$missing"
    # shellcheck disable=SC2086
    $SUDO apt-get install -y -qq --no-install-recommends $missing
fi

# Debian starts the packaged services; the project starts its own copies on
# loopback ports, so the system ones are stopped to keep ports 80, 6379,
# 9090 and 26379 free and the machine quiet (t/080-metrics.t runs its own
# prometheus, t/068-limit-sentinel.t its own sentinels).
if command -v service >/dev/null 2>&1; then
    $SUDO service nginx stop >/dev/null 2>&1 || true
    $SUDO service redis-server stop >/dev/null 2>&1 || true
    $SUDO service redis-sentinel stop >/dev/null 2>&1 || true
    $SUDO service prometheus stop >/dev/null 2>&1 || true
fi
if command -v systemctl >/dev/null 2>&1; then
    $SUDO systemctl disable --now prometheus >/dev/null 2>&1 || true
fi

idp

echo "install-deps: done"
