/*
 * Copyright (C) ngx_mitte_module authors
 */


#include "mitte_delta.h"


int
mitte_delta_add(mitte_delta_t *d, uint32_t hour, int success,
    uint64_t now_ms, unsigned status)
{
    unsigned             i;
    mitte_delta_hour_t  *h;

    for (i = 0; i < d->nhours; i++) {
        if (d->hours[i].hour == hour) {
            break;
        }
    }

    if (i == d->nhours) {
        if (i == MITTE_DELTA_HOURS) {
            return -1;
        }

        d->hours[i].hour = hour;
        d->hours[i].requests = 0;
        d->hours[i].failures = 0;
        d->nhours++;
    }

    h = &d->hours[i];
    h->requests++;

    if (success) {
        d->ok = 1;
        d->tail = 0;

    } else {
        h->failures++;

        if (d->ok) {
            d->tail++;

        } else {
            d->lead++;
        }
    }

    if (d->first_ms == 0) {
        d->first_ms = now_ms;
    }

    d->last_ms = now_ms;
    d->status = (uint16_t) status;

    return 0;
}
