/*
 * Copyright (C) ngx_mitte_module authors
 */


#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <setjmp.h>
#include <string.h>
#include <cmocka.h>

#include "mitte_anomaly.h"


#define C  491938U          /* the current hour */


typedef struct {
    mitte_ring_t            ring;
    mitte_anomaly_conf_t    conf;
    mitte_anomaly_result_t  res;
} anomaly_t;


static anomaly_t  *a;


static int
setup(void **state)
{
    a = test_calloc(1, sizeof(anomaly_t));
    mitte_ring_init(&a->ring);
    mitte_anomaly_conf_default(&a->conf);
    *state = a;

    return 0;
}


static int
teardown(void **state)
{
    test_free(*state);

    return 0;
}


/* hour c - ago gets n requests, f failures */

static void
hist(uint32_t ago, uint32_t n, uint32_t f)
{
    assert_int_equal(mitte_ring_set(&a->ring, C, C - ago, n, f), 0);
}


/* sets the current hour and runs the rule */

static int
check(uint32_t n, uint32_t f)
{
    int  rc;

    assert_int_equal(mitte_ring_set(&a->ring, C, C, n, f), 0);

    memset(&a->res, 0xa5, sizeof(a->res));
    rc = mitte_anomaly_check(&a->ring, C, &a->conf, &a->res);

    assert_int_equal(rc, a->res.fired);
    assert_int_equal(a->res.requests, n);
    assert_int_equal(a->res.failures, f);
    assert_int_equal(a->res.fired, a->res.by_zscore || a->res.by_rate);

    return rc;
}


/* six hours 1..6 ago at rates lo, hi, lo, hi, ...: mu, sigma = (hi-lo)/2 */

static void
hist_alternating(uint32_t n, uint32_t f_lo, uint32_t f_hi)
{
    uint32_t  k;

    for (k = 1; k <= 6; k++) {
        hist(k, n, (k % 2) ? f_lo : f_hi);
    }
}


static void
test_defaults(void **state)
{
    mitte_anomaly_conf_t  conf;

    (void) state;

    mitte_anomaly_conf_default(&conf);
    assert_int_equal(conf.window, 48);
    assert_int_equal(conf.history, 6);
    assert_true(conf.zscore == 2.5);
    assert_int_equal(conf.zscore_min_requests, 5);
    assert_true(conf.rate == 0.80);
    assert_int_equal(conf.rate_min_requests, 10);
}


static void
test_sigma_zero(void **state)
{
    uint32_t  k;

    (void) state;

    for (k = 1; k <= 6; k++) {
        hist(k, 100, 0);
    }

    /* the floor 0.01: z = r / 0.01 */
    assert_int_equal(check(100, 2), 0);
    assert_int_equal(a->res.hours, 6);
    assert_true(a->res.active);
    assert_true(a->res.sigma == 0.0);
    assert_true(a->res.mean == 0.0);
    assert_float_equal(a->res.z, 2.0, 1e-9);

    assert_int_equal(check(100, 3), 1);
    assert_float_equal(a->res.z, 3.0, 1e-9);
    assert_true(a->res.by_zscore);
    assert_false(a->res.by_rate);

    assert_int_equal(check(10, 1), 1);
    assert_float_equal(a->res.z, 10.0, 1e-9);

    /* no failure at all: z = 0 */
    assert_int_equal(check(100, 0), 0);
    assert_float_equal(a->res.z, 0.0, 1e-12);
}


static void
test_history_count(void **state)
{
    uint32_t  k;

    (void) state;

    /* five hours of history: inactive, even at 100% */
    for (k = 1; k <= 5; k++) {
        hist(k, 100, 0);
    }

    assert_int_equal(check(100, 100), 0);
    assert_int_equal(a->res.hours, 5);
    assert_false(a->res.active);
    assert_false(a->res.by_zscore);
    assert_false(a->res.by_rate);
    assert_float_equal(a->res.rate, 1.0, 0);
    assert_float_equal(a->res.z, 100.0, 1e-9);

    /* the sixth */
    hist(6, 100, 0);
    assert_int_equal(check(100, 100), 1);
    assert_int_equal(a->res.hours, 6);
    assert_true(a->res.active);
    assert_true(a->res.by_zscore);
    assert_true(a->res.by_rate);

    /* a configured history */
    a->conf.history = 7;
    assert_int_equal(check(100, 100), 0);
    a->conf.history = 0;
    assert_int_equal(check(100, 100), 1);
}


