#!/bin/bash
# make test-valgrind: the whole t/ suite with nginx (Debian's /usr/sbin/nginx
# and objs/ngx_http_grpc_guard_module.so, built by ci/build.sh) running
# under valgrind memcheck.
#
# The harness (t/lib/Test/Nginx/Socket.pm, TEST_NGINX_USE_VALGRIND=1) runs
# nginx as `valgrind --tool=memcheck --leak-check=full ...` with
# master_process off and daemon off, and fails a test when its valgrind log
# shows an invalid read, write or free, a use of uninitialised memory or a
# definite leak.  t/valgrind.suppress holds what plain nginx 1.22.1 reports
# by itself (each entry explained there); nothing of the module is
# suppressed.
#
# Arguments are passed to ci/test.sh (prove): `ci/test-valgrind.sh t/010-path.t`.
# Environment:
#   TEST_NGINX_USE_VALGRIND   valgrind options (default: the harness's
#                             memcheck options and --keep-debuginfo=yes), or
#                             1 for the harness's alone
#   TEST_NGINX_BINARY, TEST_NGINX_LOAD_MODULES, PROVE_JOBS, ...: see ci/test.sh

set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

start=$(date +%s)

command -v valgrind >/dev/null || {
    echo "test-valgrind: valgrind not found (ci/install-deps.sh installs it)" >&2
    exit 1
}

module=${TEST_NGINX_LOAD_MODULES:-$root/objs/ngx_http_grpc_guard_module.so}
if [ ! -f "${module%% *}" ]; then
    echo "test-valgrind: ${module%% *} not built (run ci/build.sh)" >&2
    exit 1
fi

export TEST_NGINX_BINARY=${TEST_NGINX_BINARY:-/usr/sbin/nginx}
export TEST_NGINX_LOAD_MODULES=$module
# The harness's own memcheck options plus --keep-debuginfo=yes: nginx
# dlclose()s the module when it destroys the cycle at exit, before valgrind
# prints the leaks, whose module frames would then all be "???".
export TEST_NGINX_USE_VALGRIND=${TEST_NGINX_USE_VALGRIND:-"--tool=memcheck --leak-check=full --show-possibly-lost=no --num-callers=50 --keep-debuginfo=yes"}
export TEST_NGINX_VALGRIND_SUPPRESS=$root/t/valgrind.suppress

# an nginx under valgrind must not also look for sanitizer settings
unset ASAN_OPTIONS UBSAN_OPTIONS LSAN_OPTIONS

echo "test-valgrind: $(valgrind --version), suppressions $TEST_NGINX_VALGRIND_SUPPRESS"

rc=0
ci/test.sh "$@" || rc=$?

elapsed=$(( $(date +%s) - start ))
if [ "$rc" != 0 ]; then
    echo "test-valgrind: FAIL (prove exit $rc) in ${elapsed}s"
    exit 1
fi
echo "test-valgrind: PASS in ${elapsed}s"
