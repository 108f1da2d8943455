#!/usr/bin/perl

# bench/zone.pl: how many bytes of mitte_zone each kind of entry takes, for
# sizing the zone (docs/operations.md).
#
#   MITTE_MODULE=build/ngx_http_mitte_module.so perl -I t/lib bench/zone.pl
#
# One nginx (one worker, a 64m zone) per measurement of the replay buffer,
# one for the rest. Each figure is (mitte_zone_used_bytes after - before) /
# entries made, GET /mitte-admin/metrics before and after:
#
#   endpoint       PUT /mitte-admin/endpoints/ep-<i> {}          (no name)
#   display name   PUT the same endpoints {"name": <24 bytes>}
#   user           PUT /mitte-admin/users/u-<i> {plan, email}
#   preferences    PUT /mitte/preferences as each of those users
#   notification   deliveries 503/200 in turn to one endpoint of one user,
#                  mitte_endpoint_down threshold=1: each one raises
#                  ENDPOINT_DOWN or ENDPOINT_RECOVERED (counted from
#                  mitte_notifications_total)
#   outbox send    the same with a user whose webhook points to a port where
#                  nothing listens (sends stay pending, retried), minus the
#                  notification's own share
#   replay event   the zone used at start with mitte_sse_replay 8192 and 1024
#
# The notifications come first: deliver() polls the all-endpoints document,
# which the thousands of endpoints made later would make slow.
#
# The zone counts whole pages of its slab allocator, so each figure is an
# average over many entries (N, default 2000).

use strict;
use warnings;

use Test::More;
use Mitte::Test qw(:all);

require_module();

my $N = $ENV{N} || 2000;

sub conf {
    my ($replay) = @_;
    return <<"END";
    mitte_zone m:64m;
    mitte_sse_replay $replay;
    mitte_endpoint_down threshold=1;
    mitte_notifications_keep 10000;
    mitte_webhook_allow 127.0.0.0/8;
    mitte_delivery_retries 20;
    mitte_anomaly interval=1h;
    server {
        listen 127.0.0.1:%%PORT%%;
        location ~ ^/hooks/(?<slug>[^/]+)\$ {
            mitte_endpoint \$slug;
            mitte_user \$http_x_mitte_user;
            proxy_pass http://%%UPSTREAM%%;
        }
        location = /mitte/all { mitte_stats all; }
        location = /mitte/preferences {
            mitte_user \$http_x_mitte_user;
            mitte_preferences;
        }
        location /mitte-admin/ { mitte_admin; }
    }
END
}

sub used {
    my ($t) = @_;
    my ($r, $m) = $t->metrics;
    return $m->{mitte_zone_used_bytes};
}

sub notes {
    my ($t) = @_;
    my ($r, $m) = $t->metrics;
    my $n = 0;
    $n += $m->{$_} for grep { /^mitte_notifications_total/ } keys %$m;
    return $n;
}

sub put_ok {
    my ($t, $path, $doc, %opt) = @_;
    my $r = $t->request('PUT', $path, content => $doc, %opt);
    die "PUT $path: $r->{status} $r->{content}" unless $r->{status} == 200;
    return;
}

sub report {
    my ($what, $bytes, $n) = @_;
    printf "%-14s %8.0f bytes each (%d bytes / %d)\n", $what, $bytes / $n,
        $bytes, $n;
    return $bytes / $n;
}

# one endpoint, alternately failing and succeeding: one notification each
sub flap {
    my ($t, $user, $slug, $n) = @_;
    for my $i (1 .. $n) {
        $t->deliver($user, "/hooks/$slug?status=" . ($i % 2 ? 503 : 200));
    }
    return;
}

$| = 1;

my %start;
for my $replay (1024, 8192) {
    my $t = Mitte::Test->new(http => conf($replay), workers => 1);
    $t->start;
    $start{$replay} = used($t);
    $t->stop;
}
printf "zone used at start: %d bytes (mitte_sse_replay 1024)\n",
    $start{1024};
report('replay event', $start{8192} - $start{1024}, 8192 - 1024);

my $t = Mitte::Test->new(http => conf(1024), workers => 1,
                         allow => [qr/connect\(\)/]);
$t->start;

my $notes = $N < 1000 ? $N : 1000;
my $u = used($t);
my $c = notes($t);
flap($t, 'nora', 'flap', $notes);
my $per_note = report('notification', used($t) - $u, notes($t) - $c);

put_ok($t, '/mitte/preferences',
       { webhook => { enabled => JSON::PP::true,
                      url => 'http://127.0.0.1:' . $t->dead_port
                             . '/hooks/mitte-notifications' } },
       headers => { 'X-Mitte-User' => 'walt' });
$u = used($t);
$c = notes($t);
flap($t, 'walt', 'flap-w', $notes);
my $made = notes($t) - $c;
my $bytes = used($t) - $u;
report('outbox send', $bytes - $per_note * $made, $made);

my ($r, $m) = $t->metrics;
printf "pending webhook sends: %s\n",
    $m->{'mitte_outbox_pending{channel="webhook"}'} // '?';

$u = used($t);
put_ok($t, "/mitte-admin/endpoints/ep-$_", {}) for 1 .. $N;
report('endpoint', used($t) - $u, $N);

$u = used($t);
put_ok($t, "/mitte-admin/endpoints/ep-$_", { name => sprintf('%-24s', $_) })
    for 1 .. $N;
report('display name', used($t) - $u, $N);

$u = used($t);
put_ok($t, "/mitte-admin/users/u-$_",
       { plan => 'pro', email => "u-$_\@example.com" }) for 1 .. $N;
report('user', used($t) - $u, $N);

$u = used($t);
put_ok($t, '/mitte/preferences', { email => { enabled => JSON::PP::false },
       types => { QUOTA_WARNING => JSON::PP::false } },
       headers => { 'X-Mitte-User' => "u-$_" }) for 1 .. $N;
report('preferences', used($t) - $u, $N);

$t->stop;
done_testing();
