#!/usr/bin/perl

# bench/sse.pl: the event stream (mitte_sse) under thousands of subscribers,
# side by side with nchan (Debian's libnginx-mod-nchan) as the peer.
#
#   MITTE_MODULE=build/ngx_http_mitte_module.so perl bench/sse.pl
#
# Part 1, fan-out, for each implementation and each subscriber count (5,000
# and 9,000): a fresh nginx (2 workers, reuseport, worker_connections
# 12,000), subscribers held by forked C clients (bench/sse_client.c, compiled
# here with cc; epoll, at most 1,800 connections each), then 20 events, 250
# ms apart:
#
#   mitte   POST /hooks/ev-<k>-<unix ms> (proxied to a loopback upstream
#           and recorded; every subscriber is the endpoint's user, so every
#           event goes to every stream)
#   nchan   POST /pub of "k=<k> t=<unix ms>" to one channel that every
#           subscriber (nchan_subscriber eventsource) listens to
#
# The publisher writes each request in one write on a keep-alive connection
# with TCP_NODELAY, and notes the time just before (in the slug, in the
# message). The figures:
#   events to all   share of the 20 events that reached every subscriber
#                   (and of the event x subscriber deliveries)
#   latency         p50 / p99 over every (event, subscriber) pair, receipt
#                   minus send time: for mitte the event's own "timestamp"
#                   (the delivery's completion, truncated to the ms: +0.5 ms
#                   on average against mitte), for nchan the publisher's
#   from the POST   the same from the publisher's time for both (for mitte
#                   that includes proxying and recording)
#   memory          (VmRSS sum of the workers with N idle subscribers -
#                   the same before they connected) / N
#
# Part 2 (BENCH_SSE_PROXY=0 skips it), mitte only: the proxy ratio of
# bench/proxy.pl (wrk with bench/webhooks.lua against /plain/ and /hooks/,
# alternating, ratio of the medians; 1 worker on CPU 0, wrk on CPU 1) with
# 1,000 idle subscribers connected to that worker (a user no delivery
# belongs to, so every recorded delivery walks them without sending); then,
# for reference, the same series in the same nginx once they are gone.
#
# Environment:
#   MITTE_MODULE              the module (default build/ngx_http_mitte_module.so)
#   MITTE_NGINX               the nginx binary, or NGINX (/usr/sbin/nginx)
#   NCHAN_MODULE              default /usr/lib/nginx/modules/ngx_nchan_module.so
#   BENCH_SSE_SUBSCRIBERS     subscriber counts (default 5000,9000)
#   BENCH_SSE_EVENTS          events per run (default 20, at most 30)
#   BENCH_SSE_GAP             seconds between events (default 0.25)
#   BENCH_SSE_PROXY           0 skips part 2 (default 1)
#   BENCH_SSE_PROXY_REF       0 skips part 2's reference series without
#                             subscribers (default 1)
#   BENCH_PAIRS               plain/recorded wrk pairs in part 2 (default 5)
#   BENCH_DURATION            seconds per wrk run in part 2 (default 4)
#   BENCH_CONNECTIONS         wrk connections (default 32)
#   BENCH_KEEP                1 keeps the temp dir (configs, logs)
#
# Exit status: 0 when every run worked; 1 otherwise. Everything started is
# stopped by pid, also on failure.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use MitteBench;
use IO::Select;
use POSIX qw(ceil);
use Socket qw(IPPROTO_TCP TCP_NODELAY);
use Time::HiRes qw(time sleep);

my $CLIENT_C = "$ROOT/bench/sse_client.c";

my $NCHAN = $ENV{NCHAN_MODULE}
    // '/usr/lib/nginx/modules/ngx_nchan_module.so';
