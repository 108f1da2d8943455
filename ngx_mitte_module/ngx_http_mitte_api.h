/*
 * Copyright (C) ngx_mitte_module authors
 *
 * What the HTTP API handlers share: query arguments, request bodies, the
 * caller, the JSON writer and the replies.
 */


#ifndef _NGX_HTTP_MITTE_API_H_INCLUDED_
#define _NGX_HTTP_MITTE_API_H_INCLUDED_


#include "ngx_http_mitte_module.h"


/* the most one endpoint takes in JSON: names escaped, 49 hours */
#define NGX_HTTP_MITTE_ENDPOINT_JSON    8192


/* ngx_http_mitte_api.c */
ngx_int_t ngx_http_mitte_arg(ngx_http_request_t *r, char *name,
    ngx_str_t *value);
ngx_int_t ngx_http_mitte_reply(ngx_http_request_t *r, ngx_uint_t status,
    ngx_str_t *type, ngx_chain_t *out);
ngx_int_t ngx_http_mitte_reply_json(ngx_http_request_t *r, ngx_uint_t status,
    ngx_chain_t *out);
ngx_int_t ngx_http_mitte_reply_error(ngx_http_request_t *r,
    ngx_uint_t status, const char *code, const char *message);
ngx_int_t ngx_http_mitte_reply_not_allowed(ngx_http_request_t *r,
    const char *allow);
ngx_int_t ngx_http_mitte_reply_buf(ngx_http_request_t *r, ngx_uint_t status,
    ngx_buf_t *b);
ngx_int_t ngx_http_mitte_caller(ngx_http_request_t *r, ngx_str_t *user);
ngx_int_t ngx_http_mitte_reply_unauthorized(ngx_http_request_t *r);
void ngx_http_mitte_subpath(ngx_http_request_t *r, ngx_str_t *path);
ngx_int_t ngx_http_mitte_body_or_error(ngx_http_request_t *r,
    ngx_str_t *body, ngx_int_t *rc);
ngx_int_t ngx_http_mitte_read_body(ngx_http_request_t *r,
    ngx_http_client_body_handler_pt handler);
ngx_chain_t *ngx_http_mitte_chain(ngx_http_request_t *r, ngx_chain_t **last,
    size_t need);
ngx_int_t ngx_http_mitte_write(ngx_http_request_t *r, ngx_chain_t **last,
    u_char *s, size_t len);
u_char *ngx_http_mitte_json_str(u_char *p, u_char *s, size_t len);
u_char *ngx_http_mitte_json_str_null(u_char *p, u_char *s, size_t len);
size_t ngx_http_mitte_json_str_len(u_char *s, size_t len);
u_char *ngx_http_mitte_json_time(u_char *p, int64_t unix_ms);

/* ngx_http_mitte_stats.c: its JSON, for the operator API too */
ngx_int_t ngx_http_mitte_write_endpoints(ngx_http_request_t *r,
    ngx_http_mitte_zone_ctx_t *ctx, ngx_str_t *user, ngx_str_t *filter,
    ngx_chain_t **last, uint32_t now_hour);
ngx_int_t ngx_http_mitte_write_endpoint(ngx_http_request_t *r,
    ngx_http_mitte_endpoint_copy_t *en, ngx_chain_t **last,
    uint32_t now_hour);
ngx_int_t ngx_http_mitte_write_quota(ngx_http_request_t *r,
    ngx_http_mitte_main_conf_t *mmcf, ngx_http_mitte_user_t *u,
    int64_t now, ngx_chain_t **last);


#endif /* _NGX_HTTP_MITTE_API_H_INCLUDED_ */
