# grpc_guard_audit_log sinks: reopen, buffer= and flush=, flush at exit,
# write failures, syslog, if=, several logs, configuration errors.

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::Nginx::Socket::Grpc 'no_plan';
use Test::Nginx::Audit;
use IO::Socket::INET;
use IO::Select;

# a syslog server: datagrams to this socket
our $Syslog = IO::Socket::INET->new(LocalAddr => '127.0.0.1',
                                    LocalPort => 0, Proto => 'udp')
    or die "udp: $!";
$ENV{TEST_NGINX_SYSLOG_PORT} = $Syslog->sockport;

sub syslog_messages {
    my @m;
    my $sel = IO::Select->new($Syslog);
    my $wait = 2;
    while ($sel->can_read($wait)) {
        my $d;
        $Syslog->recv($d, 65536);
        push @m, $d;
        $wait = 0.2;
    }
    return @m;
}

sub master_pid {
    my $p = Test::Nginx::Proc::read_file($Test::Nginx::Socket::PidFile);
    return $p =~ /(\d+)/ ? $1 : undef;
}

# "nginx -s reopen" after moving the audit file away
sub rotate {
    my $log = audit_path();
    rename $log, "$log.1" or die "rename: $!";
    kill 'USR1', master_pid() or die "kill: $!";
    for (1 .. 100) { last if -e $log; sleep 0.02; }
    sleep 0.3;          # the worker reopens after the master
}

no_shuffle();
no_root_location();
run_audit_tests();

__DATA__

