#!/usr/bin/perl

# mitte_redis with a host name and the http block's "resolver": a DNS
# server of the test's own (UDP on loopback) answers the name with an
# address the test changes; Redis A listens on 127.0.0.1, Redis B on
# 127.0.0.2, on the same port. The first connection goes to the address
# found when the configuration was read, without a query; A stopped and
# the name moved to B, every connection of every worker (worker 0's
# reading one included) resolves the name again and comes back on B. The
# DNS server silent: the resolution times out, is logged once a worker,
# and the connections come back on the last address known. A name the
# system cannot resolve is resolved by the workers from the start; a quit
# while such a resolution waits ends promptly. nginx -t: a name without
# "resolver" is noted (failover by DNS needs a reload), an unknown one is
# an error unless "resolver" is set.

use strict;
use warnings;

use Test::More;
use File::Temp qw(tempdir);
use IO::Select;
use IO::Socket::INET;
use POSIX ();
use Time::HiRes qw(sleep time);
use Mitte::Test qw(:all);
use Mitte::Redis;

require_module();

plan skip_all => Mitte::Redis->missing if Mitte::Redis->missing;

{
    my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.2', LocalPort => 0,
                                  Proto => 'udp');
    plan skip_all => 'cannot bind 127.0.0.2 (loopback is not 127.0.0.0/8)'
        unless $s;
}

