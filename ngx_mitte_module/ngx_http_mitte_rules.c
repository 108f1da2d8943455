/*
 * Copyright (C) ngx_mitte_module authors
 *
 * The rules: what a request, a delivery and a sweep do to the zone, and
 * the notifications they raise (SPEC section 4).
 */


#include "ngx_http_mitte_module.h"
#include "ngx_http_mitte_stream.h"
#include "ngx_http_mitte_notify.h"
#include "ngx_http_mitte_rules.h"
#include "ngx_http_mitte_cluster.h"
#include "mitte_notify.h"


static uint64_t ngx_http_mitte_now_ms(void);
static ngx_inline void ngx_http_mitte_lock(ngx_shmtx_t *mtx);
static ngx_inline void ngx_http_mitte_unlock(ngx_shmtx_t *mtx);
#if (NGX_HAVE_ATOMIC_OPS)
static ngx_inline void ngx_http_mitte_lock_wake(ngx_shmtx_t *mtx);
#endif
static ngx_inline void ngx_http_mitte_visit_user(
    ngx_http_mitte_main_conf_t *mmcf, ngx_http_mitte_zone_ctx_t *ctx,
    ngx_http_mitte_user_node_t *un, ngx_http_mitte_visit_t *v,
    ngx_uint_t *notes);
static void ngx_http_mitte_trial_check(ngx_http_mitte_main_conf_t *mmcf,
    ngx_http_mitte_zone_ctx_t *ctx, ngx_http_mitte_user_node_t *un,
    int64_t now, uint64_t now_ms, ngx_uint_t *notes);
static ngx_http_mitte_quota_e ngx_http_mitte_rules_lease(
    ngx_http_mitte_main_conf_t *mmcf, ngx_http_mitte_zone_ctx_t *ctx,
    ngx_http_mitte_user_node_t *un, ngx_http_mitte_visit_t *v,
    ngx_uint_t enforce, ngx_uint_t limit, uint32_t threshold);
static ngx_http_mitte_cold ngx_uint_t ngx_http_mitte_quota_note(
    ngx_http_mitte_main_conf_t *mmcf, ngx_http_mitte_zone_ctx_t *ctx,
    ngx_http_mitte_user_node_t *un, ngx_uint_t type, ngx_uint_t limit,
    ngx_http_mitte_visit_t *v);
static ngx_http_mitte_cold void ngx_http_mitte_streak_note(
    ngx_http_mitte_main_conf_t *mmcf, ngx_http_mitte_zone_ctx_t *ctx,
    ngx_http_mitte_endpoint_node_t *en, ngx_http_mitte_delivery_t *d,
    mitte_streak_event_e ev, uint32_t count);


/*
 * The zone's lock, taken and released twice by every request: the case
 * of a free lock without a call into nginx.
 *
 * Both follow nginx's ngx_shmtx lock protocol (src/core/ngx_shmtx.c, as
 * built with atomic operations) and must stay identical to it: nginx's
 * slab allocator and the module's other files take the same mutex with
 * ngx_shmtx_lock() and ngx_shmtx_unlock(), and every side must agree on
 * what its words mean. The lock word holds the owner's pid, 0 when free.
 * A process that goes to sleep on the semaphore first adds itself to the
 * "wait" count, so the process that releases the lock takes one off that
 * count, and posts the semaphore, only when the count is above 0.
 * Everything else (a taken lock: spinning, sleeping) is left to
 * ngx_shmtx_lock(), and a build without atomic operations calls nginx's
 * functions alone.
 */

static ngx_inline void
ngx_http_mitte_lock(ngx_shmtx_t *mtx)
{
#if (NGX_HAVE_ATOMIC_OPS)

    /* free: taken with one compare-and-set, nginx's own first try */

    if (*mtx->lock == 0 && ngx_atomic_cmp_set(mtx->lock, 0, ngx_pid)) {
        return;
    }

#endif

    ngx_shmtx_lock(mtx);
}


static ngx_inline void
ngx_http_mitte_unlock(ngx_shmtx_t *mtx)
{
#if (NGX_HAVE_ATOMIC_OPS)

    if (ngx_atomic_cmp_set(mtx->lock, ngx_pid, 0)) {
        ngx_http_mitte_lock_wake(mtx);
    }

#else

    ngx_shmtx_unlock(mtx);

#endif
}


