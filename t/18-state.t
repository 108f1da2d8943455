#!/usr/bin/perl

# mitte_state_file: the whole state survives a restart (quit, then start):
# statistics, streaks, quota use, users, preferences, notifications and
# their read state, the replay buffer, the counters, and pending sends,
# which resume. After kill -9, the state of the last interval's write,
# nothing counted twice. A state file that is corrupt, cut short, or not
# one at all is logged at error level naming the file, set aside as
# "<path>.bad", and nginx starts empty. nginx -t refuses bad directives.

use strict;
use warnings;

use Test::More;
use Mitte::Test qw(:all);
use Mitte::Receiver;
use Mitte::SSE;
use Time::HiRes qw(sleep time);
use HTTP::Tiny;

require_module();

# the webhook target: 503 while the flag file exists, else 200
my $flag = "/tmp/mitte-t-state-flag-$$";
END { unlink $flag if defined $flag }
my $rx = Mitte::Receiver->new(
    script => sub { -e $flag ? { status => 503 } : { status => 200 } });

sub http_conf {
    my ($state) = @_;
    return <<"END";
    mitte_zone m:8m;
    mitte_quota free 100;
    mitte_delivery_retries 20;
    mitte_webhook_allow 127.0.0.0/8;
    $state

    server {
        listen 127.0.0.1:%%PORT%%;

        location ~ ^/hooks/(?<slug>[^/]+)\$ {
            mitte_endpoint \$slug;
            mitte_endpoint_name \$arg_name;
            mitte_user \$http_x_mitte_user;
            proxy_pass http://%%UPSTREAM%%;
        }
        location /mitte/ {
            mitte_user \$http_x_mitte_user;
            location = /mitte/stats { mitte_stats; }
            location = /mitte/preferences { mitte_preferences; }
            location /mitte/notifications { mitte_notifications; }
            location = /mitte/events { mitte_sse; }
        }
        location = /mitte/all {
            mitte_stats all;
        }
        location /mitte-admin/ {
            mitte_admin;
        }
    }
END
}

my $t = Mitte::Test->new(
    http => http_conf('mitte_state_file %%DIR%%/state interval=1s;'),
    allow => [qr/mitte_state_file/]);
my $file = $t->dir . '/state';
$t->start;

ok(grep({ /mitte_state_file ".*state" does not exist yet/ }
        $t->log_lines('notice')),
   'the first start: no state file yet, said at notice');

sub as {
    my ($user, $method, $path, %opt) = @_;
    return $t->json($method, $path,
                    headers => { 'X-Mitte-User' => $user }, %opt);
}

sub outbox {
    my (undef, $doc) = $t->json(GET => '/mitte-admin/outbox');
    return @{ ($doc || {})->{sends} || [] };
}

sub wait_outbox {
    my ($cond, $secs) = @_;
    my $until = time() + $secs;
    my @s;
    while (time() < $until) {
        @s = outbox();
        return @s if $cond->(@s);
        sleep 0.1;
    }
    return @s;
}

my @counters = ('mitte_deliveries_total{result="success"}',
                'mitte_deliveries_total{result="failure"}',
                'mitte_notifications_total{type="ENDPOINT_DOWN"}',
                'mitte_endpoints', 'mitte_users');

sub snapshot {
    my %s;
    (undef, $s{stats_rz}) = as('rz', GET => '/mitte/stats');
    (undef, $s{stats_ry}) = as('ry', GET => '/mitte/stats');
    (undef, $s{prefs}) = as('rz', GET => '/mitte/preferences');
    (undef, $s{notes}) = as('rz', GET => '/mitte/notifications');
    (undef, $s{user}) = $t->json(GET => '/mitte-admin/users/rv');
    my (undef, $m) = $t->metrics;
    $s{metrics} = { map { $_ => $m->{$_} } @counters };
    return \%s;
}

sub replay {
    my ($user) = @_;
    my $s = Mitte::SSE->open($t, '/mitte/events',
                             headers => { 'X-Mitte-User' => $user,
                                          'Last-Event-ID' => 0 });
    $s->wait_events(1, 5);
    $s->drain(0.3);
    my @ev = map { "$_->{id} $_->{event} $_->{data}" } $s->events;
    $s->close;
    return \@ev;
}

# -- state before the restart --------------------------------------------------

open my $fh, '>', $flag or die "$flag: $!";
close $fh;

my ($r, $doc) = as('rz', PATCH => '/mitte/preferences', content => {
    webhook => { enabled => JSON::PP::true, url => $rx->url('/hook'),
                 secret => 'whsec_' . 'QUJD' x 8 } });
