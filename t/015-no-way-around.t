# No way around a check: the method checked is the method sent (rewrites,
# internal redirects), every content type gets the checks, gRPC-Web calls
# get gRPC-Web refusals, a directive that asks for a check turns the guard
# on, credentials never reach the upstream of a public method, an internal
# redirect authenticates the call again, nginx's own limit_req and
# limit_conn refusals are 8, and a client certificate verified for another
# server identifies nobody.

use Test::Nginx::Socket::Grpc 'no_plan';
use Test::Nginx::Audit;
use Test::Nginx::Jwt qw(jwt_keys tokens);
use Digest::SHA qw(sha256_hex);

our $JwtDir = jwt_keys();

tokens(RS256 => { key => 'rsa', kid => 'rsa1' });

our $KEYS = ">>> keys.txt\n"
    . "sha256:" . sha256_hex("k-billing-1") . " billing reader\n";

# one gRPC message, "ping", in the gRPC (and binary gRPC-Web) framing
our $FRAME = "\x00\x00\x00\x00\x04ping";

# two servers on one TLS listener that check client certificates with
# different CAs; the first is the listener's default server
our $SERVERS = <<'_EOC_';
server {
        listen 127.0.0.1:$TEST_NGINX_TLS_PORT ssl $TEST_NGINX_LISTEN_HTTP2;
        $TEST_NGINX_HTTP2
        server_name default.example;
        ssl_certificate $TEST_NGINX_CERT_DIR/server.crt;
        ssl_certificate_key $TEST_NGINX_CERT_DIR/server.key;
        ssl_client_certificate $TEST_NGINX_CERT_DIR/ca.crt;
        ssl_verify_client optional;
        location / {
            grpc_guard_auth mtls;
            grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
        }
    }
    server {
        listen 127.0.0.1:$TEST_NGINX_TLS_PORT ssl $TEST_NGINX_LISTEN_HTTP2;
        $TEST_NGINX_HTTP2
        server_name other.example;
        ssl_certificate $TEST_NGINX_CERT_DIR/server.crt;
        ssl_certificate_key $TEST_NGINX_CERT_DIR/server.key;
        ssl_client_certificate $TEST_NGINX_CERT_DIR/other-ca.crt;
        ssl_verify_client optional;
        location / {
            grpc_guard_auth mtls;
            grpc_set_header x-spiffe $grpc_guard_peer_spiffe_id;
            grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
        }
    }
_EOC_

add_block_preprocessor(sub {
    my $block = shift;

    for my $s (qw(config http_config)) {
        my $v = $block->$s;
        next unless defined $v;
        $v =~ s/\@KEYFILE\@/grpc_guard_api_key_file \$TEST_NGINX_HTML_DIR\/keys.txt;/g;
        $v =~ s/\@SERVERS\@/$::SERVERS/g;
        $block->set_value($s, $v);
    }
});

no_shuffle();
no_root_location();
run_tests();

__DATA__

