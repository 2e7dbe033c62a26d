# The limiter on Redis Cluster (grpc_guard_redis cluster=...): three
# masters with one replica each on loopback (redis-cli --cluster create).
# Every counter is a hash tag of its own, so the counters spread over the
# masters; the limits of one call are checked with one script call per
# master; -MOVED and -ASK are followed (a slot moved by hand, and a
# redis-cli --cluster reshard during traffic); a CLUSTER FAILOVER and a
# master killed: the limiting resumes by itself, and while the master is
# down only its keys get the failure mode.

use Test::Nginx::Socket::Grpc 'no_plan';
use FindBin;
use IO::Socket::INET;
use Time::HiRes qw(time sleep);
use Test::Nginx::Proc qw(run_cmd);

require "$FindBin::Bin/data/limit.pl";

Test::Nginx::Socket::Grpc::init();

# ------------------------------------------------------------ the cluster

our @ports = map {
    start_redis(port => cluster_port(), args => ['--cluster-enabled', 'yes',
                         '--cluster-config-file', 'nodes.conf',
                         '--cluster-node-timeout', '1000',
                         '--cluster-require-full-coverage', 'no',
                         '--cluster-replica-validity-factor', '0'])
} 1 .. 6;

{
    my $r = run_cmd(['redis-cli', '--cluster', 'create',
                     (map { "127.0.0.1:$_" } @ports),
                     '--cluster-replicas', '1', '--cluster-yes'],
                    timeout => 60);
    die "redis-cli --cluster create: $r->{out}$r->{err}" if $r->{status};
}

# redis-cli, with the password once the nodes have one (TEST 12)
our @Auth;
sub rcmd { my ($port, @args) = @_; return redis_cmd($port, @Auth, @args) }

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

sub cluster_ok {
    my @p = @_ ? @_ : @ports;
    for my $p (@p) {
        return 0 unless rcmd($p, 'CLUSTER', 'INFO')
                        =~ /cluster_state:ok/;
    }
    return 1;
}

wait_until('cluster_state:ok', 30, sub { cluster_ok() })
    or die "the cluster did not come up\n";

# the masters of now, and who owns a slot
sub masters {
    my @m;
    for my $p (@ports) {
        next unless $Test::Nginx::Socket::Grpc::RedisServers{$p};
        push @m, $p if rcmd($p, 'ROLE') =~ /^master/;
    }
    return @m;
}

# the owner (port) of each slot, read once; again after a change
our @Owner;

