/*
 * Copyright (C) ngx_mitte_module authors
 *
 * Cluster mode's connection to Redis. Every worker holds one connection,
 * and the workers that ask for it (worker 0 of each instance, for the
 * cluster's event stream) a second one for blocking reads, each made
 * with hiredis's async API and driven by nginx's event loop: the
 * socket is wrapped in an ngx_connection_t whose level-triggered read and
 * write events hiredis switches on and off through its ev hooks. hiredis
 * 0.14 has no timers, so the handshake and every command are timed by an
 * nginx timer on the oldest command waiting for its reply; a command that
 * times out fails, and the connection is dropped and made again with
 * backoff (250ms, x2, at most 30s, +-25% jitter). Nothing here blocks.
 * When a graceful shutdown begins, the reading connection is closed; the
 * first one runs the on_exit handlers (the last deltas, the quota lease
 * given back) and stays open until the worker exits: only the timer of
 * commands waiting for their replies holds up the exit, at most the
 * command timeout.
 *
 * On each connection: AUTH (with a password file), CLIENT SETNAME
 * ("mitte:<pid>", "mitte-reader:<pid>"), SELECT; then, on the first one
 * only, the registered scripts' SCRIPT LOAD and the instance heartbeat
 * every 20s. The status the metrics show is kept in a small shared memory
 * zone of its own, written with atomics.
 */


#include "ngx_http_mitte_module.h"
#include "ngx_http_mitte_redis.h"

#include <hiredis/async.h>
#include <openssl/sha.h>

#include "mitte_backoff.h"
#include "mitte_arena.h"


#define NGX_HTTP_MITTE_REDIS_HEARTBEAT      20000
#define NGX_HTTP_MITTE_REDIS_INSTANCE_TTL   60
#define NGX_HTTP_MITTE_REDIS_SET_TTL        120
#define NGX_HTTP_MITTE_REDIS_NREADY      8
#define NGX_HTTP_MITTE_REDIS_NSCRIPTS       16
#define NGX_HTTP_MITTE_REDIS_ARGS           256
#define NGX_HTTP_MITTE_REDIS_PASSWORD_MAX   512
#define NGX_HTTP_MITTE_REDIS_PREFIX_MAX     64
/* replies: the arena's block kept, the reader's buffer kept */
#define NGX_HTTP_MITTE_REDIS_ARENA_KEEP     (1024 * 1024)
#define NGX_HTTP_MITTE_REDIS_READ_KEEP      (256 * 1024)
#define NGX_HTTP_MITTE_REDIS_OBUF_KEEP      (256 * 1024)

/* errors_total's kinds */
#define NGX_HTTP_MITTE_REDIS_ERR_TIMEOUT    0
#define NGX_HTTP_MITTE_REDIS_ERR_REPLY      1
#define NGX_HTTP_MITTE_REDIS_ERR_CONNECTION 2


/* one worker's connection state, as the metrics see it */
typedef struct {
    ngx_atomic_t                pid;
    ngx_atomic_t                up;
} ngx_http_mitte_redis_slot_t;


/* the instance's status, shared by its workers; atomics only */
typedef struct {
    ngx_atomic_t                size;       /* of this struct: the layout */
    ngx_atomic_t                reconnects;
    ngx_atomic_t                errors[3];
    ngx_atomic_t                instances;  /* at the last heartbeat */
    ngx_http_mitte_redis_slot_t slots[NGX_HTTP_MITTE_MAX_WORKERS];
    ngx_http_mitte_redis_slot_t reader;     /* worker 0's reading one */
} ngx_http_mitte_redis_sh_t;


typedef struct {
    ngx_http_mitte_redis_sh_t  *sh;
} ngx_http_mitte_redis_zone_t;


/* a command waiting for its reply */
typedef struct {
    ngx_queue_t                         queue;
    ngx_http_mitte_redis_handler_pt     handler;
    void                               *data;
    ngx_msec_t                          deadline;
    ngx_uint_t                          timedout;
} ngx_http_mitte_redis_cmd_t;

/* commands' records kept for reuse, at most this many */
#define NGX_HTTP_MITTE_REDIS_CMD_KEEP       64


typedef struct {
    ngx_http_mitte_redis_ready_pt       handler;
    void                               *data;
} ngx_http_mitte_redis_ready_t;


typedef struct ngx_http_mitte_redis_worker_s  ngx_http_mitte_redis_worker_t;


/* a handshake command: what its error reply says, and whether it counts */
typedef struct {
    ngx_http_mitte_redis_worker_t      *w;
    const char                         *failed;     /* "AUTH failed" */
    unsigned                            optional:1; /* an error is ignored */
    unsigned                            last:1;     /* its reply: up */
} ngx_http_mitte_redis_step_t;


/*
 * One connection of this worker: the first (commands, scripts, heartbeat)
 * or the reading one (blocking commands), each with its own context,
 * queue, timer, backoff and on_ready handlers
 */
struct ngx_http_mitte_redis_worker_s {
    ngx_http_mitte_redis_conf_t        *conf;
    ngx_http_mitte_redis_sh_t          *sh;
    ngx_log_t                          *log;
    redisAsyncContext                  *ac;
    ngx_queue_t                         commands;   /* oldest first */
    ngx_event_t                         timer;      /* the oldest's */
    ngx_event_t                         retry;
    ngx_event_t                         heartbeat;  /* the first only */
    ngx_resolver_ctx_t                 *resolving;  /* the name, pending */
    mitte_backoff_t                     backoff;
    ngx_uint_t                          attempts;   /* since the last up */
    time_t                             *logged;     /* the worker's: one */
    const char                         *tag;        /* in log lines */
    const char                         *tag_in;
    ngx_http_mitte_redis_step_t         steps[3];   /* AUTH, SETNAME, SELECT */
    u_char                              client[32]; /* the name, for SETNAME */
    size_t                              client_len;
    ngx_uint_t                          nready;
    ngx_http_mitte_redis_ready_t        on_ready[NGX_HTTP_MITTE_REDIS_NREADY];
    ngx_uint_t                          nexit;
    ngx_http_mitte_redis_ready_t        on_exit[NGX_HTTP_MITTE_REDIS_NREADY];
    ngx_uint_t                          nscripts;
    ngx_http_mitte_redis_script_t      *scripts[NGX_HTTP_MITTE_REDIS_NSCRIPTS];
    ngx_uint_t                          maxlen;     /* of the event stream */
    u_char                              instance[NGX_MAXHOSTNAMELEN + 24];
    size_t                              instance_len;
    unsigned                            active:1;
    unsigned                            ready:1;
    unsigned                            was_up:1;
    unsigned                            reader:1;   /* the reading one */
    unsigned                            wanted:1;   /* asked for */
    unsigned                            tried:1;    /* connected once */
    unsigned                            exiting:1;  /* on_exit handlers run */
    u_char                             *out;        /* a command, formatted */
    size_t                              out_size;
    mitte_arena_t                       arena;      /* the reply being read */
};


static char *ngx_http_mitte_redis_param(ngx_conf_t *cf,
    ngx_http_mitte_redis_conf_t *rcf, ngx_str_t *v);
static char *ngx_http_mitte_redis_address(ngx_conf_t *cf,
    ngx_http_mitte_redis_conf_t *rcf, ngx_str_t *v);
static char *ngx_http_mitte_redis_password(ngx_conf_t *cf,
    ngx_http_mitte_redis_conf_t *rcf, ngx_str_t *path);
static ngx_int_t ngx_http_mitte_redis_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
static void ngx_http_mitte_redis_link_init(ngx_http_mitte_redis_worker_t *w,
    ngx_cycle_t *cycle);
static void ngx_http_mitte_redis_reader_start(
    ngx_http_mitte_redis_worker_t *w);
static void ngx_http_mitte_redis_close(ngx_http_mitte_redis_worker_t *w);
static void ngx_http_mitte_redis_connect(ngx_http_mitte_redis_worker_t *w);
static void ngx_http_mitte_redis_resolve(ngx_http_mitte_redis_worker_t *w);
static void ngx_http_mitte_redis_resolved(ngx_resolver_ctx_t *ctx);
static void ngx_http_mitte_redis_unresolved(ngx_http_mitte_redis_worker_t *w,
    const char *why);
static void ngx_http_mitte_redis_open(ngx_http_mitte_redis_worker_t *w);
static ngx_int_t ngx_http_mitte_redis_send_step(
    ngx_http_mitte_redis_worker_t *w, ngx_uint_t i, int argc,
    const char **argv, const size_t *argvlen);
static ngx_int_t ngx_http_mitte_redis_attach(ngx_http_mitte_redis_worker_t *w,
    redisAsyncContext *ac);
static void ngx_http_mitte_redis_add_read(void *privdata);
static void ngx_http_mitte_redis_del_read(void *privdata);
static void ngx_http_mitte_redis_add_write(void *privdata);
static void ngx_http_mitte_redis_del_write(void *privdata);
static void ngx_http_mitte_redis_cleanup(void *privdata);
static void ngx_http_mitte_redis_read_handler(ngx_event_t *rev);
static void ngx_http_mitte_redis_write_handler(ngx_event_t *wev);
static void ngx_http_mitte_redis_shutdown(ngx_http_mitte_redis_worker_t *w,
    ngx_connection_t *c);
static void ngx_http_mitte_redis_handshake(redisReply *reply, void *data,
    ngx_uint_t rc);
static void ngx_http_mitte_redis_up(ngx_http_mitte_redis_worker_t *w);
static void ngx_http_mitte_redis_drop(ngx_http_mitte_redis_worker_t *w,
    const char *why, redisReply *reply);
static void ngx_http_mitte_redis_lost(ngx_http_mitte_redis_worker_t *w,
    const char *why, const char *detail);
static void ngx_http_mitte_redis_retry(ngx_event_t *ev);
static ngx_int_t ngx_http_mitte_redis_ready_add(
    ngx_http_mitte_redis_worker_t *w, ngx_http_mitte_redis_ready_pt handler,
    void *data);
static ngx_http_mitte_redis_cmd_t *ngx_http_mitte_redis_cmd(
    ngx_http_mitte_redis_worker_t *w, ngx_http_mitte_redis_handler_pt handler,
    void *data, ngx_msec_t block);
static void ngx_http_mitte_redis_cmd_done(ngx_http_mitte_redis_cmd_t *cmd);
static ngx_int_t ngx_http_mitte_redis_once(const char *word, size_t len);
static ngx_int_t ngx_http_mitte_redis_queued(ngx_http_mitte_redis_worker_t *w,
    ngx_http_mitte_redis_cmd_t *cmd, int rc);
static void *ngx_http_mitte_redis_new_reply(const redisReadTask *task,
    int type);
static void *ngx_http_mitte_redis_new_string(const redisReadTask *task,
    char *str, size_t len);
static void *ngx_http_mitte_redis_new_array(const redisReadTask *task,
    int elements);
static void *ngx_http_mitte_redis_new_integer(const redisReadTask *task,
    long long value);
