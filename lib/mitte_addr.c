/*
 * Copyright (C) ngx_mitte_module authors
 */


#include <string.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include "mitte_addr.h"


/* the longest IPv6 text inet_pton reads, with room to spare */
#define MITTE_INET6_TEXT_MAX  64


typedef struct {
    uint8_t         addr[16];
    uint8_t         prefix;
} mitte_range_t;


/* SPEC section 5, IPv4 */
static const mitte_range_t  mitte_blocked4[] = {
    { { 0, 0, 0, 0 }, 8 },
    { { 10, 0, 0, 0 }, 8 },
    { { 100, 64, 0, 0 }, 10 },
    { { 127, 0, 0, 0 }, 8 },
    { { 169, 254, 0, 0 }, 16 },
    { { 172, 16, 0, 0 }, 12 },
    { { 192, 0, 0, 0 }, 24 },
    { { 192, 0, 2, 0 }, 24 },
    { { 192, 88, 99, 0 }, 24 },
    { { 192, 168, 0, 0 }, 16 },
    { { 198, 18, 0, 0 }, 15 },
    { { 198, 51, 100, 0 }, 24 },
    { { 203, 0, 113, 0 }, 24 },
    { { 224, 0, 0, 0 }, 4 },
    { { 240, 0, 0, 0 }, 4 }
};


/*
 * SPEC section 5, IPv6; ::ffff:0:0/96 and the rest of ::/96 are judged by
 * the IPv4 address inside, see mitte_addr_canon()
 */
static const mitte_range_t  mitte_blocked6[] = {
    /* ::/128 */
    { { 0 }, 128 },
    /* ::1/128 */
    { { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1 }, 128 },
    /* 64:ff9b::/96, NAT64 */
    { { 0x00, 0x64, 0xff, 0x9b }, 96 },
    /* 64:ff9b:1::/48, local-use NAT64 */
    { { 0x00, 0x64, 0xff, 0x9b, 0x00, 0x01 }, 48 },
    /* 100::/64, discard-only */
    { { 0x01, 0x00 }, 64 },
    /* 2001::/32, Teredo */
    { { 0x20, 0x01, 0x00, 0x00 }, 32 },
    /* 2001:db8::/32, documentation */
    { { 0x20, 0x01, 0x0d, 0xb8 }, 32 },
    /* 2002::/16, 6to4 */
    { { 0x20, 0x02 }, 16 },
    /* fc00::/7, unique local */
    { { 0xfc }, 7 },
    /* fe80::/10, link-local */
    { { 0xfe, 0x80 }, 10 },
    /* ff00::/8, multicast */
    { { 0xff }, 8 }
};


static int mitte_prefix_match(const uint8_t *a, const uint8_t *net,
    unsigned prefix);
static int mitte_addr_canon(const struct sockaddr *sa, uint8_t *addr);
static int mitte_ipv4_parse(const char *s, size_t len, uint8_t *addr);
static int mitte_ends_in_number(const char *s, size_t len);
static int mitte_ipv6_parse(const char *s, size_t len,
    struct sockaddr_in6 *sin6);
static int mitte_hex_digit(char c);


int
mitte_cidr_parse(const char *s, size_t len, mitte_cidr_t *out)
{
    int          rc;
    char         text[MITTE_INET6_TEXT_MAX];
    size_t       alen, i, bytes;
    unsigned     prefix, max, bits;
    uint8_t      mask;
    const char  *slash;
    static const uint8_t  mapped[12] = {
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff
    };

    memset(out, 0, sizeof(mitte_cidr_t));

    if (s == NULL || len == 0 || memchr(s, '\0', len) != NULL) {
        return -1;
    }

    slash = memchr(s, '/', len);
    alen = (slash != NULL) ? (size_t) (slash - s) : len;

    if (alen == 0 || alen >= sizeof(text)) {
        return -1;
    }

    memcpy(text, s, alen);
    text[alen] = '\0';

    if (memchr(text, ':', alen) != NULL) {
        if (inet_pton(AF_INET6, text, out->addr) != 1) {
            return -1;
        }

        out->family = MITTE_CIDR_INET6;
        max = 128;

    } else {
        if (inet_pton(AF_INET, text, out->addr) != 1) {
            return -1;
        }

        out->family = MITTE_CIDR_INET;
        max = 32;
    }

    prefix = max;

    if (slash != NULL) {
        i = alen + 1;

        if (i == len || len - i > 3) {
            return -1;
        }

        prefix = 0;

        for ( /* void */ ; i < len; i++) {
            if (s[i] < '0' || s[i] > '9') {
                return -1;
            }

            prefix = prefix * 10 + (unsigned) (s[i] - '0');
        }

        if (prefix > max) {
            return -1;
        }
    }

    if (out->family == MITTE_CIDR_INET6 && prefix >= 96
        && memcmp(out->addr, mapped, sizeof(mapped)) == 0)
    {
        memmove(out->addr, out->addr + 12, 4);
        memset(out->addr + 4, 0, 12);
        out->family = MITTE_CIDR_INET;
        prefix -= 96;
        max = 32;
    }

    out->prefix = (uint8_t) prefix;

    /* clear the host bits */

    rc = 0;
    bytes = max / 8;

    for (i = 0; i < bytes; i++) {
        bits = (i * 8 >= prefix) ? 0
               : (prefix - i * 8 >= 8) ? 8 : prefix - i * 8;
        mask = (uint8_t) (0xff00 >> bits);

        if (out->addr[i] & (uint8_t) ~mask) {
            out->addr[i] &= mask;
            rc = 1;
        }
    }

    return rc;
}


