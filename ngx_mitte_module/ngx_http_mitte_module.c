/*
 * Copyright (C) ngx_mitte_module authors
 *
 * Module definition, directives and configuration.
 */


#include "ngx_http_mitte_module.h"


typedef struct ngx_http_mitte_param_s  ngx_http_mitte_param_t;

typedef ngx_int_t (*ngx_http_mitte_param_pt)(ngx_str_t *v, char *field,
    ngx_http_mitte_param_t *p);

/* a key=value parameter of a directive, and the field it sets */
struct ngx_http_mitte_param_s {
    ngx_str_t                   name;
    ngx_http_mitte_param_pt     parse;
    size_t                      offset;     /* in the main configuration */
    ngx_int_t                   min;
    ngx_int_t                   max;
};


static void *ngx_http_mitte_create_main_conf(ngx_conf_t *cf);
static char *ngx_http_mitte_init_main_conf(ngx_conf_t *cf, void *conf);
static void *ngx_http_mitte_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_mitte_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child);

static char *ngx_http_mitte_state_file(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_mitte_zone(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_mitte_set_value(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_mitte_success_status(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_http_mitte_quota(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_mitte_quota_enforce(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_mitte_endpoint_down(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_mitte_webhook_allow(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_mitte_anomaly(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_mitte_trial_notice(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_mitte_handler(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_mitte_need_zone(ngx_conf_t *cf, ngx_command_t *cmd);
static char *ngx_http_mitte_conf_num(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_mitte_conf_msec(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_mitte_conf_value(ngx_conf_t *cf, ngx_command_t *cmd,
    char *rv);
static ngx_int_t ngx_http_mitte_read_key(ngx_conf_t *cf,
    ngx_http_mitte_main_conf_t *mmcf);


static char *ngx_http_mitte_conf_params(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf, ngx_http_mitte_param_t *params, const char *expected,
    ngx_uint_t *off);
static ngx_int_t ngx_http_mitte_param_msec(ngx_str_t *v, char *field,
    ngx_http_mitte_param_t *p);
static ngx_int_t ngx_http_mitte_param_sec(ngx_str_t *v, char *field,
    ngx_http_mitte_param_t *p);
static ngx_int_t ngx_http_mitte_param_hours(ngx_str_t *v, char *field,
    ngx_http_mitte_param_t *p);
static ngx_int_t ngx_http_mitte_param_uint(ngx_str_t *v, char *field,
    ngx_http_mitte_param_t *p);
static ngx_int_t ngx_http_mitte_param_uint32(ngx_str_t *v, char *field,
    ngx_http_mitte_param_t *p);
static ngx_int_t ngx_http_mitte_param_number(ngx_str_t *v, char *field,
    ngx_http_mitte_param_t *p);
static ngx_int_t ngx_http_mitte_param_percent(ngx_str_t *v, char *field,
    ngx_http_mitte_param_t *p);


#define ngx_http_mitte_mcf(field)                                            \
    offsetof(ngx_http_mitte_main_conf_t, field)


static ngx_http_mitte_param_t  ngx_http_mitte_down_params[] = {
    { ngx_string("threshold"), ngx_http_mitte_param_uint,
      ngx_http_mitte_mcf(down_threshold), 1, 1000000 },
    { ngx_string("reset"), ngx_http_mitte_param_msec,
      ngx_http_mitte_mcf(down_reset), 1, 0 },
    { ngx_null_string, NULL, 0, 0, 0 }
};


static ngx_http_mitte_param_t  ngx_http_mitte_anomaly_params[] = {
    { ngx_string("interval"), ngx_http_mitte_param_msec,
      ngx_http_mitte_mcf(sweep_interval), 1000, 0 },
    { ngx_string("window"), ngx_http_mitte_param_hours,
      ngx_http_mitte_mcf(anomaly.window), 1, MITTE_RING_HISTORY },
    { ngx_string("history"), ngx_http_mitte_param_hours,
      ngx_http_mitte_mcf(anomaly.history), 1, MITTE_RING_HISTORY },
    { ngx_string("zscore"), ngx_http_mitte_param_number,
      ngx_http_mitte_mcf(anomaly.zscore), 0, 0 },
    { ngx_string("zscore_min_requests"), ngx_http_mitte_param_uint32,
      ngx_http_mitte_mcf(anomaly.zscore_min_requests), 1, 1000000000 },
    { ngx_string("rate"), ngx_http_mitte_param_percent,
      ngx_http_mitte_mcf(anomaly.rate), 0, 0 },
    { ngx_string("rate_min_requests"), ngx_http_mitte_param_uint32,
      ngx_http_mitte_mcf(anomaly.rate_min_requests), 1, 1000000000 },
    { ngx_string("cooldown"), ngx_http_mitte_param_sec,
      ngx_http_mitte_mcf(cooldown), 0, 0 },
    { ngx_null_string, NULL, 0, 0, 0 }
};


static ngx_command_t  ngx_http_mitte_commands[] = {

    { ngx_string("mitte_zone"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_mitte_zone,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("mitte_endpoint"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_mitte_set_value,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_mitte_loc_conf_t, endpoint),
      NULL },

    { ngx_string("mitte_endpoint_name"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_mitte_set_value,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_mitte_loc_conf_t, endpoint_name),
      NULL },

    { ngx_string("mitte_user"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_mitte_set_value,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_mitte_loc_conf_t, user),
      NULL },

    { ngx_string("mitte_user_plan"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_mitte_set_value,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_mitte_loc_conf_t, plan),
      NULL },

    { ngx_string("mitte_user_trial_ends"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_mitte_set_value,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_mitte_loc_conf_t, trial_ends),
      NULL },

    { ngx_string("mitte_user_email"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_mitte_set_value,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_mitte_loc_conf_t, email),
      NULL },

    { ngx_string("mitte_success_status"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_mitte_success_status,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("mitte_quota"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE23,
      ngx_http_mitte_quota,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("mitte_quota_enforce"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE12,
      ngx_http_mitte_quota_enforce,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("mitte_endpoint_down"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE12,
      ngx_http_mitte_endpoint_down,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("mitte_anomaly"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_http_mitte_anomaly,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("mitte_trial_notice"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_mitte_trial_notice,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("mitte_notifications_keep"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_mitte_conf_num,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_mitte_main_conf_t, notes_keep),
      NULL },

    { ngx_string("mitte_email_key_file"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_mitte_main_conf_t, email_key_file),
      NULL },

    { ngx_string("mitte_email_api"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_mitte_main_conf_t, email_api),
      NULL },

    { ngx_string("mitte_email_from"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_mitte_main_conf_t, email_from),
      NULL },

    { ngx_string("mitte_webhook_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_mitte_conf_msec,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_mitte_main_conf_t, webhook_timeout),
      NULL },

    { ngx_string("mitte_delivery_retries"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_mitte_conf_num,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_mitte_main_conf_t, delivery_retries),
      NULL },

    { ngx_string("mitte_notifications"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_mitte_handler,
      NGX_HTTP_LOC_CONF_OFFSET,
      NGX_CONF_UNSET_UINT,
      ngx_http_mitte_notifications_handler },

    { ngx_string("mitte_preferences"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_mitte_handler,
      NGX_HTTP_LOC_CONF_OFFSET,
      NGX_CONF_UNSET_UINT,
      ngx_http_mitte_prefs_handler },

    { ngx_string("mitte_webhook_allow"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_http_mitte_webhook_allow,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("mitte_sse"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS|NGX_CONF_TAKE1,
      ngx_http_mitte_handler,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_mitte_loc_conf_t, sse_all),
      ngx_http_mitte_sse_handler },

    { ngx_string("mitte_sse_heartbeat"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_mitte_conf_msec,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_mitte_loc_conf_t, heartbeat),
      NULL },

    { ngx_string("mitte_state_file"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE12,
      ngx_http_mitte_state_file,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("mitte_sse_replay"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_mitte_conf_num,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_mitte_main_conf_t, sse_replay),
      NULL },

    { ngx_string("mitte_redis"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_http_mitte_redis,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("mitte_stats"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS|NGX_CONF_TAKE1,
      ngx_http_mitte_handler,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_mitte_loc_conf_t, all),
      ngx_http_mitte_stats_handler },

    { ngx_string("mitte_admin"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_mitte_handler,
      NGX_HTTP_LOC_CONF_OFFSET,
      NGX_CONF_UNSET_UINT,
      ngx_http_mitte_admin_handler },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_mitte_module_ctx = {
    NULL,                                  /* preconfiguration */
    ngx_http_mitte_init,                   /* postconfiguration */

    ngx_http_mitte_create_main_conf,       /* create main configuration */
    ngx_http_mitte_init_main_conf,         /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_mitte_create_loc_conf,        /* create location configuration */
    ngx_http_mitte_merge_loc_conf          /* merge location configuration */
};


ngx_module_t  ngx_http_mitte_module = {
    NGX_MODULE_V1,
    &ngx_http_mitte_module_ctx,            /* module context */
    ngx_http_mitte_commands,               /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    ngx_http_mitte_init_module,            /* init module */
    ngx_http_mitte_init_process,           /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_http_mitte_exit_process,           /* exit process */
    ngx_http_mitte_exit_master,            /* exit master */
    NGX_MODULE_V1_PADDING
};


static ngx_uint_t  ngx_http_mitte_default_quota[MITTE_PLAN_N] = {
    5000, 250000, 250000
};


static void *
ngx_http_mitte_create_main_conf(ngx_conf_t *cf)
{
    ngx_uint_t                   i;
    ngx_http_mitte_main_conf_t  *mmcf;

    mmcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_mitte_main_conf_t));
    if (mmcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     mmcf->shm_zone = NULL;
     */

    for (i = 0; i < MITTE_PLAN_N; i++) {
        mmcf->quota[i].limit = NGX_CONF_UNSET_UINT;
        mmcf->quota[i].warn = NGX_CONF_UNSET_UINT;
    }

    mmcf->down_threshold = NGX_CONF_UNSET_UINT;
    mmcf->down_reset = NGX_CONF_UNSET_MSEC;

    mmcf->anomaly_on = NGX_CONF_UNSET;
    mmcf->sweep_interval = NGX_CONF_UNSET_MSEC;
    mmcf->cooldown = NGX_CONF_UNSET;
    mmcf->trial_notice = NGX_CONF_UNSET;
    mmcf->notes_keep = NGX_CONF_UNSET_UINT;
    mmcf->sse_replay = NGX_CONF_UNSET_UINT;
    mmcf->request_id_index = NGX_ERROR;
    mmcf->webhook_timeout = NGX_CONF_UNSET_MSEC;
    mmcf->delivery_retries = NGX_CONF_UNSET_UINT;

    mitte_anomaly_conf_default(&mmcf->anomaly);

    return mmcf;
}


static char *
ngx_http_mitte_init_main_conf(ngx_conf_t *cf, void *conf)
{
    ngx_http_mitte_main_conf_t  *mmcf = conf;

    ngx_uint_t                  i;
    ngx_http_mitte_zone_ctx_t  *ctx;

    for (i = 0; i < MITTE_PLAN_N; i++) {
        ngx_conf_init_uint_value(mmcf->quota[i].limit,
                                 ngx_http_mitte_default_quota[i]);
        ngx_conf_init_uint_value(mmcf->quota[i].warn, 90);
    }

    ngx_conf_init_uint_value(mmcf->down_threshold, 5);
    ngx_conf_init_msec_value(mmcf->down_reset, 3600000);

    ngx_conf_init_value(mmcf->anomaly_on, 1);
    ngx_conf_init_msec_value(mmcf->sweep_interval, 600000);
    ngx_conf_init_value(mmcf->cooldown, 3600);
    ngx_conf_init_value(mmcf->trial_notice, 3 * 86400);
    ngx_conf_init_uint_value(mmcf->notes_keep, 200);

    if (mmcf->notes_keep < 1 || mmcf->notes_keep > 10000) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid \"mitte_notifications_keep\" %ui, "
                           "expected 1..10000", mmcf->notes_keep);
        return NGX_CONF_ERROR;
    }

    ngx_conf_init_uint_value(mmcf->sse_replay, 1024);
    ngx_conf_init_msec_value(mmcf->webhook_timeout, 5000);
    ngx_conf_init_uint_value(mmcf->delivery_retries, 5);

    if (mmcf->email_api.data == NULL) {
        ngx_str_set(&mmcf->email_api, "https://api.resend.com/emails");
    }

    if (mmcf->email_from.data == NULL) {
        ngx_str_set(&mmcf->email_from, "Mitte <notifications@mitte.dev>");
    }

    if (ngx_strncasecmp(mmcf->email_api.data, (u_char *) "http://", 7) != 0
        && ngx_strncasecmp(mmcf->email_api.data, (u_char *) "https://", 8)
           != 0)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid \"mitte_email_api\" \"%V\", expected "
                           "an http or https URL", &mmcf->email_api);
        return NGX_CONF_ERROR;
    }

    if (mmcf->webhook_timeout < 100) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"mitte_webhook_timeout\" must be at least "
                           "100ms");
        return NGX_CONF_ERROR;
    }

    if (mmcf->delivery_retries > 20) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid \"mitte_delivery_retries\" %ui, "
                           "expected 0..20", mmcf->delivery_retries);
        return NGX_CONF_ERROR;
    }

    if (mmcf->sse_replay < 16 || mmcf->sse_replay > 1000000) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid \"mitte_sse_replay\" %ui, "
                           "expected 16..1000000", mmcf->sse_replay);
        return NGX_CONF_ERROR;
    }

    if (mmcf->shm_zone == NULL) {
        return NGX_CONF_OK;
    }

    ctx = mmcf->shm_zone->data;
    ctx->nevents = mmcf->sse_replay;
    ctx->cluster = (mmcf->redis != NULL);

    if (ngx_http_mitte_read_key(cf, mmcf) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static void *
ngx_http_mitte_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_mitte_loc_conf_t  *mlcf;

    mlcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_mitte_loc_conf_t));
    if (mlcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     mlcf->all = 0;
     */

    mlcf->endpoint = NGX_CONF_UNSET_PTR;
    mlcf->endpoint_name = NGX_CONF_UNSET_PTR;
    mlcf->user = NGX_CONF_UNSET_PTR;
    mlcf->plan = NGX_CONF_UNSET_PTR;
    mlcf->trial_ends = NGX_CONF_UNSET_PTR;
    mlcf->email = NGX_CONF_UNSET_PTR;
    mlcf->success = NGX_CONF_UNSET_PTR;
    mlcf->enforce = NGX_CONF_UNSET;
    mlcf->enforce_status = NGX_CONF_UNSET_UINT;
    mlcf->heartbeat = NGX_CONF_UNSET_MSEC;

    return mlcf;
}


static char *
ngx_http_mitte_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_mitte_loc_conf_t *prev = parent;
    ngx_http_mitte_loc_conf_t *conf = child;

    mitte_status_set_t  *set;

    ngx_conf_merge_ptr_value(conf->endpoint, prev->endpoint, NULL);
    ngx_conf_merge_ptr_value(conf->endpoint_name, prev->endpoint_name, NULL);
    ngx_conf_merge_ptr_value(conf->user, prev->user, NULL);
    ngx_conf_merge_ptr_value(conf->plan, prev->plan, NULL);
    ngx_conf_merge_ptr_value(conf->trial_ends, prev->trial_ends, NULL);
    ngx_conf_merge_ptr_value(conf->email, prev->email, NULL);
    ngx_conf_merge_value(conf->enforce, prev->enforce, 1);
    ngx_conf_merge_uint_value(conf->enforce_status, prev->enforce_status,
                              NGX_HTTP_TOO_MANY_REQUESTS);

    ngx_conf_merge_msec_value(conf->heartbeat, prev->heartbeat, 15000);

    if (conf->heartbeat < 100) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"mitte_sse_heartbeat\" must be at least 100ms");
        return NGX_CONF_ERROR;
    }

    ngx_conf_merge_ptr_value(conf->success, prev->success, NULL);

    if (conf->success == NULL) {
        set = ngx_palloc(cf->pool, sizeof(mitte_status_set_t));
        if (set == NULL) {
            return NGX_CONF_ERROR;
        }

        mitte_status_set_clear(set);
        (void) mitte_status_set_add(set, "200-299", sizeof("200-299") - 1);

        conf->success = set;
        prev->success = set;
    }

    return NGX_CONF_OK;
}


ngx_int_t
ngx_http_mitte_value(ngx_http_request_t *r, ngx_http_mitte_value_t *val,
    ngx_str_t *value)
{
    ngx_table_elt_t            *h;
    ngx_http_variable_value_t  *vv;

    if (val->header.len) {

        /*
         * nginx's $http_ variable compares each header's name letter by
         * letter; the parser has already hashed and lowercased them. The
         * same header as the variable would find, in one pass.
         */

        h = ngx_http_mitte_header_in(r, val->header.data, val->header.len,
                                     val->header_hash, 1);
        if (h) {
            *value = h->value;

        } else {
            ngx_str_null(value);
        }

        return NGX_OK;
    }

    if (val->index == NGX_ERROR) {
        return ngx_http_complex_value(r, &val->cv, value);
    }

    vv = ngx_http_get_flushed_variable(r, val->index);

    if (vv == NULL || vv->not_found) {
        ngx_str_null(value);
        return NGX_OK;
    }

    value->data = vv->data;
    value->len = vv->len;

    return NGX_OK;
}


/*
 * A request header by its name in lowercase and nginx's hash of that name
 * (ngx_hash_key()), as the parser made them for each header; the first.
 * "dashes": name is that of a $http_ variable, with "-" for "_", and a
 * header matches as nginx's variable would match it, "_" standing for
 * "-" (only servers with underscores_in_headers, or that keep invalid
 * headers, let such names through).
 */

ngx_table_elt_t *
ngx_http_mitte_header_in(ngx_http_request_t *r, u_char *name, size_t len,
    ngx_uint_t hash, ngx_uint_t dashes)
{
    size_t            k;
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    part = &r->headers_in.headers.part;
    h = part->elts;

    for (i = 0; /* void */ ; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                return NULL;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].key.len != len || h[i].hash == 0) {
            continue;
        }

        if (h[i].hash == hash
            && ngx_http_mitte_same(h[i].lowcase_key, name, len))
        {
            return &h[i];
        }

        if (!dashes) {
            continue;
        }

        /* most names differ at once: no search for a "_" first */

        for (k = 0; k < len; k++) {
            if (h[i].lowcase_key[k] != name[k]
                && !(h[i].lowcase_key[k] == '_' && name[k] == '-'))
            {
                break;
            }
        }

        if (k == len) {
            return &h[i];
        }
    }
}


/*
 * The module's configuration in a process that serves requests, a worker
 * (worker 0 alone when "first") or nginx without a master, when a zone is
 * configured; else NULL: the process has nothing to set up.
 */

ngx_http_mitte_main_conf_t *
ngx_http_mitte_process_conf(ngx_cycle_t *cycle, ngx_uint_t first)
{
    ngx_http_mitte_main_conf_t  *mmcf;

    if (ngx_process != NGX_PROCESS_WORKER
        && ngx_process != NGX_PROCESS_SINGLE)
    {
        return NULL;
    }

    if (first && ngx_worker != 0) {
        return NULL;
    }

    mmcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_mitte_module);

    if (mmcf == NULL || mmcf->shm_zone == NULL) {
        return NULL;
    }

    return mmcf;
}


static char *
ngx_http_mitte_need_zone(ngx_conf_t *cf, ngx_command_t *cmd)
{
    ngx_http_mitte_main_conf_t  *mmcf;

    mmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_mitte_module);

    if (mmcf->shm_zone == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\" requires \"mitte_zone\" to be set "
                           "before it in the http block", &cmd->name);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_mitte_zone(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_mitte_main_conf_t *mmcf = conf;

    u_char                     *p;
    ssize_t                     size;
    ngx_str_t                  *value, name, s;
    ngx_http_mitte_zone_ctx_t  *ctx;

    if (mmcf->shm_zone) {
        return "is duplicate";
    }

    value = cf->args->elts;

    p = (u_char *) ngx_strchr(value[1].data, ':');

    if (p == NULL || p == value[1].data) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid zone \"%V\" in \"mitte_zone\", "
                           "expected name:size", &value[1]);
        return NGX_CONF_ERROR;
    }

    name.data = value[1].data;
    name.len = p - value[1].data;

    s.data = p + 1;
    s.len = value[1].data + value[1].len - s.data;

    size = ngx_parse_size(&s);

    if (size == NGX_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid zone size \"%V\" in \"mitte_zone\"",
                           &value[1]);
        return NGX_CONF_ERROR;
    }

    if (size < (ssize_t) (8 * ngx_pagesize)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "zone \"%V\" in \"mitte_zone\" is too small, "
                           "at least %uzk is needed",
                           &value[1], 8 * ngx_pagesize / 1024);
        return NGX_CONF_ERROR;
    }

    ctx = ngx_pcalloc(cf->pool, sizeof(ngx_http_mitte_zone_ctx_t));
    if (ctx == NULL) {
        return NGX_CONF_ERROR;
    }

    mmcf->shm_zone = ngx_shared_memory_add(cf, &name, size,
                                           &ngx_http_mitte_module);
    if (mmcf->shm_zone == NULL) {
        return NGX_CONF_ERROR;
    }

    if (mmcf->shm_zone->data) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "zone \"%V\" in \"mitte_zone\" is already used",
                           &name);
        return NGX_CONF_ERROR;
    }

    mmcf->shm_zone->data = ctx;

    return NGX_CONF_OK;
}


static char *
ngx_http_mitte_set_value(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    char  *p = conf;

    u_char                            *c;
    ngx_str_t                         *value, var;
    ngx_uint_t                         i;
    ngx_http_mitte_value_t           **field, *val;
    ngx_http_compile_complex_value_t   ccv;

    field = (ngx_http_mitte_value_t **) (p + cmd->offset);

    if (*field != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    if (ngx_http_mitte_need_zone(cf, cmd) != NGX_CONF_OK) {
        return NGX_CONF_ERROR;
    }

    value = cf->args->elts;

    val = ngx_pcalloc(cf->pool, sizeof(ngx_http_mitte_value_t));
    if (val == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(&ccv, sizeof(ngx_http_compile_complex_value_t));

    ccv.cf = cf;
    ccv.value = &value[1];
    ccv.complex_value = &val->cv;

    if (ngx_http_compile_complex_value(&ccv) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    val->index = NGX_ERROR;

    /* the fast path: exactly one named variable, such as "$slug" */

    if (value[1].len > 1 && value[1].data[0] == '$'
        && !(value[1].data[1] >= '0' && value[1].data[1] <= '9'))
    {
        for (c = value[1].data + 1; c < value[1].data + value[1].len; c++) {
            if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z')
                  || (*c >= '0' && *c <= '9') || *c == '_'))
            {
                break;
            }
        }

        if (c == value[1].data + value[1].len) {
            var.data = value[1].data + 1;
            var.len = value[1].len - 1;

            val->index = ngx_http_get_variable_index(cf, &var);
            if (val->index == NGX_ERROR) {
                return NGX_CONF_ERROR;
            }

            if (var.len > 5
                && ngx_strncasecmp(var.data, (u_char *) "http_", 5) == 0)
            {
                val->header.len = var.len - 5;
                val->header.data = ngx_pnalloc(cf->pool, val->header.len);
                if (val->header.data == NULL) {
                    return NGX_CONF_ERROR;
                }

                for (i = 0; i < val->header.len; i++) {
                    val->header.data[i] = (var.data[5 + i] == '_')
                                          ? '-'
                                          : ngx_tolower(var.data[5 + i]);
                }

                val->header_hash = ngx_hash_key(val->header.data,
                                                val->header.len);
            }
        }
    }

    *field = val;

    return NGX_CONF_OK;
}


static char *
ngx_http_mitte_success_status(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_mitte_loc_conf_t *mlcf = conf;

    ngx_str_t           *value;
    ngx_uint_t           i;
    mitte_status_set_t  *set;

    if (mlcf->success != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    if (ngx_http_mitte_need_zone(cf, cmd) != NGX_CONF_OK) {
        return NGX_CONF_ERROR;
    }

    value = cf->args->elts;

    set = ngx_palloc(cf->pool, sizeof(mitte_status_set_t));
    if (set == NULL) {
        return NGX_CONF_ERROR;
    }

    mitte_status_set_clear(set);

    for (i = 1; i < cf->args->nelts; i++) {
        if (mitte_status_set_add(set, (char *) value[i].data, value[i].len)
            != 0)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid status \"%V\" in "
                               "\"mitte_success_status\", expected a code "
                               "(200), a range (200-299) or a class (2xx) "
                               "within 100-599", &value[i]);
            return NGX_CONF_ERROR;
        }
    }

    mlcf->success = set;

    return NGX_CONF_OK;
}


static char *
ngx_http_mitte_quota(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_mitte_main_conf_t *mmcf = conf;

    ngx_int_t   plan, limit, warn;
    ngx_str_t  *value, s;

    if (ngx_http_mitte_need_zone(cf, cmd) != NGX_CONF_OK) {
        return NGX_CONF_ERROR;
    }

    value = cf->args->elts;

    plan = mitte_plan_parse((char *) value[1].data, value[1].len);

    if (plan < 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid plan \"%V\" in \"mitte_quota\", "
                           "expected free, pro or trial", &value[1]);
        return NGX_CONF_ERROR;
    }

    if (mmcf->quota[plan].limit != NGX_CONF_UNSET_UINT) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "duplicate \"mitte_quota\" for plan \"%V\"",
                           &value[1]);
        return NGX_CONF_ERROR;
    }

    limit = ngx_atoi(value[2].data, value[2].len);

    if (limit <= 0 || limit > 0xffffffff) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid limit \"%V\" in \"mitte_quota\", "
                           "expected a number from 1 to 4294967295",
                           &value[2]);
        return NGX_CONF_ERROR;
    }

    warn = 90;

    if (cf->args->nelts == 4) {
        if (ngx_strncmp(value[3].data, "warn=", 5) != 0
            || value[3].len < 7 || value[3].data[value[3].len - 1] != '%')
        {
            goto invalid;
        }

        s.data = value[3].data + 5;
        s.len = value[3].len - 6;

        warn = ngx_atoi(s.data, s.len);

        if (warn < 1 || warn > 100) {
            goto invalid;
        }
    }

    mmcf->quota[plan].limit = limit;
    mmcf->quota[plan].warn = warn;

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid parameter \"%V\" in \"mitte_quota\", "
                       "expected warn=1%%..100%%", &value[3]);
    return NGX_CONF_ERROR;
}


