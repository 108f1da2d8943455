/*
 * Copyright (C) ngx_mitte_module authors
 */


#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include <sys/socket.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include "mitte_addr.h"


/* a socket address from "1.2.3.4" or "::1" */

static void
make_sa(const char *text, struct sockaddr_storage *ss)
{
    struct sockaddr_in   *sin;
    struct sockaddr_in6  *sin6;

    memset(ss, 0, sizeof(struct sockaddr_storage));

    if (strchr(text, ':') != NULL) {
        sin6 = (struct sockaddr_in6 *) ss;
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons(443);

        if (inet_pton(AF_INET6, text, &sin6->sin6_addr) != 1) {
            fail_msg("bad test address %s", text);
        }

        return;
    }

    sin = (struct sockaddr_in *) ss;
    sin->sin_family = AF_INET;
    sin->sin_port = htons(443);

    if (inet_pton(AF_INET, text, &sin->sin_addr) != 1) {
        fail_msg("bad test address %s", text);
    }
}


static int
blocked_with(const char *text, const mitte_cidr_t *allow, size_t nallow)
{
    struct sockaddr_storage  ss;

    make_sa(text, &ss);

    return mitte_addr_blocked((struct sockaddr *) &ss, allow, nallow);
}


static void
expect_blocked(const char *text, int expected)
{
    int  rc;

    rc = blocked_with(text, NULL, 0);

    if (rc != expected) {
        fail_msg("%s: blocked %d, expected %d", text, rc, expected);
    }
}


typedef struct {
    const char     *first;
    const char     *last;
    const char     *below;      /* just outside, NULL: none */
    const char     *above;
} range_test_t;


static void
test_blocked_ipv4(void **state)
{
    size_t  i;
    static const range_test_t  ranges[] = {
        { "0.0.0.0", "0.255.255.255", NULL, "1.0.0.0" },
        { "10.0.0.0", "10.255.255.255", "9.255.255.255", "11.0.0.0" },
        { "100.64.0.0", "100.127.255.255", "100.63.255.255",
          "100.128.0.0" },
        { "127.0.0.0", "127.255.255.255", "126.255.255.255", "128.0.0.0" },
        { "169.254.0.0", "169.254.255.255", "169.253.255.255",
          "169.255.0.0" },
        { "172.16.0.0", "172.31.255.255", "172.15.255.255", "172.32.0.0" },
        { "192.0.0.0", "192.0.0.255", "191.255.255.255", "192.0.1.0" },
        { "192.0.2.0", "192.0.2.255", "192.0.1.255", "192.0.3.0" },
        { "192.88.99.0", "192.88.99.255", "192.88.98.255", "192.88.100.0" },
        { "192.168.0.0", "192.168.255.255", "192.167.255.255",
          "192.169.0.0" },
        { "198.18.0.0", "198.19.255.255", "198.17.255.255", "198.20.0.0" },
        { "198.51.100.0", "198.51.100.255", "198.51.99.255",
          "198.51.101.0" },
        { "203.0.113.0", "203.0.113.255", "203.0.112.255", "203.0.114.0" },
        { "224.0.0.0", "239.255.255.255", "223.255.255.255", NULL },
        { "240.0.0.0", "255.255.255.255", NULL, NULL },
    };

    (void) state;

    for (i = 0; i < sizeof(ranges) / sizeof(ranges[0]); i++) {
        expect_blocked(ranges[i].first, 1);
        expect_blocked(ranges[i].last, 1);

        if (ranges[i].below) {
            expect_blocked(ranges[i].below, 0);
        }

        if (ranges[i].above) {
            expect_blocked(ranges[i].above, 0);
        }
    }

    /* public */
    expect_blocked("8.8.8.8", 0);
    expect_blocked("1.1.1.1", 0);
    expect_blocked("93.184.216.34", 0);
    expect_blocked("192.0.1.1", 0);
    expect_blocked("198.51.1.1", 0);
    expect_blocked("203.0.1.1", 0);
    expect_blocked("223.255.255.254", 0);
}


