# Reflection is refused with 12 unless grpc_guard_reflection on; public
# methods are marked and still get the path and deadline checks.

use Test::Nginx::Socket::Grpc 'no_plan';

no_shuffle();
no_root_location();
run_tests();

__DATA__

=== TEST 1: reflection v1 refused by default
--- config
    location / {
        grpc_guard on;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call
method: /grpc.reflection.v1.ServerReflection/ServerReflectionInfo
type: bidi
--- grpc_status: 12
--- grpc_message: unimplemented
--- upstream_calls: 0
--- error_log
reflection_disabled



=== TEST 2: reflection v1alpha refused by default
--- config
    location / {
        grpc_guard on;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call
method: /grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo
type: bidi
--- grpc_status: 12
--- grpc_message: unimplemented
--- upstream_calls: 0



=== TEST 3: reflection passes with grpc_guard_reflection on
--- config
    location / {
        grpc_guard on;
        grpc_guard_reflection on;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call
method: /grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo
type: bidi
messages: 2
--- grpc_status: 0
--- grpc_responses: 2
--- upstream_calls: 1



=== TEST 4: reflection setting is inherited and can be overridden
--- config
    grpc_guard on;
    grpc_guard_reflection on;
    location / {
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
    location /grpc.reflection.v1.ServerReflection/ {
        grpc_guard_reflection off;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call
method: /grpc.reflection.v1.ServerReflection/ServerReflectionInfo
type: bidi
--- grpc_status: 12
--- upstream_calls: 0



=== TEST 5: a public method passes, decision public
--- config
    location / {
        grpc_guard on;
        grpc_guard_public /grpc.health.v1.Health/*;
        grpc_set_header x-decision $grpc_guard_decision;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call
method: /grpc.health.v1.Health/Check
--- grpc_status: 0
--- upstream_metadata
x-decision: public



=== TEST 6: a method that is not public: decision allow
--- config
    location / {
        grpc_guard on;
        grpc_guard_public /grpc.health.v1.Health/*;
        grpc_set_header x-decision $grpc_guard_decision;
        grpc_set_header x-service $grpc_guard_service;
        grpc_set_header x-method $grpc_guard_method;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call
method: /test.Echo/Unary
--- grpc_status: 0
--- upstream_metadata
x-decision: allow
x-service: test.Echo
x-method: /test.Echo/Unary



=== TEST 7: exact, prefix and star patterns
--- config
    location / {
        grpc_guard on;
        grpc_guard_public /a.B/Exact /c.D/Get* /pkg.*;
        grpc_set_header x-decision $grpc_guard_decision;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call eval
["method: /a.B/Exact", "method: /a.B/Exact2", "method: /c.D/GetThing",
 "method: /c.D/ListThings", "method: /pkg.v1.Svc/M", "method: /pkgx.Svc/M"]
--- grpc_status eval
[0, 0, 0, 0, 0, 0]
--- upstream_metadata eval
["x-decision: public", "x-decision: allow", "x-decision: public",
 "x-decision: allow", "x-decision: public", "x-decision: allow"]



=== TEST 8: "*" makes every method public
--- config
    location / {
        grpc_guard on;
        grpc_guard_public *;
        grpc_set_header x-decision $grpc_guard_decision;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call
method: /any.Svc/Any
--- grpc_status: 0
--- upstream_metadata
x-decision: public



=== TEST 9: a public method still gets the deadline check
--- config
    location / {
        grpc_guard on;
        grpc_guard_public /grpc.health.v1.Health/*;
        grpc_guard_deadline required;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call
method: /grpc.health.v1.Health/Check
--- grpc_status: 3
--- grpc_message: deadline required
--- upstream_calls: 0



=== TEST 10: a public pattern does not open reflection
--- config
    location / {
        grpc_guard on;
        grpc_guard_public /grpc.*;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call
method: /grpc.reflection.v1.ServerReflection/ServerReflectionInfo
type: bidi
--- grpc_status: 12
--- upstream_calls: 0



=== TEST 11: an invalid pattern fails the configuration
--- config
    location / {
        grpc_guard on;
        grpc_guard_public pkg.Svc/M;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- must_die
--- error_log
invalid method pattern "pkg.Svc/M"



=== TEST 12: an inner grpc_guard_public list replaces the outer one
--- config
    grpc_guard on;
    grpc_guard_public /a.B/*;
    location / {
        grpc_guard_public /c.D/*;
        grpc_set_header x-decision $grpc_guard_decision;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call eval
["method: /a.B/M", "method: /c.D/M"]
--- grpc_status eval
[0, 0]
--- upstream_metadata eval
["x-decision: allow", "x-decision: public"]
