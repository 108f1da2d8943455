#!/usr/bin/perl

# The bad-input table (issue 11): for every module location, what a probe
# would send, each with its expected status (and error code), and at the
# end a check that nothing was stored: endpoints, users, preferences and
# notifications compared whole with what they were before. Then the
# transports: HTTP/1.0, HTTP/2, chunked bodies (good, malformed, over
# 64 KiB), a slow client, a client that stalls mid-body.

use strict;
use warnings;

use Test::More;
use IO::Socket::INET;
use Time::HiRes qw(sleep time);
use Mitte::Test qw(:all);

require_module();

my $t = Mitte::Test->new(all => '/mitte-admin/endpoints',
                         allow => [qr/client timed out/,
                                   qr/client sent invalid chunked body/],
                         http => <<'END');
    mitte_zone m:2m;
    mitte_endpoint_down threshold=1;

    server {
        listen 127.0.0.1:%%PORT%%;
        listen 127.0.0.1:%%PORT2%% http2;
        client_body_timeout 1s;

        location ~ ^/hooks/(?<slug>[^/]+)$ {
            mitte_endpoint $slug;
            mitte_user $http_x_mitte_user;
            proxy_pass http://%%UPSTREAM%%;
        }
        location /mitte/ {
            mitte_user $http_x_mitte_user;
            location = /mitte/events        { mitte_sse; }
            location = /mitte/preferences   { mitte_preferences; }
            location   /mitte/notifications { mitte_notifications; }
            location = /mitte/stats         { mitte_stats; }
        }
        location /mitte-admin/ {
            mitte_admin;
        }
    }
END

$t->start;

# a user with notifications, an endpoint, a user record
$t->deliver('alice', '/hooks/a?status=503');
$t->deliver('alice', '/hooks/a?status=200');
is($t->request(PUT => '/mitte-admin/users/alice',
               content => '{"plan":"pro"}')->{status}, 200, 'alice is pro');

sub snapshot {
    my %s;
    my %as = (headers => { 'X-Mitte-User' => 'alice' });
    $s{endpoints} = $t->get('/mitte-admin/endpoints')->{content};
    $s{alice} = $t->get('/mitte-admin/users/alice')->{content};
    $s{prefs} = $t->request(GET => '/mitte/preferences', %as)->{content};
    $s{notes} = $t->request(GET => '/mitte/notifications', %as)->{content};
    $s{stats} = $t->request(GET => '/mitte/stats', %as)->{content};
    return \%s;
}

my $before = snapshot();

my $h = time();
my $NUL = "\0";
my $big = '{"name":"' . ('x' x 70000) . '"}';
my $hours10k = json_encode({ hours => [map {
    { hour => ($h - $_ * 3600), requests => 1, failures => 0 }
} 0 .. 9999] });

