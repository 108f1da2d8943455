/*
 * Copyright (C) ngx_mitte_module authors
 *
 * A reload that changes the size of mitte_zone: nginx gives the zone new
 * memory, so the master copies the state of the zone of the old size into
 * it before the new workers start: endpoints, users with their
 * preferences and notifications, the outbox and the replay buffer. The
 * records are pointer-free, so they are copied as they are; the trees,
 * queues and offsets are made anew. Least recently used first, so that a
 * smaller zone keeps the most recently used when all does not fit.
 */


#include "ngx_http_mitte_module.h"


typedef struct {
    ngx_uint_t                  endpoints;
    ngx_uint_t                  users;
    ngx_uint_t                  notes;
    ngx_uint_t                  sends;
    ngx_uint_t                  events;
    ngx_uint_t                  lost;
} ngx_http_mitte_carried_t;


static ngx_shm_zone_t *ngx_http_mitte_carry_find(ngx_shm_zone_t *shm_zone);
static void ngx_http_mitte_carry_endpoints(ngx_http_mitte_zone_ctx_t *ctx,
    ngx_http_mitte_zone_ctx_t *octx, ngx_http_mitte_carried_t *c);
static void ngx_http_mitte_carry_users(ngx_http_mitte_zone_ctx_t *ctx,
    ngx_http_mitte_zone_ctx_t *octx, ngx_http_mitte_carried_t *c);
static void ngx_http_mitte_carry_sends(ngx_http_mitte_zone_ctx_t *ctx,
    ngx_queue_t *from, ngx_queue_t *to, ngx_uint_t *n, ngx_uint_t newest,
    ngx_http_mitte_carried_t *c);
static void ngx_http_mitte_carry_events(ngx_http_mitte_sh_t *sh,
    ngx_http_mitte_sh_t *osh, ngx_http_mitte_carried_t *c);


/*
 * Called by the zone's init for new memory; does nothing unless the cycle
 * being replaced had this zone with another size.
 */

