#!/usr/bin/perl

# bench/proxy.pl: what recording costs a proxied webhook delivery.
#
#   MITTE_MODULE=build/ngx_http_mitte_module.so perl bench/proxy.pl
#
# One nginx (the stock binary, the module loaded) serves two locations that
# differ only in the module's directives:
#
#   /plain/<slug>   proxy_pass to a keepalive upstream
#   /hooks/<slug>   the same, with mitte_endpoint $slug and mitte_user
#
# and, on another loopback port of the same nginx, the upstream itself
# (return 200 "ok\n"). Requests are webhook-like POSTs with a small JSON body,
# spread over 1,000 endpoints and 50 users (bench/webhooks.lua).
#
# Part 1, throughput: wrk runs alternate plain, recorded, plain, recorded ...
# (BENCH_PAIRS pairs of BENCH_DURATION seconds, after a warm-up); the summary
# is the ratio of the medians. Then GET /mitte-admin/metrics must show the
# deliveries and the 1,000 endpoints, or the bench fails.
#
# Part 2, instructions per request (BENCH_CALLGRIND=0 skips it): nginx in one
# process (master_process off) under valgrind --tool=callgrind, a Perl client
# on one keep-alive connection. Callgrind counts the whole process life, so
# each location is run twice, N1 and N1 + N requests, and
# (Ir(N1 + N) - Ir(N1)) / N is the cost of one request: start-up, the first
# N1 requests (which create the 1,000 endpoints), the metrics check and the
# shutdown cancel out. The count is deterministic, so one pair is enough.
#
# Environment:
#   MITTE_MODULE           the module (default build/ngx_http_mitte_module.so)
#   NGINX                  the nginx binary (default /usr/sbin/nginx)
#   BENCH_PAIRS            plain/recorded pairs of wrk runs (default 5)
#   BENCH_DURATION         seconds per wrk run (default 5)
#   BENCH_CONNECTIONS      wrk connections (default 32)
#   BENCH_PIN              1 (default when there are 2+ CPUs): nginx's worker
#                          on CPU 0, wrk on CPU 1; 0: let the kernel schedule
#   BENCH_THROUGHPUT       0 skips part 1 (default 1)
#   BENCH_CALLGRIND        0 skips part 2 (default 1)
#   BENCH_CALLGRIND_N      measured requests per location (default 2000)
#   BENCH_KEEP             1 keeps the temp dir (configs, logs, callgrind.out.*)
#
# Exit status: 0 when every run worked and the module recorded; 1 otherwise.

use strict;
use warnings;

use Cwd qw(abs_path);
use File::Basename qw(dirname);
use File::Copy qw(copy);
use File::Temp qw(tempdir);
use IO::Select;
use IO::Socket::INET;
use POSIX qw(WNOHANG _exit);
use Time::HiRes qw(time sleep);

$| = 1;

my $ROOT = abs_path(dirname(abs_path($0)) . '/..');
my $LUA = "$ROOT/bench/webhooks.lua";

my $NGINX = $ENV{NGINX} // '/usr/sbin/nginx';
my $MODULE = $ENV{MITTE_MODULE} // "$ROOT/build/ngx_http_mitte_module.so";
my $PAIRS = $ENV{BENCH_PAIRS} // 5;
my $DURATION = $ENV{BENCH_DURATION} // 5;
my $CONNECTIONS = $ENV{BENCH_CONNECTIONS} // 32;
my $THROUGHPUT = $ENV{BENCH_THROUGHPUT} // 1;
my $CALLGRIND = $ENV{BENCH_CALLGRIND} // 1;
my $CG_N = $ENV{BENCH_CALLGRIND_N} // 2000;
my $KEEP = $ENV{BENCH_KEEP} // 0;

my $ENDPOINTS = 1000;     # as in bench/webhooks.lua
my $USERS = 50;
my $CG_N1 = $ENDPOINTS;   # callgrind warm-up: every endpoint created once
my $TIME_LIMIT = 180;     # seconds for the whole script, a safety net

my $CPUS = () = do {
    open my $fh, '<', '/proc/cpuinfo' or die "/proc/cpuinfo: $!\n";
    grep { /^processor\s*:/ } <$fh>;
};
my $PIN = $ENV{BENCH_PIN} // ($CPUS >= 2 ? 1 : 0);

# ---------------------------------------------------------------------------
# child processes: started by fork/exec, stopped by pid on any exit

