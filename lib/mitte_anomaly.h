/*
 * Copyright (C) ngx_mitte_module authors
 *
 * The failure-rate anomaly rule of SPEC section 4, as a pure function over
 * an hourly ring.
 */

#ifndef MITTE_ANOMALY_H
#define MITTE_ANOMALY_H

#include <stddef.h>
#include <stdint.h>

#include "mitte_ring.h"


typedef struct {
    uint32_t        window;             /* history hours, 1..48 (48) */
    uint32_t        history;            /* min. hours with requests (6) */
    double          zscore;             /* 2.5 */
    uint32_t        zscore_min_requests;/* 5 */
    double          rate;               /* 0.80 */
    uint32_t        rate_min_requests;  /* 10 */
} mitte_anomaly_conf_t;


typedef struct {
    uint32_t        requests;           /* n of the current hour */
    uint32_t        failures;           /* f of the current hour */
    uint32_t        hours;              /* |H| */
    double          rate;               /* r = f / n, 0 when n = 0 */
    double          mean;               /* mu */
    double          sigma;              /* population sigma, unfloored */
    double          z;                  /* (r - mu) / max(sigma, 0.01) */
    unsigned        active:1;           /* |H| >= history */
    unsigned        by_zscore:1;
    unsigned        by_rate:1;
    unsigned        fired:1;
} mitte_anomaly_result_t;


void mitte_anomaly_conf_default(mitte_anomaly_conf_t *conf);

/*
 * Evaluates the rule for the ring at "now_hour" (the current hour c).
 * Returns 1 when it fires, 0 otherwise; "res" is always filled.
 */
int mitte_anomaly_check(const mitte_ring_t *ring, uint32_t now_hour,
    const mitte_anomaly_conf_t *conf, mitte_anomaly_result_t *res);

/* the current hour's failure rate in whole percent, rounded half up */
uint32_t mitte_anomaly_percent(uint32_t failures, uint32_t requests);

/*
 * Writes "Endpoint '<name>' failure rate spiked to <P>% (z-score: <Z>)"
 * into buf (NUL-terminated, truncated to size); returns the length that
 * the whole message needs, without the NUL, as snprintf does.
 */
size_t mitte_anomaly_message(char *buf, size_t size, const char *name,
    size_t name_len, const mitte_anomaly_result_t *res);

#endif /* MITTE_ANOMALY_H */
