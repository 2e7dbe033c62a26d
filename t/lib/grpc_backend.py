#!/usr/bin/python3
"""gRPC test backend for the ngx_http_grpc_guard_module test suite.

Serves every method path with raw bytes (no protobuf, no .proto files) and
records every call it receives, so tests can check what reached the
upstream.  See t/lib/README.md for the protocol.

Call type by method name (last path segment):
  ServerStream*  -> unary_stream      ClientStream* -> stream_unary
  Bidi*, server reflection (v1, v1alpha) ServerReflectionInfo -> stream_stream
  everything else -> unary_unary
/grpc.health.v1.Health/Check answers HealthCheckResponse{status: SERVING}.

Control metadata sent by the client:
  x-test-status: N          abort with status N (after initial metadata)
  x-test-message: text      details for x-test-status (percent-decoded
                            first, so %C3%BC gives a non-ASCII message)
  x-test-trailers-only: 1   abort at once without initial metadata
                            (status x-test-status or 2), i.e. Trailers-Only
  x-test-sleep: S           sleep S seconds before replying
  x-test-trailer: k=v       add trailing metadata (repeatable)
  x-test-header: k=v        add initial metadata (repeatable)
  x-test-count: N           messages sent by server streams (default 3)
  x-test-log-messages: 1    append one line per request message, as it
                            arrives, to the record file + ".messages":
                            {"method", "peer", "seq", "size", "ts"}
"""

import argparse
import base64
import json
import os
import signal
import sys
import threading
import time
import urllib.parse
from concurrent import futures

import grpc

HEALTH_SERVING = b"\x08\x01"

REFLECTION = (
    "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
)

_record_lock = threading.Lock()
_record_fh = None
_messages_path = None


def _identity(x):
    return x


def _md_list(context):
    out = []
    for key, value in context.invocation_metadata() or ():
        if isinstance(value, bytes):
            value = base64.b64encode(value).decode("ascii")
        out.append([key, value])
    return out


def _md_get(context, name, default=None):
    for key, value in context.invocation_metadata() or ():
        if key == name:
            if isinstance(value, bytes):
                value = value.decode("latin-1")
            return value
    return default


def _md_all(context, name):
    vals = []
    for key, value in context.invocation_metadata() or ():
        if key == name:
            if isinstance(value, bytes):
                value = value.decode("latin-1")
            vals.append(value)
    return vals


def _pairs(values):
    out = []
    for v in values:
        if "=" in v:
            k, val = v.split("=", 1)
            out.append((k.strip().lower(), val.strip()))
    return out


def _record(entry):
    if _record_fh is None:
        return
    line = json.dumps(entry, sort_keys=True) + "\n"
    with _record_lock:
        _record_fh.write(line)
        _record_fh.flush()


def _log_message(call, seq, msg):
    """One line per request message, for the calls that ask for it."""
    if _messages_path is None or not call.log_messages:
        return
    line = json.dumps({"method": call.method, "peer": call.peer, "seq": seq,
                       "size": len(msg), "ts": time.time()},
                      sort_keys=True) + "\n"
    with _record_lock:
        with open(_messages_path, "a", encoding="utf-8") as f:
            f.write(line)


def _call_type(method):
    if method in REFLECTION:
        return "bidi"
    last = method.rsplit("/", 1)[-1]
    if last.startswith("ServerStream"):
        return "server_stream"
    if last.startswith("ClientStream"):
        return "client_stream"
    if last.startswith("Bidi"):
        return "bidi"
    if method == "/grpc.health.v1.Health/Watch":
        return "server_stream"
    return "unary"


class _Call(object):
    """Per-call state: what the backend saw at arrival."""

    def __init__(self, method, ctype, context):
        self.method = method
        self.ctype = ctype
        self.context = context
        remaining = context.time_remaining()
        # no deadline: grpc reports a huge number of seconds
        self.timeout = remaining if remaining is not None and \
            remaining < 1e9 else None
        self.metadata = _md_list(context)
        self.peer = context.peer()
        self.log_messages = bool(_md_get(context, "x-test-log-messages"))
        _record({
            "method": method,
            "type": ctype,
            "metadata": self.metadata,
            "timeout": self.timeout,
            "peer": self.peer,
            "ts": time.time(),
        })

    def doc(self, request_bytes, **extra):
        d = {
            "method": self.method,
            "metadata": self.metadata,
            "timeout": self.timeout,
            "request_bytes": request_bytes,
            "peer": self.peer,
        }
        d.update(extra)
        return json.dumps(d, sort_keys=True).encode("utf-8")

    def prologue(self):
        """Sleep, headers, trailers, Trailers-Only; then maybe abort."""
        ctx = self.context
        sleep = _md_get(ctx, "x-test-sleep")
        if sleep:
            end = time.monotonic() + float(sleep)
            while time.monotonic() < end and ctx.is_active():
                time.sleep(min(0.02, max(0.0, end - time.monotonic())))
        trailers = _pairs(_md_all(ctx, "x-test-trailer"))
        if trailers:
            ctx.set_trailing_metadata(tuple(trailers))
        status = _md_get(ctx, "x-test-status")
        message = urllib.parse.unquote(_md_get(ctx, "x-test-message", ""))
        if _md_get(ctx, "x-test-trailers-only"):
            code = _code(status if status else "2")
            ctx.abort(code, message)
        headers = _pairs(_md_all(ctx, "x-test-header"))
        if headers:
            ctx.send_initial_metadata(tuple(headers))
        if status and int(status) != 0:
            if not headers:
                # make sure this is not a Trailers-Only response
                ctx.send_initial_metadata(())
            # let the HEADERS frame go out on its own: queued together,
            # the transport may merge it with the status (Trailers-Only)
            time.sleep(0.05)
            ctx.abort(_code(status), message)


