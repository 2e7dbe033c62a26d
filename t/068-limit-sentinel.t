# The limiter's Redis behind Sentinel (grpc_guard_redis sentinel=...
# master=...): a master, a replica and three redis-sentinel processes on
# loopback; the workers ask the sentinels for the master and follow a
# SENTINEL FAILOVER made during traffic: the counts land on the new
# master, no call waits longer than the timeout, and the calls caught in
# the switch get the failure mode (closed: 14), nothing else.

use Test::Nginx::Socket::Grpc 'no_plan';
use FindBin;
use Test::Nginx::Proc qw(write_file);

require "$FindBin::Bin/data/limit.pl";

my $master = start_redis();
my $replica = start_redis(args => ['--replicaof', '127.0.0.1', $master]);

our @sentinels;
for my $i (1 .. 3) {
    my $conf = work_dir() . "/sentinel-$i.conf";
    write_file($conf, <<"_EOC_");
sentinel monitor mymaster 127.0.0.1 $master 2
sentinel down-after-milliseconds mymaster 1000
sentinel failover-timeout mymaster 5000
sentinel parallel-syncs mymaster 1
_EOC_
    push @sentinels, start_redis(binary => 'redis-sentinel', conf => $conf);
}

# one more sentinel, alone, that asks for a password
{
    my $conf = work_dir() . '/sentinel-pw.conf';
    write_file($conf, <<"_EOC_");
sentinel monitor mymaster 127.0.0.1 $master 1
sentinel down-after-milliseconds mymaster 60000
requirepass sent-s3cret
_EOC_
    $ENV{TEST_NGINX_PW_SENTINEL} = start_redis(binary => 'redis-sentinel',
                                              conf => $conf);
}

$ENV{TEST_NGINX_MASTER_PORT} = $master;
$ENV{TEST_NGINX_REPLICA_PORT} = $replica;
$ENV{TEST_NGINX_SENTINELS} = join ',', map { "127.0.0.1:$_" } @sentinels;
$ENV{TEST_NGINX_NO_SENTINELS} = join ',', map { '127.0.0.1:' . free_port() }
                                          1 .. 2;

# bounded wait until f() is true
sub wait_until {
    my ($what, $secs, $f) = @_;
    my $deadline = time + $secs;
    while (time < $deadline) {
        return 1 if $f->();
        sleep 0.1;
    }
    diag("gave up waiting: $what");
    return 0;
}

sub master_port_of_sentinel {
    my $out = redis_cmd($sentinels[0], 'SENTINEL', 'get-master-addr-by-name',
                        'mymaster');
    my @l = split /\n/, $out;
    return $l[1] // '';
}

# the calls counted under a key, over every window
sub counted {
    my ($port, $key) = @_;
    my $out = redis_cmd($port, 'HVALS', "grpc_guard:{limit}:s:60s:$key");
    my $n = 0;
    $n += $_ for grep { /^\d+$/ } split /\n/, $out;
    return $n;
}

sub phase_codes {
    my ($phase, $n) = @_;
    return join ' ', map { $_->{code} } lcalls(map {
        +{ metadata => [['x-phase', $phase]] } } 1 .. $n);
}

no_shuffle();
no_root_location();
run_tests();

__DATA__

=== TEST 1: sentinel= with no address
--- http_config
    grpc_guard_redis sentinel= master=mymaster;
--- must_die
--- error_log eval
qr/\[emerg\] .*"sentinel=" has no address in \S+nginx\.conf:\d+/



=== TEST 2: an empty address in the list
--- http_config
    grpc_guard_redis sentinel=127.0.0.1:1,,127.0.0.1:2 master=mymaster;
--- must_die
--- error_log
empty address in "sentinel=127.0.0.1:1,,127.0.0.1:2"



=== TEST 3: sentinel= without master=
--- http_config
    grpc_guard_redis sentinel=$TEST_NGINX_SENTINELS;
--- must_die
--- error_log eval
qr/\[emerg\] .*"grpc_guard_redis" directive has "sentinel=" without "master=" in \S+nginx\.conf:\d+/



=== TEST 4: master= without sentinel=
--- http_config
    grpc_guard_redis 127.0.0.1:$TEST_NGINX_MASTER_PORT master=mymaster;
--- must_die
--- error_log
has "master=" without "sentinel="



=== TEST 5: an address and sentinel= together
--- http_config
    grpc_guard_redis 127.0.0.1:$TEST_NGINX_MASTER_PORT
                     sentinel=$TEST_NGINX_SENTINELS master=mymaster;
--- must_die
--- error_log
takes either an address or "sentinel="



=== TEST 6: no sentinel answers: failure closed gives 14 at once, the error log says why
--- http_config
    grpc_guard_redis sentinel=$TEST_NGINX_NO_SENTINELS master=mymaster
                     timeout=500ms;