json_answer_ok($r, $doc, 200, 'rz: a webhook preference');
($r, $doc) = $t->json(PUT => '/mitte-admin/users/rv', content => {
    plan => 'pro', email => 'rv@example.com',
    trialEndsAt => '2030-01-01T00:00:00Z' });
json_answer_ok($r, $doc, 200, 'rv: set through the operator API');

# rz and ry have their dashboards open, as clients that will reconnect
# with Last-Event-ID do: their deliveries' events go into the replay
# buffer (a user with no stream open, nor one closed within the gap, has
# none kept there)
my @watching = map {
    Mitte::SSE->open($t, '/mitte/events',
                     headers => { 'X-Mitte-User' => $_ })
} qw(rz ry);

$t->deliver('rz', '/hooks/z-one?status=503&name=Zed-One') for 1 .. 5;
$t->deliver('rz', '/hooks/z-two?status=200');
$t->deliver('ry', '/hooks/y-one?status=302');
$t->deliver('rz', '/hooks/z-three?status=500') for 1 .. 2;
$_->close for @watching;

($r, $doc) = as('rz', GET => '/mitte/notifications');
is(scalar @{ $doc->{notifications} || [] }, 1, 'rz: ENDPOINT_DOWN');
as('rz', POST => '/mitte/notifications/read',
   content => { ids => [$doc->{notifications}[0]{id}] });

# the send meets 503, and waits for its retry, pending
my @sends = wait_outbox(sub { grep { $_->{attempts} >= 1 } @_ }, 10);
is(scalar @sends, 1, 'one send');
is($sends[0]{state}, 'pending', 'pending after a 503');
my $note_id = $sends[0]{notificationId};

my $before = snapshot();
my $events = replay('rz');
check_endpoint(find_endpoint($before->{stats_rz}, 'z-one'), 'z-one before',
    requests => 5, failures => 5, streak => 5, lastStatus => 503,
    name => 'Zed-One');
is($before->{stats_rz}{quota}{used}, 8, 'rz: quota used 8');
is(scalar @$events, 9, 'rz: 8 deliveries and a notification buffered');

# -- quit, start: everything is there ------------------------------------------

is($t->quit, 0, 'quit');
ok(-s $file, 'the state file is written at exit');
ok(!-e "$file.tmp", 'no temporary file left');
ok(grep({ /mitte_state_file ".*state" written at exit/ }
        $t->log_lines('notice')), 'written at exit, said at notice');
is((stat $file)[2] & 0777, 0600, 'the file is for the owner only (0600)');

$t->start;
my $said = 'read: 4 of 4 endpoints and 3 of 3 users, 1 notifications,'
    . ' 1 sends and 10 events; 0 entries did not fit the zone';
ok(grep({ /mitte_state_file ".*state", written \d+s ago, /
          && index($_, $said) >= 0 } $t->log_lines('notice')),
   'the state file is read at start, said at notice')
    or diag(join "\n", $t->log_lines('notice'));

my $after = snapshot();
is_deeply($after->{$_}, $before->{$_}, "restart: $_ kept")
    for qw(stats_rz stats_ry prefs notes user metrics);
is_deeply(replay('rz'), $events, 'restart: the replay buffer, same ids');

# the pending send resumes: the target answers now
unlink $flag;
@sends = wait_outbox(sub { @_ && $_[0]{state} eq 'sent' }, 15);
is($sends[0]{state}, 'sent', 'restart: the pending send went out');
is($sends[0]{notificationId}, $note_id, 'restart: the same notification');
my @got = grep { $_->{path} eq '/hook' } $rx->requests;
ok(@got >= 2, 'the target got the retry after the restart');
is($got[-1]{headers}{'webhook-id'}, $note_id,
   'with the same webhook-id');

# the counting goes on where it was
$t->deliver('rz', '/hooks/z-one?status=200');
($r, $doc) = as('rz', GET => '/mitte/stats');
check_endpoint(find_endpoint($doc, 'z-one'), 'z-one after the restart',
    requests => 6, failures => 5, streak => 0, lastStatus => 200);
is($doc->{quota}{used}, 9, 'rz: the quota counts on');
($r, $doc) = as('rz', GET => '/mitte/notifications');
is_deeply([map { $_->{type} } @{ $doc->{notifications} }],
          ['ENDPOINT_RECOVERED', 'ENDPOINT_DOWN'],
          'the streak went on: RECOVERED after the DOWN from before');

# -- kill -9: the last interval's state, nothing counted twice -----------------

$t->deliver('rz', '/hooks/z-two?status=200') for 1 .. 3;
sleep 2.5;      # two intervals: written
my $written = snapshot();
$t->kill9;
$t->start;
my $back = snapshot();
is_deeply($back->{$_}, $written->{$_}, "kill -9: $_ as last written")
    for qw(stats_rz stats_ry notes metrics);

