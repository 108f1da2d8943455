/*
 * Copyright (C) ngx_mitte_module authors
 */


#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "mitte_time.h"
#include "mitte_doc.h"


/* the largest unix second whose hour index still fits 32 bits */
#define MITTE_DOC_SEC_MAX  (((int64_t) UINT32_MAX + 1) * 3600 - 1)


static int mitte_doc_whole(const cJSON *item, double max, uint64_t *value);
static int mitte_doc_time(const cJSON *item, int64_t *sec);
static int mitte_doc_string(const cJSON *item, size_t max, char *dst,
    size_t *len);
static int mitte_doc_text_ok(const unsigned char *p, size_t len);
static int mitte_doc_keys_ok(const cJSON *item);
static int mitte_doc_hours(const cJSON *arr, mitte_endpoint_doc_t *doc,
    mitte_doc_error_t *err);


int
mitte_endpoint_doc_parse(const char *body, size_t len,
    mitte_endpoint_doc_t *doc, mitte_doc_error_t *err)
{
    cJSON  *root, *item;

    memset(doc, 0, sizeof(mitte_endpoint_doc_t));

    root = mitte_doc_parse(body, len, err);
    if (root == NULL) {
        return -1;
    }

    for (item = root->child; item != NULL; item = item->next) {

        if (strcmp(item->string, "name") == 0) {
            if (mitte_doc_string(item, MITTE_NAME_MAX, doc->name,
                                 &doc->name_len)
                != 0)
            {
                mitte_doc_fail(err, "invalid_field", "name must be a string "
                               "of at most %d bytes without control "
                               "characters, or null", MITTE_NAME_MAX);
                goto failed;
            }

            doc->has_name = 1;

        } else if (strcmp(item->string, "user") == 0) {
            if (mitte_doc_string(item, MITTE_USER_MAX, doc->user,
                                 &doc->user_len)
                != 0)
            {
                mitte_doc_fail(err, "invalid_field", "user must be a string "
                               "of at most %d bytes without control "
                               "characters, or null", MITTE_USER_MAX);
                goto failed;
            }

            doc->has_user = 1;

        } else if (strcmp(item->string, "hours") == 0) {
            if (mitte_doc_hours(item, doc, err) != 0) {
                goto failed;
            }

        } else {
            mitte_doc_fail(err, "invalid_field", "unknown field \"%.64s\"",
                           item->string);
            goto failed;
        }
    }

    cJSON_Delete(root);

    return 0;

failed:

    cJSON_Delete(root);
    mitte_endpoint_doc_free(doc);
    memset(doc, 0, sizeof(mitte_endpoint_doc_t));

    return -1;
}


void
mitte_endpoint_doc_free(mitte_endpoint_doc_t *doc)
{
    free(doc->hours);
    doc->hours = NULL;
    doc->nhours = 0;
}


int
mitte_user_doc_parse(const char *body, size_t len, mitte_user_doc_t *doc,
    mitte_doc_error_t *err)
{
    int     rc;
    cJSON  *root;

    memset(doc, 0, sizeof(mitte_user_doc_t));

    root = mitte_doc_parse(body, len, err);
    if (root == NULL) {
        return -1;
    }

    rc = mitte_user_doc_from(root, 0, doc, err);

    cJSON_Delete(root);

    return rc;
}


