# Limit keys in Redis: a key value longer than 256 bytes is named by its
# SHA-1 ("#" and 40 hex digits); a raw value is stored with "%", "#" and
# ":" escaped, so no raw value can name the counter of a hashed one (one
# caller could otherwise spend another caller's quota).

use Test::Nginx::Socket::Grpc 'no_plan';
use FindBin;
use Digest::SHA qw(sha1_hex);

require "$FindBin::Bin/data/limit.pl";

$ENV{TEST_NGINX_REDIS_PORT} = start_redis();

sub tenant {
    my ($v) = @_;
    return { metadata => [['x-tenant', $v]] };
}

sub limit_keys {
    my ($name) = @_;
    my $out = redis_cmd(redis_port(), 'KEYS', "grpc_guard:{limit}:$name:*");
    return join ' ', sort grep { length } split /\n/, $out;
}

no_shuffle();
no_root_location();
run_tests();

__DATA__

=== TEST 1: a short value equal to the hashed form of a long one has its own count
--- http_config
    grpc_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT timeout=2s;
--- config
    location / {
        grpc_guard_limit rate=2r/h key=$http_x_tenant name=k1;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- init
my $long = 'a' x 300;
my $hashed = '#' . sha1_hex($long);
my @r = lcalls(tenant($long), tenant($long), tenant($long));
is(join(' ', map { $_->{code} } @r), '0 0 8',
   'the long value: 2 calls pass, the 3rd is over');
@r = lcalls(tenant($hashed), tenant($hashed), tenant($hashed));
is(join(' ', map { $_->{code} } @r), '0 0 8',
   'the value "#<sha1 of the long one>" has a quota of its own');
my $p = 'grpc_guard:{limit}:k1:3600s:';
is(limit_keys('k1'), "$p#" . sha1_hex($long) . " $p%23" . sha1_hex($long),
   'two counters: the hashed one and the escaped raw one');
my $h = int(time() / 3600);
is(redis_cmd(redis_port(), 'HGET', "$p#" . sha1_hex($long), $h), 2,
   'the long value counted 2 calls');
is(redis_cmd(redis_port(), 'HGET', "$p%23" . sha1_hex($long), $h), 2,
   'the short value counted 2 calls');
--- no_error_log
[error]



=== TEST 2: the short value first, then the long one
--- http_config
    grpc_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT timeout=2s;
--- config
    location / {
        grpc_guard_limit rate=1r/h key=$http_x_tenant name=k2;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- init
my $long = 'b' x 257;
my $hashed = '#' . sha1_hex($long);
my @r = lcalls(tenant($hashed), tenant($hashed), tenant($long),
               tenant($long));
is(join(' ', map { $_->{code} } @r), '0 8 0 8',
   'the short value spends its own quota, not the long one\'s');
--- no_error_log
[error]



=== TEST 3: raw values are stored with "%", "#" and ":" escaped
--- http_config
    grpc_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT timeout=2s;
--- config
    location / {
        grpc_guard_limit rate=5r/h key=$http_x_tenant name=k3;
        grpc_guard_limit rate=5r/h key=$http_x_tenant name=k3m per=method;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- init
my @r = lcalls(tenant('a#b%c:d'), tenant('a%23b%25c%3ad'));
is(join(' ', map { $_->{code} } @r), '0 0', 'both pass');
my $p = 'grpc_guard:{limit}:k3:3600s:';
is(limit_keys('k3'), "${p}a%23b%25c%3ad ${p}a%2523b%2525c%253ad",
   'every value has its own counter, escaped');
my $m = 'grpc_guard:{limit}:k3m:3600s:';
is(limit_keys('k3m'),
   "${m}a%23b%25c%3ad:/test.Limit/Call"
   . " ${m}a%2523b%2525c%253ad:/test.Limit/Call",
   'per=method: the method after the escaped value and a ":"');
--- no_error_log
[error]



=== TEST 4: a long value with per=method is hashed with the method
--- http_config
    grpc_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT timeout=2s;
--- config
    location / {
        grpc_guard_limit rate=1r/h key=$http_x_tenant name=k4 per=method;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- init
my $long = 'c' x 300;
my @r = lcalls({ %{ tenant($long) }, method => '/k4.A/Get' },
               { %{ tenant($long) }, method => '/k4.A/Get' },
               { %{ tenant($long) }, method => '/k4.B/Get' });
is(join(' ', map { $_->{code} } @r), '0 8 0', 'each method has its own count');
my $p = 'grpc_guard:{limit}:k4:3600s:#';
is(limit_keys('k4'),
   join(' ', sort map { $p . sha1_hex("$long:$_") } '/k4.A/Get', '/k4.B/Get'),
   'the hashed keys: SHA-1 of the value, ":" and the method');
--- no_error_log
[error]



=== TEST 5: a limit name with ":" fails nginx -t (it would split the key)
--- http_config
    grpc_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT timeout=2s;
--- config
    location / {
        grpc_guard_limit rate=1r/h key=$remote_addr name=a:1s:b;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- must_die
--- error_log eval
qr/invalid limit name "name=a:1s:b" in .*nginx\.conf:\d+/
