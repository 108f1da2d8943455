/*
 * Copyright (C) ngx_mitte_module authors
 *
 * Civil calendar conversions after Howard Hinnant's "chrono-compatible
 * low-level date algorithms" (days_from_civil, civil_from_days), in the
 * proleptic Gregorian calendar.
 */


#include "mitte_time.h"


#define MITTE_MS_PER_DAY   86400000LL

/* 9999-12-31T23:59:59.999Z, the latest time an ISO-8601 year can show */
#define MITTE_ISO_MAX_MS   253402300799999LL


static int64_t mitte_floor_div(int64_t a, int64_t b);
static int64_t mitte_days_from_civil(int64_t y, unsigned m, unsigned d);
static void mitte_civil_from_days(int64_t z, int64_t *y, unsigned *m,
    unsigned *d);
static unsigned mitte_days_in_month(int64_t y, unsigned m);
static int mitte_digits(const unsigned char *p, size_t n);
static void mitte_put_digits(char *p, unsigned v, size_t n);


uint32_t
mitte_hour_of(int64_t unix_sec)
{
    int64_t  h;

    if (unix_sec < 0) {
        return 0;
    }

    h = unix_sec / 3600;

    return h > (int64_t) UINT32_MAX ? UINT32_MAX : (uint32_t) h;
}


uint32_t
mitte_month_of(int64_t unix_sec)
{
    int64_t   y, month;
    unsigned  m, d;

    mitte_civil_from_days(mitte_floor_div(unix_sec, 86400), &y, &m, &d);

    if (y < 0) {
        return 0;
    }

    month = y * 12 + (m - 1);

    return month > (int64_t) UINT32_MAX ? UINT32_MAX : (uint32_t) month;
}


int64_t
mitte_month_start(uint32_t month)
{
    return mitte_days_from_civil(month / 12, month % 12 + 1, 1) * 86400;
}


int64_t
mitte_seconds_to_next_month(int64_t unix_sec)
{
    int64_t   left;
    uint32_t  month;

    month = mitte_month_of(unix_sec);

    if (month == UINT32_MAX) {
        return 1;
    }

    left = mitte_month_start(month + 1) - unix_sec;

    return left < 1 ? 1 : left;
}


size_t
mitte_month_format(char *buf, uint32_t month)
{
    uint32_t  year;

    year = month / 12;

    if (year > 9999) {
        /* a year of five digits does not fit: the latest that does */
        year = 9999;
        month = 9999 * 12 + 11;
    }

    mitte_put_digits(buf, year, 4);
    buf[4] = '-';
    mitte_put_digits(buf + 5, month % 12 + 1, 2);

    return MITTE_MONTH_LEN;
}


size_t
mitte_iso8601_format(char *buf, int64_t unix_ms)
{
    int64_t   days, rem, y;
    unsigned  m, d;

    /* clamped to what the format can show: 1970 .. 9999 */

    if (unix_ms < 0) {
        unix_ms = 0;

    } else if (unix_ms > MITTE_ISO_MAX_MS) {
        unix_ms = MITTE_ISO_MAX_MS;
    }

    days = unix_ms / MITTE_MS_PER_DAY;
    rem = unix_ms % MITTE_MS_PER_DAY;

    mitte_civil_from_days(days, &y, &m, &d);

    mitte_put_digits(buf, (unsigned) y, 4);
    buf[4] = '-';
    mitte_put_digits(buf + 5, m, 2);
    buf[7] = '-';
    mitte_put_digits(buf + 8, d, 2);
    buf[10] = 'T';
    mitte_put_digits(buf + 11, (unsigned) (rem / 3600000), 2);
    buf[13] = ':';
    mitte_put_digits(buf + 14, (unsigned) (rem / 60000 % 60), 2);
    buf[16] = ':';
    mitte_put_digits(buf + 17, (unsigned) (rem / 1000 % 60), 2);
    buf[19] = '.';
    mitte_put_digits(buf + 20, (unsigned) (rem % 1000), 3);
    buf[23] = 'Z';

    return MITTE_ISO8601_LEN;
}


