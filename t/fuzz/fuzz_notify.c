/*
 * Copyright (C) ngx_mitte_module authors
 *
 * Notification texts and outbound webhook bodies, with endpoint names,
 * slugs, numbers and buffer sizes from the fuzzer: each writer counts the
 * whole length as snprintf does, never writes past "size", leaves a
 * NUL-terminated prefix; a whole webhook body is JSON, names the type,
 * and a Slack text holds no '<' or '>' (no "<!channel>" from a name).
 * The webhook secret check and the signature agree.
 */

#include <string.h>

#include <cjson/cJSON.h>

#include "fuzz.h"
#include "mitte_anomaly.h"
#include "mitte_notify.h"


#define FUZZ_BUF  4096


static void
fuzz_written(const char *buf, size_t size, size_t n)
{
    if (size == 0) {
        return;
    }

    FUZZ_CHECK(memchr(buf, '\0', size) != NULL);
    FUZZ_CHECK(strlen(buf) <= n);

    if (n < size) {
        FUZZ_CHECK(strlen(buf) == n);
    }
}


/* the message into a buffer of "size" (a heap block of exactly that size) */

static size_t
fuzz_messages(int which, size_t size, const char *name, size_t name_len,
    uint32_t a, uint32_t b, int64_t t, char **out)
{
    char                    *buf;
    size_t                   n;
    mitte_anomaly_result_t   res;

    buf = malloc(size ? size : 1);
    if (buf == NULL) {
        abort();
    }

    switch (which % 7) {

    case 0:
        memset(&res, 0, sizeof(res));
        res.requests = a;
        res.failures = b;
        res.rate = a ? (double) b / a : 0;
        res.z = (double) (int32_t) a / 100.0;
        n = mitte_notify_anomaly_message(buf, size, name, name_len, &res);
        break;

    case 1:
        n = mitte_notify_down_message(buf, size, name, name_len, a, b);
        break;

    case 2:
        n = mitte_notify_recovered_message(buf, size, name, name_len, a, b);
        break;

    case 3:
        n = mitte_notify_quota_warning_message(buf, size, a, b);
        break;

    case 4:
        n = mitte_notify_quota_exceeded_message(buf, size, a, t, b & 1);
        break;

    case 5:
        n = mitte_notify_trial_message(buf, size, t);
        break;

    default:
        n = mitte_notify_webhook_body(buf, size, (int) (a % 4), (int) (b % 7),
                                      name, name_len, name,
                                      name_len > 64 ? 64 : name_len, t);
        break;
    }

    fuzz_written(buf, size, n);

    *out = buf;

    return n;
}


static void
fuzz_webhook(int format, int type, const char *msg, size_t msg_len,
    int64_t ms)
{
    char         buf[FUZZ_BUF];
    size_t       n;
    cJSON       *doc, *item;
    const char  *key;

    n = mitte_notify_webhook_body(buf, sizeof(buf), format, type, msg,
                                  msg_len, msg, msg_len > 64 ? 64 : msg_len,
                                  ms);

    if (format >= MITTE_WEBHOOK_N || mitte_notify_type_name(type) == NULL) {
        FUZZ_CHECK(n == 0);
        return;
    }

    if (n >= sizeof(buf)) {
        return;
    }

    FUZZ_CHECK(strlen(buf) == n);

    doc = cJSON_Parse(buf);
    FUZZ_CHECK(cJSON_IsObject(doc));

    if (format == MITTE_WEBHOOK_JSON) {
        item = cJSON_GetObjectItemCaseSensitive(doc, "type");
        FUZZ_CHECK(cJSON_IsString(item));
        FUZZ_CHECK(strcmp(item->valuestring, mitte_notify_type_name(type))
                   == 0);

    } else {
        key = (format == MITTE_WEBHOOK_SLACK) ? "text" : "content";
        item = cJSON_GetObjectItemCaseSensitive(doc, key);
        FUZZ_CHECK(cJSON_IsString(item));

        if (format == MITTE_WEBHOOK_SLACK) {
            FUZZ_CHECK(strchr(item->valuestring, '<') == NULL);
            FUZZ_CHECK(strchr(item->valuestring, '>') == NULL);
        }
    }

    cJSON_Delete(doc);
}


static void
fuzz_secret(const char *s, size_t len)
{
    int   valid, n;
    char  sig[MITTE_WEBHOOK_SIG_LEN + 1];

    valid = mitte_webhook_secret_valid(s, len);
    FUZZ_CHECK(valid == 0 || valid == 1);

    n = mitte_webhook_sign(s, len, "msg_1", 5, 1770000000, "{}", 2, sig,
                           sizeof(sig));

    if (valid) {
        FUZZ_CHECK(n == MITTE_WEBHOOK_SIG_LEN);
        FUZZ_CHECK(strlen(sig) == (size_t) n);
        FUZZ_CHECK(memcmp(sig, "v1,", 3) == 0);

    } else {
        FUZZ_CHECK(n == -1);
    }
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int        which, format, type;
    char      *name, *nul, *out;
    size_t     name_len, bufsize;
    int64_t    t;
    uint32_t   a, b;
    fuzz_in_t  in;

    in.p = data;
    in.left = size;

    which = (int) fuzz_uint(&in, 1);
    bufsize = (size_t) fuzz_uint(&in, 2) % 1024;
    a = (uint32_t) fuzz_uint(&in, 4);
    b = (uint32_t) fuzz_uint(&in, 4);
    t = (int64_t) fuzz_uint(&in, 8);
    format = (int) (a % 4);
    type = (int) (b % 7);

    name = fuzz_rest(&in, &name_len);

    /* names never hold a NUL: the documents and headers refuse one */
    nul = memchr(name, '\0', name_len);

    if (nul != NULL) {
        name_len = (size_t) (nul - name);
    }

    fuzz_messages(which, bufsize, name, name_len, a, b, t, &out);
    free(out);

    fuzz_webhook(format, type, name, name_len, t);
    fuzz_secret(name, name_len);

    free(name);

    return 0;
}
