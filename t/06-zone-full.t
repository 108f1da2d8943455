#!/usr/bin/perl

# A full zone: least recently used endpoints are evicted and counted; every
# request is still proxied as usual; the error is logged rarely, never as
# [crit] or [alert] (the slab allocator's "no memory" included).

use strict;
use warnings;

use Test::More;
use Mitte::Test qw(:all);

require_module();

my $t = Mitte::Test->new(
    allow => [qr/mitte.*zone full/i],
    http  => <<'END');
    mitte_zone m:128k;

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
        location /mitte-admin/ {
            mitte_admin;
        }
    }
END

$t->start;

my $n = 2000;
my $every = 10;
my (%bad, $hot);

for my $i (0 .. $n - 1) {
    my $slug = sprintf 'z-%04d', $i;
    my $r = $t->post_as('zu', "/hooks/$slug?status=200");
    $bad{$r->{status}}++ if $r->{status} != 200 || $r->{content} ne "ok\n";

    # one endpoint used all along is never the least recently used
    if ($i % $every == 0) {
        $r = $t->deliver('zu', '/hooks/z-hot?status=200');
        $bad{$r->{status}}++ if $r->{status} != 200;
        $hot++;
    }
}

is_deeply(\%bad, {}, "every one of $n + $hot requests proxied with 200");

# the last deliveries are recorded before the counts are read
$t->wait_recorded(sprintf('z-%04d', $n - 1), 1);

my ($r, $m, $junk) = $t->metrics;
is($r->{status}, 200, 'metrics: 200');
my $ev = $m->{'mitte_evictions_total{kind="endpoint"}'};
my $eps = $m->{mitte_endpoints};
ok(defined $ev && $ev > 0, 'endpoints were evicted')
    or diag("evictions: " . ($ev // 'none'));
ok(defined $eps && $eps > 0 && $eps < $n, "fewer than $n endpoints are kept")
    or diag("endpoints: " . ($eps // 'none'));
is(($ev // 0) + ($eps // 0), $n + 1,
   'kept + evicted = every endpoint recorded');
ok($m->{mitte_zone_free_bytes} < 128 * 1024, 'zone free bytes below the size');

my $doc;
($r, $doc) = $t->json(GET => '/mitte-admin/endpoints');
json_answer_ok($r, $doc, 200, 'GET /endpoints');
my %kept = map { $_->{slug} => $_ } @{ $doc->{endpoints} || [] };
is(scalar keys %kept, $eps, 'GET /endpoints lists mitte_endpoints of them');
ok(!$kept{'z-0000'}, 'the oldest endpoint was evicted');
ok($kept{sprintf 'z-%04d', $n - 1}, 'the newest endpoint is kept');
check_endpoint($kept{'z-hot'}, 'the endpoint used all along is kept',
    requests => $hot, failures => 0);

# the newest ones are those kept
my @newest = map { sprintf 'z-%04d', $_ } ($n - ($eps - 1) .. $n - 1);
my @missing = grep { !$kept{$_} } @newest;
ok(!@missing, 'the endpoints kept are the most recently used')
    or diag(scalar(@missing) . ' of the newest missing, e.g. '
            . join ' ', @missing[0 .. ($#missing < 4 ? $#missing : 4)]);

# a full zone still records
$r = $t->deliver('zu', '/hooks/z-after?status=503');
is($r->{status}, 503, 'a delivery after the zone filled up');
($r, $doc) = $t->json(GET => '/mitte/all');
check_endpoint(find_endpoint($doc, 'z-after'), 'recorded when full',
    requests => 1, failures => 1, streak => 1, lastStatus => 503);

# at most once a minute (per worker)
my @said = grep { /\[(?:error|warn)\].*mitte.*zone full/i }
    $t->error_log_lines;
ok(@said <= 2, 'a full zone is logged at most once a minute per worker')
    or diag(join "\n", grep { defined } @said[0 .. 4]);

$t->stop;

done_testing();
