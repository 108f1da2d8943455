#!/usr/bin/perl

# Cluster mode's preferences and users: two nginx instances (2 workers
# each) on one Redis. A PUT on A is read by a GET on B at once, 50 times
# over with different values; PATCHes on A and B alternately all stay;
# the webhook secret is write-only on B too; the operator API's users
# (plan, trial end, email, the month's quota use) are shared; the keys
# carry the prefix and a TTL, and the changes go to the event stream
# ("p", "m"); a value in Redis the module did not write gives the zone's
# document and a log line; Redis stopped: every answer is 200 from the
# zone, logged at most once a minute per worker; Redis back (empty): the
# preferences saved meanwhile are written to it, and it all works again.

use strict;
use warnings;

use Test::More;
use Time::HiRes qw(sleep time);
use Time::Local qw(timelocal);
use IO::Socket::INET;
use Mitte::Test qw(:all);
use Mitte::Redis;

require_module();

plan skip_all => Mitte::Redis->missing if Mitte::Redis->missing;

my $ALLOW = [qr/mitte: redis "/, qr/mitte: cluster: /];
my $DB = 4;

my $redis = Mitte::Redis->new;
$redis->start;

my $conf = '    mitte_zone m:4m;
    mitte_redis ' . $redis->addr . " db=$DB prefix=cp:;" . '
    server {
        listen 127.0.0.1:%%PORT%%;
        location = /mitte/preferences {
            mitte_user $http_x_mitte_user;
            mitte_preferences;
        }
        location /mitte-admin/ { mitte_admin; }
    }
';

my $ia = Mitte::Test->new(http => $conf, workers => 2, allow => $ALLOW);
my $ib = Mitte::Test->new(http => $conf, workers => 2, allow => $ALLOW);
$ia->start;
$ib->start;

sub wait_up {
    my ($t, $name, $want) = @_;
    my $deadline = time() + 40;
    my $m = {};
    while (time() < $deadline) {
        (undef, $m) = $t->metrics;
        return 1 if ($m->{mitte_redis_workers_up} // -1) == $want;
        sleep 0.1;
    }
    fail("$name: $want workers up (saw "
         . ($m->{mitte_redis_workers_up} // 'none') . ')');
    return 0;
}

wait_up($ia, 'A', 2);
wait_up($ib, 'B', 2);

# a preferences request as $user: (status, decoded document or undef)
sub prefs {
    my ($t, $method, $user, $content) = @_;
    my $r = $t->request($method, '/mitte/preferences',
                        headers => { 'X-Mitte-User' => $user },
                        defined $content ? (content => $content) : ());
    my $doc = eval { json_decode($r->{content}) };
    return ($r->{status}, $doc, $r);
}

sub user {
    my ($t, $method, $id, $content) = @_;
    my $r = $t->request($method, "/mitte-admin/users/$id",
                        defined $content ? (content => $content) : ());
    my $doc = eval { json_decode($r->{content}) };
    return ($r->{status}, $doc);
}

sub canon { return json_encode($_[0]) }

my @TYPES = qw(ANOMALY_DETECTED QUOTA_WARNING QUOTA_EXCEEDED ENDPOINT_DOWN
               ENDPOINT_RECOVERED TRIAL_ENDING);
my @FORMATS = qw(json slack discord);


# ---- PUT on A, GET on B at once ---------------------------------------

{
    my ($same, $ok) = (0, 0);
    my @diff;
    for my $i (1 .. 50) {
        my %types = map { $TYPES[$_] => (($i >> $_) & 1) ? \0 : \1 } 0 .. 5;
        my $doc = {
            email   => { enabled => ($i % 2) ? \1 : \0,
                         address => "r$i\@example.com" },
            webhook => { enabled => ($i % 3) ? \1 : \0,
                         url => "https://hooks.example.com/round/$i",
                         format => $FORMATS[$i % 3] },
            types   => \%types,
        };
        my ($st, $put) = prefs($ia, 'PUT', 'alice', $doc);
        my ($st2, $got) = prefs($ib, 'GET', 'alice');
        $ok++ if $st == 200 && $st2 == 200;
        if ($put && $got && canon($put) eq canon($got)
            && $got->{email}{address} eq "r$i\@example.com"
            && $got->{webhook}{format} eq $FORMATS[$i % 3])
        {
            $same++;
        } else {
            push @diff, "round $i: PUT " . ($put ? canon($put) : $st)
                        . "\n  GET " . ($got ? canon($got) : $st2);
        }
    }
    is($ok, 50, 'PUT on A, GET on B: 50 rounds, all answered 200');
    is($same, 50, 'GET on B returned what was PUT on A, each time')
        or diag(join "\n", @diff[0 .. ($#diff < 4 ? $#diff : 4)]);

    # and back the other way, B's zone held too
    my ($st, $put) = prefs($ib, 'PUT', 'alice',
                           { email => { address => 'back@example.com' } });
    my (undef, $got) = prefs($ia, 'GET', 'alice');
    is($got->{email}{address}, 'back@example.com', 'PUT on B, GET on A');
}


# ---- PATCH on A and B alternately ---------------------------------------

{
    my @steps = (
        [$ia, { email => { enabled => \0 } }],
        [$ib, { types => { QUOTA_WARNING => \0 } }],
        [$ia, { webhook => { url => 'https://hooks.example.com/p' } }],
        [$ib, { webhook => { format => 'discord' } }],
        [$ia, { types => { ENDPOINT_DOWN => \0 } }],
        [$ib, { webhook => { enabled => \1 } }],
        [$ia, { email => { address => 'pat@example.com' } }],
        [$ib, { types => { TRIAL_ENDING => \0 } }],
    );
    my $all_ok = 1;
    for my $s (@steps) {
        my ($st) = prefs($s->[0], 'PATCH', 'pat', $s->[1]);
        $all_ok = 0 unless $st == 200;
    }
    ok($all_ok, 'PATCH on A and B alternately: all answered 200');

    my $want = {
        inApp   => { enabled => \1 },
        email   => { enabled => \0, address => 'pat@example.com' },
        webhook => { enabled => \1, url => 'https://hooks.example.com/p',
                     format => 'discord', secretSet => \0 },
        types   => { ANOMALY_DETECTED => \1, QUOTA_WARNING => \0,
                     QUOTA_EXCEEDED => \1, ENDPOINT_DOWN => \0,
                     ENDPOINT_RECOVERED => \1, TRIAL_ENDING => \0 },
    };
    for my $t ([$ia, 'A'], [$ib, 'B']) {
        my (undef, $got) = prefs($t->[0], 'GET', 'pat');
        is(canon($got), canon($want), "every partial change kept, on $t->[1]");
    }
}


# ---- the secret stays write-only ----------------------------------------

{
    my ($st, $put) = prefs($ia, 'PATCH', 'sec',
                           { webhook => { url => 'https://h.example.com/s',
                                          secret => 's3cret-value' } });
    is($st, 200, 'a secret set on A');
    my (undef, $got, $r) = prefs($ib, 'GET', 'sec');
    is($got->{webhook}{secretSet}, JSON::PP::true(), 'B: secretSet true');
    unlike($r->{content}, qr/s3cret/, 'B never shows the secret');
    like($redis->cli('-n', $DB, 'GET', 'cp:{u:sec}:prefs'),
         qr/"secret":"s3cret-value"/,
         'Redis holds it, for the instance that sends the webhooks');

    prefs($ib, 'PATCH', 'sec', { webhook => { secret => undef } });
    (undef, $got) = prefs($ia, 'GET', 'sec');
    is($got->{webhook}{secretSet}, JSON::PP::false(),
       'cleared on B: A says secretSet false');
}


# ---- users ----------------------------------------------------------------

my ($yyyy, $mm) = (gmtime)[5, 4];
my $YM = sprintf '%04d%02d', $yyyy + 1900, $mm + 1;

{
    my $trial = time() + 86400 * 10;
    $trial -= $trial % 1;
    my ($st, $put) = user($ia, 'PUT', 'u1',
                          { plan => 'pro', trialEndsAt => int($trial),
                            email => 'u1@example.com' });
    is($st, 200, 'users: PUT on A');
    my ($st2, $got) = user($ib, 'GET', 'u1');
    is($st2, 200, 'users: GET on B answers');
    is($got->{plan}, 'pro', 'B: the plan');
    is($got->{email}, 'u1@example.com', 'B: the email');
    is($got->{trialEndsAt}, $put->{trialEndsAt}, 'B: the trial end');

    user($ib, 'PUT', 'u1', { plan => 'free' });
    (undef, $got) = user($ia, 'GET', 'u1');
    is($got->{plan}, 'free', 'a partial PUT on B: the plan on A');
    is($got->{email}, 'u1@example.com', '... the email kept');

    is($got->{quota}{used}, 0, 'no quota use yet');
    $redis->cli('-n', $DB, 'SET', "cp:{u:u1}:q:$YM", 1234);
    (undef, $got) = user($ib, 'GET', 'u1');
    is($got->{quota}{used}, 1234, "GET shows Redis's (cluster-wide) use");

    my ($st3) = user($ib, 'GET', 'nobody');
    is($st3, 404, 'a user known nowhere: 404');

    # unknown to A's zone, known to Redis: written into the zone
    $redis->cli('-n', $DB, 'HSET', 'cp:{u:u9}:meta', 'plan', 'trial',
                'email', 'u9@example.com', 't', '1');
    my ($st4, $u9) = user($ia, 'GET', 'u9');
    is($st4, 200, 'a user only Redis knows: 200');
    is($u9->{plan}, 'trial', '... with its plan');
}


# ---- keys, TTLs, the event stream -----------------------------------------

{
    my @keys = $redis->keys_like('*', $DB);
    my @other = grep { !/^cp:/ } @keys;
    is_deeply(\@other, [], 'every key carries the prefix');

    for my $k ('cp:{u:alice}:prefs', 'cp:{u:pat}:prefs', 'cp:{u:u1}:meta') {
        my $ttl = $redis->cli('-n', $DB, 'TTL', $k);
        ok($ttl > 399 * 86400 && $ttl <= 400 * 86400, "$k: TTL $ttl");
    }

    my $doc = $redis->cli('-n', $DB, 'GET', 'cp:{u:alice}:prefs');
    like($doc, qr/^\{"rev":\d+,"t":\d{13},"inApp":\{"enabled":true\},/,
         'the stored document: revision, time in ms, the preferences');

    my $stream = $redis->cli('-n', $DB, 'XRANGE', 'cp:{events}', '-', '+');
    like($stream, qr/\{"k":"p","u":"alice","d":\{"rev":\d+,/,
         'a "p" entry went to the event stream');
    like($stream, qr/\{"k":"m","u":"u1","t":\d+,"plan":"free",/,
         'an "m" entry went to the event stream');
}


# ---- what the module did not write ----------------------------------------

{
    my (undef, $before) = prefs($ia, 'PUT', 'garb',
                                { email => { address => 'g@example.com' } });
    $redis->cli('-n', $DB, 'SET', 'cp:{u:garb}:prefs', 'garbage {{');
    my ($st, $got) = prefs($ia, 'GET', 'garb');
    is($st, 200, 'garbage in Redis: GET still 200');
    is(canon($got), canon($before), "... with the zone's document");
    ($st, $got) = prefs($ib, 'GET', 'garb');
    is($st, 200, '... on B too');
    my $said = grep { /not valid/ } map { $_->log_lines('error') } $ia, $ib;
    ok($said, 'the bad document was logged');

    ($st) = prefs($ia, 'PATCH', 'garb', { types => { QUOTA_WARNING => \0 } });
    is($st, 200, 'a save over garbage: 200');
    ($st, $got) = prefs($ib, 'GET', 'garb');
    is($got->{types}{QUOTA_WARNING}, JSON::PP::false(),
       '... replaced it: B reads it');
    is($got->{email}{address}, 'g@example.com',
       "... on top of A's zone document");

    # a document with a valid shape and a bad value
    my $bad = $redis->cli('-n', $DB, 'GET', 'cp:{u:garb}:prefs');
    $bad =~ s/"format":"json"/"format":"xml"/;
    $redis->cli('-n', $DB, 'SET', 'cp:{u:garb}:prefs', $bad);
    ($st, $got) = prefs($ib, 'GET', 'garb');
    is($st, 200, 'an invalid field in Redis: 200');
    is($got->{webhook}{format}, 'json', "... the zone's document");

    # another type at the key: Redis's error
    $redis->cli('-n', $DB, 'DEL', 'cp:{u:wrong}:prefs');
    $redis->cli('-n', $DB, 'HSET', 'cp:{u:wrong}:prefs', 'a', 'b');
    ($st) = prefs($ia, 'GET', 'wrong');
    is($st, 200, 'a hash at the key: GET 200');
    ($st) = prefs($ia, 'PUT', 'wrong', { types => { QUOTA_WARNING => \0 } });
    is($st, 200, 'a hash at the key: PUT 200 (the zone)');

    user($ia, 'PUT', 'u2', { plan => 'pro' });
    $redis->cli('-n', $DB, 'HSET', 'cp:{u:u2}:meta', 'plan', 'gold');
    my ($ust, $u2) = user($ia, 'GET', 'u2');
    is($ust, 200, 'a bad meta hash: GET 200');
    is($u2->{plan}, 'pro', "... the zone's plan");
    # B's zone heard of u2 through the event stream (A's "m" entry)
    my $u2b;
    for (1 .. 100) {
        ($ust, $u2b) = user($ib, 'GET', 'u2');
        last if $ust == 200;
        select(undef, undef, undef, 0.05);
    }
    is($ust, 200, "... and B's zone, which the stream told, answers");
    is($u2b && $u2b->{plan}, 'pro', "... with the plan A saved");
    $redis->cli('-n', $DB, 'SET', "cp:{u:u2}:q:$YM", 'many');
    ($ust, $u2) = user($ia, 'GET', 'u2');
    is($ust, 200, 'a bad quota use: GET 200');
    is($u2->{plan}, 'pro', "... the zone's plan");
}


# ---- clients that go away while Redis is slow -------------------------------

{
    my $sleeper = $redis->cli_bg('DEBUG', 'SLEEP', 2);
    sleep 0.2;
    for my $t ($ia, $ib) {
        for my $i (1 .. 4) {
            my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                          PeerPort => $t->port,
                                          Proto => 'tcp', Timeout => 5)
                or next;
            print {$s} "GET /mitte/preferences HTTP/1.1\r\nHost: x\r\n"
                       . "X-Mitte-User: alice\r\n\r\n";
            close $s;
        }
    }
    my ($st) = prefs($ia, 'GET', 'alice');
    is($st, 200, 'Redis asleep: a GET answers 200 (timed out: the zone)');
    waitpid($sleeper, 0);
    wait_up($ia, 'A after the sleep', 2);
    wait_up($ib, 'B after the sleep', 2);
    ($st) = prefs($ib, 'GET', 'alice');
    is($st, 200, 'after it: 200');
}


# ---- Redis stopped, then back ------------------------------------------------

my %before = map { ($_ => [sort $_->worker_pids]) } $ia, $ib;
{
    $redis->stop;

    my ($st, $put) = prefs($ia, 'PUT', 'down',
                           { email => { address => 'down@example.com' },
                             types => { ANOMALY_DETECTED => \0 } });
    is($st, 200, 'Redis stopped: PUT 200');
    my ($st2, $got) = prefs($ia, 'GET', 'down');
    is($st2, 200, 'Redis stopped: GET 200');
    is(canon($got), canon($put), "... the zone's document");

    my $n200 = 0;
    for my $i (1 .. 20) {
        my ($s1) = prefs($ia, 'PATCH', 'down',
                         { types => { QUOTA_WARNING => ($i % 2) ? \0 : \1 } });
        my ($s2) = prefs($ib, 'GET', 'alice');
        my ($s3) = user($ia, 'GET', 'u1');
        my ($s4) = user($ib, 'PUT', 'u3', { plan => 'pro' });
        $n200++ if $s1 == 200 && $s2 == 200 && $s3 == 200 && $s4 == 200;
    }
    is($n200, 20, 'Redis stopped: 80 more requests, all 200');

    for my $t ([$ia, 'A'], [$ib, 'B']) {
        my %by_pid;
        for my $l ($t->[0]->log_lines('error', qr/mitte: cluster: /)) {
            my ($y, $mo, $d, $h, $mi, $s, $pid) = $l =~
                m{^(\d+)/(\d+)/(\d+) (\d+):(\d+):(\d+) \[error\] (\d+)#};
            push @{ $by_pid{$pid} },
                 timelocal($s, $mi, $h, $d, $mo - 1, $y) if $pid;
        }
        my $ok = 1;
        for my $ts (values %by_pid) {
            my @ts = sort { $a <=> $b } @$ts;
            $ok = 0 if grep { $ts[$_] - $ts[$_ - 1] < 60 } 1 .. $#ts;
        }
        ok(scalar(keys %by_pid), "$t->[1]: the trouble was logged");
        ok($ok, "$t->[1]: at most one line a minute per worker")
            or diag(join "\n", $t->[0]->log_lines('error'));
    }

    $redis->start;
    wait_up($ia, 'A: Redis back', 2);
    wait_up($ib, 'B: Redis back', 2);

    # the document saved while Redis was away: A writes it at its next GET
    (undef, $got) = prefs($ia, 'GET', 'down');
    is($got->{email}{address}, 'down@example.com',
       "Redis back (empty): A's GET still shows what was saved meanwhile");
    my ($st3, $onb) = prefs($ib, 'GET', 'down');
    is(canon($onb), canon($got), '... and B reads it from Redis');

    ($st, $put) = prefs($ib, 'PUT', 'alice',
                        { email => { address => 'again@example.com' } });
    (undef, $got) = prefs($ia, 'GET', 'alice');
    is($got->{email}{address}, 'again@example.com',
       'Redis back: PUT on B, GET on A works again');
    my $ttl = $redis->cli('-n', $DB, 'TTL', 'cp:{u:alice}:prefs');
    ok($ttl > 0, "the key has its TTL again ($ttl)");
}

for my $t ($ia, $ib) {
    is_deeply([sort $t->worker_pids], $before{$t},
              'no worker died meanwhile');
}

$ia->stop;
$ib->stop;
$ia->check_error_log;
$ib->check_error_log;

done_testing();
