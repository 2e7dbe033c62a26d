# $grpc_guard_jwt_claim_NAME and $grpc_guard_jwt_header_NAME go into
# request headers (grpc_set_header) and text logs: a value with a control
# character (any byte below 0x20, or 0x7f) is empty (not found), and the
# error log names the claim, never its value nor the token.  The call
# itself passes: the token was verified.  (A "\u0000" in a claim makes
# the token malformed: the JSON parser refuses it.)

use Test::Nginx::Socket::Grpc 'no_plan';
use Test::Nginx::Jwt qw(jwt_keys tokens);
use JSON::PP ();

our $JwtDir = jwt_keys();

tokens(
    CTRL  => { key => 'rsa', kid => 'rsa1',
               claims => { sub => 'alice',
                           iss => "https://issuer.test\nx-evil: 1",
                           tenant => "acme\x01corp",
                           del => "a\x7fb",
                           roles => ['reader', "writer\tadmin"],
                           level => 3 },
               header => { note => "one\ntwo" } },
    CLEAN => { key => 'rsa', kid => 'rsa1',
               claims => { sub => 'bob', iss => 'https://issuer.test',
                           tenant => 'acme', roles => ['reader'] },
               header => { note => 'plain' } },
);

our $Config = <<'EOF';
    grpc_guard_require_tls off;
    access_log logs/access.log claims;

    location /test.Echo/ {
        grpc_guard_auth jwt;
        grpc_guard_jwt_key_file $TEST_NGINX_JWT_DIR/jwks.json;
        grpc_set_header x-user $grpc_guard_jwt_claim_sub;
        grpc_set_header x-principal $grpc_guard_principal;
        grpc_set_header x-iss $grpc_guard_jwt_claim_iss;
        grpc_set_header x-tenant $grpc_guard_jwt_claim_tenant;
        grpc_set_header x-del $grpc_guard_jwt_claim_del;
        grpc_set_header x-roles $grpc_guard_jwt_claim_roles;
        grpc_set_header x-level $grpc_guard_jwt_claim_level;
        grpc_set_header x-note $grpc_guard_jwt_header_note;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
EOF

our $HttpConfig = <<'EOF';
    log_format claims 'user=$grpc_guard_principal '
                      'iss=$grpc_guard_jwt_claim_iss '
                      'tenant=$grpc_guard_jwt_claim_tenant '
                      'note=$grpc_guard_jwt_header_note';
EOF

add_block_preprocessor(sub {
    my $block = shift;
    $block->set_value(config => $Config) unless defined $block->config;
    $block->set_value(http_config => $HttpConfig)
        unless defined $block->http_config;
});

sub call {
    my ($tok) = @_;
    return { method => '/test.Echo/Unary',
             metadata => ['authorization: Bearer $TEST_NGINX_JWT_' . $tok] };
}

our $Clean = <<'EOF';
x-user: bob
x-principal: bob
x-iss: https://issuer.test
x-tenant: acme
!x-del
x-roles: reader
!x-level
x-note: plain
EOF

our $Ctrl = <<'EOF';
x-user: alice
x-principal: alice
!x-iss
!x-tenant
!x-del
!x-roles
x-level: 3
!x-note
EOF

no_shuffle();
run_tests();

__DATA__

=== TEST 1: claims with control characters are empty upstream and in the access log
--- log_level: info
--- grpc_call eval
[call('CLEAN'), call('CTRL')]
--- grpc_status: 0
--- upstream_calls: 2
--- upstream_metadata eval
[$main::Clean, $main::Ctrl]
--- access_log
user=bob iss=https://issuer.test tenant=acme note=plain
user=alice iss=- tenant=- note=-
--- error_log
JWT claim "iss" holds a control character
JWT claim "tenant" holds a control character
JWT claim "del" holds a control character
JWT claim "roles" holds a control character
JWT header member "note" holds a control character
--- no_error_log eval
[qr/x-evil|corp|writer|\Q$ENV{TEST_NGINX_JWT_CTRL}\E/,
 qr/"(sub|level)" holds/, 'refused', '[alert]']



=== TEST 2: the same on a verified-token cache hit (iss comes from the cache)
--- grpc_call eval
[call('CTRL'), call('CTRL')]
--- grpc_status: 0
--- upstream_calls: 2
--- upstream_metadata eval
[$main::Ctrl, $main::Ctrl]
--- access_log
user=alice iss=- tenant=- note=-
--- error_log
grpc guard jwt: cache hit, valid
JWT claim "iss" holds a control character
--- no_error_log eval
[qr/x-evil|acme.corp|writer.admin/, 'refused', '[alert]']