=== TEST 1: a rewrite: the ACL checks the method grpc_pass sends
--- config
    rewrite ^/v1alpha\.Orders/(.*)$ /v1.Orders/$1 last;
    location /v1.Orders/ {
        grpc_guard_allow *;
        grpc_guard_deny /v1.Orders/Delete;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call eval
["method: /v1.Orders/Delete",
 "method: /v1alpha.Orders/Delete",
 "method: /v1alpha.Orders/Get"]
--- grpc_status eval
[7, 7, 0]
--- upstream_calls: 1
--- upstream_method: /v1.Orders/Get
--- error_log
refused "/v1.Orders/Delete" with 7: acl_deny_rule
--- no_error_log
refused "/v1alpha.Orders/Delete"



=== TEST 2: a rewrite: the audit records the method sent, public and reflection too
--- config
    grpc_guard_audit_log logs/audit.log;
    rewrite ^/alias\.Health/(.*)$ /grpc.health.v1.Health/$1 last;
    rewrite ^/alias\.Reflect/(.*)$ /grpc.reflection.v1.ServerReflection/$1 last;
    location / {
        grpc_guard_auth jwt;
        grpc_guard_require_tls off;
        grpc_guard_jwt_key_file $TEST_NGINX_JWT_DIR/jwks.json;
        grpc_guard_public /grpc.health.v1.Health/*;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call eval
["method: /alias.Health/Check",
 "method: /alias.Reflect/ServerReflectionInfo"]
--- grpc_status eval
[0, 12]
--- upstream_calls: 1
--- upstream_method: /grpc.health.v1.Health/Check
--- audit eval
[base_record(method => '/grpc.health.v1.Health/Check', decision => 'public',
             grpc_status => 0, grpc_status_source => 'trailer',
             http_status => 200),
 base_record(method => '/grpc.reflection.v1.ServerReflection/ServerReflectionInfo',
             decision => 'deny', reason => 'reflection_disabled',
             grpc_status => 12, grpc_status_source => 'local',
             http_status => 200)]



=== TEST 3: a rewrite to a path that is not canonical once escaped: 12
--- config
    rewrite ^/alias\.Svc/(.*)$ "/pkg.Svc/a b" last;
    location / {
        grpc_guard on;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call
method: /alias.Svc/M
--- grpc_status: 12
--- upstream_calls: 0
--- error_log
refused with 12: path_not_canonical



=== TEST 4: the deadline policy for every content type: none, text/plain, gRPC-Web
--- config
    location / {
        grpc_guard_deadline required max=5s;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- request eval
["POST /pkg.Svc/Echo\n", "POST /pkg.Svc/Echo\n", "POST /pkg.Svc/Echo\n"]
--- more_headers eval
["", "Content-Type: text/plain", "Content-Type: application/grpc-web+proto"]
--- error_code eval
[400, 400, 200]
--- response_headers eval
["!grpc-status", "!grpc-status",
 "grpc-status: 3\ngrpc-message: deadline required\ncontent-type: application/grpc-web+proto"]
--- upstream_calls: 0



=== TEST 5: text/plain with a deadline too long is clamped on its way up
--- config
    grpc_guard_audit_log logs/audit.log;
    location / {
        grpc_guard_deadline required max=5s;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- request eval
"POST /pkg.Svc/Echo\n$::FRAME"
--- more_headers
Content-Type: text/plain
TE: trailers
grpc-timeout: 99999999H
--- error_code: 200
--- upstream_calls: 1
--- upstream_timeout: 1 5.5
--- audit eval
[base_record(method => '/pkg.Svc/Echo', decision => 'allow',
             grpc_status => 0, grpc_status_source => 'trailer',
             http_status => 200, authority => 'localhost')]



=== TEST 6: gRPC-Web: refusals in gRPC-Web form, binary and text
--- config
    location / {
        grpc_guard_auth jwt;
        grpc_guard_require_tls off;
        grpc_guard_jwt_key_file $TEST_NGINX_JWT_DIR/jwks.json;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- request eval
["POST /pkg.Svc/Echo\n", "POST /pkg.Svc/Echo\n"]
--- more_headers eval
["Content-Type: application/grpc-web+proto",
 "Content-Type: application/grpc-web-text"]
--- error_code eval
[200, 200]
--- response_headers eval
["grpc-status: 16\ngrpc-message: unauthenticated\ncontent-type: application/grpc-web+proto\ncontent-length: 0",
 "grpc-status: 16\ngrpc-message: unauthenticated\ncontent-type: application/grpc-web-text+proto\ncontent-length: 0"]
--- upstream_calls: 0



=== TEST 7: gRPC-Web: a call with a token goes upstream; GET is refused with 12
--- config
    location / {
        grpc_guard_auth jwt;
        grpc_guard_require_tls off;
        grpc_guard_jwt_key_file $TEST_NGINX_JWT_DIR/jwks.json;
        grpc_set_header x-user $grpc_guard_jwt_claim_sub;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- request eval
["POST /pkg.Svc/Echo\n$::FRAME", "GET /pkg.Svc/Echo"]
--- more_headers eval
["Content-Type: application/grpc-web+proto\nTE: trailers\nAuthorization: Bearer $ENV{TEST_NGINX_JWT_RS256}",
 "Content-Type: application/grpc-web+proto"]
--- error_code eval
[200, 200]
--- response_headers eval
["!x-none", "grpc-status: 12\ncontent-type: application/grpc-web+proto"]
--- upstream_calls: 1
--- upstream_method: /pkg.Svc/Echo
--- upstream_metadata
x-user: alice
!authorization



=== TEST 8: a directive that asks for a check turns the guard on
--- config
    location /a.Svc/ {
        grpc_guard_deadline required;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
    location /grpc.reflection.v1.ServerReflection/ {
        grpc_guard_reflection off;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
    location /b.Svc/ {
        grpc_guard_public /b.Svc/*;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
    location /c.Svc/ {
        grpc_guard off;
        grpc_guard_deadline required;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call eval
["method: /a.Svc/M",
 "method: /grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
 "method: //b.Svc/M",
 "method: /c.Svc/M"]
--- grpc_status eval
[3, 12, 12, 0]
--- upstream_calls: 1
--- upstream_method: /c.Svc/M



=== TEST 9: a public method: the credentials the location consumes stay here
--- user_files eval: $::KEYS
--- config
    location / {
        grpc_guard_auth api_key jwt;
        grpc_guard_auth_satisfy any;
        grpc_guard_require_tls off;
        @KEYFILE@
        grpc_guard_jwt_key_file $TEST_NGINX_JWT_DIR/jwks.json;
        grpc_guard_public /grpc.health.v1.Health/*;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call
method: /grpc.health.v1.Health/Check
metadata: authorization: Bearer whatever
metadata: x-api-key: k-billing-1
metadata: x-api-key: k-other
metadata: x-other: kept
--- grpc_status: 0
--- upstream_metadata
!authorization
!x-api-key
x-other: kept



=== TEST 10: a public method with grpc_guard_forward_credentials on: forwarded
--- user_files eval: $::KEYS
--- config
    location / {
        grpc_guard_auth api_key;
        grpc_guard_require_tls off;
        grpc_guard_forward_credentials on;
        @KEYFILE@
        grpc_guard_public /grpc.health.v1.Health/*;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call
method: /grpc.health.v1.Health/Check
metadata: x-api-key: k-billing-1
--- grpc_status: 0
--- upstream_metadata
x-api-key: k-billing-1



=== TEST 11: an internal redirect to another guarded location: the API key still counts
(the first location's guard takes the key out of the request; auth_request
then sends the call to @fallback, which must find it all the same)
--- user_files eval: $::KEYS
--- config
    grpc_guard_require_tls off;
    location / {
        grpc_guard_auth api_key;
        @KEYFILE@
        auth_request /deny;
        error_page 403 = @fallback;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
    location = /deny {
        internal;
        return 403;
    }
    location @fallback {
        grpc_guard_auth api_key;
        @KEYFILE@
        grpc_set_header x-client $grpc_guard_api_key_client;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call eval
["method: /billing.Ledger/Get\nmetadata: x-api-key: k-billing-1",
 "method: /billing.Ledger/Get\nmetadata: x-api-key: k-unknown"]
--- grpc_status eval
[0, 16]
--- upstream_calls: 1
--- upstream_metadata
x-client: billing
!x-api-key
--- error_log
refused "/billing.Ledger/Get" with 16: api_key_unknown
--- no_error_log
api_key_missing



=== TEST 12: nginx's limit_req refuses a gRPC call with 8, not 14
--- http_config
    limit_req_zone $binary_remote_addr zone=one:1m rate=1r/m;
    log_format guard "reason=$grpc_guard_reason status=$grpc_guard_grpc_status";
--- config
    location / {
        grpc_guard on;
        limit_req zone=one;
        access_log logs/access.log guard;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call eval
["method: /s.S/M", "method: /s.S/M"]
--- grpc_status eval
[0, 8]
--- upstream_calls: 1
--- access_log
reason=nginx_limit_req status=8



=== TEST 13: the default server of a listener: its own client certificate check
--- http_config
    @SERVERS@
--- config
--- request_port: $TEST_NGINX_TLS_PORT
--- curl_protocol: https
--- curl_options: --cacert $TEST_NGINX_CERT_DIR/ca.crt --cert $TEST_NGINX_CERT_DIR/client-spiffe.crt --key $TEST_NGINX_CERT_DIR/client-spiffe.key
--- request eval
"POST /mesh.Svc/Call\n$::FRAME"
--- more_headers
Host: default.example
Content-Type: application/grpc
TE: trailers
--- error_code: 200
--- upstream_calls: 1
--- no_error_log
verified for another server



=== TEST 14: a certificate verified by the default server identifies nobody in another
(no SNI: the handshake was the default server's, the call names another)
--- http_config
    @SERVERS@
--- config
--- request_port: $TEST_NGINX_TLS_PORT
--- curl_protocol: https
--- curl_options: --cacert $TEST_NGINX_CERT_DIR/ca.crt --cert $TEST_NGINX_CERT_DIR/client-spiffe.crt --key $TEST_NGINX_CERT_DIR/client-spiffe.key
--- request
POST /mesh.Svc/Call
--- more_headers
Host: other.example
Content-Type: application/grpc
--- error_code: 200
--- response_headers
grpc-status: 16
--- upstream_calls: 0
--- error_log
the client certificate was verified for another server



=== TEST 15: nginx's limit_conn refuses a gRPC call with 8, not 14
(a slow call holds the one stream allowed; the second call is refused)
--- http_config
    limit_conn_zone $binary_remote_addr zone=c:1m;
    log_format guard "reason=$grpc_guard_reason status=$grpc_guard_grpc_status";
--- config
    location / {
        grpc_guard on;
        limit_conn c 1;
        access_log logs/access.log guard;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- init
my $body = work_dir() . '/slow.bin';
open my $fh, '>', $body or die "$body: $!";
print $fh $::FRAME;
close $fh;
my $record = grpc_backend_record();
my $before = -s $record || 0;
my $pid = fork() // die "fork: $!";
if ($pid == 0) {
    open STDOUT, '>', '/dev/null';
    open STDERR, '>', '/dev/null';
    exec 'curl', '--http2-prior-knowledge', '-s', '--max-time', '10',
         '-X', 'POST', '-H', 'content-type: application/grpc',
         '-H', 'te: trailers', '-H', 'x-test-sleep: 5',
         '--data-binary', "\@$body",
         "http://127.0.0.1:$ENV{TEST_NGINX_SERVER_PORT}/s.S/Slow";
    exit 127;
}
$::SlowPid = $pid;
# the slow call holds its stream once the backend has it (bounded wait)
for (1 .. 300) {
    my $size = -s $record || 0;
    if ($size > $before) {
        open my $r, '<', $record or die;
        seek $r, $before, 0;
        local $/;
        last if <$r> =~ m{/s\.S/Slow};
    }
    select(undef, undef, undef, 0.05);
}
--- grpc_call
method: /s.S/Second
--- grpc_status: 8
--- access_log
reason=nginx_limit_conn status=8
--- error_log
limiting connections by zone "c"



=== TEST 16: a refusal over HTTP/1.1 has a length: gRPC and gRPC-Web
--- http_config
    server {
        listen 127.0.0.1:$TEST_NGINX_PORT2;
        location / {
            grpc_guard_deadline required;
            grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
        }
    }
--- config
--- request_port: $TEST_NGINX_PORT2
--- curl_options: --http1.1
--- request eval
["POST /pkg.Svc/Echo\n", "POST /pkg.Svc/Echo\n"]
--- more_headers eval
["Content-Type: application/grpc", "Content-Type: application/grpc-web+proto"]
--- error_code eval
[200, 200]
--- response_headers eval
["grpc-status: 3\ncontent-length: 0\n!transfer-encoding",
 "grpc-status: 3\ncontent-length: 0\n!transfer-encoding"]
--- raw_response_headers_like eval
[qr{^HTTP/1\.1 200}, qr{^HTTP/1\.1 200}]
--- upstream_calls: 0
