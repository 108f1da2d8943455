/*
 * Copyright (C) ngx_mitte_module authors
 *
 * Cluster mode's relay: worker 0 of every instance reads the cluster's
 * event stream ("<prefix>{events}") with XREAD BLOCK on a connection of
 * its own, and applies each entry to the instance's zone: a flush's
 * events go into the replay ring at the numbers the cluster gave them and
 * its endpoints' cluster-wide counts and streaks into the endpoints; a
 * notification into its user's list (routed to the outbox by the instance
 * that created it); notifications read, preferences, users and streams
 * open elsewhere likewise. Every instance applies the same entries in the
 * same order, its own included, so every stream sees one order. The last
 * entry read is kept in the zone: a new worker 0 (reload) goes on from
 * there, a new zone starts from the oldest entry the stream keeps.
 */


#include "ngx_http_mitte_module.h"
#include "ngx_http_mitte_stream.h"
#include "ngx_http_mitte_redis.h"
#include "ngx_http_mitte_cluster.h"
#include "ngx_http_mitte_send.h"


#define NGX_HTTP_MITTE_RELAY_BLOCK      1000
#define NGX_HTTP_MITTE_RELAY_BLOCK_TEXT "1000"
#define NGX_HTTP_MITTE_RELAY_COUNT      "32"
#define NGX_HTTP_MITTE_RELAY_RETRY      1000


typedef struct {
    ngx_http_mitte_main_conf_t *mmcf;
    ngx_http_mitte_zone_ctx_t  *ctx;
    ngx_log_t                  *log;
    ngx_event_t                 retry;
    ngx_str_t                   instance;
    u_char                      key[NGX_HTTP_MITTE_REDIS_KEY_MAX];
    size_t                      key_len;
    unsigned                    reading:1;
} ngx_http_mitte_relay_t;


static void ngx_http_mitte_relay_ready(void *data);
static void ngx_http_mitte_relay_read(ngx_http_mitte_relay_t *rl);
static void ngx_http_mitte_relay_again(ngx_event_t *ev);
static void ngx_http_mitte_relay_got(redisReply *reply, void *data,
    ngx_uint_t rc);
static ngx_uint_t ngx_http_mitte_relay_entries(ngx_http_mitte_relay_t *rl,
    redisReply *entries);
static ngx_int_t ngx_http_mitte_relay_entry(ngx_http_mitte_relay_t *rl,
    u_char *text, size_t len);
static ngx_int_t ngx_http_mitte_relay_flat(ngx_http_mitte_relay_t *rl,
    u_char *p, u_char *last);
static ngx_int_t ngx_http_mitte_relay_num(u_char *p, u_char *last,
    uint64_t *v);
static ngx_int_t ngx_http_mitte_relay_text_field(u_char **pp, u_char *last,
    size_t max, ngx_str_t *f);
static ngx_int_t ngx_http_mitte_relay_num_field(u_char **pp, u_char *last,
    uint64_t *v);
static ngx_int_t ngx_http_mitte_relay_event(ngx_http_mitte_relay_t *rl,
    u_char **pp, u_char *last, uint64_t seq);
static ngx_int_t ngx_http_mitte_relay_endpoint(ngx_http_mitte_relay_t *rl,
    u_char **pp, u_char *last, uint32_t now_hour);
static ngx_int_t ngx_http_mitte_relay_watch(ngx_http_mitte_relay_t *rl,
    cJSON *entry);
static ngx_int_t ngx_http_mitte_relay_text(cJSON *item, size_t max,
    ngx_str_t *s);
static void ngx_http_mitte_relay_error(ngx_http_mitte_relay_t *rl,
    const char *what, const char *why);


