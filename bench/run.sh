#!/bin/bash
# Benchmarks ngx_http_grpc_guard_module against bare grpc_pass, in one run,
# on loopback: h2load -> front nginx (one worker, one core) -> C++ gRPC echo
# upstream.  See bench/README.md for what is measured and how to read it.
#
#   bench/run.sh                  load pass (interleaved rounds)
#   bench/run.sh --quick          smoke run, ~6 min with every scenario
#                                 (BENCH_QUICK=1)
#   bench/run.sh --callgrind      load pass, then instructions per RPC under
#                                 callgrind (BENCH_CALLGRIND=1)
#   bench/run.sh --callgrind-only callgrind pass alone (BENCH_CALLGRIND=only)
#
# Knobs (environment):
#   BENCH_ROUNDS        interleaved rounds per scenario      (5; quick 2)
#   BENCH_REQUESTS      requests per measured run            (60000; quick 20000)
#   BENCH_WARMUP        requests per warm-up run             (REQUESTS/5)
#   BENCH_TIME_BUDGET   seconds the measured rounds should take: on a busy
#                       machine the requests per run are lowered to fit
#                       (never below 15000; quick 5000), unless
#                       BENCH_REQUESTS is set                (150; quick 25)
#   BENCH_MAX_RUN_SECONDS  a slow scenario (e.g. a peer verifying every
#                       token in njs) gets fewer requests per run, so that
#                       one run takes about this long      (20; quick 6)
#   BENCH_CONNS         h2load connections (-c)              (16)
#   BENCH_STREAMS       h2load streams per connection (-m)   (32)
#   BENCH_SCENARIOS     names to run, e.g. "guard" (bare, the reference,
#                       always runs)                         (all)
#   BENCH_SCENARIO_DIR  where the *.conf scenarios are       (bench/scenarios)
#   BENCH_CALLGRIND_REQUESTS  requests per callgrind run     (5000; quick 2000)
#   BENCH_CALLGRIND_ROUNDS    callgrind rounds               (2; quick 1)
#   BENCH_NGINX         nginx binary                         (/usr/sbin/nginx)
#   BENCH_NGINX_CPU / BENCH_BACKEND_CPU / BENCH_CLIENT_CPU
#                       cores for nginx / upstream / h2load  (0 / 1 / 1);
#                       BENCH_CLIENT_CPU=any: h2load not pinned
#   BENCH_RUN_TIMEOUT   seconds allowed for one h2load run   (180)
#   BENCH_KEEP_LOGS=1   keep h2load per-request logs in bench/out/work
#
# Exit status: 0 when every scenario that was run answered correctly; 1 when
# a request failed, a reply was not the expected grpc-status, or a request
# did not reach the upstream; 2 on a setup problem.

set -euo pipefail

bench=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$bench")
out=$bench/out
work=$out/work

# shellcheck source=bench/lib.sh
. "$bench/lib.sh"

# ---------------------------------------------------------------- options

quick=${BENCH_QUICK:-0}
callgrind=${BENCH_CALLGRIND:-0}

usage() {
    sed -n '2,/^$/p' "$0" | sed 's/^# \{0,1\}//'
}

while [ $# -gt 0 ]; do
    case $1 in
        --quick) quick=1 ;;
        --callgrind) callgrind=1 ;;
        --callgrind-only) callgrind=only ;;
        -h|--help) usage; exit 0 ;;
        *) echo "run.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
    esac
    shift
done

if [ "$quick" = 1 ]; then
    rounds=${BENCH_ROUNDS:-2}
    requests=${BENCH_REQUESTS:-20000}
    cg_requests=${BENCH_CALLGRIND_REQUESTS:-2000}
    cg_rounds=${BENCH_CALLGRIND_ROUNDS:-1}
else
    rounds=${BENCH_ROUNDS:-5}
    requests=${BENCH_REQUESTS:-60000}
    cg_requests=${BENCH_CALLGRIND_REQUESTS:-5000}
    cg_rounds=${BENCH_CALLGRIND_ROUNDS:-2}
fi
budget=${BENCH_TIME_BUDGET:-$([ "$quick" = 1 ] && echo 25 || echo 150)}
min_requests=$([ "$quick" = 1 ] && echo 5000 || echo 15000)
max_run_secs=${BENCH_MAX_RUN_SECONDS:-$([ "$quick" = 1 ] && echo 6 || echo 20)}
min_requests_slow=$([ "$quick" = 1 ] && echo 1000 || echo 3000)
conns=${BENCH_CONNS:-16}
streams=${BENCH_STREAMS:-32}
warmup=${BENCH_WARMUP:-$(( requests / 5 ))}
scen_dir=${BENCH_SCENARIO_DIR:-$bench/scenarios}
nginx_bin=${BENCH_NGINX:-/usr/sbin/nginx}
run_timeout=${BENCH_RUN_TIMEOUT:-180}
module_so=$repo/objs/ngx_http_grpc_guard_module.so

ncpu=$(nproc)
cpu_nginx=${BENCH_NGINX_CPU:-0}
cpu_backend=${BENCH_BACKEND_CPU:-1}
if [ "$ncpu" -lt 2 ]; then
    echo "run.sh: only $ncpu core: nginx, upstream and h2load share it;" \
         "RPS ratios mean little, CPU per RPC still holds" >&2
    cpu_nginx=0
    cpu_backend=0
fi
cpu_client=${BENCH_CLIENT_CPU:-$cpu_backend}
# "any" leaves h2load to the scheduler
if [ "$cpu_client" = any ]; then
    client_pin=()
else
    client_pin=(taskset -c "$cpu_client")
fi

for v in rounds requests warmup conns streams cg_requests cg_rounds budget \
         max_run_secs; do
    if ! [[ ${!v} =~ ^[0-9]+$ ]] || [ "${!v}" -lt 1 ]; then
        echo "run.sh: $v must be a positive integer (got '${!v}')" >&2
        exit 2
    fi
done
if [ "$requests" -lt "$conns" ] || [ "$warmup" -lt "$conns" ]; then
    echo "run.sh: BENCH_REQUESTS and BENCH_WARMUP must be >= BENCH_CONNS" >&2
    exit 2
fi

for tool in h2load nghttp taskset awk sort ss; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "run.sh: $tool not found (ci/install-deps.sh installs it)" >&2
        exit 2
    fi
done
if [ ! -x "$nginx_bin" ]; then
    echo "run.sh: $nginx_bin not found" >&2
    exit 2
fi
if [ "$callgrind" != 0 ] && ! command -v callgrind_control >/dev/null; then
    echo "run.sh: valgrind (callgrind_control) not found" >&2
    exit 2
fi

# --------------------------------------------------- processes and cleanup

pids=()          # everything this script started, stopped at exit

