#!/usr/bin/perl

# Cluster mode, two nginx instances (2 workers each) on one redis-server of
# the test's own:
# - a delivery on A shows in the statistics and the operator API of B;
#   the counts wait for mitte_redis's flush= (3s on an instance D), the
#   events do not;
# - webhook:delivered reaches an event stream on B, with the cluster's
#   ids, in order; the delay from A's answer to B's frame is measured;
#   Last-Event-ID on A goes on from B's ids;
# - five failures spread over A and B make one ENDPOINT_DOWN, with one id,
#   listed on both; a success on either makes one ENDPOINT_RECOVERED; each
#   is sent to the user's webhook once, with the receiver reachable from
#   both instances;
# - a notification marked read on B is read on A;
# - an anomaly found by a manual sweep on A and on B is created once; the
#   timer's sweeps run once an interval cluster-wide (one leader won, the
#   other lost);
# - a flush whose reply is lost (Redis asleep past the timeout) is sent
#   again and counted once;
# - Redis stopped: deliveries still answered and recorded in the zone,
#   the backlog is sent when Redis is back (counted in Redis once);
# - stream entries not understood are counted and skipped, the good
#   lines of a flush entry applied;
# - a graceful quit sends the worker's last deltas, those of requests
#   that end after it began included;
# - every key carries the prefix and a TTL (or is one of the capped ones).

use strict;
use warnings;

use Test::More;
use POSIX qw(fmod);
use Time::HiRes qw(sleep time);
use IO::Socket::INET;
use Mitte::Test qw(:all);
use Mitte::Redis;
use Mitte::SSE qw(:all);
use Mitte::Receiver;

require_module();

plan skip_all => Mitte::Redis->missing if Mitte::Redis->missing;

my $ALLOW = [qr/mitte: redis/];
my $true = json_decode('true');

my $redis = Mitte::Redis->new;
$redis->start;

my $rx = Mitte::Receiver->new(script => sub {
    return { status => 200, body => 'ok' };
});

my $conf = "    mitte_zone m:8m;\n"
    . '    mitte_redis ' . $redis->addr . " prefix=mc: timeout=1s;\n"
    . <<'END';
    mitte_endpoint_down threshold=5 reset=1h;
    mitte_anomaly interval=2s cooldown=1h;
    mitte_webhook_allow 127.0.0.1;
    mitte_webhook_timeout 2s;

    server {
        listen 127.0.0.1:%%PORT%%;

        location ~ ^/hooks/(?<slug>[^/]+)$ {
            mitte_endpoint $slug;
            mitte_endpoint_name $upstream_http_x_endpoint_name;
            mitte_user $http_x_mitte_user;
            proxy_pass http://%%UPSTREAM%%;
        }

        location /mitte/ {
            mitte_user $http_x_mitte_user;
            location = /mitte/events        { mitte_sse; }
            location = /mitte/preferences   { mitte_preferences; }
            location   /mitte/notifications { mitte_notifications; }
            location = /mitte/stats         { mitte_stats; }
        }
        location = /mitte/all { mitte_stats all; }
        location /mitte-admin/ { mitte_admin; }
    }
END

my $ia = Mitte::Test->new(http => $conf, workers => 2, allow => $ALLOW);
my $ib = Mitte::Test->new(http => $conf, workers => 2, allow => $ALLOW);
$ia->start;
$ib->start;


sub metrics_of {
    my ($t) = @_;
    my (undef, $m) = $t->metrics;
    return $m;
}

