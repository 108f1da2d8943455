/*
 * Copyright (C) ngx_mitte_module authors
 */


#ifndef _NGX_HTTP_MITTE_MODULE_H_INCLUDED_
#define _NGX_HTTP_MITTE_MODULE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "mitte_ring.h"
#include "mitte_streak.h"
#include "mitte_time.h"
#include "mitte_util.h"
#include "mitte_anomaly.h"
#include "mitte_addr.h"
#include "mitte_prefs.h"


/* layout version of the zone's structures; a new layout needs a restart */
#define NGX_HTTP_MITTE_ZONE_VERSION     2

#define NGX_HTTP_MITTE_BODY_MAX         65536

/* the most one endpoint takes in JSON: names escaped, 49 hours */
#define NGX_HTTP_MITTE_ENDPOINT_JSON    8192


/*
 * A value from the configuration: a complex value, with a fast path for
 * the common case of exactly one variable ("$slug"), and a faster one for
 * a request header ("$http_x_mitte_user").
 */
typedef struct {
    ngx_http_complex_value_t    cv;
    ngx_int_t                   index;      /* NGX_ERROR: not one variable */
    ngx_str_t                   header;     /* "$http_x_a": "x-a", else "" */
    ngx_uint_t                  header_hash;
} ngx_http_mitte_value_t;


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
    ngx_http_mitte_endpoint_t   ep;
} ngx_http_mitte_endpoint_node_t;


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
    uint8_t                     reserved;
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
    ngx_http_mitte_user_t       user;
} ngx_http_mitte_user_node_t;


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


typedef struct {
    ngx_uint_t                  version;
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
    ngx_http_mitte_worker_t     workers[NGX_HTTP_MITTE_MAX_WORKERS];

    ngx_queue_t                 pending[2]; /* by channel, oldest first */
    ngx_uint_t                  npending[2];
    ngx_queue_t                 done;       /* newest first */
    ngx_uint_t                  ndone;
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
} ngx_http_mitte_zone_ctx_t;


/* the zone's state as records (ngx_http_mitte_state.c) */
typedef struct {
    u_char                     *data;
    size_t                      len;
    size_t                      size;
    ngx_log_t                  *log;
    ngx_uint_t                  failed;
    uint64_t                    start;      /* usec, monotonic */
    uint64_t                    longest;    /* usec the lock was held */
} ngx_http_mitte_records_t;


/* what records brought into a zone */
typedef struct {
    ngx_uint_t                  endpoints;  /* read */
    ngx_uint_t                  endpoints_kept;
    ngx_uint_t                  users;
    ngx_uint_t                  users_kept;
    ngx_uint_t                  notes;
    ngx_uint_t                  sends;
    ngx_uint_t                  events;
    ngx_uint_t                  lost;       /* did not fit */
    ngx_log_t                  *log;
} ngx_http_mitte_loaded_t;


typedef struct {
    ngx_uint_t                  limit;
    ngx_uint_t                  warn;       /* percent */
} ngx_http_mitte_quota_t;


typedef struct {
    ngx_shm_zone_t             *shm_zone;
    ngx_http_mitte_quota_t      quota[MITTE_PLAN_N];
    ngx_uint_t                  down_threshold;
    ngx_msec_t                  down_reset;
    time_t                      warned;     /* last "at most once a minute"
                                               warning of this process */

    ngx_flag_t                  anomaly_on;
    ngx_msec_t                  sweep_interval;
    mitte_anomaly_conf_t        anomaly;
    time_t                      cooldown;
    time_t                      trial_notice;       /* 0: off */
    ngx_uint_t                  notes_keep;
    ngx_str_t                   email_key_file;
    ngx_str_t                   email_key;          /* empty: no email */
    ngx_uint_t                  sse_replay;
    ngx_int_t                   request_id_index;
    ngx_array_t                *webhook_allow;      /* of mitte_cidr_t */
    ngx_str_t                   email_api;
    ngx_str_t                   email_from;
    ngx_msec_t                  webhook_timeout;
    ngx_uint_t                  delivery_retries;

} ngx_http_mitte_main_conf_t;


#define NGX_HTTP_MITTE_HANDLER_STATS    1
#define NGX_HTTP_MITTE_HANDLER_ADMIN    2