ngx_int_t
ngx_http_mitte_relay_init_process(ngx_cycle_t *cycle)
{
    ngx_http_mitte_relay_t      *rl;
    ngx_http_mitte_main_conf_t  *mmcf;

    if ((ngx_process != NGX_PROCESS_WORKER
         && ngx_process != NGX_PROCESS_SINGLE)
        || ngx_worker != 0)
    {
        return NGX_OK;
    }

    mmcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_mitte_module);

    if (mmcf == NULL || mmcf->redis == NULL || mmcf->shm_zone == NULL) {
        return NGX_OK;
    }

    rl = ngx_pcalloc(cycle->pool, sizeof(ngx_http_mitte_relay_t));
    if (rl == NULL) {
        return NGX_ERROR;
    }

    rl->mmcf = mmcf;
    rl->ctx = mmcf->shm_zone->data;
    rl->log = cycle->log;

    rl->retry.handler = ngx_http_mitte_relay_again;
    rl->retry.data = rl;
    rl->retry.log = cycle->log;
    rl->retry.cancelable = 1;

    ngx_http_mitte_redis_instance(&rl->instance);

    rl->key_len = ngx_http_mitte_redis_key(rl->key, sizeof(rl->key),
                                           "{events}");
    if (rl->key_len == 0) {
        return NGX_ERROR;
    }

    if (ngx_http_mitte_redis_read_on_ready(ngx_http_mitte_relay_ready, rl)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    return (ngx_http_mitte_redis_reader() == NGX_ERROR) ? NGX_ERROR : NGX_OK;
}


static void
ngx_http_mitte_relay_ready(void *data)
{
    ngx_http_mitte_relay_t *rl = data;

    rl->reading = 0;

    ngx_http_mitte_relay_read(rl);
}


/* the next XREAD, from the last entry read (kept in the zone) */

static void
ngx_http_mitte_relay_read(ngx_http_mitte_relay_t *rl)
{
    u_char                              id[2 * NGX_INT64_LEN + 2];
    size_t                              argvlen[8];
    const char                         *argv[8];
    ngx_http_mitte_cluster_counters_t  *cc;

    if (rl->reading || ngx_exiting || ngx_quit || ngx_terminate) {
        return;
    }

    cc = &rl->ctx->sh->cluster;

    argv[0] = "XREAD";
    argvlen[0] = 5;
    argv[1] = "COUNT";
    argvlen[1] = 5;
    argv[2] = NGX_HTTP_MITTE_RELAY_COUNT;
    argvlen[2] = sizeof(NGX_HTTP_MITTE_RELAY_COUNT) - 1;
    argv[3] = "BLOCK";
    argvlen[3] = 5;
    argv[4] = NGX_HTTP_MITTE_RELAY_BLOCK_TEXT;
    argvlen[4] = sizeof(NGX_HTTP_MITTE_RELAY_BLOCK_TEXT) - 1;
    argv[5] = "STREAMS";
    argvlen[5] = 7;
    argv[6] = (const char *) rl->key;
    argvlen[6] = rl->key_len;
    argv[7] = (const char *) id;
    argvlen[7] = ngx_sprintf(id, "%uA-%uA", cc->relay_seq, cc->relay_sub)
                 - id;

    if (ngx_http_mitte_redis_read_argv(ngx_http_mitte_relay_got, rl,
                                       NGX_HTTP_MITTE_RELAY_BLOCK, 8, argv,
                                       argvlen)
        != NGX_OK)
    {
        /* the connection is not ready: its on_ready starts over */
        return;
    }

    rl->reading = 1;
}


static void
ngx_http_mitte_relay_again(ngx_event_t *ev)
{
    ngx_http_mitte_relay_read(ev->data);
}


static void
ngx_http_mitte_relay_got(redisReply *reply, void *data, ngx_uint_t rc)
{
    ngx_http_mitte_relay_t *rl = data;

    ngx_uint_t  i, woken;

    rl->reading = 0;

    if (rc != NGX_HTTP_MITTE_REDIS_REPLY) {
        /* the connection is made again; its on_ready reads on */
        return;
    }

    if (reply->type == REDIS_REPLY_NIL) {
        /* nothing within the block */
        ngx_http_mitte_relay_read(rl);
        return;
    }

    if (reply->type != REDIS_REPLY_ARRAY) {
        ngx_http_mitte_relay_error(rl, "XREAD failed",
                                   reply->type == REDIS_REPLY_ERROR
                                   ? reply->str : "an unexpected reply");

        if (!rl->retry.timer_set) {
            ngx_add_timer(&rl->retry, NGX_HTTP_MITTE_RELAY_RETRY);
        }

        return;
    }

    woken = 0;

    /* [[key, [[id, [field, value, ...]], ...]]] */

    for (i = 0; i < reply->elements; i++) {
        if (reply->element[i]->type == REDIS_REPLY_ARRAY
            && reply->element[i]->elements == 2
            && reply->element[i]->element[1]->type == REDIS_REPLY_ARRAY)
        {
            woken += ngx_http_mitte_relay_entries(
                         rl, reply->element[i]->element[1]);
        }
    }

    if (woken) {
        ngx_http_mitte_sse_wake(rl->ctx);
    }

    ngx_http_mitte_relay_read(rl);
}


