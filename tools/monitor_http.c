/* The monitor's HTTP server (libmicrohttpd, a thread per connection, at
 * most MAX_CONNECTIONS of them): GET only, no body, no cookies, nothing
 * that changes anything. Every answer is text the collector rendered this
 * second; a dashboard's event stream waits for the next round and sends
 * the same text to every client (at most MAX_STREAMS of them). */
#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "http_host.h"
#include "indicators.h"
#include "logging.h"
#include "monitor.h"

#define MAX_CONNECTIONS 256
#define MAX_STREAMS 128
#define REQUEST_MEMORY (32 * 1024) /* a request's line and headers: more is refused (431) */
#define IDLE_TIMEOUT_S 30
#define STALE_MS 10000 /* figures older than this: the collector is stuck, /healthz says 503 */

static const char csp[] = "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
                          "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

static enum MHD_Result send_buf(struct MHD_Connection *c, unsigned status, const char *type, const void *data,
                                size_t len, enum MHD_ResponseMemoryMode mode)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(len, (void *)data, mode);
    if (!r) {
        if (mode == MHD_RESPMEM_MUST_FREE) free((void *)data);
        return MHD_NO;
    }
    if (status == MHD_HTTP_UNAUTHORIZED) { /* a browser asks for the token as a password */
        MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer realm=\"schakel\"");
        MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
                                "Basic realm=\"schakel\", charset=\"UTF-8\"");
    }
    MHD_add_response_header(r, "Content-Type", type);
    MHD_add_response_header(r, "Cache-Control", "no-store");
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(r, "Content-Security-Policy", csp);
    MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result send_text(struct MHD_Connection *c, unsigned status, const char *type, char *text)
{
    if (!text)
        return send_buf(c, 503, "application/json", "{\"error\":\"no figures yet\"}", 26,
                        MHD_RESPMEM_PERSISTENT);
    return send_buf(c, status, type, text, strlen(text), MHD_RESPMEM_MUST_FREE);
}

static enum MHD_Result send_error(struct MHD_Connection *c, unsigned status, const char *reason)
{
    char *text = NULL;
    if (asprintf(&text, "{\"error\":\"%s\"}", reason) < 0) return MHD_NO;
    return send_text(c, status, "application/json", text);
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static enum MHD_Result healthz(mon_t *m, struct MHD_Connection *c)
{
    int healthy = 0;
    uint64_t v;
    char *text = mon_current(m, 'h', &healthy, &v);
    pthread_mutex_lock(&m->lock);
    int64_t age = wall_ms() - m->published_ms;
    pthread_mutex_unlock(&m->lock);
    if (text && age > STALE_MS) {
        free(text);
        text = NULL;
        if (asprintf(&text,
                     "{\"ok\":false,\"reasons\":[\"monitor: its figures are %lld s old: the collector "
                     "is stuck\"]}",
                     (long long)(age / 1000)) < 0)
            return MHD_NO;
        healthy = 0;
    }
    return send_text(c, healthy ? 200 : 503, "application/json", text);
}

/* ---- the event stream ---- */

typedef struct {
    mon_t *m;
    uint64_t version;
    char *pending;
    size_t len, off;
} stream_t;

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    stream_t *s = cls;
    while (s->off == s->len) {
        free(s->pending);
        s->pending = NULL;
        s->off = s->len = 0;
        pthread_mutex_lock(&s->m->lock);
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += 15;
        int timed_out = 0;
        while (!s->m->stop && s->m->version == s->version && !timed_out)
            timed_out = pthread_cond_timedwait(&s->m->changed, &s->m->lock, &until) == ETIMEDOUT;
        int stop = s->m->stop;
        pthread_mutex_unlock(&s->m->lock);
        if (stop) return MHD_CONTENT_READER_END_OF_STREAM;
        char *snap = timed_out ? NULL : mon_current(s->m, 's', NULL, &s->version);
        int n = snap ? asprintf(&s->pending, "event: snapshot\ndata: %s\n\n", snap)
                     : asprintf(&s->pending, ": still here\n\n");
        free(snap);
        if (n < 0) return MHD_CONTENT_READER_END_WITH_ERROR;
        s->len = (size_t)n;
    }
    size_t n = s->len - s->off < max ? s->len - s->off : max;
    memcpy(buf, s->pending + s->off, n);
    s->off += n;
    return (ssize_t)n;
}

