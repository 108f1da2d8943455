#!/usr/bin/perl

# The harness with NGINX set in the environment (issue 11, defect 6): nginx
# reads NGINX itself (the sockets inherited in a binary upgrade) and logs
# [emerg] on a binary path there, which failed every test's error-log
# check. The binary is named by MITTE_NGINX; NGINX, still honoured, is
# taken out of nginx's environment (the test starts nginx and nginx -t).

use strict;
use warnings;

use Test::More;
use Mitte::Test qw(:all);

require_module();

my $bin = nginx_binary();

{
    local $ENV{NGINX} = $bin;
    local $ENV{MITTE_NGINX};
    delete $ENV{MITTE_NGINX};

    is(nginx_binary(), $bin, 'NGINX still names the binary');

    my $http = <<'END';
    mitte_zone m:1m;
    server {
        listen 127.0.0.1:%%PORT%%;
        location /mitte-admin/ { mitte_admin; }
    }
END
    my $t = Mitte::Test->new(upstream => 0, http => $http);
    $t->start;
    is($t->get('/mitte-admin/endpoints')->{status}, 200, 'nginx answers');
    my @emerg = $t->log_lines('emerg');
    ok(!@emerg, 'no [emerg] about the NGINX variable') or diag("@emerg");
    $t->stop;

    my ($rc, $out) = nginx_t($http, upstream => 0);
    is($rc, 0, 'nginx -t with NGINX set: accepted');
    unlike($out, qr/NGINX environment/, 'nginx -t: no word of NGINX');
}

{
    local $ENV{NGINX} = '/nonexistent/nginx';
    local $ENV{MITTE_NGINX} = $bin;
    is(nginx_binary(), $bin, 'MITTE_NGINX wins over NGINX');
}

done_testing();