static char *
ngx_http_mitte_quota_enforce(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_mitte_loc_conf_t *mlcf = conf;

    ngx_int_t   status;
    ngx_str_t  *value;

    if (mlcf->enforce != NGX_CONF_UNSET) {
        return "is duplicate";
    }

    if (ngx_http_mitte_need_zone(cf, cmd) != NGX_CONF_OK) {
        return NGX_CONF_ERROR;
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "on") == 0) {
        mlcf->enforce = 1;

    } else if (ngx_strcmp(value[1].data, "off") == 0) {
        mlcf->enforce = 0;

    } else {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid value \"%V\" in \"mitte_quota_enforce\", "
                           "expected on or off", &value[1]);
        return NGX_CONF_ERROR;
    }

    if (cf->args->nelts == 3) {
        status = NGX_ERROR;

        if (ngx_strncmp(value[2].data, "status=", 7) == 0) {
            status = ngx_atoi(value[2].data + 7, value[2].len - 7);
        }

        if (status < 400 || status > 599) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid parameter \"%V\" in "
                               "\"mitte_quota_enforce\", expected "
                               "status=400..599", &value[2]);
            return NGX_CONF_ERROR;
        }

        mlcf->enforce_status = status;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_mitte_endpoint_down(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_mitte_main_conf_t *mmcf = conf;

    char        *rv;
    ngx_uint_t   off;

    if (mmcf->down_threshold != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    if (ngx_http_mitte_need_zone(cf, cmd) != NGX_CONF_OK) {
        return NGX_CONF_ERROR;
    }

    mmcf->down_threshold = 5;

    rv = ngx_http_mitte_conf_params(cf, cmd, conf,
                                    ngx_http_mitte_down_params,
                                    "off, threshold=N or reset=time", &off);

    if (off) {
        mmcf->down_threshold = 0;
    }

    return rv;
}


static char *
ngx_http_mitte_anomaly(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_mitte_main_conf_t *mmcf = conf;

    char        *rv;
    ngx_uint_t   off;

    if (mmcf->anomaly_on != NGX_CONF_UNSET) {
        return "is duplicate";
    }

    if (ngx_http_mitte_need_zone(cf, cmd) != NGX_CONF_OK) {
        return NGX_CONF_ERROR;
    }

    rv = ngx_http_mitte_conf_params(cf, cmd, conf,
                                    ngx_http_mitte_anomaly_params,
                                    "off, interval=time (1s or more), "
                                    "window=1h..48h, history=1h..48h, "
                                    "zscore=number, zscore_min_requests=n, "
                                    "rate=percent, rate_min_requests=n or "
                                    "cooldown=time", &off);

    if (rv != NGX_CONF_OK) {
        return rv;
    }

    mmcf->anomaly_on = !off;

    if (mmcf->anomaly.history > mmcf->anomaly.window) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"mitte_anomaly\" history=%uDh is longer than "
                           "window=%uDh", mmcf->anomaly.history,
                           mmcf->anomaly.window);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/*
 * The "off | key=value ..." directives: each key of the table is parsed
 * into its field of the main configuration, and a bad one is named.
 */

static char *
ngx_http_mitte_conf_params(ngx_conf_t *cf, ngx_command_t *cmd, void *conf,
    ngx_http_mitte_param_t *params, const char *expected, ngx_uint_t *off)
{
    u_char                  *eq;
    ngx_str_t               *value, name, v;
    ngx_uint_t               i;
    ngx_http_mitte_param_t  *p;

    value = cf->args->elts;
    *off = 0;

    if (ngx_strcmp(value[1].data, "off") == 0) {
        if (cf->args->nelts != 2) {
            return "takes no parameters after \"off\"";
        }

        *off = 1;
        return NGX_CONF_OK;
    }

    for (i = 1; i < cf->args->nelts; i++) {

        eq = (u_char *) ngx_strchr(value[i].data, '=');
        if (eq == NULL) {
            goto invalid;
        }

        name.data = value[i].data;
        name.len = eq - value[i].data;
        v.data = eq + 1;
        v.len = value[i].data + value[i].len - v.data;

        if (v.len == 0) {
            goto invalid;
        }

        for (p = params; p->name.len; p++) {
            if (p->name.len == name.len
                && ngx_strncmp(p->name.data, name.data, name.len) == 0)
            {
                break;
            }
        }

        if (p->name.len == 0
            || p->parse(&v, (char *) conf + p->offset, p) != NGX_OK)
        {
            goto invalid;
        }
    }

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid parameter \"%V\" in \"%V\", expected %s",
                       &value[i], &cmd->name, expected);
    return NGX_CONF_ERROR;
}


