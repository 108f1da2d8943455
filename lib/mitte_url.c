/*
 * Copyright (C) ngx_mitte_module authors
 */


#include <string.h>

#include "mitte_addr.h"
#include "mitte_url.h"


static int mitte_url_fail(mitte_url_t *u, const char *error);
static int mitte_url_chars(const char *s, size_t len, mitte_url_t *u);
static int mitte_url_port(const char *s, size_t start, size_t end,
    mitte_url_t *u);
static int mitte_url_scheme(const char *s, size_t len, const char *scheme);
static int mitte_url_name(const char *s, size_t len);


int
mitte_url_parse(const char *s, size_t len, mitte_url_t *u)
{
    size_t                   i, start, end, host, host_len, colon;
    struct sockaddr_storage  sa;

    memset(u, 0, sizeof(mitte_url_t));

    if (s == NULL || len == 0) {
        return mitte_url_fail(u, "it is empty");
    }

    if (len > MITTE_URL_MAX) {
        return mitte_url_fail(u, "it is longer than 2048 bytes");
    }

    if (mitte_url_chars(s, len, u) != 0) {
        return -1;
    }

    if (mitte_url_scheme(s, len, "https://")) {
        u->https = 1;
        u->port = 443;
        start = sizeof("https://") - 1;

    } else if (mitte_url_scheme(s, len, "http://")) {
        u->port = 80;
        start = sizeof("http://") - 1;

    } else {
        return mitte_url_fail(u, "it does not begin with http:// or "
                              "https://");
    }

    /* the authority */

    for (end = start; end < len; end++) {
        if (s[end] == '/' || s[end] == '?' || s[end] == '#') {
            break;
        }
    }

    u->path = (uint32_t) end;

    if (memchr(s + start, '@', end - start) != NULL) {
        return mitte_url_fail(u, "it holds user-info");
    }

    if (start == end) {
        return mitte_url_fail(u, "it has no host");
    }

    if (s[start] == '[') {
        for (i = start + 1; i < end && s[i] != ']'; i++) {
            /* void */
        }

        if (i == end) {
            return mitte_url_fail(u, "its IPv6 address lacks the ']'");
        }

        if (mitte_host_literal(s + start, i + 1 - start, &sa) != 1
            || sa.ss_family != AF_INET6)
        {
            return mitte_url_fail(u, "its host is not a valid IPv6 "
                                  "address");
        }

        host = start + 1;
        host_len = i - host;
        colon = i + 1;
        u->ipv6 = 1;

        if (colon != end && s[colon] != ':') {
            return mitte_url_fail(u, "something follows its IPv6 "
                                  "address");
        }

    } else {
        for (colon = start; colon < end && s[colon] != ':'; colon++) {
            /* void */
        }

        host = start;
        host_len = colon - start;

        if (host_len == 0) {
            return mitte_url_fail(u, "it has no host");
        }

        if (!mitte_url_name(s + host, host_len)) {
            return mitte_url_fail(u, "its host is not a valid host name");
        }

        if (mitte_host_literal(s + host, host_len, &sa) < 0) {
            return mitte_url_fail(u, "its host is not a valid IP address");
        }
    }

    if (colon != end && mitte_url_port(s, colon + 1, end, u) != 0) {
        return -1;
    }

    u->host = (uint32_t) host;
    u->host_len = (uint32_t) host_len;

    return 0;
}


/* printable ASCII only: no space, no control character */

static int
mitte_url_chars(const char *s, size_t len, mitte_url_t *u)
{
    size_t         i;
    unsigned char  c;

    for (i = 0; i < len; i++) {
        c = (unsigned char) s[i];

        if (c <= 0x20 || c == 0x7f) {
            return mitte_url_fail(u, "it holds a space or a control "
                                  "character");
        }

        if (c >= 0x80) {
            return mitte_url_fail(u, "it holds a byte that is not ASCII");
        }
    }

    return 0;
}


/* the port, s[start..end) after the ':' */

static int
mitte_url_port(const char *s, size_t start, size_t end, mitte_url_t *u)
{
    size_t    i;
    uint32_t  port;

    if (start == end) {
        return mitte_url_fail(u, "its port is empty");
    }

    port = 0;

    for (i = start; i < end; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return mitte_url_fail(u, "its port is not a number");
        }

        port = port * 10 + (uint32_t) (s[i] - '0');

        if (port > 65535) {
            return mitte_url_fail(u, "its port is above 65535");
        }
    }

    if (port == 0) {
        return mitte_url_fail(u, "its port is 0");
    }

    u->port = port;
    u->has_port = 1;

    return 0;
}


static int
mitte_url_fail(mitte_url_t *u, const char *error)
{
    memset(u, 0, sizeof(mitte_url_t));
    u->error = error;

    return -1;
}


/* 1 when s begins with the lowercase "scheme", in any case */

static int
mitte_url_scheme(const char *s, size_t len, const char *scheme)
{
    char    c;
    size_t  i, n;

    n = strlen(scheme);

    if (len < n) {
        return 0;
    }

    for (i = 0; i < n; i++) {
        c = s[i];

        if (c >= 'A' && c <= 'Z') {
            c = (char) (c - 'A' + 'a');
        }

        if (c != scheme[i]) {
            return 0;
        }
    }

    return 1;
}


/*
 * A host name: [A-Za-z0-9.-_~], no empty label (a single trailing dot is
 * fine). No percent-encoding: curl would decode it, and "%31%32%37.0.0.1"
 * would be an address unseen here.
 */

static int
mitte_url_name(const char *s, size_t len)
{
    char    c;
    size_t  i;

    if (s[0] == '.') {
        return 0;
    }

    for (i = 0; i < len; i++) {
        c = s[i];

        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
            || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '~')
        {
            continue;
        }

        if (c == '.' && (i + 1 == len || s[i + 1] != '.')) {
            continue;
        }

        return 0;
    }

    return 1;
}
