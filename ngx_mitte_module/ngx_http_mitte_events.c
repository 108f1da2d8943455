/*
 * Copyright (C) ngx_mitte_module authors
 *
 * The event ring in the zone: every delivery and every notification, in
 * the order they were recorded, kept for Last-Event-ID replay
 * (mitte_sse_replay events). Appends happen inside the critical section
 * that records them; they copy fixed-width fields, no JSON is made here.
 */


#include "ngx_http_mitte_zone.h"
#include "ngx_http_mitte_stream.h"
#include "ngx_http_mitte_api.h"
#include "mitte_notify.h"


static ngx_uint_t ngx_http_mitte_events_move(ngx_http_mitte_event_t *to,
    ngx_uint_t nto, ngx_http_mitte_event_t *from, ngx_uint_t nfrom,
    uint64_t head);
static ngx_inline void ngx_http_mitte_copy_short(u_char *dst, u_char *src,
    size_t len);


/*
 * The ring takes at most a quarter of the zone: a smaller zone gets fewer
 * events than mitte_sse_replay asks for, and says so.
 */

ngx_int_t
ngx_http_mitte_events_init(ngx_shm_zone_t *shm_zone,
    ngx_http_mitte_zone_ctx_t *ctx)
{
    size_t                   size;
    ngx_uint_t               n;
    ngx_http_mitte_sh_t     *sh;
    ngx_http_mitte_event_t  *events;

    sh = ctx->sh;
    n = ctx->nevents;

    if (n * sizeof(ngx_http_mitte_event_t) > shm_zone->shm.size / 4) {
        n = shm_zone->shm.size / 4 / sizeof(ngx_http_mitte_event_t);

        ngx_log_error(NGX_LOG_WARN, shm_zone->shm.log, 0,
                      "mitte_zone \"%V\" of %uz bytes keeps %ui events for "
                      "replay, not the %ui of \"mitte_sse_replay\"; "
                      "a larger zone keeps more",
                      &shm_zone->shm.name, shm_zone->shm.size, n,
                      ctx->nevents);
    }

    if (sh->events && sh->nevents == n) {
        return NGX_OK;
    }

    size = sizeof(ngx_http_mitte_event_t) * n;

    ngx_shmtx_lock(&ctx->shpool->mutex);

    events = ngx_slab_alloc_locked(ctx->shpool, size);

    if (events == NULL) {
        ngx_shmtx_unlock(&ctx->shpool->mutex);

        ngx_log_error(NGX_LOG_EMERG, shm_zone->shm.log, 0,
                      "mitte_zone \"%V\" has no room for the event ring "
                      "of %uz bytes", &shm_zone->shm.name, size);
        return NGX_ERROR;
    }

    ngx_memzero(events, size);

    if (sh->events) {
        /* mitte_sse_replay changed on reload: the newest events move */
        (void) ngx_http_mitte_events_move(events, n, sh->events, sh->nevents,
                                          sh->event_seq);
        ngx_slab_free_locked(ctx->shpool, sh->events);
    }

    sh->events = events;
    sh->nevents = n;

    ngx_shmtx_unlock(&ctx->shpool->mutex);

    return NGX_OK;
}


/*
 * Copies the newest events of one ring (nfrom slots, the newest event
 * "head") that another of nto slots holds, at the same ids.
 */

static ngx_uint_t
ngx_http_mitte_events_move(ngx_http_mitte_event_t *to, ngx_uint_t nto,
    ngx_http_mitte_event_t *from, ngx_uint_t nfrom, uint64_t head)
{
    uint64_t                 seq, first;
    ngx_uint_t               n;
    ngx_http_mitte_event_t  *e;

    if (head == 0 || nto == 0 || nfrom == 0) {
        return 0;
    }

    first = (head >= nfrom) ? head - nfrom + 1 : 1;

    if (head - first + 1 > nto) {
        first = head - nto + 1;
    }

    n = 0;

    for (seq = first; seq <= head; seq++) {
        e = &from[seq % nfrom];

        if (e->seq != seq) {
            continue;
        }

        to[seq % nto] = *e;
        n++;
    }

    return n;
}


/* with the zone locked */

