# The limiter's Redis over TLS (grpc_guard_redis ... tls): redis-server
# with --tls-port only, certificates made at test time; the server's
# certificate is verified (CA, name or IP address), a client certificate
# is given when Redis asks for one, the TLS session is reused; every way
# the handshake or the check can fail makes Redis unavailable, so the
# failure mode applies; the password goes only to a verified server and
# never into the logs.

use Test::Nginx::Socket::Grpc 'no_plan';
use FindBin;
use IO::Socket::INET;

require "$FindBin::Bin/data/limit.pl";

Test::Nginx::Socket::Grpc::init();

my $certs = cert_dir();

# a TLS-only Redis with the "server" certificate (CN=localhost,
# DNS:localhost, IP:127.0.0.1, signed by "ca"), a password and
# tls-auth-clients as given; client certificates come from
# upstream-client-ca
sub start_tls_redis {
    my ($auth_clients) = @_;
    my $port = free_port();
    return start_redis(port => $port, password => 'tls-s3cret', args => [
        '--port', '0', '--tls-port', $port,
        '--tls-cert-file', "$certs/server.crt",
        '--tls-key-file', "$certs/server.key",
        '--tls-ca-cert-file', "$certs/upstream-client-ca.crt",
        '--tls-auth-clients', $auth_clients]);
}

$ENV{TEST_NGINX_REDIS_PORT} = start_tls_redis('no');
$ENV{TEST_NGINX_MTLS_REDIS_PORT} = start_tls_redis('yes');

# a plain TCP Redis, for TLS spoken to a server that does not
$ENV{TEST_NGINX_PLAIN_REDIS_PORT} = start_redis();

# a TCP listener that never answers: the TLS handshake hangs
my $silent = IO::Socket::INET->new(Listen => 16, LocalAddr => '127.0.0.1',
                                   LocalPort => 0, ReuseAddr => 1)
    or die "listen: $!";
$ENV{TEST_NGINX_SILENT_PORT} = $silent->sockport;

# redis-cli over TLS, with the client certificate either server accepts
sub tls_redis_cmd {
    my ($port, @args) = @_;
    return redis_cmd($port, '--tls', '--cacert', "$certs/ca.crt",
                     '--cert', "$certs/upstream-client.crt",
                     '--key', "$certs/upstream-client.key",
                     '-a', 'tls-s3cret', '--no-auth-warning', @args);
}

sub auth_calls {
    my ($port) = @_;
    my $out = tls_redis_cmd($port, 'INFO', 'commandstats');
    return $out =~ /^cmdstat_auth:calls=(\d+)/m ? $1 : 0;
}

sub minute { int(time() / 60) }

# a Redis Cluster of three masters over TLS only (the cluster bus too,
# which always asks for a client certificate: the nodes give
# upstream-client's), with a password; the nodes announce their TLS ports
our @tls_cluster;
Test::Nginx::Proc::write_file(work_dir() . '/cluster-ca.crt',
    Test::Nginx::Proc::read_file("$certs/ca.crt")
    . Test::Nginx::Proc::read_file("$certs/upstream-client-ca.crt"));
for my $i (1 .. 3) {
    my $port = cluster_port();
    push @tls_cluster, start_redis(port => $port, password => 'tls-s3cret',
                                   args => [
        '--port', '0', '--tls-port', $port, '--tls-cluster', 'yes',
        '--tls-cert-file', "$certs/server.crt",
        '--tls-key-file', "$certs/server.key",
        '--tls-ca-cert-file', work_dir() . '/cluster-ca.crt',
        '--tls-client-cert-file', "$certs/upstream-client.crt",
        '--tls-client-key-file', "$certs/upstream-client.key",
        '--tls-auth-clients', 'no',
        '--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf']);
}
{
    my $r = Test::Nginx::Proc::run_cmd(['redis-cli', '--tls', '--cacert',
        "$certs/ca.crt", '-a', 'tls-s3cret', '--no-auth-warning',
        '--cluster', 'create', (map { "127.0.0.1:$_" } @tls_cluster),
        '--cluster-yes'], timeout => 60);
    die "redis-cli --cluster create: $r->{out}$r->{err}" if $r->{status};
    my $deadline = time + 30;
    while (time < $deadline) {
        last unless grep { tls_redis_cmd($_, 'CLUSTER', 'INFO')
                           !~ /cluster_state:ok/ } @tls_cluster;
        select(undef, undef, undef, 0.1);
    }
}
$ENV{TEST_NGINX_TLS_CLUSTER} = "127.0.0.1:$tls_cluster[0]";

