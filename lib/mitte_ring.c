/*
 * Copyright (C) ngx_mitte_module authors
 */


#include <string.h>

#include "mitte_ring.h"


static uint32_t mitte_bucket_requests(const mitte_bucket_t *b);
static uint32_t mitte_bucket_failures(const mitte_bucket_t *b);
static void mitte_bucket_put(mitte_bucket_t *b, uint32_t requests,
    uint32_t failures);
static int mitte_ring_holds(const mitte_ring_t *r, uint32_t hour);


void
mitte_ring_init(mitte_ring_t *r)
{
    memset(r, 0, sizeof(mitte_ring_t));
}


void
mitte_ring_advance(mitte_ring_t *r, uint32_t hour)
{
    uint32_t  h;

    if (hour == 0) {
        return;
    }

    if (r->hour == 0 || (uint64_t) r->hour + MITTE_RING_HISTORY < hour) {
        /* an empty ring, or a gap longer than the window */
        memset(r->b, 0, sizeof(r->b));
        r->hour = hour;
        return;
    }

    if (hour <= r->hour) {
        return;
    }

    for (h = r->hour + 1; h != hour; h++) {
        memset(&r->b[h % MITTE_RING_HOURS], 0, sizeof(mitte_bucket_t));
    }

    memset(&r->b[hour % MITTE_RING_HOURS], 0, sizeof(mitte_bucket_t));
    r->hour = hour;
}


int
mitte_ring_add(mitte_ring_t *r, uint32_t hour, uint32_t requests,
    uint32_t failures)
{
    uint64_t         req, fail;
    mitte_bucket_t  *b;

    if (hour == 0) {
        /* hour 0 marks an empty ring and cannot be held */
        return -1;
    }

    /* the current hour, most of the time: nothing to advance */

    if (hour != r->hour) {
        mitte_ring_advance(r, hour);

        if (!mitte_ring_holds(r, hour)) {
            return -1;
        }
    }

    b = &r->b[hour % MITTE_RING_HOURS];

    /* one request, no failure, no carry into the high byte: most calls */

    if (requests == 1 && failures == 0 && b->req_lo != 0xffff) {
        b->req_lo++;
        return 0;
    }

    req = (uint64_t) mitte_bucket_requests(b) + requests;
    fail = (uint64_t) mitte_bucket_failures(b) + failures;

    if (req > MITTE_RING_MAX) {
        req = MITTE_RING_MAX;
    }

    if (fail > MITTE_RING_MAX) {
        fail = MITTE_RING_MAX;
    }

    mitte_bucket_put(b, (uint32_t) req, (uint32_t) fail);

    return 0;
}


int
mitte_ring_set(mitte_ring_t *r, uint32_t now_hour, uint32_t hour,
    uint32_t requests, uint32_t failures)
{
    if (now_hour == 0 || hour == 0) {
        return -1;
    }

    mitte_ring_advance(r, now_hour);

    if (hour > now_hour
        || (uint64_t) hour + MITTE_RING_HISTORY < now_hour
        || !mitte_ring_holds(r, hour))
    {
        return -1;
    }

    if (requests > MITTE_RING_MAX) {
        requests = MITTE_RING_MAX;
    }

    if (failures > requests) {
        failures = requests;
    }

    mitte_bucket_put(&r->b[hour % MITTE_RING_HOURS], requests, failures);

    return 0;
}


void
mitte_ring_get(const mitte_ring_t *r, uint32_t now_hour, uint32_t hour,
    uint32_t *requests, uint32_t *failures)
{
    const mitte_bucket_t  *b;

    *requests = 0;
    *failures = 0;

    if (hour > now_hour
        || (uint64_t) hour + MITTE_RING_HISTORY < now_hour
        || !mitte_ring_holds(r, hour))
    {
        return;
    }

    b = &r->b[hour % MITTE_RING_HOURS];

    *requests = mitte_bucket_requests(b);
    *failures = mitte_bucket_failures(b);
}


/* the ring holds "hour": not empty, and hour in [r->hour - 48, r->hour] */

static int
mitte_ring_holds(const mitte_ring_t *r, uint32_t hour)
{
    if (r->hour == 0 || hour == 0 || hour > r->hour) {
        return 0;
    }

    return (uint64_t) hour + MITTE_RING_HISTORY >= r->hour;
}


static uint32_t
mitte_bucket_requests(const mitte_bucket_t *b)
{
    return (uint32_t) b->req_lo | ((uint32_t) b->req_hi << 16);
}


static uint32_t
mitte_bucket_failures(const mitte_bucket_t *b)
{
    return (uint32_t) b->fail_lo | ((uint32_t) b->fail_hi << 16);
}


static void
mitte_bucket_put(mitte_bucket_t *b, uint32_t requests, uint32_t failures)
{
    b->req_lo = (uint16_t) (requests & 0xffff);
    b->req_hi = (uint8_t) ((requests >> 16) & 0xff);
    b->fail_lo = (uint16_t) (failures & 0xffff);
    b->fail_hi = (uint8_t) ((failures >> 16) & 0xff);
}