/* a time in ms, at least p->min */

static ngx_int_t
ngx_http_mitte_param_msec(ngx_str_t *v, char *field,
    ngx_http_mitte_param_t *p)
{
    ngx_msec_t  ms;

    ms = ngx_parse_time(v, 0);

    if (ms == (ngx_msec_t) NGX_ERROR || ms < (ngx_msec_t) p->min) {
        return NGX_ERROR;
    }

    *(ngx_msec_t *) field = ms;

    return NGX_OK;
}


/* a time in seconds */

static ngx_int_t
ngx_http_mitte_param_sec(ngx_str_t *v, char *field,
    ngx_http_mitte_param_t *p)
{
    ngx_int_t  n;

    n = ngx_parse_time(v, 1);

    if (n == NGX_ERROR) {
        return NGX_ERROR;
    }

    *(time_t *) field = (time_t) n;

    return NGX_OK;
}


/* whole hours, p->min..p->max */

static ngx_int_t
ngx_http_mitte_param_hours(ngx_str_t *v, char *field,
    ngx_http_mitte_param_t *p)
{
    ngx_int_t  n;

    n = ngx_parse_time(v, 1);

    if (n == NGX_ERROR || n % 3600 != 0 || n / 3600 < p->min
        || n / 3600 > p->max)
    {
        return NGX_ERROR;
    }

    *(uint32_t *) field = (uint32_t) (n / 3600);

    return NGX_OK;
}


