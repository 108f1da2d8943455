/*
 * Copyright (C) ngx_mitte_module authors
 */


#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <cjson/cJSON.h>

#include "mitte_doc.h"


#define HOUR_2026  491938U      /* 2026-02-13T10:00:00Z */


/* parses an endpoint doc from a malloc()ed copy without a trailing NUL */

static int
ep_parse(const char *body, mitte_endpoint_doc_t *doc, mitte_doc_error_t *err)
{
    int     rc;
    char   *copy;
    size_t  len;

    len = strlen(body);
    copy = malloc(len ? len : 1);
    assert_non_null(copy);
    memcpy(copy, body, len);

    memset(err, 0, sizeof(mitte_doc_error_t));
    rc = mitte_endpoint_doc_parse(copy, len, doc, err);

    free(copy);

    return rc;
}


static int
user_parse(const char *body, mitte_user_doc_t *doc, mitte_doc_error_t *err)
{
    int     rc;
    char   *copy;
    size_t  len;

    len = strlen(body);
    copy = malloc(len ? len : 1);
    assert_non_null(copy);
    memcpy(copy, body, len);

    memset(err, 0, sizeof(mitte_doc_error_t));
    rc = mitte_user_doc_parse(copy, len, doc, err);

    free(copy);

    return rc;
}


static void
ep_bad(const char *body, const char *code, const char *message)
{
    mitte_doc_error_t     err;
    mitte_endpoint_doc_t  doc;

    if (ep_parse(body, &doc, &err) != -1) {
        mitte_endpoint_doc_free(&doc);
        fail_msg("accepted: %s", body);
    }

    assert_non_null(err.code);
    assert_string_equal(err.code, code);

    if (message != NULL) {
        assert_string_equal(err.message, message);

    } else {
        assert_true(strlen(err.message) > 0);
    }

    assert_null(doc.hours);
    assert_int_equal(doc.nhours, 0);
}


static void
user_bad(const char *body, const char *code, const char *message)
{
    mitte_doc_error_t  err;
    mitte_user_doc_t   doc;

    if (user_parse(body, &doc, &err) != -1) {
        fail_msg("accepted: %s", body);
    }

    assert_non_null(err.code);
    assert_string_equal(err.code, code);

    if (message != NULL) {
        assert_string_equal(err.message, message);

    } else {
        assert_true(strlen(err.message) > 0);
    }
}


static void
test_endpoint_valid(void **state)
{
    mitte_doc_error_t     err;
    mitte_endpoint_doc_t  doc;

    (void) state;

    assert_int_equal(ep_parse(
        " {\"name\": \"stripe-prod\", \"user\": \"ops\", \"hours\": ["
        "{\"hour\": \"2026-02-13T10:00:00.000Z\", \"requests\": 100,"
        " \"failures\": 3},"
        "{\"hour\": 1770978600, \"requests\": 4294967295,"
        " \"failures\": 4294967295},"
        "{\"failures\": 0, \"requests\": 0, \"hour\": \"2026-02-13\"},"
        "{\"hour\": \"1770982200\", \"requests\": 1e2},"
        "{\"hour\": \"2026-02-13T12:30:00+02:00\", \"requests\": 5,"
        " \"failures\": 5}"
        "]}\r\n\t ", &doc, &err), 0);

    assert_true(doc.has_name);
    assert_true(doc.has_user);
    assert_int_equal(doc.name_len, 11);
    assert_string_equal(doc.name, "stripe-prod");
    assert_int_equal(doc.user_len, 3);
    assert_string_equal(doc.user, "ops");

    assert_int_equal(doc.nhours, 5);
    assert_non_null(doc.hours);
    assert_int_equal(doc.hours[0].hour, HOUR_2026);
    assert_int_equal(doc.hours[0].requests, 100);
    assert_int_equal(doc.hours[0].failures, 3);
    assert_int_equal(doc.hours[1].hour, HOUR_2026);
    assert_int_equal(doc.hours[1].requests, UINT32_MAX);
    assert_int_equal(doc.hours[1].failures, UINT32_MAX);
    assert_int_equal(doc.hours[2].hour, HOUR_2026 - 10);
    assert_int_equal(doc.hours[2].requests, 0);
    assert_int_equal(doc.hours[3].hour, HOUR_2026 + 1);
    assert_int_equal(doc.hours[3].requests, 100);
    assert_int_equal(doc.hours[3].failures, 0);
    assert_int_equal(doc.hours[4].hour, HOUR_2026);

    mitte_endpoint_doc_free(&doc);
    assert_null(doc.hours);
    assert_int_equal(doc.nhours, 0);
    mitte_endpoint_doc_free(&doc);
}


