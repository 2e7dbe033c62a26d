# The verified-token cache (grpc_guard_jwt_cache): a token is verified once
# and then found by the SHA-256 of the location's policy and the token; exp
# and nbf are checked again on every hit; claim variables still work on a
# hit; the zone survives a reload; locations with other keys, issuers or
# audiences never share an entry.  Within one connection, the token of the
# previous call is recognized by its bytes ("connection hit"), under the
# same rules: same location policy only, exp checked again.
#
# Blocks run in order: some of them reuse the nginx of the block before
# (no config of their own) to see what that one cached.

use Test::Nginx::Socket::Grpc 'no_plan';
use Test::Nginx::Jwt qw(jwt_keys tokens);
use JSON::PP ();
use Time::HiRes ();

our $JwtDir = jwt_keys();

# nginx -s reload, and wait for the new worker
sub reload {
    my ($edit) = @_;
    my $root = $ENV{TEST_NGINX_SERVER_ROOT};
    if ($edit) {
        my $file = "$root/conf/nginx.conf";
        open my $in, '<', $file or die "$file: $!";
        my $conf = do { local $/; <$in> };
        close $in;
        $edit->() for $conf;
        open my $out, '>', $file or die "$file: $!";
        print $out $conf;
        close $out;
    }
    open my $fh, '<', "$root/logs/nginx.pid" or die "nginx.pid: $!";
    chomp(my $pid = <$fh>);
    close $fh;
    my $log = "$root/logs/error.log";
    my $from = -s $log || 0;
    kill 'HUP', $pid or die "kill HUP $pid: $!";

    # done when the new worker has started
    for (1 .. 300) {
        Time::HiRes::sleep(0.1);
        open my $lf, '<', $log or next;
        seek $lf, $from, 0;
        my $new = do { local $/; <$lf> } // '';
        close $lf;
        last if $new =~ /start worker process/;
    }
    Time::HiRes::sleep(0.3);
}

# Under valgrind nginx runs with "master_process off", where it cannot
# reload an HTTP/2 listener (nginx itself answers garbage after a HUP):
# the reload blocks are not run there.
add_block_preprocessor(sub {
    my $block = shift;
    return unless $ENV{TEST_NGINX_USE_VALGRIND} && $block->name =~ /reload/;
    diag($block->name . ": skipped under valgrind (master_process off)");
    $block->set_value('SKIP', 1);
});

# the token is looked up when the call is made: "init" may make it
sub call {
    my ($tok, $method, %more) = @_;
    return { method => $method || '/test.Echo/Unary',
             metadata => ['authorization: Bearer $TEST_NGINX_JWT_' . $tok,
                          @{ delete $more{metadata} || [] }],
             %more };
}

# the same, on the connection of the call before
sub again {
    my ($tok, $method, %more) = @_;
    return call($tok, $method, same_connection => 'on', %more);
}

tokens(
    RS256    => { key => 'rsa', kid => 'rsa1' },
    TAMPERED => { key => 'rsa', kid => 'rsa1', tamper => 'insert' },
    ES256    => { key => 'ec256', kid => 'ec1' },
    BADISS   => { key => 'rsa', kid => 'rsa1',
                  claims => { iss => 'https://evil.test' } },
    CLAIMS   => { key => 'ec256', kid => 'ec1',
                  claims => { sub => 'carol', level => 3, admin => JSON::PP::true,
                              ratio => 0.5, roles => ['reader', 'writer'],
                              org => { id => 7 } } },
);

no_shuffle();
run_tests();

__DATA__

