package Test::Nginx::Socket;

# The project's minimal implementation of the Test::Nginx::Socket block
# format, for machines without the real Test::Nginx (it is not packaged in
# Debian).  It lives in t/lib/fallback, which is not on @INC: the test files
# load Test::Nginx::Socket::Grpc, which loads the real Test::Nginx::Socket
# when perl finds one, and only otherwise appends t/lib/fallback to @INC
# and loads this one.  Reference for test writers: t/lib/README.md.
#
# It does what the real one does for the project's files: blocks, the
# nginx configuration, starting and stopping nginx, must_die, the error-
# and access-log checks, plus sanitizer, crash and valgrind reports.  It
# makes no request itself: the per-block runner ($RunTestHelper, as in the
# real one) is Test::Nginx::Socket::Grpc's, which sends HTTP/2 requests and
# gRPC calls.
#
# Perl core modules only (Test::More, POSIX, JSON::PP, Time::HiRes, ...).

use strict;
use warnings;
use v5.10.1;

use Test::More ();
use Cwd qw(cwd);
use File::Basename qw(basename dirname);
use File::Path qw(make_path remove_tree);
use File::Spec;
use List::Util qw(shuffle sum);
use MIME::Base64 qw(decode_base64 encode_base64);
use POSIX qw(:sys_wait_h);
use Scalar::Util qw(looks_like_number);
use Time::HiRes qw(sleep time);
use IO::Socket::INET;

use Test::Nginx::Block;
use Test::Nginx::Proc qw(run_cmd spawn stop_process is_alive
                         shell_quote read_file write_file);

our $VERSION = '0.2';
our $Bundled = 1;       # not the real Test::Nginx::Socket

# ------------------------------------------------------------ settings

our $Verbose          = $ENV{TEST_NGINX_VERBOSE};
our $NginxBinary      = $ENV{TEST_NGINX_BINARY} || _default_nginx();
our $LoadModules      = $ENV{TEST_NGINX_LOAD_MODULES};
our $UseValgrind      = $ENV{TEST_NGINX_USE_VALGRIND};
our $NoShuffle        = $ENV{TEST_NGINX_NO_SHUFFLE} || 0;
our $NoClean          = $ENV{TEST_NGINX_NO_CLEAN};
our $Timeout          = $ENV{TEST_NGINX_TIMEOUT} || 10;
our $TestNginxSleep   = $ENV{TEST_NGINX_SLEEP} || 0.015;
our $LogLevel         = $ENV{TEST_NGINX_LOG_LEVEL} || 'debug';
our $MasterProcess    = $ENV{TEST_NGINX_MASTER_PROCESS} || 'on';
our $DaemonEnabled    = 'on';
our $Workers          = 1;
our $WorkerConnections = 1024;
our $RepeatEach       = 1;
our $NoRootLocation   = 0;
our $CheckAccumErrLog = $ENV{TEST_NGINX_CHECK_ACCUM_ERR_LOG};
our $ConfigPreamble   = '';
our $ServerName       = 'localhost';
our $ServerAddr       = '127.0.0.1';
our @EnvToNginx;
our @BlockPreprocessors;
our @CleanupHandlers;
our @TestCleanupHandlers;
our @ResponseBodyChecks;

# as in the real one: the per-block runner, called once per repeat_each
# round with nginx running, as ($block, $dry_run, $round); the error-log
# check, as ($block, $response, $dry_run, $round, $need_array); the
# $TEST_NGINX_RAND_PORT_N values of the running block
our $RunTestHelper = \&run_test_helper;
our $CheckErrorLog = \&_check_error_log;
our $RandPorts = {};

our ($ServerPort, $ServRoot, $HtmlDir, $LogDir, $ConfDir, $ConfFile,
     $PidFile, $ErrLogFile, $AccLogFile, $TmpDir);

our $MainPid = $$;
our $Initialized;
our @Blocks;
our $BlocksParsed;

# run-time state
our $NginxPid;          # running nginx (master, or valgrind child)
our $NginxIsChild;      # started by fork (valgrind), reap with waitpid
our $CurBlock;          # block whose nginx is running
our $ErrLogFilePos = 0; # like Test::Nginx: where error_log checks read
our $ScanPos = 0;       # where the sanitizer scan reads
our %AsanSeen;
our $Http2Listen;       # the listen form of the nginx under test

if ($UseValgrind) {
    $DaemonEnabled = 'off';
    $MasterProcess = 'off';
}

