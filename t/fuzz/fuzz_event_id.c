/*
 * Copyright (C) ngx_mitte_module authors
 *
 * Last-Event-ID (header or ?lastEventId=), mitte_event_id_parse: decimal
 * digits only, at most 2^63 - 1, checked against an independent reading;
 * an accepted id printed back parses to itself.
 */

#include <inttypes.h>
#include <string.h>

#include "fuzz.h"
#include "mitte_util.h"


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int          rc, ok;
    char        *s, text[32];
    size_t       len, i, start;

    uint64_t     id, back;
    fuzz_in_t    in;

    in.p = data;
    in.left = size;
    s = fuzz_rest(&in, &len);

    id = 7;
    rc = mitte_event_id_parse(s, len, &id);
    FUZZ_CHECK(rc == 0 || rc == -1);

    /* the reference: digits, and at most 19 of them after leading zeros */
    start = 0;
    ok = len > 0;

    for (i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') {
            ok = 0;
        }
    }

    if (ok) {
        for (start = 0; start < len - 1 && s[start] == '0'; start++) {
            /* void */
        }

        if (len - start > 19
            || (len - start == 19
                && memcmp(s + start, "9223372036854775807", 19) > 0))
        {
            ok = 0;
        }
    }

    FUZZ_CHECK(rc == (ok ? 0 : -1));

    if (rc == 0) {
        FUZZ_CHECK(id <= INT64_MAX);
        snprintf(text, sizeof(text), "%" PRIu64, id);
        FUZZ_CHECK(strlen(text) == len - start);
        FUZZ_CHECK(memcmp(text, s + start, len - start) == 0);
        FUZZ_CHECK(mitte_event_id_parse(text, strlen(text), &back) == 0);
        FUZZ_CHECK(back == id);

    } else {
        FUZZ_CHECK(id == 7);
    }

    free(s);

    return 0;
}
