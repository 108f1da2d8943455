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

#include "mitte_prefs.h"


#define DEFAULTS_NULL                                                        \
    "{\"inApp\":{\"enabled\":true},"                                         \
    "\"email\":{\"enabled\":true,\"address\":null},"                         \
    "\"webhook\":{\"enabled\":false,\"url\":null,\"format\":\"json\","       \
    "\"secretSet\":false},"                                                  \
    "\"types\":{\"ANOMALY_DETECTED\":true,\"QUOTA_WARNING\":true,"           \
    "\"QUOTA_EXCEEDED\":true,\"ENDPOINT_DOWN\":true,"                        \
    "\"ENDPOINT_RECOVERED\":true,\"TRIAL_ENDING\":true}}"

#define DEFAULTS_OPS                                                         \
    "{\"inApp\":{\"enabled\":true},"                                         \
    "\"email\":{\"enabled\":true,\"address\":\"ops@example.com\"},"          \
    "\"webhook\":{\"enabled\":false,\"url\":null,\"format\":\"json\","       \
    "\"secretSet\":false},"                                                  \
    "\"types\":{\"ANOMALY_DETECTED\":true,\"QUOTA_WARNING\":true,"           \
    "\"QUOTA_EXCEEDED\":true,\"ENDPOINT_DOWN\":true,"                        \
    "\"ENDPOINT_RECOVERED\":true,\"TRIAL_ENDING\":true}}"


static mitte_cidr_t  allow[2];
static size_t        nallow;
static mitte_doc_error_t  serr;    /* the stored documents' tests' */


/* the GET document, checked against the length returned */

static const char *
json(const mitte_prefs_t *p)
{
    size_t       n;
    static char  buf[4096 + 1024];

    n = mitte_prefs_json(p, buf, sizeof(buf));
    assert_true(n < sizeof(buf));
    assert_int_equal(n, strlen(buf));
    assert_int_equal(mitte_prefs_json(p, NULL, 0), n);

    return buf;
}


/* applies a body from a malloc()ed copy without a NUL */

static int
patch(mitte_prefs_t *p, const char *body, mitte_doc_error_t *err)
{
    int     rc;
    char   *copy;
    size_t  len;

    len = strlen(body);
    copy = malloc(len ? len : 1);
    assert_non_null(copy);
    memcpy(copy, body, len);

    memset(err, 0, sizeof(mitte_doc_error_t));
    rc = mitte_prefs_patch(p, copy, len, allow, nallow, err);

    free(copy);

    return rc;
}


static void
ok(mitte_prefs_t *p, const char *body)
{
    mitte_doc_error_t  err;

    if (patch(p, body, &err) != 0) {
        fail_msg("refused: %s: %s %s", body, err.code, err.message);
    }

    assert_int_equal(mitte_prefs_check(p), 0);
}


/*
 * Refused with the code, a message naming "field", and *p unchanged.
 */

static void
refused(const mitte_prefs_t *start, const char *body, const char *code,
    const char *field)
{
    mitte_prefs_t      p;
    mitte_doc_error_t  err;

    memcpy(&p, start, sizeof(mitte_prefs_t));

    if (patch(&p, body, &err) != -1) {
        fail_msg("accepted: %s", body);
    }

    assert_non_null(err.code);

    if (strcmp(err.code, code) != 0) {
        fail_msg("%s: code %s, expected %s (%s)", body, err.code, code,
                 err.message);
    }

    if (field != NULL && strstr(err.message, field) == NULL) {
        fail_msg("%s: message \"%s\" does not name %s", body, err.message,
                 field);
    }

    assert_memory_equal(&p, start, sizeof(mitte_prefs_t));
}


/* a user with everything set, to see that refusals change nothing */

static void
full_prefs(mitte_prefs_t *p)
{
    assert_int_equal(mitte_prefs_default(p, "ops@example.com", 15), 0);
    ok(p, "{\"webhook\":{\"url\":\"https://hooks.example.com/x\","
          "\"enabled\":true,\"format\":\"slack\",\"secret\":\"s3cret\"},"
          "\"types\":{\"QUOTA_WARNING\":false}}");
}


static void
test_size(void **state)
{
    mitte_prefs_t  p;

    (void) state;

    assert_int_equal(sizeof(mitte_prefs_t), MITTE_PREFS_SIZE);
    assert_int_equal(sizeof(p.email), 256);
    assert_int_equal(sizeof(p.url), 2052);
    assert_int_equal(sizeof(p.secret), 260);
    assert_int_equal(offsetof(mitte_prefs_t, email), 12);
}


