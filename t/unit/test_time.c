/*
 * Copyright (C) ngx_mitte_module authors
 */


#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "mitte_time.h"


#define DAY  86400


static int64_t
iso_ms(const char *s)
{
    int64_t  ms;

    ms = -777;
    assert_int_equal(mitte_iso8601_parse(s, strlen(s), &ms), 0);

    return ms;
}


static void
iso_bad(const char *s)
{
    int64_t  ms;

    ms = -777;

    if (mitte_iso8601_parse(s, strlen(s), &ms) != -1) {
        fail_msg("\"%s\" was accepted", s);
    }

    assert_int_equal(ms, -777);
}


static void
expect_iso(int64_t ms, const char *want)
{
    char  buf[MITTE_ISO8601_LEN + 8];

    memset(buf, '#', sizeof(buf));
    assert_int_equal(mitte_iso8601_format(buf, ms), MITTE_ISO8601_LEN);
    assert_int_equal(buf[MITTE_ISO8601_LEN], '#');
    buf[MITTE_ISO8601_LEN] = '\0';
    assert_string_equal(buf, want);
}


static void
expect_month(uint32_t month, const char *want)
{
    char  buf[MITTE_MONTH_LEN + 4];

    memset(buf, '#', sizeof(buf));
    assert_int_equal(mitte_month_format(buf, month), MITTE_MONTH_LEN);
    assert_int_equal(buf[MITTE_MONTH_LEN], '#');
    buf[MITTE_MONTH_LEN] = '\0';
    assert_string_equal(buf, want);
}


static void
test_hour_of(void **state)
{
    (void) state;

    assert_int_equal(mitte_hour_of(0), 0);
    assert_int_equal(mitte_hour_of(3599), 0);
    assert_int_equal(mitte_hour_of(3600), 1);
    assert_int_equal(mitte_hour_of(1770978600), 491938);
    assert_int_equal(mitte_hour_of(-1), 0);
    assert_int_equal(mitte_hour_of(INT64_MAX), UINT32_MAX);
}


static void
test_month_of(void **state)
{
    (void) state;

    assert_int_equal(mitte_month_of(0), 1970 * 12);
    assert_int_equal(mitte_month_of(1794744000), 2026 * 12 + 10);

    /* year rollover */
    assert_int_equal(mitte_month_of(1798761599), 2026 * 12 + 11);
    assert_int_equal(mitte_month_of(1798761600), 2027 * 12);

    /* month rollover in a leap year */
    assert_int_equal(mitte_month_of(1709251199), 2024 * 12 + 1);
    assert_int_equal(mitte_month_of(1709251200), 2024 * 12 + 2);

    assert_int_equal(mitte_month_of(-1), 1969 * 12 + 11);
}


static void
test_month_start(void **state)
{
    uint32_t  m;

    (void) state;

    assert_int_equal(mitte_month_start(1970 * 12), 0);
    assert_int_equal(mitte_month_start(2026 * 12), 1767225600);
    assert_int_equal(mitte_month_start(2027 * 12), 1798761600);
    assert_int_equal(mitte_month_start(2024 * 12 + 1), 1706745600);
    assert_int_equal(mitte_month_start(2024 * 12 + 2), 1709251200);
    assert_int_equal(mitte_month_start(2100 * 12 + 1), 4105123200LL);
    assert_int_equal(mitte_month_start(2000 * 12 + 1), 949363200);

    for (m = 1970 * 12; m < 2500 * 12; m++) {
        assert_int_equal(mitte_month_of(mitte_month_start(m)), m);
        assert_int_equal(mitte_month_of(mitte_month_start(m) - 1), m - 1);
    }
}


static void
test_seconds_to_next_month(void **state)
{
    (void) state;

    /* Dec -> Jan */
    assert_int_equal(mitte_seconds_to_next_month(1798761599), 1);
    assert_int_equal(mitte_seconds_to_next_month(1798761600), 31 * DAY);
    assert_int_equal(mitte_seconds_to_next_month(1798761600 - 31 * DAY),
                     31 * DAY);

    /* February: leap or not */
    assert_int_equal(mitte_seconds_to_next_month(1706745600), 29 * DAY);
    assert_int_equal(mitte_seconds_to_next_month(1706745600 + 1),
                     29 * DAY - 1);
    assert_int_equal(mitte_seconds_to_next_month(4105123200LL), 28 * DAY);
    assert_int_equal(mitte_seconds_to_next_month(949363200), 29 * DAY);
    assert_int_equal(mitte_seconds_to_next_month(
                         mitte_month_start(2026 * 12 + 1)), 28 * DAY);

    /* 30-day month */
    assert_int_equal(mitte_seconds_to_next_month(
                         mitte_month_start(2026 * 12 + 10) + 3600),
                     30 * DAY - 3600);
}


static void
test_month_format(void **state)
{
    (void) state;

    expect_month(2026 * 12 + 10, "2026-11");
    expect_month(2026 * 12 + 11, "2026-12");
    expect_month(2027 * 12, "2027-01");
    expect_month(1970 * 12, "1970-01");
    expect_month(0, "0000-01");
    expect_month(10000 * 12, "9999-12");
}


