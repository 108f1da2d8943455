/*
 * Copyright (C) ngx_mitte_module authors
 *
 * A user's notification preferences (SPEC section 3): the record kept in
 * the zone, the partial updates of PUT and PATCH, the GET document.
 */

#ifndef MITTE_PREFS_H
#define MITTE_PREFS_H

#include <stddef.h>
#include <stdint.h>

#include "mitte_addr.h"
#include "mitte_doc.h"
#include "mitte_notify.h"
#include "mitte_url.h"
#include "mitte_util.h"


/* the text fields' sizes: the longest value, a NUL, padding to 4 bytes */
#define MITTE_PREFS_EMAIL_SIZE   (MITTE_EMAIL_MAX + 2)
#define MITTE_PREFS_URL_SIZE     (MITTE_URL_MAX + 4)
#define MITTE_PREFS_SECRET_SIZE  (MITTE_WEBHOOK_SECRET_MAX + 4)

/* sizeof(mitte_prefs_t): fixed, no pointers, no implicit padding */
#define MITTE_PREFS_SIZE         2580


typedef struct {
    uint8_t         inapp;              /* always 1 */
    uint8_t         email_enabled;
    uint8_t         webhook_enabled;
    uint8_t         format;             /* mitte_webhook_format_e */
    uint16_t        types;              /* MITTE_NOTIFY_BIT()s of those on */
    uint16_t        email_len;          /* 0: none */
    uint16_t        url_len;            /* 0: none */
    uint16_t        secret_len;         /* 0: none */
    char            email[MITTE_PREFS_EMAIL_SIZE];     /* NUL-terminated */
    char            url[MITTE_PREFS_URL_SIZE];         /* NUL-terminated */
    char            secret[MITTE_PREFS_SECRET_SIZE];   /* NUL-terminated */
} mitte_prefs_t;


/*
 * The preferences of a new user: in-app on; email on, to "email" (the
 * user's mitte_user_email) when given, else to no address; webhook off,
 * no url, format json, no secret; all six types on. Returns 0, or -1 when
 * an email was given that is not a valid address (then none is set).
 */
int mitte_prefs_default(mitte_prefs_t *p, const char *email,
    size_t email_len);

/*
 * Applies a PUT or PATCH body, a partial document:
 *   {"inApp": {"enabled": true},
 *    "email": {"enabled": bool, "address": "local@domain" | null},
 *    "webhook": {"enabled": bool, "url": "http(s)://..." | null,
 *                "format": "json" | "slack" | "discord",
 *                "secret": "..." | null},
 *    "types": {"ANOMALY_DETECTED": bool, ...}}
 * any part of which may be left out. "" counts as null for address and
 * url (not for secret: 1..256 bytes, a "whsec_" one holding base64). A url
 * whose host is an IP literal in a blocked range (mitte_addr_blocked)
 * and not in "allow" is refused; host names are judged when connecting.
 * The result must not have the webhook enabled without a url.
 * Returns 0 with *p updated, or -1 with *p unchanged and "err" filled:
 * invalid_json for a body that is not a JSON object, invalid_field with a
 * message naming the field otherwise.
 */
int mitte_prefs_patch(mitte_prefs_t *p, const char *body, size_t len,
    const mitte_cidr_t *allow, size_t nallow, mitte_doc_error_t *err);

/*
 * The GET document, in SPEC's key order, without spaces:
 *   {"inApp":{"enabled":true},"email":{"enabled":true,"address":null},
 *    "webhook":{"enabled":false,"url":null,"format":"json",
 *    "secretSet":false},"types":{"ANOMALY_DETECTED":true,...}}
 * (never the secret). Returns the length the whole document needs, as
 * snprintf; when that is >= size, buf holds a NUL-terminated prefix,
 * possibly shorter than size - 1.
 */
size_t mitte_prefs_json(const mitte_prefs_t *p, char *buf, size_t size);

/* 1 when the type is on (for email and webhook), else 0 */
int mitte_prefs_type_on(const mitte_prefs_t *p, int type);

/*
 * 0 when a record read back (state file, Redis) is one mitte_prefs_patch()
 * could have made: lengths in bounds, text followed by NULs only and
 * holding none, a known format, no unknown type bits, a valid address,
 * url and secret, no webhook enabled without a url; else -1. The url is
 * not judged against the allowlist, which may have changed since.
 */
int mitte_prefs_check(const mitte_prefs_t *p);


/*
 * Cluster mode's copy of a document, as kept in Redis and sent in the
 * event stream: the GET document with the secret in place of secretSet
 * (another instance sends the webhooks), preceded by its revision and
 * update time:
 *   {"rev":3,"t":1767225600000,"inApp":{"enabled":true},
 *    "email":{"enabled":true,"address":null},
 *    "webhook":{"enabled":false,"url":null,"format":"json",
 *               "secret":null},
 *    "types":{"ANOMALY_DETECTED":true,...}}
 * Returns the length needed, as mitte_prefs_json().
 */
#define MITTE_PREFS_REV_MAX  0x7fffffff

size_t mitte_prefs_store_json(const mitte_prefs_t *p, uint32_t rev,
    uint64_t t_ms, char *buf, size_t size);

/*
 * Reads such a document (a cJSON object, or text): every member must be
 * there ("rev" 1..MITTE_PREFS_REV_MAX, "t" a whole number of ms, the four
 * parts with all their fields, all six types) and valid as
 * mitte_prefs_check() has it (the url is not judged against an
 * allowlist: the instance that stored it did). Returns 0 with *p, *rev,
 * *t_ms filled, or -1 with "err" filled and *p unchanged.
 */
int mitte_prefs_store_from(const struct cJSON *obj, mitte_prefs_t *p,
    uint32_t *rev, uint64_t *t_ms, mitte_doc_error_t *err);
int mitte_prefs_store_parse(const char *text, size_t len, mitte_prefs_t *p,
    uint32_t *rev, uint64_t *t_ms, mitte_doc_error_t *err);

#endif /* MITTE_PREFS_H */