my $MAIN_PID = $$;
my %children;    # pid => name

$SIG{INT} = $SIG{TERM} = $SIG{HUP} = sub { die "interrupted by SIG$_[0]\n" };
$SIG{ALRM} = sub { die "time limit of ${TIME_LIMIT}s reached\n" };
$SIG{PIPE} = 'IGNORE';
alarm $TIME_LIMIT;

END {
    if ($$ == $MAIN_PID) {
        local $?;
        stop($_) for keys %children;
    }
}

# fork and exec @cmd; stdout and stderr to the files given (or inherited)
sub spawn {
    my ($name, $out, $err, @cmd) = @_;
    my $pid = fork;
    die "fork: $!\n" unless defined $pid;
    if ($pid == 0) {
        eval {
            if (defined $out) {
                open STDOUT, '>', $out or die "$out: $!\n";
            }
            if (defined $err) {
                open STDERR, '>', $err or die "$err: $!\n";
            }
            open STDIN, '<', '/dev/null' or die "/dev/null: $!\n";
            exec { $cmd[0] } @cmd or die "exec $cmd[0]: $!\n";
        };
        print STDERR $@;
        _exit(127);
    }
    $children{$pid} = $name;
    return $pid;
}

# wait for a child to exit by itself, at most $timeout seconds; its status
sub reap {
    my ($pid, $timeout) = @_;
    my $end = time + $timeout;
    while (time < $end) {
        my $r = waitpid($pid, WNOHANG);
        if ($r == $pid || $r == -1) {
            delete $children{$pid};
            return $r == $pid ? $? : -1;
        }
        sleep 0.02;
    }
    return undef;
}

# the pids whose parent is $ppid
sub children_of {
    my ($ppid) = @_;
    my @pids;
    for my $stat (glob '/proc/[0-9]*/stat') {
        open my $fh, '<', $stat or next;
        my $line = <$fh> // next;
        # pid (comm) state ppid ...; comm may hold spaces and parens
        push @pids, $1 if $line =~ /^(\d+) \(.*\) \S+ (\d+) / && $2 == $ppid;
    }
    return @pids;
}

# TERM, then KILL (and the KILL for its own children too) after 10 s
sub stop {
    my ($pid) = @_;
    return unless $children{$pid};
    my @kids = children_of($pid);
    kill 'TERM', $pid;
    my $st = reap($pid, 10);
    return $st if defined $st;
    warn "$children{$pid} ($pid) did not stop in 10s, killing it\n";
    kill 'KILL', $pid, @kids;
    return reap($pid, 5);
}

# ---------------------------------------------------------------------------
# helpers

sub slurp {
    my ($file) = @_;
    open my $fh, '<', $file or return '';
    local $/;
    return scalar <$fh>;
}

sub spew {
    my ($file, $text) = @_;
    open my $fh, '>', $file or die "$file: $!\n";
    print {$fh} $text or die "$file: $!\n";
    close $fh or die "$file: $!\n";
}

sub median {
    my @v = sort { $a <=> $b } @_;
    return undef unless @v;
    my $m = int(@v / 2);
    return @v % 2 ? $v[$m] : ($v[$m - 1] + $v[$m]) / 2;
}

# two distinct free loopback ports
sub free_ports {
    my ($n) = @_;
    my @socks = map {
        IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
                              Proto => 'tcp', Listen => 1, ReuseAddr => 1)
            or die "cannot bind a loopback port: $!\n";
    } 1 .. $n;
    return map { $_->sockport } @socks;
}

# the lines of an nginx error log that say something went wrong
sub log_problems {
    my ($log) = @_;
    return grep { /\[(emerg|alert|crit)\]|exited on signal/ }
        split /^/, slurp($log);
}