sub _default_nginx {
    for my $d (split /:/, $ENV{PATH} || '') {
        next unless length $d;
        return "$d/nginx" if -f "$d/nginx" && -x _;
    }
    return '/usr/sbin/nginx';
}

# ------------------------------------------------------------ exports

our @EXPORT = qw(
    run_tests run_test blocks plan repeat_each no_shuffle no_root_location
    master_on master_off master_process_enabled workers worker_connections
    log_level env_to_nginx add_block_preprocessor add_cleanup_handler
    add_response_body_check config_preamble check_accum_error_log
    no_long_string timeout server_name server_addr server_port
    server_port_for_client server_root html_dir bail_out is_str use_hup
    no_nginx_manager add_test_cleanup_handler
);

our @TEST_MORE = qw(ok is isnt like unlike is_deeply cmp_ok pass fail
    diag note explain skip todo_skip done_testing BAIL_OUT can_ok isa_ok
    new_ok subtest);

sub import {
    my ($class, @args) = @_;
    my $caller = caller;
    {
        no strict 'refs';
        for my $f (@EXPORT) {
            *{"${caller}::$f"} = \&{"Test::Nginx::Socket::$f"};
        }
        for my $f (@TEST_MORE) {
            *{"${caller}::$f"} = \&{"Test::More::$f"};
        }
    }
    @args = grep { $_ ne '-Base' } @args;
    if (@args) {
        if (@args == 1 && $args[0] eq 'no_plan') {
            Test::More::plan('no_plan');
        } else {
            Test::More::plan(@args);
        }
    }
    init();
    return;
}

# ------------------------------------------------------------ config API

sub plan { Test::More::plan(@_) }
sub repeat_each { $RepeatEach = shift if @_; $RepeatEach }
sub no_shuffle () { $NoShuffle = 1 }
sub no_root_location () { $NoRootLocation = 1 }
sub master_on () { $MasterProcess = 'on' unless $UseValgrind }
sub master_off () { $MasterProcess = 'off' }
sub master_process_enabled {
    if (@_) { $MasterProcess = $_[0] ? 'on' : 'off' unless $UseValgrind; }
    return $MasterProcess;
}
sub workers { $Workers = shift if @_; $Workers }
sub worker_connections { $WorkerConnections = shift if @_;
                         $WorkerConnections }
sub log_level { $LogLevel = shift if @_; $LogLevel }
sub timeout { $Timeout = shift if @_; $Timeout }
sub server_name { $ServerName = shift if @_; $ServerName }
sub server_addr { $ServerAddr = shift if @_; $ServerAddr }
sub server_port { $ServerPort = shift if @_; $ServerPort }
sub server_port_for_client { server_port(@_) }
sub server_root () { $ServRoot }
sub html_dir () { $HtmlDir }
sub config_preamble ($) { $ConfigPreamble = shift }
sub check_accum_error_log () { $CheckAccumErrLog = 1 }
sub no_long_string () { }
sub use_hup () { warn "use_hup() is not supported by this harness\n" }
sub no_nginx_manager () { warn "no_nginx_manager() is not supported\n" }
sub add_block_preprocessor (&) { unshift @BlockPreprocessors, shift }
sub add_cleanup_handler ($) { unshift @CleanupHandlers, shift }
sub add_test_cleanup_handler ($) { unshift @TestCleanupHandlers, shift }
sub add_response_body_check ($) { push @ResponseBodyChecks, shift }

sub env_to_nginx {
    die "env_to_nginx: no arguments specified\n" unless @_;
    for my $v (@_) {
        die "env_to_nginx: bad argument value: $v\n"
            if $v !~ /^[A-Za-z_]/ || $v =~ /\n/;
        push @EnvToNginx, $v;
    }
}

sub is_str {
    my ($got, $expected, $desc) = @_;
    if (ref $expected && ref $expected eq 'Regexp') {
        return Test::More::like($got, $expected, $desc);
    }
    return Test::More::is($got, $expected, $desc);
}

sub bail_out {
    cleanup();
    Test::More::BAIL_OUT(join '', @_);
}


# ------------------------------------------------------------ init

sub _servroot_default {
    my $base = basename($0);
    $base =~ s/\.t$//;
    $base =~ s/[^\w.-]/_/g;
    my $t = -d 't' ? 't' : dirname($0);
    return File::Spec->rel2abs("$t/servroot/$base");
}

