package MitteBench;

# bench/lib/MitteBench.pm: what the benchmark scripts (bench/*.pl) share.
#
#   use FindBin;
#   use lib "$FindBin::Bin/lib";
#   use MitteBench;
#
#   init(time_limit => 180);       # $| = 1, signals, the safety-net alarm
#   check_nginx_module();          # $NGINX and $MODULE are there
#   my $dir = workdir('mitte-bench-XXXXXX');   # with a copy of the module
#
# - child processes: started by fork/exec (spawn) or fork (spawn_perl),
#   stopped by pid (stop), on any exit too (the END block below);
# - nginx: its configuration in pieces (conf_*), start_nginx, wait_port,
#   what its error log says went wrong (log_problems, fail_with_log);
# - a minimal HTTP/1.1 client on one keep-alive connection (client,
#   roundtrip, request, get) and the admin metrics (metrics);
# - wrk with bench/webhooks.lua: one run (wrk_run), the warm-up, the
#   alternating plain/recorded series with its medians (wrk_pairs) and the
#   "ratio per pair" line (ratio_line).
#
# Environment read here (each script documents those it uses):
#   MITTE_MODULE   the module (default build/ngx_http_mitte_module.so)
#   MITTE_NGINX    the nginx binary, or NGINX (/usr/sbin/nginx)
#   BENCH_KEEP     1 keeps the temp dir
#
# Core Perl only.

use strict;
use warnings;

use Cwd qw(abs_path);
use Exporter qw(import);
use File::Basename qw(basename dirname);
use File::Copy qw(copy);
use File::Temp qw(tempdir);
use IO::Select;
use IO::Socket::INET;
use POSIX qw(WNOHANG _exit);
use Time::HiRes qw(time sleep);

# the ports come from the test harness's Mitte::Port (t/lib)
use lib dirname(abs_path(__FILE__)) . '/../../t/lib';
use Mitte::Port qw(free_port free_ports);

our @EXPORT = qw(
    $ROOT $NGINX $MODULE $KEEP
    init bail cpus pin_works check_nginx_module check_wrk workdir guarded
    print_summary
    spawn spawn_perl reap children_of stop
    slurp spew median free_port free_ports
    log_problems fail_with_log wait_port start_nginx
    conf_head conf_http_base conf_unlimited conf_target conf_proxy_locations
    conf_admin
    client fill roundtrip request get metrics
    wrk_setup wrk_run wrk_command wrk_warmup wrk_pairs ratio_line
);

our $ROOT = abs_path(dirname(abs_path(__FILE__)) . '/../..');
our $NGINX = $ENV{MITTE_NGINX} // $ENV{NGINX} // '/usr/sbin/nginx';
our $MODULE = $ENV{MITTE_MODULE} // "$ROOT/build/ngx_http_mitte_module.so";
our $KEEP = $ENV{BENCH_KEEP} // 0;

my $NAME = 'bench/' . basename($0);    # for bail

# ---------------------------------------------------------------------------
# the script: set-up, checks, the temp dir, the end

# $| = 1; with time_limit: INT, TERM and HUP die (so that the END block
# stops the children), SIGPIPE is ignored, and an alarm ends the script
# after time_limit seconds
sub init {
    my (%o) = @_;
    $| = 1;
    $NAME = $o{name} if defined $o{name};
    if (defined(my $limit = $o{time_limit})) {
        $SIG{INT} = $SIG{TERM} = $SIG{HUP} =
            sub { die "interrupted by SIG$_[0]\n" };
        $SIG{ALRM} = sub { die "time limit of ${limit}s reached\n" };
        $SIG{PIPE} = 'IGNORE';
        alarm $limit;
    }
}

sub bail {
    print STDERR "$NAME FAILED: @_\n";
    exit 1;
}

sub cpus {
    open my $fh, '<', '/proc/cpuinfo' or die "/proc/cpuinfo: $!\n";
    return scalar grep { /^processor\s*:/ } <$fh>;
}

# whether taskset can put a process on CPU $cpu
sub pin_works {
    my ($cpu) = @_;
    return system("taskset -c $cpu true >/dev/null 2>&1") == 0;
}

# $NGINX and $MODULE are there; $MODULE made absolute
sub check_nginx_module {
    -x $NGINX or bail("$NGINX is missing");
    -r $MODULE or bail("the module $MODULE is missing: run make");
    $MODULE = abs_path($MODULE);
}