/* a whole number, p->min..p->max, into an ngx_uint_t or a uint32_t */

static ngx_int_t
ngx_http_mitte_param_uint(ngx_str_t *v, char *field,
    ngx_http_mitte_param_t *p)
{
    ngx_int_t  n;

    n = ngx_atoi(v->data, v->len);

    if (n < p->min || n > p->max) {
        return NGX_ERROR;
    }

    *(ngx_uint_t *) field = (ngx_uint_t) n;

    return NGX_OK;
}


static ngx_int_t
ngx_http_mitte_param_uint32(ngx_str_t *v, char *field,
    ngx_http_mitte_param_t *p)
{
    ngx_uint_t  n;

    if (ngx_http_mitte_param_uint(v, (char *) &n, p) != NGX_OK) {
        return NGX_ERROR;
    }

    *(uint32_t *) field = (uint32_t) n;

    return NGX_OK;
}


/* a number other than 0, to three decimals */

static ngx_int_t
ngx_http_mitte_param_number(ngx_str_t *v, char *field,
    ngx_http_mitte_param_t *p)
{
    ngx_int_t  n;

    n = ngx_atofp(v->data, v->len, 3);

    if (n == NGX_ERROR || n == 0) {
        return NGX_ERROR;
    }

    *(double *) field = (double) n / 1000;

    return NGX_OK;
}


