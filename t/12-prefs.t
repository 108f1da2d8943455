#!/usr/bin/perl

# Preferences (mitte_preferences), SPEC section 3: the defaults of a new
# user (address from mitte_user_email, else null); GET, PUT and PATCH with
# partial documents, nested fields absent keep theirs; every refusal is 400
# invalid_field (invalid_json for a body that is not a JSON object, 413 for
# a body over 64 KiB) with nothing stored; the SSRF check of literal hosts,
# and mitte_webhook_allow; the write-only secret; isolation between users;
# 401 without a user; 405 with Allow.

use strict;
use warnings;

use Test::More;
use IO::Select;
use IO::Socket::INET;
use Time::HiRes qw(time);
use Mitte::Test qw(:all);

require_module();

my $t = Mitte::Test->new(upstream => 0, http => <<'END');
    mitte_zone m:2m;
    mitte_webhook_allow 10.9.0.0/16 fd00::/8;

    server {
        listen 127.0.0.1:%%PORT%%;

        # the address from a header
        location = /mitte/preferences {
            mitte_user $http_x_mitte_user;
            mitte_user_email $http_x_email;
            mitte_preferences;
        }
        # a literal address
        location = /mitte/prefs-literal {
            mitte_user $http_x_mitte_user;
            mitte_user_email ops@example.com;
            mitte_preferences;
        }
        # no mitte_user_email
        location = /mitte/prefs-plain {
            mitte_user $http_x_mitte_user;
            mitte_preferences;
        }
        # no mitte_user
        location = /mitte/prefs-anon {
            mitte_preferences;
        }
    }
END

$t->start;

my %TYPES_ON = map { $_ => JSON::PP::true } qw(ANOMALY_DETECTED QUOTA_WARNING
    QUOTA_EXCEEDED ENDPOINT_DOWN ENDPOINT_RECOVERED TRIAL_ENDING);

sub defaults {
    my ($address) = @_;
    return {
        inApp   => { enabled => JSON::PP::true },
        email   => { enabled => JSON::PP::true, address => $address },
        webhook => { enabled => JSON::PP::false, url => undef,
                     format => 'json', secretSet => JSON::PP::false },
        types   => { %TYPES_ON },
    };
}

# a deep copy with changes: set($doc, 'email.address' => 'x', ...)
sub set {
    my ($doc, %ch) = @_;
    my $new = json_decode(json_encode($doc));
    for my $path (keys %ch) {
        my @p = split /\./, $path;
        my $last = pop @p;
        my $h = $new;
        $h = $h->{$_} for @p;
        $h->{$last} = $ch{$path};
    }
    return $new;
}

sub prefs_req {
    my ($method, $user, $content, %opt) = @_;
    my %h = (%{ $opt{headers} || {} });
    $h{'X-Mitte-User'} = $user if defined $user;
    my %args = (headers => \%h);
    if (defined $content) {
        $args{content} = $content;
        $h{'Content-Type'} = 'application/json';
    }
    return $t->json($method, $opt{path} || '/mitte/preferences', %args);
}

