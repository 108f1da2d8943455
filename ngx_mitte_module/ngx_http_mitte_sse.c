/*
 * Copyright (C) ngx_mitte_module authors
 *
 * The event stream (mitte_sse): each worker keeps its subscribers in a
 * list, and fans the zone's event ring out to them. A worker that records
 * an event wakes the others through ngx_http_mitte_sse_wake.c; this file
 * reads its own eventfd, and drains the ring when woken.
 */


#include "ngx_http_mitte_module.h"
#include "ngx_http_mitte_stream.h"
#include "ngx_http_mitte_api.h"
#include "ngx_http_mitte_redis.h"
#include "ngx_http_mitte_cluster.h"


/* a subscriber that stops reading is dropped when this much is queued */
#define NGX_HTTP_MITTE_SSE_BACKLOG      (64 * 1024)
#define NGX_HTTP_MITTE_SSE_BATCH        64
/* subscribers are found by their user's hash: an event costs the same
 * however many other users' streams a worker holds */
#define NGX_HTTP_MITTE_SSE_BUCKETS      1024


/*
 * A subscriber starts as an HTTP request. Once its response header and
 * first frames are out, an HTTP/1.x stream is detached: the request is
 * freed (and logged), and the connection goes on with this small record
 * in its pool, writing chunks itself, so that an idle stream costs its
 * connection and little more.
 */

typedef struct {
    ngx_queue_t                  queue;     /* the user's bucket, or all */
    ngx_queue_t                  dirty_queue;
    ngx_http_request_t          *request;   /* NULL once detached */
    ngx_connection_t            *connection;
    ngx_pool_t                  *pool;      /* for the frame buffers */
    ngx_http_cleanup_t          *cleanup;
    ngx_event_t                  heartbeat;
    ngx_event_t                  detach;
    ngx_msec_t                   send_timeout;
    uint64_t                     from;      /* send events after this one */
    ngx_chain_t                 *out;
    ngx_chain_t                 *last;
    ngx_chain_t                 *free;
    ngx_chain_t                 *busy;
    size_t                       queued;    /* bytes not yet sent */
    ngx_msec_t                   written;   /* when something was sent */
    ngx_msec_t                   interval;  /* heartbeat */
    unsigned                     all:1;
    unsigned                     watching:1; /* counted in the zone */
    unsigned                     listed:1;
    unsigned                     dirty:1;
    unsigned                     raw:1;     /* detached */
    unsigned                     chunked:1;
    uint32_t                     hash;
    time_t                       told;      /* the other instances, last */
    size_t                       user_len;
    u_char                       user[MITTE_USER_MAX];
} ngx_http_mitte_sub_t;


typedef struct {
    ngx_queue_t                  all;       /* "mitte_sse all" streams */
    ngx_queue_t                  dirty;     /* streams with output queued */
    ngx_queue_t                 *buckets;
    ngx_uint_t                   count;
    uint64_t                     last;      /* newest event fanned out */
    ngx_event_t                  drain;
    ngx_connection_t            *wakeup;
    ngx_http_mitte_zone_ctx_t   *zone;
    ngx_http_mitte_event_t      *batch;
    u_char                      *frame;
    unsigned                     ready:1;
} ngx_http_mitte_sse_worker_t;


static void ngx_http_mitte_sse_wakeup(ngx_event_t *ev);
static void ngx_http_mitte_sse_drain_handler(ngx_event_t *ev);
static void ngx_http_mitte_sse_drain(void);
static ngx_int_t ngx_http_mitte_sse_add(ngx_http_mitte_sub_t *sub,
    u_char *data, size_t len);
static ngx_int_t ngx_http_mitte_sse_flush(ngx_http_mitte_sub_t *sub);
static ngx_int_t ngx_http_mitte_sse_raw_flush(ngx_http_mitte_sub_t *sub);
static void ngx_http_mitte_sse_drop(ngx_http_mitte_sub_t *sub);
static void ngx_http_mitte_sse_end(ngx_http_mitte_sub_t *sub);
static void ngx_http_mitte_sse_shutdown(ngx_http_mitte_sse_worker_t *w);
static void ngx_http_mitte_sse_finish(ngx_http_mitte_sub_t *sub);
static void ngx_http_mitte_sse_detach(ngx_event_t *ev);
static void ngx_http_mitte_sse_raw_read(ngx_event_t *rev);
static void ngx_http_mitte_sse_raw_write(ngx_event_t *wev);
static ngx_http_mitte_sub_t *ngx_http_mitte_sse_sub(ngx_http_request_t *r,
    ngx_http_mitte_loc_conf_t *mlcf, ngx_str_t *user);
static void ngx_http_mitte_sse_listen(ngx_http_request_t *r,
    ngx_http_mitte_sub_t *sub, uint64_t head);
static ngx_int_t ngx_http_mitte_sse_header(ngx_http_request_t *r);
static ngx_int_t ngx_http_mitte_sse_opening(ngx_http_request_t *r);
static ngx_int_t ngx_http_mitte_sse_replay(ngx_http_request_t *r,
    ngx_http_mitte_sub_t *sub, uint64_t *head);
