#!/usr/bin/perl

# Email through the Resend API (SPEC section 5), against a Resend-like
# receiver on loopback: the request exactly (path, Authorization with the
# key file's first line, Content-Type, Idempotency-Key = the notification
# id, User-Agent, the body's fields); retries on 5xx with backoff 1s, 2s;
# a 400 fails at once keeping Resend's message (a 422's too, decoded from
# JSON: escaped quotes and all); a 429's Retry-After is honoured;
# mitte_delivery_retries; a configured mitte_email_from; no key file, no
# email; the metrics. The email API is operator-configured and trusted: it
# is on loopback with no mitte_webhook_allow.

use strict;
use warnings;

use Test::More;
use JSON::PP ();
use POSIX ();
use Time::HiRes qw(time sleep);
use Mitte::Test qw(:all);
use Mitte::Receiver;
use Mitte::Channels qw(:all);

require_module();

my $KEY = 're_test_9f8e7d6c5b4a';
my $true = JSON::PP::true;
my $false = JSON::PP::false;
my $RESEND_400 = '{"statusCode":400,"name":"validation_error",'
    . '"message":"Invalid `to` field."}';
# a message with escapes: lastError holds it decoded
my $RESEND_422 = '{"message":"bad \\"quoted\\" thing"}';

# answers by recipient, as Resend would
my $rx = Mitte::Receiver->new(script => sub {
    my ($req) = @_;
    my $doc = eval { JSON::PP->new->decode($req->{body}) } || {};
    my $to = ref $doc->{to} eq 'ARRAY' ? $doc->{to}[0] // '' : '';
    my $ok = { status => 200, body => '{"id":"49a3999c-0ce1-4ea6-ab68-afcd6dc2e794"}' };

    if ($to =~ /^retry@/) {
        return $req->{nth_id} <= 2
            ? { status => 503, body => '{"statusCode":503,"name":'
                . '"internal_server_error","message":"Try later"}' }
            : $ok;
    }
    return { status => 400, body => $RESEND_400 } if $to =~ /^bad@/;
    return { status => 422, body => $RESEND_422 } if $to =~ /^quoted@/;
    if ($to =~ /^rate@/) {
        return $req->{nth_id} == 1
            ? { status => 429, headers => ['Retry-After: 2'],
                body => '{"statusCode":429,"name":"rate_limit_exceeded",'
                        . '"message":"Too many requests."}' }
            : $ok;
    }
    if ($to =~ /^date@/) {
        # Retry-After as an HTTP date, 3s ahead
        return $req->{nth_id} == 1
            ? { status => 503, headers => ['Retry-After: ' . POSIX::strftime(
                  '%a, %d %b %Y %H:%M:%S GMT', gmtime(time() + 3))] }
            : $ok;
    }
    return { status => 503 } if $to =~ /^down@/;
    return $ok;
});

my $api = $rx->url('/v1/emails');

sub http_text {
    my (%a) = @_;
    my $extra = "    mitte_email_api $api;\n";
    $extra .= "    mitte_email_key_file %%DIR%%/resend.key;\n" if $a{key};
    $extra .= $a{extra} // '';
    return channels_http(threshold => 1, extra => $extra);
}

my $t = Mitte::Test->new(http => http_text(key => 1));

# the key is the first line only
open my $kf, '>', $t->dir . '/resend.key' or die $!;
print {$kf} "$KEY\nnot the key\n";
close $kf;

$t->start;

sub address {
    my ($user, $addr, %more) = @_;
    my ($r) = set_prefs($t, $user,
                        { email => { address => $addr }, %more });
    is($r->{status}, 200, "$user: email address saved") or diag($r->{content});
    return;
}

sub html_escape {
    my ($s) = @_;
    $s =~ s/&/&amp;/g;
    $s =~ s/</&lt;/g;
    $s =~ s/>/&gt;/g;
    $s =~ s/"/&quot;/g;
    $s =~ s/'/&#39;/g;
    return $s;
}

