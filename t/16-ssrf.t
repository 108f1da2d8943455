#!/usr/bin/perl

# SSRF (SPEC section 5): no outbound webhook connection to a blocked
# address unless mitte_webhook_allow lists it. A host name that resolves to
# loopback is accepted at save time and blocked at connect time (the
# receiver sees no connection; the outbox says "blocked address"); literal
# blocked addresses, in every form inet_aton and curl take, are refused at
# save time (400 invalid_field, nothing stored, nothing queued). With the
# allowlist, the same name and literal deliver. A connection that an email
# to the (trusted) email API left open is never reused by a webhook to the
# same host. A name that resolves to a blocked and an allowed address gets
# the outcome of the allowed one (sent, retried, failed, timed out):
# "blocked address" only when every address was blocked.

use strict;
use warnings;

use Test::More;
use JSON::PP ();
use Socket qw(getaddrinfo getnameinfo SOCK_STREAM NI_NUMERICHOST
              NIx_NOSERV);
use Time::HiRes qw(time sleep);
use Mitte::Test qw(:all);
use Mitte::Receiver;
use Mitte::Channels qw(:all);

require_module();

my $true = JSON::PP::true;
my $false = JSON::PP::false;

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


# ---- phase 3: an email connection is not reused by a webhook ---------------

# the email API is trusted, and here a keep-alive receiver on localhost; a
# webhook of another user to the same host and port is blocked (no
# mitte_webhook_allow), so it must not ride on the connection the email
# left open
my $ka = Mitte::Receiver->new(keepalive => 1,
                              script => { default => {
                                  status => 200, body => '{"id":"e1"}' } });
my $PK = $ka->port;
open my $kf, '>', $t->dir . '/resend.key' or die "resend.key: $!";
print {$kf} "re_test_ssrf\n";
close $kf;
$t->reload(http => channels_http(threshold => 1, extra => <<"END"));
    mitte_email_api http://localhost:$PK/emails;
    mitte_email_key_file %%DIR%%/resend.key;
END

($r, $doc) = set_prefs($t, 'se', { email => { address => 'se@example.com' } });
is($r->{status}, 200, 'reuse: an email address saved') or diag($r->{content});
my $ne = raise_down($t, 'se', 'ssrf-mail');
my $se = wait_send($t, $ne->{id}, 'email');
is($se && $se->{state}, 'sent', 'reuse: the email to localhost was sent');
is(scalar $ka->requests(sub { $_[0]{path} eq '/emails' }), 1,
   'reuse: the keep-alive receiver got it');

($r, $doc) = set_prefs($t, 'sr', {
    email   => { enabled => $false },
    webhook => { enabled => $true, url => "http://localhost:$PK/hook" } });
is($r->{status}, 200, 'reuse: a webhook to the same host and port saved')
    or diag($r->{content});
my $nr = raise_down($t, 'sr', 'ssrf-reuse');
my $sr = wait_send($t, $nr->{id}, 'webhook');
is($sr && $sr->{state}, 'failed', 'reuse: the webhook failed');
is($sr && $sr->{lastError}, 'blocked address',
   'reuse: "blocked address" (not sent over the email\'s connection)');
sleep 0.3;
is(scalar $ka->requests(sub { $_[0]{path} eq '/hook' }), 0,
   'reuse: the receiver never saw /hook');


# ---- phase 4: a name with a blocked and an allowed address -----------------

# true when localhost resolves to both 127.0.0.1 and ::1 here
sub localhost_both {
    my ($err, @ai) = getaddrinfo('localhost', '80',
                                 { socktype => SOCK_STREAM });
    return 0 if $err;
    my %seen;
    for my $ai (@ai) {
        my ($e, $host) = getnameinfo($ai->{addr}, NI_NUMERICHOST,
                                     NIx_NOSERV);
        $seen{$host} = 1 unless $e;
    }
    return $seen{'127.0.0.1'} && $seen{'::1'};
}

SKIP: {
    skip 'localhost does not resolve to both 127.0.0.1 and ::1 here', 1
        unless localhost_both();
    my $rxd = eval {
        Mitte::Receiver->new(v6 => 1, script => {
            '/ok'   => { status => 200 },
            '/busy' => { status => 503 },
            '/bad'  => { status => 400 },
            '/hang' => { hang => 1 },
        });
    };
    skip '::1 cannot be bound here', 1 unless $rxd;

    # 127.0.0.1 is blocked, ::1 allowed: the outcome is that of ::1
    $t->reload(http => channels_http(threshold => 1, extra => <<'END'));
    mitte_webhook_allow ::1/128;
    mitte_delivery_retries 1;
    mitte_webhook_timeout 1s;
END
    my $PD = $rxd->port;
    my %nd;
    for my $path (qw(ok busy bad hang)) {
        my ($r2) = webhook("sd-$path", "http://localhost:$PD/$path");
        is($r2->{status}, 200, "both: the webhook to /$path saved")
            or diag($r2->{content});
        $nd{$path} = raise_down($t, "sd-$path", "ssrf-both-$path");
    }
    my %sd = map {
        ($_ => wait_send($t, $nd{$_}{id}, 'webhook', undef, 8))
    } qw(ok bad busy hang);

    is($sd{ok} && $sd{ok}{state}, 'sent', 'both, 200: sent');
    is($sd{ok} && $sd{ok}{lastError}, undef, 'both, 200: no lastError');

    is($sd{bad} && $sd{bad}{state}, 'failed', 'both, 400: failed');
    is($sd{bad} && $sd{bad}{attempts}, 1, 'both, 400: at once (1 attempt)');
    like($sd{bad} && $sd{bad}{lastError} // '', qr/^HTTP 400/,
         'both, 400: lastError "HTTP 400..."');

    is($sd{busy} && $sd{busy}{state}, 'failed',
       'both, 503: failed after the retries');
    is($sd{busy} && $sd{busy}{attempts}, 2,
       'both, 503: retried (2 attempts, mitte_delivery_retries 1)');
    like($sd{busy} && $sd{busy}{lastError} // '', qr/^HTTP 503/,
         'both, 503: lastError "HTTP 503..."');

    is($sd{hang} && $sd{hang}{state}, 'failed',
       'both, a hang: failed after the retries');
    is($sd{hang} && $sd{hang}{attempts}, 2,
       'both, a hang: retried (2 attempts)');
    like($sd{hang} && $sd{hang}{lastError} // '', qr/time/i,
         'both, a hang: lastError says timed out');

    my %asked;
    $asked{ $_->{path} }++ for $rxd->requests;
    is_deeply(\%asked, { '/ok' => 1, '/bad' => 1, '/busy' => 2,
                         '/hang' => 2 },
              'both: the [::1] receiver was asked as the outcomes say');
    $rxd->stop;
}

$t->stop;
$_->stop for grep { $_ } $rx, $rx6, $ka;

done_testing();
