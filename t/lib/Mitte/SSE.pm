package Mitte::SSE;

# Event stream client and process helpers for the tests of mitte_sse, on top
# of Mitte::Test. Core Perl only.
#
#   use Mitte::SSE qw(:all);
#
#   my $s = Mitte::SSE->open($t, '/mitte/events',
#                            headers => { 'X-Mitte-User' => 'alice' });
#   is($s->status, 200);                       # the response head was read
#   $s->wait_events(3, 5);                     # 3 events within 5s
#   for my $e ($s->events) { $e->{id}, $e->{event}, $e->{json} ... }
#   $s->wait_for(sub { $s->comments >= 2 }, 3);
#   $s->close;
#
# A stream is a raw IO::Socket::INET connection; reads are non-blocking
# (select with a deadline), a chunked body is decoded as it comes, and the
# body is cut into Server-Sent Events frames at blank lines. Each frame is
# {id, event, data, retry, comments => [...], json, at}; frames with data
# are "events", comment lines (": ping") are counted with their arrival
# time.
#
# Also: worker_of() tells which nginx worker holds the server side of a
# stream (from /proc/net/tcp and /proc/PID/fd), rss_kb() sums VmRSS of
# processes, stub_active() reads "Active connections" of a stub_status
# location, and parallel() runs code in forked client processes.

use strict;
use warnings;

use Carp qw(croak);
use Exporter qw(import);
use IO::Select;
use IO::Socket::INET;
use POSIX qw(:sys_wait_h);
use Socket qw(SOL_SOCKET SO_RCVBUF);
use Time::HiRes qw(sleep time);

use Mitte::Test qw(json_decode);

our @EXPORT_OK = qw(worker_of rss_kb stub_active parallel pump_many
                    wait_many);
our %EXPORT_TAGS = (all => \@EXPORT_OK);


