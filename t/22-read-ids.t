#!/usr/bin/perl

# POST /mitte/notifications/read cannot slow other tenants (issue 11,
# defect 4). The ids are parsed and sorted before the zone's lock is taken,
# their number is capped (1,000: 400 invalid_field past it, nothing
# marked), and under the lock each unread notification is looked up in the
# sorted ids. Checked here:
# - the cap: 1,000 ids are taken, 1,001 are refused, 21,000 empty strings
#   (63 KB, the body of the report) are refused;
# - duplicates and ids that name nothing are ignored, the right ones marked;
# - another tenant's delivery latency: its p99 over sequential deliveries,
#   alone and while two clients send the worst body there is (21,000 empty
#   strings) for a user with 200 unread notifications as fast as they can,
#   on connections the other worker answers (what reaches bob is then the
#   zone's lock, not his own worker busy with their bodies).
#   The bound is generous (4x the p99 alone, plus 10 ms) as the machine is
#   shared; before the fix the lock was held 15-18 ms a request and the p99
#   rose about 9x.

use strict;
use warnings;

use Test::More;
use HTTP::Tiny;
use IO::Socket::INET;
use POSIX ();
use Time::HiRes qw(time sleep);
use Mitte::Test qw(:all);

require_module();

my $t = Mitte::Test->new(all => '/mitte-admin/endpoints', workers => 2,
                         http => <<'END');
    mitte_zone m:4m;
    mitte_endpoint_down threshold=1;
    mitte_quota free 1000000;

    server {
        listen 127.0.0.1:%%PORT%%;
        access_log off;
        keepalive_requests 100000;
        # which worker answered: bob's connection and the attackers' are
        # kept on different workers (see under())
        add_header X-Worker $pid always;

        location ~ ^/hooks/(?<slug>[^/]+)$ {
            mitte_endpoint $slug;
            mitte_user $http_x_mitte_user;
            proxy_pass http://%%UPSTREAM%%;
        }
        location /mitte/ {
            mitte_user $http_x_mitte_user;
            location /mitte/notifications { mitte_notifications; }
        }
        location /mitte-admin/ {
            mitte_admin;
        }
    }
END

$t->start;

# 200 notifications for alice (threshold=1: DOWN at each failure after a
# success, RECOVERED at each success after it), all unread
my $ua = HTTP::Tiny->new(keep_alive => 1, timeout => 15);
my $base = 'http://127.0.0.1:' . $t->port;
for my $i (1 .. 200) {
    my $s = $i % 2 ? 503 : 200;
    $ua->post("$base/hooks/a?status=$s", { headers => {
        'X-Mitte-User' => 'alice' }, content => '{}' });
}
$t->wait_recorded('a', 200);

sub notes {
    my ($user, $q) = @_;
    my ($r, $doc) = $t->json(GET => '/mitte/notifications' . ($q // ''),
                             headers => { 'X-Mitte-User' => $user });
    return $doc || {};
}

sub mark {
    my ($user, $body) = @_;
    return $t->json(POST => '/mitte/notifications/read',
                    headers => { 'X-Mitte-User' => $user,
                                 'Content-Type' => 'application/json' },
                    content => $body);
}

my $deadline = time() + 5;
while (notes('alice')->{unread} < 200 && time() < $deadline) {
    sleep 0.05;
}
is(notes('alice')->{unread}, 200, 'alice has 200 unread notifications');

my @ids = map { $_->{id} } @{ notes('alice', '?limit=100')->{notifications} };

my $empty21k = '{"ids":[' . join(',', ('""') x 21000) . ']}';

# ---- another tenant's latency ------------------------------------------------

# a keep-alive connection that sends each request in one write (no
# delayed ACK between head and body) and reads one answer
sub conn {
    return IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                 PeerPort => $t->port, Proto => 'tcp',
                                 Timeout => 15);
}

