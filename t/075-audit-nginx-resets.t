# A call that nginx itself refuses before it is complete (a stream reset
# with PROTOCOL_ERROR for bad bytes in a header, or a 400 for a bad
# :path) is recorded as what the client sees, 13 INTERNAL, with reason
# bad_request; never as 1 CANCELLED, as if the client had gone away, and
# never without a grpc_status on a guarded server.  A real cancel is
# still 1.

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::Nginx::Socket::Grpc 'no_plan';
use Test::Nginx::Audit;

# what every call of a block must say: grpc_status 13, synthesized,
# reason bad_request, no decision
sub check_bad_request {
    my ($r, $n) = @_;
    is(scalar @$r, $n, "$n records");
    for my $i (0 .. $#$r) {
        my $d = $r->[$i];
        is($d->{grpc_status}, 13, "record $i: grpc_status 13");
        is($d->{grpc_status_source}, 'synthesized',
           "record $i: grpc_status_source");
        is($d->{reason}, 'bad_request', "record $i: reason");
        ok(!exists $d->{decision}, "record $i: no decision");
    }
}

no_shuffle();
no_root_location();
run_audit_tests();

__DATA__

=== TEST 1: guard at server level: streams nginx resets for bad header bytes
--- config
    grpc_guard on;
    grpc_guard_audit_log logs/audit.log;
    location / {
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- init
my @end = (main::h2_raw_end('/test.Echo/Unary', 'localhost', 'x-bad' => "a\nb"),
           main::h2_raw_end('/test.Echo/Unary', 'localhost', 'X-Upper' => 'v'),
           main::h2_raw_end('/test.Echo/Unary', 'localhost', 'x-bad' => "a\0b"));
# nginx 1.22 resets such a stream (RST_STREAM PROTOCOL_ERROR), newer
# nginx answers it with 400; the records must say the same either way
$::End = "@end";
like($::End, qr/^(rst rst rst|end_stream end_stream end_stream)$/,
     'nginx refused the three streams');
--- audit_count: 3
--- audit_check eval
sub {
    my ($r) = @_;
    main::check_bad_request($r, 3);
    if ($::End =~ /end_stream/) {
        is(join(' ', map { $_->{http_status} } @$r), '400 400 400',
           'answered with 400');
    }
    is(join(' ', map { $_->{method} // '-' } @$r),
       '/test.Echo/Unary /test.Echo/Unary /test.Echo/Unary', 'methods');
}
--- error_log
client sent invalid header



=== TEST 2: guard at server level: bad bytes in :path and :authority
A reset before the content type is known, or nginx's 400 for a :path it
cannot parse: on a guarded server such a request is a gRPC call.
--- config
    grpc_guard on;
    grpc_guard_audit_log logs/audit.log;
    location / {
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- init
main::h2_raw_end("/test.Echo/A\nB", 'localhost');
main::h2_raw_end("/test.Echo/A\xff\x01", 'localhost');
main::h2_raw_end('/test.Echo/A B', 'localhost');
main::h2_raw_end('/test.Echo/Unary', "a\0b");
--- audit_count: 4
--- audit_check eval
sub {
    my ($r) = @_;
    main::check_bad_request($r, 4);
    is($r->[1]{http_status}, 400, 'record 1: nginx answered 400');
}



=== TEST 3: guard in a location only: a reset after the content type
The content type says gRPC: 13, not 1.  Before it, nothing tells what
the request was, and the server is not guarded: no grpc_status.
--- config
    grpc_guard_audit_log logs/audit.log;
    location / {
        grpc_guard on;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- init
main::h2_raw_end('/test.Echo/Unary', 'localhost', 'x-bad' => "a\nb");
main::h2_raw_end('/test.Echo/Unary', "a\0b");
--- audit_count: 2
--- audit_check eval
sub {
    my ($r) = @_;
    is(scalar @$r, 2, 'two records');
    is($r->[0]{grpc_status}, 13, 'record 0: grpc_status 13');
    is($r->[0]{reason}, 'bad_request', 'record 0: reason');
    ok(!exists $r->[1]{grpc_status}, 'record 1: no grpc_status');
    ok(!exists $r->[1]{reason}, 'record 1: no reason');
}



=== TEST 4: a client that cancels is still recorded as 1 CANCELLED
--- config
    grpc_guard on;
    grpc_guard_audit_log logs/audit.log;
    location / {
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call
method: /test.Echo/Unary
metadata: x-test-sleep: 3
cancel_after: 0.3
--- grpc_status: 1
--- audit_wait: 0.5
--- audit_check eval
sub {
    my ($r) = @_;
    is(scalar @$r, 1, 'one record');
    is($r->[0]{grpc_status}, 1, 'grpc_status 1');
    is($r->[0]{grpc_status_source}, 'synthesized', 'synthesized');
    ok(!exists $r->[0]{reason}, 'no reason');
}
