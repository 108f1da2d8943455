package Mitte::Receiver;

# A scripted HTTP receiver on loopback for the email and webhook tests: a
# child process with a select() loop (many connections at once, none
# blocking another) that records every connection and request to a file
# and answers as the test's script says. Core Perl only.
#
#   use Mitte::Receiver;
#
#   my $rx = Mitte::Receiver->new(script => sub {
#       my ($req) = @_;      # {method, path, headers, body, n, nth, nth_id}
#       return { status => 503, headers => ['Retry-After: 2'] }
#           if $req->{nth_id} <= 2;
#       return { status => 200, body => '{"id":"e1"}' };
#   });
#   my $url = $rx->url('/hook');              # http://127.0.0.1:PORT/hook
#   my @r = $rx->wait_requests(3, 10);        # at least 3 requests, <= 10s
#   is($rx->accepts, 3);                      # connections accepted
#   $rx->stop;
#
# script: a code reference called with each request (as recorded, plus n:
# its number among all requests, nth: among the requests to its path,
# nth_id: among the requests with its Idempotency-Key, else webhook-id,
# else path; all from 1); an array reference of answers, the n-th request
# getting the n-th (the last one repeats); a hash reference of path =>
# answer or [answers] (nth); or nothing: always 200.
#
# An answer: {status => 200, headers => ['Name: value', ...], body => TEXT,
# delay => SECONDS (answer that much later), hang => 1 (never answer; the
# connection is held until the client closes it)}. Every answer carries
# Content-Length and Connection: close, and the connection is closed after
# it (unless keepalive, below).
#
# Recorded requests: {n, conn, ta (accept time), t (time the request was
# complete), method, path, headers ({lower-case name => value}), header_list
# ([[name, value], ...] as sent), body, nth, nth_id}. Also: accepts()
# (connections accepted so far) and closed_times() (when the client closed
# a connection that had no answer yet: a held or delayed one).
#
# Options: v6 => 1 listens on [::1] instead of 127.0.0.1; keepalive => 1
# answers at once with Connection: keep-alive and keeps the connection
# open for the client's next request (held and delayed answers still
# close it), so that a test can see which requests share a connection
# (the conn of each request); closed_times() then also lists the idle
# connections the client closed.

use strict;
use warnings;

use Carp qw(croak);
use Errno qw(EAGAIN EWOULDBLOCK EINTR);
use Fcntl qw(O_WRONLY O_APPEND O_CREAT);
use File::Temp qw(tempdir);
use IO::Select;
use IO::Socket::INET;
use IO::Socket::IP;
use JSON::PP;
use POSIX ();
use Scalar::Util ();
use Time::HiRes qw(time sleep);

my $JSON = JSON::PP->new->utf8->canonical;

my %LIVE;

my %REASON = (
    200 => 'OK', 201 => 'Created', 202 => 'Accepted', 204 => 'No Content',
    301 => 'Moved Permanently', 302 => 'Found', 307 => 'Temporary Redirect',
    400 => 'Bad Request', 401 => 'Unauthorized', 403 => 'Forbidden',
    404 => 'Not Found', 410 => 'Gone', 422 => 'Unprocessable Entity',
    429 => 'Too Many Requests', 500 => 'Internal Server Error',
    502 => 'Bad Gateway', 503 => 'Service Unavailable',
    504 => 'Gateway Timeout',
);

sub new {
    my ($class, %args) = @_;

    my $dir = tempdir('mitte-rx-XXXXXX', TMPDIR => 1,
                      CLEANUP => $ENV{MITTE_KEEP} ? 0 : 1);

    my $listen = $args{v6}
        ? IO::Socket::IP->new(LocalHost => '::1', LocalPort => 0,
                              Proto => 'tcp', Listen => 1024,
                              ReuseAddr => 1)
        : IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
                                Proto => 'tcp', Listen => 1024,
                                ReuseAddr => 1);
    die "receiver: cannot listen: $!" unless $listen;

    my $self = bless {
        port   => $listen->sockport,
        host   => $args{v6} ? '[::1]' : '127.0.0.1',
        log    => "$dir/requests.log",
        dir    => $dir,
        owner  => $$,
        script => $args{script},
        keep   => $args{keepalive} ? 1 : 0,
    }, $class;

    open my $touch, '>', $self->{log} or die "$self->{log}: $!";
    close $touch;

    my $pid = fork;
    die "fork: $!" unless defined $pid;

    if ($pid == 0) {
        # never return into the test: no END blocks, no Test::More output
        eval { $self->_serve($listen) };
        POSIX::_exit(0);
    }

    close $listen;
    $self->{pid} = $pid;
    $LIVE{"$self"} = $self;
    Scalar::Util::weaken($LIVE{"$self"});
    return $self;
}

