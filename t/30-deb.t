#!/usr/bin/perl

# The Debian package (make deb): its control fields and Depends (the
# libraries the module links, from shlibs, and the nginx-abi-* of the
# nginx-dev it was built against), its files (the module, the
# modules-available load file, docs, examples, nothing in /etc), its
# maintainer scripts (run against a scratch /etc/nginx/modules-enabled:
# enable on install, .removed on remove, back on reinstall, an operator's
# removal respected, gone on purge), nginx -t on a configuration that
# includes the extracted load file and uses the module's directives, the
# packaged module answering requests, and lintian (errors fail, warnings
# are printed).
#
# MITTE_DEB names the .deb (make test sets it); without it, the one
# debian/changelog names in build/. The test skips when it is missing.
# Nothing is installed on this machine.

use strict;
use warnings;

use Test::More;
use File::Temp qw(tempdir);
use POSIX ();
use Mitte::Test qw(:all);

my $root = repo_root();
my $PKG = 'libnginx-mod-http-mitte';
my $SO = 'ngx_http_mitte_module.so';
my $LOAD = 'mod-http-mitte.conf';

sub slurp {
    my ($file) = @_;
    open my $fh, '<', $file or die "$file: $!";
    local $/;
    my $text = <$fh>;
    close $fh;
    return $text;
}

sub spew {
    my ($file, $text) = @_;
    open my $fh, '>', $file or die "$file: $!";
    print {$fh} $text;
    close $fh or die "$file: $!";
    return;
}

# run(CMD...): (exit code, stdout and stderr)
sub run {
    my @cmd = @_;
    my $pid = open my $fh, '-|';
    die "fork: $!" unless defined $pid;
    if ($pid == 0) {
        open STDERR, '>&', \*STDOUT;
        exec @cmd or POSIX::_exit(127);
    }
    my $out = do { local $/; <$fh> } // '';
    close $fh;
    return ($? >> 8, $out);
}

sub have {
    my ($tool) = @_;
    return grep { -x "$_/$tool" } split /:/, $ENV{PATH};
}

