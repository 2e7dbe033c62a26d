package Test::Nginx::Audit;

# Audit-log checks for Test::Nginx::Socket blocks (t/070-audit*.t), and
# two raw HTTP/2 peers the gRPC libraries cannot play: a client that sends
# any bytes in :authority and :path, and an upstream that resets a stream
# after its response headers.
#
#   use Test::Nginx::Socket::Grpc 'no_plan';
#   use Test::Nginx::Audit;
#   run_audit_tests();          # instead of run_tests()
#
# Sections, checked after the block's calls (records = the lines the block
# added to the audit file; every line of the file must parse as JSON):
#
#   --- audit_file: logs/audit.log   file, relative to the servroot
#   --- audit eval                   [ {record}, ... ]: exactly these, in
#                                    order, each with exactly these keys
#   --- audit_count: N               exactly N records
#   --- audit_now: N                 N records right after the calls,
#                                    before any waiting (buffer checks)
#   --- audit_wait: 1.5              wait this long before the check
#   --- audit_stop                   stop nginx (QUIT) before the check
#   --- audit_check eval             sub { my ($records, $raw, $block) }
#   --- audit_pre eval               sub { my ($block) }, run before the
#                                    calls of a block without a config
#   --- audit_absent                 substrings (one a line) found neither
#                                    in the audit file nor in error.log
#
# In an expected record: a Perl number must be a JSON number (==), a
# string a JSON string (eq), a qr// a JSON string that matches, a hash an
# object compared the same way, a code ref gets the value and says yes.

use strict;
use warnings;

use B ();
use Exporter 'import';
use IO::Select;
use IO::Socket::INET;
use JSON::PP ();
use POSIX ();
use Time::HiRes qw(sleep time);
use Test::More ();
use Test::Nginx::Socket::Grpc ();

our @EXPORT = qw(run_audit_tests audit_path audit_records base_record
                 anynum is_json_number h2_raw_call h2_raw_end
                 start_h2_stub stop_h2_stub);

my $JSON = JSON::PP->new->utf8;     # strict: the bytes must be UTF-8

sub audit_path {
    my ($f) = @_;
    $f = 'logs/audit.log' unless defined $f && length $f;
    $f =~ s/^\s+|\s+$//g;
    return $f =~ m{^/} ? $f
                       : Test::Nginx::Socket::server_root() . "/$f";
}

# (\@records, \@bad_lines, $raw) for the lines after byte $off
sub audit_records {
    my ($file, $off) = @_;
    my $raw = '';
    if (open my $fh, '<:raw', $file) {
        seek $fh, $off || 0, 0;
        local $/;
        $raw = <$fh> // '';
        close $fh;
    }
    my (@rec, @bad);
    for my $line (split /\n/, $raw) {
        my $d = eval { $JSON->decode($line) };
        if (ref $d eq 'HASH') {
            push @rec, $d;
        } else {
            push @bad, $line;
        }
    }
    push @bad, 'last line without "\n"' if length $raw && $raw !~ /\n\z/;
    return (\@rec, \@bad, $raw);
}

sub is_json_number {
    my ($v) = @_;
    return 0 unless defined $v && !ref $v;
    my $f = B::svref_2object(\$v)->FLAGS;
    return ($f & (B::SVp_IOK | B::SVp_NOK)) && !($f & B::SVp_POK) ? 1 : 0;
}

sub anynum { return sub { is_json_number($_[0]) && $_[0] >= 0 } }

# the fields every record of a call through nginx has
sub base_record {
    my (%o) = @_;
    my %r = (
        ts => qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/,
        pid => anynum(), seq => anynum(),
        request_id => qr/^[0-9a-f]{32}$/,
        authority => "127.0.0.1:$Test::Nginx::Socket::Grpc::ServerPort",
        peer => qr/^127\.0\.0\.1:\d+$/,
        duration_ms => anynum(), bytes_in => anynum(),
        bytes_out => anynum(),
    );
    for my $k (keys %o) {
        if (defined $o{$k}) {
            $r{$k} = $o{$k};
        } else {
            delete $r{$k};
        }
    }
    return \%r;
}

