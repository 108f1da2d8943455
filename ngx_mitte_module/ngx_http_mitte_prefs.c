/*
 * Copyright (C) ngx_mitte_module authors
 *
 * Preferences (mitte_preferences): the caller's channels and types.
 * A user who never saved any has the defaults, which are not stored; an
 * address left empty means the user's known address (mitte_user_email),
 * which GET shows in its place.
 */


#include "ngx_http_mitte_module.h"
#include "ngx_http_mitte_api.h"
#include "mitte_doc.h"


/* a PATCH whose document changed meanwhile is applied again, so often */
#define NGX_HTTP_MITTE_PREFS_TRIES      16


static void ngx_http_mitte_prefs_body(ngx_http_request_t *r);
static void ngx_http_mitte_prefs_stored(ngx_http_mitte_zone_ctx_t *ctx,
    ngx_str_t *user, mitte_prefs_t *p, ngx_uint_t lock);
static ngx_int_t ngx_http_mitte_prefs_store(ngx_http_mitte_zone_ctx_t *ctx,
    ngx_str_t *user, mitte_prefs_t *orig, mitte_prefs_t *p);
static void ngx_http_mitte_prefs_get(ngx_http_request_t *r, ngx_str_t *user,
    mitte_prefs_t *p);
static ngx_int_t ngx_http_mitte_prefs_reply(ngx_http_request_t *r,
    mitte_prefs_t *p);


ngx_int_t
ngx_http_mitte_prefs_handler(ngx_http_request_t *r)
{
    ngx_str_t      user;
    mitte_prefs_t  p;

    if (ngx_http_mitte_caller(r, &user) != NGX_OK) {
        return ngx_http_mitte_reply_unauthorized(r);
    }

    if (r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD)) {
        if (ngx_http_discard_request_body(r) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        ngx_http_mitte_prefs_get(r, &user, &p);

        return ngx_http_mitte_prefs_reply(r, &p);
    }

    if (r->method & (NGX_HTTP_PUT|NGX_HTTP_PATCH)) {
        return ngx_http_mitte_read_body(r, ngx_http_mitte_prefs_body);
    }

    return ngx_http_mitte_reply_not_allowed(r, "GET, HEAD, PUT, PATCH");
}


/*
 * The stored preferences, or the defaults, with the address to show
 * filled in when none is stored: this request's mitte_user_email, else the
 * address remembered for the user.
 */

static void
ngx_http_mitte_prefs_get(ngx_http_request_t *r, ngx_str_t *user,
    mitte_prefs_t *p)
{
    ngx_str_t                    email;
    ngx_http_mitte_zone_ctx_t   *ctx;
    ngx_http_mitte_loc_conf_t   *mlcf;
    ngx_http_mitte_main_conf_t  *mmcf;
    ngx_http_mitte_user_node_t  *un;

    mlcf = ngx_http_get_module_loc_conf(r, ngx_http_mitte_module);
    mmcf = ngx_http_get_module_main_conf(r, ngx_http_mitte_module);
    ctx = mmcf->shm_zone->data;

    ngx_str_null(&email);

    if (mlcf->email
        && (ngx_http_mitte_value(r, mlcf->email, &email) != NGX_OK
            || !mitte_email_valid((char *) email.data, email.len)))
    {
        ngx_str_null(&email);
    }

    (void) mitte_prefs_default(p, NULL, 0);

    ngx_shmtx_lock(&ctx->shpool->mutex);

    un = ngx_http_mitte_user_lookup(ctx, user->data, user->len);

    if (un && un->prefs_off) {
        ngx_memcpy(p, (u_char *) ctx->shpool + un->prefs_off,
                   sizeof(mitte_prefs_t));
    }

    if (p->email_len == 0) {
        if (email.len) {
            ngx_memcpy(p->email, email.data, email.len);
            p->email_len = (uint16_t) email.len;

        } else if (un && un->user.email_len) {
            ngx_memcpy(p->email, un->user.email, un->user.email_len);
            p->email_len = un->user.email_len;
        }

        p->email[p->email_len] = '\0';
    }

    ngx_shmtx_unlock(&ctx->shpool->mutex);
}


/*
 * PUT and PATCH: the stored document is copied under the lock, patched
 * without it (the body is parsed then), and written back under the lock
 * only if the stored document is still the one copied; otherwise the
 * patch is applied again to the new one, so that two partial updates at
 * once (on two workers) are both kept.
 */