# -- kill -9 after events the file does not hold: no id given twice -----------

# A stream saw ids up to $last, some numbered after the last write; nginx
# is killed and starts again. A delivery before the stream reconnects gets
# an id above $last, so the reconnect with Last-Event-ID: $last replays it
# (numbered from the last written id, it would be taken as seen).
{
    my $live = Mitte::SSE->open($t, '/mitte/events',
                                headers => { 'X-Mitte-User' => 'rk' });
    $t->deliver('rk', "/hooks/k-$_?status=200") for 1 .. 3;
    ok($live->wait_events(3, 5), 'kill -9: a stream saw 3 events');
    my $last = ($live->ids)[-1];
    $live->close;
    $t->kill9;
    my $log0 = scalar $t->error_log_lines;
    $t->start;
    my @new = ($t->error_log_lines)[$log0 .. $t->error_log_lines - 1];
    ok(grep({ /mitte_state_file ".*state" was not written at exit: its \d+ events are not replayed/ }
            @new), 'kill -9: the file was not written at exit, logged');

    $t->deliver('rk', '/hooks/k-after?status=200');
    my $s = Mitte::SSE->open($t, '/mitte/events',
                             headers => { 'X-Mitte-User' => 'rk',
                                          'Last-Event-ID' => $last });
    $s->wait_events(1, 5);
    $s->drain(0.3);
    my @ev = $s->events;
    $s->close;
    is(scalar @ev, 1, 'kill -9: the reconnect replays the delivery made '
       . 'since the start');
    like($ev[0] && $ev[0]{data}, qr/"endpointSlug":"k-after"/,
         'kill -9: that delivery');
    cmp_ok($ev[0] && $ev[0]{id}, '>', $last, 'kill -9: with an id above '
           . 'every id given before');

    # a quit writes the file at exit: the ids go on from the last one
    $t->stop;
    $t->start;
    $t->deliver('rk', '/hooks/k-quit?status=200');
    $s = Mitte::SSE->open($t, '/mitte/events',
                          headers => { 'X-Mitte-User' => 'rk',
                                       'Last-Event-ID' => $ev[0]{id} });
    $s->wait_events(1, 5);
    $s->drain(0.3);
    my @q = $s->events;
    $s->close;
    is(scalar @q, 1, 'quit: the delivery since the start replayed');
    is($q[0] && $q[0]{id}, $ev[0]{id} + 1, 'quit: its id follows the '
       . 'last one given');
}

# -- many endpoints: worker 0 writes in slices ---------------------------------

{
    # a connection each: with keep-alive, HTTP::Tiny's two writes per
    # request meet the peer's delayed ACK (40 ms a request)
    my $ua = HTTP::Tiny->new(keep_alive => 0, timeout => 10);
    my (undef, $m0) = $t->metrics;
    my $before = $m0->{mitte_endpoints};
    my $h = iso_hour(hour_now());
    my $bad = 0;
    for my $i (1 .. 5000) {
        my $r = $ua->request('PUT', $t->url("/mitte-admin/endpoints/bulk-$i"),
            { content => qq({"user":"bulk","hours":[{"hour":"$h",)
                         . qq("requests":$i,"failures":0}]}) });
        $bad++ unless $r->{status} == 200;
    }
    is($bad, 0, '5,000 endpoints imported');
    # some go while the writes walk the trees
    for my $i (1 .. 100) {
        $ua->request('DELETE', $t->url("/mitte-admin/endpoints/bulk-$i"));
        sleep 0.01;
    }
    sleep 2.5;
    my (undef, $m) = $t->metrics;
    ok($m->{'mitte_state_writes_total{result="written"}'} >= 2,
       'written every second meanwhile');
    is($m->{'mitte_state_writes_total{result="failed"}'}, 0, 'none failed');
    my $n = $m->{mitte_endpoints};
    is($n, $before + 4900, "$n endpoints ($before before, 5,000 imported, "
       . '100 deleted)');
    $t->kill9;
    $t->start;
    (undef, $m) = $t->metrics;
    is($m->{mitte_endpoints}, $n, "kill -9 with $n endpoints: all back");
    ($r, $doc) = $t->json(GET => '/mitte-admin/endpoints/bulk-4321');
    is_deeply([map { $_->{requests} } @{ $doc->{hours} || [] }], [4321],
              'an endpoint written in a later slice: its hours back');
    ($r, $doc) = $t->json(GET => '/mitte-admin/endpoints/bulk-50');
    is($r->{status}, 404, 'a deleted one stays deleted');
}

# -- files that cannot be used -------------------------------------------------