typedef struct {
    ngx_http_mitte_value_t     *endpoint;
    ngx_http_mitte_value_t     *endpoint_name;
    ngx_http_mitte_value_t     *user;
    ngx_http_mitte_value_t     *plan;
    ngx_http_mitte_value_t     *trial_ends;
    ngx_http_mitte_value_t     *email;
    mitte_status_set_t         *success;
    ngx_flag_t                  enforce;
    ngx_uint_t                  enforce_status;
    ngx_uint_t                  all;        /* "mitte_stats all" */
    ngx_uint_t                  sse_all;    /* "mitte_sse all" */
    ngx_msec_t                  heartbeat;
} ngx_http_mitte_loc_conf_t;


/*
 * What the precontent phase learnt, for the log phase: the values point
 * into the request's memory (variables' values live as long as it does).
 */
typedef struct {
    ngx_str_t                   slug;       /* empty: not a delivery */
    ngx_str_t                   user;
    void                       *sub;        /* an event stream's subscriber */
    u_char                      rid[32];    /* $request_id, when made here */
} ngx_http_mitte_ctx_t;


/* what a delivery brings to the zone */
typedef struct {
    ngx_str_t                   slug;
    ngx_str_t                   user;
    ngx_str_t                   name;
    ngx_str_t                   method;
    ngx_str_t                   rid;
    ngx_uint_t                  status;
    ngx_uint_t                  success;
    ngx_msec_t                  duration;
    uint64_t                    now_ms;
} ngx_http_mitte_delivery_t;


/* what a request brings to the quota */
typedef struct {
    ngx_str_t                   user;
    ngx_int_t                   plan;       /* -1: not given */
    int64_t                     trial_ends; /* -1: not given */
    ngx_str_t                   email;      /* empty: not given */
    int64_t                     now;
    uint64_t                    now_ms;
} ngx_http_mitte_visit_t;


typedef enum {
    NGX_HTTP_MITTE_QUOTA_PASS = 0,
    NGX_HTTP_MITTE_QUOTA_REFUSE,
    NGX_HTTP_MITTE_QUOTA_UNKNOWN            /* the zone could not say */
} ngx_http_mitte_quota_e;


typedef void (*ngx_http_mitte_key_pt)(ngx_rbtree_node_t *node,
    ngx_str_t *name);


extern ngx_module_t  ngx_http_mitte_module;


/* ngx_http_mitte_lifecycle.c: named by the module definition */
ngx_int_t ngx_http_mitte_init(ngx_conf_t *cf);
ngx_int_t ngx_http_mitte_init_module(ngx_cycle_t *cycle);
ngx_int_t ngx_http_mitte_init_process(ngx_cycle_t *cycle);
void ngx_http_mitte_exit_process(ngx_cycle_t *cycle);
void ngx_http_mitte_exit_master(ngx_cycle_t *cycle);

/* ngx_http_mitte_module.c */
ngx_int_t ngx_http_mitte_value(ngx_http_request_t *r,
    ngx_http_mitte_value_t *val, ngx_str_t *value);
ngx_table_elt_t *ngx_http_mitte_header_in(ngx_http_request_t *r,
    u_char *name, size_t len, ngx_uint_t hash, ngx_uint_t dashes);

/* ngx_http_mitte_zone_start.c */
ngx_int_t ngx_http_mitte_init_zone(ngx_shm_zone_t *shm_zone, void *data);

/* ngx_http_mitte_state.c */
ngx_int_t ngx_http_mitte_state_dump(ngx_http_mitte_zone_ctx_t *ctx,
    ngx_http_mitte_records_t *rs);
ngx_int_t ngx_http_mitte_state_load(ngx_http_mitte_zone_ctx_t *ctx,
    u_char *p, size_t len, ngx_uint_t restart, ngx_http_mitte_loaded_t *ld);
void ngx_http_mitte_records_free(ngx_http_mitte_records_t *rs);
void ngx_http_mitte_state_restore(ngx_shm_zone_t *shm_zone,
    ngx_http_mitte_zone_ctx_t *ctx);
ngx_int_t ngx_http_mitte_state_init_process(ngx_cycle_t *cycle);
void ngx_http_mitte_state_exit_master(ngx_cycle_t *cycle);

