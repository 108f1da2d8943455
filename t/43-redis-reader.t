#!/usr/bin/perl

# mitte_redis's reading connection (for the cluster's event stream):
# worker 0 of an instance holds a second connection to Redis, named
# "mitte-reader:<pid>" beside the workers' "mitte:<pid>" ones, in the
# configured db; mitte_redis_reader_up shows it. Killed on the server
# (CLIENT KILL), it alone comes back, counted as a reconnect and logged;
# Redis stopped and started, both connections come back; a reload moves it
# to the new worker 0; a quit with Redis asleep ends promptly.

use strict;
use warnings;

use Test::More;
use Time::HiRes qw(sleep time);
use Mitte::Test qw(:all);
use Mitte::Redis;

require_module();

plan skip_all => Mitte::Redis->missing if Mitte::Redis->missing;

my $ALLOW = [qr/mitte: redis "/];

my $redis = Mitte::Redis->new;
$redis->start;

my $conf = '    mitte_zone m:1m;
    mitte_redis ' . $redis->addr . ' db=3 prefix=rd:;
    server {
        listen 127.0.0.1:%%PORT%%;
        location ~ ^/hooks/(?<slug>[^/]+)$ {
            mitte_endpoint $slug;
            proxy_pass http://%%UPSTREAM%%;
        }
        location /mitte-admin/ { mitte_admin; }
    }
';




# the names Redis should list for the running workers of $t, with the
# reader's worker found from the list itself
sub names_ok {
    my ($t, $what) = @_;
    my @workers = $t->worker_pids;
    my $c;
    my $ok = wait_until(sub {
        $c = $redis->mitte_clients;
        my @r = grep { /^mitte-reader:/ } keys %$c;
        return @r == 1
            && (grep { $r[0] eq "mitte-reader:$_" } @workers)
            && !(grep { !$c->{"mitte:$_"} } @workers)
            && keys(%$c) == @workers + 1;
    }, 30);
    ok($ok, "$what: one connection per worker and one reading connection")
        or diag(join ', ', map { "$_ x" . @{ $c->{$_} } } sort keys %$c);
    my ($reader) = grep { /^mitte-reader:/ } keys %$c;
    return ($c, $reader);
}

my $t = Mitte::Test->new(http => $conf, workers => 2, allow => $ALLOW);
$t->start;

ok(wait_until(sub { $t->metric('mitte_redis_reader_up', -1) == 1 }),
   'the reading connection is up');
ok(wait_until(sub { $t->metric('mitte_redis_up', -1) == 1 }),
   'the workers\' connections are up');

{
    my ($c, $reader) = names_ok($t, 'started');
    my ($pid) = ($reader // '') =~ /:(\d+)$/;
    is(scalar @{ $c->{$reader} || [] }, 1, "$reader: one connection");
    is($c->{$reader}[0]{db}, 3, 'the reading connection selected db 3');
    is($c->{"mitte:$pid"}[0]{db}, 3, 'its worker\'s connection too')
        if defined $pid;

    # killed on the server: the reading connection alone comes back
    my (undef, $m0) = $t->metrics;
    my $old_id = $c->{$reader}[0]{id};
    my %main_ids = map { $_ => $c->{$_}[0]{id} }
                   grep { /^mitte:/ } keys %$c;
    is($redis->cli('CLIENT', 'KILL', 'ID', $old_id), 1,
       'CLIENT KILL of the reading connection');

    my $back = wait_until(sub {
        my $now = $redis->mitte_clients;
        return $now->{$reader} && @{ $now->{$reader} } == 1
            && $now->{$reader}[0]{id} != $old_id
            && $t->metric('mitte_redis_reader_up', -1) == 1;
    }, 30);
    ok($back, 'killed: the reading connection is made again');

    my (undef, $m1) = $t->metrics;
    is($m1->{mitte_redis_reconnects_total},
       $m0->{mitte_redis_reconnects_total} + 1,
       'the reconnect is counted, once');
    ok($m1->{'mitte_redis_errors_total{kind="connection"}'}
       > $m0->{'mitte_redis_errors_total{kind="connection"}'},
       'the lost connection is counted');
    my $now = $redis->mitte_clients;
    is_deeply({ map { $_ => $now->{$_}[0]{id} } keys %main_ids },
              \%main_ids, 'the workers\' connections were left alone');
    ok(scalar($t->log_lines('notice',
                            qr/connected again \(reading connection; attempt/)),
       'the reconnection is logged, naming the reading connection');
}


# ---- Redis stopped, then started: both connections come back -----------

{
    $redis->stop;
    ok(wait_until(sub { $t->metric('mitte_redis_reader_up', -1) == 0 }),
       'Redis stopped: the reading connection is down');
    ok(wait_until(sub { $t->metric('mitte_redis_up', -1) == 0 }),
       'Redis stopped: the workers\' connections are down');

    my $r = $t->post('/hooks/down');
    is($r->{status}, 200, 'Redis stopped: proxied requests answered');

    $redis->start;
    ok(wait_until(sub { $t->metric('mitte_redis_reader_up', -1) == 1 }, 40),
       'Redis back: the reading connection is up again');
    ok(wait_until(sub { $t->metric('mitte_redis_up', -1) == 1 }, 40),
       'Redis back: the workers\' connections are up again');
    names_ok($t, 'Redis back');

    # each worker: at most one error line a minute, whichever connection
    my %n;
    for my $l ($t->log_lines('error', qr/mitte: redis "/)) {
        $n{$1}++ if $l =~ /\[error\] (\d+)#/;
    }
    ok(!(grep { $_ > 1 } values %n),
       'one error line per worker for both connections')
        or diag(join "\n", $t->log_lines('error', qr/mitte: redis/));
}


# ---- a reload moves the reading connection to the new worker 0 --------

{
    my (undef, $before) = names_ok($t, 'before the reload');
    $t->reload;
    my (undef, $after) = names_ok($t, 'after the reload');
    isnt($after, $before, "the new worker 0 reads ($after)");
    ok(wait_until(sub { $t->metric('mitte_redis_reader_up', -1) == 1 }),
       'after the reload: the reading connection is up');
    ok(!$redis->mitte_clients->{$before},
       'the old worker\'s reading connection closed');
}


# ---- a quit with Redis asleep -------------------------------------------

{
    my $sleeper = $redis->cli_bg('DEBUG', 'SLEEP', 30);
    sleep 0.3;
    $t->reload;
    my $start = time();
    is($t->quit, 0, 'Redis asleep: nginx quits cleanly');
    my $took = time() - $start;
    ok($took < 5, sprintf 'Redis asleep: the quit took %.2f s', $took);
    $t->check_error_log;

    $redis->kill9;
    waitpid($sleeper, 0);
}

done_testing();