no_shuffle();
no_root_location();
run_tests();

__DATA__

=== TEST 1: TLS with the server's certificate verified against its IP address SAN: 2r/m gives 2 passes, then 8
--- http_config
    grpc_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT password=tls-s3cret
                     tls tls_trusted_certificate=$TEST_NGINX_CERT_DIR/ca.crt
                     timeout=2s;
--- config
    location / {
        grpc_guard_limit rate=2r/m key=$remote_addr name=t1;
        grpc_guard_limit_failure closed;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- init
my $m = minute();
my @r = lcalls(({}) x 3);
my $m2 = minute();
is(join(' ', map { $_->{code} } @r[0, 1]), '0 0', 'two calls pass');
check_refusal($r[2], 't1', 2, 60, 'the 3rd call');
SKIP: {
    skip 'the minute changed during the calls', 1 if $m != $m2;
    is(tls_redis_cmd($ENV{TEST_NGINX_REDIS_PORT}, 'HGET',
                     'grpc_guard:{limit}:t1:60s:127.0.0.1', $m),
       2, 'two calls counted in Redis, over TLS');
}
--- error_log eval
qr/\[debug\] .*grpc guard redis TLS session reused: 0/
--- no_error_log
[error]
tls-s3cret



=== TEST 2: the TLS session is reused when the connection is made again
--- http_config
    grpc_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT password=tls-s3cret
                     tls tls_trusted_certificate=$TEST_NGINX_CERT_DIR/ca.crt
                     timeout=2s;
--- config
    location / {
        grpc_guard_limit rate=100r/m key=$remote_addr name=t2;
        grpc_guard_limit_failure closed;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- init
is(join(' ', lcodes(2)), '0 0', 'calls pass');
# Redis closes nginx's idle connection; the next call makes a new one
tls_redis_cmd($ENV{TEST_NGINX_REDIS_PORT}, 'CLIENT', 'KILL', 'TYPE',
              'normal');
sleep 0.3;
is(join(' ', lcodes(2)), '0 0', 'calls pass on the new connection');
--- error_log eval
[qr/\[debug\] .*grpc guard redis TLS session reused: 0/,
 qr/\[debug\] .*grpc guard redis TLS session reused: 1/]
--- no_error_log
[error]
tls-s3cret



=== TEST 3: tls-auth-clients yes: the client certificate is given
--- http_config
    grpc_guard_redis 127.0.0.1:$TEST_NGINX_MTLS_REDIS_PORT
                     password=tls-s3cret tls
                     tls_trusted_certificate=$TEST_NGINX_CERT_DIR/ca.crt
                     tls_certificate=$TEST_NGINX_CERT_DIR/upstream-client.crt
                     tls_certificate_key=$TEST_NGINX_CERT_DIR/upstream-client.key
                     timeout=2s;
--- config
    location / {
        grpc_guard_limit rate=2r/m key=$remote_addr name=t3;
        grpc_guard_limit_failure closed;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- init
my @codes = lcodes(3);
is("@codes", '0 0 8', 'limited through Redis');
is(tls_redis_cmd($ENV{TEST_NGINX_MTLS_REDIS_PORT}, 'EXISTS',
                 'grpc_guard:{limit}:t3:60s:127.0.0.1'),
   1, 'the key is there');
--- no_error_log
[error]
tls-s3cret



=== TEST 4: tls-auth-clients yes and no client certificate: Redis refuses the connection, failure closed gives 14
--- http_config
    grpc_guard_redis 127.0.0.1:$TEST_NGINX_MTLS_REDIS_PORT
                     password=tls-s3cret tls
                     tls_trusted_certificate=$TEST_NGINX_CERT_DIR/ca.crt
                     timeout=2s;
--- config
    location / {
        grpc_guard_limit rate=10r/m key=$remote_addr name=t4;
        grpc_guard_limit_failure closed;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- init
my @codes = lcodes(2);
is("@codes", '14 14', 'refused with 14');
--- error_log eval
# TLS 1.3: the client's handshake is over before Redis checks its
# certificate; the refusal comes as an alert on the first read, or as a
# reset on a write
[qr/SSL_(read|write)\(\) failed .* while talking to redis, grpc guard redis: 127\.0\.0\.1:\d+/,
 qr/grpc guard: redis 127\.0\.0\.1:\d+ is unavailable/]
--- no_error_log
tls-s3cret



=== TEST 5: a server certificate from a CA not trusted: refused before AUTH, failure closed gives 14
--- http_config
    grpc_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT password=tls-s3cret
                     tls tls_trusted_certificate=$TEST_NGINX_CERT_DIR/other-ca.crt
                     timeout=2s;
--- config
    location / {
        grpc_guard_limit rate=10r/m key=$remote_addr name=t5;
        grpc_guard_limit_failure closed;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- init
my $auth0 = auth_calls($ENV{TEST_NGINX_REDIS_PORT});
my @codes = lcodes(2);
is("@codes", '14 14', 'refused with 14');
# redis-cli's own AUTH counts once
is(auth_calls($ENV{TEST_NGINX_REDIS_PORT}) - $auth0, 1,
   'nginx sent no AUTH to the server it could not verify');
--- error_log eval
[qr/\[error\] .*redis certificate verify failed: \(\d+:unable to [^)]+\) while TLS handshaking to redis, grpc guard redis: 127\.0\.0\.1:\d+/,
 qr/grpc guard: redis 127\.0\.0\.1:\d+ is unavailable/]
--- no_error_log
tls-s3cret



=== TEST 6: the same with tls_verify=off: the certificate is not checked
--- http_config
    grpc_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT password=tls-s3cret
                     tls tls_verify=off timeout=2s;
--- config
    location / {
        grpc_guard_limit rate=2r/m key=$remote_addr name=t6;
        grpc_guard_limit_failure closed;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- init
my @codes = lcodes(3);
is("@codes", '0 0 8', 'limited through Redis');
--- no_error_log
[error]
tls-s3cret



=== TEST 7: tls_name= that the certificate does not have: refused, failure closed gives 14
--- http_config
    grpc_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT password=tls-s3cret
                     tls tls_trusted_certificate=$TEST_NGINX_CERT_DIR/ca.crt
                     tls_name=redis.example.org timeout=2s;
--- config
    location / {
        grpc_guard_limit rate=10r/m key=$remote_addr name=t7;
        grpc_guard_limit_failure closed;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- init
my @codes = lcodes(2);
is("@codes", '14 14', 'refused with 14');
--- error_log eval
qr/\[error\] .*redis certificate does not match "redis\.example\.org"/
--- no_error_log
tls-s3cret



=== TEST 8: tls_name=localhost, the certificate's DNS name: limited through Redis
--- http_config
    grpc_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT password=tls-s3cret
                     tls tls_trusted_certificate=$TEST_NGINX_CERT_DIR/ca.crt
                     tls_name=localhost timeout=2s;
--- config
    location / {
        grpc_guard_limit rate=2r/m key=$remote_addr name=t8;
        grpc_guard_limit_failure closed;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- init
my @codes = lcodes(3);
is("@codes", '0 0 8', 'limited through Redis');
--- no_error_log
[error]



=== TEST 9: an IP address that is not among the certificate's IP SANs
--- http_config
    grpc_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT password=tls-s3cret
                     tls tls_trusted_certificate=$TEST_NGINX_CERT_DIR/ca.crt
                     tls_name=127.0.0.2 timeout=2s;
--- config
    location / {
        grpc_guard_limit rate=10r/m key=$remote_addr name=t9;
        grpc_guard_limit_failure local;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- init
my @codes = lcodes(1);
is("@codes", '0', 'failure local: counted here');
--- error_log eval
qr/\[error\] .*redis certificate does not match "127\.0\.0\.2"/



=== TEST 10: TLS to a Redis that speaks plain TCP: the handshake fails
--- http_config
    grpc_guard_redis 127.0.0.1:$TEST_NGINX_PLAIN_REDIS_PORT tls
                     tls_trusted_certificate=$TEST_NGINX_CERT_DIR/ca.crt
                     timeout=2s;
--- config
    location / {
        grpc_guard_limit rate=10r/m key=$remote_addr name=t10;
        grpc_guard_limit_failure closed;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- init
my @codes = lcodes(1);
is("@codes", '14', 'refused with 14');
--- error_log eval
qr/\[error\] .*(TLS handshake with redis failed|redis did not complete the TLS handshake in time)/



=== TEST 11: a handshake that never ends: calls wait at most timeout=, the connection gives up after connect_timeout=
--- http_config
    grpc_guard_redis 127.0.0.1:$TEST_NGINX_SILENT_PORT tls
                     tls_trusted_certificate=$TEST_NGINX_CERT_DIR/ca.crt
                     timeout=100ms connect_timeout=1500ms;
--- config
    location / {
        grpc_guard_limit rate=10r/m key=$remote_addr name=t11;
        grpc_guard_limit_failure closed;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- init
my $t0 = time;
my $r = lcall();
my $took = time - $t0;
is($r->{code}, 14, 'refused with 14');
# the client's own start-up is in there too: far below connect_timeout
# is what shows that the call did not wait for the handshake
cmp_ok($r->{elapsed}, '<', 1.2, "the call did not wait for the handshake "
       . "($r->{elapsed} s)");
sleep 2;
--- error_log eval
qr/\[error\] .*redis did not complete the TLS handshake in time/
--- timeout: 15



=== TEST 12: tls_trusted_certificate= without tls
--- http_config
    grpc_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT
                     tls_trusted_certificate=$TEST_NGINX_CERT_DIR/ca.crt;
--- must_die
--- error_log eval
qr/\[emerg\] .*"tls_trusted_certificate=\S+ca\.crt" needs "tls" in \S+nginx\.conf:\d+/



=== TEST 13: tls_name= without tls
--- http_config
    grpc_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT tls_name=x tls_verify=off;
--- must_die
--- error_log
"tls_name=x" needs "tls"



=== TEST 14: tls with verification (the default) and no tls_trusted_certificate=
--- http_config
    grpc_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT tls;
--- must_die
--- error_log eval
qr/\[emerg\] .*"grpc_guard_redis" directive verifies the certificate of Redis with "tls": it needs "tls_trusted_certificate=" \(or "tls_verify=off"\) in \S+nginx\.conf:\d+/



=== TEST 15: tls_verify=on said and no tls_trusted_certificate=
--- http_config
    grpc_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT tls tls_verify=on;
--- must_die
--- error_log
it needs "tls_trusted_certificate="



=== TEST 16: a trusted certificate file that cannot be read
--- http_config
    grpc_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT tls
                     tls_trusted_certificate=$TEST_NGINX_CERT_DIR/missing-ca.crt;
--- must_die
--- error_log eval
qr/\[emerg\] .*cannot read "tls_trusted_certificate=\S+missing-ca\.crt" \(2: No such file or directory\) in \S+nginx\.conf:\d+/



=== TEST 17: a client key file that cannot be read
--- http_config
    grpc_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT tls tls_verify=off
                     tls_certificate=$TEST_NGINX_CERT_DIR/upstream-client.crt
                     tls_certificate_key=$TEST_NGINX_CERT_DIR/missing.key;
--- must_die
--- error_log eval
qr/\[emerg\] .*cannot read "tls_certificate_key=\S+missing\.key"/



=== TEST 18: tls_certificate= without tls_certificate_key=
--- http_config
    grpc_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT tls tls_verify=off
                     tls_certificate=$TEST_NGINX_CERT_DIR/upstream-client.crt;
--- must_die
--- error_log
has "tls_certificate=" without "tls_certificate_key="



=== TEST 19: a file that is not a certificate
--- http_config
    grpc_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT tls
                     tls_trusted_certificate=$TEST_NGINX_HTML_DIR/not-a-cert.pem;
--- user_files
>>> not-a-cert.pem
hello
--- must_die
--- error_log eval
qr/\[emerg\] .*cannot load "tls_trusted_certificate=\S+not-a-cert\.pem" in \S+nginx\.conf:\d+/



=== TEST 20: an unknown tls_ parameter
--- http_config
    grpc_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT tls tls_verify=maybe;
--- must_die
--- error_log
invalid parameter "tls_verify=maybe"




=== TEST 21: Redis Cluster over TLS with a password: every node verified, counters on every master
--- http_config
    grpc_guard_redis cluster=$TEST_NGINX_TLS_CLUSTER password=tls-s3cret
                     tls tls_trusted_certificate=$TEST_NGINX_CERT_DIR/ca.crt
                     timeout=500ms;
--- config
    location / {
        grpc_guard_limit rate=2r/m key=$http_x_key name=tc;
        grpc_guard_limit_failure closed;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- init
my @calls;
for my $k (map { "k$_" } 1 .. 12) {
    push @calls, map { +{ metadata => [['x-key', $k]] } } 1 .. 3;
}
is(join(' ', map { $_->{code} } lcalls(@calls)),
   join(' ', ('0 0 8') x 12), 'each key: 2 pass, then 8');
my @n = map { 0 + tls_redis_cmd($_, 'DBSIZE') } @tls_cluster;
my $sum = 0;
$sum += $_ for @n;
is($sum, 12, 'one counter per key');
ok((!grep { $_ == 0 } @n), "every master holds counters (@n)");
--- no_error_log
tls-s3cret
