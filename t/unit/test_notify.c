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

#include "mitte_notify.h"


#define T_2026_02_13  1770978600LL      /* 2026-02-13T10:30:00Z */
#define T_2026_03_01  1772366400LL      /* 2026-03-01T12:00:00Z */
#define T_2026_12_31  1798761599LL      /* 2026-12-31T23:59:59Z */


static void
test_types(void **state)
{
    int  t;
    static const char  *names[] = {
        "ANOMALY_DETECTED", "QUOTA_WARNING", "QUOTA_EXCEEDED",
        "ENDPOINT_DOWN", "ENDPOINT_RECOVERED", "TRIAL_ENDING"
    };

    (void) state;

    assert_int_equal(MITTE_NOTIFY_N, 6);
    assert_int_equal(MITTE_NOTIFY_ALL, 0x3f);

    for (t = 0; t < MITTE_NOTIFY_N; t++) {
        assert_string_equal(mitte_notify_type_name(t), names[t]);
        assert_int_equal(mitte_notify_type_parse(names[t],
                                                 strlen(names[t])), t);
        assert_int_equal(MITTE_NOTIFY_BIT(t), 1U << t);
    }

    assert_null(mitte_notify_type_name(-1));
    assert_null(mitte_notify_type_name(MITTE_NOTIFY_N));
    assert_int_equal(mitte_notify_type_parse("endpoint_down", 13), -1);
    assert_int_equal(mitte_notify_type_parse("ENDPOINT_DOWNX", 14), -1);
    assert_int_equal(mitte_notify_type_parse("ENDPOINT_DOWN", 12), -1);
    assert_int_equal(mitte_notify_type_parse("", 0), -1);
    assert_int_equal(mitte_notify_type_parse(NULL, 0), -1);

    assert_string_equal(mitte_notify_title(MITTE_NOTIFY_ANOMALY_DETECTED),
                        "Failure rate spike detected");
    assert_string_equal(mitte_notify_title(MITTE_NOTIFY_ENDPOINT_DOWN),
                        "Endpoint down");
    assert_string_equal(mitte_notify_title(MITTE_NOTIFY_ENDPOINT_RECOVERED),
                        "Endpoint recovered");
    assert_string_equal(mitte_notify_title(MITTE_NOTIFY_QUOTA_WARNING),
                        "Approaching monthly quota");
    assert_string_equal(mitte_notify_title(MITTE_NOTIFY_QUOTA_EXCEEDED),
                        "Monthly quota reached");
    assert_string_equal(mitte_notify_title(MITTE_NOTIFY_TRIAL_ENDING),
                        "Your Pro trial ends soon");
    assert_null(mitte_notify_title(6));
    assert_null(mitte_notify_title(-1));

    assert_int_equal(mitte_notify_has_endpoint(
                         MITTE_NOTIFY_ANOMALY_DETECTED), 1);
    assert_int_equal(mitte_notify_has_endpoint(MITTE_NOTIFY_ENDPOINT_DOWN),
                     1);
    assert_int_equal(mitte_notify_has_endpoint(
                         MITTE_NOTIFY_ENDPOINT_RECOVERED), 1);
    assert_int_equal(mitte_notify_has_endpoint(MITTE_NOTIFY_QUOTA_WARNING),
                     0);
    assert_int_equal(mitte_notify_has_endpoint(MITTE_NOTIFY_QUOTA_EXCEEDED),
                     0);
    assert_int_equal(mitte_notify_has_endpoint(MITTE_NOTIFY_TRIAL_ENDING),
                     0);
}


static void
test_formats(void **state)
{
    (void) state;

    assert_string_equal(mitte_webhook_format_name(MITTE_WEBHOOK_JSON),
                        "json");
    assert_string_equal(mitte_webhook_format_name(MITTE_WEBHOOK_SLACK),
                        "slack");
    assert_string_equal(mitte_webhook_format_name(MITTE_WEBHOOK_DISCORD),
                        "discord");
    assert_null(mitte_webhook_format_name(3));

    assert_int_equal(mitte_webhook_format_parse("json", 4),
                     MITTE_WEBHOOK_JSON);
    assert_int_equal(mitte_webhook_format_parse("slack", 5),
                     MITTE_WEBHOOK_SLACK);
    assert_int_equal(mitte_webhook_format_parse("discord", 7),
                     MITTE_WEBHOOK_DISCORD);
    assert_int_equal(mitte_webhook_format_parse("JSON", 4), -1);
    assert_int_equal(mitte_webhook_format_parse("xml", 3), -1);
    assert_int_equal(mitte_webhook_format_parse("jso", 3), -1);
}


