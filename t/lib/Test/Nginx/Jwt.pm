package Test::Nginx::Jwt;

# JWT keys and tokens for the test files, made at test time by
# t/lib/mkjwt.py (python3-cryptography; its docstring lists the keys and
# the token specs).  No private key is ever committed.
#
#   use Test::Nginx::Socket 'no_plan';
#   use Test::Nginx::Jwt qw(jwt_keys tokens);
#
#   our $JwtDir = jwt_keys();     # servroot/jwt, also $TEST_NGINX_JWT_DIR
#   tokens(RS256 => { key => 'rsa', kid => 'rsa1' }, ...);
#                                 # $TEST_NGINX_JWT_RS256, ...

use strict;
use warnings;

use Cwd qw(abs_path);
use Exporter qw(import);
use File::Basename qw(dirname);
use JSON::PP ();
use Test::More ();

our @EXPORT_OK = qw(jwt_keys tokens);

my $Mkjwt = abs_path(dirname(__FILE__) . '/../../mkjwt.py');
my $Json = JSON::PP->new->canonical;
my $Dir;

# jwt_keys() -> the directory of the keys (made once; kept when present)
sub jwt_keys {
    return $Dir if defined $Dir;
    my $dir = "$ENV{TEST_NGINX_WORK_DIR}/jwt";
    system('/usr/bin/python3', $Mkjwt, 'keys', $dir) == 0
        or Test::More::BAIL_OUT("mkjwt.py keys $dir failed");
    $ENV{TEST_NGINX_JWT_DIR} = $dir;
    return $Dir = $dir;
}

# tokens(NAME => SPEC, ...): sets $TEST_NGINX_JWT_NAME for each; returns
# { NAME => token }
sub tokens {
    my %specs = @_;
    my $dir = jwt_keys();
    open my $fh, '-|', '/usr/bin/python3', $Mkjwt, 'batch', $dir,
        $Json->encode(\%specs) or Test::More::BAIL_OUT("mkjwt.py: $!");
    my $out = do { local $/; <$fh> };
    close $fh or Test::More::BAIL_OUT("mkjwt.py batch failed");
    my $t = $Json->decode($out);
    $ENV{"TEST_NGINX_JWT_$_"} = $t->{$_} for keys %$t;
    return $t;
}

1;
