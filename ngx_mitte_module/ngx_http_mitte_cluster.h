/*
 * Copyright (C) ngx_mitte_module authors
 *
 * Cluster mode (mitte_redis): what the files that share the zone's state
 * through Redis offer each other. The connection itself is
 * ngx_http_mitte_redis.h.
 */


#ifndef _NGX_HTTP_MITTE_CLUSTER_H_INCLUDED_
#define _NGX_HTTP_MITTE_CLUSTER_H_INCLUDED_


#include "ngx_http_mitte_module.h"
#include "ngx_http_mitte_stream.h"
#include "ngx_http_mitte_redis.h"
#include "mitte_doc.h"

#include <cjson/cJSON.h>


/*
 * a worker's flushes: this soon after an event (ms); the endpoints'
 * counts wait for mitte_redis's flush= (1s by default)
 */
#define NGX_HTTP_MITTE_SYNC_INTERVAL    NGX_HTTP_MITTE_REDIS_FLUSH_MIN

/* endpoints one worker's batch holds (its backlog while Redis is away) */
#define NGX_HTTP_MITTE_SYNC_ENDPOINTS   4096


/*
 * The first slot of a table of 2^bits for a name's hash: the hash's low
 * bits depend on the first bytes of a short name only ("ep-120" and
 * "ep-129" share them), so the slot is taken from the high bits of its
 * product with 2^64 / phi, which depend on every bit.
 */
static ngx_inline ngx_uint_t
ngx_http_mitte_slot(ngx_rbtree_key_t hash, ngx_uint_t bits)
{
    return (ngx_uint_t) (((uint64_t) hash * 0x9e3779b97f4a7c15ULL)
                         >> (64 - bits));
}

/* a stream open somewhere is told to the other instances this often (s) */
#define NGX_HTTP_MITTE_WATCH_TELL       300


/* ngx_http_mitte_sync.c: a worker's deltas and their flush */
ngx_int_t ngx_http_mitte_sync_init_process(ngx_cycle_t *cycle);
void ngx_http_mitte_sync_exit_process(ngx_cycle_t *cycle);
/*
 * With the zone locked, after the delivery is recorded in it: the
 * delivery into this worker's batch; "event" when its event is for the
 * streams (sent with the batch, then read back by every instance).
 * NGX_OK: the cluster has it; NGX_DECLINED: not in cluster mode now, the
 * zone alone decides (notifications, events)
 */
ngx_int_t ngx_http_mitte_sync_delivery(ngx_http_mitte_main_conf_t *mmcf,
    ngx_http_mitte_zone_ctx_t *ctx, ngx_http_mitte_delivery_t *d,
    ngx_http_mitte_endpoint_node_t *en, uint32_t hour, ngx_uint_t event);

/* an endpoint the operator API imported: into Redis, to every instance */
ngx_int_t ngx_http_mitte_sync_endpoint(ngx_http_mitte_main_conf_t *mmcf,
    u_char *slug, size_t len);

/* ngx_http_mitte_relay.c: the cluster's event stream, read into the zone */
ngx_int_t ngx_http_mitte_relay_init_process(ngx_cycle_t *cycle);

/* ngx_http_mitte_notify.c */
ngx_int_t ngx_http_mitte_notify_relay(ngx_http_mitte_main_conf_t *mmcf,
    cJSON *entry, ngx_uint_t route);

/* ngx_http_mitte_notifications.c */
ngx_int_t ngx_http_mitte_notifications_relay(
    ngx_http_mitte_main_conf_t *mmcf, cJSON *entry);

/* the TTL of a user's preferences and meta in Redis, refreshed on write */
#define NGX_HTTP_MITTE_USER_TTL         (400 * 86400)


/*
 * ngx_http_mitte_prefs.c: the relay's entries "p" and "m" applied to this
 * instance's zone, which they lock themselves. Entries (field "j" of the
 * event stream):
 *   {"k":"p","u":"<user>","d":<the stored preferences document>}
 *     ngx_http_mitte_prefs_relay(mmcf, &u, d): d as mitte_prefs.h's
 *     mitte_prefs_store_json() writes it: {"rev","t","inApp","email",
 *     "webhook" (with "secret"),"types"}; applied when its "rev" is
 *     above the zone's (an entry already applied, the instance's own
 *     included, is a no-op).
 *   {"k":"m","u":"<user>","t":<ms>,"plan":"free"|"pro"|"trial",
 *    "trialEndsAt":<unix s>|null,"email":"..."|null}
 *     ngx_http_mitte_user_relay(mmcf, &u, entry): the whole entry; the
 *     fields present are set.
 * Both return NGX_OK (applied, or older than what the zone holds),
 * NGX_DECLINED (the zone is full), or NGX_ERROR for an entry that is not
 * valid (a user of 0 or over 64 bytes, a field missing or out of range):
 * nothing is changed then.
 */
