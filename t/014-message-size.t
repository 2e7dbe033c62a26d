# grpc_guard_max_message_size: the 5-byte prefix of every request message
# is read as the body streams through (buffered and unbuffered bodies,
# client streams, prefixes cut across buffers, gRPC-Web and its base64
# form); a message declared larger than the limit is refused with 8
# "message too large" before its bytes go upstream.

use Test::Nginx::Socket::Grpc 'no_plan';
use Test::Nginx::Audit;
use JSON::PP ();
use MIME::Base64 qw(encode_base64);

# what the backend logged, one entry per request message (calls that
# send x-test-log-messages), after byte $off of the log
sub messages {
    my ($off) = @_;
    my $f = grpc_backend_record() . '.messages';
    my @m;
    open my $fh, '<', $f or return \@m;
    seek $fh, $off || 0, 0;
    while (my $l = <$fh>) {
        push @m, JSON::PP->new->decode($l);
    }
    close $fh;
    return \@m;
}

sub messages_size {
    return -s (grpc_backend_record() . '.messages') || 0;
}

sub sizes {
    my ($m) = @_;
    return join ' ', map { $_->{size} } @$m;
}

# a call made in one write (HEADERS, and the body in one DATA frame):
# nginx has the whole body before the request runs, and reads it into
# client_body_buffer_size buffers (a buffered body)
sub raw_call {
    my ($path, $body, $ct) = @_;
    return h2_raw_call(port => $Test::Nginx::Socket::ServerPort,
                       path => $path, authority => 'localhost',
                       content_type => $ct, body => $body,
                       headers => ['x-test-log-messages', '1']);
}

# a call whose body goes out in pieces, 0.3 s apart, so that nginx reads
# each on its own
sub slow_call {
    my ($path, $chunks, $ct) = @_;
    return h2_raw_call(port => $Test::Nginx::Socket::ServerPort,
                       path => $path, authority => 'localhost',
                       content_type => $ct, chunks => $chunks,
                       delay => 0.3,
                       headers => ['x-test-log-messages', '1']);
}

# the frames of a raw call's reply but WINDOW_UPDATE, up to the end of
# the stream: "HEADERS:0x5", "HEADERS:0x4 DATA:0x0 HEADERS:0x5"
sub frames {
    my ($r) = @_;
    my %n = (0 => 'DATA', 1 => 'HEADERS', 3 => 'RST_STREAM');
    return join ' ', map { sprintf '%s:0x%x', $n{ $_->[0] } // $_->[0],
                                   $_->[1] }
                     grep { $_->[0] != 8 } @{ $r->{frames} };
}

our ($Raw, $MsgOff);

# nginx 1.22 runs an HTTP/2 request as soon as its HEADERS frame is read,
# so grpc_pass reads a body unbuffered (each DATA frame as it comes)
# unless the whole body is there before the content phase: here an
# access-phase step that waits for an upstream (auth_request; the
# guard's own Redis and JWKS round trips do the same) lets the body
# arrive first, and nginx then reads it in client_body_buffer_size
# pieces (a buffered body)
our $Waiter = <<'_EOC_';
    log_format msg '$grpc_guard_reason $grpc_guard_grpc_status';
    server {
        listen 127.0.0.1:$TEST_NGINX_PORT2;
        location / {
            return 200 ok;
        }
    }
_EOC_

no_shuffle();
no_root_location();
run_audit_tests();

__DATA__

