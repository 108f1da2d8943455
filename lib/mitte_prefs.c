/*
 * Copyright (C) ngx_mitte_module authors
 */


#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "mitte_prefs.h"
#include "mitte_out.h"


_Static_assert(sizeof(mitte_prefs_t) == MITTE_PREFS_SIZE,
               "mitte_prefs_t has padding");


static int mitte_prefs_inapp(mitte_prefs_t *p, const cJSON *obj,
    mitte_doc_error_t *err);
static int mitte_prefs_email(mitte_prefs_t *p, const cJSON *obj,
    mitte_doc_error_t *err);
static int mitte_prefs_webhook(mitte_prefs_t *p, const cJSON *obj,
    const mitte_cidr_t *allow, size_t nallow, int judge,
    mitte_doc_error_t *err);
static int mitte_prefs_url(mitte_prefs_t *p, const cJSON *item,
    const mitte_cidr_t *allow, size_t nallow, int judge,
    mitte_doc_error_t *err);
static int mitte_prefs_types(mitte_prefs_t *p, const cJSON *obj,
    mitte_doc_error_t *err);
static int mitte_prefs_text(const char *s, size_t len, size_t size);
static void mitte_prefs_write(mitte_out_t *o, const mitte_prefs_t *p,
    int secret);
static int mitte_prefs_whole(const cJSON *item, double max, uint64_t *v);
static int mitte_prefs_complete(const cJSON *obj, mitte_doc_error_t *err);
static void mitte_prefs_bool(mitte_out_t *o, int v);
static void mitte_prefs_string(mitte_out_t *o, const char *s, size_t len,
    size_t size);


int
mitte_prefs_default(mitte_prefs_t *p, const char *email, size_t email_len)
{
    memset(p, 0, sizeof(mitte_prefs_t));

    p->inapp = 1;
    p->email_enabled = 1;
    p->webhook_enabled = 0;
    p->format = MITTE_WEBHOOK_JSON;
    p->types = MITTE_NOTIFY_ALL;

    if (email == NULL || email_len == 0) {
        return 0;
    }

    if (!mitte_email_valid(email, email_len)) {
        return -1;
    }

    memcpy(p->email, email, email_len);
    p->email_len = (uint16_t) email_len;

    return 0;
}


int
mitte_prefs_patch(mitte_prefs_t *p, const char *body, size_t len,
    const mitte_cidr_t *allow, size_t nallow, mitte_doc_error_t *err)
{
    int            rc;
    cJSON         *root, *item;
    mitte_prefs_t  copy;

    root = mitte_doc_parse(body, len, err);
    if (root == NULL) {
        return -1;
    }

    memcpy(&copy, p, sizeof(mitte_prefs_t));

    rc = 0;

    for (item = root->child; item != NULL && rc == 0; item = item->next) {

        if (strcmp(item->string, "inApp") == 0) {
            rc = mitte_prefs_inapp(&copy, item, err);

        } else if (strcmp(item->string, "email") == 0) {
            rc = mitte_prefs_email(&copy, item, err);

        } else if (strcmp(item->string, "webhook") == 0) {
            rc = mitte_prefs_webhook(&copy, item, allow, nallow, 1, err);

        } else if (strcmp(item->string, "types") == 0) {
            rc = mitte_prefs_types(&copy, item, err);

        } else {
            rc = mitte_doc_fail(err, "invalid_field",
                                "unknown field \"%.64s\"", item->string);
        }
    }

    cJSON_Delete(root);

    if (rc != 0) {
        return -1;
    }

    if (copy.webhook_enabled && copy.url_len == 0) {
        return mitte_doc_fail(err, "invalid_field", "webhook.enabled "
                              "cannot be true without a webhook.url");
    }

    memcpy(p, &copy, sizeof(mitte_prefs_t));

    return 0;
}


size_t
mitte_prefs_json(const mitte_prefs_t *p, char *buf, size_t size)
{
    mitte_out_t  o;

    mitte_out_init(&o, buf, size);
    mitte_out_str(&o, "{");
    mitte_prefs_write(&o, p, 0);

    return mitte_out_end(&o);
}


