#!/usr/bin/perl

# bench/hung.pl: the proxy ratio of bench/proxy.pl while webhook sends to a
# hung target are in flight or waiting.
#
#   MITTE_MODULE=build/ngx_http_mitte_module.so perl bench/hung.pl
#
# One nginx (the stock binary, the module loaded, ONE worker, which is also
# the sender: worker 0 sends) serves:
#
#   /plain/<slug>        proxy_pass to a keepalive upstream      } as in
#   /hooks/<slug>        the same, with mitte_endpoint/mitte_user } proxy.pl
#   /fail/<slug>         the same as /hooks/, to a second upstream server
#                        of the same nginx that answers 503
#   /mitte/preferences   mitte_preferences
#   /mitte-admin/        mitte_admin
#
# with mitte_webhook_allow 127.0.0.1 and mitte_webhook_timeout 30s, and a
# loopback "hung" receiver: a forked Perl IO::Socket server that accepts
# connections, reads and discards what comes, and never answers (it closes
# a socket only when nginx does).
#
# 1. reference: wrk alternation plain/recorded (bench/webhooks.lua, 1,000
#    endpoints, 50 users; warm-up, then BENCH_PAIRS pairs of
#    BENCH_DURATION s), median ratio, on the fresh nginx.
# 2. BENCH_SENDS users hung-<i> (default 100) get a json webhook to the hung
#    receiver; each owns an endpoint down-<i> that gets 5 failing deliveries
#    (/fail/, 503) -> ENDPOINT_DOWN (default threshold 5) -> one webhook send
#    each. GET /mitte-admin/outbox must show the BENCH_SENDS sends pending
#    and the receiver must hold the sender's connections (the sender caps
#    in-flight sends at 4 per webhook host, by design: 4 connections, the
#    rest wait in the outbox).
# 3. the same wrk alternation (no endpoint creation needed: a short warm-up)
#    while they hang; then the outbox and the receiver again.
#
# With the defaults (5 pairs x 4 s) the second series lasts ~42 s, longer
# than the 30 s timeout: the first 4 sends time out during it (attempt
# failed, retry in 1 s) and the sender opens the next 4 connections to the
# same hung host; every send stays pending (5 retries).
#
# Environment:
#   MITTE_MODULE        the module (default build/ngx_http_mitte_module.so)
#   MITTE_NGINX         the nginx binary, or NGINX (/usr/sbin/nginx)
#   BENCH_PAIRS         plain/recorded pairs of wrk runs (default 5)
#   BENCH_DURATION      seconds per wrk run (default 4)
#   BENCH_CONNECTIONS   wrk connections (default 32)
#   BENCH_SENDS         hung webhook sends (default 100)
#   BENCH_PIN           1 (default with 2+ CPUs): nginx's worker on CPU 0,
#                       wrk on CPU 1
#   BENCH_KEEP          1 keeps the temp dir
#
# Exit status: 0 when every run and every check passed; 1 otherwise.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use MitteBench;
use IO::Select;
use IO::Socket::INET;
use JSON::PP;
use POSIX qw(_exit);
use Time::HiRes qw(time sleep);

my $PAIRS = $ENV{BENCH_PAIRS} // 5;
my $DURATION = $ENV{BENCH_DURATION} // 4;
my $CONNECTIONS = $ENV{BENCH_CONNECTIONS} // 32;
my $SENDS = $ENV{BENCH_SENDS} // 100;

my $ENDPOINTS = 1000;     # as in bench/webhooks.lua
my $USERS = 50;
my $PER_HOST = 4;         # the sender's in-flight cap per webhook host
my $THRESHOLD = 5;        # mitte_endpoint_down's default threshold
my $TIME_LIMIT = 175;     # seconds for the whole script, a safety net

my $PIN = $ENV{BENCH_PIN} // (cpus() >= 2 ? 1 : 0);

init(time_limit => $TIME_LIMIT);

# ---------------------------------------------------------------------------
# the hung receiver: a forked Perl server that accepts, reads and discards,
# and never answers. Its counts go to a status file: accepted, open, bytes.

sub hung_receiver {
    my ($dir) = @_;
    my $ls = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
                                   Proto => 'tcp', Listen => 1024,
                                   ReuseAddr => 1)
        or die "hung receiver: bind: $!\n";
    my $port = $ls->sockport;
    my $status = "$dir/hung.status";
    spew($status, "0 0 0\n");
    my $bench = $$;
    my $pid = spawn_perl('hung receiver', sub {
        my $sel = IO::Select->new($ls);
        my ($accepted, $bytes, @held) = (0, 0);
        my $write = sub {
            open my $fh, '>', "$status.tmp" or return;
            printf {$fh} "%d %d %d\n", $accepted, $sel->count - 1, $bytes;
            close $fh;
            rename "$status.tmp", $status;
        };
        while (1) {
            _exit(0) if getppid() != $bench;   # the bench went away
            for my $s ($sel->can_read(1)) {
                if ($s == $ls) {
                    my $c = $ls->accept or next;
                    $accepted++;
                    $sel->add($c);
                } else {
                    my $n = sysread($s, my $buf, 65536);
                    if ($n) {
                        $bytes += $n;    # the request: never answered
                    } else {
                        $sel->remove($s);   # nginx closed it (timeout)
                        close $s;
                    }
                }
                $write->();
            }
        }
    });
    close $ls;
    return ($pid, $port, sub {
        my ($a, $o, $b) = split ' ', slurp($status);
        return { accepted => $a // 0, open => $o // 0, bytes => $b // 0 };
    });
}

