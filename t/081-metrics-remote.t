# Metrics of the remote fetches (grpc_guard_jwt_key_request): with a real
# OpenID provider (oidc-provider, t/idp, as in t/025), the page shows
# grpc_guard_jwks_age_seconds{uri}, grpc_guard_remote_requests_total
# {kind,result} and grpc_guard_remote_cache_total{kind,result} with the
# exact counts of a known sequence: the first call fetches and waits, the
# next ones are hits, a refresh that gets garbage and one with the
# provider down fail (the last good set is kept, and its age grows), a
# cold start with the provider down gives a failed fetch, then no result;
# `promtool check metrics` accepts the page; without a remote fetch in the
# configuration none of these series is there.
#
# Blocks run in order.

use Test::Nginx::Socket::Grpc 'no_plan';
use Test::Nginx::Proc qw(run_cmd read_file write_file);
use Cwd qw(abs_path);
use File::Basename qw(dirname);
use IO::Socket::INET ();
use JSON::PP ();
use POSIX ();
use Time::HiRes ();

use Test::Nginx::Idp qw(idp_setup idp_log_file idp_start idp_stop
                        idp_mode idp_token);

our $Port = idp_setup();
our $LogFile = idp_log_file();
our ($Token);

$ENV{TEST_NGINX_METRICS_PORT} = free_port();

sub jwks_fetches {
    open my $fh, '<', $LogFile or return 0;
    my $n = grep { /\S/ && JSON::PP::decode_json($_)->{url} eq '/jwks' }
            <$fh>;
    close $fh;
    return $n;
}


# gRPC calls with this token, one after the other, each on a connection
# of its own: their grpc-status codes
sub mcalls {
    my ($token, @methods) = @_;
    my @specs = map {
        +{
            method => $_,
            port => $ENV{TEST_NGINX_SERVER_PORT} + 0,
            host => '127.0.0.1',
            metadata => [['authorization', "Bearer $token"]],
            type => 'unary',
            messages => 1,
            payload => 'ping',
            overall_timeout => 10,
            timeout => 10,
        }
    } @methods;
    my ($res, $err) = Test::Nginx::Grpc::run_client(\@specs, 60);
    die "grpc client: $err" if $err;
    return join ' ', map { $_->{code} } @$res;
}

sub metrics_text {
    my $r = run_cmd(['curl', '-s', '-o', '-', '-w', '\n%{http_code}',
                     "http://127.0.0.1:$ENV{TEST_NGINX_METRICS_PORT}"
                     . "/metrics"], timeout => 10);
    my ($body, $code) = $r->{out} =~ /\A(.*)\n(\d+)\z/s
        or die "metrics page: $r->{out}";
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
        die "twice: $k" if exists $s{$k};
        $s{$k} = $v;
    }
    return \%s;
}

