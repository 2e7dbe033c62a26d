# External authorization (grpc_guard_authz_request, grpc_guard_authz_metadata):
# after the ACL allowed a call, nginx posts $grpc_guard_authz_body to a
# policy engine speaking OPA's REST Data API through an internal location.
# The engine is t/lib/opa_standin.py (OPA's Data API contract; OPA itself is
# not packaged here), started on a free loopback port and stopped by PID;
# it logs every request, so the tests read the exact input document it got,
# the headers nginx sent, and count the requests (cached decisions make no
# second one).  Policies: the admin/viewer example as a boolean and as
# {"allow", "reason"}, undefined, 500, garbage and a slow reply.
#
# Blocks run in order.

use Test::Nginx::Socket::Grpc 'no_plan';
use Test::Nginx::Audit;
use Test::Nginx::Jwt qw(jwt_keys tokens);
use Test::Nginx::Proc qw(spawn stop_process write_file read_file);
use Cwd qw(abs_path);
use File::Basename qw(dirname);
use Digest::SHA qw(sha256_hex);
use IO::Socket::INET ();
use JSON::PP ();
use Time::HiRes ();

our $JwtDir = jwt_keys();
our $Work = work_dir();
our $OpaLog = "$Work/opa-requests.log";
our $OpaPolicy = "$Work/opa-policy.json";
our $OpaPid;

tokens(
    ADMIN  => { key => 'rsa', kid => 'rsa1',
                claims => { sub => 'ada', roles => 'admin ops' } },
    VIEWER => { key => 'rsa', kid => 'rsa1',
                claims => { sub => 'victor', roles => ['viewer'],
                            level => 3, jti => 'j-1' } },
    VIEWER2 => { key => 'rsa', kid => 'rsa1',
                 claims => { sub => 'victor', roles => ['viewer'],
                             level => 3, jti => 'j-2' } },
    NOROLE => { key => 'rsa', kid => 'rsa1', claims => { sub => 'nemo' } },
);

our $Keys = ">>> keys.txt\n"
    . "sha256:" . sha256_hex("k-report") . " report-app reader\n";

write_file($OpaPolicy, JSON::PP->new->canonical->encode({
    'grpc/authz' => 'admin_viewer',
    'grpc/reasons' => 'admin_viewer_object',
    'grpc/allow' => 'allow',
    'grpc/deny' => 'deny',
    'grpc/undefined' => 'undefined',
    'grpc/error' => 'error',
    'grpc/garbage' => 'garbage',
    'grpc/slow' => 'slow:3',
    'grpc/slowish' => 'slow:0.5',
}));
write_file($OpaLog, '');

$ENV{TEST_NGINX_OPA_PORT} = free_port();

$OpaPid = spawn(['/usr/bin/python3',
                 abs_path(dirname(__FILE__) . '/lib/opa_standin.py'),
                 '--port', $ENV{TEST_NGINX_OPA_PORT},
                 '--policy', $OpaPolicy, '--log', $OpaLog],
                stdout => "$Work/opa.out", stderr => "$Work/opa.out");

for (1 .. 100) {
    my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$ENV{TEST_NGINX_OPA_PORT}",
                                  Timeout => 1);
    if ($s) { close $s; last; }
    Time::HiRes::sleep(0.1);
}

END {
    local $?;
    stop_process($OpaPid, signal => 'TERM', child => 1) if $OpaPid;
}

# the requests the engine got since the last reset
sub opa_requests {
    open my $fh, '<', $OpaLog or return [];
    my @r = map { JSON::PP::decode_json($_) } grep { /\S/ } <$fh>;
    close $fh;
    return \@r;
}

sub opa_reset { write_file($OpaLog, '') }

# calls made together, each on a connection of its own: their statuses
sub together {
    my ($method, @tokens) = @_;
    my $in = "$Work/calls.json";
    write_file($in, JSON::PP::encode_json({
        port => $ENV{TEST_NGINX_SERVER_PORT} + 0, method => $method,
        tokens => \@tokens, timeout => 15 }));
    my $calls = abs_path(dirname(__FILE__) . '/idp/calls.py');
    my $out = `/usr/bin/python3 $calls < $in`;
    my $r = eval { JSON::PP::decode_json($out) } or die "calls.py: $out";
    return $r->{codes};
}

