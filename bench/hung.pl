#!/usr/bin/perl

# bench/hung.pl: the proxy ratio of bench/proxy.pl while webhook sends to a
# hung target are in flight or waiting.
#
#   MITTE_MODULE=build/ngx_http_mitte_module.so perl bench/hung.pl
#
# One nginx (the stock binary, the module loaded, ONE worker, which is also
# the sender: worker 0 sends) serves:
#
#   /plain/<slug>        proxy_pass to a keepalive upstream      } as in
#   /hooks/<slug>        the same, with mitte_endpoint/mitte_user } proxy.pl
#   /fail/<slug>         the same as /hooks/, to a second upstream server
#                        of the same nginx that answers 503
#   /mitte/preferences   mitte_preferences
#   /mitte-admin/        mitte_admin
#
# with mitte_webhook_allow 127.0.0.1 and mitte_webhook_timeout 30s, and a
# loopback "hung" receiver: a forked Perl IO::Socket server that accepts
# connections, reads and discards what comes, and never answers (it closes
# a socket only when nginx does).
#
# 1. reference: wrk alternation plain/recorded (bench/webhooks.lua, 1,000
#    endpoints, 50 users; warm-up, then BENCH_PAIRS pairs of
#    BENCH_DURATION s), median ratio, on the fresh nginx.
# 2. BENCH_SENDS users hung-<i> (default 100) get a json webhook to the hung
#    receiver; each owns an endpoint down-<i> that gets 5 failing deliveries
#    (/fail/, 503) -> ENDPOINT_DOWN (default threshold 5) -> one webhook send
#    each. GET /mitte-admin/outbox must show the BENCH_SENDS sends pending
#    and the receiver must hold the sender's connections (the sender caps
#    in-flight sends at 4 per webhook host, by design: 4 connections, the
#    rest wait in the outbox).
# 3. the same wrk alternation (no endpoint creation needed: a short warm-up)
#    while they hang; then the outbox and the receiver again.
#
# With the defaults (5 pairs x 4 s) the second series lasts ~42 s, longer
# than the 30 s timeout: the first 4 sends time out during it (attempt
# failed, retry in 1 s) and the sender opens the next 4 connections to the
# same hung host; every send stays pending (5 retries).
#
# Environment:
#   MITTE_MODULE        the module (default build/ngx_http_mitte_module.so)
#   NGINX               the nginx binary (default /usr/sbin/nginx)
#   BENCH_PAIRS         plain/recorded pairs of wrk runs (default 5)
#   BENCH_DURATION      seconds per wrk run (default 4)
#   BENCH_CONNECTIONS   wrk connections (default 32)
#   BENCH_SENDS         hung webhook sends (default 100)
#   BENCH_PIN           1 (default with 2+ CPUs): nginx's worker on CPU 0,
#                       wrk on CPU 1
#   BENCH_KEEP          1 keeps the temp dir
#
# Exit status: 0 when every run and every check passed; 1 otherwise.

use strict;
use warnings;

use Cwd qw(abs_path);
use File::Basename qw(dirname);
use File::Copy qw(copy);
use File::Temp qw(tempdir);
use IO::Select;
use IO::Socket::INET;
use JSON::PP;
use POSIX qw(WNOHANG _exit);
use Time::HiRes qw(time sleep);

$| = 1;

my $ROOT = abs_path(dirname(abs_path($0)) . '/..');
my $LUA = "$ROOT/bench/webhooks.lua";

my $NGINX = $ENV{NGINX} // '/usr/sbin/nginx';
my $MODULE = $ENV{MITTE_MODULE} // "$ROOT/build/ngx_http_mitte_module.so";
my $PAIRS = $ENV{BENCH_PAIRS} // 5;
my $DURATION = $ENV{BENCH_DURATION} // 4;
my $CONNECTIONS = $ENV{BENCH_CONNECTIONS} // 32;
my $SENDS = $ENV{BENCH_SENDS} // 100;
my $KEEP = $ENV{BENCH_KEEP} // 0;

