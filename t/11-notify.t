#!/usr/bin/perl

# Notifications, the rules of SPEC section 4 at their boundaries, on a real
# nginx:
# - ANOMALY_DETECTED at the sweep: z just above and just below 2.5 with a
#   non-zero sigma and with the sigma floor (all history rates equal), the
#   rate rule at exactly 80% and at 81%, 9 vs 10 requests for the rate rule,
#   4 vs 5 for the z rule, 5 vs 6 history hours, c-48 in the window and
#   c-49 not, the exact message (P rounded half up, Z to one decimal half
#   away from zero: z 6.25, 2.25, 2.55 and -10 show 6.3, 2.3, 2.6 and
#   -10.0), the cooldown;
# - ENDPOINT_DOWN once at the 5th consecutive failure, again after a
#   success or after inactivity longer than `reset`; ENDPOINT_RECOVERED on
#   the first success after a DOWN only; an endpoint without owner raises
#   nothing;
# - QUOTA_WARNING once at ceil(90% x limit), QUOTA_EXCEEDED once at the
#   first refused request;
# - TRIAL_ENDING once per trial end, at the delivery that first shows it or
#   at a sweep, never for an end too far or past;
# and the notifications API: fields, newest first, unread, limit, before
# paging, POST .../read, mitte_notifications_keep, 401, 405, 404, isolation
# between users; and the rolling anomaly cooldown.

use strict;
use warnings;

use Test::More;
use List::Util qw(max sum);
use POSIX qw(strftime);
use Time::HiRes qw(sleep time);
use Mitte::Test qw(:all);

require_module();

my %TITLE = (
    ANOMALY_DETECTED   => 'Failure rate spike detected',
    ENDPOINT_DOWN      => 'Endpoint down',
    ENDPOINT_RECOVERED => 'Endpoint recovered',
    QUOTA_WARNING      => 'Approaching monthly quota',
    QUOTA_EXCEEDED     => 'Monthly quota reached',
    TRIAL_ENDING       => 'Your Pro trial ends soon',
);

my $T0 = time();

my $t = Mitte::Test->new(http => <<'END');
    mitte_zone m:4m;
    mitte_quota free 10;
    mitte_quota trial 7 warn=50%;
    mitte_endpoint_down threshold=5 reset=2s;

    server {
        listen 127.0.0.1:%%PORT%%;

        location ~ ^/hooks/(?<slug>[^/]+)$ {
            mitte_endpoint $slug;
            mitte_endpoint_name $upstream_http_x_endpoint_name;
            mitte_user $http_x_mitte_user;
            mitte_user_plan $http_x_mitte_plan;
            mitte_user_trial_ends $http_x_trial;
            proxy_pass http://%%UPSTREAM%%;
        }

        location = /mitte/all {
            mitte_stats all;
        }
        location /mitte/notifications {
            mitte_user $http_x_mitte_user;
            mitte_notifications;
        }
        location /mitte-admin/ {
            mitte_admin;
        }
    }
END

$t->start;


# ---- helpers ----------------------------------------------------------------