/* the entries read, in order; the number applied */

static ngx_uint_t
ngx_http_mitte_relay_entries(ngx_http_mitte_relay_t *rl,
    redisReply *entries)
{
    u_char                             *p, *dash, *last;
    ngx_int_t                           seq, sub, rc;
    ngx_uint_t                          i, j, n;
    redisReply                         *e, *fields;
    ngx_http_mitte_cluster_counters_t  *cc;

    cc = &rl->ctx->sh->cluster;
    n = 0;

    for (i = 0; i < entries->elements; i++) {
        e = entries->element[i];

        if (e->type != REDIS_REPLY_ARRAY || e->elements != 2
            || e->element[0]->type != REDIS_REPLY_STRING)
        {
            continue;
        }

        /* the entry's id, "<seq>-<sub>": read past it whatever it holds */

        p = (u_char *) e->element[0]->str;
        last = p + e->element[0]->len;
        dash = ngx_strlchr(p, last, '-');

        if (dash == NULL) {
            continue;
        }

        seq = ngx_atoi(p, dash - p);
        sub = ngx_atoi(dash + 1, last - dash - 1);

        if (seq == NGX_ERROR || sub == NGX_ERROR) {
            continue;
        }

        cc->relay_seq = (ngx_atomic_uint_t) seq;
        cc->relay_sub = (ngx_atomic_uint_t) sub;

        fields = e->element[1];

        if (fields->type != REDIS_REPLY_ARRAY) {
            continue;
        }

        for (j = 0; j + 1 < fields->elements; j += 2) {
            if (fields->element[j]->type != REDIS_REPLY_STRING
                || fields->element[j]->len != 1
                || fields->element[j + 1]->type != REDIS_REPLY_STRING)
            {
                continue;
            }

            p = (u_char *) fields->element[j + 1]->str;
            last = p + fields->element[j + 1]->len;

            switch (fields->element[j]->str[0]) {

            case 'j':
                rc = ngx_http_mitte_relay_entry(rl, p, last - p);
                break;

            case 'f':
                rc = ngx_http_mitte_relay_flat(rl, p, last);
                break;

            default:
                continue;
            }

            if (rc == NGX_OK) {
                n++;

            } else {
                (void) ngx_atomic_fetch_add(&cc->entries_bad, 1);

                if (fields->element[j]->str[0] == 'f') {
                    /* its lines understood were applied */
                    ngx_http_mitte_relay_error(rl, "a flush entry of the "
                                               "stream", "has lines not "
                                               "understood; skipped");
                }
            }
        }
    }

    return n;
}


static ngx_int_t
ngx_http_mitte_relay_entry(ngx_http_mitte_relay_t *rl, u_char *text,
    size_t len)
{
    cJSON      *entry, *k, *i;
    ngx_int_t   rc;
    ngx_str_t   user;
    ngx_uint_t  route;

    entry = cJSON_ParseWithLength((const char *) text, len);

    if (entry == NULL || !cJSON_IsObject(entry)) {
        cJSON_Delete(entry);
        ngx_http_mitte_relay_error(rl, "an entry of the stream",
                                   "is not JSON");
        return NGX_ERROR;
    }

    k = cJSON_GetObjectItemCaseSensitive(entry, "k");

    if (!cJSON_IsString(k) || k->valuestring[0] == '\0'
        || k->valuestring[1] != '\0')
    {
        cJSON_Delete(entry);
        return NGX_ERROR;
    }

    switch (k->valuestring[0]) {

    case 'n':
        i = cJSON_GetObjectItemCaseSensitive(entry, "i");
        route = cJSON_IsString(i)
                && ngx_strlen(i->valuestring) == rl->instance.len
                && ngx_strncmp(i->valuestring, rl->instance.data,
                               rl->instance.len) == 0;

        rc = ngx_http_mitte_notify_relay(rl->mmcf, entry, route);
        break;

    case 'r':
        rc = ngx_http_mitte_notifications_relay(rl->mmcf, entry);
        break;

    case 's':
        rc = ngx_http_mitte_send_relay(rl->mmcf, entry);
        break;

    case 'w':
        rc = ngx_http_mitte_relay_watch(rl, entry);
        break;

    case 'p':
    case 'm':
        if (ngx_http_mitte_relay_text(cJSON_GetObjectItemCaseSensitive(entry,
                                                                       "u"),
                                      MITTE_USER_MAX, &user)
            != NGX_OK)
        {
            rc = NGX_ERROR;
            break;
        }

        rc = (k->valuestring[0] == 'p')
             ? ngx_http_mitte_prefs_relay(rl->mmcf, &user,
                   cJSON_GetObjectItemCaseSensitive(entry, "d"))
             : ngx_http_mitte_user_relay(rl->mmcf, &user, entry);
        break;

    default:
        /* a kind of a newer version: not for this one */
        rc = NGX_OK;
    }

    cJSON_Delete(entry);

    return rc;
}


