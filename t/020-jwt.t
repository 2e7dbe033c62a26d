# JWT authentication (grpc_guard_auth jwt): tokens of every supported
# algorithm pass; every way a token can be wrong is refused with 16
# UNAUTHENTICATED, the generic message, and its own reason in the error log
# and in $grpc_guard_reason; a refused call never reaches the upstream.
#
# Keys and tokens are made at test time by t/lib/mkjwt.py (python3-
# cryptography) in servroot/jwt; tokens whose validity depends on the clock
# are made in the block's "init", right before its calls.

use Test::Nginx::Socket::Grpc 'no_plan';
use Test::Nginx::Jwt qw(jwt_keys tokens);
use JSON::PP ();

our $JwtDir = jwt_keys();

# tokens(NAME => SPEC, ...): $ENV{TEST_NGINX_JWT_NAME} = token
tokens(
    RS256      => { key => 'rsa', kid => 'rsa1' },
    RS384      => { key => 'rsa', kid => 'rsa1', alg => 'RS384' },
    RS512      => { key => 'rsa', kid => 'rsa1', alg => 'RS512' },
    PS256      => { key => 'rsa', kid => 'rsa1', alg => 'PS256' },
    PS512      => { key => 'rsa', kid => 'rsa1', alg => 'PS512' },
    ES256      => { key => 'ec256', kid => 'ec1' },
    ES384      => { key => 'ec384', kid => 'ec384' },
    ES512      => { key => 'ec521', kid => 'ec521' },
    EDDSA      => { key => 'ed25519', kid => 'ed1' },
    NOKID      => { key => 'rsa2' },
    ATJWT      => { key => 'rsa', kid => 'rsa1',
                    header => { typ => 'at+jwt' } },
    NOTYP      => { key => 'ec256', kid => 'ec1', header => { typ => undef } },
    BADTYP     => { key => 'rsa', kid => 'rsa1',
                    header => { typ => 'JOSE+JSON' } },
    NONE       => { key => 'rsa', kid => 'rsa1', alg => 'none',
                    sign_alg => 'none' },
    NONE_NOKID => { key => 'rsa', alg => 'none', sign_alg => 'none' },
    HS_PUB     => { key => 'rsa', alg => 'HS256', hmac_key => 'pub:rsa' },
    HS256      => { key => 'oct', alg => 'HS256', kid => 'hs1' },
    HS512      => { key => 'oct', alg => 'HS512', kid => 'hs1' },
    LOWER      => { key => 'rsa', kid => 'rsa1', alg => 'rs256',
                    sign_alg => 'RS256' },
    INSERT     => { key => 'rsa', kid => 'rsa1', tamper => 'insert' },
    PLUS       => { key => 'rsa', kid => 'rsa1', tamper => 'plus' },
    PAD        => { key => 'rsa', kid => 'rsa1', tamper => 'pad' },
    DOT        => { key => 'rsa', kid => 'rsa1', tamper => 'trailing_dot' },
    BITS       => { key => 'ec256', kid => 'ec1', tamper => 'bits' },
    TAMPERED   => { key => 'rsa', kid => 'rsa1', tamper => 'payload' },
    UNKNOWN    => { key => 'rsa', kid => 'no-such-key' },
    OTHERKID   => { key => 'rsa', kid => 'rsa2' },
    ECKID_RSA  => { key => 'rsa', kid => 'ec1' },
    DUP        => { key => 'rsa', kid => 'rsa1',
                    payload_raw => '{"sub":"alice","sub":"mallory",'
                                   . '"exp":4102444800}' },
    DUPHDR     => { key => 'rsa',
                    header_raw => '{"alg":"RS256","kid":"rsa1",'
                                  . '"alg":"RS256"}' },
    CRIT       => { key => 'rsa', kid => 'rsa1',
                    header => { crit => ['exp'] } },
    CRIT_EMPTY => { key => 'rsa', kid => 'rsa1', header => { crit => [] } },
    EMPTYSIG   => { key => 'rsa', kid => 'rsa1', sig => 'empty' },
    ZERO       => { key => 'ec256', kid => 'ec1', sig => 'zero' },
    DER        => { key => 'ec256', kid => 'ec1', sig => 'der' },
    DEEP       => { key => 'rsa', kid => 'rsa1',
                    payload_raw => '{"exp":4102444800,"a":'
                                   . ('[' x 20) . '1' . (']' x 20) . '}' },
    ARRAYPL    => { key => 'rsa', kid => 'rsa1', payload_raw => '[1,2]' },
    NOEXP      => { key => 'rsa', kid => 'rsa1', claims => { exp => undef } },
    EXPSTR     => { key => 'rsa', kid => 'rsa1',
                    claims => { exp => '4102444800' } },
    EXPBOOL    => { key => 'rsa', kid => 'rsa1', claims => { exp => JSON::PP::true } },
    EXPREAL    => { key => 'rsa', kid => 'rsa1',
                    claims => { exp => 4102444800.5 } },
    NBF        => { key => 'rsa', kid => 'rsa1',
                    claims => { nbf => { rel => 600 } } },
    IAT        => { key => 'rsa', kid => 'rsa1',
                    claims => { iat => { rel => 600 } } },
    ISS        => { key => 'rsa', kid => 'rsa1',
                    claims => { iss => 'https://evil.test' } },
    ISS_NUM    => { key => 'rsa', kid => 'rsa1', claims => { iss => 42 } },
    AUD        => { key => 'rsa', kid => 'rsa1', claims => { aud => 'other' } },
    AUD_ARRAY  => { key => 'rsa', kid => 'rsa1',
                    claims => { aud => ['x', 'grpc-guard-tests'] } },
    AUD_BAD    => { key => 'rsa', kid => 'rsa1',
                    claims => { aud => ['x', 'y'] } },
    NOAUD      => { key => 'rsa', kid => 'rsa1', claims => { aud => undef } },
    NOSUB      => { key => 'rsa', kid => 'rsa1', claims => { sub => undef } },
    SUBNUM     => { key => 'rsa', kid => 'rsa1', claims => { sub => 7 } },
    LONGLIFE   => { key => 'rsa', kid => 'rsa1',
                    claims => { exp => { rel => 7200 } } },
    HUGE       => { key => 'rsa', kid => 'rsa1', pad_to => 65536 },
    BIG        => { key => 'rsa', kid => 'rsa1', pad_to => 7000 },
);

