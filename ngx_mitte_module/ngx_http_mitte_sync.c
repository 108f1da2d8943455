/*
 * Copyright (C) ngx_mitte_module authors
 *
 * Cluster mode's deltas. The log phase records a delivery in the zone as
 * without Redis, and also in the endpoint's deltas not yet sent, in the
 * zone too (ngx_http_mitte_delta_t: one for the instance's workers
 * together, aggregated by hour, with what the streak needs: failures
 * before the first success, after the last one); and the delivery's event,
 * when a stream may want it, into this worker's batch. One EVALSHA sends
 * a batch: NGX_HTTP_MITTE_SYNC_INTERVAL ms after an event (the streams on
 * the other instances wait for it); the endpoints' deltas are taken into
 * worker 0's once mitte_redis's flush= interval (1s) has passed since the
 * oldest of them, or when half of NGX_HTTP_MITTE_SYNC_ENDPOINTS wait:
 * the longer the interval, the more deliveries one endpoint's line
 * carries, and one line an endpoint an instance, whatever its workers.
 * The script adds the counts, moves each streak and reports its
 * crossings (atomic: one flush cluster-wide sees a crossing),
 * numbers the events and appends one entry to the cluster's stream, from
 * which every instance's relay updates its zone. The flush carries a
 * number that the script checks, so that a flush sent again after a lost
 * reply is counted once. While Redis is away the deltas keep aggregating
 * in the zone (an endpoint evicted meanwhile, or deltas the zone has no
 * room for, are counted as dropped) and are sent when Redis is back, at
 * most NGX_HTTP_MITTE_SYNC_ENDPOINTS endpoints a flush.
 */


#include "ngx_http_mitte_module.h"
#include "ngx_http_mitte_stream.h"
#include "ngx_http_mitte_notify.h"
#include "ngx_http_mitte_redis.h"
#include "ngx_http_mitte_cluster.h"
#include "mitte_notify.h"


#define NGX_HTTP_MITTE_SYNC_TICK        100     /* ms, at most: worker 0
                                                   looks at the deltas */
#define NGX_HTTP_MITTE_SYNC_RETRY       250
#define NGX_HTTP_MITTE_SYNC_EPOCH       5000
/* a JSON endpoint or event at most, escaped */
#define NGX_HTTP_MITTE_SYNC_JSON_MAX    2048


/*
 * One endpoint's deltas, taken from the zone into a flush (a copy: its
 * queue and node pointers are moot), and its names as the zone had them
 */
typedef struct {
    ngx_http_mitte_delta_t      delta;
    u_char                      slug_len;
    u_char                      user_len;
    u_char                      name_len;
    u_char                      slug[MITTE_SLUG_MAX];
    u_char                      user[MITTE_USER_MAX];
    u_char                      name[MITTE_NAME_MAX];
} ngx_http_mitte_sync_ep_t;


typedef struct {
    ngx_http_mitte_main_conf_t *mmcf;
    ngx_http_mitte_zone_ctx_t  *ctx;
    ngx_log_t                  *log;

    ngx_http_mitte_sync_ep_t   *eps;        /* taken into the flush */
    ngx_uint_t                  neps;
    ngx_http_mitte_event_t     *events;
    ngx_uint_t                  nevents;
    ngx_uint_t                  max_events;
    ngx_event_t                 tick;       /* worker 0's: deltas due? */
    unsigned                    harvest:1;  /* exiting: take the deltas */

    /* the flush on its way, or to be sent again */
    ngx_event_t                 timer;
    uint64_t                    number;
    u_char                     *deltas;     /* kept: grown when needed */
    size_t                      deltas_len;
    size_t                      deltas_size;
    u_char                     *evtext;
    size_t                      evtext_len;
    size_t                      evtext_size;
    ngx_uint_t                  flight_eps;
    ngx_uint_t                  flight_events;
    uint32_t                    sealed_hour;    /* the lines' times are */
    uint64_t                    sealed_ms;      /* before these */
    unsigned                    sending:1;
    unsigned                    pending:1;  /* deltas/evtext hold a flush */

    u_char                      worker[NGX_HTTP_MITTE_REDIS_KEY_MAX];
    size_t                      worker_len;

    /* the Redis data set this worker's backlog belongs to */
    uint64_t                    epoch;
    ngx_event_t                 check;      /* worker 0's, of the epoch */
    unsigned                    checked:1;  /* the epoch, since connected */

    /* a refill of Redis from the zone: the cursor */
    ngx_event_t                 refill;
    ngx_rbtree_key_t            refill_key;
    u_char                      refill_slug[MITTE_SLUG_MAX];
    size_t                      refill_len;
    ngx_uint_t                  refill_started;
    ngx_uint_t                  refilled;
} ngx_http_mitte_sync_t;


static ngx_uint_t ngx_http_mitte_sync_take(ngx_http_mitte_sync_t *s);
static ngx_uint_t ngx_http_mitte_sync_due(ngx_http_mitte_sync_t *s);
static void ngx_http_mitte_sync_tick(ngx_event_t *ev);
static void ngx_http_mitte_sync_timer(ngx_event_t *ev);
static void ngx_http_mitte_sync_arm(ngx_http_mitte_sync_t *s, ngx_msec_t ms);
static void ngx_http_mitte_sync_schedule(ngx_http_mitte_sync_t *s);
static void ngx_http_mitte_sync_exiting(void *data);
static ngx_int_t ngx_http_mitte_sync_room(ngx_http_mitte_sync_t *s,
    u_char **buf, size_t *have, size_t size);
static u_char *ngx_http_mitte_sync_u64(u_char *p, uint64_t v);
static ngx_int_t ngx_http_mitte_sync_seal(ngx_http_mitte_sync_t *s,
    ngx_uint_t counts);
static u_char *ngx_http_mitte_sync_ep_line(u_char *p,
    ngx_http_mitte_sync_ep_t *ep, uint32_t hour, uint64_t ms);
static u_char *ngx_http_mitte_sync_field(u_char *p, u_char *s, size_t len);
static u_char *ngx_http_mitte_sync_event_line(u_char *p,
    ngx_http_mitte_event_t *e);
static u_char *ngx_http_mitte_sync_plain(u_char *p, u_char *s, size_t len);
static u_char *ngx_http_mitte_sync_str(u_char *p, const char *name,
    u_char *s, size_t len);
static void ngx_http_mitte_sync_send(ngx_http_mitte_sync_t *s);
static void ngx_http_mitte_sync_sent(redisReply *reply, void *data,
    ngx_uint_t rc);
static void ngx_http_mitte_sync_crossings(ngx_http_mitte_sync_t *s,
    redisReply *reply);
static void ngx_http_mitte_sync_cross(ngx_http_mitte_sync_t *s,
    cJSON *c);
static void ngx_http_mitte_sync_backlog(ngx_http_mitte_sync_t *s);
static void ngx_http_mitte_sync_ready(void *data);
static void ngx_http_mitte_sync_check(ngx_event_t *ev);
static void ngx_http_mitte_sync_ask(ngx_http_mitte_sync_t *s);
static void ngx_http_mitte_sync_epoch(redisReply *reply, void *data,
    ngx_uint_t rc);
static void ngx_http_mitte_sync_drop(ngx_http_mitte_sync_t *s);
static void ngx_http_mitte_sync_refill(ngx_event_t *ev);
static void ngx_http_mitte_sync_refilled(redisReply *reply, void *data,
    ngx_uint_t rc);
static u_char *ngx_http_mitte_sync_copy_json(u_char *p,
    ngx_http_mitte_endpoint_copy_t *c, uint32_t now_hour);
static ngx_int_t ngx_http_mitte_sync_merge(ngx_http_mitte_sync_t *s,
    u_char *text, size_t len, const char *mode, void *data);


static ngx_http_mitte_sync_t  *ngx_http_mitte_sync;