static void
test_zero_request_hours(void **state)
{
    uint32_t  k;

    (void) state;

    /* hours with no request are not history, nor do they lower mu */
    for (k = 1; k <= 20; k++) {
        hist(k, (k % 4 == 0) ? 50 : 0, (k % 4 == 0) ? 10 : 0);
    }

    assert_int_equal(check(50, 45), 0);
    assert_int_equal(a->res.hours, 5);
    assert_false(a->res.active);

    hist(30, 50, 10);
    assert_int_equal(check(50, 10), 0);
    assert_int_equal(a->res.hours, 6);
    assert_true(a->res.active);
    assert_float_equal(a->res.mean, 0.2, 1e-12);
    assert_float_equal(a->res.sigma, 0.0, 1e-12);
    assert_float_equal(a->res.z, 0.0, 1e-9);

    assert_int_equal(check(50, 11), 0);
    assert_float_equal(a->res.z, 2.0, 1e-9);
    assert_int_equal(check(50, 12), 1);
    assert_float_equal(a->res.z, 4.0, 1e-9);
}


static void
test_zscore_edge(void **state)
{
    (void) state;

    /* rates 0.1 and 0.3: mu 0.2, sigma 0.1, z = (r - 0.2) / 0.1 */
    hist_alternating(10, 1, 3);

    assert_int_equal(check(1000, 449), 0);
    assert_float_equal(a->res.mean, 0.2, 1e-12);
    assert_float_equal(a->res.sigma, 0.1, 1e-12);
    assert_float_equal(a->res.z, 2.49, 1e-9);
    assert_false(a->res.by_zscore);

    assert_int_equal(check(1000, 451), 1);
    assert_float_equal(a->res.z, 2.51, 1e-9);
    assert_true(a->res.by_zscore);
    assert_false(a->res.by_rate);

    /* a configured threshold */
    a->conf.zscore = 2.6;
    assert_int_equal(check(1000, 451), 0);
}


static void
test_zscore_min_requests(void **state)
{
    uint32_t  k;

    (void) state;

    for (k = 1; k <= 6; k++) {
        hist(k, 100, 0);
    }

    assert_int_equal(check(4, 4), 0);
    assert_float_equal(a->res.z, 100.0, 1e-9);
    assert_false(a->res.by_zscore);

    assert_int_equal(check(5, 5), 1);
    assert_true(a->res.by_zscore);
    assert_false(a->res.by_rate);

    assert_int_equal(check(5, 1), 1);
    assert_float_equal(a->res.z, 20.0, 1e-9);
}


static void
test_rate_edge(void **state)
{
    (void) state;

    /* rates 0.7 and 0.9: mu 0.8, sigma 0.1; the z rule stays quiet */
    hist_alternating(10, 7, 9);

    /* exactly 80%: not above */
    assert_int_equal(check(10, 8), 0);
    assert_false(a->res.by_rate);
    assert_int_equal(check(100, 80), 0);
    assert_int_equal(check(5, 4), 0);
    assert_float_equal(a->res.rate, 0.8, 0);

    /* just above */
    assert_int_equal(check(1000, 801), 1);
    assert_true(a->res.by_rate);
    assert_false(a->res.by_zscore);
    assert_float_equal(a->res.z, 0.01, 1e-9);

    /* 9 vs 10 requests */
    assert_int_equal(check(9, 8), 0);
    assert_false(a->res.by_rate);
    assert_int_equal(check(9, 9), 0);
    assert_float_equal(a->res.z, 2.0, 1e-9);
    assert_int_equal(check(10, 9), 1);
    assert_true(a->res.by_rate);
    assert_false(a->res.by_zscore);

    /* a configured rate */
    a->conf.rate = 0.95;
    assert_int_equal(check(10, 9), 0);
    a->conf.rate = 0.80;
    a->conf.rate_min_requests = 11;
    assert_int_equal(check(10, 9), 0);
}


