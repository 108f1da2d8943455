/*
 * Copyright (C) ngx_mitte_module authors
 *
 * The operator API's request documents: PUT /mitte-admin/endpoints/{slug}
 * (with the history import, "hours") and PUT /mitte-admin/users/{id}.
 * A document parses whole, within its limits, or fails with an error
 * code and a message; nothing leaks either way (LeakSanitizer).
 */

#include <string.h>

#include "fuzz.h"
#include "mitte_doc.h"
#include "mitte_util.h"


static void
fuzz_doc_error(const mitte_doc_error_t *err)
{
    FUZZ_CHECK(err->code != NULL);
    FUZZ_CHECK(strcmp(err->code, "invalid_json") == 0
               || strcmp(err->code, "invalid_field") == 0);
    FUZZ_CHECK(memchr(err->message, '\0', sizeof(err->message)) != NULL);
    FUZZ_CHECK(err->message[0] != '\0');
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t                i;
    mitte_user_doc_t      ud;
    mitte_doc_error_t     err;
    mitte_endpoint_doc_t  ed;

    memset(&err, 0, sizeof(err));

    if (mitte_endpoint_doc_parse((const char *) data, size, &ed, &err) == 0) {
        FUZZ_CHECK(ed.name_len <= MITTE_NAME_MAX);
        FUZZ_CHECK(ed.user_len <= MITTE_USER_MAX);
        FUZZ_CHECK(ed.has_name || ed.name_len == 0);
        FUZZ_CHECK(ed.has_user || ed.user_len == 0);
        FUZZ_CHECK((ed.nhours == 0) == (ed.hours == NULL));
        /* each hour at most one input byte: the array is bounded */
        FUZZ_CHECK(ed.nhours <= size);

        for (i = 0; i < ed.nhours; i++) {
            FUZZ_CHECK(ed.hours[i].failures <= ed.hours[i].requests);
        }

        mitte_endpoint_doc_free(&ed);

    } else {
        fuzz_doc_error(&err);
        FUZZ_CHECK(ed.hours == NULL && ed.nhours == 0);
    }

    memset(&err, 0, sizeof(err));

    if (mitte_user_doc_parse((const char *) data, size, &ud, &err) == 0) {
        FUZZ_CHECK(!ud.has_plan
                   || (ud.plan >= 0 && ud.plan < MITTE_PLAN_N));
        FUZZ_CHECK(ud.email_len <= MITTE_EMAIL_MAX);
        FUZZ_CHECK(ud.email_len == 0
                   || mitte_email_valid(ud.email, ud.email_len));

    } else {
        fuzz_doc_error(&err);
    }

    return 0;
}
