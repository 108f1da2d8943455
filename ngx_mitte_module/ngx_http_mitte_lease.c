/*
 * Copyright (C) ngx_mitte_module authors
 *
 * The monthly quota across a cluster (mitte_redis): each worker passes
 * requests on a lease of the month's remaining quota, granted by a Lua
 * script on "<prefix>{u:<user>}:q:<YYYYMM>". Nothing on the request path
 * waits for Redis: the check reads this worker's table only, and the
 * calls for more lease are queued. docs/cluster.md ("The quota") gives
 * the rules and the proof of the bound (at most ceil(1%) over).
 */


#include "ngx_http_mitte_module.h"
#include "ngx_http_mitte_stream.h"
#include "ngx_http_mitte_notify.h"
#include "ngx_http_mitte_redis.h"
#include "ngx_http_mitte_cluster.h"
#include "mitte_notify.h"


#define NGX_HTTP_MITTE_LEASE_SLOT_BITS  12
#define NGX_HTTP_MITTE_LEASE_SLOTS      (1 << NGX_HTTP_MITTE_LEASE_SLOT_BITS)
#define NGX_HTTP_MITTE_LEASE_PROBES     16
#define NGX_HTTP_MITTE_LEASE_TICK       1000    /* ms */
#define NGX_HTTP_MITTE_LEASE_IDLE       2000    /* ms: unused lease back */
#define NGX_HTTP_MITTE_LEASE_FORGET     60000   /* ms: an idle entry freed */
#define NGX_HTTP_MITTE_LEASE_RETRY      1000    /* ms: asked again at limit */
#define NGX_HTTP_MITTE_LEASE_HOLDERS    5       /* ticks between counts */
#define NGX_HTTP_MITTE_LEASE_MAX_HOLDERS  64    /* workers assumed per
                                                   instance when unknown */
#define NGX_HTTP_MITTE_LEASE_WANT_MIN   16
#define NGX_HTTP_MITTE_LEASE_WANT_MAX   65536
#define NGX_HTTP_MITTE_LEASE_FAST       1000    /* ms: a grant used quickly */
#define NGX_HTTP_MITTE_LEASE_SLOW       50      /* ms, at least: a call out
                                                   a tenth of mitte_redis's
                                                   timeout, Redis is slow */
#define NGX_HTTP_MITTE_LEASE_TTL        (40 * 86400)


/* one user's lease in this worker */
typedef struct {
    ngx_rbtree_key_t            hash;       /* 0: a free slot */
    uint32_t                    sent_month; /* of the call out */
    unsigned                    pending:1;  /* a call is out */
    uint32_t                    month;
    uint32_t                    lease;      /* passes left on lease */
    uint32_t                    grant;      /* the last grant */
    uint32_t                    want;
    uint32_t                    debt;       /* passes not yet charged */
    uint32_t                    credit;     /* credit passes not confirmed */
    uint32_t                    sent_debt;  /* carried by the call out */
    uint32_t                    sent_credit;
    uint32_t                    seen;       /* cluster-wide use, last reply */
    uint32_t                    limit;
    uint32_t                    warn;       /* the warning threshold */
    ngx_msec_t                  used_at;    /* the last pass */
    ngx_msec_t                  asked_at;   /* the last call for more */
    ngx_msec_t                  sent_at;    /* the call out */
    ngx_msec_t                  retry_at;   /* at the limit: asked again */
    unsigned                    exhausted:1;/* the last reply: at the limit */
    unsigned                    dry:1;      /* ran out since the last call */
    u_char                      user_len;
    u_char                      user[MITTE_USER_MAX];
} ngx_http_mitte_lease_t;


/* the arguments of a lease call: numkeys, the key, 7 numbers */
typedef struct {
    u_char                      key[NGX_HTTP_MITTE_REDIS_KEY_MAX];
    u_char                      num[7][NGX_INT64_LEN];
    size_t                      lens[9];
    const char                 *argv[9];
} ngx_http_mitte_lease_args_t;


/* the metrics, shared by the instance's workers: atomics only */
typedef struct {
    ngx_atomic_t                calls;
    ngx_atomic_t                failures;
    ngx_atomic_t                credit;
    ngx_atomic_t                waits;
    ngx_atomic_t                slow;
    ngx_atomic_t                returned;
    ngx_atomic_t                holders;    /* the last count, any worker */
} ngx_http_mitte_lease_sh_t;


static ngx_int_t ngx_http_mitte_lease_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
static ngx_http_mitte_lease_t *ngx_http_mitte_lease_find(ngx_str_t *user,
    ngx_rbtree_key_t hash);
static ngx_uint_t ngx_http_mitte_lease_credit(ngx_uint_t limit);
static ngx_int_t ngx_http_mitte_lease_args(ngx_http_mitte_lease_t *e,
    uint32_t want, uint32_t back, uint32_t debt,
    ngx_http_mitte_lease_args_t *a);
