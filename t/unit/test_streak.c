/*
 * Copyright (C) ngx_mitte_module authors
 */


#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "mitte_streak.h"


#define T0     1770978600000ULL
#define HOUR   3600000ULL
#define FAIL   0
#define OK     1


static mitte_streak_event_e
rec(mitte_streak_t *s, uint64_t t, int success)
{
    return mitte_streak_record(s, t, success, 5, HOUR);
}


static void
test_down_and_recovered(void **state)
{
    int             i;
    mitte_streak_t  s = { 0, 0, 0 };

    (void) state;

    for (i = 1; i <= 4; i++) {
        assert_int_equal(rec(&s, T0 + i, FAIL), MITTE_STREAK_NONE);
        assert_int_equal(s.count, i);
        assert_int_equal(s.down, 0);
    }

    assert_int_equal(rec(&s, T0 + 5, FAIL), MITTE_STREAK_DOWN);
    assert_int_equal(s.count, 5);
    assert_int_equal(s.down, 1);

    /* once per streak */
    assert_int_equal(rec(&s, T0 + 6, FAIL), MITTE_STREAK_NONE);
    assert_int_equal(rec(&s, T0 + 7, FAIL), MITTE_STREAK_NONE);
    assert_int_equal(s.count, 7);

    assert_int_equal(rec(&s, T0 + 8, OK), MITTE_STREAK_RECOVERED);
    assert_int_equal(s.count, 0);
    assert_int_equal(s.down, 0);
    assert_int_equal(s.last_ms, T0 + 8);

    assert_int_equal(rec(&s, T0 + 9, OK), MITTE_STREAK_NONE);
}


static void
test_success_resets(void **state)
{
    int             i;
    mitte_streak_t  s = { 0, 0, 0 };

    (void) state;

    assert_int_equal(rec(&s, T0, OK), MITTE_STREAK_NONE);
    assert_int_equal(s.last_ms, T0);

    for (i = 0; i < 4; i++) {
        assert_int_equal(rec(&s, T0 + i, FAIL), MITTE_STREAK_NONE);
    }

    assert_int_equal(rec(&s, T0 + 10, OK), MITTE_STREAK_NONE);
    assert_int_equal(s.count, 0);

    for (i = 0; i < 4; i++) {
        assert_int_equal(rec(&s, T0 + 20 + i, FAIL), MITTE_STREAK_NONE);
    }

    assert_int_equal(rec(&s, T0 + 30, FAIL), MITTE_STREAK_DOWN);
}


static void
test_inactivity(void **state)
{
    int             i;
    mitte_streak_t  s = { 0, 0, 0 };

    (void) state;

    for (i = 0; i < 4; i++) {
        assert_int_equal(rec(&s, T0, FAIL), MITTE_STREAK_NONE);
    }

    /* exactly "reset" later: no reset */
    assert_int_equal(rec(&s, T0 + HOUR, FAIL), MITTE_STREAK_DOWN);
    assert_int_equal(s.count, 5);

    /* success to start over */
    assert_int_equal(rec(&s, T0 + HOUR, OK), MITTE_STREAK_RECOVERED);

    for (i = 0; i < 4; i++) {
        assert_int_equal(rec(&s, T0 + 2 * HOUR, FAIL), MITTE_STREAK_NONE);
    }

    /* one ms more than "reset": the count starts over at 1 */
    assert_int_equal(rec(&s, T0 + 3 * HOUR + 1, FAIL), MITTE_STREAK_NONE);
    assert_int_equal(s.count, 1);
    assert_int_equal(s.last_ms, T0 + 3 * HOUR + 1);

    /* last_ms moves on every delivery */
    assert_int_equal(rec(&s, T0 + 4 * HOUR, OK), MITTE_STREAK_NONE);
    assert_int_equal(rec(&s, T0 + 5 * HOUR, FAIL), MITTE_STREAK_NONE);
    assert_int_equal(s.count, 1);
}


static void
test_inactivity_while_down(void **state)
{
    int             i;
    mitte_streak_t  s = { 0, 0, 0 };

    (void) state;

    for (i = 0; i < 5; i++) {
        rec(&s, T0, FAIL);
    }

    assert_int_equal(s.down, 1);

    /* the count restarts; "down" stays until a success */
    assert_int_equal(rec(&s, T0 + 2 * HOUR, FAIL), MITTE_STREAK_NONE);
    assert_int_equal(s.count, 1);
    assert_int_equal(s.down, 1);

    for (i = 0; i < 3; i++) {
        assert_int_equal(rec(&s, T0 + 2 * HOUR, FAIL), MITTE_STREAK_NONE);
    }

    /* reaching the threshold again is a new streak */
    assert_int_equal(rec(&s, T0 + 2 * HOUR, FAIL), MITTE_STREAK_DOWN);
    assert_int_equal(rec(&s, T0 + 2 * HOUR, OK), MITTE_STREAK_RECOVERED);
}


static void
test_first_and_backwards(void **state)
{
    int             i;
    mitte_streak_t  s = { 0, 0, 0 };

    (void) state;

    /* last_ms 0 is "no previous delivery", not a long inactivity */
    assert_int_equal(rec(&s, T0, FAIL), MITTE_STREAK_NONE);
    assert_int_equal(s.count, 1);

    /* a clock that went backwards is not inactivity */
    for (i = 0; i < 3; i++) {
        assert_int_equal(rec(&s, T0 - 10 * HOUR, FAIL), MITTE_STREAK_NONE);
    }

    assert_int_equal(rec(&s, T0 - 20 * HOUR, FAIL), MITTE_STREAK_DOWN);
}


static void
test_thresholds(void **state)
{
    int             i;
    mitte_streak_t  s = { 0, 0, 0 };

    (void) state;

    for (i = 0; i < 100; i++) {
        assert_int_equal(mitte_streak_record(&s, T0 + i, FAIL, 0, HOUR),
                         MITTE_STREAK_NONE);
    }

    assert_int_equal(s.count, 100);
    assert_int_equal(s.down, 0);
    assert_int_equal(mitte_streak_record(&s, T0 + i, OK, 0, HOUR),
                     MITTE_STREAK_NONE);

    assert_int_equal(mitte_streak_record(&s, T0 + i, FAIL, 1, HOUR),
                     MITTE_STREAK_DOWN);
    assert_int_equal(mitte_streak_record(&s, T0 + i, FAIL, 1, HOUR),
                     MITTE_STREAK_NONE);
    assert_int_equal(mitte_streak_record(&s, T0 + i, OK, 1, HOUR),
                     MITTE_STREAK_RECOVERED);

    /* the count saturates */
    s.count = UINT32_MAX - 1;
    mitte_streak_record(&s, T0 + i, FAIL, 5, HOUR);
    mitte_streak_record(&s, T0 + i, FAIL, 5, HOUR);
    assert_int_equal(s.count, UINT32_MAX);
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_down_and_recovered),
        cmocka_unit_test(test_success_resets),
        cmocka_unit_test(test_inactivity),
        cmocka_unit_test(test_inactivity_while_down),
        cmocka_unit_test(test_first_and_backwards),
        cmocka_unit_test(test_thresholds),
    };

    return cmocka_run_group_tests_name("streak", tests, NULL, NULL);
}
