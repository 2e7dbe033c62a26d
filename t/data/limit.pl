# Helpers of the limiter tests (t/06*.t), loaded with
#   require "$FindBin::Bin/data/limit.pl";
# after `use Test::Nginx::Socket`.  They run in package main, from the
# blocks' `--- init` code (after the block's nginx has started).

use strict;
use warnings;

use IO::Socket::INET;
use JSON::PP ();
use POSIX qw(ceil);
use Time::HiRes qw(time sleep);
use Test::Nginx::Proc qw(run_cmd read_file write_file);

# gRPC calls made with the harness's grpcio client, one after the other
# in one process, each on its own connection; every result hash gets
# md => { lowercase name => value } of its initial and trailing metadata.
# (grpcio, not curl: curl 7.88 reports "Stream error" when a reply ends
# the stream before curl has sent its DATA frame, as RFC 9113 8.1 allows)
sub lcalls {
    my (@calls) = @_;
    my @specs;
    for my $o (@calls) {
        my $s = {
            method => $o->{method} // '/test.Limit/Call',
            port => ($o->{port} // $ENV{TEST_NGINX_SERVER_PORT}) + 0,
            host => '127.0.0.1',
            metadata => $o->{metadata} || [],
            type => 'unary',
            messages => 1,
            payload => 'ping',
            overall_timeout => $o->{overall_timeout} // 10,
        };
        $s->{timeout} = $o->{timeout} + 0 if defined $o->{timeout};
        $s->{cancel_after} = $o->{cancel_after} + 0
            if defined $o->{cancel_after};
        push @specs, $s;
    }
    my $limit = 10;
    $limit += $_->{overall_timeout} for @specs;
    my ($res, $err) = Test::Nginx::Grpc::run_client(\@specs, $limit);
    die "grpc client: $err" if $err;
    for my $r (@$res) {
        my %md;
        for my $m (@{ $r->{initial_metadata} },
                   @{ $r->{trailing_metadata} })
        {
            $md{lc $m->[0]} = $m->[1];
        }
        $r->{md} = \%md;
    }
    return @$res;
}

sub lcall {
    my (%o) = @_;
    my ($r) = lcalls(\%o);
    return $r;
}

# n calls; returns their grpc-status codes
sub lcodes {
    my ($n, %o) = @_;
    return map { $_->{code} } lcalls(map { +{%o} } 1 .. $n);
}

# the number of calls the default gRPC backend has seen so far
sub backend_calls {
    my $d = read_file(grpc_backend_record()) // '';
    return scalar(() = $d =~ /\n/g);
}

sub redis_port { $ENV{TEST_NGINX_REDIS_PORT} }

# calls of a command in INFO commandstats ("evalsha", "eval", ...)
sub redis_calls {
    my ($cmd, $port, @auth) = @_;
    my $out = redis_cmd($port // redis_port(), @auth, 'INFO',
                        'commandstats');
    return $out =~ /^cmdstat_\Q$cmd\E:calls=(\d+)/m ? $1 : 0;
}

sub redis_pid {
    my ($port) = @_;
    return $Test::Nginx::Socket::Grpc::RedisServers{$port // redis_port()};
}

# the lines of an access log under servroot/logs, from line $from on
sub log_lines {
    my ($name, $from) = @_;
    my $d = read_file(server_root() . "/logs/$name") // '';
    my @l = split /\n/, $d;
    return @l[($from // 0) .. $#l];
}

# the check of a refusal by a limit, with its four headers
sub check_refusal {
    my ($r, $name, $rate, $window, $what) = @_;
    is($r->{code}, 8, "$what: grpc-status 8");
    is($r->{details}, 'rate limit exceeded', "$what: grpc-message");
    my $ms = $r->{md}{'grpc-retry-pushback-ms'} // '';
    like($ms, qr/^[1-9]\d*$/, "$what: grpc-retry-pushback-ms > 0");
    my $secs = $ms =~ /^\d+$/ ? ceil($ms / 1000) : -1;
    $secs = 1 if $secs == 0;
    is($r->{md}{'retry-after'}, $secs,
       "$what: retry-after is the pushback in seconds, rounded up");
    is($r->{md}{'ratelimit-policy'}, "\"$name\";q=$rate;w=$window",
       "$what: ratelimit-policy");
    is($r->{md}{'ratelimit'}, "\"$name\";r=0;t=$secs", "$what: ratelimit");
    return $ms;
}

# a second nginx, from a complete configuration text; stopped at exit
our @ExtraNginx;

sub start_extra_nginx {
    my ($name, $http) = @_;
    my $root = work_dir() . "/$name";
    system('rm', '-rf', $root);
    mkdir $root;
    mkdir "$root/logs";
    my $modules = join '', map { "load_module $_;\n" }
                           grep { length } split /\s+/,
                           $ENV{TEST_NGINX_LOAD_MODULES} // '';
    my $user = $> == 0 ? "user root;\n" : '';
    write_file("$root/nginx.conf", <<"_EOC_");
${modules}worker_processes 1;
daemon on;
master_process on;
error_log $root/logs/error.log info;
pid $root/logs/nginx.pid;
$user
events {
    worker_connections 1024;
}

http {
    access_log off;
    client_body_temp_path $root/client_body_temp;
    proxy_temp_path $root/proxy_temp;
    fastcgi_temp_path $root/fastcgi_temp;
    uwsgi_temp_path $root/uwsgi_temp;
    scgi_temp_path $root/scgi_temp;

$http
}
_EOC_
    my $nginx = $ENV{TEST_NGINX_BINARY} || '/usr/sbin/nginx';
    my $r = run_cmd([$nginx, '-p', "$root/", '-c', "$root/nginx.conf"],
                    timeout => 30);
    die "extra nginx $name did not start: $r->{err}" if $r->{status};
    for (1 .. 200) {
        last if -s "$root/logs/nginx.pid";
        sleep 0.01;
    }
    push @ExtraNginx, $root;
    return $root;
}

sub stop_extra_nginx {
    my ($root) = @_;
    my $pid = read_file("$root/logs/nginx.pid") // '';
    return unless $pid =~ /(\d+)/;
    $pid = $1;
    kill 'QUIT', $pid;
    for (1 .. 500) {
        return 1 unless kill 0, $pid;
        sleep 0.01;
    }
    kill 'KILL', $pid;
    return 0;
}

add_cleanup_handler(sub { stop_extra_nginx($_) for @ExtraNginx });

# t/data/limit_load.py in the background: returns a handle for
# finish_load(), which waits for it and returns its JSON summary
sub start_load {
    my (%o) = @_;
    my $spec = JSON::PP->new->canonical->encode({
        port => ($o{port} // $ENV{TEST_NGINX_SERVER_PORT}) + 0,
        rate => $o{rate} + 0, duration => $o{duration} + 0,
        method => $o{method} // '/test.Limit/Call' });
    my $out = work_dir() . "/load-$$-" . int(rand(1e9)) . '.json';
    my $pid = Test::Nginx::Proc::spawn(
        [$Test::Nginx::Grpc::Python, "$FindBin::Bin/data/limit_load.py",
         $spec],
        stdout => $out, stderr => "$out.err");
    return { pid => $pid, out => $out };
}

sub finish_load {
    my ($h) = @_;
    waitpid($h->{pid}, 0) if kill 0, $h->{pid};
    my $d = read_file($h->{out}) // '';
    my $r = eval { JSON::PP->new->decode($d) };
    return $r || { error => $d . (read_file("$h->{out}.err") // '') };
}

# a free port for a Redis Cluster node: its cluster bus port (+10000) is
# free too
sub cluster_port {
    for (1 .. 100) {
        my $p = Test::Nginx::Socket::Grpc::free_port();
        next if $p > 55000;
        my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1',
                                      LocalPort => $p + 10000,
                                      Listen => 1, ReuseAddr => 1)
            or next;
        close $s;
        return $p;
    }
    die "no free port with a free cluster bus port\n";
}

# h2load against a gRPC method: returns its output
sub h2load {
    my (%o) = @_;
    my $body = work_dir() . '/h2load-body';
    write_file($body, "\0\0\0\0\4ping") unless -f $body;
    my @cmd = ('h2load', '-c', $o{clients} // 1, '-m', $o{streams} // 1,
               '-d', $body, '-H', 'content-type: application/grpc',
               '-H', 'te: trailers');
    push @cmd, '--rps', $o{rps} if $o{rps};
    push @cmd, '-D', $o{duration} if $o{duration};
    push @cmd, '-n', $o{n} if $o{n};
    push @cmd, 'http://127.0.0.1:' . ($o{port} // $ENV{TEST_NGINX_SERVER_PORT})
               . ($o{method} // '/test.Limit/Call');
    my $r = run_cmd(\@cmd, timeout => ($o{duration} // 30) + 30);
    return $r->{out} . $r->{err};
}

# the numbers of an h2load run: { succeeded, failed, errored, 2xx, ... }
sub h2load_summary {
    my ($out) = @_;
    my %s;
    if ($out =~ /requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout/) {
        @s{qw(total started done succeeded failed errored timeout)}
            = ($1, $2, $3, $4, $5, $6, $7);
    }
    if ($out =~ /status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx/) {
        @s{qw(2xx 3xx 4xx 5xx)} = ($1, $2, $3, $4);
    }
    return \%s;
}

1;
