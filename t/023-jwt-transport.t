# JWT authentication around the call: tokens need TLS unless
# grpc_guard_require_tls is off; the authorization header is not sent
# upstream unless grpc_guard_forward_credentials is on; identity goes
# upstream with grpc_set_header, replacing what the client sent; streaming
# calls are authenticated as unary ones; other HTTP requests get 401 with
# WWW-Authenticate; and no log ever holds the token.

use Test::Nginx::Socket::Grpc 'no_plan';
use Test::Nginx::Jwt qw(jwt_keys tokens);

our $JwtDir = jwt_keys();

tokens(
    RS256   => { key => 'rsa', kid => 'rsa1' },
    EXPIRED => { key => 'rsa', kid => 'rsa1',
                 claims => { exp => { rel => -3600 } } },
    BADSIG  => { key => 'rsa', kid => 'rsa2' },
);

# the signature segments, to look for in the logs
our %Sig = map { $_ => (split /\./, $ENV{"TEST_NGINX_JWT_$_"})[2] }
           qw(RS256 EXPIRED BADSIG);

our $Config = <<'EOF';
    grpc_guard_require_tls off;
    location /test.Echo/ {
        grpc_guard_auth jwt;
        grpc_guard_jwt_key_file $TEST_NGINX_JWT_DIR/jwks.json;
        grpc_set_header x-user $grpc_guard_jwt_claim_sub;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
EOF

add_block_preprocessor(sub {
    my $block = shift;
    $block->set_value(config => $Config)
        unless defined $block->config || $block->must_die;
});

run_tests();

__DATA__

=== TEST 1: a token over plaintext HTTP/2 is refused by default (require_tls on)
--- config
    location /test.Echo/ {
        grpc_guard_auth jwt;
        grpc_guard_jwt_key_file $TEST_NGINX_JWT_DIR/jwks.json;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call
method: /test.Echo/Unary
metadata: authorization: Bearer $TEST_NGINX_JWT_RS256
--- grpc_status: 16
--- grpc_message: transport security required
--- upstream_calls: 0
--- error_log
refused "/test.Echo/Unary" with 16: tls_required



=== TEST 2: without a token, over plaintext, the reason is the missing token
--- config
    location /test.Echo/ {
        grpc_guard_auth jwt;
        grpc_guard_jwt_key_file $TEST_NGINX_JWT_DIR/jwks.json;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call
method: /test.Echo/Unary
--- grpc_status: 16
--- grpc_message: unauthenticated
--- upstream_calls: 0
--- error_log
refused "/test.Echo/Unary" with 16: jwt_missing



=== TEST 3: over TLS the same token passes
--- config
    listen 127.0.0.1:$TEST_NGINX_TLS_PORT ssl $TEST_NGINX_LISTEN_HTTP2;
    ssl_certificate $TEST_NGINX_CERT_DIR/server.crt;
    ssl_certificate_key $TEST_NGINX_CERT_DIR/server.key;
    location /test.Echo/ {
        grpc_guard_auth jwt;
        grpc_guard_jwt_key_file $TEST_NGINX_JWT_DIR/jwks.json;
        grpc_set_header x-user $grpc_guard_jwt_claim_sub;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call
method: /test.Echo/Unary
port: $TEST_NGINX_TLS_PORT
tls: on
server_name: localhost
metadata: authorization: Bearer $TEST_NGINX_JWT_RS256
--- grpc_status: 0
--- upstream_calls: 1
--- upstream_metadata
x-user: alice
!authorization
--- no_error_log
grpc guard: refused



=== TEST 4: the authorization header is removed; the metadata around it stays
--- grpc_call
method: /test.Echo/Unary
metadata: x-first: 1
metadata: authorization: Bearer $TEST_NGINX_JWT_RS256
metadata: x-second: 2
--- grpc_status: 0
--- upstream_calls: 1
--- upstream_metadata
x-first: 1
x-second: 2
x-user: alice
!authorization



=== TEST 5: grpc_guard_forward_credentials on: authorization goes upstream unchanged
--- config
    grpc_guard_require_tls off;
    location /test.Echo/ {
        grpc_guard_auth jwt;
        grpc_guard_forward_credentials on;
        grpc_guard_jwt_key_file $TEST_NGINX_JWT_DIR/jwks.json;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call
method: /test.Echo/Unary
metadata: authorization: Bearer $TEST_NGINX_JWT_RS256
--- grpc_status: 0
--- upstream_calls: 1
--- upstream_metadata eval
"authorization: Bearer $ENV{TEST_NGINX_JWT_RS256}"



=== TEST 6: an x-user sent by the client is replaced by the verified sub
--- grpc_call
method: /test.Echo/Unary
metadata: x-user: admin
metadata: authorization: Bearer $TEST_NGINX_JWT_RS256
--- grpc_status: 0
--- upstream_calls: 1
--- upstream_metadata
x-user: alice



=== TEST 7: a server-streaming call is authenticated
--- grpc_call
method: /test.Echo/ServerStreamItems
type: server_stream
metadata: authorization: Bearer $TEST_NGINX_JWT_RS256
--- grpc_status: 0
--- grpc_responses: 3
--- upstream_calls: 1
--- upstream_metadata
x-user: alice
!authorization



=== TEST 8: client-streaming and bidi calls are authenticated
--- grpc_call eval
[{ method => '/test.Echo/ClientStreamUpload', type => 'client_stream',
   metadata => ['authorization: Bearer $TEST_NGINX_JWT_RS256'] },
 { method => '/test.Echo/BidiChat', type => 'bidi',
   metadata => ['authorization: Bearer $TEST_NGINX_JWT_RS256'] }]
--- grpc_status: 0
--- grpc_responses eval
[1, 3]
--- upstream_calls: 2



=== TEST 9: streaming calls without a valid token are refused before the upstream
--- grpc_call eval
[{ method => '/test.Echo/ServerStreamItems', type => 'server_stream' },
 { method => '/test.Echo/ClientStreamUpload', type => 'client_stream',
   metadata => ['authorization: Bearer $TEST_NGINX_JWT_EXPIRED'] },
 { method => '/test.Echo/BidiChat', type => 'bidi',
   metadata => ['authorization: Bearer $TEST_NGINX_JWT_BADSIG'] }]
--- grpc_status: 16
--- grpc_message: unauthenticated
--- grpc_responses: 0
--- upstream_calls: 0
--- grep_error_log eval: qr/with 16: jwt_\w+/
--- grep_error_log_out
with 16: jwt_missing
with 16: jwt_expired
with 16: jwt_bad_signature



=== TEST 10: a non-gRPC request without a token: 401, WWW-Authenticate: Bearer
--- request
POST /test.Echo/Unary
--- error_code: 401
--- response_headers
WWW-Authenticate: Bearer
--- upstream_calls: 0
--- error_log
refused "/test.Echo/Unary" with 16: jwt_missing



=== TEST 11: a non-gRPC request with a bad token: 401, error="invalid_token"
--- request
POST /test.Echo/Unary
--- more_headers eval
"Authorization: Bearer $ENV{TEST_NGINX_JWT_EXPIRED}"
--- error_code: 401
--- response_headers
WWW-Authenticate: Bearer error="invalid_token"
--- upstream_calls: 0
--- error_log
refused "/test.Echo/Unary" with 16: jwt_expired



=== TEST 12: grpc_guard_jwt_token: the token comes from a variable, authorization is not looked at
--- config
    grpc_guard_require_tls off;
    location /test.Echo/ {
        grpc_guard_auth jwt;
        grpc_guard_jwt_key_file $TEST_NGINX_JWT_DIR/jwks.json;
        grpc_guard_jwt_token $http_x_token;
        grpc_set_header x-user $grpc_guard_principal;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call eval
[{ method => '/test.Echo/Unary',
   metadata => ['x-token: $TEST_NGINX_JWT_RS256',
                'authorization: Bearer $TEST_NGINX_JWT_EXPIRED'] },
 { method => '/test.Echo/Unary',
   metadata => ['authorization: Bearer $TEST_NGINX_JWT_RS256'] }]
--- grpc_status eval
[0, 16]
--- upstream_calls: 1
--- upstream_metadata eval
"x-user: alice\nauthorization: Bearer $ENV{TEST_NGINX_JWT_EXPIRED}"
--- error_log
refused "/test.Echo/Unary" with 16: jwt_missing



=== TEST 13: public methods need no token; other methods of the location do
--- config
    grpc_guard_require_tls off;
    grpc_guard_public /test.Echo/Public;
    location /test.Echo/ {
        grpc_guard_auth jwt;
        grpc_guard_jwt_key_file $TEST_NGINX_JWT_DIR/jwks.json;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call eval
[{ method => '/test.Echo/Public' }, { method => '/test.Echo/Private' }]
--- grpc_status eval
[0, 16]
--- upstream_calls: 1



=== TEST 14: grpc_guard_auth turns the guard on; "grpc_guard off" or "grpc_guard_auth off" in a location turns the check off there
--- config
    grpc_guard_require_tls off;
    grpc_guard_auth jwt;
    grpc_guard_jwt_key_file $TEST_NGINX_JWT_DIR/jwks.json;
    location /test.Echo/ {
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
    location /test.Open/ {
        grpc_guard off;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
    location /test.NoAuth/ {
        grpc_guard_auth off;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call eval
[{ method => '/test.Echo/Unary' }, { method => '/test.Open/Unary' },
 { method => '/test.NoAuth/Unary' }]
--- grpc_status eval
[16, 0, 0]
--- upstream_calls: 2



=== TEST 15: "grpc_guard off" at the server level, grpc_guard_auth in a location: the inner one wins
--- config
    grpc_guard off;
    grpc_guard_require_tls off;
    grpc_guard_jwt_key_file $TEST_NGINX_JWT_DIR/jwks.json;
    location /test.Echo/ {
        grpc_guard_auth jwt;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call
method: /test.Echo/Unary
--- grpc_status: 16
--- upstream_calls: 0



=== TEST 16: grpc_guard_auth_satisfy any with jwt alone behaves as all
--- config
    grpc_guard_require_tls off;
    location /test.Echo/ {
        grpc_guard_auth jwt;
        grpc_guard_auth_satisfy any;
        grpc_guard_jwt_key_file $TEST_NGINX_JWT_DIR/jwks.json;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call eval
[{ method => '/test.Echo/Unary',
   metadata => ['authorization: Bearer $TEST_NGINX_JWT_RS256'] },
 { method => '/test.Echo/Unary',
   metadata => ['authorization: Bearer $TEST_NGINX_JWT_EXPIRED'] }]
--- grpc_status eval
[0, 16]
--- upstream_calls: 1



=== TEST 17: debug log: the guard's own lines never hold the token, accepted or refused
--- config
    grpc_guard_require_tls off;
    access_log logs/access.log;
    location /test.Echo/ {
        grpc_guard_auth jwt;
        grpc_guard_jwt_key_file $TEST_NGINX_JWT_DIR/jwks.json;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call eval
[{ method => '/test.Echo/Unary',
   metadata => ['authorization: Bearer $TEST_NGINX_JWT_RS256'] },
 { method => '/test.Echo/Unary',
   metadata => ['authorization: Bearer $TEST_NGINX_JWT_RS256'] },
 { method => '/test.Echo/Unary',
   metadata => ['authorization: Bearer $TEST_NGINX_JWT_EXPIRED'] },
 { method => '/test.Echo/Unary',
   metadata => ['authorization: Bearer $TEST_NGINX_JWT_BADSIG'] }]
--- grpc_status eval
[0, 0, 16, 16]
--- error_log
grpc guard jwt: cache hit, valid
refused "/test.Echo/Unary" with 16: jwt_expired
--- no_error_log eval
[qr/grpc guard.*\Q$main::Sig{RS256}\E/, qr/grpc guard.*\Q$main::Sig{EXPIRED}\E/,
 qr/grpc guard.*\Q$main::Sig{BADSIG}\E/]
--- no_access_log eval
[qr/\Q$main::Sig{RS256}\E/, qr/\Q$main::Sig{EXPIRED}\E/,
 qr/\Q$main::Sig{BADSIG}\E/]



=== TEST 18: at the info level no log line holds any part of a token
--- log_level: info
--- config
    grpc_guard_require_tls off;
    grpc_guard_log_level warn;
    location /test.Echo/ {
        grpc_guard_auth jwt;
        grpc_guard_jwt_key_file $TEST_NGINX_JWT_DIR/jwks.json;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call eval
[{ method => '/test.Echo/Unary',
   metadata => ['authorization: Bearer $TEST_NGINX_JWT_RS256'] },
 { method => '/test.Echo/Unary',
   metadata => ['authorization: Bearer $TEST_NGINX_JWT_EXPIRED'] },
 { method => '/test.Echo/Unary',
   metadata => ['authorization: Bearer $TEST_NGINX_JWT_BADSIG'] }]
--- grpc_status eval
[0, 16, 16]
--- error_log
[warn]
refused "/test.Echo/Unary" with 16: jwt_bad_signature
--- no_error_log eval
[qr/\Q$main::Sig{RS256}\E/, qr/\Q$main::Sig{EXPIRED}\E/,
 qr/\Q$main::Sig{BADSIG}\E/, qr/eyJ/]
--- no_access_log eval
[qr/\Q$main::Sig{RS256}\E/, qr/\Q$main::Sig{EXPIRED}\E/,
 qr/\Q$main::Sig{BADSIG}\E/, qr/eyJ/]
