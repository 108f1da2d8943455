package Mitte::Test;

# Test harness of ngx_mitte_module: each test file starts its own nginx, with
# its own configuration, on loopback ports, in its own temporary directory;
# talks HTTP to it; reloads it; and stops it, failing when the error log holds
# an [alert], [crit] or [emerg] line, or an [error] line the test did not
# allow. Core Perl only.
#
#   use Mitte::Test qw(:all);
#
#   require_module();                  # skip_all unless the module is built
#   my $t = Mitte::Test->new(http => <<'END', allow => [qr/connect\(\)/]);
#       mitte_zone m:1m;
#       server {
#           listen 127.0.0.1:%%PORT%%;
#           location ~ ^/hooks/(?<slug>[^/]+)$ {
#               mitte_endpoint $slug;
#               proxy_pass http://%%UPSTREAM%%;
#           }
#       }
#   END
#   $t->start;
#   my $r = $t->post('/hooks/a?status=503');          # HTTP::Tiny response
#   $r = $t->deliver('alice', '/hooks/a?status=200'); # ... once recorded
#   my ($r2, $doc) = $t->json(GET => '/mitte/all');   # decoded JSON
#   check_endpoint(find_endpoint($doc, 'a'), 'a', requests => 2);
#   $t->reload;                                       # HUP, new workers
#   $t->stop;                                         # + error log check
#   done_testing();
#
# Placeholders in the http{} text: %%PORT%% (the port tests talk to),
# %%PORT2%% (a spare one), %%UPSTREAM%% (127.0.0.1:port of the built-in
# upstream), %%DEAD%% (127.0.0.1:port where nothing listens), %%DIR%% (the
# temporary directory, no trailing slash), and the NAME of each peer().
#
# The built-in upstream is a server{} of the same nginx: it answers the
# status named by ?status= (see @UPSTREAM_CODES; anything else gets 200 "ok")
# and echoes ?name= in the X-Endpoint-Name response header, the request
# header X-Mitte-Token in the X-Echo-User response header. peer() adds a
# fake TCP upstream that never answers, closes, or sends a broken header.
#
# Also: nginx_t(TEXT) runs nginx -t on a configuration (exit code, output);
# raw() and chunked() send bytes HTTP::Tiny would not; metrics() parses the
# Prometheus text; json_answer_ok(), error_ok() and check_endpoint() are the
# assertions on answers.
#
# Deliveries are recorded in the log phase, which can run after the client
# has its answer: deliver() and wait_recorded() wait for the record, so that
# tests do not race the module.
#
# Environment: MITTE_MODULE (the .so), MITTE_NGINX (the binary,
# /usr/sbin/nginx; NGINX is read too, but nginx reads NGINX itself, as the
# sockets of a binary upgrade: the harness takes it out of nginx's
# environment), MITTE_KEEP=1 keeps the temporary directories,
# MITTE_VERBOSE=1 prints the generated configuration.
#
# A line of an ASan or UBSan report in the error log (nginx sends its
# stderr there) fails the test as an [alert] does.

use strict;
use warnings;

use Carp qw(croak);
use Cwd qw(abs_path);
use Exporter qw(import);
use File::Basename qw(dirname);
use File::Temp qw(tempdir);
use HTTP::Tiny;
use IO::Socket::INET;
use Mitte::Port qw(free_port);
use JSON::PP;
use B;
use POSIX qw(:sys_wait_h strftime);
use Scalar::Util qw(weaken);
use Test::More;
use Time::HiRes qw(sleep time);
use Time::Local qw(timegm);

our @EXPORT_OK = qw(
    repo_root module_path nginx_binary require_module free_port nginx_t
    json_decode json_encode is_number iso_hour iso_ms hour_now period_of
    seconds_to_next_month hours_total @UPSTREAM_CODES iso_parse
    json_answer_ok error_ok find_endpoint check_endpoint content_type
    read_to_eof wait_until
);
our %EXPORT_TAGS = (all => \@EXPORT_OK);

our @UPSTREAM_CODES = qw(200 201 204 301 302 304 400 401 403 404 410 429 500
                         502 503 504);

my $JSON = JSON::PP->new->utf8->canonical;

# every instance alive in this process, for the END block
my %LIVE;


# ---- environment --------------------------------------------------------

sub repo_root {
    return abs_path(dirname(__FILE__) . '/../../..');
}