void
ngx_http_mitte_event_delivered(ngx_http_mitte_zone_ctx_t *ctx,
    ngx_http_mitte_delivery_t *d, ngx_http_mitte_endpoint_node_t *en)
{
    ngx_http_mitte_sh_t  *sh;

    sh = ctx->sh;

    ++sh->event_seq;

    ngx_http_mitte_event_delivered_copy(ctx, d, en,
                                        &sh->events[sh->event_seq
                                                    % sh->nevents]);

    sh->events[sh->event_seq % sh->nevents].seq = sh->event_seq;
}


/* with the zone locked: the event of a delivery, unnumbered, into "e" */

void
ngx_http_mitte_event_delivered_copy(ngx_http_mitte_zone_ctx_t *ctx,
    ngx_http_mitte_delivery_t *d, ngx_http_mitte_endpoint_node_t *en,
    ngx_http_mitte_event_t *e)
{
    ngx_str_t  name;

    e->seq = 0;
    e->time_ms = d->now_ms;
    e->value = (uint32_t) d->duration;
    e->status = (uint16_t) d->status;
    e->message_len = 0;
    e->kind = NGX_HTTP_MITTE_EVENT_DELIVERED;
    e->flag = d->success ? 1 : 0;

    /* whole fixed-size arrays: cheaper than copies of variable length */

    e->user_len = en->user_len;
    ngx_memcpy(e->user, en->ep.user, MITTE_USER_MAX);
    e->slug_len = en->slug_len;
    ngx_memcpy(e->slug, en->ep.slug, MITTE_SLUG_MAX);

    if (en->ep.name_off) {
        ngx_http_mitte_endpoint_name(ctx, en, &name);
        e->name_len = (uint8_t) ngx_min(name.len, MITTE_NAME_MAX);
        ngx_memcpy(e->u.d.name, name.data, e->name_len);

    } else {
        /* no name: the frame shows the slug */
        e->name_len = 0;
    }

    e->method_len = (uint8_t) ngx_min(d->method.len,
                                      NGX_HTTP_MITTE_METHOD_MAX);
    ngx_http_mitte_copy_short(e->u.d.method, d->method.data, e->method_len);

    e->rid_len = (uint8_t) ngx_min(d->rid.len, NGX_HTTP_MITTE_RID_MAX);

    if (e->rid_len == NGX_HTTP_MITTE_RID_MAX) {
        /* the module's ids and nginx's: a copy of constant length */
        ngx_memcpy(e->u.d.rid, d->rid.data, NGX_HTTP_MITTE_RID_MAX);

    } else {
        ngx_memcpy(e->u.d.rid, d->rid.data, e->rid_len);
    }
}


/*
 * Copies a method's few bytes without a call: 4 to 8 bytes in two
 * overlapping 4-byte moves, fewer one by one.
 */

static ngx_inline void
ngx_http_mitte_copy_short(u_char *dst, u_char *src, size_t len)
{
    uint32_t  a, b;

    if (len >= 4 && len <= 8) {
        ngx_memcpy(&a, src, 4);
        ngx_memcpy(&b, src + len - 4, 4);
        ngx_memcpy(dst, &a, 4);
        ngx_memcpy(dst + len - 4, &b, 4);
        return;
    }

    if (len > 8) {
        ngx_memcpy(dst, src, len);
        return;
    }

    while (len--) {
        dst[len] = src[len];
    }
}


/* with the zone locked */

void
ngx_http_mitte_event_notification(ngx_http_mitte_zone_ctx_t *ctx,
    ngx_str_t *user, ngx_http_mitte_notification_t *n, uint64_t seq)
{
    ngx_http_mitte_sh_t     *sh;
    ngx_http_mitte_event_t  *e;

    sh = ctx->sh;

    if (seq == 0) {
        seq = ++sh->event_seq;

    } else if (seq > sh->event_seq) {
        sh->event_seq = seq;
    }

    e = &sh->events[seq % sh->nevents];

    e->seq = seq;
    e->time_ms = n->created_ms;
    e->value = n->seq;
    e->status = 0;
    e->kind = NGX_HTTP_MITTE_EVENT_NOTIFICATION;
    e->flag = n->type;
    e->name_len = 0;
    e->method_len = 0;
    e->rid_len = 0;

    e->user_len = (uint8_t) user->len;
    ngx_memcpy(e->user, user->data, user->len);
    e->slug_len = n->slug_len;
    ngx_memcpy(e->slug, n->slug, n->slug_len);
    e->message_len = n->message_len;
    ngx_memcpy(e->u.message, n->message, n->message_len);
}


