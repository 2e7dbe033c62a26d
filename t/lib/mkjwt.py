#!/usr/bin/python3
"""Keys and JSON Web Tokens for the JWT tests of ngx_http_grpc_guard_module.

Everything is made at test time with python3-cryptography; no private key
is ever committed.  Tokens are built by hand (not with a JWT library) so
that tests can make them wrong in exactly one way.

  mkjwt.py keys DIR
      Makes DIR/{rsa,rsa2,rsa1024,ec256,ec384,ec521,ed25519}.key (private
      PEM), .pub (public PEM), rsa.crt (self-signed certificate),
      rsa.pkcs1.pub ("RSA PUBLIC KEY"), oct.secret (64 random bytes), and
      JWK sets: jwks.json (rsa "rsa1", rsa2 "rsa2", ec256 "ec1", ec384
      "ec384", ec521 "ec521", ed25519 "ed1"), oct.json ("hs1", 64-byte
      secret), plus broken key files bad-*.json / bad-*.pem for the
      `nginx -t` tests.  Existing keys are kept (idempotent).

  mkjwt.py token DIR SPEC_JSON
      Prints one compact token.  SPEC keys:
        key       key name in DIR (rsa, ec256, ed25519, oct, ...)
        alg       "alg" written in the header (default from the key)
        sign_alg  algorithm actually used to sign (default: alg)
        kid       "kid" (default none; null = none)
        header    extra/overriding header members (object)
        header_raw  the header JSON text, verbatim (duplicates possible)
        claims    payload claims (object); "exp"/"nbf"/"iat" given as
                  {"rel": N} are now+N
        payload_raw the payload JSON text, verbatim
        hmac_key  "pub:NAME": HMAC with the bytes of NAME.pub (confusion)
        sig       "empty", "zero", "der" (ECDSA as DER), "garbage"
        tamper    "insert" (byte inserted in the signature), "plus"
                  (+/ alphabet), "pad" (= padding), "trailing_dot",
                  "bits" (non-zero trailing bits), "payload"
                  (payload changed after signing)
        pad_to    make the token at least this long (junk claim)

  mkjwt.py batch DIR SPECS_JSON
      SPECS_JSON is an object name -> SPEC; prints an object name -> token.
"""

import base64
import datetime
import json
import os
import sys
import time

from cryptography import x509
from cryptography.hazmat.primitives import hashes, hmac, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature)
from cryptography.x509.oid import NameOID

HASHES = {"256": hashes.SHA256, "384": hashes.SHA384, "512": hashes.SHA512}
EC_SIZE = {"ES256": 32, "ES384": 48, "ES512": 66}
DEFAULT_ALG = {"rsa": "RS256", "rsa2": "RS256", "rsa1024": "RS256",
               "ec256": "ES256", "ec384": "ES384", "ec521": "ES512",
               "ed25519": "EdDSA", "oct": "HS256"}


