/*
 * Copyright (C) ngx_mitte_module authors
 *
 * Cluster mode's declarations shared between its files (mitte_redis):
 * the quota leases (ngx_http_mitte_lease.c).
 */


#ifndef _NGX_HTTP_MITTE_CLUSTER_H_INCLUDED_
#define _NGX_HTTP_MITTE_CLUSTER_H_INCLUDED_


#include "ngx_http_mitte_module.h"


/* what a worker's lease table says of a request */
typedef enum {
    NGX_HTTP_MITTE_LEASE_PASS = 0,      /* on lease or on credit */
    NGX_HTTP_MITTE_LEASE_LIMIT,         /* the cluster is at the limit */
    NGX_HTTP_MITTE_LEASE_WAIT,          /* no lease, no credit: refused */
    NGX_HTTP_MITTE_LEASE_OFF            /* no lease table: the zone decides */
} ngx_http_mitte_lease_e;


/* postconfiguration, with mitte_redis: the metrics' shared counters */
ngx_int_t ngx_http_mitte_lease_conf(ngx_conf_t *cf,
    ngx_http_mitte_main_conf_t *mmcf);
ngx_int_t ngx_http_mitte_lease_init_process(ngx_cycle_t *cycle);
void ngx_http_mitte_lease_exit_process(ngx_cycle_t *cycle);

/*
 * The quota check of a request in cluster mode, with the zone locked:
 * per-worker memory only. zone_used is the zone's view of the user's
 * cluster-wide use this month (a new table entry starts from it). *ask is
 * set to the entry whose lease call ngx_http_mitte_lease_ask() must send,
 * after the zone is unlocked; NULL: none.
 */
ngx_http_mitte_lease_e ngx_http_mitte_lease_take(
    ngx_http_mitte_main_conf_t *mmcf, ngx_str_t *user, ngx_rbtree_key_t hash,
    uint32_t month, ngx_uint_t limit, ngx_uint_t warn, uint32_t zone_used,
    void **ask);
void ngx_http_mitte_lease_ask(void *entry);

/*
 * A request passed on the zone's count while Redis was not ready: charged
 * to the cluster's count when Redis is back (with the zone locked)
 */
void ngx_http_mitte_lease_fail_open(ngx_rbtree_key_t hash, uint32_t month);

/* the metrics' lines: at most NGX_HTTP_MITTE_LEASE_METRICS_LEN bytes */
#define NGX_HTTP_MITTE_LEASE_METRICS_LEN  1024
u_char *ngx_http_mitte_lease_metrics(u_char *p);


#endif /* _NGX_HTTP_MITTE_CLUSTER_H_INCLUDED_ */
