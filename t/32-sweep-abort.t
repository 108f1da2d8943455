#!/usr/bin/perl

# A manual sweep (POST /mitte-admin/sweep) whose request nginx ends before
# the sweep is done: the sweep's slices run on later turns of the event
# loop from an event in the request's pool, so the end of the request must
# take that event off the posted queue (it was used after the pool was
# freed, and the worker crashed). The request is ended by a chunked body
# that turns out invalid while the sweep walks thousands of endpoints. The
# sanitized suite (make test-sanitize) sees a use of freed memory at once;
# the plain build may crash, or may not.

use strict;
use warnings;

use IO::Socket::INET;
use Test::More;
use Time::HiRes qw(sleep);
use Mitte::Test qw(:all);

require_module();

my $N = 12000;

my $t = Mitte::Test->new(http => <<'END',
    mitte_zone m:16m;
    mitte_quota free 1000000;

    server {
        listen 127.0.0.1:%%PORT%%;

        location ~ ^/hooks/(?<slug>[^/]+)$ {
            mitte_endpoint $slug;
            mitte_user $http_x_mitte_user;
            proxy_pass http://%%UPSTREAM%%;
        }

        location /mitte-admin/ {
            mitte_admin;
        }
    }
END
    allow => [qr/client sent invalid chunked body/]);

$t->start;

# endpoints enough for a sweep of many slices (512 nodes a slice)
my $made = 0;
for my $i (1 .. $N) {
    my $r = $t->post_as('u' . ($i % 50), "/hooks/ep$i");
    $made++ if $r->{status} == 200;
}
is($made, $N, "$N endpoints made");

my (undef, $m) = $t->metrics;
ok(($m->{mitte_endpoints} // 0) >= $N, 'the zone holds them')
    or diag(explain($m->{mitte_endpoints}));

# each round: the headers of a chunked POST, so that the operator API
# starts discarding the body and the sweep starts; then a bad chunk, which
# makes nginx end the request while the sweep is still under way
for my $round (1 .. 5) {
    my $s = IO::Socket::INET->new(
        PeerAddr => '127.0.0.1',
        PeerPort => $t->{port},
        Proto    => 'tcp',
        Timeout  => 10,
    ) or die "connect: $!";

    syswrite $s, "POST /mitte-admin/sweep HTTP/1.1\r\nHost: x\r\n"
                 . "Transfer-Encoding: chunked\r\n\r\n";
    sleep 0.001 * $round;
    syswrite $s, "zz\r\n";

    my $in = '';
    while (sysread $s, $in, 65536, length $in) { }
    close $s;

    # ended early, or answered (the sweep was quicker): never a crash
    like($in, qr{\A(?:HTTP/1\.1 (?:200|400) |\z)},
         "round $round: answered or closed");

    my $r = $t->request(GET => '/mitte-admin/metrics');
    is($r->{status}, 200, "round $round: the worker still answers");
}

# a whole manual sweep still works after the aborted ones
my ($r, $doc) = $t->json(POST => '/mitte-admin/sweep');
json_answer_ok($r, $doc, 200, 'a manual sweep afterwards');
ok(($doc->{endpoints} // 0) >= $N, 'it walked every endpoint')
    or diag(explain($doc));

# stop() fails on an [alert]: "worker process ... exited on signal"
$t->stop;

done_testing();