def b64u(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64u_int(n, size=None):
    if size is None:
        size = (n.bit_length() + 7) // 8
    return b64u(n.to_bytes(size, "big"))


def _write(path, data, mode=0o644):
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def _pem_private(key):
    return key.private_bytes(serialization.Encoding.PEM,
                             serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _pem_public(key):
    return key.public_key().public_bytes(
        serialization.Encoding.PEM,
        serialization.PublicFormat.SubjectPublicKeyInfo)


def load_private(d, name):
    with open(os.path.join(d, name + ".key"), "rb") as f:
        return serialization.load_pem_private_key(f.read(), None)


def jwk_of(key, kid=None, alg=None):
    pub = key.public_key()
    if isinstance(pub, rsa.RSAPublicKey):
        nums = pub.public_numbers()
        jwk = {"kty": "RSA", "n": b64u_int(nums.n), "e": b64u_int(nums.e)}
    elif isinstance(pub, ec.EllipticCurvePublicKey):
        nums = pub.public_numbers()
        crv, size = {"secp256r1": ("P-256", 32), "secp384r1": ("P-384", 48),
                     "secp521r1": ("P-521", 66)}[pub.curve.name]
        jwk = {"kty": "EC", "crv": crv, "x": b64u_int(nums.x, size),
               "y": b64u_int(nums.y, size)}
    else:
        raw = pub.public_bytes(serialization.Encoding.Raw,
                               serialization.PublicFormat.Raw)
        jwk = {"kty": "OKP", "crv": "Ed25519", "x": b64u(raw)}
    if kid is not None:
        jwk["kid"] = kid
    if alg is not None:
        jwk["alg"] = alg
    jwk["use"] = "sig"
    return jwk


def make_keys(d):
    os.makedirs(d, exist_ok=True)
    makers = {
        "rsa": lambda: rsa.generate_private_key(65537, 2048),
        "rsa2": lambda: rsa.generate_private_key(65537, 2048),
        "rsa1024": lambda: rsa.generate_private_key(65537, 1024),
        "ec256": lambda: ec.generate_private_key(ec.SECP256R1()),
        "ec384": lambda: ec.generate_private_key(ec.SECP384R1()),
        "ec521": lambda: ec.generate_private_key(ec.SECP521R1()),
        "ed25519": ed25519.Ed25519PrivateKey.generate,
    }
    keys = {}
    for name, make in makers.items():
        path = os.path.join(d, name + ".key")
        if not os.path.exists(path):
            k = make()
            _write(os.path.join(d, name + ".pub"), _pem_public(k))
            _write(path, _pem_private(k), 0o600)
        keys[name] = load_private(d, name)

    rsa_key = keys["rsa"]
    _write(os.path.join(d, "rsa.pkcs1.pub"),
           rsa_key.public_key().public_bytes(
               serialization.Encoding.PEM,
               serialization.PublicFormat.PKCS1))

    if not os.path.exists(os.path.join(d, "rsa.crt")):
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME,
                                             "jwt test issuer")])
        now = datetime.datetime.utcnow()
        cert = (x509.CertificateBuilder().subject_name(name)
                .issuer_name(name).public_key(rsa_key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(days=1))
                .not_valid_after(now + datetime.timedelta(days=3650))
                .sign(rsa_key, hashes.SHA256()))
        _write(os.path.join(d, "rsa.crt"),
               cert.public_bytes(serialization.Encoding.PEM))

    secret_path = os.path.join(d, "oct.secret")
    if not os.path.exists(secret_path):
        _write(secret_path, os.urandom(64), 0o600)
    with open(secret_path, "rb") as f:
        secret = f.read()

    jwks = {"keys": [
        jwk_of(keys["rsa"], "rsa1"),
        jwk_of(keys["rsa2"], "rsa2"),
        jwk_of(keys["ec256"], "ec1"),
        jwk_of(keys["ec384"], "ec384"),
        jwk_of(keys["ec521"], "ec521"),
        jwk_of(keys["ed25519"], "ed1"),
    ]}
    _write(os.path.join(d, "jwks.json"), json.dumps(jwks, indent=1).encode())
    _write(os.path.join(d, "oct.json"), json.dumps({"keys": [
        {"kty": "oct", "kid": "hs1", "k": b64u(secret)}]}).encode(), 0o600)

    # broken key files, each refused by `nginx -t`
    rsa_jwk = jwk_of(keys["rsa"], "rsa1")
    bad = {
        "bad-rsa1024.json": {"keys": [jwk_of(keys["rsa1024"], "small")]},
        "bad-enc.json": {"keys": [dict(rsa_jwk, use="enc")]},
        "bad-private.json": {"keys": [dict(
            rsa_jwk, d=b64u_int(keys["rsa"].private_numbers().d))]},
        "bad-crv.json": {"keys": [dict(jwk_of(keys["ec256"], "ec1"),
                                       crv="P-384")]},
        "bad-alg.json": {"keys": [dict(rsa_jwk, alg="ES256")]},
        "bad-kty.json": {"keys": [{"kty": "XYZ", "kid": "x"}]},
        "bad-b64.json": {"keys": [dict(rsa_jwk, n=rsa_jwk["n"] + "==")]},
        "bad-short-oct.json": {"keys": [{"kty": "oct", "k": b64u(b"x" * 16)}]},
    }
    for fname, content in bad.items():
        _write(os.path.join(d, fname), json.dumps(content).encode())
    _write(os.path.join(d, "bad-dup.json"),
           b'{"keys": [{"kty": "OKP", "crv": "Ed25519", "crv": "Ed25519",'
           b' "x": "' + jwk_of(keys["ed25519"])["x"].encode() + b'"}]}')
    _write(os.path.join(d, "bad-private.pem"), _pem_private(keys["rsa"]))
    _write(os.path.join(d, "bad-rsa1024.pem"), _pem_public(keys["rsa1024"]))
    _write(os.path.join(d, "bad-garbage.pem"),
           b"-----BEGIN PUBLIC KEY-----\nbm90IGEga2V5\n"
           b"-----END PUBLIC KEY-----\n")
    _write(os.path.join(d, "bad-empty.json"), b'{"keys": []}')
    _write(os.path.join(d, "bad-json.json"), b'{"keys": [')


