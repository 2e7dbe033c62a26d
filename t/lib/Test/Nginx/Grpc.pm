package Test::Nginx::Grpc;

# gRPC side of the harness: test certificates, the Python test backend
# (t/lib/grpc_backend.py), the Python test client (t/lib/grpc_client.py)
# and small wire helpers (frames, status names, percent-decoding).

use strict;
use warnings;
use File::Basename qw(dirname);
use File::Path qw(make_path);
use File::Spec;
use JSON::PP ();
use MIME::Base64 qw(decode_base64 encode_base64);
use Digest::SHA qw(sha256_hex);
use POSIX qw(:sys_wait_h);
use Time::HiRes qw(sleep time);
use Test::Nginx::Proc qw(run_cmd spawn stop_process is_alive read_file
                         write_file);

our $LibDir = File::Spec->rel2abs(dirname(dirname(dirname(__FILE__))));
our $Python = $ENV{TEST_NGINX_PYTHON} || '/usr/bin/python3';
our $Verbose = $ENV{TEST_NGINX_VERBOSE};
our $BackendDir;       # set by Test::Nginx::Socket (servroot/grpc_backend)
our $CertDir;          # set by Test::Nginx::Socket
our %Backends;         # port => { pid, record, log, opts }
our $Seq = 0;

my $JSON = JSON::PP->new->utf8->canonical->allow_nonref;

our %STATUS = (
    OK => 0, CANCELLED => 1, UNKNOWN => 2, INVALID_ARGUMENT => 3,
    DEADLINE_EXCEEDED => 4, NOT_FOUND => 5, ALREADY_EXISTS => 6,
    PERMISSION_DENIED => 7, RESOURCE_EXHAUSTED => 8,
    FAILED_PRECONDITION => 9, ABORTED => 10, OUT_OF_RANGE => 11,
    UNIMPLEMENTED => 12, INTERNAL => 13, UNAVAILABLE => 14,
    DATA_LOSS => 15, UNAUTHENTICATED => 16,
);

# "16", "UNAUTHENTICATED", "unauthenticated" -> 16
sub status_code {
    my ($v) = @_;
    return undef unless defined $v;
    $v =~ s/^\s+|\s+$//g;
    return $v + 0 if $v =~ /^\d+$/;
    my $n = $STATUS{uc $v};
    return defined $n ? $n : $v;
}

# one gRPC length-prefixed message
sub grpc_frame {
    my ($payload, $compressed) = @_;
    $payload = '' unless defined $payload;
    return pack('CN', $compressed ? 1 : 0, length $payload) . $payload;
}

# split a gRPC body into messages; returns (\@messages, $error)
sub parse_frames {
    my ($body) = @_;
    my @msgs;
    my $pos = 0;
    my $len = length $body;
    while ($pos < $len) {
        return (\@msgs, "truncated frame header at byte $pos")
            if $len - $pos < 5;
        my ($flag, $n) = unpack('CN', substr($body, $pos, 5));
        return (\@msgs, "truncated message at byte $pos")
            if $len - $pos - 5 < $n;
        push @msgs, substr($body, $pos + 5, $n);
        $pos += 5 + $n;
    }
    return (\@msgs, undef);
}

sub percent_decode {
    my ($s) = @_;
    return $s unless defined $s;
    $s =~ s/%([0-9A-Fa-f]{2})/chr hex $1/ge;
    return $s;
}

# gRPC's HTTP-to-gRPC status mapping (for non-200 answers)
sub http_to_grpc {
    my ($http) = @_;
    return 13 if $http == 400;
    return 16 if $http == 401;
    return 7  if $http == 403;
    return 12 if $http == 404;
    return 14 if $http == 429 || $http == 502 || $http == 503
                 || $http == 504;
    return 2;
}

# lowercase hex SHA-256 of a PEM certificate's DER (no colons)
sub cert_fingerprint {
    my ($file) = @_;
    $file = "$CertDir/$file" if $file !~ m{/} && defined $CertDir;
    my $pem = read_file($file);
    die "cannot read certificate $file\n" unless defined $pem;
    $pem =~ /-----BEGIN CERTIFICATE-----(.*?)-----END CERTIFICATE-----/s
        or die "no certificate in $file\n";
    return sha256_hex(decode_base64($1));
}

