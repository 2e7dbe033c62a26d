#!/bin/sh
# Runs the test suite with the real Test::Nginx (openresty/test-nginx) first
# on @INC instead of the project's minimal Test::Nginx::Socket: the same
# files, through Test::Nginx::Socket::Grpc (t/lib).
#
#   ci/test-real-test-nginx.sh DIR                 prove -r t/
#   ci/test-real-test-nginx.sh DIR t/010-path.t    prove <args>
#
# DIR is a checkout of openresty/test-nginx (its lib/ goes first on @INC).
# Installs the Debian packages of the Perl modules it needs when they are
# missing (as root, with apt-get).
#
# Environment (all optional): as ci/test.sh (PROVE_JOBS, TEST_NGINX_BINARY,
# TEST_NGINX_LOAD_MODULES, ...).  TEST_NGINX_RANDOMIZE defaults to 1: every
# file gets its own port and servroot (t/servroot_PORT), so files can run
# in parallel.
# Exit status: prove's; 2 for a bad DIR or missing packages.

set -u

if [ $# -lt 1 ] || [ ! -f "$1/lib/Test/Nginx/Socket.pm" ]; then
    echo "usage: $0 DIR [prove args]" >&2
    echo "  DIR: a checkout of openresty/test-nginx (DIR/lib/Test/Nginx/Socket.pm)" >&2
    exit 2
fi
tn=$(cd "$1" && pwd)
shift

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root" || exit 2

# Perl modules of Test::Nginx::Socket and Test::Nginx::Util (Test::Base
# brings Spiffy; IPC::Run only for its own HTTP/2 mode, which the project's
# files do not use)
pkgs="libtest-base-perl libtest-longstring-perl liblist-moreutils-perl
      libtext-diff-perl libhttp-message-perl liburi-perl"
missing=
for p in $pkgs; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' \
        || missing="$missing $p"
done
if [ -n "$missing" ]; then
    echo "test-real-test-nginx: installing$missing"
    if [ "$(id -u)" != 0 ]; then
        echo "test-real-test-nginx: not root; install:$missing" >&2
        exit 2
    fi
    export DEBIAN_FRONTEND=noninteractive
    # shellcheck disable=SC2086  # one word per package
    if ! { apt-get update -qq &&
           apt-get install -y -qq --no-install-recommends $missing; } \
           >/dev/null; then
        echo "test-real-test-nginx: apt-get install$missing failed" >&2
        exit 2
    fi
fi

PERL5LIB="$root/t/lib${PERL5LIB:+:$PERL5LIB}"
export PERL5LIB

: "${TEST_NGINX_BINARY:=/usr/sbin/nginx}"
export TEST_NGINX_BINARY
: "${TEST_NGINX_RANDOMIZE:=1}"
export TEST_NGINX_RANDOMIZE

if [ -z "${TEST_NGINX_LOAD_MODULES+x}" ]; then
    if [ -f "$root/objs/ngx_http_grpc_guard_module.so" ]; then
        TEST_NGINX_LOAD_MODULES="$root/objs/ngx_http_grpc_guard_module.so"
        export TEST_NGINX_LOAD_MODULES
    else
        echo "test-real-test-nginx: $root/objs/ngx_http_grpc_guard_module.so" \
             "not built; running without the module" >&2
    fi
else
    export TEST_NGINX_LOAD_MODULES
fi

rev=$(git -C "$tn" rev-parse --short HEAD 2>/dev/null || echo "not a git checkout")
echo "test-real-test-nginx: Test::Nginx from $tn ($rev)," \
     "nginx $TEST_NGINX_BINARY, modules: ${TEST_NGINX_LOAD_MODULES:-none}," \
     "jobs: ${PROVE_JOBS:-2}"

if [ $# -eq 0 ]; then
    set -- -r t/
fi

prove -I"$tn/lib" -j"${PROVE_JOBS:-2}" "$@"
