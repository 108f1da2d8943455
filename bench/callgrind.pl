#!/usr/bin/perl

# bench/callgrind.pl: what recording costs a proxied request, in
# instructions, deterministically.
#
#   MITTE_MODULE=build/ngx_http_mitte_module.so perl bench/callgrind.pl
#
# One nginx in one process (master_process off) under valgrind
# --tool=callgrind, with a keepalive upstream in the same nginx (return 200)
# and two servers on two ports, each with the same single location
#
#   location ~ ^/hooks/(?<slug>[a-z0-9_]+)$ { proxy_pass http://u; }
#
# the second adding "mitte_endpoint $slug; mitte_user $http_x_mitte_user;".
# Same regex, same order: the only difference is the module. (Both
# locations in one server would charge the second one the first one's
# failed regex match.) "mitte_quota free 1000000000": no request meets the
# quota.
#
# Three runs of the same configuration: N POSTs with a 2-byte body on one
# keep-alive connection to the plain port, the same to the recorded port
# (slugs ep0 .. ep999 round robin, X-Mitte-User alternating between two
# users), and none; (Ir(N) - Ir(0)) / N is the cost of a request of each,
# and their difference what the module costs. Each run ends with the same
# GET /mitte-admin/metrics on a third port, which must show N deliveries
# recorded in the recorded run and none in the plain one.
#
# Then the exclusive instructions per request of each function
# (callgrind_annotate of the recorded run minus the plain run, over N):
# where the module's cost goes.
#
# Variants (BENCH_CG_VARIANTS, comma-separated, default "plain"):
#   plain        as above
#   subscribers  1,000 idle event-stream subscribers connected before the
#                requests (a user none of the deliveries belongs to), in
#                every run of the variant
#   recent       a stream of each of the two users opened and closed
#                before the requests: within 15 minutes of that, every
#                delivery's event is written to the replay ring (and its
#                request id made), as for users with a dashboard open,
#                without the fan-out to a stream
#   state        mitte_state_file on (interval=1h: no write while the
#                requests run; the write at exit, which grows with the
#                records and not with the requests, is left out of every
#                run's count: ngx_http_mitte_state_exit_master() inclusive)
#
# Environment:
#   MITTE_MODULE        the module (default build/ngx_http_mitte_module.so)
#   NGINX               the nginx binary (default /usr/sbin/nginx)
#   BENCH_CG_N          requests per measured run (default 10000)
#   BENCH_CG_VARIANTS   see above
#   BENCH_CG_SPLIT      functions listed in the split (default 30; 0: none)
#   BENCH_KEEP          1 keeps the temp dir (configs, callgrind.out.*)
#
# Exit status: 0 when every run worked and recorded what it should.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use MitteBench;
use IO::Select;
use IO::Socket::INET;
use Time::HiRes qw(time);

