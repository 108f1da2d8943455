package Mitte::Redis;

# A redis-server of a test's own: on a free loopback port (and a unix
# socket), in a temporary directory, without persistence, stopped by its
# pid. Core Perl only.
#
#   use Mitte::Redis;
#   plan skip_all => Mitte::Redis->missing if Mitte::Redis->missing;
#   my $r = Mitte::Redis->new(args => ['--requirepass', 'secret']);
#   $r->start;
#   $r->port; $r->socket;              # 127.0.0.1:port, unix socket path
#   $r->cli('SET', 'k', 'v');          # redis-cli's output, chomped
#   $r->cli_bg('DEBUG', 'SLEEP', 5);   # in the background: returns a pid
#   $r->stop; $r->start;               # the same port again
#   Mitte::Redis->new(host => '127.0.0.2', port => $r->port);
#                                      # another loopback address, a port
#
# DEBUG is enabled (Redis 7 refuses it by default) so that tests can make
# Redis slow. Environment: REDIS_SERVER, REDIS_CLI (the binaries).

use strict;
use warnings;

use Carp qw(croak);
use File::Temp qw(tempdir);
use IO::Socket::INET;
use Mitte::Port qw(free_port);
use POSIX qw(:sys_wait_h);
use Time::HiRes qw(sleep time);

my $SERVER = $ENV{REDIS_SERVER} || '/usr/bin/redis-server';
my $CLI = $ENV{REDIS_CLI} || '/usr/bin/redis-cli';

my %LIVE;

# why the tests cannot run, or '' when they can
sub missing {
    return "$SERVER is not installed (apt-get install redis-server)"
        unless -x $SERVER;
    return "$CLI is not installed (apt-get install redis-tools)"
        unless -x $CLI;
    return '';
}

# new(args => [...], password => TEXT, host => ADDR, port => N): extra
# server arguments; the password redis-cli uses; the loopback address
# Redis binds and is reached at (127.0.0.1; Linux routes all of
# 127.0.0.0/8 to lo) and its port (a free one)
sub new {
    my ($class, %args) = @_;
    my $dir = tempdir('mitte-redis-XXXXXX', TMPDIR => 1,
                      CLEANUP => $ENV{MITTE_KEEP} ? 0 : 1);
    my $self = bless {
        dir      => $dir,
        host     => $args{host} || '127.0.0.1',
        port     => $args{port} || free_port(),
        args     => $args{args} || [],
        password => $args{password},
        owner    => $$,
        pid      => undef,
    }, $class;
    $LIVE{"$self"} = $self;
    return $self;
}

sub port   { $_[0]{port} }
sub host   { $_[0]{host} }
sub pid    { $_[0]{pid} }
sub dir    { $_[0]{dir} }
sub socket { "$_[0]{dir}/redis.sock" }
sub addr   { "$_[0]{host}:$_[0]{port}" }

sub start {
    my ($self) = @_;
    croak 'already started' if $self->{pid};

    my @cmd = ($SERVER, '--port', $self->{port}, '--bind', $self->{host},
               '--save', '', '--appendonly', 'no', '--dir', $self->{dir},
               '--unixsocket', $self->socket, '--unixsocketperm', '777',
               '--enable-debug-command', 'yes', '--daemonize', 'no',
               @{ $self->{args} });

    my $pid = fork;
    die "fork: $!" unless defined $pid;

    if ($pid == 0) {
        open STDIN, '<', '/dev/null';
        open STDOUT, '>>', "$self->{dir}/redis.log";
        open STDERR, '>>', "$self->{dir}/redis.log";
        exec @cmd or POSIX::_exit(127);
    }

    $self->{pid} = $pid;

    my $deadline = time() + 10;
    while (time() < $deadline) {
        if (waitpid($pid, WNOHANG) == $pid) {
            $self->{pid} = undef;
            die "redis-server exited at start:\n" . $self->log_tail;
        }
        my $s = IO::Socket::INET->new(PeerAddr => $self->{host},
                                      PeerPort => $self->{port},
                                      Proto => 'tcp', Timeout => 1);
        if ($s) {
            close $s;
            return $self if $self->cli('PING') eq 'PONG';
        }
        sleep 0.05;
    }

    die "redis-server did not answer in 10s:\n" . $self->log_tail;
}

