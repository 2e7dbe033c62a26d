#!/usr/bin/python3
"""Makes the seed corpora of fuzz/corpus/<target>/ from the test suite.

  fuzz/make_corpus.py             every target
  fuzz/make_corpus.py jws redis_reply

Sources:
  jws, jwks     tokens and public keys made by t/lib/mkjwt.py in a temporary
                directory (its private keys stay there and are deleted); the
                "oct" JWK is a made-up secret that protects nothing
  apikey_line   the API-key files of t/040-api-key.t
  path          the methods and request lines of t/*.t
  grpc_timeout  the grpc-timeout values of t/*.t and grpc_guard_deadline's
  acl_rule      the grpc_guard_allow/deny lines of t/050-acl.t, per test,
                with a call
  redis_reply   RESP bytes captured from a redis-server started here on a
                loopback port: the handshake (AUTH error, SELECT, SCRIPT
                LOAD), the limiter script allowing and refusing, NOSCRIPT,
                RESP3 (HELLO 3)
  audit_json    the values of t/072-audit-escaping.t and other records
  redis_cluster CLUSTER SLOTS replies as Redis 7 writes them (three masters
                with replicas, a resharded map, IPv6, "?" and empty
                endpoints), -MOVED/-ASK redirections, keys with hash tags
  authz_reply   what OPA's Data API answers (t/lib/opa_standin.py's
                policies: booleans, {"allow", "reason"}, undefined, errors)
                and replies it never gives
  introspection_reply
                replies of the test OpenID provider (t/idp, started here on
                a loopback port when it is installed) to introspection of
                its opaque tokens: active, revoked, unknown; and the broken
                replies t/026-introspection.t makes it give

Seed files are named by the SHA-1 of their content, as libFuzzer does.
"""

import glob
import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(ROOT, "fuzz", "corpus")
MKJWT = os.path.join(ROOT, "t", "lib", "mkjwt.py")


def tests():
    for path in sorted(glob.glob(os.path.join(ROOT, "t", "*.t"))):
        with open(path, encoding="utf-8", errors="replace") as f:
            yield path, f.read()


def save(target, items, limit=48):
    d = os.path.join(CORPUS, target)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    seen = set()
    for item in items:
        if isinstance(item, str):
            item = item.encode()
        h = hashlib.sha1(item).hexdigest()
        if h in seen:
            continue
        seen.add(h)
        with open(os.path.join(d, h), "wb") as f:
            f.write(item)
        if len(seen) >= limit:
            break
    print("make_corpus: %-13s %d files" % (target, len(seen)))


# ---------------------------------------------------------------- jwt

def mkjwt(keys, spec):
    out = subprocess.run([sys.executable, MKJWT, "token", keys,
                          json.dumps(spec)], check=True,
                         capture_output=True, text=True)
    return out.stdout.strip()


