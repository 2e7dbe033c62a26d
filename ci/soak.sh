#!/bin/bash
# make soak: 200,000 gRPC calls, a mix of allowed, refused and malformed
# ones, through ONE nginx worker with the module loaded and everything on
# (JWT, API keys, ACLs, a Redis limit on every call, the audit log,
# metrics); the worker's resident memory must stay flat.
#
#   make soak                      200k calls, 7-10 min on a 2-core VM
#   make soak SOAK_RPCS=1000000    the million-call run (46 min there, on a
#                                  machine busy with other test runs)
#
#   1. starts the bench gRPC upstream (bench/bin/echo_server, built by
#      bench/build-backend.sh), a private redis-server and nginx
#      (worker_processes 1) on free loopback ports, under build/soak/;
#      every guarded call passes a Redis limit (far above the load, one
#      EVALSHA each) and is written to the audit log (buffered) and
#      counted in the metrics zone, whose page is read after every round;
#   2. checks each scenario once with nghttp: the reply must be the one
#      the scenario expects (e.g. grpc-status 12 for a non-canonical path);
#   3. runs rounds of SOAK_ROUND_RPCS (20,000) calls; in each round every
#      scenario gets its share (weight) of the calls, one h2load run per
#      scenario, one after the other;
#   4. reads VmRSS of the worker from /proc/PID/status after the first
#      round (the warm-up: every code path has run, pools and caches have
#      their size) and after every later round;
#   5. sends every scenario's calls, at the same concurrency, through a
#      second nginx without the module (bare grpc_pass, every call goes
#      to the upstream) just before the guarded one, and samples its
#      worker after every round too: the baseline;
#   6. PASS when the worker is the same process at the end (no crash, no
#      respawn), every call was answered, the error log has no alert or
#      crash, and the worker's RSS growth from the first round to the last
#      exceeds the bare worker's (when that grew) by at most
#      SOAK_TOLERANCE_PCT (2) points.  A smaller RSS at the end is fine
#      (freed memory going back to the system).  nginx's own RSS moves
#      with the number of calls in flight (by ~5% at 16), which the
#      baseline takes out of the verdict.
#
# Environment (all optional):
#   SOAK_RPCS            total calls (200000)
#   SOAK_ROUND_RPCS      calls per round; the first round is the warm-up
#                        (20000)
#   SOAK_TOLERANCE_PCT   allowed RSS growth in percent points over the
#                        bare nginx's (2)
#   SOAK_BASELINE=0      no bare nginx: the growth is judged alone
#   SOAK_TIME_LIMIT      seconds for the whole run (900 per 200k
#                        calls); the run fails when it is exceeded
#   SOAK_CLIENTS, SOAK_STREAMS   h2load -c and -m (2, 4)
#   SOAK_NGINX, SOAK_MODULE      nginx and module (/usr/sbin/nginx and
#                        objs/ngx_http_grpc_guard_module.so); e.g. the
#                        ASan build of ci/build-asan.sh also works
#   SOAK_KEEP=1          leave build/soak/ (logs, config) after a PASS too
#   SOAK_VERBOSE=1       one line per h2load run, with the RSS after it
#
# nginx loads a copy of the module (build/soak/), so a rebuild of objs/
# during the run cannot pull the code from under the worker.  Concurrency
# is low by default (2 connections x 4 streams): the worker's heap then
# reaches its high-water mark within the first round.  With 64 calls in
# flight, RSS crept up by 1-3% over 200k calls, only in the scenarios that
# reach the upstream (grpc_pass buffers of more simultaneous upstream
# connections), settling after ~250k calls: the allocator's high-water
# mark, not a leak (the refusal paths alone stay flat to the kB).
#
# Adding a scenario: add a `scenario` line below with its path and
# metadata (an `authorization: Bearer ...` header, an `x-api-key` header),
# and, when it needs a policy of its own, a location in the configuration
# further down whose prefix matches that path.

set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
dir=$root/build/soak
nginx=${SOAK_NGINX:-/usr/sbin/nginx}
module=${SOAK_MODULE:-$root/objs/ngx_http_grpc_guard_module.so}
total=${SOAK_RPCS:-200000}
round=${SOAK_ROUND_RPCS:-20000}
tolerance=${SOAK_TOLERANCE_PCT:-2}
baseline=${SOAK_BASELINE:-1}
time_limit=${SOAK_TIME_LIMIT:-$(( 900 * ((total + 199999) / 200000) ))}
clients=${SOAK_CLIENTS:-2}
streams=${SOAK_STREAMS:-4}
py=/usr/bin/python3