int
mitte_user_doc_from(const cJSON *obj, int entry, mitte_user_doc_t *doc,
    mitte_doc_error_t *err)
{
    int           plan;
    const cJSON  *item;

    memset(doc, 0, sizeof(mitte_user_doc_t));

    if (!cJSON_IsObject(obj)) {
        return mitte_doc_fail(err, "invalid_json", "the user must be an "
                              "object");
    }

    /*
     * As with the user variables, an empty string counts as not set:
     * "" and null both bring back the default.
     */

    for (item = obj->child; item != NULL; item = item->next) {

        if (entry
            && (strcmp(item->string, "k") == 0
                || strcmp(item->string, "u") == 0
                || strcmp(item->string, "t") == 0))
        {
            continue;
        }

        if (strcmp(item->string, "plan") == 0) {
            if (cJSON_IsNull(item)
                || (cJSON_IsString(item) && item->valuestring[0] == '\0'))
            {
                plan = MITTE_PLAN_FREE;

            } else if (cJSON_IsString(item)) {
                plan = mitte_plan_parse(item->valuestring,
                                        strlen(item->valuestring));

            } else {
                plan = -1;
            }

            if (plan < 0) {
                mitte_doc_fail(err, "invalid_field", "plan must be \"free\", "
                               "\"pro\", \"trial\" or null");
                goto failed;
            }

            doc->has_plan = 1;
            doc->plan = plan;

        } else if (strcmp(item->string, "trialEndsAt") == 0) {
            doc->trial_ends = 0;

            if (!cJSON_IsNull(item)
                && !(cJSON_IsString(item) && item->valuestring[0] == '\0')
                && mitte_doc_time(item, &doc->trial_ends) != 0)
            {
                mitte_doc_fail(err, "invalid_field", "trialEndsAt must be "
                               "an ISO-8601 time, unix seconds or null");
                goto failed;
            }

            doc->has_trial = 1;

        } else if (strcmp(item->string, "email") == 0) {
            doc->email_len = 0;
            doc->email[0] = '\0';

            if (cJSON_IsString(item)) {
                if (item->valuestring[0] != '\0'
                    && !mitte_email_valid(item->valuestring,
                                          strlen(item->valuestring)))
                {
                    mitte_doc_fail(err, "invalid_field", "email must be an "
                                   "address local@domain, or null");
                    goto failed;
                }

                (void) mitte_doc_string(item, MITTE_EMAIL_MAX, doc->email,
                                        &doc->email_len);

            } else if (!cJSON_IsNull(item)) {
                mitte_doc_fail(err, "invalid_field", "email must be a string "
                               "or null");
                goto failed;
            }

            doc->has_email = 1;

        } else {
            mitte_doc_fail(err, "invalid_field", "unknown field \"%.64s\"",
                           item->string);
            goto failed;
        }
    }

    return 0;

failed:

    memset(doc, 0, sizeof(mitte_user_doc_t));

    return -1;
}


int
mitte_user_meta_field(mitte_user_doc_t *doc, const char *name, size_t nlen,
    const char *value, size_t vlen)
{
    int       plan;
    size_t    i;
    uint64_t  v;

#define MITTE_IS(s)  (nlen == sizeof(s) - 1 && memcmp(name, s, nlen) == 0)

    if (MITTE_IS("plan")) {
        plan = mitte_plan_parse(value, vlen);

        if (plan < 0) {
            return -1;
        }

        doc->plan = plan;
        doc->has_plan = 1;

        return 0;
    }

    if (MITTE_IS("email")) {
        if (vlen > MITTE_EMAIL_MAX
            || (vlen && !mitte_email_valid(value, vlen)))
        {
            return -1;
        }

        memcpy(doc->email, value, vlen);
        doc->email[vlen] = '\0';
        doc->email_len = vlen;
        doc->has_email = 1;

        return 0;
    }

    if (!MITTE_IS("trialEndsAt") && !MITTE_IS("t")) {
        return -1;
    }

#undef MITTE_IS

    if (vlen == 0 || vlen > 16) {
        return -1;
    }

    v = 0;

    for (i = 0; i < vlen; i++) {
        if (value[i] < '0' || value[i] > '9') {
            return -1;
        }

        v = v * 10 + (uint64_t) (value[i] - '0');
    }

    if (nlen == 1) {
        /* "t" */
        return 0;
    }

    if (v > (uint64_t) MITTE_DOC_SEC_MAX) {
        return -1;
    }

    doc->trial_ends = (int64_t) v;
    doc->has_trial = 1;

    return 0;
}


/*
 * Parses a body that must be one JSON object. cJSON reads NUL-terminated
 * text (and may look one byte past a length), so the body is copied; a NUL
 * inside the body, raw or as "\u0000", is refused, as cJSON strings would
 * silently end there.
 */

cJSON *
mitte_doc_parse(const char *body, size_t len, mitte_doc_error_t *err)
{
    char        *copy;
    size_t       i;
    cJSON       *root;
    const char  *end;

    if (body == NULL || len == 0 || memchr(body, '\0', len) != NULL
        || mitte_doc_text_ok((const unsigned char *) body, len) != 0)
    {
        goto invalid;
    }

    for (i = 0; i < len; i++) {
        if (body[i] != ' ' && body[i] != '\t' && body[i] != '\n'
            && body[i] != '\r')
        {
            break;
        }
    }

    if (i == len || body[i] != '{') {
        goto invalid;
    }

    copy = malloc(len + 1);
    if (copy == NULL) {
        mitte_doc_fail(err, "invalid_json", "out of memory");
        return NULL;
    }

    memcpy(copy, body, len);
    copy[len] = '\0';

    end = NULL;
    root = cJSON_ParseWithLengthOpts(copy, len + 1, &end, 0);

    if (root != NULL) {
        /* only white space may follow the object */

        for ( /* void */ ; end != NULL && *end != '\0'; end++) {
            if (*end != ' ' && *end != '\t' && *end != '\n' && *end != '\r') {
                cJSON_Delete(root);
                root = NULL;
                break;
            }
        }
    }

    free(copy);

    if (root == NULL || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        goto invalid;
    }

    if (mitte_doc_keys_ok(root) != 0) {
        cJSON_Delete(root);
        mitte_doc_fail(err, "invalid_json", "an object has a key twice, or "
                       "more than %d members", MITTE_DOC_MEMBERS_MAX);
        return NULL;
    }

    for (i = 0; i + 5 < len; i++) {
        if (body[i] != '\\') {
            continue;
        }

        if (body[i + 1] == 'u' && memcmp(body + i + 2, "0000", 4) == 0) {
            cJSON_Delete(root);
            mitte_doc_fail(err, "invalid_field",
                           "strings must not contain \\u0000");
            return NULL;
        }

        i++;
    }

    return root;

invalid:

    mitte_doc_fail(err, "invalid_json", "the body must be a JSON object");

    return NULL;
}