static void
test_messages(void **state)
{
    char                    buf[256];
    size_t                  n;
    mitte_anomaly_result_t  res;

    (void) state;

    n = mitte_notify_down_message(buf, sizeof(buf), "stripe-prod", 11, 5,
                                  503);
    assert_string_equal(buf, "Endpoint 'stripe-prod' failed 5 consecutive "
                        "deliveries (last status 503)");
    assert_int_equal(n, strlen(buf));

    mitte_notify_down_message(buf, sizeof(buf), "x", 1, 1, 502);
    assert_string_equal(buf, "Endpoint 'x' failed 1 consecutive delivery "
                        "(last status 502)");

    n = mitte_notify_recovered_message(buf, sizeof(buf), "stripe-prod", 11,
                                       200, 7);
    assert_string_equal(buf, "Endpoint 'stripe-prod' is delivering again "
                        "(status 200) after 7 consecutive failures");
    assert_int_equal(n, strlen(buf));

    mitte_notify_recovered_message(buf, sizeof(buf), "x", 1, 204, 1);
    assert_string_equal(buf, "Endpoint 'x' is delivering again (status 204) "
                        "after 1 consecutive failure");

    n = mitte_notify_quota_warning_message(buf, sizeof(buf), 4500, 5000);
    assert_string_equal(buf, "You have used 4500 of your 5000 monthly "
                        "requests (90%)");
    assert_int_equal(n, strlen(buf));

    mitte_notify_quota_warning_message(buf, sizeof(buf), 6, 7);
    assert_string_equal(buf, "You have used 6 of your 7 monthly requests "
                        "(85%)");

    mitte_notify_quota_warning_message(buf, sizeof(buf), 4294967295U,
                                       4294967295U);
    assert_string_equal(buf, "You have used 4294967295 of your 4294967295 "
                        "monthly requests (100%)");

    mitte_notify_quota_warning_message(buf, sizeof(buf), 0, 0);
    assert_string_equal(buf, "You have used 0 of your 0 monthly requests "
                        "(100%)");

    n = mitte_notify_quota_exceeded_message(buf, sizeof(buf), 5000,
                                            T_2026_02_13, 1);
    assert_string_equal(buf, "You have reached your monthly limit of 5000 "
                        "requests; further deliveries are refused until "
                        "2026-03-01");
    assert_int_equal(n, strlen(buf));

    mitte_notify_quota_exceeded_message(buf, sizeof(buf), 250000,
                                        T_2026_12_31, 1);
    assert_string_equal(buf, "You have reached your monthly limit of "
                        "250000 requests; further deliveries are refused "
                        "until 2027-01-01");

    mitte_notify_quota_exceeded_message(buf, sizeof(buf), 5000,
                                        T_2026_02_13, 0);
    assert_string_equal(buf, "You have reached your monthly limit of 5000 "
                        "requests; further deliveries are not refused "
                        "(quota enforcement is off)");

    n = mitte_notify_trial_message(buf, sizeof(buf), T_2026_03_01);
    assert_string_equal(buf, "Your Pro trial ends on "
                        "2026-03-01T12:00:00.000Z");
    assert_int_equal(n, strlen(buf));

    memset(&res, 0, sizeof(res));
    res.requests = 10;
    res.failures = 9;
    res.z = 3.14;

    n = mitte_notify_anomaly_message(buf, sizeof(buf), "stripe-prod", 11,
                                     &res);
    assert_string_equal(buf, "Endpoint 'stripe-prod' failure rate spiked "
                        "to 90% (z-score: 3.1)");
    assert_int_equal(n, strlen(buf));
}


