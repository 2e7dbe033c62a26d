# Redis that wants credentials: requirepass (password= and password_file=),
# an ACL user (user=), a database (db=); wrong credentials make Redis
# unavailable, and the failure mode applies.  Redis on a unix socket.

use Test::Nginx::Socket::Grpc 'no_plan';
use FindBin;

require "$FindBin::Bin/data/limit.pl";

$ENV{TEST_NGINX_REDIS_PORT} = start_redis(password => 's3cret pass');
$ENV{TEST_NGINX_ACL_REDIS_PORT} = start_redis(args => [
    '--user', 'limiter', 'on', '>acl-pw', '~*', '+@all',
    '--user', 'default', 'off']);
$ENV{TEST_NGINX_REDIS_SOCK} = work_dir() . '/redis.sock';
$ENV{TEST_NGINX_UNIX_REDIS_PORT} = start_redis(args => [
    '--unixsocket', $ENV{TEST_NGINX_REDIS_SOCK}, '--unixsocketperm', '700']);

no_shuffle();
no_root_location();
run_tests();

__DATA__

=== TEST 1: requirepass with password=
--- http_config
    grpc_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT "password=s3cret pass"
                     timeout=2s;
--- config
    location / {
        grpc_guard_limit rate=2r/h key=$remote_addr name=a1;
        grpc_guard_limit_failure closed;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- init
my @r = lcalls(({}) x 3);
is(join(' ', map { $_->{code} } @r[0, 1]), '0 0', 'two calls pass');
check_refusal($r[2], 'a1', 2, 3600, 'the 3rd call');
is(redis_cmd(redis_port(), '-a', 's3cret pass', '--no-auth-warning',
             'HGET', 'grpc_guard:{limit}:a1:3600s:127.0.0.1',
             int(time() / 3600)),
   2, 'counted in Redis');
--- no_error_log
[error]



=== TEST 2: requirepass with password_file= (the first line)
--- http_config
    grpc_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT
                     password_file=$TEST_NGINX_HTML_DIR/redis.pass timeout=2s;
--- config
    location / {
        grpc_guard_limit rate=1r/h key=$remote_addr name=a2;
        grpc_guard_limit_failure closed;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- user_files
>>> redis.pass
s3cret pass
second line, ignored
--- init
my @codes = lcodes(2);
is("@codes", '0 8', 'limited through Redis');
--- no_error_log
[error]



=== TEST 3: a wrong password: AUTH refused, Redis unavailable, failure closed gives 14
--- http_config
    grpc_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT password=pw-not-in-logs
                     timeout=2s;
--- config
    location / {
        grpc_guard_limit rate=10r/h key=$remote_addr name=a3;
        grpc_guard_limit_failure closed;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- init
my @codes = lcodes(2);
is("@codes", '14 14', 'refused with 14');
--- error_log eval
[qr/\[error\] .*redis refused AUTH: WRONGPASS/,
 qr/grpc guard: redis 127\.0\.0\.1:\d+ is unavailable/]
--- no_error_log
pw-not-in-logs



=== TEST 4: no password where Redis wants one: the script fails with NOAUTH
--- http_config
    grpc_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT timeout=2s;
--- config
    location / {
        grpc_guard_limit rate=10r/h key=$remote_addr name=a4;
        grpc_guard_limit_failure closed;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- init
my @codes = lcodes(1);
is("@codes", '14', 'refused with 14');
--- error_log eval
qr/redis refused SCRIPT LOAD: NOAUTH/



=== TEST 5: an ACL user with user= and password=, and db=
--- http_config
    grpc_guard_redis 127.0.0.1:$TEST_NGINX_ACL_REDIS_PORT user=limiter
                     password=acl-pw db=3 timeout=2s;
--- config
    location / {
        grpc_guard_limit rate=2r/h key=$remote_addr name=a5;
        grpc_guard_limit_failure closed;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- init
my @codes = lcodes(3);
is("@codes", '0 0 8', 'limited through Redis as the ACL user');
my @auth = ('--user', 'limiter', '--pass', 'acl-pw', '--no-auth-warning');
is(redis_cmd($ENV{TEST_NGINX_ACL_REDIS_PORT}, @auth, '-n', 3, 'EXISTS',
             'grpc_guard:{limit}:a5:3600s:127.0.0.1'),
   1, 'the key is in database 3');
is(redis_cmd($ENV{TEST_NGINX_ACL_REDIS_PORT}, @auth, '-n', 0, 'EXISTS',
             'grpc_guard:{limit}:a5:3600s:127.0.0.1'),
   0, 'not in database 0');
--- no_error_log
[error]



=== TEST 6: the ACL user with a wrong password
--- http_config
    grpc_guard_redis 127.0.0.1:$TEST_NGINX_ACL_REDIS_PORT user=limiter
                     password=nope timeout=2s;
--- config
    location / {
        grpc_guard_limit rate=2r/h key=$remote_addr name=a6;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- init
my @codes = lcodes(3);
is("@codes", '0 0 0', 'failure open: calls pass');
--- error_log eval
qr/redis refused AUTH: WRONGPASS/



=== TEST 7: password= and password_file= together
--- http_config
    grpc_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT password=a
                     password_file=/nonexistent;
--- must_die
--- error_log
takes either "password=" or "password_file="



=== TEST 8: user= without a password
--- http_config
    grpc_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT user=limiter;
--- must_die
--- error_log
has "user=" without a password



=== TEST 9: a missing password file
--- http_config
    grpc_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT
                     password_file=$TEST_NGINX_HTML_DIR/missing.pass;
--- must_die
--- error_log
missing.pass" failed



=== TEST 10: Redis on a unix socket
--- http_config
    grpc_guard_redis unix:$TEST_NGINX_REDIS_SOCK timeout=2s keepalive=2;
--- config
    location / {
        grpc_guard_limit rate=2r/h key=$remote_addr name=a10;
        grpc_guard_limit_failure closed;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- init
my @codes = lcodes(3);
is("@codes", '0 0 8', 'limited through Redis on the socket');
is(redis_cmd($ENV{TEST_NGINX_UNIX_REDIS_PORT}, 'EXISTS',
             'grpc_guard:{limit}:a10:3600s:127.0.0.1'),
   1, 'the key is there');
--- no_error_log
[error]
