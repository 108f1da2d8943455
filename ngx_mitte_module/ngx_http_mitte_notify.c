/*
 * Copyright (C) ngx_mitte_module authors
 *
 * Raising a notification: kept in the user's in-app store, put on the
 * event ring for the streams, and routed to the outbox for the sender.
 * In cluster mode a notification is created in Redis first, once
 * cluster-wide (a SET NX key names it), and every instance's relay puts
 * it into its own zone; every instance routes its sends, the creator's
 * due at once, the others' as standbys, and a claim in Redis makes each
 * go once.
 * The notifications API is ngx_http_mitte_notifications.c.
 */


#include "ngx_http_mitte_module.h"
#include "ngx_http_mitte_stream.h"
#include "ngx_http_mitte_notify.h"
#include "ngx_http_mitte_send.h"
#include "ngx_http_mitte_redis.h"
#include "ngx_http_mitte_cluster.h"


/* a creation asked of Redis, kept to be made here if Redis fails */
typedef struct {
    ngx_http_mitte_main_conf_t     *mmcf;
    ngx_http_mitte_notification_t   n;
    u_char                          user[MITTE_USER_MAX];
    size_t                          user_len;
} ngx_http_mitte_create_t;


static ngx_http_mitte_note_node_t *ngx_http_mitte_notify_insert(
    ngx_http_mitte_main_conf_t *mmcf, ngx_http_mitte_zone_ctx_t *ctx,
    ngx_http_mitte_user_node_t *un, ngx_http_mitte_notification_t *from,
    void *keep);
static ngx_int_t ngx_http_mitte_notify_create(
    ngx_http_mitte_main_conf_t *mmcf, ngx_http_mitte_zone_ctx_t *ctx,
    ngx_http_mitte_user_node_t *un, ngx_http_mitte_notification_t *n,
    ngx_http_mitte_once_t *once);
static void ngx_http_mitte_notify_created(redisReply *reply, void *data,
    ngx_uint_t rc);
static void ngx_http_mitte_notify_here(ngx_http_mitte_create_t *cr);


/*
 * SET NX of the dedupe key; then the notification's id, its event's
 * number (never below what this instance has seen), and the stream entry
 * that every instance's relay reads. 0 when it was created already.
 */

static ngx_http_mitte_redis_script_t  ngx_http_mitte_create_script = {
    "if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then\n"
    "    return 0\n"
    "end\n"
    "local id = redis.call('INCR', KEYS[2])\n"
    "local s = tonumber(redis.call('GET', KEYS[4]) or '0')\n"
    "if s < tonumber(ARGV[5]) then s = tonumber(ARGV[5]) end\n"
    "s = s + 1\n"
    "redis.call('SET', KEYS[4], s)\n"
    "redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[2], s .. '-*', 'j',\n"
    "    '{\"k\":\"n\",\"b\":' .. s .. ',\"id\":' .. id .. ',\"i\":' ..\n"
    "    cjson.encode(ARGV[4]) .. ',\"n\":' .. ARGV[3] .. '}')\n"
    "return id\n",
    ""
};


ngx_int_t
ngx_http_mitte_notify(ngx_http_mitte_main_conf_t *mmcf,
    ngx_http_mitte_zone_ctx_t *ctx, ngx_http_mitte_user_node_t *un,
    ngx_uint_t type, u_char *slug, size_t slug_len, u_char *msg,
    size_t msg_len, uint64_t now_ms, void *keep, ngx_http_mitte_once_t *once)
{
    ngx_str_t                       user;
    ngx_http_mitte_note_node_t     *nn;
    ngx_http_mitte_notification_t   n;

    ngx_memzero(&n, sizeof(ngx_http_mitte_notification_t));

    n.created_ms = now_ms;
    n.type = (uint8_t) type;
    n.slug_len = (uint8_t) ngx_min(slug_len, MITTE_SLUG_MAX);
    if (n.slug_len) {
        ngx_memcpy(n.slug, slug, n.slug_len);
    }
    n.message_len = (uint16_t) ngx_min(msg_len, NGX_HTTP_MITTE_MESSAGE_MAX);
    ngx_memcpy(n.message, msg, n.message_len);

    if (once && mmcf->redis
        && ngx_http_mitte_notify_create(mmcf, ctx, un, &n, once) == NGX_OK)
    {
        return NGX_OK;
    }

    n.seq = ++ctx->sh->seq;

    nn = ngx_http_mitte_notify_insert(mmcf, ctx, un, &n, keep);
    if (nn == NULL) {
        return NGX_ERROR;
    }

    user.data = un->user.id;
    user.len = un->user.id_len;

    ngx_http_mitte_event_notification(ctx, &user, &nn->n, 0);

    ngx_http_mitte_outbox_route(mmcf, ctx, un, &nn->n, keep ? keep : un);

    return NGX_OK;
}


