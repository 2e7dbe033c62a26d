#!/bin/bash
# Scenario setup helper for the peers: what a user would run instead of the
# guard to check the same RS256 JWT (bench/peers/jwt.js, njs).
#   #@ setup: bench/scenarios/setup/peer.sh MODE REGIME
# REGIME: "same": the one token of setup/jwt.sh on every call (the
#         authorization header, as bare_jwt and jwt_cache_hit send it);
#         "new": a new token on every call, from the RS256 pool of
#         setup/jwt_pool.py (as bare_pool_rs256 and jwt_miss_rs256).
# MODE:   "local": njs in the front nginx (the scenario loads the module);
#         "service": a second nginx with njs, the auth service, started
#         here on a free port, one worker on the upstream's core.
# Gives @JWT_SPKI@ (the public key, base64 DER), @NJS_MODULE@ and
# @BENCH_JWT_JS@; with "service", @AUTH_UPSTREAM@ (an upstream block with
# keepalive, in the scenario's http.conf) and @AUTH_PORT@; the service's
# worker goes in the scenario's "cpu" file (its CPU per call is reported),
# its master in "pids" (stopped at exit).

set -euo pipefail
# shellcheck source=bench/lib.sh
. "$BENCH_LIB"

mode=${1:-}
regime=${2:-}
setup=$BENCH_REPO/bench/scenarios/setup
njs_module=/usr/lib/nginx/modules/ngx_http_js_module.so
js=$BENCH_REPO/bench/peers/jwt.js
dir=$BENCH_SCEN_DIR

if [ ! -f "$njs_module" ]; then
    echo "peer.sh: $njs_module not found: install libnginx-mod-http-js" \
         "(ci/install-deps.sh does)" >&2
    exit 1
fi

case $regime in
    same)
        "$setup/jwt.sh"
        pub=$BENCH_WORK/jwt/pub.pem
        ;;
    new)
        "$setup/jwt_pool.py" RS256
        pub=$BENCH_WORK/jwt-pool-RS256/pub.pem
        ;;
    *)
        echo "peer.sh: REGIME is same or new" >&2
        exit 1
        ;;
esac

spki=$(openssl pkey -pubin -in "$pub" -outform DER | openssl base64 -A)
{
    echo "JWT_SPKI=$spki"
    echo "NJS_MODULE=$njs_module"
    echo "BENCH_JWT_JS=$js"
} >> "$dir/vars"

case $mode in
    local)
        exit 0
        ;;
    service)
        ;;
    *)
        echo "peer.sh: MODE is local or service" >&2
        exit 1
        ;;
esac

svc=$dir/auth
mkdir -p "$svc/tmp"

# start_service PORT: writes the service's configuration for PORT and
# starts it; fails when nginx cannot listen there
start_service() {
    local port=$1
    cat > "$svc/nginx.conf" <<CONF
# the auth service of $BENCH_NAME: a second nginx verifying the JWT in njs
load_module $njs_module;
worker_processes 1;
pid $svc/nginx.pid;
error_log $svc/error.log warn;
worker_rlimit_nofile 8192;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $svc/tmp/client_body;
    proxy_temp_path $svc/tmp/proxy;
    fastcgi_temp_path $svc/tmp/fastcgi;
    uwsgi_temp_path $svc/tmp/uwsgi;
    scgi_temp_path $svc/tmp/scgi;
    js_import bench_jwt from $js;
    server {
        listen 127.0.0.1:$port;
        keepalive_requests 1000000;
        keepalive_timeout 300s;
        location = /verify {
            set \$bench_jwt_spki $spki;
            set \$bench_jwt_issuer bench-issuer;
            set \$bench_jwt_audience bench;
            js_content bench_jwt.verify;
        }
        location / { return 404; }
    }
}
CONF

    taskset -c "${BENCH_BACKEND_CPU:-1}" nginx -p "$svc" -e "$svc/error.log" \
        -c "$svc/nginx.conf" 2>> "$svc/start.log" \
        && bench_wait_port "$port" 10
}

# a port nothing listens on may still be the local end of a connection:
# another one then
for try in 1 2 3; do
    port=$(bench_free_port)
    start_service "$port" && break
    if [ "$try" = 3 ]; then
        echo "peer.sh: the auth service did not start" >&2
        tail -5 "$svc/start.log" "$svc/error.log" >&2 || true
        exit 1
    fi
done

master=""
for _ in $(seq 1 50); do
    master=$(cat "$svc/nginx.pid" 2> /dev/null || true)
    [ -n "$master" ] && break
    sleep 0.1
done
echo "$master" >> "$dir/pids"
worker=""
for _ in $(seq 1 50); do
    worker=$(pgrep -P "$master" | head -1 || true)
    [ -n "$worker" ] && break
    sleep 0.1
done
if [ -z "$worker" ]; then
    echo "peer.sh: no worker of the auth service" >&2
    exit 1
fi
echo "auth $worker" >> "$dir/cpu"

# the service must let the scenario's token through and refuse it with its
# signature changed
case $regime in
    same) token=$(cat "$BENCH_WORK/jwt/token") ;;
    new) token=$(head -1 "$BENCH_WORK/jwt-pool-RS256/pool" | sed 's/^[^ ]* [^ ]* //') ;;
esac
last=${token: -2:1}
[ "$last" = A ] && other=B || other=A
forged=${token:0:${#token}-2}$other${token: -1}
check() {
    local got
    got=$(curl -s -o /dev/null -w '%{http_code}' \
          -H "authorization: Bearer $2" "http://127.0.0.1:$port/verify")
    if [ "$got" != "$1" ]; then
        echo "peer.sh: the auth service answered $got, want $1 ($3)" >&2
        exit 1
    fi
}
check 200 "$token" "a valid token"
check 401 "$forged" "a forged signature"

upstream=bench_auth_$BENCH_NAME
cat > "$dir/http.conf" <<CONF
upstream $upstream {
    server 127.0.0.1:$port;
    keepalive 1024;
    keepalive_requests 1000000;
}
CONF
{
    echo "AUTH_UPSTREAM=$upstream"
    echo "AUTH_PORT=$port"
} >> "$dir/vars"