sub opa_inputs {
    return [ map { JSON::PP::decode_json($_->{body})->{input} }
             @{ opa_requests() } ];
}

# what every block's server has: keys, the engine's locations, the log
our $Common = <<'_EOC_';
    grpc_guard_require_tls off;
    grpc_guard_jwt_key_file $TEST_NGINX_JWT_DIR/jwks.json;
    grpc_guard_api_key_file $TEST_NGINX_HTML_DIR/keys.txt;
    grpc_guard_audit_log $TEST_NGINX_SERVER_ROOT/logs/audit.log;

    location /_authz/ {
        internal;
        proxy_method POST;
        proxy_set_body $grpc_guard_authz_body;
        proxy_set_header Content-Type application/json;
        proxy_read_timeout 1s;
        proxy_pass http://127.0.0.1:$TEST_NGINX_OPA_PORT/v1/data/grpc/;
    }
_EOC_

our $Log = <<'_EOC_';
    log_format authz 'authz $grpc_guard_grpc_status $grpc_guard_decision '
                     'reason=$grpc_guard_reason rule="$grpc_guard_rule" '
                     'body=$grpc_guard_authz_body pid=$pid';
    access_log logs/access.log authz;
_EOC_

add_block_preprocessor(sub {
    my $block = shift;
    my $config = $block->config;

    if (defined $config) {
        $config =~ s/\@COMMON\@/$::Common/;
        $block->set_value('config', $config);
        $block->set_value('http_config', $::Log)
            unless defined $block->http_config;
    }

    $block->set_value('user_files', $::Keys)
        if defined $config && !defined $block->user_files;
});

sub call {
    my ($method, $who, @more) = @_;
    my @md;
    push @md, "metadata: authorization: Bearer $ENV{qq{TEST_NGINX_JWT_$who}}"
        if $who;
    return join("\n", "method: $method", @md, @more);
}

