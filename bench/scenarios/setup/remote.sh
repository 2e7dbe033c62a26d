#!/bin/bash
# Scenario setup helper for the guard's subrequests (remote JWKS,
# introspection, external authorization): the credential the calls carry,
# and a nested location in the scenario's own location that stands in for
# the identity provider or the policy engine with a fixed reply (nginx
# "return 200", no upstream), so that a cache miss costs the subrequest
# itself and nothing else.
#   #@ setup: bench/scenarios/setup/remote.sh KIND
# KIND:
#   jwks          the RS256 token of jwt.sh; the stand-in serves its key as
#                 a JWK Set (kid "bench") at /NAME._jwks
#   opaque        one opaque token (a header shared by every scenario of
#                 the run); the stand-in answers every introspection with
#                 an active reply (client_id bench-app, no sub, exp in a
#                 day) at /NAME._introspect
#   opaque_pool   the same stand-in; 12000 distinct opaque tokens, one per
#                 call (bench/bin/h2pool)
#   apikey        one API key (x-api-key, client bench-app, role reader),
#                 key file @WORK@/apikey/keys.txt; the stand-in answers
#                 every question with {"result": true} at /NAME._authz
#   apikey_pool   the same, and 12000 distinct "x-call: N" headers, one
#                 per call, for grpc_guard_authz_metadata x-call: every
#                 call asks another question
# The scenario includes @SCEN@/remote.conf in its location (bare ones with
# the same headers need not).

set -euo pipefail

kind=${1:?KIND}
dir=$BENCH_SCEN_DIR
conf=$dir/remote.conf

pool() {
    local what=$1 prefix=$2 shared=$BENCH_WORK/$1-pool
    if [ ! -s "$shared/pool" ]; then
        mkdir -p "$shared"
        python3 -c '
import os, sys
prefix = sys.argv[1]
with open(sys.argv[2], "w") as f:
    for i in range(12000):
        if prefix == "token":
            f.write("authorization: Bearer op-%s\n" % os.urandom(16).hex())
        else:
            f.write("x-call: %d\n" % i)
' "$prefix" "$shared/pool.tmp"
        mv "$shared/pool.tmp" "$shared/pool"
    fi
    echo "$shared/pool" > "$dir/pool"
}

# stand_in SUFFIX REPLY: the location /NAME.SUFFIX answering REPLY
stand_in() {
    cat > "$conf" <<CONF
location = /$BENCH_NAME.$1 {
    internal;
    return 200 '$2';
}
CONF
}

introspect_stand_in() {
    local now
    now=$(date +%s)
    stand_in _introspect "{\"active\":true,\"client_id\":\"bench-app\",\"scope\":\"read write\",\"iss\":\"bench-issuer\",\"token_type\":\"Bearer\",\"iat\":$now,\"exp\":$(( now + 86400 ))}"
}

apikey() {
    local shared=$BENCH_WORK/apikey
    if [ ! -s "$shared/key" ]; then
        mkdir -p "$shared"
        printf 'bk-%s' "$(openssl rand -hex 16)" > "$shared/key"
        printf 'sha256:%s bench-app reader\n' \
            "$(printf '%s' "$(cat "$shared/key")" \
               | openssl dgst -sha256 -r | cut -d' ' -f1)" \
            > "$shared/keys.txt"
    fi
    echo "x-api-key: $(cat "$shared/key")" >> "$dir/headers"
}

case $kind in
jwks)
    "$(dirname "$0")/jwt.sh"
    python3 - "$BENCH_WORK/jwt/pub.pem" "$dir/jwks.json" <<'PY'
import base64, json, sys
from cryptography.hazmat.primitives import serialization

def b64url(n):
    b = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()

key = serialization.load_pem_public_key(open(sys.argv[1], "rb").read())
nums = key.public_numbers()
jwk = {"kty": "RSA", "kid": "bench", "use": "sig", "alg": "RS256",
       "n": b64url(nums.n), "e": b64url(nums.e)}
json.dump({"keys": [jwk]}, open(sys.argv[2], "w"), separators=(",", ":"))
PY
    stand_in _jwks "$(cat "$dir/jwks.json")"
    ;;
opaque)
    shared=$BENCH_WORK/opaque
    if [ ! -s "$shared/token" ]; then
        mkdir -p "$shared"
        echo "op-$(openssl rand -hex 16)" > "$shared/token"
    fi
    echo "authorization: Bearer $(cat "$shared/token")" >> "$dir/headers"
    introspect_stand_in
    ;;
opaque_pool)
    pool opaque token
    introspect_stand_in
    ;;
apikey)
    apikey
    stand_in _authz '{"result":true}'
    ;;
apikey_pool)
    apikey
    pool call call
    stand_in _authz '{"result":true}'
    ;;
*)
    echo "remote.sh: KIND is jwks, opaque, opaque_pool, apikey or" \
         "apikey_pool, not $kind" >&2
    exit 1
    ;;
esac
