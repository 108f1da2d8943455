/*
 * Copyright (C) ngx_mitte_module authors
 *
 * The shared memory zone: its pointer-free structures and their storage
 * (ngx_http_mitte_zone.c), and its start (ngx_http_mitte_zone_start.c).
 */


#ifndef _NGX_HTTP_MITTE_ZONE_H_INCLUDED_
#define _NGX_HTTP_MITTE_ZONE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "mitte_delta.h"
#include "mitte_ring.h"
#include "mitte_streak.h"
#include "mitte_time.h"
#include "mitte_util.h"


/*
 * layout version of the zone's structures; a new layout needs a restart
 * (the records' own version, that of the state file, is in
 * ngx_http_mitte_state.c)
 */
#define NGX_HTTP_MITTE_ZONE_VERSION     5


/*
 * The pointer-free part of an endpoint: fixed-width fields only, so that a
 * state file or Redis can copy it as it is.
 */
typedef struct {
    mitte_streak_t              streak;     /* also the last delivery time */
    mitte_ring_t                ring;
    uint32_t                    anomaly_at; /* unix s of the last anomaly */
    uint32_t                    name_off;   /* name's offset in the zone */
    u_char                      slug[MITTE_SLUG_MAX];
    u_char                      user[MITTE_USER_MAX];
} ngx_http_mitte_endpoint_t;


typedef struct ngx_http_mitte_delta_s  ngx_http_mitte_delta_t;


/* overlaid on ngx_rbtree_node_t from its "color" field, as limit_req does */
typedef struct {
    u_char                      color;
    u_char                      slug_len;
    u_char                      user_len;
    u_char                      name_len;
    uint16_t                    last_status;
    u_char                      flags;
    u_char                      dummy;
    ngx_queue_t                 queue;      /* LRU */
    ngx_http_mitte_delta_t     *delta;      /* cluster mode: not yet sent */
    ngx_http_mitte_endpoint_t   ep;
} ngx_http_mitte_endpoint_node_t;


/*
 * Cluster mode: an endpoint's deliveries of this instance, all workers
 * together, not yet taken into a flush (ngx_http_mitte_sync.c), as
 * lib/mitte_delta.h aggregates them. In the zone's dirty list from the
 * first delivery until a flush takes it; then back in the free list.
 */
#define NGX_HTTP_MITTE_DELTA_FREE_MAX   4096    /* kept for reuse; more go
                                                   back to the slab */

struct ngx_http_mitte_delta_s {
    ngx_queue_t                 queue;      /* dirty, or free */
    ngx_http_mitte_endpoint_node_t  *en;
    ngx_msec_t                  since;      /* made dirty */
    ngx_uint_t                  quiet;      /* one recorded while Redis was
                                               away: crossings raised here */
    mitte_delta_t               d;
};


/* notification types, in SPEC order */
#define NGX_HTTP_MITTE_ANOMALY_DETECTED     0
#define NGX_HTTP_MITTE_QUOTA_WARNING        1
#define NGX_HTTP_MITTE_QUOTA_EXCEEDED       2
#define NGX_HTTP_MITTE_ENDPOINT_DOWN        3
#define NGX_HTTP_MITTE_ENDPOINT_RECOVERED   4
#define NGX_HTTP_MITTE_TRIAL_ENDING         5
#define NGX_HTTP_MITTE_NTYPES               6

#define NGX_HTTP_MITTE_MESSAGE_MAX      400
/* a notification's id: creation time in ms and the zone's sequence number */
#define NGX_HTTP_MITTE_ID_FORMAT        "%012xL%08xD"
#define NGX_HTTP_MITTE_ID_LEN           20


/* an in-app notification: pointer-free */
typedef struct {
    uint64_t                    created_ms;
    uint32_t                    seq;
    uint8_t                     type;
    uint8_t                     read;
    uint8_t                     slug_len;   /* 0: no endpoint */
    uint8_t                     reserved;
    uint16_t                    message_len;
    uint16_t                    reserved2;
    u_char                      slug[MITTE_SLUG_MAX];
    u_char                      message[NGX_HTTP_MITTE_MESSAGE_MAX];
} ngx_http_mitte_notification_t;


typedef struct {
    ngx_queue_t                 queue;      /* the user's, newest first */
    ngx_http_mitte_notification_t  n;
} ngx_http_mitte_note_node_t;


#define NGX_HTTP_MITTE_EVENT_DELIVERED      1
#define NGX_HTTP_MITTE_EVENT_NOTIFICATION   2

