# The Redis sliding-window limiter: refusals with their headers, several
# limits on one location, limits before authentication, public methods,
# dry run, non-gRPC requests, $grpc_guard_limit_remaining, configuration
# errors.  Every block uses its own limit names, so counts never leak from
# one block to another.

use Test::Nginx::Socket::Grpc 'no_plan';
use FindBin;

require "$FindBin::Bin/data/limit.pl";

$ENV{TEST_NGINX_REDIS_PORT} = start_redis();

no_shuffle();
no_root_location();
run_tests();

__DATA__

=== TEST 1: the 4th call of 3r/h gets 8 with its headers; refused calls are not counted
--- http_config
    grpc_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT timeout=2s;
--- config
    location / {
        grpc_guard_limit rate=3r/h key=$remote_addr name=t1;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- init
my $calls0 = backend_calls();
my @r = lcalls({}, {}, {}, {});
is(join(' ', map { $_->{code} } @r[0 .. 2]), "0 0 0", "three calls pass");
my $ms = check_refusal($r[3], 't1', 3, 3600, '4th call');
cmp_ok($ms, '<=', 2 * 3600 * 1000, 'the wait is within two windows');
# the hash of the key holds 3 calls, not 4: the refusal was not counted
my $h = redis_cmd(redis_port(), 'HGETALL', 'grpc_guard:{limit}:t1:3600s:127.0.0.1');
my (undef, $count) = split /\n/, $h;
is($count, 3, 'refused calls are not counted in Redis');
my $pttl = redis_cmd(redis_port(), 'PTTL', 'grpc_guard:{limit}:t1:3600s:127.0.0.1');
ok($pttl > 7_000_000 && $pttl <= 7_200_000,
   "the key expires after two windows ($pttl ms)");
is(backend_calls() - $calls0, 3, 'calls that reached the backend');
--- no_error_log
[error]
[warn]



=== TEST 2: over 2r/s, calls pass again after grpc-retry-pushback-ms
--- http_config
    grpc_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT timeout=2s;
--- config
    location / {
        grpc_guard_limit rate=2r/s key=$remote_addr name=t2;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- init
my $ms;
for my $try (1 .. 3) {
    my @r = lcalls({}, {}, {});
    # the calls may straddle a window boundary: then all three pass
    next if $r[2]{code} == 0;
    $ms = check_refusal($r[2], 't2', 2, 1, 'over 2r/s');
    last;
}
ok(defined $ms, 'a call over the limit was refused');
cmp_ok($ms // 0, '<=', 2000, 'the wait is at most two windows');
sleep(($ms // 0) / 1000 + 0.05);
is(lcall()->{code}, 0, 'a call after the wait passes');
--- no_error_log
[error]



=== TEST 3: several limits on one location: all counted atomically, the violated one is named
--- http_config
    grpc_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT timeout=2s;
--- config
    location / {
        grpc_guard_limit rate=5r/h key=$remote_addr name=t3ip;
        grpc_guard_limit rate=2r/h key=$http_x_user name=t3user;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- init
my $calls0 = backend_calls();
my $before = redis_calls('evalsha');
my @u1 = lcalls(({ metadata => [['x-user', 'u1']] }) x 3);
is(join(' ', map { $_->{code} } @u1), '0 0 8', 'u1: 2 pass, the 3rd is over t3user');
check_refusal($u1[2], 't3user', 2, 3600, 'u1 3rd');
my @u2 = lcalls(({ metadata => [['x-user', 'u2']] }) x 2);
is(join(' ', map { $_->{code} } @u2), '0 0', 'u2: 2 pass (t3ip at 4)');
# the refused call of u1 was counted in neither limit: t3ip is at 4 of 5
my @u3 = lcalls(({ metadata => [['x-user', 'u3']] }) x 2, {});
is($u3[0]{code}, 0, 'u3: the 5th call of the address passes');
check_refusal($u3[1], 't3ip', 5, 3600, 'u3 2nd, 6th of the address');
# a call without x-user has an empty key: only t3ip applies (and refuses)
check_refusal($u3[2], 't3ip', 5, 3600, 'no x-user');
is(redis_calls('evalsha') - $before, 7,
   'one EVALSHA per call; the last refusal came from the blocked cache');
is(backend_calls() - $calls0, 5, 'calls that reached the backend');
--- no_error_log
[error]



=== TEST 4: a limit keyed on the address runs before authentication and counts refused calls
--- http_config
    grpc_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT timeout=2s;
--- config
    location / {
        grpc_guard_limit rate=2r/h key=$remote_addr name=t4;
        auth_basic "limit";
        auth_basic_user_file $TEST_NGINX_HTML_DIR/htpasswd;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- user_files
>>> htpasswd
alice:{PLAIN}secret
--- init
my $calls0 = backend_calls();
my @r = lcalls({}, {}, {},
    { metadata => [['authorization', 'Basic YWxpY2U6c2VjcmV0']] });
is("$r[0]{code} $r[1]{code}", "16 16",
   'calls without credentials: 16 from auth_basic');
check_refusal($r[2], 't4', 2, 3600, '3rd call without credentials');
check_refusal($r[3], 't4', 2, 3600, 'with credentials, over the limit');
is(backend_calls() - $calls0, 0, 'calls that reached the backend');



=== TEST 5: public methods skip limits
--- http_config
    grpc_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT timeout=2s;
--- config
    location / {
        grpc_guard_public /grpc.health.v1.Health/*;
        grpc_guard_limit rate=1r/h key=$remote_addr name=t5;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- init
my $calls0 = backend_calls();
my $before = redis_calls('evalsha');
my @codes = lcodes(3, method => '/grpc.health.v1.Health/Check');
is("@codes", "0 0 0", 'health checks pass');
is(redis_calls('evalsha'), $before, 'and ask nothing of Redis');
@codes = lcodes(2);
is("@codes", "0 8", 'other methods are limited');
is(backend_calls() - $calls0, 4, 'calls that reached the backend');



=== TEST 6: dry run counts and reports but never refuses
--- http_config
    grpc_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT timeout=2s;
    log_format lim '$grpc_guard_grpc_status $grpc_guard_decision '
                   '$grpc_guard_reason $grpc_guard_limit_remaining';
--- config
    location / {
        grpc_guard_limit rate=2r/h key=$remote_addr name=t6;
        grpc_guard_limit_dry_run on;
        access_log logs/lim.log lim;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- init
my $calls0 = backend_calls();
my @r = lcalls(({}) x 5);
is(join(' ', map { $_->{code} } @r), "0 0 0 0 0", 'every call passes');
ok(!defined $r[4]{md}{'retry-after'}, 'no retry-after on a passed call');
sleep 0.1;
is(join('|', log_lines('lim.log')),
   '0 allow - 1|0 allow - 0|0 dry_run_deny rate_limited 0|'
   . '0 dry_run_deny rate_limited 0|0 dry_run_deny rate_limited 0',
   'decisions, reasons and remaining calls in the access log');
is(backend_calls() - $calls0, 5, 'calls that reached the backend');
--- error_log
grpc guard: dry run, limit "t6" would refuse "/test.Limit/Call"



=== TEST 7: a non-gRPC request over the limit gets 429 with Retry-After
--- http_config
    grpc_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT timeout=2s;
--- config
    location / {
        grpc_guard_limit rate=1r/h key=$remote_addr name=t7;
        root $TEST_NGINX_HTML_DIR;
    }
--- user_files
>>> test.Limit/Call
ok
--- request eval
["GET /test.Limit/Call", "GET /test.Limit/Call"]
--- error_code eval
[200, 429]
--- response_headers eval
["!Retry-After", "!grpc-retry-pushback-ms\nRateLimit-Policy: \"t7\";q=1;w=3600"]
--- response_headers_like eval
["", "Retry-After: \\d+\nRateLimit: \"t7\";r=0;t=\\d+"]



=== TEST 8: per=method counts each method apart; remaining calls in the access log
--- http_config
    grpc_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT timeout=2s;
    log_format lim '$grpc_guard_method $grpc_guard_limit_remaining';
--- config
    location / {
        grpc_guard_limit rate=3r/h key=$remote_addr name=t8 per=method;
        access_log logs/lim.log lim;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- init
my @a = lcodes(4, method => '/t8.A/Get');
my @b = lcodes(2, method => '/t8.B/Get');
is("@a / @b", "0 0 0 8 / 0 0", 'each method has its own count');
like(redis_cmd(redis_port(), 'EXISTS',
               'grpc_guard:{limit}:t8:3600s:127.0.0.1:/t8.B/Get'),
     qr/^1$/, 'the method is part of the key');
sleep 0.1;
is(join('|', log_lines('lim.log')),
   '/t8.A/Get 2|/t8.A/Get 1|/t8.A/Get 0|/t8.A/Get 0|/t8.B/Get 2|/t8.B/Get 1',
   '$grpc_guard_limit_remaining');



=== TEST 9: the limit script is loaded again after SCRIPT FLUSH (NOSCRIPT, one EVAL)
--- http_config
    grpc_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT timeout=2s;
--- config
    location / {
        grpc_guard_limit rate=10r/h key=$remote_addr name=t9;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- init
is(lcall()->{code}, 0, 'a first call');
redis_cmd(redis_port(), 'SCRIPT', 'FLUSH');
my $eval = redis_calls('eval');
is(lcall()->{code}, 0, 'a call after SCRIPT FLUSH passes');
is(redis_calls('eval') - $eval, 1, 'it was retried with EVAL once');
is(lcall()->{code}, 0, 'and the next call too');
is(redis_calls('eval') - $eval, 1, 'with EVALSHA again: EVAL cached the script');
--- error_log
redis lost the limiter script, sending EVAL
--- no_error_log
[error]



=== TEST 10: grpc_guard_limit without grpc_guard_redis
--- config
    location / {
        grpc_guard_limit rate=1r/s key=$remote_addr;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- must_die
--- error_log
"grpc_guard_limit" needs "grpc_guard_redis"



=== TEST 11: invalid rate
--- http_config
    grpc_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
--- config
    location / {
        grpc_guard_limit rate=10r/d key=$remote_addr;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- must_die
--- error_log
invalid rate "rate=10r/d"



=== TEST 12: two limits with one name and window
--- http_config
    grpc_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
--- config
    location / {
        grpc_guard_limit rate=10r/s key=$remote_addr;
        grpc_guard_limit rate=20r/s key=$remote_addr;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- must_die
--- error_log
limit "$remote_addr" is defined twice with the same window



=== TEST 13: bad grpc_guard_redis parameter
--- http_config
    grpc_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT keepalive=0;
--- config
    location / {
        grpc_guard_limit rate=10r/s;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- must_die
--- error_log
"keepalive=" must be 1 to 64



=== TEST 14: missing key
--- http_config
    grpc_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
--- config
    location / {
        grpc_guard_limit rate=10r/s per=service;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- must_die
--- error_log
"grpc_guard_limit" directive needs "key="



=== TEST 15: grpc_guard off in a location turns inherited limits off
--- http_config
    grpc_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT timeout=2s;
    grpc_guard_limit rate=1r/h key=$remote_addr name=t15;
--- config
    location /off. {
        grpc_guard off;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
    location /nolimit. {
        grpc_guard_limit off;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
    location / {
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- init
my @off = lcodes(2, method => '/off.Svc/Call');
my @nolimit = lcodes(2, method => '/nolimit.Svc/Call');
my @lim = lcodes(2);
is("@off / @nolimit / @lim", "0 0 / 0 0 / 0 8",
   'an http-level limit applies where it is not turned off');