static void stream_free(void *cls)
{
    stream_t *s = cls;
    pthread_mutex_lock(&s->m->lock);
    s->m->sse_clients--;
    pthread_mutex_unlock(&s->m->lock);
    free(s->pending);
    free(s);
}

static enum MHD_Result events(mon_t *m, struct MHD_Connection *c)
{
    pthread_mutex_lock(&m->lock);
    int full = m->sse_clients >= MAX_STREAMS;
    if (!full) m->sse_clients++;
    pthread_mutex_unlock(&m->lock);
    if (full) return send_error(c, 503, "too many dashboards open: close one and reload");
    stream_t *s = calloc(1, sizeof *s);
    if (s) {
        s->m = m;
        s->pending = mon_current(m, 's', NULL, &s->version);
        char *first = NULL;
        if (s->pending && asprintf(&first, "retry: 2000\nevent: snapshot\ndata: %s\n\n", s->pending) < 0)
            first = NULL;
        free(s->pending);
        s->pending = first;
        s->len = first ? strlen(first) : 0;
    }
    struct MHD_Response *r =
        s ? MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024, stream_read, s, stream_free)
          : NULL;
    if (!r) {
        if (s) stream_free(s);
        else {
            pthread_mutex_lock(&m->lock);
            m->sse_clients--;
            pthread_mutex_unlock(&m->lock);
        }
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", "text/event-stream");
    MHD_add_response_header(r, "Cache-Control", "no-store");
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    enum MHD_Result ret = MHD_queue_response(c, 200, r);
    MHD_destroy_response(r);
    return ret;
}

/* ---- indicators ---- */

/* /indicators (JSON) and /indicators.csv: schakel_indicators_render reads
 * the whole log, so its answer is kept for a minute and shared; a request
 * in that minute gets the copy (the figures are monthly). */
static enum MHD_Result indicators(mon_t *m, struct MHD_Connection *c, int csv)
{
    char why[SCHAKEL_ERRLEN] = "", *copy = NULL;
    size_t len = 0;
    int rc = 0;
    pthread_mutex_lock(&m->ind_lock);
    int64_t now = wall_ms();
    if (!m->ind[csv] || now - m->ind_at_ms[csv] >= 60000) {
        char *out = NULL;
        size_t n = 0;
        rc = schakel_indicators_render(m->node_dir, csv ? "csv" : "json", &out, &n, why);
        if (rc == 0) {
            free(m->ind[csv]);
            m->ind[csv] = out, m->ind_len[csv] = n, m->ind_at_ms[csv] = now;
        }
    }
    if (rc == 0 && (copy = malloc(m->ind_len[csv] + 1)) != NULL) {
        memcpy(copy, m->ind[csv], m->ind_len[csv]);
        copy[m->ind_len[csv]] = 0;
        len = m->ind_len[csv];
    }
    pthread_mutex_unlock(&m->ind_lock);
    if (rc != 0) {
        char *text = NULL;
        json_t *doc = json_pack("{s:s}", "error", why);
        if (doc) text = json_dumps(doc, JSON_COMPACT), json_decref(doc);
        return send_text(c, 503, "application/json", text);
    }
    if (!copy) return MHD_NO;
    return send_buf(c, 200, csv ? "text/csv; charset=utf-8" : "application/json", copy, len,
                    MHD_RESPMEM_MUST_FREE);
}

/* ---- routes ---- */