static ngx_int_t ngx_http_mitte_lease_send(ngx_http_mitte_lease_t *e,
    uint32_t want, uint32_t back);
static void ngx_http_mitte_lease_exiting(void *data);
static void ngx_http_mitte_lease_settle(void);
static void ngx_http_mitte_lease_reply(redisReply *reply, void *data,
    ngx_uint_t rc);
static void ngx_http_mitte_lease_granted(ngx_http_mitte_lease_t *e,
    int64_t g, int64_t used, ngx_uint_t warned);
static ngx_http_mitte_cold void ngx_http_mitte_lease_warn(
    ngx_http_mitte_lease_t *e, uint32_t used);
static void ngx_http_mitte_lease_failed(ngx_http_mitte_lease_t *e,
    const char *why);
static void ngx_http_mitte_lease_tick(ngx_event_t *ev);
static void ngx_http_mitte_lease_count(void);
static void ngx_http_mitte_lease_counted(redisReply *reply, void *data,
    ngx_uint_t rc);
static void ngx_http_mitte_lease_ready(void *data);


/*
 * The lease: adds the caller's debt (passes it made without lease),
 * takes back what it returns, and grants
 *     g = min(want, limit - used, max(1, floor((limit - used) / (2 h))),
 *             max(1, floor(limit / (100 h))))
 * (0 at or past the limit), h the workers of the cluster: the lease a
 * worker holds is at most 1% of the limit over h, so that the lease of
 * workers that die holding it (kill -9) is at most 1% of the limit
 * refused early, never more. Returns
 * {g, used after, 1 when this call crossed the warning threshold}.
 * KEYS[1] the month's key; ARGV: limit, want, holders, debt, back, warn,
 * ttl.
 */
static ngx_http_mitte_redis_script_t  ngx_http_mitte_lease_script = {
    "local used = tonumber(redis.call('GET', KEYS[1]) or '0')\n"
    "local limit = tonumber(ARGV[1])\n"
    "local before = used\n"
    "used = used + tonumber(ARGV[4]) - tonumber(ARGV[5])\n"
    "if used < 0 then used = 0 end\n"
    "local g = 0\n"
    "local left = limit - used\n"
    "if left > 0 then\n"
    "  local h = tonumber(ARGV[3])\n"
    "  local share = math.floor(left / (2 * h))\n"
    "  local cap = math.floor(limit / (100 * h))\n"
    "  if share < 1 then share = 1 end\n"
    "  if cap < 1 then cap = 1 end\n"
    "  g = math.min(tonumber(ARGV[2]), left, share, cap)\n"
    "end\n"
    "used = used + g\n"
    "redis.call('SET', KEYS[1], used, 'EX', ARGV[7])\n"
    "local warn = tonumber(ARGV[6])\n"
    "local crossed = 0\n"
    "if before < warn and used >= warn then crossed = 1 end\n"
    "return {g, used, crossed}\n",
    ""
};


/*
 * The workers of the cluster: the sum of "workers" of the instances
 * heard from in the last minute (64 for one that does not say), and
 * whether this instance is among them. KEYS[1] the instances' set;
 * ARGV: now, the instance keys' prefix, this instance.
 */
static ngx_http_mitte_redis_script_t  ngx_http_mitte_lease_holders_script = {
    "local names = redis.call('ZRANGEBYSCORE', KEYS[1], "
    "tonumber(ARGV[1]) - 60, '+inf', 'LIMIT', 0, 1024)\n"
    "local sum, me = 0, 0\n"
    "for _, n in ipairs(names) do\n"
    "  local v = redis.call('GET', ARGV[2] .. n)\n"
    "  local w = v and tonumber(string.match(v, '\"workers\":(%d+)'))\n"
    "  if not w or w > 64 then w = 64 end\n"
    "  if w < 1 then w = 1 end\n"
    "  sum = sum + w\n"
    "  if n == ARGV[3] then me = 1 end\n"
    "end\n"
    "return {sum, me}\n",
    ""
};


static ngx_str_t  ngx_http_mitte_lease_zone_name =
    ngx_string("mitte_lease_status");

static ngx_shm_zone_t               *ngx_http_mitte_lease_zone;
static ngx_http_mitte_lease_sh_t    *ngx_http_mitte_lease_sh;
static ngx_http_mitte_main_conf_t   *ngx_http_mitte_lease_mmcf;
static ngx_http_mitte_lease_t       *ngx_http_mitte_lease_table;
static ngx_event_t                   ngx_http_mitte_lease_timer;
static ngx_uint_t                    ngx_http_mitte_lease_ticks;
static ngx_uint_t                    ngx_http_mitte_lease_workers;
static time_t                        ngx_http_mitte_lease_logged;
static ngx_uint_t                    ngx_http_mitte_lease_closing;

