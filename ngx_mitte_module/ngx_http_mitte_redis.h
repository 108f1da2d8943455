/*
 * Copyright (C) ngx_mitte_module authors
 *
 * Cluster mode's connection to Redis: hiredis's async API on nginx's event
 * loop, one connection per worker (and a second one for blocking reads in
 * the workers that ask for it), and a small command API for the layers
 * that share state through it.
 */


#ifndef _NGX_HTTP_MITTE_REDIS_H_INCLUDED_
#define _NGX_HTTP_MITTE_REDIS_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <hiredis/hiredis.h>


/* how a command ended, for its handler */
#define NGX_HTTP_MITTE_REDIS_REPLY      0   /* a reply: may be an error reply */
#define NGX_HTTP_MITTE_REDIS_LOST       1   /* the connection went first */
#define NGX_HTTP_MITTE_REDIS_TIMEOUT    2   /* no reply within the timeout */

#define NGX_HTTP_MITTE_REDIS_KEY_MAX    512


/*
 * A command's handler: reply is NULL unless rc is NGX_HTTP_MITTE_REDIS_REPLY,
 * and belongs to hiredis (it is freed after the handler returns). After
 * NGX_HTTP_MITTE_REDIS_LOST or _TIMEOUT the command may or may not have run
 * on the server.
 */
typedef void (*ngx_http_mitte_redis_handler_pt)(redisReply *reply, void *data,
    ngx_uint_t rc);

/* called each time this worker's connection becomes ready */
typedef void (*ngx_http_mitte_redis_ready_pt)(void *data);


/* mitte_redis: what the configuration says, resolved */
/* the shortest flush= (ms): the interval of the events' flushes */
#define NGX_HTTP_MITTE_REDIS_FLUSH_MIN  20


typedef struct ngx_http_mitte_redis_conf_s {
    ngx_str_t                   name;       /* as written */
    ngx_str_t                   host;       /* address text, NUL-terminated;
                                               for unix: the path; empty:
                                               a name not found when the
                                               configuration was read */
    ngx_str_t                   hostname;   /* a host name, resolved again
                                               with "resolver"; empty: an
                                               address or a path */
    ngx_resolver_t             *resolver;   /* http{}'s; NULL: none */
    ngx_msec_t                  resolver_timeout;
    ngx_uint_t                  port;       /* 0: a unix socket */
    ngx_uint_t                  db;
    ngx_str_t                   db_text;
    ngx_str_t                   password;   /* empty: no AUTH */
    ngx_str_t                   prefix;
    ngx_msec_t                  timeout;
    ngx_msec_t                  flush;      /* of the endpoints' counts */
    ngx_shm_zone_t             *shm_zone;   /* the workers' shared status */
} ngx_http_mitte_redis_conf_t;


/* the directive's handler is in ngx_http_mitte_module.h, for the table */

/* postconfiguration: the http block's resolver, for a host name */
ngx_int_t ngx_http_mitte_redis_postconf(ngx_conf_t *cf,
    ngx_http_mitte_redis_conf_t *rcf);
ngx_int_t ngx_http_mitte_redis_init_process(ngx_cycle_t *cycle);
void ngx_http_mitte_redis_exit_process(ngx_cycle_t *cycle);

/* NGX_OK when this worker's connection is ready for commands */
ngx_int_t ngx_http_mitte_redis_ready(void);

/*
 * A command, in hiredis's format (%s, %b) or as argv: NGX_OK when queued
 * (the handler is then called exactly once, possibly with an error), or
 * NGX_DECLINED at once when the connection is not ready: nothing waits.
 * Not for SUBSCRIBE, PSUBSCRIBE, SSUBSCRIBE or MONITOR (hiredis calls their
 * callback once a message, the handler is called once): refused with
 * NGX_ERROR. Not for blocking commands (BLPOP, XREAD BLOCK, ...) either:
 * the command timeout would drop the shared connection; they go on the
 * reading connection (ngx_http_mitte_redis_read_argv()).
 */
ngx_int_t ngx_http_mitte_redis_command(ngx_http_mitte_redis_handler_pt handler,
    void *data, const char *fmt, ...);
ngx_int_t ngx_http_mitte_redis_command_argv(
    ngx_http_mitte_redis_handler_pt handler, void *data, int argc,
    const char **argv, const size_t *argvlen);

/*
 * A handler for each connection that becomes ready (at most 8): register
 * it in init_process, in any order; it runs on the event loop, after
 * SELECT, and may issue commands.
 */
