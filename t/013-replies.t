# Refusals are Trailers-Only replies; non-gRPC requests get the HTTP
# equivalent; nginx's own error pages for gRPC calls become gRPC statuses;
# the decision record survives internal redirects.

use Test::Nginx::Socket::Grpc 'no_plan';

no_shuffle();
no_root_location();
run_tests();

__DATA__

=== TEST 1: a refusal is one HEADERS frame with END_STREAM and no DATA
--- config
    location / {
        grpc_guard on;
        grpc_guard_deadline required;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- request eval
"POST /test.Echo/Unary\n"
--- more_headers
content-type: application/grpc
te: trailers
--- h2_frames_like eval
[qr/recv \(stream_id=\d+\) :status: 200\n.*recv \(stream_id=\d+\) content-type: application\/grpc\n.*recv \(stream_id=\d+\) grpc-status: 3\n.*recv \(stream_id=\d+\) grpc-message: deadline required\n.*recv HEADERS frame <length=\d+, flags=0x05, stream_id=\d+>\n\s+; END_STREAM \| END_HEADERS/s]
--- h2_frames_unlike eval
[qr/recv DATA frame/, qr/recv \(stream_id=\d+\) (server|date|content-length):/]



=== TEST 2: the gRPC client sees no server or date trailing metadata
--- config
    location / {
        grpc_guard on;
        grpc_guard_deadline required;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call
method: /test.Echo/Unary
--- grpc_status: 3
--- grpc_trailers
!server
!date
!content-length



=== TEST 3: grpc-message is percent-encoded per the gRPC spec
The upstream sends a status with a non-ASCII message through a guarded
location; nginx passes it as is and the client decodes it.
--- config
    location / {
        grpc_guard on;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call
method: /test.Echo/Unary
metadata: x-test-status: 5
metadata: x-test-message: caf%C3%A9 100%25
--- grpc_status: 5
--- grpc_message: café 100%



=== TEST 4: non-gRPC request refused: HTTP status, nginx's page
--- config
    location / {
        grpc_guard on;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- request
GET /grpc.reflection.v1.ServerReflection/ServerReflectionInfo
--- error_code: 404
--- response_headers
!grpc-status
content-type: text/html
--- upstream_calls: 0



=== TEST 5: 502 from an unreachable upstream becomes 14
--- config
    location / {
        grpc_guard on;
        grpc_pass grpc://127.0.0.1:1;
    }
--- grpc_call
method: /test.Echo/Unary
--- grpc_status: 14
--- grpc_message: service unavailable
--- grpc_trailers
!server
!date
--- error_log
connect() failed



=== TEST 6: 504 from an upstream timeout becomes 4
--- config
    location / {
        grpc_guard on;
        grpc_read_timeout 300ms;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call
method: /test.Echo/Unary
metadata: x-test-sleep: 1.5
--- grpc_status: 4
--- grpc_message: deadline exceeded
--- error_log
upstream timed out



=== TEST 7: 413 from client_max_body_size becomes 8
--- config
    location / {
        grpc_guard on;
        client_max_body_size 16;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call
method: /test.Echo/Unary
payload: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa
--- grpc_status: 8
--- grpc_message: rate limit exceeded
--- error_log
client intended to send too large



=== TEST 8: without the guard, nginx's 502 page is left as it is
--- config
    location / {
        grpc_pass grpc://127.0.0.1:1;
    }
--- request eval
"POST /test.Echo/Unary\n"
--- more_headers
content-type: application/grpc
--- error_code: 502
--- response_headers
!grpc-status
content-type: text/html



=== TEST 9: upstream errors pass through with their own status
--- config
    location / {
        grpc_guard on;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call eval
["method: /test.Echo/Unary\nmetadata: x-test-status: 7\nmetadata: x-test-message: nope",
 "method: /test.Echo/Unary\nmetadata: x-test-status: 9\nmetadata: x-test-trailers-only: 1\nmetadata: x-test-message: pre"]
--- grpc_status eval
[7, 9]
--- grpc_message eval
["nope", "pre"]



=== TEST 10: the decision record survives an internal redirect
--- config
    location /down.Svc/ {
        grpc_guard on;
        grpc_pass grpc://127.0.0.1:1;
        error_page 502 = @fallback;
    }
    location @fallback {
        add_header x-decision $grpc_guard_decision;
        add_header x-method $grpc_guard_method;
        return 200 "fallback\n";
    }
--- request eval
"POST /down.Svc/M\n"
--- more_headers
content-type: application/grpc
--- error_code: 200
--- response_headers
x-decision: allow
x-method: /down.Svc/M
--- response_body
fallback



=== TEST 11: variables of a refusal, seen by add_header in the reply
--- config
    location / {
        grpc_guard on;
        add_header x-reason $grpc_guard_reason;
        add_header x-decision $grpc_guard_decision;
        add_header x-status $grpc_guard_grpc_status;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call
method: /grpc.reflection.v1.ServerReflection/ServerReflectionInfo
type: bidi
--- grpc_status: 12
--- grpc_trailers
x-reason: reflection_disabled
x-decision: deny
x-status: 12



=== TEST 12: a non-gRPC request with a canonical path passes the edge checks
(the deadline policy applies to every content type: this one has a deadline)
--- config
    location / {
        grpc_guard on;
        grpc_guard_deadline required;
        root html;
        add_header x-decision $grpc_guard_decision;
    }
--- user_files
>>> some.Page/Index
hello
--- request
GET /some.Page/Index
--- more_headers
grpc-timeout: 5S
--- error_code: 200
--- response_headers
x-decision: allow
--- response_body
hello



=== TEST 13: application/grpc+proto is gRPC too
--- config
    location / {
        grpc_guard on;
        grpc_guard_deadline required;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- request eval
"POST /test.Echo/Unary\n"
--- more_headers
content-type: application/grpc+proto
--- error_code: 200
--- response_headers
grpc-status: 3
content-type: application/grpc
