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
use Time::HiRes qw(time sleep);
use Test::Nginx::Proc qw(run_cmd);

require "$FindBin::Bin/data/limit.pl";

Test::Nginx::Socket::Grpc::init();

# ------------------------------------------------------------ the cluster

our @ports = map {
    start_redis(args => ['--cluster-enabled', 'yes',
                         '--cluster-config-file', 'nodes.conf',
                         '--cluster-node-timeout', '1000',
                         '--cluster-replica-validity-factor', '0'])
} 1 .. 6;

{
    my $r = run_cmd(['redis-cli', '--cluster', 'create',
                     (map { "127.0.0.1:$_" } @ports),
                     '--cluster-replicas', '1', '--cluster-yes'],
                    timeout => 60);
    die "redis-cli --cluster create: $r->{out}$r->{err}" if $r->{status};
}

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
        return 0 unless redis_cmd($p, 'CLUSTER', 'INFO')
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
        push @m, $p if redis_cmd($p, 'ROLE') =~ /^master/;
    }
    return @m;
}

sub owner {
    my ($slot) = @_;
    my $out = redis_cmd((masters())[0], 'CLUSTER', 'NODES');
    for my $line (split /\n/, $out) {
        my @f = split / /, $line;
        next unless $f[2] =~ /master/ && $f[2] !~ /fail/;
        for my $r (@f[8 .. $#f]) {
            next if $r =~ /^\[/;
            my ($a, $b) = split /-/, $r;
            $b //= $a;
            return ($f[1] =~ /:(\d+)/)[0] if $slot >= $a && $slot <= $b;
        }
    }
    return '';
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
    my $out = redis_cmd($port, '-c', 'HVALS', $key);
    my $n = 0;
    $n += $_ for grep { /^\d+$/ } split /\n/, $out;
    return $n;
}

sub evalsha_calls {
    my ($port) = @_;
    my $out = redis_cmd($port, 'INFO', 'commandstats');
    my $n = 0;
    $n += $1 while $out =~ /^cmdstat_eval(?:sha)?:calls=(\d+)/mg;
    return $n;
}

sub reset_stats { redis_cmd($_, 'CONFIG', 'RESETSTAT') for masters() }

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

sub kcodes {
    my ($key, $n, %o) = @_;
    return join ' ', map { $_->{code} } lcalls(map {
        +{ metadata => [['x-key', $key], @{ $o{md} || [] }] } } 1 .. $n);
}

my @m = masters();
die "not 3 masters: @m\n" unless @m == 3;

$ENV{TEST_NGINX_CLUSTER} = join ',', map { "127.0.0.1:$_" } @m[0, 1];
$ENV{TEST_NGINX_FREE_PORT} = free_port();

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
redis_cmd($_, 'FLUSHALL') for @m;
my @keys = map { "k$_" } 1 .. 150;
my @r = lcalls(map { +{ metadata => [['x-key', $_]] } } @keys);
is(join(' ', grep { $_ ne '0' } map { $_->{code} } @r), '',
   'every call passed');
my @n = map { 0 + redis_cmd($_, 'DBSIZE') } @m;
diag("counters per master: @n");
is($n[0] + $n[1] + $n[2], 150, 'one counter per key');
ok((!grep { $_ == 0 } @n), 'every master holds counters');
my ($min, $max) = (sort { $a <=> $b } @n)[0, -1];
ok($max <= 2 * $min, "no master holds more than twice another ($max, $min)");
my $wrong = 0;
for my $k (@keys) {
    my $c = ckey('spread', '60s', $k);
    $wrong++ unless redis_cmd(owner(slot_of($c)), 'EXISTS', $c) eq '1';
}
is($wrong, 0, 'each counter is on the master of its own slot');
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
