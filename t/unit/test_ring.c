/*
 * Copyright (C) ngx_mitte_module authors
 */


#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <string.h>
#include <cmocka.h>

#include "mitte_ring.h"


#define H0  493050U        /* an hour in 2026 */


static void
expect_bucket(const mitte_ring_t *r, uint32_t now, uint32_t hour,
    uint32_t req, uint32_t fail)
{
    uint32_t  n, f;

    n = 12345;
    f = 12345;
    mitte_ring_get(r, now, hour, &n, &f);
    assert_int_equal(n, req);
    assert_int_equal(f, fail);
}


static void
test_empty(void **state)
{
    mitte_ring_t  r;

    (void) state;

    mitte_ring_init(&r);
    assert_int_equal(r.hour, 0);
    expect_bucket(&r, H0, H0, 0, 0);
    expect_bucket(&r, H0, H0 - 1, 0, 0);
    expect_bucket(&r, 48, 0, 0, 0);
}


static void
test_add_and_rollover(void **state)
{
    mitte_ring_t  r;

    (void) state;

    mitte_ring_init(&r);

    assert_int_equal(mitte_ring_add(&r, H0, 1, 0), 0);
    assert_int_equal(mitte_ring_add(&r, H0, 1, 1), 0);
    assert_int_equal(r.hour, H0);
    expect_bucket(&r, H0, H0, 2, 1);

    /* the next hour starts empty, the previous one is kept */
    assert_int_equal(mitte_ring_add(&r, H0 + 1, 3, 2), 0);
    assert_int_equal(r.hour, H0 + 1);
    expect_bucket(&r, H0 + 1, H0 + 1, 3, 2);
    expect_bucket(&r, H0 + 1, H0, 2, 1);

    /* a late add to an hour still in the window */
    assert_int_equal(mitte_ring_add(&r, H0, 1, 0), 0);
    assert_int_equal(r.hour, H0 + 1);
    expect_bucket(&r, H0 + 1, H0, 3, 1);
}


static void
test_window_edge(void **state)
{
    uint32_t      h;
    mitte_ring_t  r;

    (void) state;

    mitte_ring_init(&r);

    for (h = H0; h <= H0 + 48; h++) {
        assert_int_equal(mitte_ring_add(&r, h, h - H0 + 1, 0), 0);
    }

    /* all 49 hours are held */
    for (h = H0; h <= H0 + 48; h++) {
        expect_bucket(&r, H0 + 48, h, h - H0 + 1, 0);
    }

    /* one hour more: H0 falls out, its bucket is reused */
    assert_int_equal(mitte_ring_add(&r, H0 + 49, 7, 7), 0);
    expect_bucket(&r, H0 + 49, H0 + 49, 7, 7);
    expect_bucket(&r, H0 + 49, H0, 0, 0);
    expect_bucket(&r, H0 + 49, H0 + 1, 2, 0);

    /* adding to an hour older than the window is refused */
    assert_int_equal(mitte_ring_add(&r, H0, 1, 0), -1);
    assert_int_equal(mitte_ring_add(&r, H0 + 1, 1, 0), 0);
    expect_bucket(&r, H0 + 49, H0 + 1, 3, 0);
    expect_bucket(&r, H0 + 49, H0 + 49, 7, 7);
}


static void
test_skip_clears(void **state)
{
    mitte_ring_t  r;

    (void) state;

    mitte_ring_init(&r);

    assert_int_equal(mitte_ring_add(&r, H0, 5, 1), 0);
    assert_int_equal(mitte_ring_add(&r, H0 + 1, 6, 2), 0);
    assert_int_equal(mitte_ring_add(&r, H0 + 2, 7, 3), 0);

    /* skip 10 hours: the skipped buckets held nothing */
    assert_int_equal(mitte_ring_add(&r, H0 + 12, 1, 0), 0);
    expect_bucket(&r, H0 + 12, H0, 5, 1);
    expect_bucket(&r, H0 + 12, H0 + 2, 7, 3);
    expect_bucket(&r, H0 + 12, H0 + 3, 0, 0);
    expect_bucket(&r, H0 + 12, H0 + 11, 0, 0);

    /* later, each falls out as its bucket comes round again */
    mitte_ring_advance(&r, H0 + 49);
    expect_bucket(&r, H0 + 49, H0, 0, 0);
    expect_bucket(&r, H0 + 49, H0 + 1, 6, 2);
    expect_bucket(&r, H0 + 49, H0 + 49, 0, 0);
    mitte_ring_advance(&r, H0 + 50);
    expect_bucket(&r, H0 + 50, H0 + 1, 0, 0);
    expect_bucket(&r, H0 + 50, H0 + 2, 7, 3);
    expect_bucket(&r, H0 + 50, H0 + 50, 0, 0);
    mitte_ring_advance(&r, H0 + 51);
    expect_bucket(&r, H0 + 51, H0 + 2, 0, 0);
    expect_bucket(&r, H0 + 51, H0 + 12, 1, 0);
    expect_bucket(&r, H0 + 51, H0 + 51, 0, 0);
}