# the whole answer of GET /mitte/notifications for USER
sub notes_doc {
    my ($inst, $user, $query, $label) = @_;
    my ($r, $doc) = $inst->json(GET => '/mitte/notifications' . ($query // ''),
                                headers => { 'X-Mitte-User' => $user });
    json_answer_ok($r, $doc, 200, $label // "notifications of $user");
    return $doc || {};
}

sub notes {
    my ($user, $query) = @_;
    return notes_doc($t, $user, $query)->{notifications} || [];
}

# "TYPE slug" of each notification, newest first
sub summary {
    my ($list) = @_;
    return [map { $_->{type} . ' ' . ($_->{endpointSlug} // '-') } @$list];
}

# the shape of one notification object, and the values asked
sub check_note {
    my ($n, $label, %want) = @_;
    my @fails;

    unless (ok(ref $n eq 'HASH', "$label: present")) {
        return 0;
    }

    my @keys = sort keys %$n;
    push @fails, "keys are @keys"
        unless "@keys" eq 'endpointSlug id message read timestamp title type';
    push @fails, 'id is not a string of 20 characters'
        unless defined $n->{id} && !ref $n->{id} && !is_number($n->{id})
               && length $n->{id} == 20;
    push @fails, 'read is not a boolean'
        unless JSON::PP::is_bool($n->{read});
    for my $k (qw(type title message)) {
        push @fails, "$k is not a string"
            unless defined $n->{$k} && !ref $n->{$k} && !is_number($n->{$k});
    }
    push @fails, 'endpointSlug is neither a string nor null'
        if defined $n->{endpointSlug}
           && (ref $n->{endpointSlug} || is_number($n->{endpointSlug}));
    my $ts = iso_parse($n->{timestamp});
    push @fails, 'timestamp ' . ($n->{timestamp} // 'null')
                 . ' is not ISO-8601 with milliseconds, in the test'
        unless defined $ts && $ts >= int($T0) - 1 && $ts <= time() + 1;

    my $ok = ok(!@fails, "$label: shape");
    diag(join("\n", @fails) . "\n" . json_encode($n)) unless $ok;

    if (defined $want{type}) {
        $ok &= is($n->{type}, $want{type}, "$label: type");
        $ok &= is($n->{title}, $TITLE{ $want{type} }, "$label: title");
    }
    if (exists $want{slug}) {
        $ok &= is($n->{endpointSlug}, $want{slug}, "$label: endpointSlug");
    }
    if (exists $want{message}) {
        $ok &= is($n->{message}, $want{message}, "$label: message");
    }
    if (exists $want{read}) {
        $ok &= is(!!$n->{read}, !!$want{read}, "$label: read");
    }
    return $ok;
}

sub sweep {
    my ($inst, $label) = @_;
    my ($r, $doc) = $inst->json(POST => '/mitte-admin/sweep');
    json_answer_ok($r, $doc, 200, $label);
    $doc ||= {};
    my @k = sort keys %$doc;
    is("@k", 'endpoints notifications', "$label: the keys of the answer");
    ok(is_number($doc->{endpoints}) && is_number($doc->{notifications}),
       "$label: numbers");
    return $doc;
}

sub endpoint_count {
    my ($inst) = @_;
    my ($r, $doc) = $inst->json(GET => '/mitte-admin/endpoints');
    return scalar @{ $doc->{endpoints} || [] };
}

sub admin_put {
    my ($inst, $path, $content, $label) = @_;
    my ($r, $doc) = $inst->json(PUT => "/mitte-admin$path",
                                content => $content);
    json_answer_ok($r, $doc, 200, $label);
    return $doc;
}

# a delivery of USER to SLUG answered STATUS (pro plan unless told)
sub dlv {
    my ($user, $slug, $status, %h) = @_;
    $h{'X-Mitte-Plan'} //= 'pro';
    my ($s, $q) = split /\?/, $slug, 2;
    my $r = $t->deliver($user, "/hooks/$s?status=$status"
                               . (defined $q ? "&$q" : ''),
                        headers => \%h);
    is($r->{status}, $status, "$user/$s: a delivery answered $status");
    return $r;
}

sub metric {
    my ($inst, $key) = @_;
    my (undef, $m) = $inst->metrics;
    return $m->{$key} // 0;
}

# starts the next steps at least SECS before the end of the current hour
sub clear_of_hour_end {
    my ($secs) = @_;
    my $left = 3600 - (time() - 3600 * int(time() / 3600));
    if ($left < $secs) {
        diag("waiting ${left}s for the next hour");
        sleep($left + 0.2);
    }
    return;
}

# "2026-12" of the month after the current one
sub next_month {
    my @g = gmtime(time());
    my ($y, $m) = ($g[5] + 1900, $g[4] + 2);
    ($y, $m) = ($y + 1, 1) if $m == 13;
    return sprintf('%04d-%02d', $y, $m);
}


# ---- ANOMALY_DETECTED --------------------------------------------------------

clear_of_hour_end(30);
my $c = hour_now();

# history patterns: [requests, failures] of hours c-1, c-2, ...
my @low   = ([100, 0], [100, 10]) x 3;     # rates 0, .1: mu .05 sigma .05
my @high  = ([10, 9], [10, 10]) x 3;       # rates .9, 1: mu .95 sigma .05
my @flat  = ([100, 1]) x 6;                # all .01: sigma 0 -> floor .01
my @zero  = ([1000, 0]) x 6;               # all 0: sigma 0 -> floor .01
my @quart = ([100, 0], [100, 25]) x 3;     # rates 0, .25: mu, sigma .125
my @half  = ([100, 0], [100, 50]) x 3;     # rates 0, .5: mu, sigma .25
my @all   = ([100, 100]) x 6;              # all 1: sigma 0 -> floor .01

# slug => [name, history hours (index => [req, fail]), current, fires]
sub hist { my %h; my $i = 1; $h{ $i++ } = $_ for @_; return \%h }

my %case = (
    'an-z-above'   => ['Z above',   hist(@low),  [2000, 351],  1],
    'an-z-below'   => ['Z below',   hist(@low),  [2000, 349],  0],
    'an-floor-up'  => ['Floor up',  hist(@flat), [10000, 351], 1],
    'an-floor-low' => ['Floor low', hist(@flat), [10000, 349], 0],
    'an-half'      => ['Half (12.5%)', hist(@flat), [8, 1],    1],
    'an-half2'     => ['Half 4.5%', hist(@zero), [200, 9],     1],
    'an-rate-80'   => ['Rate 80',   hist(@high), [10, 8],      0],
    'an-rate-81'   => ['Rate 81',   hist(@high), [100, 81],    1],
    'an-rate-n9'   => ['Rate n9',   hist(@high), [9, 9],       0],
    'an-rate-n10'  => ['Rate n10',  hist(@high), [10, 10],     1],
    'an-z-n4'      => ['Z n4',      hist(@low),  [4, 4],       0],
    'an-z-n5'      => ['Z n5',      hist(@low),  [5, 5],       1],
    'an-hist-5'    => ['Hist 5',    hist(@low[0 .. 4]), [100, 100], 0],
    'an-hist-6'    => ['Hist 6',    hist(@low[0 .. 5]), [100, 100], 1],
    'an-hist-c49'  => ['Hist c-49',
                       { %{ hist(@low[0 .. 4]) }, 49 => [100, 10] },
                       [100, 100], 0],
    'an-hist-c48'  => ["Hist c-48 \"quoted\" \x{e9}",
                       { %{ hist(@low[0 .. 4]) }, 48 => [100, 10] },
                       [100, 100], 1],
    # z on a tie of the rounding to one decimal
    'an-tie-6.25'  => ['Tie 6.25',  hist(@quart), [32, 29],    1],
    'an-tie-2.25'  => ['Tie 2.25',  hist(@half),  [16, 13],    1],
    'an-tie-2.55'  => ['Tie 2.55',  hist(@half),  [80, 71],    1],
    'an-tie-neg10' => ['Tie -10',   hist(@all),   [10, 9],     1],
);

# mu, sigma and z as the module computes them, from what it should see
sub expect_anomaly {
    my ($hist, $cur) = @_;
    my @rates = map { $hist->{$_}[1] / $hist->{$_}[0] }
        grep { $_ >= 1 && $_ <= 48 && $hist->{$_}[0] > 0 }
        sort { $a <=> $b } keys %$hist;
    my ($n, $f) = @$cur;
    my $r = $f / $n;
    my ($mu, $sigma) = (0, 0);
    if (@rates) {
        my $s = 0;
        $s += $_ for @rates;
        $mu = $s / @rates;
        my $v = 0;
        $v += ($_ - $mu) * ($_ - $mu) for @rates;
        $sigma = sqrt($v / @rates);
    }
    my $z = ($r - $mu) / ($sigma > 0.01 ? $sigma : 0.01);
    my $p = int((200 * $f + $n) / (2 * $n));    # half up, in integers
    # Z half away from zero, in tenths, as the decimal it stands for: 6.25
    # is "6.3", and so is 2.55 "2.6" though binary holds it as 2.5499...
    my $tenths = int(abs($z) * 10 + 0.5 + 1e-9);
    my $zt = sprintf('%s%d.%d', ($z < 0 && $tenths) ? '-' : '',
                     int($tenths / 10), $tenths % 10);
    return ($z, $p, $zt, scalar @rates);
}

for my $slug (sort keys %case) {
    my ($name, $hist, $cur) = @{ $case{$slug} };
    my @hours = map {
        { hour => iso_hour($c - $_), requests => $hist->{$_}[0],
          failures => $hist->{$_}[1] }
    } sort { $a <=> $b } keys %$hist;
    push @hours, { hour => $c * 3600 + 5, requests => $cur->[0],
                   failures => $cur->[1] };
    admin_put($t, "/endpoints/$slug",
              { name => $name, user => "u-$slug", hours => \@hours },
              "import $slug");
}

# the sanity of the cases themselves: they sit where they are meant to
{
    my ($z) = expect_anomaly($case{'an-z-above'}[1], [2000, 351]);
    ok($z > 2.5 && $z < 2.52, "z above: z = $z, just above 2.5");
    ($z) = expect_anomaly($case{'an-z-below'}[1], [2000, 349]);
    ok($z < 2.5 && $z > 2.48, "z below: z = $z, just below 2.5");
    ($z) = expect_anomaly($case{'an-floor-up'}[1], [10000, 351]);
    ok($z > 2.5 && $z < 2.52, "floor up: z = $z with sigma 0");
    ($z) = expect_anomaly($case{'an-floor-low'}[1], [10000, 349]);
    ok($z < 2.5 && $z > 2.48, "floor low: z = $z with sigma 0");
    ($z) = expect_anomaly($case{'an-rate-80'}[1], [10, 8]);
    ok($z < 0, "rate 80: z = $z, the z rule is far");

    # the ties, and the Z they must show (not "6.2", "2.2", "2.5")
    for my $x (['an-tie-6.25', 6.25, '6.3', 91],
               ['an-tie-2.25', 2.25, '2.3', 81],
               ['an-tie-2.55', 2.55, '2.6', 89],
               ['an-tie-neg10', -10, '-10.0', 90])
    {
        my ($slug, $want, $text, $pct) = @$x;
        my ($z, $p, $zt) = expect_anomaly(@{ $case{$slug} }[1, 2]);
        ok(abs($z - $want) < 1e-9, "$slug: z = $z, $want but for binary");
        is($zt, $text, "$slug: the message shows z-score $text");
        is($p, $pct, "$slug: ... and $pct%");
    }
}

my $neps = endpoint_count($t);
my $doc = sweep($t, 'the first sweep');
my $fired = grep { $case{$_}[3] } keys %case;
is($doc->{endpoints}, $neps, 'the sweep examined every endpoint');
is($doc->{notifications}, $fired,
   "the sweep raised $fired notifications");

for my $slug (sort keys %case) {
    my ($name, $hist, $cur, $fires) = @{ $case{$slug} };
    my $list = notes("u-$slug");
    my ($z, $p, $zt, $nh) = expect_anomaly($hist, $cur);
    my $what = "$slug (n $cur->[0], f $cur->[1], |H| $nh, z "
        . sprintf('%.4f', $z) . ')';
    if ($fires) {
        is(scalar @$list, 1, "$what: one ANOMALY_DETECTED")
            or diag(json_encode($list));
        check_note($list->[0], "$slug: the notification",
            type => 'ANOMALY_DETECTED', slug => $slug, read => 0,
            message => "Endpoint '$name' failure rate spiked to $p%"
                       . " (z-score: $zt)");
    } else {
        is(scalar @$list, 0, "$what: nothing") or diag(json_encode($list));
    }
}

# the cooldown: another sweep in the same hour raises nothing, even with a
# worse current hour
$doc = sweep($t, 'a second sweep');
is($doc->{notifications}, 0, 'a second sweep raises nothing (cooldown)');
admin_put($t, '/endpoints/an-z-above',
          { hours => [{ hour => iso_hour($c), requests => 1000,
                        failures => 1000 }] },
          'a worse current hour for an-z-above');
$doc = sweep($t, 'a third sweep');
is($doc->{notifications}, 0, 'a third sweep raises nothing (cooldown)');
is(scalar @{ notes('u-an-z-above') }, 1,
   'still one ANOMALY_DETECTED for an-z-above');

# an endpoint that was below the rule goes above it: raised at the next
# sweep (it had no notification, so no cooldown)
admin_put($t, '/endpoints/an-z-below',
          { hours => [{ hour => iso_hour($c), requests => 2000,
                        failures => 351 }] },
          'an-z-below goes above');
$doc = sweep($t, 'a sweep after an-z-below went above');
is($doc->{notifications}, 1, 'it raises one notification');
{
    my $list = notes('u-an-z-below');
    my (undef, $p, $zt) = expect_anomaly($case{'an-z-below'}[1],
                                         [2000, 351]);
    is(scalar @$list, 1, 'an-z-below: one ANOMALY_DETECTED');
    check_note($list->[0], 'an-z-below, now above',
        type => 'ANOMALY_DETECTED', slug => 'an-z-below',
        message => "Endpoint 'Z below' failure rate spiked to $p%"
                   . " (z-score: $zt)");
}

# an endpoint without owner raises nothing
my $before = metric($t, 'mitte_notifications_total{type="ANOMALY_DETECTED"}');
admin_put($t, '/endpoints/an-orphan', {
    name => 'Orphan', hours => [
        (map { { hour => iso_hour($c - $_), requests => 100,
                 failures => ($_ % 2) * 10 } } 1 .. 6),
        { hour => iso_hour($c), requests => 100, failures => 100 } ] },
    'import an endpoint without owner');
$doc = sweep($t, 'a sweep with an endpoint without owner');
is($doc->{notifications}, 0, 'an endpoint without owner: none raised');
is(metric($t, 'mitte_notifications_total{type="ANOMALY_DETECTED"}'),
   $before, 'an endpoint without owner: no ANOMALY_DETECTED counted');


# ---- ENDPOINT_DOWN and ENDPOINT_RECOVERED ------------------------------------

# 4 failures: nothing; the 5th: DOWN; the 6th: nothing
dlv('dora', 'dn', $_) for 500, 502, 503, 500;
is_deeply(notes('dora'), [], 'dora: nothing after 4 failures');
dlv('dora', 'dn', 504);
my $list = notes('dora');
is_deeply(summary($list), ['ENDPOINT_DOWN dn'],
          'dora: ENDPOINT_DOWN at the 5th failure');
check_note($list->[0], 'the ENDPOINT_DOWN', type => 'ENDPOINT_DOWN',
           slug => 'dn', read => 0);
is($list->[0]{message},
   "Endpoint 'dn' failed 5 consecutive deliveries (last status 504)",
   'ENDPOINT_DOWN: the message of docs/api.md');
dlv('dora', 'dn', 503);
is_deeply(summary(notes('dora')), ['ENDPOINT_DOWN dn'],
          'dora: nothing more at the 6th failure');

# the first success: RECOVERED; the next success: nothing
dlv('dora', 'dn', 201);
$list = notes('dora');
is_deeply(summary($list), ['ENDPOINT_RECOVERED dn', 'ENDPOINT_DOWN dn'],
          'dora: ENDPOINT_RECOVERED at the first success');
check_note($list->[0], 'the ENDPOINT_RECOVERED',
           type => 'ENDPOINT_RECOVERED', slug => 'dn', read => 0);
is($list->[0]{message},
   "Endpoint 'dn' is delivering again (status 201) after 6 consecutive"
   . ' failures',
   'ENDPOINT_RECOVERED: the message of docs/api.md');
dlv('dora', 'dn', 200);
is(scalar @{ notes('dora') }, 2, 'dora: nothing at a second success');

# 5 new failures: DOWN again
dlv('dora', 'dn', 500) for 1 .. 4;
is(scalar @{ notes('dora') }, 2, 'dora: nothing after 4 new failures');
dlv('dora', 'dn', 500);
is_deeply(summary(notes('dora')),
          ['ENDPOINT_DOWN dn', 'ENDPOINT_RECOVERED dn', 'ENDPOINT_DOWN dn'],
          'dora: ENDPOINT_DOWN again after a success and 5 failures');

# inactivity longer than reset (2s): the streak starts again, and 5 new
# failures raise DOWN again
sleep 2.5;
dlv('dora', 'dn', 502) for 1 .. 4;
is(scalar @{ notes('dora') }, 3,
   'dora: nothing after 4 failures that follow inactivity');
dlv('dora', 'dn', 502);
$list = notes('dora');
is_deeply(summary($list),
          ['ENDPOINT_DOWN dn', 'ENDPOINT_DOWN dn', 'ENDPOINT_RECOVERED dn',
           'ENDPOINT_DOWN dn'],
          'dora: ENDPOINT_DOWN again after inactivity and 5 failures');
is($list->[0]{message},
   "Endpoint 'dn' failed 5 consecutive deliveries (last status 502)",
   'ENDPOINT_DOWN after inactivity: the count starts afresh');
dlv('dora', 'dn', 200);
$list = notes('dora');
is($list->[0]{type}, 'ENDPOINT_RECOVERED', 'dora: RECOVERED once more');
is($list->[0]{message},
   "Endpoint 'dn' is delivering again (status 200) after 5 consecutive"
   . ' failures',
   'ENDPOINT_RECOVERED: the failures of this streak');
is(scalar @$list, 5, 'dora: five notifications in all');

# a pause shorter than reset does not break a streak
dlv('dina', 'dn-short', 500) for 1 .. 3;
sleep 1;
dlv('dina', 'dn-short', 500) for 1 .. 2;
is_deeply(summary(notes('dina')), ['ENDPOINT_DOWN dn-short'],
          'dina: a pause under reset keeps the streak: DOWN at the 5th');

# a success without a DOWN before it raises nothing
dlv('dana', 'dn-none', 500) for 1 .. 4;
dlv('dana', 'dn-none', 200);
dlv('dana', 'dn-none', 200);
is_deeply(notes('dana'), [], 'dana: no RECOVERED without a DOWN');

# the display name in the messages, from the upstream's header
dlv('dina', 'dn-named?name=Named-Hook', 500) for 1 .. 5;
$list = notes('dina');
is($list->[0]{message},
   "Endpoint 'Named-Hook' failed 5 consecutive deliveries (last status 500)",
   'ENDPOINT_DOWN names the display name');

# an endpoint without owner raises nothing
$before = metric($t, 'mitte_notifications_total{type="ENDPOINT_DOWN"}');
for (1 .. 5) {
    my $r = $t->deliver(undef, '/hooks/dn-orphan?status=500',
                        headers => { 'X-Mitte-Plan' => 'pro' });
}
is(metric($t, 'mitte_notifications_total{type="ENDPOINT_DOWN"}'), $before,
   'an endpoint without owner: no ENDPOINT_DOWN');


# ---- QUOTA_WARNING and QUOTA_EXCEEDED ----------------------------------------

# mitte_quota free 10: warning at ceil(0.9 x 10) = 9
for my $i (1 .. 8) {
    $t->deliver('quinn', '/hooks/q1?status=200');
}
is_deeply(notes('quinn'), [], 'quinn: nothing after 8 of 10 requests');
$t->deliver('quinn', '/hooks/q1?status=200');
$list = notes('quinn');
is_deeply(summary($list), ['QUOTA_WARNING -'],
          'quinn: QUOTA_WARNING at the 9th request');
check_note($list->[0], 'the QUOTA_WARNING', type => 'QUOTA_WARNING',
           slug => undef, read => 0);
is($list->[0]{message}, 'You have used 9 of your 10 monthly requests (90%)',
   'QUOTA_WARNING: the message of docs/api.md');
my $r = $t->deliver('quinn', '/hooks/q1?status=200');
is($r->{status}, 200, 'quinn: the 10th request passes');
is(scalar @{ notes('quinn') }, 1, 'quinn: nothing more at the 10th');

$r = $t->post_as('quinn', '/hooks/q1?status=200');
is($r->{status}, 429, 'quinn: the 11th request is refused');
$list = notes('quinn');
is_deeply(summary($list), ['QUOTA_EXCEEDED -', 'QUOTA_WARNING -'],
          'quinn: QUOTA_EXCEEDED at the first refused request');
check_note($list->[0], 'the QUOTA_EXCEEDED', type => 'QUOTA_EXCEEDED',
           slug => undef, read => 0);
is($list->[0]{message},
   'You have reached your monthly limit of 10 requests; further deliveries'
   . ' are refused until ' . next_month() . '-01',
   'QUOTA_EXCEEDED: the message of docs/api.md');
$r = $t->post_as('quinn', '/hooks/q2?status=200');
is($r->{status}, 429, 'quinn: the 12th request is refused');
is(scalar @{ notes('quinn') }, 2, 'quinn: nothing more at the 2nd refusal');


# mitte_quota trial 7 warn=50%: warning at ceil(3.5) = 4, the percentage
# rounded down
for my $i (1 .. 3) {
    $t->deliver('quincy', '/hooks/q3?status=200',
                headers => { 'X-Mitte-Plan' => 'trial' });
}
is_deeply(notes('quincy'), [], 'quincy: nothing after 3 of 7 requests');
$t->deliver('quincy', '/hooks/q3?status=200',
            headers => { 'X-Mitte-Plan' => 'trial' });
$list = notes('quincy');
is_deeply(summary($list), ['QUOTA_WARNING -'],
          'quincy: QUOTA_WARNING at the 4th request (ceil(50% x 7))');
is($list->[0]{message}, 'You have used 4 of your 7 monthly requests (57%)',
   'QUOTA_WARNING: the percentage rounded down');


# ---- TRIAL_ENDING ------------------------------------------------------------

my $now = int(time());

# an end within the notice (3d): one at the delivery that first shows it
my $end1 = $now + 2 * 86400;
dlv('tina', 'tr', 200, 'X-Trial' => $end1, 'X-Mitte-Plan' => 'pro');
$list = notes('tina');
is_deeply(summary($list), ['TRIAL_ENDING -'],
          'tina: TRIAL_ENDING at the delivery that shows the end');
check_note($list->[0], 'the TRIAL_ENDING', type => 'TRIAL_ENDING',
           slug => undef, read => 0);
is($list->[0]{message}, 'Your Pro trial ends on ' . iso_ms($end1 * 1000),
   'TRIAL_ENDING: the message of docs/api.md');

# the same end again, or a sweep: nothing
dlv('tina', 'tr', 200, 'X-Trial' => $end1, 'X-Mitte-Plan' => 'pro');
is(scalar @{ notes('tina') }, 1, 'tina: nothing at a second delivery');
$doc = sweep($t, 'a sweep after tina');
is($doc->{notifications}, 0, 'the sweep raises nothing');
is(scalar @{ notes('tina') }, 1, 'tina: nothing at the sweep');

# the same end written otherwise (ISO-8601): the same end, nothing new
my $end1_iso = strftime('%Y-%m-%dT%H:%M:%SZ', gmtime($end1));
dlv('tina', 'tr', 200, 'X-Trial' => $end1_iso, 'X-Mitte-Plan' => 'pro');
is(scalar @{ notes('tina') }, 1, 'tina: the same end in ISO-8601: nothing');

# a new end within the notice: a new one
my $end2 = $now + 86400 + 7;
dlv('tina', 'tr', 200,
    'X-Trial' => strftime('%Y-%m-%dT%H:%M:%SZ', gmtime($end2)),
    'X-Mitte-Plan' => 'pro');
$list = notes('tina');
is_deeply(summary($list), ['TRIAL_ENDING -', 'TRIAL_ENDING -'],
          'tina: a new end within the notice raises a new one');
is($list->[0]{message}, 'Your Pro trial ends on ' . iso_ms($end2 * 1000),
   'the new TRIAL_ENDING names the new end');

# an end further than the notice, or past: nothing
dlv('tom', 'tr-far', 200, 'X-Trial' => $now + 3 * 86400 + 3600,
    'X-Mitte-Plan' => 'pro');
dlv('tim', 'tr-past', 200, 'X-Trial' => $now - 3600,
    'X-Mitte-Plan' => 'pro');
is_deeply(notes('tom'), [], 'tom: an end further than the notice: nothing');
is_deeply(notes('tim'), [], 'tim: an end in the past: nothing');

# an end just beyond the notice: nothing at the delivery; once it is
# within, a sweep raises it, once
my $end3 = int(time()) + 3 * 86400 + 2;
dlv('tess', 'tr-soon', 200, 'X-Trial' => $end3, 'X-Mitte-Plan' => 'pro');
is_deeply(notes('tess'), [], 'tess: an end 3d + 2s away: nothing');

# through the operator API: raised at the sweep
admin_put($t, '/users/uma',
          { trialEndsAt => iso_ms(($now + 3600) * 1000) }, 'PUT /users/uma');
admin_put($t, '/users/ulf',
          { trialEndsAt => iso_ms(($now - 60) * 1000) }, 'PUT /users/ulf');
admin_put($t, '/users/ute',
          { trialEndsAt => iso_ms(($now + 4 * 86400) * 1000) },
          'PUT /users/ute');
sleep(max(0, $end3 - 3 * 86400 - time() + 0.5));
$doc = sweep($t, 'a sweep after the operator set trial ends');
is($doc->{notifications}, 2, 'the sweep raises TRIAL_ENDING for uma, tess');
$list = notes('uma');
is_deeply(summary($list), ['TRIAL_ENDING -'],
          'uma: TRIAL_ENDING at the sweep');
is($list->[0]{message},
   'Your Pro trial ends on ' . iso_ms(($now + 3600) * 1000),
   'uma: the message names the end');
is_deeply(summary(notes('tess')), ['TRIAL_ENDING -'],
          'tess: TRIAL_ENDING at the sweep once the end is within');
is_deeply(notes('ulf'), [], 'ulf: a past end: nothing');
is_deeply(notes('ute'), [], 'ute: an end 4 days away: nothing');
$doc = sweep($t, 'one more sweep');
is($doc->{notifications}, 0, 'one more sweep raises nothing');
is(scalar @{ notes('uma') }, 1, 'uma: still one');
is(scalar @{ notes('tess') }, 1, 'tess: still one');

# the operator sets a new end: a new one at the sweep
admin_put($t, '/users/uma',
          { trialEndsAt => iso_ms(($now + 7200) * 1000) }, 'a new end for uma');
$doc = sweep($t, 'a sweep after a new end');
is($doc->{notifications}, 1, 'the sweep raises one');
is_deeply(summary(notes('uma')), ['TRIAL_ENDING -', 'TRIAL_ENDING -'],
          'uma: a new end, a new TRIAL_ENDING');

# metrics count what was raised
{
    my (undef, $m) = $t->metrics;
    is($m->{'mitte_notifications_total{type="TRIAL_ENDING"}'}, 5,
       'metrics: 5 TRIAL_ENDING');
    is($m->{'mitte_notifications_total{type="QUOTA_WARNING"}'}, 2,
       'metrics: 2 QUOTA_WARNING');
    is($m->{'mitte_notifications_total{type="QUOTA_EXCEEDED"}'}, 1,
       'metrics: 1 QUOTA_EXCEEDED');
    is($m->{'mitte_notifications_total{type="ENDPOINT_DOWN"}'}, 5,
       'metrics: 5 ENDPOINT_DOWN');
    is($m->{'mitte_notifications_total{type="ENDPOINT_RECOVERED"}'}, 2,
       'metrics: 2 ENDPOINT_RECOVERED');
    is($m->{'mitte_notifications_total{type="ANOMALY_DETECTED"}'},
       $fired + 1, 'metrics: ' . ($fired + 1) . ' ANOMALY_DETECTED');
}

$t->stop;


# ---- the notifications API ---------------------------------------------------

# threshold=1: each failure after a success raises DOWN, each success after
# it RECOVERED; keep 5; a short anomaly cooldown
$T0 = time();
my $k = Mitte::Test->new(http => <<'END');
    mitte_zone m:2m;
    mitte_endpoint_down threshold=1;
    mitte_notifications_keep 5;
    mitte_anomaly cooldown=2s;

    server {
        listen 127.0.0.1:%%PORT%%;

        location ~ ^/hooks/(?<slug>[^/]+)$ {
            mitte_endpoint $slug;
            mitte_user $http_x_mitte_user;
            proxy_pass http://%%UPSTREAM%%;
        }

        location = /mitte/all {
            mitte_stats all;
        }
        location /mitte/notifications {
            mitte_user $http_x_mitte_user;
            mitte_notifications;
        }
        location /mitte/anon/notifications {
            mitte_notifications;
        }
        location /mitte-admin/ {
            mitte_admin;
        }
    }
END
$k->start;

sub knotes {
    my ($user, $query, $label) = @_;
    return notes_doc($k, $user, $query, $label);
}

sub kread {
    my ($user, $body, $label) = @_;
    my ($r, $doc) = $k->json(POST => '/mitte/notifications/read',
                             content => $body,
                             headers => { 'X-Mitte-User' => $user,
                                          'Content-Type' => 'application/json' });
    return ($r, $doc);
}

# alice: 7 notifications, D R D R D R D; the ids of each as created
my @ids;
for my $i (1 .. 7) {
    my $st = $i % 2 ? 503 : 200;
    $k->deliver('alice', "/hooks/ka?status=$st");
    my $d = knotes('alice');
    push @ids, $d->{notifications}[0]{id};
}
$k->deliver('bob', '/hooks/kb?status=500');

my $d = knotes('alice');
is($d->{unread}, 5, 'alice: 5 unread (the newest 5 kept)');
my $all = $d->{notifications};
is(scalar @$all, 5, 'alice: the newest 5 notifications kept');
is_deeply([map { $_->{id} } @$all], [reverse @ids[2 .. 6]],
          'alice: newest first, the 2 oldest dropped');
is_deeply(summary($all),
          ['ENDPOINT_DOWN ka', 'ENDPOINT_RECOVERED ka', 'ENDPOINT_DOWN ka',
           'ENDPOINT_RECOVERED ka', 'ENDPOINT_DOWN ka'],
          'alice: the types');
my %seen;
$seen{ $_->{id} }++ for @$all;
is(scalar keys %seen, 5, 'alice: distinct ids');
for my $i (0 .. $#$all) {
    check_note($all->[$i], "alice #$i", read => 0);
}
my @ts = map { iso_parse($_->{timestamp}) // 0 } @$all;
ok(!grep({ $ts[$_] < $ts[$_ + 1] } 0 .. $#ts - 1),
   'alice: timestamps newest first') or diag(json_encode(\@ts));

# isolation
$d = knotes('bob');
is_deeply(summary($d->{notifications}), ['ENDPOINT_DOWN kb'],
          'bob: his notification only');
is($d->{unread}, 1, 'bob: 1 unread');
my $bob_id = $d->{notifications}[0]{id};
ok(!grep({ $_->{id} eq $bob_id } @$all), "alice does not see bob's");
is_deeply(knotes('carol'), { unread => 0, notifications => [] },
          'carol, never seen: an empty list');

# limit and before
$d = knotes('alice', '?limit=2');
is_deeply([map { $_->{id} } @{ $d->{notifications} }], [@ids[6, 5]],
          'limit=2: the 2 newest');
is($d->{unread}, 5, 'limit=2: unread counts all');
$d = knotes('alice', "?limit=2&before=$ids[5]");
is_deeply([map { $_->{id} } @{ $d->{notifications} }], [@ids[4, 3]],
          'limit=2, before the 2nd: the next page');
# arguments are percent-decoded, as a client library may encode them
my $enc = join '', map { sprintf '%%%02X', ord } split //, $ids[5];
$d = knotes('alice', "?limit=%32&before=$enc");
is_deeply([map { $_->{id} } @{ $d->{notifications} }], [@ids[4, 3]],
          'limit=%32&before=<percent-encoded id>: the same page');
$d = knotes('alice', "?limit=2&before=$ids[3]");
is_deeply([map { $_->{id} } @{ $d->{notifications} }], [$ids[2]],
          'the last page');
$d = knotes('alice', "?before=$ids[2]");
is_deeply($d->{notifications}, [], 'before the oldest kept: nothing');
$d = knotes('alice', "?before=$ids[1]");
is_deeply($d->{notifications}, [], 'before a dropped one: nothing');
$d = knotes('alice', "?before=$bob_id");
is_deeply([map { $_->{id} } @{ $d->{notifications} }],
          [reverse @ids[2 .. 6]],
          "before bob's (newer than all of alice's): alice's, not bob's");
$d = knotes('alice', '?limit=1');
is(scalar @{ $d->{notifications} }, 1, 'limit=1');
$d = knotes('alice', '?limit=100');
is(scalar @{ $d->{notifications} }, 5, 'limit=100');
for my $bad ('0', '101', '-1', 'abc', '', '2x', '1000000000000') {
    my ($r, $e) = $k->json(GET => "/mitte/notifications?limit=$bad",
                           headers => { 'X-Mitte-User' => 'alice' });
    error_ok($r, $e, 400, 'invalid_field', "limit=$bad");
}
for my $bad ('nope', '123') {
    my ($r, $e) = $k->json(GET => "/mitte/notifications?before=$bad",
                           headers => { 'X-Mitte-User' => 'alice' });
    error_ok($r, $e, 400, 'invalid_field', "before=$bad");
}

# marking read
($r, $doc) = kread('alice', { ids => [@ids[6, 4]] });
json_answer_ok($r, $doc, 200, 'POST read with 2 ids');
is_deeply($doc, { unread => 3 }, 'POST read with 2 ids: 3 unread');
$d = knotes('alice');
is($d->{unread}, 3, 'GET: 3 unread');
is_deeply([map { $_->{read} ? 1 : 0 } @{ $d->{notifications} }],
          [1, 0, 1, 0, 0], 'the two are read');
ok(JSON::PP::is_bool($d->{notifications}[0]{read}), 'read is a boolean');
$d = knotes('alice', '?unread=1');
is_deeply([map { $_->{id} } @{ $d->{notifications} }], [@ids[5, 3, 2]],
          'unread=1: the unread ones');
is($d->{unread}, 3, 'unread=1: unread');
$d = knotes('alice', '?unread=1&limit=1');
is_deeply([map { $_->{id} } @{ $d->{notifications} }], [$ids[5]],
          'unread=1&limit=1');
$d = knotes('alice', "?unread=1&before=$ids[5]");
is_deeply([map { $_->{id} } @{ $d->{notifications} }], [@ids[3, 2]],
          'unread=1&before');

# unknown, dropped, already read and other users' ids are ignored
($r, $doc) = kread('alice', { ids => ['00000000000000000000', $ids[0],
                                      $ids[6], $bob_id, 'x'] });
json_answer_ok($r, $doc, 200, 'POST read with ids to ignore');
is_deeply($doc, { unread => 3 }, 'ids to ignore: still 3 unread');
is(knotes('bob')->{unread}, 1, "alice cannot mark bob's as read");
($r, $doc) = kread('bob', { ids => [$ids[5]] });
is_deeply($doc, { unread => 1 }, "bob marking alice's: his count");
is(knotes('alice')->{unread}, 3, "bob cannot mark alice's as read");
($r, $doc) = kread('alice', { ids => [] });
is_deeply($doc, { unread => 3 }, 'no ids: 3 unread');

# bad bodies change nothing
for my $c (['{"ids": [', 'invalid_json', 'malformed JSON'],
           ['[1, 2]', 'invalid_json', 'an array'],
           ['"all"', 'invalid_json', 'a string'],
           ['{}', 'invalid_field', 'an empty object'],
           ['{"ids": "x"}', 'invalid_field', 'ids a string'],
           ['{"ids": [1]}', 'invalid_field', 'ids of numbers'],
           ['{"all": "yes"}', 'invalid_field', 'all a string'],
           ['{"all": 1}', 'invalid_field', 'all a number'],
           ['{"every": true}', 'invalid_field', 'an unknown field'],
           ['{"all": true, "x": 1}', 'invalid_field',
            'all with an unknown field'])
{
    my ($body, $code, $label) = @$c;
    ($r, $doc) = kread('alice', $body);
    error_ok($r, $doc, 400, $code, "POST read: $label");
}
($r, $doc) = kread('alice', '');
error_ok($r, $doc, 400, [qw(invalid_json bad_request)], 'POST read: empty');
is(knotes('alice')->{unread}, 3, 'the bad bodies changed nothing');
($r, $doc) = kread('alice', json_encode({ ids => ['x' x 70000] }));
error_ok($r, $doc, 413, 'too_large', 'POST read: over 64 KiB');

($r, $doc) = kread('alice', { all => JSON::PP::false });
is_deeply($doc, { unread => 3 }, 'all: false marks nothing');
($r, $doc) = kread('alice', { all => JSON::PP::true });
json_answer_ok($r, $doc, 200, 'POST read all');
is_deeply($doc, { unread => 0 }, 'all: 0 unread');
$d = knotes('alice');
ok(!grep({ !$_->{read} } @{ $d->{notifications} }), 'all are read');
is_deeply(knotes('alice', '?unread=1')->{notifications}, [],
          'unread=1: nothing');
is(knotes('bob')->{unread}, 1, "alice's all leaves bob's alone");

# a new notification is unread, and drops the oldest
$k->deliver('alice', '/hooks/ka?status=200');
$d = knotes('alice');
is($d->{unread}, 1, 'a new notification: 1 unread');
is(scalar @{ $d->{notifications} }, 5, 'still 5 kept');
is($d->{notifications}[0]{type}, 'ENDPOINT_RECOVERED', 'the new one first');
is($d->{notifications}[4]{id}, $ids[3], 'the oldest dropped');

# 401, 404, 405
($r, $doc) = $k->json(GET => '/mitte/notifications');
error_ok($r, $doc, 401, 'unauthorized', 'GET without a user');
($r, $doc) = $k->json(POST => '/mitte/notifications/read',
                      content => { all => JSON::PP::true });
error_ok($r, $doc, 401, 'unauthorized', 'POST read without a user');
($r, $doc) = $k->json(GET => '/mitte/anon/notifications',
                      headers => { 'X-Mitte-User' => 'alice' });
error_ok($r, $doc, 401, 'unauthorized', 'a location without mitte_user');
is(knotes('alice')->{unread}, 1, 'the refused POST changed nothing');
($r, $doc) = $k->json(GET => '/mitte/notifications/nope',
                      headers => { 'X-Mitte-User' => 'alice' });
error_ok($r, $doc, 404, 'not_found', 'GET an unknown path');
($r, $doc) = $k->json(GET => '/mitte/notifications/read',
                      headers => { 'X-Mitte-User' => 'alice' });
error_ok($r, $doc, 405, 'method_not_allowed', 'GET .../read');
like($r->{headers}{allow} // '', qr/\bPOST\b/, 'GET .../read: Allow POST');
($r, $doc) = $k->json(DELETE => '/mitte/notifications',
                      headers => { 'X-Mitte-User' => 'alice' });
error_ok($r, $doc, 405, 'method_not_allowed', 'DELETE /mitte/notifications');
like($r->{headers}{allow} // '', qr/\bGET\b/, 'DELETE: Allow GET');
unlike($r->{headers}{allow} // '', qr/\bDELETE\b/, 'DELETE: not in Allow');


# ---- newest first holds across rules -----------------------------------------

# a DOWN at a delivery and an anomaly at the next sweep, in the same second:
# the anomaly is the newer, listed first, and its timestamp is not older
clear_of_hour_end(10);
$c = hour_now();
admin_put($k, '/endpoints/kz', {
    user => 'zoe', hours => [
        (map { { hour => iso_hour($c - $_), requests => 100,
                 failures => ($_ % 2) * 10 } } 1 .. 6),
        { hour => iso_hour($c), requests => 100, failures => 90 } ] },
    'import kz');
# the import holds 7 hours of 100 requests: deliver() waits for the 701st
$k->set_delivered('kz', 700);
# early in a second, so that the delivery and the sweep share it
sleep(1.1 - (time() - int(time()))) if time() - int(time()) > 0.5;
$k->deliver('zoe', '/hooks/kz?status=500');
$doc = sweep($k, 'a sweep for zoe');
is($doc->{notifications}, 1, 'the sweep raises the anomaly of kz');
$list = knotes('zoe')->{notifications};
is_deeply(summary($list), ['ANOMALY_DETECTED kz', 'ENDPOINT_DOWN kz'],
          'zoe: the anomaly, newest first');
my @zts = map { $_->{timestamp} // '' } @$list;
ok(@zts == 2 && $zts[0] ge $zts[1],
   'zoe: the newer notification does not have the older timestamp')
    or diag("timestamps @zts");

# ---- the rolling cooldown ----------------------------------------------------

$doc = sweep($k, 'a sweep within the cooldown');
is($doc->{notifications}, 0, 'within the cooldown (2s): nothing');
sleep 2.2;
$doc = sweep($k, 'a sweep after the cooldown');
is($doc->{notifications}, 1, 'after the cooldown: the anomaly again');
is_deeply(summary(knotes('zoe')->{notifications}),
          ['ANOMALY_DETECTED kz', 'ANOMALY_DETECTED kz', 'ENDPOINT_DOWN kz'],
          'zoe: a second ANOMALY_DETECTED');

$k->stop;

done_testing();
