package Test::Nginx::Socket::Grpc;

# The project's test sections (gRPC calls, what reached the backend,
# HTTP/2 requests and frames) and their plumbing (test certificates, the
# gRPC test backend and client, Redis), as an extension of whichever
# Test::Nginx::Socket is loaded, the way Test::Nginx::Socket::Lua extends
# it.  Reference for test writers: t/lib/README.md.
#
#   use Test::Nginx::Socket::Grpc 'no_plan';
#   run_tests();
#   __DATA__
#   === TEST 1: ...
#
# Test::Nginx::Socket is the real one (openresty's Test::Nginx) when perl
# finds it on @INC; only when it finds none does this module append
# t/lib/fallback to @INC and load the project's minimal one from there.
# Either way the blocks, the nginx configuration, starting and stopping
# nginx, and the error-log checks are Test::Nginx::Socket's; this module
# adds its sections through the hooks both have: a block preprocessor and
# the per-block request runner ($RunTestHelper).
#
# Perl core modules only (the real Test::Nginx brings its own needs).

use strict;
use warnings;
no warnings 'once';
use v5.10.1;

use File::Basename qw(basename dirname);
use File::Spec;

our $VERSION = '0.2';
our ($LibDir, $FallbackDir);

BEGIN {
    $LibDir = dirname(dirname(dirname(dirname(
                  File::Spec->rel2abs(__FILE__)))));
    $FallbackDir = File::Spec->catdir($LibDir, 'fallback');
    if (!eval { require Test::Nginx::Socket; 1 }) {
        my $err = $@;
        if ($err !~ m{^Can't locate Test/Nginx/Socket\.pm in \@INC}) {
            die "Test::Nginx::Socket was found but does not load: $err"
              . "(the real Test::Nginx needs Test::Base, Test::LongString,"
              . " List::MoreUtils, Text::Diff, HTTP::Message and URI:"
              . " ci/test-real-test-nginx.sh installs them)\n";
        }
        push @INC, $FallbackDir;
        require Test::Nginx::Socket;
    }
}

use Cwd qw(cwd);
use File::Path qw(make_path remove_tree);
use IO::Socket::INET;
use JSON::PP ();
use List::Util qw(sum);
use MIME::Base64 qw(decode_base64 encode_base64);
use POSIX qw(:sys_wait_h);
use Time::HiRes qw(sleep time);
use Test::More ();

use Test::Nginx::Proc qw(run_cmd spawn stop_process is_alive
                         shell_quote read_file write_file);
use Test::Nginx::Grpc;

# the loaded Test::Nginx::Socket: the project's minimal one (t/lib/fallback)
# or the real one
our $Bundled = $Test::Nginx::Socket::Bundled ? 1 : 0;
our $BaseFile = $INC{'Test/Nginx/Socket.pm'};

our $Verbose = $ENV{TEST_NGINX_VERBOSE};
our $UseValgrind = $ENV{TEST_NGINX_USE_VALGRIND};
our $TestNginxSleep = $ENV{TEST_NGINX_SLEEP} || 0.015;
our $ServerAddr = '127.0.0.1';

# upstream_timeout LOW HIGH accepts HIGH + $DeadlineSlack: the backend's
# gRPC library turns the grpc-timeout it gets into a deadline on its own
# clocks, which can leave it a little more than was sent (5.0096 s of a
# 5 s deadline has been seen); and, under valgrind, LOW - $DeadlineLate:
# a call may take longer than the usual second to get through nginx
our $DeadlineSlack = 0.25;
our $DeadlineLate = $UseValgrind ? 2 : 0;

our ($ServRoot, $WorkDir, $TmpDir, $CertDir, $GrpcPort, $GrpcRecord,
     $ServerPort, $Http2Listen, $Http2Directive, $NginxVersion);
our %UsedPorts;
our %RedisServers;
our @BeforeBlock;       # subs run with each block right before it runs
our $MainPid = $$;
our $Initialized;
our $SeenConfig;

our @EXPORT = qw(
    start_grpc_backend stop_grpc_backend grpc_backend_record
    grpc_frame grpc_status_code cert_dir cert_fingerprint free_port
    start_redis stop_redis redis_cmd work_dir error_log_file stop_nginx
    nginx_version
);

# Test::More functions every test file may use, whichever base exports
# which
our @TEST_MORE = qw(ok is isnt like unlike is_deeply cmp_ok pass fail
    diag note explain skip todo_skip done_testing BAIL_OUT can_ok isa_ok
    new_ok subtest);

sub import {
    my ($class, @args) = @_;
    my $caller = caller;

    # Test::Nginx::Socket's own exports (and plan), into the test file
    eval "package $caller; Test::Nginx::Socket->import(\@args); 1"
        or die $@;
    {
        no strict 'refs';
        for my $f (@EXPORT) {
            *{"${caller}::$f"} = \&{"Test::Nginx::Socket::Grpc::$f"};
        }
        for my $f (@TEST_MORE) {
            next if defined &{"${caller}::$f"};
            *{"${caller}::$f"} = \&{"Test::More::$f"};
        }
    }
    init();
    return;
}

# ------------------------------------------------------------ base access

sub bail_out { Test::Nginx::Socket::bail_out(@_) }

sub _timeout { Test::Nginx::Socket::timeout() }

sub _server_name {
    my $n = Test::Nginx::Socket::server_name();
    return defined $n && length $n ? $n : 'localhost';
}

sub error_log_file {
    return $Bundled ? $Test::Nginx::Socket::ErrLogFile
                    : "$ServRoot/logs/error.log";
}

sub work_dir () { $WorkDir }
sub cert_dir () { $CertDir }

# the $TEST_NGINX_RAND_PORT_N values of the running block
sub _rand_ports {
    my $rp = $Bundled ? $Test::Nginx::Socket::RandPorts
                      : $Test::Nginx::Util::RandPorts;
    return $rp || {};
}

sub _nginx_binary {
    return $Bundled ? $Test::Nginx::Socket::NginxBinary
                    : ($Test::Nginx::Util::NginxBinary || 'nginx');
}

# (major, minor, patch) of the nginx under test, from `nginx -v`, once
sub nginx_version {
    $NginxVersion ||= [Test::Nginx::Proc::nginx_version(_nginx_binary())];
    return @$NginxVersion;
}

# stop the running nginx (QUIT, bounded waits); the next block with a
# config starts a new one
sub stop_nginx {
    return Test::Nginx::Socket::stop_nginx(@_) if $Bundled;
    my $pidfile = "$ServRoot/logs/nginx.pid";
    my $p = read_file($pidfile);
    return unless defined $p && $p =~ /(\d+)/;
    my $pid = $1;
    stop_process($pid, signal => 'QUIT', wait => $UseValgrind ? 60 : 10);
    unlink $pidfile;
    return;
}

# ------------------------------------------------------------ functions

sub grpc_frame { Test::Nginx::Grpc::grpc_frame(@_) }
sub grpc_status_code { Test::Nginx::Grpc::status_code(@_) }
sub cert_fingerprint { Test::Nginx::Grpc::cert_fingerprint(@_) }

sub free_port {
    $UsedPorts{$_} = 1 for grep { defined }
        @ENV{qw(TEST_NGINX_SERVER_PORT TEST_NGINX_TLS_PORT TEST_NGINX_PORT2
                TEST_NGINX_PORT3 TEST_NGINX_GRPC_PORT)};
    return Test::Nginx::Proc::free_port(\%UsedPorts);
}

sub start_grpc_backend {
    my (%o) = @_;
    init();
    return Test::Nginx::Grpc::start_backend(%o);
}

sub stop_grpc_backend { Test::Nginx::Grpc::stop_backend(@_) }

sub grpc_backend_record {
    my ($port) = @_;
    $port = $GrpcPort unless defined $port;
    my $b = Test::Nginx::Grpc::backend_info($port);
    return $b ? $b->{record}
         : ($port eq ($GrpcPort // '') ? $GrpcRecord : undef);
}

# ------------------------------------------------------------ redis

sub start_redis {
    my (%o) = @_;
    init();
    my $port = $o{port} || free_port();
    my $dir = "$WorkDir/redis-$port";
    make_path($dir);
    # conf: a configuration file, first (redis-sentinel needs one)
    my @cmd = ($o{binary} || 'redis-server',
        (defined $o{conf} ? ($o{conf}) : ()), '--port', $port,
        '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no',
        '--daemonize', 'no', '--dir', $dir, '--logfile', "$dir/redis.log",
        @{ $o{args} || [] });
    push @cmd, '--requirepass', $o{password} if defined $o{password};
    my $pid = spawn(\@cmd, stdout => "$dir/stdout.log",
                    stderr => "$dir/stderr.log");
    my $deadline = time + 10;
    while (time < $deadline) {
        my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                      PeerPort => $port, Timeout => 1);
        if ($s) { close $s; $RedisServers{$port} = $pid; return $port; }
        my $r = waitpid($pid, WNOHANG);
        last if $r == $pid || $r == -1;
        sleep 0.02;
    }
    stop_process($pid, child => 1, group => 1);
    die "redis-server did not start: "
        . (read_file("$dir/redis.log") // '') . "\n";
}

sub stop_redis {
    my ($port) = @_;
    my $pid = delete $RedisServers{$port} or return;
    stop_process($pid, signal => 'TERM', wait => 3, child => 1, group => 1);
}

sub redis_cmd {
    my ($port, @args) = @_;
    my $r = run_cmd(['redis-cli', '-h', '127.0.0.1', '-p', $port, @args],
                    timeout => 10);
    my $out = $r->{out};
    chomp $out;
    return $out;
}

# ------------------------------------------------------------ init

sub init {
    return if $Initialized;
    $Initialized = 1;

    my $which = $Bundled
        ? "the project's minimal Test::Nginx::Socket ($BaseFile)"
        : "Test::Nginx::Socket "
          . ($Test::Nginx::Socket::VERSION // '?') . " ($BaseFile)";
    Test::More::diag("Test::Nginx::Socket::Grpc on $which");

    $ServRoot = Test::Nginx::Socket::server_root();
    $ServerPort = Test::Nginx::Socket::server_port();

    # files of this module and of the test files: the servroot itself
    # with the minimal Test::Nginx::Socket, which keeps what it did not
    # make; beside it with the real one, which empties and removes the
    # servroot whenever it starts a new nginx
    $WorkDir = $Bundled ? $ServRoot : "$ServRoot-grpc";
    $TmpDir = "$WorkDir/tmp";
    $ENV{TEST_NGINX_WORK_DIR} = $WorkDir;
    $ENV{TEST_NGINX_SERVER_ROOT} ||= $ServRoot;
    $ENV{TEST_NGINX_HTML_DIR} ||= Test::Nginx::Socket::html_dir();
    remove_tree($TmpDir, "$WorkDir/grpc_backend", glob("$WorkDir/redis-*"),
                "$WorkDir/jwt");
    make_path($TmpDir);
    $Test::Nginx::Proc::TmpDir = $TmpDir;

    if (!$Bundled && !$Test::Nginx::Util::UseHup && -d $ServRoot) {
        # the real one empties its servroot and removes it before starting
        # nginx, and bails out when something else is in it: say what
        my @other = grep { !m{/(?:conf|logs|html|cache|\w+_temp|\w+_cache)$} }
                    glob("$ServRoot/*");
        if (@other) {
            bail_out("$ServRoot holds files that are not the real "
                . "Test::Nginx's (" . join(', ', map { basename($_) }
                                           @other[0 .. ($#other > 4 ? 4 : $#other)])
                . (@other > 5 ? ', ...' : '') . "), such as the per-file "
                . "servroots of the project's minimal harness: remove it "
                . "(make clean), or set TEST_NGINX_SERVROOT or "
                . "TEST_NGINX_RANDOMIZE=1");
        }
    }

    if (!$Bundled) {
        # what the project's files expect of the nginx and the client,
        # where the real Test::Nginx differs: a master process (reloads),
        # more connections, 10 s for a request (unless told)
        Test::Nginx::Socket::master_on()
            unless defined $ENV{TEST_NGINX_MASTER_PROCESS} || $UseValgrind;
        Test::Nginx::Socket::worker_connections(1024);
        Test::Nginx::Socket::timeout(10) unless $ENV{TEST_NGINX_TIMEOUT};
        Test::Nginx::Socket::add_block_preprocessor(\&_real_preprocess);
        _install_eval_filter();
        if ($Test::Nginx::Util::Randomize && !$ENV{TEST_NGINX_NO_CLEAN}) {
            Test::Nginx::Socket::add_cleanup_handler(sub {
                remove_tree($WorkDir) if $$ == $MainPid;
            });
        }
    }
    # runs first: a test file's own preprocessors come before
    Test::Nginx::Socket::add_block_preprocessor(\&_preprocess);
    Test::Nginx::Socket::add_cleanup_handler(\&_cleanup);

    # the per-block runner: requests, calls, checks
    if ($Bundled) {
        $Test::Nginx::Socket::RunTestHelper = \&run_block;
    } else {
        $Test::Nginx::Util::RunTestHelper = \&run_block;
    }

    # ports
    my $used = \%UsedPorts;
    for my $v (qw(TEST_NGINX_SERVER_PORT TEST_NGINX_PORT TEST_NGINX_TLS_PORT
                  TEST_NGINX_PORT2 TEST_NGINX_PORT3 TEST_NGINX_GRPC_PORT)) {
        $used->{$ENV{$v}} = 1 if $ENV{$v};
    }
    $used->{$ServerPort} = 1;
    $ENV{TEST_NGINX_SERVER_PORT} = $ServerPort;
    $ENV{TEST_NGINX_PORT} ||= $ServerPort;
    for my $v (qw(TEST_NGINX_TLS_PORT TEST_NGINX_PORT2 TEST_NGINX_PORT3)) {
        $ENV{$v} ||= Test::Nginx::Proc::free_port($used);
    }

    # the HTTP/2 listen form of the nginx under test: "listen ... http2"
    # before 1.25.1, the "http2" directive since
    my @v = nginx_version();
    my $new = @v && ($v[0] <=> 1 || $v[1] <=> 25 || $v[2] <=> 1) >= 0;
    $Http2Listen = $new ? '' : 'http2';
    $Http2Directive = $new ? 'http2 on;' : '';
    $ENV{TEST_NGINX_LISTEN_HTTP2} = $Http2Listen;
    $ENV{TEST_NGINX_HTTP2} = $Http2Directive;

    $Test::Nginx::Grpc::BackendDir = "$WorkDir/grpc_backend";

    # the default gRPC backend starts while the certificates are made
    my $backend;
    if ($ENV{TEST_NGINX_GRPC_PORT}) {
        $GrpcPort = $ENV{TEST_NGINX_GRPC_PORT};
        $GrpcRecord = $ENV{TEST_NGINX_GRPC_RECORD};
    } else {
        $backend = Test::Nginx::Grpc::spawn_backend(name => 'default');
    }

    # certificates
    if ($ENV{TEST_NGINX_CERT_DIR} && -d $ENV{TEST_NGINX_CERT_DIR}) {
        $CertDir = File::Spec->rel2abs($ENV{TEST_NGINX_CERT_DIR});
    } else {
        $CertDir = "$WorkDir/certs";
        remove_tree($CertDir);
        eval { Test::Nginx::Grpc::make_certs($CertDir) };
        if ($@) {
            my $err = $@;
            Test::Nginx::Proc::stop_process($backend->{pid}, child => 1,
                                            group => 1) if $backend;
            bail_out("cannot make test certificates: $err");
        }
    }
    $ENV{TEST_NGINX_CERT_DIR} = $CertDir;
    $Test::Nginx::Grpc::CertDir = $CertDir;

    if ($backend) {
        $GrpcPort = eval { Test::Nginx::Grpc::wait_backend($backend) };
        if (!$GrpcPort) {
            my $err = $@;
            Test::Nginx::Proc::stop_process($backend->{pid}, child => 1,
                                            group => 1);
            bail_out("cannot start the gRPC test backend: $err");
        }
        $GrpcRecord = $backend->{record};
        $ENV{TEST_NGINX_GRPC_PORT} = $GrpcPort;
        $ENV{TEST_NGINX_GRPC_RECORD} = $GrpcRecord;
    }

    if ($Verbose) {
        warn "servroot $ServRoot, work dir $WorkDir, port $ServerPort, TLS "
           . "port $ENV{TEST_NGINX_TLS_PORT}, gRPC backend $GrpcPort, "
           . "nginx " . join('.', @v) . "\n";
    }
    return;
}

sub _cleanup {
    return unless $$ == $MainPid;
    Test::Nginx::Proc::kill_running();
    Test::Nginx::Grpc::stop_all_backends();
    stop_redis($_) for keys %RedisServers;
}

END {
    if (defined $MainPid && $$ == $MainPid && $Initialized) {
        local $?;
        _cleanup();
    }
}

# ------------------------------------------------------------ blocks

# both bases: the block's init code runs from run_block, in package main
sub _preprocess {
    my ($block) = @_;
    if (defined scalar($block->init)) {
        $block->set_value('grpc_guard_init', scalar($block->init));
        $block->set_value('init', undef);
    }
    $_->($block) for @BeforeBlock;
}

# the real Test::Nginx only: what the minimal one does by itself
sub _real_preprocess {
    my ($block) = @_;

    # nginx restarts for a block with any nginx section (the real one
    # restarts only for a config), and the first block starts one
    if (!defined scalar($block->config)
        && (!$SeenConfig || defined scalar($block->http_config)
            || defined scalar($block->main_config)
            || defined scalar($block->post_main_config)
            || defined scalar($block->user_files) || defined scalar($block->must_die)))
    {
        $block->set_value('config', '');
    }
    if (defined scalar($block->config)) {
        $SeenConfig = 1;

        # the default server speaks HTTP/2 without TLS (prior knowledge)
        # on 127.0.0.1: a second listen on the same port for that address
        # (nginx < 1.25.1), or the http2 directive
        my $port = Test::Nginx::Socket::server_port();
        my $h2 = $Http2Directive ? "        $Http2Directive\n"
               : "        listen $ServerAddr:$port http2;\n";
        $block->set_value('config', $h2 . scalar($block->config));
    }

    # this module makes the requests (HTTP/2, curl); nginx's stderr at a
    # failed start is in error.log already (nginx -e)
    $block->set_value('no_http2', 1);
    $block->set_value('suppress_stderr', 1) if defined scalar($block->must_die);
}

# The real Test::Nginx evaluates "eval" sections in the package of its
# filters: as the minimal one does, run them in package main, where the
# test file's subs and variables are.  Test::Base takes the filters of
# <its default class>::Filter when that class exists.
sub _install_eval_filter {
    my $class = 'Test::Nginx::Socket::Filter';
    return if $class->can('new');
    no strict 'refs';
    @{"${class}::ISA"} = ('Test::Base::Filter');
    *{"${class}::eval"} = sub {
        my ($self, $code) = @_;
        my @r;
        {
            package main;
            no strict;
            no warnings;
            @r = CORE::eval($code);
        }
        die "eval section of \"" . ($self->current_block
                                    ? $self->current_block->name : '?')
            . "\" failed: $@" if $@;
        return @r;
    };
}

# the per-block runner ($RunTestHelper of both bases), once per
# repeat_each round, with nginx running
sub run_block {
    my ($block, $dry_run, $rep) = @_;
    my $name = $block->name;
    $rep //= 0;

    # the error-log checks of a block that runs on the nginx of the block
    # before it see the lines written from now on (the real Test::Nginx
    # would read the whole file again)
    if ($rep == 0 && !$Bundled && !defined scalar($block->config)) {
        $Test::Nginx::Util::ErrLogFilePos = -s error_log_file() || 0;
    }

    if ($rep == 0 && defined(my $code = scalar($block->grpc_guard_init))) {
        { package main; no strict; eval $code; }
        bail_out("$name - init failed: $@") if $@;
    }

    my $rand_ports = _rand_ports();
    my %rec_off = record_offsets();

    my ($res, $need_array) = run_requests($block, $rep, $rand_ports,
                                          $dry_run);
    run_grpc_calls($block, $rep, $rand_ports);
    run_h2_frames($block, $rep, $rand_ports);

    if (scalar($block->wait)) {
        sleep parse_time(scalar($block->wait));
    }

    check_upstream($block, $rep, \%rec_off, $rand_ports);
    _check_error_log($block, $res, $dry_run, $rep, $need_array);
    _check_access_log($block, $dry_run, $rep);
    return;
}

sub _check_error_log {
    my ($block, $res, $dry_run, $rep, $need_array) = @_;
    my $check = $Bundled ? $Test::Nginx::Socket::CheckErrorLog
                         : $Test::Nginx::Util::CheckErrorLog;
    $check->($block, $res, $dry_run, $rep, $need_array);
}

sub _check_access_log {
    my ($block, $dry_run, $rep) = @_;
    return unless defined scalar($block->access_log)
                  || defined scalar($block->no_access_log);
    if ($Bundled) {
        &Test::Nginx::Socket::check_access_log($block, $rep);
    } else {
        &Test::Nginx::Socket::check_access_log($block, $dry_run, $rep);
    }
}

# ------------------------------------------------------------ helpers

sub parse_time {
    my ($t) = @_;
    return undef unless defined $t;
    $t =~ s/^\s+|\s+$//g;
    if ($t =~ s/([^_a-zA-Z])ms$/$1/) {
        return $t / 1000;
    }
    $t =~ s/([^_a-zA-Z])s$/$1/;
    return $t;
}

sub expand_env {
    my ($text, $name, $rand_ports) = @_;
    return $text unless defined $text && !ref $text;
    $text =~ s{\$(TEST_NGINX_[_A-Z0-9]+)}{
        my $v = $1;
        my $out;
        if ($v =~ /^TEST_NGINX_RAND_PORT_\d+$/) {
            $rand_ports->{$v} ||= free_port();
            $out = $rand_ports->{$v};
        } elsif (defined $ENV{$v}) {
            $out = $ENV{$v};
        } else {
            bail_out("$name - No environment $v defined.\n");
        }
        $out;
    }ge;
    return $text;
}

# the value for request/call $idx of a section that may be an array
sub get_indexed_value {
    my ($name, $value, $idx, $need_array) = @_;
    if ($need_array) {
        return $value->[$idx] if ref $value && ref $value eq 'ARRAY';
        bail_out("$name - You asked for many requests, the expected "
                 . "results should be arrays as well.");
    }
    return $value->[0] if ref $value && ref $value eq 'ARRAY';
    return $value;
}

# for gRPC sections: an array gives one value per call, a scalar applies
# to every call
sub per_call {
    my ($value, $idx) = @_;
    return ref $value && ref $value eq 'ARRAY' ? $value->[$idx] : $value;
}

sub _regex {
    my ($v, $flags) = @_;
    return $v if ref $v eq 'Regexp';
    my $s = $v;
    chomp $s;
    return $flags eq 's' ? qr/$s/s : qr/$s/m;
}

# ------------------------------------------------------------ requests

sub parse_request {
    my ($name, $req, $more_headers) = @_;
    1 while $req =~ s/^\s*\#[^\n]*\n|^\s+//s;
    my ($first, $body) = split /\r?\n/, $req, 2;
    $first = '' unless defined $first;
    $first =~ /^\s*(\S+)(?:\s+(\S+))?(?:\s+HTTP\/(\S+))?\s*$/
        or bail_out("$name - cannot parse the request line: \"$first\"");
    my ($meth, $uri, $ver) = ($1, $2 // '/', $3);
    if (defined $body && length $body) {
        if ($more_headers !~ /(?:^|\n)\s*Content-Length\s*:/i
            && $body !~ /\0/)
        {
            $body =~ s/^\s+|\s+$//gs;
        }
    } else {
        $body = undef;
    }
    return { method => $meth, uri => $uri, version => $ver, body => $body };
}

sub parse_more_headers {
    my ($mh) = @_;
    my @h;
    for my $line (split /\n+/, $mh // '') {
        next if $line =~ /^\s*#/ || $line !~ /\S/;
        my ($k, $v) = split /:\s*/, $line, 2;
        $k =~ s/^\s+|\s+$//g;
        $v = '' unless defined $v;
        $v =~ s/\s+$//;
        push @h, [$k, $v];
    }
    return \@h;
}

sub _request_port {
    my ($block, $rand_ports) = @_;
    my $p = scalar($block->request_port);
    return $ServerPort unless defined $p;
    $p = expand_env($p, $block->name, $rand_ports);
    $p =~ s/^\s+|\s+$//g;
    return $p;
}

# parse curl's -D output: (status, \@headers, \@trailers, raw_headers)
sub parse_curl_headers {
    my ($raw) = @_;
    $raw //= '';
    my @blocks = split /\r?\n\r?\n/, $raw, -1;
    my ($code, @headers, @trailers, $raw_headers);
    my $seen_final;
    for my $b (@blocks) {
        next unless $b =~ /\S/;
        my @lines = split /\r?\n/, $b;
        if ($lines[0] =~ m{^HTTP/\S+\s+(\d+)}) {
            my $c = $1;
            next if $c >= 100 && $c < 200;
            $code = $c;
            $raw_headers = $b . "\r\n";
            @headers = ();
            shift @lines;
            for (@lines) {
                my ($k, $v) = split /:\s*/, $_, 2;
                push @headers, [lc $k, $v // ''];
            }
            $seen_final = 1;
        } elsif ($seen_final) {
            for (@lines) {
                next unless /\S/;
                my ($k, $v) = split /:\s*/, $_, 2;
                push @trailers, [lc $k, $v // ''];
            }
        }
    }
    return ($code, \@headers, \@trailers, $raw_headers // '');
}

# run curl; returns { code, headers, trailers, raw_headers, body, err,
#                     exit, timed_out }
sub curl_request {
    my (%o) = @_;
    my $hdr = "$TmpDir/curl.headers";
    my $bodyf = "$TmpDir/curl.body";
    unlink $hdr, $bodyf;
    my @cmd = ('curl', '--http2-prior-knowledge', '--path-as-is', '-sS',
               '-D', $hdr, '-o', $bodyf, '-H', 'User-Agent:', '-H', 'Accept:');
    my $proto = $o{protocol} || 'http';
    @cmd = grep { $_ ne '--http2-prior-knowledge' } @cmd
        if $proto eq 'https';
    push @cmd, '--http2' if $proto eq 'https';
    my $has_host = grep { lc $_->[0] eq 'host' } @{ $o{headers} };
    push @cmd, '-H', "Host: " . _server_name() unless $has_host;
    if ($o{method} eq 'HEAD') {
        push @cmd, '-I';
    } else {
        push @cmd, '-X', $o{method};
    }
    my $has_ct = grep { lc $_->[0] eq 'content-type' } @{ $o{headers} };
    for my $h (@{ $o{headers} }) {
        push @cmd, '-H', length $h->[1] ? "$h->[0]: $h->[1]" : "$h->[0];";
    }
    if (defined $o{body}) {
        my $bf = "$TmpDir/curl.data.bin";
        write_file($bf, $o{body});
        push @cmd, '-H', 'Content-Type:' unless $has_ct;
        push @cmd, '--data-binary', "\@$bf";
    }
    my $t = $o{timeout} || _timeout();
    push @cmd, '--connect-timeout', $t, '--max-time', $t;
    push @cmd, @{ $o{extra} || [] };
    push @cmd, "$proto://" . ($o{host} || $ServerAddr) . ":$o{port}$o{uri}";
    warn "running " . shell_quote(@cmd) . "\n" if $Verbose;

    my $r = run_cmd(\@cmd, timeout => $t + 5);
    my $raw = read_file($hdr) // '';
    my ($code, $headers, $trailers, $raw_headers) = parse_curl_headers($raw);
    my $res = {
        code => $code, headers => $headers, trailers => $trailers,
        raw_headers => $raw_headers, raw => $raw,
        body => read_file($bodyf) // '', err => $r->{err},
        exit => $r->{exit}, timed_out => $r->{timed_out},
        cmd => shell_quote(@cmd),
    };
    warn "curl result: exit $r->{exit}\n$raw\n$r->{err}\n" if $Verbose;
    return $res;
}

sub run_requests {
    my ($block, $rep, $rand_ports) = @_;
    my $name = $block->name;
    my $request = scalar($block->request);
    return (undef, 0) unless defined $request;
    my @list = ref $request eq 'ARRAY' ? @$request : ($request);
    bail_out("$name - request empty") unless @list;
    my $need_array = @list > 1;
    my $timeout = parse_time(scalar($block->timeout)) || _timeout();
    my $mh_all = scalar($block->more_headers) // '';
    my $last;

    for my $i (0 .. $#list) {
        my $one = $list[$i];
        $one = join '', map { ref $_ eq 'HASH' ? $_->{value} : $_ } @$one
            if ref $one eq 'ARRAY';
        my $mh = ref $mh_all eq 'ARRAY' ? $mh_all->[$i] : $mh_all;
        bail_out("$name - more_headers lacks data for request $i")
            unless defined $mh;
        my $req = parse_request($name, $one, $mh);
        my $extra = [];
        if (defined scalar($block->curl_options)) {
            $extra = [split ' ', expand_env(scalar($block->curl_options), $name,
                                            $rand_ports)];
        }
        # curl 7.88 reports a stream error (exit 92) when the server
        # answers and resets the stream (RST_STREAM NO_ERROR, as HTTP/2
        # allows) before curl has sent the whole body: a race on early
        # replies, so such a request is sent again, at most twice
        my $res;
        for my $try (1 .. 3) {
            $res = curl_request(
                method => $req->{method}, uri => $req->{uri},
                headers => parse_more_headers($mh), body => $req->{body},
                port => _request_port($block, $rand_ports),
                timeout => $timeout, protocol => scalar($block->curl_protocol),
                extra => $extra,
            );
            last if defined $res->{code} || $res->{exit} != 92;
        }

        my $skip_checks;
        if (defined scalar($block->curl_error)) {
            my $exp = get_indexed_value($name, scalar($block->curl_error), $i,
                                        $need_array);
            if (ref $exp) {
                Test::More::like($res->{err}, $exp, "$name - curl_error ok");
            } else {
                chomp $exp;
                Test::More::ok(index($res->{err}, $exp) >= 0,
                               "$name - curl_error ok")
                    or Test::More::diag("curl stderr: $res->{err}");
            }
            $skip_checks = 1;
        } elsif (!defined $res->{code}) {
            Test::More::fail("$name - curl request failed (exit "
                . "$res->{exit}): $res->{err}  command: $res->{cmd}");
            $skip_checks = 1;
        } elsif ($res->{exit} != 0) {
            warn "WARNING: $name - curl exit $res->{exit}: $res->{err}";
        }

        if (!$skip_checks) {
            check_error_code($block, $res, $i, $need_array);
            check_raw_response_headers($block, $res, $i, $need_array);
            check_response_headers($block, $res, $i, $need_array);
            check_response_body($block, $res, $i, $rep, $need_array);
        }

        if ($i < $#list) {
            sleep parse_time(scalar($block->wait)) if scalar($block->wait);
            _check_error_log($block, $res, 0, $rep, $need_array);
        }
        $last = $res;
    }
    return ($last, $need_array);
}

sub check_error_code {
    my ($block, $res, $i, $need_array) = @_;
    my $name = $block->name;
    if (defined scalar($block->error_code_like)) {
        my $v = get_indexed_value($name, scalar($block->error_code_like), $i,
                                  $need_array);
        Test::More::like($res->{code} // '', qr/$v/sm,
                         "$name - status code ok");
    } elsif (defined scalar($block->error_code)) {
        my $v = get_indexed_value($name, scalar($block->error_code), $i,
                                  $need_array);
        $v =~ s/^\s+|\s+$//g if defined $v;
        Test::More::is($res->{code} // '', $v, "$name - status code ok");
    } else {
        Test::More::is($res->{code} // '', 200, "$name - status code ok");
    }
}

sub check_raw_response_headers {
    my ($block, $res, $i, $need_array) = @_;
    my $name = $block->name;
    if (defined scalar($block->raw_response_headers_like)) {
        my $v = get_indexed_value($name, scalar($block->raw_response_headers_like),
                                  $i, $need_array);
        Test::More::like($res->{raw_headers}, qr/$v/s,
                         "$name - raw resp headers like");
    }
    if (defined scalar($block->raw_response_headers_unlike)) {
        my $v = get_indexed_value($name,
                    scalar($block->raw_response_headers_unlike), $i, $need_array);
        Test::More::unlike($res->{raw_headers}, qr/$v/s,
                           "$name - raw resp headers unlike");
    }
}

# all values of $key in a [[k, v], ...] list, joined by ", "
sub _md_value {
    my ($list, $key) = @_;
    my @v = map { $_->[1] } grep { lc $_->[0] eq lc $key } @$list;
    return @v ? join(', ', @v) : undef;
}

sub parse_header_spec {
    my ($text) = @_;
    my @out;
    for my $line (split /\n/, $text // '') {
        next if $line =~ /^\s*#/ || $line !~ /\S/;
        $line =~ s/^\s+|\s+$//g;
        if ($line =~ s/^!\s*//) {
            push @out, [$line, undef];
        } else {
            my ($k, $v) = split /\s*:\s*/, $line, 2;
            push @out, [$k, $v // ''];
        }
    }
    return \@out;
}

sub check_response_headers {
    my ($block, $res, $i, $need_array) = @_;
    my $name = $block->name;
    my @all = (@{ $res->{headers} }, @{ $res->{trailers} });
    if (defined scalar($block->response_headers)) {
        my $spec = get_indexed_value($name, scalar($block->response_headers), $i,
                                     $need_array);
        for my $h (@{ parse_header_spec($spec) }) {
            my ($k, $v) = @$h;
            if (!defined $v) {
                Test::More::ok(!defined _md_value(\@all, $k),
                    "$name - header $k not present in the raw headers");
                next;
            }
            $v =~ s/\$ServerPort\b/$ServerPort/g;
            Test::More::is(_md_value(\@all, $k) // '', $v,
                           "$name - header $k ok");
        }
    }
    if (defined scalar($block->response_headers_like)) {
        my $spec = get_indexed_value($name, scalar($block->response_headers_like),
                                     $i, $need_array);
        for my $h (@{ parse_header_spec($spec) }) {
            my ($k, $v) = @$h;
            next unless defined $v;
            Test::More::like(_md_value(\@all, $k) // '', qr/^$v$/,
                             "$name - header $k like ok");
        }
    }
}

sub check_response_body {
    my ($block, $res, $i, $rep, $need_array) = @_;
    my $name = $block->name;
    my $content = $res->{body};
    if (defined scalar($block->response_body)) {
        my $exp = get_indexed_value($name, scalar($block->response_body), $i,
                                    $need_array);
        if (defined $exp && !ref $exp) {
            $exp =~ s/\$ServerPort\b/$ServerPort/g;
        }
        if (ref $exp) {
            Test::More::like($content, $exp, "$name - response_body - like "
                             . "(repeated req $rep, req $i)");
        } else {
            Test::More::is($content, $exp, "$name - response_body - "
                . "response is expected (repeated req $rep, req $i)");
        }
    } elsif (defined scalar($block->response_body_like)
             || defined scalar($block->response_body_unlike))
    {
        my $like = defined scalar($block->response_body_like);
        my $pat = get_indexed_value($name, $like ? scalar($block->response_body_like)
                                    : scalar($block->response_body_unlike), $i,
                                    $need_array);
        $pat =~ s/\$ServerPort\b/$ServerPort/g unless ref $pat;
        my $re = ref $pat ? $pat : qr/$pat/s;
        my $summary = $content;
        $summary =~ s/\s+/ /g;
        $summary = substr($summary, 0, 200);
        if ($like) {
            Test::More::like($content, $re, "$name - response_body_like - "
                             . "response is expected ($summary)");
        } else {
            Test::More::unlike($content, $re, "$name - response_body_unlike"
                               . " - response is expected ($summary)");
        }
    }
    for my $check (@Test::Nginx::Socket::ResponseBodyChecks) {
        $check->($block, $content, $i, $rep, undef);
    }
}

# ------------------------------------------------------------ nghttp

sub run_h2_frames {
    my ($block, $rep, $rand_ports) = @_;
    my $name = $block->name;
    my $like = scalar($block->h2_frames_like);
    my $unlike = scalar($block->h2_frames_unlike);
    return unless defined $like || defined $unlike;
    my $request = scalar($block->request);
    bail_out("$name - h2_frames_like needs a --- request section")
        unless defined $request;
    my $one = ref $request eq 'ARRAY' ? $request->[0] : $request;
    my $mh = scalar($block->more_headers) // '';
    $mh = $mh->[0] if ref $mh eq 'ARRAY';
    my $req = parse_request($name, $one, $mh);
    my $timeout = parse_time(scalar($block->timeout)) || _timeout();

    my @cmd = ('nghttp', '-nv', '-t', int($timeout + 0.999));
    my $has_auth;
    for my $h (@{ parse_more_headers($mh) }) {
        my $k = lc $h->[0];
        $k = ':authority' if $k eq 'host';
        $has_auth = 1 if $k eq ':authority';
        push @cmd, '-H', "$k: $h->[1]";
    }
    push @cmd, '-H', ":authority: " . _server_name() unless $has_auth;
    if (defined $req->{body}) {
        my $bf = "$TmpDir/nghttp.data.bin";
        write_file($bf, $req->{body});
        push @cmd, '-d', $bf;
    }
    if ($req->{method} ne 'GET' && !(defined $req->{body}
                                     && $req->{method} eq 'POST'))
    {
        push @cmd, '-H', ":method: $req->{method}";
    }
    my $proto = (scalar($block->curl_protocol) // 'http') eq 'https' ? 'https'
                                                             : 'http';
    push @cmd, "$proto://$ServerAddr:" . _request_port($block, $rand_ports)
               . $req->{uri};
    warn "running " . shell_quote(@cmd) . "\n" if $Verbose;
    my $r = run_cmd(\@cmd, timeout => $timeout + 5);
    my $dump = $r->{out} . $r->{err};
    warn "nghttp output:\n$dump\n" if $Verbose;

    if (defined $like) {
        my @pats = ref $like eq 'ARRAY' ? @$like : ($like);
        for my $p (@pats) {
            Test::More::like($dump, _regex($p, 'm'),
                             "$name - h2_frames_like (req $rep)")
                or Test::More::diag("nghttp: " . shell_quote(@cmd));
        }
    }
    if (defined $unlike) {
        my @pats = ref $unlike eq 'ARRAY' ? @$unlike : ($unlike);
        for my $p (@pats) {
            Test::More::unlike($dump, _regex($p, 'm'),
                               "$name - h2_frames_unlike (req $rep)");
        }
    }
}

# ------------------------------------------------------------ gRPC calls

my %CALL_KEYS = map { $_ => 1 } qw(method type metadata timeout messages
    payload port tls ca cert key server_name host cancel_after
    raw_timeout_header transport same_connection sizes message_delay);

sub parse_grpc_call {
    my ($block, $spec, $rand_ports, $timeout) = @_;
    my $name = $block->name;
    my %c;
    my @md;
    if (ref $spec eq 'HASH') {
        %c = %$spec;
        for my $k (keys %c) {
            $c{$k} = expand_env($c{$k}, $name, $rand_ports) unless ref $c{$k};
        }
        for my $m (@{ $c{metadata} || [] }) {
            my ($k, $v) = ref $m ? @$m : split /\s*:\s*/, $m, 2;
            push @md, [lc $k, expand_env($v // '', $name, $rand_ports)];
        }
    } else {
        my $text = expand_env($spec, $name, $rand_ports);
        for my $line (split /\n/, $text) {
            next if $line =~ /^\s*#/ || $line !~ /\S/;
            $line =~ s/^\s+|\s+$//g;
            my ($k, $v) = split /\s*:\s*/, $line, 2;
            bail_out("$name - grpc_call: unknown key '$k'")
                unless $CALL_KEYS{$k};
            $v = '' unless defined $v;
            if ($k eq 'metadata') {
                my ($mk, $mv) = split /\s*:\s*/, $v, 2;
                push @md, [lc $mk, $mv // ''];
            } else {
                $c{$k} = $v;
            }
        }
    }
    bail_out("$name - grpc_call without method") unless defined $c{method};
    for my $k (keys %c) {
        bail_out("$name - grpc_call: unknown key '$k'") unless $CALL_KEYS{$k};
    }
    $c{metadata} = \@md;
    $c{type} ||= 'unary';
    bail_out("$name - grpc_call: bad type '$c{type}'")
        unless $c{type} =~ /^(unary|server_stream|client_stream|bidi)$/;
    $c{port} ||= $ServerPort;
    $c{host} ||= '127.0.0.1';
    $c{messages} = 3 unless defined $c{messages} && length $c{messages};
    $c{payload} = 'ping' unless defined $c{payload};
    if (defined $c{tls} && $c{tls} =~ /^(on|1|yes|true)$/i) {
        $c{tls} = JSON::PP::true();
        $c{ca} ||= 'ca.crt';
        for my $f (qw(ca cert key)) {
            next unless $c{$f};
            $c{$f} = "$CertDir/$c{$f}" unless $c{$f} =~ m{^/};
        }
    } else {
        delete $c{tls};
    }
    if (defined $c{same_connection}
        && $c{same_connection} =~ /^(on|1|yes|true)$/i)
    {
        $c{same_connection} = JSON::PP::true();
    } else {
        delete $c{same_connection};
    }
    bail_out("$name - grpc_call: same_connection is for grpcio calls")
        if $c{same_connection}
           && (($c{transport} // '') eq 'curl' || $c{raw_timeout_header});
    for my $k (qw(timeout cancel_after messages port)) {
        next unless defined $c{$k} && length $c{$k};
        $c{$k} = parse_time($c{$k}) if $k eq 'timeout'
                                       || $k eq 'cancel_after';
        $c{$k} += 0;
    }
    delete $c{timeout} if defined $c{timeout} && $c{timeout} eq '';
    $c{overall_timeout} = $timeout;
    return \%c;
}

sub run_grpc_calls {
    my ($block, $rep, $rand_ports) = @_;
    my $name = $block->name;
    my $gc = scalar($block->grpc_call);
    return 0 unless defined $gc;
    my @texts = ref $gc eq 'ARRAY' ? @$gc : ($gc);
    my $timeout = parse_time(scalar($block->timeout)) || _timeout();
    $timeout *= 3 if $UseValgrind;
    my @specs = map { parse_grpc_call($block, $_, $rand_ports, $timeout) }
                @texts;

    # consecutive grpcio calls go to one client process
    my @results;
    my @batch;
    my $flush = sub {
        return unless @batch;
        my $limit = 5 + sum(map { $_->{overall_timeout} } @batch);
        my ($res, $err) = Test::Nginx::Grpc::run_client([@batch], $limit);
        if ($err) {
            push @results, { error => $err } for @batch;
        } else {
            push @results, @$res;
        }
        @batch = ();
    };
    for my $s (@specs) {
        if (($s->{transport} // '') eq 'curl'
            || defined $s->{raw_timeout_header})
        {
            $flush->();
            push @results, curl_grpc_call($s);
        } else {
            push @batch, $s;
        }
    }
    $flush->();

    for my $i (0 .. $#results) {
        check_grpc_result($block, $rep, $i, $results[$i], $specs[$i]);
    }
    return scalar @results;
}

sub _grpc_timeout_header {
    my ($secs) = @_;
    my $ms = int($secs * 1000 + 0.999);
    return $ms . 'm' if $ms <= 99999999;
    return int($secs + 0.999) . 'S';
}

# a gRPC call made with curl: exact headers (raw grpc-timeout), unary
# framing; the result has the same shape as grpc_client.py's
sub curl_grpc_call {
    my ($s) = @_;
    my @h = (['content-type', 'application/grpc'], ['te', 'trailers']);
    push @h, ['grpc-timeout', $s->{raw_timeout_header}]
        if defined $s->{raw_timeout_header};
    push @h, ['grpc-timeout', _grpc_timeout_header($s->{timeout})]
        if !defined $s->{raw_timeout_header} && defined $s->{timeout};
    push @h, @{ $s->{metadata} };
    my $n = $s->{type} =~ /^(client_stream|bidi)$/ ? $s->{messages} : 1;
    my @payloads = map { $s->{payload} } 1 .. $n;
    if (defined $s->{sizes} && length $s->{sizes}) {
        @payloads = map { 'x' x $_ } split /[\s,]+/, $s->{sizes};
        splice @payloads, 1 unless $s->{type} =~ /^(client_stream|bidi)$/;
    }
    my $body = join '', map { grpc_frame($_) } @payloads;
    my @extra;
    my $host = $s->{host};
    my $t = $s->{overall_timeout};
    if ($s->{tls}) {
        push @extra, '--cacert', $s->{ca} if $s->{ca};
        push @extra, '--cert', $s->{cert} if $s->{cert};
        push @extra, '--key', $s->{key} if $s->{key};
        if ($s->{server_name}) {
            push @extra, '--resolve', "$s->{server_name}:$s->{port}:$host";
            $host = $s->{server_name};
        }
    }
    $t = $s->{cancel_after} if defined $s->{cancel_after}
                               && $s->{cancel_after} < $t;
    my $res = curl_request(method => 'POST', uri => $s->{method},
        headers => \@h, body => $body, port => $s->{port}, host => $host,
        timeout => $t, protocol => $s->{tls} ? 'https' : 'http',
        extra => \@extra);

    my %out = (initial_metadata => [], trailing_metadata => [],
               responses => [], responses_b64 => [], error => undef,
               http_status => $res->{code}, harness_timeout => 0);
    my %reserved = map { $_ => 1 } qw(content-type grpc-status grpc-message
        grpc-encoding grpc-accept-encoding grpc-status-details-bin);
    my @hdrs = grep { !$reserved{$_->[0]} } @{ $res->{headers} };
    my @trls = grep { !$reserved{$_->[0]} } @{ $res->{trailers} };
    my $status = _md_value($res->{trailers}, 'grpc-status');
    my $message = _md_value($res->{trailers}, 'grpc-message');
    if (!defined $status && defined $res->{code}) {
        $status = _md_value($res->{headers}, 'grpc-status');
        $message = _md_value($res->{headers}, 'grpc-message');
        if (defined $status && !length $res->{body}) {
            @trls = @hdrs;      # Trailers-Only
            @hdrs = ();
        }
    }
    $out{initial_metadata} = \@hdrs;
    $out{trailing_metadata} = \@trls;
    my ($msgs) = Test::Nginx::Grpc::parse_frames($res->{body});
    $out{responses} = $msgs;
    $out{responses_b64} = [map { encode_base64($_, '') } @$msgs];

    if ($res->{exit} == 28 && defined $s->{cancel_after}) {
        ($out{code}, $out{details}) = (1, 'Cancelled');
    } elsif ($res->{exit} == 28 && defined $s->{timeout}) {
        ($out{code}, $out{details}) = (4, 'Deadline Exceeded');
    } elsif ($res->{exit} == 28) {
        $out{harness_timeout} = 1;
        $out{code} = 1;
    } elsif (defined $status && $res->{code} && $res->{code} == 200) {
        $out{code} = $status + 0;
        $out{details} = Test::Nginx::Grpc::percent_decode($message // '');
    } elsif (defined $res->{code} && $res->{code} != 200) {
        $out{code} = Test::Nginx::Grpc::http_to_grpc($res->{code});
        $out{details} = "Received http2 header with status: $res->{code}";
    } elsif ($res->{err} =~ /not closed cleanly: (\w+)/) {
        my $e = $1;
        $out{code} = $e eq 'CANCEL' ? 1 : $e eq 'REFUSED_STREAM' ? 14 : 13;
        $out{details} = "stream reset: $e";
    } elsif (!defined $res->{code}) {
        ($out{code}, $out{details}) = (14, "curl: $res->{err}");
    } else {
        ($out{code}, $out{details}) = (2, 'missing grpc-status');
    }
    $out{curl_error} = $res->{err} if $res->{exit};
    return \%out;
}

sub check_metadata_spec {
    my ($name, $what, $list, $spec) = @_;
    for my $h (@{ parse_header_spec($spec) }) {
        my ($k, $v) = @$h;
        my $got = _md_value($list, $k);
        if (!defined $v) {
            Test::More::ok(!defined $got, "$name - $what: $k absent")
                or Test::More::diag("got $k: $got");
        } elsif ($v =~ /^~\s*(.*)$/) {
            my $re = $1;
            Test::More::like($got // '', qr/$re/, "$name - $what: $k like")
                or (!defined $got
                    && Test::More::diag("$k is absent; got: "
                                        . _md_dump($list)));
        } else {
            Test::More::is($got, $v, "$name - $what: $k")
                or (!defined $got
                    && Test::More::diag("$k is absent; got: "
                                        . _md_dump($list)));
        }
    }
}

sub _md_dump {
    my ($list) = @_;
    return join '; ', map { "$_->[0]: " . ($_->[1] // '') } @$list;
}

sub check_grpc_result {
    my ($block, $rep, $i, $r, $spec) = @_;
    my $name = $block->name;
    my $tag = "(req $rep, call $i)";

    if ($r->{error}) {
        Test::More::fail("$name - grpc call $i ($spec->{method}) could not "
                         . "be made: $r->{error}");
        return;
    }
    if ($r->{harness_timeout}) {
        Test::More::fail("$name - grpc call $i ($spec->{method}) did not "
                         . "finish within $spec->{overall_timeout} s");
        return;
    }

    my $exp = per_call(scalar($block->grpc_status), $i);
    $exp = 0 unless defined $exp;
    $exp = Test::Nginx::Grpc::status_code($exp);
    Test::More::is($r->{code}, $exp, "$name - grpc_status $tag")
        or Test::More::diag("grpc details: " . ($r->{details} // '')
                            . "; trailers: "
                            . _md_dump($r->{trailing_metadata}));

    if (defined(my $m = per_call(scalar($block->grpc_message), $i))) {
        chomp $m;
        Test::More::is($r->{details} // '', $m, "$name - grpc_message $tag");
    }
    if (defined(my $m = per_call(scalar($block->grpc_message_like), $i))) {
        Test::More::like($r->{details} // '', _regex($m, 's'),
                         "$name - grpc_message_like $tag");
    }
    if (defined(my $s = per_call(scalar($block->grpc_trailers), $i))) {
        check_metadata_spec($name, "grpc_trailers $tag",
                            $r->{trailing_metadata}, $s);
    }
    if (defined(my $s = per_call(scalar($block->grpc_initial_metadata), $i))) {
        check_metadata_spec($name, "grpc_initial_metadata $tag",
                            $r->{initial_metadata}, $s);
    }
    my @resp = map { decode_base64($_) } @{ $r->{responses_b64} || [] };
    if (defined(my $n = per_call(scalar($block->grpc_responses), $i))) {
        $n =~ s/^\s+|\s+$//g;
        Test::More::is(scalar @resp, $n, "$name - grpc_responses $tag");
    }
    if (defined(my $p = per_call(scalar($block->grpc_response_like), $i))) {
        Test::More::like(join('', @resp), _regex($p, 's'),
                         "$name - grpc_response_like $tag");
    }
    if (defined(my $p = per_call(scalar($block->grpc_response), $i))) {
        Test::More::is(join('', @resp), $p, "$name - grpc_response $tag");
    }
}

# ------------------------------------------------------------ upstream

sub record_offsets {
    my %off;
    for my $port (keys %Test::Nginx::Grpc::Backends) {
        my $f = $Test::Nginx::Grpc::Backends{$port}{record};
        $off{$f} = -s $f || 0;
    }
    $off{$GrpcRecord} = -s $GrpcRecord || 0
        if $GrpcRecord && !exists $off{$GrpcRecord};
    return %off;
}

sub check_upstream {
    my ($block, $rep, $off, $rand_ports) = @_;
    my $name = $block->name;
    my @sections = grep { defined $block->$_ } qw(upstream_calls
        upstream_method upstream_metadata upstream_timeout);
    return unless @sections;

    my $port = scalar($block->upstream_port);
    $port = defined $port ? expand_env($port, $name, $rand_ports) : $GrpcPort;
    $port =~ s/^\s+|\s+$//g;
    my $rec = grpc_backend_record($port);
    if (!$rec || !exists $off->{$rec}) {
        SKIP: {
            Test::More::skip("$name - no record file for the backend on "
                             . "port $port", scalar @sections);
        }
        return;
    }
    sleep $TestNginxSleep * 2;
    my ($entries) = Test::Nginx::Grpc::read_records($rec, $off->{$rec});
    my $tag = "(req $rep)";

    if (defined(my $n = scalar($block->upstream_calls))) {
        $n =~ s/^\s+|\s+$//g;
        Test::More::is(scalar @$entries, $n, "$name - upstream_calls $tag")
            or Test::More::diag("backend saw: "
                                . join(', ', map { $_->{method} } @$entries));
    }
    my $last = $entries->[-1];
    my $entry_for = sub {
        my ($v, $j) = @_;
        return ref $v eq 'ARRAY' ? $entries->[$j] : $last;
    };
    my $each = sub {
        my ($v, $cb) = @_;
        my @vals = ref $v eq 'ARRAY' ? @$v : ($v);
        for my $j (0 .. $#vals) {
            next unless defined $vals[$j];
            my $e = ref $v eq 'ARRAY' ? $entries->[$j] : $last;
            my $t = ref $v eq 'ARRAY' ? "(req $rep, upstream call $j)" : $tag;
            if (!$e) {
                Test::More::fail("$name - no call reached the backend $t");
                next;
            }
            $cb->($vals[$j], $e, $t);
        }
    };

    if (defined scalar($block->upstream_method)) {
        $each->(scalar($block->upstream_method), sub {
            my ($v, $e, $t) = @_;
            $v =~ s/^\s+|\s+$//g;
            Test::More::is($e->{method}, $v, "$name - upstream_method $t");
        });
    }
    if (defined scalar($block->upstream_metadata)) {
        $each->(scalar($block->upstream_metadata), sub {
            my ($v, $e, $t) = @_;
            check_metadata_spec($name, "upstream_metadata $t",
                                $e->{metadata}, $v);
        });
    }
    if (defined scalar($block->upstream_timeout)) {
        $each->(scalar($block->upstream_timeout), sub {
            my ($v, $e, $t) = @_;
            $v =~ s/^\s+|\s+$//g;
            my $got = $e->{timeout};
            if ($v eq 'none') {
                Test::More::ok(!defined $got,
                               "$name - upstream_timeout none $t")
                    or Test::More::diag("backend saw a deadline of $got s");
            } else {
                my ($lo, $hi) = split ' ', $v;
                my ($min, $max) = ($lo - $DeadlineLate, $hi + $DeadlineSlack);
                Test::More::ok(defined $got && $got >= $min && $got <= $max,
                               "$name - upstream_timeout in [$lo, $hi] $t")
                    or Test::More::diag("backend saw "
                        . (defined $got ? "$got s" : 'no deadline')
                        . " (accepted: $min to $max s)");
            }
        });
    }
}


1;