_CODES = {c.value[0]: c for c in grpc.StatusCode}


def _code(n):
    n = int(n)
    if n not in _CODES:
        return grpc.StatusCode.UNKNOWN
    return _CODES[n]


def _count(context, default=3):
    v = _md_get(context, "x-test-count")
    try:
        return int(v) if v is not None else default
    except ValueError:
        return default


def _handler_for(method):
    ctype = _call_type(method)

    if method == "/grpc.health.v1.Health/Check":
        def health(request, context):
            _Call(method, "unary", context).prologue()
            return HEALTH_SERVING
        return grpc.unary_unary_rpc_method_handler(
            health, request_deserializer=_identity,
            response_serializer=_identity)

    if ctype == "unary":
        def unary(request, context):
            c = _Call(method, ctype, context)
            _log_message(c, 0, request)
            c.prologue()
            return c.doc(len(request))
        return grpc.unary_unary_rpc_method_handler(
            unary, request_deserializer=_identity,
            response_serializer=_identity)

    if ctype == "server_stream":
        def server_stream(request, context):
            c = _Call(method, ctype, context)
            c.prologue()
            if method == "/grpc.health.v1.Health/Watch":
                yield HEALTH_SERVING
                return
            n = _count(context)
            for i in range(n):
                yield c.doc(len(request), seq=i)
        return grpc.unary_stream_rpc_method_handler(
            server_stream, request_deserializer=_identity,
            response_serializer=_identity)

    if ctype == "client_stream":
        def client_stream(request_iterator, context):
            c = _Call(method, ctype, context)
            n = 0
            total = 0
            for msg in request_iterator:
                _log_message(c, n, msg)
                n += 1
                total += len(msg)
            c.prologue()
            return c.doc(total, count=n)
        return grpc.stream_unary_rpc_method_handler(
            client_stream, request_deserializer=_identity,
            response_serializer=_identity)

    def bidi(request_iterator, context):
        c = _Call(method, "bidi", context)
        c.prologue()
        i = 0
        for msg in request_iterator:
            _log_message(c, i, msg)
            yield c.doc(len(msg), seq=i,
                        echo=msg.decode("utf-8", "replace"))
            i += 1
    return grpc.stream_stream_rpc_method_handler(
        bidi, request_deserializer=_identity,
        response_serializer=_identity)


class AnyMethod(grpc.GenericRpcHandler):
    def service(self, handler_call_details):
        return _handler_for(handler_call_details.method)


def _read(path):
    with open(path, "rb") as f:
        return f.read()


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file")
    ap.add_argument("--record")
    ap.add_argument("--tls-cert")
    ap.add_argument("--tls-key")
    ap.add_argument("--tls-client-ca")
    ap.add_argument("--workers", type=int, default=16)
    args = ap.parse_args()

    global _record_fh, _messages_path
    if args.record:
        _record_fh = open(args.record, "a", encoding="utf-8")
        _messages_path = args.record + ".messages"

    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=args.workers),
        handlers=(AnyMethod(),),
        options=(("grpc.so_reuseport", 0),),
    )
    addr = "%s:%d" % (args.host, args.port)
    if args.tls_cert:
        client_ca = _read(args.tls_client_ca) if args.tls_client_ca else None
        creds = grpc.ssl_server_credentials(
            ((_read(args.tls_key), _read(args.tls_cert)),),
            root_certificates=client_ca,
            require_client_auth=bool(client_ca))
        port = server.add_secure_port(addr, creds)
    else:
        port = server.add_insecure_port(addr)
    if not port:
        sys.stderr.write("grpc_backend: cannot listen on %s\n" % addr)
        sys.exit(1)
    server.start()

    done = threading.Event()

    def stop(signum, frame):
        done.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % port)
        os.rename(tmp, args.port_file)
    else:
        sys.stdout.write("%d\n" % port)
        sys.stdout.flush()

    # exit also when the parent (the harness) goes away
    parent = os.getppid()
    while not done.wait(0.5):
        if os.getppid() != parent:
            break
    server.stop(0.2).wait(1)
    os._exit(0)


if __name__ == "__main__":
    main()
