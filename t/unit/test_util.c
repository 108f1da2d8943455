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

#include "mitte_util.h"


#define S(s)  (const unsigned char *) (s), sizeof(s) - 1


static void
test_slug(void **state)
{
    char  buf[80];

    (void) state;

    assert_true(mitte_slug_valid(S("mt_abc123")));
    assert_true(mitte_slug_valid(S("a")));
    assert_true(mitte_slug_valid(S("A.Z-a_z.0-9")));
    assert_true(mitte_slug_valid(S("..")));

    assert_false(mitte_slug_valid(S("")));
    assert_false(mitte_slug_valid(NULL, 0));
    assert_false(mitte_slug_valid(S("a b")));
    assert_false(mitte_slug_valid(S("a/b")));
    assert_false(mitte_slug_valid(S("a%2f")));
    assert_false(mitte_slug_valid(S("caf\xc3\xa9")));
    assert_false(mitte_slug_valid(S("a\0b")));
    assert_false(mitte_slug_valid(S("a~")));

    memset(buf, 'x', sizeof(buf));
    assert_true(mitte_slug_valid((unsigned char *) buf, 64));
    assert_false(mitte_slug_valid((unsigned char *) buf, 65));
}


static void
test_status_set(void **state)
{
    unsigned            st;
    mitte_status_set_t  set;

    (void) state;

    mitte_status_set_clear(&set);

    for (st = 0; st < 1000; st++) {
        assert_false(mitte_status_set_has(&set, st));
    }

    assert_int_equal(mitte_status_set_add(&set, "200-299", 7), 0);
    assert_false(mitte_status_set_has(&set, 199));
    assert_true(mitte_status_set_has(&set, 200));
    assert_true(mitte_status_set_has(&set, 250));
    assert_true(mitte_status_set_has(&set, 299));
    assert_false(mitte_status_set_has(&set, 300));

    assert_int_equal(mitte_status_set_add(&set, "304", 3), 0);
    assert_true(mitte_status_set_has(&set, 304));
    assert_false(mitte_status_set_has(&set, 303));
    assert_false(mitte_status_set_has(&set, 305));

    assert_int_equal(mitte_status_set_add(&set, "4xx", 3), 0);
    assert_int_equal(mitte_status_set_add(&set, "5XX", 3), 0);
    assert_int_equal(mitte_status_set_add(&set, "1xX", 3), 0);

    for (st = 100; st <= 599; st++) {
        assert_int_equal(mitte_status_set_has(&set, st),
                         (st / 100 != 3) || st == 304);
    }

    assert_false(mitte_status_set_has(&set, 99));
    assert_false(mitte_status_set_has(&set, 600));
    assert_false(mitte_status_set_has(&set, 0));
    assert_false(mitte_status_set_has(&set, UINT32_MAX));

    mitte_status_set_clear(&set);
    assert_int_equal(mitte_status_set_add(&set, "100", 3), 0);
    assert_int_equal(mitte_status_set_add(&set, "599", 3), 0);
    assert_int_equal(mitte_status_set_add(&set, "404-404", 7), 0);
    assert_true(mitte_status_set_has(&set, 100));
    assert_true(mitte_status_set_has(&set, 599));
    assert_true(mitte_status_set_has(&set, 404));
    assert_false(mitte_status_set_has(&set, 101));
    assert_false(mitte_status_set_has(&set, 598));

    /* "len" bounds the text */
    assert_int_equal(mitte_status_set_add(&set, "2015", 3), 0);
    assert_true(mitte_status_set_has(&set, 201));
}


static void
test_status_set_reject(void **state)
{
    size_t              i;
    mitte_status_set_t  set, empty;
    static const char  *bad[] = {
        "", "2", "20", "2000", "099", "600", "999", "0xx", "6xx", "x00",
        "2x0", "20x", "xxx", "2yy", "299-200", "200-600", "099-200",
        "200-", "-200", "200--299", "200-2999", "200 - 299", " 200",
        "200 ", "+200", "2e2", "200,201", "200-2xx", "abc", "-1"
    };

    (void) state;

    mitte_status_set_clear(&set);
    mitte_status_set_clear(&empty);

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (mitte_status_set_add(&set, bad[i], strlen(bad[i])) != -1) {
            fail_msg("\"%s\" was accepted", bad[i]);
        }
    }

    assert_memory_equal(&set, &empty, sizeof(set));
    assert_int_equal(mitte_status_set_add(&set, NULL, 0), -1);
}


