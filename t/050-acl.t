# Location-scoped method ACLs: every pattern form and condition type,
# deny over allow, default deny, 16 vs 7, dry run, inheritance, streaming,
# public methods, nginx -t errors, $grpc_guard_rule.

use Test::Nginx::Socket::Grpc 'no_plan';
use Test::Nginx::Jwt qw(jwt_keys tokens);
use JSON::PP ();
use Digest::SHA qw(sha256_hex);

our $JwtDir = jwt_keys();

tokens(
    VIEWER => { key => 'rsa', kid => 'rsa1',
                claims => { sub => 'victor', roles => ['viewer'],
                            scope => 'read:ledger profile', level => 3,
                            staff => JSON::PP::false } },
    ADMIN  => { key => 'rsa', kid => 'rsa1',
                claims => { sub => 'ada', roles => 'admin ops',
                            scp => ['write:ledger'], level => 9,
                            staff => JSON::PP::true } },
    OTHERISS => { key => 'rsa', kid => 'rsa1',
                  claims => { sub => 'eve', iss => 'https://other.test' } },
);

our $Keys = ">>> keys.txt\n"
    . "sha256:" . sha256_hex("k-billing") . " billing-app reader,writer\n"
    . "sha256:" . sha256_hex("k-report") . " report-app reader\n";

# the authentication every block uses unless it says otherwise
our $Auth = <<'_EOC_';
    grpc_guard_require_tls off;
    grpc_guard_jwt_key_file $TEST_NGINX_JWT_DIR/jwks.json;
    grpc_guard_jwt_issuer https://issuer.test https://other.test;
    grpc_guard_api_key_file $TEST_NGINX_HTML_DIR/keys.txt;
    grpc_set_header x-rule $grpc_guard_rule;
    grpc_set_header x-decision $grpc_guard_decision;
_EOC_

add_block_preprocessor(sub {
    my $block = shift;
    my $config = $block->config;

    if (defined $config) {
        $config =~ s/\@AUTH\@/$::Auth/;
        $block->set_value('config', $config);
    }

    $block->set_value('user_files', $::Keys)
        unless defined $block->user_files;
});

sub jwt { "metadata: authorization: Bearer $ENV{qq{TEST_NGINX_JWT_$_[0]}}" }

sub call {
    my ($method, @lines) = @_;
    return join("\n", "method: $method", @lines);
}

no_shuffle();
no_root_location();
run_tests();

__DATA__