#define NGX_HTTP_MITTE_METHOD_MAX       16
#define NGX_HTTP_MITTE_RID_MAX          32
#define NGX_HTTP_MITTE_MAX_WORKERS      64
#define NGX_HTTP_MITTE_FRAME_MAX        4096


/* an event in the replay ring: pointer-free */
typedef struct {
    uint64_t                    seq;        /* 0: empty slot */
    uint64_t                    time_ms;
    uint32_t                    value;      /* duration ms, or note seq */
    uint16_t                    status;
    uint16_t                    message_len;
    uint8_t                     kind;
    uint8_t                     flag;       /* success, or note type */
    uint8_t                     user_len;
    uint8_t                     slug_len;
    uint8_t                     name_len;
    uint8_t                     method_len;
    uint8_t                     rid_len;
    uint8_t                     reserved;
    u_char                      user[MITTE_USER_MAX];
    u_char                      slug[MITTE_SLUG_MAX];
    union {
        struct {
            u_char              name[MITTE_NAME_MAX];
            u_char              method[NGX_HTTP_MITTE_METHOD_MAX];
            u_char              rid[NGX_HTTP_MITTE_RID_MAX];
        } d;
        u_char                  message[NGX_HTTP_MITTE_MESSAGE_MAX];
    } u;
} ngx_http_mitte_event_t;


/*
 * Event streams open per user, in buckets by the user id's hash, and when
 * one last closed: a delivery's event goes into the replay ring only when
 * a stream of its user (or a "mitte_sse all" stream) is open, or one
 * closed less than NGX_HTTP_MITTE_SSE_GAP seconds ago, so that a client
 * reconnecting with Last-Event-ID within that gap gets every event of it.
 */
#define NGX_HTTP_MITTE_WATCH            1024
#define NGX_HTTP_MITTE_SSE_GAP          900

/*
 * The first event number of a zone that starts without the last number
 * given before (no state file, or one not written at exit): 2^20 a second
 * since 2026-01-01 UTC, above every number given before unless that was
 * more than 2^20 a second on average; below 2^53 (JavaScript's exact
 * integers, and Lua's in Redis) for 270 years
 */
#define NGX_HTTP_MITTE_EVENT_EPOCH      1767225600
#define NGX_HTTP_MITTE_EVENT_RATE_BITS  20

typedef struct {
    uint32_t                    open;       /* streams open */
    uint32_t                    closed;     /* unix s, the last close */
} ngx_http_mitte_watch_t;


/* what a worker publishes of its event stream subscribers */
typedef struct {
    ngx_atomic_t                subscribers;
    ngx_atomic_t                wake;       /* a wake-up is under way */
    ngx_atomic_t                pid;        /* the worker that owns it */
} ngx_http_mitte_worker_t;


#define NGX_HTTP_MITTE_CHANNEL_EMAIL    0
#define NGX_HTTP_MITTE_CHANNEL_WEBHOOK  1

#define NGX_HTTP_MITTE_SEND_PENDING     0
#define NGX_HTTP_MITTE_SEND_SENDING     1
#define NGX_HTTP_MITTE_SEND_SENT        2
#define NGX_HTTP_MITTE_SEND_FAILED      3

/*
 * A send's flags, cluster mode: SHARED, every instance holds the
 * notification and the send is claimed in Redis before each attempt;
 * STANDBY, routed by an instance that did not create it (sent only if
 * the creator does not); UNMARKED, finished here and not yet marked done
 * in Redis.
 */
#define NGX_HTTP_MITTE_SEND_SHARED      0x01
#define NGX_HTTP_MITTE_SEND_STANDBY     0x02
#define NGX_HTTP_MITTE_SEND_UNMARKED    0x04

/* pending sends per channel; finished ones kept for the outbox */
#define NGX_HTTP_MITTE_OUTBOX_PENDING   4096
#define NGX_HTTP_MITTE_OUTBOX_DONE      1000
#define NGX_HTTP_MITTE_ERROR_MAX        128


/*
 * An email or webhook send in the outbox, with what it needs to be sent:
 * a snapshot of the notification and of the user's channel settings.
 * The queue links aside, fixed-width fields, then the variable part:
 * target, secret and message, in that order.
 */
