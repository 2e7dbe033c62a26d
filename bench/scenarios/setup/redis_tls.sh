#!/bin/bash
# Scenario setup helper: as redis.sh, but the private redis-server speaks
# TLS only (--port 0 --tls-port), with a CA and a server certificate
# (IP:127.0.0.1) made here with openssl; no client certificates asked for.
#   #@ setup: bench/scenarios/setup/redis_tls.sh
# Gives @REDIS_PORT@ (the TLS port) and @REDIS_CA@ (the CA certificate to
# verify it with); run.sh stops it at exit.

set -euo pipefail
# shellcheck source=bench/lib.sh
. "$BENCH_LIB"

dir=$BENCH_SCEN_DIR
port=$(bench_free_port)

openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -subj '/CN=bench redis CA' -days 2 \
    -addext basicConstraints=critical,CA:true \
    -addext keyUsage=critical,keyCertSign,cRLSign \
    -keyout "$dir/ca.key" -out "$dir/ca.crt" 2> "$dir/openssl.log"
openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -subj '/CN=localhost' -days 2 \
    -CA "$dir/ca.crt" -CAkey "$dir/ca.key" \
    -addext basicConstraints=critical,CA:false \
    -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
    -keyout "$dir/redis.key" -out "$dir/redis.crt" 2>> "$dir/openssl.log"

taskset -c "${BENCH_BACKEND_CPU:-1}" redis-server \
    --bind 127.0.0.1 --port 0 --tls-port "$port" \
    --tls-cert-file "$dir/redis.crt" --tls-key-file "$dir/redis.key" \
    --tls-ca-cert-file "$dir/ca.crt" --tls-auth-clients no \
    --save '' --appendonly no \
    --daemonize yes --dir "$dir" --pidfile "$dir/redis.pid" \
    --logfile "$dir/redis.log"

if ! bench_wait_port "$port" 10; then
    echo "redis_tls.sh: redis-server did not start" >&2
    tail -5 "$dir/redis.log" >&2 || true
    exit 1
fi
for _ in $(seq 1 50); do
    [ -s "$dir/redis.pid" ] && break
    sleep 0.1
done
cat "$dir/redis.pid" >> "$dir/pids"
echo "redis $(cat "$dir/redis.pid")" >> "$dir/cpu"
echo "REDIS_PORT=$port" >> "$dir/vars"
echo "REDIS_CA=$dir/ca.crt" >> "$dir/vars"