static enum MHD_Result route(mon_t *m, struct MHD_Connection *c, const char *url)
{
    if (!strcmp(url, "/metrics"))
        return send_text(c, 200, "text/plain; version=0.0.4; charset=utf-8", mon_current(m, 'm', NULL, NULL));
    if (!strcmp(url, "/healthz")) return healthz(m, c);
    if (!strcmp(url, "/api/snapshot"))
        return send_text(c, 200, "application/json", mon_current(m, 's', NULL, NULL));
    if (!strcmp(url, "/events")) return events(m, c);
    if (!strcmp(url, "/indicators")) return indicators(m, c, 0);
    if (!strcmp(url, "/indicators.csv")) return indicators(m, c, 1);
    const char *path = strcmp(url, "/") ? url : "/index.html";
    for (size_t i = 0; i < mon_n_assets; i++)
        if (!strcmp(path, mon_assets[i].path))
            return send_buf(c, 200, mon_assets[i].type, mon_assets[i].data, mon_assets[i].len,
                            MHD_RESPMEM_PERSISTENT);
    return send_error(
        c, 404, "no such page: /, /metrics, /healthz, /events, /api/snapshot, /indicators, /indicators.csv");
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *data, size_t *size, void **con_cls)
{
    (void)version, (void)data;
    mon_t *m = cls;
    static int seen;
    if (!*con_cls) { /* the headers: the body, if any, comes next */
        *con_cls = &seen;
        return MHD_YES;
    }
    if (*size) { /* nothing here takes a body: read it away, then refuse */
        *size = 0;
        *con_cls = (void *)((char *)&seen + 1);
        return MHD_YES;
    }
    if (*con_cls != &seen) return send_error(c, 413, "no request here takes a body");
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
        return send_error(c, 405, "only GET and HEAD are served");
    /* Without a token only this machine can reach it, and a web page only
     * through a DNS name rebound to loopback: its Host names that name.
     * With a token, a page elsewhere has no token; a reverse proxy may
     * send its own name. */
    const char *host = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_HOST);
    if (!m->have_token && !schakel_http_host_ok(m->http_host, m->http_port, host, host ? strlen(host) : 0))
        return send_error(c, MHD_HTTP_FORBIDDEN,
                          "the Host header must name this endpoint: its address and port (or localhost and "
                          "its port); a page of another name is refused");
    if (strcmp(url, "/healthz") != 0 && !mon_authorized(m, c))
        return send_error(c, MHD_HTTP_UNAUTHORIZED,
                          "this page wants the monitor's token: Authorization: Bearer TOKEN (a browser: "
                          "any user name, the token as the password)");
    return route(m, c, url);
}

static void on_error_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls, (void)fmt, (void)ap; /* a bad request is answered, not logged with its bytes */
}

struct MHD_Daemon *mon_http_start(mon_t *m, const char *host, int port)
{
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &sin.sin_addr) != 1) {
        fprintf(stderr, "schakel monitor: --http: %s is not an IPv4 address\n", host);
        return NULL;
    }
    snprintf(m->http_host, sizeof m->http_host, "%s", host);
    m->http_port = port;
    struct rlimit rl; /* room for every connection's descriptor */
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)MAX_CONNECTIONS + 256) {
        rl.rlim_cur = (rlim_t)MAX_CONNECTIONS + 256;
        if (rl.rlim_cur > rl.rlim_max) rl.rlim_cur = rl.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &rl); /* else fewer connections are taken */
    }
    struct MHD_Daemon *d = MHD_start_daemon(
        MHD_USE_AUTO | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_ERROR_LOG,
        (uint16_t)port, NULL, NULL, on_request, m, MHD_OPTION_SOCK_ADDR, &sin, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)IDLE_TIMEOUT_S, MHD_OPTION_CONNECTION_LIMIT, (unsigned)MAX_CONNECTIONS,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)REQUEST_MEMORY, MHD_OPTION_EXTERNAL_LOGGER, on_error_log,
        NULL, MHD_OPTION_END);
    if (!d) {
        fprintf(stderr, "schakel monitor: cannot listen on %s:%d: %s\n", host, port, strerror(errno));
        return NULL;
    }
    if (!mon_is_loopback(host)) /* only with a token (mon_http_guard) */
        schakel_log(SCHAKEL_LOG_INFO, "monitor",
                    "event=http_not_loopback listen=%s:%d auth=token reason=\"the dashboard and /metrics are "
                    "reachable from other machines, with the token; /healthz without\"",
                    host, port);
    return d;
}
