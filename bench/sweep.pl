#!/usr/bin/perl

# bench/sweep.pl: what the anomaly sweep costs over 100,000 endpoints, and
# how much of the zone an endpoint takes.
#
#   MITTE_MODULE=build/ngx_http_mitte_module.so perl bench/sweep.pl
#
# One nginx (the stock binary, the module loaded, one worker) with a 128m
# zone, `mitte_anomaly interval=1h` (so the timer's own sweep stays out of
# the way) and the operator API on /mitte-admin/.
#
# 1. Import: BENCH_ENDPOINTS (100,000) endpoints, PUT /mitte-admin/endpoints/
#    ep-<i> each with an owner (user-<j>, spread over 1,000 users) and the
#    49 hours of the window: the 48 before the current one and the current
#    one, every hour with requests and failures. The counts are drawn from
#    a seeded generator, per endpoint:
#      ~2%   z-score spike: a steady history, a current rate far above it
#      ~1%   rate spike: a history swinging between low and high rates (so
#            sigma is large and z small) and a current rate above 80%
#      ~1%   a spike on too few requests (n < 5): fires neither rule
#      rest  ordinary: the current hour like the history
#    The bench evaluates SPEC section 4's rule on the same numbers (the same
#    double arithmetic in the same order) and expects exactly that many
#    ANOMALY_DETECTED from the first sweep. BENCH_CLIENTS forked Perl
#    clients, each on one keep-alive connection with up to BENCH_PIPELINE
#    requests in flight (HTTP/1.1 pipelining), every answer must be 200.
#    Then GET /mitte-admin/metrics must show mitte_endpoints = 100,000, no
#    eviction and no failed allocation.
#
# 2. Zone per endpoint: (mitte_zone_used_bytes after the import - before it)
#    / endpoints. The endpoints have no display name (the slug is the name).
#
# 3. Sweeps: BENCH_SWEEPS (3) times POST /mitte-admin/sweep, its wall time
#    on the client, and then mitte_sweep_cpu_seconds (CPU time of that
#    sweep, the sum of its slices) and mitte_sweep_slice_max_seconds (its
#    longest slice). The first sweep raises the notifications; the later ones
#    find the firing endpoints in their cooldown and raise none.
#
# 4. With names (BENCH_NAMES=0 skips it): PUT {"name": "..."} (a 24-byte
#    display name) to every endpoint; the zone's growth / endpoints is what
#    a name costs on top.
#
# 5. The state file (BENCH_STATE=0 skips it): a reload adds
#    mitte_state_file; the time a write takes and holds the zone's lock,
#    the file's size, and the time nginx takes to start from it.
#
# The import happens in the current hour: when the hour would end before
# the sweeps are done (less than BENCH_HOUR_MARGIN seconds left), the bench
# first waits for the next hour. If the hour changed anyway, it fails.
#
# Environment:
#   MITTE_MODULE        the module (default build/ngx_http_mitte_module.so)
#   MITTE_NGINX         the nginx binary, or NGINX (/usr/sbin/nginx)
#   BENCH_ENDPOINTS     endpoints to import (default 100000)
#   BENCH_USERS         owners (default 1000)
#   BENCH_CLIENTS       client processes for the import (default 4)
#   BENCH_PIPELINE      requests in flight per client (default 16)
#   BENCH_SWEEPS        sweeps to run (default 3)
#   BENCH_NAMES         1 (default): also measure the zone with names
#   BENCH_STATE         1 (default): also measure the state file (5. below)
#   BENCH_ZONE          zone size (default 128m)
#   BENCH_PIN           1 (default when there are 2+ CPUs): nginx's worker
#                       on CPU 0 (the import clients run anywhere)
#   BENCH_HOUR_MARGIN   seconds the run needs within one hour (default 90)
#   BENCH_KEEP          1 keeps the temp dir (config, error log)
#   BENCH_HOLD          seconds to keep nginx running after the sweeps, with
#                       its port and pids printed, e.g. to run more sweeps
#                       under perf record -p <worker> (default 0)
#   BENCH_WRAPPER       a command nginx runs under, e.g. "valgrind
#                       --tool=callgrind --toggle-collect=
#                       ngx_http_mitte_sweep_slice" (then with
#                       master_process off: one process does everything);
#                       with a smaller BENCH_ENDPOINTS, as it is slow
#
# Exit status: 0 when everything worked (whether or not the targets were
# met: the summary says); 1 otherwise.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use MitteBench;
use IO::Select;
use IO::Socket::INET;
use POSIX qw(floor);
use Time::HiRes qw(time sleep);