/*
 * KEYS: the worker's applied flush number, the stream, its sequence.
 * ARGV: 1 the flush number, 2 the prefix, 3 the endpoints' deltas (a line
 * each, ngx_http_mitte_sync_ep_line()), 4 the events' lines (passed
 * through), 5 their number, 6 the down threshold, 7 the streak's reset
 * (ms), 8 the lowest next sequence, 9 the current hour, 10 the stream's
 * cap, 11 and 12 the seal's hour and time (ms) that the lines count back
 * from.
 * Returns {0, "[]"} for a flush applied before, else {1, crossings}:
 * [slug, 1 down | 2 recovered, count, crossing number, user].
 */

/*
 * A flush's entry in the stream (field "f"), a text read in place by the
 * relays: the first event's number less one, then a line an event
 * ("E", written by the worker) and a line an endpoint ("P", by the
 * script), fields apart by 0x1f; control bytes in names become "?".
 *   E slug user name method rid status success duration time-ms
 *   P slug user name streak down status last-ms hour:requests:failures,...
 */
#define NGX_HTTP_MITTE_SYNC_LINE                                             \
    "local function clean(x)\n"                                              \
    "    return (string.gsub(x, '%c', '?'))\n"                               \
    "end\n"                                                                  \
    "local function line(s, u, n, k, d, st, t, hours)\n"                     \
    "    local h = {}\n"                                                     \
    "    for j, x in ipairs(hours) do\n"                                     \
    "        h[j] = x[1] .. ':' .. x[2] .. ':' .. x[3]\n"                    \
    "    end\n"                                                              \
    "    return 'P' .. s .. '\\31' .. clean(u) .. '\\31' .. clean(n) ..\n"   \
    "        '\\31' .. k .. '\\31' .. d .. '\\31' .. st .. '\\31' ..\n"        \
    "        string.format('%.0f', tonumber(t)) .. '\\31' ..\n"              \
    "        table.concat(h, ',') .. '\\n'\n"                                 \
    "end\n"


static ngx_http_mitte_redis_script_t  ngx_http_mitte_sync_script = {
    NGX_HTTP_MITTE_SYNC_LINE
    "local n = tonumber(ARGV[1])\n"
    "if n <= tonumber(redis.call('GET', KEYS[1]) or '0') then\n"
    "    return {0, '[]'}\n"
    "end\n"
    "redis.call('SET', KEYS[1], ARGV[1], 'EX', 86400)\n"
    "local P, T, reset = ARGV[2], tonumber(ARGV[6]), tonumber(ARGV[7])\n"
    "local old = tonumber(ARGV[9]) - 48\n"
    "local H, MS = tonumber(ARGV[11]), tonumber(ARGV[12])\n"
    "local out, cross, i = {}, {}, 0\n"
    "for s, u, nm, l, tl, o, q, st, a, z, hs in string.gmatch(ARGV[3],\n"
    "    '([^\\31\\n]+)\\31([^\\31\\n]*)\\31([^\\31\\n]*)\\31(%d+)\\31(%d+)'\n"
    "    .. '\\31([01])\\31([01])\\31(%d+)\\31(%d+)\\31(%d+)\\31([%d:,]*)\\n') do\n"
    "    i = i + 1\n"
    "    local e = {s = s, u = u, n = nm, l = tonumber(l), t = tonumber(tl),\n"
    "               o = tonumber(o), q = tonumber(q), st = st,\n"
    "               a = MS - tonumber(a), z = MS - tonumber(z)}\n"
    "    local hk = P .. '{e:' .. s .. '}:h'\n"
    "    local mk = P .. '{e:' .. s .. '}:m'\n"
    "    local hours, new, j = {}, false, 0\n"
    "    for b, hr, hf in string.gmatch(hs, '(%d+):(%d+):(%d+)') do\n"
    "        local h, n = H - tonumber(b), tonumber(hr)\n"
    "        local r = redis.call('HINCRBY', hk, h .. 'r', hr)\n"
    "        local f = redis.call('HINCRBY', hk, h .. 'f', hf)\n"
    "        if r == n then new = true end\n"
    "        j = j + 1\n"
    "        hours[j] = {h, r, f}\n"
    "    end\n"
    "    if new then\n"
    "        for _, k in ipairs(redis.call('HKEYS', hk)) do\n"
    "            local h = tonumber(string.sub(k, 1, -2))\n"
    "            if h == nil or h < old then redis.call('HDEL', hk, k) end\n"
    "        end\n"
    "    end\n"
    "    local m = redis.call('HMGET', mk, 'k', 'd', 't', 'x', 'u', 'n')\n"
    "    local k, d = tonumber(m[1] or '0'), tonumber(m[2] or '0')\n"
    "    local t, x = tonumber(m[3] or '0'), tonumber(m[4] or '0')\n"
    "    local u, nm = e.u, e.n\n"
    "    if u == '' then u = m[5] or '' end\n"
    "    if nm == '' then nm = m[6] or '' end\n"
    "    local function note(kind)\n"
    "        x = x + 1\n"
    "        if e.q == 0 then cross[#cross + 1] = {e.s, kind, k, x, u} end\n"
    "    end\n"
    "    if t > 0 and e.a > t and e.a - t > reset then k = 0 end\n"
    "    k = k + e.l\n"
    "    if T > 0 and d == 0 and k >= T then d = 1; note(1) end\n"
    "    if e.o == 1 then\n"
    "        if d == 1 then d = 0; note(2) end\n"
    "        k = e.t\n"
    "        if T > 0 and k >= T then d = 1; note(1) end\n"
    "    end\n"
    "    if e.z > t then t = e.z end\n"
    "    redis.call('HSET', mk, 'k', k, 'd', d, 't', t, 'x', x, 'u', u,\n"
    "               'n', nm, 'st', e.st)\n"
    "    if new then\n"
    "        redis.call('EXPIRE', hk, 176400)\n"
    "        redis.call('EXPIRE', mk, 176400)\n"
    "    end\n"
    "    out[i] = line(e.s, u, nm, k, d, e.st, t, hours)\n"
    "end\n"
    "local seq = tonumber(redis.call('GET', KEYS[3]) or '0')\n"
    "if seq < tonumber(ARGV[8]) then seq = tonumber(ARGV[8]) end\n"
    "local base = seq\n"
    "seq = seq + tonumber(ARGV[5])\n"
    "redis.call('SET', KEYS[3], seq)\n"
    "redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[10], seq .. '-*', 'f',\n"
    "    base .. '\\n' .. ARGV[4] .. table.concat(out))\n"
    "local c = '[]'\n"
    "if #cross > 0 then c = cjson.encode(cross) end\n"
    "return {1, c}\n",
    ""
};


/*
 * The data set's epoch: a random id set once in an empty Redis. A Redis
 * that restarted without its data, or another one, has another epoch.
 */

static ngx_http_mitte_redis_script_t  ngx_http_mitte_epoch_script = {
    "redis.call('SET', KEYS[1], ARGV[1], 'NX')\n"
    "return redis.call('GET', KEYS[1])\n",
    ""
};


/*
 * Endpoints from a zone into Redis: ARGV 1 the prefix, 2 "max" (a refill:
 * each count the larger; the streak where Redis has none) or "set" (an
 * import: the hours given replace those held), 3 the endpoints, 4 the
 * stream's cap. The result goes to every instance as a flush's does.
 */