/* a percentage, 0%..100% to two decimals, as a fraction */

static ngx_int_t
ngx_http_mitte_param_percent(ngx_str_t *v, char *field,
    ngx_http_mitte_param_t *p)
{
    ngx_int_t  n;

    if (v->data[v->len - 1] != '%') {
        return NGX_ERROR;
    }

    n = ngx_atofp(v->data, v->len - 1, 2);

    if (n == NGX_ERROR || n > 10000) {
        return NGX_ERROR;
    }

    *(double *) field = (double) n / 10000;

    return NGX_OK;
}


static char *
ngx_http_mitte_trial_notice(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_mitte_main_conf_t *mmcf = conf;

    ngx_int_t   n;
    ngx_str_t  *value;

    if (mmcf->trial_notice != NGX_CONF_UNSET) {
        return "is duplicate";
    }

    if (ngx_http_mitte_need_zone(cf, cmd) != NGX_CONF_OK) {
        return NGX_CONF_ERROR;
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "off") == 0) {
        mmcf->trial_notice = 0;
        return NGX_CONF_OK;
    }

    n = ngx_parse_time(&value[1], 1);

    if (n == NGX_ERROR || n == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid value \"%V\" in \"mitte_trial_notice\", "
                           "expected off or a time such as 3d", &value[1]);
        return NGX_CONF_ERROR;
    }

    mmcf->trial_notice = (time_t) n;

    return NGX_CONF_OK;
}