# ------------------------------------------------------------ certificates

# name => [signer, subject, SAN, EKU]; signer '' = self-signed CA
our @CERTS = (
    ['ca', '', '/O=Test/CN=grpc-guard test CA', undef, undef],
    ['server', 'ca', '/CN=localhost',
        'DNS:localhost,IP:127.0.0.1', 'serverAuth'],
    ['client-spiffe', 'ca', '/O=Example/CN=web',
        'URI:spiffe://example.org/ns/default/sa/web,'
        . 'URI:https://web.example.org/,DNS:client.example.org',
        'clientAuth'],
    ['client-dns', 'ca', '/CN=api', 'DNS:api.example.org', 'clientAuth'],
    # a SPIFFE-looking URI with a blank (left out), after a URI that ends
    # with the same bytes as it has without the blank
    ['client-spiffe-blank', 'ca', '/CN=blank',
        'URI:https://web.example.org/spiffe://prod/ns/a,'
        . 'URI:spiffe://pr d/ns/a', 'clientAuth'],
    ['client-billing', 'ca', '/O=Example/CN=billing',
        'URI:spiffe://example.org/ns/prod/sa/billing', 'clientAuth'],
    ['client-subject', 'ca', '/C=US/O=Example/OU=Ops/CN=legacy-client',
        undef, 'clientAuth'],
    ['other-ca', '', '/O=Other/CN=other test CA', undef, undef],
    ['untrusted', 'other-ca', '/O=Evil/CN=evil',
        'URI:spiffe://evil.example/sa/x', 'clientAuth'],
    ['upstream-ca', '', '/O=Test/CN=upstream test CA', undef, undef],
    ['upstream-server', 'upstream-ca', '/CN=localhost',
        'DNS:localhost,DNS:upstream.example.org,IP:127.0.0.1',
        'serverAuth'],
    ['upstream-client-ca', '', '/O=Test/CN=upstream client CA',
        undef, undef],
    ['upstream-client', 'upstream-client-ca', '/O=Example/CN=nginx-proxy',
        'URI:spiffe://example.org/ns/default/sa/nginx', 'clientAuth'],
);

sub _openssl {
    my ($dir, @args) = @_;
    _openssl_parallel($dir, [@args]);
}

