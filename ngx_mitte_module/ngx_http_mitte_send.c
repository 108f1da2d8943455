/*
 * Copyright (C) ngx_mitte_module authors
 *
 * The sender: worker 0 drains the outbox with libcurl's multi-socket API
 * on nginx's event loop. Each curl socket is wrapped in an nginx
 * connection with level-triggered events, curl's timer is one nginx
 * timer, and a poll timer takes pending sends from the zone. Nothing here
 * blocks: curl resolves names asynchronously, and every transfer has a
 * whole-request timeout. Webhook connections are checked address by
 * address in curl's open-socket callback (SSRF).
 *
 * Cluster mode: a shared send (every instance holds it) is claimed in
 * Redis before each attempt, "<prefix>{u:<user>}:send:<id>:<channel>"
 * set to this instance's name for the attempt's timeout and a margin;
 * the claimer sends, the others wait; a send finished is marked done
 * there and told to every instance on the event stream (entry "s"), so
 * that the standbys drop it. A claimer that dies lets its claim expire,
 * and a standby sends with the same idempotency key. See cluster.md.
 */


#include "ngx_http_mitte_module.h"
#include "ngx_http_mitte_send.h"
#include "ngx_http_mitte_api.h"
#include "ngx_http_mitte_redis.h"
#include "mitte_notify.h"
#include "mitte_url.h"

#include <curl/curl.h>


#define NGX_HTTP_MITTE_SEND_INFLIGHT    128
/* in flight to one webhook host, and to the email API: a target that
 * hangs holds only its own share */
#define NGX_HTTP_MITTE_SEND_PER_HOST    4
#define NGX_HTTP_MITTE_SEND_EMAIL       8
#define NGX_HTTP_MITTE_SEND_POLL        200         /* ms */
#define NGX_HTTP_MITTE_RESPONSE_MAX     2048
#define NGX_HTTP_MITTE_USER_AGENT       "mitte/1.0 (ngx_http_mitte_module)"

/* cluster mode: a claim outlasts an attempt's timeout by this much (s) */
#define NGX_HTTP_MITTE_SEND_CLAIM_SLACK 15
/* a finished send's key says "done:<result>" this long (s) */
#define NGX_HTTP_MITTE_SEND_DONE_TTL    (7 * 86400)
/* a send claimed elsewhere is looked at again when its claim ends, plus */
#define NGX_HTTP_MITTE_SEND_RECHECK     1000        /* ms */
/* outcomes marked again in Redis per poll */
#define NGX_HTTP_MITTE_SEND_MARKS       16


typedef struct {
    ngx_queue_t                  queue;     /* the sender's, in flight */
    CURL                        *easy;
    ngx_http_mitte_send_t       *send;      /* in the zone */
    struct curl_slist           *headers;
    u_char                      *url;
    u_char                      *body;
    size_t                       body_len;
    int64_t                      retry_after;   /* seconds, -1: none */
    size_t                       response_len;
    uint32_t                     host_hash;
    unsigned                     blocked:1;
    unsigned                     channel:1;
    u_char                       response[NGX_HTTP_MITTE_RESPONSE_MAX];
    char                         error[CURL_ERROR_SIZE];
} ngx_http_mitte_job_t;


/*
 * A send's identity and outcome, copied out of the zone for a command to
 * Redis: a claim (in the sender's list while it waits), a claim renewed,
 * or an outcome marked
 */
typedef struct {
    ngx_queue_t                  queue;
    ngx_http_mitte_send_t       *send;      /* in the zone */
    uint64_t                     created_ms;
    uint32_t                     note_seq;
    uint32_t                     host_hash;
    uint16_t                     error_len;
    uint8_t                      channel;
    uint8_t                      state;     /* an outcome's */
    uint8_t                      attempts;
    uint8_t                      user_len;
    uint8_t                      flags;
    u_char                       user[MITTE_USER_MAX];
    u_char                       error[NGX_HTTP_MITTE_ERROR_MAX];
} ngx_http_mitte_claim_t;


typedef struct {
    CURLM                       *multi;
    ngx_event_t                  poll;
    ngx_event_t                  timer;
    ngx_uint_t                   inflight;
    ngx_queue_t                  jobs;
    ngx_http_mitte_main_conf_t  *mmcf;
    ngx_http_mitte_zone_ctx_t   *zone;
    ngx_log_t                   *log;
    ngx_uint_t                   active;
    ngx_queue_t                  claims;    /* waiting for Redis */
    ngx_uint_t                   nclaims;
    ngx_uint_t                   unmarked;  /* outcomes to mark again */
    time_t                       logged;
} ngx_http_mitte_sender_t;


static void ngx_http_mitte_send_poll(ngx_event_t *ev);
static void ngx_http_mitte_send_take(ngx_http_mitte_sender_t *sender);
static ngx_int_t ngx_http_mitte_send_start(ngx_http_mitte_sender_t *sender,
    ngx_http_mitte_send_t *s);
static ngx_int_t ngx_http_mitte_send_email(ngx_http_mitte_sender_t *sender,
    ngx_http_mitte_job_t *job, ngx_http_mitte_send_t *s, u_char *id);
static ngx_int_t ngx_http_mitte_send_webhook(
    ngx_http_mitte_sender_t *sender, ngx_http_mitte_job_t *job,
    ngx_http_mitte_send_t *s, u_char *id);
static void ngx_http_mitte_send_done(ngx_http_mitte_sender_t *sender,
    ngx_http_mitte_job_t *job, CURLcode result);
static void ngx_http_mitte_send_finish(ngx_http_mitte_sender_t *sender,
    ngx_http_mitte_send_t *s, ngx_uint_t state, u_char *error, size_t len,
    int64_t retry_after);
static void ngx_http_mitte_job_free(ngx_http_mitte_job_t *job);
static void ngx_http_mitte_curl_action(ngx_http_mitte_sender_t *sender,
    curl_socket_t s, int flags);
static void ngx_http_mitte_curl_info(ngx_http_mitte_sender_t *sender);
static int ngx_http_mitte_curl_socket(CURL *easy, curl_socket_t s, int what,
    void *userp, void *socketp);
static int ngx_http_mitte_curl_timer(CURLM *multi, long timeout_ms,
    void *userp);
static void ngx_http_mitte_curl_timeout(ngx_event_t *ev);
static void ngx_http_mitte_curl_read(ngx_event_t *ev);
static void ngx_http_mitte_curl_write(ngx_event_t *ev);
static curl_socket_t ngx_http_mitte_curl_open(void *data,
    curlsocktype purpose, struct curl_sockaddr *addr);
static size_t ngx_http_mitte_curl_body(char *ptr, size_t size, size_t n,
    void *data);
static size_t ngx_http_mitte_curl_header(char *ptr, size_t size, size_t n,
    void *data);
static u_char *ngx_http_mitte_response_message(ngx_http_mitte_job_t *job,
    u_char *p, u_char *last);
static u_char *ngx_http_mitte_html(u_char *dst, u_char *src, size_t len,
    size_t *need);
static uint32_t ngx_http_mitte_host_hash(u_char *url, size_t len);
static ngx_uint_t ngx_http_mitte_send_busy(ngx_http_mitte_sender_t *sender,
    ngx_http_mitte_send_t *s, ngx_http_mitte_send_t **take, ngx_uint_t n);
static void ngx_http_mitte_send_retire(ngx_http_mitte_zone_ctx_t *ctx,
    ngx_http_mitte_send_t *s);
static void ngx_http_mitte_send_settle(ngx_http_mitte_zone_ctx_t *ctx,
    ngx_http_mitte_send_t *s, ngx_uint_t state, ngx_int_t attempts,
    u_char *error, size_t len);
static void ngx_http_mitte_send_wait(ngx_http_mitte_sender_t *sender,
    ngx_http_mitte_send_t *s, uint64_t delay);
static ngx_http_mitte_claim_t *ngx_http_mitte_send_copy(
    ngx_http_mitte_sender_t *sender, ngx_http_mitte_send_t *s);
static ngx_int_t ngx_http_mitte_send_claim(ngx_http_mitte_sender_t *sender,
    ngx_http_mitte_send_t *s);
static ngx_int_t ngx_http_mitte_send_hold(ngx_http_mitte_claim_t *cl,
    time_t ttl, ngx_http_mitte_redis_handler_pt handler, void *data);