static void *ngx_http_mitte_redis_new_nil(const redisReadTask *task);
static void ngx_http_mitte_redis_free_reply(void *reply);
static void ngx_http_mitte_redis_free_read_reply(void *reply);
static int ngx_http_mitte_redis_format(ngx_http_mitte_redis_worker_t *w,
    ngx_http_mitte_redis_cmd_t *cmd, int argc, const char **argv,
    const size_t *argvlen);
static u_char *ngx_http_mitte_redis_resp(u_char *p, u_char type, size_t n);
static ngx_int_t ngx_http_mitte_redis_argv(ngx_http_mitte_redis_worker_t *w,
    ngx_http_mitte_redis_handler_pt handler, void *data, int argc,
    const char **argv, const size_t *argvlen);
static void ngx_http_mitte_redis_reply(redisAsyncContext *ac, void *r,
    void *privdata);
static void ngx_http_mitte_redis_arm(ngx_http_mitte_redis_worker_t *w);
static void ngx_http_mitte_redis_timeout(ngx_event_t *ev);
static void ngx_http_mitte_redis_beat(ngx_event_t *ev);
static void ngx_http_mitte_redis_beat_reply(redisReply *reply, void *data,
    ngx_uint_t rc);
static void ngx_http_mitte_redis_count(ngx_http_mitte_redis_worker_t *w,
    ngx_uint_t kind);
static void ngx_http_mitte_redis_load(ngx_http_mitte_redis_worker_t *w);
static void ngx_http_mitte_redis_loaded(redisReply *reply, void *data,
    ngx_uint_t rc);
static void ngx_http_mitte_redis_slot(ngx_http_mitte_redis_worker_t *w,
    ngx_uint_t up);


static ngx_http_mitte_redis_worker_t  ngx_http_mitte_redis_worker;
static ngx_http_mitte_redis_worker_t  ngx_http_mitte_redis_reader_worker;

static ngx_queue_t  ngx_http_mitte_redis_cmd_free = {
    &ngx_http_mitte_redis_cmd_free, &ngx_http_mitte_redis_cmd_free
};
static ngx_uint_t   ngx_http_mitte_redis_ncmd_free;

/* hiredis's reply objects, in the arena of each connection's worker */
static redisReplyObjectFunctions  ngx_http_mitte_redis_replies = {
    ngx_http_mitte_redis_new_string,
    ngx_http_mitte_redis_new_array,
    ngx_http_mitte_redis_new_integer,
    ngx_http_mitte_redis_new_nil,
    ngx_http_mitte_redis_free_reply
};

static redisReplyObjectFunctions  ngx_http_mitte_redis_read_replies = {
    ngx_http_mitte_redis_new_string,
    ngx_http_mitte_redis_new_array,
    ngx_http_mitte_redis_new_integer,
    ngx_http_mitte_redis_new_nil,
    ngx_http_mitte_redis_free_read_reply
};

/* the last error line of this worker about Redis, either connection */
static time_t  ngx_http_mitte_redis_logged;

/*
 * The address both connections of this worker connect to: mitte_redis's,
 * then the last one the resolver gave (empty: none yet); the line about a
 * failed resolution, at most once a minute; the round-robin's counter
 */
static u_char      ngx_http_mitte_redis_addr[NGX_SOCKADDR_STRLEN + 1];
static time_t      ngx_http_mitte_redis_resolve_logged;
static ngx_uint_t  ngx_http_mitte_redis_rr;


/*
 * The stream's ids are "<event sequence>-<n>": the sequence of the newest
 * event, and Redis's own counter after it, so that every entry, with
 * events or not, orders after those before it.
 */

static ngx_http_mitte_redis_script_t  ngx_http_mitte_redis_publish_script = {
    "local s = redis.call('GET', KEYS[2]) or '0'\n"
    "return redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1],\n"
    "                  s .. '-*', 'j', ARGV[2])\n",
    ""
};

static ngx_str_t  ngx_http_mitte_redis_zone_name =
    ngx_string("mitte_redis_status");


/*
 * mitte_redis host:port | unix:/path [db=n] [password_file=path]
 *     [prefix=mitte:] [timeout=1s] [flush=1s];
 *
 * A host name is resolved here (hiredis would resolve it with a blocking
 * getaddrinfo() in the worker): the workers connect first to its first
 * address. With a "resolver" in the http block, every later attempt
 * resolves the name again through it, asynchronously, and hiredis is
 * given the address it returns. The password file is read here too, with
 * the master's rights.
 */

char *
ngx_http_mitte_redis(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_mitte_main_conf_t *mmcf = conf;

    char                         *rv;
    ngx_str_t                    *value;
    ngx_uint_t                    i;
    ngx_http_mitte_redis_conf_t  *rcf;
    ngx_http_mitte_redis_zone_t  *zone;

    if (mmcf->redis) {
        return "is duplicate";
    }

    if (mmcf->shm_zone == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"mitte_redis\" requires \"mitte_zone\" to be "
                           "set before it in the http block");
        return NGX_CONF_ERROR;
    }

    rcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_mitte_redis_conf_t));
    if (rcf == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_str_set(&rcf->prefix, "mitte:");
    ngx_str_set(&rcf->db_text, "0");
    rcf->timeout = 1000;
    rcf->flush = 1000;

    value = cf->args->elts;

    rv = ngx_http_mitte_redis_address(cf, rcf, &value[1]);
    if (rv != NGX_CONF_OK) {
        return rv;
    }

    for (i = 2; i < cf->args->nelts; i++) {
        rv = ngx_http_mitte_redis_param(cf, rcf, &value[i]);
        if (rv != NGX_CONF_OK) {
            return rv;
        }
    }

    zone = ngx_pcalloc(cf->pool, sizeof(ngx_http_mitte_redis_zone_t));
    if (zone == NULL) {
        return NGX_CONF_ERROR;
    }

    rcf->shm_zone = ngx_shared_memory_add(cf, &ngx_http_mitte_redis_zone_name,
                                          8 * ngx_pagesize,
                                          &ngx_http_mitte_module);
    if (rcf->shm_zone == NULL) {
        return NGX_CONF_ERROR;
    }

    if (rcf->shm_zone->data) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "zone \"%V\" is already used: give "
                           "\"mitte_zone\" another name",
                           &ngx_http_mitte_redis_zone_name);
        return NGX_CONF_ERROR;
    }

    rcf->shm_zone->init = ngx_http_mitte_redis_init_zone;
    rcf->shm_zone->data = zone;

    mmcf->redis = rcf;

    return NGX_CONF_OK;
}


static char *
ngx_http_mitte_redis_address(ngx_conf_t *cf, ngx_http_mitte_redis_conf_t *rcf,
    ngx_str_t *v)
{
    u_char     *p;
    ngx_url_t   u;

    rcf->name = *v;

    if (v->len >= 5 && ngx_strncmp(v->data, "unix:", 5) == 0) {

        if (v->len == 5 || v->len - 5 >= 108) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid address \"%V\" in \"mitte_redis\", "
                               "expected unix:/path/to/socket", v);
            return NGX_CONF_ERROR;
        }

        rcf->host.len = v->len - 5;
        rcf->host.data = ngx_pnalloc(cf->pool, rcf->host.len + 1);
        if (rcf->host.data == NULL) {
            return NGX_CONF_ERROR;
        }

        p = ngx_cpymem(rcf->host.data, v->data + 5, rcf->host.len);
        *p = '\0';

        return NGX_CONF_OK;
    }

    ngx_memzero(&u, sizeof(ngx_url_t));

    u.url = *v;
    u.default_port = 6379;
    u.no_resolve = 1;

    if (ngx_parse_url(cf->pool, &u) != NGX_OK) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid address \"%V\" in \"mitte_redis\": %s",
                           v, u.err ? u.err : "no address");
        return NGX_CONF_ERROR;
    }

    if (u.family == AF_UNIX || u.uri.len) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid address \"%V\" in \"mitte_redis\", "
                           "expected host:port or unix:/path", v);
        return NGX_CONF_ERROR;
    }

    rcf->port = u.port;

    if (rcf->port == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid address \"%V\" in \"mitte_redis\": "
                           "port 0", v);
        return NGX_CONF_ERROR;
    }

    rcf->host.data = ngx_pnalloc(cf->pool, NGX_SOCKADDR_STRLEN + 1);
    if (rcf->host.data == NULL) {
        return NGX_CONF_ERROR;
    }

    if (u.naddrs == 0) {

        /*
         * A name: kept, for the workers' "resolver" (ngx_http_mitte_module.c
         * looks for one once the http block is read), and resolved here
         * too; one not found is an error there unless "resolver" is set.
         */

        rcf->hostname.data = ngx_pnalloc(cf->pool, u.host.len + 1);
        if (rcf->hostname.data == NULL) {
            return NGX_CONF_ERROR;
        }

        rcf->hostname.len = u.host.len;
        p = ngx_cpymem(rcf->hostname.data, u.host.data, u.host.len);
        *p = '\0';

        if (ngx_inet_resolve_host(cf->pool, &u) != NGX_OK || u.naddrs == 0)
        {
            rcf->host.len = 0;
            rcf->host.data[0] = '\0';
            return NGX_CONF_OK;
        }
    }

    rcf->host.len = ngx_sock_ntop(u.addrs[0].sockaddr, u.addrs[0].socklen,
                                  rcf->host.data, NGX_SOCKADDR_STRLEN, 0);
    rcf->host.data[rcf->host.len] = '\0';

    return NGX_CONF_OK;
}


