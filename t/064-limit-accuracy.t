# Accuracy: at twice the limit for 10 seconds, the calls admitted in every
# whole window are within 10% of the limit.  The counts are read from the
# limit's hash in Redis while the load runs (one field per window).

use Test::Nginx::Socket::Grpc 'no_plan';
use FindBin;

require "$FindBin::Bin/data/limit.pl";

$ENV{TEST_NGINX_REDIS_PORT} = start_redis();

no_shuffle();
no_root_location();
run_tests();

__DATA__

=== TEST 1: 40 calls a second against 20r/s for 10 s: 18 to 22 admitted per window
--- http_config
    grpc_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT timeout=1s;
--- config
    location / {
        grpc_guard_limit rate=20r/s key=$remote_addr name=acc;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- init
my $calls0 = backend_calls();
my $key = 'grpc_guard:{limit}:acc:1s:127.0.0.1';
my $load = start_load(rate => 40, duration => 10);
my %count;
my $poll = sub {
    # a window's field lives until the first call two windows later
    my %h = split /\n/, redis_cmd(redis_port(), 'HGETALL', $key);
    for my $w (keys %h) {
        $count{$w} = $h{$w} if !defined $count{$w} || $h{$w} > $count{$w};
    }
};
my $deadline = time + 20;
while (time < $deadline && waitpid($load->{pid}, POSIX::WNOHANG()) == 0) {
    $poll->();
    sleep 0.25;
}
my $s = finish_load($load);
$poll->();
is($s->{errors}, 0, 'every call got a status') or diag explain $s;
is(($s->{codes}{0} // 0) + ($s->{codes}{8} // 0), $s->{sent},
   'every call got 0 or 8');
my @w = sort { $a <=> $b } keys %count;
# the first and the last window are only partly under load
my @whole = @w[1 .. $#w - 1];
cmp_ok(scalar @whole, '>=', 8, 'at least 8 whole windows');
my @bad = grep { $count{$_} < 18 || $count{$_} > 22 } @whole;
is(scalar @bad, 0, 'admitted per window: '
   . join(' ', map { $count{$_} } @w));
my $admitted = 0;
$admitted += $count{$_} for @w;
is(backend_calls() - $calls0, $admitted,
   'the backend saw the calls Redis counted');
is($s->{codes}{0} // 0, $admitted, 'and the client got 0 for those');
--- no_error_log
[error]
