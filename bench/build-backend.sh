#!/bin/bash
# Builds the bench gRPC upstream (bench/backend/echo_server.cc) into
# bench/bin/echo_server with Debian's libgrpc++ (pkg-config grpc++).
# Rebuilds only when the source is newer than the binary.

set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
src=$here/backend/echo_server.cc
bin=$here/bin/echo_server

if [ -x "$bin" ] && [ "$bin" -nt "$src" ] && [ "$bin" -nt "$0" ]; then
    exit 0
fi

if ! pkg-config --exists grpc++; then
    echo "build-backend: pkg-config cannot find grpc++;" \
         "install libgrpc++-dev (ci/install-deps.sh does)" >&2
    exit 1
fi

mkdir -p "$here/bin"
# shellcheck disable=SC2046
g++ -std=c++17 -O2 -g -Wall -Wextra -o "$bin.tmp" "$src" \
    $(pkg-config --cflags --libs grpc++ absl_synchronization) -lpthread
mv "$bin.tmp" "$bin"
echo "build-backend: $bin"
