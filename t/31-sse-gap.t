#!/usr/bin/perl

# Which deliveries' events the replay buffer keeps (docs/events.md): those
# of a user with an event stream open, or one closed less than 15 minutes
# ago, so that a client reconnecting with Last-Event-ID within that gap
# gets every event of it, in order; every user's while a "mitte_sse all"
# stream is open (or closed within the gap). A user who has had no stream
# has none kept: a first stream with Last-Event-ID 0 replays nothing of
# hers. Notifications are always kept. 2 workers (reuseport), so streams
# and deliveries meet in different workers too.

use strict;
use warnings;

use Test::More;
use Mitte::Test qw(:all);
use Mitte::SSE qw(:all);

require_module();

my $t = Mitte::Test->new(http => <<'END');
    mitte_zone m:4m;
    mitte_sse_heartbeat 60s;

    server {
        listen 127.0.0.1:%%PORT%% reuseport;

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

sub stream {
    my ($user, %h) = @_;
    my $s = Mitte::SSE->open($t, '/mitte/events',
                             headers => { 'X-Mitte-User' => $user, %h });
    is($s->status, 200, "$user: the stream opens");
    return $s;
}

# the events a new stream of $user replays after $last, within 1.5 s
sub replayed {
    my ($user, $last, $want) = @_;
    my $s = stream($user, 'Last-Event-ID' => $last);
    $s->wait_events($want, 5) if $want;
    $s->drain(0.5);
    my @ev = $s->events;
    $s->close;
    return @ev;
}

sub slugs {
    return map { $_->{json} ? $_->{json}{endpointSlug} : '?' } @_;
}

# -- a user who never had a stream: nothing kept -------------------------------

$t->deliver('nora', "/hooks/nora-$_") for 1 .. 3;
my @ev = replayed('nora', 0, 0);
is(scalar @ev, 0, 'nora had no stream: none of her 3 deliveries is kept');

# -- a stream open: its user's events kept, others' not ------------------------

my $a = stream('alice');
$t->deliver('alice', '/hooks/alice-1');
ok($a->wait_events(1, 5), 'alice: the live event');
my ($first) = $a->events;
$t->deliver('bob', '/hooks/bob-1');

# -- the stream closes; a reconnect within the gap gets every event of it ------

$a->close;
$t->deliver('alice', "/hooks/alice-gap-$_") for 1 .. 3;
@ev = replayed('alice', $first->{id}, 3);
is_deeply([slugs(@ev)], [map { "alice-gap-$_" } 1 .. 3],
          'alice reconnects: the 3 events of her gap, in order');
ok(!grep({ $_->{id} <= $first->{id} } @ev), 'none she had already');

# no $request_id in this configuration: the id is made for the event only
is(scalar(grep { ($_->{json}{requestId} // '') =~ /^[0-9a-f]{32}$/ }
           $first, @ev), 4, 'each event has a request id of 32 hex digits');
my %rid = map { $_->{json}{requestId} => 1 } $first, @ev;
is(scalar keys %rid, 4, 'four different ids');

@ev = replayed('bob', 0, 0);
is(scalar @ev, 0, 'bob had no stream: his delivery is not kept');

# -- notifications are kept whoever watches ------------------------------------

$t->deliver('olga', '/hooks/olga-down?status=503') for 1 .. 5;
@ev = replayed('olga', 0, 1);
is_deeply([map { $_->{event} } @ev], ['notification:created'],
          'olga had no stream: her ENDPOINT_DOWN is kept, not the deliveries');
is($ev[0]{json}{type}, 'ENDPOINT_DOWN', 'the notification');

# olga's stream just closed: her events are kept from now on, for the gap
$t->deliver('olga', '/hooks/olga-after');
@ev = replayed('olga', $ev[0]{id}, 1);
is_deeply([slugs(@ev)], ['olga-after'],
          'olga, after her stream closed: her delivery kept');

# -- "mitte_sse all": every user's events --------------------------------------

my $f = Mitte::SSE->open($t, '/mitte/firehose');
is($f->status, 200, 'the firehose opens');
$t->deliver('dave', '/hooks/dave-1');
ok($f->wait_events(1, 5), 'the firehose has dave\'s event live');
$f->close;
$t->deliver('erin', '/hooks/erin-1');

@ev = replayed('dave', 0, 1);
is_deeply([slugs(@ev)], ['dave-1'],
          'dave had no stream, but the firehose did: kept');
@ev = replayed('erin', 0, 1);
is_deeply([slugs(@ev)], ['erin-1'],
          'erin: kept within the gap after the firehose closed');

$t->stop;
done_testing();