static char *
ngx_http_mitte_redis_param(ngx_conf_t *cf, ngx_http_mitte_redis_conf_t *rcf,
    ngx_str_t *v)
{
    u_char     *p;
    ngx_int_t   n;
    ngx_str_t   s;

    if (v->len > 3 && ngx_strncmp(v->data, "db=", 3) == 0) {
        s.data = v->data + 3;
        s.len = v->len - 3;

        n = ngx_atoi(s.data, s.len);

        if (n == NGX_ERROR || n > 1000000) {
            goto invalid;
        }

        rcf->db = n;
        rcf->db_text = s;

        return NGX_CONF_OK;
    }

    if (v->len > 14 && ngx_strncmp(v->data, "password_file=", 14) == 0) {
        s.data = v->data + 14;
        s.len = v->len - 14;

        return ngx_http_mitte_redis_password(cf, rcf, &s);
    }

    if (v->len >= 7 && ngx_strncmp(v->data, "prefix=", 7) == 0) {
        s.data = v->data + 7;
        s.len = v->len - 7;

        if (s.len == 0 || s.len > NGX_HTTP_MITTE_REDIS_PREFIX_MAX) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid prefix \"%V\" in \"mitte_redis\", "
                               "expected 1 to %d bytes", &s,
                               NGX_HTTP_MITTE_REDIS_PREFIX_MAX);
            return NGX_CONF_ERROR;
        }

        for (p = s.data; p < s.data + s.len; p++) {
            if (*p <= ' ' || *p == 0x7f || *p == '{' || *p == '}') {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid prefix \"%V\" in "
                                   "\"mitte_redis\": no spaces, control "
                                   "characters or braces", &s);
                return NGX_CONF_ERROR;
            }
        }

        rcf->prefix = s;

        return NGX_CONF_OK;
    }

    if (v->len > 8 && ngx_strncmp(v->data, "timeout=", 8) == 0) {
        s.data = v->data + 8;
        s.len = v->len - 8;

        rcf->timeout = ngx_parse_time(&s, 0);

        if (rcf->timeout == (ngx_msec_t) NGX_ERROR
            || rcf->timeout < 100 || rcf->timeout > 60000)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid timeout \"%V\" in \"mitte_redis\", "
                               "expected 100ms to 60s", &s);
            return NGX_CONF_ERROR;
        }

        return NGX_CONF_OK;
    }

    if (v->len > 6 && ngx_strncmp(v->data, "flush=", 6) == 0) {
        s.data = v->data + 6;
        s.len = v->len - 6;

        rcf->flush = ngx_parse_time(&s, 0);

        if (rcf->flush == (ngx_msec_t) NGX_ERROR
            || rcf->flush < NGX_HTTP_MITTE_REDIS_FLUSH_MIN
            || rcf->flush > 10000)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid flush \"%V\" in \"mitte_redis\", "
                               "expected %dms to 10s", &s,
                               NGX_HTTP_MITTE_REDIS_FLUSH_MIN);
            return NGX_CONF_ERROR;
        }

        return NGX_CONF_OK;
    }

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid parameter \"%V\" in \"mitte_redis\", "
                       "expected db=n, password_file=path, prefix=text, "
                       "timeout=time or flush=time", v);

    return NGX_CONF_ERROR;
}


/* the password: the first line of the file, without trailing blanks */

static char *
ngx_http_mitte_redis_password(ngx_conf_t *cf,
    ngx_http_mitte_redis_conf_t *rcf, ngx_str_t *path)
{
    u_char      *p, *last, buf[NGX_HTTP_MITTE_REDIS_PASSWORD_MAX + 1];
    ssize_t      n;
    ngx_fd_t     fd;
    ngx_str_t    name;
    ngx_file_t   file;

    name = *path;

    if (ngx_conf_full_name(cf->cycle, &name, 1) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    fd = ngx_open_file(name.data, NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);

    if (fd == NGX_INVALID_FILE) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           "password file \"%V\" of \"mitte_redis\" cannot "
                           "be opened", &name);
        return NGX_CONF_ERROR;
    }

    ngx_memzero(&file, sizeof(ngx_file_t));
    file.fd = fd;
    file.name = name;
    file.log = cf->log;

    n = ngx_read_file(&file, buf, sizeof(buf), 0);

    if (ngx_close_file(fd) == NGX_FILE_ERROR) {
        ngx_conf_log_error(NGX_LOG_ALERT, cf, ngx_errno,
                           ngx_close_file_n " \"%V\" failed", &name);
    }

    if (n == NGX_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "password file \"%V\" of \"mitte_redis\" cannot "
                           "be read", &name);
        return NGX_CONF_ERROR;
    }

    last = buf + n;

    for (p = buf; p < last && *p != CR && *p != LF; p++) {
        /* void */
    }

    if (p == last && n == (ssize_t) sizeof(buf)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "password file \"%V\" of \"mitte_redis\": the "
                           "first line is longer than %d bytes", &name,
                           NGX_HTTP_MITTE_REDIS_PASSWORD_MAX);
        return NGX_CONF_ERROR;
    }

    while (p > buf && (p[-1] == ' ' || p[-1] == '\t')) {
        p--;
    }

    if (p == buf) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "password file \"%V\" of \"mitte_redis\" holds "
                           "no password on its first line", &name);
        return NGX_CONF_ERROR;
    }

    rcf->password.len = p - buf;
    rcf->password.data = ngx_pnalloc(cf->pool, rcf->password.len);
    if (rcf->password.data == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memcpy(rcf->password.data, buf, rcf->password.len);
    ngx_explicit_memzero(buf, sizeof(buf));

    return NGX_CONF_OK;
}


/*
 * mitte_redis with a host name: the http block's "resolver" (the one set
 * in http{}; a server's or a location's is not seen here), which the
 * workers use to resolve the name again on each reconnection. Without
 * one, the address found now is kept until a reload. Postconfiguration,
 * when the http block is read whole.
 */

ngx_int_t
ngx_http_mitte_redis_postconf(ngx_conf_t *cf,
    ngx_http_mitte_redis_conf_t *rcf)
{
    ngx_http_core_loc_conf_t  *clcf;

    if (rcf->hostname.len == 0) {
        return NGX_OK;
    }

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    /* without "resolver", the merge may have left an empty one here */

    if (clcf->resolver == NULL || clcf->resolver->connections.nelts == 0) {

        if (rcf->host.len == 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "host not found in \"mitte_redis\" \"%V\" "
                               "(set \"resolver\" in the http block to "
                               "resolve it in the workers)", &rcf->name);
            return NGX_ERROR;
        }

        ngx_conf_log_error(NGX_LOG_NOTICE, cf, 0,
                           "\"mitte_redis\" \"%V\" names a host, resolved "
                           "once, to %V: without \"resolver\" in the http "
                           "block, a change of its address (a failover by "
                           "DNS) needs a reload", &rcf->name, &rcf->host);
        return NGX_OK;
    }

    rcf->resolver = clcf->resolver;

    /* the http block's own value is never merged: 30s, nginx's default */
    rcf->resolver_timeout = (clcf->resolver_timeout == NGX_CONF_UNSET_MSEC)
                            ? 30000 : clcf->resolver_timeout;

    if (rcf->host.len == 0) {
        ngx_conf_log_error(NGX_LOG_WARN, cf, 0,
                           "host not found in \"mitte_redis\" \"%V\" now: "
                           "the workers resolve it with \"resolver\"",
                           &rcf->name);
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_mitte_redis_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_http_mitte_redis_zone_t  *ozone = data;

    ngx_slab_pool_t              *shpool;
    ngx_http_mitte_redis_zone_t  *zone;

    zone = shm_zone->data;
    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (ozone) {
        zone->sh = ozone->sh;

    } else if (shm_zone->shm.exists) {
        zone->sh = shpool->data;
    }

    /*
     * A reload keeps the counters; a module of another layout (a reload
     * after an upgrade) starts a struct of its own in the same zone, and
     * the old workers keep theirs.
     */

    if (zone->sh && zone->sh->size == sizeof(ngx_http_mitte_redis_sh_t)) {
        return NGX_OK;
    }

    zone->sh = ngx_slab_calloc(shpool, sizeof(ngx_http_mitte_redis_sh_t));
    if (zone->sh == NULL) {
        return NGX_ERROR;
    }

    zone->sh->size = sizeof(ngx_http_mitte_redis_sh_t);
    shpool->data = zone->sh;

    return NGX_OK;
}


/* every worker connects: each will flush its own deltas */

ngx_int_t
ngx_http_mitte_redis_init_process(ngx_cycle_t *cycle)
{
    u_char                          *p;
    ngx_pid_t                        master;
    ngx_http_mitte_redis_zone_t     *zone;
    ngx_http_mitte_main_conf_t      *mmcf;
    ngx_http_mitte_redis_worker_t   *w;

    if (ngx_process != NGX_PROCESS_WORKER
        && ngx_process != NGX_PROCESS_SINGLE)
    {
        return NGX_OK;
    }

    mmcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_mitte_module);

    if (mmcf == NULL || mmcf->redis == NULL) {
        return NGX_OK;
    }

    w = &ngx_http_mitte_redis_worker;

    zone = mmcf->redis->shm_zone->data;

    w->conf = mmcf->redis;
    w->sh = zone->sh;
    w->maxlen = mmcf->sse_replay;
    w->tag = "";
    w->tag_in = "";

    ngx_http_mitte_redis_link_init(w, cycle);

    w->heartbeat.handler = ngx_http_mitte_redis_beat;
    w->heartbeat.data = w;
    w->heartbeat.log = cycle->log;
    w->heartbeat.cancelable = 1;

    /* the instance: this host and the master, which a reload keeps */

    master = (ngx_process == NGX_PROCESS_WORKER) ? getppid() : ngx_pid;

    p = ngx_snprintf(w->instance, sizeof(w->instance), "%V:%P",
                     &cycle->hostname, master);
    w->instance_len = p - w->instance;

    if (ngx_worker < NGX_HTTP_MITTE_MAX_WORKERS) {
        /* the slot is this worker's now, not its predecessor's */
        w->sh->slots[ngx_worker].pid = (ngx_atomic_uint_t) ngx_pid;
        w->sh->slots[ngx_worker].up = 0;
    }

    w->active = 1;

    (void) ngx_cpystrn(ngx_http_mitte_redis_addr, w->conf->host.data,
                       sizeof(ngx_http_mitte_redis_addr));

    (void) ngx_http_mitte_redis_script(&ngx_http_mitte_redis_publish_script);

    ngx_http_mitte_redis_connect(w);

    if (ngx_http_mitte_redis_reader_worker.wanted) {
        /* asked for before this ran */
        ngx_http_mitte_redis_reader_start(&ngx_http_mitte_redis_reader_worker);
    }

    return NGX_OK;
}


/* what both connections start with; the name is "mitte[-reader]:<pid>" */

static void
ngx_http_mitte_redis_link_init(ngx_http_mitte_redis_worker_t *w,
    ngx_cycle_t *cycle)
{
    ngx_uint_t  i;

    static const char  *failed[] = {
        "AUTH failed", "CLIENT SETNAME failed", "SELECT failed"
    };

    w->log = cycle->log;
    w->logged = &ngx_http_mitte_redis_logged;
    mitte_backoff_reset(&w->backoff);

    ngx_queue_init(&w->commands);
    mitte_arena_init(&w->arena, NGX_HTTP_MITTE_REDIS_ARENA_KEEP);

    w->timer.handler = ngx_http_mitte_redis_timeout;
    w->timer.data = w;
    w->timer.log = cycle->log;
    w->timer.cancelable = 1;

    w->retry.handler = ngx_http_mitte_redis_retry;
    w->retry.data = w;
    w->retry.log = cycle->log;
    w->retry.cancelable = 1;

    for (i = 0; i < 3; i++) {
        w->steps[i].w = w;
        w->steps[i].failed = failed[i];
        w->steps[i].optional = (i == 1);
        w->steps[i].last = (i == 2);
    }

    w->client_len = ngx_snprintf(w->client, sizeof(w->client), "mitte%s:%P",
                                 w->reader ? "-reader" : "", ngx_pid)
                    - w->client;
}


/*
 * The reading connection: started at once when the first one is (its
 * configuration and status are the first one's), else when it is
 */

