# When Redis cannot answer: grpc_guard_limit_failure open, closed and local;
# no call waits longer than the timeout, with Redis stopped or hung
# (SIGSTOP); limiting resumes by itself when Redis comes back; a call that
# goes away while it waits for Redis is detached safely.

use Test::Nginx::Socket::Grpc 'no_plan';
use FindBin;

require "$FindBin::Bin/data/limit.pl";

$ENV{TEST_NGINX_REDIS_PORT} = start_redis();

# what nginx added to every call, from the access log ("lim" format:
# $request_time $upstream_response_time ...): the time of the request
# without the upstream's, i.e. mostly the wait for Redis
sub check_waits {
    my ($what, $max) = @_;
    sleep 0.1;
    my @t;
    for (log_lines('lim.log')) {
        my ($all, $up) = split ' ';
        $up = 0 unless $up =~ /^[\d.]+$/;
        push @t, sprintf('%.3f', $all - $up);
    }
    ok(@t > 0, "$what: calls logged");
    my @long = grep { $_ > $max } @t;
    is(scalar @long, 0, "$what: no call took more than ${max}s (@t)");
    return @t;
}

# calls until one is answered through Redis again (at most 10 s)
sub wait_for_redis {
    my $deadline = time + 10;
    my $before = redis_calls('evalsha');
    while (time < $deadline) {
        lcall(method => '/test.Probe/Call');
        return 1 if redis_calls('evalsha') > $before;
        sleep 0.2;
    }
    return 0;
}

# a "Redis" that answers every command with the header of an array of
# half a billion elements, nothing after it (bounded: 64 connections, 60 s)
$ENV{TEST_NGINX_HUGE_PORT} = free_port();
our $Huge = fork() // die "fork: $!";
if ($Huge == 0) {
    require IO::Socket::INET;
    my $l = IO::Socket::INET->new(LocalAddr => '127.0.0.1',
                                  LocalPort => $ENV{TEST_NGINX_HUGE_PORT},
                                  Listen => 16, ReuseAddr => 1)
        or exit 1;
    my $end = time + 60;
    $SIG{ALRM} = sub { exit 0 };
    alarm 60;
    for (1 .. 64) {
        my $c = $l->accept or last;
        my $buf;
        $c->sysread($buf, 65536);
        $c->syswrite("*499999999\r\n");
        select(undef, undef, undef, 0.2);
        close $c;
        last if time > $end;
    }
    exit 0;
}

add_cleanup_handler(sub {
    my $pid = redis_pid();
    kill 'CONT', $pid if $pid;
    if ($::Huge) {
        kill 'TERM', $::Huge;
        waitpid($::Huge, 0);
        $::Huge = 0;
    }
});

no_shuffle();
no_root_location();
run_tests();

__DATA__

=== TEST 1: Redis stopped, failure open: calls pass at once, the error log says so
--- http_config
    grpc_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT timeout=100ms;
    log_format lim '$request_time $upstream_response_time '
                   '$grpc_guard_grpc_status';