size_t
mitte_prefs_store_json(const mitte_prefs_t *p, uint32_t rev, uint64_t t_ms,
    char *buf, size_t size)
{
    mitte_out_t  o;

    mitte_out_init(&o, buf, size);
    mitte_out_str(&o, "{\"rev\":");
    mitte_out_uint(&o, rev);
    mitte_out_str(&o, ",\"t\":");
    mitte_out_uint(&o, t_ms);
    mitte_out_str(&o, ",");
    mitte_prefs_write(&o, p, 1);

    return mitte_out_end(&o);
}


/* the document after its "{": the secret itself or only secretSet */

static void
mitte_prefs_write(mitte_out_t *o, const mitte_prefs_t *p, int secret)
{
    int          type;
    const char  *format;

    mitte_out_str(o, "\"inApp\":{\"enabled\":true},"
                       "\"email\":{\"enabled\":");
    mitte_prefs_bool(o, p->email_enabled);
    mitte_out_str(o, ",\"address\":");
    mitte_prefs_string(o, p->email, p->email_len, sizeof(p->email));

    mitte_out_str(o, "},\"webhook\":{\"enabled\":");
    mitte_prefs_bool(o, p->webhook_enabled);
    mitte_out_str(o, ",\"url\":");
    mitte_prefs_string(o, p->url, p->url_len, sizeof(p->url));

    format = mitte_webhook_format_name(p->format);

    mitte_out_str(o, ",\"format\":\"");
    mitte_out_str(o, format ? format : "json");

    if (secret) {
        mitte_out_str(o, "\",\"secret\":");
        mitte_prefs_string(o, p->secret, p->secret_len, sizeof(p->secret));

    } else {
        mitte_out_str(o, "\",\"secretSet\":");
        mitte_prefs_bool(o, p->secret_len != 0);
    }

    mitte_out_str(o, "},\"types\":{");

    for (type = 0; type < MITTE_NOTIFY_N; type++) {
        mitte_out_str(o, type ? ",\"" : "\"");
        mitte_out_str(o, mitte_notify_type_name(type));
        mitte_out_str(o, "\":");
        mitte_prefs_bool(o, mitte_prefs_type_on(p, type));
    }

    mitte_out_str(o, "}}");
}


int
mitte_prefs_store_parse(const char *text, size_t len, mitte_prefs_t *p,
    uint32_t *rev, uint64_t *t_ms, mitte_doc_error_t *err)
{
    int     rc;
    cJSON  *root;

    root = mitte_doc_parse(text, len, err);
    if (root == NULL) {
        return -1;
    }

    rc = mitte_prefs_store_from(root, p, rev, t_ms, err);

    cJSON_Delete(root);

    return rc;
}


int
mitte_prefs_store_from(const cJSON *obj, mitte_prefs_t *p, uint32_t *rev,
    uint64_t *t_ms, mitte_doc_error_t *err)
{
    int            rc;
    uint64_t       r, t;
    const cJSON   *item;
    mitte_prefs_t  copy;

    if (!cJSON_IsObject(obj)) {
        return mitte_doc_fail(err, "invalid_json", "the preferences must be "
                              "an object");
    }

    if (mitte_prefs_complete(obj, err) != 0) {
        return -1;
    }

    (void) mitte_prefs_default(&copy, NULL, 0);

    r = 0;
    t = 0;
    rc = 0;

    for (item = obj->child; item != NULL && rc == 0; item = item->next) {

        if (strcmp(item->string, "rev") == 0) {
            if (mitte_prefs_whole(item, MITTE_PREFS_REV_MAX, &r) != 0
                || r == 0)
            {
                rc = mitte_doc_fail(err, "invalid_field", "rev must be a "
                                    "whole number from 1 to %d",
                                    MITTE_PREFS_REV_MAX);
            }

        } else if (strcmp(item->string, "t") == 0) {
            if (mitte_prefs_whole(item, 9007199254740992.0, &t) != 0) {
                rc = mitte_doc_fail(err, "invalid_field", "t must be a whole "
                                    "number of milliseconds");
            }

        } else if (strcmp(item->string, "inApp") == 0) {
            rc = mitte_prefs_inapp(&copy, item, err);

        } else if (strcmp(item->string, "email") == 0) {
            rc = mitte_prefs_email(&copy, item, err);

        } else if (strcmp(item->string, "webhook") == 0) {
            rc = mitte_prefs_webhook(&copy, item, NULL, 0, 0, err);

        } else if (strcmp(item->string, "types") == 0) {
            rc = mitte_prefs_types(&copy, item, err);

        } else {
            rc = mitte_doc_fail(err, "invalid_field",
                                "unknown field \"%.64s\"", item->string);
        }
    }

    if (rc != 0) {
        return -1;
    }

    if (mitte_prefs_check(&copy) != 0) {
        return mitte_doc_fail(err, "invalid_field", "the preferences do not "
                              "hold together (a webhook enabled without a "
                              "url?)");
    }

    memcpy(p, &copy, sizeof(mitte_prefs_t));
    *rev = (uint32_t) r;
    *t_ms = t;

    return 0;
}


