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

# build NAME SOURCE DEB "PKG..." COMPILER FLAGS...: builds bin/NAME from
# SOURCE (relative to bench/) when it is not fresh, with what pkg-config
# gives for the PKGs (the Debian package DEB has them)
build() {
    local bin=$here/bin/$1 src=$here/$2 deb=$3 pkgs=$4
    shift 4
    fresh "$bin" "$src" && return 0
    need_pkg "${pkgs%% *}" "$deb"
    # shellcheck disable=SC2046,SC2086
    "$@" -o "$bin.tmp" "$src" $(pkg-config --cflags --libs $pkgs) -lpthread
    mv "$bin.tmp" "$bin"
    echo "build-backend: $bin"
}

build echo_server backend/echo_server.cc libgrpc++-dev \
    "grpc++ absl_synchronization" g++ -std=c++17 -O2 -g -Wall -Wextra
build h2pool client/h2pool.c libnghttp2-dev libnghttp2 \
    gcc -O2 -g -Wall -Wextra -Werror
build jwt_verify client/jwt_verify.c libssl-dev libcrypto \
    gcc -O2 -g -Wall -Wextra -Werror
