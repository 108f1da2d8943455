#!/usr/bin/perl

# bench/proxy.pl: what recording costs a proxied webhook delivery.
#
#   MITTE_MODULE=build/ngx_http_mitte_module.so perl bench/proxy.pl
#
# One nginx (the stock binary, the module loaded) serves two locations that
# differ only in the module's directives:
#
#   /plain/<slug>   proxy_pass to a keepalive upstream
#   /hooks/<slug>   the same, with mitte_endpoint $slug and mitte_user
#
# and, on another loopback port of the same nginx, the upstream itself
# (return 200 "ok\n"). Requests are webhook-like POSTs with a small JSON body,
# spread over 1,000 endpoints and 50 users (bench/webhooks.lua).
#
# Part 1, throughput: wrk runs alternate plain, recorded, plain, recorded ...
# (BENCH_PAIRS pairs of BENCH_DURATION seconds, after a warm-up); the summary
# is the ratio of the medians. Then GET /mitte-admin/metrics must show the
# deliveries and the 1,000 endpoints, or the bench fails.
#
# Part 2, instructions per request (BENCH_CALLGRIND=0 skips it): nginx in one
# process (master_process off) under valgrind --tool=callgrind, a Perl client
# on one keep-alive connection. Callgrind counts the whole process life, so
# each location is run twice, N1 and N1 + N requests, and
# (Ir(N1 + N) - Ir(N1)) / N is the cost of one request: start-up, the first
# N1 requests (which create the 1,000 endpoints), the metrics check and the
# shutdown cancel out. The count is deterministic, so one pair is enough.
#
# Environment:
#   MITTE_MODULE           the module (default build/ngx_http_mitte_module.so)
#   MITTE_NGINX            the nginx binary, or NGINX (/usr/sbin/nginx)
#   BENCH_PAIRS            plain/recorded pairs of wrk runs (default 9)
#   BENCH_DURATION         seconds per wrk run (default 5)
#   BENCH_CONNECTIONS      wrk connections (default 32)
#   BENCH_PIN              1 (default when there are 2+ CPUs): nginx's worker
#                          on CPU 0, wrk on CPU 1; 0: let the kernel schedule
#   BENCH_THROUGHPUT       0 skips part 1 (default 1)
#   BENCH_CALLGRIND        0 skips part 2 (default 1)
#   BENCH_CALLGRIND_N      measured requests per location (default 2000)
#   BENCH_KEEP             1 keeps the temp dir (configs, logs, callgrind.out.*)
#
# Exit status: 0 when every run worked and the module recorded; 1 otherwise.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use MitteBench;
use Time::HiRes qw(time);

my $PAIRS = $ENV{BENCH_PAIRS} // 9;
my $DURATION = $ENV{BENCH_DURATION} // 5;
my $CONNECTIONS = $ENV{BENCH_CONNECTIONS} // 32;
my $THROUGHPUT = $ENV{BENCH_THROUGHPUT} // 1;
my $CALLGRIND = $ENV{BENCH_CALLGRIND} // 1;
my $CG_N = $ENV{BENCH_CALLGRIND_N} // 2000;

my $ENDPOINTS = 1000;     # as in bench/webhooks.lua
my $USERS = 50;
my $CG_N1 = $ENDPOINTS;   # callgrind warm-up: every endpoint created once
my $TIME_LIMIT = 180;     # seconds for the whole script, a safety net

my $PIN = $ENV{BENCH_PIN} // (cpus() >= 2 ? 1 : 0);

init(time_limit => $TIME_LIMIT);

# the requests of bench/webhooks.lua, for the callgrind client
sub webhook_request {
    my ($prefix, $i, $port) = @_;
    my $e = $i % $ENDPOINTS;
    my $body = '{"id":"evt_0001","type":"invoice.paid","created":1767225600,'
        . '"data":{"object":{"id":"in_0001","amount_paid":4200,'
        . '"currency":"eur","customer":"cus_0001"}}}';
    return "POST /$prefix/ep-$e HTTP/1.1\r\n"
        . "Host: 127.0.0.1:$port\r\n"
        . "Content-Type: application/json\r\n"
        . "Content-Length: " . length($body) . "\r\n"
        . "X-Mitte-User: user-" . ($e % $USERS) . "\r\n"
        . "\r\n" . $body;
}