--- config
    location / {
        grpc_guard_limit rate=100r/s key=$remote_addr name=s;
        grpc_guard_limit_failure closed;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- init
sleep 0.3;
my @r = lcalls(({}) x 2);
is(join(' ', map { $_->{code} } @r), '14 14', 'refused with 14');
cmp_ok($_->{elapsed}, '<', 2, "no wait ($_->{elapsed} s)") for @r;
--- error_log eval
qr/\[error\] .*grpc guard: no sentinel told where master "mymaster" is/



=== TEST 7: the sentinels do not know the master's name
--- http_config
    grpc_guard_redis sentinel=$TEST_NGINX_SENTINELS master=nosuchmaster
                     timeout=500ms;
--- config
    location / {
        grpc_guard_limit rate=100r/s key=$remote_addr name=s;
        grpc_guard_limit_failure closed;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- init
sleep 0.3;
is(join(' ', lcodes(2)), '14 14', 'refused with 14');
--- error_log eval
[qr/\[error\] .*sentinel does not know master "nosuchmaster" while talking to redis, grpc guard sentinel: 127\.0\.0\.1:\d+/,
 qr/\[error\] .*grpc guard: no sentinel told where master "nosuchmaster" is/]



=== TEST 8: sentinel_password= authenticates to the sentinels; never logged
--- http_config
    grpc_guard_redis sentinel=127.0.0.1:$TEST_NGINX_PW_SENTINEL master=mymaster
                     sentinel_password=sent-s3cret timeout=500ms;
--- config
    location / {
        grpc_guard_limit rate=100000r/m key=$http_x_phase name=s;
        grpc_guard_limit_failure closed;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- init
sleep 0.3;
is(phase_codes('pw', 3), '0 0 0', 'calls pass through Redis');
is(counted($ENV{TEST_NGINX_MASTER_PORT}, 'pw'), 3, 'counted on the master');
--- no_error_log
sent-s3cret



=== TEST 9: a wrong sentinel_password=: the sentinel refuses, failure closed gives 14, the log says why
--- http_config
    grpc_guard_redis sentinel=127.0.0.1:$TEST_NGINX_PW_SENTINEL master=mymaster
                     sentinel_password=wrong-pw timeout=500ms;
--- config
    location / {
        grpc_guard_limit rate=100000r/m key=$http_x_phase name=s;
        grpc_guard_limit_failure closed;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- init
sleep 0.3;
is(phase_codes('wrong', 2), '14 14', 'refused with 14');
--- error_log eval
[qr/\[error\] .*redis refused AUTH: WRONGPASS/,
 qr/\[error\] .*grpc guard: no sentinel told where master "mymaster" is/]
--- no_error_log
wrong-pw



=== TEST 10: SENTINEL FAILOVER during traffic: the limiter follows it, counts land on the new master
--- http_config
    grpc_guard_redis sentinel=$TEST_NGINX_SENTINELS master=mymaster
                     timeout=500ms connect_timeout=500ms;
--- config
    location /test.Load/ {
        grpc_guard_limit rate=100000r/m key=$remote_addr name=load;
        grpc_guard_limit_failure closed;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }

    location / {
        grpc_guard_limit rate=100000r/m key=$http_x_phase name=s;
        grpc_guard_limit_failure closed;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- init
# the sentinels know each other and the replica
ok(wait_until('sentinel quorum', 20, sub {
       redis_cmd($sentinels[0], 'SENTINEL', 'ckquorum', 'mymaster')
           =~ /^OK/
       && redis_cmd($sentinels[0], 'SENTINEL', 'replicas', 'mymaster')
           =~ /\b$ENV{TEST_NGINX_REPLICA_PORT}\b/
       && redis_cmd($ENV{TEST_NGINX_REPLICA_PORT}, 'INFO', 'replication')
           =~ /master_link_status:up/ }),
   'sentinels ready');
is(master_port_of_sentinel(), $ENV{TEST_NGINX_MASTER_PORT},
   'the master is the first server');

is(phase_codes('before', 5), '0 0 0 0 0', 'calls pass through Redis');
is(counted($ENV{TEST_NGINX_MASTER_PORT}, 'before'), 5,
   'counted on the master');

my $load = start_load(rate => 20, duration => 8,
                      method => '/test.Load/Call');
sleep 1;
like(redis_cmd($sentinels[0], 'SENTINEL', 'FAILOVER', 'mymaster'), qr/OK/,
     'SENTINEL FAILOVER');
ok(wait_until('the failover', 20, sub {
       master_port_of_sentinel() eq $ENV{TEST_NGINX_REPLICA_PORT} }),
   'the sentinels made the replica the master');

# about a second after the election; the old master may still take writes
sleep 1;
is(phase_codes('after', 5), '0 0 0 0 0', 'calls pass through Redis');
is(counted($ENV{TEST_NGINX_REPLICA_PORT}, 'after'), 5,
   'counted on the new master');
like(redis_cmd($ENV{TEST_NGINX_REPLICA_PORT}, 'ROLE'), qr/^master/,
     'which is a master');

my $res = finish_load($load);
ok(!$res->{error}, 'load ran') or diag($res->{error});
my %codes = %{ $res->{codes} || {} };
diag('load: ' . join(', ', map { "$_: $codes{$_}" } sort keys %codes)
     . ", slowest $res->{max_elapsed} s");
is(join(' ', grep { $_ != 0 && $_ != 14 } keys %codes), '',
   'every call of the load passed or got 14 (failure closed)');
ok(($codes{0} // 0) > 100, 'most calls of the load passed');
is($res->{errors}, 0, 'no call failed otherwise');
# timeout=500ms: far below what a call waiting on a switch would take
cmp_ok($res->{max_elapsed}, '<', 3, 'no call of the load waited long');
--- error_log eval
[qr/\[notice\] .*grpc guard: redis master "mymaster" is 127\.0\.0\.1:\d+/,
 qr/\[notice\] .*sentinel: \+switch-master mymaster 127\.0\.0\.1 \d+ 127\.0\.0\.1 \d+/,
 qr/\[notice\] .*grpc guard: redis master "mymaster" moved from 127\.0\.0\.1:\d+ to 127\.0\.0\.1:\d+/]
--- timeout: 60