sub _compare {
    my ($got, $exp, $path, $errs) = @_;
    if (ref $exp eq 'HASH') {
        if (ref $got ne 'HASH') {
            push @$errs, "$path: not an object";
            return;
        }
        for my $k (sort keys %$exp) {
            if (!exists $got->{$k}) {
                push @$errs, "$path.$k: missing";
                next;
            }
            _compare($got->{$k}, $exp->{$k}, "$path.$k", $errs);
        }
        for my $k (sort keys %$got) {
            push @$errs, "$path.$k: unexpected field"
                unless exists $exp->{$k};
        }
    } elsif (ref $exp eq 'Regexp') {
        push @$errs, "$path: " . _show($got) . " !~ $exp"
            unless defined $got && !ref $got && !is_json_number($got)
                   && $got =~ $exp;
    } elsif (ref $exp eq 'CODE') {
        push @$errs, "$path: " . _show($got) . " rejected"
            unless $exp->($got);
    } elsif (is_json_number($exp)) {
        push @$errs, "$path: " . _show($got) . " is not the number $exp"
            unless is_json_number($got) && $got == $exp;
    } else {
        push @$errs, "$path: " . _show($got) . " is not the string \"$exp\""
            unless defined $got && !ref $got && !is_json_number($got)
                   && $got eq $exp;
    }
}

sub _show {
    my ($v) = @_;
    return 'undef' unless defined $v;
    return JSON::PP->new->canonical->allow_nonref->encode($v);
}

# run_tests() with the audit checks: where each block's records start is
# taken right before the block runs, after every preprocessor; the checks
# run after the block (Test::Nginx's test cleanup handlers)
sub run_audit_tests {
    my $started;
    push @Test::Nginx::Socket::Grpc::BeforeBlock, sub {
        my ($block) = @_;
        my $file = audit_path(scalar($block->audit_file));
        my $restart = defined scalar($block->config) || defined scalar($block->http_config)
            || defined scalar($block->main_config) || defined scalar($block->user_files)
            || !$started;
        $started = 1;
        if (!$restart && defined(my $pre = scalar($block->audit_pre))) {
            $pre->($block);
        }
        $block->set_value('audit_offset', $restart ? 0 : (-s $file || 0));
    };
    Test::Nginx::Socket::add_test_cleanup_handler(sub {
        my ($block) = @_;
        return if defined scalar($block->must_die) || defined scalar($block->SKIP);
        check_audit($block, audit_path(scalar($block->audit_file)),
                    scalar($block->audit_offset));
    });
    Test::Nginx::Socket::run_tests();
    return;
}

sub check_audit {
    my ($block, $file, $off) = @_;
    my $name = $block->name;

    my $exp = scalar($block->audit);
    my $want = scalar($block->audit_count);
    $want = scalar @$exp if !defined $want && ref $exp eq 'ARRAY';
    $want =~ s/^\s+|\s+$//g if defined $want;

    if (defined(my $now = scalar($block->audit_now))) {
        $now =~ s/^\s+|\s+$//g;
        my ($r) = audit_records($file, $off);
        Test::More::is(scalar @$r, $now, "$name - audit records at once");
    }
    if (defined(my $w = scalar($block->audit_wait))) {
        sleep Test::Nginx::Socket::Grpc::parse_time($w);
    }
    if (defined scalar($block->audit_stop)) {
        Test::Nginx::Socket::Grpc::stop_nginx();
    }

    # the log phase of a cancelled call may come a little after the client
    my ($rec, $bad, $raw);
    my $deadline = time + 5;
    for (;;) {
        ($rec, $bad, $raw) = audit_records($file, $off);
        last if !defined $want || @$rec >= $want || time > $deadline;
        sleep 0.05;
    }
    if (defined $want && @$rec == $want) {
        sleep 0.1;      # and nothing more comes
        ($rec, $bad, $raw) = audit_records($file, $off);
    }

    my ($all, $all_bad) = audit_records($file, 0);
    Test::More::is(scalar @$all_bad, 0,
                   "$name - every line of the audit file is JSON")
        or Test::More::diag("not JSON: " . join("\n", @$all_bad));

    if (defined $want) {
        Test::More::is(scalar @$rec, $want, "$name - audit record count")
            or Test::More::diag("records:\n$raw");
    }

    if (ref $exp eq 'ARRAY') {
        for my $i (0 .. $#$exp) {
            my @errs;
            _compare($rec->[$i], $exp->[$i], "record $i", \@errs);
            Test::More::ok(!@errs, "$name - audit record $i")
                or Test::More::diag(join("\n", @errs) . "\ngot: "
                                    . _show($rec->[$i]));
        }
    }

    if (defined(my $check = scalar($block->audit_check))) {
        $check->($rec, $raw, $block);
    }

    if (defined(my $absent = scalar($block->audit_absent))) {
        my $errlog = Test::Nginx::Proc::read_file(
                         Test::Nginx::Socket::Grpc::error_log_file()) // '';
        my $audit = Test::Nginx::Proc::read_file($file) // '';
        for my $s (grep { length } split /\n/, $absent) {
            Test::More::ok(index($audit, $s) < 0,
                           "$name - \"$s\" is not in the audit log");
            Test::More::ok(index($errlog, $s) < 0,
                           "$name - \"$s\" is not in error.log");
        }
    }
}