#if (NGX_HAVE_ATOMIC_OPS)

/*
 * After a release: one sleeping process woken, when one sleeps (nginx's
 * own wake-up is static in ngx_shmtx.c)
 */

static ngx_inline void
ngx_http_mitte_lock_wake(ngx_shmtx_t *mtx)
{
#if (NGX_HAVE_POSIX_SEM)

    ngx_atomic_uint_t  n;

    if (!mtx->semaphore) {
        return;
    }

    do {
        n = *mtx->wait;

        if ((ngx_atomic_int_t) n <= 0) {
            /* nobody sleeps on the semaphore: no post */
            return;
        }

    } while (!ngx_atomic_cmp_set(mtx->wait, n, n - 1));

    if (sem_post(&mtx->sem) == -1) {
        ngx_log_error(NGX_LOG_ALERT, ngx_cycle->log, ngx_errno,
                      "mitte: sem_post() to wake a waiter of the zone's "
                      "lock failed");
    }

#endif
}

#endif


/* what the request says of its user: plan, email, trial end */

static ngx_inline void
ngx_http_mitte_visit_user(ngx_http_mitte_main_conf_t *mmcf,
    ngx_http_mitte_zone_ctx_t *ctx, ngx_http_mitte_user_node_t *un,
    ngx_http_mitte_visit_t *v, ngx_uint_t *notes)
{
    ngx_http_mitte_user_t  *u;

    u = &un->user;

    if (v->plan >= 0 && (u->plan != v->plan || !u->plan_set)) {
        u->plan = (uint8_t) v->plan;
        u->plan_set = 1;
    }

    if (v->email.len
        && (v->email.len != u->email_len
            || ngx_memcmp(v->email.data, u->email, v->email.len) != 0))
    {
        ngx_memcpy(u->email, v->email.data, v->email.len);
        u->email_len = (uint8_t) v->email.len;
    }

    if (v->trial_ends >= 0 && u->trial_ends != v->trial_ends) {
        u->trial_ends = v->trial_ends;
        ngx_http_mitte_trial_check(mmcf, ctx, un, v->now, v->now_ms, notes);
    }
}


ngx_http_mitte_quota_e
ngx_http_mitte_rules_visit(ngx_http_mitte_main_conf_t *mmcf,
    ngx_http_mitte_visit_t *v, ngx_uint_t enforce, ngx_uint_t *limit)
{
    uint32_t                     threshold;
    ngx_uint_t                   plan, notes;
    ngx_http_mitte_quota_e       rc;
    ngx_http_mitte_user_t       *u;
    ngx_http_mitte_zone_ctx_t   *ctx;
    ngx_http_mitte_user_node_t  *un;

    static int64_t     visit_sec = -1;
    static uint32_t    visit_month;

    /* the warning threshold of the plan seen last, per process */
    static ngx_uint_t  cached_limit = (ngx_uint_t) -1;
    static ngx_uint_t  cached_warn;
    static uint32_t    cached_threshold;

    ctx = mmcf->shm_zone->data;
    notes = 0;

    ngx_http_mitte_lock(&ctx->shpool->mutex);

    un = ngx_http_mitte_user_get_hash(ctx, v->user.data, v->user.len,
                                      v->hash, NULL);

    if (un == NULL) {
        ngx_http_mitte_unlock(&ctx->shpool->mutex);
        return NGX_HTTP_MITTE_QUOTA_UNKNOWN;
    }

    u = &un->user;

    ngx_http_mitte_visit_user(mmcf, ctx, un, v, &notes);

    /* the month once per second and process; rolled when it changed */

    if (v->now != visit_sec) {
        visit_month = mitte_month_of(v->now);
        visit_sec = v->now;
    }

    if (u->month != visit_month) {
        ngx_http_mitte_user_roll(u, v->now);
    }

    plan = u->plan;
    *limit = mmcf->quota[plan].limit;

    if (*limit != cached_limit || mmcf->quota[plan].warn != cached_warn) {
        cached_limit = *limit;
        cached_warn = mmcf->quota[plan].warn;
        cached_threshold = mitte_quota_threshold((uint32_t) cached_limit,
                                                 (uint32_t) cached_warn);
    }

    threshold = cached_threshold;

    if (mmcf->redis) {
        /* cluster mode: this worker's lease decides; it unlocks the zone */
        rc = ngx_http_mitte_rules_lease(mmcf, ctx, un, v, enforce, *limit,
                                        threshold);
        if (rc != NGX_HTTP_MITTE_QUOTA_UNKNOWN) {
            return rc;
        }

        /* Redis not ready: the zone's count, from the cluster's last seen */
    }

    if (u->used >= *limit && enforce) {
        ctx->sh->counters.quota_rejections++;

        if (!(u->flags & NGX_HTTP_MITTE_USER_EXCEEDED)) {
            u->flags |= NGX_HTTP_MITTE_USER_EXCEEDED;

            notes += ngx_http_mitte_quota_note(mmcf, ctx, un,
                                               NGX_HTTP_MITTE_QUOTA_EXCEEDED,
                                               *limit, v);
        }

        ngx_http_mitte_unlock(&ctx->shpool->mutex);

        ngx_log_debug2(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                       "mitte rules: user \"%V\" at the quota of %ui: "
                       "refused", &v->user, *limit);

        if (notes) {
            ngx_http_mitte_sse_wake(ctx);
        }

        return NGX_HTTP_MITTE_QUOTA_REFUSE;
    }

    if (u->used < 0xffffffff) {
        u->used++;
    }

    if (mmcf->redis) {
        /* charged to the cluster's count when Redis is back */
        ngx_http_mitte_lease_fail_open(v->hash, u->month);
    }

    if (u->used >= threshold && !(u->flags & NGX_HTTP_MITTE_USER_WARNED)) {
        u->flags |= NGX_HTTP_MITTE_USER_WARNED;

        notes += ngx_http_mitte_quota_note(mmcf, ctx, un,
                                           NGX_HTTP_MITTE_QUOTA_WARNING,
                                           *limit, v);
    }

    ngx_http_mitte_unlock(&ctx->shpool->mutex);

    /* the event stream hears of notifications only: most visits have none */

    if (notes) {
        ngx_http_mitte_sse_wake(ctx);
    }

    return NGX_HTTP_MITTE_QUOTA_PASS;
}


