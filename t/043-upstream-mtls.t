# Upstream mTLS is nginx's own (grpc_pass grpcs:// and grpc_ssl_*): tested,
# not re-implemented.  The backend here requires and verifies a client
# certificate; wrong CA or no client certificate fails closed with 14.

use Test::Nginx::Socket::Grpc 'no_plan';

$ENV{TEST_NGINX_MTLS_BACKEND_PORT} = start_grpc_backend(mtls => 1);

no_shuffle();
no_root_location();
run_tests();

__DATA__

=== TEST 1: the right client certificate and CA: the call passes
--- config
    location / {
        grpc_guard on;
        grpc_ssl_certificate $TEST_NGINX_CERT_DIR/upstream-client.crt;
        grpc_ssl_certificate_key $TEST_NGINX_CERT_DIR/upstream-client.key;
        grpc_ssl_trusted_certificate $TEST_NGINX_CERT_DIR/upstream-ca.crt;
        grpc_ssl_verify on;
        grpc_ssl_name upstream.example.org;
        grpc_ssl_server_name on;
        grpc_ssl_protocols TLSv1.2 TLSv1.3;
        grpc_pass grpcs://127.0.0.1:$TEST_NGINX_MTLS_BACKEND_PORT;
    }
--- grpc_call
method: /billing.Ledger/Get
--- grpc_status: 0
--- upstream_port: $TEST_NGINX_MTLS_BACKEND_PORT
--- upstream_calls: 1
--- upstream_method: /billing.Ledger/Get



=== TEST 2: a wrong upstream CA: verification fails closed, 14
--- config
    location / {
        grpc_guard on;
        grpc_ssl_certificate $TEST_NGINX_CERT_DIR/upstream-client.crt;
        grpc_ssl_certificate_key $TEST_NGINX_CERT_DIR/upstream-client.key;
        grpc_ssl_trusted_certificate $TEST_NGINX_CERT_DIR/other-ca.crt;
        grpc_ssl_verify on;
        grpc_ssl_name localhost;
        grpc_pass grpcs://127.0.0.1:$TEST_NGINX_MTLS_BACKEND_PORT;
    }
--- grpc_call
method: /billing.Ledger/Get
--- grpc_status: 14
--- grpc_message: service unavailable
--- upstream_port: $TEST_NGINX_MTLS_BACKEND_PORT
--- upstream_calls: 0
--- error_log
upstream SSL certificate verify error



=== TEST 3: the wrong name: verification fails closed, 14
--- config
    location / {
        grpc_guard on;
        grpc_ssl_certificate $TEST_NGINX_CERT_DIR/upstream-client.crt;
        grpc_ssl_certificate_key $TEST_NGINX_CERT_DIR/upstream-client.key;
        grpc_ssl_trusted_certificate $TEST_NGINX_CERT_DIR/upstream-ca.crt;
        grpc_ssl_verify on;
        grpc_ssl_name billing.example.org;
        grpc_pass grpcs://127.0.0.1:$TEST_NGINX_MTLS_BACKEND_PORT;
    }
--- grpc_call
method: /billing.Ledger/Get
--- grpc_status: 14
--- upstream_port: $TEST_NGINX_MTLS_BACKEND_PORT
--- upstream_calls: 0
--- error_log
upstream SSL certificate does not match



=== TEST 4: no client certificate: the backend refuses, 14
--- config
    location / {
        grpc_guard on;
        grpc_ssl_session_reuse off;
        grpc_ssl_trusted_certificate $TEST_NGINX_CERT_DIR/upstream-ca.crt;
        grpc_ssl_verify on;
        grpc_ssl_name localhost;
        grpc_pass grpcs://127.0.0.1:$TEST_NGINX_MTLS_BACKEND_PORT;
    }
--- grpc_call
method: /billing.Ledger/Get
--- grpc_status: 14
--- grpc_message: service unavailable
--- upstream_port: $TEST_NGINX_MTLS_BACKEND_PORT
--- upstream_calls: 0



=== TEST 5: downstream mTLS identity forwarded over upstream mTLS
--- config
    listen 127.0.0.1:$TEST_NGINX_TLS_PORT ssl $TEST_NGINX_LISTEN_HTTP2;
    ssl_certificate $TEST_NGINX_CERT_DIR/server.crt;
    ssl_certificate_key $TEST_NGINX_CERT_DIR/server.key;
    ssl_client_certificate $TEST_NGINX_CERT_DIR/ca.crt;
    ssl_verify_client optional;
    location / {
        grpc_guard_auth mtls;
        grpc_set_header x-spiffe-id $grpc_guard_peer_spiffe_id;
        grpc_ssl_certificate $TEST_NGINX_CERT_DIR/upstream-client.crt;
        grpc_ssl_certificate_key $TEST_NGINX_CERT_DIR/upstream-client.key;
        grpc_ssl_trusted_certificate $TEST_NGINX_CERT_DIR/upstream-ca.crt;
        grpc_ssl_verify on;
        grpc_ssl_name localhost;
        grpc_pass grpcs://127.0.0.1:$TEST_NGINX_MTLS_BACKEND_PORT;
    }
--- grpc_call
method: /billing.Ledger/Get
port: $TEST_NGINX_TLS_PORT
tls: on
server_name: localhost
cert: client-billing.crt
key: client-billing.key
metadata: x-spiffe-id: spiffe://evil.example/forged
--- grpc_status: 0
--- upstream_port: $TEST_NGINX_MTLS_BACKEND_PORT
--- upstream_metadata
x-spiffe-id: spiffe://example.org/ns/prod/sa/billing
