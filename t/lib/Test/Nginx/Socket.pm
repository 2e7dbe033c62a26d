package Test::Nginx::Socket;

# The project's own implementation of the Test::Nginx::Socket block format
# (Test::Nginx is not packaged in Debian), plus gRPC sections.  Reference
# for test writers: t/lib/README.md.
#
#   use Test::Nginx::Socket 'no_plan';
#   run_tests();
#   __DATA__
#   === TEST 1: ...
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
use Test::Nginx::Grpc;

our $VERSION = '0.1';

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
our @ResponseBodyChecks;

our ($ServerPort, $ServRoot, $HtmlDir, $LogDir, $ConfDir, $ConfFile,
     $PidFile, $ErrLogFile, $AccLogFile, $CertDir, $TmpDir, $GrpcPort,
     $GrpcRecord);

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
our %RedisServers;

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
    no_nginx_manager
    start_grpc_backend stop_grpc_backend grpc_backend_record
    grpc_frame grpc_status_code cert_dir cert_fingerprint free_port
    start_redis stop_redis redis_cmd
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
sub cert_dir () { $CertDir }
sub config_preamble ($) { $ConfigPreamble = shift }
sub check_accum_error_log () { $CheckAccumErrLog = 1 }
sub no_long_string () { }
sub use_hup () { warn "use_hup() is not supported by this harness\n" }
sub no_nginx_manager () { warn "no_nginx_manager() is not supported\n" }
sub add_block_preprocessor (&) { unshift @BlockPreprocessors, shift }
sub add_cleanup_handler ($) { unshift @CleanupHandlers, shift }
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

sub grpc_frame { Test::Nginx::Grpc::grpc_frame(@_) }
sub grpc_status_code { Test::Nginx::Grpc::status_code(@_) }
sub cert_fingerprint { Test::Nginx::Grpc::cert_fingerprint(@_) }