static void
test_window_edge(void **state)
{
    uint32_t  k;

    (void) state;

    for (k = 1; k <= 5; k++) {
        hist(k, 100, 0);
    }

    /* c - 48 is history */
    hist(48, 100, 0);
    assert_int_equal(check(100, 50), 1);
    assert_int_equal(a->res.hours, 6);

    /* a smaller window leaves it out */
    a->conf.window = 47;
    assert_int_equal(check(100, 50), 0);
    assert_int_equal(a->res.hours, 5);

    /* a window above 48 is 48 */
    a->conf.window = 1000;
    assert_int_equal(check(100, 50), 1);
    assert_int_equal(a->res.hours, 6);
}


static void
test_window_edge_49(void **state)
{
    uint32_t                k;
    mitte_ring_t            ring;
    mitte_anomaly_result_t  res;

    (void) state;

    /* c - 49 is not: set it while it was still in the ring's window */
    mitte_ring_init(&ring);

    for (k = 1; k <= 5; k++) {
        assert_int_equal(mitte_ring_set(&ring, C - 1, C - k, 100, 0), 0);
    }

    assert_int_equal(mitte_ring_set(&ring, C - 1, C - 49, 100, 0), 0);

    assert_int_equal(mitte_anomaly_check(&ring, C, &a->conf, &res), 0);
    assert_int_equal(res.hours, 5);
    assert_false(res.active);
    assert_int_equal(res.requests, 0);

    /* and c - 48 is */
    assert_int_equal(mitte_ring_set(&ring, C - 1, C - 48, 100, 0), 0);
    assert_int_equal(mitte_anomaly_check(&ring, C, &a->conf, &res), 0);
    assert_int_equal(res.hours, 6);
    assert_true(res.active);

    /* the current hour has no request yet: nothing fires */
    assert_int_equal(res.requests, 0);
    assert_false(res.fired);
    assert_float_equal(res.rate, 0.0, 0);
}


static void
test_no_requests_now(void **state)
{
    uint32_t  k;

    (void) state;

    for (k = 1; k <= 6; k++) {
        hist(k, 10, 10);
    }

    assert_int_equal(check(0, 0), 0);
    assert_true(a->res.active);
    assert_float_equal(a->res.rate, 0.0, 0);
    assert_float_equal(a->res.mean, 1.0, 1e-12);
    assert_float_equal(a->res.z, -100.0, 1e-9);
    assert_false(a->res.by_zscore);
    assert_false(a->res.by_rate);

    /* and an empty ring */
    mitte_ring_init(&a->ring);
    assert_int_equal(mitte_anomaly_check(&a->ring, C, &a->conf, &a->res), 0);
    assert_int_equal(a->res.hours, 0);
    assert_int_equal(a->res.requests, 0);
    assert_false(a->res.active);
    assert_float_equal(a->res.z, 0.0, 0);
}


static void
test_percent(void **state)
{
    (void) state;

    assert_int_equal(mitte_anomaly_percent(0, 0), 0);
    assert_int_equal(mitte_anomaly_percent(5, 0), 0);
    assert_int_equal(mitte_anomaly_percent(0, 10), 0);
    assert_int_equal(mitte_anomaly_percent(1, 8), 13);
    assert_int_equal(mitte_anomaly_percent(57, 200), 29);
    assert_int_equal(mitte_anomaly_percent(1, 200), 1);
    assert_int_equal(mitte_anomaly_percent(1, 201), 0);
    assert_int_equal(mitte_anomaly_percent(1, 3), 33);
    assert_int_equal(mitte_anomaly_percent(2, 3), 67);
    assert_int_equal(mitte_anomaly_percent(9, 10), 90);
    assert_int_equal(mitte_anomaly_percent(199, 200), 100);
    assert_int_equal(mitte_anomaly_percent(398, 400), 100);
    assert_int_equal(mitte_anomaly_percent(397, 400), 99);
    assert_int_equal(mitte_anomaly_percent(10, 10), 100);
    assert_int_equal(mitte_anomaly_percent(UINT32_MAX, UINT32_MAX), 100);
    assert_int_equal(mitte_anomaly_percent(UINT32_MAX / 2, UINT32_MAX), 50);
}


