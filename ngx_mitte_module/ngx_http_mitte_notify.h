/*
 * Copyright (C) ngx_mitte_module authors
 *
 * Raising a notification (ngx_http_mitte_notify.c), for the rules.
 */


#ifndef _NGX_HTTP_MITTE_NOTIFY_H_INCLUDED_
#define _NGX_HTTP_MITTE_NOTIFY_H_INCLUDED_


#include "ngx_http_mitte_module.h"


/*
 * A notification's dedupe in cluster mode: "<prefix>{u:<user>}:once:<what>",
 * kept "ttl" seconds; "what" names the notification's type, its subject
 * and its period
 */
#define NGX_HTTP_MITTE_ONCE_MAX         160

typedef struct {
    u_char                      what[NGX_HTTP_MITTE_ONCE_MAX];
    size_t                      len;
    ngx_uint_t                  ttl;
} ngx_http_mitte_once_t;


/*
 * With the zone locked. In cluster mode, with "once" and Redis ready, the
 * notification is created in Redis, once cluster-wide, and comes back to
 * every instance's zone through the event stream (NGX_OK: asked for);
 * otherwise, or when Redis fails to answer, it is created in the zone.
 */
ngx_int_t ngx_http_mitte_notify(ngx_http_mitte_main_conf_t *mmcf,
    ngx_http_mitte_zone_ctx_t *ctx, ngx_http_mitte_user_node_t *un,
    ngx_uint_t type, u_char *slug, size_t slug_len, u_char *msg,
    size_t msg_len, uint64_t now_ms, void *keep, ngx_http_mitte_once_t *once);


#endif /* _NGX_HTTP_MITTE_NOTIFY_H_INCLUDED_ */
