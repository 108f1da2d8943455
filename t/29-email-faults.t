#!/usr/bin/perl

# The email API misbehaving (issue 11, fault tests): one that never
# answers (cut at mitte_webhook_timeout, retried, then failed), one that
# answers 500 (retried, failed, the status in lastError), 500 with a cut
# JSON body, 200 with garbage (sent: the answer's body is not needed), and
# endpoints that answer a malformed HTTP header or close at once (failed,
# retried). Meanwhile proxied deliveries are answered at once, and the
# error log has nothing unexpected. (5xx, 4xx, 429 and Retry-After are in
# t/14-email.t; webhook targets that hang, answer late or redirect to a
# loopback address, never followed, in t/15-webhook.t and t/16-ssrf.t.)

use strict;
use warnings;

use Test::More;
use Time::HiRes qw(sleep time);
use Mitte::Test qw(:all);
use Mitte::Receiver;
use Mitte::Channels qw(:all);

require_module();

my $rx = Mitte::Receiver->new(script => sub {
    my ($req) = @_;
    my $d = eval { json_decode($req->{body}) } || {};
    my $to = ref $d->{to} eq 'ARRAY' ? $d->{to}[0] // '' : '';
    return { hang => 1 } if $to =~ /^hang@/;
    return { status => 500, body => 'Internal Server Error' }
        if $to =~ /^err@/;
    return { status => 500, body => '{"message":"cut' } if $to =~ /^cut@/;
    return { status => 200, body => "\x00\xff<<not json>>\r\n\x01" }
        if $to =~ /^junk@/;
    return { status => 200, body => '{"id":"e1"}' };
});

sub conf {
    my ($api) = @_;
    return channels_http(threshold => 1, extra => <<"END");
    mitte_email_api $api;
    mitte_email_key_file %%DIR%%/resend.key;
    mitte_webhook_timeout 1s;
    mitte_delivery_retries 1;
END
}

sub key {
    my ($t) = @_;
    open my $kf, '>', $t->dir . '/resend.key' or die $!;
    print {$kf} "re_test_key\n";
    close $kf;
    return;
}

my $t = Mitte::Test->new(http => conf($rx->url('/emails')));
key($t);
$t->start;

my %n;
for my $who (qw(hang err cut junk ok)) {
    my ($r) = set_prefs($t, "m$who",
                        { email => { address => "$who\@example.com" } });
    is($r->{status}, 200, "m$who: address saved");
    $n{$who} = raise_down($t, "m$who", "mail-$who");
}

# proxied deliveries while the email API hangs
my $slowest = 0;
for my $i (1 .. 30) {
    my $t0 = time();
    my $r = $t->post_as('other', "/hooks/busy-$i?status=200");
    my $d = time() - $t0;
    $slowest = $d if $d > $slowest;
    is($r->{status}, 200, "delivery $i during the hang")
        unless $r->{status} == 200;
}
ok($slowest < 1, sprintf('30 deliveries during the hang: slowest %.0f ms',
                         $slowest * 1000));

my $not_pending = sub {
    $_[0]{state} ne 'pending' && $_[0]{state} ne 'sending'
};

my $s = wait_send($t, $n{hang}{id}, 'email', $not_pending, 15);
is($s && $s->{state}, 'failed', 'hang: failed');
is($s && $s->{attempts}, 2, 'hang: retried once (2 attempts)');
like($s && $s->{lastError} // '', qr/time/i, 'hang: lastError says timeout');

$s = wait_send($t, $n{err}{id}, 'email', $not_pending, 15);
is($s && $s->{state}, 'failed', '500: failed');
is($s && $s->{attempts}, 2, '500: retried once (2 attempts)');
like($s && $s->{lastError} // '', qr/500/, '500: lastError names it');

$s = wait_send($t, $n{cut}{id}, 'email', $not_pending, 15);
is($s && $s->{state}, 'failed', '500 with cut JSON: failed');
like($s && $s->{lastError} // '', qr/500/, '500 with cut JSON: the status');

$s = wait_send($t, $n{junk}{id}, 'email', $not_pending, 15);
is($s && $s->{state}, 'sent', '200 with garbage: sent');
is($s && $s->{attempts}, 1, '200 with garbage: one attempt');

$s = wait_send($t, $n{ok}{id}, 'email', $not_pending, 15);
is($s && $s->{state}, 'sent', 'the good address: sent');

my (undef, $m) = $t->metrics;
ok(($m->{'mitte_channel_sends_total{channel="email",result="failed"}'}
    // 0) >= 3, 'the metrics count the failures')
    or diag(join ', ', map { "$_=$m->{$_}" } grep { /send/ } sort keys %$m);

$t->stop;

# an email API that answers a broken header, then one that closes at once
for my $mode (qw(badheader close)) {
    my $u = Mitte::Test->new(http => 'placeholder');
    my $peer = $u->peer('API', $mode);
    $u->{http} = conf("http://$peer/emails");
    key($u);
    $u->start;
    my ($r) = set_prefs($u, 'mb', { email => { address => 'b@example.com' } });
    is($r->{status}, 200, "$mode: address saved");
    my $nb = raise_down($u, 'mb', 'mail-b');
    $s = wait_send($u, $nb->{id}, 'email', $not_pending, 15);
    is($s && $s->{state}, 'failed', "$mode: failed");
    is($s && $s->{attempts}, 2, "$mode: retried once");
    ok(length($s && $s->{lastError} // ''), "$mode: a lastError")
        and diag("$mode: lastError: $s->{lastError}");
    is($u->post_as('mb', '/hooks/x?status=200')->{status}, 200,
       "$mode: proxying goes on");
    $u->stop;
}

done_testing();
