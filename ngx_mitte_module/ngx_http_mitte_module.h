/*
 * Copyright (C) ngx_mitte_module authors
 *
 * The configuration, just above the zone: the module's configuration, the
 * value of a configured variable, and the names that the module
 * definition and the command table need.
 */


#ifndef _NGX_HTTP_MITTE_MODULE_H_INCLUDED_
#define _NGX_HTTP_MITTE_MODULE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_mitte_zone.h"
#include "mitte_anomaly.h"
#include "mitte_addr.h"
#include "mitte_prefs.h"


#define NGX_HTTP_MITTE_BODY_MAX         65536

/* what most requests never run: kept out of their functions' frames */
#if (defined __GNUC__)
#define ngx_http_mitte_cold  __attribute__ ((noinline, cold))
#else
#define ngx_http_mitte_cold
#endif


/*
 * A value from the configuration: a complex value, with a fast path for
 * the common case of exactly one variable ("$slug"), and a faster one for
 * a request header ("$http_x_mitte_user").
 */
typedef struct {
    ngx_http_complex_value_t    cv;
    ngx_int_t                   index;      /* NGX_ERROR: not one variable */
    ngx_str_t                   header;     /* "$http_x_a": "x-a", else "" */
    ngx_uint_t                  header_hash;
} ngx_http_mitte_value_t;


typedef struct {
    ngx_uint_t                  limit;
    ngx_uint_t                  warn;       /* percent */
} ngx_http_mitte_quota_t;


typedef struct {
    ngx_shm_zone_t             *shm_zone;
    ngx_http_mitte_quota_t      quota[MITTE_PLAN_N];
    ngx_uint_t                  down_threshold;
    ngx_msec_t                  down_reset;
    time_t                      warned;     /* last "at most once a minute"
                                               warning of this process */

    ngx_flag_t                  anomaly_on;
    ngx_msec_t                  sweep_interval;
    mitte_anomaly_conf_t        anomaly;
    time_t                      cooldown;
    time_t                      trial_notice;       /* 0: off */
    ngx_uint_t                  notes_keep;
    ngx_str_t                   email_key_file;
    ngx_str_t                   email_key;          /* empty: no email */
    ngx_uint_t                  sse_replay;
    ngx_int_t                   request_id_index;
    ngx_flag_t                  request_id_used;    /* by the config */
    ngx_array_t                *webhook_allow;      /* of mitte_cidr_t */
    ngx_str_t                   email_api;
    ngx_str_t                   email_from;
    ngx_msec_t                  webhook_timeout;
    ngx_uint_t                  delivery_retries;
    struct ngx_http_mitte_redis_conf_s  *redis; /* mitte_redis; NULL: off */
} ngx_http_mitte_main_conf_t;


#define NGX_HTTP_MITTE_HANDLER_STATS    1
#define NGX_HTTP_MITTE_HANDLER_ADMIN    2


typedef struct {
    ngx_http_mitte_value_t     *endpoint;
    ngx_http_mitte_value_t     *endpoint_name;
    ngx_http_mitte_value_t     *user;
    ngx_http_mitte_value_t     *plan;
    ngx_http_mitte_value_t     *trial_ends;
    ngx_http_mitte_value_t     *email;
    mitte_status_set_t         *success;
    ngx_flag_t                  enforce;
    ngx_uint_t                  enforce_status;
    ngx_uint_t                  all;        /* "mitte_stats all" */
    ngx_uint_t                  sse_all;    /* "mitte_sse all" */
    ngx_msec_t                  heartbeat;
} ngx_http_mitte_loc_conf_t;


/*
 * What the precontent phase learnt, for the log phase: the values point
 * into the request's memory (variables' values live as long as it does).
 */
typedef struct {
    ngx_str_t                   slug;       /* empty: not a delivery */
    ngx_str_t                   user;
    ngx_rbtree_key_t            hash;       /* the slug's */
    ngx_rbtree_key_t            user_hash;  /* the user's, if any */
    void                       *sub;        /* an event stream's subscriber */
    u_char                      rid[32];    /* $request_id, when made here */
} ngx_http_mitte_ctx_t;


extern ngx_module_t  ngx_http_mitte_module;


/*
 * ngx_http_mitte_lifecycle.c: the lifecycle, named by the module definition
 * (as the handlers below are named by the command table) and called by
 * nginx alone
 */
ngx_int_t ngx_http_mitte_init(ngx_conf_t *cf);
ngx_int_t ngx_http_mitte_init_module(ngx_cycle_t *cycle);
ngx_int_t ngx_http_mitte_init_process(ngx_cycle_t *cycle);
void ngx_http_mitte_exit_process(ngx_cycle_t *cycle);
void ngx_http_mitte_exit_master(ngx_cycle_t *cycle);

/* the content handlers, named by the command table */
ngx_int_t ngx_http_mitte_admin_handler(ngx_http_request_t *r);
ngx_int_t ngx_http_mitte_stats_handler(ngx_http_request_t *r);
ngx_int_t ngx_http_mitte_notifications_handler(ngx_http_request_t *r);
ngx_int_t ngx_http_mitte_prefs_handler(ngx_http_request_t *r);
ngx_int_t ngx_http_mitte_sse_handler(ngx_http_request_t *r);

/* the "mitte_redis" directive (ngx_http_mitte_redis.c), named by the table */
char *ngx_http_mitte_redis(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);

/* ngx_http_mitte_module.c */
ngx_int_t ngx_http_mitte_value(ngx_http_request_t *r,
    ngx_http_mitte_value_t *val, ngx_str_t *value);
ngx_table_elt_t *ngx_http_mitte_header_in(ngx_http_request_t *r,
    u_char *name, size_t len, ngx_uint_t hash, ngx_uint_t dashes);
ngx_http_mitte_main_conf_t *ngx_http_mitte_process_conf(ngx_cycle_t *cycle,
    ngx_uint_t first);


#endif /* _NGX_HTTP_MITTE_MODULE_H_INCLUDED_ */