int
mitte_iso8601_parse(const char *s, size_t len, int64_t *unix_ms)
{
    int                   year, mon, day, hh, mm, ss, oh, om, v;
    size_t                n;
    int64_t               ms, off, sign;
    const unsigned char  *p, *end;

    if (s == NULL || len < 10) {
        return -1;
    }

    p = (const unsigned char *) s;
    end = p + len;

    year = mitte_digits(p, 4);
    mon = mitte_digits(p + 5, 2);
    day = mitte_digits(p + 8, 2);

    if (year < 0 || mon < 1 || mon > 12 || day < 1 || p[4] != '-'
        || p[7] != '-'
        || (unsigned) day > mitte_days_in_month(year, (unsigned) mon))
    {
        return -1;
    }

    p += 10;
    hh = 0;
    mm = 0;
    ss = 0;
    ms = 0;
    off = 0;

    if (p == end) {
        /* a date alone: midnight UTC */
        goto done;
    }

    /* "THH:MM:SS" */

    if (end - p < 9 || (*p != 'T' && *p != 't')) {
        return -1;
    }

    hh = mitte_digits(p + 1, 2);
    mm = mitte_digits(p + 4, 2);
    ss = mitte_digits(p + 7, 2);

    if (hh < 0 || hh > 23 || mm < 0 || mm > 59 || ss < 0 || ss > 59
        || p[3] != ':' || p[6] != ':')
    {
        return -1;
    }

    p += 9;

    if (p < end && *p == '.') {
        p++;

        for (n = 0; p < end && *p >= '0' && *p <= '9'; n++, p++) {
            if (n < 3) {
                ms = ms * 10 + (*p - '0');
            }
        }

        if (n < 1 || n > 9) {
            return -1;
        }

        for ( /* void */ ; n < 3; n++) {
            ms *= 10;
        }
    }

    /* a zone is required: a time without one would be local time */

    if (p == end) {
        return -1;
    }

    if (*p == 'Z' || *p == 'z') {
        p++;

    } else if (*p == '+' || *p == '-') {
        sign = (*p == '+') ? 1 : -1;

        if (end - p < 6) {
            return -1;
        }

        oh = mitte_digits(p + 1, 2);
        om = mitte_digits(p + 4, 2);

        if (oh < 0 || oh > 23 || om < 0 || om > 59 || p[3] != ':') {
            return -1;
        }

        off = sign * (oh * 60 + om);
        p += 6;

    } else {
        return -1;
    }

    if (p != end) {
        return -1;
    }

done:

    v = hh * 3600 + mm * 60 + ss;

    *unix_ms = mitte_days_from_civil(year, (unsigned) mon, (unsigned) day)
               * MITTE_MS_PER_DAY
               + (int64_t) v * 1000 + ms - off * 60000;

    return 0;
}


int
mitte_time_parse(const char *s, size_t len, int64_t *unix_sec)
{
    size_t   i;
    int64_t  v, ms;

    if (s == NULL || len == 0) {
        return -1;
    }

    for (i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') {
            break;
        }
    }

    if (i == len) {
        v = 0;

        for (i = 0; i < len; i++) {
            if (v > (INT64_MAX - (s[i] - '0')) / 10) {
                return -1;
            }

            v = v * 10 + (s[i] - '0');
        }

        *unix_sec = v;
        return 0;
    }

    if (mitte_iso8601_parse(s, len, &ms) != 0) {
        return -1;
    }

    *unix_sec = mitte_floor_div(ms, 1000);

    return 0;
}


static int64_t
mitte_floor_div(int64_t a, int64_t b)
{
    int64_t  q;

    q = a / b;

    if ((a % b != 0) && ((a < 0) != (b < 0))) {
        q--;
    }

    return q;
}


static int64_t
mitte_days_from_civil(int64_t y, unsigned m, unsigned d)
{
    int64_t   era;
    unsigned  yoe, doy, doe;

    y -= (m <= 2);
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = (unsigned) (y - era * 400);
    doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;

    return era * 146097 + (int64_t) doe - 719468;
}


static void
mitte_civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    int64_t   era;
    unsigned  doe, yoe, doy, mp;

    z += 719468;
    era = (z >= 0 ? z : z - 146096) / 146097;
    doe = (unsigned) (z - era * 146097);
    yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    mp = (5 * doy + 2) / 153;

    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int64_t) yoe + era * 400 + (*m <= 2);
}


static unsigned
mitte_days_in_month(int64_t y, unsigned m)
{
    static const unsigned char  days[12] = {
        31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31
    };

    if (m == 2 && (y % 4 == 0 && (y % 100 != 0 || y % 400 == 0))) {
        return 29;
    }

    return days[m - 1];
}


/* n decimal digits as a number, or -1 */

static int
mitte_digits(const unsigned char *p, size_t n)
{
    int  v;

    v = 0;

    while (n--) {
        if (*p < '0' || *p > '9') {
            return -1;
        }

        v = v * 10 + (*p++ - '0');
    }

    return v;
}


static void
mitte_put_digits(char *p, unsigned v, size_t n)
{
    while (n--) {
        p[n] = (char) ('0' + v % 10);
        v /= 10;
    }
}
