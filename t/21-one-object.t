#!/usr/bin/perl

# Every request body is one JSON object, and nothing else (issue 11,
# defect 3): POST /mitte/notifications/read, PUT and PATCH
# /mitte/preferences, PUT /mitte-admin/endpoints/{slug} and PUT
# /mitte-admin/users/{id} answer 400 invalid_json to a body with anything
# but white space after the object (garbage, brackets, a second object, a
# NUL and more), to a truncated object and to what is not an object, and
# change nothing.

use strict;
use warnings;

use Test::More;
use Mitte::Test qw(:all);

require_module();

my $t = Mitte::Test->new(all => '/mitte-admin/endpoints', http => <<'END');
    mitte_zone m:2m;
    mitte_endpoint_down threshold=1;

    server {
        listen 127.0.0.1:%%PORT%%;

        location ~ ^/hooks/(?<slug>[^/]+)$ {
            mitte_endpoint $slug;
            mitte_user $http_x_mitte_user;
            proxy_pass http://%%UPSTREAM%%;
        }
        location /mitte/ {
            mitte_user $http_x_mitte_user;
            location = /mitte/preferences   { mitte_preferences; }
            location   /mitte/notifications { mitte_notifications; }
        }
        location /mitte-admin/ {
            mitte_admin;
        }
    }
END

$t->start;

# threshold=1: a failure raises ENDPOINT_DOWN, the next success RECOVERED
for my $s (503, 200, 503, 200) {
    $t->deliver('alice', "/hooks/a?status=$s");
}

sub notes {
    my ($r, $doc) = $t->json(GET => '/mitte/notifications',
                             headers => { 'X-Mitte-User' => 'alice' });
    return $doc || {};
}

my $before = notes();
is($before->{unread}, 4, 'alice has 4 unread notifications');
my $id = $before->{notifications}[0]{id};

my ($r, $prefs0) = $t->json(GET => '/mitte/preferences',
                            headers => { 'X-Mitte-User' => 'alice' });
my (undef, $eps0) = $t->json(GET => '/mitte-admin/endpoints');
my (undef, $user0) = $t->json(GET => '/mitte-admin/users/alice');

# a valid object, then what must make the whole body invalid
my %ok = (
    read     => '{"all":true}',
    ids      => qq({"ids":["$id"]}),
    prefs    => '{"types":{"QUOTA_WARNING":false}}',
    endpoint => '{"name":"Renamed"}',
    user     => '{"plan":"pro"}',
);

my @tails = (
    [' trailing garbage', 'garbage after the object'],
    [']]]]', 'brackets after the object'],
    ["\0junk", 'a NUL and junk after the object'],
    ["\0", 'a NUL after the object'],
    ['{}', 'a second object'],
    [',', 'a comma after the object'],
    ["\n\r\t x", 'white space then junk'],
);

sub bodies {
    my ($doc) = @_;
    my @b = map { [$doc . $_->[0], $_->[1]] } @tails;
    push @b, [substr($doc, 0, -1), 'the object truncated'],
             ["[$doc]", 'the object in an array'],
             ["\0$doc", 'a NUL before the object'],
             ['"x"', 'a string'],
             ['null', 'null'],
             ['', 'an empty body'];
    return @b;
}

my @targets = (
    [POST  => '/mitte/notifications/read', 'read', 'alice'],
    [POST  => '/mitte/notifications/read', 'ids', 'alice'],
    [PUT   => '/mitte/preferences', 'prefs', 'alice'],
    [PATCH => '/mitte/preferences', 'prefs', 'alice'],
    [PUT   => '/mitte-admin/endpoints/a', 'endpoint', undef],
    [PUT   => '/mitte-admin/endpoints/new', 'endpoint', undef],
    [PUT   => '/mitte-admin/users/alice', 'user', undef],
);

for my $tg (@targets) {
    my ($method, $path, $kind, $user) = @$tg;
    for my $b (bodies($ok{$kind})) {
        my ($body, $what) = @$b;
        my %h = (headers => { 'Content-Type' => 'application/json',
                              $user ? ('X-Mitte-User' => $user) : () },
                 content => $body);
        my ($r, $doc) = $t->json($method, $path, %h);
        error_ok($r, $doc, 400, 'invalid_json', "$method $path ($kind), $what");
    }
}

# the valid bodies are taken (the test can tell a refusal from a no-op)
my ($rv, $dv) = $t->json(POST => '/mitte/notifications/read',
                         headers => { 'X-Mitte-User' => 'bob' },
                         content => $ok{read});
json_answer_ok($rv, $dv, 200, 'a valid body alone is taken');

is_deeply(notes(), $before, 'notifications: nothing marked read');
my (undef, $prefs1) = $t->json(GET => '/mitte/preferences',
                               headers => { 'X-Mitte-User' => 'alice' });
is_deeply($prefs1, $prefs0, 'preferences: unchanged');
my (undef, $eps1) = $t->json(GET => '/mitte-admin/endpoints');
is_deeply($eps1, $eps0, 'endpoints: unchanged, none created');
my (undef, $user1) = $t->json(GET => '/mitte-admin/users/alice');
is_deeply($user1, $user0, 'user: unchanged');

# and the same valid bodies do act
($rv, $dv) = $t->json(POST => '/mitte/notifications/read',
                      headers => { 'X-Mitte-User' => 'alice' },
                      content => $ok{ids});
json_answer_ok($rv, $dv, 200, 'POST read with one id');
is($dv->{unread}, 3, 'the valid body marks one read');

$t->stop;
done_testing();
