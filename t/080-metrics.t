# Prometheus metrics (grpc_guard_metrics, grpc_guard_metrics_zone): the
# counters match the calls made, exactly, summed over two workers and kept
# across a reload; the output passes `promtool check metrics`; a real
# Prometheus server scrapes it and answers queries with the same numbers;
# random method names cannot grow the number of series; JWT cache, audit
# and limiter counters; allow/deny protect the page; configuration errors.
#
# Blocks run in order; some reuse the nginx of the block before.

use Test::Nginx::Socket::Grpc 'no_plan';
use Test::Nginx::Jwt qw(jwt_keys tokens);
use Test::Nginx::Proc qw(run_cmd spawn stop_process read_file write_file);
use Digest::SHA qw(sha256_hex);
use JSON::PP ();
use Time::HiRes ();
use FindBin;

$ENV{TEST_NGINX_REDIS_PORT} = start_redis();
$ENV{TEST_NGINX_METRICS_PORT} = free_port();
$ENV{TEST_NGINX_KEY_SHA} = sha256_hex('metrics-test-key');
$ENV{TEST_NGINX_MANY_SERVICES} = join ' ',
    (map { sprintf 'pkg.Service%03d%s', $_, 'x' x 200 } 1 .. 200),
    'zzz.Last' . 'x' x 200;

our $JwtDir = jwt_keys();

tokens(RS256 => { key => 'rsa', kid => 'rsa1' });

# gRPC calls, one after the other, each on a connection of its own unless
# it says same_connection; returns the results
sub mcalls {
    my (@calls) = @_;
    my @specs;
    for my $o (@calls) {
        my $s = {
            method => $o->{method},
            port => $ENV{TEST_NGINX_SERVER_PORT} + 0,
            host => '127.0.0.1',
            metadata => [map { [split /: /, $_, 2] } @{ $o->{metadata} || [] }],
            type => 'unary',
            messages => 1,
            payload => 'ping',
            overall_timeout => 10,
        };
        $s->{timeout} = $o->{timeout} + 0 if defined $o->{timeout};
        $s->{same_connection} = JSON::PP::true if $o->{same_connection};
        push @specs, $s;
    }
    my ($res, $err) = Test::Nginx::Grpc::run_client(\@specs,
                                                    30 + @specs / 10);
    die "grpc client: $err" if $err;
    return @$res;
}

