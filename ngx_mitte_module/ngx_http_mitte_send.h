/*
 * Copyright (C) ngx_mitte_module authors
 *
 * The sender: the outbox that notifications are routed to, and the
 * process that sends them (email, webhooks).
 */


#ifndef _NGX_HTTP_MITTE_SEND_H_INCLUDED_
#define _NGX_HTTP_MITTE_SEND_H_INCLUDED_


#include "ngx_http_mitte_module.h"

#include <cjson/cJSON.h>


/*
 * Cluster mode: a standby send (another instance created the
 * notification) is first due this long after it was routed (ms); the
 * claim in Redis decides who sends, the delay only leaves the creator its
 * turn
 */
#define NGX_HTTP_MITTE_SEND_TAKEOVER    10000

/*
 * a standby is made only for a notification younger than this (ms): a
 * relay reading an old stream (a new zone) does not take up sends that
 * went long ago
 */
#define NGX_HTTP_MITTE_SEND_STANDBY_AGE 600000


/* ngx_http_mitte_outbox.c: the sender's queues, with the zone locked */
void ngx_http_mitte_outbox_route(ngx_http_mitte_main_conf_t *mmcf,
    ngx_http_mitte_zone_ctx_t *ctx, ngx_http_mitte_user_node_t *un,
    ngx_http_mitte_notification_t *n, void *keep);
void ngx_http_mitte_outbox_share(ngx_http_mitte_main_conf_t *mmcf,
    ngx_http_mitte_zone_ctx_t *ctx, ngx_http_mitte_user_node_t *un,
    ngx_http_mitte_notification_t *n, void *keep, ngx_uint_t flags);

/* ngx_http_mitte_send.c */
ngx_int_t ngx_http_mitte_send_init_module(ngx_cycle_t *cycle);
ngx_int_t ngx_http_mitte_send_init_process(ngx_cycle_t *cycle);
void ngx_http_mitte_send_exit_process(ngx_cycle_t *cycle);
/*
 * the relay's entry "s": a send finished on an instance (the claimer);
 * the same send waiting here is settled as it was there
 */
ngx_int_t ngx_http_mitte_send_relay(ngx_http_mitte_main_conf_t *mmcf,
    cJSON *entry);


#endif /* _NGX_HTTP_MITTE_SEND_H_INCLUDED_ */