def jwt_targets():
    keys = tempfile.mkdtemp(prefix="grpc-guard-fuzz-")
    try:
        subprocess.run([sys.executable, MKJWT, "keys", keys], check=True,
                       capture_output=True)
        ten_years = {"rel": 10 * 365 * 86400}
        claims = {"sub": "alice", "exp": ten_years, "scope": "read write"}
        specs = [
            {"key": "rsa", "kid": "rsa1", "claims": claims},
            {"key": "rsa", "alg": "PS256", "claims": claims},
            {"key": "ec256", "kid": "ec1", "claims": claims},
            {"key": "ec384", "kid": "ec384", "claims": claims},
            {"key": "ec521", "kid": "ec521", "claims": claims},
            {"key": "ed25519", "kid": "ed1", "claims": claims},
            {"key": "oct", "kid": "hs1", "claims": claims},
            {"key": "rsa", "header": {"typ": "at+jwt", "crit": []},
             "claims": {"sub": "bob", "aud": ["grpc-guard-tests", "x"],
                        "iss": "https://issuer.test", "nbf": {"rel": -10},
                        "iat": {"rel": -10}, "exp": {"rel": 600}}},
            {"key": "ec256", "claims": {"exp": {"rel": -3600}}},
            {"key": "ec256", "claims": {"sub": "a\u0001b", "exp": ten_years}},
            {"key": "rsa", "alg": "none", "claims": claims},
            {"key": "rsa", "header": {"crit": ["b64"]}, "claims": claims},
            {"key": "rsa", "header_raw": '{"alg":"RS256","alg":"RS256"}',
             "claims": claims},
            {"key": "rsa", "payload_raw": '{"sub":"x","exp":1e400}'},
            {"key": "rsa", "payload_raw": '[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]'},
            {"key": "ec256", "claims": claims, "sig": "der"},
            {"key": "ec256", "claims": claims, "sig": "zero"},
            {"key": "rsa", "claims": claims, "tamper": "plus"},
            {"key": "rsa", "claims": claims, "tamper": "pad"},
            {"key": "rsa", "claims": claims, "tamper": "bits"},
            {"key": "rsa", "claims": claims, "tamper": "trailing_dot"},
            {"key": "rsa", "claims": claims, "tamper": "insert"},
        ]
        tokens = []
        for i, spec in enumerate(specs):
            try:
                tok = mkjwt(keys, spec)
            except subprocess.CalledProcessError:
                continue
            # the first byte picks the location settings of the target
            tokens.append(bytes([i % 8]) + tok.encode())
        tokens.append(b"\x00a.b.c")
        tokens.append(b"\x01eyJhbGciOiJFUzI1NiJ9.e30.")
        save("jws", tokens)

        files = []
        for name in ["jwks.json", "rsa.pub", "rsa.pkcs1.pub", "rsa.crt",
                     "ec256.pub", "ec384.pub", "ec521.pub", "ed25519.pub"]:
            with open(os.path.join(keys, name), "rb") as f:
                files.append(f.read())
        with open(os.path.join(keys, "jwks.json")) as f:
            for jwk in json.load(f)["keys"]:
                files.append(json.dumps(jwk).encode())
        for path in sorted(glob.glob(os.path.join(keys, "bad-*"))):
            with open(path, "rb") as f:
                data = f.read()
            # the refused files with private key material are not kept
            if b"PRIVATE" in data or b'"d"' in data:
                continue
            files.append(data)
        fake = b"fuzz corpus: not a secret, protects nothing!!!"
        import base64
        k = base64.urlsafe_b64encode(fake).rstrip(b"=").decode()
        files.append(json.dumps({"keys": [
            {"kty": "oct", "kid": "hs-fuzz", "alg": "HS256", "k": k,
             "use": "sig", "key_ops": ["verify"]}]}).encode())
        files.append(json.dumps({"kty": "EC", "crv": "P-256",
                                 "x": "AA", "y": "AA"}).encode())
        save("jwks", files)
    finally:
        shutil.rmtree(keys, ignore_errors=True)


# ---------------------------------------------------------------- others

def apikey_line():
    sha = lambda s: hashlib.sha256(s.encode()).hexdigest()
    items = []
    for path, text in tests():
        if "040" not in path and "api_key_file" not in text:
            continue
        for m in re.finditer(r'"sha256:" \. (uc\()?sha256_hex\("([^"]*)"\)\)? '
                             r'\. "([^"]*)\\n"', text):
            h = sha(m.group(2))
            if m.group(1):
                h = h.upper()
            items.append("sha256:%s %s" % (h, m.group(3)))
    lines = list(dict.fromkeys(items))
    files = ["\n".join(lines) + "\n", "# clients of the API\n\n"]
    files += lines
    files += ["sha256:%s a r not_after=2030-02-28T23:59:60.5-05:30" % sha("x"),
              "2028-02-29T00:00:00Z", "1970-01-01T00:00:01z",
              "sha256:%s c  \t a,b,c\r" % sha("y")]
    save("apikey_line", files)


