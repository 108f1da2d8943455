package Mitte::Port;

# Loopback ports for the tests and benchmarks of ngx_mitte_module. Core Perl
# only, and no Test::More, so that bench/ can use it too.
#
#   use Mitte::Port qw(free_port free_ports);
#   my $port = free_port();

use strict;
use warnings;

use Exporter qw(import);
use IO::Socket::INET;

our @EXPORT_OK = qw(free_port free_ports);

# A loopback port that nothing uses right now, below the kernel's ephemeral
# range: a port the kernel picks for a peer bound to port 0, or for the local
# end of an outgoing connection (libcurl, HTTP::Tiny, wrk), lies in that
# range, so it can never take a port handed out here between free_port() and
# nginx's bind(). Never the same port twice in one test process.
my %PORT_TAKEN;

sub _ephemeral_low {
    my $low = 32768;
    if (open my $fh, '<', '/proc/sys/net/ipv4/ip_local_port_range') {
        my $l = <$fh>;
        close $fh;
        $low = $1 if defined $l && $l =~ /^\s*(\d+)/;
    }
    return $low;
}

sub free_port {
    my $low = _ephemeral_low();
    my ($from, $to) = $low > 12000 ? (10000, $low - 1) : (0, 0);

    for (1 .. 2000) {
        my $port = $to ? $from + int(rand($to - $from + 1)) : 0;
        next if $port && $PORT_TAKEN{$port};
        my $s = IO::Socket::INET->new(
            LocalAddr => '127.0.0.1',
            LocalPort => $port,
            Proto     => 'tcp',
            Listen    => 1,
            ReuseAddr => 0,
        ) or next;
        $port = $s->sockport;
        close $s;
        next if $PORT_TAKEN{$port};
        $PORT_TAKEN{$port} = 1;
        return $port;
    }
    die "cannot find a free loopback port\n";
}

# $n distinct free loopback ports
sub free_ports {
    my ($n) = @_;
    return map { free_port() } 1 .. $n;
}

1;