# ------------------------------------------------------------ raw HTTP/2

sub _frame {
    my ($type, $flags, $sid, $payload) = @_;
    my $len = length $payload;
    return pack('CnCCN', $len >> 16, $len & 0xffff, $type, $flags,
                $sid & 0x7fffffff) . $payload;
}

sub _hpack_int {
    my ($n, $bits, $first) = @_;
    my $max = (1 << $bits) - 1;
    return chr($first | $n) if $n < $max;
    my $s = chr($first | $max);
    $n -= $max;
    while ($n >= 128) {
        $s .= chr(($n & 0x7f) | 0x80);
        $n >>= 7;
    }
    return $s . chr($n);
}

# literal header fields without indexing, new names, no Huffman
sub _hpack {
    my (@h) = @_;
    my $b = '';
    while (my ($k, $v) = splice @h, 0, 2) {
        $b .= "\x00" . _hpack_int(length $k, 7, 0) . $k
              . _hpack_int(length $v, 7, 0) . $v;
    }
    return $b;
}

# read one frame: ($type, $flags, $sid, $payload), or () on EOF/timeout
sub _read_frame {
    my ($s, $until) = @_;
    my $buf = '';
    my $need = 9;
    my @hdr;
    my $sel = IO::Select->new($s);
    while (length $buf < $need) {
        my $left = $until - time;
        return () if $left <= 0 || !$sel->can_read($left);
        my $n = sysread $s, $buf, $need - length $buf, length $buf;
        return () unless $n;
        if (!@hdr && length $buf == 9) {
            my ($l1, $l2, $t, $f, $sid) = unpack 'CnCCN', $buf;
            @hdr = ($t, $f, $sid & 0x7fffffff);
            $need = 9 + ($l1 << 16 | $l2);
        }
    }
    return (@hdr, substr($buf, 9));
}

# h2_raw_end(PATH, AUTHORITY, HEADER => VALUE, ...): one raw call to the
# block's nginx -> how its stream ended (as h2_raw_call's "end")
sub h2_raw_end {
    my ($path, $authority, @headers) = @_;
    my $r = h2_raw_call(port => $Test::Nginx::Socket::ServerPort,
                        path => $path, authority => $authority,
                        headers => \@headers);
    return $r->{end};
}

