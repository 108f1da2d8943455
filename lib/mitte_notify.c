/*
 * Copyright (C) ngx_mitte_module authors
 */


#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "mitte_time.h"
#include "mitte_util.h"
#include "mitte_notify.h"
#include "mitte_out.h"


/* the largest unix second ISO-8601 shows, 9999-12-31T23:59:59Z */
#define MITTE_NOTIFY_SEC_MAX  253402300799LL

#define MITTE_WHSEC           "whsec_"
#define MITTE_WHSEC_LEN       (sizeof(MITTE_WHSEC) - 1)


static const char  *const mitte_notify_names[MITTE_NOTIFY_N] = {
    "ANOMALY_DETECTED",
    "QUOTA_WARNING",
    "QUOTA_EXCEEDED",
    "ENDPOINT_DOWN",
    "ENDPOINT_RECOVERED",
    "TRIAL_ENDING"
};


static const char  *const mitte_notify_titles[MITTE_NOTIFY_N] = {
    "Failure rate spike detected",
    "Approaching monthly quota",
    "Monthly quota reached",
    "Endpoint down",
    "Endpoint recovered",
    "Your Pro trial ends soon"
};


static const char  *const mitte_webhook_formats[MITTE_WEBHOOK_N] = {
    "json", "slack", "discord"
};


static void mitte_out_slack(mitte_out_t *o, const char *s, size_t len);
static int mitte_name_index(const char *const *names, int n, const char *s,
    size_t len);
static int mitte_base64_decode(const char *s, size_t len, unsigned char *dst,
    size_t *dst_len);
static size_t mitte_base64_encode(char *dst, const unsigned char *src,
    size_t len);


const char *
mitte_notify_type_name(int type)
{
    if (type < 0 || type >= MITTE_NOTIFY_N) {
        return NULL;
    }

    return mitte_notify_names[type];
}


int
mitte_notify_type_parse(const char *s, size_t len)
{
    return mitte_name_index(mitte_notify_names, MITTE_NOTIFY_N, s, len);
}


const char *
mitte_notify_title(int type)
{
    if (type < 0 || type >= MITTE_NOTIFY_N) {
        return NULL;
    }

    return mitte_notify_titles[type];
}


int
mitte_notify_has_endpoint(int type)
{
    return type == MITTE_NOTIFY_ANOMALY_DETECTED
           || type == MITTE_NOTIFY_ENDPOINT_DOWN
           || type == MITTE_NOTIFY_ENDPOINT_RECOVERED;
}


const char *
mitte_webhook_format_name(int format)
{
    if (format < 0 || format >= MITTE_WEBHOOK_N) {
        return NULL;
    }

    return mitte_webhook_formats[format];
}


int
mitte_webhook_format_parse(const char *s, size_t len)
{
    return mitte_name_index(mitte_webhook_formats, MITTE_WEBHOOK_N, s, len);
}


size_t
mitte_notify_anomaly_message(char *buf, size_t size, const char *name,
    size_t name_len, const mitte_anomaly_result_t *res)
{
    return mitte_anomaly_message(buf, size, name, name_len, res);
}


size_t
mitte_notify_down_message(char *buf, size_t size, const char *name,
    size_t name_len, uint32_t failures, unsigned status)
{
    mitte_out_t  o;

    mitte_out_init(&o, buf, size);

    mitte_out_str(&o, "Endpoint '");
    mitte_out_raw(&o, name, name_len);
    mitte_out_str(&o, "' failed ");
    mitte_out_uint(&o, failures);
    mitte_out_str(&o, failures == 1 ? " consecutive delivery"
                                    : " consecutive deliveries");
    mitte_out_str(&o, " (last status ");
    mitte_out_uint(&o, status);
    mitte_out_str(&o, ")");

    return mitte_out_end(&o);
}


