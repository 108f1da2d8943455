/*
 * Copyright (C) ngx_mitte_module authors
 *
 * Outbound webhook URLs (mitte_url_parse) and the SSRF judgement of their
 * hosts: the parts found lie inside the input and in order, the port is in
 * range, parsing is stable, and an accepted URL's host is never one that
 * mitte_host_literal() calls malformed (an IP literal is judged by the
 * address inside, a name by the address connected to).
 */

#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "fuzz.h"
#include "mitte_addr.h"
#include "mitte_url.h"


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int                      rc, lit, b1, b2;
    char                    *copy;
    size_t                   len;
    fuzz_in_t                in;
    mitte_url_t              u, u2;
    struct sockaddr_storage  ss;

    in.p = data;
    in.left = size;
    copy = fuzz_rest(&in, &len);

    memset(&u, 0, sizeof(u));
    rc = mitte_url_parse(copy, len, &u);

    memset(&u2, 0, sizeof(u2));
    FUZZ_CHECK(mitte_url_parse(copy, len, &u2) == rc);

    if (rc != 0) {
        FUZZ_CHECK(rc == -1);
        FUZZ_CHECK(u.error != NULL && u.error[0] != '\0');
        free(copy);
        return 0;
    }

    FUZZ_CHECK(memcmp(&u, &u2, sizeof(u)) == 0);
    FUZZ_CHECK(len <= MITTE_URL_MAX);
    FUZZ_CHECK(u.https <= 1 && u.ipv6 <= 1 && u.has_port <= 1);
    FUZZ_CHECK(u.host_len > 0);
    FUZZ_CHECK(u.host + u.host_len <= len);
    FUZZ_CHECK(u.path >= u.host + u.host_len && u.path <= len);
    FUZZ_CHECK(u.port >= 1 && u.port <= 65535);
    FUZZ_CHECK(u.has_port || u.port == (u.https ? 443 : 80));
    FUZZ_CHECK(u.host >= (u.https ? 8 : 7));
    FUZZ_CHECK(strncasecmp(copy, u.https ? "https://" : "http://",
                           u.https ? 8 : 7) == 0);
    FUZZ_CHECK(memchr(copy + u.host, '@', u.host_len) == NULL);

    if (u.ipv6) {
        FUZZ_CHECK(copy[u.host - 1] == '[' && copy[u.host + u.host_len] == ']');
    }

    if (u.path < len) {
        FUZZ_CHECK(copy[u.path] == '/' || copy[u.path] == '?'
                   || copy[u.path] == '#');
    }

    for (len = 0; len < u.path; len++) {
        FUZZ_CHECK((unsigned char) copy[len] > 0x20
                   && (unsigned char) copy[len] < 0x7f);
    }

    /* the host as the SSRF check sees it */

    memset(&ss, 0, sizeof(ss));
    lit = mitte_host_literal(copy + u.host, u.host_len, &ss);
    FUZZ_CHECK(lit == 0 || lit == 1);
    FUZZ_CHECK(!u.ipv6 || lit == 1);

    if (lit == 1) {
        FUZZ_CHECK(ss.ss_family == AF_INET || ss.ss_family == AF_INET6);
        b1 = mitte_addr_blocked((struct sockaddr *) &ss, NULL, 0);
        b2 = mitte_addr_blocked((struct sockaddr *) &ss, NULL, 0);
        FUZZ_CHECK((b1 == 0 || b1 == 1) && b1 == b2);
    }

    free(copy);

    return 0;
}