static void
test_messages_bytes(void **state)
{
    char    buf[128], *name;
    size_t  n, i;

    (void) state;

    /* a name of any bytes, not NUL-terminated, is copied as it is */

    name = malloc(5);
    assert_non_null(name);
    memcpy(name, "a\0'\"\xff", 5);

    n = mitte_notify_down_message(buf, sizeof(buf), name, 5, 5, 500);
    assert_int_equal(n, strlen("Endpoint '") + 5
                        + strlen("' failed 5 consecutive deliveries "
                                 "(last status 500)"));
    assert_memory_equal(buf, "Endpoint 'a\0'\"\xff' failed", 23);
    assert_int_equal(buf[n], '\0');

    free(name);

    /* truncation as snprintf: what fits, and a NUL */

    for (i = 0; i < 60; i++) {
        memset(buf, 'Z', sizeof(buf));
        n = mitte_notify_recovered_message(buf, i, "stripe-prod", 11, 200,
                                           7);
        assert_int_equal(n, 84);

        if (i != 0) {
            assert_int_equal(strlen(buf), i - 1);
            assert_memory_equal(buf, "Endpoint 'stripe-prod' is delivering "
                                "again (status 200) after 7", i - 1);

        } else {
            assert_int_equal(buf[0], 'Z');
        }
    }

    assert_int_equal(mitte_notify_trial_message(NULL, 0, T_2026_03_01), 47);
    assert_int_equal(mitte_notify_quota_warning_message(NULL, 0, 1, 2), 48);
}


/* the body, and its parse by cJSON */

static cJSON *
body(int format, int type, const char *msg, const char *slug,
    const char *expect)
{
    char    buf[1024];
    size_t  n;
    cJSON  *json;

    n = mitte_notify_webhook_body(buf, sizeof(buf), format, type, msg,
                                  strlen(msg), slug,
                                  slug ? strlen(slug) : 0,
                                  T_2026_02_13 * 1000 + 123);

    assert_string_equal(buf, expect);
    assert_int_equal(n, strlen(expect));

    json = cJSON_Parse(buf);
    assert_non_null(json);

    return json;
}