sub roundtrip {
    my ($s, $path, $user, $body) = @_;
    my $req = "POST $path HTTP/1.1\r\nHost: x\r\nX-Mitte-User: $user\r\n"
        . 'Content-Length: ' . length($body) . "\r\n\r\n" . $body;
    my $off = 0;
    while ($off < length $req) {
        my $n = syswrite $s, $req, length($req) - $off, $off;
        return 0 unless $n;
        $off += $n;
    }
    my $in = '';
    while (1) {
        my $n = sysread $s, $in, 65536, length $in;
        return 0 unless $n;
        my $e = index $in, "\r\n\r\n";
        next if $e < 0;
        my ($len) = substr($in, 0, $e) =~ /Content-Length: (\d+)/i;
        next if length($in) < $e + 4 + ($len // 0);
        my ($status) = $in =~ m{^HTTP/1\.1 (\d+)};
        my ($worker) = substr($in, 0, $e) =~ /X-Worker: (\d+)/i;
        return wantarray ? ($status, $worker // 0) : $status;
    }
}

# a connection answered by a worker other than $avoid, and its worker's
# pid; empty if none in 200 tries 10 ms apart (a busy worker takes new
# connections only when it is back in epoll_wait: the idle one takes them)
sub conn_off {
    my ($avoid, $user, $path, $body) = @_;
    for (1 .. 200) {
        my $c = conn() or next;
        my ($st, $w) = roundtrip($c, $path, $user, $body);
        return ($c, $w) if $st && $w != $avoid;
        close $c;
        sleep 0.01;
    }
    return;
}

# p99 (ms) of N sequential deliveries of bob (on the connection $s)
sub p99 {
    my ($n, $s) = @_;
    $s //= conn() or return undef;
    my @ms;
    roundtrip($s, '/hooks/b', 'bob', '{}');
    for (1 .. $n) {
        my $t0 = time();
        my $st = roundtrip($s, '/hooks/b', 'bob', '{}');
        if (!$st) {
            # keepalive_requests reached: a new connection, not timed
            $s = conn() or return undef;
            $t0 = time();
            $st = roundtrip($s, '/hooks/b', 'bob', '{}');
        }
        push @ms, (time() - $t0) * 1000;
        return undef unless $st == 200;
    }
    @ms = sort { $a <=> $b } @ms;
    return $ms[int(@ms * 0.99)];
}

# two clients sending BODY for USER as fast as they can, for at most 60s,
# on connections of a worker other than $avoid (both opened before either
# starts: once one keeps that worker busy, new connections go to bob's)
sub attackers {
    my ($user, $body, $avoid) = @_;
    my @go = ($avoid, $user, '/mitte/notifications/read', $body);
    my @conns = map { (conn_off(@go))[0] } 1 .. 2;
    my @pids;
    for my $k (0 .. 1) {
        my $pid = fork;
        die "fork: $!" unless defined $pid;
        if ($pid == 0) {
            my $end = time() + 60;
            my $c = $conns[$k];
            # no connection off bob's worker: exit 3 (else killed)
            POSIX::_exit(3) unless $c;
            while ($c && time() < $end) {
                roundtrip($c, '/mitte/notifications/read', $user, $body)
                    or ($c) = conn_off(@go);
            }
            POSIX::_exit(0);
        }
        push @pids, $pid;
    }
    close $_ for grep { defined } @conns;
    return @pids;
}

# the worst bodies: 21,000 empty ids (refused now), and 1,000 distinct ids
# that could name a notification but name none (the most work the lock may
# see: every unread notification looked up, none marked)
# an id that cannot name a notification here: sequence 2^31 + N
sub fake_id {
    my ($n) = @_;
    return sprintf '%012x%08x', 0, 0x80000000 + $n;
}

my $none1k = json_encode({ ids => [map { fake_id($_) } 1 .. 1000] });
ok(length($none1k) < 65536, 'the 1,000 ids are under 64 KiB');

my $alone = p99(2000);
ok(defined $alone, 'bob alone: every delivery 200');

# bob's p99 while the body is sent for USER, as fast as two clients can.
# They send on the other worker: what reaches bob is the zone's lock (and
# the machine's two cores), not a turn of his own worker's event loop
# spent on their bodies (without that, a round found bob on an attacker's
# worker three times in four, at 15-40 ms, for either user)
sub under {
    my ($user, $body) = @_;
    my $s = conn() or return undef;
    my ($st, $bob) = roundtrip($s, '/hooks/b', 'bob', '{}');
    return undef unless $st && $st == 200 && $bob;
    my @pids = attackers($user, $body, $bob);
    sleep 0.5;
    my $p = p99(1000, $s);
    kill 'KILL', @pids;
    my $attacked = 1;
    for (@pids) {
        waitpid($_, 0);
        $attacked = 0 if ($? >> 8) == 3;
    }
    return $attacked ? $p : undef;
}

# each body against a control: the same body for carol, who has no
# notification: the same parsing, no work under the lock. The machine is
# shared and its noise is larger than the effect of parsing: three rounds
# each, alternating, and the lowest p99 of each kind compared (a lock held
# long raises every round; noise does not), with a generous bound: 3x the
# control plus 10 ms. A machine busy for a while (CI13 read 20.4 ms in one
# round of carol's) gets up to three more rounds of each before the
# comparison counts.
for my $case ([$empty21k, '21,000 empty ids'], [$none1k, '1,000 ids']) {
    my ($body, $what) = @$case;
    my (@control, @attack, $control, $attack);
    for my $round (1 .. 6) {
        push @control, under('carol', $body) // 1e9;
        push @attack, under('alice', $body) // 1e9;
        ($control) = sort { $a <=> $b } @control;
        ($attack) = sort { $a <=> $b } @attack;
        last if $round >= 3 && $attack <= 3 * $control + 10;
    }
    ok($control < 1e9 && $attack < 1e9,
       "$what: every delivery of bob 200, the attackers on the other worker");
    diag(sprintf 'bob p99 %.2f ms alone; %s: %s ms for carol, '
         . '%s ms for alice (200 unread)', $alone, $what,
         join('/', map { sprintf '%.1f', $_ } @control),
         join('/', map { sprintf '%.1f', $_ } @attack));
    ok($attack <= 3 * $control + 10,
       "$what: bob's p99 while alice sends them within 3x carol's + 10 ms");
}

is(notes('alice')->{unread}, 200, 'the attacks marked nothing read');

# ---- the cap ---------------------------------------------------------------

ok(length($empty21k) < 65536, 'the body of the report is under 64 KiB');

my ($r, $doc) = mark('alice', $empty21k);
error_ok($r, $doc, 400, 'invalid_field', '21,000 empty ids');
like($doc->{message} // '', qr/1000/, '21,000 ids: the message names the cap');

# 1,001 ids, the first of them a real one
my @over = ($ids[0], map { fake_id($_) } 1 .. 1000);
($r, $doc) = mark('alice', json_encode({ ids => \@over }));
error_ok($r, $doc, 400, 'invalid_field', '1,001 ids');
is(notes('alice')->{unread}, 200, '1,001 ids: nothing marked read');

# 1,000 ids: two real ones, repeated, and 996 that name nothing
my @at = (@ids[0, 1], @ids[0, 1], map { fake_id($_) } 1 .. 996);
($r, $doc) = mark('alice', json_encode({ ids => \@at }));
json_answer_ok($r, $doc, 200, '1,000 ids');
is($doc->{unread}, 198, '1,000 ids: the two real ones marked read');
my %read = map { $_->{id} => $_->{read} }
    @{ notes('alice', '?limit=100')->{notifications} };
ok($read{$ids[0]} && $read{$ids[1]} && !$read{$ids[2]},
   'the ids named are read, the next is not');

# ids that are not strings are still refused
($r, $doc) = mark('alice', '{"ids":[1]}');
error_ok($r, $doc, 400, 'invalid_field', 'a number in ids');

$t->stop;
done_testing();
