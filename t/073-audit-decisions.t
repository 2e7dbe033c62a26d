# The audit record's decision, reason, rule, limit and principal for an
# allowed call, 16, 7 and 8 (identities from API keys, a Redis limit).

use Test::Nginx::Socket::Grpc 'no_plan';
use Test::Nginx::Audit;
use Digest::SHA qw(sha256_hex);

$ENV{TEST_NGINX_REDIS_PORT} = start_redis();

our $Keys = ">>> keys.txt\n"
    . "sha256:" . sha256_hex("k-billing") . " billing-app writer\n"
    . "sha256:" . sha256_hex("k-report") . " report-app reader\n";

our $Conf = <<'_EOC_';
    grpc_guard_audit_log logs/audit.log;
    grpc_guard_require_tls off;
    location / {
        grpc_guard_auth api_key;
        grpc_guard_api_key_file $TEST_NGINX_HTML_DIR/keys.txt;
        grpc_guard_allow /ledger.Ledger/* role=writer name=writers;
        grpc_guard_deny /ledger.Ledger/Purge client=billing-app name=no-purge;
        grpc_guard_limit rate=2r/m key=$grpc_guard_principal name=per-app;
        grpc_set_header x-remaining $grpc_guard_limit_remaining;
        grpc_pass grpc://127.0.0.1:$TEST_NGINX_GRPC_PORT;
    }
_EOC_

add_block_preprocessor(sub {
    my $block = shift;
    $block->set_value('user_files', $::Keys);
    $block->set_value('http_config',
        # a first call waits for the connection (a slow ASan build too)
        "grpc_guard_redis 127.0.0.1:$ENV{TEST_NGINX_REDIS_PORT} timeout=2s;");
    $block->set_value('config', $::Conf);
});

sub field {
    my ($rec, $path) = @_;
    my $v = $rec;
    $v = ref $v eq 'HASH' ? $v->{$_} : undef for split /\./, $path;
    return $v;
}

sub expect {
    my ($recs, @want) = @_;
    is(scalar @$recs, scalar @want, "record count");
    for my $i (0 .. $#want) {
        my %w = %{ $want[$i] };
        for my $k (sort keys %w) {
            is_deeply(field($recs->[$i], $k), $w{$k}, "record $i: $k");
        }
    }
}

no_shuffle();
no_root_location();
run_audit_tests();

__DATA__

=== TEST 1: allow (rule), 16, 7 (deny rule), 7 (default deny), 8 (limit)
--- grpc_call eval
["method: /ledger.Ledger/Post\nmetadata: x-api-key: k-billing",
 "method: /ledger.Ledger/Post\nmetadata: x-api-key: k-unknown",
 "method: /ledger.Ledger/Purge\nmetadata: x-api-key: k-billing",
 "method: /ledger.Ledger/Post\nmetadata: x-api-key: k-report",
 "method: /ledger.Ledger/Post\nmetadata: x-api-key: k-billing",
 "method: /ledger.Ledger/Post\nmetadata: x-api-key: k-billing"]
--- grpc_status eval
[0, 16, 7, 7, 0, 8]
--- upstream_metadata eval
["x-remaining: 1", "x-remaining: 0"]
--- audit_check eval
sub {
    my ($r) = @_;
    main::expect($r,
        { decision => 'allow', rule => 'writers', grpc_status => 0,
          'principal.kind' => 'api_key', 'principal.id' => 'billing-app',
          'principal.client' => 'billing-app', 'limit.remaining' => 1 },
        { decision => 'deny', reason => 'api_key_unknown', grpc_status => 16,
          grpc_status_source => 'local', principal => undef, rule => undef },
        { decision => 'deny', reason => 'acl_deny_rule', rule => 'no-purge',
          grpc_status => 7, 'principal.id' => 'billing-app' },
        { decision => 'deny', reason => 'acl_default_deny', rule => undef,
          grpc_status => 7, 'principal.client' => 'report-app' },
        { decision => 'allow', 'limit.remaining' => 0 },
        { decision => 'deny', reason => 'rate_limited', grpc_status => 8,
          'limit.name' => 'per-app', 'limit.remaining' => 0,
          rule => 'writers', 'principal.id' => 'billing-app' });
}