def path():
    items = []
    for _, text in tests():
        items += re.findall(r'^method: (\S+)', text, re.M)
        items += re.findall(r'^(?:POST|GET) (/\S*)', text, re.M)
        items += re.findall(r'path => \'([^\']*)\'', text)
    items += ["/pkg.Svc/Method", "/a/b", "//a/b", "/a/./b", "/a/../b",
              "/a.b/c?x=1", "/a%2eb/c", "/a..b/c", "/.a/b", "/a./b", "/a/b/"]
    save("path", sorted(set(items), key=len))


def grpc_timeout():
    items = []
    for _, text in tests():
        items += re.findall(r'grpc-timeout: ([^\s"\\]*)', text)
        items += re.findall(r'grpc_guard_deadline \w+ ([^;\s]*)', text)
    items += ["1H", "99999999H", "99999999n", "1u", "0m", "00000001S"]
    save("grpc_timeout", sorted(set(items)))


CALL = ("--\n/ledger.Ledger/GetBalance\nvictor\nhttps://issuer.test\n"
        "billing-app\nviewer,admin\nspiffe://example.org/ns/prod/sa/billing\n"
        "spiffe://example.org/ns/prod/sa/billing\nclient.example.org\n"
        "127.0.0.1\n"
        '{"scope":"read:ledger write:ledger","roles":["viewer"],"level":3,'
        '"staff":true,"scp":["write:ledger"]}')


def acl_rule():
    files = []
    for path_, text in tests():
        if "050" not in path_:
            continue
        for block in text.split("\n=== TEST")[1:]:
            rules = re.findall(r'grpc_guard_(allow|deny) ([^;]*);', block)
            if not rules:
                continue
            conf = "".join("%s %s\n" % r for r in rules)
            if "acl_mode dry_run" in block:
                conf = "dry_run\n" + conf
            files.append(conf + CALL)
            files.append(conf)
    files.append("allow /a.B/* san=*.example.org\n--\n/a.B/C\n\n\n\n\n\n"
                 "spiffe://x/y a/b\nw.example.org x.example.org\n::1\n{}")
    save("acl_rule", files)


def resp(sock, *args):
    out = b"*%d\r\n" % len(args)
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    sock.sendall(out)
    time.sleep(0.05)
    data = b""
    sock.settimeout(1)
    while True:
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            break
        if not chunk:
            break
        data += chunk
        sock.settimeout(0.1)
    return data


def limiter_script():
    with open(os.path.join(ROOT, "src", "ngx_http_grpc_guard_limit.c")) as f:
        src = f.read()
    body = src.split("ngx_http_grpc_guard_limit_script = ngx_string(", 1)[1]
    body = body.split(");", 1)[0]
    parts = re.findall(r'"((?:[^"\\]|\\.)*)"', body)
    return "".join(parts).encode().decode("unicode_escape").encode()


