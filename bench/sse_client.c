/*
 * Copyright (C) ngx_mitte_module authors
 *
 * bench/sse_client.c: the subscribers of bench/sse.pl. One process holds
 * many Server-Sent Events connections on one epoll set, decodes chunked
 * bodies, cuts the stream into lines and, for every "data:" line that
 * carries a benchmark event, notes which event it is and how long after
 * its send time it arrived.
 *
 *   sse_client -p PORT -n CONNS -r PATH [-H 'Name: value'] ... -e EVENTS
 *              -m mitte|nchan -o LATENCY_FILE [-t SECONDS] [-c INFLIGHT]
 *
 * Events and their send times:
 *   mitte   webhook:delivered of endpoint "ev-<k>-<unix ms of the POST>";
 *           the send time is the event's "timestamp" (the delivery's
 *           completion, milliseconds); the POST's time is noted too
 *   nchan   a message "k=<k> t=<unix ms with fraction>" (both times)
 *
 * Prints "READY ok=<n> failed=<n>" once every connection has its response
 * head (200) or failed, and at the end (every connection has every event,
 * SIGTERM/SIGUSR1, or the time limit) "RESULT ..." and one "EVENT k n" line
 * per event; the latencies (ms) go to LATENCY_FILE, a line each:
 * "k from-send-time from-POST".
 *
 * Built by bench/sse.pl with cc -O2; Linux only (epoll).
 */

#define _GNU_SOURCE

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>


#define LINE_MAX_LEN    1536
#define MAX_EVENTS      32
#define MAX_HEADERS     8

enum {
    ST_IDLE = 0,
    ST_CONNECTING,
    ST_HEAD,
    ST_BODY,
    ST_CLOSED,
    ST_FAILED
};

enum {
    CH_SIZE = 0,
    CH_EXT,
    CH_SIZE_LF,
    CH_DATA,
    CH_DATA_CR,
    CH_DATA_LF,
    CH_END
};

typedef struct {
    int         fd;
    uint8_t     state;
    uint8_t     chunked;
    uint8_t     ch_state;
    uint32_t    got;            /* bit k: event k seen */
    int64_t     ch_left;
    uint16_t    len;            /* bytes in line[] */
    char        line[LINE_MAX_LEN];
} conn_t;


static volatile sig_atomic_t  stop_flag;

static conn_t     *conns;
static int         nconns;
static int         nevents = 20;
static int         mode_nchan;
static float      *lat;         /* [k * nconns + i]: from the send time */
static float      *lat_post;    /* the same from the publisher's POST */
static int        *lat_n;       /* per event */
static long        dups, other, ready, failed, closed, complete;
static uint32_t    full_mask;


static void
on_signal(int sig)
{
    (void) sig;
    stop_flag = 1;
}


static double
now_ms(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return ts.tv_sec * 1000.0 + ts.tv_nsec / 1e6;
}


/* "2026-02-13T10:30:00.123Z" as unix milliseconds; -1 on error */

static double
iso_ms(const char *p)
{
    int        y, mo, d, h, mi, s, ms;
    struct tm  tm;

    if (sscanf(p, "%4d-%2d-%2dT%2d:%2d:%2d.%3dZ", &y, &mo, &d, &h, &mi, &s,
               &ms) != 7)
    {
        return -1;
    }

    memset(&tm, 0, sizeof(tm));
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = s;

    return (double) timegm(&tm) * 1000.0 + ms;
}


