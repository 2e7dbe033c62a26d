#!/bin/bash
# Scenario setup helper: a private redis-server on a free loopback port,
# pinned to the upstream's core, without persistence; one per bench run,
# in @WORK@/redis/, shared by every scenario that names this helper (the
# http block has one grpc_guard_redis: the scenarios' identical
# "#@ http: grpc_guard_redis ..." lines are then written once).
#   #@ setup: bench/scenarios/setup/redis.sh
# Gives @REDIS_PORT@ to the scenario's config; lists the server in the
# scenario's "cpu" file (its CPU per call is reported); run.sh stops it at
# exit.

set -euo pipefail
# shellcheck source=bench/lib.sh
. "$BENCH_LIB"

dir=$BENCH_WORK/redis
mkdir -p "$dir"

if [ -s "$dir/port" ] && [ -s "$dir/redis.pid" ] &&
   kill -0 "$(cat "$dir/redis.pid")" 2> /dev/null; then
    port=$(cat "$dir/port")
else
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
    echo "$port" > "$dir/port"
fi

cat "$dir/redis.pid" >> "$BENCH_SCEN_DIR/pids"
echo "redis $(cat "$dir/redis.pid")" >> "$BENCH_SCEN_DIR/cpu"
echo "REDIS_PORT=$port" >> "$BENCH_SCEN_DIR/vars"