static void ngx_http_mitte_send_claimed(redisReply *reply, void *data,
    ngx_uint_t rc);
static ngx_uint_t ngx_http_mitte_send_verdict(redisReply *reply,
    ngx_uint_t rc, uint64_t *wait, ngx_uint_t *state);
static void ngx_http_mitte_send_mark(ngx_http_mitte_sender_t *sender,
    ngx_http_mitte_claim_t *cl);
static void ngx_http_mitte_send_marked(redisReply *reply, void *data,
    ngx_uint_t rc);
static void ngx_http_mitte_send_remark(ngx_http_mitte_sender_t *sender);
static void ngx_http_mitte_send_ignore(redisReply *reply, void *data,
    ngx_uint_t rc);
static size_t ngx_http_mitte_send_key(u_char *buf, size_t size,
    ngx_http_mitte_claim_t *cl);
static time_t ngx_http_mitte_send_claim_ttl(ngx_http_mitte_sender_t *sender);


static ngx_http_mitte_sender_t  ngx_http_mitte_sender;


/*
 * A send's claim: taken when free, or renewed when it is this instance's
 * ({1}); {2, "sent"|"failed"} when it was finished; {0, ms left} when
 * another instance holds it. KEYS[1] the send's key, ARGV[1] this
 * instance, ARGV[2] the TTL (s).
 */

static ngx_http_mitte_redis_script_t  ngx_http_mitte_claim_script = {
    "local v = redis.call('GET', KEYS[1])\n"
    "if not v or v == ARGV[1] then\n"
    "    redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])\n"
    "    return {1}\n"
    "end\n"
    "if string.sub(v, 1, 5) == 'done:' then\n"
    "    return {2, string.sub(v, 6)}\n"
    "end\n"
    "return {0, redis.call('PTTL', KEYS[1])}\n",
    ""
};


ngx_int_t
ngx_http_mitte_send_init_module(ngx_cycle_t *cycle)
{
    static ngx_uint_t  initialized;

    if (!initialized) {
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
            ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                          "mitte: curl_global_init() failed");
            return NGX_ERROR;
        }

        initialized = 1;
    }

    return NGX_OK;
}


ngx_int_t
ngx_http_mitte_send_init_process(ngx_cycle_t *cycle)
{
    ngx_http_mitte_sender_t     *sender;
    ngx_http_mitte_main_conf_t  *mmcf;

    mmcf = ngx_http_mitte_process_conf(cycle, 1);
    if (mmcf == NULL) {
        return NGX_OK;
    }

    sender = &ngx_http_mitte_sender;

    sender->mmcf = mmcf;
    sender->zone = mmcf->shm_zone->data;
    sender->log = cycle->log;

    ngx_queue_init(&sender->jobs);
    ngx_queue_init(&sender->claims);

    /* outcomes a worker before this one could not mark are looked for */
    sender->unmarked = (mmcf->redis != NULL);

    sender->multi = curl_multi_init();
    if (sender->multi == NULL) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                      "mitte: curl_multi_init() failed");
        return NGX_ERROR;
    }

    curl_multi_setopt(sender->multi, CURLMOPT_SOCKETFUNCTION,
                      ngx_http_mitte_curl_socket);
    curl_multi_setopt(sender->multi, CURLMOPT_SOCKETDATA, sender);
    curl_multi_setopt(sender->multi, CURLMOPT_TIMERFUNCTION,
                      ngx_http_mitte_curl_timer);
    curl_multi_setopt(sender->multi, CURLMOPT_TIMERDATA, sender);

    sender->poll.handler = ngx_http_mitte_send_poll;
    sender->poll.data = sender;
    sender->poll.log = cycle->log;
    sender->poll.cancelable = 1;

    sender->timer.handler = ngx_http_mitte_curl_timeout;
    sender->timer.data = sender;
    sender->timer.log = cycle->log;
    sender->timer.cancelable = 1;

    sender->active = 1;

    ngx_add_timer(&sender->poll, NGX_HTTP_MITTE_SEND_POLL);

    return NGX_OK;
}


/* at exit, sends under way go back to pending for the next worker 0 */

void
ngx_http_mitte_send_exit_process(ngx_cycle_t *cycle)
{
    ngx_uint_t                   i;
    ngx_queue_t                 *q;
    ngx_http_mitte_job_t        *job;
    ngx_http_mitte_send_t       *s;
    ngx_http_mitte_sender_t     *sender;
    ngx_http_mitte_zone_ctx_t   *ctx;

    sender = &ngx_http_mitte_sender;

    if (!sender->active) {
        return;
    }

    sender->active = 0;
    ctx = sender->zone;

    ngx_shmtx_lock(&ctx->shpool->mutex);

    for (i = 0; i < 2; i++) {
        for (q = ngx_queue_head(&ctx->sh->pending[i]);
             q != ngx_queue_sentinel(&ctx->sh->pending[i]);
             q = ngx_queue_next(q))
        {
            s = ngx_queue_data(q, ngx_http_mitte_send_t, queue);

            if (s->state == NGX_HTTP_MITTE_SEND_SENDING
                && s->owner == (uint32_t) ngx_pid)
            {
                s->state = NGX_HTTP_MITTE_SEND_PENDING;
            }
        }
    }

    ngx_shmtx_unlock(&ctx->shpool->mutex);

    /* the transfers are abandoned; curl gives its sockets back */

    while (!ngx_queue_empty(&sender->jobs)) {
        q = ngx_queue_head(&sender->jobs);
        job = ngx_queue_data(q, ngx_http_mitte_job_t, queue);

        ngx_queue_remove(q);
        curl_multi_remove_handle(sender->multi, job->easy);
        ngx_http_mitte_job_free(job);
    }

    if (sender->timer.timer_set) {
        ngx_del_timer(&sender->timer);
    }

    if (sender->poll.timer_set) {
        ngx_del_timer(&sender->poll);
    }

    curl_multi_cleanup(sender->multi);
    sender->multi = NULL;
}


static void
ngx_http_mitte_send_poll(ngx_event_t *ev)
{
    ngx_http_mitte_sender_t  *sender = ev->data;

    if (ngx_exiting || ngx_quit || ngx_terminate) {
        return;
    }

    ngx_http_mitte_send_take(sender);

    if (sender->unmarked && ngx_http_mitte_redis_ready() == NGX_OK) {
        ngx_http_mitte_send_remark(sender);
    }

    ngx_add_timer(ev, NGX_HTTP_MITTE_SEND_POLL);
}


/* takes pending sends that are due, as many as the cap allows */

static void
ngx_http_mitte_send_take(ngx_http_mitte_sender_t *sender)
{
    uint64_t                    now, lease;
    ngx_uint_t                  i, n;
    ngx_queue_t                *q;
    ngx_time_t                 *tp;
    ngx_http_mitte_send_t      *s, *take[NGX_HTTP_MITTE_SEND_INFLIGHT];
    ngx_http_mitte_zone_ctx_t  *ctx;

    if (sender->inflight + sender->nclaims >= NGX_HTTP_MITTE_SEND_INFLIGHT) {
        return;
    }

    ctx = sender->zone;

    tp = ngx_timeofday();
    now = (uint64_t) tp->sec * 1000 + tp->msec;

    /* a send left "sending" by a worker that died is taken over */
    lease = sender->mmcf->webhook_timeout + 60000;

    n = 0;

    ngx_shmtx_lock(&ctx->shpool->mutex);

    for (i = 0; i < 2; i++) {
        for (q = ngx_queue_head(&ctx->sh->pending[i]);
             q != ngx_queue_sentinel(&ctx->sh->pending[i])
             && sender->inflight + sender->nclaims + n
                < NGX_HTTP_MITTE_SEND_INFLIGHT;
             q = ngx_queue_next(q))
        {
            s = ngx_queue_data(q, ngx_http_mitte_send_t, queue);

            if (s->state == NGX_HTTP_MITTE_SEND_SENDING
                && now < s->updated_ms + lease)
            {
                continue;
            }

            if (s->next_ms > now
                || ngx_http_mitte_send_busy(sender, s, take, n))
            {
                continue;
            }

            s->state = NGX_HTTP_MITTE_SEND_SENDING;
            s->owner = (uint32_t) ngx_pid;
            s->updated_ms = now;

            take[n++] = s;
        }
    }

    ngx_shmtx_unlock(&ctx->shpool->mutex);

    for (i = 0; i < n; i++) {

        if ((take[i]->flags & NGX_HTTP_MITTE_SEND_SHARED)
            && sender->mmcf->redis)
        {
            /* read without the lock: this worker owns it, sending */

            if (ngx_http_mitte_send_claim(sender, take[i]) == NGX_OK) {
                /* the reply goes on */
                continue;
            }

            if (take[i]->flags & NGX_HTTP_MITTE_SEND_STANDBY) {
                /* no Redis: the creator sends it (fail-open) */
                ngx_http_mitte_send_wait(sender, take[i],
                                         NGX_HTTP_MITTE_SEND_TAKEOVER);
                continue;
            }

            /* no Redis: sent unclaimed, as without it (fail-open) */
        }

        if (ngx_http_mitte_send_start(sender, take[i]) != NGX_OK) {
            ngx_http_mitte_send_finish(sender, take[i],
                                       NGX_HTTP_MITTE_SEND_PENDING,
                                       (u_char *) "could not start", 15, -1);
        }
    }
}