def _sign(d, key_name, alg, data, spec):
    if spec.get("hmac_key"):
        kind, name = spec["hmac_key"].split(":", 1)
        with open(os.path.join(d, name + (".pub" if kind == "pub" else "")),
                  "rb") as f:
            secret = f.read()
    elif alg.startswith("HS"):
        with open(os.path.join(d, "oct.secret"), "rb") as f:
            secret = f.read()
    else:
        secret = None

    if alg.startswith("HS"):
        h = hmac.HMAC(secret, HASHES[alg[2:]]())
        h.update(data)
        return h.finalize()

    key = load_private(d, key_name)
    if alg.startswith("RS"):
        return key.sign(data, padding.PKCS1v15(), HASHES[alg[2:]]())
    if alg.startswith("PS"):
        hm = HASHES[alg[2:]]
        return key.sign(data, padding.PSS(padding.MGF1(hm()),
                                          hm.digest_size), hm())
    if alg.startswith("ES"):
        der = key.sign(data, ec.ECDSA(HASHES[alg[2:]]()))
        if spec.get("sig") == "der":
            return der
        r, s = decode_dss_signature(der)
        size = EC_SIZE[alg]
        return r.to_bytes(size, "big") + s.to_bytes(size, "big")
    if alg == "EdDSA":
        return key.sign(data)
    raise SystemExit("mkjwt: cannot sign with %r" % alg)


def _dates(claims):
    now = int(time.time())
    out = {}
    for k, v in claims.items():
        if isinstance(v, dict) and set(v) == {"rel"}:
            v = now + v["rel"]
        out[k] = v
    return out


def make_token(d, spec):
    key_name = spec.get("key", "rsa")
    alg = spec.get("alg", DEFAULT_ALG.get(key_name, "RS256"))
    sign_alg = spec.get("sign_alg", alg)

    if "header_raw" in spec:
        header_json = spec["header_raw"]
    else:
        header = {"alg": alg, "typ": "JWT"}
        if spec.get("kid") is not None:
            header["kid"] = spec["kid"]
        header.update(spec.get("header", {}))
        header = {k: v for k, v in header.items() if v is not None}
        header_json = json.dumps(header, separators=(",", ":"))

    if "payload_raw" in spec:
        payload_json = spec["payload_raw"]
    else:
        claims = {"sub": "alice", "iss": "https://issuer.test",
                  "aud": "grpc-guard-tests", "iat": {"rel": 0},
                  "exp": {"rel": 3600}}
        claims.update(spec.get("claims", {}))
        claims = {k: v for k, v in _dates(claims).items() if v is not None}
        if spec.get("pad_to"):
            claims["junk"] = ""
            base = len(json.dumps(claims))
            claims["junk"] = "x" * max(0, spec["pad_to"] * 3 // 4 - base)
        payload_json = json.dumps(claims, separators=(",", ":"))

    signing_input = (b64u(header_json.encode()) + "." +
                     b64u(payload_json.encode()))

    if sign_alg == "none" or spec.get("sig") == "empty":
        sig = b""
    elif spec.get("sig") == "zero":
        sig = b"\0" * (2 * EC_SIZE.get(sign_alg, 32))
    elif spec.get("sig") == "garbage":
        sig = os.urandom(64)
    else:
        sig = _sign(d, key_name, sign_alg, signing_input.encode(), spec)

    sig64 = b64u(sig)
    tamper = spec.get("tamper")
    if tamper == "insert":
        sig64 = sig64[:10] + "A" + sig64[10:]
    elif tamper == "plus":
        sig64 = base64.b64encode(sig).rstrip(b"=").decode()
        if "+" not in sig64 and "/" not in sig64:
            sig64 = sig64[:-2] + "+" + sig64[-1:]
    elif tamper == "pad":
        sig64 = base64.urlsafe_b64encode(sig).decode()
        if not sig64.endswith("="):
            sig64 += "=="
    elif tamper == "bits":
        # the last character carries bits beyond the data: set them
        alphabet = ("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                    "0123456789-_")
        i = alphabet.index(sig64[-1])
        sig64 = sig64[:-1] + alphabet[i | (0x0f if len(sig64) % 4 == 2
                                           else 0x03)]
    token = signing_input + "." + sig64
    if tamper == "trailing_dot":
        token += "."
    elif tamper == "payload":
        parts = token.split(".")
        claims = json.loads(base64.urlsafe_b64decode(
            parts[1] + "=" * (-len(parts[1]) % 4)))
        claims["sub"] = "mallory"
        parts[1] = b64u(json.dumps(claims, separators=(",", ":")).encode())
        token = ".".join(parts)
    return token


def main(argv):
    if len(argv) >= 2 and argv[0] == "keys":
        make_keys(argv[1])
        return 0
    if len(argv) >= 3 and argv[0] == "token":
        print(make_token(argv[1], json.loads(argv[2])))
        return 0
    if len(argv) >= 3 and argv[0] == "batch":
        specs = json.loads(argv[2])
        print(json.dumps({k: make_token(argv[1], v)
                          for k, v in specs.items()}))
        return 0
    sys.stderr.write(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
