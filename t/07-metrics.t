#!/usr/bin/perl

# GET /mitte-admin/metrics: the Prometheus text format with exact counts of
# deliveries by result, quota rejections, evictions, endpoints and zone
# bytes; deliveries counted exactly under concurrency.

use strict;
use warnings;

use Test::More;
use POSIX qw(_exit);
use Mitte::Test qw(:all);

require_module();

my $t = Mitte::Test->new(
    allow => [qr/connect\(\) failed \(111: Connection refused\)/],
    http  => <<'END');
    mitte_zone m:1m;
    mitte_quota free 2;
    mitte_quota pro 100000;

    server {
        listen 127.0.0.1:%%PORT%%;

        location ~ ^/hooks/(?<slug>[^/]+)$ {
            mitte_endpoint $slug;
            mitte_user $http_x_mitte_user;
            mitte_user_plan $http_x_mitte_plan;
            proxy_pass http://%%UPSTREAM%%;
        }
        location ~ ^/dead/(?<slug>[^/]+)$ {
            mitte_endpoint $slug;
            mitte_user $http_x_mitte_user;
            proxy_pass http://%%DEAD%%;
        }
        location = /mitte/all {
            mitte_stats all;
        }
        location /mitte-admin/ {
            mitte_admin;
        }
    }
END

$t->start;

my @names = ('mitte_deliveries_total{result="success"}',
             'mitte_deliveries_total{result="failure"}',
             'mitte_quota_rejections_total',
             'mitte_evictions_total{kind="endpoint"}',
             'mitte_endpoints',
             'mitte_zone_used_bytes',
             'mitte_zone_free_bytes');

sub metrics_ok {
    my ($label, %want) = @_;
    my ($r, $m, $junk) = $t->metrics;
    is($r->{status}, 200, "$label: 200");
    like($r->{headers}{'content-type'} // '',
         qr{^text/plain; ?version=0\.0\.4\b}, "$label: Content-Type");
    is_deeply($junk, [], "$label: every line in the text format");
    for my $n (@names) {
        ok(defined $m->{$n}, "$label: $n present");
    }
    for my $n (sort keys %want) {
        is($m->{$n}, $want{$n}, "$label: $n $want{$n}");
    }
    return $m;
}

my $m = metrics_ok('at start',
    'mitte_deliveries_total{result="success"}' => 0,
    'mitte_deliveries_total{result="failure"}' => 0,
    'mitte_quota_rejections_total' => 0,
    'mitte_evictions_total{kind="endpoint"}' => 0,
    'mitte_endpoints' => 0);

my $size = 1024 * 1024;
my $used0 = $m->{mitte_zone_used_bytes} // 0;
ok($used0 > 0 && $used0 < $size, 'zone used bytes within the size');
ok(($m->{mitte_zone_free_bytes} // 0) > 0, 'zone free bytes');
ok($used0 + ($m->{mitte_zone_free_bytes} // 0) <= $size,
   'used + free within the size');

# -- deliveries --------------------------------------------------------------

my %pro = (headers => { 'X-Mitte-Plan' => 'pro' });
$t->deliver('m1', "/hooks/m-a?status=$_", %pro) for 200, 200, 204, 503;
my $r = $t->deliver('m1', '/dead/m-dead', %pro);
is($r->{status}, 502, 'the dead upstream: 502');
$t->deliver('m2', '/hooks/m-b?status=200') for 1, 2;
$r = $t->post_as('m2', '/hooks/m-b?status=200');
is($r->{status}, 429, 'm2 over the quota');
$r = $t->post_as('m1', '/hooks/bad!slug?status=200');
is($r->{status}, 200, 'an invalid slug, not recorded');

$m = metrics_ok('after deliveries',
    'mitte_deliveries_total{result="success"}' => 5,
    'mitte_deliveries_total{result="failure"}' => 2,
    'mitte_quota_rejections_total' => 1,
    'mitte_evictions_total{kind="endpoint"}' => 0,
    'mitte_endpoints' => 3);

# imported endpoints count as endpoints, and leave when deleted; 40 of them
# take more than the pages the zone had in use (the counts may be by page)
my $doc;
for my $i (1 .. 40) {
    ($r, $doc) = $t->json(PUT => "/mitte-admin/endpoints/m-imp-$i",
                          content => { name => "Imp $i", user => 'm1' });
    is($r->{status}, 200, "import m-imp-$i") if $i == 1 || $i == 40;
}
my $m2 = metrics_ok('after imports', 'mitte_endpoints' => 43);
ok($m2->{mitte_zone_used_bytes} > $used0, 'zone used bytes grew');
ok($m2->{mitte_zone_free_bytes} < $m->{mitte_zone_free_bytes},
   'zone free bytes shrank');
for my $i (1 .. 40) {
    ($r, $doc) = $t->json(DELETE => "/mitte-admin/endpoints/m-imp-$i");
    is($r->{status}, 200, "delete m-imp-$i") if $i == 1 || $i == 40;
}
metrics_ok('after deletes', 'mitte_endpoints' => 3,
    'mitte_deliveries_total{result="success"}' => 5,
    'mitte_deliveries_total{result="failure"}' => 2);

# -- concurrency: every delivery counted once --------------------------------

my $parallel = 4;
my $each = 40;
my @kids;
for my $k (1 .. $parallel) {
    my $pid = fork;
    die "fork: $!" unless defined $pid;
    if ($pid == 0) {
        my $fails = 0;
        for my $i (1 .. $each) {
            my $code = $i % 4 ? 200 : 500;
            my $res = $t->post_as('m3', "/hooks/m-c?status=$code",
                                  headers => { 'X-Mitte-Plan' => 'pro' });
            $fails++ if $res->{status} != $code;
        }
        _exit($fails ? 1 : 0);
    }
    push @kids, $pid;
}
my $kids_ok = 0;
for my $pid (@kids) {
    waitpid $pid, 0;
    $kids_ok++ if $? == 0;
}
is($kids_ok, $parallel, 'concurrent: every request answered as asked');

my $total = $parallel * $each;
my $ep = $t->wait_recorded('m-c', $total);
check_endpoint($ep, 'concurrent m-c', requests => $total,
               failures => $total / 4);
metrics_ok('after concurrent deliveries',
    'mitte_deliveries_total{result="success"}' => 5 + $total * 3 / 4,
    'mitte_deliveries_total{result="failure"}' => 2 + $total / 4,
    'mitte_endpoints' => 4);

$t->stop;

done_testing();