# ---------------------------------------------------------------------------
# nginx configuration

sub nginx_conf {
    my (%o) = @_;
    # callgrind (single): one process does everything, no master, no worker.
    # Throughput: ONE worker. The machine has 2 cores for nginx (proxy and
    # upstream in the same worker), wrk and the rest; 1 worker on one core
    # and wrk (1 thread) on the other keeps them from competing for a core,
    # which is what made 2 workers noisy. The upstream costs the same in
    # both locations, so it only dilutes the ratio, never biases it.
    return conf_head(dir => $o{dir}, pin => $o{pin}, single => $o{single})
        . conf_http_base($o{dir}) . conf_unlimited()
        . conf_target($o{upstream})
        . "    server {\n        listen 127.0.0.1:$o{port};\n\n"
        . conf_proxy_locations() . conf_admin() . "    }\n}\n";
}

# ---------------------------------------------------------------------------
# part 1: throughput with wrk

sub throughput {
    my ($dir) = @_;
    my ($port, $up) = free_ports(2);
    my ($pid, $log) = start_nginx($dir, nginx_conf(dir => $dir, port => $port,
                                                   upstream => $up,
                                                   pin => $PIN),
                                  port => $port);
    my $summary = eval { wrk_series($dir, $port) };
    fail_with_log($@, $log) unless defined $summary;
    stop($pid);
    # a worker that crashed and was respawned would make the numbers moot
    fail_with_log("nginx reported problems\n", $log) if log_problems($log);
    return $summary;
}

sub wrk_series {
    my ($dir, $port) = @_;

    printf "throughput: wrk -t1 -c%d -d%ds, %d endpoints, %d users, "
        . "1 nginx worker%s\n", $CONNECTIONS, $DURATION, $ENDPOINTS, $USERS,
        $PIN ? ' (nginx on CPU 0, wrk on CPU 1)' : '';

    # warm-up: both locations; the recorded one creates the 1,000 endpoints
    my $sent = wrk_warmup($dir, $port, undef, 2)->{requests};
    my $hook_runs = 1;

    my $s = wrk_pairs($dir, $port, pairs => $PAIRS, seconds => $DURATION,
                      each => sub {
                          my ($kind, $r) = @_;
                          return unless $kind eq 'hooks';
                          $sent += $r->{requests};
                          $hook_runs++;
                      });

    my $m = metrics($port);
    my $ok = $m->{'mitte_deliveries_total{result="success"}'} // 0;
    my $fail = $m->{'mitte_deliveries_total{result="failure"}'} // 0;
    my $eps = $m->{mitte_endpoints} // 0;
    printf "  recorded by the module: %d successful deliveries, "
        . "%d failed (cut by wrk's stop), %d endpoints; wrk read %d "
        . "answers\n", $ok, $fail, $eps, $sent;
    die "the module recorded no successful delivery\n" unless $ok > 0;
    die "the module holds $eps endpoints, not $ENDPOINTS\n"
        unless $eps == $ENDPOINTS;
    # wrk counts the answers it read. When a run ends, wrk closes its
    # connections with up to one request in flight on each: those are still
    # deliveries, successful if the answer was already on its way, failed
    # (499, client closed) if not. So, over all the /hooks/ runs:
    #   answers read <= success, success + failure <= answers + in flight
    my $slack = $CONNECTIONS * $hook_runs;
    die "the module recorded $ok successful deliveries, wrk read $sent "
        . "answers\n" if $ok < $sent;
    die "the module recorded $ok + $fail deliveries, wrk read $sent answers "
        . "and had at most $slack more requests in flight\n"
        if $ok + $fail > $sent + $slack;

    print '  ', ratio_line($s), "\n";

    return sprintf "proxy ratio recorded/plain: %.3f "
        . "(plain %.0f rps, recorded %.0f rps; medians of %d runs)",
        $s->{ratio}, $s->{plain}, $s->{rec}, $PAIRS;
}

# ---------------------------------------------------------------------------
# part 2: instructions per request with callgrind

