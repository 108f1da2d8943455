#!/usr/bin/perl

# bench/cluster.pl: what cluster mode (mitte_redis) costs, against embedded
# mode (the zone alone), on this machine.
#
#   MITTE_MODULE=build/ngx_http_mitte_module.so perl bench/cluster.pl
#
# One redis-server of its own (no persistence, a free loopback port) and
# two sets of 3 nginx instances x 2 workers, the same configuration but
# for mitte_redis: "cluster" (mitte_redis, one prefix) and "embedded"
# (each instance its own zone, as without Redis). Each instance proxies
# /hooks/<slug> (mitte_endpoint $slug, mitte_user X-Mitte-User) to a
# keepalive upstream in the same nginx (return 200), with a quota that
# never refuses. Deliveries: 1,000 endpoints of 50 users (ep-N belongs to
# user-(N % 50)), as bench/proxy.pl's.
#
# (f) Redis memory, first, on the empty Redis: 2,000 new endpoints
#     recorded (one delivery each, through instance 1), then 200 endpoints
#     imported with 49 hours of history (PUT /mitte-admin/endpoints),
#     then 2,000 users (PUT /mitte-admin/users) and their preferences
#     (PUT /mitte/preferences): INFO memory's used_memory before and after
#     each, less the growth of the event stream (capped at mitte_sse_replay
#     entries), and the sum of MEMORY USAGE of the keys made. At the end
#     of (a), the stream's size after full load.
# (a) throughput: wrk -t3 (one thread per instance, bench/cluster.lua),
#     BENCH_CONNECTIONS in all, BENCH_SECONDS a run, embedded and cluster
#     alternating (E C C E E C ...), BENCH_PAIRS pairs, after a warm-up;
#     the ratio cluster/embedded of each pair, their median. After each
#     run: the backlog sent, and the workers idle again (the relays caught
#     up) before the next. Flushes that failed (a command past mitte_redis'
#     timeout: sent again) are counted and shown, not fatal. Also the CPU
#     a delivery cost (the set's workers from /proc, from the run's start
#     until they are idle again, plus Redis's INFO cpu for the cluster):
#     embedded over cluster per pair, their median. On a machine as busy
#     as this one (wrk, the upstream, six workers and Redis on 2 cores)
#     the throughput ratio swings by +-5% between runs of the same build;
#     the CPU ratio is the work itself.
# (c) round trips to Redis per 1,000 deliveries, over each cluster run:
#     the commands the instances sent (EVALSHA, XREAD, the heartbeat's
#     five, anything else no script calls; INFO commandstats), and Redis's
#     total_commands_processed, which in Redis 7 also counts every command
#     a script runs. Deliveries: the instances' mitte_deliveries_total,
#     summed.
# (d) Redis CPU per 1,000 deliveries: INFO cpu, used_cpu_sys +
#     used_cpu_user, over the same runs; and Redis's share of one core.
# (e) cross-instance latency: a "mitte_sse all" stream on instance 2,
#     BENCH_LAT_EVENTS deliveries on instance 1 at BENCH_LAT_RATE a second
#     on average (random gaps of 0.5 to 1.5 times the mean, so that they
#     do not fall in step with the flush timer; one at a time, on one
#     keep-alive connection); the time from the request's write to the
#     frame's arrival, p50 / p99 / max, and the deliveries' own answer
#     times (a stall of the machine shows in both).
# (b) instructions per delivery with callgrind: one nginx in one process
#     (master_process off) under valgrind --tool=callgrind, the same
#     configuration (cluster: the same Redis, a prefix of its own per run),
#     BENCH_CG_N deliveries on one keep-alive connection (the first 1,000
#     create the endpoints), then flush= and 0.3 s for the last flush,
#     minus a run without deliveries that stays up as long (the flush,
#     the relay's XREAD and the heartbeats run on timers). The split: the
#     module's cluster functions, inclusive, per delivery, and the
#     exclusive instructions cluster minus embedded. Twice: with (a)'s
#     flush=1s, where valgrind's slowness (about 1,700 deliveries a
#     second) leaves a flush under 2 deliveries an endpoint, and with
#     BENCH_CG_BATCH_N deliveries and a flush= set from the embedded run's
#     rate (at 90% of it, whole seconds) so that a flush carries about
#     BENCH_CG_BATCH deliveries, as at full load in (a) (about 15,000, 15
#     an endpoint). A flush's cost is paid per endpoint
#     line, so the first figure is what a lightly loaded instance pays a
#     delivery, the second what one at full load pays.
#
# Environment:
#   MITTE_MODULE        the module (default build/ngx_http_mitte_module.so)
#   MITTE_NGINX, NGINX  the nginx binary (/usr/sbin/nginx)
#   BENCH_PAIRS         embedded/cluster pairs of wrk runs (default 5)
#   BENCH_SECONDS       seconds a wrk run (default 3)
#   BENCH_CONNECTIONS   wrk connections over the 3 instances (default 48)
#   BENCH_LAT_EVENTS    deliveries timed for (e) (default 300)
#   BENCH_LAT_RATE      their rate a second (default 50)
#   BENCH_CG_N          deliveries per callgrind run (default 5000; 0 skips
#                       the callgrind part)
#   BENCH_CG_SPLIT      functions listed in the exclusive split (default 15)
#   BENCH_CG_ONLY       1 runs the callgrind part (b) alone
#   BENCH_CG_BATCH_N    deliveries of (b)'s second pair of runs, with a
#                       flush as large as at full load (default 30000; 0
#                       skips it)
#   BENCH_CG_BATCH      the deliveries a flush its flush= is set for
#                       (default 15000, as in (a) at full load)
#   BENCH_KEEP          1 keeps the temp dir (configs, logs, wrk's output,
#                       latency.txt, callgrind.out.*) and Redis's (its log)
#
# Exit status: 0 when every part ran and recorded what it should.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use MitteBench;
use Mitte::Redis;
use IO::Select;
use IO::Socket::INET;
use Time::HiRes qw(time sleep);

my $PAIRS = $ENV{BENCH_PAIRS} // 5;
my $SECONDS = $ENV{BENCH_SECONDS} // 3;
my $CONNECTIONS = $ENV{BENCH_CONNECTIONS} // 48;
my $LAT_EVENTS = $ENV{BENCH_LAT_EVENTS} // 300;
my $LAT_RATE = $ENV{BENCH_LAT_RATE} // 50;
my $CG_N = $ENV{BENCH_CG_N} // 5000;
my $SPLIT = $ENV{BENCH_CG_SPLIT} // 15;
my $CG_ONLY = $ENV{BENCH_CG_ONLY} // 0;
my $CG_BATCH_N = $ENV{BENCH_CG_BATCH_N} // 30000;
my $CG_BATCH = $ENV{BENCH_CG_BATCH} // 15000;

