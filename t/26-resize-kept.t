#!/usr/bin/perl

# The log line of a resized zone counts what was kept (issue 11, defect 7):
# shrunk until most users are evicted, "N notifications" is the number of
# notifications the users kept still have (each user's GET counted), not
# of all those loaded before the eviction; the endpoints and users kept
# are those the API still shows.

use strict;
use warnings;

use Test::More;
use HTTP::Tiny;
use Mitte::Test qw(:all);

require_module();

sub http_conf {
    my ($size) = @_;
    return <<"END";
    mitte_zone m:$size;
    mitte_endpoint_down threshold=1;

    server {
        listen 127.0.0.1:%%PORT%%;
        access_log off;

        location ~ ^/hooks/(?<slug>[^/]+)\$ {
            mitte_endpoint \$slug;
            mitte_user \$http_x_mitte_user;
            proxy_pass http://%%UPSTREAM%%;
        }
        location /mitte/notifications {
            mitte_user \$http_x_mitte_user;
            mitte_notifications;
        }
        location = /mitte/all { mitte_stats all; }
        location /mitte-admin/ { mitte_admin; }
    }
END
}

my $t = Mitte::Test->new(all => '/mitte/all', http => http_conf('8m'));
$t->start;

# 300 users, one endpoint each, two notifications each (DOWN, RECOVERED)
my $N = 300;
my $ua = HTTP::Tiny->new(keep_alive => 1, timeout => 10);
for my $i (1 .. $N) {
    for my $s (503, 200) {
        $ua->post($t->url("/hooks/ep$i?status=$s"),
                  { headers => { 'X-Mitte-User' => "u$i" }, content => '{}' });
    }
}
$t->wait_recorded("ep$N", 2);

sub notes_of {
    my ($user) = @_;
    my ($r, $doc) = $t->json(GET => '/mitte/notifications?limit=100',
                             headers => { 'X-Mitte-User' => $user });
    return scalar @{ $doc->{notifications} || [] };
}

my $before = 0;
$before += notes_of("u$_") for 1 .. $N;
is($before, 2 * $N, "$N users with two notifications each");

$t->reload(http => http_conf('64k'));

my ($line) = $t->log_lines('warn', qr/changed size from \d+ to 65536/);
my $re = 'kept (\d+) of (\d+) endpoints and (\d+) of (\d+) users, '
    . '(\d+) notifications, (\d+) sends and (\d+) events';
my ($ek, $e, $uk, $u, $notes, $sends, $events) = ($line // '') =~ /$re/;
ok(defined $notes, 'the carry is logged') or diag($line // 'no line');
$notes //= -1;

is($e, $N, "$N endpoints read");
is($u, $N, "$N users read");
ok($uk < $N, 'some users did not fit') or diag($line);

my $kept = 0;
my $users = 0;
for my $i (1 .. $N) {
    my $n = notes_of("u$i");
    $kept += $n;
    $users++ if $n;
}
diag("64k: $line");
is($notes, $kept, 'the notifications logged are those kept')
    or diag("the users kept have $kept notifications");
ok($users <= $uk, 'no more users with notifications than users kept');

my ($r, $doc) = $t->json(GET => '/mitte/all');
is($ek, scalar @{ $doc->{endpoints} || [] },
   'the endpoints logged are those kept');

$t->stop;
done_testing();
