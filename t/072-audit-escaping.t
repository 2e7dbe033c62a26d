# The audit record never holds a credential or a payload, and is valid
# JSON (and valid UTF-8) whatever bytes a client sends in :authority or
# :path.  Every line of every audit file is parsed by a strict JSON::PP.

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::Nginx::Socket::Grpc 'no_plan';
use Test::Nginx::Audit;

sub raw {
    my ($path, $authority) = @_;
    my $r = h2_raw_call(port => $Test::Nginx::Socket::ServerPort,
                        path => $path, authority => $authority);
    return $r->{end};
}

# the JSON text of a record field must be exactly $json (escapes checked
# in the bytes, not only in the decoded value)
sub raw_field {
    my ($raw, $key) = @_;
    return $raw =~ /"\Q$key\E":"((?:[^"\\]|\\.)*)"/ ? $1 : undef;
}

no_shuffle();
no_root_location();
run_audit_tests();

__DATA__

=== TEST 1: no token, API key or payload in the audit file or error.log
--- log_level: info
--- config
    grpc_guard_audit_log logs/audit.log;
    location / {
        grpc_guard on;
        grpc_guard_deadline required;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call eval
["method: /test.Echo/Unary\ntimeout: 5\n"
 . "metadata: authorization: Bearer secret-token-0123456789\n"
 . "metadata: x-api-key: secret-apikey-abcdef\npayload: secret-payload-42",
 "method: /test.Echo/Unary\n"
 . "metadata: authorization: Bearer secret-token-0123456789\n"
 . "metadata: x-api-key: secret-apikey-abcdef\npayload: secret-payload-42",
 "method: /test.Echo/Unary\ntimeout: 5\nmetadata: x-test-status: 13\n"
 . "metadata: authorization: Basic c2VjcmV0LXBhc3N3b3Jk\n"
 . "metadata: x-api-key: secret-apikey-abcdef\npayload: secret-payload-42"]
--- grpc_status eval
[0, 3, 13]
--- audit_count: 3
--- audit_absent
secret
c2VjcmV0LXBhc3N3b3Jk
Bearer
Basic



=== TEST 2: control bytes, quotes, backslashes and bad UTF-8 in :authority
nginx refuses the host (400) before any location; the record has no
decision but every byte is accounted for.
--- config
    grpc_guard_audit_log logs/audit.log;
    location / {
        grpc_guard on;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- init
main::raw('/test.Echo/Unary', "ex\x01am\xffple\x7f\"\\\x1b[31m\tq:80");
--- audit eval
[base_record(method => '/test.Echo/Unary', http_status => 400,
             authority => "ex\x01am\x{fffd}ple\x7f\"\\\x1b[31m\tq:80")]
--- audit_check eval
sub {
    my ($r, $raw) = @_;
    is(main::raw_field($raw, 'authority'),
       'ex\u0001am\ufffdple\u007f\"\\\\\u001b[31m\tq:80',
       'the escapes as written');
    unlike($raw, qr/[\x00-\x1f\x7f](?!\z)/, 'no raw control byte');
}



=== TEST 3: bad UTF-8 in :path becomes U+FFFD, good UTF-8 stays
2-, 3- and 4-byte characters stay; a cut sequence, an overlong form, a
surrogate and a code point above U+10FFFF do not.
--- config
    grpc_guard_audit_log logs/audit.log;
    location / {
        grpc_guard on;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- init
main::raw("/test.Echo/\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80|\xe9\x80|\xc0\xaf|"
          . "\xed\xa0\x80|\xf4\x90\x80\x80|\xc3", "h\xc3\xa9");
--- audit eval
[base_record(
    method => "/test.Echo/\x{e9}\x{20ac}\x{1f600}|\x{fffd}\x{fffd}|"
              . "\x{fffd}\x{fffd}|\x{fffd}\x{fffd}\x{fffd}|"
              . "\x{fffd}\x{fffd}\x{fffd}\x{fffd}|\x{fffd}",
    authority => "h\x{e9}", decision => 'deny',
    reason => 'path_not_canonical', grpc_status => 12,
    grpc_status_source => 'local', http_status => 200)]
--- audit_check eval
sub {
    my ($r, $raw) = @_;
    like($raw, qr/"method":"\/test\.Echo\/\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\|\\ufffd\\ufffd\|/,
         'valid UTF-8 is written as is, the rest as \ufffd');
}



=== TEST 4: a path the guard refuses: the raw bytes, escaped
--- config
    grpc_guard_audit_log logs/audit.log;
    location / {
        grpc_guard on;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- init
main::raw("/test.Echo/../x%2F\"q\\z", "localhost");
--- audit eval
[base_record(method => "/test.Echo/../x%2F\"q\\z", authority => 'localhost',
             decision => 'deny', reason => 'path_not_canonical',
             grpc_status => 12, grpc_status_source => 'local',
             http_status => 200)]



=== TEST 5: a refused path with a query: recorded without the query
--- config
    grpc_guard_audit_log logs/audit.log;
    location / {
        grpc_guard on;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- init
main::raw("/test.Echo/Unary?access_token=s3cr3t-t0ken", "localhost");
--- audit eval
[base_record(method => "/test.Echo/Unary", authority => 'localhost',
             decision => 'deny', reason => 'path_not_canonical',
             grpc_status => 12, grpc_status_source => 'local',
             http_status => 200)]
--- no_error_log eval
qr/grpc guard: [^,]*s3cr3t/



=== TEST 6: bytes nginx refuses at the HTTP/2 layer: still a valid record
NUL, CR and LF in a header value make nginx reset the stream.
--- config
    grpc_guard_audit_log logs/audit.log;
    location / {
        grpc_guard on;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- init
main::raw("/test.Echo/A\nB", 'localhost');
main::raw('/test.Echo/Unary', "a\0b");
main::raw("/test.Echo/A\xff\x01", 'localhost');
--- audit_count: 3
--- audit_check eval
sub {
    my ($r) = @_;
    is(scalar(grep { !exists $_->{decision} } @$r), 3, 'no decision');
    is(scalar(grep { exists $_->{grpc_status} } @$r), 0, 'no grpc_status');
}



=== TEST 7: long values are cut: :authority at 256 bytes, :path at 1024
--- config
    grpc_guard_audit_log logs/audit.log;
    large_client_header_buffers 4 8k;
    location / {
        grpc_guard on;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- init
main::raw('/test.Echo/' . ('x' x 2000) . '/', 'a' x 300);
--- audit eval
[base_record(method => '/test.Echo/' . ('x' x 1013), authority => 'a' x 256,
             decision => 'deny', reason => 'path_not_canonical',
             grpc_status => 12, grpc_status_source => 'local',
             http_status => 200)]



=== TEST 8: a multi-byte character cut by the length limit is replaced
--- config
    grpc_guard_audit_log logs/audit.log;
    location / {
        grpc_guard on;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- init
main::raw('/test.Echo/Unary', ('a' x 255) . "\xc3\xa9");
--- audit_count: 1
--- audit_check eval
sub {
    my ($r) = @_;
    is($r->[0]{authority}, ('a' x 255) . "\x{fffd}", 'cut and replaced');
}