/*
 * A flush's entry (field "f"): its events at the numbers that follow the
 * first line's, then its endpoints' cluster-wide state; read in place
 */

static ngx_int_t
ngx_http_mitte_relay_flat(ngx_http_mitte_relay_t *rl, u_char *p,
    u_char *last)
{
    u_char       kind, *eol, *start;
    uint64_t     seq;
    uint32_t     hour;
    ngx_int_t    rc, line;
    ngx_uint_t   events;

    eol = ngx_strlchr(p, last, '\n');

    if (eol == NULL
        || ngx_http_mitte_relay_num(p, eol, &seq) != NGX_OK)
    {
        return NGX_ERROR;
    }

    rc = NGX_OK;
    events = 0;
    hour = mitte_hour_of(ngx_time());

    ngx_shmtx_lock(&rl->ctx->shpool->mutex);

    /* each line read once, its fields as they come */

    for (p = eol + 1; p < last; /* void */) {
        start = p;
        kind = *p++;

        if (kind == 'E') {
            events++;
            line = ngx_http_mitte_relay_event(rl, &p, last, seq + events);

        } else if (kind == 'P') {
            line = ngx_http_mitte_relay_endpoint(rl, &p, last, hour);

        } else {
            line = NGX_ERROR;
        }

        if (line != NGX_OK) {
            /* the rest of a line not understood: on to the next one */
            rc = NGX_ERROR;

            if (p > start && p[-1] == '\n') {
                /* it ended where a field should have */
                continue;
            }

            eol = ngx_strlchr(p, last, '\n');
            if (eol == NULL) {
                break;
            }

            p = eol + 1;
        }
    }

    ngx_shmtx_unlock(&rl->ctx->shpool->mutex);

    (void) ngx_atomic_fetch_add(&rl->ctx->sh->cluster.events_in, events);

    return rc;
}


/*
 * A text field of a line, ending at 0x1f (read past): NGX_ERROR when the
 * line or the text ends first, or it is longer than "max"
 */

static ngx_int_t
ngx_http_mitte_relay_text_field(u_char **pp, u_char *last, size_t max,
    ngx_str_t *f)
{
    u_char  *p, *start;

    start = *pp;

    for (p = start; p < last && *p != 0x1f && *p != '\n'; p++) {
        /* void */
    }

    if (p == last || *p != 0x1f || (size_t) (p - start) > max) {
        *pp = p;
        return NGX_ERROR;
    }

    f->data = start;
    f->len = p - start;
    *pp = p + 1;

    return NGX_OK;
}


/*
 * A number field of 1 to 19 digits, read past the byte that ends it: that
 * byte (0x1f, ':', ',' or '\n' as the caller expects), or NGX_ERROR
 */

static ngx_int_t
ngx_http_mitte_relay_num_field(u_char **pp, u_char *last, uint64_t *v)
{
    u_char    *p, *start;
    uint64_t   n;

    start = *pp;
    n = 0;

    for (p = start; p < last && *p >= '0' && *p <= '9'; p++) {
        n = n * 10 + (*p - '0');
    }

    if (p == start || p - start > 19 || p == last) {
        *pp = p;
        return NGX_ERROR;
    }

    *v = n;
    *pp = p + 1;

    return *p;
}