int
mitte_addr_blocked(const struct sockaddr *sa, const mitte_cidr_t *allow,
    size_t nallow)
{
    int                   family;
    size_t                i, n;
    uint8_t               addr[16];
    unsigned              max;
    const mitte_range_t  *ranges;

    if (sa == NULL) {
        return 1;
    }

    family = mitte_addr_canon(sa, addr);

    if (family == MITTE_CIDR_INET) {
        ranges = mitte_blocked4;
        n = sizeof(mitte_blocked4) / sizeof(mitte_blocked4[0]);
        max = 32;

    } else if (family == MITTE_CIDR_INET6) {
        ranges = mitte_blocked6;
        n = sizeof(mitte_blocked6) / sizeof(mitte_blocked6[0]);
        max = 128;

    } else {
        /* not an IP address: never connected to */
        return 1;
    }

    for (i = 0; i < n; i++) {
        if (mitte_prefix_match(addr, ranges[i].addr, ranges[i].prefix)) {
            break;
        }
    }

    if (i == n) {
        return 0;
    }

    for (i = 0; i < nallow; i++) {
        if (allow[i].family == family && allow[i].prefix <= max
            && mitte_prefix_match(addr, allow[i].addr, allow[i].prefix))
        {
            return 0;
        }
    }

    return 1;
}


int
mitte_host_literal(const char *host, size_t len,
    struct sockaddr_storage *out)
{
    uint8_t               a[4];
    struct sockaddr_in   *sin;
    struct sockaddr_in6   sin6;

    memset(out, 0, sizeof(struct sockaddr_storage));

    if (host == NULL || len == 0 || memchr(host, '\0', len) != NULL) {
        return -1;
    }

    if (host[0] == '[' || host[len - 1] == ']') {
        if (len < 2 || host[0] != '[' || host[len - 1] != ']') {
            return -1;
        }

        host++;
        len -= 2;

        goto ipv6;
    }

    if (memchr(host, ':', len) != NULL) {
        goto ipv6;
    }

    /* a trailing dot ends a fully qualified name, and an address too */

    if (host[len - 1] == '.') {
        len--;

        if (len == 0 || host[len - 1] == '.') {
            return -1;
        }
    }

    if (mitte_ipv4_parse(host, len, a) == 0) {
        sin = (struct sockaddr_in *) out;
        sin->sin_family = AF_INET;
        memcpy(&sin->sin_addr, a, 4);
        return 1;
    }

    return mitte_ends_in_number(host, len) ? -1 : 0;

ipv6:

    if (mitte_ipv6_parse(host, len, &sin6) != 0) {
        return -1;
    }

    memcpy(out, &sin6, sizeof(struct sockaddr_in6));

    return 1;
}


/* 1 when the first "prefix" bits of a and net are equal */

static int
mitte_prefix_match(const uint8_t *a, const uint8_t *net, unsigned prefix)
{
    size_t   bytes;
    uint8_t  mask;

    bytes = prefix / 8;

    if (memcmp(a, net, bytes) != 0) {
        return 0;
    }

    if (prefix % 8 == 0) {
        return 1;
    }

    mask = (uint8_t) (0xff00 >> (prefix % 8));

    return ((a[bytes] ^ net[bytes]) & mask) == 0;
}


/*
 * The address as judged: IPv4 in the first 4 bytes of "addr" for AF_INET,
 * IPv4-mapped ::ffff:a.b.c.d and IPv4-compatible ::a.b.c.d (but :: and
 * ::1, which are IPv6's own); else IPv6. Returns the MITTE_CIDR_* family,
 * or 0 for other families.
 */

static int
mitte_addr_canon(const struct sockaddr *sa, uint8_t *addr)
{
    const uint8_t               *a;
    const struct sockaddr_in    *sin;
    const struct sockaddr_in6   *sin6;
    static const uint8_t         zero[12];

    memset(addr, 0, 16);

    if (sa->sa_family == AF_INET) {
        sin = (const struct sockaddr_in *) sa;
        memcpy(addr, &sin->sin_addr, 4);
        return MITTE_CIDR_INET;
    }

    if (sa->sa_family != AF_INET6) {
        return 0;
    }

    sin6 = (const struct sockaddr_in6 *) sa;
    a = (const uint8_t *) &sin6->sin6_addr;

    if (memcmp(a, zero, 10) == 0
        && ((a[10] == 0xff && a[11] == 0xff)
            || (a[10] == 0 && a[11] == 0
                && (a[12] | a[13] | a[14] | (a[15] & 0xfe)) != 0)))
    {
        memcpy(addr, a + 12, 4);
        return MITTE_CIDR_INET;
    }

    memcpy(addr, a, 16);

    return MITTE_CIDR_INET6;
}


