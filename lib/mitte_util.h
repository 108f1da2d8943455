/*
 * Copyright (C) ngx_mitte_module authors
 *
 * Small pure helpers: slugs, status sets, quota thresholds, JSON strings.
 */

#ifndef MITTE_UTIL_H
#define MITTE_UTIL_H

#include <stddef.h>
#include <stdint.h>


#define MITTE_SLUG_MAX       64
#define MITTE_USER_MAX       64
#define MITTE_NAME_MAX       128
#define MITTE_EMAIL_MAX      254


typedef enum {
    MITTE_PLAN_FREE = 0,
    MITTE_PLAN_PRO,
    MITTE_PLAN_TRIAL,
    MITTE_PLAN_N
} mitte_plan_e;


/* "free", "pro", "trial", case-insensitive: the plan, or -1 */
int mitte_plan_parse(const char *s, size_t len);

/* "free", "pro", "trial" */
const char *mitte_plan_name(int plan);

/*
 * An address "local@domain": at most 254 bytes, one '@' with text on both
 * sides, a domain without empty labels, and no spaces, commas, angle
 * brackets, quotes, CR, LF or other control characters. 1, else 0.
 */
int mitte_email_valid(const char *s, size_t len);


/* 1..64 bytes of [A-Za-z0-9._-]: 1, else 0 */
int mitte_slug_valid(const unsigned char *p, size_t len);


/*
 * A Last-Event-ID (the header, or ?lastEventId=): one or more decimal
 * digits, nothing else, at most 2^63 - 1. Returns 0 with *id set, or -1.
 */
int mitte_event_id_parse(const char *s, size_t len, uint64_t *id);


/* a set of HTTP statuses 100..599 */
typedef struct {
    uint8_t         bits[64];
} mitte_status_set_t;

void mitte_status_set_clear(mitte_status_set_t *set);

/*
 * Adds "200", "200-299" or "2xx" to the set. Returns 0, or -1 when the text
 * is not one of these forms within 100..599 (or a range runs backwards).
 */
int mitte_status_set_add(mitte_status_set_t *set, const char *s, size_t len);

int mitte_status_set_has(const mitte_status_set_t *set, unsigned status);


/* ceil(limit * pct / 100), without floating point; pct 1..100 */
uint32_t mitte_quota_threshold(uint32_t limit, uint32_t pct);


/*
 * JSON string body escaping (no quotes added): '"', '\\' and control
 * characters; bytes >= 0x80 are copied as they are when they form valid
 * UTF-8 and written as U+FFFD otherwise. With dst NULL only the length is
 * computed. Returns the number of bytes (to be) written.
 */
size_t mitte_json_escape(unsigned char *dst, const unsigned char *src,
    size_t len);

/*
 * A 64-bit checksum of len bytes (a state file's records): any change of
 * a byte, of the length or of the order of 8-byte words changes it, with
 * the odds of a random match 1 in 2^64. Not a cryptographic hash.
 */
uint64_t mitte_checksum(const void *data, size_t len);

#endif /* MITTE_UTIL_H */
