/*
 * Copyright (C) ngx_mitte_module authors
 */


#include "mitte_backoff.h"


void
mitte_backoff_reset(mitte_backoff_t *b)
{
    b->base_ms = MITTE_BACKOFF_MIN_MS;
}


uint32_t
mitte_backoff_next(mitte_backoff_t *b, uint32_t rnd)
{
    uint32_t  base;

    base = b->base_ms;

    if (base < MITTE_BACKOFF_MIN_MS) {
        base = MITTE_BACKOFF_MIN_MS;
    }

    if (base > MITTE_BACKOFF_MAX_MS) {
        base = MITTE_BACKOFF_MAX_MS;
    }

    b->base_ms = (base > MITTE_BACKOFF_MAX_MS / 2) ? MITTE_BACKOFF_MAX_MS
                                                   : base * 2;

    /* 75% to 125% of the base, in whole percents */
    return (uint32_t) ((uint64_t) base * (75 + rnd % 51) / 100);
}