# absolute: nginx runs with its own prefix, where a relative path would miss
sub module_path {
    my $so = $ENV{MITTE_MODULE}
        || repo_root() . '/build/ngx_http_mitte_module.so';
    return $so =~ m{^/} ? $so : (abs_path($so) // $so);
}

# MITTE_NGINX first: nginx itself reads NGINX (inherited sockets)
sub nginx_binary {
    return $ENV{MITTE_NGINX} || $ENV{NGINX} || '/usr/sbin/nginx';
}

# a report of ASan or UBSan (a module or nginx built with -fsanitize)
my $SANITIZER = qr/:\ runtime\ error:\ |==\d+==\s*ERROR:\ \w+Sanitizer
                   |\bSUMMARY:\ \w+Sanitizer\b/x;

# skip_all when there is nothing to test
sub require_module {
    my $so = module_path();
    my $nginx = nginx_binary();

    plan skip_all => "nginx not found at $nginx (set MITTE_NGINX)"
        unless -x $nginx;
    plan skip_all => "module not built: $so is missing"
        . " (run make, or set MITTE_MODULE)"
        unless -f $so;
    return;
}

# ---- JSON and time helpers ----------------------------------------------

sub json_decode {
    my ($text) = @_;
    return $JSON->decode($text);
}

sub json_encode {
    my ($data) = @_;
    return $JSON->encode($data);
}

# true when a decoded JSON value was a number (not a string); call it before
# the value is used as a string
sub is_number {
    my ($v) = @_;
    return 0 unless defined $v && !ref $v;
    my $flags = B::svref_2object(\$v)->FLAGS;
    return 0 if $flags & B::SVf_POK;
    return ($flags & (B::SVf_IOK | B::SVf_NOK)) ? 1 : 0;
}

sub hour_now {
    return int(time() / 3600);
}

# "2026-02-13T10:00:00.000Z" of an hour index
sub iso_hour {
    my ($hour) = @_;
    return strftime('%Y-%m-%dT%H:00:00.000Z', gmtime($hour * 3600));
}

# "2026-02-13T10:30:00.123Z" of unix milliseconds
sub iso_ms {
    my ($ms) = @_;
    my $s = int($ms / 1000);
    return strftime('%Y-%m-%dT%H:%M:%S', gmtime($s))
        . sprintf('.%03dZ', $ms % 1000);
}

# "2026-11" of a unix time (default now)
sub period_of {
    my ($t) = @_;
    return strftime('%Y-%m', gmtime(defined $t ? $t : time()));
}

sub seconds_to_next_month {
    my ($t) = @_;
    $t = int(defined $t ? $t : time());
    my @g = gmtime($t);
    my ($y, $m) = ($g[5] + 1900, $g[4] + 1);
    ($y, $m) = $m == 12 ? ($y + 1, 1) : ($y, $m + 1);
    return timegm(0, 0, 0, 1, $m - 1, $y) - $t;
}

# sums of an endpoint object's hours: (requests, failures)
sub hours_total {
    my ($ep) = @_;
    my ($req, $fail) = (0, 0);
    for my $h (@{ $ep->{hours} || [] }) {
        $req += $h->{requests};
        $fail += $h->{failures};
    }
    return ($req, $fail);
}


# unix seconds (with fraction) of "2026-02-13T10:30:00.123Z", or undef
sub iso_parse {
    my ($text) = @_;
    return undef unless defined $text && !ref $text;
    my ($y, $mo, $d, $h, $mi, $s, $ms) = $text =~
        /^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)\.(\d{3})Z$/
        or return undef;
    my $t = eval { timegm($s, $mi, $h, $d, $mo - 1, $y) };
    return defined $t ? $t + $ms / 1000 : undef;
}


# ---- assertions on answers -------------------------------------------------