=== TEST 1: the same token twice: verified once, then a cache hit
--- config
    grpc_guard_require_tls off;
    location /test.Echo/ {
        grpc_guard_auth jwt;
        grpc_guard_jwt_key_file $TEST_NGINX_JWT_DIR/jwks.json;
        grpc_set_header x-user $grpc_guard_jwt_claim_sub;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call eval
[call('RS256'), call('RS256')]
--- grpc_status: 0
--- upstream_calls: 2
--- upstream_metadata eval
["x-user: alice\n!authorization", "x-user: alice\n!authorization"]
--- grep_error_log eval: qr/grpc guard jwt: cache hit, \w+/
--- grep_error_log_out
grpc guard jwt: cache hit, valid



=== TEST 2: the cache is keyed by the whole token: a changed signature is not a hit
--- grpc_call eval
[call('TAMPERED'), call('RS256')]
--- grpc_status eval
[16, 0]
--- upstream_calls: 1
--- error_log
refused "/test.Echo/Unary" with 16: jwt_bad_signature
--- grep_error_log eval: qr/grpc guard jwt: cache hit, \w+/
--- grep_error_log_out
grpc guard jwt: cache hit, valid



=== TEST 3: a refused token is not cached: refused again, verified again
--- grpc_call eval
[call('TAMPERED'), call('TAMPERED')]
--- grpc_status: 16
--- upstream_calls: 0
--- grep_error_log eval: qr/with 16: jwt_\w+|cache hit/
--- grep_error_log_out
with 16: jwt_bad_signature
with 16: jwt_bad_signature



=== TEST 4: the zone survives a reload: the first call after it is a hit
--- init
reload();
--- grpc_call eval
call('RS256')
--- grpc_status: 0
--- upstream_calls: 1
--- error_log
grpc guard jwt: cache hit, valid



=== TEST 5: a reload with other keys: the cached token is verified again, and fails
--- init
reload(sub { s{jwt/jwks\.json}{jwt/ec256.pub} });
--- grpc_call eval
[call('RS256'), call('ES256')]
--- grpc_status eval
[16, 0]
--- upstream_calls: 1
--- error_log
refused "/test.Echo/Unary" with 16: jwt_unknown_kid
--- no_error_log
cache hit



=== TEST 6: claim and header variables work on a cache hit
--- config
    grpc_guard_require_tls off;
    location /test.Echo/ {
        grpc_guard_auth jwt;
        grpc_guard_jwt_key_file $TEST_NGINX_JWT_DIR/jwks.json;
        grpc_set_header x-user $grpc_guard_jwt_claim_sub;
        grpc_set_header x-principal $grpc_guard_principal;
        grpc_set_header x-auth $grpc_guard_auth_method;
        grpc_set_header x-level $grpc_guard_jwt_claim_level;
        grpc_set_header x-admin $grpc_guard_jwt_claim_admin;
        grpc_set_header x-ratio $grpc_guard_jwt_claim_ratio;
        grpc_set_header x-roles $grpc_guard_jwt_claim_roles;
        grpc_set_header x-org $grpc_guard_jwt_claim_org;
        grpc_set_header x-iss $grpc_guard_jwt_claim_iss;
        grpc_set_header x-missing $grpc_guard_jwt_claim_missing;
        grpc_set_header x-alg $grpc_guard_jwt_header_alg;
        grpc_set_header x-kid $grpc_guard_jwt_header_kid;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call eval
[call('CLAIMS'), call('CLAIMS')]
--- grpc_status: 0
--- upstream_calls: 2
--- upstream_metadata eval
my $md = <<'EOF';
x-user: carol
x-principal: carol
x-auth: jwt
x-level: 3
x-admin: true
x-ratio: 0.5
x-roles: reader writer
x-org: {"id":7}
x-iss: https://issuer.test
!x-missing
x-alg: ES256
x-kid: ec1
EOF
[$md, $md]
--- error_log
grpc guard jwt: cache hit, valid



=== TEST 7: locations with other issuers never share an entry
--- config
    grpc_guard_require_tls off;
    grpc_guard_jwt_key_file $TEST_NGINX_JWT_DIR/jwks.json;
    location /test.Echo/ {
        grpc_guard_auth jwt;
        grpc_guard_jwt_issuer https://issuer.test;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
    location /test.Strict/ {
        grpc_guard_auth jwt;
        grpc_guard_jwt_issuer https://other-issuer.test;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call eval
[call('RS256'), call('RS256'), call('RS256', '/test.Strict/Unary'),
 call('RS256', '/test.Strict/Unary')]
--- grpc_status eval
[0, 0, 16, 16]
--- upstream_calls: 2
--- grep_error_log eval: qr/with 16: jwt_\w+|cache hit, \w+/
--- grep_error_log_out
cache hit, valid
with 16: jwt_bad_issuer
with 16: jwt_bad_issuer



=== TEST 8: a cached token that expires is refused on the next hit
--- init
$main::ShortExp = time + 8;
tokens(SHORT => { key => 'rsa', kid => 'rsa1',
                  claims => { exp => $main::ShortExp } });
--- config
    grpc_guard_require_tls off;
    location /test.Echo/ {
        grpc_guard_auth jwt;
        grpc_guard_jwt_key_file $TEST_NGINX_JWT_DIR/jwks.json;
        grpc_guard_jwt_leeway 0;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call eval
[call('SHORT'), call('SHORT')]
--- grpc_status: 0
--- upstream_calls: 2
--- error_log
grpc guard jwt: cache hit, valid



=== TEST 9: (same nginx, once exp has passed) the cached token has expired
--- init
Time::HiRes::sleep($main::ShortExp + 1.5 - Time::HiRes::time())
    if $main::ShortExp + 1.5 > Time::HiRes::time();
--- grpc_call eval
call('SHORT')
--- grpc_status: 16
--- grpc_message: unauthenticated
--- upstream_calls: 0
--- error_log
grpc guard jwt: cache hit, jwt_expired
refused "/test.Echo/Unary" with 16: jwt_expired



=== TEST 10: grpc_guard_jwt_cache off: every call is verified
--- http_config
    grpc_guard_jwt_cache off;
--- config
    grpc_guard_require_tls off;
    location /test.Echo/ {
        grpc_guard_auth jwt;
        grpc_guard_jwt_key_file $TEST_NGINX_JWT_DIR/jwks.json;
        grpc_set_header x-user $grpc_guard_jwt_claim_sub;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call eval
[call('RS256'), call('RS256')]
--- grpc_status: 0
--- upstream_calls: 2
--- upstream_metadata eval
["x-user: alice", "x-user: alice"]
--- no_error_log
cache hit



=== TEST 11: a small cache that is full still works (old entries are evicted)
--- http_config
    grpc_guard_jwt_cache 32k;
--- config
    grpc_guard_require_tls off;
    location /test.Echo/ {
        grpc_guard_auth jwt;
        grpc_guard_jwt_key_file $TEST_NGINX_JWT_DIR/jwks.json;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- init
my %specs = map { ("MANY$_" => { key => 'ec256', kid => 'ec1',
                                 claims => { sub => "user$_" } }) } 1 .. 150;
tokens(%specs);
--- grpc_call eval
[map { call("MANY$_") } 1 .. 150, 150]
--- grpc_status: 0
--- upstream_calls: 151
--- timeout: 60
--- error_log
grpc guard jwt: cache hit, valid
--- no_error_log
[crit]
[alert]



=== TEST 12: one connection: the same token again is a connection hit, another token is not
--- config
    grpc_guard_require_tls off;
    location /test.Echo/ {
        grpc_guard_auth jwt;
        grpc_guard_jwt_key_file $TEST_NGINX_JWT_DIR/jwks.json;
        grpc_set_header x-user $grpc_guard_jwt_claim_sub;
        grpc_set_header x-principal $grpc_guard_principal;
        grpc_set_header x-level $grpc_guard_jwt_claim_level;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call eval
[call('RS256'), again('RS256'), again('CLAIMS'), again('CLAIMS'),
 again('TAMPERED'), again('RS256')]
--- grpc_status eval
[0, 0, 0, 0, 16, 0]
--- upstream_calls: 5
--- upstream_metadata eval
["x-user: alice\nx-principal: alice\n!x-level",
 "x-user: alice\nx-principal: alice\n!x-level",
 "x-user: carol\nx-principal: carol\nx-level: 3",
 "x-user: carol\nx-principal: carol\nx-level: 3",
 "x-user: alice\nx-principal: alice\n!x-level"]
--- grep_error_log eval: qr/grpc guard jwt: (?:connection|cache) hit, \w+|with 16: jwt_\w+/
--- grep_error_log_out
grpc guard jwt: connection hit, valid
grpc guard jwt: connection hit, valid
with 16: jwt_bad_signature
grpc guard jwt: cache hit, valid



=== TEST 13: one connection: a token remembered for one location is checked afresh by another
--- config
    grpc_guard_require_tls off;
    grpc_guard_jwt_key_file $TEST_NGINX_JWT_DIR/jwks.json;
    location /test.Echo/ {
        grpc_guard_auth jwt;
        grpc_guard_jwt_issuer https://issuer.test;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
    location /test.Strict/ {
        grpc_guard_auth jwt;
        grpc_guard_jwt_issuer https://other-issuer.test;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call eval
[call('RS256'), again('RS256', '/test.Strict/Unary'), again('RS256'),
 again('RS256', '/test.Strict/Unary')]
--- grpc_status eval
[0, 16, 0, 16]
--- upstream_calls: 2
--- grep_error_log eval: qr/grpc guard jwt: (?:connection|cache) hit, \w+|with 16: jwt_\w+/
--- grep_error_log_out
with 16: jwt_bad_issuer
grpc guard jwt: connection hit, valid
with 16: jwt_bad_issuer



=== TEST 14: one connection: a remembered token that expires is refused on the next call
--- init
$main::ConnExp = time + 3;
tokens(CONNEXP => { key => 'rsa', kid => 'rsa1',
                    claims => { exp => $main::ConnExp } });
--- config
    grpc_guard_require_tls off;
    location /test.Echo/ {
        grpc_guard_auth jwt;
        grpc_guard_jwt_key_file $TEST_NGINX_JWT_DIR/jwks.json;
        grpc_guard_jwt_leeway 0;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call eval
[call('CONNEXP'), again('CONNEXP', undef, metadata => ['x-test-sleep: 4.5']),
 again('CONNEXP')]
--- grpc_status eval
[0, 0, 16]
--- upstream_calls: 2
--- timeout: 15
--- grep_error_log eval: qr/grpc guard jwt: (?:connection|cache) hit, \w+|with 16: jwt_\w+/
--- grep_error_log_out
grpc guard jwt: connection hit, valid
grpc guard jwt: connection hit, jwt_expired
with 16: jwt_expired



=== TEST 15: grpc_guard_jwt_cache off: no connection hit either
--- http_config
    grpc_guard_jwt_cache off;
--- config
    grpc_guard_require_tls off;
    location /test.Echo/ {
        grpc_guard_auth jwt;
        grpc_guard_jwt_key_file $TEST_NGINX_JWT_DIR/jwks.json;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call eval
[call('RS256'), again('RS256'), again('RS256')]
--- grpc_status: 0
--- upstream_calls: 3
--- no_error_log
hit,
