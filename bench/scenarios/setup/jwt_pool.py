#!/usr/bin/python3
"""Scenario setup helper: a pool of distinct JWTs, all valid, for the
cache-miss scenarios (bench/bin/h2pool sends one per call, in turn).

  #@ setup: bench/scenarios/setup/jwt_pool.py ALG [COUNT]

ALG is RS256 (RSA 2048), ES256 (P-256) or EdDSA (Ed25519); COUNT (default
12000) is more than the default 1m verified-token cache holds, so that a
token sent again has left the cache by then.  Every token has
sub=bench, iss=bench-issuer, aud=bench, a distinct jti and a lifetime of
a day.  Made once per bench run in @WORK@/jwt-pool-ALG/ and shared by the
scenarios that name the same ALG:
  pub.pem    the public key (grpc_guard_jwt_key_file)
  pool       "authorization: Bearer TOKEN" lines
The scenario's own directory gets a copy of the path in "pool" and the
variable POOL_DIR (@POOL_DIR@ in the scenario).
"""

import base64
import json
import os
import sys
import time

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature)


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def make_key(alg):
    if alg == "RS256":
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

        def sign(data):
            return key.sign(data, padding.PKCS1v15(), hashes.SHA256())

    elif alg == "ES256":
        key = ec.generate_private_key(ec.SECP256R1())

        def sign(data):
            r, s = decode_dss_signature(
                key.sign(data, ec.ECDSA(hashes.SHA256())))
            return r.to_bytes(32, "big") + s.to_bytes(32, "big")

    elif alg == "EdDSA":
        key = ed25519.Ed25519PrivateKey.generate()
        sign = key.sign

    else:
        sys.exit("jwt_pool.py: ALG is RS256, ES256 or EdDSA, not %s" % alg)

    return key, sign


def main():
    if len(sys.argv) not in (2, 3):
        sys.exit("usage: jwt_pool.py ALG [COUNT]")

    alg = sys.argv[1]
    count = int(sys.argv[2]) if len(sys.argv) == 3 else 12000
    pool_dir = os.path.join(os.environ["BENCH_WORK"], "jwt-pool-" + alg)
    pool = os.path.join(pool_dir, "pool")

    if not os.path.exists(pool):
        os.makedirs(pool_dir, exist_ok=True)
        key, sign = make_key(alg)
        pem = key.public_key().public_bytes(
            serialization.Encoding.PEM,
            serialization.PublicFormat.SubjectPublicKeyInfo)
        with open(os.path.join(pool_dir, "pub.pem"), "wb") as f:
            f.write(pem)

        now = int(time.time())
        header = b64url(json.dumps({"alg": alg, "typ": "JWT"},
                                   separators=(",", ":")).encode())
        lines = []
        for i in range(count):
            claims = {"sub": "bench", "iss": "bench-issuer", "aud": "bench",
                      "jti": "%08d" % i, "iat": now, "exp": now + 86400}
            signing_input = header + "." + b64url(
                json.dumps(claims, separators=(",", ":")).encode())
            sig = b64url(sign(signing_input.encode()))
            lines.append("authorization: Bearer %s.%s\n"
                         % (signing_input, sig))
        with open(pool + ".tmp", "w") as f:
            f.writelines(lines)
        os.rename(pool + ".tmp", pool)

    scen = os.environ["BENCH_SCEN_DIR"]
    with open(os.path.join(scen, "pool"), "w") as f:
        f.write(pool + "\n")
    with open(os.path.join(scen, "vars"), "a") as f:
        f.write("POOL_DIR=%s\n" % pool_dir)


if __name__ == "__main__":
    main()