static void ngx_http_mitte_sse_write(ngx_http_request_t *r);
static void ngx_http_mitte_sse_heartbeat(ngx_event_t *ev);
static void ngx_http_mitte_sse_tell(ngx_http_mitte_sub_t *sub);
static void ngx_http_mitte_sse_told(redisReply *reply, void *data,
    ngx_uint_t rc);
static void ngx_http_mitte_sse_cleanup(void *data);
static void ngx_http_mitte_sse_watch(ngx_http_mitte_sse_worker_t *w,
    ngx_http_mitte_sub_t *sub, ngx_int_t n);
static ngx_int_t ngx_http_mitte_sse_last_id(ngx_http_request_t *r,
    uint64_t *id);
static void ngx_http_mitte_sse_count(ngx_http_mitte_sse_worker_t *w,
    ngx_atomic_int_t n);
static ngx_int_t ngx_http_mitte_sse_matches(ngx_http_mitte_sub_t *sub,
    ngx_http_mitte_event_t *e);


static ngx_http_mitte_sse_worker_t  ngx_http_mitte_sse_worker;

ngx_int_t
ngx_http_mitte_sse_init_process(ngx_cycle_t *cycle)
{
    ngx_uint_t                    i;
    ngx_connection_t             *c;
    ngx_http_mitte_zone_ctx_t    *zone;
    ngx_http_mitte_main_conf_t   *mmcf;
    ngx_http_mitte_sse_worker_t  *w;

    mmcf = ngx_http_mitte_process_conf(cycle, 0);
    if (mmcf == NULL) {
        return NGX_OK;
    }

    w = &ngx_http_mitte_sse_worker;
    zone = mmcf->shm_zone->data;

    ngx_queue_init(&w->all);
    ngx_queue_init(&w->dirty);

    w->buckets = ngx_palloc(cycle->pool, NGX_HTTP_MITTE_SSE_BUCKETS
                                         * sizeof(ngx_queue_t));
    if (w->buckets == NULL) {
        return NGX_ERROR;
    }

    for (i = 0; i < NGX_HTTP_MITTE_SSE_BUCKETS; i++) {
        ngx_queue_init(&w->buckets[i]);
    }

    w->zone = zone;
    w->last = zone->sh->event_seq;

    w->drain.handler = ngx_http_mitte_sse_drain_handler;
    w->drain.log = cycle->log;
    w->drain.data = w;

    w->batch = ngx_palloc(cycle->pool, NGX_HTTP_MITTE_SSE_BATCH
                                       * sizeof(ngx_http_mitte_event_t));
    w->frame = ngx_palloc(cycle->pool, NGX_HTTP_MITTE_FRAME_MAX);

    if (w->batch == NULL || w->frame == NULL) {
        return NGX_ERROR;
    }

    /* the others' eventfds are not ours to read */

    for (i = 0; i < ngx_http_mitte_sse_nfds; i++) {
        if (i != ngx_worker) {
            /* kept open: this worker writes to them */
            continue;
        }

        c = ngx_get_connection(ngx_http_mitte_sse_fds[i], cycle->log);
        if (c == NULL) {
            return NGX_ERROR;
        }

        c->read->handler = ngx_http_mitte_sse_wakeup;
        c->read->log = cycle->log;
        c->data = w;

        /*
         * "idle": a graceful shutdown (quit, reload) calls its handler with
         * c->close set, which is when this worker ends its streams; nginx
         * would not end an HTTP/2 stream, and the worker would exit with it
         */
        c->idle = 1;

        if (ngx_handle_read_event(c->read, 0) != NGX_OK) {
            return NGX_ERROR;
        }

        w->wakeup = c;
    }

    if (ngx_worker < NGX_HTTP_MITTE_MAX_WORKERS) {
        /* the slot is this worker's now, not its predecessor's */
        zone->sh->workers[ngx_worker].pid = (ngx_atomic_uint_t) ngx_pid;
        zone->sh->workers[ngx_worker].subscribers = 0;
        zone->sh->workers[ngx_worker].wake = 0;
    }

    w->ready = 1;
    ngx_http_mitte_sse_wake_local(&w->drain);

    return NGX_OK;
}


void
ngx_http_mitte_sse_exit_process(ngx_cycle_t *cycle)
{
    ngx_http_mitte_sse_worker_t  *w;

    w = &ngx_http_mitte_sse_worker;

    if (w->wakeup) {
        ngx_close_connection(w->wakeup);
        w->wakeup = NULL;
    }

    w->ready = 0;
    ngx_http_mitte_sse_wake_local(NULL);
}


static void
ngx_http_mitte_sse_wakeup(ngx_event_t *ev)
{
    uint64_t                      v;
    ngx_connection_t             *c;
    ngx_http_mitte_sse_worker_t  *w;

    c = ev->data;
    w = c->data;

    if (c->close) {
        ngx_http_mitte_sse_shutdown(w);
        return;
    }

    while (read(c->fd, &v, sizeof(v)) == sizeof(v)) {
        /* void */
    }

    if (ngx_worker < NGX_HTTP_MITTE_MAX_WORKERS) {
        w->zone->sh->workers[ngx_worker].wake = 0;
    }

    ngx_http_mitte_sse_drain();
}