/* the cluster's workers; until counted, 64 per instance of ours */
static ngx_uint_t  ngx_http_mitte_lease_holders =
    NGX_HTTP_MITTE_LEASE_MAX_HOLDERS;


ngx_int_t
ngx_http_mitte_lease_conf(ngx_conf_t *cf, ngx_http_mitte_main_conf_t *mmcf)
{
    ngx_shm_zone_t  *zone;

    zone = ngx_shared_memory_add(cf, &ngx_http_mitte_lease_zone_name,
                                 8 * ngx_pagesize, &ngx_http_mitte_module);
    if (zone == NULL) {
        return NGX_ERROR;
    }

    if (zone->data) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "zone \"%V\" is already used: give "
                           "\"mitte_zone\" another name",
                           &ngx_http_mitte_lease_zone_name);
        return NGX_ERROR;
    }

    zone->init = ngx_http_mitte_lease_init_zone;
    zone->data = mmcf;

    ngx_http_mitte_lease_zone = zone;

    return NGX_OK;
}


static ngx_int_t
ngx_http_mitte_lease_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_slab_pool_t            *shpool;
    ngx_http_mitte_lease_sh_t  *sh;

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (data) {
        /* a reload: the counters go on */
        shm_zone->data = data;
        return NGX_OK;
    }

    if (shm_zone->shm.exists && shpool->data) {
        shm_zone->data = shpool->data;
        return NGX_OK;
    }

    sh = ngx_slab_calloc(shpool, sizeof(ngx_http_mitte_lease_sh_t));
    if (sh == NULL) {
        return NGX_ERROR;
    }

    shpool->data = sh;
    shm_zone->data = sh;

    return NGX_OK;
}


ngx_int_t
ngx_http_mitte_lease_init_process(ngx_cycle_t *cycle)
{
    ngx_core_conf_t             *ccf;
    ngx_http_mitte_main_conf_t  *mmcf;

    mmcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_mitte_module);

    if (mmcf == NULL || mmcf->shm_zone == NULL || mmcf->redis == NULL
        || ngx_http_mitte_lease_zone == NULL)
    {
        return NGX_OK;
    }

    ngx_http_mitte_lease_mmcf = mmcf;
    ngx_http_mitte_lease_sh = ngx_http_mitte_lease_zone->data;

    ccf = (ngx_core_conf_t *) ngx_get_conf(cycle->conf_ctx, ngx_core_module);
    ngx_http_mitte_lease_workers = (ngx_process == NGX_PROCESS_WORKER)
                                   ? ngx_max(ccf->worker_processes, 1) : 1;

    ngx_http_mitte_lease_table = ngx_pcalloc(cycle->pool,
                                     NGX_HTTP_MITTE_LEASE_SLOTS
                                     * sizeof(ngx_http_mitte_lease_t));
    if (ngx_http_mitte_lease_table == NULL) {
        return NGX_ERROR;
    }

    if (ngx_http_mitte_redis_script(&ngx_http_mitte_lease_script) != NGX_OK
        || ngx_http_mitte_redis_script(&ngx_http_mitte_lease_holders_script)
           != NGX_OK
        || ngx_http_mitte_redis_on_ready(ngx_http_mitte_lease_ready, NULL)
           != NGX_OK
        || ngx_http_mitte_redis_on_exit(ngx_http_mitte_lease_exiting, NULL)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    ngx_http_mitte_lease_timer.handler = ngx_http_mitte_lease_tick;
    ngx_http_mitte_lease_timer.log = cycle->log;
    ngx_http_mitte_lease_timer.cancelable = 1;

    ngx_add_timer(&ngx_http_mitte_lease_timer, NGX_HTTP_MITTE_LEASE_TICK);

    return NGX_OK;
}


void
ngx_http_mitte_lease_exit_process(ngx_cycle_t *cycle)
{
    if (ngx_http_mitte_lease_timer.timer_set) {
        ngx_del_timer(&ngx_http_mitte_lease_timer);
    }

    /* calls still out are answered with LOST: no table to touch then */
    ngx_http_mitte_lease_table = NULL;
}


/*
 * A graceful shutdown begins (quit, or the old workers of a reload): the
 * unused lease and the debt of every entry go back, on the worker's
 * connection, which stays open until the worker exits (their replies hold
 * the exit, at most the command timeout). From here on the zone decides
 * (as while Redis is away): what passes is debt, sent within 20 ms by a
 * timer that holds the exit, and a call still out gives its grant back
 * when its reply comes. Not run on a fast shutdown, nor when Redis is
 * away then: the lease held expires with the month's key, at most 1% of
 * the limit refused early (docs/cluster.md).
 */

static void
ngx_http_mitte_lease_exiting(void *data)
{
    ngx_http_mitte_lease_closing = 1;

    if (ngx_http_mitte_lease_timer.timer_set) {
        ngx_del_timer(&ngx_http_mitte_lease_timer);
    }

    ngx_http_mitte_lease_settle();
}


