/*
 * Copyright (C) ngx_mitte_module authors
 *
 * Hourly ring of delivery counts: the current hour plus the 48 before it.
 * Pointer-free and fixed-width, so that it can be copied as it is into a
 * state file or Redis.
 */

#ifndef MITTE_RING_H
#define MITTE_RING_H

#include <stdint.h>
#include <stddef.h>


#define MITTE_RING_HISTORY   48
#define MITTE_RING_HOURS     (MITTE_RING_HISTORY + 1)

/* counters are 24 bits wide and saturate at this value */
#define MITTE_RING_MAX       0xffffffU


/* one hour: requests and failures, 24 bits each, in 6 bytes */
typedef struct {
    uint16_t        req_lo;
    uint16_t        fail_lo;
    uint8_t         req_hi;
    uint8_t         fail_hi;
} mitte_bucket_t;


typedef struct {
    uint32_t        hour;       /* hour index of the newest bucket, 0: empty */
    mitte_bucket_t  b[MITTE_RING_HOURS];
} mitte_ring_t;


void mitte_ring_init(mitte_ring_t *r);

/*
 * Moves the ring forward to "hour", clearing every hour skipped; an hour
 * older than the ring's newest changes nothing.
 */
void mitte_ring_advance(mitte_ring_t *r, uint32_t hour);

/*
 * Adds to the bucket of "hour" (advancing the ring when "hour" is newer).
 * Returns 0, or -1 when "hour" is older than the window and was ignored.
 */
int mitte_ring_add(mitte_ring_t *r, uint32_t hour, uint32_t requests,
    uint32_t failures);

/*
 * Import: advances the ring to "now_hour", then sets the bucket of "hour"
 * when it lies within [now_hour - 48, now_hour]. Returns 0, or -1 when the
 * hour is outside the window (ignored). Values above MITTE_RING_MAX
 * saturate; failures above requests are clamped to requests.
 */
int mitte_ring_set(mitte_ring_t *r, uint32_t now_hour, uint32_t hour,
    uint32_t requests, uint32_t failures);

/*
 * Reads the bucket of "hour" as seen at "now_hour" without changing the
 * ring: zeros when "hour" is outside [now_hour - 48, now_hour] or not held.
 */
void mitte_ring_get(const mitte_ring_t *r, uint32_t now_hour, uint32_t hour,
    uint32_t *requests, uint32_t *failures);

#endif /* MITTE_RING_H */