int
mitte_doc_fail(mitte_doc_error_t *err, const char *code, const char *fmt,
    ...)
{
    va_list  args;

    err->code = code;

    va_start(args, fmt);
    (void) vsnprintf(err->message, sizeof(err->message), fmt, args);
    va_end(args);

    return -1;
}


/* a whole number in 0..max */

static int
mitte_doc_whole(const cJSON *item, double max, uint64_t *value)
{
    double  v;

    if (!cJSON_IsNumber(item)) {
        return -1;
    }

    v = item->valuedouble;

    if (!isfinite(v) || v < 0 || v > max || floor(v) != v) {
        return -1;
    }

    *value = (uint64_t) v;

    return 0;
}


/* an ISO-8601 string or unix seconds (a number or a string of digits) */

static int
mitte_doc_time(const cJSON *item, int64_t *sec)
{
    int64_t   t;
    uint64_t  v;

    if (cJSON_IsString(item)) {
        if (mitte_time_parse(item->valuestring, strlen(item->valuestring),
                             &t)
            != 0 || t < 0 || t > MITTE_DOC_SEC_MAX)
        {
            return -1;
        }

        *sec = t;
        return 0;
    }

    if (mitte_doc_whole(item, (double) MITTE_DOC_SEC_MAX, &v) != 0) {
        return -1;
    }

    *sec = (int64_t) v;

    return 0;
}


/* a string of at most "max" bytes or null, copied NUL-terminated */

static int
mitte_doc_string(const cJSON *item, size_t max, char *dst, size_t *len)
{
    size_t         n, i;
    unsigned char  c;

    if (cJSON_IsNull(item)) {
        dst[0] = '\0';
        *len = 0;
        return 0;
    }

    if (!cJSON_IsString(item)) {
        return -1;
    }

    n = strlen(item->valuestring);

    if (n > max) {
        return -1;
    }

    for (i = 0; i < n; i++) {
        c = (unsigned char) item->valuestring[i];

        if ((c < 0x20 && c != '\t') || c == 0x7f) {
            /* no CR, LF or other control character (a tab, as in a header) */
            return -1;
        }
    }

    memcpy(dst, item->valuestring, n + 1);
    *len = n;

    return 0;
}


static int
mitte_doc_hours(const cJSON *arr, mitte_endpoint_doc_t *doc,
    mitte_doc_error_t *err)
{
    int                has_hour, has_req;
    size_t             i, n;
    int64_t            sec;
    uint64_t           req, fail;
    const cJSON       *h, *item;
    mitte_doc_hour_t  *dh;

    if (!cJSON_IsArray(arr)) {
        return mitte_doc_fail(err, "invalid_field",
                              "hours must be an array");
    }

    /* a repeated "hours" replaces the one before */

    mitte_endpoint_doc_free(doc);

    n = (size_t) cJSON_GetArraySize(arr);

    if (n == 0) {
        return 0;
    }

    doc->hours = calloc(n, sizeof(mitte_doc_hour_t));
    if (doc->hours == NULL) {
        return mitte_doc_fail(err, "invalid_field", "hours: out of memory");
    }

    doc->nhours = n;

    for (i = 0, h = arr->child; h != NULL; i++, h = h->next) {
        dh = &doc->hours[i];

        if (!cJSON_IsObject(h)) {
            return mitte_doc_fail(err, "invalid_field",
                                  "hours[%zu] must be an object", i);
        }

        has_hour = 0;
        has_req = 0;
        fail = 0;
        req = 0;

        for (item = h->child; item != NULL; item = item->next) {

            if (strcmp(item->string, "hour") == 0) {
                if (mitte_doc_time(item, &sec) != 0) {
                    return mitte_doc_fail(err, "invalid_field",
                                          "hours[%zu].hour must be an "
                                          "ISO-8601 time or unix seconds",
                                          i);
                }

                dh->hour = (uint32_t) (sec / 3600);
                has_hour = 1;

            } else if (strcmp(item->string, "requests") == 0) {
                if (mitte_doc_whole(item, (double) UINT32_MAX, &req) != 0) {
                    return mitte_doc_fail(err, "invalid_field",
                                          "hours[%zu].requests must be a "
                                          "whole number in 0..4294967295",
                                          i);
                }

                has_req = 1;

            } else if (strcmp(item->string, "failures") == 0) {
                if (mitte_doc_whole(item, (double) UINT32_MAX, &fail) != 0) {
                    return mitte_doc_fail(err, "invalid_field",
                                          "hours[%zu].failures must be a "
                                          "whole number in 0..4294967295",
                                          i);
                }

            } else {
                return mitte_doc_fail(err, "invalid_field",
                                      "unknown field \"hours[%zu].%.64s\"",
                                      i, item->string);
            }
        }

        if (!has_hour || !has_req) {
            return mitte_doc_fail(err, "invalid_field",
                                  "hours[%zu].%s is required", i,
                                  has_hour ? "requests" : "hour");
        }

        if (fail > req) {
            return mitte_doc_fail(err, "invalid_field",
                                  "hours[%zu].failures must not exceed "
                                  "requests", i);
        }

        dh->requests = (uint32_t) req;
        dh->failures = (uint32_t) fail;
    }

    return 0;
}