typedef struct {
    ngx_queue_t                 queue;      /* pending FIFO, or done list */
    uint64_t                    created_ms; /* the notification's */
    uint64_t                    updated_ms;
    uint64_t                    next_ms;    /* the next attempt */
    uint32_t                    note_seq;
    uint32_t                    owner;      /* pid of the sender, sending */
    uint32_t                    host_hash;  /* of the url's host, 0: unset */
    uint16_t                    target_len;
    uint16_t                    secret_len;
    uint16_t                    message_len;
    uint16_t                    error_len;
    uint8_t                     channel;
    uint8_t                     state;
    uint8_t                     attempts;
    uint8_t                     type;
    uint8_t                     format;
    uint8_t                     user_len;
    uint8_t                     slug_len;
    uint8_t                     flags;      /* NGX_HTTP_MITTE_SEND_SHARED.. */
    u_char                      user[MITTE_USER_MAX];
    u_char                      slug[MITTE_SLUG_MAX];
    u_char                      error[NGX_HTTP_MITTE_ERROR_MAX];
    u_char                      data[1];
} ngx_http_mitte_send_t;


#define NGX_HTTP_MITTE_USER_WARNED      0x01    /* QUOTA_WARNING this month */
#define NGX_HTTP_MITTE_USER_EXCEEDED    0x02    /* QUOTA_EXCEEDED this month */


typedef struct {
    int64_t                     trial_ends; /* unix s, 0: none */
    int64_t                     trial_noted;/* trial end already noted */
    uint32_t                    month;      /* quota period of "used" */
    uint32_t                    used;
    uint32_t                    seen;       /* unix s, last looked up */
    uint8_t                     plan;       /* mitte_plan_e, last seen */
    uint8_t                     plan_set;   /* a plan was seen */
    uint8_t                     flags;
    uint8_t                     id_len;
    uint8_t                     email_len;
    u_char                      id[MITTE_USER_MAX];
    u_char                      email[MITTE_EMAIL_MAX];
} ngx_http_mitte_user_t;


/* an endpoint copied out of the zone, to be written without the lock */
typedef struct {
    ngx_http_mitte_endpoint_t   ep;
    uint16_t                    last_status;
    u_char                      slug_len;
    u_char                      user_len;
    u_char                      name_len;
    u_char                      name[MITTE_NAME_MAX];
} ngx_http_mitte_endpoint_copy_t;


typedef struct {
    u_char                      color;
    u_char                      dummy;
    ngx_queue_t                 queue;      /* LRU */
    ngx_queue_t                 notes;      /* newest first */
    uint32_t                    nnotes;
    uint32_t                    unread;
    uint32_t                    prefs_off;  /* offset in the zone, 0: none */
    uint32_t                    prefs_rev;  /* cluster mode: the revision
                                               of the preferences held, 0:
                                               none; with
                                               NGX_HTTP_MITTE_PREFS_DIRTY:
                                               saved while Redis could not
                                               take them (in the padding
                                               before "user": the layout
                                               is unchanged) */
    ngx_http_mitte_user_t       user;
} ngx_http_mitte_user_node_t;


#define NGX_HTTP_MITTE_PREFS_DIRTY      0x80000000


typedef struct {
    uint64_t                    success;
    uint64_t                    failure;
    uint64_t                    quota_rejections;
    uint64_t                    evicted_endpoints;
    uint64_t                    evicted_users;
    uint64_t                    endpoints;
    uint64_t                    users;
    uint64_t                    nomem;      /* allocations that failed */
    uint64_t                    notifications[NGX_HTTP_MITTE_NTYPES];
    uint64_t                    sweeps;
    uint64_t                    sweep_usec; /* CPU time of the last sweep */
    uint64_t                    sweep_slice_usec; /* its longest slice */
    uint64_t                    outbox_full[2];   /* by channel */
    uint64_t                    sends[2][2];      /* channel, sent/failed */
    uint64_t                    state_writes[2];  /* written, failed */
    uint64_t                    state_usec;       /* the last write */
    uint64_t                    state_lock_usec;  /* its records, locked */
    uint64_t                    state_bytes;
} ngx_http_mitte_counters_t;


/* cluster mode's counters, kept with atomics (no lock) */
typedef struct {
    ngx_atomic_t                flushes;
    ngx_atomic_t                flush_errors;
    ngx_atomic_t                dropped;    /* deltas the backlog lost */
    ngx_atomic_t                events_out; /* sent to the cluster's stream */
    ngx_atomic_t                events_in;  /* read from it into the ring */
    ngx_atomic_t                entries_bad;/* stream entries refused */
    ngx_atomic_t                sweeps_won;
    ngx_atomic_t                sweeps_lost;
    ngx_atomic_t                relay_seq;  /* the stream's last entry read: */
    ngx_atomic_t                relay_sub;  /* "<seq>-<sub>" */
    ngx_atomic_t                epoch;      /* of the Redis data set last
                                               refilled from this zone */
    ngx_atomic_t                refills;
    ngx_atomic_t                backlog[NGX_HTTP_MITTE_MAX_WORKERS];
} ngx_http_mitte_cluster_counters_t;


