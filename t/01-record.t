#!/usr/bin/perl

# Recording: every delivery counted by hour, success or failure by the
# status set; 3xx is a failure; a dead upstream is a 502 failure; the name
# comes from the upstream's header; invalid or over-long slugs are proxied
# as usual but not recorded; statistics are scoped to the caller.

use strict;
use warnings;

use Test::More;
use MIME::Base64 qw(encode_base64);
use Time::HiRes qw(time);
use Mitte::Test qw(:all);

require_module();

my $t = Mitte::Test->new(
    allow => [
        # the dead upstream
        qr/connect\(\) failed \(111: Connection refused\) while connecting/,
        # "not recorded (logged at most once a minute)", if at error level
        qr/mitte.*slug|slug.*mitte/i,
    ],
    http => <<'END');
    mitte_zone m:1m;

    server {
        listen 127.0.0.1:%%PORT%%;
        underscores_in_headers on;

        location ~ ^/hooks/(?<slug>[^/]+)$ {
            mitte_endpoint $slug;
            mitte_endpoint_name $upstream_http_x_endpoint_name;
            mitte_user $http_x_mitte_user;
            proxy_pass http://%%UPSTREAM%%;
        }
        location ~ ^/strict/(?<slug>[^/]+)$ {
            mitte_endpoint $slug;
            mitte_user $http_x_mitte_user;
            mitte_success_status 200 204;
            proxy_pass http://%%UPSTREAM%%;
        }
        location ~ ^/ranges/(?<slug>[^/]+)$ {
            mitte_endpoint $slug;
            mitte_user $http_x_mitte_user;
            mitte_success_status 200-201 404;
            proxy_pass http://%%UPSTREAM%%;
        }
        location ~ ^/classes/(?<slug>[^/]+)$ {
            mitte_endpoint $slug;
            mitte_user $http_x_mitte_user;
            mitte_success_status 2xx 3xx;
            proxy_pass http://%%UPSTREAM%%;
        }
        location ~ ^/dead/(?<slug>[^/]+)$ {
            mitte_endpoint $slug;
            mitte_user $http_x_mitte_user;
            proxy_pass http://%%DEAD%%;
        }
        location ~ ^/ops/(?<slug>[^/]+)$ {
            mitte_endpoint $slug;
            mitte_user ops;
            proxy_pass http://%%UPSTREAM%%;
        }
        location ~ ^/plain/(?<slug>[^/]+)$ {
            proxy_pass http://%%UPSTREAM%%;
        }

        location = /mitte/stats {
            mitte_user $http_x_mitte_user;
            mitte_stats;
        }
        location = /mitte/all {
            mitte_stats all;
        }
        location = /mitte/me {
            mitte_user $remote_user;
            mitte_stats;
        }
    }
END

$t->start;

my $h0 = hour_now();
my $t0 = time();