static void
test_quota_threshold(void **state)
{
    (void) state;

    assert_int_equal(mitte_quota_threshold(5000, 90), 4500);
    assert_int_equal(mitte_quota_threshold(250000, 90), 225000);
    assert_int_equal(mitte_quota_threshold(5000, 100), 5000);
    assert_int_equal(mitte_quota_threshold(7, 50), 4);
    assert_int_equal(mitte_quota_threshold(3, 33), 1);
    assert_int_equal(mitte_quota_threshold(1, 1), 1);
    assert_int_equal(mitte_quota_threshold(100, 1), 1);
    assert_int_equal(mitte_quota_threshold(101, 1), 2);
    assert_int_equal(mitte_quota_threshold(0, 90), 0);
    assert_int_equal(mitte_quota_threshold(UINT32_MAX, 100), UINT32_MAX);
    assert_int_equal(mitte_quota_threshold(UINT32_MAX, 99), 4252017623U);
}


static void
test_plan(void **state)
{
    (void) state;

    assert_int_equal(mitte_plan_parse("free", 4), MITTE_PLAN_FREE);
    assert_int_equal(mitte_plan_parse("FREE", 4), MITTE_PLAN_FREE);
    assert_int_equal(mitte_plan_parse("Pro", 3), MITTE_PLAN_PRO);
    assert_int_equal(mitte_plan_parse("tRiAl", 5), MITTE_PLAN_TRIAL);
    assert_int_equal(mitte_plan_parse("pros", 3), MITTE_PLAN_PRO);

    assert_int_equal(mitte_plan_parse("", 0), -1);
    assert_int_equal(mitte_plan_parse("pros", 4), -1);
    assert_int_equal(mitte_plan_parse("pr", 2), -1);
    assert_int_equal(mitte_plan_parse(" pro", 4), -1);
    assert_int_equal(mitte_plan_parse("enterprise", 10), -1);
    assert_int_equal(mitte_plan_parse("fre\xc5", 4), -1);

    assert_string_equal(mitte_plan_name(MITTE_PLAN_FREE), "free");
    assert_string_equal(mitte_plan_name(MITTE_PLAN_PRO), "pro");
    assert_string_equal(mitte_plan_name(MITTE_PLAN_TRIAL), "trial");
    assert_string_equal(mitte_plan_name(-1), "free");
    assert_string_equal(mitte_plan_name(MITTE_PLAN_N), "free");
}


static void
test_email(void **state)
{
    size_t       i;
    char         buf[300];
    static const char  *good[] = {
        "ops@example.com", "a@b", "ops@localhost", "first.last+tag@x.co",
        "o'brien@example.ie", "user@sub.domain.example",
        "\xc3\xa9t\xc3\xa9@exemple.fr", "a_b-c@d-e.f"
    };
    static const char  *bad[] = {
        "", "@", "a@", "@b", "ab", "a@@b", "a@b@c", "a b@c", "a@b c",
        "a,b@c", "<a@b>", "a@b>", "\"a\"@b", "a@b\r", "a@b\n", "a\t@b",
        "a@b\x7f", "a@.b", "a@b.", "a@b..c", "a@.", "a\x01@b"
    };

    (void) state;

    for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        if (!mitte_email_valid(good[i], strlen(good[i]))) {
            fail_msg("\"%s\" was refused", good[i]);
        }
    }

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (mitte_email_valid(bad[i], strlen(bad[i]))) {
            fail_msg("\"%s\" was accepted", bad[i]);
        }
    }

    assert_false(mitte_email_valid(NULL, 0));
    assert_false(mitte_email_valid("a@b\0c", 5));

    /* 254 bytes at most */
    memset(buf, 'a', sizeof(buf));
    buf[100] = '@';
    assert_true(mitte_email_valid(buf, 254));
    assert_false(mitte_email_valid(buf, 255));
}


/*
 * An address holding a Unicode space (or separator, or the byte order
 * mark) is refused wherever it sits, as an ASCII space is; so are bytes
 * that are not UTF-8. U+200B (zero width space) is no space in Unicode:
 * not tested either way.
 */