static void
test_webhook_body(void **state)
{
    char    buf[64];
    size_t  n, full;
    cJSON  *json;

    (void) state;

    json = body(MITTE_WEBHOOK_JSON, MITTE_NOTIFY_ENDPOINT_DOWN,
                "Endpoint 'stripe-prod' failed 5 consecutive deliveries "
                "(last status 503)", "mt_abc123",
                "{\"type\":\"ENDPOINT_DOWN\",\"title\":\"Endpoint down\","
                "\"message\":\"Endpoint 'stripe-prod' failed 5 consecutive "
                "deliveries (last status 503)\",\"endpointSlug\":"
                "\"mt_abc123\",\"timestamp\":\"2026-02-13T10:30:00.123Z\"}");
    assert_string_equal(cJSON_GetObjectItem(json, "endpointSlug")
                        ->valuestring, "mt_abc123");
    cJSON_Delete(json);

    json = body(MITTE_WEBHOOK_JSON, MITTE_NOTIFY_QUOTA_WARNING,
                "a \"quoted\"\nline\\", NULL,
                "{\"type\":\"QUOTA_WARNING\",\"title\":\"Approaching "
                "monthly quota\",\"message\":\"a \\\"quoted\\\"\\nline"
                "\\\\\",\"endpointSlug\":null,\"timestamp\":"
                "\"2026-02-13T10:30:00.123Z\"}");
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(json, "endpointSlug")));
    assert_string_equal(cJSON_GetObjectItem(json, "message")->valuestring,
                        "a \"quoted\"\nline\\");
    cJSON_Delete(json);

    json = body(MITTE_WEBHOOK_JSON, MITTE_NOTIFY_TRIAL_ENDING, "m", "",
                "{\"type\":\"TRIAL_ENDING\",\"title\":\"Your Pro trial ends "
                "soon\",\"message\":\"m\",\"endpointSlug\":null,"
                "\"timestamp\":\"2026-02-13T10:30:00.123Z\"}");
    cJSON_Delete(json);

    json = body(MITTE_WEBHOOK_SLACK, MITTE_NOTIFY_ENDPOINT_DOWN,
                "Endpoint 'x' failed", "mt_abc",
                "{\"text\":\"*Endpoint down*\\nEndpoint 'x' failed\"}");
    assert_string_equal(cJSON_GetObjectItem(json, "text")->valuestring,
                        "*Endpoint down*\nEndpoint 'x' failed");
    cJSON_Delete(json);

    /* Slack's control sequences are escaped */
    json = body(MITTE_WEBHOOK_SLACK, MITTE_NOTIFY_ENDPOINT_DOWN,
                "Endpoint '<!channel> & <http://x|y>' \"q\"", NULL,
                "{\"text\":\"*Endpoint down*\\nEndpoint '&lt;!channel&gt; "
                "&amp; &lt;http://x|y&gt;' \\\"q\\\"\"}");
    cJSON_Delete(json);

    json = body(MITTE_WEBHOOK_DISCORD, MITTE_NOTIFY_ANOMALY_DETECTED,
                "Endpoint 'a<b>' failure rate spiked to 90% (z-score: 3.1)",
                "mt_abc",
                "{\"content\":\"**Failure rate spike detected**\\n"
                "Endpoint 'a<b>' failure rate spiked to 90% (z-score: "
                "3.1)\"}");
    assert_string_equal(cJSON_GetObjectItem(json, "content")->valuestring,
                        "**Failure rate spike detected**\nEndpoint 'a<b>' "
                        "failure rate spiked to 90% (z-score: 3.1)");
    cJSON_Delete(json);

    /* invalid UTF-8 and controls come out as valid JSON */
    n = mitte_notify_webhook_body(buf, sizeof(buf), MITTE_WEBHOOK_DISCORD,
                                  MITTE_NOTIFY_ENDPOINT_DOWN, "\xff\x01", 2,
                                  NULL, 0, 0);
    assert_string_equal(buf, "{\"content\":\"**Endpoint down**\\n"
                        "\xef\xbf\xbd\\u0001\"}");
    assert_int_equal(n, strlen(buf));

    /* too small: the length needed, a shorter prefix */
    full = mitte_notify_webhook_body(NULL, 0, MITTE_WEBHOOK_JSON,
                                     MITTE_NOTIFY_ENDPOINT_DOWN, "msg", 3,
                                     "slug", 4, 0);
    assert_int_equal(full, strlen("{\"type\":\"ENDPOINT_DOWN\",\"title\":"
                                  "\"Endpoint down\",\"message\":\"msg\","
                                  "\"endpointSlug\":\"slug\",\"timestamp\":"
                                  "\"1970-01-01T00:00:00.000Z\"}"));

    n = mitte_notify_webhook_body(buf, 20, MITTE_WEBHOOK_JSON,
                                  MITTE_NOTIFY_ENDPOINT_DOWN, "msg", 3,
                                  "slug", 4, 0);
    assert_int_equal(n, full);
    assert_true(strlen(buf) < 20);
    assert_memory_equal(buf, "{\"type\":\"ENDPOINT_DO", strlen(buf));

    /* unknown type or format */
    assert_int_equal(mitte_notify_webhook_body(buf, sizeof(buf), 3, 0, "m",
                                               1, NULL, 0, 0), 0);
    assert_string_equal(buf, "");
    assert_int_equal(mitte_notify_webhook_body(buf, sizeof(buf), 0, 6, "m",
                                               1, NULL, 0, 0), 0);
    assert_int_equal(mitte_notify_webhook_body(buf, sizeof(buf), -1, 0, "m",
                                               1, NULL, 0, 0), 0);
}


static void
sign_ok(const char *secret, const char *id, int64_t ts, const char *bdy,
    const char *expect)
{
    int   n;
    char  out[MITTE_WEBHOOK_SIG_LEN + 1];

    memset(out, 'Z', sizeof(out));

    n = mitte_webhook_sign(secret, strlen(secret), id, strlen(id), ts, bdy,
                           strlen(bdy), out, sizeof(out));

    assert_int_equal(n, MITTE_WEBHOOK_SIG_LEN);
    assert_string_equal(out, expect);
}