/*
 * Graceful shutdown: every stream of this worker ends cleanly (the last
 * chunk, or END_STREAM on HTTP/2), and the clients reconnect, with their
 * Last-Event-ID, to a worker that goes on.
 */

static void
ngx_http_mitte_sse_shutdown(ngx_http_mitte_sse_worker_t *w)
{
    ngx_uint_t             i;
    ngx_queue_t           *list;
    ngx_http_mitte_sub_t  *sub;

    w->ready = 0;
    ngx_http_mitte_sse_wake_local(NULL);

    for (i = 0; i <= NGX_HTTP_MITTE_SSE_BUCKETS; i++) {
        list = (i < NGX_HTTP_MITTE_SSE_BUCKETS) ? &w->buckets[i] : &w->all;

        while (!ngx_queue_empty(list)) {
            sub = ngx_queue_data(ngx_queue_head(list), ngx_http_mitte_sub_t,
                                 queue);
            ngx_http_mitte_sse_finish(sub);
        }
    }

    if (w->wakeup) {
        ngx_close_connection(w->wakeup);
        w->wakeup = NULL;
    }
}


static void
ngx_http_mitte_sse_finish(ngx_http_mitte_sub_t *sub)
{
    ngx_int_t            rc;
    ngx_connection_t    *c;
    ngx_http_request_t  *r;

    static u_char  last[] = "0\r\n\r\n";

    c = sub->connection;

    /* off the lists first: the end may take a while to be sent */
    ngx_http_mitte_sse_cleanup(sub);

    if (sub->raw) {
        if (sub->chunked && sub->out == NULL && !c->error) {
            /* the last chunk if it goes at once; else the close says it */
            (void) c->send(c, last, sizeof(last) - 1);
        }

        ngx_http_close_connection(c);
        return;
    }

    r = sub->request;

    rc = ngx_http_send_special(r, NGX_HTTP_LAST);
    ngx_http_finalize_request(r, rc);
    ngx_http_run_posted_requests(c);
}


static void
ngx_http_mitte_sse_drain_handler(ngx_event_t *ev)
{
    ngx_http_mitte_sse_drain();
}


static void
ngx_http_mitte_sse_drain(void)
{
    u_char                       *end;
    uint64_t                      head;
    ngx_uint_t                    i, n, k;
    ngx_queue_t                  *q, *next, *list[2];
    ngx_http_mitte_sub_t         *sub;
    ngx_http_mitte_event_t       *e;
    ngx_http_mitte_sse_worker_t  *w;

    w = &ngx_http_mitte_sse_worker;

    do {
        n = ngx_http_mitte_events_copy(w->zone, w->last, w->batch,
                                       NGX_HTTP_MITTE_SSE_BATCH, &head);

        for (i = 0; i < n; i++) {
            e = &w->batch[i];
            w->last = e->seq;

            end = NULL;

            list[0] = &w->all;
            list[1] = e->user_len
                      ? &w->buckets[ngx_crc32_short(e->user, e->user_len)
                                    % NGX_HTTP_MITTE_SSE_BUCKETS]
                      : NULL;

            for (k = 0; k < 2 && list[k]; k++) {

                for (q = ngx_queue_head(list[k]);
                     q != ngx_queue_sentinel(list[k]);
                     q = next)
                {
                    next = ngx_queue_next(q);
                    sub = ngx_queue_data(q, ngx_http_mitte_sub_t, queue);

                    if (e->seq <= sub->from
                        || !ngx_http_mitte_sse_matches(sub, e))
                    {
                        continue;
                    }

                    if (end == NULL) {
                        end = ngx_http_mitte_event_frame(w->frame, e);
                    }

                    if (ngx_http_mitte_sse_add(sub, w->frame, end - w->frame)
                        != NGX_OK)
                    {
                        ngx_http_mitte_sse_drop(sub);
                    }
                }
            }
        }

    } while (n == NGX_HTTP_MITTE_SSE_BATCH);

    if (head > w->last) {
        w->last = head;
    }

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, w->drain.log, 0,
                   "mitte sse: ring drained to event %uL for %ui streams",
                   w->last, w->count);

    while (!ngx_queue_empty(&w->dirty)) {
        q = ngx_queue_head(&w->dirty);
        sub = ngx_queue_data(q, ngx_http_mitte_sub_t, dirty_queue);

        if (ngx_http_mitte_sse_flush(sub) != NGX_OK) {
            ngx_http_mitte_sse_drop(sub);
        }
    }
}


/*
 * The zone's count of this worker's subscribers; after a reload the slot
 * may belong to the new worker of the same number, which counts its own.
 */

static void
ngx_http_mitte_sse_count(ngx_http_mitte_sse_worker_t *w, ngx_atomic_int_t n)
{
    ngx_http_mitte_worker_t  *slot;

    if (ngx_worker >= NGX_HTTP_MITTE_MAX_WORKERS) {
        return;
    }

    slot = &w->zone->sh->workers[ngx_worker];

    if (slot->pid == (ngx_atomic_uint_t) ngx_pid) {
        (void) ngx_atomic_fetch_add(&slot->subscribers, n);
    }
}