static void
test_defaults(void **state)
{
    mitte_prefs_t  p;

    (void) state;

    memset(&p, 0xa5, sizeof(p));
    assert_int_equal(mitte_prefs_default(&p, NULL, 0), 0);
    assert_string_equal(json(&p), DEFAULTS_NULL);
    assert_int_equal(mitte_prefs_check(&p), 0);

    assert_int_equal(p.inapp, 1);
    assert_int_equal(p.email_enabled, 1);
    assert_int_equal(p.email_len, 0);
    assert_int_equal(p.webhook_enabled, 0);
    assert_int_equal(p.url_len, 0);
    assert_int_equal(p.format, MITTE_WEBHOOK_JSON);
    assert_int_equal(p.secret_len, 0);
    assert_int_equal(p.types, MITTE_NOTIFY_ALL);

    assert_int_equal(mitte_prefs_default(&p, "ops@example.com", 15), 0);
    assert_string_equal(json(&p), DEFAULTS_OPS);
    assert_string_equal(p.email, "ops@example.com");
    assert_int_equal(p.email_len, 15);

    /* "" is no address */
    assert_int_equal(mitte_prefs_default(&p, "", 0), 0);
    assert_string_equal(json(&p), DEFAULTS_NULL);

    /* a bad address is none */
    assert_int_equal(mitte_prefs_default(&p, "not an address", 14), -1);
    assert_string_equal(json(&p), DEFAULTS_NULL);
    assert_int_equal(mitte_prefs_default(&p, "a@b\r\nBcc: x@y", 13), -1);
    assert_string_equal(json(&p), DEFAULTS_NULL);

    /* a length-delimited address */
    assert_int_equal(mitte_prefs_default(&p, "ops@example.comXYZ", 15), 0);
    assert_string_equal(json(&p), DEFAULTS_OPS);
}


static void
test_partial(void **state)
{
    mitte_prefs_t  p, before;

    (void) state;

    mitte_prefs_default(&p, "ops@example.com", 15);

    /* nothing given, nothing changed */
    memcpy(&before, &p, sizeof(p));
    ok(&p, "{}");
    ok(&p, " { } \n");
    ok(&p, "{\"inApp\":{}}");
    ok(&p, "{\"inApp\":{\"enabled\":true}}");
    ok(&p, "{\"email\":{},\"webhook\":{},\"types\":{}}");
    assert_memory_equal(&p, &before, sizeof(p));

    ok(&p, "{\"email\":{\"enabled\":false}}");
    assert_string_equal(json(&p),
        "{\"inApp\":{\"enabled\":true},"
        "\"email\":{\"enabled\":false,\"address\":\"ops@example.com\"},"
        "\"webhook\":{\"enabled\":false,\"url\":null,\"format\":\"json\","
        "\"secretSet\":false},"
        "\"types\":{\"ANOMALY_DETECTED\":true,\"QUOTA_WARNING\":true,"
        "\"QUOTA_EXCEEDED\":true,\"ENDPOINT_DOWN\":true,"
        "\"ENDPOINT_RECOVERED\":true,\"TRIAL_ENDING\":true}}");

    ok(&p, "{\"email\":{\"address\":\"dev@example.org\"}}");
    assert_int_equal(p.email_enabled, 0);
    assert_string_equal(p.email, "dev@example.org");

    ok(&p, "{\"types\":{\"ENDPOINT_DOWN\":false,\"TRIAL_ENDING\":false}}");
    ok(&p, "{\"types\":{\"TRIAL_ENDING\":true}}");
    assert_int_equal(mitte_prefs_type_on(&p, MITTE_NOTIFY_ENDPOINT_DOWN), 0);
    assert_int_equal(mitte_prefs_type_on(&p, MITTE_NOTIFY_TRIAL_ENDING), 1);
    assert_int_equal(mitte_prefs_type_on(&p, MITTE_NOTIFY_QUOTA_WARNING), 1);
    assert_int_equal(mitte_prefs_type_on(&p, -1), 0);
    assert_int_equal(mitte_prefs_type_on(&p, MITTE_NOTIFY_N), 0);

    ok(&p, "{\"webhook\":{\"url\":\"https://hooks.slack.com/services/T/B/"
           "x\",\"enabled\":true,\"format\":\"slack\"}}");

    assert_string_equal(json(&p),
        "{\"inApp\":{\"enabled\":true},"
        "\"email\":{\"enabled\":false,\"address\":\"dev@example.org\"},"
        "\"webhook\":{\"enabled\":true,\"url\":"
        "\"https://hooks.slack.com/services/T/B/x\",\"format\":\"slack\","
        "\"secretSet\":false},"
        "\"types\":{\"ANOMALY_DETECTED\":true,\"QUOTA_WARNING\":true,"
        "\"QUOTA_EXCEEDED\":true,\"ENDPOINT_DOWN\":false,"
        "\"ENDPOINT_RECOVERED\":true,\"TRIAL_ENDING\":true}}");

    /* the order within a document does not matter */
    ok(&p, "{\"webhook\":{\"enabled\":false,\"url\":null}}");
    assert_int_equal(p.url_len, 0);
    ok(&p, "{\"webhook\":{\"enabled\":true,\"url\":\"http://x.example/\"}}");
    assert_string_equal(p.url, "http://x.example/");

    ok(&p, "{\"webhook\":{\"format\":\"discord\"}}");
    assert_int_equal(p.format, MITTE_WEBHOOK_DISCORD);
    ok(&p, "{\"webhook\":{\"format\":\"json\"}}");
    assert_int_equal(p.format, MITTE_WEBHOOK_JSON);

    /* a repeated field is refused (readers would disagree on it) */
    refused(&p, "{\"email\":{\"enabled\":true,\"enabled\":false}}",
            "invalid_json", NULL);

    /* a longer value then a shorter one leaves no tail */
    ok(&p, "{\"webhook\":{\"url\":\"http://a.example/long/path\"}}");
    ok(&p, "{\"webhook\":{\"url\":\"http://b.example/\"}}");
    assert_string_equal(p.url, "http://b.example/");
    assert_int_equal(mitte_prefs_check(&p), 0);

    /* a URL is stored as given, and escaped in the document */
    ok(&p, "{\"webhook\":{\"url\":\"HTTP://b.example/a\\\"b\\\\c\"}}");
    assert_string_equal(p.url, "HTTP://b.example/a\"b\\c");
    assert_non_null(strstr(json(&p),
                           "\"url\":\"HTTP://b.example/a\\\"b\\\\c\""));
}