=== TEST 1: API gateway: viewers may Get*/List*, admins everything
--- config
    @AUTH@
    location / {
        grpc_guard_auth jwt;
        grpc_guard_allow /ledger.Ledger/Get* role=viewer,admin name=read;
        grpc_guard_allow /ledger.Ledger/List* role=viewer,admin name=list;
        grpc_guard_allow * role=admin name=admin;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call eval
[main::call("/ledger.Ledger/GetEntry", main::jwt("VIEWER")),
 main::call("/ledger.Ledger/ListEntries", main::jwt("VIEWER")),
 main::call("/ledger.Ledger/DeleteEntry", main::jwt("VIEWER")),
 main::call("/ledger.Ledger/DeleteEntry", main::jwt("ADMIN")),
 main::call("/ops.Admin/Drain", main::jwt("ADMIN"))]
--- grpc_status eval
[0, 0, 7, 0, 0]
--- grpc_message eval
[undef, undef, "permission denied", undef, undef]
--- upstream_calls: 4
--- upstream_metadata eval
["x-rule: read\nx-decision: allow", "x-rule: list", "x-rule: admin",
 "x-rule: admin"]
--- error_log
grpc guard: refused "/ledger.Ledger/DeleteEntry" with 7: acl_default_deny



=== TEST 2: deny overrides allow, whatever the order
--- config
    @AUTH@
    location / {
        grpc_guard_auth jwt;
        grpc_guard_allow * name=everyone;
        grpc_guard_deny /ledger.Ledger/Delete* sub=victor name=no-delete;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call eval
[main::call("/ledger.Ledger/DeleteEntry", main::jwt("VIEWER")),
 main::call("/ledger.Ledger/DeleteEntry", main::jwt("ADMIN"))]
--- grpc_status eval
[7, 0]
--- upstream_calls: 1
--- error_log
acl_deny_rule



=== TEST 3: exact pattern, service prefix, package prefix and "*"
--- config
    @AUTH@
    location / {
        grpc_guard_auth api_key;
        grpc_guard_allow /a.B/Exact client=billing-app;
        grpc_guard_allow /c.D/* client=billing-app;
        grpc_guard_allow /pkg.* client=billing-app;
        grpc_guard_allow * client=report-app;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call eval
[main::call("/a.B/Exact", "metadata: x-api-key: k-billing"),
 main::call("/a.B/Exact2", "metadata: x-api-key: k-billing"),
 main::call("/c.D/Any", "metadata: x-api-key: k-billing"),
 main::call("/pkg.v1.Svc/M", "metadata: x-api-key: k-billing"),
 main::call("/pkgx.Svc/M", "metadata: x-api-key: k-billing"),
 main::call("/zzz.Svc/M", "metadata: x-api-key: k-report")]
--- grpc_status eval
[0, 7, 0, 0, 7, 0]



=== TEST 4: rule names default to FILE:LINE
--- config
    @AUTH@
    location / {
        grpc_guard_auth api_key;
        grpc_guard_allow /a.B/* client=billing-app;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call eval
main::call("/a.B/M", "metadata: x-api-key: k-billing")
--- upstream_metadata
x-rule: ~^/.*/nginx\.conf:\d+$



=== TEST 5: claim conditions: strings, numbers, bools, arrays, scope
--- config
    @AUTH@
    location / {
        grpc_guard_auth jwt;
        grpc_guard_allow /s.S/Level claim:level=3,4;
        grpc_guard_allow /s.S/Staff claim:staff=true;
        grpc_guard_allow /s.S/Scope claim:scope=read:ledger;
        grpc_guard_allow /s.S/Scp claim:scp=write:ledger;
        grpc_guard_allow /s.S/Roles claim:roles=viewer;
        grpc_guard_allow /s.S/Sub sub=victor;
        grpc_guard_allow /s.S/Iss iss=https://other.test;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call eval
[main::call("/s.S/Level", main::jwt("VIEWER")),
 main::call("/s.S/Level", main::jwt("ADMIN")),
 main::call("/s.S/Staff", main::jwt("ADMIN")),
 main::call("/s.S/Staff", main::jwt("VIEWER")),
 main::call("/s.S/Scope", main::jwt("VIEWER")),
 main::call("/s.S/Scp", main::jwt("ADMIN")),
 main::call("/s.S/Scp", main::jwt("VIEWER")),
 main::call("/s.S/Roles", main::jwt("VIEWER")),
 main::call("/s.S/Sub", main::jwt("VIEWER")),
 main::call("/s.S/Sub", main::jwt("ADMIN")),
 main::call("/s.S/Iss", main::jwt("OTHERISS")),
 main::call("/s.S/Iss", main::jwt("VIEWER"))]
--- grpc_status eval
[0, 7, 0, 7, 0, 0, 7, 0, 0, 7, 0, 7]



=== TEST 6: role= matches API-key roles and the JWT roles claim
--- config
    @AUTH@
    location / {
        grpc_guard_auth jwt api_key;
        grpc_guard_auth_satisfy any;
        grpc_guard_allow /s.S/Write role=writer,ops;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call eval
[main::call("/s.S/Write", "metadata: x-api-key: k-billing"),
 main::call("/s.S/Write", "metadata: x-api-key: k-report"),
 main::call("/s.S/Write", main::jwt("ADMIN")),
 main::call("/s.S/Write", main::jwt("VIEWER"))]
--- grpc_status eval
[0, 7, 0, 7]



=== TEST 7: ip= with IPv4 and IPv6 CIDRs, auth=
--- config
    @AUTH@
    location /ip4. {
        grpc_guard_allow * ip=127.0.0.0/8;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
    location /ip6. {
        grpc_guard_allow * ip=::1/128,10.0.0.0/8;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
    location /auth. {
        grpc_guard_auth jwt api_key;
        grpc_guard_auth_satisfy any;
        grpc_guard_allow * auth=api_key;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call eval
[main::call("/ip4.S/M"), main::call("/ip6.S/M"),
 main::call("/auth.S/M", "metadata: x-api-key: k-report"),
 main::call("/auth.S/M", main::jwt("ADMIN"))]
--- grpc_status eval
[0, 7, 0, 7]



=== TEST 8: no identity where only an identity rule could pass: 16, not 7
--- config
    @AUTH@
    location / {
        grpc_guard_allow /s.S/* sub=victor;
        grpc_guard_allow /open.S/* ip=127.0.0.1;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call eval
[main::call("/s.S/M"), main::call("/s.S/M", main::jwt("ADMIN")),
 main::call("/s.S/M", main::jwt("VIEWER")),
 main::call("/s.S/M", "metadata: authorization: Bearer garbage"),
 main::call("/open.S/M"), main::call("/other.S/M")]
--- grpc_status eval
[16, 7, 0, 16, 0, 7]
--- grpc_message eval
["unauthenticated", "permission denied", undef, "unauthenticated", undef,
 "permission denied"]



=== TEST 9: dry run lets would-be denials through and records them
--- config
    @AUTH@
    location / {
        grpc_guard_auth jwt;
        grpc_guard_acl_mode dry_run;
        grpc_guard_allow /s.S/Read role=viewer name=readers;
        grpc_guard_deny /s.S/Drop sub=victor name=no-drop;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call eval
[main::call("/s.S/Read", main::jwt("VIEWER")),
 main::call("/s.S/Write", main::jwt("VIEWER")),
 main::call("/s.S/Drop", main::jwt("VIEWER"))]
--- grpc_status eval
[0, 0, 0]
--- upstream_metadata eval
["x-decision: allow\nx-rule: readers", "x-decision: dry_run_deny\n!x-rule",
 "x-decision: dry_run_deny\nx-rule: no-drop"]
--- error_log
grpc guard: dry run, would refuse "/s.S/Write" with 7: acl_default_deny
grpc guard: dry run, would refuse "/s.S/Drop" with 7: acl_deny_rule, rule no-drop



=== TEST 10: inheritance: an inner rule list replaces the outer one
--- config
    @AUTH@
    grpc_guard_auth jwt;
    grpc_guard_allow * role=admin;
    location /inner. {
        grpc_guard_allow * role=viewer;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
    location /outer. {
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call eval
[main::call("/inner.S/M", main::jwt("VIEWER")),
 main::call("/inner.S/M", main::jwt("ADMIN")),
 main::call("/outer.S/M", main::jwt("VIEWER")),
 main::call("/outer.S/M", main::jwt("ADMIN"))]
--- grpc_status eval
[0, 7, 7, 0]



=== TEST 11: streaming methods are checked like unary ones
--- config
    @AUTH@
    location / {
        grpc_guard_auth jwt;
        grpc_guard_allow /chat.Chat/Bidi* role=viewer;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call eval
[main::call("/chat.Chat/BidiTalk", "type: bidi", "messages: 2", main::jwt("VIEWER")),
 main::call("/chat.Chat/BidiTalk", "type: bidi", main::jwt("ADMIN")),
 main::call("/chat.Chat/ServerStreamNews", "type: server_stream", main::jwt("VIEWER"))]
--- grpc_status eval
[0, 7, 7]
--- grpc_responses eval
[2, 0, 0]



=== TEST 12: a public health method needs no credentials and skips the ACL
--- config
    @AUTH@
    location / {
        grpc_guard_auth jwt;
        grpc_guard_public /grpc.health.v1.Health/*;
        grpc_guard_allow * role=admin;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call eval
[main::call("/grpc.health.v1.Health/Check"), main::call("/s.S/M")]
--- grpc_status eval
[0, 16]
--- upstream_metadata eval
["x-decision: public"]



=== TEST 13: mesh: only the billing SPIFFE ID may call /billing.*
--- config
    listen 127.0.0.1:$TEST_NGINX_TLS_PORT ssl $TEST_NGINX_LISTEN_HTTP2;
    ssl_certificate $TEST_NGINX_CERT_DIR/server.crt;
    ssl_certificate_key $TEST_NGINX_CERT_DIR/server.key;
    ssl_client_certificate $TEST_NGINX_CERT_DIR/ca.crt;
    ssl_verify_client optional;
    grpc_set_header x-rule $grpc_guard_rule;
    location / {
        grpc_guard_auth mtls;
        grpc_guard_allow /billing.* spiffe=spiffe://example.org/ns/*/sa/billing;
        grpc_guard_allow /web.* san=client.example.org;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call eval
[main::call("/billing.Ledger/Post", "port: $ENV{TEST_NGINX_TLS_PORT}", "tls: on", "server_name: localhost", "cert: client-billing.crt", "key: client-billing.key"),
 main::call("/billing.Ledger/Post", "port: $ENV{TEST_NGINX_TLS_PORT}", "tls: on", "server_name: localhost", "cert: client-spiffe.crt", "key: client-spiffe.key"),
 main::call("/web.Page/Get", "port: $ENV{TEST_NGINX_TLS_PORT}", "tls: on", "server_name: localhost", "cert: client-spiffe.crt", "key: client-spiffe.key"),
 main::call("/web.Page/Get", "port: $ENV{TEST_NGINX_TLS_PORT}", "tls: on", "server_name: localhost", "cert: client-billing.crt", "key: client-billing.key")]
--- grpc_status eval
[0, 7, 0, 7]



=== TEST 14: an unknown condition fails nginx -t
--- config
    location / {
        grpc_guard_allow * colour=blue;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- must_die
--- error_log
unknown condition "colour=blue"



=== TEST 15: a bad CIDR fails nginx -t
--- config
    location / {
        grpc_guard_allow * ip=10.0.0.300/8;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- must_die
--- error_log
invalid CIDR "10.0.0.300/8"



=== TEST 16: a bad pattern and a bad glob fail nginx -t
--- config
    location / {
        grpc_guard_allow ledger.Ledger/Get;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- must_die
--- error_log eval
qr/invalid method pattern "ledger.Ledger\/Get".* in .*nginx.conf:\d+/



=== TEST 17: a bad glob fails nginx -t
--- config
    location / {
        grpc_guard_allow * spiffe=spiffe://x/**;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- must_die
--- error_log
"**" is not supported



=== TEST 18: grpc_guard off leaves an inherited ACL unused
--- config
    @AUTH@
    grpc_guard_allow * role=admin;
    location / {
        grpc_guard off;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call
method: /s.S/M
--- grpc_status: 0



=== TEST 19: an identity rule with no JWT key anywhere: no key needed, no identity
--- config
    location / {
        grpc_guard_allow * sub=alice;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call
method: /s.S/M
metadata: authorization: Bearer e30.e30.e30
--- grpc_status: 16
--- upstream_calls: 0
--- error_log
refused "/s.S/M" with 16: acl_unauthenticated
--- no_error_log
needs keys
