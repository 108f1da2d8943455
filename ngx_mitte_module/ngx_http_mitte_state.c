/*
 * Copyright (C) ngx_mitte_module authors
 *
 * The zone's state as a list of records, and back: what mitte_state_file
 * holds, and what a reload that changes the zone's size carries over
 * (ngx_http_mitte_zone_start.c). The records are the zone's pointer-free
 * structures as they are; the trees, queues and offsets are made anew
 * when they are read. Least recently used first, so that a zone too
 * small for them all keeps the most recently used.
 *
 * The file: a header (magic, format, layout version and record sizes,
 * the time it was written, the length and a checksum of the records),
 * then the records, each a kind and a length, 8-byte aligned. It is
 * written to "<path>.tmp", synced, and renamed over "<path>", so that a
 * crash mid-write leaves the previous one whole: every interval by worker
 * 0, and by the master when nginx exits, after the workers (then nothing
 * can record any more).
 */


#include "ngx_http_mitte_module.h"
#include "ngx_http_mitte_state.h"
#include "mitte_notify.h"

#include <time.h>


#define NGX_HTTP_MITTE_STATE_MAGIC      "MITTEST\n"
#define NGX_HTTP_MITTE_STATE_FORMAT     1

/*
 * layout version of the records (endpoint, user, notification, send,
 * event, counters) that the state file holds: a change of the zone's own
 * bookkeeping ("sh") bumps the zone's version only, and state files of
 * the same records stay readable
 */
#define NGX_HTTP_MITTE_RECORDS_VERSION  2

#define NGX_HTTP_MITTE_REC_META         1
#define NGX_HTTP_MITTE_REC_ENDPOINT     2
#define NGX_HTTP_MITTE_REC_USER         3
#define NGX_HTTP_MITTE_REC_PREFS        4   /* of the user before it */
#define NGX_HTTP_MITTE_REC_NOTE         5   /* of the user, oldest first */
#define NGX_HTTP_MITTE_REC_SEND         6
#define NGX_HTTP_MITTE_REC_EVENT        7
#define NGX_HTTP_MITTE_REC_END          8

#define NGX_HTTP_MITTE_QUEUE_DONE       2   /* else a channel's pending */

/* records taken per hold of the zone's lock by worker 0's writes */
#define NGX_HTTP_MITTE_STATE_SLICE      2048


typedef struct {
    u_char                      magic[8];
    uint32_t                    format;
    uint32_t                    version;    /* ..._RECORDS_VERSION */
    uint32_t                    sizes[8];   /* of the records' structures */
    uint64_t                    written_ms;
    uint64_t                    length;     /* of the records */
    uint64_t                    checksum;   /* of the records */
} ngx_http_mitte_state_head_t;


typedef struct {
    uint32_t                    kind;
    uint32_t                    len;
} ngx_http_mitte_rec_t;


typedef struct {
    ngx_http_mitte_counters_t   counters;
    uint64_t                    event_seq;
    uint32_t                    seq;
    uint32_t                    flags;
} ngx_http_mitte_rec_meta_t;


/*
 * The meta record's flags. FINAL: written by the master at exit, when no
 * worker could record any more; its event_seq is the last event number
 * given (else events may have been numbered after it).
 */
#define NGX_HTTP_MITTE_STATE_FINAL      0x01


/* an endpoint's record: ngx_http_mitte_endpoint_copy_t, at its name's
 * length */
typedef ngx_http_mitte_endpoint_copy_t  ngx_http_mitte_rec_endpoint_t;


/* an entry of an LRU list being put in order */
typedef struct {
    uint64_t                    key;
    ngx_queue_t                *queue;
} ngx_http_mitte_lru_t;


typedef struct {
    ngx_event_t                 timer;
    ngx_event_t                 next;       /* the next slice, posted */
    ngx_http_mitte_zone_ctx_t  *ctx;
    ngx_http_mitte_records_t    rs;
    ngx_uint_t                  phase;      /* outbox and events,
                                               endpoints, users, the rest */
    ngx_uint_t                  started;    /* the cursor is set */
    ngx_rbtree_key_t            key;        /* cursor: the last node */
    size_t                      len;
    u_char                      id[MITTE_USER_MAX];
} ngx_http_mitte_state_writer_t;


typedef struct {
    uint32_t                    queue;      /* a channel, or QUEUE_DONE */
    uint32_t                    reserved;
    ngx_http_mitte_send_t       send;       /* and its variable part */
} ngx_http_mitte_rec_send_t;


static ngx_int_t ngx_http_mitte_state_save(ngx_http_mitte_zone_ctx_t *ctx,
    ngx_log_t *log, ngx_uint_t quiet);
static ngx_int_t ngx_http_mitte_state_grow(ngx_http_mitte_records_t *rs,
    size_t need);
static void *ngx_http_mitte_state_add(ngx_http_mitte_records_t *rs,
    ngx_uint_t kind, size_t len);
static ngx_uint_t ngx_http_mitte_dump_endpoint(
    ngx_http_mitte_zone_ctx_t *ctx, ngx_http_mitte_records_t *rs,
    ngx_http_mitte_endpoint_node_t *en);
static ngx_uint_t ngx_http_mitte_dump_user(ngx_http_mitte_zone_ctx_t *ctx,
    ngx_http_mitte_records_t *rs, ngx_http_mitte_user_node_t *un);
static ngx_int_t ngx_http_mitte_dump_rest(ngx_http_mitte_zone_ctx_t *ctx,
    ngx_http_mitte_records_t *rs);
static ngx_int_t ngx_http_mitte_dump_meta(ngx_http_mitte_zone_ctx_t *ctx,
    ngx_http_mitte_records_t *rs);
static void ngx_http_mitte_state_sizes(uint32_t *sizes);
static ngx_int_t ngx_http_mitte_state_check(u_char *p, size_t len);
static void ngx_http_mitte_state_order(ngx_http_mitte_zone_ctx_t *ctx,
    ngx_http_mitte_loaded_t *ld);
static void ngx_http_mitte_state_sort(ngx_queue_t *lru, ngx_uint_t users,
    ngx_log_t *log);
static int ngx_libc_cdecl ngx_http_mitte_state_newer(const void *one,
    const void *two);
static ngx_int_t ngx_http_mitte_state_endpoint_ok(
    ngx_http_mitte_rec_endpoint_t *rep, size_t len);
static ngx_int_t ngx_http_mitte_state_user_ok(ngx_http_mitte_user_t *u,
    size_t len);
static ngx_int_t ngx_http_mitte_state_note_ok(
    ngx_http_mitte_notification_t *n, size_t len);
static ngx_int_t ngx_http_mitte_state_event_ok(ngx_http_mitte_event_t *e,
    size_t len);
static ngx_int_t ngx_http_mitte_state_send_ok(ngx_http_mitte_rec_send_t *rs,
    size_t len);
static void ngx_http_mitte_state_put_send(ngx_http_mitte_zone_ctx_t *ctx,
    ngx_http_mitte_rec_t *rec, ngx_uint_t restart,
    ngx_http_mitte_loaded_t *ld);