# the requests carrying Idempotency-Key ID
sub for_id {
    my ($id) = @_;
    return sub { ($_[0]{headers}{'idempotency-key'} // '') eq $id };
}

# the request and its body as a Resend email of notification N to ADDR
sub email_ok {
    my ($q, $n, $addr, $from, $label) = @_;
    my $h = $q->{headers};
    is($q->{method}, 'POST', "$label: POST");
    is($q->{path}, '/v1/emails', "$label: to the path of mitte_email_api");
    is($h->{authorization}, "Bearer $KEY",
       "$label: Authorization: Bearer <first line of the key file>");
    is($h->{'content-type'}, 'application/json',
       "$label: Content-Type: application/json");
    is($h->{'idempotency-key'}, $n->{id},
       "$label: Idempotency-Key is the notification id");
    ok(length($h->{'user-agent'} // ''), "$label: a User-Agent")
        or diag('headers: ' . json_encode($h));
    my $d = eval { json_decode($q->{body}) };
    ok(ref $d eq 'HASH', "$label: body is a JSON object")
        or return diag("body: $q->{body}");
    is_deeply([ sort keys %$d ], [qw(from html subject text to)],
              "$label: body fields from, to, subject, text, html");
    is($d->{from}, $from, "$label: from");
    is_deeply($d->{to}, [$addr], "$label: to is [address]");
    is($d->{subject}, $n->{title}, "$label: subject is the title");
    is($d->{subject}, 'Endpoint down', "$label: subject 'Endpoint down'");
    is($d->{text}, $n->{message}, "$label: text is the message");
    ok(!ref $d->{html} && index($d->{html} // '', html_escape($n->{message})) >= 0,
       "$label: html holds the message, HTML-escaped")
        or diag("html: " . ($d->{html} // 'undef'));
    return;
}


# ---- phase 1: defaults (retries 5, default from) --------------------------

address('eo', 'ok@example.com');
address('er', 'retry@example.com');
address('eb', 'bad@example.com');
address('eg', 'quoted@example.com');
address('eq', 'rate@example.com');
address('eh', 'date@example.com');
address('et', 'types@example.com', types => { ENDPOINT_DOWN => $false });
my ($r) = set_prefs($t, 'ex', { email => { enabled => $false,
                                           address => 'off@example.com' } });
is($r->{status}, 200, 'ex: email disabled');

my %n;
$n{$_} = raise_down($t, $_, "mail-$_")
    for qw(eo er eb eg eq eh et ex enone);

# a plain one, exactly
my ($qo) = $rx->wait_requests(1, 5, for_id($n{eo}{id}));
ok($qo, 'ok: the email was sent') or BAIL_OUT('no email arrives');
email_ok($qo, $n{eo}, 'ok@example.com', 'Mitte <notifications@mitte.dev>',
         'ok');
my $so = wait_send($t, $n{eo}{id}, 'email');
is($so && $so->{state}, 'sent', 'ok: outbox state sent');
is($so && $so->{attempts}, 1, 'ok: 1 attempt');
is($so && $so->{target}, 'ok@example.com', 'ok: outbox target is the address');
is($so && $so->{user}, 'eo', 'ok: outbox user');
is($so && $so->{lastError}, undef, 'ok: no lastError');

# a 400 fails at once, with Resend's message
my $sb = wait_send($t, $n{eb}{id}, 'email');
is($sb && $sb->{state}, 'failed', '400: failed');
is($sb && $sb->{attempts}, 1, '400: one attempt, no retry');
like($sb && $sb->{lastError} // '', qr/\QInvalid `to` field.\E/,
     "400: lastError holds Resend's message");
like($sb && $sb->{lastError} // '', qr/400/, '400: lastError names the status');

# a 422 whose message holds escaped quotes: the message decoded as JSON
my $sg = wait_send($t, $n{eg}{id}, 'email');
is($sg && $sg->{state}, 'failed', '422: failed');
is($sg && $sg->{attempts}, 1, '422: one attempt, no retry');
is($sg && $sg->{lastError}, 'HTTP 422: bad "quoted" thing',
   '422: lastError is exactly \'HTTP 422: bad "quoted" thing\''
   . ' (the message decoded)');

# 429 with Retry-After: 2
my @q429 = $rx->wait_requests(2, 6, for_id($n{eq}{id}));
is(scalar @q429, 2, '429: retried once');
if (@q429 == 2) {
    my $gap = $q429[1]{t} - $q429[0]{t};
    ok($gap >= 1.9, sprintf('429: Retry-After 2 honoured (%.2fs)', $gap));
    ok($gap < 3.5, '429: ... and not much later');
}
my $sq = wait_send($t, $n{eq}{id}, 'email');
is($sq && $sq->{state}, 'sent', '429: then sent');
is($sq && $sq->{attempts}, 2, '429: 2 attempts');

# 503 with Retry-After as an HTTP date 3s ahead
my @qdate = $rx->wait_requests(2, 6, for_id($n{eh}{id}));
is(scalar @qdate, 2, 'Retry-After date: retried once');
if (@qdate == 2) {
    my $gap = $qdate[1]{t} - $qdate[0]{t};
    ok($gap >= 1.9 && $gap < 4.5,
       sprintf('Retry-After date honoured (%.2fs; backoff alone is 1s)', $gap));
}
my $sh = wait_send($t, $n{eh}{id}, 'email');
is($sh && $sh->{state}, 'sent', 'Retry-After date: then sent');

# 503, 503, 200: backoff 1s then 2s
my @q503 = $rx->wait_requests(3, 8, for_id($n{er}{id}));
is(scalar @q503, 3, '503 twice: 3 attempts');
if (@q503 == 3) {
    my ($g1, $g2) = ($q503[1]{t} - $q503[0]{t}, $q503[2]{t} - $q503[1]{t});
    ok($g1 >= 0.95 && $g1 < 2, sprintf('503: first retry after 1s (%.2fs)', $g1));
    ok($g2 >= 1.95 && $g2 < 3, sprintf('503: second retry after 2s (%.2fs)', $g2));
    ok($q503[2]{t} - $q503[0]{t} >= 2.9, '503: ~3s from first to last');
    email_ok($q503[2], $n{er}, 'retry@example.com',
             'Mitte <notifications@mitte.dev>', '503 retry');
}
my $se = wait_send($t, $n{er}{id}, 'email');
is($se && $se->{state}, 'sent', '503 twice: then sent');
is($se && $se->{attempts}, 3, '503 twice: attempts 3');
is($se && $se->{lastError}, undef, '503 twice: no lastError once sent');

# no preferences, the address from mitte_user_email
my $nv = raise_down($t, 'ev', 'mail-ev', 1,
                    { 'X-Mitte-Email' => 'var@example.com' });
my ($qv) = $rx->wait_requests(1, 5, for_id($nv->{id}));
ok($qv, 'mitte_user_email: an email without preferences');
email_ok($qv, $nv, 'var@example.com', 'Mitte <notifications@mitte.dev>',
         'mitte_user_email') if $qv;

# the type switch, email.enabled false, no address: nothing queued
for my $u (qw(et ex enone)) {
    is(scalar sends_of($t, $n{$u}{id}, 'email'), 0, "$u: no email queued");
    is(scalar $rx->requests(for_id($n{$u}{id})), 0, "$u: no email sent");
}
is(scalar $rx->requests(for_id($n{eb}{id})), 1, '400: asked once');
is(scalar $rx->requests(for_id($n{eg}{id})), 1, '422: asked once');

my (undef, $m) = $t->metrics;
is($m->{'mitte_channel_sends_total{channel="email",result="sent"}'}, 5,
   'metrics: 5 emails sent');
is($m->{'mitte_channel_sends_total{channel="email",result="failed"}'}, 2,
   'metrics: 2 emails failed');


# ---- phase 2: mitte_delivery_retries 1, a configured from -----------------

$t->reload(http => http_text(key => 1, extra => <<'END'));
    mitte_delivery_retries 1;
    mitte_email_from "Alerts <alerts@example.org>";
END

address('ed', 'down@example.com');
address('ef', 'from@example.com');
$n{$_} = raise_down($t, $_, "mail-$_") for qw(ed ef);

my ($qf) = $rx->wait_requests(1, 5, for_id($n{ef}{id}));
ok($qf, 'from: sent');
email_ok($qf, $n{ef}, 'from@example.com', 'Alerts <alerts@example.org>',
         'configured from') if $qf;

my $sd = wait_send($t, $n{ed}{id}, 'email', undef, 6);
is($sd && $sd->{state}, 'failed', 'retries 1: failed');
is($sd && $sd->{attempts}, 2, 'retries 1: after 2 attempts');
like($sd && $sd->{lastError} // '', qr/503/, 'retries 1: lastError names the 503');
my @qd = $rx->requests(for_id($n{ed}{id}));
is(scalar @qd, 2, 'retries 1: the API was asked twice');
ok(@qd == 2 && $qd[1]{t} - $qd[0]{t} >= 0.95, 'retries 1: 1s apart');

(undef, $m) = $t->metrics;
is($m->{'mitte_channel_sends_total{channel="email",result="sent"}'}, 6,
   'metrics: 6 emails sent');
is($m->{'mitte_channel_sends_total{channel="email",result="failed"}'}, 3,
   'metrics: 3 emails failed');


# ---- phase 3: no key file, no email ---------------------------------------

my $before = scalar $rx->requests;
$t->reload(http => http_text(key => 0));
ok(scalar $t->log_lines('notice', qr/email channel off/),
   'no key: said at start (notice "email channel off")');

address('ek', 'nokey@example.com');
$n{ek} = raise_down($t, 'ek', 'mail-ek');
sleep 1;
is(scalar sends_of($t, $n{ek}{id}, 'email'), 0, 'no key: no email queued');
is(scalar $rx->requests, $before, 'no key: the API was not asked');
(undef, $m) = $t->metrics;
is($m->{'mitte_channel_sends_total{channel="email",result="sent"}'}, 6,
   'metrics: still 6 emails sent');

$t->stop;
$rx->stop;

done_testing();
