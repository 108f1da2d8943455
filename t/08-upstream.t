#!/usr/bin/perl

# The status of a delivery when the upstream did not answer well: a timeout
# (504), a connection closed before the answer or an invalid header (502);
# and with several attempts, the last attempt decides.

use strict;
use warnings;

use Test::More;
use Mitte::Test qw(:all);

require_module();

my $t = Mitte::Test->new(
    allow => [
        qr/upstream timed out/,
        qr/upstream prematurely closed connection/,
        qr/upstream sent invalid header/,
        qr/connect\(\) failed \(111: Connection refused\)/,
    ],
    http => <<'END');
    mitte_zone m:1m;

    # first a dead server, then the built-in upstream
    upstream dead_first {
        server %%DEAD%% max_fails=0;
        server %%UPSTREAM%% backup;
    }
    # first the built-in upstream, then a dead server
    upstream dead_last {
        server %%UPSTREAM%% max_fails=0;
        server %%DEAD%% backup;
    }
    # first the built-in upstream, then one that always answers 200
    upstream second_ok {
        server %%UPSTREAM%% max_fails=0;
        server 127.0.0.1:%%PORT2%% backup;
    }

    server {
        listen 127.0.0.1:%%PORT2%%;
        access_log off;
        location / {
            return 200 "second\n";
        }
    }

    server {
        listen 127.0.0.1:%%PORT%%;
        mitte_user $http_x_mitte_user;

        location ~ ^/timeout/(?<slug>[^/]+)$ {
            mitte_endpoint $slug;
            proxy_read_timeout 300ms;
            proxy_pass http://%%SILENT%%;
        }
        location ~ ^/closed/(?<slug>[^/]+)$ {
            mitte_endpoint $slug;
            proxy_pass http://%%CLOSE%%;
        }
        location ~ ^/badheader/(?<slug>[^/]+)$ {
            mitte_endpoint $slug;
            proxy_pass http://%%BADHEADER%%;
        }
        location ~ ^/deadfirst/(?<slug>[^/]+)$ {
            mitte_endpoint $slug;
            proxy_pass http://dead_first;
        }
        location ~ ^/deadlast/(?<slug>[^/]+)$ {
            mitte_endpoint $slug;
            proxy_next_upstream error timeout http_503 non_idempotent;
            proxy_pass http://dead_last;
        }
        location ~ ^/secondok/(?<slug>[^/]+)$ {
            mitte_endpoint $slug;
            proxy_next_upstream error timeout http_503 non_idempotent;
            proxy_pass http://second_ok;
        }
        location = /mitte/all {
            mitte_stats all;
        }
    }
END

$t->peer(SILENT => 'silent');
$t->peer(CLOSE => 'close');
$t->peer(BADHEADER => 'badheader');
$t->start;

# deliver PATH: the client sees CODE, the delivery is recorded with CODE
sub delivery {
    my ($path, $code, $failed, $label) = @_;
    my ($slug) = $path =~ m{/([^/?]+)(?:\?|$)};
    my $r = $t->deliver('up', $path);
    is($r->{status}, $code, "$label: the client got $code");
    my $ep = $t->wait_recorded($slug, $t->delivered($slug));
    my ($req, $fail) = $ep ? hours_total($ep) : (0, 0);
    is($ep && $ep->{lastStatus}, $code, "$label: recorded as $code");
    is($fail, $failed, "$label: failures $failed");
    return $ep;
}

delivery('/timeout/u-timeout', 504, 1, 'upstream timeout');
delivery('/closed/u-closed', 502, 1, 'connection closed, no answer');
delivery('/badheader/u-bad', 502, 1, 'invalid header');
delivery('/deadfirst/u-df?status=200', 200, 0,
         'dead first, then 200: the last attempt');
delivery('/deadfirst/u-df?status=404', 404, 1,
         'dead first, then 404: the last attempt');
delivery('/deadlast/u-dl?status=503', 502, 1,
         '503, then a dead server: nginx\'s 502');
delivery('/deadlast/u-dl?status=200', 200, 1,
         'no retry on 200');
delivery('/secondok/u-so?status=503', 200, 0,
         '503, then 200 from the second: a success');

my ($r, $doc) = $t->json(GET => '/mitte/all');
check_endpoint(find_endpoint($doc, 'u-timeout'), 'u-timeout',
    user => 'up', requests => 1, failures => 1, streak => 1,
    lastStatus => 504);
check_endpoint(find_endpoint($doc, 'u-so'), 'u-so',
    requests => 1, failures => 0, streak => 0, lastStatus => 200);

$t->stop;

done_testing();
