#!/bin/bash
# make test-asan: the whole t/ suite against nginx and the module built with
# AddressSanitizer, LeakSanitizer and UndefinedBehaviorSanitizer
# (ci/build-asan.sh).  Fails when the suite fails, and when any sanitizer
# report was written, even by a test that passed.
#
# Where reports go and how they fail the run:
#   * every report (ASan, LSan, UBSan) is written to
#     t/servroot/sanitizer/report.PID (log_path), scanned after the suite;
#     any memory error or undefined behaviour there fails the run;
#   * a memory error or UBSan finding also aborts the process at once
#     (halt_on_error, abort_on_error), so the worker dies with SIGABRT in
#     the middle of the test that caused it; the harness sees "exited on
#     signal 6" in that test's error log and fails that test;
#   * leaks are found when each nginx process exits (detect_leaks=1); they
#     do not change its exit status (exitcode=0, so `nginx -t` and the
#     must_die tests keep their meaning) and fail the run through the scan.
#
# Leak checks that make no sense, and nothing else, are left out:
#   * `nginx -t/-T/-s/-v/-V/-h` never free the configuration cycle before
#     returning from main(): the binary given to the suite is a small
#     wrapper (build/asan/prefix/sbin/nginx-test) that runs those with
#     detect_leaks=0, and every other invocation unchanged;
#   * an nginx that stops at startup on a configuration error (the
#     must_die tests) returns from main() without destroying the init
#     cycle's pool; LeakSanitizer reports made only of allocations by main()
#     itself (that pool, the paths of ngx_process_options()) are listed as
#     "nginx startup exit" and do not fail the run.  A leak with any other
#     allocation stack, the module's above all, does.
#   * leaks of nginx itself that happen during the suite (PCRE2 compile
#     context, upstream TLS sessions) are in t/lsan.suppress, each
#     explained; UBSan findings in nginx's own sources in t/ubsan.suppress.
#
# Arguments are passed to ci/test.sh (prove): `ci/test-asan.sh t/010-path.t`.
# Environment: anything ci/test.sh and the harness understand
# (TEST_NGINX_*, PROVE_JOBS, ...); ASAN_EXTRA_OPTIONS / UBSAN_EXTRA_OPTIONS
# are appended to the options set here.

set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

start=$(date +%s)

ci/build-asan.sh

prefix=$root/build/asan/prefix
nginx=$prefix/sbin/nginx
module=$prefix/modules/ngx_http_grpc_guard_module.so
wrapper=$prefix/sbin/nginx-test
reports=$root/t/servroot/sanitizer

[ -x "$nginx" ] && [ -f "$module" ] || { echo "test-asan: build missing" >&2; exit 1; }
[ -x ci/test.sh ] || { echo "test-asan: ci/test.sh not found" >&2; exit 1; }

cat > "$wrapper.tmp" <<EOF
#!/bin/sh
# Made by ci/test-asan.sh.  Runs the ASan nginx; for the invocations that
# return from main() without freeing the configuration (-t -T -s -v -V -h)
# leak checking is turned off.  Everything else is passed on unchanged.
skip=
for a in "\$@"; do
    if [ -n "\$skip" ]; then skip=; continue; fi
    case "\$a" in
    -c|-e|-g|-p) skip=1 ;;
    -[cegp]*) ;;
    -*[tTsvVh?]*)
        ASAN_OPTIONS="\${ASAN_OPTIONS:+\$ASAN_OPTIONS:}detect_leaks=0"
        export ASAN_OPTIONS
        break ;;
    esac
done
exec "$nginx" "\$@"
EOF
chmod +x "$wrapper.tmp"
mv "$wrapper.tmp" "$wrapper"

rm -rf "$reports"
mkdir -p "$reports"

# Report text: function names and lines need llvm-symbolizer.
if [ -z "${ASAN_SYMBOLIZER_PATH:-}" ]; then
    for s in llvm-symbolizer llvm-symbolizer-14 /usr/lib/llvm-14/bin/llvm-symbolizer; do
        if command -v "$s" >/dev/null 2>&1; then
            ASAN_SYMBOLIZER_PATH=$(command -v "$s")
            export ASAN_SYMBOLIZER_PATH
            break
        fi
    done
fi
if [ -z "${ASAN_SYMBOLIZER_PATH:-}" ]; then
    echo "test-asan: WARNING: llvm-symbolizer not found (package llvm-14):" \
         "reports will show addresses, not functions and lines" >&2
fi

