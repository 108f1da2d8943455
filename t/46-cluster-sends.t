#!/usr/bin/perl

# Cluster mode: each email or webhook is sent once, by one instance, and
# sent even when the instance that created the notification dies. Two
# nginx instances (2 workers each) on one redis-server of the test's own,
# the user's webhook on a receiver both can reach:
# - a notification (ENDPOINT_DOWN, made on A): one webhook request, past
#   the standby's takeover delay; both outboxes list the send as sent;
#   Redis marks it done;
# - A killed (master and workers, SIGKILL) while its first attempt hangs
#   at the receiver: B's standby sends it once A's claim has expired,
#   with the same webhook-id; one successful delivery for that id;
# - Redis stopped: a notification is still sent (once, by its instance).

use strict;
use warnings;

use Test::More;
use Time::HiRes qw(sleep time);
use Mitte::Test qw(:all);
use Mitte::Redis;
use Mitte::Receiver;

require_module();

plan skip_all => Mitte::Redis->missing if Mitte::Redis->missing;

# the standby's delay (ngx_http_mitte_send.h) and a claim's life with
# mitte_webhook_timeout 2s (ngx_http_mitte_send.c: the timeout + 15 s)
my $TAKEOVER = 10;
my $CLAIM = 2 + 15;

my $ALLOW = [qr/mitte: redis/, qr/mitte: cluster/];
my $true = json_decode('true');

my $redis = Mitte::Redis->new;
$redis->start;

# the first request of each webhook-id to /kill hangs (A's attempt, cut
# when A dies); everything else is answered 200
my $rx = Mitte::Receiver->new(script => sub {
    my ($req) = @_;
    return { hang => 1 } if $req->{path} eq '/kill' && $req->{nth_id} == 1;
    return { status => 200, body => 'ok' };
});

my $conf = "    mitte_zone m:8m;\n"
    . '    mitte_redis ' . $redis->addr . " prefix=ms: timeout=1s;\n"
    . <<'END';
    mitte_endpoint_down threshold=5 reset=1h;
    mitte_webhook_allow 127.0.0.1;
    mitte_webhook_timeout 2s;

    server {
        listen 127.0.0.1:%%PORT%%;

        location ~ ^/hooks/(?<slug>[^/]+)$ {
            mitte_endpoint $slug;
            mitte_user $http_x_mitte_user;
            proxy_pass http://%%UPSTREAM%%;
        }

        location /mitte/ {
            mitte_user $http_x_mitte_user;
            location = /mitte/preferences   { mitte_preferences; }
            location   /mitte/notifications { mitte_notifications; }
        }
        location = /mitte/all { mitte_stats all; }
        location /mitte-admin/ { mitte_admin; }
    }
END

my $ia = Mitte::Test->new(http => $conf, workers => 2, allow => $ALLOW);
my $ib = Mitte::Test->new(http => $conf, workers => 2, allow => $ALLOW);
$ia->start;
$ib->start;

