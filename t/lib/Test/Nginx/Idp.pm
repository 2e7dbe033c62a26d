package Test::Nginx::Idp;

# A real OpenID provider for the test files: oidc-provider (t/idp, pinned
# in its package-lock.json, installed by ci/install-deps.sh with npm ci),
# started and stopped by PID on a loopback port, with a key set the test
# chooses (rotation is a restart with another set) and a log of every
# request it answered.
#
#   use Test::Nginx::Socket::Grpc 'no_plan';
#   use Test::Nginx::Idp qw(idp_setup idp_start idp_stop ...);
#
#   idp_setup();        # fails the file without t/idp, unless
#                       # TEST_NGINX_NO_IDP=1 (then: passes, exits)
#   idp_start('k1', 'k2');      # the first key signs
#   $ENV{TEST_NGINX_IDP_PORT}, idp_port(), idp_log_file()
#   idp_token()                 # a JWT access token of client "svc"
#   idp_token(client => 'opaque', scope => 'api:write')   # an opaque one
#   idp_revoke($token)          # its owner ("opaque") revokes it
#   idp_calls($port, $method, @tokens)  # concurrent calls: their statuses
#   idp_call('k1', %more)       # a grpc_call with $TEST_NGINX_TOKEN_K1

use strict;
use warnings;

use Cwd qw(abs_path);
use Exporter qw(import);
use File::Basename qw(dirname);
use IO::Socket::INET ();
use JSON::PP ();
use POSIX ();
use Test::More ();
use Time::HiRes ();

use Test::Nginx::Proc qw(write_file);

our @EXPORT_OK = qw(idp_setup idp_port idp_dir idp_log_file idp_key
                    idp_start idp_stop idp_mode idp_reset_log
                    idp_requests idp_token idp_revoke idp_calls
                    idp_call);

my $Dir = abs_path(dirname(__FILE__) . '/../../../idp');
my $Parent = $$;
my ($Port, $Work, $KeysFile, $LogFile, $ModeFile, $OutFile, $Pid, %Keys);

sub idp_setup {
    if (!-d "$Dir/node_modules/oidc-provider"
        || system('node --version >/dev/null 2>&1') != 0)
    {
        if ($ENV{TEST_NGINX_NO_IDP}) {
            Test::More::pass('left out: TEST_NGINX_NO_IDP=1');
            exit 0;
        }

        Test::More::BAIL_OUT('t/idp is not installed: ci/install-deps.sh '
                             . 'runs npm ci there (Node.js 20 and npm '
                             . 'needed)');
    }

    $Work = Test::Nginx::Socket::Grpc::work_dir();
    $Port = Test::Nginx::Socket::Grpc::free_port();
    $KeysFile = "$Work/idp-keys.json";
    $LogFile = "$Work/idp-requests.log";
    $ModeFile = "$Work/idp-mode";
    $OutFile = "$Work/idp.out";
    $ENV{TEST_NGINX_IDP_PORT} = $Port;

    return $Port;
}

sub idp_port { $Port }
sub idp_dir { $Dir }
sub idp_log_file { $LogFile }

# a private JWK made by the provider's own runtime (node's crypto)
sub idp_key {
    my ($kid) = @_;
    return $Keys{$kid} //= do {
        my $jwk = `node $Dir/server.mjs --genkey $kid`;
        die "genkey $kid failed" unless $jwk =~ /^\{/;
        chomp $jwk;
        $jwk;
    };
}

sub idp_stop {
    return unless $Pid && $$ == $Parent;
    kill 'TERM', $Pid;
    for (1 .. 50) {
        last if waitpid($Pid, POSIX::WNOHANG()) != 0;
        Time::HiRes::sleep(0.1);
    }
    kill 'KILL', $Pid;
    waitpid($Pid, 0);
    $Pid = undef;

    # nothing answers on the port any more
    for (1 .. 50) {
        my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$Port",
                                      Timeout => 1) or last;
        close $s;
        Time::HiRes::sleep(0.1);
    }
}

# (re)starts the provider with these keys: the first one signs
sub idp_start {
    my (@kids) = @_;
    idp_stop();
    write_file($KeysFile,
               '{"keys": [' . join(', ', map { idp_key($_) } @kids) . ']}');
    my $pid = fork;
    die "fork: $!" unless defined $pid;
    if ($pid == 0) {
        open STDOUT, '>>', $OutFile or POSIX::_exit(127);
        open STDERR, '>&', \*STDOUT or POSIX::_exit(127);
        { exec 'node', "$Dir/server.mjs", $Port, $KeysFile, $LogFile,
               $ModeFile; }
        POSIX::_exit(127);
    }
    $Pid = $pid;
    for (1 .. 150) {
        my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$Port",
                                      Timeout => 1);
        if ($s) {
            close $s;
            return;
        }
        Time::HiRes::sleep(0.1);
    }
    die "the OpenID provider did not start (see $OutFile)";
}

END { local $?; idp_stop() }

sub idp_mode { write_file($ModeFile, $_[0] // '') }

sub idp_reset_log { write_file($LogFile, '') }

# the requests the provider got for a path: [{method, url, headers}]
sub idp_requests {
    my ($path) = @_;
    open my $fh, '<', $LogFile or return [];
    my @r = grep { $_->{url} eq $path }
            map { JSON::PP::decode_json($_) } grep { /\S/ } <$fh>;
    close $fh;
    return \@r;
}

# an access token from the provider's token endpoint (client credentials):
# a JWT for "svc" (the default), an opaque one for "opaque"
sub idp_token {
    my (%o) = @_;
    my $client = $o{client} // 'svc';
    my $scope = $o{scope} // 'api:read';
    my $out = `curl -sS -u $client:$client-secret -d grant_type=client_credentials -d 'scope=$scope' http://127.0.0.1:$Port/token`;
    my $tok = eval { JSON::PP::decode_json($out)->{access_token} };
    die "no token from the provider: $out" unless $tok;
    return $tok;
}

# the owner of an opaque token revokes it (RFC 7009): the HTTP status
sub idp_revoke {
    my ($tok, $client) = @_;
    $client //= 'opaque';
    my $code = `curl -sS -o /dev/null -w '%{http_code}' -u $client:$client-secret --data-urlencode 'token=$tok' http://127.0.0.1:$Port/token/revocation`;
    return $code;
}

# gRPC calls made together with these bearer tokens, each on a connection
# of its own (t/idp/calls.py): their statuses, in order
sub idp_calls {
    my ($port, $method, @tokens) = @_;
    my $in = "$Work/calls.json";
    write_file($in, JSON::PP::encode_json({ port => $port + 0,
                                            method => $method,
                                            tokens => \@tokens,
                                            timeout => 15 }));
    my $out = `/usr/bin/python3 $Dir/calls.py < $in`;
    my $r = eval { JSON::PP::decode_json($out) } or die "calls.py: $out";
    return $r->{codes};
}

# a call of a grpc_call section to /test.Echo/Unary on $TEST_NGINX_PORT2
# with the token $TEST_NGINX_TOKEN_<NAME>, looked up when the call is made
sub idp_call {
    my ($name, %more) = @_;
    return { method => '/test.Echo/Unary', port => '$TEST_NGINX_PORT2',
             metadata => ['authorization: Bearer $TEST_NGINX_TOKEN_' . uc $name,
                          @{ delete $more{metadata} || [] }],
             %more };
}

1;