/*
 * A content handler directive: the handler is in cmd->post; where
 * cmd->offset is not NGX_CONF_UNSET_UINT, an optional "all" sets that flag.
 */

static char *
ngx_http_mitte_handler(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    char  *p = conf;

    ngx_str_t                 *value;
    ngx_http_core_loc_conf_t  *clcf;

    if (ngx_http_mitte_need_zone(cf, cmd) != NGX_CONF_OK) {
        return NGX_CONF_ERROR;
    }

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    if (clcf->handler) {
        return "is duplicate or conflicts with another content handler";
    }

    if (cf->args->nelts == 2) {
        value = cf->args->elts;

        if (cmd->offset == NGX_CONF_UNSET_UINT
            || ngx_strcmp(value[1].data, "all") != 0)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid parameter \"%V\" in \"%V\", "
                               "expected \"all\"", &value[1], &cmd->name);
            return NGX_CONF_ERROR;
        }

        *(ngx_uint_t *) (p + cmd->offset) = 1;
    }

    clcf->handler = (ngx_http_handler_pt) cmd->post;

    return NGX_CONF_OK;
}


/* the Resend API key: the first line of mitte_email_key_file */

static ngx_int_t
ngx_http_mitte_read_key(ngx_conf_t *cf, ngx_http_mitte_main_conf_t *mmcf)
{
    u_char     *p, *last, buf[1024];
    ssize_t     n;
    ngx_fd_t    fd;
    ngx_file_t  file;

    if (mmcf->email_key_file.len == 0) {
        ngx_conf_log_error(NGX_LOG_NOTICE, cf, 0,
                           "mitte: email channel off: no "
                           "\"mitte_email_key_file\"");
        return NGX_OK;
    }

    if (ngx_conf_full_name(cf->cycle, &mmcf->email_key_file, 1) != NGX_OK) {
        return NGX_ERROR;
    }

    fd = ngx_open_file(mmcf->email_key_file.data, NGX_FILE_RDONLY,
                       NGX_FILE_OPEN, 0);

    if (fd == NGX_INVALID_FILE) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           "\"mitte_email_key_file\" \"%V\" cannot be "
                           "opened", &mmcf->email_key_file);
        return NGX_ERROR;
    }

    ngx_memzero(&file, sizeof(ngx_file_t));
    file.fd = fd;
    file.name = mmcf->email_key_file;
    file.log = cf->log;

    n = ngx_read_file(&file, buf, sizeof(buf), 0);

    if (ngx_close_file(fd) == NGX_FILE_ERROR) {
        ngx_conf_log_error(NGX_LOG_ALERT, cf, ngx_errno,
                           ngx_close_file_n " \"%V\" failed",
                           &mmcf->email_key_file);
    }

    if (n == NGX_ERROR) {
        return NGX_ERROR;
    }

    last = buf + n;

    for (p = buf; p < last && *p != CR && *p != LF; p++) {
        /* void */
    }

    while (p > buf && (p[-1] == ' ' || p[-1] == '\t')) {
        p--;
    }

    if (p == buf) {
        ngx_conf_log_error(NGX_LOG_WARN, cf, 0,
                           "mitte: email channel off: \"%V\" holds no key",
                           &mmcf->email_key_file);
        return NGX_OK;
    }

    mmcf->email_key.len = p - buf;
    mmcf->email_key.data = ngx_pnalloc(cf->pool, mmcf->email_key.len);
    if (mmcf->email_key.data == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(mmcf->email_key.data, buf, mmcf->email_key.len);

    return NGX_OK;
}


