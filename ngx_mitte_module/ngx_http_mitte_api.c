/*
 * Copyright (C) ngx_mitte_module authors
 *
 * What the HTTP API handlers share (stats, preferences, notifications,
 * operator API, event stream): query arguments, the caller, request
 * bodies, the JSON writer, and the replies, JSON errors among them.
 */


#include "ngx_http_mitte_module.h"
#include "ngx_http_mitte_api.h"


static ngx_int_t ngx_http_mitte_body(ngx_http_request_t *r, ngx_str_t *body);


static ngx_str_t  ngx_http_mitte_json_type = ngx_string("application/json");


ngx_int_t
ngx_http_mitte_reply(ngx_http_request_t *r, ngx_uint_t status,
    ngx_str_t *type, ngx_chain_t *out)
{
    off_t         len;
    ngx_buf_t    *b;
    ngx_int_t     rc;
    ngx_chain_t  *cl;

    len = 0;

    if (out == NULL) {
        b = ngx_calloc_buf(r->pool);
        if (b == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        out = ngx_alloc_chain_link(r->pool);
        if (out == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        out->buf = b;
        out->next = NULL;
    }

    for (cl = out; ; cl = cl->next) {
        len += ngx_buf_size(cl->buf);

        if (cl->next == NULL) {
            cl->buf->last_buf = (r == r->main) ? 1 : 0;
            cl->buf->last_in_chain = 1;
            break;
        }
    }

    /*
     * one answer a request: a body neither read nor discarded yet is
     * discarded (a no-op once it was), as nginx's own error pages do
     */

    if (ngx_http_discard_request_body(r) != NGX_OK) {
        r->keepalive = 0;
    }

    r->headers_out.status = status;
    r->headers_out.content_type = *type;
    r->headers_out.content_type_len = type->len;
    r->headers_out.content_type_lowcase = NULL;
    r->headers_out.content_length_n = len;

    if (r->headers_out.content_length) {
        r->headers_out.content_length->hash = 0;
        r->headers_out.content_length = NULL;
    }

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    return ngx_http_output_filter(r, out);
}


ngx_int_t
ngx_http_mitte_reply_json(ngx_http_request_t *r, ngx_uint_t status,
    ngx_chain_t *out)
{
    return ngx_http_mitte_reply(r, status, &ngx_http_mitte_json_type, out);
}


ngx_int_t
ngx_http_mitte_reply_error(ngx_http_request_t *r, ngx_uint_t status,
    const char *code, const char *message)
{
    size_t       len, clen, mlen;
    ngx_buf_t   *b;

    clen = ngx_strlen(code);
    mlen = ngx_strlen(message);

    len = sizeof("{\"error\":,\"message\":}\n") - 1
          + ngx_http_mitte_json_str_len((u_char *) code, clen)
          + ngx_http_mitte_json_str_len((u_char *) message, mlen);

    b = ngx_create_temp_buf(r->pool, len);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b->last = ngx_cpymem(b->last, "{\"error\":", sizeof("{\"error\":") - 1);
    b->last = ngx_http_mitte_json_str(b->last, (u_char *) code, clen);
    b->last = ngx_cpymem(b->last, ",\"message\":", sizeof(",\"message\":") - 1);
    b->last = ngx_http_mitte_json_str(b->last, (u_char *) message, mlen);
    *b->last++ = '}';
    *b->last++ = LF;

    return ngx_http_mitte_reply_buf(r, status, b);
}


ngx_int_t
ngx_http_mitte_reply_not_allowed(ngx_http_request_t *r, const char *allow)
{
    u_char           msg[96];
    ngx_table_elt_t  *h;

    if (ngx_http_discard_request_body(r) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "Allow");
    h->value.data = (u_char *) allow;
    h->value.len = ngx_strlen(allow);

    ngx_snprintf(msg, sizeof(msg) - 1, "Use %s here.%Z", allow);
    msg[sizeof(msg) - 1] = '\0';

    return ngx_http_mitte_reply_error(r, NGX_HTTP_NOT_ALLOWED,
                                      "method_not_allowed", (char *) msg);
}


/*
 * Reads the request body, at most NGX_HTTP_MITTE_BODY_MAX bytes, then calls
 * the handler. For a content handler to return.
 */

ngx_int_t
ngx_http_mitte_read_body(ngx_http_request_t *r,
    ngx_http_client_body_handler_pt handler)
{
    ngx_int_t  rc;

    if (r->headers_in.content_length_n > NGX_HTTP_MITTE_BODY_MAX) {

        /* as client_max_body_size: no "100 Continue" for a body refused */
        r->expect_tested = 1;

        if (ngx_http_discard_request_body(r) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        return ngx_http_mitte_reply_error(r, NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
                                          "too_large",
                                          "The request body is larger than "
                                          "64 KiB.");
    }

    r->request_body_in_single_buf = 1;

    rc = ngx_http_read_client_request_body(r, handler);

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        return rc;
    }

    return NGX_DONE;
}


/*
 * The body read, in one piece (NUL-terminated): NGX_OK, NGX_DECLINED when
 * it is over the limit, or NGX_ERROR.
 */

static ngx_int_t
ngx_http_mitte_body(ngx_http_request_t *r, ngx_str_t *body)
{
    off_t         len;
    u_char       *p;
    ssize_t       n;
    ngx_buf_t    *b;
    ngx_chain_t  *cl;

    len = 0;

    if (r->request_body == NULL) {
        body->data = (u_char *) "";
        body->len = 0;
        return NGX_OK;
    }

    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        len += ngx_buf_size(cl->buf);
    }

    if (len > NGX_HTTP_MITTE_BODY_MAX) {
        return NGX_DECLINED;
    }

    p = ngx_pnalloc(r->pool, (size_t) len + 1);
    if (p == NULL) {
        return NGX_ERROR;
    }

    body->data = p;

    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        b = cl->buf;

        if (b->in_file) {
            n = ngx_read_file(b->file, p, (size_t) (b->file_last - b->file_pos),
                              b->file_pos);

            if (n != b->file_last - b->file_pos) {
                return NGX_ERROR;
            }

            p += n;
            continue;
        }

        if (b->last > b->pos) {
            p = ngx_cpymem(p, b->pos, b->last - b->pos);
        }
    }

    *p = '\0';
    body->len = p - body->data;

    return NGX_OK;
}