/*
 * inet_aton(3) as glibc and curl read it: 1 to 4 parts separated by dots,
 * each decimal, octal (a leading 0) or hexadecimal (0x); all parts but the
 * last are bytes, the last fills the remaining 32, 24, 16 or 8 bits.
 */

static int
mitte_ipv4_parse(const char *s, size_t len, uint8_t *addr)
{
    int        d;
    size_t     i, n, k, digits;
    uint32_t   parts[4], v;
    uint64_t   val;
    unsigned   base;
    static const uint32_t  max[4] = {
        0xffffffff, 0xffffff, 0xffff, 0xff
    };

    i = 0;
    n = 0;

    for ( ;; ) {
        if (i == len || s[i] < '0' || s[i] > '9') {
            return -1;
        }

        base = 10;
        digits = 0;

        if (s[i] == '0') {
            if (i + 1 < len && (s[i + 1] == 'x' || s[i + 1] == 'X')) {
                base = 16;
                i += 2;

            } else {
                base = 8;
            }
        }

        val = 0;

        for ( /* void */ ; i < len && s[i] != '.'; i++) {
            d = mitte_hex_digit(s[i]);

            if (d < 0 || (unsigned) d >= base) {
                return -1;
            }

            val = val * base + (unsigned) d;

            if (val > 0xffffffff) {
                return -1;
            }

            digits++;
        }

        if (digits == 0) {
            /* "0x" alone */
            return -1;
        }

        parts[n++] = (uint32_t) val;

        if (i == len) {
            break;
        }

        /* a dot */

        if (n == 4) {
            return -1;
        }

        i++;
    }

    for (k = 0; k + 1 < n; k++) {
        if (parts[k] > 0xff) {
            return -1;
        }
    }

    if (parts[n - 1] > max[n - 1]) {
        return -1;
    }

    v = parts[n - 1];

    for (k = 0; k + 1 < n; k++) {
        v |= parts[k] << (24 - 8 * k);
    }

    addr[0] = (uint8_t) (v >> 24);
    addr[1] = (uint8_t) (v >> 16);
    addr[2] = (uint8_t) (v >> 8);
    addr[3] = (uint8_t) v;

    return 0;
}


/*
 * The WHATWG URL rule: a host whose last label is a number ("123",
 * "0x1f", "0x") is meant as an IPv4 address, and malformed when it is not
 * one. The trailing dot was removed.
 */

static int
mitte_ends_in_number(const char *s, size_t len)
{
    size_t  i, start;

    start = len;

    while (start > 0 && s[start - 1] != '.') {
        start--;
    }

    if (start == len) {
        return 0;
    }

    if (len - start >= 2 && s[start] == '0'
        && (s[start + 1] == 'x' || s[start + 1] == 'X'))
    {
        for (i = start + 2; i < len; i++) {
            if (mitte_hex_digit(s[i]) < 0) {
                return 0;
            }
        }

        return 1;
    }

    for (i = start; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return 0;
        }
    }

    return 1;
}


/*
 * IPv6 text as inet_pton(3) reads it, optionally with a zone: "%25id" as
 * RFC 6874 writes it in a URL, or "%id" as curl also takes it; the id is
 * [A-Za-z0-9._~-]+.
 */

static int
mitte_ipv6_parse(const char *s, size_t len, struct sockaddr_in6 *sin6)
{
    char         text[MITTE_INET6_TEXT_MAX], c;
    size_t       alen, i;
    uint32_t     scope;
    const char  *zone;

    memset(sin6, 0, sizeof(struct sockaddr_in6));

    zone = memchr(s, '%', len);
    alen = (zone != NULL) ? (size_t) (zone - s) : len;

    if (alen == 0 || alen >= sizeof(text)) {
        return -1;
    }

    memcpy(text, s, alen);
    text[alen] = '\0';

    if (inet_pton(AF_INET6, text, &sin6->sin6_addr) != 1) {
        return -1;
    }

    sin6->sin6_family = AF_INET6;

    if (zone == NULL) {
        return 0;
    }

    i = alen + 1;

    if (len - i >= 2 && s[i] == '2' && s[i + 1] == '5') {
        i += 2;
    }

    if (i == len) {
        return -1;
    }

    scope = 0;

    for ( /* void */ ; i < len; i++) {
        c = s[i];

        if (c >= '0' && c <= '9') {
            if (scope != UINT32_MAX) {
                scope = (scope > (UINT32_MAX - 9) / 10) ? UINT32_MAX
                        : scope * 10 + (uint32_t) (c - '0');
            }

            continue;
        }

        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
            || c == '.' || c == '_' || c == '~' || c == '-')
        {
            /* an interface name: resolving it is the kernel's business */
            scope = UINT32_MAX;
            continue;
        }

        return -1;
    }

    sin6->sin6_scope_id = (scope == UINT32_MAX) ? 0 : scope;

    return 0;
}


static int
mitte_hex_digit(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }

    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }

    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }

    return -1;
}