ngx_int_t ngx_http_mitte_redis_on_ready(ngx_http_mitte_redis_ready_pt handler,
    void *data);

/*
 * A handler for the start of a graceful shutdown (quit, or the old
 * workers of a reload), at most 8: it runs once, on the event loop, while
 * the first connection is still ready, and may issue commands (a worker's
 * last deltas, its quota lease given back). The connection stays open
 * until the worker exits, and while commands wait for their replies
 * their timer holds the exit, at most the command timeout. Not run when
 * the connection is not ready then, nor on a fast shutdown.
 */
ngx_int_t ngx_http_mitte_redis_on_exit(ngx_http_mitte_redis_ready_pt handler,
    void *data);

/*
 * "<prefix>" followed by fmt (ngx_sprintf's format): the key's length, or
 * 0 when it does not fit or mitte_redis is not configured
 */
size_t ngx_http_mitte_redis_key(u_char *buf, size_t size,
    const char *fmt, ...);

/*
 * A Lua script, run with EVALSHA: registered once (at most 16; again is
 * a no-op), loaded at once when the connection is ready, on every new
 * connection before the on_ready handlers run, and again after a NOSCRIPT
 * reply (that command fails; its caller
 * retries it as any failed command).
 */
typedef struct {
    const char                 *text;
    u_char                      sha[41];    /* hex, NUL-terminated */
} ngx_http_mitte_redis_script_t;

ngx_int_t ngx_http_mitte_redis_script(ngx_http_mitte_redis_script_t *script);

/*
 * EVALSHA: argv holds numkeys, the keys, then the arguments (at most
 * 254 in all); queued as ngx_http_mitte_redis_command_argv() is
 */
ngx_int_t ngx_http_mitte_redis_eval(ngx_http_mitte_redis_handler_pt handler,
    void *data, ngx_http_mitte_redis_script_t *script, int argc,
    const char **argv, const size_t *argvlen);

/*
 * Appends an entry to the cluster's event stream ("<prefix>{events}"),
 * with the id "<event sequence>-*" and one field "j": the text given (a
 * JSON object with a "k" kind). The stream is capped at mitte_sse_replay
 * entries (MAXLEN ~). Queued as ngx_http_mitte_redis_command() is.
 */
ngx_int_t ngx_http_mitte_redis_publish(ngx_http_mitte_redis_handler_pt handler,
    void *data, u_char *text, size_t len);

/*
 * A second connection of this worker, for blocking commands (XREAD BLOCK):
 * asked for in init_process (before or after ngx_http_mitte_redis_init_process
 * runs; the lifecycle calls redis's init_process first), made, handshaken
 * (AUTH, CLIENT SETNAME, SELECT), timed and reconnected with backoff as
 * the first one is.
 * NGX_DECLINED without mitte_redis (or outside a worker), else NGX_OK.
 */
ngx_int_t ngx_http_mitte_redis_reader(void);
/* NGX_OK when the reading connection is ready */
ngx_int_t ngx_http_mitte_redis_read_ready(void);
/*
 * One command on the reading connection (argv form): its timeout is
 * "block" plus mitte_redis's timeout; NGX_DECLINED at once when not ready;
 * the handler is called exactly once, as for ngx_http_mitte_redis_command()
 */
ngx_int_t ngx_http_mitte_redis_read_argv(
    ngx_http_mitte_redis_handler_pt handler, void *data, ngx_msec_t block,
    int argc, const char **argv, const size_t *argvlen);
/* called each time the reading connection becomes ready (at most 8) */
ngx_int_t ngx_http_mitte_redis_read_on_ready(
    ngx_http_mitte_redis_ready_pt handler, void *data);

/*
 * NGX_OK when an error line about Redis may be logged now: the worker's
 * one limit of a line a minute, which both connections share (and
 * marked as used then)
 */
ngx_int_t ngx_http_mitte_redis_may_log(void);

/* "<host>:<master's pid>": this instance's name in Redis; empty: none */
void ngx_http_mitte_redis_instance(ngx_str_t *name);

/* the metrics' lines: at most NGX_HTTP_MITTE_REDIS_METRICS_LEN bytes */
#define NGX_HTTP_MITTE_REDIS_METRICS_LEN  2048
u_char *ngx_http_mitte_redis_metrics(u_char *p,
    ngx_http_mitte_redis_conf_t *rcf);


#endif /* _NGX_HTTP_MITTE_REDIS_H_INCLUDED_ */