/*
 * Into the user's in-app store, with the zone locked: the newest
 * mitte_notifications_keep are kept, and it is counted.
 */

static ngx_http_mitte_note_node_t *
ngx_http_mitte_notify_insert(ngx_http_mitte_main_conf_t *mmcf,
    ngx_http_mitte_zone_ctx_t *ctx, ngx_http_mitte_user_node_t *un,
    ngx_http_mitte_notification_t *from, void *keep)
{
    ngx_queue_t                 *q;
    ngx_http_mitte_note_node_t  *nn, *old;

    nn = ngx_http_mitte_alloc(ctx, sizeof(ngx_http_mitte_note_node_t),
                              keep ? keep : un);
    if (nn == NULL) {
        return NULL;
    }

    nn->n = *from;

    ngx_queue_insert_head(&un->notes, &nn->queue);
    un->nnotes++;
    un->unread++;

    while (un->nnotes > mmcf->notes_keep) {
        q = ngx_queue_last(&un->notes);
        old = ngx_queue_data(q, ngx_http_mitte_note_node_t, queue);

        if (!old->n.read) {
            un->unread--;
        }

        ngx_queue_remove(q);
        ngx_slab_free_locked(ctx->shpool, old);
        un->nnotes--;
    }

    ctx->sh->counters.notifications[from->type]++;

    return nn;
}


/* the creation script, with the zone locked: NGX_OK when it is on its way */

static ngx_int_t
ngx_http_mitte_notify_create(ngx_http_mitte_main_conf_t *mmcf,
    ngx_http_mitte_zone_ctx_t *ctx, ngx_http_mitte_user_node_t *un,
    ngx_http_mitte_notification_t *n, ngx_http_mitte_once_t *once)
{
    u_char                    *p, *text;
    u_char                     keys[4][NGX_HTTP_MITTE_REDIS_KEY_MAX];
    u_char                     num[3][NGX_INT64_LEN + 1];
    size_t                     len, argvlen[10];
    ngx_str_t                  instance;
    ngx_int_t                  rc;
    ngx_uint_t                 i;
    const char                *argv[10];
    ngx_http_mitte_create_t   *cr;

    if (ngx_http_mitte_redis_ready() != NGX_OK
        || ngx_http_mitte_redis_script(&ngx_http_mitte_create_script)
           != NGX_OK)
    {
        return NGX_DECLINED;
    }

    cr = ngx_alloc(sizeof(ngx_http_mitte_create_t), ngx_cycle->log);
    if (cr == NULL) {
        return NGX_DECLINED;
    }

    cr->mmcf = mmcf;
    cr->n = *n;
    cr->user_len = un->user.id_len;
    ngx_memcpy(cr->user, un->user.id, cr->user_len);

    /* the note as the relays read it */

    len = sizeof("{\"u\":\"\",\"ty\":,\"s\":\"\",\"m\":\"\",\"t\":}")
          + 6 * (MITTE_USER_MAX + MITTE_SLUG_MAX
                 + NGX_HTTP_MITTE_MESSAGE_MAX) + 2 * NGX_INT64_LEN;

    text = ngx_alloc(len, ngx_cycle->log);
    if (text == NULL) {
        ngx_free(cr);
        return NGX_DECLINED;
    }

    p = ngx_cpymem(text, "{\"u\":\"", sizeof("{\"u\":\"") - 1);
    p += mitte_json_escape(p, cr->user, cr->user_len);
    p = ngx_sprintf(p, "\",\"ty\":%ui,\"s\":\"", (ngx_uint_t) n->type);
    p += mitte_json_escape(p, n->slug, n->slug_len);
    p = ngx_cpymem(p, "\",\"m\":\"", sizeof("\",\"m\":\"") - 1);
    p += mitte_json_escape(p, n->message, n->message_len);
    p = ngx_sprintf(p, "\",\"t\":%uL}", n->created_ms);

    argv[0] = "4";
    argvlen[0] = 1;

    argvlen[1] = ngx_http_mitte_redis_key(keys[0], sizeof(keys[0]),
                                          "{u:%*s}:once:%*s",
                                          cr->user_len, cr->user,
                                          once->len, once->what);
    argvlen[2] = ngx_http_mitte_redis_key(keys[1], sizeof(keys[1]),
                                          "{notes}:seq");
    argvlen[3] = ngx_http_mitte_redis_key(keys[2], sizeof(keys[2]),
                                          "{events}");
    argvlen[4] = ngx_http_mitte_redis_key(keys[3], sizeof(keys[3]),
                                          "{events}:seq");

    for (i = 0; i < 4; i++) {
        argv[i + 1] = (const char *) keys[i];
    }

    argvlen[5] = ngx_sprintf(num[0], "%ui", once->ttl) - num[0];
    argv[5] = (const char *) num[0];
    argvlen[6] = ngx_sprintf(num[1], "%ui", mmcf->sse_replay) - num[1];
    argv[6] = (const char *) num[1];
    argv[7] = (const char *) text;
    argvlen[7] = p - text;

    ngx_http_mitte_redis_instance(&instance);
    argv[8] = (const char *) instance.data;
    argvlen[8] = instance.len;

    argvlen[9] = ngx_sprintf(num[2], "%uL", ctx->sh->event_seq) - num[2];
    argv[9] = (const char *) num[2];

    rc = NGX_ERROR;

    if (argvlen[1] && argvlen[2] && argvlen[3] && argvlen[4]) {
        rc = ngx_http_mitte_redis_eval(ngx_http_mitte_notify_created, cr,
                                       &ngx_http_mitte_create_script, 10,
                                       argv, argvlen);
    }

    ngx_free(text);

    if (rc != NGX_OK) {
        ngx_free(cr);
        return NGX_DECLINED;
    }

    return NGX_OK;
}