ngx_int_t
ngx_http_mitte_redis_reader(void)
{
    ngx_http_mitte_main_conf_t     *mmcf;
    ngx_http_mitte_redis_worker_t  *r;

    if (ngx_process != NGX_PROCESS_WORKER
        && ngx_process != NGX_PROCESS_SINGLE)
    {
        return NGX_DECLINED;
    }

    mmcf = ngx_http_cycle_get_module_main_conf(ngx_cycle,
                                               ngx_http_mitte_module);

    if (mmcf == NULL || mmcf->redis == NULL) {
        return NGX_DECLINED;
    }

    r = &ngx_http_mitte_redis_reader_worker;

    if (r->wanted) {
        return NGX_OK;
    }

    r->wanted = 1;

    if (ngx_http_mitte_redis_worker.active) {
        ngx_http_mitte_redis_reader_start(r);
    }

    return NGX_OK;
}


static void
ngx_http_mitte_redis_reader_start(ngx_http_mitte_redis_worker_t *r)
{
    ngx_http_mitte_redis_worker_t  *w;

    w = &ngx_http_mitte_redis_worker;

    r->conf = w->conf;
    r->sh = w->sh;
    r->reader = 1;
    r->tag = " (reading connection)";
    r->tag_in = "reading connection; ";

    ngx_http_mitte_redis_link_init(r, (ngx_cycle_t *) ngx_cycle);

    if (ngx_worker == 0) {
        /* the metrics show worker 0's */
        r->sh->reader.pid = (ngx_atomic_uint_t) ngx_pid;
        r->sh->reader.up = 0;
    }

    r->active = 1;

    ngx_http_mitte_redis_connect(r);
}


void
ngx_http_mitte_redis_exit_process(ngx_cycle_t *cycle)
{
    ngx_queue_t  *q;

    ngx_http_mitte_redis_close(&ngx_http_mitte_redis_reader_worker);
    ngx_http_mitte_redis_close(&ngx_http_mitte_redis_worker);

    while (!ngx_queue_empty(&ngx_http_mitte_redis_cmd_free)) {
        q = ngx_queue_head(&ngx_http_mitte_redis_cmd_free);
        ngx_queue_remove(q);
        ngx_free(ngx_queue_data(q, ngx_http_mitte_redis_cmd_t, queue));
    }

    ngx_http_mitte_redis_ncmd_free = 0;
}


static void
ngx_http_mitte_redis_close(ngx_http_mitte_redis_worker_t *w)
{
    if (!w->active) {
        return;
    }

    /* no reconnection from here on */
    w->active = 0;

    if (w->resolving) {
        /* its timer would not hold up the exit, but its memory is ours */
        ngx_resolve_name_done(w->resolving);
        w->resolving = NULL;
    }

    ngx_http_mitte_redis_drop(w, NULL, NULL);

    if (w->retry.timer_set) {
        ngx_del_timer(&w->retry);
    }

    if (w->out) {
        ngx_free(w->out);
        w->out = NULL;
        w->out_size = 0;
    }

    mitte_arena_free(&w->arena);
}


ngx_int_t
ngx_http_mitte_redis_ready(void)
{
    return ngx_http_mitte_redis_worker.ready ? NGX_OK : NGX_DECLINED;
}


ngx_int_t
ngx_http_mitte_redis_read_ready(void)
{
    return ngx_http_mitte_redis_reader_worker.ready ? NGX_OK : NGX_DECLINED;
}


/*
 * A connection's first attempt goes to the address found when the
 * configuration was read; with a "resolver", every later one (after a
 * loss, or a failed attempt) resolves the name first, and so does the
 * first when the name was not found then.
 */

static void
ngx_http_mitte_redis_connect(ngx_http_mitte_redis_worker_t *w)
{
    ngx_uint_t  first;

    first = !w->tried;
    w->tried = 1;

    if (w->conf->resolver
        && (!first || ngx_http_mitte_redis_addr[0] == '\0'))
    {
        ngx_http_mitte_redis_resolve(w);
        return;
    }

    ngx_http_mitte_redis_open(w);
}


/* nginx's resolver: asynchronous, with the http block's resolver_timeout */

static void
ngx_http_mitte_redis_resolve(ngx_http_mitte_redis_worker_t *w)
{
    ngx_resolver_ctx_t           *ctx;
    ngx_http_mitte_redis_conf_t  *rcf;

    rcf = w->conf;

    ctx = ngx_resolve_start(rcf->resolver, NULL);

    if (ctx == NULL || ctx == NGX_NO_RESOLVER) {
        ngx_http_mitte_redis_unresolved(w, "cannot start a resolution");
        ngx_http_mitte_redis_open(w);
        return;
    }

    ctx->name = rcf->hostname;
    ctx->handler = ngx_http_mitte_redis_resolved;
    ctx->data = w;
    ctx->timeout = rcf->resolver_timeout;

    /* its timer does not hold up a graceful shutdown */
    ctx->cancelable = 1;

    w->resolving = ctx;

    /* the handler may run before this returns (a cached answer) */

    if (ngx_resolve_name(ctx) != NGX_OK) {
        /* ctx is freed */
        w->resolving = NULL;
        ngx_http_mitte_redis_unresolved(w, "cannot start a resolution");
        ngx_http_mitte_redis_open(w);
    }
}


/*
 * The answer: its addresses taken in turn, one each attempt (a name with
 * several tries them all); none, or no answer within resolver_timeout:
 * the last address known.
 */

static void
ngx_http_mitte_redis_resolved(ngx_resolver_ctx_t *ctx)
{
    u_char                          text[NGX_SOCKADDR_STRLEN + 1];
    size_t                          len;
    ngx_resolver_addr_t            *a;
    ngx_http_mitte_redis_worker_t  *w;

    w = ctx->data;
    w->resolving = NULL;

    if (ctx->state == NGX_OK && ctx->naddrs > 0) {
        a = &ctx->addrs[ngx_http_mitte_redis_rr++ % ctx->naddrs];

        len = ngx_sock_ntop(a->sockaddr, a->socklen, text,
                            NGX_SOCKADDR_STRLEN, 0);
        text[len] = '\0';

        if (ngx_strcmp(text, ngx_http_mitte_redis_addr) != 0) {
            ngx_log_error(NGX_LOG_NOTICE, w->log, 0,
                          "mitte: redis \"%V\": \"%V\" resolves to %s now "
                          "(%s before)", &w->conf->name, &w->conf->hostname,
                          text, ngx_http_mitte_redis_addr[0]
                                ? (char *) ngx_http_mitte_redis_addr
                                : "none");

            ngx_memcpy(ngx_http_mitte_redis_addr, text, len + 1);
        }

    } else {
        ngx_http_mitte_redis_unresolved(w, (ctx->state == NGX_OK)
                                           ? "no address"
                                           : ngx_resolver_strerror(ctx->state));
    }

    ngx_resolve_name_done(ctx);

    if (!w->active || ngx_exiting || ngx_quit || ngx_terminate) {
        return;
    }

    ngx_http_mitte_redis_open(w);
}


static void
ngx_http_mitte_redis_unresolved(ngx_http_mitte_redis_worker_t *w,
    const char *why)
{
    if (ngx_time() - ngx_http_mitte_redis_resolve_logged < 60) {
        return;
    }

    ngx_http_mitte_redis_resolve_logged = ngx_time();

    ngx_log_error(NGX_LOG_ERR, w->log, 0,
                  "mitte: redis \"%V\": cannot resolve \"%V\": %s; "
                  "connecting to the last address known, %s (logged at "
                  "most once a minute)", &w->conf->name, &w->conf->hostname,
                  why, ngx_http_mitte_redis_addr[0]
                       ? (char *) ngx_http_mitte_redis_addr : "none yet");
}


/* the connection itself, to the address known */

static void
ngx_http_mitte_redis_open(ngx_http_mitte_redis_worker_t *w)
{
    sds                           buf;
    const char                   *argv[3];
    size_t                        argvlen[3];
    redisAsyncContext            *ac;
    ngx_http_mitte_redis_conf_t  *rcf;

    rcf = w->conf;
    w->attempts++;

    /* an address or a path: hiredis resolves nothing, connect() is async */

    if (rcf->port && ngx_http_mitte_redis_addr[0] == '\0') {
        /* a name never resolved yet */
        ngx_http_mitte_redis_lost(w, "no address known for the name", NULL);
        return;
    }

    if (rcf->port) {
        ac = redisAsyncConnect((char *) ngx_http_mitte_redis_addr,
                               (int) rcf->port);

    } else {
        ac = redisAsyncConnectUnix((char *) rcf->host.data);
    }

    if (ac == NULL) {
        ngx_http_mitte_redis_lost(w, "cannot allocate a connection", NULL);
        return;
    }

    if (ac->err) {
        ngx_http_mitte_redis_count(w, NGX_HTTP_MITTE_REDIS_ERR_CONNECTION);
        ngx_http_mitte_redis_lost(w, "connect() failed", ac->errstr);
        redisAsyncFree(ac);
        return;
    }

    if (ngx_http_mitte_redis_attach(w, ac) != NGX_OK) {
        ngx_http_mitte_redis_lost(w, "cannot register the connection",
                                  NULL);
        redisAsyncFree(ac);
        return;
    }

    w->ac = ac;

    /* replies built in the worker's arena, the read buffer kept */
    ac->c.reader->fn = w->reader ? &ngx_http_mitte_redis_read_replies
                                 : &ngx_http_mitte_redis_replies;
    (void) redisReaderSetPrivdata(ac->c.reader, &w->arena);
    ac->c.reader->maxbuf = NGX_HTTP_MITTE_REDIS_READ_KEEP;

    /*
     * the buffers kept grown to their kept size at once: grown step by
     * step later, amid the requests' allocations, each step would leave
     * its old buffer as a hole in the heap (the reading connection reads
     * the large replies, the other one writes the large commands)
     */

    if (w->reader) {
        buf = sdsMakeRoomFor(ac->c.reader->buf,
                             NGX_HTTP_MITTE_REDIS_READ_KEEP / 2 - 64);
        if (buf) {
            ac->c.reader->buf = buf;
        }

    } else {
        buf = sdsMakeRoomFor(ac->c.obuf,
                             NGX_HTTP_MITTE_REDIS_OBUF_KEEP / 2 - 64);
        if (buf) {
            ac->c.obuf = buf;
        }
    }

    /* the handshake, sent once connect() ends; timed as commands are */

    if (rcf->password.len) {
        argv[0] = "AUTH";
        argvlen[0] = 4;
        argv[1] = (const char *) rcf->password.data;
        argvlen[1] = rcf->password.len;

        if (ngx_http_mitte_redis_send_step(w, 0, 2, argv, argvlen) != NGX_OK)
        {
            return;
        }
    }

    /* the client's name, for operators (CLIENT LIST) */

    argv[0] = "CLIENT";
    argvlen[0] = 6;
    argv[1] = "SETNAME";
    argvlen[1] = 7;
    argv[2] = (const char *) w->client;
    argvlen[2] = w->client_len;

    if (ngx_http_mitte_redis_send_step(w, 1, 3, argv, argvlen) != NGX_OK) {
        return;
    }

    argv[0] = "SELECT";
    argvlen[0] = 6;
    argv[1] = (const char *) rcf->db_text.data;
    argvlen[1] = rcf->db_text.len;

    (void) ngx_http_mitte_redis_send_step(w, 2, 2, argv, argvlen);
}


