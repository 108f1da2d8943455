/*
 * Copyright (C) ngx_mitte_module authors
 *
 * The answer of the email provider (Resend) to a refused send:
 * mitte_reply_message takes the "message" of a JSON object into a buffer
 * of any size: NUL-terminated, within the buffer, a prefix of the message
 * that an independent cJSON reading finds.
 */

#include <string.h>

#include <cjson/cJSON.h>

#include "fuzz.h"
#include "mitte_doc.h"


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char       *body, *buf;
    size_t      len, bufsize, n;
    cJSON      *doc, *msg;
    fuzz_in_t   in;

    in.p = data;
    in.left = size;
    bufsize = (size_t) fuzz_uint(&in, 1);    /* 0 .. 255 */
    body = fuzz_rest(&in, &len);

    buf = malloc(bufsize ? bufsize : 1);
    if (buf == NULL) {
        abort();
    }

    buf[0] = 'x';
    n = mitte_reply_message(body, len, buf, bufsize);

    if (bufsize == 0) {
        FUZZ_CHECK(n == 0 && buf[0] == 'x');
        goto done;
    }

    FUZZ_CHECK(n < bufsize);
    FUZZ_CHECK(buf[n] == '\0' && strlen(buf) == n);

    doc = cJSON_ParseWithLength(body, len);
    msg = cJSON_GetObjectItemCaseSensitive(doc, "message");

    if (cJSON_IsObject(doc) && cJSON_IsString(msg)) {
        FUZZ_CHECK(n == strlen(msg->valuestring)
                   || (n == bufsize - 1 && n < strlen(msg->valuestring)));
        FUZZ_CHECK(memcmp(buf, msg->valuestring, n) == 0);

    } else {
        FUZZ_CHECK(n == 0);
    }

    cJSON_Delete(doc);

done:

    free(buf);
    free(body);

    return 0;
}