/*
 * 1 when the send's host (or the email API) has its share in flight; with
 * the zone locked, so it compares hashes of hosts, made once per send.
 */

static ngx_uint_t
ngx_http_mitte_send_busy(ngx_http_mitte_sender_t *sender,
    ngx_http_mitte_send_t *s, ngx_http_mitte_send_t **take, ngx_uint_t n)
{
    ngx_uint_t               i, busy;
    ngx_queue_t             *q;
    ngx_http_mitte_job_t    *job;
    ngx_http_mitte_claim_t  *cl;

    if (s->channel == NGX_HTTP_MITTE_CHANNEL_WEBHOOK && s->host_hash == 0) {
        s->host_hash = ngx_http_mitte_host_hash(s->data, s->target_len);
    }

    busy = 0;

    for (q = ngx_queue_head(&sender->jobs);
         q != ngx_queue_sentinel(&sender->jobs);
         q = ngx_queue_next(q))
    {
        job = ngx_queue_data(q, ngx_http_mitte_job_t, queue);

        busy += (job->channel == s->channel
                 && (s->channel == NGX_HTTP_MITTE_CHANNEL_EMAIL
                     || job->host_hash == s->host_hash));
    }

    for (q = ngx_queue_head(&sender->claims);
         q != ngx_queue_sentinel(&sender->claims);
         q = ngx_queue_next(q))
    {
        cl = ngx_queue_data(q, ngx_http_mitte_claim_t, queue);

        busy += (cl->channel == s->channel
                 && (s->channel == NGX_HTTP_MITTE_CHANNEL_EMAIL
                     || cl->host_hash == s->host_hash));
    }

    for (i = 0; i < n; i++) {
        busy += (take[i]->channel == s->channel
                 && (s->channel == NGX_HTTP_MITTE_CHANNEL_EMAIL
                     || take[i]->host_hash == s->host_hash));
    }

    return busy >= ((s->channel == NGX_HTTP_MITTE_CHANNEL_EMAIL)
                    ? NGX_HTTP_MITTE_SEND_EMAIL
                    : NGX_HTTP_MITTE_SEND_PER_HOST);
}


/*
 * The hash of a webhook url's host and port (lib/ parses the url, as it
 * did when the preferences were saved), never 0.
 */

static uint32_t
ngx_http_mitte_host_hash(u_char *url, size_t len)
{
    uint32_t     hash;
    mitte_url_t  u;

    if (mitte_url_parse((char *) url, len, &u) != 0) {
        return 1;
    }

    hash = (uint32_t) ngx_hash_key_lc(url + u.host, u.host_len) ^ u.port;

    return hash ? hash : 1;
}


static ngx_int_t
ngx_http_mitte_send_start(ngx_http_mitte_sender_t *sender,
    ngx_http_mitte_send_t *s)
{
    CURL                  *easy;
    ngx_int_t              rc;
    ngx_http_mitte_job_t  *job;
    u_char                 id[NGX_HTTP_MITTE_ID_LEN + 1];

    job = ngx_calloc(sizeof(ngx_http_mitte_job_t), sender->log);
    if (job == NULL) {
        return NGX_ERROR;
    }

    job->send = s;
    job->channel = s->channel;
    job->retry_after = -1;

    job->host_hash = s->host_hash;

    easy = curl_easy_init();
    if (easy == NULL) {
        ngx_free(job);
        return NGX_ERROR;
    }

    job->easy = easy;

    /* the zone's record is read without the lock: this worker owns it */

    ngx_sprintf(id, NGX_HTTP_MITTE_ID_FORMAT "%Z", s->created_ms, s->note_seq);

    job->url = ngx_alloc(ngx_max(s->target_len, sender->mmcf->email_api.len)
                         + 1, sender->log);
    if (job->url == NULL) {
        goto failed;
    }

    if (s->channel == NGX_HTTP_MITTE_CHANNEL_EMAIL) {
        rc = ngx_http_mitte_send_email(sender, job, s, id);

    } else {
        rc = ngx_http_mitte_send_webhook(sender, job, s, id);
    }

    if (rc != NGX_OK) {
        goto failed;
    }

    curl_easy_setopt(easy, CURLOPT_URL, job->url);
    curl_easy_setopt(easy, CURLOPT_POST, 1L);
    curl_easy_setopt(easy, CURLOPT_POSTFIELDS, job->body);
    curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE, (long) job->body_len);
    curl_easy_setopt(easy, CURLOPT_HTTPHEADER, job->headers);
    curl_easy_setopt(easy, CURLOPT_USERAGENT, NGX_HTTP_MITTE_USER_AGENT);
    curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS,
                     (long) sender->mmcf->webhook_timeout);
    curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(easy, CURLOPT_PROXY, "");
    curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(easy, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, ngx_http_mitte_curl_body);
    curl_easy_setopt(easy, CURLOPT_WRITEDATA, job);
    curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION,
                     ngx_http_mitte_curl_header);
    curl_easy_setopt(easy, CURLOPT_HEADERDATA, job);
    curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, job->error);
    curl_easy_setopt(easy, CURLOPT_PRIVATE, job);

#if (LIBCURL_VERSION_NUM >= 0x075700)
    /* a transfer given up never waits for a resolver thread to finish */
    curl_easy_setopt(easy, CURLOPT_QUICK_EXIT, 1L);
#endif

    if (s->channel == NGX_HTTP_MITTE_CHANNEL_WEBHOOK) {
        curl_easy_setopt(easy, CURLOPT_OPENSOCKETFUNCTION,
                         ngx_http_mitte_curl_open);
        curl_easy_setopt(easy, CURLOPT_OPENSOCKETDATA, job);

    } else {
        /*
         * The email API's connections are not checked against the SSRF
         * policy: none of them may stay in the cache for a webhook to
         * the same host to reuse unchecked.
         */
        curl_easy_setopt(easy, CURLOPT_FORBID_REUSE, 1L);
    }

    if (curl_multi_add_handle(sender->multi, easy) != CURLM_OK) {
        goto failed;
    }

    ngx_queue_insert_tail(&sender->jobs, &job->queue);
    sender->inflight++;

    ngx_log_debug4(NGX_LOG_DEBUG_HTTP, sender->log, 0,
                   "mitte send: %s %s to \"%s\", attempt %ui",
                   (s->channel == NGX_HTTP_MITTE_CHANNEL_EMAIL)
                   ? "email" : "webhook", id, job->url,
                   (ngx_uint_t) s->attempts + 1);

    return NGX_OK;

failed:

    ngx_http_mitte_job_free(job);

    return NGX_ERROR;
}