# h2_raw_call(port => P, path => BYTES, authority => BYTES,
#             headers => [k, v, ...], body => BYTES, timeout => S,
#             content_type => TEXT, chunks => [BYTES, ...], delay => S)
#   -> { end => how the stream ended: 'end_stream', 'rst', 'goaway',
#        'eof' or 'timeout';
#        frames => [[type, flags], ...] of stream 1, as received }
# Everything, the body in one DATA frame, goes out in one write; with
# chunks, the body goes out as one DATA frame per chunk, delay seconds
# apart (default 0.2), and nginx reads each on its own.
sub h2_raw_call {
    my (%o) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                  PeerPort => $o{port}, Proto => 'tcp',
                                  Timeout => 5)
        or die "connect: $!\n";
    binmode $s;
    my @h = (':method' => 'POST', ':scheme' => 'http',
             ':path' => $o{path}, ':authority' => $o{authority},
             'content-type' => $o{content_type} // 'application/grpc',
             'te' => 'trailers',
             @{ $o{headers} || [] });
    my $body = defined $o{body} ? $o{body} : pack('CN', 0, 4) . 'ping';
    my $start = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" . _frame(4, 0, 0, '')
        . _frame(1, 0x4, 1, _hpack(@h));
    if ($o{chunks}) {
        my @c = @{ $o{chunks} };
        local $SIG{PIPE} = 'IGNORE';
        syswrite $s, $start;
        for my $i (0 .. $#c) {
            sleep(defined $o{delay} ? $o{delay} : 0.2) if $i;
            syswrite $s, _frame(0, $i == $#c ? 0x1 : 0, 1, $c[$i]);
        }
    } else {
        syswrite $s, $start . _frame(0, 0x1, 1, $body);
    }

    my $until = time + ($o{timeout} || 5);
    my $end = 'timeout';
    my @frames;
    for (;;) {
        my ($t, $f, $sid, $p) = _read_frame($s, $until);
        push @frames, [$t, $f] if defined $t && $sid == 1;
        if (!defined $t) {
            $end = time >= $until ? 'timeout' : 'eof';
            last;
        }
        if ($t == 4 && !($f & 1)) {
            syswrite $s, _frame(4, 1, 0, '');
        } elsif ($t == 7) {
            $end = 'goaway';
            last;
        } elsif ($t == 3 && $sid == 1) {
            $end = 'rst';
            last;
        } elsif (($t == 0 || $t == 1) && $sid == 1 && ($f & 1)) {
            $end = 'end_stream';
            last;
        }
    }
    close $s;
    return { end => $end, frames => \@frames };
}

# An HTTP/2 upstream that answers every stream with response headers and
# one message, and then, by mode: 'reset' sends RST_STREAM
# (INTERNAL_ERROR), 'close' closes the connection, 'hang' does nothing
# more.  Returns (port, pid).
sub start_h2_stub {
    my (%o) = @_;
    my $mode = $o{mode} || 'reset';
    my $l = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
                                  Listen => 16, ReuseAddr => 1,
                                  Proto => 'tcp')
        or die "listen: $!\n";
    my $port = $l->sockport;
    my $pid = fork();
    die "fork: $!\n" unless defined $pid;
    if ($pid) {
        close $l;
        Test::Nginx::Socket::add_cleanup_handler(sub { stop_h2_stub($pid) });
        return ($port, $pid);
    }

    # the child serves connections one after the other until killed
    local $SIG{TERM} = sub { POSIX::_exit(0) };
    eval { _stub_serve($l, $mode) };
    POSIX::_exit(0);
}

sub _stub_serve {
    my ($l, $mode) = @_;
    for (;;) {
        my $c = $l->accept or next;
        binmode $c;
        my $pre = '';
        while (length $pre < 24) {
            my $n = sysread $c, $pre, 24 - length $pre, length $pre;
            last unless $n;
        }
        syswrite $c, _frame(4, 0, 0, '');
        for (;;) {
            my ($t, $f, $sid, $p) = _read_frame($c, time + 30);
            last unless defined $t;
            if ($t == 4 && !($f & 1)) {
                syswrite $c, _frame(4, 1, 0, '');
            } elsif ($t == 1) {
                syswrite $c, _frame(1, 0x4, $sid,
                    "\x88" . _hpack('content-type', 'application/grpc'));
                syswrite $c, _frame(0, 0, $sid, pack('CN', 0, 2) . 'hi');
                next if $mode eq 'hang';

                # nginx has sent the headers on to the client by then
                sleep 0.2;
                last if $mode eq 'close';
                syswrite $c, _frame(3, 0, $sid, pack('N', 2));
            }
        }
        close $c;
    }
}

sub stop_h2_stub {
    my ($pid) = @_;
    Test::Nginx::Proc::stop_process($pid, child => 1);
}

1;