/*
 * The quota in cluster mode, with the zone locked (unlocked on return
 * unless NGX_HTTP_MITTE_QUOTA_UNKNOWN: Redis is not ready, the zone's
 * count decides). The zone's "used" shows the cluster's use: the last
 * reply's, plus what passed here since. QUOTA_WARNING is raised from the
 * lease script's reply; QUOTA_EXCEEDED here, at the first refusal for the
 * limit (the zone's flag: once per instance; notify's dedupe in Redis,
 * "QUOTA_EXCEEDED:<YYYYMM>" for the user, makes it once in the cluster).
 */

static ngx_http_mitte_quota_e
ngx_http_mitte_rules_lease(ngx_http_mitte_main_conf_t *mmcf,
    ngx_http_mitte_zone_ctx_t *ctx, ngx_http_mitte_user_node_t *un,
    ngx_http_mitte_visit_t *v, ngx_uint_t enforce, ngx_uint_t limit,
    uint32_t threshold)
{
    void                    *ask;
    ngx_uint_t               notes;
    ngx_http_mitte_user_t   *u;
    ngx_http_mitte_lease_e   lrc;

    u = &un->user;
    notes = 0;

    lrc = ngx_http_mitte_lease_take(mmcf, &v->user, v->hash, u->month, limit,
                                    threshold, u->used, &ask);

    if (lrc == NGX_HTTP_MITTE_LEASE_OFF) {
        return NGX_HTTP_MITTE_QUOTA_UNKNOWN;
    }

    if (lrc == NGX_HTTP_MITTE_LEASE_PASS || !enforce) {
        /* enforcement off: counted on lease or credit when there is some */
        if (u->used < 0xffffffff) {
            u->used++;
        }

        if (lrc != NGX_HTTP_MITTE_LEASE_PASS) {
            /* passed without lease: charged by the next call */
            ngx_http_mitte_lease_fail_open(v->hash, u->month);
        }

        lrc = NGX_HTTP_MITTE_LEASE_PASS;

    } else {
        ctx->sh->counters.quota_rejections++;

        if (lrc == NGX_HTTP_MITTE_LEASE_LIMIT
            && !(u->flags & NGX_HTTP_MITTE_USER_EXCEEDED))
        {
            u->flags |= NGX_HTTP_MITTE_USER_EXCEEDED;

            notes += ngx_http_mitte_quota_note(mmcf, ctx, un,
                                               NGX_HTTP_MITTE_QUOTA_EXCEEDED,
                                               limit, v);
        }
    }

    ngx_http_mitte_unlock(&ctx->shpool->mutex);

    if (ask) {
        /* queued, nothing waits; not from inside the zone's lock */
        ngx_http_mitte_lease_ask(ask);
    }

    if (notes) {
        ngx_http_mitte_sse_wake(ctx);
    }

    switch (lrc) {

    case NGX_HTTP_MITTE_LEASE_PASS:
        return NGX_HTTP_MITTE_QUOTA_PASS;

    case NGX_HTTP_MITTE_LEASE_WAIT:
        return NGX_HTTP_MITTE_QUOTA_WAIT;

    default:
        return NGX_HTTP_MITTE_QUOTA_REFUSE;
    }
}


