/*
 * Copyright (C) ngx_mitte_module authors
 *
 * Shared by the libFuzzer targets: FUZZ_CHECK() aborts (a crash libFuzzer
 * saves) when an invariant does not hold, and a reader of the fuzzer's
 * bytes for targets that need numbers as well as text.
 */

#ifndef MITTE_FUZZ_H
#define MITTE_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


#define FUZZ_CHECK(cond)                                                     \
    do {                                                                     \
        if (!(cond)) {                                                       \
            fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__,       \
                    __LINE__, #cond);                                        \
            abort();                                                         \
        }                                                                    \
    } while (0)


typedef struct {
    const uint8_t  *p;
    size_t          left;
} fuzz_in_t;


/* the next n bytes as a little-endian number (0 once the input ends) */

static inline uint64_t
fuzz_uint(fuzz_in_t *in, size_t n)
{
    size_t    i;
    uint64_t  v;

    v = 0;

    for (i = 0; i < n && in->left > 0; i++) {
        v |= (uint64_t) in->p[0] << (8 * i);
        in->p++;
        in->left--;
    }

    return v;
}


/* a malloc()ed copy of the rest, exactly sized: ASan sees a read past it */

static inline char *
fuzz_rest(fuzz_in_t *in, size_t *len)
{
    char  *s;

    *len = in->left;
    s = malloc(in->left ? in->left : 1);
    if (s == NULL) {
        abort();
    }

    memcpy(s, in->p, in->left);
    in->p += in->left;
    in->left = 0;

    return s;
}

#endif /* MITTE_FUZZ_H */