static void
on_data(int i, const char *data)
{
    int          k;
    double       sent, posted, now;
    const char  *p;
    char        *e;

    k = -1;
    sent = -1;
    posted = -1;

    if (mode_nchan) {
        if (sscanf(data, "k=%d t=%lf", &k, &sent) != 2) {
            k = -1;
        }

        posted = sent;

    } else {
        /* "ev-<k>-<unix ms of the POST>" */
        p = strstr(data, "\"endpointSlug\":\"ev-");
        if (p) {
            k = (int) strtol(p + sizeof("\"endpointSlug\":\"ev-") - 1, &e,
                             10);
            if (*e == '-') {
                posted = strtod(e + 1, NULL);
            }
        }

        p = strstr(data, "\"timestamp\":\"");
        if (p) {
            sent = iso_ms(p + sizeof("\"timestamp\":\"") - 1);
        }
    }

    if (k < 0 || k >= nevents || sent < 0) {
        other++;
        return;
    }

    if (conns[i].got & (1u << k)) {
        dups++;
        return;
    }

    now = now_ms();

    conns[i].got |= 1u << k;
    lat[(size_t) k * nconns + lat_n[k]] = (float) (now - sent);
    lat_post[(size_t) k * nconns + lat_n[k]] = posted < 0
                                               ? -1 : (float) (now - posted);
    lat_n[k]++;

    if (conns[i].got == full_mask) {
        complete++;
    }
}


/* body bytes, after the chunked decoding: cut into lines */

static void
on_body(int i, const char *p, size_t n)
{
    conn_t  *c = &conns[i];
    size_t   j;

    for (j = 0; j < n; j++) {
        if (p[j] != '\n') {
            if (c->len < LINE_MAX_LEN - 1) {
                c->line[c->len++] = p[j];
            }
            continue;
        }

        if (c->len && c->line[c->len - 1] == '\r') {
            c->len--;
        }

        c->line[c->len] = '\0';

        if (c->len >= 5 && memcmp(c->line, "data:", 5) == 0) {
            on_data(i, c->line[5] == ' ' ? c->line + 6 : c->line + 5);
        }

        c->len = 0;
    }
}


static void
on_chunked(int i, const char *p, size_t n)
{
    conn_t  *c = &conns[i];
    size_t   j, take;
    int      v;
    char     ch;

    j = 0;

    while (j < n) {
        ch = p[j];

        switch (c->ch_state) {

        case CH_SIZE:
            if (ch >= '0' && ch <= '9') {
                v = ch - '0';
            } else if (ch >= 'a' && ch <= 'f') {
                v = ch - 'a' + 10;
            } else if (ch >= 'A' && ch <= 'F') {
                v = ch - 'A' + 10;
            } else if (ch == '\r') {
                c->ch_state = CH_SIZE_LF;
                j++;
                continue;
            } else {
                c->ch_state = CH_EXT;
                j++;
                continue;
            }
            c->ch_left = c->ch_left * 16 + v;
            j++;
            break;

        case CH_EXT:
            if (ch == '\r') {
                c->ch_state = CH_SIZE_LF;
            }
            j++;
            break;

        case CH_SIZE_LF:
            j++;
            if (c->ch_left == 0) {
                c->ch_state = CH_END;
                return;
            }
            c->ch_state = CH_DATA;
            break;

        case CH_DATA:
            take = n - j;
            if ((int64_t) take > c->ch_left) {
                take = (size_t) c->ch_left;
            }
            on_body(i, p + j, take);
            j += take;
            c->ch_left -= take;
            if (c->ch_left == 0) {
                c->ch_state = CH_DATA_CR;
            }
            break;

        case CH_DATA_CR:
            c->ch_state = CH_DATA_LF;
            j++;
            break;

        case CH_DATA_LF:
            c->ch_state = CH_SIZE;
            c->ch_left = 0;
            j++;
            break;

        default:
            return;
        }
    }
}


/* the response head, collected in line[]; returns bytes of p consumed */

static size_t
on_head(int i, const char *p, size_t n)
{
    conn_t  *c = &conns[i];
    size_t   j;
    char    *end, *te;

    for (j = 0; j < n; j++) {
        if (c->len < LINE_MAX_LEN - 1) {
            c->line[c->len++] = p[j];
        }

        if (c->len >= 4 && memcmp(c->line + c->len - 4, "\r\n\r\n", 4) == 0)
        {
            c->line[c->len] = '\0';
            end = strchr(c->line, ' ');

            if (end == NULL || atoi(end + 1) != 200) {
                c->state = ST_FAILED;
                failed++;
                return n;
            }

            te = strcasestr(c->line, "\ntransfer-encoding:");
            if (te) {
                end = strstr(te + 1, "\r\n");
                if (end) {
                    *end = '\0';
                }
                c->chunked = strcasestr(te, "chunked") != NULL;
            }
            c->state = ST_BODY;
            c->len = 0;
            c->ch_state = CH_SIZE;
            c->ch_left = 0;
            ready++;
            return j + 1;
        }
    }

    if (c->len >= LINE_MAX_LEN - 1) {
        c->state = ST_FAILED;
        failed++;
    }

    return n;
}