/*
 * A quota notification (no endpoint): QUOTA_EXCEEDED or QUOTA_WARNING; 1
 * when it was created. Apart from rules_visit(), so that the message's
 * buffer is not in the frame of every request.
 */

static ngx_http_mitte_cold ngx_uint_t
ngx_http_mitte_quota_note(ngx_http_mitte_main_conf_t *mmcf,
    ngx_http_mitte_zone_ctx_t *ctx, ngx_http_mitte_user_node_t *un,
    ngx_uint_t type, ngx_uint_t limit, ngx_http_mitte_visit_t *v)
{
    u_char                 msg[NGX_HTTP_MITTE_MESSAGE_MAX];
    size_t                 len;
    ngx_http_mitte_once_t  once;

    /* once a month cluster-wide */

    once.len = ngx_sprintf(once.what, "%s:%uD", mitte_notify_type_name(type),
                           un->user.month)
               - once.what;
    once.ttl = 40 * 86400;

    if (type == NGX_HTTP_MITTE_QUOTA_EXCEEDED) {
        len = mitte_notify_quota_exceeded_message((char *) msg, sizeof(msg),
                                                  (uint32_t) limit, v->now,
                                                  1);

    } else {
        len = mitte_notify_quota_warning_message((char *) msg, sizeof(msg),
                                                 un->user.used,
                                                 (uint32_t) limit);
    }

    return ngx_http_mitte_notify(mmcf, ctx, un, type, NULL, 0, msg,
                                 ngx_min(len, NGX_HTTP_MITTE_MESSAGE_MAX - 1),
                                 v->now_ms, NULL, &once)
           == NGX_OK;
}


