# Every configuration in conf-examples/ must pass `nginx -t` with the
# module loaded.  Paths to certificates, keys and key sets in the examples
# are placeholders, so they are replaced by files made here with openssl.

use strict;
use warnings;

use Test::More;
use File::Temp qw(tempdir);
use File::Basename qw(basename dirname);
use Cwd qw(abs_path);

my $root = abs_path(dirname(__FILE__) . '/..');
my $nginx = $ENV{TEST_NGINX_BINARY} || '/usr/sbin/nginx';
my ($module) = split ' ', ($ENV{TEST_NGINX_LOAD_MODULES}
                           || "$root/objs/ngx_http_grpc_guard_module.so");

plan skip_all => "module not built: $module" unless -f $module;

my @examples = sort glob("$root/conf-examples/*.conf");
ok(@examples >= 2, 'conf-examples/ has examples');

my $dir = tempdir(CLEANUP => 1);
mkdir "$dir/logs";
mkdir "$dir/cache";

sub run {
    my $out = `(@_) 2>&1`;
    return ($? >> 8, $out);
}

# one CA, one server certificate and key, used for every placeholder
my ($rc, $out) = run("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256"
    . " -nodes -days 2 -subj /CN=example-ca -keyout $dir/ca.key -out $dir/ca.crt");
is($rc, 0, 'CA made') or diag $out;

($rc, $out) = run("openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes"
    . " -subj /CN=localhost -keyout $dir/server.key -out $dir/server.csr"
    . " && openssl x509 -req -in $dir/server.csr -CA $dir/ca.crt"
    . " -CAkey $dir/ca.key -CAcreateserial -days 2 -out $dir/server.crt");
is($rc, 0, 'server certificate made') or diag $out;

# a JWKS with one EC P-256 key, for examples that verify tokens
($rc, $out) = run("/usr/bin/python3 -c '"
    . 'import json, base64, sys
from cryptography.hazmat.primitives.asymmetric import ec
k = ec.generate_private_key(ec.SECP256R1()).public_key().public_numbers()
b = lambda n: base64.urlsafe_b64encode(n.to_bytes(32, "big")).rstrip(b"=").decode()
json.dump({"keys": [{"kty": "EC", "crv": "P-256", "kid": "k1", "use": "sig",
           "alg": "ES256", "x": b(k.x), "y": b(k.y)}]}, open(sys.argv[1], "w"))'
    . "' $dir/jwks.json");
is($rc, 0, 'JWKS made') or diag $out;

my %fixture = (
    crt => "$dir/server.crt", pem => "$dir/server.crt", key => "$dir/server.key",
    json => "$dir/jwks.json",
);

for my $example (@examples) {
    my $name = basename($example);

    open my $in, '<', $example or die "$example: $!";
    my $conf = do { local $/; <$in> };
    close $in;

    $conf =~ s{load_module\s+\S*ngx_http_grpc_guard_module\.so;}
              {load_module $module;}g;

    # CA bundles are certificates too
    $conf =~ s{(/etc/nginx/\S+?)\.(crt|pem|key|json)\b}{$fixture{$2}}g;
    $conf =~ s{/var/log/nginx/}{$dir/logs/}g;
    $conf =~ s{/var/cache/nginx/}{$dir/cache/}g;
    $conf =~ s{/etc/nginx/(\S+?)\.txt\b}{$dir/$1.txt}g;
    $conf =~ s{/etc/nginx/(\S+?)\.pass\b}{$dir/$1.pass}g;

    # password files: a password on the first line
    for my $f ($conf =~ m{\Q$dir\E/(\S+?\.pass)}g) {
        open my $fh, '>', "$dir/$f" or die;
        print $fh "example-password\n";
        close $fh;
    }

    # relative key files are looked for next to the configuration
    for my $f ($conf =~ m{grpc_guard_api_key_file\s+([^/\s;]\S*?);}g) {
        open my $fh, '>', "$dir/$f" or die;
        close $fh;
    }

    for my $f ($conf =~ m{\Q$dir\E/(\S+?\.txt)}g) {
        open my $fh, '>', "$dir/$f" or die;
        close $fh;
    }

    my $file = "$dir/$name";
    open my $outf, '>', $file or die "$file: $!";
    print $outf $conf;
    close $outf;

    ($rc, $out) = run("$nginx -t -q -p $dir -c $file"
                      . " -e $dir/logs/error.log");
    is($rc, 0, "$name passes nginx -t") or diag $out;
}

done_testing();