static void
test_iso_format(void **state)
{
    (void) state;

    expect_iso(0, "1970-01-01T00:00:00.000Z");
    expect_iso(1770978600000LL, "2026-02-13T10:30:00.000Z");
    expect_iso(1770978600123LL, "2026-02-13T10:30:00.123Z");
    expect_iso(1798761599999LL, "2026-12-31T23:59:59.999Z");
    expect_iso(1798761600000LL, "2027-01-01T00:00:00.000Z");
    expect_iso(1709164800000LL, "2024-02-29T00:00:00.000Z");
    expect_iso(951782400000LL, "2000-02-29T00:00:00.000Z");
    expect_iso(4107542400000LL, "2100-03-01T00:00:00.000Z");
    expect_iso(-5, "1970-01-01T00:00:00.000Z");
    expect_iso(INT64_MAX, "9999-12-31T23:59:59.999Z");
}


static void
test_iso_parse(void **state)
{
    (void) state;

    assert_int_equal(iso_ms("2026-03-01"), 1772323200000LL);
    assert_int_equal(iso_ms("2026-03-01T00:00:00Z"), 1772323200000LL);
    assert_int_equal(iso_ms("2026-03-01T12:00:00Z"), 1772366400000LL);
    assert_int_equal(iso_ms("2026-03-01t12:00:00z"), 1772366400000LL);
    assert_int_equal(iso_ms("2026-02-13T10:30:00.123Z"), 1770978600123LL);
    assert_int_equal(iso_ms("2026-02-13T10:30:00.5Z"), 1770978600500LL);
    assert_int_equal(iso_ms("2026-02-13T10:30:00.12Z"), 1770978600120LL);
    assert_int_equal(iso_ms("2026-02-13T10:30:00.999999999Z"),
                     1770978600999LL);
    assert_int_equal(iso_ms("2026-02-13T10:30:00.000000001Z"),
                     1770978600000LL);

    /* offsets */
    assert_int_equal(iso_ms("2026-02-13T12:30:00+02:00"), 1770978600000LL);
    assert_int_equal(iso_ms("2026-02-13T05:00:00-05:30"), 1770978600000LL);
    assert_int_equal(iso_ms("2026-02-13T10:30:00+00:00"), 1770978600000LL);
    assert_int_equal(iso_ms("2026-02-13T10:30:00-00:00"), 1770978600000LL);
    assert_int_equal(iso_ms("2026-02-14T00:30:00.250+14:00"),
                     1770978600250LL);
    assert_int_equal(iso_ms("2027-01-01T01:00:00+02:00"),
                     1798761600000LL - 3600000);

    /* leap years */
    assert_int_equal(iso_ms("2024-02-29"), 1709164800000LL);
    assert_int_equal(iso_ms("2000-02-29T00:00:00Z"), 951782400000LL);
    assert_int_equal(iso_ms("1969-12-31T23:59:59.500Z"), -500);
    assert_int_equal(iso_ms("9999-12-31T23:59:59.999Z"),
                     253402300799999LL);
}


static void
test_iso_reject(void **state)
{
    (void) state;

    iso_bad("");
    iso_bad("2026");
    iso_bad("2026-03");
    iso_bad("2026-3-01");
    iso_bad("2026/03/01");
    iso_bad("26-03-01xx");
    iso_bad("2026-03-01 ");
    iso_bad(" 2026-03-01");
    iso_bad("+2026-03-01");

    /* impossible dates */
    iso_bad("2026-02-29");
    iso_bad("2026-02-30");
    iso_bad("2100-02-29");
    iso_bad("2024-02-30");
    iso_bad("2026-04-31");
    iso_bad("2026-13-01");
    iso_bad("2026-00-10");
    iso_bad("2026-01-00");
    iso_bad("2026-01-32");

    /* times */
    iso_bad("2026-03-01T");
    iso_bad("2026-03-01T12:00:00");
    iso_bad("2026-03-01T12:00Z");
    iso_bad("2026-03-01 12:00:00Z");
    iso_bad("2026-03-01T24:00:00Z");
    iso_bad("2026-03-01T12:60:00Z");
    iso_bad("2026-03-01T12:00:60Z");
    iso_bad("2026-03-01T12-00-00Z");
    iso_bad("2026-03-01T1a:00:00Z");
    iso_bad("2026-03-01T12:00:00.Z");
    iso_bad("2026-03-01T12:00:00.1234567890Z");
    iso_bad("2026-03-01T12:00:00,5Z");
    iso_bad("2026-03-01T12:00:00ZZ");
    iso_bad("2026-03-01T12:00:00Z ");
    iso_bad("2026-03-01T12:00:00+0100");
    iso_bad("2026-03-01T12:00:00+01");
    iso_bad("2026-03-01T12:00:00+24:00");
    iso_bad("2026-03-01T12:00:00+01:60");
    iso_bad("2026-03-01T12:00:00+01:00x");
    iso_bad("2026-03-01T12:00:00UTC");
}


