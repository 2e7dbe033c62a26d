#!/bin/bash
# Builds nginx 1.22.1 with AddressSanitizer and UndefinedBehaviorSanitizer
# from Debian's nginx source package, with the configure flags of the Debian
# binary (/usr/share/nginx/src/conf_flags, from nginx-dev) and every install
# path moved under build/asan/prefix, plus this module as a dynamic module.
#
#   build/asan/dl/               the downloaded Debian source package
#   build/asan/nginx-1.22.1/     the unpacked, patched source = build tree
#   build/asan/prefix/sbin/nginx
#   build/asan/prefix/modules/ngx_http_grpc_guard_module.so
#
# Caching: the source is fetched once; nginx itself is compiled again only
# when the compiler or the configure flags change; configure runs again when
# the module's `config` changes (cheap, the binary is not rebuilt); the module
# is compiled from scratch on every run (a few seconds).
#
# Environment:
#   NGINX_ASAN_DEB_VERSION   Debian version to fetch (default: the newest that
#                            `apt-cache showsrc nginx` lists and that downloads)
#   GRPC_GUARD_ASAN_NO_MODULE=1   build nginx only (to check the nginx build
#                            while the module sources do not compile)
#   GRPC_GUARD_ASAN_REBUILD=1     forget the cache, rebuild nginx
#   GRPC_GUARD_ASAN_EXTRA_CFLAGS  added to the compiler flags (nginx is then
#                            rebuilt)
#   JOBS                     parallel make jobs (default: number of CPUs)
#
# Needs clang, libclang-rt-14-dev (sanitizer runtime), dpkg-dev
# (dpkg-source), nginx-dev (conf_flags), the build dependencies of nginx
# (libpcre2-dev, libssl-dev, zlib1g-dev) and of the module (libjansson-dev,
# libhiredis-dev), and deb-src entries (ci/install-deps.sh adds them).

set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
asan=$root/build/asan
dl=$asan/dl
prefix=$asan/prefix
conf_flags_file=${NGINX_DEV_SRC:-/usr/share/nginx/src}/conf_flags
upstream_version=1.22.1
src=$asan/nginx-$upstream_version
jobs=${JOBS:-$(nproc 2>/dev/null || echo 2)}

log() { echo "build-asan: $*"; }
die() { echo "build-asan: $*" >&2; exit 1; }

# The compiler is clang: its ASan runtime carries UBSan as a plugin, so
# one log_path (ci/test-asan.sh) receives ASan, LeakSanitizer and UBSan
# reports alike.  (gcc's libasan and libubsan are two libraries that each
# keep their own report file: UBSan reports would only reach stderr.)
if ! command -v clang >/dev/null 2>&1 \
   || ! echo 'int main(void) { return 0; }' \
        | clang -x c -fsanitize=address,undefined -o /dev/null - >/dev/null 2>&1
then
    die "clang with its sanitizer runtime is needed: apt-get install clang libclang-rt-14-dev llvm-14"
fi
asan_cc=clang

# Sanitizer choices:
#  -O1 -fno-omit-frame-pointer    usable stacks at a bearable speed
#  -fsanitize=address,undefined   ASan (+ LeakSanitizer) and every UBSan
#       check, alignment included, for nginx and the module alike.
#  UBSan stays recoverable at compile time on purpose: ci/test-asan.sh runs
#       it with halt_on_error=1 (an unsuppressed finding is written to the
#       report file, then the worker aborts, so the running test fails too)
#       and with t/ubsan.suppress, which mutes three idioms of nginx's own
#       sources (unaligned word access, memcpy(p, NULL, 0), NULL + 0) by
#       source file.  The module is compiled with absolute paths, which those
#       entries never match: it keeps every check.  (With
#       -fno-sanitize-recover a suppressed check would still abort.)
#  -DNGX_DEBUG_PALLOC=1
#       every pool allocation is its own malloc(), so ASan sees overflows
#       between pool objects and use after ngx_destroy_pool().
#  -fsanitize-address-use-odr-indicator
#       every dynamic module defines ngx_modules, which the nginx binary
#       (linked with -E) also exports: without ODR indicators, ASan takes the
#       module's 16-byte array for the binary's and reports a
#       global-buffer-overflow when a reload (HUP) copies the binary's.
cc_opt="-g -O1 -fno-omit-frame-pointer -fsanitize=address,undefined"
cc_opt="$cc_opt -fsanitize-address-use-odr-indicator"
cc_opt="$cc_opt -DNGX_DEBUG_PALLOC=1 ${GRPC_GUARD_ASAN_EXTRA_CFLAGS:-}"
ld_opt="-fsanitize=address,undefined"