sub get_prefs {
    my ($user, $label, %opt) = @_;
    my ($r, $doc) = prefs_req(GET => $user, undef, %opt);
    json_answer_ok($r, $doc, 200, $label // "GET the preferences of $user");
    return $doc;
}

# a change that is taken: 200 with the whole document WANT, and GET agrees
sub accepted {
    my ($method, $user, $body, $want, $label) = @_;
    my ($r, $doc) = prefs_req($method, $user, $body);
    json_answer_ok($r, $doc, 200, $label);
    is_deeply($doc, $want, "$label: the whole document")
        or diag(json_encode($doc));
    is_deeply(get_prefs($user, "$label: GET"), $want,
              "$label: GET shows it");
    return $doc;
}

# a change that is refused: STATUS CODE, and GET shows WANT as before
sub refused {
    my ($user, $body, $want, $label, $status, $code) = @_;
    $status ||= 400;
    $code ||= 'invalid_field';
    for my $method (qw(PUT PATCH)) {
        my ($r, $doc) = prefs_req($method, $user, $body);
        error_ok($r, $doc, $status, $code, "$method $label");
    }
    is_deeply(get_prefs($user, "$label: GET"), $want,
              "$label: nothing stored");
    return;
}

# ---- defaults ---------------------------------------------------------------

is_deeply(get_prefs('new1', 'the literal address', path => '/mitte/prefs-literal'),
          defaults('ops@example.com'),
          'a new user: the defaults, the address of mitte_user_email');
is_deeply(get_prefs('new2', 'no address', path => '/mitte/prefs-plain'),
          defaults(undef),
          'a new user without mitte_user_email: address null');
is_deeply(get_prefs('new3', 'the header address',
                    headers => { 'X-Email' => 'new3@example.com' }),
          defaults('new3@example.com'),
          'a new user: the address of mitte_user_email from a header');
is_deeply(get_prefs('new4', 'an empty header'), defaults(undef),
          'mitte_user_email empty: address null');
{
    my ($r, $doc) = prefs_req(GET => 'new5', undef,
                              headers => { 'X-Email' => 'not an address' });
    json_answer_ok($r, $doc, 200, 'GET with an invalid mitte_user_email');
    is_deeply($doc, defaults(undef), 'an invalid mitte_user_email: null');
}
{
    my $r = $t->request(HEAD => '/mitte/preferences',
                        headers => { 'X-Mitte-User' => 'new1' });
    is($r->{status}, 200, 'HEAD: 200');
    like(content_type($r), qr{^application/json\b}, 'HEAD: JSON');
}

# ---- partial documents ------------------------------------------------------

my $cur = defaults(undef);
$cur = accepted(PUT => 'alice',
    { email => { address => 'alice@example.com' } },
    set($cur, 'email.address' => 'alice@example.com'),
    'PUT an address');
$cur = accepted(PATCH => 'alice',
    { types => { QUOTA_WARNING => JSON::PP::false } },
    set($cur, 'types.QUOTA_WARNING' => JSON::PP::false),
    'PATCH a type off');
$cur = accepted(PUT => 'alice',
    { webhook => { enabled => JSON::PP::true,
                   url => 'https://hooks.example.com/x', format => 'slack' } },
    set($cur, 'webhook.enabled' => JSON::PP::true,
        'webhook.url' => 'https://hooks.example.com/x',
        'webhook.format' => 'slack'),
    'PUT a webhook');
$cur = accepted(PATCH => 'alice',
    { webhook => { format => 'discord' } },
    set($cur, 'webhook.format' => 'discord'),
    'PATCH the format only');
$cur = accepted(PUT => 'alice',
    { email => { enabled => JSON::PP::false } },
    set($cur, 'email.enabled' => JSON::PP::false),
    'PUT email.enabled only: the address stays');
$cur = accepted(PATCH => 'alice',
    { types => { ENDPOINT_DOWN => JSON::PP::false,
                 QUOTA_WARNING => JSON::PP::true,
                 TRIAL_ENDING => JSON::PP::false } },
    set($cur, 'types.ENDPOINT_DOWN' => JSON::PP::false,
        'types.QUOTA_WARNING' => JSON::PP::true,
        'types.TRIAL_ENDING' => JSON::PP::false),
    'PATCH three types');
$cur = accepted(PUT => 'alice', {}, $cur, 'PUT an empty object');
$cur = accepted(PATCH => 'alice', { inApp => { enabled => JSON::PP::true } },
                $cur, 'inApp.enabled true');
$cur = accepted(PUT => 'alice',
    { webhook => { url => 'http://hooks.example.com:8080/a/b?c=d' },
      email => { enabled => JSON::PP::true } },
    set($cur, 'webhook.url' => 'http://hooks.example.com:8080/a/b?c=d',
        'email.enabled' => JSON::PP::true),
    'PUT two sections');
$cur = accepted(PATCH => 'alice',
    { webhook => { enabled => JSON::PP::false, url => undef } },
    set($cur, 'webhook.enabled' => JSON::PP::false, 'webhook.url' => undef),
    'PATCH the webhook off and its url null');
$cur = accepted(PATCH => 'alice',
    { webhook => { url => 'https://hooks.example.com/x',
                   enabled => JSON::PP::true, format => 'json' } },
    set($cur, 'webhook.enabled' => JSON::PP::true, 'webhook.format' => 'json',
        'webhook.url' => 'https://hooks.example.com/x'),
    'PATCH the webhook on again (enabled after url)');

# a stored address shows instead of mitte_user_email; null brings it back
{
    my $doc = get_prefs('alice', 'GET with a header address',
                        headers => { 'X-Email' => 'other@example.com' });
    is($doc->{email}{address}, 'alice@example.com',
       'a stored address wins over mitte_user_email');
    my ($r);
    ($r, $doc) = prefs_req(PATCH => 'alice',
                           { email => { address => undef } },
                           headers => { 'X-Email' => 'other@example.com' });
    json_answer_ok($r, $doc, 200, 'PATCH address null');
    is($doc->{email}{address}, 'other@example.com',
       'address null: mitte_user_email shows again');
    $cur = set($cur, 'email.address' => undef);
    is_deeply(get_prefs('alice', 'GET without a header'), $cur,
              'address null, no mitte_user_email: null');
    $cur = accepted(PATCH => 'alice',
                    { email => { address => 'alice@example.com' } },
                    set($cur, 'email.address' => 'alice@example.com'),
                    'the address again');
}

# an address of 254 bytes is taken
my $a254 = ('a' x 64) . '@' . join('.', 'b' x 61, 'c' x 61, 'd' x 61) . '.com';
is(length $a254, 254, 'an address of 254 bytes');
$cur = accepted(PUT => 'alice', { email => { address => $a254 } },
                set($cur, 'email.address' => $a254),
                'an address of 254 bytes');

# a URL of 2048 bytes is taken
my $u2048 = 'https://hooks.example.com/' . ('p' x (2048 - 26));
is(length $u2048, 2048, 'a URL of 2048 bytes');
$cur = accepted(PUT => 'alice', { webhook => { url => $u2048 } },
                set($cur, 'webhook.url' => $u2048), 'a URL of 2048 bytes');
$cur = accepted(PUT => 'alice',
                { webhook => { url => 'https://hooks.example.com/x' } },
                set($cur, 'webhook.url' => 'https://hooks.example.com/x'),
                'the URL back');

# ---- refusals: 400 invalid_field, nothing stored ----------------------------

refused('alice', { inApp => { enabled => JSON::PP::false } }, $cur,
        'inApp.enabled false');
refused('alice', { inApp => { enabled => 'false' } }, $cur,
        'inApp.enabled a string');

my $a255 = ('a' x 64) . '@' . join('.', 'b' x 61, 'c' x 61, 'd' x 62) . '.com';
for my $c (['noatsign.example.com', 'no @'],
           ['@example.com', 'no local part'],
           ['alice@', 'no domain'],
           ['al ice@example.com', 'a space'],
           ['alice@example.com ', 'a trailing space'],
           ['alice,bob@example.com', 'a comma'],
           ['alice@example.com, bob@example.com', 'two addresses'],
           ['<alice@example.com>', 'angle brackets'],
           ['Alice <alice@example.com>', 'a name and angle brackets'],
           ["alice\@example.com\r\nBcc: x\@example.com", 'CR LF'],
           ["alice\@example.com\n", 'LF'],
           ["alice\@example.com\r", 'CR'],
           [$a255, '255 bytes'])
{
    my ($addr, $what) = @$c;
    refused('alice', { email => { address => $addr } }, $cur,
            "an address with $what");
}
refused('alice', { email => { address => 42 } }, $cur, 'a numeric address');
refused('alice', { email => { address => ['a@example.com'] } }, $cur,
        'an address array');

# a Unicode space is a space: refused as ' ' is, wherever it sits (U+200B,
# zero width space, is no space in Unicode: not tested either way)
for my $c ([0x00A0, 'no-break space'], [0x0085, 'next line'],
           [0x1680, 'ogham space mark'],
           (map { [$_, 'en quad .. hair space'] } 0x2000 .. 0x200A),
           [0x2028, 'line separator'], [0x2029, 'paragraph separator'],
           [0x202F, 'narrow no-break space'],
           [0x205F, 'medium mathematical space'],
           [0x3000, 'ideographic space'], [0xFEFF, 'byte order mark'])
{
    my ($cp, $what) = @$c;
    my $sp = chr $cp;
    refused('alice', { email => { address => "al${sp}ice\@example.com" } },
            $cur, sprintf('an address with U+%04X (%s)', $cp, $what));
}
for my $addr ("\x{a0}alice\@example.com", "alice\x{a0}\@example.com",
              "alice\@\x{a0}example.com", "alice\@example.com\x{a0}",
              "alice\@example.com\x{3000}", "\x{feff}alice\@example.com")
{
    (my $shown = $addr) =~ s/([^\x20-\x7e])/sprintf('\\x{%x}', ord $1)/ge;
    refused('alice', { email => { address => $addr } }, $cur,
            "an address with a Unicode space: $shown");
}
# ... also when the JSON escapes it
refused('alice', '{"email": {"address": "alice\u2028@example.com"}}', $cur,
        'an address with U+2028 as \u2028');
refused('alice', '{"email": {"address": "alice@example.com\u00a0"}}', $cur,
        'an address with U+00A0 as \u00a0');

# bytes that are not UTF-8 (a body sent as it is)
for my $c (["j\xfcrgen", 'Latin-1 (0xFC)'],
           ["alice\x80", 'a lone continuation byte'],
           ["alice\xc3", 'a truncated sequence'],
           ["alice\xc0\xa0", 'an overlong space'],
           ["alice\xed\xa0\x80", 'a UTF-16 surrogate'],
           ["alice\xff", 'the byte 0xFF'])
{
    my ($local, $what) = @$c;
    refused('alice', qq({"email": {"address": "$local\@example.com"}}),
            $cur, "an address with bytes that are not UTF-8: $what", 400,
            [qw(invalid_field invalid_json)]);
}

# UTF-8 without spaces stays accepted
for my $addr ("j\x{fc}rgen\@example.de", "\x{7530}\x{4e2d}\@example.jp",
              "alice\@b\x{fc}cher.example")
{
    (my $shown = $addr) =~ s/([^\x20-\x7e])/sprintf('\\x{%x}', ord $1)/ge;
    accepted(PATCH => 'alice', { email => { address => $addr } },
             set($cur, 'email.address' => $addr),
             "a UTF-8 address without spaces: $shown");
}
$cur = accepted(PATCH => 'alice',
                { email => { address => $cur->{email}{address} } },
                $cur, 'the address back');

my $u2049 = 'https://hooks.example.com/' . ('p' x (2049 - 26));
for my $c (['ftp://hooks.example.com/x', 'ftp'],
           ['hooks.example.com/x', 'no scheme'],
           ['//hooks.example.com/x', 'scheme-relative'],
           ['/x', 'a path'],
           ['javascript:alert(1)', 'javascript:'],
           ['file:///etc/passwd', 'file:'],
           ['https://', 'no host'],
           ['http:///x', 'an empty host'],
           ['https://user:pass@hooks.example.com/x', 'user-info'],
           ['https://user@hooks.example.com/x', 'a user'],
           ['https://hooks.example.com@127.0.0.1/x', 'user-info, local'],
           ['https://hooks.example.com/a b', 'a space'],
           ["https://hooks.example.com/x\r\nHost: y", 'CR LF'],
           [$u2049, '2049 bytes'],
           ['', 'an empty string'])
{
    my ($url, $what) = @$c;
    refused('alice', { webhook => { url => $url } }, $cur,
            "a URL with $what");
}
refused('alice', { webhook => { url => 42 } }, $cur, 'a numeric URL');

# literal blocked hosts
for my $url ('http://127.0.0.1/x', 'http://[::1]/x', 'http://10.1.2.3/x',
             'http://169.254.169.254/latest/meta-data/',
             'http://0x7f000001/x', 'http://2130706433/x',
             'http://[::ffff:127.0.0.1]/x', 'https://127.0.0.1:8443/x',
             'http://127.1/x', 'http://0177.0.0.1/x', 'http://0.0.0.0/x',
             'http://192.168.1.1:8080/x', 'http://172.16.0.1/x',
             'http://100.64.0.1/x', 'http://[fe80::1]/x',
             'http://[::ffff:7f00:1]/x', 'http://127.0.0.1./x',
             'http://10.10.0.1/x', 'http://[fc00::1]/x')
{
    refused('alice', { webhook => { url => $url } }, $cur,
            "a blocked host: $url");
}

# mitte_webhook_allow 10.9.0.0/16 fd00::/8: accepted there
$cur = accepted(PATCH => 'alice', { webhook => { url => 'http://10.9.8.7/x' } },
                set($cur, 'webhook.url' => 'http://10.9.8.7/x'),
                'a host in mitte_webhook_allow');
$cur = accepted(PATCH => 'alice',
                { webhook => { url => 'http://[fd00::1]:8080/x' } },
                set($cur, 'webhook.url' => 'http://[fd00::1]:8080/x'),
                'an IPv6 host in mitte_webhook_allow');
# a public literal address is fine
$cur = accepted(PATCH => 'alice',
                { webhook => { url => 'https://93.184.216.34/x' } },
                set($cur, 'webhook.url' => 'https://93.184.216.34/x'),
                'a public address');
$cur = accepted(PATCH => 'alice',
                { webhook => { url => 'https://hooks.example.com/x' } },
                set($cur, 'webhook.url' => 'https://hooks.example.com/x'),
                'the URL back again');

# webhook.enabled true with no url
refused('alice', { webhook => { url => undef } }, $cur,
        'the url of an enabled webhook null');
refused('bob', { webhook => { enabled => JSON::PP::true } }, defaults(undef),
        'a webhook enabled without a url');
refused('bob', { webhook => { enabled => JSON::PP::true, url => undef } },
        defaults(undef), 'a webhook enabled with a null url');

# format
for my $f ('xml', '', 'text', 'slack ', 42, undef) {
    refused('alice', { webhook => { format => $f } }, $cur,
            'the format ' . (defined $f ? "'$f'" : 'null'));
}

# unknown types and fields, non-boolean switches
for my $c ([{ types => { ANOMALY => JSON::PP::true } }, 'an unknown type'],
           [{ types => { endpoint_down => JSON::PP::true } },
            'a type in lower case'],
           [{ foo => 1 }, 'an unknown field'],
           [{ sms => { enabled => JSON::PP::true } }, 'an unknown channel'],
           [{ email => { enabled => JSON::PP::true, cc => 'x@example.com' } },
            'an unknown email field'],
           [{ webhook => { method => 'PUT' } }, 'an unknown webhook field'],
           [{ inApp => { enabled => JSON::PP::true, sound => JSON::PP::true } },
            'an unknown inApp field'],
           [{ email => { enabled => 'yes' } }, 'email.enabled a string'],
           [{ email => { enabled => 1 } }, 'email.enabled a number'],
           [{ email => { enabled => undef } }, 'email.enabled null'],
           [{ webhook => { enabled => 'true' } }, 'webhook.enabled a string'],
           [{ webhook => { enabled => 0 } }, 'webhook.enabled a number'],
           [{ types => { ENDPOINT_DOWN => 'false' } }, 'a type a string'],
           [{ types => { ENDPOINT_DOWN => 0 } }, 'a type a number'],
           [{ types => { ENDPOINT_DOWN => undef } }, 'a type null'],
           [{ email => 'off' }, 'email a string'],
           [{ types => [] }, 'types an array'],
           [{ webhook => undef }, 'webhook null'],
           # one bad field among good ones: none of them is stored
           [{ email => { address => 'changed@example.com' },
              webhook => { format => 'xml' } }, 'a good and a bad field'],
           [{ types => { QUOTA_WARNING => JSON::PP::false,
                         NOPE => JSON::PP::false } },
            'a good and a bad type'],
           [{ webhook => { format => 'slack', enabled => 'x' } },
            'a good and a bad webhook field'])
{
    my ($body, $what) = @$c;
    refused('alice', $body, $cur, $what);
}

# not JSON, not an object: invalid_json
for my $c (['{"email": ', 'malformed JSON'],
           ['{"email": {"enabled": tru}}', 'a bad literal'],
           ['[]', 'an array'],
           ['"prefs"', 'a string'],
           ['null', 'null'],
           ['{"email": {}} x', 'trailing garbage'])
{
    my ($body, $what) = @$c;
    refused('alice', $body, $cur, $what, 400, 'invalid_json');
}
refused('alice', '', $cur, 'an empty body', 400, [qw(invalid_json bad_request)]);

# over 64 KiB
refused('alice', json_encode({ email => { address => 'a' x 70000 } }), $cur,
        'a body over 64 KiB', 413, 'too_large');
refused('alice', json_encode({ types => {}, pad => ' ' x 66000 }), $cur,
        'a body over 64 KiB of blanks', 413, 'too_large');

# over 64 KiB announced with "Expect: 100-continue": 413 at once, no
# "100 Continue" first (the client need not send the body at all)
{
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                  PeerPort => $t->port, Proto => 'tcp')
        or die "connect: $!";
    syswrite $s, "PUT /mitte/preferences HTTP/1.1\r\nHost: x\r\n"
        . "X-Mitte-User: alice\r\nContent-Type: application/json\r\n"
        . "Content-Length: 100000\r\nExpect: 100-continue\r\n\r\n";
    my $in = '';
    my $sel = IO::Select->new($s);
    my $until = time() + 5;
    while ($in !~ /too_large/ && time() < $until) {
        next unless $sel->can_read(0.2);
        my $n = sysread $s, $in, 65536, length $in;
        last if defined $n && $n == 0;
    }
    close $s;
    like($in, qr{\AHTTP/1\.1 413 }, 'Expect: 100-continue over 64 KiB:'
         . ' 413 first, no 100 Continue');
    like($in, qr/"too_large"/, 'Expect: 100-continue: too_large');
}

