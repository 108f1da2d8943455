#!/usr/bin/perl

# A worker killed with SIGKILL under load (issue 11, fault tests): nginx's
# master starts another and frees the zone's mutex if the dead worker held
# it, so deliveries, the API and the sweep go on; the counters stay
# consistent (the deliveries in the metrics equal the requests in the
# endpoints' hours; the users' quota use counts them too, and at most the
# requests a kill cut short besides; nothing counted that was not sent);
# the error log has no [alert] but nginx's own "exited on signal 9", and
# no [crit] or [emerg].

use strict;
use warnings;

use Test::More;
use HTTP::Tiny;
use POSIX ();
use Time::HiRes qw(sleep time);
use Mitte::Test qw(:all);

require_module();

my $t = Mitte::Test->new(
    all => '/mitte/all',
    # the built-in upstream is this nginx: a request it was serving in the
    # killed worker fails as the proxy sees it
    allow => [qr/upstream prematurely closed/, qr/while reading response/,
              qr/while sending request to upstream/, qr/connect\(\) failed/,
              qr/while reading upstream/],
    http => <<'END');
    mitte_zone m:8m;
    mitte_quota free 1000000;
    mitte_endpoint_down threshold=3;

    server {
        listen 127.0.0.1:%%PORT%%;
        access_log off;

        location ~ ^/hooks/(?<slug>[^/]+)$ {
            mitte_endpoint $slug;
            mitte_user $http_x_mitte_user;
            proxy_pass http://%%UPSTREAM%%;
        }
        location /mitte/ {
            mitte_user $http_x_mitte_user;
            location   /mitte/notifications { mitte_notifications; }
            location = /mitte/preferences   { mitte_preferences; }
        }
        location = /mitte/all { mitte_stats all; }
        location /mitte-admin/ { mitte_admin; }
    }
END

$t->start;

my $DIR = $t->dir;

# LOAD clients, each for SECONDS: deliveries (a tenth failing), preference
# updates and notification reads, so that the lock is taken all the time;
# each writes how many deliveries it sent to a file
sub load {
    my ($clients, $seconds) = @_;
    my @pids;
    for my $c (1 .. $clients) {
        my $pid = fork;
        die "fork: $!" unless defined $pid;
        if ($pid == 0) {
            my $ua = HTTP::Tiny->new(keep_alive => 1, timeout => 5);
            my $base = $t->url('');
            my ($sent, $i) = (0, 0);
            my $end = time() + $seconds;
            while (time() < $end) {
                $i++;
                my $u = 'u' . ($i % 4);
                my $st = $i % 10 ? 200 : 503;
                $sent++;
                $ua->post("$base/hooks/ep$c-" . ($i % 8) . "?status=$st",
                          { headers => { 'X-Mitte-User' => $u },
                            content => '{}' });
                if ($i % 5 == 0) {
                    $ua->request(PATCH => "$base/mitte/preferences",
                        { headers => { 'X-Mitte-User' => $u },
                          content => '{"types":{"QUOTA_WARNING":'
                              . ($i % 2 ? 'true' : 'false') . '}}' });
                    $ua->post("$base/mitte/notifications/read",
                        { headers => { 'X-Mitte-User' => $u },
                          content => '{"all":true}' });
                }
            }
            open my $fh, '>', "$DIR/sent.$c" or POSIX::_exit(1);
            print {$fh} $sent;
            close $fh;
            POSIX::_exit(0);
        }
        push @pids, $pid;
    }
    return @pids;
}

my @load = load(3, 4);

# three kills, one every second, of a running worker
my @killed;
for (1 .. 3) {
    sleep 1;
    my @w = $t->worker_pids;
    next unless @w;
    my $victim = $w[int(rand @w)];
    kill 'KILL', $victim;
    push @killed, $victim;
}
waitpid($_, 0) for @load;
is(scalar @killed, 3, 'three workers killed under load');

# the master has started new workers
my $deadline = time() + 10;
while (time() < $deadline) {
    my @w = $t->worker_pids;
    last if @w == 2 && !grep { my $k = $_; grep { $_ == $k } @w } @killed;
    sleep 0.1;
}
my @w = $t->worker_pids;
is(scalar @w, 2, 'two workers run again');

# the zone's lock is free: every kind of request is answered at once
my $t0 = time();
is($t->post_as('after', '/hooks/after?status=200')->{status}, 200,
   'a delivery after the kills');
my ($r, $doc) = $t->json(GET => '/mitte-admin/endpoints');
is($r->{status}, 200, 'the operator API after the kills');
($r, $doc) = $t->json(POST => '/mitte-admin/sweep');
is($r->{status}, 200, 'a sweep after the kills');
($r, $doc) = $t->json(PATCH => '/mitte/preferences',
                      headers => { 'X-Mitte-User' => 'u1' },
                      content => '{"types":{"TRIAL_ENDING":false}}');
is($r->{status}, 200, 'a preferences update after the kills');
ok(time() - $t0 < 5, 'answered without waiting for a lock');
$t->wait_recorded('after', 1);

# consistent counters
my $sent = 0;
for my $c (1 .. 3) {
    open my $fh, '<', "$DIR/sent.$c" or next;
    $sent += <$fh>;
    close $fh;
}
my (undef, $m) = $t->metrics;
my $recorded = ($m->{'mitte_deliveries_total{result="success"}'} // 0)
    + ($m->{'mitte_deliveries_total{result="failure"}'} // 0);
($r, $doc) = $t->json(GET => '/mitte/all');
my $in_hours = 0;
$in_hours += (hours_total($_))[0] for @{ $doc->{endpoints} || [] };
my $used = 0;
for my $u (qw(u0 u1 u2 u3 after)) {
    my (undef, $ud) = $t->json(GET => "/mitte-admin/users/$u");
    $used += $ud->{quota}{used} // 0;
}
diag("sent $sent (+1), recorded $recorded, in hours $in_hours, "
     . "quota used $used");
ok($sent > 100, 'the load ran');
is($in_hours, $recorded, 'the hours hold every delivery the metrics count');
# the quota counts a request when it comes, the delivery when it is logged:
# a request cut by a kill is in the first only, at most one a client a kill
ok($used >= $recorded && $used - $recorded <= 3 * @killed,
   'the quota use counts every delivery, and at most the requests cut');
ok($recorded <= $sent + 1, 'nothing counted that was not sent');
ok($recorded >= ($sent + 1) * 0.5, 'most deliveries were counted');

# the log: no alert but nginx's own for the killed workers
$t->quit;
my @bad = grep {
    (/\[(alert|crit|emerg)\]/ && !/exited on signal 9/)
        || /: runtime error: /
} $t->error_log_lines;
ok(!@bad, 'error log: no [alert] beyond "exited on signal 9", no [crit]')
    or diag(join "\n", @bad[0 .. ($#bad > 9 ? 9 : $#bad)]);
my @sig = grep { /exited on signal 9/ } $t->error_log_lines;
is(scalar @sig, 3, 'nginx logged the three kills');
my @err = grep {
    my $l = $_;
    /\[error\]/ && !grep { $l =~ $_ } @{ $t->{allow} }
} $t->error_log_lines;
ok(!@err, 'error log: no unexpected [error]')
    or diag(join "\n", @err[0 .. ($#err > 9 ? 9 : $#err)]);

done_testing();