static ngx_int_t
ngx_http_mitte_redis_send_step(ngx_http_mitte_redis_worker_t *w,
    ngx_uint_t i, int argc, const char **argv, const size_t *argvlen)
{
    if (ngx_http_mitte_redis_argv(w, ngx_http_mitte_redis_handshake,
                                  &w->steps[i], argc, argv, argvlen)
        == NGX_OK)
    {
        return NGX_OK;
    }

    ngx_http_mitte_redis_drop(w, "cannot send the handshake", NULL);

    return NGX_ERROR;
}


/* the socket as an nginx connection, and hiredis's hooks onto its events */

static ngx_int_t
ngx_http_mitte_redis_attach(ngx_http_mitte_redis_worker_t *w,
    redisAsyncContext *ac)
{
    ngx_connection_t  *c;

    c = ngx_get_connection(ac->c.fd, w->log);
    if (c == NULL) {
        return NGX_ERROR;
    }

    c->data = ac;
    ac->data = w;
    c->read->handler = ngx_http_mitte_redis_read_handler;
    c->write->handler = ngx_http_mitte_redis_write_handler;
    c->read->log = w->log;
    c->write->log = w->log;

    /*
     * "idle": when a graceful shutdown (quit, reload) begins, nginx calls
     * the read handler with c->close set, and the connection is closed
     * then, not when the worker's last request ends
     */
    c->idle = 1;

    ac->ev.data = c;
    ac->ev.addRead = ngx_http_mitte_redis_add_read;
    ac->ev.delRead = ngx_http_mitte_redis_del_read;
    ac->ev.addWrite = ngx_http_mitte_redis_add_write;
    ac->ev.delWrite = ngx_http_mitte_redis_del_write;
    ac->ev.cleanup = ngx_http_mitte_redis_cleanup;

    /* connect() in progress: writable when it ends, either way */
    ngx_http_mitte_redis_add_write(c);

    return NGX_OK;
}


/*
 * Level-triggered events: hiredis reads at most 16 KB a call, and nginx
 * calls the handler again while bytes remain, so nothing is left unread
 * (edge-triggered events would need a read loop until EAGAIN).
 */

static void
ngx_http_mitte_redis_add_read(void *privdata)
{
    ngx_connection_t  *c = privdata;

    if (!c->read->active
        && ngx_add_event(c->read, NGX_READ_EVENT, 0) != NGX_OK)
    {
        ngx_log_error(NGX_LOG_ALERT, c->log, 0,
                      "mitte: redis: cannot add a read event");
    }
}


static void
ngx_http_mitte_redis_del_read(void *privdata)
{
    ngx_connection_t  *c = privdata;

    if (c->read->active) {
        ngx_del_event(c->read, NGX_READ_EVENT, 0);
    }
}


static void
ngx_http_mitte_redis_add_write(void *privdata)
{
    ngx_connection_t  *c = privdata;

    if (!c->write->active
        && ngx_add_event(c->write, NGX_WRITE_EVENT, 0) != NGX_OK)
    {
        ngx_log_error(NGX_LOG_ALERT, c->log, 0,
                      "mitte: redis: cannot add a write event");
    }
}


static void
ngx_http_mitte_redis_del_write(void *privdata)
{
    ngx_connection_t  *c = privdata;

    if (c->write->active) {
        ngx_del_event(c->write, NGX_WRITE_EVENT, 0);
    }
}


/*
 * hiredis frees the context: on our drop, or on its own when the server
 * closed the connection, a read or write failed, or connect() did. The
 * socket is closed by hiredis right after this.
 */

static void
ngx_http_mitte_redis_cleanup(void *privdata)
{
    ngx_connection_t  *c = privdata;

    redisAsyncContext              *ac;
    ngx_http_mitte_redis_worker_t  *w;

    ac = c->data;
    w = ac->data;

    ngx_http_mitte_redis_del_read(c);
    ngx_http_mitte_redis_del_write(c);

    if (c->read->posted) {
        ngx_delete_posted_event(c->read);
    }

    if (c->write->posted) {
        ngx_delete_posted_event(c->write);
    }

    ngx_free_connection(c);
    c->fd = (ngx_socket_t) -1;

    ac->ev.data = NULL;
    ac->ev.addRead = NULL;
    ac->ev.delRead = NULL;
    ac->ev.addWrite = NULL;
    ac->ev.delWrite = NULL;

    if (w->ac == ac) {
        /* not ours: hiredis gave up on it */
        w->ac = NULL;
        ngx_http_mitte_redis_count(w, NGX_HTTP_MITTE_REDIS_ERR_CONNECTION);
        ngx_http_mitte_redis_lost(w, w->ready ? "connection lost"
                                              : "cannot connect",
                                  ac->err ? ac->errstr : NULL);
    }
}


static void
ngx_http_mitte_redis_read_handler(ngx_event_t *rev)
{
    ngx_connection_t  *c = rev->data;

    redisAsyncContext  *ac;

    ac = c->data;

    if (c->close) {
        ngx_http_mitte_redis_shutdown(ac->data, c);
        return;
    }

    /* may free the context and the connection */
    redisAsyncHandleRead(c->data);
}


/*
 * hiredis frees its output buffer whenever it has written all of it, and
 * grows a new one for the next command: a flush every 20 ms would make
 * and free a buffer of its size each time. A connected context's buffer
 * is written here first and emptied in place, so that it stays (up to
 * NGX_HTTP_MITTE_REDIS_OBUF_KEEP); hiredis's write then finds it empty
 * and only switches the events. A write error is left for hiredis to
 * meet again and report.
 */

static void
ngx_http_mitte_redis_write_handler(ngx_event_t *wev)
{
    ngx_connection_t  *c = wev->data;

    size_t              len;
    ssize_t             n;
    redisContext       *rc;
    redisAsyncContext  *ac;

    ac = c->data;
    rc = &ac->c;

    if ((rc->flags & REDIS_CONNECTED) && rc->err == 0 && rc->obuf != NULL) {
        len = sdslen(rc->obuf);

        if (len && sdsAllocSize(rc->obuf) <= NGX_HTTP_MITTE_REDIS_OBUF_KEEP) {
            n = write(rc->fd, rc->obuf, len);

            if (n == (ssize_t) len) {
                sdsclear(rc->obuf);

            } else if (n > 0) {
                sdsrange(rc->obuf, (int) n, -1);
            }
        }
    }

    redisAsyncHandleWrite(ac);
}


/*
 * nginx closes idle connections when a graceful shutdown begins (and all
 * of them when worker_shutdown_timeout expires). The reading connection
 * goes at once; the first one, when ready, runs the on_exit handlers and
 * stays: the worker's requests still running record and flush as ever,
 * and exit_process closes it. The second call (the shutdown timer) drops
 * it.
 */

static void
ngx_http_mitte_redis_shutdown(ngx_http_mitte_redis_worker_t *w,
    ngx_connection_t *c)
{
    ngx_uint_t  i;

    if (w->reader || w->exiting || !w->ready) {
        ngx_http_mitte_redis_drop(w, NULL, NULL);
        return;
    }

    c->close = 0;
    w->exiting = 1;

    for (i = 0; i < w->nexit; i++) {
        w->on_exit[i].handler(w->on_exit[i].data);
    }

    if (w->timer.timer_set) {
        /* the replies of what the handlers sent hold the exit */
        w->timer.cancelable = 0;
    }
}


/*
 * AUTH and SELECT: an error reply drops the connection, retried later;
 * CLIENT SETNAME's is ignored (a proxy may not know it)
 */

static void
ngx_http_mitte_redis_handshake(redisReply *reply, void *data, ngx_uint_t rc)
{
    ngx_http_mitte_redis_step_t  *step = data;

    if (rc != NGX_HTTP_MITTE_REDIS_REPLY) {
        /* the connection is already being dropped */
        return;
    }

    if (reply->type == REDIS_REPLY_ERROR && !step->optional) {
        ngx_http_mitte_redis_drop(step->w, step->failed, reply);
        return;
    }

    if (step->last) {
        ngx_http_mitte_redis_up(step->w);
    }
}


static void
ngx_http_mitte_redis_up(ngx_http_mitte_redis_worker_t *w)
{
    ngx_uint_t  i;

    w->ready = 1;
    mitte_backoff_reset(&w->backoff);

    ngx_http_mitte_redis_slot(w, 1);

    if (w->was_up) {
        (void) ngx_atomic_fetch_add(&w->sh->reconnects, 1);

        ngx_log_error(NGX_LOG_NOTICE, w->log, 0,
                      "mitte: redis \"%V\": connected again (%sattempt %ui)",
                      &w->conf->name, w->tag_in, w->attempts);

    } else {
        ngx_log_error(NGX_LOG_INFO, w->log, 0,
                      "mitte: redis \"%V\": connected%s, db %ui",
                      &w->conf->name, w->tag, w->conf->db);
    }

    w->was_up = 1;
    w->attempts = 0;

    if (!w->reader) {
        ngx_http_mitte_redis_load(w);
    }

    for (i = 0; i < w->nready && w->ready; i++) {
        w->on_ready[i].handler(w->on_ready[i].data);
    }

    if (w->ready && !w->reader) {
        ngx_http_mitte_redis_beat(&w->heartbeat);
    }
}


/* we close the connection: every command waiting fails at once */

static void
ngx_http_mitte_redis_drop(ngx_http_mitte_redis_worker_t *w, const char *why,
    redisReply *reply)
{
    redisAsyncContext  *ac;

    ac = w->ac;

    if (ac == NULL) {
        return;
    }

    w->ac = NULL;

    if (why) {
        ngx_http_mitte_redis_lost(w, why,
                                  (reply && reply->type == REDIS_REPLY_ERROR)
                                  ? reply->str : NULL);

    } else {
        /* shutdown: quietly */
        w->ready = 0;
        ngx_http_mitte_redis_slot(w, 0);

        if (w->heartbeat.timer_set) {
            ngx_del_timer(&w->heartbeat);
        }
    }

    /* deferred by hiredis when called from one of its callbacks */
    redisAsyncFree(ac);

    if (w->timer.timer_set) {
        ngx_del_timer(&w->timer);
    }
}


/*
 * The connection is gone or never came: marked down, logged at most once
 * a minute, and tried again after the backoff.
 */

