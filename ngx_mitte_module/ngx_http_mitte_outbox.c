/*
 * Copyright (C) ngx_mitte_module authors
 *
 * The outbox: notifications that the user's preferences route to email
 * or to a webhook wait here, per channel, for the sender. In cluster mode
 * every instance routes a notification the relay brings: the creator's
 * sends are due at once, the others' wait as standbys (the sender claims
 * each send in Redis before an attempt, so that it goes once).
 */


#include "ngx_http_mitte_module.h"
#include "ngx_http_mitte_send.h"
#include "mitte_notify.h"


static void ngx_http_mitte_outbox_add(ngx_http_mitte_zone_ctx_t *ctx,
    ngx_uint_t channel, ngx_http_mitte_user_node_t *un,
    ngx_http_mitte_notification_t *n, u_char *target, size_t target_len,
    u_char *secret, size_t secret_len, ngx_uint_t format, void *keep,
    ngx_uint_t flags);


/* with the zone locked: a notification of this instance alone */

void
ngx_http_mitte_outbox_route(ngx_http_mitte_main_conf_t *mmcf,
    ngx_http_mitte_zone_ctx_t *ctx, ngx_http_mitte_user_node_t *un,
    ngx_http_mitte_notification_t *n, void *keep)
{
    ngx_http_mitte_outbox_share(mmcf, ctx, un, n, keep, 0);
}


/*
 * With the zone locked: "flags" 0 (this instance alone), or
 * NGX_HTTP_MITTE_SEND_SHARED, with NGX_HTTP_MITTE_SEND_STANDBY when
 * another instance created the notification.
 */

void
ngx_http_mitte_outbox_share(ngx_http_mitte_main_conf_t *mmcf,
    ngx_http_mitte_zone_ctx_t *ctx, ngx_http_mitte_user_node_t *un,
    ngx_http_mitte_notification_t *n, void *keep, ngx_uint_t flags)
{
    u_char         *addr;
    size_t          len;
    mitte_prefs_t  *prefs;

    prefs = un->prefs_off
            ? (mitte_prefs_t *) ((u_char *) ctx->shpool + un->prefs_off)
            : NULL;

    if (prefs && !mitte_prefs_type_on(prefs, n->type)) {
        return;
    }

    if (mmcf->email_key.len && (prefs == NULL || prefs->email_enabled)) {

        if (prefs && prefs->email_len) {
            addr = (u_char *) prefs->email;
            len = prefs->email_len;

        } else {
            addr = un->user.email;
            len = un->user.email_len;
        }

        if (len) {
            ngx_http_mitte_outbox_add(ctx, NGX_HTTP_MITTE_CHANNEL_EMAIL, un, n,
                                      addr, len, NULL, 0, 0, keep, flags);
        }
    }

    if (prefs && prefs->webhook_enabled && prefs->url_len) {
        ngx_http_mitte_outbox_add(ctx, NGX_HTTP_MITTE_CHANNEL_WEBHOOK, un, n,
                                  (u_char *) prefs->url, prefs->url_len,
                                  (u_char *) prefs->secret, prefs->secret_len,
                                  prefs->format, keep, flags);
    }
}


static void
ngx_http_mitte_outbox_add(ngx_http_mitte_zone_ctx_t *ctx, ngx_uint_t channel,
    ngx_http_mitte_user_node_t *un, ngx_http_mitte_notification_t *n,
    u_char *target, size_t target_len, u_char *secret, size_t secret_len,
    ngx_uint_t format, void *keep, ngx_uint_t flags)
{
    u_char                 *p;
    size_t                  size;
    ngx_time_t             *tp;
    ngx_http_mitte_sh_t    *sh;
    ngx_http_mitte_send_t  *s;

    sh = ctx->sh;

    if (sh->npending[channel] >= NGX_HTTP_MITTE_OUTBOX_PENDING) {
        sh->counters.outbox_full[channel]++;
        return;
    }

    size = offsetof(ngx_http_mitte_send_t, data)
           + target_len + secret_len + n->message_len;

    s = ngx_http_mitte_alloc(ctx, size, keep ? keep : un);
    if (s == NULL) {
        sh->counters.outbox_full[channel]++;
        return;
    }

    ngx_memzero(s, offsetof(ngx_http_mitte_send_t, data));

    s->created_ms = n->created_ms;
    s->updated_ms = n->created_ms;
    s->note_seq = n->seq;
    s->channel = (uint8_t) channel;
    s->state = NGX_HTTP_MITTE_SEND_PENDING;
    s->type = n->type;
    s->format = (uint8_t) format;
    s->flags = (uint8_t) flags;

    if (flags & NGX_HTTP_MITTE_SEND_STANDBY) {
        /* the creator's turn first: the claim decides, this spreads load */
        tp = ngx_timeofday();
        s->next_ms = (uint64_t) tp->sec * 1000 + tp->msec
                     + NGX_HTTP_MITTE_SEND_TAKEOVER;
    }

    s->user_len = un->user.id_len;
    ngx_memcpy(s->user, un->user.id, s->user_len);
    s->slug_len = n->slug_len;
    ngx_memcpy(s->slug, n->slug, n->slug_len);

    s->target_len = (uint16_t) target_len;
    s->secret_len = (uint16_t) secret_len;
    s->message_len = n->message_len;

    p = ngx_cpymem(s->data, target, target_len);
    if (secret_len) {
        p = ngx_cpymem(p, secret, secret_len);
    }
    ngx_memcpy(p, n->message, n->message_len);

    ngx_queue_insert_tail(&sh->pending[channel], &s->queue);
    sh->npending[channel]++;
}
