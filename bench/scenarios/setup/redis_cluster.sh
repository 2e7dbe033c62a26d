#!/bin/bash
# Scenario setup helper: a private Redis Cluster of three masters (no
# replicas) on free loopback ports, pinned to the upstream's core, without
# persistence; the slots spread by redis-cli --cluster create.
#   #@ setup: bench/scenarios/setup/redis_cluster.sh
# Gives @REDIS_CLUSTER@ (the nodes, for cluster=) and REDIS_STATS (their
# ports: run.sh reports the limiter's commands per RPC summed over them);
# run.sh stops them at exit.

set -euo pipefail
# shellcheck source=bench/lib.sh
. "$BENCH_LIB"

dir=$BENCH_SCEN_DIR
ports=()

for i in 1 2 3; do
    port=$(bench_free_port)
    mkdir -p "$dir/node-$i"
    taskset -c "${BENCH_BACKEND_CPU:-1}" redis-server \
        --bind 127.0.0.1 --port "$port" --save '' --appendonly no \
        --cluster-enabled yes --cluster-config-file nodes.conf \
        --daemonize yes --dir "$dir/node-$i" \
        --pidfile "$dir/node-$i/redis.pid" --logfile "$dir/node-$i/redis.log"
    if ! bench_wait_port "$port" 10; then
        echo "redis_cluster.sh: redis-server did not start" >&2
        tail -5 "$dir/node-$i/redis.log" >&2 || true
        exit 1
    fi
    for _ in $(seq 1 50); do
        [ -s "$dir/node-$i/redis.pid" ] && break
        sleep 0.1
    done
    cat "$dir/node-$i/redis.pid" >> "$dir/pids"
    ports+=("$port")
done

redis-cli --cluster create "${ports[@]/#/127.0.0.1:}" --cluster-yes \
    > "$dir/create.log" 2>&1

for _ in $(seq 1 100); do
    ok=0
    for port in "${ports[@]}"; do
        if redis-cli -p "$port" cluster info | grep -q 'cluster_state:ok'; then
            ok=$(( ok + 1 ))
        fi
    done
    [ "$ok" = 3 ] && break
    sleep 0.1
done
if [ "$ok" != 3 ]; then
    echo "redis_cluster.sh: the cluster did not come up" >&2
    exit 1
fi

list=$(printf '127.0.0.1:%s,' "${ports[@]}")
echo "REDIS_CLUSTER=${list%,}" >> "$dir/vars"
echo "REDIS_STATS=${ports[*]}" >> "$dir/vars"