sub port { $_[0]{port} }

# url(PATH): http://127.0.0.1:PORT/PATH
sub url {
    my ($self, $path) = @_;
    $path //= '/';
    return "http://$self->{host}:$self->{port}$path";
}


# ---- the child --------------------------------------------------------------

sub _answer_for {
    my ($self, $req) = @_;
    my $s = $self->{script};
    my $a;

    if (ref $s eq 'CODE') {
        $a = $s->($req);
    } elsif (ref $s eq 'ARRAY') {
        $a = $s->[ $req->{n} - 1 ] // $s->[-1];
    } elsif (ref $s eq 'HASH') {
        $a = $s->{ $req->{path} } // $s->{default};
        $a = $a->[ $req->{nth} - 1 ] // $a->[-1] if ref $a eq 'ARRAY';
    }
    return $a || { status => 200 };
}

sub _response_bytes {
    my ($a, $keep) = @_;
    my $status = $a->{status} || 200;
    my $body = $a->{body} // ($status == 204 ? '' : '{"ok":true}');
    my $head = "HTTP/1.1 $status " . ($REASON{$status} || 'Whatever') . "\r\n"
        . "Content-Type: application/json\r\n"
        . 'Content-Length: ' . length($body) . "\r\n"
        . 'Connection: ' . ($keep ? 'keep-alive' : 'close') . "\r\n";
    $head .= "$_\r\n" for @{ $a->{headers} || [] };
    return "$head\r\n$body";
}

sub _serve {
    my ($self, $listen) = @_;
    $SIG{TERM} = sub { POSIX::_exit(0) };
    $SIG{PIPE} = 'IGNORE';

    sysopen my $log, $self->{log}, O_WRONLY | O_APPEND | O_CREAT
        or die "$self->{log}: $!";
    my $record = sub {
        my $line = $JSON->encode($_[0]) . "\n";
        syswrite $log, $line;
    };

    $listen->blocking(0);
    my $sel = IO::Select->new($listen);
    my (%conn, @later, %per_path, %per_id);
    my ($nconn, $nreq) = (0, 0);

    while (1) {
        my $timeout = undef;
        if (@later) {
            my $due = (sort { $a <=> $b } map { $_->[0] } @later)[0];
            $timeout = $due - time();
            $timeout = 0 if $timeout < 0;
        }

        my @ready = $sel->can_read($timeout);

        # answers that are due
        my $now = time();
        my @keep;
        for my $l (@later) {
            if ($l->[0] <= $now) {
                my $c = $conn{ $l->[1] };
                next unless $c;
                $self->_write_close($c->{sock}, $l->[2]);
                $sel->remove($c->{sock});
                delete $conn{ $l->[1] };
            } else {
                push @keep, $l;
            }
        }
        @later = @keep;

        for my $fh (@ready) {
            if ($fh == $listen) {
                while (my $s = $listen->accept) {
                    $s->blocking(0);
                    my $id = ++$nconn;
                    $conn{"$s"} = { sock => $s, id => $id, buf => '',
                                    ta => time() };
                    $sel->add($s);
                    $record->({ accept => $id, t => time() });
                }
                next;
            }

            my $c = $conn{"$fh"} or next;
            my $n = sysread $fh, $c->{buf}, 65536, length $c->{buf};
            if (!defined $n) {
                next if $! == EAGAIN || $! == EWOULDBLOCK || $! == EINTR;
                $n = 0;
            }
            if ($n == 0) {
                $record->({ closed => $c->{id}, t => time() });
                $sel->remove($fh);
                close $fh;
                delete $conn{"$fh"};
                @later = grep { $_->[1] ne "$fh" } @later;
                next;
            }
            next if $c->{done};

            my $req = $self->_parse($c) or next;
            my $used = delete $req->{used};
            $c->{done} = 1;
            $req->{n} = ++$nreq;
            $req->{nth} = ++$per_path{ $req->{path} };
            my $key = $req->{headers}{'idempotency-key'}
                // $req->{headers}{'webhook-id'} // $req->{path};
            $req->{nth_id} = ++$per_id{$key};
            $record->($req);

            my $a = $self->_answer_for($req);
            if ($a->{hang}) {
                next;
            } elsif ($a->{delay}) {
                push @later, [ time() + $a->{delay}, "$fh", $a ];
            } elsif ($self->{keep}) {
                # the next request of the connection
                $self->_write_keep($fh, $a);
                substr($c->{buf}, 0, $used, '');
                $c->{done} = 0;
                $c->{continued} = 0;
            } else {
                $self->_write_close($fh, $a);
                $sel->remove($fh);
                delete $conn{"$fh"};
            }
        }
    }
}