/* after the shutdown began: every entry's lease and debt back */

static void
ngx_http_mitte_lease_settle(void)
{
    ngx_uint_t               i;
    ngx_http_mitte_lease_t  *e;

    for (i = 0; i < NGX_HTTP_MITTE_LEASE_SLOTS; i++) {
        e = &ngx_http_mitte_lease_table[i];

        if (e->hash == 0 || e->pending || (e->lease == 0 && e->debt == 0)) {
            continue;
        }

        if (ngx_http_mitte_lease_send(e, 0, e->lease) != NGX_OK) {
            /* Redis is gone: nothing holds the exit for it */
            return;
        }

        e->lease = 0;
    }
}


/* this worker's entry of a user, made when missing; NULL: table full */

static ngx_http_mitte_lease_t *
ngx_http_mitte_lease_find(ngx_str_t *user, ngx_rbtree_key_t hash)
{
    ngx_uint_t               i, slot, first;
    ngx_http_mitte_lease_t  *e, *free, *idle;

    if (hash == 0) {
        hash = 1;
    }

    free = NULL;
    idle = NULL;
    first = ngx_http_mitte_slot(hash, NGX_HTTP_MITTE_LEASE_SLOT_BITS);

    for (i = 0; i < NGX_HTTP_MITTE_LEASE_PROBES; i++) {
        slot = (first + i) & (NGX_HTTP_MITTE_LEASE_SLOTS - 1);
        e = &ngx_http_mitte_lease_table[slot];

        if (e->hash == hash && e->user_len == user->len
            && ngx_memcmp(e->user, user->data, user->len) == 0)
        {
            return e;
        }

        if (e->hash == 0) {
            if (free == NULL) {
                free = e;
            }

            continue;
        }

        /* an entry that holds nothing may go: its user starts afresh */
        if (idle == NULL && !e->pending && e->lease == 0 && e->debt == 0
            && e->credit == 0)
        {
            idle = e;
        }
    }

    e = free ? free : idle;

    if (e == NULL) {
        return NULL;
    }

    ngx_memzero(e, sizeof(ngx_http_mitte_lease_t));
    e->hash = hash;
    e->want = NGX_HTTP_MITTE_LEASE_WANT_MIN;
    e->user_len = (u_char) user->len;
    ngx_memcpy(e->user, user->data, user->len);

    return e;
}


/* the credit a worker may hold: floor(limit / 100 / holders) */

static ngx_uint_t
ngx_http_mitte_lease_credit(ngx_uint_t limit)
{
    return limit / 100 / ngx_max(ngx_http_mitte_lease_holders, 1);
}


ngx_http_mitte_lease_e
ngx_http_mitte_lease_take(ngx_http_mitte_main_conf_t *mmcf, ngx_str_t *user,
    ngx_rbtree_key_t hash, uint32_t month, ngx_uint_t limit, ngx_uint_t warn,
    uint32_t zone_used, void **ask)
{
    ngx_msec_t               now;
    ngx_http_mitte_lease_t  *e;

    *ask = NULL;

    if (ngx_http_mitte_lease_table == NULL
        || ngx_http_mitte_redis_ready() != NGX_OK
        || ngx_http_mitte_lease_closing)
    {
        return NGX_HTTP_MITTE_LEASE_OFF;
    }

    e = ngx_http_mitte_lease_find(user, hash);
    if (e == NULL) {
        return NGX_HTTP_MITTE_LEASE_OFF;
    }

    if (e->month != month) {
        /* a new month, a new key: the old month's lease and debt lapse */
        ngx_memzero(&e->month, offsetof(ngx_http_mitte_lease_t, user_len)
                               - offsetof(ngx_http_mitte_lease_t, month));
        e->month = month;
        e->want = NGX_HTTP_MITTE_LEASE_WANT_MIN;
        e->seen = zone_used;
        e->exhausted = (zone_used >= limit);
    }

    e->limit = (uint32_t) limit;
    e->warn = (uint32_t) warn;
    now = ngx_current_msec;

    if (e->lease) {
        e->lease--;
        e->used_at = now;

        /* below half of the last grant: more asked for, once */
        if (!e->pending && e->lease * 2 < e->grant) {
            *ask = e;
        }

        return NGX_HTTP_MITTE_LEASE_PASS;
    }

    e->dry = 1;

    if (e->exhausted && e->seen >= limit) {
        /* asked again now and then: returned lease may free some */
        if (!e->pending && (ngx_msec_int_t) (now - e->retry_at) >= 0) {
            e->retry_at = now + NGX_HTTP_MITTE_LEASE_RETRY;
            *ask = e;
        }

        return NGX_HTTP_MITTE_LEASE_LIMIT;
    }

    if (!e->pending) {
        *ask = e;

    } else if (now - e->sent_at >= ngx_max(mmcf->redis->timeout / 10,
                                           NGX_HTTP_MITTE_LEASE_SLOW)
               && (uint64_t) zone_used + limit / 100 < limit)
    {
        /*
         * Redis is slow (stalled, or the call queued behind much): the
         * zone decides until the reply, as while Redis is away, and what
         * passes is charged by the next call; a slow Redis refuses no
         * request the zone would pass. Not in the last 1% of the limit,
         * where the lease keeps the cluster's bound: credit, then wait.
         */
        (void) ngx_atomic_fetch_add(&ngx_http_mitte_lease_sh->slow, 1);
        return NGX_HTTP_MITTE_LEASE_OFF;
    }

    /* the call for lease is out (or about to be): credit, if any is left */

    if (e->credit < ngx_http_mitte_lease_credit(limit) && e->seen < limit) {
        e->credit++;
        e->debt++;
        e->used_at = now;
        (void) ngx_atomic_fetch_add(&ngx_http_mitte_lease_sh->credit, 1);
        return NGX_HTTP_MITTE_LEASE_PASS;
    }

    (void) ngx_atomic_fetch_add(&ngx_http_mitte_lease_sh->waits, 1);

    return NGX_HTTP_MITTE_LEASE_WAIT;
}


