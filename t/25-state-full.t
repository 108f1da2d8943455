#!/usr/bin/perl

# A state file write that fails leaves no "<path>.tmp" behind (issue 11,
# defect 5). The state file lies on a 64 KiB tmpfs: a first write of a
# small state succeeds; then more state than fits: the writes fail
# (ENOSPC), the partial .tmp is removed (the filesystem is empty again but
# for the previous file), the previous state file stays whole, and so at
# nginx's exit (the master's write fails too). Needs root (to mount the
# tmpfs): skipped otherwise.

use strict;
use warnings;

use Test::More;
use Time::HiRes qw(sleep time);
use Mitte::Test qw(:all);

require_module();

plan skip_all => 'mounting a tmpfs needs root' unless $> == 0;

my $t = Mitte::Test->new(all => '/mitte/all',
                         allow => [qr/mitte_state_file: .*failed/],
                         http => <<'END');
    mitte_zone m:4m;
    mitte_state_file %%DIR%%/small/mitte.state interval=1s;

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

my $small = $t->dir . '/small';
mkdir $small or die "$small: $!";
system('mount', '-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', $small) == 0
    or plan skip_all => 'cannot mount a tmpfs here';
my $mounted = 1;
END { local $?; system('umount', $small) if $mounted }

my $state = "$small/mitte.state";
my $tmp = "$state.tmp";

sub writes {
    my (undef, $m) = $t->metrics;
    return ($m->{'mitte_state_writes_total{result="written"}'} // 0,
            $m->{'mitte_state_writes_total{result="failed"}'} // 0);
}

# until COND or 10 s
sub wait_for {
    my ($cond) = @_;
    my $deadline = time() + 10;
    until ($cond->()) {
        return 0 if time() > $deadline;
        sleep 0.1;
    }
    return 1;
}

sub slurp {
    my ($path) = @_;
    open my $fh, '<:raw', $path or return '';
    local $/;
    my $data = <$fh>;
    close $fh;
    return $data // '';
}

sub used_kb {
    my @df = `df -k $small`;
    my @f = split ' ', $df[-1] // '';
    return $f[2];
}

$t->start;

$t->deliver('alice', '/hooks/first');
my ($w0) = writes();
ok(wait_for(sub { (writes())[0] > $w0 && -s $state }),
   'a small state is written');
ok(length(slurp($state)) > 0, 'the state file has its records');

# endpoints with names and several users: far more than 64 KiB
my $ua = HTTP::Tiny->new(keep_alive => 1);
for my $i (1 .. 400) {
    $ua->put($t->url("/mitte-admin/endpoints/ep$i"), {
        content => json_encode({ name => 'n' x 100, user => "user$i",
                                 hours => [{ hour => int(time()), requests => 5,
                                             failures => 1 }] }) });
}

my (undef, $f0) = writes();
ok(wait_for(sub { (writes())[1] >= $f0 + 1 }), 'a write fails');
ok(!-e $tmp, 'no .tmp left behind after a failed write')
    or diag((-s $tmp) . " bytes in $tmp");
my $good = slurp($state);
like($good, qr/^MITTEST/, 'the previous state file is there');
my ($written, $failed) = writes();
ok(wait_for(sub { (writes())[1] >= $failed + 2 }), 'two more writes fail');
is((writes())[0], $written, 'none was written meanwhile');
ok(!-e $tmp, 'still no .tmp');
ok(slurp($state) eq $good, 'the previous state file stays whole');
my $kb = used_kb();
ok(defined $kb && $kb * 1024 <= length($good) + 8192,
   'the filesystem holds only the previous state file')
    or diag("used ${kb} KiB, state file " . length($good) . ' bytes');

# the master's write at exit fails too, and cleans up as well
$t->stop;
ok(!-e $tmp, 'no .tmp left behind at exit');
ok(slurp($state) eq $good, 'the previous state file stays whole at exit');
ok(grep({ /mitte_state_file: write\(\) failed/ } $t->error_log_lines),
   'the failed write was logged');

system('umount', $small);
$mounted = 0;

done_testing();