my $ALLOW = [qr/mitte: redis "/];

my $ra = Mitte::Redis->new;
$ra->start;
my $rb = Mitte::Redis->new(host => '127.0.0.2', port => $ra->port);
$rb->start;
my $PORT = $ra->port;


# ---- the DNS server: A records for two names, from a file ---------------

my $DNS = tempdir('mitte-dns-XXXXXX', TMPDIR => 1,
                  CLEANUP => $ENV{MITTE_KEEP} ? 0 : 1);
my %NAMES = ('redis.test' => 1, 'localhost' => 1);

sub slurp {
    my ($f) = @_;
    open my $fh, '<', $f or return '';
    my $text = do { local $/; <$fh> } // '';
    close $fh;
    return $text;
}

# "127.0.0.2": the address the names resolve to; "silent": no answers
sub dns_answer {
    my ($text) = @_;
    open my $fh, '>', "$DNS/answer.new" or die "$DNS: $!";
    print {$fh} $text;
    close $fh;
    rename "$DNS/answer.new", "$DNS/answer" or die "rename: $!";
    return;
}

# the queries so far, "name type" each
sub dns_queries {
    return grep { length } split /\n/, slurp("$DNS/queries");
}

# a reply to a query, or undef (no answer); names other than ours:
# NXDOMAIN; AAAA and others of ours: no records
sub dns_reply {
    my ($q) = @_;
    my ($id, $flags, $qd) = unpack 'n n n', $q;
    return undef if $flags & 0x8000 || $qd != 1;

    my ($pos, @labels) = (12);
    while (1) {
        return undef if $pos >= length $q;
        my $len = ord substr($q, $pos++, 1);
        last if $len == 0;
        return undef if $len > 63 || $pos + $len > length $q;
        push @labels, substr($q, $pos, $len);
        $pos += $len;
    }
    return undef if $pos + 4 > length $q;

    my ($type) = unpack 'n', substr($q, $pos, 2);
    my $question = substr($q, 12, $pos + 4 - 12);
    my $name = lc join '.', @labels;

    if (open my $fh, '>>', "$DNS/queries") {
        print {$fh} "$name $type\n";
        close $fh;
    }

    my $answer = slurp("$DNS/answer");
    return undef if $answer !~ /^(\d+)\.(\d+)\.(\d+)\.(\d+)$/;

    my ($rcode, @an) = (0);
    if (!$NAMES{$name}) {
        $rcode = 3;
    } elsif ($type == 1) {
        push @an, pack('n n n N n C4', 0xc00c, 1, 1, 1, 4, $1, $2, $3, $4);
    }

    return pack('n6', $id, 0x8180 | $rcode, 1, scalar @an, 0, 0)
        . $question . join('', @an);
}

my $DNS_PID;

sub dns_start {
    my $sock = IO::Socket::INET->new(LocalAddr => '127.0.0.1',
                                     LocalPort => 0, Proto => 'udp')
        or die "cannot bind a UDP port: $!";
    my $parent = $$;

    my $pid = fork;
    die "fork: $!" unless defined $pid;

    if ($pid == 0) {
        my $sel = IO::Select->new($sock);
        while (getppid() == $parent) {
            next unless $sel->can_read(0.5);
            my $peer = $sock->recv(my $q, 512);
            next unless defined $peer && length $q >= 17;
            my $reply = dns_reply($q);
            $sock->send($reply, 0, $peer) if defined $reply;
        }
        POSIX::_exit(0);
    }

    $DNS_PID = $pid;
    return $sock->sockport;
}

END {
    local $?;
    if ($DNS_PID) {
        kill 'KILL', $DNS_PID;
        waitpid($DNS_PID, 0);
    }
}

dns_answer('127.0.0.1');
my $DNS_PORT = dns_start();


# ---- helpers --------------------------------------------------------------



sub all_up {
    my ($t) = @_;
    return $t->metric('mitte_redis_up', -1) == 1
        && $t->metric('mitte_redis_reader_up', -1) == 1;
}


# every worker's connection, and one reading connection of a worker, on $r
sub on_redis {
    my ($t, $r) = @_;
    my @workers = $t->worker_pids;
    my $c = $r->mitte_clients;
    my @readers = grep { /^mitte-reader:/ } keys %$c;
    return @workers
        && @readers == 1
        && (grep { $readers[0] eq "mitte-reader:$_" } @workers)
        && !(grep { !$c->{"mitte:$_"} } @workers);
}

sub conf {
    my ($host, $timeout) = @_;
    return <<"END";
    resolver 127.0.0.1:$DNS_PORT valid=1s;
    resolver_timeout $timeout;
    mitte_zone m:1m;
    mitte_redis $host:$PORT;
    server {
        listen 127.0.0.1:%%PORT%%;
        location /mitte-admin/ { mitte_admin; }
    }
END
}

# the error lines about a failed resolution, by worker pid
sub unresolved_by_worker {
    my ($t) = @_;
    my %n;
    for my $l ($t->log_lines('error', qr/cannot resolve "/)) {
        $n{$1}++ if $l =~ /\[error\] (\d+)#/;
    }
    return \%n;
}


# ---- nginx -t ---------------------------------------------------------------

{
    my $plain = "    mitte_zone m:1m;\n    mitte_redis %s:$PORT;\n";

    my ($rc, $out) = nginx_t(sprintf $plain, 'localhost');
    is($rc, 0, 'nginx -t: a name without resolver is accepted');
    like($out, qr/\[notice\].*"mitte_redis" "localhost:$PORT" names a host, resolved once, to 127\.0\.0\.1: without "resolver" in the http block, a change of its address \(a failover by DNS\) needs a reload/,
         'nginx -t: ... noted: failover by DNS needs a reload');

    ($rc, $out) = nginx_t(sprintf $plain, '127.0.0.1');
    is($rc, 0, 'nginx -t: an address');
    unlike($out, qr/names a host/, 'nginx -t: an address is not noted');

    ($rc, $out) = nginx_t(sprintf $plain, 'redis.test');
    isnt($rc, 0, 'nginx -t: a name not found, without resolver: refused');
    like($out, qr/\[emerg\].*host not found in "mitte_redis" "redis\.test:$PORT" \(set "resolver"/,
         'nginx -t: ... saying so');

    ($rc, $out) = nginx_t(conf('redis.test', '1s'));
    is($rc, 0, 'nginx -t: a name not found, with resolver: accepted');
    like($out, qr/\[warn\].*host not found in "mitte_redis" "redis\.test:$PORT" now: the workers resolve it with "resolver"/,
         'nginx -t: ... with a warning');
    unlike($out, qr/names a host/, 'nginx -t: with resolver: no notice');

    is(scalar(dns_queries()), 0, 'nginx -t asks the DNS server nothing');
}


# ---- a failover by DNS: A stopped, the name moved to B --------------------

my $t = Mitte::Test->new(http => conf('localhost', '2s'), workers => 2,
                         allow => $ALLOW);
$t->start;

ok(wait_until(sub { all_up($t) }), 'started: connected');
ok(wait_until(sub { on_redis($t, $ra) }),
   'started: every connection on A (the address read at start)');
is(scalar(dns_queries()), 0, 'the first connections resolve nothing');

dns_answer('127.0.0.2');
$ra->stop;

ok(wait_until(sub { all_up($t) && on_redis($t, $rb) }, 40),
   'A stopped, the name on B: every connection back, on B')
    or diag(explain($rb->mitte_clients), join("\n", $t->error_log_lines));
ok(scalar(grep { /^localhost 1$/ } dns_queries()),
   'the name was resolved again (A queries)');
ok(scalar($t->log_lines('notice',
          qr/"localhost" resolves to 127\.0\.0\.2 now \(127\.0\.0\.1 before\)/)),
   'the new address is logged');
ok(scalar($t->log_lines('notice',
          qr/connected again \(reading connection; attempt/)),
   'the reading connection came back too');
is_deeply($ra->mitte_clients, {}, 'nothing of ours on A') if $ra->pid;


# ---- the DNS server silent: the last address known ----------------------

{
    dns_answer('silent');
    sleep 3;            # the cache ends (valid=1s, in whole seconds)
    my $before = scalar dns_queries();
    my %old = map { $_->{id} => 1 } map { @$_ } values %{ $rb->mitte_clients };

    is($rb->cli('CLIENT', 'KILL', 'TYPE', 'normal') > 0, 1,
       'DNS silent: the connections killed on B');

    my $back = wait_until(sub {
        return 0 unless all_up($t) && on_redis($t, $rb);
        return !(grep { $old{ $_->{id} } } map { @$_ }
                 values %{ $rb->mitte_clients });
    }, 40);
    ok($back, 'DNS silent: every connection back on the last address (B)');
    ok(scalar(dns_queries()) > $before, 'DNS silent: it was asked');

    my $n = unresolved_by_worker($t);
    ok(scalar(keys %$n) >= 1, 'the failed resolution is logged');
    ok(!(grep { $_ > 1 } values %$n), 'once per worker')
        or diag(explain($n));
    ok(scalar($t->log_lines('error',
              qr/cannot resolve "localhost": Operation timed out; connecting to the last address known, 127\.0\.0\.2/)),
       'the line names the timeout and the address used');

    # again within the minute: no more lines
    %old = map { $_->{id} => 1 } map { @$_ } values %{ $rb->mitte_clients };
    $rb->cli('CLIENT', 'KILL', 'TYPE', 'normal');
    ok(wait_until(sub {
        all_up($t) && on_redis($t, $rb)
            && !(grep { $old{ $_->{id} } } map { @$_ }
                 values %{ $rb->mitte_clients });
    }, 40), 'killed again: back again');
    my $n2 = unresolved_by_worker($t);
    ok(!(grep { $_ > 1 } values %$n2), 'still one line per worker')
        or diag(explain($n2));
}

$t->stop;


# ---- a name the system cannot resolve; a quit while it resolves ----------

{
    dns_answer('127.0.0.2');
    sleep 3;
    my $before = scalar grep { /^redis\.test 1$/ } dns_queries();

    my $t2 = Mitte::Test->new(http => conf('redis.test', '30s'),
                              workers => 2, allow => $ALLOW);
    $t2->start;

    ok(wait_until(sub { all_up($t2) && on_redis($t2, $rb) }, 40),
       'redis.test: the workers resolve it and connect to B');
    ok(scalar(grep { /^redis\.test 1$/ } dns_queries()) > $before,
       'redis.test: asked through the resolver');

    dns_answer('silent');
    sleep 3;
    my $asked = scalar dns_queries();
    $rb->cli('CLIENT', 'KILL', 'TYPE', 'normal');

    ok(wait_until(sub { scalar(dns_queries()) > $asked }, 20),
       'DNS silent: the reconnection resolves the name')
        or diag(join "\n", $t2->error_log_lines);
    is($t2->metric('mitte_redis_up', -1), 0,
       'DNS silent: ... and waits (resolver_timeout 30s), down');
    sleep 0.5;

    my $start = time();
    is($t2->quit, 0, 'a quit during the resolution: clean');
    my $took = time() - $start;
    ok($took < 5, sprintf 'a quit during the resolution took %.2f s', $took);
    $t2->check_error_log;
}

done_testing();
