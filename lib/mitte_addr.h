/*
 * Copyright (C) ngx_mitte_module authors
 *
 * The SSRF address policy of SPEC section 5: the blocked ranges, the
 * operator's allowlist (mitte_webhook_allow) and IP literals in URL hosts.
 * No DNS here: names are judged by the address actually connected to.
 */

#ifndef MITTE_ADDR_H
#define MITTE_ADDR_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>


#define MITTE_CIDR_INET      4
#define MITTE_CIDR_INET6     6


/* an address range; pointer-free, kept in the zone as it is */
typedef struct {
    uint8_t         family;         /* MITTE_CIDR_INET or MITTE_CIDR_INET6 */
    uint8_t         prefix;         /* 0..32 or 0..128 */
    uint8_t         reserved[2];    /* zero */
    uint8_t         addr[16];       /* network order, host bits zero; */
                                    /* IPv4 in the first 4 bytes */
} mitte_cidr_t;


/*
 * Parses "10.0.0.0/8", "127.0.0.1" (a host: /32), "::1" (/128) or
 * "fd00::/8". IPv4 is a strict dotted quad; a prefix is 0..32 or 0..128
 * in decimal. An IPv4-mapped IPv6 range (::ffff:a.b.c.d/96 or longer) is
 * stored as the IPv4 range inside, as addresses are judged that way.
 * Returns 0; 1 when the address had host bits set, which were cleared
 * ("10.1.2.3/8" is 10.0.0.0/8; worth a warning); -1 when the text is not
 * a range.
 */
int mitte_cidr_parse(const char *s, size_t len, mitte_cidr_t *out);

/*
 * 1 when the connection to "sa" must be refused: an AF_INET or AF_INET6
 * address in a blocked range of SPEC section 5 and in no range of "allow",
 * or any other address family; 0 otherwise. IPv4-mapped (::ffff:0:0/96)
 * and IPv4-compatible (::/96 but :: and ::1) addresses are judged, and
 * matched against the allowlist, as the IPv4 address inside.
 */
int mitte_addr_blocked(const struct sockaddr *sa, const mitte_cidr_t *allow,
    size_t nallow);

/*
 * Whether a URL host is an IP literal, in any form the C library or curl
 * take as an address: a dotted quad and the inet_aton forms ("127.1",
 * "2130706433", "0x7f000001", "0177.0.0.1", "0x7f.1"), with one trailing
 * dot ignored; IPv6 with or without brackets ("[::1]", "::1",
 * "[::ffff:127.0.0.1]"), optionally with a zone ("%25eth0" or "%eth0",
 * kept as the scope id when numeric, else 0).
 * Returns 1 when it is a literal ("out" filled, port 0), 0 when it is a
 * name, -1 when it is malformed: empty, bad IPv6, or a host whose last
 * label is a number (as "1.2.3.4.5", "256.1.1.1", "08.1") but that is not
 * an IPv4 address.
 */
int mitte_host_literal(const char *host, size_t len,
    struct sockaddr_storage *out);

#endif /* MITTE_ADDR_H */
