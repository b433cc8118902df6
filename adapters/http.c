/* The local HTTP endpoint: POST /events (JSON lines, mapped and put in
 * the outbox like a spool file, answered only once durable) and GET
 * /status. Who may post: a program of this organisation that has the
 * token, talking to this address. A web page in a browser on the machine
 * has no token and cannot read the file; its requests carry an Origin (or
 * a Host named by a DNS name it controls, for DNS rebinding), and are
 * refused before the token is even looked at. Runs in libmicrohttpd's
 * thread. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "adapter_impl.h"
#include "fileio.h"
#include "http_host.h"

typedef struct {
    char *body;
    size_t len;
    int too_big;
    int no_memory; /* a chunk could not be kept: nothing of the request is parsed */
} upload_t;

static enum MHD_Result reply(struct MHD_Connection *c, unsigned status, json_t *doc)
{
    char *text = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    struct MHD_Response *r =
        MHD_create_response_from_buffer(text ? strlen(text) : 0, text ? text : (char *)"",
                                        text ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
    MHD_add_response_header(r, "Content-Type", "application/json");
    MHD_add_response_header(r, "Cache-Control", "no-store");
    if (status == 401) MHD_add_response_header(r, "WWW-Authenticate", "Bearer realm=\"schakel-adapter\"");
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result refuse(struct MHD_Connection *c, unsigned status, const char *what, const char *reason)
{
    schakel_log(SCHAKEL_LOG_WARN, "adapter", "event=http_refused status=%u why=%s", status, what);
    return reply(c, status, json_pack("{s:s}", "error", reason));
}

/* "name[:port]" against the bound address and port (http_host.h). */
static int host_port_ok(const adapter_t *a, const char *hp, size_t len)
{
    return schakel_http_host_ok(a->http_host, a->http_port, hp, len);
}

/* Does the request present the token? Compared as SHA-256 digests, in
 * time that does not depend on where they differ. */
static int token_ok(const adapter_t *a, const char *auth)
{
    uint8_t h[SCHAKEL_SHA256_LEN];
    return schakel_bearer_sha256(auth, h) == 0 && schakel_memeq_ct(h, a->http_token_hash, sizeof h) == 0;
}

static int is_json_type(const char *ct)
{
    if (!ct) return 0;
    while (*ct == ' ') ct++;
    size_t n = strcspn(ct, "; ");
    return n == 16 && !strncasecmp(ct, "application/json", 16);
}

static enum MHD_Result on_http(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                               const char *version, const char *data, size_t *size, void **con_cls)
{
    (void)version;
    adapter_t *a = cls;
    upload_t *u = *con_cls;
    if (!u) { /* the headers: who is asking, before anything is read */
        const char *host = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Host");
        const char *origin = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Origin");
        const char *site = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Sec-Fetch-Site");
        if (!host || !host_port_ok(a, host, strlen(host)))
            return refuse(c, 403, "host",
                          "the Host header must name this endpoint: the address and port of the "
                          "adapter's \"http\" setting");
        if (origin &&
            (strncmp(origin, "http://", 7) != 0 || !host_port_ok(a, origin + 7, strlen(origin + 7))))
            return refuse(c, 403, "origin", "a request from a web page of another origin is refused");
        if (site && strcmp(site, "same-origin") != 0 && strcmp(site, "none") != 0)
            return refuse(c, 403, "origin", "a cross-site request is refused");
        if (!token_ok(a, MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization")))
            return refuse(c, 401, "token",
                          "send \"Authorization: Bearer <token>\" with the token from the "
                          "adapter's http_token file");
        if (!strcmp(method, "GET") && !strcmp(url, "/status")) return reply(c, 200, adapter_status_json(a));
        if (strcmp(method, "POST") != 0 || strcmp(url, "/events") != 0)
            return reply(
                c, 404,
                json_pack("{s:s}", "error", "POST /events (JSON lines or a JSON list of rows), GET /status"));
        if (!is_json_type(MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Type")))
            return refuse(c, 415, "content_type", "send the rows with \"Content-Type: application/json\"");
        *con_cls = u = calloc(1, sizeof *u);
        return u ? MHD_YES : MHD_NO;
    }
    if (*size) {
        if (u->len + *size > HTTP_BODY_MAX) {
            u->too_big = 1;
        } else if (!u->no_memory) {
            char *nb = realloc(u->body, u->len + *size + 1);
            if (nb) {
                memcpy(nb + u->len, data, *size);
                u->body = nb;
                u->len += *size;
            } else { /* a body with a hole would splice rows: none of it is read */
                u->no_memory = 1;
                free(u->body);
                u->body = NULL;
                u->len = 0;
            }
        }
        *size = 0;
        return MHD_YES;
    }
    if (u->too_big)
        return reply(c, 413, json_pack("{s:s}", "error", "body over 8 MiB: send fewer rows per request"));
    if (u->no_memory)
        return reply(c, 503,
                     json_pack("[{s:s, s:s}]", "status", "retry_later", "reason",
                               "out of memory while receiving the body: nothing of it was read; post again"));
    batch_t b = {.a = a};
    b.rejects = json_array();
    char why[SCHAKEL_ERRLEN] = "";
    int rc = schakel_rows_jsonl(u->body ? u->body : "", u->len, adapter_map_row, &b, why);
    if (rc == 0) rc = adapter_batch_commit(&b, why);
    json_t *out = json_array();
    unsigned status = 200;
    if (rc == SCHAKEL_EINVAL) {
        status = 400;
        json_array_append_new(out, json_pack("{s:s, s:s}", "status", "rejected", "reason", why));
    } else if (rc) {
        status = 503; /* nothing was kept: send again later */
        json_array_append_new(out, json_pack("{s:s, s:s}", "status", "retry_later", "reason", why));
    } else {
        for (size_t i = 0; i < b.n; i++) {
            char idhex[33];
            schakel_hex_encode(b.ids[i], 16, idhex);
            if (b.items[i].queued >= 0)
                json_array_append_new(out, json_pack("{s:I, s:s, s:s}", "row", (json_int_t)b.numbers[i],
                                                     "event_id", idhex, "status",
                                                     b.items[i].queued ? "queued" : "known"));
        }
        size_t i;
        json_t *r;
        json_array_foreach(b.rejects, i, r) {
            json_object_set_new(r, "status", json_string("rejected"));
            json_array_append(out, r);
        }
    }
    adapter_batch_free(&b);
    return reply(c, status, out);
}

/* Reads the token file, or makes it with a fresh random token when it does
 * not exist. Refuses a file that another user can read or that belongs to
 * another user, and a token shorter than 32 characters. */
int adapter_load_http_token(adapter_t *a)
{
    const char *path = a->http_token_path;
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT) {
        uint8_t raw[32];
        char hex[66];
        if (schakel_random(raw, sizeof raw) != 0)
            return schakel_fail(a->why, SCHAKEL_ECRYPTO, "http_token %s: no random source", path);
        schakel_hex_encode(raw, sizeof raw, hex);
        memset(raw, 0, sizeof raw);
        hex[64] = '\n', hex[65] = 0;
        /* whole or not at all: written and synced under path.tmp, then
         * linked to path (which fails if another start made one first),
         * so that a reader never finds it empty or half written */
        char tmp[sizeof a->http_token_path + sizeof ".tmp"];
        snprintf(tmp, sizeof tmp, "%s.tmp", path);
        (void)unlink(tmp); /* a crashed earlier try's */
        int wfd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        int ok = wfd >= 0 && write(wfd, hex, 65) == 65 && fsync(wfd) == 0;
        if (wfd >= 0) (void)close(wfd); /* after fsync: read back below */
        memset(hex, 0, sizeof hex);
        if (ok && link(tmp, path) != 0 && errno != EEXIST) ok = 0;
        int e = errno;
        (void)unlink(tmp);
        errno = e;
        if (!ok)
            return schakel_fail(a->why, SCHAKEL_EIO, "http_token %s: cannot create it: %s", path,
                                strerror(errno));
        schakel_log(SCHAKEL_LOG_INFO, "adapter", "event=http_token_created file=%s", path);
        fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    }
    if (fd < 0)
        return schakel_fail(a->why, SCHAKEL_ECONFIG, "http_token %s: cannot read it: %s", path,
                            strerror(errno));
    struct stat st;
    char buf[4097];
    ssize_t n = -1;
    int rc = 0;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
        rc = schakel_fail(a->why, SCHAKEL_ECONFIG, "http_token %s: not a regular file", path);
    else if (st.st_mode & 077)
        rc = schakel_fail(
            a->why, SCHAKEL_ECONFIG,
            "http_token %s: mode %04o lets other users read the token: "
            "make it readable by the adapter's user only (chmod 600 %s) and, as it may have been "
            "read, put a new token in it",
            path, (unsigned)(st.st_mode & 07777), path);
    else if (st.st_uid != geteuid())
        rc = schakel_fail(a->why, SCHAKEL_ECONFIG,
                          "http_token %s: belongs to another user (uid %u): it must "
                          "belong to the user the adapter runs as",
                          path, (unsigned)st.st_uid);
    else if ((n = read(fd, buf, sizeof buf - 1)) < 0)
        rc = schakel_fail(a->why, SCHAKEL_EIO, "http_token %s: %s", path, strerror(errno));
    (void)close(fd); /* read only */
    if (rc) return rc;
    size_t len = n > 0 ? (size_t)n : 0;
    while (len && (buf[len - 1] == '\n' || buf[len - 1] == '\r' || buf[len - 1] == ' ')) len--;
    for (size_t i = 0; i < len; i++)
        if (buf[i] < 0x21 || buf[i] > 0x7e) rc = SCHAKEL_ECONFIG;
    if (rc || len < 32 || len == sizeof buf - 1)
        rc = schakel_fail(a->why, SCHAKEL_ECONFIG,
                          "http_token %s: one line of 32 to 4096 printable characters "
                          "without spaces (delete the file and the adapter makes one)",
                          path);
    else schakel_sha256(buf, len, a->http_token_hash);
    memset(buf, 0, sizeof buf);
    return rc;
}

static void on_http_done(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode t)
{
    (void)cls, (void)c, (void)t;
    upload_t *u = *con_cls;
    if (u) free(u->body);
    free(u);
    *con_cls = NULL;
}

/* Starts the local HTTP endpoint on a->http_addr:http_port (libmicrohttpd
 * runs it in its own thread, calling on_http). NULL when it cannot
 * listen: said on stderr, and the adapter is asked to stop. */
struct MHD_Daemon *adapter_http_start(adapter_t *a)
{
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_port = htons((uint16_t)a->http_port);
    sin.sin_addr.s_addr = htonl(a->http_addr);
    /* room for the connection limit: many idle connections must not
     * run the process out of descriptors */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)a->http_max_connections + 256) {
        rl.rlim_cur = (rlim_t)a->http_max_connections + 256;
        if (rl.rlim_cur > rl.rlim_max) rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    /* poll or epoll, never select(): no FD_SETSIZE to run into */
    struct MHD_Daemon *http = MHD_start_daemon(
        MHD_USE_AUTO | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, (uint16_t)a->http_port, NULL,
        NULL, on_http, a, MHD_OPTION_SOCK_ADDR, &sin, MHD_OPTION_NOTIFY_COMPLETED, on_http_done, a,
        MHD_OPTION_CONNECTION_TIMEOUT, a->http_timeout, MHD_OPTION_CONNECTION_LIMIT, a->http_max_connections,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, a->http_max_per_ip, MHD_OPTION_END);
    if (!http) {
        fprintf(stderr, "schakel adapter: http: cannot listen on %s:%d\n", a->http_host, a->http_port);
        atomic_store(&a->stop, 1);
    } else if ((a->http_addr >> 24) != 127) {
        schakel_log(SCHAKEL_LOG_WARN, "adapter",
                    "event=http_not_loopback listen=%s:%d reason=\"the HTTP input is reachable from other "
                    "machines: anyone who gets the token there can post as %s; use 127.0.0.1 unless another "
                    "machine must post\"",
                    a->http_host, a->http_port, a->conn.as_org);
    }
    return http;
}
