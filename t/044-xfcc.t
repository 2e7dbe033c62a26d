# grpc_guard_xfcc_trusted: the client-certificate identity that a proxy
# which terminated the client's mTLS (Envoy, an Istio sidecar, an ingress)
# forwards in x-forwarded-client-cert, believed from trusted peers only.
# The test client connects from 127.0.0.1: "127.0.0.1/32" makes it a
# trusted proxy, "10.0.0.0/8" an untrusted client.

use Test::Nginx::Socket::Grpc 'no_plan';
use Test::Nginx::Audit;

our $HASH = '4B5E57F6EB2F42B9039B3D1E13929295F231749C510CBE341CD68036D9AF97E2';

# two elements as Envoy writes them: the first added by an edge proxy
# (a caller that is not the immediate client), the last by the sidecar
our $XFCC = 'By=spiffe://prod.example/ns/edge/sa/gateway;'
    . 'Hash=0000000000000000000000000000000000000000000000000000000000000000;'
    . 'URI=spiffe://prod.example/ns/other/sa/admin,'
    . 'By=spiffe://prod.example/ns/shop/sa/nginx;'
    . "Hash=$HASH;"
    . 'Subject="CN=web,OU=a;b,O=Example";'
    . 'URI=spiffe://prod.example/ns/shop/sa/web;URI=https://web.example.org/;'
    . 'DNS=web.example.org;DNS=web.internal';

our $VARS = <<'_EOC_';
        grpc_set_header x-spiffe $grpc_guard_peer_spiffe_id;
        grpc_set_header x-uri-san $grpc_guard_peer_uri_san;
        grpc_set_header x-dns-san $grpc_guard_peer_dns_san;
        grpc_set_header x-subject $grpc_guard_peer_subject;
        grpc_set_header x-fingerprint $grpc_guard_peer_fingerprint;
        grpc_set_header x-principal $grpc_guard_principal;
        grpc_set_header x-auth $grpc_guard_auth_method;
_EOC_

our $TLS = <<'_EOC_';
    listen 127.0.0.1:$TEST_NGINX_TLS_PORT ssl $TEST_NGINX_LISTEN_HTTP2;
    ssl_certificate $TEST_NGINX_CERT_DIR/server.crt;
    ssl_certificate_key $TEST_NGINX_CERT_DIR/server.key;
    ssl_client_certificate $TEST_NGINX_CERT_DIR/ca.crt;
    ssl_verify_client optional;
_EOC_

add_block_preprocessor(sub {
    my $block = shift;
    my $config = $block->config;

    if (defined $config) {
        $config =~ s/\@VARS\@/$::VARS/g;
        $config =~ s/\@TLS\@/$::TLS/g;
        $block->set_value('config', $config);
    }
});

# a call with these x-forwarded-client-cert lines (none: no header)
sub call {
    my ($method, @xfcc) = @_;
    return { method => $method,
             metadata => [map { ['x-forwarded-client-cert', $_] } @xfcc] };
}

no_shuffle();
no_root_location();
run_audit_tests();

__DATA__

