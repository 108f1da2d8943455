/*
 * Copyright (C) ngx_mitte_module authors
 *
 * The zone's start, in the master: a new zone is laid out, then filled
 * from the zone of the old size (a reload that resized it) or from the
 * state file (nginx starts); a reload that keeps the size reuses the zone.
 *
 * A reload that changes the size of mitte_zone: nginx gives the zone new
 * memory, so the master copies the state of the zone of the old size into
 * it before the new workers start: endpoints, users with their
 * preferences and notifications, the outbox and the replay buffer. The
 * records are pointer-free, so they are copied as they are; the trees,
 * queues and offsets are made anew. Least recently used first, so that a
 * smaller zone keeps the most recently used when all does not fit.
 */


#include "ngx_http_mitte_zone.h"
#include "ngx_http_mitte_state.h"
#include "ngx_http_mitte_stream.h"


static ngx_int_t ngx_http_mitte_carry(ngx_shm_zone_t *shm_zone,
    ngx_http_mitte_zone_ctx_t *ctx);
static ngx_shm_zone_t *ngx_http_mitte_carry_find(ngx_shm_zone_t *shm_zone);


ngx_int_t
ngx_http_mitte_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_http_mitte_zone_ctx_t  *octx = data;

    size_t                      len;
    ngx_uint_t                  started, read;
    ngx_http_mitte_zone_ctx_t  *ctx;

    ctx = shm_zone->data;

    /* a zone made or taken over here: what this process found is moot */
    ngx_http_mitte_cache_reset();

    if (octx) {
        if (octx->sh->version != NGX_HTTP_MITTE_ZONE_VERSION) {
            ngx_log_error(NGX_LOG_EMERG, shm_zone->shm.log, 0,
                          "mitte_zone \"%V\" holds layout version %ui, "
                          "this module needs %d: restart nginx instead "
                          "of reloading it",
                          &shm_zone->shm.name, octx->sh->version,
                          NGX_HTTP_MITTE_ZONE_VERSION);
            return NGX_ERROR;
        }

        ctx->sh = octx->sh;
        ctx->shpool = octx->shpool;

        return ngx_http_mitte_events_init(shm_zone, ctx);
    }

    ctx->shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (shm_zone->shm.exists) {
        ctx->sh = ctx->shpool->data;
        return ngx_http_mitte_events_init(shm_zone, ctx);
    }

    ctx->sh = ngx_slab_alloc(ctx->shpool, sizeof(ngx_http_mitte_sh_t));
    if (ctx->sh == NULL) {
        return NGX_ERROR;
    }

    ngx_memzero(ctx->sh, sizeof(ngx_http_mitte_sh_t));

    ctx->shpool->data = ctx->sh;

    ctx->sh->version = NGX_HTTP_MITTE_ZONE_VERSION;

    ngx_rbtree_init(&ctx->sh->ep_rbtree, &ctx->sh->ep_sentinel,
                    ngx_http_mitte_endpoint_insert);
    ngx_queue_init(&ctx->sh->ep_lru);

    ngx_rbtree_init(&ctx->sh->user_rbtree, &ctx->sh->user_sentinel,
                    ngx_http_mitte_user_insert);
    ngx_queue_init(&ctx->sh->user_lru);

    ngx_queue_init(&ctx->sh->pending[0]);
    ngx_queue_init(&ctx->sh->pending[1]);
    ngx_queue_init(&ctx->sh->done);
    ngx_queue_init(&ctx->sh->dirty);
    ngx_queue_init(&ctx->sh->delta_free);

    len = sizeof(" in mitte_zone \"\"") + shm_zone->shm.name.len;

    ctx->shpool->log_ctx = ngx_slab_alloc(ctx->shpool, len);
    if (ctx->shpool->log_ctx == NULL) {
        return NGX_ERROR;
    }

    ngx_sprintf(ctx->shpool->log_ctx, " in mitte_zone \"%V\"%Z",
                &shm_zone->shm.name);

    /* a full zone evicts; it is counted in metrics, not logged each time */
    ctx->shpool->log_nomem = 0;

    if (ngx_http_mitte_events_init(shm_zone, ctx) != NGX_OK) {
        return NGX_ERROR;
    }

    /*
     * a reload that changed the zone's size: the old zone's state; else,
     * nginx starts (or the reload adds the zone): the state file's
     */

    started = (ngx_http_mitte_carry(shm_zone, ctx) == NGX_DECLINED);
    read = 0;

    if (started && ctx->state_file.len) {
        read = (ngx_http_mitte_state_restore(shm_zone, ctx) != NGX_DECLINED);
    }

    if (ctx->sh->event_seq || read) {
        /*
         * events came along (carried over, or from the state file), or
         * nginx ran before: the streams that were open then reconnect, and
         * find every event of their gap, as they would after a stream of
         * theirs closed
         */
        ctx->sh->watch_until = (uint32_t) ngx_time()
                               + NGX_HTTP_MITTE_SSE_GAP;
    }

    if (started && !ctx->cluster && ctx->sh->event_seq == 0
        && ngx_time() > NGX_HTTP_MITTE_EVENT_EPOCH)
    {
        /*
         * the last number given before is not known: numbers above all
         * of them, so that a stream reconnecting with one of those is
         * not taken to have seen new events (in cluster mode Redis
         * numbers the events, and the relay brings the numbers in)
         */
        ctx->sh->event_seq = (uint64_t) (ngx_time()
                                         - NGX_HTTP_MITTE_EVENT_EPOCH)
                             << NGX_HTTP_MITTE_EVENT_RATE_BITS;
    }

    return NGX_OK;
}