def redis_reply():
    server = shutil.which("redis-server")
    if server is None:
        print("make_corpus: redis_reply skipped: no redis-server")
        return
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    proc = subprocess.Popen([server, "--port", str(port), "--bind",
                             "127.0.0.1", "--save", "", "--appendonly", "no"],
                            stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        for _ in range(50):
            try:
                c = socket.create_connection(("127.0.0.1", port))
                break
            except OSError:
                time.sleep(0.1)
        script = limiter_script()
        auth = resp(c, "AUTH", "secret")           # an error: no password
        select = resp(c, "SELECT", "0")
        load = resp(c, "SCRIPT", "LOAD", script)
        sha = load.split(b"\r\n")[1]
        key = "grpc_guard:{limit}:calls:alice"
        allow = resp(c, "EVALSHA", sha, 1, key, 2, 60000)
        allow2 = resp(c, "EVALSHA", sha, 1, key, 2, 60000)
        refuse = resp(c, "EVALSHA", sha, 1, key, 2, 60000)
        two = resp(c, "EVALSHA", sha, 2, key, key + ":b", 5, 1000, 1, 1000)
        noscript = resp(c, "EVALSHA", "0" * 40, 1, key, 2, 60000)
        evalr = resp(c, "EVAL", script, 1, key + ":c", 2, 60000)
        ping = resp(c, "PING")
        wrongtype = resp(c, "LPUSH", key, "x")
        hello = resp(c, "HELLO", "3")
        resp3 = resp(c, "EVALSHA", sha, 1, key + ":d", 2, 60000)
        cfg = resp(c, "CONFIG", "GET", "maxmemory*")
        c.close()
    finally:
        proc.terminate()
        proc.wait()

    # [0] handshake bits, calls; [1] bytes per recv(); [2] limits
    def seed(flags, chunk, n, *replies):
        return bytes([flags, chunk, n]) + b"".join(replies)

    calls = lambda k: (k - 1) << 3
    files = [
        seed(0x07 | calls(1), 0, 0, b"+OK\r\n", select, load, allow),
        seed(0x06 | calls(2), 0, 0, select, load, allow, refuse),
        seed(0x01 | calls(1), 0, 0, auth, allow),
        seed(0x04 | calls(1), 0, 0, load.replace(sha[:8], b"deadbeef"), allow),
        seed(calls(3), 1, 0, allow, allow2, refuse),
        seed(calls(3) | 0x40, 7, 1, allow, refuse, two),
        seed(calls(2), 0, 1, noscript, evalr, allow),
        seed(calls(1) | 0x80, 0, 0, allow),
        seed(calls(1) | 0x80, 3, 0, allow[:7]),
        seed(calls(2), 0, 0, ping, wrongtype),
        seed(calls(2), 0, 0, hello, resp3),
        seed(calls(2), 5, 0, cfg, allow),
        seed(calls(1), 0, 15, b"*4\r\n:0\r\n:16\r\n:0\r\n:7200000\r\n"),
        seed(calls(1), 0, 0, b"*4\r\n:0\r\n:1\r\n:0\r\n:7200001\r\n"),
        seed(calls(1), 0, 0, b"*4\r\n:1\r\n:0\r\n:-1\r\n:0\r\n"),
        seed(calls(1), 0, 0,
             b"-READONLY You can't write against a read only replica.\r\n"),
        seed(calls(1), 0, 0, b"*4\r\n$1\r\n1\r\n:0\r\n:0\r\n:0\r\n"),
        seed(calls(1), 0, 0, b"*-1\r\n"),
        seed(calls(1), 0, 0, b"*2\r\n*4\r\n:1\r\n:0\r\n:0\r\n:0\r\n:1\r\n"),
        seed(calls(1), 0, 0, b"!21\r\nSYNTAX invalid syntax\r\n"),
        seed(calls(1), 0, 0, b"x\r\n"),
    ]
    save("redis_reply", files)


def audit_json():
    def rec(flags, *fields):
        return b"\x1e".join([bytes(flags)] + [
            f if isinstance(f, bytes) else f.encode() for f in fields])

    bad = b'a"b\\c\x00\x01\x1f\x7f\xff\xc3\xa9\xc0\xaf\xed\xa0\x80' \
          b'\xf4\x90\x80\x80\xe2\x82\xac\xf0\x9f\x98\x80\n\r\t'
    base = [0x01, 0, 50, 10, 3, 4, 5, 6]
    files = [
        rec(base, "/test.Echo/Unary", "localhost", "allow", "", "read",
            "", "jwt", "alice", "alice", "https://issuer.test"),
        rec([0x91, 0x80, 50, 10, 3, 4, 5, 6], "/test.Echo/Unary",
            "localhost:8080", "deny", "limit_exceeded", "", "per-client",
            "api_key", "billing", "", "", "billing", "", "", "127.0.0.1:50051",
            "10.0.0.2:50051", "8", b"\x7f\x00\x00\x01", "application/grpc"),
        rec([0x13, 0x35, 0, 0, 0, 0, 0, 0], "/test.Echo/Unary", bad, "deny",
            "jwt_malformed", bad, bad, "mtls", bad, bad, bad, bad,
            "spiffe://example.org/" + "x" * 600, "ab" * 40, bad, "",
            "13", b"\x20\x01\x0d\xb8" + b"\x00" * 12,
            "application/grpc-web-text+proto"),
        rec([0x00, 0, 0, 0, 0, 0, 0, 0], "/a b/%2e%2e/?x=" + "y" * 1100, bad),
        rec([0x28, 0, 0x7c, 0x01, 0, 0, 0, 0], "/test.Echo/Slow", "h"),
        rec([0x05, 0xff, 0xc8, 0, 0, 0, 0, 0], "", "", "", "", "", "", "",
            "", "", "", "", "", "", "", "", "", "", "application/grpc;x=1"),
        rec(base, "/t.E/U", "\u00e9" * 200, "allow", "", "\u20ac" * 180),
    ]
    for _, text in tests():
        for m in re.findall(r'method => \'([^\']*)\'', text):
            files.append(rec(base, m, "localhost"))
    save("audit_json", files, limit=24)


def xfcc():
    items = []
    for _, text in tests():
        for m in re.findall(r"x-forwarded-client-cert: ([^\n\"\]]+)", text):
            if "$" not in m:
                items.append(m.strip())
        for m in re.findall(r"main::call\('[^']*', '([^']*)'", text):
            items.append(m.replace('\\"', '"'))
    fp = "a" * 64
    items += [
        'By=spiffe://prod.example/ns/edge/sa/gateway;Hash=' + fp +
        ';Subject="CN=web,OU=a;b,O=Example";'
        'URI=spiffe://prod.example/ns/shop/sa/web;DNS=web.shop.svc;'
        'DNS=web.example.org',
        'By=spiffe://a/b;URI=spiffe://a/c,By=spiffe://c/d;Hash=' + fp +
        ';URI=spiffe://x/y;URI=https://x.example/',
        'Subject="CN=say \\"hi\\",OU=x=y;z,O=Example";URI=;DNS=',
        'URI=spiffe://a/b;Subject="x"y', 'Subject="a', "=", "URI",
        "DNS=a.example;DNS=b.example", "Hash=" + fp.upper(),
        ",".join(["URI=spiffe://e/%d" % i for i in range(17)]),
    ]
    save("xfcc", items)


def grpc_message():
    import base64
    import struct

    def frame(n, flag=0, fill=b"x"):
        return struct.pack(">BI", flag, n) + fill * n

    def seed(text, cut, limit, body):
        if text:
            body = base64.b64encode(body)
        return bytes([text | (cut << 1) & 0xfe, cut >> 7 & 0xff]) + \
            struct.pack(">I", limit)[1:] + body

    items = []
    for text in (0, 1):
        for cut in (0, 3, 77, 200):
            items.append(seed(text, cut, 1024, frame(10) + frame(20)))
            items.append(seed(text, cut, 1024, frame(10) + frame(2000)))
            items.append(seed(text, cut, 16, frame(16) + frame(17)))
            items.append(seed(text, cut, 0xffffff,
                              frame(0) + frame(3, 1) + frame(100)))
    # padded base64 chunks, one after the other, as clients send them
    chunks = b"".join(base64.b64encode(frame(n)) for n in (1, 758, 2))
    items.append(bytes([1, 9]) + struct.pack(">I", 1024)[1:] + chunks)
    items.append(bytes([1, 9]) + struct.pack(">I", 1024)[1:] + b"AAAAAAF4*AA")
    items.append(bytes([0, 0]) + struct.pack(">I", 4194304)[1:]
                 + struct.pack(">BI", 0, 4194305))
    save("grpc_message", items)


def redis_cluster():
    def bulk(b):
        b = b.encode() if isinstance(b, str) else b
        return b"$%d\r\n%s\r\n" % (len(b), b)

    def node(ip, port, meta=b"*0\r\n"):
        return (b"*4\r\n" + bulk(ip) + b":%d\r\n" % port
                + bulk("%040x" % port) + meta)

    def rng(start, end, *nodes):
        return (b"*%d\r\n:%d\r\n:%d\r\n" % (2 + len(nodes), start, end)
                + b"".join(nodes))

    def arr(*items):
        return b"*%d\r\n" % len(items) + b"".join(items)

    items = [
        arr(rng(0, 5460, node("127.0.0.1", 7000), node("127.0.0.1", 7003)),
            rng(5461, 10922, node("127.0.0.1", 7001),
                node("127.0.0.1", 7004)),
            rng(10923, 16383, node("127.0.0.1", 7002),
                node("127.0.0.1", 7005))),
        arr(rng(0, 99, node("127.0.0.1", 7001)),
            rng(100, 5460, node("127.0.0.1", 7000)),
            rng(5461, 5461, node("127.0.0.1", 7002)),
            rng(5462, 16383, node("127.0.0.1", 7001))),
        arr(rng(0, 16383, node("::1", 6379))),
        arr(rng(0, 8191, node("?", 6379)), rng(8192, 16383, node("", 6380))),
        arr(rng(0, 16383, node("10.0.0.1", 6379,
                               b"*2\r\n" + bulk("hostname")
                               + bulk("redis-0.example")))),
        arr(rng(16383, 0, node("127.0.0.1", 1))),
        arr(rng(0, 16384, node("127.0.0.1", 65536))),
        b"*0\r\n",
        b"-MOVED 3999 127.0.0.1:6381\r\n",
        b"-ASK 3999 127.0.0.1:6381\r\n",
        b"-MOVED 16383 [::1]:7000\r\n",
        b"-MOVED 1 ::1:7000\r\n",
        b"-ASK 16384 127.0.0.1:6381\r\n",
        b"-MOVED 12 :6379\r\n",
        b"-CLUSTERDOWN The cluster is down\r\n",
        b"-TRYAGAIN Multiple keys request during rehashing of slot\r\n",
        b"-ERR Script attempted to access a non local key in a cluster "
        b"node script: 0123456789abcdef0123456789abcdef01234567, on "
        b"@user_script:12.\r\n",
        bulk("grpc_guard:{ip:60s:127.0.0.1}"),
        bulk("grpc_guard:{limit}:ip:60s:127.0.0.1"),
        bulk("{}x{y}"),
        bulk("{{a}}"),
    ]
    save("redis_cluster", items)


# ---------------------------------------------------------------- authz

def authz_reply():
    # JSON text: the escapes are the reply's, not Python's
    reasons = ["viewers may only call Get* and List*", "no role", "",
               r"caf\u00e9 \u2713", r"tab\there", "x" * 300,
               r"\u00e9" * 200, r"\ud83d\ude00" * 70]
    items = ['{"result": true}', '{"result": false}', '{}',
             '{"result": null}', '{"result": 1}', '{"result": "true"}',
             '{"result": []}', '{"result": {}}',
             '{"result": {"allow": true}}', '{"result": {"allow": false}}',
             '{"result": {"allow": "true"}}', '{"result": {"allow": 1}}',
             '{"result": true, "result": false}',
             '{"decision_id": "d1", "result": true}',
             '{"result": {"allow": true, "reason": "admin"}}',
             '{"code": "internal_error", "message": "policy failed"}',
             '{"result": {"allow": false, "reason": 7}}',
             '[{"result": true}]', 'true', '"result"', '',
             '<html>not json</html>', '{"result": true} trailing',
             '{"result": {"allow": {"allow": true}}}',
             '{"result": tru',
             r'{"result": {"allow": false, "reason": "\u0000x"}}']
    for r in reasons:
        items.append('{"result": {"allow": false, "reason": "%s"}}' % r)
        items.append('{"result": {"reason": "%s", "allow": true}}' % r)
    save("authz_reply", items)


# -------------------------------------------------------- introspection

def introspection_reply():
    import base64
    import urllib.request

    idp = os.path.join(ROOT, "t", "idp")
    items = []

    def seed(body, flags=0x29):
        # status 200, cache 150 s, negative_cache 5 s; flags & 7 == 0: 503
        return bytes([flags]) + body

    def post(port, path, user, fields):
        req = urllib.request.Request(
            "http://127.0.0.1:%d%s" % (port, path),
            data=urllib.parse.urlencode(fields).encode(),
            headers={"Authorization": "Basic " + base64.b64encode(
                user.encode()).decode()})
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.read()

    if os.path.isdir(os.path.join(idp, "node_modules", "oidc-provider")):
        import urllib.parse
        tmp = tempfile.mkdtemp()
        try:
            key = subprocess.check_output(
                ["node", os.path.join(idp, "server.mjs"), "--genkey", "k1"])
            keys = os.path.join(tmp, "keys.json")
            with open(keys, "wb") as f:
                f.write(b'{"keys": [' + key.strip() + b"]}")
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
            s.close()
            proc = subprocess.Popen(
                ["node", os.path.join(idp, "server.mjs"), str(port), keys,
                 os.path.join(tmp, "log")],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                for _ in range(100):
                    try:
                        socket.create_connection(("127.0.0.1", port), 1).close()
                        break
                    except OSError:
                        time.sleep(0.1)
                for scope in ("api:read", "api:read api:write"):
                    tok = json.loads(post(
                        port, "/token", "opaque:opaque-secret",
                        {"grant_type": "client_credentials",
                         "scope": scope}))["access_token"]
                    body = post(port, "/token/introspection", "rs:rs-secret",
                                {"token": tok,
                                 "token_type_hint": "access_token"})
                    items.append(seed(body))
                    items.append(seed(body, 0x01))
                    items.append(seed(body, 0x28))
                    post(port, "/token/revocation", "opaque:opaque-secret",
                         {"token": tok})
                    items.append(seed(post(
                        port, "/token/introspection", "rs:rs-secret",
                        {"token": tok})))
                items.append(seed(post(port, "/token/introspection",
                                       "rs:rs-secret", {"token": "unknown"})))
            finally:
                proc.terminate()
                proc.wait()
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    # what other providers send, and what t/026 makes the provider send
    items += [seed(b) for b in (
        b'{"active":true,"sub":"user-1","client_id":"app","exp":4102444800,'
        b'"iat":1700000000,"nbf":1700000000,"iss":"https://idp.example/realms/'
        b'prod","aud":["orders-api","account"],"scope":"openid orders:read",'
        b'"username":"alice","token_type":"Bearer","jti":"a1"}',
        b'{"active":true,"client_id":"app","exp":1000}',
        b'{"active":false}',
        b'{"active": "true", "client_id": "opaque"}',
        b'{"active":true,"sub":"a\u0000b"}',
        b'{"active":true,"aud":[1]}',
        b'{"active":true,"active":false}',
        b'{"keys": [{"kty": "RSA", "n": ',
        b'<html><body><h1>Service temporarily unavailable</h1></body></html>\n',
        b'{"error": "unavailable"}',
        b'[true]',
    )]
    items.append(seed(b'{"active":true}', 0x00))
    save("introspection_reply", items)


TARGETS = {
    "authz_reply": authz_reply,
    "jws": jwt_targets, "jwks": jwt_targets, "apikey_line": apikey_line,
    "path": path, "grpc_timeout": grpc_timeout, "acl_rule": acl_rule,
    "redis_reply": redis_reply, "audit_json": audit_json, "xfcc": xfcc,
    "grpc_message": grpc_message, "redis_cluster": redis_cluster,
    "grpc_message": grpc_message,
    "introspection_reply": introspection_reply,
}


def main():
    names = sys.argv[1:] or list(TARGETS)
    done = set()
    for n in names:
        f = TARGETS[n]
        if f not in done:
            f()
            done.add(f)


if __name__ == "__main__":
    main()
