/*
 * Copyright (C) ngx_mitte_module authors
 *
 * Small parsers of outside text (mitte_util): slugs (from request URIs),
 * user ids, plans, email addresses, and the JSON string escaping every
 * answer uses: the escaped text is a JSON string (cJSON reads it), with no
 * raw control character, of the length counted first, and reads back as
 * the input when that was printable ASCII.
 */

#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>

#include "fuzz.h"
#include "mitte_util.h"


static void
fuzz_escape(const unsigned char *s, size_t len)
{
    int             ascii;
    char           *quoted;
    size_t          n, i;
    cJSON          *doc;
    unsigned char  *dst;

    n = mitte_json_escape(NULL, s, len);
    FUZZ_CHECK(n >= len);

    dst = malloc(n ? n : 1);
    quoted = malloc(n + 3);
    if (dst == NULL || quoted == NULL) {
        abort();
    }

    FUZZ_CHECK(mitte_json_escape(dst, s, len) == n);

    ascii = 1;

    for (i = 0; i < len; i++) {
        if (s[i] < 0x20 || s[i] >= 0x7f) {
            ascii = 0;
        }
    }

    for (i = 0; i < n; i++) {
        FUZZ_CHECK(dst[i] >= 0x20 && dst[i] != 0x7f);
    }

    quoted[0] = '"';
    memcpy(quoted + 1, dst, n);
    quoted[n + 1] = '"';
    quoted[n + 2] = '\0';

    doc = cJSON_Parse(quoted);
    FUZZ_CHECK(cJSON_IsString(doc));

    if (ascii) {
        FUZZ_CHECK(strlen(doc->valuestring) == len);
        FUZZ_CHECK(memcmp(doc->valuestring, s, len) == 0);
    }

    cJSON_Delete(doc);
    free(quoted);
    free(dst);
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int                  plan, slug;
    char                *s;
    size_t               len, i;
    fuzz_in_t            in;
    mitte_status_set_t   set;

    in.p = data;
    in.left = size;
    s = fuzz_rest(&in, &len);

    slug = mitte_slug_valid((unsigned char *) s, len);
    FUZZ_CHECK(slug == 0 || slug == 1);

    if (slug) {
        FUZZ_CHECK(len >= 1 && len <= MITTE_SLUG_MAX);

        for (i = 0; i < len; i++) {
            FUZZ_CHECK(strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrst"
                              "uvwxyz0123456789._-", s[i]) != NULL
                       && s[i] != '\0');
        }
    }

    plan = mitte_plan_parse(s, len);
    FUZZ_CHECK(plan >= -1 && plan < MITTE_PLAN_N);

    if (plan >= 0) {
        FUZZ_CHECK(strlen(mitte_plan_name(plan)) == len);
        FUZZ_CHECK(strncasecmp(mitte_plan_name(plan), s, len) == 0);
    }

    if (mitte_email_valid(s, len)) {
        FUZZ_CHECK(len >= 3 && len <= MITTE_EMAIL_MAX);
        FUZZ_CHECK(memchr(s, '@', len) != NULL);

        for (i = 0; i < len; i++) {
            FUZZ_CHECK((unsigned char) s[i] > 0x20 && s[i] != ','
                       && s[i] != '<' && s[i] != '>' && s[i] != '"'
                       && s[i] != 0x7f);
        }
    }

    mitte_status_set_clear(&set);

    if (mitte_status_set_add(&set, s, len) == 0) {
        FUZZ_CHECK(!mitte_status_set_has(&set, 99));
        FUZZ_CHECK(!mitte_status_set_has(&set, 600));
    }

    fuzz_escape((unsigned char *) s, len);

    free(s);

    return 0;
}