static void
message(const mitte_anomaly_result_t *res, const char *name,
    const char *want)
{
    char    buf[256];
    size_t  n;

    n = mitte_anomaly_message(buf, sizeof(buf), name, strlen(name), res);
    assert_string_equal(buf, want);
    assert_int_equal(n, strlen(want));
}


static void
test_message(void **state)
{
    char                    buf[16];
    size_t                  n;
    mitte_anomaly_result_t  res;
    const char             *full;

    (void) state;

    memset(&res, 0, sizeof(res));
    res.requests = 10;
    res.failures = 9;
    res.z = 3.04;

    message(&res, "stripe-prod",
            "Endpoint 'stripe-prod' failure rate spiked to 90% "
            "(z-score: 3.0)");

    res.requests = 8;
    res.failures = 1;
    res.z = 12.96;
    message(&res, "a", "Endpoint 'a' failure rate spiked to 13% "
            "(z-score: 13.0)");

    res.z = 100.0;
    message(&res, "", "Endpoint '' failure rate spiked to 13% "
            "(z-score: 100.0)");

    /* never "-0.0" */
    res.z = -0.04;
    message(&res, "x", "Endpoint 'x' failure rate spiked to 13% "
            "(z-score: 0.0)");
    res.z = -0.0;
    message(&res, "x", "Endpoint 'x' failure rate spiked to 13% "
            "(z-score: 0.0)");
    res.z = -0.06;
    message(&res, "x", "Endpoint 'x' failure rate spiked to 13% "
            "(z-score: -0.1)");
    /* half away from zero, as P is rounded half up */
    res.z = -2.25;
    message(&res, "x", "Endpoint 'x' failure rate spiked to 13% "
            "(z-score: -2.3)");

    /* the name is taken by length */
    res.z = 2.0;
    n = mitte_anomaly_message(buf, sizeof(buf), "abcdef", 3, &res);
    full = "Endpoint 'abc' failure rate spiked to 13% (z-score: 2.0)";
    assert_int_equal(n, strlen(full));

    /* truncated like snprintf */
    assert_int_equal(strlen(buf), sizeof(buf) - 1);
    assert_memory_equal(buf, full, sizeof(buf) - 1);

    assert_int_equal(mitte_anomaly_message(NULL, 0, "abc", 3, &res),
                     strlen(full));

    memset(buf, '#', sizeof(buf));
    assert_int_equal(mitte_anomaly_message(buf, 1, "abc", 3, &res),
                     strlen(full));
    assert_int_equal(buf[0], '\0');
    assert_int_equal(buf[1], '#');
}


static void
test_fired_message(void **state)
{
    uint32_t  k;
    char      buf[128];

    (void) state;

    for (k = 1; k <= 6; k++) {
        hist(k, 100, 1);
    }

    assert_int_equal(check(57, 17), 1);
    mitte_anomaly_message(buf, sizeof(buf), "orders", 6, &a->res);
    assert_string_equal(buf, "Endpoint 'orders' failure rate spiked to 30% "
                        "(z-score: 28.8)");
}


/*
 * Z is rounded half away from zero to one decimal, whatever binary floating
 * point makes of the tie: 2.55 is held as 2.5499..., 0.9 - 1 as -0.0999...
 */