size_t
mitte_reply_message(const char *body, size_t len, char *buf, size_t size)
{
    size_t   n;
    cJSON   *doc, *msg;

    if (size == 0) {
        return 0;
    }

    buf[0] = '\0';

    if (len == 0) {
        return 0;
    }

    doc = cJSON_ParseWithLength(body, len);
    if (doc == NULL) {
        return 0;
    }

    n = 0;
    msg = cJSON_GetObjectItemCaseSensitive(doc, "message");

    if (cJSON_IsObject(doc) && cJSON_IsString(msg)) {
        /* a "\u0000" ends the text, as it would end it in C */
        n = strlen(msg->valuestring);

        if (n > size - 1) {
            n = size - 1;
        }

        memcpy(buf, msg->valuestring, n);
        buf[n] = '\0';
    }

    cJSON_Delete(doc);

    return n;
}


/*
 * Strict JSON text, before cJSON reads it: valid UTF-8 (no overlong form,
 * surrogate or code point past U+10FFFF) and no raw control character
 * inside a string (JSON wants them escaped); 0 or -1.
 */

static int
mitte_doc_text_ok(const unsigned char *p, size_t len)
{
    int       in_string;
    size_t    i, k, n;
    uint32_t  cp, min;

    in_string = 0;

    for (i = 0; i < len; /* void */) {

        if (p[i] < 0x80) {
            if (in_string) {
                if (p[i] < 0x20) {
                    return -1;
                }

                if (p[i] == '\\') {
                    /* the escaped byte: ASCII in a valid text */
                    i += 2;
                    continue;
                }

                if (p[i] == '"') {
                    in_string = 0;
                }

            } else if (p[i] == '"') {
                in_string = 1;
            }

            i++;
            continue;
        }

        if (p[i] >= 0xc2 && p[i] <= 0xdf) {
            n = 1;
            cp = p[i] & 0x1f;
            min = 0x80;

        } else if (p[i] >= 0xe0 && p[i] <= 0xef) {
            n = 2;
            cp = p[i] & 0x0f;
            min = 0x800;

        } else if (p[i] >= 0xf0 && p[i] <= 0xf4) {
            n = 3;
            cp = p[i] & 0x07;
            min = 0x10000;

        } else {
            return -1;
        }

        if (len - i <= n) {
            return -1;
        }

        for (k = 1; k <= n; k++) {
            if ((p[i + k] & 0xc0) != 0x80) {
                return -1;
            }

            cp = (cp << 6) | (p[i + k] & 0x3f);
        }

        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
            return -1;
        }

        i += n + 1;
    }

    return 0;
}


/*
 * No object with a key twice (cJSON keeps both, and each reader took
 * another: the first, or the last) or with more members than any
 * document here has; 0 or -1.
 */

static int
mitte_doc_keys_ok(const cJSON *item)
{
    size_t        n;
    const cJSON  *a, *b;

    for ( /* void */ ; item != NULL; item = item->next) {

        if (cJSON_IsObject(item)) {
            n = 0;

            for (a = item->child; a != NULL; a = a->next) {
                if (++n > MITTE_DOC_MEMBERS_MAX) {
                    return -1;
                }

                for (b = item->child; b != a; b = b->next) {
                    if (strcmp(a->string, b->string) == 0) {
                        return -1;
                    }
                }
            }
        }

        if ((cJSON_IsObject(item) || cJSON_IsArray(item))
            && mitte_doc_keys_ok(item->child) != 0)
        {
            return -1;
        }
    }

    return 0;
}