sub up {
    my ($t) = @_;
    return wait_until(sub {
        my $m = metrics_of($t);
        ($m->{mitte_redis_up} // 0) == 1 ? 1 : 0;
    }, 20);
}

ok(up($ia), 'A: connected');
ok(up($ib), 'B: connected');

# the requests and failures of SLUG as instance T's "all" statistics show
sub counts {
    my ($t, $slug) = @_;
    my ($r, $doc) = $t->json(GET => '/mitte/all');
    my $ep = find_endpoint($doc, $slug);
    return (0, 0) unless $ep;
    return hours_total($ep);
}

sub notes_of {
    my ($t, $user) = @_;
    my ($r, $doc) = $t->json(GET => '/mitte/notifications?limit=100',
                             headers => { 'X-Mitte-User' => $user });
    return ref $doc eq 'HASH' ? @{ $doc->{notifications} || [] } : ();
}


# ---- statistics ------------------------------------------------------------

{
    for (1 .. 7) {
        $ia->post_as('sam', '/hooks/shared?status=200');
    }
    for (1 .. 3) {
        $ib->post_as('sam', '/hooks/shared?status=500');
    }

    my $both = wait_until(sub {
        my ($ra, $fa) = counts($ia, 'shared');
        my ($rb, $fb) = counts($ib, 'shared');
        $ra == 10 && $rb == 10 && $fa == 3 && $fb == 3;
    });
    ok($both, 'deliveries on A and B: 10 requests, 3 failures on both');
    my ($ra, $fa) = counts($ia, 'shared');
    my ($rb, $fb) = counts($ib, 'shared');
    diag("A: $ra/$fa, B: $rb/$fb") unless $both;

    my ($r, $doc) = $ib->json(GET => '/mitte/stats',
                              headers => { 'X-Mitte-User' => 'sam' });
    my $ep = find_endpoint($doc, 'shared');
    is($ep && $ep->{user}, 'sam', 'B: the endpoint is the user\'s');

    ($r, $doc) = $ib->json(GET => '/mitte-admin/endpoints');
    $ep = find_endpoint($doc, 'shared');
    is($ep && (hours_total($ep))[0], 10, 'B: operator API shows 10');

    my $hours = $redis->cli('HGETALL', 'mc:{e:shared}:h');
    like($hours, qr/\d+r\n10\n/, 'Redis holds the 10 requests');
}


# ---- names as they are, through a flush's lines ----------------------------

{
    # UTF-8 and punctuation in the endpoint's name (from the upstream's
    # header) and in the user: the flush's lines carry them as they are
    my $name = "Zahlung\xc2\xb7caf\xc3\xa9\xe2\x9c\x93:1,2|x";
    my $user = "o'brien+ops\@example.org";
    $ia->post_as($user, "/hooks/named?status=200&name=$name");
    $ia->post_as($user, "/hooks/named?status=500&name=$name");

    my $ep;
    my $got = wait_until(sub {
        my ($r, $doc) = $ib->json(GET => '/mitte/all');
        $ep = find_endpoint($doc, 'named');
        $ep && (hours_total($ep))[0] == 2;
    });
    ok($got, 'B: the named endpoint with its 2 requests');
    my $seen = $ep ? $ep->{name} // '' : '';
    utf8::encode($seen);
    is($seen, $name, 'B: its name byte for byte');
    is($ep && $ep->{user}, $user, 'B: its user as given');
    is((hours_total($ep // {}))[1], 1, 'B: its failure');
    is($redis->cli('HGET', 'mc:{e:named}:m', 'n'), $name,
       'Redis holds the name as it is');
}


# ---- one line an endpoint an instance, whatever its workers -------------

{
    # 40 deliveries within a flush interval, each on a connection of its
    # own (both of A's workers take some): the instance's deltas are
    # gathered in the zone, so the stream has one line for the endpoint
    # (one a worker before)
    for (1 .. 40) {
        $ia->post_as('sam', '/hooks/gathered?status=' . ($_ % 4 ? 200 : 503));
    }
    ok(wait_until(sub { (counts($ib, 'gathered'))[0] == 40 }, 10),
       'B: the 40 deliveries');
    my $stream = $redis->cli('XRANGE', 'mc:{events}', '-', '+');
    my $lines = () = $stream =~ /^Pgathered\x1f/mg;
    is($lines, 1, 'one line of the endpoint in the stream for A\'s two '
       . 'workers');
    my $h = $redis->cli('HGETALL', 'mc:{e:gathered}:h');
    ok($h =~ /\d+r\n40(\n|$)/ && $h =~ /\d+f\n10(\n|$)/,
       'Redis: 40 requests, 10 failures') or diag($h);
}


# ---- entries of the stream that are not understood -----------------------

my $refused_a;

{
    $ia->post_as('bob', '/hooks/relay-bad?status=200');
    ok(wait_until(sub { (counts($ib, 'relay-bad'))[0] == 1 }, 10),
       'relay-bad: a delivery on A shows on B');
    my $refused0 = metrics_of($ib)->{mitte_redis_entries_refused_total};
    my $seq = $redis->cli('GET', 'mc:{events}:seq');
    chomp $seq;
    my $now_ms = int(time() * 1000);
    my $hour = int(time() / 3600);
    my $us = "\x1f";
    # a flush entry: a line of an unknown kind, a line cut short, a number
    # too long, then a good line (77 requests this hour)
    my $text = "$seq\n" . "Xjunk\n" . "Prelay-bad${us}bob\n"
        . "Prelay-bad${us}bob${us}${us}" . ('9' x 25) . "${us}0${us}200"
        . "${us}$now_ms${us}$hour:1:0\n"
        . "Prelay-bad${us}bob${us}${us}0${us}0${us}200${us}$now_ms"
        . "${us}$hour:77:0\n";
    $redis->cli('XADD', 'mc:{events}', "$seq-*", 'f', $text);
    # an entry that is not JSON, and one of a kind this version ignores
    $redis->cli('XADD', 'mc:{events}', "$seq-*", 'j', '{not json');
    $redis->cli('XADD', 'mc:{events}', "$seq-*", 'j', '{"k":"z"}');
    ok(wait_until(sub { (counts($ib, 'relay-bad'))[0] == 77 }, 10),
       'the good line of a flush entry with bad ones is applied on B')
        or diag('B has ' . (counts($ib, 'relay-bad'))[0]);
    ok(wait_until(sub {
           metrics_of($ib)->{mitte_redis_entries_refused_total}
               == $refused0 + 2 }, 10),
       'the flush entry and the entry that is not JSON are counted '
       . 'refused, the newer kind is not');
    ok(wait_until(sub { grep { /flush entry of the stream has lines not/ }
                            $ib->error_log_lines }, 5),
       'the bad flush entry is logged');
    # the relay reads on: the next delivery on A shows on B
    $ia->post_as('bob', '/hooks/relay-after?status=200');
    ok(wait_until(sub { (counts($ib, 'relay-after'))[0] == 1 }, 10),
       'the relay goes on after them');
    $refused_a = metrics_of($ia)->{mitte_redis_entries_refused_total};
    is($refused_a, 2, 'A refused the same two entries');
}


# ---- events across instances -----------------------------------------------

{
    my $s = Mitte::SSE->open($ib, '/mitte/events',
                             headers => { 'X-Mitte-User' => 'eve' });
    is($s->status, 200, 'B: a stream of eve');
    my $other = Mitte::SSE->open($ib, '/mitte/events',
                                 headers => { 'X-Mitte-User' => 'mallory' });
    is($other->status, 200, 'B: a stream of mallory');

    # the stream is told to A before A's deliveries are kept for it
    sleep 0.3;

    # one at a time: the frame is read as soon as it comes
    my (@sent, @delay);
    for my $i (1 .. 40) {
        my $t0 = time();
        $ia->post_as('eve', "/hooks/ev-$i?status=" . ($i % 5 ? 200 : 502));
        push @sent, $t0;
        $s->wait_events($i, 5);
    }

    my @ev = grep { $_->{event} eq 'webhook:delivered' } $s->events;
    is(scalar @ev, 40, 'B: 40 webhook:delivered from A');
    is_deeply([map { $_->{json}{endpointSlug} } @ev],
              [map { "ev-$_" } 1 .. 40], 'in the order recorded');
    my @ids = map { $_->{id} } @ev;
    is_deeply(\@ids, [sort { $a <=> $b } @ids], 'ids grow');

    for my $i (0 .. $#ev) {
        push @delay, ($ev[$i]{at} - $sent[$i]) * 1000;
    }

    # per-user isolation across instances: mallory's stream on B got
    # none of eve's deliveries on A
    $other->wait_events(1, 0.5);
    is(scalar(grep { $_->{event} eq 'webhook:delivered' } $other->events),
       0, "B: mallory's stream has none of eve's events");
    $other->close;
    my @d = sort { $a <=> $b } @delay;
    diag(sprintf 'A to B: p50 %.1f ms, p99 %.1f ms, max %.1f ms '
         . '(from the request\'s start)', $d[int(@d * 0.5)],
         $d[int(@d * 0.99)], $d[-1]) if @d;
    $s->close;

    # Last-Event-ID on A, from an id B gave
    my $from = $ids[29];
    my $s2 = Mitte::SSE->open($ia, '/mitte/events',
                              headers => { 'X-Mitte-User' => 'eve',
                                           'Last-Event-ID' => $from });
    $s2->wait_events(10, 5);
    my @re = grep { $_->{event} eq 'webhook:delivered' } $s2->events;
    is_deeply([map { $_->{id} } @re], [@ids[30 .. 39]],
              'A replays what followed B\'s id, with the same ids');
    $s2->close;
}


# ---- the counts wait for flush=, the events do not --------------------------

{
    (my $cd = $conf) =~ s/timeout=1s;/timeout=1s flush=3s;/ or die;
    my $id = Mitte::Test->new(http => $cd, workers => 1, allow => $ALLOW);
    $id->start;
    ok(up($id), 'D (flush=3s): connected');
    my $s = Mitte::SSE->open($ib, '/mitte/events',
                             headers => { 'X-Mitte-User' => 'fay' });
    is($s->status, 200, 'B: a stream of fay');

    # D keeps fay's events once its relay has read that the stream is
    # open on B (it reads the stream's history first): a first delivery
    # until one reaches B
    my $delivered = sub {
        my ($slug) = @_;
        return grep { $_->{event} eq 'webhook:delivered'
                      && $_->{json}{endpointSlug} eq $slug } $s->events;
    };
    my $warm = 0;
    for (1 .. 20) {
        $id->post_as('fay', '/hooks/slow-warm?status=200');
        $warm++;
        last if $s->wait_for(sub { $delivered->('slow-warm') }, 0.5);
    }
    ok(scalar($delivered->('slow-warm')),
       'B: D\'s deliveries of fay reach the stream');
    # their counts flushed: the next delivery starts D's batch anew
    ok(wait_until(sub { (counts($ib, 'slow-warm'))[0] == $warm }, 8),
       "B: their counts came ($warm)");
    sleep 0.1;

    my $t0 = time();
    $id->post_as('fay', '/hooks/slow-counts?status=200');
    $s->wait_for(sub { $delivered->('slow-counts') }, 2);
    my @ev = grep { $_->{event} eq 'webhook:delivered'
                    && $_->{json}{endpointSlug} eq 'slow-counts' }
             $s->events;
    is(scalar @ev, 1, 'B: the event of a delivery on D came');
    ok(@ev && $ev[0]{at} - $t0 < 0.5,
       sprintf 'without waiting for the counts (%.0f ms)',
       @ev ? ($ev[0]{at} - $t0) * 1000 : -1);
    is((counts($ib, 'slow-counts'))[0], 0,
       'B: the counts are not there yet');
    ok(wait_until(sub { (counts($ib, 'slow-counts'))[0] == 1 }, 8),
       'B: the counts came');
    my $took = time() - $t0;
    ok($took > 2 && $took < 5,
       sprintf 'after about flush=3s (%.1f s)', $took);
    $s->close;
    $id->stop;
}


# ---- one ENDPOINT_DOWN, one ENDPOINT_RECOVERED, one webhook each ---------

{
    my $doc = { webhook => { enabled => $true, url => $rx->url('/dn'),
                             format => 'json' } };
    for my $t ($ia, $ib) {
        my ($r) = $t->json(PUT => '/mitte/preferences',
                           headers => { 'X-Mitte-User' => 'dana' },
                           content => $doc);
        is($r->{status}, 200, 'webhook preferences of dana');
    }

    for my $i (1 .. 5) {
        my $t = $i % 2 ? $ia : $ib;
        $t->post_as('dana', '/hooks/flaky?status=503');
        # the log phase of each, in order
        wait_until(sub { (counts($ia, 'flaky'))[0] >= $i
                         || (counts($ib, 'flaky'))[0] >= $i }, 5);
    }

    my $down = wait_until(sub {
        my @a = grep { $_->{type} eq 'ENDPOINT_DOWN' } notes_of($ia, 'dana');
        my @b = grep { $_->{type} eq 'ENDPOINT_DOWN' } notes_of($ib, 'dana');
        @a && @b ? [\@a, \@b] : undef;
    });
    ok($down, 'ENDPOINT_DOWN listed on A and on B');

    sleep 1;
    my @a = grep { $_->{type} eq 'ENDPOINT_DOWN' } notes_of($ia, 'dana');
    my @b = grep { $_->{type} eq 'ENDPOINT_DOWN' } notes_of($ib, 'dana');
    is(scalar @a, 1, 'one ENDPOINT_DOWN on A');
    is(scalar @b, 1, 'one ENDPOINT_DOWN on B');
    is($a[0]{id}, $b[0]{id}, 'with the same id') if @a && @b;
    like($a[0]{message} // '', qr/5 consecutive/, 'after 5 failures')
        if @a;

    $ib->post_as('dana', '/hooks/flaky?status=200');

    my $rec = wait_until(sub {
        my @x = grep { $_->{type} eq 'ENDPOINT_RECOVERED' }
            notes_of($ia, 'dana');
        @x ? \@x : undef;
    });
    ok($rec, 'ENDPOINT_RECOVERED listed on A after a success on B');

    my @got = $rx->wait_requests(2, 10);
    sleep 1.5;
    my @dn = grep { $_->{path} eq '/dn' } $rx->requests;
    is(scalar @dn, 2, 'two webhooks: one each, though both instances '
       . 'could send')
        or diag(join "\n", map { $_->{body} } @dn);

    # marked read on B, read on A
    my ($r, $d) = $ib->json(POST => '/mitte/notifications/read',
                            headers => { 'X-Mitte-User' => 'dana' },
                            content => { all => $true });
    is($r->{status}, 200, 'B: all marked read');
    my $read = wait_until(sub {
        my ($r2, $d2) = $ia->json(GET => '/mitte/notifications',
                                  headers => { 'X-Mitte-User' => 'dana' });
        ref $d2 eq 'HASH' && $d2->{unread} == 0;
    }, 5);
    ok($read, 'A: none unread');
}


# ---- the sweep: once cluster-wide --------------------------------------

{
    # an anomaly, imported into both zones as a backfill would be
    my $c = int(time() / 3600);
    my @hours = map {
        { hour => iso_hour($c - $_), requests => 100, failures => 1 }
    } 1 .. 6;
    push @hours, { hour => $c * 3600 + 5, requests => 100,
                   failures => 90 };
    for my $t ($ia, $ib) {
        my ($r) = $t->json(PUT => '/mitte-admin/endpoints/spiky',
                           content => { name => 'Spiky', user => 'ann',
                                        hours => \@hours });
        is($r->{status}, 200, 'import of spiky');
    }

    my ($ra) = $ia->json(POST => '/mitte-admin/sweep');
    my ($rb) = $ib->json(POST => '/mitte-admin/sweep');
    is($ra->{status}, 200, 'A: manual sweep');
    is($rb->{status}, 200, 'B: manual sweep');

    my $seen = wait_until(sub {
        my @a = grep { $_->{type} eq 'ANOMALY_DETECTED' } notes_of($ia, 'ann');
        my @b = grep { $_->{type} eq 'ANOMALY_DETECTED' } notes_of($ib, 'ann');
        @a && @b;
    });
    ok($seen, 'ANOMALY_DETECTED on both');
    sleep 1;
    my @a = grep { $_->{type} eq 'ANOMALY_DETECTED' } notes_of($ia, 'ann');
    my @b = grep { $_->{type} eq 'ANOMALY_DETECTED' } notes_of($ib, 'ann');
    is(scalar @a, 1, 'one anomaly on A, though both swept');
    is(scalar @b, 1, 'one anomaly on B');

    # the timer: interval 2s, at its multiples on both instances; one of
    # the two leads each interval. Sampled half-way between two of them.
    sleep(2 - fmod(time() - 0.5, 2) + 0.001);
    my $m0a = metrics_of($ia);
    my $m0b = metrics_of($ib);
    sleep 6;
    my $ma = metrics_of($ia);
    my $mb = metrics_of($ib);
    my $won = ($ma->{'mitte_redis_sweeps_total{leader="won"}'}
               - $m0a->{'mitte_redis_sweeps_total{leader="won"}'})
            + ($mb->{'mitte_redis_sweeps_total{leader="won"}'}
               - $m0b->{'mitte_redis_sweeps_total{leader="won"}'});
    my $lost = ($ma->{'mitte_redis_sweeps_total{leader="lost"}'}
                - $m0a->{'mitte_redis_sweeps_total{leader="lost"}'})
             + ($mb->{'mitte_redis_sweeps_total{leader="lost"}'}
                - $m0b->{'mitte_redis_sweeps_total{leader="lost"}'});
    is($won, 3, 'timer sweeps: 3 intervals of 2 s in 6 s, 3 led');
    is($lost, $won, 'the other instance stood aside each time');
}


# ---- a flush whose reply is lost is counted once ---------------------------

{
    my $n = 0;
    for (1 .. 20) {
        $n++ if $ia->post_as('sam', '/hooks/once?status=200')->{status}
                == 200;
    }
    ok(wait_until(sub { (counts($ib, 'once'))[0] == $n }), "B: $n");

    # 30 more, then Redis asleep past the timeout: their flush goes (flush=
    # 1s after the first of them), its reply does not (timeout=1s)
    my %st;
    for (1 .. 30) {
        $st{ $ia->post_as('sam', '/hooks/once?status=200')->{status} }++;
    }
    my $pid = $redis->cli_bg('DEBUG', 'SLEEP', '2.5');
    waitpid($pid, 0);
    $n += $st{200} // 0;
    is($st{200} // 0, 30, '30 more passed') or diag(join ' ', %st);

    ok(wait_until(sub { (counts($ib, 'once'))[0] >= $n }, 15),
       "B: $n after Redis woke");
    sleep 1;
    is((counts($ib, 'once'))[0], $n, "B: $n, not more");
    my $h = $redis->cli('HGETALL', 'mc:{e:once}:h');
    like($h, qr/r\n$n\n/, "Redis: $n, the retried flush counted once")
        or diag($h);
    my $m = metrics_of($ia);
    ok($m->{mitte_redis_flush_errors_total} >= 1,
       'A: the lost flush is counted as an error');
}


# ---- Redis stopped: the backlog ------------------------------------------

{
    $redis->stop;
    for (1 .. 25) {
        my $r = $ia->post_as('sam', '/hooks/away?status=200');
        is($r->{status}, 200, 'answered with Redis away') if $_ == 1;
    }
    my $m = wait_until(sub {
        my $x = metrics_of($ia);
        ($x->{mitte_redis_backlog_endpoints} // 0) >= 1 ? $x : undef;
    }, 5);
    ok($m, 'A: the backlog holds the endpoint');
    is((counts($ia, 'away'))[0], 25, 'A: the zone counted 25');

    $redis->start;
    ok(up($ia) && up($ib), 'both connected again');
    my $h = wait_until(sub {
        my $x = $redis->cli('HGETALL', 'mc:{e:away}:h');
        $x =~ /r\n25\n/ ? $x : undef;
    }, 15);
    ok($h, 'Redis: the 25 recorded while it was away');
    ok(wait_until(sub { (counts($ib, 'away'))[0] == 25 }, 10),
       'B: 25 as well');
}


# ---- FLUSHALL: the connections stay, the data set is new ----------------

{
    my $before = $redis->cli('HGETALL', 'mc:{e:shared}:h');
    like($before, qr/r\n10\n/, 'Redis holds shared\'s 10 before FLUSHALL');
    $redis->cli('FLUSHALL');

    # worker 0 of each instance asks for the epoch every 5 s: a new one,
    # and its zone is written back
    my $h = wait_until(sub {
        my $x = $redis->cli('HGETALL', 'mc:{e:shared}:h');
        $x =~ /r\n10\n/ ? $x : undef;
    }, 20);
    ok($h, 'after FLUSHALL: the zones refilled Redis (shared: 10)');

    # and the cluster goes on: a delivery on A reaches B
    $ia->post_as('sam', '/hooks/after-flush?status=200');
    ok(wait_until(sub { (counts($ib, 'after-flush'))[0] == 1 }, 10),
       'after FLUSHALL: a delivery on A shows on B');
    my $m = metrics_of($ia);
    is($m->{'mitte_redis_entries_refused_total'}, $refused_a,
       'no stream entry refused but the two bad ones');
}


# ---- a graceful quit: the last deliveries reach the cluster --------------

# a request still running when the quit comes: its socket, the answer
# read later
sub slow_request {
    my ($t, $user, $path) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                  PeerPort => $t->port, Proto => 'tcp',
                                  Timeout => 10) or die "connect: $!";
    print $s "POST $path HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        . "X-Mitte-User: $user\r\nContent-Type: application/json\r\n"
        . "Content-Length: 2\r\nConnection: close\r\n\r\n{}";
    return $s;
}

sub status_of {
    my ($s) = @_;
    my $in = read_to_eof($s, 10);
    return ($in =~ m{^HTTP/1\.\d (\d{3})}) ? $1 : 0;
}

{
    # an upstream that answers 0.8 s late, on a third instance C
    my $slow = Mitte::Receiver->new(script => sub {
        return { status => 200, body => 'ok', delay => 0.8 };
    });
    my $loc = "        location ~ ^/slow/(?<slug>[^/]+)\$ {\n"
        . "            mitte_endpoint \$slug;\n"
        . "            mitte_user \$http_x_mitte_user;\n"
        . '            proxy_pass http://127.0.0.1:' . $slow->port . ";\n"
        . "        }\n";
    (my $cc = $conf) =~ s{^(        location /mitte/ \{)}{$loc$1}m;
    my $ic = Mitte::Test->new(http => $cc, workers => 2, allow => $ALLOW);
    $ic->start;
    ok(up($ic), 'C: connected');

    # two deliveries still running when the quit comes, twenty done just
    # before it (the last ones still in their worker's batch)
    my @running = map { slow_request($ic, 'quin', '/slow/quit-slow') } 1, 2;
    sleep 0.2;
    $ic->post_as('quin', '/hooks/quit-fast?status=200') for 1 .. 20;
    my $t0 = time();
    kill 'QUIT', $ic->pid;
    is_deeply([map { status_of($_) } @running], [200, 200],
              'the deliveries running at the quit were answered');
    is($ic->quit, 0, 'C: quits cleanly with deliveries running');
    my $took = time() - $t0;
    ok($took < 5, sprintf 'the quit took %.2f s (the upstream: 0.8 s)',
       $took);

    # the batch sent as the shutdown began, and the flush of what ended
    # after it: on B through the stream
    ok(wait_until(sub { (counts($ib, 'quit-fast'))[0] == 20 }, 10),
       'the 20 deliveries just before the quit reach B');
    ok(wait_until(sub { (counts($ib, 'quit-slow'))[0] == 2 }, 10),
       'the 2 deliveries that ended after the quit began reach B')
        or diag('B has ' . (counts($ib, 'quit-slow'))[0]);
    $ic->check_error_log;
    $slow->stop;
}


# ---- keys ---------------------------------------------------------------

{
    my @keys = $redis->keys_like('*', 0);
    my @other = grep { !/^mc:/ } @keys;
    is_deeply(\@other, [], 'every key carries the prefix');
    my %capped = map { $_ => 1 } ('mc:{events}', 'mc:{events}:seq',
                                  'mc:{notes}:seq', 'mc:{meta}:epoch');
    for my $k (grep { !$capped{$_} } @keys) {
        # -1: no expiry (-2: expired meanwhile, 0: within the second)
        my $ttl = $redis->cli('TTL', $k);
        ok($ttl != -1, "$k expires ($ttl s)");
    }
}

$ia->stop;
$ib->stop;
$rx->stop;
$redis->stop;

done_testing();