# the counters of kind "jwks", in the order: ok failed hit wait unavailable
sub remote_counts {
    my ($s) = @_;
    return join ' ',
        (map { $s->{"grpc_guard_remote_requests_total{kind=\"jwks\","
                    . "result=\"$_\"}"} // 'none' } qw(ok failed)),
        (map { $s->{"grpc_guard_remote_cache_total{kind=\"jwks\","
                    . "result=\"$_\"}"} // 'none' }
         qw(hit wait unavailable));
}

sub age {
    my ($s, $uri) = @_;
    return $s->{"grpc_guard_jwks_age_seconds{uri=\"$uri\"}"};
}

sub promtool_ok {
    my ($text, $what) = @_;
    my $r = run_cmd(['promtool', 'check', 'metrics'], stdin => $text,
                    timeout => 30);
    is($r->{exit}, 0, "$what: promtool check metrics: exit 0")
        or diag("$r->{out}$r->{err}");
    is("$r->{out}$r->{err}", '', "$what: promtool check metrics: quiet");
}

sub http_conf {
    return <<"CONF";
    grpc_guard_metrics_zone 1m;
    grpc_guard_require_tls off;

    server {
        listen 127.0.0.1:$ENV{TEST_NGINX_METRICS_PORT};

        location = /metrics {
            grpc_guard_metrics;
        }
    }
CONF
}

# /test.Echo/ and /test.Other/ fetch /_jwks, /test.Two/ fetches /_jwks2
sub conf {
    my ($params) = @_;
    my $jwt = <<"JWT";
        grpc_guard_auth jwt;
        grpc_guard_jwt_issuer http://127.0.0.1:$Port;
        grpc_guard_jwt_audience urn:grpc-guard:test;
        grpc_pass grpc://127.0.0.1:$ENV{TEST_NGINX_GRPC_PORT};
JWT
    return <<"CONF";
    location = /_jwks {
        internal;
        proxy_pass http://127.0.0.1:$Port/jwks;
    }

    location = /_jwks2 {
        internal;
        proxy_pass http://127.0.0.1:$Port/jwks;
    }

    location /test.Echo/ {
        grpc_guard_jwt_key_request /_jwks $params;
$jwt    }

    location /test.Other/ {
        grpc_guard_jwt_key_request /_jwks $params;
$jwt    }

    location /test.Two/ {
        grpc_guard_jwt_key_request /_jwks2 $params;
$jwt    }
CONF
}

master_on();
workers(2);
no_shuffle();
no_root_location();
run_tests();

__DATA__

=== TEST 1: a known sequence: the exact counts, the age of the set in use, promtool
--- http_config eval: main::http_conf()
--- config eval: main::conf('refresh=4s')
--- init
idp_mode('');
idp_start('k1');
write_file($LogFile, '');
my $token = $Token = idp_token();

# configured, nothing fetched yet: the counters at 0, no age
my $s = samples(metrics_text());
is(remote_counts($s), '0 0 0 0 0', 'before any call: all 0');
ok(!grep({ /^grpc_guard_jwks_age_seconds/ } keys %$s),
   'no age before a set was fetched');
unlike(metrics_text(), qr/kind="(introspection|authz)"/,
       'only the kind the configuration fetches');

# the first call fetches (and waits for its fetch), the next three hit
is(mcalls($token, ('/test.Echo/Unary') x 4), '0 0 0 0', 'four calls pass');
is(jwks_fetches(), 1, 'one fetch');
my $text = metrics_text();
$s = samples($text);
is(remote_counts($s), '1 0 3 1 0', 'ok 1, hit 3, wait 1');
my $age = age($s, '/_jwks');
ok(defined $age && $age =~ /^\d+\.\d{3}$/ && $age >= 0 && $age < 4,
   "the age of the set is there and small: " . ($age // 'none'));
ok(!defined age($s, '/_jwks2'), 'no age for a URI never fetched');
is(scalar(grep { /^grpc_guard_jwks_age_seconds\{/ } split /\n/, $text), 1,
   'one age series: two locations fetch /_jwks');
promtool_ok($text, 'after the first fetch');

# the other URI: a series of its own
is(mcalls($token, '/test.Two/Unary'), '0', 'a call fetching /_jwks2');
$s = samples(metrics_text());
is(remote_counts($s), '2 0 3 2 0', 'its fetch: ok 2, wait 2');
ok(defined age($s, '/_jwks2'), 'the age of /_jwks2 is there');

# a refresh gets garbage: failed; the call waited and used the last set
idp_mode('garbage');
Time::HiRes::sleep(4.2);
is(mcalls($token, '/test.Echo/Unary'), '0', 'garbage: the call passes');
$s = samples(metrics_text());
is(remote_counts($s), '2 1 3 3 0', 'garbage: failed 1, wait 3');
cmp_ok(age($s, '/_jwks'), '>=', 4, 'the set in use is the old one');

# the provider is down (after the 1 s back-off): failed again
idp_stop();
Time::HiRes::sleep(1.2);
is(mcalls($token, '/test.Other/Unary'), '0', 'down: the call passes');
$text = metrics_text();
$s = samples($text);
is(remote_counts($s), '2 2 3 4 0', 'down: failed 2, wait 4');
cmp_ok(age($s, '/_jwks'), '>=', 5.4, 'the age goes on growing');
promtool_ok($text, 'after the failures');
# nginx stopped here (bounded waits), so that the next block's starts
# on a clean server root whichever harness runs it
stop_nginx();
--- error_log eval
[qr/fetch of "\/_jwks" failed: the reply is not usable/,
 qr/fetch of "\/_jwks" failed: the subrequest failed/]
--- no_error_log
[alert]
[crit]



=== TEST 2: a cold start with the provider down: a failed fetch, then no result at all
--- http_config eval: main::http_conf()
--- config eval: main::conf('')
--- init
idp_stop();
is(mcalls($Token, '/test.Echo/Unary', '/test.Echo/Unary'), '14 14',
   'no key set: 14');
my $text = metrics_text();
my $s = samples($text);
# the first call waited for its fetch, which failed; the second came
# within the 1 s back-off: no fetch to wait for, no result
is(remote_counts($s), '0 1 0 1 1', 'failed 1, wait 1, unavailable 1');
ok(!grep({ /^grpc_guard_jwks_age_seconds/ } keys %$s),
   'no age: no set was ever fetched');
is($s->{'grpc_guard_requests_total{server="localhost",service="test.Echo",'
        . 'decision="deny",reason="jwks_unavailable",grpc_status="14"}'},
   2, 'the calls: jwks_unavailable');
promtool_ok($text, 'cold start');
stop_nginx();
--- no_error_log
[alert]
[crit]



=== TEST 3: without a remote fetch in the configuration, none of the series
--- http_config eval: main::http_conf()
--- config
    location /test.Echo/ {
        grpc_guard on;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- init
my $text = metrics_text();
like($text, qr/^grpc_guard_auth_total\{/m, 'the page answers');
unlike($text, qr/grpc_guard_(jwks_age_seconds|remote_)/,
       'no jwks_age, remote_requests or remote_cache series');