# open(T, PATH, headers => {...}, port => N, method => 'GET',
#      rcvbuf => BYTES, head => 1, timeout => 5, http10 => 0)
# Connects, sends the request and (unless head => 0) waits for the response
# head. rcvbuf sets SO_RCVBUF before the connection is made (a small receive
# window, for a subscriber that does not read). Dies when the connection
# cannot be made.
sub open {
    my ($class, $t, $path, %opt) = @_;
    my $port = $opt{port} || $t->port;
    local $SIG{PIPE} = 'IGNORE';

    my $sock;
    if ($opt{rcvbuf}) {
        $sock = IO::Socket::INET->new(Proto => 'tcp')
            or die "socket: $!";
        setsockopt($sock, SOL_SOCKET, SO_RCVBUF, pack('i', $opt{rcvbuf}))
            or die "SO_RCVBUF: $!";
        my $addr = Socket::pack_sockaddr_in($port,
                                            Socket::inet_aton('127.0.0.1'));
        $sock->connect($addr) or die "connect 127.0.0.1:$port: $!";
    } else {
        $sock = IO::Socket::INET->new(
            PeerAddr => '127.0.0.1',
            PeerPort => $port,
            Proto    => 'tcp',
            Timeout  => 5,
        ) or die "connect 127.0.0.1:$port: $!";
    }
    $sock->blocking(0);

    my $method = $opt{method} || 'GET';
    my $proto = $opt{http10} ? 'HTTP/1.0' : 'HTTP/1.1';
    my $req = "$method $path $proto\r\nHost: 127.0.0.1\r\n"
        . "Accept: text/event-stream\r\n";
    for my $k (sort keys %{ $opt{headers} || {} }) {
        $req .= "$k: $opt{headers}{$k}\r\n";
    }
    if (defined $opt{content}) {
        $req .= 'Content-Length: ' . length($opt{content}) . "\r\n";
    }
    $req .= "\r\n" . ($opt{content} // '');

    my $self = bless {
        sock     => $sock,
        sel      => IO::Select->new($sock),
        port     => $port,
        raw      => '',      # bytes not yet decoded
        body     => '',      # decoded body not yet cut into frames
        head     => undef,
        status   => undef,
        headers  => {},
        chunked  => 0,
        frames   => [],
        events   => [],
        comments => [],
        eof      => 0,
        error    => undef,
        t0       => time(),
    }, $class;

    _write_all($sock, $req) or die "write: $!";

    if (!exists $opt{head} || $opt{head}) {
        $self->wait_for(sub { defined $self->{status} || $self->{eof} },
                        $opt{timeout} || 5);
    }
    return $self;
}

sub _write_all {
    my ($sock, $data) = @_;
    my $off = 0;
    my $deadline = time() + 5;
    while ($off < length $data) {
        my $n = syswrite $sock, $data, length($data) - $off, $off;
        if (defined $n) {
            $off += $n;
            next;
        }
        return 0 unless $!{EAGAIN} || $!{EWOULDBLOCK};
        return 0 if time() > $deadline;
        IO::Select->new($sock)->can_write(0.1);
    }
    return 1;
}

sub status   { $_[0]{status} }
sub head     { $_[0]{head} }
sub closed   { $_[0]{eof} }
sub socket   { $_[0]{sock} }
sub frames   { @{ $_[0]{frames} } }
sub events   { @{ $_[0]{events} } }
sub comments { @{ $_[0]{comments} } }
sub body_raw { $_[0]{body} }

# a response header (lower-case name), or undef
sub header {
    my ($self, $name) = @_;
    return $self->{headers}{ lc $name };
}

# the events of one type ("webhook:delivered", ...)
sub events_of {
    my ($self, $type) = @_;
    return grep { ($_->{event} // '') eq $type } @{ $self->{events} };
}

# the ids of the events, as numbers when they are decimal
sub ids {
    my ($self) = @_;
    return map { $_->{id} } @{ $self->{events} };
}

sub local_port {
    my ($self) = @_;
    return $self->{sock} ? $self->{sock}->sockport : undef;
}

# pump(TIMEOUT): waits at most TIMEOUT seconds for bytes, reads what is
# there and parses it. Returns the number of bytes read (0 at EOF or when
# nothing came).
sub pump {
    my ($self, $timeout) = @_;
    return 0 if $self->{eof} || !$self->{sock};
    return 0 unless $self->{sel}->can_read($timeout);

    my $total = 0;
    while (1) {
        my $n = sysread $self->{sock}, $self->{raw}, 262144,
            length $self->{raw};
        if (!defined $n) {
            last if $!{EAGAIN} || $!{EWOULDBLOCK};
            $self->{error} = "$!";
            $self->{eof} = 1;
            last;
        }
        if ($n == 0) {
            $self->{eof} = 1;
            last;
        }
        $total += $n;
        last if $total > 4 * 1024 * 1024;
    }
    $self->_parse;
    return $total;
}

# wait_for(CODE, TIMEOUT): pumps until CODE returns true (its value is
# returned), the stream ends, or TIMEOUT seconds pass (false then)
sub wait_for {
    my ($self, $cond, $timeout) = @_;
    my $deadline = time() + $timeout;
    while (1) {
        my $v = $cond->();
        return $v if $v;
        return $cond->() if $self->{eof};
        my $left = $deadline - time();
        return $cond->() if $left <= 0;
        $self->pump($left > 0.2 ? 0.2 : $left);
    }
}

# wait_events(N, TIMEOUT): at least N events (frames with data)
sub wait_events {
    my ($self, $n, $timeout) = @_;
    return $self->wait_for(sub { @{ $self->{events} } >= $n }, $timeout);
}

# drain(SECONDS): reads whatever comes for SECONDS
sub drain {
    my ($self, $seconds) = @_;
    my $deadline = time() + $seconds;
    while (!$self->{eof}) {
        my $left = $deadline - time();
        last if $left <= 0;
        $self->pump($left);
    }
    return $self;
}

# wait_eof(TIMEOUT): true when the server closed the stream in time
sub wait_eof {
    my ($self, $timeout) = @_;
    return $self->wait_for(sub { $self->{eof} }, $timeout);
}

sub close {
    my ($self) = @_;
    if ($self->{sock}) {
        CORE::close($self->{sock});
        $self->{sock} = undef;
    }
    $self->{eof} = 1;
    return;
}

sub _parse {
    my ($self) = @_;

    if (!defined $self->{head}) {
        my $end = index $self->{raw}, "\r\n\r\n";
        return if $end < 0;
        my $head = substr $self->{raw}, 0, $end + 4, '';
        $self->{head} = $head;
        ($self->{status}) = $head =~ m{^HTTP/\d\.\d (\d{3})};
        $self->{status} //= 0;
        for my $l (split /\r\n/, $head) {
            next unless $l =~ /^([^:\s]+):\s*(.*?)\s*$/;
            my $k = lc $1;
            $self->{headers}{$k} = exists $self->{headers}{$k}
                ? "$self->{headers}{$k}, $2" : $2;
        }
        $self->{chunked} =
            ($self->{headers}{'transfer-encoding'} // '') =~ /chunked/i;
    }

    if ($self->{chunked}) {
        while ($self->{raw} =~ /^([0-9a-fA-F]+)[^\r\n]*\r\n/) {
            my $len = hex $1;
            my $hl = length($&);
            if ($len == 0) {
                $self->{raw} = '';
                $self->{chunked_end} = 1;
                last;
            }
            last if length($self->{raw}) < $hl + $len + 2;
            $self->{body} .= substr($self->{raw}, $hl, $len);
            substr($self->{raw}, 0, $hl + $len + 2, '');
        }
    } else {
        $self->{body} .= $self->{raw};
        $self->{raw} = '';
    }

    return unless ($self->{status} // 0) == 200
        && ($self->{headers}{'content-type'} // '') =~ m{text/event-stream};

    my $now = time();
    while ($self->{body} =~ /\r?\n\r?\n/) {
        my $frame = substr($self->{body}, 0, $+[0], '');
        $self->_frame($frame, $now);
    }
    return;
}

sub _frame {
    my ($self, $text, $now) = @_;
    my %f = (comments => [], at => $now);
    my @data;

    for my $l (split /\r?\n/, $text) {
        next if $l eq '';
        if ($l =~ /^:\s?(.*)$/) {
            push @{ $f{comments} }, $1;
            push @{ $self->{comments} }, { text => $1, at => $now };
            next;
        }
        my ($field, $value) = $l =~ /^([^:]*)(?::\s?(.*))?$/;
        $value //= '';
        if ($field eq 'data') {
            push @data, $value;
        } elsif ($field eq 'id' || $field eq 'event' || $field eq 'retry') {
            $f{$field} = $value;
        } else {
            push @{ $f{unknown} }, $l;
        }
    }

    if (@data) {
        $f{data} = join "\n", @data;
        $f{json} = eval { json_decode($f{data}) };
        push @{ $self->{events} }, \%f;
    }
    push @{ $self->{frames} }, \%f;
    return;
}


# pump_many(TIMEOUT, STREAMS): one select over the open streams, at most
# TIMEOUT seconds; reads those that are ready. Returns how many were.
sub pump_many {
    my ($timeout, @streams) = @_;
    my %by;
    my $sel = IO::Select->new;
    for my $s (@streams) {
        next if $s->{eof} || !$s->{sock};
        $by{ fileno $s->{sock} } = $s;
        $sel->add($s->{sock});
    }
    return 0 unless $sel->count;
    my @ready = $sel->can_read($timeout);
    $by{ fileno $_ }->pump(0) for @ready;
    return scalar @ready;
}

# wait_many(CODE, TIMEOUT, STREAMS): pumps the streams until CODE returns
# true for every one of them (CODE->(STREAM)), or TIMEOUT seconds pass.
# Returns the streams for which CODE is still false.
sub wait_many {
    my ($cond, $timeout, @streams) = @_;
    my $deadline = time() + $timeout;
    while (1) {
        my @left = grep { !$cond->($_) } @streams;
        return @left unless @left;
        my $t = $deadline - time();
        return @left if $t <= 0 || !grep { !$_->{eof} } @left;
        pump_many($t > 0.2 ? 0.2 : $t, @left);
    }
}


# ---- processes ------------------------------------------------------------

# the nginx worker (pid) that holds the server side of stream S of nginx T
sub worker_of {
    my ($t, $s) = @_;
    my $cport = $s->local_port or return undef;
    my $want_local = sprintf '0100007F:%04X', $s->{port};
    my $want_rem = sprintf '0100007F:%04X', $cport;
    my $inode;

    CORE::open(my $fh, '<', '/proc/net/tcp') or return undef;
    while (my $l = <$fh>) {
        my @f = split ' ', $l;
        next unless @f > 9 && $f[1] eq $want_local && $f[2] eq $want_rem;
        $inode = $f[9];
        last;
    }
    CORE::close($fh);
    return undef unless $inode;

    for my $pid ($t->worker_pids) {
        opendir my $dh, "/proc/$pid/fd" or next;
        for my $fd (readdir $dh) {
            my $link = readlink "/proc/$pid/fd/$fd" // next;
            if ($link eq "socket:[$inode]") {
                closedir $dh;
                return $pid;
            }
        }
        closedir $dh;
    }
    return undef;
}

# the sum of VmRSS of the processes, in kB
sub rss_kb {
    my (@pids) = @_;
    my $sum = 0;
    for my $pid (@pids) {
        CORE::open(my $fh, '<', "/proc/$pid/status") or next;
        while (<$fh>) {
            if (/^VmRSS:\s+(\d+)\s+kB/) {
                $sum += $1;
                last;
            }
        }
        CORE::close($fh);
    }
    return $sum;
}

# "Active connections" of a stub_status location (the asking connection
# included), or undef
sub stub_active {
    my ($t, $path) = @_;
    my $r = $t->get($path || '/status');
    return undef unless $r->{status} == 200;
    my ($n) = $r->{content} =~ /Active connections:\s*(\d+)/;
    return $n;
}

# parallel(N, CODE, timeout => 60, poll => CODE2): runs CODE->(I, FH) in N
# forked processes (I = 0 .. N-1); what a child prints to FH comes back as
# the lines of its element in the returned list ([lines of child 0], ...).
# While it waits, CODE2 (if given) is called over and over instead of a
# sleep: it should block briefly, e.g. by reading streams for 50 ms.
# Children never run the test's END blocks. Dies when a child fails or
# overruns the timeout (the children are then killed, by pid).
sub parallel {
    my ($n, $code, %opt) = @_;
    my $timeout = $opt{timeout} || 60;
    my (@pids, @files);

    for my $i (0 .. $n - 1) {
        my $file = File::Temp->new(TEMPLATE => 'mitte-par-XXXXXX',
                                   TMPDIR => 1);
        push @files, $file;
        my $pid = fork;
        die "fork: $!" unless defined $pid;
        if ($pid == 0) {
            my $rc = 0;
            eval {
                CORE::open(my $fh, '>', $file->filename) or die "$!";
                $fh->autoflush(1);
                $code->($i, $fh);
                CORE::close($fh);
                1;
            } or do {
                print STDERR "parallel child $i: $@";
                $rc = 1;
            };
            POSIX::_exit($rc);
        }
        push @pids, $pid;
    }

    my %left = map { $_ => 1 } @pids;
    my $failed = 0;
    my $deadline = time() + $timeout;
    while (%left && time() < $deadline) {
        for my $pid (keys %left) {
            my $r = waitpid $pid, WNOHANG;
            next unless $r == $pid || $r == -1;
            delete $left{$pid};
            $failed++ if $r == $pid && $? != 0;
        }
        next unless %left;
        if ($opt{poll}) {
            $opt{poll}->();
        } else {
            sleep 0.01;
        }
    }
    if (%left) {
        kill 'KILL', keys %left;
        waitpid $_, 0 for keys %left;
        die "parallel: " . scalar(keys %left) . " children overran "
            . "${timeout}s";
    }
    die "parallel: $failed children failed" if $failed;

    my @out;
    for my $f (@files) {
        CORE::open(my $fh, '<', $f->filename) or die "$!";
        my @l = <$fh>;
        CORE::close($fh);
        chomp @l;
        push @out, \@l;
    }
    return @out;
}

require File::Temp;

1;