static void
test_null_clears(void **state)
{
    mitte_prefs_t  p;

    (void) state;

    full_prefs(&p);

    ok(&p, "{\"email\":{\"address\":null}}");
    assert_int_equal(p.email_len, 0);
    assert_int_equal(p.email[0], '\0');
    assert_non_null(strstr(json(&p),
                           "\"email\":{\"enabled\":true,\"address\":null}"));

    ok(&p, "{\"email\":{\"address\":\"a@b\"}}");
    ok(&p, "{\"email\":{\"address\":\"\"}}");
    assert_int_equal(p.email_len, 0);

    /* the url goes only with the webhook off */
    refused(&p, "{\"webhook\":{\"url\":null}}", "invalid_field",
            "webhook.enabled");
    refused(&p, "{\"webhook\":{\"url\":\"\"}}", "invalid_field",
            "webhook.enabled");

    ok(&p, "{\"webhook\":{\"url\":null,\"enabled\":false}}");
    assert_int_equal(p.url_len, 0);
    assert_int_equal(p.url[0], '\0');
    assert_int_equal(p.webhook_enabled, 0);
    assert_non_null(strstr(json(&p), "\"url\":null"));

    refused(&p, "{\"webhook\":{\"enabled\":true}}", "invalid_field",
            "webhook.enabled");

    ok(&p, "{\"webhook\":{\"url\":\"\"}}");
    assert_int_equal(p.url_len, 0);
}


