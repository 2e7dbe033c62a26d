# The audit record never holds a credential or a payload, and is valid
# JSON (and valid UTF-8) whatever bytes a client sends in :authority or
# :path.  Every line of every audit file is parsed by a strict JSON::PP.
#
# What reaches the guard depends on the nginx version, and the tests say
# exactly what each one does:
#   before 1.29.1  :authority becomes a Host header, which nginx keeps even
#                  when it refuses it (400): the record has the bad bytes.
#   1.29.1         :authority is parsed on its own; a value nginx refuses
#                  (400) is not kept, the record has no authority.  A bad
#                  Host header is still kept.
#   1.29.4         a host must follow RFC 3986: a byte above 0x7f in
#                  :authority or Host is refused (400) as well.

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::Nginx::Socket::Grpc 'no_plan';
use Test::Nginx::Audit;

our $NginxVersion = do {
    my @v = nginx_version()
        or die "cannot tell the version of the nginx under test\n";
    $v[0] * 1_000_000 + $v[1] * 1_000 + $v[2];
};
our $AuthorityApart = $NginxVersion >= 1_029_001;
our $StrictHost = $NginxVersion >= 1_029_004;

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
nginx refuses the host (400) before any location: the records have no
decision.  Before 1.29.1 the first record has the bytes of :authority,
and the Host header of the second call is a second host; from 1.29.1 a
refused :authority is not kept, and the bytes reach the record in the
Host header of the second call.
--- log_level: info
--- config
    grpc_guard_audit_log logs/audit.log;
    location / {
        grpc_guard on;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- init
main::h2_raw_end('/test.Echo/Unary', "ex\x01am\xffple\x7f\"\\\x1b[31m\tq:80");
main::h2_raw_end('/test.Echo/Unary', 'localhost',
          host => "ex\x01am\xffple\x7f\"\\\x1b[31m\tq:80");
--- audit eval
my $bad = "ex\x01am\x{fffd}ple\x7f\"\\\x1b[31m\tq:80";
# the second call's content-type came before its Host header: a gRPC
# call, whose 400 the guard answers with grpc-status 13
my @refused = (http_status => 400, reason => 'bad_request', grpc_status => 13,
               grpc_status_source => 'synthesized');
$main::AuthorityApart
? [base_record(method => '/test.Echo/Unary', http_status => 400,
               authority => undef),
   base_record(method => '/test.Echo/Unary', authority => $bad, @refused)]
: [base_record(method => '/test.Echo/Unary', http_status => 400,
               authority => $bad),
   base_record(method => '/test.Echo/Unary', authority => 'localhost',
               @refused)]
--- error_log eval
$main::AuthorityApart
? ['client sent invalid ":authority" header',
   'client sent invalid host header']
: ['client sent invalid host header',
   'client sent duplicate host header']
--- audit_check eval
sub {
    my ($r, $raw) = @_;
    my @line = split /\n/, $raw;
    is(main::raw_field($line[$main::AuthorityApart ? 1 : 0], 'authority'),
       'ex\u0001am\ufffdple\u007f\"\\\\\u001b[31m\tq:80',
       'the escapes as written');
    unlike(join('', @line), qr/[\x00-\x1f\x7f]/, 'no raw control byte');
}



=== TEST 3: bad UTF-8 in :path becomes U+FFFD, good UTF-8 stays
2-, 3- and 4-byte characters stay; a cut sequence, an overlong form, a
surrogate and a code point above U+10FFFF do not.  From 1.29.4 nginx
refuses the UTF-8 in :authority (400) before the guard runs, and keeps no
authority; the second call, with an ASCII :authority, reaches the guard.
--- config
    grpc_guard_audit_log logs/audit.log;
    location / {
        grpc_guard on;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- init
my $path = "/test.Echo/\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80|\xe9\x80|\xc0\xaf|"
           . "\xed\xa0\x80|\xf4\x90\x80\x80|\xc3";
main::h2_raw_end($path, "h\xc3\xa9");
main::h2_raw_end($path, 'localhost');
--- audit eval
my $method = "/test.Echo/\x{e9}\x{20ac}\x{1f600}|\x{fffd}\x{fffd}|"
             . "\x{fffd}\x{fffd}|\x{fffd}\x{fffd}\x{fffd}|"
             . "\x{fffd}\x{fffd}\x{fffd}\x{fffd}|\x{fffd}";
my @deny = (decision => 'deny', reason => 'path_not_canonical',
            grpc_status => 12, grpc_status_source => 'local',
            http_status => 200);
[$main::StrictHost
 ? base_record(method => $method, authority => undef, http_status => 400)
 : base_record(method => $method, authority => "h\x{e9}", @deny),
 base_record(method => $method, authority => 'localhost', @deny)]
--- audit_check eval
sub {
    my ($r, $raw) = @_;
    my @line = split /\n/, $raw;
    for my $i (0, 1) {
        like($line[$i], qr/"method":"\/test\.Echo\/\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\|\\ufffd\\ufffd\|/,
             "record $i: valid UTF-8 is written as is, the rest as \\ufffd");
    }
}



=== TEST 4: a path the guard refuses: the raw bytes, escaped
--- config
    grpc_guard_audit_log logs/audit.log;
    location / {
        grpc_guard on;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- init
main::h2_raw_end("/test.Echo/../x%2F\"q\\z", "localhost");
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
main::h2_raw_end("/test.Echo/Unary?access_token=s3cr3t-t0ken", "localhost");
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
main::h2_raw_end("/test.Echo/A\nB", 'localhost');
main::h2_raw_end('/test.Echo/Unary', "a\0b");
main::h2_raw_end("/test.Echo/A\xff\x01", 'localhost');
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
main::h2_raw_end('/test.Echo/' . ('x' x 2000) . '/', 'a' x 300);
--- audit eval
[base_record(method => '/test.Echo/' . ('x' x 1013), authority => 'a' x 256,
             decision => 'deny', reason => 'path_not_canonical',
             grpc_status => 12, grpc_status_source => 'local',
             http_status => 200)]



=== TEST 8: a multi-byte character cut by the length limit is replaced
From 1.29.4 nginx refuses the UTF-8 in :authority (400) and keeps no
authority; from 1.29.1 the same bytes in a Host header are kept (nginx
refuses the request: 400).  Before 1.29.1 that Host header is a second
host, refused (400), and the record has the first one.
--- config
    grpc_guard_audit_log logs/audit.log;
    location / {
        grpc_guard on;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- init
main::h2_raw_end('/test.Echo/Unary', ('a' x 255) . "\xc3\xa9");
main::h2_raw_end('/test.Echo/Unary', 'localhost', host => ('a' x 255) . "\xc3\xa9");
--- audit_count: 2
--- audit_check eval
sub {
    my ($r) = @_;
    my $cut = ('a' x 255) . "\x{fffd}";
    is($r->[0]{authority}, $main::StrictHost ? undef : $cut,
       'record 0: authority cut and replaced, or none');
    is($r->[0]{http_status}, $main::StrictHost ? 400 : 200,
       'record 0: http_status');
    is($r->[1]{authority}, $main::AuthorityApart ? $cut : 'localhost',
       'record 1: authority cut and replaced, or the first host');
    is($r->[1]{http_status}, 400, 'record 1: http_status');
}
