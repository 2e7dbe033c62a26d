# API keys: hashed key file, x-api-key (or another header), unknown,
# duplicate and expired keys refused with 16, require_tls, the header
# removed upstream unless grpc_guard_forward_credentials on.

use Test::Nginx::Socket::Grpc 'no_plan';
use Digest::SHA qw(sha256_hex);

our $KEYS = ">>> keys.txt\n"
    . "# clients of the API\n"
    . "\n"
    . "sha256:" . sha256_hex("k-billing-1") . " billing reader,writer\n"
    . "sha256:" . uc(sha256_hex("k-reports-1")) . " reports   # upper-case hex\n"
    . "sha256:" . sha256_hex("k-old") . " retired reader not_after=2020-01-01T00:00:00Z\n"
    . "sha256:" . sha256_hex("k-future") . " next reader not_after=2099-01-01T00:00:00+02:00\n";

no_shuffle();
no_root_location();
run_tests();

__DATA__

=== TEST 1: a good key passes; client id, principal and auth method upstream
--- user_files eval: $::KEYS
--- config
    location / {
        grpc_guard_auth api_key;
        grpc_guard_require_tls off;
        grpc_guard_api_key_file $TEST_NGINX_HTML_DIR/keys.txt;
        grpc_set_header x-client $grpc_guard_api_key_client;
        grpc_set_header x-principal $grpc_guard_principal;
        grpc_set_header x-auth $grpc_guard_auth_method;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call
method: /billing.Ledger/Get
metadata: x-api-key: k-billing-1
--- grpc_status: 0
--- upstream_metadata
x-client: billing
x-principal: billing
x-auth: api_key
!x-api-key



=== TEST 2: upper-case hex in the file, key with a future not_after
--- user_files eval: $::KEYS
--- config
    location / {
        grpc_guard_auth api_key;
        grpc_guard_require_tls off;
        grpc_guard_api_key_file $TEST_NGINX_HTML_DIR/keys.txt;
        grpc_set_header x-client $grpc_guard_api_key_client;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call eval
["method: /r.S/M\nmetadata: x-api-key: k-reports-1",
 "method: /r.S/M\nmetadata: x-api-key: k-future"]
--- grpc_status eval
[0, 0]
--- upstream_metadata eval
["x-client: reports", "x-client: next"]



=== TEST 3: unknown key: 16, never upstream, reason in the log, key not
(nginx itself logs request headers at debug level: info here)
--- log_level: info
--- user_files eval: $::KEYS
--- config
    location / {
        grpc_guard_auth api_key;
        grpc_guard_require_tls off;
        grpc_guard_api_key_file $TEST_NGINX_HTML_DIR/keys.txt;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call
method: /billing.Ledger/Get
metadata: x-api-key: k-wrong-SECRETVALUE
--- grpc_status: 16
--- grpc_message: unauthenticated
--- upstream_calls: 0
--- error_log
grpc guard: refused "/billing.Ledger/Get" with 16: api_key_unknown
--- no_error_log
SECRETVALUE



=== TEST 4: no key: 16 api_key_missing
--- user_files eval: $::KEYS
--- config
    location / {
        grpc_guard_auth api_key;
        grpc_guard_require_tls off;
        grpc_guard_api_key_file $TEST_NGINX_HTML_DIR/keys.txt;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call
method: /billing.Ledger/Get
--- grpc_status: 16
--- grpc_message: unauthenticated
--- upstream_calls: 0
--- error_log
api_key_missing



=== TEST 5: the key twice in one call: 16 api_key_duplicate
--- user_files eval: $::KEYS
--- config
    location / {
        grpc_guard_auth api_key;
        grpc_guard_require_tls off;
        grpc_guard_api_key_file $TEST_NGINX_HTML_DIR/keys.txt;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call
method: /billing.Ledger/Get
metadata: x-api-key: k-billing-1
metadata: x-api-key: k-billing-1
--- grpc_status: 16
--- upstream_calls: 0
--- error_log
api_key_duplicate



=== TEST 6: an expired key: 16 api_key_expired
--- user_files eval: $::KEYS
--- config
    location / {
        grpc_guard_auth api_key;
        grpc_guard_require_tls off;
        grpc_guard_api_key_file $TEST_NGINX_HTML_DIR/keys.txt;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call
method: /billing.Ledger/Get
metadata: x-api-key: k-old
--- grpc_status: 16
--- upstream_calls: 0
--- error_log
api_key_expired



=== TEST 7: require_tls on (default): a key over h2c is refused
--- user_files eval: $::KEYS
--- config
    location / {
        grpc_guard_auth api_key;
        grpc_guard_api_key_file $TEST_NGINX_HTML_DIR/keys.txt;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call
method: /billing.Ledger/Get
metadata: x-api-key: k-billing-1
--- grpc_status: 16
--- grpc_message: transport security required
--- upstream_calls: 0
--- error_log
tls_required



=== TEST 8: require_tls on: the same key over TLS passes
--- user_files eval: $::KEYS
--- config
    listen 127.0.0.1:$TEST_NGINX_TLS_PORT ssl $TEST_NGINX_LISTEN_HTTP2;
    ssl_certificate $TEST_NGINX_CERT_DIR/server.crt;
    ssl_certificate_key $TEST_NGINX_CERT_DIR/server.key;
    location / {
        grpc_guard_auth api_key;
        grpc_guard_api_key_file $TEST_NGINX_HTML_DIR/keys.txt;
        grpc_set_header x-client $grpc_guard_api_key_client;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call
method: /billing.Ledger/Get
metadata: x-api-key: k-billing-1
port: $TEST_NGINX_TLS_PORT
tls: on
server_name: localhost
--- grpc_status: 0
--- upstream_metadata
x-client: billing
!x-api-key



=== TEST 9: grpc_guard_forward_credentials on: the key goes upstream
--- user_files eval: $::KEYS
--- config
    location / {
        grpc_guard_auth api_key;
        grpc_guard_require_tls off;
        grpc_guard_forward_credentials on;
        grpc_guard_api_key_file $TEST_NGINX_HTML_DIR/keys.txt;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call
method: /billing.Ledger/Get
metadata: x-api-key: k-billing-1
--- grpc_status: 0
--- upstream_metadata
x-api-key: k-billing-1



=== TEST 10: another header name
--- user_files eval: $::KEYS
--- config
    location / {
        grpc_guard_auth api_key;
        grpc_guard_require_tls off;
        grpc_guard_api_key_header x-client-token;
        grpc_guard_api_key_file $TEST_NGINX_HTML_DIR/keys.txt;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call eval
["method: /b.L/G\nmetadata: x-client-token: k-billing-1",
 "method: /b.L/G\nmetadata: x-api-key: k-billing-1"]
--- grpc_status eval
[0, 16]
--- upstream_metadata eval
["!x-client-token"]



=== TEST 11: streaming calls are authenticated like unary ones
--- user_files eval: $::KEYS
--- config
    location / {
        grpc_guard_auth api_key;
        grpc_guard_require_tls off;
        grpc_guard_api_key_file $TEST_NGINX_HTML_DIR/keys.txt;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call eval
["method: /b.L/BidiChat\ntype: bidi\nmessages: 2\nmetadata: x-api-key: k-billing-1",
 "method: /b.L/BidiChat\ntype: bidi\nmessages: 2\nmetadata: x-api-key: nope",
 "method: /b.L/ClientStreamUp\ntype: client_stream\nmetadata: x-api-key: nope",
 "method: /b.L/ServerStreamDown\ntype: server_stream\nmetadata: x-api-key: k-reports-1"]
--- grpc_status eval
[0, 16, 16, 0]
--- upstream_calls: 2



=== TEST 12: bad hex fails nginx -t, naming the file and line
--- user_files
>>> keys.txt
# comment
sha256:zz00000000000000000000000000000000000000000000000000000000000000 a
--- config
    location / {
        grpc_guard_auth api_key;
        grpc_guard_api_key_file $TEST_NGINX_HTML_DIR/keys.txt;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- must_die
--- error_log eval
qr/invalid line 2 in API key file ".*keys.txt"/



=== TEST 13: a duplicate hash fails nginx -t, naming both lines
--- user_files eval
">>> keys.txt\nsha256:" . sha256_hex("a") . " one\nsha256:" . uc(sha256_hex("a")) . " two\n"
--- config
    location / {
        grpc_guard_auth api_key;
        grpc_guard_api_key_file $TEST_NGINX_HTML_DIR/keys.txt;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- must_die
--- error_log eval
qr/duplicate API key hash in ".*keys.txt" line 2 \(also in ".*keys.txt" line 1\)/



=== TEST 14: a bad not_after fails nginx -t
--- user_files eval
">>> keys.txt\nsha256:" . sha256_hex("a") . " one not_after=2027-01-01\n"
--- config
    location / {
        grpc_guard_auth api_key;
        grpc_guard_api_key_file $TEST_NGINX_HTML_DIR/keys.txt;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- must_die
--- error_log eval
qr/invalid not_after "not_after=2027-01-01" in API key file ".*keys.txt" line 1/



=== TEST 15: a not_after on a day that does not exist fails nginx -t
--- user_files eval
">>> keys.txt\nsha256:" . sha256_hex("a") . " one not_after=2028-02-29T00:00:00Z\n"
. "sha256:" . sha256_hex("b") . " two not_after=2027-02-29T00:00:00Z\n"
--- config
    location / {
        grpc_guard_auth api_key;
        grpc_guard_api_key_file $TEST_NGINX_HTML_DIR/keys.txt;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- must_die
--- error_log eval
qr/invalid not_after "not_after=2027-02-29T00:00:00Z" in API key file ".*keys.txt" line 2/



=== TEST 16: a not_after at the epoch fails nginx -t (it would never expire)
--- user_files eval
">>> keys.txt\nsha256:" . sha256_hex("a") . " one not_after=1970-01-01T00:00:00Z\n"
--- config
    location / {
        grpc_guard_auth api_key;
        grpc_guard_api_key_file $TEST_NGINX_HTML_DIR/keys.txt;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- must_die
--- error_log eval
qr/invalid not_after "not_after=1970-01-01T00:00:00Z" in API key file ".*keys.txt" line 1/



=== TEST 17: a missing file fails nginx -t
--- config
    location / {
        grpc_guard_auth api_key;
        grpc_guard_api_key_file $TEST_NGINX_HTML_DIR/nope.txt;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- must_die
--- error_log eval
qr/open\(\) ".*nope.txt" failed/



=== TEST 18: the key never appears in the error or access log
--- log_level: info
--- user_files eval: $::KEYS
--- http_config
    log_format all '$request $http_user_agent $grpc_guard_api_key_client $grpc_guard_reason';
--- config
    access_log logs/access.log all;
    location / {
        grpc_guard_auth api_key;
        grpc_guard_require_tls off;
        grpc_guard_api_key_file $TEST_NGINX_HTML_DIR/keys.txt;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call eval
["method: /b.L/G\nmetadata: x-api-key: k-billing-1",
 "method: /b.L/G\nmetadata: x-api-key: k-unknown-XYZZY"]
--- grpc_status eval
[0, 16]
--- no_error_log
k-billing-1
XYZZY
--- access_log
billing
api_key_unknown
--- no_access_log
k-billing-1
XYZZY