static void
test_secret(void **state)
{
    char           body[400], *q;
    mitte_prefs_t  p;

    (void) state;

    mitte_prefs_default(&p, NULL, 0);

    ok(&p, "{\"webhook\":{\"secret\":\"s3cret-value\"}}");
    assert_int_equal(p.secret_len, 12);
    assert_string_equal(p.secret, "s3cret-value");
    assert_null(strstr(json(&p), "s3cret"));
    assert_non_null(strstr(json(&p), "\"secretSet\":true"));

    /* other changes keep it */
    ok(&p, "{\"webhook\":{\"format\":\"discord\"}}");
    assert_string_equal(p.secret, "s3cret-value");

    ok(&p, "{\"webhook\":{\"secret\":\"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2La"
           "LaSw\"}}");
    assert_string_equal(p.secret, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
    assert_null(strstr(json(&p), "whsec"));

    ok(&p, "{\"webhook\":{\"secret\":null}}");
    assert_int_equal(p.secret_len, 0);
    assert_int_equal(p.secret[0], '\0');
    assert_non_null(strstr(json(&p), "\"secretSet\":false"));

    /* 256 bytes are fine, 257 are not */
    strcpy(body, "{\"webhook\":{\"secret\":\"");
    q = body + strlen(body);
    memset(q, 'k', 256);
    strcpy(q + 256, "\"}}");
    ok(&p, body);
    assert_int_equal(p.secret_len, 256);
    assert_int_equal(mitte_prefs_check(&p), 0);

    memset(q, 'k', 257);
    strcpy(q + 257, "\"}}");
    refused(&p, body, "invalid_field", "webhook.secret");

    /* UTF-8 secrets are bytes */
    ok(&p, "{\"webhook\":{\"secret\":\"\\u00e9t\\u00e9\"}}");
    assert_int_equal(p.secret_len, 5);
    assert_string_equal(p.secret, "\xc3\xa9t\xc3\xa9");
}


static void
test_refusals(void **state)
{
    int            i;
    char           body[3000], *q;
    mitte_prefs_t  p, d;

    (void) state;

    full_prefs(&p);
    mitte_prefs_default(&d, NULL, 0);

    /* not a JSON object */
    refused(&p, "", "invalid_json", NULL);
    refused(&p, " ", "invalid_json", NULL);
    refused(&p, "[]", "invalid_json", NULL);
    refused(&p, "null", "invalid_json", NULL);
    refused(&p, "\"x\"", "invalid_json", NULL);
    refused(&p, "{", "invalid_json", NULL);
    refused(&p, "{\"email\":}", "invalid_json", NULL);
    refused(&p, "{} {}", "invalid_json", NULL);
    refused(&p, "{\"email\":{\"enabled\":false}} x", "invalid_json", NULL);
    refused(&p, "{\"webhook\":{\"secret\":\"a\\u0000b\"}}", "invalid_field",
            NULL);

    /* unknown fields, at every level */
    refused(&p, "{\"foo\":1}", "invalid_field", "foo");
    refused(&p, "{\"Email\":{}}", "invalid_field", "Email");
    refused(&p, "{\"inApp\":{\"foo\":true}}", "invalid_field", "inApp.foo");
    refused(&p, "{\"email\":{\"to\":\"a@b\"}}", "invalid_field", "email.to");
    refused(&p, "{\"webhook\":{\"secretSet\":\"yes\"}}", "invalid_field",
            "webhook.secretSet");
    refused(&p, "{\"types\":{\"FOO\":true}}", "invalid_field", "types.FOO");
    refused(&p, "{\"types\":{\"endpoint_down\":true}}", "invalid_field",
            "types.endpoint_down");
    refused(&p, "{\"types\":{\"\":true}}", "invalid_field", "types");

    /* the parts are objects */
    refused(&p, "{\"inApp\":true}", "invalid_field", "inApp");
    refused(&p, "{\"email\":null}", "invalid_field", "email");
    refused(&p, "{\"webhook\":\"https://x.example/\"}", "invalid_field",
            "webhook");
    refused(&p, "{\"types\":[\"ENDPOINT_DOWN\"]}", "invalid_field",
            "types");

    /* in-app is always on */
    refused(&p, "{\"inApp\":{\"enabled\":false}}", "invalid_field",
            "inApp.enabled");
    refused(&p, "{\"inApp\":{\"enabled\":null}}", "invalid_field",
            "inApp.enabled");
    refused(&p, "{\"inApp\":{\"enabled\":1}}", "invalid_field",
            "inApp.enabled");

    /* switches are booleans */
    refused(&p, "{\"email\":{\"enabled\":1}}", "invalid_field",
            "email.enabled");
    refused(&p, "{\"email\":{\"enabled\":\"true\"}}", "invalid_field",
            "email.enabled");
    refused(&p, "{\"email\":{\"enabled\":null}}", "invalid_field",
            "email.enabled");
    refused(&p, "{\"webhook\":{\"enabled\":0}}", "invalid_field",
            "webhook.enabled");
    refused(&p, "{\"webhook\":{\"enabled\":{}}}", "invalid_field",
            "webhook.enabled");
    refused(&p, "{\"types\":{\"ENDPOINT_DOWN\":0}}", "invalid_field",
            "types.ENDPOINT_DOWN");
    refused(&p, "{\"types\":{\"TRIAL_ENDING\":null}}", "invalid_field",
            "types.TRIAL_ENDING");
    refused(&p, "{\"types\":{\"QUOTA_WARNING\":\"false\"}}",
            "invalid_field", "types.QUOTA_WARNING");

    /* addresses */
    refused(&p, "{\"email\":{\"address\":\"nope\"}}", "invalid_field",
            "email.address");
    refused(&p, "{\"email\":{\"address\":\"a b@example.com\"}}",
            "invalid_field", "email.address");
    refused(&p, "{\"email\":{\"address\":\"a@b,c@d\"}}", "invalid_field",
            "email.address");
    refused(&p, "{\"email\":{\"address\":\"<a@b>\"}}", "invalid_field",
            "email.address");
    refused(&p, "{\"email\":{\"address\":\"Ops <a@b>\"}}", "invalid_field",
            "email.address");
    refused(&p, "{\"email\":{\"address\":\"a@b\\r\\nBcc: c@d\"}}",
            "invalid_field", "email.address");
    refused(&p, "{\"email\":{\"address\":\"a@b\\n\"}}", "invalid_field",
            "email.address");
    refused(&p, "{\"email\":{\"address\":\"@b\"}}", "invalid_field",
            "email.address");
    refused(&p, "{\"email\":{\"address\":\"a@\"}}", "invalid_field",
            "email.address");
    refused(&p, "{\"email\":{\"address\":5}}", "invalid_field",
            "email.address");
    refused(&p, "{\"email\":{\"address\":[\"a@b\"]}}", "invalid_field",
            "email.address");

    strcpy(body, "{\"email\":{\"address\":\"");
    q = body + strlen(body);
    memset(q, 'a', 251);
    strcpy(q + 251, "@bc\"}}");             /* 254 bytes */
    ok(&d, body);
    assert_int_equal(d.email_len, 254);
    memset(q, 'a', 252);
    strcpy(q + 252, "@bc\"}}");             /* 255 bytes */
    refused(&p, body, "invalid_field", "email.address");

    /* formats */
    refused(&p, "{\"webhook\":{\"format\":\"xml\"}}", "invalid_field",
            "webhook.format");
    refused(&p, "{\"webhook\":{\"format\":\"JSON\"}}", "invalid_field",
            "webhook.format");
    refused(&p, "{\"webhook\":{\"format\":\"\"}}", "invalid_field",
            "webhook.format");
    refused(&p, "{\"webhook\":{\"format\":null}}", "invalid_field",
            "webhook.format");
    refused(&p, "{\"webhook\":{\"format\":0}}", "invalid_field",
            "webhook.format");

    /* secrets */
    refused(&p, "{\"webhook\":{\"secret\":\"\"}}", "invalid_field",
            "webhook.secret");
    refused(&p, "{\"webhook\":{\"secret\":5}}", "invalid_field",
            "webhook.secret");
    refused(&p, "{\"webhook\":{\"secret\":true}}", "invalid_field",
            "webhook.secret");
    refused(&p, "{\"webhook\":{\"secret\":{}}}", "invalid_field",
            "webhook.secret");
    refused(&p, "{\"webhook\":{\"secret\":\"whsec_\"}}", "invalid_field",
            "webhook.secret");
    refused(&p, "{\"webhook\":{\"secret\":\"whsec_not base64!\"}}",
            "invalid_field", "webhook.secret");

    /* the webhook enabled without a url, as the result */
    refused(&d, "{\"webhook\":{\"enabled\":true}}", "invalid_field",
            "webhook.enabled");
    refused(&d, "{\"webhook\":{\"enabled\":true,\"url\":null}}",
            "invalid_field", "webhook.enabled");
    refused(&d, "{\"webhook\":{\"url\":null,\"enabled\":true}}",
            "invalid_field", "webhook.enabled");

    /* all or nothing: an error after good fields stores none of them */
    refused(&p, "{\"email\":{\"enabled\":false},\"foo\":1}",
            "invalid_field", "foo");
    refused(&p, "{\"types\":{\"ENDPOINT_DOWN\":false},"
            "\"webhook\":{\"url\":\"http://127.0.0.1/\"}}",
            "invalid_field", "webhook.url");
    refused(&p, "{\"webhook\":{\"secret\":null,\"url\":null}}",
            "invalid_field", "webhook.enabled");
    refused(&p, "{\"email\":{\"address\":\"x@y\",\"enabled\":false},"
            "\"webhook\":{\"format\":\"xml\"}}", "invalid_field",
            "webhook.format");

    /* deep documents parse, and are refused for their field */
    strcpy(body, "{\"types\":");

    for (i = 0; i < 50; i++) {
        strcat(body, "{\"a\":");
    }

    strcat(body, "1");

    for (i = 0; i < 51; i++) {
        strcat(body, "}");
    }

    refused(&p, body, "invalid_field", "types.a");
}


static void
url_refused(const mitte_prefs_t *p, const char *url)
{
    char  body[2200];

    snprintf(body, sizeof(body), "{\"webhook\":{\"url\":\"%s\"}}", url);
    refused(p, body, "invalid_field", "webhook.url");
}


static void
url_ok(mitte_prefs_t *p, const char *url)
{
    char  body[2200];

    snprintf(body, sizeof(body), "{\"webhook\":{\"url\":\"%s\"}}", url);
    ok(p, body);
    assert_string_equal(p->url, url);
    assert_int_equal(p->url_len, strlen(url));
}


static void
test_urls(void **state)
{
    char           url[2100];
    mitte_prefs_t  p;

    (void) state;

    full_prefs(&p);

    /* not absolute http(s) */
    url_refused(&p, "ftp://example.com/");
    url_refused(&p, "example.com/hook");
    url_refused(&p, "/hook");
    url_refused(&p, "http://");
    url_refused(&p, "http:///x");
    url_refused(&p, "http://user@example.com/");
    url_refused(&p, "http://user:pw@example.com/");
    url_refused(&p, "http://example.com:0/");
    url_refused(&p, "http://example.com:65536/");
    url_refused(&p, "http://exa mple.com/");
    url_refused(&p, "http://example.com/\\t");
    url_refused(&p, "http://%31%32%37.0.0.1/");
    url_refused(&p, "http://1.2.3.4.5/");
    refused(&p, "{\"webhook\":{\"url\":5}}", "invalid_field", "webhook.url");
    refused(&p, "{\"webhook\":{\"url\":true}}", "invalid_field",
            "webhook.url");

    /* 2048 bytes are fine, 2049 are not */
    strcpy(url, "https://example.com/");
    memset(url + 20, 'a', MITTE_URL_MAX - 20);
    url[MITTE_URL_MAX] = '\0';
    url_ok(&p, url);
    assert_int_equal(mitte_prefs_check(&p), 0);
    assert_true(strlen(json(&p)) > MITTE_URL_MAX);

    url[MITTE_URL_MAX] = 'a';
    url[MITTE_URL_MAX + 1] = '\0';
    url_refused(&p, url);

    /* blocked literals, in all spellings */
    url_refused(&p, "http://127.0.0.1/");
    url_refused(&p, "http://127.0.0.1:8080/hook");
    url_refused(&p, "http://127.1/");
    url_refused(&p, "http://2130706433/");
    url_refused(&p, "http://0x7f000001/");
    url_refused(&p, "http://0177.0.0.1/");
    url_refused(&p, "http://0x7f.1/");
    url_refused(&p, "http://127.0.0.1./");
    url_refused(&p, "http://0/");
    url_refused(&p, "http://0.0.0.0/");
    url_refused(&p, "http://10.0.0.1/");
    url_refused(&p, "http://172.16.0.1/");
    url_refused(&p, "http://192.168.1.1/");
    url_refused(&p, "http://169.254.169.254/latest/meta-data/");
    url_refused(&p, "http://100.64.0.1/");
    url_refused(&p, "http://[::1]/");
    url_refused(&p, "http://[::]/");
    url_refused(&p, "http://[::ffff:127.0.0.1]/");
    url_refused(&p, "http://[::ffff:7f00:1]/");
    url_refused(&p, "http://[::127.0.0.1]/");
    url_refused(&p, "http://[fd00::1]/");
    url_refused(&p, "http://[fe80::1%25eth0]/");
    url_refused(&p, "http://[64:ff9b::808:808]/");
    url_refused(&p, "http://[2002:808:808::1]/");
    url_refused(&p, "https://[2001:db8::1]:8443/");

    /* public literals and names pass (names are judged on connect) */
    url_ok(&p, "https://8.8.8.8/hook");
    url_ok(&p, "https://[2606:4700::1]/hook");
    url_ok(&p, "http://[::ffff:8.8.8.8]/");
    url_ok(&p, "http://134744072/");
    url_ok(&p, "http://localhost/");
    url_ok(&p, "https://hooks.example.com/x?y=1#z");
}


static void
test_allowlist(void **state)
{
    mitte_prefs_t  p;

    (void) state;

    mitte_prefs_default(&p, NULL, 0);

    assert_int_equal(mitte_cidr_parse("127.0.0.1/32", 12, &allow[0]), 0);
    assert_int_equal(mitte_cidr_parse("fd00::/8", 8, &allow[1]), 0);
    nallow = 2;

    url_ok(&p, "http://127.0.0.1:9000/relay");
    url_ok(&p, "http://127.1:9000/relay");
    url_ok(&p, "http://[::ffff:127.0.0.1]/");
    url_ok(&p, "http://[fd12::1]:8080/");
    url_refused(&p, "http://127.0.0.2/");
    url_refused(&p, "http://[::1]/");
    url_refused(&p, "http://10.0.0.1/");
    url_refused(&p, "http://[fe80::1]/");

    nallow = 0;

    url_refused(&p, "http://127.0.0.1:9000/relay");
}


static void
test_json_truncated(void **state)
{
    char           buf[64];
    size_t         n, full, i;
    mitte_prefs_t  p;

    (void) state;

    mitte_prefs_default(&p, NULL, 0);

    full = strlen(DEFAULTS_NULL);
    assert_int_equal(mitte_prefs_json(&p, NULL, 0), full);

    for (i = 1; i < sizeof(buf); i++) {
        memset(buf, 'Z', sizeof(buf));
        n = mitte_prefs_json(&p, buf, i);
        assert_int_equal(n, full);
        assert_int_equal(strlen(buf), i - 1);
        assert_memory_equal(buf, DEFAULTS_NULL, i - 1);
    }

    /* an escaped string is written whole or not at all */
    mitte_prefs_default(&p, "ops@example.com", 15);
    n = mitte_prefs_json(&p, buf, 70);
    assert_int_equal(n, strlen(DEFAULTS_OPS));
    assert_string_equal(buf, "{\"inApp\":{\"enabled\":true},\"email\":"
                        "{\"enabled\":true,\"address\":");
}


/* a GET document sent back as it is changes nothing */

static void
test_round_trip(void **state)
{
    mitte_prefs_t   p, q;
    static char     doc[4096 + 1024];

    (void) state;

    full_prefs(&p);
    q = p;

    snprintf(doc, sizeof(doc), "%s", json(&p));

    ok(&p, doc);
    assert_memory_equal(&p, &q, sizeof(mitte_prefs_t));
}


static void
test_json_parses(void **state)
{
    cJSON          *root, *wh, *types;
    mitte_prefs_t   p;

    (void) state;

    full_prefs(&p);

    root = cJSON_Parse(json(&p));
    assert_non_null(root);

    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(
        cJSON_GetObjectItem(root, "inApp"), "enabled")));

    wh = cJSON_GetObjectItem(root, "webhook");
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(wh, "enabled")));
    assert_string_equal(cJSON_GetObjectItem(wh, "url")->valuestring,
                        "https://hooks.example.com/x");
    assert_string_equal(cJSON_GetObjectItem(wh, "format")->valuestring,
                        "slack");
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(wh, "secretSet")));
    assert_null(cJSON_GetObjectItem(wh, "secret"));

    types = cJSON_GetObjectItem(root, "types");
    assert_int_equal(cJSON_GetArraySize(types), 6);
    assert_true(cJSON_IsFalse(cJSON_GetObjectItem(types, "QUOTA_WARNING")));
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(types, "ENDPOINT_DOWN")));

    cJSON_Delete(root);
}