/* sends one buffer as the JSON answer */

ngx_int_t
ngx_http_mitte_reply_buf(ngx_http_request_t *r, ngx_uint_t status,
    ngx_buf_t *b)
{
    ngx_chain_t  *out;

    out = ngx_alloc_chain_link(r->pool);
    if (out == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    out->buf = b;
    out->next = NULL;

    return ngx_http_mitte_reply_json(r, status, out);
}


/*
 * The caller on the module's own locations: mitte_user, 1-64 bytes.
 * NGX_OK, or NGX_DECLINED when there is none.
 */

ngx_int_t
ngx_http_mitte_caller(ngx_http_request_t *r, ngx_str_t *user)
{
    ngx_http_mitte_loc_conf_t  *mlcf;

    mlcf = ngx_http_get_module_loc_conf(r, ngx_http_mitte_module);

    if (mlcf->user == NULL
        || ngx_http_mitte_value(r, mlcf->user, user) != NGX_OK
        || user->len == 0 || user->len > MITTE_USER_MAX)
    {
        return NGX_DECLINED;
    }

    return NGX_OK;
}


ngx_int_t
ngx_http_mitte_reply_unauthorized(ngx_http_request_t *r)
{
    if (ngx_http_discard_request_body(r) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_mitte_reply_error(r, NGX_HTTP_UNAUTHORIZED, "unauthorized",
                                      "No user: mitte_user is empty for this "
                                      "request (or longer than 64 bytes).");
}


/* the part of the URI after the location's prefix, without leading '/' */

void
ngx_http_mitte_subpath(ngx_http_request_t *r, ngx_str_t *path)
{
    ngx_http_core_loc_conf_t  *clcf;

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

    *path = r->uri;

    if (clcf->name.len <= path->len
        && ngx_strncmp(path->data, clcf->name.data, clcf->name.len) == 0)
    {
        path->data += clcf->name.len;
        path->len -= clcf->name.len;
    }

    while (path->len && path->data[0] == '/') {
        path->data++;
        path->len--;
    }
}


/*
 * In a body handler: the body read, or an answer to finalize with (413
 * already sent, or 500) in *rc.
 */

ngx_int_t
ngx_http_mitte_body_or_error(ngx_http_request_t *r, ngx_str_t *body,
    ngx_int_t *rc)
{
    ngx_int_t  n;

    n = ngx_http_mitte_body(r, body);

    if (n == NGX_OK) {
        return NGX_OK;
    }

    if (n == NGX_DECLINED) {
        *rc = ngx_http_mitte_reply_error(r, NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
                                         "too_large",
                                         "The request body is larger than "
                                         "64 KiB.");

    } else {
        *rc = NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return NGX_ERROR;
}


/* the last buffer of a chain, with at least "need" bytes free */

ngx_chain_t *
ngx_http_mitte_chain(ngx_http_request_t *r, ngx_chain_t **last, size_t need)
{
    ngx_buf_t    *b;
    ngx_chain_t  *cl;

    cl = *last;

    if (cl && (size_t) (cl->buf->end - cl->buf->last) >= need) {
        return cl;
    }

    b = ngx_create_temp_buf(r->pool, ngx_max(need, 32768));
    if (b == NULL) {
        return NULL;
    }

    cl = ngx_alloc_chain_link(r->pool);
    if (cl == NULL) {
        return NULL;
    }

    cl->buf = b;
    cl->next = NULL;

    if (*last) {
        (*last)->next = cl;
    }

    *last = cl;

    return cl;
}


ngx_int_t
ngx_http_mitte_write(ngx_http_request_t *r, ngx_chain_t **last, u_char *s,
    size_t len)
{
    ngx_chain_t  *cl;

    cl = ngx_http_mitte_chain(r, last, len);
    if (cl == NULL) {
        return NGX_ERROR;
    }

    cl->buf->last = ngx_cpymem(cl->buf->last, s, len);

    return NGX_OK;
}


size_t
ngx_http_mitte_json_str_len(u_char *s, size_t len)
{
    return 2 + mitte_json_escape(NULL, s, len);
}


u_char *
ngx_http_mitte_json_str(u_char *p, u_char *s, size_t len)
{
    *p++ = '"';
    p += mitte_json_escape(p, s, len);
    *p++ = '"';

    return p;
}


/* a JSON string, or null when empty */

u_char *
ngx_http_mitte_json_str_null(u_char *p, u_char *s, size_t len)
{
    if (len == 0) {
        return ngx_cpymem(p, "null", 4);
    }

    return ngx_http_mitte_json_str(p, s, len);
}


u_char *
ngx_http_mitte_json_time(u_char *p, int64_t unix_ms)
{
    *p++ = '"';
    p += mitte_iso8601_format((char *) p, unix_ms);
    *p++ = '"';

    return p;
}


/*
 * A query argument, percent-decoded ("?limit=%32" is "?limit=2"); the
 * first when it is repeated. NGX_DECLINED: absent.
 */

ngx_int_t
ngx_http_mitte_arg(ngx_http_request_t *r, char *name, ngx_str_t *value)
{
    u_char  *dst, *src;

    if (ngx_http_arg(r, (u_char *) name, ngx_strlen(name), value) != NGX_OK) {
        return NGX_DECLINED;
    }

    if (ngx_strlchr(value->data, value->data + value->len, '%') == NULL) {
        return NGX_OK;
    }

    dst = ngx_pnalloc(r->pool, value->len);
    if (dst == NULL) {
        return NGX_ERROR;
    }

    src = value->data;
    value->data = dst;

    ngx_unescape_uri(&dst, &src, value->len, 0);

    value->len = dst - value->data;

    return NGX_OK;
}