cleanup() {
    local p f
    for p in "${pids[@]}"; do
        kill -TERM "$p" 2>/dev/null || true
    done
    # helpers started by scenario setup commands
    for f in "$work"/scen/*/pids; do
        [ -f "$f" ] || continue
        while read -r p; do
            if [[ $p =~ ^[0-9]+$ ]]; then
                kill -TERM "$p" 2>/dev/null || true
            fi
        done < "$f"
    done
    for p in "${pids[@]}"; do
        for _ in $(seq 1 50); do
            kill -0 "$p" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# stop_pid PID: stops one process this script started and forgets it.
stop_pid() {
    local p=$1 i keep=()
    kill -TERM "$p" 2>/dev/null || true
    for i in $(seq 1 100); do
        kill -0 "$p" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
    for i in "${pids[@]}"; do
        [ "$i" = "$p" ] || keep+=("$i")
    done
    pids=("${keep[@]}")
}

# run_fg CMD...: runs CMD in the background and waits for it, so that a TERM or
# INT to the bench stops it at once (a trap waits for a foreground child).
run_fg() {
    local p rc=0
    "$@" &
    p=$!
    pids+=("$p")
    wait "$p" || rc=$?
    unset 'pids[-1]'
    return "$rc"
}

calc() { awk "BEGIN { printf \"$1\", $2 }"; }

# minus A B: A - B with 3 decimals, nan when either is missing.
minus() {
    awk -v a="$1" -v b="$2" 'BEGIN {
        if (a == "" || b == "" || a == "nan" || b == "nan") print "nan"
        else printf "%.3f", a - b }'
}

# ratio A B [DECIMALS]: A / B with 4 (or DECIMALS) decimals, nan when
# either is missing or B is 0.
ratio() {
    awk -v a="$1" -v b="$2" -v d="${3:-4}" 'BEGIN {
        if (b + 0 == 0 || a == "" || a == "nan") print "nan"
        else printf "%." d "f", a / b }'
}

# cg_total FILE: total instructions of a callgrind output file.
cg_total() {
    awk '/^(totals|summary):/ { print $2; exit }' "$1" 2> /dev/null || true
}

median() {
    printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 }
        END { if (NR == 0) { print "nan"; exit }
              if (NR % 2) print a[(NR + 1) / 2];
              else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}

# ------------------------------------------------------------ preparation

mkdir -p "$out"
exec 9> "$out/.lock"
if ! flock -n 9; then
    echo "run.sh: another bench run is using $out" >&2
    exit 2
fi
rm -rf "$work"
mkdir -p "$work/tmp" "$work/scen"

"$bench/build-backend.sh"
backend_bin=$bench/bin/echo_server

# (bench_free_port runs in a subshell here: record each port in the parent)
BENCH_RESERVED_PORTS=""
backend_port=$(bench_free_port)
BENCH_RESERVED_PORTS=$backend_port
front_port=$(bench_free_port)
BENCH_RESERVED_PORTS="$backend_port $front_port"
tls_port=$(bench_free_port)
BENCH_RESERVED_PORTS="$backend_port $front_port $tls_port"
export BENCH_RESERVED_PORTS

# the front's TLS certificate (P-256, self-signed; h2load does not verify)
mkdir -p "$work/tls"
if ! openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
        -nodes -subj /CN=localhost -days 2 \
        -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
        -keyout "$work/tls/server.key" -out "$work/tls/server.crt" \
        > "$work/tls/openssl.log" 2>&1; then
    echo "bench: openssl cannot make the front's certificate:" >&2
    cat "$work/tls/openssl.log" >&2
    exit 2
fi

# the request: a 5-byte gRPC frame header + a 16-byte message
body=$work/body.bin
printf '\000\000\000\000\020%s' "bench-payload-16" > "$body"
body_len=21

# The module is loaded from a private copy: a rebuild during the bench
# rewrites objs/*.so in place, which would crash (SIGBUS) an nginx that has
# it mapped, and would mix two versions in one set of results.
have_module=0
if [ -f "$module_so" ]; then
    have_module=1
    for _ in 1 2 3 4 5; do    # not while a build is writing it
        cp "$module_so" "$work/ngx_http_grpc_guard_module.so"
        sleep 0.2
        cmp -s "$module_so" "$work/ngx_http_grpc_guard_module.so" && break
    done
    module_sum=$(sha256sum "$work/ngx_http_grpc_guard_module.so" | cut -c1-12)
fi

# ----------------------------------------------------------- scenarios
#
# A scenario is bench/scenarios/NAME.conf: the body of `location /NAME. {}`
# (nginx directives, including the grpc_pass), plus `#@ key: value` lines:
#   #@ header: NAME: VALUE   extra request header for h2load/nghttp
#   #@ http: DIRECTIVE;      a line for the http{} block
#   #@ setup: COMMAND        run once, from the repo root, before nginx -t
#   #@ expect: N             grpc-status every call must get (default 0)
#   #@ path: /NAME.pkg.Svc/M request path (default /NAME.Echo/Unary)
#   #@ baseline: OTHER       scenario the ratios are taken to (default bare)
#   #@ verify: ALG           a JWT cache-miss scenario (RS256, ES256, EdDSA):
#                            its cost is also set against OpenSSL's verify
#   #@ main: DIRECTIVE;      a line for the main context (load_module)
#   #@ tls: on               called over TLS 1.3 (h2load https://, ALPN h2)
# Identical main and http lines of several scenarios are written once.
# See bench/README.md.

declare -A S_BODY S_HTTP S_HEADERS S_SETUP S_EXPECT S_PATH S_DESC S_SKIP S_BASE
declare -A S_VERIFY S_MAIN S_TLS
scenarios=()

load_scenario() {
    local f=$1 name line key val body="" http="" headers="" desc="" main=""
    name=$(basename "$f" .conf)
    if ! [[ $name =~ ^[a-z][a-z0-9_]*$ ]]; then
        echo "run.sh: $f: scenario names are [a-z][a-z0-9_]*; ignored" >&2
        return
    fi
    S_SETUP[$name]=""
    S_EXPECT[$name]=0
    S_PATH[$name]="/$name.Echo/Unary"
    S_BASE[$name]=bare
    S_TLS[$name]=0
    while IFS= read -r line || [ -n "$line" ]; do
        if [[ $line =~ ^#@[[:space:]]*([a-z]+):[[:space:]]*(.*)$ ]]; then
            key=${BASH_REMATCH[1]}
            val=${BASH_REMATCH[2]}
            case $key in
                header) headers+="$val"$'\n' ;;
                http) http+="    $val"$'\n' ;;
                main) main+="$val"$'\n' ;;
                tls)
                    case $val in
                        on) S_TLS[$name]=1 ;;
                        off) S_TLS[$name]=0 ;;
                        *) echo "run.sh: $f: tls: on or off" >&2 ;;
                    esac
                    ;;
                setup) S_SETUP[$name]=$val ;;
                expect) S_EXPECT[$name]=$val ;;
                path) S_PATH[$name]=$val ;;
                baseline) S_BASE[$name]=$val ;;
                verify)
                    case $val in
                        RS256|ES256|EdDSA) S_VERIFY[$name]=$val ;;
                        *) echo "run.sh: $f: verify: RS256, ES256 or EdDSA" >&2 ;;
                    esac
                    ;;
                *) echo "run.sh: $f: unknown key '$key'" >&2 ;;
            esac
        elif [[ $line =~ ^[[:space:]]*# ]]; then
            if [ -z "$desc" ]; then
                desc=$(sed -e 's/^[[:space:]]*#[[:space:]]*//' <<< "$line")
            fi
        elif [[ $line =~ [^[:space:]] ]]; then
            body+="            $line"$'\n'
        fi
    done < "$f"
    if [[ ${S_PATH[$name]} != "/$name."* ]]; then
        echo "run.sh: $f: path must start with /$name.; ignored" >&2
        return
    fi
    S_BODY[$name]=$body
    S_HTTP[$name]=$http
    S_MAIN[$name]=$main
    S_HEADERS[$name]=$headers
    S_DESC[$name]=$desc
    scenarios+=("$name")
}

if [ ! -f "$scen_dir/bare.conf" ]; then
    echo "run.sh: $scen_dir/bare.conf (the reference) is missing" >&2
    exit 2
