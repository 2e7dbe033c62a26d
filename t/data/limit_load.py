#!/usr/bin/python3
"""Steady load for the limiter tests (t/06*.t).

    limit_load.py '{"port": N, "rate": R, "duration": S[, "method": M]}'

Makes unary calls at R calls a second for S seconds on one grpcio channel
(which reconnects by itself, e.g. after an nginx reload), and prints one
JSON object: "sent", "codes" (count by grpc-status code), "errors" (calls
that got no grpc-status), "max_elapsed" (seconds, the slowest call).
"""

import json
import sys
import threading
import time

import grpc


def _ident(x):
    return x


def main():
    spec = json.loads(sys.argv[1])
    rate = float(spec["rate"])
    duration = float(spec["duration"])
    channel = grpc.insecure_channel("127.0.0.1:%d" % spec["port"])
    call = channel.unary_unary(spec.get("method", "/test.Limit/Call"),
                               request_serializer=_ident,
                               response_deserializer=_ident)

    lock = threading.Lock()
    codes = {}
    state = {"errors": 0, "max": 0.0, "pending": 0}
    done = threading.Condition(lock)

    def finished(fut, t0):
        elapsed = time.monotonic() - t0
        try:
            code = fut.code().value[0]
        except Exception:
            code = None
        with lock:
            if code is None:
                state["errors"] += 1
            else:
                codes[code] = codes.get(code, 0) + 1
            state["max"] = max(state["max"], elapsed)
            state["pending"] -= 1
            done.notify_all()

    n = int(rate * duration)
    start = time.monotonic()
    for i in range(n):
        delay = start + i / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        t0 = time.monotonic()
        with lock:
            state["pending"] += 1
        fut = call.future(b"ping", timeout=5)
        fut.add_done_callback(lambda f, t0=t0: finished(f, t0))

    with lock:
        deadline = time.monotonic() + 10
        while state["pending"] and time.monotonic() < deadline:
            done.wait(0.5)

    print(json.dumps({"sent": n, "codes": codes, "errors": state["errors"],
                      "max_elapsed": round(state["max"], 3)}))
    channel.close()


if __name__ == "__main__":
    main()
