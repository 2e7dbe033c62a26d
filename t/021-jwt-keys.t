# JWT verification keys (grpc_guard_jwt_key_file): JWK Sets and single
# JWKs, PEM public keys (SPKI and PKCS #1) and certificates; every key is
# bound to the algorithms its type allows (and to its own "alg"); bad key
# files stop `nginx -t` with a message that names the file.

use Test::Nginx::Socket::Grpc 'no_plan';
use Test::Nginx::Jwt qw(jwt_keys tokens);
use JSON::PP ();

our $JwtDir = jwt_keys();

our $Json = JSON::PP->new->canonical;

sub write_json {
    my ($name, $data) = @_;
    open my $fh, '>', "$JwtDir/$name" or BAIL_OUT("$name: $!");
    print $fh $Json->encode($data);
    close $fh;
}

# JWK Sets derived from jwks.json: the RSA key restricted to RS256 by its
# "alg", and a single JWK (not a set) without "use"
{
    open my $fh, '<', "$JwtDir/jwks.json" or BAIL_OUT("jwks.json: $!");
    my $jwks = $Json->decode(do { local $/; <$fh> });
    close $fh;
    my ($rsa) = grep { $_->{kid} eq 'rsa1' } @{ $jwks->{keys} };
    my ($ed) = grep { $_->{kid} eq 'ed1' } @{ $jwks->{keys} };
    write_json('rsa-rs256.json', { keys => [{ %$rsa, alg => 'RS256' }] });
    my %single = %$ed;
    delete $single{use};
    write_json('ed-single.json', \%single);
    write_json('rsa-ops.json',
               { keys => [{ %$rsa, key_ops => ['verify'] }] });
    write_json('bad-ops.json',
               { keys => [{ %$rsa, key_ops => ['encrypt'] }] });
}

tokens(
    RS256       => { key => 'rsa' },
    RS256_KID   => { key => 'rsa', kid => 'some-kid' },
    PS256       => { key => 'rsa', alg => 'PS256' },
    RS256_RSA2  => { key => 'rsa2' },
    ES256       => { key => 'ec256' },
    ES384       => { key => 'ec384' },
    ES256_BY384 => { key => 'ec384', alg => 'ES256', sign_alg => 'ES384' },
    EDDSA       => { key => 'ed25519' },
    EDDSA_KID   => { key => 'ed25519', kid => 'ed1' },
);

