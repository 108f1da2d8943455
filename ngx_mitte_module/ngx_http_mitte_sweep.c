/*
 * Copyright (C) ngx_mitte_module authors
 *
 * The sweep: every endpoint through the anomaly rule and every user
 * through the trial rule, in slices of a few hundred nodes, each under
 * the zone lock for a short while, one slice per turn of the event loop.
 * A timer runs it in worker 0 every interval; POST .../sweep runs it at
 * once in the worker that got the request.
 */


#include "ngx_http_mitte_module.h"
#include "ngx_http_mitte_stream.h"
#include "ngx_http_mitte_rules.h"
#include "ngx_http_mitte_api.h"
#include "ngx_http_mitte_redis.h"

#include <time.h>


#define NGX_HTTP_MITTE_SWEEP_SLICE      512


typedef struct {
    ngx_event_t                  ev;
    ngx_http_mitte_main_conf_t  *mmcf;
    ngx_http_request_t          *request;   /* a manual sweep's */
    int64_t                      now;
    ngx_uint_t                   phase;     /* 0: endpoints, 1: users */
    ngx_uint_t                   claimed;   /* this interval is ours */
    ngx_uint_t                   started;   /* the cursor is set */
    ngx_rbtree_key_t             key;       /* cursor: the last node */
    size_t                       len;
    u_char                       id[MITTE_USER_MAX];
    ngx_uint_t                   endpoints;
    ngx_uint_t                   notes;
    uint64_t                     usec;
    uint64_t                     longest;
} ngx_http_mitte_sweep_t;


static void ngx_http_mitte_sweep_start(ngx_http_mitte_sweep_t *sw);
static ngx_uint_t ngx_http_mitte_sweep_slice(ngx_http_mitte_sweep_t *sw);
static ngx_rbtree_node_t *ngx_http_mitte_sweep_after(ngx_rbtree_t *tree,
    ngx_http_mitte_sweep_t *sw);
static void ngx_http_mitte_sweep_timer(ngx_event_t *ev);
static void ngx_http_mitte_sweep_manual(ngx_event_t *ev);
static void ngx_http_mitte_sweep_abort(void *data);
static uint64_t ngx_http_mitte_cpu_usec(void);
static ngx_msec_t ngx_http_mitte_sweep_next(ngx_http_mitte_sweep_t *sw);
static ngx_int_t ngx_http_mitte_sweep_claim(ngx_http_mitte_sweep_t *sw);
static void ngx_http_mitte_sweep_claimed(redisReply *reply, void *data,
    ngx_uint_t rc);


ngx_int_t
ngx_http_mitte_sweep_init_process(ngx_cycle_t *cycle)
{
    ngx_http_mitte_sweep_t      *sw;
    ngx_http_mitte_main_conf_t  *mmcf;

    mmcf = ngx_http_mitte_process_conf(cycle, 1);

    if (mmcf == NULL || mmcf->sweep_interval == 0) {
        return NGX_OK;
    }

    sw = ngx_pcalloc(cycle->pool, sizeof(ngx_http_mitte_sweep_t));
    if (sw == NULL) {
        return NGX_ERROR;
    }

    sw->mmcf = mmcf;
    sw->ev.handler = ngx_http_mitte_sweep_timer;
    sw->ev.data = sw;
    sw->ev.log = cycle->log;
    sw->ev.cancelable = 1;
    sw->phase = 2;

    ngx_add_timer(&sw->ev, ngx_http_mitte_sweep_next(sw));

    return NGX_OK;
}


/*
 * The time to the next sweep: the interval; in cluster mode, to the next
 * multiple of it, so that every instance asks for the same interval's
 * key at about the same time
 */

static ngx_msec_t
ngx_http_mitte_sweep_next(ngx_http_mitte_sweep_t *sw)
{
    uint64_t     now;
    ngx_msec_t   interval;
    ngx_time_t  *tp;

    interval = sw->mmcf->sweep_interval;

    if (sw->mmcf->redis == NULL) {
        return interval;
    }

    tp = ngx_timeofday();
    now = (uint64_t) tp->sec * 1000 + tp->msec;

    return interval - (ngx_msec_t) (now % interval) + 1;
}


/*
 * Cluster mode: "<prefix>{sweep}:<interval's number>", SET NX, decides
 * which instance sweeps this interval; NGX_OK: asked, the reply goes on
 */

