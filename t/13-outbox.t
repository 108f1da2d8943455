#!/usr/bin/perl

# The outbox (GET /mitte-admin/outbox), SPEC section 4 "Channels": with a
# Resend key, a user with an address (mitte_user_email on deliveries, or
# PUT /mitte-admin/users/{id}, or the preferences) gets one pending email
# send per notification; a user with an enabled webhook a pending webhook
# send; a type switched off routes neither (the in-app notification stays);
# email disabled, or no address, no email send; no key file, or an empty
# one, no email sends at all. The metrics count what is pending. A reload
# keeps notifications, preferences and pending sends.
#
# The sends are checked right after the notification that made them: the
# targets are never reached quickly (the email API, where configurable, and
# the webhooks that are sent go to a peer that never answers; a webhook
# host name that fails to resolve would change the send's state within
# the test).

use strict;
use warnings;

use Test::More;
use Time::HiRes qw(time);
use Mitte::Test qw(:all);

require_module();

my $T0 = time();

# does this build know mitte_email_api (the sender)? Then point it at a
# peer that never answers, so that nothing leaves the machine.
my ($api_rc) = nginx_t("    mitte_zone m:1m;\n"
                       . "    mitte_email_api http://127.0.0.1:9/emails;\n");
my $api_conf = $api_rc == 0 ? "mitte_email_api http://%%SILENT%%/emails;" : '';
my ($timeout_rc) = nginx_t("    mitte_zone m:1m;\n"
                           . "    mitte_webhook_timeout 60s;\n");
$api_conf .= "\n    mitte_webhook_timeout 60s;" if $timeout_rc == 0;

my $http = <<'END';
    mitte_zone m:4m;
    %%KEY%%
    %%API%%
    # webhooks go to a peer that takes the request and never answers
    mitte_webhook_allow 127.0.0.1;
    # each failure after a success raises ENDPOINT_DOWN, each success
    # after it ENDPOINT_RECOVERED
    mitte_endpoint_down threshold=1;

    server {
        listen 127.0.0.1:%%PORT%%;

        location ~ ^/hooks/(?<slug>[^/]+)$ {
            mitte_endpoint $slug;
            mitte_user $http_x_mitte_user;
            mitte_user_email $http_x_email;
            proxy_pass http://%%UPSTREAM%%;
        }

        location = /mitte/all {
            mitte_stats all;
        }
        location /mitte/notifications {
            mitte_user $http_x_mitte_user;
            mitte_notifications;
        }
        location = /mitte/preferences {
            mitte_user $http_x_mitte_user;
            mitte_preferences;
        }
        location /mitte-admin/ {
            mitte_admin;
        }
    }
END

# an instance; KEY: undef (no directive), '' (an empty file) or the key
sub instance {
    my ($key) = @_;
    my $text = $http;
    my $key_line = defined $key
        ? 'mitte_email_key_file %%DIR%%/resend.key;' : '';
    $text =~ s/%%KEY%%/$key_line/;
    $text =~ s/%%API%%/$api_conf/;
    my $t = Mitte::Test->new(http => $text);
    $t->{silent} = $t->peer('SILENT', 'silent');
    if (defined $key) {
        my $f = $t->dir . '/resend.key';
        open my $fh, '>', $f or die "$f: $!";
        print {$fh} length $key ? "$key\nsecond line\n" : '';
        close $fh;
    }
    $t->start;
    return $t;
}

my $t;

sub outbox {
    my ($inst) = @_;
    my ($r, $doc) = $inst->json(GET => '/mitte-admin/outbox');
    json_answer_ok($r, $doc, 200, 'GET /mitte-admin/outbox');
    ok(ref $doc->{sends} eq 'ARRAY', 'sends is an array');
    return $doc->{sends} || [];
}