/* ngx_http_mitte_zone.c */
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
void ngx_http_mitte_endpoint_delete(ngx_http_mitte_zone_ctx_t *ctx,
    ngx_http_mitte_endpoint_node_t *en);
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
void ngx_http_mitte_user_roll(ngx_http_mitte_user_t *u, int64_t now);

/* ngx_http_mitte_rules.c */
ngx_http_mitte_quota_e ngx_http_mitte_rules_visit(
    ngx_http_mitte_main_conf_t *mmcf, ngx_http_mitte_visit_t *v,
    ngx_uint_t enforce, ngx_uint_t *limit);
ngx_int_t ngx_http_mitte_rules_deliver(ngx_http_mitte_main_conf_t *mmcf,
    ngx_http_mitte_delivery_t *d);
void ngx_http_mitte_rules_sweep_endpoint(ngx_http_mitte_main_conf_t *mmcf,
    ngx_http_mitte_zone_ctx_t *ctx, ngx_http_mitte_endpoint_node_t *en,
    int64_t now, ngx_uint_t *notes);
void ngx_http_mitte_rules_sweep_user(ngx_http_mitte_main_conf_t *mmcf,
    ngx_http_mitte_zone_ctx_t *ctx, ngx_http_mitte_user_node_t *un,
    int64_t now, ngx_uint_t *notes);

/* ngx_http_mitte_record.c */
ngx_http_mitte_main_conf_t *ngx_http_mitte_process_conf(ngx_cycle_t *cycle,
    ngx_uint_t first);
ngx_int_t ngx_http_mitte_record_init_process(ngx_cycle_t *cycle);
ngx_int_t ngx_http_mitte_precontent_handler(ngx_http_request_t *r);
ngx_int_t ngx_http_mitte_log_handler(ngx_http_request_t *r);

/* ngx_http_mitte_api.c */
ngx_int_t ngx_http_mitte_arg(ngx_http_request_t *r, char *name,
    ngx_str_t *value);
ngx_int_t ngx_http_mitte_reply(ngx_http_request_t *r, ngx_uint_t status,
    ngx_str_t *type, ngx_chain_t *out);
ngx_int_t ngx_http_mitte_reply_json(ngx_http_request_t *r, ngx_uint_t status,
    ngx_chain_t *out);
ngx_int_t ngx_http_mitte_reply_error(ngx_http_request_t *r,
    ngx_uint_t status, const char *code, const char *message);
ngx_int_t ngx_http_mitte_reply_not_allowed(ngx_http_request_t *r,
    const char *allow);
ngx_int_t ngx_http_mitte_reply_buf(ngx_http_request_t *r, ngx_uint_t status,
    ngx_buf_t *b);
ngx_int_t ngx_http_mitte_caller(ngx_http_request_t *r, ngx_str_t *user);
ngx_int_t ngx_http_mitte_reply_unauthorized(ngx_http_request_t *r);
void ngx_http_mitte_subpath(ngx_http_request_t *r, ngx_str_t *path);
ngx_int_t ngx_http_mitte_body_or_error(ngx_http_request_t *r,
    ngx_str_t *body, ngx_int_t *rc);
ngx_int_t ngx_http_mitte_read_body(ngx_http_request_t *r,
    ngx_http_client_body_handler_pt handler);
ngx_chain_t *ngx_http_mitte_chain(ngx_http_request_t *r, ngx_chain_t **last,
    size_t need);
ngx_int_t ngx_http_mitte_write(ngx_http_request_t *r, ngx_chain_t **last,
    u_char *s, size_t len);
u_char *ngx_http_mitte_json_str(u_char *p, u_char *s, size_t len);
u_char *ngx_http_mitte_json_str_null(u_char *p, u_char *s, size_t len);
size_t ngx_http_mitte_json_str_len(u_char *s, size_t len);
u_char *ngx_http_mitte_json_time(u_char *p, int64_t unix_ms);

/* ngx_http_mitte_stats.c */
ngx_int_t ngx_http_mitte_stats_handler(ngx_http_request_t *r);
ngx_int_t ngx_http_mitte_write_endpoints(ngx_http_request_t *r,
    ngx_http_mitte_zone_ctx_t *ctx, ngx_str_t *user, ngx_str_t *filter,
    ngx_chain_t **last, uint32_t now_hour);