[ -f "$conf_flags_file" ] || die "$conf_flags_file not found; install nginx-dev (ci/install-deps.sh)"
command -v dpkg-source >/dev/null || die "dpkg-source not found; install dpkg-dev"

# --- 1. the source package -------------------------------------------------

fetch_source() {
    local versions v
    versions=$(apt-cache showsrc nginx 2>/dev/null \
               | awk '/^Version:/ { print $2 }' | sort -u | sort -rV)
    if [ -n "${NGINX_ASAN_DEB_VERSION:-}" ]; then
        versions=$NGINX_ASAN_DEB_VERSION
    fi
    [ -n "$versions" ] || die "apt-cache showsrc nginx lists no version: the deb-src entries are missing or 'apt-get update' was not run (ci/install-deps.sh adds them)"

    for v in $versions; do
        v_noepoch=${v#*:}
        if [ "${v_noepoch%%-*}" != "$upstream_version" ]; then
            log "skipping nginx $v (the module is tested with $upstream_version)"
            continue
        fi
        rm -rf "$dl"
        mkdir -p "$dl"
        log "fetching Debian source nginx $v"
        if (cd "$dl" && timeout 600 apt-get source --download-only -qq "nginx=$v") \
               > "$asan/apt-get-source.log" 2>&1
        then
            rm -rf "$src" "$src.tmp"
            (cd "$dl" && dpkg-source -q -x "nginx_${v_noepoch}.dsc" "$src.tmp") \
                > "$asan/dpkg-source.log" 2>&1 \
                || { cat "$asan/dpkg-source.log" >&2; die "dpkg-source -x failed"; }
            mv "$src.tmp" "$src"
            # dpkg-source leaves a copy of the orig tarball next to the tree
            rm -f "$asan"/nginx_*.orig.tar.*
            echo "$v" > "$src/.grpc-guard-deb-version"
            log "unpacked nginx $v (Debian patches applied) in $src"
            return 0
        fi
        log "nginx $v did not download:"
        grep -E '^(E|W):' "$asan/apt-get-source.log" | sed -n '1,3s/^/    /p' || true
    done
    die "no nginx $upstream_version source package could be downloaded"
}

if [ "${GRPC_GUARD_ASAN_REBUILD:-}" = 1 ]; then
    rm -rf "$src" "$prefix"
fi

mkdir -p "$asan"
if [ ! -f "$src/.grpc-guard-deb-version" ] || [ ! -x "$src/configure" ]; then
    fetch_source
fi
deb_version=$(cat "$src/.grpc-guard-deb-version")

# --- 2. configure flags: Debian's, with every path under $prefix ------------

# shellcheck disable=SC1090
. "$conf_flags_file"
[ "${#NGX_CONF_FLAGS[@]}" -gt 0 ] || die "NGX_CONF_FLAGS is empty in $conf_flags_file"

flags=()
for f in "${NGX_CONF_FLAGS[@]}"; do
    case "$f" in
    --prefix=*)                 f="--prefix=$prefix" ;;
    --sbin-path=*)              f="--sbin-path=$prefix/sbin/nginx" ;;
    --conf-path=*)              f="--conf-path=$prefix/conf/nginx.conf" ;;
    --http-log-path=*)          f="--http-log-path=$prefix/logs/access.log" ;;
    --error-log-path=stderr)    ;;      # not a path: kept as Debian has it
    --error-log-path=*)         f="--error-log-path=$prefix/logs/error.log" ;;
    --lock-path=*)              f="--lock-path=$prefix/logs/nginx.lock" ;;
    --pid-path=*)               f="--pid-path=$prefix/logs/nginx.pid" ;;
    --modules-path=*)           f="--modules-path=$prefix/modules" ;;
    --http-*-temp-path=*)
        name=${f%%=*}; name=${name#--http-}; name=${name%-temp-path}
        f="--http-$name-temp-path=$prefix/temp/$name" ;;
    --*-path=/*)
        # a path option this script does not know yet: keep it inside prefix
        name=${f%%=*}; name=${name#--}
        f="${f%%=*}=$prefix/other/$name" ;;
    esac
    flags+=("$f")
done

for f in "${flags[@]}"; do
    case "$f" in
    --*=/*)
        case "${f#*=}" in
        "$prefix"|"$prefix"/*) ;;
        *) die "configure flag $f points outside $prefix" ;;
        esac ;;
    esac
done

with_module=yes
if [ "${GRPC_GUARD_ASAN_NO_MODULE:-}" = 1 ]; then
    with_module=no
fi

cc_id=$("$asan_cc" --version | sed -n 1p)
binary_want=$(printf '%s\n' "$deb_version" "$cc_id" "${flags[@]}" "$cc_opt" "$ld_opt")
configure_want=$(printf '%s\n' "$binary_want" "module=$with_module"
                 if [ "$with_module" = yes ]; then cat "$root/config"; fi)

binary_stamp=$src/.grpc-guard-binary
configure_stamp=$src/.grpc-guard-configure

stamp_is() { [ -f "$1" ] && [ "$(cat "$1")" = "$2" ]; }

# --- 3. configure (when flags or the module's config changed) --------------

if ! stamp_is "$configure_stamp" "$configure_want"; then
    args=("${flags[@]}")
    if [ "$with_module" = yes ]; then
        args+=(--add-dynamic-module="$root")
    fi
    log "configure (nginx $deb_version, $cc_id)"
    rm -f "$configure_stamp"
    (cd "$src" && ./configure "${args[@]}" --with-cc="$asan_cc" \
        --with-cc-opt="$cc_opt" --with-ld-opt="$ld_opt") \
        > "$asan/configure.log" 2>&1 \
        || { tail -30 "$asan/configure.log" >&2; die "configure failed, see $asan/configure.log"; }
    printf '%s' "$configure_want" > "$configure_stamp"
fi

# --- 4. nginx itself (when flags changed) ---------------------------------

if ! stamp_is "$binary_stamp" "$binary_want" || [ ! -x "$prefix/sbin/nginx" ]; then
    log "compiling nginx with ASan+UBSan (a few minutes)"
    rm -f "$binary_stamp"
    start=$(date +%s)
    make -C "$src" -f objs/Makefile -j"$jobs" binary > "$asan/make-nginx.log" 2>&1 \
        || { grep -E 'error|Error' "$asan/make-nginx.log" | sed -n 1,30p >&2;
             die "nginx build failed, see $asan/make-nginx.log"; }
    mkdir -p "$prefix/sbin" "$prefix/conf" "$prefix/logs" "$prefix/modules" \
             "$prefix/temp" "$prefix/html"
    cp "$src/objs/nginx" "$prefix/sbin/nginx.tmp"
    mv "$prefix/sbin/nginx.tmp" "$prefix/sbin/nginx"
    for c in "$src"/conf/*; do
        [ -e "$prefix/conf/$(basename "$c")" ] || cp "$c" "$prefix/conf/"
    done
    [ -e "$prefix/html/index.html" ] || cp "$src"/html/* "$prefix/html/"
    printf '%s' "$binary_want" > "$binary_stamp"
    log "nginx compiled in $(( $(date +%s) - start ))s"
fi

# --- 5. the module, from scratch every time --------------------------------

if [ "$with_module" = yes ]; then
    mkdir -p "$src/objs/addon/src"
    rm -f "$src"/objs/addon/src/*.o
    rm -f "$src"/objs/ngx_http_grpc_guard_module.so \
          "$src"/objs/ngx_http_grpc_guard_module_modules.o
    start=$(date +%s)
    # -z nodelete: nginx dlclose()s its modules when it destroys the cycle
    # at exit, before LeakSanitizer symbolizes the stacks of what leaked;
    # a module that stays mapped keeps its function names and lines there.
    # shellcheck disable=SC2016  # $(CC) is for make
    make -C "$src" -f objs/Makefile -j"$jobs" modules \
        LINK='$(CC) -Wl,-z,nodelete' > "$asan/make-module.log" 2>&1 \
        || { grep -E -A3 'error|Error' "$asan/make-module.log" | sed -n 1,40p >&2;
             die "module build failed, see $asan/make-module.log"; }
    cp "$src/objs/ngx_http_grpc_guard_module.so" "$prefix/modules/ngx_http_grpc_guard_module.so.tmp"
    mv "$prefix/modules/ngx_http_grpc_guard_module.so.tmp" \
       "$prefix/modules/ngx_http_grpc_guard_module.so"
    log "module compiled in $(( $(date +%s) - start ))s"
fi

# --- 6. does it run? ------------------------------------------------------

# detect_leaks=0: `nginx -V` exits without freeing its argv copy and such;
# leak checking is for the test runs (ci/test-asan.sh).
version=$(ASAN_OPTIONS=detect_leaks=0 "$prefix/sbin/nginx" -V 2>&1) \
    || die "the built nginx does not run: $version"
printf '%s\n' "$version" | sed -n '1,2s/^/build-asan: /p'
log "$prefix/sbin/nginx"
if [ "$with_module" = yes ]; then
    log "$prefix/modules/ngx_http_grpc_guard_module.so"
fi