size_t
mitte_notify_recovered_message(char *buf, size_t size, const char *name,
    size_t name_len, unsigned status, uint32_t failures)
{
    mitte_out_t  o;

    mitte_out_init(&o, buf, size);

    mitte_out_str(&o, "Endpoint '");
    mitte_out_raw(&o, name, name_len);
    mitte_out_str(&o, "' is delivering again (status ");
    mitte_out_uint(&o, status);
    mitte_out_str(&o, ") after ");
    mitte_out_uint(&o, failures);
    mitte_out_str(&o, failures == 1 ? " consecutive failure"
                                    : " consecutive failures");

    return mitte_out_end(&o);
}


size_t
mitte_notify_quota_warning_message(char *buf, size_t size, uint32_t used,
    uint32_t limit)
{
    uint64_t     pct;
    mitte_out_t  o;

    pct = (limit == 0) ? 100 : (uint64_t) used * 100 / limit;

    mitte_out_init(&o, buf, size);

    mitte_out_str(&o, "You have used ");
    mitte_out_uint(&o, used);
    mitte_out_str(&o, " of your ");
    mitte_out_uint(&o, limit);
    mitte_out_str(&o, " monthly requests (");
    mitte_out_uint(&o, pct);
    mitte_out_str(&o, "%)");

    return mitte_out_end(&o);
}


size_t
mitte_notify_quota_exceeded_message(char *buf, size_t size, uint32_t limit,
    int64_t now, int enforce)
{
    char         month[MITTE_MONTH_LEN];
    mitte_out_t  o;

    mitte_out_init(&o, buf, size);

    mitte_out_str(&o, "You have reached your monthly limit of ");
    mitte_out_uint(&o, limit);
    mitte_out_str(&o, " requests; further deliveries are ");

    if (!enforce) {
        mitte_out_str(&o, "not refused (quota enforcement is off)");
        return mitte_out_end(&o);
    }

    if (now < 0) {
        now = 0;

    } else if (now > MITTE_NOTIFY_SEC_MAX) {
        now = MITTE_NOTIFY_SEC_MAX;
    }

    mitte_out_str(&o, "refused until ");
    mitte_out_raw(&o, month,
                  mitte_month_format(month, mitte_month_of(now) + 1));
    mitte_out_str(&o, "-01");

    return mitte_out_end(&o);
}


size_t
mitte_notify_trial_message(char *buf, size_t size, int64_t ends)
{
    char         iso[MITTE_ISO8601_LEN];
    mitte_out_t  o;

    if (ends < 0) {
        ends = 0;

    } else if (ends > MITTE_NOTIFY_SEC_MAX) {
        ends = MITTE_NOTIFY_SEC_MAX;
    }

    mitte_out_init(&o, buf, size);

    mitte_out_str(&o, "Your Pro trial ends on ");
    mitte_out_raw(&o, iso, mitte_iso8601_format(iso, ends * 1000));

    return mitte_out_end(&o);
}


size_t
mitte_notify_webhook_body(char *buf, size_t size, int format, int type,
    const char *message, size_t message_len, const char *slug,
    size_t slug_len, int64_t ms)
{
    char         iso[MITTE_ISO8601_LEN];
    const char  *title;
    mitte_out_t  o;

    title = mitte_notify_title(type);

    if (title == NULL || format < 0 || format >= MITTE_WEBHOOK_N) {
        if (size != 0) {
            buf[0] = '\0';
        }

        return 0;
    }

    if (message == NULL) {
        message_len = 0;
    }

    mitte_out_init(&o, buf, size);

    switch (format) {

    case MITTE_WEBHOOK_SLACK:
        mitte_out_str(&o, "{\"text\":\"*");
        mitte_out_slack(&o, title, strlen(title));
        mitte_out_str(&o, "*\\n");
        mitte_out_slack(&o, message, message_len);
        mitte_out_str(&o, "\"}");
        break;

    case MITTE_WEBHOOK_DISCORD:
        mitte_out_str(&o, "{\"content\":\"**");
        mitte_out_json(&o, title, strlen(title));
        mitte_out_str(&o, "**\\n");
        mitte_out_json(&o, message, message_len);
        mitte_out_str(&o, "\"}");
        break;

    default: /* MITTE_WEBHOOK_JSON */
        mitte_out_str(&o, "{\"type\":\"");
        mitte_out_str(&o, mitte_notify_type_name(type));
        mitte_out_str(&o, "\",\"title\":\"");
        mitte_out_json(&o, title, strlen(title));
        mitte_out_str(&o, "\",\"message\":\"");
        mitte_out_json(&o, message, message_len);
        mitte_out_str(&o, "\",\"endpointSlug\":");

        if (slug == NULL || slug_len == 0) {
            mitte_out_str(&o, "null");

        } else {
            mitte_out_str(&o, "\"");
            mitte_out_json(&o, slug, slug_len);
            mitte_out_str(&o, "\"");
        }

        mitte_out_str(&o, ",\"timestamp\":\"");
        mitte_out_raw(&o, iso, mitte_iso8601_format(iso, ms));
        mitte_out_str(&o, "\"}");
        break;
    }

    return mitte_out_end(&o);
}


