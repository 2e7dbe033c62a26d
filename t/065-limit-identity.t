# Limits keyed on the caller's identity run after authentication (and the
# ACL), limits keyed on the address before it: an authenticated call is
# checked in two round trips at most, one per stage.  Needs JWT
# authentication (grpc_guard_auth jwt): skipped while the module has none.

use Test::Nginx::Socket::Grpc;
use FindBin;
use JSON::PP ();

require "$FindBin::Bin/data/limit.pl";

# does this module know grpc_guard_auth jwt?
{
    my $dir = work_dir() . '/probe';
    system('mkdir', '-p', "$dir/logs");
    my $modules = join '', map { "load_module $_;\n" }
                           grep { length } split /\s+/,
                           $ENV{TEST_NGINX_LOAD_MODULES} // '';
    Test::Nginx::Proc::write_file("$dir/nginx.conf", $modules
        . "events {}\nhttp { grpc_guard_auth jwt; }\n");
    my $r = Test::Nginx::Proc::run_cmd([$ENV{TEST_NGINX_BINARY}
                                        || '/usr/sbin/nginx',
                                        '-t', '-p', "$dir/", '-c',
                                        "$dir/nginx.conf"]);
    if ($r->{err} =~ /unknown directive "grpc_guard_auth"|invalid authentication method/) {
        plan(skip_all => 'the module has no JWT authentication yet');
    }
}

plan('no_plan');

our $Mkjwt = "$Test::Nginx::Grpc::LibDir/mkjwt.py";
our $JwtDir = work_dir() . '/jwt';

system($Test::Nginx::Grpc::Python, $Mkjwt, 'keys', $JwtDir) == 0
    or BAIL_OUT("mkjwt.py keys $JwtDir failed");
$ENV{TEST_NGINX_JWT_DIR} = $JwtDir;

{
    my $json = JSON::PP->new->canonical;
    my %specs = (
        ALICE => { key => 'rsa', kid => 'rsa1', claims => { sub => 'alice' } },
        BOB => { key => 'rsa', kid => 'rsa1', claims => { sub => 'bob' } },
    );
    open my $fh, '-|', $Test::Nginx::Grpc::Python, $Mkjwt, 'batch', $JwtDir,
        $json->encode(\%specs) or BAIL_OUT("mkjwt.py: $!");
    my $out = do { local $/; <$fh> };
    close $fh or BAIL_OUT('mkjwt.py batch failed');
    my $t = $json->decode($out);
    $ENV{"TEST_NGINX_JWT_$_"} = $t->{$_} for keys %$t;
}

sub as {
    my ($who, %o) = @_;
    return { %o, metadata => [['authorization',
                               "Bearer $ENV{\"TEST_NGINX_JWT_$who\"}"]] };
}

$ENV{TEST_NGINX_REDIS_PORT} = start_redis();

no_shuffle();
no_root_location();
run_tests();

__DATA__

=== TEST 1: a principal's limit after authentication, an address limit before it
--- http_config
    grpc_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT timeout=2s;
--- config
    grpc_guard_require_tls off;
    location / {
        grpc_guard_auth jwt;
        grpc_guard_jwt_key_file $TEST_NGINX_JWT_DIR/jwks.json;
        grpc_guard_limit rate=100r/h key=$remote_addr name=i0;
        grpc_guard_limit rate=2r/h key=$grpc_guard_principal name=i1;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- init
my $evalsha = redis_calls('evalsha');
my @r = lcalls(as('ALICE'), as('ALICE'), as('ALICE'), as('BOB'), as('BOB'),
               {});
is(join(' ', map { $_->{code} } @r), '0 0 8 0 0 16',
   'alice: 2 pass, the 3rd is over; bob has his own count; no token: 16');
check_refusal($r[2], 'i1', 2, 3600, "alice's 3rd call");
my $h = int(time() / 3600);
is(redis_cmd(redis_port(), 'HGET', 'grpc_guard:{limit}:i1:3600s:alice', $h),
   2, 'i1 counted 2 calls of alice');
is(redis_cmd(redis_port(), 'HGET', 'grpc_guard:{limit}:i0:3600s:127.0.0.1',
             $h),
   6, 'i0 counted every call, also those refused later');
is(redis_calls('evalsha') - $evalsha, 11,
   'one round trip per stage: 2 for authenticated calls, 1 for the other');
--- no_error_log
[error]



=== TEST 2: the address limit refuses before authentication is looked at
--- http_config
    grpc_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT timeout=2s;
--- config
    grpc_guard_require_tls off;
    location / {
        grpc_guard_auth jwt;
        grpc_guard_jwt_key_file $TEST_NGINX_JWT_DIR/jwks.json;
        grpc_guard_limit rate=2r/h key=$remote_addr name=i2;
        grpc_guard_limit rate=100r/h key=$grpc_guard_jwt_claim_sub name=i3;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- init
my @r = lcalls({}, {}, {}, as('ALICE'));
is(join(' ', map { $_->{code} } @r), '16 16 8 8',
   'two calls without a token get 16, then the address is over its limit');
check_refusal($r[3], 'i2', 2, 3600, 'alice, from the same address');
is(redis_cmd(redis_port(), 'EXISTS', 'grpc_guard:{limit}:i3:3600s:alice'),
   0, 'the claim-keyed limit was never reached');