$ENV{TEST_NGINX_JWT_GARBAGE} = 'not-a-token';

# the configuration of every block that brings none
our $Config = <<'EOF';
    grpc_guard_require_tls off;
    access_log logs/access.log guard;

    location /test.Echo/ {
        grpc_guard_auth jwt;
        grpc_guard_jwt_key_file $TEST_NGINX_JWT_DIR/jwks.json;
        grpc_guard_jwt_issuer https://issuer.test;
        grpc_guard_jwt_audience grpc-guard-tests;
        grpc_set_header x-user $grpc_guard_jwt_claim_sub;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
EOF

add_block_preprocessor(sub {
    my $block = shift;
    $block->set_value(config => $Config) unless defined $block->config;
    $block->set_value(http_config => <<'EOF') unless defined $block->http_config;
    log_format guard 'reason=$grpc_guard_reason status=$grpc_guard_grpc_status '
                     'principal=$grpc_guard_principal '
                     'auth=$grpc_guard_auth_method';
EOF
});

run_tests();

__DATA__

=== TEST 1: RS256 with its kid passes; authorization is not sent upstream
--- grpc_call
method: /test.Echo/Unary
metadata: authorization: Bearer $TEST_NGINX_JWT_RS256
--- grpc_status: 0
--- grpc_responses: 1
--- upstream_calls: 1
--- upstream_metadata
x-user: alice
!authorization
--- access_log
reason=- status=0 principal=alice auth=jwt
--- no_error_log
grpc guard: refused



=== TEST 2: RS384 and RS512 pass
--- grpc_call eval
[{ method => '/test.Echo/Unary',
   metadata => ["authorization: Bearer $ENV{TEST_NGINX_JWT_RS384}"] },
 { method => '/test.Echo/Unary',
   metadata => ["authorization: Bearer $ENV{TEST_NGINX_JWT_RS512}"] }]
--- grpc_status: 0
--- upstream_calls: 2
--- no_error_log
grpc guard: refused



=== TEST 3: PS256 and PS512 pass
--- grpc_call eval
[{ method => '/test.Echo/Unary',
   metadata => ["authorization: Bearer $ENV{TEST_NGINX_JWT_PS256}"] },
 { method => '/test.Echo/Unary',
   metadata => ["authorization: Bearer $ENV{TEST_NGINX_JWT_PS512}"] }]
--- grpc_status: 0
--- upstream_calls: 2
--- no_error_log
grpc guard: refused



=== TEST 4: ES256 passes
--- grpc_call
method: /test.Echo/Unary
metadata: authorization: Bearer $TEST_NGINX_JWT_ES256
--- grpc_status: 0
--- upstream_calls: 1
--- upstream_metadata
x-user: alice
--- no_error_log
grpc guard: refused



=== TEST 5: ES384 and ES512 (P-521: 66-byte R and S) pass
--- grpc_call eval
[{ method => '/test.Echo/Unary',
   metadata => ["authorization: Bearer $ENV{TEST_NGINX_JWT_ES384}"] },
 { method => '/test.Echo/Unary',
   metadata => ["authorization: Bearer $ENV{TEST_NGINX_JWT_ES512}"] }]
--- grpc_status: 0
--- upstream_calls: 2
--- no_error_log
grpc guard: refused



=== TEST 6: EdDSA (Ed25519) passes
--- grpc_call
method: /test.Echo/Unary
metadata: authorization: Bearer $TEST_NGINX_JWT_EDDSA
--- grpc_status: 0
--- upstream_calls: 1
--- upstream_metadata
x-user: alice
--- no_error_log
grpc guard: refused



=== TEST 7: a token without kid is checked against the keys of its algorithm
--- grpc_call
method: /test.Echo/Unary
metadata: authorization: Bearer $TEST_NGINX_JWT_NOKID
--- grpc_status: 0
--- upstream_calls: 1
--- no_error_log
grpc guard: refused



=== TEST 8: the scheme is case-insensitive: "bearer" and "BEARER" pass
--- grpc_call eval
[{ method => '/test.Echo/Unary',
   metadata => ["authorization: bearer $ENV{TEST_NGINX_JWT_RS256}"] },
 { method => '/test.Echo/Unary',
   metadata => ["authorization: BEARER $ENV{TEST_NGINX_JWT_RS256}"] }]
--- grpc_status: 0
--- upstream_calls: 2
--- no_error_log
grpc guard: refused



=== TEST 9: typ "at+jwt" (RFC 9068) and no typ pass
--- grpc_call eval
[{ method => '/test.Echo/Unary',
   metadata => ["authorization: Bearer $ENV{TEST_NGINX_JWT_ATJWT}"] },
 { method => '/test.Echo/Unary',
   metadata => ["authorization: Bearer $ENV{TEST_NGINX_JWT_NOTYP}"] }]
--- grpc_status: 0
--- upstream_calls: 2
--- no_error_log
grpc guard: refused



=== TEST 10: another typ is refused
--- grpc_call
method: /test.Echo/Unary
metadata: authorization: Bearer $TEST_NGINX_JWT_BADTYP
--- grpc_status: 16
--- grpc_message: unauthenticated
--- upstream_calls: 0
--- error_log
refused "/test.Echo/Unary" with 16: jwt_bad_typ
--- access_log
reason=jwt_bad_typ status=16 principal=- auth=-



=== TEST 11: no token at all
--- grpc_call
method: /test.Echo/Unary
--- grpc_status: 16
--- grpc_message: unauthenticated
--- upstream_calls: 0
--- error_log
refused "/test.Echo/Unary" with 16: jwt_missing



=== TEST 12: the Basic scheme is not a bearer token
--- grpc_call
method: /test.Echo/Unary
metadata: authorization: Basic YWxpY2U6c2VjcmV0
--- grpc_status: 16
--- grpc_message: unauthenticated
--- upstream_calls: 0
--- error_log
refused "/test.Echo/Unary" with 16: jwt_missing



=== TEST 13: "Bearer" with nothing after it
--- grpc_call
method: /test.Echo/Unary
metadata: authorization: Bearer
--- grpc_status: 16
--- upstream_calls: 0
--- error_log
refused "/test.Echo/Unary" with 16: jwt_malformed



=== TEST 14: garbage instead of a token
--- grpc_call
method: /test.Echo/Unary
metadata: authorization: Bearer $TEST_NGINX_JWT_GARBAGE
--- grpc_status: 16
--- grpc_message: unauthenticated
--- upstream_calls: 0
--- error_log
refused "/test.Echo/Unary" with 16: jwt_malformed



=== TEST 15: three segments of garbage
--- grpc_call
method: /test.Echo/Unary
metadata: authorization: Bearer e30.e30.e30
--- grpc_status: 16
--- upstream_calls: 0
--- error_log
refused "/test.Echo/Unary" with 16: jwt_malformed



=== TEST 16: alg "none" (with and without kid) is never accepted
--- grpc_call eval
[{ method => '/test.Echo/Unary',
   metadata => ["authorization: Bearer $ENV{TEST_NGINX_JWT_NONE}"] },
 { method => '/test.Echo/Unary',
   metadata => ["authorization: Bearer $ENV{TEST_NGINX_JWT_NONE_NOKID}"] }]
--- grpc_status: 16
--- grpc_message: unauthenticated
--- upstream_calls: 0
--- error_log
refused "/test.Echo/Unary" with 16: jwt_bad_alg
--- no_error_log
refused "/test.Echo/Unary" with 16: jwt_bad_signature



=== TEST 17: the alg name is case-sensitive: "rs256" is refused
--- grpc_call
method: /test.Echo/Unary
metadata: authorization: Bearer $TEST_NGINX_JWT_LOWER
--- grpc_status: 16
--- upstream_calls: 0
--- error_log
refused "/test.Echo/Unary" with 16: jwt_bad_alg



=== TEST 18: HS256 made with the RSA public PEM as secret: not allowed by default
--- config
    grpc_guard_require_tls off;
    location /test.Echo/ {
        grpc_guard_auth jwt;
        grpc_guard_jwt_key_file $TEST_NGINX_JWT_DIR/rsa.pub;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call
method: /test.Echo/Unary
metadata: authorization: Bearer $TEST_NGINX_JWT_HS_PUB
--- grpc_status: 16
--- upstream_calls: 0
--- error_log
refused "/test.Echo/Unary" with 16: jwt_bad_alg



=== TEST 19: HS256 with the RSA public PEM, even when HS256 is allowed: an RSA key never verifies HMAC
--- config
    grpc_guard_require_tls off;
    location /test.Echo/ {
        grpc_guard_auth jwt;
        grpc_guard_jwt_key_file $TEST_NGINX_JWT_DIR/rsa.pub;
        grpc_guard_jwt_algorithms RS256 HS256;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call
method: /test.Echo/Unary
metadata: authorization: Bearer $TEST_NGINX_JWT_HS_PUB
--- grpc_status: 16
--- upstream_calls: 0
--- error_log
refused "/test.Echo/Unary" with 16: jwt_bad_alg



=== TEST 20: HS256 with the RSA public PEM, HS256 allowed, an oct key present: bad signature
--- config
    grpc_guard_require_tls off;
    location /test.Echo/ {
        grpc_guard_auth jwt;
        grpc_guard_jwt_key_file $TEST_NGINX_JWT_DIR/rsa.pub;
        grpc_guard_jwt_key_file $TEST_NGINX_JWT_DIR/oct.json;
        grpc_guard_jwt_algorithms RS256 HS256;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call
method: /test.Echo/Unary
metadata: authorization: Bearer $TEST_NGINX_JWT_HS_PUB
--- grpc_status: 16
--- upstream_calls: 0
--- error_log
refused "/test.Echo/Unary" with 16: jwt_bad_signature



=== TEST 21: HS256 with an oct key passes when listed; HS512 is refused when only HS256 is
--- config
    grpc_guard_require_tls off;
    location /test.Echo/ {
        grpc_guard_auth jwt;
        grpc_guard_jwt_key_file $TEST_NGINX_JWT_DIR/oct.json;
        grpc_guard_jwt_algorithms HS256;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call eval
[{ method => '/test.Echo/Unary',
   metadata => ["authorization: Bearer $ENV{TEST_NGINX_JWT_HS256}"] },
 { method => '/test.Echo/Unary',
   metadata => ["authorization: Bearer $ENV{TEST_NGINX_JWT_HS512}"] }]
--- grpc_status eval
[0, 16]
--- upstream_calls: 1
--- error_log
refused "/test.Echo/Unary" with 16: jwt_bad_alg



=== TEST 22: HS* is not allowed by default, even with an oct key
--- config
    grpc_guard_require_tls off;
    location /test.Echo/ {
        grpc_guard_auth jwt;
        grpc_guard_jwt_key_file $TEST_NGINX_JWT_DIR/oct.json;
        grpc_guard_jwt_key_file $TEST_NGINX_JWT_DIR/jwks.json;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call
method: /test.Echo/Unary
metadata: authorization: Bearer $TEST_NGINX_JWT_HS256
--- grpc_status: 16
--- upstream_calls: 0
--- error_log
refused "/test.Echo/Unary" with 16: jwt_bad_alg



=== TEST 23: a byte inserted in the signature
--- grpc_call
method: /test.Echo/Unary
metadata: authorization: Bearer $TEST_NGINX_JWT_INSERT
--- grpc_status: 16
--- upstream_calls: 0
--- error_log eval
qr/refused "\/test.Echo\/Unary" with 16: jwt_(malformed|bad_signature)/



=== TEST 24: "+" and "/" (base64, not base64url) in the signature
--- grpc_call
method: /test.Echo/Unary
metadata: authorization: Bearer $TEST_NGINX_JWT_PLUS
--- grpc_status: 16
--- upstream_calls: 0
--- error_log
refused "/test.Echo/Unary" with 16: jwt_malformed



=== TEST 25: "=" padding on the signature
--- grpc_call
method: /test.Echo/Unary
metadata: authorization: Bearer $TEST_NGINX_JWT_PAD
--- grpc_status: 16
--- upstream_calls: 0
--- error_log
refused "/test.Echo/Unary" with 16: jwt_malformed



=== TEST 26: a trailing dot (four segments)
--- grpc_call
method: /test.Echo/Unary
metadata: authorization: Bearer $TEST_NGINX_JWT_DOT
--- grpc_status: 16
--- upstream_calls: 0
--- error_log
refused "/test.Echo/Unary" with 16: jwt_malformed



=== TEST 27: non-zero trailing bits in the last base64url character
--- grpc_call
method: /test.Echo/Unary
metadata: authorization: Bearer $TEST_NGINX_JWT_BITS
--- grpc_status: 16
--- upstream_calls: 0
--- error_log
refused "/test.Echo/Unary" with 16: jwt_malformed



=== TEST 28: the payload changed after signing
--- grpc_call
method: /test.Echo/Unary
metadata: authorization: Bearer $TEST_NGINX_JWT_TAMPERED
--- grpc_status: 16
--- upstream_calls: 0
--- error_log
refused "/test.Echo/Unary" with 16: jwt_bad_signature



=== TEST 29: an unknown kid
--- grpc_call
method: /test.Echo/Unary
metadata: authorization: Bearer $TEST_NGINX_JWT_UNKNOWN
--- grpc_status: 16
--- grpc_message: unauthenticated
--- upstream_calls: 0
--- error_log
refused "/test.Echo/Unary" with 16: jwt_unknown_kid
--- access_log
reason=jwt_unknown_kid status=16



=== TEST 30: the kid of another key, which does not verify the signature
--- grpc_call
method: /test.Echo/Unary
metadata: authorization: Bearer $TEST_NGINX_JWT_OTHERKID
--- grpc_status: 16
--- upstream_calls: 0
--- error_log
refused "/test.Echo/Unary" with 16: jwt_bad_signature



=== TEST 31: the kid of an EC key on an RS256 token: the key is not for that algorithm
--- grpc_call
method: /test.Echo/Unary
metadata: authorization: Bearer $TEST_NGINX_JWT_ECKID_RSA
--- grpc_status: 16
--- upstream_calls: 0
--- error_log
refused "/test.Echo/Unary" with 16: jwt_bad_alg



=== TEST 32: a duplicate claim
--- grpc_call
method: /test.Echo/Unary
metadata: authorization: Bearer $TEST_NGINX_JWT_DUP
--- grpc_status: 16
--- upstream_calls: 0
--- error_log
refused "/test.Echo/Unary" with 16: jwt_malformed



=== TEST 33: a duplicate header member
--- grpc_call
method: /test.Echo/Unary
metadata: authorization: Bearer $TEST_NGINX_JWT_DUPHDR
--- grpc_status: 16
--- upstream_calls: 0
--- error_log
refused "/test.Echo/Unary" with 16: jwt_malformed



=== TEST 34: crit with an extension is refused; an empty crit passes
--- grpc_call eval
[{ method => '/test.Echo/Unary',
   metadata => ["authorization: Bearer $ENV{TEST_NGINX_JWT_CRIT}"] },
 { method => '/test.Echo/Unary',
   metadata => ["authorization: Bearer $ENV{TEST_NGINX_JWT_CRIT_EMPTY}"] }]
--- grpc_status eval
[16, 0]
--- upstream_calls: 1
--- error_log
refused "/test.Echo/Unary" with 16: jwt_crit



=== TEST 35: an empty signature
--- grpc_call
method: /test.Echo/Unary
metadata: authorization: Bearer $TEST_NGINX_JWT_EMPTYSIG
--- grpc_status: 16
--- upstream_calls: 0
--- error_log
refused "/test.Echo/Unary" with 16: jwt_bad_signature



=== TEST 36: an ECDSA signature of zeros (r = s = 0)
--- grpc_call
method: /test.Echo/Unary
metadata: authorization: Bearer $TEST_NGINX_JWT_ZERO
--- grpc_status: 16
--- upstream_calls: 0
--- error_log
refused "/test.Echo/Unary" with 16: jwt_bad_signature



=== TEST 37: an ECDSA signature in DER instead of R || S
--- grpc_call
method: /test.Echo/Unary
metadata: authorization: Bearer $TEST_NGINX_JWT_DER
--- grpc_status: 16
--- upstream_calls: 0
--- error_log
refused "/test.Echo/Unary" with 16: jwt_bad_signature



=== TEST 38: JSON nested deeper than the limit
--- grpc_call
method: /test.Echo/Unary
metadata: authorization: Bearer $TEST_NGINX_JWT_DEEP
--- grpc_status: 16
--- upstream_calls: 0
--- error_log
refused "/test.Echo/Unary" with 16: jwt_malformed



=== TEST 39: a payload that is not a JSON object
--- grpc_call
method: /test.Echo/Unary
metadata: authorization: Bearer $TEST_NGINX_JWT_ARRAYPL
--- grpc_status: 16
--- upstream_calls: 0
--- error_log
refused "/test.Echo/Unary" with 16: jwt_malformed



=== TEST 40: no exp: exp is required by default
--- grpc_call
method: /test.Echo/Unary
metadata: authorization: Bearer $TEST_NGINX_JWT_NOEXP
--- grpc_status: 16
--- upstream_calls: 0
--- error_log
refused "/test.Echo/Unary" with 16: jwt_missing_claim



=== TEST 41: exp as a string or a boolean is not a NumericDate
--- grpc_call eval
[{ method => '/test.Echo/Unary',
   metadata => ["authorization: Bearer $ENV{TEST_NGINX_JWT_EXPSTR}"] },
 { method => '/test.Echo/Unary',
   metadata => ["authorization: Bearer $ENV{TEST_NGINX_JWT_EXPBOOL}"] }]
--- grpc_status: 16
--- upstream_calls: 0
--- grep_error_log eval: qr/with 16: jwt_\w+/
--- grep_error_log_out
with 16: jwt_malformed
with 16: jwt_malformed



=== TEST 42: exp as a real number passes
--- grpc_call
method: /test.Echo/Unary
metadata: authorization: Bearer $TEST_NGINX_JWT_EXPREAL
--- grpc_status: 0
--- upstream_calls: 1



=== TEST 43: expired beyond the leeway (60s by default)
--- init
tokens(T => { key => 'rsa', kid => 'rsa1', claims => { exp => { rel => -90 } } });
--- grpc_call
method: /test.Echo/Unary
metadata: authorization: Bearer $TEST_NGINX_JWT_T
--- grpc_status: 16
--- grpc_message: unauthenticated
--- upstream_calls: 0
--- error_log
refused "/test.Echo/Unary" with 16: jwt_expired
--- access_log
reason=jwt_expired status=16



=== TEST 44: expired, but within the leeway
--- init
tokens(T => { key => 'rsa', kid => 'rsa1', claims => { exp => { rel => -30 } } });
--- grpc_call
method: /test.Echo/Unary
metadata: authorization: Bearer $TEST_NGINX_JWT_T
--- grpc_status: 0
--- upstream_calls: 1



=== TEST 45: the same token with no leeway
--- init
tokens(T => { key => 'rsa', kid => 'rsa1', claims => { exp => { rel => -30 } } });
--- config
    grpc_guard_require_tls off;
    location /test.Echo/ {
        grpc_guard_auth jwt;
        grpc_guard_jwt_key_file $TEST_NGINX_JWT_DIR/jwks.json;
        grpc_guard_jwt_leeway 0;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call
method: /test.Echo/Unary
metadata: authorization: Bearer $TEST_NGINX_JWT_T
--- grpc_status: 16
--- upstream_calls: 0
--- error_log
refused "/test.Echo/Unary" with 16: jwt_expired



=== TEST 46: a larger leeway lets the token older than 60s pass
--- init
tokens(T => { key => 'rsa', kid => 'rsa1', claims => { exp => { rel => -90 } } });
--- config
    grpc_guard_require_tls off;
    location /test.Echo/ {
        grpc_guard_auth jwt;
        grpc_guard_jwt_key_file $TEST_NGINX_JWT_DIR/jwks.json;
        grpc_guard_jwt_leeway 2m;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call
method: /test.Echo/Unary
metadata: authorization: Bearer $TEST_NGINX_JWT_T
--- grpc_status: 0
--- upstream_calls: 1



=== TEST 47: nbf in the future
--- grpc_call
method: /test.Echo/Unary
metadata: authorization: Bearer $TEST_NGINX_JWT_NBF
--- grpc_status: 16
--- upstream_calls: 0
--- error_log
refused "/test.Echo/Unary" with 16: jwt_not_yet_valid



=== TEST 48: nbf in the future, but within the leeway
--- init
tokens(T => { key => 'rsa', kid => 'rsa1', claims => { nbf => { rel => 30 } } });
--- grpc_call
method: /test.Echo/Unary
metadata: authorization: Bearer $TEST_NGINX_JWT_T
--- grpc_status: 0
--- upstream_calls: 1



=== TEST 49: iat in the future
--- grpc_call
method: /test.Echo/Unary
metadata: authorization: Bearer $TEST_NGINX_JWT_IAT
--- grpc_status: 16
--- upstream_calls: 0
--- error_log
refused "/test.Echo/Unary" with 16: jwt_iat_future



=== TEST 50: a wrong issuer, and an issuer that is not a string
--- grpc_call eval
[{ method => '/test.Echo/Unary',
   metadata => ["authorization: Bearer $ENV{TEST_NGINX_JWT_ISS}"] },
 { method => '/test.Echo/Unary',
   metadata => ["authorization: Bearer $ENV{TEST_NGINX_JWT_ISS_NUM}"] }]
--- grpc_status: 16
--- upstream_calls: 0
--- grep_error_log eval: qr/with 16: jwt_\w+/
--- grep_error_log_out
with 16: jwt_bad_issuer
with 16: jwt_malformed



=== TEST 51: a wrong audience, as a string, an array, or absent
--- grpc_call eval
[{ method => '/test.Echo/Unary',
   metadata => ["authorization: Bearer $ENV{TEST_NGINX_JWT_AUD}"] },
 { method => '/test.Echo/Unary',
   metadata => ["authorization: Bearer $ENV{TEST_NGINX_JWT_AUD_BAD}"] },
 { method => '/test.Echo/Unary',
   metadata => ["authorization: Bearer $ENV{TEST_NGINX_JWT_NOAUD}"] }]
--- grpc_status: 16
--- upstream_calls: 0
--- grep_error_log eval: qr/with 16: jwt_\w+/
--- grep_error_log_out
with 16: jwt_bad_audience
with 16: jwt_bad_audience
with 16: jwt_bad_audience



=== TEST 52: the audience as an array with a listed element passes
--- grpc_call
method: /test.Echo/Unary
metadata: authorization: Bearer $TEST_NGINX_JWT_AUD_ARRAY
--- grpc_status: 0
--- upstream_calls: 1



=== TEST 53: grpc_guard_jwt_require: a missing claim
--- config
    grpc_guard_require_tls off;
    location /test.Echo/ {
        grpc_guard_auth jwt;
        grpc_guard_jwt_key_file $TEST_NGINX_JWT_DIR/jwks.json;
        grpc_guard_jwt_require exp sub;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call eval
[{ method => '/test.Echo/Unary',
   metadata => ["authorization: Bearer $ENV{TEST_NGINX_JWT_NOSUB}"] },
 { method => '/test.Echo/Unary',
   metadata => ["authorization: Bearer $ENV{TEST_NGINX_JWT_RS256}"] }]
--- grpc_status eval
[16, 0]
--- upstream_calls: 1
--- error_log
refused "/test.Echo/Unary" with 16: jwt_missing_claim



=== TEST 54: grpc_guard_jwt_require without exp lets a token without exp pass
--- config
    grpc_guard_require_tls off;
    location /test.Echo/ {
        grpc_guard_auth jwt;
        grpc_guard_jwt_key_file $TEST_NGINX_JWT_DIR/jwks.json;
        grpc_guard_jwt_require sub;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call
method: /test.Echo/Unary
metadata: authorization: Bearer $TEST_NGINX_JWT_NOEXP
--- grpc_status: 0
--- upstream_calls: 1



=== TEST 55: a sub that is not a string
--- grpc_call
method: /test.Echo/Unary
metadata: authorization: Bearer $TEST_NGINX_JWT_SUBNUM
--- grpc_status: 16
--- upstream_calls: 0
--- error_log
refused "/test.Echo/Unary" with 16: jwt_malformed



=== TEST 56: grpc_guard_jwt_max_lifetime: exp - iat over the limit
--- config
    grpc_guard_require_tls off;
    location /test.Echo/ {
        grpc_guard_auth jwt;
        grpc_guard_jwt_key_file $TEST_NGINX_JWT_DIR/jwks.json;
        grpc_guard_jwt_max_lifetime 1h;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call eval
[{ method => '/test.Echo/Unary',
   metadata => ["authorization: Bearer $ENV{TEST_NGINX_JWT_LONGLIFE}"] },
 { method => '/test.Echo/Unary',
   metadata => ["authorization: Bearer $ENV{TEST_NGINX_JWT_RS256}"] }]
--- grpc_status eval
[16, 0]
--- upstream_calls: 1
--- error_log
refused "/test.Echo/Unary" with 16: jwt_lifetime



=== TEST 57: a 64 KiB token is refused by size, not parsed
--- config
    grpc_guard_require_tls off;
    large_client_header_buffers 4 128k;
    location /test.Echo/ {
        grpc_guard_auth jwt;
        grpc_guard_jwt_key_file $TEST_NGINX_JWT_DIR/jwks.json;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call
method: /test.Echo/Unary
metadata: authorization: Bearer $TEST_NGINX_JWT_HUGE
--- grpc_status: 16
--- grpc_message: unauthenticated
--- upstream_calls: 0
--- error_log
refused "/test.Echo/Unary" with 16: jwt_too_long
--- no_error_log
[warn]



=== TEST 58: grpc_guard_jwt_max_size: a 7000-byte token passes at 8k, not at 4k
--- config
    grpc_guard_require_tls off;
    location /test.Echo/A {
        grpc_guard_auth jwt;
        grpc_guard_jwt_key_file $TEST_NGINX_JWT_DIR/jwks.json;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
    location /test.Echo/B {
        grpc_guard_auth jwt;
        grpc_guard_jwt_key_file $TEST_NGINX_JWT_DIR/jwks.json;
        grpc_guard_jwt_max_size 4k;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call eval
[{ method => '/test.Echo/A',
   metadata => ["authorization: Bearer $ENV{TEST_NGINX_JWT_BIG}"] },
 { method => '/test.Echo/B',
   metadata => ["authorization: Bearer $ENV{TEST_NGINX_JWT_BIG}"] }]
--- grpc_status eval
[0, 16]
--- upstream_calls: 1
--- error_log
refused "/test.Echo/B" with 16: jwt_too_long