static void
test_endpoint_partial(void **state)
{
    char                  body[512];
    mitte_doc_error_t     err;
    mitte_endpoint_doc_t  doc;

    (void) state;

    assert_int_equal(ep_parse("{}", &doc, &err), 0);
    assert_false(doc.has_name);
    assert_false(doc.has_user);
    assert_int_equal(doc.nhours, 0);
    assert_null(doc.hours);

    assert_int_equal(ep_parse("{\"name\": null, \"user\": \"\","
                              " \"hours\": []}", &doc, &err), 0);
    assert_true(doc.has_name);
    assert_int_equal(doc.name_len, 0);
    assert_true(doc.has_user);
    assert_int_equal(doc.user_len, 0);
    assert_int_equal(doc.nhours, 0);
    assert_null(doc.hours);

    assert_int_equal(ep_parse("{\"user\": null, \"name\": \"\"}", &doc,
                              &err), 0);
    assert_true(doc.has_user);
    assert_int_equal(doc.user_len, 0);
    assert_true(doc.has_name);
    assert_int_equal(doc.name_len, 0);

    /* a repeated field is refused: readers would disagree on it */
    ep_bad("{\"name\": \"a\", \"name\": \"bb\"}", "invalid_json", NULL);
    ep_bad("{\"hours\": [{\"hour\": 0, \"requests\": 1,"
           " \"requests\": 2}]}", "invalid_json", NULL);

    /* control characters in a name or user, but a tab */
    ep_bad("{\"name\": \"a\\r\\nb\"}", "invalid_field", NULL);
    ep_bad("{\"name\": \"a\\u0001b\"}", "invalid_field", NULL);
    ep_bad("{\"user\": \"a\\nb\"}", "invalid_field", NULL);
    assert_int_equal(ep_parse("{\"name\": \"a\\tb\"}", &doc, &err), 0);
    mitte_endpoint_doc_free(&doc);

    /* not strict JSON text: raw control characters, bad UTF-8 */
    ep_bad("{\"name\": \"a\nb\"}", "invalid_json", NULL);
    ep_bad("{\"name\": \"\xc0\xae\"}", "invalid_json", NULL);
    ep_bad("{\"name\": \"\xed\xa0\x80\"}", "invalid_json", NULL);
    ep_bad("{\"name\": \"\xf4\x90\x80\x80\"}", "invalid_json", NULL);
    ep_bad("{\"name\": \"\xe2\x82\"}", "invalid_json", NULL);
    assert_int_equal(ep_parse("{\"name\": \"\xe2\x82\xac \xf0\x9f\x98\x80\"}",
                              &doc, &err), 0);
    mitte_endpoint_doc_free(&doc);

    /* limits: a 128-byte name, a 64-byte user, UTF-8 */
    snprintf(body, sizeof(body), "{\"name\": \"%0128d\", \"user\": \"%064d\"}",
             0, 0);
    assert_int_equal(ep_parse(body, &doc, &err), 0);
    assert_int_equal(doc.name_len, 128);
    assert_int_equal(doc.user_len, 64);
    assert_int_equal(strlen(doc.name), 128);

    assert_int_equal(ep_parse("{\"name\": \"caf\\u00e9 \\\"x\\\"\"}", &doc,
                              &err), 0);
    assert_string_equal(doc.name, "caf\xc3\xa9 \"x\"");
    assert_int_equal(doc.name_len, 9);
}


