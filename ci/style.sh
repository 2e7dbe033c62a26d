#!/bin/sh
# nginx code style checks that a grep can do: 80 columns, no tabs, no
# trailing blanks, no // comments, the module prefix on global functions.

cd "$(dirname "$0")/.." || exit 1

rc=0

fail() {
    echo "style: $1" >&2
    rc=1
}

files=$(ls src/*.c src/*.h)

if grep -nP '.{81,}' $files; then
    fail "lines longer than 80 columns"
fi

if grep -nP '\t' $files; then
    fail "tabs"
fi

if grep -nP ' +$' $files; then
    fail "trailing blanks"
fi

# a // outside a string literal
if grep -nP '^(?:[^"/]|"(?:[^"\\]|\\.)*"|/(?!/))*//' $files; then
    fail "// comments"
fi

# functions defined at column 0 must carry the module prefix
if grep -nP '^(?!ngx_http_grpc_guard_)[a-z_][a-z0-9_]*\(' src/*.c; then
    fail "function names without the ngx_http_grpc_guard_ prefix"
fi

if [ $rc = 0 ]; then
    echo "style: ok"
fi

exit $rc
