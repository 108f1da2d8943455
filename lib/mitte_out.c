/*
 * Copyright (C) ngx_mitte_module authors
 */


#include <stdio.h>
#include <string.h>

#include "mitte_out.h"
#include "mitte_util.h"


void
mitte_out_init(mitte_out_t *o, char *buf, size_t size)
{
    o->buf = buf;
    o->size = (buf == NULL) ? 0 : size;
    o->len = 0;
    o->written = 0;
}


/* copies what fits; after a piece that did not fit, nothing more is */

void
mitte_out_raw(mitte_out_t *o, const char *s, size_t len)
{
    size_t  room, n;

    if (o->written == o->len && o->size != 0 && o->written < o->size - 1
        && len != 0)
    {
        room = o->size - 1 - o->written;
        n = (len < room) ? len : room;
        memcpy(o->buf + o->written, s, n);
        o->written += n;
    }

    o->len += len;
}


void
mitte_out_str(mitte_out_t *o, const char *s)
{
    mitte_out_raw(o, s, strlen(s));
}


void
mitte_out_uint(mitte_out_t *o, uint64_t v)
{
    int   n;
    char  text[24];

    n = snprintf(text, sizeof(text), "%llu", (unsigned long long) v);

    mitte_out_raw(o, text, (n < 0) ? 0 : (size_t) n);
}


/* JSON-escaped, written whole or not at all */

void
mitte_out_json(mitte_out_t *o, const char *s, size_t len)
{
    size_t  n;

    n = mitte_json_escape(NULL, (const unsigned char *) s, len);

    if (o->written == o->len && o->size != 0
        && n <= o->size - 1 - o->written)
    {
        (void) mitte_json_escape((unsigned char *) o->buf + o->written,
                                 (const unsigned char *) s, len);
        o->written += n;
    }

    o->len += n;
}


void
mitte_out_json_str(mitte_out_t *o, const char *s, size_t len)
{
    size_t  n;

    n = mitte_json_escape(NULL, (const unsigned char *) s, len) + 2;

    if (o->written == o->len && o->size != 0
        && n <= o->size - 1 - o->written)
    {
        o->buf[o->written] = '"';
        (void) mitte_json_escape((unsigned char *) o->buf + o->written + 1,
                                 (const unsigned char *) s, len);
        o->buf[o->written + n - 1] = '"';
        o->written += n;
    }

    o->len += n;
}


size_t
mitte_out_end(mitte_out_t *o)
{
    if (o->size != 0) {
        o->buf[o->written] = '\0';
    }

    return o->len;
}
