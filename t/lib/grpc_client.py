#!/usr/bin/python3
"""gRPC test client for the ngx_http_grpc_guard_module test suite.

Reads a JSON call spec (an object, or an array of objects for several
calls made one after the other, each on its own channel unless it says
same_connection) from its first argument or, without arguments, from
stdin, and prints one JSON line: an object for an object spec, an array
for an array spec.

Spec keys: method (required, sent raw), type (unary | server_stream |
client_stream | bidi), host, port, metadata ([[k, v], ...]; values of
-bin keys are base64), timeout (seconds, client deadline; absent = none),
messages, payload, tls, ca, cert, key, server_name, cancel_after,
overall_timeout (hard bound for the whole call, default 10),
same_connection (true: the call goes on the channel, and so the HTTP/2
connection, of the call before it), sizes (request messages of these
many bytes, "3 3 5000" or a list: instead of messages x payload; unary
calls send the first), message_delay (seconds between the request
messages of client_stream and bidi calls).

Result keys: code, code_name, details, initial_metadata,
trailing_metadata, responses (text), responses_b64, error,
harness_timeout (true when overall_timeout cancelled the call), elapsed.
"""

import base64
import json
import sys
import threading
import time

import grpc


def _ident(x):
    return x


def _md_out(md):
    out = []
    for item in md or ():
        k, v = item[0], item[1]
        if isinstance(v, bytes):
            v = base64.b64encode(v).decode("ascii")
        out.append([k, v])
    return out


def _md_in(pairs):
    out = []
    for k, v in pairs or ():
        k = k.lower()
        if k.endswith("-bin"):
            s = v.strip()
            s += "=" * (-len(s) % 4)
            v = base64.b64decode(s.replace("-", "+").replace("_", "/"))
        out.append((k, v))
    return out


def _read(path):
    with open(path, "rb") as f:
        return f.read()


def _channel(spec):
    target = "%s:%s" % (spec.get("host") or "127.0.0.1", spec["port"])
    opts = [("grpc.enable_retries", 0),
            ("grpc.max_receive_message_length", 64 * 1024 * 1024)]
    if spec.get("tls"):
        ca = _read(spec["ca"]) if spec.get("ca") else None
        key = _read(spec["key"]) if spec.get("key") else None
        cert = _read(spec["cert"]) if spec.get("cert") else None
        creds = grpc.ssl_channel_credentials(ca, key, cert)
        if spec.get("server_name"):
            opts.append(("grpc.ssl_target_name_override",
                         spec["server_name"]))
            opts.append(("grpc.default_authority", spec["server_name"]))
        return grpc.secure_channel(target, creds, options=opts)
    return grpc.insecure_channel(target, options=opts)


def _sizes(spec):
    sizes = spec.get("sizes")
    if sizes in (None, ""):
        return None
    if isinstance(sizes, str):
        sizes = sizes.replace(",", " ").split()
    return [int(n) for n in sizes]


def _payloads(spec, n):
    sizes = _sizes(spec)
    if sizes is not None:
        return [b"x" * size for size in sizes]
    return [spec.get("payload", "ping").encode("utf-8")] * n


def _requests(spec, n):
    delay = float(spec.get("message_delay") or 0)
    for i, payload in enumerate(_payloads(spec, n)):
        if i and delay:
            time.sleep(delay)
        yield payload


def one_call(spec, channel=None):
    """Makes one call, on `channel` when given; returns (result, channel)."""
    res = {
        "code": None, "code_name": None, "details": None,
        "initial_metadata": [], "trailing_metadata": [],
        "responses": [], "responses_b64": [], "error": None,
        "harness_timeout": False,
    }
    started = time.monotonic()
    ctype = spec.get("type") or "unary"
    method = spec["method"]
    md = _md_in(spec.get("metadata"))
    timeout = spec.get("timeout")
    timeout = float(timeout) if timeout not in (None, "") else None
    overall = float(spec.get("overall_timeout") or 10)
    nmsg = int(spec.get("messages", 3))
    payload = _payloads(spec, 1)[0]

    if channel is None:
        channel = _channel(spec)
    call = None
    timers = []
    state = {"harness": False}
    try:
        kw = {"metadata": md or None, "timeout": timeout}
        if ctype == "unary":
            call = channel.unary_unary(
                method, request_serializer=_ident,
                response_deserializer=_ident).future(payload, **kw)
        elif ctype == "server_stream":
            call = channel.unary_stream(
                method, request_serializer=_ident,
                response_deserializer=_ident)(payload, **kw)
        elif ctype == "client_stream":
            call = channel.stream_unary(
                method, request_serializer=_ident,
                response_deserializer=_ident).future(
                    _requests(spec, nmsg), **kw)
        elif ctype == "bidi":
            call = channel.stream_stream(
                method, request_serializer=_ident,
                response_deserializer=_ident)(_requests(spec, nmsg), **kw)
        else:
            raise ValueError("unknown call type %r" % ctype)

        def harness_cancel():
            state["harness"] = True
            call.cancel()

        t = threading.Timer(overall, harness_cancel)
        t.daemon = True
        t.start()
        timers.append(t)
        if spec.get("cancel_after") not in (None, ""):
            t = threading.Timer(float(spec["cancel_after"]), call.cancel)
            t.daemon = True
            t.start()
            timers.append(t)

        responses = []
        try:
            if ctype in ("unary", "client_stream"):
                responses.append(call.result())
            else:
                for msg in call:
                    responses.append(msg)
        except grpc.RpcError:
            pass
        except grpc.FutureCancelledError:
            pass

        res["responses_b64"] = [base64.b64encode(r).decode("ascii")
                                for r in responses]
        res["responses"] = [r.decode("utf-8", "replace") for r in responses]
        code = call.code()
        res["code"] = code.value[0] if code is not None else None
        res["code_name"] = code.name if code is not None else None
        res["details"] = call.details() or ""
        try:
            res["initial_metadata"] = _md_out(call.initial_metadata())
        except Exception:
            res["initial_metadata"] = []
        try:
            res["trailing_metadata"] = _md_out(call.trailing_metadata())
        except Exception:
            res["trailing_metadata"] = []
    except Exception as e:  # a harness error, not a gRPC status
        res["error"] = "%s: %s" % (type(e).__name__, e)
    finally:
        for t in timers:
            t.cancel()
    res["harness_timeout"] = state["harness"]
    res["elapsed"] = round(time.monotonic() - started, 3)
    return res, channel


def run_all(specs):
    out = []
    channel = None
    for spec in specs:
        if channel is not None and not spec.get("same_connection"):
            channel.close()
            channel = None
        res, channel = one_call(spec, channel)
        out.append(res)
    if channel is not None:
        channel.close()
    return out


def main():
    raw = sys.argv[1] if len(sys.argv) > 1 else sys.stdin.read()
    spec = json.loads(raw)
    if isinstance(spec, list):
        out = run_all(spec)
    else:
        out = run_all([spec])[0]
    sys.stdout.write(json.dumps(out) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