ngx_int_t
ngx_http_mitte_rules_deliver(ngx_http_mitte_main_conf_t *mmcf,
    ngx_http_mitte_delivery_t *d)
{
    int64_t                          sec;
    uint32_t                         hour, count;
    ngx_uint_t                       watched;
    mitte_streak_event_e             ev;
    ngx_http_mitte_zone_ctx_t       *ctx;
    ngx_http_mitte_endpoint_node_t  *en;

    /* the calendar once per second and process */
    static int64_t   cached_sec = -1;
    static uint32_t  cached_hour;

    ctx = mmcf->shm_zone->data;

    sec = (int64_t) (d->now_ms / 1000);

    if (sec != cached_sec) {
        cached_hour = mitte_hour_of(sec);
        cached_sec = sec;
    }

    hour = cached_hour;

    ngx_http_mitte_lock(&ctx->shpool->mutex);

    if (d->success) {
        ctx->sh->counters.success++;

    } else {
        ctx->sh->counters.failure++;
    }

    en = ngx_http_mitte_endpoint_get_hash(ctx, d->slug.data, d->slug.len,
                                          d->hash);

    if (en == NULL) {
        ngx_http_mitte_unlock(&ctx->shpool->mutex);
        return NGX_ERROR;
    }

    /* the owner, most of the time the same as before */

    if (d->user.len
        && !(d->user.len == en->user_len
             && ngx_http_mitte_same(d->user.data, en->ep.user, d->user.len)))
    {
        (void) ngx_http_mitte_endpoint_set_user(en, &d->user);
    }

    if (d->name.len) {
        ngx_http_mitte_endpoint_set_name(ctx, en, &d->name);
    }

    (void) mitte_ring_add(&en->ep.ring, hour, 1, d->success ? 0 : 1);

    count = en->ep.streak.count;

    ev = mitte_streak_record(&en->ep.streak, d->now_ms, d->success,
                             (uint32_t) mmcf->down_threshold,
                             mmcf->down_reset);

    en->last_status = (uint16_t) d->status;

    /* the event, when a stream may want it (now or after a reconnect) */

    watched = ngx_http_mitte_watched(ctx, en->user_len,
                                     d->user.len ? d->user_hash
                                     : ngx_http_mitte_key(en->ep.user,
                                                          en->user_len),
                                     (uint32_t) sec);

    if (watched && d->request_id) {
        d->request_id(d);
    }

    if (mmcf->redis
        && ngx_http_mitte_sync_delivery(mmcf, ctx, d, en, hour, watched)
           == NGX_OK)
    {
        /* the cluster numbers the event and decides the streak's notes */
        ngx_http_mitte_unlock(&ctx->shpool->mutex);
        return NGX_OK;
    }

    if (watched) {
        ngx_http_mitte_event_delivered(ctx, d, en);
    }

    if (ev == MITTE_STREAK_NONE || en->user_len == 0) {
        ngx_http_mitte_unlock(&ctx->shpool->mutex);

        if (watched) {
            ngx_http_mitte_sse_wake(ctx);
        }

        return NGX_OK;
    }

    ngx_http_mitte_streak_note(mmcf, ctx, en, d, ev, count);

    ngx_http_mitte_unlock(&ctx->shpool->mutex);

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                   "mitte rules: endpoint \"%V\" %s at status %ui",
                   &d->slug, (ev == MITTE_STREAK_DOWN) ? "down" : "recovered",
                   d->status);

    ngx_http_mitte_sse_wake(ctx);

    return NGX_OK;
}


/*
 * ENDPOINT_DOWN or ENDPOINT_RECOVERED to the endpoint's owner, with the
 * zone locked ("count": the streak before this delivery)
 */

static ngx_http_mitte_cold void
ngx_http_mitte_streak_note(ngx_http_mitte_main_conf_t *mmcf,
    ngx_http_mitte_zone_ctx_t *ctx, ngx_http_mitte_endpoint_node_t *en,
    ngx_http_mitte_delivery_t *d, mitte_streak_event_e ev, uint32_t count)
{
    u_char                       msg[NGX_HTTP_MITTE_MESSAGE_MAX];
    size_t                       len;
    ngx_str_t                    name;
    ngx_uint_t                   type;
    ngx_http_mitte_user_node_t  *un;

    un = ngx_http_mitte_user_get(ctx, en->ep.user, en->user_len, en);

    if (un == NULL) {
        return;
    }

    ngx_http_mitte_endpoint_name(ctx, en, &name);
    name.len = ngx_min(name.len, MITTE_NAME_MAX);

    if (ev == MITTE_STREAK_DOWN) {
        type = NGX_HTTP_MITTE_ENDPOINT_DOWN;
        len = mitte_notify_down_message((char *) msg, sizeof(msg),
                                        (char *) name.data, name.len,
                                        en->ep.streak.count,
                                        (unsigned) d->status);

    } else {
        type = NGX_HTTP_MITTE_ENDPOINT_RECOVERED;
        len = mitte_notify_recovered_message((char *) msg, sizeof(msg),
                                             (char *) name.data, name.len,
                                             (unsigned) d->status, count);
    }

    (void) ngx_http_mitte_notify(mmcf, ctx, un, type, en->ep.slug,
                                 en->slug_len, msg,
                                 ngx_min(len, sizeof(msg) - 1),
                                 d->now_ms, en, NULL);
}


/* the sweep's work on one endpoint, with the zone locked */

