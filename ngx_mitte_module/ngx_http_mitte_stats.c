/*
 * Copyright (C) ngx_mitte_module authors
 *
 * Statistics: the caller's endpoints and quota as JSON.
 */


#include "ngx_http_mitte_module.h"
#include "ngx_http_mitte_api.h"


ngx_int_t
ngx_http_mitte_stats_handler(ngx_http_request_t *r)
{
    int64_t                          now;
    uint32_t                         now_hour;
    ngx_int_t                        rc;
    ngx_str_t                        user, arg, filter;
    ngx_chain_t                     *out, *last;
    ngx_http_mitte_zone_ctx_t       *ctx;
    ngx_http_mitte_loc_conf_t       *mlcf;
    ngx_http_mitte_main_conf_t      *mmcf;
    ngx_http_mitte_user_node_t      *un;
    u_char                           buf[MITTE_SLUG_MAX * 3], *d, *s;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return ngx_http_mitte_reply_not_allowed(r, "GET, HEAD");
    }

    if (ngx_http_discard_request_body(r) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    mlcf = ngx_http_get_module_loc_conf(r, ngx_http_mitte_module);
    mmcf = ngx_http_get_module_main_conf(r, ngx_http_mitte_module);
    ctx = mmcf->shm_zone->data;

    ngx_str_null(&user);

    if (!mlcf->all && ngx_http_mitte_caller(r, &user) != NGX_OK) {
        return ngx_http_mitte_reply_unauthorized(r);
    }

    ngx_str_null(&filter);

    if (ngx_http_mitte_arg(r, "endpoint", &arg) == NGX_OK) {
        if (arg.len > sizeof(buf)) {
            return ngx_http_mitte_reply_error(r, NGX_HTTP_BAD_REQUEST,
                                              "invalid_field",
                                              "endpoint is not a valid slug.");
        }

        s = arg.data;
        d = buf;
        ngx_unescape_uri(&d, &s, arg.len, 0);

        filter.data = buf;
        filter.len = d - buf;

        if (!mitte_slug_valid(filter.data, filter.len)) {
            return ngx_http_mitte_reply_error(r, NGX_HTTP_BAD_REQUEST,
                                              "invalid_field",
                                              "endpoint is not a valid slug.");
        }
    }

    now = ngx_time();
    now_hour = mitte_hour_of(now);

    last = NULL;

    out = ngx_http_mitte_chain(r, &last, 1024);
    if (out == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    *last->buf->last++ = '{';

    if (!mlcf->all) {
        last->buf->last = ngx_cpymem(last->buf->last, "\"quota\":",
                                     sizeof("\"quota\":") - 1);

        ngx_shmtx_lock(&ctx->shpool->mutex);

        un = ngx_http_mitte_user_lookup(ctx, user.data, user.len);

        rc = ngx_http_mitte_write_quota(r, mmcf, un ? &un->user : NULL, now,
                                        &last);

        ngx_shmtx_unlock(&ctx->shpool->mutex);

        if (rc != NGX_OK
            || ngx_http_mitte_write(r, &last, (u_char *) ",", 1) != NGX_OK)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    if (ngx_http_mitte_write(r, &last, (u_char *) "\"endpoints\":", 12)
        != NGX_OK
        || ngx_http_mitte_write_endpoints(r, ctx, mlcf->all ? NULL : &user,
                                          &filter, &last, now_hour)
           != NGX_OK
        || ngx_http_mitte_write(r, &last, (u_char *) "}\n", 2) != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_mitte_reply_json(r, NGX_HTTP_OK, out);
}


/*
 * A JSON array of endpoints, most recently used first: all of them, or
 * the user's (user not NULL), or the one named by a non-empty filter. The
 * zone is locked only to copy them.
 */

ngx_int_t
ngx_http_mitte_write_endpoints(ngx_http_request_t *r,
    ngx_http_mitte_zone_ctx_t *ctx, ngx_str_t *user, ngx_str_t *filter,
    ngx_chain_t **last, uint32_t now_hour)
{
    ngx_uint_t                       n;
    ngx_queue_t                     *q;
    ngx_array_t                      copies;
    ngx_http_mitte_endpoint_node_t  *en;
    ngx_http_mitte_endpoint_copy_t  *copy;

    ngx_shmtx_lock(&ctx->shpool->mutex);

    if (ngx_array_init(&copies, r->pool,
                       user ? 8 : ngx_max(ctx->sh->counters.endpoints, 1),
                       sizeof(ngx_http_mitte_endpoint_copy_t))
        != NGX_OK)
    {
        goto failed;
    }

    for (q = ngx_queue_head(&ctx->sh->ep_lru);
         q != ngx_queue_sentinel(&ctx->sh->ep_lru);
         q = ngx_queue_next(q))
    {
        en = ngx_queue_data(q, ngx_http_mitte_endpoint_node_t, queue);

        if (user
            && (en->user_len != user->len
                || ngx_memcmp(en->ep.user, user->data, user->len) != 0))
        {
            continue;
        }

        if (filter && filter->len
            && (en->slug_len != filter->len
                || ngx_memcmp(en->ep.slug, filter->data, filter->len) != 0))
        {
            continue;
        }

        copy = ngx_array_push(&copies);
        if (copy == NULL) {
            goto failed;
        }

        ngx_http_mitte_endpoint_copy(ctx, en, copy);
    }

    ngx_shmtx_unlock(&ctx->shpool->mutex);

    if (ngx_http_mitte_write(r, last, (u_char *) "[", 1) != NGX_OK) {
        return NGX_ERROR;
    }

    copy = copies.elts;

    for (n = 0; n < copies.nelts; n++) {
        if ((n && ngx_http_mitte_write(r, last, (u_char *) ",", 1) != NGX_OK)
            || ngx_http_mitte_write_endpoint(r, &copy[n], last, now_hour)
               != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    return ngx_http_mitte_write(r, last, (u_char *) "]", 1);

failed:

    ngx_shmtx_unlock(&ctx->shpool->mutex);

    return NGX_ERROR;
}


ngx_int_t
ngx_http_mitte_write_endpoint(ngx_http_request_t *r,
    ngx_http_mitte_endpoint_copy_t *en, ngx_chain_t **last,
    uint32_t now_hour)
{
    u_char       *p;
    uint32_t      h, req, fail;
    ngx_str_t     name;
    ngx_uint_t    n;
    ngx_chain_t  *cl;

    cl = ngx_http_mitte_chain(r, last, NGX_HTTP_MITTE_ENDPOINT_JSON);
    if (cl == NULL) {
        return NGX_ERROR;
    }

    p = cl->buf->last;

    if (en->name_len) {
        name.data = en->name;
        name.len = en->name_len;

    } else {
        name.data = en->ep.slug;
        name.len = en->slug_len;
    }

    p = ngx_cpymem(p, "{\"slug\":", sizeof("{\"slug\":") - 1);
    p = ngx_http_mitte_json_str(p, en->ep.slug, en->slug_len);
    p = ngx_cpymem(p, ",\"name\":", sizeof(",\"name\":") - 1);
    p = ngx_http_mitte_json_str(p, name.data, name.len);
    p = ngx_cpymem(p, ",\"user\":", sizeof(",\"user\":") - 1);

    p = ngx_http_mitte_json_str_null(p, en->ep.user, en->user_len);

    p = ngx_sprintf(p, ",\"streak\":%uD,\"lastStatus\":",
                    en->ep.streak.count);

    if (en->last_status) {
        p = ngx_sprintf(p, "%uD", (uint32_t) en->last_status);

    } else {
        p = ngx_cpymem(p, "null", 4);
    }

    p = ngx_cpymem(p, ",\"lastDeliveryAt\":",
                   sizeof(",\"lastDeliveryAt\":") - 1);

    if (en->ep.streak.last_ms) {
        p = ngx_http_mitte_json_time(p, (int64_t) en->ep.streak.last_ms);

    } else {
        p = ngx_cpymem(p, "null", 4);
    }

    p = ngx_cpymem(p, ",\"hours\":[", sizeof(",\"hours\":[") - 1);

    n = 0;

    for (h = now_hour - MITTE_RING_HISTORY; h <= now_hour; h++) {
        mitte_ring_get(&en->ep.ring, now_hour, h, &req, &fail);

        if (req == 0) {
            continue;
        }

        if (n++) {
            *p++ = ',';
        }

        p = ngx_cpymem(p, "{\"hour\":", sizeof("{\"hour\":") - 1);
        p = ngx_http_mitte_json_time(p, (int64_t) h * 3600 * 1000);
        p = ngx_sprintf(p, ",\"requests\":%uD,\"failures\":%uD}", req, fail);
    }

    *p++ = ']';
    *p++ = '}';

    cl->buf->last = p;

    return NGX_OK;
}


/* called with the zone locked; "u" may be NULL (a user not seen yet) */

ngx_int_t
ngx_http_mitte_write_quota(ngx_http_request_t *r,
    ngx_http_mitte_main_conf_t *mmcf, ngx_http_mitte_user_t *u, int64_t now,
    ngx_chain_t **last)
{
    u_char       *p;
    uint32_t      month, used;
    ngx_uint_t    plan;
    ngx_chain_t  *cl;

    cl = ngx_http_mitte_chain(r, last, 256);
    if (cl == NULL) {
        return NGX_ERROR;
    }

    month = mitte_month_of(now);
    plan = u ? u->plan : MITTE_PLAN_FREE;
    used = (u && u->month == month) ? u->used : 0;

    p = cl->buf->last;

    p = ngx_sprintf(p, "{\"plan\":\"%s\",\"used\":%uD,\"limit\":%ui,"
                       "\"period\":\"",
                    mitte_plan_name((int) plan), used,
                    mmcf->quota[plan].limit);
    p += mitte_month_format((char *) p, month);
    *p++ = '"';
    *p++ = '}';

    cl->buf->last = p;

    return NGX_OK;
}