static ngx_int_t
ngx_http_mitte_send_email(ngx_http_mitte_sender_t *sender,
    ngx_http_mitte_job_t *job, ngx_http_mitte_send_t *s, u_char *id)
{
    u_char                      *p, *message, *tmp;
    size_t                       len, html;
    const char                  *title;
    struct curl_slist           *h;
    ngx_http_mitte_main_conf_t  *mmcf;
    u_char                       line[512];

    mmcf = sender->mmcf;

    ngx_memcpy(job->url, mmcf->email_api.data, mmcf->email_api.len);
    job->url[mmcf->email_api.len] = '\0';

    message = s->data + s->target_len + s->secret_len;
    title = mitte_notify_title(s->type);

    (void) ngx_http_mitte_html(NULL, message, s->message_len, &html);

    len = sizeof("{\"from\":,\"to\":[],\"subject\":,\"text\":,"
                 "\"html\":\"<p></p>\"}") + 16
          + ngx_http_mitte_json_str_len(mmcf->email_from.data,
                                        mmcf->email_from.len)
          + ngx_http_mitte_json_str_len(s->data, s->target_len)
          + ngx_http_mitte_json_str_len((u_char *) title, ngx_strlen(title))
          + ngx_http_mitte_json_str_len(message, s->message_len)
          + html * 6;

    job->body = ngx_alloc(len, sender->log);
    if (job->body == NULL) {
        return NGX_ERROR;
    }

    p = job->body;
    p = ngx_cpymem(p, "{\"from\":", sizeof("{\"from\":") - 1);
    p = ngx_http_mitte_json_str(p, mmcf->email_from.data,
                                mmcf->email_from.len);
    p = ngx_cpymem(p, ",\"to\":[", sizeof(",\"to\":[") - 1);
    p = ngx_http_mitte_json_str(p, s->data, s->target_len);
    p = ngx_cpymem(p, "],\"subject\":", sizeof("],\"subject\":") - 1);
    p = ngx_http_mitte_json_str(p, (u_char *) title, ngx_strlen(title));
    p = ngx_cpymem(p, ",\"text\":", sizeof(",\"text\":") - 1);
    p = ngx_http_mitte_json_str(p, message, s->message_len);
    p = ngx_cpymem(p, ",\"html\":\"<p>", sizeof(",\"html\":\"<p>") - 1);

    /* the HTML-escaped message, then JSON-escaped */

    tmp = ngx_alloc(html + 1, sender->log);
    if (tmp == NULL) {
        return NGX_ERROR;
    }

    (void) ngx_http_mitte_html(tmp, message, s->message_len, &html);
    p += mitte_json_escape(p, tmp, html);
    ngx_free(tmp);

    p = ngx_cpymem(p, "</p>\"}", sizeof("</p>\"}") - 1);

    job->body_len = p - job->body;

    h = curl_slist_append(NULL, "Content-Type: application/json");
    if (h == NULL) {
        return NGX_ERROR;
    }

    job->headers = h;

    p = ngx_snprintf(line, sizeof(line) - 1, "Authorization: Bearer %V",
                     &mmcf->email_key);
    *p = '\0';

    h = curl_slist_append(job->headers, (char *) line);
    ngx_explicit_memzero(line, sizeof(line));

    if (h == NULL) {
        return NGX_ERROR;
    }

    ngx_sprintf(line, "Idempotency-Key: %s%Z", id);

    h = curl_slist_append(job->headers, (char *) line);
    if (h == NULL) {
        return NGX_ERROR;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_mitte_send_webhook(ngx_http_mitte_sender_t *sender,
    ngx_http_mitte_job_t *job, ngx_http_mitte_send_t *s, u_char *id)
{
    u_char             *message;
    size_t              len;
    int64_t             ts;
    struct curl_slist  *h;
    char                probe[1];
    u_char              line[128];
    char                sig[MITTE_WEBHOOK_SIG_LEN + 1];

    ngx_memcpy(job->url, s->data, s->target_len);
    job->url[s->target_len] = '\0';

    message = s->data + s->target_len + s->secret_len;

    len = mitte_notify_webhook_body(probe, sizeof(probe), s->format, s->type,
                                    (char *) message, s->message_len,
                                    (char *) s->slug, s->slug_len,
                                    (int64_t) s->created_ms);
    if (len == 0) {
        return NGX_ERROR;
    }

    job->body = ngx_alloc(len + 1, sender->log);
    if (job->body == NULL) {
        return NGX_ERROR;
    }

    (void) mitte_notify_webhook_body((char *) job->body, len + 1, s->format,
                                     s->type, (char *) message,
                                     s->message_len, (char *) s->slug,
                                     s->slug_len, (int64_t) s->created_ms);
    job->body_len = len;

    h = curl_slist_append(NULL, "Content-Type: application/json");
    if (h == NULL) {
        return NGX_ERROR;
    }

    job->headers = h;

    ngx_sprintf(line, "webhook-id: %s%Z", id);

    if (curl_slist_append(job->headers, (char *) line) == NULL) {
        return NGX_ERROR;
    }

    ts = ngx_time();

    ngx_sprintf(line, "webhook-timestamp: %L%Z", ts);

    if (curl_slist_append(job->headers, (char *) line) == NULL) {
        return NGX_ERROR;
    }

    if (s->secret_len) {
        if (mitte_webhook_sign((char *) s->data + s->target_len,
                               s->secret_len, (char *) id,
                               NGX_HTTP_MITTE_ID_LEN, ts, (char *) job->body,
                               job->body_len, sig, sizeof(sig))
            < 0)
        {
            return NGX_ERROR;
        }

        ngx_sprintf(line, "webhook-signature: %s%Z", sig);

        if (curl_slist_append(job->headers, (char *) line) == NULL) {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


static void
ngx_http_mitte_job_free(ngx_http_mitte_job_t *job)
{
    if (job->easy) {
        curl_easy_cleanup(job->easy);
    }

    if (job->headers) {
        curl_slist_free_all(job->headers);
    }

    if (job->url) {
        ngx_free(job->url);
    }

    if (job->body) {
        ngx_free(job->body);
    }

    ngx_free(job);
}


/* a transfer ended: sent, to be retried, or failed */

static void
ngx_http_mitte_send_done(ngx_http_mitte_sender_t *sender,
    ngx_http_mitte_job_t *job, CURLcode result)
{
    u_char      *p;
    long         code;
    size_t       len;
    ngx_uint_t   state;
    u_char       error[NGX_HTTP_MITTE_ERROR_MAX];

    code = 0;
    curl_easy_getinfo(job->easy, CURLINFO_RESPONSE_CODE, &code);

    state = NGX_HTTP_MITTE_SEND_PENDING;
    len = 0;

    if (result == CURLE_OK && code >= 200 && code <= 299) {
        state = NGX_HTTP_MITTE_SEND_SENT;

    } else if (job->blocked && result == CURLE_COULDNT_CONNECT) {
        /* refused every address it tried; an allowed one decides else */
        state = NGX_HTTP_MITTE_SEND_FAILED;
        len = ngx_sprintf(error, "blocked address") - error;

    } else if (result != CURLE_OK) {
        /* a network error or a timeout: retried */
        len = ngx_snprintf(error, sizeof(error), "%s",
                           job->error[0] ? job->error
                                         : curl_easy_strerror(result))
              - error;

    } else {
        p = ngx_snprintf(error, sizeof(error), "HTTP %l", code);

        if (code >= 300 && code <= 399) {
            p = ngx_snprintf(p, error + sizeof(error) - p,
                             ": redirects are not followed");
        }

        /* Resend explains itself: {"statusCode", "name", "message"} */

        p = ngx_http_mitte_response_message(job, p, error + sizeof(error));

        len = p - error;

        if (code != 429 && code < 500) {
            state = NGX_HTTP_MITTE_SEND_FAILED;
        }
    }

    ngx_log_debug4(NGX_LOG_DEBUG_HTTP, sender->log, 0,
                   "mitte send: \"%s\": curl %d, HTTP %l, state %ui",
                   job->url, (int) result, code, state);

    ngx_http_mitte_send_finish(sender, job->send, state, error, len,
                               job->retry_after);
}


/*
 * ": <message>" of a JSON answer's "message" string (Resend's errors are
 * {"statusCode", "name", "message"}), decoded; nothing when there is none
 */

static u_char *
ngx_http_mitte_response_message(ngx_http_mitte_job_t *job, u_char *p,
    u_char *last)
{
    size_t  n;
    u_char  msg[NGX_HTTP_MITTE_ERROR_MAX];

    if (job->response_len == 0
        || job->response_len == NGX_HTTP_MITTE_RESPONSE_MAX)
    {
        /* nothing, or cut short: not a whole document */
        return p;
    }

    n = mitte_reply_message((char *) job->response, job->response_len,
                            (char *) msg, sizeof(msg));

    if (n) {
        p = ngx_slprintf(p, last, ": %*s", n, msg);
    }

    return p;
}


static void
ngx_http_mitte_send_finish(ngx_http_mitte_sender_t *sender,
    ngx_http_mitte_send_t *s, ngx_uint_t state, u_char *error, size_t len,
    int64_t retry_after)
{
    uint64_t                    now, delay;
    ngx_uint_t                  shared;
    ngx_time_t                 *tp;
    ngx_http_mitte_sh_t        *sh;
    ngx_http_mitte_claim_t     *cl;
    ngx_http_mitte_zone_ctx_t  *ctx;

    ctx = sender->zone;
    sh = ctx->sh;
    cl = NULL;

    tp = ngx_timeofday();
    now = (uint64_t) tp->sec * 1000 + tp->msec;

    ngx_shmtx_lock(&ctx->shpool->mutex);

    shared = (s->flags & NGX_HTTP_MITTE_SEND_SHARED) && sender->mmcf->redis;

    if (s->attempts < 255) {
        s->attempts++;
    }

    s->updated_ms = now;
    s->owner = 0;

    if (state == NGX_HTTP_MITTE_SEND_SENT) {
        s->error_len = 0;

    } else {
        s->error_len = (uint16_t) ngx_min(len, NGX_HTTP_MITTE_ERROR_MAX);
        ngx_memcpy(s->error, error, s->error_len);
    }

    if (state == NGX_HTTP_MITTE_SEND_PENDING
        && s->attempts > sender->mmcf->delivery_retries)
    {
        state = NGX_HTTP_MITTE_SEND_FAILED;
    }

    if (state == NGX_HTTP_MITTE_SEND_PENDING) {
        delay = (uint64_t) 1000 << ngx_min(s->attempts - 1, 20);

        if (retry_after >= 0
            && (uint64_t) retry_after * 1000 > delay)
        {
            delay = (uint64_t) ngx_min(retry_after, 86400) * 1000;
        }

        s->state = NGX_HTTP_MITTE_SEND_PENDING;
        s->next_ms = now + delay;

        if (shared) {
            cl = ngx_http_mitte_send_copy(sender, s);
        }

        ngx_shmtx_unlock(&ctx->shpool->mutex);

        if (cl) {
            /* the claim is kept over the wait, and the next attempt */
            (void) ngx_http_mitte_send_hold(cl,
                       (time_t) (delay / 1000)
                       + ngx_http_mitte_send_claim_ttl(sender),
                       ngx_http_mitte_send_ignore, NULL);
            ngx_free(cl);
        }

        return;
    }

    s->state = (uint8_t) state;

    sh->counters.sends[s->channel][state == NGX_HTTP_MITTE_SEND_SENT ? 0 : 1]++;

    if (shared) {
        /* the outcome, for Redis and the other instances */
        s->flags |= NGX_HTTP_MITTE_SEND_UNMARKED;
        cl = ngx_http_mitte_send_copy(sender, s);
    }

    ngx_http_mitte_send_retire(ctx, s);

    ngx_shmtx_unlock(&ctx->shpool->mutex);

    if (cl) {
        ngx_http_mitte_send_mark(sender, cl);

    } else if (shared) {
        sender->unmarked++;
    }
}


/* with the zone locked: a finished send, from its queue to the done list */

static void
ngx_http_mitte_send_retire(ngx_http_mitte_zone_ctx_t *ctx,
    ngx_http_mitte_send_t *s)
{
    ngx_queue_t            *q;
    ngx_http_mitte_sh_t    *sh;
    ngx_http_mitte_send_t  *old;

    sh = ctx->sh;

    ngx_queue_remove(&s->queue);
    sh->npending[s->channel]--;

    ngx_queue_insert_head(&sh->done, &s->queue);
    sh->ndone++;

    while (sh->ndone > NGX_HTTP_MITTE_OUTBOX_DONE) {
        q = ngx_queue_last(&sh->done);
        old = ngx_queue_data(q, ngx_http_mitte_send_t, queue);

        ngx_queue_remove(q);
        ngx_slab_free_locked(ctx->shpool, old);
        sh->ndone--;
    }
}


/*
 * With the zone locked: a send finished by another instance, as it ended
 * there ("attempts" -1: this instance's count is kept); not counted in
 * this instance's sends
 */

static void
ngx_http_mitte_send_settle(ngx_http_mitte_zone_ctx_t *ctx,
    ngx_http_mitte_send_t *s, ngx_uint_t state, ngx_int_t attempts,
    u_char *error, size_t len)
{
    ngx_time_t  *tp;

    tp = ngx_timeofday();

    s->state = (uint8_t) state;
    s->owner = 0;
    s->updated_ms = (uint64_t) tp->sec * 1000 + tp->msec;
    s->flags &= ~NGX_HTTP_MITTE_SEND_UNMARKED;

    if (attempts >= 0) {
        s->attempts = (uint8_t) ngx_min(attempts, 255);
    }

    s->error_len = (uint16_t) ngx_min(len, NGX_HTTP_MITTE_ERROR_MAX);
    if (s->error_len) {
        ngx_memcpy(s->error, error, s->error_len);
    }

    ngx_http_mitte_send_retire(ctx, s);
}


/* a send taken, back to pending: looked at again "delay" ms later */

static void
ngx_http_mitte_send_wait(ngx_http_mitte_sender_t *sender,
    ngx_http_mitte_send_t *s, uint64_t delay)
{
    ngx_time_t                 *tp;
    ngx_http_mitte_zone_ctx_t  *ctx;

    ctx = sender->zone;
    tp = ngx_timeofday();

    ngx_shmtx_lock(&ctx->shpool->mutex);

    if (s->state == NGX_HTTP_MITTE_SEND_SENDING
        && s->owner == (uint32_t) ngx_pid)
    {
        s->state = NGX_HTTP_MITTE_SEND_PENDING;
        s->owner = 0;
        s->next_ms = (uint64_t) tp->sec * 1000 + tp->msec + delay;
    }

    ngx_shmtx_unlock(&ctx->shpool->mutex);
}


/* a send's identity and outcome copied out (locked, or owned): NULL on
 * an allocation failure */

static ngx_http_mitte_claim_t *
ngx_http_mitte_send_copy(ngx_http_mitte_sender_t *sender,
    ngx_http_mitte_send_t *s)
{
    ngx_http_mitte_claim_t  *cl;

    cl = ngx_alloc(sizeof(ngx_http_mitte_claim_t), sender->log);
    if (cl == NULL) {
        return NULL;
    }

    cl->send = s;
    cl->created_ms = s->created_ms;
    cl->note_seq = s->note_seq;
    cl->host_hash = s->host_hash;
    cl->channel = s->channel;
    cl->state = s->state;
    cl->attempts = s->attempts;
    cl->flags = s->flags;
    cl->user_len = s->user_len;
    ngx_memcpy(cl->user, s->user, s->user_len);
    cl->error_len = s->error_len;
    ngx_memcpy(cl->error, s->error, s->error_len);

    return cl;
}


/* "<prefix>{u:<user>}:send:<notification id>:<channel>" */

static size_t
ngx_http_mitte_send_key(u_char *buf, size_t size, ngx_http_mitte_claim_t *cl)
{
    u_char  id[NGX_HTTP_MITTE_ID_LEN + 1];

    ngx_sprintf(id, NGX_HTTP_MITTE_ID_FORMAT "%Z", cl->created_ms,
                cl->note_seq);

    return ngx_http_mitte_redis_key(buf, size, "{u:%*s}:send:%s:%s",
                                    (size_t) cl->user_len, cl->user, id,
                                    (cl->channel
                                     == NGX_HTTP_MITTE_CHANNEL_EMAIL)
                                    ? "email" : "webhook");
}


/* a claim outlasts an attempt (mitte_webhook_timeout) by a margin (s) */

static time_t
ngx_http_mitte_send_claim_ttl(ngx_http_mitte_sender_t *sender)
{
    return (time_t) (sender->mmcf->webhook_timeout + 999) / 1000
           + NGX_HTTP_MITTE_SEND_CLAIM_SLACK;
}


/* a send taken (owned, sending) is claimed before its attempt */

static ngx_int_t
ngx_http_mitte_send_claim(ngx_http_mitte_sender_t *sender,
    ngx_http_mitte_send_t *s)
{
    ngx_int_t                rc;
    ngx_http_mitte_claim_t  *cl;

    cl = ngx_http_mitte_send_copy(sender, s);
    if (cl == NULL) {
        return NGX_ERROR;
    }

    rc = ngx_http_mitte_send_hold(cl, ngx_http_mitte_send_claim_ttl(sender),
                                  ngx_http_mitte_send_claimed, cl);
    if (rc != NGX_OK) {
        ngx_free(cl);
        return rc;
    }

    ngx_queue_insert_tail(&sender->claims, &cl->queue);
    sender->nclaims++;

    return NGX_OK;
}


/* the claim script for "cl", with a TTL: NGX_OK when queued */

static ngx_int_t
ngx_http_mitte_send_hold(ngx_http_mitte_claim_t *cl, time_t ttl,
    ngx_http_mitte_redis_handler_pt handler, void *data)
{
    u_char       key[NGX_HTTP_MITTE_REDIS_KEY_MAX];
    u_char       num[NGX_TIME_T_LEN];
    size_t       argvlen[4];
    ngx_str_t    instance;
    const char  *argv[4];

    if (ngx_http_mitte_redis_ready() != NGX_OK) {
        return NGX_DECLINED;
    }

    ngx_http_mitte_redis_instance(&instance);

    if (instance.len == 0
        || ngx_http_mitte_redis_script(&ngx_http_mitte_claim_script)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    argv[0] = "1";
    argvlen[0] = 1;

    argv[1] = (const char *) key;
    argvlen[1] = ngx_http_mitte_send_key(key, sizeof(key), cl);

    if (argvlen[1] == 0) {
        return NGX_ERROR;
    }

    argv[2] = (const char *) instance.data;
    argvlen[2] = instance.len;

    argv[3] = (const char *) num;
    argvlen[3] = ngx_sprintf(num, "%T", ttl) - num;

    return ngx_http_mitte_redis_eval(handler, data,
                                     &ngx_http_mitte_claim_script, 4, argv,
                                     argvlen);
}


#define NGX_HTTP_MITTE_CLAIM_UNKNOWN    0
#define NGX_HTTP_MITTE_CLAIM_OURS       1
#define NGX_HTTP_MITTE_CLAIM_DONE       2
#define NGX_HTTP_MITTE_CLAIM_HELD       3
#define NGX_HTTP_MITTE_CLAIM_AWAY       4   /* this worker is leaving */


/* the claim's reply: sent, waits, or settled as it ended elsewhere */

static void
ngx_http_mitte_send_claimed(redisReply *reply, void *data, ngx_uint_t rc)
{
    ngx_http_mitte_claim_t *cl = data;

    uint64_t                    wait, now;
    ngx_uint_t                  verdict, state, standby;
    ngx_time_t                 *tp;
    const char                 *why;
    ngx_http_mitte_send_t      *s;
    ngx_http_mitte_sender_t    *sender;
    ngx_http_mitte_zone_ctx_t  *ctx;

    sender = &ngx_http_mitte_sender;
    ctx = sender->zone;

    ngx_queue_remove(&cl->queue);
    sender->nclaims--;

    s = cl->send;
    standby = cl->flags & NGX_HTTP_MITTE_SEND_STANDBY;
    wait = 0;
    state = NGX_HTTP_MITTE_SEND_FAILED;
    verdict = ngx_http_mitte_send_verdict(reply, rc, &wait, &state);

    tp = ngx_timeofday();
    now = (uint64_t) tp->sec * 1000 + tp->msec;

    ngx_shmtx_lock(&ctx->shpool->mutex);

    if (s->state != NGX_HTTP_MITTE_SEND_SENDING
        || s->owner != (uint32_t) ngx_pid
        || s->created_ms != cl->created_ms
        || s->note_seq != cl->note_seq
        || s->channel != cl->channel)
    {
        /* no longer this worker's */
        ngx_shmtx_unlock(&ctx->shpool->mutex);
        ngx_free(cl);
        return;
    }

    if (!sender->active || ngx_exiting || ngx_quit || ngx_terminate) {
        /* the next worker 0 claims it again */
        s->state = NGX_HTTP_MITTE_SEND_PENDING;
        s->owner = 0;
        verdict = NGX_HTTP_MITTE_CLAIM_AWAY;
    }

    switch (verdict) {

    case NGX_HTTP_MITTE_CLAIM_DONE:
        ngx_http_mitte_send_settle(ctx, s, state, -1,
                                   (u_char *) "failed on another instance",
                                   (state == NGX_HTTP_MITTE_SEND_FAILED)
                                   ? sizeof("failed on another instance") - 1
                                   : 0);
        break;

    case NGX_HTTP_MITTE_CLAIM_HELD:
        s->state = NGX_HTTP_MITTE_SEND_PENDING;
        s->owner = 0;
        s->next_ms = now + wait + NGX_HTTP_MITTE_SEND_RECHECK;
        break;

    case NGX_HTTP_MITTE_CLAIM_UNKNOWN:
        if (ngx_time() - sender->logged >= 60) {
            sender->logged = ngx_time();

            why = (rc == NGX_HTTP_MITTE_REDIS_TIMEOUT) ? "timed out"
                  : (rc == NGX_HTTP_MITTE_REDIS_LOST) ? "connection lost"
                  : (reply->type == REDIS_REPLY_ERROR) ? reply->str
                  : "unexpected reply";

            ngx_log_error(NGX_LOG_WARN, sender->log, 0,
                          "mitte: redis: a send's claim failed (%s): %s",
                          why, standby ? "the standby waits"
                                       : "sent without it");
        }

        if (standby) {
            s->state = NGX_HTTP_MITTE_SEND_PENDING;
            s->owner = 0;
            s->next_ms = now + NGX_HTTP_MITTE_SEND_TAKEOVER;
            break;
        }

        /* else sent unclaimed (fail-open) */

        /* fall through */

    case NGX_HTTP_MITTE_CLAIM_OURS:
        ngx_shmtx_unlock(&ctx->shpool->mutex);
        ngx_free(cl);

        if (ngx_http_mitte_send_start(sender, s) != NGX_OK) {
            ngx_http_mitte_send_finish(sender, s,
                                       NGX_HTTP_MITTE_SEND_PENDING,
                                       (u_char *) "could not start", 15, -1);
        }

        return;

    default: /* NGX_HTTP_MITTE_CLAIM_AWAY */
        break;
    }

    ngx_shmtx_unlock(&ctx->shpool->mutex);
    ngx_free(cl);
}


static ngx_uint_t
ngx_http_mitte_send_verdict(redisReply *reply, ngx_uint_t rc, uint64_t *wait,
    ngx_uint_t *state)
{
    redisReply  *r0, *r1;

    if (rc != NGX_HTTP_MITTE_REDIS_REPLY
        || reply->type != REDIS_REPLY_ARRAY
        || reply->elements < 1
        || reply->element[0]->type != REDIS_REPLY_INTEGER)
    {
        return NGX_HTTP_MITTE_CLAIM_UNKNOWN;
    }

    r0 = reply->element[0];
    r1 = (reply->elements > 1) ? reply->element[1] : NULL;

    if (r0->integer == 1) {
        return NGX_HTTP_MITTE_CLAIM_OURS;
    }

    if (r0->integer == 0 && r1 && r1->type == REDIS_REPLY_INTEGER) {
        *wait = (r1->integer > 0) ? (uint64_t) r1->integer : 0;
        return NGX_HTTP_MITTE_CLAIM_HELD;
    }

    if (r0->integer == 2 && r1 && r1->type == REDIS_REPLY_STRING) {

        if (r1->len == 4 && ngx_strncmp(r1->str, "sent", 4) == 0) {
            *state = NGX_HTTP_MITTE_SEND_SENT;
            return NGX_HTTP_MITTE_CLAIM_DONE;
        }

        if (r1->len == 6 && ngx_strncmp(r1->str, "failed", 6) == 0) {
            *state = NGX_HTTP_MITTE_SEND_FAILED;
            return NGX_HTTP_MITTE_CLAIM_DONE;
        }
    }

    return NGX_HTTP_MITTE_CLAIM_UNKNOWN;
}


/*
 * A send finished here: its key marked "done:<result>" (whether or not
 * the claim is still this instance's), and the entry "s" published for
 * the standbys; freeing "cl". Not queued: marked again later.
 */

static void
ngx_http_mitte_send_mark(ngx_http_mitte_sender_t *sender,
    ngx_http_mitte_claim_t *cl)
{
    u_char      *p;
    size_t       argvlen[5];
    const char  *argv[5], *result;
    u_char       key[NGX_HTTP_MITTE_REDIS_KEY_MAX];
    u_char       value[16], ttl[NGX_TIME_T_LEN];
    u_char       text[128 + 6 * (MITTE_USER_MAX + NGX_HTTP_MITTE_ERROR_MAX)];

    result = (cl->state == NGX_HTTP_MITTE_SEND_SENT) ? "sent" : "failed";

    argv[0] = "SET";
    argvlen[0] = 3;
    argv[1] = (const char *) key;
    argvlen[1] = ngx_http_mitte_send_key(key, sizeof(key), cl);
    argv[2] = (const char *) value;
    argvlen[2] = ngx_sprintf(value, "done:%s", result) - value;
    argv[3] = "EX";
    argvlen[3] = 2;
    argv[4] = (const char *) ttl;
    argvlen[4] = ngx_sprintf(ttl, "%T", (time_t) NGX_HTTP_MITTE_SEND_DONE_TTL)
                 - ttl;

    if (argvlen[1] == 0) {
        /* a key too long for the buffer: never marked */
        ngx_free(cl);
        return;
    }

    if (ngx_http_mitte_redis_ready() != NGX_OK
        || ngx_http_mitte_redis_command_argv(ngx_http_mitte_send_marked, cl,
                                             5, argv, argvlen)
           != NGX_OK)
    {
        sender->unmarked++;
        ngx_free(cl);
        return;
    }

    /* cl is the command's until its reply; the handler runs later */

    p = ngx_cpymem(text, "{\"k\":\"s\",\"u\":",
                   sizeof("{\"k\":\"s\",\"u\":") - 1);
    p = ngx_http_mitte_json_str(p, cl->user, cl->user_len);
    p = ngx_sprintf(p, ",\"id\":%uD,\"t\":%uL,\"c\":\"%s\",\"r\":\"%s\","
                       "\"a\":%uD,\"e\":",
                    cl->note_seq, cl->created_ms,
                    (cl->channel == NGX_HTTP_MITTE_CHANNEL_EMAIL)
                    ? "email" : "webhook",
                    result, (uint32_t) cl->attempts);
    p = ngx_http_mitte_json_str_null(p, cl->error, cl->error_len);
    *p++ = '}';

    /* the key decides; the entry only tells the standbys sooner */
    (void) ngx_http_mitte_redis_publish(ngx_http_mitte_send_ignore, NULL,
                                        text, p - text);
}


static void
ngx_http_mitte_send_marked(redisReply *reply, void *data, ngx_uint_t rc)
{
    ngx_http_mitte_claim_t *cl = data;

    ngx_http_mitte_send_t      *s;
    ngx_http_mitte_sender_t    *sender;
    ngx_http_mitte_zone_ctx_t  *ctx;

    sender = &ngx_http_mitte_sender;

    if (rc != NGX_HTTP_MITTE_REDIS_REPLY
        || reply->type != REDIS_REPLY_STATUS)
    {
        sender->unmarked++;
        ngx_free(cl);
        return;
    }

    ctx = sender->zone;
    s = cl->send;

    ngx_shmtx_lock(&ctx->shpool->mutex);

    /* unless the done list let it go meanwhile */

    if ((s->flags & NGX_HTTP_MITTE_SEND_UNMARKED)
        && s->state == cl->state
        && s->created_ms == cl->created_ms
        && s->note_seq == cl->note_seq
        && s->channel == cl->channel)
    {
        s->flags &= ~NGX_HTTP_MITTE_SEND_UNMARKED;
    }

    ngx_shmtx_unlock(&ctx->shpool->mutex);

    ngx_free(cl);
}


/* outcomes not marked yet (Redis was away), marked now, a few a poll */

static void
ngx_http_mitte_send_remark(ngx_http_mitte_sender_t *sender)
{
    ngx_uint_t                  i, n;
    ngx_queue_t                *q;
    ngx_http_mitte_send_t      *s;
    ngx_http_mitte_claim_t     *cl[NGX_HTTP_MITTE_SEND_MARKS];
    ngx_http_mitte_zone_ctx_t  *ctx;

    ctx = sender->zone;
    sender->unmarked = 0;
    n = 0;

    ngx_shmtx_lock(&ctx->shpool->mutex);

    for (q = ngx_queue_head(&ctx->sh->done);
         q != ngx_queue_sentinel(&ctx->sh->done);
         q = ngx_queue_next(q))
    {
        s = ngx_queue_data(q, ngx_http_mitte_send_t, queue);

        if (!(s->flags & NGX_HTTP_MITTE_SEND_UNMARKED)) {
            continue;
        }

        if (n == NGX_HTTP_MITTE_SEND_MARKS) {
            sender->unmarked = 1;
            break;
        }

        cl[n] = ngx_http_mitte_send_copy(sender, s);

        if (cl[n] == NULL) {
            sender->unmarked = 1;
            break;
        }

        n++;
    }

    ngx_shmtx_unlock(&ctx->shpool->mutex);

    for (i = 0; i < n; i++) {
        ngx_http_mitte_send_mark(sender, cl[i]);
    }
}


static void
ngx_http_mitte_send_ignore(redisReply *reply, void *data, ngx_uint_t rc)
{
    /* a renewal or a stream entry: nothing waits for it */
}


/*
 * The relay's entry "s" ({"k":"s","u","id","t","c","r","a","e"}): the
 * send it names, waiting here, settled as it ended on the instance that
 * claimed it; one under way here is left to its own claim
 */

ngx_int_t
ngx_http_mitte_send_relay(ngx_http_mitte_main_conf_t *mmcf, cJSON *entry)
{
    cJSON                      *u, *id, *t, *c, *r, *a, *e;
    size_t                      len, elen;
    uint32_t                    seq;
    uint64_t                    created;
    ngx_int_t                   attempts;
    ngx_uint_t                  channel, state;
    ngx_queue_t                *q;
    ngx_http_mitte_send_t      *s;
    ngx_http_mitte_zone_ctx_t  *ctx;

    u = cJSON_GetObjectItemCaseSensitive(entry, "u");
    id = cJSON_GetObjectItemCaseSensitive(entry, "id");
    t = cJSON_GetObjectItemCaseSensitive(entry, "t");
    c = cJSON_GetObjectItemCaseSensitive(entry, "c");
    r = cJSON_GetObjectItemCaseSensitive(entry, "r");
    a = cJSON_GetObjectItemCaseSensitive(entry, "a");
    e = cJSON_GetObjectItemCaseSensitive(entry, "e");

    if (!cJSON_IsString(u) || !cJSON_IsNumber(id) || !cJSON_IsNumber(t)
        || !cJSON_IsString(c) || !cJSON_IsString(r)
        || id->valuedouble < 1 || id->valuedouble > 4294967295.0
        || t->valuedouble < 0)
    {
        return NGX_ERROR;
    }

    len = ngx_strlen(u->valuestring);

    if (len == 0 || len > MITTE_USER_MAX) {
        return NGX_ERROR;
    }

    if (ngx_strcmp(c->valuestring, "email") == 0) {
        channel = NGX_HTTP_MITTE_CHANNEL_EMAIL;

    } else if (ngx_strcmp(c->valuestring, "webhook") == 0) {
        channel = NGX_HTTP_MITTE_CHANNEL_WEBHOOK;

    } else {
        return NGX_ERROR;
    }

    if (ngx_strcmp(r->valuestring, "sent") == 0) {
        state = NGX_HTTP_MITTE_SEND_SENT;

    } else if (ngx_strcmp(r->valuestring, "failed") == 0) {
        state = NGX_HTTP_MITTE_SEND_FAILED;

    } else {
        return NGX_ERROR;
    }

    attempts = (cJSON_IsNumber(a) && a->valuedouble >= 0)
               ? (ngx_int_t) ngx_min(a->valuedouble, 255) : -1;
    elen = (cJSON_IsString(e) && state == NGX_HTTP_MITTE_SEND_FAILED)
           ? ngx_strlen(e->valuestring) : 0;

    seq = (uint32_t) id->valuedouble;
    created = (uint64_t) t->valuedouble;

    ctx = mmcf->shm_zone->data;

    ngx_shmtx_lock(&ctx->shpool->mutex);

    for (q = ngx_queue_head(&ctx->sh->pending[channel]);
         q != ngx_queue_sentinel(&ctx->sh->pending[channel]);
         q = ngx_queue_next(q))
    {
        s = ngx_queue_data(q, ngx_http_mitte_send_t, queue);

        if (s->note_seq != seq || s->created_ms != created
            || s->user_len != len
            || ngx_memcmp(s->user, u->valuestring, len) != 0
            || !(s->flags & NGX_HTTP_MITTE_SEND_SHARED))
        {
            continue;
        }

        if (s->state != NGX_HTTP_MITTE_SEND_SENDING) {
            ngx_http_mitte_send_settle(ctx, s, state, attempts,
                                       elen ? (u_char *) e->valuestring
                                            : NULL,
                                       elen);
        }

        break;
    }

    ngx_shmtx_unlock(&ctx->shpool->mutex);

    return NGX_OK;
}


static void
ngx_http_mitte_curl_action(ngx_http_mitte_sender_t *sender, curl_socket_t s,
    int flags)
{
    int  running;

    (void) curl_multi_socket_action(sender->multi, s, flags, &running);

    ngx_http_mitte_curl_info(sender);
}


static void
ngx_http_mitte_curl_info(ngx_http_mitte_sender_t *sender)
{
    int                    left;
    CURL                  *easy;
    CURLMsg               *msg;
    ngx_uint_t             done;
    ngx_http_mitte_job_t  *job;

    done = 0;

    while ((msg = curl_multi_info_read(sender->multi, &left))) {

        if (msg->msg != CURLMSG_DONE) {
            continue;
        }

        easy = msg->easy_handle;
        job = NULL;
        curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **) &job);

        if (sender->active) {
            ngx_http_mitte_send_done(sender, job, msg->data.result);
        }

        curl_multi_remove_handle(sender->multi, easy);
        ngx_queue_remove(&job->queue);
        ngx_http_mitte_job_free(job);

        sender->inflight--;
        done++;
    }

    if (done && sender->active && !ngx_exiting) {
        ngx_http_mitte_send_take(sender);
    }
}


static int
ngx_http_mitte_curl_socket(CURL *easy, curl_socket_t s, int what,
    void *userp, void *socketp)
{
    ngx_http_mitte_sender_t *sender = userp;

    ngx_connection_t  *c;

    c = socketp;

    if (what == CURL_POLL_REMOVE) {
        if (c) {
            if (c->read->active) {
                ngx_del_event(c->read, NGX_READ_EVENT, 0);
            }

            if (c->write->active) {
                ngx_del_event(c->write, NGX_WRITE_EVENT, 0);
            }

            if (c->read->posted) {
                ngx_delete_posted_event(c->read);
            }

            if (c->write->posted) {
                ngx_delete_posted_event(c->write);
            }

            curl_multi_assign(sender->multi, s, NULL);

            c->fd = (ngx_socket_t) -1;
            ngx_free_connection(c);
        }

        return 0;
    }

    if (c == NULL) {
        c = ngx_get_connection(s, sender->log);
        if (c == NULL) {
            return -1;
        }

        c->data = sender;
        c->read->handler = ngx_http_mitte_curl_read;
        c->write->handler = ngx_http_mitte_curl_write;
        c->read->log = sender->log;
        c->write->log = sender->log;

        curl_multi_assign(sender->multi, s, c);
    }

    if ((what & CURL_POLL_IN) && !c->read->active) {
        if (ngx_add_event(c->read, NGX_READ_EVENT, 0) != NGX_OK) {
            return -1;
        }

    } else if (!(what & CURL_POLL_IN) && c->read->active) {
        ngx_del_event(c->read, NGX_READ_EVENT, 0);
    }

    if ((what & CURL_POLL_OUT) && !c->write->active) {
        if (ngx_add_event(c->write, NGX_WRITE_EVENT, 0) != NGX_OK) {
            return -1;
        }

    } else if (!(what & CURL_POLL_OUT) && c->write->active) {
        ngx_del_event(c->write, NGX_WRITE_EVENT, 0);
    }

    return 0;
}


static int
ngx_http_mitte_curl_timer(CURLM *multi, long timeout_ms, void *userp)
{
    ngx_http_mitte_sender_t *sender = userp;

    if (timeout_ms < 0) {
        if (sender->timer.timer_set) {
            ngx_del_timer(&sender->timer);
        }

        return 0;
    }

    ngx_add_timer(&sender->timer, timeout_ms ? (ngx_msec_t) timeout_ms : 1);

    return 0;
}


static void
ngx_http_mitte_curl_timeout(ngx_event_t *ev)
{
    ngx_http_mitte_curl_action(ev->data, CURL_SOCKET_TIMEOUT, 0);
}


static void
ngx_http_mitte_curl_read(ngx_event_t *ev)
{
    ngx_connection_t  *c = ev->data;

    ngx_http_mitte_curl_action(c->data, c->fd, CURL_CSELECT_IN);
}


static void
ngx_http_mitte_curl_write(ngx_event_t *ev)
{
    ngx_connection_t  *c = ev->data;

    ngx_http_mitte_curl_action(c->data, c->fd, CURL_CSELECT_OUT);
}


/* SSRF: every address a webhook connects to, checked before socket() */

static curl_socket_t
ngx_http_mitte_curl_open(void *data, curlsocktype purpose,
    struct curl_sockaddr *addr)
{
    ngx_http_mitte_job_t *job = data;

    ngx_array_t              *allow;
    ngx_http_mitte_sender_t  *sender;

    sender = &ngx_http_mitte_sender;
    allow = sender->mmcf->webhook_allow;

    if (mitte_addr_blocked(&addr->addr, allow ? allow->elts : NULL,
                           allow ? allow->nelts : 0))
    {
        job->blocked = 1;
        return CURL_SOCKET_BAD;
    }

    return socket(addr->family, addr->socktype, addr->protocol);
}


static size_t
ngx_http_mitte_curl_body(char *ptr, size_t size, size_t n, void *data)
{
    ngx_http_mitte_job_t *job = data;

    size_t  len;

    len = ngx_min(size * n, NGX_HTTP_MITTE_RESPONSE_MAX - job->response_len);

    ngx_memcpy(job->response + job->response_len, ptr, len);
    job->response_len += len;

    return size * n;
}


static size_t
ngx_http_mitte_curl_header(char *ptr, size_t size, size_t n, void *data)
{
    ngx_http_mitte_job_t *job = data;

    u_char     *p, *end;
    size_t      len;
    ngx_int_t   v;

    len = size * n;

    if (len > 12 && ngx_strncasecmp((u_char *) ptr, (u_char *) "Retry-After:",
                                    12) == 0)
    {
        p = (u_char *) ptr + 12;
        end = (u_char *) ptr + len;

        while (p < end && (*p == ' ' || *p == '\t')) {
            p++;
        }

        while (end > p && (end[-1] == CR || end[-1] == LF || end[-1] == ' '))
        {
            end--;
        }

        v = ngx_atoi(p, end - p);

        if (v == NGX_ERROR) {
            /* an HTTP date */
            v = ngx_parse_http_time(p, end - p);

            if (v != NGX_ERROR) {
                v = (v > ngx_time()) ? v - ngx_time() : 0;
            }
        }

        if (v != NGX_ERROR) {
            job->retry_after = v;
        }
    }

    return len;
}


/*
 * Escapes &, <, >, " and ' for HTML; with dst NULL only measures. Sets
 * *need to the escaped length.
 */

static u_char *
ngx_http_mitte_html(u_char *dst, u_char *src, size_t len, size_t *need)
{
    size_t       n;
    const char  *e;
    u_char      *end;

    n = 0;
    end = src + len;

    for ( /* void */ ; src < end; src++) {

        switch (*src) {
        case '&':  e = "&amp;";  break;
        case '<':  e = "&lt;";   break;
        case '>':  e = "&gt;";   break;
        case '"':  e = "&quot;"; break;
        case '\'': e = "&#39;";  break;
        default:   e = NULL;
        }

        if (e) {
            if (dst) {
                dst = ngx_cpymem(dst, e, ngx_strlen(e));
            }

            n += ngx_strlen(e);
            continue;
        }

        if (dst) {
            *dst++ = *src;
        }

        n++;
    }

    *need = n;

    return dst;
}