/*
 * With the zone locked: an event numbered by the cluster, at its number;
 * the ring's newest number follows the highest seen.
 */

void
ngx_http_mitte_event_put(ngx_http_mitte_zone_ctx_t *ctx,
    ngx_http_mitte_event_t *e)
{
    ngx_http_mitte_sh_t  *sh;

    sh = ctx->sh;

    if (e->seq == 0 || (sh->event_seq >= sh->nevents
                        && e->seq <= sh->event_seq - sh->nevents))
    {
        /* older than the ring holds */
        return;
    }

    sh->events[e->seq % sh->nevents] = *e;

    if (e->seq > sh->event_seq) {
        sh->event_seq = e->seq;
    }
}


/*
 * Copies, in order, at most "max" events newer than "after" that the ring
 * still holds; "head" gets the newest event's number. Takes the lock.
 */

ngx_uint_t
ngx_http_mitte_events_copy(ngx_http_mitte_zone_ctx_t *ctx, uint64_t after,
    ngx_http_mitte_event_t *out, ngx_uint_t max, uint64_t *head)
{
    uint64_t              seq, oldest;
    ngx_uint_t            n;
    ngx_http_mitte_sh_t  *sh;

    sh = ctx->sh;
    n = 0;

    ngx_shmtx_lock(&ctx->shpool->mutex);

    *head = sh->event_seq;

    oldest = (sh->event_seq >= sh->nevents)
             ? sh->event_seq - sh->nevents + 1 : 1;

    seq = (after + 1 > oldest) ? after + 1 : oldest;

    for ( /* void */ ; seq <= sh->event_seq && n < max; seq++) {
        if (sh->events[seq % sh->nevents].seq != seq) {
            /* not in this ring (mitte_sse_replay changed on reload) */
            continue;
        }

        out[n++] = sh->events[seq % sh->nevents];
    }

    ngx_shmtx_unlock(&ctx->shpool->mutex);

    return n;
}


/* an event as Server-Sent Events; at most NGX_HTTP_MITTE_FRAME_MAX bytes */

u_char *
ngx_http_mitte_event_frame(u_char *p, ngx_http_mitte_event_t *e)
{
    if (e->kind == NGX_HTTP_MITTE_EVENT_DELIVERED) {
        p = ngx_sprintf(p, "id: %uL\nevent: webhook:delivered\n"
                           "data: {\"endpointSlug\":", e->seq);
        p = ngx_http_mitte_json_str(p, e->slug, e->slug_len);
        p = ngx_cpymem(p, ",\"endpointName\":",
                       sizeof(",\"endpointName\":") - 1);

        if (e->name_len) {
            p = ngx_http_mitte_json_str(p, e->u.d.name, e->name_len);

        } else {
            p = ngx_http_mitte_json_str(p, e->slug, e->slug_len);
        }

        p = ngx_sprintf(p, ",\"status\":%uD,\"success\":%s,\"durationMs\":%uD,"
                           "\"method\":",
                        (uint32_t) e->status, e->flag ? "true" : "false",
                        e->value);
        p = ngx_http_mitte_json_str(p, e->u.d.method, e->method_len);
        p = ngx_cpymem(p, ",\"requestId\":", sizeof(",\"requestId\":") - 1);
        p = ngx_http_mitte_json_str(p, e->u.d.rid, e->rid_len);

    } else {
        p = ngx_sprintf(p, "id: %uL\nevent: notification:created\n"
                           "data: {\"id\":\"" NGX_HTTP_MITTE_ID_FORMAT "\","
                           "\"type\":\"%s\",\"title\":\"%s\",\"message\":",
                        e->seq, e->time_ms, e->value,
                        mitte_notify_type_name(e->flag),
                        mitte_notify_title(e->flag));
        p = ngx_http_mitte_json_str(p, e->u.message, e->message_len);
        p = ngx_cpymem(p, ",\"endpointSlug\":",
                       sizeof(",\"endpointSlug\":") - 1);

        p = ngx_http_mitte_json_str_null(p, e->slug, e->slug_len);
    }

    p = ngx_cpymem(p, ",\"timestamp\":", sizeof(",\"timestamp\":") - 1);
    p = ngx_http_mitte_json_time(p, (int64_t) e->time_ms);
    p = ngx_cpymem(p, "}\n\n", 3);

    return p;
}