static void
test_endpoint_invalid_json(void **state)
{
    mitte_doc_error_t     err;
    mitte_endpoint_doc_t  doc;

    (void) state;

    ep_bad("", "invalid_json", NULL);
    ep_bad("   ", "invalid_json", NULL);
    ep_bad("{", "invalid_json", NULL);
    ep_bad("{\"name\": }", "invalid_json", NULL);
    ep_bad("{\"name\": \"a\",}", "invalid_json", NULL);
    ep_bad("{name: 1}", "invalid_json", NULL);
    ep_bad("[]", "invalid_json", NULL);
    ep_bad("[{}]", "invalid_json", NULL);
    ep_bad("null", "invalid_json", NULL);
    ep_bad("\"name\"", "invalid_json", NULL);
    ep_bad("42", "invalid_json", NULL);
    ep_bad("{} {}", "invalid_json", NULL);
    ep_bad("{}x", "invalid_json", NULL);
    ep_bad("\x01{}", "invalid_json", NULL);
    ep_bad("{}\x01", "invalid_json", NULL);

    /* a raw NUL inside */
    memset(&err, 0, sizeof(err));
    assert_int_equal(mitte_endpoint_doc_parse("{\"name\": \"a\0b\"}", 15,
                                              &doc, &err), -1);
    assert_string_equal(err.code, "invalid_json");
    assert_int_equal(mitte_endpoint_doc_parse("{}\0", 3, &doc, &err), -1);
    assert_int_equal(mitte_endpoint_doc_parse(NULL, 0, &doc, &err), -1);
    assert_string_equal(err.code, "invalid_json");

    /* the length bounds the body */
    assert_int_equal(mitte_endpoint_doc_parse("{}garbage", 2, &doc, &err),
                     0);
}


static void
test_endpoint_invalid_field(void **state)
{
    char  body[512];

    (void) state;

    ep_bad("{\"nam\": \"x\"}", "invalid_field", "unknown field \"nam\"");
    ep_bad("{\"Name\": \"x\"}", "invalid_field", NULL);
    ep_bad("{\"name\": 5}", "invalid_field",
           "name must be a string of at most 128 bytes without control "
           "characters, or null");
    ep_bad("{\"name\": true}", "invalid_field", NULL);
    ep_bad("{\"name\": [\"x\"]}", "invalid_field", NULL);
    ep_bad("{\"user\": 5}", "invalid_field",
           "user must be a string of at most 64 bytes without control "
           "characters, or null");
    ep_bad("{\"user\": {}}", "invalid_field", NULL);

    snprintf(body, sizeof(body), "{\"name\": \"%0129d\"}", 0);
    ep_bad(body, "invalid_field",
           "name must be a string of at most 128 bytes without control "
           "characters, or null");
    snprintf(body, sizeof(body), "{\"user\": \"%065d\"}", 0);
    ep_bad(body, "invalid_field",
           "user must be a string of at most 64 bytes without control "
           "characters, or null");

    /* NUL as an escape would cut the string short */
    ep_bad("{\"name\": \"a\\u0000b\"}", "invalid_field", NULL);
    ep_bad("{\"user\": \"\\u0000\"}", "invalid_field", NULL);

    /* hours */
    ep_bad("{\"hours\": null}", "invalid_field", "hours must be an array");
    ep_bad("{\"hours\": {}}", "invalid_field", "hours must be an array");
    ep_bad("{\"hours\": [1]}", "invalid_field",
           "hours[0] must be an object");
    ep_bad("{\"hours\": [{\"hour\": 0, \"requests\": 1}, null]}",
           "invalid_field", "hours[1] must be an object");
    ep_bad("{\"hours\": [{\"requests\": 1}]}", "invalid_field",
           "hours[0].hour is required");
    ep_bad("{\"hours\": [{\"hour\": 0}]}", "invalid_field",
           "hours[0].requests is required");
    ep_bad("{\"hours\": [{\"hour\": 0, \"failures\": 0}]}", "invalid_field",
           "hours[0].requests is required");
    ep_bad("{\"hours\": [{\"hour\": 0, \"requests\": 1, \"x\": 1}]}",
           "invalid_field", "unknown field \"hours[0].x\"");

    ep_bad("{\"hours\": [{\"hour\": -3600, \"requests\": 1}]}",
           "invalid_field",
           "hours[0].hour must be an ISO-8601 time or unix seconds");
    ep_bad("{\"hours\": [{\"hour\": 3600.5, \"requests\": 1}]}",
           "invalid_field", NULL);
    ep_bad("{\"hours\": [{\"hour\": 1e300, \"requests\": 1}]}",
           "invalid_field", NULL);
    ep_bad("{\"hours\": [{\"hour\": 15461882265600, \"requests\": 1}]}",
           "invalid_field", NULL);
    ep_bad("{\"hours\": [{\"hour\": \"yesterday\", \"requests\": 1}]}",
           "invalid_field", NULL);
    ep_bad("{\"hours\": [{\"hour\": \"2026-02-30\", \"requests\": 1}]}",
           "invalid_field", NULL);
    ep_bad("{\"hours\": [{\"hour\": \"1969-12-31T23:00:00Z\","
           " \"requests\": 1}]}", "invalid_field", NULL);
    ep_bad("{\"hours\": [{\"hour\": \"\", \"requests\": 1}]}",
           "invalid_field", NULL);
    ep_bad("{\"hours\": [{\"hour\": null, \"requests\": 1}]}",
           "invalid_field", NULL);
    ep_bad("{\"hours\": [{\"hour\": true, \"requests\": 1}]}",
           "invalid_field", NULL);

    ep_bad("{\"hours\": [{\"hour\": 0, \"requests\": -1}]}", "invalid_field",
           "hours[0].requests must be a whole number in 0..4294967295");
    ep_bad("{\"hours\": [{\"hour\": 0, \"requests\": 1.5}]}",
           "invalid_field", NULL);
    ep_bad("{\"hours\": [{\"hour\": 0, \"requests\": 4294967296}]}",
           "invalid_field", NULL);
    ep_bad("{\"hours\": [{\"hour\": 0, \"requests\": \"5\"}]}",
           "invalid_field", NULL);
    ep_bad("{\"hours\": [{\"hour\": 0, \"requests\": null}]}",
           "invalid_field", NULL);
    ep_bad("{\"hours\": [{\"hour\": 0, \"requests\": 5, \"failures\": -1}]}",
           "invalid_field",
           "hours[0].failures must be a whole number in 0..4294967295");
    ep_bad("{\"hours\": [{\"hour\": 0, \"requests\": 5,"
           " \"failures\": 0.5}]}", "invalid_field", NULL);
    ep_bad("{\"hours\": [{\"hour\": 0, \"requests\": 5},"
           " {\"hour\": 0, \"requests\": 5}, {\"hour\": 0, \"requests\": 5,"
           " \"failures\": 6}]}", "invalid_field",
           "hours[2].failures must not exceed requests");
    ep_bad("{\"hours\": [{\"hour\": 0, \"failures\": 6, \"requests\": 5}]}",
           "invalid_field", "hours[0].failures must not exceed requests");

    /* an error after good fields leaves nothing behind */
    ep_bad("{\"name\": \"x\", \"hours\": [{\"hour\": 0, \"requests\": 5}],"
           " \"bogus\": 1}", "invalid_field", "unknown field \"bogus\"");
}