static char *
ngx_http_mitte_webhook_allow(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_mitte_main_conf_t *mmcf = conf;

    ngx_int_t      rc;
    ngx_str_t     *value;
    ngx_uint_t     i;
    mitte_cidr_t  *cidr;

    if (ngx_http_mitte_need_zone(cf, cmd) != NGX_CONF_OK) {
        return NGX_CONF_ERROR;
    }

    if (mmcf->webhook_allow == NULL) {
        mmcf->webhook_allow = ngx_array_create(cf->pool, 4,
                                               sizeof(mitte_cidr_t));
        if (mmcf->webhook_allow == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    value = cf->args->elts;

    for (i = 1; i < cf->args->nelts; i++) {
        cidr = ngx_array_push(mmcf->webhook_allow);
        if (cidr == NULL) {
            return NGX_CONF_ERROR;
        }

        rc = mitte_cidr_parse((char *) value[i].data, value[i].len, cidr);

        if (rc == -1) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid address \"%V\" in "
                               "\"mitte_webhook_allow\", expected an IP "
                               "address or a CIDR range", &value[i]);
            return NGX_CONF_ERROR;
        }

        if (rc == 1) {
            ngx_conf_log_error(NGX_LOG_WARN, cf, 0,
                               "low address bits of \"%V\" in "
                               "\"mitte_webhook_allow\" are meaningless",
                               &value[i]);
        }
    }

    return NGX_CONF_OK;
}