static void ngx_http_mitte_state_put(ngx_http_mitte_zone_ctx_t *ctx,
    ngx_http_mitte_rec_t *rec, ngx_http_mitte_user_node_t **un,
    ngx_uint_t restart, ngx_http_mitte_loaded_t *ld);
static ngx_int_t ngx_http_mitte_state_write_all(ngx_fd_t fd, u_char *p,
    size_t len);
static void ngx_http_mitte_state_begin(ngx_http_mitte_zone_ctx_t *ctx,
    ngx_http_mitte_records_t *rs, ngx_log_t *log);
static ngx_int_t ngx_http_mitte_state_finish(ngx_http_mitte_zone_ctx_t *ctx,
    ngx_http_mitte_records_t *rs, ngx_int_t rc, ngx_log_t *log,
    ngx_uint_t quiet);
static void ngx_http_mitte_state_timer(ngx_event_t *ev);
static void ngx_http_mitte_state_slice(ngx_event_t *ev);
static const char *ngx_http_mitte_state_head_check(
    ngx_http_mitte_state_head_t *head, size_t size);
static void ngx_http_mitte_state_aside(ngx_http_mitte_zone_ctx_t *ctx,
    ngx_log_t *log);
static void ngx_http_mitte_state_count(ngx_http_mitte_zone_ctx_t *ctx,
    ngx_uint_t ok, uint64_t start, uint64_t longest, size_t bytes);
static uint64_t ngx_http_mitte_state_usec(void);


/* 8-byte aligned records */
#define ngx_http_mitte_rec_size(len)                                         \
    (sizeof(ngx_http_mitte_rec_t) + ngx_align((len), 8))


static ngx_int_t
ngx_http_mitte_state_grow(ngx_http_mitte_records_t *rs, size_t need)
{
    u_char  *p;
    size_t   size;

    if (rs->len + need <= rs->size) {
        return NGX_OK;
    }

    size = ngx_max(rs->size * 2, rs->len + need);
    size = ngx_max(size, 65536);

    p = ngx_alloc(size, rs->log);
    if (p == NULL) {
        rs->failed = 1;
        return NGX_ERROR;
    }

    if (rs->data) {
        ngx_memcpy(p, rs->data, rs->len);
        ngx_free(rs->data);
    }

    rs->data = p;
    rs->size = size;

    return NGX_OK;
}


static void *
ngx_http_mitte_state_add(ngx_http_mitte_records_t *rs, ngx_uint_t kind,
    size_t len)
{
    u_char                *p;
    ngx_http_mitte_rec_t  *rec;

    if (rs->failed
        || ngx_http_mitte_state_grow(rs, ngx_http_mitte_rec_size(len))
           != NGX_OK)
    {
        return NULL;
    }

    p = rs->data + rs->len;
    ngx_memzero(p, ngx_http_mitte_rec_size(len));

    rec = (ngx_http_mitte_rec_t *) p;
    rec->kind = (uint32_t) kind;
    rec->len = (uint32_t) len;

    rs->len += ngx_http_mitte_rec_size(len);

    return p + sizeof(ngx_http_mitte_rec_t);
}


void
ngx_http_mitte_records_free(ngx_http_mitte_records_t *rs)
{
    if (rs->data) {
        ngx_free(rs->data);
    }

    rs->data = NULL;
    rs->len = 0;
    rs->size = 0;
}


/*
 * The zone as records, with the zone locked (or in the master, with no
 * worker left), in one go: endpoints and users least recently used first.
 * Records carry no pointers and no offsets into the zone.
 */