static void
test_user_valid(void **state)
{
    mitte_doc_error_t  err;
    mitte_user_doc_t   doc;

    (void) state;

    assert_int_equal(user_parse("{\"plan\": \"Trial\", \"trialEndsAt\":"
                                " \"2026-03-01\", \"email\":"
                                " \"ops@example.com\"}", &doc, &err), 0);
    assert_true(doc.has_plan);
    assert_int_equal(doc.plan, MITTE_PLAN_TRIAL);
    assert_true(doc.has_trial);
    assert_int_equal(doc.trial_ends, 1772323200);
    assert_true(doc.has_email);
    assert_int_equal(doc.email_len, 15);
    assert_string_equal(doc.email, "ops@example.com");

    assert_int_equal(user_parse("{}", &doc, &err), 0);
    assert_false(doc.has_plan);
    assert_false(doc.has_trial);
    assert_false(doc.has_email);

    assert_int_equal(user_parse("{\"plan\": \"pro\", \"trialEndsAt\":"
                                " 1772366400}", &doc, &err), 0);
    assert_int_equal(doc.plan, MITTE_PLAN_PRO);
    assert_int_equal(doc.trial_ends, 1772366400);
    assert_false(doc.has_email);

    assert_int_equal(user_parse("{\"trialEndsAt\":"
                                " \"2026-03-01T12:00:00.999+01:00\"}",
                                &doc, &err), 0);
    assert_int_equal(doc.trial_ends, 1772366400 - 3600);

    assert_int_equal(user_parse("{\"trialEndsAt\": \"1772366400\"}",
                                &doc, &err), 0);
    assert_int_equal(doc.trial_ends, 1772366400);

    /* null and "" bring the defaults back */
    assert_int_equal(user_parse("{\"plan\": null, \"trialEndsAt\": null,"
                                " \"email\": null}", &doc, &err), 0);
    assert_true(doc.has_plan);
    assert_int_equal(doc.plan, MITTE_PLAN_FREE);
    assert_true(doc.has_trial);
    assert_int_equal(doc.trial_ends, 0);
    assert_true(doc.has_email);
    assert_int_equal(doc.email_len, 0);

    assert_int_equal(user_parse("{\"plan\": \"\", \"trialEndsAt\": \"\","
                                " \"email\": \"\"}", &doc, &err), 0);
    assert_true(doc.has_plan);
    assert_int_equal(doc.plan, MITTE_PLAN_FREE);
    assert_true(doc.has_trial);
    assert_int_equal(doc.trial_ends, 0);
    assert_true(doc.has_email);
    assert_int_equal(doc.email_len, 0);

    /* repeated: refused */
    assert_int_equal(user_parse("{\"email\": \"a@b\", \"email\": null}",
                                &doc, &err), -1);
    assert_string_equal(err.code, "invalid_json");
}


