#!/bin/bash
# Builds nginx from a source tree (a release tarball or a GitHub checkout of
# nginx/nginx) with this module as a dynamic module, then runs the test suite
# (ci/test.sh) against that nginx and that module.
#
#   ci/test-nginx-source.sh DIR                     the whole suite
#   ci/test-nginx-source.sh DIR t/070-audit.t ...   these files (any prove args)
#
# DIR is only read: it is copied into the build directory, and configure and
# make run on the copy.
#
#   build/nginx-source/VERSION/src/         the copy of DIR = build tree
#   build/nginx-source/VERSION/prefix/sbin/nginx
#   build/nginx-source/VERSION/prefix/modules/ngx_http_grpc_guard_module.so
#
# Caching: DIR is copied and configured again only when its files, the
# configure flags or the module's `config` change; make then compiles what
# changed (a second run with nothing changed compiles nothing).
#
# Configure flags: the modules of the Debian binary that are built in
# (/usr/share/nginx/src/conf_flags: ssl, v2, realip, auth_request,
# stub_status, dav, slice, threads, pcre-jit), with --with-compat and
# --with-debug, the prefix above, and -Werror.
#
# Environment:
#   JOBS                         parallel make jobs (default 2)
#   GRPC_GUARD_SOURCE_REBUILD=1  forget the cache, copy and build everything
#   GRPC_GUARD_EXTRA_CFLAGS      added to the compiler flags
#   PROVE_JOBS, TEST_NGINX_*     passed on to ci/test.sh
#
# Needs the build dependencies of nginx (libpcre2-dev, libssl-dev,
# zlib1g-dev) and of the module (libjansson-dev, libhiredis-dev).
# Exit status: 1 when the build fails, else ci/test.sh's.

set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
jobs=${JOBS:-2}

log() { echo "test-nginx-source: $*"; }
die() { echo "test-nginx-source: $*" >&2; exit 1; }

[ $# -ge 1 ] || die "usage: $0 NGINX_SOURCE_DIR [ci/test.sh args]"
[ -d "$1" ] || die "$1: not a directory"
src=$(cd "$1" && pwd)
shift

if [ -f "$src/configure" ]; then
    configure=./configure
elif [ -f "$src/auto/configure" ]; then
    configure=auto/configure            # a GitHub checkout
else
    die "$src: neither configure nor auto/configure: not an nginx source tree"
fi
[ -f "$src/src/core/nginx.h" ] || die "$src/src/core/nginx.h not found"

version=$(sed -n 's/^#define NGINX_VERSION *"\(.*\)"/\1/p' "$src/src/core/nginx.h")
[ -n "$version" ] || die "no NGINX_VERSION in $src/src/core/nginx.h"

case "$root/" in
"$src"/*) die "$src holds this repository: give the nginx source tree" ;;
esac
case "$src/" in
"$root"/*) die "$src is inside this repository; keep nginx's sources outside" ;;
esac

base=$root/build/nginx-source/$version
tree=$base/src
prefix=$base/prefix

cc_opt="-g -O2 -fstack-protector-strong -Wformat -Werror=format-security"
cc_opt="$cc_opt -fPIC -Wdate-time -D_FORTIFY_SOURCE=2 -Werror"
cc_opt="$cc_opt ${GRPC_GUARD_EXTRA_CFLAGS:-}"
ld_opt="-Wl,-z,relro -Wl,-z,now -fPIC"

# Only the prefix is set: every other path keeps nginx's default, relative
# to the prefix, and the harness runs nginx with -p t/servroot/NAME/, so what
# nginx logs while it reads its configuration lands in that test's
# logs/error.log (where --- no_error_log sees it), as with a default build.
flags=(
    --prefix="$prefix"
    --with-compat
    --with-debug
    --with-threads
    --with-pcre-jit
    --with-http_ssl_module
    --with-http_v2_module
    --with-http_realip_module
    --with-http_auth_request_module
    --with-http_stub_status_module
    --with-http_dav_module
    --with-http_slice_module
)

# what DIR holds: names, sizes and times of its files (not .git)
fingerprint=$(cd "$src" && find . -path ./.git -prune -o -type f \
                  -printf '%p %s %T@\n' | LC_ALL=C sort | sha256sum)
want=$(printf '%s\n' "$src" "$fingerprint" "$(gcc --version | sed -n 1p)" \
           "${flags[@]}" "$cc_opt" "$ld_opt"; cat "$root/config")
stamp=$base/.grpc-guard-configure

if [ "${GRPC_GUARD_SOURCE_REBUILD:-}" = 1 ]; then
    rm -rf "$base"
fi

if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ] \
   || [ ! -f "$tree/objs/Makefile" ]; then
    log "copying nginx $version from $src"
    rm -rf "$base"
    mkdir -p "$tree"
    (cd "$src" && tar -c --exclude=./.git .) | tar -x -C "$tree"
    log "configure (nginx $version)"
    (cd "$tree" && "$configure" "${flags[@]}" \
        --with-cc-opt="$cc_opt" --with-ld-opt="$ld_opt" \
        --add-dynamic-module="$root") > "$base/configure.log" 2>&1 \
        || { tail -30 "$base/configure.log" >&2;
             die "configure failed, see $base/configure.log"; }
    printf '%s' "$want" > "$stamp"
fi

log "make -j$jobs (nginx $version and the module)"
start=$(date +%s)
make -C "$tree" -f objs/Makefile -j"$jobs" binary modules \
    > "$base/make.log" 2>&1 \
    || { grep -E -A3 'error|Error' "$base/make.log" | sed -n 1,40p >&2;
         die "build failed, see $base/make.log"; }
log "make done in $(( $(date +%s) - start ))s"

mkdir -p "$prefix/sbin" "$prefix/modules" "$prefix/conf" "$prefix/logs" \
         "$prefix/temp"
# a running nginx maps the old files: replace them, never write into them
for f in sbin/nginx:objs/nginx \
         modules/ngx_http_grpc_guard_module.so:objs/ngx_http_grpc_guard_module.so
do
    to=$prefix/${f%%:*}
    from=$tree/${f#*:}
    if ! cmp -s "$from" "$to"; then
        cp "$from" "$to.tmp"
        mv -f "$to.tmp" "$to"
    fi
done
for c in "$tree"/conf/*; do
    [ -e "$prefix/conf/$(basename "$c")" ] || cp "$c" "$prefix/conf/"
done

nginx_v=$("$prefix/sbin/nginx" -v 2>&1) \
    || die "the built nginx does not run: $nginx_v"
log "$nginx_v: $prefix/sbin/nginx"
log "module: $prefix/modules/ngx_http_grpc_guard_module.so"

TEST_NGINX_BINARY=$prefix/sbin/nginx
TEST_NGINX_LOAD_MODULES=$prefix/modules/ngx_http_grpc_guard_module.so
export TEST_NGINX_BINARY TEST_NGINX_LOAD_MODULES
exec "$root/ci/test.sh" "$@"
