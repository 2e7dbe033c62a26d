# Opaque tokens (grpc_guard_auth introspection,
# grpc_guard_introspection_request): a real OpenID provider (oidc-provider,
# t/idp) issues opaque access tokens to the client "opaque" and answers
# RFC 7662 introspection to the resource server "rs"; nginx posts
# $grpc_guard_introspection_body through an internal location with the
# resource server's credentials, keeps the answers in the
# grpc_guard_remote_cache zone by the SHA-256 of the token (active ones for
# "cache", inactive ones for "negative_cache"), and makes the reply's
# members the call's claims.  The provider logs every request it gets: the
# tests count the introspection requests and read what nginx sent.
# Calls on one connection take the connection's memory of its last token
# (no digest, no zone, no JSON), which must give the same claims and end
# when the zone's answer does.  The authorization blocks post the input to
# t/lib/opa_standin.py (OPA's Data API), which logs what it got.
#
# Blocks run in order; blocks without a configuration of their own use the
# nginx of the block before.

use Test::Nginx::Socket::Grpc 'no_plan';
use JSON::PP ();
use MIME::Base64 ();
use POSIX ();
use Time::HiRes ();

use Test::Nginx::Idp qw(idp_setup idp_start idp_stop idp_mode idp_reset_log
                        idp_requests idp_token idp_revoke idp_calls
                        idp_call);
use Test::Nginx::Proc qw(spawn stop_process write_file);
use Cwd qw(abs_path);
use File::Basename qw(dirname);
use IO::Socket::INET ();

our $Port = idp_setup();
our (%Tokens);

our $RsBasic = MIME::Base64::encode_base64('rs:rs-secret', '');

# the policy engine of the authorization blocks: "allow" is always true
our $Work = work_dir();
our $OpaLog = "$Work/opa-requests.log";
our $OpaPolicy = "$Work/opa-policy.json";

write_file($OpaPolicy, '{"grpc/allow": "allow"}');
write_file($OpaLog, '');

$ENV{TEST_NGINX_OPA_PORT} = free_port();

our $OpaPid = spawn(['/usr/bin/python3',
                     abs_path(dirname(__FILE__) . '/lib/opa_standin.py'),
                     '--port', $ENV{TEST_NGINX_OPA_PORT},
                     '--policy', $OpaPolicy, '--log', $OpaLog],
                    stdout => "$Work/opa.out", stderr => "$Work/opa.out");

for (1 .. 100) {
    my $s = IO::Socket::INET->new(
        PeerAddr => "127.0.0.1:$ENV{TEST_NGINX_OPA_PORT}", Timeout => 1);
    if ($s) { close $s; last; }
    Time::HiRes::sleep(0.1);
}

END {
    local $?;
    stop_process($OpaPid, signal => 'TERM', child => 1) if $OpaPid;
}

# the input documents the engine got since the last reset
sub opa_inputs {
    open my $fh, '<', $OpaLog or return [];
    my @r = map { JSON::PP::decode_json($_) } grep { /\S/ } <$fh>;
    close $fh;
    return [ map { JSON::PP::decode_json($_->{body})->{input} } @r ];
}

sub opa_reset { write_file($OpaLog, '') }

# calls to /test.Echo/Unary on one connection, in turn: a token makes a
# call, a number waits until that time (epoch seconds); their statuses
sub one_connection {
    my (@steps) = @_;
    my $in = "$Work/one-connection.json";
    write_file($in, JSON::PP::encode_json({
        port => $ENV{TEST_NGINX_PORT2} + 0, method => '/test.Echo/Unary',
        steps => \@steps }));
    my $out = `/usr/bin/python3 -c '
import json, sys, time
import grpc
spec = json.load(sys.stdin)
channel = grpc.insecure_channel("127.0.0.1:%d" % spec["port"])
call = channel.unary_unary(spec["method"], request_serializer=lambda x: x,
                           response_deserializer=lambda x: x)
codes = []
for step in spec["steps"]:
    if isinstance(step, (int, float)):
        time.sleep(max(0, step - time.time()))
        continue
    try:
        call(b"ping", timeout=10,
             metadata=[("authorization", "Bearer " + step)])
        codes.append(0)
    except grpc.RpcError as e:
        codes.append(e.code().value[0])
channel.close()
print(json.dumps(codes))
' < $in`;
    my $r = eval { JSON::PP::decode_json($out) } or die "one_connection: $out";
    return $r;
}

