/*
 * Copyright (C) ngx_mitte_module authors
 *
 * Waking the event streams: the narrow interface that the streams offer
 * to whoever records an event (the rules, the sweep), as the outbox is
 * the sender's. One eventfd per worker, made by the master for the cycle
 * so that every worker holds all of them; a worker with subscribers is
 * written to at most once until it has drained the ring. This worker's
 * own streams get the event from a posted event instead.
 */


#include "ngx_http_mitte_module.h"
#include "ngx_http_mitte_stream.h"

#include <sys/eventfd.h>


typedef struct {
    int                          fd[NGX_HTTP_MITTE_MAX_WORKERS];
    ngx_uint_t                   n;
} ngx_http_mitte_sse_fds_t;


static void ngx_http_mitte_sse_close_fds(void *data);


/* this cycle's wake-up eventfds, one per worker, made by the master */
int         ngx_http_mitte_sse_fds[NGX_HTTP_MITTE_MAX_WORKERS];
ngx_uint_t  ngx_http_mitte_sse_nfds;

/* this worker's drain, while its streams are served */
static ngx_event_t  *ngx_http_mitte_sse_local;


ngx_int_t
ngx_http_mitte_sse_init_module(ngx_cycle_t *cycle)
{
    int                          fd;
    ngx_uint_t                   i, n;
    ngx_core_conf_t             *ccf;
    ngx_http_mitte_sse_fds_t    *fds;
    ngx_pool_cleanup_t          *cln;
    ngx_http_mitte_main_conf_t  *mmcf;

    ngx_http_mitte_sse_nfds = 0;

    mmcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_mitte_module);

    if (mmcf == NULL || mmcf->shm_zone == NULL) {
        return NGX_OK;
    }

    ccf = (ngx_core_conf_t *) ngx_get_conf(cycle->conf_ctx, ngx_core_module);

    n = ccf->master ? (ngx_uint_t) ccf->worker_processes : 1;

    if (n > NGX_HTTP_MITTE_MAX_WORKERS) {
        ngx_log_error(NGX_LOG_WARN, cycle->log, 0,
                      "mitte: event streams are served by the first %d "
                      "workers only", NGX_HTTP_MITTE_MAX_WORKERS);
        n = NGX_HTTP_MITTE_MAX_WORKERS;
    }

    cln = ngx_pool_cleanup_add(cycle->pool, 0);
    if (cln == NULL) {
        return NGX_ERROR;
    }

    fds = ngx_pcalloc(cycle->pool, sizeof(ngx_http_mitte_sse_fds_t));
    if (fds == NULL) {
        return NGX_ERROR;
    }

    cln->handler = ngx_http_mitte_sse_close_fds;
    cln->data = fds;

    for (i = 0; i < n; i++) {
        fd = eventfd(0, EFD_NONBLOCK|EFD_CLOEXEC);

        if (fd == -1) {
            ngx_log_error(NGX_LOG_EMERG, cycle->log, ngx_errno,
                          "mitte: eventfd() failed");
            return NGX_ERROR;
        }

        fds->fd[i] = fd;
        fds->n = i + 1;

        ngx_http_mitte_sse_fds[i] = fd;
        ngx_http_mitte_sse_nfds = i + 1;
    }

    return NGX_OK;
}


/* the master closes a cycle's eventfds with the cycle */

static void
ngx_http_mitte_sse_close_fds(void *data)
{
    ngx_http_mitte_sse_fds_t  *fds = data;

    ngx_uint_t  i;

    if (ngx_process != NGX_PROCESS_MASTER) {
        return;
    }

    for (i = 0; i < fds->n; i++) {
        (void) close(fds->fd[i]);
    }
}


/* after an event was recorded, without the lock */

void
ngx_http_mitte_sse_wake(ngx_http_mitte_zone_ctx_t *ctx)
{
    ngx_uint_t                i;
    uint64_t                  one;
    ngx_http_mitte_worker_t  *w;

    for (i = 0; i < ngx_http_mitte_sse_nfds; i++) {
        w = &ctx->sh->workers[i];

        if (w->subscribers == 0) {
            continue;
        }

        if (i == ngx_worker) {
            if (ngx_http_mitte_sse_local
                && !ngx_http_mitte_sse_local->posted)
            {
                ngx_post_event(ngx_http_mitte_sse_local, &ngx_posted_events);
            }

            continue;
        }

        if (w->wake || !ngx_atomic_cmp_set(&w->wake, 0, 1)) {
            continue;
        }

        one = 1;

        if (write(ngx_http_mitte_sse_fds[i], &one, sizeof(one)) == -1
            && ngx_errno != NGX_EAGAIN)
        {
            w->wake = 0;
        }
    }
}


/* the streams of this worker: their drain event, NULL when they stop */

void
ngx_http_mitte_sse_wake_local(ngx_event_t *drain)
{
    ngx_http_mitte_sse_local = drain;
}
