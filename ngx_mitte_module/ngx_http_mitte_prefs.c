/*
 * Copyright (C) ngx_mitte_module authors
 *
 * Preferences (mitte_preferences): the caller's channels and types.
 * A user who never saved any has the defaults, which are not stored; an
 * address left empty means the user's known address (mitte_user_email),
 * which GET shows in its place.
 *
 * Cluster mode (mitte_redis): the document of record is Redis's
 * "<prefix>{u:<user>}:prefs" (mitte_prefs_store_json()'s text, with a
 * revision). A save reads it, patches it in the zone (the zone's
 * compare-and-retry as without Redis), writes it back with a
 * compare-and-set on the text read (a save on another instance
 * meanwhile: read again, patch again), publishes it ("p"), and answers
 * after Redis did; a GET reads it and copies it into the zone. Redis not
 * ready, failing or slow: the zone answers at once, and a document saved
 * then is marked dirty: it is written to Redis at the user's next save or
 * GET on this instance, and Redis's copy does not replace it meanwhile.
 * The relay's entries ("p", "m") are applied here too.
 */


#include "ngx_http_mitte_module.h"
#include "ngx_http_mitte_api.h"
#include "ngx_http_mitte_cluster.h"
#include "mitte_doc.h"


/* a PATCH whose document changed meanwhile is applied again, so often */
#define NGX_HTTP_MITTE_PREFS_TRIES      16

/* how a save stores the revision */
#define NGX_HTTP_MITTE_PREFS_LOCAL      0   /* no mitte_redis: kept */
#define NGX_HTTP_MITTE_PREFS_OFFLINE    1   /* Redis away: marked dirty */
#define NGX_HTTP_MITTE_PREFS_SHARED     2   /* the next revision */


typedef struct {
    ngx_str_t                    user;
    ngx_str_t                    body;      /* the patch; "{}" for a push */
    ngx_str_t                    base;      /* Redis's text ("": none) */
    uint32_t                     base_rev;
    ngx_uint_t                   tries;
    ngx_uint_t                   save;      /* PUT, PATCH, or a push */
    ngx_uint_t                   writing;   /* the compare-and-set sent */
    uint32_t                     rev;       /* of the document written */
    ngx_str_t                    text;      /* the document written */
    size_t                       key_len;
    u_char                       key[NGX_HTTP_MITTE_REDIS_KEY_MAX];
} ngx_http_mitte_prefs_ctx_t;


static void ngx_http_mitte_prefs_body(ngx_http_request_t *r);
static void ngx_http_mitte_prefs_stored(ngx_http_mitte_zone_ctx_t *ctx,
    ngx_str_t *user, mitte_prefs_t *p, uint32_t *rev, ngx_uint_t lock);
static ngx_int_t ngx_http_mitte_prefs_update(ngx_http_request_t *r,
    ngx_str_t *user, ngx_str_t *body, ngx_uint_t mode, uint32_t base_rev,
    mitte_prefs_t *p, uint32_t *rev, ngx_int_t *rc);
static ngx_int_t ngx_http_mitte_prefs_store(ngx_http_mitte_zone_ctx_t *ctx,
    ngx_str_t *user, mitte_prefs_t *orig, uint32_t orev, mitte_prefs_t *p,
    uint32_t rev);
static void ngx_http_mitte_prefs_get(ngx_http_request_t *r, ngx_str_t *user,
    mitte_prefs_t *p, mitte_prefs_t *from);
static ngx_int_t ngx_http_mitte_prefs_reply(ngx_http_request_t *r,
    mitte_prefs_t *p);
static ngx_int_t ngx_http_mitte_prefs_answer(ngx_http_request_t *r,
    ngx_str_t *user, mitte_prefs_t *from);
static ngx_int_t ngx_http_mitte_prefs_start(ngx_http_request_t *r,
    ngx_str_t *user, ngx_str_t *body);
static ngx_int_t ngx_http_mitte_prefs_redis(ngx_http_mitte_wait_t *wt,
    redisReply *reply, ngx_uint_t rc);
static ngx_int_t ngx_http_mitte_prefs_read(ngx_http_mitte_wait_t *wt,
    redisReply *reply);
static ngx_int_t ngx_http_mitte_prefs_write(ngx_http_mitte_wait_t *wt);
static ngx_int_t ngx_http_mitte_prefs_written(ngx_http_mitte_wait_t *wt,
    redisReply *reply);
static ngx_int_t ngx_http_mitte_prefs_offline(ngx_http_mitte_wait_t *wt,
    const char *why);
static ngx_int_t ngx_http_mitte_prefs_base(ngx_http_request_t *r,
    ngx_http_mitte_prefs_ctx_t *pc, redisReply *reply, mitte_prefs_t *p);
static ngx_int_t ngx_http_mitte_prefs_import(
    ngx_http_mitte_zone_ctx_t *ctx, ngx_str_t *user, mitte_prefs_t *p,
    uint32_t rev, ngx_uint_t newer);
static void ngx_http_mitte_prefs_dirty(ngx_http_mitte_zone_ctx_t *ctx,
    ngx_str_t *user, uint32_t rev);
static void ngx_http_mitte_prefs_publish(ngx_http_request_t *r,
    ngx_str_t *user, u_char *text, size_t len, const char *kind);
static void ngx_http_mitte_cluster_done(redisReply *reply, void *data,
    ngx_uint_t rc);
static void ngx_http_mitte_wait_gone(void *data);


/*
 * The compare-and-set: KEYS[1] the document, ARGV[1] the text read
 * before ("": none), ARGV[2] the new text, ARGV[3] the TTL. 1: written;
 * else what is there now (the text, or 0: nothing).
 */