# [label, method, path, body (undef: none), status, error code]
my @table = (
    # preferences
    ['prefs: malformed', PUT => '/mitte/preferences', '{"types":', 400,
     'invalid_json'],
    ['prefs: truncated', PUT => '/mitte/preferences',
     '{"email":{"address":"a@b.c"', 400, 'invalid_json'],
    ['prefs: over 64 KiB', PUT => '/mitte/preferences', $big, 413,
     'too_large'],
    ['prefs: NUL byte raw', PUT => '/mitte/preferences',
     qq({"email":{"address":"a${NUL}\@b.c"}}), 400, 'invalid_json'],
    ['prefs: \u0000', PUT => '/mitte/preferences',
     '{"email":{"address":"a\u0000@b.c"}}', 400, 'invalid_field'],
    ['prefs: a string for a switch', PATCH => '/mitte/preferences',
     '{"types":{"QUOTA_WARNING":"no"}}', 400, 'invalid_field'],
    ['prefs: a number for a switch', PATCH => '/mitte/preferences',
     '{"email":{"enabled":0}}', 400, 'invalid_field'],
    ['prefs: a string for an object', PUT => '/mitte/preferences',
     '{"email":"x"}', 400, 'invalid_field'],
    ['prefs: a number for a url', PUT => '/mitte/preferences',
     '{"webhook":{"url":5}}', 400, 'invalid_field'],
    ['prefs: duplicate keys', PUT => '/mitte/preferences',
     '{"email":{"enabled":false},"email":{"enabled":true}}', 400,
     'invalid_json'],
    ['prefs: duplicate nested keys', PATCH => '/mitte/preferences',
     '{"types":{"QUOTA_WARNING":false,"QUOTA_WARNING":true}}', 400,
     'invalid_json'],
    ['prefs: CR LF in the address', PUT => '/mitte/preferences',
     '{"email":{"address":"a\r\nBcc: x@y.z"}}', 400, 'invalid_field'],
    ['prefs: raw CR LF in the address', PUT => '/mitte/preferences',
     qq({"email":{"address":"a\r\nBcc: x\@y.z"}}), 400, 'invalid_json'],
    ['prefs: overlong UTF-8', PUT => '/mitte/preferences',
     qq({"email":{"address":"\xc0\xae\@b.c"}}), 400, 'invalid_json'],
    ['prefs: a huge number', PATCH => '/mitte/preferences',
     '{"types":{"QUOTA_WARNING":1e999}}', 400, 'invalid_field'],
    ['prefs: deep nesting', PUT => '/mitte/preferences',
     ('[' x 5000) . (']' x 5000), 400, 'invalid_json'],
    # notifications
    ['read: malformed', POST => '/mitte/notifications/read', '{"ids":[',
     400, 'invalid_json'],
    ['read: a number for ids', POST => '/mitte/notifications/read',
     '{"ids":5}', 400, 'invalid_field'],
    ['read: a string for all', POST => '/mitte/notifications/read',
     '{"all":"true"}', 400, 'invalid_field'],
    ['read: duplicate keys', POST => '/mitte/notifications/read',
     '{"all":false,"all":true}', 400, 'invalid_json'],
    ['read: NUL then junk', POST => '/mitte/notifications/read',
     qq({"all":true}${NUL}junk), 400, 'invalid_json'],
    ['read: over 64 KiB', POST => '/mitte/notifications/read', $big, 413,
     'too_large'],
    ['notifications: limit -1', GET => '/mitte/notifications?limit=-1',
     undef, 400, 'invalid_field'],
    ['notifications: a huge limit',
     GET => '/mitte/notifications?limit=99999999999999999999', undef, 400,
     'invalid_field'],
    ['notifications: limit %00', GET => '/mitte/notifications?limit=%00',
     undef, 400, 'invalid_field'],
    ['notifications: before garbage',
     GET => '/mitte/notifications?before=zz', undef, 400, 'invalid_field'],
    ['notifications: unread=2', GET => '/mitte/notifications?unread=2',
     undef, 400, 'invalid_field'],
    # statistics
    ['stats: endpoint %00', GET => '/mitte/stats?endpoint=%00', undef, 400,
     'invalid_field'],
    ['stats: endpoint overlong UTF-8',
     GET => '/mitte/stats?endpoint=%C0%AE', undef, 400, 'invalid_field'],
    ['stats: endpoint too long', GET => '/mitte/stats?endpoint=' . 'a' x 65,
     undef, 400, 'invalid_field'],
    # operator API: endpoints
    ['endpoint: slug with %00', PUT => '/mitte-admin/endpoints/a%00b',
     '{"name":"x"}', 400, undef],
    ['endpoint: slug overlong UTF-8',
     PUT => '/mitte-admin/endpoints/%C0%AE%C0%AE', '{"name":"x"}', 400,
     'invalid_field'],
    ['endpoint: slug UTF-8', PUT => '/mitte-admin/endpoints/caf%C3%A9',
     '{"name":"x"}', 400, 'invalid_field'],
    ['endpoint: slug with CR LF', PUT => '/mitte-admin/endpoints/a%0D%0Ab',
     '{"name":"x"}', 400, 'invalid_field'],
    ['endpoint: slug of 65 bytes',
     PUT => '/mitte-admin/endpoints/' . ('s' x 65), '{"name":"x"}', 400,
     'invalid_field'],
    ['endpoint: an encoded slash', PUT => '/mitte-admin/endpoints/a%2Fb',
     '{"name":"x"}', 404, 'not_found'],
    ['endpoint: CR LF in the name', PUT => '/mitte-admin/endpoints/n1',
     '{"name":"a\r\nb"}', 400, 'invalid_field'],
    ['endpoint: \u0001 in the name', PUT => '/mitte-admin/endpoints/n1',
     '{"name":"a\u0001b"}', 400, 'invalid_field'],
    ['endpoint: overlong UTF-8 in the name',
     PUT => '/mitte-admin/endpoints/n1', qq({"name":"\xc0\xae"}), 400,
     'invalid_json'],
    ['endpoint: a surrogate in the name', PUT => '/mitte-admin/endpoints/n1',
     qq({"name":"\xed\xa0\x80"}), 400, 'invalid_json'],
    ['endpoint: a name of 129 bytes', PUT => '/mitte-admin/endpoints/n1',
     '{"name":"' . ('n' x 129) . '"}', 400, 'invalid_field'],
    ['endpoint: \u0000 in the name', PUT => '/mitte-admin/endpoints/n1',
     '{"name":"a\u0000b"}', 400, 'invalid_field'],
    ['endpoint: duplicate keys', PUT => '/mitte-admin/endpoints/n1',
     '{"name":"a","name":"b"}', 400, 'invalid_json'],
    ['endpoint: CR LF in the user', PUT => '/mitte-admin/endpoints/n1',
     '{"user":"bob\r\nX: y"}', 400, 'invalid_field'],
    ['endpoint: a huge count', PUT => '/mitte-admin/endpoints/n1',
     json_encode({ hours => [{ hour => $h, requests => 1e20,
                               failures => 0 }] }), 400, 'invalid_field'],
    ['endpoint: a negative count', PUT => '/mitte-admin/endpoints/n1',
     '{"hours":[{"hour":' . $h . ',"requests":-1,"failures":0}]}', 400,
     'invalid_field'],
    ['endpoint: a fractional count', PUT => '/mitte-admin/endpoints/n1',
     '{"hours":[{"hour":' . $h . ',"requests":1.5,"failures":0}]}', 400,
     'invalid_field'],
    ['endpoint: failures above requests', PUT => '/mitte-admin/endpoints/n1',
     '{"hours":[{"hour":' . $h . ',"requests":1,"failures":2}]}', 400,
     'invalid_field'],
    ['endpoint: a negative hour', PUT => '/mitte-admin/endpoints/n1',
     '{"hours":[{"hour":-3600,"requests":1,"failures":0}]}', 400,
     'invalid_field'],
    ['endpoint: a bad ISO hour', PUT => '/mitte-admin/endpoints/n1',
     '{"hours":[{"hour":"2026-13-45T99:00:00Z","requests":1,'
     . '"failures":0}]}', 400, 'invalid_field'],
    ['endpoint: hours not an array', PUT => '/mitte-admin/endpoints/n1',
     '{"hours":{"hour":0}}', 400, 'invalid_field'],
    ['endpoint: 10,000 hours of history', PUT => '/mitte-admin/endpoints/n1',
     $hours10k, 413, 'too_large'],
    ['endpoint: an unknown field', PUT => '/mitte-admin/endpoints/n1',
     '{"nmae":"x"}', 400, 'invalid_field'],
    ['endpoint: DELETE of none', DELETE => '/mitte-admin/endpoints/none',
     undef, 404, 'not_found'],
    # operator API: users
    ['user: id with CR LF', PUT => '/mitte-admin/users/a%0D%0Ab',
     '{"plan":"pro"}', 400, 'invalid_field'],
    ['user: id with a NUL', PUT => '/mitte-admin/users/a%00b',
     '{"plan":"pro"}', 400, undef],
    ['user: id of 65 bytes', PUT => '/mitte-admin/users/' . ('u' x 65),
     '{"plan":"pro"}', 400, 'invalid_field'],
    ['user: CR LF in the email', PUT => '/mitte-admin/users/alice',
     '{"email":"a\r\n@b.c"}', 400, 'invalid_field'],
    ['user: an unknown plan', PUT => '/mitte-admin/users/alice',
     '{"plan":"gold"}', 400, 'invalid_field'],
    ['user: a number for the plan', PUT => '/mitte-admin/users/alice',
     '{"plan":1}', 400, 'invalid_field'],
    ['user: a negative trial end', PUT => '/mitte-admin/users/alice',
     '{"trialEndsAt":-5}', 400, 'invalid_field'],
    ['user: a huge trial end', PUT => '/mitte-admin/users/alice',
     '{"trialEndsAt":1e300}', 400, 'invalid_field'],
    ['user: duplicate keys', PUT => '/mitte-admin/users/alice',
     '{"plan":"free","plan":"pro"}', 400, 'invalid_json'],
    ['user: over 64 KiB', PUT => '/mitte-admin/users/alice', $big, 413,
     'too_large'],
    # methods
    ['sse: POST', POST => '/mitte/events', '{}', 405, 'method_not_allowed'],
    ['stats: DELETE', DELETE => '/mitte/stats', undef, 405,
     'method_not_allowed'],
    ['metrics: POST', POST => '/mitte-admin/metrics', '{}', 405,
     'method_not_allowed'],
);