static ngx_http_mitte_redis_script_t  ngx_http_mitte_merge_script = {
    NGX_HTTP_MITTE_SYNC_LINE
    "local P, set = ARGV[1], ARGV[2] == 'set'\n"
    "local out = {}\n"
    "for i, e in ipairs(cjson.decode(ARGV[3])) do\n"
    "    local hk = P .. '{e:' .. e.s .. '}:h'\n"
    "    local mk = P .. '{e:' .. e.s .. '}:m'\n"
    "    if set then redis.call('DEL', hk) end\n"
    "    local hours = {}\n"
    "    for j, h in ipairs(e.h) do\n"
    "        local r = tonumber(redis.call('HGET', hk, h[1] .. 'r') or '0')\n"
    "        local f = tonumber(redis.call('HGET', hk, h[1] .. 'f') or '0')\n"
    "        if h[2] > r then r = h[2] end\n"
    "        if h[3] > f then f = h[3] end\n"
    "        redis.call('HSET', hk, h[1] .. 'r', r, h[1] .. 'f', f)\n"
    "        hours[j] = {h[1], r, f}\n"
    "    end\n"
    "    if e.u ~= '' then\n"
    "        if set then redis.call('HSET', mk, 'u', e.u)\n"
    "        else redis.call('HSETNX', mk, 'u', e.u) end\n"
    "    end\n"
    "    if e.n ~= '' then\n"
    "        if set then redis.call('HSET', mk, 'n', e.n)\n"
    "        else redis.call('HSETNX', mk, 'n', e.n) end\n"
    "    end\n"
    "    if redis.call('HEXISTS', mk, 'k') == 0 then\n"
    "        redis.call('HSET', mk, 'k', e.k, 'd', e.d, 't', e.t, 'x', 0,\n"
    "                   'st', e.st)\n"
    "    end\n"
    "    redis.call('EXPIRE', hk, 176400)\n"
    "    redis.call('EXPIRE', mk, 176400)\n"
    "    local m = redis.call('HMGET', mk, 'u', 'n', 'k', 'd', 't', 'st')\n"
    "    out[i] = line(e.s, m[1] or '', m[2] or '', m[3] or 0, m[4] or 0,\n"
    "                  m[6] or 0, m[5] or 0, hours)\n"
    "end\n"
    "if #out > 0 then\n"
    "    local seq = redis.call('GET', KEYS[2]) or '0'\n"
    "    redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[4], seq .. '-*',\n"
    "        'f', seq .. '\\n' .. table.concat(out))\n"
    "end\n"
    "return #out\n",
    ""
};


ngx_int_t
ngx_http_mitte_sync_init_process(ngx_cycle_t *cycle)
{
    u_char                      *p;
    ngx_str_t                    instance;
    ngx_http_mitte_sync_t       *s;
    ngx_http_mitte_main_conf_t  *mmcf;

    if (ngx_process != NGX_PROCESS_WORKER
        && ngx_process != NGX_PROCESS_SINGLE)
    {
        return NGX_OK;
    }

    mmcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_mitte_module);

    if (mmcf == NULL || mmcf->redis == NULL || mmcf->shm_zone == NULL) {
        return NGX_OK;
    }

    s = ngx_pcalloc(cycle->pool, sizeof(ngx_http_mitte_sync_t));
    if (s == NULL) {
        return NGX_ERROR;
    }

    s->mmcf = mmcf;
    s->ctx = mmcf->shm_zone->data;
    s->log = cycle->log;
    s->max_events = ngx_max(mmcf->sse_replay, 64);

    s->eps = ngx_alloc(NGX_HTTP_MITTE_SYNC_ENDPOINTS
                       * sizeof(ngx_http_mitte_sync_ep_t), cycle->log);
    s->events = ngx_alloc(s->max_events * sizeof(ngx_http_mitte_event_t),
                          cycle->log);

    if (s->eps == NULL || s->events == NULL) {
        return NGX_ERROR;
    }

    s->timer.handler = ngx_http_mitte_sync_timer;
    s->timer.data = s;
    s->timer.log = cycle->log;
    s->timer.cancelable = 1;

    /* flush numbers grow across restarts of a worker with the same pid */
    s->number = (uint64_t) ngx_time() * 1000;

    ngx_http_mitte_redis_instance(&instance);

    p = ngx_snprintf(s->worker, sizeof(s->worker), "%V:%P", &instance,
                     ngx_pid);
    s->worker_len = p - s->worker;

    s->refill.handler = ngx_http_mitte_sync_refill;
    s->refill.data = s;
    s->refill.log = cycle->log;

    s->check.handler = ngx_http_mitte_sync_check;
    s->check.data = s;
    s->check.log = cycle->log;
    s->check.cancelable = 1;

    s->tick.handler = ngx_http_mitte_sync_tick;
    s->tick.data = s;
    s->tick.log = cycle->log;
    s->tick.cancelable = 1;

    if (ngx_worker == 0) {
        ngx_add_timer(&s->check, NGX_HTTP_MITTE_SYNC_EPOCH);
        ngx_add_timer(&s->tick, ngx_min(mmcf->redis->flush,
                                        NGX_HTTP_MITTE_SYNC_TICK));
    }

    if (ngx_http_mitte_redis_script(&ngx_http_mitte_sync_script) != NGX_OK
        || ngx_http_mitte_redis_script(&ngx_http_mitte_epoch_script)
           != NGX_OK
        || ngx_http_mitte_redis_script(&ngx_http_mitte_merge_script)
           != NGX_OK
        || ngx_http_mitte_redis_on_ready(ngx_http_mitte_sync_ready, s)
           != NGX_OK
        || ngx_http_mitte_redis_on_exit(ngx_http_mitte_sync_exiting, s)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    ngx_http_mitte_sync = s;

    return NGX_OK;
}


/*
 * At exit: a graceful shutdown has sent the batch (below); what is left
 * (Redis away then, or a fast shutdown) stays in the zone, and in the
 * state file if there is one.
 */

void
ngx_http_mitte_sync_exit_process(ngx_cycle_t *cycle)
{
    ngx_http_mitte_sync_t  *s;

    s = ngx_http_mitte_sync;

    if (s == NULL) {
        return;
    }

    if (s->timer.timer_set) {
        ngx_del_timer(&s->timer);
    }

    if (s->check.timer_set) {
        ngx_del_timer(&s->check);
    }

    if (s->tick.timer_set) {
        ngx_del_timer(&s->tick);
    }

    if (s->refill.posted) {
        ngx_delete_posted_event(&s->refill);
    }

    s->ctx->sh->cluster.backlog[ngx_worker % NGX_HTTP_MITTE_MAX_WORKERS] = 0;
}


ngx_int_t
ngx_http_mitte_sync_delivery(ngx_http_mitte_main_conf_t *mmcf,
    ngx_http_mitte_zone_ctx_t *ctx, ngx_http_mitte_delivery_t *d,
    ngx_http_mitte_endpoint_node_t *en, uint32_t hour, ngx_uint_t event)
{
    ngx_uint_t               ready;
    ngx_http_mitte_sync_t   *s;
    ngx_http_mitte_delta_t  *e;

    s = ngx_http_mitte_sync;

    if (s == NULL) {
        return NGX_DECLINED;
    }

    ready = (ngx_http_mitte_redis_ready() == NGX_OK);

    /* the instance's deltas of the endpoint, in the zone (locked) */

    e = en->delta;

    if (e == NULL) {
        /* its first delivery since the last flush */
        e = ngx_http_mitte_delta_get(ctx, en);
    }

    if (e == NULL
        || mitte_delta_add(&e->d, hour, d->success, d->now_ms, d->status)
           != 0)
    {
        /* no room in the zone, or a ninth hour */
        (void) ngx_atomic_fetch_add(&ctx->sh->cluster.dropped, 1);

    } else if (!ready) {
        e->quiet = 1;
    }

    if (ngx_exiting) {
        /* the shutdown's last deliveries: this worker sends them */
        s->harvest = 1;
    }

    if (!ready) {
        if (s->harvest && !s->timer.timer_set && !s->sending) {
            ngx_http_mitte_sync_arm(s, NGX_HTTP_MITTE_SYNC_RETRY);
        }

        return NGX_DECLINED;
    }

    if (event) {
        if (s->nevents == s->max_events) {
            /*
             * a burst past the batch's room (mitte_sse_replay events in
             * one flush interval): the streams miss this one, counted;
             * the counts and the streak are the cluster's as ever
             */
            (void) ngx_atomic_fetch_add(&ctx->sh->cluster.dropped, 1);

        } else {
            /* the event as the zone would keep it; numbered by the cluster */
            ngx_http_mitte_event_delivered_copy(ctx, d, en,
                                                &s->events[s->nevents++]);
        }
    }

    if (event || s->harvest
        || (ngx_worker == 0 && !s->timer.timer_set
            && ctx->sh->ndirty >= NGX_HTTP_MITTE_SYNC_ENDPOINTS / 2))
    {
        /* else the timer set, or worker 0's tick, stays right */
        ngx_http_mitte_sync_schedule(s);
    }

    return NGX_OK;
}