static void
test_blocked_ipv6(void **state)
{
    size_t  i;
    static const range_test_t  ranges[] = {
        { "::", "::", NULL, NULL },
        { "::1", "::1", NULL, NULL },
        { "64:ff9b::", "64:ff9b::ffff:ffff",
          "64:ff9a:ffff:ffff:ffff:ffff:ffff:ffff", "64:ff9b::1:0:0" },
        { "64:ff9b:1::", "64:ff9b:1:ffff:ffff:ffff:ffff:ffff",
          "64:ff9b:0:ffff:ffff:ffff:ffff:ffff", "64:ff9b:2::" },
        { "100::", "100::ffff:ffff:ffff:ffff",
          "ff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "100:0:0:1::" },
        { "2001::", "2001:0:ffff:ffff:ffff:ffff:ffff:ffff",
          "2000:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "2001:1::" },
        { "2001:db8::", "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff",
          "2001:db7:ffff:ffff:ffff:ffff:ffff:ffff", "2001:db9::" },
        { "2002::", "2002:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
          "2001:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "2003::" },
        { "fc00::", "fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
          "fbff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "fe00::" },
        { "fe80::", "febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
          "fe7f:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "fec0::" },
        { "ff00::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
          "feff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", NULL },
    };

    (void) state;

    for (i = 0; i < sizeof(ranges) / sizeof(ranges[0]); i++) {
        expect_blocked(ranges[i].first, 1);
        expect_blocked(ranges[i].last, 1);

        if (ranges[i].below) {
            expect_blocked(ranges[i].below, 0);
        }

        if (ranges[i].above) {
            expect_blocked(ranges[i].above, 0);
        }
    }

    /* NAT64, Teredo and 6to4 are blocked whole, public IPv4 inside */
    expect_blocked("64:ff9b::8.8.8.8", 1);
    expect_blocked("64:ff9b:1::808:808", 1);
    expect_blocked("2001:0:4136:e378:8000:63bf:3fff:fdd2", 1);
    expect_blocked("2002:808:808::1", 1);

    /* public */
    expect_blocked("2606:4700::1", 0);
    expect_blocked("2606:4700:4700::1111", 0);
    expect_blocked("2a00:1450:4001:81c::200e", 0);
    expect_blocked("3fff::1", 0);
}


static void
test_blocked_embedded_ipv4(void **state)
{
    (void) state;

    /* IPv4-mapped: judged by the IPv4 inside */
    expect_blocked("::ffff:127.0.0.1", 1);
    expect_blocked("::ffff:10.1.2.3", 1);
    expect_blocked("::ffff:0.0.0.0", 1);
    expect_blocked("::ffff:169.254.169.254", 1);
    expect_blocked("::ffff:255.255.255.255", 1);
    expect_blocked("::ffff:100.63.255.255", 0);
    expect_blocked("::ffff:8.8.8.8", 0);
    expect_blocked("::ffff:7f00:1", 1);

    /* IPv4-compatible, the same */
    expect_blocked("::127.0.0.1", 1);
    expect_blocked("::10.0.0.1", 1);
    expect_blocked("::0.0.0.2", 1);
    expect_blocked("::172.32.0.0", 0);
    expect_blocked("::8.8.8.8", 0);
    expect_blocked("::808:808", 0);

    /* not embedded IPv4: ::ffff:0:0/96 neighbours */
    expect_blocked("::fffe:808:808", 0);
    expect_blocked("::1:ffff:808:808", 0);
    expect_blocked("0:0:0:0:1:ffff:808:808", 0);
}


static void
test_blocked_other_family(void **state)
{
    struct sockaddr_un   sun;
    struct sockaddr_in6  sin6;

    (void) state;

    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;

    assert_int_equal(mitte_addr_blocked((struct sockaddr *) &sun, NULL, 0),
                     1);
    assert_int_equal(mitte_addr_blocked(NULL, NULL, 0), 1);

    /* the scope id does not matter */
    memset(&sin6, 0, sizeof(sin6));
    sin6.sin6_family = AF_INET6;
    sin6.sin6_scope_id = 2;
    assert_int_equal(inet_pton(AF_INET6, "fe80::1", &sin6.sin6_addr), 1);
    assert_int_equal(mitte_addr_blocked((struct sockaddr *) &sin6, NULL, 0),
                     1);
}


static void
allow_parse(const char *text, mitte_cidr_t *cidr)
{
    if (mitte_cidr_parse(text, strlen(text), cidr) < 0) {
        fail_msg("cidr %s refused", text);
    }
}


static void
test_allow(void **state)
{
    mitte_cidr_t  allow[4];

    (void) state;

    allow_parse("127.0.0.1/32", &allow[0]);

    assert_int_equal(blocked_with("127.0.0.1", allow, 1), 0);
    assert_int_equal(blocked_with("127.0.0.2", allow, 1), 1);
    assert_int_equal(blocked_with("127.0.0.0", allow, 1), 1);
    assert_int_equal(blocked_with("::ffff:127.0.0.1", allow, 1), 0);
    assert_int_equal(blocked_with("::127.0.0.1", allow, 1), 0);
    assert_int_equal(blocked_with("::ffff:127.0.0.2", allow, 1), 1);
    assert_int_equal(blocked_with("::1", allow, 1), 1);
    assert_int_equal(blocked_with("8.8.8.8", allow, 1), 0);

    allow_parse("::1", &allow[1]);
    allow_parse("fd00::/8", &allow[2]);
    allow_parse("::ffff:10.0.0.0/104", &allow[3]);

    assert_int_equal(blocked_with("::1", allow, 4), 0);
    assert_int_equal(blocked_with("::", allow, 4), 1);
    assert_int_equal(blocked_with("fd12:3456::1", allow, 4), 0);
    assert_int_equal(blocked_with("fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
                                  allow, 4), 0);
    assert_int_equal(blocked_with("fc00::1", allow, 4), 1);
    assert_int_equal(blocked_with("fe80::1", allow, 4), 1);
    assert_int_equal(blocked_with("10.1.2.3", allow, 4), 0);
    assert_int_equal(blocked_with("::ffff:10.255.0.1", allow, 4), 0);
    assert_int_equal(blocked_with("11.0.0.1", allow, 4), 0);
    assert_int_equal(blocked_with("192.168.1.1", allow, 4), 1);

    /* an IPv4 range does not cover IPv6 ranges */
    allow_parse("0.0.0.0/0", &allow[0]);
    assert_int_equal(blocked_with("10.0.0.1", allow, 1), 0);
    assert_int_equal(blocked_with("::ffff:192.168.0.1", allow, 1), 0);
    assert_int_equal(blocked_with("fe80::1", allow, 1), 1);
    assert_int_equal(blocked_with("::1", allow, 1), 1);

    allow_parse("::/0", &allow[0]);
    assert_int_equal(blocked_with("fe80::1", allow, 1), 0);
    assert_int_equal(blocked_with("10.0.0.1", allow, 1), 1);
    assert_int_equal(blocked_with("::ffff:10.0.0.1", allow, 1), 1);
}


static void
cidr_ok(const char *text, int rc, int family, const char *addr,
    unsigned prefix)
{
    uint8_t       expect[16];
    mitte_cidr_t  cidr;

    if (mitte_cidr_parse(text, strlen(text), &cidr) != rc) {
        fail_msg("cidr %s: not %d", text, rc);
    }

    assert_int_equal(cidr.family, family);
    assert_int_equal(cidr.prefix, prefix);
    assert_int_equal(cidr.reserved[0], 0);
    assert_int_equal(cidr.reserved[1], 0);

    memset(expect, 0, sizeof(expect));
    assert_int_equal(inet_pton(family == MITTE_CIDR_INET ? AF_INET
                                                         : AF_INET6,
                               addr, expect), 1);
    assert_memory_equal(cidr.addr, expect, 16);
}


static void
cidr_bad(const char *text, size_t len)
{
    mitte_cidr_t  cidr;

    if (mitte_cidr_parse(text, len, &cidr) != -1) {
        fail_msg("cidr \"%.*s\" accepted", (int) len, text);
    }
}


#define CIDR_BAD(s)  cidr_bad(s, sizeof(s) - 1)


static void
test_cidr_parse(void **state)
{
    (void) state;

    cidr_ok("10.0.0.0/8", 0, MITTE_CIDR_INET, "10.0.0.0", 8);
    cidr_ok("127.0.0.1", 0, MITTE_CIDR_INET, "127.0.0.1", 32);
    cidr_ok("192.168.1.0/24", 0, MITTE_CIDR_INET, "192.168.1.0", 24);
    cidr_ok("0.0.0.0/0", 0, MITTE_CIDR_INET, "0.0.0.0", 0);
    cidr_ok("255.255.255.255/32", 0, MITTE_CIDR_INET, "255.255.255.255",
            32);
    cidr_ok("::1", 0, MITTE_CIDR_INET6, "::1", 128);
    cidr_ok("fd00::/8", 0, MITTE_CIDR_INET6, "fd00::", 8);
    cidr_ok("::/0", 0, MITTE_CIDR_INET6, "::", 0);
    cidr_ok("2001:db8::/32", 0, MITTE_CIDR_INET6, "2001:db8::", 32);
    cidr_ok("fe80::/10", 0, MITTE_CIDR_INET6, "fe80::", 10);

    /* host bits are cleared, and said so */
    cidr_ok("10.1.2.3/8", 1, MITTE_CIDR_INET, "10.0.0.0", 8);
    cidr_ok("172.31.255.255/12", 1, MITTE_CIDR_INET, "172.16.0.0", 12);
    cidr_ok("1.2.3.4/0", 1, MITTE_CIDR_INET, "0.0.0.0", 0);
    cidr_ok("fdff::1/8", 1, MITTE_CIDR_INET6, "fd00::", 8);
    cidr_ok("fe80::1/10", 1, MITTE_CIDR_INET6, "fe80::", 10);

    /* IPv4-mapped ranges are IPv4 ranges */
    cidr_ok("::ffff:10.0.0.0/104", 0, MITTE_CIDR_INET, "10.0.0.0", 8);
    cidr_ok("::ffff:127.0.0.1", 0, MITTE_CIDR_INET, "127.0.0.1", 32);
    cidr_ok("::ffff:0:0/96", 0, MITTE_CIDR_INET, "0.0.0.0", 0);
    cidr_ok("::ffff:0:0/95", 1, MITTE_CIDR_INET6, "::fffe:0:0", 95);

    CIDR_BAD("");
    CIDR_BAD("/8");
    CIDR_BAD("10.0.0.0/");
    CIDR_BAD("10.0.0.0/33");
    CIDR_BAD("10.0.0.0/100");
    CIDR_BAD("10.0.0.0/0008");
    CIDR_BAD("10.0.0.0/-1");
    CIDR_BAD("10.0.0.0/+8");
    CIDR_BAD("10.0.0.0/8/8");
    CIDR_BAD("10.0.0.0/8 ");
    CIDR_BAD("10.0.0.0/ 8");
    CIDR_BAD(" 10.0.0.0/8");
    CIDR_BAD("10.0.0.0/8x");
    CIDR_BAD("10.0.0/8");
    CIDR_BAD("10/8");
    CIDR_BAD("10.0.0.256");
    CIDR_BAD("127.1");
    CIDR_BAD("0x7f000001");
    CIDR_BAD("010.0.0.1");
    CIDR_BAD("::/129");
    CIDR_BAD("fd00::/200");
    CIDR_BAD("[::1]");
    CIDR_BAD("::g");
    CIDR_BAD("1:2:3:4:5:6:7:8:9");
    CIDR_BAD("fe80::1%eth0");
    CIDR_BAD("hello");
    CIDR_BAD("localhost/8");
    CIDR_BAD("1.2.3.4\0/8");
    CIDR_BAD("0000000000000000000000000000000000000000000000000000000000"
             "0000000000000::1");
    cidr_bad(NULL, 0);
}


/* a literal and the address it stands for */

static void
literal_ok(const char *host, const char *addr)
{
    int                       rc;
    char                      text[64];
    struct sockaddr_in       *sin;
    struct sockaddr_in6      *sin6;
    struct sockaddr_storage   ss;

    rc = mitte_host_literal(host, strlen(host), &ss);

    if (rc != 1) {
        fail_msg("host %s: %d, not a literal", host, rc);
    }

    if (ss.ss_family == AF_INET) {
        sin = (struct sockaddr_in *) &ss;
        assert_int_equal(sin->sin_port, 0);
        assert_non_null(inet_ntop(AF_INET, &sin->sin_addr, text,
                                  sizeof(text)));

    } else {
        assert_int_equal(ss.ss_family, AF_INET6);
        sin6 = (struct sockaddr_in6 *) &ss;
        assert_int_equal(sin6->sin6_port, 0);
        assert_non_null(inet_ntop(AF_INET6, &sin6->sin6_addr, text,
                                  sizeof(text)));
    }

    if (strcmp(text, addr) != 0) {
        fail_msg("host %s: %s, expected %s", host, text, addr);
    }
}


static void
literal_rc(const char *host, size_t len, int expected)
{
    int                      rc;
    struct sockaddr_storage  ss;

    rc = mitte_host_literal(host, len, &ss);

    if (rc != expected) {
        fail_msg("host \"%.*s\": %d, expected %d", (int) len, host, rc,
                 expected);
    }
}


#define NAME(s)       literal_rc(s, sizeof(s) - 1, 0)
#define MALFORMED(s)  literal_rc(s, sizeof(s) - 1, -1)


static void
test_host_literal(void **state)
{
    struct sockaddr_in6      *sin6;
    struct sockaddr_storage   ss;

    (void) state;

    /* IPv4 in the forms inet_aton and curl take */
    literal_ok("127.0.0.1", "127.0.0.1");
    literal_ok("127.1", "127.0.0.1");
    literal_ok("127.0.1", "127.0.0.1");
    literal_ok("2130706433", "127.0.0.1");
    literal_ok("0x7f000001", "127.0.0.1");
    literal_ok("0X7F000001", "127.0.0.1");
    literal_ok("0x7F000001", "127.0.0.1");
    literal_ok("017700000001", "127.0.0.1");
    literal_ok("0177.0.0.1", "127.0.0.1");
    literal_ok("0177.0.0.01", "127.0.0.1");
    literal_ok("0x7f.1", "127.0.0.1");
    literal_ok("0x7f.0.0.1", "127.0.0.1");
    literal_ok("0x7f.0x0.0x0.0x1", "127.0.0.1");
    literal_ok("0000000000000000000177.1", "127.0.0.1");
    literal_ok("127.0.0.1.", "127.0.0.1");
    literal_ok("127.1.", "127.0.0.1");
    literal_ok("0", "0.0.0.0");
    literal_ok("0.0.0.0", "0.0.0.0");
    literal_ok("00", "0.0.0.0");
    literal_ok("10.0.65535", "10.0.255.255");
    literal_ok("10.16777215", "10.255.255.255");
    literal_ok("4294967295", "255.255.255.255");
    literal_ok("0xffffffff", "255.255.255.255");
    literal_ok("037777777777", "255.255.255.255");
    literal_ok("169.254.43518", "169.254.169.254");
    literal_ok("8.8.8.8", "8.8.8.8");

    /* IPv6, bracketed or not, with zones */
    literal_ok("[::1]", "::1");
    literal_ok("::1", "::1");
    literal_ok("[::]", "::");
    literal_ok("[::ffff:127.0.0.1]", "::ffff:127.0.0.1");
    literal_ok("[::ffff:7f00:1]", "::ffff:127.0.0.1");
    literal_ok("[0:0:0:0:0:0:0:1]", "::1");
    literal_ok("[2606:4700::1]", "2606:4700::1");
    literal_ok("[FE80::1%25eth0]", "fe80::1");
    literal_ok("[fe80::1%eth0]", "fe80::1");
    literal_ok("fe80::1%25en0", "fe80::1");
    literal_ok("[fe80::1%25a.b_c~d-e]", "fe80::1");

    assert_int_equal(mitte_host_literal("[fe80::1%253]", 13, &ss), 1);
    sin6 = (struct sockaddr_in6 *) &ss;
    assert_int_equal(sin6->sin6_scope_id, 3);

    assert_int_equal(mitte_host_literal("[fe80::1%eth0]", 14, &ss), 1);
    assert_int_equal(sin6->sin6_scope_id, 0);

    /* names */
    NAME("example.com");
    NAME("example.com.");
    NAME("localhost");
    NAME("a");
    NAME("127.0.0.1.nip.io");
    NAME("0x7f.example");
    NAME("1a");
    NAME("1.2.3.a");
    NAME("0x7g");
    NAME("00x1");
    NAME("1e5");
    NAME("example.0xg");

    /* looks like an address, is none */
    MALFORMED("");
    MALFORMED(".");
    MALFORMED("..");
    MALFORMED("a..");
    MALFORMED("256.0.0.1");
    MALFORMED("1.256.0.1");
    MALFORMED("1.2.3.256");
    MALFORMED("1.2.65536");
    MALFORMED("1.16777216");
    MALFORMED("4294967296");
    MALFORMED("99999999999999999999999");
    MALFORMED("0x100000000");
    MALFORMED("1.2.3.4.5");
    MALFORMED("08.0.0.1");
    MALFORMED("127.0.0.08");
    MALFORMED("09");
    MALFORMED("0x");
    MALFORMED("1.2.3.0x");
    MALFORMED("example.123");
    MALFORMED("example.0x1f");
    MALFORMED("1..1");
    MALFORMED(".1");
    MALFORMED("1.2.3.4..");

    /* broken IPv6 */
    MALFORMED("[]");
    MALFORMED("[");
    MALFORMED("]");
    MALFORMED("[::1");
    MALFORMED("::1]");
    MALFORMED("[1.2.3.4]");
    MALFORMED("[example.com]");
    MALFORMED("[::g]");
    MALFORMED("[:::1]");
    MALFORMED("[1:2:3:4:5:6:7:8:9]");
    MALFORMED("[::1%]");
    MALFORMED("[::1%25]");
    MALFORMED("[::1%25eth 0]");
    MALFORMED("[::1%25eth/0]");
    MALFORMED("[%25eth0]");
    MALFORMED("[::ffff:127.1]");
    MALFORMED("[[::1]]");
    MALFORMED("example.com:80");
    MALFORMED("[v1.fe80::1]");
    MALFORMED("[::1\0]");

    assert_int_equal(mitte_host_literal(NULL, 0, &ss), -1);
}


/* literals as SSRF would use them: all judged like the address */

static void
test_literal_blocked(void **state)
{
    size_t                   i;
    struct sockaddr_storage  ss;
    static const char       *hosts[] = {
        "127.1", "2130706433", "0x7f000001", "0177.0.0.1", "0x7f.1",
        "0", "127.0.0.1.", "[::1]", "[::ffff:127.0.0.1]", "[::]",
        "169.254.43518", "[fe80::1%25eth0]", "0xa.0x1", "[64:ff9b::a00:1]",
    };

    (void) state;

    for (i = 0; i < sizeof(hosts) / sizeof(hosts[0]); i++) {
        assert_int_equal(mitte_host_literal(hosts[i], strlen(hosts[i]),
                                            &ss), 1);

        if (mitte_addr_blocked((struct sockaddr *) &ss, NULL, 0) != 1) {
            fail_msg("%s is not blocked", hosts[i]);
        }
    }

    assert_int_equal(mitte_host_literal("134744072", 9, &ss), 1);
    assert_int_equal(mitte_addr_blocked((struct sockaddr *) &ss, NULL, 0),
                     0);
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_blocked_ipv4),
        cmocka_unit_test(test_blocked_ipv6),
        cmocka_unit_test(test_blocked_embedded_ipv4),
        cmocka_unit_test(test_blocked_other_family),
        cmocka_unit_test(test_allow),
        cmocka_unit_test(test_cidr_parse),
        cmocka_unit_test(test_host_literal),
        cmocka_unit_test(test_literal_blocked),
    };

    return cmocka_run_group_tests_name("addr", tests, NULL, NULL);
}