my $ENDPOINTS = $ENV{BENCH_ENDPOINTS} // 100000;
my $USERS = $ENV{BENCH_USERS} // 1000;
my $CLIENTS = $ENV{BENCH_CLIENTS} // 4;
my $PIPELINE = $ENV{BENCH_PIPELINE} // 16;
my $SWEEPS = $ENV{BENCH_SWEEPS} // 3;
my $NAMES = $ENV{BENCH_NAMES} // 1;
my $STATE = $ENV{BENCH_STATE} // 1;
my $ZONE = $ENV{BENCH_ZONE} // '128m';
my $MARGIN = $ENV{BENCH_HOUR_MARGIN} // 90;
my $HOLD = $ENV{BENCH_HOLD} // 0;
my @WRAPPER = split ' ', $ENV{BENCH_WRAPPER} // '';

# seconds for the whole script, a safety net
my $TIME_LIMIT = (@WRAPPER ? 900 : 180) + $HOLD;
my $IO_TIMEOUT = 30;            # seconds without progress on a connection

# the targets
my $CPU_TARGET = 0.100;
my $SLICE_TARGET = 0.005;
my $BYTES_TARGET = 512;

my $ANOMALIES = 'mitte_notifications_total{type="ANOMALY_DETECTED"}';

# the rule's defaults (docs/directives.md, mitte_anomaly)
my %RULE = (window => 48, history => 6, zscore => 2.5, zmin => 5,
            rate => 0.80, rmin => 10);

my $PIN = $ENV{BENCH_PIN} // (cpus() >= 2 && !@WRAPPER ? 1 : 0);

init(time_limit => $TIME_LIMIT);

# ---------------------------------------------------------------------------
# HTTP: the module's client, and answers taken from a pipelined stream

# one complete answer at the start of $$buf, removed from it:
# (status, headers, body), or () when it is not all there yet
sub take_answer {
    my ($buf) = @_;
    my $end = index($$buf, "\r\n\r\n");
    return () if $end < 0;
    my $head = substr($$buf, 0, $end + 4);
    my ($status) = $head =~ m{^HTTP/1\.[01] (\d{3})}
        or die "bad status line: " . substr($head, 0, 80) . "\n";
    my ($len) = $head =~ /^Content-Length:\s*(\d+)\r$/mi
        or die "an answer without Content-Length:\n$head";
    return () if length($$buf) < $end + 4 + $len;
    substr($$buf, 0, $end + 4, '');
    my $body = substr($$buf, 0, $len, '');
    return ($status, $head, $body);
}

# a request with a JSON body (when there is one)
sub json_request {
    my ($method, $path, $body) = @_;
    $body //= '';
    return request($method, $path,
                   $body ne '' ? { 'Content-Type' => 'application/json' }
                               : {}, $body);
}

# ---------------------------------------------------------------------------
# the endpoints: counts drawn per endpoint from a seeded generator

# a 31-bit LCG; the state is the endpoint's own, so any client can draw any
# endpoint and get the same counts
sub rng {
    my ($seed) = @_;
    my $x = ($seed * 2654435761 + 12345) % 2147483648;
    return sub {
        $x = ($x * 1103515245 + 12345) % 2147483648;
        return $x / 2147483648;     # [0, 1)
    };
}

sub between {
    my ($r, $lo, $hi) = @_;
    return $lo + int($r->() * ($hi - $lo + 1));
}

# [requests, failures] with 1 <= failures <= requests, rate about $p
sub counts {
    my ($r, $n, $p) = @_;
    my $f = int($n * $p * (0.8 + 0.4 * $r->()) + 0.5);
    $f = 1 if $f < 1;
    $f = $n if $f > $n;
    return [$n, $f];
}

