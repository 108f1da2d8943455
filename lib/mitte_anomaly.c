/*
 * Copyright (C) ngx_mitte_module authors
 */


#include <math.h>
#include <stdio.h>
#include <string.h>

#include "mitte_anomaly.h"


/* the floor of sigma in z = (r - mu) / max(sigma, 0.01) */
#define MITTE_SIGMA_MIN  0.01


static size_t mitte_append(char *buf, size_t size, size_t off,
    const char *s, size_t len);


void
mitte_anomaly_conf_default(mitte_anomaly_conf_t *conf)
{
    conf->window = MITTE_RING_HISTORY;
    conf->history = 6;
    conf->zscore = 2.5;
    conf->zscore_min_requests = 5;
    conf->rate = 0.80;
    conf->rate_min_requests = 10;
}


int
mitte_anomaly_check(const mitte_ring_t *ring, uint32_t now_hour,
    const mitte_anomaly_conf_t *conf, mitte_anomaly_result_t *res)
{
    double    rates[MITTE_RING_HISTORY], sum, var, d;
    uint32_t  window, k, nh, n, f, hn, hf;

    memset(res, 0, sizeof(mitte_anomaly_result_t));

    mitte_ring_get(ring, now_hour, now_hour, &n, &f);

    res->requests = n;
    res->failures = f;
    res->rate = (n == 0) ? 0.0 : (double) f / (double) n;

    window = conf->window;

    if (window > MITTE_RING_HISTORY) {
        window = MITTE_RING_HISTORY;
    }

    /* history H: the rates of hours c - window .. c - 1 with requests */

    nh = 0;

    for (k = 1; k <= window && k <= now_hour; k++) {
        mitte_ring_get(ring, now_hour, now_hour - k, &hn, &hf);

        if (hn != 0) {
            rates[nh++] = (double) hf / (double) hn;
        }
    }

    res->hours = nh;

    if (nh != 0) {
        sum = 0.0;

        for (k = 0; k < nh; k++) {
            sum += rates[k];
        }

        res->mean = sum / nh;

        var = 0.0;

        for (k = 0; k < nh; k++) {
            d = rates[k] - res->mean;
            var += d * d;
        }

        res->sigma = sqrt(var / nh);
    }

    res->z = (res->rate - res->mean) / fmax(res->sigma, MITTE_SIGMA_MIN);

    res->active = (res->hours >= conf->history);

    if (!res->active || n == 0) {
        return 0;
    }

    res->by_zscore = (res->z > conf->zscore && n >= conf->zscore_min_requests);
    res->by_rate = (res->rate > conf->rate && n >= conf->rate_min_requests);
    res->fired = res->by_zscore || res->by_rate;

    return res->fired;
}


uint32_t
mitte_anomaly_percent(uint32_t failures, uint32_t requests)
{
    if (requests == 0) {
        return 0;
    }

    return (uint32_t) ((200 * (uint64_t) failures + requests)
                       / (2 * (uint64_t) requests));
}


size_t
mitte_anomaly_message(char *buf, size_t size, const char *name,
    size_t name_len, const mitte_anomaly_result_t *res)
{
    int            n;
    char           tail[96], z[48];
    double         a;
    size_t         off;
    unsigned long  tenths;

    /*
     * z to one decimal, rounded half away from zero like P: in tenths,
     * with a nudge of 1e-9 for values such as 2.55 that binary floating
     * point holds as 2.5499...; |z| <= 100, as r and mu lie in 0..1
     */

    a = fabs(res->z);
    tenths = (a < 1000.0) ? (unsigned long) floor(a * 10.0 + 0.5 + 1e-9) : 0;

    n = snprintf(z, sizeof(z), "%s%lu.%lu",
                 (res->z < 0 && tenths != 0) ? "-" : "",
                 tenths / 10, tenths % 10);

    if (n < 0 || (size_t) n >= sizeof(z)) {
        strcpy(z, "0.0");
    }

    n = snprintf(tail, sizeof(tail), "' failure rate spiked to %u%% "
                 "(z-score: %s)",
                 (unsigned) mitte_anomaly_percent(res->failures,
                                                  res->requests), z);

    if (n < 0) {
        n = 0;
    }

    off = mitte_append(buf, size, 0, "Endpoint '", sizeof("Endpoint '") - 1);
    off = mitte_append(buf, size, off, name, name_len);
    off = mitte_append(buf, size, off, tail, (size_t) n);

    if (size != 0) {
        buf[off < size ? off : size - 1] = '\0';
    }

    return off;
}


/* copies what fits of s at buf + off, leaving room for the NUL */

static size_t
mitte_append(char *buf, size_t size, size_t off, const char *s, size_t len)
{
    size_t  room;

    if (len != 0 && size != 0 && off < size - 1) {
        room = size - 1 - off;
        memcpy(buf + off, s, len < room ? len : room);
    }

    return off + len;
}