static ngx_http_mitte_redis_script_t  ngx_http_mitte_prefs_cas = {
    "local cur = redis.call('GET', KEYS[1])\n"
    "if (cur or '') ~= ARGV[1] then\n"
    "  if cur then return cur end\n"
    "  return 0\n"
    "end\n"
    "redis.call('SET', KEYS[1], ARGV[2], 'EX', tonumber(ARGV[3]))\n"
    "return 1\n",
    { 0 }
};

/*
 * A user's meta: KEYS[1] the hash, ARGV[1] the TTL, then field, value,
 * ...: set, the TTL refreshed, the whole hash returned.
 */
static ngx_http_mitte_redis_script_t  ngx_http_mitte_user_set_script = {
    "if #ARGV > 1 then\n"
    "  redis.call('HSET', KEYS[1], unpack(ARGV, 2))\n"
    "end\n"
    "redis.call('EXPIRE', KEYS[1], tonumber(ARGV[1]))\n"
    "return redis.call('HGETALL', KEYS[1])\n",
    { 0 }
};

/* KEYS[1] the meta, KEYS[2] the month's quota use: both at once */
static ngx_http_mitte_redis_script_t  ngx_http_mitte_user_get_script = {
    "return {redis.call('HGETALL', KEYS[1]),\n"
    "        redis.call('GET', KEYS[2]) or false}\n",
    { 0 }
};


static time_t  ngx_http_mitte_cluster_logged;


ngx_int_t
ngx_http_mitte_prefs_handler(ngx_http_request_t *r)
{
    ngx_int_t      rc;
    ngx_str_t      user;

    if (ngx_http_mitte_caller(r, &user) != NGX_OK) {
        return ngx_http_mitte_reply_unauthorized(r);
    }

    if (r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD)) {
        if (ngx_http_discard_request_body(r) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        rc = ngx_http_mitte_prefs_start(r, &user, NULL);

        if (rc == NGX_DONE) {
            return NGX_DONE;
        }

        return ngx_http_mitte_prefs_answer(r, &user, NULL);
    }

    if (r->method & (NGX_HTTP_PUT|NGX_HTTP_PATCH)) {
        return ngx_http_mitte_read_body(r, ngx_http_mitte_prefs_body);
    }

    return ngx_http_mitte_reply_not_allowed(r, "GET, HEAD, PUT, PATCH");
}


/* the answer: the zone's document, or "from", with the address to show */

static ngx_int_t
ngx_http_mitte_prefs_answer(ngx_http_request_t *r, ngx_str_t *user,
    mitte_prefs_t *from)
{
    mitte_prefs_t  p;

    ngx_http_mitte_prefs_get(r, user, &p, from);

    return ngx_http_mitte_prefs_reply(r, &p);
}


/*
 * The stored preferences ("from", else the zone's), or the defaults,
 * with the address to show filled in when none is stored: this request's
 * mitte_user_email, else the address remembered for the user.
 */

