/*
 * Copyright (C) ngx_mitte_module authors
 *
 * Exponential backoff with jitter, for reconnecting to Redis.
 */

#ifndef MITTE_BACKOFF_H
#define MITTE_BACKOFF_H

#include <stdint.h>


#define MITTE_BACKOFF_MIN_MS    250
#define MITTE_BACKOFF_MAX_MS    30000


typedef struct {
    uint32_t        base_ms;    /* of the next delay; 0: as after a reset */
} mitte_backoff_t;


/* after a success: the next delay starts from MITTE_BACKOFF_MIN_MS again */
void mitte_backoff_reset(mitte_backoff_t *b);

/*
 * The delay before the next attempt, after a failure: the base (250 ms
 * at first, doubled by each call up to MITTE_BACKOFF_MAX_MS) times 0.75
 * to 1.25, chosen by "rnd" (any random number), so that many clients
 * failing together do not all retry together.
 */
uint32_t mitte_backoff_next(mitte_backoff_t *b, uint32_t rnd);

#endif /* MITTE_BACKOFF_H */
