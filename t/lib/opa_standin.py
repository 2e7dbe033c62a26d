#!/usr/bin/python3
"""A stand-in for Open Policy Agent's REST Data API, for the tests of
grpc_guard_authz_request (OPA itself is not packaged here).

It answers as OPA's server does (https://www.openpolicyagent.org/docs/
latest/rest-api/#data-api):

  POST /v1/data/<path>   body {"input": <any>}  -> 200 {"result": <value>}
                         or 200 {} when the document at <path> is undefined;
                         a body that is not a JSON object with "input"
                         (not JSON, not an object, no "input"): 400
                         {"code": "invalid_parameter", "message": ...}
  GET  /v1/data/<path>   the same without input
  anything else          404 {"code": "resource_not_found", ...}
                         (other methods on /v1/data: 405)

The documents are small policies named in a JSON file (--policy), read on
every request so a test can change them between calls:

  {"grpc/authz": "admin_viewer",
   "grpc/authz_obj": "admin_viewer_object",
   "grpc/allow": "allow", "grpc/deny": "deny",
   "grpc/undefined": "undefined", "grpc/error": "error",
   "grpc/garbage": "garbage", "grpc/slow": "slow:3"}

  admin_viewer         true for input.roles holding "admin"; for "viewer"
                       true only for methods named Get* or List*; else false
  admin_viewer_object  the same as {"allow": bool, "reason": "..."}
  allow / deny         true / false
  undefined            the document is undefined: {}
  error                500 {"code": "internal_error", ...}
  garbage              200 with a body that is not JSON
  slow:S               sleeps S seconds, then answers as admin_viewer

Every request is appended to --log as one JSON line before it is answered:
{"method", "path", "headers": {lowercased name: value}, "body"}.

  opa_standin.py --port 0 --port-file F --policy P --log L
"""

import argparse
import json
import os
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


LOG_LOCK = threading.Lock()


def admin_viewer(inp):
    roles = []
    method = ''
    if isinstance(inp, dict):
        r = inp.get('roles')
        if isinstance(r, list):
            roles = [x for x in r if isinstance(x, str)]
        m = inp.get('method')
        if isinstance(m, str):
            method = m.rsplit('/', 1)[-1]
    if 'admin' in roles:
        return True, 'admin'
    if 'viewer' in roles:
        if method.startswith('Get') or method.startswith('List'):
            return True, 'viewer may read'
        return False, 'viewers may only call Get* and List*'
    return False, 'no role'


class Handler(BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'
    server_version = 'opa-standin/1'

    def log_message(self, fmt, *args):
        pass

    def reply(self, status, doc=None, raw=None):
        body = raw if raw is not None else json.dumps(doc).encode()
        self.send_response(status)
        self.send_header('Content-Type', 'application/json')
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def record(self, body):
        line = json.dumps({
            'method': self.command,
            'path': self.path,
            'headers': {k.lower(): v for k, v in self.headers.items()},
            'body': body.decode('utf-8', 'replace'),
            'ts': time.time(),
        })
        with LOG_LOCK:
            with open(self.server.log_file, 'a') as f:
                f.write(line + '\n')

    def policies(self):
        try:
            with open(self.server.policy_file) as f:
                return json.load(f)
        except (OSError, ValueError):
            return {}

    def handle_any(self):
        n = int(self.headers.get('Content-Length') or 0)
        body = self.rfile.read(n) if n > 0 else b''
        self.record(body)

        path = self.path.split('?', 1)[0]
        if not (path == '/v1/data' or path.startswith('/v1/data/')):
            return self.reply(404, {'code': 'resource_not_found',
                                    'message': 'page not found'})
        if self.command not in ('GET', 'POST'):
            return self.reply(405, {'code': 'method_not_allowed',
                                    'message': 'method not allowed'})

        inp = None
        if self.command == 'POST':
            try:
                doc = json.loads(body.decode('utf-8'))
            except (ValueError, UnicodeDecodeError) as e:
                return self.reply(400, {'code': 'invalid_parameter',
                                        'message': 'body: %s' % e})
            if not isinstance(doc, dict) or 'input' not in doc:
                return self.reply(400, {'code': 'invalid_parameter',
                                        'message': 'input missing'})
            inp = doc['input']

        name = path[len('/v1/data/'):].strip('/')
        policy = self.policies().get(name)

        if policy is None or policy == 'undefined':
            return self.reply(200, {})
        if policy == 'allow':
            return self.reply(200, {'result': True})
        if policy == 'deny':
            return self.reply(200, {'result': False})
        if policy == 'error':
            return self.reply(500, {'code': 'internal_error',
                                    'message': 'policy evaluation failed'})
        if policy == 'garbage':
            return self.reply(200, raw=b'<html>not json</html>')
        if policy.startswith('slow:'):
            time.sleep(float(policy[5:]))
            policy = 'admin_viewer'
        allowed, reason = admin_viewer(inp)
        if policy == 'admin_viewer':
            return self.reply(200, {'result': allowed})
        if policy == 'admin_viewer_object':
            return self.reply(200, {'result': {'allow': allowed,
                                               'reason': reason}})
        return self.reply(200, {})

    do_GET = handle_any
    do_POST = handle_any
    do_PUT = handle_any
    do_PATCH = handle_any
    do_DELETE = handle_any


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--host', default='127.0.0.1')
    ap.add_argument('--port', type=int, default=0)
    ap.add_argument('--port-file')
    ap.add_argument('--policy', required=True)
    ap.add_argument('--log', required=True)
    a = ap.parse_args()

    ThreadingHTTPServer.daemon_threads = True
    srv = ThreadingHTTPServer((a.host, a.port), Handler)
    srv.policy_file = a.policy
    srv.log_file = a.log

    if a.port_file:
        tmp = a.port_file + '.tmp'
        with open(tmp, 'w') as f:
            f.write(str(srv.server_address[1]))
        os.rename(tmp, a.port_file)

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))

    # exits when the test that started it goes away
    parent = os.getppid()

    def watch():
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(0)

    threading.Thread(target=watch, daemon=True).start()
    srv.serve_forever()


if __name__ == '__main__':
    main()