int
mitte_webhook_secret_valid(const char *secret, size_t secret_len)
{
    size_t         key_len;
    unsigned char  key[MITTE_WEBHOOK_SECRET_MAX];

    if (secret == NULL || secret_len == 0
        || secret_len > MITTE_WEBHOOK_SECRET_MAX)
    {
        return 0;
    }

    if (secret_len < MITTE_WHSEC_LEN
        || memcmp(secret, MITTE_WHSEC, MITTE_WHSEC_LEN) != 0)
    {
        return 1;
    }

    if (mitte_base64_decode(secret + MITTE_WHSEC_LEN,
                            secret_len - MITTE_WHSEC_LEN, key, &key_len)
        != 0 || key_len == 0)
    {
        return 0;
    }

    OPENSSL_cleanse(key, sizeof(key));

    return 1;
}


int
mitte_webhook_sign(const char *secret, size_t secret_len,
    const char *msg_id, size_t id_len, int64_t ts, const char *body,
    size_t body_len, char *out, size_t out_size)
{
    int             n, rc;
    char            ts_text[24];
    size_t          key_len, msg_len;
    unsigned int    md_len;
    unsigned char  *msg, *p, key[MITTE_WEBHOOK_SECRET_MAX];
    unsigned char   md[EVP_MAX_MD_SIZE];
    const char     *k;

    if (out == NULL || out_size < MITTE_WEBHOOK_SIG_LEN + 1
        || !mitte_webhook_secret_valid(secret, secret_len)
        || (msg_id == NULL && id_len != 0)
        || (body == NULL && body_len != 0))
    {
        return -1;
    }

    if (secret_len >= MITTE_WHSEC_LEN
        && memcmp(secret, MITTE_WHSEC, MITTE_WHSEC_LEN) == 0)
    {
        k = secret + MITTE_WHSEC_LEN;

        if (mitte_base64_decode(k, secret_len - MITTE_WHSEC_LEN, key,
                                &key_len)
            != 0)
        {
            return -1;
        }

    } else {
        memcpy(key, secret, secret_len);
        key_len = secret_len;
    }

    n = snprintf(ts_text, sizeof(ts_text), "%lld", (long long) ts);

    if (n < 0 || (size_t) n >= sizeof(ts_text)) {
        OPENSSL_cleanse(key, sizeof(key));
        return -1;
    }

    /* "{id}.{timestamp}.{body}" */

    msg_len = id_len + 1 + (size_t) n + 1 + body_len;

    msg = malloc(msg_len);
    if (msg == NULL) {
        OPENSSL_cleanse(key, sizeof(key));
        return -1;
    }

    p = msg;

    if (id_len != 0) {
        memcpy(p, msg_id, id_len);
        p += id_len;
    }

    *p++ = '.';
    memcpy(p, ts_text, (size_t) n);
    p += n;
    *p++ = '.';

    if (body_len != 0) {
        memcpy(p, body, body_len);
    }

    md_len = 0;
    rc = (HMAC(EVP_sha256(), key, (int) key_len, msg, msg_len, md, &md_len)
          != NULL && md_len == 32) ? 0 : -1;

    free(msg);
    OPENSSL_cleanse(key, sizeof(key));

    if (rc != 0) {
        return -1;
    }

    memcpy(out, "v1,", 3);
    n = 3 + (int) mitte_base64_encode(out + 3, md, md_len);
    out[n] = '\0';

    return n;
}