void
ngx_http_mitte_lease_ask(void *entry)
{
    ngx_http_mitte_lease_t *e = entry;

    uint32_t  want;

    if (e->pending || ngx_http_mitte_lease_table == NULL) {
        return;
    }

    /*
     * ran dry since the last call, or the last grant lasted less than
     * NGX_HTTP_MITTE_LEASE_FAST: twice as much (a busy user's worker asks
     * about once that often; the script keeps every grant within the 1%)
     */
    if ((e->dry
         || ngx_current_msec - e->asked_at < NGX_HTTP_MITTE_LEASE_FAST)
        && e->want < NGX_HTTP_MITTE_LEASE_WANT_MAX)
    {
        e->want *= 2;
    }

    e->dry = 0;
    e->asked_at = ngx_current_msec;
    want = e->want;

    (void) ngx_http_mitte_lease_send(e, want, 0);
}


void
ngx_http_mitte_lease_fail_open(ngx_rbtree_key_t hash, uint32_t month)
{
    ngx_uint_t               i, first;
    ngx_http_mitte_lease_t  *e;

    if (ngx_http_mitte_lease_table == NULL) {
        return;
    }

    if (hash == 0) {
        hash = 1;
    }

    first = ngx_http_mitte_slot(hash, NGX_HTTP_MITTE_LEASE_SLOT_BITS);

    /* only users this worker has an entry of: the others are new here */

    for (i = 0; i < NGX_HTTP_MITTE_LEASE_PROBES; i++) {
        e = &ngx_http_mitte_lease_table[(first + i)
                                        & (NGX_HTTP_MITTE_LEASE_SLOTS - 1)];

        if (e->hash == hash && e->month == month) {
            if (e->debt < 0x7fffffff) {
                e->debt++;
            }

            if (ngx_http_mitte_lease_closing
                && !ngx_http_mitte_lease_timer.timer_set
                && ngx_http_mitte_redis_ready() == NGX_OK)
            {
                /* charged within 20 ms; the exit waits for it */
                ngx_http_mitte_lease_timer.cancelable = 0;
                ngx_add_timer(&ngx_http_mitte_lease_timer, 20);
            }

            return;
        }
    }
}


/* one call's arguments: the debt, the lease given back, and a want */

