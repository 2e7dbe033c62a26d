#!/usr/bin/python3
"""Concurrent gRPC calls for t/025: one thread and one HTTP/2 connection per
call, all started together.

Reads a JSON spec on stdin: {"port": N, "method": "/pkg.Svc/M",
"tokens": ["...", ...], "timeout": seconds}; makes one unary call per
token (authorization: Bearer TOKEN) and prints one JSON line:
{"codes": [grpc status code of each call, in order]}.
"""

import json
import sys
import threading

import grpc


def main():
    spec = json.load(sys.stdin)
    tokens = spec["tokens"]
    codes = [None] * len(tokens)
    start = threading.Barrier(len(tokens))

    def one(i):
        # a channel of its own, and so a connection of its own
        channel = grpc.insecure_channel(
            "127.0.0.1:%d" % spec["port"],
            options=[("grpc.use_local_subchannel_pool", 1)])
        try:
            grpc.channel_ready_future(channel).result(timeout=10)
            call = channel.unary_unary(spec["method"],
                                       request_serializer=lambda x: x,
                                       response_deserializer=lambda x: x)
            start.wait(timeout=20)
            try:
                call(b"ping", timeout=spec.get("timeout", 10),
                     metadata=[("authorization", "Bearer " + tokens[i])])
                codes[i] = 0
            except grpc.RpcError as e:
                codes[i] = e.code().value[0]
        except Exception as e:  # noqa: BLE001 (reported as -1)
            sys.stderr.write("calls.py: %r\n" % (e,))
            codes[i] = -1
        finally:
            channel.close()

    threads = [threading.Thread(target=one, args=(i,))
               for i in range(len(tokens))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)

    print(json.dumps({"codes": codes}))


if __name__ == "__main__":
    main()
