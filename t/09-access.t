#!/usr/bin/perl

# The access phase comes first: a user set by auth_request_set is the one
# recorded and held to the quota; a request refused before the content
# phase (auth_request, deny) is not a delivery; subrequests are not
# deliveries either.

use strict;
use warnings;

use Test::More;
use Mitte::Test qw(:all);

require_module();

my $t = Mitte::Test->new(allow => [qr/access forbidden by rule/], http => <<'END');
    mitte_zone m:1m;
    mitte_quota free 2;

    server {
        listen 127.0.0.1:%%PORT%%;
        log_subrequest on;

        location ~ ^/hooks/(?<slug>[^/]+)$ {
            auth_request /auth;
            auth_request_set $auth_user $upstream_http_x_echo_user;
            mitte_endpoint $slug;
            mitte_user $auth_user;
            proxy_pass http://%%UPSTREAM%%;
        }
        location = /auth {
            internal;
            proxy_pass http://%%UPSTREAM%%/auth?status=$http_x_auth_status;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
        }
        location ~ ^/denied/(?<slug>[^/]+)$ {
            deny all;
            mitte_endpoint $slug;
            mitte_user $http_x_mitte_token;
            proxy_pass http://%%UPSTREAM%%;
        }
        location = /mitte/all {
            mitte_stats all;
        }
        location /mitte-admin/ {
            mitte_admin;
        }
    }
END

$t->start;

my %tok = (headers => { 'X-Mitte-Token' => 'tu1' });

my $r = $t->deliver(undef, '/hooks/a-one?status=200', %tok);
is($r->{status}, 200, 'auth passes: proxied');
$r = $t->deliver(undef, '/hooks/a-one?status=503', %tok);
is($r->{status}, 503, 'auth passes: proxied, 503');
$r = $t->post('/hooks/a-one?status=200', %tok);
is($r->{status}, 429, 'the user from auth_request_set is held to the quota');

my ($r2, $doc) = $t->json(GET => '/mitte/all');
check_endpoint(find_endpoint($doc, 'a-one'), 'a-one', user => 'tu1',
    requests => 2, failures => 1, streak => 1, lastStatus => 503);
is_deeply([sort map { $_->{slug} } @{ $doc->{endpoints} || [] }], ['a-one'],
          'the auth subrequests are not deliveries');

# refused by auth_request: never reaches the content phase
$r = $t->post('/hooks/a-two?status=200',
              headers => { 'X-Mitte-Token' => 'tu2', 'X-Auth-Status' => 403 });
is($r->{status}, 403, 'auth refuses: 403');
$r = $t->post('/hooks/a-two?status=200',
              headers => { 'X-Mitte-Token' => 'tu2', 'X-Auth-Status' => 401 });
is($r->{status}, 401, 'auth refuses: 401');

# refused by deny
$r = $t->post('/denied/a-three?status=200',
              headers => { 'X-Mitte-Token' => 'tu2' });
is($r->{status}, 403, 'deny: 403');

# a delivery after them, to be sure they had their turn in the log phase
$t->deliver(undef, '/hooks/a-four?status=200',
            headers => { 'X-Mitte-Token' => 'tu2' });

($r2, $doc) = $t->json(GET => '/mitte/all');
is_deeply([sort map { $_->{slug} } @{ $doc->{endpoints} || [] }],
          ['a-four', 'a-one'],
          'requests refused before the content phase are not deliveries');

($r2, $doc) = $t->json(GET => '/mitte-admin/users/tu2');
json_answer_ok($r2, $doc, 200, 'GET /users/tu2');
is($doc && $doc->{quota} && $doc->{quota}{used}, 1,
   'refused requests do not count toward the quota');

my (undef, $m) = $t->metrics;
is($m->{'mitte_deliveries_total{result="success"}'}, 2, 'metrics: 2 successes');
is($m->{'mitte_deliveries_total{result="failure"}'}, 1, 'metrics: 1 failure');

$t->stop;

done_testing();