my $INSTANCES = 3;
my $WORKERS = 2;
my $ENDPOINTS = 1000;
my $USERS = 50;
my $MEM_ENDPOINTS = 2000;
my $MEM_FULL = 200;            # endpoints imported with 49 hours
my $MEM_USERS = 2000;
my $PREFIX = 'mb:';
my $TIME_LIMIT = 600;

init(time_limit => $TIME_LIMIT);

my $WRK_LUA = "$ROOT/bench/cluster.lua";

# ---------------------------------------------------------------------------
# Redis: a minimal RESP client on one connection

sub redis_connect {
    my ($port) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
                                  Proto => 'tcp')
        or die "connect to redis 127.0.0.1:$port: $!\n";
    $s->autoflush(1);
    return $s;
}

sub redis_read {
    my ($s) = @_;
    my $line = <$s>;
    die "redis: connection closed\n" unless defined $line;
    $line =~ s/\r\n\z//;
    my ($t, $v) = (substr($line, 0, 1), substr($line, 1));
    return $v if $t eq '+';
    die "redis: $v\n" if $t eq '-';
    return $v + 0 if $t eq ':';
    if ($t eq '$') {
        return undef if $v < 0;
        my $buf = '';
        while (length $buf < $v + 2) {
            my $n = read($s, $buf, $v + 2 - length $buf, length $buf);
            die "redis: read: $!\n" unless $n;
        }
        return substr($buf, 0, $v);
    }
    if ($t eq '*') {
        return undef if $v < 0;
        return [map { redis_read($s) } 1 .. $v];
    }
    die "redis: unexpected reply: $line\n";
}

# the commands of @cmds (each an array ref), pipelined; their replies
sub redis_pipe {
    my ($s, @cmds) = @_;
    my $req = '';
    for my $c (@cmds) {
        $req .= '*' . @$c . "\r\n";
        $req .= '$' . length($_) . "\r\n$_\r\n" for @$c;
    }
    print {$s} $req or die "redis: write: $!\n";
    return map { redis_read($s) } @cmds;
}

sub redis_cmd {
    my ($s, @args) = @_;
    return (redis_pipe($s, \@args))[0];
}

# INFO server, stats, cpu, memory, commandstats: { field => value }, with
# "cmd:<name>" => calls for each command
sub redis_info {
    my ($s) = @_;
    my %i;
    for (split /\r?\n/, redis_cmd($s, 'INFO', 'server', 'stats', 'cpu',
                                  'memory', 'commandstats'))
    {
        if (/^cmdstat_([^:]+):calls=(\d+),usec=(\d+)/) {
            $i{"cmd:$1"} = $2;
            $i{"usec:$1"} = $3;
        } elsif (/^(\w+):(.*)$/) {
            $i{$1} = $2;
        }
    }
    return \%i;
}

# commands the module's scripts call (besides being sent on their own by
# the heartbeat: SET and EXPIRE, counted from its ZADD)
my %IN_SCRIPTS = map { $_ => 1 } qw(del expire get hdel hexists hget hgetall
    hincrby hkeys hmget hset hsetnx incr set xadd);

