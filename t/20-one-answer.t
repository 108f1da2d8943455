#!/usr/bin/perl

# One answer per request (issue 11, defect 1): every answer of every module
# location, on every path, method and error, reads or discards the request
# body first, so that a body is never parsed as the next request of the
# connection. Each case is one write: a request whose body (by
# Content-Length, or chunked) is itself a whole request for /probe, then a
# last request for /end with "Connection: close". Exactly two answers must
# come back: the case's, then /end's; /probe must never be answered. The
# 413 case pads the smuggled request with a body of its own so that the
# request carrying it is over 64 KiB. Error log: no "pipelined request
# line" complaint (nginx reading a body as a request).

use strict;
use warnings;

use Test::More;
use IO::Socket::INET;
use Time::HiRes qw(time);
use Mitte::Test qw(:all);

require_module();

my $t = Mitte::Test->new(all => '/mitte-admin/endpoints',
                         allow => [qr/access forbidden by rule/],
                         http => <<'END');
    mitte_zone m:1m;
    mitte_quota free 1;

    server {
        listen 127.0.0.1:%%PORT%%;

        location = /probe { return 200 "SMUGGLED\n"; }
        location = /end   { return 200 "END\n"; }

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
        location /mitte-denied/ {
            deny all;
            mitte_admin;
        }
    }
END

$t->start;

# the quota of alice (free: 1) used up: her next delivery is refused
$t->deliver('alice', '/hooks/q?status=200');

my $SMUGGLED = "GET /probe HTTP/1.1\r\nHost: x\r\n\r\n";

# a smuggled request with a body of its own, LEN bytes in all
sub padded {
    my ($len) = @_;
    my $head = "POST /probe HTTP/1.1\r\nHost: x\r\nContent-Length: ";
    my $pad = $len - length($head) - 4 - 6;
    return $head . sprintf('%06d', $pad) . "\r\n\r\n" . ('p' x $pad);
}

# one write: METHOD PATH with BODY (chunked when asked), then GET /end
sub exchange {
    my ($method, $path, $body, %opt) = @_;
    my $head = "$method $path HTTP/1.1\r\nHost: 127.0.0.1\r\n";
    $head .= "X-Mitte-User: $opt{user}\r\n" if defined $opt{user};
    my $req;
    if ($opt{chunked}) {
        $req = $head . "Transfer-Encoding: chunked\r\n\r\n"
            . sprintf("%x\r\n", length $body) . $body . "\r\n0\r\n\r\n";
    } else {
        $req = $head . 'Content-Length: ' . length($body) . "\r\n\r\n"
            . $body;
    }
    $req .= "GET /end HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";

    local $SIG{PIPE} = 'IGNORE';
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                  PeerPort => $t->port, Proto => 'tcp',
                                  Timeout => 10)
        or return '';
    my $off = 0;
    while ($off < length $req) {
        my $n = syswrite $s, $req, 65536, $off;
        last unless $n;
        $off += $n;
    }
    my $in = '';
    my $deadline = time() + 10;
    while (time() < $deadline) {
        my $n = sysread $s, $in, 65536, length $in;
        last unless $n;
    }
    close $s;
    return $in;
}

# the statuses of the answers in TEXT, in order
sub statuses {
    my ($text) = @_;
    my @s;
    while ($text =~ m{(?:^|\n)HTTP/1\.[01] (\d{3}) }g) {
        push @s, $1;
    }
    return @s;
}

my $PUT_OK = '{"name":"x"}';

# [method, path, user, expected status, body (default: the smuggled
# request), label]
my @cases = (
    # the operator API
    [PUT    => '/mitte-admin/no-such-thing', undef, 404],
    [PUT    => '/mitte-admin/endpoints/..', undef, 404],
    [PUT    => '/mitte-admin/endpoints/a/b', undef, 404],
    [PATCH  => '/mitte-admin/nothing', undef, 404],
    [POST   => '/mitte-admin/nothing', undef, 404],
    [DELETE => '/mitte-admin/nothing', undef, 404],
    [GET    => '/mitte-admin/nothing', undef, 404],
    [PUT    => '/mitte-admin/metrics', undef, 405],
    [PUT    => '/mitte-admin/endpoints', undef, 405],
    [PUT    => '/mitte-admin/outbox', undef, 405],
    [PUT    => '/mitte-admin/sweep', undef, 405],
    [POST   => '/mitte-admin/users/bob', undef, 405],
    [PATCH  => '/mitte-admin/endpoints/a', undef, 405],
    [PUT    => '/mitte-admin/endpoints/a', undef, 400],
    [PUT    => '/mitte-admin/users/bob', undef, 400],
    [PUT    => '/mitte-admin/endpoints/a', undef, 413, padded(70000)],
    [DELETE => '/mitte-admin/endpoints/none', undef, 404],
    [GET    => '/mitte-admin/metrics', undef, 200],
    [PUT    => '/mitte-denied/endpoints/a', undef, 403],
    # preferences
    [PUT    => '/mitte/preferences', undef, 401],
    [POST   => '/mitte/preferences', 'alice', 405],
    [PUT    => '/mitte/preferences', 'alice', 400],
    [PATCH  => '/mitte/preferences', 'alice', 413, padded(70000)],
    [GET    => '/mitte/preferences', 'alice', 200],
    # notifications
    [POST   => '/mitte/notifications/read', undef, 401],
    [PUT    => '/mitte/notifications', 'alice', 405],
    [PUT    => '/mitte/notifications/read', 'alice', 405],
    [PUT    => '/mitte/notifications/none', 'alice', 404],
    [POST   => '/mitte/notifications/read', 'alice', 400],
    [POST   => '/mitte/notifications/read', 'alice', 413, padded(70000)],
    [GET    => '/mitte/notifications', 'alice', 200],
    # statistics
    [PUT    => '/mitte/stats', 'alice', 405],
    [GET    => '/mitte/stats', undef, 401],
    [GET    => '/mitte/stats?endpoint=%2F', 'alice', 400],
    [GET    => '/mitte/stats', 'alice', 200],
    # event stream
    [POST   => '/mitte/events', 'alice', 405],
    [GET    => '/mitte/events', undef, 401],
    # a delivery refused by the quota
    [POST   => '/hooks/q', 'alice', 429],
);

for my $c (@cases) {
    my ($method, $path, $user, $want, $body) = @$c;
    $body //= $SMUGGLED;
    for my $chunked (0, 1) {
        my $label = "$method $path" . (defined $user ? " as $user" : '')
            . ($chunked ? ', chunked' : '') . " ($want)";
        my $in = exchange($method, $path, $body, user => $user,
                          chunked => $chunked);
        my @s = statuses($in);
        my $ok = is_deeply(\@s, [$want, 200], "$label: two answers, "
                           . "$want then /end's");
        $ok &= unlike($in, qr/SMUGGLED/, "$label: the body was no request");
        $ok &= like($in, qr/END\n$/, "$label: /end answered last");
        diag(substr($in, 0, 1500)) unless $ok;
    }
}

# nothing was stored by the refused writes
my ($r, $doc) = $t->json(GET => '/mitte-admin/endpoints');
is_deeply([map { $_->{slug} } @{ $doc->{endpoints} || [] }], ['q'],
          'no endpoint created by the refused writes');

my @piped = $t->log_lines('info', qr/pipelined request/);
ok(!@piped, 'error log: no body read as a pipelined request')
    or diag(join "\n", @piped[0 .. ($#piped > 4 ? 4 : $#piped)]);

$t->stop;
done_testing();
