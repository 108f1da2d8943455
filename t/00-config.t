#!/usr/bin/perl

# nginx -t: bad values of every directive are refused, naming the directive
# and the value (a bad time or number in double quotes: "abc"); good
# configurations pass; a module loaded but not configured changes nothing.

use strict;
use warnings;

use Test::More;
use Mitte::Test qw(:all);

require_module();

my $LOCATION = <<'END';
    server {
        listen 127.0.0.1:%%PORT%%;
        location ~ ^/hooks/(?<slug>[^/]+)$ {
            mitte_endpoint $slug;
            mitte_user $http_x_mitte_user;
            proxy_pass http://%%UPSTREAM%%;
        }
    }
END

# [name, http{} text, regexps the output must match]
my @bad = (
    ['quota limit not a number', "mitte_zone m:1m;\nmitte_quota free abc;\n",
     [qr/mitte_quota/, qr/\babc\b/]],
    ['quota unknown plan', "mitte_zone m:1m;\nmitte_quota gold 10;\n",
     [qr/mitte_quota/, qr/\bgold\b/]],
    ['quota bad warn', "mitte_zone m:1m;\nmitte_quota free 10 warn=abc;\n",
     [qr/mitte_quota/, qr/abc/]],
    ['quota limit missing', "mitte_zone m:1m;\nmitte_quota free;\n",
     [qr/mitte_quota/]],
    ['success status below 100', "mitte_zone m:1m;\nmitte_success_status 99;\n",
     [qr/mitte_success_status/, qr/\b99\b/]],
    ['success status above 599',
     "mitte_zone m:1m;\nmitte_success_status 600;\n",
     [qr/mitte_success_status/, qr/\b600\b/]],
    ['success status not a code',
     "mitte_zone m:1m;\nmitte_success_status abc;\n",
     [qr/mitte_success_status/, qr/\babc\b/]],
    ['success status reversed range',
     "mitte_zone m:1m;\nmitte_success_status 299-200;\n",
     [qr/mitte_success_status/, qr/299-200/]],
    ['zone without size', "mitte_zone m;\n",
     [qr/mitte_zone/, qr/(?<![\w.\/-])m(?![\w.\/-])/]],
    ['zone bad size', "mitte_zone m:abc;\n",
     [qr/mitte_zone/, qr/abc/]],
    ['zone twice', "mitte_zone m:1m;\nmitte_zone n:1m;\n",
     [qr/mitte_zone/]],
    ['endpoint without zone', $LOCATION,
     [qr/mitte_endpoint/, qr/mitte_zone/]],
    ['stats without zone', <<'END', [qr/mitte_stats/, qr/mitte_zone/]],
    server {
        listen 127.0.0.1:%%PORT%%;
        location = /mitte/all { mitte_stats all; }
    }
END
    ['admin without zone', <<'END', [qr/mitte_admin/, qr/mitte_zone/]],
    server {
        listen 127.0.0.1:%%PORT%%;
        location /mitte-admin/ { mitte_admin; }
    }
END
    ['quota_enforce bad value',
     "mitte_zone m:1m;\nmitte_quota_enforce maybe;\n",
     [qr/mitte_quota_enforce/, qr/\bmaybe\b/]],
    ['quota_enforce bad status',
     "mitte_zone m:1m;\nmitte_quota_enforce on status=abc;\n",
     [qr/mitte_quota_enforce/, qr/abc/]],
    ['endpoint_down bad threshold',
     "mitte_zone m:1m;\nmitte_endpoint_down threshold=x;\n",
     [qr/mitte_endpoint_down/, qr/threshold=x|"x"/]],
    ['endpoint_down bad reset',
     "mitte_zone m:1m;\nmitte_endpoint_down reset=soon;\n",
     [qr/mitte_endpoint_down/, qr/soon/]],
    ['endpoint_down unknown parameter',
     "mitte_zone m:1m;\nmitte_endpoint_down bogus=1;\n",
     [qr/mitte_endpoint_down/, qr/bogus/]],
    ['quota in server', <<'END', [qr/mitte_quota/, qr/not allowed here/]],
    mitte_zone m:1m;
    server {
        listen 127.0.0.1:%%PORT%%;
        mitte_quota free 10;
    }
END
    ['stats in server', <<'END', [qr/mitte_stats/, qr/not allowed here/]],
    mitte_zone m:1m;
    server {
        listen 127.0.0.1:%%PORT%%;
        mitte_stats;
    }
END
    ['stats bad parameter', <<'END', [qr/mitte_stats/, qr/bogus/]],
    mitte_zone m:1m;
    server {
        listen 127.0.0.1:%%PORT%%;
        location = /s { mitte_user u; mitte_stats bogus; }
    }
END
    ['endpoint without value', <<'END', [qr/mitte_endpoint/]],
    mitte_zone m:1m;
    server {
        listen 127.0.0.1:%%PORT%%;
        location / { mitte_endpoint; proxy_pass http://%%UPSTREAM%%; }
    }
END
    # times and numbers: the value itself, in double quotes
    ['webhook_timeout not a time',
     "mitte_zone m:1m;\nmitte_webhook_timeout abc;\n",
     [qr/mitte_webhook_timeout/, qr/"abc"/]],
    ['sse_heartbeat not a time', <<'END',
    mitte_zone m:1m;
    server {
        listen 127.0.0.1:%%PORT%%;
        location = /e { mitte_user u; mitte_sse_heartbeat abc; mitte_sse; }
    }
END
     [qr/mitte_sse_heartbeat/, qr/"abc"/]],
    ['delivery_retries not a number',
     "mitte_zone m:1m;\nmitte_delivery_retries abc;\n",
     [qr/mitte_delivery_retries/, qr/"abc"/]],
    ['delivery_retries negative',
     "mitte_zone m:1m;\nmitte_delivery_retries -1;\n",
     [qr/mitte_delivery_retries/, qr/"-1"/]],
    ['notifications_keep not a number',
     "mitte_zone m:1m;\nmitte_notifications_keep abc;\n",
     [qr/mitte_notifications_keep/, qr/"abc"/]],
    ['sse_replay not a number',
     "mitte_zone m:1m;\nmitte_sse_replay abc;\n",
     [qr/mitte_sse_replay/, qr/"abc"/]],
);

for my $case (@bad) {
    my ($name, $http, $res) = @$case;
    my ($rc, $out) = nginx_t($http);

    # the file name and line say nothing about the value
    (my $said = $out) =~ s{ in /\S+:\d+}{}g;
    $said =~ s{/tmp/\S+}{}g;

    isnt($rc, 0, "$name: nginx -t fails");
    my $ok = 1;
    for my $re (@$res) {
        $ok &= like($said, $re, "$name: the output names $re");
    }
    unlike($said, qr/test is successful/, "$name: not reported successful");
    diag($out) unless $ok;
}

my @good = (
    ['module loaded, not configured', <<'END'],
    server {
        listen 127.0.0.1:%%PORT%%;
        location / { proxy_pass http://%%UPSTREAM%%; }
    }
END
    ['every directive', <<'END'],
    mitte_zone m:1m;
    mitte_quota free 10 warn=50%;
    mitte_quota pro 1000;
    mitte_quota trial 1000 warn=80%;
    mitte_endpoint_down threshold=3 reset=2s;
    mitte_success_status 2xx 304;
    server {
        listen 127.0.0.1:%%PORT%%;
        mitte_user $http_x_mitte_user;
        location ~ ^/hooks/(?<slug>[^/]+)$ {
            mitte_endpoint $slug;
            mitte_endpoint_name $upstream_http_x_endpoint_name;
            mitte_user_plan $http_x_mitte_plan;
            mitte_user_trial_ends $http_x_mitte_trial;
            mitte_user_email $http_x_mitte_email;
            mitte_success_status 200-204 304;
            mitte_quota_enforce on status=503;
            proxy_pass http://%%UPSTREAM%%;
        }
        location /soft/ {
            mitte_endpoint literal-slug;
            mitte_user ops;
            mitte_user_plan PRO;
            mitte_user_trial_ends 2026-03-01;
            mitte_quota_enforce off;
            proxy_pass http://%%UPSTREAM%%;
        }
        location = /mitte/stats { mitte_stats; }
        location = /mitte/all { mitte_stats all; }
        location /mitte-admin/ { mitte_admin; }
    }
END
    ['endpoint_down off, ranges', <<'END'],
    mitte_zone m:128k;
    mitte_endpoint_down off;
    mitte_success_status 200 201 204;
    mitte_quota_enforce on;
    server {
        listen 127.0.0.1:%%PORT%%;
        location / {
            mitte_endpoint $arg_slug;
            mitte_success_status 200-299 404;
            proxy_pass http://%%UPSTREAM%%;
        }
    }
END
);

for my $case (@good) {
    my ($name, $http) = @$case;
    my ($rc, $out) = nginx_t($http);
    is($rc, 0, "$name: nginx -t passes") or diag($out);
    like($out, qr/test is successful/, "$name: reported successful");
    unlike($out, qr/\[(?:emerg|alert|crit|error)\]/, "$name: no errors");
}

# loaded but not configured: proxying works as without the module
my $t = Mitte::Test->new(http => <<'END');
    server {
        listen 127.0.0.1:%%PORT%%;
        location / { proxy_pass http://%%UPSTREAM%%; }
    }
END
$t->start;
for my $code (200, 404, 503) {
    my $r = $t->post("/hooks/x?status=$code");
    is($r->{status}, $code, "unconfigured module: status $code proxied");
}
is($t->post('/hooks/x')->{content}, "ok\n", 'unconfigured module: body');
$t->stop;

done_testing();
