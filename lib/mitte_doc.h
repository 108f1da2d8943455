/*
 * Copyright (C) ngx_mitte_module authors
 *
 * Parsing and validation of the operator API's request documents (cJSON).
 * Nothing here touches the zone: the glue applies a document only once it
 * parsed whole, so a bad document changes nothing.
 */

#ifndef MITTE_DOC_H
#define MITTE_DOC_H

#include <stddef.h>
#include <stdint.h>

#include "mitte_util.h"


typedef struct {
    const char     *code;           /* "invalid_json", "invalid_field" */
    char            message[192];   /* a human sentence */
} mitte_doc_error_t;


typedef struct {
    uint32_t        hour;           /* hour index */
    uint32_t        requests;
    uint32_t        failures;
} mitte_doc_hour_t;


/* PUT /mitte-admin/endpoints/{slug}: {"name", "user", "hours": [...]} */
typedef struct {
    unsigned        has_name:1;     /* "name" given (a string or null) */
    unsigned        has_user:1;
    size_t          name_len;       /* 0: null or "" (back to the slug) */
    size_t          user_len;
    char            name[MITTE_NAME_MAX + 1];
    char            user[MITTE_USER_MAX + 1];
    size_t          nhours;
    mitte_doc_hour_t *hours;        /* malloc()ed, NULL when nhours is 0 */
} mitte_endpoint_doc_t;


/* PUT /mitte-admin/users/{id}: {"plan", "trialEndsAt", "email"} */
typedef struct {
    unsigned        has_plan:1;
    unsigned        has_trial:1;
    unsigned        has_email:1;
    int             plan;           /* mitte_plan_e */
    int64_t         trial_ends;     /* unix seconds, 0: null (none) */
    size_t          email_len;      /* 0: null */
    char            email[MITTE_EMAIL_MAX + 1];
} mitte_user_doc_t;


/*
 * Both return 0, or -1 with "err" filled: invalid_json when the body is not
 * JSON or not an object; invalid_field naming the field for an unknown
 * field, a wrong type, or a bad value (a name over 128 bytes, a user over
 * 64, an hour that is neither ISO-8601 nor a non-negative number, counts
 * that are not whole numbers in 0..2^32-1, failures above requests, a plan
 * other than free/pro/trial, an invalid email).
 * "hour" accepts ISO-8601 text or unix seconds; the hour index is
 * floor(seconds / 3600).
 */
int mitte_endpoint_doc_parse(const char *body, size_t len,
    mitte_endpoint_doc_t *doc, mitte_doc_error_t *err);
void mitte_endpoint_doc_free(mitte_endpoint_doc_t *doc);

int mitte_user_doc_parse(const char *body, size_t len, mitte_user_doc_t *doc,
    mitte_doc_error_t *err);


struct cJSON;

/*
 * The same from a parsed object; "entry": it is a cluster stream entry
 * ({"k":"m","u":"<id>","t":<ms>, the fields}), whose "k", "u" and "t"
 * are skipped.
 */
int mitte_user_doc_from(const struct cJSON *obj, int entry,
    mitte_user_doc_t *doc, mitte_doc_error_t *err);

/*
 * One field of the user's hash in Redis, as the module writes it: "plan"
 * (free, pro, trial), "trialEndsAt" (unix seconds, "0": none), "email"
 * ("": none), "t" (ms, read and ignored). 0 with *doc updated (has_...
 * set), or -1 for an unknown field or a bad value.
 */
int mitte_user_meta_field(mitte_user_doc_t *doc, const char *name,
    size_t nlen, const char *value, size_t vlen);

/* members of one object at most (no document here has as many) */
#define MITTE_DOC_MEMBERS_MAX  64

/*
 * Parses a body that must be one JSON object, as the parsers above and
 * mitte_prefs_patch() read it (the body need not be NUL-terminated). NULL
 * with "err" filled: invalid_json for anything but an object, for text
 * that is not valid UTF-8 or holds a raw control character in a string,
 * for an object with a key twice or more than MITTE_DOC_MEMBERS_MAX
 * members; invalid_field for a "\u0000" in it. The caller cJSON_Delete()s
 * the object.
 */
struct cJSON *mitte_doc_parse(const char *body, size_t len,
    mitte_doc_error_t *err);

/*
 * The "message" string of a JSON answer (Resend's errors are
 * {"statusCode", "name", "message"}): copied into buf, cut to size - 1
 * bytes, NUL-terminated; returns its length. 0 (buf "") when the body is
 * not a JSON object with a "message" string, or the string is empty.
 * The body need not be NUL-terminated.
 */
size_t mitte_reply_message(const char *body, size_t len, char *buf,
    size_t size);

/* fills "err" with the code and a printf-formatted message; returns -1 */
int mitte_doc_fail(mitte_doc_error_t *err, const char *code,
    const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

#endif /* MITTE_DOC_H */
