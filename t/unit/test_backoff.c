/*
 * Copyright (C) ngx_mitte_module authors
 */


#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "mitte_backoff.h"


/* the bases: 250, 500, ..., 16000, then 30000 for good */

static void
test_doubles_up_to_the_cap(void **state)
{
    int              i;
    uint32_t         base[] = { 250, 500, 1000, 2000, 4000, 8000, 16000,
                                30000, 30000, 30000 };
    mitte_backoff_t  b;

    (void) state;

    mitte_backoff_reset(&b);

    for (i = 0; i < (int) (sizeof(base) / sizeof(base[0])); i++) {
        /* rnd 25: exactly 100% of the base */
        assert_int_equal(mitte_backoff_next(&b, 25), base[i]);
    }
}


static void
test_jitter_bounds(void **state)
{
    uint32_t         rnd, d;
    mitte_backoff_t  b;

    (void) state;

    mitte_backoff_reset(&b);
    assert_int_equal(mitte_backoff_next(&b, 0), 187);      /* 75% of 250 */

    mitte_backoff_reset(&b);
    assert_int_equal(mitte_backoff_next(&b, 50), 312);     /* 125% */

    for (rnd = 0; rnd < 100000; rnd += 7) {
        b.base_ms = MITTE_BACKOFF_MAX_MS;
        d = mitte_backoff_next(&b, rnd * 2654435761u);
        assert_true(d >= 22500 && d <= 37500);
        assert_int_equal(b.base_ms, MITTE_BACKOFF_MAX_MS);
    }
}


static void
test_reset_and_zero(void **state)
{
    mitte_backoff_t  b;

    (void) state;

    /* a zeroed struct starts at the minimum, as after a reset */
    b.base_ms = 0;
    assert_int_equal(mitte_backoff_next(&b, 25), 250);
    assert_int_equal(mitte_backoff_next(&b, 25), 500);

    mitte_backoff_reset(&b);
    assert_int_equal(mitte_backoff_next(&b, 25), 250);

    /* a base beyond the cap (a changed constant) is capped */
    b.base_ms = 1000000;
    assert_int_equal(mitte_backoff_next(&b, 25), MITTE_BACKOFF_MAX_MS);
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_doubles_up_to_the_cap),
        cmocka_unit_test(test_jitter_bounds),
        cmocka_unit_test(test_reset_and_zero),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