static void
ngx_http_mitte_notify_created(redisReply *reply, void *data, ngx_uint_t rc)
{
    ngx_http_mitte_create_t *cr = data;

    if (rc == NGX_HTTP_MITTE_REDIS_REPLY
        && reply->type == REDIS_REPLY_INTEGER)
    {
        /* created (the relay brings it), or created before: done */
        ngx_free(cr);
        return;
    }

    /*
     * Redis failed to say: created here, as without Redis (a reply lost
     * after the script ran would make it twice: rare, and said in the
     * operations guide)
     */

    ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                  "mitte: redis did not create a notification (%s): "
                  "created on this instance only",
                  (rc == NGX_HTTP_MITTE_REDIS_REPLY
                   && reply->type == REDIS_REPLY_ERROR)
                  ? reply->str : "no reply");

    ngx_http_mitte_notify_here(cr);

    ngx_free(cr);
}


static void
ngx_http_mitte_notify_here(ngx_http_mitte_create_t *cr)
{
    ngx_str_t                    user;
    ngx_http_mitte_zone_ctx_t   *ctx;
    ngx_http_mitte_user_node_t  *un;
    ngx_http_mitte_note_node_t  *nn;

    ctx = cr->mmcf->shm_zone->data;

    ngx_shmtx_lock(&ctx->shpool->mutex);

    un = ngx_http_mitte_user_get(ctx, cr->user, cr->user_len, NULL);

    if (un == NULL) {
        ngx_shmtx_unlock(&ctx->shpool->mutex);
        return;
    }

    cr->n.seq = ++ctx->sh->seq;

    nn = ngx_http_mitte_notify_insert(cr->mmcf, ctx, un, &cr->n, NULL);

    if (nn) {
        user.data = un->user.id;
        user.len = un->user.id_len;

        ngx_http_mitte_event_notification(ctx, &user, &nn->n, 0);
        ngx_http_mitte_outbox_route(cr->mmcf, ctx, un, &nn->n, un);
    }

    ngx_shmtx_unlock(&ctx->shpool->mutex);

    ngx_http_mitte_sse_wake(ctx);
}


/*
 * A notification from the cluster's stream ("n" entry), into this zone:
 * once (a relay may read an entry again), at the id and event number
 * Redis gave it; "route": this instance created it, and sends it at once,
 * the others hold a standby send (ngx_http_mitte_send.c).
 */

