/*
 * Copyright (C) ngx_mitte_module authors
 */


#include "mitte_streak.h"


mitte_streak_event_e
mitte_streak_record(mitte_streak_t *s, uint64_t now_ms, int success,
    uint32_t threshold, uint64_t reset_ms)
{
    uint64_t  last;

    last = s->last_ms;
    s->last_ms = now_ms;

    if (success) {
        s->count = 0;

        if (s->down) {
            s->down = 0;
            return MITTE_STREAK_RECOVERED;
        }

        return MITTE_STREAK_NONE;
    }

    /* a clock that went backwards counts as no inactivity */

    if (last != 0 && now_ms > last && now_ms - last > reset_ms) {
        s->count = 0;
    }

    if (s->count < UINT32_MAX) {
        s->count++;
    }

    if (threshold != 0 && s->count == threshold) {
        s->down = 1;
        return MITTE_STREAK_DOWN;
    }

    return MITTE_STREAK_NONE;
}
