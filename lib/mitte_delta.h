/*
 * Copyright (C) ngx_mitte_module authors
 *
 * An endpoint's deliveries not yet sent to the cluster, aggregated: by
 * hour, with what the cluster's streak needs (the failures before the
 * first success and after the last one, whether there was a success),
 * the first and last times and the last status. Pointer-free.
 */

#ifndef MITTE_DELTA_H
#define MITTE_DELTA_H

#include <stdint.h>


#define MITTE_DELTA_HOURS    8


typedef struct {
    uint32_t        hour;
    uint32_t        requests;
    uint32_t        failures;
} mitte_delta_hour_t;


typedef struct {
    uint64_t        first_ms;   /* 0: no delivery yet */
    uint64_t        last_ms;
    uint32_t        lead;       /* failures before the first success */
    uint32_t        tail;       /* failures after the last success */
    uint16_t        status;     /* of the last delivery */
    uint8_t         ok;         /* a success among them */
    uint8_t         nhours;
    mitte_delta_hour_t  hours[MITTE_DELTA_HOURS];
} mitte_delta_t;


/*
 * Adds one delivery of "hour" at "now_ms". -1, and nothing added, when
 * its hour would be a ninth one.
 */
int mitte_delta_add(mitte_delta_t *d, uint32_t hour, int success,
    uint64_t now_ms, unsigned status);

#endif /* MITTE_DELTA_H */