static void
test_long_gap(void **state)
{
    uint32_t      h;
    mitte_ring_t  r;

    (void) state;

    mitte_ring_init(&r);

    for (h = H0; h <= H0 + 48; h++) {
        assert_int_equal(mitte_ring_add(&r, h, 3, 1), 0);
    }

    /* a gap of exactly 48 hours keeps the newest */
    mitte_ring_advance(&r, H0 + 96);
    expect_bucket(&r, H0 + 96, H0 + 48, 3, 1);
    expect_bucket(&r, H0 + 96, H0 + 47, 0, 0);

    /* a gap longer than the window clears everything */
    mitte_ring_advance(&r, H0 + 96 + 49);
    assert_int_equal(r.hour, H0 + 96 + 49);

    for (h = 0; h < MITTE_RING_HOURS; h++) {
        assert_int_equal(r.b[h].req_lo, 0);
        assert_int_equal(r.b[h].req_hi, 0);
        assert_int_equal(r.b[h].fail_lo, 0);
        assert_int_equal(r.b[h].fail_hi, 0);
    }

    /* a huge gap too, without looping over it */
    assert_int_equal(mitte_ring_add(&r, H0 + 96 + 49, 2, 2), 0);
    assert_int_equal(mitte_ring_add(&r, UINT32_MAX - 1, 1, 0), 0);
    expect_bucket(&r, UINT32_MAX - 1, UINT32_MAX - 1, 1, 0);
    expect_bucket(&r, UINT32_MAX - 1, H0 + 96 + 49, 0, 0);
}


static void
test_advance_backwards(void **state)
{
    mitte_ring_t  r, copy;

    (void) state;

    mitte_ring_init(&r);
    assert_int_equal(mitte_ring_add(&r, H0 + 5, 4, 4), 0);
    memcpy(&copy, &r, sizeof(r));

    mitte_ring_advance(&r, H0);
    mitte_ring_advance(&r, H0 + 5);
    mitte_ring_advance(&r, 0);
    assert_memory_equal(&r, &copy, sizeof(r));

    /* hour 0 means "empty" and is never stored */
    assert_int_equal(mitte_ring_add(&r, 0, 1, 1), -1);
    assert_memory_equal(&r, &copy, sizeof(r));
}


static void
test_get_outside(void **state)
{
    mitte_ring_t  r, copy;

    (void) state;

    mitte_ring_init(&r);
    assert_int_equal(mitte_ring_add(&r, H0, 9, 3), 0);
    assert_int_equal(mitte_ring_add(&r, H0 + 10, 8, 2), 0);
    memcpy(&copy, &r, sizeof(r));

    /* a future hour */
    expect_bucket(&r, H0 + 10, H0 + 11, 0, 0);

    /* at a later now: still there while within now - 48 */
    expect_bucket(&r, H0 + 48, H0, 9, 3);
    expect_bucket(&r, H0 + 49, H0, 0, 0);
    expect_bucket(&r, H0 + 49, H0 + 10, 8, 2);

    /* an hour after the ring's newest reads zero (its bucket is stale) */
    expect_bucket(&r, H0 + 60, H0 + 59, 0, 0);
    expect_bucket(&r, H0 + 60, H0 + 12, 0, 0);

    /* a "now" older than the ring: only what both windows hold */
    expect_bucket(&r, H0 + 5, H0, 9, 3);
    expect_bucket(&r, H0 + 5, H0 + 10, 0, 0);

    /* beyond the ring's own window although within now's */
    mitte_ring_advance(&r, H0 + 55);
    memcpy(&copy, &r, sizeof(r));
    expect_bucket(&r, H0 + 40, H0, 0, 0);
    expect_bucket(&r, H0 + 40, H0 + 10, 8, 2);

    /* reading changed nothing */
    assert_memory_equal(&r, &copy, sizeof(r));
}


