/*
 * Copyright (C) ngx_mitte_module authors
 *
 * Consecutive-failure streak of one endpoint.
 */

#ifndef MITTE_STREAK_H
#define MITTE_STREAK_H

#include <stdint.h>


typedef struct {
    uint64_t        last_ms;    /* time of the previous delivery, 0: none */
    uint32_t        count;      /* consecutive failures */
    uint32_t        down;       /* ENDPOINT_DOWN raised and not recovered */
} mitte_streak_t;


typedef enum {
    MITTE_STREAK_NONE = 0,
    MITTE_STREAK_DOWN,          /* the count reached the threshold now */
    MITTE_STREAK_RECOVERED      /* first success after a DOWN */
} mitte_streak_event_e;


/*
 * Records one delivery at "now_ms". A failure first resets the count when
 * the previous delivery was more than "reset_ms" ago, then adds one; a
 * success resets it. DOWN is returned when the count reaches "threshold"
 * (so once per streak), RECOVERED on the first success after a DOWN.
 * A threshold of 0 never returns DOWN.
 */
mitte_streak_event_e mitte_streak_record(mitte_streak_t *s, uint64_t now_ms,
    int success, uint32_t threshold, uint64_t reset_ms);

#endif /* MITTE_STREAK_H */