static ngx_int_t
ngx_http_mitte_lease_args(ngx_http_mitte_lease_t *e, uint32_t want,
    uint32_t back, uint32_t debt, ngx_http_mitte_lease_args_t *a)
{
    ngx_uint_t  i;

    a->lens[1] = ngx_http_mitte_redis_key(a->key, sizeof(a->key),
                                          "{u:%*s}:q:%04uD%02uD",
                                          (size_t) e->user_len, e->user,
                                          e->month / 12, e->month % 12 + 1);
    if (a->lens[1] == 0) {
        return NGX_ERROR;
    }

    a->argv[0] = "1";
    a->lens[0] = 1;
    a->argv[1] = (const char *) a->key;

    a->lens[2] = ngx_sprintf(a->num[0], "%uD", e->limit) - a->num[0];
    a->lens[3] = ngx_sprintf(a->num[1], "%uD", want) - a->num[1];
    a->lens[4] = ngx_sprintf(a->num[2], "%ui", ngx_http_mitte_lease_holders)
                 - a->num[2];
    a->lens[5] = ngx_sprintf(a->num[3], "%uD", debt) - a->num[3];
    a->lens[6] = ngx_sprintf(a->num[4], "%uD", back) - a->num[4];
    a->lens[7] = ngx_sprintf(a->num[5], "%uD", e->warn) - a->num[5];
    a->lens[8] = ngx_sprintf(a->num[6], "%d", NGX_HTTP_MITTE_LEASE_TTL)
                 - a->num[6];

    for (i = 0; i < 7; i++) {
        a->argv[i + 2] = (const char *) a->num[i];
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_mitte_lease_send(ngx_http_mitte_lease_t *e, uint32_t want,
    uint32_t back)
{
    ngx_int_t                    rc;
    ngx_http_mitte_lease_args_t  a;

    if (ngx_http_mitte_lease_args(e, want, back, e->debt, &a) != NGX_OK) {
        return NGX_ERROR;
    }

    rc = ngx_http_mitte_redis_eval(ngx_http_mitte_lease_reply, e,
                                   &ngx_http_mitte_lease_script, 9, a.argv,
                                   a.lens);
    if (rc != NGX_OK) {
        /* not ready: the zone decides meanwhile; the debt stays */
        return rc;
    }

    (void) ngx_atomic_fetch_add(&ngx_http_mitte_lease_sh->calls, 1);

    if (back) {
        (void) ngx_atomic_fetch_add(&ngx_http_mitte_lease_sh->returned, back);
    }

    e->pending = 1;
    e->sent_at = ngx_current_msec;
    e->sent_month = e->month;
    e->sent_debt = e->debt;
    e->sent_credit = e->credit;
    e->debt = 0;

    return NGX_OK;
}


static void
ngx_http_mitte_lease_reply(redisReply *reply, void *data, ngx_uint_t rc)
{
    ngx_http_mitte_lease_t *e = data;

    redisReply  **el;

    if (ngx_http_mitte_lease_table == NULL) {
        return;
    }

    e->pending = 0;

    if (e->sent_month != e->month) {
        /* the month rolled meanwhile: that month's key is done with */
        return;
    }

    if (rc != NGX_HTTP_MITTE_REDIS_REPLY) {
        ngx_http_mitte_lease_failed(e, rc == NGX_HTTP_MITTE_REDIS_LOST
                                       ? "connection lost" : "timed out");
        return;
    }

    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 3) {
        ngx_http_mitte_lease_failed(e, reply->type == REDIS_REPLY_ERROR
                                       ? reply->str : "unexpected reply");
        return;
    }

    el = reply->element;

    if (el[0]->type != REDIS_REPLY_INTEGER
        || el[1]->type != REDIS_REPLY_INTEGER
        || el[2]->type != REDIS_REPLY_INTEGER
        || el[0]->integer < 0 || el[1]->integer < 0)
    {
        ngx_http_mitte_lease_failed(e, "unexpected reply");
        return;
    }

    /* charged: the credit passes it carried are confirmed */
    e->credit -= ngx_min(e->credit, e->sent_credit);
    e->sent_credit = 0;
    e->sent_debt = 0;

    ngx_http_mitte_lease_granted(e, el[0]->integer, el[1]->integer,
                                 el[2]->integer == 1);

    if (ngx_http_mitte_lease_closing && (e->lease || e->debt)
        && ngx_http_mitte_lease_send(e, 0, e->lease) == NGX_OK)
    {
        /* granted as the shutdown began: back at once */
        e->lease = 0;
    }
}


/* a reply: the lease and what the zone shows of the cluster's use */

static void
ngx_http_mitte_lease_granted(ngx_http_mitte_lease_t *e, int64_t g,
    int64_t used, ngx_uint_t warned)
{
    uint32_t                     shown;
    ngx_http_mitte_zone_ctx_t   *ctx;
    ngx_http_mitte_user_node_t  *un;

    if (used > 0xffffffff) {
        used = 0xffffffff;
    }

    if (g > 0xffffff) {
        g = 0xffffff;
    }

    e->lease += (uint32_t) g;
    e->seen = (uint32_t) used;

    if (g > 0) {
        e->grant = (uint32_t) g;
        e->exhausted = 0;

    } else if (e->lease == 0 && e->seen >= e->limit) {
        e->exhausted = 1;
        e->retry_at = ngx_current_msec + NGX_HTTP_MITTE_LEASE_RETRY;
    }

    /* the zone: the cluster's use, less the lease this worker holds */

    shown = e->seen - ngx_min(e->seen, e->lease);
    ctx = ngx_http_mitte_lease_mmcf->shm_zone->data;

    ngx_shmtx_lock(&ctx->shpool->mutex);

    un = ngx_http_mitte_user_lookup(ctx, e->user, e->user_len);

    if (un && un->user.month == e->month) {
        un->user.used = shown;
    }

    ngx_shmtx_unlock(&ctx->shpool->mutex);

    if (warned) {
        ngx_http_mitte_lease_warn(e, (uint32_t) used);
    }
}


/*
 * QUOTA_WARNING: the call whose grant crossed the threshold (one in the
 * cluster, the script being atomic). The zone's flag keeps it to one per
 * instance should a returned lease let the count cross again; notify's
 * dedupe in Redis ("QUOTA_WARNING:<YYYYMM>" for the user) keeps it to one
 * per month cluster-wide.
 */

static ngx_http_mitte_cold void
ngx_http_mitte_lease_warn(ngx_http_mitte_lease_t *e, uint32_t used)
{
    u_char                       msg[NGX_HTTP_MITTE_MESSAGE_MAX];
    size_t                       len;
    ngx_uint_t                   note;
    ngx_time_t                  *tp;
    ngx_http_mitte_once_t        once;
    ngx_http_mitte_zone_ctx_t   *ctx;
    ngx_http_mitte_user_node_t  *un;

    ctx = ngx_http_mitte_lease_mmcf->shm_zone->data;
    tp = ngx_timeofday();
    note = 0;

    /* once a month cluster-wide, as rules.c's QUOTA_EXCEEDED */

    once.len = ngx_sprintf(once.what, "%s:%uD",
                           mitte_notify_type_name(
                               NGX_HTTP_MITTE_QUOTA_WARNING), e->month)
               - once.what;
    once.ttl = 40 * 86400;

    len = mitte_notify_quota_warning_message((char *) msg, sizeof(msg),
                                             ngx_min(used, e->limit),
                                             e->limit);

    ngx_shmtx_lock(&ctx->shpool->mutex);

    un = ngx_http_mitte_user_lookup(ctx, e->user, e->user_len);

    if (un && un->user.month == e->month
        && !(un->user.flags & NGX_HTTP_MITTE_USER_WARNED))
    {
        un->user.flags |= NGX_HTTP_MITTE_USER_WARNED;

        note = ngx_http_mitte_notify(ngx_http_mitte_lease_mmcf, ctx, un,
                                     NGX_HTTP_MITTE_QUOTA_WARNING, NULL, 0,
                                     msg,
                                     ngx_min(len,
                                             NGX_HTTP_MITTE_MESSAGE_MAX - 1),
                                     (uint64_t) tp->sec * 1000 + tp->msec,
                                     NULL, &once)
               == NGX_OK;
    }

    ngx_shmtx_unlock(&ctx->shpool->mutex);

    if (note) {
        ngx_http_mitte_sse_wake(ctx);
    }
}


/*
 * A call that failed or whose outcome is unknown: its debt is kept and
 * charged again (twice at worst: refuses early, never lets more through);
 * the lease it gave back is not given again, and its grant is not known
 * (stranded: refuses early too)
 */

static void
ngx_http_mitte_lease_failed(ngx_http_mitte_lease_t *e, const char *why)
{
    e->debt += e->sent_debt;
    e->sent_debt = 0;
    e->sent_credit = 0;

    (void) ngx_atomic_fetch_add(&ngx_http_mitte_lease_sh->failures, 1);

    if (ngx_time() - ngx_http_mitte_lease_logged >= 60) {
        ngx_http_mitte_lease_logged = ngx_time();

        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "mitte: redis \"%V\": quota lease of user \"%*s\" "
                      "failed: %s; the zone counts meanwhile (logged at "
                      "most once a minute)",
                      &ngx_http_mitte_lease_mmcf->redis->name,
                      (size_t) e->user_len, e->user, why);
    }
}


