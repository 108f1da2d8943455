/*
 * Copyright (C) ngx_mitte_module authors
 *
 * Per request: the quota before the content phase, and the delivery's
 * outcome in the log phase.
 */


#include "ngx_http_mitte_module.h"
#include "ngx_http_mitte_stream.h"
#include "ngx_http_mitte_rules.h"
#include "ngx_http_mitte_api.h"

#include <openssl/rand.h>

#if (defined __SSE2__ && NGX_HAVE_LITTLE_ENDIAN)
#include <emmintrin.h>
#endif


static ngx_http_mitte_cold ngx_int_t ngx_http_mitte_refuse(
    ngx_http_request_t *r, ngx_http_mitte_loc_conf_t *mlcf, ngx_uint_t limit,
    int64_t now, ngx_uint_t wait);
static void ngx_http_mitte_visit_user(ngx_http_request_t *r,
    ngx_http_mitte_loc_conf_t *mlcf, ngx_http_mitte_visit_t *v);
static ngx_uint_t ngx_http_mitte_status(ngx_http_request_t *r);
static ngx_uint_t ngx_http_mitte_may_warn(ngx_http_request_t *r);
static void ngx_http_mitte_request_id(ngx_http_request_t *r,
    ngx_http_mitte_main_conf_t *mmcf, u_char *buf, ngx_str_t *rid);
static void ngx_http_mitte_delivery_id(ngx_http_mitte_delivery_t *d);
static void ngx_http_mitte_hex32(u_char *p, uint64_t *v);


/* per worker: a xorshift128+ generator for request ids, seeded at start */
static uint64_t  ngx_http_mitte_rid_state[2];



/*
 * Seeds the request id generator once per worker, at its start: seeding at
 * the first request would cost that request OpenSSL's initialisation.
 */

ngx_int_t
ngx_http_mitte_record_init_process(ngx_cycle_t *cycle)
{
    if (ngx_http_mitte_process_conf(cycle, 0) == NULL) {
        return NGX_OK;
    }

    if (RAND_bytes((u_char *) ngx_http_mitte_rid_state,
                   sizeof(ngx_http_mitte_rid_state)) != 1)
    {
        ngx_log_error(NGX_LOG_NOTICE, cycle->log, 0,
                      "mitte: RAND_bytes() failed, request ids are seeded "
                      "from the time and pid");
        ngx_http_mitte_rid_state[0] = 0;
    }

    if (ngx_http_mitte_rid_state[0] == 0 && ngx_http_mitte_rid_state[1] == 0)
    {
        /* xorshift128+ needs a state that is not all zero */
        ngx_http_mitte_rid_state[0] = ((uint64_t) ngx_pid << 32)
                                      ^ (uint64_t) ngx_time()
                                      ^ 0x9e3779b97f4a7c15ULL;
        ngx_http_mitte_rid_state[1] = (uint64_t) ngx_current_msec
                                      ^ 0xbf58476d1ce4e5b9ULL;
    }

    return NGX_OK;
}