/*
 * With the zone locked by the caller or not: whether worker 0 (or a worker
 * that is exiting) should take the deltas into a flush now
 */

static ngx_uint_t
ngx_http_mitte_sync_due(ngx_http_mitte_sync_t *s)
{
    ngx_http_mitte_sh_t  *sh;

    sh = s->ctx->sh;

    if (s->neps) {
        /* taken, and not sealed for want of memory: again */
        return 1;
    }

    if (sh->ndirty == 0) {
        return 0;
    }

    if (s->harvest) {
        return 1;
    }

    return ngx_worker == 0
           && (sh->ndirty >= NGX_HTTP_MITTE_SYNC_ENDPOINTS / 2
               || (ngx_msec_int_t) (ngx_current_msec - sh->dirty_since)
                  >= (ngx_msec_int_t) s->mmcf->redis->flush);
}


/* worker 0, every NGX_HTTP_MITTE_SYNC_TICK ms: the deltas of every worker */

static void
ngx_http_mitte_sync_tick(ngx_event_t *ev)
{
    ngx_http_mitte_sync_t *s = ev->data;

    if (ngx_exiting || ngx_quit || ngx_terminate) {
        return;
    }

    /* sets the flush timer when the deltas are due */
    ngx_http_mitte_sync_schedule(s);

    ngx_add_timer(ev, ngx_min(s->mmcf->redis->flush,
                              NGX_HTTP_MITTE_SYNC_TICK));
}


/*
 * With the zone locked: up to NGX_HTTP_MITTE_SYNC_ENDPOINTS endpoints'
 * deltas, oldest first, taken from the zone into s->eps; their number
 */

static ngx_uint_t
ngx_http_mitte_sync_take(ngx_http_mitte_sync_t *s)
{
    ngx_str_t                        name;
    ngx_uint_t                       n;
    ngx_queue_t                     *q;
    ngx_http_mitte_sh_t             *sh;
    ngx_http_mitte_delta_t          *d;
    ngx_http_mitte_sync_ep_t        *e;
    ngx_http_mitte_endpoint_node_t  *en;

    sh = s->ctx->sh;
    n = 0;

    while (n < NGX_HTTP_MITTE_SYNC_ENDPOINTS && !ngx_queue_empty(&sh->dirty))
    {
        q = ngx_queue_head(&sh->dirty);
        d = ngx_queue_data(q, ngx_http_mitte_delta_t, queue);
        en = d->en;
        e = &s->eps[n++];

        e->delta = *d;

        /* the slug, owner and name as the zone has them now */

        e->slug_len = en->slug_len;
        ngx_memcpy(e->slug, en->ep.slug, en->slug_len);
        e->user_len = en->user_len;
        ngx_memcpy(e->user, en->ep.user, en->user_len);
        e->name_len = 0;

        if (en->ep.name_off) {
            ngx_http_mitte_endpoint_name(s->ctx, en, &name);
            e->name_len = (u_char) ngx_min(name.len, MITTE_NAME_MAX);
            ngx_memcpy(e->name, name.data, e->name_len);
        }

        ngx_http_mitte_delta_done(s->ctx, d);
    }

    return n;
}


/*
 * The flush timer. After a graceful shutdown began, while Redis is ready,
 * a batch to send holds the exit (a timer that is not cancelable), so the
 * deliveries of the worker's last requests reach the cluster; a retry
 * (Redis away, a failed flush) does not.
 */

static void
ngx_http_mitte_sync_arm(ngx_http_mitte_sync_t *s, ngx_msec_t ms)
{
    s->timer.cancelable = !(ngx_exiting && ms != NGX_HTTP_MITTE_SYNC_RETRY);

    ngx_add_timer(&s->timer, ms);
}


/*
 * The next flush, while none is on its way nor waits to be sent again
 * (its retry timer is set): soon when the batch holds events, or the
 * zone's deltas are due for this worker (worker 0's, or an exiting one's);
 * a timer set for later is set again sooner (ngx_add_timer() alone would
 * keep a timer less than 300 ms off)
 */

static void
ngx_http_mitte_sync_schedule(ngx_http_mitte_sync_t *s)
{
    ngx_msec_t  delay;

    if (s->sending || (s->pending && s->timer.timer_set)) {
        return;
    }

    if (s->pending || s->nevents || ngx_http_mitte_sync_due(s)) {
        delay = NGX_HTTP_MITTE_SYNC_INTERVAL;

    } else {
        return;
    }

    if (s->timer.timer_set) {
        if ((ngx_msec_int_t) (s->timer.timer.key - ngx_current_msec)
            <= (ngx_msec_int_t) delay)
        {
            return;
        }

        ngx_del_timer(&s->timer);
    }

    ngx_http_mitte_sync_arm(s, delay);
}


/* a graceful shutdown begins: the batch goes now */

static void
ngx_http_mitte_sync_exiting(void *data)
{
    ngx_http_mitte_sync_t *s = data;

    /* the deltas of the instance as they are now go with this worker's */
    s->harvest = 1;

    if (s->sending || !(s->pending || s->nevents || s->ctx->sh->ndirty)) {
        return;
    }

    if (s->timer.timer_set) {
        ngx_del_timer(&s->timer);
    }

    ngx_http_mitte_sync_timer(&s->timer);
}


static void
ngx_http_mitte_sync_timer(ngx_event_t *ev)
{
    ngx_http_mitte_sync_t *s = ev->data;

    ngx_uint_t  counts;

    if (s->sending) {
        return;
    }

    if (ngx_http_mitte_redis_ready() != NGX_OK || !s->checked) {
        if (s->pending || s->nevents || s->harvest) {
            ngx_http_mitte_sync_arm(s, NGX_HTTP_MITTE_SYNC_RETRY);
        }

        return;
    }

    if (!s->pending) {
        counts = ngx_http_mitte_sync_due(s);

        if (ngx_http_mitte_sync_seal(s, counts) != NGX_OK) {
            ngx_http_mitte_sync_schedule(s);
            return;
        }
    }

    ngx_http_mitte_sync_send(s);
}


/*
 * The batch as the script's text, with a new flush number: its events,
 * and when "counts" the endpoints' deltas taken from the zone; what was
 * sealed leaves the batch. NGX_DECLINED: nothing to send.
 */

