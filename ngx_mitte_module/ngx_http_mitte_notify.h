/*
 * Copyright (C) ngx_mitte_module authors
 *
 * Raising a notification (ngx_http_mitte_notify.c), for the rules.
 */


#ifndef _NGX_HTTP_MITTE_NOTIFY_H_INCLUDED_
#define _NGX_HTTP_MITTE_NOTIFY_H_INCLUDED_


#include "ngx_http_mitte_module.h"


/* with the zone locked */
ngx_int_t ngx_http_mitte_notify(ngx_http_mitte_main_conf_t *mmcf,
    ngx_http_mitte_zone_ctx_t *ctx, ngx_http_mitte_user_node_t *un,
    ngx_uint_t type, u_char *slug, size_t slug_len, u_char *msg,
    size_t msg_len, uint64_t now_ms, void *keep);


#endif /* _NGX_HTTP_MITTE_NOTIFY_H_INCLUDED_ */
