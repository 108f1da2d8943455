/*
 * Copyright (C) ngx_mitte_module authors
 *
 * Calendar math in UTC without the C library's time zone state: hours,
 * months (quota periods) and ISO-8601.
 */

#ifndef MITTE_TIME_H
#define MITTE_TIME_H

#include <stdint.h>
#include <stddef.h>


/* "2026-02-13T10:30:00.000Z" */
#define MITTE_ISO8601_LEN    24
/* "2026-02" */
#define MITTE_MONTH_LEN      7


/* hour index: floor(unix_sec / 3600) */
uint32_t mitte_hour_of(int64_t unix_sec);

/* month index: year * 12 + (month - 1), of a unix time */
uint32_t mitte_month_of(int64_t unix_sec);

/* unix seconds at which a month index starts */
int64_t mitte_month_start(uint32_t month);

/* seconds from unix_sec to the start of the next month, >= 1 */
int64_t mitte_seconds_to_next_month(int64_t unix_sec);

/* writes "YYYY-MM" (MITTE_MONTH_LEN bytes, no NUL), returns the length */
size_t mitte_month_format(char *buf, uint32_t month);

/* writes MITTE_ISO8601_LEN bytes, no NUL; returns the length */
size_t mitte_iso8601_format(char *buf, int64_t unix_ms);

/*
 * Parses "YYYY-MM-DD", "YYYY-MM-DDTHH:MM:SSZ", with optional fraction
 * ".d" .. ".ddddddddd" (milliseconds kept), "Z" or "+00:00" style offsets,
 * into unix milliseconds. Returns 0, or -1 when the text is not such a time
 * or names an impossible date (2026-02-30).
 */
int mitte_iso8601_parse(const char *s, size_t len, int64_t *unix_ms);

/*
 * Parses a time that is either ISO-8601 (as above) or unix seconds (digits
 * only), into unix seconds. Returns 0 or -1.
 */
int mitte_time_parse(const char *s, size_t len, int64_t *unix_sec);

#endif /* MITTE_TIME_H */