# run several openssl commands at once (certificate generation is
# dominated by process start-up)
sub _openssl_parallel {
    my ($dir, @cmds) = @_;
    my %pids;
    my $i = 0;
    for my $c (@cmds) {
        my $err = "$dir/.openssl." . $i++ . ".err";
        my $pid = spawn(['openssl', @$c], stderr => $err);
        $pids{$pid} = [$c, $err];
    }
    my $deadline = time + 30;
    my @failed;
    while (%pids) {
        for my $pid (keys %pids) {
            my $r = waitpid($pid, WNOHANG);
            next unless $r == $pid || $r == -1;
            my ($c, $err) = @{ delete $pids{$pid} };
            if ($r == -1 || $? != 0) {
                push @failed, "openssl @$c: " . (read_file($err) // '');
            }
            unlink $err;
        }
        last unless %pids;
        if (time > $deadline) {
            kill 'KILL', $_ for keys %pids;
            waitpid($_, 0) for keys %pids;
            push @failed, 'openssl timed out';
            last;
        }
        sleep 0.005;
    }
    die join("\n", @failed) . "\n" if @failed;
    return;
}

sub make_certs {
    my ($dir) = @_;
    make_path($dir);
    my $cnf = "$dir/.req.cnf";
    write_file($cnf, "[req]\ndistinguished_name = dn\n[dn]\n");
    my $serial = 0x1000 + int rand 0x10000;

    # CAs first, then everything they sign, each phase in parallel
    for my $phase (0, 1) {
        my @cmds;
        for my $c (@CERTS) {
            my ($name, $signer, $subj, $san, $eku) = @$c;
            next if ($signer eq '') != ($phase == 0);
            my @args = ('req', '-config', $cnf, '-x509', '-new',
                '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256',
                '-nodes', '-keyout', "$dir/$name.key",
                '-out', "$dir/$name.crt",
                '-subj', $subj, '-days', '30', '-set_serial', $serial++);
            if ($signer eq '') {
                push @args, '-addext', 'basicConstraints=critical,CA:true',
                    '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
                    '-addext', 'subjectKeyIdentifier=hash';
            } else {
                push @args, '-CA', "$dir/$signer.crt",
                    '-CAkey', "$dir/$signer.key",
                    '-addext', 'basicConstraints=critical,CA:false',
                    '-addext', 'keyUsage=critical,digitalSignature';
                push @args, '-addext', "subjectAltName=$san" if $san;
                push @args, '-addext', "extendedKeyUsage=$eku" if $eku;
            }
            push @cmds, \@args;
        }
        push @cmds, _expired_csr_cmd($dir) if $phase == 1;
        _openssl_parallel($dir, @cmds);
    }
    _sign_expired($dir, $serial++);

    # convenience bundles
    write_file("$dir/client-spiffe.pem",
        read_file("$dir/client-spiffe.crt") . read_file("$dir/client-spiffe.key"));
    write_file("$dir/ca-bundle.crt",
        read_file("$dir/ca.crt") . read_file("$dir/other-ca.crt"));
    chmod 0644, glob("$dir/*.key");
    return;
}

# client-expired.crt: signed by ca, valid 2020-01-01 .. 2020-01-02
sub _expired_csr_cmd {
    my ($dir) = @_;
    my $w = "$dir/.ca-work";
    make_path($w);
    write_file("$w/req.cnf", "[req]\ndistinguished_name = dn\n[dn]\n");
    return ['req', '-config', "$w/req.cnf", '-new', '-newkey', 'ec',
        '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
        '-keyout', "$dir/client-expired.key", '-out', "$w/expired.csr",
        '-subj', '/O=Example/CN=expired'];
}

sub _sign_expired {
    my ($dir, $serial) = @_;
    my $w = "$dir/.ca-work";
    write_file("$w/index.txt", '');
    write_file("$w/serial", sprintf("%08X\n", $serial));
    write_file("$w/ca.cnf", <<"_EOC_");
[ca]
default_ca = test_ca
[test_ca]
database = $w/index.txt
new_certs_dir = $w
serial = $w/serial
default_md = sha256
policy = any
copy_extensions = copy
unique_subject = no
[any]
organizationName = optional
commonName = supplied
[ext]
basicConstraints = critical,CA:false
keyUsage = critical,digitalSignature
extendedKeyUsage = clientAuth
subjectAltName = URI:spiffe://example.org/ns/default/sa/expired
_EOC_
    _openssl($dir, 'ca', '-batch', '-config', "$w/ca.cnf", '-notext',
        '-cert', "$dir/ca.crt", '-keyfile', "$dir/ca.key",
        '-extensions', 'ext', '-startdate', '20200101000000Z',
        '-enddate', '20200102000000Z', '-in', "$w/expired.csr",
        '-out', "$dir/client-expired.crt");
    return;
}

# ------------------------------------------------------------ backends

sub _cert_path {
    my ($f) = @_;
    return undef unless defined $f;
    return $f if $f =~ m{/};
    return "$CertDir/$f";
}

# start_backend(tls => 1, mtls => 1, cert => F, key => F, client_ca => F,
#               port => N, record => FILE, name => NAME) -> port
sub start_backend {
    my (%o) = @_;
    return wait_backend(spawn_backend(%o));
}

# spawn_backend(%o) -> handle; wait_backend(handle) -> port
sub spawn_backend {
    my (%o) = @_;
    die "start_grpc_backend: harness not initialised\n" unless $BackendDir;
    make_path($BackendDir);
    my $n = ++$Seq;
    my $base = "$BackendDir/" . ($o{name} || "backend$n");
    my $pf = "$base.port";
    my $rec = $o{record} || "$base.jsonl";
    unlink $pf;
    write_file($rec, '') unless -e $rec;

    my @cmd = ($Python, "$LibDir/grpc_backend.py", '--host',
               $o{host} || '127.0.0.1', '--port', $o{port} || 0,
               '--port-file', $pf, '--record', $rec);
    if ($o{tls} || $o{mtls} || $o{cert}) {
        push @cmd, '--tls-cert', _cert_path($o{cert} || 'upstream-server.crt'),
                   '--tls-key', _cert_path($o{key} || 'upstream-server.key');
        my $cca = $o{client_ca};
        $cca = 'upstream-client-ca.crt' if !$cca && $o{mtls};
        push @cmd, '--tls-client-ca', _cert_path($cca) if $cca;
    }
    warn "starting gRPC backend: @cmd\n" if $Verbose;
    my $pid = spawn(\@cmd, stdout => "$base.out", stderr => "$base.log");
    return { pid => $pid, record => $rec, log => "$base.log",
             port_file => $pf, opts => {%o} };
}

sub wait_backend {
    my ($h) = @_;
    my $pid = $h->{pid};
    my $deadline = time + 20;
    my $port;
    while (time < $deadline) {
        if (-s $h->{port_file}) {
            my $p = read_file($h->{port_file});
            if (defined $p && $p =~ /(\d+)\n/) {
                $port = $1;
                last;
            }
        }
        my $r = waitpid($pid, WNOHANG);
        if ($r == $pid || $r == -1) {
            my $log = read_file($h->{log}) // '';
            die "gRPC backend exited at startup: $log\n";
        }
        sleep 0.01;
    }
    if (!$port) {
        stop_process($pid, signal => 'KILL', child => 1, group => 1);
        die "gRPC backend did not start within 20 s ("
            . (read_file($h->{log}) // '') . ")\n";
    }
    $h->{port} = $port;
    $Backends{$port} = $h;
    return $port;
}

sub backend_info {
    my ($port) = @_;
    return $Backends{$port};
}

sub stop_backend {
    my ($port) = @_;
    my $b = delete $Backends{$port} or return;
    stop_process($b->{pid}, signal => 'TERM', wait => 3, child => 1,
                 group => 1);
    return;
}

sub stop_all_backends {
    stop_backend($_) for keys %Backends;
    return;
}

# records appended to $file after byte $offset: (\@entries, $new_offset)
sub read_records {
    my ($file, $offset) = @_;
    my @e;
    open my $fh, '<', $file or return (\@e, $offset || 0);
    seek $fh, $offset || 0, 0;
    my $pos = $offset || 0;
    while (my $l = <$fh>) {
        last unless $l =~ /\n\z/;      # a line being written: next time
        $pos += length $l;
        my $d = eval { $JSON->decode($l) };
        push @e, _bytes($d) if $d;
    }
    close $fh;
    return (\@e, $pos);
}

# ------------------------------------------------------------ client

# JSON strings -> UTF-8 byte strings (test files compare bytes)
sub _bytes {
    my ($d) = @_;
    if (ref $d eq 'HASH') {
        $d->{$_} = _bytes($d->{$_}) for keys %$d;
    } elsif (ref $d eq 'ARRAY') {
        $_ = _bytes($_) for @$d;
    } elsif (defined $d && !ref $d) {
        utf8::encode($d) if utf8::is_utf8($d);
    }
    return $d;
}

# run_client(\@specs, $limit) -> (\@results, $error)
sub run_client {
    my ($specs, $limit) = @_;
    my $in = $JSON->encode($specs);
    my $r = run_cmd([$Python, "$LibDir/grpc_client.py"], stdin => $in,
                    timeout => $limit);
    warn "grpc_client input: $in\ngrpc_client output: $r->{out}$r->{err}\n"
        if $Verbose;
    if ($r->{timed_out}) {
        return (undef, "grpc_client.py killed after $limit s");
    }
    my ($line) = grep { /\S/ } reverse split /\n/, $r->{out};
    my $res = defined $line ? eval { $JSON->decode($line) } : undef;
    if (!$res || ref $res ne 'ARRAY') {
        return (undef, "grpc_client.py failed (exit $r->{exit}): "
                       . "$r->{err}$r->{out}");
    }
    return (_bytes($res), undef);
}

1;
