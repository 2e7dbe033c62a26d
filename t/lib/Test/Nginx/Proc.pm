package Test::Nginx::Proc;

# Process helpers for the harness: run a command with a hard time limit,
# start a background process, stop a process with bounded waits, find free
# loopback ports.  Perl core only.

use strict;
use warnings;
use POSIX qw(:sys_wait_h setpgid _exit);
use IO::Socket::INET;
use File::Temp qw(tempfile);
use File::Spec;
use Time::HiRes qw(sleep time);
use Exporter 'import';

our @EXPORT_OK = qw(run_cmd spawn stop_process is_alive free_port
                    shell_quote read_file write_file nginx_version);

our $TmpDir;    # where run_cmd keeps its stdin/stdout/stderr files
our %Running;   # pid => 1 while run_cmd waits for it

# kill whatever run_cmd is waiting for (used at exit)
sub kill_running {
    for my $pid (keys %Running) {
        kill 'KILL', -$pid;
        kill 'KILL', $pid;
        waitpid($pid, 0);
    }
    %Running = ();
}

sub read_file {
    my ($path) = @_;
    open my $fh, '<', $path or return undef;
    binmode $fh;
    local $/;
    my $d = <$fh>;
    close $fh;
    return defined $d ? $d : '';
}

sub write_file {
    my ($path, $data) = @_;
    open my $fh, '>', $path or die "cannot write $path: $!\n";
    binmode $fh;
    print $fh $data;
    close $fh or die "cannot write $path: $!\n";
    return;
}

sub shell_quote {
    return join ' ', map {
        my $a = $_;
        if ($a =~ m{\A[-\w./:=@,+%]+\z}) {
            $a;
        } else {
            $a =~ s/'/'\\''/g;
            "'$a'";
        }
    } @_;
}

# true when the process exists and is not a zombie
sub is_alive {
    my ($pid) = @_;
    return 0 unless $pid && $pid > 0;
    return 0 unless kill 0, $pid;
    if (open my $fh, '<', "/proc/$pid/stat") {
        my $st = <$fh>;
        close $fh;
        if (defined $st && $st =~ /\)\s+(\S)/) {
            return 0 if $1 eq 'Z' || $1 eq 'X';
        }
    }
    return 1;
}

sub _exec_child {
    my ($cmd, %o) = @_;
    setpgid(0, 0);
    if (defined $o{stdin}) {
        open STDIN, '<', $o{stdin} or _exit(126);
    } else {
        open STDIN, '<', '/dev/null' or _exit(126);
    }
    open STDOUT, '>', (defined $o{stdout} ? $o{stdout} : '/dev/null')
        or _exit(126);
    open STDERR, '>', (defined $o{stderr} ? $o{stderr} : '/dev/null')
        or _exit(126);
    if ($o{env}) {
        $ENV{$_} = $o{env}{$_} for keys %{ $o{env} };
    }
    { no warnings 'exec'; exec { $cmd->[0] } @$cmd; }
    _exit(127);
}

# spawn(\@cmd, stdout => FILE, stderr => FILE, stdin => FILE) -> pid
# The child gets its own process group, so stop_process can also kill
# anything it forked.
sub spawn {
    my ($cmd, %o) = @_;
    my $pid = fork();
    die "fork failed: $!\n" unless defined $pid;
    if ($pid == 0) {
        _exec_child($cmd, %o);
    }
    return $pid;
}