my ($version) = slurp("$root/debian/changelog") =~ /^\S+ \(([^)]+)\)/;
chomp(my $arch = `dpkg --print-architecture 2>/dev/null` // '');
my $deb = $ENV{MITTE_DEB} || "$root/build/${PKG}_${version}_$arch.deb";

# the package's module is built for Debian's nginx: the sanitized suite
# runs another nginx binary, which that module does not belong in
plan skip_all => 'the package is for Debian\'s nginx, not the sanitized one'
    if $ENV{MITTE_SANITIZED};
plan skip_all => 'dpkg-deb not found (not a Debian system)'
    unless have('dpkg-deb');
plan skip_all => "package not built: $deb is missing (run make deb)"
    unless -f $deb;
plan skip_all => 'nginx not found at ' . nginx_binary()
    unless -x nginx_binary();

my $tmp = tempdir('mitte-t-deb-XXXXXX', TMPDIR => 1,
                  CLEANUP => !$ENV{MITTE_KEEP});
my $ex = "$tmp/root";


# ---- control fields and dependencies ------------------------------------

my ($rc, $info) = run('dpkg-deb', '-I', $deb);
is($rc, 0, 'dpkg-deb -I reads the package');

my %f;
for my $name (qw(Package Version Architecture Depends Section)) {
    ($f{$name}) = $info =~ /^ \Q$name\E: (.*)$/m;
}
is($f{Package}, $PKG, 'Package');
is($f{Version}, $version, 'Version is the one debian/changelog names');
is($f{Architecture}, $arch, 'Architecture');
is($f{Section}, 'httpd', 'Section httpd, as nginx modules');

my %dep = map { /^([\w.+-]+)/ ? ($1 => 1) : () }
          split /\s*[,|]\s*/, $f{Depends} // '';
diag("Depends: " . ($f{Depends} // '(none)'));

my $abi_file = '/usr/share/nginx/src/debian/libnginx-mod.abisubstvars';
my ($abi) = -r $abi_file ? slurp($abi_file) =~ /^nginx:abi=(\S+)/m : ();
if (defined $abi) {
    ok($dep{$abi}, "Depends on $abi, the ABI of the nginx built against");
} else {
    ok((grep { /^nginx-abi-/ } keys %dep), 'Depends on an nginx-abi-*');
}
ok($dep{$_}, "Depends on $_") for qw(libc6 libcurl4 libcjson1 libssl3);


# ---- files --------------------------------------------------------------

($rc, my $list) = run('dpkg-deb', '-c', $deb);
is($rc, 0, 'dpkg-deb -c lists the files');
my @files = map { (split ' ', $_, 6)[5] } split /\n/, $list;
s{^\./}{/} for @files;
my %file = map { $_ => 1 } @files;

my $doc = "/usr/share/doc/$PKG";
for my $f ("/usr/lib/nginx/modules/$SO",
           "/usr/share/nginx/modules-available/$LOAD",
           "$doc/copyright", "$doc/changelog.Debian.gz",
           "$doc/examples/nginx.conf")
{
    ok($file{$f}, "ships $f");
}
# dh_compress gzips the documents over 4 KiB: either name will do
for my $md (qw(README directives api operations design cluster dashboard)) {
    ok($file{"$doc/$md.md"} || $file{"$doc/$md.md.gz"},
       "ships $doc/$md.md");
}
is_deeply([grep { m{^/etc/} } @files], [],
          'nothing in /etc: the package never touches nginx.conf');

($rc, my $out) = run('dpkg-deb', '-x', $deb, $ex);
is($rc, 0, 'dpkg-deb -x extracts it') or diag($out);

my $load = "$ex/usr/share/nginx/modules-available/$LOAD";
is(slurp($load), "load_module modules/$SO;\n",
   "$LOAD loads the module from nginx's modules directory");

# each library the module links comes from a package it depends on
SKIP: {
    skip 'readelf not found', 1 unless have('readelf');
    ($rc, $out) = run('readelf', '-d', "$ex/usr/lib/nginx/modules/$SO");
    my @needed = $out =~ /\(NEEDED\)\s+Shared library: \[([^\]]+)\]/g;
    my @missing;
    for my $lib (@needed) {
        my ($src_rc, $owners) = run('dpkg', '-S', "*/$lib");
        my @pkgs = $owners =~ /^([\w.+-]+)(?::\w+)*(?:, [\w.+:-]+)*: /mg;
        push @missing, "$lib (" . join(' ', @pkgs) . ')'
            unless grep { $dep{$_} } @pkgs;
    }
    is_deeply(\@missing, [], 'Depends covers every library linked: '
              . join(' ', @needed));
}


# ---- maintainer scripts -------------------------------------------------

# the scripts dh_nginx wrote, pointed at a scratch /etc/nginx and with a
# dpkg-trigger that writes down what it was asked
my $ctl = "$tmp/control";
($rc, $out) = run('dpkg-deb', '-e', $deb, $ctl);
is($rc, 0, 'dpkg-deb -e extracts the maintainer scripts') or diag($out);

my $etc = "$tmp/etc/nginx/modules-enabled";
my $bin = "$tmp/bin";
my $triggers = "$tmp/triggers";
mkdir $_ or die "$_: $!" for "$tmp/etc", "$tmp/etc/nginx", $etc, $bin;
spew("$bin/dpkg-trigger", "#!/bin/sh\necho \"\$*\" >> $triggers\n");
chmod 0755, "$bin/dpkg-trigger";

for my $s (qw(postinst prerm postrm)) {
    ok(-x "$ctl/$s", "$s present");
    my $text = slurp("$ctl/$s");
    unlike($text, qr/nginx\.conf\b/, "$s leaves nginx.conf alone");
    $text =~ s{/etc/nginx/modules-enabled}{$etc}g;
    $text =~ s{/usr/share/nginx/modules-available}
              {$ex/usr/share/nginx/modules-available}g;
    spew("$tmp/$s", $text);
    chmod 0755, "$tmp/$s";
}

sub script {
    my ($s, @args) = @_;
    unlink $triggers;
    local $ENV{PATH} = "$bin:$ENV{PATH}";
    my ($src, $o) = run("$tmp/$s", @args);
    is($src, 0, "$s @args succeeds") or diag($o);
    return -e $triggers ? slurp($triggers) : '';
}

my $link = "$etc/50-$LOAD";
my $trig = script('postinst', 'configure');
is(readlink($link), "$ex/usr/share/nginx/modules-available/$LOAD",
   'postinst configure (first install) enables the module');
is($trig, "--no-await nginx-reload\n", 'and asks for an nginx reload');

script('prerm', 'remove');
ok(!-e $link && -l "$link.removed",
   'prerm remove disables it (the link becomes .removed)');
$trig = script('postrm', 'remove');
is($trig, "--no-await nginx-reload\n", 'postrm remove asks for a reload');

script('postinst', 'configure', $version);
ok(-l $link && !-e "$link.removed",
   'postinst configure after a remove enables it again');

unlink $link;
script('postinst', 'configure', $version);
ok(!-e $link, 'an upgrade leaves a link the operator removed removed');

symlink("$ex/usr/share/nginx/modules-available/$LOAD", $link)
    or die "$link: $!";
script('prerm', 'remove');
script('postrm', 'purge');
opendir my $dh, $etc or die "$etc: $!";
is_deeply([grep { !/^\.\.?$/ } readdir $dh], [],
          'postrm purge leaves modules-enabled empty');
closedir $dh;


# ---- nginx -t with the extracted load file ------------------------------

# the load file, its path rewritten to the extracted root, included as an
# operator's nginx.conf includes /etc/nginx/modules-enabled/*.conf
my $conf_load = slurp($load);
$conf_load =~ s{load_module modules/}{load_module $ex/usr/lib/nginx/modules/};
spew($load, $conf_load);

my $user = $> == 0 ? "user root root;\n" : '';
my $conf = "$tmp/nginx.conf";
spew($conf, <<"END");
${user}pid $tmp/nginx.pid;
error_log $tmp/error.log;
include $ex/usr/share/nginx/modules-available/*.conf;

events {}

http {
    mitte_zone mitte:1m;

    server {
        listen 127.0.0.1:1;
        location ~ ^/hooks/(?<slug>[A-Za-z0-9._-]+)\$ {
            mitte_endpoint \$slug;
            mitte_user     \$http_x_mitte_user;
            proxy_pass     http://127.0.0.1:2;
        }
        location = /mitte/stats {
            mitte_user \$remote_user;
            mitte_stats;
        }
        location /mitte-admin/ {
            mitte_admin;
        }
    }
}
END
($rc, $out) = run(nginx_binary(), '-t', '-p', "$tmp/", '-c', $conf,
                  '-e', 'stderr');
is($rc, 0, 'nginx -t passes with the packaged module and its directives')
    or diag($out);
like($out, qr/test is successful/, 'nginx -t: test is successful');


# ---- the packaged module at work ----------------------------------------

{
    local $ENV{MITTE_MODULE} = "$ex/usr/lib/nginx/modules/$SO";
    my $t = Mitte::Test->new(http => <<'END', all => '/mitte/all');
    mitte_zone m:1m;
    server {
        listen 127.0.0.1:%%PORT%%;
        location ~ ^/hooks/(?<slug>[^/]+)$ {
            mitte_endpoint $slug;
            mitte_user $http_x_mitte_user;
            proxy_pass http://%%UPSTREAM%%;
        }
        location = /mitte/all { mitte_stats all; }
        location /mitte-admin/ { mitte_admin; }
    }
END
    $t->start;
    $t->deliver('alice', '/hooks/pkg?status=200');
    $t->deliver('alice', '/hooks/pkg?status=503');
    my ($r, $m) = $t->metrics;
    is($m->{'mitte_deliveries_total{result="success"}'}, 1,
       'the packaged module records a success');
    is($m->{'mitte_deliveries_total{result="failure"}'}, 1,
       'and a failure');
    $t->stop;
}


# ---- lintian ------------------------------------------------------------

SKIP: {
    skip 'lintian not installed (make deb-deps installs it)', 1
        unless have('lintian');
    (my $changes = $deb) =~ s/\.deb$/.changes/;
    my $what = -f $changes ? $changes : $deb;
    ($rc, $out) = run('lintian', $what);
    my @errors = grep { /^E: / } split /\n/, $out;
    my @warnings = grep { /^W: / } split /\n/, $out;
    diag("lintian: $_") for @warnings;
    is_deeply(\@errors, [], 'lintian reports no errors')
        or diag($out);
}

done_testing();
