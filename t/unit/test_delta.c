/*
 * Copyright (C) ngx_mitte_module authors
 */


#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <setjmp.h>
#include <cmocka.h>

#include "mitte_delta.h"


#define T0     1770978600000ULL
#define H0     491938
#define FAIL   0
#define OK     1


/* failures before the first success are the lead, after the last the tail */
static void
test_lead_and_tail(void **state)
{
    mitte_delta_t  d;

    (void) state;

    memset(&d, 0, sizeof(d));

    assert_int_equal(mitte_delta_add(&d, H0, FAIL, T0 + 1, 503), 0);
    assert_int_equal(mitte_delta_add(&d, H0, FAIL, T0 + 2, 502), 0);
    assert_int_equal(d.lead, 2);
    assert_int_equal(d.tail, 0);
    assert_int_equal(d.ok, 0);

    assert_int_equal(mitte_delta_add(&d, H0, OK, T0 + 3, 200), 0);
    assert_int_equal(d.ok, 1);
    assert_int_equal(d.tail, 0);

    assert_int_equal(mitte_delta_add(&d, H0, FAIL, T0 + 4, 500), 0);
    assert_int_equal(mitte_delta_add(&d, H0, FAIL, T0 + 5, 500), 0);
    assert_int_equal(d.lead, 2);
    assert_int_equal(d.tail, 2);

    /* a success in between starts the tail over; the lead stays */
    assert_int_equal(mitte_delta_add(&d, H0, OK, T0 + 6, 204), 0);
    assert_int_equal(mitte_delta_add(&d, H0, FAIL, T0 + 7, 429), 0);
    assert_int_equal(d.lead, 2);
    assert_int_equal(d.tail, 1);

    assert_int_equal(d.nhours, 1);
    assert_int_equal(d.hours[0].hour, H0);
    assert_int_equal(d.hours[0].requests, 7);
    assert_int_equal(d.hours[0].failures, 5);
    assert_int_equal(d.first_ms, T0 + 1);
    assert_int_equal(d.last_ms, T0 + 7);
    assert_int_equal(d.status, 429);
}


/* by hour, in the order they came; a ninth hour is refused, nothing added */
static void
test_hours(void **state)
{
    int            i;
    mitte_delta_t  d, before;

    (void) state;

    memset(&d, 0, sizeof(d));

    for (i = 0; i < MITTE_DELTA_HOURS; i++) {
        assert_int_equal(mitte_delta_add(&d, H0 + i, i % 2, T0 + i, 200), 0);
    }

    assert_int_equal(mitte_delta_add(&d, H0 + 3, FAIL, T0 + 20, 500), 0);
    assert_int_equal(d.nhours, MITTE_DELTA_HOURS);
    assert_int_equal(d.hours[3].hour, H0 + 3);
    assert_int_equal(d.hours[3].requests, 2);
    assert_int_equal(d.hours[3].failures, 1);
    assert_int_equal(d.hours[0].failures, 1);
    assert_int_equal(d.hours[1].failures, 0);

    memcpy(&before, &d, sizeof(d));
    assert_int_equal(mitte_delta_add(&d, H0 + 8, FAIL, T0 + 30, 500), -1);
    assert_memory_equal(&d, &before, sizeof(d));
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_lead_and_tail),
        cmocka_unit_test(test_hours),
    };

    return cmocka_run_group_tests_name("delta", tests, NULL, NULL);
}