static void
test_check(void **state)
{
    mitte_prefs_t  p, bad;

    (void) state;

    full_prefs(&p);
    assert_int_equal(mitte_prefs_check(&p), 0);

#define CORRUPT(stmt)                                                        \
    memcpy(&bad, &p, sizeof(p));                                             \
    stmt;                                                                    \
    assert_int_equal(mitte_prefs_check(&bad), -1)

    CORRUPT(bad.inapp = 0);
    CORRUPT(bad.email_enabled = 2);
    CORRUPT(bad.webhook_enabled = 7);
    CORRUPT(bad.format = 3);
    CORRUPT(bad.types = 0x40);
    CORRUPT(bad.email_len = 256);
    CORRUPT(bad.email_len = 3);
    CORRUPT(bad.email_len = 16);
    CORRUPT(bad.email[5] = '\0');
    CORRUPT(bad.email[200] = 'x');
    CORRUPT(bad.email[3] = ' ');
    CORRUPT(bad.url_len = 60000);
    CORRUPT(bad.url_len = 3);
    CORRUPT(bad.url[2051] = 'x');
    CORRUPT(memcpy(bad.url, "ftp:", 4));
    CORRUPT(bad.secret_len = 257);
    CORRUPT(bad.secret_len = 0);
    CORRUPT(memcpy(bad.secret, "whsec_", 6));
    CORRUPT(bad.url_len = 0; memset(bad.url, 0, sizeof(bad.url)));

#undef CORRUPT
}