my $ENDPOINTS = 1000;     # as in bench/webhooks.lua
my $USERS = 50;
my $PER_HOST = 4;         # the sender's in-flight cap per webhook host
my $THRESHOLD = 5;        # mitte_endpoint_down's default threshold
my $TIME_LIMIT = 175;     # seconds for the whole script, a safety net

my $CPUS = () = do {
    open my $fh, '<', '/proc/cpuinfo' or die "/proc/cpuinfo: $!\n";
    grep { /^processor\s*:/ } <$fh>;
};
my $PIN = $ENV{BENCH_PIN} // ($CPUS >= 2 ? 1 : 0);

# ---------------------------------------------------------------------------
# child processes: started by fork, stopped by pid on any exit

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

sub children_of {
    my ($ppid) = @_;
    my @pids;
    for my $stat (glob '/proc/[0-9]*/stat') {
        open my $fh, '<', $stat or next;
        my $line = <$fh> // next;
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
# helpers (as in bench/proxy.pl)

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

sub free_ports {
    my ($n) = @_;
    my @socks = map {
        IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
                              Proto => 'tcp', Listen => 1, ReuseAddr => 1)
            or die "cannot bind a loopback port: $!\n";
    } 1 .. $n;
    return map { $_->sockport } @socks;
}

sub log_problems {
    my ($log) = @_;
    return grep { /\[(emerg|alert|crit)\]|exited on signal/ }
        split /^/, slurp($log);
}

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
# a minimal HTTP/1.1 client on one keep-alive connection (as in proxy.pl)

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

sub request {
    my ($method, $path, $headers, $body) = @_;
    $body //= '';
    my $h = join '', map { "$_: $headers->{$_}\r\n" } sort keys %$headers;
    return "$method $path HTTP/1.1\r\nHost: 127.0.0.1\r\n$h"
        . "Content-Length: " . length($body) . "\r\n\r\n$body";
}

sub get {
    my ($port, $path) = @_;
    my $c = client($port);
    my ($st, undef, $body) = roundtrip($c, request('GET', $path,
                                                   { Connection => 'close' }));
    die "GET $path: $st\n$body\n" unless $st == 200;
    return $body;
}

sub metrics {
    my ($port) = @_;
    my %m;
    for (split /\n/, get($port, '/mitte-admin/metrics')) {
        next if /^#/;
        $m{$1} = $2 if /^(\S+)\s+(\S+)$/;
    }
    return \%m;
}

# ---------------------------------------------------------------------------
# the hung receiver: a forked Perl server that accepts, reads and discards,
# and never answers. Its counts go to a status file: accepted, open, bytes.

sub hung_receiver {
    my ($dir) = @_;
    my $ls = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
                                   Proto => 'tcp', Listen => 1024,
                                   ReuseAddr => 1)
        or die "hung receiver: bind: $!\n";
    my $port = $ls->sockport;
    my $status = "$dir/hung.status";
    spew($status, "0 0 0\n");
    my $pid = fork;
    die "fork: $!\n" unless defined $pid;
    if ($pid == 0) {
        $SIG{$_} = 'DEFAULT' for qw(INT TERM HUP ALRM);
        alarm 0;
        my $sel = IO::Select->new($ls);
        my ($accepted, $bytes, @held) = (0, 0);
        my $write = sub {
            open my $fh, '>', "$status.tmp" or return;
            printf {$fh} "%d %d %d\n", $accepted, $sel->count - 1, $bytes;
            close $fh;
            rename "$status.tmp", $status;
        };
        while (1) {
            _exit(0) if getppid() != $MAIN_PID;   # the bench went away
            for my $s ($sel->can_read(1)) {
                if ($s == $ls) {
                    my $c = $ls->accept or next;
                    $accepted++;
                    $sel->add($c);
                } else {
                    my $n = sysread($s, my $buf, 65536);
                    if ($n) {
                        $bytes += $n;    # the request: never answered
                    } else {
                        $sel->remove($s);   # nginx closed it (timeout)
                        close $s;
                    }
                }
                $write->();
            }
        }
    }
    close $ls;
    $children{$pid} = 'hung receiver';
    return ($pid, $port, sub {
        my ($a, $o, $b) = split ' ', slurp($status);
        return { accepted => $a // 0, open => $o // 0, bytes => $b // 0 };
    });
}

# ---------------------------------------------------------------------------
# nginx configuration: proxy.pl's, plus /fail/, preferences and the webhook
# directives

sub nginx_conf {
    my (%o) = @_;
    my $dir = $o{dir};
    my $user = $> == 0 ? "user root root;\n" : '';
    my $top = "daemon off;\nworker_processes 1;\n"
        . ($o{pin} ? "worker_cpu_affinity 01;\n" : '');
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

    keepalive_requests 1000000;

    mitte_zone mitte:64m;
    mitte_quota free 4000000000;
    mitte_quota pro  4000000000;

    # the hung receiver is on loopback; the sends stay in flight for 30 s
    mitte_webhook_allow 127.0.0.1;
    mitte_webhook_timeout 30s;

    upstream u {
        server 127.0.0.1:$o{upstream};
        keepalive 32;
        keepalive_requests 1000000;
    }

    # the webhook target of the wrk runs (as in proxy.pl)
    server {
        listen 127.0.0.1:$o{upstream};
        location / {
            return 200 "ok\\n";
        }
    }

    # a failing target, to raise ENDPOINT_DOWN; its own server, so that the
    # location the wrk runs hit is exactly proxy.pl's
    upstream u503 {
        server 127.0.0.1:$o{failing};
        keepalive 8;
    }
    server {
        listen 127.0.0.1:$o{failing};
        location / {
            return 503;
        }
    }

    server {
        listen 127.0.0.1:$o{port};

        proxy_http_version 1.1;
        proxy_set_header Connection "";

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
        location /fail/ {
            location ~ ^/fail/(?<slug>[A-Za-z0-9._-]+)\$ {
                mitte_endpoint \$slug;
                mitte_user \$http_x_mitte_user;
                proxy_pass http://u503;
            }
        }
        location = /mitte/preferences {
            mitte_user \$http_x_mitte_user;
            mitte_preferences;
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
# wrk

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

# warm-up, then PAIRS alternating pairs; the median ratio and the medians
sub wrk_series {
    my ($dir, $port, $name, $warm_hooks) = @_;
    wrk_run($dir, $port, 'plain', 1, "$name-warmup-plain");
    wrk_run($dir, $port, 'hooks', $warm_hooks, "$name-warmup-hooks");
    my (@plain, @rec);
    for my $i (1 .. $PAIRS) {
        for my $kind (qw(plain hooks)) {
            my $r = wrk_run($dir, $port, $kind, $DURATION, "$name-$kind-$i");
            printf "  run %d %s %9.0f rps   p50 %5.0f us   p99 %5.0f us\n",
                $i, $kind eq 'plain' ? 'plain   ' : 'recorded', $r->{rps},
                $r->{p50_us}, $r->{p99_us};
            push @{ $kind eq 'plain' ? \@plain : \@rec }, $r->{rps};
        }
    }
    my @ratios = map { $rec[$_] / $plain[$_] } 0 .. $#plain;
    printf "  ratio per pair: %s (median %.3f); plain %.0f-%.0f rps, "
        . "recorded %.0f-%.0f rps\n",
        join(' ', map { sprintf '%.3f', $_ } @ratios), median(@ratios),
        (sort { $a <=> $b } @plain)[0, -1], (sort { $a <=> $b } @rec)[0, -1];
    # the summary, as in proxy.pl: the ratio of the medians
    my ($mp, $mr) = (median(@plain), median(@rec));
    return { ratio => $mr / $mp, plain => $mp, rec => $mr };
}

# ---------------------------------------------------------------------------
# the hung sends

# the outbox's webhook sends to the hung receiver: [states], {attempts}
sub outbox {
    my ($port, $hport) = @_;
    my $doc = decode_json(get($port, '/mitte-admin/outbox'));
    my (%state, %attempts, %err);
    for my $s (@{ $doc->{sends} }) {
        next unless $s->{channel} eq 'webhook'
            && $s->{target} =~ m{^http://127\.0\.0\.1:$hport/};
        $state{ $s->{state} }++;
        $attempts{ $s->{attempts} }++;
        $err{ $s->{lastError} }++ if defined $s->{lastError};
    }
    return (\%state, \%attempts, \%err);
}

sub describe_outbox {
    my ($state, $attempts, $err) = @_;
    my $fmt = sub {
        my ($h) = @_;
        join(', ', map { "$h->{$_} $_" } sort keys %$h) || 'none';
    };
    return sprintf "states: %s; attempts: %s; last errors: %s",
        $fmt->($state),
        join(', ', map { "$attempts->{$_} x $_" }
                   sort { $a <=> $b } keys %$attempts),
        join(', ', map { "$err->{$_} x \"" . substr($_, 0, 48) . '"' }
                   sort keys %$err) || 'none';
}

sub raise_hung {
    my ($port, $hport) = @_;
    my $c = client($port);
    for my $i (0 .. $SENDS - 1) {
        my $body = encode_json({ webhook => {
            enabled => JSON::PP::true, format => 'json',
            url => "http://127.0.0.1:$hport/hook/hung-$i" } });
        my ($st, undef, $b) = roundtrip($c, request('PUT',
            '/mitte/preferences', { 'X-Mitte-User' => "hung-$i",
                                    'Content-Type' => 'application/json' },
            $body));
        die "PUT /mitte/preferences (hung-$i): $st $b\n" unless $st == 200;
    }
    my $t0 = time;
    for my $i (0 .. $SENDS - 1) {
        for my $k (1 .. $THRESHOLD) {
            my ($st) = roundtrip($c, request('POST', "/fail/down-$i",
                { 'X-Mitte-User' => "hung-$i",
                  'Content-Type' => 'application/json' },
                '{"event":"bench"}'));
            die "POST /fail/down-$i: $st, not 503\n" unless $st == 503;
        }
    }
    close $c->{sock};
    return time - $t0;
}

sub run {
    my ($dir) = @_;
    my ($port, $up, $fail) = free_ports(3);
    my ($rxpid, $hport, $rx) = hung_receiver($dir);
    my $conf = "$dir/nginx.conf";
    spew($conf, nginx_conf(dir => $dir, port => $port, upstream => $up,
                           failing => $fail, pin => $PIN));
    my $log = "$dir/error.log";
    my $pid = spawn('nginx', undef, "$dir/nginx.stderr", $NGINX,
                    '-p', "$dir/", '-c', $conf, '-e', $log);
    wait_port($port, $pid, 10, $log);

    my @summary;
    my $ok = eval {
        printf "wrk -t1 -c%d -d%ds, %d endpoints, %d users, 1 nginx worker "
            . "(also the sender)%s; %d pairs\n", $CONNECTIONS, $DURATION,
            $ENDPOINTS, $USERS,
            $PIN ? ', nginx on CPU 0, wrk on CPU 1' : '', $PAIRS;

        print "reference (no webhook send):\n";
        my $ref = wrk_series($dir, $port, 'ref', 2);
        push @summary, sprintf "proxy ratio before the hung sends: %.3f "
            . "(plain %.0f rps, recorded %.0f rps)", @$ref{qw(ratio plain rec)};
        print "  $summary[-1]\n";

        printf "raising %d ENDPOINT_DOWN (%d x 503 each) for %d users with "
            . "a webhook to the hung receiver (127.0.0.1:%d) ...\n",
            $SENDS, $THRESHOLD, $SENDS, $hport;
        my $raised = raise_hung($port, $hport);
        my $t_raised = time;
        printf "  raised in %.2fs\n", $raised;

        # the sender polls every 200 ms: wait for the sends and connections
        my ($state, $att, $err, $r);
        my $end = time + 5;
        while (1) {
            ($state, $att, $err) = outbox($port, $hport);
            $r = $rx->();
            last if ($state->{pending} // 0) == $SENDS
                && $r->{open} >= $PER_HOST;
            last if time > $end;
            sleep 0.2;
        }
        my $m = metrics($port);
        my $down = $m->{'mitte_notifications_total{type="ENDPOINT_DOWN"}'}
            // 0;
        my $pend = $m->{'mitte_outbox_pending{channel="webhook"}'} // '?';
        printf "  outbox: %d webhook sends to the hung target (%s); "
            . "metrics: %d ENDPOINT_DOWN, mitte_outbox_pending webhook %s\n",
            eval { my $n = 0; $n += $_ for values %$state; $n },
            describe_outbox($state, $att, $err), $down, $pend;
        printf "  hung receiver: %d connections accepted, %d held open, "
            . "%d request bytes read, none answered\n",
            @$r{qw(accepted open bytes)};
        printf "  (the sender caps in-flight sends at %d per webhook host, "
            . "by design: %d in flight, %d waiting in the outbox)\n",
            $PER_HOST, $r->{open}, $SENDS - $r->{open};
        die "ENDPOINT_DOWN raised $down times, not $SENDS\n"
            unless $down == $SENDS;
        die sprintf "the outbox shows %d pending sends to the hung target, "
            . "not %d\n", $state->{pending} // 0, $SENDS
            unless ($state->{pending} // 0) == $SENDS;
        die "the hung receiver holds $r->{open} connections, not $PER_HOST\n"
            unless $r->{open} == $PER_HOST;

        printf "with %d sends to a hung target (%.1fs after raising):\n",
            $SENDS, time - $t_raised;
        my $hung = wrk_series($dir, $port, 'hung', 1);
        my $during = time - $t_raised;
        ($state, $att, $err) = outbox($port, $hport);
        $r = $rx->();
        printf "  after the runs (%.0fs after raising): outbox %s\n",
            $during, describe_outbox($state, $att, $err);
        printf "  hung receiver: %d connections accepted in all, %d held "
            . "open\n", $r->{accepted}, $r->{open};
        die sprintf "after the runs, %d sends pending, not %d\n",
            $state->{pending} // 0, $SENDS
            unless ($state->{pending} // 0) == $SENDS;
        push @summary, sprintf "proxy ratio with %d sends to a hung target: "
            . "%.3f (plain %.0f rps, recorded %.0f rps)", $SENDS,
            @$hung{qw(ratio plain rec)};
        print "  $summary[-1]\n";

        my $eps = metrics($port)->{mitte_endpoints} // 0;
        die "the module holds $eps endpoints, not " . ($ENDPOINTS + $SENDS)
            . "\n" unless $eps == $ENDPOINTS + $SENDS;
        1;
    };
    fail_with_log($@, $log) unless $ok;
    my $t = time;
    stop($pid);
    printf "nginx stopped in %.1fs\n", time - $t;
    stop($rxpid);
    fail_with_log("nginx reported problems\n", $log) if log_problems($log);
    return @summary;
}

# ---------------------------------------------------------------------------

sub bail {
    print STDERR "bench/hung.pl FAILED: @_\n";
    exit 1;
}

-x $NGINX or bail("$NGINX is missing");
-r $MODULE or bail("the module $MODULE is missing: run make");
$MODULE = abs_path($MODULE);
system('wrk -v >/dev/null 2>&1');
bail('wrk is missing (apt-get install wrk)') if $? == -1 || $? >> 8 == 127;
if ($PIN && system('taskset -c 1 true >/dev/null 2>&1') != 0) {
    warn "taskset -c 1 does not work here: not pinning\n";
    $PIN = 0;
}

my $dir = tempdir('mitte-bench-hung-XXXXXX', TMPDIR => 1,
                  CLEANUP => !$KEEP);
chmod 0755, $dir;
copy($MODULE, "$dir/ngx_http_mitte_module.so") or bail("copy $MODULE: $!");
$MODULE = "$dir/ngx_http_mitte_module.so";
my $t0 = time;

my @summary = eval { run($dir) };
print "kept: $dir\n" if $KEEP;
unless (@summary) {
    chomp(my $err = $@ || 'no result');
    bail($err);
}
printf "\nsummary (%.0fs):\n", time - $t0;
print "$_\n" for @summary;
exit 0;