/*
 * nginx's number and time slots, with the bad value named: "invalid value"
 * alone does not say which of a line's values is wrong.
 */

static char *
ngx_http_mitte_conf_num(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    return ngx_http_mitte_conf_value(cf, cmd,
                                     ngx_conf_set_num_slot(cf, cmd, conf));
}


static char *
ngx_http_mitte_conf_msec(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    return ngx_http_mitte_conf_value(cf, cmd,
                                     ngx_conf_set_msec_slot(cf, cmd, conf));
}


static char *
ngx_http_mitte_conf_value(ngx_conf_t *cf, ngx_command_t *cmd, char *rv)
{
    ngx_str_t  *value;

    if (rv == NGX_CONF_OK || rv == NGX_CONF_ERROR
        || ngx_strncmp(rv, "invalid", 7) != 0)
    {
        return rv;
    }

    value = cf->args->elts;

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid value \"%V\" in \"%V\" directive, %s",
                       &value[1], &cmd->name,
                       (cmd->set == ngx_http_mitte_conf_msec)
                       ? "expected a time such as 500ms or 5s"
                       : "expected a whole number, 0 or more");

    return NGX_CONF_ERROR;
}


/* mitte_state_file path [interval=30s]; */

static char *
ngx_http_mitte_state_file(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_mitte_main_conf_t *mmcf = conf;

    u_char                     *p;
    ngx_str_t                  *value, path, s;
    ngx_msec_t                  interval;
    ngx_http_mitte_zone_ctx_t  *ctx;

    if (ngx_http_mitte_need_zone(cf, cmd) != NGX_CONF_OK) {
        return NGX_CONF_ERROR;
    }

    ctx = mmcf->shm_zone->data;

    if (ctx->state_file.len) {
        return "is duplicate";
    }

    value = cf->args->elts;
    path = value[1];
    interval = 30000;

    if (path.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "empty path in \"mitte_state_file\"");
        return NGX_CONF_ERROR;
    }

    if (cf->args->nelts == 3) {
        if (value[2].len <= 9
            || ngx_strncmp(value[2].data, "interval=", 9) != 0)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid parameter \"%V\" in "
                               "\"mitte_state_file\", expected "
                               "interval=time", &value[2]);
            return NGX_CONF_ERROR;
        }

        s.data = value[2].data + 9;
        s.len = value[2].len - 9;

        interval = ngx_parse_time(&s, 0);

        if (interval == (ngx_msec_t) NGX_ERROR || interval < 1000) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid interval \"%V\" in "
                               "\"mitte_state_file\", expected a time of "
                               "1s or more", &s);
            return NGX_CONF_ERROR;
        }
    }

    if (ngx_conf_full_name(cf->cycle, &path, 0) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    /* the path, "<path>.tmp", "<path>.bad" and the directory, with NULs */

    p = ngx_pnalloc(cf->pool, 4 * (path.len + 5));
    if (p == NULL) {
        return NGX_CONF_ERROR;
    }

    ctx->state_file.data = p;
    ctx->state_file.len = path.len;
    p = ngx_cpymem(p, path.data, path.len);
    *p++ = '\0';

    ctx->state_tmp.data = p;
    ctx->state_tmp.len = path.len + 4;
    p = ngx_sprintf(p, "%V.tmp%Z", &path);

    ctx->state_bad.data = p;
    ctx->state_bad.len = path.len + 4;
    p = ngx_sprintf(p, "%V.bad%Z", &path);

    ctx->state_dir.data = p;
    ctx->state_dir.len = path.len;

    while (ctx->state_dir.len > 1
           && path.data[ctx->state_dir.len - 1] != '/')
    {
        ctx->state_dir.len--;
    }

    p = ngx_cpymem(p, path.data, ctx->state_dir.len);
    *p = '\0';

    ctx->state_interval = interval;

    return NGX_CONF_OK;
}