my $N = $ENV{BENCH_CG_N} // 10000;
my @VARIANTS = split /,/, ($ENV{BENCH_CG_VARIANTS} // 'plain');
my $SPLIT = $ENV{BENCH_CG_SPLIT} // 30;

my $ENDPOINTS = 1000;
my @USERS = qw(alice bob);
my $IDLE = 1000;            # idle subscribers of the "subscribers" variant
my $TIME_LIMIT = 3600;
my $EXIT_WRITE = 'ngx_http_mitte_state_exit_master';

init(time_limit => $TIME_LIMIT);

sub request_text {
    my ($i, $port) = @_;
    my $e = $i % $ENDPOINTS;
    return "POST /hooks/ep$e HTTP/1.1\r\n"
        . "Host: 127.0.0.1:$port\r\n"
        . "Content-Type: application/json\r\n"
        . "Content-Length: 2\r\n"
        . "X-Mitte-User: $USERS[$i % @USERS]\r\n"
        . "\r\n{}";
}

# ---------------------------------------------------------------------------
# nginx configuration

sub location {
    my ($mitte) = @_;
    my $m = $mitte ? "                mitte_endpoint \$slug;\n"
                     . "                mitte_user \$http_x_mitte_user;\n"
                   : '';
    return <<"END";
            location ~ ^/hooks/(?<slug>[a-z0-9_]+)\$ {
$m                proxy_pass http://u;
            }
END
}

sub nginx_conf {
    my (%o) = @_;
    my $dir = $o{dir};
    my $state = $o{variant} eq 'state'
        ? "    mitte_state_file $dir/mitte.state interval=1h;\n" : '';
    return conf_head(dir => $dir, single => 1, connections => 4096,
                     rlimit => 8192)
        . conf_http_base($dir) . <<"END" . conf_target($o{upstream}) . <<"END";
    keepalive_requests 1000000;

    mitte_zone mitte:64m;
    mitte_quota free 1000000000;
    # no heartbeat while the requests run: every run sends the same
    mitte_sse_heartbeat 1h;
$state
END
    server {
        listen 127.0.0.1:$o{plain};

        proxy_http_version 1.1;
        proxy_set_header Connection "";

@{[ location(0) ]}    }

    server {
        listen 127.0.0.1:$o{rec};

        proxy_http_version 1.1;
        proxy_set_header Connection "";

@{[ location(1) ]}    }

    server {
        listen 127.0.0.1:$o{admin};

        location /mitte-admin/ {
            mitte_admin;
        }

        location = /events {
            mitte_user \$http_x_mitte_user;
            mitte_sse;
        }
    }
}
END
}

# ---------------------------------------------------------------------------

# $n idle subscribers of the user $user (default "idle"); the sockets
sub subscribe {
    my ($port, $n, $user) = @_;
    $user //= 'idle';
    my @s;
    for my $i (1 .. $n) {
        my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                      PeerPort => $port, Proto => 'tcp')
            or die "subscriber $i: connect: $!\n";
        print {$s} "GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            . "X-Mitte-User: $user\r\n\r\n";
        push @s, $s;
    }
    # every one has its answer's head
    for my $s (@s) {
        my $head = '';
        my $sel = IO::Select->new($s);
        while (index($head, "\r\n\r\n") < 0) {
            $sel->can_read(60) or die "subscriber: no answer in 60s\n";
            sysread($s, $head, 4096, length $head) or die "subscriber: EOF\n";
        }
        $head =~ m{^HTTP/1\.1 200 } or die "subscriber: $head\n";
    }
    return \@s;
}

# one nginx under callgrind: $n requests to $which (plain, rec or none);
# the callgrind output file
sub run {
    my ($dir, $variant, $which, $n) = @_;
    my $tag = "$variant-$which-$n";
    my $sub = "$dir/$tag";
    mkdir $sub or die "$sub: $!\n";
    my ($plain, $rec, $admin, $up) = free_ports(4);
    my $out = "$dir/callgrind.out.$tag";
    my ($pid, $log) = start_nginx($sub,
        nginx_conf(dir => $sub, variant => $variant, plain => $plain,
                   rec => $rec, admin => $admin, upstream => $up),
        name => "valgrind $tag", out => "$sub/valgrind.out",
        err => "$sub/valgrind.err", port => $admin, timeout => 120,
        wrapper => ['valgrind', '--tool=callgrind', '--quiet',
                    '--dump-instr=no', "--callgrind-out-file=$out"]);

    my $ok = eval {
        my $subs = $variant eq 'subscribers' ? subscribe($admin, $IDLE) : [];
        if ($variant eq 'recent') {
            for my $u (@USERS) {
                close $_ for @{ subscribe($admin, 1, $u) };
            }
        }
        my $port = $which eq 'rec' ? $rec : $plain;
        if ($n) {
            my $c = client($port);
            for my $i (0 .. $n - 1) {
                my ($st) = roundtrip($c, request_text($i, $port), 60);
                die "$tag: request $i: status $st\n" unless $st == 200;
            }
            close $c->{sock};
        }
        my $m = metrics($admin);
        my $got = $m->{'mitte_deliveries_total{result="success"}'} // 0;
        my $want = $which eq 'rec' ? $n : 0;
        die "$tag: $got deliveries recorded, not $want\n" unless $got == $want;
        if (@$subs) {
            my $open = $m->{mitte_sse_subscribers} // -1;
            die "$tag: $open subscribers, not $IDLE\n" unless $open == $IDLE;
        }
        close $_ for @$subs;
        1;
    };
    fail_with_log($@, $log) unless $ok;

    my $st = stop($pid, 'QUIT');
    die "$tag: valgrind did not stop\n" unless defined $st;
    die "$tag: valgrind exited with $st:\n" . slurp("$sub/valgrind.err")
        if $st != 0;
    fail_with_log("nginx reported problems\n", $log) if log_problems($log);
    return $out;
}