sub callgrind_total {
    my ($file) = @_;
    my $text = slurp($file);
    return $1 if $text =~ /^summary:\s+(\d+)/m;
    return $1 if $text =~ /^totals:\s+(\d+)/m;
    die "$file: no summary line\n";
}

# one nginx under callgrind, $n requests to $prefix; the Ir total
sub callgrind_run {
    my ($dir, $prefix, $n) = @_;
    my $tag = "$prefix-$n";
    my $sub = "$dir/cg-$tag";
    mkdir $sub or die "$sub: $!\n";
    my ($port, $up) = free_ports(2);
    my $out = "$dir/callgrind.out.$tag";
    my ($pid, $log) = start_nginx($sub, nginx_conf(dir => $sub, port => $port,
                                                   upstream => $up,
                                                   single => 1),
        name => "valgrind $tag", out => "$sub/valgrind.out",
        err => "$sub/valgrind.err", port => $port, timeout => 60,
        wrapper => ['valgrind', '--tool=callgrind', '--quiet',
                    "--callgrind-out-file=$out"]);
    my $ir = eval { callgrind_requests($port, $prefix, $n, $tag) };
    fail_with_log($@, $log) unless defined $ir;

    my $st = stop($pid);
    die "callgrind $tag: valgrind did not stop\n" unless defined $st;
    die "callgrind $tag: valgrind exited with $st:\n"
        . slurp("$sub/valgrind.err") if $st != 0;
    fail_with_log("nginx reported problems\n", $log) if log_problems($log);
    return callgrind_total($out);
}

sub callgrind_requests {
    my ($port, $prefix, $n, $tag) = @_;
    my $c = client($port);
    for my $i (0 .. $n - 1) {
        my ($st) = roundtrip($c, webhook_request($prefix, $i, $port));
        die "callgrind $tag: request $i: status $st\n" unless $st == 200;
    }
    close $c->{sock};

    # the same check in every run: its cost cancels out in the difference
    my $m = metrics($port);
    my $ok = $m->{'mitte_deliveries_total{result="success"}'} // 0;
    my $want = $prefix eq 'hooks' ? $n : 0;
    die "callgrind $tag: $ok deliveries recorded, not $want\n"
        unless $ok == $want;
    return 1;
}

sub callgrind {
    my ($dir) = @_;
    system('valgrind --version >/dev/null 2>&1') == 0
        or die "valgrind is missing (BENCH_CALLGRIND=0 skips this part)\n";
    my $n2 = $CG_N1 + $CG_N;
    printf "callgrind: Ir of %d minus Ir of %d requests on one keep-alive "
        . "connection, per location\n", $n2, $CG_N1;
    my %per;
    for my $prefix (qw(plain hooks)) {
        my $t0 = time;
        my $ir1 = callgrind_run($dir, $prefix, $CG_N1);
        my $ir2 = callgrind_run($dir, $prefix, $n2);
        $per{$prefix} = ($ir2 - $ir1) / $CG_N;
        printf "  %-8s Ir(%d) %d, Ir(%d) %d: %.0f per request (%.0fs)\n",
            $prefix eq 'plain' ? 'plain' : 'recorded', $CG_N1, $ir1, $n2,
            $ir2, $per{$prefix}, time - $t0;
    }
    my ($p, $r) = @per{qw(plain hooks)};
    return sprintf "callgrind instructions/request: plain %.0f, "
        . "recorded %.0f (%+.1f%%, %+.0f)", $p, $r, ($r / $p - 1) * 100,
        $r - $p;
}

# ---------------------------------------------------------------------------

check_nginx_module();
check_wrk();
$PIN = wrk_setup(connections => $CONNECTIONS, pin => $PIN, warn => 1);

my $dir = workdir('mitte-bench-XXXXXX');
my $t0 = time;

my @summary = guarded($dir, sub {
    my @s;
    if ($THROUGHPUT) {
        push @s, throughput($dir);
        print "  $s[-1]\n";
    }
    if ($CALLGRIND) {
        push @s, callgrind($dir);
        print "  $s[-1]\n";
    }
    return @s;
});

print_summary($t0, @summary);
exit 0;
