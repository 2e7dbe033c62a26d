# Two nginx instances on one Redis share one limit; Redis commands per RPC
# (INFO commandstats): one EVALSHA per call, none while a key is blocked;
# the blocked-until cache survives a reload; "nginx -s reload" during
# traffic loses no call and leaves no socket behind.

use Test::Nginx::Socket::Grpc 'no_plan';
use FindBin;

require "$FindBin::Bin/data/limit.pl";

$ENV{TEST_NGINX_REDIS_PORT} = start_redis();

# the commands nginx itself sent, from INFO commandstats: everything but
# what the script calls inside Redis and what the test asks
sub client_commands {
    my $out = redis_cmd(redis_port(), 'INFO', 'commandstats');
    my %skip = map { $_ => 1 } qw(time hmget hincrby hdel pexpire info
                                  config);
    my %c;
    while ($out =~ /^cmdstat_(\w+)(\|\w+)?:calls=(\d+)/mg) {
        $c{$1} = $3 unless $skip{$1};
    }
    return \%c;
}

sub master_pid {
    my $p = Test::Nginx::Proc::read_file(server_root() . '/logs/nginx.pid');
    return $p =~ /(\d+)/ ? $1 : undef;
}

# HUP, then wait until the old worker has exited
sub reload_nginx {
    my $log = server_root() . '/logs/error.log';
    my $n = () = (Test::Nginx::Proc::read_file($log) // '')
                 =~ /worker process \d+ exited with code/g;
    kill 'HUP', master_pid();
    my $deadline = time + 15;
    while (time < $deadline) {
        my $m = () = (Test::Nginx::Proc::read_file($log) // '')
                     =~ /worker process \d+ exited with code/g;
        return 1 if $m > $n;
        sleep 0.05;
    }
    return 0;
}

no_shuffle();
no_root_location();
run_tests();

__DATA__

=== TEST 1: two nginx instances on one Redis share one limit
--- http_config
    grpc_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT timeout=2s;
--- config
    location / {
        grpc_guard_limit rate=4r/h key=$remote_addr name=s1;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- init
my $second = start_extra_nginx('second', <<"_EOC_");
    grpc_guard_redis 127.0.0.1:$ENV{TEST_NGINX_REDIS_PORT} timeout=2s;
    server {
        listen 127.0.0.1:$ENV{TEST_NGINX_PORT2} $ENV{TEST_NGINX_LISTEN_HTTP2};
        $ENV{TEST_NGINX_HTTP2}
        location / {
            grpc_guard_limit rate=4r/h key=\$remote_addr name=s1;
            grpc_pass grpc://127.0.0.1:$ENV{TEST_NGINX_GRPC_PORT};
        }
    }
_EOC_
my $p1 = $ENV{TEST_NGINX_SERVER_PORT};
my $p2 = $ENV{TEST_NGINX_PORT2};
my @r = lcalls({ port => $p1 }, { port => $p2 }, { port => $p1 },
               { port => $p2 }, { port => $p2 }, { port => $p1 });
is(join(' ', map { $_->{code} } @r[0 .. 3]), '0 0 0 0',
   'four calls pass, two on each instance');
check_refusal($r[4], 's1', 4, 3600, 'the 5th call, on the second instance');
check_refusal($r[5], 's1', 4, 3600, 'the 6th call, on the first instance');
ok(stop_extra_nginx($second), 'the second nginx stopped');
my $log = Test::Nginx::Proc::read_file("$second/logs/error.log");
unlike($log, qr/\[(alert|crit|emerg)\]|open socket/,
       'the second nginx logged no alert');
--- no_error_log
[error]



=== TEST 2: one EVALSHA per call, and none while the key is blocked
--- http_config
    grpc_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT timeout=2s;
--- config
    location / {
        grpc_guard_limit rate=1000r/h key=$remote_addr name=c2a;
        grpc_guard_limit rate=1000r/h key=$remote_addr per=method name=c2b;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
    location /blocked. {
        grpc_guard_limit rate=2r/h key=$remote_addr name=c2c;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- init
is(lcall()->{code}, 0, 'the connection to Redis is up');
redis_cmd(redis_port(), 'CONFIG', 'RESETSTAT');
my @codes = lcodes(10);
is("@codes", '0 0 0 0 0 0 0 0 0 0', 'ten calls with two limits each');
is_deeply(client_commands(), { evalsha => 10 },
          'one Redis command per call: EVALSHA, for both limits');
@codes = lcodes(3, method => '/blocked.Svc/Call');
is("@codes", '0 0 8', 'the 3rd call is over the limit');
redis_cmd(redis_port(), 'CONFIG', 'RESETSTAT');
@codes = lcodes(5, method => '/blocked.Svc/Call');
is("@codes", '8 8 8 8 8', 'further calls are refused');
is_deeply(client_commands(), {},
          'by the blocked-until cache: no Redis command');
--- no_error_log
[error]



=== TEST 3: the blocked-until cache survives a reload
--- http_config
    grpc_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT timeout=2s;
--- config
    location / {
        grpc_guard_limit rate=1r/h key=$remote_addr name=c3;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- init
my @codes = lcodes(2);
is("@codes", '0 8', 'the 2nd call is refused by Redis');
ok(reload_nginx(), 'reloaded');
redis_cmd(redis_port(), 'CONFIG', 'RESETSTAT');
my $r = lcall();
check_refusal($r, 'c3', 1, 3600, 'after the reload');
is_deeply(client_commands(), {}, 'answered from the cache kept in the zone');
--- no_error_log
[alert]
[crit]
open socket



=== TEST 4: nginx -s reload during traffic: no call lost, the limit still holds
--- http_config
    grpc_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT timeout=1s keepalive=3;
--- config
    location / {
        grpc_guard_limit rate=20r/s key=$remote_addr name=c4;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- init
my $calls0 = backend_calls();
my $load = start_load(rate => 40, duration => 4);
sleep 1.5;
ok(reload_nginx(), 'reloaded during the load');
my $s = finish_load($load);
is($s->{errors}, 0, 'no call failed') or diag explain $s;
my $ok = $s->{codes}{0} // 0;
my $limited = $s->{codes}{8} // 0;
is($ok + $limited, $s->{sent}, "every call got 0 or 8 ($ok + $limited)");
my $admitted = backend_calls() - $calls0;
is($admitted, $ok, 'the calls that got 0 reached the backend');
ok($admitted >= 60 && $admitted <= 110,
   "about 20 calls a second were admitted ($admitted of $s->{sent})");
--- no_error_log
[alert]
[crit]
open socket
