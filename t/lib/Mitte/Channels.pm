package Mitte::Channels;

# Helpers of the email and webhook tests (t/14-email.t, t/15-webhook.t,
# t/16-ssrf.t): a configuration with preferences, notifications, the
# operator API and proxy locations; raising ENDPOINT_DOWN for a user;
# reading the outbox; Standard Webhooks signatures. Core Perl only.
#
#   my $t = Mitte::Test->new(http => channels_http(threshold => 1,
#                                                  extra => '...'));
#   set_prefs($t, 'alice', {webhook => {...}});     # 200 or a diag
#   my $n = raise_down($t, 'alice', 'ep-1');        # the notification
#   my $s = wait_send($t, $n->{id}, 'webhook', sub { $_[0]{state} ne
#                                                   'pending' });
#   ok(signature_ok($secret, $id, $ts, $body, $header));

use strict;
use warnings;

use Digest::SHA qw(hmac_sha256);
use Exporter qw(import);
use MIME::Base64 qw(encode_base64 decode_base64);
use Test::More;
use Time::HiRes qw(time sleep);

use Mitte::Test qw(json_decode);

our @EXPORT_OK = qw(
    channels_http set_prefs raise_down notifications outbox sends_of
    wait_send wait_sends signature sign_ok
);
our %EXPORT_TAGS = (all => \@EXPORT_OK);

# channels_http(threshold => 1, extra => TEXT, zone => '16m'): the http{}
# text; EXTRA holds the channel directives of the test. Deliveries go to
# /hooks/<slug> (user X-Mitte-User, plan X-Mitte-Plan, email X-Mitte-Email),
# preferences to /mitte/preferences, notifications to /mitte/notifications
# (user X-Mitte-User), the operator API is /mitte-admin/.
sub channels_http {
    my (%a) = @_;
    my $threshold = $a{threshold} || 1;
    my $extra = $a{extra} // '';
    my $zone = $a{zone} || '16m';
    return <<"END";
    mitte_zone m:$zone;
    mitte_endpoint_down threshold=$threshold;
$extra
    server {
        listen 127.0.0.1:%%PORT%%;

        location ~ ^/hooks/(?<slug>[^/]+)\$ {
            mitte_endpoint \$slug;
            mitte_user \$http_x_mitte_user;
            mitte_user_plan \$http_x_mitte_plan;
            mitte_user_email \$http_x_mitte_email;
            proxy_pass http://%%UPSTREAM%%;
        }
        location /mitte/ {
            mitte_user \$http_x_mitte_user;
            location = /mitte/preferences   { mitte_preferences; }
            location   /mitte/notifications { mitte_notifications; }
        }
        location = /mitte/all {
            mitte_stats all;
        }
        location /mitte-admin/ {
            mitte_admin;
        }
    }
END
}

# set_prefs(T, USER, DOC): PUT; (response, decoded body)
sub set_prefs {
    my ($t, $user, $doc) = @_;
    return $t->json(PUT => '/mitte/preferences',
                    headers => { 'X-Mitte-User' => $user },
                    content => $doc);
}

# the user's in-app notifications, newest first
sub notifications {
    my ($t, $user) = @_;
    my ($r, $doc) = $t->json(GET => '/mitte/notifications?limit=100',
                             headers => { 'X-Mitte-User' => $user });
    return ref $doc eq 'HASH' ? @{ $doc->{notifications} || [] } : ();
}

# raise_down(T, USER, SLUG, FAILURES, HEADERS): FAILURES (default 1) failed
# deliveries of SLUG as USER (with HEADERS, a hash reference: X-Mitte-Plan,
# X-Mitte-Email), then waits for the ENDPOINT_DOWN notification of SLUG;
# returns it (undef after 5s)
sub raise_down {
    my ($t, $user, $slug, $failures, $headers) = @_;
    $failures ||= 1;
    for (1 .. $failures) {
        my $r = $t->post_as($user, "/hooks/$slug?status=503",
                            headers => $headers || {});
        diag("delivery to $slug: $r->{status}") unless $r->{status} == 503;
    }
    my $deadline = time() + 5;
    while (1) {
        my ($n) = grep {
            $_->{type} eq 'ENDPOINT_DOWN' && ($_->{endpointSlug} // '') eq $slug
        } notifications($t, $user);
        return $n if $n;
        if (time() > $deadline) {
            diag("no ENDPOINT_DOWN for $slug of $user after 5s");
            return undef;
        }
        sleep 0.02;
    }
}

# the outbox's sends
sub outbox {
    my ($t) = @_;
    my ($r, $doc) = $t->json(GET => '/mitte-admin/outbox');
    return ref $doc eq 'HASH' ? @{ $doc->{sends} || [] } : ();
}

# the sends of notification ID (on CHANNEL, if given)
sub sends_of {
    my ($t, $id, $channel) = @_;
    return grep {
        $_->{notificationId} eq $id
            && (!defined $channel || $_->{channel} eq $channel)
    } outbox($t);
}

# wait_send(T, ID, CHANNEL, COND, TIMEOUT): polls the outbox until the send
# of notification ID on CHANNEL satisfies COND (default: no longer
# pending); returns it as last seen (undef: never seen)
sub wait_send {
    my ($t, $id, $channel, $cond, $timeout) = @_;
    $cond ||= sub { $_[0]{state} ne 'pending' };
    my $deadline = time() + ($timeout || 10);
    my $s;
    while (1) {
        ($s) = sends_of($t, $id, $channel);
        return $s if $s && $cond->($s);
        last if time() > $deadline;
        sleep 0.05;
    }
    diag("send of $id on $channel: condition not met; last seen: "
         . ($s ? Mitte::Test::json_encode($s) : 'none'));
    return $s;
}

# wait_sends(T, COND, N, TIMEOUT): polls until N sends satisfy COND
sub wait_sends {
    my ($t, $cond, $n, $timeout) = @_;
    my $deadline = time() + ($timeout || 10);
    while (1) {
        my @s = grep { $cond->($_) } outbox($t);
        return @s if @s >= $n || time() > $deadline;
        sleep 0.05;
    }
}

# signature(SECRET, ID, TS, BODY): "v1,<base64>" as Standard Webhooks signs
sub signature {
    my ($secret, $id, $ts, $body) = @_;
    my $key = $secret =~ /^whsec_(.*)$/s ? decode_base64($1) : $secret;
    my $mac = hmac_sha256("$id.$ts.$body", $key);
    return 'v1,' . encode_base64($mac, '');
}

# sign_ok(SECRET, REQUEST, LABEL): the request's webhook-signature header
# holds a v1 signature of its id, timestamp and body with SECRET
sub sign_ok {
    my ($secret, $req, $label) = @_;
    my $h = $req->{headers};
    my $want = signature($secret, $h->{'webhook-id'} // '',
                         $h->{'webhook-timestamp'} // '', $req->{body});
    my @got = split / /, $h->{'webhook-signature'} // '';
    return ok((grep { $_ eq $want } @got), "$label: signature verifies")
        || diag("webhook-signature: " . ($h->{'webhook-signature'} // 'none')
                . "\nexpected: $want");
}

1;
