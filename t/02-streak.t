#!/usr/bin/perl

# Consecutive failures: a failure adds one, a success resets the count to 0,
# and a failure after more than `reset` of inactivity starts again at 1.

use strict;
use warnings;

use Test::More;
use Time::HiRes qw(sleep);
use Mitte::Test qw(:all);

require_module();

my $t = Mitte::Test->new(http => <<'END');
    mitte_zone m:1m;
    mitte_endpoint_down threshold=3 reset=2s;

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
    }
END

$t->start;

# deliver STATUS to SLUG, then streak and lastStatus must be as given
sub step {
    my ($slug, $status, $streak, $label) = @_;
    my $r = $t->deliver('sam', "/hooks/$slug?status=$status");
    is($r->{status}, $status, "$label: answered $status");
    my $ep = $t->wait_recorded($slug, $t->delivered($slug));
    ok(is_number($ep && $ep->{streak}), "$label: streak is a number");
    is($ep && $ep->{streak}, $streak, "$label: streak $streak");
    is($ep && $ep->{lastStatus}, $status, "$label: lastStatus $status");
    return $ep;
}

step('s-one', 503, 1, 'first failure');
step('s-one', 500, 2, 'second failure');
step('s-one', 302, 3, 'a 3xx is a failure');
step('s-one', 502, 4, 'past the threshold the count goes on');
step('s-one', 200, 0, 'a success resets');
step('s-one', 201, 0, 'another success');
step('s-one', 404, 1, 'failure after a success');
step('s-two', 200, 0, 'another endpoint: its own count');
step('s-two', 500, 1, 'another endpoint: failure');
step('s-one', 429, 2, 'the first endpoint kept its count');

# within `reset` (2s) the count goes on
sleep 1;
step('s-one', 500, 3, 'a failure 1s later counts on');

# more than `reset` of inactivity: the next failure starts again at 1
sleep 3;
step('s-one', 503, 1, 'a failure after 3s of inactivity restarts at 1');
step('s-one', 503, 2, 'and counts on from there');
step('s-two', 504, 1, 'the other endpoint, idle 4s, restarts at 1 too');

# a success after inactivity is still a 0
sleep 2.5;
step('s-two', 204, 0, 'a success after inactivity');

my $ep = $t->wait_recorded('s-one', $t->delivered('s-one'));
check_endpoint($ep, 's-one', requests => 11, failures => 9, streak => 2,
               lastStatus => 503);

$t->stop;

done_testing();
