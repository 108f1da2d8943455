/*
 * Copyright (C) ngx_mitte_module authors
 */


#include <string.h>

#include "mitte_util.h"


#define MITTE_STATUS_MIN  100
#define MITTE_STATUS_MAX  599


static const char  *const mitte_plan_names[MITTE_PLAN_N] = {
    "free", "pro", "trial"
};


static int mitte_status3(const char *s);
static size_t mitte_utf8_len(const unsigned char *p, size_t len);
static int mitte_unicode_space(const unsigned char *p, size_t n);


int
mitte_plan_parse(const char *s, size_t len)
{
    int          plan;
    size_t       i;
    const char  *name;
    char         c;

    for (plan = 0; plan < MITTE_PLAN_N; plan++) {
        name = mitte_plan_names[plan];

        if (strlen(name) != len) {
            continue;
        }

        for (i = 0; i < len; i++) {
            c = s[i];

            if (c >= 'A' && c <= 'Z') {
                c = (char) (c - 'A' + 'a');
            }

            if (c != name[i]) {
                break;
            }
        }

        if (i == len) {
            return plan;
        }
    }

    return -1;
}


const char *
mitte_plan_name(int plan)
{
    if (plan < 0 || plan >= MITTE_PLAN_N) {
        /* not a plan: the default one */
        return mitte_plan_names[MITTE_PLAN_FREE];
    }

    return mitte_plan_names[plan];
}


/*
 * Whether the well-formed UTF-8 sequence of n bytes at p is a C1 control
 * or a code point that Unicode calls a space or a separator.
 */

static int
mitte_unicode_space(const unsigned char *p, size_t n)
{
    size_t    i;
    uint32_t  c;

    c = p[0] & (0x7f >> n);

    for (i = 1; i < n; i++) {
        c = (c << 6) | (p[i] & 0x3f);
    }

    return (c >= 0x80 && c <= 0xa0)
           || c == 0x1680 || c == 0x180e
           || (c >= 0x2000 && c <= 0x200a)
           || c == 0x2028 || c == 0x2029 || c == 0x202f || c == 0x205f
           || c == 0x3000 || c == 0xfeff;
}


/*
 * The check is deliberately loose on the local part (RFC 5321 allows much
 * there) and strict on what breaks headers or JSON. The domain needs no
 * dot: "ops@localhost" or "a@b" are accepted, as an intranet relay may
 * deliver them; it must not begin or end with a dot nor hold "..".
 */

int
mitte_email_valid(const char *s, size_t len)
{
    size_t               i, at, n;
    const unsigned char  *p;

    if (s == NULL || len == 0 || len > MITTE_EMAIL_MAX) {
        return 0;
    }

    p = (const unsigned char *) s;
    at = len;

    for (i = 0; i < len; i++) {
        switch (p[i]) {

        case ' ':
        case ',':
        case '<':
        case '>':
        case '"':
        case 0x7f:
            return 0;

        case '@':
            if (at != len) {
                return 0;
            }

            at = i;
            break;

        default:
            if (p[i] < 0x20) {
                return 0;
            }

            if (p[i] >= 0x80) {
                /* UTF-8: well formed, and no space nor control in it */
                n = mitte_utf8_len(p + i, len - i);

                if (n == 0 || mitte_unicode_space(p + i, n)) {
                    return 0;
                }

                i += n - 1;
            }
        }
    }

    if (at == 0 || at >= len - 1) {
        return 0;
    }

    /* domain labels are not empty */

    if (p[at + 1] == '.' || p[len - 1] == '.') {
        return 0;
    }

    for (i = at + 1; i < len - 1; i++) {
        if (p[i] == '.' && p[i + 1] == '.') {
            return 0;
        }
    }

    return 1;
}


int
mitte_slug_valid(const unsigned char *p, size_t len)
{
    size_t  i;

    /* 1 for [A-Za-z0-9._-] */
    static const uint32_t  ok[8] = {
        0x00000000, 0x03ff6000, 0x87fffffe, 0x07fffffe, 0, 0, 0, 0
    };

    if (p == NULL || len == 0 || len > MITTE_SLUG_MAX) {
        return 0;
    }

    for (i = 0; i < len; i++) {
        if (!(ok[p[i] >> 5] & (1U << (p[i] & 0x1f)))) {
            return 0;
        }
    }

    return 1;
}


int
mitte_event_id_parse(const char *s, size_t len, uint64_t *id)
{
    size_t    i;
    unsigned  d;
    uint64_t  v;

    if (len == 0) {
        return -1;
    }

    v = 0;

    for (i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return -1;
        }

        d = (unsigned) (s[i] - '0');

        if (v > ((uint64_t) INT64_MAX - d) / 10) {
            return -1;
        }

        v = v * 10 + d;
    }

    *id = v;

    return 0;
}


void
mitte_status_set_clear(mitte_status_set_t *set)
{
    memset(set, 0, sizeof(mitte_status_set_t));
}