static void
test_email_unicode(void **state)
{
    char         buf[64];
    size_t       i, k, n;
    static const char  *space[] = {
        "\xc2\x85",            /* U+0085 next line */
        "\xc2\xa0",            /* U+00A0 no-break space */
        "\xe1\x9a\x80",        /* U+1680 ogham space mark */
        "\xe2\x80\x80", "\xe2\x80\x81", "\xe2\x80\x82",
        "\xe2\x80\x83", "\xe2\x80\x84", "\xe2\x80\x85",
        "\xe2\x80\x86", "\xe2\x80\x87", "\xe2\x80\x88",
        "\xe2\x80\x89", "\xe2\x80\x8a",   /* U+2000 .. U+200A */
        "\xe2\x80\xa8",        /* U+2028 line separator */
        "\xe2\x80\xa9",        /* U+2029 paragraph separator */
        "\xe2\x80\xaf",        /* U+202F narrow no-break space */
        "\xe2\x81\x9f",        /* U+205F medium mathematical space */
        "\xe3\x80\x80",        /* U+3000 ideographic space */
        "\xef\xbb\xbf"         /* U+FEFF byte order mark */
    };
    static const char  *where[] = {
        "%sops@example.com", "o%sps@example.com", "ops%s@example.com",
        "ops@%sexample.com", "ops@exam%sple.com", "ops@example.com%s"
    };
    static const char  *not_utf8[] = {
        "j\xfcrgen@example.de",          /* Latin-1 */
        "ops\x80@example.com",           /* a lone continuation byte */
        "ops\xc3@example.com",           /* a truncated sequence */
        "ops@example.com\xc3",           /* ... at the end */
        "ops@example.com\xe2\x80",       /* ... of 3 bytes */
        "ops\xc0\xa0@example.com",       /* overlong (a space) */
        "ops\xe0\x80\xa0@example.com",   /* overlong, 3 bytes */
        "ops\xed\xa0\x80@example.com",   /* a UTF-16 surrogate */
        "ops\xf4\x90\x80\x80@x.com",     /* above U+10FFFF */
        "ops\xfe@example.com", "ops\xff@example.com"
    };
    static const char  *good[] = {
        "j\xc3\xbcrgen@example.de",            /* jürgen */
        "\xe7\x94\xb0\xe4\xb8\xad@example.jp",  /* CJK */
        "ops@b\xc3\xbc" "cher.example",        /* bücher */
        "ops\xf0\x9f\x98\x80@example.com",     /* 4 bytes */
        "ops\xe2\x80\x90x@example.com"         /* U+2010 hyphen */
    };

    (void) state;

    for (i = 0; i < sizeof(space) / sizeof(space[0]); i++) {
        for (k = 0; k < sizeof(where) / sizeof(where[0]); k++) {
            n = (size_t) snprintf(buf, sizeof(buf), where[k], space[i]);
            assert_true(n < sizeof(buf));

            if (mitte_email_valid(buf, n)) {
                fail_msg("space %zu, place %zu: \"%s\" was accepted", i, k,
                         buf);
            }
        }
    }

    for (i = 0; i < sizeof(not_utf8) / sizeof(not_utf8[0]); i++) {
        if (mitte_email_valid(not_utf8[i], strlen(not_utf8[i]))) {
            fail_msg("\"%s\" (not UTF-8) was accepted", not_utf8[i]);
        }
    }

    for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        if (!mitte_email_valid(good[i], strlen(good[i]))) {
            fail_msg("\"%s\" was refused", good[i]);
        }
    }
}


static void
escape(const char *src, size_t len, const char *want)
{
    unsigned char  buf[256];
    size_t         n;

    memset(buf, '#', sizeof(buf));
    n = mitte_json_escape(NULL, (const unsigned char *) src, len);
    assert_int_equal(n, strlen(want));
    assert_int_equal(mitte_json_escape(buf, (const unsigned char *) src, len),
                     n);
    assert_memory_equal(buf, want, n);
    assert_int_equal(buf[n], '#');
}


#define ESC(src, want)  escape(src, sizeof(src) - 1, want)


