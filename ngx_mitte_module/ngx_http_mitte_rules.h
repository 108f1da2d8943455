/*
 * Copyright (C) ngx_mitte_module authors
 *
 * The rules: what a request, a delivery and a sweep do to the zone, the
 * notifications they raise, and the phase handlers and the sweep that
 * drive them.
 */


#ifndef _NGX_HTTP_MITTE_RULES_H_INCLUDED_
#define _NGX_HTTP_MITTE_RULES_H_INCLUDED_


#include "ngx_http_mitte_module.h"
#include "ngx_http_mitte_stream.h"


/* what a request brings to the quota */
typedef struct {
    ngx_str_t                   user;
    ngx_int_t                   plan;       /* -1: not given */
    int64_t                     trial_ends; /* -1: not given */
    ngx_str_t                   email;      /* empty: not given */
    int64_t                     now;
    uint64_t                    now_ms;
    ngx_rbtree_key_t            hash;       /* the user's */
} ngx_http_mitte_visit_t;


typedef enum {
    NGX_HTTP_MITTE_QUOTA_PASS = 0,
    NGX_HTTP_MITTE_QUOTA_REFUSE,
    NGX_HTTP_MITTE_QUOTA_UNKNOWN,           /* the zone could not say */
    NGX_HTTP_MITTE_QUOTA_WAIT               /* cluster mode: no lease yet */
} ngx_http_mitte_quota_e;


/* ngx_http_mitte_rules.c: with the zone unlocked; they lock it */
ngx_http_mitte_quota_e ngx_http_mitte_rules_visit(
    ngx_http_mitte_main_conf_t *mmcf, ngx_http_mitte_visit_t *v,
    ngx_uint_t enforce, ngx_uint_t *limit);
ngx_int_t ngx_http_mitte_rules_deliver(ngx_http_mitte_main_conf_t *mmcf,
    ngx_http_mitte_delivery_t *d);
void ngx_http_mitte_rules_sweep_endpoint(ngx_http_mitte_main_conf_t *mmcf,
    ngx_http_mitte_zone_ctx_t *ctx, ngx_http_mitte_endpoint_node_t *en,
    int64_t now, ngx_uint_t *notes);
void ngx_http_mitte_rules_sweep_user(ngx_http_mitte_main_conf_t *mmcf,
    ngx_http_mitte_zone_ctx_t *ctx, ngx_http_mitte_user_node_t *un,
    int64_t now, ngx_uint_t *notes);

/* ngx_http_mitte_record.c: the phase handlers, set by postconfiguration */
ngx_int_t ngx_http_mitte_record_init_process(ngx_cycle_t *cycle);
ngx_int_t ngx_http_mitte_precontent_handler(ngx_http_request_t *r);
ngx_int_t ngx_http_mitte_log_handler(ngx_http_request_t *r);

/* ngx_http_mitte_sweep.c */
ngx_int_t ngx_http_mitte_sweep_init_process(ngx_cycle_t *cycle);
ngx_int_t ngx_http_mitte_sweep_request(ngx_http_request_t *r);


#endif /* _NGX_HTTP_MITTE_RULES_H_INCLUDED_ */