int
mitte_status_set_add(mitte_status_set_t *set, const char *s, size_t len)
{
    int       lo, hi, st;
    unsigned  bit;

    if (s == NULL) {
        return -1;
    }

    if (len == 3
        && s[0] >= '1' && s[0] <= '5'
        && (s[1] == 'x' || s[1] == 'X')
        && (s[2] == 'x' || s[2] == 'X'))
    {
        lo = (s[0] - '0') * 100;
        hi = lo + 99;

    } else if (len == 3) {
        lo = mitte_status3(s);
        hi = lo;

    } else if (len == 7 && s[3] == '-') {
        lo = mitte_status3(s);
        hi = mitte_status3(s + 4);

    } else {
        return -1;
    }

    if (lo < 0 || hi < 0 || hi < lo) {
        return -1;
    }

    for (st = lo; st <= hi; st++) {
        bit = (unsigned) (st - MITTE_STATUS_MIN);
        set->bits[bit / 8] |= (uint8_t) (1U << (bit % 8));
    }

    return 0;
}


int
mitte_status_set_has(const mitte_status_set_t *set, unsigned status)
{
    unsigned  bit;

    if (status < MITTE_STATUS_MIN || status > MITTE_STATUS_MAX) {
        return 0;
    }

    bit = status - MITTE_STATUS_MIN;

    return (set->bits[bit / 8] >> (bit % 8)) & 1;
}


uint32_t
mitte_quota_threshold(uint32_t limit, uint32_t pct)
{
    uint64_t  t;

    t = ((uint64_t) limit * pct + 99) / 100;

    return t > UINT32_MAX ? UINT32_MAX : (uint32_t) t;
}


size_t
mitte_json_escape(unsigned char *dst, const unsigned char *src, size_t len)
{
    size_t                i, n, out;
    unsigned char         c, esc;
    static const char     hex[] = "0123456789abcdef";

    out = 0;
    i = 0;

    while (i < len) {
        c = src[i];

        if (c >= 0x80) {
            n = mitte_utf8_len(src + i, len - i);

            if (n == 0) {
                /* an invalid byte: U+REPLACEMENT CHARACTER */
                if (dst) {
                    dst[out] = 0xef;
                    dst[out + 1] = 0xbf;
                    dst[out + 2] = 0xbd;
                }

                out += 3;
                i++;
                continue;
            }

            if (dst) {
                memcpy(dst + out, src + i, n);
            }

            out += n;
            i += n;
            continue;
        }

        i++;

        switch (c) {

        case '"':
            esc = '"';
            break;
        case '\\':
            esc = '\\';
            break;
        case '\n':
            esc = 'n';
            break;
        case '\r':
            esc = 'r';
            break;
        case '\t':
            esc = 't';
            break;
        case '\b':
            esc = 'b';
            break;
        case '\f':
            esc = 'f';
            break;
        default:
            esc = 0;
        }

        if (esc) {
            if (dst) {
                dst[out] = '\\';
                dst[out + 1] = esc;
            }

            out += 2;
            continue;
        }

        if (c < 0x20 || c == 0x7f) {
            if (dst) {
                memcpy(dst + out, "\\u00", 4);
                dst[out + 4] = (unsigned char) hex[c >> 4];
                dst[out + 5] = (unsigned char) hex[c & 0xf];
            }

            out += 6;
            continue;
        }

        if (dst) {
            dst[out] = c;
        }

        out++;
    }

    return out;
}


/* "NNN" within 100..599, or -1 */

static int
mitte_status3(const char *s)
{
    int  i, v;

    v = 0;

    for (i = 0; i < 3; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return -1;
        }

        v = v * 10 + (s[i] - '0');
    }

    if (v < MITTE_STATUS_MIN || v > MITTE_STATUS_MAX) {
        return -1;
    }

    return v;
}


/*
 * The length of the well-formed UTF-8 sequence at p (2..4 bytes: no
 * overlong forms, no surrogates, nothing above U+10FFFF), or 0.
 */

static size_t
mitte_utf8_len(const unsigned char *p, size_t len)
{
    size_t         n, i;
    unsigned char  lo, hi;

    lo = 0x80;
    hi = 0xbf;

    if (p[0] >= 0xc2 && p[0] <= 0xdf) {
        n = 2;

    } else if (p[0] >= 0xe0 && p[0] <= 0xef) {
        n = 3;

        if (p[0] == 0xe0) {
            lo = 0xa0;

        } else if (p[0] == 0xed) {
            hi = 0x9f;
        }

    } else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
        n = 4;

        if (p[0] == 0xf0) {
            lo = 0x90;

        } else if (p[0] == 0xf4) {
            hi = 0x8f;
        }

    } else {
        return 0;
    }

    if (len < n || p[1] < lo || p[1] > hi) {
        return 0;
    }

    for (i = 2; i < n; i++) {
        if (p[i] < 0x80 || p[i] > 0xbf) {
            return 0;
        }
    }

    return n;
}


uint64_t
mitte_checksum(const void *data, size_t len)
{
    size_t                i;
    uint64_t              h, w;
    const unsigned char  *p;

    p = data;
    h = 0x243f6a8885a308d3ULL ^ ((uint64_t) len * 0x9e3779b97f4a7c15ULL);

    for ( /* void */ ; len >= 8; len -= 8, p += 8) {
        memcpy(&w, p, 8);
        h = (h ^ w) * 0xff51afd7ed558ccdULL;
        h ^= h >> 33;
    }

    for (w = 0, i = 0; i < len; i++) {
        w |= (uint64_t) p[i] << (8 * i);
    }

    h = (h ^ w) * 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 29;
    h *= 0x9e3779b97f4a7c15ULL;
    h ^= h >> 32;

    return h;
}
