#!/usr/bin/perl

# SSRF (SPEC section 5): no outbound webhook connection to a blocked
# address unless mitte_webhook_allow lists it. A host name that resolves to
# loopback is accepted at save time and blocked at connect time (the
# receiver sees no connection; the outbox says "blocked address"); literal
# blocked addresses, in every form inet_aton and curl take, are refused at
# save time (400 invalid_field, nothing stored, nothing queued). With the
# allowlist, the same name and literal deliver.

use strict;
use warnings;

use Test::More;
use JSON::PP ();
use Time::HiRes qw(time sleep);
use Mitte::Test qw(:all);
use Mitte::Receiver;
use Mitte::Channels qw(:all);

require_module();

my $true = JSON::PP::true;

my $rx = Mitte::Receiver->new;
my $rx6 = eval { Mitte::Receiver->new(v6 => 1) };
my $P = $rx->port;
my $P6 = $rx6 ? $rx6->port : $P;

my $t = Mitte::Test->new(http => channels_http(threshold => 1));
$t->start;

sub webhook {
    my ($user, $url) = @_;
    return set_prefs($t, $user, { webhook => { enabled => $true, url => $url,
                                               format => 'json' } });
}

# literal addresses: refused when saved
my @literal = (
    "http://[::1]:$P6/hook",
    "http://[::ffff:127.0.0.1]:$P/hook",
    "http://[::ffff:7f00:1]:$P/hook",
    "http://[::127.0.0.1]:$P/hook",
    "http://0.0.0.0:$P/hook",
    "http://127.0.0.1:$P/hook",
    "http://127.1:$P/hook",
    "http://2130706433:$P/hook",
    "http://0x7f000001:$P/hook",
    "http://0177.0.0.1:$P/hook",
    "http://127.0.0.2:$P/hook",
    "https://169.254.169.254/latest/meta-data/",
    "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
    "http://10.0.0.1/hook",
    "http://192.168.1.1/hook",
    "http://172.16.0.1/hook",
    "http://100.64.0.1/hook",
    "http://[fe80::1]/hook",
    "http://[fd00::1]/hook",
    "http://[64:ff9b::7f00:1]/hook",
    "http://[2002:7f00:1::]/hook",
);


# ---- phase 1: no allowlist -------------------------------------------------

for my $url (@literal) {
    my ($r, $doc) = webhook('sx', $url);
    error_ok($r, $doc, 400, 'invalid_field', "refused at save: $url");
}
for my $url ('ftp://example.com/hook', 'file:///etc/passwd',
             'gopher://example.com/', 'http://user:pw@example.com/hook')
{
    my ($r, $doc) = webhook('sx', $url);
    error_ok($r, $doc, 400, 'invalid_field', "refused at save: $url");
}
my ($r, $doc) = $t->json(GET => '/mitte/preferences',
                         headers => { 'X-Mitte-User' => 'sx' });
is($doc && $doc->{webhook}{url}, undef, 'refused: no url stored');
ok($doc && !$doc->{webhook}{enabled}, 'refused: webhook still disabled');
my $nx = raise_down($t, 'sx', 'ssrf-x');
is(scalar sends_of($t, $nx->{id}, 'webhook'), 0, 'refused: nothing queued');

# a name that resolves to 127.0.0.1: saved, blocked when connecting
($r, $doc) = webhook('sl', "http://localhost:$P/hook");
is($r->{status}, 200, 'localhost: accepted at save time (a name)')
    or diag($r->{content});
my $nl = raise_down($t, 'sl', 'ssrf-l');
my $sl = wait_send($t, $nl->{id}, 'webhook');
is($sl && $sl->{state}, 'failed', 'localhost: failed');
is($sl && $sl->{lastError}, 'blocked address', 'localhost: "blocked address"');
is($sl && $sl->{attempts}, 1, 'localhost: at once (1 attempt, no retry)');

sleep 1.2;    # a retry, if any, would come within 1s
($sl) = sends_of($t, $nl->{id}, 'webhook');
is($sl && $sl->{attempts}, 1, 'localhost: still 1 attempt');
is($rx->accepts, 0, 'the loopback receiver saw no connection');
is($rx6->accepts, 0, 'the [::1] receiver saw no connection') if $rx6;

my (undef, $m) = $t->metrics;
is($m->{'mitte_channel_sends_total{channel="webhook",result="failed"}'}, 1,
   'metrics: 1 webhook failed');
is($m->{'mitte_channel_sends_total{channel="webhook",result="sent"}'}, 0,
   'metrics: none sent');


# ---- phase 2: mitte_webhook_allow 127.0.0.1 (and ::1) ----------------------

$t->reload(http => channels_http(threshold => 1, extra => <<'END'));
    mitte_webhook_allow 127.0.0.1 ::1;
END

($r, $doc) = webhook('sa', "http://localhost:$P/by-name");
is($r->{status}, 200, 'allowed: localhost saved');
($r, $doc) = webhook('sb', "http://127.0.0.1:$P/by-literal");
is($r->{status}, 200, 'allowed: 127.0.0.1 literal saved') or diag($r->{content});
if ($rx6) {
    ($r, $doc) = webhook('s6', "http://[::1]:$P6/by-v6");
    is($r->{status}, 200, 'allowed: [::1] literal saved') or diag($r->{content});
}
for my $url ("http://127.0.0.2:$P/hook", 'http://10.0.0.1/hook',
             'http://169.254.169.254/latest/meta-data/')
{
    my ($r2, $doc2) = webhook('sy', $url);
    error_ok($r2, $doc2, 400, 'invalid_field',
             "not in the allowlist, still refused: $url");
}

my %n = map { $_ => raise_down($t, $_, "ssrf-$_") } ($rx6 ? qw(sa sb s6) : qw(sa sb));
my @got = $rx->wait_requests(2, 5);
my %path = map { $_->{path} => $_ } @got;
ok($path{'/by-name'}, 'allowed: http://localhost:PORT/ delivers');
is($path{'/by-name'} && $path{'/by-name'}{headers}{'webhook-id'}, $n{sa}{id},
   'allowed: ... the notification');
ok($path{'/by-literal'}, 'allowed: http://127.0.0.1:PORT/ delivers');
if ($rx6) {
    my ($q6) = $rx6->wait_requests(1, 5);
    ok($q6, 'allowed: http://[::1]:PORT/ delivers');
}
for my $u (sort keys %n) {
    my $s = wait_send($t, $n{$u}{id}, 'webhook');
    is($s && $s->{state}, 'sent', "allowed: $u sent");
}

# the blocked send of phase 1 stays failed
($sl) = sends_of($t, $nl->{id}, 'webhook');
is($sl && $sl->{state}, 'failed', 'the blocked send stays failed');
is(scalar $rx->requests(sub { $_[0]{path} eq '/hook' }), 0,
   'the blocked url was never asked');

$t->stop;
$_->stop for grep { $_ } $rx, $rx6;

done_testing();