our $Location = <<'EOF';
    grpc_guard_require_tls off;
    location /test.Echo/ {
        grpc_guard_auth jwt;
        %KEYS%
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
EOF

# "--- keys" lists key files (or other directives) for the location
add_block_preprocessor(sub {
    my $block = shift;
    return unless defined $block->keys && !defined $block->config;
    my $keys = join "\n        ",
        map { /;$/ ? $_ : "grpc_guard_jwt_key_file \$TEST_NGINX_JWT_DIR/$_;" }
        grep { /\S/ } split /\n/, $block->keys;
    (my $config = $Location) =~ s/%KEYS%/$keys/;
    $block->set_value(config => $config);
});

sub call { my ($tok, $method) = @_;
    return { method => $method || '/test.Echo/Unary',
             metadata => ["authorization: Bearer $ENV{\"TEST_NGINX_JWT_$tok\"}"] };
}

run_tests();

__DATA__

=== TEST 1: a PEM public key (SPKI) verifies RS256 and PS256, with or without a kid
--- keys
rsa.pub
--- grpc_call eval
[call('RS256'), call('PS256'), call('RS256_KID')]
--- grpc_status: 0
--- upstream_calls: 3
--- no_error_log
grpc guard: refused



=== TEST 2: a PEM certificate
--- keys
rsa.crt
--- grpc_call eval
[call('RS256'), call('RS256_RSA2')]
--- grpc_status eval
[0, 16]
--- upstream_calls: 1
--- error_log
refused "/test.Echo/Unary" with 16: jwt_bad_signature



=== TEST 3: a PKCS #1 "RSA PUBLIC KEY"
--- keys
rsa.pkcs1.pub
--- grpc_call eval
call('RS256')
--- grpc_status: 0
--- upstream_calls: 1



=== TEST 4: a P-256 key verifies ES256 only: an ES384 token finds no key for it
--- keys
ec256.pub
--- grpc_call eval
[call('ES256'), call('ES384')]
--- grpc_status eval
[0, 16]
--- upstream_calls: 1
--- error_log
refused "/test.Echo/Unary" with 16: jwt_bad_alg



=== TEST 5: a P-384 key does not verify an ES256 token (curve bound to the algorithm)
--- keys
ec384.pub
--- grpc_call eval
call('ES256_BY384')
--- grpc_status: 16
--- upstream_calls: 0
--- error_log
refused "/test.Echo/Unary" with 16: jwt_bad_alg



=== TEST 6: an Ed25519 PEM key
--- keys
ed25519.pub
--- grpc_call eval
call('EDDSA')
--- grpc_status: 0
--- upstream_calls: 1



=== TEST 7: several key files: each key is used for its own algorithm
--- keys
rsa.pub
ec256.pub
ed25519.pub
--- grpc_call eval
[call('RS256'), call('ES256'), call('EDDSA'), call('ES384')]
--- grpc_status eval
[0, 0, 0, 16]
--- upstream_calls: 3



=== TEST 8: a JWK's own "alg" restricts it: RS256 passes, PS256 finds no key
--- keys
rsa-rs256.json
--- grpc_call eval
[call('RS256'), call('PS256')]
--- grpc_status eval
[0, 16]
--- upstream_calls: 1
--- error_log
refused "/test.Echo/Unary" with 16: jwt_bad_alg



=== TEST 9: a single JWK (not a set), without "use", with and without a matching kid
--- keys
ed-single.json
--- grpc_call eval
[call('EDDSA_KID'), call('EDDSA')]
--- grpc_status: 0
--- upstream_calls: 2



=== TEST 10: key_ops with "verify" is accepted
--- keys
rsa-ops.json
--- grpc_call eval
call('RS256')
--- grpc_status: 0



=== TEST 11: without a kid, at most 4 keys of the algorithm are tried
--- keys
rsa2.pub
rsa2.pub
rsa2.pub
rsa2.pub
rsa.pub
--- grpc_call eval
[call('RS256'), call('RS256_RSA2')]
--- grpc_status eval
[16, 0]
--- upstream_calls: 1
--- error_log
refused "/test.Echo/Unary" with 16: jwt_bad_signature



=== TEST 12: the same keys, the right one among the first four
--- keys
rsa2.pub
rsa.pub
rsa2.pub
rsa2.pub
rsa2.pub
--- grpc_call eval
call('RS256')
--- grpc_status: 0



=== TEST 13: an RSA key under 2048 bits in a JWKS
--- keys
bad-rsa1024.json
--- must_die
--- error_log eval
qr{grpc_guard_jwt_key_file ".*/jwt/bad-rsa1024\.json": key 1 \(kid "small"\) is an RSA key of 1024 bits}



=== TEST 14: an RSA key under 2048 bits in PEM
--- keys
bad-rsa1024.pem
--- must_die
--- error_log eval
qr{grpc_guard_jwt_key_file ".*/jwt/bad-rsa1024\.pem": block 1 is an RSA key of 1024 bits}



=== TEST 15: a JWK with "use": "enc"
--- keys
bad-enc.json
--- must_die
--- error_log eval
qr{grpc_guard_jwt_key_file ".*/jwt/bad-enc\.json": key 1 \(kid "rsa1"\) has "use": "enc"}



=== TEST 16: a JWK with private members
--- keys
bad-private.json
--- must_die
--- error_log eval
qr{grpc_guard_jwt_key_file ".*/jwt/bad-private\.json": .*contains private key material \("d"\)}



=== TEST 17: a private key in PEM
--- keys
bad-private.pem
--- must_die
--- error_log eval
qr{grpc_guard_jwt_key_file ".*/jwt/bad-private\.pem": block 1 is a private key}



=== TEST 18: an EC JWK whose "crv" does not match its coordinates
--- keys
bad-crv.json
--- must_die
--- error_log eval
qr{grpc_guard_jwt_key_file ".*/jwt/bad-crv\.json": key 1 \(kid "ec1"\): "x" and "y" do not match "crv": "P-384"}



=== TEST 19: a JWK whose "alg" does not fit its type
--- keys
bad-alg.json
--- must_die
--- error_log eval
qr{grpc_guard_jwt_key_file ".*/jwt/bad-alg\.json": .*"alg": "ES256" does not fit this key}



=== TEST 20: an unknown kty
--- keys
bad-kty.json
--- must_die
--- error_log eval
qr{grpc_guard_jwt_key_file ".*/jwt/bad-kty\.json": .*unsupported "kty": "XYZ"}



=== TEST 21: a member that is not canonical base64url
--- keys
bad-b64.json
--- must_die
--- error_log eval
qr{grpc_guard_jwt_key_file ".*/jwt/bad-b64\.json": .*"n" is not canonical base64url}



=== TEST 22: an oct key shorter than 32 bytes
--- keys
bad-short-oct.json
--- must_die
--- error_log eval
qr{grpc_guard_jwt_key_file ".*/jwt/bad-short-oct\.json": key 1: an "oct" key needs at least 32 bytes}



=== TEST 23: duplicate members in a JWK
--- keys
bad-dup.json
--- must_die
--- error_log eval
qr{grpc_guard_jwt_key_file ".*/jwt/bad-dup\.json": invalid JSON .*duplicate}



=== TEST 24: a PEM block that does not decode
--- keys
bad-garbage.pem
--- must_die
--- error_log eval
qr{grpc_guard_jwt_key_file ".*/jwt/bad-garbage\.pem": block 1 could not be decoded}



=== TEST 25: a JWK Set without keys
--- keys
bad-empty.json
--- must_die
--- error_log eval
qr{grpc_guard_jwt_key_file ".*/jwt/bad-empty\.json" has no key}



=== TEST 26: invalid JSON
--- keys
bad-json.json
--- must_die
--- error_log eval
qr{grpc_guard_jwt_key_file ".*/jwt/bad-json\.json": invalid JSON at line 1}



=== TEST 27: key_ops without "verify"
--- keys
bad-ops.json
--- must_die
--- error_log eval
qr{grpc_guard_jwt_key_file ".*/jwt/bad-ops\.json": .*"key_ops" without "verify"}



=== TEST 28: a file that does not exist
--- keys
no-such-file.json
--- must_die
--- error_log eval
qr{open\(\) ".*/jwt/no-such-file\.json" failed}



=== TEST 29: a file that is neither JSON nor PEM
--- keys
oct.secret
--- must_die
--- error_log eval
qr{grpc_guard_jwt_key_file ".*/jwt/oct\.secret" is neither a JWKS}



=== TEST 30: grpc_guard_auth jwt without any key file
--- config
    location /test.Echo/ {
        grpc_guard_auth jwt;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- must_die
--- error_log
"grpc_guard_auth jwt" needs keys: no "grpc_guard_jwt_key_file" is defined



=== TEST 31: only an oct key, while HS* is not allowed
--- keys
oct.json
--- must_die
--- error_log
none of the keys of "grpc_guard_jwt_key_file" can verify an algorithm that "grpc_guard_jwt_algorithms" allows



=== TEST 32: "none" cannot be allowed
--- keys
rsa.pub
grpc_guard_jwt_algorithms RS256 none;
--- must_die
--- error_log
the "none" algorithm is never allowed



=== TEST 33: algorithm names are case-sensitive
--- keys
rsa.pub
grpc_guard_jwt_algorithms rs256;
--- must_die
--- error_log
unknown JWS algorithm "rs256"



=== TEST 34: api_key without a key file, and an unknown method
--- config
    location /test.Echo/ {
        grpc_guard_auth jwt api_key;
        grpc_guard_jwt_key_file $TEST_NGINX_JWT_DIR/rsa.pub;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
    location /other.Echo/ {
        grpc_guard_auth jwt oauth;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- must_die
--- error_log eval
[qr/"grpc_guard_auth api_key" needs "grpc_guard_api_key_file"|invalid authentication method "oauth"/]



=== TEST 35: a method listed twice
--- config
    location /test.Echo/ {
        grpc_guard_auth jwt jwt;
        grpc_guard_jwt_key_file $TEST_NGINX_JWT_DIR/rsa.pub;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- must_die
--- error_log
authentication method "jwt" is listed twice



=== TEST 36: grpc_guard_jwt_cache is an http-level directive
--- config
    grpc_guard_jwt_cache 1m;
--- must_die
--- error_log
"grpc_guard_jwt_cache" directive is not allowed here



=== TEST 37: a cache too small
--- http_config
    grpc_guard_jwt_cache 4k;
--- must_die
--- error_log
jwt cache "4k" is too small



=== TEST 38: grpc_guard_jwt_max_size out of bounds
--- keys
rsa.pub
grpc_guard_jwt_max_size 1m;
--- must_die
--- error_log
"grpc_guard_jwt_max_size" must be between 256 and 65536



=== TEST 39: a JWK set at an outer level is inherited; an inner list replaces it
--- config
    grpc_guard_require_tls off;
    grpc_guard_jwt_key_file $TEST_NGINX_JWT_DIR/rsa.pub;
    location /test.Echo/ {
        grpc_guard_auth jwt;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
    location /test.Other/ {
        grpc_guard_auth jwt;
        grpc_guard_jwt_key_file $TEST_NGINX_JWT_DIR/ec256.pub;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call eval
[call('RS256'), call('RS256', '/test.Other/Unary'),
 call('ES256', '/test.Other/Unary')]
--- grpc_status eval
[0, 16, 0]
--- upstream_calls: 2
--- error_log
refused "/test.Other/Unary" with 16: jwt_bad_alg