typedef struct {
    ngx_uint_t                  version;
    uint64_t                    gen;        /* bumped when a node is freed */
    ngx_rbtree_t                ep_rbtree;
    ngx_rbtree_node_t           ep_sentinel;
    ngx_queue_t                 ep_lru;
    ngx_rbtree_t                user_rbtree;
    ngx_rbtree_node_t           user_sentinel;
    ngx_queue_t                 user_lru;
    uint32_t                    seq;        /* of the last notification */
    ngx_http_mitte_counters_t   counters;

    ngx_http_mitte_event_t     *events;     /* the replay ring */
    ngx_uint_t                  nevents;
    uint64_t                    event_seq;  /* of the newest event */
    uint32_t                    watch_until;/* unix s: every event kept */
    ngx_http_mitte_watch_t      watch_all;  /* "mitte_sse all" streams */
    ngx_http_mitte_watch_t      watch[NGX_HTTP_MITTE_WATCH];
    ngx_http_mitte_worker_t     workers[NGX_HTTP_MITTE_MAX_WORKERS];
    ngx_http_mitte_cluster_counters_t  cluster;

    ngx_queue_t                 pending[2]; /* by channel, oldest first */
    ngx_uint_t                  npending[2];
    ngx_queue_t                 done;       /* newest first */
    ngx_uint_t                  ndone;

    /* cluster mode: endpoints with deltas not yet sent, oldest first */
    ngx_queue_t                 dirty;
    ngx_uint_t                  ndirty;
    ngx_msec_t                  dirty_since;/* the oldest one's first */
    ngx_queue_t                 delta_free;
    ngx_uint_t                  ndelta_free;
} ngx_http_mitte_sh_t;


typedef struct {
    ngx_http_mitte_sh_t        *sh;
    ngx_slab_pool_t            *shpool;
    ngx_uint_t                  nevents;    /* mitte_sse_replay */
    ngx_str_t                   state_file; /* NUL-terminated; "": none */
    ngx_str_t                   state_tmp;  /* "<path>.tmp" */
    ngx_str_t                   state_bad;  /* "<path>.bad" */
    ngx_str_t                   state_dir;
    ngx_msec_t                  state_interval;
    time_t                      state_warned;
    unsigned                    cluster:1;  /* mitte_redis: Redis numbers
                                               the events */
} ngx_http_mitte_zone_ctx_t;


typedef void (*ngx_http_mitte_key_pt)(ngx_rbtree_node_t *node,
    ngx_str_t *name);


/* ngx_http_mitte_zone.c: without the lock */
ngx_rbtree_key_t ngx_http_mitte_key(u_char *p, size_t len);
ngx_int_t ngx_http_mitte_slug_hash(u_char *p, size_t len,
    ngx_rbtree_key_t *hash);
void ngx_http_mitte_cache_reset(void);

/* ngx_http_mitte_zone.c: with the zone locked */
void ngx_http_mitte_endpoint_insert(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel);
void ngx_http_mitte_user_insert(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel);
void *ngx_http_mitte_alloc(ngx_http_mitte_zone_ctx_t *ctx, size_t size,
    void *keep);
void ngx_http_mitte_endpoint_key(ngx_rbtree_node_t *node, ngx_str_t *name);
void ngx_http_mitte_user_key(ngx_rbtree_node_t *node, ngx_str_t *name);
ngx_rbtree_node_t *ngx_http_mitte_tree_after(ngx_rbtree_t *tree,
    ngx_http_mitte_key_pt key, ngx_rbtree_key_t hash, u_char *name,
    size_t len);
ngx_http_mitte_endpoint_node_t *ngx_http_mitte_endpoint_lookup(
    ngx_http_mitte_zone_ctx_t *ctx, u_char *slug, size_t len);
ngx_http_mitte_endpoint_node_t *ngx_http_mitte_endpoint_get(
    ngx_http_mitte_zone_ctx_t *ctx, u_char *slug, size_t len);
ngx_http_mitte_endpoint_node_t *ngx_http_mitte_endpoint_get_hash(
    ngx_http_mitte_zone_ctx_t *ctx, u_char *slug, size_t len,
    ngx_rbtree_key_t hash);
void ngx_http_mitte_endpoint_delete(ngx_http_mitte_zone_ctx_t *ctx,
    ngx_http_mitte_endpoint_node_t *en);
ngx_http_mitte_delta_t *ngx_http_mitte_delta_get(
    ngx_http_mitte_zone_ctx_t *ctx, ngx_http_mitte_endpoint_node_t *en);
