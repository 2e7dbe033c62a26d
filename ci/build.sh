#!/bin/bash
# Builds objs/ngx_http_grpc_guard_module.so against the installed Debian
# nginx, using the nginx-dev source tree and the configure flags the Debian
# binary was built with (see `nginx -V`), plus -Werror.

set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
src=${NGINX_DEV_SRC:-/usr/share/nginx/src}
build=$root/build/nginx
out=$root/objs

if [ ! -f "$src/conf_flags" ]; then
    echo "build: $src/conf_flags not found; install nginx-dev" >&2
    echo "       (ci/install-deps.sh does)" >&2
    exit 1
fi

# shellcheck disable=SC1091
. "$src/conf_flags"

cc_opt="-g -O2 -fstack-protector-strong -Wformat -Werror=format-security"
cc_opt="$cc_opt -fPIC -Wdate-time -D_FORTIFY_SOURCE=2 -Werror"
cc_opt="$cc_opt ${GRPC_GUARD_EXTRA_CFLAGS:-}"
ld_opt="-Wl,-z,relro -Wl,-z,now -fPIC"

stamp="$build/.grpc-guard-configure"
want="$(printf '%s\n' "${NGX_CONF_FLAGS[@]}" "$cc_opt" "$ld_opt";
        cat "$root/config")"

if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    rm -rf "$build"
    mkdir -p "$build"
    cp -a "$src/." "$build/"
    (cd "$build" && ./configure "${NGX_CONF_FLAGS[@]}" \
        --with-cc-opt="$cc_opt" --with-ld-opt="$ld_opt" \
        --add-dynamic-module="$root" > configure.log 2>&1) || {
        tail -30 "$build/configure.log" >&2
        exit 1
    }
    printf '%s' "$want" > "$stamp"
fi

make -s -C "$build" -f objs/Makefile modules
mkdir -p "$out"

# a running nginx maps the old file: replace it, never write into it
cp "$build/objs/ngx_http_grpc_guard_module.so" "$out/.module.so.tmp"
mv -f "$out/.module.so.tmp" "$out/ngx_http_grpc_guard_module.so"
echo "build: $out/ngx_http_grpc_guard_module.so"