# a JSON answer: the status, Content-Type application/json, a decoded body
sub json_answer_ok {
    my ($r, $doc, $status, $label) = @_;
    my $ok = is($r->{status}, $status, "$label: status $status");
    $ok &= like(content_type($r), qr{^application/json\b}i,
                "$label: Content-Type application/json");
    $ok &= ok(ref $doc eq 'HASH', "$label: body is a JSON object");
    diag("body: " . substr($r->{content} // '', 0, 500)) unless $ok;
    return $ok;
}

# an error answer: {"error": CODE, "message": "..."} with STATUS
sub error_ok {
    my ($r, $doc, $status, $code, $label) = @_;
    my $ok = json_answer_ok($r, $doc, $status, $label);
    $doc = {} unless ref $doc eq 'HASH';
    if (ref $code eq 'ARRAY') {
        my $got = $doc->{error} // '';
        $ok &= ok((grep { $_ eq $got } @$code),
                  "$label: error is one of @$code") or diag("got '$got'");
    } else {
        $ok &= is($doc->{error}, $code, "$label: error $code");
    }
    $ok &= ok(defined $doc->{message} && !ref $doc->{message}
              && length $doc->{message}, "$label: a message");
    return $ok;
}

# the endpoint with SLUG in a {"endpoints": [...]} document, or undef
sub find_endpoint {
    my ($doc, $slug) = @_;
    return undef unless ref $doc eq 'HASH' && ref $doc->{endpoints} eq 'ARRAY';
    my @m = grep { ref $_ eq 'HASH' && ($_->{slug} // '') eq $slug }
        @{ $doc->{endpoints} };
    return $m[0];
}

# check_endpoint(EP, LABEL, %want): the shape of an endpoint object and the
# values asked: slug, name, user, streak, lastStatus (undef: null),
# requests, failures (sums over the hours), hours ([[hour index, requests,
# failures], ...] exactly), h0 (the hour index when the test began: the
# hours lie in h0 .. now, and in a single one when the hour did not change),
# since (unix time before the last delivery: lastDeliveryAt lies between it
# and now).
sub check_endpoint {
    my ($ep, $label, %want) = @_;

    unless (ok(ref $ep eq 'HASH', "$label: endpoint present")) {
        return 0;
    }

    my @fails;

    # types first: a comparison below would turn numbers into strings
    for my $k (qw(slug name user streak lastStatus lastDeliveryAt hours)) {
        push @fails, "key $k missing" unless exists $ep->{$k};
    }
    for my $k (qw(slug name)) {
        push @fails, "$k is not a string"
            if exists $ep->{$k} && (!defined $ep->{$k} || ref $ep->{$k}
                                    || is_number($ep->{$k}));
    }
    push @fails, 'streak is not a number' unless is_number($ep->{streak});
    push @fails, 'lastStatus is neither a number nor null'
        if defined $ep->{lastStatus} && !is_number($ep->{lastStatus});
    if (defined $ep->{lastDeliveryAt}
        && !defined iso_parse($ep->{lastDeliveryAt}))
    {
        push @fails, "lastDeliveryAt '$ep->{lastDeliveryAt}' is not"
                     . ' ISO-8601 with milliseconds';
    }

    my $hours = ref $ep->{hours} eq 'ARRAY' ? $ep->{hours} : [];
    push @fails, 'hours is not an array' unless ref $ep->{hours} eq 'ARRAY';
    my $prev;
    for my $h (@$hours) {
        if (ref $h ne 'HASH') {
            push @fails, 'an hour is not an object';
            next;
        }
        push @fails, 'hour requests is not a number'
            unless is_number($h->{requests});
        push @fails, 'hour failures is not a number'
            unless is_number($h->{failures});
        my $hs = $h->{hour} // '';
        if ($hs !~ /^\d{4}-\d\d-\d\dT\d\d:00:00\.000Z$/) {
            push @fails, "hour '$hs' is not the ISO start of an hour";
            next;
        }
        push @fails, "hours not oldest first at $hs"
            if defined $prev && $prev ge $hs;
        $prev = $hs;
        push @fails, "hour $hs has no requests" unless $h->{requests} > 0;
        push @fails, "hour $hs has more failures than requests"
            if $h->{failures} > $h->{requests};
    }

    my $ok = ok(!@fails, "$label: shape");
    diag(join("\n", @fails) . "\n" . json_encode($ep)) unless $ok;

    for my $k (qw(slug name user streak)) {
        next unless exists $want{$k};
        $ok &= is($ep->{$k}, $want{$k}, "$label: $k");
    }
    if (exists $want{lastStatus}) {
        $ok &= is($ep->{lastStatus}, $want{lastStatus}, "$label: lastStatus");
    }

    my ($req, $fail) = hours_total($ep);
    if (exists $want{requests}) {
        $ok &= is($req, $want{requests}, "$label: requests over the hours");
    }
    if (exists $want{failures}) {
        $ok &= is($fail, $want{failures}, "$label: failures over the hours");
    }

    if ($want{hours}) {
        my @exp = map {
            { hour => iso_hour($_->[0]), requests => $_->[1],
              failures => $_->[2] }
        } @{ $want{hours} };
        my @got = map {
            { hour => $_->{hour}, requests => $_->{requests},
              failures => $_->{failures} }
        } @$hours;
        $ok &= is_deeply(\@got, \@exp, "$label: hours")
            or diag('got ' . json_encode(\@got));
    }

    if (defined $want{h0}) {
        my $h1 = hour_now();
        my @out = grep {
            $_->{hour} lt iso_hour($want{h0}) || $_->{hour} gt iso_hour($h1)
        } @$hours;
        $ok &= ok(!@out, "$label: hours lie in the hours of the test")
            or diag(json_encode($hours));
        if ($h1 == $want{h0} && $req > 0) {
            $ok &= is(scalar @$hours, 1, "$label: one hour bucket");
            $ok &= is($hours->[0]{hour}, iso_hour($h1),
                      "$label: the current hour");
        }
    }

    if (defined $want{since}) {
        my $at = iso_parse($ep->{lastDeliveryAt});
        $ok &= ok(defined $at && $at >= int($want{since}) - 1
                  && $at <= time() + 1,
                  "$label: lastDeliveryAt is the time of the last delivery")
            or diag('lastDeliveryAt ' . ($ep->{lastDeliveryAt} // 'null')
                    . ', test began ' . iso_ms(int($want{since} * 1000)));
    }

    return $ok;
}


# ---- configuration ------------------------------------------------------

sub _upstream_server {
    my ($port) = @_;
    my $ifs = '';

    for my $code (@UPSTREAM_CODES) {
        next if $code == 200;
        my $ret;
        if ($code == 204 || $code == 304) {
            $ret = "return $code;";
        } elsif ($code == 301 || $code == 302) {
            $ret = "return $code /moved;";
        } else {
            $ret = "return $code \"status $code\\n\";";
        }
        $ifs .= "            if (\$arg_status = \"$code\") { $ret }\n";
    }

    return <<"END";
    # built-in upstream: answers ?status=, echoes ?name=
    server {
        listen 127.0.0.1:$port;
        access_log off;
        location / {
            add_header X-Endpoint-Name \$arg_name always;
            add_header X-Echo-User \$http_x_mitte_token always;
$ifs            return 200 "ok\\n";
        }
    }
END
}

sub _expand {
    my ($self, $text) = @_;
    my %v = (
        PORT          => $self->{port},
        PORT2         => $self->{port2},
        UPSTREAM      => "127.0.0.1:$self->{upstream_port}",
        UPSTREAM_PORT => $self->{upstream_port},
        DEAD          => "127.0.0.1:$self->{dead_port}",
        DIR           => $self->{dir},
        %{ $self->{peer_addr} || {} },
    );
    $text =~ s{%%(\w+)%%}{
        defined $v{$1} ? $v{$1} : croak "unknown placeholder %%$1%%"
    }ge;
    return $text;
}

sub _conf {
    my ($self, $http) = @_;
    my $dir = $self->{dir};
    my $so = module_path();
    my $user = $> == 0 ? "user root root;\n" : '';
    my $upstream = $self->{upstream}
        ? _upstream_server($self->{upstream_port}) : '';
    my $main = $self->{main} || '';

    $http = $self->_expand($http);
    $main = $self->_expand($main);

    return <<"END";
# generated by Mitte::Test
daemon off;
master_process on;
worker_processes $self->{workers};
${user}error_log $dir/error.log info;
pid $dir/nginx.pid;
$main
load_module $so;

events {
    worker_connections $self->{connections};
}

http {
    access_log $dir/access.log;
    client_body_temp_path $dir/client_body_temp;
    proxy_temp_path $dir/proxy_temp;
    fastcgi_temp_path $dir/fastcgi_temp;
    uwsgi_temp_path $dir/uwsgi_temp;
    scgi_temp_path $dir/scgi_temp;

$upstream
$http
}
END
}

sub _write_conf {
    my ($self) = @_;
    my $conf = $self->_conf($self->{http});
    my $file = "$self->{dir}/nginx.conf";

    open my $fh, '>', $file or die "$file: $!";
    print {$fh} $conf;
    close $fh or die "$file: $!";
    diag($conf) if $ENV{MITTE_VERBOSE};
    return $file;
}


# ---- the instance -------------------------------------------------------

# new(http => TEXT, workers => 2, allow => [qr/.../], main => TEXT,
#     upstream => 1, all => '/mitte/all', connections => 1024)
# connections: worker_connections (raise worker_rlimit_nofile in main too
# when it passes the file limit)
# all: a path answering every endpoint as {"endpoints": [...]}, polled by
# wait_recorded()
sub new {
    my ($class, %args) = @_;
    croak 'http => TEXT is required' unless defined $args{http};

    my $dir = tempdir('mitte-t-XXXXXX', TMPDIR => 1,
                      CLEANUP => $ENV{MITTE_KEEP} ? 0 : 1);
    chmod 0755, $dir;

    my $self = bless {
        http          => $args{http},
        main          => $args{main},
        workers       => $args{workers} || 2,
        connections   => $args{connections} || 1024,
        allow         => $args{allow} || [],
        upstream      => exists $args{upstream} ? $args{upstream} : 1,
        all           => $args{all},
        dir           => $dir,
        port          => free_port(),
        port2         => free_port(),
        upstream_port => free_port(),
        owner         => $$,
        pid           => undef,
        ua            => HTTP::Tiny->new(
            keep_alive   => 0,
            max_redirect => 0,
            timeout      => 15,
            agent        => 'mitte-test/1',
        ),
    }, $class;

    # the dead port stays bound, never listening: connections to it are
    # refused, and no other test can take it
    $self->{dead_sock} = IO::Socket::INET->new(
        LocalAddr => '127.0.0.1',
        LocalPort => 0,
        Proto     => 'tcp',
    ) or die "cannot bind a loopback port: $!";
    $self->{dead_port} = $self->{dead_sock}->sockport;

    diag("nginx dir: $dir") if $ENV{MITTE_KEEP};
    $LIVE{"$self"} = $self;
    weaken($LIVE{"$self"});
    return $self;
}

sub dir  { $_[0]{dir} }
sub port { $_[0]{port} }
sub pid  { $_[0]{pid} }
sub upstream_port { $_[0]{upstream_port} }
sub dead_port { $_[0]{dead_port} }

# a later allow list entry (for a phase that is expected to log errors)
sub allow {
    my ($self, @re) = @_;
    push @{ $self->{allow} }, @re;
    return $self;
}

sub start {
    my ($self) = @_;
    croak 'already started' if $self->{pid};

    $self->_write_conf;
    my $dir = $self->{dir};

    my $pid = fork;
    die "fork: $!" unless defined $pid;

    if ($pid == 0) {
        open STDIN, '<', '/dev/null';
        open STDOUT, '>>', "$dir/stderr.log";
        open STDERR, '>>', "$dir/stderr.log";
        my $nginx = nginx_binary();
        # nginx takes NGINX for inherited sockets: a path there is an error
        delete $ENV{NGINX};
        exec $nginx, '-p', "$dir/", '-c', "$dir/nginx.conf",
            '-e', "$dir/error.log"
            or POSIX::_exit(127);
    }

    $self->{pid} = $pid;
    $self->_wait_ready(10);
    return $self;
}

sub _alive {
    my ($self) = @_;
    return 0 unless $self->{pid};
    my $r = waitpid($self->{pid}, WNOHANG);
    if ($r == $self->{pid}) {
        $self->{exit_status} = $?;
        $self->{pid} = undef;
        return 0;
    }
    return 1;
}

sub _log_tail {
    my ($self) = @_;
    my $out = '';
    for my $f ('stderr.log', 'error.log') {
        my $path = "$self->{dir}/$f";
        next unless -f $path;
        open my $fh, '<', $path or next;
        my @l = <$fh>;
        close $fh;
        @l = @l[-30 .. -1] if @l > 30;
        $out .= "--- $f\n" . join('', @l);
    }
    return $out;
}

sub _can_connect {
    my ($port) = @_;
    my $s = IO::Socket::INET->new(
        PeerAddr => '127.0.0.1',
        PeerPort => $port,
        Proto    => 'tcp',
        Timeout  => 1,
    );
    return 0 unless $s;
    close $s;
    return 1;
}

sub _wait_ready {
    my ($self, $timeout) = @_;
    my $deadline = time() + $timeout;

    while (time() < $deadline) {
        die "nginx exited at start:\n" . $self->_log_tail
            unless $self->_alive;
        if (_can_connect($self->{port})
            && (!$self->{upstream} || _can_connect($self->{upstream_port}))
            && $self->worker_pids == $self->{workers})
        {
            return 1;
        }
        sleep 0.05;
    }

    die "nginx did not become ready in ${timeout}s:\n" . $self->_log_tail;
}

# pids of the children of a process, with their titles
sub _children {
    my ($ppid) = @_;
    my %kids;

    opendir my $dh, '/proc' or return ();
    for my $p (grep { /^\d+$/ } readdir $dh) {
        open my $fh, '<', "/proc/$p/stat" or next;
        my $stat = <$fh>;
        close $fh;
        next unless defined $stat;
        # pid (comm) state ppid ...; comm may hold spaces and parens
        my $rest = substr($stat, rindex($stat, ')') + 2);
        my ($state, $pp) = split / /, $rest;
        next unless $pp == $ppid && $state ne 'Z';
        my $title = '';
        if (open my $ch, '<', "/proc/$p/cmdline") {
            local $/;
            $title = <$ch> // '';
            close $ch;
            $title =~ s/\0+/ /g;
        }
        $kids{$p} = $title;
    }
    closedir $dh;
    return %kids;
}

# pids of the running (not shutting down) workers
sub worker_pids {
    my ($self) = @_;
    return () unless $self->{pid};
    my %k = _children($self->{pid});
    my @pids = sort { $a <=> $b }
        grep { $k{$_} =~ /worker process/ && $k{$_} !~ /shutting down/ }
        keys %k;
    return @pids;
}

sub _all_child_pids {
    my ($self) = @_;
    return () unless $self->{pid};
    my %k = _children($self->{pid});
    return keys %k;
}

# reload(http => NEW_TEXT, wait => 1): writes the configuration (the new
# text, if given), sends HUP and waits until every old worker is gone and a
# full new generation runs (wait => 0: returns at once). Dies when that
# does not happen (a rejected configuration keeps the old workers).
sub reload {
    my ($self, %args) = @_;
    croak 'not started' unless $self->{pid};

    $self->{http} = $args{http} if defined $args{http};
    $self->_write_conf;

    my %old = map { $_ => 1 } $self->_all_child_pids;
    kill 'HUP', $self->{pid} or die "HUP: $!";

    if (defined $args{wait} && !$args{wait}) {
        # the caller waits, with wait_reloaded(), when it has done its part
        $self->{reload_old} = \%old;
        return 1;
    }

    return $self->wait_reloaded(\%old);
}

# wait_reloaded(): after reload(wait => 0), until the old workers are gone
# and a full new generation runs
sub wait_reloaded {
    my ($self, $old) = @_;
    my %old = %{ $old || $self->{reload_old} || {} };

    my $deadline = time() + 15;
    while (time() < $deadline) {
        die "nginx exited on reload:\n" . $self->_log_tail
            unless $self->_alive;
        my %now = _children($self->{pid});
        my @old_left = grep { $old{$_} } keys %now;
        my @new = grep {
            !$old{$_} && $now{$_} =~ /worker process/
                && $now{$_} !~ /shutting down/
        } keys %now;
        return 1 if !@old_left && @new == $self->{workers};
        sleep 0.05;
    }

    die "reload did not complete in 15s:\n" . $self->_log_tail;
}

# peer(NAME, MODE): a fake upstream in a child process on a new loopback
# port, named %%NAME%% (127.0.0.1:port) in the configuration; call it before
# start(). MODE: "silent" reads the request and never answers; "close"
# reads the request head and closes; "badheader" answers a status line and
# a malformed header. Stopped with nginx.
sub peer {
    my ($self, $name, $mode) = @_;
    croak "unknown peer mode $mode"
        unless $mode =~ /^(?:silent|close|badheader)$/;

    my $listen = IO::Socket::INET->new(
        LocalAddr => '127.0.0.1',
        LocalPort => 0,
        Proto     => 'tcp',
        Listen    => 128,
        ReuseAddr => 1,
    ) or die "peer: cannot listen: $!";
    my $port = $listen->sockport;

    my $pid = fork;
    die "fork: $!" unless defined $pid;

    if ($pid == 0) {
        # never return into the test: no END blocks, no Test::More output
        eval {
            $SIG{TERM} = sub { POSIX::_exit(0) };
            my @held;
            while (my $c = $listen->accept) {
                my $buf = '';
                while ($buf !~ /\r\n\r\n/) {
                    my $n = sysread $c, $buf, 65536, length $buf;
                    last unless $n;
                }
                if ($mode eq 'silent') {
                    push @held, $c;
                    @held = grep { $_->connected } @held;
                } elsif ($mode eq 'close') {
                    close $c;
                } else {
                    syswrite $c, "HTTP/1.1 200 OK\r\nBroken header line\r\n"
                                 . "Content-Length: 3\r\n\r\nok\n";
                    close $c;
                }
            }
        };
        POSIX::_exit(0);
    }

    close $listen;
    $self->{peer_addr}{$name} = "127.0.0.1:$port";
    push @{ $self->{peers} }, $pid;
    return "127.0.0.1:$port";
}

sub _stop_peers {
    my ($self) = @_;
    for my $pid (@{ $self->{peers} || [] }) {
        kill 'TERM', $pid;
        waitpid $pid, 0;
    }
    $self->{peers} = [];
    return;
}

# stop(): QUIT and wait (KILL after 10s), then the error log check, as test
# assertions. Returns the result of the log check.
sub stop {
    my ($self) = @_;
    return 1 if $self->{stopped};
    $self->_shutdown;
    $self->{stopped} = 1;

    is($self->{exit_status}, 0, 'nginx exited cleanly on QUIT')
        or diag($self->_log_tail);
    return $self->check_error_log;
}

# quit(): QUIT and wait, as stop() does, but the instance can start() again
# (same ports, directory and configuration); returns nginx's exit status
sub quit {
    my ($self) = @_;
    my $pid = $self->{pid} or croak 'not started';
    kill 'QUIT', $pid;
    my $deadline = time() + 10;
    while (time() < $deadline) {
        last unless $self->_alive;
        sleep 0.05;
    }
    if ($self->{pid}) {
        diag("nginx $pid did not quit in 10s, killing it");
        $self->kill9;
        return -1;
    }
    return $self->{exit_status};
}

# kill9(): the master and every worker killed at once, as in a crash
sub kill9 {
    my ($self) = @_;
    my $pid = $self->{pid} or croak 'not started';
    my @kids = $self->_all_child_pids;
    kill 'KILL', $pid, @kids;
    waitpid($pid, 0);
    $self->{exit_status} = $?;
    $self->{pid} = undef;
    my $deadline = time() + 5;
    while (time() < $deadline && grep { kill 0, $_ } @kids) {
        sleep 0.05;
    }
    return;
}

sub _shutdown {
    my ($self) = @_;
    return unless $$ == $self->{owner};
    $self->_stop_peers;
    return unless $self->{pid};

    # workers outlive a killed master: end ours, by pid
    my @kids = $self->_all_child_pids;
    $self->quit;
    for my $k (@kids) {
        kill 'KILL', $k if kill 0, $k;
    }
    return;
}

# the lines of the error log (and of nginx's stderr)
sub error_log_lines {
    my ($self) = @_;
    my @lines;
    for my $f ('error.log', 'stderr.log') {
        my $path = "$self->{dir}/$f";
        next unless -f $path;
        open my $fh, '<', $path or die "$path: $!";
        push @lines, <$fh>;
        close $fh;
    }
    chomp @lines;
    return @lines;
}

# lines at a level ("error", "warn", ...) matching an optional regexp
sub log_lines {
    my ($self, $level, $re) = @_;
    return grep {
        /\[\Q$level\E\]/ && (!$re || $_ =~ $re)
    } $self->error_log_lines;
}

# no [alert], [crit], [emerg]; no [error] unless it matches the allow list
sub _bad_lines {
    my ($self) = @_;
    my @bad;
    for my $l ($self->error_log_lines) {
        if ($l =~ /\[(alert|crit|emerg)\]/ || $l =~ $SANITIZER) {
            push @bad, $l;
        } elsif ($l =~ /\[error\]/) {
            push @bad, $l unless grep { $l =~ $_ } @{ $self->{allow} };
        }
    }
    return @bad;
}

sub check_error_log {
    my ($self) = @_;
    my @bad = $self->_bad_lines;
    my $ok = ok(!@bad, 'error log: no alert, crit, emerg or unexpected'
                       . ' error lines');
    unless ($ok) {
        my @show = @bad > 20 ? (@bad[0 .. 19], '...') : @bad;
        diag(join "\n", @show);
    }
    return $ok;
}

sub DESTROY {
    my ($self) = @_;
    return unless $$ == ($self->{owner} || 0);
    local ($?, $@);
    $self->_stop_peers;
    if ($self->{pid}) {
        $self->_shutdown;
        my @bad = $self->_bad_lines;
        diag("error log of an nginx not stopped by the test:\n"
             . join("\n", @bad)) if @bad;
    }
    delete $LIVE{"$self"};
    return;
}

END {
    local $?;    # the exit status of the test script
    for my $t (values %LIVE) {
        $t->_shutdown if $t;
    }
}


# ---- HTTP -----------------------------------------------------------------

sub url {
    my ($self, $path) = @_;
    return "http://127.0.0.1:$self->{port}$path";
}

# request(METHOD, PATH, headers => {...}, content => TEXT|REF, port => N)
# content may be a reference, sent as JSON. Returns HTTP::Tiny's response.
sub request {
    my ($self, $method, $path, %opt) = @_;
    my %h = %{ $opt{headers} || {} };
    my %args = (headers => \%h);

    if (exists $opt{content}) {
        my $c = $opt{content};
        if (ref $c) {
            $c = json_encode($c);
            $h{'Content-Type'} ||= 'application/json';
        }
        $args{content} = $c;
    }

    my $port = $opt{port} || $self->{port};
    my $url = "http://127.0.0.1:$port$path";
    my $r = $self->{ua}->request($method, $url, \%args);
    if ($r->{status} == 599) {
        diag("$method $path: client error: $r->{content}");
    }
    return $r;
}

# raw(BYTES): sends BYTES as they are (a request with "Connection: close")
# and reads the answer to EOF; returns {status, headers, content} as
# HTTP::Tiny does (a chunked answer is decoded), status 599 when none came.
sub raw {
    my ($self, $bytes) = @_;
    local $SIG{PIPE} = 'IGNORE';

    my $s = IO::Socket::INET->new(
        PeerAddr => '127.0.0.1',
        PeerPort => $self->{port},
        Proto    => 'tcp',
        Timeout  => 10,
    ) or return { status => 599, headers => {}, content => "connect: $!" };

    my $off = 0;
    while ($off < length $bytes) {
        my $n = syswrite $s, $bytes, 65536, $off;
        last unless $n;    # an early answer may close the connection
        $off += $n;
    }

    my $in = read_to_eof($s, 15);

    my ($head, $body) = split /\r\n\r\n/, $in, 2;
    my ($status) = ($head // '') =~ m{^HTTP/\d\.\d (\d{3})};
    return { status => 599, headers => {}, content => $in }
        unless $status;

    my %h;
    for my $l (split /\r\n/, $head) {
        next unless $l =~ /^([^:\s]+):\s*(.*)$/;
        $h{lc $1} = $2;
    }
    $body //= '';
    if (($h{'transfer-encoding'} // '') =~ /chunked/i) {
        my $out = '';
        while ($body =~ s/^([0-9a-fA-F]+)[^\r\n]*\r\n//) {
            my $len = hex $1;
            last if $len == 0;
            $out .= substr($body, 0, $len, '');
            $body =~ s/^\r\n//;
        }
        $body = $out;
    }
    return { status => $status, headers => \%h, content => $body };
}

# wait_until(COND, SECONDS): calls COND every 50 ms until it returns a
# true value or SECONDS (default 30) have passed; its last value
sub wait_until {
    my ($cond, $seconds) = @_;
    my $deadline = time() + ($seconds || 30);
    while (1) {
        my $v = $cond->();
        return $v if $v || time() > $deadline;
        sleep 0.05;
    }
}

# read_to_eof(SOCKET, SECONDS): what the peer sends until it closes (at
# most SECONDS), and the socket closed
sub read_to_eof {
    my ($s, $seconds) = @_;
    my $in = '';
    my $deadline = time() + $seconds;
    while (time() < $deadline) {
        my $n = sysread $s, $in, 65536, length $in;
        last unless $n;
    }
    close $s;
    return $in;
}

# a request in chunked transfer encoding, BODY in chunks of CHUNK bytes
sub chunked {
    my ($self, $method, $path, $body, $chunk) = @_;
    $chunk ||= 4096;
    my $req = "$method $path HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        . "Content-Type: application/json\r\nConnection: close\r\n"
        . "Transfer-Encoding: chunked\r\n\r\n";
    for (my $i = 0; $i < length $body; $i += $chunk) {
        my $part = substr $body, $i, $chunk;
        $req .= sprintf("%x\r\n", length $part) . $part . "\r\n";
    }
    $req .= "0\r\n\r\n";
    return $self->raw($req);
}

sub get    { my $s = shift; return $s->request('GET', @_) }
sub put    { my $s = shift; return $s->request('PUT', @_) }
sub delete { my $s = shift; return $s->request('DELETE', @_) }

# POST with a small body, as a webhook delivery is
sub post {
    my ($self, $path, %opt) = @_;
    $opt{content} = '{"event":"test"}' unless exists $opt{content};
    return $self->request('POST', $path, %opt);
}

# a delivery of user USER: post_as(USER, PATH, %opt)
sub post_as {
    my ($self, $user, $path, %opt) = @_;
    $opt{headers} = { %{ $opt{headers} || {} }, 'X-Mitte-User' => $user };
    return $self->post($path, %opt);
}

# Recording happens in the log phase, after the client has its answer (and,
# with lingering close, after the client has closed): a client can see its
# answer before the delivery is counted. Tests that read statistics right
# after a delivery, or depend on the order of deliveries, wait for them.

# wait_recorded(SLUG, N): polls the all-endpoints document (the "all" path
# given to new(), default /mitte/all) until SLUG has at least N requests
# over its hours. Returns the endpoint object (undef when never seen).
sub wait_recorded {
    my ($self, $slug, $n) = @_;
    my $path = $self->{all} || '/mitte/all';
    my $deadline = time() + 5;
    my $ep;

    while (1) {
        my $r = $self->get($path);
        my $doc = eval { json_decode($r->{content}) };
        $ep = find_endpoint($doc, $slug);
        my ($req) = $ep ? hours_total($ep) : (0);
        return $ep if $req >= $n;
        last if time() > $deadline;
        sleep 0.01;
    }

    diag("$slug: $n deliveries not recorded after 5s (GET $path)");
    return $ep;
}

# deliver(USER, PATH, %opt): a delivery (POST) as USER to PATH, whose last
# path segment is the slug; returns once it is recorded (it counts the
# deliveries of each slug made through it). USER undef: no X-Mitte-User.
sub deliver {
    my ($self, $user, $path, %opt) = @_;
    my ($slug) = $path =~ m{/([^/?]+)(?:\?|$)};
    my $r = defined $user ? $self->post_as($user, $path, %opt)
                          : $self->post($path, %opt);
    my $n = ++$self->{delivered}{$slug};
    $self->wait_recorded($slug, $n);
    return $r;
}

# the deliveries of SLUG made through deliver(); set_delivered(SLUG, N)
# when the count changes otherwise (an import, a delete)
sub delivered {
    my ($self, $slug) = @_;
    return $self->{delivered}{$slug} || 0;
}

sub set_delivered {
    my ($self, $slug, $n) = @_;
    $self->{delivered}{$slug} = $n;
    return;
}

# json(METHOD, PATH, %opt): (response, decoded body or undef). The body is
# decoded whatever the Content-Type; a body that is not JSON gives undef and
# a diag.
sub json {
    my ($self, $method, $path, %opt) = @_;
    my $r = $self->request($method, $path, %opt);
    my $doc = eval { json_decode($r->{content}) };
    if (!defined $doc) {
        diag("$method $path: $r->{status}, body is not JSON: "
             . substr($r->{content} // '', 0, 200));
    }
    return ($r, $doc);
}

# metric(NAME, DEFAULT): one metric's value ('name{labels}'), DEFAULT
# when the metrics do not list it
sub metric {
    my ($self, $name, $default) = @_;
    my (undef, $m) = $self->metrics;
    return $m->{$name} // $default;
}

# metrics(PATH): (response, {'name{labels}' => value}, [lines not in the
# text format])
sub metrics {
    my ($self, $path) = @_;
    my $r = $self->get($path || '/mitte-admin/metrics');
    my (%m, @bad);
    for my $l (split /\n/, $r->{content} // '') {
        next if $l =~ /^\s*$/ || $l =~ /^#/;
        my ($key, $val) = $l =~
            /^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?)\s+(\S+)(?:\s+\d+)?$/;
        if (defined $val
            && $val =~ /^[-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|NaN|[-+]?Inf)$/)
        {
            $m{$key} = $val;
        } else {
            push @bad, $l;
        }
    }
    return ($r, \%m, \@bad);
}

sub content_type {
    my ($r) = @_;
    return $r->{headers}{'content-type'} // '';
}


# ---- nginx -t -------------------------------------------------------------

# nginx_t(HTTP_TEXT, %new_args): (exit code, output of nginx -t)
sub nginx_t {
    my ($http, %args) = @_;
    my $t = Mitte::Test->new(http => $http, %args);
    my $conf = $t->_write_conf;
    my $dir = $t->{dir};

    my $pid = open my $fh, '-|';
    die "fork: $!" unless defined $pid;
    if ($pid == 0) {
        open STDERR, '>&', \*STDOUT;
        my $nginx = nginx_binary();
        delete $ENV{NGINX};
        exec $nginx, '-t', '-p', "$dir/", '-c', $conf,
            '-e', 'stderr'
            or POSIX::_exit(127);
    }
    my $out = do { local $/; <$fh> } // '';
    close $fh;
    my $rc = $? >> 8;

    # what was logged after the switch to the configured error log
    if (open my $lf, '<', "$dir/error.log") {
        $out .= do { local $/; <$lf> } // '';
        close $lf;
    }

    # a sanitizer stops nginx -t with a signal, which ">> 8" would hide
    if ($? & 127 || $out =~ $SANITIZER) {
        fail('nginx -t: no crash or sanitizer report');
        diag($out);
    }
    return ($rc, $out);
}

1;