ngx_int_t
ngx_http_mitte_precontent_handler(ngx_http_request_t *r)
{
    ngx_str_t                    slug, user;
    ngx_time_t                  *tp;
    ngx_rbtree_key_t             hash;
    ngx_uint_t                   limit;
    ngx_http_mitte_ctx_t        *ctx;
    ngx_http_mitte_visit_t       v;
    ngx_http_mitte_quota_e       rc;
    ngx_http_mitte_loc_conf_t   *mlcf;
    ngx_http_mitte_main_conf_t  *mmcf;

    mlcf = ngx_http_get_module_loc_conf(r, ngx_http_mitte_module);

    if (mlcf->endpoint == NULL || r != r->main) {
        return NGX_DECLINED;
    }

    if (ngx_http_get_module_ctx(r, ngx_http_mitte_module)) {
        return NGX_DECLINED;
    }

    if (ngx_http_mitte_value(r, mlcf->endpoint, &slug) != NGX_OK
        || slug.len == 0)
    {
        return NGX_DECLINED;
    }

    if (ngx_http_mitte_slug_hash(slug.data, slug.len, &hash) != NGX_OK) {
        if (ngx_http_mitte_may_warn(r)) {
            ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                          "mitte: invalid endpoint slug \"%*s\" not "
                          "recorded (1-64 bytes of A-Za-z0-9._- expected)",
                          ngx_min(slug.len, 80), slug.data);
        }

        return NGX_DECLINED;
    }

    ngx_str_null(&user);

    if (mlcf->user
        && ngx_http_mitte_value(r, mlcf->user, &user) != NGX_OK)
    {
        return NGX_DECLINED;
    }

    if (user.len > MITTE_USER_MAX) {
        if (ngx_http_mitte_may_warn(r)) {
            ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                          "mitte: user \"%*s...\" is longer than %d bytes, "
                          "delivery not recorded",
                          32, user.data, MITTE_USER_MAX);
        }

        return NGX_DECLINED;
    }

    ctx = ngx_palloc(r->pool, sizeof(ngx_http_mitte_ctx_t));
    if (ctx == NULL) {
        return NGX_DECLINED;
    }

    ctx->slug = slug;
    ctx->hash = hash;
    ctx->user = user;
    ctx->user_hash = 0;
    ctx->sub = NULL;

    ngx_http_set_ctx(r, ctx, ngx_http_mitte_module);

    if (user.len == 0) {
        return NGX_DECLINED;
    }

    /* the user's key: for the quota, and for the event in the log phase */
    ctx->user_hash = ngx_http_mitte_key(user.data, user.len);

    v.user = user;
    v.hash = ctx->user_hash;
    tp = ngx_timeofday();
    v.now = tp->sec;
    v.now_ms = (uint64_t) tp->sec * 1000 + tp->msec;

    ngx_http_mitte_visit_user(r, mlcf, &v);

    mmcf = ngx_http_get_module_main_conf(r, ngx_http_mitte_module);

    rc = ngx_http_mitte_rules_visit(mmcf, &v, mlcf->enforce, &limit);

    if (rc == NGX_HTTP_MITTE_QUOTA_REFUSE
        || rc == NGX_HTTP_MITTE_QUOTA_WAIT)
    {
        ctx->slug.len = 0;
        return ngx_http_mitte_refuse(r, mlcf, limit, v.now,
                                     rc == NGX_HTTP_MITTE_QUOTA_WAIT);
    }

    if (rc == NGX_HTTP_MITTE_QUOTA_UNKNOWN && ngx_http_mitte_may_warn(r)) {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "mitte: zone full, quota of user \"%V\" not counted",
                      &v.user);
    }

    return NGX_DECLINED;
}


/* what the configuration says of the user: plan, trial end, email */

static void
ngx_http_mitte_visit_user(ngx_http_request_t *r,
    ngx_http_mitte_loc_conf_t *mlcf, ngx_http_mitte_visit_t *v)
{
    int64_t    t;
    ngx_str_t  s;

    v->plan = -1;
    v->trial_ends = -1;
    ngx_str_null(&v->email);

    if (mlcf->plan
        && ngx_http_mitte_value(r, mlcf->plan, &s) == NGX_OK
        && s.len)
    {
        v->plan = mitte_plan_parse((char *) s.data, s.len);
    }

    if (mlcf->trial_ends
        && ngx_http_mitte_value(r, mlcf->trial_ends, &s) == NGX_OK
        && s.len
        && mitte_time_parse((char *) s.data, s.len, &t) == 0)
    {
        v->trial_ends = t;
    }

    if (mlcf->email
        && ngx_http_mitte_value(r, mlcf->email, &s) == NGX_OK
        && s.len
        && mitte_email_valid((char *) s.data, s.len))
    {
        v->email = s;
    }
}