for my $row (@table) {
    my ($label, $method, $path, $body, $status, $code) = @$row;
    my %opt = (headers => { 'X-Mitte-User' => 'alice',
                            'Content-Type' => 'application/json' });
    $opt{content} = $body if defined $body;
    my $r = $t->request($method, $path, %opt);
    if (defined $code) {
        my $doc = eval { json_decode($r->{content}) };
        error_ok($r, $doc, $status, $code, $label);
    } else {
        # refused by nginx itself, before the module
        is($r->{status}, $status, "$label: status $status");
    }
}

is_deeply(snapshot(), $before, 'the table stored nothing');

# ---- transports -------------------------------------------------------------

# HTTP/1.0: a body by Content-Length, answered; none without one
my $r = $t->raw("PUT /mitte-admin/endpoints/h10 HTTP/1.0\r\n"
                . "Content-Length: 9\r\n\r\n{\"name\":}");
is($r->{status}, 400, 'HTTP/1.0: a bad body is 400');
$r = $t->raw("PUT /mitte-admin/endpoints/h10 HTTP/1.0\r\n\r\n");
is($r->{status}, 400, 'HTTP/1.0 without Content-Length: an empty body, 400');
like($r->{content}, qr/invalid_json/, 'HTTP/1.0 without a body: invalid_json');
$r = $t->raw("GET /mitte/stats HTTP/1.0\r\nX-Mitte-User: alice\r\n\r\n");
is($r->{status}, 200, 'HTTP/1.0: a GET is answered');