# die with $msg, and what the error log says went wrong
sub fail_with_log {
    my ($msg, $log) = @_;
    my @p = log_problems($log);
    $msg .= sprintf "%s:\n%s", $log, join '', @p[0 .. ($#p > 9 ? 9 : $#p)]
        if @p;
    $msg .= sprintf "... and %d more\n", @p - 10 if @p > 10;
    die $msg;
}

sub wait_port {
    my ($port, $pid, $timeout, $log) = @_;
    my $end = time + $timeout;
    while (time < $end) {
        my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                      PeerPort => $port, Proto => 'tcp');
        return 1 if $s;
        if (waitpid($pid, WNOHANG) == $pid) {
            delete $children{$pid};
            die "nginx exited at start:\n" . slurp($log);
        }
        sleep 0.05;
    }
    die "nginx did not listen on $port in ${timeout}s:\n" . slurp($log);
}

# ---------------------------------------------------------------------------
# a minimal HTTP/1.1 client on one keep-alive connection

sub client {
    my ($port) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
                                  Proto => 'tcp')
        or die "connect 127.0.0.1:$port: $!\n";
    $s->autoflush(1);
    return { sock => $s, sel => IO::Select->new($s), buf => '' };
}

sub fill {
    my ($c, $timeout) = @_;
    $c->{sel}->can_read($timeout) or die "no answer in ${timeout}s\n";
    my $n = sysread($c->{sock}, $c->{buf}, 65536, length $c->{buf});
    die "read: $!\n" unless defined $n;
    return $n;
}

# send a raw request, read one answer: (status, headers text, body).
# The answer must have a Content-Length, or close the connection.
sub roundtrip {
    my ($c, $req, $timeout) = @_;
    $timeout //= 30;
    my $off = 0;
    while ($off < length $req) {
        my $n = syswrite($c->{sock}, $req, length($req) - $off, $off);
        die "write: $!\n" unless defined $n;
        $off += $n;
    }
    my $end;
    until (($end = index($c->{buf}, "\r\n\r\n")) >= 0) {
        fill($c, $timeout) or die "connection closed before an answer\n";
    }
    my $head = substr($c->{buf}, 0, $end + 4, '');
    my ($status) = $head =~ m{^HTTP/1\.[01] (\d{3})}
        or die "bad status line: " . substr($head, 0, 80) . "\n";
    my $body;
    if ($head =~ /^Content-Length:\s*(\d+)\r$/mi) {
        my $len = $1;
        while (length $c->{buf} < $len) {
            fill($c, $timeout) or die "connection closed in a body\n";
        }
        $body = substr($c->{buf}, 0, $len, '');
    } elsif ($head =~ /^Transfer-Encoding:\s*chunked/mi) {
        die "chunked answers are not supported here\n";
    } else {
        1 while fill($c, $timeout);
        $body = $c->{buf};
        $c->{buf} = '';
    }
    return ($status, $head, $body);
}

# the requests of bench/webhooks.lua, for the callgrind client
sub webhook_request {
    my ($prefix, $i, $port) = @_;
    my $e = $i % $ENDPOINTS;
    my $body = '{"id":"evt_0001","type":"invoice.paid","created":1767225600,'
        . '"data":{"object":{"id":"in_0001","amount_paid":4200,'
        . '"currency":"eur","customer":"cus_0001"}}}';
    return "POST /$prefix/ep-$e HTTP/1.1\r\n"
        . "Host: 127.0.0.1:$port\r\n"
        . "Content-Type: application/json\r\n"
        . "Content-Length: " . length($body) . "\r\n"
        . "X-Mitte-User: user-" . ($e % $USERS) . "\r\n"
        . "\r\n" . $body;
}