# fast_unwind_on_malloc=0: allocation stacks through OpenSSL, jansson,
#   hiredis, PCRE2 (built without frame pointers) would otherwise stop at
#   the library and never show who asked; costs little here.
# detect_stack_use_after_return: also catches pointers to a function's
#   locals kept after it returned (e.g. in the request context).
# detect_odr_violation=0: every nginx dynamic module defines the same
#   globals (ngx_modules, ngx_module_names, ngx_module_order); with two
#   ASan-built modules loaded, ASan would call that a one-definition-rule
#   violation.
common="log_path=$reports/report:abort_on_error=1:print_summary=1"
export ASAN_OPTIONS="$common:detect_leaks=1:exitcode=0:fast_unwind_on_malloc=0:detect_stack_use_after_return=1:detect_odr_violation=0${ASAN_EXTRA_OPTIONS:+:$ASAN_EXTRA_OPTIONS}"
export UBSAN_OPTIONS="$common:print_stacktrace=1:halt_on_error=1:report_error_type=1:suppressions=$root/t/ubsan.suppress${UBSAN_EXTRA_OPTIONS:+:$UBSAN_EXTRA_OPTIONS}"
export LSAN_OPTIONS="max_leaks=0:print_suppressions=0:suppressions=$root/t/lsan.suppress${LSAN_EXTRA_OPTIONS:+:$LSAN_EXTRA_OPTIONS}"

export TEST_NGINX_BINARY=$wrapper
export TEST_NGINX_LOAD_MODULES=$module

echo "test-asan: nginx  $nginx"
echo "test-asan: module $module"
echo "test-asan: sanitizer reports in $reports"

suite=0
ci/test.sh "$@" || suite=$?

# ---------------------------------------------------------------- the scan

scan=0
python3 - "$reports" "$module" <<'PY' || scan=$?
import os
import re
import sys

reports_dir, module = sys.argv[1], sys.argv[2]

# Frames that only allocate: the scan looks at who asked for the memory.
ALLOC = re.compile(r'^(__interceptor_\w+|malloc|calloc|realloc|'
                   r'posix_memalign|memalign|aligned_alloc|'
                   r'ngx_alloc|ngx_calloc|ngx_memalign|ngx_create_pool|'
                   r'ngx_palloc\w*|ngx_pnalloc|ngx_pcalloc)$')
LIBC_START = re.compile(r'^(__libc_start\w*|_start)$')
FRAME = re.compile(r'^\s*#\d+ 0x[0-9a-f]+ in (\S+)(.*)$')


def startup_exit_leak(frames):
    """An allocation made by nginx's main() itself (the init cycle's pool,
    the paths of ngx_process_options()), left when main() returns early."""
    names = [f for f, rest in frames]
    if any(module in rest or 'grpc_guard' in f for f, rest in frames):
        return False
    asked = [n for n in names if not ALLOC.match(n) and not LIBC_START.match(n)]
    return asked in (['main'], ['ngx_process_options', 'main'])


failed = []
known = []
notes = []
files = sorted(os.listdir(reports_dir)) if os.path.isdir(reports_dir) else []
for name in files:
    path = os.path.join(reports_dir, name)
    try:
        text = open(path, errors='replace').read()
    except OSError:
        continue
    if not text.strip():
        continue
    bad = []
    if 'ERROR: AddressSanitizer' in text or 'AddressSanitizer:DEADLYSIGNAL' in text:
        bad.append('AddressSanitizer')
    if 'runtime error:' in text:
        bad.append('UBSan')
    if 'ERROR: LeakSanitizer' in text:
        leaks, cur = [], None
        for line in text.splitlines():
            if re.match(r'^(Direct|Indirect) leak of', line):
                cur = (line, [])
                leaks.append(cur)
            elif cur is not None:
                m = FRAME.match(line)
                if m:
                    cur[1].append((m.group(1), m.group(2)))
                elif not line.strip():
                    cur = None
        if leaks and all(startup_exit_leak(fr) for _, fr in leaks):
            known.append(name)
        else:
            bad.append('LeakSanitizer')
    if not bad and name not in known and 'ERROR:' in text:
        bad.append('sanitizer')
    if bad:
        failed.append((name, bad, text))
    elif name not in known:
        notes.append((name, text))

for name, text in notes:
    print('test-asan: note, %s (not a report):' % name)
    print('    ' + '\n    '.join(text.strip().splitlines()[:10]))
if known:
    print('test-asan: %d LeakSanitizer report(s) of an nginx that stopped at '
          'startup (init cycle pool, nothing else): %s'
          % (len(known), ' '.join(known)))
for name, bad, text in failed:
    lines = text.strip().splitlines()
    print('=' * 72)
    print('test-asan: %s: %s' % (name, ', '.join(bad)))
    print('\n'.join(lines[:150]))
    if len(lines) > 150:
        print('... %d more lines in %s' % (len(lines) - 150,
                                            os.path.join(reports_dir, name)))
print('test-asan: %d report file(s), %d failing' % (len(files), len(failed)))
sys.exit(1 if failed else 0)
PY

elapsed=$(( $(date +%s) - start ))
if [ "$suite" != 0 ] || [ "$scan" != 0 ]; then
    echo "test-asan: FAIL (suite exit $suite, sanitizer scan exit $scan) in ${elapsed}s"
    exit 1
fi
echo "test-asan: PASS in ${elapsed}s"
