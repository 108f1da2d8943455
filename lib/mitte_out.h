/*
 * Copyright (C) ngx_mitte_module authors
 *
 * snprintf-like output into a buffer: what fits is written, the whole
 * length is counted; after a piece that did not fit, nothing more is
 * written, so the buffer holds a prefix of the whole.
 */

#ifndef MITTE_OUT_H
#define MITTE_OUT_H

#include <stddef.h>
#include <stdint.h>


typedef struct {
    char           *buf;
    size_t          size;
    size_t          len;            /* the length needed so far */
    size_t          written;        /* bytes in buf, < size */
} mitte_out_t;


void mitte_out_init(mitte_out_t *o, char *buf, size_t size);
void mitte_out_raw(mitte_out_t *o, const char *s, size_t len);
void mitte_out_str(mitte_out_t *o, const char *s);
void mitte_out_uint(mitte_out_t *o, uint64_t v);

/* JSON-escaped (no quotes), written whole or not at all */
void mitte_out_json(mitte_out_t *o, const char *s, size_t len);

/* a quoted JSON string, written whole or not at all */
void mitte_out_json_str(mitte_out_t *o, const char *s, size_t len);

/* NUL-terminates what was written; returns the whole length */
size_t mitte_out_end(mitte_out_t *o);

#endif /* MITTE_OUT_H */