# the owner and the 49 hours of endpoint $i, oldest first; the last is the
# current hour
sub endpoint_data {
    my ($i) = @_;
    my $r = rng($i + 1);
    my $kind = $r->();
    my $base = 0.01 + 0.14 * $r->();
    my @h;
    if ($kind < 0.02) {
        # z-score spike
        push @h, counts($r, between($r, 20, 300), $base) for 1 .. 48;
        push @h, counts($r, between($r, 20, 300), $base + 0.3 + 0.3 * $r->());
    } elsif ($kind < 0.03) {
        # rate spike over a swinging history
        push @h, counts($r, between($r, 20, 300), $_ % 2 ? 0.1 : 0.9)
            for 1 .. 48;
        push @h, counts($r, between($r, 10, 100), 0.9);
    } elsif ($kind < 0.04) {
        # a spike on too few requests
        push @h, counts($r, between($r, 20, 300), $base) for 1 .. 48;
        my $n = between($r, 1, 4);
        push @h, [$n, $n];
    } else {
        push @h, counts($r, between($r, 10, 300), $base) for 1 .. 49;
    }
    my $user = 'user-' . (($i * 7919 + int($kind * 1e6)) % $USERS);
    return ($user, \@h);
}

sub endpoint_body {
    my ($i, $hour) = @_;
    my ($user, $h) = endpoint_data($i);
    my $first = $hour - 48;
    return qq({"user":"$user","hours":[)
        . join(',', map {
            sprintf '{"hour":%d,"requests":%d,"failures":%d}',
                ($first + $_) * 3600, @{ $h->[$_] }
          } 0 .. 48)
        . ']}';
}

# SPEC section 4 on endpoint $i's numbers, as lib/mitte_anomaly.c computes
# it (history from c-1 back to c-48, in that order): 1 when it fires
sub endpoint_fires {
    my ($i) = @_;
    my (undef, $h) = endpoint_data($i);
    my ($n, $f) = @{ $h->[48] };
    my $rate = $f / $n;
    my @rates;
    for my $k (1 .. $RULE{window}) {
        my ($hn, $hf) = @{ $h->[48 - $k] };
        push @rates, $hf / $hn if $hn;
    }
    return 0 if @rates < $RULE{history};
    my $sum = 0.0;
    $sum += $_ for @rates;
    my $mean = $sum / @rates;
    my $var = 0.0;
    $var += ($_ - $mean) * ($_ - $mean) for @rates;
    my $sigma = sqrt($var / @rates);
    my $z = ($rate - $mean) / ($sigma > 0.01 ? $sigma : 0.01);
    return (($z > $RULE{zscore} && $n >= $RULE{zmin})
            || ($rate > $RULE{rate} && $n >= $RULE{rmin})) ? 1 : 0;
}

# ---------------------------------------------------------------------------
# many PUTs, pipelined on one connection: $make->($i) gives the body

sub put_many {
    my ($port, $ids, $make) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
                                  Proto => 'tcp')
        or die "connect 127.0.0.1:$port: $!\n";
    $s->blocking(0);
    my ($in, $out) = ('', '');
    my ($next, $done, $inflight) = (0, 0, 0);
    my $sel = IO::Select->new($s);
    while ($done < @$ids) {
        while ($inflight < $PIPELINE && $next < @$ids) {
            my $i = $ids->[$next++];
            $out .= json_request(PUT => "/mitte-admin/endpoints/ep-$i",
                                 $make->($i));
            $inflight++;
        }
        my ($r, $w) = IO::Select->select($sel, length $out ? $sel : undef,
                                         undef, $IO_TIMEOUT);
        die "no progress in ${IO_TIMEOUT}s\n" unless $r || $w;
        if ($w && @$w) {
            my $n = syswrite($s, $out);
            if (defined $n) {
                substr($out, 0, $n, '');
            } elsif (!$!{EAGAIN}) {
                die "write: $!\n";
            }
        }
        if ($r && @$r) {
            my $n = sysread($s, $in, 262144, length $in);
            if (!defined $n) {
                die "read: $!\n" unless $!{EAGAIN};
            } elsif ($n == 0) {
                die "connection closed after $done answers\n";
            }
            while (my ($st, undef, $body) = take_answer(\$in)) {
                die "PUT ep-$ids->[$done]: $st $body\n" unless $st == 200;
                $done++;
                $inflight--;
            }
        }
    }
    close $s;
}

# the ids split over $CLIENTS forked clients; dies unless all succeeded
sub put_parallel {
    my ($port, $what, $make) = @_;
    my @pids;
    for my $k (0 .. $CLIENTS - 1) {
        my @ids = grep { $_ % $CLIENTS == $k } 0 .. $ENDPOINTS - 1;
        push @pids, spawn_perl("client $k ($what)",
                               sub { put_many($port, \@ids, $make) });
    }
    my $failed = 0;
    for my $pid (@pids) {
        my $st = reap($pid, $TIME_LIMIT);
        $failed++ if !defined $st || $st != 0;
    }
    die "$failed of $CLIENTS clients failed ($what)\n" if $failed;
}

# ---------------------------------------------------------------------------
# nginx configuration

sub nginx_conf {
    my (%o) = @_;
    my $dir = $o{dir};
    $o{state} = $o{state} ? "    mitte_state_file $o{state} interval=1s;" : '';
    # under a tool (single): one process, no master, no worker
    return conf_head(dir => $dir, pin => $o{pin}, single => scalar @WRAPPER,
                     connections => 1024)
        . conf_http_base($dir) . <<"END" . conf_admin() . "    }\n}\n";
    keepalive_requests 1000000;
    keepalive_timeout 120s;
    client_body_buffer_size 16k;

    mitte_zone mitte:$ZONE;
    # the timer's sweep waits an hour: only POST /mitte-admin/sweep sweeps
    mitte_anomaly interval=1h;
$o{state}

    server {
        listen 127.0.0.1:$o{port};

END
}

# ---------------------------------------------------------------------------

check_nginx_module();
$PIN = 0 if $PIN && !pin_works(0);

my $dir = workdir('mitte-sweep-XXXXXX');

my $t0 = time;
my $summary = guarded($dir, sub { run($dir) });
print_summary($t0);
print $summary;
exit 0;

sub run {
    my ($dir) = @_;

    # the whole run within one hour
    my $left = 3600 - time % 3600;
    if ($left < $MARGIN) {
        printf "waiting %.0fs for the next hour\n", $left + 1;
        sleep $left + 1;
    }
    my $hour = floor(time / 3600);

    my $port = free_port();
    my ($pid, $log) = start_nginx($dir, nginx_conf(dir => $dir, port => $port,
                                                   pin => $PIN),
                                  wrapper => \@WRAPPER, port => $port,
                                  timeout => @WRAPPER ? 60 : 10, brief => 1);

    my $text = eval { measure($port, $hour, $pid) };
    fail_with_log($@, $log) unless defined $text;

    if ($STATE && !@WRAPPER) {
        my $st = eval { state_file($dir, $port, $pid) };
        fail_with_log($@, $log) unless defined $st;
        $pid = $st->{pid};
        $text .= $st->{text};
    }

    stop($pid);
    fail_with_log("nginx reported problems\n", $log) if log_problems($log);
    die "the hour changed during the run: the sweeps did not see the "
        . "imported current hour; run it again\n"
        if floor(time / 3600) != $hour;
    return $text;
}

# 5. The state file: a reload adds mitte_state_file (interval=1s) to the
# same zone; after two writes, the metrics tell how long the last one took
# and held the zone's lock; then nginx stops (it writes the file at exit)
# and starts again from it: the time until it answers, and every endpoint
# must be back.
sub state_file {
    my ($dir, $port, $pid) = @_;
    my $conf = nginx_conf(dir => $dir, port => $port, pin => $PIN,
                          state => "$dir/state");
    spew("$dir/nginx.conf", $conf);
    kill 'HUP', $pid;

    my $key = 'mitte_state_writes_total{result="written"}';
    my ($m, $until) = ({}, time + 60);
    while (time < $until) {
        sleep 0.5;
        $m = eval { metrics(client($port)) } || {};
        last if ($m->{$key} // 0) >= 2;
    }
    die "the state file was not written twice in 60s\n"
        unless ($m->{$key} // 0) >= 2;
    die "a state file write failed\n"
        if $m->{'mitte_state_writes_total{result="failed"}'};

    stop($pid);
    my $size = -s "$dir/state" or die "no state file after the stop\n";

    my $t = time;
    my ($pid2) = start_nginx($dir, $conf, port => $port, timeout => 120,
                             brief => 1);
    my $ready = time - $t;
    my $m2 = metrics(client($port));
    die "after the restart: mitte_endpoints is $m2->{mitte_endpoints}, not "
        . "$ENDPOINTS\n" unless $m2->{mitte_endpoints} == $ENDPOINTS;

    my $text = sprintf "state file (%d endpoints, %d users): %.1f MB; a "
        . "write %.3f s, the zone locked %.3f s of it; after a stop, "
        . "nginx read it and answered in %.2f s\n", $ENDPOINTS,
        $m2->{mitte_users}, $size / 1e6, $m->{mitte_state_write_seconds},
        $m->{mitte_state_lock_seconds}, $ready;
    print $text;
    return { pid => $pid2, text => "  $text" };
}

sub measure {
    my ($port, $hour, $nginx_pid) = @_;
    my $c = client($port);

    my $m0 = metrics($c);
    my $used0 = $m0->{mitte_zone_used_bytes};
    die "mitte_zone_used_bytes is missing from the metrics\n"
        unless defined $used0;
    die "the zone is not empty at start: $m0->{mitte_endpoints} endpoints\n"
        if $m0->{mitte_endpoints};

    # what the first sweep must raise
    my $t = time;
    my $expected = 0;
    $expected += endpoint_fires($_) for 0 .. $ENDPOINTS - 1;
    printf "data: %d endpoints x 49 hours, %d users; the rule fires for %d "
        . "of them (%.1fs to compute)\n", $ENDPOINTS, $USERS, $expected,
        time - $t;

    # 1. import
    $t = time;
    put_parallel($port, 'import', sub { endpoint_body($_[0], $hour) });
    my $import = time - $t;
    my $m1 = metrics($c);
    printf "import: %d PUTs in %.1fs (%.0f/s; %d clients, %d in flight "
        . "each)\n", $ENDPOINTS, $import, $ENDPOINTS / $import, $CLIENTS,
        $PIPELINE;
    die "mitte_endpoints is $m1->{mitte_endpoints}, not $ENDPOINTS\n"
        unless $m1->{mitte_endpoints} == $ENDPOINTS;
    for my $k ('mitte_evictions_total{kind="endpoint"}',
               'mitte_evictions_total{kind="user"}',
               'mitte_zone_alloc_failures_total') {
        die "$k is $m1->{$k} after the import: the zone is too small\n"
            if $m1->{$k};
    }

    # a look at one endpoint: 49 hours, the counts as sent
    my $probe = int($ENDPOINTS / 2);
    my ($st, undef, $body) = roundtrip($c,
        json_request(GET => "/mitte-admin/endpoints/ep-$probe"));
    die "GET ep-$probe: $st $body\n" unless $st == 200;
    my @got = $body =~ /"requests":(\d+),"failures":(\d+)/g;
    my (undef, $h) = endpoint_data($probe);
    my @want = map { @$_ } @$h;
    die "GET ep-$probe: the hours are not those imported:\n$body\n"
        unless "@got" eq "@want";

    # 2. zone per endpoint
    my $used1 = $m1->{mitte_zone_used_bytes};
    my $per = ($used1 - $used0) / $ENDPOINTS;
    printf "zone: used %d bytes empty, %d after the import: %.1f bytes per "
        . "endpoint (no display name)\n", $used0, $used1, $per;

    # 3. sweeps
    my $sweeps0 = $m1->{mitte_sweeps_total} // 0;
    my @runs;
    for my $k (1 .. $SWEEPS) {
        $t = time;
        my ($st, undef, $body) = roundtrip($c,
            json_request(POST => '/mitte-admin/sweep'), 60);
        my $wall = time - $t;
        die "POST /mitte-admin/sweep: $st $body\n" unless $st == 200;
        my ($eps) = $body =~ /"endpoints":(\d+)/;
        my ($notes) = $body =~ /"notifications":(\d+)/;
        die "POST /mitte-admin/sweep: $body\n"
            unless defined $eps && defined $notes;
        my $m = metrics($c);
        die "mitte_sweeps_total is $m->{mitte_sweeps_total}, not "
            . ($sweeps0 + $k) . "\n"
            unless $m->{mitte_sweeps_total} == $sweeps0 + $k;
        my %r = (wall => $wall, endpoints => $eps, notes => $notes,
                 cpu => $m->{mitte_sweep_cpu_seconds},
                 slice => $m->{mitte_sweep_slice_max_seconds},
                 anomalies => $m->{$ANOMALIES});
        push @runs, \%r;
        printf "sweep %d: %d endpoints, %d notifications; cpu %.6fs, "
            . "longest slice %.6fs, wall %.3fs\n", $k, $eps, $notes,
            $r{cpu}, $r{slice}, $wall;
        die "sweep $k examined $eps endpoints, not $ENDPOINTS\n"
            unless $eps == $ENDPOINTS;
        my $want = $k == 1 ? $expected : 0;
        die "sweep $k raised $notes notifications, not $want\n"
            unless $notes == $want;
    }
    die "mitte_notifications_total{type=\"ANOMALY_DETECTED\"} is "
        . "$runs[-1]{anomalies}, not $expected\n"
        if $SWEEPS && $runs[-1]{anomalies} != $expected;
    my $m2 = metrics($c);
    printf "zone after the sweeps: %d bytes used (+%d: %d users and the "
        . "notifications)\n", $m2->{mitte_zone_used_bytes},
        $m2->{mitte_zone_used_bytes} - $used1, $m2->{mitte_users};

    if ($HOLD) {
        printf "holding nginx %ds on 127.0.0.1:%d: master pid %d, worker "
            . "pid(s) %s\n", $HOLD, $port, $nginx_pid,
            join(' ', children_of($nginx_pid));
        sleep $HOLD;
    }

    # 4. with names
    my $named;
    if ($NAMES) {
        my $used2 = $m2->{mitte_zone_used_bytes};
        $t = time;
        # 24 bytes, unlike the slug
        put_parallel($port, 'names',
                     sub { sprintf '{"name":"Endpoint number %08d"}', $_[0] });
        my $m3 = metrics($c);
        die "mitte_endpoints is $m3->{mitte_endpoints} after naming them\n"
            unless $m3->{mitte_endpoints} == $ENDPOINTS;
        my $name_bytes = ($m3->{mitte_zone_used_bytes} - $used2) / $ENDPOINTS;
        printf "names: %d PUTs in %.1fs; a 24-byte name takes %.1f bytes "
            . "more per endpoint\n", $ENDPOINTS, time - $t, $name_bytes;
        $named = $per + $name_bytes;
    }
    close $c->{sock};

    # the summary: the first sweep (it raises the notifications) and the
    # cooled-down ones
    my $fmt = sub {
        my ($r) = @_;
        return sprintf "cpu %.3f s (target < %.3f), longest slice %.4f s "
            . "(target < %.3f), wall %.3f s", $r->{cpu}, $CPU_TARGET,
            $r->{slice}, $SLICE_TARGET, $r->{wall};
    };
    my $text = '';
    if (@runs) {
        $text .= sprintf "sweep over %d endpoints: %s; zone per endpoint: "
            . "%.0f bytes (target <= %d)\n", $ENDPOINTS, $fmt->($runs[-1]),
            $per, $BYTES_TARGET;
        $text .= sprintf "  first sweep (%d notifications): %s\n",
            $runs[0]{notes}, $fmt->($runs[0]);
        $text .= sprintf "  cooled-down sweeps %d-%d: cpu %s s, longest "
            . "slice %s s, wall %s s\n", 2, scalar @runs,
            join('/', map { sprintf '%.3f', $_->{cpu} } @runs[1 .. $#runs]),
            join('/', map { sprintf '%.4f', $_->{slice} } @runs[1 .. $#runs]),
            join('/', map { sprintf '%.3f', $_->{wall} } @runs[1 .. $#runs])
            if @runs > 1;
    }
    $text .= sprintf "  zone per endpoint with a 24-byte display name: %.0f "
        . "bytes\n", $named if defined $named;
    my @missed;
    push @missed, 'cpu' if grep { $_->{cpu} >= $CPU_TARGET } @runs;
    push @missed, 'slice' if grep { $_->{slice} >= $SLICE_TARGET } @runs;
    push @missed, 'zone' if $per > $BYTES_TARGET;
    $text .= @missed ? "  targets missed: @missed\n" : "  all targets met\n";
    $text .= "  (under BENCH_WRAPPER: the times are the tool's, not nginx's)\n"
        if @WRAPPER;
    return $text;
}
