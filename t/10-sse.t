#!/usr/bin/perl

# The event stream (mitte_sse), on a real nginx with 2 workers (reuseport,
# so both hold streams): the answer's head and opening; webhook:delivered
# after every delivery (success, failure, dead upstream) with every field;
# notification:created for ENDPOINT_DOWN; streams scoped to their user,
# "mitte_sse all" sees all; hundreds of parallel deliveries reach streams on
# both workers exactly once, in order; replay after Last-Event-ID (header
# and query, larger than the 64 KiB backlog too) while deliveries go on,
# and from id 0 (everything buffered); the heartbeat; 401, 405, HEAD; a
# subscriber that stops reading is dropped and closed, and memory does not
# grow with what it misses; 1,000 streams opened and dropped, 5 times,
# leave memory and connections as they were; a reload closes the streams
# and keeps the replay buffer (and a new mitte_sse_replay replays nothing
# that was not recorded); graceful shutdown closes the streams.
#
# MITTE_VERBOSE=1 prints the measurements (memory, timings) as diag.
# MITTE_SANITIZED=1 (make test-sanitize) skips the memory figures.

use strict;
use warnings;

use Test::More;
use Time::HiRes qw(sleep time);
use Mitte::Test qw(:all);
use Mitte::SSE qw(:all);

# ASan keeps freed memory in quarantine and maps shadow memory: the workers'
# resident size says nothing about leaks there (the plain run checks it)
my $NO_RSS = 'memory figures under ASan (MITTE_SANITIZED)';

require_module();

my $HTTP = <<'END';
    mitte_zone m:16m;
    # the deliveries of this file stay well within the quota
    mitte_quota free 1000000;

    log_format mitte_rid '$pid $request_id $status';

    server {
        # reuseport: the kernel spreads connections over the workers, so
        # that both hold streams and proxy deliveries
        listen 127.0.0.1:%%PORT%% reuseport;

        location ~ ^/hooks/(?<slug>[^/]+)$ {
            mitte_endpoint $slug;
            mitte_endpoint_name $upstream_http_x_endpoint_name;
            mitte_user $http_x_mitte_user;
            # the client sees the $request_id the event must carry
            add_header X-Request-Id $request_id always;
            access_log %%DIR%%/rid.log mitte_rid;
            proxy_pass http://%%UPSTREAM%%;
        }
        location ~ ^/dead/(?<slug>[^/]+)$ {
            mitte_endpoint $slug;
            mitte_user $http_x_mitte_user;
            add_header X-Request-Id $request_id always;
            proxy_pass http://%%DEAD%%;
        }

        location = /mitte/events {
            mitte_user $http_x_mitte_user;
            mitte_sse;
        }
        location = /mitte/beat {
            mitte_user $http_x_mitte_user;
            mitte_sse_heartbeat 1s;
            mitte_sse;
        }
        location = /mitte/firehose {
            mitte_sse all;
        }
        location = /mitte/notifications {
            mitte_user $http_x_mitte_user;
            mitte_notifications;
        }
        location = /mitte/all {
            mitte_stats all;
        }
        location = /status {
            stub_status;
        }
    }

    # a small send buffer, for the subscriber that stops reading
    server {
        listen 127.0.0.1:%%PORT2%% sndbuf=4k;

        location = /mitte/events {
            mitte_user $http_x_mitte_user;
            mitte_sse;
        }
    }
END

my $t = Mitte::Test->new(
    workers     => 2,
    connections => 4096,
    main        => "worker_rlimit_nofile 10000;\n",
    allow       => [
        # the dead upstream
        qr/connect\(\) failed \(111: Connection refused\) while connecting/,
    ],
    http        => $HTTP,
);

$t->start;

my $T0 = time();

sub stream {
    my ($user, %opt) = @_;
    my $path = delete $opt{path} || '/mitte/events';
    my %h = %{ delete $opt{headers} || {} };
    $h{'X-Mitte-User'} = $user if defined $user;
    return Mitte::SSE->open($t, $path, headers => \%h, %opt);
}

sub firehose {
    return Mitte::SSE->open($t, '/mitte/firehose', @_);
}

