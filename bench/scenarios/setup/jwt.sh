#!/bin/bash
# Scenario setup helper: one RSA key pair and one RS256 JWT signed with it
# (sub=bench, iss=bench-issuer, aud=bench, valid for a day), made once per
# bench run in @WORK@/jwt/ and shared by every scenario that uses it, so that
# a guarded scenario and its baseline send the very same header.
#   #@ setup: bench/scenarios/setup/jwt.sh
# Gives @WORK@/jwt/pub.pem (for grpc_guard_jwt_key_file) and adds
# "authorization: Bearer <token>" to the scenario's request headers.

set -euo pipefail

jwt=$BENCH_WORK/jwt

b64url() {
    openssl base64 -A | tr '+/' '-_' | tr -d '='
}

if [ ! -s "$jwt/token" ]; then
    mkdir -p "$jwt"
    openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 \
        -out "$jwt/key.pem" 2> /dev/null
    openssl pkey -in "$jwt/key.pem" -pubout -out "$jwt/pub.pem"

    now=$(date +%s)
    header='{"alg":"RS256","typ":"JWT","kid":"bench"}'
    claims="{\"sub\":\"bench\",\"iss\":\"bench-issuer\",\"aud\":\"bench\","
    claims+="\"iat\":$now,\"exp\":$(( now + 86400 ))}"

    input="$(printf '%s' "$header" | b64url).$(printf '%s' "$claims" | b64url)"
    sig=$(printf '%s' "$input" \
          | openssl dgst -sha256 -sign "$jwt/key.pem" -binary | b64url)
    echo "$input.$sig" > "$jwt/token.tmp"
    mv "$jwt/token.tmp" "$jwt/token"
fi

echo "authorization: Bearer $(cat "$jwt/token")" >> "$BENCH_SCEN_DIR/headers"