void
ngx_http_mitte_carry(ngx_shm_zone_t *shm_zone, ngx_http_mitte_zone_ctx_t *ctx)
{
    ngx_uint_t                  i, level;
    ngx_http_mitte_sh_t        *sh, *osh;
    ngx_http_mitte_carried_t    c;
    ngx_shm_zone_t             *oshm;
    ngx_http_mitte_counters_t   now;
    ngx_http_mitte_zone_ctx_t  *octx;

    oshm = ngx_http_mitte_carry_find(shm_zone);
    if (oshm == NULL) {
        return;
    }

    octx = oshm->data;

    sh = ctx->sh;
    osh = octx->sh;

    if (osh->version != NGX_HTTP_MITTE_ZONE_VERSION) {
        ngx_log_error(NGX_LOG_WARN, shm_zone->shm.log, 0,
                      "mitte_zone \"%V\" changed size, and the old zone "
                      "holds layout version %ui, not %d: its state is not "
                      "carried over", &shm_zone->shm.name, osh->version,
                      NGX_HTTP_MITTE_ZONE_VERSION);
        return;
    }

    ngx_memzero(&c, sizeof(ngx_http_mitte_carried_t));

    /* the old workers go on recording until they exit: hold them off */

    ngx_shmtx_lock(&octx->shpool->mutex);

    ngx_http_mitte_carry_endpoints(ctx, octx, &c);
    ngx_http_mitte_carry_users(ctx, octx, &c);

    for (i = 0; i < 2; i++) {
        ngx_http_mitte_carry_sends(ctx, &osh->pending[i], &sh->pending[i],
                                   &sh->npending[i], 0, &c);
    }

    ngx_http_mitte_carry_sends(ctx, &osh->done, &sh->done, &sh->ndone, 1,
                               &c);

    ngx_http_mitte_carry_events(sh, osh, &c);

    /* the counters go on; what the zone holds is counted anew */

    now = sh->counters;
    sh->counters = osh->counters;
    sh->counters.endpoints = now.endpoints;
    sh->counters.users = now.users;
    sh->counters.evicted_endpoints += now.evicted_endpoints;
    sh->counters.evicted_users += now.evicted_users;
    sh->counters.nomem += now.nomem;

    sh->seq = osh->seq;

    ngx_shmtx_unlock(&octx->shpool->mutex);

    /* a smaller zone evicts the least recently used of what it carries */

    c.lost += (c.endpoints - now.endpoints) + (c.users - now.users);

    level = c.lost ? NGX_LOG_WARN : NGX_LOG_NOTICE;

    ngx_log_error(level, shm_zone->shm.log, 0,
                  "mitte_zone \"%V\" changed size from %uz to %uz bytes: "
                  "kept %uL of %ui endpoints and %uL of %ui users, "
                  "%ui notifications, %ui sends and %ui events; "
                  "%ui entries did not fit",
                  &shm_zone->shm.name, oshm->shm.size, shm_zone->shm.size,
                  now.endpoints, c.endpoints, now.users, c.users, c.notes,
                  c.sends, c.events, c.lost);
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


static void
ngx_http_mitte_carry_endpoints(ngx_http_mitte_zone_ctx_t *ctx,
    ngx_http_mitte_zone_ctx_t *octx, ngx_http_mitte_carried_t *c)
{
    ngx_str_t                        name;
    ngx_queue_t                     *q, *lru;
    ngx_http_mitte_endpoint_node_t  *en, *oen;

    lru = &octx->sh->ep_lru;

    for (q = ngx_queue_last(lru);
         q != ngx_queue_sentinel(lru);
         q = ngx_queue_prev(q))
    {
        oen = ngx_queue_data(q, ngx_http_mitte_endpoint_node_t, queue);

        en = ngx_http_mitte_endpoint_get(ctx, oen->ep.slug, oen->slug_len);
        if (en == NULL) {
            c->lost++;
            continue;
        }

        en->ep = oen->ep;
        en->ep.name_off = 0;
        en->user_len = oen->user_len;
        en->last_status = oen->last_status;
        en->flags = oen->flags;

        ngx_http_mitte_endpoint_name(octx, oen, &name);
        ngx_http_mitte_endpoint_set_name(ctx, en, &name);

        c->endpoints++;
    }
}


static void
ngx_http_mitte_carry_users(ngx_http_mitte_zone_ctx_t *ctx,
    ngx_http_mitte_zone_ctx_t *octx, ngx_http_mitte_carried_t *c)
{
    u_char                      *p;
    ngx_queue_t                 *q, *nq, *lru;
    ngx_http_mitte_user_node_t  *un, *oun;
    ngx_http_mitte_note_node_t  *nn, *onn;

    lru = &octx->sh->user_lru;

    for (q = ngx_queue_last(lru);
         q != ngx_queue_sentinel(lru);
         q = ngx_queue_prev(q))
    {
        oun = ngx_queue_data(q, ngx_http_mitte_user_node_t, queue);

        un = ngx_http_mitte_user_get(ctx, oun->user.id, oun->user.id_len,
                                     NULL);
        if (un == NULL) {
            c->lost++;
            continue;
        }

        un->user = oun->user;

        if (oun->prefs_off) {
            p = ngx_http_mitte_alloc(ctx, sizeof(mitte_prefs_t), un);

            if (p == NULL) {
                c->lost++;

            } else {
                ngx_memcpy(p, (u_char *) octx->shpool + oun->prefs_off,
                           sizeof(mitte_prefs_t));
                un->prefs_off = (uint32_t) (p - (u_char *) ctx->shpool);
            }
        }

        /* the oldest first, each in front: newest first again */

        for (nq = ngx_queue_last(&oun->notes);
             nq != ngx_queue_sentinel(&oun->notes);
             nq = ngx_queue_prev(nq))
        {
            onn = ngx_queue_data(nq, ngx_http_mitte_note_node_t, queue);

            nn = ngx_http_mitte_alloc(ctx, sizeof(ngx_http_mitte_note_node_t),
                                      un);
            if (nn == NULL) {
                c->lost++;
                continue;
            }

            nn->n = onn->n;
            ngx_queue_insert_head(&un->notes, &nn->queue);
            un->nnotes++;

            if (!nn->n.read) {
                un->unread++;
            }

            c->notes++;
        }

        c->users++;
    }
}


/*
 * A queue of sends, in its order; "newest": the queue is newest first.
 * A send under way in an old worker stays so: the new sender takes it
 * again when its lease runs out, as after a crash.
 */

static void
ngx_http_mitte_carry_sends(ngx_http_mitte_zone_ctx_t *ctx, ngx_queue_t *from,
    ngx_queue_t *to, ngx_uint_t *n, ngx_uint_t newest,
    ngx_http_mitte_carried_t *c)
{
    size_t                  size;
    ngx_queue_t            *q;
    ngx_http_mitte_send_t  *s, *os;

    for (q = newest ? ngx_queue_last(from) : ngx_queue_head(from);
         q != ngx_queue_sentinel(from);
         q = newest ? ngx_queue_prev(q) : ngx_queue_next(q))
    {
        os = ngx_queue_data(q, ngx_http_mitte_send_t, queue);

        size = offsetof(ngx_http_mitte_send_t, data)
               + os->target_len + os->secret_len + os->message_len;

        s = ngx_http_mitte_alloc(ctx, size, NULL);
        if (s == NULL) {
            c->lost++;
            continue;
        }

        ngx_memcpy(s, os, size);

        if (newest) {
            ngx_queue_insert_head(to, &s->queue);

        } else {
            ngx_queue_insert_tail(to, &s->queue);
        }

        (*n)++;
        c->sends++;
    }
}


/* the newest events that the new ring holds, at the same ids */

static void
ngx_http_mitte_carry_events(ngx_http_mitte_sh_t *sh,
    ngx_http_mitte_sh_t *osh, ngx_http_mitte_carried_t *c)
{
    if (osh->events == NULL || sh->events == NULL) {
        return;
    }

    c->events = ngx_http_mitte_events_move(sh->events, sh->nevents,
                                           osh->events, osh->nevents,
                                           osh->event_seq);

    sh->event_seq = osh->event_seq;
}