static ngx_int_t
ngx_http_mitte_sync_seal(ngx_http_mitte_sync_t *s, ngx_uint_t counts)
{
    u_char      *p;
    ngx_uint_t   i, neps;
    ngx_time_t  *tp;

    if (counts && s->neps == 0) {
        ngx_shmtx_lock(&s->ctx->shpool->mutex);
        s->neps = ngx_http_mitte_sync_take(s);
        ngx_shmtx_unlock(&s->ctx->shpool->mutex);

        /* an exiting worker takes them once: a reload's new workers go on */
        s->harvest = 0;
    }

    neps = s->neps;

    if (neps == 0 && s->nevents == 0) {
        return NGX_DECLINED;
    }

    if (ngx_http_mitte_sync_room(s, &s->deltas, &s->deltas_size,
                                 neps * NGX_HTTP_MITTE_SYNC_JSON_MAX + 3)
        != NGX_OK
        || ngx_http_mitte_sync_room(s, &s->evtext, &s->evtext_size,
                                    s->nevents * NGX_HTTP_MITTE_SYNC_JSON_MAX
                                    + 3)
           != NGX_OK)
    {
        return NGX_DECLINED;
    }

    /* the lines' hours and times are counted back from the seal's */

    tp = ngx_timeofday();
    s->sealed_hour = mitte_hour_of(tp->sec);
    s->sealed_ms = (uint64_t) tp->sec * 1000 + tp->msec;

    p = s->deltas;

    for (i = 0; i < neps; i++) {
        p = ngx_http_mitte_sync_ep_line(p, &s->eps[i], s->sealed_hour,
                                        s->sealed_ms);
    }

    s->deltas_len = p - s->deltas;

    p = s->evtext;

    for (i = 0; i < s->nevents; i++) {
        p = ngx_http_mitte_sync_event_line(p, &s->events[i]);
    }

    s->evtext_len = p - s->evtext;

    s->flight_eps = neps;
    s->flight_events = s->nevents;
    s->number++;
    s->pending = 1;

    s->neps = 0;
    s->nevents = 0;

    return NGX_OK;
}


/*
 * A buffer of at least "size" bytes, kept from flush to flush. Mapped,
 * not malloc()ed: a buffer grown amid the requests' allocations would
 * leave its old one as a hole in the heap, and glibc's mmap threshold
 * rises with every mapped block it frees, so that malloc() would not keep
 * these out of the heap.
 */

static ngx_int_t
ngx_http_mitte_sync_room(ngx_http_mitte_sync_t *s, u_char **buf,
    size_t *have, size_t size)
{
    u_char  *p;

    if (*have >= size) {
        return NGX_OK;
    }

    if (*buf) {
        (void) munmap(*buf, *have);
        *buf = NULL;
        *have = 0;
    }

    size = ngx_align(ngx_max(size, 64 * 1024), ngx_pagesize);

    p = mmap(NULL, size, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS,
             -1, 0);

    if (p == MAP_FAILED) {
        ngx_log_error(NGX_LOG_ALERT, s->log, ngx_errno,
                      "mitte: mmap(%uz) for a flush failed", size);
        return NGX_ERROR;
    }

    *buf = p;
    *have = size;

    return NGX_OK;
}


/*
 * An endpoint's line for the flush script, fields apart by 0x1f:
 *   slug user name lead tail ok quiet status first-ago last-ago hours
 * first-ago and last-ago are milliseconds before the seal's time, the
 * hours "back:requests:failures" apart by commas, "back" hours before the
 * seal's hour: small numbers, fewer digits to write and read than times
 * (a clock set back counts as no time)
 */

static u_char *
ngx_http_mitte_sync_ep_line(u_char *p, ngx_http_mitte_sync_ep_t *ep,
    uint32_t hour, uint64_t ms)
{
    ngx_uint_t      i;
    mitte_delta_t  *e;

    e = &ep->delta.d;

    /* a slug is of [A-Za-z0-9._-] */
    p = ngx_cpymem(p, ep->slug, ep->slug_len);
    *p++ = 0x1f;
    p = ngx_http_mitte_sync_field(p, ep->user, ep->user_len);
    *p++ = 0x1f;
    p = ngx_http_mitte_sync_field(p, ep->name, ep->name_len);
    *p++ = 0x1f;
    p = ngx_http_mitte_sync_u64(p, e->lead);
    *p++ = 0x1f;
    p = ngx_http_mitte_sync_u64(p, e->tail);
    *p++ = 0x1f;
    *p++ = e->ok ? '1' : '0';
    *p++ = 0x1f;
    *p++ = ep->delta.quiet ? '1' : '0';
    *p++ = 0x1f;
    p = ngx_http_mitte_sync_u64(p, e->status);
    *p++ = 0x1f;
    p = ngx_http_mitte_sync_u64(p, ms > e->first_ms ? ms - e->first_ms : 0);
    *p++ = 0x1f;
    p = ngx_http_mitte_sync_u64(p, ms > e->last_ms ? ms - e->last_ms : 0);
    *p++ = 0x1f;

    for (i = 0; i < e->nhours; i++) {
        if (i) {
            *p++ = ',';
        }

        p = ngx_http_mitte_sync_u64(p, hour > e->hours[i].hour
                                       ? hour - e->hours[i].hour : 0);
        *p++ = ':';
        p = ngx_http_mitte_sync_u64(p, e->hours[i].requests);
        *p++ = ':';
        p = ngx_http_mitte_sync_u64(p, e->hours[i].failures);
    }

    *p++ = '\n';

    return p;
}


/*
 * A name as a field of a line: the bytes that end a field or a line (0x1f,
 * LF) as "?", the rest as they are
 */

static u_char *
ngx_http_mitte_sync_field(u_char *p, u_char *s, size_t len)
{
    while (len--) {
        *p++ = (*s == 0x1f || *s == '\n') ? '?' : *s;
        s++;
    }

    return p;
}


/* a decimal number, without ngx_sprintf's format parsing */

static u_char *
ngx_http_mitte_sync_u64(u_char *p, uint64_t v)
{
    u_char   tmp[NGX_INT64_LEN];
    u_char  *t;

    t = tmp + sizeof(tmp);

    do {
        *--t = (u_char) ('0' + v % 10);
        v /= 10;
    } while (v);

    return ngx_cpymem(p, t, tmp + sizeof(tmp) - t);
}


static u_char *
ngx_http_mitte_sync_event_line(u_char *p, ngx_http_mitte_event_t *e)
{
    *p++ = 'E';
    p = ngx_http_mitte_sync_plain(p, e->slug, e->slug_len);
    *p++ = 0x1f;
    p = ngx_http_mitte_sync_plain(p, e->user, e->user_len);
    *p++ = 0x1f;
    p = ngx_http_mitte_sync_plain(p, e->u.d.name, e->name_len);
    *p++ = 0x1f;
    p = ngx_http_mitte_sync_plain(p, e->u.d.method, e->method_len);
    *p++ = 0x1f;
    p = ngx_http_mitte_sync_plain(p, e->u.d.rid, e->rid_len);

    *p++ = 0x1f;
    p = ngx_http_mitte_sync_u64(p, e->status);
    *p++ = 0x1f;
    *p++ = e->flag ? '1' : '0';
    *p++ = 0x1f;
    p = ngx_http_mitte_sync_u64(p, e->value);
    *p++ = 0x1f;
    p = ngx_http_mitte_sync_u64(p, e->time_ms);
    *p++ = '\n';

    return p;
}


/* a name for the flat text: control bytes as "?" */

static u_char *
ngx_http_mitte_sync_plain(u_char *p, u_char *s, size_t len)
{
    while (len--) {
        *p++ = (*s < 0x20 || *s == 0x7f) ? '?' : *s;
        s++;
    }

    return p;
}


static u_char *
ngx_http_mitte_sync_str(u_char *p, const char *name, u_char *s, size_t len)
{
    p = ngx_cpymem(p, name, ngx_strlen(name));

    return p + mitte_json_escape(p, s, len);
}