# ---- the secret is write-only -----------------------------------------------

my $secret = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';
{
    my ($r, $doc) = prefs_req(PATCH => 'alice',
                              { webhook => { secret => $secret } });
    json_answer_ok($r, $doc, 200, 'PATCH a secret');
    $cur = set($cur, 'webhook.secretSet' => JSON::PP::true);
    is_deeply($doc, $cur, 'secretSet true, the rest unchanged');
    unlike($r->{content}, qr/MfKQ9r8G|whsec_/, 'the secret is not echoed');
    ok(!exists $doc->{webhook}{secret}, 'no secret field');

    $r = $t->request(GET => '/mitte/preferences',
                     headers => { 'X-Mitte-User' => 'alice' });
    unlike($r->{content}, qr/MfKQ9r8G|whsec_/, 'GET does not show it');

    $cur = accepted(PATCH => 'alice', { webhook => { format => 'slack' } },
                    set($cur, 'webhook.format' => 'slack'),
                    'another change keeps the secret');
    $cur = accepted(PATCH => 'alice',
                    { webhook => { secret => 'a plain shared secret' } },
                    $cur, 'a plain secret');
    $cur = accepted(PATCH => 'alice', { webhook => { secret => undef } },
                    set($cur, 'webhook.secretSet' => JSON::PP::false),
                    'secret null clears it');
    refused('alice', { webhook => { secret => 42 } }, $cur,
            'a numeric secret');
    refused('alice', { webhook => { secret => JSON::PP::true } }, $cur,
            'a boolean secret');
    $cur = accepted(PATCH => 'alice', { webhook => { secret => $secret } },
                    set($cur, 'webhook.secretSet' => JSON::PP::true),
                    'the secret again');
}