# stop(): TERM, and KILL after 5s (a Redis in DEBUG SLEEP handles TERM
# only when it wakes up); the port is free again on return
sub stop {
    my ($self) = @_;
    my $pid = $self->{pid} or return;
    return unless $$ == $self->{owner};

    kill 'TERM', $pid;
    my $deadline = time() + 5;
    while (time() < $deadline) {
        last if waitpid($pid, WNOHANG) == $pid;
        sleep 0.05;
    }
    if (kill 0, $pid) {
        kill 'KILL', $pid;
        waitpid($pid, 0);
    }
    $self->{pid} = undef;
    return;
}

sub kill9 {
    my ($self) = @_;
    my $pid = $self->{pid} or return;
    kill 'KILL', $pid;
    waitpid($pid, 0);
    $self->{pid} = undef;
    return;
}

sub _cli_cmd {
    my ($self, @args) = @_;
    my @auth = defined $self->{password}
        ? ('--no-auth-warning', '-a', $self->{password}) : ();
    return ($CLI, '-h', $self->{host}, '-p', $self->{port}, @auth, @args);
}

# cli(ARGS): redis-cli's output (raw, as it prints to a pipe), chomped
sub cli {
    my ($self, @args) = @_;
    my @cmd = $self->_cli_cmd(@args);

    my $pid = open my $fh, '-|';
    die "fork: $!" unless defined $pid;
    if ($pid == 0) {
        open STDERR, '>&', \*STDOUT;
        exec @cmd or POSIX::_exit(127);
    }
    my $out = do { local $/; <$fh> } // '';
    close $fh;
    chomp $out;
    return $out;
}

# cli_bg(ARGS): redis-cli in a child process (for DEBUG SLEEP); its pid
sub cli_bg {
    my ($self, @args) = @_;
    my @cmd = $self->_cli_cmd(@args);

    my $pid = fork;
    die "fork: $!" unless defined $pid;
    if ($pid == 0) {
        open STDIN, '<', '/dev/null';
        open STDOUT, '>', '/dev/null';
        open STDERR, '>', '/dev/null';
        exec @cmd or POSIX::_exit(127);
    }
    return $pid;
}

# the module's connections in CLIENT LIST, by name ("mitte:<pid>",
# "mitte-reader:<pid>"): { name => [ {id, db, ...}, ... ] }
sub mitte_clients {
    my ($self) = @_;
    my %by;
    for my $l (split /\n/, $self->cli('CLIENT', 'LIST')) {
        my %f = map { /^([^=]+)=(.*)$/ ? ($1, $2) : () } split / /, $l;
        next unless ($f{name} // '') =~ /^mitte(?:-reader)?:\d+$/;
        push @{ $by{ $f{name} } }, \%f;
    }
    return \%by;
}

# the keys matching PATTERN (SCAN, as an operator would list them)
sub keys_like {
    my ($self, $pattern, @db) = @_;
    my $out = $self->cli(@db ? ('-n', $db[0]) : (), '--scan', '--pattern',
                         $pattern);
    return sort grep { length } split /\n/, $out;
}

sub log_tail {
    my ($self) = @_;
    open my $fh, '<', "$self->{dir}/redis.log" or return '';
    my @l = <$fh>;
    close $fh;
    @l = @l[-20 .. -1] if @l > 20;
    return join '', @l;
}

sub DESTROY {
    my ($self) = @_;
    local ($?, $@);
    $self->kill9 if $self->{pid} && $$ == $self->{owner};
    delete $LIVE{"$self"};
    return;
}

END {
    local $?;
    for my $r (values %LIVE) {
        $r->kill9 if $r && $r->{pid} && $$ == $r->{owner};
    }
}

1;