sub up {
    my ($t) = @_;
    return wait_until(sub {
        my (undef, $m) = $t->metrics;
        ($m->{mitte_redis_up} // 0) == 1 ? 1 : 0;
    }, 20);
}

ok(up($ia), 'A: connected');
ok(up($ib), 'B: connected');

sub counts {
    my ($t, $slug) = @_;
    my ($r, $doc) = $t->json(GET => '/mitte/all');
    my $ep = find_endpoint($doc, $slug);
    return (0, 0) unless $ep;
    return hours_total($ep);
}

# the ENDPOINT_DOWN notifications of USER on instance T
sub downs {
    my ($t, $user) = @_;
    my ($r, $doc) = $t->json(GET => '/mitte/notifications?limit=100',
                             headers => { 'X-Mitte-User' => $user });
    return () unless ref $doc eq 'HASH';
    return grep { $_->{type} eq 'ENDPOINT_DOWN' }
        @{ $doc->{notifications} || [] };
}

# the outbox's webhook sends of notification ID on instance T
sub sends_of {
    my ($t, $id) = @_;
    my ($r, $doc) = $t->json(GET => '/mitte-admin/outbox');
    return () unless ref $doc eq 'HASH';
    return grep { $_->{notificationId} eq $id
                  && $_->{channel} eq 'webhook' } @{ $doc->{sends} || [] };
}

# webhook preferences of USER (on both, as an operator would not need to:
# the relay brings them too) to PATH at the receiver
sub hook {
    my ($user, $path) = @_;
    for my $t ($ia, $ib) {
        my ($r) = $t->json(PUT => '/mitte/preferences',
                           headers => { 'X-Mitte-User' => $user },
                           content => { webhook => {
                               enabled => $true, url => $rx->url($path),
                               format => 'json' } });
        is($r->{status}, 200, "webhook preferences of $user");
    }
}

# five failures on instance T: ENDPOINT_DOWN, created by T
sub fail5 {
    my ($t, $user, $slug) = @_;
    for my $i (1 .. 5) {
        $t->post_as($user, "/hooks/$slug?status=503");
        wait_until(sub { (counts($t, $slug))[0] >= $i }, 5);
    }
}

sub requests_for {
    my ($id) = @_;
    return $rx->requests(sub { ($_[0]{headers}{'webhook-id'} // '') eq $id });
}


# ---- one notification, one webhook --------------------------------------

{
    hook('una', '/one');
    fail5($ia, 'una', 'one-ep');
    my $t0 = time();

    my $both = wait_until(sub {
        my @a = downs($ia, 'una');
        my @b = downs($ib, 'una');
        @a && @b ? [$a[0], $b[0]] : undef;
    }, 10);
    ok($both, 'ENDPOINT_DOWN on A and B');
    my $id = $both ? $both->[0]{id} : 'none';
    is($both && $both->[1]{id}, $id, 'with one id');

    my @got = $rx->wait_requests(1, 10, sub { $_[0]{path} eq '/one' });
    is(scalar @got, 1, 'the webhook arrived');
    is($got[0]{headers}{'webhook-id'}, $id, 'webhook-id is the '
       . 'notification\'s id') if @got;

    my $settled = wait_until(sub {
        my @a = sends_of($ia, $id);
        my @b = sends_of($ib, $id);
        @a == 1 && @b == 1 && $a[0]{state} eq 'sent'
            && $b[0]{state} eq 'sent' ? [$a[0], $b[0]] : undef;
    }, 10);
    ok($settled, 'sent in both outboxes');
    if ($settled) {
        is($settled->[0]{attempts}, 1, 'A: one attempt');
        is($settled->[1]{attempts}, 1, 'B: the attempt A made');
    } else {
        diag(explain([sends_of($ia, $id)], [sends_of($ib, $id)]));
    }

    my $key = "ms:{u:una}:send:$id:webhook";
    is($redis->cli('GET', $key), 'done:sent', 'Redis: the send is done');
    my $ttl = $redis->cli('TTL', $key);
    ok($ttl > 86400, "and kept for days ($ttl s)");

    # past B's takeover delay: B's standby must not send it again
    my $left = $t0 + $TAKEOVER + 3 - time();
    sleep $left if $left > 0;
    my @all = $rx->requests(sub { $_[0]{path} eq '/one' });
    is(scalar @all, 1, 'one webhook request, past the takeover delay')
        or diag(explain(\@all));
}


# ---- Redis stopped: sends still go --------------------------------------

{
    hook('ria', '/down');
    $redis->stop;
    wait_until(sub {
        my (undef, $m) = $ia->metrics;
        ($m->{mitte_redis_up} // 1) == 0;
    }, 10);

    fail5($ia, 'ria', 'down-ep');
    wait_until(sub { scalar downs($ia, 'ria') }, 10);
    my @a = downs($ia, 'ria');
    is(scalar @a, 1, 'A: ENDPOINT_DOWN with Redis away');

    my @got = $rx->wait_requests(1, 10, sub { $_[0]{path} eq '/down' });
    is(scalar @got, 1, 'its webhook was sent');
    is($got[0]{headers}{'webhook-id'}, $a[0]{id}, 'with its id')
        if @got && @a;
    ok(wait_until(sub {
        my @x = sends_of($ia, @a ? $a[0]{id} : 'none');
        @x && $x[0]{state} eq 'sent';
    }, 5), 'A: sent in its outbox');

    $redis->start;
    ok(up($ia) && up($ib), 'both connected again');
    sleep 1;
    is(scalar $rx->requests(sub { $_[0]{path} eq '/down' }), 1,
       'once, Redis back');
}


# ---- the creator dies before it sends: the standby sends ----------------

{
    hook('kim', '/kill');
    fail5($ia, 'kim', 'kill-ep');

    my $both = wait_until(sub {
        my @a = downs($ia, 'kim');
        my @b = downs($ib, 'kim');
        @a && @b ? [$a[0], $b[0]] : undef;
    }, 10);
    ok($both, 'ENDPOINT_DOWN on A and B');
    my $id = $both ? $both->[0]{id} : 'none';

    # A's attempt, held by the receiver
    my @first = $rx->wait_requests(1, 10,
                                   sub { $_[0]{path} eq '/kill' });
    is(scalar @first, 1, 'A\'s attempt reached the receiver');
    is($first[0]{headers}{'webhook-id'}, $id, 'with the notification\'s id')
        if @first;
    my $claim = $redis->cli('GET', "ms:{u:kim}:send:$id:webhook");
    like($claim, qr/:\d+$/, "claimed by an instance ($claim)");
    my $pttl = $redis->cli('PTTL', "ms:{u:kim}:send:$id:webhook");
    ok($pttl > ($TAKEOVER + 2) * 1000, "for longer than the takeover delay "
       . "($pttl ms)");

    my $t0 = time();
    $ia->kill9;
    ok(!$ia->pid, 'A killed (master and workers)');

    my @b = sends_of($ib, $id);
    is(scalar @b, 1, 'B holds the send');
    is($b[0]{state}, 'pending', 'pending on B (a standby)') if @b;
    is($b[0]{attempts}, 0, 'with no attempt of its own') if @b;

    # B: after its takeover delay and A's claim's end
    my @two = $rx->wait_requests(2, $CLAIM + $TAKEOVER + 20,
                                 sub { $_[0]{path} eq '/kill' });
    my $took = time() - $t0;
    is(scalar @two, 2, 'B sent it');
    diag(sprintf 'B sent it %.1f s after A died', $took);
    # A might still have been sending: B waits for its claim to end
    # (A claimed it just before its attempt reached the receiver)
    ok(@two == 2 && $two[1]{ta} >= $first[0]{ta} + $CLAIM - 1,
       'not before A\'s claim ended')
        or diag(sprintf 'B\'s attempt %.1f s after A\'s',
                @two == 2 ? $two[1]{ta} - $first[0]{ta} : -1);
    ok($took < $CLAIM + $TAKEOVER + 15, 'within the claim\'s life and the '
       . 'takeover delay');
    is($two[1]{headers}{'webhook-id'}, $id, 'with the same webhook-id')
        if @two == 2;

    my $sent = wait_until(sub {
        my @x = sends_of($ib, $id);
        @x && $x[0]{state} eq 'sent' ? $x[0] : undef;
    }, 10);
    ok($sent, 'B: sent in its outbox');
    is($redis->cli('GET', "ms:{u:kim}:send:$id:webhook"), 'done:sent',
       'Redis: done');

    sleep 2;
    my @all = requests_for($id);
    is(scalar @all, 2, 'two requests for the id: A\'s cut, B\'s answered');
    is(scalar(grep { $_->{nth_id} >= 2 } @all), 1,
       'one successful delivery');
}


$ia->check_error_log;
$ib->stop;
$rx->stop;
$redis->stop;

done_testing();