static void
test_webhook_sign(void **state)
{
    char  out[64];

    (void) state;

    /* the Standard Webhooks (Svix) example */
    sign_ok("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330,
            "{\"test\": 2432232314}",
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");

    /*
     * a raw secret; computed with
     *   printf '%s' 'msg_1.1700000000.{"a":1}' \
     *   | openssl dgst -sha256 -hmac 'my raw secret' -binary | base64
     */
    sign_ok("my raw secret", "msg_1", 1700000000, "{\"a\":1}",
            "v1,0xCtNpGsOjdPPVxdLUcqXl5QLnfPf/M8v4Y+x7D3tHg=");

    /* whsec_ + base64("hello") signs as the raw secret "hello" */
    sign_ok("hello", "msg_2", 1700000001, "{\"x\":\"y\"}",
            "v1,COwz4jGD8K+3MiOCwvEkk2gB/mUelW3deGp740dGXWo=");
    sign_ok("whsec_aGVsbG8=", "msg_2", 1700000001, "{\"x\":\"y\"}",
            "v1,COwz4jGD8K+3MiOCwvEkk2gB/mUelW3deGp740dGXWo=");
    sign_ok("whsec_aGVsbG8", "msg_2", 1700000001, "{\"x\":\"y\"}",
            "v1,COwz4jGD8K+3MiOCwvEkk2gB/mUelW3deGp740dGXWo=");

    /* an empty body, a negative time */
    sign_ok("k", "msg_3", -5, "",
            "v1,jjlMIKk2QqIwL7dnjJeji8jE60YMtkGUVwtaLN6QdCQ=");

    /* refusals */
    assert_int_equal(mitte_webhook_sign("k", 1, "i", 1, 1, "b", 1, out,
                                        MITTE_WEBHOOK_SIG_LEN), -1);
    assert_int_equal(mitte_webhook_sign("", 0, "i", 1, 1, "b", 1, out,
                                        sizeof(out)), -1);
    assert_int_equal(mitte_webhook_sign("whsec_!!!!", 10, "i", 1, 1, "b", 1,
                                        out, sizeof(out)), -1);
    assert_int_equal(mitte_webhook_sign("whsec_", 6, "i", 1, 1, "b", 1, out,
                                        sizeof(out)), -1);
    assert_int_equal(mitte_webhook_sign("k", 1, "i", 1, 1, "b", 1, NULL,
                                        0), -1);
}


static void
test_webhook_secret(void **state)
{
    char  s[300];

    (void) state;

    assert_int_equal(mitte_webhook_secret_valid("s", 1), 1);
    assert_int_equal(mitte_webhook_secret_valid("whsec", 5), 1);
    assert_int_equal(mitte_webhook_secret_valid("WHSEC_!!", 8), 1);
    assert_int_equal(mitte_webhook_secret_valid(
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", 38), 1);
    assert_int_equal(mitte_webhook_secret_valid("whsec_aGVsbG8=", 14), 1);
    assert_int_equal(mitte_webhook_secret_valid("whsec_aGVsbG8", 13), 1);
    assert_int_equal(mitte_webhook_secret_valid("whsec_aGVsbA==", 14), 1);
    assert_int_equal(mitte_webhook_secret_valid("whsec_aGVsbA", 12), 1);
    assert_int_equal(mitte_webhook_secret_valid("whsec_-_-_", 10), 1);

    assert_int_equal(mitte_webhook_secret_valid("", 0), 0);
    assert_int_equal(mitte_webhook_secret_valid(NULL, 0), 0);
    assert_int_equal(mitte_webhook_secret_valid("whsec_", 6), 0);
    assert_int_equal(mitte_webhook_secret_valid("whsec_=", 7), 0);
    assert_int_equal(mitte_webhook_secret_valid("whsec_a", 7), 0);
    assert_int_equal(mitte_webhook_secret_valid("whsec_aGVsbG8==", 15), 0);
    assert_int_equal(mitte_webhook_secret_valid("whsec_aGVs bG8=", 15), 0);
    assert_int_equal(mitte_webhook_secret_valid("whsec_aGV=sbG8", 14), 0);
    assert_int_equal(mitte_webhook_secret_valid("whsec_aGVsbG8=\n", 15), 0);

    memset(s, 'a', sizeof(s));
    assert_int_equal(mitte_webhook_secret_valid(s, 256), 1);
    assert_int_equal(mitte_webhook_secret_valid(s, 257), 0);

    memcpy(s, "whsec_", 6);
    assert_int_equal(mitte_webhook_secret_valid(s, 256), 1);
    assert_int_equal(mitte_webhook_secret_valid(s, 255), 0);
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_types),
        cmocka_unit_test(test_formats),
        cmocka_unit_test(test_messages),
        cmocka_unit_test(test_messages_bytes),
        cmocka_unit_test(test_webhook_body),
        cmocka_unit_test(test_webhook_sign),
        cmocka_unit_test(test_webhook_secret),
    };

    return cmocka_run_group_tests_name("notify", tests, NULL, NULL);
}