fi
load_scenario "$scen_dir/bare.conf"
for f in "$scen_dir"/*.conf; do
    [ "$(basename "$f")" = bare.conf ] && continue
    if [ -n "${BENCH_SCENARIOS:-}" ]; then
        case " $BENCH_SCENARIOS " in
            *" $(basename "$f" .conf) "*) ;;
            *) continue ;;
        esac
    fi
    load_scenario "$f"
done

# subst NAME TEXT: replaces @KEY@ placeholders (see README) in TEXT.
subst() {
    local name=$1 text=$2 sdir=$work/scen/$1 k v
    text=${text//@WORK@/$work}
    text=${text//@SCEN@/$sdir}
    text=${text//@REPO@/$repo}
    text=${text//@BENCH@/$bench}
    text=${text//@NAME@/$name}
    text=${text//@PATH@/${S_PATH[$name]}}
    text=${text//@BACKEND_PORT@/$backend_port}
    if [ -f "$sdir/vars" ]; then
        while IFS='=' read -r k v; do
            [[ $k =~ ^[A-Z_][A-Z0-9_]*$ ]] || continue
            text=${text//@$k@/$v}
        done < "$sdir/vars"
    fi
    printf '%s' "$text"
}

# scenario_headers NAME: fills the array `hdr` with -H arguments.
scenario_headers() {
    local name=$1 line all
    hdr=(-H 'content-type: application/grpc' -H 'te: trailers')
    all=$(subst "$name" "${S_HEADERS[$name]}")
    if [ -f "$work/scen/$name/headers" ]; then
        all+=$'\n'$(cat "$work/scen/$name/headers")
    fi
    while IFS= read -r line; do
        [ -n "$line" ] && hdr+=(-H "$line")
    done <<< "$all"
    return 0
}

# scenario_url NAME: the URL the clients call for NAME (https:// on the TLS
# port for "#@ tls: on").
scenario_url() {
    if [ "${S_TLS[$1]}" = 1 ]; then
        echo "https://127.0.0.1:$tls_port${S_PATH[$1]}"
    else
        echo "http://127.0.0.1:$front_port${S_PATH[$1]}"
    fi
}

# client_cmd NAME CONNS STREAMS N: fills the array `cmd` with the load client
# for NAME: h2load, or bench/bin/h2pool when the scenario's setup gave it a
# pool of per-call headers (a file "pool" naming it, as
# bench/scenarios/setup/jwt_pool.py writes), so that every call carries a
# different token.  h2pool goes on through the pool from run to run
# (pool.pos) and counts a call as failed unless its grpc-status is the
# expected one.
client_cmd() {
    local name=$1 sdir=$work/scen/$1
    scenario_headers "$name"
    if [ -f "$sdir/pool" ]; then
        cmd=("$bench/bin/h2pool" -P "$(cat "$sdir/pool")"
             -s "$sdir/pool.pos" -g "${S_EXPECT[$name]}")
    else
        cmd=(h2load)
    fi
    cmd+=(-c "$2" -m "$3" -n "$4" -d "$body" "${hdr[@]}")
}

# ---------------------------------------------------------- nginx config

# write_conf FILE MODE NAME...: MODE is "load" (master + one worker) or
# "callgrind" (one process, no master); one location per NAME.
write_conf() {
    local file=$1 mode=$2 name sdir
    shift 2
    {
        echo "# generated by bench/run.sh"
        if [ "$use_module" = 1 ]; then
            echo "load_module $work/ngx_http_grpc_guard_module.so;"
        fi
        for name in "$@"; do
            subst "$name" "${S_MAIN[$name]}"
        done | awk 'NF && !seen[$0]++'
        echo "worker_processes 1;"
        if [ "$mode" = callgrind ]; then
            echo "master_process off;"
        fi
        echo "daemon off;"
        echo "pid $work/nginx-$mode.pid;"
        echo "error_log $work/error.log warn;"
        echo "worker_rlimit_nofile 8192;"
        echo "events { worker_connections 4096; }"
        echo "http {"
        echo "    access_log off;"
        for t in client_body proxy fastcgi uwsgi scgi; do
            echo "    ${t}_temp_path $work/tmp/$t;"
        done
        echo "    upstream backend {"
        echo "        server 127.0.0.1:$backend_port;"
        echo "        keepalive 1024;"
        echo "        keepalive_requests 1000000;"
        echo "    }"
        # a line two scenarios share (e.g. the one grpc_guard_redis of
        # the http block) is written once
        for name in "$@"; do
            sdir=$work/scen/$name
            if [ -n "${S_HTTP[$name]}" ]; then
                echo "    # scenario $name"
                subst "$name" "${S_HTTP[$name]}"
            fi
            if [ -f "$sdir/http.conf" ]; then
                echo "    include $sdir/http.conf;"
            fi
        done | awk '/^    # scenario / || !seen[$0]++'
        echo "    server {"
        echo "        listen 127.0.0.1:$front_port http2;"
        # the same locations over TLS 1.3, for "#@ tls: on" scenarios
        echo "        listen 127.0.0.1:$tls_port ssl http2;"
        echo "        ssl_certificate $work/tls/server.crt;"
        echo "        ssl_certificate_key $work/tls/server.key;"
        echo "        ssl_protocols TLSv1.3;"
        # keepalive_requests also bounds HTTP/2 streams per connection since
        # nginx 1.19.7 (http2_max_requests is obsolete and only warns).
        echo "        keepalive_requests 1000000;"
        if [ "$streams" -gt 128 ]; then
            echo "        http2_max_concurrent_streams $streams;"
        fi
        for name in "$@"; do
            echo "        location /$name. {"
            subst "$name" "${S_BODY[$name]}"
            echo "        }"
        done
        echo "        location / { return 404; }"
        echo "    }"
        echo "}"
    } > "$file"
}

nginx_test() {
    "$nginx_bin" -t -q -p "$work" -e "$work/error.log" -c "$1" 2>&1
}

# ---------------------------------------------------------------- start

# How busy the machine is before the bench starts anything: other load
# makes every number noisy (ratios from interleaved rounds suffer least).
all_busy() {
    awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8 + $9, $5 + $6 }' /proc/stat
}
read -r b0 i0 < <(all_busy)
sleep 1
read -r b1 i1 < <(all_busy)
busy_pct=$(awk -v b=$(( b1 - b0 )) -v i=$(( i1 - i0 )) \
           'BEGIN { printf "%.0f", (b + i) ? 100 * b / (b + i) : 0 }')
if [ "$busy_pct" -gt 10 ]; then
    echo "bench: WARNING: the machine is ${busy_pct}% busy before the bench" \
         "starts; expect noisy numbers" >&2
fi

echo "bench: nginx $("$nginx_bin" -v 2>&1 | sed 's/.*\///'), ${ncpu} cores;" \
     "nginx on core $cpu_nginx, upstream on $cpu_backend, h2load on $cpu_client"

count_file=$work/backend.count
# a port nothing listens on may still be the local end of a connection:
# another one then
for try in 1 2 3; do
    taskset -c "$cpu_backend" "$backend_bin" "$backend_port" 1 \
        "$count_file" > "$work/backend.log" 2>&1 &
    backend_pid=$!
    pids+=("$backend_pid")
    bench_wait_port "$backend_port" 10 && break
    stop_pid "$backend_pid"
    if [ "$try" = 3 ] || ! grep -q "Address already in use" \
                             "$work/backend.log"; then
        echo "bench: the upstream did not start:" >&2
        cat "$work/backend.log" >&2
        exit 2
    fi
    backend_port=$(bench_free_port)
    BENCH_RESERVED_PORTS="$BENCH_RESERVED_PORTS $backend_port"
done

# backend_count: RPCs the upstream has answered so far.
backend_count() {
    local i
    rm -f "$count_file"
    kill -USR1 "$backend_pid"
    for i in $(seq 1 50); do
        if [ -s "$count_file" ]; then
            cat "$count_file"
            return 0
        fi
        sleep 0.05
    done
    echo "bench: the upstream did not report its count" >&2
    echo 0
}

# setups, then nginx -t of each scenario added to those accepted so far
use_module=$have_module
if [ "$have_module" = 1 ]; then
    write_conf "$work/test.conf" load bare
    if ! err=$(nginx_test "$work/test.conf"); then
        echo "bench: $module_so does not load; running without it:" >&2
        echo "$err" | sed 's/^/    /' >&2
        use_module=0
    fi
else
    echo "bench: $module_so not built: scenarios that need it are skipped"
fi

write_conf "$work/test.conf" load bare
if ! err=$(nginx_test "$work/test.conf"); then
    echo "bench: the bare grpc_pass configuration does not pass nginx -t:" >&2
    echo "$err" >&2
    exit 2
fi

active=(bare)
skipped=()
for name in "${scenarios[@]}"; do
    [ "$name" = bare ] && continue
    sdir=$work/scen/$name
    mkdir -p "$sdir"
    if [ -n "${S_SETUP[$name]}" ]; then
        # output to a file, not a pipe: a helper left running in the
        # background must not keep the bench waiting for end of file
        rc=0
        (cd "$repo" && BENCH_SCEN_DIR=$sdir BENCH_WORK=$work \
            BENCH_REPO=$repo BENCH_LIB=$bench/lib.sh \
            BENCH_NAME=$name BENCH_BACKEND_PORT=$backend_port \
            BENCH_BACKEND_CPU=$cpu_backend BENCH_NGINX_CPU=$cpu_nginx \
            timeout 120 bash -c "${S_SETUP[$name]}") \
            < /dev/null > "$sdir/setup.log" 2>&1 || rc=$?
        if [ "$rc" != 0 ]; then
            err=$(tail -3 "$sdir/setup.log" | tr '\n' ' ')
            S_SKIP[$name]="setup failed (exit $rc)${err:+: $err}"
            skipped+=("$name")
            echo "bench: skip $name: ${S_SKIP[$name]}"
            continue
        fi
    fi
    if [ "${S_TLS[$name]}" = 1 ] && [ -f "$sdir/pool" ]; then
        S_SKIP[$name]="bin/h2pool (a token per call) has no TLS"
        skipped+=("$name")
        echo "bench: skip $name: ${S_SKIP[$name]}"
        continue
    fi
    # tested together with the scenarios accepted so far, so that two
    # scenarios whose http-level lines clash cannot break the whole run
    write_conf "$sdir/test.conf" load "${active[@]}" "$name"
    if ! err=$(nginx_test "$sdir/test.conf"); then
        why=$(grep -m1 -E '\[(emerg|alert|crit)\]' <<< "$err" \
              | sed -e 's/^.*\[\(emerg\|alert\|crit\)\] \([0-9]*#[0-9]*: \)\{0,1\}//' \
                    -e 's/ in \/[^ ]*:[0-9]*$//' || true)
        S_SKIP[$name]="nginx -t: ${why:-$(head -1 <<< "$err")}"
        skipped+=("$name")
        echo "bench: skip $name: ${S_SKIP[$name]}"
        continue
    fi
    active+=("$name")
done

# a baseline must be a scenario that runs
for name in "${active[@]}"; do
    base=${S_BASE[$name]}
    if [ "$base" != bare ] && [[ " ${active[*]} " != *" $base "* ]]; then
        echo "bench: $name: baseline $base does not run; using bare"
        S_BASE[$name]=bare
    fi
done
S_BASE[bare]=bare

conf=$work/nginx.conf
write_conf "$conf" load "${active[@]}"
if ! err=$(nginx_test "$conf"); then
    echo "bench: the combined configuration fails nginx -t:" >&2
    echo "$err" >&2
    exit 2
fi

# ------------------------------------------------------- correctness check

declare -A BAD=()    # scenario -> what went wrong
failed=0

# grpc_check NAME: one call with nghttp; the reply must carry the expected
# grpc-status (and, for 0, the echoed message).
grpc_check() {
    local name=$1 o status expect=${S_EXPECT[$1]}
    local url
    url=$(scenario_url "$name")
    scenario_headers "$name"
    if [ -f "$work/scen/$name/pool" ]; then
        hdr+=(-H "$(head -1 "$(cat "$work/scen/$name/pool")")")
    fi
    o=$(timeout 20 nghttp -v -t 10 -d "$body" "${hdr[@]}" "$url" 2>&1 \
        | tr -d '\000') || true
    status=$(grep -oE 'recv \(stream_id=[0-9]+\) grpc-status: [0-9]+' \
             <<< "$o" | tail -1 | awk '{ print $NF }')
    if [ "$status" != "$expect" ]; then
        echo "bench: $name: grpc-status '${status:-none}', want $expect" >&2
        tail -25 <<< "$o" | sed 's/^/    /' >&2
        return 1
    fi
    if [ "$expect" = 0 ] &&
       ! grep -q "recv DATA frame <length=$body_len," <<< "$o"; then
        echo "bench: $name: grpc-status 0 but no echoed message" >&2
        tail -25 <<< "$o" | sed 's/^/    /' >&2
        return 1
    fi
    return 0
}

# check_all [keep]: checks every active scenario; a failing one is dropped
# from the runs that follow, unless "keep" (its results stay reported).
check_all() {
    local name ok=()
    for name in "${active[@]}"; do
        if grpc_check "$name"; then
            ok+=("$name")
        else
            [ "${1:-}" = keep ] && ok+=("$name")
            BAD[$name]="${BAD[$name]:+${BAD[$name]}; }reply check failed"
            failed=1
            if [ "$name" = bare ]; then
                echo "bench: bare grpc_pass does not work; stopping" >&2
                exit 1
            fi
        fi
    done
    active=("${ok[@]}")
}

# ---------------------------------------------------------------- load

# Start the front nginx; sets nginx_pid (master) and worker_pid.
start_nginx_load() {
    taskset -c "$cpu_nginx" "$nginx_bin" -p "$work" -e "$work/error.log" \
        -c "$conf" &
    nginx_pid=$!
    pids+=("$nginx_pid")
    if ! bench_wait_port "$front_port" 10; then
        echo "bench: nginx did not start:" >&2
        tail -20 "$work/error.log" >&2
        exit 2
    fi
    worker_pid=""
    for _ in $(seq 1 50); do
        # the worker, not a cache manager or loader (proxy_cache peers)
        worker_pid=$(pgrep -P "$nginx_pid" -f 'worker process' | head -1 \
                     || true)
        [ -n "$worker_pid" ] && break
        sleep 0.1
    done
    if [ -z "$worker_pid" ]; then
        echo "bench: no nginx worker found" >&2
        exit 2
    fi
}

# proc_cpu PID: "utime stime" in clock ticks.
proc_cpu() {
    local line rest
    if ! read -r line 2> /dev/null < "/proc/$1/stat"; then
        echo "0 0"
        return
    fi
    rest=${line##*) }
    # shellcheck disable=SC2086
    set -- $rest
    echo "${12} ${13}"
}

# core_busy N: busy ticks of core N (user nice system irq softirq steal).
core_busy() {
    awk -v c="cpu$1" '$1 == c { print $2 + $3 + $4 + $7 + $8 + $9 }' \
        /proc/stat
}

clk_tck=$(getconf CLK_TCK)

declare -A R_RPS R_P50 R_P99 R_CPU R_USR R_SYS R_CORE R_BE R_UTIL R_ERR R_NOTE
declare -A R_RCMD R_RSCR R_RCPU R_RRUN

# redis_stats NAME: "scripts commands cpu_s script_us" of the scenario's
# private Redis (REDIS_PORT in its vars): EVALSHA + EVAL calls, all commands
# processed (those the scripts run included), used_cpu_sys + used_cpu_user,
# and the time spent running the scripts (commandstats usec); nothing when
# the scenario has no Redis.
redis_stats() {
    local ports port ca out all="" tls=()
    # the servers: REDIS_STATS (a cluster's nodes), else REDIS_PORT
    ports=$(sed -n 's/^REDIS_STATS=//p' "$work/scen/$1/vars" 2> /dev/null \
            | head -1 || true)
    [ -n "$ports" ] || ports=$(sed -n 's/^REDIS_PORT=//p' \
                                   "$work/scen/$1/vars" 2> /dev/null \
                               | head -1 || true)
    [ -n "$ports" ] || return 0
    # a TLS Redis (setup/redis_tls.sh) gives its CA
    ca=$(sed -n 's/^REDIS_CA=//p' "$work/scen/$1/vars" | head -1 || true)
    [ -z "$ca" ] || tls=(--tls --cacert "$ca")
    for port in $ports; do
        out=$(timeout 10 redis-cli -p "$port" "${tls[@]}" info all \
              2> /dev/null || true)
        grep -q '^total_commands_processed:' <<< "$out" || return 0
        all+=$out$'\n'
    done
    # summed over the servers
    tr -d '\r' <<< "$all" | awk -F'[:,=]' '
        /^cmdstat_evalsha:/ || /^cmdstat_eval:/ { s += $3; u += $5 }
        /^total_commands_processed:/ { t += $2 }
        /^used_cpu_sys:/ || /^used_cpu_user:/ { c += $2 }
        END { printf "%d %d %.6f %d\n", s, t, c, u }'
}

declare -A R_AUX R_AUXD R_SUM R_N

# aux_cpu NAME: "label ticks" for each helper process of the scenario that
# its setup listed in $BENCH_SCEN_DIR/cpu ("label pid" lines: an auth
# service's nginx worker, Redis), utime+stime summed per label.
aux_cpu() {
    local f=$work/scen/$1/cpu label pid t
    [ -f "$f" ] || return 0
    while read -r label pid; do
        [[ $pid =~ ^[0-9]+$ ]] || continue
        t=$(proc_cpu "$pid")
        echo "$label $(( ${t% *} + ${t#* } ))"
    done < "$f" | awk '{ t[$1] += $2 } END { for (l in t) print l, t[l] }' \
        | sort
}

# load_run NAME N TAG: one h2load run; results in R_*[NAME,TAG].
load_run() {
    local name=$1 n=$2 tag=$3 key="$1,$3"
    local log=$work/h2load-$name-$tag.log txt=$work/h2load-$name-$tag.txt
    local url c0 c1 k0 k1 b0 b1 e0 e1 t0 t1 rc=0 cmd
    url=$(scenario_url "$name")
    client_cmd "$name" "$conns" "$streams" "$n"

    local r0 r1
    r0=$(redis_stats "$name")
    local a0 a1
    a0=$(aux_cpu "$name")
    b0=$(backend_count)
    e0=$(proc_cpu "$backend_pid")
    c0=$(proc_cpu "$worker_pid")
    k0=$(core_busy "$cpu_nginx")
    t0=$(date +%s%N)
    run_fg timeout "$run_timeout" "${client_pin[@]}" "${cmd[@]}" \
        --log-file="$log" "$url" > "$txt" 2>&1 || rc=$?
    t1=$(date +%s%N)
    k1=$(core_busy "$cpu_nginx")
    if ! kill -0 "$worker_pid" 2> /dev/null; then
        echo "bench: the nginx worker died during $name $tag:" >&2
        grep -E '\[(alert|emerg|crit)\]' "$work/error.log" | tail -5 >&2
        exit 1
    fi
    c1=$(proc_cpu "$worker_pid")
    e1=$(proc_cpu "$backend_pid")
    a1=$(aux_cpu "$name")
    b1=$(backend_count)
    r1=$(redis_stats "$name")

    local rps done_ ok bad2xx errs p50 p99 badlog up note=""
    rps=$(sed -n 's/^finished in [^,]*, \([0-9.]*\) req\/s.*/\1/p' "$txt")
    done_=$(sed -n 's/^requests: .* \([0-9]*\) done,.*/\1/p' "$txt")
    ok=$(sed -n 's/^requests: .* \([0-9]*\) succeeded,.*/\1/p' "$txt")
    bad2xx=$(sed -n 's/^status codes: [0-9]* 2xx, \([0-9]*\) 3xx, \([0-9]*\) 4xx, \([0-9]*\) 5xx.*/\1 \2 \3/p' "$txt" \
             | awk '{ print $1 + $2 + $3 }')
    if [ "${S_TLS[$name]}" = 1 ] &&
       ! grep -q '^TLS Protocol: TLSv1.3' "$txt"; then
        note="not over TLS 1.3: $(grep -m1 '^TLS Protocol' "$txt" || true)"
        ok=0
    fi
    if [ -z "$rps" ] || [ -z "$ok" ] || [ "$rc" != 0 ]; then
        note="${note:+$note; }h2load failed (exit $rc)"
        rps=${rps:-0}; ok=${ok:-0}; done_=${done_:-0}
        tail -5 "$txt" | sed 's/^/    /' >&2
    fi
    # per-request latencies (microseconds, column 3); status -1 = failed
    read -r p50 p99 < <(cut -f3 "$log" | sort -n | awk '{ a[NR] = $1 }
        END { if (NR == 0) { print "nan nan"; exit }
              i50 = int(NR * 0.50); if (i50 < NR * 0.50) i50++
              i99 = int(NR * 0.99); if (i99 < NR * 0.99) i99++
              printf "%.3f %.3f\n", a[i50] / 1000, a[i99] / 1000 }')
    badlog=$(awk -F'\t' '$2 != 200 { b++ } END { print b + 0 }' "$log")
    [ "${BENCH_KEEP_LOGS:-0}" = 1 ] || rm -f "$log"
    errs=$(( n - ok ))
    errs=$(( errs > ${bad2xx:-0} ? errs : ${bad2xx:-0} ))
    errs=$(( errs > badlog ? errs : badlog ))

    up=$(( b1 - b0 ))
    if [ "${S_EXPECT[$name]}" = 0 ] && [ "$up" != "$n" ]; then
        note="${note:+$note; }upstream answered $up of $n"
        errs=$(( errs > n - up ? errs : n - up ))
        [ "$errs" -gt 0 ] || errs=1
    elif [ "${S_EXPECT[$name]}" != 0 ] && [ "$up" != 0 ]; then
        note="${note:+$note; }upstream got $up calls, want none"
        errs=$(( errs > up ? errs : up ))
    fi

    local us=$(( ${c1% *} - ${c0% *} )) sy=$(( ${c1#* } - ${c0#* } ))
    R_RPS[$key]=$rps
    R_P50[$key]=$p50
    R_P99[$key]=$p99
    R_USR[$key]=$(calc '%.2f' "$us * 1000000 / $clk_tck / $n")
    R_SYS[$key]=$(calc '%.2f' "$sy * 1000000 / $clk_tck / $n")
    R_CPU[$key]=$(calc '%.2f' "($us + $sy) * 1000000 / $clk_tck / $n")
    R_CORE[$key]=$(calc '%.2f' "($k1 - $k0) * 1000000 / $clk_tck / $n")
    # share of the run's wall time the worker was on a CPU: near 100% means
    # nginx was the bottleneck
    R_UTIL[$key]=$(calc '%.0f' "($us + $sy) * 100 * 1000000000 / $clk_tck / ($t1 - $t0)")
    R_BE[$key]=$(calc '%.2f' "(${e1% *} + ${e1#* } - ${e0% *} - ${e0#* }) * 1000000 / $clk_tck / $n")
    R_ERR[$key]=$errs
    R_NOTE[$key]=$note
    if [ -n "$r0" ] && [ -n "$r1" ]; then
        # Redis: scripts run and commands processed per call, CPU per call
        read -r R_RSCR[$key] R_RCMD[$key] R_RCPU[$key] R_RRUN[$key] < <(awk \
            -v a="$r0" -v b="$r1" -v n="$n" 'BEGIN {
                split(a, x, " "); split(b, y, " ")
                printf "%.4f %.3f %.3f %.3f\n", (y[1] - x[1]) / n,
                    (y[2] - x[2]) / n, (y[3] - x[3]) * 1000000 / n,
                    (y[4] - x[4]) / n }')
    fi
    R_N[$key]=$n
    # helper processes (auth service, Redis): CPU per RPC, total and by label
    R_AUXD[$key]=""
    if [ -n "$a1" ]; then
        R_AUXD[$key]=$(join -a 2 -e 0 -o 0,1.2,2.2 <(echo "$a0") <(echo "$a1") \
            2> /dev/null | awk -v n="$n" -v hz="$clk_tck" 'NF == 3 {
                printf "%s%s=%.2f", sep, $1, ($3 - $2) * 1000000 / hz / n
                sep = " " }')
    fi
    R_AUX[$key]=$(awk '{ for (i = 1; i <= NF; i++) { split($i, kv, "=")
                         t += kv[2] } } END { printf "%.2f", t }' \
                  <<< "${R_AUXD[$key]}")
    # shellcheck disable=SC2034  # read through declare -n in the report
    R_SUM[$key]=$(calc '%.2f' "${R_CPU[$key]} + ${R_AUX[$key]}")
    if [ "$errs" != 0 ]; then
        BAD[$name]="${BAD[$name]:+${BAD[$name]}; }run $tag: $errs bad${note:+ ($note)}"
        failed=1
    fi
    printf '  %-6s %-28s %6.0f rps  p99 %6.2f ms  cpu %5.1f us/rpc (usr %4.1f sys %4.1f)  core %5.1f  upstream %5.1f  nginx %3s%% busy  err %s%s%s\n' \
        "$tag" "$name" "$rps" "$p99" "${R_CPU[$key]}" \
        "${R_USR[$key]}" "${R_SYS[$key]}" "${R_CORE[$key]}" "${R_BE[$key]}" \
        "${R_UTIL[$key]}" "$errs" "${R_AUXD[$key]:+  [${R_AUXD[$key]}]}" \
        "${note:+  [$note]}"
    if [ -n "${R_RSCR[$key]:-}" ]; then
        printf '         redis: %s scripts/call, %s commands/call, %s us cpu/call, %s us in scripts/call\n' \
            "${R_RSCR[$key]}" "${R_RCMD[$key]}" "${R_RCPU[$key]}" \
            "${R_RRUN[$key]}"
    fi
}

# fit_budget: on a slow (busy) machine, lowers the requests per run so that
# the measured rounds take about $budget seconds, judging by the warm-up
# rates; never below $min_requests.  BENCH_REQUESTS set by hand is kept.
fit_budget() {
    local rates=() name rate want
    [ -z "${BENCH_REQUESTS:-}" ] || return 0
    for name in "${active[@]}"; do
        rates+=("${R_RPS[$name,warmup]}")
    done
    rate=$(median "${rates[@]}")
    want=$(awk -v b="$budget" -v r="$rate" -v n=$(( rounds * ${#active[@]} )) \
           'BEGIN { printf "%d", int(b * r / n / 1000) * 1000 }')
    if [ "$want" -lt "$requests" ]; then
        [ "$want" -ge "$min_requests" ] || want=$min_requests
        echo "bench: the machine is slow (~${rate%.*} rps): $want requests" \
             "per run instead of $requests, to keep the rounds within" \
             "~${budget}s (BENCH_TIME_BUDGET)"
        requests=$want
    fi
}

# fit_slow: a scenario much slower than the others (a peer that verifies
# every token in njs) gets fewer requests per run, so that one of its runs
# takes about $max_run_secs at its warm-up rate; never below
# $min_requests_slow.  Its per-call figures are not affected; its ratios
# are still taken to its baseline of the same round.
declare -A NS=()
fit_slow() {
    local name rate want
    for name in "${active[@]}"; do
        NS[$name]=$requests
        rate=${R_RPS[$name,warmup]:-0}
        want=$(awk -v s="$max_run_secs" -v r="$rate" -v m="$min_requests_slow" \
               'BEGIN { w = int(s * r / 1000) * 1000; if (w < m) w = m
                        printf "%d", w }')
        if [ "$want" -lt "$requests" ]; then
            NS[$name]=$want
            echo "bench: $name is slow (~${rate%.*} rps): $want requests per" \
                 "run (BENCH_MAX_RUN_SECONDS=$max_run_secs)"
        fi
    done
}

load_pass() {
    local r name order
    start_nginx_load
    check_all

    echo "bench: load: ${#active[@]} scenario(s) x $rounds round(s) of" \
         "$requests requests, h2load -c $conns -m $streams," \
         "warm-up $warmup"
    for name in "${active[@]}"; do
        load_run "$name" "$warmup" warmup
    done
    fit_budget
    fit_slow
    for r in $(seq 1 "$rounds"); do
        # alternate the order so that drift hits every scenario alike
        if [ $(( r % 2 )) = 1 ]; then
            order=("${active[@]}")
        else
            order=()
            for (( i = ${#active[@]} - 1; i >= 0; i-- )); do
                order+=("${active[$i]}")
            done
        fi
        for name in "${order[@]}"; do
            load_run "$name" "${NS[$name]}" "r$r"
        done
    done
    # the replies must still be right after the load
    check_all keep
    stop_pid "$nginx_pid"
}

# ------------------------------------------------------------ callgrind

declare -A CG=()

callgrind_pass() {
    local cgdir=$work/callgrind cgconf=$work/nginx-callgrind.conf
    local vg_pid r name f total txt ok dumps=0
    mkdir -p "$cgdir"
    write_conf "$cgconf" callgrind "${active[@]}"
    if ! err=$(nginx_test "$cgconf"); then
        echo "bench: callgrind configuration fails nginx -t:" >&2
        echo "$err" >&2
        exit 2
    fi
    taskset -c "$cpu_nginx" valgrind --tool=callgrind \
        --callgrind-out-file="$cgdir/callgrind.out.%p" \
        "$nginx_bin" -p "$work" -e "$work/error.log" -c "$cgconf" \
        > "$work/valgrind.log" 2>&1 &
    vg_pid=$!
    pids+=("$vg_pid")
    if ! bench_wait_port "$front_port" 120; then
        echo "bench: nginx under callgrind did not start:" >&2
        tail -20 "$work/valgrind.log" "$work/error.log" >&2
        exit 2
    fi
    check_all

    echo "bench: callgrind: ${#active[@]} scenario(s) x $cg_rounds" \
         "round(s) of $cg_requests requests, h2load -c 2 -m 16"
    for r in $(seq 1 "$cg_rounds"); do
        for name in "${active[@]}"; do
            local url cmd
            url=$(scenario_url "$name")
            # warm-up: upstream connections, caches
            client_cmd "$name" 2 16 200
            run_fg timeout "$run_timeout" "${client_pin[@]}" "${cmd[@]}" \
                "$url" > /dev/null 2>&1 || true
            callgrind_control -z "$vg_pid" > /dev/null 2>&1
            txt=$work/callgrind-$name-r$r.txt
            client_cmd "$name" 2 16 "$cg_requests"
            run_fg timeout "$run_timeout" "${client_pin[@]}" "${cmd[@]}" \
                "$url" > "$txt" 2>&1 || true
            if ! kill -0 "$vg_pid" 2> /dev/null; then
                echo "bench: nginx under callgrind died during $name:" >&2
                tail -5 "$work/valgrind.log" >&2
                exit 1
            fi
            callgrind_control -d "$vg_pid" > /dev/null 2>&1
            dumps=$(( dumps + 1 ))
            f=$cgdir/callgrind.out.$vg_pid.$dumps
            for _ in $(seq 1 100); do
                grep -qs '^totals:' "$f" && break
                sleep 0.1
            done
            total=$(cg_total "$f")
            ok=$(sed -n 's/^requests: .* \([0-9]*\) succeeded,.*/\1/p' "$txt")
            if [ -z "$total" ] || [ "${ok:-0}" != "$cg_requests" ]; then
                BAD[$name]="${BAD[$name]:+${BAD[$name]}; }callgrind r$r: ${ok:-0} of $cg_requests succeeded"
                failed=1
                total=${total:-0}
            fi
            CG[$name,r$r]=$(( total / cg_requests ))
            printf '  r%-6s %-18s %9d instructions/rpc\n' "$r" "$name" \
                "${CG[$name,r$r]}"
        done
    done
    stop_pid "$vg_pid"
}

# ------------------------------------------------ JWT verify vs OpenSSL
#
# For each algorithm a `#@ verify:` scenario names, what OpenSSL alone needs
# for one verify on the nginx core, to set the scenario's cost per call
# (against its baseline) against; bench/bin/jwt_verify works on a token of
# the scenario's pool, with its key loaded once:
#   raw_us    oneshot: EVP_DigestVerifyInit + EVP_DigestVerify per token,
#             the raw OpenSSL verify of a JWT library with a cached key
#   prep_us   prepared: SHA-256 of the signing input and EVP_PKEY_verify on
#             a context set up once, which is how the guard verifies
#   speed_us  1 / the verify rate of `openssl speed` (rsa2048, ecdsap256,
#             ed25519): the public-key operation alone, on a ready digest
#   raw_ir    oneshot under callgrind, instructions per verify

declare -A V=()

verify_pass() {
    local name alg pool pub spec out t1 t2 raw=() prep=() i
    for name in "${active[@]}"; do
        alg=${S_VERIFY[$name]:-}
        [ -n "$alg" ] && [ -z "${V[$alg,done]:-}" ] || continue
        V[$alg,done]=1
        pool=$(cat "$work/scen/$name/pool" 2> /dev/null || true)
        pub=$(dirname "$pool")/pub.pem
        if [ ! -s "$pool" ] || [ ! -s "$pub" ]; then
            echo "bench: verify $alg: $name has no token pool" >&2
            continue
        fi
        case $alg in
            RS256) spec=rsa2048 ;;
            ES256) spec=ecdsap256 ;;
            EdDSA) spec=ed25519 ;;
        esac
        echo "bench: OpenSSL alone, $alg ($spec), on core $cpu_nginx"
        # -mr lines: +F2:i:2048:sign/s:verify/s, +F4:i:256:sign/s:verify/s,
        # +F6:i:253:Ed25519:sign/s:verify/s
        out=$(taskset -c "$cpu_nginx" openssl speed -seconds 2 -mr "$spec" \
              2> /dev/null | grep -E '^\+F[246]:' | tail -1 || true)
        V[$alg,speed]=$(awk -F: '{ v = $NF + 0 }
            END { if (v > 0) printf "%.2f", 1000000 / v; else print "nan" }' \
            <<< "$out")
        raw=()
        prep=()
        for i in 1 2 3; do
            out=$(taskset -c "$cpu_nginx" "$bench/bin/jwt_verify" "$pub" \
                  "$pool" 5000 2> /dev/null || true)
            raw+=("$(sed -n 's/^oneshot: .*: \([0-9.]*\) us.*/\1/p' <<< "$out")")
            prep+=("$(sed -n 's/^prepared: .*: \([0-9.]*\) us.*/\1/p' <<< "$out")")
        done
        V[$alg,raw]=$(median "${raw[@]}")
        V[$alg,prep]=$(median "${prep[@]}")
        if [ "$callgrind" != 0 ]; then
            for i in 10 110; do
                valgrind --tool=callgrind \
                    --callgrind-out-file="$work/callgrind/verify-$alg-$i" \
                    "$bench/bin/jwt_verify" "$pub" "$pool" "$i" oneshot \
                    > /dev/null 2>&1 || true
            done
            t1=$(cg_total "$work/callgrind/verify-$alg-10")
            t2=$(cg_total "$work/callgrind/verify-$alg-110")
            if [ -n "$t1" ] && [ -n "$t2" ]; then
                V[$alg,ir]=$(( (t2 - t1) / 100 ))
            fi
        fi
    done
}

# ---------------------------------------------------------------- run

started=$(date +%s)
if [ "$callgrind" != only ]; then
    load_pass
fi
if [ "$callgrind" != 0 ]; then
    callgrind_pass
fi
verify_pass
elapsed=$(( $(date +%s) - started ))

# ------------------------------------------------------------- report

# per-scenario summaries
declare -A M=()
for name in "${active[@]}"; do
    base=${S_BASE[$name]}
    if [ "$callgrind" != only ]; then
        for m in RPS P50 P99 CPU CORE AUX SUM; do
            declare -n arr="R_$m"
            vals=()
            ratios=()
            for r in $(seq 1 "$rounds"); do
                vals+=("${arr[$name,r$r]}")
                ratios+=("$(ratio "${arr[$name,r$r]:-}" "${arr[$base,r$r]:-}")")
            done
            M[$name,$m]=$(median "${vals[@]}")
            M[$name,$m,ratio]=$(median "${ratios[@]}")
            unset -n arr
        done
        deltas=()
        for r in $(seq 1 "$rounds"); do
            deltas+=("$(minus "${R_CPU[$name,r$r]:-}" "${R_CPU[$base,r$r]:-}")")
        done
        M[$name,CPU,delta]=$(median "${deltas[@]}")
        deltas=()
        for r in $(seq 1 "$rounds"); do
            deltas+=("$(minus "${R_USR[$name,r$r]:-}" "${R_USR[$base,r$r]:-}")")
        done
        M[$name,USR,delta]=$(median "${deltas[@]}")
        errs=0
        for k in "${!R_ERR[@]}"; do
            [ "${k%,*}" = "$name" ] && errs=$(( errs + R_ERR[$k] ))
        done
        M[$name,ERR]=$errs
    fi
    if [ "$callgrind" != 0 ]; then
        vals=()
        for r in $(seq 1 "$cg_rounds"); do
            vals+=("${CG[$name,r$r]}")
        done
        M[$name,IR]=$(median "${vals[@]}" | awk '{ printf "%.0f", $1 }')
    fi
done

# verify_report: the cost of a JWT cache miss against OpenSSL alone.
verify_report() {
    local name alg base miss usr ir
    echo
    echo "JWT cache misses (every call a new token): the cost per call over" \
         "the baseline, against OpenSSL alone verifying one token"
    echo "miss_us = dcpu_us; usr_us = its user-space part; raw_us =" \
         "EVP_DigestVerifyInit + EVP_DigestVerify (key loaded once); prep_us =" \
         "hash + EVP_PKEY_verify on a prepared context; speed_us = 1 /" \
         "openssl speed verify rate; x_raw = miss / raw, x_usr = usr / raw," \
         "x_ir = miss_ir / raw_ir (target <= 1.2)"
    printf '%-18s %-6s %8s %8s %8s %8s %8s %7s %7s %7s %10s %10s %7s\n' \
        scenario alg miss_us usr_us raw_us prep_us speed_us x_raw x_usr \
        x_speed miss_ir raw_ir x_ir
    for name in "${active[@]}"; do
        alg=${S_VERIFY[$name]:-}
        [ -n "$alg" ] || continue
        base=${S_BASE[$name]}
        miss=${M[$name,CPU,delta]:-nan}
        usr=${M[$name,USR,delta]:-nan}
        ir=nan
        if [ -n "${M[$name,IR]:-}" ] && [ -n "${M[$base,IR]:-}" ]; then
            ir=$(( M[$name,IR] - M[$base,IR] ))
        fi
        V[$name,miss]=$miss
        V[$name,usr]=$usr
        V[$name,ir]=$ir
        printf '%-18s %-6s %8s %8s %8s %8s %8s %7s %7s %7s %10s %10s %7s\n' \
            "$name" "$alg" "$miss" "$usr" "${V[$alg,raw]:-nan}" \
            "${V[$alg,prep]:-nan}" "${V[$alg,speed]:-nan}" \
            "$(ratio "$miss" "${V[$alg,raw]:-}" 3)" \
            "$(ratio "$usr" "${V[$alg,raw]:-}" 3)" \
            "$(ratio "$miss" "${V[$alg,speed]:-}" 3)" "$ir" \
            "${V[$alg,ir]:-nan}" "$(ratio "$ir" "${V[$alg,ir]:-}" 3)"
    done
}

# redis_report: what the scenarios with a private Redis cost it per call
# (medians over the measured rounds).
redis_report() {
    local name r k hdr=0 scr=() cmd=() cpu=() run=()
    [ "$callgrind" != only ] || return 0
    for name in "${active[@]}"; do
        scr=(); cmd=(); cpu=(); run=()
        for r in $(seq 1 "$rounds"); do
            k="$name,r$r"
            [ -n "${R_RSCR[$k]:-}" ] || continue
            scr+=("${R_RSCR[$k]}"); cmd+=("${R_RCMD[$k]}")
            cpu+=("${R_RCPU[$k]}"); run+=("${R_RRUN[$k]}")
        done
        [ "${#scr[@]}" -gt 0 ] || continue
        if [ "$hdr" = 0 ]; then
            echo
            echo "redis (INFO deltas around each run, medians): scripts/call =" \
                 "EVALSHA + EVAL per call; cmds/call = all commands processed" \
                 "(the scripts' own included); cpu_us = used_cpu_sys + user per call" \
                 "(includes Redis's idle background, ~2.7 ms/s here); script_us =" \
                 "time in the scripts per call (commandstats usec)"
            printf '%-18s %12s %10s %10s %10s\n' scenario scripts/call \
                cmds/call cpu_us script_us
            hdr=1
        fi
        M[$name,RSCR]=$(median "${scr[@]}")
        M[$name,RCMD]=$(median "${cmd[@]}")
        M[$name,RCPU]=$(median "${cpu[@]}")
        M[$name,RRUN]=$(median "${run[@]}")
        printf '%-18s %12s %10s %10s %10s\n' "$name" "${M[$name,RSCR]}" \
            "${M[$name,RCMD]}" "${M[$name,RCPU]}" "${M[$name,RRUN]}"
    done
}

txt=$out/results.txt
json=$out/results.json
commit=$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo none)
dirty=$(git -C "$repo" status --porcelain -- src config 2>/dev/null \
        | head -1 || true)
nginx_ver=$("$nginx_bin" -v 2>&1 | sed 's/.*\///')
module_state=$([ "$use_module" = 1 ] && echo "loaded (sha256 $module_sum)" \
               || echo "not loaded")

{
    echo "grpc_guard bench, $(date -u +%Y-%m-%dT%H:%M:%SZ), commit $commit${dirty:+ (+local changes)}"
    echo "nginx $nginx_ver, module $module_state; $ncpu cores: nginx on $cpu_nginx," \
         "upstream on $cpu_backend, h2load on $cpu_client; ${elapsed}s;" \
         "machine ${busy_pct}% busy before start"
    if [ "$callgrind" != only ]; then
        echo "load: $rounds interleaved rounds x $requests requests per scenario," \
             "h2load -c $conns -m $streams, warm-up $warmup"
        echo
        echo "medians over rounds; x/base = median of the per-round ratios to the" \
             "baseline scenario of the same round (bare unless said), dcpu = median" \
             "of the per-round cpu differences"
        echo "cpu = front nginx worker utime+stime per RPC; core = whole nginx core" \
             "busy time per RPC (adds softirq); aux = the scenario's helper" \
             "processes (auth service worker, Redis) per RPC; sum = cpu + aux"
        echo
        printf '%-28s %9s %8s %8s %9s %9s %8s %8s %8s %8s %8s %9s %6s  %s\n' \
            scenario rps p50_ms p99_ms cpu_us core_us rps/base p99/base \
            cpu/base aux_us sum/base dcpu_us errors base
        for name in "${active[@]}"; do
            printf '%-28s %9.0f %8.2f %8.2f %9.2f %9.2f %8.3f %8.3f %8.3f %8.2f %8.3f %+9.2f %6d  %s\n' \
                "$name" "${M[$name,RPS]}" "${M[$name,P50]}" "${M[$name,P99]}" \
                "${M[$name,CPU]}" \
                "${M[$name,CORE]}" "${M[$name,RPS,ratio]}" \
                "${M[$name,P99,ratio]}" "${M[$name,CPU,ratio]}" \
                "${M[$name,AUX]}" "${M[$name,SUM,ratio]}" \
                "${M[$name,CPU,delta]}" "${M[$name,ERR]}" "${S_BASE[$name]}"
        done
    fi
    if [ "$callgrind" != 0 ]; then
        echo
        echo "callgrind: instructions per RPC in the front nginx (user space)," \
             "median of $cg_rounds round(s) x $cg_requests requests"
        printf '%-28s %12s %10s %10s  %s\n' scenario instr/rpc delta ratio base
        for name in "${active[@]}"; do
            base=${S_BASE[$name]}
            printf '%-28s %12d %+10d %10.4f  %s\n' "$name" "${M[$name,IR]}" \
                $(( M[$name,IR] - M[$base,IR] )) \
                "$(ratio "${M[$name,IR]}" "${M[$base,IR]}")" "$base"
        done
    fi
    redis_report
    for name in "${active[@]}"; do
        if [ -n "${S_VERIFY[$name]:-}" ]; then
            verify_report
            break
        fi
    done
    if [ "${#skipped[@]}" -gt 0 ]; then
        echo
        for name in "${skipped[@]}"; do
            echo "skipped $name: ${S_SKIP[$name]}"
        done
    fi
    if [ "${#BAD[@]}" -gt 0 ]; then
        echo
        for name in "${!BAD[@]}"; do
            echo "FAILED $name: ${BAD[$name]}"
        done
    fi
    if [ "$callgrind" != only ]; then
        echo
        echo "runs:"
        echo "(up_us = upstream CPU per RPC; busy = nginx worker CPU time / wall time)"
        printf '  %-6s %-28s %7s %9s %8s %8s %8s %8s %8s %8s %8s %5s %6s  %s\n' run scenario \
            n rps p50_ms p99_ms cpu_us usr_us sys_us core_us up_us busy \
            errors aux_us
        for r in warmup $(seq 1 "$rounds" | sed 's/^/r/'); do
            for name in "${active[@]}"; do
                k="$name,$r"
                [ -n "${R_RPS[$k]:-}" ] || continue
                printf '  %-6s %-28s %7d %9.0f %8.2f %8.2f %8.2f %8.2f %8.2f %8.2f %8.2f %4s%% %6d  %s\n' \
                    "$r" "$name" "${R_N[$k]}" "${R_RPS[$k]}" "${R_P50[$k]}" \
                    "${R_P99[$k]}" \
                    "${R_CPU[$k]}" "${R_USR[$k]}" "${R_SYS[$k]}" \
                    "${R_CORE[$k]}" "${R_BE[$k]}" "${R_UTIL[$k]}" "${R_ERR[$k]}" \
                    "${R_AUXD[$k]:--}"
            done
        done
    fi
} > "$txt"

jstr() {
    local s=$1
    s=${s//\\/\\\\}
    s=${s//\"/\\\"}
    s=${s//$'\t'/ }
    s=${s//$'\n'/ }
    printf '"%s"' "$s"
}
jnum() {
    case $1 in
        ''|nan|-nan|inf|-inf) printf 'null' ;;
        *) printf '%s' "$1" ;;
    esac
}

{
    printf '{\n'
    printf '  "date": %s,\n' "$(jstr "$(date -u +%Y-%m-%dT%H:%M:%SZ)")"
    printf '  "commit": %s,\n' "$(jstr "$commit")"
    printf '  "nginx": %s,\n' "$(jstr "$nginx_ver")"
    printf '  "module_loaded": %s,\n' "$([ "$use_module" = 1 ] && echo true || echo false)"
    printf '  "cores": %s,\n' "$ncpu"
    printf '  "seconds": %s,\n' "$elapsed"
    printf '  "busy_percent_before": %s,\n' "$busy_pct"
    printf '  "load": %s,\n' "$([ "$callgrind" != only ] && echo true || echo false)"
    printf '  "rounds": %s, "requests": %s, "warmup": %s, "conns": %s, "streams": %s,\n' \
        "$rounds" "$requests" "$warmup" "$conns" "$streams"
    printf '  "callgrind_rounds": %s, "callgrind_requests": %s,\n' \
        "$([ "$callgrind" != 0 ] && echo "$cg_rounds" || echo null)" \
        "$([ "$callgrind" != 0 ] && echo "$cg_requests" || echo null)"
    printf '  "ok": %s,\n' "$([ "$failed" = 0 ] && echo true || echo false)"
    printf '  "skipped": {'
    sep=""
    for name in "${skipped[@]}"; do
        printf '%s\n    %s: %s' "$sep" "$(jstr "$name")" "$(jstr "${S_SKIP[$name]}")"
        sep=","
    done
    printf '%s},\n' "$([ -n "$sep" ] && echo $'\n  ')"
    printf '  "scenarios": [\n'
    sep=""
    for name in "${active[@]}"; do
        printf '%s    {\n' "$sep"
        printf '      "name": %s,\n' "$(jstr "$name")"
        printf '      "description": %s,\n' "$(jstr "${S_DESC[$name]}")"
        printf '      "path": %s,\n' "$(jstr "${S_PATH[$name]}")"
        printf '      "baseline": %s,\n' "$(jstr "${S_BASE[$name]}")"
        printf '      "expect_grpc_status": %s,\n' "$(jnum "${S_EXPECT[$name]}")"
        printf '      "failure": %s,\n' \
            "$([ -n "${BAD[$name]:-}" ] && jstr "${BAD[$name]}" || echo null)"
        alg=${S_VERIFY[$name]:-}
        if [ -n "$alg" ]; then
            printf '      "verify": {"alg": %s, "miss_us": %s, "miss_usr_us": %s, "raw_us": %s, "prepared_us": %s, "openssl_speed_us": %s, "miss_instructions": %s, "raw_instructions": %s},\n' \
                "$(jstr "$alg")" "$(jnum "${V[$name,miss]:-}")" \
                "$(jnum "${V[$name,usr]:-}")" "$(jnum "${V[$alg,raw]:-}")" "$(jnum "${V[$alg,prep]:-}")" \
                "$(jnum "${V[$alg,speed]:-}")" \
                "$(jnum "${V[$name,ir]:-}")" "$(jnum "${V[$alg,ir]:-}")"
        fi
        if [ "$callgrind" != 0 ]; then
            printf '      "callgrind_instructions_per_rpc": %s,\n' "$(jnum "${M[$name,IR]}")"
            printf '      "callgrind_ratio": %s,\n' \
                "$(ratio "${M[$name,IR]}" "${M[${S_BASE[$name]},IR]}")"
        fi
        if [ "$callgrind" != only ]; then
            printf '      "rps": %s, "p50_ms": %s, "p99_ms": %s, "cpu_us_per_rpc": %s, "core_us_per_rpc": %s, "aux_cpu_us_per_rpc": %s, "sum_cpu_us_per_rpc": %s, "sum_ratio": %s,\n' \
                "$(jnum "${M[$name,RPS]}")" "$(jnum "${M[$name,P50]}")" \
                "$(jnum "${M[$name,P99]}")" \
                "$(jnum "${M[$name,CPU]}")" "$(jnum "${M[$name,CORE]}")" \
                "$(jnum "${M[$name,AUX]}")" "$(jnum "${M[$name,SUM]}")" \
                "$(jnum "${M[$name,SUM,ratio]}")"
            printf '      "rps_ratio": %s, "p99_ratio": %s, "cpu_ratio": %s, "core_ratio": %s, "cpu_delta_us": %s,\n' \
                "$(jnum "${M[$name,RPS,ratio]}")" "$(jnum "${M[$name,P99,ratio]}")" \
                "$(jnum "${M[$name,CPU,ratio]}")" "$(jnum "${M[$name,CORE,ratio]}")" \
                "$(jnum "${M[$name,CPU,delta]}")"
            printf '      "errors": %s,\n' "${M[$name,ERR]}"
            if [ -n "${M[$name,RSCR]:-}" ]; then
                printf '      "redis_scripts_per_call": %s, "redis_commands_per_call": %s, "redis_cpu_us_per_call": %s, "redis_script_us_per_call": %s,\n' \
                    "$(jnum "${M[$name,RSCR]}")" "$(jnum "${M[$name,RCMD]}")" \
                    "$(jnum "${M[$name,RCPU]}")" "$(jnum "${M[$name,RRUN]}")"
            fi
            printf '      "runs": ['
            rsep=""
            for r in warmup $(seq 1 "$rounds" | sed 's/^/r/'); do
                k="$name,$r"
                [ -n "${R_RPS[$k]:-}" ] || continue
                printf '%s\n        {"run": "%s", "requests": %s, "aux_us": %s, "rps": %s, "p50_ms": %s, "p99_ms": %s, "cpu_us": %s, "usr_us": %s, "sys_us": %s, "core_us": %s, "upstream_cpu_us": %s, "nginx_busy_percent": %s, "errors": %s, "note": %s}' \
                    "$rsep" "$r" "${R_N[$k]}" "$(jstr "${R_AUXD[$k]}")" \
                    "$(jnum "${R_RPS[$k]}")" "$(jnum "${R_P50[$k]}")" \
                    "$(jnum "${R_P99[$k]}")" "$(jnum "${R_CPU[$k]}")" \
                    "$(jnum "${R_USR[$k]}")" "$(jnum "${R_SYS[$k]}")" \
                    "$(jnum "${R_CORE[$k]}")" "$(jnum "${R_BE[$k]}")" \
                    "$(jnum "${R_UTIL[$k]}")" "${R_ERR[$k]}" \
                    "$(jstr "${R_NOTE[$k]}")"
                rsep=","
            done
            printf '\n      ]\n'
        else
            printf '      "runs": []\n'
        fi
        printf '    }'
        sep=$',\n'
    done
    printf '\n  ]\n}\n'
} > "$json"

echo
cat "$txt"
echo
echo "bench: results in ${txt#"$repo"/} and ${json#"$repo"/}"

if [ "$failed" != 0 ]; then
    echo "bench: FAILED: some calls were not answered as expected" >&2
    exit 1
fi
exit 0