static ngx_int_t
ngx_http_mitte_sweep_claim(ngx_http_mitte_sweep_t *sw)
{
    u_char      key[NGX_HTTP_MITTE_REDIS_KEY_MAX];
    u_char      ttl[NGX_INT64_LEN];
    size_t      argvlen[6];
    ngx_str_t   instance;
    const char *argv[6];

    argvlen[1] = ngx_http_mitte_redis_key(key, sizeof(key), "{sweep}:%T",
                                          ngx_time() * 1000
                                          / (time_t) sw->mmcf->sweep_interval);
    if (argvlen[1] == 0) {
        return NGX_DECLINED;
    }

    ngx_http_mitte_redis_instance(&instance);

    argv[0] = "SET";
    argvlen[0] = 3;
    argv[1] = (const char *) key;
    argv[2] = (const char *) instance.data;
    argvlen[2] = instance.len;
    argv[3] = "NX";
    argvlen[3] = 2;
    argv[4] = "EX";
    argvlen[4] = 2;
    argv[5] = (const char *) ttl;
    argvlen[5] = ngx_sprintf(ttl, "%M",
                             ngx_max(sw->mmcf->sweep_interval / 1000, 1))
                 - ttl;

    return ngx_http_mitte_redis_command_argv(ngx_http_mitte_sweep_claimed,
                                             sw, 6, argv, argvlen);
}


static void
ngx_http_mitte_sweep_claimed(redisReply *reply, void *data, ngx_uint_t rc)
{
    ngx_http_mitte_sweep_t *sw = data;

    ngx_http_mitte_zone_ctx_t  *ctx;

    ctx = sw->mmcf->shm_zone->data;

    if (ngx_exiting || ngx_quit || ngx_terminate) {
        return;
    }

    if (rc == NGX_HTTP_MITTE_REDIS_REPLY && reply->type == REDIS_REPLY_NIL) {
        /* another instance sweeps this interval */
        (void) ngx_atomic_fetch_add(&ctx->sh->cluster.sweeps_lost, 1);
        ngx_add_timer(&sw->ev, ngx_http_mitte_sweep_next(sw));
        return;
    }

    if (rc == NGX_HTTP_MITTE_REDIS_REPLY
        && reply->type == REDIS_REPLY_STATUS)
    {
        (void) ngx_atomic_fetch_add(&ctx->sh->cluster.sweeps_won, 1);
    }

    /* won; or Redis could not say, and this instance sweeps (fail-open) */

    sw->claimed = 1;
    ngx_post_event(&sw->ev, &ngx_posted_events);
}


static void
ngx_http_mitte_sweep_timer(ngx_event_t *ev)
{
    ngx_http_mitte_sweep_t  *sw = ev->data;

    if (ngx_exiting || ngx_quit || ngx_terminate) {
        return;
    }

    if (sw->phase >= 2) {
        if (sw->mmcf->redis && !sw->claimed
            && ngx_http_mitte_redis_ready() == NGX_OK
            && ngx_http_mitte_sweep_claim(sw) == NGX_OK)
        {
            /* the reply goes on */
            return;
        }

        sw->claimed = 0;
        ngx_http_mitte_sweep_start(sw);
    }

    if (!ngx_http_mitte_sweep_slice(sw)) {
        ngx_post_event(ev, &ngx_posted_next_events);
        return;
    }

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, ev->log, 0,
                   "mitte sweep: %ui endpoints, %ui notifications",
                   sw->endpoints, sw->notes);

    ngx_add_timer(ev, ngx_http_mitte_sweep_next(sw));
}