static void
test_user_invalid(void **state)
{
    char               body[400];
    mitte_doc_error_t  err;
    mitte_user_doc_t   doc;

    (void) state;

    user_bad("", "invalid_json", NULL);
    user_bad("[]", "invalid_json", NULL);
    user_bad("{\"plan\": \"pro\"", "invalid_json", NULL);
    user_bad("\"pro\"", "invalid_json", NULL);

    user_bad("{\"planned\": \"pro\"}", "invalid_field",
             "unknown field \"planned\"");
    user_bad("{\"plan\": \"enterprise\"}", "invalid_field",
             "plan must be \"free\", \"pro\", \"trial\" or null");
    user_bad("{\"plan\": 1}", "invalid_field", NULL);
    user_bad("{\"plan\": \" pro\"}", "invalid_field", NULL);
    user_bad("{\"plan\": \"pro\\u0000\"}", "invalid_field", NULL);

    user_bad("{\"trialEndsAt\": \"2026-02-29\"}", "invalid_field",
             "trialEndsAt must be an ISO-8601 time, unix seconds or null");
    user_bad("{\"trialEndsAt\": \"soon\"}", "invalid_field", NULL);
    user_bad("{\"trialEndsAt\": -1}", "invalid_field", NULL);
    user_bad("{\"trialEndsAt\": 1.5}", "invalid_field", NULL);
    user_bad("{\"trialEndsAt\": true}", "invalid_field", NULL);
    user_bad("{\"trialEndsAt\": {}}", "invalid_field", NULL);
    user_bad("{\"trialEndsAt\": \"1969-12-31\"}", "invalid_field", NULL);

    user_bad("{\"email\": \"nobody\"}", "invalid_field",
             "email must be an address local@domain, or null");
    user_bad("{\"email\": \"a b@c\"}", "invalid_field", NULL);
    user_bad("{\"email\": \"<a@b>\"}", "invalid_field", NULL);
    user_bad("{\"email\": \"a@b\\r\\nBcc: x@y\"}", "invalid_field", NULL);
    user_bad("{\"email\": 5}", "invalid_field",
             "email must be a string or null");
    user_bad("{\"email\": [\"a@b\"]}", "invalid_field", NULL);

    memset(body, 'a', sizeof(body));
    memcpy(body, "{\"email\": \"", 11);
    body[11 + 100] = '@';
    memcpy(body + 11 + 255, "\"}", 3);
    user_bad(body, "invalid_field", NULL);
    memcpy(body + 11 + 254, "\"}", 3);
    assert_int_equal(user_parse(body, &doc, &err), 0);
    assert_int_equal(doc.email_len, 254);

    /* nothing is kept from a refused document */
    assert_int_equal(user_parse("{\"plan\": \"pro\", \"x\": 1}", &doc,
                                &err), -1);
    assert_false(doc.has_plan);
}


/* a cluster stream entry "m": its "k", "u", "t" skipped, the rest read */