void
ngx_http_mitte_rules_sweep_endpoint(ngx_http_mitte_main_conf_t *mmcf,
    ngx_http_mitte_zone_ctx_t *ctx, ngx_http_mitte_endpoint_node_t *en,
    int64_t now, ngx_uint_t *notes)
{
    u_char                       msg[NGX_HTTP_MITTE_MESSAGE_MAX];
    size_t                       len;
    uint32_t                     hour, requests, failures;
    ngx_str_t                    name;
    mitte_anomaly_result_t       res;
    ngx_http_mitte_once_t        once;
    ngx_http_mitte_user_node_t  *un;

    if (!mmcf->anomaly_on) {
        return;
    }

    if (en->ep.anomaly_at && now - (int64_t) en->ep.anomaly_at
                             < (int64_t) mmcf->cooldown)
    {
        return;
    }

    /* neither rule can fire below both request minimums */

    hour = mitte_hour_of(now);

    mitte_ring_get(&en->ep.ring, hour, hour, &requests, &failures);

    if (requests < mmcf->anomaly.zscore_min_requests
        && requests < mmcf->anomaly.rate_min_requests)
    {
        return;
    }

    if (!mitte_anomaly_check(&en->ep.ring, hour, &mmcf->anomaly, &res)) {
        return;
    }

    en->ep.anomaly_at = (uint32_t) now;

    if (en->user_len == 0) {
        return;
    }

    un = ngx_http_mitte_user_get(ctx, en->ep.user, en->user_len, en);
    if (un == NULL) {
        return;
    }

    ngx_http_mitte_endpoint_name(ctx, en, &name);

    len = mitte_notify_anomaly_message((char *) msg, sizeof(msg),
                                       (char *) name.data,
                                       ngx_min(name.len, MITTE_NAME_MAX),
                                       &res);
    len = ngx_min(len, sizeof(msg) - 1);

    /* once a cooldown cluster-wide */

    once.len = ngx_snprintf(once.what, sizeof(once.what), "%s:%*s",
                            mitte_notify_type_name(
                                NGX_HTTP_MITTE_ANOMALY_DETECTED),
                            (size_t) en->slug_len, en->ep.slug)
               - once.what;
    once.ttl = ngx_max(mmcf->cooldown, 1);

    if (ngx_http_mitte_notify(mmcf, ctx, un, NGX_HTTP_MITTE_ANOMALY_DETECTED,
                              en->ep.slug, en->slug_len, msg, len,
                              ngx_http_mitte_now_ms(), en, &once)
        == NGX_OK)
    {
        (*notes)++;
    }
}


/* the sweep's work on one user, with the zone locked */

void
ngx_http_mitte_rules_sweep_user(ngx_http_mitte_main_conf_t *mmcf,
    ngx_http_mitte_zone_ctx_t *ctx, ngx_http_mitte_user_node_t *un,
    int64_t now, ngx_uint_t *notes)
{
    ngx_http_mitte_trial_check(mmcf, ctx, un, now, ngx_http_mitte_now_ms(),
                               notes);
}


static void
ngx_http_mitte_trial_check(ngx_http_mitte_main_conf_t *mmcf,
    ngx_http_mitte_zone_ctx_t *ctx, ngx_http_mitte_user_node_t *un,
    int64_t now, uint64_t now_ms, ngx_uint_t *notes)
{
    u_char                  msg[NGX_HTTP_MITTE_MESSAGE_MAX];
    size_t                  len;
    int64_t                 end;
    ngx_http_mitte_once_t   once;
    ngx_http_mitte_user_t  *u;

    u = &un->user;
    end = u->trial_ends;

    if (mmcf->trial_notice == 0 || end == 0 || end <= now
        || end - now > (int64_t) mmcf->trial_notice
        || u->trial_noted == end)
    {
        return;
    }

    u->trial_noted = end;

    len = mitte_notify_trial_message((char *) msg, sizeof(msg), end);

    /* once a trial's end cluster-wide */

    once.len = ngx_sprintf(once.what, "%s:%L",
                           mitte_notify_type_name(
                               NGX_HTTP_MITTE_TRIAL_ENDING), end)
               - once.what;
    once.ttl = (ngx_uint_t) (end - now) + 86400;

    if (ngx_http_mitte_notify(mmcf, ctx, un, NGX_HTTP_MITTE_TRIAL_ENDING,
                              NULL, 0, msg, ngx_min(len, sizeof(msg) - 1),
                              now_ms, un, &once)
        == NGX_OK)
    {
        (*notes)++;
    }
}


static uint64_t
ngx_http_mitte_now_ms(void)
{
    ngx_time_t  *tp;

    tp = ngx_timeofday();

    return (uint64_t) tp->sec * 1000 + tp->msec;
}