/*
 * Every second: lease unused for 2 s goes back, debt left by the zone's
 * count while Redis was away is charged, long idle entries are freed, and
 * every 5 s the cluster's workers are counted again
 */

static void
ngx_http_mitte_lease_tick(ngx_event_t *ev)
{
    ngx_uint_t               i;
    ngx_msec_t               now;
    ngx_http_mitte_lease_t  *e;

    if (ngx_http_mitte_lease_table == NULL) {
        return;
    }

    if (ngx_http_mitte_lease_closing) {
        /* the debt of what passed since the shutdown began */
        ngx_http_mitte_lease_settle();
        return;
    }

    if (ngx_exiting || ngx_quit || ngx_terminate) {
        return;
    }

    if (ngx_http_mitte_redis_ready() == NGX_OK) {
        now = ngx_current_msec;

        if (ngx_http_mitte_lease_ticks++ % NGX_HTTP_MITTE_LEASE_HOLDERS == 0)
        {
            ngx_http_mitte_lease_count();
        }

        for (i = 0; i < NGX_HTTP_MITTE_LEASE_SLOTS; i++) {
            e = &ngx_http_mitte_lease_table[i];

            if (e->hash == 0 || e->pending
                || now - e->used_at < NGX_HTTP_MITTE_LEASE_IDLE)
            {
                continue;
            }

            if (e->lease || e->debt) {
                if (ngx_http_mitte_lease_send(e, 0, e->lease) == NGX_OK) {
                    e->lease = 0;
                    e->want = ngx_max(e->want / 2,
                                      NGX_HTTP_MITTE_LEASE_WANT_MIN);
                }

            } else if (e->credit == 0
                       && now - e->used_at >= NGX_HTTP_MITTE_LEASE_FORGET)
            {
                e->hash = 0;
            }
        }
    }

    ngx_add_timer(ev, NGX_HTTP_MITTE_LEASE_TICK);
}