# what happened in Redis between two INFOs
sub redis_delta {
    my ($a, $b) = @_;
    my %d = (
        commands => $b->{total_commands_processed}
                    - $a->{total_commands_processed},
        cpu => ($b->{used_cpu_sys} + $b->{used_cpu_user})
               - ($a->{used_cpu_sys} + $a->{used_cpu_user}),
        memory => $b->{used_memory} - $a->{used_memory},
    );
    my $trips = 0;
    for my $k (keys %$b) {
        next unless $k =~ /^cmd:(.*)$/;
        my $name = $1;
        my $n = $b->{$k} - ($a->{$k} // 0);
        $d{$name} = $n;
        next if $IN_SCRIPTS{$name} || $name eq 'info';
        $trips += $n;
    }
    # a heartbeat: SET, ZADD, ZREMRANGEBYSCORE, EXPIRE, ZCARD
    $trips += 2 * ($d{zadd} // 0);
    $d{trips} = $trips;
    # Redis's time in the flushes (the script included)
    $d{evalsha_usec} = ($b->{'usec:evalsha'} // 0)
                       - ($a->{'usec:evalsha'} // 0);
    # INFO itself: counted in total_commands_processed, not sent by nginx
    $d{commands} -= $d{info} // 0;
    return \%d;
}

# ---------------------------------------------------------------------------
# nginx configuration

sub nginx_conf {
    my (%o) = @_;
    my $redis = $o{redis}
        ? "    mitte_redis 127.0.0.1:$o{redis} prefix=$o{prefix} "
          . "timeout=$o{timeout}"
          . ($o{flush} ? " flush=$o{flush}" : '') . ";\n" : '';
    my $dir = $o{dir};
    return conf_head(dir => $dir, workers => $WORKERS, single => $o{single},
                     connections => 4096, rlimit => 8192)
        . conf_http_base($dir) . <<"END" . conf_target($o{upstream}) . <<"END";
    keepalive_requests 1000000;

    mitte_zone mitte:64m;
    # high enough that no delivery is refused
    mitte_quota free 100000000;
    mitte_quota pro  100000000;
$redis$o{extra}
END
    server {
        listen 127.0.0.1:$o{port};

        proxy_http_version 1.1;
        proxy_set_header Connection "";

        location /hooks/ {
            location ~ ^/hooks/(?<slug>[A-Za-z0-9._-]+)\$ {
                mitte_endpoint \$slug;
                mitte_user \$http_x_mitte_user;
                proxy_pass http://u;
            }
        }

        location = /mitte/preferences {
            mitte_user \$http_x_mitte_user;
            mitte_preferences;
        }

        location = /events/all {
            mitte_sse all;
        }

@{[ conf_admin() ]}    }
}
END
}

# ---------------------------------------------------------------------------
# the instances

# $INSTANCES nginx of $kind (cluster or embedded); [{pid, log, port, dir}]
sub start_set {
    my ($dir, $kind, $redis_port) = @_;
    my @set;
    for my $i (1 .. $INSTANCES) {
        my $sub = "$dir/$kind-$i";
        mkdir $sub or die "$sub: $!\n";
        my ($port, $up) = free_ports(2);
        my ($pid, $log) = start_nginx($sub, nginx_conf(
                dir => $sub, port => $port, upstream => $up,
                redis => $kind eq 'cluster' ? $redis_port : undef,
                prefix => $PREFIX, timeout => '1s', extra => ''),
            name => "nginx $kind-$i", port => $port);
        push @set, { pid => $pid, log => $log, port => $port, dir => $sub,
                     name => "$kind-$i" };
    }
    return \@set;
}

sub stop_set {
    my ($set) = @_;
    for my $n (@$set) {
        my $st = stop($n->{pid}, 'QUIT');
        die "$n->{name} did not stop\n" unless defined $st;
        fail_with_log("$n->{name} reported problems\n", $n->{log})
            if log_problems($n->{log});
    }
}

# polls $cond->() until true, at most $timeout seconds; its last value
sub wait_until {
    my ($cond, $timeout, $what) = @_;
    my $end = time + $timeout;
    while (1) {
        my $v = $cond->();
        return $v if $v;
        die "$what: not within ${timeout}s\n" if time > $end;
        sleep 0.05;
    }
}

# every instance of the set connected, with its reading connection
sub wait_connected {
    my ($set) = @_;
    for my $n (@$set) {
        wait_until(sub {
            my $m = metrics($n->{port});
            ($m->{mitte_redis_up} // 0) == 1
                && ($m->{mitte_redis_reader_up} // 0) == 1;
        }, 20, "$n->{name}: connected to Redis");
    }
}

# deliveries recorded by the set's instances, and (cluster) the backlog
sub set_counts {
    my ($set) = @_;
    my %c = (deliveries => 0, backlog => 0, flushes => 0, errors => 0,
             dropped => 0, timeouts => 0);
    for my $n (@$set) {
        my $m = metrics($n->{port});
        $c{deliveries} += ($m->{'mitte_deliveries_total{result="success"}'}
                           // 0)
                        + ($m->{'mitte_deliveries_total{result="failure"}'}
                           // 0);
        $c{backlog} += $m->{mitte_redis_backlog_endpoints} // 0;
        $c{flushes} += $m->{mitte_redis_flushes_total} // 0;
        $c{errors} += $m->{mitte_redis_flush_errors_total} // 0;
        $c{dropped} += $m->{mitte_redis_backlog_dropped_total} // 0;
        $c{timeouts} += $m->{'mitte_redis_errors_total{kind="timeout"}'}
                        // 0;
    }
    return \%c;
}

# the set's counts once every batch is in Redis
sub settled {
    my ($set) = @_;
    my $c;
    wait_until(sub { $c = set_counts($set); $c->{backlog} == 0 }, 10,
               'the backlog sent');
    # a flush sealed when the backlog was read: its reply
    sleep 0.1;
    return set_counts($set);
}

# the CPU seconds the set's workers used so far
sub set_cpu {
    my ($set) = @_;
    my $ticks = 0;
    for my $pid (map { children_of($_->{pid}) } @$set) {
        open my $fh, '<', "/proc/$pid/stat" or next;
        my $line = <$fh> // next;
        # pid (comm) state ppid ... utime (14) stime (15)
        $line =~ s/^.*\) //;
        my @f = split ' ', $line;
        $ticks += $f[11] + $f[12];
    }
    return $ticks / 100;
}

# wait until the set's workers are idle (under 10% of a core over 0.25 s):
# after a load, the relays may still be applying the stream. (seconds
# waited, CPU seconds the workers used meanwhile)
sub wait_idle {
    my ($set, $timeout) = @_;
    my $t0 = time;
    my $c0 = set_cpu($set);
    my $c = $c0;
    while (time - $t0 < $timeout) {
        sleep 0.25;
        my $c1 = set_cpu($set);
        my $busy = $c1 - $c;
        $c = $c1;
        last if $busy < 0.025;
    }
    return (time - $t0, $c - $c0);
}

# ---------------------------------------------------------------------------
# requests

sub delivery_text {
    my ($slug, $user, $port) = @_;
    my $body = '{"id":"evt_0001","type":"invoice.paid","created":1767225600,'
        . '"data":{"object":{"id":"in_0001","amount_paid":4200,'
        . '"currency":"eur","customer":"cus_0001"}}}';
    return "POST /hooks/$slug HTTP/1.1\r\n"
        . "Host: 127.0.0.1:$port\r\n"
        . "Content-Type: application/json\r\n"
        . "Content-Length: " . length($body) . "\r\n"
        . "X-Mitte-User: $user\r\n"
        . "\r\n" . $body;
}

sub deliver {
    my ($c, $port, $slug, $user) = @_;
    my ($st) = roundtrip($c, delivery_text($slug, $user, $port), 60);
    die "POST /hooks/$slug: status $st\n" unless $st == 200;
}

sub put_json {
    my ($c, $path, $json, $headers) = @_;
    my ($st, undef, $body) = roundtrip($c, request('PUT', $path,
        { 'Content-Type' => 'application/json', %{ $headers // {} } },
        $json), 30);
    die "PUT $path: $st $body\n" unless $st == 200;
}

# ---------------------------------------------------------------------------
# (f) Redis memory per endpoint and per user

# the sum of MEMORY USAGE (every element) of @keys; how many exist
sub keys_usage {
    my ($r, @keys) = @_;
    my ($sum, $n) = (0, 0);
    while (my @chunk = splice @keys, 0, 200) {
        for my $u (redis_pipe($r, map { ['MEMORY', 'USAGE', $_, 'SAMPLES',
                                          '0'] } @chunk))
        {
            next unless defined $u;
            $sum += $u;
            $n++;
        }
    }
    return ($sum, $n);
}

sub stream_usage {
    my ($r) = @_;
    return redis_cmd($r, 'MEMORY', 'USAGE', "${PREFIX}{events}", 'SAMPLES',
                     '0') // 0;
}

# used_memory and the stream's usage around $code; (growth less the
# stream's, the stream's growth)
sub memory_of {
    my ($r, $set, $code) = @_;
    my ($m0, $s0) = (redis_info($r)->{used_memory}, stream_usage($r));
    $code->();
    settled($set);
    my ($m1, $s1) = (redis_info($r)->{used_memory}, stream_usage($r));
    return ($m1 - $m0 - ($s1 - $s0), $s1 - $s0);
}

sub memory {
    my ($r, $set) = @_;
    my $n1 = $set->[0];
    my $c = client($n1->{port});
    my %f;

    # endpoints: one delivery each, the current hour
    my ($ep, $eps) = memory_of($r, $set, sub {
        deliver($c, $n1->{port}, "mem-$_", 'user-' . ($_ % $USERS))
            for 0 .. $MEM_ENDPOINTS - 1;
    });
    my ($ku, $kn) = keys_usage($r, map { ("${PREFIX}{e:mem-$_}:h",
                                          "${PREFIX}{e:mem-$_}:m") }
                                     0 .. $MEM_ENDPOINTS - 1);
    die "memory: $kn of the endpoints' keys in Redis, not "
        . 2 * $MEM_ENDPOINTS . "\n" unless $kn == 2 * $MEM_ENDPOINTS;
    $f{ep} = $ep / $MEM_ENDPOINTS;
    $f{ep_keys} = $ku / $MEM_ENDPOINTS;
    $f{ep_stream} = $eps;

    # endpoints imported with the whole window: 49 hours
    my $hour = int(time / 3600);
    my ($full) = memory_of($r, $set, sub {
        for my $i (0 .. $MEM_FULL - 1) {
            my $hours = join ',', map {
                sprintf '{"hour":%d,"requests":%d,"failures":%d}',
                    ($hour - 48 + $_) * 3600, 100 + $_, $_ % 3
            } 0 .. 48;
            put_json($c, "/mitte-admin/endpoints/full-$i",
                     '{"name":"Full endpoint ' . $i . '","user":"user-'
                     . ($i % $USERS) . '","hours":[' . $hours . ']}');
        }
    });
    my ($fu, $fn) = keys_usage($r, map { ("${PREFIX}{e:full-$_}:h",
                                          "${PREFIX}{e:full-$_}:m") }
                                     0 .. $MEM_FULL - 1);
    die "memory: $fn of the imported endpoints' keys in Redis, not "
        . 2 * $MEM_FULL . "\n" unless $fn == 2 * $MEM_FULL;
    my $hlen = redis_cmd($r, 'HLEN', "${PREFIX}{e:full-0}:h");
    die "memory: an imported endpoint holds $hlen hour fields, not 98\n"
        unless $hlen == 98;
    $f{full} = $full / $MEM_FULL;
    $f{full_keys} = $fu / $MEM_FULL;

    # users: the operator API (the meta hash)
    my ($users) = memory_of($r, $set, sub {
        put_json($c, "/mitte-admin/users/mu-$_",
                 qq({"plan":"pro","email":"mu-$_\@example.com"}))
            for 0 .. $MEM_USERS - 1;
    });
    my ($uu, $un) = keys_usage($r, map { "${PREFIX}{u:mu-$_}:meta" }
                                     0 .. $MEM_USERS - 1);
    die "memory: $un user hashes in Redis, not $MEM_USERS\n"
        unless $un == $MEM_USERS;
    $f{user} = $users / $MEM_USERS;
    $f{user_keys} = $uu / $MEM_USERS;

    # preferences
    my ($prefs) = memory_of($r, $set, sub {
        put_json($c, '/mitte/preferences',
                 qq({"email":{"enabled":true,"address":"mu-$_\@example.com"},)
                 . '"types":{"QUOTA_WARNING":false}}',
                 { 'X-Mitte-User' => "mu-$_" })
            for 0 .. $MEM_USERS - 1;
    });
    my ($pu, $pn) = keys_usage($r, map { "${PREFIX}{u:mu-$_}:prefs" }
                                     0 .. $MEM_USERS - 1);
    die "memory: $pn preferences in Redis, not $MEM_USERS\n"
        unless $pn == $MEM_USERS;
    $f{prefs} = $prefs / $MEM_USERS;
    $f{prefs_keys} = $pu / $MEM_USERS;

    close $c->{sock};
    $f{stream} = stream_usage($r);
    $f{stream_len} = redis_cmd($r, 'XLEN', "${PREFIX}{events}");

    printf "(f) Redis memory (used_memory growth less the event stream's; "
        . "MEMORY USAGE of the keys):\n"
        . "    endpoint, 1 hour:  %6.0f B (keys %.0f B)\n"
        . "    endpoint, 49 hours: %5.0f B (keys %.0f B)\n"
        . "    user (meta hash):  %6.0f B (keys %.0f B)\n"
        . "    preferences:       %6.0f B (keys %.0f B)\n"
        . "    event stream now: %d entries, %.0f kB\n",
        @f{qw(ep ep_keys full full_keys user user_keys prefs prefs_keys)},
        $f{stream_len}, $f{stream} / 1024;
    return \%f;
}

# ---------------------------------------------------------------------------
# (a), (c), (d): wrk over the 3 instances of a set

sub wrk_set {
    my ($dir, $set, $seconds, $tag) = @_;
    local $ENV{MITTE_WRK_PORTS} = join ' ', map { $_->{port} } @$set;
    return wrk_command($dir, $seconds, $tag, 'wrk', '-t' . @$set,
                       "-c$CONNECTIONS", "-d${seconds}s", '-s', $WRK_LUA,
                       "http://127.0.0.1:$set->[0]{port}");
}

# one measured run of a set: wrk's figures, and for the cluster what Redis
# did meanwhile, per 1,000 deliveries
sub run_set {
    my ($dir, $r, $set, $kind, $tag) = @_;
    my $c0 = settled($set);
    my $i0 = $kind eq 'cluster' ? redis_info($r) : undef;
    my $cpu0 = set_cpu($set);
    my $t0 = time;
    my $w = wrk_set($dir, $set, $SECONDS, $tag);
    my $c1 = settled($set);
    # the relays catching up: not in wrk's time, nor in the next run's;
    # in Redis's figures (the XREADs, their CPU)
    @{$w}{qw(idle idle_cpu)} = wait_idle($set, 30);
    my $wall = time - $t0;
    my $d = $c1->{deliveries} - $c0->{deliveries};
    die "$tag: $d deliveries recorded, wrk read $w->{requests} answers\n"
        if $d < $w->{requests} || $d > $w->{requests} + $CONNECTIONS;
    $w->{deliveries} = $d;
    # the CPU a delivery cost the set's workers, and (cluster) Redis, in
    # microseconds: the work itself, whatever the scheduler did with it
    $w->{nginx_us} = (set_cpu($set) - $cpu0) * 1e6 / $d;
    $w->{cost_us} = $w->{nginx_us};
    return $w unless $i0;
    my $rd = redis_delta($i0, redis_info($r));
    $w->{redis_us} = $rd->{cpu} * 1e6 / $d;
    $w->{cost_us} += $w->{redis_us};
    # a flush that failed (Redis slower than the timeout) is sent again:
    # counted, not fatal; a delta dropped (the backlog full) is reported
    $w->{$_} = $c1->{$_} - $c0->{$_} for qw(errors dropped timeouts);
    $w->{flushes} = $c1->{flushes} - $c0->{flushes};
    $w->{flush_ms} = ($rd->{evalsha} ? $rd->{evalsha_usec} / $rd->{evalsha}
                                     : 0) / 1000;
    $w->{trips} = $rd->{trips} * 1000 / $d;
    $w->{evalsha} = ($rd->{evalsha} // 0) * 1000 / $d;
    $w->{xread} = ($rd->{xread} // 0) * 1000 / $d;
    $w->{commands} = $rd->{commands} * 1000 / $d;
    $w->{cpu} = $rd->{cpu} * 1000 / $d;
    $w->{cpu_share} = $rd->{cpu} / $wall;
    return $w;
}

sub throughput {
    my ($dir, $r, $emb, $clu) = @_;
    printf "(a) throughput: wrk -t%d -c%d, %ds a run, %d instances x %d "
        . "workers each, %d endpoints of %d users\n", $INSTANCES,
        $CONNECTIONS, $SECONDS, $INSTANCES, $WORKERS, $ENDPOINTS, $USERS;
    # warm-up: every endpoint made in every zone (and in Redis)
    wrk_set($dir, $emb, 2, 'warmup-embedded');
    wrk_set($dir, $clu, 2, 'warmup-cluster');

    my (@e, @c, @pairs, @cost_pairs);
    for my $i (1 .. $PAIRS) {
        my @order = $i % 2 ? qw(embedded cluster) : qw(cluster embedded);
        my %run;
        for my $kind (@order) {
            my $w = run_set($dir, $r, $kind eq 'cluster' ? $clu : $emb,
                            $kind, "$kind-$i");
            $run{$kind} = $w;
            printf "    run %d %-8s %7.0f rps  p50 %5.0f us  p99 %6.0f us",
                $i, $kind, $w->{rps}, $w->{p50_us}, $w->{p99_us};
            printf "  | Redis per 1,000: %.1f round trips (%.1f EVALSHA, "
                . "%.1f XREAD), %.0f commands, %.3f s CPU; %.0f%% of a "
                . "core; %.0f deliveries a flush, %.1f ms in Redis",
                $w->{trips}, $w->{evalsha}, $w->{xread}, $w->{commands},
                $w->{cpu}, 100 * $w->{cpu_share},
                $w->{deliveries} / $w->{flushes}, $w->{flush_ms}
                if $kind eq 'cluster';
            printf "  | CPU a delivery %.1f us (nginx %.1f%s)", $w->{cost_us},
                $w->{nginx_us}, defined $w->{redis_us}
                                ? sprintf(', Redis %.1f', $w->{redis_us})
                                : '';
            printf "  | busy %.1fs after (%.1f s CPU)", $w->{idle},
                $w->{idle_cpu};
            printf "  | %d flushes failed and were sent again, %d "
                . "commands timed out, %d deltas dropped", $w->{errors},
                $w->{timeouts}, $w->{dropped}
                if $kind eq 'cluster'
                   && ($w->{errors} || $w->{timeouts} || $w->{dropped});
            print "\n";
        }
        push @e, $run{embedded};
        push @c, $run{cluster};
        push @pairs, $run{cluster}{rps} / $run{embedded}{rps};
        push @cost_pairs, $run{embedded}{cost_us} / $run{cluster}{cost_us};
    }
    my %s = (
        ratio => median(@pairs),
        pairs => \@pairs,
        cost_ratio => median(@cost_pairs),
        cost_pairs => \@cost_pairs,
        emb_cost => median(map { $_->{cost_us} } @e),
        clu_cost => median(map { $_->{cost_us} } @c),
        clu_nginx => median(map { $_->{nginx_us} } @c),
        clu_redis => median(map { $_->{redis_us} } @c),
        emb => median(map { $_->{rps} } @e),
        clu => median(map { $_->{rps} } @c),
        emb_p99 => median(map { $_->{p99_us} } @e),
        clu_p99 => median(map { $_->{p99_us} } @c),
    );
    $s{emb_idle} = median(map { $_->{idle} } @e);
    $s{emb_idle_cpu} = median(map { $_->{idle_cpu} } @e);
    for my $k (qw(trips evalsha xread commands cpu cpu_share idle
                  idle_cpu flush_ms)) {
        $s{$k} = median(map { $_->{$k} } @c);
        $s{"${k}_all"} = [map { $_->{$k} } @c];
    }
    $s{per_flush} = median(map { $_->{deliveries} / $_->{flushes} } @c);
    for my $k (qw(errors timeouts dropped)) {
        $s{$k} = 0;
        $s{$k} += $_->{$k} for @c;
    }
    printf "    ratio cluster/embedded per pair: %s (median %.3f)\n",
        join(' ', map { sprintf '%.3f', $_ } @pairs), $s{ratio};
    printf "    CPU a delivery, embedded over cluster, per pair: %s (median "
        . "%.3f)\n", join(' ', map { sprintf '%.3f', $_ } @cost_pairs),
        $s{cost_ratio};
    return \%s;
}

# ---------------------------------------------------------------------------
# (e) cross-instance latency

sub sse_open {
    my ($port) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
                                  Proto => 'tcp')
        or die "SSE: connect: $!\n";
    print {$s} "GET /events/all HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        . "Accept: text/event-stream\r\n\r\n";
    my $sse = { sock => $s, buf => '', frames => [] };
    my $sel = IO::Select->new($s);
    while (index($sse->{buf}, "\r\n\r\n") < 0) {
        $sel->can_read(10) or die "SSE: no answer\n";
        sysread($s, $sse->{buf}, 65536, length $sse->{buf})
            or die "SSE: closed\n";
    }
    my $head = substr($sse->{buf}, 0, index($sse->{buf}, "\r\n\r\n") + 4,
                      '');
    $head =~ m{^HTTP/1\.1 200 } or die "SSE: $head\n";
    $sse->{chunked} = $head =~ /^Transfer-Encoding:\s*chunked/mi;
    $sse->{raw} = '';
    return $sse;
}

# what arrived on the stream: the slugs of its webhook:delivered frames,
# with the time read
sub sse_read {
    my ($sse) = @_;
    my $n = sysread($sse->{sock}, $sse->{buf}, 65536, length $sse->{buf});
    die "SSE: closed\n" unless $n;
    my $now = time;
    if ($sse->{chunked}) {
        while ($sse->{buf} =~ /^([0-9a-fA-F]+)\r\n/) {
            my ($len, $hl) = (hex $1, $+[0]);
            last if length $sse->{buf} < $hl + $len + 2;
            $sse->{raw} .= substr($sse->{buf}, $hl, $len);
            substr($sse->{buf}, 0, $hl + $len + 2, '');
        }
    } else {
        $sse->{raw} .= $sse->{buf};
        $sse->{buf} = '';
    }
    my @got;
    while ((my $end = index($sse->{raw}, "\n\n")) >= 0) {
        my $frame = substr($sse->{raw}, 0, $end + 2, '');
        next unless $frame =~ /^event: webhook:delivered$/m;
        push @got, $1 if $frame =~ /"endpointSlug":"([^"]+)"/;
    }
    return map { [$_, $now] } @got;
}

sub latency {
    my ($dir, $from, $to) = @_;
    my $sse = sse_open($to->{port});
    my $c = client($from->{port});
    my $sel = IO::Select->new($sse->{sock});

    # the stream is known on A once a delivery there reaches it
    my $seen = 0;
    my $end = time + 10;
    while (!$seen) {
        die "(e) no frame from instance 1 on instance 2's stream in 10s\n"
            if time > $end;
        deliver($c, $from->{port}, 'lat-probe', 'user-0');
        my $until = time + 0.5;
        while (!$seen && time < $until) {
            next unless $sel->can_read(0.05);
            $seen = grep { $_->[0] eq 'lat-probe' } sse_read($sse);
        }
    }
    sleep 0.2;
    sse_read($sse) while $sel->can_read(0);

    my (%sent, @lat, @log, @answer);
    my $gap = 1 / $LAT_RATE;
    my $next = time;
    my $t0 = $next;
    my $i = 0;
    my $deadline = time + $LAT_EVENTS * $gap + 10;
    while (@lat < $LAT_EVENTS) {
        die "(e) " . @lat . " of $LAT_EVENTS frames in time\n"
            if time > $deadline;
        if ($i < $LAT_EVENTS && time >= $next) {
            # the slugs of ep-*, so that no endpoint is made here
            my $slug = 'ep-' . ($i % $ENDPOINTS);
            my $t = time;
            deliver($c, $from->{port}, $slug, 'user-' . ($i % $USERS));
            push @answer, (time - $t) * 1000;
            push @{ $sent{$slug} }, $t;
            $i++;
            # random gaps (0.5 to 1.5 times the mean): a fixed one would
            # keep each delivery at the same place in the flush interval
            $next += $gap * (0.5 + rand);
        }
        my $wait = $next - time;
        $wait = 0.2 if $i >= $LAT_EVENTS;
        next unless $sel->can_read($wait > 0 ? $wait : 0);
        for my $f (sse_read($sse)) {
            my $t = shift @{ $sent{$f->[0]} // [] };
            die "(e) a frame of $f->[0], not delivered\n" unless defined $t;
            push @lat, ($f->[1] - $t) * 1000;
            push @log, sprintf "%.3f %.1f\n", $t - $t0, $lat[-1];
        }
    }
    close $c->{sock};
    close $sse->{sock};
    # when each was sent (s from the first) and its latency (ms)
    spew("$dir/latency.txt", join '', @log);
    my @s = sort { $a <=> $b } @lat;
    my @an = sort { $a <=> $b } @answer;
    my %r = (p50 => $s[int(@s * 0.5)], p99 => $s[int(@s * 0.99)],
             max => $s[-1], n => scalar @s,
             over => scalar(grep { $_ >= 50 } @lat),
             # the delivery's own answer on instance 1: a stall of the
             # machine shows there too
             a99 => $an[int(@an * 0.99)], amax => $an[-1]);
    printf "(e) instance 1 to a 'mitte_sse all' stream on instance 2, %d "
        . "deliveries at %d/s: p50 %.1f ms, p99 %.1f ms, max %.1f ms; %d "
        . "of 50 ms or more; the deliveries' answers: p99 %.1f ms, max "
        . "%.1f ms\n", $r{n}, $LAT_RATE, @r{qw(p50 p99 max over a99 amax)};
    return \%r;
}

# ---------------------------------------------------------------------------
# (b) callgrind

sub cg_total {
    my ($file) = @_;
    my $text = slurp($file);
    return $1 if $text =~ /^summary:\s+(\d+)/m;
    return $1 if $text =~ /^totals:\s+(\d+)/m;
    die "$file: no summary line\n";
}

# { function => Ir } of a callgrind output, inclusive or not
sub cg_functions {
    my ($file, $inclusive) = @_;
    my %f;
    open my $fh, '-|', 'callgrind_annotate', '--auto=no', '--threshold=100',
        '--inclusive=' . ($inclusive ? 'yes' : 'no'), $file
        or die "callgrind_annotate: $!\n";
    while (<$fh>) {
        next unless /^\s*([\d,]+)\s+\([^)]*\)\s+(\S.*)$/;
        my ($ir, $name) = ($1, $2);
        next if $name eq 'PROGRAM TOTALS';
        $ir =~ tr/,//d;
        $name =~ s/\s*\[[^\]]*\]\s*$//;
        $name =~ s/^.*://;
        # a function may be listed twice (with and without its file):
        # exclusive counts are split between them, inclusive ones repeated
        if ($inclusive) {
            $f{$name} = $ir if $ir > ($f{$name} // 0);
        } else {
            $f{$name} += $ir;
        }
    }
    close $fh;
    return \%f;
}

# one nginx under callgrind: $n deliveries ($idle: none, staying up $idle
# seconds instead); (output file, seconds the deliveries took, flushes)
sub cg_run {
    my ($dir, $r, $kind, $n, $idle, $seq, $flush) = @_;
    my $tag = "$kind-$n-$seq";
    # embedded has no flush: a short wait for the last log lines
    $flush = 1 unless $kind eq 'cluster';
    my $sub = "$dir/cg-$tag";
    mkdir $sub or die "$sub: $!\n";
    my ($port, $up) = free_ports(2);
    my $out = "$dir/callgrind.out.$tag";
    my ($pid, $log) = start_nginx($sub, nginx_conf(
            dir => $sub, port => $port, upstream => $up, single => 1,
            redis => $kind eq 'cluster' ? $r->{port} : undef,
            # a prefix of its own: an empty stream for the relay to read
            prefix => "cg$seq:", timeout => '5s', flush => "${flush}s",
            extra => "    mitte_sse_heartbeat 1h;\n"),
        name => "valgrind $tag", out => "$sub/valgrind.out",
        err => "$sub/valgrind.err", port => $port, timeout => 120,
        wrapper => ['valgrind', '--tool=callgrind', '--quiet',
                    '--dump-instr=no', "--callgrind-out-file=$out"]);
    my ($took, $flushes);
    my $ok = eval {
        my $node = [{ port => $port, name => "valgrind $tag" }];
        wait_connected($node) if $kind eq 'cluster';
        my $c = client($port);
        my $t0 = time;
        for my $i (0 .. $n - 1) {
            my $e = $i % $ENDPOINTS;
            deliver($c, $port, "ep-$e", 'user-' . ($e % $USERS));
        }
        sleep $idle if $idle;
        $took = time - $t0;
        # the last flush: the counts wait for mitte_redis's flush=
        sleep $flush + 0.3;
        my $m = metrics($c);
        close $c->{sock};
        my $got = ($m->{'mitte_deliveries_total{result="success"}'} // 0);
        die "$tag: $got deliveries recorded, not $n\n" unless $got == $n;
        if ($kind eq 'cluster') {
            my $b = $m->{mitte_redis_backlog_endpoints} // -1;
            die "$tag: a backlog of $b endpoints at the end\n" if $b != 0;
            $flushes = $m->{mitte_redis_flushes_total} // 0;
            die "$tag: no flush\n" if $n && !$flushes;
        }
        1;
    };
    fail_with_log($@, $log) unless $ok;
    my $st = stop($pid, 'QUIT');
    die "$tag: valgrind did not stop\n" unless defined $st;
    die "$tag: valgrind exited with $st:\n" . slurp("$sub/valgrind.err")
        if $st != 0;
    fail_with_log("$tag: nginx reported problems\n", $log)
        if log_problems($log);
    return ($out, $took, $flushes);
}

my $cg_seq = 0;

sub callgrind {
    my ($dir, $r, $CG_N, $flush) = @_;
    system('valgrind --version >/dev/null 2>&1') == 0
        or die "valgrind is missing (apt-get install valgrind)\n";
    printf "(b) callgrind: %d deliveries on one keep-alive connection, "
        . "flush=%s, minus a run without any that stays up as long\n",
        $CG_N, $flush eq 'batch' ? "(about $CG_BATCH deliveries a flush)"
                                 : "${flush}s";
    my (%per, %out, %flushes, %took);
    for my $kind (qw(embedded cluster)) {
        if ($kind eq 'cluster' && $flush eq 'batch') {
            # the flush interval that gives a flush $CG_BATCH deliveries
            # at 90% of embedded's rate under valgrind (cluster's)
            $flush = int($CG_BATCH / (0.9 * $CG_N / $took{embedded}) + 0.5);
            $flush = 1 if $flush < 1;
            printf "    cluster at flush=%ds\n", $flush;
        }
        my $t0 = time;
        my ($rec, $took, $fl) = cg_run($dir, $r, $kind, $CG_N, 0, ++$cg_seq,
                                       $flush);
        my ($none) = cg_run($dir, $r, $kind, 0, $took, ++$cg_seq, $flush);
        $per{$kind} = (cg_total($rec) - cg_total($none)) / $CG_N;
        $out{$kind} = { rec => $rec, none => $none };
        $flushes{$kind} = $fl;
        $took{$kind} = $took;
        printf "    %-8s %.0f instructions a delivery (%.1fs of requests, "
            . "%.0f a second%s; %.0fs)\n", $kind, $per{$kind}, $took,
            $CG_N / $took, $fl ? sprintf(', %d flushes, %.1f deliveries '
                                         . 'a flush', $fl, $CG_N / $fl)
                               : '', time - $t0;
    }
    my %s = (emb => $per{embedded}, clu => $per{cluster},
             diff => $per{cluster} - $per{embedded},
             flushes => $flushes{cluster}, n => $CG_N, flush_s => $flush,
             rate => $CG_N / $took{cluster});
    printf "    cluster - embedded: %+.0f instructions a delivery "
        . "(target: within 150)\n", $s{diff};

    # the cluster's own functions, inclusive, a delivery (rec - none)
    my $ir = cg_functions($out{cluster}{rec}, 1);
    my $in = cg_functions($out{cluster}{none}, 1);
    my @mine = grep {
        /^(ngx_http_mitte_(sync|relay|redis)_\w+|cJSON_ParseWithLength
           |cJSON_Delete|redisAsync\w+|redisFormatCommandArgv)$/x
    } keys %$ir;
    my %inc = map { $_ => (($ir->{$_} // 0) - ($in->{$_} // 0)) / $CG_N }
        @mine;
    my @top = grep { abs($inc{$_}) >= 1 }
        sort { $inc{$b} <=> $inc{$a} } keys %inc;
    print "    cluster functions, inclusive instructions a delivery:\n";
    printf "    %8.1f  %s\n", $inc{$_}, $_ for @top[0 .. ($#top > 14 ? 14
                                                                : $#top)];
    $s{inclusive} = \%inc;
    # where it goes: the log phase's part (the request's own), the flush
    # (sealed, sent and its reply), the relay (the stream read and applied)
    $s{path} = $inc{ngx_http_mitte_sync_delivery} // 0;
    $s{flush} = ($inc{ngx_http_mitte_sync_timer} // 0)
        + ($inc{ngx_http_mitte_sync_sent} // 0)
        + ($inc{ngx_http_mitte_redis_write_handler} // 0);
    $s{relay} = $inc{ngx_http_mitte_relay_got} // 0;
    $s{rest} = $s{diff} - $s{path} - $s{flush} - $s{relay};
    printf "    of which: log phase %.0f, flush %.0f (sealed, sent, its "
        . "reply), relay %.0f (the stream read and applied), rest %.0f\n",
        @s{qw(path flush relay rest)};

    if ($SPLIT) {
        my ($fe, $fc) = (cg_functions($out{embedded}{rec}, 0),
                         cg_functions($out{cluster}{rec}, 0));
        my ($ne, $nc) = (cg_functions($out{embedded}{none}, 0),
                         cg_functions($out{cluster}{none}, 0));
        my %d;
        for my $f (keys %$fe, keys %$fc) {
            $d{$f} = ((($fc->{$f} // 0) - ($nc->{$f} // 0))
                      - (($fe->{$f} // 0) - ($ne->{$f} // 0))) / $CG_N;
        }
        my @t = (sort { abs($d{$b}) <=> abs($d{$a}) } keys %d)
            [0 .. $SPLIT - 1];
        print "    exclusive instructions a delivery, cluster minus "
            . "embedded:\n";
        printf "    %8.1f  %s\n", $d{$_}, $_ for grep { defined } @t;
        $s{exclusive} = { map { $_ => $d{$_} } grep { defined } @t };
    }
    return \%s;
}

sub cg_summary {
    my ($cg, $what) = @_;
    return sprintf '(b) callgrind a delivery, %s (%d deliveries, flush=%ds, '
        . '%.0f deliveries a flush): embedded %.0f, cluster %.0f: %+.0f '
        . '(target: within 150: %s); log phase %.0f, flush %.0f, relay '
        . '%.0f, rest %.0f', $what, $cg->{n}, $cg->{flush_s},
        $cg->{n} / $cg->{flushes}, $cg->{emb}, $cg->{clu}, $cg->{diff},
        abs($cg->{diff}) <= 150 ? 'met' : 'MISSED',
        @{$cg}{qw(path flush relay rest)};
}

# (b) twice: at the flush= of (a), where valgrind's slowness leaves a
# flush fewer deliveries than at full load; and with a flush as large as
# at full load in (a)
sub callgrind_both {
    my ($dir, $r) = @_;
    my @s;
    push @s, cg_summary(callgrind($dir, $r, $CG_N, 1), 'flush= as in (a)')
        if $CG_N;
    push @s, cg_summary(callgrind($dir, $r, $CG_BATCH_N, 'batch'),
                        "a flush as at full load")
        if $CG_BATCH_N;
    return @s;
}

# ---------------------------------------------------------------------------

check_nginx_module();
check_wrk();
bail(Mitte::Redis->missing) if Mitte::Redis->missing;

my $dir = workdir('mitte-cluster-XXXXXX');
my $t0 = time;

# Mitte::Redis keeps its directory (redis.log) with MITTE_KEEP
$ENV{MITTE_KEEP} = 1 if $KEEP;
my $redis = Mitte::Redis->new;
$redis->start;

my @summary = guarded($dir, sub {
    my $r = redis_connect($redis->port);
    printf "redis-server %s on 127.0.0.1:%d; %d CPUs%s\n",
        redis_info($r)->{redis_version} // '?', $redis->port, cpus(),
        $KEEP ? '; kept: ' . $redis->dir : '';
    # the commands that took 100 ms or more, for (a)
    redis_cmd($r, 'CONFIG', 'SET', 'slowlog-log-slower-than', '100000');
    if ($CG_ONLY) {
        my @cg = callgrind_both($dir, { port => $redis->port });
        close $r;
        $redis->stop;
        return @cg;
    }
    my $clu = start_set($dir, 'cluster', $redis->port);
    my $emb = start_set($dir, 'embedded');
    wait_connected($clu);

    my $mem = memory($r, $clu);
    my $tp = throughput($dir, $r, $emb, $clu);
    # the stream after full load: entries as large as the flushes were
    my %st = (len => redis_cmd($r, 'XLEN', "${PREFIX}{events}"),
              bytes => stream_usage($r),
              used => redis_info($r)->{used_memory});
    # the last flushes: their size, and the endpoints each carried
    my ($n, $size, $eps) = (0, 0, 0);
    for my $e (@{ redis_cmd($r, 'XREVRANGE', "${PREFIX}{events}", '+', '-',
                            'COUNT', '50') })
    {
        my %f = @{ $e->[1] };
        # a flush's entry: field "f", a line an event ("E") or an endpoint
        # ("P"); the flushes of events alone are left out
        next unless defined $f{f} && $f{f} =~ /^P/m;
        $n++;
        $size += length $f{f};
        $eps += () = $f{f} =~ /^P/mg;
    }
    @st{qw(entry entry_eps)} = $n ? ($size / $n, $eps / $n) : (0, 0);
    my $slow = redis_cmd($r, 'SLOWLOG', 'GET', '1000');
    $st{slow} = @$slow;
    $st{slowest} = 0;
    my %what;
    for (@$slow) {
        $st{slowest} = $_->[2] / 1000 if $_->[2] / 1000 > $st{slowest};
        # the command and its first argument (a script's SHA: its start)
        my @a = @{ $_->[3] // [] };
        my $w = uc($a[0] // '?') . (defined $a[1] ? ' ' . substr($a[1], 0, 12)
                                                 : '');
        $what{$w} .= sprintf ' %.0f', $_->[2] / 1000;
    }
    printf "    Redis commands of 100 ms or more: %d, the slowest %.0f ms%s\n",
        $st{slow}, $st{slowest},
        join '', map { "; $_ (ms:$what{$_})" } sort keys %what;
    printf "    event stream after the runs: %d entries, %.1f MB (Redis "
        . "used_memory %.1f MB); the last flushes: %.1f kB, %.0f endpoints "
        . "each\n", $st{len}, $st{bytes} / 1e6, $st{used} / 1e6,
        $st{entry} / 1024, $st{entry_eps};
    stop_set($emb);
    my $lat = latency($dir, $clu->[0], $clu->[1]);
    stop_set($clu);
    my @cg = callgrind_both($dir, { port => $redis->port });
    close $r;
    $redis->stop;

    my @s;
    push @s, sprintf '(a) throughput cluster/embedded: %.3f (pairs %s; '
        . 'embedded %.0f rps, cluster %.0f rps; wrk p99 %.1f / %.1f ms)',
        $tp->{ratio}, join(' ', map { sprintf '%.3f', $_ } @{ $tp->{pairs} }),
        $tp->{emb}, $tp->{clu}, $tp->{emb_p99} / 1000, $tp->{clu_p99} / 1000;
    push @s, sprintf '    CPU a delivery (the workers, and Redis; not wrk '
        . 'nor the upstream): embedded %.1f us, cluster %.1f us (nginx %.1f, '
        . 'Redis %.1f): embedded / cluster %.3f (pairs %s), the throughput '
        . 'a CPU-bound machine would see', @{$tp}{qw(emb_cost clu_cost
        clu_nginx clu_redis cost_ratio)},
        join(' ', map { sprintf '%.3f', $_ } @{ $tp->{cost_pairs} });
    push @s, sprintf '    over the cluster runs: %d flushes failed (sent '
        . 'again), %d commands timed out, %d deltas dropped; Redis: %.1f '
        . 'ms a flush (median of the runs), %d commands of 100 ms or more '
        . '(the slowest %.0f ms)', @{$tp}{qw(errors timeouts dropped
        flush_ms)}, $st{slow}, $st{slowest};
    push @s, sprintf '    busy after a run: cluster %.1f s (%.1f s of '
        . 'worker CPU; runs %s s), embedded %.1f s (%.1f s)', $tp->{idle},
        $tp->{idle_cpu}, join(' ', map { sprintf '%.1f', $_ }
                              @{ $tp->{idle_all} }),
        $tp->{emb_idle}, $tp->{emb_idle_cpu};
    push @s, @cg;
    push @s, sprintf '(c) Redis round trips per 1,000 deliveries: %.1f '
        . '(runs %s; EVALSHA %.1f, XREAD %.1f; %.0f deliveries a flush; '
        . 'target <= 20: %s); commands processed (script calls included) '
        . '%.0f', $tp->{trips},
        join(' ', map { sprintf '%.1f', $_ } @{ $tp->{trips_all} }),
        $tp->{evalsha}, $tp->{xread}, $tp->{per_flush},
        $tp->{trips} <= 20 ? 'met' : 'MISSED', $tp->{commands};
    push @s, sprintf '(d) Redis CPU per 1,000 deliveries: %.1f ms (runs %s); '
        . '%.0f%% of a core at full load', $tp->{cpu} * 1000,
        join(' ', map { sprintf '%.1f', $_ * 1000 } @{ $tp->{cpu_all} }),
        100 * $tp->{cpu_share};
    push @s, sprintf '(e) cross-instance latency: p50 %.1f ms, p99 %.1f ms, '
        . 'max %.1f ms, %d of %d at 50 ms or more (at %d/s; target p99 '
        . '< 50 ms: %s); answers on instance 1: p99 %.1f ms, max %.1f ms',
        @{$lat}{qw(p50 p99 max over n)}, $LAT_RATE,
        $lat->{p99} < 50 ? 'met' : 'MISSED', @{$lat}{qw(a99 amax)};
    push @s, sprintf '(f) Redis memory: %.0f B an endpoint (1 hour), %.0f B '
        . '(49 hours), %.0f B a user (meta), %.0f B its preferences; '
        . 'stream %d entries, %.0f kB', @{$mem}{qw(ep full user prefs)},
        $mem->{stream_len}, $mem->{stream} / 1024;
    push @s, sprintf '    event stream after full load: %d entries, %.1f MB '
        . '(Redis used_memory %.1f MB); a flush %.1f kB, %.0f endpoints',
        $st{len}, $st{bytes} / 1e6, $st{used} / 1e6, $st{entry} / 1024,
        $st{entry_eps};
    return @s;
});

print_summary($t0, @summary);
exit 0;