my @COUNTS = split /,/, ($ENV{BENCH_SSE_SUBSCRIBERS} // '5000,9000');
my $EVENTS = $ENV{BENCH_SSE_EVENTS} // 20;
my $GAP = $ENV{BENCH_SSE_GAP} // 0.25;
my $PROXY = $ENV{BENCH_SSE_PROXY} // 1;
my $PROXY_REF = $ENV{BENCH_SSE_PROXY_REF} // 1;
my $PAIRS = $ENV{BENCH_PAIRS} // 5;
my $DURATION = $ENV{BENCH_DURATION} // 4;
my $CONNECTIONS = $ENV{BENCH_CONNECTIONS} // 32;

my $PER_CLIENT = 1800;     # connections per client process
my $IDLE = 1000;           # idle subscribers in part 2
my $TIME_LIMIT = 290;      # seconds for the whole script, a safety net

my $PIN = cpus() >= 2 ? 1 : 0;

init(time_limit => $TIME_LIMIT);

# ---------------------------------------------------------------------------
# helpers

# the value at quantile $q of a sorted list (nearest rank)
sub quantile {
    my ($sorted, $q) = @_;
    return undef unless @$sorted;
    my $i = ceil($q * @$sorted) - 1;
    $i = 0 if $i < 0;
    return $sorted->[$i];
}

sub rss_kb {
    my $sum = 0;
    for my $pid (@_) {
        open my $fh, '<', "/proc/$pid/status" or next;
        while (<$fh>) {
            if (/^VmRSS:\s+(\d+)/) {
                $sum += $1;
                last;
            }
        }
    }
    return $sum;
}

# ---------------------------------------------------------------------------
# nginx configurations

# 2 workers (by default), reuseport: room for 9,000 subscribers and more
sub sse_head {
    my (%o) = @_;
    return conf_head(dir => $o{dir}, modules => $o{modules},
                     workers => $o{workers} // 2, pin => $o{pin},
                     rlimit => 16000, connections => 12000)
        . conf_http_base($o{dir});
}

sub mitte_conf {
    my (%o) = @_;
    # /plain/ and /hooks/ as in bench/proxy.pl
    return sse_head(%o, modules => [$MODULE]) . conf_unlimited()
        . conf_target($o{upstream})
        . "    server {\n        listen 127.0.0.1:$o{port} reuseport "
        . "backlog=4096;\n\n" . conf_proxy_locations() . <<'END';

        location = /events {
            mitte_user $http_x_mitte_user;
            mitte_sse;
        }
    }
}
END
}

sub nchan_conf {
    my (%o) = @_;
    return sse_head(%o, modules => [$NCHAN]) . <<"END";
    server {
        listen 127.0.0.1:$o{port} reuseport backlog=4096;

        location = /pub {
            nchan_publisher;
            nchan_channel_id bench;
        }
        location = /sub {
            nchan_subscriber eventsource;
            nchan_channel_id bench;
            nchan_subscriber_first_message newest;
        }
    }
}
END
}

# ---------------------------------------------------------------------------
# the publisher: a minimal HTTP/1.1 client on one keep-alive connection

sub publisher {
    my ($port) = @_;
    my $c = client($port);
    setsockopt($c->{sock}, IPPROTO_TCP, TCP_NODELAY, 1)
        or die "TCP_NODELAY: $!\n";
    return $c;
}

# POST in one write; (status, body)
sub post_raw {
    my ($c, $path, $headers, $body) = @_;
    my $req = "POST $path HTTP/1.1\r\nHost: 127.0.0.1\r\n$headers"
        . 'Content-Length: ' . length($body) . "\r\n\r\n$body";
    my ($st, undef, $out) = eval { roundtrip($c, $req, 10) };
    die "publisher: $@" unless defined $st;
    return ($st, $out);
}

# ---------------------------------------------------------------------------
# subscribers: C clients

my $CLIENT;

sub build_client {
    my ($dir) = @_;
    $CLIENT = "$dir/sse_client";
    system('cc', '-O2', '-o', $CLIENT, $CLIENT_C) == 0
        or die "cc $CLIENT_C failed\n";
}

