/*
 * Copyright (C) ngx_mitte_module authors
 *
 * Address classification for the SSRF block: mitte_cidr_parse (the
 * operator's allowlist), mitte_host_literal (URL hosts) and
 * mitte_addr_blocked. A range is well formed; a literal's verdict is
 * stable, is the verdict of its IPv4-mapped form, and an allowlist of
 * everything (or of the address itself) lets it through.
 */

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

#include "fuzz.h"
#include "mitte_addr.h"


static void
fuzz_cidr(const char *s, size_t len)
{
    int           rc;
    size_t        i, bits;
    mitte_cidr_t  c, c2;

    memset(&c, 0xa5, sizeof(c));
    rc = mitte_cidr_parse(s, len, &c);
    FUZZ_CHECK(rc >= -1 && rc <= 1);

    if (rc < 0) {
        return;
    }

    memset(&c2, 0x5a, sizeof(c2));
    FUZZ_CHECK(mitte_cidr_parse(s, len, &c2) == rc);
    FUZZ_CHECK(memcmp(&c, &c2, sizeof(c)) == 0);

    FUZZ_CHECK(c.family == MITTE_CIDR_INET || c.family == MITTE_CIDR_INET6);
    FUZZ_CHECK(c.reserved[0] == 0 && c.reserved[1] == 0);

    bits = (c.family == MITTE_CIDR_INET) ? 32 : 128;
    FUZZ_CHECK(c.prefix <= bits);

    /* host bits (and the unused bytes of IPv4) are zero */
    for (i = c.prefix; i < 128; i++) {
        FUZZ_CHECK(!(c.addr[i / 8] & (0x80 >> (i % 8))));
    }
}


static void
fuzz_literal(const char *s, size_t len)
{
    int                       rc, b, ball, bself;
    mitte_cidr_t              all[2], self;
    struct sockaddr_in       *sin;
    struct sockaddr_in6      *sin6, mapped;
    struct sockaddr_storage   ss, ss2;

    memset(&ss, 0, sizeof(ss));
    rc = mitte_host_literal(s, len, &ss);
    FUZZ_CHECK(rc >= -1 && rc <= 1);

    memset(&ss2, 0, sizeof(ss2));
    FUZZ_CHECK(mitte_host_literal(s, len, &ss2) == rc);

    if (rc != 1) {
        return;
    }

    FUZZ_CHECK(memcmp(&ss, &ss2, sizeof(ss)) == 0);
    FUZZ_CHECK(ss.ss_family == AF_INET || ss.ss_family == AF_INET6);

    b = mitte_addr_blocked((struct sockaddr *) &ss, NULL, 0);
    FUZZ_CHECK(b == 0 || b == 1);
    FUZZ_CHECK(mitte_addr_blocked((struct sockaddr *) &ss, NULL, 0) == b);

    FUZZ_CHECK(mitte_cidr_parse("0.0.0.0/0", 9, &all[0]) == 0);
    FUZZ_CHECK(mitte_cidr_parse("::/0", 4, &all[1]) == 0);
    ball = mitte_addr_blocked((struct sockaddr *) &ss, all, 2);
    FUZZ_CHECK(ball == 0);

    memset(&self, 0, sizeof(self));

    if (ss.ss_family == AF_INET) {
        sin = (struct sockaddr_in *) &ss;
        FUZZ_CHECK(sin->sin_port == 0);

        /* ::ffff:a.b.c.d is judged as a.b.c.d */
        memset(&mapped, 0, sizeof(mapped));
        mapped.sin6_family = AF_INET6;
        mapped.sin6_addr.s6_addr[10] = 0xff;
        mapped.sin6_addr.s6_addr[11] = 0xff;
        memcpy(&mapped.sin6_addr.s6_addr[12], &sin->sin_addr, 4);
        FUZZ_CHECK(mitte_addr_blocked((struct sockaddr *) &mapped, NULL, 0)
                   == b);

        self.family = MITTE_CIDR_INET;
        self.prefix = 32;
        memcpy(self.addr, &sin->sin_addr, 4);

    } else {
        sin6 = (struct sockaddr_in6 *) &ss;
        FUZZ_CHECK(sin6->sin6_port == 0);

        self.family = MITTE_CIDR_INET6;
        self.prefix = 128;
        memcpy(self.addr, &sin6->sin6_addr, 16);

        if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr)) {
            /* allowlists hold the IPv4 range of a mapped one */
            self.family = MITTE_CIDR_INET;
            self.prefix = 32;
            memmove(self.addr, self.addr + 12, 4);
            memset(self.addr + 4, 0, 12);
        }
    }

    bself = mitte_addr_blocked((struct sockaddr *) &ss, &self, 1);

    /* IPv4-compatible ::a.b.c.d is judged as a.b.c.d: only the mapped */
    /* and plain forms are sure to match their own range */
    if (ss.ss_family == AF_INET
        || IN6_IS_ADDR_V4MAPPED(&((struct sockaddr_in6 *) &ss)->sin6_addr)
        || b == 0)
    {
        FUZZ_CHECK(bself == 0);
    }
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char       *s;
    size_t      len;
    fuzz_in_t   in;

    in.p = data;
    in.left = size;
    s = fuzz_rest(&in, &len);

    fuzz_cidr(s, len);
    fuzz_literal(s, len);

    free(s);

    return 0;
}
