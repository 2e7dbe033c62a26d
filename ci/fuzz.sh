#!/bin/bash
# make fuzz: builds the libFuzzer targets of fuzz/ and runs each of them
# for FUZZ_SECONDS (default 60), one after the other.
#
#   ci/fuzz.sh                  build, then run every target
#   ci/fuzz.sh jws acl_rule     build, then run these targets only
#   ci/fuzz.sh --build          build only
#
# What is linked (fuzz/README.md says why):
#   * nginx's own objects from the ASan+UBSan build of ci/build-asan.sh
#     (build/asan/nginx-1.22.1/objs/src/**.o and objs/ngx_modules.o), with
#     main() of nginx.o renamed so that libFuzzer's main() is the one;
#   * the module's sources (src/*.c), compiled again into fuzz/build/mod
#     with the very flags of that build (CFLAGS and include paths read from
#     its objs/Makefile), plus -fsanitize=fuzzer-no-link for coverage;
#   * fuzz/ngx_fuzz_common.c and the target, fuzz/fuzz_TARGET.c.  A target
#     that #includes a module source (for its static types) is linked
#     without that source's object.
#
# Each run reads fuzz/corpus/TARGET (the seeds, committed) and
# fuzz/regressions/TARGET (inputs that once failed, committed) and writes
# what it finds to fuzz/build/corpus/TARGET (not committed).  An input that
# makes a target fail (crash, sanitizer report, leak, a property that does
# not hold, a timeout) is copied to fuzz/regressions/TARGET/ and the run
# fails; the log is in fuzz/build/logs/TARGET.log.
#
# Environment:
#   FUZZ_SECONDS     seconds per target (default 60)
#   FUZZ_TARGETS     targets to run (default: all; arguments win)
#   FUZZ_ARGS        more libFuzzer options, e.g. "-max_len=4096"
#   GRPC_GUARD_FUZZ_NO_ASAN_BUILD=1   do not call ci/build-asan.sh (the
#                    nginx objects must be there already)
#   JOBS             parallel compilations (default: number of CPUs)

set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

seconds=${FUZZ_SECONDS:-60}
jobs=${JOBS:-$(nproc 2>/dev/null || echo 2)}
fuzz=$root/fuzz
build=$fuzz/build
nginx_src=$root/build/asan/nginx-1.22.1
module_libs="-ljansson -lhiredis"       # ngx_module_libs of ./config

log() { echo "fuzz: $*"; }
die() { echo "fuzz: $*" >&2; exit 1; }

build_only=
targets=()
for a in "$@"; do
    case "$a" in
    --build) build_only=1 ;;
    -*) die "unknown option $a" ;;
    *) targets+=("$a") ;;
    esac
done

