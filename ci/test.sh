#!/bin/sh
# Runs the test suite: Test::Nginx::Socket::Grpc (t/lib) on the project's
# minimal Test::Nginx::Socket (t/lib/fallback), or on a real Test::Nginx
# when perl finds one (then each test file gets its own port and servroot:
# TEST_NGINX_RANDOMIZE=1).  ci/test-real-test-nginx.sh runs it on a given
# checkout of the real one.
#
#   ci/test.sh                     prove -j$PROVE_JOBS -r t/
#   ci/test.sh t/010-path.t ...    prove -j$PROVE_JOBS <args>  (any prove args)
#
# Environment (all optional):
#   PROVE_JOBS               parallel test files (default 2)
#   TEST_NGINX_BINARY        nginx to test (default /usr/sbin/nginx)
#   TEST_NGINX_LOAD_MODULES  .so files to load (default objs/ngx_http_grpc_guard_module.so
#                            when it exists)
#   TEST_NGINX_VERBOSE, TEST_NGINX_USE_VALGRIND, TEST_NGINX_NO_CLEAN, ...
#                            see t/lib/README.md
# Exit status: prove's.

set -u

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root" || exit 2

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
        echo "test: $root/objs/ngx_http_grpc_guard_module.so not built;" \
             "running without the module" >&2
    fi
else
    export TEST_NGINX_LOAD_MODULES
fi

echo "test: nginx $TEST_NGINX_BINARY," \
     "modules: ${TEST_NGINX_LOAD_MODULES:-none}," \
     "jobs: ${PROVE_JOBS:-2}"

if [ $# -eq 0 ]; then
    set -- -r t/
fi

prove -j"${PROVE_JOBS:-2}" "$@"