static void
test_saturation(void **state)
{
    mitte_ring_t  r;

    (void) state;

    mitte_ring_init(&r);

    assert_int_equal(mitte_ring_add(&r, H0, MITTE_RING_MAX - 1,
                                    MITTE_RING_MAX - 2), 0);
    expect_bucket(&r, H0, H0, MITTE_RING_MAX - 1, MITTE_RING_MAX - 2);

    assert_int_equal(mitte_ring_add(&r, H0, 5, 5), 0);
    expect_bucket(&r, H0, H0, MITTE_RING_MAX, MITTE_RING_MAX);

    assert_int_equal(mitte_ring_add(&r, H0, UINT32_MAX, UINT32_MAX), 0);
    expect_bucket(&r, H0, H0, MITTE_RING_MAX, MITTE_RING_MAX);

    /* 24-bit values use both halves of the bucket */
    assert_int_equal(mitte_ring_add(&r, H0 + 1, 0x123456, 0x10000), 0);
    expect_bucket(&r, H0 + 1, H0 + 1, 0x123456, 0x10000);
    assert_int_equal(r.b[(H0 + 1) % MITTE_RING_HOURS].req_hi, 0x12);
    assert_int_equal(r.b[(H0 + 1) % MITTE_RING_HOURS].req_lo, 0x3456);

    /* one request at a time: the low half carries into the high byte */
    assert_int_equal(mitte_ring_add(&r, H0 + 2, 0xfffe, 0), 0);
    assert_int_equal(mitte_ring_add(&r, H0 + 2, 1, 0), 0);
    expect_bucket(&r, H0 + 2, H0 + 2, 0xffff, 0);
    assert_int_equal(mitte_ring_add(&r, H0 + 2, 1, 0), 0);
    expect_bucket(&r, H0 + 2, H0 + 2, 0x10000, 0);
    assert_int_equal(mitte_ring_add(&r, H0 + 2, 1, 0), 0);
    expect_bucket(&r, H0 + 2, H0 + 2, 0x10001, 0);

    /* and stops at the maximum */
    assert_int_equal(mitte_ring_add(&r, H0 + 3, MITTE_RING_MAX - 1, 0), 0);
    assert_int_equal(mitte_ring_add(&r, H0 + 3, 1, 0), 0);
    assert_int_equal(mitte_ring_add(&r, H0 + 3, 1, 0), 0);
    expect_bucket(&r, H0 + 3, H0 + 3, MITTE_RING_MAX, 0);
}


static void
test_set(void **state)
{
    mitte_ring_t  r;

    (void) state;

    mitte_ring_init(&r);

    /* set advances to now, then sets within [now - 48, now] */
    assert_int_equal(mitte_ring_set(&r, H0 + 48, H0, 10, 4), 0);
    assert_int_equal(r.hour, H0 + 48);
    expect_bucket(&r, H0 + 48, H0, 10, 4);

    assert_int_equal(mitte_ring_set(&r, H0 + 48, H0 - 1, 10, 4), -1);
    assert_int_equal(mitte_ring_set(&r, H0 + 48, H0 + 49, 10, 4), -1);
    expect_bucket(&r, H0 + 48, H0 - 1, 0, 0);

    /* set replaces, it does not add */
    assert_int_equal(mitte_ring_set(&r, H0 + 48, H0, 3, 1), 0);
    expect_bucket(&r, H0 + 48, H0, 3, 1);
    assert_int_equal(mitte_ring_set(&r, H0 + 48, H0 + 48, 6, 0), 0);
    expect_bucket(&r, H0 + 48, H0 + 48, 6, 0);

    /* saturation and clamping */
    assert_int_equal(mitte_ring_set(&r, H0 + 48, H0 + 1, UINT32_MAX,
                                    UINT32_MAX), 0);
    expect_bucket(&r, H0 + 48, H0 + 1, MITTE_RING_MAX, MITTE_RING_MAX);
    assert_int_equal(mitte_ring_set(&r, H0 + 48, H0 + 2, 5, 9), 0);
    expect_bucket(&r, H0 + 48, H0 + 2, 5, 5);

    /* a now older than the ring: an hour the ring no longer holds */
    assert_int_equal(mitte_ring_set(&r, H0 + 10, H0 - 2, 1, 1), -1);
    assert_int_equal(r.hour, H0 + 48);
    assert_int_equal(mitte_ring_set(&r, H0 + 10, H0 + 3, 1, 1), 0);
    expect_bucket(&r, H0 + 48, H0 + 3, 1, 1);

    /* a later now moves the window */
    assert_int_equal(mitte_ring_set(&r, H0 + 50, H0 + 50, 2, 0), 0);
    expect_bucket(&r, H0 + 50, H0, 0, 0);
    expect_bucket(&r, H0 + 50, H0 + 1, 0, 0);
    expect_bucket(&r, H0 + 50, H0 + 2, 5, 5);

    assert_int_equal(mitte_ring_set(&r, 0, 0, 1, 1), -1);
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_add_and_rollover),
        cmocka_unit_test(test_window_edge),
        cmocka_unit_test(test_skip_clears),
        cmocka_unit_test(test_long_gap),
        cmocka_unit_test(test_advance_backwards),
        cmocka_unit_test(test_get_outside),
        cmocka_unit_test(test_saturation),
        cmocka_unit_test(test_set),
    };

    return cmocka_run_group_tests_name("ring", tests, NULL, NULL);
}