if [ ${#targets[@]} = 0 ]; then
    if [ -n "${FUZZ_TARGETS:-}" ]; then
        read -r -a targets <<< "$FUZZ_TARGETS"
    else
        for f in "$fuzz"/fuzz_*.c; do
            t=${f##*/fuzz_}
            targets+=("${t%.c}")
        done
    fi
fi

for t in "${targets[@]}"; do
    [ -f "$fuzz/fuzz_$t.c" ] || die "no target $t (fuzz/fuzz_$t.c)"
done

start=$(date +%s)

# --- 1. the ASan build of nginx (cached) ----------------------------------

if [ "${GRPC_GUARD_FUZZ_NO_ASAN_BUILD:-}" != 1 ]; then
    ci/build-asan.sh
fi

[ -f "$nginx_src/objs/Makefile" ] && [ -f "$nginx_src/objs/src/core/nginx.o" ] \
    || die "no ASan build in $nginx_src: run ci/build-asan.sh"

mkdir -p "$build/mod" "$build/logs" "$build/artifacts"

# --- 2. flags and objects of that build -----------------------------------

printf 'print-%%:\n\t@echo "$($*)"\n' > "$build/print.mk"

mkvar() {
    make -s -C "$nginx_src" -f objs/Makefile -f "$build/print.mk" "print-$1"
}

cc=$(mkvar CC)
cflags=$(mkvar CFLAGS)
incs=$(mkvar ALL_INCS)

case " $cflags " in
*" -fsanitize=address,undefined "*) ;;
*) die "the nginx build has no -fsanitize=address,undefined in CFLAGS: $cflags" ;;
esac

# the same flags, with coverage for libFuzzer on the module's code
fuzz_cflags=${cflags/-fsanitize=address,undefined/-fsanitize=fuzzer-no-link,address,undefined}
target_cflags=${cflags/-fsanitize=address,undefined/-fsanitize=fuzzer,address,undefined}

# the objects of objs/nginx, from its rule in objs/Makefile
mapfile -t core_objs < <(awk '
    /^objs\/nginx:/ { on = 1 }
    on && /^$/ { if (seen) exit }
    on {
        for (i = 1; i <= NF; i++) {
            if ($i ~ /\.o$/) { print $i; seen = 1 }
        }
    }' "$nginx_src/objs/Makefile" | sort -u)

[ ${#core_objs[@]} -gt 50 ] || die "could not read the objects of objs/nginx from objs/Makefile"

# the libraries of objs/nginx: the -l words of its link line
core_libs=$(awk '
    /^objs\/nginx:/ { on = 1 }
    on { for (i = 1; i <= NF; i++) if ($i ~ /^-l/ && !s[$i]++) printf "%s ", $i }
    on && /-Wl,-E/ { exit }' "$nginx_src/objs/Makefile")

flags_want=$(printf '%s\n' "$cc" "$fuzz_cflags" "$incs" "$($cc --version | sed -n 1p)")
flags_stamp=$build/.flags
if [ ! -f "$flags_stamp" ] || [ "$(cat "$flags_stamp")" != "$flags_want" ]; then
    rm -f "$build"/mod/*.o "$build"/*.o "$build"/fuzz_*
    printf '%s' "$flags_want" > "$flags_stamp"
fi

# nginx.o without main()
nomain=$build/nginx_nomain.o
if [ ! -f "$nomain" ] || [ "$nginx_src/objs/src/core/nginx.o" -nt "$nomain" ]; then
    objcopy --redefine-sym main=ngx_fuzz_nginx_main \
        "$nginx_src/objs/src/core/nginx.o" "$nomain"
fi

objs=()
for o in "${core_objs[@]}"; do
    case "$o" in
    objs/src/core/nginx.o) objs+=("$nomain") ;;
    *) objs+=("$nginx_src/$o") ;;
    esac
done

# --- 3. the module's sources and the targets ------------------------------

# an object is stale when its source, a header of src/ or fuzz/, or the
# flags are newer
newest_header=$(ls -t src/*.h fuzz/*.h "$flags_stamp" | head -1)

stale() {   # object source
    [ ! -f "$1" ] || [ "$2" -nt "$1" ] || [ "$newest_header" -nt "$1" ]
}

compile=()
for s in "$root"/src/*.c; do
    o=$build/mod/$(basename "${s%.c}").o
    if stale "$o" "$s"; then
        compile+=("$s $o $fuzz_cflags")
    fi
done

if stale "$build/ngx_fuzz_common.o" "$fuzz/ngx_fuzz_common.c"; then
    compile+=("$fuzz/ngx_fuzz_common.c $build/ngx_fuzz_common.o $fuzz_cflags")
fi

for t in "${targets[@]}"; do
    s=$fuzz/fuzz_$t.c
    o=$build/fuzz_$t.o
    # a target that includes module sources depends on them too
    dep_newer=
    for inc in $(sed -n 's/^#include "\(ngx_http_grpc_guard_[a-z_]*\.c\)"$/\1/p' "$s"); do
        if [ "src/$inc" -nt "$o" ]; then dep_newer=1; fi
    done
    if stale "$o" "$s" || [ -n "$dep_newer" ]; then
        compile+=("$s $o $target_cflags")
    fi
done

if [ ${#compile[@]} -gt 0 ]; then
    log "compiling ${#compile[@]} file(s)"
    export cc incs fuzz root
    printf '%s\n' "${compile[@]}" | xargs -P "$jobs" -I{} sh -c '
        set -- {}
        src=$1; obj=$2; shift 2
        cd "'"$nginx_src"'" && $cc -c "$@" $incs -I "$fuzz" -I "$root/src" \
            -o "$obj.tmp" "$src" && mv "$obj.tmp" "$obj"
    ' || die "compilation failed"
fi

for t in "${targets[@]}"; do
    s=$fuzz/fuzz_$t.c
    bin=$build/fuzz_$t
    excluded=$(sed -n 's/^#include "\(ngx_http_grpc_guard_[a-z_]*\)\.c"$/\1/p' "$s")
    mod=()
    for o in "$build"/mod/*.o; do
        b=$(basename "${o%.o}")
        case " $(echo $excluded) " in
        *" $b "*) ;;
        *) mod+=("$o") ;;
        esac
    done
    relink=
    [ -x "$bin" ] || relink=1
    for o in "$build/fuzz_$t.o" "$build/ngx_fuzz_common.o" "${mod[@]}" "$nomain"; do
        if [ "$o" -nt "$bin" ]; then relink=1; fi
    done
    if [ -n "$relink" ]; then
        # shellcheck disable=SC2086
        $cc -fsanitize=fuzzer,address,undefined -o "$bin.tmp" \
            "$build/fuzz_$t.o" "$build/ngx_fuzz_common.o" "${mod[@]}" \
            "${objs[@]}" $module_libs $core_libs \
            || die "linking fuzz_$t failed"
        mv "$bin.tmp" "$bin"
    fi
done

log "built ${targets[*]} in $(( $(date +%s) - start ))s"

if [ -n "$build_only" ]; then
    exit 0
fi

# --- 4. the runs ----------------------------------------------------------

if [ -z "${ASAN_SYMBOLIZER_PATH:-}" ]; then
    for s in llvm-symbolizer llvm-symbolizer-14 /usr/lib/llvm-14/bin/llvm-symbolizer; do
        if command -v "$s" >/dev/null 2>&1; then
            ASAN_SYMBOLIZER_PATH=$(command -v "$s")
            export ASAN_SYMBOLIZER_PATH
            break
        fi
    done
fi

# UBSan is recoverable in these objects (as in the ASan nginx): halt on the
# first finding; nginx's own known ones are muted as in ci/test-asan.sh
export ASAN_OPTIONS="abort_on_error=1:detect_leaks=1:detect_stack_use_after_return=1:detect_odr_violation=0${ASAN_EXTRA_OPTIONS:+:$ASAN_EXTRA_OPTIONS}"
export UBSAN_OPTIONS="halt_on_error=1:abort_on_error=1:print_stacktrace=1:report_error_type=1:suppressions=$root/t/ubsan.suppress${UBSAN_EXTRA_OPTIONS:+:$UBSAN_EXTRA_OPTIONS}"

failed=()
summary=()

for t in "${targets[@]}"; do
    bin=$build/fuzz_$t
    work=$build/corpus/$t
    art=$build/artifacts/$t
    logf=$build/logs/$t.log
    mkdir -p "$work" "$art" "$fuzz/corpus/$t"
    rm -f "$art"/*

    dirs=("$work" "$fuzz/corpus/$t")
    if [ -d "$fuzz/regressions/$t" ]; then
        dirs+=("$fuzz/regressions/$t")
    fi

    opts=(-max_total_time="$seconds" -timeout=25 -rss_limit_mb=2048
          -print_final_stats=1 -artifact_prefix="$art/")
    if [ -f "$fuzz/$t.dict" ]; then
        opts+=(-dict="$fuzz/$t.dict")
    fi
    if [ -f "$fuzz/$t.options" ]; then
        # one libFuzzer option per line, e.g. -max_len=4096
        mapfile -t more < <(grep -v '^#' "$fuzz/$t.options" | grep .)
        opts+=("${more[@]}")
    fi
    # shellcheck disable=SC2206
    opts+=(${FUZZ_ARGS:-})

    log "$t: ${seconds}s"
    t0=$(date +%s)
    rc=0
    "$bin" "${opts[@]}" "${dirs[@]}" > "$logf" 2>&1 || rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$logf" | tail -1)
    cov=$(grep -o 'cov: [0-9]*' "$logf" | tail -1 | sed 's/cov: //')

    found=$(ls "$art" 2>/dev/null || true)
    if [ "$rc" != 0 ] || [ -n "$found" ] \
       || grep -q -E 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error:|property does not hold' "$logf"
    then
        mkdir -p "$fuzz/regressions/$t"
        for a in $found; do
            cp "$art/$a" "$fuzz/regressions/$t/$a"
        done
        failed+=("$t")
        echo "========================================================================"
        log "$t FAILED (exit $rc); input(s) kept in fuzz/regressions/$t: ${found:-none}"
        grep -n -E -A40 'ERROR: |runtime error:|property does not hold' "$logf" | sed -n 1,80p || tail -40 "$logf"
        echo "========================================================================"
        summary+=("$(printf '%-14s FAIL  %6ss  %10s execs  cov %s' "$t" "$(( $(date +%s) - t0 ))" "${execs:-?}" "${cov:-?}")")
    else
        summary+=("$(printf '%-14s ok    %6ss  %10s execs  cov %s' "$t" "$(( $(date +%s) - t0 ))" "${execs:-?}" "${cov:-?}")")
    fi
done

printf 'fuzz: %s\n' "${summary[@]}"
elapsed=$(( $(date +%s) - start ))
if [ ${#failed[@]} -gt 0 ]; then
    log "FAIL: ${failed[*]} in ${elapsed}s"
    exit 1
fi
log "PASS in ${elapsed}s"
