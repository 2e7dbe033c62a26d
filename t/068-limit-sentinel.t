# The limiter's Redis behind Sentinel (grpc_guard_redis sentinel=...
# master=...): a master, a replica and three redis-sentinel processes on
# loopback; the workers ask the sentinels for the master and follow a
# SENTINEL FAILOVER made during traffic: the counts land on the new
# master, no call waits longer than the timeout, and the calls caught in
# the switch get the failure mode (closed: 14), nothing else.  A master
# that answers -READONLY (made a replica by hand) or -LOADING (DEBUG
# RELOAD, slowed) makes the limiter ask the sentinels again; nothing is
# counted on a read-only server.  The same over TLS only: sentinels,
# master and replica with --tls-port and --port 0.

use Test::Nginx::Socket::Grpc 'no_plan';
use FindBin;
use List::Util qw(max);
use POSIX qw(WNOHANG);
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

# the sentinels watch NAME at PORT from now on, and never fail it over
# (SENTINEL REMOVE, MONITOR: no +switch-master is published)
sub sentinels_watch {
    my ($name, $port) = @_;
    for my $s (@sentinels) {
        redis_cmd($s, 'SENTINEL', 'REMOVE', $name);
        redis_cmd($s, 'SENTINEL', 'MONITOR', $name, '127.0.0.1', $port, 2);
        redis_cmd($s, 'SENTINEL', 'SET', $name, 'down-after-milliseconds',
                  600000);
    }
}

# the same password, from a file
write_file(work_dir() . '/sentinel.pw', "sent-s3cret\n");
$ENV{TEST_NGINX_SENTINEL_PW_FILE} = work_dir() . '/sentinel.pw';

# a second master and its replica, watched by the same sentinels as
# "romaster" and never failed over by them: the test makes the master a
# replica by hand, and tells the sentinels (SENTINEL REMOVE, MONITOR)
# without a +switch-master
my $ro_master = start_redis();
my $ro_replica = start_redis(args => ['--replicaof', '127.0.0.1',
                                      $ro_master]);
sentinels_watch('romaster', $ro_master);
$ENV{TEST_NGINX_RO_MASTER_PORT} = $ro_master;
$ENV{TEST_NGINX_RO_REPLICA_PORT} = $ro_replica;

# a master that reloads its data slowly (DEBUG RELOAD, 5000 keys, 1 ms
# each: about 5 s of -LOADING, answering meanwhile), watched by the same
# sentinels as "ldmaster", never failed over by them
my $ld_master = start_redis(args => ['--enable-debug-command', 'yes',
    '--loading-process-events-interval-bytes', '1024']);
redis_cmd($ld_master, 'DEBUG', 'POPULATE', 5000, 'filler');
redis_cmd($ld_master, 'CONFIG', 'SET', 'key-load-delay', 1000);
sentinels_watch('ldmaster', $ld_master);
$ENV{TEST_NGINX_LD_MASTER_PORT} = $ld_master;

# the same over TLS only (--port 0): a master, a replica and three
# sentinels, replication and the sentinels' own connections in TLS too;
# the certificates are the harness's, made at test time ("server":
# IP:127.0.0.1, signed by "ca")
my $certs = cert_dir();

sub tls_args {
    my ($port) = @_;
    return ('--port', '0', '--tls-port', $port,
            '--tls-cert-file', "$certs/server.crt",
            '--tls-key-file', "$certs/server.key",
            '--tls-ca-cert-file', "$certs/ca.crt",
            '--tls-auth-clients', 'no', '--tls-replication', 'yes');
}

sub tls_cmd {
    my ($port, @args) = @_;
    return redis_cmd($port, '--tls', '--cacert', "$certs/ca.crt", @args);
}

my $tls_master = free_port();
start_redis(port => $tls_master, args => [tls_args($tls_master)]);
my $tls_replica = free_port();
start_redis(port => $tls_replica, args => [tls_args($tls_replica),
    '--replicaof', '127.0.0.1', $tls_master]);

