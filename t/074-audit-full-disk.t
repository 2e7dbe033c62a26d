# The audit file on a full disk, and after the disk has room again: every
# line of the file is a whole JSON record (a record cut by the full disk
# is taken back, never left for the next one to be glued to), and the
# records reported lost are exactly those missing from the file, also
# when a buffer= write was cut in the middle.
#
# The full disk is a file-size limit (RLIMIT_FSIZE, set on the worker
# with prlimit(1) from util-linux): write() then writes what fits and
# fails with EFBIG, as it fails with ENOSPC on a full file system; nginx
# inherits SIGXFSZ ignored from this test.  Raising the limit again is
# the disk getting room.  Works as root or not, on any Linux.

use Test::Nginx::Socket::Grpc 'no_plan';
use JSON::PP ();
use Time::HiRes qw(sleep);
use Test::Nginx::Proc qw(read_file run_cmd);
use File::Basename qw(dirname);

$SIG{XFSZ} = 'IGNORE';

our $Json = JSON::PP->new->utf8;

sub worker_pid {
    my $master = read_file(dirname(error_log_file()) . '/nginx.pid') // '';
    ($master) = $master =~ /(\d+)/ or die 'no nginx pid';
    for my $stat (glob '/proc/[0-9]*/stat') {
        my $s = read_file($stat) // next;
        return $1 if $s =~ /^(\d+) \(.*\) \S+ $master /s;
    }
    die "no worker of $master";
}

sub fsize {
    my ($pid, $limit) = @_;
    my $r = run_cmd(['prlimit', '--pid', $pid, "--fsize=$limit:unlimited"]);
    die "prlimit: $r->{err}" if $r->{status};
}

sub calls {
    my ($n, $method) = @_;
    my @specs = map { { method => $method, port => $ENV{TEST_NGINX_SERVER_PORT} + 0,
                        host => '127.0.0.1', overall_timeout => 10 } } 1 .. $n;
    my ($res, $err) = Test::Nginx::Grpc::run_client(\@specs, 60);
    die "grpc client: $err" if $err;
    my @bad = grep { $_->{code} != 0 } @$res;
    is(scalar @bad, 0, "$n calls of $method pass");
}

# fill the file under calls, give room, more calls, stop nginx, check
sub full_disk {
    my ($file, $limit) = @_;
    my $log = dirname(error_log_file()) . "/$file";
    my $pid = worker_pid();

    calls(3, '/full.Before/Call');

    # flush=: the three records on disk before the limit (bounded wait)
    for (1 .. 200) {
        last if (() = (read_file($log) // '') =~ /\n/g) >= 3;
        sleep 0.05;
    }

    fsize($pid, $limit);
    cmp_ok(-s error_log_file(), '<', $limit,
           'error.log stays under the limit');
    calls(60, '/full.Full/Call');
    sleep 0.3;
    cmp_ok(-s $log, '<=', $limit, 'the audit file is at the limit');
    fsize($pid, 'unlimited');
    sleep 1.1;                          # writes are tried again
    calls(20, '/full.After/Call');
    stop_nginx();

    my $raw = read_file($log) // '';
    my (@rec, @bad);
    for my $line (split /\n/, $raw) {
        my $d = eval { $Json->decode($line) };
        if (ref $d eq 'HASH') { push @rec, $d } else { push @bad, $line }
    }
    push @bad, 'no "\n" at the end' if length $raw && $raw !~ /\n\z/;
    is(scalar @bad, 0, 'every line is a JSON record')
        or diag(join "\n", map { substr($_, 0, 200) } @bad[0 .. 2]);

    my %n;
    $n{$_->{method}}++ for @rec;
    is($n{'/full.Before/Call'}, 3, 'the records before the disk was full');
    is($n{'/full.After/Call'}, 20, 'the records after it had room again');
    my $full = $n{'/full.Full/Call'} // 0;
    ok($full > 0 && $full < 60, "some records while full: $full");

    my $err = read_file(error_log_file()) // '';
    my @total = $err =~ /audit log "[^"]*": \d+ record\(s\) lost, (\d+) since/g;
    my $lost = @total ? $total[-1] : 0;
    is($lost, 83 - @rec, "records lost ($lost) = calls (83) - records on "
       . 'disk (' . scalar(@rec) . ')');
    my %seq;
    $seq{$_->{seq}}++ for @rec;
    is(scalar(grep { $seq{$_} > 1 } keys %seq), 0, 'no record twice');
}

no_shuffle();
no_root_location();
run_tests();

__DATA__

=== TEST 1: unbuffered
--- log_level: warn
--- config
    access_log off;
    grpc_guard_audit_log logs/audit1.log;
    location / {
        grpc_guard on;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- init
full_disk('audit1.log', 16000);
--- error_log
record(s) lost
--- no_error_log
exited on signal



=== TEST 2: buffer=4k: a write cut in the middle of the buffer
--- log_level: warn
--- config
    access_log off;
    grpc_guard_audit_log logs/audit2.log buffer=4k flush=100ms;
    location / {
        grpc_guard on;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
--- init
full_disk('audit2.log', 16000);
--- error_log
record(s) lost
--- no_error_log
exited on signal
