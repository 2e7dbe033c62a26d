#!/bin/bash
# Builds the bench's own programs into bench/bin/, each only when its source
# is newer than the binary:
#   echo_server  the gRPC upstream (bench/backend/echo_server.cc), with
#                Debian's libgrpc++ (pkg-config grpc++)
#   h2pool       the load client for calls that each carry a different
#                header (bench/client/h2pool.c, libnghttp2)
#   jwt_verify   OpenSSL's own cost of one JWT verify
#                (bench/client/jwt_verify.c, libcrypto)

set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$here/bin"

# fresh BIN SRC: true when BIN is newer than SRC and than this script.
fresh() {
    [ -x "$1" ] && [ "$1" -nt "$2" ] && [ "$1" -nt "$0" ]
}

need_pkg() {
    if ! pkg-config --exists "$1"; then
        echo "build-backend: pkg-config cannot find $1;" \
             "install $2 (ci/install-deps.sh does)" >&2
        exit 1
    fi
}

bin=$here/bin/echo_server
src=$here/backend/echo_server.cc
if ! fresh "$bin" "$src"; then
    need_pkg grpc++ libgrpc++-dev
    # shellcheck disable=SC2046
    g++ -std=c++17 -O2 -g -Wall -Wextra -o "$bin.tmp" "$src" \
        $(pkg-config --cflags --libs grpc++ absl_synchronization) -lpthread
    mv "$bin.tmp" "$bin"
    echo "build-backend: $bin"
fi

bin=$here/bin/h2pool
src=$here/client/h2pool.c
if ! fresh "$bin" "$src"; then
    need_pkg libnghttp2 libnghttp2-dev
    # shellcheck disable=SC2046
    gcc -O2 -g -Wall -Wextra -Werror -o "$bin.tmp" "$src" \
        $(pkg-config --cflags --libs libnghttp2)
    mv "$bin.tmp" "$bin"
    echo "build-backend: $bin"
fi

bin=$here/bin/jwt_verify
src=$here/client/jwt_verify.c
if ! fresh "$bin" "$src"; then
    need_pkg libcrypto libssl-dev
    # shellcheck disable=SC2046
    gcc -O2 -g -Wall -Wextra -Werror -o "$bin.tmp" "$src" \
        $(pkg-config --cflags --libs libcrypto)
    mv "$bin.tmp" "$bin"
    echo "build-backend: $bin"
fi
