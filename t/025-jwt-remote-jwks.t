# Keys from the identity provider (grpc_guard_jwt_key_request): a real
# OpenID provider (oidc-provider, t/idp) issues JWT access tokens with the
# client_credentials grant and publishes its JWKS; nginx fetches the JWKS
# with a subrequest to an internal location, keeps it in the
# grpc_guard_remote_cache zone, follows a key rotation without a reload
# (one fetch for all the workers), refetches for unknown kids at most once
# per min_refetch, keeps the last good set when the provider fails or
# answers garbage, and answers 14 jwks_unavailable when it has no set at
# all.  The provider logs every request it gets: the tests count the JWKS
# fetches and read the headers nginx sent.
#
# Blocks run in order; blocks without a configuration of their own use the
# nginx of the block before.

use Test::Nginx::Socket::Grpc 'no_plan';
use Cwd qw(abs_path);
use File::Basename qw(dirname);
use IO::Socket::INET ();
use JSON::PP ();
use MIME::Base64 ();
use POSIX ();
use Time::HiRes ();

use Test::Nginx::Idp qw(idp_setup idp_log_file idp_key idp_start
                        idp_stop idp_mode idp_reset_log idp_requests
                        idp_calls idp_call);

our $Port = idp_setup();
our $LogFile = idp_log_file();
our (%Tokens);

sub jwks_fetches { scalar @{ idp_requests('/jwks') } }

# an access token from the provider's token endpoint
sub idp_token {
    my $tok = Test::Nginx::Idp::idp_token();
    $ENV{'TEST_NGINX_TOKEN_' . uc header_of($tok)->{kid}} = $tok;
    return $tok;
}

sub b64url_decode {
    my ($s) = @_;
    $s =~ tr{-_}{+/};
    $s .= '=' x (-length($s) % 4);
    return MIME::Base64::decode_base64($s);
}

sub b64url {
    my $s = MIME::Base64::encode_base64($_[0], '');
    $s =~ tr{+/}{-_};
    $s =~ s/=+$//;
    return $s;
}

sub header_of {
    my ($tok) = @_;
    return JSON::PP::decode_json(b64url_decode((split /\./, $tok)[0]));
}

# the same token with another "kid" (its signature no longer matters)
sub with_kid {
    my ($tok, $kid) = @_;
    my ($h, $p, $s) = split /\./, $tok;
    my $header = header_of($tok);
    $header->{kid} = $kid;
    return b64url(JSON::PP->new->canonical->encode($header)) . ".$p.$s";
}

# calls made together, each on a connection of its own: their statuses
sub calls { idp_calls($ENV{TEST_NGINX_PORT2}, '/test.Echo/Unary', @_) }

# the nginx worker of each call, from the access log: distinct pids
sub worker_pids {
    my $log = "$ENV{TEST_NGINX_SERVER_ROOT}/logs/access.log";
    open my $fh, '<', $log or return 0;
    my %pids = map { (split ' ')[1] => 1 } grep { /^guard / } <$fh>;
    close $fh;
    return scalar keys %pids;
}

sub conf {
    my ($params) = @_;
    $params //= '';
    my $root = $ENV{TEST_NGINX_SERVER_ROOT};
    return <<"CONF";
    log_format guard 'guard \$pid \$grpc_guard_grpc_status '
                     'reason=\$grpc_guard_reason';

    server {
        listen 127.0.0.1:$ENV{TEST_NGINX_PORT2} reuseport $ENV{TEST_NGINX_LISTEN_HTTP2};
        $ENV{TEST_NGINX_HTTP2}
        access_log $root/logs/access.log guard;
        grpc_guard_require_tls off;

        location = /_jwks {
            internal;
            proxy_pass http://127.0.0.1:$Port/jwks;
        }

        location /test.Echo/ {
            grpc_guard_auth jwt;
            grpc_guard_jwt_key_request /_jwks $params;
            grpc_guard_jwt_issuer http://127.0.0.1:$Port;
            grpc_guard_jwt_audience urn:grpc-guard:test;
            grpc_guard_audit_log $root/logs/audit.log;
            grpc_set_header x-user \$grpc_guard_jwt_claim_sub;
            grpc_pass grpc://127.0.0.1:$ENV{TEST_NGINX_GRPC_PORT};
        }
    }
CONF
}

# the token is looked up when the call is made: "init" gets it
sub call { idp_call(@_) }

workers(2);
no_shuffle();
run_tests();

__DATA__

=== TEST 1: a token from the provider passes; its JWKS is fetched once for two calls
--- init
idp_mode('');
idp_start('k1');
idp_reset_log();
$Tokens{k1} = idp_token();
is(header_of($Tokens{k1})->{kid}, 'k1', 'the provider signs with k1');
is(header_of($Tokens{k1})->{typ}, 'at+jwt', 'an RFC 9068 access token');
--- http_config eval: conf('min_refetch=30s')
--- grpc_call eval
[call('k1', metadata => ['x-api-key: k-secret', 'cookie: session=s3cret']),
 call('k1', metadata => ['x-api-key: k-secret', 'cookie: session=s3cret'])]
--- grpc_status: 0
--- upstream_calls: 2
--- upstream_metadata
x-user: svc
!authorization
--- error_log
grpc guard: fetched "/_jwks"
--- no_error_log
[error]
[alert]