ngx_int_t
ngx_http_mitte_notify_relay(ngx_http_mitte_main_conf_t *mmcf, cJSON *entry,
    ngx_uint_t route)
{
    cJSON                          *b, *id, *n, *u, *ty, *s, *m, *t;
    ngx_str_t                       user;
    ngx_queue_t                    *q;
    ngx_time_t                     *tp;
    ngx_http_mitte_zone_ctx_t      *ctx;
    ngx_http_mitte_user_node_t     *un;
    ngx_http_mitte_note_node_t     *nn;
    ngx_http_mitte_notification_t   note;

    b = cJSON_GetObjectItemCaseSensitive(entry, "b");
    id = cJSON_GetObjectItemCaseSensitive(entry, "id");
    n = cJSON_GetObjectItemCaseSensitive(entry, "n");
    u = cJSON_GetObjectItemCaseSensitive(n, "u");
    ty = cJSON_GetObjectItemCaseSensitive(n, "ty");
    s = cJSON_GetObjectItemCaseSensitive(n, "s");
    m = cJSON_GetObjectItemCaseSensitive(n, "m");
    t = cJSON_GetObjectItemCaseSensitive(n, "t");

    if (!cJSON_IsNumber(b) || !cJSON_IsNumber(id) || !cJSON_IsString(u)
        || !cJSON_IsNumber(ty) || !cJSON_IsString(s) || !cJSON_IsString(m)
        || !cJSON_IsNumber(t) || b->valuedouble < 1 || id->valuedouble < 1
        || ty->valuedouble < 0 || ty->valuedouble >= NGX_HTTP_MITTE_NTYPES
        || t->valuedouble < 0)
    {
        return NGX_ERROR;
    }

    user.data = (u_char *) u->valuestring;
    user.len = ngx_strlen(u->valuestring);

    if (user.len == 0 || user.len > MITTE_USER_MAX
        || ngx_strlen(s->valuestring) > MITTE_SLUG_MAX)
    {
        return NGX_ERROR;
    }

    ngx_memzero(&note, sizeof(ngx_http_mitte_notification_t));

    note.created_ms = (uint64_t) t->valuedouble;
    note.seq = (uint32_t) id->valuedouble;
    note.type = (uint8_t) ty->valuedouble;
    note.slug_len = (uint8_t) ngx_strlen(s->valuestring);
    ngx_memcpy(note.slug, s->valuestring, note.slug_len);
    note.message_len = (uint16_t) ngx_min(ngx_strlen(m->valuestring),
                                          NGX_HTTP_MITTE_MESSAGE_MAX);
    ngx_memcpy(note.message, m->valuestring, note.message_len);

    ctx = mmcf->shm_zone->data;

    ngx_shmtx_lock(&ctx->shpool->mutex);

    un = ngx_http_mitte_user_get(ctx, user.data, user.len, NULL);

    if (un == NULL) {
        ngx_shmtx_unlock(&ctx->shpool->mutex);
        return NGX_ERROR;
    }

    for (q = ngx_queue_head(&un->notes);
         q != ngx_queue_sentinel(&un->notes);
         q = ngx_queue_next(q))
    {
        nn = ngx_queue_data(q, ngx_http_mitte_note_node_t, queue);

        if (nn->n.seq == note.seq && nn->n.created_ms == note.created_ms) {
            /* read again: kept once */
            ngx_shmtx_unlock(&ctx->shpool->mutex);
            return NGX_OK;
        }
    }

    if (note.seq > ctx->sh->seq) {
        /* ids made here while Redis is away follow the cluster's */
        ctx->sh->seq = note.seq;
    }

    nn = ngx_http_mitte_notify_insert(mmcf, ctx, un, &note, NULL);

    if (nn) {
        ngx_http_mitte_event_notification(ctx, &user, &nn->n,
                                          (uint64_t) b->valuedouble);

        /*
         * every instance holds the sends, the claim makes them go once;
         * a standby only for a notification still new
         */
        tp = ngx_timeofday();

        if (route
            || note.created_ms + NGX_HTTP_MITTE_SEND_STANDBY_AGE
               > (uint64_t) tp->sec * 1000 + tp->msec)
        {
            ngx_http_mitte_outbox_share(mmcf, ctx, un, &nn->n, un,
                                        NGX_HTTP_MITTE_SEND_SHARED
                                        | (route
                                           ? 0
                                           : NGX_HTTP_MITTE_SEND_STANDBY));
        }
    }

    ngx_shmtx_unlock(&ctx->shpool->mutex);

    return nn ? NGX_OK : NGX_ERROR;
}