sub check_wrk {
    system('wrk -v >/dev/null 2>&1');   # wrk -v exits 1, but must exist
    bail('wrk is missing (apt-get install wrk)') if $? == -1 || $? >> 8 == 127;
}

# a temp dir (kept with BENCH_KEEP=1) holding a copy of the module, which
# becomes $MODULE: nginx loads the copy, as a rebuild (make's cp over the
# .so) while the bench runs would otherwise crash the workers that have the
# file mapped
sub workdir {
    my ($template) = @_;
    my $dir = tempdir($template, TMPDIR => 1, CLEANUP => !$KEEP);
    chmod 0755, $dir;
    copy($MODULE, "$dir/ngx_http_mitte_module.so")
        or bail("copy $MODULE: $!");
    $MODULE = "$dir/ngx_http_mitte_module.so";
    return $dir;
}

# run $code; "kept: $dir" with BENCH_KEEP=1; bail with the error if it
# died; what it returned
sub guarded {
    my ($dir, $code) = @_;
    my @r;
    my $ok = eval { @r = $code->(); 1 };
    print "kept: $dir\n" if $KEEP;
    unless ($ok) {
        chomp(my $err = $@ || 'no result');
        bail($err);
    }
    return wantarray ? @r : $r[0];
}

sub print_summary {
    my ($t0, @lines) = @_;
    printf "\nsummary (%.0fs):\n", time - $t0;
    print "$_\n" for @lines;
}

# ---------------------------------------------------------------------------
# child processes: started by fork/exec, stopped by pid on any exit

my $MAIN_PID = $$;
my %children;    # pid => name

END {
    if ($$ == $MAIN_PID) {
        local $?;
        stop($_) for keys %children;
    }
}

# fork and exec @cmd; stdout to the file $out (or a pipe, read end put in
# $$out, when $out is a scalar ref), stderr to the file $err (the same file
# when $err eq $out); each inherited when undef
sub spawn {
    my ($name, $out, $err, @cmd) = @_;
    my ($rd, $wr);
    if (ref $out eq 'SCALAR') {
        pipe($rd, $wr) or die "pipe: $!\n";
    }
    my $pid = fork;
    die "fork: $!\n" unless defined $pid;
    if ($pid == 0) {
        eval {
            if ($wr) {
                close $rd;
                open STDOUT, '>&', $wr or die "dup: $!\n";
            } elsif (defined $out) {
                open STDOUT, '>', $out or die "$out: $!\n";
            }
            if (defined $err && !$wr && defined $out && $err eq $out) {
                open STDERR, '>&', \*STDOUT or die "dup: $!\n";
            } elsif (defined $err) {
                open STDERR, '>', $err or die "$err: $!\n";
            }
            open STDIN, '<', '/dev/null' or die "/dev/null: $!\n";
            delete $ENV{NGINX};    # nginx's own: inherited sockets
            exec { $cmd[0] } @cmd or die "exec $cmd[0]: $!\n";
        };
        print STDERR $@;
        _exit(127);
    }
    $children{$pid} = $name;
    if ($wr) {
        close $wr;
        ${$out} = $rd;
    }
    return $pid;
}

# fork and run $code in the child; its exit status is 0 when $code returned
sub spawn_perl {
    my ($name, $code) = @_;
    my $pid = fork;
    die "fork: $!\n" unless defined $pid;
    if ($pid == 0) {
        $SIG{ALRM} = 'DEFAULT';
        $SIG{INT} = $SIG{TERM} = $SIG{HUP} = 'DEFAULT';
        my $ok = eval { $code->(); 1 };
        print STDERR "$name: $@" unless $ok;
        _exit($ok ? 0 : 1);
    }
    $children{$pid} = $name;
    return $pid;
}

