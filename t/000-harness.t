# Tests of the test harness itself (t/lib): plain nginx + grpc_pass to the
# test backend, without any grpc_guard directive (the module may be loaded
# through TEST_NGINX_LOAD_MODULES, but it is not turned on here).

use Test::Nginx::Socket::Grpc 'no_plan';

# an upstream-mTLS backend: TLS with upstream-server.crt, requires a client
# certificate signed by upstream-client-ca.crt
$ENV{TEST_NGINX_MTLS_BACKEND_PORT} = start_grpc_backend(mtls => 1);

run_tests();

__DATA__

=== TEST 1: unary call passes through grpc_pass unchanged
--- config
    location /pkg.Svc/ {
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call
method: /pkg.Svc/Echo
payload: hello
--- grpc_status: 0
--- grpc_responses: 1
--- grpc_response_like: "method": "/pkg.Svc/Echo".*"request_bytes": 5
--- upstream_calls: 1
--- upstream_method: /pkg.Svc/Echo
--- upstream_timeout: none
--- no_error_log
[error]
[warn]



=== TEST 2: server streaming, default and x-test-count messages
--- config
    location /pkg.Svc/ {
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call eval
["method: /pkg.Svc/ServerStreamTicks\ntype: server_stream",
 "method: /pkg.Svc/ServerStreamTicks\ntype: server_stream\nmetadata: x-test-count: 5"]
--- grpc_status: 0
--- grpc_responses eval
[3, 5]
--- grpc_response_like eval
[qr/"seq": 2\b.*\z/s, qr/"seq": 4\b/]
--- upstream_calls: 2
--- upstream_method: /pkg.Svc/ServerStreamTicks



=== TEST 3: client streaming
--- config
    location /pkg.Svc/ {
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call
method: /pkg.Svc/ClientStreamUpload
type: client_stream
messages: 4
payload: abcd
--- grpc_responses: 1
--- grpc_response_like: "count": 4\b.*"request_bytes": 16\b
--- upstream_calls: 1



=== TEST 4: bidi streaming echoes every message
--- config
    location /pkg.Svc/ {
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call
method: /pkg.Svc/BidiChat
type: bidi
messages: 2
payload: yo
--- grpc_responses: 2
--- grpc_response_like: ^\{"echo": "yo".*"seq": 0.*\{"echo": "yo".*"seq": 1
--- upstream_method: /pkg.Svc/BidiChat



=== TEST 5: the backend sees client metadata; grpc_set_header replaces
--- config
    location /pkg.Svc/ {
        grpc_set_header x-user from-nginx;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call
method: /pkg.Svc/Echo
metadata: x-custom: hello world
metadata: x-user: spoofed
metadata: x-trace-bin: AAECAw==
--- upstream_metadata
x-custom: hello world
x-user: from-nginx
x-trace-bin: AAECAw==
user-agent: ~^grpc-python/
!x-absent



=== TEST 6: the client deadline reaches the backend
--- config
    location /pkg.Svc/ {
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call
method: /pkg.Svc/Echo
timeout: 5
--- upstream_timeout: 4 5



=== TEST 7: raw grpc-timeout header (sent with curl)
--- config
    location /pkg.Svc/ {
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call
method: /pkg.Svc/Echo
raw_timeout_header: 20S
--- grpc_status: 0
--- grpc_responses: 1
--- upstream_timeout: 19 20



=== TEST 8: an upstream error passes through with code, message, metadata
--- config
    location /pkg.Svc/ {
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call
method: /pkg.Svc/Fail
metadata: x-test-status: 7
metadata: x-test-message: no access for you %E2%9C%97
metadata: x-test-trailer: x-reason=policy
metadata: x-test-header: x-early=1
--- grpc_status: 7
--- grpc_message: no access for you ✗
--- grpc_message_like: ^no access
--- grpc_trailers
x-reason: policy
!x-early
--- grpc_initial_metadata
x-early: 1
!x-reason
--- grpc_responses: 0
--- upstream_calls: 1



=== TEST 9: Trailers-Only from the upstream stays Trailers-Only
--- config
    location /pkg.Svc/ {
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call
method: /pkg.Svc/Gone
metadata: x-test-trailers-only: 1
metadata: x-test-status: 5
metadata: x-test-message: not here
--- grpc_status: NOT_FOUND
--- grpc_message: not here
--- request eval
"POST /pkg.Svc/Gone\n" . grpc_frame("ping")
--- more_headers
content-type: application/grpc
te: trailers
x-test-trailers-only: 1
x-test-status: 5
--- response_headers
content-type: application/grpc
grpc-status: 5
!grpc-message
--- response_body:
--- h2_frames_like
recv HEADERS frame <length=\d+, flags=0x05, stream_id=\d+>
^\s+; END_STREAM \| END_HEADERS$
--- h2_frames_unlike
recv DATA frame
--- upstream_calls: 3



=== TEST 10: health check answers SERVING
--- config
    location /grpc.health.v1.Health/ {
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call
method: /grpc.health.v1.Health/Check
--- grpc_response eval
"\x08\x01"



=== TEST 11: TLS listener with the generated certificates (client certs)
--- config
    listen 127.0.0.1:$TEST_NGINX_TLS_PORT ssl $TEST_NGINX_LISTEN_HTTP2;
    ssl_certificate $TEST_NGINX_CERT_DIR/server.crt;
    ssl_certificate_key $TEST_NGINX_CERT_DIR/server.key;
    ssl_client_certificate $TEST_NGINX_CERT_DIR/ca.crt;
    ssl_verify_client optional;

    location /pkg.Svc/ {
        grpc_set_header x-client-verify $ssl_client_verify;
        grpc_set_header x-client-dn $ssl_client_s_dn;
        grpc_set_header x-scheme $scheme;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call eval
["method: /pkg.Svc/Who\nport: \$TEST_NGINX_TLS_PORT\ntls: on\ncert: client-spiffe.crt\nkey: client-spiffe.key",
 "method: /pkg.Svc/Who\nport: \$TEST_NGINX_TLS_PORT\ntls: on\nserver_name: localhost",
 "method: /pkg.Svc/Who\nport: \$TEST_NGINX_TLS_PORT\ntls: on\ncert: untrusted.crt\nkey: untrusted.key"]
--- grpc_status eval
[0, 0, 13]
--- upstream_calls: 2
--- upstream_metadata eval
["x-client-verify: SUCCESS\nx-client-dn: CN=web,O=Example\nx-scheme: https",
 "x-client-verify: NONE\n!x-client-dn"]
--- error_log
client SSL certificate verify error



=== TEST 12: upstream mTLS backend (grpcs://, client certificate)
--- config
    location /pkg.Svc/ {
        grpc_ssl_certificate $TEST_NGINX_CERT_DIR/upstream-client.crt;
        grpc_ssl_certificate_key $TEST_NGINX_CERT_DIR/upstream-client.key;
        grpc_ssl_trusted_certificate $TEST_NGINX_CERT_DIR/upstream-ca.crt;
        grpc_ssl_verify on;
        grpc_ssl_name localhost;
        grpc_pass grpcs://127.0.0.1:$TEST_NGINX_MTLS_BACKEND_PORT;
    }
    location /nocert.Svc/ {
        # a resumed TLS session would carry the other location's client
        # authentication (both share the implicit upstream)
        grpc_ssl_session_reuse off;
        grpc_ssl_trusted_certificate $TEST_NGINX_CERT_DIR/upstream-ca.crt;
        grpc_ssl_verify on;
        grpc_ssl_name localhost;
        grpc_pass grpcs://127.0.0.1:$TEST_NGINX_MTLS_BACKEND_PORT;
    }
--- grpc_call eval
["method: /pkg.Svc/Secure", "method: /nocert.Svc/Secure"]
--- grpc_status eval
[0, 14]
--- upstream_port: $TEST_NGINX_MTLS_BACKEND_PORT
--- upstream_calls: 1
--- upstream_method: /pkg.Svc/Secure



=== TEST 13: unreachable upstream: 502 becomes UNAVAILABLE, logged
--- config
    location /pkg.Svc/ {
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_PORT3;
    }
--- grpc_call
method: /pkg.Svc/Echo
--- grpc_status: 14
--- upstream_calls: 0
--- error_log eval
[qr/\[error\] .*connect\(\) failed \(111: Connection refused\)/,
 "while connecting to upstream"]
--- grep_error_log eval: qr/connect\(\) failed \(\d+/
--- grep_error_log_out
connect() failed (111
--- no_error_log
[crit]



=== TEST 14: client deadline and client cancel
--- config
    location /pkg.Svc/ {
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call eval
["method: /pkg.Svc/Slow\ntimeout: 1\nmetadata: x-test-sleep: 3",
 "method: /pkg.Svc/Slow\ncancel_after: 1\nmetadata: x-test-sleep: 3"]
--- grpc_status eval
[4, 1]
--- upstream_timeout eval
["0 1", "none"]



=== TEST 15: plain HTTP request, headers, body, user_files, access log
--- config
    location = /hello {
        add_header X-Test yes;
        return 200 "hello\n";
    }
--- user_files
>>> data/a.txt
file A
--- request eval
["GET /hello", "GET /data/a.txt", "GET /missing"]
--- error_code eval
[200, 200, 404]
--- response_headers eval
["X-Test: yes\nContent-Type: text/plain", "!X-Test", "!X-Test"]
--- response_body_like eval
["^hello\n\\z", "^file A\n\\z", "404 Not Found"]
--- access_log
"GET /hello HTTP/2.0" 200
"GET /missing HTTP/2.0" 404



=== TEST 16: raw path and query reach the upstream unchanged
--- config
    location ~ ^/ {
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call eval
["method: //c.D/E", "method: /a.B/../c.D/E", "method: /c.D/E?x=1"]
--- upstream_method eval
["//c.D/E", "/a.B/../c.D/E", "/c.D/E?x=1"]
--- upstream_calls: 3



=== TEST 17: nginx must die on an unknown directive
--- config
    location / {
        grpc_guard_no_such_directive on;
    }
--- must_die
--- error_log
unknown directive "grpc_guard_no_such_directive"



=== TEST 18: nginx must die on a bad grpc_pass (exit code 1)
--- config
    location / {
        grpc_pass;
    }
--- must_die: 1
--- error_log eval
qr/invalid number of arguments in "grpc_pass" directive/



=== TEST 19: same_connection: a call on the HTTP/2 connection of the call before it
--- config
    location /pkg.Svc/ {
        grpc_set_header x-conn-requests $connection_requests;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call eval
["method: /pkg.Svc/A", "method: /pkg.Svc/B\nsame_connection: on",
 "method: /pkg.Svc/C\nsame_connection: on", "method: /pkg.Svc/D"]
--- upstream_calls: 4
--- upstream_metadata eval
["x-conn-requests: 1", "x-conn-requests: 2", "x-conn-requests: 3",
 "x-conn-requests: 1"]
