# Client certificates: with ssl_verify_client optional and grpc_guard_auth
# mtls, a call without a verified certificate gets 16; identities from
# SPIFFE/URI SANs, DNS SANs, subject and fingerprint.

use Test::Nginx::Socket::Grpc 'no_plan';

our $TLS = <<'_EOC_';
    listen 127.0.0.1:$TEST_NGINX_TLS_PORT ssl $TEST_NGINX_LISTEN_HTTP2;
    ssl_certificate $TEST_NGINX_CERT_DIR/server.crt;
    ssl_certificate_key $TEST_NGINX_CERT_DIR/server.key;
    ssl_client_certificate $TEST_NGINX_CERT_DIR/ca.crt;
_EOC_

our $VARS = <<'_EOC_';
        grpc_set_header x-spiffe $grpc_guard_peer_spiffe_id;
        grpc_set_header x-uri-san $grpc_guard_peer_uri_san;
        grpc_set_header x-dns-san $grpc_guard_peer_dns_san;
        grpc_set_header x-subject $grpc_guard_peer_subject;
        grpc_set_header x-fingerprint $grpc_guard_peer_fingerprint;
        grpc_set_header x-principal $grpc_guard_principal;
        grpc_set_header x-auth $grpc_guard_auth_method;
_EOC_

add_block_preprocessor(sub {
    my $block = shift;
    my $config = $block->config;

    if (defined $config) {
        $config =~ s/\@TLS\@/$::TLS/;
        $config =~ s/\@VARS\@/$::VARS/;
        $block->set_value('config', $config);
    }
});

sub call {
    my ($cert, $method) = @_;
    my $c = "method: " . ($method // "/mesh.Svc/Call")
        . "\nport: $ENV{TEST_NGINX_TLS_PORT}\ntls: on\nserver_name: localhost";
    $c .= "\ncert: $cert.crt\nkey: $cert.key" if $cert;
    return $c;
}

no_shuffle();
no_root_location();
run_tests();

__DATA__

=== TEST 1: a SPIFFE certificate: identity variables seen upstream
--- config
    @TLS@
    ssl_verify_client optional;
    location / {
        grpc_guard_auth mtls;
        @VARS@
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call eval: main::call("client-spiffe")
--- grpc_status: 0
--- upstream_metadata eval
"x-spiffe: spiffe://example.org/ns/default/sa/web
x-uri-san: spiffe://example.org/ns/default/sa/web https://web.example.org/
x-dns-san: client.example.org
x-subject: CN=web,O=Example
x-fingerprint: " . Test::Nginx::Socket::Grpc::cert_fingerprint('client-spiffe.crt') . "
x-principal: spiffe://example.org/ns/default/sa/web
x-auth: mtls"



=== TEST 2: a URI SAN that is left out is no SPIFFE ID, whatever the names before it
--- config
    @TLS@
    ssl_verify_client optional;
    location / {
        grpc_guard_auth mtls;
        @VARS@
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call eval: main::call("client-spiffe-blank")
--- grpc_status: 0
--- upstream_metadata
!x-spiffe
x-uri-san: https://web.example.org/spiffe://prod/ns/a
!x-dns-san
x-subject: CN=blank
x-principal: CN=blank



=== TEST 3: a DNS-only certificate: the principal is the first DNS SAN
--- config
    @TLS@
    ssl_verify_client optional;
    location / {
        grpc_guard_auth mtls;
        @VARS@
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call eval: main::call("client-dns")
--- grpc_status: 0
--- upstream_metadata
!x-spiffe
!x-uri-san
x-dns-san: api.example.org
x-subject: CN=api
x-principal: api.example.org



=== TEST 4: a certificate without SANs: the principal is the subject
--- config
    @TLS@
    ssl_verify_client optional;
    location / {
        grpc_guard_auth mtls;
        @VARS@
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call eval: main::call("client-subject")
--- grpc_status: 0
--- upstream_metadata
x-principal: CN=legacy-client,OU=Ops,O=Example,C=US
x-subject: CN=legacy-client,OU=Ops,O=Example,C=US



=== TEST 5: no certificate: 16, never upstream
--- config
    @TLS@
    ssl_verify_client optional;
    location / {
        grpc_guard_auth mtls;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call eval: main::call(undef)
--- grpc_status: 16
--- grpc_message: unauthenticated
--- upstream_calls: 0
--- error_log
mtls_no_certificate



=== TEST 6: untrusted certificate with "optional": nginx's 495 becomes 16
--- config
    @TLS@
    ssl_verify_client optional;
    location / {
        grpc_guard_auth mtls;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call eval: main::call("untrusted")
--- grpc_status: 16
--- upstream_calls: 0
--- error_log
client SSL certificate verify error



=== TEST 7: untrusted certificate with optional_no_ca: never authenticated
--- config
    @TLS@
    ssl_verify_client optional_no_ca;
    location / {
        grpc_guard_auth mtls;
        @VARS@
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call eval: main::call("untrusted")
--- grpc_status: 16
--- upstream_calls: 0
--- error_log
mtls_untrusted



=== TEST 8: untrusted certificate, no mtls required: no peer identity
--- config
    @TLS@
    ssl_verify_client optional_no_ca;
    location / {
        grpc_guard on;
        @VARS@
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call eval: main::call("untrusted")
--- grpc_status: 0
--- upstream_metadata
!x-spiffe
!x-principal
!x-fingerprint



=== TEST 9: an expired certificate is refused by nginx: 16
--- config
    @TLS@
    ssl_verify_client optional;
    location / {
        grpc_guard_auth mtls;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call eval: main::call("client-expired")
--- grpc_status: 16
--- upstream_calls: 0



=== TEST 10: mtls over plaintext h2c: 16
--- config
    location / {
        grpc_guard_auth mtls;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call
method: /mesh.Svc/Call
--- grpc_status: 16
--- upstream_calls: 0
--- error_log
mtls_no_tls



=== TEST 11: the certificate is parsed once per connection, not per RPC
--- config
    @TLS@
    ssl_verify_client optional;
    location / {
        grpc_guard_auth mtls;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- init
my $d = $ENV{TEST_NGINX_CERT_DIR};
my $p = $ENV{TEST_NGINX_TLS_PORT};
open my $f, '>', "$ENV{TEST_NGINX_WORK_DIR}/body.bin" or die;
print $f "\0\0\0\0\0";
close $f;
my $out = `nghttp -nv --cert=$d/client-spiffe.crt --key=$d/client-spiffe.key -d $ENV{TEST_NGINX_WORK_DIR}/body.bin -H 'content-type: application/grpc' -H 'te: trailers' https://127.0.0.1:$p/mesh.Svc/A https://127.0.0.1:$p/mesh.Svc/B https://127.0.0.1:$p/mesh.Svc/C 2>&1`;
my $n = () = $out =~ /grpc-status: 0/g;
die "expected 3 OK replies, got $n:\n$out" unless $n == 3;
--- grpc_call eval: main::call("client-spiffe")
--- grpc_status: 0
--- grep_error_log eval: qr/grpc guard: peer certificate parsed, verified:1/
--- grep_error_log_out
grpc guard: peer certificate parsed, verified:1
grpc guard: peer certificate parsed, verified:1



=== TEST 12: a billing SPIFFE identity
--- config
    @TLS@
    ssl_verify_client optional;
    location / {
        grpc_guard_auth mtls;
        @VARS@
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call eval: main::call("client-billing", "/billing.Ledger/Post")
--- grpc_status: 0
--- upstream_metadata
x-spiffe: spiffe://example.org/ns/prod/sa/billing
x-principal: spiffe://example.org/ns/prod/sa/billing
