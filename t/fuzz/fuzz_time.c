/*
 * Copyright (C) ngx_mitte_module authors
 *
 * ISO-8601 times (mitte_iso8601_parse, mitte_time_parse): "hour" values of
 * the history import, "trialEndsAt", query parameters. A parsed time that
 * the format can show (1970 .. 9999) formats to text that parses back to
 * it; a formatted time parses back to itself; canonical text formats back
 * to the same text.
 */

#include <string.h>

#include "fuzz.h"
#include "mitte_time.h"


/* 9999-12-31T23:59:59.999Z */
#define FUZZ_ISO_MAX_MS  253402300799999LL


static void
fuzz_round_trip(int64_t ms)
{
    char     buf[MITTE_ISO8601_LEN];
    int64_t  back;

    FUZZ_CHECK(mitte_iso8601_format(buf, ms) == MITTE_ISO8601_LEN);
    FUZZ_CHECK(mitte_iso8601_parse(buf, sizeof(buf), &back) == 0);
    FUZZ_CHECK(back == ms);
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int        rc;
    char      *s, buf[MITTE_ISO8601_LEN];
    size_t     len, i;
    int64_t    ms, sec, v;
    fuzz_in_t  in;

    in.p = data;
    in.left = size;

    /* the first 8 bytes as a time to format */
    v = (int64_t) (fuzz_uint(&in, 8) % (uint64_t) (FUZZ_ISO_MAX_MS + 1));
    fuzz_round_trip(v);

    in.p = data;
    in.left = size;
    s = fuzz_rest(&in, &len);

    rc = mitte_iso8601_parse(s, len, &ms);
    FUZZ_CHECK(rc == 0 || rc == -1);

    if (rc == 0) {
        if (ms >= 0 && ms <= FUZZ_ISO_MAX_MS) {
            fuzz_round_trip(ms);

            /* canonical text (upper case, 3 digits, "Z") is kept as is */
            if (len == MITTE_ISO8601_LEN && s[10] == 'T' && s[19] == '.'
                && s[23] == 'Z')
            {
                mitte_iso8601_format(buf, ms);
                FUZZ_CHECK(memcmp(buf, s, MITTE_ISO8601_LEN) == 0);
            }
        }

        FUZZ_CHECK(mitte_time_parse(s, len, &sec) == 0);
        /* whole seconds, rounded down */
        FUZZ_CHECK(sec == (ms >= 0 ? ms / 1000 : -((-ms + 999) / 1000)));
    }

    if (rc != 0 && mitte_time_parse(s, len, &sec) == 0) {
        /* unix seconds: digits only */
        for (i = 0; i < len; i++) {
            FUZZ_CHECK(s[i] >= '0' && s[i] <= '9');
        }
    }

    free(s);

    return 0;
}