static void
ngx_http_mitte_prefs_get(ngx_http_request_t *r, ngx_str_t *user,
    mitte_prefs_t *p, mitte_prefs_t *from)
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

    if (from) {
        ngx_memcpy(p, from, sizeof(mitte_prefs_t));

    } else if (un && un->prefs_off) {
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
 * PUT and PATCH: the body is judged against the zone's document first
 * (a bad one is refused at once, nothing asked of Redis), then saved:
 * through Redis in cluster mode, in the zone alone otherwise.
 */

static void
ngx_http_mitte_prefs_body(ngx_http_request_t *r)
{
    ngx_int_t                    rc;
    ngx_str_t                    body, user;
    uint32_t                     rev;
    ngx_uint_t                   mode;
    mitte_prefs_t                p;
    mitte_doc_error_t            err;
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

    ngx_http_mitte_prefs_stored(mmcf->shm_zone->data, &user, &p, &rev, 1);

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

    rc = ngx_http_mitte_prefs_start(r, &user, &body);

    if (rc == NGX_DONE) {
        ngx_http_finalize_request(r, NGX_DONE);
        return;
    }

    mode = mmcf->redis ? NGX_HTTP_MITTE_PREFS_OFFLINE
                       : NGX_HTTP_MITTE_PREFS_LOCAL;

    if (ngx_http_mitte_prefs_update(r, &user, &body, mode, 0, &p, &rev, &rc)
        != NGX_OK)
    {
        ngx_http_finalize_request(r, rc);
        return;
    }

    ngx_http_finalize_request(r, ngx_http_mitte_prefs_answer(r, &user, NULL));
}


/*
 * The zone's save: the stored document is copied under the lock, patched
 * without it (the body is parsed then), and written back under the lock
 * only if the stored document is still the one copied; otherwise the
 * patch is applied again to the new one, so that two partial updates at
 * once (on two workers) are both kept. NGX_OK with the document and its
 * revision, or NGX_ERROR with the code to finalize the request with (the
 * error answered).
 */

static ngx_int_t
ngx_http_mitte_prefs_update(ngx_http_request_t *r, ngx_str_t *user,
    ngx_str_t *body, ngx_uint_t mode, uint32_t base_rev, mitte_prefs_t *p,
    uint32_t *rev, ngx_int_t *rc)
{
    uint32_t                     orev, nrev;
    ngx_int_t                    stored;
    ngx_uint_t                   tries;
    mitte_prefs_t                orig;
    mitte_doc_error_t            err;
    ngx_http_mitte_zone_ctx_t   *ctx;
    ngx_http_mitte_main_conf_t  *mmcf;

    mmcf = ngx_http_get_module_main_conf(r, ngx_http_mitte_module);
    ctx = mmcf->shm_zone->data;

    stored = NGX_AGAIN;

    for (tries = 0; tries < NGX_HTTP_MITTE_PREFS_TRIES; tries++) {

        ngx_http_mitte_prefs_stored(ctx, user, &orig, &orev, 1);

        *p = orig;

        if (mitte_prefs_patch(p, (char *) body->data, body->len,
                              mmcf->webhook_allow
                              ? mmcf->webhook_allow->elts : NULL,
                              mmcf->webhook_allow
                              ? mmcf->webhook_allow->nelts : 0,
                              &err)
            != 0)
        {
            *rc = ngx_http_mitte_reply_error(r, NGX_HTTP_BAD_REQUEST,
                                             err.code, err.message);
            return NGX_ERROR;
        }

        switch (mode) {

        case NGX_HTTP_MITTE_PREFS_LOCAL:
            nrev = orev;
            break;

        case NGX_HTTP_MITTE_PREFS_OFFLINE:
            nrev = orev | NGX_HTTP_MITTE_PREFS_DIRTY;
            break;

        default: /* NGX_HTTP_MITTE_PREFS_SHARED */
            nrev = orev & ~NGX_HTTP_MITTE_PREFS_DIRTY;
            nrev = ngx_max(nrev, base_rev);
            nrev = (nrev < MITTE_PREFS_REV_MAX) ? nrev + 1 : nrev;
        }

        stored = ngx_http_mitte_prefs_store(ctx, user, &orig, orev, p, nrev);

        if (stored != NGX_AGAIN) {
            *rev = nrev;
            break;
        }
    }

    if (stored != NGX_OK) {
        *rc = ngx_http_mitte_reply_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                         "unavailable",
                                         stored == NGX_AGAIN
                                         ? "The preferences kept changing: "
                                           "try again."
                                         : "The zone is full.");
        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * The stored document of the user, or the defaults (an empty address
 * stays empty), and its revision; "lock": take the zone's lock for it.
 */

static void
ngx_http_mitte_prefs_stored(ngx_http_mitte_zone_ctx_t *ctx, ngx_str_t *user,
    mitte_prefs_t *p, uint32_t *rev, ngx_uint_t lock)
{
    ngx_http_mitte_user_node_t  *un;

    (void) mitte_prefs_default(p, NULL, 0);
    *rev = 0;

    if (lock) {
        ngx_shmtx_lock(&ctx->shpool->mutex);
    }

    un = ngx_http_mitte_user_lookup(ctx, user->data, user->len);

    if (un && un->prefs_off) {
        ngx_memcpy(p, (u_char *) ctx->shpool + un->prefs_off,
                   sizeof(mitte_prefs_t));
        *rev = un->prefs_rev;
    }

    if (lock) {
        ngx_shmtx_unlock(&ctx->shpool->mutex);
    }
}


/*
 * Writes "p" with its revision when the stored document is still "orig"
 * at "orev": NGX_OK; NGX_AGAIN when it changed meanwhile; NGX_DECLINED
 * when the zone is full.
 */

static ngx_int_t
ngx_http_mitte_prefs_store(ngx_http_mitte_zone_ctx_t *ctx, ngx_str_t *user,
    mitte_prefs_t *orig, uint32_t orev, mitte_prefs_t *p, uint32_t rev)
{
    u_char                      *m;
    uint32_t                     nowrev;
    mitte_prefs_t                now;
    ngx_http_mitte_user_node_t  *un;

    ngx_shmtx_lock(&ctx->shpool->mutex);

    ngx_http_mitte_prefs_stored(ctx, user, &now, &nowrev, 0);

    if (nowrev != orev
        || ngx_memcmp(&now, orig, sizeof(mitte_prefs_t)) != 0)
    {
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
    un->prefs_rev = rev;

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


/*
 * Cluster mode: a GET (body NULL) or a save starts by reading Redis's
 * document. NGX_DONE: the request waits for the reply; NGX_DECLINED: no
 * mitte_redis, or Redis not ready (logged): the zone answers at once.
 * A GET of a document saved while Redis was away pushes it first.
 */

static ngx_int_t
ngx_http_mitte_prefs_start(ngx_http_request_t *r, ngx_str_t *user,
    ngx_str_t *body)
{
    uint32_t                     rev;
    ngx_int_t                    rc;
    mitte_prefs_t                p;
    ngx_http_mitte_wait_t       *wt;
    ngx_http_mitte_prefs_ctx_t  *pc;
    ngx_http_mitte_main_conf_t  *mmcf;

    mmcf = ngx_http_get_module_main_conf(r, ngx_http_mitte_module);

    if (mmcf->redis == NULL) {
        return NGX_DECLINED;
    }

    if (ngx_http_mitte_redis_ready() != NGX_OK) {
        ngx_http_mitte_cluster_log(r->connection->log,
                                   "preferences of \"%V\" %s without Redis: "
                                   "not connected", user,
                                   body ? "saved" : "read");
        return NGX_DECLINED;
    }

    pc = ngx_pcalloc(r->pool, sizeof(ngx_http_mitte_prefs_ctx_t));
    if (pc == NULL) {
        return NGX_DECLINED;
    }

    pc->user = *user;
    pc->key_len = ngx_http_mitte_redis_key(pc->key, sizeof(pc->key),
                                           "{u:%V}:prefs", user);

    if (body) {
        pc->body = *body;
        pc->save = 1;

    } else {
        ngx_http_mitte_prefs_stored(mmcf->shm_zone->data, user, &p, &rev, 1);

        if (rev & NGX_HTTP_MITTE_PREFS_DIRTY) {
            ngx_str_set(&pc->body, "{}");
            pc->save = 1;
        }
    }

    if (pc->key_len == 0) {
        return NGX_DECLINED;
    }

    wt = ngx_http_mitte_wait_create(r, ngx_http_mitte_prefs_redis, pc);
    if (wt == NULL) {
        return NGX_DECLINED;
    }

    rc = ngx_http_mitte_redis_command(ngx_http_mitte_wait_reply, wt,
                                      "GET %b", pc->key, pc->key_len);

    if (rc != NGX_OK) {
        ngx_http_mitte_wait_cancel(wt);
        return NGX_DECLINED;
    }

    ngx_http_mitte_wait_begin(wt);

    return NGX_DONE;
}


static ngx_int_t
ngx_http_mitte_prefs_redis(ngx_http_mitte_wait_t *wt, redisReply *reply,
    ngx_uint_t rc)
{
    ngx_http_mitte_prefs_ctx_t  *pc = wt->data;

    if (rc != NGX_HTTP_MITTE_REDIS_REPLY
        || reply->type == REDIS_REPLY_ERROR)
    {
        return ngx_http_mitte_prefs_offline(wt,
                                        ngx_http_mitte_cluster_why(reply, rc));
    }

    if (pc->writing) {
        return ngx_http_mitte_prefs_written(wt, reply);
    }

    return ngx_http_mitte_prefs_read(wt, reply);
}


/* Redis's document read: a GET answers it, a save goes on */

static ngx_int_t
ngx_http_mitte_prefs_read(ngx_http_mitte_wait_t *wt, redisReply *reply)
{
    ngx_http_request_t          *r = wt->request;
    ngx_http_mitte_prefs_ctx_t  *pc = wt->data;

    ngx_int_t                    rc;
    mitte_prefs_t                p;
    ngx_http_mitte_main_conf_t  *mmcf;

    mmcf = ngx_http_get_module_main_conf(r, ngx_http_mitte_module);

    rc = ngx_http_mitte_prefs_base(r, pc, reply, &p);

    if (rc == NGX_ERROR) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (rc == NGX_OK) {
        (void) ngx_http_mitte_prefs_import(mmcf->shm_zone->data, &pc->user,
                                           &p, pc->base_rev, 0);
    }

    if (pc->save) {
        return ngx_http_mitte_prefs_write(wt);
    }

    return ngx_http_mitte_prefs_answer(r, &pc->user,
                                       rc == NGX_OK ? &p : NULL);
}


/*
 * What Redis holds, as the base of a save: NGX_OK with the document in
 * "p" (pc->base, pc->base_rev set); NGX_DECLINED when there is none or
 * it is not valid (logged: the next save replaces it); NGX_ERROR when
 * out of memory.
 */

static ngx_int_t
ngx_http_mitte_prefs_base(ngx_http_request_t *r,
    ngx_http_mitte_prefs_ctx_t *pc, redisReply *reply, mitte_prefs_t *p)
{
    uint64_t           t;
    mitte_doc_error_t  err;

    ngx_str_null(&pc->base);
    pc->base_rev = 0;

    if (reply->type != REDIS_REPLY_STRING) {
        /* nil, or the script's 0: nothing there */
        return NGX_DECLINED;
    }

    pc->base.len = reply->len;
    pc->base.data = ngx_pnalloc(r->pool, reply->len + 1);
    if (pc->base.data == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(pc->base.data, reply->str, reply->len);

    if (mitte_prefs_store_parse(reply->str, reply->len, p, &pc->base_rev, &t,
                                &err)
        != 0)
    {
        pc->base_rev = 0;

        ngx_http_mitte_cluster_log(r->connection->log,
                                   "the preferences of \"%V\" in Redis are "
                                   "not valid, the zone's are used: %s",
                                   &pc->user, err.message);
        return NGX_DECLINED;
    }

    return NGX_OK;
}


/* the save patched into the zone, then the compare-and-set sent */

static ngx_int_t
ngx_http_mitte_prefs_write(ngx_http_mitte_wait_t *wt)
{
    ngx_http_request_t          *r = wt->request;
    ngx_http_mitte_prefs_ctx_t  *pc = wt->data;

    u_char                      *text;
    size_t                       len, argvlen[5];
    ngx_int_t                    rc;
    const char                  *argv[5];
    mitte_prefs_t                p;
    uint64_t                     now;
    ngx_time_t                  *tp;
    u_char                       ttl[NGX_INT_T_LEN];
    ngx_http_mitte_main_conf_t  *mmcf;

    if (ngx_http_mitte_prefs_update(r, &pc->user, &pc->body,
                                    NGX_HTTP_MITTE_PREFS_SHARED,
                                    pc->base_rev, &p, &pc->rev, &rc)
        != NGX_OK)
    {
        return rc;
    }

    mmcf = ngx_http_get_module_main_conf(r, ngx_http_mitte_module);

    tp = ngx_timeofday();
    now = (uint64_t) tp->sec * 1000 + tp->msec;

    len = mitte_prefs_store_json(&p, pc->rev, now, NULL, 0);

    text = ngx_pnalloc(r->pool, len + 1);
    if (text == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    (void) mitte_prefs_store_json(&p, pc->rev, now, (char *) text, len + 1);

    argv[0] = "1";
    argvlen[0] = 1;
    argv[1] = (const char *) pc->key;
    argvlen[1] = pc->key_len;
    argv[2] = pc->base.data ? (const char *) pc->base.data : "";
    argvlen[2] = pc->base.len;
    argv[3] = (const char *) text;
    argvlen[3] = len;
    argv[4] = (const char *) ttl;
    argvlen[4] = ngx_sprintf(ttl, "%d", NGX_HTTP_MITTE_USER_TTL) - ttl;

    pc->writing = 1;
    pc->text.data = text;
    pc->text.len = len;

    rc = ngx_http_mitte_cluster_eval(ngx_http_mitte_wait_reply, wt,
                                     &ngx_http_mitte_prefs_cas, 5, argv,
                                     argvlen);

    if (rc != NGX_OK) {
        ngx_http_mitte_prefs_dirty(mmcf->shm_zone->data, &pc->user, pc->rev);
        ngx_http_mitte_cluster_log(r->connection->log,
                                   "preferences of \"%V\" saved without "
                                   "Redis: not connected", &pc->user);

        return ngx_http_mitte_prefs_answer(r, &pc->user, NULL);
    }

    return NGX_AGAIN;
}


/* the compare-and-set's reply: written, or read again and patched again */

static ngx_int_t
ngx_http_mitte_prefs_written(ngx_http_mitte_wait_t *wt, redisReply *reply)
{
    ngx_http_request_t          *r = wt->request;
    ngx_http_mitte_prefs_ctx_t  *pc = wt->data;

    ngx_int_t                    rc;
    mitte_prefs_t                p;
    ngx_http_mitte_main_conf_t  *mmcf;

    mmcf = ngx_http_get_module_main_conf(r, ngx_http_mitte_module);

    if (reply->type == REDIS_REPLY_INTEGER && reply->integer == 1) {
        ngx_http_mitte_prefs_publish(r, &pc->user, pc->text.data,
                                     pc->text.len, "p");

        return ngx_http_mitte_prefs_answer(r, &pc->user, NULL);
    }

    if (reply->type != REDIS_REPLY_STRING
        && !(reply->type == REDIS_REPLY_INTEGER && reply->integer == 0))
    {
        return ngx_http_mitte_prefs_offline(wt, "an unexpected reply");
    }

    /* saved meanwhile elsewhere: that one is the base now */

    rc = ngx_http_mitte_prefs_base(r, pc, reply, &p);

    if (rc == NGX_ERROR) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (rc == NGX_OK) {
        (void) ngx_http_mitte_prefs_import(mmcf->shm_zone->data, &pc->user,
                                           &p, pc->base_rev, 0);
    }

    if (++pc->tries >= NGX_HTTP_MITTE_PREFS_TRIES) {
        return ngx_http_mitte_reply_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                          "unavailable",
                                          "The preferences kept changing: "
                                          "try again.");
    }

    return ngx_http_mitte_prefs_write(wt);
}


/*
 * Redis failed or timed out: logged, and the zone answers; a save is
 * kept in the zone, marked dirty.
 */

static ngx_int_t
ngx_http_mitte_prefs_offline(ngx_http_mitte_wait_t *wt, const char *why)
{
    ngx_http_request_t          *r = wt->request;
    ngx_http_mitte_prefs_ctx_t  *pc = wt->data;

    uint32_t                     rev;
    ngx_int_t                    rc;
    mitte_prefs_t                p;
    ngx_http_mitte_main_conf_t  *mmcf;

    mmcf = ngx_http_get_module_main_conf(r, ngx_http_mitte_module);

    ngx_http_mitte_cluster_log(r->connection->log,
                               "preferences of \"%V\" %s without Redis: %s",
                               &pc->user, pc->save ? "saved" : "read", why);

    if (pc->writing) {
        ngx_http_mitte_prefs_dirty(mmcf->shm_zone->data, &pc->user, pc->rev);

    } else if (pc->save
               && ngx_http_mitte_prefs_update(r, &pc->user, &pc->body,
                                              NGX_HTTP_MITTE_PREFS_OFFLINE,
                                              0, &p, &rev, &rc)
                  != NGX_OK)
    {
        return rc;
    }

    return ngx_http_mitte_prefs_answer(r, &pc->user, NULL);
}


/*
 * A document of Redis's copied into the zone, unless the zone's is dirty
 * or newer ("newer": only one of a higher revision is taken, else one of
 * the same revision too). NGX_OK, or NGX_DECLINED when the zone is full.
 */

static ngx_int_t
ngx_http_mitte_prefs_import(ngx_http_mitte_zone_ctx_t *ctx, ngx_str_t *user,
    mitte_prefs_t *p, uint32_t rev, ngx_uint_t newer)
{
    u_char                      *m;
    uint32_t                     cur;
    ngx_http_mitte_user_node_t  *un;

    ngx_shmtx_lock(&ctx->shpool->mutex);

    un = ngx_http_mitte_user_get(ctx, user->data, user->len, NULL);

    if (un == NULL) {
        ngx_shmtx_unlock(&ctx->shpool->mutex);
        return NGX_DECLINED;
    }

    cur = un->prefs_rev;

    if ((cur & NGX_HTTP_MITTE_PREFS_DIRTY)
        || (newer ? rev <= cur : rev < cur))
    {
        ngx_shmtx_unlock(&ctx->shpool->mutex);
        return NGX_OK;
    }

    if (un->prefs_off == 0) {
        m = ngx_http_mitte_alloc(ctx, sizeof(mitte_prefs_t), un);

        if (m == NULL) {
            ngx_shmtx_unlock(&ctx->shpool->mutex);
            return NGX_DECLINED;
        }

        un->prefs_off = (uint32_t) (m - (u_char *) ctx->shpool);
    }

    ngx_memcpy((u_char *) ctx->shpool + un->prefs_off, p,
               sizeof(mitte_prefs_t));
    un->prefs_rev = rev;

    ngx_shmtx_unlock(&ctx->shpool->mutex);

    return NGX_OK;
}


/* the zone's document of revision "rev" was not written to Redis */

static void
ngx_http_mitte_prefs_dirty(ngx_http_mitte_zone_ctx_t *ctx, ngx_str_t *user,
    uint32_t rev)
{
    ngx_http_mitte_user_node_t  *un;

    ngx_shmtx_lock(&ctx->shpool->mutex);

    un = ngx_http_mitte_user_lookup(ctx, user->data, user->len);

    if (un && un->prefs_rev == rev) {
        un->prefs_rev |= NGX_HTTP_MITTE_PREFS_DIRTY;
    }

    ngx_shmtx_unlock(&ctx->shpool->mutex);
}


/*
 * A stream entry: {"k":"<kind>","u":"<user>","d":<text>} for "p",
 * {"k":"<kind>","u":"<user>",<text>} otherwise (text: members). Its
 * failure is logged; nothing waits for it.
 */

static void
ngx_http_mitte_prefs_publish(ngx_http_request_t *r, ngx_str_t *user,
    u_char *text, size_t len, const char *kind)
{
    u_char  *buf, *p;
    size_t   size;

    size = sizeof("{\"k\":\"\",\"u\":,\"d\":}") + ngx_strlen(kind)
           + ngx_http_mitte_json_str_len(user->data, user->len) + len;

    buf = ngx_pnalloc(r->pool, size);
    if (buf == NULL) {
        return;
    }

    p = ngx_sprintf(buf, "{\"k\":\"%s\",\"u\":", kind);
    p = ngx_http_mitte_json_str(p, user->data, user->len);
    p = ngx_cpymem(p, ",", 1);

    if (kind[0] == 'p') {
        p = ngx_cpymem(p, "\"d\":", 4);
    }

    p = ngx_cpymem(p, text, len);
    *p++ = '}';

    if (ngx_http_mitte_redis_publish(ngx_http_mitte_cluster_done, NULL, buf,
                                     p - buf)
        != NGX_OK)
    {
        ngx_http_mitte_cluster_log(r->connection->log,
                                   "the change of \"%V\" was not published: "
                                   "Redis not connected", user);
    }
}


static void
ngx_http_mitte_cluster_done(redisReply *reply, void *data, ngx_uint_t rc)
{
    if (rc != NGX_HTTP_MITTE_REDIS_REPLY
        || reply->type == REDIS_REPLY_ERROR)
    {
        ngx_http_mitte_cluster_log(ngx_cycle->log,
                                   "a change was not published: %s",
                                   ngx_http_mitte_cluster_why(reply, rc));
    }
}


ngx_int_t
ngx_http_mitte_prefs_relay(ngx_http_mitte_main_conf_t *mmcf, ngx_str_t *user,
    cJSON *doc)
{
    uint32_t           rev;
    uint64_t           t;
    mitte_prefs_t      p;
    mitte_doc_error_t  err;

    if (mmcf == NULL || user == NULL || user->data == NULL || user->len == 0
        || user->len > MITTE_USER_MAX || doc == NULL)
    {
        return NGX_ERROR;
    }

    if (mitte_prefs_store_from(doc, &p, &rev, &t, &err) != 0) {
        return NGX_ERROR;
    }

    return ngx_http_mitte_prefs_import(mmcf->shm_zone->data, user, &p, rev,
                                       1);
}


ngx_int_t
ngx_http_mitte_user_relay(ngx_http_mitte_main_conf_t *mmcf, ngx_str_t *user,
    cJSON *entry)
{
    mitte_user_doc_t   doc;
    mitte_doc_error_t  err;

    if (mmcf == NULL || user == NULL || user->data == NULL || user->len == 0
        || user->len > MITTE_USER_MAX || entry == NULL)
    {
        return NGX_ERROR;
    }

    if (mitte_user_doc_from(entry, 1, &doc, &err) != 0) {
        return NGX_ERROR;
    }

    return ngx_http_mitte_user_apply(mmcf, user, &doc);
}


ngx_int_t
ngx_http_mitte_user_apply(ngx_http_mitte_main_conf_t *mmcf, ngx_str_t *user,
    mitte_user_doc_t *doc)
{
    ngx_http_mitte_user_t       *u;
    ngx_http_mitte_zone_ctx_t   *ctx;
    ngx_http_mitte_user_node_t  *un;

    ctx = mmcf->shm_zone->data;

    ngx_shmtx_lock(&ctx->shpool->mutex);

    un = ngx_http_mitte_user_get(ctx, user->data, user->len, NULL);

    if (un == NULL) {
        ngx_shmtx_unlock(&ctx->shpool->mutex);
        return NGX_DECLINED;
    }

    u = &un->user;

    if (doc->has_plan) {
        u->plan = (uint8_t) doc->plan;
        u->plan_set = 1;
    }

    if (doc->has_trial) {
        u->trial_ends = doc->trial_ends;
    }

    if (doc->has_email) {
        ngx_memcpy(u->email, doc->email, doc->email_len);
        u->email_len = (uint8_t) doc->email_len;
    }

    ngx_shmtx_unlock(&ctx->shpool->mutex);

    return NGX_OK;
}


/*
 * PUT .../users/{id} in cluster mode: the fields given written to
 * "<prefix>{u:<id>}:meta" (with "t", the time in ms), its TTL refreshed;
 * the reply is the whole hash. NGX_OK when queued.
 */

ngx_int_t
ngx_http_mitte_user_meta_set(ngx_http_mitte_wait_t *wt, ngx_str_t *id,
    mitte_user_doc_t *doc)
{
    int          n;
    size_t       argvlen[11];
    uint64_t     now;
    ngx_time_t  *tp;
    const char  *argv[11];
    u_char       key[NGX_HTTP_MITTE_REDIS_KEY_MAX], ttl[NGX_INT_T_LEN],
                 trial[NGX_INT64_LEN], ms[NGX_INT64_LEN];

    tp = ngx_timeofday();
    now = (uint64_t) tp->sec * 1000 + tp->msec;

    argv[0] = "1";
    argvlen[0] = 1;
    argv[1] = (const char *) key;
    argvlen[1] = ngx_http_mitte_redis_key(key, sizeof(key), "{u:%V}:meta",
                                          id);
    argv[2] = (const char *) ttl;
    argvlen[2] = ngx_sprintf(ttl, "%d", NGX_HTTP_MITTE_USER_TTL) - ttl;
    argv[3] = "t";
    argvlen[3] = 1;
    argv[4] = (const char *) ms;
    argvlen[4] = ngx_sprintf(ms, "%uL", now) - ms;

    if (argvlen[1] == 0) {
        return NGX_ERROR;
    }

    n = 5;

    if (doc->has_plan) {
        argv[n] = "plan";
        argvlen[n++] = 4;
        argv[n] = mitte_plan_name(doc->plan);
        argvlen[n] = ngx_strlen(argv[n]);
        n++;
    }

    if (doc->has_trial) {
        argv[n] = "trialEndsAt";
        argvlen[n++] = 11;
        argv[n] = (const char *) trial;
        argvlen[n++] = ngx_sprintf(trial, "%L", doc->trial_ends) - trial;
    }

    if (doc->has_email) {
        argv[n] = "email";
        argvlen[n++] = 5;
        argv[n] = doc->email;
        argvlen[n++] = doc->email_len;
    }

    return ngx_http_mitte_cluster_eval(ngx_http_mitte_wait_reply, wt,
                                       &ngx_http_mitte_user_set_script, n, argv,
                                       argvlen);
}


/*
 * GET .../users/{id} in cluster mode: the meta hash and the month's
 * quota use ("<prefix>{u:<id>}:q:<YYYYMM>"), in one reply of two.
 */

ngx_int_t
ngx_http_mitte_user_meta_get(ngx_http_mitte_wait_t *wt, ngx_str_t *id,
    uint32_t month)
{
    size_t       argvlen[3];
    const char  *argv[3];
    u_char       meta[NGX_HTTP_MITTE_REDIS_KEY_MAX],
                 quota[NGX_HTTP_MITTE_REDIS_KEY_MAX], ym[16];

    (void) mitte_month_format((char *) ym, month);

    argv[0] = "2";
    argvlen[0] = 1;
    argv[1] = (const char *) meta;
    argvlen[1] = ngx_http_mitte_redis_key(meta, sizeof(meta), "{u:%V}:meta",
                                          id);
    argv[2] = (const char *) quota;
    argvlen[2] = ngx_http_mitte_redis_key(quota, sizeof(quota),
                                          "{u:%V}:q:%*s%*s", id,
                                          (size_t) 4, ym, (size_t) 2,
                                          ym + 5);

    if (argvlen[1] == 0 || argvlen[2] == 0) {
        return NGX_ERROR;
    }

    return ngx_http_mitte_cluster_eval(ngx_http_mitte_wait_reply, wt,
                                       &ngx_http_mitte_user_get_script, 3, argv,
                                       argvlen);
}


/*
 * A meta hash (HGETALL's array) read into "doc": NGX_OK, NGX_DECLINED
 * when empty, NGX_ERROR when it is not one the module wrote (logged).
 */

ngx_int_t
ngx_http_mitte_user_meta_read(ngx_log_t *log, ngx_str_t *id,
    redisReply *reply, mitte_user_doc_t *doc)
{
    size_t        i;
    redisReply  **e;

    ngx_memzero(doc, sizeof(mitte_user_doc_t));

    if (reply->type != REDIS_REPLY_ARRAY || reply->elements % 2) {
        goto invalid;
    }

    e = reply->element;

    for (i = 0; i < reply->elements; i += 2) {
        if (e[i]->type != REDIS_REPLY_STRING
            || e[i + 1]->type != REDIS_REPLY_STRING
            || mitte_user_meta_field(doc, e[i]->str, e[i]->len,
                                     e[i + 1]->str, e[i + 1]->len)
               != 0)
        {
            goto invalid;
        }
    }

    return reply->elements ? NGX_OK : NGX_DECLINED;

invalid:

    ngx_memzero(doc, sizeof(mitte_user_doc_t));

    ngx_http_mitte_cluster_log(log, "the meta of user \"%V\" in Redis is "
                               "not valid, the zone's is used", id);

    return NGX_ERROR;
}


/* {"k":"m","u":"<id>","t":<ms>,"plan":...,"trialEndsAt":...,"email":...} */

void
ngx_http_mitte_user_meta_publish(ngx_http_request_t *r, ngx_str_t *id,
    mitte_user_doc_t *doc)
{
    u_char      *p;
    ngx_time_t  *tp;
    u_char       text[MITTE_EMAIL_MAX * 6 + 160];

    tp = ngx_timeofday();

    p = ngx_sprintf(text, "\"t\":%uL", (uint64_t) tp->sec * 1000 + tp->msec);

    if (doc->has_plan) {
        p = ngx_sprintf(p, ",\"plan\":\"%s\"", mitte_plan_name(doc->plan));
    }

    if (doc->has_trial) {
        if (doc->trial_ends) {
            p = ngx_sprintf(p, ",\"trialEndsAt\":%L", doc->trial_ends);

        } else {
            p = ngx_cpymem(p, ",\"trialEndsAt\":null", 19);
        }
    }

    if (doc->has_email) {
        p = ngx_cpymem(p, ",\"email\":", 9);
        p = ngx_http_mitte_json_str_null(p, (u_char *) doc->email,
                                         doc->email_len);
    }

    ngx_http_mitte_prefs_publish(r, id, text, p - text, "m");
}


ngx_http_mitte_wait_t *
ngx_http_mitte_wait_create(ngx_http_request_t *r,
    ngx_http_mitte_wait_pt handler, void *data)
{
    ngx_http_cleanup_t     *cln;
    ngx_http_mitte_wait_t  *wt;

    cln = ngx_http_cleanup_add(r, 0);
    if (cln == NULL) {
        return NULL;
    }

    wt = ngx_alloc(sizeof(ngx_http_mitte_wait_t), r->connection->log);
    if (wt == NULL) {
        return NULL;
    }

    cln->handler = NULL;
    cln->data = wt;

    wt->request = r;
    wt->cleanup = cln;
    wt->handler = handler;
    wt->data = data;

    return wt;
}


void
ngx_http_mitte_wait_begin(ngx_http_mitte_wait_t *wt)
{
    wt->cleanup->handler = ngx_http_mitte_wait_gone;
    wt->request->main->count++;
}


void
ngx_http_mitte_wait_cancel(ngx_http_mitte_wait_t *wt)
{
    wt->cleanup->handler = NULL;
    ngx_free(wt);
}


/* the request ends first: the reply, when it comes, frees the record */

static void
ngx_http_mitte_wait_gone(void *data)
{
    ngx_http_mitte_wait_t  *wt = data;

    wt->request = NULL;
}


void
ngx_http_mitte_wait_reply(redisReply *reply, void *data, ngx_uint_t rc)
{
    ngx_http_mitte_wait_t  *wt = data;

    ngx_int_t            status;
    ngx_connection_t    *c;
    ngx_http_request_t  *r;

    r = wt->request;

    if (r == NULL) {
        ngx_free(wt);
        return;
    }

    c = r->connection;

    status = wt->handler(wt, reply, rc);

    if (status == NGX_AGAIN) {
        /* another command is under way with the record */
        return;
    }

    wt->cleanup->handler = NULL;
    ngx_free(wt);

    ngx_http_finalize_request(r, status);
    ngx_http_run_posted_requests(c);
}


ngx_int_t
ngx_http_mitte_cluster_eval(ngx_http_mitte_redis_handler_pt handler,
    void *data, ngx_http_mitte_redis_script_t *script, int argc,
    const char **argv, const size_t *argvlen)
{
    size_t       lens[3];
    const char  *args[3];

    if (ngx_http_mitte_redis_ready() != NGX_OK) {
        return NGX_DECLINED;
    }

    if (script->sha[0] == '\0') {

        /*
         * not registered in init_process: registered now for the next
         * connections, and loaded on this one ahead of its first use
         */

        if (ngx_http_mitte_redis_script(script) != NGX_OK) {
            return NGX_ERROR;
        }

        args[0] = "SCRIPT";
        lens[0] = 6;
        args[1] = "LOAD";
        lens[1] = 4;
        args[2] = script->text;
        lens[2] = ngx_strlen(script->text);

        (void) ngx_http_mitte_redis_command_argv(ngx_http_mitte_cluster_done,
                                                 NULL, 3, args, lens);
    }

    return ngx_http_mitte_redis_eval(handler, data, script, argc, argv,
                                     argvlen);
}


ngx_int_t
ngx_http_mitte_prefs_init_process(ngx_cycle_t *cycle)
{
    ngx_http_mitte_main_conf_t  *mmcf;

    mmcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_mitte_module);

    if (mmcf == NULL || mmcf->redis == NULL) {
        return NGX_OK;
    }

    if (ngx_http_mitte_redis_script(&ngx_http_mitte_prefs_cas) != NGX_OK
        || ngx_http_mitte_redis_script(&ngx_http_mitte_user_set_script)
           != NGX_OK
        || ngx_http_mitte_redis_script(&ngx_http_mitte_user_get_script)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


void
ngx_http_mitte_cluster_log(ngx_log_t *log, const char *fmt, ...)
{
    u_char   *p;
    va_list   args;
    u_char    text[NGX_MAX_ERROR_STR];

    if (ngx_time() - ngx_http_mitte_cluster_logged < 60) {
        return;
    }

    ngx_http_mitte_cluster_logged = ngx_time();

    va_start(args, fmt);
    p = ngx_vslprintf(text, text + sizeof(text) - 64, fmt, args);
    va_end(args);

    ngx_log_error(NGX_LOG_ERR, log, 0,
                  "mitte: cluster: %*s (logged at most once a minute)",
                  p - text, text);
}


const char *
ngx_http_mitte_cluster_why(redisReply *reply, ngx_uint_t rc)
{
    if (rc == NGX_HTTP_MITTE_REDIS_TIMEOUT) {
        return "timed out";
    }

    if (rc == NGX_HTTP_MITTE_REDIS_LOST || reply == NULL) {
        return "connection lost";
    }

    if (reply->type == REDIS_REPLY_ERROR && reply->str) {
        return reply->str;
    }

    return "an unexpected reply";
}