# wait for a child to exit by itself, at most $timeout seconds; its status
sub reap {
    my ($pid, $timeout) = @_;
    my $end = time + $timeout;
    while (1) {
        my $r = waitpid($pid, WNOHANG);
        if ($r == $pid || $r == -1) {
            delete $children{$pid};
            return $r == $pid ? $? : -1;
        }
        last if time >= $end;
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

# $sig (default TERM), then KILL (and the KILL for its own children too)
# after 10 s; its status
sub stop {
    my ($pid, $sig) = @_;
    return unless $children{$pid};
    my @kids = children_of($pid);
    kill $sig // 'TERM', $pid;
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

# ---------------------------------------------------------------------------
# nginx

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

# wait until nginx ($pid) listens on $port; die with its whole error log
# when it exits or does not listen in time (brief => 1: with what the log
# says went wrong only)
sub wait_port {
    my ($port, $pid, $timeout, $log, %o) = @_;
    my $end = time + $timeout;
    while (time < $end) {
        my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                      PeerPort => $port, Proto => 'tcp');
        return 1 if $s;
        if (defined reap($pid, 0)) {
            fail_with_log("nginx exited at start-up\n", $log) if $o{brief};
            die "nginx exited at start:\n" . slurp($log);
        }
        sleep 0.05;
    }
    fail_with_log("nginx did not listen on port $port in ${timeout}s\n",
                  $log) if $o{brief};
    die "nginx did not listen on $port in ${timeout}s:\n" . slurp($log);
}

# write $conf to $dir/nginx.conf and start $NGINX on it, its error log
# $dir/error.log; with port: wait (timeout seconds, default 10) until it
# listens there. Options: name (default nginx), out, err (default
# $dir/nginx.stderr), wrapper (a command to run it under), brief (see
# wait_port). (pid, error log)
sub start_nginx {
    my ($dir, $conf, %o) = @_;
    spew("$dir/nginx.conf", $conf);
    my $log = "$dir/error.log";
    my $pid = spawn($o{name} // 'nginx', $o{out},
                    $o{err} // "$dir/nginx.stderr", @{ $o{wrapper} // [] },
                    $NGINX, '-p', "$dir/", '-c', "$dir/nginx.conf",
                    '-e', $log);
    wait_port($o{port}, $pid, $o{timeout} // 10, $log, brief => $o{brief})
        if $o{port};
    return ($pid, $log);
}

# the main context and events. Options: dir, modules (default [$MODULE]),
# workers (default 1), pin (the worker on CPU 0), single (master_process
# off: one process does everything), rlimit (worker_rlimit_nofile),
# log_level (default warn), connections (default 4096)
sub conf_head {
    my (%o) = @_;
    my $dir = $o{dir};
    my $load = join '', map { "load_module $_;\n" } @{ $o{modules}
                                                      // [$MODULE] };
    my $user = $> == 0 ? "user root root;\n" : '';
    my $main = "daemon off;\nworker_processes " . ($o{workers} // 1) . ";\n";
    $main .= "worker_cpu_affinity 01;\n" if $o{pin};
    $main .= "master_process off;\n" if $o{single};
    $main .= "worker_rlimit_nofile $o{rlimit};\n" if $o{rlimit};
    my $level = $o{log_level} // 'warn';
    my $conns = $o{connections} // 4096;
    return <<"END";
$load$user${main}pid $dir/nginx.pid;
error_log $dir/error.log $level;

events {
    worker_connections $conns;
}

END
}

# the start of the http block: no access log, the temp paths in $dir
sub conf_http_base {
    my ($dir) = @_;
    return <<"END";
http {
    access_log off;

    client_body_temp_path $dir/client_body_temp;
    proxy_temp_path       $dir/proxy_temp;
    fastcgi_temp_path     $dir/fastcgi_temp;
    uwsgi_temp_path       $dir/uwsgi_temp;
    scgi_temp_path        $dir/scgi_temp;

END
}

# keep-alive without end, a 64m zone and quotas that never refuse
sub conf_unlimited {
    return <<'END';
    # no connection is closed for having served "too many" requests, so
    # every request costs the same (and callgrind counts stay exact)
    keepalive_requests 1000000;

    mitte_zone mitte:64m;
    # quota high enough that it never refuses
    mitte_quota free 4000000000;
    mitte_quota pro  4000000000;

END
}

# upstream u, a keepalive upstream, and the webhook target behind it: a
# server of the same nginx on loopback port $port, answering 200 "ok\n"
sub conf_target {
    my ($port) = @_;
    return <<"END";
    upstream u {
        server 127.0.0.1:$port;
        keepalive 32;
        keepalive_requests 1000000;
    }

    # the webhook target
    server {
        listen 127.0.0.1:$port;
        location / {
            return 200 "ok\\n";
        }
    }

END
}

# in a server: /plain/<slug> proxied to u, /hooks/<slug> the same with
# mitte_endpoint $slug and mitte_user
sub conf_proxy_locations {
    return <<'END';
        proxy_http_version 1.1;
        proxy_set_header Connection "";

        # Each regex location sits in its own prefix location, so that both
        # cost one regex match: side by side at server level, the second one
        # would also pay for the failed match of the first (~600 Ir).
        location /plain/ {
            location ~ ^/plain/(?<slug>[A-Za-z0-9._-]+)$ {
                proxy_pass http://u;
            }
        }
        location /hooks/ {
            location ~ ^/hooks/(?<slug>[A-Za-z0-9._-]+)$ {
                mitte_endpoint $slug;
                mitte_user $http_x_mitte_user;
                proxy_pass http://u;
            }
        }
END
}

# in a server: the operator API for loopback clients
sub conf_admin {
    return <<'END';
        location /mitte-admin/ {
            allow 127.0.0.1;
            deny all;
            mitte_admin;
        }
END
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

# read what is there (waiting at most $timeout seconds); 0 at the end
sub fill {
    my ($c, $timeout) = @_;
    $c->{sel}->can_read($timeout) or die "no answer in ${timeout}s\n";
    my $n = sysread($c->{sock}, $c->{buf}, 65536, length $c->{buf});
    die "read: $!\n" unless defined $n;
    return $n;
}

# send a raw request, read one answer: (status, headers text, body). The
# body has a Content-Length, is chunked, or ends with the connection.
sub roundtrip {
    my ($c, $req, $timeout) = @_;
    $timeout //= 30;
    my $off = 0;
    while ($off < length $req) {
        my $n = syswrite($c->{sock}, $req, length($req) - $off, $off);
        die "write: $!\n" unless defined $n;
        $off += $n;
    }
    my $more = sub {
        fill($c, $timeout) or die "connection closed in a body\n";
    };
    my $end;
    until (($end = index($c->{buf}, "\r\n\r\n")) >= 0) {
        fill($c, $timeout) or die "connection closed before an answer\n";
    }
    my $head = substr($c->{buf}, 0, $end + 4, '');
    my ($status) = $head =~ m{^HTTP/1\.[01] (\d{3})}
        or die "bad status line: " . substr($head, 0, 80) . "\n";
    my $body = '';
    if ($status =~ /^(?:1..|204|304)$/) {
        # no body
    } elsif ($head =~ /^Content-Length:\s*(\d+)\r$/mi) {
        my $len = $1;
        $more->() while length $c->{buf} < $len;
        $body = substr($c->{buf}, 0, $len, '');
    } elsif ($head =~ /^Transfer-Encoding:\s*chunked/mi) {
        while (1) {
            $more->() until $c->{buf} =~ /^([0-9a-fA-F]+)[^\r\n]*\r\n/;
            my ($len, $hl) = (hex $1, $+[0]);
            $more->() while length $c->{buf} < $hl + $len + 2;
            $body .= substr($c->{buf}, $hl, $len);
            substr($c->{buf}, 0, $hl + $len + 2, '');
            last if $len == 0;
        }
    } else {
        1 while fill($c, $timeout);
        $body = $c->{buf};
        $c->{buf} = '';
    }
    return ($status, $head, $body);
}

# a request: the headers of %$headers in name order, a Content-Length
sub request {
    my ($method, $path, $headers, $body) = @_;
    $body //= '';
    $headers //= {};
    my $h = join '', map { "$_: $headers->{$_}\r\n" } sort keys %$headers;
    return "$method $path HTTP/1.1\r\nHost: 127.0.0.1\r\n$h"
        . "Content-Length: " . length($body) . "\r\n\r\n$body";
}

# GET $path on a connection of its own; the body of the 200 answer
sub get {
    my ($port, $path) = @_;
    my $c = client($port);
    my ($st, undef, $body) = roundtrip($c, request('GET', $path,
                                                   { Connection => 'close' }));
    die "GET $path: $st\n$body\n" unless $st == 200;
    return $body;
}

# GET /mitte-admin/metrics on a connection of its own ($to a port) or on
# the client $to; { name{labels} => value }
sub metrics {
    my ($to) = @_;
    my $path = '/mitte-admin/metrics';
    my $text;
    if (ref $to) {
        my ($st, undef, $body) = roundtrip($to, request(GET => $path));
        die "GET $path: $st\n$body\n" unless $st == 200;
        $text = $body;
    } else {
        $text = get($to, $path);
    }
    my %m;
    for (split /\n/, $text) {
        next if /^#/;
        $m{$1} = $2 if /^(\S+)\s+(\S+)$/;
    }
    return \%m;
}

# ---------------------------------------------------------------------------
# wrk with bench/webhooks.lua (1,000 endpoints, 50 users): -t1, the
# connections and the pinning (wrk on CPU 1) set by wrk_setup

my %WRK = (connections => 32, pin => 0, lua => "$ROOT/bench/webhooks.lua");

# connections => N, pin => 0/1 (wrk on CPU 1, if taskset can: else not,
# with a warning when warn => 1); whether wrk is pinned
sub wrk_setup {
    my (%o) = @_;
    if ($o{pin} && !pin_works(1)) {
        warn "taskset -c 1 does not work here: not pinning\n" if $o{warn};
        $o{pin} = 0;
    }
    $WRK{$_} = $o{$_} for qw(connections pin);
    return $WRK{pin};
}

# one run of $seconds against /$prefix/ (plain or hooks); its BENCH line
# ({requests, duration_us, p50_us, p99_us, ...}) and rps. It dies on any
# error wrk counted.
sub wrk_run {
    my ($dir, $port, $prefix, $seconds, $tag) = @_;
    my @cmd = ('wrk', '-t1', "-c$WRK{connections}", "-d${seconds}s",
               '-s', $WRK{lua}, "http://127.0.0.1:$port", '--', $prefix);
    unshift @cmd, 'taskset', '-c', '1' if $WRK{pin};
    return wrk_command($dir, $seconds, $tag, @cmd);
}

# wrk as @cmd for $seconds (its script prints one BENCH line, as
# bench/*.lua's done() do), output in $dir/wrk.$tag.*: that line as
# {requests, duration_us, p50_us, p99_us, ...} and rps. It dies when wrk
# fails or counted any error.
sub wrk_command {
    my ($dir, $seconds, $tag, @cmd) = @_;
    my $out = "$dir/wrk.$tag.out";
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

# warm-up: 1 s plain, then $hooks seconds recorded (it creates the 1,000
# endpoints); the recorded run. Tags "[$name-]warmup-plain/hooks".
sub wrk_warmup {
    my ($dir, $port, $name, $hooks) = @_;
    my $t = defined $name ? "$name-" : '';
    wrk_run($dir, $port, 'plain', 1, "${t}warmup-plain");
    return wrk_run($dir, $port, 'hooks', $hooks, "${t}warmup-hooks");
}

# pairs => N plain/recorded pairs of seconds => S each, run back to back,
# each printed (after indent, default 2 spaces); each => sub ($kind, $run)
# sees every run; tags "[$name-]plain-<i>", "[$name-]hooks-<i>".
# { ratio (of the medians), plain, rec (the median rps), pairs (the ratio of
# each pair), plain_runs, rec_runs (the rps of each run) }
sub wrk_pairs {
    my ($dir, $port, %o) = @_;
    my $t = defined $o{name} ? "$o{name}-" : '';
    my $indent = $o{indent} // '  ';
    my (@plain, @rec);
    for my $i (1 .. $o{pairs}) {
        for my $kind (qw(plain hooks)) {
            my $r = wrk_run($dir, $port, $kind, $o{seconds}, "$t$kind-$i");
            $o{each}->($kind, $r) if $o{each};
            printf "%srun %d %-8s %9.0f rps   p50 %5.0f us   p99 %5.0f us\n",
                $indent, $i, $kind eq 'plain' ? 'plain' : 'recorded',
                $r->{rps}, $r->{p50_us}, $r->{p99_us};
            push @{ $kind eq 'plain' ? \@plain : \@rec }, $r->{rps};
        }
    }
    my ($mp, $mr) = (median(@plain), median(@rec));
    return { ratio => $mr / $mp, plain => $mp, rec => $mr,
             pairs => [map { $rec[$_] / $plain[$_] } 0 .. $#plain],
             plain_runs => \@plain, rec_runs => \@rec };
}

# "ratio per pair: ...[ (median ...)]; plain ..-.. rps, recorded ..-.. rps":
# each pair ran back to back, so their ratios say how much of the spread is
# the machine's load drifting rather than the module
sub ratio_line {
    my ($s, $with_median) = @_;
    my @p = sort { $a <=> $b } @{ $s->{plain_runs} };
    my @r = sort { $a <=> $b } @{ $s->{rec_runs} };
    return sprintf "ratio per pair: %s%s; plain %.0f-%.0f rps, recorded "
        . "%.0f-%.0f rps",
        join(' ', map { sprintf '%.3f', $_ } @{ $s->{pairs} }),
        $with_median ? sprintf(' (median %.3f)', median(@{ $s->{pairs} }))
                     : '',
        $p[0], $p[-1], $r[0], $r[-1];
}

1;