static void
on_readable(int i)
{
    conn_t   *c = &conns[i];
    ssize_t   n;
    size_t    used;
    char      buf[65536];

    for ( ;; ) {
        n = read(c->fd, buf, sizeof(buf));

        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR) {
                return;
            }
            n = 0;
        }

        if (n == 0) {
            if (c->state == ST_HEAD) {
                failed++;
                c->state = ST_FAILED;
            } else if (c->state == ST_BODY) {
                closed++;
                c->state = ST_CLOSED;
            }
            close(c->fd);
            c->fd = -1;
            return;
        }

        used = 0;

        if (c->state == ST_HEAD) {
            used = on_head(i, buf, n);
        }

        if (c->state == ST_BODY && used < (size_t) n) {
            if (c->chunked) {
                on_chunked(i, buf + used, n - used);
            } else {
                on_body(i, buf + used, n - used);
            }
        }

        if (c->state == ST_FAILED) {
            close(c->fd);
            c->fd = -1;
            return;
        }

        if (n < (ssize_t) sizeof(buf)) {
            return;
        }
    }
}


int
main(int argc, char **argv)
{
    int                  ep, opt, i, k, n, port, inflight, max_inflight;
    int                  next, nheaders, reported, err;
    char                *path, *addr, *out, *headers[MAX_HEADERS];
    char                 req[4096];
    size_t               reqlen;
    double               deadline, limit;
    socklen_t            len;
    struct rlimit        rl;
    struct sigaction     sa;
    struct sockaddr_in   sin;
    struct epoll_event   ev, evs[1024];
    FILE                *f;

    port = 0;
    path = "/";
    addr = "127.0.0.1";
    out = NULL;
    limit = 120;
    max_inflight = 256;
    nheaders = 0;

    while ((opt = getopt(argc, argv, "a:p:n:r:H:e:m:o:t:c:")) != -1) {
        switch (opt) {
        case 'a': addr = optarg; break;
        case 'p': port = atoi(optarg); break;
        case 'n': nconns = atoi(optarg); break;
        case 'r': path = optarg; break;
        case 'H':
            if (nheaders < MAX_HEADERS) {
                headers[nheaders++] = optarg;
            }
            break;
        case 'e': nevents = atoi(optarg); break;
        case 'm': mode_nchan = strcmp(optarg, "nchan") == 0; break;
        case 'o': out = optarg; break;
        case 't': limit = atof(optarg); break;
        case 'c': max_inflight = atoi(optarg); break;
        default:
            fprintf(stderr, "usage: %s -p port -n conns -r path "
                    "[-H header] -e events -m mitte|nchan -o file\n",
                    argv[0]);
            return 2;
        }
    }

    if (port <= 0 || nconns <= 0 || nevents <= 0 || nevents > MAX_EVENTS) {
        fprintf(stderr, "sse_client: bad arguments\n");
        return 2;
    }

    full_mask = nevents == 32 ? 0xffffffffu : (1u << nevents) - 1;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0
        && rl.rlim_cur < (rlim_t) nconns + 64)
    {
        rl.rlim_cur = (rlim_t) nconns + 64;
        if (rl.rlim_cur > rl.rlim_max) {
            rl.rlim_cur = rl.rlim_max;
        }
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
            perror("setrlimit");
        }
    }

    conns = calloc(nconns, sizeof(conn_t));
    lat = calloc((size_t) nevents * nconns, sizeof(float));
    lat_post = calloc((size_t) nevents * nconns, sizeof(float));
    lat_n = calloc(nevents, sizeof(int));

    if (conns == NULL || lat == NULL || lat_post == NULL || lat_n == NULL) {
        fprintf(stderr, "sse_client: out of memory\n");
        return 1;
    }

    reqlen = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\n"
                      "Host: %s:%d\r\nAccept: text/event-stream\r\n"
                      "Cache-Control: no-cache\r\n", path, addr, port);
    for (i = 0; i < nheaders; i++) {
        reqlen += snprintf(req + reqlen, sizeof(req) - reqlen, "%s\r\n",
                           headers[i]);
    }
    reqlen += snprintf(req + reqlen, sizeof(req) - reqlen, "\r\n");

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons(port);
    if (inet_pton(AF_INET, addr, &sin.sin_addr) != 1) {
        fprintf(stderr, "sse_client: bad address %s\n", addr);
        return 2;
    }

    ep = epoll_create1(0);
    if (ep == -1) {
        perror("epoll_create1");
        return 1;
    }

    deadline = now_ms() + limit * 1000;
    inflight = 0;
    next = 0;
    reported = 0;

    while (!stop_flag && now_ms() < deadline) {

        /* connect at most max_inflight at a time */

        while (next < nconns && inflight < max_inflight) {
            conn_t  *c = &conns[next];

            c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
            if (c->fd == -1) {
                perror("socket");
                c->state = ST_FAILED;
                failed++;
                next++;
                continue;
            }

            if (connect(c->fd, (struct sockaddr *) &sin, sizeof(sin)) == -1
                && errno != EINPROGRESS)
            {
                close(c->fd);
                c->fd = -1;
                c->state = ST_FAILED;
                failed++;
                next++;
                continue;
            }

            c->state = ST_CONNECTING;
            ev.events = EPOLLOUT | EPOLLIN;
            ev.data.u32 = next;
            epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
            inflight++;
            next++;
        }

        if (!reported && ready + failed == nconns) {
            printf("READY ok=%ld failed=%ld\n", ready, failed);
            fflush(stdout);
            reported = 1;
        }

        if (reported && complete == ready) {
            break;
        }

        n = epoll_wait(ep, evs, 1024, 50);

        for (k = 0; k < n; k++) {
            i = evs[k].data.u32;
            conn_t  *c = &conns[i];

            if (c->fd == -1) {
                continue;
            }

            if (c->state == ST_CONNECTING) {
                if (!(evs[k].events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
                    continue;
                }

                err = 0;
                len = sizeof(err);
                getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);

                if (err
                    || write(c->fd, req, reqlen) != (ssize_t) reqlen)
                {
                    close(c->fd);
                    c->fd = -1;
                    c->state = ST_FAILED;
                    failed++;
                    inflight--;
                    continue;
                }

                c->state = ST_HEAD;
                ev.events = EPOLLIN;
                ev.data.u32 = i;
                epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
                continue;
            }

            if (evs[k].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
                int  was_head = (c->state == ST_HEAD);

                on_readable(i);

                if (was_head && c->state != ST_HEAD) {
                    inflight--;
                }
            }
        }
    }

    if (!reported) {
        printf("READY ok=%ld failed=%ld\n", ready, failed);
    }

    printf("RESULT conns=%d ready=%ld failed=%ld complete=%ld dups=%ld "
           "closed=%ld other=%ld\n", nconns, ready, failed, complete, dups,
           closed, other);

    for (k = 0; k < nevents; k++) {
        printf("EVENT %d %d\n", k, lat_n[k]);
    }

    fflush(stdout);

    if (out) {
        f = fopen(out, "w");
        if (f == NULL) {
            perror(out);
            return 1;
        }

        for (k = 0; k < nevents; k++) {
            for (i = 0; i < lat_n[k]; i++) {
                fprintf(f, "%d %.3f %.3f\n", k, lat[(size_t) k * nconns + i],
                        lat_post[(size_t) k * nconns + i]);
            }
        }

        fclose(f);
    }

    return 0;
}
