#!/bin/bash
# `make demo`: starts a gRPC backend and nginx with conf-examples/demo.conf
# (on free loopback ports), makes real gRPC calls through it with a real
# gRPC client, prints what happened, and stops everything again.
#
# DEMO_KEEP=1 leaves nginx and the backend running; the script then prints
# the commands that stop them.

set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
dir=$root/build/demo
module=$root/objs/ngx_http_grpc_guard_module.so
py=/usr/bin/python3
nginx=${NGINX:-/usr/sbin/nginx}

free_port() {
    "$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

pids=()

stop_all() {
    if [ "${DEMO_KEEP:-}" = "1" ]; then
        echo
        echo "left running; stop with:"
        echo "  $nginx -p $dir -c conf/nginx.conf -s quit"
        for p in "${pids[@]}"; do
            echo "  kill $p"
        done
        return
    fi

    if [ -f "$dir/logs/nginx.pid" ]; then
        "$nginx" -p "$dir" -c conf/nginx.conf -s quit 2>/dev/null || true
    fi

    for p in "${pids[@]}"; do
        kill "$p" 2>/dev/null || true
    done

    for _ in $(seq 50); do
        if [ ! -f "$dir/logs/nginx.pid" ]; then
            break
        fi
        sleep 0.1
    done
}

trap stop_all EXIT

if [ ! -f "$module" ]; then
    echo "demo: $module is missing; run make first" >&2
    exit 1
fi

rm -rf "$dir"
mkdir -p "$dir/conf" "$dir/logs"

backend_port=$(free_port)
nginx_port=$(free_port)
redis_port=$(free_port)

redis-server --port "$redis_port" --bind 127.0.0.1 --save '' \
    --appendonly no --daemonize no > "$dir/logs/redis.log" 2>&1 &
pids+=($!)

# API keys are stored hashed: "sha256:HEX CLIENT_ID [roles]"
for k in "demo-billing-key billing-app" "demo-reports-key reports-app"; do
    set -- $k
    printf 'sha256:%s %s\n' "$(printf %s "$1" | sha256sum | cut -d' ' -f1)" \
        "$2" >> "$dir/conf/demo-keys.txt"
done

"$py" "$root/t/lib/grpc_backend.py" --port "$backend_port" \
    --record "$dir/logs/backend-calls.jsonl" > "$dir/logs/backend.log" 2>&1 &
pids+=($!)

sed -e "s|/usr/lib/nginx/modules/ngx_http_grpc_guard_module.so|$module|" \
    -e "s|127.0.0.1:50051|127.0.0.1:$backend_port|" \
    -e "s|127.0.0.1:8080|127.0.0.1:$nginx_port|" \
    -e "s|127.0.0.1:6379|127.0.0.1:$redis_port|" \
    "$root/conf-examples/demo.conf" > "$dir/conf/nginx.conf"

for _ in $(seq 100); do
    if "$py" -c "import socket,sys; socket.create_connection(('127.0.0.1',$backend_port),0.2)" 2>/dev/null
    then
        break
    fi
    sleep 0.1
done

"$nginx" -p "$dir" -c conf/nginx.conf -t -q
"$nginx" -p "$dir" -c conf/nginx.conf

for _ in $(seq 100); do
    if "$py" -c "import socket,sys; socket.create_connection(('127.0.0.1',$nginx_port),0.2)" 2>/dev/null
    then
        break
    fi
    sleep 0.1
done

echo "demo: backend on 127.0.0.1:$backend_port, nginx on 127.0.0.1:$nginx_port," \
     "redis on 127.0.0.1:$redis_port"
echo "demo: config $dir/conf/nginx.conf (from conf-examples/demo.conf)"
echo

call() {
    local what=$1 spec=$2
    printf '%-52s ' "$what"
    echo "$spec" | "$py" "$root/t/lib/grpc_client.py" | "$py" -c '
import json, sys
names = {0: "OK", 3: "INVALID_ARGUMENT", 4: "DEADLINE_EXCEEDED",
         7: "PERMISSION_DENIED", 8: "RESOURCE_EXHAUSTED",
         12: "UNIMPLEMENTED", 14: "UNAVAILABLE", 16: "UNAUTHENTICATED"}
d = json.load(sys.stdin)
code = d.get("code")
msg = d.get("details") or ""
n = len(d.get("responses") or [])
tm = dict((k, v) for k, v in d.get("trailing_metadata") or [])
wait = tm.get("grpc-retry-pushback-ms")
print("-> %s %s%s%s%s" % (code, names.get(code, ""),
      (" \"%s\"" % msg) if msg else "",
      (", %d response message(s)" % n) if code == 0 else "",
      (", retry in %s ms" % wait) if wait else ""))
'
}

p=$nginx_port

call "unary call with a 5 s deadline" \
    "{\"method\":\"/demo.Greeter/SayHello\",\"port\":$p,\"timeout\":5}"
call "server-streaming call with a deadline" \
    "{\"method\":\"/demo.Greeter/ServerStreamHellos\",\"type\":\"server_stream\",\"port\":$p,\"timeout\":5}"
call "public health check" \
    "{\"method\":\"/grpc.health.v1.Health/Check\",\"port\":$p,\"timeout\":5}"
call "call without a deadline" \
    "{\"method\":\"/demo.Greeter/SayHello\",\"port\":$p}"
call "raw path with ../ (/demo.Greeter/../admin.Ops/Drop)" \
    "{\"method\":\"/demo.Greeter/../admin.Ops/Drop\",\"port\":$p,\"timeout\":5}"
call "server reflection" \
    "{\"method\":\"/grpc.reflection.v1.ServerReflection/ServerReflectionInfo\",\"type\":\"bidi\",\"port\":$p,\"timeout\":5}"
call "upstream down" \
    "{\"method\":\"/demo.Offline/Ping\",\"port\":$p,\"timeout\":5}"
call "billing call without an API key" \
    "{\"method\":\"/demo.Billing/Charge\",\"port\":$p,\"timeout\":5}"
call "billing call with a wrong API key" \
    "{\"method\":\"/demo.Billing/Charge\",\"port\":$p,\"timeout\":5,\"metadata\":[[\"x-api-key\",\"guess\"]]}"
call "billing call with the reports app's key" \
    "{\"method\":\"/demo.Billing/Charge\",\"port\":$p,\"timeout\":5,\"metadata\":[[\"x-api-key\",\"demo-reports-key\"]]}"
call "billing call with the billing app's key" \
    "{\"method\":\"/demo.Billing/Charge\",\"port\":$p,\"timeout\":5,\"metadata\":[[\"x-api-key\",\"demo-billing-key\"]]}"
for i in 2 3 4; do
    call "SayHello again (limit 3/min per address), call $i" \
        "{\"method\":\"/demo.Greeter/SayHello\",\"port\":$p,\"timeout\":5}"
done

echo
echo "what the backend received (refused calls never reach it):"
"$py" -c '
import json, sys
for line in open(sys.argv[1]):
    d = json.loads(line)
    t = d.get("timeout")
    print("  %-40s deadline left: %s" % (d["method"],
          "%.1f s" % t if t is not None else "none"))
' "$dir/logs/backend-calls.jsonl"

echo
echo "access log (logs/access.log):"
sed -e 's/^/  /' "$dir/logs/access.log"