/* Slack's control characters as entities, the rest JSON-escaped */

static void
mitte_out_slack(mitte_out_t *o, const char *s, size_t len)
{
    size_t  i, start;

    start = 0;

    for (i = 0; i < len; i++) {
        if (s[i] != '&' && s[i] != '<' && s[i] != '>') {
            continue;
        }

        mitte_out_json(o, s + start, i - start);
        mitte_out_str(o, s[i] == '&' ? "&amp;" : s[i] == '<' ? "&lt;"
                                                             : "&gt;");
        start = i + 1;
    }

    mitte_out_json(o, s + start, len - start);
}


static int
mitte_name_index(const char *const *names, int n, const char *s, size_t len)
{
    int  i;

    if (s == NULL) {
        return -1;
    }

    for (i = 0; i < n; i++) {
        if (strlen(names[i]) == len && memcmp(names[i], s, len) == 0) {
            return i;
        }
    }

    return -1;
}


/*
 * Base64 with the standard or the URL-safe alphabet; the '=' padding may
 * be left out. dst needs len * 3 / 4 bytes.
 */

static int
mitte_base64_decode(const char *s, size_t len, unsigned char *dst,
    size_t *dst_len)
{
    int       v;
    char      c;
    size_t    i, n, out, pad;
    uint32_t  acc;

    pad = 0;

    while (len > 0 && s[len - 1] == '=' && pad < 2) {
        len--;
        pad++;
    }

    if ((pad != 0 && (len + pad) % 4 != 0) || len % 4 == 1) {
        return -1;
    }

    acc = 0;
    n = 0;
    out = 0;

    for (i = 0; i < len; i++) {
        c = s[i];

        if (c >= 'A' && c <= 'Z') {
            v = c - 'A';

        } else if (c >= 'a' && c <= 'z') {
            v = c - 'a' + 26;

        } else if (c >= '0' && c <= '9') {
            v = c - '0' + 52;

        } else if (c == '+' || c == '-') {
            v = 62;

        } else if (c == '/' || c == '_') {
            v = 63;

        } else {
            return -1;
        }

        acc = (acc << 6) | (uint32_t) v;

        if (++n == 4) {
            dst[out++] = (unsigned char) (acc >> 16);
            dst[out++] = (unsigned char) (acc >> 8);
            dst[out++] = (unsigned char) acc;
            acc = 0;
            n = 0;
        }
    }

    if (n == 2) {
        dst[out++] = (unsigned char) (acc >> 4);

    } else if (n == 3) {
        dst[out++] = (unsigned char) (acc >> 10);
        dst[out++] = (unsigned char) (acc >> 2);
    }

    *dst_len = out;

    return 0;
}


/* standard base64 with padding; returns the length written */

static size_t
mitte_base64_encode(char *dst, const unsigned char *src, size_t len)
{
    size_t             i, out;
    uint32_t           acc;
    static const char  alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

    out = 0;

    for (i = 0; i + 2 < len; i += 3) {
        acc = ((uint32_t) src[i] << 16) | ((uint32_t) src[i + 1] << 8)
              | src[i + 2];
        dst[out++] = alphabet[(acc >> 18) & 0x3f];
        dst[out++] = alphabet[(acc >> 12) & 0x3f];
        dst[out++] = alphabet[(acc >> 6) & 0x3f];
        dst[out++] = alphabet[acc & 0x3f];
    }

    if (len - i == 1) {
        acc = (uint32_t) src[i] << 16;
        dst[out++] = alphabet[(acc >> 18) & 0x3f];
        dst[out++] = alphabet[(acc >> 12) & 0x3f];
        dst[out++] = '=';
        dst[out++] = '=';

    } else if (len - i == 2) {
        acc = ((uint32_t) src[i] << 16) | ((uint32_t) src[i + 1] << 8);
        dst[out++] = alphabet[(acc >> 18) & 0x3f];
        dst[out++] = alphabet[(acc >> 12) & 0x3f];
        dst[out++] = alphabet[(acc >> 6) & 0x3f];
        dst[out++] = '=';
    }

    return out;
}