# ---------------------------------------------------------------------------
# nginx configuration: proxy.pl's, plus /fail/, preferences and the webhook
# directives

sub nginx_conf {
    my (%o) = @_;
    return conf_head(dir => $o{dir}, pin => $o{pin})
        . conf_http_base($o{dir}) . conf_unlimited() . <<"END"
    # the hung receiver is on loopback; the sends stay in flight for 30 s
    mitte_webhook_allow 127.0.0.1;
    mitte_webhook_timeout 30s;

END
        . conf_target($o{upstream}) . <<"END" . conf_proxy_locations()
    # a failing target, to raise ENDPOINT_DOWN; its own server, so that the
    # location the wrk runs hit is exactly proxy.pl's
    upstream u503 {
        server 127.0.0.1:$o{failing};
        keepalive 8;
    }
    server {
        listen 127.0.0.1:$o{failing};
        location / {
            return 503;
        }
    }

    server {
        listen 127.0.0.1:$o{port};

END
        . <<'END' . conf_admin() . "    }\n}\n";
        location /fail/ {
            location ~ ^/fail/(?<slug>[A-Za-z0-9._-]+)$ {
                mitte_endpoint $slug;
                mitte_user $http_x_mitte_user;
                proxy_pass http://u503;
            }
        }
        location = /mitte/preferences {
            mitte_user $http_x_mitte_user;
            mitte_preferences;
        }
END
}

# ---------------------------------------------------------------------------
# wrk

# warm-up, then PAIRS alternating pairs; the median ratio and the medians
sub wrk_series {
    my ($dir, $port, $name, $warm_hooks) = @_;
    wrk_warmup($dir, $port, $name, $warm_hooks);
    my $s = wrk_pairs($dir, $port, name => $name, pairs => $PAIRS,
                      seconds => $DURATION);
    print '  ', ratio_line($s, 1), "\n";
    # the summary, as in proxy.pl: the ratio of the medians
    return $s;
}

# ---------------------------------------------------------------------------
# the hung sends

# the outbox's webhook sends to the hung receiver: [states], {attempts}
sub outbox {
    my ($port, $hport) = @_;
    my $doc = decode_json(get($port, '/mitte-admin/outbox'));
    my (%state, %attempts, %err);
    for my $s (@{ $doc->{sends} }) {
        next unless $s->{channel} eq 'webhook'
            && $s->{target} =~ m{^http://127\.0\.0\.1:$hport/};
        $state{ $s->{state} }++;
        $attempts{ $s->{attempts} }++;
        $err{ $s->{lastError} }++ if defined $s->{lastError};
    }
    return (\%state, \%attempts, \%err);
}

sub describe_outbox {
    my ($state, $attempts, $err) = @_;
    my $fmt = sub {
        my ($h) = @_;
        join(', ', map { "$h->{$_} $_" } sort keys %$h) || 'none';
    };
    return sprintf "states: %s; attempts: %s; last errors: %s",
        $fmt->($state),
        join(', ', map { "$attempts->{$_} x $_" }
                   sort { $a <=> $b } keys %$attempts),
        join(', ', map { "$err->{$_} x \"" . substr($_, 0, 48) . '"' }
                   sort keys %$err) || 'none';
}

sub raise_hung {
    my ($port, $hport) = @_;
    my $c = client($port);
    for my $i (0 .. $SENDS - 1) {
        my $body = encode_json({ webhook => {
            enabled => JSON::PP::true, format => 'json',
            url => "http://127.0.0.1:$hport/hook/hung-$i" } });
        my ($st, undef, $b) = roundtrip($c, request('PUT',
            '/mitte/preferences', { 'X-Mitte-User' => "hung-$i",
                                    'Content-Type' => 'application/json' },
            $body));
        die "PUT /mitte/preferences (hung-$i): $st $b\n" unless $st == 200;
    }
    my $t0 = time;
    for my $i (0 .. $SENDS - 1) {
        for my $k (1 .. $THRESHOLD) {
            my ($st) = roundtrip($c, request('POST', "/fail/down-$i",
                { 'X-Mitte-User' => "hung-$i",
                  'Content-Type' => 'application/json' },
                '{"event":"bench"}'));
            die "POST /fail/down-$i: $st, not 503\n" unless $st == 503;
        }
    }
    close $c->{sock};
    return time - $t0;
}

sub run {
    my ($dir) = @_;
    my ($port, $up, $fail) = free_ports(3);
    my ($rxpid, $hport, $rx) = hung_receiver($dir);
    my ($pid, $log) = start_nginx($dir, nginx_conf(dir => $dir, port => $port,
                                                   upstream => $up,
                                                   failing => $fail,
                                                   pin => $PIN),
                                  port => $port);

    my @summary;
    my $ok = eval {
        printf "wrk -t1 -c%d -d%ds, %d endpoints, %d users, 1 nginx worker "
            . "(also the sender)%s; %d pairs\n", $CONNECTIONS, $DURATION,
            $ENDPOINTS, $USERS,
            $PIN ? ', nginx on CPU 0, wrk on CPU 1' : '', $PAIRS;

        print "reference (no webhook send):\n";
        my $ref = wrk_series($dir, $port, 'ref', 2);
        push @summary, sprintf "proxy ratio before the hung sends: %.3f "
            . "(plain %.0f rps, recorded %.0f rps)", @$ref{qw(ratio plain rec)};
        print "  $summary[-1]\n";

        printf "raising %d ENDPOINT_DOWN (%d x 503 each) for %d users with "
            . "a webhook to the hung receiver (127.0.0.1:%d) ...\n",
            $SENDS, $THRESHOLD, $SENDS, $hport;
        my $raised = raise_hung($port, $hport);
        my $t_raised = time;
        printf "  raised in %.2fs\n", $raised;

        # the sender polls every 200 ms: wait for the sends and connections
        my ($state, $att, $err, $r);
        my $end = time + 5;
        while (1) {
            ($state, $att, $err) = outbox($port, $hport);
            $r = $rx->();
            last if ($state->{pending} // 0) == $SENDS
                && $r->{open} >= $PER_HOST;
            last if time > $end;
            sleep 0.2;
        }
        my $m = metrics($port);
        my $down = $m->{'mitte_notifications_total{type="ENDPOINT_DOWN"}'}
            // 0;
        my $pend = $m->{'mitte_outbox_pending{channel="webhook"}'} // '?';
        printf "  outbox: %d webhook sends to the hung target (%s); "
            . "metrics: %d ENDPOINT_DOWN, mitte_outbox_pending webhook %s\n",
            eval { my $n = 0; $n += $_ for values %$state; $n },
            describe_outbox($state, $att, $err), $down, $pend;
        printf "  hung receiver: %d connections accepted, %d held open, "
            . "%d request bytes read, none answered\n",
            @$r{qw(accepted open bytes)};
        printf "  (the sender caps in-flight sends at %d per webhook host, "
            . "by design: %d in flight, %d waiting in the outbox)\n",
            $PER_HOST, $r->{open}, $SENDS - $r->{open};
        die "ENDPOINT_DOWN raised $down times, not $SENDS\n"
            unless $down == $SENDS;
        die sprintf "the outbox shows %d pending sends to the hung target, "
            . "not %d\n", $state->{pending} // 0, $SENDS
            unless ($state->{pending} // 0) == $SENDS;
        die "the hung receiver holds $r->{open} connections, not $PER_HOST\n"
            unless $r->{open} == $PER_HOST;

        printf "with %d sends to a hung target (%.1fs after raising):\n",
            $SENDS, time - $t_raised;
        my $hung = wrk_series($dir, $port, 'hung', 1);
        my $during = time - $t_raised;
        ($state, $att, $err) = outbox($port, $hport);
        $r = $rx->();
        printf "  after the runs (%.0fs after raising): outbox %s\n",
            $during, describe_outbox($state, $att, $err);
        printf "  hung receiver: %d connections accepted in all, %d held "
            . "open\n", $r->{accepted}, $r->{open};
        die sprintf "after the runs, %d sends pending, not %d\n",
            $state->{pending} // 0, $SENDS
            unless ($state->{pending} // 0) == $SENDS;
        push @summary, sprintf "proxy ratio with %d sends to a hung target: "
            . "%.3f (plain %.0f rps, recorded %.0f rps)", $SENDS,
            @$hung{qw(ratio plain rec)};
        print "  $summary[-1]\n";

        my $eps = metrics($port)->{mitte_endpoints} // 0;
        die "the module holds $eps endpoints, not " . ($ENDPOINTS + $SENDS)
            . "\n" unless $eps == $ENDPOINTS + $SENDS;
        1;
    };
    fail_with_log($@, $log) unless $ok;
    my $t = time;
    stop($pid);
    printf "nginx stopped in %.1fs\n", time - $t;
    stop($rxpid);
    fail_with_log("nginx reported problems\n", $log) if log_problems($log);
    return @summary;
}

# ---------------------------------------------------------------------------

check_nginx_module();
check_wrk();
$PIN = wrk_setup(connections => $CONNECTIONS, pin => $PIN, warn => 1);

my $dir = workdir('mitte-bench-hung-XXXXXX');
my $t0 = time;

my @summary = guarded($dir, sub { run($dir) });
print_summary($t0, @summary);
exit 0;