static void
test_user_entry(void **state)
{
    cJSON              *o;
    mitte_user_doc_t    doc;
    mitte_doc_error_t   err;

    (void) state;

    o = cJSON_Parse("{\"k\":\"m\",\"u\":\"alice\",\"t\":1767225600000,"
                    "\"plan\":\"pro\",\"trialEndsAt\":1767225600,"
                    "\"email\":\"a@example.com\"}");
    assert_non_null(o);
    assert_int_equal(mitte_user_doc_from(o, 1, &doc, &err), 0);
    assert_true(doc.has_plan && doc.has_trial && doc.has_email);
    assert_int_equal(doc.plan, MITTE_PLAN_PRO);
    assert_true(doc.trial_ends == 1767225600);
    assert_string_equal(doc.email, "a@example.com");

    /* not an entry: "k" is an unknown field */
    assert_int_equal(mitte_user_doc_from(o, 0, &doc, &err), -1);
    cJSON_Delete(o);

    o = cJSON_Parse("{\"k\":\"m\",\"u\":\"a\",\"plan\":\"gold\"}");
    assert_int_equal(mitte_user_doc_from(o, 1, &doc, &err), -1);
    assert_false(doc.has_plan);
    cJSON_Delete(o);

    o = cJSON_Parse("{\"k\":\"m\",\"u\":\"a\",\"email\":\"no at\"}");
    assert_int_equal(mitte_user_doc_from(o, 1, &doc, &err), -1);
    cJSON_Delete(o);

    o = cJSON_Parse("[\"m\"]");
    assert_int_equal(mitte_user_doc_from(o, 1, &doc, &err), -1);
    cJSON_Delete(o);
}


#define FIELD(d, n, v)  mitte_user_meta_field(d, n, strlen(n), v, strlen(v))

static void
test_user_meta_field(void **state)
{
    mitte_user_doc_t  doc;

    (void) state;

    memset(&doc, 0, sizeof(doc));

    assert_int_equal(FIELD(&doc, "plan", "trial"), 0);
    assert_int_equal(doc.plan, MITTE_PLAN_TRIAL);
    assert_int_equal(FIELD(&doc, "trialEndsAt", "1767225600"), 0);
    assert_true(doc.trial_ends == 1767225600);
    assert_int_equal(FIELD(&doc, "trialEndsAt", "0"), 0);
    assert_true(doc.trial_ends == 0 && doc.has_trial);
    assert_int_equal(FIELD(&doc, "email", "b@example.org"), 0);
    assert_string_equal(doc.email, "b@example.org");
    assert_int_equal(FIELD(&doc, "email", ""), 0);
    assert_int_equal(doc.email_len, 0);
    assert_int_equal(FIELD(&doc, "t", "1767225600000"), 0);
    assert_true(doc.has_plan && doc.has_trial && doc.has_email);

    assert_int_equal(FIELD(&doc, "plan", ""), -1);
    assert_int_equal(FIELD(&doc, "plan", "gold"), -1);
    assert_int_equal(FIELD(&doc, "trialEndsAt", ""), -1);
    assert_int_equal(FIELD(&doc, "trialEndsAt", "-1"), -1);
    assert_int_equal(FIELD(&doc, "trialEndsAt", "12a"), -1);
    assert_int_equal(FIELD(&doc, "trialEndsAt", "99999999999999999"), -1);
    assert_int_equal(FIELD(&doc, "trialEndsAt", "9999999999999999"), -1);
    assert_int_equal(FIELD(&doc, "email", "x"), -1);
    assert_int_equal(FIELD(&doc, "email", "a b@example.com"), -1);
    assert_int_equal(FIELD(&doc, "t", "x"), -1);
    assert_int_equal(FIELD(&doc, "colour", "red"), -1);
    assert_int_equal(FIELD(&doc, "pla", "pro"), -1);

    /* what was refused changed nothing */
    assert_int_equal(doc.plan, MITTE_PLAN_TRIAL);
    assert_true(doc.trial_ends == 0);
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_endpoint_valid),
        cmocka_unit_test(test_endpoint_partial),
        cmocka_unit_test(test_endpoint_invalid_json),
        cmocka_unit_test(test_endpoint_invalid_field),
        cmocka_unit_test(test_user_valid),
        cmocka_unit_test(test_user_invalid),
        cmocka_unit_test(test_user_entry),
        cmocka_unit_test(test_user_meta_field),
    };

    return cmocka_run_group_tests_name("doc", tests, NULL, NULL);
}