# the page, over HTTP/1.1 on the metrics server: (status, content type,
# body)
sub metrics_page {
    my ($path) = @_;
    $path //= '/metrics';
    my $r = run_cmd(['curl', '-s', '-o', '-', '-w',
                     '\n%{http_code} %{content_type}',
                     "http://127.0.0.1:$ENV{TEST_NGINX_METRICS_PORT}$path"],
                    timeout => 10);
    my ($body, $tail) = $r->{out} =~ /\A(.*)\n([^\n]*)\z/s
        or return (0, '', '');
    my ($code, $type) = split / /, $tail, 2;
    return ($code, $type // '', $body);
}

sub metrics_text {
    my ($code, $type, $body) = metrics_page();
    die "metrics page: $code" unless $code == 200;
    return $body;
}

# { 'name{labels}' => value } of every sample
sub samples {
    my ($text) = @_;
    my %s;
    for my $line (split /\n/, $text) {
        next if $line =~ /^#/ || $line !~ /\S/;
        my ($k, $v) = $line =~ /^(\S+(?:\{.*\})?) (\S+)$/
            or die "bad sample line: $line";
        $s{$k} = $v;
    }
    return \%s;
}

sub req {
    my ($service, $decision, $reason, $status, $server) = @_;
    $server //= 'localhost';
    return "grpc_guard_requests_total{server=\"$server\","
           . "service=\"$service\",decision=\"$decision\","
           . "reason=\"$reason\",grpc_status=\"$status\"}";
}

# nginx -s reload; waits (bounded) until N new workers have started
sub reload {
    my ($workers) = @_;
    my $root = $ENV{TEST_NGINX_SERVER_ROOT};
    my $pid = read_file("$root/logs/nginx.pid") // die "nginx.pid";
    chomp $pid;
    my $log = "$root/logs/error.log";
    my $from = -s $log || 0;
    kill 'HUP', $pid or die "kill HUP $pid: $!";
    my $started = 0;
    for (1 .. 300) {
        Time::HiRes::sleep(0.1);
        my $all = read_file($log) // '';
        my $new = substr($all, $from);
        $started = () = $new =~ /start worker process/g;
        last if $started >= $workers;
    }
    Time::HiRes::sleep(0.3);
    return $started;
}

our %Api = (metadata => ['x-api-key: metrics-test-key'], timeout => 5);

# the calls of the first block: 0 (x5), 16 (x3), 7 (x2), 8 (x2 of 4
# limited calls), 12 (x2), 3 (x2)
sub known_calls {
    my ($tag) = @_;
    my @calls = (
        (map { +{ method => '/test.Svc/GetA', %Api } } 1 .. 5),
        (map { +{ method => '/test.Svc/GetA', timeout => 5 } } 1 .. 3),
        (map { +{ method => '/test.Svc/Delete', %Api } } 1 .. 2),
        (map { +{ method => '/test.Svc/GetLimited', timeout => 5,
                  metadata => ['x-api-key: metrics-test-key',
                               "x-limit: $tag"] } } 1 .. 4),
        (map { +{ method => '/test.Svc/Get/../GetA', %Api } } 1 .. 2),
        (map { +{ method => '/test.Svc/GetA',
                  metadata => ['x-api-key: metrics-test-key'] } } 1 .. 2),
    );
    my @r = mcalls(@calls);
    return join ' ', map { $_->{code} } @r;
}

our %Expected = (
    req('test.Svc', 'allow', 'none', 0) => 7,
    req('test.Svc', 'deny', 'api_key_missing', 16) => 3,
    req('test.Svc', 'deny', 'acl_default_deny', 7) => 2,
    req('test.Svc', 'deny', 'rate_limited', 8) => 2,
    req('other', 'deny', 'path_not_canonical', 12) => 2,
    req('test.Svc', 'deny', 'deadline_missing', 3) => 2,
    'grpc_guard_auth_total{method="api_key",result="success"}' => 9,
    'grpc_guard_auth_total{method="api_key",result="missing"}' => 3,
    'grpc_guard_auth_total{method="api_key",result="failure"}' => 0,
    'grpc_guard_auth_total{method="jwt",result="success"}' => 0,
    'grpc_guard_limit_total{limit="m1",result="passed"}' => 2,
    'grpc_guard_limit_total{limit="m1",result="limited"}' => 2,
    'grpc_guard_limit_total{limit="m1",result="unavailable"}' => 0,
    "grpc_guard_redis_up{node=\"127.0.0.1:$ENV{TEST_NGINX_REDIS_PORT}\"}"
        => 1,
    "grpc_guard_redis_circuit_open{node=\"127.0.0.1:"
        . "$ENV{TEST_NGINX_REDIS_PORT}\"}" => 0,
    # two passed and the first refusal went to Redis; the second refusal
    # was answered by the blocked-until cache
    "grpc_guard_redis_latency_seconds_count{node=\"127.0.0.1:"
        . "$ENV{TEST_NGINX_REDIS_PORT}\"}" => 3,
    "grpc_guard_redis_latency_seconds_bucket{node=\"127.0.0.1:"
        . "$ENV{TEST_NGINX_REDIS_PORT}\",le=\"+Inf\"}" => 3,
);

sub check_expected {
    my ($s, $what, $extra) = @_;
    my %want = (%Expected, %{ $extra || {} });
    for my $k (sort keys %want) {
        is($s->{$k}, $want{$k}, "$what: $k");
    }
    my @req = grep { /^grpc_guard_requests_total\{/ } keys %$s;
    is(scalar @req, 6, "$what: six requests_total series")
        or diag(join "\n", sort @req);
}

# Under valgrind nginx runs with "master_process off" and one process:
# no reload, no second worker; blocks 2-4 use the nginx of block 1
add_block_preprocessor(sub {
    my $block = shift;
    return unless $ENV{TEST_NGINX_USE_VALGRIND}
                  && $block->name =~ /^TEST [1-4]:/;
    diag($block->name . ": skipped under valgrind (master_process off)");
    $block->set_value('SKIP', 1);
});

master_on();
workers(2);
no_shuffle();
no_root_location();
run_tests();

__DATA__

=== TEST 1: two workers: the counters match the calls made, exactly, and survive a reload
--- http_config
    grpc_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT timeout=2s;
    grpc_guard_metrics_zone 1m;
    grpc_guard_require_tls off;

    log_format metrics_pid $pid;

    server {
        listen 127.0.0.1:$TEST_NGINX_METRICS_PORT;

        location = /metrics {
            grpc_guard_metrics;
            allow 127.0.0.1;
            deny all;
        }

        location = /denied {
            grpc_guard_metrics;
            deny all;
        }
    }
--- config
    access_log logs/pids.log metrics_pid;

    location /test.Svc/ {
        grpc_guard_auth api_key;
        grpc_guard_api_key_file $TEST_NGINX_HTML_DIR/keys.txt;
        grpc_guard_allow /test.Svc/Get*;
        grpc_guard_deadline required;
        grpc_guard_limit rate=2r/h key=$http_x_limit name=m1;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }

    location / {
        grpc_guard on;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- user_files
>>> keys.txt
sha256:$TEST_NGINX_KEY_SHA metrics-client
--- init
my $codes = known_calls('t1-' . $$ . '-' . time);
is($codes, '0 0 0 0 0 16 16 16 7 7 0 0 8 8 12 12 3 3',
   'the calls got what they should');

my ($code, $type, $body) = metrics_page();
is($code, 200, 'the page answers 200');
is($type, 'text/plain; version=0.0.4; charset=utf-8',
   'the content type of the text format 0.0.4');
check_expected(samples($body), 'two workers');

my %pids = map { $_ => 1 } grep { /\d/ }
           split /\n/, read_file("$ENV{TEST_NGINX_SERVER_ROOT}/logs/pids.log");
note(scalar(keys %pids) . " worker(s) served the calls");

cmp_ok(reload(2), '>=', 2, 'two new workers after the reload');
check_expected(samples(metrics_text()), 'after the reload');

my @r = mcalls({ method => '/test.Svc/GetB', %Api });
is($r[0]{code}, 0, 'a call after the reload');
check_expected(samples(metrics_text()), 'one more call',
               { req('test.Svc', 'allow', 'none', 0) => 8,
                 'grpc_guard_auth_total{method="api_key",result="success"}'
                     => 10 });

my ($dcode) = metrics_page('/denied');
is($dcode, 403, 'deny all protects the page');
--- error_log
access forbidden by rule
--- no_error_log
[alert]
[crit]
[emerg]
grpc guard: the



=== TEST 2: promtool check metrics accepts the page
--- init
my $text = metrics_text();
write_file("$ENV{TEST_NGINX_SERVER_ROOT}/logs/metrics.txt", $text);
like($text, qr/^# TYPE grpc_guard_redis_latency_seconds histogram$/m,
     'the page has the histogram');
my $r = run_cmd(['promtool', 'check', 'metrics'], stdin => $text,
                timeout => 30);
is($r->{exit}, 0, 'promtool check metrics: exit 0')
    or diag("$r->{out}$r->{err}");
is("$r->{out}$r->{err}", '', 'promtool check metrics: nothing to say');
--- no_error_log
[error]



=== TEST 3: a Prometheus server scrapes the page and its queries give the counts
--- init
# prometheus keeps its files out of the server root, which a harness
# may clean between blocks
my $root = work_dir();
my $port = free_port();
my $conf = "$root/prometheus.yml";
write_file($conf, <<"YML");
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: grpc_guard
    scrape_interval: 1s
    metrics_path: /metrics
    static_configs:
      - targets: ['127.0.0.1:$ENV{TEST_NGINX_METRICS_PORT}']
YML
my $pid = spawn(['prometheus', "--config.file=$conf",
                 "--storage.tsdb.path=$root/prometheus-data",
                 "--web.listen-address=127.0.0.1:$port"],
                stdout => "$root/prometheus.out",
                stderr => "$root/prometheus.err");

sub query {
    my ($port, $q) = @_;
    my $r = run_cmd(['curl', '-s', '-G',
                     "http://127.0.0.1:$port/api/v1/query",
                     '--data-urlencode', "query=$q"], timeout => 10);
    my $j = eval { JSON::PP::decode_json($r->{out}) } or return undef;
    return undef unless $j->{status} eq 'success';
    my $res = $j->{data}{result};
    return undef unless @$res;
    return $res->[0]{value}[1];
}

my %q = (
    'sum(grpc_guard_requests_total{reason="rate_limited"})' => 2,
    'sum(grpc_guard_requests_total{service="test.Svc",grpc_status="0"})'
        => 8,
    'sum by (reason) (grpc_guard_requests_total{decision="deny",'
        . 'reason="api_key_missing"})' => 3,
    'up{job="grpc_guard"}' => 1,
    'grpc_guard_limit_total{limit="m1",result="limited"}' => 2,
    'grpc_guard_redis_up' => 1,
);

my %got;
for (1 .. 60) {
    for my $k (keys %q) {
        $got{$k} //= query($port, $k);
    }
    last unless grep { !defined $got{$_} } keys %q;
    Time::HiRes::sleep(0.5);
}
for my $k (sort keys %q) {
    is($got{$k}, $q{$k}, "prometheus: $k");
}
ok(stop_process($pid, signal => 'TERM', wait => 10, child => 1),
   'prometheus stopped');
--- no_error_log
[error]



=== TEST 4: 500 calls with random method names leave the number of series bounded
--- init
my $before = samples(metrics_text());
my @calls;
for my $i (1 .. 250) {
    my $svc = sprintf 'rand%08x.S%d', int(rand(2**32)), $i;
    push @calls, { method => "/test.Svc/Get" . int(rand(2**32)), %Api,
                   $i > 1 ? (same_connection => 1) : () };
    push @calls, { method => "/$svc/Call", timeout => 5,
                   same_connection => 1 };
}
my @r = mcalls(@calls);
is(scalar(grep { $_->{code} == 0 } @r), 500, 'the calls pass');
my $after = samples(metrics_text());
my @new = grep { !exists $before->{$_} } keys %$after;
is(join(' ', @new), req('other', 'allow', 'none', 0),
   'one new series: the services no configuration names are "other"');
is($after->{req('test.Svc', 'allow', 'none', 0)}, 8 + 250,
   'the random methods of test.Svc are counted as test.Svc');
is($after->{req('other', 'allow', 'none', 0)}, 250,
   'the random services are counted as "other"');
--- no_error_log
[error]



=== TEST 5: JWT cache lookups (connection, shared, miss), authentication and audit records
--- http_config
    grpc_guard_metrics_zone 1m;
    grpc_guard_require_tls off;

    server {
        listen 127.0.0.1:$TEST_NGINX_METRICS_PORT;

        location = /metrics {
            grpc_guard_metrics;
        }
    }
--- config
    location /test.Jwt/ {
        grpc_guard_auth jwt;
        grpc_guard_jwt_key_file $TEST_NGINX_JWT_DIR/jwks.json;
        grpc_guard_audit_log $TEST_NGINX_SERVER_ROOT/logs/audit.log;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- init
my @bearer = ("authorization: Bearer $ENV{TEST_NGINX_JWT_RS256}");
my @r = mcalls({ method => '/test.Jwt/A', metadata => \@bearer },
               { method => '/test.Jwt/A', metadata => \@bearer,
                 same_connection => 1 },
               { method => '/test.Jwt/A', metadata => \@bearer },
               { method => '/test.Jwt/A' });
is(join(' ', map { $_->{code} } @r), '0 0 0 16', 'the calls');
my $s = samples(metrics_text());
my %want = (
    'grpc_guard_jwt_cache_total{result="miss"}' => 1,
    'grpc_guard_jwt_cache_total{result="hit_connection"}' => 1,
    'grpc_guard_jwt_cache_total{result="hit_shared"}' => 1,
    'grpc_guard_auth_total{method="jwt",result="success"}' => 3,
    'grpc_guard_auth_total{method="jwt",result="missing"}' => 1,
    'grpc_guard_auth_total{method="jwt",result="failure"}' => 0,
    'grpc_guard_audit_records_total' => 4,
    'grpc_guard_audit_dropped_total' => 0,
    req('test.Jwt', 'allow', 'none', 0) => 3,
    req('test.Jwt', 'deny', 'jwt_missing', 16) => 1,
);
is($s->{$_}, $want{$_}, $_) for sort keys %want;
ok(!grep({ /^grpc_guard_(limit|redis)_/ } keys %$s),
   'no limit or Redis series without limits');
--- no_error_log
[error]



=== TEST 6: Redis down: limit checks unavailable, the node down, its circuit open
--- http_config
    grpc_guard_redis 127.0.0.1:$TEST_NGINX_PORT3 timeout=200ms;
    grpc_guard_metrics_zone 1m;

    server {
        listen 127.0.0.1:$TEST_NGINX_METRICS_PORT;

        location = /metrics {
            grpc_guard_metrics;
        }
    }
--- config
    location /test.Lim/ {
        grpc_guard_limit rate=10r/s key=$remote_addr name=down;
        grpc_guard_limit_failure open;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- init
my @r = mcalls(map { +{ method => '/test.Lim/A' } } 1 .. 3);
is(join(' ', map { $_->{code} } @r), '0 0 0', 'the calls pass (open)');
my $s = samples(metrics_text());
my $node = "127.0.0.1:$ENV{TEST_NGINX_PORT3}";
my %want = (
    'grpc_guard_limit_total{limit="down",result="unavailable"}' => 3,
    'grpc_guard_limit_total{limit="down",result="passed"}' => 0,
    "grpc_guard_redis_up{node=\"$node\"}" => 0,
    "grpc_guard_redis_circuit_open{node=\"$node\"}" => 1,
    "grpc_guard_redis_latency_seconds_count{node=\"$node\"}" => 0,
    req('test.Lim', 'allow', 'none', 0) => 3,
);
is($s->{$_}, $want{$_}, $_) for sort keys %want;
--- error_log
redis 127.0.0.1:
--- no_error_log
[alert]
[crit]



=== TEST 7: named services, grpc_guard_metrics_requests off, other servers
--- http_config
    grpc_guard_metrics_zone 1m;

    server {
        listen 127.0.0.1:$TEST_NGINX_METRICS_PORT;
        server_name metrics.test;

        location = /metrics {
            grpc_guard_metrics;
        }

        location / {
            grpc_guard on;
            grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
        }
    }
--- config
    grpc_guard_metrics_services pkg.Named;

    location /test.Quiet/ {
        grpc_guard on;
        grpc_guard_metrics_requests off;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }

    location / {
        grpc_guard on;
        grpc_guard_public /pkg.Public/Health /pkg.Pub2/*;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- init
my @r = mcalls({ method => '/pkg.Named/A' }, { method => '/pkg.Named/B' },
               { method => '/pkg.Public/Health' },
               { method => '/pkg.Pub2/X' },
               { method => '/pkg.Unnamed/A' },
               { method => '/test.Quiet/A' });
is(join(' ', map { $_->{code} } @r), '0 0 0 0 0 0', 'the calls pass');
my $s = samples(metrics_text());
my %want = (
    req('pkg.Named', 'allow', 'none', 0) => 2,
    req('pkg.Public', 'public', 'none', 0) => 1,
    req('pkg.Pub2', 'public', 'none', 0) => 1,
    req('other', 'allow', 'none', 0) => 1,
);
is($s->{$_}, $want{$_}, $_) for sort keys %want;
my @req = grep { /^grpc_guard_requests_total/ } keys %$s;
is(scalar @req, 4, 'nothing else: test.Quiet is not counted')
    or diag(join "\n", sort @req);
--- no_error_log
[error]



=== TEST 8: a zone too small for the names: they are counted as "other", said once
--- http_config
    grpc_guard_metrics_zone 32k;

    server {
        listen 127.0.0.1:$TEST_NGINX_METRICS_PORT;

        location = /metrics {
            grpc_guard_metrics;
        }
    }
--- config
    location / {
        grpc_guard on;
        grpc_guard_metrics_services $TEST_NGINX_MANY_SERVICES;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- init
my $svc = 'zzz.Last' . 'x' x 200;
my @r = mcalls({ method => "/$svc/A" }, { method => "/$svc/B" });
is(join(' ', map { $_->{code} } @r), '0 0', 'the calls pass');
my $s = samples(metrics_text());
is($s->{req('other', 'allow', 'none', 0, 'other')}, 2,
   'a service with no room is counted as server and service "other"');
--- error_log eval
qr/the "grpc_guard_metrics" zone is full: \d+ names of the configuration are counted as "other"/
--- no_error_log
[alert]
[crit]



=== TEST 9: grpc_guard_metrics in a guarded location
--- config
    location = /metrics {
        grpc_guard on;
        grpc_guard_metrics;
    }
--- must_die
--- error_log
"grpc_guard_metrics" is in a location where the guard is on: add "grpc_guard off;" to it



=== TEST 10: grpc_guard_metrics_zone too small
--- http_config
    grpc_guard_metrics_zone 4k;
--- must_die
--- error_log
zone size "4k" is too small



=== TEST 11: grpc_guard_metrics_services takes service names only
--- config
    grpc_guard_metrics_services pkg.Svc/Method;
--- must_die
--- error_log
invalid service name "pkg.Svc/Method"



=== TEST 12: every reason code the module gives has a label of its own (not "other")
--- init
my $src = "$FindBin::Bin/../src";
my $m = read_file("$src/ngx_http_grpc_guard_metrics.c") // '';
my ($table) = $m =~ /ngx_http_grpc_guard_metrics_reasons\[\] = \{(.*?)\n\};/s;
my %known;
$known{$1} = 1 while ($table // '') =~ /ngx_string\("([^"]+)"\)/g;
# reason codes: literals in statements about a reason or a refusal, and
# the codes functions return (the JWT checks)
my %found;
for my $f (grep { !/_(metrics|variables)\.c$/ } glob "$src/*.c") {
    for my $st (split /;/, read_file($f)) {
        if ($st =~ /\breturn\s+"([a-z]+(?:_[a-z]+)+)"\s*$/) {
            $found{$1} = $f;
            next;
        }
        next unless $st =~ /reason|_refuse\(/;
        $found{$1} = $f while $st =~ /"([a-z]+(?:_[a-z]+)+)"/g;
    }
}
cmp_ok(scalar(keys %found), '>=', 40, 'reason codes found in src/');
is(join(' ', sort grep { !$known{$_} } keys %found), '',
   'no reason code is missing from the metrics table');
