#!/usr/bin/perl

# Monthly quotas: exactly `limit` requests of a user pass, then 429 with
# Retry-After and a JSON error; refused requests are not deliveries; per
# user; the plan from a variable; enforcement off counts but never refuses;
# a configured refusal status; exact under concurrency.

use strict;
use warnings;

use Test::More;
use POSIX qw(_exit);
use Mitte::Test qw(:all);

require_module();

my $t = Mitte::Test->new(http => <<'END');
    mitte_zone m:1m;
    mitte_quota free 3;
    mitte_quota pro 5;
    mitte_quota trial 4;

    server {
        listen 127.0.0.1:%%PORT%%;

        location ~ ^/hooks/(?<slug>[^/]+)$ {
            mitte_endpoint $slug;
            mitte_user $http_x_mitte_user;
            mitte_user_plan $http_x_mitte_plan;
            proxy_pass http://%%UPSTREAM%%;
        }
        location ~ ^/soft/(?<slug>[^/]+)$ {
            mitte_endpoint $slug;
            mitte_user $http_x_mitte_user;
            mitte_quota_enforce off;
            proxy_pass http://%%UPSTREAM%%;
        }
        location ~ ^/busy/(?<slug>[^/]+)$ {
            mitte_endpoint $slug;
            mitte_user $http_x_mitte_user;
            mitte_quota_enforce on status=503;
            proxy_pass http://%%UPSTREAM%%;
        }

        location = /mitte/stats {
            mitte_user $http_x_mitte_user;
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

$t->start;

my $rejections = 0;

sub stats_of {
    my ($user) = @_;
    my ($r, $doc) = $t->json(GET => '/mitte/stats',
                             headers => { 'X-Mitte-User' => $user });
    json_answer_ok($r, $doc, 200, "stats of $user");
    return $doc || {};
}

# a request that passes: proxied, the upstream's answer
sub passes {
    my ($user, $path, $label, %h) = @_;
    my $r = $t->deliver($user, $path, headers => \%h);
    is($r->{status}, 200, "$label: passes");
    is($r->{content}, "ok\n", "$label: the upstream's answer");
    return $r;
}

# a request that is refused: STATUS, Retry-After, quota_exceeded
sub refused {
    my ($user, $path, $label, $status, %h) = @_;
    $status ||= 429;
    my $r = $t->post_as($user, $path, headers => \%h);
    my $doc = eval { json_decode($r->{content}) };
    error_ok($r, $doc, $status, 'quota_exceeded', "$label: refused");
    my $ra = $r->{headers}{'retry-after'} // '';
    my $want = seconds_to_next_month();
    ok($ra =~ /^\d+$/ && $ra > 0, "$label: Retry-After is a positive"
       . ' number of seconds') or diag("Retry-After: '$ra'");
    ok($ra =~ /^\d+$/ && abs($ra - $want) <= 5,
       "$label: Retry-After is the time to the next month")
        or diag("Retry-After '$ra', expected about $want");
    $rejections++;
    return $r;
}

sub quota_is {
    my ($doc, $plan, $used, $limit, $label) = @_;
    my $q = ref $doc->{quota} eq 'HASH' ? $doc->{quota} : {};
    ok(is_number($q->{used}) && is_number($q->{limit}),
       "$label: used and limit are numbers");
    is_deeply($q, { plan => $plan, used => $used, limit => $limit,
                    period => period_of() }, "$label: quota");
}

# -- the hard limit of free (3) ----------------------------------------------

passes('qa', "/hooks/q-a?status=200", "qa request $_") for 1 .. 3;
refused('qa', '/hooks/q-a?status=200', 'qa request 4');
refused('qa', '/hooks/q-a?status=200', 'qa request 5');
refused('qa', '/hooks/q-a2?status=200', 'qa on another endpoint');

my $doc = stats_of('qa');
quota_is($doc, 'free', 3, 3, 'qa');
check_endpoint(find_endpoint($doc, 'q-a'), 'qa: refused requests are not'
    . ' deliveries', requests => 3, failures => 0, lastStatus => 200);
my $other = find_endpoint($doc, 'q-a2');
is(($other ? (hours_total($other))[0] : 0), 0,
   'qa: nothing delivered to the other endpoint');

# failures count toward the quota as well: a request accepted is counted
passes('qb', '/hooks/q-b?status=200', 'qb, another user, request 1');
my $r = $t->deliver('qb', '/hooks/q-b?status=503');
is($r->{status}, 503, 'qb request 2: a failure, proxied');
passes('qb', '/hooks/q-b?status=200', 'qb request 3');
refused('qb', '/hooks/q-b?status=200', 'qb request 4');
quota_is(stats_of('qb'), 'free', 3, 3, 'qb');

# -- the plan from a variable ------------------------------------------------

passes('qp', '/hooks/q-p?status=200', "qp (pro) request $_",
       'X-Mitte-Plan' => $_ % 2 ? 'pro' : 'PRO')
    for 1 .. 5;
refused('qp', '/hooks/q-p?status=200', 'qp (pro) request 6', 429,
        'X-Mitte-Plan' => 'pro');
# the stats location has no plan: the plan last seen is remembered
quota_is(stats_of('qp'), 'pro', 5, 5, 'qp');

passes('qt', '/hooks/q-t?status=200', "qt (trial) request $_",
       'X-Mitte-Plan' => 'trial')
    for 1 .. 4;
refused('qt', '/hooks/q-t?status=200', 'qt (trial) request 5', 429,
        'X-Mitte-Plan' => 'trial');
quota_is(stats_of('qt'), 'trial', 4, 4, 'qt');

# -- enforcement off: counted, never refused ---------------------------------

passes('qs', '/soft/q-s?status=200', "qs, enforcement off, request $_")
    for 1 .. 5;
quota_is(stats_of('qs'), 'free', 5, 3, 'qs');
refused('qs', '/hooks/q-s?status=200', 'qs where enforcement is on');
check_endpoint(find_endpoint(stats_of('qs'), 'q-s'), 'qs', requests => 5);

# -- a configured refusal status ---------------------------------------------

passes('qc', '/busy/q-c?status=200', "qc request $_") for 1 .. 3;
refused('qc', '/busy/q-c?status=200', 'qc request 4 (status=503)', 503);

# -- the operator's view of a user -------------------------------------------

($r, $doc) = $t->json(GET => '/mitte-admin/users/qa');
json_answer_ok($r, $doc, 200, 'admin: user qa');
is_deeply($doc && $doc->{quota},
          { plan => 'free', used => 3, limit => 3, period => period_of() },
          'admin: quota of qa');

# -- concurrency: exactly `limit` pass ---------------------------------------

my @kids;
my $parallel = 4;
my $each = 5;
pipe my $rd, my $wr or die "pipe: $!";
for my $k (1 .. $parallel) {
    my $pid = fork;
    die "fork: $!" unless defined $pid;
    if ($pid == 0) {
        close $rd;
        my @st;
        for (1 .. $each) {
            push @st, $t->post_as('qx', '/hooks/q-x?status=200')->{status};
        }
        print {$wr} "@st\n";
        close $wr;
        _exit(0);
    }
    push @kids, $pid;
}
close $wr;
my @statuses = map { split ' ' } <$rd>;
close $rd;
waitpid $_, 0 for @kids;

is(scalar @statuses, $parallel * $each, 'concurrent: every answer came');
is(scalar(grep { $_ == 200 } @statuses), 3, 'concurrent: exactly 3 passed');
is(scalar(grep { $_ == 429 } @statuses), $parallel * $each - 3,
   'concurrent: the others were refused');
$rejections += $parallel * $each - 3;
$t->wait_recorded('q-x', 3);
quota_is(stats_of('qx'), 'free', 3, 3, 'qx');
check_endpoint(find_endpoint(stats_of('qx'), 'q-x'), 'qx', requests => 3);

# -- metrics -----------------------------------------------------------------

my (undef, $m) = $t->metrics;
is($m->{mitte_quota_rejections_total}, $rejections,
   "metrics: $rejections quota rejections");

$t->stop;

done_testing();