# ---- isolation --------------------------------------------------------------

is_deeply(get_prefs('bob'), defaults(undef),
          "bob does not see alice's preferences");
my $bob = accepted(PUT => 'bob',
                   { email => { address => 'bob@example.com' },
                     types => { ANOMALY_DETECTED => JSON::PP::false } },
                   set(defaults(undef), 'email.address' => 'bob@example.com',
                       'types.ANOMALY_DETECTED' => JSON::PP::false),
                   "bob's own");
is_deeply(get_prefs('alice'), $cur, "bob's change leaves alice's alone");
is_deeply(get_prefs('carol'), defaults(undef), 'carol: still the defaults');
is_deeply(get_prefs('Alice'), defaults(undef),
          'Alice is not alice (user ids are exact)');

# ---- 401, 405 -----------------------------------------------------------------

for my $m (qw(GET PUT PATCH)) {
    my ($r, $doc) = prefs_req($m => undef,
        $m eq 'GET' ? undef : { email => { enabled => JSON::PP::false } });
    error_ok($r, $doc, 401, 'unauthorized', "$m without a user");
    ($r, $doc) = prefs_req($m => 'alice',
        $m eq 'GET' ? undef : { email => { enabled => JSON::PP::false } },
        path => '/mitte/prefs-anon');
    error_ok($r, $doc, 401, 'unauthorized',
             "$m in a location without mitte_user");
}
{
    my ($r, $doc) = prefs_req(PUT => 'x' x 65,
                              { email => { enabled => JSON::PP::false } });
    error_ok($r, $doc, 401, 'unauthorized', 'a user of 65 bytes');
}
is_deeply(get_prefs('alice'), $cur, 'the refused requests changed nothing');