static void
test_iso_round_trip(void **state)
{
    char     buf[MITTE_ISO8601_LEN];
    int64_t  ms, back;

    (void) state;

    for (ms = 0; ms < 253402300799999LL; ms = ms * 3 + 7919) {
        mitte_iso8601_format(buf, ms);
        assert_int_equal(mitte_iso8601_parse(buf, sizeof(buf), &back), 0);
        assert_int_equal(back, ms);
    }

    /* every hour of a leap year and the new year's days around it */
    for (ms = 1704067200000LL - DAY * 1000LL;
         ms < 1735689600000LL + DAY * 1000LL;
         ms += 3600000 + 1)
    {
        mitte_iso8601_format(buf, ms);
        assert_int_equal(mitte_iso8601_parse(buf, sizeof(buf), &back), 0);
        assert_int_equal(back, ms);
    }
}


/* walks the calendar day by day and checks both directions against it */

static void
test_calendar_walk(void **state)
{
    int       y, m, d, mdays;
    char      buf[64];
    int64_t   days, ms;
    static const int  len[12] = {
        31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31
    };

    (void) state;

    days = 0;

    for (y = 1970; y < 2500; y++) {
        for (m = 1; m <= 12; m++) {
            mdays = len[m - 1];

            if (m == 2 && y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)) {
                mdays = 29;
            }

            assert_int_equal(mitte_month_start((uint32_t) (y * 12 + m - 1)),
                             days * DAY);

            for (d = 1; d <= mdays; d++, days++) {
                snprintf(buf, sizeof(buf), "%04d-%02d-%02d", y, m, d);
                assert_int_equal(mitte_iso8601_parse(buf, 10, &ms), 0);
                assert_int_equal(ms, days * DAY * 1000);
            }

            snprintf(buf, sizeof(buf), "%04d-%02d-%02d", y, m, d);
            assert_int_equal(mitte_iso8601_parse(buf, 10, &ms), -1);
        }
    }
}


static void
test_time_parse(void **state)
{
    int64_t  sec;

    (void) state;

    assert_int_equal(mitte_time_parse("0", 1, &sec), 0);
    assert_int_equal(sec, 0);
    assert_int_equal(mitte_time_parse("1772323200", 10, &sec), 0);
    assert_int_equal(sec, 1772323200);
    assert_int_equal(mitte_time_parse("0001772323200", 13, &sec), 0);
    assert_int_equal(sec, 1772323200);
    assert_int_equal(mitte_time_parse("9223372036854775807", 19, &sec), 0);
    assert_int_equal(sec, INT64_MAX);

    assert_int_equal(mitte_time_parse("2026-03-01", 10, &sec), 0);
    assert_int_equal(sec, 1772323200);
    assert_int_equal(mitte_time_parse("2026-03-01T12:00:00Z", 20, &sec), 0);
    assert_int_equal(sec, 1772366400);
    assert_int_equal(mitte_time_parse("2026-03-01T12:00:00.999Z", 24, &sec),
                     0);
    assert_int_equal(sec, 1772366400);
    assert_int_equal(mitte_time_parse("1969-12-31T23:59:59.500Z", 24, &sec),
                     0);
    assert_int_equal(sec, -1);

    /* "len" bounds the text */
    assert_int_equal(mitte_time_parse("17723232001", 10, &sec), 0);
    assert_int_equal(sec, 1772323200);

    sec = 42;
    assert_int_equal(mitte_time_parse("", 0, &sec), -1);
    assert_int_equal(mitte_time_parse(NULL, 0, &sec), -1);
    assert_int_equal(mitte_time_parse("9223372036854775808", 19, &sec), -1);
    assert_int_equal(mitte_time_parse("99999999999999999999", 20, &sec), -1);
    assert_int_equal(mitte_time_parse("+5", 2, &sec), -1);
    assert_int_equal(mitte_time_parse("-5", 2, &sec), -1);
    assert_int_equal(mitte_time_parse(" 5", 2, &sec), -1);
    assert_int_equal(mitte_time_parse("5 ", 2, &sec), -1);
    assert_int_equal(mitte_time_parse("1e9", 3, &sec), -1);
    assert_int_equal(mitte_time_parse("12.5", 4, &sec), -1);
    assert_int_equal(mitte_time_parse("0x10", 4, &sec), -1);
    assert_int_equal(mitte_time_parse("2026-02-30", 10, &sec), -1);
    assert_int_equal(sec, 42);
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_hour_of),
        cmocka_unit_test(test_month_of),
        cmocka_unit_test(test_month_start),
        cmocka_unit_test(test_seconds_to_next_month),
        cmocka_unit_test(test_month_format),
        cmocka_unit_test(test_iso_format),
        cmocka_unit_test(test_iso_parse),
        cmocka_unit_test(test_iso_reject),
        cmocka_unit_test(test_iso_round_trip),
        cmocka_unit_test(test_calendar_walk),
        cmocka_unit_test(test_time_parse),
    };

    return cmocka_run_group_tests_name("time", tests, NULL, NULL);
}