our @tls_sentinels;
for my $i (1 .. 3) {
    my $conf = work_dir() . "/tls-sentinel-$i.conf";
    write_file($conf, <<"_EOC_");
sentinel monitor tlsmaster 127.0.0.1 $tls_master 2
sentinel down-after-milliseconds tlsmaster 1000
sentinel failover-timeout tlsmaster 5000
sentinel parallel-syncs tlsmaster 1
_EOC_
    my $port = free_port();
    push @tls_sentinels, start_redis(port => $port, binary => 'redis-sentinel',
                                     conf => $conf,
                                     args => [tls_args($port)]);
}
$ENV{TEST_NGINX_TLS_MASTER_PORT} = $tls_master;
$ENV{TEST_NGINX_TLS_REPLICA_PORT} = $tls_replica;
$ENV{TEST_NGINX_TLS_SENTINELS} = join ',', map { "127.0.0.1:$_" }
                                           @tls_sentinels;

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

# the calls counted under a key, over TLS
sub tls_counted {
    my ($port, $key) = @_;
    my $out = tls_cmd($port, 'HVALS', "grpc_guard:{limit}:s:60s:$key");
    my $n = 0;
    $n += $_ for grep { /^\d+$/ } split /\n/, $out;
    return $n;
}

sub error_log_text {
    return Test::Nginx::Proc::read_file(server_root() . '/logs/error.log')
           // '';
}