=== TEST 1: reopen: a first call before the file is moved away
--- config
    grpc_guard_audit_log logs/audit.log;
    location / {
        grpc_guard on;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call
method: /test.First/Unary
--- audit eval
[base_record(method => '/test.First/Unary', decision => 'allow',
             grpc_status => 0, grpc_status_source => 'trailer',
             http_status => 200, upstream => qr/./)]



=== TEST 2: reopen: after "nginx -s reopen" records go to the new file
--- audit_pre eval
\&main::rotate
--- grpc_call
method: /test.Second/Unary
--- audit eval
[base_record(method => '/test.Second/Unary', decision => 'allow',
             grpc_status => 0, grpc_status_source => 'trailer',
             http_status => 200, upstream => qr/./, seq => 2)]
--- audit_check eval
sub {
    my ($old) = audit_records(audit_path() . '.1');
    is(join(' ', map { $_->{method} } @$old), '/test.First/Unary',
       'the moved file keeps the first record only');
}



=== TEST 3: buffer= and flush=: nothing at once, the record after flush
--- config
    grpc_guard_audit_log logs/audit.log buffer=64k flush=1s;
    location / {
        grpc_guard on;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call eval
["method: /test.Echo/Unary", "method: /test.Echo/Unary"]
--- audit_now: 0
--- audit_wait: 1.5
--- audit_count: 2



=== TEST 4: buffer= without flush=: written when the worker exits
--- config
    grpc_guard_audit_log logs/audit.log buffer=64k;
    location / {
        grpc_guard on;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call
method: /test.Echo/Unary
--- audit_now: 0
--- audit_wait: 0.5
--- audit_stop
--- audit eval
[base_record(method => '/test.Echo/Unary', decision => 'allow',
             grpc_status => 0, grpc_status_source => 'trailer',
             http_status => 200, upstream => qr/./)]



=== TEST 5: a full buffer is written at once, whole records only
--- config
    grpc_guard_audit_log logs/audit.log buffer=4k;
    location / {
        grpc_guard on;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call eval
[("method: /test.Echo/Unary") x 12]
--- audit_check eval
sub {
    my ($r, $raw) = @_;
    ok(@$r >= 4 && @$r < 12, "some records written before exit: "
       . scalar @$r);
    like($raw, qr/\A(?:\{[^\n]*\}\n)*\z/, 'whole lines only');
    stop_nginx();
    my ($all) = audit_records(audit_path());
    is(join(',', map { $_->{seq} } @$all), join(',', 1 .. 12),
       'the rest at exit, in order');
}



=== TEST 6: buffered records go to the old file on reopen
--- config
    grpc_guard_audit_log logs/audit.log buffer=64k flush=1m;
    location / {
        grpc_guard on;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call
method: /test.First/Unary
--- audit_now: 0



=== TEST 7: ... and the new ones to the new file
--- audit_pre eval
\&main::rotate
--- grpc_call
method: /test.Second/Unary
--- audit_now: 0
--- audit_stop
--- audit_count: 1
--- audit_check eval
sub {
    my ($r) = @_;
    is($r->[0]{method}, '/test.Second/Unary', 'new file: second call');
    my ($old) = audit_records(audit_path() . '.1');
    is(join(' ', map { $_->{method} } @$old), '/test.First/Unary',
       'old file: the buffered first call, flushed on reopen');
}



=== TEST 8: a full disk: calls go on, the loss is reported once
--- config
    grpc_guard_audit_log /dev/full;
    location / {
        grpc_guard on;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call eval
[("method: /test.Echo/Unary") x 4]
--- grpc_status: 0
--- upstream_calls: 4
--- grep_error_log eval
qr/grpc guard: audit log "[^"]*": \d+ record\(s\) lost, \d+ since the worker started \(28: [^)]*\)/
--- grep_error_log_out eval
qr{\Agrpc guard: audit log "/dev/full": 1 record\(s\) lost, 1 since the worker started \(28: No space left on device\)\n\z}
--- error_log
[alert]



=== TEST 9: a full disk, buffered: calls go on, reported once
--- config
    grpc_guard_audit_log /dev/full buffer=8k flush=100ms;
    location / {
        grpc_guard on;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call eval
[("method: /test.Echo/Unary") x 4]
--- grpc_status: 0
--- wait: 0.3
--- grep_error_log eval
qr/grpc guard: audit log "[^"]*": \d+ record\(s\) lost/
--- grep_error_log_out eval
qr{\Agrpc guard: audit log "/dev/full": \d+ record\(s\) lost\n\z}
--- error_log
[alert]



=== TEST 10: unreported losses are reported when the worker exits
--- config
    grpc_guard_audit_log /dev/full;
    location / {
        grpc_guard on;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call eval
[("method: /test.Echo/Unary") x 3]
--- grpc_status: 0
--- error_log
[alert]
--- shutdown_error_log
record(s) lost
--- audit_stop
--- audit_check eval
sub {
    my $log = Test::Nginx::Proc::read_file(
                  error_log_file());
    my @l = $log =~ /(audit log "\/dev\/full": \d+ record\(s\) lost, \d+)/g;
    is("@l", 'audit log "/dev/full": 1 record(s) lost, 1 '
             . 'audit log "/dev/full": 2 record(s) lost, 3',
       'the first loss at once, the other two at exit');
}



=== TEST 11: syslog
--- config
    grpc_guard_audit_log syslog:server=127.0.0.1:$TEST_NGINX_SYSLOG_PORT,tag=grpc_guard;
    location / {
        grpc_guard on;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call
method: /test.Echo/Unary
--- audit_check eval
sub {
    my @m = main::syslog_messages();
    is(scalar @m, 1, 'one syslog message');
    like($m[0] // '', qr/^<190>\w{3} [ \d]\d \d\d:\d\d:\d\d \S+ grpc_guard: \{/,
         'syslog header: local7.info, tag');
    my ($json) = ($m[0] // '') =~ /grpc_guard: (\{.*\})\z/s;
    my $d = eval { JSON::PP->new->utf8->decode($json // '') };
    is($d && $d->{method}, '/test.Echo/Unary', 'the record, as JSON');
    is($d && $d->{grpc_status}, 0, 'grpc_status');
}



=== TEST 12: a file and syslog: each gets the record, each its own seq
--- config
    grpc_guard_audit_log logs/audit.log;
    grpc_guard_audit_log syslog:server=127.0.0.1:$TEST_NGINX_SYSLOG_PORT;
    location / {
        grpc_guard on;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call eval
["method: /test.Echo/Unary", "method: /test.Echo/Unary"]
--- audit_count: 2
--- audit_check eval
sub {
    my ($r) = @_;
    my @m = main::syslog_messages();
    is(scalar @m, 2, 'two syslog messages');
    my @s = map { /"seq":(\d+)/ ? $1 : '' } @m;
    is("@s", '1 2', 'syslog seq');
    is(join(' ', map { $_->{seq} } @$r), '1 2', 'file seq');
    my ($id) = ($m[1] // '') =~ /"request_id":"(\w+)"/;
    is($id, $r->[1]{request_id}, 'the same record');
}



=== TEST 13: if=: "0" and "" skip the record
--- http_config
    map $http_x_audit $audit {
        default  1;
        no       0;
        empty    "";
    }
--- config
    grpc_guard_audit_log logs/audit.log if=$audit;
    location / {
        grpc_guard on;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call eval
["method: /test.Skip/Unary\nmetadata: x-audit: no",
 "method: /test.Keep/Unary",
 "method: /test.Skip/Unary\nmetadata: x-audit: empty"]
--- audit_count: 1
--- audit_check eval
sub { is($_[0][0]{method}, '/test.Keep/Unary', 'the kept call') }



=== TEST 14: one file in two locations: one sequence
--- config
    grpc_guard_audit_log logs/audit.log buffer=8k flush=100ms;
    location /test.A/ {
        grpc_guard on;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
    location /test.B/ {
        grpc_guard on;
        grpc_guard_audit_log logs/audit.log buffer=8k flush=100ms;
        grpc_guard_audit_log logs/b.log;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call eval
["method: /test.A/Unary", "method: /test.B/Unary",
 "method: /test.A/Unary"]
--- audit_wait: 0.3
--- audit_count: 3
--- audit_check eval
sub {
    my ($r) = @_;
    is(join(' ', map { "$_->{seq}:$_->{method}" } @$r),
       '1:/test.A/Unary 2:/test.B/Unary 3:/test.A/Unary', 'one sequence');
    my ($b) = audit_records(audit_path('logs/b.log'));
    is(join(' ', map { "$_->{seq}:$_->{method}" } @$b), '1:/test.B/Unary',
       'the other file');
}



=== TEST 15: flush= needs buffer=
--- config
    grpc_guard_audit_log logs/audit.log flush=1s;
--- must_die
--- error_log
no buffer is defined for grpc_guard_audit_log "logs/audit.log"



=== TEST 16: syslog cannot be buffered
--- config
    grpc_guard_audit_log syslog:server=127.0.0.1:1 buffer=4k;
--- must_die
--- error_log
logs to syslog cannot be buffered



=== TEST 17: one file, other buffer settings
--- config
    grpc_guard_audit_log logs/audit.log buffer=4k;
    location / {
        grpc_guard_audit_log logs/audit.log;
    }
--- must_die
--- error_log eval
qr/grpc_guard_audit_log "\S+\/logs\/audit.log" already defined with conflicting parameters/



=== TEST 18: "off" and a log at one level
--- config
    grpc_guard_audit_log off;
    grpc_guard_audit_log logs/audit.log;
--- must_die
--- error_log
"grpc_guard_audit_log off" was specified at this level



=== TEST 19: unknown parameter
--- config
    grpc_guard_audit_log logs/audit.log gzip;
--- must_die
--- error_log
invalid parameter "gzip"



=== TEST 20: a file that cannot be opened stops nginx at start, as access_log
--- config
    grpc_guard_audit_log /nonexistent/dir/audit.log;
--- must_die
--- error_log
open() "/nonexistent/dir/audit.log" failed



=== TEST 21: audit and access_log on one file with its own buffer
--- config
    grpc_guard_audit_log logs/mixed.log buffer=4k flush=100ms;
    access_log logs/mixed.log combined buffer=4k flush=100ms;
    location / {
        grpc_guard on;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call
method: /test.Echo/Unary
--- audit_file: logs/other.log
--- audit_wait: 0.5
--- audit_check eval
sub {
    my $d = Test::Nginx::Proc::read_file(audit_path('logs/mixed.log'));
    my @l = split /\n/, $d // '';
    is(scalar(grep { /^\{"ts":/ } @l), 1, 'the audit record');
    is(scalar(grep { /^127\.0\.0\.1 - - / } @l), 1, 'the access_log line');
}



=== TEST 22: access_log with its buffer first, then the audit log
--- config
    access_log logs/mixed.log combined buffer=4k flush=100ms;
    grpc_guard_audit_log logs/mixed.log buffer=4k flush=100ms;
    location / {
        grpc_guard on;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call
method: /test.Echo/Unary
--- audit_file: logs/other.log
--- audit_wait: 0.5
--- audit_check eval
sub {
    my $d = Test::Nginx::Proc::read_file(audit_path('logs/mixed.log'));
    my @l = split /\n/, $d // '';
    is(scalar(grep { /^\{"ts":/ } @l), 1, 'the audit record');
    is(scalar(grep { /^127\.0\.0\.1 - - / } @l), 1, 'the access_log line');
}