static void
test_message_ties(void **state)
{
    size_t                  i;
    char                    want[128];
    mitte_anomaly_result_t  res;
    static const struct {
        double       z;
        const char  *text;
    } ties[] = {
        { 6.25, "6.3" }, { 2.25, "2.3" }, { 0.25, "0.3" }, { 0.05, "0.1" },
        { 0.15, "0.2" }, { 0.35, "0.4" }, { 1.45, "1.5" }, { 2.55, "2.6" },
        { 99.95, "100.0" }, { -6.25, "-6.3" }, { -0.25, "-0.3" },
        { -0.05, "-0.1" }, { -2.55, "-2.6" }, { 6.2499, "6.2" },
        { 2.5499, "2.5" }, { -10.0, "-10.0" },
        /* as the rule computes them: (r - mu) / sigma */
        { (0.8875 - 0.25) / 0.25, "2.6" },
        { (0.9 - 1.0) / 0.01, "-10.0" },
        { (0.90625 - 0.125) / 0.125, "6.3" },
        { (0.8125 - 0.25) / 0.25, "2.3" }
    };

    (void) state;

    memset(&res, 0, sizeof(res));
    res.requests = 8;
    res.failures = 1;

    for (i = 0; i < sizeof(ties) / sizeof(ties[0]); i++) {
        res.z = ties[i].z;
        snprintf(want, sizeof(want), "Endpoint 'x' failure rate spiked to "
                 "13%% (z-score: %s)", ties[i].text);
        message(&res, "x", want);
    }
}


/* the same ties from hourly counts, through the rule */

static void
test_fired_ties(void **state)
{
    char  buf[128];

    (void) state;

    /* rates 0, .25: mu .125, sigma .125; 29/32: z 6.25 */
    hist_alternating(100, 0, 25);
    assert_int_equal(check(32, 29), 1);
    mitte_anomaly_message(buf, sizeof(buf), "e", 1, &a->res);
    assert_string_equal(buf, "Endpoint 'e' failure rate spiked to 91% "
                        "(z-score: 6.3)");

    /* rates 0, .5: mu .25, sigma .25; 13/16: z 2.25 (the rate rule) */
    hist_alternating(100, 0, 50);
    assert_int_equal(check(16, 13), 1);
    mitte_anomaly_message(buf, sizeof(buf), "e", 1, &a->res);
    assert_string_equal(buf, "Endpoint 'e' failure rate spiked to 81% "
                        "(z-score: 2.3)");

    /* 71/80: z 2.55 */
    assert_int_equal(check(80, 71), 1);
    mitte_anomaly_message(buf, sizeof(buf), "e", 1, &a->res);
    assert_string_equal(buf, "Endpoint 'e' failure rate spiked to 89% "
                        "(z-score: 2.6)");

    /* all 1: sigma 0, the floor .01; 9/10: z -10 (the rate rule) */
    hist_alternating(100, 100, 100);
    assert_int_equal(check(10, 9), 1);
    mitte_anomaly_message(buf, sizeof(buf), "e", 1, &a->res);
    assert_string_equal(buf, "Endpoint 'e' failure rate spiked to 90% "
                        "(z-score: -10.0)");
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test_setup_teardown(test_sigma_zero, setup, teardown),
        cmocka_unit_test_setup_teardown(test_history_count, setup, teardown),
        cmocka_unit_test_setup_teardown(test_zero_request_hours, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_zscore_edge, setup, teardown),
        cmocka_unit_test_setup_teardown(test_zscore_min_requests, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_rate_edge, setup, teardown),
        cmocka_unit_test_setup_teardown(test_window_edge, setup, teardown),
        cmocka_unit_test_setup_teardown(test_window_edge_49, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_no_requests_now, setup,
                                        teardown),
        cmocka_unit_test(test_percent),
        cmocka_unit_test(test_message),
        cmocka_unit_test_setup_teardown(test_fired_message, setup, teardown),
        cmocka_unit_test(test_message_ties),
        cmocka_unit_test_setup_teardown(test_fired_ties, setup, teardown),
    };

    return cmocka_run_group_tests_name("anomaly", tests, NULL, NULL);
}