# one call at a time, all under one key, until one passes; returns
# the codes, and the calls' elapsed times
sub calls_until_pass {
    my ($phase, $secs) = @_;
    my (@codes, @elapsed);
    my $deadline = time + $secs;
    while (time < $deadline) {
        my ($r) = lcalls({ metadata => [['x-phase', $phase]] });
        push @codes, $r->{code};
        push @elapsed, $r->{elapsed};
        last if $r->{code} == 0;
        sleep 0.1;
    }
    return (\@codes, \@elapsed);
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



=== TEST 10: sentinel_password_file= authenticates to the sentinels; never logged
--- http_config
    grpc_guard_redis sentinel=127.0.0.1:$TEST_NGINX_PW_SENTINEL master=mymaster
                     sentinel_password_file=$TEST_NGINX_SENTINEL_PW_FILE
                     timeout=500ms;
--- config
    location / {
        grpc_guard_limit rate=100000r/m key=$http_x_phase name=s;
        grpc_guard_limit_failure closed;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- init
sleep 0.3;
is(phase_codes('pwfile', 3), '0 0 0', 'calls pass through Redis');
is(counted($ENV{TEST_NGINX_MASTER_PORT}, 'pwfile'), 3,
   'counted on the master');
--- no_error_log
sent-s3cret



=== TEST 11: SENTINEL FAILOVER during traffic: the limiter follows it, counts land on the new master
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



=== TEST 12: -READONLY from the master in use: the sentinels are asked again; nothing counted on the read-only server, no call waits
--- http_config
    grpc_guard_redis sentinel=$TEST_NGINX_SENTINELS master=romaster
                     timeout=1s connect_timeout=1s;
--- config
    location / {
        grpc_guard_limit rate=3r/m key=$http_x_phase name=s;
        grpc_guard_limit_failure closed;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- init
my ($a, $b) = @ENV{qw(TEST_NGINX_RO_MASTER_PORT TEST_NGINX_RO_REPLICA_PORT)};
ok(wait_until('the replica in sync', 20, sub {
       redis_cmd($b, 'INFO', 'replication') =~ /master_link_status:up/ }),
   'the replica is in sync');
is(phase_codes('ro-before', 2), '0 0', 'calls pass through Redis');
is(counted($a, 'ro-before'), 2, 'counted on the master');

# the master becomes a replica of a server that is not there: it keeps
# its data, read-only; the sentinels still name it
like(redis_cmd($a, 'REPLICAOF', '127.0.0.1', free_port()), qr/^OK/,
     'REPLICAOF on the master');

my @r = lcalls(map { +{ metadata => [['x-phase', 'ro-stale']] } } 1 .. 3);
is(join(' ', map { $_->{code} } @r), '14 14 14',
   'while the sentinels name a read-only server: 14 (failure closed)');
cmp_ok($_->{elapsed}, '<', 3, "no wait ($_->{elapsed} s)") for @r;
ok(wait_until('the ROLE check', 10, sub {
       error_log_text() =~ /redis is not the master: its role is "slave"/ }),
   'the server the sentinels name again is refused after ROLE');
is(counted($a, 'ro-stale'), 0, 'nothing counted on the read-only server');

# the replica becomes the master, and the sentinels say so without a
# +switch-master: only a new question finds it
like(redis_cmd($b, 'REPLICAOF', 'NO', 'ONE'), qr/^OK/,
     'REPLICAOF NO ONE on the replica');
sentinels_watch('romaster', $b);

my ($codes, $elapsed) = calls_until_pass('ro-probe', 20);
diag('until a call passed: ' . join(' ', @$codes));
is($codes->[-1], 0, 'a call passes again');
is(join(' ', grep { $_ != 0 && $_ != 14 } @$codes), '',
   'the calls before it got 14 (failure closed), nothing else');
cmp_ok(max(@$elapsed), '<', 3, 'no call waited (slowest '
       . max(@$elapsed) . ' s)');
is(counted($b, 'ro-probe'), 1, 'the call that passed counted on the new master');

is(phase_codes('ro-after', 4), '0 0 0 8',
   'rate=3r/m: three pass on the new master, the 4th gets 8');
is(counted($b, 'ro-after'), 3, 'counted on the new master');
is(counted($a, 'ro-probe') + counted($a, 'ro-after'), 0,
   'nothing counted on the read-only server');
like(redis_cmd($a, 'ROLE'), qr/^slave/, 'which is still a replica');

# the other way, and the sentinels first: they name the first server
# again (a master again), then the server in use becomes read-only; the
# limiter has no reason to ask until its call gets -READONLY
like(redis_cmd($a, 'REPLICAOF', 'NO', 'ONE'), qr/^OK/,
     'REPLICAOF NO ONE on the first server');
sentinels_watch('romaster', $a);
like(redis_cmd($b, 'REPLICAOF', '127.0.0.1', free_port()), qr/^OK/,
     'REPLICAOF on the server in use');

($codes, $elapsed) = calls_until_pass('ro-back', 20);
diag('until a call passed: ' . join(' ', @$codes));
like(join(' ', @$codes), qr/^14 (14 )*0$/,
   'the call that met -READONLY got 14 (failure closed), then one passed');
cmp_ok(max(@$elapsed), '<', 3, 'no call waited (slowest '
       . max(@$elapsed) . ' s)');
is(counted($a, 'ro-back'), 1, 'counted on the server the sentinels name');
is(counted($b, 'ro-back'), 0, 'nothing counted on the read-only server');
is(phase_codes('ro-back2', 4), '0 0 0 8',
   'rate=3r/m: three pass, the 4th gets 8');
is(counted($a, 'ro-back2'), 3, 'counted on the master');
--- error_log eval
[qr/\[error\] .*redis is no longer the master: READONLY/,
 qr/\[notice\] .*grpc guard: redis master "romaster" moved from 127\.0\.0\.1:$ENV{TEST_NGINX_RO_REPLICA_PORT} to 127\.0\.0\.1:$ENV{TEST_NGINX_RO_MASTER_PORT}/,
 qr/\[debug\] .*grpc guard sentinel: asking for master "romaster"/,
 qr/\[notice\] .*grpc guard: redis master "romaster" moved from 127\.0\.0\.1:$ENV{TEST_NGINX_RO_MASTER_PORT} to 127\.0\.0\.1:$ENV{TEST_NGINX_RO_REPLICA_PORT}/]
--- timeout: 60



=== TEST 13: -LOADING from the master in use: the sentinels are asked again; the calls meanwhile get the failure mode at once, counting resumes after
--- http_config
    grpc_guard_redis sentinel=$TEST_NGINX_SENTINELS master=ldmaster
                     timeout=1s connect_timeout=1s;
--- config
    location / {
        grpc_guard_limit rate=3r/m key=$http_x_phase name=s;
        grpc_guard_limit_failure closed;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- init
my $port = $ENV{TEST_NGINX_LD_MASTER_PORT};
is(phase_codes('ld-before', 2), '0 0', 'calls pass through Redis');
is(counted($port, 'ld-before'), 2, 'counted on the master');

my $from = length error_log_text();
my $dir = work_dir() . "/redis-$port";
my $reload = Test::Nginx::Proc::spawn(
    ['redis-cli', '-h', '127.0.0.1', '-p', $port, 'DEBUG', 'RELOAD'],
    stdout => "$dir/reload.out", stderr => "$dir/reload.err");
ok(wait_until('-LOADING', 10, sub {
       redis_cmd($port, 'PING') =~ /^LOADING/ }), 'the master is loading');

my @r = lcalls(map { +{ metadata => [['x-phase', 'ld-during']] } } 1 .. 2);
my $still = redis_cmd($port, 'PING') =~ /^LOADING/;
SKIP: {
    skip 'the master finished loading before the calls', 2 unless $still;
    is(join(' ', map { $_->{code} } @r), '14 14',
       'while it loads: 14 (failure closed)');
    cmp_ok($_->{elapsed}, '<', 3, "no wait ($_->{elapsed} s)") for @r;
}

ok(wait_until('DEBUG RELOAD', 30, sub { waitpid($reload, WNOHANG) != 0 }),
   'the master has loaded its data');
my ($codes, $elapsed) = calls_until_pass('ld-after', 20);
diag('until a call passed: ' . join(' ', @$codes));
is($codes->[-1], 0, 'a call passes again');
is(join(' ', grep { $_ != 0 && $_ != 14 } @$codes), '',
   'the calls before it got 14 (failure closed), nothing else');
cmp_ok(max(@$elapsed), '<', 3, 'no call waited (slowest '
       . max(@$elapsed) . ' s)');
is(counted($port, 'ld-during'), 0, 'nothing counted while it loaded');
is(counted($port, 'ld-before'), 2, 'what was counted before is kept');
is(phase_codes('ld-after', 3), '0 0 8',
   'rate=3r/m: with the one before, two more pass, the 4th gets 8');
is(counted($port, 'ld-after'), 3, 'counted on the master');

like(substr(error_log_text(), $from),
     qr/redis is no longer the master: LOADING.*\n(?s:.*)grpc guard sentinel: asking for master "ldmaster".*\n(?s:.*)grpc guard sentinel: master is still 127\.0\.0\.1:$port/,
     'after -LOADING the sentinels were asked again');
--- timeout: 60



=== TEST 14: Sentinel over TLS (sentinels, master and replica in TLS only): exact limits through the master; SENTINEL FAILOVER followed
--- http_config
    grpc_guard_redis sentinel=$TEST_NGINX_TLS_SENTINELS master=tlsmaster
                     tls tls_trusted_certificate=$TEST_NGINX_CERT_DIR/ca.crt
                     timeout=1s connect_timeout=1s;
--- config
    location / {
        grpc_guard_limit rate=3r/m key=$http_x_phase name=s;
        grpc_guard_limit_failure closed;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- init
my ($m, $r) = @ENV{qw(TEST_NGINX_TLS_MASTER_PORT TEST_NGINX_TLS_REPLICA_PORT)};
my $master_of = sub {
    my @l = split /\n/, tls_cmd($tls_sentinels[0], 'SENTINEL',
                                'get-master-addr-by-name', 'tlsmaster');
    return $l[1] // '';
};
ok(wait_until('sentinel quorum over TLS', 30, sub {
       tls_cmd($tls_sentinels[0], 'SENTINEL', 'ckquorum', 'tlsmaster')
           =~ /^OK/
       && tls_cmd($tls_sentinels[0], 'SENTINEL', 'replicas', 'tlsmaster')
           =~ /\b$r\b/
       && tls_cmd($r, 'INFO', 'replication') =~ /master_link_status:up/ }),
   'sentinels ready');

is(phase_codes('tls-before', 4), '0 0 0 8',
   'rate=3r/m: three pass through the TLS master, the 4th gets 8');
is(tls_counted($m, 'tls-before'), 3, 'counted on the master');

like(tls_cmd($tls_sentinels[0], 'SENTINEL', 'FAILOVER', 'tlsmaster'),
     qr/OK/, 'SENTINEL FAILOVER');
ok(wait_until('the failover', 30, sub { $master_of->() eq $r }),
   'the sentinels made the replica the master');
ok(wait_until('the guard follows', 20, sub {
       error_log_text()
           =~ /moved from 127\.0\.0\.1:$m to 127\.0\.0\.1:$r\b/ }),
   'the limiter moved to the new master');

is(phase_codes('tls-after', 4), '0 0 0 8',
   'rate=3r/m: three pass through the new TLS master, the 4th gets 8');
is(tls_counted($r, 'tls-after'), 3, 'counted on the new master');
like(tls_cmd($r, 'ROLE'), qr/^master/, 'which is a master');
--- error_log eval
[qr/\[notice\] .*grpc guard: redis master "tlsmaster" is 127\.0\.0\.1:$ENV{TEST_NGINX_TLS_MASTER_PORT}\b/,
 qr/\[notice\] .*sentinel: \+switch-master tlsmaster 127\.0\.0\.1 $ENV{TEST_NGINX_TLS_MASTER_PORT} 127\.0\.0\.1 $ENV{TEST_NGINX_TLS_REPLICA_PORT}\b/]
--- no_error_log
certificate
--- timeout: 90