/*
 * Called by the zone's init for new memory. NGX_DECLINED: the cycle being
 * replaced had no zone of this name (nginx starts, or the reload adds it).
 */

static ngx_int_t
ngx_http_mitte_carry(ngx_shm_zone_t *shm_zone, ngx_http_mitte_zone_ctx_t *ctx)
{
    ngx_int_t                   rc;
    ngx_uint_t                  level;
    ngx_shm_zone_t             *oshm;
    ngx_http_mitte_loaded_t     ld;
    ngx_http_mitte_records_t    rs;
    ngx_http_mitte_zone_ctx_t  *octx;

    oshm = ngx_http_mitte_carry_find(shm_zone);
    if (oshm == NULL) {
        return NGX_DECLINED;
    }

    octx = oshm->data;

    if (octx->sh == NULL || octx->sh->version != NGX_HTTP_MITTE_ZONE_VERSION)
    {
        ngx_log_error(NGX_LOG_WARN, shm_zone->shm.log, 0,
                      "mitte_zone \"%V\" changed size, and the old zone "
                      "holds another layout version: its state is not "
                      "carried over", &shm_zone->shm.name);
        return NGX_OK;
    }

    ngx_memzero(&rs, sizeof(ngx_http_mitte_records_t));
    rs.log = shm_zone->shm.log;

    /* the old workers go on recording until they exit: hold them off */

    ngx_shmtx_lock(&octx->shpool->mutex);
    rc = ngx_http_mitte_state_dump(octx, &rs);
    ngx_shmtx_unlock(&octx->shpool->mutex);

    if (rc != NGX_OK
        || ngx_http_mitte_state_load(ctx, rs.data, rs.len, 0, &ld) != NGX_OK)
    {
        ngx_http_mitte_records_free(&rs);
        ngx_log_error(NGX_LOG_ERR, shm_zone->shm.log, 0,
                      "mitte_zone \"%V\" changed size, and its state "
                      "could not be carried over (no memory)",
                      &shm_zone->shm.name);
        return NGX_OK;
    }

    ngx_http_mitte_records_free(&rs);

    level = ld.lost ? NGX_LOG_WARN : NGX_LOG_NOTICE;

    ngx_log_error(level, shm_zone->shm.log, 0,
                  "mitte_zone \"%V\" changed size from %uz to %uz bytes: "
                  "kept %ui of %ui endpoints and %ui of %ui users, "
                  "%ui notifications, %ui sends and %ui events; "
                  "%ui entries did not fit",
                  &shm_zone->shm.name, oshm->shm.size, shm_zone->shm.size,
                  ld.endpoints_kept, ld.endpoints, ld.users_kept, ld.users,
                  ld.notes, ld.sends, ld.events, ld.lost);

    return NGX_OK;
}


/* the zone of the same name in the cycle being replaced, of another size */

static ngx_shm_zone_t *
ngx_http_mitte_carry_find(ngx_shm_zone_t *shm_zone)
{
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_shm_zone_t   *oshm;

    if (ngx_cycle == NULL) {
        return NULL;
    }

    part = (ngx_list_part_t *) &ngx_cycle->shared_memory.part;
    oshm = part->elts;

    for (i = 0; /* void */ ; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                return NULL;
            }

            part = part->next;
            oshm = part->elts;
            i = 0;
        }

        if (oshm[i].tag == shm_zone->tag
            && oshm[i].data != NULL
            && oshm[i].shm.addr != NULL
            && oshm[i].shm.size != shm_zone->shm.size
            && oshm[i].shm.name.len == shm_zone->shm.name.len
            && ngx_strncmp(oshm[i].shm.name.data, shm_zone->shm.name.data,
                           shm_zone->shm.name.len) == 0)
        {
            return &oshm[i];
        }
    }
}
