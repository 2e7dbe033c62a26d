#!/bin/bash
# Scenario setup helper: starts a private redis-server on a free loopback
# port, pinned to the upstream's core, without persistence.
#   #@ setup: bench/scenarios/setup/redis.sh
# Gives @REDIS_PORT@ to the scenario's config; run.sh stops it at exit.

set -euo pipefail
# shellcheck source=bench/lib.sh
. "$BENCH_LIB"

dir=$BENCH_SCEN_DIR
port=$(bench_free_port)

taskset -c "${BENCH_BACKEND_CPU:-1}" redis-server \
    --bind 127.0.0.1 --port "$port" --save '' --appendonly no \
    --daemonize yes --dir "$dir" --pidfile "$dir/redis.pid" \
    --logfile "$dir/redis.log"

if ! bench_wait_port "$port" 10; then
    echo "redis.sh: redis-server did not start" >&2
    tail -5 "$dir/redis.log" >&2 || true
    exit 1
fi
for _ in $(seq 1 50); do
    [ -s "$dir/redis.pid" ] && break
    sleep 0.1
done
cat "$dir/redis.pid" >> "$dir/pids"
echo "REDIS_PORT=$port" >> "$dir/vars"
