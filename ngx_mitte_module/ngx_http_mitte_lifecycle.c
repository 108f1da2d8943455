/*
 * Copyright (C) ngx_mitte_module authors
 *
 * The module's lifecycle, at the top: postconfiguration installs the
 * phase handlers and names the zone's init; the master and each worker
 * start and stop every subsystem from here. Nothing calls into this file
 * but nginx, through the module definition.
 */


#include "ngx_http_mitte_module.h"
#include "ngx_http_mitte_state.h"
#include "ngx_http_mitte_stream.h"
#include "ngx_http_mitte_rules.h"
#include "ngx_http_mitte_send.h"
#include "ngx_http_mitte_redis.h"
#include "ngx_http_mitte_cluster.h"


ngx_int_t
ngx_http_mitte_init(ngx_conf_t *cf)
{
    ngx_uint_t                   i;
    ngx_http_variable_t         *v;
    ngx_http_handler_pt         *h;
    ngx_http_mitte_main_conf_t  *mmcf;
    ngx_http_core_main_conf_t   *cmcf;

    static ngx_str_t  request_id = ngx_string("request_id");

    mmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_mitte_module);

    if (mmcf->shm_zone == NULL) {
        /* not configured: no handlers, no cost per request */
        return NGX_OK;
    }

    /* the zone is made after the configuration is read: its init is here */
    mmcf->shm_zone->init = ngx_http_mitte_init_zone;

    if (mmcf->redis && ngx_http_mitte_redis_postconf(cf, mmcf->redis)
                       != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (mmcf->redis && ngx_http_mitte_lease_conf(cf, mmcf) != NGX_OK) {
        return NGX_ERROR;
    }

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_PRECONTENT_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_mitte_precontent_handler;

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_LOG_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_mitte_log_handler;

    /*
     * whether the configuration uses $request_id (a log format, a header):
     * then every recorded request makes it, as the event's requestId,
     * else only those whose event is written
     */

    v = cmcf->variables.elts;

    for (i = 0; i < cmcf->variables.nelts; i++) {
        if (v[i].name.len == request_id.len
            && ngx_strncmp(v[i].name.data, request_id.data, request_id.len)
               == 0)
        {
            mmcf->request_id_used = 1;
            break;
        }
    }

    mmcf->request_id_index = ngx_http_get_variable_index(cf, &request_id);
    if (mmcf->request_id_index == NGX_ERROR) {
        return NGX_ERROR;
    }

    return NGX_OK;
}


ngx_int_t
ngx_http_mitte_init_module(ngx_cycle_t *cycle)
{
    if (ngx_http_mitte_send_init_module(cycle) != NGX_OK) {
        return NGX_ERROR;
    }

    return ngx_http_mitte_sse_init_module(cycle);
}


ngx_int_t
ngx_http_mitte_init_process(ngx_cycle_t *cycle)
{
    if (ngx_http_mitte_record_init_process(cycle) != NGX_OK) {
        return NGX_ERROR;
    }

    if (ngx_http_mitte_state_init_process(cycle) != NGX_OK) {
        return NGX_ERROR;
    }

    if (ngx_http_mitte_sweep_init_process(cycle) != NGX_OK) {
        return NGX_ERROR;
    }

    if (ngx_http_mitte_send_init_process(cycle) != NGX_OK) {
        return NGX_ERROR;
    }

    if (ngx_http_mitte_sse_init_process(cycle) != NGX_OK) {
        return NGX_ERROR;
    }

    if (ngx_http_mitte_lease_init_process(cycle) != NGX_OK) {
        return NGX_ERROR;
    }

    if (ngx_http_mitte_redis_init_process(cycle) != NGX_OK) {
        return NGX_ERROR;
    }

    if (ngx_http_mitte_prefs_init_process(cycle) != NGX_OK) {
        return NGX_ERROR;
    }

    if (ngx_http_mitte_sync_init_process(cycle) != NGX_OK) {
        return NGX_ERROR;
    }

    return ngx_http_mitte_relay_init_process(cycle);
}


void
ngx_http_mitte_exit_process(ngx_cycle_t *cycle)
{
    ngx_http_mitte_lease_exit_process(cycle);
    ngx_http_mitte_sync_exit_process(cycle);
    ngx_http_mitte_redis_exit_process(cycle);
    ngx_http_mitte_send_exit_process(cycle);
    ngx_http_mitte_sse_exit_process(cycle);
}


void
ngx_http_mitte_exit_master(ngx_cycle_t *cycle)
{
    ngx_http_mitte_state_exit_master(cycle);
}