static void
ngx_http_mitte_redis_lost(ngx_http_mitte_redis_worker_t *w, const char *why,
    const char *detail)
{
    ngx_msec_t  delay;

    w->ready = 0;
    ngx_http_mitte_redis_slot(w, 0);

    if (w->heartbeat.timer_set) {
        ngx_del_timer(&w->heartbeat);
    }

    if (!w->active || ngx_exiting || ngx_quit || ngx_terminate) {
        return;
    }

    delay = mitte_backoff_next(&w->backoff, (uint32_t) ngx_random());

    if (ngx_time() - *w->logged >= 60) {
        *w->logged = ngx_time();

        ngx_log_error(NGX_LOG_ERR, w->log, 0,
                      "mitte: redis \"%V\": %s%s%s, trying again in %Mms "
                      "(%slogged at most once a minute)",
                      &w->conf->name, why, detail ? ": " : "",
                      detail ? detail : "", delay, w->tag_in);
    }

    if (w->retry.timer_set) {
        ngx_del_timer(&w->retry);
    }

    ngx_add_timer(&w->retry, delay);
}


static void
ngx_http_mitte_redis_retry(ngx_event_t *ev)
{
    ngx_http_mitte_redis_worker_t  *w = ev->data;

    if (!w->active || w->ac || w->resolving
        || ngx_exiting || ngx_quit || ngx_terminate)
    {
        return;
    }

    ngx_http_mitte_redis_connect(w);
}


/*
 * Commands whose callback hiredis keeps and calls once a message: the
 * handler of a command is called exactly once, and its memory freed then.
 */