ngx_int_t ngx_http_mitte_prefs_relay(ngx_http_mitte_main_conf_t *mmcf,
    ngx_str_t *user, cJSON *doc);
ngx_int_t ngx_http_mitte_user_relay(ngx_http_mitte_main_conf_t *mmcf,
    ngx_str_t *user, cJSON *entry);

/*
 * Registers the Lua scripts of preferences and users; meant for
 * init_process (until it is called there, the first use registers them
 * and loads them on the connection at hand).
 */
ngx_int_t ngx_http_mitte_prefs_init_process(ngx_cycle_t *cycle);


/*
 * A request waiting for Redis's reply (a content handler's): the record
 * is the Redis command's data, on the heap, so that it outlives a request
 * ended meanwhile (a client gone, worker_shutdown_timeout): the request's
 * cleanup only forgets the request, and the reply frees the record.
 * "handler" gets the reply (as ngx_http_mitte_redis_handler_pt's) while
 * the request lives; it returns NGX_AGAIN when it queued another command
 * with the same record, else the code to finalize the request with.
 */
typedef struct ngx_http_mitte_wait_s  ngx_http_mitte_wait_t;

typedef ngx_int_t (*ngx_http_mitte_wait_pt)(ngx_http_mitte_wait_t *wt,
    redisReply *reply, ngx_uint_t rc);

struct ngx_http_mitte_wait_s {
    ngx_http_request_t         *request;    /* NULL: gone */
    ngx_http_cleanup_t         *cleanup;
    ngx_http_mitte_wait_pt      handler;
    void                       *data;       /* in the request's pool */
};

/* a record for r, NULL on an allocation failure */
ngx_http_mitte_wait_t *ngx_http_mitte_wait_create(ngx_http_request_t *r,
    ngx_http_mitte_wait_pt handler, void *data);
/*
 * after the first command was queued with ngx_http_mitte_wait_reply:
 * the request is held (r->main->count++): the content handler returns
 * NGX_DONE, a body handler calls ngx_http_finalize_request(r, NGX_DONE)
 */
void ngx_http_mitte_wait_begin(ngx_http_mitte_wait_t *wt);
/* when no command could be queued: the record is freed */
void ngx_http_mitte_wait_cancel(ngx_http_mitte_wait_t *wt);
/* the Redis handler to queue commands with (data: the record) */
void ngx_http_mitte_wait_reply(redisReply *reply, void *data, ngx_uint_t rc);

/* EVALSHA of a script of this file's users, registered on first use */
ngx_int_t ngx_http_mitte_cluster_eval(ngx_http_mitte_redis_handler_pt handler,
    void *data, ngx_http_mitte_redis_script_t *script, int argc,
    const char **argv, const size_t *argvlen);

/*
 * cluster mode's trouble with preferences and users, at error level, at
 * most once a minute per worker
 */
void ngx_http_mitte_cluster_log(ngx_log_t *log, const char *fmt, ...);
/* a Redis failure for the log: "timed out", "connection lost", an error */
const char *ngx_http_mitte_cluster_why(redisReply *reply, ngx_uint_t rc);

/*
 * The operator API's users in Redis (ngx_http_mitte_prefs.c):
 * "<prefix>{u:<id>}:meta", a hash of "plan" (free, pro, trial),
 * "trialEndsAt" (unix s, "0": none), "email" ("": none), "t" (ms of the
 * last write), TTL 400 days refreshed on write. _set writes the fields
 * given and replies with the whole hash; _get replies with [the hash,
 * the month's quota use or nil]; both queued with
 * ngx_http_mitte_wait_reply and "wt": NGX_OK when queued.
 */
ngx_int_t ngx_http_mitte_user_meta_set(ngx_http_mitte_wait_t *wt,
    ngx_str_t *id, mitte_user_doc_t *doc);
ngx_int_t ngx_http_mitte_user_meta_get(ngx_http_mitte_wait_t *wt,
    ngx_str_t *id, uint32_t month);
ngx_int_t ngx_http_mitte_user_meta_read(ngx_log_t *log, ngx_str_t *id,
    redisReply *reply, mitte_user_doc_t *doc);
/* the stream entry "m" of the meta in "doc" */
void ngx_http_mitte_user_meta_publish(ngx_http_request_t *r, ngx_str_t *id,
    mitte_user_doc_t *doc);

/* the user's meta (plan, trial end, email) set in the zone */
ngx_int_t ngx_http_mitte_user_apply(ngx_http_mitte_main_conf_t *mmcf,
    ngx_str_t *user, mitte_user_doc_t *doc);



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
#define NGX_HTTP_MITTE_LEASE_METRICS_LEN  2048
u_char *ngx_http_mitte_lease_metrics(u_char *p);


#endif /* _NGX_HTTP_MITTE_CLUSTER_H_INCLUDED_ */