our %UsedPorts;

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
    my $dir = "$ServRoot/redis-$port";
    make_path($dir);
    my @cmd = ($o{binary} || 'redis-server', '--port', $port,
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
    remove_tree($TmpDir, "$ServRoot/grpc_backend", $ConfDir, $LogDir,
                $HtmlDir, glob("$ServRoot/redis-*"), glob("$ServRoot/*_temp"));
    make_path($TmpDir, $LogDir, $HtmlDir, $ConfDir);
    $Test::Nginx::Proc::TmpDir = $TmpDir;

    $ENV{TEST_NGINX_SERVER_ROOT} = $ServRoot;
    $ENV{TEST_NGINX_HTML_DIR} ||= $HtmlDir;

    # ports
    my $used = \%UsedPorts;
    for my $v (qw(TEST_NGINX_SERVER_PORT TEST_NGINX_PORT TEST_NGINX_TLS_PORT
                  TEST_NGINX_PORT2 TEST_NGINX_PORT3 TEST_NGINX_GRPC_PORT)) {
        $used->{$ENV{$v}} = 1 if $ENV{$v};
    }
    $ServerPort = $ENV{TEST_NGINX_SERVER_PORT} || $ENV{TEST_NGINX_PORT}
                  || Test::Nginx::Proc::free_port($used);
    $ENV{TEST_NGINX_SERVER_PORT} = $ServerPort;
    $ENV{TEST_NGINX_PORT} ||= $ServerPort;
    for my $v (qw(TEST_NGINX_TLS_PORT TEST_NGINX_PORT2 TEST_NGINX_PORT3)) {
        $ENV{$v} ||= Test::Nginx::Proc::free_port($used);
    }

    # sanitizers: reports go to servroot/logs/asan.PID unless told otherwise
    if (!defined $ENV{ASAN_OPTIONS}) {
        $ENV{ASAN_OPTIONS} = "log_path=$LogDir/asan:detect_leaks=0";
    }

    $Test::Nginx::Grpc::BackendDir = "$ServRoot/grpc_backend";

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
        $CertDir = "$ServRoot/certs";
        remove_tree($CertDir);
        eval { Test::Nginx::Grpc::make_certs($CertDir) };
        if ($@) {
            cleanup();
            Test::More::BAIL_OUT("cannot make test certificates: $@");
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
            cleanup();
            Test::More::BAIL_OUT("cannot start the gRPC test backend: $err");
        }
        $GrpcRecord = $backend->{record};
        $ENV{TEST_NGINX_GRPC_PORT} = $GrpcPort;
        $ENV{TEST_NGINX_GRPC_RECORD} = $GrpcRecord;
    }

    if ($Verbose) {
        warn "servroot $ServRoot, port $ServerPort, TLS port "
           . "$ENV{TEST_NGINX_TLS_PORT}, gRPC backend $GrpcPort\n";
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
    Test::Nginx::Grpc::stop_all_backends();
    stop_redis($_) for keys %RedisServers;
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

sub fmt_str {
    my ($s) = @_;
    $s = '' unless defined $s;
    chomp $s;
    $s =~ s/"/\\"/g;
    $s =~ s/\r/\\r/g;
    $s =~ s/\n/\\n/g;
    return $s;
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

sub _regex {
    my ($v, $flags) = @_;
    return $v if ref $v eq 'Regexp';
    my $s = $v;
    chomp $s;
    return $flags eq 's' ? qr/$s/s : qr/$s/m;
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
        listen          $ServerAddr:$ServerPort http2;
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
        my %rec_off = record_offsets();

        my $nreq = run_requests($block, $rep, $rand_ports);
        my $ncall = run_grpc_calls($block, $rep, $rand_ports);
        run_h2_frames($block, $rep, $rand_ports);

        if ($block->wait) {
            sleep parse_time($block->wait);
        }

        check_upstream($block, $rep, \%rec_off, $rand_ports);
        check_error_log($block, $rep);
        check_access_log($block, $rep);
        scan_for_reports($block, "(req $rep)");
    }
    return;
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
    my $p = $block->request_port;
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
    push @cmd, '-H', "Host: $ServerName" unless $has_host;
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
    my $t = $o{timeout} || $Timeout;
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
    my $request = $block->request;
    return 0 unless defined $request;
    my @list = ref $request eq 'ARRAY' ? @$request : ($request);
    bail_out("$name - request empty") unless @list;
    my $need_array = @list > 1;
    my $timeout = parse_time($block->timeout) || $Timeout;
    my $mh_all = $block->more_headers // '';

    for my $i (0 .. $#list) {
        my $one = $list[$i];
        $one = join '', map { ref $_ eq 'HASH' ? $_->{value} : $_ } @$one
            if ref $one eq 'ARRAY';
        my $mh = ref $mh_all eq 'ARRAY' ? $mh_all->[$i] : $mh_all;
        bail_out("$name - more_headers lacks data for request $i")
            unless defined $mh;
        my $req = parse_request($name, $one, $mh);
        my $extra = [];
        if (defined $block->curl_options) {
            $extra = [split ' ', expand_env($block->curl_options, $name,
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
                timeout => $timeout, protocol => $block->curl_protocol,
                extra => $extra,
            );
            last if defined $res->{code} || $res->{exit} != 92;
        }

        my $skip_checks;
        if (defined $block->curl_error) {
            my $exp = get_indexed_value($name, $block->curl_error, $i,
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
            sleep parse_time($block->wait) if $block->wait;
            check_error_log($block, $rep);
        }
    }
    return scalar @list;
}

sub check_error_code {
    my ($block, $res, $i, $need_array) = @_;
    my $name = $block->name;
    if (defined $block->error_code_like) {
        my $v = get_indexed_value($name, $block->error_code_like, $i,
                                  $need_array);
        Test::More::like($res->{code} // '', qr/$v/sm,
                         "$name - status code ok");
    } elsif (defined $block->error_code) {
        my $v = get_indexed_value($name, $block->error_code, $i,
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
    if (defined $block->raw_response_headers_like) {
        my $v = get_indexed_value($name, $block->raw_response_headers_like,
                                  $i, $need_array);
        Test::More::like($res->{raw_headers}, qr/$v/s,
                         "$name - raw resp headers like");
    }
    if (defined $block->raw_response_headers_unlike) {
        my $v = get_indexed_value($name,
                    $block->raw_response_headers_unlike, $i, $need_array);
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
    if (defined $block->response_headers) {
        my $spec = get_indexed_value($name, $block->response_headers, $i,
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
    if (defined $block->response_headers_like) {
        my $spec = get_indexed_value($name, $block->response_headers_like,
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
    if (defined $block->response_body) {
        my $exp = get_indexed_value($name, $block->response_body, $i,
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
    } elsif (defined $block->response_body_like
             || defined $block->response_body_unlike)
    {
        my $like = defined $block->response_body_like;
        my $pat = get_indexed_value($name, $like ? $block->response_body_like
                                    : $block->response_body_unlike, $i,
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
    for my $check (@ResponseBodyChecks) {
        $check->($block, $content, $i, $rep, undef);
    }
}

# ------------------------------------------------------------ nghttp

sub run_h2_frames {
    my ($block, $rep, $rand_ports) = @_;
    my $name = $block->name;
    my $like = $block->h2_frames_like;
    my $unlike = $block->h2_frames_unlike;
    return unless defined $like || defined $unlike;
    my $request = $block->request;
    bail_out("$name - h2_frames_like needs a --- request section")
        unless defined $request;
    my $one = ref $request eq 'ARRAY' ? $request->[0] : $request;
    my $mh = $block->more_headers // '';
    $mh = $mh->[0] if ref $mh eq 'ARRAY';
    my $req = parse_request($name, $one, $mh);
    my $timeout = parse_time($block->timeout) || $Timeout;

    my @cmd = ('nghttp', '-nv', '-t', int($timeout + 0.999));
    my $has_auth;
    for my $h (@{ parse_more_headers($mh) }) {
        my $k = lc $h->[0];
        $k = ':authority' if $k eq 'host';
        $has_auth = 1 if $k eq ':authority';
        push @cmd, '-H', "$k: $h->[1]";
    }
    push @cmd, '-H', ":authority: $ServerName" unless $has_auth;
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
    my $proto = ($block->curl_protocol // 'http') eq 'https' ? 'https'
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
    my $gc = $block->grpc_call;
    return 0 unless defined $gc;
    my @texts = ref $gc eq 'ARRAY' ? @$gc : ($gc);
    my $timeout = parse_time($block->timeout) || $Timeout;
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

    my $exp = per_call($block->grpc_status, $i);
    $exp = 0 unless defined $exp;
    $exp = Test::Nginx::Grpc::status_code($exp);
    Test::More::is($r->{code}, $exp, "$name - grpc_status $tag")
        or Test::More::diag("grpc details: " . ($r->{details} // '')
                            . "; trailers: "
                            . _md_dump($r->{trailing_metadata}));

    if (defined(my $m = per_call($block->grpc_message, $i))) {
        chomp $m;
        Test::More::is($r->{details} // '', $m, "$name - grpc_message $tag");
    }
    if (defined(my $m = per_call($block->grpc_message_like, $i))) {
        Test::More::like($r->{details} // '', _regex($m, 's'),
                         "$name - grpc_message_like $tag");
    }
    if (defined(my $s = per_call($block->grpc_trailers, $i))) {
        check_metadata_spec($name, "grpc_trailers $tag",
                            $r->{trailing_metadata}, $s);
    }
    if (defined(my $s = per_call($block->grpc_initial_metadata, $i))) {
        check_metadata_spec($name, "grpc_initial_metadata $tag",
                            $r->{initial_metadata}, $s);
    }
    my @resp = map { decode_base64($_) } @{ $r->{responses_b64} || [] };
    if (defined(my $n = per_call($block->grpc_responses, $i))) {
        $n =~ s/^\s+|\s+$//g;
        Test::More::is(scalar @resp, $n, "$name - grpc_responses $tag");
    }
    if (defined(my $p = per_call($block->grpc_response_like, $i))) {
        Test::More::like(join('', @resp), _regex($p, 's'),
                         "$name - grpc_response_like $tag");
    }
    if (defined(my $p = per_call($block->grpc_response, $i))) {
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

    my $port = $block->upstream_port;
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

    if (defined(my $n = $block->upstream_calls)) {
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

    if (defined $block->upstream_method) {
        $each->($block->upstream_method, sub {
            my ($v, $e, $t) = @_;
            $v =~ s/^\s+|\s+$//g;
            Test::More::is($e->{method}, $v, "$name - upstream_method $t");
        });
    }
    if (defined $block->upstream_metadata) {
        $each->($block->upstream_metadata, sub {
            my ($v, $e, $t) = @_;
            check_metadata_spec($name, "upstream_metadata $t",
                                $e->{metadata}, $v);
        });
    }
    if (defined $block->upstream_timeout) {
        $each->($block->upstream_timeout, sub {
            my ($v, $e, $t) = @_;
            $v =~ s/^\s+|\s+$//g;
            my $got = $e->{timeout};
            if ($v eq 'none') {
                Test::More::ok(!defined $got,
                               "$name - upstream_timeout none $t")
                    or Test::More::diag("backend saw a deadline of $got s");
            } else {
                my ($lo, $hi) = split ' ', $v;
                Test::More::ok(defined $got && $got >= $lo && $got <= $hi,
                               "$name - upstream_timeout in [$lo, $hi] $t")
                    or Test::More::diag("backend saw "
                        . (defined $got ? "$got s" : 'no deadline'));
            }
        });
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
