#!/usr/bin/perl

# bench/sends.pl: how fast the sender delivers outbound webhooks.
#
#   MITTE_MODULE=build/ngx_http_mitte_module.so perl bench/sends.pl
#
# One nginx (2 workers; worker 0 sends), mitte_endpoint_down threshold=1,
# one user whose preferences route every notification to a signed json
# webhook on a loopback receiver (t/lib/Mitte/Receiver.pm: a Perl select()
# loop that answers 200 at once and records each request). BENCH_N failed
# deliveries to BENCH_N distinct endpoints, sent by BENCH_CLIENTS clients at
# once (a connection per request), raise BENCH_N ENDPOINT_DOWN
# notifications; the figure is the webhooks' arrival rate: (N - 1) / (last
# arrival - first arrival). The time to raise them is printed too: when it
# is close to the last arrival, raising, not sending, set the pace.
# Every webhook-id must arrive exactly once and the outbox must show N sent.
#
# Environment:
#   MITTE_MODULE    the module (default build/ngx_http_mitte_module.so)
#   MITTE_NGINX     the nginx binary, or NGINX (/usr/sbin/nginx)
#   BENCH_N         notifications (default 1000)
#   BENCH_CLIENTS   parallel clients raising them (default 8)
#   BENCH_KEEP      1 keeps the temp dirs
#
# Exit status: 0 when every webhook arrived exactly once; 1 otherwise.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib", "$FindBin::Bin/../t/lib";
use MitteBench;
use HTTP::Tiny;
use JSON::PP;
use Mitte::Receiver;
use POSIX qw(_exit);
use Time::HiRes qw(time sleep);

init();

# an empty variable means the default here
$MODULE = $ENV{MITTE_MODULE} || "$ROOT/build/ngx_http_mitte_module.so";
$NGINX = $ENV{MITTE_NGINX} || $ENV{NGINX} || '/usr/sbin/nginx';
my $N = $ENV{BENCH_N} || 1000;
my $CLIENTS = $ENV{BENCH_CLIENTS} || 8;

-f $MODULE or die "module not built: $MODULE (run make)\n";
-x $NGINX or die "nginx not found: $NGINX\n";

my $rx = Mitte::Receiver->new;
my $dir = workdir('mitte-bench-sends-XXXXXX');
my ($port, $up) = free_ports(2);

# 2 workers: worker 0 sends
my $conf = conf_head(dir => $dir, workers => 2, log_level => 'notice')
    . conf_http_base($dir) . <<"END" . conf_admin() . "    }\n}\n";
    mitte_zone m:64m;
    mitte_endpoint_down threshold=1;
    mitte_webhook_allow 127.0.0.1;
    mitte_quota free 1000000;

    upstream targets { server 127.0.0.1:$up; keepalive 32; }

    server {
        listen 127.0.0.1:$up;
        location / { return 503; }
    }
    server {
        listen 127.0.0.1:$port;
        location ~ ^/hooks/(?<slug>[^/]+)\$ {
            mitte_endpoint \$slug;
            mitte_user \$http_x_mitte_user;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_pass http://targets;
        }
        location = /mitte/preferences {
            mitte_user \$http_x_mitte_user;
            mitte_preferences;
        }
END
my ($nginx) = start_nginx($dir, $conf, out => "$dir/stderr.log",
                          err => "$dir/stderr.log");
END { stop($nginx, 'QUIT') if $nginx }

my $ua = HTTP::Tiny->new(keep_alive => 0, timeout => 30);
my $ready = 0;
for (1 .. 200) {
    my $r = $ua->get("http://127.0.0.1:$port/mitte-admin/metrics");
    if ($r->{status} == 200) { $ready = 1; last }
    sleep 0.05;
}
my $failed = 0;
die "nginx did not start:\n" . slurp("$dir/error.log")
    . slurp("$dir/stderr.log") unless $ready;

my $r = $ua->request('PUT', "http://127.0.0.1:$port/mitte/preferences", {
    headers => { 'X-Mitte-User' => 'bench',
                 'Content-Type' => 'application/json' },
    content => encode_json({ webhook => {
        enabled => JSON::PP::true, url => $rx->url('/bench'), format => 'json',
        secret => 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw' } }),
});
die "preferences: $r->{status} $r->{content}\n" unless $r->{status} == 200;

# raise N notifications from CLIENTS clients
my $t0 = time();
my @kids;
for my $c (0 .. $CLIENTS - 1) {
    my $pid = fork;
    die "fork: $!" unless defined $pid;
    if ($pid == 0) {
        # keep_alive 0: HTTP::Tiny writes a POST in two segments, and on a kept
        # connection Nagle and delayed ACKs cost 40 ms each
        my $cua = HTTP::Tiny->new(keep_alive => 0, timeout => 30);
        my $bad = 0;
        for (my $i = $c; $i < $N; $i += $CLIENTS) {
            my $rr = $cua->post("http://127.0.0.1:$port/hooks/ep-$i",
                                { headers => { 'X-Mitte-User' => 'bench' },
                                  content => '{"event":"bench"}' });
            $bad++ unless $rr->{status} == 503;
        }
        _exit($bad ? 1 : 0);
    }
    push @kids, $pid;
}
for (@kids) {
    waitpid $_, 0;
    $failed ||= $? != 0;
}
my $raised = time() - $t0;
print "raised $N notifications in " . sprintf('%.3f', $raised) . "s"
    . ($failed ? ' (some deliveries did not answer 503!)' : '') . "\n";

my @q = $rx->wait_requests($N, 60);
my $done = time() - $t0;

my %ids;
$ids{ $_->{headers}{'webhook-id'} // '' }++ for @q;
my $dups = grep { $_ > 1 } values %ids;
my ($first, $last) = ($q[0]{t}, $q[-1]{t});
my $rate = @q > 1 && $last > $first ? (@q - 1) / ($last - $first) : 0;

my $m = $ua->get("http://127.0.0.1:$port/mitte-admin/metrics")->{content};
my ($sent) = $m =~ /^mitte_channel_sends_total\{channel="webhook",result="sent"\} (\d+)/m;

printf "arrived: %d webhooks (%d distinct ids, %d duplicated), outbox sent %s\n",
    scalar @q, scalar keys %ids, $dups, $sent // '?';
printf "first arrival %.3fs, last %.3fs after the first request\n",
    $first - $t0, $last - $t0;
printf "sends per second (first to last arrival): %.0f\n", $rate;

my $ok = !$failed && @q == $N && keys %ids == $N && !$dups
         && ($sent // 0) == $N;
print $ok ? "OK\n" : "FAILED\n";
$rx->stop;
exit($ok ? 0 : 1);
