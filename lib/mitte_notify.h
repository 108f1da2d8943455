/*
 * Copyright (C) ngx_mitte_module authors
 *
 * Notification types, their titles and messages (SPEC section 4), and the
 * outbound webhook bodies and signatures (SPEC section 5).
 *
 * The message functions write like snprintf: at most size - 1 bytes and a
 * NUL (when size is not 0), and return the length the whole text needs.
 * Names are length-delimited and copied as they are, whatever their bytes:
 * whoever puts a message into JSON or HTML escapes it there.
 */

#ifndef MITTE_NOTIFY_H
#define MITTE_NOTIFY_H

#include <stddef.h>
#include <stdint.h>

#include "mitte_anomaly.h"


/* the order of the preferences document; kept in the zone and state */
typedef enum {
    MITTE_NOTIFY_ANOMALY_DETECTED = 0,
    MITTE_NOTIFY_QUOTA_WARNING,
    MITTE_NOTIFY_QUOTA_EXCEEDED,
    MITTE_NOTIFY_ENDPOINT_DOWN,
    MITTE_NOTIFY_ENDPOINT_RECOVERED,
    MITTE_NOTIFY_TRIAL_ENDING,
    MITTE_NOTIFY_N
} mitte_notify_type_e;

/* a type's bit in the preferences' mask */
#define MITTE_NOTIFY_BIT(type)   (1U << (type))
#define MITTE_NOTIFY_ALL         ((1U << MITTE_NOTIFY_N) - 1)


/* outbound webhook formats; kept in the zone and state */
typedef enum {
    MITTE_WEBHOOK_JSON = 0,
    MITTE_WEBHOOK_SLACK,
    MITTE_WEBHOOK_DISCORD,
    MITTE_WEBHOOK_N
} mitte_webhook_format_e;


/* the longest webhook secret stored */
#define MITTE_WEBHOOK_SECRET_MAX 256

/* "v1," and the base64 of a SHA-256 HMAC, without the NUL */
#define MITTE_WEBHOOK_SIG_LEN    47


/* "ANOMALY_DETECTED", ...; NULL when type is not a type */
const char *mitte_notify_type_name(int type);

/* the type named exactly (case-sensitive), or -1 */
int mitte_notify_type_parse(const char *s, size_t len);

/* the title of SPEC section 4 ("Endpoint down", ...); NULL: no type */
const char *mitte_notify_title(int type);

/* 1 for the types about one endpoint (endpointSlug set), else 0 */
int mitte_notify_has_endpoint(int type);


/* "json", "slack", "discord"; NULL when not a format */
const char *mitte_webhook_format_name(int format);

/* the format named exactly, or -1 */
int mitte_webhook_format_parse(const char *s, size_t len);


/*
 * ANOMALY_DETECTED: "Endpoint '<name>' failure rate spiked to <P>%
 * (z-score: <Z>)", as mitte_anomaly_message() writes it.
 */
size_t mitte_notify_anomaly_message(char *buf, size_t size,
    const char *name, size_t name_len, const mitte_anomaly_result_t *res);

/*
 * ENDPOINT_DOWN: "Endpoint '<name>' failed <n> consecutive deliveries
 * (last status <s>)"
 */
size_t mitte_notify_down_message(char *buf, size_t size, const char *name,
    size_t name_len, uint32_t failures, unsigned status);

/*
 * ENDPOINT_RECOVERED: "Endpoint '<name>' is delivering again (status <s>)
 * after <n> consecutive failures"
 */
size_t mitte_notify_recovered_message(char *buf, size_t size,
    const char *name, size_t name_len, unsigned status, uint32_t failures);

/*
 * QUOTA_WARNING: "You have used <used> of your <limit> monthly requests
 * (<pct>%)", pct rounded down (never 100 before the limit).
 */
size_t mitte_notify_quota_warning_message(char *buf, size_t size,
    uint32_t used, uint32_t limit);

/*
 * QUOTA_EXCEEDED: "You have reached your monthly limit of <limit>
 * requests; further deliveries are refused until <YYYY-MM-01>", the first
 * day of the month after "now" (unix seconds); with enforce 0: "...
 * requests; further deliveries are not refused (quota enforcement is
 * off)".
 */
size_t mitte_notify_quota_exceeded_message(char *buf, size_t size,
    uint32_t limit, int64_t now, int enforce);

/* TRIAL_ENDING: "Your Pro trial ends on 2026-03-01T12:00:00.000Z" */
size_t mitte_notify_trial_message(char *buf, size_t size, int64_t ends);


/*
 * The body of an outbound webhook (SPEC section 5), JSON-escaped:
 *   json:    {"type":..,"title":..,"message":..,"endpointSlug":..|null,
 *             "timestamp":"<ISO-8601 ms>"}
 *   slack:   {"text":"*<title>*\n<message>"}, with &, < and > written as
 *            &amp; &lt; &gt; as Slack asks (no "<!channel>" from a name)
 *   discord: {"content":"**<title>**\n<message>"}
 * slug NULL or slug_len 0 is null; "ms" is unix milliseconds. Returns the
 * length the whole body needs, as snprintf; when that is >= size, buf
 * holds a NUL-terminated prefix, possibly shorter than size - 1. Returns 0
 * for an unknown type or format.
 */
size_t mitte_notify_webhook_body(char *buf, size_t size, int format,
    int type, const char *message, size_t message_len, const char *slug,
    size_t slug_len, int64_t ms);


/*
 * 1 when a webhook secret can sign: 1..256 bytes, and a "whsec_" secret
 * holds base64 (standard alphabet, padding optional) of at least one byte
 * after the prefix; else 0.
 */
int mitte_webhook_secret_valid(const char *secret, size_t secret_len);

/*
 * The Standard Webhooks signature "v1,<base64 HMAC-SHA256(key,
 * id "." ts "." body)>", the key being the base64-decoded part of a
 * "whsec_" secret, or else the secret's bytes as they are. Writes it with
 * a NUL into out (out_size >= MITTE_WEBHOOK_SIG_LEN + 1); returns its
 * length, or -1 (an invalid secret, out too small, out of memory).
 * Uses OpenSSL's libcrypto.
 */
int mitte_webhook_sign(const char *secret, size_t secret_len,
    const char *msg_id, size_t id_len, int64_t ts, const char *body,
    size_t body_len, char *out, size_t out_size);

#endif /* MITTE_NOTIFY_H */
