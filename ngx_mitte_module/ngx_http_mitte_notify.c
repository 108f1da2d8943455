/*
 * Copyright (C) ngx_mitte_module authors
 *
 * Raising a notification: kept in the user's in-app store, put on the
 * event ring for the streams, and routed to the outbox for the sender.
 * The notifications API is ngx_http_mitte_notifications.c.
 */


#include "ngx_http_mitte_module.h"
#include "ngx_http_mitte_stream.h"
#include "ngx_http_mitte_notify.h"
#include "ngx_http_mitte_send.h"


/*
 * Creates a notification for the user, with the zone locked: kept in-app
 * (the newest mitte_notifications_keep), and counted.
 */

ngx_int_t
ngx_http_mitte_notify(ngx_http_mitte_main_conf_t *mmcf,
    ngx_http_mitte_zone_ctx_t *ctx, ngx_http_mitte_user_node_t *un,
    ngx_uint_t type, u_char *slug, size_t slug_len, u_char *msg,
    size_t msg_len, uint64_t now_ms, void *keep)
{
    ngx_str_t                       user;
    ngx_queue_t                    *q;
    ngx_http_mitte_note_node_t     *nn, *old;
    ngx_http_mitte_notification_t  *n;

    nn = ngx_http_mitte_alloc(ctx, sizeof(ngx_http_mitte_note_node_t),
                              keep ? keep : un);
    if (nn == NULL) {
        return NGX_ERROR;
    }

    n = &nn->n;

    ngx_memzero(n, sizeof(ngx_http_mitte_notification_t));

    n->created_ms = now_ms;
    n->seq = ++ctx->sh->seq;
    n->type = (uint8_t) type;
    n->slug_len = (uint8_t) ngx_min(slug_len, MITTE_SLUG_MAX);
    if (n->slug_len) {
        ngx_memcpy(n->slug, slug, n->slug_len);
    }
    n->message_len = (uint16_t) ngx_min(msg_len, NGX_HTTP_MITTE_MESSAGE_MAX);
    ngx_memcpy(n->message, msg, n->message_len);

    ngx_queue_insert_head(&un->notes, &nn->queue);
    un->nnotes++;
    un->unread++;

    while (un->nnotes > mmcf->notes_keep) {
        q = ngx_queue_last(&un->notes);
        old = ngx_queue_data(q, ngx_http_mitte_note_node_t, queue);

        if (!old->n.read) {
            un->unread--;
        }

        ngx_queue_remove(q);
        ngx_slab_free_locked(ctx->shpool, old);
        un->nnotes--;
    }

    ctx->sh->counters.notifications[type]++;

    user.data = un->user.id;
    user.len = un->user.id_len;

    ngx_http_mitte_event_notification(ctx, &user, n);

    ngx_http_mitte_outbox_route(mmcf, ctx, un, n, keep ? keep : un);

    return NGX_OK;
}