for my $m (qw(POST DELETE)) {
    my ($r, $doc) = prefs_req($m => 'alice', '{}');
    error_ok($r, $doc, 405, 'method_not_allowed', "$m /mitte/preferences");
    my $allow = $r->{headers}{allow} // '';
    for my $a (qw(GET PUT PATCH)) {
        like($allow, qr/\b$a\b/, "$m: Allow names $a");
    }
    unlike($allow, qr/\b(?:POST|DELETE)\b/, "$m: Allow names neither POST"
           . ' nor DELETE');
}
is_deeply(get_prefs('alice'), $cur, 'POST and DELETE changed nothing');

# a body in chunks
{
    my $body = '{"types": {"QUOTA_EXCEEDED": false}}';
    my $req = "PATCH /mitte/preferences HTTP/1.1\r\nHost: x\r\n"
        . "X-Mitte-User: alice\r\nContent-Type: application/json\r\n"
        . "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
    for my $part (unpack '(a7)*', $body) {
        $req .= sprintf("%x\r\n%s\r\n", length $part, $part);
    }
    my $r = $t->raw($req . "0\r\n\r\n");
    my $doc = eval { json_decode($r->{content}) };
    json_answer_ok($r, $doc, 200, 'a chunked PATCH');
    $cur = set($cur, 'types.QUOTA_EXCEEDED' => JSON::PP::false);
    is_deeply($doc, $cur, 'a chunked PATCH: taken');
}

# ---- reload keeps them ---------------------------------------------------------

$t->reload;
is_deeply(get_prefs('alice', 'GET after reload'), $cur,
          'alice: the preferences survive a reload');
is_deeply(get_prefs('bob', 'GET after reload'), $bob,
          'bob: the preferences survive a reload');

$t->stop;

done_testing();
