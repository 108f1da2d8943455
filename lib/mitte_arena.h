/*
 * Copyright (C) ngx_mitte_module authors
 *
 * A bump allocator for short-lived objects freed all at once: the replies
 * Redis sends, built object by object and dropped after their callback.
 * One block is kept from reset to reset (grown to what a reset found in
 * use, up to "keep" bytes), so that a steady stream of replies allocates
 * nothing; what does not fit goes into extra blocks, freed at the reset.
 */

#ifndef MITTE_ARENA_H
#define MITTE_ARENA_H

#include <stddef.h>


#define MITTE_ARENA_MIN     4096


typedef struct mitte_arena_block_s  mitte_arena_block_t;

typedef struct {
    mitte_arena_block_t    *first;      /* kept */
    mitte_arena_block_t    *extra;      /* freed at the reset */
    unsigned char          *pos;
    unsigned char          *last;
    size_t                  used;       /* since the reset */
    size_t                  keep;       /* the kept block's size at most */
} mitte_arena_t;


/* an empty arena: nothing is allocated until the first call */
void mitte_arena_init(mitte_arena_t *a, size_t keep);

/* "size" bytes aligned for any object; NULL when out of memory */
void *mitte_arena_alloc(mitte_arena_t *a, size_t size);

/* every object allocated is gone; the kept block stays */
void mitte_arena_reset(mitte_arena_t *a);

/* every block freed: the arena is as after mitte_arena_init() */
void mitte_arena_free(mitte_arena_t *a);

#endif /* MITTE_ARENA_H */