/* a decimal number of at most 19 digits */

static ngx_int_t
ngx_http_mitte_relay_num(u_char *p, u_char *last, uint64_t *v)
{
    if (p == last || last - p > 19) {
        return NGX_ERROR;
    }

    for (*v = 0; p < last; p++) {
        if (*p < '0' || *p > '9') {
            return NGX_ERROR;
        }

        *v = *v * 10 + (*p - '0');
    }

    return NGX_OK;
}


/* with the zone locked: a delivery's event, at the cluster's number */

static ngx_int_t
ngx_http_mitte_relay_event(ngx_http_mitte_relay_t *rl, u_char **pp,
    u_char *last, uint64_t seq)
{
    uint64_t                 st, o, d, t;
    ngx_str_t                f[5];
    ngx_http_mitte_event_t   e;

    /* slug user name method rid status success duration time */

    if (ngx_http_mitte_relay_text_field(pp, last, MITTE_SLUG_MAX, &f[0])
        != NGX_OK
        || f[0].len == 0
        || ngx_http_mitte_relay_text_field(pp, last, MITTE_USER_MAX, &f[1])
           != NGX_OK
        || ngx_http_mitte_relay_text_field(pp, last, MITTE_NAME_MAX, &f[2])
           != NGX_OK
        || ngx_http_mitte_relay_text_field(pp, last,
                                           NGX_HTTP_MITTE_METHOD_MAX, &f[3])
           != NGX_OK
        || ngx_http_mitte_relay_text_field(pp, last, NGX_HTTP_MITTE_RID_MAX,
                                           &f[4])
           != NGX_OK
        || ngx_http_mitte_relay_num_field(pp, last, &st) != 0x1f
        || ngx_http_mitte_relay_num_field(pp, last, &o) != 0x1f
        || ngx_http_mitte_relay_num_field(pp, last, &d) != 0x1f
        || ngx_http_mitte_relay_num_field(pp, last, &t) != '\n'
        || st > 999)
    {
        return NGX_ERROR;
    }

    ngx_memzero(&e, offsetof(ngx_http_mitte_event_t, user));

    e.seq = seq;
    e.time_ms = t;
    e.value = (uint32_t) ngx_min(d, 0xffffffff);
    e.status = (uint16_t) st;
    e.kind = NGX_HTTP_MITTE_EVENT_DELIVERED;
    e.flag = (o != 0);
    e.slug_len = (uint8_t) f[0].len;
    ngx_memcpy(e.slug, f[0].data, f[0].len);
    e.user_len = (uint8_t) f[1].len;
    ngx_memcpy(e.user, f[1].data, f[1].len);
    e.name_len = (uint8_t) f[2].len;
    ngx_memcpy(e.u.d.name, f[2].data, f[2].len);
    e.method_len = (uint8_t) f[3].len;
    ngx_memcpy(e.u.d.method, f[3].data, f[3].len);
    e.rid_len = (uint8_t) f[4].len;
    ngx_memcpy(e.u.d.rid, f[4].data, f[4].len);

    ngx_http_mitte_event_put(rl->ctx, &e);

    return NGX_OK;
}


/*
 * With the zone locked: an endpoint's cluster-wide state. Counts are
 * taken where the cluster's are higher: this instance's own deliveries
 * not yet flushed stay counted until the cluster's pass them.
 */