sub read_owners {
    @Owner = ();
    my $out = rcmd((masters())[0], 'CLUSTER', 'NODES');
    for my $line (split /\n/, $out) {
        my @f = split / /, $line;
        next unless $f[2] =~ /master/ && $f[2] !~ /fail/;
        my ($port) = $f[1] =~ /:(\d+)/;
        for my $r (@f[8 .. $#f]) {
            next if $r =~ /^\[/;
            my ($a, $b) = split /-/, $r;
            $b //= $a;
            $Owner[$_] = $port for $a .. $b;
        }
    }
}

sub owner {
    my ($slot) = @_;
    read_owners() unless @Owner;
    return $Owner[$slot] // '';
}

# CRC-16/XMODEM of the hash tag, as Redis computes the slot
sub slot_of {
    my ($key) = @_;
    $key = $1 if $key =~ /\{([^}]+)\}/;
    my $crc = 0;
    for my $c (unpack 'C*', $key) {
        $crc ^= $c << 8;
        for (1 .. 8) {
            $crc = $crc & 0x8000 ? (($crc << 1) ^ 0x1021) : ($crc << 1);
            $crc &= 0xffff;
        }
    }
    return $crc & 16383;
}

# the counter's name in cluster mode
sub ckey { my ($name, $win, $v) = @_; return "grpc_guard:{$name:$win:$v}" }

# the calls counted under a key, over every window
sub counted {
    my ($port, $key) = @_;
    my $out = rcmd($port, '-c', 'HVALS', $key);
    my $n = 0;
    $n += $_ for grep { /^\d+$/ } split /\n/, $out;
    return $n;
}

sub evalsha_calls {
    my ($port) = @_;
    my $out = rcmd($port, 'INFO', 'commandstats');
    my $n = 0;
    $n += $1 while $out =~ /^cmdstat_eval(?:sha)?:calls=(\d+)/mg;
    return $n;
}

sub eval_calls {
    my ($port) = @_;
    my $out = rcmd($port, 'INFO', 'commandstats');
    return $out =~ /^cmdstat_eval:calls=(\d+)/m ? $1 : 0;
}

sub reset_stats { rcmd($_, 'CONFIG', 'RESETSTAT') for masters() }

# a key value whose counter falls on master $port (and not in @not slots)
sub value_on {
    my ($port, $name, $win, $prefix, %o) = @_;
    for my $i (1 .. 100000) {
        my $v = "$prefix$i";
        my $s = slot_of(ckey($name, $win, $v));
        next if $o{not} && grep { $_ == $s } @{ $o{not} };
        next if defined $o{slot} && $s != $o{slot};
        next if defined $o{below} && $s >= $o{below};
        return $v if !defined $port || owner($s) eq $port;
    }
    die "no value found for $port";
}

sub node_id { rcmd($_[0], 'CLUSTER', 'MYID') }

# the replica of master $port
sub replica_of {
    my ($port) = @_;
    my $id = node_id($port);
    for my $line (split /\n/, rcmd($port, 'CLUSTER', 'NODES')) {
        my @f = split / /, $line;
        return ($f[1] =~ /:(\d+)/)[0] if $f[3] eq $id && $f[2] =~ /slave/;
    }
    return '';
}

sub asking_calls {
    my ($port) = @_;
    my $out = rcmd($port, 'INFO', 'commandstats');
    return $out =~ /^cmdstat_asking:calls=(\d+)/m ? $1 : 0;
}

sub kcodes {
    my ($key, $n, %o) = @_;
    return join ' ', map { $_->{code} } lcalls(map {
        +{ metadata => [['x-key', $key], @{ $o{md} || [] }] } } 1 .. $n);
}

my @m = masters();
die "not 3 masters: @m\n" unless @m == 3;

$ENV{TEST_NGINX_CLUSTER} = join ',', map { "127.0.0.1:$_" } @m[0, 1];
$ENV{TEST_NGINX_FREE_PORT} = free_port();

# a limit name whose counter for 127.0.0.1 is in the first 100 slots
for my $i (1 .. 100000) {
    next unless slot_of(ckey("r$i", '60s', '127.0.0.1')) < 100;
    $ENV{TEST_NGINX_RESHARD_NAME} = "r$i";
    last;
}

no_shuffle();
no_root_location();
run_tests();

__DATA__

=== TEST 1: cluster= with no address
--- http_config
    grpc_guard_redis cluster=;
--- must_die
--- error_log eval
qr/\[emerg\] .*"cluster=" has no address in \S+nginx\.conf:\d+/



=== TEST 2: an empty address in the list
--- http_config
    grpc_guard_redis cluster=127.0.0.1:1,,127.0.0.1:2;
--- must_die
--- error_log
empty address in "cluster=127.0.0.1:1,,127.0.0.1:2"



=== TEST 3: db= with cluster=
--- http_config
    grpc_guard_redis cluster=$TEST_NGINX_CLUSTER db=2;
--- must_die
--- error_log eval
qr/\[emerg\] .*"db=2" cannot be used with "cluster=": Redis Cluster has database 0 only in \S+nginx\.conf:\d+/



=== TEST 4: cluster= and sentinel= together
--- http_config
    grpc_guard_redis cluster=$TEST_NGINX_CLUSTER sentinel=127.0.0.1:1
                     master=m;
--- must_die
--- error_log eval
qr/\[emerg\] .*"grpc_guard_redis" directive takes either "sentinel=" or "cluster=" in \S+nginx\.conf:\d+/



=== TEST 5: an address and cluster= together
--- http_config
    grpc_guard_redis 127.0.0.1:6379 cluster=$TEST_NGINX_CLUSTER;
--- must_die
--- error_log eval
qr/\[emerg\] .*"grpc_guard_redis" directive takes either an address or "cluster=" in \S+nginx\.conf:\d+/



=== TEST 6: the counters spread over every master; each on the master of its slot
--- http_config
    grpc_guard_redis cluster=$TEST_NGINX_CLUSTER timeout=500ms;
--- config
    location / {
        grpc_guard_limit rate=1000r/m key=$http_x_key name=spread;
        grpc_guard_limit_failure closed;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- init
my @m = masters();
rcmd($_, 'FLUSHALL') for @m;
my @keys = map { "k$_" } 1 .. 150;
my @r = lcalls(map { +{ metadata => [['x-key', $_]] } } @keys);
is(join(' ', grep { $_ ne '0' } map { $_->{code} } @r), '',
   'every call passed');
my @n = map { 0 + rcmd($_, 'DBSIZE') } @m;
diag("counters per master: @n");
is($n[0] + $n[1] + $n[2], 150, 'one counter per key');
ok((!grep { $_ == 0 } @n), 'every master holds counters');
my ($min, $max) = (sort { $a <=> $b } @n)[0, -1];
ok($max <= 2 * $min, "no master holds more than twice another ($max, $min)");
my ($wrong, $seen) = (0, 0);
for my $p (@m) {
    for my $c (split /\n/, rcmd($p, 'KEYS', '*')) {
        $seen++;
        $wrong++ unless owner(slot_of($c)) eq $p
                        && $c =~ /^grpc_guard:\{spread:60s:k\d+\}$/;
    }
}
is("$seen $wrong", '150 0',
   'each counter, grpc_guard:{NAME:WINDOW:VALUE}, is on the master of its slot');
--- timeout: 60



=== TEST 7: exact limits on every master: 5 pass, then 8 with the limiter's message
--- http_config
    grpc_guard_redis cluster=$TEST_NGINX_CLUSTER timeout=500ms;
--- config
    location / {
        grpc_guard_limit rate=5r/m key=$http_x_key name=exact;
        grpc_guard_limit_failure closed;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- init
for my $p (masters()) {
    my $v = value_on($p, 'exact', '60s', "x$p-");
    my @r = lcalls(map { +{ metadata => [['x-key', $v]] } } 1 .. 7);
    is(join(' ', map { $_->{code} } @r[0 .. 4]), '0 0 0 0 0',
       "master $p: 5 calls pass");
    check_refusal($r[5], 'exact', 5, 60, "master $p: the 6th");
    is($r[6]{code}, 8, "master $p: the 7th refused too");
    is(counted($p, ckey('exact', '60s', $v)), 5, "master $p: 5 counted");
}
--- timeout: 60



=== TEST 8: the limits of one call: one script call per master, keys in several slots of one master in one call
--- http_config
    grpc_guard_redis cluster=$TEST_NGINX_CLUSTER timeout=500ms;
--- config
    location / {
        grpc_guard_limit rate=3r/m key=$http_x_a name=la;
        grpc_guard_limit rate=100r/m key=$http_x_b name=lb;
        grpc_guard_limit rate=100r/m key=$http_x_c name=lc;
        grpc_guard_limit_failure closed;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- init
my ($p1, $p2, $p3) = masters();
# a and b on one master, in two slots; c on another
my $a = value_on($p1, 'la', '60s', 'a');
my $b = value_on($p1, 'lb', '60s', 'b',
                 not => [slot_of(ckey('la', '60s', $a))]);
my $c = value_on($p2, 'lc', '60s', 'c');
reset_stats();
my @r = lcalls(map { +{ metadata => [['x-a', $a], ['x-b', $b],
                                      ['x-c', $c]] } } 1 .. 4);
is(join(' ', map { $_->{code} } @r), '0 0 0 8', '3 pass, then la refuses');
is($r[3]{md}{'ratelimit-policy'}, '"la";q=3;w=60', 'refused by la');
is(evalsha_calls($p1), 4, "one script call per call on $p1 (two keys)");
is(evalsha_calls($p2), 4, "one script call per call on $p2");
is(evalsha_calls($p3), 0, "none on $p3");
is(counted($p1, ckey('la', '60s', $a)), 3, 'la counted 3 times');
is(counted($p1, ckey('lb', '60s', $b)), 3, 'lb counted with la, 3 times');
# the refusal came from the master of la: the other master counted it
is(counted($p2, ckey('lc', '60s', $c)), 4,
   'lc counted 4 times: a refusal on one master, counted on another');
--- timeout: 60



=== TEST 9: a slot moved by hand: -ASK while it migrates, -MOVED after; the limit stays exact
--- http_config
    grpc_guard_redis cluster=$TEST_NGINX_CLUSTER timeout=500ms;
--- config
    location / {
        grpc_guard_limit rate=5r/m key=$http_x_key name=mig;
        grpc_guard_limit_failure closed;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- init
read_owners();
my ($a, $b) = masters();
my $v1 = value_on($a, 'mig', '60s', 'm');
my $k1 = ckey('mig', '60s', $v1);
my $slot = slot_of($k1);
my $v2 = value_on(undef, 'mig', '60s', 'n', slot => $slot);
my $k2 = ckey('mig', '60s', $v2);
my ($ida, $idb) = (node_id($a), node_id($b));
is(kcodes($v1, 2), '0 0', 'two calls on the first master');
reset_stats();
is(rcmd($b, 'CLUSTER', 'SETSLOT', $slot, 'IMPORTING', $ida), 'OK',
   'importing');
is(rcmd($a, 'CLUSTER', 'SETSLOT', $slot, 'MIGRATING', $idb), 'OK',
   'migrating');
is(kcodes($v2, 1), '0', 'a new key of the migrating slot: passes');
is(kcodes($v1, 1), '0', 'a key still on the first master: passes');
is(rcmd($a, 'MIGRATE', '127.0.0.1', $b, $k1, 0, 5000), 'OK',
   'the counter migrated');
is(kcodes($v1, 1), '0', 'the migrated key: passes');
cmp_ok(asking_calls($b), '>=', 2, 'ASKING sent to the importing master');
# the batch with a key the first master does not hold fails there; the
# check then goes alone (EVAL, keys declared), is redirected (-ASK) and
# runs on the importing master
is(eval_calls($b), 2, 'the two redirected checks ran on the importing master');
for my $p (masters()) {
    rcmd($p, 'CLUSTER', 'SETSLOT', $slot, 'NODE', $idb);
}
is(kcodes($v1, 2), '0 8', 'after the move (MOVED): the 5th passes, the 6th is refused');
is(counted($b, $k1), 5, 'counted 5 times, on the new master');
is(rcmd($a, 'CLUSTER', 'COUNTKEYSINSLOT', $slot), '0',
   'nothing left on the old one');
is(counted($b, $k2), 1, 'the new key counted on the new master');
@Owner = ();
--- timeout: 60



=== TEST 10: redis-cli --cluster reshard during traffic: no call refused or failed, every call counted once
--- http_config
    grpc_guard_redis cluster=$TEST_NGINX_CLUSTER timeout=500ms;
--- config
    location /test.Load/ {
        grpc_guard_limit rate=100000r/m key=$remote_addr name=$TEST_NGINX_RESHARD_NAME;
        grpc_guard_limit_failure closed;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- init
read_owners();
my $name = $ENV{TEST_NGINX_RESHARD_NAME};
my $key = ckey($name, '60s', '127.0.0.1');
my $from = owner(slot_of($key));
my ($to) = grep { $_ ne $from } masters();
my $load = start_load(rate => 40, duration => 6,
                      method => '/test.Load/Call');
sleep 1;
my $r = run_cmd(['redis-cli', '--cluster', 'reshard', "127.0.0.1:$from",
                 '--cluster-from', node_id($from),
                 '--cluster-to', node_id($to),
                 '--cluster-slots', 100, '--cluster-yes'], timeout => 60);
is($r->{status}, 0, 'reshard done') or diag($r->{out} . $r->{err});
my $res = finish_load($load);
ok(!$res->{error}, 'load ran') or diag($res->{error});
my %codes = %{ $res->{codes} || {} };
diag('load: ' . join(', ', map { "$_: $codes{$_}" } sort keys %codes)
     . ", slowest $res->{max_elapsed} s");
is(join(' ', sort keys %codes), '0', 'every call passed');
is($res->{errors}, 0, 'no call failed otherwise');
@Owner = ();
is(owner(slot_of($key)), $to, 'the slot of the counter moved');
is(counted($to, $key), $codes{0}, 'every call counted once');
--- timeout: 90



=== TEST 11: CLUSTER FAILOVER, then a master killed: limiting resumes by itself, other masters unaffected
--- http_config
    grpc_guard_redis cluster=$TEST_NGINX_CLUSTER timeout=300ms
                     connect_timeout=300ms;
--- config
    location / {
        grpc_guard_limit rate=1000r/m key=$http_x_key name=fo;
        grpc_guard_limit_failure closed;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- init
read_owners();
my ($a, $b) = grep { $_ ne (split /[:,]/, $ENV{TEST_NGINX_CLUSTER})[1] }
              masters();
my $r = replica_of($a);
ok($r, "master $a has replica $r");
my $va = value_on($a, 'fo', '60s', 'a');
my $vb = value_on($b, 'fo', '60s', 'b');
my $ka = ckey('fo', '60s', $va);
is(kcodes($va, 3), '0 0 0', 'calls on the first master');
ok(wait_until('replicated', 10, sub { counted($r, $ka) == 3 }),
   'replicated');

is(rcmd($r, 'CLUSTER', 'FAILOVER'), 'OK', 'CLUSTER FAILOVER');
ok(wait_until('the replica is the master', 20, sub {
       rcmd($r, 'ROLE') =~ /^master/ }), 'the replica took over');
is(kcodes($va, 3), '0 0 0',
   'calls follow the new master at once (READONLY, then MOVED)');
is(counted($r, $ka), 6, 'counted on the new master');

# the new master dies: until its replica (the old master) takes over,
# its keys get the failure mode, at once; the other keys do not notice
stop_redis($r);
my $t = time;
my @fail = lcalls(map { +{ metadata => [['x-key', $va]] } } 1 .. 3);
is(join(' ', map { $_->{code} } @fail), '14 14 14',
   'its keys: failure closed');
cmp_ok($_->{elapsed}, '<', 2, "no long wait ($_->{elapsed} s)") for @fail;
is(kcodes($vb, 5), '0 0 0 0 0', 'the keys of another master pass');
ok(wait_until('limiting resumes', 30, sub { kcodes($va, 1) eq '0' }),
   'limiting on those keys resumes by itself');
diag(sprintf 'resumed %.1f s after the kill', time - $t);
is(kcodes($va, 2), '0 0', 'and goes on');
like(rcmd($a, 'ROLE'), qr/^master/, 'on the promoted replica');
cmp_ok(counted($a, $ka), '>=', 8, 'counted there');
@Owner = ();

# the nodes that are left get a password, for the next blocks
for my $p (grep { $Test::Nginx::Socket::Grpc::RedisServers{$_} } @ports) {
    rcmd($p, 'CONFIG', 'SET', 'masterauth', 'cl-s3cret');
    rcmd($p, 'CONFIG', 'SET', 'requirepass', 'cl-s3cret');
}
@Auth = ('-a', 'cl-s3cret', '--no-auth-warning');
--- error_log eval
[qr/\[error\] .*grpc guard: redis 127\.0\.0\.1:\d+ is unavailable/,
 qr/\[notice\] .*grpc guard: redis cluster slot map changed, 3 masters/]
--- timeout: 90



=== TEST 12: password= goes to every node; never logged
--- http_config
    grpc_guard_redis cluster=$TEST_NGINX_CLUSTER password=cl-s3cret
                     timeout=500ms;
--- config
    location / {
        grpc_guard_limit rate=3r/m key=$http_x_key name=pw;
        grpc_guard_limit_failure closed;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- init
read_owners();
for my $p (masters()) {
    my $v = value_on($p, 'pw', '60s', "p$p-");
    is(kcodes($v, 4), '0 0 0 8', "master $p: 3 pass, the 4th is refused");
    is(counted($p, ckey('pw', '60s', $v)), 3, "master $p: counted");
}
--- no_error_log
cl-s3cret



=== TEST 13: no password: the nodes refuse, the failure mode applies, the error log says why
--- http_config
    grpc_guard_redis cluster=$TEST_NGINX_CLUSTER timeout=500ms;
--- config
    location / {
        grpc_guard_limit rate=3r/m key=$http_x_key name=nopw;
        grpc_guard_limit_failure closed;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- init
sleep 0.3;
is(kcodes('a', 2), '14 14', 'failure closed: 14');
--- error_log eval
[qr/\[error\] .*redis refused SCRIPT LOAD: NOAUTH/,
 qr/\[error\] .*grpc guard: no redis cluster node could tell the slot map/]



=== TEST 14: a master down for good: failure local applies to its limits only, the other limits of the call are counted in Redis
--- http_config
    grpc_guard_redis cluster=$TEST_NGINX_CLUSTER password=cl-s3cret
                     timeout=300ms connect_timeout=300ms;
--- config
    location / {
        grpc_guard_limit rate=100r/m key=$http_x_a name=fa;
        grpc_guard_limit rate=3r/m key=$http_x_b name=fb;
        grpc_guard_limit_failure local;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- init
read_owners();
# the master whose replica was killed (TEST 11) dies too
my ($dead) = grep { replica_of($_) eq '' } masters();
my ($live) = grep { $_ ne $dead } masters();
my $va = value_on($dead, 'fa', '60s', 'a');
my $vb = value_on($live, 'fb', '60s', 'b');
my @r = lcalls(map { +{ metadata => [['x-b', $vb]] } } 1 .. 2);
is(join(' ', map { $_->{code} } @r), '0 0', 'fb alone: counted in Redis');
stop_redis($dead);
@r = lcalls(map { +{ metadata => [['x-a', $va], ['x-b', $vb]] } } 1 .. 3);
is(join(' ', map { $_->{code} } @r), '0 8 8',
   'fb goes on in Redis (3 calls), fa in the local windows');
is($r[1]{md}{'ratelimit-policy'}, '"fb";q=3;w=60', 'refused by fb');
is(counted($live, ckey('fb', '60s', $vb)), 3, 'fb counted in Redis');
@r = lcalls(map { +{ metadata => [['x-a', $va]] } } 1 .. 2);
is(join(' ', map { $_->{code} } @r), '0 0', 'fa alone: local windows');
--- error_log eval
qr/\[warn\] .*grpc guard: redis did not answer, \d+ calls counted in local windows/
