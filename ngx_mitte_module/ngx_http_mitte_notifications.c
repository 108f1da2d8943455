/*
 * Copyright (C) ngx_mitte_module authors
 *
 * The notifications API (mitte_notifications): a user's in-app
 * notifications listed, and marked read. Raising a notification is
 * ngx_http_mitte_notify.c's.
 */


#include "ngx_http_mitte_module.h"
#include "ngx_http_mitte_api.h"
#include "ngx_http_mitte_redis.h"
#include "ngx_http_mitte_cluster.h"

#include <cjson/cJSON.h>

#include "mitte_notify.h"
#include "mitte_doc.h"


#define NGX_HTTP_MITTE_NOTE_JSON        3072

/* ids one POST .../read may name (400 past it) */
#define NGX_HTTP_MITTE_READ_IDS_MAX     1000


static ngx_int_t ngx_http_mitte_notes_list(ngx_http_request_t *r,
    ngx_str_t *user);
static ngx_int_t ngx_http_mitte_notes_args(ngx_http_request_t *r,
    ngx_uint_t *unread_only, ngx_int_t *limit, uint32_t *before,
    ngx_int_t *rc);
static void ngx_http_mitte_notes_read_body(ngx_http_request_t *r);
static ngx_int_t ngx_http_mitte_notes_read(ngx_http_request_t *r,
    ngx_str_t *user, ngx_str_t *body);
static ngx_uint_t ngx_http_mitte_notes_mark(ngx_http_mitte_zone_ctx_t *ctx,
    ngx_str_t *user, ngx_uint_t all, uint32_t *seqs, ngx_uint_t nseqs);
static void ngx_http_mitte_notes_tell(ngx_str_t *user, ngx_uint_t all,
    uint32_t *seqs, ngx_uint_t nseqs);
static void ngx_http_mitte_notes_told(redisReply *reply, void *data,
    ngx_uint_t rc);
static ngx_int_t ngx_http_mitte_read_ids(ngx_http_request_t *r,
    cJSON *ids, uint32_t **seqs, ngx_uint_t *n);
static int ngx_libc_cdecl ngx_http_mitte_seq_cmp(const void *a,
    const void *b);
static ngx_uint_t ngx_http_mitte_seq_find(uint32_t *seqs, ngx_uint_t n,
    uint32_t seq);
static u_char *ngx_http_mitte_note_id(u_char *p,
    ngx_http_mitte_notification_t *n);
static ngx_int_t ngx_http_mitte_note_seq(u_char *p, size_t len,
    uint32_t *seq);
static u_char *ngx_http_mitte_write_note(u_char *p,
    ngx_http_mitte_notification_t *n);