static ngx_int_t
ngx_http_mitte_relay_endpoint(ngx_http_mitte_relay_t *rl, u_char **pp,
    u_char *last, uint32_t now_hour)
{
    ngx_int_t                        end;
    uint64_t                         k, d, st, t, hour, r, f;
    uint32_t                         lr, lf;
    ngx_str_t                        v[3];
    ngx_http_mitte_endpoint_node_t  *en;

    /* slug user name streak down status last-ms hours */

    if (ngx_http_mitte_relay_text_field(pp, last, MITTE_SLUG_MAX, &v[0])
        != NGX_OK
        || !mitte_slug_valid(v[0].data, v[0].len)
        || ngx_http_mitte_relay_text_field(pp, last, MITTE_USER_MAX, &v[1])
           != NGX_OK
        || ngx_http_mitte_relay_text_field(pp, last, MITTE_NAME_MAX, &v[2])
           != NGX_OK
        || ngx_http_mitte_relay_num_field(pp, last, &k) != 0x1f
        || ngx_http_mitte_relay_num_field(pp, last, &d) != 0x1f
        || ngx_http_mitte_relay_num_field(pp, last, &st) != 0x1f
        || ngx_http_mitte_relay_num_field(pp, last, &t) != 0x1f
        || st > 999)
    {
        return NGX_ERROR;
    }

    en = ngx_http_mitte_endpoint_get(rl->ctx, v[0].data, v[0].len);

    if (en && v[1].len
        && !(v[1].len == en->user_len
             && ngx_memcmp(v[1].data, en->ep.user, v[1].len) == 0))
    {
        (void) ngx_http_mitte_endpoint_set_user(en, &v[1]);
    }

    if (en && v[2].len) {
        ngx_http_mitte_endpoint_set_name(rl->ctx, en, &v[2]);
    }

    /* hour:requests:failures, apart by commas, to the line's end */

    do {
        if (ngx_http_mitte_relay_num_field(pp, last, &hour) != ':'
            || ngx_http_mitte_relay_num_field(pp, last, &r) != ':')
        {
            return NGX_ERROR;
        }

        end = ngx_http_mitte_relay_num_field(pp, last, &f);

        if (end != ',' && end != '\n') {
            return NGX_ERROR;
        }

        if (en == NULL || hour == 0 || hour > now_hour) {
            continue;
        }

        mitte_ring_get(&en->ep.ring, now_hour, (uint32_t) hour, &lr, &lf);

        if (r > lr || f > lf) {
            (void) mitte_ring_set(&en->ep.ring, now_hour, (uint32_t) hour,
                                  (uint32_t) ngx_min(ngx_max(r, lr),
                                                     0xffffffff),
                                  (uint32_t) ngx_min(ngx_max(f, lf),
                                                     0xffffffff));
        }

    } while (end != '\n');

    if (en == NULL) {
        return NGX_OK;
    }

    en->ep.streak.count = (uint32_t) ngx_min(k, 0xffffffff);
    en->ep.streak.down = (d != 0);

    if (t >= en->ep.streak.last_ms) {
        en->ep.streak.last_ms = t;
        en->last_status = (uint16_t) st;
    }

    return NGX_OK;
}


/* a stream open on another instance: its user's events are kept here too */

static ngx_int_t
ngx_http_mitte_relay_watch(ngx_http_mitte_relay_t *rl, cJSON *entry)
{
    cJSON      *a;
    ngx_str_t   user;

    a = cJSON_GetObjectItemCaseSensitive(entry, "a");

    if (ngx_http_mitte_relay_text(cJSON_GetObjectItemCaseSensitive(entry,
                                                                   "u"),
                                  MITTE_USER_MAX, &user)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    ngx_shmtx_lock(&rl->ctx->shpool->mutex);

    ngx_http_mitte_watch(rl->ctx, user.data, user.len, cJSON_IsTrue(a), 0);

    ngx_shmtx_unlock(&rl->ctx->shpool->mutex);

    return NGX_OK;
}


/* a string of at most "max" bytes, without NUL, CR or LF */

static ngx_int_t
ngx_http_mitte_relay_text(cJSON *item, size_t max, ngx_str_t *s)
{
    if (!cJSON_IsString(item)) {
        return NGX_ERROR;
    }

    s->data = (u_char *) item->valuestring;
    s->len = ngx_strlen(item->valuestring);

    if (s->len > max
        || ngx_strlchr(s->data, s->data + s->len, '\n')
        || ngx_strlchr(s->data, s->data + s->len, '\r'))
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


static void
ngx_http_mitte_relay_error(ngx_http_mitte_relay_t *rl, const char *what,
    const char *why)
{
    if (ngx_http_mitte_redis_may_log() != NGX_OK) {
        return;
    }

    ngx_log_error(NGX_LOG_ERR, rl->log, 0,
                  "mitte: redis \"%V\": %s %s (logged at most once a "
                  "minute)", &rl->mmcf->redis->name, what, why);
}