sub stats {
    my ($user, $query) = @_;
    my %h = defined $user ? (headers => { 'X-Mitte-User' => $user }) : ();
    return $t->json(GET => '/mitte/stats' . ($query // ''), %h);
}

sub all_stats {
    return $t->json(GET => '/mitte/all');
}

# every delivery is proxied with the upstream's status; each is recorded
# before the next (the order matters to streak and lastStatus)
sub deliver {
    my ($user, $path, $code, $label) = @_;
    my $r = $t->deliver($user, $path);
    is($r->{status}, $code, "$label: $path answered $code");
    return $r;
}

# -- the default status set: 200-299 -----------------------------------------

my @codes = (200, 200, 201, 204, 301, 302, 304, 400, 404, 410, 429, 500,
             502, 503, 504);
for my $c (@codes) {
    deliver('alice', "/hooks/ep-default?status=$c", $c, 'default set');
}
my $since = time();
deliver('alice', '/hooks/ep-order?status=503', 503, 'order');
deliver('alice', '/hooks/ep-order?status=503', 503, 'order');
deliver('alice', '/hooks/ep-order?status=200', 200, 'order');

# -- configured status sets --------------------------------------------------

deliver('alice', "/strict/ep-strict?status=$_", $_, 'strict')
    for 200, 201, 204, 304;
deliver('alice', "/ranges/ep-ranges?status=$_", $_, 'ranges')
    for 200, 201, 204, 404, 500;
deliver('alice', "/classes/ep-classes?status=$_", $_, 'classes')
    for 200, 301, 304, 404;

# -- name from the upstream's header; a dead upstream ----------------------

deliver('alice', '/hooks/ep-named?status=200&name=Stripe-Prod', 200, 'named');
deliver('alice', '/hooks/ep-named?status=500&name=Stripe-Prod', 500, 'named');
deliver('alice', '/dead/ep-dead', 502, 'dead upstream');

# -- another user ------------------------------------------------------------

deliver('bob', '/hooks/ep-bob?status=200', 200, 'bob');

# -- not recorded: invalid and over-long slugs, proxied as usual -------------

my $long = 'a' x 65;
my $max = 'b' x 64;
for my $slug ('bad!slug', 'has%20space', $long, '%C3%A9t%C3%A9', 'semi;colon')
{
    for my $code (200, 503) {
        my $plain = $t->post("/plain/$slug?status=$code");
        my $r = $t->post_as('carol', "/hooks/$slug?status=$code");
        is($r->{status}, $plain->{status},
           "invalid slug '$slug': same status as without the module ($code)");
        is($r->{content}, $plain->{content},
           "invalid slug '$slug': same body as without the module");
    }
}
deliver('carol', "/hooks/$max?status=200", 200, '64-byte slug');

# -- statistics of alice -----------------------------------------------------

my ($r, $doc) = stats('alice');
json_answer_ok($r, $doc, 200, 'stats of alice');

my @alice = sort map { $_->{slug} } @{ $doc->{endpoints} || [] };
is_deeply(\@alice,
          [sort qw(ep-default ep-order ep-strict ep-ranges ep-classes
                   ep-named ep-dead)],
          'alice sees her endpoints, and only them');

check_endpoint(find_endpoint($doc, 'ep-default'), 'ep-default',
    slug => 'ep-default', name => 'ep-default', user => 'alice',
    requests => 15, failures => 11, streak => 11, lastStatus => 504,
    h0 => $h0, since => $t0);

check_endpoint(find_endpoint($doc, 'ep-order'), 'ep-order',
    requests => 3, failures => 2, streak => 0, lastStatus => 200,
    h0 => $h0, since => $since);

# 200 204 succeed: 201 and 304 fail
check_endpoint(find_endpoint($doc, 'ep-strict'), 'ep-strict',
    requests => 4, failures => 2, streak => 1, lastStatus => 304, h0 => $h0);

# 200-201 404 succeed: 204 and 500 fail
check_endpoint(find_endpoint($doc, 'ep-ranges'), 'ep-ranges',
    requests => 5, failures => 2, streak => 1, lastStatus => 500, h0 => $h0);

# 2xx 3xx succeed: 404 fails
check_endpoint(find_endpoint($doc, 'ep-classes'), 'ep-classes',
    requests => 4, failures => 1, streak => 1, lastStatus => 404, h0 => $h0);

check_endpoint(find_endpoint($doc, 'ep-named'), 'ep-named',
    name => 'Stripe-Prod', requests => 2, failures => 1, streak => 1,
    lastStatus => 500, h0 => $h0);

check_endpoint(find_endpoint($doc, 'ep-dead'), 'ep-dead',
    name => 'ep-dead', user => 'alice', requests => 1, failures => 1,
    streak => 1, lastStatus => 502, h0 => $h0);

my $q = $doc->{quota};
ok(ref $q eq 'HASH', 'stats has a quota');
$q = {} unless ref $q eq 'HASH';
ok(is_number($q->{used}) && is_number($q->{limit}),
   'quota used and limit are numbers');
is($q->{plan}, 'free', 'quota plan: the default');
is($q->{limit}, 5000, 'quota limit: the default of free');
is($q->{used}, 15 + 3 + 4 + 5 + 4 + 2 + 1, 'quota used: her deliveries');
is($q->{period}, period_of(), 'quota period: this month');

# -- filters and scope -------------------------------------------------------

($r, $doc) = stats('alice', '?endpoint=ep-named');
json_answer_ok($r, $doc, 200, 'stats ?endpoint=');
is_deeply([map { $_->{slug} } @{ $doc->{endpoints} || [] }], ['ep-named'],
          '?endpoint= gives that endpoint only');
($r, $doc) = stats('alice', '?endpoint=ep%2Dnamed');
is_deeply([map { $_->{slug} } @{ $doc->{endpoints} || [] }], ['ep-named'],
          '?endpoint= percent-encoded: the same');

($r, $doc) = stats('alice', '?endpoint=ep-bob');
json_answer_ok($r, $doc, 200, "stats ?endpoint= of another's endpoint");
is_deeply($doc->{endpoints}, [], "another user's endpoint is not shown");

($r, $doc) = stats('bob');
json_answer_ok($r, $doc, 200, 'stats of bob');
is_deeply([map { $_->{slug} } @{ $doc->{endpoints} || [] }], ['ep-bob'],
          'bob sees his endpoint only');
check_endpoint(find_endpoint($doc, 'ep-bob'), 'ep-bob', user => 'bob',
    requests => 1, failures => 0, streak => 0, lastStatus => 200, h0 => $h0);
is($doc->{quota}{used}, 1, 'bob: quota used 1');

($r, $doc) = stats('nobody-here');
json_answer_ok($r, $doc, 200, 'stats of a user without endpoints');
is_deeply($doc->{endpoints}, [], 'no endpoints');

($r, $doc) = stats(undef);
error_ok($r, $doc, 401, 'unauthorized', 'stats without a user');

($r, $doc) = stats('');
error_ok($r, $doc, 401, 'unauthorized', 'stats with an empty user');

# -- a literal user; the caller from $remote_user ----------------------------

$t->deliver(undef, '/ops/ep-ops?status=200');
$t->deliver('alice', '/ops/ep-ops?status=500');
($r, $doc) = $t->json(GET => '/mitte/me', headers => {
    Authorization => 'Basic ' . encode_base64('ops:secret', '') });
json_answer_ok($r, $doc, 200, 'stats of $remote_user ops');
is_deeply([map { $_->{slug} } @{ $doc->{endpoints} || [] }], ['ep-ops'],
          'ops sees the endpoint of the literal mitte_user');
check_endpoint(find_endpoint($doc, 'ep-ops'), 'ep-ops', user => 'ops',
    requests => 2, failures => 1, streak => 1, lastStatus => 500);
($r, $doc) = $t->json(GET => '/mitte/me');
error_ok($r, $doc, 401, 'unauthorized', 'stats of an empty $remote_user');

# -- names and users that need escaping in JSON ------------------------------

my $odd = "we\"ird\\us\ter/<x>";    # quote, backslash, tab, slash
$t->deliver($odd, '/hooks/ep-odd?status=200');
($r, $doc) = stats($odd);
json_answer_ok($r, $doc, 200, 'stats of a user with odd characters');
check_endpoint(find_endpoint($doc, 'ep-odd'), 'ep-odd', user => $odd,
    requests => 1);

# -- a large webhook body is proxied and recorded ----------------------------

$r = $t->deliver('dave', '/hooks/ep-large?status=201',
                 content => '{"data":"' . ('x' x 200_000) . '"}');
is($r->{status}, 201, 'a 200 KB delivery is proxied');
($r, $doc) = stats('dave');
check_endpoint(find_endpoint($doc, 'ep-large'), 'ep-large',
    requests => 1, failures => 0, lastStatus => 201);

# -- every endpoint ----------------------------------------------------------

($r, $doc) = all_stats();
json_answer_ok($r, $doc, 200, 'mitte_stats all');
ok(!exists $doc->{quota}, 'mitte_stats all: no quota');
my @all = sort map { $_->{slug} } @{ $doc->{endpoints} || [] };
is_deeply(\@all,
          [sort(qw(ep-default ep-order ep-strict ep-ranges ep-classes
                   ep-named ep-dead ep-bob ep-ops ep-odd ep-large), $max)],
          'every endpoint, none of the invalid slugs');
check_endpoint(find_endpoint($doc, $max), '64-byte slug', user => 'carol',
    requests => 1, failures => 0, h0 => $h0);
check_endpoint(find_endpoint($doc, 'ep-default'), 'ep-default in all',
    requests => 15, failures => 11, streak => 11);

($r, $doc) = $t->json(GET => '/mitte/all?endpoint=ep-bob');
json_answer_ok($r, $doc, 200, 'mitte_stats all ?endpoint=');
is_deeply([map { $_->{slug} } @{ $doc->{endpoints} || [] }], ['ep-bob'],
          'mitte_stats all ?endpoint= gives that endpoint only');
($r, $doc) = $t->json(GET => '/mitte/all?endpoint=no-such-endpoint');
json_answer_ok($r, $doc, 200, 'mitte_stats all ?endpoint= unknown');
is_deeply($doc->{endpoints}, [], 'an unknown endpoint: none');

# the user header's name in any case, and among other headers, as nginx's
# $http_ variable finds it; the first of two; none: no owner
{
    my $r1 = $t->raw("POST /hooks/ep-case HTTP/1.1\r\nHost: x\r\n"
        . "X-Other: 1\r\nx-mItTe-uSeR: dora\r\nX-Mitte-User: erin\r\n"
        . "Content-Length: 0\r\nConnection: close\r\n\r\n");
    is($r1->{status}, 200, 'a user header in odd case: proxied');
    $t->wait_recorded('ep-case', 1);
    ($r, $doc) = stats('dora');
    is_deeply([map { $_->{slug} } @{ $doc->{endpoints} || [] }],
              ['ep-case'], 'x-mItTe-uSeR: the owner is dora, the first');
    ($r, $doc) = stats('erin');
    is_deeply($doc->{endpoints}, [], 'erin, the second, owns nothing');
    # with underscores_in_headers, "X_Mitte_User" is $http_x_mitte_user too
    my $r2 = $t->raw("POST /hooks/ep-under HTTP/1.1\r\nHost: x\r\n"
        . "X_Mitte_User: fred\r\nContent-Length: 0\r\n"
        . "Connection: close\r\n\r\n");
    is($r2->{status}, 200, 'X_Mitte_User: proxied');
    $t->wait_recorded('ep-under', 1);
    ($r, $doc) = stats('fred');
    is_deeply([map { $_->{slug} } @{ $doc->{endpoints} || [] }],
              ['ep-under'], 'X_Mitte_User: the owner is fred');

    $t->post('/hooks/ep-nouser');
    my $ep = $t->wait_recorded('ep-nouser', 1);
    ok($ep && !defined $ep->{user}, 'no user header: no owner');
}

# the invalid slugs are logged at most once a minute (once per worker)
my @said = grep { /slug/i } $t->error_log_lines;
ok(@said <= 2, 'invalid slugs logged at most once a minute per worker')
    or diag(join "\n", @said);

$t->stop;

done_testing();