static void
ngx_http_mitte_sync_send(ngx_http_mitte_sync_t *s)
{
    u_char       keys[3][NGX_HTTP_MITTE_REDIS_KEY_MAX];
    u_char       num[9][NGX_INT64_LEN + 1];
    size_t       argvlen[16];
    ngx_str_t   *prefix;
    ngx_uint_t   i;
    const char  *argv[16];

    argv[0] = "3";
    argvlen[0] = 1;

    argvlen[1] = ngx_http_mitte_redis_key(keys[0], sizeof(keys[0]),
                                          "{w:%*s}:f", s->worker_len,
                                          s->worker);
    argvlen[2] = ngx_http_mitte_redis_key(keys[1], sizeof(keys[1]),
                                          "{events}");
    argvlen[3] = ngx_http_mitte_redis_key(keys[2], sizeof(keys[2]),
                                          "{events}:seq");

    for (i = 0; i < 3; i++) {
        argv[i + 1] = (const char *) keys[i];
    }

    prefix = &s->mmcf->redis->prefix;

    argvlen[4] = ngx_sprintf(num[0], "%uL", s->number) - num[0];
    argvlen[5] = prefix->len;
    argv[5] = (const char *) prefix->data;
    argv[6] = (const char *) s->deltas;
    argvlen[6] = s->deltas_len;
    argv[7] = (const char *) s->evtext;
    argvlen[7] = s->evtext_len;
    argvlen[8] = ngx_sprintf(num[1], "%ui", s->flight_events) - num[1];
    argvlen[9] = ngx_sprintf(num[2], "%ui", s->mmcf->down_threshold)
                 - num[2];
    argvlen[10] = ngx_sprintf(num[3], "%uL", (uint64_t) s->mmcf->down_reset)
                  - num[3];
    argvlen[11] = ngx_sprintf(num[4], "%uL", s->ctx->sh->event_seq)
                  - num[4];
    argvlen[12] = ngx_sprintf(num[5], "%uD", mitte_hour_of(ngx_time()))
                  - num[5];
    argvlen[13] = ngx_sprintf(num[6], "%ui", s->mmcf->sse_replay) - num[6];
    argvlen[14] = ngx_sprintf(num[7], "%uD", s->sealed_hour) - num[7];
    argvlen[15] = ngx_sprintf(num[8], "%uL", s->sealed_ms) - num[8];

    argv[4] = (const char *) num[0];
    argv[8] = (const char *) num[1];
    argv[9] = (const char *) num[2];
    argv[10] = (const char *) num[3];
    argv[11] = (const char *) num[4];
    argv[12] = (const char *) num[5];
    argv[13] = (const char *) num[6];
    argv[14] = (const char *) num[7];
    argv[15] = (const char *) num[8];

    if (ngx_http_mitte_redis_eval(ngx_http_mitte_sync_sent, s,
                                  &ngx_http_mitte_sync_script, 16, argv,
                                  argvlen)
        != NGX_OK)
    {
        ngx_http_mitte_sync_arm(s, NGX_HTTP_MITTE_SYNC_RETRY);
        return;
    }

    s->sending = 1;
}


static void
ngx_http_mitte_sync_sent(redisReply *reply, void *data, ngx_uint_t rc)
{
    ngx_http_mitte_sync_t *s = data;

    ngx_http_mitte_sh_t  *sh;

    sh = s->ctx->sh;
    s->sending = 0;

    if (rc != NGX_HTTP_MITTE_REDIS_REPLY
        || reply->type != REDIS_REPLY_ARRAY || reply->elements != 2
        || reply->element[0]->type != REDIS_REPLY_INTEGER)
    {
        /* kept, and sent again with the same number: counted once */

        (void) ngx_atomic_fetch_add(&sh->cluster.flush_errors, 1);

        if (ngx_http_mitte_redis_may_log() == NGX_OK) {

            ngx_log_error(NGX_LOG_ERR, s->log, 0,
                          "mitte: redis \"%V\": a flush of %ui endpoints "
                          "and %ui events failed (%s); kept and sent again "
                          "(logged at most once a minute)",
                          &s->mmcf->redis->name, s->flight_eps,
                          s->flight_events,
                          (rc == NGX_HTTP_MITTE_REDIS_REPLY
                           && reply->type == REDIS_REPLY_ERROR)
                          ? reply->str : "no reply");
        }

        if (!s->timer.timer_set) {
            ngx_http_mitte_sync_arm(s, NGX_HTTP_MITTE_SYNC_RETRY);
        }

        return;
    }

    (void) ngx_atomic_fetch_add(&sh->cluster.flushes, 1);
    (void) ngx_atomic_fetch_add(&sh->cluster.events_out, s->flight_events);

    s->pending = 0;

    ngx_http_mitte_sync_backlog(s);

    if (reply->element[0]->integer == 1
        && reply->element[1]->type == REDIS_REPLY_STRING)
    {
        ngx_http_mitte_sync_crossings(s, reply->element[1]);
    }

    ngx_http_mitte_sync_schedule(s);
}


static void
ngx_http_mitte_sync_backlog(ngx_http_mitte_sync_t *s)
{
    s->ctx->sh->cluster.backlog[ngx_worker % NGX_HTTP_MITTE_MAX_WORKERS] =
        s->neps + (s->pending ? s->flight_eps : 0);
}


/* the streaks that crossed in this flush: each one's notification */

static void
ngx_http_mitte_sync_crossings(ngx_http_mitte_sync_t *s, redisReply *reply)
{
    cJSON  *doc, *c;

    if (reply->len <= 2) {
        return;
    }

    doc = cJSON_ParseWithLength(reply->str, reply->len);

    if (doc == NULL || !cJSON_IsArray(doc)) {
        ngx_log_error(NGX_LOG_ERR, s->log, 0,
                      "mitte: redis \"%V\": a flush's reply is not what "
                      "the script returns; its crossings are lost",
                      &s->mmcf->redis->name);
        cJSON_Delete(doc);
        return;
    }

    cJSON_ArrayForEach(c, doc) {
        ngx_http_mitte_sync_cross(s, c);
    }

    cJSON_Delete(doc);

    ngx_http_mitte_sse_wake(s->ctx);
}


static void
ngx_http_mitte_sync_cross(ngx_http_mitte_sync_t *s, cJSON *c)
{
    u_char                           msg[NGX_HTTP_MITTE_MESSAGE_MAX];
    size_t                           len;
    cJSON                           *slug, *kind, *count, *x, *user;
    ngx_str_t                        name;
    ngx_uint_t                       type, status;
    ngx_time_t                      *tp;
    ngx_http_mitte_once_t            once;
    ngx_http_mitte_zone_ctx_t       *ctx;
    ngx_http_mitte_user_node_t      *un;
    ngx_http_mitte_endpoint_node_t  *en;

    slug = cJSON_GetArrayItem(c, 0);
    kind = cJSON_GetArrayItem(c, 1);
    count = cJSON_GetArrayItem(c, 2);
    x = cJSON_GetArrayItem(c, 3);
    user = cJSON_GetArrayItem(c, 4);

    if (!cJSON_IsString(slug) || !cJSON_IsNumber(kind)
        || !cJSON_IsNumber(count) || !cJSON_IsNumber(x)
        || !cJSON_IsString(user) || user->valuestring[0] == '\0'
        || ngx_strlen(slug->valuestring) > MITTE_SLUG_MAX
        || ngx_strlen(user->valuestring) > MITTE_USER_MAX)
    {
        return;
    }

    type = (kind->valueint == 1) ? NGX_HTTP_MITTE_ENDPOINT_DOWN
                                 : NGX_HTTP_MITTE_ENDPOINT_RECOVERED;

    once.len = ngx_snprintf(once.what, sizeof(once.what), "%s:%s:%d",
                            mitte_notify_type_name(type), slug->valuestring,
                            x->valueint)
               - once.what;
    once.ttl = s->mmcf->down_reset / 1000 + 86400;

    ctx = s->ctx;
    tp = ngx_timeofday();

    ngx_shmtx_lock(&ctx->shpool->mutex);

    en = ngx_http_mitte_endpoint_lookup(ctx, (u_char *) slug->valuestring,
                                        ngx_strlen(slug->valuestring));

    un = ngx_http_mitte_user_get(ctx, (u_char *) user->valuestring,
                                 ngx_strlen(user->valuestring), en);

    if (un == NULL) {
        ngx_shmtx_unlock(&ctx->shpool->mutex);
        return;
    }

    if (en) {
        ngx_http_mitte_endpoint_name(ctx, en, &name);
        name.len = ngx_min(name.len, MITTE_NAME_MAX);
        status = en->last_status;

    } else {
        name.data = (u_char *) slug->valuestring;
        name.len = ngx_strlen(slug->valuestring);
        status = 0;
    }

    if (type == NGX_HTTP_MITTE_ENDPOINT_DOWN) {
        len = mitte_notify_down_message((char *) msg, sizeof(msg),
                                        (char *) name.data, name.len,
                                        (uint32_t) count->valuedouble,
                                        (unsigned) status);

    } else {
        len = mitte_notify_recovered_message((char *) msg, sizeof(msg),
                                             (char *) name.data, name.len,
                                             (unsigned) status,
                                             (uint32_t) count->valuedouble);
    }

    (void) ngx_http_mitte_notify(s->mmcf, ctx, un, type,
                                 (u_char *) slug->valuestring,
                                 ngx_strlen(slug->valuestring), msg,
                                 ngx_min(len, sizeof(msg) - 1),
                                 (uint64_t) tp->sec * 1000 + tp->msec, en,
                                 &once);

    ngx_shmtx_unlock(&ctx->shpool->mutex);
}