/* every member of a stored document is there (their values come later) */

static int
mitte_prefs_complete(const cJSON *obj, mitte_doc_error_t *err)
{
    int           i, type;
    const cJSON  *part;

    static const char  *need[][5] = {
        { "rev", NULL },
        { "t", NULL },
        { "inApp", "enabled", NULL },
        { "email", "enabled", "address", NULL },
        { "webhook", "enabled", "url", "format", "secret" },
        { "types", NULL },
    };

    for (i = 0; i < (int) (sizeof(need) / sizeof(need[0])); i++) {
        part = cJSON_GetObjectItemCaseSensitive(obj, need[i][0]);

        if (part == NULL) {
            return mitte_doc_fail(err, "invalid_field", "\"%s\" is missing",
                                  need[i][0]);
        }

        for (type = 1; type < 5 && need[i][type]; type++) {
            if (cJSON_GetObjectItemCaseSensitive(part, need[i][type])
                == NULL)
            {
                return mitte_doc_fail(err, "invalid_field", "\"%s.%s\" is "
                                      "missing", need[i][0], need[i][type]);
            }
        }
    }

    part = cJSON_GetObjectItemCaseSensitive(obj, "types");

    for (type = 0; type < MITTE_NOTIFY_N; type++) {
        if (cJSON_GetObjectItemCaseSensitive(part,
                                             mitte_notify_type_name(type))
            == NULL)
        {
            return mitte_doc_fail(err, "invalid_field", "\"types.%s\" is "
                                  "missing", mitte_notify_type_name(type));
        }
    }

    return 0;
}


static int
mitte_prefs_whole(const cJSON *item, double max, uint64_t *v)
{
    double  d;

    if (!cJSON_IsNumber(item)) {
        return -1;
    }

    d = item->valuedouble;

    if (!(d >= 0 && d <= max) || d != (double) (uint64_t) d) {
        return -1;
    }

    *v = (uint64_t) d;

    return 0;
}


int
mitte_prefs_type_on(const mitte_prefs_t *p, int type)
{
    if (type < 0 || type >= MITTE_NOTIFY_N) {
        return 0;
    }

    return (p->types & MITTE_NOTIFY_BIT(type)) != 0;
}


int
mitte_prefs_check(const mitte_prefs_t *p)
{
    mitte_url_t  u;

    if (p->inapp != 1 || p->email_enabled > 1 || p->webhook_enabled > 1
        || p->format >= MITTE_WEBHOOK_N || (p->types & ~MITTE_NOTIFY_ALL))
    {
        return -1;
    }

    if (!mitte_prefs_text(p->email, p->email_len, sizeof(p->email))
        || !mitte_prefs_text(p->url, p->url_len, sizeof(p->url))
        || !mitte_prefs_text(p->secret, p->secret_len, sizeof(p->secret)))
    {
        return -1;
    }

    if (p->email_len != 0 && !mitte_email_valid(p->email, p->email_len)) {
        return -1;
    }

    if (p->url_len != 0 && mitte_url_parse(p->url, p->url_len, &u) != 0) {
        return -1;
    }

    if (p->secret_len != 0
        && !mitte_webhook_secret_valid(p->secret, p->secret_len))
    {
        return -1;
    }

    if (p->webhook_enabled && p->url_len == 0) {
        return -1;
    }

    return 0;
}


