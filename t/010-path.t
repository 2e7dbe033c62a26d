# The method comes from the raw :path.  nginx normalises $uri for location
# matching but forwards the raw path upstream, so anything that is not
# "/<service>/<method>" in canonical form is refused with 12 before anything
# else and never reaches the upstream.

use Test::Nginx::Socket::Grpc 'no_plan';

no_shuffle();
no_root_location();
run_tests();

__DATA__

=== TEST 1: a canonical unary call passes unchanged
--- config
    location / {
        grpc_guard on;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call
method: /test.Echo/Unary
metadata: x-custom: hello
--- grpc_status: 0
--- grpc_responses: 1
--- upstream_calls: 1
--- upstream_method: /test.Echo/Unary
--- upstream_metadata
x-custom: hello
--- no_error_log
grpc guard: refused



=== TEST 2: dot-dot segment in the raw path: 12, never upstream
--- config
    location /a.B/ {
        grpc_guard on;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
    location /c.D/ {
        grpc_guard on;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call
method: /a.B/../c.D/E
--- grpc_status: 12
--- grpc_message: unimplemented
--- upstream_calls: 0
--- error_log
grpc guard: refused with 12: path_not_canonical



=== TEST 3: double slash: 12
--- config
    location / {
        grpc_guard on;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call
method: //c.D/E
--- grpc_status: 12
--- grpc_message: unimplemented
--- upstream_calls: 0



=== TEST 4: single-dot segment: 12
--- config
    location / {
        grpc_guard on;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call
method: /c.D/./E
--- grpc_status: 12
--- upstream_calls: 0



=== TEST 5: three segments: 12
--- config
    location / {
        grpc_guard on;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call
method: /c.D/E/F
--- grpc_status: 12
--- upstream_calls: 0



=== TEST 6: percent-encoded dots: 12
--- config
    location / {
        grpc_guard on;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call
method: /a.B/%2e%2e/c.D/E
--- grpc_status: 12
--- upstream_calls: 0



=== TEST 7: percent-encoded letter in the method: 12
--- config
    location / {
        grpc_guard on;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call
method: /c.D/%45
--- grpc_status: 12
--- upstream_calls: 0



=== TEST 8: query string: 12
--- config
    location / {
        grpc_guard on;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call
method: /c.D/E?x=1
--- grpc_status: 12
--- upstream_calls: 0



=== TEST 9: trailing slash, empty method: 12
--- config
    location / {
        grpc_guard on;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call
method: /c.D/
--- grpc_status: 12
--- upstream_calls: 0



=== TEST 10: empty label in the service name: 12
--- config
    location / {
        grpc_guard on;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call
method: /c..D/E
--- grpc_status: 12
--- upstream_calls: 0



=== TEST 11: raw %2e%2e over curl (HTTP/2, path as is): Trailers-Only 12
--- config
    location / {
        grpc_guard on;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- request eval
"POST /a.B/%2e%2e/c.D/E\n"
--- more_headers
content-type: application/grpc
te: trailers
--- error_code: 200
--- response_headers
content-type: application/grpc
grpc-status: 12
grpc-message: unimplemented
--- upstream_calls: 0



=== TEST 12: a raw path that normalises into a guarded location is refused
--- config
    location /guarded.Svc/ {
        grpc_guard on;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
    location /open.Svc/ {
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call
method: /open.Svc/../guarded.Svc/M
--- grpc_status: 12
--- upstream_calls: 0



=== TEST 13: a method name with digits, underscore and hyphen passes
--- config
    location / {
        grpc_guard on;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call
method: /my_pkg.v2.Some-Service/Get_Thing2
--- grpc_status: 0
--- upstream_method: /my_pkg.v2.Some-Service/Get_Thing2
--- upstream_calls: 1



=== TEST 14: a gRPC request with GET is refused
--- config
    location / {
        grpc_guard on;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- request
GET /c.D/E
--- more_headers
content-type: application/grpc
--- error_code: 200
--- response_headers
grpc-status: 12
--- upstream_calls: 0
--- error_log
method_not_post



=== TEST 15: a location without the guard forwards the raw path untouched
--- config
    location / {
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call
method: //c.D/E
--- upstream_calls: 1
--- upstream_method: //c.D/E



=== TEST 16: grpc_guard off inside a guarded server is left untouched
--- config
    grpc_guard on;
    location / {
        grpc_guard off;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call
method: /a.B/../c.D/E
--- upstream_calls: 1



=== TEST 17: non-gRPC request with a non-canonical path gets HTTP 404
--- config
    location / {
        grpc_guard on;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- request
GET /a.B/../c.D/E
--- error_code: 404
--- response_headers
!grpc-status
--- upstream_calls: 0