/* cluster mode's stored document: the secret kept, read back as it was */

static void
test_store_round_trip(void **state)
{
    size_t          n;
    uint32_t        rev;
    uint64_t        t;
    mitte_prefs_t   p, q, empty;
    static char     doc[8192];

    (void) state;

    full_prefs(&p);

    n = mitte_prefs_store_json(&p, 7, 1767225600123ULL, doc, sizeof(doc));
    assert_true(n < sizeof(doc));
    assert_int_equal(n, strlen(doc));
    assert_int_equal(mitte_prefs_store_json(&p, 7, 1767225600123ULL, NULL, 0),
                     n);

    assert_non_null(strstr(doc, "{\"rev\":7,\"t\":1767225600123,"
                                "\"inApp\":{\"enabled\":true},"));
    assert_non_null(strstr(doc, "\"secret\":\"s3cret\""));
    assert_null(strstr(doc, "secretSet"));

    memset(&q, 0x5a, sizeof(q));
    assert_int_equal(mitte_prefs_store_parse(doc, n, &q, &rev, &t, &serr), 0);
    assert_memory_equal(&p, &q, sizeof(mitte_prefs_t));
    assert_int_equal(rev, 7);
    assert_true(t == 1767225600123ULL);

    /* no secret, no url: null both ways */
    (void) mitte_prefs_default(&empty, NULL, 0);
    n = mitte_prefs_store_json(&empty, 1, 0, doc, sizeof(doc));
    assert_non_null(strstr(doc, "\"url\":null,\"format\":\"json\","
                                "\"secret\":null}"));
    assert_int_equal(mitte_prefs_store_parse(doc, n, &q, &rev, &t, &serr), 0);
    assert_memory_equal(&empty, &q, sizeof(mitte_prefs_t));
}