static int
mitte_prefs_inapp(mitte_prefs_t *p, const cJSON *obj, mitte_doc_error_t *err)
{
    const cJSON  *item;

    if (!cJSON_IsObject(obj)) {
        return mitte_doc_fail(err, "invalid_field", "inApp must be an "
                              "object");
    }

    for (item = obj->child; item != NULL; item = item->next) {

        if (strcmp(item->string, "enabled") != 0) {
            return mitte_doc_fail(err, "invalid_field", "unknown field "
                                  "\"inApp.%.64s\"", item->string);
        }

        if (!cJSON_IsBool(item)) {
            return mitte_doc_fail(err, "invalid_field", "inApp.enabled "
                                  "must be a boolean");
        }

        if (!cJSON_IsTrue(item)) {
            return mitte_doc_fail(err, "invalid_field", "inApp.enabled "
                                  "cannot be false: in-app notifications "
                                  "are always on");
        }
    }

    p->inapp = 1;

    return 0;
}


static int
mitte_prefs_email(mitte_prefs_t *p, const cJSON *obj, mitte_doc_error_t *err)
{
    size_t        n;
    const cJSON  *item;

    if (!cJSON_IsObject(obj)) {
        return mitte_doc_fail(err, "invalid_field", "email must be an "
                              "object");
    }

    for (item = obj->child; item != NULL; item = item->next) {

        if (strcmp(item->string, "enabled") == 0) {
            if (!cJSON_IsBool(item)) {
                return mitte_doc_fail(err, "invalid_field", "email.enabled "
                                      "must be a boolean");
            }

            p->email_enabled = cJSON_IsTrue(item) ? 1 : 0;

        } else if (strcmp(item->string, "address") == 0) {
            if (cJSON_IsNull(item)) {
                n = 0;

            } else if (cJSON_IsString(item)) {
                n = strlen(item->valuestring);

                if (n != 0 && !mitte_email_valid(item->valuestring, n)) {
                    return mitte_doc_fail(err, "invalid_field",
                                          "email.address must be an "
                                          "address local@domain of at "
                                          "most %d bytes, or null",
                                          MITTE_EMAIL_MAX);
                }

            } else {
                return mitte_doc_fail(err, "invalid_field", "email.address "
                                      "must be a string or null");
            }

            memset(p->email, 0, sizeof(p->email));
            memcpy(p->email, item->valuestring ? item->valuestring : "", n);
            p->email_len = (uint16_t) n;

        } else {
            return mitte_doc_fail(err, "invalid_field", "unknown field "
                                  "\"email.%.64s\"", item->string);
        }
    }

    return 0;
}


static int
mitte_prefs_webhook(mitte_prefs_t *p, const cJSON *obj,
    const mitte_cidr_t *allow, size_t nallow, int judge,
    mitte_doc_error_t *err)
{
    int           format;
    size_t        n;
    const cJSON  *item;

    if (!cJSON_IsObject(obj)) {
        return mitte_doc_fail(err, "invalid_field", "webhook must be an "
                              "object");
    }

    for (item = obj->child; item != NULL; item = item->next) {

        if (strcmp(item->string, "enabled") == 0) {
            if (!cJSON_IsBool(item)) {
                return mitte_doc_fail(err, "invalid_field",
                                      "webhook.enabled must be a boolean");
            }

            p->webhook_enabled = cJSON_IsTrue(item) ? 1 : 0;

        } else if (strcmp(item->string, "url") == 0) {
            if (mitte_prefs_url(p, item, allow, nallow, judge, err) != 0) {
                return -1;
            }

        } else if (strcmp(item->string, "format") == 0) {
            format = cJSON_IsString(item)
                     ? mitte_webhook_format_parse(item->valuestring,
                                                  strlen(item->valuestring))
                     : -1;

            if (format < 0) {
                return mitte_doc_fail(err, "invalid_field", "webhook.format "
                                      "must be \"json\", \"slack\" or "
                                      "\"discord\"");
            }

            p->format = (uint8_t) format;

        } else if (strcmp(item->string, "secret") == 0) {
            if (cJSON_IsNull(item)) {
                memset(p->secret, 0, sizeof(p->secret));
                p->secret_len = 0;
                continue;
            }

            n = cJSON_IsString(item) ? strlen(item->valuestring) : 0;

            if (n == 0 || n > MITTE_WEBHOOK_SECRET_MAX) {
                return mitte_doc_fail(err, "invalid_field", "webhook.secret "
                                      "must be a string of 1 to %d bytes, "
                                      "or null", MITTE_WEBHOOK_SECRET_MAX);
            }

            if (!mitte_webhook_secret_valid(item->valuestring, n)) {
                return mitte_doc_fail(err, "invalid_field", "webhook.secret "
                                      "must hold base64 after \"whsec_\"");
            }

            memset(p->secret, 0, sizeof(p->secret));
            memcpy(p->secret, item->valuestring, n);
            p->secret_len = (uint16_t) n;

        } else if (strcmp(item->string, "secretSet") == 0) {
            /* read-only, so that a GET document can be sent back */
            if (!cJSON_IsBool(item)) {
                return mitte_doc_fail(err, "invalid_field", "webhook."
                                      "secretSet must be a boolean");
            }

        } else {
            return mitte_doc_fail(err, "invalid_field", "unknown field "
                                  "\"webhook.%.64s\"", item->string);
        }
    }

    return 0;
}