ngx_int_t
ngx_http_mitte_state_dump(ngx_http_mitte_zone_ctx_t *ctx,
    ngx_http_mitte_records_t *rs)
{
    ngx_queue_t          *q;
    ngx_http_mitte_sh_t  *sh;

    sh = ctx->sh;

    for (q = ngx_queue_last(&sh->ep_lru);
         q != ngx_queue_sentinel(&sh->ep_lru);
         q = ngx_queue_prev(q))
    {
        if (ngx_http_mitte_dump_endpoint(ctx, rs,
                ngx_queue_data(q, ngx_http_mitte_endpoint_node_t, queue))
            == 0)
        {
            return NGX_ERROR;
        }
    }

    for (q = ngx_queue_last(&sh->user_lru);
         q != ngx_queue_sentinel(&sh->user_lru);
         q = ngx_queue_prev(q))
    {
        if (ngx_http_mitte_dump_user(ctx, rs,
                ngx_queue_data(q, ngx_http_mitte_user_node_t, queue))
            == 0)
        {
            return NGX_ERROR;
        }
    }

    if (ngx_http_mitte_dump_rest(ctx, rs) != NGX_OK
        || ngx_http_mitte_dump_meta(ctx, rs) != NGX_OK)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* an endpoint's record; the records written, 0 on failure */

static ngx_uint_t
ngx_http_mitte_dump_endpoint(ngx_http_mitte_zone_ctx_t *ctx,
    ngx_http_mitte_records_t *rs, ngx_http_mitte_endpoint_node_t *en)
{
    ngx_http_mitte_rec_endpoint_t  *rep;

    /* the name, when it is not the slug, at its length */

    rep = ngx_http_mitte_state_add(rs, NGX_HTTP_MITTE_REC_ENDPOINT,
                                 offsetof(ngx_http_mitte_rec_endpoint_t, name)
                                 + (en->ep.name_off ? en->name_len : 0));
    if (rep == NULL) {
        return 0;
    }

    ngx_http_mitte_endpoint_copy(ctx, en, rep);
    rep->ep.name_off = 0;

    return 1;
}


/* a user's record, then its preferences and notifications, oldest first */

static ngx_uint_t
ngx_http_mitte_dump_user(ngx_http_mitte_zone_ctx_t *ctx,
    ngx_http_mitte_records_t *rs, ngx_http_mitte_user_node_t *un)
{
    u_char                      *p;
    ngx_uint_t                   n;
    ngx_queue_t                 *q;
    ngx_http_mitte_note_node_t  *nn;

    p = ngx_http_mitte_state_add(rs, NGX_HTTP_MITTE_REC_USER,
                                 sizeof(ngx_http_mitte_user_t));
    if (p == NULL) {
        return 0;
    }

    ngx_memcpy(p, &un->user, sizeof(ngx_http_mitte_user_t));
    n = 1;

    if (un->prefs_off) {
        p = ngx_http_mitte_state_add(rs, NGX_HTTP_MITTE_REC_PREFS,
                                     sizeof(mitte_prefs_t));
        if (p == NULL) {
            return 0;
        }

        ngx_memcpy(p, (u_char *) ctx->shpool + un->prefs_off,
                   sizeof(mitte_prefs_t));
        n++;
    }

    for (q = ngx_queue_last(&un->notes);
         q != ngx_queue_sentinel(&un->notes);
         q = ngx_queue_prev(q))
    {
        nn = ngx_queue_data(q, ngx_http_mitte_note_node_t, queue);

        p = ngx_http_mitte_state_add(rs, NGX_HTTP_MITTE_REC_NOTE,
                                     sizeof(ngx_http_mitte_notification_t));
        if (p == NULL) {
            return 0;
        }

        ngx_memcpy(p, &nn->n, sizeof(ngx_http_mitte_notification_t));
        n++;
    }

    return n;
}


/*
 * The outbox (pending sends oldest first, then finished ones oldest
 * first) and the replay buffer, oldest first: both bounded.
 */

static ngx_int_t
ngx_http_mitte_dump_rest(ngx_http_mitte_zone_ctx_t *ctx,
    ngx_http_mitte_records_t *rs)
{
    u_char                     *p;
    size_t                      size;
    uint64_t                    seq, first;
    ngx_uint_t                  i;
    ngx_queue_t                *q, *head;
    ngx_http_mitte_sh_t        *sh;
    ngx_http_mitte_send_t      *s;
    ngx_http_mitte_event_t     *e;
    ngx_http_mitte_rec_send_t  *rsend;

    sh = ctx->sh;

    for (i = 0; i < 3; i++) {
        head = (i < 2) ? &sh->pending[i] : &sh->done;

        for (q = (i < 2) ? ngx_queue_head(head) : ngx_queue_last(head);
             q != ngx_queue_sentinel(head);
             q = (i < 2) ? ngx_queue_next(q) : ngx_queue_prev(q))
        {
            s = ngx_queue_data(q, ngx_http_mitte_send_t, queue);

            size = offsetof(ngx_http_mitte_send_t, data)
                   + s->target_len + s->secret_len + s->message_len;

            rsend = ngx_http_mitte_state_add(rs, NGX_HTTP_MITTE_REC_SEND,
                                  offsetof(ngx_http_mitte_rec_send_t, send)
                                  + size);
            if (rsend == NULL) {
                return NGX_ERROR;
            }

            rsend->queue = (uint32_t) i;
            ngx_memcpy(&rsend->send, s, size);
            ngx_memzero(&rsend->send.queue, sizeof(ngx_queue_t));
        }
    }

    if (sh->events == NULL || sh->event_seq == 0) {
        return NGX_OK;
    }

    first = (sh->event_seq >= sh->nevents)
            ? sh->event_seq - sh->nevents + 1 : 1;

    for (seq = first; seq <= sh->event_seq; seq++) {
        e = &sh->events[seq % sh->nevents];

        if (e->seq != seq) {
            continue;
        }

        p = ngx_http_mitte_state_add(rs, NGX_HTTP_MITTE_REC_EVENT,
                                     sizeof(ngx_http_mitte_event_t));
        if (p == NULL) {
            return NGX_ERROR;
        }

        ngx_memcpy(p, e, sizeof(ngx_http_mitte_event_t));
    }

    return NGX_OK;
}


/*
 * The counters and sequence numbers, then the end: last, so that no
 * notification or event written before has a newer number.
 */

static ngx_int_t
ngx_http_mitte_dump_meta(ngx_http_mitte_zone_ctx_t *ctx,
    ngx_http_mitte_records_t *rs)
{
    ngx_http_mitte_rec_meta_t  *meta;

    meta = ngx_http_mitte_state_add(rs, NGX_HTTP_MITTE_REC_META,
                                    sizeof(ngx_http_mitte_rec_meta_t));
    if (meta == NULL) {
        return NGX_ERROR;
    }

    meta->counters = ctx->sh->counters;
    meta->event_seq = ctx->sh->event_seq;
    meta->seq = ctx->sh->seq;
    meta->flags = rs->final ? NGX_HTTP_MITTE_STATE_FINAL : 0;

    if (ngx_http_mitte_state_add(rs, NGX_HTTP_MITTE_REC_END, 0) == NULL) {
        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * Records into a new, empty zone that nothing else uses yet (the master,
 * before the workers start). They are checked whole first: a bad one
 * anywhere, and nothing is taken. "restart": sends under way are pending
 * again (no sender holds them any more).
 */

ngx_int_t
ngx_http_mitte_state_load(ngx_http_mitte_zone_ctx_t *ctx, u_char *p,
    size_t len, ngx_uint_t restart, ngx_http_mitte_loaded_t *ld)
{
    u_char                      *end;
    ngx_queue_t                 *q;
    ngx_http_mitte_sh_t         *sh;
    ngx_http_mitte_rec_t        *rec;
    ngx_http_mitte_counters_t    now;
    ngx_http_mitte_rec_meta_t   *meta;
    ngx_http_mitte_user_node_t  *un;

    ngx_memzero(ld, sizeof(ngx_http_mitte_loaded_t));
    ld->log = ngx_cycle->log;

    if (ngx_http_mitte_state_check(p, len) != NGX_OK) {
        return NGX_ERROR;
    }

    sh = ctx->sh;
    end = p + len;
    un = NULL;
    meta = NULL;

    while (p < end) {
        rec = (ngx_http_mitte_rec_t *) p;

        if (rec->kind == NGX_HTTP_MITTE_REC_END) {
            break;
        }

        if (rec->kind == NGX_HTTP_MITTE_REC_META) {
            meta = (ngx_http_mitte_rec_meta_t *) (rec + 1);

        } else {
            ngx_http_mitte_state_put(ctx, rec, &un, restart, ld);
        }

        p += ngx_http_mitte_rec_size(rec->len);
    }

    if (meta) {
        /* the counters go on; what the zone holds is counted anew */

        now = sh->counters;
        sh->counters = meta->counters;
        sh->counters.endpoints = now.endpoints;
        sh->counters.users = now.users;
        sh->counters.evicted_endpoints += now.evicted_endpoints;
        sh->counters.evicted_users += now.evicted_users;
        sh->counters.nomem += now.nomem;

        sh->seq = meta->seq;
        sh->event_seq = ngx_max(sh->event_seq, meta->event_seq);
    }

    if (restart && !ctx->cluster && sh->event_seq
        && !(meta && (meta->flags & NGX_HTTP_MITTE_STATE_FINAL)))
    {
        /*
         * not written at exit (a kill, a crash, a stop that outlasted the
         * service manager): events may have been numbered after these, and
         * the numbers start over above every one given (the zone's init);
         * a stream that reconnects is then sent nothing it has seen
         */
        ld->stale = ld->events;
        ld->events = 0;
        sh->event_seq = 0;

        if (sh->events) {
            ngx_memzero(sh->events,
                        sh->nevents * sizeof(ngx_http_mitte_event_t));
        }
    }

    if (restart) {
        ngx_http_mitte_state_order(ctx, ld);
    }

    /* a smaller zone evicts the least recently used of what it takes */

    ld->lost += (ld->endpoints - (ngx_uint_t) sh->counters.endpoints)
                + (ld->users - (ngx_uint_t) sh->counters.users);
    ld->endpoints_kept = (ngx_uint_t) sh->counters.endpoints;
    ld->users_kept = (ngx_uint_t) sh->counters.users;

    /*
     * what was kept, not what was read: a user evicted later in the same
     * load took its notifications along
     */

    ld->notes = 0;

    for (q = ngx_queue_head(&sh->user_lru);
         q != ngx_queue_sentinel(&sh->user_lru);
         q = ngx_queue_next(q))
    {
        un = ngx_queue_data(q, ngx_http_mitte_user_node_t, queue);
        ld->notes += un->nnotes;
    }

    ld->sends = sh->npending[0] + sh->npending[1] + sh->ndone;

    return NGX_OK;
}


/*
 * A state file holds endpoints and users in tree order (worker 0 writes it
 * in slices): they go back in LRU order, endpoints by their last delivery,
 * users by when they were last looked up.
 */

static void
ngx_http_mitte_state_order(ngx_http_mitte_zone_ctx_t *ctx,
    ngx_http_mitte_loaded_t *ld)
{
    ngx_http_mitte_state_sort(&ctx->sh->ep_lru, 0, ld->log);
    ngx_http_mitte_state_sort(&ctx->sh->user_lru, 1, ld->log);
}


static void
ngx_http_mitte_state_sort(ngx_queue_t *lru, ngx_uint_t users, ngx_log_t *log)
{
    ngx_uint_t                       i, n;
    ngx_queue_t                     *q;
    ngx_http_mitte_lru_t            *all;
    ngx_http_mitte_user_node_t      *un;
    ngx_http_mitte_endpoint_node_t  *en;

    n = 0;

    for (q = ngx_queue_head(lru); q != ngx_queue_sentinel(lru);
         q = ngx_queue_next(q))
    {
        n++;
    }

    if (n < 2) {
        return;
    }

    all = ngx_alloc(n * sizeof(ngx_http_mitte_lru_t), log);
    if (all == NULL) {
        return;
    }

    i = 0;

    for (q = ngx_queue_head(lru); q != ngx_queue_sentinel(lru);
         q = ngx_queue_next(q))
    {
        if (users) {
            un = ngx_queue_data(q, ngx_http_mitte_user_node_t, queue);
            all[i].key = un->user.seen;

        } else {
            en = ngx_queue_data(q, ngx_http_mitte_endpoint_node_t, queue);
            all[i].key = en->ep.streak.last_ms;
        }

        all[i++].queue = q;
    }

    ngx_qsort(all, n, sizeof(ngx_http_mitte_lru_t),
              ngx_http_mitte_state_newer);

    ngx_queue_init(lru);

    for (i = 0; i < n; i++) {
        ngx_queue_insert_tail(lru, all[i].queue);
    }

    ngx_free(all);
}


static int ngx_libc_cdecl
ngx_http_mitte_state_newer(const void *one, const void *two)
{
    const ngx_http_mitte_lru_t  *a = one;
    const ngx_http_mitte_lru_t  *b = two;

    if (a->key == b->key) {
        return 0;
    }

    return (a->key > b->key) ? -1 : 1;
}


/* every record whole, of a known kind and size, its lengths in bounds */

static ngx_int_t
ngx_http_mitte_state_check(u_char *p, size_t len)
{
    u_char                         *end;
    size_t                          size;
    ngx_uint_t                      user, ended;
    mitte_prefs_t                   prefs;
    ngx_http_mitte_rec_t           *rec;

    end = p + len;
    user = 0;
    ended = 0;

    while (p < end) {

        if ((size_t) (end - p) < sizeof(ngx_http_mitte_rec_t)) {
            return NGX_ERROR;
        }

        rec = (ngx_http_mitte_rec_t *) p;
        size = ngx_http_mitte_rec_size((size_t) rec->len);

        if (rec->len > (uint32_t) (end - p) || size > (size_t) (end - p)) {
            return NGX_ERROR;
        }

        switch (rec->kind) {

        case NGX_HTTP_MITTE_REC_META:
            if (rec->len != sizeof(ngx_http_mitte_rec_meta_t)) {
                return NGX_ERROR;
            }
            break;

        case NGX_HTTP_MITTE_REC_ENDPOINT:
            if (ngx_http_mitte_state_endpoint_ok(
                    (ngx_http_mitte_rec_endpoint_t *) (rec + 1), rec->len)
                != NGX_OK)
            {
                return NGX_ERROR;
            }
            break;

        case NGX_HTTP_MITTE_REC_USER:
            if (ngx_http_mitte_state_user_ok(
                    (ngx_http_mitte_user_t *) (rec + 1), rec->len)
                != NGX_OK)
            {
                return NGX_ERROR;
            }

            user = 1;
            break;

        case NGX_HTTP_MITTE_REC_PREFS:
            if (rec->len != sizeof(mitte_prefs_t) || !user) {
                return NGX_ERROR;
            }

            ngx_memcpy(&prefs, rec + 1, sizeof(mitte_prefs_t));

            if (mitte_prefs_check(&prefs) != 0) {
                return NGX_ERROR;
            }
            break;

        case NGX_HTTP_MITTE_REC_NOTE:
            if (!user
                || ngx_http_mitte_state_note_ok(
                       (ngx_http_mitte_notification_t *) (rec + 1), rec->len)
                   != NGX_OK)
            {
                return NGX_ERROR;
            }
            break;

        case NGX_HTTP_MITTE_REC_SEND:
            if (ngx_http_mitte_state_send_ok(
                    (ngx_http_mitte_rec_send_t *) (rec + 1), rec->len)
                != NGX_OK)
            {
                return NGX_ERROR;
            }
            break;

        case NGX_HTTP_MITTE_REC_EVENT:
            if (ngx_http_mitte_state_event_ok(
                    (ngx_http_mitte_event_t *) (rec + 1), rec->len)
                != NGX_OK)
            {
                return NGX_ERROR;
            }
            break;

        case NGX_HTTP_MITTE_REC_END:
            if (rec->len != 0) {
                return NGX_ERROR;
            }

            ended = 1;
            break;

        default:
            return NGX_ERROR;
        }

        p += size;

        if (ended) {
            return (p == end) ? NGX_OK : NGX_ERROR;
        }
    }

    /* no end record: cut short */

    return NGX_ERROR;
}


static ngx_int_t
ngx_http_mitte_state_endpoint_ok(ngx_http_mitte_rec_endpoint_t *rep,
    size_t len)
{
    if (len < offsetof(ngx_http_mitte_rec_endpoint_t, name)
        || len != offsetof(ngx_http_mitte_rec_endpoint_t, name)
                  + rep->name_len
        || !mitte_slug_valid(rep->ep.slug, rep->slug_len)
        || rep->user_len > MITTE_USER_MAX
        || rep->name_len > MITTE_NAME_MAX)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_mitte_state_user_ok(ngx_http_mitte_user_t *u, size_t len)
{
    if (len != sizeof(ngx_http_mitte_user_t)
        || u->id_len == 0 || u->id_len > MITTE_USER_MAX
        || u->email_len > MITTE_EMAIL_MAX
        || u->plan >= MITTE_PLAN_N)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_mitte_state_note_ok(ngx_http_mitte_notification_t *n, size_t len)
{
    if (len != sizeof(ngx_http_mitte_notification_t)
        || n->type >= NGX_HTTP_MITTE_NTYPES
        || n->slug_len > MITTE_SLUG_MAX
        || n->message_len > NGX_HTTP_MITTE_MESSAGE_MAX)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_mitte_state_event_ok(ngx_http_mitte_event_t *e, size_t len)
{
    if (len != sizeof(ngx_http_mitte_event_t)
        || e->seq == 0
        || e->user_len > MITTE_USER_MAX
        || e->slug_len > MITTE_SLUG_MAX
        || (e->kind == NGX_HTTP_MITTE_EVENT_DELIVERED
            && (e->name_len > MITTE_NAME_MAX
                || e->method_len > NGX_HTTP_MITTE_METHOD_MAX
                || e->rid_len > NGX_HTTP_MITTE_RID_MAX))
        || (e->kind == NGX_HTTP_MITTE_EVENT_NOTIFICATION
            && (e->message_len > NGX_HTTP_MITTE_MESSAGE_MAX
                || e->flag >= NGX_HTTP_MITTE_NTYPES))
        || (e->kind != NGX_HTTP_MITTE_EVENT_DELIVERED
            && e->kind != NGX_HTTP_MITTE_EVENT_NOTIFICATION))
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_mitte_state_send_ok(ngx_http_mitte_rec_send_t *rs, size_t len)
{
    ngx_http_mitte_send_t  *s;

    if (len < offsetof(ngx_http_mitte_rec_send_t, send.data)) {
        return NGX_ERROR;
    }

    s = &rs->send;

    if (rs->queue > NGX_HTTP_MITTE_QUEUE_DONE
        || s->channel > NGX_HTTP_MITTE_CHANNEL_WEBHOOK
        || (rs->queue != NGX_HTTP_MITTE_QUEUE_DONE && rs->queue != s->channel)
        || s->state > NGX_HTTP_MITTE_SEND_FAILED
        || s->user_len > MITTE_USER_MAX
        || s->slug_len > MITTE_SLUG_MAX
        || s->error_len > NGX_HTTP_MITTE_ERROR_MAX
        || s->type >= NGX_HTTP_MITTE_NTYPES
        || s->format >= MITTE_WEBHOOK_N
        || s->target_len == 0
        || s->target_len > MITTE_URL_MAX
        || s->secret_len > MITTE_WEBHOOK_SECRET_MAX
        || s->message_len > NGX_HTTP_MITTE_MESSAGE_MAX
        || len != offsetof(ngx_http_mitte_rec_send_t, send.data)
                  + s->target_len + s->secret_len + s->message_len)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* one checked record into the zone */

static void
ngx_http_mitte_state_put(ngx_http_mitte_zone_ctx_t *ctx,
    ngx_http_mitte_rec_t *rec, ngx_http_mitte_user_node_t **unp,
    ngx_uint_t restart, ngx_http_mitte_loaded_t *ld)
{
    u_char                          *p;
    ngx_str_t                        name;
    ngx_http_mitte_sh_t             *sh;
    ngx_http_mitte_event_t          *e;
    ngx_http_mitte_user_t           *u;
    ngx_http_mitte_user_node_t      *un;
    ngx_http_mitte_note_node_t      *nn;
    ngx_http_mitte_rec_endpoint_t   *rep;
    ngx_http_mitte_endpoint_node_t  *en;

    sh = ctx->sh;
    un = *unp;

    switch (rec->kind) {

    case NGX_HTTP_MITTE_REC_ENDPOINT:
        rep = (ngx_http_mitte_rec_endpoint_t *) (rec + 1);
        ld->endpoints++;

        en = ngx_http_mitte_endpoint_get(ctx, rep->ep.slug, rep->slug_len);
        if (en == NULL) {
            return;
        }

        en->ep = rep->ep;
        en->ep.name_off = 0;
        en->user_len = rep->user_len;
        en->last_status = rep->last_status;

        name.data = rep->name;
        name.len = rep->name_len;
        ngx_http_mitte_endpoint_set_name(ctx, en, &name);

        return;

    case NGX_HTTP_MITTE_REC_USER:
        u = (ngx_http_mitte_user_t *) (rec + 1);
        ld->users++;

        un = ngx_http_mitte_user_get(ctx, u->id, u->id_len, NULL);
        *unp = un;

        if (un) {
            un->user = *u;
        }

        return;

    case NGX_HTTP_MITTE_REC_PREFS:
        if (un == NULL) {
            return;
        }

        p = ngx_http_mitte_alloc(ctx, sizeof(mitte_prefs_t), un);
        if (p == NULL) {
            ld->lost++;
            return;
        }

        ngx_memcpy(p, rec + 1, sizeof(mitte_prefs_t));
        un->prefs_off = (uint32_t) (p - (u_char *) ctx->shpool);

        return;

    case NGX_HTTP_MITTE_REC_NOTE:
        if (un == NULL) {
            return;
        }

        nn = ngx_http_mitte_alloc(ctx, sizeof(ngx_http_mitte_note_node_t),
                                  un);
        if (nn == NULL) {
            ld->lost++;
            return;
        }

        ngx_memcpy(&nn->n, rec + 1, sizeof(ngx_http_mitte_notification_t));

        /* the oldest first, each in front: newest first again */

        ngx_queue_insert_head(&un->notes, &nn->queue);
        un->nnotes++;

        if (!nn->n.read) {
            un->unread++;
        }

        ld->notes++;

        return;

    case NGX_HTTP_MITTE_REC_SEND:
        ngx_http_mitte_state_put_send(ctx, rec, restart, ld);
        return;

    case NGX_HTTP_MITTE_REC_EVENT:
        e = (ngx_http_mitte_event_t *) (rec + 1);

        if (sh->events == NULL || sh->nevents == 0) {
            return;
        }

        /* oldest first: a smaller ring keeps the newest */

        if (sh->events[e->seq % sh->nevents].seq == 0) {
            ld->events++;
        }

        sh->events[e->seq % sh->nevents] = *e;
        sh->event_seq = ngx_max(sh->event_seq, e->seq);

        return;
    }
}


/* a send, into its queue: one under way before a restart is pending */

static void
ngx_http_mitte_state_put_send(ngx_http_mitte_zone_ctx_t *ctx,
    ngx_http_mitte_rec_t *rec, ngx_uint_t restart,
    ngx_http_mitte_loaded_t *ld)
{
    size_t                      size;
    ngx_queue_t                *queue;
    ngx_http_mitte_sh_t        *sh;
    ngx_http_mitte_send_t      *s;
    ngx_http_mitte_rec_send_t  *rsend;

    sh = ctx->sh;

    rsend = (ngx_http_mitte_rec_send_t *) (rec + 1);
    size = rec->len - offsetof(ngx_http_mitte_rec_send_t, send);

    if (rsend->queue != NGX_HTTP_MITTE_QUEUE_DONE
        && sh->npending[rsend->queue] >= NGX_HTTP_MITTE_OUTBOX_PENDING)
    {
        ld->lost++;
        return;
    }

    s = ngx_http_mitte_alloc(ctx, size, NULL);
    if (s == NULL) {
        ld->lost++;
        return;
    }

    ngx_memcpy(s, &rsend->send, size);

    if (restart && s->state == NGX_HTTP_MITTE_SEND_SENDING) {
        s->state = NGX_HTTP_MITTE_SEND_PENDING;
        s->owner = 0;
    }

    if (rsend->queue == NGX_HTTP_MITTE_QUEUE_DONE) {
        /* oldest first, each in front: newest first again */
        queue = &sh->done;
        ngx_queue_insert_head(queue, &s->queue);
        sh->ndone++;

    } else {
        queue = &sh->pending[rsend->queue];
        ngx_queue_insert_tail(queue, &s->queue);
        sh->npending[rsend->queue]++;
    }

    ld->sends++;
}


/* sizes of what the records hold: another layout is refused */

static void
ngx_http_mitte_state_sizes(uint32_t *sizes)
{
    sizes[0] = sizeof(ngx_http_mitte_rec_meta_t);
    sizes[1] = offsetof(ngx_http_mitte_rec_endpoint_t, name);
    sizes[2] = sizeof(ngx_http_mitte_user_t);
    sizes[3] = sizeof(mitte_prefs_t);
    sizes[4] = sizeof(ngx_http_mitte_notification_t);
    sizes[5] = offsetof(ngx_http_mitte_send_t, data);
    sizes[6] = sizeof(ngx_http_mitte_event_t);
    sizes[7] = sizeof(ngx_http_mitte_counters_t);
}


/*
 * Writes the state file in one go: the zone's records taken under its
 * lock, then written without it (the master at exit, when no worker is
 * left to wait for the lock).
 */

static ngx_int_t
ngx_http_mitte_state_save(ngx_http_mitte_zone_ctx_t *ctx, ngx_log_t *log,
    ngx_uint_t quiet)
{
    uint64_t                  t;
    ngx_int_t                 rc;
    ngx_http_mitte_records_t  rs;

    ngx_http_mitte_state_begin(ctx, &rs, log);

    /* the master's, at exit: no worker can number an event any more */
    rs.final = 1;

    t = ngx_http_mitte_state_usec();

    ngx_shmtx_lock(&ctx->shpool->mutex);
    rc = ngx_http_mitte_state_dump(ctx, &rs);
    ngx_shmtx_unlock(&ctx->shpool->mutex);

    rs.longest = ngx_http_mitte_state_usec() - t;

    return ngx_http_mitte_state_finish(ctx, &rs, rc, log, quiet);
}


/*
 * Room for the records, about what the zone uses, touched before the lock
 * is taken: the page faults of fresh memory would otherwise be taken with
 * the zone locked.
 */

static void
ngx_http_mitte_state_begin(ngx_http_mitte_zone_ctx_t *ctx,
    ngx_http_mitte_records_t *rs, ngx_log_t *log)
{
    size_t  size;

    ngx_memzero(rs, sizeof(ngx_http_mitte_records_t));
    rs->log = log;
    rs->start = ngx_http_mitte_state_usec();

    size = (size_t) (ctx->shpool->end - ctx->shpool->start)
           - ctx->shpool->pfree * ngx_pagesize;
    size += size / 4;

    if (ngx_http_mitte_state_grow(rs, size) == NGX_OK) {
        ngx_memzero(rs->data, rs->size);
    }

    rs->longest = 0;
}


/*
 * The records (rc: whether they were all taken) to "<path>.tmp", synced,
 * renamed over the path; on a failure once it was opened, "<path>.tmp" is
 * removed (a partial file would hold its space until the next write).
 * "quiet": errors are logged at most once a minute (the timer's writes).
 */

static ngx_int_t
ngx_http_mitte_state_finish(ngx_http_mitte_zone_ctx_t *ctx,
    ngx_http_mitte_records_t *rs, ngx_int_t rc, ngx_log_t *log,
    ngx_uint_t quiet)
{
    ngx_fd_t                      fd;
    ngx_err_t                     err;
    ngx_uint_t                    tmp;
    ngx_time_t                   *tp;
    const char                   *what;
    ngx_http_mitte_state_head_t   head;

    fd = NGX_INVALID_FILE;
    err = 0;
    what = NULL;
    tmp = 0;

    if (rc != NGX_OK || rs->failed) {
        what = "no memory for the records of";
        goto failed;
    }

    ngx_memzero(&head, sizeof(ngx_http_mitte_state_head_t));
    ngx_memcpy(head.magic, NGX_HTTP_MITTE_STATE_MAGIC, 8);
    head.format = NGX_HTTP_MITTE_STATE_FORMAT;
    head.version = NGX_HTTP_MITTE_RECORDS_VERSION;
    ngx_http_mitte_state_sizes(head.sizes);

    tp = ngx_timeofday();
    head.written_ms = (uint64_t) tp->sec * 1000 + tp->msec;
    head.length = rs->len;
    head.checksum = mitte_checksum(rs->data, rs->len);

    fd = ngx_open_file(ctx->state_tmp.data, NGX_FILE_WRONLY,
                       NGX_FILE_TRUNCATE, 0600);

    if (fd == NGX_INVALID_FILE) {
        err = ngx_errno;
        what = ngx_open_file_n " failed for";
        goto failed;
    }

    tmp = 1;

    if (ngx_http_mitte_state_write_all(fd, (u_char *) &head, sizeof(head))
        != NGX_OK
        || ngx_http_mitte_state_write_all(fd, rs->data, rs->len) != NGX_OK)
    {
        err = ngx_errno;
        what = "write() failed for";
        goto failed;
    }

    if (fsync(fd) == -1) {
        err = ngx_errno;
        what = "fsync() failed for";
        goto failed;
    }

    if (ngx_close_file(fd) == NGX_FILE_ERROR) {
        fd = NGX_INVALID_FILE;
        err = ngx_errno;
        what = ngx_close_file_n " failed for";
        goto failed;
    }

    fd = NGX_INVALID_FILE;

    if (ngx_rename_file(ctx->state_tmp.data, ctx->state_file.data)
        == NGX_FILE_ERROR)
    {
        err = ngx_errno;
        what = ngx_rename_file_n " failed for";
        goto failed;
    }

    tmp = 0;

    /* the rename itself lasts once the directory is synced */

    fd = ngx_open_file(ctx->state_dir.data, NGX_FILE_RDONLY, NGX_FILE_OPEN,
                       0);

    if (fd != NGX_INVALID_FILE) {
        (void) fsync(fd);
        (void) ngx_close_file(fd);
    }

    ngx_http_mitte_state_count(ctx, 1, rs->start, rs->longest,
                               sizeof(head) + rs->len);

    ngx_http_mitte_records_free(rs);

    return NGX_OK;

failed:

    if (fd != NGX_INVALID_FILE) {
        (void) ngx_close_file(fd);
    }

    if (tmp && ngx_delete_file(ctx->state_tmp.data) == NGX_FILE_ERROR) {
        ngx_log_error(NGX_LOG_ERR, log, ngx_errno,
                      "mitte_state_file: " ngx_delete_file_n " \"%s\" "
                      "failed", ctx->state_tmp.data);
    }

    ngx_http_mitte_records_free(rs);

    ngx_http_mitte_state_count(ctx, 0, rs->start, rs->longest, 0);

    if (!quiet || ngx_time() - ctx->state_warned >= 60) {
        ctx->state_warned = ngx_time();
        ngx_log_error(NGX_LOG_ERR, log, err,
                      "mitte_state_file: %s \"%s\", the previous state "
                      "file stays", what, ctx->state_tmp.data);
    }

    return NGX_ERROR;
}


/* for the metrics: the last write, and its longest hold of the lock */

static void
ngx_http_mitte_state_count(ngx_http_mitte_zone_ctx_t *ctx, ngx_uint_t ok,
    uint64_t start, uint64_t longest, size_t bytes)
{
    uint64_t  usec;

    usec = ngx_http_mitte_state_usec() - start;

    ngx_shmtx_lock(&ctx->shpool->mutex);

    ctx->sh->counters.state_writes[ok ? 0 : 1]++;

    if (ok) {
        ctx->sh->counters.state_usec = usec;
        ctx->sh->counters.state_lock_usec = longest;
        ctx->sh->counters.state_bytes = bytes;
    }

    ngx_shmtx_unlock(&ctx->shpool->mutex);
}


static uint64_t
ngx_http_mitte_state_usec(void)
{
    struct timespec  ts;

    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0) {
        return 0;
    }

    return (uint64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}


static ngx_int_t
ngx_http_mitte_state_write_all(ngx_fd_t fd, u_char *p, size_t len)
{
    ssize_t  n;

    while (len) {
        n = write(fd, p, ngx_min(len, (size_t) 1 << 30));

        if (n == -1) {
            if (ngx_errno == NGX_EINTR) {
                continue;
            }

            return NGX_ERROR;
        }

        p += n;
        len -= n;
    }

    return NGX_OK;
}


/*
 * At start, into a new zone: the state file, if there is one. One that
 * cannot be read or is not whole is logged, set aside, and the zone
 * starts empty (NGX_ERROR). NGX_DECLINED: there is none yet.
 */

ngx_int_t
ngx_http_mitte_state_restore(ngx_shm_zone_t *shm_zone,
    ngx_http_mitte_zone_ctx_t *ctx)
{
    u_char                       *data;
    size_t                        size;
    ssize_t                       n;
    ngx_fd_t                      fd;
    ngx_err_t                     err;
    ngx_log_t                    *log;
    ngx_file_info_t               fi;
    const char                   *why;
    ngx_http_mitte_loaded_t       ld;
    ngx_uint_t                    level;
    ngx_http_mitte_state_head_t   head;

    log = shm_zone->shm.log;
    data = NULL;
    err = 0;

    fd = ngx_open_file(ctx->state_file.data, NGX_FILE_RDONLY, NGX_FILE_OPEN,
                       0);

    if (fd == NGX_INVALID_FILE) {
        err = ngx_errno;

        if (err == NGX_ENOENT) {
            ngx_log_error(NGX_LOG_NOTICE, log, 0,
                          "mitte_state_file \"%s\" does not exist yet: "
                          "starting empty", ctx->state_file.data);
            return NGX_DECLINED;
        }

        why = ngx_open_file_n " failed";
        goto bad;
    }

    if (ngx_fd_info(fd, &fi) == NGX_FILE_ERROR) {
        err = ngx_errno;
        why = ngx_fd_info_n " failed";
        goto bad;
    }

    size = (size_t) ngx_file_size(&fi);

    if (size < sizeof(head)) {
        why = "it is cut short";
        goto bad;
    }

    n = read(fd, &head, sizeof(head));

    if (n != (ssize_t) sizeof(head)) {
        err = (n == -1) ? ngx_errno : 0;
        why = "read() failed";
        goto bad;
    }

    why = ngx_http_mitte_state_head_check(&head, size);
    if (why) {
        goto bad;
    }

    data = ngx_alloc(size - sizeof(head) + 1, log);
    if (data == NULL) {
        why = "no memory to read it";
        goto bad;
    }

    n = read(fd, data, size - sizeof(head));

    if (n != (ssize_t) (size - sizeof(head))) {
        err = (n == -1) ? ngx_errno : 0;
        why = "read() failed";
        goto bad;
    }

    if (mitte_checksum(data, size - sizeof(head)) != head.checksum) {
        why = "its checksum is wrong";
        goto bad;
    }

    if (ngx_http_mitte_state_load(ctx, data, size - sizeof(head), 1, &ld)
        != NGX_OK)
    {
        why = "a record in it is malformed";
        goto bad;
    }

    ngx_free(data);
    (void) ngx_close_file(fd);

    level = ld.lost ? NGX_LOG_WARN : NGX_LOG_NOTICE;

    ngx_log_error(level, log, 0,
                  "mitte_state_file \"%s\", written %Ts ago, read: %ui of "
                  "%ui endpoints and %ui of %ui users, %ui notifications, "
                  "%ui sends and %ui events; %ui entries did not fit the "
                  "zone", ctx->state_file.data,
                  ngx_time() - (time_t) (head.written_ms / 1000),
                  ld.endpoints_kept, ld.endpoints, ld.users_kept, ld.users,
                  ld.notes, ld.sends, ld.events, ld.lost);

    if (ld.stale) {
        ngx_log_error(NGX_LOG_NOTICE, log, 0,
                      "mitte_state_file \"%s\" was not written at exit: "
                      "its %ui events are not replayed, and new event ids "
                      "start above any given before", ctx->state_file.data,
                      ld.stale);
    }

    return NGX_OK;

bad:

    if (data) {
        ngx_free(data);
    }

    if (fd != NGX_INVALID_FILE) {
        (void) ngx_close_file(fd);
    }

    ngx_log_error(NGX_LOG_ERR, log, err,
                  "mitte_state_file \"%s\" is not used: %s",
                  ctx->state_file.data, why);

    ngx_http_mitte_state_aside(ctx, log);

    return NGX_ERROR;
}


/* NULL: the header is of this module's file of "size" bytes, else why not */

static const char *
ngx_http_mitte_state_head_check(ngx_http_mitte_state_head_t *head,
    size_t size)
{
    uint32_t  sizes[8];

    ngx_http_mitte_state_sizes(sizes);

    if (ngx_memcmp(head->magic, NGX_HTTP_MITTE_STATE_MAGIC, 8) != 0) {
        return "it is not a state file of this module";
    }

    if (head->format != NGX_HTTP_MITTE_STATE_FORMAT
        || head->version != NGX_HTTP_MITTE_RECORDS_VERSION
        || ngx_memcmp(head->sizes, sizes, sizeof(sizes)) != 0)
    {
        return "it was written by another version of the module";
    }

    if (head->length != size - sizeof(ngx_http_mitte_state_head_t)) {
        return "its length is wrong (cut short, or grown)";
    }

    return NULL;
}


/* a state file that cannot be used goes to "<path>.bad", for a look */

static void
ngx_http_mitte_state_aside(ngx_http_mitte_zone_ctx_t *ctx, ngx_log_t *log)
{
    if (ngx_rename_file(ctx->state_file.data, ctx->state_bad.data)
        == NGX_FILE_ERROR)
    {
        ngx_log_error(NGX_LOG_ERR, log, ngx_errno,
                      "mitte_state_file: " ngx_rename_file_n " \"%s\" to "
                      "\"%s\" failed; starting empty",
                      ctx->state_file.data, ctx->state_bad.data);
        return;
    }

    ngx_log_error(NGX_LOG_ERR, log, 0,
                  "mitte_state_file \"%s\" set aside as \"%s\"; "
                  "starting empty", ctx->state_file.data,
                  ctx->state_bad.data);
}


/*
 * Worker 0 writes the file every interval, in slices: each takes the lock
 * for at most NGX_HTTP_MITTE_STATE_SLICE records, and the event loop runs
 * between them. Endpoints and users are walked in tree order with a
 * cursor, which survives nodes going between slices; the counters and
 * sequence numbers come last, so that they are not older than any record.
 */

ngx_int_t
ngx_http_mitte_state_init_process(ngx_cycle_t *cycle)
{
    ngx_http_mitte_zone_ctx_t      *ctx;
    ngx_http_mitte_main_conf_t     *mmcf;
    ngx_http_mitte_state_writer_t  *w;

    mmcf = ngx_http_mitte_process_conf(cycle, 1);
    if (mmcf == NULL) {
        return NGX_OK;
    }

    ctx = mmcf->shm_zone->data;

    if (ctx->state_file.len == 0) {
        return NGX_OK;
    }

    w = ngx_pcalloc(cycle->pool, sizeof(ngx_http_mitte_state_writer_t));
    if (w == NULL) {
        return NGX_ERROR;
    }

    w->ctx = ctx;

    w->timer.handler = ngx_http_mitte_state_timer;
    w->timer.data = w;
    w->timer.log = cycle->log;
    w->timer.cancelable = 1;

    w->next.handler = ngx_http_mitte_state_slice;
    w->next.data = w;
    w->next.log = cycle->log;

    ngx_add_timer(&w->timer, ctx->state_interval);

    return NGX_OK;
}


static void
ngx_http_mitte_state_timer(ngx_event_t *ev)
{
    ngx_http_mitte_state_writer_t  *w = ev->data;

    if (ngx_exiting || ngx_quit || ngx_terminate) {
        /* the master writes it once the workers are gone */
        return;
    }

    ngx_http_mitte_state_begin(w->ctx, &w->rs, ev->log);

    w->phase = 0;
    w->started = 0;

    ngx_http_mitte_state_slice(&w->next);
}


static void
ngx_http_mitte_state_slice(ngx_event_t *ev)
{
    ngx_http_mitte_state_writer_t *w = ev->data;

    uint64_t                    t;
    ngx_int_t                   rc;
    ngx_str_t                   name;
    ngx_uint_t                  n, k;
    ngx_rbtree_t               *tree;
    ngx_rbtree_node_t          *node;
    ngx_http_mitte_key_pt       key;
    ngx_http_mitte_zone_ctx_t  *ctx;

    ctx = w->ctx;

    if (ngx_exiting || ngx_quit || ngx_terminate) {
        ngx_http_mitte_records_free(&w->rs);
        return;
    }

    rc = NGX_OK;
    t = ngx_http_mitte_state_usec();

    ngx_shmtx_lock(&ctx->shpool->mutex);

    switch (w->phase) {

    case 0:
        rc = ngx_http_mitte_dump_rest(ctx, &w->rs);
        w->phase = 1;
        break;

    case 1:
    case 2:
        if (w->phase == 1) {
            tree = &ctx->sh->ep_rbtree;
            key = ngx_http_mitte_endpoint_key;

        } else {
            tree = &ctx->sh->user_rbtree;
            key = ngx_http_mitte_user_key;
        }

        for (n = 0; n < NGX_HTTP_MITTE_STATE_SLICE; n += k) {

            if (!w->started) {
                node = (tree->root == tree->sentinel)
                       ? NULL : ngx_rbtree_min(tree->root, tree->sentinel);

            } else {
                node = ngx_http_mitte_tree_after(tree, key, w->key, w->id,
                                                 w->len);
            }

            if (node == NULL) {
                w->phase++;
                w->started = 0;
                break;
            }

            k = (w->phase == 1)
                ? ngx_http_mitte_dump_endpoint(ctx, &w->rs,
                      (ngx_http_mitte_endpoint_node_t *) &node->color)
                : ngx_http_mitte_dump_user(ctx, &w->rs,
                      (ngx_http_mitte_user_node_t *) &node->color);

            if (k == 0) {
                rc = NGX_ERROR;
                break;
            }

            key(node, &name);

            w->key = node->key;
            w->len = name.len;
            ngx_memcpy(w->id, name.data, name.len);
            w->started = 1;
        }

        break;

    default:
        rc = ngx_http_mitte_dump_meta(ctx, &w->rs);
        w->phase = 4;
    }

    ngx_shmtx_unlock(&ctx->shpool->mutex);

    t = ngx_http_mitte_state_usec() - t;
    w->rs.longest = ngx_max(w->rs.longest, t);

    if (rc == NGX_OK && w->phase < 4) {
        ngx_post_event(&w->next, &ngx_posted_events);
        return;
    }

    (void) ngx_http_mitte_state_finish(ctx, &w->rs, rc, ev->log, 1);

    ngx_add_timer(&w->timer, ctx->state_interval);
}


/* the master, at exit: no worker can record any more */

void
ngx_http_mitte_state_exit_master(ngx_cycle_t *cycle)
{
    ngx_http_mitte_zone_ctx_t   *ctx;
    ngx_http_mitte_main_conf_t  *mmcf;

    mmcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_mitte_module);

    if (mmcf == NULL || mmcf->shm_zone == NULL) {
        return;
    }

    ctx = mmcf->shm_zone->data;

    if (ctx == NULL || ctx->sh == NULL || ctx->state_file.len == 0) {
        return;
    }

    if (ngx_http_mitte_state_save(ctx, cycle->log, 0) == NGX_OK) {
        ngx_log_error(NGX_LOG_NOTICE, cycle->log, 0,
                      "mitte_state_file \"%s\" written at exit",
                      ctx->state_file.data);
    }
}