static ngx_int_t
ngx_http_mitte_redis_once(const char *word, size_t len)
{
    size_t       n;
    ngx_uint_t   i;

    static const char  *kept[] = {
        "subscribe", "psubscribe", "ssubscribe", "monitor", NULL
    };

    for (n = 0; n < len && word[n] != ' ' && word[n] != '\0'; n++) {
        /* void */
    }

    for (i = 0; kept[i]; i++) {
        if (n == ngx_strlen(kept[i])
            && ngx_strncasecmp((u_char *) word, (u_char *) kept[i], n) == 0)
        {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


ngx_int_t
ngx_http_mitte_redis_command(ngx_http_mitte_redis_handler_pt handler,
    void *data, const char *fmt, ...)
{
    int                             rc;
    va_list                         args;
    ngx_http_mitte_redis_cmd_t     *cmd;
    ngx_http_mitte_redis_worker_t  *w;

    w = &ngx_http_mitte_redis_worker;

    if (ngx_http_mitte_redis_once(fmt, ngx_strlen(fmt)) != NGX_OK) {
        return NGX_ERROR;
    }

    if (!w->ready) {
        return NGX_DECLINED;
    }

    cmd = ngx_http_mitte_redis_cmd(w, handler, data, 0);
    if (cmd == NULL) {
        return NGX_DECLINED;
    }

    va_start(args, fmt);
    rc = redisvAsyncCommand(w->ac, ngx_http_mitte_redis_reply, cmd, fmt,
                            args);
    va_end(args);

    return ngx_http_mitte_redis_queued(w, cmd, rc);
}


ngx_int_t
ngx_http_mitte_redis_command_argv(ngx_http_mitte_redis_handler_pt handler,
    void *data, int argc, const char **argv, const size_t *argvlen)
{
    ngx_http_mitte_redis_worker_t  *w;

    w = &ngx_http_mitte_redis_worker;

    if (argc < 1
        || ngx_http_mitte_redis_once(argv[0], argvlen[0]) != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (!w->ready) {
        return NGX_DECLINED;
    }

    return ngx_http_mitte_redis_argv(w, handler, data, argc, argv, argvlen);
}


ngx_int_t
ngx_http_mitte_redis_read_argv(ngx_http_mitte_redis_handler_pt handler,
    void *data, ngx_msec_t block, int argc, const char **argv,
    const size_t *argvlen)
{
    int                             rc;
    ngx_http_mitte_redis_cmd_t     *cmd;
    ngx_http_mitte_redis_worker_t  *w;

    w = &ngx_http_mitte_redis_reader_worker;

    if (argc < 1
        || ngx_http_mitte_redis_once(argv[0], argvlen[0]) != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (!w->ready) {
        return NGX_DECLINED;
    }

    cmd = ngx_http_mitte_redis_cmd(w, handler, data, block);
    if (cmd == NULL) {
        return NGX_DECLINED;
    }

    rc = ngx_http_mitte_redis_format(w, cmd, argc, argv, argvlen);

    return ngx_http_mitte_redis_queued(w, cmd, rc);
}


ngx_int_t
ngx_http_mitte_redis_on_ready(ngx_http_mitte_redis_ready_pt handler,
    void *data)
{
    return ngx_http_mitte_redis_ready_add(&ngx_http_mitte_redis_worker,
                                          handler, data);
}


ngx_int_t
ngx_http_mitte_redis_on_exit(ngx_http_mitte_redis_ready_pt handler,
    void *data)
{
    ngx_http_mitte_redis_worker_t  *w;

    w = &ngx_http_mitte_redis_worker;

    if (w->nexit == NGX_HTTP_MITTE_REDIS_NREADY) {
        return NGX_ERROR;
    }

    w->on_exit[w->nexit].handler = handler;
    w->on_exit[w->nexit].data = data;
    w->nexit++;

    return NGX_OK;
}


ngx_int_t
ngx_http_mitte_redis_read_on_ready(ngx_http_mitte_redis_ready_pt handler,
    void *data)
{
    return ngx_http_mitte_redis_ready_add(
               &ngx_http_mitte_redis_reader_worker, handler, data);
}


static ngx_int_t
ngx_http_mitte_redis_ready_add(ngx_http_mitte_redis_worker_t *w,
    ngx_http_mitte_redis_ready_pt handler, void *data)
{
    if (w->nready == NGX_HTTP_MITTE_REDIS_NREADY) {
        return NGX_ERROR;
    }

    w->on_ready[w->nready].handler = handler;
    w->on_ready[w->nready].data = data;
    w->nready++;

    return NGX_OK;
}


/*
 * A command: a record for our queue, which times it, then the command
 * into hiredis's buffer (it goes out when the socket is writable). Its
 * deadline: "block" (a blocking command's own wait) plus the timeout, and
 * never before the deadline of the command ahead, whose reply comes first:
 * the queue stays in the order of its deadlines, and the oldest's timer
 * times them all.
 */

static ngx_http_mitte_redis_cmd_t *
ngx_http_mitte_redis_cmd(ngx_http_mitte_redis_worker_t *w,
    ngx_http_mitte_redis_handler_pt handler, void *data, ngx_msec_t block)
{
    ngx_http_mitte_redis_cmd_t  *cmd, *last;

    if (w->ac == NULL) {
        return NULL;
    }

    if (!ngx_queue_empty(&ngx_http_mitte_redis_cmd_free)) {
        cmd = ngx_queue_data(ngx_queue_head(&ngx_http_mitte_redis_cmd_free),
                             ngx_http_mitte_redis_cmd_t, queue);
        ngx_queue_remove(&cmd->queue);
        ngx_http_mitte_redis_ncmd_free--;

    } else {
        cmd = ngx_alloc(sizeof(ngx_http_mitte_redis_cmd_t), w->log);
        if (cmd == NULL) {
            return NULL;
        }
    }

    cmd->handler = handler;
    cmd->data = data;
    cmd->deadline = ngx_current_msec + block + w->conf->timeout;
    cmd->timedout = 0;

    if (!ngx_queue_empty(&w->commands)) {
        last = ngx_queue_data(ngx_queue_last(&w->commands),
                              ngx_http_mitte_redis_cmd_t, queue);

        if ((ngx_msec_int_t) (last->deadline - cmd->deadline) > 0) {
            cmd->deadline = last->deadline;
        }
    }

    return cmd;
}


static ngx_int_t
ngx_http_mitte_redis_queued(ngx_http_mitte_redis_worker_t *w,
    ngx_http_mitte_redis_cmd_t *cmd, int rc)
{
    if (rc != REDIS_OK) {
        /* a bad format, or a connection hiredis is closing */
        ngx_http_mitte_redis_cmd_done(cmd);
        return NGX_DECLINED;
    }

    ngx_queue_insert_tail(&w->commands, &cmd->queue);

    if (!w->timer.timer_set) {
        ngx_http_mitte_redis_arm(w);
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_mitte_redis_argv(ngx_http_mitte_redis_worker_t *w,
    ngx_http_mitte_redis_handler_pt handler, void *data, int argc,
    const char **argv, const size_t *argvlen)
{
    int                          rc;
    ngx_http_mitte_redis_cmd_t  *cmd;

    cmd = ngx_http_mitte_redis_cmd(w, handler, data, 0);
    if (cmd == NULL) {
        return NGX_DECLINED;
    }

    rc = ngx_http_mitte_redis_format(w, cmd, argc, argv, argvlen);

    return ngx_http_mitte_redis_queued(w, cmd, rc);
}


/*
 * hiredis builds each reply object by object, with malloc by default, and
 * frees it after its callback: a few dozen allocations a flush, freed
 * again at once, whose holes in the heap made nginx's own allocations of
 * every request slower (docs/benchmarks.md). Here the objects of a reply
 * go into the connection's arena (the reader's privdata), and freeing the
 * reply (only ever its root: after its callback, or a partial one when
 * the context is freed) empties the arena; no reply outlives its callback.
 */

static void *
ngx_http_mitte_redis_new_reply(const redisReadTask *task, int type)
{
    redisReply  *r, *parent;

    r = mitte_arena_alloc(task->privdata, sizeof(redisReply));
    if (r == NULL) {
        return NULL;
    }

    ngx_memzero(r, sizeof(redisReply));
    r->type = type;

    if (task->parent) {
        parent = task->parent->obj;
        parent->element[task->idx] = r;
    }

    return r;
}


static void *
ngx_http_mitte_redis_new_string(const redisReadTask *task, char *str,
    size_t len)
{
    redisReply  *r;

    r = ngx_http_mitte_redis_new_reply(task, task->type);
    if (r == NULL) {
        return NULL;
    }

    r->str = mitte_arena_alloc(task->privdata, len + 1);
    if (r->str == NULL) {
        return NULL;
    }

    ngx_memcpy(r->str, str, len);
    r->str[len] = '\0';
    r->len = len;

    return r;
}


static void *
ngx_http_mitte_redis_new_array(const redisReadTask *task, int elements)
{
    redisReply  *r;

    r = ngx_http_mitte_redis_new_reply(task, REDIS_REPLY_ARRAY);
    if (r == NULL) {
        return NULL;
    }

    if (elements > 0) {
        r->element = mitte_arena_alloc(task->privdata,
                                       elements * sizeof(redisReply *));
        if (r->element == NULL) {
            return NULL;
        }

        ngx_memzero(r->element, elements * sizeof(redisReply *));
    }

    r->elements = elements;

    return r;
}


static void *
ngx_http_mitte_redis_new_integer(const redisReadTask *task, long long value)
{
    redisReply  *r;

    r = ngx_http_mitte_redis_new_reply(task, REDIS_REPLY_INTEGER);
    if (r == NULL) {
        return NULL;
    }

    r->integer = value;

    return r;
}


static void *
ngx_http_mitte_redis_new_nil(const redisReadTask *task)
{
    return ngx_http_mitte_redis_new_reply(task, REDIS_REPLY_NIL);
}


static void
ngx_http_mitte_redis_free_reply(void *reply)
{
    mitte_arena_reset(&ngx_http_mitte_redis_worker.arena);
}


static void
ngx_http_mitte_redis_free_read_reply(void *reply)
{
    mitte_arena_reset(&ngx_http_mitte_redis_reader_worker.arena);
}


/*
 * A command in Redis's protocol, written into the connection's own buffer
 * (kept from command to command), then given to hiredis as it is: no
 * per-argument formatting and no buffer allocated and freed each time,
 * which a flush of a few hundred endpoints every 20 ms would otherwise
 * cost (docs/benchmarks.md).
 */

static int
ngx_http_mitte_redis_format(ngx_http_mitte_redis_worker_t *w,
    ngx_http_mitte_redis_cmd_t *cmd, int argc, const char **argv,
    const size_t *argvlen)
{
    int      i;
    size_t   size;
    u_char  *p;

    size = 1 + NGX_SIZE_T_LEN + 2;

    for (i = 0; i < argc; i++) {
        size += 1 + NGX_SIZE_T_LEN + 2 + argvlen[i] + 2;
    }

    if (size > w->out_size) {
        size = ngx_max(size, 2 * w->out_size);
        size = ngx_max(size, 4096);

        p = ngx_alloc(size, w->log);
        if (p == NULL) {
            return REDIS_ERR;
        }

        if (w->out) {
            ngx_free(w->out);
        }

        w->out = p;
        w->out_size = size;
    }

    p = ngx_http_mitte_redis_resp(w->out, '*', (size_t) argc);

    for (i = 0; i < argc; i++) {
        p = ngx_http_mitte_redis_resp(p, '$', argvlen[i]);
        p = ngx_cpymem(p, argv[i], argvlen[i]);
        *p++ = CR;
        *p++ = LF;
    }

    return redisAsyncFormattedCommand(w->ac, ngx_http_mitte_redis_reply, cmd,
                                      (const char *) w->out, p - w->out);
}


/* "*<n>\r\n" or "$<n>\r\n" */

static u_char *
ngx_http_mitte_redis_resp(u_char *p, u_char type, size_t n)
{
    u_char   tmp[NGX_SIZE_T_LEN];
    u_char  *t;

    *p++ = type;

    t = tmp + sizeof(tmp);

    do {
        *--t = (u_char) ('0' + n % 10);
        n /= 10;
    } while (n);

    p = ngx_cpymem(p, t, tmp + sizeof(tmp) - t);
    *p++ = CR;
    *p++ = LF;

    return p;
}


/*
 * hiredis's callback: a reply, or NULL when the context is freed with the
 * command still waiting. Replies come in the order the commands went.
 */

static void
ngx_http_mitte_redis_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    ngx_http_mitte_redis_cmd_t *cmd = privdata;

    redisReply                     *reply = r;
    ngx_uint_t                      rc;
    ngx_http_mitte_redis_worker_t  *w;

    w = ac->data;

    ngx_queue_remove(&cmd->queue);

    if (reply) {
        rc = NGX_HTTP_MITTE_REDIS_REPLY;

        if (reply->type == REDIS_REPLY_ERROR) {
            ngx_http_mitte_redis_count(w, NGX_HTTP_MITTE_REDIS_ERR_REPLY);

            if (reply->len >= 8 && w->ac == ac && !w->reader
                && ngx_strncmp(reply->str, "NOSCRIPT", 8) == 0)
            {
                /* flushed by SCRIPT FLUSH: loaded again for what follows */
                ngx_http_mitte_redis_load(w);
            }
        }

    } else {
        rc = cmd->timedout ? NGX_HTTP_MITTE_REDIS_TIMEOUT
                           : NGX_HTTP_MITTE_REDIS_LOST;
    }

    if (w->ac == ac && w->timer.timer_set && ngx_queue_empty(&w->commands))
    {
        ngx_del_timer(&w->timer);
    }

    cmd->handler(reply, cmd->data, rc);

    ngx_http_mitte_redis_cmd_done(cmd);
}


/*
 * A command's record, kept for the next one: a record allocated and freed
 * for each command, amid nginx's allocations of the requests, left holes
 * that made those slower (docs/benchmarks.md)
 */

static void
ngx_http_mitte_redis_cmd_done(ngx_http_mitte_redis_cmd_t *cmd)
{
    if (ngx_http_mitte_redis_ncmd_free == NGX_HTTP_MITTE_REDIS_CMD_KEEP) {
        ngx_free(cmd);
        return;
    }

    ngx_queue_insert_head(&ngx_http_mitte_redis_cmd_free, &cmd->queue);
    ngx_http_mitte_redis_ncmd_free++;
}


static void
ngx_http_mitte_redis_arm(ngx_http_mitte_redis_worker_t *w)
{
    ngx_msec_int_t               left;
    ngx_http_mitte_redis_cmd_t  *cmd;

    if (ngx_queue_empty(&w->commands)) {
        return;
    }

    cmd = ngx_queue_data(ngx_queue_head(&w->commands),
                         ngx_http_mitte_redis_cmd_t, queue);

    left = (ngx_msec_int_t) (cmd->deadline - ngx_current_msec);

    /* after the shutdown began: a reply awaited holds the exit */
    w->timer.cancelable = !w->exiting;

    ngx_add_timer(&w->timer, left > 0 ? (ngx_msec_t) left : 1);
}


/* the oldest command's deadline: Redis is hung or too slow, drop it */

static void
ngx_http_mitte_redis_timeout(ngx_event_t *ev)
{
    ngx_http_mitte_redis_worker_t *w = ev->data;

    ngx_http_mitte_redis_cmd_t  *cmd;

    if (w->ac == NULL || ngx_queue_empty(&w->commands)) {
        return;
    }

    cmd = ngx_queue_data(ngx_queue_head(&w->commands),
                         ngx_http_mitte_redis_cmd_t, queue);

    if ((ngx_msec_int_t) (cmd->deadline - ngx_current_msec) > 0) {
        /* the oldest answered; this one has time left */
        ngx_http_mitte_redis_arm(w);
        return;
    }

    cmd->timedout = 1;

    ngx_http_mitte_redis_count(w, NGX_HTTP_MITTE_REDIS_ERR_TIMEOUT);
    ngx_http_mitte_redis_drop(w, w->ready ? "command timed out"
                                          : "connection timed out", NULL);
}


/*
 * The instance heartbeat: "<prefix>instance:<host>:<pid>" with a TTL, and
 * the instance in the "<prefix>instances" sorted set scored by time, where
 * instances silent for a minute are removed before counting.
 */

static void
ngx_http_mitte_redis_beat(ngx_event_t *ev)
{
    ngx_http_mitte_redis_worker_t *w = ev->data;

    u_char                           key[NGX_HTTP_MITTE_REDIS_KEY_MAX];
    u_char                           set[NGX_HTTP_MITTE_REDIS_KEY_MAX];
    u_char                           info[NGX_MAXHOSTNAMELEN + 128];
    size_t                           key_len, set_len, info_len;
    time_t                           now, old;
    ngx_int_t                        rc;
    ngx_uint_t                       workers;
    ngx_core_conf_t                 *ccf;
    ngx_http_mitte_redis_handler_pt  h;

    if (!w->ready || ngx_exiting || ngx_quit || ngx_terminate) {
        return;
    }

    now = ngx_time();
    old = now - NGX_HTTP_MITTE_REDIS_INSTANCE_TTL;
    h = ngx_http_mitte_redis_beat_reply;

    ccf = (ngx_core_conf_t *) ngx_get_conf(ngx_cycle->conf_ctx,
                                           ngx_core_module);
    workers = (ngx_process == NGX_PROCESS_WORKER) ? ccf->worker_processes
                                                  : 1;

    key_len = ngx_http_mitte_redis_key(key, sizeof(key), "instance:%*s",
                                       w->instance_len, w->instance);
    set_len = ngx_http_mitte_redis_key(set, sizeof(set), "instances");

    info_len = ngx_snprintf(info, sizeof(info),
                            "{\"instance\":\"%*s\",\"workers\":%ui,"
                            "\"nginx\":\"" NGINX_VERSION "\",\"seen\":%T}",
                            w->instance_len, w->instance, workers, now)
               - info;

    /* pipelined: hiredis sends them in one write */

    rc = ngx_http_mitte_redis_command(h, "SET", "SET %b %b EX %d",
                                      key, key_len, info, info_len,
                                      NGX_HTTP_MITTE_REDIS_INSTANCE_TTL);

    if (rc == NGX_OK) {
        rc = ngx_http_mitte_redis_command(h, "ZADD", "ZADD %b %lld %b",
                                          set, set_len, (long long) now,
                                          w->instance, w->instance_len);
    }

    if (rc == NGX_OK) {
        rc = ngx_http_mitte_redis_command(h, "ZREMRANGEBYSCORE",
                                          "ZREMRANGEBYSCORE %b -inf %lld",
                                          set, set_len, (long long) old);
    }

    if (rc == NGX_OK) {
        /* the set itself goes when every instance has gone */
        rc = ngx_http_mitte_redis_command(h, "EXPIRE", "EXPIRE %b %d",
                                          set, set_len,
                                          NGX_HTTP_MITTE_REDIS_SET_TTL);
    }

    if (rc == NGX_OK) {
        (void) ngx_http_mitte_redis_command(h, "ZCARD", "ZCARD %b",
                                            set, set_len);
    }

    if (w->ready && !w->heartbeat.timer_set) {
        ngx_add_timer(&w->heartbeat, NGX_HTTP_MITTE_REDIS_HEARTBEAT);
    }
}


static void
ngx_http_mitte_redis_beat_reply(redisReply *reply, void *data, ngx_uint_t rc)
{
    char                           *cmd = data;
    ngx_http_mitte_redis_worker_t  *w;

    w = &ngx_http_mitte_redis_worker;

    if (rc != NGX_HTTP_MITTE_REDIS_REPLY) {
        return;
    }

    if (reply->type == REDIS_REPLY_ERROR) {
        if (ngx_time() - *w->logged >= 60) {
            *w->logged = ngx_time();

            ngx_log_error(NGX_LOG_ERR, w->log, 0,
                          "mitte: redis \"%V\": heartbeat %s failed: %s "
                          "(logged at most once a minute)",
                          &w->conf->name, cmd, reply->str);
        }

        return;
    }

    if (cmd[0] == 'Z' && cmd[1] == 'C' && reply->type == REDIS_REPLY_INTEGER
        && reply->integer >= 0)
    {
        w->sh->instances = (ngx_atomic_uint_t) reply->integer;
    }
}


size_t
ngx_http_mitte_redis_key(u_char *buf, size_t size, const char *fmt, ...)
{
    u_char                       *p, *last;
    va_list                       args;
    ngx_http_mitte_main_conf_t   *mmcf;
    ngx_http_mitte_redis_conf_t  *rcf;

    /* the cycle's, so that it works before this worker's init_process */

    mmcf = ngx_http_cycle_get_module_main_conf(ngx_cycle,
                                               ngx_http_mitte_module);
    rcf = mmcf ? mmcf->redis : NULL;

    if (rcf == NULL || size <= rcf->prefix.len) {
        return 0;
    }

    last = buf + size;
    p = ngx_cpymem(buf, rcf->prefix.data, rcf->prefix.len);

    va_start(args, fmt);
    p = ngx_vslprintf(p, last, fmt, args);
    va_end(args);

    if (p == last) {
        /* it may not have fit */
        return 0;
    }

    return p - buf;
}


static void
ngx_http_mitte_redis_count(ngx_http_mitte_redis_worker_t *w, ngx_uint_t kind)
{
    (void) ngx_atomic_fetch_add(&w->sh->errors[kind], 1);
}


static void
ngx_http_mitte_redis_slot(ngx_http_mitte_redis_worker_t *w, ngx_uint_t up)
{
    ngx_http_mitte_redis_slot_t  *slot;

    if (w->reader) {
        if (ngx_worker != 0) {
            return;
        }

        slot = &w->sh->reader;

    } else if (ngx_worker < NGX_HTTP_MITTE_MAX_WORKERS) {
        slot = &w->sh->slots[ngx_worker];

    } else {
        return;
    }

    /* a worker shutting down after a reload no longer owns its slot */

    if (slot->pid == (ngx_atomic_uint_t) ngx_pid) {
        slot->up = up;
    }
}


/*
 * The metrics, for the instance: "up" when every worker has a ready
 * connection (each will flush its own share of the state); "reader_up"
 * for worker 0's reading connection, when it has asked for one.
 */

u_char *
ngx_http_mitte_redis_metrics(u_char *p, ngx_http_mitte_redis_conf_t *rcf)
{
    ngx_uint_t                    i, workers, up;
    ngx_core_conf_t              *ccf;
    ngx_http_mitte_redis_sh_t    *sh;
    ngx_http_mitte_redis_zone_t  *zone;

    if (rcf == NULL) {
        return p;
    }

    zone = rcf->shm_zone->data;
    sh = zone->sh;

    ccf = (ngx_core_conf_t *) ngx_get_conf(ngx_cycle->conf_ctx,
                                           ngx_core_module);

    workers = (ngx_process == NGX_PROCESS_WORKER) ? ccf->worker_processes
                                                  : 1;
    workers = ngx_min(workers, NGX_HTTP_MITTE_MAX_WORKERS);

    up = 0;

    for (i = 0; i < workers; i++) {
        if (sh->slots[i].pid && sh->slots[i].up) {
            up++;
        }
    }

    p = ngx_sprintf(p,
        "# HELP mitte_redis_up 1 when every worker of this instance has a "
        "ready connection to Redis.\n"
        "# TYPE mitte_redis_up gauge\n"
        "mitte_redis_up %d\n"
        "# HELP mitte_redis_workers_up Workers of this instance with a "
        "ready connection to Redis.\n"
        "# TYPE mitte_redis_workers_up gauge\n"
        "mitte_redis_workers_up %ui\n"
        "# HELP mitte_redis_reconnects_total Connections to Redis made "
        "again after a loss.\n"
        "# TYPE mitte_redis_reconnects_total counter\n"
        "mitte_redis_reconnects_total %uA\n"
        "# HELP mitte_redis_errors_total Redis commands that timed out or "
        "got an error reply, and connections that failed or were lost.\n"
        "# TYPE mitte_redis_errors_total counter\n"
        "mitte_redis_errors_total{kind=\"timeout\"} %uA\n"
        "mitte_redis_errors_total{kind=\"reply\"} %uA\n"
        "mitte_redis_errors_total{kind=\"connection\"} %uA\n"
        "# HELP mitte_redis_instances nginx instances registered in Redis, "
        "as of this instance's last heartbeat.\n"
        "# TYPE mitte_redis_instances gauge\n"
        "mitte_redis_instances %uA\n",
        (up == workers) ? 1 : 0, up, sh->reconnects,
        sh->errors[NGX_HTTP_MITTE_REDIS_ERR_TIMEOUT],
        sh->errors[NGX_HTTP_MITTE_REDIS_ERR_REPLY],
        sh->errors[NGX_HTTP_MITTE_REDIS_ERR_CONNECTION],
        sh->instances);

    if (sh->reader.pid == 0) {
        /* no worker asked for a reading connection */
        return p;
    }

    return ngx_sprintf(p,
        "# HELP mitte_redis_reader_up 1 when worker 0's reading connection "
        "to Redis (the event stream's) is ready.\n"
        "# TYPE mitte_redis_reader_up gauge\n"
        "mitte_redis_reader_up %d\n",
        sh->reader.up ? 1 : 0);
}


ngx_int_t
ngx_http_mitte_redis_script(ngx_http_mitte_redis_script_t *script)
{
    u_char                          md[SHA_DIGEST_LENGTH];
    size_t                          argvlen[3];
    ngx_uint_t                      i;
    const char                     *argv[3];
    ngx_http_mitte_redis_worker_t  *w;

    w = &ngx_http_mitte_redis_worker;

    for (i = 0; i < w->nscripts; i++) {
        if (w->scripts[i] == script) {
            return NGX_OK;
        }
    }

    if (w->nscripts == NGX_HTTP_MITTE_REDIS_NSCRIPTS) {
        return NGX_ERROR;
    }

    (void) SHA1((const u_char *) script->text, ngx_strlen(script->text), md);
    *ngx_hex_dump(script->sha, md, SHA_DIGEST_LENGTH) = '\0';

    w->scripts[w->nscripts++] = script;

    if (w->ready) {
        /* registered late: loaded now, ahead of the commands that use it */
        argv[0] = "SCRIPT";
        argvlen[0] = 6;
        argv[1] = "LOAD";
        argvlen[1] = 4;
        argv[2] = script->text;
        argvlen[2] = ngx_strlen(script->text);

        (void) ngx_http_mitte_redis_argv(w, ngx_http_mitte_redis_loaded,
                                         script, 3, argv, argvlen);
    }

    return NGX_OK;
}


/* SCRIPT LOAD of every script, ahead of the commands that use them */

static void
ngx_http_mitte_redis_load(ngx_http_mitte_redis_worker_t *w)
{
    const char  *argv[3];
    size_t       argvlen[3];
    ngx_uint_t   i;

    argv[0] = "SCRIPT";
    argvlen[0] = 6;
    argv[1] = "LOAD";
    argvlen[1] = 4;

    for (i = 0; i < w->nscripts && w->ac; i++) {
        argv[2] = w->scripts[i]->text;
        argvlen[2] = ngx_strlen(w->scripts[i]->text);

        (void) ngx_http_mitte_redis_argv(w, ngx_http_mitte_redis_loaded,
                                         w->scripts[i], 3, argv, argvlen);
    }
}


static void
ngx_http_mitte_redis_loaded(redisReply *reply, void *data, ngx_uint_t rc)
{
    ngx_http_mitte_redis_worker_t  *w;

    w = &ngx_http_mitte_redis_worker;

    if (rc == NGX_HTTP_MITTE_REDIS_REPLY && reply->type == REDIS_REPLY_ERROR
        && ngx_time() - *w->logged >= 60)
    {
        *w->logged = ngx_time();

        ngx_log_error(NGX_LOG_ERR, w->log, 0,
                      "mitte: redis \"%V\": SCRIPT LOAD failed: %s "
                      "(logged at most once a minute)",
                      &w->conf->name, reply->str);
    }
}


ngx_int_t
ngx_http_mitte_redis_eval(ngx_http_mitte_redis_handler_pt handler,
    void *data, ngx_http_mitte_redis_script_t *script, int argc,
    const char **argv, const size_t *argvlen)
{
    int                             i;
    size_t                          lens[NGX_HTTP_MITTE_REDIS_ARGS];
    const char                     *args[NGX_HTTP_MITTE_REDIS_ARGS];
    ngx_http_mitte_redis_worker_t  *w;

    w = &ngx_http_mitte_redis_worker;

    if (argc < 1 || argc > NGX_HTTP_MITTE_REDIS_ARGS - 2) {
        return NGX_ERROR;
    }

    if (!w->ready) {
        return NGX_DECLINED;
    }

    args[0] = "EVALSHA";
    lens[0] = 7;
    args[1] = (const char *) script->sha;
    lens[1] = 40;

    for (i = 0; i < argc; i++) {
        args[i + 2] = argv[i];
        lens[i + 2] = argvlen[i];
    }

    return ngx_http_mitte_redis_argv(w, handler, data, argc + 2, args, lens);
}


ngx_int_t
ngx_http_mitte_redis_publish(ngx_http_mitte_redis_handler_pt handler,
    void *data, u_char *text, size_t len)
{
    u_char                          events[NGX_HTTP_MITTE_REDIS_KEY_MAX];
    u_char                          seq[NGX_HTTP_MITTE_REDIS_KEY_MAX];
    u_char                          maxlen[NGX_INT_T_LEN];
    size_t                          argvlen[5];
    const char                     *argv[5];
    ngx_http_mitte_redis_worker_t  *w;

    w = &ngx_http_mitte_redis_worker;

    argv[0] = "2";
    argvlen[0] = 1;

    argv[1] = (const char *) events;
    argvlen[1] = ngx_http_mitte_redis_key(events, sizeof(events),
                                          "{events}");
    argv[2] = (const char *) seq;
    argvlen[2] = ngx_http_mitte_redis_key(seq, sizeof(seq), "{events}:seq");

    argv[3] = (const char *) maxlen;
    argvlen[3] = ngx_sprintf(maxlen, "%ui", w->maxlen) - maxlen;

    argv[4] = (const char *) text;
    argvlen[4] = len;

    if (argvlen[1] == 0 || argvlen[2] == 0) {
        return NGX_ERROR;
    }

    return ngx_http_mitte_redis_eval(handler, data,
                                     &ngx_http_mitte_redis_publish_script,
                                     5, argv, argvlen);
}


void
ngx_http_mitte_redis_instance(ngx_str_t *name)
{
    ngx_http_mitte_redis_worker_t  *w;

    w = &ngx_http_mitte_redis_worker;

    name->data = w->instance;
    name->len = w->instance_len;
}


ngx_int_t
ngx_http_mitte_redis_may_log(void)
{
    if (ngx_time() - ngx_http_mitte_redis_logged < 60) {
        return NGX_DECLINED;
    }

    ngx_http_mitte_redis_logged = ngx_time();

    return NGX_OK;
}
