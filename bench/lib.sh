# shellcheck shell=bash
# Helpers shared by bench/run.sh and the scenario setup commands
# (bench/scenarios/setup/*.sh).  Source it; it defines functions only.

# bench_port_free PORT: true when nothing listens on 127.0.0.1:PORT.
bench_port_free() {
    local port=$1
    if command -v ss >/dev/null 2>&1; then
        [ -z "$(ss -Htln "sport = :$port" 2>/dev/null)" ]
    else
        ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null
    fi
}

# bench_free_port: prints a loopback TCP port that nothing listens on and
# that is not listed in $BENCH_RESERVED_PORTS (ports the bench has picked but
# may not have bound yet).
bench_free_port() {
    local port
    # $RANDOM repeats its sequence in every $(...) subshell: mix in the pid
    RANDOM=$(( ${BASHPID:-$$} + $(date +%N | sed 's/^0*//') % 100000 ))
    for _ in $(seq 1 200); do
        port=$(( 20000 + (RANDOM * 32768 + RANDOM) % 40000 ))
        case " ${BENCH_RESERVED_PORTS:-} " in
            *" $port "*) continue ;;
        esac
        if bench_port_free "$port"; then
            BENCH_RESERVED_PORTS="${BENCH_RESERVED_PORTS:-} $port"
            export BENCH_RESERVED_PORTS
            echo "$port"
            return 0
        fi
    done
    echo "bench: no free port found" >&2
    return 1
}

# bench_wait_port PORT SECONDS: waits until something listens on PORT.
bench_wait_port() {
    local port=$1 secs=$2
    for _ in $(seq 1 $(( secs * 10 ))); do
        if ! bench_port_free "$port"; then
            return 0
        fi
        sleep 0.1
    done
    return 1
}