# the Ir of a run, less the state file's write at exit (inclusive): a
# one-off cost that grows with the records, not with the requests
sub total {
    my ($file) = @_;
    my $text = slurp($file);
    my $ir;
    if ($text =~ /^summary:\s+(\d+)/m || $text =~ /^totals:\s+(\d+)/m) {
        $ir = $1;
    } else {
        die "$file: no summary line\n";
    }
    open my $fh, '-|', 'callgrind_annotate', '--auto=no', '--threshold=100',
        '--inclusive=yes', $file or die "callgrind_annotate: $!\n";
    my $done;
    while (<$fh>) {
        next if $done;
        next unless /^\s*([\d,]+)\s+\([^)]*\)\s+\S*:$EXIT_WRITE\b/o;
        (my $w = $1) =~ tr/,//d;
        $ir -= $w;
        $done = 1;
    }
    close $fh;
    return $ir;
}

# { function => exclusive Ir } of a callgrind output
sub per_function {
    my ($file) = @_;
    my %f;
    open my $fh, '-|', 'callgrind_annotate', '--auto=no', '--threshold=100',
        '--inclusive=no', $file or die "callgrind_annotate: $!\n";
    while (<$fh>) {
        next unless /^\s*([\d,]+)\s+\([^)]*\)\s+(\S.*)$/;
        my ($ir, $name) = ($1, $2);
        next if $name eq 'PROGRAM TOTALS';
        $ir =~ tr/,//d;
        $name =~ s/\s*\[[^\]]*\]\s*$//;        # [object]
        $name =~ s/^.*://;                     # file:function -> function
        $f{$name} += $ir;
    }
    close $fh;
    return \%f;
}

sub variant {
    my ($dir, $variant) = @_;
    my $t0 = time;
    my %out = map { $_ => run($dir, $variant, $_, $_ eq 'none' ? 0 : $N) }
        qw(none plain rec);
    my $base = total($out{none});
    my $p = (total($out{plain}) - $base) / $N;
    my $r = (total($out{rec}) - $base) / $N;
    printf "%s: plain %.0f, recorded %.0f instructions a request: %+.0f, "
        . "ratio %.4f (%.0fs)\n", $variant, $p, $r, $r - $p, $p / $r,
        time - $t0;

    if ($SPLIT) {
        my ($fp, $fr) = (per_function($out{plain}), per_function($out{rec}));
        my %d;
        $d{$_} = (($fr->{$_} // 0) - ($fp->{$_} // 0)) / $N
            for keys %$fp, keys %$fr;
        my @top = (sort { abs($d{$b}) <=> abs($d{$a}) } keys %d)
            [0 .. $SPLIT - 1];
        print "  exclusive instructions a request, recorded minus plain:\n";
        printf "  %8.1f  %s\n", $d{$_}, $_ for grep { defined } @top;
    }
    return sprintf "callgrind %s: plain %.0f, recorded %.0f: %+.0f "
        . "(ratio %.4f)", $variant, $p, $r, $r - $p, $p / $r;
}

check_nginx_module();
system('valgrind --version >/dev/null 2>&1') == 0
    or bail('valgrind is missing (apt-get install valgrind)');

my $dir = workdir('mitte-callgrind-XXXXXX');
my $t0 = time;

printf "callgrind: %d requests a run, one keep-alive connection; "
    . "variants: %s\n", $N, join(', ', @VARIANTS);

my @summary = guarded($dir, sub { map { variant($dir, $_) } @VARIANTS });

print_summary($t0, @summary);
exit 0;