static void
test_json_escape(void **state)
{
    (void) state;

    ESC("", "");
    ESC("plain text", "plain text");
    ESC("a\"b\\c/d", "a\\\"b\\\\c/d");
    ESC("\n\r\t\b\f", "\\n\\r\\t\\b\\f");
    ESC("\x01\x1f\x7f", "\\u0001\\u001f\\u007f");
    ESC("a\0b", "a\\u0000b");
    ESC("\x1b[0m", "\\u001b[0m");

    /* valid UTF-8 is copied */
    ESC("caf\xc3\xa9", "caf\xc3\xa9");
    ESC("\xe2\x82\xac", "\xe2\x82\xac");
    ESC("\xf0\x9f\x98\x80", "\xf0\x9f\x98\x80");
    ESC("\xef\xbf\xbd", "\xef\xbf\xbd");
    ESC("\xf4\x8f\xbf\xbf", "\xf4\x8f\xbf\xbf");
    ESC("\xe2\x80\xa8", "\xe2\x80\xa8");

    /* invalid bytes become U+FFFD, one for each */
    ESC("a\xff" "b", "a\xef\xbf\xbd" "b");
    ESC("\x80", "\xef\xbf\xbd");
    ESC("\xc3", "\xef\xbf\xbd");
    ESC("\xc3(", "\xef\xbf\xbd(");
    ESC("\xc0\xaf", "\xef\xbf\xbd\xef\xbf\xbd");
    ESC("\xc1\xbf", "\xef\xbf\xbd\xef\xbf\xbd");
    ESC("\xe0\x80\xaf", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
    ESC("\xed\xa0\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
    ESC("\xf0\x8f\xbf\xbf",
        "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
    ESC("\xf4\x90\x80\x80",
        "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
    ESC("\xf5\x80\x80\x80",
        "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
    ESC("\xe2\x82", "\xef\xbf\xbd\xef\xbf\xbd");
    ESC("\xe2\x82\"", "\xef\xbf\xbd\xef\xbf\xbd\\\"");
    ESC("\xf0\x9f\x98", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
}


static void
test_json_escape_all_bytes(void **state)
{
    unsigned       c;
    unsigned char  src[1], dst[8];
    size_t         n;

    (void) state;

    for (c = 0; c < 256; c++) {
        src[0] = (unsigned char) c;
        n = mitte_json_escape(dst, src, 1);
        assert_int_equal(n, mitte_json_escape(NULL, src, 1));

        if (c == '"' || c == '\\' || c == '\n' || c == '\r' || c == '\t'
            || c == '\b' || c == '\f')
        {
            assert_int_equal(n, 2);

        } else if (c < 0x20 || c == 0x7f) {
            assert_int_equal(n, 6);

        } else if (c >= 0x80) {
            assert_int_equal(n, 3);

        } else {
            assert_int_equal(n, 1);
            assert_int_equal(dst[0], c);
        }
    }
}


static void
test_checksum(void **state)
{
    size_t         i, j;
    uint64_t       base, c;
    unsigned char  buf[67];

    (void) state;

    for (i = 0; i < sizeof(buf); i++) {
        buf[i] = (unsigned char) (i * 7 + 1);
    }

    base = mitte_checksum(buf, sizeof(buf));
    assert_true(base == mitte_checksum(buf, sizeof(buf)));

    /* every length differs, so does the empty one */
    for (i = 0; i < sizeof(buf); i++) {
        assert_true(mitte_checksum(buf, i) != base);
    }

    assert_true(mitte_checksum(buf, 0) != mitte_checksum("\0", 1));

    /* any one bit flipped anywhere, the tail included */
    for (i = 0; i < sizeof(buf); i++) {
        for (j = 0; j < 8; j++) {
            buf[i] ^= (unsigned char) (1 << j);
            c = mitte_checksum(buf, sizeof(buf));
            buf[i] ^= (unsigned char) (1 << j);
            assert_true(c != base);
        }
    }

    /* two 8-byte words swapped */
    for (i = 0; i < 8; i++) {
        unsigned char  t = buf[i];
        buf[i] = buf[i + 8];
        buf[i + 8] = t;
    }

    assert_true(mitte_checksum(buf, sizeof(buf)) != base);
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_slug),
        cmocka_unit_test(test_status_set),
        cmocka_unit_test(test_status_set_reject),
        cmocka_unit_test(test_quota_threshold),
        cmocka_unit_test(test_plan),
        cmocka_unit_test(test_email),
        cmocka_unit_test(test_email_unicode),
        cmocka_unit_test(test_json_escape),
        cmocka_unit_test(test_json_escape_all_bytes),
        cmocka_unit_test(test_checksum),
    };

    return cmocka_run_group_tests_name("util", tests, NULL, NULL);
}