ngx_int_t ngx_http_mitte_write_endpoint(ngx_http_request_t *r,
    ngx_http_mitte_endpoint_copy_t *en, ngx_chain_t **last,
    uint32_t now_hour);
ngx_int_t ngx_http_mitte_write_quota(ngx_http_request_t *r,
    ngx_http_mitte_main_conf_t *mmcf, ngx_http_mitte_user_t *u,
    int64_t now, ngx_chain_t **last);

/* ngx_http_mitte_notify.c */
ngx_int_t ngx_http_mitte_notify(ngx_http_mitte_main_conf_t *mmcf,
    ngx_http_mitte_zone_ctx_t *ctx, ngx_http_mitte_user_node_t *un,
    ngx_uint_t type, u_char *slug, size_t slug_len, u_char *msg,
    size_t msg_len, uint64_t now_ms, void *keep);

/* ngx_http_mitte_notifications.c */
ngx_int_t ngx_http_mitte_notifications_handler(ngx_http_request_t *r);

/* ngx_http_mitte_sweep.c */
ngx_int_t ngx_http_mitte_sweep_init_process(ngx_cycle_t *cycle);
ngx_int_t ngx_http_mitte_sweep_request(ngx_http_request_t *r);

/* ngx_http_mitte_outbox.c */
void ngx_http_mitte_outbox_route(ngx_http_mitte_main_conf_t *mmcf,
    ngx_http_mitte_zone_ctx_t *ctx, ngx_http_mitte_user_node_t *un,
    ngx_http_mitte_notification_t *n, void *keep);

/* ngx_http_mitte_reply.c */
ngx_int_t ngx_http_mitte_send_init_module(ngx_cycle_t *cycle);
ngx_int_t ngx_http_mitte_send_init_process(ngx_cycle_t *cycle);
void ngx_http_mitte_send_exit_process(ngx_cycle_t *cycle);

/* ngx_http_mitte_prefs.c */
ngx_int_t ngx_http_mitte_prefs_handler(ngx_http_request_t *r);

/* ngx_http_mitte_events.c */
ngx_int_t ngx_http_mitte_events_init(ngx_shm_zone_t *shm_zone,
    ngx_http_mitte_zone_ctx_t *ctx);
void ngx_http_mitte_event_delivered(ngx_http_mitte_zone_ctx_t *ctx,
    ngx_http_mitte_delivery_t *d, ngx_http_mitte_endpoint_node_t *en);
void ngx_http_mitte_event_notification(ngx_http_mitte_zone_ctx_t *ctx,
    ngx_str_t *user, ngx_http_mitte_notification_t *n);
ngx_uint_t ngx_http_mitte_events_copy(ngx_http_mitte_zone_ctx_t *ctx,
    uint64_t after, ngx_http_mitte_event_t *out, ngx_uint_t max,
    uint64_t *head);
u_char *ngx_http_mitte_event_frame(u_char *p, ngx_http_mitte_event_t *e);

/* ngx_http_mitte_sse_wake.c */
extern int  ngx_http_mitte_sse_fds[NGX_HTTP_MITTE_MAX_WORKERS];
extern ngx_uint_t  ngx_http_mitte_sse_nfds;
ngx_int_t ngx_http_mitte_sse_init_module(ngx_cycle_t *cycle);
void ngx_http_mitte_sse_wake(ngx_http_mitte_zone_ctx_t *ctx);
void ngx_http_mitte_sse_wake_local(ngx_event_t *drain);

/* ngx_http_mitte_sse.c */
ngx_int_t ngx_http_mitte_sse_init_process(ngx_cycle_t *cycle);
void ngx_http_mitte_sse_exit_process(ngx_cycle_t *cycle);
ngx_int_t ngx_http_mitte_sse_handler(ngx_http_request_t *r);

/* ngx_http_mitte_admin.c */
ngx_int_t ngx_http_mitte_admin_handler(ngx_http_request_t *r);


#endif /* _NGX_HTTP_MITTE_MODULE_H_INCLUDED_ */