static ngx_http_mitte_cold ngx_int_t
ngx_http_mitte_refuse(ngx_http_request_t *r, ngx_http_mitte_loc_conf_t *mlcf,
    ngx_uint_t limit, int64_t now, ngx_uint_t wait)
{
    u_char           *p, msg[128];
    ngx_int_t         rc;
    ngx_table_elt_t  *h;

    if (ngx_http_discard_request_body(r) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_pnalloc(r->pool, NGX_INT64_LEN);
    if (p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "Retry-After");
    h->value.data = p;
    h->value.len = ngx_sprintf(p, "%L", wait ? (int64_t) 1
                                         : mitte_seconds_to_next_month(now))
                   - p;

    if (wait) {
        /* cluster mode: this worker's lease call is out, no credit left */
        ngx_sprintf(msg, "The monthly quota of %ui requests is being "
                         "checked across the cluster; retry in a second.%Z",
                    limit);

    } else {
        ngx_sprintf(msg, "The monthly quota of %ui requests is used up; "
                         "it renews at the start of next month (UTC).%Z",
                    limit);
    }

    rc = ngx_http_mitte_reply_error(r, mlcf->enforce_status, "quota_exceeded",
                                    (char *) msg);

    ngx_http_finalize_request(r, rc);

    return NGX_DONE;
}


ngx_int_t
ngx_http_mitte_log_handler(ngx_http_request_t *r)
{
    ngx_time_t                  *tp;
    ngx_msec_int_t               ms;
    ngx_http_mitte_ctx_t        *ctx;
    ngx_http_mitte_delivery_t    d;
    ngx_http_mitte_loc_conf_t   *mlcf;
    ngx_http_mitte_main_conf_t  *mmcf;

    ctx = ngx_http_get_module_ctx(r, ngx_http_mitte_module);

    if (ctx == NULL || ctx->slug.len == 0) {
        return NGX_OK;
    }

    mlcf = ngx_http_get_module_loc_conf(r, ngx_http_mitte_module);
    mmcf = ngx_http_get_module_main_conf(r, ngx_http_mitte_module);

    d.slug = ctx->slug;
    d.hash = ctx->hash;
    d.user = ctx->user;
    d.user_hash = ctx->user_hash;
    d.status = ngx_http_mitte_status(r);
    d.success = mitte_status_set_has(mlcf->success, d.status);

    ngx_str_null(&d.name);

    if (mlcf->endpoint_name
        && (ngx_http_mitte_value(r, mlcf->endpoint_name, &d.name) != NGX_OK
            || d.name.len > MITTE_NAME_MAX))
    {
        ngx_str_null(&d.name);
    }

    tp = ngx_timeofday();
    d.now_ms = (uint64_t) tp->sec * 1000 + tp->msec;

    ms = (ngx_msec_int_t) ((tp->sec - r->start_sec) * 1000
                           + (tp->msec - r->start_msec));
    d.duration = (ms > 0) ? (ngx_msec_t) ms : 0;

    d.method = r->method_name;
    d.request = r;

    if (mmcf->request_id_used) {
        /* the access log (or a header) shows it: made in any case */
        ngx_http_mitte_request_id(r, mmcf, ctx->rid, &d.rid);
        d.request_id = NULL;

    } else {
        /* made only for an event: most deliveries have none written */
        ngx_str_null(&d.rid);
        d.request_id = ngx_http_mitte_delivery_id;
    }

    ngx_log_debug5(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "mitte record: endpoint \"%V\" user \"%V\" status %ui "
                   "success %ui %Mms", &d.slug, &d.user, d.status,
                   d.success, d.duration);

    if (ngx_http_mitte_rules_deliver(mmcf, &d) != NGX_OK
        && ngx_http_mitte_may_warn(r))
    {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "mitte: zone full, delivery to \"%V\" not recorded",
                      &d.slug);
    }

    return NGX_OK;
}


/*
 * The status of the last upstream attempt when the upstream answered,
 * else the status nginx itself returned.
 */

static ngx_uint_t
ngx_http_mitte_status(ngx_http_request_t *r)
{
    ngx_http_upstream_state_t  *state;

    if (r->upstream_states && r->upstream_states->nelts) {
        state = r->upstream_states->elts;
        state = &state[r->upstream_states->nelts - 1];

        if (state->status && state->header_time != (ngx_msec_t) -1) {
            return state->status;
        }
    }

    if (r->err_status) {
        return r->err_status;
    }

    if (r->headers_out.status) {
        return r->headers_out.status;
    }

    return NGX_HTTP_CLIENT_CLOSED_REQUEST;
}


/* warnings about bad input are logged at most once a minute per process */

static ngx_uint_t
ngx_http_mitte_may_warn(ngx_http_request_t *r)
{
    ngx_http_mitte_main_conf_t  *mmcf;

    mmcf = ngx_http_get_module_main_conf(r, ngx_http_mitte_module);

    if (ngx_time() - mmcf->warned < 60) {
        return 0;
    }

    mmcf->warned = ngx_time();

    return 1;
}


/*
 * ngx_http_mitte_rules_deliver() writes the delivery's event: its request
 * id, now
 */

static void
ngx_http_mitte_delivery_id(ngx_http_mitte_delivery_t *d)
{
    ngx_http_mitte_ctx_t        *ctx;
    ngx_http_mitte_main_conf_t  *mmcf;

    ctx = ngx_http_get_module_ctx(d->request, ngx_http_mitte_module);
    mmcf = ngx_http_get_module_main_conf(d->request, ngx_http_mitte_module);

    ngx_http_mitte_request_id(d->request, mmcf, ctx->rid, &d->rid);
}


