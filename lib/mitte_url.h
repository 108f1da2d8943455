/*
 * Copyright (C) ngx_mitte_module authors
 *
 * The outbound webhook URLs users save: absolute http(s) URLs, checked
 * strictly enough that what is saved is what curl will connect to.
 */

#ifndef MITTE_URL_H
#define MITTE_URL_H

#include <stddef.h>
#include <stdint.h>


#define MITTE_URL_MAX        2048


typedef struct {
    uint32_t        https;          /* 1: https, 0: http */
    uint32_t        port;           /* as given, else 80 or 443 */
    uint32_t        host;           /* offset of the host in s, */
    uint32_t        host_len;       /* without the brackets of IPv6 */
    uint32_t        path;           /* offset of what follows the */
                                    /* authority ('/', '?', '#'), or len */
    uint32_t        ipv6;           /* 1: the host was in brackets */
    uint32_t        has_port;       /* 1: a port was given */
    const char     *error;          /* why -1: a static phrase */
} mitte_url_t;


/*
 * Parses an absolute URL: "http://" or "https://" (case-insensitive), a
 * non-empty host and an optional port 1..65535, then anything. Refused:
 * more than 2048 bytes; spaces, control characters or bytes >= 0x80
 * anywhere (percent-encode them; use punycode for international names);
 * user-info ('@' in the authority); a host name holding anything but
 * [A-Za-z0-9.-_~] (percent-encoding included) or an empty label; a host
 * whose last label is numeric but that is not an IPv4 address (see
 * mitte_host_literal); brackets that do not hold an IPv6 address (with an
 * optional zone). Returns 0, or -1 with u->error set.
 */
int mitte_url_parse(const char *s, size_t len, mitte_url_t *u);

#endif /* MITTE_URL_H */