/*
 * The connection is ready: the data set's epoch first. The backlog is sent
 * when the epoch is the one it was recorded against; when Redis lost its
 * data (restarted empty, flushed, another one), the zone refills it
 * instead, and the backlog, which the zone holds too, is dropped.
 */

static void
ngx_http_mitte_sync_ready(void *data)
{
    ngx_http_mitte_sync_t *s = data;

    s->checked = 0;

    ngx_http_mitte_sync_ask(s);
}


/*
 * Worker 0 asks again every NGX_HTTP_MITTE_SYNC_EPOCH ms: a FLUSHALL
 * leaves the connections as they are
 */

static void
ngx_http_mitte_sync_check(ngx_event_t *ev)
{
    ngx_http_mitte_sync_t *s = ev->data;

    if (ngx_exiting || ngx_quit || ngx_terminate) {
        return;
    }

    if (ngx_http_mitte_redis_ready() == NGX_OK) {
        ngx_http_mitte_sync_ask(s);
    }

    ngx_add_timer(ev, NGX_HTTP_MITTE_SYNC_EPOCH);
}


static void
ngx_http_mitte_sync_ask(ngx_http_mitte_sync_t *s)
{
    u_char       key[NGX_HTTP_MITTE_REDIS_KEY_MAX];
    u_char       fresh[NGX_INT64_LEN];
    size_t       argvlen[3];
    const char  *argv[3];

    argv[0] = "1";
    argvlen[0] = 1;
    argv[1] = (const char *) key;
    argvlen[1] = ngx_http_mitte_redis_key(key, sizeof(key), "{meta}:epoch");
    argv[2] = (const char *) fresh;
    argvlen[2] = ngx_sprintf(fresh, "%08xD%08xD", (uint32_t) ngx_random(),
                             (uint32_t) ngx_random())
                 - fresh;

    if ((argvlen[1] == 0
         || ngx_http_mitte_redis_eval(ngx_http_mitte_sync_epoch, s,
                                      &ngx_http_mitte_epoch_script, 3, argv,
                                      argvlen)
            != NGX_OK)
        && ngx_http_mitte_redis_may_log() == NGX_OK)
    {
        ngx_log_error(NGX_LOG_ERR, s->log, 0,
                      "mitte: redis \"%V\": cannot ask for the data set's "
                      "epoch", &s->mmcf->redis->name);
    }
}


static void
ngx_http_mitte_sync_epoch(redisReply *reply, void *data, ngx_uint_t rc)
{
    ngx_http_mitte_sync_t *s = data;

    uint64_t                            epoch;
    ngx_uint_t                          i;
    ngx_atomic_uint_t                   old;
    ngx_http_mitte_cluster_counters_t  *cc;

    if (rc != NGX_HTTP_MITTE_REDIS_REPLY) {
        /* a lost connection asks again when it is back */
        return;
    }

    if (reply->type != REDIS_REPLY_STRING || reply->len != 16) {
        /*
         * an error (or a key the module did not write): the backlog is
         * sent as to the same data set rather than kept back for good
         */
        if (ngx_http_mitte_redis_may_log() == NGX_OK) {

            ngx_log_error(NGX_LOG_ERR, s->log, 0,
                          "mitte: redis \"%V\": the data set's epoch could "
                          "not be read (%s); sending on (logged at most "
                          "once a minute)", &s->mmcf->redis->name,
                          reply->type == REDIS_REPLY_ERROR ? reply->str
                                                           : "not ours");
        }

        s->checked = 1;
        return;
    }

    epoch = 0;

    for (i = 0; i < 16; i++) {
        epoch = epoch * 16 + (uint64_t) ngx_hextoi((u_char *) &reply->str[i],
                                                   1);
    }

    if (s->epoch != epoch && s->epoch != 0) {
        ngx_http_mitte_sync_drop(s);
    }

    s->epoch = epoch;
    s->checked = 1;

    cc = &s->ctx->sh->cluster;

    old = cc->epoch;

    if (old != (ngx_atomic_uint_t) epoch
        && ngx_atomic_cmp_set(&cc->epoch, old, (ngx_atomic_uint_t) epoch))
    {
        if (old != 0) {
            /*
             * a new stream too, whose ids may start below the last one
             * read: the relay reads it from its start (after its current
             * XREAD, within its block)
             */
            cc->relay_seq = 0;
            cc->relay_sub = 0;
        }

        /* this worker refills Redis from the zone, for the instance */
        s->refill_started = 0;
        s->refilled = 0;
        ngx_post_event(&s->refill, &ngx_posted_events);
    }

    if ((s->pending || s->nevents || ngx_http_mitte_sync_due(s))
        && !s->timer.timer_set && !s->sending)
    {
        ngx_http_mitte_sync_arm(s, NGX_HTTP_MITTE_SYNC_INTERVAL);
    }
}


/* the backlog of a data set Redis lost: the zone refills it */

static void
ngx_http_mitte_sync_drop(ngx_http_mitte_sync_t *s)
{
    ngx_queue_t          *q;
    ngx_http_mitte_sh_t  *sh;

    s->pending = 0;
    s->neps = 0;

    /* the instance's deltas too (any worker that sees the epoch may) */

    sh = s->ctx->sh;

    ngx_shmtx_lock(&s->ctx->shpool->mutex);

    while (!ngx_queue_empty(&sh->dirty)) {
        q = ngx_queue_head(&sh->dirty);
        ngx_http_mitte_delta_done(s->ctx,
                                  ngx_queue_data(q, ngx_http_mitte_delta_t,
                                                 queue));
    }

    ngx_shmtx_unlock(&s->ctx->shpool->mutex);

    ngx_http_mitte_sync_backlog(s);

    ngx_log_error(NGX_LOG_NOTICE, s->log, 0,
                  "mitte: redis \"%V\" lost its data (a new epoch): "
                  "the zone refills it, this worker's backlog is not sent",
                  &s->mmcf->redis->name);
}


#define NGX_HTTP_MITTE_SYNC_REFILL      64

/* the refill: the zone's endpoints, a slice a call, in the tree's order */

