# grpc_guard_auth with several methods: all required by default, any with
# grpc_guard_auth_satisfy any; the principal and the audit record keep
# every method that succeeded.

use Test::Nginx::Socket::Grpc 'no_plan';
use Test::Nginx::Jwt qw(jwt_keys tokens);
use Digest::SHA qw(sha256_hex);

our $JwtDir = jwt_keys();

tokens(ALICE => { key => 'rsa', kid => 'rsa1' });

our $Keys = ">>> keys.txt\n"
    . "sha256:" . sha256_hex("k-app") . " mobile-app reader\n";

our $Conf = <<'_EOC_';
    access_log off;
    grpc_guard_audit_log logs/access.log;
    grpc_guard_require_tls off;
    grpc_guard_jwt_key_file $TEST_NGINX_JWT_DIR/jwks.json;
    grpc_guard_api_key_file $TEST_NGINX_HTML_DIR/keys.txt;
    grpc_set_header x-principal $grpc_guard_principal;
    grpc_set_header x-auth $grpc_guard_auth_method;
    grpc_set_header x-client $grpc_guard_api_key_client;
    grpc_set_header x-user $grpc_guard_jwt_claim_sub;
_EOC_

add_block_preprocessor(sub {
    my $block = shift;
    my $config = $block->config;
    $config =~ s/\@CONF\@/$::Conf/;
    $block->set_value('config', $config);
    $block->set_value('user_files', $::Keys);
});

sub call {
    my @md = @_;
    my @lines = ("method: /app.Svc/Get");
    push @lines, "metadata: authorization: Bearer $ENV{TEST_NGINX_JWT_ALICE}"
        if grep { $_ eq 'jwt' } @md;
    push @lines, "metadata: x-api-key: k-app" if grep { $_ eq 'key' } @md;
    push @lines, "metadata: x-api-key: k-wrong" if grep { $_ eq 'badkey' } @md;
    return join "\n", @lines;
}

no_shuffle();
no_root_location();
run_tests();

__DATA__

=== TEST 1: jwt and api_key both required: both identities recorded
--- config
    @CONF@
    location / {
        grpc_guard_auth jwt api_key;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call eval
[main::call('jwt', 'key'), main::call('jwt'), main::call('key'),
 main::call('jwt', 'badkey')]
--- grpc_status eval
[0, 16, 16, 16]
--- upstream_calls: 1
--- upstream_metadata
x-principal: alice
x-auth: api_key+jwt
x-client: mobile-app
x-user: alice
!x-api-key
!authorization
--- access_log eval
[qr/"principal":\{"kind":"api_key\+jwt","id":"alice","sub":"alice","iss":"https:\/\/issuer.test","client":"mobile-app"\}/,
 qr/"decision":"deny","reason":"api_key_missing"/,
 qr/"decision":"deny","reason":"jwt_missing"/,
 qr/"decision":"deny","reason":"api_key_unknown"/]



=== TEST 2: satisfy any: either is enough, every success is recorded
--- config
    @CONF@
    location / {
        grpc_guard_auth jwt api_key;
        grpc_guard_auth_satisfy any;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call eval
[main::call('key'), main::call('jwt'), main::call('jwt', 'key'), main::call()]
--- grpc_status eval
[0, 0, 0, 16]
--- upstream_calls: 3
--- upstream_metadata eval
["x-principal: mobile-app\nx-auth: api_key\nx-client: mobile-app\n!x-user",
 "x-principal: alice\nx-auth: jwt\n!x-client",
 "x-principal: alice\nx-auth: api_key+jwt\nx-client: mobile-app"]
--- access_log eval
[qr/"principal":\{"kind":"api_key","id":"mobile-app","client":"mobile-app"\}/,
 qr/"principal":\{"kind":"jwt","id":"alice","sub":"alice","iss":"https:\/\/issuer.test"\}/]



=== TEST 3: satisfy any with a bad key and a good token: passes as jwt
--- config
    @CONF@
    location / {
        grpc_guard_auth jwt api_key;
        grpc_guard_auth_satisfy any;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call eval
main::call('jwt', 'badkey')
--- grpc_status: 0
--- upstream_metadata
x-auth: jwt
x-principal: alice



=== TEST 4: satisfy any with the key header twice and a good token: no key goes upstream
--- config
    @CONF@
    location / {
        grpc_guard_auth jwt api_key;
        grpc_guard_auth_satisfy any;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call eval
main::call('jwt', 'key', 'badkey')
--- grpc_status: 0
--- upstream_metadata
x-auth: jwt
x-principal: alice
!x-api-key
!authorization