static int
mitte_prefs_url(mitte_prefs_t *p, const cJSON *item,
    const mitte_cidr_t *allow, size_t nallow, int judge,
    mitte_doc_error_t *err)
{
    size_t                   n;
    const char              *s;
    mitte_url_t              u;
    struct sockaddr_storage  sa;

    if (cJSON_IsNull(item)) {
        n = 0;
        s = "";

    } else if (cJSON_IsString(item)) {
        s = item->valuestring;
        n = strlen(s);

    } else {
        return mitte_doc_fail(err, "invalid_field", "webhook.url must be a "
                              "string or null");
    }

    if (n != 0) {
        if (mitte_url_parse(s, n, &u) != 0) {
            return mitte_doc_fail(err, "invalid_field", "webhook.url must "
                                  "be an absolute http or https URL: %s",
                                  u.error);
        }

        if (judge
            && mitte_host_literal(s + u.host, u.host_len, &sa) == 1
            && mitte_addr_blocked((struct sockaddr *) &sa, allow, nallow))
        {
            return mitte_doc_fail(err, "invalid_field", "webhook.url must "
                                  "not point to a blocked address (a "
                                  "private, local or reserved one)");
        }
    }

    memset(p->url, 0, sizeof(p->url));
    memcpy(p->url, s, n);
    p->url_len = (uint16_t) n;

    return 0;
}


static int
mitte_prefs_types(mitte_prefs_t *p, const cJSON *obj, mitte_doc_error_t *err)
{
    int           type;
    const cJSON  *item;

    if (!cJSON_IsObject(obj)) {
        return mitte_doc_fail(err, "invalid_field", "types must be an "
                              "object");
    }

    for (item = obj->child; item != NULL; item = item->next) {
        type = mitte_notify_type_parse(item->string, strlen(item->string));

        if (type < 0) {
            return mitte_doc_fail(err, "invalid_field", "unknown type "
                                  "\"types.%.64s\"", item->string);
        }

        if (!cJSON_IsBool(item)) {
            return mitte_doc_fail(err, "invalid_field", "types.%s must be "
                                  "a boolean", mitte_notify_type_name(type));
        }

        if (cJSON_IsTrue(item)) {
            p->types |= (uint16_t) MITTE_NOTIFY_BIT(type);

        } else {
            p->types &= (uint16_t) ~MITTE_NOTIFY_BIT(type);
        }
    }

    return 0;
}


/* len bytes without a NUL, then NULs to the end of the field */

static int
mitte_prefs_text(const char *s, size_t len, size_t size)
{
    size_t  i;

    if (len >= size || memchr(s, '\0', len) != NULL) {
        return 0;
    }

    for (i = len; i < size; i++) {
        if (s[i] != '\0') {
            return 0;
        }
    }

    return 1;
}


static void
mitte_prefs_bool(mitte_out_t *o, int v)
{
    mitte_out_str(o, v ? "true" : "false");
}


/*
 * A JSON string, or null when empty (or longer than its field of "size"
 * bytes can be); written whole or not at all.
 */

static void
mitte_prefs_string(mitte_out_t *o, const char *s, size_t len, size_t size)
{
    if (len == 0 || len >= size) {
        mitte_out_str(o, "null");
        return;
    }

    mitte_out_json_str(o, s, len);
}