sub sends_of {
    my ($inst, $user) = @_;
    return [sort { $a->{channel} cmp $b->{channel}
                   || $a->{notificationId} cmp $b->{notificationId} }
            grep { ($_->{user} // '') eq $user } @{ outbox($inst) }];
}

sub notes_of {
    my ($inst, $user) = @_;
    my ($r, $doc) = $inst->json(GET => '/mitte/notifications',
                                headers => { 'X-Mitte-User' => $user });
    json_answer_ok($r, $doc, 200, "notifications of $user");
    return $doc->{notifications} || [];
}

sub prefs {
    my ($inst, $user, $body, $label) = @_;
    my ($r, $doc) = $inst->json(PATCH => '/mitte/preferences',
                                content => $body,
                                headers => { 'X-Mitte-User' => $user });
    json_answer_ok($r, $doc, 200, $label);
    return $doc;
}

sub get_prefs {
    my ($inst, $user) = @_;
    my ($r, $doc) = $inst->json(GET => '/mitte/preferences',
                                headers => { 'X-Mitte-User' => $user });
    json_answer_ok($r, $doc, 200, "GET the preferences of $user");
    return $doc;
}

# the shape and values of one send
sub check_send {
    my ($s, $label, %want) = @_;
    unless (ok(ref $s eq 'HASH', "$label: present")) {
        return 0;
    }
    my @keys = sort keys %$s;
    my $ok = is("@keys", 'attempts channel lastError notificationId state'
                         . ' target updatedAt user', "$label: the keys");
    $ok &= ok(is_number($s->{attempts}), "$label: attempts is a number");
    my $at = iso_parse($s->{updatedAt});
    $ok &= ok(defined $at && $at >= int($T0) - 1 && $at <= time() + 1,
              "$label: updatedAt is ISO-8601 with ms, in the test")
        or diag('updatedAt ' . ($s->{updatedAt} // 'null'));
    for my $k (qw(notificationId user channel target)) {
        $ok &= is($s->{$k}, $want{$k}, "$label: $k") if exists $want{$k};
    }
    $ok &= is($s->{state}, 'pending', "$label: state pending");
    $ok &= is($s->{attempts}, 0, "$label: attempts 0");
    $ok &= ok(exists $s->{lastError} && !defined $s->{lastError},
              "$label: lastError null");
    return $ok;
}

sub pending_metrics {
    my ($inst) = @_;
    my ($r, $m) = $inst->metrics;
    return ($m->{'mitte_outbox_pending{channel="email"}'},
            $m->{'mitte_outbox_pending{channel="webhook"}'});
}

# a failed delivery of USER (a DOWN), or a success (a RECOVERED after one)
sub fail_dlv {
    my ($inst, $user, $slug, %h) = @_;
    my $r = $inst->deliver($user, "/hooks/$slug?status=503", headers => \%h);
    is($r->{status}, 503, "$user: a failed delivery");
}
sub succeed {
    my ($inst, $user, $slug, %h) = @_;
    my $r = $inst->deliver($user, "/hooks/$slug?status=200", headers => \%h);
    is($r->{status}, 200, "$user: a successful delivery");
}


# ---- with a key -------------------------------------------------------------

$t = instance('re_test_0123456789abcdef');
my $hook = "http://$t->{silent}";

is_deeply(outbox($t), [], 'an empty outbox at first');
is_deeply([pending_metrics($t)], [0, 0], 'metrics: nothing pending');

# ann: the address from mitte_user_email on her deliveries
fail_dlv($t, 'ann', 'oa', 'X-Email' => 'ann@example.com');
my $notes = notes_of($t, 'ann');
is(scalar @$notes, 1, 'ann: one notification');
is($notes->[0]{type}, 'ENDPOINT_DOWN', 'ann: ENDPOINT_DOWN');
my $sends = sends_of($t, 'ann');
is(scalar @$sends, 1, 'ann: one send');
check_send($sends->[0], 'ann: the email', notificationId => $notes->[0]{id},
           user => 'ann', channel => 'email', target => 'ann@example.com');
is_deeply([pending_metrics($t)], [1, 0], 'metrics: 1 email pending');

# ben: the address set by the operator
{
    my ($r, $doc) = $t->json(PUT => '/mitte-admin/users/ben',
                             content => { email => 'ben@example.com' });
    json_answer_ok($r, $doc, 200, 'PUT /mitte-admin/users/ben');
}
fail_dlv($t, 'ben', 'ob');
$notes = notes_of($t, 'ben');
$sends = sends_of($t, 'ben');
is(scalar @$sends, 1, 'ben: one send');
check_send($sends->[0], 'ben: the email', notificationId => $notes->[0]{id},
           user => 'ben', channel => 'email', target => 'ben@example.com');

# one send per notification: a RECOVERED and a DOWN more for ann
succeed($t, 'ann', 'oa', 'X-Email' => 'ann@example.com');
fail_dlv($t, 'ann', 'oa', 'X-Email' => 'ann@example.com');
$notes = notes_of($t, 'ann');
is(scalar @$notes, 3, 'ann: three notifications');
$sends = sends_of($t, 'ann');
is(scalar @$sends, 3, 'ann: three sends');
is_deeply([sort map { $_->{notificationId} } @$sends],
          [sort map { $_->{id} } @$notes],
          'ann: one email per notification');
check_send($_, 'ann: an email', user => 'ann', channel => 'email',
           target => 'ann@example.com') for @$sends;

# cat: a webhook too; its secret never shows
my $secret = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';
prefs($t, 'cat', { webhook => { enabled => JSON::PP::true,
                                url => "$hook/cat", secret => $secret } },
      'cat: a webhook');
fail_dlv($t, 'cat', 'oc', 'X-Email' => 'cat@example.com');
$notes = notes_of($t, 'cat');
$sends = sends_of($t, 'cat');
is(scalar @$sends, 2, 'cat: two sends');
check_send($sends->[0], 'cat: the email', notificationId => $notes->[0]{id},
           user => 'cat', channel => 'email', target => 'cat@example.com');
check_send($sends->[1], 'cat: the webhook', notificationId => $notes->[0]{id},
           user => 'cat', channel => 'webhook',
           target => "$hook/cat");
{
    my $r = $t->get('/mitte-admin/outbox');
    unlike($r->{content}, qr/MfKQ9r8G|whsec_/,
           'the outbox does not show the secret');
}
is_deeply([pending_metrics($t)], [5, 1],
          'metrics: 5 emails and 1 webhook pending');

# dan: ENDPOINT_DOWN switched off: in-app only; RECOVERED still routed
prefs($t, 'dan', { types => { ENDPOINT_DOWN => JSON::PP::false } },
      'dan: ENDPOINT_DOWN off');
fail_dlv($t, 'dan', 'od', 'X-Email' => 'dan@example.com');
$notes = notes_of($t, 'dan');
is_deeply([map { $_->{type} } @$notes], ['ENDPOINT_DOWN'],
          'dan: the in-app ENDPOINT_DOWN is there');
is_deeply(sends_of($t, 'dan'), [], 'dan: no send for a type switched off');
succeed($t, 'dan', 'od', 'X-Email' => 'dan@example.com');
$notes = notes_of($t, 'dan');
$sends = sends_of($t, 'dan');
is(scalar @$sends, 1, 'dan: one send, for ENDPOINT_RECOVERED');
check_send($sends->[0], 'dan: the email', notificationId => $notes->[0]{id},
           user => 'dan', channel => 'email', target => 'dan@example.com');
is($notes->[0]{type}, 'ENDPOINT_RECOVERED', 'dan: the newest is RECOVERED');

# eve: email disabled, webhook on: the webhook only
prefs($t, 'eve', { email => { enabled => JSON::PP::false },
                   webhook => { enabled => JSON::PP::true,
                                url => "$hook/eve/in",
                                format => 'discord' } },
      'eve: email off, a webhook');
fail_dlv($t, 'eve', 'oe', 'X-Email' => 'eve@example.com');
$notes = notes_of($t, 'eve');
$sends = sends_of($t, 'eve');
is(scalar @$sends, 1, 'eve: one send');
check_send($sends->[0], 'eve: the webhook', notificationId => $notes->[0]{id},
           user => 'eve', channel => 'webhook',
           target => "$hook/eve/in");

# fay: the address of her preferences wins over mitte_user_email
prefs($t, 'fay', { email => { address => 'fay.prefs@example.com' } },
      'fay: an address');
fail_dlv($t, 'fay', 'of', 'X-Email' => 'fay@example.com');
$notes = notes_of($t, 'fay');
$sends = sends_of($t, 'fay');
is(scalar @$sends, 1, 'fay: one send');
check_send($sends->[0], 'fay: the email', notificationId => $notes->[0]{id},
           user => 'fay', channel => 'email',
           target => 'fay.prefs@example.com');

# gus: no address anywhere: no email
fail_dlv($t, 'gus', 'og');
is(scalar @{ notes_of($t, 'gus') }, 1, 'gus: the in-app notification');
is_deeply(sends_of($t, 'gus'), [], 'gus: no address, no send');

# hal: a webhook, but ENDPOINT_DOWN off: neither channel
prefs($t, 'hal', { webhook => { enabled => JSON::PP::true,
                                url => 'https://hooks.example.org/hal' },
                   types => { ENDPOINT_DOWN => JSON::PP::false } },
      'hal: a webhook, ENDPOINT_DOWN off');
fail_dlv($t, 'hal', 'oh', 'X-Email' => 'hal@example.com');
is(scalar @{ notes_of($t, 'hal') }, 1, 'hal: the in-app notification');
is_deeply(sends_of($t, 'hal'), [], 'hal: no email, no webhook');

# ivy: a webhook enabled, then disabled: no webhook send
prefs($t, 'ivy', { webhook => { enabled => JSON::PP::true,
                                url => 'https://hooks.example.org/ivy' } },
      'ivy: a webhook');
prefs($t, 'ivy', { webhook => { enabled => JSON::PP::false } },
      'ivy: the webhook disabled');
fail_dlv($t, 'ivy', 'oi');
is_deeply(sends_of($t, 'ivy'), [], 'ivy: a disabled webhook: no send');

# every send is accounted for, and the metrics match
my $all = outbox($t);
is(scalar @$all, 9, "nine sends in all") or diag(json_encode($all));
my $pe = grep { $_->{channel} eq 'email' && $_->{state} eq 'pending' } @$all;
my $pw = grep { $_->{channel} eq 'webhook' && $_->{state} eq 'pending' } @$all;
is_deeply([$pe, $pw], [7, 2], 'seven emails and two webhooks pending');
is_deeply([pending_metrics($t)], [$pe, $pw],
          'metrics: mitte_outbox_pending matches the outbox');

# ---- a reload keeps notifications, preferences, pending sends ---------------

my @users = qw(ann ben cat dan eve fay gus hal ivy);
my %before = map { $_ => notes_of($t, $_) } @users;
my %prefs_before = map { $_ => get_prefs($t, $_) } @users;
# the sends, but for updatedAt: a send under way when its worker exits goes
# back to pending and is taken again (a new updatedAt)
sub sends_sorted {
    my ($inst) = @_;
    return [map { my %s = %$_; delete $s{updatedAt}; \%s }
            sort { $a->{notificationId} cmp $b->{notificationId}
                   || $a->{channel} cmp $b->{channel} } @{ outbox($inst) }];
}
my $outbox_before = sends_sorted($t);

$t->reload;

for my $u (@users) {
    is_deeply(notes_of($t, $u), $before{$u},
              "$u: the notifications survive a reload");
    is_deeply(get_prefs($t, $u), $prefs_before{$u},
              "$u: the preferences survive a reload");
}
is_deeply(sends_sorted($t), $outbox_before,
          'the pending sends survive a reload');
check_send($_, 'after the reload: ' . $_->{user} . ' ' . $_->{channel})
    for @{ outbox($t) };
is_deeply([pending_metrics($t)], [7, 2], 'metrics after the reload');

# the preferences still route after the reload
succeed($t, 'cat', 'oc', 'X-Email' => 'cat@example.com');
$notes = notes_of($t, 'cat');
is_deeply([map { $_->{type} } @$notes],
          ['ENDPOINT_RECOVERED', 'ENDPOINT_DOWN'], 'cat: RECOVERED');
$sends = [grep { $_->{notificationId} eq $notes->[0]{id} }
          @{ sends_of($t, 'cat') }];
is(scalar @$sends, 2, 'cat: an email and a webhook for the new one');
check_send($sends->[0], 'cat: the new email', channel => 'email',
           target => 'cat@example.com', user => 'cat');
check_send($sends->[1], 'cat: the new webhook', channel => 'webhook',
           target => "$hook/cat", user => 'cat');

$t->stop;


# ---- no key file, an empty key file: no email channel -----------------------

for my $case ([undef, 'no mitte_email_key_file'], ['', 'an empty key file']) {
    my ($key, $what) = @$case;
    $T0 = time();
    my $n = instance($key);
    my $nhook = "http://$n->{silent}/kim";
    prefs($n, 'kim', { webhook => { enabled => JSON::PP::true,
                                    url => $nhook } },
          "$what: kim has a webhook");
    fail_dlv($n, 'kim', 'ok', 'X-Email' => 'kim@example.com');
    fail_dlv($n, 'lou', 'ol', 'X-Email' => 'lou@example.com');
    {
        my ($r, $doc) = $n->json(PUT => '/mitte-admin/users/max',
                                 content => { email => 'max@example.com' });
        json_answer_ok($r, $doc, 200, "$what: PUT /mitte-admin/users/max");
    }
    fail_dlv($n, 'max', 'om');
    is(scalar @{ notes_of($n, $_) }, 1, "$what: $_ has the in-app one")
        for qw(kim lou max);
    my $notes = notes_of($n, 'kim');
    my $sends = outbox($n);
    is(scalar @$sends, 1, "$what: one send in all, kim's webhook");
    check_send($sends->[0], "$what: kim's webhook",
               notificationId => $notes->[0]{id}, user => 'kim',
               channel => 'webhook',
               target => $nhook);
    is_deeply([pending_metrics($n)], [0, 1],
              "$what: metrics: no email, one webhook pending");
    $n->stop;
}

done_testing();