/* a url to a private address: the instance that stored it judged it */

static void
test_store_private_url(void **state)
{
    size_t          n;
    uint32_t        rev;
    uint64_t        t;
    mitte_prefs_t   p, q;
    static char     doc[8192];

    (void) state;

    (void) mitte_prefs_default(&p, NULL, 0);
    memcpy(p.url, "http://10.1.2.3/hook", 20);
    p.url_len = 20;
    p.webhook_enabled = 1;
    assert_int_equal(mitte_prefs_check(&p), 0);

    n = mitte_prefs_store_json(&p, 2, 5, doc, sizeof(doc));
    assert_int_equal(mitte_prefs_store_parse(doc, n, &q, &rev, &t, &serr), 0);
    assert_memory_equal(&p, &q, sizeof(mitte_prefs_t));
}


static void
store_bad(const char *text)
{
    uint32_t        rev;
    uint64_t        t;
    mitte_prefs_t   q, before;

    memset(&q, 0x33, sizeof(q));
    before = q;
    rev = 99;
    t = 99;

    if (mitte_prefs_store_parse(text, strlen(text), &q, &rev, &t, &serr)
        != -1)
    {
        fail_msg("accepted: %s", text);
    }

    assert_memory_equal(&q, &before, sizeof(q));
    assert_int_equal(rev, 99);
    assert_true(t == 99);
    assert_non_null(serr.code);
}


#define STORE_TYPES                                                          \
    "\"types\":{\"ANOMALY_DETECTED\":true,\"QUOTA_WARNING\":true,"           \
    "\"QUOTA_EXCEEDED\":true,\"ENDPOINT_DOWN\":true,"                        \
    "\"ENDPOINT_RECOVERED\":true,\"TRIAL_ENDING\":true}"