# start clients for $n connections; returns [{pid, fh, buf, lat}, ...]
sub start_clients {
    my ($dir, $tag, $n, $port, $path, $mode, $user, $timeout) = @_;
    my $k = ceil($n / $PER_CLIENT);
    my @cl;
    my $left = $n;
    for my $i (1 .. $k) {
        my $m = int($left / ($k - $i + 1));
        $left -= $m;
        my $fh;
        my $lat = "$dir/lat.$tag.$i";
        my @cmd = ($CLIENT, '-p', $port, '-n', $m, '-r', $path,
                   '-e', $EVENTS, '-m', $mode, '-o', $lat,
                   '-t', $timeout // 120);
        push @cmd, '-H', "X-Mitte-User: $user" if defined $user;
        my $pid = spawn("client $tag.$i", \$fh, "$dir/client.$tag.$i.err",
                        @cmd);
        push @cl, { pid => $pid, fh => $fh, buf => '', lat => $lat,
                    n => $m, name => "client $tag.$i" };
    }
    return \@cl;
}

# read what the clients print until $done->($client) is true for each, at
# most $timeout seconds; false when the time ran out
sub read_clients {
    my ($cl, $timeout, $done) = @_;
    my $end = time + $timeout;
    while (1) {
        my @left = grep { !$done->($_) } @$cl;
        return 1 unless @left;
        my $t = $end - time;
        return 0 if $t <= 0;
        my $sel = IO::Select->new(map { $_->{fh} } grep { !$_->{eof} } @left);
        return 0 unless $sel->count;
        for my $fh ($sel->can_read($t > 0.2 ? 0.2 : $t)) {
            my ($c) = grep { $_->{fh} == $fh } @left;
            my $r = sysread $fh, $c->{buf}, 65536, length $c->{buf};
            $c->{eof} = 1 unless $r;
        }
    }
}

sub wait_ready {
    my ($cl, $timeout) = @_;
    read_clients($cl, $timeout, sub { $_[0]{buf} =~ /^READY /m })
        or die "subscribers not connected in ${timeout}s: "
        . join(' ', map { "[$_->{name}: $_->{buf}]" } @$cl) . "\n";
    my ($ok, $failed) = (0, 0);
    for my $c (@$cl) {
        my ($o, $f) = $c->{buf} =~ /^READY ok=(\d+) failed=(\d+)/m;
        $ok += $o;
        $failed += $f;
    }
    return ($ok, $failed);
}

# the clients' results: they end by themselves once every connection has
# every event; those still waiting get SIGUSR1 after $timeout seconds
sub finish_clients {
    my ($cl, $timeout) = @_;
    my $all = read_clients($cl, $timeout,
                           sub { $_[0]{buf} =~ /^EVENT \Q${\ ($EVENTS - 1)}\E /m });
    unless ($all) {
        kill 'USR1', map { $_->{pid} } @$cl;
        read_clients($cl, 10,
                     sub { $_[0]{buf} =~ /^EVENT \Q${\ ($EVENTS - 1)}\E /m })
            or die "clients gave no result\n";
    }
    my %r = (received => [(0) x $EVENTS], lat => [], lat_post => []);
    for my $c (@$cl) {
        my $st = reap($c->{pid}, 10);
        stop($c->{pid}) unless defined $st;
        my ($line) = $c->{buf} =~ /^RESULT (.*)$/m
            or die "$c->{name}: no RESULT line: $c->{buf}\n";
        my %f = $line =~ /(\w+)=(\d+)/g;
        $r{$_} += $f{$_} for keys %f;
        while ($c->{buf} =~ /^EVENT (\d+) (\d+)$/mg) {
            $r{received}[$1] += $2;
        }
        open my $fh, '<', $c->{lat} or die "$c->{lat}: $!\n";
        while (<$fh>) {
            my (undef, $l, $lp) = split;
            push @{ $r{lat} }, $l;
            push @{ $r{lat_post} }, $lp;
        }
        close $fh;
        close $c->{fh};
    }
    return \%r;
}

# ---------------------------------------------------------------------------
# part 1: fan-out

sub fanout {
    my ($dir, $impl, $n) = @_;
    my $sub = "$dir/$impl-$n";
    my ($port, $up) = free_ports(2);
    my $conf = $impl eq 'mitte'
        ? mitte_conf(dir => $sub, port => $port, upstream => $up)
        : nchan_conf(dir => $sub, port => $port);
    mkdir $sub or die "$sub: $!\n";
    my ($pid, $log) = start_nginx($sub, $conf, port => $port);
    my @workers = children_of($pid);
    die "$impl: expected 2 workers, found @workers\n" unless @workers == 2;

    # one keep-alive connection, each request in one write, TCP_NODELAY:
    # no Nagle delay in the measured time
    my $pub = publisher($port);
    my $publish = sub {
        my ($k) = @_;
        my $t = sprintf '%.3f', time * 1000;
        my ($st, $body) = $impl eq 'mitte'
            ? post_raw($pub, "/hooks/ev-$k-$t",
                       "X-Mitte-User: bench\r\n"
                       . "Content-Type: application/json\r\n",
                       '{"type":"bench"}')
            : post_raw($pub, '/pub', '', "k=$k t=$t");
        die "$impl: publish $k: $st $body\n" unless $st =~ /^20[0-2]$/;
    };

    # warm-up: the endpoint / the channel exist; nothing subscribes yet
    $publish->($EVENTS + 1);
    sleep 0.5;
    my $base = rss_kb(@workers);

    my $t0 = time;
    my $cl = start_clients($sub, "$impl-$n", $n, $port,
                           $impl eq 'mitte' ? '/events' : '/sub',
                           $impl, $impl eq 'mitte' ? 'bench' : undef, 120);
    my ($ok, $failed) = wait_ready($cl, 60);
    my $connect = time - $t0;
    sleep 1;
    my $idle = rss_kb(@workers);

    for my $k (0 .. $EVENTS - 1) {
        $publish->($k);
        sleep $GAP;
    }
    my $r = finish_clients($cl, 5);

    stop($pid, 'QUIT');
    my $problems = join '', log_problems($log);
    warn "$impl $n: nginx error log:\n$problems" if $problems;

    my @lat = sort { $a <=> $b } @{ $r->{lat} };
    my @latp = sort { $a <=> $b } @{ $r->{lat_post} };
    my $to_all = grep { $_ == $n } @{ $r->{received} };
    my $total = 0;
    $total += $_ for @{ $r->{received} };
    my %res = (
        impl => $impl, n => $n, ok => $ok, failed => $failed,
        connect_s => $connect,
        to_all => $to_all,
        share_all => $to_all / $EVENTS,
        share_pairs => $total / ($n * $EVENTS),
        dups => $r->{dups}, closed => $r->{closed}, other => $r->{other},
        p50 => quantile(\@lat, 0.50), p99 => quantile(\@lat, 0.99),
        max => $lat[-1],
        pp50 => quantile(\@latp, 0.50), pp99 => quantile(\@latp, 0.99),
        mem_b => ($idle - $base) * 1024 / $n,
        base_kb => $base, idle_kb => $idle,
        problems => $problems ? 1 : 0,
    );
    printf "  %-5s %5d subscribers: %d connected (%d failed) in %.1fs; "
        . "%d/%d events to all, %.4f of deliveries; p50 %.2f ms, p99 %.2f "
        . "ms, max %.1f ms; %d duplicates, %d streams closed; workers "
        . "%d kB -> %d kB idle (%.0f B per subscriber)\n",
        $impl, $n, $ok, $failed, $connect, $to_all, $EVENTS,
        $res{share_pairs}, $res{p50} // -1, $res{p99} // -1,
        $res{max} // -1, $res{dups}, $res{closed}, $base, $idle,
        $res{mem_b};
    return \%res;
}

# ---------------------------------------------------------------------------
# part 2: the proxy ratio with 1,000 idle subscribers

# alternating plain / recorded wrk runs: the medians and the ratio
sub wrk_series {
    my ($sub, $port, $tag) = @_;
    return wrk_pairs($sub, $port, name => $tag, indent => '    ',
                     pairs => $PAIRS, seconds => $DURATION);
}

sub proxy_ratio {
    my ($dir) = @_;
    my $sub = "$dir/proxy";
    my ($port, $up) = free_ports(2);
    mkdir $sub or die "$sub: $!\n";
    my ($pid, $log) = start_nginx($sub, mitte_conf(dir => $sub, port => $port,
                                                   upstream => $up,
                                                   workers => 1,
                                                   pin => $PIN),
                                  port => $port);

    my $cl = start_clients($sub, 'idle', $IDLE, $port, '/events', 'mitte',
                           'idle-user', 200);
    my ($ok, $failed) = wait_ready($cl, 30);
    die "proxy: $failed idle subscribers failed\n" if $failed;

    printf "  proxy: wrk -t1 -c%d -d%ds, 1 nginx worker%s\n", $CONNECTIONS,
        $DURATION, $PIN ? ' (CPU 0, wrk on CPU 1)' : '';
    wrk_warmup($sub, $port, undef, 2);

    print "  with $ok idle subscribers on the worker\n";
    my $with = wrk_series($sub, $port, 'idle');

    kill 'USR1', map { $_->{pid} } @$cl;
    my $r = finish_clients($cl, 10);
    die "proxy: $r->{closed} idle subscribers were closed during the runs\n"
        if $r->{closed};
    die "proxy: an idle subscriber got $r->{other} events not its own\n"
        if $r->{other};

    my $without;
    if ($PROXY_REF) {
        sleep 0.5;
        print "  the same nginx without subscribers\n";
        $without = wrk_series($sub, $port, 'none');
    }

    stop($pid, 'QUIT');
    my $problems = join '', log_problems($log);
    warn "proxy: nginx error log:\n$problems" if $problems;

    return { with => $with, without => $without };
}

# ---------------------------------------------------------------------------

check_nginx_module();
-r $NCHAN or bail("$NCHAN is missing (apt-get install libnginx-mod-nchan)");
check_wrk() if $PROXY;
$PIN = wrk_setup(connections => $CONNECTIONS, pin => $PIN);
bail("BENCH_SSE_EVENTS must be 1..30") if $EVENTS < 1 || $EVENTS > 30;

my $dir = workdir('mitte-sse-bench-XXXXXX');

my $t0 = time;
my (%res, $proxy);
guarded($dir, sub {
    build_client($dir);
    print "fan-out: $EVENTS events ${GAP}s apart; 2 nginx workers; "
        . "subscribers in C clients of up to $PER_CLIENT connections\n";
    for my $n (@COUNTS) {
        for my $impl (qw(mitte nchan)) {
            $res{$impl}{$n} = fanout($dir, $impl, $n);
        }
    }
    $proxy = proxy_ratio($dir) if $PROXY;
    return 1;
});

my $fmt = "  %-40s %-22s %-22s\n";
print_summary($t0);
printf $fmt, '', 'mitte', 'nchan';
for my $n (@COUNTS) {
    my ($m, $c) = ($res{mitte}{$n}, $res{nchan}{$n});
    print "  $n subscribers\n";
    printf $fmt, '  connected',
        map { "$_->{ok}/$n" . ($_->{failed} ? " ($_->{failed} failed)" : '') }
        $m, $c;
    printf $fmt, '  events reaching every subscriber',
        map { sprintf '%d/%d (%.0f%%)', $_->{to_all}, $EVENTS,
              100 * $_->{share_all} } $m, $c;
    printf $fmt, '  deliveries (event x subscriber)',
        map { sprintf '%.2f%%', 100 * $_->{share_pairs} } $m, $c;
    printf $fmt, '  duplicates / streams closed',
        map { "$_->{dups} / $_->{closed}" } $m, $c;
    printf $fmt, '  latency p50 / p99 (ms)',
        map { defined $_->{p50}
              ? sprintf('%.2f / %.2f', $_->{p50}, $_->{p99}) : 'n/a' }
        $m, $c;
    printf $fmt, '  latency from the POST p50 / p99 (ms)',
        map { defined $_->{pp50}
              ? sprintf('%.2f / %.2f', $_->{pp50}, $_->{pp99}) : 'n/a' }
        $m, $c;
    printf $fmt, '  worker memory per idle subscriber',
        map { sprintf '%.1f kB', $_->{mem_b} / 1024 } $m, $c;
}
if ($proxy) {
    my ($w, $o) = @$proxy{qw(with without)};
    printf $fmt, "proxy ratio, $IDLE idle subscribers",
        sprintf('%.3f', $w->{ratio}), 'n/a (no recording)';
    printf "  (recorded %.0f rps / plain %.0f rps, medians of %d pairs; "
        . "per pair %s)\n", $w->{rec}, $w->{plain}, $PAIRS,
        join(' ', map { sprintf '%.3f', $_ } @{ $w->{pairs} });
    if ($o) {
        printf $fmt, 'proxy ratio, no subscribers (reference)',
            sprintf('%.3f', $o->{ratio}), '';
        printf "  (recorded %.0f rps / plain %.0f rps; per pair %s)\n",
            $o->{rec}, $o->{plain},
            join(' ', map { sprintf '%.3f', $_ } @{ $o->{pairs} });
    }
}
print "  latency: receipt minus send time; mitte's send time is its event"
    . " timestamp (the delivery's\n  completion, truncated to the ms),"
    . " nchan's the publisher's; \"from the POST\": both from the time\n"
    . "  the publisher wrote its request (for mitte: proxying, recording"
    . " and fan-out)\n";

my @bad = grep { $_->{failed} || $_->{problems} || $_->{dups} }
    map { values %$_ } values %res;
bail('failed connections, duplicates or nginx errors: see above') if @bad;
exit 0;