static void
ngx_http_mitte_sync_refill(ngx_event_t *ev)
{
    ngx_http_mitte_sync_t *s = ev->data;

    u_char                          *text, *p;
    uint32_t                         hour;
    ngx_uint_t                       n;
    ngx_rbtree_t                    *tree;
    ngx_rbtree_node_t               *node;
    ngx_http_mitte_zone_ctx_t       *ctx;
    ngx_http_mitte_endpoint_node_t  *en;
    ngx_http_mitte_endpoint_copy_t  *copy;

    ctx = s->ctx;

    copy = ngx_alloc(NGX_HTTP_MITTE_SYNC_REFILL
                     * sizeof(ngx_http_mitte_endpoint_copy_t), s->log);
    text = ngx_alloc(NGX_HTTP_MITTE_SYNC_REFILL * 4096 + 2, s->log);

    if (copy == NULL || text == NULL) {
        goto done;
    }

    n = 0;

    ngx_shmtx_lock(&ctx->shpool->mutex);

    tree = &ctx->sh->ep_rbtree;

    if (s->refill_started) {
        node = ngx_http_mitte_tree_after(tree, ngx_http_mitte_endpoint_key,
                                         s->refill_key, s->refill_slug,
                                         s->refill_len);

    } else {
        node = (tree->root != tree->sentinel)
               ? ngx_rbtree_min(tree->root, tree->sentinel) : NULL;
    }

    for ( /* void */ ; node && n < NGX_HTTP_MITTE_SYNC_REFILL;
         node = ngx_rbtree_next(tree, node))
    {
        en = (ngx_http_mitte_endpoint_node_t *) &node->color;

        ngx_http_mitte_endpoint_copy(ctx, en, &copy[n++]);

        s->refill_key = node->key;
        s->refill_len = en->slug_len;
        ngx_memcpy(s->refill_slug, en->ep.slug, en->slug_len);
        s->refill_started = 1;
    }

    ngx_shmtx_unlock(&ctx->shpool->mutex);

    if (n == 0) {
        (void) ngx_atomic_fetch_add(&ctx->sh->cluster.refills, 1);

        ngx_log_error(NGX_LOG_NOTICE, s->log, 0,
                      "mitte: redis \"%V\": %ui endpoints of the zone "
                      "written to a new data set", &s->mmcf->redis->name,
                      s->refilled);
        goto done;
    }

    hour = mitte_hour_of(ngx_time());

    p = text;
    *p++ = '[';

    for (s->refilled += n; n; n--) {
        p = ngx_http_mitte_sync_copy_json(p, &copy[n - 1], hour);
        *p++ = (n > 1) ? ',' : ']';
    }

    if (ngx_http_mitte_sync_merge(s, text, p - text, "max", s) != NGX_OK
        && ngx_http_mitte_redis_may_log() == NGX_OK)
    {
        ngx_log_error(NGX_LOG_ERR, s->log, 0,
                      "mitte: redis \"%V\": the refill of a new data set "
                      "stopped (the connection went)",
                      &s->mmcf->redis->name);
    }

done:

    if (copy) {
        ngx_free(copy);
    }

    if (text) {
        ngx_free(text);
    }
}


static void
ngx_http_mitte_sync_refilled(redisReply *reply, void *data, ngx_uint_t rc)
{
    ngx_http_mitte_sync_t *s = data;

    if ((rc != NGX_HTTP_MITTE_REDIS_REPLY
         || reply->type != REDIS_REPLY_INTEGER)
        && ngx_http_mitte_redis_may_log() == NGX_OK)
    {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "mitte: redis: endpoints were not written (%s)",
                      (rc == NGX_HTTP_MITTE_REDIS_REPLY
                       && reply->type == REDIS_REPLY_ERROR)
                      ? reply->str : "no reply");
    }

    if (s == NULL || ngx_exiting) {
        return;
    }

    ngx_post_event(&s->refill, &ngx_posted_events);
}


/* an endpoint copied out of the zone as the merge script reads it */

static u_char *
ngx_http_mitte_sync_copy_json(u_char *p, ngx_http_mitte_endpoint_copy_t *c,
    uint32_t now_hour)
{
    uint32_t    h, r, f;
    ngx_uint_t  first;

    p = ngx_http_mitte_sync_str(p, "{\"s\":\"", c->ep.slug, c->slug_len);
    p = ngx_http_mitte_sync_str(p, "\",\"u\":\"", c->ep.user, c->user_len);
    p = ngx_http_mitte_sync_str(p, "\",\"n\":\"", c->name, c->name_len);
    p = ngx_cpymem(p, "\",\"h\":[", 7);

    first = 1;

    for (h = now_hour - 48; h <= now_hour; h++) {
        mitte_ring_get(&c->ep.ring, now_hour, h, &r, &f);

        if (r == 0) {
            continue;
        }

        p = ngx_sprintf(p, "%s[%uD,%uD,%uD]", first ? "" : ",", h, r, f);
        first = 0;
    }

    return ngx_sprintf(p, "],\"k\":%uD,\"d\":%uD,\"t\":%uL,\"st\":%uD}",
                       c->ep.streak.count, c->ep.streak.down,
                       c->ep.streak.last_ms, (uint32_t) c->last_status);
}


static ngx_int_t
ngx_http_mitte_sync_merge(ngx_http_mitte_sync_t *s, u_char *text,
    size_t len, const char *mode, void *data)
{
    u_char       keys[2][NGX_HTTP_MITTE_REDIS_KEY_MAX];
    u_char       cap[NGX_INT64_LEN];
    size_t       argvlen[7];
    ngx_str_t   *prefix;
    const char  *argv[7];

    prefix = &s->mmcf->redis->prefix;

    argv[0] = "2";
    argvlen[0] = 1;
    argv[1] = (const char *) keys[0];
    argvlen[1] = ngx_http_mitte_redis_key(keys[0], sizeof(keys[0]),
                                          "{events}");
    argv[2] = (const char *) keys[1];
    argvlen[2] = ngx_http_mitte_redis_key(keys[1], sizeof(keys[1]),
                                          "{events}:seq");
    argv[3] = (const char *) prefix->data;
    argvlen[3] = prefix->len;
    argv[4] = mode;
    argvlen[4] = ngx_strlen(mode);
    argv[5] = (const char *) text;
    argvlen[5] = len;
    argv[6] = (const char *) cap;
    argvlen[6] = ngx_sprintf(cap, "%ui", s->mmcf->sse_replay) - cap;

    return ngx_http_mitte_redis_eval(ngx_http_mitte_sync_refilled, data,
                                     &ngx_http_mitte_merge_script, 7, argv,
                                     argvlen);
}


/*
 * An endpoint the operator API imported or changed (cluster mode): its
 * hours replace those Redis holds, and every instance hears of it.
 * Without the lock.
 */

ngx_int_t
ngx_http_mitte_sync_endpoint(ngx_http_mitte_main_conf_t *mmcf, u_char *slug,
    size_t len)
{
    u_char                          *text, *p;
    ngx_int_t                        rc;
    ngx_http_mitte_sync_t           *s;
    ngx_http_mitte_zone_ctx_t       *ctx;
    ngx_http_mitte_endpoint_node_t  *en;
    ngx_http_mitte_endpoint_copy_t   copy;

    s = ngx_http_mitte_sync;

    if (s == NULL || ngx_http_mitte_redis_ready() != NGX_OK) {
        return NGX_DECLINED;
    }

    ctx = mmcf->shm_zone->data;

    ngx_shmtx_lock(&ctx->shpool->mutex);

    en = ngx_http_mitte_endpoint_lookup(ctx, slug, len);

    if (en) {
        ngx_http_mitte_endpoint_copy(ctx, en, &copy);
    }

    ngx_shmtx_unlock(&ctx->shpool->mutex);

    if (en == NULL) {
        return NGX_DECLINED;
    }

    text = ngx_alloc(4096, s->log);
    if (text == NULL) {
        return NGX_ERROR;
    }

    p = text;
    *p++ = '[';
    p = ngx_http_mitte_sync_copy_json(p, &copy, mitte_hour_of(ngx_time()));
    *p++ = ']';

    rc = ngx_http_mitte_sync_merge(s, text, p - text, "set", NULL);

    ngx_free(text);

    return rc;
}