# the reasons and rules of the block's audit records, in order
sub audit_is {
    my ($want) = @_;
    return sub {
        my ($recs) = @_;
        my @got = map { join ' ', $_->{grpc_status}, $_->{decision},
                        $_->{reason} // '-', $_->{rule} // '-' } @$recs;
        is_deeply(\@got, $want, 'audit: status decision reason rule')
            or diag explain \@got;
        return 1;
    };
}

workers(2);
no_shuffle();
no_root_location();
run_audit_tests();

__DATA__

=== TEST 1: the admin/viewer policy decides: admins call everything, viewers Get*/List*, others nothing; $grpc_guard_authz_body is empty outside the subrequest
--- init
opa_reset();
--- config
    @COMMON@
    location / {
        grpc_guard_auth jwt;
        grpc_guard_authz_request /_authz/authz;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call eval
[main::call('/ledger.Ledger/DeleteEntry', 'ADMIN'),
 main::call('/ledger.Ledger/GetEntry', 'VIEWER'),
 main::call('/ledger.Ledger/ListEntries', 'VIEWER'),
 main::call('/ledger.Ledger/DeleteEntry', 'VIEWER'),
 main::call('/ledger.Ledger/GetEntry', 'NOROLE')]
--- grpc_status eval
[0, 0, 0, 7, 7]
--- grpc_message eval
[undef, undef, undef, 'permission denied', 'permission denied']
--- upstream_calls: 3
--- audit_check eval
main::audit_is(['0 allow - -', '0 allow - -', '0 allow - -',
                '7 deny authz_denied -', '7 deny authz_denied -'])
--- access_log
authz 7 deny reason=authz_denied rule="-" body=- pid=
--- error_log
refused "/ledger.Ledger/DeleteEntry" with 7: authz_denied
--- no_error_log
[alert]
[crit]



=== TEST 2: without cache= every call asks: one request each, a POST of JSON to the Data API path
--- init
my $r = opa_requests();
is(scalar @$r, 5, 'five calls, five requests');
is_deeply([map { $_->{method} } @$r], [('POST') x 5], 'POSTs');
is_deeply([map { $_->{path} } @$r], [('/v1/data/grpc/authz') x 5],
          'to the Data API path of the policy');
is($r->[0]{headers}{'content-type'}, 'application/json', 'JSON');
opa_reset();
--- grpc_call eval
main::call('/ledger.Ledger/GetEntry', 'VIEWER')
--- grpc_status: 0



=== TEST 3: the exact input document: who, what, claims without the token's own claims, listed metadata; no credential
--- init
opa_reset();
--- config
    @COMMON@
    location / {
        grpc_guard_auth jwt api_key;
        grpc_guard_authz_request /_authz/authz;
        grpc_guard_authz_metadata x-tenant x-absent X-Request-Class;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call eval
main::call('/ledger.Ledger/GetEntry', 'VIEWER',
           'metadata: x-api-key: k-report',
           'metadata: x-tenant: acme',
           'metadata: x-request-class: gold',
           'metadata: x-other: not-listed',
           'metadata: cookie: session=s3cret')
--- grpc_status: 0
--- audit_check eval
sub {
    my $r = main::opa_requests();
    is(scalar @$r, 1, 'one request');
    my $body = JSON::PP::decode_json($r->[0]{body});
    is_deeply($body, { input => {
        method => '/ledger.Ledger/GetEntry',
        service => 'ledger.Ledger',
        authority => "127.0.0.1:$ENV{TEST_NGINX_SERVER_PORT}",
        principal => 'victor',
        auth => ['api_key', 'jwt'],
        claims => { sub => 'victor', iss => 'https://issuer.test',
                    aud => 'grpc-guard-tests', roles => ['viewer'],
                    level => 3 },
        api_key_client => 'report-app',
        roles => ['reader', 'viewer'],
        source => { ip => '127.0.0.1' },
        tls => JSON::PP::false,
        metadata => { 'x-tenant' => 'acme', 'x-request-class' => 'gold' },
    } }, 'the input document') or diag $r->[0]{body};
    my $tok = $ENV{TEST_NGINX_JWT_VIEWER};
    my ($sig) = $tok =~ /\.([^.]+)$/;
    unlike($r->[0]{body}, qr/\Q$sig\E|k-report|s3cret/,
           'neither the token, nor the API key, nor the cookie');
    my @sent = sort keys %{ $r->[0]{headers} };
    ok(!(grep { /^(authorization|x-api-key|cookie|te|grpc-.*|x-tenant|user-agent)$/ }
         @sent), "no client header reached the engine (it got: @sent)");
    return 1;
}



=== TEST 4: the same caller with another token asks the same question: exp, iat, nbf and jti are not in it
--- init
opa_reset();
--- grpc_call eval
[main::call('/ledger.Ledger/GetEntry', 'VIEWER', 'metadata: x-api-key: k-report'),
 main::call('/ledger.Ledger/GetEntry', 'VIEWER2', 'metadata: x-api-key: k-report')]
--- grpc_status: 0
--- audit_check eval
sub {
    my $r = main::opa_requests();
    is(scalar @$r, 2, 'two requests (no cache)');
    is($r->[0]{body}, $r->[1]{body}, 'the same input, byte for byte');
    return 1;
}



=== TEST 5: a client certificate: the peer member, tls true, the SPIFFE ID as principal
--- init
opa_reset();
--- config
    @COMMON@
    listen 127.0.0.1:$TEST_NGINX_TLS_PORT ssl $TEST_NGINX_LISTEN_HTTP2;
    ssl_certificate $TEST_NGINX_CERT_DIR/server.crt;
    ssl_certificate_key $TEST_NGINX_CERT_DIR/server.key;
    ssl_client_certificate $TEST_NGINX_CERT_DIR/ca.crt;
    ssl_verify_client optional;
    location / {
        grpc_guard_auth mtls;
        grpc_guard_authz_request /_authz/allow;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call eval
"method: /ledger.Ledger/GetEntry\nport: $ENV{TEST_NGINX_TLS_PORT}\ntls: on\nserver_name: localhost\ncert: client-spiffe.crt\nkey: client-spiffe.key"
--- grpc_status: 0
--- audit_check eval
sub {
    my $in = main::opa_inputs();
    is(scalar @$in, 1, 'one question');
    my $authority = delete $in->[0]{authority};
    like($authority, qr/^localhost(:\d+)?$/, 'the authority');
    is_deeply($in->[0], {
        method => '/ledger.Ledger/GetEntry',
        service => 'ledger.Ledger',
        principal => 'spiffe://example.org/ns/default/sa/web',
        auth => ['mtls'],
        peer => { spiffe => 'spiffe://example.org/ns/default/sa/web',
                  dns_san => ['client.example.org'],
                  subject => 'CN=web,O=Example',
                  fingerprint => cert_fingerprint('client-spiffe.crt') },
        source => { ip => '127.0.0.1' },
        tls => JSON::PP::true,
    }, 'the input of a caller with a certificate') or diag explain $in->[0];
    return 1;
}



=== TEST 6: nginx -t refuses authorization in grpc_guard_authz_metadata
--- config
    location / {
        grpc_guard_authz_request /_authz/authz;
        grpc_guard_authz_metadata x-tenant Authorization;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- must_die
--- error_log
"grpc_guard_authz_metadata" may not list "authorization": it carries a credential



=== TEST 7: nginx -t refuses the API-key header, also one set at an inner level
--- config
    grpc_guard_authz_metadata x-tenant x-key;
    location / {
        grpc_guard_api_key_header X-Key;
        grpc_guard_authz_request /_authz/authz;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- must_die
--- error_log
"grpc_guard_authz_metadata" may not list "x-key": it carries a credential



=== TEST 8: a token read from another header is never copied into the input
--- init
opa_reset();
--- config
    @COMMON@
    location / {
        grpc_guard_auth jwt;
        grpc_guard_jwt_token $http_x_token;
        grpc_guard_authz_request /_authz/authz;
        grpc_guard_authz_metadata x-token x-tenant;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call eval
"method: /ledger.Ledger/GetEntry\nmetadata: x-token: $ENV{TEST_NGINX_JWT_VIEWER}\nmetadata: x-tenant: acme"
--- grpc_status: 0
--- error_log
"x-token" holds the token: left out of the authorization input
--- audit_check eval
sub {
    my $in = main::opa_inputs();
    is_deeply($in->[0]{metadata}, { 'x-tenant' => 'acme' },
              'x-token left out');
    return 1;
}



=== TEST 9: calls on one connection: each asks its own question (the connection remembers only the last one's ingredients)
--- init
opa_reset();
--- config
    @COMMON@
    location / {
        grpc_guard_auth jwt;
        grpc_guard_authz_request /_authz/authz;
        grpc_guard_authz_metadata x-tenant;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call eval
[main::call('/ledger.Ledger/GetEntry', 'VIEWER', 'metadata: x-tenant: acme'),
 main::call('/ledger.Ledger/GetEntry', 'VIEWER', 'metadata: x-tenant: acme',
            'same_connection: on'),
 main::call('/ledger.Ledger/GetEntry', 'VIEWER', 'metadata: x-tenant: other',
            'same_connection: on'),
 main::call('/ledger.Ledger/GetEntry', 'VIEWER', 'same_connection: on'),
 main::call('/ledger.Ledger/DeleteEntry', 'VIEWER', 'metadata: x-tenant: acme',
            'same_connection: on'),
 main::call('/ledger.Ledger/DeleteEntry', 'ADMIN', 'metadata: x-tenant: acme',
            'same_connection: on'),
 main::call('/ledger.Ledger/DeleteEntry', 'VIEWER', 'metadata: x-tenant: acme',
            'same_connection: on')]
--- grpc_status eval
[0, 0, 0, 0, 7, 0, 7]
--- upstream_calls: 5
--- audit_check eval
sub {
    my $r = main::opa_requests();
    is(scalar @$r, 7, 'seven questions (no cache)');
    my $in = main::opa_inputs();
    is_deeply([map { join ' ', $_->{principal}, $_->{method},
                     $_->{metadata}{'x-tenant'} // '-' } @$in],
              ['victor /ledger.Ledger/GetEntry acme',
               'victor /ledger.Ledger/GetEntry acme',
               'victor /ledger.Ledger/GetEntry other',
               'victor /ledger.Ledger/GetEntry -',
               'victor /ledger.Ledger/DeleteEntry acme',
               'ada /ledger.Ledger/DeleteEntry acme',
               'victor /ledger.Ledger/DeleteEntry acme'],
              'each call asked its own question');
    is($r->[1]{body}, $r->[0]{body}, 'the same question, the same bytes');
    is_deeply($in->[5]{roles}, ['admin', 'ops'], 'the admin token\'s roles');
    return 1;
}



=== TEST 10: {"allow": false, "reason": ...}: 7 authz_denied, the reason is the audit rule, $grpc_guard_rule and in the error log
--- init
opa_reset();
--- config
    @COMMON@
    location / {
        grpc_guard_auth jwt;
        grpc_guard_authz_request /_authz/reasons;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call eval
[main::call('/ledger.Ledger/DeleteEntry', 'VIEWER'),
 main::call('/ledger.Ledger/DeleteEntry', 'ADMIN')]
--- grpc_status eval
[7, 0]
--- upstream_calls: 1
--- audit_check eval
main::audit_is(['7 deny authz_denied viewers may only call Get* and List*',
                '0 allow - -'])
--- access_log
authz 7 deny reason=authz_denied rule="viewers may only call Get* and List*"
--- error_log
grpc guard: the policy engine denied "/ledger.Ledger/DeleteEntry": viewers may only call Get* and List*



=== TEST 11: an undefined document ({}) is a denial in either failure mode
--- init
opa_reset();
--- config
    @COMMON@
    location /open/ {
        grpc_guard_auth jwt;
        grpc_guard_authz_request /_authz/undefined failure=open;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
    location / {
        grpc_guard_auth jwt;
        grpc_guard_authz_request /_authz/undefined;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call eval
[main::call('/ledger.Ledger/GetEntry', 'ADMIN'),
 main::call('/open/GetEntry', 'ADMIN')]
--- grpc_status: 7
--- grpc_message: permission denied
--- upstream_calls: 0
--- audit_check eval
main::audit_is(['7 deny authz_denied -', '7 deny authz_denied -'])



=== TEST 12: the engine answers 500: failure=closed gives 14 authz_unavailable, failure=open lets the call pass audited with that reason
--- init
opa_reset();
--- config
    @COMMON@
    location /open.Svc/ {
        grpc_guard_auth jwt;
        grpc_guard_authz_request /_authz/error failure=open;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
    location / {
        grpc_guard_auth jwt;
        grpc_guard_authz_request /_authz/error failure=closed;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call eval
[main::call('/ledger.Ledger/GetEntry', 'ADMIN'),
 main::call('/open.Svc/GetEntry', 'ADMIN')]
--- grpc_status eval
[14, 0]
--- grpc_message eval
['service unavailable', undef]
--- upstream_calls: 1
--- audit_check eval
main::audit_is(['14 deny authz_unavailable -', '0 allow authz_unavailable -'])
--- access_log
authz 14 deny reason=authz_unavailable
authz 0 allow reason=authz_unavailable
--- error_log eval
[qr/fetch of "\/_authz\/error" failed: the reply is not an answer \(status 500\)/,
 qr/refused "\/ledger.Ledger\/GetEntry" with 14: authz_unavailable/,
 qr/no decision for "\/open.Svc\/GetEntry", let through \(failure=open\)/]



=== TEST 13: a failure is never kept: the next call asks again
--- init
Time::HiRes::sleep(1.1);
opa_reset();
--- grpc_call eval
main::call('/ledger.Ledger/GetEntry', 'ADMIN')
--- grpc_status: 14
--- audit_check eval
sub {
    is(scalar @{ main::opa_requests() }, 1, 'asked again');
    return 1;
}



=== TEST 14: a reply that is not JSON is no answer: 14
--- init
opa_reset();
--- config
    @COMMON@
    location / {
        grpc_guard_auth jwt;
        grpc_guard_authz_request /_authz/garbage;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call eval
main::call('/ledger.Ledger/GetEntry', 'ADMIN')
--- grpc_status: 14
--- grpc_message: service unavailable
--- upstream_calls: 0
--- audit_check eval
main::audit_is(['14 deny authz_unavailable -'])



=== TEST 15: the engine is too slow (proxy_read_timeout 1s): closed gives 14, open lets the call pass
--- init
opa_reset();
--- config
    @COMMON@
    location /open.Svc/ {
        grpc_guard_auth jwt;
        grpc_guard_authz_request /_authz/slow failure=open;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
    location / {
        grpc_guard_auth jwt;
        grpc_guard_authz_request /_authz/slow;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call eval
[main::call('/ledger.Ledger/GetEntry', 'ADMIN'),
 main::call('/open.Svc/GetEntry', 'ADMIN')]
--- grpc_status eval
[14, 0]
--- upstream_calls: 1
--- audit_check eval
main::audit_is(['14 deny authz_unavailable -', '0 allow authz_unavailable -'])
--- error_log eval
qr/upstream timed out .* while reading response header from upstream/



=== TEST 16: cache=: a decision, allow or deny, is asked once for the same caller and method
--- init
opa_reset();
--- config
    @COMMON@
    location / {
        grpc_guard_auth jwt;
        grpc_guard_authz_request /_authz/reasons cache=60s;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
    location = /metrics {
        grpc_guard_metrics;
    }
--- grpc_call eval
[main::call('/ledger.Ledger/GetEntry', 'VIEWER'),
 main::call('/ledger.Ledger/GetEntry', 'VIEWER'),
 main::call('/ledger.Ledger/GetEntry', 'VIEWER2'),
 main::call('/ledger.Ledger/DeleteEntry', 'VIEWER'),
 main::call('/ledger.Ledger/DeleteEntry', 'VIEWER'),
 main::call('/ledger.Ledger/GetEntry', 'ADMIN')]
--- grpc_status eval
[0, 0, 0, 7, 7, 0]
--- upstream_calls: 4
--- audit_check eval
sub {
    my $in = main::opa_inputs();
    is_deeply([map { "$_->{principal} $_->{method}" } @$in],
              ['victor /ledger.Ledger/GetEntry',
               'victor /ledger.Ledger/DeleteEntry',
               'ada /ledger.Ledger/GetEntry'],
              'three questions asked, each once');
    main::audit_is(['0 allow - -', '0 allow - -', '0 allow - -',
                    '7 deny authz_denied viewers may only call Get* and List*',
                    '7 deny authz_denied viewers may only call Get* and List*',
                    '0 allow - -'])->($_[0]);
    return 1;
}



=== TEST 17: the metrics count them: three fetches, each waited for by its call, three kept decisions used; two refusals authz_denied
--- request
GET /metrics
--- response_body_like eval
my @lines = (
    'grpc_guard_requests_total{server="localhost",service="other",'
    . 'decision="deny",reason="authz_denied",grpc_status="7"} 2',
    'grpc_guard_remote_requests_total{kind="authz",result="ok"} 3',
    'grpc_guard_remote_requests_total{kind="authz",result="failed"} 0',
    'grpc_guard_remote_cache_total{kind="authz",result="hit"} 3',
    'grpc_guard_remote_cache_total{kind="authz",result="wait"} 3',
    'grpc_guard_remote_cache_total{kind="authz",result="unavailable"} 0');
my $re = join '\n(?:.*\n)?', map { quotemeta } @lines;
qr/\n$re\n/s



=== TEST 18: the same question asked by 10 calls at once, on 2 workers: one request, one answer for all (no cache=)
--- init
opa_reset();
--- config
    @COMMON@
    location / {
        grpc_guard_auth jwt;
        grpc_guard_authz_request /_authz/slowish;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call eval
main::call('/ledger.Ledger/GetEntry', 'ADMIN')
--- grpc_status: 0
--- audit_check eval
sub {
    main::opa_reset();
    my $codes = main::together('/ledger.Ledger/GetEntry',
                               ($ENV{TEST_NGINX_JWT_VIEWER}) x 10);
    is_deeply($codes, [(0) x 10], '10 concurrent calls pass');
    is(scalar @{ main::opa_requests() }, 1, 'one request to the engine');
    main::opa_reset();
    $codes = main::together('/ledger.Ledger/DeleteEntry',
                            ($ENV{TEST_NGINX_JWT_VIEWER}) x 10);
    is_deeply($codes, [(7) x 10], '10 concurrent calls refused');
    is(scalar @{ main::opa_requests() }, 1, 'one request to the engine');
    my %pids = map { /pid=(\d+)/ ? ($1 => 1) : () }
               split /\n/, read_file("$ENV{TEST_NGINX_SERVER_ROOT}/logs/access.log");
    note('calls answered by ' . scalar(keys %pids) . ' worker(s)');
    return 1;
}



=== TEST 19: an ACL deny is final and a public method is not asked about; the engine sees only what the ACL allowed
--- init
opa_reset();
--- config
    @COMMON@
    location / {
        grpc_guard_auth jwt;
        grpc_guard_public /grpc.health.v1.Health/*;
        grpc_guard_allow /ledger.Ledger/Get* name=read;
        grpc_guard_authz_request /_authz/allow;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call eval
[main::call('/ledger.Ledger/DeleteEntry', 'ADMIN'),
 main::call('/grpc.health.v1.Health/Check', ''),
 main::call('/ledger.Ledger/GetEntry', 'ADMIN')]
--- grpc_status eval
[7, 0, 0]
--- upstream_calls: 2
--- audit_check eval
sub {
    my $in = main::opa_inputs();
    is_deeply([map { $_->{method} } @$in], ['/ledger.Ledger/GetEntry'],
              'one question: the call the ACL allowed');
    main::audit_is(['7 deny acl_default_deny -', '0 public - -',
                    '0 allow - read'])->($_[0]);
    return 1;
}



=== TEST 20: grpc_guard_authz_request alone turns the guard on; "off" at an inner level turns it off there
--- init
opa_reset();
--- config
    @COMMON@
    grpc_guard_authz_request /_authz/deny;
    location /free.Svc/ {
        grpc_guard_authz_request off;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
    location / {
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- grpc_call eval
[main::call('/ledger.Ledger/GetEntry', ''),
 main::call('/free.Svc/GetEntry', '')]
--- grpc_status eval
[7, 0]
--- upstream_calls: 1
--- audit_check eval
sub {
    my $in = main::opa_inputs();
    is(scalar @$in, 1, 'one question');
    is_deeply($in->[0], { method => '/ledger.Ledger/GetEntry',
                          service => 'ledger.Ledger',
                          authority => "127.0.0.1:$ENV{TEST_NGINX_SERVER_PORT}",
                          source => { ip => '127.0.0.1' },
                          tls => JSON::PP::false },
              'an anonymous caller: only the call and its source');
    main::audit_is(['7 deny authz_denied -', '0 allow - -'])->($_[0]);
    return 1;
}



=== TEST 21: configuration: parameters are checked
--- config
    location / {
        grpc_guard_authz_request /_authz/authz cache=500ms failure=maybe;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- must_die
--- error_log
invalid parameter "cache=500ms"



=== TEST 22: configuration: the URI of a location is expected
--- config
    location / {
        grpc_guard_authz_request http://opa:8181/v1/data/grpc/authz;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- must_die
--- error_log
the URI of a location ("/...") is expected