#define STORE_DOC(rev, t, email, webhook, types)                             \
    "{\"rev\":" rev ",\"t\":" t ",\"inApp\":{\"enabled\":true},"             \
    "\"email\":" email ",\"webhook\":" webhook "," types "}"

#define STORE_EMAIL    "{\"enabled\":true,\"address\":null}"
#define STORE_WEBHOOK  "{\"enabled\":false,\"url\":null,\"format\":\"json\"," \
                       "\"secret\":null}"


static void
test_store_refusals(void **state)
{
    uint32_t        rev;
    uint64_t        t;
    mitte_prefs_t   q;
    const char     *good;

    (void) state;

    good = STORE_DOC("1", "0", STORE_EMAIL, STORE_WEBHOOK, STORE_TYPES);
    assert_int_equal(mitte_prefs_store_parse(good, strlen(good), &q, &rev,
                                             &t, &serr), 0);

    store_bad("");
    store_bad("garbage");
    store_bad("[1,2]");
    store_bad("{}");
    store_bad(STORE_DOC("0", "0", STORE_EMAIL, STORE_WEBHOOK, STORE_TYPES));
    store_bad(STORE_DOC("-1", "0", STORE_EMAIL, STORE_WEBHOOK, STORE_TYPES));
    store_bad(STORE_DOC("1.5", "0", STORE_EMAIL, STORE_WEBHOOK, STORE_TYPES));
    store_bad(STORE_DOC("2147483648", "0", STORE_EMAIL, STORE_WEBHOOK,
                        STORE_TYPES));
    store_bad(STORE_DOC("\"1\"", "0", STORE_EMAIL, STORE_WEBHOOK,
                        STORE_TYPES));
    store_bad(STORE_DOC("1", "-5", STORE_EMAIL, STORE_WEBHOOK, STORE_TYPES));
    store_bad(STORE_DOC("1", "1e300", STORE_EMAIL, STORE_WEBHOOK,
                        STORE_TYPES));
    store_bad(STORE_DOC("1", "0", "{\"enabled\":true}", STORE_WEBHOOK,
                        STORE_TYPES));
    store_bad(STORE_DOC("1", "0", "{\"enabled\":1,\"address\":null}",
                        STORE_WEBHOOK, STORE_TYPES));
    store_bad(STORE_DOC("1", "0", "{\"enabled\":true,\"address\":\"x\"}",
                        STORE_WEBHOOK, STORE_TYPES));
    store_bad(STORE_DOC("1", "0", STORE_EMAIL,
                        "{\"enabled\":false,\"url\":null,\"format\":\"json\"}",
                        STORE_TYPES));
    store_bad(STORE_DOC("1", "0", STORE_EMAIL,
                        "{\"enabled\":true,\"url\":null,\"format\":\"json\","
                        "\"secret\":null}", STORE_TYPES));
    store_bad(STORE_DOC("1", "0", STORE_EMAIL,
                        "{\"enabled\":false,\"url\":\"ftp://x/\","
                        "\"format\":\"json\",\"secret\":null}", STORE_TYPES));
    store_bad(STORE_DOC("1", "0", STORE_EMAIL,
                        "{\"enabled\":false,\"url\":null,\"format\":\"xml\","
                        "\"secret\":null}", STORE_TYPES));
    store_bad(STORE_DOC("1", "0", STORE_EMAIL, STORE_WEBHOOK,
                        "\"types\":{\"ANOMALY_DETECTED\":true}"));
    store_bad(STORE_DOC("1", "0", STORE_EMAIL, STORE_WEBHOOK,
                        "\"types\":{\"ANOMALY_DETECTED\":true,"
                        "\"QUOTA_WARNING\":true,\"QUOTA_EXCEEDED\":true,"
                        "\"ENDPOINT_DOWN\":true,\"ENDPOINT_RECOVERED\":true,"
                        "\"TRIAL_ENDING\":true,\"NOPE\":true}"));
    store_bad("{\"rev\":1,\"t\":0,\"inApp\":{\"enabled\":true},"
              "\"email\":" STORE_EMAIL ",\"webhook\":" STORE_WEBHOOK ","
              STORE_TYPES ",\"extra\":1}");
    store_bad("{\"rev\":1,\"t\":0,\"inApp\":{\"enabled\":false},"
              "\"email\":" STORE_EMAIL ",\"webhook\":" STORE_WEBHOOK ","
              STORE_TYPES "}");
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_size),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_partial),
        cmocka_unit_test(test_null_clears),
        cmocka_unit_test(test_secret),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_urls),
        cmocka_unit_test(test_allowlist),
        cmocka_unit_test(test_json_truncated),
        cmocka_unit_test(test_json_parses),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_check),
        cmocka_unit_test(test_store_round_trip),
        cmocka_unit_test(test_store_private_url),
        cmocka_unit_test(test_store_refusals),
    };

    return cmocka_run_group_tests_name("prefs", tests, NULL, NULL);
}