static ngx_int_t
ngx_http_mitte_sse_matches(ngx_http_mitte_sub_t *sub,
    ngx_http_mitte_event_t *e)
{
    if (sub->all) {
        return 1;
    }

    return sub->user_len == e->user_len
           && ngx_memcmp(sub->user, e->user, sub->user_len) == 0;
}


/* queues a frame for the subscriber; NGX_ERROR when its backlog is full */

static ngx_int_t
ngx_http_mitte_sse_add(ngx_http_mitte_sub_t *sub, u_char *data, size_t len)
{
    size_t        need;
    ngx_buf_t    *b;
    ngx_chain_t  *cl;

    /* a detached chunked stream frames each piece as a chunk itself */
    need = (sub->raw && sub->chunked) ? len + NGX_OFF_T_LEN + 4 : len;

    if (sub->queued + need > NGX_HTTP_MITTE_SSE_BACKLOG) {
        return NGX_ERROR;
    }

    cl = sub->last;

    if (cl == NULL || (size_t) (cl->buf->end - cl->buf->last) < need) {

        if (sub->free) {
            cl = sub->free;
            sub->free = cl->next;
            b = cl->buf;

        } else {
            cl = ngx_alloc_chain_link(sub->pool);
            if (cl == NULL) {
                return NGX_ERROR;
            }

            b = ngx_calloc_buf(sub->pool);
            if (b == NULL) {
                return NGX_ERROR;
            }

            b->tag = (ngx_buf_tag_t) &ngx_http_mitte_module;
            cl->buf = b;
        }

        if (b->start == NULL) {
            /* a detached stream gives its buffers' memory back when sent */
            b->start = ngx_palloc(sub->pool, NGX_HTTP_MITTE_FRAME_MAX
                                             + NGX_OFF_T_LEN + 4);
            if (b->start == NULL) {
                return NGX_ERROR;
            }

            b->end = b->start + NGX_HTTP_MITTE_FRAME_MAX + NGX_OFF_T_LEN + 4;
            b->temporary = 1;
        }

        b->pos = b->start;
        b->last = b->start;
        b->flush = 1;
        cl->next = NULL;

        if (sub->last) {
            sub->last->next = cl;

        } else {
            sub->out = cl;
        }

        sub->last = cl;
    }

    b = cl->buf;

    if (sub->raw && sub->chunked) {
        b->last = ngx_sprintf(b->last, "%xz" CRLF, len);
        b->last = ngx_cpymem(b->last, data, len);
        *b->last++ = CR;
        *b->last++ = LF;

    } else {
        b->last = ngx_cpymem(b->last, data, len);
    }

    sub->queued += need;

    if (!sub->dirty) {
        ngx_queue_insert_tail(&ngx_http_mitte_sse_worker.dirty,
                              &sub->dirty_queue);
        sub->dirty = 1;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_mitte_sse_flush(ngx_http_mitte_sub_t *sub)
{
    off_t                      queued;
    ngx_int_t                  rc;
    ngx_chain_t               *cl;
    ngx_connection_t          *c;
    ngx_http_request_t        *r;
    ngx_http_core_loc_conf_t  *clcf;

    if (sub->raw) {
        return ngx_http_mitte_sse_raw_flush(sub);
    }

    r = sub->request;
    c = r->connection;

    rc = ngx_http_output_filter(r, sub->out);

    ngx_chain_update_chains(r->pool, &sub->free, &sub->busy, &sub->out,
                            (ngx_buf_tag_t) &ngx_http_mitte_module);

    sub->out = NULL;
    sub->last = NULL;

    if (sub->dirty) {
        ngx_queue_remove(&sub->dirty_queue);
        sub->dirty = 0;
    }

    if (rc == NGX_ERROR || c->error) {
        return NGX_ERROR;
    }

    queued = 0;

    for (cl = sub->busy; cl; cl = cl->next) {
        queued += ngx_buf_size(cl->buf);
    }

    sub->queued = (size_t) queued;
    sub->written = ngx_current_msec;

    if (sub->queued) {
        clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

        if (!c->write->timer_set) {
            ngx_add_timer(c->write, clcf->send_timeout);
        }

        if (ngx_handle_write_event(c->write, clcf->send_lowat) != NGX_OK) {
            return NGX_ERROR;
        }

    } else {
        if (c->write->timer_set) {
            ngx_del_timer(c->write);
        }

        if (sub->listed && !sub->detach.posted && !c->buffered
            && r->out == NULL)
        {
            ngx_post_event(&sub->detach, &ngx_posted_events);
        }
    }

    return NGX_OK;
}


/* a detached stream: the queued chunks straight to the socket */

static ngx_int_t
ngx_http_mitte_sse_raw_flush(ngx_http_mitte_sub_t *sub)
{
    off_t              queued;
    ngx_chain_t       *cl, **ll;
    ngx_connection_t  *c;

    c = sub->connection;

    if (sub->dirty) {
        ngx_queue_remove(&sub->dirty_queue);
        sub->dirty = 0;
    }

    if (sub->out) {
        for (ll = &sub->busy; *ll; ll = &(*ll)->next) { /* void */ }

        *ll = sub->out;
        sub->out = NULL;
        sub->last = NULL;
    }

    if (sub->busy) {
        if (c->send_chain(c, sub->busy, 0) == NGX_CHAIN_ERROR) {
            c->error = 1;
            return NGX_ERROR;
        }

        sub->written = ngx_current_msec;
    }

    queued = 0;

    while (sub->busy && ngx_buf_size(sub->busy->buf) == 0) {
        cl = sub->busy;
        sub->busy = cl->next;

        if (ngx_pfree(sub->pool, cl->buf->start) == NGX_OK) {
            cl->buf->start = NULL;
        }

        cl->next = sub->free;
        sub->free = cl;
    }

    for (cl = sub->busy; cl; cl = cl->next) {
        queued += ngx_buf_size(cl->buf);
    }

    sub->queued = (size_t) queued;

    if (sub->queued) {
        if (!c->write->timer_set) {
            ngx_add_timer(c->write, sub->send_timeout);
        }

        if (ngx_handle_write_event(c->write, 0) != NGX_OK) {
            return NGX_ERROR;
        }

    } else if (c->write->timer_set) {
        ngx_del_timer(c->write);
    }

    return NGX_OK;
}


/*
 * Detaches an HTTP/1.x stream whose request has nothing left to send:
 * posted, so that it runs once the request's handlers have returned.
 */

static void
ngx_http_mitte_sse_detach(ngx_event_t *ev)
{
    ngx_buf_t                 *b;
    ngx_chain_t               *cl;
    ngx_connection_t          *c;
    ngx_http_request_t        *r;
    ngx_http_connection_t     *hc;
    ngx_http_mitte_sub_t      *sub;

    sub = ev->data;
    r = sub->request;

    if (r == NULL || sub->raw) {
        return;
    }

    c = r->connection;

    if (r != r->main || r->http_version >= NGX_HTTP_VERSION_20
#if (NGX_HTTP_V2)
        || r->stream
#endif
        || r->out || c->buffered || sub->busy || sub->out
        || c->error || c->close || r->main->count != 1)
    {
        return;
    }

    hc = r->http_connection;

    /* the stream goes on: the request's cleanup must not end it */
    sub->cleanup->handler = NULL;

    if (c->read->timer_set) {
        ngx_del_timer(c->read);
    }

    if (c->write->timer_set) {
        ngx_del_timer(c->write);
    }

    if (c->read->posted) {
        ngx_delete_posted_event(c->read);
    }

    if (c->write->posted) {
        ngx_delete_posted_event(c->write);
    }

    sub->chunked = r->chunked;
    sub->raw = 1;
    sub->request = NULL;
    sub->pool = c->pool;
    sub->free = NULL;

    ngx_http_free_request(r, 0);

    c->destroyed = 0;
    c->data = sub;
    c->read->handler = ngx_http_mitte_sse_raw_read;
    c->write->handler = ngx_http_mitte_sse_raw_write;
    c->log->action = "sending events";

    /* the buffers that held the request header are not needed any more */

    b = c->buffer;

    if (b && b->start && ngx_pfree(c->pool, b->start) == NGX_OK) {
        b->start = NULL;
        b->pos = NULL;
    }

    if (hc) {
        for (cl = hc->free; cl; cl = cl->next) {
            (void) ngx_pfree(c->pool, cl->buf->start);
        }

        for (cl = hc->busy; cl; cl = cl->next) {
            (void) ngx_pfree(c->pool, cl->buf->start);
        }

        hc->free = NULL;
        hc->busy = NULL;
        hc->nbusy = 0;
    }

    /* a close that arrived meanwhile is seen now; then the events rule */
    ngx_http_mitte_sse_raw_read(c->read);
}


static void
ngx_http_mitte_sse_raw_read(ngx_event_t *rev)
{
    u_char                 buf[1];
    ssize_t                n;
    ngx_err_t              err;
    ngx_connection_t      *c;
    ngx_http_mitte_sub_t  *sub;

    c = rev->data;
    sub = c->data;

    if (c->close) {
        /* graceful shutdown: the client reconnects elsewhere */
        ngx_http_mitte_sse_end(sub);
        return;
    }

    n = recv(c->fd, buf, 1, MSG_PEEK);
    err = ngx_socket_errno;

    if (n == 0 || (n == -1 && err != NGX_EAGAIN && err != NGX_EINTR)) {
        ngx_log_error(NGX_LOG_INFO, c->log, err,
                      "client closed the event stream");
        ngx_http_mitte_sse_end(sub);
        return;
    }

    if (n > 0) {
        /* an event stream client has nothing to say */
        ngx_http_mitte_sse_end(sub);
        return;
    }

    if (ngx_handle_read_event(rev, 0) != NGX_OK) {
        ngx_http_mitte_sse_end(sub);
    }
}


static void
ngx_http_mitte_sse_raw_write(ngx_event_t *wev)
{
    ngx_connection_t      *c;
    ngx_http_mitte_sub_t  *sub;

    c = wev->data;
    sub = c->data;

    if (wev->timedout) {
        c->timedout = 1;
        ngx_log_error(NGX_LOG_INFO, c->log, NGX_ETIMEDOUT,
                      "mitte: event stream client timed out");
        ngx_http_mitte_sse_end(sub);
        return;
    }

    if (ngx_http_mitte_sse_raw_flush(sub) != NGX_OK) {
        ngx_http_mitte_sse_end(sub);
    }
}


/*
 * Ends a stream from outside its own connection's handlers: the request is
 * terminated through a posted request, which is run here and now.
 */

static void
ngx_http_mitte_sse_drop(ngx_http_mitte_sub_t *sub)
{
    ngx_log_error(NGX_LOG_INFO, sub->connection->log, 0,
                  "mitte: event stream subscriber dropped");

    ngx_http_mitte_sse_end(sub);
}


static void
ngx_http_mitte_sse_end(ngx_http_mitte_sub_t *sub)
{
    ngx_connection_t  *c;

    c = sub->connection;

    if (sub->raw) {
        ngx_http_mitte_sse_cleanup(sub);
        ngx_http_close_connection(c);
        return;
    }

    ngx_http_finalize_request(sub->request, NGX_ERROR);
    ngx_http_run_posted_requests(c);
}


static void
ngx_http_mitte_sse_write(ngx_http_request_t *r)
{
    ngx_connection_t      *c;
    ngx_http_mitte_ctx_t  *ctx;
    ngx_http_mitte_sub_t  *sub;

    c = r->connection;
    ctx = ngx_http_get_module_ctx(r, ngx_http_mitte_module);
    sub = ctx ? ctx->sub : NULL;

    if (c->write->timedout) {
        c->timedout = 1;
        ngx_log_error(NGX_LOG_INFO, c->log, NGX_ETIMEDOUT,
                      "mitte: event stream client timed out");
        ngx_http_finalize_request(r, NGX_ERROR);
        return;
    }

    if (sub == NULL || ngx_http_mitte_sse_flush(sub) != NGX_OK) {
        ngx_http_finalize_request(r, NGX_ERROR);
    }
}


static void
ngx_http_mitte_sse_heartbeat(ngx_event_t *ev)
{
    ngx_msec_t                    idle;
    ngx_http_mitte_sub_t         *sub;
    ngx_http_mitte_sse_worker_t  *w;

    static u_char  ping[] = ": ping\n\n";

    sub = ev->data;
    w = &ngx_http_mitte_sse_worker;

    if (ngx_exiting || ngx_terminate) {
        ngx_http_mitte_sse_end(sub);
        return;
    }

    /* a lost wake-up costs at most one heartbeat */

    if (w->zone->sh->event_seq != w->last && !w->drain.posted) {
        /* not here: the drain may drop (and free) this very stream */
        ngx_post_event(&w->drain, &ngx_posted_events);
    }

    if (ngx_time() - sub->told >= NGX_HTTP_MITTE_WATCH_TELL) {
        ngx_http_mitte_sse_tell(sub);
    }

    idle = ngx_current_msec - sub->written;

    if (idle + 10 >= sub->interval) {
        if (ngx_http_mitte_sse_add(sub, ping, sizeof(ping) - 1) != NGX_OK
            || ngx_http_mitte_sse_flush(sub) != NGX_OK)
        {
            ngx_http_mitte_sse_drop(sub);
            return;
        }

        idle = 0;
    }

    ngx_add_timer(ev, sub->interval - idle);
}


static void
ngx_http_mitte_sse_cleanup(void *data)
{
    ngx_http_mitte_sub_t  *sub = data;

    ngx_http_mitte_sse_worker_t  *w;

    w = &ngx_http_mitte_sse_worker;

    if (sub->heartbeat.timer_set) {
        ngx_del_timer(&sub->heartbeat);
    }

    if (sub->heartbeat.posted) {
        ngx_delete_posted_event(&sub->heartbeat);
    }

    if (sub->detach.posted) {
        ngx_delete_posted_event(&sub->detach);
    }

    if (sub->dirty) {
        ngx_queue_remove(&sub->dirty_queue);
        sub->dirty = 0;
    }

    if (sub->listed) {
        ngx_log_debug2(NGX_LOG_DEBUG_HTTP, sub->connection->log, 0,
                       "mitte sse: stream of \"%*s\" ends",
                       sub->user_len, sub->user);

        ngx_queue_remove(&sub->queue);
        sub->listed = 0;
        w->count--;

        ngx_http_mitte_sse_count(w, -1);
    }

    if (sub->watching) {
        ngx_http_mitte_sse_watch(w, sub, -1);
    }
}


/*
 * A stream counted in (n = 1) or out (n = -1) of the zone's watch table,
 * which decides whether its user's deliveries are kept for replay
 */

static void
ngx_http_mitte_sse_watch(ngx_http_mitte_sse_worker_t *w,
    ngx_http_mitte_sub_t *sub, ngx_int_t n)
{
    ngx_shmtx_lock(&w->zone->shpool->mutex);
    ngx_http_mitte_watch(w->zone, sub->user, sub->user_len, sub->all, n);
    ngx_shmtx_unlock(&w->zone->shpool->mutex);

    sub->watching = (n > 0);

    ngx_http_mitte_sse_tell(sub);
}


/*
 * Cluster mode: the other instances hear that a stream of the user (or
 * an "all" stream) is open, when it opens and closes and every
 * NGX_HTTP_MITTE_WATCH_TELL seconds between, and keep its user's events
 * as this instance does (a "w" entry of the event stream)
 */

static void
ngx_http_mitte_sse_tell(ngx_http_mitte_sub_t *sub)
{
    u_char  *p;
    u_char   text[64 + 6 * MITTE_USER_MAX];

    if (ngx_http_mitte_redis_ready() != NGX_OK) {
        return;
    }

    sub->told = ngx_time();

    p = ngx_sprintf(text, "{\"k\":\"w\",\"a\":%s,\"u\":\"",
                    sub->all ? "true" : "false");
    p += mitte_json_escape(p, sub->user, sub->user_len);
    *p++ = '"';
    *p++ = '}';

    (void) ngx_http_mitte_redis_publish(ngx_http_mitte_sse_told, NULL, text,
                                        p - text);
}


static void
ngx_http_mitte_sse_told(redisReply *reply, void *data, ngx_uint_t rc)
{
    /* a stream not told costs the other instances its events' replay */
}


ngx_int_t
ngx_http_mitte_sse_handler(ngx_http_request_t *r)
{
    uint64_t                      head;
    ngx_int_t                     rc;
    ngx_str_t                     user;
    ngx_http_cleanup_t           *cln;
    ngx_http_mitte_sub_t         *sub;
    ngx_http_mitte_ctx_t         *ctx;
    ngx_http_mitte_loc_conf_t    *mlcf;
    ngx_http_mitte_sse_worker_t  *w;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return ngx_http_mitte_reply_not_allowed(r, "GET, HEAD");
    }

    if (ngx_http_discard_request_body(r) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    w = &ngx_http_mitte_sse_worker;
    mlcf = ngx_http_get_module_loc_conf(r, ngx_http_mitte_module);

    ngx_str_null(&user);

    if (!mlcf->sse_all && ngx_http_mitte_caller(r, &user) != NGX_OK) {
        return ngx_http_mitte_reply_unauthorized(r);
    }

    if ((!w->ready && !ngx_exiting)
        || ngx_worker >= NGX_HTTP_MITTE_MAX_WORKERS)
    {
        return ngx_http_mitte_reply_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                          "unavailable",
                                          "The event stream is not served by "
                                          "this worker.");
    }

    sub = ngx_http_mitte_sse_sub(r, mlcf, &user);
    if (sub == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln = ngx_http_cleanup_add(r, 0);
    if (cln == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln->handler = ngx_http_mitte_sse_cleanup;
    cln->data = sub;
    sub->cleanup = cln;

    /*
     * the stream is counted in the zone before anything is sent, and so
     * before the newest event is read: from here on, every event of its
     * user goes into the replay ring, whichever worker records it; the
     * cleanup counts it out
     */

    ngx_http_mitte_sse_watch(w, sub, 1);

    rc = ngx_http_mitte_sse_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    /* from here on, the header is out: errors close the connection */

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_mitte_ctx_t));
    if (ctx == NULL) {
        return NGX_ERROR;
    }

    ctx->sub = sub;

    ngx_http_set_ctx(r, ctx, ngx_http_mitte_module);

    sub->detach.handler = ngx_http_mitte_sse_detach;
    sub->detach.data = sub;
    sub->detach.log = r->connection->log;

    if (ngx_http_mitte_sse_opening(r) != NGX_OK) {
        return NGX_ERROR;
    }

    if (ngx_exiting || !w->ready) {
        /* this worker is going: the client reconnects to one that stays */
        return ngx_http_send_special(r, NGX_HTTP_LAST);
    }

    /* replay what the caller missed, then go live from there */

    if (ngx_http_mitte_sse_replay(r, sub, &head) != NGX_OK) {
        return NGX_ERROR;
    }

    ngx_http_mitte_sse_listen(r, sub, head);

    sub->heartbeat.handler = ngx_http_mitte_sse_heartbeat;
    sub->heartbeat.data = sub;
    sub->heartbeat.log = r->connection->log;
    sub->heartbeat.cancelable = 1;

    ngx_add_timer(&sub->heartbeat, sub->interval);

    r->read_event_handler = ngx_http_test_reading;
    r->write_event_handler = ngx_http_mitte_sse_write;

    /* graceful shutdown closes the stream: the client reconnects */
    r->connection->idle = 1;

    r->main->count++;

    if (ngx_http_mitte_sse_flush(sub) != NGX_OK) {
        ngx_http_finalize_request(r, NGX_ERROR);
    }

    return NGX_DONE;
}


/* the stream goes live after event "head": listed, and counted */

static void
ngx_http_mitte_sse_listen(ngx_http_request_t *r, ngx_http_mitte_sub_t *sub,
    uint64_t head)
{
    ngx_http_mitte_sse_worker_t  *w;

    w = &ngx_http_mitte_sse_worker;

    sub->from = head;

    if (sub->all) {
        ngx_queue_insert_tail(&w->all, &sub->queue);

    } else {
        sub->hash = ngx_crc32_short(sub->user, sub->user_len);
        ngx_queue_insert_tail(&w->buckets[sub->hash
                                          % NGX_HTTP_MITTE_SSE_BUCKETS],
                              &sub->queue);
    }

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "mitte sse: stream of \"%*s\" starts after event %uL",
                   sub->user_len, sub->user, sub->from);

    sub->listed = 1;
    w->count++;

    ngx_http_mitte_sse_count(w, 1);

    if (w->last < head) {
        /* events recorded meanwhile that this worker has not fanned out */
        ngx_http_mitte_sse_drain();
    }
}


