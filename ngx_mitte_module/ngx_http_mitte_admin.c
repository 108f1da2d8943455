/*
 * Copyright (C) ngx_mitte_module authors
 *
 * The operator API (mitte_admin): endpoints, users, metrics, a sweep on
 * demand, and the outbox's list.
 */


#include "ngx_http_mitte_module.h"
#include "ngx_http_mitte_rules.h"
#include "ngx_http_mitte_api.h"
#include "ngx_http_mitte_redis.h"
#include "ngx_http_mitte_cluster.h"
#include "mitte_doc.h"


#define NGX_HTTP_MITTE_CLUSTER_METRICS_LEN  2048
#define NGX_HTTP_MITTE_SEND_JSON        16384


/* a user's GET or PUT waiting for Redis (cluster mode) */
typedef struct {
    ngx_str_t                    id;
    ngx_uint_t                   put;
    uint32_t                     month;
} ngx_http_mitte_admin_user_ctx_t;


typedef enum {
    NGX_HTTP_MITTE_ROUTE_NONE = 0,
    NGX_HTTP_MITTE_ROUTE_ENDPOINTS,
    NGX_HTTP_MITTE_ROUTE_ENDPOINT,
    NGX_HTTP_MITTE_ROUTE_USER,
    NGX_HTTP_MITTE_ROUTE_METRICS,
    NGX_HTTP_MITTE_ROUTE_SWEEP,
    NGX_HTTP_MITTE_ROUTE_OUTBOX
} ngx_http_mitte_route_e;


static ngx_http_mitte_route_e ngx_http_mitte_admin_route(
    ngx_http_request_t *r, ngx_str_t *arg);
static void ngx_http_mitte_admin_body(ngx_http_request_t *r);
static ngx_int_t ngx_http_mitte_admin_endpoints(ngx_http_request_t *r);
static ngx_int_t ngx_http_mitte_admin_endpoint(ngx_http_request_t *r,
    ngx_str_t *slug);
static ngx_int_t ngx_http_mitte_admin_put_endpoint(ngx_http_request_t *r,
    ngx_str_t *slug, ngx_str_t *body);
static ngx_int_t ngx_http_mitte_admin_delete_endpoint(ngx_http_request_t *r,
    ngx_str_t *slug);
static ngx_int_t ngx_http_mitte_admin_user(ngx_http_request_t *r,
    ngx_str_t *id);
static ngx_int_t ngx_http_mitte_admin_put_user(ngx_http_request_t *r,
    ngx_str_t *id, ngx_str_t *body);
static ngx_int_t ngx_http_mitte_admin_user_answer(ngx_http_request_t *r,
    ngx_str_t *id, uint32_t used);
static ngx_int_t ngx_http_mitte_admin_user_start(ngx_http_request_t *r,
    ngx_str_t *id, mitte_user_doc_t *doc);
static ngx_int_t ngx_http_mitte_admin_user_redis(ngx_http_mitte_wait_t *wt,
    redisReply *reply, ngx_uint_t rc);
static ngx_int_t ngx_http_mitte_write_user(ngx_http_request_t *r,
    ngx_http_mitte_main_conf_t *mmcf, ngx_http_mitte_user_t *u,
    ngx_chain_t **last);
static ngx_int_t ngx_http_mitte_admin_metrics(ngx_http_request_t *r);
static u_char *ngx_http_mitte_metrics_cluster(u_char *p,
    ngx_http_mitte_cluster_counters_t *cc, ngx_uint_t dirty);
static u_char *ngx_http_mitte_metrics_work(u_char *p,
    ngx_http_mitte_counters_t *c, ngx_uint_t *pending,
    ngx_uint_t subscribers);
static ngx_int_t ngx_http_mitte_admin_outbox(ngx_http_request_t *r);
static u_char *ngx_http_mitte_write_send(u_char *p,
    ngx_http_mitte_send_t *s);


static const char  *ngx_http_mitte_send_states[] = {
    "pending", "pending", "sent", "failed"
};