static void
ngx_http_mitte_prefs_body(ngx_http_request_t *r)
{
    ngx_int_t                    rc;
    ngx_str_t                    body, user;
    ngx_uint_t                   tries;
    mitte_prefs_t                orig, p, shown;
    mitte_doc_error_t            err;
    ngx_http_mitte_zone_ctx_t   *ctx;
    ngx_http_mitte_main_conf_t  *mmcf;

    if (ngx_http_mitte_body_or_error(r, &body, &rc) != NGX_OK) {
        ngx_http_finalize_request(r, rc);
        return;
    }

    if (ngx_http_mitte_caller(r, &user) != NGX_OK) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    mmcf = ngx_http_get_module_main_conf(r, ngx_http_mitte_module);
    ctx = mmcf->shm_zone->data;

    for (tries = 0; tries < NGX_HTTP_MITTE_PREFS_TRIES; tries++) {

        ngx_http_mitte_prefs_stored(ctx, &user, &orig, 1);

        p = orig;

        if (mitte_prefs_patch(&p, (char *) body.data, body.len,
                              mmcf->webhook_allow
                              ? mmcf->webhook_allow->elts : NULL,
                              mmcf->webhook_allow
                              ? mmcf->webhook_allow->nelts : 0,
                              &err)
            != 0)
        {
            rc = ngx_http_mitte_reply_error(r, NGX_HTTP_BAD_REQUEST, err.code,
                                            err.message);
            ngx_http_finalize_request(r, rc);
            return;
        }

        rc = ngx_http_mitte_prefs_store(ctx, &user, &orig, &p);

        if (rc != NGX_AGAIN) {
            break;
        }
    }

    if (rc != NGX_OK) {
        rc = ngx_http_mitte_reply_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                        "unavailable",
                                        rc == NGX_AGAIN
                                        ? "The preferences kept changing: "
                                          "try again."
                                        : "The zone is full.");
        ngx_http_finalize_request(r, rc);
        return;
    }

    ngx_http_mitte_prefs_get(r, &user, &shown);

    ngx_http_finalize_request(r, ngx_http_mitte_prefs_reply(r, &shown));
}


/*
 * The stored document of the user, or the defaults (an empty address
 * stays empty); "lock": take the zone's lock for it.
 */

static void
ngx_http_mitte_prefs_stored(ngx_http_mitte_zone_ctx_t *ctx, ngx_str_t *user,
    mitte_prefs_t *p, ngx_uint_t lock)
{
    ngx_http_mitte_user_node_t  *un;

    (void) mitte_prefs_default(p, NULL, 0);

    if (lock) {
        ngx_shmtx_lock(&ctx->shpool->mutex);
    }

    un = ngx_http_mitte_user_lookup(ctx, user->data, user->len);

    if (un && un->prefs_off) {
        ngx_memcpy(p, (u_char *) ctx->shpool + un->prefs_off,
                   sizeof(mitte_prefs_t));
    }

    if (lock) {
        ngx_shmtx_unlock(&ctx->shpool->mutex);
    }
}


/*
 * Writes "p" when the stored document is still "orig": NGX_OK; NGX_AGAIN
 * when it changed meanwhile; NGX_DECLINED when the zone is full.
 */

static ngx_int_t
ngx_http_mitte_prefs_store(ngx_http_mitte_zone_ctx_t *ctx, ngx_str_t *user,
    mitte_prefs_t *orig, mitte_prefs_t *p)
{
    u_char                      *m;
    mitte_prefs_t                now;
    ngx_http_mitte_user_node_t  *un;

    ngx_shmtx_lock(&ctx->shpool->mutex);

    ngx_http_mitte_prefs_stored(ctx, user, &now, 0);

    if (ngx_memcmp(&now, orig, sizeof(mitte_prefs_t)) != 0) {
        ngx_shmtx_unlock(&ctx->shpool->mutex);
        return NGX_AGAIN;
    }

    un = ngx_http_mitte_user_get(ctx, user->data, user->len, NULL);

    if (un && un->prefs_off == 0) {
        m = ngx_http_mitte_alloc(ctx, sizeof(mitte_prefs_t), un);

        if (m) {
            un->prefs_off = (uint32_t) (m - (u_char *) ctx->shpool);
        }
    }

    if (un == NULL || un->prefs_off == 0) {
        ngx_shmtx_unlock(&ctx->shpool->mutex);
        return NGX_DECLINED;
    }

    ngx_memcpy((u_char *) ctx->shpool + un->prefs_off, p,
               sizeof(mitte_prefs_t));

    ngx_shmtx_unlock(&ctx->shpool->mutex);

    return NGX_OK;
}


static ngx_int_t
ngx_http_mitte_prefs_reply(ngx_http_request_t *r, mitte_prefs_t *p)
{
    size_t       len;
    ngx_buf_t   *b;
    char         probe[1];

    len = mitte_prefs_json(p, probe, sizeof(probe));

    b = ngx_create_temp_buf(r->pool, len + 2);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    (void) mitte_prefs_json(p, (char *) b->last, len + 1);

    b->last += len;
    *b->last++ = LF;

    return ngx_http_mitte_reply_buf(r, NGX_HTTP_OK, b);
}
