#!/usr/bin/perl

# Partial updates of one user's preferences at once, on several workers,
# are all applied (issue 11, defect 2; SPEC: fields absent keep theirs).
# Each round: PUT every type on, then six PATCHes at once on six new
# connections (so on several of the four workers), each turning one type
# off; then GET: all six must be off. Before the fix, a PATCH that copied
# the document, patched it unlocked and wrote the whole document back
# reverted another that landed in between. The bodies are padded with
# white space (a longer parse outside the lock: a wider window). A second
# part does the same with email.address and webhook fields, patched apart.

use strict;
use warnings;

use Test::More;
use IO::Socket::INET;
use IO::Select;
use Time::HiRes qw(time);
use Mitte::Test qw(:all);

require_module();

my $t = Mitte::Test->new(upstream => 0, workers => 4, http => <<'END');
    mitte_zone m:2m;

    server {
        listen 127.0.0.1:%%PORT%%;
        access_log off;

        location = /mitte/preferences {
            mitte_user $http_x_mitte_user;
            mitte_preferences;
        }
    }
END

$t->start;

my @TYPES = qw(ANOMALY_DETECTED QUOTA_WARNING QUOTA_EXCEEDED ENDPOINT_DOWN
               ENDPOINT_RECOVERED TRIAL_ENDING);

sub request_bytes {
    my ($method, $body) = @_;
    return "$method /mitte/preferences HTTP/1.1\r\nHost: x\r\n"
        . "X-Mitte-User: alice\r\nConnection: close\r\n"
        . 'Content-Length: ' . length($body) . "\r\n\r\n" . $body;
}

# the bodies at once, each on a new connection; the statuses
sub at_once {
    my (@bodies) = @_;
    my @socks = map {
        IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $t->port,
                              Proto => 'tcp', Timeout => 10)
            or die "connect: $!"
    } @bodies;
    # white space inside the object: a longer parse, a wider window
    my @reqs = map {
        my $b = $_;
        $b =~ s/^\{/'{' . (' ' x 60000)/e;
        request_bytes(PATCH => $b)
    } @bodies;
    syswrite $socks[$_], $reqs[$_] for 0 .. $#socks;
    my @out;
    for my $s (@socks) {
        my $in = '';
        my $deadline = time() + 10;
        while (time() < $deadline) {
            my $n = sysread $s, $in, 65536, length $in;
            last unless $n;
        }
        close $s;
        push @out, $in =~ m{^HTTP/1\.1 (\d+)} ? $1 : 0;
    }
    return @out;
}

sub prefs {
    my ($r, $doc) = $t->json(GET => '/mitte/preferences',
                             headers => { 'X-Mitte-User' => 'alice' });
    return $doc || {};
}

my $on = json_encode({ types => { map { $_ => JSON::PP::true } @TYPES } });
my @off = map { json_encode({ types => { $_ => JSON::PP::false } }) } @TYPES;

my $ROUNDS = 300;
my ($lost, $bad) = (0, 0);

for my $round (1 .. $ROUNDS) {
    my $r = $t->request(PUT => '/mitte/preferences',
                        headers => { 'X-Mitte-User' => 'alice' },
                        content => $on);
    $bad++ unless $r->{status} == 200;
    my @st = at_once(@off);
    $bad += grep { $_ != 200 } @st;
    my $types = prefs()->{types} || {};
    my @still = grep { $types->{$_} } @TYPES;
    if (@still) {
        $lost++;
        diag("round $round: still on: @still") if $lost <= 5;
    }
}

is($bad, 0, 'every PUT and PATCH answered 200');
is($lost, 0, "$ROUNDS rounds of six PATCHes at once: none lost");

# other fields, patched apart at once: every one kept
my ($lost2, $bad2) = (0, 0);
for my $round (1 .. 100) {
    my $r = $t->request(PUT => '/mitte/preferences',
                        headers => { 'X-Mitte-User' => 'alice' },
                        content => json_encode({
                            email => { address => 'a@example.com',
                                       enabled => JSON::PP::true },
                            webhook => { enabled => JSON::PP::false,
                                         url => undef, format => 'json' },
                            types => { QUOTA_WARNING => JSON::PP::true },
                        }));
    $bad2++ unless $r->{status} == 200;
    my @st = at_once(
        json_encode({ email => { address => "r$round\@example.com" } }),
        json_encode({ email => { enabled => JSON::PP::false } }),
        json_encode({ webhook => { url => "https://h$round.example.com/x" } }),
        json_encode({ webhook => { format => 'slack' } }),
        json_encode({ types => { QUOTA_WARNING => JSON::PP::false } }),
    );
    $bad2 += grep { $_ != 200 } @st;
    my $p = prefs();
    my $ok = ($p->{email}{address} // '') eq "r$round\@example.com"
        && !$p->{email}{enabled}
        && ($p->{webhook}{url} // '') eq "https://h$round.example.com/x"
        && ($p->{webhook}{format} // '') eq 'slack'
        && !$p->{types}{QUOTA_WARNING};
    unless ($ok) {
        $lost2++;
        diag("round $round: " . json_encode($p)) if $lost2 <= 3;
    }
}

is($bad2, 0, 'fields apart: every PUT and PATCH answered 200');
is($lost2, 0, '100 rounds of five PATCHes of other fields: none lost');

$t->stop;
done_testing();