sub read_file {
    my ($file) = @_;
    open my $fh, '<', $file or return '';
    local $/;
    my $text = <$fh>;
    close $fh;
    return $text;
}

sub introspections { scalar @{ idp_requests('/token/introspection') } }

# an opaque token of the client "opaque", kept for the calls of a block
sub opaque {
    my ($name, $scope) = @_;
    my $tok = idp_token(client => 'opaque', scope => $scope // 'api:read');
    $Tokens{$name} = $tok;
    $ENV{'TEST_NGINX_TOKEN_' . uc $name} = $tok;
    return $tok;
}

# calls made together, each on a connection of its own: their statuses
sub calls_to { idp_calls($ENV{TEST_NGINX_PORT2}, @_) }

sub calls { calls_to('/test.Echo/Unary', @_) }

# the access log lines of the guard, from the start of the file
sub access_lines {
    my $log = "$ENV{TEST_NGINX_SERVER_ROOT}/logs/access.log";
    return grep { /^guard / } split /\n/, read_file($log);
}

sub audit_records {
    my $log = "$ENV{TEST_NGINX_SERVER_ROOT}/logs/audit.log";
    return map { JSON::PP::decode_json($_) } grep { /\S/ }
           split /\n/, read_file($log);
}

# { 'name{labels}' => value } of the metrics page
sub samples {
    my $text = `curl -sS --http2-prior-knowledge http://127.0.0.1:$ENV{TEST_NGINX_PORT2}/metrics`;
    my %s;
    for my $line (split /\n/, $text) {
        next if $line =~ /^#/;
        $s{$1} = $2 if $line =~ /^(\S+) (\S+)$/;
    }
    return \%s;
}

sub master_pid {
    my $p = read_file("$ENV{TEST_NGINX_SERVER_ROOT}/logs/nginx.pid");
    return $p =~ /(\d+)/ ? $1 : undef;
}

sub worker_pids {
    my $master = master_pid();
    my @pids = map { /(\d+)/ ? $1 : () } `ps -o pid= --ppid $master`;
    return @pids;
}

# HUP, then wait until an old worker has exited
sub reload_nginx {
    my $log = "$ENV{TEST_NGINX_SERVER_ROOT}/logs/error.log";
    my $n = () = read_file($log) =~ /worker process \d+ exited with code/g;
    kill 'HUP', master_pid();
    for (1 .. 300) {
        my $m = () = read_file($log) =~ /worker process \d+ exited with code/g;
        return 1 if $m > $n;
        Time::HiRes::sleep(0.05);
    }
    return 0;
}

sub conf {
    my ($params, $auth) = @_;
    $params //= '';
    $auth //= 'introspection';
    my $root = $ENV{TEST_NGINX_SERVER_ROOT};
    return <<"CONF";
    grpc_guard_metrics_zone 1m;

    log_format guard 'guard \$pid \$grpc_guard_grpc_status '
                     'reason=\$grpc_guard_reason '
                     'method=\$grpc_guard_auth_method '
                     'principal=\$grpc_guard_principal';

    server {
        listen 127.0.0.1:$ENV{TEST_NGINX_PORT2} reuseport $ENV{TEST_NGINX_LISTEN_HTTP2};
        $ENV{TEST_NGINX_HTTP2}
        access_log $root/logs/access.log guard;
        grpc_guard_require_tls off;
        grpc_guard_audit_log $root/logs/audit.log;

        grpc_guard_introspection_request /_introspect $params;
        grpc_guard_jwt_issuer http://127.0.0.1:$Port;
        grpc_guard_jwt_audience urn:grpc-guard:test;

        location = /_introspect {
            internal;
            proxy_method POST;
            proxy_set_header Content-Type application/x-www-form-urlencoded;
            proxy_set_header Authorization "Basic $RsBasic";
            proxy_set_body \$grpc_guard_introspection_body;
            proxy_pass http://127.0.0.1:$Port/token/introspection;
        }

        location = /_jwks {
            internal;
            proxy_pass http://127.0.0.1:$Port/jwks;
        }

        location = /metrics {
            grpc_guard_metrics;
        }

        location = /_body {
            return 200 "body=[\$grpc_guard_introspection_body]";
        }

        location /test.Echo/ {
            grpc_guard_auth $auth;
            grpc_set_header x-user \$grpc_guard_principal;
            grpc_set_header x-scope \$grpc_guard_claim_scope;
            grpc_set_header x-client \$grpc_guard_jwt_claim_client_id;
            grpc_pass grpc://127.0.0.1:$ENV{TEST_NGINX_GRPC_PORT};
        }

        location /acl.Echo/ {
            grpc_guard_auth introspection;
            grpc_guard_allow /acl.Echo/Read claim:scope=api:read;
            grpc_guard_allow /acl.Echo/Write claim:scope=api:write;
            grpc_pass grpc://127.0.0.1:$ENV{TEST_NGINX_GRPC_PORT};
        }

        location /_authz/ {
            internal;
            proxy_method POST;
            proxy_set_body \$grpc_guard_authz_body;
            proxy_set_header Content-Type application/json;
            proxy_pass http://127.0.0.1:$ENV{TEST_NGINX_OPA_PORT}/v1/data/grpc/;
        }

        location /authz.Echo/ {
            grpc_guard_auth introspection;
            grpc_guard_authz_request /_authz/allow;
            grpc_pass grpc://127.0.0.1:$ENV{TEST_NGINX_GRPC_PORT};
        }

        location /any.Echo/ {
            grpc_guard_auth jwt introspection;
            grpc_guard_auth_satisfy any;
            grpc_guard_jwt_key_request /_jwks;
            grpc_set_header x-user \$grpc_guard_principal;
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

=== TEST 1: an opaque token from the provider passes; a second call makes no introspection request
--- init
idp_mode('');
idp_start('k1');
idp_reset_log();
opaque('a');
unlike($Tokens{a}, qr/\./, 'the provider gives an opaque token');
--- http_config eval: conf()
--- grpc_call eval
[call('a', metadata => ['x-api-key: k-secret', 'cookie: session=s3cret']),
 call('a', metadata => ['x-api-key: k-secret', 'cookie: session=s3cret'])]
--- grpc_status: 0
--- upstream_calls: 2
--- upstream_metadata
x-user: opaque
x-client: opaque
x-scope: api:read
!authorization
--- access_log
method=introspection principal=opaque
--- no_error_log
[error]
[alert]



=== TEST 2: the subrequest was one POST, the token in its body only, none of the client's headers
--- init
my $r = idp_requests('/token/introspection');
is(scalar @$r, 1, 'one introspection request for two calls');
is($r->[0]{method}, 'POST', 'a POST');
is($r->[0]{url}, '/token/introspection', 'no query string');
my %h = %{ $r->[0]{headers} };
is($h{authorization}, "Basic $main::RsBasic",
   "the resource server's credentials, not the client's");
is($h{'content-type'}, 'application/x-www-form-urlencoded', 'a form');
is($h{'content-length'},
   length("token=$Tokens{a}&token_type_hint=access_token"),
   'the body is token=...&token_type_hint=access_token');
my @sent = sort keys %h;
is_deeply([grep { !/^(host|connection|content-length|content-type|authorization)$/ } @sent],
          [], "no client header reached the provider (it got: @sent)");
ok(!(grep { index($_, $Tokens{a}) >= 0 } values %h),
   'the token is in no header');
--- grpc_call eval
call('a')
--- grpc_status: 0



=== TEST 3: the body variable is empty outside the guard's own subrequest
--- request
GET /_body
--- request_port: $TEST_NGINX_PORT2
--- response_body: body=[]



=== TEST 3b: the metrics count one introspection, one call that waited for it, two that found its answer
--- init
my $s = samples();
my %want = (
    'grpc_guard_remote_requests_total{kind="introspection",result="ok"}' => 1,
    'grpc_guard_remote_requests_total{kind="introspection",result="failed"}' => 0,
    'grpc_guard_remote_cache_total{kind="introspection",result="wait"}' => 1,
    'grpc_guard_remote_cache_total{kind="introspection",result="hit"}' => 2,
    'grpc_guard_auth_total{method="introspection",result="success"}' => 3,
);
is($s->{$_}, $want{$_}, $_) for sort keys %want;
--- grpc_call eval
call('a')
--- grpc_status: 0



=== TEST 4: an unknown token is inactive: 16 token_inactive, kept for negative_cache
--- init
idp_reset_log();
$ENV{TEST_NGINX_TOKEN_BOGUS} = 'bogus-' . ('x' x 30);
--- grpc_call eval
[call('bogus'), call('bogus')]
--- grpc_status: 16
--- grpc_message: unauthenticated
--- upstream_calls: 0
--- error_log
refused "/test.Echo/Unary" with 16: token_inactive
--- access_log
reason=token_inactive



=== TEST 5: the inactive answer was asked once
--- init
is(introspections(), 1, 'one introspection request for two calls');
--- grpc_call eval
call('a')
--- grpc_status: 0



=== TEST 5a: a non-gRPC request: 401 with WWW-Authenticate, as for JWTs
--- request
POST /test.Echo/Unary
--- request_port: $TEST_NGINX_PORT2
--- more_headers
Authorization: Bearer bogus-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx
--- error_code: 401
--- response_headers
WWW-Authenticate: Bearer error="invalid_token"
--- upstream_calls: 0
--- error_log
refused "/test.Echo/Unary" with 16: token_inactive



=== TEST 6: a revoked token passes until "cache" has passed, then gets 16
--- http_config eval: conf('cache=10s negative_cache=1s')
--- init
idp_reset_log();
my $tok = opaque('r');
is_deeply(calls($tok), [0], 'the token passes');
is(idp_revoke($tok), '200', 'its owner revokes it');
is_deeply(calls($tok), [0], 'the answer is kept: it still passes');
is(introspections(), 1, 'no second introspection yet');
my $asked = idp_requests('/token/introspection')->[0]{ts};
Time::HiRes::sleep(0.1) while Time::HiRes::time() < $asked + 10.5;
is_deeply(calls($tok), [16], 'cache has passed: refused');
is(introspections(), 2, 'asked again');
--- grpc_call eval
call('r')
--- grpc_status: 16
--- access_log
reason=token_inactive



=== TEST 7: the provider cannot answer: 14 introspection_unavailable, never kept; it answers again: the same token passes
--- init
idp_reset_log();
my $tok = opaque('u');
idp_mode('introspection-error');
is_deeply(calls($tok), [14], 'a 503 from the provider gives 14');
Time::HiRes::sleep(1.2);
idp_mode('');
is_deeply(calls($tok), [0], 'the provider answers: the token passes');
is(introspections(), 2, 'the failure was not kept');
idp_stop();
$ENV{TEST_NGINX_TOKEN_DOWN} = 'down-' . ('y' x 30);
--- grpc_call eval
[call('down'), call('u')]
--- grpc_status eval
[14, 0]
--- grpc_message eval
['service unavailable', '']
--- upstream_calls: 1
--- error_log eval
[qr/grpc guard: fetch of "\/_introspect" failed/,
 qr/refused "\/test.Echo\/Unary" with 14: introspection_unavailable/]



=== TEST 8: the audit record and $grpc_guard_reason carry the reasons and the principal
--- init
my @recs = audit_records();
ok((grep { ($_->{reason} // '') eq 'introspection_unavailable'
           && $_->{grpc_status} == 14 } @recs),
   'an audit record with introspection_unavailable and 14');
ok((grep { ($_->{reason} // '') eq 'token_inactive'
           && $_->{grpc_status} == 16 } @recs),
   'an audit record with token_inactive and 16');
ok((grep { $_->{grpc_status} == 0 && $_->{principal}
           && ($_->{principal}{id} // '') eq 'opaque'
           && ($_->{principal}{kind} // '') eq 'introspection' } @recs),
   'an audit record of a call that passed: principal opaque, introspection');
# nginx's own debug lines show the headers and the body it sends
my @entries = grep { !/^\S+ \S+ \[debug\]/ }
              split /\n(?=\d{4}\/\d\d\/\d\d )/,
              read_file("$ENV{TEST_NGINX_SERVER_ROOT}/logs/error.log");
ok(!(grep { index($_, $Tokens{a}) >= 0 || index($_, $Tokens{u}) >= 0 }
     @entries, split /\n/, read_file("$ENV{TEST_NGINX_SERVER_ROOT}/logs/audit.log")),
   'no token in the audit log or in the error log but its debug lines');
my @lines = access_lines();
ok((grep { /^guard \d+ 14 reason=introspection_unavailable / } @lines),
   '$grpc_guard_reason: introspection_unavailable');
ok((grep { /^guard \d+ 16 reason=token_inactive / } @lines),
   '$grpc_guard_reason: token_inactive');
--- grpc_call eval
call('down')
--- grpc_status: 14



=== TEST 9: garbage, HTML, oversized, non-200 and an "active" that is no boolean: 14 each
--- http_config eval: conf()
--- init
idp_mode('');
idp_start('k1');
idp_reset_log();
for my $mode (qw(garbage html oversized error string)) {
    idp_mode("introspection-$mode");
    is_deeply(calls(opaque('m')), [14], "$mode: 14");
    # failures are logged at most once a second in each worker
    Time::HiRes::sleep(1.1);
}
is(introspections(), 5, 'each went to the provider');
idp_mode('');
opaque('ok');
--- grpc_call eval
call('ok')
--- grpc_status: 0
--- error_log eval
[qr/grpc guard: fetch of "\/_introspect" failed: the reply is not an answer/,
 qr/grpc guard: fetch of "\/_introspect" failed: the reply is larger than max_size/]



=== TEST 10: claims from introspection drive an ACL claim:scope= rule
--- init
opaque('read', 'api:read');
opaque('write', 'api:write');
is_deeply(calls_to('/acl.Echo/Write', $Tokens{write}), [0],
          'scope api:write: Write allowed');
is_deeply(calls_to('/acl.Echo/Read', $Tokens{write}), [7],
          'scope api:write: Read denied');
--- grpc_call eval
[{ %{ call('read') }, method => '/acl.Echo/Read' },
 { %{ call('read') }, method => '/acl.Echo/Write' }]
--- grpc_status eval
[0, 7]
--- grpc_message eval
['', 'permission denied']
--- upstream_calls: 1



=== TEST 11: jwt introspection with satisfy any: a JWT from the provider is verified locally, an opaque token introspected
--- init
idp_reset_log();
$ENV{TEST_NGINX_TOKEN_JWT} = idp_token();
like($ENV{TEST_NGINX_TOKEN_JWT}, qr/^[\w-]+\.[\w-]+\.[\w-]+$/, 'a JWT');
opaque('o');
--- grpc_call eval
[{ %{ call('jwt') }, method => '/any.Echo/Unary' },
 { %{ call('o') }, method => '/any.Echo/Unary' }]
--- grpc_status: 0
--- upstream_calls: 2
--- access_log
method=jwt principal=svc
method=introspection principal=opaque



=== TEST 12: ... one introspection request, for the opaque token only
--- init
is(introspections(), 1, 'one introspection request');
is(scalar @{ idp_requests('/jwks') }, 1, 'the JWT was verified with the JWKS');
--- grpc_call eval
+{ %{ call('jwt') }, method => '/any.Echo/Unary' }
--- grpc_status: 0



=== TEST 13: the zone's answers survive a reload: no introspection after it
--- init
idp_reset_log();
my $tok = opaque('reload');
is_deeply(calls($tok), [0], 'introspected');
is(introspections(), 1, 'one request');
ok(reload_nginx(), 'reloaded');
is_deeply(calls($tok, $tok), [0, 0], 'passes after the reload');
is(introspections(), 1, 'no request after the reload');
--- grpc_call eval
call('reload')
--- grpc_status: 0



=== TEST 14: a worker killed during its fetch does not wedge the token: after the deadline another worker fetches
--- http_config eval: conf('timeout=2s')
--- init
idp_reset_log();
my $tok = opaque('dead');
idp_mode('introspection-slow');
my $pid = fork;
if ($pid == 0) {
    calls($tok);
    POSIX::_exit(0);
}
my $asked = 0;
for (1 .. 100) {
    $asked = introspections();
    last if $asked;
    Time::HiRes::sleep(0.05);
}
is($asked, 1, 'a worker is fetching');
my @workers = worker_pids();
kill 'KILL', @workers;
waitpid($pid, 0);
idp_mode('');
Time::HiRes::sleep(2.2);
is_deeply(calls($tok), [0], 'after the deadline, the token is introspected again and passes');
is(introspections(), 2, 'a second fetch');
--- grpc_call eval
call('dead')
--- grpc_status: 0
--- error_log
[alert]
exited on signal 9



=== TEST 14a: on one connection the later calls take the connection's memory of the token: the same claims for the ACL and the variables, no second introspection
--- http_config eval: conf()
--- init
idp_mode('');
idp_reset_log();
opaque('memo', 'api:read');
--- grpc_call eval
[call('memo'),
 call('memo', same_connection => 'on'),
 { %{ call('memo') }, method => '/acl.Echo/Write', same_connection => 'on' },
 { %{ call('memo') }, method => '/acl.Echo/Read', same_connection => 'on' },
 call('memo', same_connection => 'on')]
--- grpc_status eval
[0, 0, 7, 0, 0]
--- upstream_calls: 4
--- upstream_metadata eval
["x-user: opaque\nx-client: opaque\nx-scope: api:read\n!authorization",
 "x-user: opaque\nx-client: opaque\nx-scope: api:read\n!authorization",
 undef,
 "x-user: opaque\nx-client: opaque\nx-scope: api:read\n!authorization"]
--- access_log
method=introspection principal=opaque



=== TEST 14b: ... one introspection for the five calls, four of them counted as hits
--- init
is(introspections(), 1, 'one introspection request');
my $s = samples();
is($s->{'grpc_guard_remote_cache_total{kind="introspection",result="hit"}'},
   4, 'the connection hits are cache hits');
--- grpc_call eval
call('memo')
--- grpc_status: 0



=== TEST 14c: the connection's memory ends with the zone's answer: a token revoked meanwhile is refused on the same connection once "cache" has passed
--- http_config eval: conf('cache=10s negative_cache=1s')
--- init
idp_reset_log();
my $tok = opaque('rc');
is_deeply(calls($tok), [0], 'the token passes');
is(idp_revoke($tok), '200', 'its owner revokes it');
my $asked = idp_requests('/token/introspection')->[0]{ts};
is_deeply(one_connection($tok, $tok, $asked + 10.5, $tok), [0, 0, 16],
          'kept on the connection until "cache" has passed, then refused');
is(introspections(), 2, 'asked again when the answer expired');
--- grpc_call eval
call('rc')
--- grpc_status: 16
--- access_log
reason=token_inactive



=== TEST 14d: the members of an introspection reply reach the authorization input (claims, auth, principal = client_id), also from the connection's memory
--- http_config eval: conf()
--- init
idp_reset_log();
opa_reset();
opaque('az', 'api:read');
--- grpc_call eval
[{ %{ call('az') }, method => '/authz.Echo/Unary' },
 { %{ call('az') }, method => '/authz.Echo/Unary', same_connection => 'on' }]
--- grpc_status: 0
--- upstream_calls: 2



=== TEST 14e: ... the exact input documents the engine got
--- init
my $inputs = opa_inputs();
is(scalar @$inputs, 2, 'one question per call (no decision cache)');
my $want = {
    method => '/authz.Echo/Unary',
    service => 'authz.Echo',
    authority => "127.0.0.1:$ENV{TEST_NGINX_PORT2}",
    principal => 'opaque',
    auth => ['introspection'],
    claims => {
        active => JSON::PP::true,
        client_id => 'opaque',
        iss => "http://127.0.0.1:$main::Port",
        scope => 'api:read',
        token_type => 'Bearer',
        aud => 'urn:grpc-guard:test',
    },
    source => { ip => '127.0.0.1' },
    tls => JSON::PP::false,
};
is_deeply($inputs->[0], $want, 'the input of the first call')
    or diag explain $inputs->[0];
is_deeply($inputs->[1], $want, 'the same from the connection\'s memory')
    or diag explain $inputs->[1];
is(introspections(), 1, 'one introspection request');
--- grpc_call eval
call('az')
--- grpc_status: 0



=== TEST 15: configuration: a bad parameter
--- http_config
    server {
        listen 127.0.0.1:$TEST_NGINX_PORT2;
        location / {
            grpc_guard_auth introspection;
            grpc_guard_introspection_request /_introspect cache=soon;
        }
    }
--- must_die
--- error_log
invalid parameter "cache=soon"



=== TEST 16: configuration: an unknown parameter
--- http_config
    server {
        listen 127.0.0.1:$TEST_NGINX_PORT2;
        location / {
            grpc_guard_auth introspection;
            grpc_guard_introspection_request /_introspect max_size=0;
        }
    }
--- must_die
--- error_log
invalid parameter "max_size=0"



=== TEST 17: configuration: introspection without the request
--- http_config
    server {
        listen 127.0.0.1:$TEST_NGINX_PORT2;
        location / {
            grpc_guard_auth introspection;
        }
    }
--- must_die
--- error_log
"grpc_guard_auth introspection" needs "grpc_guard_introspection_request"



=== TEST 18: configuration: not a location's URI
--- http_config
    server {
        listen 127.0.0.1:$TEST_NGINX_PORT2;
        location / {
            grpc_guard_auth introspection;
            grpc_guard_introspection_request http://idp/introspect;
        }
    }
--- must_die
--- error_log
"http://idp/introspect": the URI of a location ("/...") is expected
