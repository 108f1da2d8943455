#!/usr/bin/perl

# mitte_redis, the foundation of cluster mode: nginx -t names each bad
# value; two nginx instances (2 workers each) on one Redis register
# themselves (keys under the prefix, with TTLs) and see each other; Redis
# stopped under load, then slow (DEBUG SLEEP), leaves every proxied request
# answered as before, marks the connection down, logs at most one error
# line a minute per worker, and the workers come back within the backoff;
# a wrong password or db is logged and retried; a reload keeps the
# connection; a quit with Redis hung (a peer that accepts and never
# answers, and a Redis asleep) ends promptly.

use strict;
use warnings;

use Test::More;
use Time::HiRes qw(sleep time);
use Time::Local qw(timelocal);
use POSIX qw(WNOHANG);
use Mitte::Test qw(:all);
use Mitte::Redis;

require_module();

plan skip_all => Mitte::Redis->missing if Mitte::Redis->missing;

my $ALLOW = [qr/mitte: redis "/];

my $redis = Mitte::Redis->new;
$redis->start;

my $SERVER = <<'END';
    server {
        listen 127.0.0.1:%%PORT%%;
        location ~ ^/hooks/(?<slug>[^/]+)$ {
            mitte_endpoint $slug;
            proxy_pass http://%%UPSTREAM%%;
        }
        location /mitte-admin/ { mitte_admin; }
    }
END

sub conf {
    my ($redis_line) = @_;
    return "    mitte_zone m:1m;\n    $redis_line\n$SERVER";
}

# polls the metrics of $t until $cond->(\%metrics) holds; the last metrics
sub wait_metrics {
    my ($t, $what, $cond, $timeout) = @_;
    my $deadline = time() + ($timeout || 30);
    my $m = {};
    while (1) {
        (undef, $m) = $t->metrics;
        return $m if $cond->($m);
        last if time() > $deadline;
        sleep 0.1;
    }
    fail("$what (after ${\($timeout || 30)}s)");
    diag(join "\n", map { "$_ $m->{$_}" } grep { /redis/ } sort keys %$m);
    return $m;
}

sub metric_ok {
    my ($t, $name, $value, $what, $timeout) = @_;
    my $m = wait_metrics($t, $what,
                         sub { ($_[0]{$name} // -1) == $value }, $timeout);
    is($m->{$name}, $value, $what) if ($m->{$name} // -1) == $value;
    return $m;
}

# proxied requests: (answered 200, all, the slowest in seconds); each
# one's time is kept in @LATENCY for the figures
my @LATENCY;

sub hammer {
    my ($t, $n) = @_;
    my ($ok, $max) = (0, 0);
    for (1 .. $n) {
        my $start = time();
        my $r = $t->post('/hooks/load');
        my $took = time() - $start;
        push @LATENCY, $took;
        $max = $took if $took > $max;
        $ok++ if $r->{status} == 200;
    }
    return ($ok, $n, $max);
}

# "p50 x ms, p99 y ms" of the requests since the last call
sub latency {
    my @l = sort { $a <=> $b } @LATENCY;
    @LATENCY = ();
    return 'no requests' unless @l;
    return sprintf 'p50 %.2f ms, p99 %.2f ms over %d requests',
        $l[int(@l * 0.5)] * 1000, $l[int(@l * 0.99)] * 1000, scalar @l;
}

# the error lines of the module about Redis, by worker pid: no two of one
# worker within a minute
sub errors_once_a_minute {
    my ($t, $what) = @_;
    my %by_pid;
    for my $l ($t->log_lines('error', qr/mitte: redis "/)) {
        my ($y, $mo, $d, $h, $mi, $s, $pid) = $l =~
            m{^(\d+)/(\d+)/(\d+) (\d+):(\d+):(\d+) \[error\] (\d+)#};
        next unless defined $pid;
        push @{ $by_pid{$pid} },
             timelocal($s, $mi, $h, $d, $mo - 1, $y);
    }
    my $ok = 1;
    for my $pid (keys %by_pid) {
        my @ts = sort { $a <=> $b } @{ $by_pid{$pid} };
        for my $i (1 .. $#ts) {
            $ok = 0 if $ts[$i] - $ts[$i - 1] < 60;
        }
    }
    ok($ok, "$what: at most one Redis error line a minute per worker")
        or diag(join "\n", $t->log_lines('error', qr/mitte: redis/));
    return \%by_pid;
}


# ---- nginx -t ---------------------------------------------------------

{
    my $dir = $redis->dir;
    open my $fh, '>', "$dir/empty.pass" or die $!;
    close $fh;
    open $fh, '>', "$dir/good.pass" or die $!;
    print {$fh} "secret\n";
    close $fh;

    my @bad = (
        ['port 0', 'mitte_redis 127.0.0.1:0;', qr/"127\.0\.0\.1:0"/],
        ['unparsable port', 'mitte_redis 127.0.0.1:63a;',
         qr/"127\.0\.0\.1:63a"/],
        ['unknown host', 'mitte_redis no-such-host.invalid:6379;',
         qr/"no-such-host\.invalid:6379"/],
        ['empty unix path', 'mitte_redis unix:;', qr/"unix:"/],
        ['unreadable password file',
         "mitte_redis 127.0.0.1:6379 password_file=$dir/none.pass;",
         qr/"\Q$dir\E\/none\.pass"/],
        ['empty password file',
         "mitte_redis 127.0.0.1:6379 password_file=$dir/empty.pass;",
         qr/"\Q$dir\E\/empty\.pass" .*no password/],
        ['empty prefix', 'mitte_redis 127.0.0.1:6379 prefix=;',
         qr/invalid prefix ""/],
        ['prefix with a space', 'mitte_redis 127.0.0.1:6379 "prefix=a b";',
         qr/invalid prefix "a b"/],
        ['db not a number', 'mitte_redis 127.0.0.1:6379 db=one;',
         qr/"db=one"/],
        ['timeout too short', 'mitte_redis 127.0.0.1:6379 timeout=5ms;',
         qr/"5ms"/],
        ['flush too short', 'mitte_redis 127.0.0.1:6379 flush=5ms;',
         qr/invalid flush "5ms"/],
        ['flush too long', 'mitte_redis 127.0.0.1:6379 flush=1m;',
         qr/invalid flush "1m"/],
        ['flush not a time', 'mitte_redis 127.0.0.1:6379 flush=soon;',
         qr/invalid flush "soon"/],
        ['unknown parameter', 'mitte_redis 127.0.0.1:6379 pool=4;',
         qr/"pool=4"/],
        ['twice', "mitte_redis 127.0.0.1:6379;\n    mitte_redis "
                  . "127.0.0.1:6380;", qr/"mitte_redis" directive is dup/],
    );

    for my $bad (@bad) {
        my ($name, $line, $re) = @$bad;
        my ($rc, $out) = nginx_t(conf($line));
        isnt($rc, 0, "nginx -t: $name: refused");
        like($out, qr/\[emerg\].*mitte_redis/, "$name: names mitte_redis");
        like($out, $re, "$name: names the value");
    }

    my ($rc, $out) = nginx_t("mitte_redis 127.0.0.1:6379;\n$SERVER");
    isnt($rc, 0, 'nginx -t: mitte_redis before mitte_zone: refused');
    like($out, qr/"mitte_redis" requires "mitte_zone"/,
         'mitte_redis without mitte_zone: said so');

    ($rc, $out) = nginx_t(conf('mitte_redis localhost:6379 db=3 '
                               . "password_file=$dir/good.pass "
                               . 'prefix=x: timeout=2s flush=250ms;'));
    is($rc, 0, 'nginx -t: a host name, db, password file, prefix, timeout, '
               . 'flush')
        or diag($out);
    unlike($out, qr/\[warn\].*mitte_redis/,
           'nginx -t: no warning about mitte_redis');

    ($rc, $out) = nginx_t(conf('mitte_redis unix:/run/redis.sock;'));
    is($rc, 0, 'nginx -t: a unix socket') or diag($out);
}


# ---- two instances on one Redis ---------------------------------------

my $conf = conf('mitte_redis ' . $redis->addr . ' db=3 prefix=mt:;');

my $ia = Mitte::Test->new(http => $conf, workers => 2, allow => $ALLOW);
my $ib = Mitte::Test->new(http => $conf, workers => 2, allow => $ALLOW);
$ia->start;
$ib->start;

metric_ok($ia, 'mitte_redis_up', 1, 'instance A: up');
metric_ok($ib, 'mitte_redis_up', 1, 'instance B: up');
metric_ok($ia, 'mitte_redis_workers_up', 2, 'instance A: both workers up');

# B registered after A: B counts both at its first heartbeat; A at its
# next one, which a reload brings forward (and a reload keeps the
# connection: the new workers connect at once)
metric_ok($ib, 'mitte_redis_instances', 2, 'instance B sees 2 instances');
$ia->reload;
metric_ok($ia, 'mitte_redis_up', 1, 'instance A: up again after a reload');
metric_ok($ia, 'mitte_redis_instances', 2,
          'instance A sees 2 instances after its reload');

{
    my @keys = $redis->keys_like('*', 3);
    my @other = grep { !/^mt:/ } @keys;
    is_deeply(\@other, [], 'every key carries the prefix');

    my @inst = $redis->keys_like('mt:instance:*', 3);
    my @pids = sort map { /:(\d+)$/ ? $1 : () } @inst;
    is_deeply(\@pids, [sort $ia->pid, $ib->pid],
              'one instance key per nginx, named by its master pid')
        or diag("keys: @keys");

    for my $k (@inst, 'mt:instances') {
        my $ttl = $redis->cli('-n', 3, 'TTL', $k);
        ok($ttl > 0 && $ttl <= 120, "$k has a TTL ($ttl)");
    }

    my $info = $redis->cli('-n', 3, 'GET', $inst[0]);
    like($info, qr/^\{"instance":"[^"]+:\d+","workers":2,/,
         'the instance key says what it is');
    is($redis->cli('-n', 3, 'ZCARD', 'mt:instances'), 2,
       'the instances set holds 2');
    my @db0 = $redis->keys_like('*', 0);
    is(scalar @db0, 0, 'nothing in db 0');
}


# ---- Redis down under load, then back ----------------------------------

{
    @LATENCY = ();
    my ($ok, $n, $max) = hammer($ia, 500);
    is($ok, $n, "Redis up: $n proxied requests answered 200");
    diag('proxied, Redis up: ' . latency());

    my (undef, $m0) = $ia->metrics;
    $redis->stop;

    my $down = 0;
    my $deadline = time() + 30;
    my ($all_ok, $all_n, $all_max) = (0, 0, 0);
    while (time() < $deadline) {
        my ($o, $c, $x) = hammer($ia, 10);
        $all_ok += $o;
        $all_n += $c;
        $all_max = $x if $x > $all_max;
        my (undef, $m) = $ia->metrics;
        if ($m->{mitte_redis_up} == 0 && $m->{mitte_redis_workers_up} == 0) {
            $down = 1;
            last;
        }
    }
    ok($down, 'Redis stopped: instance A is down');
    ($ok, $n, $max) = hammer($ia, 500);
    $all_ok += $ok;
    $all_n += $n;
    $all_max = $max if $max > $all_max;
    is($all_ok, $all_n, "Redis down: all $all_n proxied requests answered "
                        . '200');
    diag('proxied, Redis stopped: ' . latency());

    my (undef, $m1) = $ia->metrics;
    ok($m1->{'mitte_redis_errors_total{kind="connection"}'}
       > $m0->{'mitte_redis_errors_total{kind="connection"}'},
       'the lost connections are counted');

    # a few more tries at the backoff's pace
    sleep 2;
    my $said = errors_once_a_minute($ia, 'Redis down');
    my @workers = $ia->worker_pids;
    is(scalar(grep { $said->{$_} } @workers), 2,
       'both workers of A said Redis went away');

    $redis->start;
    my $start = time();
    metric_ok($ia, 'mitte_redis_up', 1, 'Redis back: instance A up again',
              40);
    metric_ok($ib, 'mitte_redis_up', 1, 'Redis back: instance B up again',
              40);
    diag(sprintf 'reconnected within %.1f s of the restart',
         time() - $start);

    my (undef, $m2) = $ia->metrics;
    ok($m2->{mitte_redis_reconnects_total}
       >= $m0->{mitte_redis_reconnects_total} + 2,
       'reconnects counted ('
       . "$m2->{mitte_redis_reconnects_total})");

    my @inst = $redis->keys_like('mt:instance:*', 3);
    is(scalar @inst, 2, 'the (empty) Redis holds both instance keys again');
    ($ok, $n) = hammer($ia, 20);
    is($ok, $n, 'proxied requests after the return: all answered');
}


# ---- Redis slow: a command times out -----------------------------------

{
    my $timeouts = sub {
        my $sum = 0;
        for my $t ($ia, $ib) {
            my (undef, $m) = $t->metrics;
            $sum += $m->{'mitte_redis_errors_total{kind="timeout"}'} // 0;
        }
        return $sum;
    };
    my $before = $timeouts->();
    @LATENCY = ();

    # a worker's next heartbeat is due when its connection has been idle
    # for 20 s (CLIENT LIST: idle, and the heartbeat's last command):
    # Redis asleep then, for 4 s, misses it (the timeout is 1 s)
    my $timedout = 0;
    for my $try (1 .. 3) {
        my $deadline = time() + 25;
        while (time() < $deadline) {
            my @idle = map { /\bidle=(\d+)\b/ ? $1 : () }
                       grep { /\bdb=3\b/ && /\bcmd=zcard\b/ }
                       split /\n/, $redis->cli('CLIENT', 'LIST');
            last if grep { $_ >= 19 } @idle;
            sleep 0.2;
        }
        my $sleeper = $redis->cli_bg('DEBUG', 'SLEEP', 4);
        my ($ok, $n, $max) = (0, 0, 0);
        while (waitpid($sleeper, WNOHANG) != $sleeper) {
            my ($o, $c, $x) = hammer($ia, 10);
            ($ok, $n) = ($ok + $o, $n + $c);
            $max = $x if $x > $max;
        }
        is($ok, $n, "Redis asleep: all $n proxied requests answered 200");
        diag('proxied, Redis asleep: ' . latency());

        if ($timeouts->() > $before) {
            $timedout = 1;
            last;
        }
    }
    ok($timedout, 'Redis asleep: a command timed out and was counted');
    metric_ok($ia, 'mitte_redis_up', 1, 'Redis awake: instance A up again',
              40);
    metric_ok($ib, 'mitte_redis_up', 1, 'Redis awake: instance B up again',
              40);
}


# ---- a wrong password, a wrong db --------------------------------------

{
    my $locked = Mitte::Redis->new(args => ['--requirepass', 'right'],
                                   password => 'right');
    $locked->start;

    my $dir = $locked->dir;
    for my $p (['right', 'right'], ['wrong', 'wrong']) {
        open my $fh, '>', "$dir/$p->[0].pass" or die $!;
        print {$fh} "$p->[1]\n";
        close $fh;
    }

    my $d = Mitte::Test->new(http => conf('mitte_redis ' . $locked->addr
                                          . " password_file=$dir/wrong.pass;"),
                             workers => 2, allow => $ALLOW);
    my $e = Mitte::Test->new(http => conf('mitte_redis ' . $locked->addr
                                          . " db=99 password_file="
                                          . "$dir/right.pass;"),
                             workers => 1, allow => $ALLOW);
    my $f = Mitte::Test->new(http => conf('mitte_redis unix:'
                                          . $locked->socket
                                          . " password_file=$dir/right.pass;"),
                             workers => 1, allow => $ALLOW);
    $d->start;
    $e->start;
    $f->start;

    my $deadline = time() + 20;
    sleep 0.1 while time() < $deadline
        && $d->log_lines('error', qr/AUTH failed/) < 2;
    my @l = $d->log_lines('error', qr/AUTH failed/);
    is(scalar @l, 2, 'wrong password: each worker says so');
    like($l[0] // '', qr/"127\.0\.0\.1:\d+": AUTH failed: WRONGPASS/,
         'wrong password: the line names Redis and its answer');
    my ($ok, $n) = hammer($d, 10);
    is($ok, $n, 'wrong password: nginx runs and proxies');
    my (undef, $m) = $d->metrics;
    is($m->{mitte_redis_up}, 0, 'wrong password: down');

    $deadline = time() + 20;
    sleep 0.1 while time() < $deadline
        && !$e->log_lines('error', qr/SELECT failed/);
    like(($e->log_lines('error', qr/SELECT failed/))[0] // '',
         qr/SELECT failed: ERR DB index is out of range/,
         'wrong db: said so');

    metric_ok($f, 'mitte_redis_up', 1, 'a unix socket and a password: up');

    # the server now takes the password nginx has: tried again, it works
    $locked->cli('CONFIG', 'SET', 'requirepass', 'wrong');
    metric_ok($d, 'mitte_redis_up', 1,
              'the password accepted: instance D connects on a retry', 45);

    for my $t ($d, $e, $f) {
        errors_once_a_minute($t, 'password and db');
        $t->stop;
    }
    $locked->kill9;
}


# ---- a quit never waits for Redis ---------------------------------------

{
    # a peer that accepts and never answers: the handshake waits
    my $c = Mitte::Test->new(http => conf('mitte_redis %%HUNG%%;'),
                             workers => 2, allow => $ALLOW);
    $c->peer('HUNG', 'silent');
    $c->start;
    wait_metrics($c, 'hung peer: the handshake timed out',
                 sub { ($_[0]{'mitte_redis_errors_total{kind="timeout"}'}
                        // 0) >= 1 }, 20);
    my $start = time();
    is($c->quit, 0, 'hung peer: nginx quits cleanly');
    my $took = time() - $start;
    ok($took < 5, sprintf 'hung peer: the quit took %.2f s', $took);
    $c->check_error_log;

    # Redis asleep with commands waiting: new workers' handshakes (a
    # reload during the sleep), then a quit
    my (undef, $m0) = $ia->metrics;
    my $sleeper = $redis->cli_bg('DEBUG', 'SLEEP', 30);
    sleep 0.3;
    $ia->reload;
    my (undef, $m1) = $ia->metrics;
    ok($m0->{mitte_redis_reconnects_total} >= 2
       && $m1->{mitte_redis_reconnects_total}
          == $m0->{mitte_redis_reconnects_total},
       'a reload keeps the Redis counters '
       . "($m1->{mitte_redis_reconnects_total} reconnects)");
    $start = time();
    is($ia->quit, 0, 'Redis asleep: nginx quits cleanly');
    $took = time() - $start;
    ok($took < 5, sprintf 'Redis asleep: the quit took %.2f s', $took);
    $ia->check_error_log;

    $ib->stop;
    $redis->kill9;
    waitpid($sleeper, 0);
}

done_testing();
