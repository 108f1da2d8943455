/*
 * Copyright (C) ngx_mitte_module authors
 *
 * PUT/PATCH /mitte/preferences bodies (mitte_prefs_patch): a refused body
 * changes nothing; an accepted one leaves preferences that pass the check
 * made on records read back, whose GET document is JSON, and applying the
 * same body again changes nothing more; cluster mode's stored document of
 * it reads back the same. The input read as a stored document: refused
 * without a change, or read into preferences that pass the check.
 */

#include <string.h>

#include <cjson/cJSON.h>

#include "fuzz.h"
#include "mitte_prefs.h"


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int                rc;
    char               json[16384];
    uint32_t           rev;
    uint64_t           t;
    size_t             n;
    cJSON             *doc;
    mitte_cidr_t       allow[1];
    mitte_prefs_t      p, before, again;
    mitte_doc_error_t  err;

    FUZZ_CHECK(mitte_cidr_parse("10.0.0.0/8", 10, &allow[0]) == 0);

    memset(&p, 0x41, sizeof(mitte_prefs_t));
    memcpy(&before, &p, sizeof(mitte_prefs_t));

    if (mitte_prefs_store_parse((const char *) data, size, &p, &rev, &t,
                                &err)
        == 0)
    {
        FUZZ_CHECK(mitte_prefs_check(&p) == 0);
        FUZZ_CHECK(rev >= 1 && rev <= MITTE_PREFS_REV_MAX);

    } else {
        FUZZ_CHECK(memcmp(&p, &before, sizeof(mitte_prefs_t)) == 0);
    }

    FUZZ_CHECK(mitte_prefs_default(&p, "a@example.com", 13) == 0);
    memcpy(&before, &p, sizeof(mitte_prefs_t));

    memset(&err, 0, sizeof(err));
    rc = mitte_prefs_patch(&p, (const char *) data, size, allow, 1, &err);

    if (rc != 0) {
        FUZZ_CHECK(rc == -1);
        FUZZ_CHECK(memcmp(&p, &before, sizeof(mitte_prefs_t)) == 0);
        FUZZ_CHECK(err.code != NULL);
        FUZZ_CHECK(memchr(err.message, '\0', sizeof(err.message)) != NULL);
        return 0;
    }

    FUZZ_CHECK(mitte_prefs_check(&p) == 0);

    n = mitte_prefs_json(&p, json, sizeof(json));
    FUZZ_CHECK(n < sizeof(json));
    FUZZ_CHECK(strlen(json) == n);

    doc = cJSON_Parse(json);
    FUZZ_CHECK(cJSON_IsObject(doc));
    cJSON_Delete(doc);

    /* a document of values, not of changes: the same body again is a no-op */
    memcpy(&again, &p, sizeof(mitte_prefs_t));
    FUZZ_CHECK(mitte_prefs_patch(&again, (const char *) data, size, allow, 1,
                                 &err)
               == 0);
    FUZZ_CHECK(memcmp(&again, &p, sizeof(mitte_prefs_t)) == 0);

    n = mitte_prefs_store_json(&p, 5, 1767225600000ULL, json, sizeof(json));
    FUZZ_CHECK(n < sizeof(json));
    FUZZ_CHECK(mitte_prefs_store_parse(json, n, &again, &rev, &t, &err)
               == 0);
    FUZZ_CHECK(memcmp(&again, &p, sizeof(mitte_prefs_t)) == 0);
    FUZZ_CHECK(rev == 5 && t == 1767225600000ULL);

    return 0;
}