/*
 * A subscriber's record, in the connection's pool: the stream may outlive
 * the request.
 */

static ngx_http_mitte_sub_t *
ngx_http_mitte_sse_sub(ngx_http_request_t *r, ngx_http_mitte_loc_conf_t *mlcf,
    ngx_str_t *user)
{
    ngx_http_mitte_sub_t      *sub;
    ngx_http_core_loc_conf_t  *clcf;

    sub = ngx_pcalloc(r->connection->pool, sizeof(ngx_http_mitte_sub_t));
    if (sub == NULL) {
        return NULL;
    }

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

    sub->request = r;
    sub->connection = r->connection;
    sub->pool = r->pool;
    sub->send_timeout = clcf->send_timeout;
    sub->all = mlcf->sse_all;
    sub->user_len = user->len;
    if (user->len) {
        ngx_memcpy(sub->user, user->data, user->len);
    }
    sub->interval = mlcf->heartbeat;

    return sub;
}


static ngx_int_t
ngx_http_mitte_sse_header(ngx_http_request_t *r)
{
    ngx_table_elt_t  *h;

    r->headers_out.status = NGX_HTTP_OK;
    ngx_str_set(&r->headers_out.content_type, "text/event-stream");
    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.content_type_lowcase = NULL;
    r->headers_out.content_length_n = -1;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "Cache-Control");
    ngx_str_set(&h->value, "no-cache");

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "X-Accel-Buffering");
    ngx_str_set(&h->value, "no");

    return ngx_http_send_header(r);
}


