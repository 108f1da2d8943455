/*
 * Copyright (C) ngx_mitte_module authors
 */


#include <stdint.h>
#include <stdlib.h>

#include "mitte_arena.h"


#define MITTE_ARENA_ALIGN   16

/*
 * Under AddressSanitizer the free part of the kept block is poisoned: an
 * object read after the reset that ended its life is reported
 */
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define mitte_arena_poison(p, n)    ASAN_POISON_MEMORY_REGION(p, n)
#define mitte_arena_unpoison(p, n)  ASAN_UNPOISON_MEMORY_REGION(p, n)
#else
#define mitte_arena_poison(p, n)
#define mitte_arena_unpoison(p, n)
#endif


struct mitte_arena_block_s {
    mitte_arena_block_t    *next;
    size_t                  size;
    /* the data follow, aligned */
};


#define mitte_arena_data(b)                                                  \
    ((unsigned char *) (b) + mitte_arena_round(sizeof(mitte_arena_block_t)))


static size_t
mitte_arena_round(size_t n)
{
    return (n + MITTE_ARENA_ALIGN - 1) & ~((size_t) MITTE_ARENA_ALIGN - 1);
}


static mitte_arena_block_t *
mitte_arena_block(size_t size)
{
    mitte_arena_block_t  *b;

    b = malloc(mitte_arena_round(sizeof(mitte_arena_block_t)) + size);
    if (b == NULL) {
        return NULL;
    }

    b->next = NULL;
    b->size = size;

    return b;
}


void
mitte_arena_init(mitte_arena_t *a, size_t keep)
{
    a->first = NULL;
    a->extra = NULL;
    a->pos = NULL;
    a->last = NULL;
    a->used = 0;
    a->keep = (keep < MITTE_ARENA_MIN) ? MITTE_ARENA_MIN : keep;
}


void *
mitte_arena_alloc(mitte_arena_t *a, size_t size)
{
    void                 *p;
    size_t                want;
    mitte_arena_block_t  *b;

    if (size > SIZE_MAX / 2) {
        return NULL;
    }

    size = mitte_arena_round(size ? size : 1);
    a->used += size;

    if (a->pos == NULL && a->first == NULL) {
        a->first = mitte_arena_block(MITTE_ARENA_MIN);
        if (a->first == NULL) {
            return NULL;
        }

        a->pos = mitte_arena_data(a->first);
        a->last = a->pos + a->first->size;
        mitte_arena_poison(a->pos, a->first->size);
    }

    if ((size_t) (a->last - a->pos) < size) {
        want = (size > MITTE_ARENA_MIN) ? size : MITTE_ARENA_MIN;

        b = mitte_arena_block(want);
        if (b == NULL) {
            return NULL;
        }

        b->next = a->extra;
        a->extra = b;

        a->pos = mitte_arena_data(b);
        a->last = a->pos + want;
    }

    p = a->pos;
    a->pos += size;

    mitte_arena_unpoison(p, size);

    return p;
}


void
mitte_arena_reset(mitte_arena_t *a)
{
    size_t                size;
    mitte_arena_block_t  *b, *next;

    for (b = a->extra; b; b = next) {
        next = b->next;
        free(b);
    }

    a->extra = NULL;

    if (a->first && a->used > a->first->size && a->used <= a->keep) {
        /* what this reply needed, in one block from now on */
        size = mitte_arena_round(a->used);

        b = mitte_arena_block(size);
        if (b) {
            mitte_arena_unpoison(mitte_arena_data(a->first), a->first->size);
            free(a->first);
            a->first = b;
        }
    }

    a->used = 0;

    if (a->first) {
        a->pos = mitte_arena_data(a->first);
        a->last = a->pos + a->first->size;
        mitte_arena_poison(a->pos, a->first->size);

    } else {
        a->pos = NULL;
        a->last = NULL;
    }
}


void
mitte_arena_free(mitte_arena_t *a)
{
    mitte_arena_reset(a);

    if (a->first) {
        mitte_arena_unpoison(mitte_arena_data(a->first), a->first->size);
        free(a->first);
    }

    mitte_arena_init(a, a->keep);
}
