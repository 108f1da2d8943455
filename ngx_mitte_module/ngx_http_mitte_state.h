/*
 * Copyright (C) ngx_mitte_module authors
 *
 * The zone's state as records: the state file, and the carry-over of a
 * resized zone.
 */


#ifndef _NGX_HTTP_MITTE_STATE_H_INCLUDED_
#define _NGX_HTTP_MITTE_STATE_H_INCLUDED_


#include "ngx_http_mitte_zone.h"


/* the zone's state as records (ngx_http_mitte_state.c) */
typedef struct {
    u_char                     *data;
    size_t                      len;
    size_t                      size;
    ngx_log_t                  *log;
    ngx_uint_t                  failed;
    uint64_t                    start;      /* usec, monotonic */
    uint64_t                    longest;    /* usec the lock was held */
    unsigned                    final:1;    /* the master's, at exit */
} ngx_http_mitte_records_t;


/* what records brought into a zone */
typedef struct {
    ngx_uint_t                  endpoints;  /* read */
    ngx_uint_t                  endpoints_kept;
    ngx_uint_t                  users;
    ngx_uint_t                  users_kept;
    ngx_uint_t                  notes;
    ngx_uint_t                  sends;
    ngx_uint_t                  events;
    ngx_uint_t                  lost;       /* did not fit */
    ngx_uint_t                  stale;      /* events of a file not
                                               written at exit: dropped */
    ngx_log_t                  *log;
} ngx_http_mitte_loaded_t;


/* ngx_http_mitte_state.c */
ngx_int_t ngx_http_mitte_state_dump(ngx_http_mitte_zone_ctx_t *ctx,
    ngx_http_mitte_records_t *rs);
ngx_int_t ngx_http_mitte_state_load(ngx_http_mitte_zone_ctx_t *ctx,
    u_char *p, size_t len, ngx_uint_t restart, ngx_http_mitte_loaded_t *ld);
void ngx_http_mitte_records_free(ngx_http_mitte_records_t *rs);
ngx_int_t ngx_http_mitte_state_restore(ngx_shm_zone_t *shm_zone,
    ngx_http_mitte_zone_ctx_t *ctx);
ngx_int_t ngx_http_mitte_state_init_process(ngx_cycle_t *cycle);
void ngx_http_mitte_state_exit_master(ngx_cycle_t *cycle);


#endif /* _NGX_HTTP_MITTE_STATE_H_INCLUDED_ */