=== TEST 1: from a trusted peer: the last element is the caller, as the variables see it
--- config
    grpc_guard_audit_log logs/audit.log;
    location / {
        grpc_guard_xfcc_trusted 127.0.0.1/32;
        grpc_guard_auth mtls;
        @VARS@
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call eval: main::call('/shop.Cart/Add', $::XFCC)
--- grpc_status: 0
--- upstream_metadata eval
"x-spiffe: spiffe://prod.example/ns/shop/sa/web
x-uri-san: spiffe://prod.example/ns/shop/sa/web https://web.example.org/
x-dns-san: web.example.org web.internal
x-subject: CN=web,OU=a;b,O=Example
x-fingerprint: " . lc($::HASH) . "
x-principal: spiffe://prod.example/ns/shop/sa/web
x-auth: mtls
!x-forwarded-client-cert"
--- audit_check eval
sub {
    my ($r) = @_;
    is(scalar @$r, 1, "one record");
    is($r->[0]{principal}{kind}, 'mtls', "principal.kind");
    is($r->[0]{principal}{id}, 'spiffe://prod.example/ns/shop/sa/web',
       "principal.id");
    is($r->[0]{principal}{spiffe}, 'spiffe://prod.example/ns/shop/sa/web',
       "principal.spiffe");
    is($r->[0]{principal}{fingerprint}, lc($::HASH), "principal.fingerprint");
}
--- no_error_log
[error]



=== TEST 2: SPIFFE ACL rules on the forwarded identity: matching and not
--- config
    location / {
        grpc_guard_xfcc_trusted 127.0.0.1/32;
        grpc_guard_auth mtls;
        grpc_guard_allow /shop.Cart/* spiffe=spiffe://prod.example/ns/*/sa/web;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call eval
[main::call('/shop.Cart/Add', $::XFCC),
 main::call('/shop.Cart/Add',
            'Hash=' . $::HASH . ';URI=spiffe://prod.example/ns/shop/sa/billing'),
 main::call('/shop.Admin/Drop', $::XFCC),
 main::call('/shop.Cart/Add')]
--- grpc_status eval
[0, 7, 7, 16]
--- upstream_calls: 1
--- no_error_log
[error]



=== TEST 3: an ACL alone: the forwarded identity is looked at without grpc_guard_auth
--- config
    location / {
        grpc_guard_xfcc_trusted 127.0.0.1/32;
        grpc_guard_allow /shop.Cart/* spiffe=spiffe://prod.example/ns/shop/sa/web;
        grpc_guard_allow /shop.Cart/* san=web.internal;
        @VARS@
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call eval
[main::call('/shop.Cart/Add', $::XFCC),
 main::call('/shop.Cart/Add', 'DNS=web.internal'),
 main::call('/shop.Cart/Add', 'DNS=other.internal'),
 main::call('/shop.Cart/Add')]
--- grpc_status eval
[0, 0, 7, 16]
--- upstream_metadata eval
["x-spiffe: spiffe://prod.example/ns/shop/sa/web\nx-auth: mtls",
 "!x-spiffe\nx-principal: web.internal\nx-dns-san: web.internal\nx-auth: mtls"]



=== TEST 4: a quoted subject with escaped quotes, commas, semicolons and "="
--- config
    location / {
        grpc_guard_xfcc_trusted 127.0.0.1/32;
        grpc_guard_auth mtls;
        @VARS@
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call eval
main::call('/shop.Cart/Add',
           'By=spiffe://a/b;Subject="CN=say \"hi\",OU=x=y;z,O=Example";URI=;DNS=')
--- grpc_status: 0
--- upstream_metadata
x-subject: CN=say "hi",OU=x=y;z,O=Example
x-principal: CN=say "hi",OU=x=y;z,O=Example
!x-spiffe
!x-uri-san
!x-dns-san
!x-fingerprint
!x-forwarded-client-cert



=== TEST 5: keys in any case; quoted names; URI= left empty; the first DNS SAN as principal
--- config
    location / {
        grpc_guard_xfcc_trusted 127.0.0.1/32;
        grpc_guard_auth mtls;
        @VARS@
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call eval
main::call('/shop.Cart/Add',
           'hash=' . $::HASH . ';SUBJECT="CN=api";uri=;dns="api.example.org";Dns=api2.example.org')
--- grpc_status: 0
--- upstream_metadata eval
"x-principal: api.example.org
x-dns-san: api.example.org api2.example.org
x-subject: CN=api
x-fingerprint: " . lc($::HASH) . "
!x-spiffe
!x-uri-san"



=== TEST 6: two SPIFFE IDs in one element identify nobody by SPIFFE ID (16 without another name)
--- config
    location / {
        grpc_guard_xfcc_trusted 127.0.0.1/32;
        grpc_guard_auth mtls;
        grpc_guard_allow /shop.Cart/* spiffe=spiffe://prod.example/*;
        grpc_guard_allow /shop.Cart/* san=web.example.org;
        @VARS@
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call eval
[main::call('/shop.Cart/Add',
            'URI=spiffe://prod.example/sa/a;URI=spiffe://prod.example/sa/b'),
 main::call('/shop.Cart/Add',
            'URI=spiffe://prod.example/sa/a;URI=spiffe://prod.example/sa/b;DNS=web.example.org')]
--- grpc_status eval
[16, 0]
--- upstream_metadata
!x-spiffe
x-uri-san: spiffe://prod.example/sa/a spiffe://prod.example/sa/b
x-principal: web.example.org



=== TEST 7: several header lines are one list: the last element of the last line
--- config
    location / {
        grpc_guard_xfcc_trusted 127.0.0.1/32;
        grpc_guard_auth mtls;
        @VARS@
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call eval
main::call('/shop.Cart/Add', 'URI=spiffe://evil.example/sa/x',
           'URI=spiffe://prod.example/ns/shop/sa/web')
--- grpc_status: 0
--- upstream_metadata
x-spiffe: spiffe://prod.example/ns/shop/sa/web
!x-forwarded-client-cert



=== TEST 8: spoofing from an untrusted peer: ignored, removed, never upstream
--- config
    location /auth. {
        grpc_guard_xfcc_trusted 10.0.0.0/8;
        grpc_guard_auth mtls;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
    location /acl. {
        grpc_guard_xfcc_trusted 10.0.0.0/8 192.168.0.0/16;
        grpc_guard_allow * spiffe=spiffe://prod.example/ns/shop/sa/web;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
    location / {
        grpc_guard_xfcc_trusted 10.0.0.0/8;
        grpc_guard_public /open.Svc/*;
        @VARS@
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call eval
[main::call('/auth.Svc/Call', $::XFCC),
 main::call('/acl.Svc/Call', $::XFCC),
 main::call('/plain.Svc/Call', $::XFCC),
 main::call('/open.Svc/Call', $::XFCC, 'URI=spiffe://x/y')]
--- grpc_status eval
[16, 16, 0, 0]
--- upstream_calls: 2
--- upstream_metadata eval
["!x-forwarded-client-cert\n!x-spiffe\n!x-principal\n!x-auth",
 "!x-forwarded-client-cert\n!x-spiffe\n!x-principal"]
--- error_log
x-forwarded-client-cert from an untrusted peer removed



=== TEST 9: from an untrusted peer, even with grpc_guard_forward_credentials on
--- config
    location / {
        grpc_guard_xfcc_trusted 10.0.0.0/8;
        grpc_guard_forward_credentials on;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call eval: main::call('/shop.Cart/Add', $::XFCC)
--- grpc_status: 0
--- upstream_metadata
!x-forwarded-client-cert



=== TEST 10: the directive alone turns the guard on; "off" lets the header through
--- config
    grpc_guard_xfcc_trusted 10.0.0.0/8;
    location /off. {
        grpc_guard_xfcc_trusted off;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
    location / {
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call eval
[main::call('/shop.Cart/Add', 'URI=spiffe://x/y'),
 main::call('/off.Svc/Call', 'URI=spiffe://x/y')]
--- upstream_metadata eval
["!x-forwarded-client-cert",
 "x-forwarded-client-cert: URI=spiffe://x/y"]



=== TEST 11: from a trusted peer, forwarded only with grpc_guard_forward_credentials on, public methods included
--- config
    location /fwd. {
        grpc_guard_xfcc_trusted 127.0.0.1/32;
        grpc_guard_auth mtls;
        grpc_guard_forward_credentials on;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
    location / {
        grpc_guard_xfcc_trusted 127.0.0.1/32;
        grpc_guard_auth mtls;
        grpc_guard_public /grpc.health.v1.Health/*;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call eval
[main::call('/fwd.Svc/Call', $::XFCC),
 main::call('/other.Svc/Call', $::XFCC),
 main::call('/grpc.health.v1.Health/Check', $::XFCC)]
--- grpc_status eval
[0, 0, 0]
--- upstream_metadata eval
["x-forwarded-client-cert: $::XFCC",
 "!x-forwarded-client-cert",
 "!x-forwarded-client-cert"]



=== TEST 12: malformed headers from a trusted peer: no identity, 16, never upstream
--- config
    large_client_header_buffers 4 64k;
    location / {
        grpc_guard_xfcc_trusted 127.0.0.1/32;
        grpc_guard_auth mtls;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call eval
[main::call('/a.S/M', 'URI=spiffe://prod.example/ns/shop/sa/web;Subject="CN=web'),
 main::call('/a.S/M', ''),
 main::call('/a.S/M', 'URI=spiffe://prod.example/ns/shop/sa/web;Subject="CN=a\"'),
 main::call('/a.S/M', 'URI=spiffe://a/b;'),
 main::call('/a.S/M', 'URI=spiffe://a/b,,URI=spiffe://a/c'),
 main::call('/a.S/M', 'URI=spiffe://a/b;Subject="x"y'),
 main::call('/a.S/M', 'URI=spiffe://a/b=c'),
 main::call('/a.S/M', 'URI'),
 main::call('/a.S/M', 'Hash=xyz;URI=spiffe://a/b'),
 main::call('/a.S/M', 'Subject="a";Subject="b";URI=spiffe://a/b'),
 main::call('/a.S/M', join(',', ('URI=spiffe://a/b') x 17)),
 main::call('/a.S/M', join(';', ('DNS=a') x 33)),
 main::call('/a.S/M', 'Cert="' . ('A' x 17000) . '";URI=spiffe://a/b')]
--- grpc_status: 16
--- upstream_calls: 0
--- grep_error_log eval: qr/invalid x-forwarded-client-cert from a trusted peer: [^,]*/
--- grep_error_log_out
invalid x-forwarded-client-cert from a trusted peer: unterminated quoted value
invalid x-forwarded-client-cert from a trusted peer: empty
invalid x-forwarded-client-cert from a trusted peer: unterminated quoted value
invalid x-forwarded-client-cert from a trusted peer: a key and "=" expected
invalid x-forwarded-client-cert from a trusted peer: a key and "=" expected
invalid x-forwarded-client-cert from a trusted peer: ";" or "
invalid x-forwarded-client-cert from a trusted peer: '"' or "=" in a value that is not quoted
invalid x-forwarded-client-cert from a trusted peer: a key and "=" expected
invalid x-forwarded-client-cert from a trusted peer: Hash is not a hex SHA-256
invalid x-forwarded-client-cert from a trusted peer: a key repeated that may not be
invalid x-forwarded-client-cert from a trusted peer: too many elements
invalid x-forwarded-client-cert from a trusted peer: too many values in an element
invalid x-forwarded-client-cert from a trusted peer: too long
--- error_log
refused "/a.S/M" with 16: mtls_xfcc_invalid



=== TEST 13: the limits are limits: 16 elements and 32 values pass
--- config
    location / {
        grpc_guard_xfcc_trusted 127.0.0.1/32;
        grpc_guard_auth mtls;
        @VARS@
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call eval
[main::call('/a.S/M', join(',', ('URI=spiffe://a/b') x 15, 'URI=spiffe://a/c')),
 main::call('/a.S/M', join(';', ('DNS=a') x 31, 'URI=spiffe://a/d'))]
--- grpc_status: 0
--- upstream_metadata eval
["x-spiffe: spiffe://a/c", "x-spiffe: spiffe://a/d"]
--- no_error_log
[error]



=== TEST 14: a trusted proxy's own client certificate is not the caller's; its XFCC is
--- config
    @TLS@
    location / {
        grpc_guard_xfcc_trusted 127.0.0.1/32;
        grpc_guard_auth mtls;
        @VARS@
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call eval
my $c = "port: $ENV{TEST_NGINX_TLS_PORT}\ntls: on\nserver_name: localhost\n"
    . "cert: client-spiffe.crt\nkey: client-spiffe.key\nmethod: /a.S/M";
[$c, "$c\nmetadata: x-forwarded-client-cert: URI=spiffe://prod.example/ns/shop/sa/web"]
--- grpc_status eval
[16, 0]
--- upstream_calls: 1
--- upstream_metadata
x-spiffe: spiffe://prod.example/ns/shop/sa/web
x-principal: spiffe://prod.example/ns/shop/sa/web



=== TEST 15: a direct client outside the trusted addresses keeps its own certificate
--- config
    @TLS@
    location / {
        grpc_guard_xfcc_trusted 10.0.0.0/8;
        grpc_guard_auth mtls;
        @VARS@
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call eval
"port: $ENV{TEST_NGINX_TLS_PORT}\ntls: on\nserver_name: localhost\n"
    . "cert: client-spiffe.crt\nkey: client-spiffe.key\nmethod: /a.S/M\n"
    . "metadata: x-forwarded-client-cert: URI=spiffe://prod.example/ns/shop/sa/admin"
--- grpc_status: 0
--- upstream_metadata
x-spiffe: spiffe://example.org/ns/default/sa/web
!x-forwarded-client-cert



=== TEST 16: realip: the immediate peer is trusted, not the address a header gives
--- config
    set_real_ip_from 127.0.0.1;
    real_ip_header x-real-ip;
    location /ten. {
        grpc_guard_xfcc_trusted 10.0.0.0/8;
        grpc_guard_auth mtls;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
    location / {
        grpc_guard_xfcc_trusted 127.0.0.1/32;
        grpc_guard_auth mtls;
        grpc_set_header x-remote $remote_addr;
        grpc_set_header x-spiffe $grpc_guard_peer_spiffe_id;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call eval
[{ method => '/ten.Svc/Call',
   metadata => [['x-real-ip', '10.1.2.3'],
                ['x-forwarded-client-cert', 'URI=spiffe://prod.example/sa/admin']] },
 { method => '/shop.Cart/Add',
   metadata => [['x-real-ip', '10.1.2.3'],
                ['x-forwarded-client-cert', 'URI=spiffe://prod.example/sa/web']] }]
--- grpc_status eval
[16, 0]
--- upstream_calls: 1
--- upstream_metadata
x-remote: 10.1.2.3
x-spiffe: spiffe://prod.example/sa/web
!x-forwarded-client-cert



=== TEST 17: realip over HTTP/1.1: the connection's address before realip's
--- config
    listen 127.0.0.1:$TEST_NGINX_PORT2;
    set_real_ip_from 127.0.0.1;
    real_ip_header x-real-ip;
    location /ten. {
        grpc_guard_xfcc_trusted 10.0.0.0/8;
        grpc_guard_auth mtls;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
    location / {
        grpc_guard_xfcc_trusted 127.0.0.1/32;
        grpc_guard_auth mtls;
        grpc_set_header x-remote $remote_addr;
        grpc_set_header x-spiffe $grpc_guard_peer_spiffe_id;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- request_port: $TEST_NGINX_PORT2
--- curl_options: --http1.1
--- request eval
["POST /ten.Svc/Call\n\0\0\0\0\0", "POST /shop.Cart/Add\n\0\0\0\0\0"]
--- more_headers eval
my $h = "x-real-ip: 10.1.2.3\n"
    . "x-forwarded-client-cert: URI=spiffe://prod.example/sa/web\n";
# gRPC-Web for the refusal: a Trailers-Only reply with a length
["content-type: application/grpc-web\n$h",
 "content-type: application/grpc\nte: trailers\n$h"]
--- error_code eval
[200, 200]
--- response_headers eval
["grpc-status: 16", "grpc-status: 0"]
--- upstream_calls: 1
--- upstream_metadata
x-remote: 10.1.2.3
x-spiffe: spiffe://prod.example/sa/web
!x-forwarded-client-cert



=== TEST 18: unix: and single addresses are accepted; names and junk are not
--- config
    location / {
        grpc_guard_xfcc_trusted unix: 127.0.0.1 ::1 10.0.0.0/8;
        grpc_guard_xfcc_trusted 192.168.0.0/16;
        grpc_guard_auth mtls;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call eval: main::call('/a.S/M', 'URI=spiffe://a/b')
--- grpc_status: 0



=== TEST 19: an address that is not one
--- config
    location / {
        grpc_guard_xfcc_trusted localhost;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- must_die
--- error_log
invalid parameter "localhost"



=== TEST 20: "off" with addresses
--- config
    location / {
        grpc_guard_xfcc_trusted 127.0.0.1;
        grpc_guard_xfcc_trusted off;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- must_die
--- error_log
"grpc_guard_xfcc_trusted" directive is duplicate