sub init {
    return if $Initialized;
    $Initialized = 1;

    $ServRoot = $ENV{TEST_NGINX_SERVROOT} || _servroot_default();
    $ServRoot = File::Spec->rel2abs($ServRoot);
    $LogDir     = "$ServRoot/logs";
    $HtmlDir    = "$ServRoot/html";
    $ConfDir    = "$ServRoot/conf";
    $ConfFile   = "$ConfDir/nginx.conf";
    $PidFile    = "$LogDir/nginx.pid";
    $ErrLogFile = "$LogDir/error.log";
    $AccLogFile = "$LogDir/access.log";
    $TmpDir     = "$ServRoot/tmp";

    # on INT/TERM/HUP, exit through END so that nothing is left running
    for my $sig (qw(INT TERM HUP)) {
        next if ref $SIG{$sig} || ($SIG{$sig} // '') eq 'IGNORE';
        $SIG{$sig} = sub { exit 128 + ($sig eq 'INT' ? 2 : $sig eq 'TERM'
                                       ? 15 : 1) };
    }

    _stop_stale_nginx();
    make_path($ServRoot);
    remove_tree($TmpDir, $ConfDir, $LogDir, $HtmlDir,
                glob("$ServRoot/*_temp"));
    make_path($TmpDir, $LogDir, $HtmlDir, $ConfDir);
    $Test::Nginx::Proc::TmpDir = $TmpDir;

    $ENV{TEST_NGINX_SERVER_ROOT} = $ServRoot;
    $ENV{TEST_NGINX_HTML_DIR} ||= $HtmlDir;

    $ServerPort = $ENV{TEST_NGINX_SERVER_PORT} || $ENV{TEST_NGINX_PORT}
        || Test::Nginx::Proc::free_port({ map { $_ => 1 } grep { $_ }
               @ENV{qw(TEST_NGINX_TLS_PORT TEST_NGINX_PORT2
                       TEST_NGINX_PORT3 TEST_NGINX_GRPC_PORT)} });
    $ENV{TEST_NGINX_SERVER_PORT} = $ServerPort;

    # sanitizers: reports go to servroot/logs/asan.PID unless told otherwise
    if (!defined $ENV{ASAN_OPTIONS}) {
        $ENV{ASAN_OPTIONS} = "log_path=$LogDir/asan:detect_leaks=0";
    }

    # HTTP/2 without TLS on the default server: "listen ... http2" before
    # nginx 1.25.1 (which deprecates it), the "http2" directive since
    my @v = Test::Nginx::Proc::nginx_version($NginxBinary);
    $Http2Listen = @v && ($v[0] <=> 1 || $v[1] <=> 25 || $v[2] <=> 1) >= 0
                   ? 'directive' : 'listen';

    if ($Verbose) {
        warn "servroot $ServRoot, port $ServerPort, nginx "
           . join('.', @v) . "\n";
    }
    return;
}

# an nginx left running in this servroot by an earlier, killed run
sub _stop_stale_nginx {
    my $pidfile = "$ServRoot/logs/nginx.pid";
    return unless -f $pidfile;
    my $pid = read_file($pidfile);
    return unless defined $pid && $pid =~ /^(\d+)/;
    $pid = $1;
    my $cmd = read_file("/proc/$pid/cmdline") // '';
    return unless $cmd =~ /nginx/ && index($cmd, $ServRoot) >= 0;
    stop_process($pid, signal => 'QUIT', wait => 5, group => 1);
}

# ------------------------------------------------------------ blocks

sub blocks {
    if (!$BlocksParsed) {
        $BlocksParsed = 1;
        my $spec;
        {
            no strict 'refs';
            my $fh = \*{"main::DATA"};
            if (defined fileno $fh) {
                local $/;
                $spec = <$fh>;
            }
        }
        @Blocks = eval { Test::Nginx::Block::parse_spec($spec, $0) };
        if ($@) {
            bail_out("cannot parse the test blocks: $@");
        }
    }
    return @Blocks;
}

sub run_tests {
    init();
    my @blocks = blocks();
    @blocks = shuffle @blocks unless $NoShuffle;
    for my $block (@blocks) {
        for my $hdl (@BlockPreprocessors) {
            $hdl->($block);
        }
        $block->set_value('name', $0 . ' ' . $block->name);
        run_test($block);
        for my $hdl (@TestCleanupHandlers) {
            $hdl->($block);
        }
    }
    stop_nginx() unless $NoClean;
    return;
}

sub cleanup {
    for my $h (@CleanupHandlers) {
        eval { $h->() };
    }
    @CleanupHandlers = ();
    return unless $$ == $MainPid;
    Test::Nginx::Proc::kill_running();
    if ($NginxPid) {
        if ($NoClean) {
            warn "TEST_NGINX_NO_CLEAN: nginx $NginxPid left running "
               . "($ServRoot)\n";
            undef $NginxPid;
        } else {
            stop_nginx(1);
        }
    }
}

END {
    if (defined $MainPid && $$ == $MainPid) {
        local $?;
        cleanup();
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
            $rand_ports->{$v} ||= Test::Nginx::Proc::free_port();
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

sub fmt_str {
    my ($s) = @_;
    $s = '' unless defined $s;
    chomp $s;
    $s =~ s/"/\\"/g;
    $s =~ s/\r/\\r/g;
    $s =~ s/\n/\\n/g;
    return $s;
}

sub pattern_list {
    my ($pats) = @_;
    return [] unless defined $pats;
    if (!ref $pats) {
        chomp $pats;
        return [ grep { length } split /\n+/, $pats ];
    }
    return [$pats] if ref $pats eq 'Regexp';
    return [@$pats];
}

sub line_matches {
    my ($line, $pat) = @_;
    return ref $pat ? $line =~ $pat : index($line, $pat) >= 0;
}

# ------------------------------------------------------------ nginx

sub setup_server_root {
    remove_tree($ConfDir, $LogDir, $HtmlDir, glob("$ServRoot/*_temp"),
                glob("$ServRoot/*_cache"));
    make_path($ConfDir, $LogDir, $HtmlDir, $TmpDir);
    write_file("$HtmlDir/index.html", '<html><head><title>It works!</title>'
               . '</head><body>It works!</body></html>');
    %AsanSeen = ();
}

sub write_user_files {
    my ($block, $rand_ports) = @_;
    my $name = $block->name;
    my $files = $block->user_files;
    return unless defined $files;
    if (!ref $files) {
        my @list;
        my ($fname, $body, $date);
        for my $l (split /^/, $files) {
            if ($l =~ /^>>> (\S+)(?:\s+(.+))?/) {
                push @list, [$fname, $body, $date] if defined $fname;
                ($fname, $date, $body) = ($1, $2, undef);
            } else {
                $body .= $l;
            }
        }
        push @list, [$fname, $body, $date] if defined $fname;
        $files = \@list;
    } elsif (ref $files ne 'ARRAY') {
        bail_out("$name - wrong value type for user_files: " . ref $files);
    }
    for my $f (@$files) {
        my ($fname, $body, $date) = @$f;
        $body = '' unless defined $body;
        my $path = $fname =~ m{^/} ? $fname : "$HtmlDir/$fname";
        make_path(dirname($path));
        $body = expand_env($body, $name, $rand_ports);
        write_file($path, $body);
        if ($date) {
            local $ENV{TZ} = 'GMT';
            system('touch', '-t', $date, $path) == 0
                or bail_out("$name - cannot set the date of $path");
        }
    }
}

sub write_config_file {
    my ($block, $config, $rand_ports) = @_;
    my $name = $block->name;
    my $http_config = expand_env($block->http_config // '', $name,
                                 $rand_ports);
    my $main_config = expand_env($block->main_config // '', $name,
                                 $rand_ports);
    my $post_main_config = expand_env($block->post_main_config // '',
                                      $name, $rand_ports);
    my $server_name = $block->server_name // $ServerName;
    my $log_level = $block->log_level // $LogLevel;

    my $modules = '';
    if ($LoadModules) {
        $modules = join '', map { "load_module $_;\n" }
                            grep { length } split /\s+/, $LoadModules;
    }

    my $env = join '', map { my $v = $_; $v = "'$v'" if $v =~ /\s/;
                             "env $v;\n" } @EnvToNginx;

    my $root_location = $NoRootLocation ? '' : <<"_EOC_";
        location / {
            root $HtmlDir;
            index index.html index.htm;
        }
_EOC_

    my $user = $> == 0 ? "user root;\n" : '';

    my $listen = $Http2Listen eq 'directive'
        ? "listen          $ServerAddr:$ServerPort;\n        http2 on;"
        : "listen          $ServerAddr:$ServerPort http2;";

    my $conf = <<"_EOC_";
${modules}worker_processes  $Workers;
daemon $DaemonEnabled;
master_process $MasterProcess;
error_log $ErrLogFile $log_level;
pid       $PidFile;
env ASAN_OPTIONS;
env UBSAN_OPTIONS;
env LSAN_OPTIONS;
$env
$main_config

http {
    access_log $AccLogFile;

    default_type text/plain;
    keepalive_timeout  68;

    client_body_temp_path $ServRoot/client_body_temp;
    proxy_temp_path $ServRoot/proxy_temp;
    fastcgi_temp_path $ServRoot/fastcgi_temp;
    uwsgi_temp_path $ServRoot/uwsgi_temp;
    scgi_temp_path $ServRoot/scgi_temp;

$http_config

    server {
        $listen
        server_name     '$server_name';

        client_max_body_size 30M;

        # Begin preamble config...
$ConfigPreamble
        # End preamble config...

        # Begin test case config...
$config
        # End test case config.

$root_location    }
}

$post_main_config

events {
    accept_mutex off;
    worker_connections  $WorkerConnections;
}

$user
_EOC_

    write_file($ConfFile, $conf);
    warn "nginx.conf for $name:\n$conf\n" if $Verbose && $Verbose > 1;
}

sub nginx_cmd {
    my @cmd = ($NginxBinary, '-p', "$ServRoot/", '-c', $ConfFile);
    if ($UseValgrind) {
        my @opts;
        if ($UseValgrind =~ /^\d+$/) {
            @opts = ('--tool=memcheck', '--leak-check=full',
                     '--show-possibly-lost=no', '--num-callers=50');
        } else {
            @opts = split ' ', $UseValgrind;
        }
        push @opts, '-q', "--log-file=$LogDir/valgrind.log";
        if ($ENV{TEST_NGINX_VALGRIND_SUPPRESS}) {
            push @opts, "--suppressions=$ENV{TEST_NGINX_VALGRIND_SUPPRESS}",
                        '--gen-suppressions=all';
        }
        @cmd = ('valgrind', @opts, @cmd);
    }
    return @cmd;
}

sub _read_pid_file {
    my $p = read_file($PidFile);
    return $p =~ /(\d+)/ ? $1 : undef if defined $p;
    return undef;
}

# start nginx for $block; returns 1, or 0 after reporting a failure
sub start_nginx {
    my ($block) = @_;
    my $name = $block->name;
    my @cmd = nginx_cmd();
    warn "starting: @cmd\n" if $Verbose;

    if ($UseValgrind) {
        my $pid = spawn(\@cmd, stdout => "$LogDir/nginx.stdout",
                        stderr => "$LogDir/nginx.stderr");
        my $deadline = time + 60;
        while (time < $deadline) {
            last if -s $PidFile;
            my $r = waitpid($pid, WNOHANG);
            if ($r == $pid || $r == -1) {
                Test::More::fail("$name - nginx (valgrind) failed to start: "
                    . (read_file("$LogDir/nginx.stderr") // '')
                    . _tail($ErrLogFile, 10));
                return 0;
            }
            sleep 0.05;
        }
        $NginxPid = $pid;
        $NginxIsChild = 1;
        $CurBlock = $block;
        sleep 0.2;
        return 1;
    }

    my $r;
    for my $try (1 .. 10) {
        $r = run_cmd(\@cmd, timeout => 30);
        last if $r->{status} == 0;
        last unless $r->{err} =~ /Address already in use/;
        sleep 0.2 * $try;
    }
    if ($r->{status} != 0) {
        Test::More::fail("$name - nginx failed to start (exit $r->{exit}): "
                         . $r->{err} . _tail($ErrLogFile, 10));
        undef $NginxPid;
        return 0;
    }
    my $pid;
    for (1 .. 200) {
        $pid = _read_pid_file();
        last if $pid;
        sleep 0.01;
    }
    if (!$pid) {
        Test::More::fail("$name - nginx started but wrote no pid file");
        return 0;
    }
    $NginxPid = $pid;
    $NginxIsChild = 0;
    $CurBlock = $block;
    sleep $TestNginxSleep;
    return 1;
}

sub _tail {
    my ($file, $n) = @_;
    my $d = read_file($file);
    return '' unless defined $d && length $d;
    my @l = split /\n/, $d;
    @l = @l[-$n .. -1] if @l > $n;
    return "\n" . join("\n", @l) . "\n";
}

# stop the running nginx, then run the checks that need it stopped
# (shutdown_error_log, sanitizer reports at exit, valgrind)
sub stop_nginx {
    my ($in_cleanup) = @_;
    my $pid = $NginxPid // _read_pid_file();
    if ($pid) {
        my $wait = $UseValgrind ? 60 : 10;
        stop_process($pid, signal => 'QUIT', wait => $wait,
                     child => $NginxIsChild, group => 1);
    }
    undef $NginxPid;
    $NginxIsChild = 0;
    my $block = $CurBlock;
    undef $CurBlock;
    return unless $block;

    my $name = $block->name;
    if (defined $block->shutdown_error_log
        || defined $block->no_shutdown_error_log)
    {
        check_shutdown_error_log($block);
    }
    scan_for_reports($block, 'at shutdown');
    check_valgrind($block);
}

# ------------------------------------------------------------ running

sub run_test {
    my ($block) = @_;
    my $name = $block->name;
    return if defined $block->SKIP;

    my $rand_ports = {};
    $RandPorts = $rand_ports;
    my $config = $block->config;

    # must_die: never run nginx in the foreground (valgrind mode)
    local $DaemonEnabled = defined $block->must_die ? 'on' : $DaemonEnabled;
    my $restart = defined $config || defined $block->http_config
        || defined $block->main_config || defined $block->post_main_config
        || defined $block->user_files || defined $block->must_die
        || !$NginxPid;
    $config = '' unless defined $config;
    $config = expand_env($config, $name, $rand_ports);

    if ($restart) {
        stop_nginx();
        setup_server_root();
        write_user_files($block, $rand_ports);
        write_config_file($block, $config, $rand_ports);
        $ErrLogFilePos = 0;
        $ScanPos = 0;

        if (defined $block->must_die) {
            run_must_die($block);
            return;
        }
        return unless start_nginx($block);
    } else {
        $ErrLogFilePos = -s $ErrLogFile || 0;
        $CurBlock = $block;
    }

    if (defined $block->init) {
        my $code = $block->init;
        { package main; no strict; eval $code; }
        bail_out("$name - init failed: $@") if $@;
    }

    for my $rep (0 .. $RepeatEach - 1) {
        write_user_files($block, $rand_ports) if $rep > 0;
        $RunTestHelper->($block, 0, $rep);
        scan_for_reports($block, "(req $rep)");
    }
    return;
}

# the default per-block runner: no request of its own (see the top)
sub run_test_helper {
    my ($block, $dry_run, $rep) = @_;
    my $name = $block->name;
    bail_out("$name - this minimal Test::Nginx::Socket sends no request; "
             . "use Test::Nginx::Socket::Grpc")
        if defined $block->request;
    sleep parse_time($block->wait) if $block->wait;
    check_error_log($block, $rep);
    check_access_log($block, $rep);
}

sub _check_error_log {
    my ($block, $res, $dry_run, $rep, $need_array) = @_;
    check_error_log($block, $rep);
}

sub run_must_die {
    my ($block) = @_;
    my $name = $block->name;
    my $must_die = $block->must_die;
    my @cmd = ($NginxBinary, '-p', "$ServRoot/", '-c', $ConfFile);

    for my $rep (0 .. $RepeatEach - 1) {
        unlink $ErrLogFile;
        my $r = run_cmd(\@cmd, timeout => 30);
        if ($r->{signal} && $r->{signal} != 9) {
            Test::More::fail("$name - nginx crashed with signal "
                             . "$r->{signal}");
        } elsif (looks_like_number($must_die) && length $must_die) {
            Test::More::is($r->{exit}, $must_die,
                           "$name - die with the expected exit code");
        } else {
            Test::More::isnt($r->{status}, 0, "$name - die as expected");
        }
        my @lines = split /^/, $r->{err};
        push @lines, "\n" if @lines && $lines[-1] !~ /\n\z/;
        my $log = read_file($ErrLogFile);
        push @lines, split /^/, $log if defined $log;
        warn "must_die output: @lines\n" if $Verbose;
        check_error_log($block, $rep, \@lines);
        scan_lines_for_reports($block, 'at startup', \@lines, 1);

        if ($r->{status} == 0) {
            warn "WARNING: $name - nginx must die but it does not; "
               . "killing it\n";
            my $pid;
            for (1 .. 100) { $pid = _read_pid_file(); last if $pid;
                             sleep 0.01; }
            stop_process($pid, signal => 'QUIT', wait => 5, group => 1)
                if $pid;
        }
    }
}

# ------------------------------------------------------------ logs

sub error_log_data {
    sleep $TestNginxSleep * 3 + ($UseValgrind ? 0.3 : 0);
    open my $in, '<', $ErrLogFile or return [];
    if (!$CheckAccumErrLog && $ErrLogFilePos > 0) {
        seek $in, $ErrLogFilePos, 0;
    }
    my @lines = <$in>;
    if (!$CheckAccumErrLog) {
        $ErrLogFilePos = tell($in);
    }
    close $in;
    return \@lines;
}

sub check_error_log {
    my ($block, $rep, $given_lines) = @_;
    my $name = $block->name;
    my $lines = $given_lines;

    my $grep_pats = $block->grep_error_log;
    if (defined $grep_pats) {
        my $pat = ref $grep_pats eq 'ARRAY' ? $grep_pats->[$rep] : $grep_pats;
        my $expected = $block->grep_error_log_out;
        bail_out("$name - No --- grep_error_log_out defined but --- "
                 . "grep_error_log is defined") unless defined $expected;
        $expected = $expected->[$rep] if ref $expected eq 'ARRAY';
        if (!ref $pat) { chomp $pat; }
        $lines ||= error_log_data();
        my $matched = '';
        for my $line (@$lines) {
            if (ref $pat ? $line =~ $pat : $line =~ /\Q$pat\E/) {
                my $m = $&;
                $matched .= "$m\n" if $m !~ /\n/;
            }
        }
        if (ref $expected eq 'Regexp') {
            Test::More::like($matched, $expected,
                             "$name - grep_error_log_out (req $rep)");
        } else {
            Test::More::is($matched, $expected,
                           "$name - grep_error_log_out (req $rep)");
        }
    } elsif (defined $block->grep_error_log_out) {
        bail_out("$name - No --- grep_error_log defined but --- "
                 . "grep_error_log_out is defined");
    }

    if (defined $block->error_log) {
        my $pats = pattern_list($block->error_log);
        $lines ||= error_log_data();
        for my $line (@$lines) {
            for my $pat (@$pats) {
                next unless defined $pat;
                if (line_matches($line, $pat)) {
                    Test::More::pass("$name - pattern \"" . fmt_str($pat)
                        . "\" matches a line in error.log (req $rep)");
                    undef $pat;
                }
            }
        }
        for my $pat (@$pats) {
            next unless defined $pat;
            Test::More::fail("$name - pattern \"" . fmt_str($pat)
                . "\" should match a line in error.log (req $rep)");
        }
    }

    if (defined $block->no_error_log) {
        my $pats = pattern_list($block->no_error_log);
        $lines ||= error_log_data();
        my %found;
        for my $line (@$lines) {
            for my $pat (@$pats) {
                next unless defined $pat;
                if (line_matches($line, $pat) && !$found{$pat}++) {
                    Test::More::fail("$name - pattern \"" . fmt_str($pat)
                        . "\" should not match any line in error.log but "
                        . "matches line \"" . fmt_str($line)
                        . "\" (req $rep)");
                }
            }
        }
        for my $pat (@$pats) {
            next if $found{$pat};
            Test::More::pass("$name - pattern \"" . fmt_str($pat)
                . "\" does not match a line in error.log (req $rep)");
        }
    }
}

sub check_shutdown_error_log {
    my ($block) = @_;
    my $name = $block->name;
    my $lines = error_log_data();
    if (defined $block->no_shutdown_error_log) {
        my $pats = pattern_list($block->no_shutdown_error_log);
        my %found;
        for my $line (@$lines) {
            for my $pat (@$pats) {
                if (line_matches($line, $pat) && !$found{$pat}++) {
                    Test::More::fail("$name - pattern \"" . fmt_str($pat)
                        . "\" should not match any line in error.log but "
                        . "matches line \"" . fmt_str($line) . "\"");
                }
            }
        }
        for my $pat (@$pats) {
            next if $found{$pat};
            Test::More::pass("$name - pattern \"" . fmt_str($pat)
                             . "\" does not match a line in error.log");
        }
    }
    if (defined $block->shutdown_error_log) {
        my $pats = pattern_list($block->shutdown_error_log);
        for my $line (@$lines) {
            for my $pat (@$pats) {
                next unless defined $pat;
                if (line_matches($line, $pat)) {
                    Test::More::pass("$name - pattern \"" . fmt_str($pat)
                                     . "\" matches a line in error.log");
                    undef $pat;
                }
            }
        }
        for my $pat (@$pats) {
            next unless defined $pat;
            Test::More::fail("$name - pattern \"" . fmt_str($pat)
                             . "\" should match a line in error.log");
        }
    }
}

sub check_access_log {
    my ($block, $rep) = @_;
    my $name = $block->name;
    for my $neg (0, 1) {
        my $sec = $neg ? $block->no_access_log : $block->access_log;
        next unless defined $sec;
        sleep $TestNginxSleep * 3;
        my $data = read_file($AccLogFile) // '';
        my @lines = split /^/, $data;
        for my $pat (@{ pattern_list($sec) }) {
            my ($hit) = grep { line_matches($_, $pat) } @lines;
            if ($neg) {
                Test::More::ok(!$hit, "$name - pattern \"" . fmt_str($pat)
                    . "\" does not match a line in access.log (req $rep)")
                    or Test::More::diag("matched: $hit");
            } else {
                Test::More::ok($hit, "$name - pattern \"" . fmt_str($pat)
                    . "\" matches a line in access.log (req $rep)");
            }
        }
    }
}

# Sanitizer reports, crashed workers and failed assertions fail the block
# even when its own checks passed.  Reads the error log from $ScanPos
# (every byte is scanned once) and new sanitizer log files.
sub scan_for_reports {
    my ($block, $when) = @_;
    my @lines;
    if (open my $in, '<', $ErrLogFile) {
        seek $in, $ScanPos, 0;
        @lines = <$in>;
        $ScanPos = tell $in;
        close $in;
    }
    scan_lines_for_reports($block, $when, \@lines);

    for my $f (_sanitizer_files()) {
        my $size = -s $f || 0;
        next if ($AsanSeen{$f} // -1) >= $size;
        my $d = read_file($f) // '';
        my $new = substr($d, $AsanSeen{$f} // 0);
        $AsanSeen{$f} = $size;
        next unless $new =~ /\S/;
        my @l = grep { /\S/ } split /\n/, $new;
        @l = @l[0 .. 19] if @l > 20;
        Test::More::fail($block->name . " - sanitizer report in $f $when:\n"
                         . join("\n", @l));
    }
}

sub _sanitizer_files {
    my @files;
    for my $v (qw(ASAN_OPTIONS UBSAN_OPTIONS LSAN_OPTIONS)) {
        my $o = $ENV{$v} or next;
        next unless $o =~ /(?:^|:)log_path=([^:]+)/;
        my $p = $1;
        next unless index($p, $ServRoot) == 0;   # only ours
        push @files, grep { -f } glob("$p.*");
    }
    my %u;
    return grep { !$u{$_}++ } @files;
}

sub scan_lines_for_reports {
    my ($block, $when, $lines, $quiet) = @_;
    my $name = $block->name;
    my $expect = join "\n", map { ref $_ ? "$_" : $_ }
        map { ref $_ eq 'ARRAY' ? @$_ : $_ }
        grep { defined } ($block->error_log, $block->shutdown_error_log);

    my (%hit, %first);
    for my $line (@$lines) {
        my $kind;
        if ($line =~ /AddressSanitizer|LeakSanitizer|MemorySanitizer|ThreadSanitizer/) {
            $kind = 'sanitizer';
        } elsif ($line =~ /(?:\S:\d+(?::\d+)?|<unknown>): runtime error: /) {
            $kind = 'UBSan';
        } elsif ($line =~ /exited on signal \d+/
                 && $expect !~ /exited on signal/) {
            $kind = 'crash';
        } elsif ($line =~ /\bAssertion .*?failed\b/) {
            $kind = 'assertion';
        }
        if ($kind) {
            push @{ $hit{$kind} }, $line if @{ $hit{$kind} || [] } < 10;
            next;
        }
        next if $quiet;
        for my $lvl (qw(alert crit emerg)) {
            if ($line =~ /\[$lvl\]/ && $expect !~ /\[$lvl/) {
                warn "WARNING: $name - " . fmt_str($line) . "\n";
            }
        }
    }
    for my $kind (sort keys %hit) {
        Test::More::fail("$name - $kind report in error.log $when:\n"
                         . join('', @{ $hit{$kind} }));
    }
}

sub check_valgrind {
    my ($block) = @_;
    return unless $UseValgrind;
    my $f = "$LogDir/valgrind.log";
    my $d = read_file($f);
    return unless defined $d && $d =~ /\S/;
    my $re = qr/Invalid (?:read|write|free)|uninitialised
               |are[ ]definitely[ ]lost|definitely[ ]lost:[ ][1-9]
               |Mismatched[ ]free|Source[ ]and[ ]destination[ ]overlap
               |unaddressable|Jump[ ]to[ ]the[ ]invalid[ ]address/x;
    my @bad = grep { /$re/ } split /\n/, $d;
    if (@bad) {
        Test::More::fail($block->name . " - valgrind reported problems "
            . "(see $f):\n" . join("\n", @bad[0 .. ($#bad > 9 ? 9 : $#bad)])
            . "\n" . substr($d, 0, 4000));
    }
}

1;