ngx_int_t
ngx_http_mitte_sweep_request(ngx_http_request_t *r)
{
    ngx_http_cleanup_t      *cln;
    ngx_http_mitte_sweep_t  *sw;

    sw = ngx_pcalloc(r->pool, sizeof(ngx_http_mitte_sweep_t));
    if (sw == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /*
     * the sweep's event lives in the request's pool: a request ended
     * early (a bad chunked body, worker_shutdown_timeout) must not leave
     * it posted; the next timer sweep covers what this one did not do
     */

    cln = ngx_http_cleanup_add(r, 0);
    if (cln == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln->handler = ngx_http_mitte_sweep_abort;
    cln->data = sw;

    sw->mmcf = ngx_http_get_module_main_conf(r, ngx_http_mitte_module);
    sw->request = r;
    sw->ev.handler = ngx_http_mitte_sweep_manual;
    sw->ev.data = sw;
    sw->ev.log = r->connection->log;

    ngx_http_mitte_sweep_start(sw);

    if (ngx_http_mitte_sweep_slice(sw)) {
        ngx_http_mitte_sweep_manual(&sw->ev);
        return NGX_DONE;
    }

    ngx_post_event(&sw->ev, &ngx_posted_next_events);

    return NGX_DONE;
}


static void
ngx_http_mitte_sweep_abort(void *data)
{
    ngx_http_mitte_sweep_t  *sw = data;

    if (sw->ev.posted) {
        ngx_delete_posted_event(&sw->ev);
    }
}


static void
ngx_http_mitte_sweep_manual(ngx_event_t *ev)
{
    ngx_http_mitte_sweep_t  *sw = ev->data;

    ngx_int_t            rc;
    ngx_buf_t           *b;
    ngx_http_request_t  *r;

    r = sw->request;

    if (sw->phase < 2 && !ngx_http_mitte_sweep_slice(sw)) {
        ngx_post_event(ev, &ngx_posted_next_events);
        return;
    }

    b = ngx_create_temp_buf(r->pool, 96);
    if (b == NULL) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    b->last = ngx_sprintf(b->last,
                          "{\"endpoints\":%ui,\"notifications\":%ui}\n",
                          sw->endpoints, sw->notes);

    rc = ngx_http_mitte_reply_buf(r, NGX_HTTP_OK, b);

    ngx_http_finalize_request(r, rc);
}


static void
ngx_http_mitte_sweep_start(ngx_http_mitte_sweep_t *sw)
{
    sw->now = ngx_time();
    sw->phase = 0;
    sw->started = 0;
    sw->endpoints = 0;
    sw->notes = 0;
    sw->usec = 0;
    sw->longest = 0;
}


/* one slice; 1 when the sweep is done */

static ngx_uint_t
ngx_http_mitte_sweep_slice(ngx_http_mitte_sweep_t *sw)
{
    uint64_t                         start, spent;
    ngx_uint_t                       i;
    ngx_rbtree_t                    *tree;
    ngx_rbtree_node_t               *node;
    ngx_http_mitte_zone_ctx_t       *ctx;
    ngx_http_mitte_user_node_t      *un;
    ngx_http_mitte_endpoint_node_t  *en;

    ctx = sw->mmcf->shm_zone->data;

    start = ngx_http_mitte_cpu_usec();

    ngx_shmtx_lock(&ctx->shpool->mutex);

    tree = (sw->phase == 0) ? &ctx->sh->ep_rbtree : &ctx->sh->user_rbtree;

    if (sw->started) {
        node = ngx_http_mitte_sweep_after(tree, sw);

    } else if (tree->root != tree->sentinel) {
        node = ngx_rbtree_min(tree->root, tree->sentinel);

    } else {
        node = NULL;
    }

    for (i = 0; node && i < NGX_HTTP_MITTE_SWEEP_SLICE; i++) {

        sw->key = node->key;
        sw->started = 1;

        if (sw->phase == 0) {
            en = (ngx_http_mitte_endpoint_node_t *) &node->color;

            sw->len = en->slug_len;
            ngx_memcpy(sw->id, en->ep.slug, sw->len);

            ngx_http_mitte_rules_sweep_endpoint(sw->mmcf, ctx, en, sw->now,
                                                &sw->notes);
            sw->endpoints++;

        } else {
            un = (ngx_http_mitte_user_node_t *) &node->color;

            sw->len = un->user.id_len;
            ngx_memcpy(sw->id, un->user.id, sw->len);

            ngx_http_mitte_rules_sweep_user(sw->mmcf, ctx, un, sw->now,
                                            &sw->notes);
        }

        node = ngx_rbtree_next(tree, node);
    }

    if (node == NULL) {
        sw->phase++;
        sw->started = 0;
    }

    spent = ngx_http_mitte_cpu_usec() - start;
    sw->usec += spent;

    if (spent > sw->longest) {
        sw->longest = spent;
    }

    if (sw->phase >= 2) {
        ctx->sh->counters.sweeps++;
        ctx->sh->counters.sweep_usec = sw->usec;
        ctx->sh->counters.sweep_slice_usec = sw->longest;
    }

    ngx_shmtx_unlock(&ctx->shpool->mutex);

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                   "mitte sweep: slice done, phase %ui, %uLus, %ui "
                   "notifications so far", sw->phase, spent, sw->notes);

    if (sw->notes) {
        ngx_http_mitte_sse_wake(ctx);
    }

    return sw->phase >= 2;
}


/* the first node after the cursor, which may itself be gone by now */

static ngx_rbtree_node_t *
ngx_http_mitte_sweep_after(ngx_rbtree_t *tree, ngx_http_mitte_sweep_t *sw)
{
    return ngx_http_mitte_tree_after(tree,
                                     (sw->phase == 0)
                                     ? ngx_http_mitte_endpoint_key
                                     : ngx_http_mitte_user_key,
                                     sw->key, sw->id, sw->len);
}


static uint64_t
ngx_http_mitte_cpu_usec(void)
{
    struct timespec  ts;

    if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) != 0) {
        return 0;
    }

    return (uint64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}