=== TEST 1: a unary message under the limit passes
--- config
    location /pkg.Svc/ {
        grpc_guard_max_message_size 1k;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call
method: /pkg.Svc/Echo
sizes: 1000
--- grpc_status: 0
--- grpc_response_like: "request_bytes": 1000\b
--- upstream_calls: 1
--- error_log
grpc guard: request message 1 of 1000 bytes
--- no_error_log
[error]
message_too_large



=== TEST 2: a message of exactly the limit passes
--- grpc_call
method: /pkg.Svc/Echo
sizes: 1024
--- grpc_status: 0
--- grpc_response_like: "request_bytes": 1024\b
--- upstream_calls: 1
--- error_log
grpc guard: request message 1 of 1024 bytes
--- no_error_log
message_too_large



=== TEST 3: one byte over: 8 "message too large", nothing reached the backend
--- grpc_call
method: /pkg.Svc/Echo
sizes: 1025
--- grpc_status: 8
--- grpc_message: message too large
--- upstream_calls: 0
--- error_log
grpc guard: request message 1 declares 1025 bytes, over grpc_guard_max_message_size 1024
grpc guard: refused "/pkg.Svc/Echo" with 8: message_too_large
--- no_error_log
[error]



=== TEST 4: a Trailers-Only reply: one HEADERS frame, no DATA
--- request eval
"POST /pkg.Svc/Echo\n" . grpc_frame('x' x 2000)
--- more_headers
content-type: application/grpc
te: trailers
--- response_headers
grpc-status: 8
grpc-message: message too large
content-type: application/grpc
--- response_body:
--- h2_frames_like eval
[qr/recv HEADERS frame <length=\d+, flags=0x05, stream_id=\d+>/,
 qr/recv \(stream_id=\d+\) grpc-status: 8/]
--- h2_frames_unlike
recv DATA frame
--- upstream_calls: 0



=== TEST 5: a client stream: three small messages reach the backend, the large one does not
--- config
    location /pkg.Svc/ {
        grpc_guard_max_message_size 1k;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- init
$::MsgOff = main::messages_size();
--- grpc_call
method: /pkg.Svc/ClientStreamUpload
type: client_stream
metadata: x-test-log-messages: 1
sizes: 10 20 30 5000
message_delay: 0.3
--- grpc_status: 8
--- grpc_message: message too large
--- upstream_calls: 1
--- audit_check eval
sub {
    my $m = main::messages($::MsgOff);
    is(main::sizes($m), '10 20 30', 'the backend received the small ones');
}
--- error_log
grpc guard: request message 4 declares 5000 bytes
--- no_error_log
[error]



=== TEST 6: a client stream of messages under the limit passes
--- init
$::MsgOff = main::messages_size();
--- grpc_call
method: /pkg.Svc/ClientStreamUpload
type: client_stream
metadata: x-test-log-messages: 1
sizes: 1024 0 1 1000
message_delay: 0.1
--- grpc_status: 0
--- grpc_response_like: "count": 4\b
--- audit_check eval
sub {
    my $m = main::messages($::MsgOff);
    is(main::sizes($m), '1024 0 1 1000', 'the backend received all');
}
--- error_log
grpc guard: request message 4 of 1000 bytes
--- no_error_log
message_too_large



=== TEST 7: all messages sent at once (one buffer): refused at the large one
--- grpc_call
method: /pkg.Svc/ClientStreamUpload
type: client_stream
sizes: 10 10 10 5000
--- grpc_status: 8
--- grpc_message: message too large
--- no_error_log
[error]



=== TEST 8: the upstream has answered: the client stream is reset, the audit says 8
--- config
    grpc_guard_audit_log logs/audit.log;
    location /pkg.Svc/ {
        grpc_guard_max_message_size 1k;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- init
$::MsgOff = main::messages_size();
--- grpc_call
method: /pkg.Svc/BidiChat
type: bidi
metadata: x-test-log-messages: 1
metadata: x-test-header: x-early=1
sizes: 10 5000
message_delay: 0.5
--- grpc_status: 13
--- grpc_responses: 1
--- grpc_initial_metadata
x-early: 1
--- audit_count: 1
--- audit_check eval
sub {
    my ($r) = @_;
    is($r->[0]{grpc_status}, 8, 'audit: grpc_status 8');
    is($r->[0]{reason}, 'message_too_large', 'audit: reason');
    is($r->[0]{decision}, 'deny', 'audit: decision');
    is($r->[0]{http_status}, 200, 'audit: the response had started');
    my $m = main::messages($::MsgOff);
    is(main::sizes($m), '10', 'the backend received the small one');
}
--- error_log
grpc guard: refused "/pkg.Svc/BidiChat" with 8: message_too_large
--- no_error_log
[error]



=== TEST 9: the audit record and $grpc_guard_reason of a refusal before any answer
--- http_config
    log_format msg '$grpc_guard_reason $grpc_guard_grpc_status $status';
--- config
    grpc_guard_audit_log logs/audit.log;
    location /pkg.Svc/ {
        grpc_guard_max_message_size 1k;
        access_log logs/access.log msg;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call eval
["method: /pkg.Svc/Echo\nsizes: 2000",
 "method: /pkg.Svc/Echo\nsizes: 20"]
--- grpc_status eval
[8, 0]
--- audit_count: 2
--- audit_check eval
sub {
    my ($r) = @_;
    is($r->[0]{grpc_status}, 8, 'audit: grpc_status 8');
    is($r->[0]{grpc_status_source}, 'local', 'audit: the guard answered');
    is($r->[0]{reason}, 'message_too_large', 'audit: reason');
    is($r->[0]{decision}, 'deny', 'audit: decision');
    is($r->[1]{grpc_status}, 0, 'audit: the small one passed');
    ok(!defined $r->[1]{reason}, 'audit: no reason for it');
}
--- access_log
message_too_large 8 413
- 0 200



=== TEST 10: a body nginx has in full before the content phase (buffered)
--- http_config eval: $::Waiter
--- config
    location /pkg.Svc/ {
        grpc_guard_max_message_size 1500;
        client_body_buffer_size 1k;
        access_log logs/access.log msg;
        auth_request /wait;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
    location = /wait {
        internal;
        proxy_pass http://127.0.0.1:$TEST_NGINX_PORT2/;
    }
--- init
$::MsgOff = main::messages_size();
$::Raw = main::raw_call('/pkg.Svc/ClientStreamUpload',
                        grpc_frame('a' x 1017) . grpc_frame('b' x 2000));
--- audit_check eval
sub {
    is(main::frames($::Raw), 'HEADERS:0x5', 'a Trailers-Only reply');
    is(main::sizes(main::messages($::MsgOff)), '',
       'nothing reached the backend');
}
--- access_log
message_too_large 8
--- error_log
http2 read client request body handler
grpc guard: request message 2 declares 2000 bytes
--- no_error_log
[error]



=== TEST 11: the same, messages under the limit: all passed
--- init
$::MsgOff = main::messages_size();
$::Raw = main::raw_call('/pkg.Svc/ClientStreamUpload',
                        grpc_frame('a' x 1017) . grpc_frame('b' x 1500)
                        . grpc_frame('c' x 1500));
--- audit_check eval
sub {
    is(main::frames($::Raw), 'HEADERS:0x4 DATA:0x0 HEADERS:0x5',
       'an answer from the backend');
    is(main::sizes(main::messages($::MsgOff)), '1017 1500 1500',
       'the backend received all');
}
--- access_log
- 0
--- error_log
http2 read client request body handler
grpc guard: request message 3 of 1500 bytes
--- no_error_log
[error]
message_too_large



=== TEST 12: a prefix cut across reads (unbuffered body, slow client)
--- http_config
    log_format msg '$grpc_guard_reason $grpc_guard_grpc_status $status';
--- config
    location /pkg.Svc/ {
        grpc_guard_max_message_size 1k;
        access_log logs/access.log msg;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- init
$::MsgOff = main::messages_size();
my $big = grpc_frame('b' x 2000);
$::Raw = main::slow_call('/pkg.Svc/ClientStreamUpload',
    [grpc_frame('a' x 10) . substr($big, 0, 2), substr($big, 2, 2),
     substr($big, 4)]);
--- audit_check eval
sub {
    is(main::frames($::Raw), 'HEADERS:0x5', 'a Trailers-Only reply');
    is(main::sizes(main::messages($::MsgOff)), '10',
       'the backend received the small one');
}
--- access_log
message_too_large 8 413
--- error_log
grpc guard: request message 1 of 10 bytes
grpc guard: request message 2 declares 2000 bytes
--- no_error_log
[error]



=== TEST 13: the same slow client under the limit passes
--- init
$::MsgOff = main::messages_size();
my $m = grpc_frame('b' x 1000);
$::Raw = main::slow_call('/pkg.Svc/ClientStreamUpload',
    [grpc_frame('a' x 10) . substr($m, 0, 3), substr($m, 3, 1),
     substr($m, 4, 500), substr($m, 504)]);
--- audit_check eval
sub {
    is(main::frames($::Raw), 'HEADERS:0x4 DATA:0x0 HEADERS:0x5',
       'an answer from the backend');
    is(main::sizes(main::messages($::MsgOff)), '10 1000',
       'the backend received both');
}
--- access_log
- 0 200
--- error_log
grpc guard: request message 2 of 1000 bytes
--- no_error_log
message_too_large



=== TEST 14: the default is 4m wherever the guard is on
--- config
    location /pkg.Svc/ {
        grpc_guard on;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call eval
["method: /pkg.Svc/Echo\nsizes: 4194305",
 "method: /pkg.Svc/Echo\nsizes: 4194304"]
--- grpc_status eval
[8, 0]
--- grpc_message eval
["message too large", ""]
--- upstream_calls: 1
--- timeout: 20



=== TEST 15: off: no limit (the backend's own 4 MiB is what refuses)
--- config
    grpc_guard_max_message_size 1k;
    location /pkg.Svc/ {
        grpc_guard_max_message_size off;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
    location /other.Svc/ {
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call eval
["method: /pkg.Svc/Echo\nsizes: 5000",
 "method: /other.Svc/Echo\nsizes: 5000"]
--- grpc_status eval
[0, 8]
--- grpc_message eval
["", "message too large"]
--- upstream_calls: 1



=== TEST 16: the directive alone turns the guard on; grpc_guard off still opts out
--- config
    location /pkg.Svc/ {
        grpc_guard_max_message_size 1k;
        grpc_set_header x-decision $grpc_guard_decision;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
    location /off.Svc/ {
        grpc_guard off;
        grpc_guard_max_message_size 1k;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call eval
["method: /pkg.Svc/Echo\nsizes: 10",
 "method: /pkg.Svc/Echo\nsizes: 2000",
 "method: /off.Svc/Echo\nsizes: 2000"]
--- grpc_status eval
[0, 8, 0]
--- upstream_calls: 2
--- upstream_metadata eval
["x-decision: allow", "!x-decision"]



=== TEST 17: a public method is still held to the limit
--- config
    location /pkg.Svc/ {
        grpc_guard_public /pkg.Svc/Open;
        grpc_guard_max_message_size 1k;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call
method: /pkg.Svc/Open
sizes: 2000
--- grpc_status: 8
--- grpc_message: message too large
--- upstream_calls: 0



=== TEST 18: gRPC-Web (binary): framed the same way
--- config
    location /pkg.Svc/ {
        grpc_guard_max_message_size 1k;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- request eval
"POST /pkg.Svc/Echo\n" . grpc_frame('x' x 10) . grpc_frame('x' x 2000)
--- more_headers
content-type: application/grpc-web+proto
x-grpc-web: 1
te: trailers
--- error_code: 200
--- response_headers
grpc-status: 8
grpc-message: message too large
content-type: application/grpc-web+proto
--- error_log
grpc guard: request message 2 declares 2000 bytes
grpc guard: refused "/pkg.Svc/Echo" with 8: message_too_large



=== TEST 19: gRPC-Web (binary) under the limit: not refused
--- request eval
"POST /pkg.Svc/Echo\n" . grpc_frame('x' x 10) . grpc_frame('x' x 1000)
--- more_headers
content-type: application/grpc-web
x-grpc-web: 1
te: trailers
--- error_code_like: ^(?!413$)\d+$
--- error_log
grpc guard: request message 2 of 1000 bytes
--- no_error_log
message_too_large



=== TEST 20: gRPC-Web text: base64 decoded as it streams, padded chunks too
--- http_config
    log_format msg '$grpc_guard_reason $grpc_guard_grpc_status $status';
--- config
    location /pkg.Svc/ {
        grpc_guard_max_message_size 1k;
        access_log logs/access.log msg;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- init
# three base64 chunks, each padded: the prefix of the third message is
# cut by the padding of the second; the body is read in pieces cut
# inside base64 quanta, one of them the quantum of that prefix
my $b64 = encode_base64(grpc_frame('x'), '')
    . encode_base64(grpc_frame('y' x 758) . substr(pack('CN', 0, 2000), 0, 3),
                    '')
    . encode_base64(substr(pack('CN', 0, 2000), 3) . ('z' x 2000), '');
$::Raw = main::slow_call('/pkg.Svc/Echo',
    [substr($b64, 0, 5), substr($b64, 5, 1021), substr($b64, 1026, 8),
     substr($b64, 1034)],
    'application/grpc-web-text');
--- access_log eval
qr/^message_too_large 8 413$/
--- error_log
grpc guard: request message 3 declares 2000 bytes
grpc guard: refused "/pkg.Svc/Echo" with 8: message_too_large



=== TEST 21: gRPC-Web text under the limit, cut the same way: not refused
--- init
my $b64 = encode_base64(grpc_frame('x'), '')
    . encode_base64(grpc_frame('y' x 758) . substr(pack('CN', 0, 1000), 0, 3),
                    '')
    . encode_base64(substr(pack('CN', 0, 1000), 3) . ('z' x 1000), '');
$::Raw = main::slow_call('/pkg.Svc/Echo',
    [substr($b64, 0, 5), substr($b64, 5, 1021), substr($b64, 1026, 8),
     substr($b64, 1034)],
    'application/grpc-web-text+proto');
--- access_log eval
qr/^- (?:-|\d+) (?!413)\d+$/
--- error_log
grpc guard: request message 1 of 1 bytes
grpc guard: request message 2 of 758 bytes
grpc guard: request message 3 of 1000 bytes
--- no_error_log
message_too_large
message_malformed



=== TEST 22: gRPC-Web text that is not base64 is refused, not guessed at
--- request eval
"POST /pkg.Svc/Echo\nAAAAAAF4*AAAAAA"
--- more_headers
content-type: application/grpc-web-text
te: trailers
--- error_code: 200
--- response_headers
grpc-status: 3
content-type: application/grpc-web-text+proto
--- error_log
grpc guard: request body is not base64
grpc guard: refused "/pkg.Svc/Echo" with 3: message_malformed



=== TEST 23: other content types are not framed: not looked at
--- config
    location /pkg.Svc/ {
        grpc_guard_max_message_size 1k;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- request eval
# as gRPC, the first message would declare 4096 bytes
"POST /pkg.Svc/Echo\n" . ("\0\0\0\x10\0" x 10)
--- more_headers
content-type: application/octet-stream
--- error_code: 200
--- response_headers_like
grpc-status: (?!8$)\d+
--- error_log
grpc guard: request body not framed
--- no_error_log
request message
message_too_large



=== TEST 24: the same body as gRPC is refused
--- request eval
"POST /pkg.Svc/Echo\n" . ("\0\0\0\x10\0" x 10)
--- more_headers
content-type: application/grpc
te: trailers
--- response_headers
grpc-status: 8
grpc-message: message too large
--- error_log
grpc guard: request message 1 declares 4096 bytes



=== TEST 25: nginx -t: not a size
--- config
    grpc_guard_max_message_size 4q;
--- must_die
--- error_log
invalid message size "4q", it must be a size greater than 0 or "off"



=== TEST 26: nginx -t: 0 is not a limit
--- config
    location /pkg.Svc/ {
        grpc_guard_max_message_size 0;
    }
--- must_die
--- error_log
invalid message size "0"



=== TEST 27: nginx -t: twice at one level
--- config
    grpc_guard_max_message_size 1m;
    grpc_guard_max_message_size 2m;
--- must_die
--- error_log
"grpc_guard_max_message_size" directive is duplicate