sub _write_close {
    my ($self, $sock, $a) = @_;
    $self->_write_all($sock, _response_bytes($a));
    close $sock;
    return;
}

sub _write_keep {
    my ($self, $sock, $a) = @_;
    $self->_write_all($sock, _response_bytes($a, 1));
    $sock->blocking(0);
    return;
}

sub _write_all {
    my ($self, $sock, $bytes) = @_;
    $sock->blocking(1);
    my $off = 0;
    while ($off < length $bytes) {
        my $n = syswrite $sock, $bytes, length($bytes) - $off, $off;
        last unless $n;
        $off += $n;
    }
    return;
}

# a complete request in the connection's buffer, or undef
sub _parse {
    my ($self, $c) = @_;
    my $end = index $c->{buf}, "\r\n\r\n";
    return undef if $end < 0;

    my $head = substr $c->{buf}, 0, $end;
    my ($line, @lines) = split /\r\n/, $head;
    my ($method, $path) = split / /, $line // '';
    my (%h, @list);
    for my $l (@lines) {
        my ($k, $v) = $l =~ /^([^:]+):\s*(.*?)\s*$/ or next;
        push @list, [ $k, $v ];
        $h{ lc $k } = exists $h{ lc $k } ? "$h{lc $k}, $v" : $v;
    }

    if (($h{expect} // '') =~ /100-continue/i && !$c->{continued}) {
        $c->{continued} = 1;
        my $s = $c->{sock};
        $s->blocking(1);
        syswrite $s, "HTTP/1.1 100 Continue\r\n\r\n";
        $s->blocking(0);
    }

    my $body = substr $c->{buf}, $end + 4;
    my $used;
    if (($h{'transfer-encoding'} // '') =~ /chunked/i) {
        my ($out, $rest) = ('', $body);
        while (1) {
            return undef unless $rest =~ s/^([0-9a-fA-F]+)[^\r\n]*\r\n//;
            my $len = hex $1;
            if ($len == 0) {
                $rest =~ s/^(?:[^\r\n]+\r\n)*\r\n//;   # trailers
                last;
            }
            return undef if length($rest) < $len + 2;
            $out .= substr($rest, 0, $len, '');
            $rest =~ s/^\r\n//;
        }
        $body = $out;
        $used = length($c->{buf}) - length($rest);
    } else {
        my $len = $h{'content-length'} // 0;
        return undef if length($body) < $len;
        $body = substr $body, 0, $len;
        $used = $end + 4 + $len;
    }

    return {
        conn        => $c->{id},
        ta          => $c->{ta},
        t           => time(),
        method      => $method,
        path        => $path,
        headers     => \%h,
        header_list => \@list,
        body        => $body,
        used        => $used,
    };
}


# ---- the test side ----------------------------------------------------------

sub _read_log {
    my ($self) = @_;
    open my $fh, '<', $self->{log} or return ();
    my @out;
    while (my $l = <$fh>) {
        next unless $l =~ /\n\z/;    # a line being written
        push @out, eval { $JSON->decode($l) } // ();
    }
    close $fh;
    return @out;
}

# the recorded requests, in arrival order (those matching an optional
# filter: a code reference called with each request)
sub requests {
    my ($self, $filter) = @_;
    my @r = grep { exists $_->{method} } $self->_read_log;
    @r = grep { $filter->($_) } @r if $filter;
    return @r;
}

# connections accepted so far
sub accepts {
    my ($self) = @_;
    return scalar grep { exists $_->{accept} } $self->_read_log;
}

# times at which the client closed a connection it had no answer on
# (answered connections are closed by the receiver and not listed)
sub closed_times {
    my ($self) = @_;
    return map { $_->{t} }
        grep { exists $_->{closed} } $self->_read_log;
}

# wait_requests(N, TIMEOUT, FILTER): polls until at least N requests
# (matching FILTER) were recorded, or TIMEOUT seconds (default 10) passed;
# returns the requests
sub wait_requests {
    my ($self, $n, $timeout, $filter) = @_;
    my $deadline = time() + ($timeout // 10);
    while (1) {
        my @r = $self->requests($filter);
        return @r if @r >= $n || time() > $deadline;
        sleep 0.02;
    }
}

sub stop {
    my ($self) = @_;
    return unless $self->{pid} && $$ == $self->{owner};
    kill 'TERM', $self->{pid};
    waitpid $self->{pid}, 0;
    $self->{pid} = undef;
    return;
}

sub DESTROY {
    my ($self) = @_;
    local ($?, $@);
    $self->stop;
    delete $LIVE{"$self"};
    return;
}

END {
    local $?;
    for my $r (values %LIVE) {
        $r->stop if $r;
    }
}

1;
