# grpc_guard_audit_log: one record per RPC, whatever its outcome, with the
# exact fields of DESIGN.md section 6 and the final grpc-status with the
# place it came from (local, trailer, trailers_only, synthesized).

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::Nginx::Socket::Grpc 'no_plan';
use Test::Nginx::Audit;

our $GP = $ENV{TEST_NGINX_GRPC_PORT};

# Under valgrind nginx sees a call long after the client started its
# clock: it cannot tell a deadline from a cancel just before it, and the
# durations it measures are shorter than the client's.
our $VG = $ENV{TEST_NGINX_USE_VALGRIND};
our $DEADLINE = $VG ? sub { $_[0] == 4 || $_[0] == 1 } : 4;

# an upstream that resets every stream after its response headers, and
# one that closes the connection there
($ENV{TEST_NGINX_RESET_PORT}) = start_h2_stub(mode => 'reset');
($ENV{TEST_NGINX_CLOSE_PORT}) = start_h2_stub(mode => 'close');

# and one that sends its headers and a message, and then nothing
($ENV{TEST_NGINX_HANG_PORT}) = start_h2_stub(mode => 'hang');

no_shuffle();
no_root_location();
run_audit_tests();

__DATA__

=== TEST 1: allowed call: grpc-status 0 from the upstream's trailers
--- config
    grpc_guard_audit_log logs/audit.log;
    location / {
        grpc_guard on;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call
method: /test.Echo/Unary
--- grpc_status: 0
--- audit eval
[base_record(method => '/test.Echo/Unary', decision => 'allow',
             grpc_status => 0, grpc_status_source => 'trailer',
             http_status => 200, upstream => "127.0.0.1:$::GP")]
--- audit_check eval
sub {
    my ($r) = @_;
    my ($y, $mo, $d, $h, $mi, $s) =
        $r->[0]{ts} =~ /^(\d+)-(\d+)-(\d+)T(\d+):(\d+):(\d+)/;
    my $t = POSIX::mktime($s, $mi, $h, $d, $mo - 1, $y - 1900);
    $t -= POSIX::mktime(gmtime 0) if defined $t;     # mktime is local
    ok(defined $t && abs($t - time) < 30, "ts is UTC and now");
    ok($r->[0]{bytes_in} > 0 && $r->[0]{bytes_out} > 0, "bytes counted");
}
--- no_error_log
[error]
[alert]



=== TEST 2: several calls: pid, seq without gaps, one request_id each
--- config
    grpc_guard_audit_log logs/audit.log;
    location / {
        grpc_guard on;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call eval
["method: /test.Echo/Unary", "method: /test.Echo/Unary",
 "method: /test.Echo/Unary"]
--- grpc_status: 0
--- audit_count: 3
--- audit_check eval
sub {
    my ($r) = @_;
    is(join(',', map { $_->{seq} } @$r), '1,2,3', 'seq 1, 2, 3');
    is(scalar(grep { $_->{pid} == $r->[0]{pid} } @$r), 3, 'one worker');
    my %ids = map { $_->{request_id} => 1 } @$r;
    is(scalar keys %ids, 3, 'request ids differ');
}



=== TEST 3: refused by the module: 12 for reflection
--- config
    grpc_guard_audit_log logs/audit.log;
    location / {
        grpc_guard on;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call
method: /grpc.reflection.v1.ServerReflection/ServerReflectionInfo
type: bidi
--- grpc_status: 12
--- upstream_calls: 0
--- audit eval
[base_record(
    method => '/grpc.reflection.v1.ServerReflection/ServerReflectionInfo',
    decision => 'deny', reason => 'reflection_disabled',
    grpc_status => 12, grpc_status_source => 'local', http_status => 200)]



=== TEST 4: refused by the module: 3 for a missing deadline
--- config
    grpc_guard_audit_log logs/audit.log;
    location / {
        grpc_guard on;
        grpc_guard_deadline required;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call
method: /test.Echo/Unary
--- grpc_status: 3
--- audit eval
[base_record(method => '/test.Echo/Unary', decision => 'deny',
             reason => 'deadline_missing', grpc_status => 3,
             grpc_status_source => 'local', http_status => 200)]



=== TEST 5: refused by the upstream: status from its trailers
--- config
    grpc_guard_audit_log logs/audit.log;
    location / {
        grpc_guard on;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call
method: /test.Echo/Unary
metadata: x-test-status: 5
--- grpc_status: 5
--- audit eval
[base_record(method => '/test.Echo/Unary', decision => 'allow',
             grpc_status => 5, grpc_status_source => 'trailer',
             http_status => 200, upstream => "127.0.0.1:$::GP")]



=== TEST 6: refused by the upstream: status from a Trailers-Only reply
--- config
    grpc_guard_audit_log logs/audit.log;
    location / {
        grpc_guard on;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call
method: /test.Echo/Unary
metadata: x-test-status: 7
metadata: x-test-trailers-only: 1
--- grpc_status: 7
--- audit eval
[base_record(method => '/test.Echo/Unary', decision => 'allow',
             grpc_status => 7, grpc_status_source => 'trailers_only',
             http_status => 200, upstream => "127.0.0.1:$::GP")]



=== TEST 7: cancelled by the client before the reply: 1, 499
--- config
    grpc_guard_audit_log logs/audit.log;
    location / {
        grpc_guard on;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call
method: /test.Echo/Unary
metadata: x-test-sleep: 3
cancel_after: 0.4
--- grpc_status: 1
--- audit eval
[base_record(method => '/test.Echo/Unary', decision => 'allow',
             grpc_status => 1, grpc_status_source => 'synthesized',
             http_status => 499, upstream => "127.0.0.1:$::GP",
             duration_ms => sub { $_[0] >= ($::VG ? 0 : 300)
                                  && $_[0] < 2500 })]



=== TEST 8: cancelled by the client in the middle of a stream: 1
The response headers and a message were sent: the HTTP status is 200.
--- config
    grpc_guard_audit_log logs/audit.log;
    location / {
        grpc_guard on;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_HANG_PORT;
    }
--- grpc_call
method: /test.Echo/ServerStreamTicks
type: server_stream
cancel_after: 0.5
--- grpc_status: 1
--- grpc_responses: 1
--- audit eval
[base_record(method => '/test.Echo/ServerStreamTicks', decision => 'allow',
             grpc_status => 1, grpc_status_source => 'synthesized',
             http_status => 200,
             upstream => "127.0.0.1:$ENV{TEST_NGINX_HANG_PORT}")]



=== TEST 8a: the client's deadline passed in the middle of a stream: 4
--- config
    grpc_guard_audit_log logs/audit.log;
    location / {
        grpc_guard on;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_HANG_PORT;
    }
--- grpc_call
method: /test.Echo/ServerStreamTicks
type: server_stream
timeout: 0.5
--- grpc_status: 4
--- grpc_responses: 1
--- audit eval
[base_record(method => '/test.Echo/ServerStreamTicks', decision => 'allow',
             grpc_status => $::DEADLINE, grpc_status_source => 'synthesized',
             http_status => 200,
             upstream => "127.0.0.1:$ENV{TEST_NGINX_HANG_PORT}")]



=== TEST 9: the client's deadline passed: 4 (no deadline policy)
The upstream does not see the deadline: what ends the call is the client's
RST_STREAM, not a reply of the upstream.
--- config
    grpc_guard_audit_log logs/audit.log;
    location / {
        grpc_guard on;
        grpc_set_header grpc-timeout "";
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call
method: /test.Echo/Unary
metadata: x-test-sleep: 3
timeout: 0.5
--- grpc_status: 4
--- audit eval
[base_record(method => '/test.Echo/Unary', decision => 'allow',
             grpc_status => $::DEADLINE, grpc_status_source => 'synthesized',
             http_status => 499, upstream => "127.0.0.1:$::GP")]



=== TEST 10: the client's deadline passed: 4 (grpc_guard_deadline)
--- config
    grpc_guard_audit_log logs/audit.log;
    location / {
        grpc_guard on;
        grpc_guard_deadline required max=30s;
        grpc_set_header grpc-timeout "";
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call
method: /test.Echo/Unary
metadata: x-test-sleep: 3
timeout: 0.5
--- grpc_status: 4
--- audit eval
[base_record(method => '/test.Echo/Unary', decision => 'allow',
             grpc_status => $::DEADLINE, grpc_status_source => 'synthesized',
             http_status => 499, upstream => "127.0.0.1:$::GP")]



=== TEST 11: upstream timed out: 4
http_status is nginx's $status: the 504 that became a Trailers-Only reply.
--- config
    grpc_guard_audit_log logs/audit.log;
    location / {
        grpc_guard on;
        grpc_read_timeout 300ms;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call
method: /test.Echo/Unary
metadata: x-test-sleep: 1.5
--- grpc_status: 4
--- audit eval
[base_record(method => '/test.Echo/Unary', decision => 'allow',
             reason => 'upstream_timeout', grpc_status => 4,
             grpc_status_source => 'synthesized', http_status => 504,
             upstream => "127.0.0.1:$::GP")]
--- error_log
upstream timed out



=== TEST 12: upstream unreachable: 14
--- config
    grpc_guard_audit_log logs/audit.log;
    location / {
        grpc_guard on;
        grpc_pass grpc://127.0.0.1:1;
    }
--- grpc_call
method: /test.Echo/Unary
--- grpc_status: 14
--- audit eval
[base_record(method => '/test.Echo/Unary', decision => 'allow',
             reason => 'upstream_unavailable', grpc_status => 14,
             grpc_status_source => 'synthesized', http_status => 502,
             upstream => '127.0.0.1:1')]
--- error_log
connect() failed



=== TEST 13: upstream reset the stream after its headers: 13
--- config
    grpc_guard_audit_log logs/audit.log;
    location / {
        grpc_guard on;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_RESET_PORT;
    }
--- grpc_call
method: /test.Echo/Unary
--- grpc_status: 13
--- audit eval
[base_record(method => '/test.Echo/Unary', decision => 'allow',
             grpc_status => 13, grpc_status_source => 'synthesized',
             http_status => 200,
             upstream => "127.0.0.1:$ENV{TEST_NGINX_RESET_PORT}")]



=== TEST 14: upstream closed the connection after its headers: 13
--- config
    grpc_guard_audit_log logs/audit.log;
    location / {
        grpc_guard on;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_CLOSE_PORT;
    }
--- grpc_call
method: /test.Echo/Unary
--- grpc_status: 13
--- audit eval
[base_record(method => '/test.Echo/Unary', decision => 'allow',
             grpc_status => 13, grpc_status_source => 'synthesized',
             http_status => 200,
             upstream => "127.0.0.1:$ENV{TEST_NGINX_CLOSE_PORT}")]



=== TEST 15: body over client_max_body_size: 8, synthesized
--- config
    grpc_guard_audit_log logs/audit.log;
    location / {
        grpc_guard on;
        client_max_body_size 10;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call
method: /test.Echo/Unary
payload: a message longer than ten bytes
--- grpc_status: 8
--- audit eval
[base_record(method => '/test.Echo/Unary', decision => 'allow',
             reason => 'body_too_large', grpc_status => 8,
             grpc_status_source => 'synthesized', http_status => 413,
             upstream => "127.0.0.1:$::GP")]



=== TEST 16: public method
--- config
    grpc_guard_audit_log logs/audit.log;
    location / {
        grpc_guard on;
        grpc_guard_public /grpc.health.v1.Health/*;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call
method: /grpc.health.v1.Health/Check
--- grpc_status: 0
--- audit eval
[base_record(method => '/grpc.health.v1.Health/Check',
             decision => 'public', grpc_status => 0,
             grpc_status_source => 'trailer', http_status => 200,
             upstream => "127.0.0.1:$::GP")]



=== TEST 17: "grpc_guard off": audited, decision bypass
--- config
    grpc_guard_audit_log logs/audit.log;
    location / {
        grpc_guard off;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call
method: /test.Echo/Unary
--- grpc_status: 0
--- audit eval
[base_record(method => '/test.Echo/Unary', decision => 'bypass',
             grpc_status => 0, grpc_status_source => 'trailer',
             http_status => 200, upstream => "127.0.0.1:$::GP")]



=== TEST 18: without the guard nginx's 502 page is 14, synthesized
--- config
    grpc_guard_audit_log logs/audit.log;
    location / {
        grpc_pass grpc://127.0.0.1:1;
    }
--- grpc_call
method: /test.Echo/Unary
--- grpc_status: 14
--- audit eval
[base_record(method => '/test.Echo/Unary', decision => 'bypass',
             grpc_status => 14, grpc_status_source => 'synthesized',
             http_status => 502, upstream => '127.0.0.1:1')]



=== TEST 19: a non-gRPC request: the guard's status and the HTTP status
--- config
    grpc_guard_audit_log logs/audit.log;
    location / {
        grpc_guard on;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- request
GET /a/../b.C/D
--- error_code: 404
--- audit eval
[base_record(method => '/a/../b.C/D', decision => 'deny',
             reason => 'path_not_canonical', http_status => 404,
             grpc_status => 12, grpc_status_source => 'local',
             authority => 'localhost')]



=== TEST 20: inherited from http{}, "off" in a location
--- http_config
    grpc_guard_audit_log logs/audit.log;
--- config
    location /test.Echo/ {
        grpc_guard on;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
    location /test.Quiet/ {
        grpc_guard on;
        grpc_guard_audit_log off;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call eval
["method: /test.Quiet/Unary", "method: /test.Echo/Unary",
 "method: /test.Quiet/Unary"]
--- grpc_status: 0
--- audit eval
[base_record(method => '/test.Echo/Unary', decision => 'allow',
             grpc_status => 0, grpc_status_source => 'trailer',
             http_status => 200, upstream => "127.0.0.1:$::GP")]



=== TEST 21: TLS: version and cipher; $request_id when the request used it
--- config
    listen 127.0.0.1:$TEST_NGINX_TLS_PORT ssl $TEST_NGINX_LISTEN_HTTP2;
    ssl_certificate $TEST_NGINX_CERT_DIR/server.crt;
    ssl_certificate_key $TEST_NGINX_CERT_DIR/server.key;
    ssl_protocols TLSv1.2 TLSv1.3;

    grpc_guard_audit_log logs/audit.log;
    location / {
        grpc_guard on;
        grpc_set_header x-request-id $request_id;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call eval
["method: /test.Echo/Unary\nport: \$TEST_NGINX_TLS_PORT\ntls: on\nserver_name: localhost"]
--- grpc_status: 0
--- audit eval
[base_record(method => '/test.Echo/Unary', decision => 'allow',
             authority => 'localhost',
             tls => { version => 'TLSv1.3', cipher => qr/^TLS_\w+$/ },
             grpc_status => 0, grpc_status_source => 'trailer',
             http_status => 200, upstream => "127.0.0.1:$::GP")]
--- audit_check eval
sub {
    my ($r) = @_;
    my ($e) = Test::Nginx::Grpc::read_records(grpc_backend_record());
    my %md = map { @$_ } @{ $e->[-1]{metadata} || [] };
    is($r->[0]{request_id}, $md{'x-request-id'},
       'the request_id sent upstream');
}