/* the opening from a static buffer: an idle stream holds no buffer */

static ngx_int_t
ngx_http_mitte_sse_opening(ngx_http_request_t *r)
{
    ngx_buf_t    *b;
    ngx_chain_t  *cl;

    static u_char  opening[] = "retry: 3000\n\n";

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return NGX_ERROR;
    }

    cl = ngx_alloc_chain_link(r->pool);
    if (cl == NULL) {
        return NGX_ERROR;
    }

    b->pos = opening;
    b->last = opening + sizeof(opening) - 1;
    b->memory = 1;
    b->flush = 1;

    cl->buf = b;
    cl->next = NULL;

    if (ngx_http_output_filter(r, cl) == NGX_ERROR) {
        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * The events after the caller's Last-Event-ID, queued; *head: the newest
 * event of the ring, where the stream goes live.
 */

static ngx_int_t
ngx_http_mitte_sse_replay(ngx_http_request_t *r, ngx_http_mitte_sub_t *sub,
    uint64_t *head)
{
    u_char                       *end;
    uint64_t                      after;
    ngx_uint_t                    i, n;
    ngx_http_mitte_event_t       *e;
    ngx_http_mitte_sse_worker_t  *w;

    w = &ngx_http_mitte_sse_worker;

    (void) ngx_http_mitte_events_copy(w->zone, 0, NULL, 0, head);

    /* ids start at 1: "0" asks for every event still buffered */

    if (ngx_http_mitte_sse_last_id(r, &after) == NGX_OK && after < *head) {

        do {
            n = ngx_http_mitte_events_copy(w->zone, after, w->batch,
                                           NGX_HTTP_MITTE_SSE_BATCH, head);

            for (i = 0; i < n; i++) {
                e = &w->batch[i];
                after = e->seq;

                if (!ngx_http_mitte_sse_matches(sub, e)) {
                    continue;
                }

                end = ngx_http_mitte_event_frame(w->frame, e);

                if (ngx_http_mitte_sse_add(sub, w->frame, end - w->frame)
                    == NGX_OK)
                {
                    continue;
                }

                /* a replay over the backlog: send what is queued, go on */

                if (ngx_http_mitte_sse_flush(sub) != NGX_OK
                    || ngx_http_mitte_sse_add(sub, w->frame, end - w->frame)
                       != NGX_OK)
                {
                    return NGX_ERROR;
                }
            }

        } while (n == NGX_HTTP_MITTE_SSE_BATCH);
    }

    return NGX_OK;
}


/* NGX_DECLINED: no Last-Event-ID (header or ?lastEventId=), or not a number */

static ngx_int_t
ngx_http_mitte_sse_last_id(ngx_http_request_t *r, uint64_t *id)
{
    ngx_str_t         value;
    ngx_table_elt_t  *h;

    static ngx_uint_t  hash;

    if (hash == 0) {
        hash = ngx_hash_key((u_char *) "last-event-id", 13);
    }

    h = ngx_http_mitte_header_in(r, (u_char *) "last-event-id", 13, hash,
                                 0);

    if (h) {
        value = h->value;

    } else {
        ngx_str_null(&value);
    }

    if (value.len == 0
        && ngx_http_mitte_arg(r, "lastEventId", &value) != NGX_OK)
    {
        return NGX_DECLINED;
    }

    if (mitte_event_id_parse((char *) value.data, value.len, id) != 0) {
        return NGX_DECLINED;
    }

    return NGX_OK;
}
