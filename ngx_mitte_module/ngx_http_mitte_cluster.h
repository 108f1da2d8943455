/*
 * Copyright (C) ngx_mitte_module authors
 *
 * Cluster mode (mitte_redis): what the files share across floors.
 */


#ifndef _NGX_HTTP_MITTE_CLUSTER_H_INCLUDED_
#define _NGX_HTTP_MITTE_CLUSTER_H_INCLUDED_


#include "ngx_http_mitte_module.h"
#include "ngx_http_mitte_redis.h"
#include "mitte_doc.h"

#include <cjson/cJSON.h>


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


#endif /* _NGX_HTTP_MITTE_CLUSTER_H_INCLUDED_ */
