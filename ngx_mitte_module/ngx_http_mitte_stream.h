/*
 * Copyright (C) ngx_mitte_module authors
 *
 * Events and streams: the event ring in the zone, waking the workers'
 * streams, and the streams' own start and stop.
 */


#ifndef _NGX_HTTP_MITTE_STREAM_H_INCLUDED_
#define _NGX_HTTP_MITTE_STREAM_H_INCLUDED_


#include "ngx_http_mitte_zone.h"


typedef struct ngx_http_mitte_delivery_s  ngx_http_mitte_delivery_t;

/* what a delivery brings to the zone */
struct ngx_http_mitte_delivery_s {
    ngx_str_t                   slug;
    ngx_rbtree_key_t            hash;       /* the slug's */
    ngx_str_t                   user;
    ngx_rbtree_key_t            user_hash;  /* the user's, if any */
    ngx_str_t                   name;
    ngx_str_t                   method;
    ngx_str_t                   rid;
    ngx_uint_t                  status;
    ngx_uint_t                  success;
    ngx_msec_t                  duration;
    uint64_t                    now_ms;
    /* when not NULL: fills rid, called only if the event is written */
    void                      (*request_id)(ngx_http_mitte_delivery_t *d);
    ngx_http_request_t         *request;
};


/* ngx_http_mitte_events.c: the event ring, with the zone locked */
ngx_int_t ngx_http_mitte_events_init(ngx_shm_zone_t *shm_zone,
    ngx_http_mitte_zone_ctx_t *ctx);
void ngx_http_mitte_event_delivered(ngx_http_mitte_zone_ctx_t *ctx,
    ngx_http_mitte_delivery_t *d, ngx_http_mitte_endpoint_node_t *en);
void ngx_http_mitte_event_delivered_copy(ngx_http_mitte_zone_ctx_t *ctx,
    ngx_http_mitte_delivery_t *d, ngx_http_mitte_endpoint_node_t *en,
    ngx_http_mitte_event_t *e);
/* "seq": the event's number (cluster mode), 0: the ring's next */
void ngx_http_mitte_event_notification(ngx_http_mitte_zone_ctx_t *ctx,
    ngx_str_t *user, ngx_http_mitte_notification_t *n, uint64_t seq);
/* an event numbered elsewhere (cluster mode): kept at its number */
void ngx_http_mitte_event_put(ngx_http_mitte_zone_ctx_t *ctx,
    ngx_http_mitte_event_t *e);
ngx_uint_t ngx_http_mitte_events_copy(ngx_http_mitte_zone_ctx_t *ctx,
    uint64_t after, ngx_http_mitte_event_t *out, ngx_uint_t max,
    uint64_t *head);
u_char *ngx_http_mitte_event_frame(u_char *p, ngx_http_mitte_event_t *e);

/* ngx_http_mitte_sse_wake.c: how the streams are woken */
extern int  ngx_http_mitte_sse_fds[NGX_HTTP_MITTE_MAX_WORKERS];
extern ngx_uint_t  ngx_http_mitte_sse_nfds;
ngx_int_t ngx_http_mitte_sse_init_module(ngx_cycle_t *cycle);
void ngx_http_mitte_sse_wake(ngx_http_mitte_zone_ctx_t *ctx);
void ngx_http_mitte_sse_wake_local(ngx_event_t *drain);

/* ngx_http_mitte_sse.c */
ngx_int_t ngx_http_mitte_sse_init_process(ngx_cycle_t *cycle);
void ngx_http_mitte_sse_exit_process(ngx_cycle_t *cycle);


#endif /* _NGX_HTTP_MITTE_STREAM_H_INCLUDED_ */