static void
ngx_http_mitte_lease_count(void)
{
    u_char       set[NGX_HTTP_MITTE_REDIS_KEY_MAX];
    u_char       pre[NGX_HTTP_MITTE_REDIS_KEY_MAX];
    u_char       now[NGX_INT64_LEN];
    size_t       lens[5];
    ngx_str_t    me;
    const char  *argv[5];

    ngx_http_mitte_redis_instance(&me);

    lens[1] = ngx_http_mitte_redis_key(set, sizeof(set), "instances");
    lens[3] = ngx_http_mitte_redis_key(pre, sizeof(pre), "instance:");

    if (lens[1] == 0 || lens[3] == 0) {
        return;
    }

    argv[0] = "1";
    lens[0] = 1;
    argv[1] = (const char *) set;
    argv[2] = (const char *) now;
    lens[2] = ngx_sprintf(now, "%T", ngx_time()) - now;
    argv[3] = (const char *) pre;
    argv[4] = (const char *) me.data;
    lens[4] = me.len;

    (void) ngx_http_mitte_redis_eval(ngx_http_mitte_lease_counted, NULL,
                                     &ngx_http_mitte_lease_holders_script,
                                     5, argv, lens);
}


static void
ngx_http_mitte_lease_counted(redisReply *reply, void *data, ngx_uint_t rc)
{
    ngx_uint_t  sum;

    if (rc != NGX_HTTP_MITTE_REDIS_REPLY || reply->type != REDIS_REPLY_ARRAY
        || reply->elements != 2
        || reply->element[0]->type != REDIS_REPLY_INTEGER
        || reply->element[1]->type != REDIS_REPLY_INTEGER
        || reply->element[0]->integer < 0)
    {
        /* the count stays as it was */
        return;
    }

    sum = (ngx_uint_t) reply->element[0]->integer;

    /* not registered yet (the first heartbeat is on its way): ours added */
    if (reply->element[1]->integer == 0) {
        sum += ngx_http_mitte_lease_workers;
    }

    ngx_http_mitte_lease_holders = ngx_max(sum, 1);
    ngx_http_mitte_lease_sh->holders = ngx_http_mitte_lease_holders;
}


/* a new connection: the workers counted at once */

static void
ngx_http_mitte_lease_ready(void *data)
{
    ngx_http_mitte_lease_count();
}


u_char *
ngx_http_mitte_lease_metrics(u_char *p)
{
    ngx_http_mitte_lease_sh_t  *sh;

    sh = ngx_http_mitte_lease_sh;

    if (sh == NULL) {
        /* no mitte_redis in this worker's configuration: no lines */
        return p;
    }

    return ngx_sprintf(p,
        "# HELP mitte_quota_lease_calls_total Calls to Redis for quota "
        "lease (and to give it back), this instance.\n"
        "# TYPE mitte_quota_lease_calls_total counter\n"
        "mitte_quota_lease_calls_total %uA\n"
        "# HELP mitte_quota_lease_failures_total Lease calls that failed "
        "or whose outcome is unknown.\n"
        "# TYPE mitte_quota_lease_failures_total counter\n"
        "mitte_quota_lease_failures_total %uA\n"
        "# HELP mitte_quota_lease_returned_total Unused lease given back.\n"
        "# TYPE mitte_quota_lease_returned_total counter\n"
        "mitte_quota_lease_returned_total %uA\n"
        "# HELP mitte_quota_credit_passes_total Requests passed on credit "
        "while a lease call was out.\n"
        "# TYPE mitte_quota_credit_passes_total counter\n"
        "mitte_quota_credit_passes_total %uA\n"
        "# HELP mitte_quota_wait_refusals_total Requests refused with no "
        "lease and no credit left while a lease call was out.\n"
        "# TYPE mitte_quota_wait_refusals_total counter\n"
        "mitte_quota_wait_refusals_total %uA\n"
        "# HELP mitte_quota_slow_decisions_total Requests the zone decided "
        "because a lease call was out for a tenth of the timeout (Redis "
        "slow).\n"
        "# TYPE mitte_quota_slow_decisions_total counter\n"
        "mitte_quota_slow_decisions_total %uA\n"
        "# HELP mitte_quota_lease_holders Workers of the cluster, as last "
        "counted from the instances' heartbeats (credit is 1%% of the "
        "limit shared among them).\n"
        "# TYPE mitte_quota_lease_holders gauge\n"
        "mitte_quota_lease_holders %uA\n",
        sh->calls, sh->failures, sh->returned, sh->credit, sh->waits,
        sh->slow, sh->holders);
}
