#!/usr/bin/perl

# The operator API: import history then read it in statistics; delete;
# users; isolation between users; the errors 400, 401, 404, 405, 413.

use strict;
use warnings;

use Test::More;
use Mitte::Test qw(:all);

require_module();

my $t = Mitte::Test->new(all => '/mitte-admin/endpoints', http => <<'END');
    mitte_zone m:1m;
    mitte_quota pro 1000;

    server {
        listen 127.0.0.1:%%PORT%%;

        location ~ ^/hooks/(?<slug>[^/]+)$ {
            mitte_endpoint $slug;
            mitte_user $http_x_mitte_user;
            mitte_user_plan $http_x_mitte_plan;
            mitte_user_email $http_x_mitte_email;
            proxy_pass http://%%UPSTREAM%%;
        }

        location = /mitte/stats {
            mitte_user $http_x_mitte_user;
            mitte_stats;
        }
        location /mitte-admin/ {
            mitte_admin;
        }
    }
END

$t->start;

my $h0 = hour_now();

sub admin {
    my ($method, $path, @opt) = @_;
    return $t->json($method, "/mitte-admin$path", @opt);
}

sub stats_of {
    my ($user, $query) = @_;
    my ($r, $doc) = $t->json(GET => '/mitte/stats' . ($query // ''),
                             headers => { 'X-Mitte-User' => $user });
    json_answer_ok($r, $doc, 200, "stats of $user");
    return $doc || {};
}

sub slugs {
    my ($doc) = @_;
    return [sort map { $_->{slug} } @{ $doc->{endpoints} || [] }];
}

sub all_slugs {
    my ($r, $doc) = admin(GET => '/endpoints');
    json_answer_ok($r, $doc, 200, 'GET /endpoints');
    return slugs($doc);
}

# -- import history ----------------------------------------------------------

my ($r, $doc) = admin(PUT => '/endpoints/imported', content => {
    name  => 'Imported Hook',
    user  => 'alice',
    hours => [
        { hour => iso_hour($h0 - 72), requests => 99, failures => 99 },
        { hour => iso_hour($h0 - 2),  requests => 10, failures => 2 },
        { hour => ($h0 - 1) * 3600,   requests => 5,  failures => 0 },
        { hour => iso_hour($h0 + 5),  requests => 7,  failures => 7 },
    ],
});
json_answer_ok($r, $doc, 200, 'PUT /endpoints/imported');
check_endpoint($doc, 'the answer to the import', slug => 'imported',
    name => 'Imported Hook', user => 'alice', streak => 0,
    hours => [[$h0 - 2, 10, 2], [$h0 - 1, 5, 0]]);

$doc = stats_of('alice');
is_deeply(slugs($doc), ['imported'], 'alice sees the imported endpoint');
check_endpoint(find_endpoint($doc, 'imported'), 'imported, in stats',
    name => 'Imported Hook', user => 'alice',
    hours => [[$h0 - 2, 10, 2], [$h0 - 1, 5, 0]]);

# deliveries add the current hour, after the imported ones
$t->set_delivered('imported', 15);
$r = $t->deliver('alice', '/hooks/imported?status=200');
is($r->{status}, 200, 'a delivery to the imported endpoint');
$r = $t->deliver('alice', '/hooks/imported?status=503');
is($r->{status}, 503, 'a failed delivery to the imported endpoint');
my $h1 = hour_now();
$doc = stats_of('alice');
check_endpoint(find_endpoint($doc, 'imported'), 'imported, after deliveries',
    streak => 1, lastStatus => 503,
    hours => [[$h0 - 2, 10, 2], [$h0 - 1, 5, 0],
              ($h1 == $h0 ? [$h0, 2, 1] : ())]);

# a PUT with a name only changes the name
($r, $doc) = admin(PUT => '/endpoints/imported',
                   content => { name => 'Renamed' });
json_answer_ok($r, $doc, 200, 'PUT a name only');
is($doc && $doc->{name}, 'Renamed', 'the answer has the new name');
$doc = stats_of('alice');
check_endpoint(find_endpoint($doc, 'imported'), 'imported, renamed',
    name => 'Renamed', user => 'alice', requests => 17, failures => 3);

# a body larger than the client body buffer (16k), under 64 KiB
my @filler = map { { hour => 0, requests => 1, failures => 0 } } 1 .. 1400;
my $big = { name => 'Big', user => 'bob',
            hours => [@filler,
                      { hour => iso_hour($h0 - 3), requests => 4,
                        failures => 1 }] };
my $len = length json_encode($big);
ok($len > 16384 && $len < 65536, "a body of $len bytes");
($r, $doc) = admin(PUT => '/endpoints/big', content => $big);
json_answer_ok($r, $doc, 200, "PUT a body of $len bytes");
check_endpoint($doc, 'big', name => 'Big', user => 'bob',
    hours => [[$h0 - 3, 4, 1]]);

# names that need escaping: quotes, backslashes, control characters, UTF-8
my $odd = "Zahlungs \"Hook\" \\ / \t \x{e9}\x{4e2d}\x{1f600}";
($r, $doc) = admin(PUT => '/endpoints/odd', content => {
    name => $odd, user => "\x{e9}ve" });
json_answer_ok($r, $doc, 200, 'PUT a name with odd characters');
check_endpoint($doc, 'odd', name => $odd, user => "\x{e9}ve");
# the same user as UTF-8 bytes in a header (HTTP::Tiny sends ASCII only)
$r = $t->raw("GET /mitte/stats HTTP/1.1\r\nHost: 127.0.0.1\r\n"
             . "X-Mitte-User: \xc3\xa9ve\r\nConnection: close\r\n\r\n");
$doc = eval { json_decode($r->{content}) };
json_answer_ok($r, $doc, 200, 'the stats of a UTF-8 user');
is_deeply(slugs($doc || {}), ['odd'],
          'the stats of a UTF-8 user: the endpoint');
($r, $doc) = admin(DELETE => '/endpoints/odd');
json_answer_ok($r, $doc, 200, 'DELETE /endpoints/odd');

# -- isolation between users -------------------------------------------------

$t->deliver('bob', '/hooks/bobs?status=200');
$doc = stats_of('bob');
is_deeply(slugs($doc), ['big', 'bobs'], 'bob sees his endpoints only');
$doc = stats_of('bob', '?endpoint=imported');
is_deeply($doc->{endpoints}, [], "bob cannot see alice's endpoint");
$doc = stats_of('alice');
is_deeply(slugs($doc), ['imported'], "alice does not see bob's");
is_deeply(all_slugs(), ['big', 'bobs', 'imported'],
          'GET /endpoints: every endpoint');

($r, $doc) = admin(GET => '/endpoints');
check_endpoint(find_endpoint($doc, 'bobs'), 'bobs in GET /endpoints',
    user => 'bob', requests => 1, failures => 0, lastStatus => 200);

# the user of an endpoint changes with a PUT
($r, $doc) = admin(PUT => '/endpoints/bobs', content => { user => 'alice' });
json_answer_ok($r, $doc, 200, 'PUT a new user');
is_deeply(slugs(stats_of('alice')), ['bobs', 'imported'],
          'the endpoint moved to alice');
is_deeply(slugs(stats_of('bob')), ['big'], 'and away from bob');

# -- delete ------------------------------------------------------------------

($r, $doc) = admin(DELETE => '/endpoints/imported');
json_answer_ok($r, $doc, 200, 'DELETE /endpoints/imported');
is_deeply(all_slugs(), ['big', 'bobs'], 'the endpoint is gone');
is_deeply(slugs(stats_of('alice')), ['bobs'], 'from the stats of alice too');
($r, $doc) = admin(DELETE => '/endpoints/imported');
error_ok($r, $doc, 404, 'not_found', 'DELETE an unknown endpoint');

# a deleted endpoint starts afresh
$t->set_delivered('imported', 0);
$t->deliver('alice', '/hooks/imported?status=200');
($r, $doc) = admin(GET => '/endpoints');
check_endpoint(find_endpoint($doc, 'imported'), 'imported, anew',
    name => 'imported', user => 'alice', streak => 0, lastStatus => 200,
    requests => 1, failures => 0, h0 => $h0);
($r, $doc) = admin(DELETE => '/endpoints/imported');
json_answer_ok($r, $doc, 200, 'DELETE /endpoints/imported again');

# -- users -------------------------------------------------------------------

($r, $doc) = admin(PUT => '/users/carol', content => {
    plan => 'pro', trialEndsAt => '2026-03-01T00:00:00Z',
    email => 'carol@example.com' });
json_answer_ok($r, $doc, 200, 'PUT /users/carol');

($r, $doc) = admin(GET => '/users/carol');
json_answer_ok($r, $doc, 200, 'GET /users/carol');
is_deeply($doc, {
    id => 'carol', plan => 'pro', trialEndsAt => '2026-03-01T00:00:00.000Z',
    email => 'carol@example.com',
    quota => { plan => 'pro', used => 0, limit => 1000,
               period => period_of() },
}, 'carol as set');

($r, $doc) = admin(PUT => '/users/dan',
                   content => { trialEndsAt => '2027-01-15' });
json_answer_ok($r, $doc, 200, 'PUT /users/dan, a date only');
($r, $doc) = admin(GET => '/users/dan');
json_answer_ok($r, $doc, 200, 'GET /users/dan');
is($doc && $doc->{trialEndsAt}, '2027-01-15T00:00:00.000Z',
   'a date is midnight UTC');
is($doc && $doc->{plan}, 'free', 'the default plan');
ok($doc && exists $doc->{email} && !defined $doc->{email}, 'no email: null');

($r, $doc) = admin(PUT => '/users/dan',
                   content => { trialEndsAt => 1800000000 });
json_answer_ok($r, $doc, 200, 'PUT /users/dan, unix seconds');
($r, $doc) = admin(GET => '/users/dan');
is($doc && $doc->{trialEndsAt}, iso_ms(1800000000 * 1000),
   'unix seconds are taken');

# a delivery tells the module about its user
$r = $t->deliver('erin', '/hooks/erins?status=200',
                 headers => { 'X-Mitte-Plan' => 'Pro',
                              'X-Mitte-Email' => 'erin@example.com' });
is($r->{status}, 200, 'a delivery of erin');
($r, $doc) = admin(GET => '/users/erin');
json_answer_ok($r, $doc, 200, 'GET /users/erin');
is($doc && $doc->{plan}, 'pro', 'erin: the plan of her delivery');
is($doc && $doc->{email}, 'erin@example.com', 'erin: her email');
is_deeply($doc && $doc->{quota},
          { plan => 'pro', used => 1, limit => 1000, period => period_of() },
          'erin: quota use');

($r, $doc) = admin(GET => '/users/nobody');
error_ok($r, $doc, 404, 'not_found', 'GET an unknown user');

# -- errors: nothing changes -------------------------------------------------

($r, $doc) = admin(PUT => '/endpoints/broken', content => '{"name": "x", ',
                   headers => { 'Content-Type' => 'application/json' });
error_ok($r, $doc, 400, 'invalid_json', 'malformed JSON');
($r, $doc) = admin(PUT => '/endpoints/broken', content => '',
                   headers => { 'Content-Type' => 'application/json' });
error_ok($r, $doc, 400, [qw(invalid_json bad_request)], 'an empty body');
($r, $doc) = admin(PUT => '/endpoints/broken', content => '[1, 2]');
error_ok($r, $doc, 400, [qw(invalid_json invalid_field bad_request)],
         'not an object');
($r, $doc) = admin(PUT => '/endpoints/broken',
                   content => { hours => 'lots' });
error_ok($r, $doc, 400, 'invalid_field', 'hours not an array');
($r, $doc) = admin(PUT => '/endpoints/broken', content => {
    hours => [{ hour => 'yesterday', requests => 1, failures => 0 }] });
error_ok($r, $doc, 400, 'invalid_field', 'an hour that is not a time');
($r, $doc) = admin(PUT => '/endpoints/broken', content => {
    hours => [{ hour => iso_hour($h0), requests => 'many', failures => 0 }] });
error_ok($r, $doc, 400, 'invalid_field', 'requests not a number');
($r, $doc) = admin(PUT => '/endpoints/broken', content => { name => 42 });
error_ok($r, $doc, 400, 'invalid_field', 'a name that is not a string');
($r, $doc) = admin(PUT => '/endpoints/bad!slug', content => { name => 'x' });
ok($r->{status} == 400 || $r->{status} == 404,
   'PUT an invalid slug: 400 or 404') or diag("status $r->{status}");
is_deeply(all_slugs(), ['big', 'bobs', 'erins'],
          'no endpoint was created by the refused requests');

# a failed import leaves the endpoint as it was
($r, $doc) = admin(PUT => '/endpoints/big', content => {
    name => 'Changed', hours => [{ hour => 'soon' }] });
error_ok($r, $doc, 400, 'invalid_field', 'a bad hour in an update');
($r, $doc) = admin(GET => '/endpoints');
check_endpoint(find_endpoint($doc, 'big'), 'big, unchanged',
    name => 'Big', user => 'bob', hours => [[$h0 - 3, 4, 1]]);

($r, $doc) = admin(PUT => '/users/frank', content => { plan => 'gold' });
error_ok($r, $doc, 400, 'invalid_field', 'an unknown plan');
($r, $doc) = admin(GET => '/users/frank');
error_ok($r, $doc, 404, 'not_found', 'the refused user was not created');

($r, $doc) = admin(PUT => '/users/carol', content => { plan => 'gold' });
error_ok($r, $doc, 400, 'invalid_field', 'carol: an unknown plan');
($r, $doc) = admin(PUT => '/users/carol', content => '{plan:',
                   headers => { 'Content-Type' => 'application/json' });
error_ok($r, $doc, 400, 'invalid_json', 'carol: malformed JSON');
($r, $doc) = admin(PUT => '/users/carol', content => { email => 42 });
error_ok($r, $doc, 400, 'invalid_field', 'carol: an email not a string');
($r, $doc) = admin(PUT => '/users/carol',
                   content => { trialEndsAt => '2026-02-30' });
error_ok($r, $doc, 400, 'invalid_field', 'carol: an impossible date');
($r, $doc) = admin(PUT => '/users/carol',
                   content => { plan => 'free', trialEndsAt => 'never' });
error_ok($r, $doc, 400, 'invalid_field', 'carol: one bad field of two');
($r, $doc) = admin(GET => '/users/carol');
is_deeply([$doc->{plan}, $doc->{trialEndsAt}, $doc->{email}],
          ['pro', '2026-03-01T00:00:00.000Z', 'carol@example.com'],
          'carol unchanged by the refused requests');

# over 64 KiB
my $huge = json_encode({ name => 'x' x 70000 });
($r, $doc) = admin(PUT => '/endpoints/huge', content => $huge,
                   headers => { 'Content-Type' => 'application/json' });
error_ok($r, $doc, 413, 'too_large', 'a body over 64 KiB');
my @hours = map { { hour => 0, requests => 1, failures => 0 } } 1 .. 2000;
($r, $doc) = admin(PUT => '/endpoints/huge', content => { hours => \@hours });
error_ok($r, $doc, 413, 'too_large', 'a valid body over 64 KiB');
ok(!grep({ $_ eq 'huge' } @{ all_slugs() }), 'nothing was created');

# unknown paths
for my $p ('/nope', '/', '/endpoints/big/extra', '/users') {
    ($r, $doc) = admin(GET => $p);
    error_ok($r, $doc, 404, 'not_found', "GET /mitte-admin$p");
}

# wrong methods
for my $c (['POST', '/endpoints', ['GET']],
           ['DELETE', '/metrics', ['GET']],
           ['POST', '/endpoints/big', ['PUT', 'DELETE']],
           ['PATCH', '/users/carol', ['GET', 'PUT']])
{
    my ($m, $p, $allow) = @$c;
    ($r, $doc) = admin($m => $p, content => '{}');
    error_ok($r, $doc, 405, 'method_not_allowed', "$m /mitte-admin$p");
    my $got = $r->{headers}{allow} // '';
    for my $a (@$allow) {
        like($got, qr/\b$a\b/, "$m /mitte-admin$p: Allow names $a");
    }
    unlike($got, qr/\b$m\b/, "$m /mitte-admin$p: Allow does not name $m");
}

# -- bodies in chunked transfer encoding (no Content-Length) -----------------

$r = $t->chunked(PUT => '/mitte-admin/endpoints/chunky',
                 json_encode({ name => 'Chunky', user => 'bob' }), 5);
$doc = eval { json_decode($r->{content}) };
json_answer_ok($r, $doc, 200, 'a chunked PUT');
is($doc && $doc->{name}, 'Chunky', 'a chunked PUT: the name');

$r = $t->chunked(PUT => '/mitte-admin/endpoints/chunky',
                 json_encode($big), 3000);
$doc = eval { json_decode($r->{content}) };
json_answer_ok($r, $doc, 200, "a chunked PUT of $len bytes");
check_endpoint($doc, 'chunky', name => 'Big', user => 'bob',
    hours => [[$h0 - 3, 4, 1]]);

$r = $t->chunked(PUT => '/mitte-admin/endpoints/chunkhuge',
                 json_encode({ name => 'x' x 70000 }), 8192);
$doc = eval { json_decode($r->{content}) };
error_ok($r, $doc, 413, 'too_large', 'a chunked body over 64 KiB');
ok(!grep({ $_ eq 'chunkhuge' } @{ all_slugs() }), 'nothing was created');

# -- the statistics location -------------------------------------------------

($r, $doc) = $t->json(POST => '/mitte/stats', content => '{}',
                      headers => { 'X-Mitte-User' => 'alice' });
error_ok($r, $doc, 405, 'method_not_allowed', 'POST /mitte/stats');
like($r->{headers}{allow} // '', qr/\bGET\b/, 'POST /mitte/stats: Allow GET');

# -- 401 ---------------------------------------------------------------------

($r, $doc) = $t->json(GET => '/mitte/stats');
error_ok($r, $doc, 401, 'unauthorized', 'stats without a user');

$t->stop;

done_testing();