=== TEST 2: the subrequest was one GET, with none of the client's headers
--- init
my $r = idp_requests('/jwks');
is(scalar @$r, 1, 'one JWKS fetch for two calls');
is($r->[0]{method}, 'GET', 'a GET');
my @sent = sort keys %{ $r->[0]{headers} };
ok(!(grep { /^(authorization|x-api-key|cookie|te|content-type|grpc-.*)$/ } @sent),
   "no client header reached the provider (it got: @sent)");
--- grpc_call eval
call('k1')
--- grpc_status: 0



=== TEST 3: the provider rotates its keys: a token of the new key passes without a reload, one fetch for 20 concurrent calls on 2 workers
--- init
idp_start('k2', 'k1');
idp_mode('slow');
$Tokens{k2} = idp_token();
is(header_of($Tokens{k2})->{kid}, 'k2', 'the provider signs with k2 now');
idp_reset_log();
my $codes = calls(($Tokens{k2}) x 20);
is_deeply($codes, [(0) x 20], '20 concurrent calls with the new key pass');
is(jwks_fetches(), 1, 'one JWKS fetch for all of them');
cmp_ok(worker_pids(), '>=', 2, 'the calls went to both workers');
idp_mode('');
--- grpc_call eval
[call('k2'), call('k1')]
--- grpc_status: 0
--- no_error_log
[alert]



=== TEST 4: unknown kids: 50 concurrent calls, at most one refetch per min_refetch
--- init
idp_mode('');
idp_reset_log();
is_deeply(calls($Tokens{k2}), [0], 'a call with a known key (cold start)');
is(jwks_fetches(), 1, 'the first call fetched the set');
my @unknown = map { with_kid($Tokens{k2}, "unknown-" . int(rand(1e9))) } 1 .. 50;
is_deeply(calls(@unknown), [(16) x 50], '50 unknown kids: 16');
is(jwks_fetches(), 2, 'one refetch for the 50');
is_deeply(calls(@unknown[0 .. 9]), [(16) x 10], 'and again: 16');
is(jwks_fetches(), 2, 'no refetch within min_refetch');
--- http_config eval: conf('min_refetch=30s')
--- grpc_call eval
call('k2')
--- grpc_status: 0
--- access_log
reason=jwt_unknown_kid



=== TEST 5: the provider stops: cached keys keep working, unknown kids get 16
--- init
idp_stop();
$ENV{TEST_NGINX_TOKEN_GONE} = with_kid($Tokens{k2}, 'gone');
--- grpc_call eval
[call('k2'), call('k1'), call('gone')]
--- grpc_status eval
[0, 0, 16]
--- upstream_calls: 2



=== TEST 6: a cold start with the provider down: 14 jwks_unavailable
--- http_config eval: conf()
--- grpc_call eval
call('k2')
--- grpc_status: 14
--- grpc_message: service unavailable
--- upstream_calls: 0
--- error_log eval
[qr/grpc guard: fetch of "\/_jwks" failed/,
 qr/refused "\/test.Echo\/Unary" with 14: jwks_unavailable/]
--- access_log
guard
reason=jwks_unavailable



=== TEST 7: the audit record carries the reason
--- init
my $audit = "$ENV{TEST_NGINX_SERVER_ROOT}/logs/audit.log";
open my $fh, '<', $audit or die "$audit: $!";
my @recs = map { JSON::PP::decode_json($_) } grep { /\S/ } <$fh>;
ok((grep { ($_->{reason} // '') eq 'jwks_unavailable'
           && $_->{grpc_status} == 14 } @recs),
   'an audit record with jwks_unavailable and 14');
--- grpc_call eval
call('k2')
--- grpc_status: 14



=== TEST 8: garbage, HTML, an oversized or empty set, an error: the last good set is kept
--- init
idp_mode('');
idp_start('k2');
idp_reset_log();
is_deeply(calls(idp_token()), [0], 'the first set is fetched');
for my $mode (qw(garbage html oversized empty error)) {
    idp_mode($mode);
    Time::HiRes::sleep(1.2);
    is_deeply(calls(idp_token()), [0], "$mode: the call passes on the last good set");
}
is(jwks_fetches(), 6, 'each refresh went to the provider');
idp_mode('');
--- http_config eval: conf('refresh=1s')
--- grpc_call eval
call('k2')
--- grpc_status: 0
--- error_log eval
[qr/grpc guard: fetch of "\/_jwks" failed: the reply is not usable/,
 qr/grpc guard: fetch of "\/_jwks" failed: the reply is larger than max_size/]



=== TEST 9: after the failures, a good reply replaces the set: a new key is followed again
--- init
idp_start('k3', 'k2');
$Tokens{k3} = idp_token();
is(header_of($Tokens{k3})->{kid}, 'k3', 'the provider signs with k3');
--- grpc_call eval
[call('k3'), call('k2')]
--- grpc_status: 0



=== TEST 10: the provider drops a key: once the workers have the new set, a token of that key verified before no longer passes
--- init
idp_start('k3');
Time::HiRes::sleep(1.2);
is_deeply(calls(idp_token()), [0], 'a call refreshes the set (k3 only)');
Time::HiRes::sleep(1.1);
--- grpc_call eval
[call('k2'), call('k3')]
--- grpc_status eval
[16, 0]
--- upstream_calls: 1
--- access_log
reason=jwt_unknown_kid



=== TEST 11: configuration: parameters are checked
--- http_config
    server {
        listen 127.0.0.1:$TEST_NGINX_PORT2;
        location / {
            grpc_guard_auth jwt;
            grpc_guard_jwt_key_request /_jwks refresh=0;
        }
    }
--- must_die
--- error_log
invalid parameter "refresh=0"