# run_cmd(\@cmd, stdin => DATA, timeout => SECONDS)
#   -> { status => $?, exit => code, out => STDOUT, err => STDERR,
#        timed_out => 0|1 }
sub run_cmd {
    my ($cmd, %o) = @_;
    my $dir = $TmpDir || File::Spec->tmpdir;
    my ($ifh, $in) = tempfile('cmd-in-XXXXXX', DIR => $dir, UNLINK => 0);
    binmode $ifh;
    print $ifh (defined $o{stdin} ? $o{stdin} : '');
    close $ifh;
    my ($ofh, $out) = tempfile('cmd-out-XXXXXX', DIR => $dir, UNLINK => 0);
    close $ofh;
    my ($efh, $err) = tempfile('cmd-err-XXXXXX', DIR => $dir, UNLINK => 0);
    close $efh;

    my $timeout = $o{timeout} || 30;
    my $pid = spawn($cmd, stdin => $in, stdout => $out, stderr => $err);
    $Running{$pid} = 1;
    my $deadline = time + $timeout;
    my $status;
    my $timed_out = 0;
    my $step = 0.002;
    while (1) {
        my $r = waitpid($pid, WNOHANG);
        if ($r == $pid) { $status = $?; last; }
        if ($r == -1) { $status = -1; last; }
        if (time > $deadline) {
            $timed_out = 1;
            kill 'KILL', -$pid;
            kill 'KILL', $pid;
            waitpid($pid, 0);
            $status = $?;
            last;
        }
        sleep $step;
        $step *= 2 if $step < 0.02;
    }
    delete $Running{$pid};
    my %r = (
        status => $status,
        exit => ($status == -1 ? -1 : $status >> 8),
        signal => ($status == -1 ? 0 : $status & 127),
        out => read_file($out),
        err => read_file($err),
        timed_out => $timed_out,
    );
    unlink $in, $out, $err;
    return \%r;
}

# stop_process($pid, signal => 'QUIT', wait => 5, child => 1, group => 1)
# Sends the signal, waits, then TERM, then KILL (also to the process
# group when group => 1).  child => 1 reaps it with waitpid.
sub stop_process {
    my ($pid, %o) = @_;
    return 1 unless $pid && $pid > 0;
    my $sig = $o{signal} || 'TERM';
    my @steps = ([$sig, $o{wait} || 5], ['TERM', 2], ['KILL', 2]);
    for my $s (@steps) {
        my ($signal, $wait) = @$s;
        return 1 unless _alive_reap($pid, $o{child});
        if ($signal eq 'KILL' && $o{group}) {
            kill 'KILL', -$pid;
        }
        kill $signal, $pid;
        my $deadline = time + $wait;
        my $step = 0.005;
        while (time < $deadline) {
            return 1 unless _alive_reap($pid, $o{child});
            sleep $step;
            $step *= 2 if $step < 0.05;
        }
        warn "WARNING: process $pid did not exit after SIG$signal\n"
            if $signal ne $sig || $o{verbose};
    }
    return !_alive_reap($pid, $o{child});
}

sub _alive_reap {
    my ($pid, $child) = @_;
    if ($child) {
        my $r = waitpid($pid, WNOHANG);
        return 0 if $r == $pid || $r == -1;
    }
    return is_alive($pid);
}

# A free TCP port on 127.0.0.1 outside the kernel's ephemeral range, not
# in %$used.  Random, so that test files running in parallel rarely pick
# the same one; bind-checked.
sub free_port {
    my ($used) = @_;
    $used ||= {};
    my ($lo, $hi) = (32768, 60999);
    if (open my $fh, '<', '/proc/sys/net/ipv4/ip_local_port_range') {
        my $l = <$fh>;
        close $fh;
        ($lo, $hi) = split ' ', $l if defined $l && $l =~ /\d/;
    }
    for (1 .. 500) {
        my $port = 10000 + int rand 50000;
        next if $port >= $lo && $port <= $hi;
        next if $used->{$port};
        my $s = IO::Socket::INET->new(
            LocalAddr => '127.0.0.1',
            LocalPort => $port,
            Proto     => 'tcp',
            Listen    => 1,
            ReuseAddr => 1,
        ) or next;
        close $s;
        $used->{$port} = 1;
        return $port;
    }
    die "cannot find a free port on 127.0.0.1\n";
}

my %NginxVersion;

# nginx_version($binary) -> (major, minor, patch) from `$binary -v`, once
# per binary; () when it cannot be told
sub nginx_version {
    my ($bin) = @_;
    $bin = 'nginx' unless defined $bin && length $bin;
    if (!$NginxVersion{$bin}) {
        my $r = run_cmd([$bin, '-v'], timeout => 30);
        my $out = ($r->{err} // '') . ($r->{out} // '');
        $NginxVersion{$bin} = $out =~ m{nginx/(\d+)\.(\d+)\.(\d+)}
                              ? [$1, $2, $3] : [];
    }
    return @{ $NginxVersion{$bin} };
}

1;