--- config
    location / {
        grpc_guard_limit rate=1r/h key=$remote_addr name=f1;
        access_log logs/lim.log lim;
        grpc_guard_audit_log logs/audit.log;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- init
stop_redis(redis_port());
my @codes = lcodes(4);
is("@codes", "0 0 0 0", 'every call passes');
check_waits('redis stopped, open', 0.05);
my @audit = log_lines('audit.log');
is(scalar(@audit), 4, 'an audit record for each call');
is(scalar(grep { /"remaining"/ } @audit), 0,
   'no "remaining" in them: Redis could not say');
--- error_log eval
[qr/\[error\] .*grpc guard: redis 127\.0\.0\.1:\d+ is unavailable/,
 qr/\[warn\] .*grpc guard: redis did not answer, 1 calls passed without their limits/]



=== TEST 2: Redis stopped, failure closed: 14 service unavailable
--- http_config
    grpc_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT timeout=100ms;
    log_format lim '$request_time $upstream_response_time '
                   '$grpc_guard_grpc_status $grpc_guard_reason';
--- config
    location / {
        grpc_guard_limit rate=100r/s key=$remote_addr name=f2;
        grpc_guard_limit_failure closed;
        access_log logs/lim.log lim;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- init
my $calls0 = backend_calls();
my @r = lcalls(({}) x 3);
is(join(' ', map { $_->{code} } @r), "14 14 14", 'every call gets 14');
is($r[0]{details}, 'service unavailable', 'grpc-message');
ok(!defined $r[0]{md}{'retry-after'}, 'no retry-after');
is(backend_calls() - $calls0, 0, 'no call reached the backend');
check_waits('redis stopped, closed', 0.05);
like((log_lines('lim.log'))[0], qr/ 14 redis_unavailable$/, 'the reason');



=== TEST 3: Redis stopped, failure local: the same rate, counted in this instance
--- http_config
    grpc_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT timeout=100ms;
--- config
    location / {
        grpc_guard_limit rate=2r/h key=$remote_addr name=f3;
        grpc_guard_limit_failure local;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- init
my @r = lcalls(({}) x 4);
is(join(' ', map { $_->{code} } @r[0, 1]), "0 0", 'two calls pass');
check_refusal($r[2], 'f3', 2, 3600, '3rd call, local window');
check_refusal($r[3], 'f3', 2, 3600, '4th call, local window');
--- error_log
calls counted in local windows



=== TEST 4: Redis started again: limits come from Redis again, without a reload
--- init
start_redis(port => redis_port());
ok(wait_for_redis(), 'a call was answered through Redis');
# Redis counted only that call of f3 (the others were local): one more
# passes there, then the limit of 2 applies again
my @codes = lcodes(2);
is("@codes", "0 8", 'Redis counts again');
--- error_log eval
qr/\[notice\] .*grpc guard: redis 127\.0\.0\.1:\d+ is available again/
--- no_shutdown_error_log
open socket



=== TEST 5: Redis hung (SIGSTOP), failure open: no call waits longer than the timeout
--- http_config
    grpc_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT timeout=100ms
                     connect_timeout=200ms;
    log_format lim '$request_time $upstream_response_time '
                   '$grpc_guard_grpc_status';
--- config
    location / {
        grpc_guard_limit rate=100r/s key=$remote_addr name=f5;
        access_log logs/lim.log lim;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- init
is(lcall()->{code}, 0, 'a call through Redis');
kill 'STOP', redis_pid();
my @codes = lcodes(8);
is("@codes", "0 0 0 0 0 0 0 0", 'every call passes');
my @t = check_waits('redis hung, open', 0.2);
my @waited = grep { $_ >= 0.09 } @t;
cmp_ok(scalar @waited, '<=', 3,
       "after 3 timeouts the breaker answers at once (@t)");
kill 'CONT', redis_pid();
ok(wait_for_redis(), 'Redis answers again after SIGCONT');
--- error_log eval
[qr/redis did not answer 3 commands in time, closing the connection/,
 qr/grpc guard: redis 127\.0\.0\.1:\d+ is available again/]
--- no_shutdown_error_log
open socket



=== TEST 6: Redis hung, failure closed: 14 after the timeout
--- http_config
    grpc_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT timeout=100ms
                     connect_timeout=200ms;
    log_format lim '$request_time $upstream_response_time '
                   '$grpc_guard_grpc_status';
--- config
    location / {
        grpc_guard_limit rate=100r/s key=$remote_addr name=f6;
        grpc_guard_limit_failure closed;
        access_log logs/lim.log lim;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- init
is(lcall()->{code}, 0, 'a call through Redis');
kill 'STOP', redis_pid();
my @codes = lcodes(2);
is("@codes", "14 14", 'calls get 14');
my @t = check_waits('redis hung, closed', 0.2);
cmp_ok($t[1], '>=', 0.09, 'the call waited for the timeout');
kill 'CONT', redis_pid();
ok(wait_for_redis(), 'Redis answers again after SIGCONT');
--- no_shutdown_error_log
open socket



=== TEST 7: a call cancelled while it waits for Redis is detached; the late reply is dropped
--- http_config
    grpc_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT timeout=5s;
    log_format lim '$request_time $status $grpc_guard_grpc_status';
--- config
    location / {
        grpc_guard_limit rate=100r/s key=$remote_addr name=f7;
        grpc_guard_limit_failure closed;
        access_log logs/lim.log lim;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- init
my $calls0 = backend_calls();
is(lcall()->{code}, 0, 'a call through Redis');
kill 'STOP', redis_pid();
my $r = lcall(cancel_after => 0.3);
is($r->{code}, 1, 'the client cancelled the call');
sleep 0.2;
like((log_lines('lim.log'))[1] // '', qr/^0\.[2-9]\d* 499 /,
     'nginx ended the request when the client went away (499)');
kill 'CONT', redis_pid();
my @codes = lcodes(2);
is("@codes", "0 0", 'the next calls get their own replies');
is(backend_calls() - $calls0, 3, 'the cancelled call never went upstream');
--- error_log
grpc guard limit: client gone while waiting
--- no_error_log
[alert]
[crit]
--- no_shutdown_error_log
open socket



=== TEST 8: nginx quits while a call waits for Redis: no socket or timer is left behind
--- http_config
    grpc_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT timeout=1s;
--- config
    location / {
        grpc_guard_limit rate=100r/s key=$remote_addr name=f8;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- init
is(lcall()->{code}, 0, 'a call through Redis');
kill 'STOP', redis_pid();
my $out = work_dir() . '/f8.out';
my $spec = '{"method": "/test.Limit/Call", "host": "127.0.0.1", "port": '
           . $ENV{TEST_NGINX_SERVER_PORT} . ', "overall_timeout": 10}';
my $client = Test::Nginx::Proc::spawn(['sh', '-c',
    "echo '$spec' | $Test::Nginx::Grpc::Python"
    . " $Test::Nginx::Grpc::LibDir/grpc_client.py"],
    stdout => $out, stderr => "$out.err");
# wait until the call is parked: its command is the second one sent
my $deadline = time + 10;
while (time < $deadline) {
    my $log = Test::Nginx::Proc::read_file(server_root() . '/logs/error.log');
    last if (() = $log =~ /limits sent to redis/g) >= 2;
    sleep 0.05;
}
my $master = Test::Nginx::Proc::read_file(server_root() . '/logs/nginx.pid');
chomp $master;
kill 'QUIT', $master;
$deadline = time + 10;
sleep 0.05 while kill(0, $master) && time < $deadline;
ok(!kill(0, $master), 'nginx exited');
waitpid($client, 0);
like(Test::Nginx::Proc::read_file($out) // '', qr/"code": 0/,
     'the waiting call passed after the timeout (failure open)');
kill 'CONT', redis_pid();
--- error_log eval
qr/\[notice\] .*: exit$/
--- no_error_log
open socket
[alert]



=== TEST 9: a reply announcing half a billion elements: refused, nothing allocated
--- http_config
    grpc_guard_redis 127.0.0.1:$TEST_NGINX_HUGE_PORT timeout=500ms;
--- config
    location / {
        grpc_guard_limit rate=10r/s key=$remote_addr name=huge;
        grpc_guard_limit_failure closed;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call
method: /test.Limit/Call
--- grpc_status: 14
--- upstream_calls: 0
--- error_log
redis sent an invalid reply
--- no_error_log
[alert]
[emerg]