sub metrics {
    my ($port) = @_;
    my $c = client($port);
    my ($st, undef, $body) = roundtrip($c,
        "GET /mitte-admin/metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        . "Connection: close\r\n\r\n");
    die "GET /mitte-admin/metrics: $st\n$body\n" unless $st == 200;
    my %m;
    for (split /\n/, $body) {
        next if /^#/;
        $m{$1} = $2 if /^(\S+)\s+(\S+)$/;
    }
    return \%m;
}

# ---------------------------------------------------------------------------
# nginx configuration

sub nginx_conf {
    my (%o) = @_;
    my $dir = $o{dir};
    my $user = $> == 0 ? "user root root;\n" : '';
    my $top;
    if ($o{single}) {
        # callgrind: one process does everything, no master, no worker
        $top = "master_process off;\ndaemon off;\n";
    } else {
        # Throughput: ONE worker. The machine has 2 cores for nginx (proxy
        # and upstream in the same worker), wrk and the rest; 1 worker on one
        # core and wrk (1 thread) on the other keeps them from competing for
        # a core, which is what made 2 workers noisy. The upstream costs the
        # same in both locations, so it only dilutes the ratio, never biases
        # it.
        $top = "daemon off;\nworker_processes 1;\n"
            . ($o{pin} ? "worker_cpu_affinity 01;\n" : '');
    }
    return <<"END";
load_module $MODULE;
$user${top}pid $dir/nginx.pid;
error_log $dir/error.log warn;

events {
    worker_connections 4096;
}

http {
    access_log off;

    client_body_temp_path $dir/client_body_temp;
    proxy_temp_path       $dir/proxy_temp;
    fastcgi_temp_path     $dir/fastcgi_temp;
    uwsgi_temp_path       $dir/uwsgi_temp;
    scgi_temp_path        $dir/scgi_temp;

    # no connection is closed for having served "too many" requests, so
    # every request costs the same (and callgrind counts stay exact)
    keepalive_requests 1000000;

    mitte_zone mitte:64m;
    # quota high enough that it never refuses
    mitte_quota free 4000000000;
    mitte_quota pro  4000000000;

    upstream u {
        server 127.0.0.1:$o{upstream};
        keepalive 32;
        keepalive_requests 1000000;
    }

    # the webhook target
    server {
        listen 127.0.0.1:$o{upstream};
        location / {
            return 200 "ok\\n";
        }
    }

    server {
        listen 127.0.0.1:$o{port};

        proxy_http_version 1.1;
        proxy_set_header Connection "";

        # Each regex location sits in its own prefix location, so that both
        # cost one regex match: side by side at server level, the second one
        # would also pay for the failed match of the first (~600 Ir).
        location /plain/ {
            location ~ ^/plain/(?<slug>[A-Za-z0-9._-]+)\$ {
                proxy_pass http://u;
            }
        }
        location /hooks/ {
            location ~ ^/hooks/(?<slug>[A-Za-z0-9._-]+)\$ {
                mitte_endpoint \$slug;
                mitte_user \$http_x_mitte_user;
                proxy_pass http://u;
            }
        }
        location /mitte-admin/ {
            allow 127.0.0.1;
            deny all;
            mitte_admin;
        }
    }
}
END
}

# ---------------------------------------------------------------------------
# part 1: throughput with wrk

sub wrk_run {
    my ($dir, $port, $prefix, $seconds, $tag) = @_;
    my $out = "$dir/wrk.$tag.out";
    my @cmd = ('wrk', '-t1', "-c$CONNECTIONS", "-d${seconds}s",
               '-s', $LUA, "http://127.0.0.1:$port", '--', $prefix);
    unshift @cmd, 'taskset', '-c', '1' if $PIN;
    my $pid = spawn("wrk $tag", $out, "$dir/wrk.$tag.err", @cmd);
    my $st = reap($pid, $seconds + 30);
    die "wrk $tag did not finish\n" unless defined $st;
    die "wrk $tag failed ($st): " . slurp("$dir/wrk.$tag.err") . slurp($out)
        if $st != 0;
    my $text = slurp($out);
    my ($line) = $text =~ /^BENCH (.*)$/m;
    my %r = defined $line ? $line =~ /(\w+)=(\d+)/g : ();
    die "wrk $tag: no summary line in its output:\n$text\n" unless %r;
    my $errors = $r{connect} + $r{read} + $r{write} + $r{status}
        + $r{timeout};
    die "wrk $tag: $errors errors (HTTP 4xx/5xx, socket errors):\n$text\n"
        if $errors;
    die "wrk $tag: no request done\n" unless $r{requests};
    $r{rps} = $r{requests} / ($r{duration_us} / 1e6);
    return \%r;
}

sub throughput {
    my ($dir) = @_;
    my ($port, $up) = free_ports(2);
    my $conf = "$dir/nginx.conf";
    spew($conf, nginx_conf(dir => $dir, port => $port, upstream => $up,
                           pin => $PIN));
    my $log = "$dir/error.log";
    my $pid = spawn('nginx', undef, "$dir/nginx.stderr", $NGINX,
                    '-p', "$dir/", '-c', $conf, '-e', $log);
    wait_port($port, $pid, 10, $log);
    my $summary = eval { wrk_series($dir, $port) };
    fail_with_log($@, $log) unless defined $summary;
    stop($pid);
    # a worker that crashed and was respawned would make the numbers moot
    fail_with_log("nginx reported problems\n", $log) if log_problems($log);
    return $summary;
}

sub wrk_series {
    my ($dir, $port) = @_;

    printf "throughput: wrk -t1 -c%d -d%ds, %d endpoints, %d users, "
        . "1 nginx worker%s\n", $CONNECTIONS, $DURATION, $ENDPOINTS, $USERS,
        $PIN ? ' (nginx on CPU 0, wrk on CPU 1)' : '';

    # warm-up: both locations; the recorded one creates the 1,000 endpoints
    wrk_run($dir, $port, 'plain', 1, 'warmup-plain');
    my $sent = wrk_run($dir, $port, 'hooks', 2, 'warmup-hooks')->{requests};
    my $hook_runs = 1;

    my (@plain, @rec);
    for my $i (1 .. $PAIRS) {
        for my $kind (qw(plain hooks)) {
            my $r = wrk_run($dir, $port, $kind, $DURATION, "$kind-$i");
            if ($kind eq 'hooks') {
                $sent += $r->{requests};
                $hook_runs++;
            }
            my $name = $kind eq 'plain' ? 'plain   ' : 'recorded';
            printf "  run %d %s %9.0f rps   p50 %5.0f us   p99 %5.0f us\n",
                $i, $name, $r->{rps}, $r->{p50_us}, $r->{p99_us};
            push @{ $kind eq 'plain' ? \@plain : \@rec }, $r->{rps};
        }
    }

    my $m = metrics($port);
    my $ok = $m->{'mitte_deliveries_total{result="success"}'} // 0;
    my $fail = $m->{'mitte_deliveries_total{result="failure"}'} // 0;
    my $eps = $m->{mitte_endpoints} // 0;
    printf "  recorded by the module: %d successful deliveries, "
        . "%d failed (cut by wrk's stop), %d endpoints; wrk read %d "
        . "answers\n", $ok, $fail, $eps, $sent;
    die "the module recorded no successful delivery\n" unless $ok > 0;
    die "the module holds $eps endpoints, not $ENDPOINTS\n"
        unless $eps == $ENDPOINTS;
    # wrk counts the answers it read. When a run ends, wrk closes its
    # connections with up to one request in flight on each: those are still
    # deliveries, successful if the answer was already on its way, failed
    # (499, client closed) if not. So, over all the /hooks/ runs:
    #   answers read <= success, success + failure <= answers + in flight
    my $slack = $CONNECTIONS * $hook_runs;
    die "the module recorded $ok successful deliveries, wrk read $sent "
        . "answers\n" if $ok < $sent;
    die "the module recorded $ok + $fail deliveries, wrk read $sent answers "
        . "and had at most $slack more requests in flight\n"
        if $ok + $fail > $sent + $slack;

    # each pair ran back to back: their ratios say how much of the spread is
    # the machine's load drifting rather than the module
    printf "  ratio per pair: %s; plain %.0f-%.0f rps, recorded %.0f-%.0f "
        . "rps\n", join(' ', map { sprintf '%.3f', $rec[$_] / $plain[$_] }
                        0 .. $#plain),
        (sort { $a <=> $b } @plain)[0, -1], (sort { $a <=> $b } @rec)[0, -1];

    my ($mp, $mr) = (median(@plain), median(@rec));
    return sprintf "proxy ratio recorded/plain: %.3f "
        . "(plain %.0f rps, recorded %.0f rps; medians of %d runs)",
        $mr / $mp, $mp, $mr, $PAIRS;
}

# ---------------------------------------------------------------------------
# part 2: instructions per request with callgrind

sub callgrind_total {
    my ($file) = @_;
    my $text = slurp($file);
    return $1 if $text =~ /^summary:\s+(\d+)/m;
    return $1 if $text =~ /^totals:\s+(\d+)/m;
    die "$file: no summary line\n";
}

# one nginx under callgrind, $n requests to $prefix; the Ir total
sub callgrind_run {
    my ($dir, $prefix, $n) = @_;
    my $tag = "$prefix-$n";
    my $sub = "$dir/cg-$tag";
    mkdir $sub or die "$sub: $!\n";
    my ($port, $up) = free_ports(2);
    my $conf = "$sub/nginx.conf";
    spew($conf, nginx_conf(dir => $sub, port => $port, upstream => $up,
                           single => 1));
    my $out = "$dir/callgrind.out.$tag";
    my $log = "$sub/error.log";
    my $pid = spawn("valgrind $tag", "$sub/valgrind.out",
                    "$sub/valgrind.err",
                    'valgrind', '--tool=callgrind', '--quiet',
                    "--callgrind-out-file=$out",
                    $NGINX, '-p', "$sub/", '-c', $conf, '-e', $log);
    wait_port($port, $pid, 60, $log);
    my $ir = eval { callgrind_requests($port, $prefix, $n, $tag) };
    fail_with_log($@, $log) unless defined $ir;

    my $st = stop($pid);
    die "callgrind $tag: valgrind did not stop\n" unless defined $st;
    die "callgrind $tag: valgrind exited with $st:\n"
        . slurp("$sub/valgrind.err") if $st != 0;
    fail_with_log("nginx reported problems\n", $log) if log_problems($log);
    return callgrind_total($out);
}

sub callgrind_requests {
    my ($port, $prefix, $n, $tag) = @_;
    my $c = client($port);
    for my $i (0 .. $n - 1) {
        my ($st) = roundtrip($c, webhook_request($prefix, $i, $port));
        die "callgrind $tag: request $i: status $st\n" unless $st == 200;
    }
    close $c->{sock};

    # the same check in every run: its cost cancels out in the difference
    my $m = metrics($port);
    my $ok = $m->{'mitte_deliveries_total{result="success"}'} // 0;
    my $want = $prefix eq 'hooks' ? $n : 0;
    die "callgrind $tag: $ok deliveries recorded, not $want\n"
        unless $ok == $want;
    return 1;
}

sub callgrind {
    my ($dir) = @_;
    system('valgrind --version >/dev/null 2>&1') == 0
        or die "valgrind is missing (BENCH_CALLGRIND=0 skips this part)\n";
    my $n2 = $CG_N1 + $CG_N;
    printf "callgrind: Ir of %d minus Ir of %d requests on one keep-alive "
        . "connection, per location\n", $n2, $CG_N1;
    my %per;
    for my $prefix (qw(plain hooks)) {
        my $t0 = time;
        my $ir1 = callgrind_run($dir, $prefix, $CG_N1);
        my $ir2 = callgrind_run($dir, $prefix, $n2);
        $per{$prefix} = ($ir2 - $ir1) / $CG_N;
        printf "  %-8s Ir(%d) %d, Ir(%d) %d: %.0f per request (%.0fs)\n",
            $prefix eq 'plain' ? 'plain' : 'recorded', $CG_N1, $ir1, $n2,
            $ir2, $per{$prefix}, time - $t0;
    }
    my ($p, $r) = @per{qw(plain hooks)};
    return sprintf "callgrind instructions/request: plain %.0f, "
        . "recorded %.0f (%+.1f%%, %+.0f)", $p, $r, ($r / $p - 1) * 100,
        $r - $p;
}

# ---------------------------------------------------------------------------

sub bail {
    print STDERR "bench/proxy.pl FAILED: @_\n";
    exit 1;
}

-x $NGINX or bail("$NGINX is missing");
-r $MODULE or bail("the module $MODULE is missing: run make");
$MODULE = abs_path($MODULE);
system('wrk -v >/dev/null 2>&1');   # wrk -v exits 1, but must exist
bail('wrk is missing (apt-get install wrk)') if $? == -1 || $? >> 8 == 127;
if ($PIN && system('taskset -c 1 true >/dev/null 2>&1') != 0) {
    warn "taskset -c 1 does not work here: not pinning\n";
    $PIN = 0;
}

my $dir = tempdir('mitte-bench-XXXXXX', TMPDIR => 1, CLEANUP => !$KEEP);
chmod 0755, $dir;

# nginx loads a copy: a rebuild (make's cp over the .so) while the bench runs
# would otherwise crash the workers that have the file mapped
copy($MODULE, "$dir/ngx_http_mitte_module.so") or bail("copy $MODULE: $!");
$MODULE = "$dir/ngx_http_mitte_module.so";
my $t0 = time;

my @summary;
my $ok = eval {
    if ($THROUGHPUT) {
        push @summary, throughput($dir);
        print "  $summary[-1]\n";
    }
    if ($CALLGRIND) {
        push @summary, callgrind($dir);
        print "  $summary[-1]\n";
    }
    1;
};
print "kept: $dir\n" if $KEEP;
unless ($ok) {
    chomp(my $err = $@);
    bail($err);
}

printf "\nsummary (%.0fs):\n", time - $t0;
print "$_\n" for @summary;
exit 0;
