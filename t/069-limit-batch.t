# Natural batching of the limiter's checks: while a script call is in
# flight on the Redis connection, the calls that come meanwhile wait and
# go together in the next one.  Many concurrent calls make far fewer
# script calls than calls (INFO commandstats of the real redis-server),
# and within a batch each call stays atomic: exactly the limit is
# admitted, and a call refused by one limit is counted against none.

use Test::Nginx::Socket::Grpc 'no_plan';
use FindBin;

require "$FindBin::Bin/data/limit.pl";

$ENV{TEST_NGINX_REDIS_PORT} = start_redis();

no_shuffle();
no_root_location();
run_tests();

# n calls, 128 at a time: { answered, backend (calls that reached it),
# scripts (EVALSHA and EVAL calls in Redis) }
sub burst {
    my ($n) = @_;
    my ($calls0, $sha0, $eval0) = (backend_calls(), redis_calls('evalsha'),
                                   redis_calls('eval'));
    my $s = h2load_summary(h2load(clients => 4, streams => 32, n => $n));
    return { answered => $s->{succeeded} // 0,
             backend => backend_calls() - $calls0,
             scripts => redis_calls('evalsha') - $sha0
                        + redis_calls('eval') - $eval0 };
}

# the calls counted in a limit's hash (one field per window)
sub hash_total {
    my ($key) = @_;
    my %h = split /\n/, redis_cmd(redis_port(), 'HGETALL', $key);
    my $n = 0;
    $n += $_ for values %h;
    return $n;
}

__DATA__

=== TEST 1: 2000 calls, 128 at a time: every one counted, in far fewer script calls
--- http_config
    grpc_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT timeout=5s;
--- config
    location / {
        grpc_guard_limit rate=1000000r/h key=$remote_addr name=b1;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- init
my $b = burst(2000);
is($b->{answered}, 2000, 'every call answered');
is($b->{backend}, 2000, 'every call reached the backend');
is(hash_total('grpc_guard:{limit}:b1:3600s:127.0.0.1'), 2000,
   'every call counted once in Redis');
cmp_ok($b->{scripts}, '>=', 1, "script calls: $b->{scripts}");
cmp_ok($b->{scripts}, '<=', 1000, 'at most one script call per two calls');
--- no_error_log
[error]
[warn]



=== TEST 2: 300 concurrent calls against 50r/h and 30r/h: exactly 30 admitted, counted 30 times in each limit
--- http_config
    grpc_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT timeout=5s;
--- config
    location / {
        grpc_guard_limit rate=50r/h key=$remote_addr name=b2wide;
        grpc_guard_limit rate=30r/h key=$remote_addr name=b2narrow;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- init
my $b = burst(300);
is($b->{answered}, 300, 'every call answered');
is($b->{backend}, 30, 'exactly 30 calls reached the backend');
is(hash_total('grpc_guard:{limit}:b2narrow:3600s:127.0.0.1'), 30,
   'the narrow limit counted 30');
is(hash_total('grpc_guard:{limit}:b2wide:3600s:127.0.0.1'), 30,
   'the wide limit counted only the 30 admitted, none of the refused');
# fewer script calls than admitted calls: some batch admitted several
cmp_ok($b->{scripts}, '<', 30,
       "fewer script calls than admitted calls ($b->{scripts})");
my ($r) = lcalls({});
check_refusal($r, 'b2narrow', 30, 3600, 'a call after the burst');
--- no_error_log
[error]



=== TEST 3: one call at a time: each goes at once, one script call each
--- http_config
    grpc_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT timeout=5s;
--- config
    location / {
        grpc_guard_limit rate=5r/h key=$remote_addr name=b3;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- init
my $sha0 = redis_calls('evalsha');
my @c = lcodes(7);
is("@c", '0 0 0 0 0 8 8', 'five pass, then refused');
# the 7th is refused from the blocked-until cache, without Redis
is(redis_calls('evalsha') - $sha0, 6, 'one script call per call');
is(hash_total('grpc_guard:{limit}:b3:3600s:127.0.0.1'), 5, 'five counted');
--- no_error_log
[error]
