#!/usr/bin/perl

# Event stream subscribers that stop reading, many at a time, with a short
# heartbeat, while deliveries pour in: each is dropped (its backlog passes
# 64 KiB) and its connection closed, and the worker survives however the
# drop comes about: from the drain after a delivery, or from a heartbeat
# that found events not yet fanned out (a drop there must not leave the
# heartbeat working on a freed request).
#
# One worker, so that the deliveries' log phase, the drain it posts and
# the subscribers' heartbeat timers all meet in the same event loop.

use strict;
use warnings;

use Test::More;
use Time::HiRes qw(sleep time);
use Mitte::Test qw(:all);
use Mitte::SSE qw(:all);

require_module();

my $ROUNDS = $ENV{MITTE_STUCK_ROUNDS} || 8;
my $STUCK = 60;           # subscribers that stop reading, per round
my $DELIVERIES = 400;     # per round, about 140 kB of events

my $t = Mitte::Test->new(
    workers     => 1,
    connections => 2048,
    http        => <<'END');
    mitte_zone m:8m;
    mitte_quota free 1000000;

    server {
        listen 127.0.0.1:%%PORT%%;

        location ~ ^/hooks/(?<slug>[^/]+)$ {
            mitte_endpoint $slug;
            mitte_endpoint_name $upstream_http_x_endpoint_name;
            mitte_user $http_x_mitte_user;
            proxy_pass http://%%UPSTREAM%%;
        }
        location = /status {
            stub_status;
        }
    }

    # small send buffers: the backlog builds up in the worker soon
    server {
        listen 127.0.0.1:%%PORT2%% sndbuf=4k;

        location = /mitte/events {
            mitte_user $http_x_mitte_user;
            mitte_sse_heartbeat 100ms;
            mitte_sse;
        }
    }
END

$t->start;

my ($worker) = $t->worker_pids;
my $a0 = stub_active($t);
my $name = 'N' x 120;
my $t0 = time();
my ($dropped, $closed, $alive) = (0, 1, 1);

for my $round (1 .. $ROUNDS) {
    my @stuck;
    for my $i (1 .. $STUCK) {
        push @stuck, Mitte::SSE->open($t, '/mitte/events',
                                      port => $t->{port2}, rcvbuf => 4096,
                                      head => 0,
                                      headers => { 'X-Mitte-User' => 'u' });
        # heartbeats out of phase: some fall due in any turn of the loop
        sleep 0.002;
    }

    my @out = parallel(4, sub {
        my ($i, $fh) = @_;
        my $ua = HTTP::Tiny->new(keep_alive => 0, timeout => 10);
        for my $k (1 .. $DELIVERIES / 4) {
            my $r = $ua->request('POST',
                "http://127.0.0.1:${\ $t->port}/hooks/s-$i?name=$name",
                { headers => { 'X-Mitte-User' => 'u' }, content => '{}' });
            print {$fh} "$r->{status}\n";
        }
    }, timeout => 60);
    my $ok = grep { $_ eq '200' } map { @$_ } @out;

    my $n;
    my $deadline = time() + 3;
    while (time() < $deadline) {
        $n = grep { /event stream subscriber dropped/ } $t->error_log_lines;
        last if $n >= $round * $STUCK;
        sleep 0.05;
    }
    $dropped = $n;

    my $held = grep { worker_of($t, $_) } @stuck;
    $closed = 0 if $held;
    $_->close for @stuck;

    my ($w) = $t->worker_pids;
    if (!defined $w || $w != $worker || $ok != $DELIVERIES) {
        $alive = 0;
        diag("round $round: $ok of $DELIVERIES deliveries answered 200,"
             . ' worker ' . ($w // 'none') . " (was $worker)");
        last;
    }
    diag("round $round: $n dropped in all, $held still held")
        if $ENV{MITTE_VERBOSE};
    last if time() - $t0 > 15;
}

ok($alive, 'the worker survived every round (no crash, no respawn)');
ok(!grep({ /exited on signal/ } $t->error_log_lines),
   'no worker exited on a signal')
    or diag(join "\n", grep { /exited on signal/ } $t->error_log_lines);
ok($dropped > 0 && $dropped % $STUCK == 0,
   "every subscriber that stopped reading was dropped ($dropped)");
ok($closed, 'and its connection closed at once');

my $a1;
my $deadline = time() + 5;
while (time() < $deadline) {
    $a1 = stub_active($t);
    last if defined $a1 && $a1 <= $a0;
    sleep 0.05;
}
is($a1, $a0, "active connections back to $a0");

$t->stop;

done_testing();
