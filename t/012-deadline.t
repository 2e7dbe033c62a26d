# grpc_guard_deadline: grpc-timeout parsed per the gRPC spec (1-8 digits,
# units H M S m u n); required/optional, default= added, max= lowered in the
# request sent upstream, malformed values refused with 3.

use Test::Nginx::Socket::Grpc 'no_plan';

no_shuffle();
no_root_location();
run_tests();

__DATA__

=== TEST 1: required and missing: 3 "deadline required"
--- config
    location / {
        grpc_guard on;
        grpc_guard_deadline required;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call
method: /test.Echo/Unary
--- grpc_status: 3
--- grpc_message: deadline required
--- upstream_calls: 0
--- error_log
grpc guard: refused "/test.Echo/Unary" with 3: deadline_missing



=== TEST 2: required and present: passes with the client's deadline
--- config
    location / {
        grpc_guard on;
        grpc_guard_deadline required;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call
method: /test.Echo/Unary
timeout: 7
--- grpc_status: 0
--- upstream_timeout: 6 7



=== TEST 3: required with default=: the default is added upstream
--- config
    location / {
        grpc_guard on;
        grpc_guard_deadline required default=4s;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call
method: /test.Echo/Unary
--- grpc_status: 0
--- upstream_timeout: 3 4



=== TEST 4: optional and missing: passes without a deadline
--- config
    location / {
        grpc_guard on;
        grpc_guard_deadline optional;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call
method: /test.Echo/Unary
--- grpc_status: 0
--- upstream_timeout: none



=== TEST 5: optional with default=: the default is added upstream
--- config
    location / {
        grpc_guard on;
        grpc_guard_deadline optional default=2500ms;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call
method: /test.Echo/Unary
--- grpc_status: 0
--- upstream_timeout: 1.5 2.5



=== TEST 6: max= lowers a longer deadline in the request sent upstream
--- config
    location / {
        grpc_guard on;
        grpc_guard_deadline optional max=3s;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call
method: /test.Echo/Unary
timeout: 60
--- grpc_status: 0
--- upstream_timeout: 2 3



=== TEST 7: max= leaves a shorter deadline alone
--- config
    location / {
        grpc_guard on;
        grpc_guard_deadline optional max=30s;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call
method: /test.Echo/Unary
timeout: 5
--- grpc_status: 0
--- upstream_timeout: 4 5



=== TEST 8: off: no deadline needed, none added
--- config
    location / {
        grpc_guard on;
        grpc_guard_deadline off;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call
method: /test.Echo/Unary
--- grpc_status: 0
--- upstream_timeout: none



=== TEST 9: max= applies to streaming calls too
--- config
    location / {
        grpc_guard on;
        grpc_guard_deadline required max=3s;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call
method: /test.Echo/ServerStreamThings
type: server_stream
timeout: 100
--- grpc_status: 0
--- grpc_responses: 3
--- upstream_timeout: 2 3



=== TEST 10: nine digits: malformed, 3 "invalid deadline"
--- config
    location / {
        grpc_guard on;
        grpc_guard_deadline optional;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- request eval
"POST /test.Echo/Unary\n"
--- more_headers
content-type: application/grpc
te: trailers
grpc-timeout: 123456789S
--- error_code: 200
--- response_headers
grpc-status: 3
grpc-message: invalid deadline
--- upstream_calls: 0
--- error_log
deadline_malformed



=== TEST 11: unknown unit: malformed
--- config
    location / {
        grpc_guard on;
        grpc_guard_deadline optional;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- request eval
"POST /test.Echo/Unary\n"
--- more_headers
content-type: application/grpc
grpc-timeout: 10s
--- error_code: 200
--- response_headers
grpc-status: 3
--- upstream_calls: 0



=== TEST 12: no digits, sign, spaces: malformed
--- config
    location / {
        grpc_guard on;
        grpc_guard_deadline optional;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- request eval
["POST /test.Echo/Unary\n", "POST /test.Echo/Unary\n",
 "POST /test.Echo/Unary\n"]
--- more_headers eval
["content-type: application/grpc\ngrpc-timeout: S",
 "content-type: application/grpc\ngrpc-timeout: -5S",
 "content-type: application/grpc\ngrpc-timeout: 1 S"]
--- error_code eval
[200, 200, 200]
--- response_headers eval
["grpc-status: 3", "grpc-status: 3", "grpc-status: 3"]
--- upstream_calls: 0



=== TEST 13: every unit is understood (lowered by max= when longer)
--- config
    location / {
        grpc_guard on;
        grpc_guard_deadline optional max=10s;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- request eval
["POST /test.Echo/Unary\n\0\0\0\0\0", "POST /test.Echo/Unary\n\0\0\0\0\0",
 "POST /test.Echo/Unary\n\0\0\0\0\0", "POST /test.Echo/Unary\n\0\0\0\0\0",
 "POST /test.Echo/Unary\n\0\0\0\0\0", "POST /test.Echo/Unary\n\0\0\0\0\0"]
--- more_headers eval
["content-type: application/grpc\nte: trailers\ngrpc-timeout: 99999999H",
 "content-type: application/grpc\nte: trailers\ngrpc-timeout: 1M",
 "content-type: application/grpc\nte: trailers\ngrpc-timeout: 3S",
 "content-type: application/grpc\nte: trailers\ngrpc-timeout: 2000m",
 "content-type: application/grpc\nte: trailers\ngrpc-timeout: 4000000u",
 "content-type: application/grpc\nte: trailers\ngrpc-timeout: 99999999n"]
--- error_code eval
[200, 200, 200, 200, 200, 200]
--- upstream_calls: 6
--- no_error_log
grpc guard: refused



=== TEST 14: two grpc-timeout headers: malformed
--- config
    location / {
        grpc_guard on;
        grpc_guard_deadline optional;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- request eval
"POST /test.Echo/Unary\n"
--- more_headers
content-type: application/grpc
grpc-timeout: 1S
grpc-timeout: 2S
--- error_code: 200
--- response_headers
grpc-status: 3
--- upstream_calls: 0



=== TEST 15: with "off" a malformed grpc-timeout is not looked at
--- config
    location / {
        grpc_guard on;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- request eval
"POST /test.Echo/Unary\n\0\0\0\0\0"
--- more_headers
content-type: application/grpc
te: trailers
grpc-timeout: 5S
--- error_code: 200
--- upstream_calls: 1



=== TEST 16: bad directive parameters fail the configuration
--- config
    location / {
        grpc_guard on;
        grpc_guard_deadline required max=soon;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- must_die
--- error_log
invalid time in "max=soon"



=== TEST 17: default= longer than max= fails the configuration
--- config
    location / {
        grpc_guard on;
        grpc_guard_deadline required max=5s default=10s;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- must_die
--- error_log
"default=" is longer than "max="



=== TEST 18: deadline setting inherited from server level
--- config
    grpc_guard on;
    grpc_guard_deadline required;
    location / {
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call
method: /test.Echo/Unary
--- grpc_status: 3
--- upstream_calls: 0
