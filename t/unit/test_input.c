/*
 * Copyright (C) ngx_mitte_module authors
 *
 * Parsers of outside input that the glue calls: Last-Event-ID and the
 * "message" of an email provider's (Resend's) JSON answer.
 */


#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "mitte_doc.h"
#include "mitte_util.h"


/* parses from a malloc()ed copy without a trailing NUL */

static int
event_id(const char *s, uint64_t *id)
{
    int     rc;
    char   *copy;
    size_t  len;

    len = strlen(s);
    copy = malloc(len ? len : 1);
    assert_non_null(copy);
    memcpy(copy, s, len);

    *id = 12345;
    rc = mitte_event_id_parse(copy, len, id);

    free(copy);

    return rc;
}


static size_t
reply(const char *body, char *buf, size_t size)
{
    char    *copy;
    size_t   len, n;

    len = strlen(body);
    copy = malloc(len ? len : 1);
    assert_non_null(copy);
    memcpy(copy, body, len);

    memset(buf, 'x', size);
    n = mitte_reply_message(copy, len, buf, size);

    free(copy);

    return n;
}


static void
test_event_id_valid(void **state)
{
    uint64_t  id;

    (void) state;

    assert_int_equal(event_id("0", &id), 0);
    assert_true(id == 0);
    assert_int_equal(event_id("42", &id), 0);
    assert_true(id == 42);
    assert_int_equal(event_id("0007", &id), 0);
    assert_true(id == 7);
    assert_int_equal(event_id("9223372036854775807", &id), 0);
    assert_true(id == INT64_MAX);
    assert_int_equal(event_id("000000000000000000000000000000001", &id), 0);
    assert_true(id == 1);
}


static void
test_event_id_invalid(void **state)
{
    uint64_t     id;
    size_t       i;

    static const char  *bad[] = {
        "", " 1", "1 ", "+1", "-1", "1a", "0x10", "1.0", "١",
        "9223372036854775808", "18446744073709551615",
        "18446744073709551616", "99999999999999999999999"
    };

    (void) state;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(event_id(bad[i], &id), -1);
        /* untouched */
        assert_true(id == 12345);
    }
}


static void
test_reply_message(void **state)
{
    char  buf[64];

    (void) state;

    assert_int_equal(reply("{\"statusCode\":422,\"name\":\"validation_error\","
                           "\"message\":\"Invalid `to` field.\"}", buf,
                           sizeof(buf)), 19);
    assert_string_equal(buf, "Invalid `to` field.");

    /* escapes decoded */
    assert_int_equal(reply("{\"message\":\"a\\\"b\\u00e9\"}", buf,
                           sizeof(buf)), 5);
    assert_string_equal(buf, "a\"b\xc3\xa9");

    /* cut to the buffer */
    assert_int_equal(reply("{\"message\":\"0123456789\"}", buf, 5), 4);
    assert_string_equal(buf, "0123");

    /* a "\u0000" ends it */
    assert_int_equal(reply("{\"message\":\"ab\\u0000cd\"}", buf,
                           sizeof(buf)), 2);
    assert_string_equal(buf, "ab");
}


static void
test_reply_no_message(void **state)
{
    size_t  i;
    char    buf[16];

    static const char  *none[] = {
        "", "not json", "{", "[\"message\"]", "\"message\"",
        "{\"message\":\"\"}", "{\"message\":null}", "{\"message\":42}",
        "{\"Message\":\"x\"}", "{\"error\":{\"message\":\"x\"}}"
    };

    (void) state;

    for (i = 0; i < sizeof(none) / sizeof(none[0]); i++) {
        assert_int_equal(reply(none[i], buf, sizeof(buf)), 0);
        assert_string_equal(buf, "");
    }

    /* no room at all: nothing written */
    buf[0] = 'x';
    assert_int_equal(mitte_reply_message("{\"message\":\"x\"}", 15, buf, 0),
                     0);
    assert_int_equal(buf[0], 'x');
}


int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_event_id_valid),
        cmocka_unit_test(test_event_id_invalid),
        cmocka_unit_test(test_reply_message),
        cmocka_unit_test(test_reply_no_message),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
