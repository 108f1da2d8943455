#!/usr/bin/perl

# Event streams over HTTP/2 (a replay after Last-Event-ID), and when a
# worker shuts down gracefully (reload, quit): every stream ends cleanly,
# HTTP/2 ones with END_STREAM (curl exits 0), and the worker logs no "open
# socket left" alert; a stream asked of a worker that
# is already shutting down (a connection it accepted before the reload)
# opens, says "retry: 3000" and ends at once, so that the client
# reconnects to a worker that stays.

use strict;
use warnings;

use Test::More;
use IO::Socket::INET;
use IO::Select;
use POSIX ();
use Time::HiRes qw(sleep time);
use Mitte::Test qw(:all);

require_module();

my $curl = '/usr/bin/curl';

my $t = Mitte::Test->new(http => <<'END');
    mitte_zone m:4m;
    mitte_sse_heartbeat 60s;

    server {
        listen 127.0.0.1:%%PORT%%;
        listen 127.0.0.1:%%PORT2%% http2;

        client_header_timeout 30s;

        location ~ ^/hooks/(?<slug>[^/]+)$ {
            mitte_endpoint $slug;
            mitte_user $http_x_mitte_user;
            proxy_pass http://%%UPSTREAM%%;
        }
        location = /mitte/events {
            mitte_user $http_x_mitte_user;
            mitte_sse;
        }
        location = /mitte/firehose {
            mitte_sse all;
        }
        location = /mitte/all {
            mitte_stats all;
        }
    }
END
$t->start;

# -- HTTP/2 streams at a reload ---------------------------------------------

SKIP: {
    skip "no $curl", 8 unless -x $curl;

    # the Last-Event-ID header over HTTP/2 too (HPACK, lowercase names),
    # after carol's stream closed (her events are kept for the gap)
    my $w = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                  PeerPort => $t->{port}, Proto => 'tcp')
        or die "connect: $!";
    print {$w} "GET /mitte/events HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        . "X-Mitte-User: carol\r\n\r\n";
    my $head = '';
    my $sel = IO::Select->new($w);
    while (index($head, "\r\n\r\n") < 0 && $sel->can_read(5)) {
        sysread($w, $head, 4096, length $head) or last;
    }
    like($head, qr{^HTTP/1\.1 200 }, 'carol\'s stream opens');
    $t->deliver('carol', '/hooks/h2-replay') for 1 .. 3;
    close $w;
    my $out = `$curl -s --http2-prior-knowledge -N --max-time 2 \\
        -H 'X-Mitte-User: carol' -H 'Last-Event-ID: 0' \\
        http://127.0.0.1:$t->{port2}/mitte/events`;
    my @ids = $out =~ /^id: (\d+)/mg;
    is(scalar @ids, 3, 'HTTP/2: Last-Event-ID 0 replays carol\'s 3 events');

    my $dir = $t->dir;
    my @kids;
    for my $i (1 .. 2) {
        my $pid = fork;
        die "fork: $!" unless defined $pid;
        if ($pid == 0) {
            open STDOUT, '>', "$dir/h2-$i.out";
            open STDERR, '>', '/dev/null';
            exec $curl, '-s', '--http2-prior-knowledge', '-N',
                '--max-time', '20', '-H', 'X-Mitte-User: alice',
                "http://127.0.0.1:$t->{port2}/mitte/events"
                or POSIX::_exit(127);
        }
        push @kids, $pid;
    }

    my $opened = sub {
        return 2 == grep {
            open my $fh, '<', "$dir/h2-$_.out" or return 0;
            local $/;
            my $s = <$fh> // '';
            close $fh;
            $s =~ /retry: 3000/;
        } 1 .. 2;
    };
    my $until = time() + 5;
    sleep 0.05 until $opened->() || time() > $until;
    ok($opened->(), 'two HTTP/2 streams opened');

    $t->deliver('alice', '/hooks/h2-one?status=200');
    sleep 0.3;

    my $t0 = time();
    $t->reload;

    my @status;
    for my $pid (@kids) {
        my $deadline = time() + 10;
        my $r;
        while (($r = waitpid($pid, POSIX::WNOHANG())) == 0
               && time() < $deadline)
        {
            sleep 0.05;
        }
        if ($r == 0) {
            kill 'KILL', $pid;
            waitpid($pid, 0);
            push @status, 'killed';
        } else {
            push @status, $? >> 8;
        }
    }
    is_deeply(\@status, [0, 0],
              'the reload ends both HTTP/2 streams cleanly (curl exits 0)');
    ok(time() - $t0 < 5, 'at once, not after a timeout');

    for my $i (1 .. 2) {
        open my $fh, '<', "$dir/h2-$i.out" or die;
        local $/;
        my $s = <$fh> // '';
        close $fh;
        like($s, qr/event: webhook:delivered\ndata: \{"endpointSlug":"h2-one"/,
             "HTTP/2 stream $i: the event before the end");
    }

    is(scalar(grep { /open socket|aborting/ } $t->error_log_lines), 0,
       'no "open socket left" alert');
}

# -- a stream asked of a worker that is shutting down -------------------------

{
    # accepted by the old workers before the reload, asked after it
    my @socks = map {
        IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $t->port,
                              Proto => 'tcp')
            or die "connect: $!";
    } 1 .. 10;
    sleep 0.3;
    $t->reload(wait => 0);
    sleep 0.3;

    syswrite $_, "GET /mitte/firehose HTTP/1.1\r\nHost: x\r\n\r\n" for @socks;

    my %got = map { ("$_" => '') } @socks;
    my %done;
    my $sel = IO::Select->new(@socks);
    my $until = time() + 5;
    while ($sel->count && time() < $until) {
        for my $s ($sel->can_read(0.2)) {
            my $n = sysread($s, my $buf, 65536);
            if (!$n) {
                $done{"$s"} = 1;
                $sel->remove($s);
                next;
            }
            $got{"$s"} .= $buf;
        }
    }

    is(scalar(grep { /^HTTP\/1\.1 200 / } values %got), 10,
       'the late streams are answered 200');
    is(scalar(grep { /retry: 3000\n\n/ } values %got), 10,
       'with the retry field');
    is(scalar(grep { /\r\n0\r\n\r\n\z/ } values %got), 10,
       'and the last chunk');
    is(scalar(keys %done), 10, 'then closed, so the clients reconnect');
    $t->wait_reloaded;
}

$t->stop;

done_testing();