ngx_int_t
ngx_http_mitte_admin_handler(ngx_http_request_t *r)
{
    ngx_int_t               rc;
    ngx_str_t               arg;
    ngx_uint_t              get;
    ngx_http_mitte_route_e  route;

    route = ngx_http_mitte_admin_route(r, &arg);

    /*
     * only PUT of an endpoint or a user reads a body: every other answer,
     * 404 included, discards it first, or it would be read as the next
     * request of the connection
     */

    if (!((r->method & NGX_HTTP_PUT)
          && (route == NGX_HTTP_MITTE_ROUTE_ENDPOINT
              || route == NGX_HTTP_MITTE_ROUTE_USER))
        && ngx_http_discard_request_body(r) != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    get = r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD);

    switch (route) {

    case NGX_HTTP_MITTE_ROUTE_ENDPOINTS:
        return get ? ngx_http_mitte_admin_endpoints(r)
                   : ngx_http_mitte_reply_not_allowed(r, "GET, HEAD");

    case NGX_HTTP_MITTE_ROUTE_ENDPOINT:
        if (get) {
            return ngx_http_mitte_admin_endpoint(r, &arg);
        }

        if (r->method & NGX_HTTP_PUT) {
            return ngx_http_mitte_read_body(r, ngx_http_mitte_admin_body);
        }

        if (r->method & NGX_HTTP_DELETE) {
            return ngx_http_mitte_admin_delete_endpoint(r, &arg);
        }

        return ngx_http_mitte_reply_not_allowed(r, "GET, HEAD, PUT, DELETE");

    case NGX_HTTP_MITTE_ROUTE_USER:
        if (get) {
            return ngx_http_mitte_admin_user(r, &arg);
        }

        if (r->method & NGX_HTTP_PUT) {
            return ngx_http_mitte_read_body(r, ngx_http_mitte_admin_body);
        }

        return ngx_http_mitte_reply_not_allowed(r, "GET, HEAD, PUT");

    case NGX_HTTP_MITTE_ROUTE_SWEEP:
        if (!(r->method & NGX_HTTP_POST)) {
            return ngx_http_mitte_reply_not_allowed(r, "POST");
        }

        r->main->count++;

        rc = ngx_http_mitte_sweep_request(r);

        if (rc != NGX_DONE) {
            r->main->count--;
        }

        return rc;

    case NGX_HTTP_MITTE_ROUTE_OUTBOX:
        return get ? ngx_http_mitte_admin_outbox(r)
                   : ngx_http_mitte_reply_not_allowed(r, "GET, HEAD");

    case NGX_HTTP_MITTE_ROUTE_METRICS:
        return get ? ngx_http_mitte_admin_metrics(r)
                   : ngx_http_mitte_reply_not_allowed(r, "GET, HEAD");

    default:
        return ngx_http_mitte_reply_error(r, NGX_HTTP_NOT_FOUND, "not_found",
                                          "No such operator API resource.");
    }
}


/* the part of the URI after the location's prefix names the resource */

static ngx_http_mitte_route_e
ngx_http_mitte_admin_route(ngx_http_request_t *r, ngx_str_t *arg)
{
    u_char     *p, *end;
    ngx_str_t   path;

    ngx_http_mitte_subpath(r, &path);

    end = path.data + path.len;

    ngx_str_null(arg);

    if (path.len == 7 && ngx_strncmp(path.data, "metrics", 7) == 0) {
        return NGX_HTTP_MITTE_ROUTE_METRICS;
    }

    if (path.len == 6 && ngx_strncmp(path.data, "outbox", 6) == 0) {
        return NGX_HTTP_MITTE_ROUTE_OUTBOX;
    }

    if (path.len == 5 && ngx_strncmp(path.data, "sweep", 5) == 0) {
        return NGX_HTTP_MITTE_ROUTE_SWEEP;
    }

    if (path.len == 9 && ngx_strncmp(path.data, "endpoints", 9) == 0) {
        return NGX_HTTP_MITTE_ROUTE_ENDPOINTS;
    }

    if (path.len > 10 && ngx_strncmp(path.data, "endpoints/", 10) == 0) {
        p = path.data + 10;

        if (ngx_strlchr(p, end, '/') != NULL) {
            return NGX_HTTP_MITTE_ROUTE_NONE;
        }

        arg->data = p;
        arg->len = end - p;

        return NGX_HTTP_MITTE_ROUTE_ENDPOINT;
    }

    if (path.len > 6 && ngx_strncmp(path.data, "users/", 6) == 0) {
        p = path.data + 6;

        if (ngx_strlchr(p, end, '/') != NULL) {
            return NGX_HTTP_MITTE_ROUTE_NONE;
        }

        arg->data = p;
        arg->len = end - p;

        return NGX_HTTP_MITTE_ROUTE_USER;
    }

    return NGX_HTTP_MITTE_ROUTE_NONE;
}


static void
ngx_http_mitte_admin_body(ngx_http_request_t *r)
{
    ngx_int_t               rc;
    ngx_str_t               arg, body;
    ngx_http_mitte_route_e  route;

    if (ngx_http_mitte_body_or_error(r, &body, &rc) != NGX_OK) {
        ngx_http_finalize_request(r, rc);
        return;
    }

    route = ngx_http_mitte_admin_route(r, &arg);

    if (route == NGX_HTTP_MITTE_ROUTE_ENDPOINT) {
        rc = ngx_http_mitte_admin_put_endpoint(r, &arg, &body);

    } else {
        rc = ngx_http_mitte_admin_put_user(r, &arg, &body);
    }

    ngx_http_finalize_request(r, rc);
}