# chunked: good, malformed, over 64 KiB
$r = $t->chunked(PUT => '/mitte-admin/endpoints/ch', '{"name":"Chunked"}', 3);
is($r->{status}, 200, 'chunked: a good body in 3-byte chunks is taken');
$r = $t->raw("PUT /mitte-admin/endpoints/ch2 HTTP/1.1\r\nHost: x\r\n"
             . "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
             . "zz\r\n{}\r\n0\r\n\r\n");
is($r->{status}, 400, 'chunked: bad chunk framing is 400');
$r = $t->chunked(PUT => '/mitte-admin/endpoints/ch3', $big, 4096);
is($r->{status}, 413, 'chunked: over 64 KiB is 413');

# HTTP/2 (prior knowledge), when curl is there
SKIP: {
    my $curl = `command -v curl 2>/dev/null`;
    chomp $curl;
    skip 'no curl', 3 unless $curl;
    my $url = 'http://127.0.0.1:' . $t->{port2};
    my $out = `$curl -s -o /dev/null -w '%{http_version} %{http_code}' \\
        --http2-prior-knowledge -X PUT -d '{"name":' \\
        $url/mitte-admin/endpoints/h2 2>&1`;
    is($out, '2 400', 'HTTP/2: a bad body is 400');
    $out = `$curl -s -o /dev/null -w '%{http_version} %{http_code}' \\
        --http2-prior-knowledge -X PUT -d '{"name":"Two"}' \\
        $url/mitte-admin/endpoints/h2 2>&1`;
    is($out, '2 200', 'HTTP/2: a good body is taken');
    $out = `$curl -s -o /dev/null -w '%{http_version} %{http_code}' \\
        --http2-prior-knowledge -H 'X-Mitte-User: alice' \\
        $url/mitte/notifications 2>&1`;
    is($out, '2 200', 'HTTP/2: a GET is answered');
}

# a slow client: the body a byte at a time, answered whole
{
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                  PeerPort => $t->port, Proto => 'tcp');
    my $body = '{"name":"Slow"}';
    syswrite $s, "PUT /mitte-admin/endpoints/slow HTTP/1.1\r\nHost: x\r\n"
        . "Connection: close\r\nContent-Length: " . length($body)
        . "\r\n\r\n";
    for my $c (split //, $body) {
        syswrite $s, $c;
        sleep 0.05;
    }
    my $in = '';
    while (sysread $s, $in, 4096, length $in) { }
    like($in, qr{^HTTP/1\.1 200 }, 'a slow client: answered 200');
}

# a client that stalls mid-body: 408 at client_body_timeout, not stored
{
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                  PeerPort => $t->port, Proto => 'tcp');
    syswrite $s, "PUT /mitte-admin/endpoints/stall HTTP/1.1\r\nHost: x\r\n"
        . "Content-Length: 100\r\n\r\n{\"name\":\"St";
    my $t0 = time();
    my $in = '';
    while (sysread $s, $in, 4096, length $in) { }
    ok(time() - $t0 < 10, 'a stalled client: cut in time');
    unlike($in, qr{^HTTP/1\.1 200 }, 'a stalled client: not answered 200');
}

my ($r2, $doc) = $t->json(GET => '/mitte-admin/endpoints');
is_deeply([sort map { $_->{slug} } @{ $doc->{endpoints} || [] }],
          [qw(a ch h2 slow)], 'only the good transports stored anything');

$t->stop;
done_testing();