void ngx_http_mitte_delta_done(ngx_http_mitte_zone_ctx_t *ctx,
    ngx_http_mitte_delta_t *d);
ngx_int_t ngx_http_mitte_endpoint_set_user(ngx_http_mitte_endpoint_node_t *en,
    ngx_str_t *user);
void ngx_http_mitte_endpoint_set_name(ngx_http_mitte_zone_ctx_t *ctx,
    ngx_http_mitte_endpoint_node_t *en, ngx_str_t *name);
void ngx_http_mitte_endpoint_name(ngx_http_mitte_zone_ctx_t *ctx,
    ngx_http_mitte_endpoint_node_t *en, ngx_str_t *name);
void ngx_http_mitte_endpoint_copy(ngx_http_mitte_zone_ctx_t *ctx,
    ngx_http_mitte_endpoint_node_t *en, ngx_http_mitte_endpoint_copy_t *copy);
ngx_http_mitte_user_node_t *ngx_http_mitte_user_lookup(
    ngx_http_mitte_zone_ctx_t *ctx, u_char *id, size_t len);
ngx_http_mitte_user_node_t *ngx_http_mitte_user_get(
    ngx_http_mitte_zone_ctx_t *ctx, u_char *id, size_t len, void *keep);
ngx_http_mitte_user_node_t *ngx_http_mitte_user_get_hash(
    ngx_http_mitte_zone_ctx_t *ctx, u_char *id, size_t len,
    ngx_rbtree_key_t hash, void *keep);
void ngx_http_mitte_user_roll(ngx_http_mitte_user_t *u, int64_t now);
void ngx_http_mitte_watch(ngx_http_mitte_zone_ctx_t *ctx, u_char *user,
    size_t len, ngx_uint_t all, ngx_int_t n);

/*
 * Whether len bytes at a and b are the same, without a call for the short
 * names of the hot path: 8 bytes at a step, the last step overlapping the
 * one before; 4 to 7 bytes in two overlapping 4-byte loads.
 */

static ngx_inline ngx_uint_t
ngx_http_mitte_same(u_char *a, u_char *b, size_t len)
{
    uint32_t  x4, y4, z4, w4;
    uint64_t  x, y;

    if (len < 4) {
        while (len--) {
            if (a[len] != b[len]) {
                return 0;
            }
        }

        return 1;
    }

    if (len < 8) {
        ngx_memcpy(&x4, a, 4);
        ngx_memcpy(&y4, b, 4);
        ngx_memcpy(&z4, a + len - 4, 4);
        ngx_memcpy(&w4, b + len - 4, 4);

        return x4 == y4 && z4 == w4;
    }

    for ( /* void */ ; len > 8; len -= 8, a += 8, b += 8) {
        ngx_memcpy(&x, a, 8);
        ngx_memcpy(&y, b, 8);

        if (x != y) {
            return 0;
        }
    }

    ngx_memcpy(&x, a + len - 8, 8);
    ngx_memcpy(&y, b + len - 8, 8);

    return x == y;
}


/* a user's watch bucket, by the key's top bits (NGX_HTTP_MITTE_WATCH: 2^10) */
#define ngx_http_mitte_watch_slot(key)                                       \
    ((key) >> (sizeof(ngx_rbtree_key_t) * 8 - 10))


/*
 * With the zone locked: whether a delivery's event goes into the replay
 * ring; of no user, or of a user whose ngx_http_mitte_key() is "hash".
 * Inline: every delivery asks.
 */

static ngx_inline ngx_uint_t
ngx_http_mitte_watched(ngx_http_mitte_zone_ctx_t *ctx, ngx_uint_t user,
    ngx_rbtree_key_t hash, uint32_t now)
{
    ngx_http_mitte_sh_t     *sh;
    ngx_http_mitte_watch_t  *w;

    sh = ctx->sh;

    if (sh->watch_all.open
        || now < sh->watch_until
        || now - sh->watch_all.closed < NGX_HTTP_MITTE_SSE_GAP)
    {
        return 1;
    }

    if (!user) {
        return 0;
    }

    w = &sh->watch[ngx_http_mitte_watch_slot(hash)];

    return w->open || now - w->closed < NGX_HTTP_MITTE_SSE_GAP;
}


/* ngx_http_mitte_zone_start.c: the zone's init, named in postconfiguration */
ngx_int_t ngx_http_mitte_init_zone(ngx_shm_zone_t *shm_zone, void *data);


#endif /* _NGX_HTTP_MITTE_ZONE_H_INCLUDED_ */