sub bad_file_ok {
    my ($label, $change, $why) = @_;
    is($t->quit, 0, "$label: quit");
    unlink "$file.bad";
    $change->();
    my $n = () = $t->log_lines('error');
    $t->start;
    my @err = $t->log_lines('error');
    my @new = @err[$n .. $#err];
    ok(grep({ /mitte_state_file ".*state" is not used: $why/ } @new),
       "$label: said at error level, naming the file and why")
        or diag(join "\n", @new);
    ok(grep({ /set aside as ".*state\.bad"; starting empty/ } @new),
       "$label: set aside");
    ok(-e "$file.bad", "$label: <path>.bad is there");
    ($r, $doc) = $t->json(GET => '/mitte/all');
    is_deeply($doc->{endpoints}, [], "$label: nginx starts empty");
    is($t->post_as('rz', '/hooks/z-one?status=200')->{status}, 200,
       "$label: and proxies");
}

sub edit_file {
    my ($code) = @_;
    open my $in, '<:raw', $file or die "$file: $!";
    local $/;
    my $bytes = <$in>;
    close $in;
    $bytes = $code->($bytes);
    open my $out, '>:raw', $file or die "$file: $!";
    print {$out} $bytes;
    close $out;
}

# mitte_checksum() of lib/mitte_util.c, in Perl's wrapping integers
sub checksum {
    my ($data) = @_;
    use integer;
    no warnings 'portable';
    my $lsr = sub { ($_[0] >> $_[1]) & ((1 << (64 - $_[1])) - 1) };
    my $len = length $data;
    my $h = 0x243f6a8885a308d3 ^ ($len * 0x9e3779b97f4a7c15);
    my $full = $len - $len % 8;
    for my $w (unpack 'q<*', substr($data, 0, $full)) {
        $h = ($h ^ $w) * 0xff51afd7ed558ccd;
        $h ^= $lsr->($h, 33);
    }
    my $w = 0;
    my @tail = unpack 'C*', substr($data, $full);
    $w |= $tail[$_] << (8 * $_) for 0 .. $#tail;
    $h = ($h ^ $w) * 0xc4ceb9fe1a85ec53;
    $h ^= $lsr->($h, 29);
    $h *= 0x9e3779b97f4a7c15;
    $h ^= $lsr->($h, 32);
    return $h;
}

# the header: magic, format, version, 8 sizes, time, length, checksum
my $HEAD = 72;

bad_file_ok('a malformed record under a right checksum', sub {
    edit_file(sub {
        my $b = shift;
        my $recs = substr($b, $HEAD);
        is(unpack('q<', substr($b, 64, 8)), checksum($recs),
           'the checksum of the file as written, computed again here');
        # the first user record (kind 3): its plan out of range (at 28:
        # after trial_ends, trial_noted, month, used and seen)
        my $off = 0;
        while ($off < length $recs) {
            my ($kind, $len) = unpack 'V V', substr($recs, $off, 8);
            if ($kind == 3) {
                substr($recs, $off + 8 + 28, 1) = chr 77;
                last;
            }
            $off += 8 + (($len + 7) & ~7);
        }
        substr($b, 64, 8) = pack 'q<', checksum($recs);
        return substr($b, 0, $HEAD) . $recs;
    });
}, qr/a record in it is malformed/);

bad_file_ok('one byte changed', sub {
    edit_file(sub { my $b = shift; substr($b, 200, 1) ^= "\x01"; $b });
}, qr/its checksum is wrong/);

bad_file_ok('cut short', sub {
    edit_file(sub { substr(shift, 0, -100) });
}, qr/its length is wrong/);

bad_file_ok('not a state file', sub {
    edit_file(sub { "hello, world\n" x 20 });
}, qr/it is not a state file of this module/);

bad_file_ok('empty', sub {
    edit_file(sub { '' });
}, qr/it is cut short/);

$t->stop;

# -- nginx -t ------------------------------------------------------------------

for my $c (['mitte_state_file /tmp/x interval=0s;', qr/invalid interval "0s"/],
           ['mitte_state_file /tmp/x every=5s;',
            qr/invalid parameter "every=5s"/],
           ["mitte_state_file /tmp/x;\n    mitte_state_file /tmp/y;",
            qr/"mitte_state_file" directive is duplicate/])
{
    my ($rc, $out) = nginx_t("    mitte_zone m:1m;\n    $c->[0]\n");
    isnt($rc, 0, "nginx -t refuses: $c->[0]");
    like($out, $c->[1], "nginx -t says why: $c->[0]");
}
my ($rc, $out) = nginx_t("    mitte_state_file /tmp/x;\n"
                         . "    mitte_zone m:1m;\n");
like($out, qr/"mitte_state_file" requires "mitte_zone"/,
     'nginx -t: mitte_state_file before mitte_zone');

$rx->stop;

done_testing();