# a stream is open and has its opening frame
sub opened_ok {
    my ($s, $label) = @_;
    my $ok = is($s->status, 200, "$label: 200");
    $ok &&= $s->wait_for(sub { scalar $s->frames }, 5);
    return ok($ok, "$label: open") || diag($s->head // 'no head');
}

# a delivery: (response, request id seen by the client)
sub hook {
    my ($user, $path, %opt) = @_;
    my $method = delete $opt{method} || 'POST';
    my $r = $t->request($method, $path,
                        headers => { 'X-Mitte-User' => $user },
                        content => '{"event":"test"}');
    return ($r, $r->{headers}{'x-request-id'} // '');
}

my @DELIVERED_KEYS = sort qw(endpointSlug endpointName status success
                             durationMs method requestId timestamp);
my @NOTE_KEYS = sort qw(id type title message endpointSlug timestamp);

# check_delivered(EVENT, LABEL, %want): the webhook:delivered event and
# every field of its data; want: slug, name, status, success, method, rid,
# since (unix time before the delivery), until (after it)
sub check_delivered {
    my ($e, $label, %w) = @_;
    return fail("$label: no event") unless $e;
    my $d = $e->{json};
    my @bad;

    push @bad, "event is '" . ($e->{event} // '') . "'"
        unless ($e->{event} // '') eq 'webhook:delivered';
    push @bad, "id '" . ($e->{id} // '') . "' is not decimal"
        unless ($e->{id} // '') =~ /^[0-9]+$/;
    if (ref $d ne 'HASH') {
        push @bad, "data is not a JSON object: " . ($e->{data} // '');
        ok(0, "$label: webhook:delivered") or diag(join "\n", @bad);
        return 0;
    }
    # types first: comparisons turn numbers into strings
    push @bad, 'status is not a number' unless is_number($d->{status});
    push @bad, 'durationMs is not a number'
        unless is_number($d->{durationMs});
    push @bad, 'success is not a boolean'
        unless JSON::PP::is_bool($d->{success});
    for my $k (qw(endpointSlug endpointName method requestId timestamp)) {
        push @bad, "$k is not a string"
            if !defined $d->{$k} || ref $d->{$k} || is_number($d->{$k});
    }
    my @keys = sort keys %$d;
    push @bad, "keys are @keys" unless "@keys" eq "@DELIVERED_KEYS";

    push @bad, "endpointSlug $d->{endpointSlug}, not $w{slug}"
        if ($d->{endpointSlug} // '') ne $w{slug};
    push @bad, "endpointName '$d->{endpointName}', not '$w{name}'"
        if ($d->{endpointName} // '') ne $w{name};
    push @bad, "status $d->{status}, not $w{status}"
        if ($d->{status} // -1) != $w{status};
    push @bad, "success " . ($d->{success} ? 'true' : 'false')
        . ", not " . ($w{success} ? 'true' : 'false')
        if !!$d->{success} != !!$w{success};
    push @bad, "method $d->{method}, not $w{method}"
        if ($d->{method} // '') ne $w{method};
    push @bad, "requestId '$d->{requestId}' is not 32 hex digits"
        unless ($d->{requestId} // '') =~ /^[0-9a-f]{32}$/;
    push @bad, "requestId $d->{requestId}, not \$request_id $w{rid}"
        if ($d->{requestId} // '') ne $w{rid};
    my $ts = iso_parse($d->{timestamp});
    push @bad, "timestamp '$d->{timestamp}' is not ISO-8601 with ms"
        unless defined $ts;
    push @bad, "timestamp $d->{timestamp} is not the time of the delivery"
        if defined $ts && ($ts < $w{since} - 1 || $ts > $w{until} + 1);
    push @bad, "durationMs $d->{durationMs} is not a duration"
        if ($d->{durationMs} // -1) < 0
           || ($d->{durationMs} // 0) > ($w{until} - $w{since}) * 1000 + 1000;

    my $ok = ok(!@bad, "$label: webhook:delivered, every field");
    diag(join("\n", @bad) . "\nevent: id $e->{id}, data $e->{data}")
        unless $ok;
    return $ok;
}

# the events of a stream after id AFTER (decimal ids)
sub after {
    my ($after, @events) = @_;
    return grep { $_->{id} =~ /^\d+$/ && $_->{id} > $after } @events;
}

sub strictly_increasing {
    my (@ids) = @_;
    for my $i (1 .. $#ids) {
        return 0 unless $ids[$i] > $ids[$i - 1];
    }
    return 1;
}

sub worker_rss {
    return rss_kb($t->worker_pids);
}

# -- refusals ----------------------------------------------------------------

{
    my ($r, $doc) = $t->json(GET => '/mitte/events');
    error_ok($r, $doc, 401, 'unauthorized', 'no user');

    ($r, $doc) = $t->json(POST => '/mitte/events',
                          headers => { 'X-Mitte-User' => 'alice' },
                          content => '{}');
    error_ok($r, $doc, 405, 'method_not_allowed', 'POST');
    like($r->{headers}{allow} // '', qr/\bGET\b/, 'POST: Allow names GET');

    my $s = stream(undef);
    is($s->status, 401, 'raw stream without a user: 401');
    $s->close;

    $r = $t->request('HEAD', '/mitte/events',
                     headers => { 'X-Mitte-User' => 'alice' });
    is($r->{status}, 200, 'HEAD: 200');
    is(content_type($r), 'text/event-stream', 'HEAD: text/event-stream');
}

# -- the answer's head, the opening ------------------------------------------

# the heartbeat stream of a user who gets no events, checked later
my $hb = stream('hb-user', path => '/mitte/beat');
my $hb_t0 = time();

my $A = stream('alice');
my $B = stream('bob');
my $F = firehose();

opened_ok($A, 'alice stream');
opened_ok($B, 'bob stream');
opened_ok($F, 'mitte_sse all without a user');
opened_ok($hb, 'heartbeat stream');

is($A->header('content-type'), 'text/event-stream',
   'Content-Type: text/event-stream');
is($A->header('cache-control'), 'no-cache', 'Cache-Control: no-cache');
is($A->header('x-accel-buffering'), 'no', 'X-Accel-Buffering: no');
{
    my ($first) = $A->frames;
    is($first && $first->{retry}, '3000', 'the stream opens with retry: 3000');
    ok($first && !defined $first->{data}, 'the opening frame is no event');
    is(scalar $A->events, 0, 'no event before any delivery');
}

# -- webhook:delivered: success, failure, dead upstream ------------------------

my @cases = (
    ['POST', '/hooks/ep-ok?status=200&name=stripe-prod', 'ep-ok',
     'stripe-prod', 200, 1, 'success'],
    ['PUT', '/hooks/ep-fail?status=503&name=billing.eu', 'ep-fail',
     'billing.eu', 503, 0, 'failure (503)'],
    ['POST', '/hooks/ep-fail?status=301&name=billing.eu', 'ep-fail',
     'billing.eu', 301, 0, 'failure (3xx)'],
    ['POST', '/hooks/ep-ok?status=204&name=stripe-prod', 'ep-ok',
     'stripe-prod', 204, 1, 'success (204)'],
    ['PATCH', '/dead/ep-dead', 'ep-dead', 'ep-dead', 502, 0,
     'dead upstream (502)'],
);

my $last_id = 0;
for my $c (@cases) {
    my ($method, $path, $slug, $name, $status, $success, $label) = @$c;
    my $n = scalar $A->events;
    my $since = time();
    my ($r, $rid) = hook('alice', $path, method => $method);
    my $until = time();
    is($r->{status}, $status, "$label: answered $status");
    like($rid, qr/^[0-9a-f]{32}$/, "$label: the client saw the \$request_id");

    ok($A->wait_events($n + 1, 5), "$label: an event on alice's stream");
    my $e = ($A->events)[$n];
    check_delivered($e, $label, slug => $slug, name => $name,
                    status => $status, success => $success, method => $method,
                    rid => $rid, since => $since, until => $until);
    ok($e && $e->{id} > $last_id, "$label: the id grows");
    $last_id = $e->{id} if $e;
    sleep 0.05;
    is(scalar $A->events, $n + 1, "$label: exactly one event");
}

# -- notification:created: ENDPOINT_DOWN after the 5th failure ----------------

{
    my $n0 = scalar $A->events;
    my @rid;
    for my $i (1 .. 4) {
        my ($r, $rid) = hook('alice', '/hooks/ep-down?status=500&name=Orders');
        push @rid, $rid;
        $A->wait_events($n0 + $i, 5);
    }
    $A->drain(0.2);
    my @ev = ($A->events)[$n0 .. $#{ $A->{events} }];
    is(scalar(grep { $_->{event} eq 'notification:created' } @ev), 0,
       'no notification after 4 failures');
    is(scalar @ev, 4, '4 failures: 4 events');

    my $since = time();
    my ($r, $rid) = hook('alice', '/hooks/ep-down?status=500&name=Orders');
    my $until = time();
    ok($A->wait_events($n0 + 6, 5), '5th failure: two events');
    my ($del, $note) = ($A->events)[$n0 + 4, $n0 + 5];
    check_delivered($del, '5th failure', slug => 'ep-down', name => 'Orders',
                    status => 500, success => 0, method => 'POST',
                    rid => $rid, since => $since, until => $until);
    is($note && $note->{event}, 'notification:created',
       'then notification:created');

    my $d = $note && $note->{json};
    if (ok(ref $d eq 'HASH', 'notification data is a JSON object')) {
        my @keys = sort keys %$d;
        is("@keys", "@NOTE_KEYS", 'notification: its keys');
        ok(!ref $d->{id} && defined $d->{id} && length $d->{id},
           'notification: an id');
        is($d->{type}, 'ENDPOINT_DOWN', 'notification: type ENDPOINT_DOWN');
        is($d->{title}, 'Endpoint down', 'notification: title');
        like($d->{message} // '', qr/Orders/,
             'notification: the message names the endpoint');
        like($d->{message} // '', qr/\b5\b/,
             'notification: the message counts the failures');
        is($d->{endpointSlug}, 'ep-down', 'notification: endpointSlug');
        my $ts = iso_parse($d->{timestamp});
        ok(defined $ts && $ts >= $since - 1 && $ts <= $until + 1,
           'notification: timestamp, ISO-8601 with ms')
            or diag("timestamp " . ($d->{timestamp} // 'none'));
        like($note->{id}, qr/^\d+$/, 'notification: a decimal event id');
        ok($note->{id} > $del->{id}, 'after the delivery\'s event');

        my ($nr, $doc) = $t->json(GET => '/mitte/notifications',
                                  headers => { 'X-Mitte-User' => 'alice' });
        my $stored = $doc && $doc->{notifications}
            && $doc->{notifications}[0];
        is($stored && $stored->{id}, $d->{id},
           'the id is that of the stored notification');
        is($stored && $stored->{message}, $d->{message},
           'the message is that of the stored notification');
    }

    # the streak goes on: no second ENDPOINT_DOWN; a success recovers
    hook('alice', '/hooks/ep-down?status=500&name=Orders');
    ok($A->wait_events($n0 + 7, 5), '6th failure: an event');
    hook('alice', '/hooks/ep-down?status=200&name=Orders');
    ok($A->wait_events($n0 + 9, 5), 'a success: two events');
    $A->drain(0.2);
    my @types = map { $_->{event} eq 'notification:created'
                      ? $_->{json}{type} : $_->{event} }
        ($A->events)[$n0 + 6 .. $#{ $A->{events} }];
    is_deeply(\@types, ['webhook:delivered', 'webhook:delivered',
                        'ENDPOINT_RECOVERED'],
              '6th failure: no second ENDPOINT_DOWN; a success:'
              . ' ENDPOINT_RECOVERED');
}

# -- scoping: bob's events are bob's ---------------------------------------------

{
    for my $i (1 .. 3) {
        hook('bob', "/hooks/ep-bob?status=200&name=bob-$i");
    }
    for my $i (1 .. 5) {
        hook('bob', '/hooks/ep-bob-down?status=503');
    }
    ok($B->wait_events(9, 5), 'bob: 8 deliveries and ENDPOINT_DOWN');
    my $na = scalar $A->events;
    my $nf = $na + 9;
    ok($F->wait_events($nf, 5), 'mitte_sse all: alice\'s and bob\'s events');
    $_->drain(0.2) for $A, $B, $F;

    is(scalar $A->events, $na, 'alice sees none of bob\'s events');
    # sorted: the deliveries were made one after the other, but each is
    # recorded after its answer, by either worker
    my @bs = sort map { $_->{json}{endpointSlug} } $B->events;
    is_deeply(\@bs, [('ep-bob') x 3, ('ep-bob-down') x 6],
              'bob sees his events only');
    my %in_a = map { $_->{id} => 1 } $A->events;
    my %in_b = map { $_->{id} => 1 } $B->events;
    ok(!grep({ $in_b{$_} } keys %in_a), 'no event on both streams');
    my @fid = $F->ids;
    is_deeply(\@fid, [sort { $a <=> $b } (keys %in_a, keys %in_b)],
              'mitte_sse all: every event of both, in order');
    my %fdata = map { $_->{id} => $_->{data} } $F->events;
    ok(!grep({ $fdata{$_->{id}} ne $_->{data} } $A->events, $B->events),
       'mitte_sse all: the same data');
    is(scalar(grep { $_->{id} !~ /^\d+$/ } $F->events), 0,
       'every id is decimal');
    ok(strictly_increasing(@fid), 'ids increase');
}

# -- parallel deliveries, streams on both workers --------------------------------

my @par_alice;    # alice's ids of this part, from the firehose
my $par_head;     # the newest id before it
{
    # streams until each worker holds at least two firehose streams
    my @fs = ($F);
    my %on;
    my $w = worker_of($t, $F);
    push @{ $on{$w} }, $F if $w;
    my @workers = $t->worker_pids;
    for my $try (1 .. 60) {
        last if @fs >= 6 && !grep { @{ $on{$_} || [] } < 2 } @workers;
        my $s = firehose();
        opened_ok($s, "firehose $try") if $s->status != 200;
        push @fs, $s;
        my $pid = worker_of($t, $s);
        push @{ $on{$pid} }, $s if $pid;
        sleep 0.01;
    }
    my @counts = map { scalar @{ $on{$_} || [] } } @workers;
    ok(!grep({ $_ < 2 } @counts),
       "firehose streams on both workers (@counts of " . scalar(@fs) . ')');

    my @as = ($A, stream('alice'), stream('alice'));
    my @bs = ($B, stream('bob'));
    my $head = $par_head = $last_id = ($F->events)[-1]{id};

    my $t1 = time();
    my @out = parallel(8, sub {
        my ($i, $fh) = @_;
        my $user = $i % 2 ? 'bob' : 'alice';
        my $ua = HTTP::Tiny->new(keep_alive => 0, timeout => 10);
        for my $k (1 .. 50) {
            my $r = $ua->request('POST',
                "http://127.0.0.1:${\ $t->port}/hooks/par-$i?status="
                . ($k % 5 ? 200 : 500),
                { headers => { 'X-Mitte-User' => $user },
                  content => '{"k":' . $k . '}' });
            print {$fh} "$user $r->{status} "
                . ($r->{headers}{'x-request-id'} // '-') . "\n";
        }
    }, timeout => 60, poll => sub { pump_many(0.05, @fs, @as, @bs) });
    my @lines = map { @$_ } @out;
    is(scalar @lines, 400, '400 deliveries made by 8 clients');
    is(scalar(grep { /^\w+ (200|500) [0-9a-f]{32}$/ } @lines), 400,
       'each proxied, with its request id');
    my %rid_user = map { (split ' ')[2, 0] } @lines;
    my @want_a = sort grep { $rid_user{$_} eq 'alice' } keys %rid_user;
    my @want_b = sort grep { $rid_user{$_} eq 'bob' } keys %rid_user;

    my @left = wait_many(sub { after($head, $_[0]->events) >= 400 }, 15,
                         @fs);
    is(scalar @left, 0, 'every firehose stream got 400 events');
    my @la = wait_many(sub { after($head, $_[0]->events) >= 200 }, 5, @as);
    my @lb = wait_many(sub { after($head, $_[0]->events) >= 200 }, 5, @bs);
    pump_many(0.3, @fs, @as, @bs) for 1 .. 2;

    my $i = 0;
    for my $s (@fs) {
        $i++;
        my $pid = worker_of($t, $s) // '?';
        my @ev = after($head, $s->events);
        my @ids = map { $_->{id} } @ev;
        is_deeply(\@ids, [$head + 1 .. $head + 400],
                  "firehose $i (worker $pid): ids " . ($head + 1) . ' to '
                  . ($head + 400) . ', each once, in order')
            or diag("got " . scalar(@ids) . " events: @ids[0 .. 9] ...");
        my @rids = sort map { $_->{json}{requestId} // '' } @ev;
        is_deeply(\@rids, [sort keys %rid_user],
                  "firehose $i: the request id of every delivery once");
    }
    for my $x (['alice', \@want_a, @as], ['bob', \@want_b, @bs]) {
        my ($user, $want, @ss) = @$x;
        my $k = 0;
        for my $s (@ss) {
            $k++;
            my $pid = worker_of($t, $s) // '?';
            my @ev = after($head, $s->events);
            my @rids = sort map { $_->{json}{requestId} // '' } @ev;
            is_deeply(\@rids, $want,
                      "$user stream $k (worker $pid): ${user}'s 200, once");
            ok(strictly_increasing(map { $_->{id} } @ev),
               "$user stream $k: in order");
        }
    }
    @par_alice = map { $_->{id} } grep {
        ($_->{json}{endpointSlug} // '') =~ /^par-/
            && $rid_user{ $_->{json}{requestId} } eq 'alice'
    } after($head, $F->events);

    # which workers proxied the deliveries
    my %by_pid;
    if (open my $fh, '<', $t->dir . '/rid.log') {
        while (<$fh>) {
            my ($pid, $rid) = split;
            $by_pid{$pid}++ if $rid_user{$rid};
        }
        close $fh;
    }
    diag('deliveries per worker: ' . join(', ', map { "$_: $by_pid{$_}" }
                                                 sort keys %by_pid))
        if $ENV{MITTE_VERBOSE};
    ok(keys %by_pid == 2, 'both workers proxied deliveries')
        or diag(join ', ', %by_pid);

    $_->close for grep { $_ != $F } @fs;
    $_->close for grep { $_ != $A } @as;
    $_->close for grep { $_ != $B } @bs;
    diag(sprintf 'parallel part: %.1fs', time() - $t1)
        if $ENV{MITTE_VERBOSE};
}

# -- replay: Last-Event-ID and ?lastEventId= -----------------------------------

{
    $F->drain(0.1);
    my @alice_ids = map { $_->{id} } $A->events;
    my %data = map { $_->{id} => $_->{data} } $F->events;

    # a replay larger than the 64 KiB a subscriber may have unsent: all of
    # it (the 400 parallel deliveries and what followed)
    my @fids = grep { $_ > $par_head } $F->ids;
    my $kb = 0;
    $kb += (length($data{$_}) + 40) / 1024 for @fids;
    my $big = firehose(headers => { 'Last-Event-ID' => $par_head });
    is($big->status, 200, 'a large replay: 200');
    $big->wait_events(scalar @fids, 10);
    $big->drain(0.2);
    my @bids = $big->ids;
    is_deeply([@bids[0 .. $#fids]], \@fids,
              sprintf('a replay of %d events (%.0f kB, more than the 64 KiB'
                      . ' backlog): all of them, in order', scalar @fids,
                      $kb))
        or diag('got ' . scalar(@bids) . ' events');
    ok(!grep({ defined $_->{data} && $data{ $_->{id} }
               && $_->{data} ne $data{ $_->{id} } } $big->events),
       'a large replay: the same events as first sent');
    $big->close;

    # after one of alice's events, by the header
    my $L = $par_alice[99];
    my @want = grep { $_ > $L } @alice_ids;
    my $r1 = stream('alice', headers => { 'Last-Event-ID' => $L });
    opened_ok($r1, 'Last-Event-ID stream');
    $r1->wait_events(scalar @want, 5);
    $r1->drain(0.2);
    is_deeply([$r1->ids], \@want,
              "Last-Event-ID: $L: alice's " . scalar(@want)
              . ' later events, in order, once');
    ok(!grep({ $_->{data} ne $data{ $_->{id} } } $r1->events),
       'Last-Event-ID: the same events as first sent');

    # after one of bob's events, by the query
    my ($bob_id) = grep { $_ > $par_alice[150] } map { $_->{id} } $B->events;
    my @want2 = grep { $_ > $bob_id } @alice_ids;
    my $r2 = stream('alice',
                    path => "/mitte/events?lastEventId=$bob_id");
    opened_ok($r2, '?lastEventId= stream');
    $r2->wait_events(scalar @want2, 5);
    $r2->drain(0.2);
    is_deeply([$r2->ids], \@want2,
              "?lastEventId=$bob_id (bob's): alice's later events only");

    # an id ahead of the stream: nothing to replay, live events go on
    my $r3 = stream('alice', headers => { 'Last-Event-ID' => '9000000000000000' });
    opened_ok($r3, 'Last-Event-ID ahead of the stream');

    # live events continue after the replay
    my $n1 = scalar $r1->events;
    my $n2 = scalar $r2->events;
    my ($r, $rid) = hook('alice', '/hooks/ep-live?status=200');
    ok($r1->wait_events($n1 + 1, 5) && $r2->wait_events($n2 + 1, 5)
       && $r3->wait_events(1, 5), 'a live event after the replay');
    $_->drain(0.2) for $r1, $r2, $r3;
    for my $x ([$r1, $n1, 'Last-Event-ID'], [$r2, $n2, '?lastEventId='],
               [$r3, 0, 'ahead'])
    {
        my ($s, $n, $label) = @$x;
        is(scalar $s->events, $n + 1, "$label: one live event");
        my $e = ($s->events)[-1];
        is($e && $e->{json}{requestId}, $rid, "$label: the new delivery");
    }
    $_->close for $r1, $r2, $r3;

    # reconnects while deliveries go on: each stream replays from the last
    # id its predecessor saw; together they see alice's events once each
    $A->drain(0.1);
    my $start = ($A->events)[-1]{id};
    my $na = scalar $A->events;
    my $port = $t->port;
    my $pid = fork;
    die "fork: $!" unless defined $pid;
    if ($pid == 0) {
        my $ua = HTTP::Tiny->new(keep_alive => 0, timeout => 10);
        for my $k (1 .. 120) {
            my $user = $k % 3 ? 'alice' : 'bob';
            $ua->request('POST', "http://127.0.0.1:$port/hooks/re-$user",
                         { headers => { 'X-Mitte-User' => $user },
                           content => '{}' });
            Time::HiRes::sleep(0.01);
        }
        POSIX::_exit(0);
    }

    my @segments;
    my $from = $start;
    my $cur;
    for my $k (1 .. 8) {
        $cur = stream('alice', headers => { 'Last-Event-ID' => $from });
        $cur->drain(0.15 + 0.05 * $k);
        push @segments, [$from, [$cur->ids]];
        my @ids = $cur->ids;
        $from = $ids[-1] if @ids;
        $cur->close if $k < 8;
    }
    waitpid $pid, 0;
    is($?, 0, 'the delivering client finished');
    $A->wait_events($na + 80, 5);
    $A->drain(0.3);
    $cur->drain(0.3);
    $segments[-1][1] = [$cur->ids];
    $cur->close;

    my @alice_now = grep { $_ > $start } map { $_->{id} } $A->events;
    is(scalar @alice_now, 80, 'alice: 80 events meanwhile');
    my @joined;
    my $k = 0;
    for my $seg (@segments) {
        $k++;
        my ($after, $ids) = @$seg;
        my @want = grep { $_ > $after } @alice_now;
        @want = @want[0 .. $#$ids] if @$ids <= @want;
        is_deeply($ids, \@want, "reconnect $k after $after: alice's next "
                  . scalar(@$ids) . ' events, no gap, no duplicate');
        push @joined, @$ids;
    }
    is_deeply(\@joined, \@alice_now,
              'the reconnected streams together: every event once');
}

# -- replay from id 0 ----------------------------------------------------------

# Last-Event-ID: 0 and ?lastEventId=0 are older than every event, as an id
# that left the buffer is: every buffered event of the caller, in order,
# once (zed's 3 events are recent: all in the buffer)
{
    my $live = stream('zed');
    opened_ok($live, 'zed: a live stream');
    for my $k (1 .. 3) {
        hook('zed', "/hooks/ep-zero-$k?status=200");
        $live->wait_events($k, 5);
    }
    my @want = $live->ids;
    is(scalar @want, 3, 'zed: 3 events');
    for my $x (['Last-Event-ID: 0', headers => { 'Last-Event-ID' => '0' }],
               ['?lastEventId=0', path => '/mitte/events?lastEventId=0'])
    {
        my ($label, @opt) = @$x;
        my $s = stream('zed', @opt);
        opened_ok($s, $label);
        $s->wait_events(3, 3);
        $s->drain(0.2);
        is_deeply([$s->ids], \@want,
                  "$label: zed's 3 events replayed, in order, once");
        $s->close;
    }
    $live->close;
}

# -- heartbeat ---------------------------------------------------------------

{
    $hb->drain(0.1);
    my $n0 = scalar $hb->comments;
    $hb->drain(3.5);
    my @c = ($hb->comments)[$n0 .. $#{ $hb->{comments} }];
    my $elapsed = time() - $hb_t0;
    ok(@c >= 3 && @c <= 4, 'mitte_sse_heartbeat 1s: a ping a second')
        or diag(scalar(@c) . ' comments in 3.5s');
    is(scalar(grep { $_->{text} ne 'ping' } $hb->comments), 0,
       'the comment is ": ping"');
    my $total = scalar $hb->comments;
    ok($total >= $elapsed - 2 && $total <= $elapsed + 1,
       'pings since the stream opened');
    my @gaps = map { $c[$_]{at} - $c[$_ - 1]{at} } 1 .. $#c;
    ok(!grep({ $_ < 0.5 || $_ > 1.8 } @gaps), 'about 1s apart')
        or diag("gaps: @gaps");
    is(scalar $hb->events, 0, 'no event for a user without deliveries');
    ok(!grep({ @{ $_->{comments} } } $A->frames),
       'no ping on a default (15s) stream within ' . int(time() - $T0)
       . 's') if time() - $T0 < 14;
}

# -- a subscriber that stops reading -------------------------------------------

{
    my $a0 = stub_active($t);
    my $m0 = worker_rss();
    my $reader = stream('slow');
    opened_ok($reader, 'slow user: a reading stream');
    # a small receive window on this side, a small send buffer on nginx's
    # (listen ... sndbuf=4k): the backlog builds up in the worker soon
    my $stuck = stream('slow', port => $t->{port2}, rcvbuf => 4096, head => 0);
    my $wstuck = worker_of($t, $stuck) // '?';
    sleep 0.1;

    my $name = 'N' x 120;
    my $sent = 0;
    my $deliveries = sub {
        my ($n) = @_;
        my $t1 = time();
        my @out = parallel(8, sub {
            my ($i, $fh) = @_;
            my $ua = HTTP::Tiny->new(keep_alive => 0, timeout => 10);
            for my $k (1 .. $n / 8) {
                my $r = $ua->request('POST',
                    "http://127.0.0.1:${\ $t->port}/hooks/slow-$i-"
                    . ('s' x 40) . "?name=$name$i",
                    { headers => { 'X-Mitte-User' => 'slow' },
                      content => '{}' });
                print {$fh} "$r->{status}\n";
            }
        }, timeout => 60, poll => sub { $reader->pump(0.05) });
        is(scalar(grep { $_ eq '200' } map { @$_ } @out), $n,
           "$n deliveries with long names");
        $sent += $n;
        ok($reader->wait_events($sent, 10),
           "the reading stream got all $sent events");
        my $bytes = 0;
        $bytes += length($_->{data}) + length($_->{id}) + 30
            for $reader->events;
        diag(sprintf '%d deliveries in %.1fs; %d kB of events in all', $n,
                     time() - $t1, $bytes / 1024) if $ENV{MITTE_VERBOSE};
    };

    # 30 kB of events: the kernel's buffers fill, the rest waits in the
    # worker, under 64 KiB; then the connection settles (no more room)
    $deliveries->(80);
    sleep 0.5;
    ok(!grep({ /event stream subscriber dropped/ } $t->error_log_lines),
       'a backlog under 64 KiB is kept');

    # 270 kB more: past the 64 KiB backlog
    $deliveries->(720);

    my $dropped;
    my $deadline = time() + 5;
    while (time() < $deadline) {
        $dropped = grep { /event stream subscriber dropped/ }
            $t->error_log_lines;
        last if $dropped;
        sleep 0.05;
    }
    ok($dropped, 'the subscriber that stopped reading was dropped'
                 . ' (logged)');

    # dropped is closed, at once (not when send_timeout, 60s, ends it)
    my ($a1, $held);
    $deadline = time() + 1;
    while (time() < $deadline) {
        $a1 = stub_active($t);
        $held = worker_of($t, $stuck);
        last if $a1 <= $a0 + 1 && !$held;
        sleep 0.05;
    }
    diag("active $a0 before, $a1 now; stuck stream on worker $wstuck, held"
         . ' by ' . ($held // 'none')) if $ENV{MITTE_VERBOSE};
    ok(!$held && $a1 == $a0 + 1, 'the dropped subscriber\'s connection is'
                                 . ' closed within 1s')
        or diag("active connections: $a0 before, $a1 with the reader;"
                . " the stuck stream's socket is "
                . ($held ? "still held by worker $held" : 'closed')
                . " (opened on worker $wstuck)");

    # 3 MB more of events: the worker holds no more than the backlog
    $deliveries->(7200);
    my @rids = $reader->ids;
    ok(strictly_increasing(@rids), 'the reading stream: in order');
    my $m1 = worker_rss();
    diag("VmRSS (sum of the workers) $m0 kB before, $m1 kB after")
        if $ENV{MITTE_VERBOSE};
    SKIP: {
        skip $NO_RSS, 1 if $ENV{MITTE_SANITIZED};
        ok($m1 <= $m0 + 2048, 'worker memory did not grow with the events'
                              . ' (+2 MB slack)')
            or diag("VmRSS $m0 kB before, $m1 kB after");
    }

    # reading now: what was sent, then the end
    ok($stuck->wait_eof(10), 'the stuck client, reading now, sees the end');
    is($stuck->status, 200, 'it had its 200');
    my @got = $stuck->ids;
    ok(@got < 800, 'it got part of the events (' . scalar(@got) . ')');
    is_deeply(\@got, [@rids[0 .. $#got]], 'a prefix of the events, in order');
    $stuck->close;
    $reader->close;
    my $a2 = stub_active($t);
    is($a2, $a0, "active connections back to $a0");
}

# -- 1,000 streams opened and dropped ----------------------------------------

{
    my $round = sub {
        my ($label) = @_;
        my @ss;
        for my $i (1 .. 1000) {
            push @ss, stream('crowd', head => 0);
        }
        my @nohead = wait_many(sub { defined $_[0]->status }, 10, @ss);
        is(scalar @nohead, 0, "$label: 1,000 streams answered");
        is(scalar(grep { ($_->status // 0) != 200 } @ss), 0,
           "$label: all 200");
        my $active = stub_active($t);
        ok($active >= 1000, "$label: 1,000 connections active ($active)");

        my ($r, $rid) = hook('crowd', '/hooks/crowd?status=200');
        my @missed = wait_many(sub {
            grep { ($_->{json}{requestId} // '') eq $rid } $_[0]->events
        }, 10, @ss);
        is(scalar @missed, 0, "$label: a delivery reached all 1,000");

        $_->close for @ss;
        return;
    };

    my $wait_idle = sub {
        my ($want) = @_;
        my $deadline = time() + 10;
        my $n;
        while (time() < $deadline) {
            $n = stub_active($t);
            return $n if defined $n && $n <= $want;
            sleep 0.05;
        }
        return $n;
    };

    # Rounds of 1,000 streams (each gets one event, then all are closed).
    # The first two are a warm-up: the workers' allocator keeps the pages
    # of its high-water mark (the 1,000 4 KiB frame buffers and request
    # pools), which is no leak. Three more rounds must not add to it.
    my $a0 = stub_active($t);
    my @rss = (worker_rss());
    my @active;
    for my $i (1 .. 5) {
        $round->("round $i");
        push @active, $wait_idle->($a0);
        sleep 0.1;
        push @rss, worker_rss();
    }
    is_deeply(\@active, [($a0) x 5],
              "after each round, active connections back to $a0");
    my $trace = "VmRSS (sum of the workers, kB) at first and after each"
        . " round: @rss";
    diag($trace) if $ENV{MITTE_VERBOSE};
    SKIP: {
        skip $NO_RSS, 2 if $ENV{MITTE_SANITIZED};
        ok($rss[5] <= $rss[2] + 2048,
           '3,000 more streams opened and dropped after a warm-up:'
           . ' memory as it was (+2 MB slack)') or diag($trace);
        ok($rss[2] <= $rss[0] + 32768, 'the warm-up: within 32 MB')
            or diag($trace);
    }
}

# -- reload: the streams end, the replay buffer survives ------------------------

{
    # the newest event of all, alice's
    # each delivery is recorded in the log phase, after its answer: wait for
    # it before the next, so that the order recorded is the order sent
    my $nrec = 0;
    my $n0 = scalar $A->events;
    hook('alice', '/hooks/ep-reload?status=200');
    $t->wait_recorded('ep-reload', ++$nrec);
    $A->wait_events($n0 + 1, 5);
    my $last = ($A->events)[-1]{id};
    my $old = stream('alice');
    opened_ok($old, 'a stream before the reload');

    my @rid;
    for my $i (1 .. 2) {
        my ($r, $rid) = hook('alice', '/hooks/ep-reload?status=200');
        $t->wait_recorded('ep-reload', ++$nrec);
        push @rid, $rid;
    }
    ok($old->wait_events(2, 5), 'two events before the reload');

    $t->reload;
    ok($old->wait_eof(2), 'reload: the old worker closed its stream');
    ok($A->wait_eof(2), 'reload: and the streams opened before');
    $old->close;

    for my $i (1 .. 3) {
        my ($r, $rid) = hook('alice', '/hooks/ep-reload?status=200');
        $t->wait_recorded('ep-reload', ++$nrec);
        push @rid, $rid;
    }
    my $s = stream('alice', headers => { 'Last-Event-ID' => $last });
    opened_ok($s, 'reconnect after the reload');
    my $f = firehose(headers => { 'Last-Event-ID' => $last });
    $_->wait_events(5, 5) for $s, $f;
    $_->drain(0.2) for $s, $f;
    is_deeply([map { $_->{json}{requestId} } $s->events], \@rid,
              'replay after the reload: the 2 events from before it and'
              . ' the 3 after, once, in order');
    is_deeply([map { $_->{json}{requestId} } $f->events], \@rid,
              'mitte_sse all: the same');
    ok(!grep({ $_->{id} <= $last } $s->events), 'ids go on from before');
    my %seen = map { $_->{id} => $_->{data} } $s->events;

    # a reload with another mitte_sse_replay: the newest buffered events
    # move into the new buffer with their ids (all of these fit in 512)
    my $http2 = $HTTP;
    $http2 =~ s/(mitte_zone m:16m;\n)/$1    mitte_sse_replay 512;\n/
        or die 'no mitte_zone line';
    $t->reload(http => $http2);
    ok($f->wait_eof(2), 'reload with a new mitte_sse_replay');
    my ($r, $rid) = hook('alice', '/hooks/ep-reload?status=200');
    $t->wait_recorded('ep-reload', ++$nrec);
    my $f2 = firehose(headers => { 'Last-Event-ID' => $last });
    opened_ok($f2, 'reconnect after it');
    $f2->wait_events(1, 5);
    $f2->drain(0.3);
    my @bad = grep {
        $_->{id} !~ /^\d+$/ || $_->{id} <= $last
            || (exists $seen{ $_->{id} } && $seen{ $_->{id} } ne $_->{data})
            || (!exists $seen{ $_->{id} }
                && ($_->{json}{requestId} // '') ne $rid)
    } $f2->events;
    ok(!@bad, 'no event replayed that was not recorded: only those'
              . ' still buffered, and the new one')
        or diag(join "\n", map { "id $_->{id}: $_->{event}: $_->{data}" }
                               @bad[0 .. ($#bad > 4 ? 4 : $#bad)]);
    my @ev = $f2->events;
    is($ev[-1] && $ev[-1]{json}{requestId}, $rid, 'the new delivery last');
    is_deeply([map { $_->{json}{requestId} } @ev], [@rid, $rid],
              'the events from before the reload moved to the new buffer');
    $_->close for $s, $f;

    $A = stream('alice');
    $B = stream('bob');
    $F = $f2;
    $hb = stream('hb-user', path => '/mitte/beat');
}

# -- graceful shutdown closes the streams ----------------------------------------

{
    my @open = ($A, $B, $F, $hb, stream('alice'), firehose());
    $_->drain(0.05) for @open;
    my $t1 = time();
    $t->stop;
    my $took = time() - $t1;
    ok($took < 5, sprintf('nginx quit with open streams in %.1fs', $took));
    my @left = wait_many(sub { $_[0]->closed }, 2, @open);
    is(scalar @left, 0, 'every stream was closed');
    $_->close for @open;
}

diag(sprintf 'run time %.1fs', time() - $T0) if $ENV{MITTE_VERBOSE};

done_testing();
