#!/usr/bin/perl

# A reload (HUP) keeps every counter: statistics, streaks, quota use, users
# and the metrics; the new workers go on counting in the same zone.

use strict;
use warnings;

use Test::More;
use Mitte::Test qw(:all);

require_module();

sub http_conf {
    my ($free, $extra) = @_;
    $extra //= '';
    return <<"END";
    mitte_zone m:1m;
    mitte_quota free $free;

    server {
        listen 127.0.0.1:%%PORT%%;

        location ~ ^/hooks/(?<slug>[^/]+)\$ {
            mitte_endpoint \$slug;
            mitte_user \$http_x_mitte_user;
            proxy_pass http://%%UPSTREAM%%;
        }
$extra
        location = /mitte/stats {
            mitte_user \$http_x_mitte_user;
            mitte_stats;
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

my $t = Mitte::Test->new(http => http_conf(100));
$t->start;

my $h0 = hour_now();

# -- state before the reload -------------------------------------------------

$t->deliver('ru', "/hooks/r-one?status=$_") for 200, 200, 200, 200, 503, 500;
$t->deliver('ru', '/hooks/r-two?status=201');
$t->deliver('rw', '/hooks/r-three?status=302');

my ($r, $doc) = $t->json(PUT => '/mitte-admin/endpoints/r-imp', content => {
    name => 'Imported', user => 'ru',
    hours => [{ hour => iso_hour($h0 - 3), requests => 8, failures => 3 }] });
json_answer_ok($r, $doc, 200, 'import r-imp');
($r, $doc) = $t->json(PUT => '/mitte-admin/users/rv', content => {
    plan => 'pro', email => 'rv@example.com' });
json_answer_ok($r, $doc, 200, 'PUT /users/rv');

my @counters = ('mitte_deliveries_total{result="success"}',
                'mitte_deliveries_total{result="failure"}',
                'mitte_quota_rejections_total',
                'mitte_evictions_total{kind="endpoint"}',
                'mitte_endpoints');

sub snapshot {
    my %s;
    my ($r1, $d1) = $t->json(GET => '/mitte/stats',
                             headers => { 'X-Mitte-User' => 'ru' });
    $s{stats} = $d1;
    my ($r2, $d2) = $t->json(GET => '/mitte-admin/endpoints');
    $s{endpoints} = [sort { $a->{slug} cmp $b->{slug} }
                     @{ ($d2 || {})->{endpoints} || [] }];
    my ($r3, $d3) = $t->json(GET => '/mitte-admin/users/rv');
    $s{user} = $d3;
    my (undef, $m) = $t->metrics;
    $s{metrics} = { map { $_ => $m->{$_} } @counters };
    return \%s;
}

my $before = snapshot();

# the state is what it should be, so that keeping it means something
check_endpoint(find_endpoint($before->{stats}, 'r-one'), 'r-one before',
    requests => 6, failures => 2, streak => 2, lastStatus => 500);
is($before->{stats}{quota}{used}, 7, 'quota used 7 before');
is_deeply($before->{metrics}, {
    'mitte_deliveries_total{result="success"}' => 5,
    'mitte_deliveries_total{result="failure"}' => 3,
    'mitte_quota_rejections_total' => 0,
    'mitte_evictions_total{kind="endpoint"}' => 0,
    'mitte_endpoints' => 4,
}, 'metrics before');

# -- reload, same configuration ----------------------------------------------

my @old = $t->worker_pids;
$t->reload;
my @new = $t->worker_pids;
ok(!grep({ my $o = $_; grep { $_ == $o } @new } @old),
   'reload: a new generation of workers');

my $after = snapshot();
is_deeply($after->{stats}, $before->{stats}, 'reload: stats kept');
is_deeply($after->{endpoints}, $before->{endpoints},
          'reload: every endpoint kept');
is_deeply($after->{user}, $before->{user}, 'reload: users kept');
is_deeply($after->{metrics}, $before->{metrics}, 'reload: metrics kept');

# the new workers count on
$t->deliver('ru', '/hooks/r-one?status=502');
($r, $doc) = $t->json(GET => '/mitte/stats',
                      headers => { 'X-Mitte-User' => 'ru' });
check_endpoint(find_endpoint($doc, 'r-one'), 'r-one after the reload',
    requests => 7, failures => 3, streak => 3, lastStatus => 502);
is($doc->{quota}{used}, 8, 'quota counts on');

# -- reload with a changed configuration -------------------------------------

$t->reload(http => http_conf(8, <<'END'));
        location ~ ^/more/(?<slug>[^/]+)$ {
            mitte_endpoint $slug;
            mitte_user $http_x_mitte_user;
            proxy_pass http://%%UPSTREAM%%;
        }
END

($r, $doc) = $t->json(GET => '/mitte/stats',
                      headers => { 'X-Mitte-User' => 'ru' });
check_endpoint(find_endpoint($doc, 'r-one'), 'r-one after a changed config',
    requests => 7, failures => 3, streak => 3, lastStatus => 502);
check_endpoint(find_endpoint($doc, 'r-imp'), 'r-imp after a changed config',
    name => 'Imported', hours => [[$h0 - 3, 8, 3]]);
is_deeply($doc->{quota},
          { plan => 'free', used => 8, limit => 8, period => period_of() },
          'the new limit applies to the kept use');

# the new limit is reached: refused
$r = $t->post_as('ru', '/more/r-one?status=200');
is($r->{status}, 429, 'the new limit is enforced');
$r = $t->deliver('rw', '/more/r-three?status=200');
is($r->{status}, 200, 'the new location records');
($r, $doc) = $t->json(GET => '/mitte/all');
check_endpoint(find_endpoint($doc, 'r-three'), 'r-three',
    requests => 2, failures => 1, streak => 0, lastStatus => 200);

my (undef, $m) = $t->metrics;
is_deeply({ map { $_ => $m->{$_} } @counters }, {
    'mitte_deliveries_total{result="success"}' => 6,
    'mitte_deliveries_total{result="failure"}' => 4,
    'mitte_quota_rejections_total' => 1,
    'mitte_evictions_total{kind="endpoint"}' => 0,
    'mitte_endpoints' => 4,
}, 'metrics after two reloads');

$t->stop;

# -- reloads that add and remove the zone ------------------------------------

my $plain = <<'END';
    server {
        listen 127.0.0.1:%%PORT%%;
        location ~ ^/hooks/(?<slug>[^/]+)$ {
            proxy_pass http://%%UPSTREAM%%;
        }
    }
END

my $t2 = Mitte::Test->new(http => $plain);
$t2->start;
is($t2->post('/hooks/p?status=201')->{status}, 201, 'no zone: proxied');

$t2->reload(http => http_conf(100));
$t2->deliver('pu', '/hooks/p-one?status=503');
($r, $doc) = $t2->json(GET => '/mitte/all');
check_endpoint(find_endpoint($doc, 'p-one'), 'the zone added by a reload',
    requests => 1, failures => 1, lastStatus => 503);

$t2->reload(http => $plain);
is($t2->post('/hooks/p-one?status=200')->{status}, 200,
   'the zone removed by a reload: proxied');

$t2->reload(http => http_conf(100));
$t2->set_delivered('p-two', 0);
$r = $t2->deliver('pu', '/hooks/p-two?status=200');
is($r->{status}, 200, 'the zone added again: proxied');
($r, $doc) = $t2->json(GET => '/mitte/all');
check_endpoint(find_endpoint($doc, 'p-two'), 'the zone added again: records',
    requests => 1, failures => 0, lastStatus => 200);

$t2->stop;

done_testing();