start=$(date +%s)
deadline=$((start + time_limit))

log() { echo "soak: $*"; }
die() { echo "soak: FAIL: $*" >&2; exit 1; }

for tool in h2load nghttp "$nginx" "$py" redis-server curl; do
    command -v "$tool" >/dev/null || die "$tool not found (ci/install-deps.sh installs nghttp2-client, nginx, python3, redis-server, curl)"
done
[ -f "$module" ] || die "$module not built (ci/build.sh)"
module=$(realpath "$module")
if [[ "$nginx" == */* ]]; then nginx=$(realpath "$nginx"); fi
[ "$total" -ge "$round" ] && [ "$round" -gt 0 ] || die "SOAK_RPCS must be >= SOAK_ROUND_RPCS > 0"

# ------------------------------------------------------------ scenarios
#
# scenario NAME WEIGHT BODY EXPECT PATH [HEADER...]
#   BODY    ok: one gRPC message (5-byte frame header + 11 bytes)
#           short: a frame header announcing 100 bytes, followed by 11
#           big: one message of 2000 bytes (over /soak.Size/'s 1k limit)
#           stream-big: three small messages, then one of 2000 bytes
#           text, text-big: ok and big as grpc-web-text (base64)
#   EXPECT  what the single nghttp check must see, alternatives separated
#           by commas: grpc:N (HTTP 200 and grpc-status N), http:NNN (that
#           :status and no grpc-status), reset (nginx ends the connection
#           with GOAWAY or the stream with RST_STREAM, no reply; the load
#           then makes one connection per call), any (anything, even no
#           reply: the point is that nginx survives it)
#   HEADER  request metadata, as "name: value"; :method is POST, :path is
#           PATH exactly as written (no normalisation on the way)

ct='content-type: application/grpc'
te='te: trailers'
to='grpc-timeout: 5S'
pad4k=$(head -c 4000 /dev/zero | tr '\0' a)
pad20k=$(head -c 20000 /dev/zero | tr '\0' a)

# JWTs from t/lib/mkjwt.py, with keys kept outside $dir (made once)
jwt_dir=$root/build/soak-jwt
"$py" "$root/t/lib/mkjwt.py" keys "$jwt_dir" \
    || die "t/lib/mkjwt.py keys $jwt_dir failed"
jwt() { "$py" "$root/t/lib/mkjwt.py" token "$jwt_dir" "$1"; }
jwt_ok=$(jwt '{"key": "rsa", "kid": "rsa1"}')
jwt_expired=$(jwt '{"key": "rsa", "kid": "rsa1", "claims": {"exp": {"rel": -3600}}}')
jwt_badsig=$(jwt '{"key": "ec256", "kid": "ec1", "tamper": "payload"}')

names=() weights=() bodies=() expects=() paths=() headers=()
scenario() {
    local name=$1 weight=$2 body=$3 expect=$4 path=$5 h
    shift 5
    names+=("$name") weights+=("$weight") bodies+=("$body")
    expects+=("$expect") paths+=("$path")
    h=""
    for x in "$@"; do h+="$x"$'\n'; done
    headers+=("$h")
}

# allowed: go through to the upstream and come back with grpc-status 0
scenario allowed            40 ok    grpc:0  /soak.Echo/Call "$ct" "$te" "$to"
scenario allowed-other      10 ok    grpc:0  /soak.v2.Store/Put "$ct" "$te" "$to" "x-soak: 1"
scenario allowed-4k-header   4 ok    grpc:0  /soak.Echo/Call "$ct" "$te" "$to" "x-soak-pad: $pad4k"
# 12 UNIMPLEMENTED: non-canonical raw :path, reflection
scenario double-slash        4 ok    grpc:12 //soak.Echo/Call "$ct" "$te" "$to"
scenario dot-dot             4 ok    grpc:12 /x.Y/../a.B/C "$ct" "$te" "$to"
scenario dot-segment         2 ok    grpc:12 /soak.Echo/./Call "$ct" "$te" "$to"
scenario percent-escape      2 ok    grpc:12 /soak.Echo/%43all "$ct" "$te" "$to"
scenario query               2 ok    grpc:12 '/soak.Echo/Call?x=1' "$ct" "$te" "$to"
scenario no-method           2 ok    grpc:12 /soak.Echo "$ct" "$te" "$to"
scenario reflection-v1       4 ok    grpc:12 /grpc.reflection.v1.ServerReflection/ServerReflectionInfo "$ct" "$te" "$to"
scenario reflection-v1alpha  2 ok    grpc:12 /grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo "$ct" "$te" "$to"
# 3 INVALID_ARGUMENT: grpc_guard_deadline required
scenario no-deadline         6 ok    grpc:3  /soak.Echo/Call "$ct" "$te"
scenario huge-deadline       3 ok    grpc:3  /soak.Echo/Call "$ct" "$te" "grpc-timeout: 99999999999S"
scenario bad-deadline-unit   2 ok    grpc:3  /soak.Echo/Call "$ct" "$te" "grpc-timeout: 5X"
# 16 UNAUTHENTICATED and 7 PERMISSION_DENIED: API keys and an ACL
scenario key-allowed         6 ok    grpc:0  /soak.Secure/Read "$ct" "$te" "$to" "x-api-key: soak-reader-key"
scenario key-missing         4 ok    grpc:16 /soak.Secure/Read "$ct" "$te" "$to"
scenario key-unknown         4 ok    grpc:16 /soak.Secure/Read "$ct" "$te" "$to" "x-api-key: not-a-key"
scenario key-twice           2 ok    grpc:16 /soak.Secure/Read "$ct" "$te" "$to" "x-api-key: soak-reader-key" "x-api-key: soak-reader-key"
scenario acl-denied          4 ok    grpc:7  /soak.Secure/Write "$ct" "$te" "$to" "x-api-key: soak-reader-key"
scenario acl-deny-rule       2 ok    grpc:7  /soak.Secure/Purge "$ct" "$te" "$to" "x-api-key: soak-writer-key"
# JWT: a valid token (a connection hit after the first call of each
# connection; its claim is forwarded, so the payload is parsed every call),
# and tokens refused after parsing and verifying them
scenario jwt-allowed         6 ok    grpc:0  /soak.Jwt/Read "$ct" "$te" "$to" "authorization: Bearer $jwt_ok"
scenario jwt-expired         3 ok    grpc:16 /soak.Jwt/Read "$ct" "$te" "$to" "authorization: Bearer $jwt_expired"
scenario jwt-bad-signature   3 ok    grpc:16 /soak.Jwt/Read "$ct" "$te" "$to" "authorization: Bearer $jwt_badsig"
scenario jwt-garbage         2 ok    grpc:16 /soak.Jwt/Read "$ct" "$te" "$to" "authorization: Bearer e30.e30.AAAA"
# everything on, as an edge runs it: JWT (RS256, iss and aud checked), an
# ACL on its claims, a second Redis limit per principal, besides the audit
# log, the metrics and the server's Redis limit every call passes
scenario all-allowed        30 ok    grpc:0  /soak.All/Read "$ct" "$te" "$to" "authorization: Bearer $jwt_ok"
scenario all-acl-denied      4 ok    grpc:7  /soak.All/Write "$ct" "$te" "$to" "authorization: Bearer $jwt_ok"
scenario all-no-token        2 ok    grpc:16 /soak.All/Read "$ct" "$te" "$to"
scenario all-limited         4 ok    grpc:8,grpc:0 /soak.AllLimited/Read "$ct" "$te" "$to" "authorization: Bearer $jwt_ok"
# grpc_guard_max_message_size: 8 RESOURCE_EXHAUSTED for a message over the
# limit (the body filter), also after earlier messages of a stream; gRPC-Web
# (binary and base64 text) read the same way, refused with the gRPC-Web
# form of 8
web='content-type: application/grpc-web+proto'
webtext='content-type: application/grpc-web-text'
scenario size-ok             4 ok    grpc:0  /soak.Size/Call "$ct" "$te" "$to"
scenario size-too-large      6 big   grpc:8  /soak.Size/Call "$ct" "$te" "$to"
scenario size-stream-large   4 stream-big grpc:8 /soak.Size/Upload "$ct" "$te" "$to"
scenario web-ok              3 ok    any     /soak.Size/Call "$web" "$te" "$to" "x-grpc-web: 1"
scenario web-too-large       3 big   grpc:8  /soak.Size/Call "$web" "$te" "$to" "x-grpc-web: 1"
scenario web-text-ok         2 text  any     /soak.Size/Call "$webtext" "$te" "$to" "x-grpc-web: 1"
scenario web-text-too-large  2 text-big grpc:8 /soak.Size/Call "$webtext" "$te" "$to" "x-grpc-web: 1"
# malformed: whatever the answer, nginx and the module must survive it
scenario no-content-type     3 ok    any      /soak.Echo/Call "$te" "$to"
scenario garbage-path        2 ok    http:400 '/%ZZ/..%2f%00' "$ct" "$te" "$to"
scenario oversized-header    2 ok    reset    /soak.Echo/Call "$ct" "$te" "$to" "x-soak-pad: $pad20k"
scenario short-message       2 short any      /soak.Echo/Call "$ct" "$te" "$to"

# ------------------------------------------------------------ setup

rm -rf "$dir"
mkdir -p "$dir/conf" "$dir/logs" "$dir/body"
printf '\x00\x00\x00\x00\x0bhello soak!' > "$dir/body/ok"
printf '\x00\x00\x00\x00\x64hello soak!' > "$dir/body/short"
{ printf '\x00\x00\x00\x07\xd0'; head -c 2000 /dev/zero | tr '\0' b; } \
    > "$dir/body/big"
cat "$dir/body/ok" "$dir/body/ok" "$dir/body/ok" "$dir/body/big" \
    > "$dir/body/stream-big"
base64 -w0 "$dir/body/ok" > "$dir/body/text"
base64 -w0 "$dir/body/big" > "$dir/body/text-big"

free_port() {
    "$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

pids=()
nginx_started=""
bare_started=""
stop_nginx() {
    # $1: prefix directory of an nginx started by this script
    if [ -f "$1/logs/nginx.pid" ]; then
        "$nginx" -p "$1/" -c "$1/conf/nginx.conf" -s stop 2>/dev/null || true
        for _ in $(seq 50); do
            [ -f "$1/logs/nginx.pid" ] || break
            sleep 0.1
        done
    fi
}
cleanup() {
    if [ -n "$nginx_started" ]; then stop_nginx "$dir"; fi
    if [ -n "$bare_started" ]; then stop_nginx "$dir/bare"; fi
    for p in "${pids[@]}"; do
        kill "$p" 2>/dev/null || true
    done
    wait 2>/dev/null || true
}
trap cleanup EXIT

# nginx loads its own copy: a rebuild that rewrites objs/*.so in place
# while the soak runs would crash the worker
cp "$module" "$dir/ngx_http_grpc_guard_module.so"
module_src=$module
module=$dir/ngx_http_grpc_guard_module.so

"$root/bench/build-backend.sh"
backend_bin=$root/bench/bin/echo_server
[ -x "$backend_bin" ] || die "$backend_bin not built"

backend_port=$(free_port)
"$backend_bin" "$backend_port" 1 127.0.0.1 > "$dir/logs/backend.log" 2>&1 &
pids+=($!)

# the limiter's Redis (no persistence)
redis_port=$(free_port)
redis-server --bind 127.0.0.1 --port "$redis_port" --save '' \
    --appendonly no --dir "$dir" --logfile "$dir/logs/redis.log" &
pids+=($!)

port=$(free_port)
user=""
if [ "$(id -u)" = 0 ]; then user="user root;"; fi

cat > "$dir/conf/nginx.conf" <<EOF
load_module $module;

$user
worker_processes 1;
daemon on;
master_process on;
error_log $dir/logs/error.log warn;
pid $dir/logs/nginx.pid;

events {
    worker_connections 1024;
}

http {
    access_log off;
    client_body_temp_path $dir/tmp/client_body;
    proxy_temp_path $dir/tmp/proxy;
    fastcgi_temp_path $dir/tmp/fastcgi;
    uwsgi_temp_path $dir/tmp/uwsgi;
    scgi_temp_path $dir/tmp/scgi;

    keepalive_requests 1000000;

    grpc_guard_redis 127.0.0.1:$redis_port timeout=1s;
    grpc_guard_metrics_zone 1m;

    upstream soak_backend {
        server 127.0.0.1:$backend_port;
        keepalive 64;
        keepalive_requests 1000000;
    }

    server {
        listen 127.0.0.1:$port http2;

        # every guarded call: one Redis limit (never reached), an audit
        # record, a count in the metrics
        grpc_guard_limit rate=1000000000r/s key=\$remote_addr name=soak;
        grpc_guard_audit_log $dir/logs/audit.log buffer=64k flush=1s;

        location = /metrics {
            grpc_guard off;
            grpc_guard_limit off;
            grpc_guard_audit_log off;
            grpc_guard_metrics;
        }

        location /soak.All/ {
            grpc_guard_deadline required;
            grpc_guard_auth jwt;
            grpc_guard_require_tls off;
            grpc_guard_jwt_key_file $jwt_dir/jwks.json;
            grpc_guard_jwt_issuer https://issuer.test;
            grpc_guard_jwt_audience grpc-guard-tests;
            grpc_guard_allow /soak.All/Read* sub=alice name=read;
            grpc_guard_limit rate=1000000000r/s key=\$remote_addr name=soak;
            grpc_guard_limit rate=1000000000r/s key=\$grpc_guard_principal
                             name=soak_principal;
            grpc_pass grpc://soak_backend;
        }

        location /soak.AllLimited/ {
            grpc_guard_deadline required;
            grpc_guard_auth jwt;
            grpc_guard_require_tls off;
            grpc_guard_jwt_key_file $jwt_dir/jwks.json;
            grpc_guard_allow * sub=alice;
            grpc_guard_limit rate=1r/h key=\$grpc_guard_principal
                             name=soak_limited;
            grpc_pass grpc://soak_backend;
        }

        # one policy for every scenario above; a scenario that needs
        # another one (authentication, ACL) gets a location of its own here
        location / {
            grpc_guard on;
            grpc_guard_deadline required;
            grpc_pass grpc://soak_backend;
        }

        location /soak.Secure/ {
            grpc_guard_deadline required;
            grpc_guard_auth api_key;
            grpc_guard_require_tls off;
            grpc_guard_api_key_file $dir/conf/keys.txt;
            grpc_guard_allow /soak.Secure/Read* role=reader,writer;
            grpc_guard_allow /soak.Secure/* role=writer;
            grpc_guard_deny /soak.Secure/Purge* role=writer;
            grpc_pass grpc://soak_backend;
        }

        location /soak.Size/ {
            grpc_guard_deadline required;
            grpc_guard_max_message_size 1k;
            grpc_pass grpc://soak_backend;
        }

        location /soak.Jwt/ {
            grpc_guard_deadline required;
            grpc_guard_auth jwt;
            grpc_guard_require_tls off;
            grpc_guard_jwt_key_file $jwt_dir/jwks.json;
            grpc_set_header x-user \$grpc_guard_jwt_claim_sub;
            grpc_pass grpc://soak_backend;
        }
    }
}
EOF
mkdir -p "$dir/tmp"

for k in "soak-reader-key reader-app reader" "soak-writer-key writer-app writer"
do
    set -- $k
    printf 'sha256:%s %s %s\n' "$(printf %s "$1" | sha256sum | cut -d' ' -f1)" \
        "$2" "$3" >> "$dir/conf/keys.txt"
done

for _ in $(seq 50); do
    (exec 3<>"/dev/tcp/127.0.0.1/$backend_port") 2>/dev/null && break
    sleep 0.1
done
(exec 3<>"/dev/tcp/127.0.0.1/$backend_port") 2>/dev/null \
    || die "backend did not start: $(cat "$dir/logs/backend.log")"

"$nginx" -p "$dir/" -c "$dir/conf/nginx.conf" 2> "$dir/logs/nginx.stderr" \
    || die "nginx did not start: $(cat "$dir/logs/nginx.stderr")"
nginx_started=1

master=""
for _ in $(seq 50); do
    master=$(cat "$dir/logs/nginx.pid" 2>/dev/null || true)
    [ -n "$master" ] && break
    sleep 0.1
done
[ -n "$master" ] || die "nginx wrote no pid file"

worker_pid() {
    # $1: master pid (default: the guarded nginx's)
    local w
    w=$(ps -o pid= --ppid "${1:-$master}" | awk 'NR == 1 { print $1 }')
    echo "$w"
}

rss_kb() {
    awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"
}

worker=""
for _ in $(seq 50); do
    worker=$(worker_pid)
    [ -n "$worker" ] && break
    sleep 0.1
done
[ -n "$worker" ] || die "no nginx worker process"

log "nginx $("$nginx" -v 2>&1 | sed 's/.*: //'), module $module_src"
log "master $master, worker $worker, port $port; backend $backend_bin on port $backend_port"

# the baseline: nginx without the module, bare grpc_pass, same upstream
bare_port="" bare_worker="" bare_master=""
if [ "$baseline" = 1 ]; then
    bare_port=$(free_port)
    mkdir -p "$dir/bare/conf" "$dir/bare/logs" "$dir/bare/tmp"
    cat > "$dir/bare/conf/nginx.conf" <<EOF
$user
worker_processes 1;
daemon on;
master_process on;
error_log $dir/bare/logs/error.log warn;
pid $dir/bare/logs/nginx.pid;

events {
    worker_connections 1024;
}

http {
    access_log off;
    client_body_temp_path $dir/bare/tmp/client_body;
    proxy_temp_path $dir/bare/tmp/proxy;
    fastcgi_temp_path $dir/bare/tmp/fastcgi;
    uwsgi_temp_path $dir/bare/tmp/uwsgi;
    scgi_temp_path $dir/bare/tmp/scgi;

    keepalive_requests 1000000;

    upstream soak_backend {
        server 127.0.0.1:$backend_port;
        keepalive 64;
        keepalive_requests 1000000;
    }

    server {
        listen 127.0.0.1:$bare_port http2;

        location / {
            grpc_pass grpc://soak_backend;
        }
    }
}
EOF
    "$nginx" -p "$dir/bare/" -c "$dir/bare/conf/nginx.conf" \
        2> "$dir/bare/logs/nginx.stderr" \
        || die "bare nginx did not start: $(cat "$dir/bare/logs/nginx.stderr")"
    bare_started=1
    for _ in $(seq 50); do
        bare_master=$(cat "$dir/bare/logs/nginx.pid" 2>/dev/null || true)
        [ -n "$bare_master" ] && break
        sleep 0.1
    done
    [ -n "$bare_master" ] || die "bare nginx wrote no pid file"
    for _ in $(seq 50); do
        bare_worker=$(worker_pid "$bare_master")
        [ -n "$bare_worker" ] && break
        sleep 0.1
    done
    [ -n "$bare_worker" ] || die "no bare nginx worker process"
    log "baseline: nginx without the module, worker $bare_worker, port $bare_port"
fi

# ------------------------------------------------------------ 1. check

headers_args() {
    # $1: newline-separated headers -> -H args in the array `hargs`
    hargs=()
    local h
    while IFS= read -r h; do
        if [ -n "$h" ]; then hargs+=(-H "$h"); fi
    done <<< "$1"
}

outcome() {
    # nghttp -v output on stdin -> grpc:N, http:NNN, reset or none
    awk '
        / recv \(stream_id=13\) :status: /     { status = $NF }
        / recv \(stream_id=13\) grpc-status: / { grpc = $NF }
        /recv RST_STREAM frame|recv GOAWAY frame/ { reset = 1 }
        END {
            if (status != "" && grpc != "") print "grpc:" grpc
            else if (status != "") print "http:" status
            else if (reset) print "reset"
            else print "none"
        }'
}

printf 'soak: %-20s %-9s %-9s %s\n' scenario expected got path
bad=0
for i in "${!names[@]}"; do
    headers_args "${headers[$i]}"
    got=$(timeout 20 nghttp -v -n -H ':method: POST' "${hargs[@]}" \
              -d "$dir/body/${bodies[$i]}" "http://127.0.0.1:$port${paths[$i]}" \
              2>&1 | outcome || true)
    ok=no
    IFS=, read -r -a alts <<< "${expects[$i]}"
    for e in "${alts[@]}"; do
        if [ "$e" = any ] || [ "$e" = "$got" ]; then ok=yes; fi
    done
    mark=""
    [ "$ok" = yes ] || { mark="  <-- unexpected"; bad=1; }
    printf 'soak: %-20s %-9s %-9s %.60s%s\n' "${names[$i]}" "${expects[$i]}" "$got" "${paths[$i]}" "$mark"
done
[ "$bad" = 0 ] || die "a scenario did not get the reply it expects (see above)"

# ------------------------------------------------------------ 2. load

weight_sum=0
for w in "${weights[@]}"; do weight_sum=$((weight_sum + w)); done

declare -A sent
rpcs_done=0
h2load_failures=0

run_round() {
    # $1: calls in this round, shared by weight; the first scenario takes
    # the rounding remainder
    local n=$1 i share rest=$1 out line st d e
    local -a counts=()
    for i in "${!names[@]}"; do
        share=$(( n * weights[i] / weight_sum ))
        if [ "$share" -lt 1 ]; then share=1; fi
        counts[i]=$share
        rest=$((rest - share))
    done
    counts[0]=$(( counts[0] + rest ))
    for i in "${!names[@]}"; do
        share=${counts[i]}
        [ "$share" -gt 0 ] || continue
        local left=$((deadline - $(date +%s)))
        [ "$left" -gt 5 ] || die "time limit (${time_limit}s) reached after $rpcs_done calls"
        headers_args "${headers[$i]}"
        local c=$clients
        if [ "$share" -lt "$c" ]; then c=$share; fi
        local -a mode=(-c "$c" -m "$streams")
        if [ "${expects[$i]}" = reset ]; then
            # nginx ends the connection: one call per connection, 2000
            # connections a second in small steps (10 every 5 ms), so
            # that the number of open connections does not depend on luck
            local rate=10
            if [ "$share" -lt "$rate" ]; then rate=$share; fi
            mode=(-c "$share" -m 1 -r "$rate" --rate-period=5ms)
        fi
        local ts
        if [ -n "$bare_port" ]; then

            # the same calls, the same way, through the bare nginx first
            out=$(timeout "$left" h2load -n "$share" "${mode[@]}" -t 1 \
                      -N 10 "${hargs[@]}" -d "$dir/body/${bodies[$i]}" \
                      "http://127.0.0.1:$bare_port${paths[$i]}" 2>&1) || true
            line=$(grep -E '^requests: ' <<< "$out" || true)
            st=$(awk '{ print $4 }' <<< "$line")
            d=$(awk '{ print $6 }' <<< "$line")
            if [ "${expects[$i]}" = reset ]; then d=$st; fi
            if [ -z "$line" ] || [ "$d" != "$share" ]; then
                echo "$out" | tail -15 >&2
                die "h2load (bare nginx) for ${names[$i]}: ${d:-0} of $share calls done"
            fi
            left=$((deadline - $(date +%s)))
            [ "$left" -gt 5 ] || die "time limit (${time_limit}s) reached after $rpcs_done calls"
        fi
        ts=$(date +%s%N)
        out=$(timeout "$left" h2load -n "$share" "${mode[@]}" -t 1 \
                  -N 10 "${hargs[@]}" -d "$dir/body/${bodies[$i]}" \
                  "http://127.0.0.1:$port${paths[$i]}" 2>&1) || true
        line=$(grep -E '^requests: ' <<< "$out" || true)
        if [ "${SOAK_VERBOSE:-}" = 1 ]; then
            printf 'soak:   %-20s %6d calls %7.3fs  RSS %6d kB  %s\n' "${names[$i]}" "$share" \
                "$(awk -v a="$ts" -v b="$(date +%s%N)" 'BEGIN { print (b - a) / 1e9 }')" \
                "$(rss_kb "$worker")" "${line#requests: }"
        fi
        # requests: N total, N started, N done, N succeeded, N failed, N errored, N timeout
        st=$(awk '{ print $4 }' <<< "$line")
        d=$(awk '{ print $6 }' <<< "$line")
        e=$(awk '{ print $12 }' <<< "$line")
        if [ "${expects[$i]}" = reset ]; then
            d=$st   # sent is all these calls can be
        elif [ "${e:-0}" != 0 ] && [ "${expects[$i]}" != any ]; then
            h2load_failures=$((h2load_failures + e))
            echo "soak: ${names[$i]}: $e calls errored" >&2
        fi
        if [ -z "$line" ] || [ "$d" != "$share" ]; then
            echo "$out" | tail -15 >&2
            die "h2load for ${names[$i]}: ${d:-0} of $share calls done"
        fi
        sent[${names[$i]}]=$(( ${sent[${names[$i]}]:-0} + share ))
        rpcs_done=$((rpcs_done + share))
    done
}

samples=()
bare_samples=()
rounds=$(( (total + round - 1) / round ))
r=0
while [ "$rpcs_done" -lt "$total" ]; do
    r=$((r + 1))
    n=$round
    if [ $((total - rpcs_done)) -lt "$n" ]; then n=$((total - rpcs_done)); fi
    t0=$(date +%s%N)
    run_round "$n"
    t1=$(date +%s%N)
    [ -d "/proc/$worker" ] || die "worker $worker is gone after $rpcs_done calls"
    curl -sf --http2-prior-knowledge "http://127.0.0.1:$port/metrics" > "$dir/logs/metrics.txt" \
        || die "the metrics page did not answer after $rpcs_done calls"
    rss=$(rss_kb "$worker")
    samples+=("$rss")
    bare=""
    if [ -n "$bare_worker" ]; then
        [ -d "/proc/$bare_worker" ] || die "bare worker $bare_worker is gone"
        bare_samples+=("$(rss_kb "$bare_worker")")
        bare="  bare ${bare_samples[${#bare_samples[@]}-1]} kB"
    fi
    printf 'soak: round %2d/%d  %7d calls  %6.1fs  worker VmRSS %7d kB%s\n' \
        "$r" "$rounds" "$rpcs_done" "$(awk -v a="$t0" -v b="$t1" 'BEGIN { print (b - a) / 1e9 }')" "$rss" "$bare"
done

# ------------------------------------------------------------ 3. verdict

first=${samples[0]}
last=${samples[${#samples[@]}-1]}
growth=$(awk -v a="$first" -v b="$last" 'BEGIN { printf "%+.2f", (b - a) * 100 / a }')

# the allowance: the tolerance, plus what the bare nginx grew by itself
bare_growth=0
if [ "${#bare_samples[@]}" -gt 0 ]; then
    bare_first=${bare_samples[0]}
    bare_last=${bare_samples[${#bare_samples[@]}-1]}
    bare_growth=$(awk -v a="$bare_first" -v b="$bare_last" 'BEGIN { printf "%+.2f", (b - a) * 100 / a }')
fi
allowed=$(awk -v t="$tolerance" -v g="$bare_growth" 'BEGIN { printf "%.2f", t + (g > 0 ? g : 0) }')
too_much=$(awk -v g="$growth" -v a="$allowed" 'BEGIN { print (g > a) ? 1 : 0 }')

now_worker=$(worker_pid)
errors=$(grep -E '\[(alert|crit|emerg)\]|exited on signal|worker process [0-9]+ exited' \
         "$dir/logs/error.log" | sed -n 1,5p || true)
if [ -n "$bare_worker" ] && [ "$(worker_pid "$bare_master")" != "$bare_worker" ]; then
    errors="${errors:+$errors; }the bare nginx worker changed"
fi

log "calls per scenario:"
for i in "${!names[@]}"; do
    printf 'soak:   %-20s %7d  (%s)\n' "${names[$i]}" "${sent[${names[$i]}]:-0}" "${expects[$i]}"
done
if [ "${#bare_samples[@]}" -gt 0 ]; then
    log "bare nginx worker VmRSS after round 1: ${bare_first} kB; at the end: ${bare_last} kB; change ${bare_growth}%"
fi
log "worker VmRSS after round 1 (${round} calls): ${first} kB; at the end ($rpcs_done calls): ${last} kB; change ${growth}% (limit +${allowed}%: ${tolerance} points over the bare nginx's growth)"

fail=""
[ "$now_worker" = "$worker" ] || fail="$fail; the worker changed ($worker -> ${now_worker:-none})"
[ -z "$errors" ] || fail="$fail; error log: $errors"
[ "$h2load_failures" = 0 ] || fail="$fail; $h2load_failures calls errored"
[ "$rpcs_done" = "$total" ] || fail="$fail; $rpcs_done of $total calls"
[ "$too_much" = 0 ] || fail="$fail; RSS grew by ${growth}%"

elapsed=$(( $(date +%s) - start ))
if [ -n "$fail" ]; then
    log "logs in $dir/logs"
    die "${fail#; } (${elapsed}s)"
fi
log "PASS: $rpcs_done calls in ${elapsed}s, worker RSS flat (${growth}%, bare nginx ${bare_growth}%)"
if [ "${SOAK_KEEP:-}" != 1 ]; then
    cleanup
    trap - EXIT
    rm -rf "$dir"
fi