/*
 * The request's $request_id for the delivery event. When nothing asked for
 * it yet, nginx would make one with RAND_bytes(), which costs more than
 * everything else the module does per request; so the module makes it
 * from a per-worker generator seeded from the OS, and stores it as the
 * variable's value, so that a later $request_id (the access log) agrees.
 */

static void
ngx_http_mitte_request_id(ngx_http_request_t *r,
    ngx_http_mitte_main_conf_t *mmcf, u_char *p, ngx_str_t *rid)
{
    uint64_t                    s0, s1, v[2];
    ngx_uint_t                  i;
    ngx_http_variable_value_t  *vv;

    vv = &r->variables[mmcf->request_id_index];

    if (vv->valid) {
        if (vv->not_found) {
            ngx_str_null(rid);

        } else {
            rid->data = vv->data;
            rid->len = vv->len;
        }

        return;
    }

    for (i = 0; i < 2; i++) {
        s1 = ngx_http_mitte_rid_state[0];
        s0 = ngx_http_mitte_rid_state[1];
        v[i] = s0 + s1;
        ngx_http_mitte_rid_state[0] = s0;
        s1 ^= s1 << 23;
        ngx_http_mitte_rid_state[1] = s1 ^ s0 ^ (s1 >> 18) ^ (s0 >> 5);
    }

    ngx_http_mitte_hex32(p, v);

    vv->data = p;
    vv->len = 32;
    vv->valid = 1;
    vv->no_cacheable = 0;
    vv->not_found = 0;

    rid->data = p;
    rid->len = 32;
}


/*
 * 128 bits (v[0], then v[1]) as 32 lowercase hex digits, the most
 * significant nibble first. With SSE2: every byte split into its two
 * nibbles at once, then '0' added, and 'a' - '0' - 10 more where a nibble
 * is over 9.
 */

#if (defined __SSE2__ && NGX_HAVE_LITTLE_ENDIAN)

static void
ngx_http_mitte_hex32(u_char *p, uint64_t *v)
{
    __m128i  x, hi, lo, d, m;

    x = _mm_set_epi64x((long long) __builtin_bswap64(v[1]),
                       (long long) __builtin_bswap64(v[0]));
    m = _mm_set1_epi8(0x0f);

    hi = _mm_and_si128(_mm_srli_epi16(x, 4), m);
    lo = _mm_and_si128(x, m);

    d = _mm_unpacklo_epi8(hi, lo);
    d = _mm_add_epi8(d, _mm_add_epi8(_mm_set1_epi8('0'),
            _mm_and_si128(_mm_cmpgt_epi8(d, _mm_set1_epi8(9)),
                          _mm_set1_epi8('a' - '0' - 10))));
    _mm_storeu_si128((__m128i *) p, d);

    d = _mm_unpackhi_epi8(hi, lo);
    d = _mm_add_epi8(d, _mm_add_epi8(_mm_set1_epi8('0'),
            _mm_and_si128(_mm_cmpgt_epi8(d, _mm_set1_epi8(9)),
                          _mm_set1_epi8('a' - '0' - 10))));
    _mm_storeu_si128((__m128i *) (p + 16), d);
}

#else

/*
 * Without SSE2: 32 bits at a step, a nibble per byte at once: spread the
 * nibbles into bytes, then add as above.
 */

static void
ngx_http_mitte_hex32(u_char *p, uint64_t *v)
{
    uint64_t    x, m;
    ngx_uint_t  i;

    for (i = 0; i < 4; i++) {
        x = (i & 1) ? (v[i >> 1] & 0xffffffff) : (v[i >> 1] >> 32);

        x = ((x & 0xffff0000ULL) << 16) | (x & 0x0000ffffULL);
        x = ((x & 0x0000ff000000ff00ULL) << 8) | (x & 0x000000ff000000ffULL);
        x = ((x & 0x00f000f000f000f0ULL) << 4) | (x & 0x000f000f000f000fULL);

        m = ((x + 0x0606060606060606ULL) >> 4) & 0x0101010101010101ULL;
        x += 0x3030303030303030ULL + m * ('a' - '0' - 10);

        /* the most significant nibble first, whatever the byte order */

        p[0] = (u_char) (x >> 56);
        p[1] = (u_char) (x >> 48);
        p[2] = (u_char) (x >> 40);
        p[3] = (u_char) (x >> 32);
        p[4] = (u_char) (x >> 24);
        p[5] = (u_char) (x >> 16);
        p[6] = (u_char) (x >> 8);
        p[7] = (u_char) x;

        p += 8;
    }
}

#endif