static ngx_int_t
ngx_http_mitte_admin_endpoints(ngx_http_request_t *r)
{
    ngx_chain_t                 *out, *last;
    ngx_http_mitte_main_conf_t  *mmcf;

    mmcf = ngx_http_get_module_main_conf(r, ngx_http_mitte_module);

    last = NULL;

    out = ngx_http_mitte_chain(r, &last, 64);
    if (out == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ngx_http_mitte_write(r, &last, (u_char *) "{\"endpoints\":", 13)
        != NGX_OK
        || ngx_http_mitte_write_endpoints(r, mmcf->shm_zone->data, NULL, NULL,
                                          &last, mitte_hour_of(ngx_time()))
           != NGX_OK
        || ngx_http_mitte_write(r, &last, (u_char *) "}\n", 2) != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_mitte_reply_json(r, NGX_HTTP_OK, out);
}


static ngx_int_t
ngx_http_mitte_admin_endpoint(ngx_http_request_t *r, ngx_str_t *slug)
{
    ngx_int_t                        rc;
    ngx_chain_t                     *out, *last;
    ngx_http_mitte_endpoint_copy_t   copy;
    ngx_http_mitte_zone_ctx_t       *ctx;
    ngx_http_mitte_main_conf_t      *mmcf;
    ngx_http_mitte_endpoint_node_t  *en;

    if (!mitte_slug_valid(slug->data, slug->len)) {
        return ngx_http_mitte_reply_error(r, NGX_HTTP_NOT_FOUND, "not_found",
                                          "No such endpoint.");
    }

    mmcf = ngx_http_get_module_main_conf(r, ngx_http_mitte_module);
    ctx = mmcf->shm_zone->data;

    last = NULL;
    out = NULL;

    ngx_shmtx_lock(&ctx->shpool->mutex);

    en = ngx_http_mitte_endpoint_lookup(ctx, slug->data, slug->len);

    if (en) {
        ngx_http_mitte_endpoint_copy(ctx, en, &copy);
    }

    ngx_shmtx_unlock(&ctx->shpool->mutex);

    if (en) {
        rc = ngx_http_mitte_write_endpoint(r, &copy, &last,
                                           mitte_hour_of(ngx_time()));
        out = last;

    } else {
        rc = NGX_DECLINED;
    }

    if (rc == NGX_DECLINED) {
        return ngx_http_mitte_reply_error(r, NGX_HTTP_NOT_FOUND, "not_found",
                                          "No such endpoint.");
    }

    if (rc != NGX_OK
        || ngx_http_mitte_write(r, &last, (u_char *) "\n", 1) != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_mitte_reply_json(r, NGX_HTTP_OK, out);
}


static ngx_int_t
ngx_http_mitte_admin_put_endpoint(ngx_http_request_t *r, ngx_str_t *slug,
    ngx_str_t *body)
{
    uint32_t                         now_hour;
    ngx_int_t                        rc;
    ngx_str_t                        s;
    ngx_uint_t                       i;
    ngx_chain_t                     *out, *last;
    mitte_doc_error_t                err;
    mitte_endpoint_doc_t             doc;
    ngx_http_mitte_endpoint_copy_t   copy;
    ngx_http_mitte_zone_ctx_t       *ctx;
    ngx_http_mitte_main_conf_t      *mmcf;
    ngx_http_mitte_endpoint_node_t  *en;

    if (!mitte_slug_valid(slug->data, slug->len)) {
        return ngx_http_mitte_reply_error(r, NGX_HTTP_BAD_REQUEST,
                                          "invalid_field",
                                          "The slug must be 1-64 bytes of "
                                          "A-Za-z0-9._-.");
    }

    if (mitte_endpoint_doc_parse((char *) body->data, body->len, &doc, &err)
        != 0)
    {
        return ngx_http_mitte_reply_error(r, NGX_HTTP_BAD_REQUEST, err.code,
                                          err.message);
    }

    mmcf = ngx_http_get_module_main_conf(r, ngx_http_mitte_module);
    ctx = mmcf->shm_zone->data;

    now_hour = mitte_hour_of(ngx_time());

    last = NULL;

    ngx_shmtx_lock(&ctx->shpool->mutex);

    en = ngx_http_mitte_endpoint_get(ctx, slug->data, slug->len);

    if (en == NULL) {
        ngx_shmtx_unlock(&ctx->shpool->mutex);
        mitte_endpoint_doc_free(&doc);

        return ngx_http_mitte_reply_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                          "unavailable",
                                          "The zone is full.");
    }

    if (doc.has_user) {
        s.data = (u_char *) doc.user;
        s.len = doc.user_len;
        (void) ngx_http_mitte_endpoint_set_user(en, &s);
    }

    if (doc.has_name) {
        s.data = (u_char *) doc.name;
        s.len = doc.name_len;
        ngx_http_mitte_endpoint_set_name(ctx, en, &s);
    }

    for (i = 0; i < doc.nhours; i++) {
        (void) mitte_ring_set(&en->ep.ring, now_hour, doc.hours[i].hour,
                              doc.hours[i].requests, doc.hours[i].failures);
    }

    ngx_http_mitte_endpoint_copy(ctx, en, &copy);

    ngx_shmtx_unlock(&ctx->shpool->mutex);

    mitte_endpoint_doc_free(&doc);

    if (mmcf->redis) {
        /* the cluster's copy, and every instance's zone */
        (void) ngx_http_mitte_sync_endpoint(mmcf, slug->data, slug->len);
    }

    rc = ngx_http_mitte_write_endpoint(r, &copy, &last, now_hour);
    out = last;

    if (rc != NGX_OK
        || ngx_http_mitte_write(r, &last, (u_char *) "\n", 1) != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_mitte_reply_json(r, NGX_HTTP_OK, out);
}


static ngx_int_t
ngx_http_mitte_admin_delete_endpoint(ngx_http_request_t *r, ngx_str_t *slug)
{
    ngx_buf_t                       *b;
    ngx_http_mitte_zone_ctx_t       *ctx;
    ngx_http_mitte_main_conf_t      *mmcf;
    ngx_http_mitte_endpoint_node_t  *en;

    if (!mitte_slug_valid(slug->data, slug->len)) {
        return ngx_http_mitte_reply_error(r, NGX_HTTP_NOT_FOUND, "not_found",
                                          "No such endpoint.");
    }

    mmcf = ngx_http_get_module_main_conf(r, ngx_http_mitte_module);
    ctx = mmcf->shm_zone->data;

    ngx_shmtx_lock(&ctx->shpool->mutex);

    en = ngx_http_mitte_endpoint_lookup(ctx, slug->data, slug->len);

    if (en) {
        ngx_http_mitte_endpoint_delete(ctx, en);
    }

    ngx_shmtx_unlock(&ctx->shpool->mutex);

    if (en == NULL) {
        return ngx_http_mitte_reply_error(r, NGX_HTTP_NOT_FOUND, "not_found",
                                          "No such endpoint.");
    }

    b = ngx_create_temp_buf(r->pool, MITTE_SLUG_MAX + 32);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b->last = ngx_sprintf(b->last, "{\"slug\":\"%V\",\"deleted\":true}\n",
                          slug);

    return ngx_http_mitte_reply_buf(r, NGX_HTTP_OK, b);
}


static ngx_int_t
ngx_http_mitte_admin_user(ngx_http_request_t *r, ngx_str_t *id)
{
    ngx_int_t  rc;

    rc = ngx_http_mitte_admin_user_start(r, id, NULL);

    if (rc == NGX_DONE) {
        return NGX_DONE;
    }

    return ngx_http_mitte_admin_user_answer(r, id, 0);
}


/*
 * The zone's user, its quota use at least "used" (Redis's, cluster-wide,
 * in cluster mode), or 404
 */

static ngx_int_t
ngx_http_mitte_admin_user_answer(ngx_http_request_t *r, ngx_str_t *id,
    uint32_t used)
{
    uint32_t                     month;
    ngx_chain_t                 *out, *last;
    ngx_http_mitte_user_t        u;
    ngx_http_mitte_zone_ctx_t   *ctx;
    ngx_http_mitte_main_conf_t  *mmcf;
    ngx_http_mitte_user_node_t  *un;

    mmcf = ngx_http_get_module_main_conf(r, ngx_http_mitte_module);
    ctx = mmcf->shm_zone->data;

    last = NULL;

    ngx_shmtx_lock(&ctx->shpool->mutex);

    un = ngx_http_mitte_user_lookup(ctx, id->data, id->len);

    if (un) {
        u = un->user;
    }

    ngx_shmtx_unlock(&ctx->shpool->mutex);

    if (un == NULL) {
        return ngx_http_mitte_reply_error(r, NGX_HTTP_NOT_FOUND, "not_found",
                                          "No such user.");
    }

    month = mitte_month_of(ngx_time());

    if (used && (u.month != month || u.used < used)) {
        u.month = month;
        u.used = used;
    }

    if (ngx_http_mitte_write_user(r, mmcf, &u, &last) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* one link: ngx_http_mitte_chain() makes them of 32 KiB */
    out = last;

    return ngx_http_mitte_reply_json(r, NGX_HTTP_OK, out);
}


/*
 * Cluster mode: a PUT ("doc") writes the meta to Redis, a GET reads it
 * and the month's quota use; the answer waits for Redis (NGX_DONE).
 * NGX_DECLINED: no mitte_redis, or Redis not ready (logged): the zone
 * answers at once.
 */

static ngx_int_t
ngx_http_mitte_admin_user_start(ngx_http_request_t *r, ngx_str_t *id,
    mitte_user_doc_t *doc)
{
    ngx_int_t                         rc;
    ngx_http_mitte_wait_t            *wt;
    ngx_http_mitte_main_conf_t       *mmcf;
    ngx_http_mitte_admin_user_ctx_t  *uc;

    mmcf = ngx_http_get_module_main_conf(r, ngx_http_mitte_module);

    if (mmcf->redis == NULL) {
        return NGX_DECLINED;
    }

    if (ngx_http_mitte_redis_ready() != NGX_OK) {
        ngx_http_mitte_cluster_log(r->connection->log,
                                   "user \"%V\" %s without Redis: not "
                                   "connected", id, doc ? "saved" : "read");
        return NGX_DECLINED;
    }

    uc = ngx_pcalloc(r->pool, sizeof(ngx_http_mitte_admin_user_ctx_t));
    if (uc == NULL) {
        return NGX_DECLINED;
    }

    uc->id = *id;
    uc->put = (doc != NULL);
    uc->month = mitte_month_of(ngx_time());

    wt = ngx_http_mitte_wait_create(r, ngx_http_mitte_admin_user_redis, uc);
    if (wt == NULL) {
        return NGX_DECLINED;
    }

    rc = doc ? ngx_http_mitte_user_meta_set(wt, id, doc)
             : ngx_http_mitte_user_meta_get(wt, id, uc->month);

    if (rc != NGX_OK) {
        ngx_http_mitte_wait_cancel(wt);
        return NGX_DECLINED;
    }

    ngx_http_mitte_wait_begin(wt);

    return NGX_DONE;
}


static ngx_int_t
ngx_http_mitte_admin_user_redis(ngx_http_mitte_wait_t *wt,
    redisReply *reply, ngx_uint_t rc)
{
    ngx_http_request_t               *r = wt->request;
    ngx_http_mitte_admin_user_ctx_t  *uc = wt->data;

    uint32_t                     used;
    ngx_int_t                    n;
    redisReply                  *meta, *quota;
    mitte_user_doc_t             doc;
    ngx_http_mitte_main_conf_t  *mmcf;

    mmcf = ngx_http_get_module_main_conf(r, ngx_http_mitte_module);

    used = 0;
    meta = NULL;
    quota = NULL;

    if (rc == NGX_HTTP_MITTE_REDIS_REPLY && uc->put) {
        meta = reply;

    } else if (rc == NGX_HTTP_MITTE_REDIS_REPLY
               && reply->type == REDIS_REPLY_ARRAY && reply->elements == 2)
    {
        meta = reply->element[0];
        quota = reply->element[1];
    }

    if (meta == NULL || meta->type == REDIS_REPLY_ERROR) {
        ngx_http_mitte_cluster_log(r->connection->log,
                                   "user \"%V\" %s without Redis: %s",
                                   &uc->id, uc->put ? "saved" : "read",
                                   ngx_http_mitte_cluster_why(meta, rc));

        return ngx_http_mitte_admin_user_answer(r, &uc->id, 0);
    }

    if (ngx_http_mitte_user_meta_read(r->connection->log, &uc->id, meta,
                                      &doc)
        == NGX_OK)
    {
        (void) ngx_http_mitte_user_apply(mmcf, &uc->id, &doc);

        if (uc->put) {
            ngx_http_mitte_user_meta_publish(r, &uc->id, &doc);
        }
    }

    if (quota && quota->type == REDIS_REPLY_STRING) {
        n = ngx_atoi((u_char *) quota->str, quota->len);

        if (n >= 0) {
            used = (uint32_t) ngx_min(n, (ngx_int_t) NGX_MAX_UINT32_VALUE);

        } else {
            ngx_http_mitte_cluster_log(r->connection->log,
                                       "the quota use of user \"%V\" in "
                                       "Redis is not a number", &uc->id);
        }
    }

    return ngx_http_mitte_admin_user_answer(r, &uc->id, used);
}


static ngx_int_t
ngx_http_mitte_admin_put_user(ngx_http_request_t *r, ngx_str_t *id,
    ngx_str_t *body)
{
    ngx_int_t                    rc;
    ngx_uint_t                   i;
    mitte_doc_error_t            err;
    mitte_user_doc_t             doc;
    ngx_http_mitte_user_t       *u;
    ngx_http_mitte_zone_ctx_t   *ctx;
    ngx_http_mitte_main_conf_t  *mmcf;
    ngx_http_mitte_user_node_t  *un;

    for (i = 0; i < id->len; i++) {
        if ((id->data[i] < 0x20 && id->data[i] != '\t')
            || id->data[i] == 0x7f)
        {
            break;
        }
    }

    if (id->len == 0 || id->len > MITTE_USER_MAX || i < id->len) {
        return ngx_http_mitte_reply_error(r, NGX_HTTP_BAD_REQUEST,
                                          "invalid_field",
                                          "The user id must be 1-64 bytes "
                                          "without control characters.");
    }

    if (mitte_user_doc_parse((char *) body->data, body->len, &doc, &err)
        != 0)
    {
        return ngx_http_mitte_reply_error(r, NGX_HTTP_BAD_REQUEST, err.code,
                                          err.message);
    }

    mmcf = ngx_http_get_module_main_conf(r, ngx_http_mitte_module);
    ctx = mmcf->shm_zone->data;

    ngx_shmtx_lock(&ctx->shpool->mutex);

    un = ngx_http_mitte_user_get(ctx, id->data, id->len, NULL);

    if (un == NULL) {
        ngx_shmtx_unlock(&ctx->shpool->mutex);

        return ngx_http_mitte_reply_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                          "unavailable",
                                          "The zone is full.");
    }

    u = &un->user;

    if (doc.has_plan) {
        u->plan = (uint8_t) doc.plan;
        u->plan_set = 1;
    }

    if (doc.has_trial) {
        u->trial_ends = doc.trial_ends;
    }

    if (doc.has_email) {
        ngx_memcpy(u->email, doc.email, doc.email_len);
        u->email_len = (uint8_t) doc.email_len;
    }

    ngx_shmtx_unlock(&ctx->shpool->mutex);

    /* cluster mode: written to Redis too, answered after its reply */

    rc = ngx_http_mitte_admin_user_start(r, id, &doc);

    if (rc == NGX_DONE) {
        return NGX_DONE;
    }

    return ngx_http_mitte_admin_user_answer(r, id, 0);
}


/* called with the zone locked */

static ngx_int_t
ngx_http_mitte_write_user(ngx_http_request_t *r,
    ngx_http_mitte_main_conf_t *mmcf, ngx_http_mitte_user_t *u,
    ngx_chain_t **last)
{
    u_char       *p;
    ngx_chain_t  *cl;

    cl = ngx_http_mitte_chain(r, last, 2048);
    if (cl == NULL) {
        return NGX_ERROR;
    }

    p = cl->buf->last;

    p = ngx_cpymem(p, "{\"id\":", sizeof("{\"id\":") - 1);
    p = ngx_http_mitte_json_str(p, u->id, u->id_len);
    p = ngx_sprintf(p, ",\"plan\":\"%s\",\"trialEndsAt\":",
                    mitte_plan_name(u->plan));

    if (u->trial_ends) {
        p = ngx_http_mitte_json_time(p, u->trial_ends * 1000);

    } else {
        p = ngx_cpymem(p, "null", 4);
    }

    p = ngx_cpymem(p, ",\"email\":", sizeof(",\"email\":") - 1);

    p = ngx_http_mitte_json_str_null(p, u->email, u->email_len);

    p = ngx_cpymem(p, ",\"quota\":", sizeof(",\"quota\":") - 1);

    cl->buf->last = p;

    if (ngx_http_mitte_write_quota(r, mmcf, u, ngx_time(), last) != NGX_OK) {
        return NGX_ERROR;
    }

    return ngx_http_mitte_write(r, last, (u_char *) "}\n", 2);
}


static ngx_int_t
ngx_http_mitte_admin_metrics(ngx_http_request_t *r)
{
    size_t                       size, free;
    ngx_uint_t                   i, pending[2], subscribers;
    ngx_buf_t                   *b;
    ngx_chain_t                 *out;
    ngx_http_mitte_counters_t    c;
    ngx_http_mitte_zone_ctx_t   *ctx;
    ngx_http_mitte_main_conf_t  *mmcf;

    static ngx_str_t  type = ngx_string("text/plain; version=0.0.4");

    mmcf = ngx_http_get_module_main_conf(r, ngx_http_mitte_module);
    ctx = mmcf->shm_zone->data;

    size = mmcf->shm_zone->shm.size;

    ngx_shmtx_lock(&ctx->shpool->mutex);

    c = ctx->sh->counters;
    free = ctx->shpool->pfree * ngx_pagesize;
    pending[0] = ctx->sh->npending[0];
    pending[1] = ctx->sh->npending[1];

    subscribers = 0;

    for (i = 0; i < NGX_HTTP_MITTE_MAX_WORKERS; i++) {
        subscribers += ctx->sh->workers[i].subscribers;
    }

    ngx_shmtx_unlock(&ctx->shpool->mutex);

    b = ngx_create_temp_buf(r->pool, 8192 + NGX_HTTP_MITTE_REDIS_METRICS_LEN
                                     + NGX_HTTP_MITTE_CLUSTER_METRICS_LEN
                                     + NGX_HTTP_MITTE_LEASE_METRICS_LEN);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b->last = ngx_sprintf(b->last,
        "# HELP mitte_deliveries_total Deliveries recorded, by result.\n"
        "# TYPE mitte_deliveries_total counter\n"
        "mitte_deliveries_total{result=\"success\"} %uL\n"
        "mitte_deliveries_total{result=\"failure\"} %uL\n"
        "# HELP mitte_quota_rejections_total Requests refused for the "
        "monthly quota.\n"
        "# TYPE mitte_quota_rejections_total counter\n"
        "mitte_quota_rejections_total %uL\n"
        "# HELP mitte_evictions_total Least recently used entries evicted "
        "from the full zone.\n"
        "# TYPE mitte_evictions_total counter\n"
        "mitte_evictions_total{kind=\"endpoint\"} %uL\n"
        "mitte_evictions_total{kind=\"user\"} %uL\n"
        "# HELP mitte_zone_alloc_failures_total Zone allocations that "
        "failed even after eviction.\n"
        "# TYPE mitte_zone_alloc_failures_total counter\n"
        "mitte_zone_alloc_failures_total %uL\n"
        "# HELP mitte_endpoints Endpoints held in the zone.\n"
        "# TYPE mitte_endpoints gauge\n"
        "mitte_endpoints %uL\n"
        "# HELP mitte_users Users held in the zone.\n"
        "# TYPE mitte_users gauge\n"
        "mitte_users %uL\n"
        "# HELP mitte_zone_size_bytes Size of the shared memory zone.\n"
        "# TYPE mitte_zone_size_bytes gauge\n"
        "mitte_zone_size_bytes %uz\n"
        "# HELP mitte_zone_used_bytes Bytes of the zone in use.\n"
        "# TYPE mitte_zone_used_bytes gauge\n"
        "mitte_zone_used_bytes %uz\n"
        "# HELP mitte_zone_free_bytes Bytes of the zone in free pages.\n"
        "# TYPE mitte_zone_free_bytes gauge\n"
        "mitte_zone_free_bytes %uz\n"
        "# HELP mitte_notifications_total Notifications created, by type.\n"
        "# TYPE mitte_notifications_total counter\n"
        "mitte_notifications_total{type=\"ANOMALY_DETECTED\"} %uL\n"
        "mitte_notifications_total{type=\"QUOTA_WARNING\"} %uL\n"
        "mitte_notifications_total{type=\"QUOTA_EXCEEDED\"} %uL\n"
        "mitte_notifications_total{type=\"ENDPOINT_DOWN\"} %uL\n"
        "mitte_notifications_total{type=\"ENDPOINT_RECOVERED\"} %uL\n"
        "mitte_notifications_total{type=\"TRIAL_ENDING\"} %uL\n",
        c.success, c.failure, c.quota_rejections, c.evicted_endpoints,
        c.evicted_users, c.nomem, c.endpoints, c.users, size, size - free,
        free, c.notifications[0], c.notifications[1], c.notifications[2],
        c.notifications[3], c.notifications[4], c.notifications[5]);

    b->last = ngx_http_mitte_metrics_work(b->last, &c, pending, subscribers);
    b->last = ngx_http_mitte_redis_metrics(b->last, mmcf->redis);
    b->last = ngx_http_mitte_lease_metrics(b->last);

    if (mmcf->redis) {
        b->last = ngx_http_mitte_metrics_cluster(b->last,
                                                 &ctx->sh->cluster,
                                                 ctx->sh->ndirty);
    }

    out = ngx_alloc_chain_link(r->pool);
    if (out == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    out->buf = b;
    out->next = NULL;

    return ngx_http_mitte_reply(r, NGX_HTTP_OK, &type, out);
}


/* cluster mode's: flushes, the backlog, the relay, sweep leadership */

static u_char *
ngx_http_mitte_metrics_cluster(u_char *p,
    ngx_http_mitte_cluster_counters_t *cc, ngx_uint_t dirty)
{
    ngx_uint_t  i, backlog;

    /* the zone's deltas not yet taken, and the flushes on their way */
    backlog = dirty;

    for (i = 0; i < NGX_HTTP_MITTE_MAX_WORKERS; i++) {
        backlog += cc->backlog[i];
    }

    return ngx_sprintf(p,
        "# HELP mitte_redis_flushes_total Batches of deliveries written "
        "to Redis.\n"
        "# TYPE mitte_redis_flushes_total counter\n"
        "mitte_redis_flushes_total %uA\n"
        "# HELP mitte_redis_flush_errors_total Flushes that failed (kept "
        "and sent again).\n"
        "# TYPE mitte_redis_flush_errors_total counter\n"
        "mitte_redis_flush_errors_total %uA\n"
        "# HELP mitte_redis_backlog_endpoints Endpoints with deltas not "
        "yet in Redis.\n"
        "# TYPE mitte_redis_backlog_endpoints gauge\n"
        "mitte_redis_backlog_endpoints %ui\n"
        "# HELP mitte_redis_backlog_dropped_total Deltas and events the "
        "backlog could not keep.\n"
        "# TYPE mitte_redis_backlog_dropped_total counter\n"
        "mitte_redis_backlog_dropped_total %uA\n"
        "# HELP mitte_redis_events_total Events sent to and read from the "
        "cluster's stream.\n"
        "# TYPE mitte_redis_events_total counter\n"
        "mitte_redis_events_total{direction=\"out\"} %uA\n"
        "mitte_redis_events_total{direction=\"in\"} %uA\n"
        "# HELP mitte_redis_entries_refused_total Stream entries that "
        "could not be applied.\n"
        "# TYPE mitte_redis_entries_refused_total counter\n"
        "mitte_redis_entries_refused_total %uA\n"
        "# HELP mitte_redis_sweeps_total Sweep intervals, by whether this "
        "instance led them.\n"
        "# TYPE mitte_redis_sweeps_total counter\n"
        "mitte_redis_sweeps_total{leader=\"won\"} %uA\n"
        "mitte_redis_sweeps_total{leader=\"lost\"} %uA\n",
        cc->flushes, cc->flush_errors, backlog, cc->dropped, cc->events_out,
        cc->events_in, cc->entries_bad, cc->sweeps_won, cc->sweeps_lost);
}


/* the metrics of the work done: sweeps, outbox, sends, streams, state */

static u_char *
ngx_http_mitte_metrics_work(u_char *p, ngx_http_mitte_counters_t *c,
    ngx_uint_t *pending, ngx_uint_t subscribers)
{
    p = ngx_sprintf(p,
        "# HELP mitte_sweeps_total Sweeps completed.\n"
        "# TYPE mitte_sweeps_total counter\n"
        "mitte_sweeps_total %uL\n"
        "# HELP mitte_sweep_cpu_seconds CPU time of the last sweep.\n"
        "# TYPE mitte_sweep_cpu_seconds gauge\n"
        "mitte_sweep_cpu_seconds %uL.%06uL\n"
        "# HELP mitte_sweep_slice_max_seconds Longest slice of the last "
        "sweep.\n"
        "# TYPE mitte_sweep_slice_max_seconds gauge\n"
        "mitte_sweep_slice_max_seconds %uL.%06uL\n"
        "# HELP mitte_outbox_pending Sends waiting in the outbox, by "
        "channel.\n"
        "# TYPE mitte_outbox_pending gauge\n"
        "mitte_outbox_pending{channel=\"email\"} %ui\n"
        "mitte_outbox_pending{channel=\"webhook\"} %ui\n"
        "# HELP mitte_outbox_full_total Sends dropped because the outbox "
        "was full, by channel.\n"
        "# TYPE mitte_outbox_full_total counter\n"
        "mitte_outbox_full_total{channel=\"email\"} %uL\n"
        "mitte_outbox_full_total{channel=\"webhook\"} %uL\n"
        "# HELP mitte_channel_sends_total Email and webhook sends "
        "finished, by channel and result.\n"
        "# TYPE mitte_channel_sends_total counter\n"
        "mitte_channel_sends_total{channel=\"email\",result=\"sent\"} "
        "%uL\n"
        "mitte_channel_sends_total{channel=\"email\",result=\"failed\"} "
        "%uL\n"
        "mitte_channel_sends_total{channel=\"webhook\",result=\"sent\"} "
        "%uL\n"
        "mitte_channel_sends_total{channel=\"webhook\",result=\"failed\"} "
        "%uL\n"
        "# HELP mitte_sse_subscribers Event stream subscribers.\n"
        "# TYPE mitte_sse_subscribers gauge\n"
        "mitte_sse_subscribers %ui\n",
        c->sweeps, c->sweep_usec / 1000000, c->sweep_usec % 1000000,
        c->sweep_slice_usec / 1000000, c->sweep_slice_usec % 1000000,
        pending[0], pending[1], c->outbox_full[0], c->outbox_full[1],
        c->sends[0][0], c->sends[0][1], c->sends[1][0], c->sends[1][1],
        subscribers);

    return ngx_sprintf(p,
        "# HELP mitte_state_writes_total State file writes, by result.\n"
        "# TYPE mitte_state_writes_total counter\n"
        "mitte_state_writes_total{result=\"written\"} %uL\n"
        "mitte_state_writes_total{result=\"failed\"} %uL\n"
        "# HELP mitte_state_write_seconds Wall time of the last state file "
        "write.\n"
        "# TYPE mitte_state_write_seconds gauge\n"
        "mitte_state_write_seconds %uL.%06uL\n"
        "# HELP mitte_state_lock_seconds How long the last state file write "
        "held the zone's lock.\n"
        "# TYPE mitte_state_lock_seconds gauge\n"
        "mitte_state_lock_seconds %uL.%06uL\n"
        "# HELP mitte_state_file_bytes Size of the last state file.\n"
        "# TYPE mitte_state_file_bytes gauge\n"
        "mitte_state_file_bytes %uL\n",
        c->state_writes[0], c->state_writes[1],
        c->state_usec / 1000000, c->state_usec % 1000000,
        c->state_lock_usec / 1000000, c->state_lock_usec % 1000000,
        c->state_bytes);
}


static u_char *
ngx_http_mitte_write_send(u_char *p, ngx_http_mitte_send_t *s)
{
    p = ngx_sprintf(p, "{\"notificationId\":\"" NGX_HTTP_MITTE_ID_FORMAT
                       "\",\"user\":",
                    s->created_ms, s->note_seq);
    p = ngx_http_mitte_json_str(p, s->user, s->user_len);
    p = ngx_sprintf(p, ",\"channel\":\"%s\",\"target\":",
                    s->channel == NGX_HTTP_MITTE_CHANNEL_EMAIL
                    ? "email" : "webhook");
    p = ngx_http_mitte_json_str(p, s->data, s->target_len);
    p = ngx_sprintf(p, ",\"state\":\"%s\",\"attempts\":%uD,\"lastError\":",
                    ngx_http_mitte_send_states[s->state],
                    (uint32_t) s->attempts);

    p = ngx_http_mitte_json_str_null(p, s->error, s->error_len);

    p = ngx_cpymem(p, ",\"updatedAt\":", sizeof(",\"updatedAt\":") - 1);
    p = ngx_http_mitte_json_time(p, (int64_t) s->updated_ms);
    *p++ = '}';

    return p;
}


static ngx_int_t
ngx_http_mitte_admin_outbox(ngx_http_request_t *r)
{
    ngx_uint_t                   i, n;
    ngx_queue_t                 *q, *head;
    ngx_chain_t                 *out, *last;
    ngx_http_mitte_send_t       *s;
    ngx_http_mitte_zone_ctx_t   *ctx;
    ngx_http_mitte_main_conf_t  *mmcf;

    mmcf = ngx_http_get_module_main_conf(r, ngx_http_mitte_module);
    ctx = mmcf->shm_zone->data;

    last = NULL;

    out = ngx_http_mitte_chain(r, &last, 64);
    if (out == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    last->buf->last = ngx_cpymem(last->buf->last, "{\"sends\":[",
                                 sizeof("{\"sends\":[") - 1);

    n = 0;

    ngx_shmtx_lock(&ctx->shpool->mutex);

    for (i = 0; i < 3; i++) {
        head = (i < 2) ? &ctx->sh->pending[i] : &ctx->sh->done;

        for (q = ngx_queue_head(head);
             q != ngx_queue_sentinel(head);
             q = ngx_queue_next(q))
        {
            s = ngx_queue_data(q, ngx_http_mitte_send_t, queue);

            if (ngx_http_mitte_chain(r, &last, NGX_HTTP_MITTE_SEND_JSON)
                == NULL)
            {
                ngx_shmtx_unlock(&ctx->shpool->mutex);
                return NGX_HTTP_INTERNAL_SERVER_ERROR;
            }

            if (n++) {
                *last->buf->last++ = ',';
            }

            last->buf->last = ngx_http_mitte_write_send(last->buf->last, s);
        }
    }

    ngx_shmtx_unlock(&ctx->shpool->mutex);

    if (ngx_http_mitte_write(r, &last, (u_char *) "]}\n", 3) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_mitte_reply_json(r, NGX_HTTP_OK, out);
}