ngx_int_t
ngx_http_mitte_notifications_handler(ngx_http_request_t *r)
{
    ngx_str_t  path, user;

    if (ngx_http_mitte_caller(r, &user) != NGX_OK) {
        return ngx_http_mitte_reply_unauthorized(r);
    }

    ngx_http_mitte_subpath(r, &path);

    if (path.len == 0) {
        if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
            return ngx_http_mitte_reply_not_allowed(r, "GET, HEAD");
        }

        if (ngx_http_discard_request_body(r) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        return ngx_http_mitte_notes_list(r, &user);
    }

    if (path.len == 4 && ngx_strncmp(path.data, "read", 4) == 0) {
        if (!(r->method & NGX_HTTP_POST)) {
            return ngx_http_mitte_reply_not_allowed(r, "POST");
        }

        return ngx_http_mitte_read_body(r, ngx_http_mitte_notes_read_body);
    }

    if (ngx_http_discard_request_body(r) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_mitte_reply_error(r, NGX_HTTP_NOT_FOUND, "not_found",
                                      "No such notifications resource.");
}


static ngx_int_t
ngx_http_mitte_notes_list(ngx_http_request_t *r, ngx_str_t *user)
{
    u_char                      *p;
    uint32_t                     before;
    ngx_int_t                    limit, rc;
    ngx_uint_t                   unread_only, n, unread;
    ngx_queue_t                 *q;
    ngx_chain_t                 *out, *last, *cl;
    ngx_http_mitte_zone_ctx_t   *ctx;
    ngx_http_mitte_main_conf_t  *mmcf;
    ngx_http_mitte_user_node_t  *un;
    ngx_http_mitte_note_node_t  *nn;

    if (ngx_http_mitte_notes_args(r, &unread_only, &limit, &before, &rc)
        != NGX_OK)
    {
        return rc;
    }

    mmcf = ngx_http_get_module_main_conf(r, ngx_http_mitte_module);
    ctx = mmcf->shm_zone->data;

    last = NULL;

    out = ngx_http_mitte_chain(r, &last, 64);
    if (out == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* "unread" is written last: the header is in a buffer of its own */

    cl = last;

    last = NULL;
    if (ngx_http_mitte_chain(r, &last, NGX_HTTP_MITTE_NOTE_JSON) == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cl->next = last;

    n = 0;
    unread = 0;

    ngx_shmtx_lock(&ctx->shpool->mutex);

    un = ngx_http_mitte_user_lookup(ctx, user->data, user->len);

    if (un) {
        unread = un->unread;

        for (q = ngx_queue_head(&un->notes);
             q != ngx_queue_sentinel(&un->notes) && n < (ngx_uint_t) limit;
             q = ngx_queue_next(q))
        {
            nn = ngx_queue_data(q, ngx_http_mitte_note_node_t, queue);

            if ((before && nn->n.seq >= before)
                || (unread_only && nn->n.read))
            {
                continue;
            }

            if (ngx_http_mitte_chain(r, &last, NGX_HTTP_MITTE_NOTE_JSON)
                == NULL)
            {
                ngx_shmtx_unlock(&ctx->shpool->mutex);
                return NGX_HTTP_INTERNAL_SERVER_ERROR;
            }

            p = last->buf->last;

            if (n++) {
                *p++ = ',';
            }

            last->buf->last = ngx_http_mitte_write_note(p, &nn->n);
        }
    }

    ngx_shmtx_unlock(&ctx->shpool->mutex);

    cl->buf->last = ngx_sprintf(cl->buf->last,
                                "{\"unread\":%ui,\"notifications\":[",
                                unread);

    if (ngx_http_mitte_write(r, &last, (u_char *) "]}\n", 3) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_mitte_reply_json(r, NGX_HTTP_OK, out);
}


/*
 * The list's arguments; NGX_ERROR: one is bad, and the error was replied
 * with *rc.
 */

static ngx_int_t
ngx_http_mitte_notes_args(ngx_http_request_t *r, ngx_uint_t *unread_only,
    ngx_int_t *limit, uint32_t *before, ngx_int_t *rc)
{
    ngx_str_t  arg;

    *unread_only = 0;
    *limit = 50;
    *before = 0;

    if (ngx_http_mitte_arg(r, "unread", &arg) == NGX_OK) {
        if ((arg.len == 1 && arg.data[0] == '1')
            || (arg.len == 4 && ngx_strncmp(arg.data, "true", 4) == 0))
        {
            *unread_only = 1;

        } else if (!(arg.len == 1 && arg.data[0] == '0')
                   && !(arg.len == 5 && ngx_strncmp(arg.data, "false", 5) == 0))
        {
            *rc = ngx_http_mitte_reply_error(r, NGX_HTTP_BAD_REQUEST,
                                             "invalid_field",
                                             "unread must be 1 or 0.");
            return NGX_ERROR;
        }
    }

    if (ngx_http_mitte_arg(r, "limit", &arg) == NGX_OK) {
        *limit = ngx_atoi(arg.data, arg.len);

        if (*limit < 1 || *limit > 100) {
            *rc = ngx_http_mitte_reply_error(r, NGX_HTTP_BAD_REQUEST,
                                             "invalid_field",
                                             "limit must be a number from 1 "
                                             "to 100.");
            return NGX_ERROR;
        }
    }

    if (ngx_http_mitte_arg(r, "before", &arg) == NGX_OK
        && ngx_http_mitte_note_seq(arg.data, arg.len, before) != NGX_OK)
    {
        *rc = ngx_http_mitte_reply_error(r, NGX_HTTP_BAD_REQUEST,
                                         "invalid_field",
                                         "before is not a notification id.");
        return NGX_ERROR;
    }

    return NGX_OK;
}


static void
ngx_http_mitte_notes_read_body(ngx_http_request_t *r)
{
    ngx_int_t  rc;
    ngx_str_t  body, user;

    if (ngx_http_mitte_body_or_error(r, &body, &rc) == NGX_OK) {
        rc = (ngx_http_mitte_caller(r, &user) == NGX_OK)
             ? ngx_http_mitte_notes_read(r, &user, &body)
             : NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_http_finalize_request(r, rc);
}


static ngx_int_t
ngx_http_mitte_notes_read(ngx_http_request_t *r, ngx_str_t *user,
    ngx_str_t *body)
{
    cJSON                       *doc, *item, *ids, *all;
    uint32_t                    *seqs;
    ngx_int_t                    rc;
    ngx_buf_t                   *b;
    ngx_uint_t                   unread, mark_all, nseqs;
    mitte_doc_error_t            err;
    ngx_http_mitte_zone_ctx_t   *ctx;
    ngx_http_mitte_main_conf_t  *mmcf;

    /* one JSON object and nothing after it, as every other body */

    doc = mitte_doc_parse((char *) body->data, body->len, &err);

    if (doc == NULL) {
        return ngx_http_mitte_reply_error(r, NGX_HTTP_BAD_REQUEST, err.code,
                                          err.message);
    }

    ids = NULL;
    all = NULL;

    for (item = doc->child; item; item = item->next) {
        if (ngx_strcmp(item->string, "ids") == 0) {
            ids = item;

        } else if (ngx_strcmp(item->string, "all") == 0) {
            all = item;

        } else {
            cJSON_Delete(doc);
            return ngx_http_mitte_reply_error(r, NGX_HTTP_BAD_REQUEST,
                                              "invalid_field",
                                              "Unknown field: expected \"ids\" "
                                              "or \"all\".");
        }
    }

    if ((ids == NULL && all == NULL)
        || (ids && !cJSON_IsArray(ids))
        || (all && !cJSON_IsBool(all)))
    {
        cJSON_Delete(doc);
        return ngx_http_mitte_reply_error(r, NGX_HTTP_BAD_REQUEST,
                                          "invalid_field",
                                          "Expected {\"ids\": [...]} or "
                                          "{\"all\": true}.");
    }

    /* parsed, checked and sorted here: the lock only looks them up */

    seqs = NULL;
    nseqs = 0;

    rc = ids ? ngx_http_mitte_read_ids(r, ids, &seqs, &nseqs) : NGX_OK;

    if (rc != NGX_OK) {
        cJSON_Delete(doc);

        if (rc == NGX_ERROR) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        return ngx_http_mitte_reply_error(r, NGX_HTTP_BAD_REQUEST,
                                          "invalid_field",
                                          rc == NGX_DECLINED
                                          ? "ids: at most 1000 in one "
                                            "request (use {\"all\": true} "
                                            "for every one)."
                                          : "ids must be strings.");
    }

    mark_all = (all && cJSON_IsTrue(all));

    mmcf = ngx_http_get_module_main_conf(r, ngx_http_mitte_module);
    ctx = mmcf->shm_zone->data;

    unread = ngx_http_mitte_notes_mark(ctx, user, mark_all, seqs, nseqs);

    if (mmcf->redis) {
        ngx_http_mitte_notes_tell(user, mark_all, seqs, nseqs);
    }

    cJSON_Delete(doc);

    b = ngx_create_temp_buf(r->pool, 64);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b->last = ngx_sprintf(b->last, "{\"unread\":%ui}\n", unread);

    return ngx_http_mitte_reply_buf(r, NGX_HTTP_OK, b);
}


/*
 * Marks read, under the lock, every unread notification of the user ("all")
 * or those whose sequence number is among the sorted "seqs": one binary
 * search a notification. Returns the user's unread count.
 */

static ngx_uint_t
ngx_http_mitte_notes_mark(ngx_http_mitte_zone_ctx_t *ctx, ngx_str_t *user,
    ngx_uint_t all, uint32_t *seqs, ngx_uint_t nseqs)
{
    ngx_uint_t                   unread;
    ngx_queue_t                 *q;
    ngx_http_mitte_user_node_t  *un;
    ngx_http_mitte_note_node_t  *nn;

    unread = 0;

    ngx_shmtx_lock(&ctx->shpool->mutex);

    un = ngx_http_mitte_user_lookup(ctx, user->data, user->len);

    if (un) {
        for (q = ngx_queue_head(&un->notes);
             q != ngx_queue_sentinel(&un->notes) && (all || nseqs);
             q = ngx_queue_next(q))
        {
            nn = ngx_queue_data(q, ngx_http_mitte_note_node_t, queue);

            if (nn->n.read
                || (!all && !ngx_http_mitte_seq_find(seqs, nseqs, nn->n.seq)))
            {
                continue;
            }

            nn->n.read = 1;
            un->unread--;
        }

        unread = un->unread;
    }

    ngx_shmtx_unlock(&ctx->shpool->mutex);

    return unread;
}


/*
 * Cluster mode: the other instances hear of what was marked read, through
 * the event stream (an "r" entry); their relays mark it in their zones.
 */

static void
ngx_http_mitte_notes_tell(ngx_str_t *user, ngx_uint_t all, uint32_t *seqs,
    ngx_uint_t nseqs)
{
    u_char      *text, *p;
    ngx_uint_t   i;

    if (ngx_http_mitte_redis_ready() != NGX_OK) {
        return;
    }

    text = ngx_alloc(64 + 6 * MITTE_USER_MAX + nseqs * (NGX_INT32_LEN + 1),
                     ngx_cycle->log);
    if (text == NULL) {
        return;
    }

    p = ngx_cpymem(text, "{\"k\":\"r\",\"u\":\"",
                   sizeof("{\"k\":\"r\",\"u\":\"") - 1);
    p += mitte_json_escape(p, user->data, user->len);
    p = ngx_sprintf(p, "\",\"a\":%s,\"q\":[", all ? "true" : "false");

    for (i = 0; i < nseqs; i++) {
        p = ngx_sprintf(p, "%s%uD", i ? "," : "", seqs[i]);
    }

    p = ngx_cpymem(p, "]}", 2);

    (void) ngx_http_mitte_redis_publish(ngx_http_mitte_notes_told, NULL,
                                        text, p - text);

    ngx_free(text);
}


static void
ngx_http_mitte_notes_told(redisReply *reply, void *data, ngx_uint_t rc)
{
    if (rc == NGX_HTTP_MITTE_REDIS_REPLY && reply->type == REDIS_REPLY_ERROR)
    {
        ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                      "mitte: redis: notifications marked read were not "
                      "told to the other instances: %s", reply->str);
    }
}


/* an "r" entry of the cluster's stream, into this zone */

ngx_int_t
ngx_http_mitte_notifications_relay(ngx_http_mitte_main_conf_t *mmcf,
    cJSON *entry)
{
    cJSON       *u, *a, *q, *id;
    uint32_t    *seqs;
    ngx_str_t    user;
    ngx_uint_t   n;

    u = cJSON_GetObjectItemCaseSensitive(entry, "u");
    a = cJSON_GetObjectItemCaseSensitive(entry, "a");
    q = cJSON_GetObjectItemCaseSensitive(entry, "q");

    if (!cJSON_IsString(u) || !cJSON_IsBool(a) || !cJSON_IsArray(q)
        || cJSON_GetArraySize(q) > NGX_HTTP_MITTE_READ_IDS_MAX)
    {
        return NGX_ERROR;
    }

    user.data = (u_char *) u->valuestring;
    user.len = ngx_strlen(u->valuestring);

    if (user.len == 0 || user.len > MITTE_USER_MAX) {
        return NGX_ERROR;
    }

    seqs = ngx_alloc((cJSON_GetArraySize(q) + 1) * sizeof(uint32_t),
                     ngx_cycle->log);
    if (seqs == NULL) {
        return NGX_ERROR;
    }

    n = 0;

    cJSON_ArrayForEach(id, q) {
        if (!cJSON_IsNumber(id) || id->valuedouble < 0
            || id->valuedouble > 0xffffffff
            || (n && (uint32_t) id->valuedouble <= seqs[n - 1]))
        {
            /* told sorted and distinct, as the binary search needs */
            ngx_free(seqs);
            return NGX_ERROR;
        }

        seqs[n++] = (uint32_t) id->valuedouble;
    }

    (void) ngx_http_mitte_notes_mark(mmcf->shm_zone->data, &user,
                                     cJSON_IsTrue(a), seqs, n);

    ngx_free(seqs);

    return NGX_OK;
}


/*
 * The ids of POST .../read as sorted, distinct sequence numbers, without
 * the lock: NGX_OK; NGX_DECLINED, more than NGX_HTTP_MITTE_READ_IDS_MAX
 * ids; NGX_ABORT, one that is not a string; NGX_ERROR. An id that cannot
 * name a notification is left out.
 */

static ngx_int_t
ngx_http_mitte_read_ids(ngx_http_request_t *r, cJSON *ids, uint32_t **seqs,
    ngx_uint_t *n)
{
    int          count;
    u_char      *p;
    cJSON       *id;
    uint32_t    *s, seq;
    ngx_uint_t   i, k;

    count = cJSON_GetArraySize(ids);

    if (count > NGX_HTTP_MITTE_READ_IDS_MAX) {
        return NGX_DECLINED;
    }

    s = ngx_palloc(r->pool, (count ? count : 1) * sizeof(uint32_t));
    if (s == NULL) {
        return NGX_ERROR;
    }

    i = 0;

    cJSON_ArrayForEach(id, ids) {
        if (!cJSON_IsString(id)) {
            return NGX_ABORT;
        }

        p = (u_char *) id->valuestring;

        if (ngx_http_mitte_note_seq(p, ngx_strlen(p), &seq) == NGX_OK) {
            s[i++] = seq;
        }
    }

    if (i > 1) {
        ngx_qsort(s, i, sizeof(uint32_t), ngx_http_mitte_seq_cmp);
    }

    /* distinct */

    for (k = 0; k < i; k++) {
        if (k == 0 || s[k] != s[k - 1]) {
            s[(*n)++] = s[k];
        }
    }

    *seqs = s;

    return NGX_OK;
}


static int ngx_libc_cdecl
ngx_http_mitte_seq_cmp(const void *a, const void *b)
{
    uint32_t  x, y;

    x = *(const uint32_t *) a;
    y = *(const uint32_t *) b;

    return (x > y) - (x < y);
}


/* a binary search of the sorted sequence numbers */

static ngx_uint_t
ngx_http_mitte_seq_find(uint32_t *seqs, ngx_uint_t n, uint32_t seq)
{
    ngx_uint_t  lo, hi, mid;

    lo = 0;
    hi = n;

    while (lo < hi) {
        mid = lo + (hi - lo) / 2;

        if (seqs[mid] == seq) {
            return 1;
        }

        if (seqs[mid] < seq) {
            lo = mid + 1;

        } else {
            hi = mid;
        }
    }

    return 0;
}


static u_char *
ngx_http_mitte_note_id(u_char *p, ngx_http_mitte_notification_t *n)
{
    return ngx_sprintf(p, NGX_HTTP_MITTE_ID_FORMAT, n->created_ms, n->seq);
}


static ngx_int_t
ngx_http_mitte_note_seq(u_char *p, size_t len, uint32_t *seq)
{
    ngx_int_t  n;

    if (len != NGX_HTTP_MITTE_ID_LEN) {
        return NGX_ERROR;
    }

    if (ngx_hextoi(p, 12) == NGX_ERROR) {
        return NGX_ERROR;
    }

    n = ngx_hextoi(p + 12, 8);
    if (n == NGX_ERROR) {
        return NGX_ERROR;
    }

    *seq = (uint32_t) n;

    return NGX_OK;
}


static u_char *
ngx_http_mitte_write_note(u_char *p, ngx_http_mitte_notification_t *n)
{
    p = ngx_cpymem(p, "{\"id\":\"", sizeof("{\"id\":\"") - 1);
    p = ngx_http_mitte_note_id(p, n);
    p = ngx_sprintf(p, "\",\"type\":\"%s\",\"title\":\"%s\",\"message\":",
                    mitte_notify_type_name(n->type),
                    mitte_notify_title(n->type));
    p = ngx_http_mitte_json_str(p, n->message, n->message_len);
    p = ngx_cpymem(p, ",\"endpointSlug\":", sizeof(",\"endpointSlug\":") - 1);

    p = ngx_http_mitte_json_str_null(p, n->slug, n->slug_len);

    p = ngx_cpymem(p, ",\"timestamp\":", sizeof(",\"timestamp\":") - 1);
    p = ngx_http_mitte_json_time(p, (int64_t) n->created_ms);

    if (n->read) {
        p = ngx_cpymem(p, ",\"read\":true}", sizeof(",\"read\":true}") - 1);

    } else {
        p = ngx_cpymem(p, ",\"read\":false}", sizeof(",\"read\":false}") - 1);
    }

    return p;
}
