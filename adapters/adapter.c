/* The adapter process: configuration, the three inputs (spool, standard
 * input, local HTTP), the forwarder from the outbox to the broker, and the
 * inbox hand-over. Threads: main (spool and supervision), forwarder,
 * inbox, standard input, and libmicrohttpd's own. They share the outbox
 * (LMDB serialises writers) and nothing else. Log lines, reasons and
 * HTTP answers carry counts, codes, file names, lines and columns, never a
 * row's values (mapping.c's reasons do not quote them). */
#include "adapter.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "client.h"
#include "conn.h"
#include "consumer.h"
#include "crypto.h"
#include "error.h"
#include "fileio.h"
#include "json.h"
#include "logging.h"
#include "mapping.h"
#include "outbox.h"
#include "outbox_cli.h"

#define FORWARD_BATCH 256
#define FILE_MAX ((size_t)256 << 20)
#define HTTP_BODY_MAX ((size_t)8 << 20)
#define SETTLE_MS 1000 /* a spool file untouched this long is complete */

typedef enum { INBOX_NONE, INBOX_DIR, INBOX_COMMAND, INBOX_URL } inbox_kind_t;

typedef struct {
    char base[4096];          /* the configuration file's directory */
    schakel_conn_t conn;
    uint8_t region_key[SCHAKEL_REGION_KEY_LEN];
    schakel_profile_t *profile;
    char state[4200], spool[4200];
    char http_host[64];
    int http_port;
    char http_token_path[4200];
    uint8_t http_token_hash[SCHAKEL_SHA256_LEN]; /* SHA-256 of the token */
    unsigned http_max_connections, http_max_per_ip, http_timeout;
    int http_max_per_ip_set;
    uint32_t http_addr;       /* the bound IPv4 address, host order */
    int use_stdin, once;
    inbox_kind_t inbox;
    char inbox_target[4200];
    schakel_outbox_t *outbox;
    void *ctx;
    atomic_int stop;
    atomic_int stdin_done;
    pthread_mutex_t wake_lock;
    pthread_cond_t wake;      /* new events in the outbox */
    /* The profile's JSON values are shared by every row it maps, and
     * jansson's reference counts are not safe to touch from two threads:
     * the spool (and stdin) and the HTTP thread map one row at a time. */
    pthread_mutex_t map_lock;
    char why[SCHAKEL_ERRLEN];
} adapter_t;

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void wake_forwarder(adapter_t *a)
{
    pthread_mutex_lock(&a->wake_lock);
    pthread_cond_signal(&a->wake);
    pthread_mutex_unlock(&a->wake_lock);
}

/* ---- configuration ---- */

static void resolve(const adapter_t *a, const char *path, char *out, size_t cap)
{
    if (path[0] == '/') snprintf(out, cap, "%s", path);
    else snprintf(out, cap, "%s/%s", a->base, path);
}

static int read_region_key(const char *path, uint8_t key[SCHAKEL_REGION_KEY_LEN], char *why)
{
    int rc = schakel_secret_file(path, key, SCHAKEL_REGION_KEY_LEN, 0, NULL, why);
    if (rc && why) {
        char inner[SCHAKEL_ERRLEN];
        snprintf(inner, sizeof inner, "%s", why);
        schakel_fail(why, SCHAKEL_ECONFIG, "region key: %s", inner);
    }
    return rc;
}

static int configure(adapter_t *a, const char *path, int need_profile)
{
    json_error_t err;
    json_t *c = json_load_file(path, 0, &err);
    if (!c) return schakel_fail(a->why, SCHAKEL_ECONFIG, "%s: line %d: %s", path, err.line, err.text);
    snprintf(a->base, sizeof a->base, "%s", path);
    char *slash = strrchr(a->base, '/');
    if (slash) *slash = 0;
    else snprintf(a->base, sizeof a->base, ".");
    int rc = SCHAKEL_ECONFIG;
    const char *key;
    json_t *v;
    char p[4200];
    json_object_foreach(c, key, v) {
        const char *s = json_string_value(v);
        if (!strcmp(key, "org") && s) snprintf(a->conn.as_org, sizeof a->conn.as_org, "%s", s);
        else if (!strcmp(key, "node") && s) resolve(a, s, a->conn.node_dir, sizeof a->conn.node_dir);
        else if (!strcmp(key, "key") && s) resolve(a, s, a->conn.key_path, sizeof a->conn.key_path);
        else if (!strcmp(key, "server_key") && s) {
            if (strlen(s) == SCHAKEL_Z85_KEY_LEN && !strchr(s, '/')) snprintf(a->conn.server_arg, sizeof a->conn.server_arg, "%s", s);
            else resolve(a, s, a->conn.server_arg, sizeof a->conn.server_arg);
        } else if (!strcmp(key, "endpoint") && s) snprintf(a->conn.endpoint, sizeof a->conn.endpoint, "%s", s);
        else if (!strcmp(key, "pub") && s) snprintf(a->conn.pub_endpoint, sizeof a->conn.pub_endpoint, "%s", s);
        else if (!strcmp(key, "region_key") && s) {
            resolve(a, s, p, sizeof p);
            if (read_region_key(p, a->region_key, a->why)) goto out;
        } else if (!strcmp(key, "profile") && s) {
            resolve(a, s, p, sizeof p);
            if (!(a->profile = schakel_profile_load(p, a->why))) goto out;
        } else if (!strcmp(key, "state") && s) resolve(a, s, a->state, sizeof a->state);
        else if (!strcmp(key, "spool") && s) resolve(a, s, a->spool, sizeof a->spool);
        else if (!strcmp(key, "stdin") && json_is_boolean(v)) a->use_stdin = json_is_true(v);
        else if (!strcmp(key, "http") && s) {
            const char *colon = strrchr(s, ':');
            const char *port = colon ? colon + 1 : s;
            char *end;
            long n = strtol(port, &end, 10);
            if (!*port || *end || n <= 0 || n > 65535 || (colon && colon - s >= (long)sizeof a->http_host)) {
                schakel_fail(a->why, SCHAKEL_ECONFIG, "%s: http: \"host:port\" or a port, e.g. \"127.0.0.1:7480\" "
                             "or \"7480\" (loopback)", path);
                goto out;
            }
            a->http_port = (int)n;
            snprintf(a->http_host, sizeof a->http_host, "%.*s", colon && colon > s ? (int)(colon - s) : 9,
                     colon && colon > s ? s : "127.0.0.1");
        } else if (!strcmp(key, "http_token") && s) {
            resolve(a, s, a->http_token_path, sizeof a->http_token_path);
        } else if ((!strcmp(key, "http_max_connections") || !strcmp(key, "http_max_per_ip") ||
                    !strcmp(key, "http_timeout_seconds")) && json_is_integer(v)) {
            json_int_t n = json_integer_value(v);
            int per_ip = !strcmp(key, "http_max_per_ip");
            if (n < (per_ip ? 0 : 1) || n > 100000) {
                schakel_fail(a->why, SCHAKEL_ECONFIG, "%s: %s: a whole number from %d to 100000", path, key, per_ip ? 0 : 1);
                goto out;
            }
            if (!strcmp(key, "http_max_connections")) a->http_max_connections = (unsigned)n;
            else if (per_ip) a->http_max_per_ip = (unsigned)n, a->http_max_per_ip_set = 1;
            else a->http_timeout = (unsigned)n;
        } else if (!strcmp(key, "inbox") && json_is_object(v)) {
            const char *d = json_string_value(json_object_get(v, "dir"));
            const char *cmd = json_string_value(json_object_get(v, "command"));
            const char *url = json_string_value(json_object_get(v, "url"));
            if (!!d + !!cmd + !!url != 1) {
                schakel_fail(a->why, SCHAKEL_ECONFIG, "%s: inbox: one of {\"dir\"}, {\"command\"}, {\"url\"}", path);
                goto out;
            }
            a->inbox = d ? INBOX_DIR : cmd ? INBOX_COMMAND : INBOX_URL;
            if (d) resolve(a, d, a->inbox_target, sizeof a->inbox_target);
            else snprintf(a->inbox_target, sizeof a->inbox_target, "%s", cmd ? cmd : url);
        } else {
            schakel_fail(a->why, SCHAKEL_ECONFIG, "%s: unknown or mistyped setting \"%s\" (docs/adapters.md)", path, key);
            goto out;
        }
    }
    if (!a->conn.as_org[0]) {
        schakel_fail(a->why, SCHAKEL_ECONFIG, "%s: \"org\" is required", path);
        goto out;
    }
    if (!a->state[0]) {
        schakel_fail(a->why, SCHAKEL_ECONFIG, "%s: \"state\" (a directory for the outbox) is required", path);
        goto out;
    }
    if (a->http_port) {
        struct in_addr in;
        if (!strcmp(a->http_host, "localhost")) snprintf(a->http_host, sizeof a->http_host, "127.0.0.1");
        if (inet_pton(AF_INET, a->http_host, &in) != 1) {
            schakel_fail(a->why, SCHAKEL_ECONFIG, "%s: http: %s is not an IPv4 address (use 127.0.0.1)", path, a->http_host);
            goto out;
        }
        a->http_addr = ntohl(in.s_addr);
        if (!a->http_token_path[0]) snprintf(a->http_token_path, sizeof a->http_token_path, "%s/http.token", a->state);
        if (!a->http_max_connections) a->http_max_connections = 4096;
        if (!a->http_timeout) a->http_timeout = 10;
        if (!a->http_max_per_ip_set) a->http_max_per_ip = (a->http_addr >> 24) == 127 ? 0 : 64;
    }
    if (need_profile && !a->profile) {
        schakel_fail(a->why, SCHAKEL_ECONFIG, "%s: \"profile\" and \"region_key\" are required", path);
        goto out;
    }
    rc = 0;
out:
    json_decref(c);
    return rc;
}

/* ---- mapping rows into the outbox ---- */

typedef struct {
    adapter_t *a;
    schakel_outbox_item_t *items;
    uint8_t (*ids)[16];
    size_t *numbers;      /* row number of each item */
    size_t n, cap;
    json_t *rejects;      /* [{"row": n, "reason": ...}] */
    size_t *bad_rows;     /* row numbers rejected, for copying the rows out */
    size_t n_bad, cap_bad;
} batch_t;

static void batch_reject(batch_t *b, size_t number, const char *reason)
{
    json_array_append_new(b->rejects, json_pack("{s:I, s:s}", "row", (json_int_t)number, "reason", reason));
    if (b->n_bad == b->cap_bad) {
        size_t cap = b->cap_bad ? b->cap_bad * 2 : 16;
        size_t *nb = realloc(b->bad_rows, cap * sizeof *nb);
        if (!nb) return;
        b->bad_rows = nb;
        b->cap_bad = cap;
    }
    b->bad_rows[b->n_bad++] = number;
}

static int map_row(void *arg, const schakel_row_t *row, size_t number)
{
    batch_t *b = arg;
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 64;
        schakel_outbox_item_t *ni = realloc(b->items, cap * sizeof *ni);
        if (ni) b->items = ni;
        uint8_t(*nd)[16] = realloc(b->ids, cap * sizeof *nd);
        if (nd) b->ids = nd;
        size_t *nn = realloc(b->numbers, cap * sizeof *nn);
        if (nn) b->numbers = nn;
        if (!ni || !nd || !nn) return SCHAKEL_ENOMEM;
        b->cap = cap;
    }
    uint8_t *buf;
    size_t len;
    char why[SCHAKEL_ERRLEN] = "";
    pthread_mutex_lock(&b->a->map_lock);
    int mrc = schakel_profile_map(b->a->profile, b->a->conn.as_org, b->a->region_key, row, &buf, &len,
                                  b->ids[b->n], why);
    pthread_mutex_unlock(&b->a->map_lock);
    if (mrc != 0) {
        batch_reject(b, number, why);
        return 0;
    }
    b->items[b->n] = (schakel_outbox_item_t){buf, len, b->ids[b->n], 0};
    b->numbers[b->n] = number;
    b->n++;
    return 0;
}

static void batch_free(batch_t *b)
{
    for (size_t i = 0; i < b->n; i++) free((void *)b->items[i].event);
    free(b->items);
    free(b->ids);
    free(b->numbers);
    free(b->bad_rows);
    json_decref(b->rejects);
}

/* Puts the mapped events; a record that came back changed is a reject. */
static int batch_commit(batch_t *b, char *why)
{
    for (size_t i = 0; i < b->n; i++) b->items[i].id = b->ids[i]; /* realloc may have moved them */
    int rc = b->n ? schakel_outbox_put(b->a->outbox, b->items, b->n, why) : 0;
    if (rc) return rc;
    for (size_t i = 0; i < b->n; i++)
        if (b->items[i].queued < 0)
            batch_reject(b, b->numbers[i], "this record was sent before with other content: the bus keeps "
                                           "the first; send a correction as a new record");
    if (b->n) wake_forwarder(b->a);
    return 0;
}

/* ---- the spool ---- */

/* The elements of a JSON list as JSON lines (malloc'd; NULL if none). */
static char *json_lines(json_t *list, size_t *len)
{
    char *out = NULL;
    size_t i;
    json_t *x;
    *len = 0;
    json_array_foreach(list, i, x) {
        char *t = json_dumps(x, JSON_COMPACT | JSON_ENCODE_ANY | JSON_SORT_KEYS);
        size_t tl = t ? strlen(t) : 0;
        char *nl = t ? realloc(out, *len + tl + 2) : NULL;
        if (nl) {
            out = nl;
            memcpy(out + *len, t, tl);
            out[*len + tl] = '\n';
            *len += tl + 1;
            out[*len] = 0;
        }
        free(t);
    }
    return out;
}

/* A name in dir that does not exist yet: name, or name.1, name.2, ... */
static void free_name(const char *dir, const char *name, char *out, size_t cap)
{
    snprintf(out, cap, "%s/%s", dir, name);
    for (int i = 1; access(out, F_OK) == 0 && i < 10000; i++) snprintf(out, cap, "%s/%s.%d", dir, name, i);
}

static int is_bad_row(const batch_t *b, size_t number)
{
    for (size_t i = 0; i < b->n_bad; i++)
        if (b->bad_rows[i] == number) return 1;
    return 0;
}

/* The text of the given rows: for CSV the header and the rows' records
 * (a row's number is the line it starts on; a quoted cell with a line end
 * keeps its lines together), for JSON lines the lines themselves, for a
 * JSON list the elements as JSON lines. */
static char *bad_lines(const adapter_t *a, const char *text, size_t len, const batch_t *b, int csv, size_t *out_len)
{
    char *out = malloc(len + 2);
    size_t o = 0;
    if (!out) return NULL;
    size_t first = 0;
    while (first < len && strchr(" \t\r\n", text[first]) && text[first]) first++;
    if (csv) {
        int header = 0;
        for (size_t at = 0, line = 1; at < len;) {
            size_t number = line;
            size_t end = schakel_csv_record_end(a->profile, text, len, at, &line);
            if (end <= at) break;
            int blank = 1;
            for (size_t i = at; i < end && blank; i++) blank = strchr(" \t\r\n", text[i]) && text[i];
            if (len >= 3 && at == 0 && !memcmp(text, "\xef\xbb\xbf", 3)) blank = 0;
            if (!blank && (!header || is_bad_row(b, number))) {
                memcpy(out + o, text + at, end - at);
                o += end - at;
                if (out[o - 1] != '\n') out[o++] = '\n';
            }
            header |= !blank;
            at = end;
        }
    } else if (first < len && text[first] == '[') {
        json_error_t err;
        json_t *list = json_loadb(text, len, 0, &err);
        json_t *bad = json_array();
        size_t i;
        json_t *x;
        json_array_foreach(list, i, x) if (is_bad_row(b, i + 1)) json_array_append(bad, x);
        size_t l = 0;
        char *t = json_lines(bad, &l);
        if (t && l <= len) memcpy(out, t, o = l);
        free(t);
        json_decref(bad);
        json_decref(list);
    } else {
        size_t row = 0;
        for (size_t at = 0, start = 0; at <= len; at++) {
            if (at < len && text[at] != '\n') continue;
            row++;
            size_t end = at < len ? at + 1 : at;
            if (end > start && is_bad_row(b, row)) {
                memcpy(out + o, text + start, end - start);
                o += end - start;
            }
            start = end;
        }
    }
    *out_len = o;
    return out;
}

static void process_file(adapter_t *a, const char *name)
{
    char path[4300], done_dir[4300], rej_dir[4300], dest[4400];
    snprintf(path, sizeof path, "%s/%s", a->spool, name);
    size_t len = strlen(name);
    int csv = len > 4 && !strcasecmp(name + len - 4, ".csv");
    int jsonl = (len > 6 && !strcasecmp(name + len - 6, ".jsonl")) || (len > 5 && !strcasecmp(name + len - 5, ".json"));
    snprintf(done_dir, sizeof done_dir, "%s/done", a->spool);
    snprintf(rej_dir, sizeof rej_dir, "%s/rejected", a->spool);
    char why[SCHAKEL_ERRLEN] = "";
    batch_t b = {.a = a};
    b.rejects = json_array();
    size_t size = 0;
    char *text = csv || jsonl ? schakel_file_read(path, FILE_MAX, &size) : NULL;
    int rc;
    if (!csv && !jsonl) {
        rc = schakel_fail(why, SCHAKEL_EINVAL, "not a .csv or .jsonl file");
    } else if (!text) {
        rc = schakel_fail(why, SCHAKEL_EIO, "cannot read: %s", strerror(errno));
    } else {
        rc = csv ? schakel_rows_csv(a->profile, text, size, map_row, &b, why)
                 : schakel_rows_jsonl(text, size, map_row, &b, why);
    }
    if (rc == 0) rc = batch_commit(&b, why);
    if (rc == SCHAKEL_ESTORE || rc == SCHAKEL_EFULL || rc == SCHAKEL_ENOMEM) {
        /* nothing acknowledged: the file stays and is tried again */
        schakel_log(SCHAKEL_LOG_ERROR, "adapter", "event=file_retry file=%s reason=\"%s\"", name, why);
        schakel_outbox_error(a->outbox, why, now_ms());
        batch_free(&b);
        free(text);
        return;
    }
    if (rc) { /* the whole file is unreadable: it goes to rejected/ as it is */
        batch_reject(&b, 0, why);
        b.n_bad = 0;
    }
    size_t queued = 0, known = 0;
    for (size_t i = 0; i < b.n; i++) queued += b.items[i].queued > 0, known += b.items[i].queued == 0;
    if (json_array_size(b.rejects)) {
        char reasons[4500];
        free_name(rej_dir, name, dest, sizeof dest);
        snprintf(reasons, sizeof reasons, "%s.reasons.jsonl", dest);
        size_t n;
        json_t *r;
        json_array_foreach(b.rejects, n, r) json_object_set_new(r, "file", json_string(name));
        size_t llen = 0;
        char *lines = json_lines(b.rejects, &llen);
        /* the bad rows themselves, ready to be fixed and dropped back in */
        size_t blen = 0;
        char *bad = rc == 0 ? bad_lines(a, text, size, &b, csv, &blen) : NULL;
        int wrote = schakel_file_write_atomic(reasons, lines ? lines : "", llen) == 0 &&
                    (rc ? rename(path, dest) == 0 : schakel_file_write_atomic(dest, bad ? bad : "", blen) == 0);
        free(lines);
        free(bad);
        if (!wrote) schakel_log(SCHAKEL_LOG_ERROR, "adapter", "event=reject_not_written file=%s reason=\"%s\"", name, strerror(errno));
    }
    if (rc == 0) {
        free_name(done_dir, name, dest, sizeof dest);
        if (rename(path, dest) != 0)
            schakel_log(SCHAKEL_LOG_ERROR, "adapter", "event=not_moved file=%s reason=\"%s\"", name, strerror(errno));
    }
    schakel_log(rc ? SCHAKEL_LOG_WARN : SCHAKEL_LOG_INFO, "adapter",
                "event=file_done file=%s queued=%zu known=%zu rejected=%zu%s%s%s", name, queued, known,
                json_array_size(b.rejects), rc ? " reason=\"" : "", rc ? why : "", rc ? "\"" : "");
    batch_free(&b);
    free(text);
}

static int cmp_str(const void *x, const void *y)
{
    return strcmp(*(char *const *)x, *(char *const *)y);
}

/* Handles every settled file in the spool, oldest name first. Returns how
 * many files the spool holds (handled, or still being written). */
static size_t scan_spool(adapter_t *a)
{
    size_t seen = 0;
    DIR *d = opendir(a->spool);
    if (!d) return 0;
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    int64_t now = now_ms();
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        size_t l = strlen(e->d_name);
        char path[4400];
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", a->spool, e->d_name);
        if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) continue;
        seen++;
        if ((l > 4 && !strcmp(e->d_name + l - 4, ".tmp")) || (l > 5 && !strcmp(e->d_name + l - 5, ".part")))
            continue; /* still being written */
        int64_t mtime = (int64_t)st.st_mtim.tv_sec * 1000 + st.st_mtim.tv_nsec / 1000000;
        if (now - mtime < SETTLE_MS) continue;
        if (n == cap) {
            char **nn = realloc(names, (cap = cap ? cap * 2 : 16) * sizeof *nn);
            if (!nn) break;
            names = nn;
        }
        names[n++] = strdup(e->d_name);
    }
    closedir(d);
    if (n) qsort(names, n, sizeof *names, cmp_str);
    for (size_t i = 0; i < n; i++) {
        if (names[i] && !atomic_load(&a->stop)) process_file(a, names[i]);
        free(names[i]);
    }
    free(names);
    return seen;
}

/* ---- standard input: JSON lines, one acknowledgement line each ---- */

static void *stdin_main(void *arg)
{
    adapter_t *a = arg;
    char *line = NULL;
    size_t cap = 0, number = 0;
    ssize_t got;
    while (!atomic_load(&a->stop) && (got = getline(&line, &cap, stdin)) >= 0) {
        number++;
        batch_t b = {.a = a};
        b.rejects = json_array();
        char why[SCHAKEL_ERRLEN] = "";
        int rc = schakel_rows_jsonl_at(line, (size_t)got, number, 0, map_row, &b, why);
        if (rc == SCHAKEL_EINVAL) batch_reject(&b, number, why);
        else if (rc == 0) rc = batch_commit(&b, why);
        char idhex[33] = "";
        if (b.n) schakel_hex_encode(b.ids[0], 16, idhex);
        json_t *ack = json_pack("{s:I}", "line", (json_int_t)number);
        if (json_array_size(b.rejects)) {
            json_object_set_new(ack, "status", json_string("rejected"));
            json_object_set(ack, "reason", json_object_get(json_array_get(b.rejects, 0), "reason"));
        } else if (rc) {
            json_object_set_new(ack, "status", json_string("error"));
            json_object_set_new(ack, "reason", json_string(why));
        } else if (b.n) {
            json_object_set_new(ack, "event_id", json_string(idhex));
            json_object_set_new(ack, "status", json_string(b.items[0].queued > 0 ? "queued" : "known"));
        }
        if (json_object_size(ack) > 1) {
            char *t = json_dumps(ack, JSON_COMPACT);
            printf("%s\n", t);
            fflush(stdout);
            free(t);
        }
        json_decref(ack);
        batch_free(&b);
    }
    free(line);
    atomic_store(&a->stdin_done, 1);
    return NULL;
}

/* ---- the local HTTP endpoint ---- */

/* Who may post: a program of this organisation that has the token, talking
 * to this address. A web page in a browser on the machine has no token and
 * cannot read the file; its requests carry an Origin (or a Host named by a
 * DNS name it controls, for DNS rebinding), and are refused before the
 * token is even looked at. */

typedef struct {
    char *body;
    size_t len;
    int too_big;
} upload_t;

static enum MHD_Result reply(struct MHD_Connection *c, unsigned status, json_t *doc)
{
    char *text = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    struct MHD_Response *r = MHD_create_response_from_buffer(text ? strlen(text) : 0, text ? text : (char *)"",
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

/* Is name (a Host header's name, or an Origin's host) this endpoint? The
 * bound address itself; on loopback also "localhost"; bound to 0.0.0.0,
 * any IPv4 address (an address cannot be rebound like a DNS name). */
static int host_name_ok(const adapter_t *a, const char *name, size_t len)
{
    char n[64];
    struct in_addr in;
    if (!len || len >= sizeof n) return 0;
    memcpy(n, name, len);
    n[len] = 0;
    if (!strcmp(n, a->http_host)) return 1;
    if ((a->http_addr >> 24) == 127 && (!strcasecmp(n, "localhost") || !strcmp(n, "127.0.0.1"))) return 1;
    if (a->http_addr == 0 && (inet_pton(AF_INET, n, &in) == 1 || !strcasecmp(n, "localhost"))) return 1;
    return 0;
}

/* "name[:port]" against the bound name and port. */
static int host_port_ok(const adapter_t *a, const char *hp, size_t len)
{
    const char *colon = memchr(hp, ':', len);
    size_t nlen = colon ? (size_t)(colon - hp) : len;
    long port = 80;
    if (colon) {
        char p[8];
        size_t plen = len - nlen - 1;
        char *end;
        if (!plen || plen >= sizeof p) return 0;
        memcpy(p, colon + 1, plen);
        p[plen] = 0;
        port = strtol(p, &end, 10);
        if (*end) return 0;
    }
    return port == a->http_port && host_name_ok(a, hp, nlen);
}

/* Does the request present the token? Compared as SHA-256 digests, in
 * time that does not depend on where they differ. */
static int token_ok(const adapter_t *a, const char *auth)
{
    if (!auth || strncasecmp(auth, "Bearer ", 7) != 0) return 0;
    const char *t = auth + 7;
    while (*t == ' ') t++;
    size_t n = strlen(t);
    while (n && (t[n - 1] == ' ' || t[n - 1] == '\t')) n--;
    uint8_t h[SCHAKEL_SHA256_LEN];
    schakel_sha256(t, n, h);
    return schakel_memeq_ct(h, a->http_token_hash, sizeof h) == 0;
}

static int is_json_type(const char *ct)
{
    if (!ct) return 0;
    while (*ct == ' ') ct++;
    size_t n = strcspn(ct, "; ");
    return n == 16 && !strncasecmp(ct, "application/json", 16);
}

static json_t *status_json(adapter_t *a);

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
            return refuse(c, 403, "host", "the Host header must name this endpoint: the address and port of the "
                                          "adapter's \"http\" setting");
        if (origin && (strncmp(origin, "http://", 7) != 0 || !host_port_ok(a, origin + 7, strlen(origin + 7))))
            return refuse(c, 403, "origin", "a request from a web page of another origin is refused");
        if (site && strcmp(site, "same-origin") != 0 && strcmp(site, "none") != 0)
            return refuse(c, 403, "origin", "a cross-site request is refused");
        if (!token_ok(a, MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization")))
            return refuse(c, 401, "token", "send \"Authorization: Bearer <token>\" with the token from the "
                                           "adapter's http_token file");
        if (!strcmp(method, "GET") && !strcmp(url, "/status")) return reply(c, 200, status_json(a));
        if (strcmp(method, "POST") != 0 || strcmp(url, "/events") != 0)
            return reply(c, 404, json_pack("{s:s}", "error", "POST /events (JSON lines or a JSON list of rows), GET /status"));
        if (!is_json_type(MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Type")))
            return refuse(c, 415, "content_type", "send the rows with \"Content-Type: application/json\"");
        *con_cls = u = calloc(1, sizeof *u);
        return u ? MHD_YES : MHD_NO;
    }
    if (*size) {
        if (u->len + *size > HTTP_BODY_MAX) {
            u->too_big = 1;
        } else {
            char *nb = realloc(u->body, u->len + *size + 1);
            if (nb) {
                memcpy(nb + u->len, data, *size);
                u->body = nb;
                u->len += *size;
            }
        }
        *size = 0;
        return MHD_YES;
    }
    if (u->too_big) return reply(c, 413, json_pack("{s:s}", "error", "body over 8 MiB: send fewer rows per request"));
    batch_t b = {.a = a};
    b.rejects = json_array();
    char why[SCHAKEL_ERRLEN] = "";
    int rc = schakel_rows_jsonl(u->body ? u->body : "", u->len, map_row, &b, why);
    if (rc == 0) rc = batch_commit(&b, why);
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
                json_array_append_new(out, json_pack("{s:I, s:s, s:s}", "row", (json_int_t)b.numbers[i], "event_id", idhex,
                                                     "status", b.items[i].queued ? "queued" : "known"));
        }
        size_t i;
        json_t *r;
        json_array_foreach(b.rejects, i, r) {
            json_object_set_new(r, "status", json_string("rejected"));
            json_array_append(out, r);
        }
    }
    batch_free(&b);
    return reply(c, status, out);
}

/* Reads the token file, or makes it with a fresh random token when it does
 * not exist. Refuses a file that another user can read or that belongs to
 * another user, and a token shorter than 32 characters. */
static int load_http_token(adapter_t *a)
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
        strcat(hex, "\n");
        int wfd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        int ok = wfd >= 0 && write(wfd, hex, 65) == 65 && fsync(wfd) == 0;
        if (wfd >= 0) close(wfd);
        memset(hex, 0, sizeof hex);
        if (!ok) return schakel_fail(a->why, SCHAKEL_EIO, "http_token %s: cannot create it: %s", path, strerror(errno));
        schakel_log(SCHAKEL_LOG_INFO, "adapter", "event=http_token_created file=%s", path);
        fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    }
    if (fd < 0) return schakel_fail(a->why, SCHAKEL_ECONFIG, "http_token %s: cannot read it: %s", path, strerror(errno));
    struct stat st;
    char buf[4097];
    ssize_t n = -1;
    int rc = 0;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
        rc = schakel_fail(a->why, SCHAKEL_ECONFIG, "http_token %s: not a regular file", path);
    else if (st.st_mode & 077)
        rc = schakel_fail(a->why, SCHAKEL_ECONFIG, "http_token %s: mode %04o lets other users read the token: "
                          "make it readable by the adapter's user only (chmod 600 %s) and, as it may have been "
                          "read, put a new token in it", path, (unsigned)(st.st_mode & 07777), path);
    else if (st.st_uid != geteuid())
        rc = schakel_fail(a->why, SCHAKEL_ECONFIG, "http_token %s: belongs to another user (uid %u): it must "
                          "belong to the user the adapter runs as", path, (unsigned)st.st_uid);
    else if ((n = read(fd, buf, sizeof buf - 1)) < 0)
        rc = schakel_fail(a->why, SCHAKEL_EIO, "http_token %s: %s", path, strerror(errno));
    close(fd);
    if (rc) return rc;
    size_t len = (size_t)n;
    while (len && (buf[len - 1] == '\n' || buf[len - 1] == '\r' || buf[len - 1] == ' ')) len--;
    for (size_t i = 0; i < len; i++)
        if (buf[i] < 0x21 || buf[i] > 0x7e) rc = SCHAKEL_ECONFIG;
    if (rc || len < 32 || len == sizeof buf - 1)
        rc = schakel_fail(a->why, SCHAKEL_ECONFIG, "http_token %s: one line of 32 to 4096 printable characters "
                          "without spaces (delete the file and the adapter makes one)", path);
    else schakel_sha256(buf, len, a->http_token_hash);
    memset(buf, 0, sizeof buf);
    return rc;
}

static void on_http_done(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode t)
{
    (void)cls, (void)c, (void)t;
    upload_t *u = *con_cls;
    if (u) free(u->body);
    free(u);
    *con_cls = NULL;
}

/* ---- the forwarder ---- */

static void *forward_main(void *arg)
{
    adapter_t *a = arg;
    schakel_client_options_t o = {0};
    o.endpoint = a->conn.endpoint;
    o.server_public = a->conn.server_public;
    o.keys = &a->conn.keys;
    char why[SCHAKEL_ERRLEN] = "";
    schakel_client_t *c = schakel_client_new(a->ctx, &o, why);
    if (!c) {
        schakel_log(SCHAKEL_LOG_ERROR, "adapter", "event=forwarder_failed reason=\"%s\"", why);
        return NULL;
    }
    int backoff = 100;
    while (!atomic_load(&a->stop)) {
        uint8_t *bufs[FORWARD_BATCH];
        size_t lens[FORWARD_BATCH];
        uint64_t keys[FORWARD_BATCH];
        size_t n = schakel_outbox_peek(a->outbox, FORWARD_BATCH, bufs, lens, keys);
        if (!n) {
            pthread_mutex_lock(&a->wake_lock);
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += 200000000;
            if (ts.tv_nsec >= 1000000000) ts.tv_sec++, ts.tv_nsec -= 1000000000;
            pthread_cond_timedwait(&a->wake, &a->wake_lock, &ts);
            pthread_mutex_unlock(&a->wake_lock);
            continue;
        }
        Schakel__V1__Ack *ack = NULL;
        int rc = schakel_client_publish(c, (const uint8_t *const *)bufs, lens, n, &ack, 10000);
        for (size_t i = 0; i < n; i++) free(bufs[i]);
        if (rc) {
            snprintf(why, sizeof why, "%s", rc == SCHAKEL_EAUTH ? "the broker refused this organisation's key"
                                                                : "no ACK from the broker: will send again");
            schakel_log(SCHAKEL_LOG_WARN, "adapter", "event=forward_retry events=%zu reason=\"%s\"", n, why);
            schakel_outbox_error(a->outbox, why, now_ms());
            for (int t = 0; t < backoff && !atomic_load(&a->stop); t += 50) usleep(50000);
            backoff = backoff * 2 > 5000 ? 5000 : backoff * 2;
            continue;
        }
        backoff = 100;
        char reasons[FORWARD_BATCH][SCHAKEL_ERRLEN + 32];
        const char *rp[FORWARD_BATCH];
        size_t rejected = 0;
        for (size_t i = 0; i < n; i++) {
            const Schakel__V1__AckEntry *e = i < ack->n_entries ? ack->entries[i] : NULL;
            int code = e ? (int)e->code : (int)ack->batch_code;
            rp[i] = NULL;
            if (code) {
                snprintf(reasons[i], sizeof reasons[i], "rejected by the broker: %s",
                         e && e->reason[0] ? e->reason : ack->batch_reason);
                schakel_reason_scrub(reasons[i]); /* the validator's reasons may quote a value */
                rp[i] = reasons[i];
                rejected++;
            }
        }
        if (rejected) {
            schakel_log(SCHAKEL_LOG_ERROR, "adapter", "event=dead_letters count=%zu reason=\"%s\"", rejected,
                        rp[0] ? rp[0] : "");
            schakel_outbox_error(a->outbox, rp[0] ? rp[0] : "rejected by the broker", now_ms());
        }
        schakel__v1__ack__free_unpacked(ack, NULL);
        if (schakel_outbox_done(a->outbox, keys, rp, n, now_ms()) != 0)
            schakel_log(SCHAKEL_LOG_ERROR, "adapter", "event=outbox_not_updated");
    }
    schakel_client_destroy(&c);
    return NULL;
}

/* ---- the inbox ---- */

static size_t curl_discard(char *p, size_t size, size_t n, void *arg)
{
    (void)p, (void)arg;
    return size * n;
}

static int hand_over(adapter_t *a, const Schakel__V1__Delivered *d, const char *text, const char *idhex,
                     const char *type, char *why)
{
    switch (a->inbox) {
    case INBOX_DIR: {
        char path[4400];
        snprintf(path, sizeof path, "%s/%020llu-%s.json", a->inbox_target, (unsigned long long)d->seq, idhex);
        if (schakel_file_write_atomic(path, text, strlen(text)) != 0)
            return schakel_fail(why, SCHAKEL_EIO, "cannot write to the inbox %s: %s", a->inbox_target, strerror(errno));
        int fd = open(a->inbox_target, O_RDONLY | O_DIRECTORY);
        if (fd >= 0) {
            fsync(fd);
            close(fd);
        }
        return 0;
    }
    case INBOX_COMMAND: {
        int pipefd[2];
        if (pipe(pipefd) != 0) return schakel_fail(why, SCHAKEL_EIO, "pipe: %s", strerror(errno));
        pid_t pid = fork();
        if (pid == 0) {
            char seq[32];
            snprintf(seq, sizeof seq, "%llu", (unsigned long long)d->seq);
            setenv("SCHAKEL_EVENT_ID", idhex, 1);
            setenv("SCHAKEL_EVENT_TYPE", type, 1);
            setenv("SCHAKEL_SEQ", seq, 1);
            dup2(pipefd[0], 0);
            close(pipefd[0]);
            close(pipefd[1]);
            execl("/bin/sh", "sh", "-c", a->inbox_target, (char *)NULL);
            _exit(127);
        }
        close(pipefd[0]);
        size_t len = strlen(text), off = 0;
        while (off < len) {
            ssize_t w = write(pipefd[1], text + off, len - off);
            if (w <= 0) break;
            off += (size_t)w;
        }
        close(pipefd[1]);
        int st = 0;
        if (pid < 0 || waitpid(pid, &st, 0) < 0) return schakel_fail(why, SCHAKEL_EIO, "cannot run the inbox command");
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
            return schakel_fail(why, SCHAKEL_EIO, "the inbox command failed (status %d)", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
        return 0;
    }
    case INBOX_URL: {
        CURL *cu = curl_easy_init();
        if (!cu) return schakel_fail(why, SCHAKEL_ENOMEM, "curl");
        struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
        char hdr[64];
        snprintf(hdr, sizeof hdr, "Schakel-Event-Id: %s", idhex);
        h = curl_slist_append(h, hdr);
        curl_easy_setopt(cu, CURLOPT_URL, a->inbox_target);
        curl_easy_setopt(cu, CURLOPT_HTTPHEADER, h);
        curl_easy_setopt(cu, CURLOPT_POSTFIELDS, text);
        curl_easy_setopt(cu, CURLOPT_TIMEOUT, 30L);
        curl_easy_setopt(cu, CURLOPT_WRITEFUNCTION, curl_discard);
        CURLcode r = curl_easy_perform(cu);
        long code = 0;
        curl_easy_getinfo(cu, CURLINFO_RESPONSE_CODE, &code);
        curl_slist_free_all(h);
        curl_easy_cleanup(cu);
        if (r != CURLE_OK) return schakel_fail(why, SCHAKEL_EIO, "inbox URL: %s", curl_easy_strerror(r));
        if (code < 200 || code > 299) return schakel_fail(why, SCHAKEL_EIO, "inbox URL answered %ld", code);
        return 0;
    }
    default: return 0;
    }
}

/* What the organisation's system gets for one record of its stream. */
static char *inbox_json(const Schakel__V1__Delivered *d, char idhex[33], char type[40])
{
    char at[32];
    schakel_time_format(d->recorded_at, at);
    json_t *o = json_pack("{s:I, s:s}", "seq", (json_int_t)d->seq, "recorded_at", at);
    schakel_envelope_t *e = d->event.len ? schakel_envelope_decode(d->event.data, d->event.len, NULL) : NULL;
    snprintf(idhex, 33, "erased-%llu", (unsigned long long)d->seq);
    snprintf(type, 40, "erased");
    if (e) {
        json_object_set_new(o, "event", schakel_json_from_envelope(e));
        schakel_hex_encode(e->event_id.data, 16, idhex);
        snprintf(type, 40, "%s", schakel_event_type_name(e->type));
        schakel_envelope_free(e);
    } else {
        json_object_set_new(o, "erased", json_true());
    }
    char *text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return text;
}

static void *inbox_main(void *arg)
{
    adapter_t *a = arg;
    char stream[80], why[SCHAKEL_ERRLEN] = "";
    snprintf(stream, sizeof stream, "org/%s", a->conn.as_org);
    schakel_consumer_options_t o = {0};
    o.endpoint = a->conn.endpoint;
    o.pub_endpoint = a->conn.pub_endpoint;
    o.server_public = a->conn.server_public;
    o.keys = &a->conn.keys;
    o.stream = stream;
    o.from_seq = schakel_outbox_get(a->outbox, "inbox_cursor") + 1;
    schakel_consumer_t *c = schakel_consumer_new(a->ctx, &o, why);
    if (!c) {
        schakel_log(SCHAKEL_LOG_ERROR, "adapter", "event=inbox_failed reason=\"%s\"", why);
        return NULL;
    }
    while (!atomic_load(&a->stop)) {
        const Schakel__V1__Delivered *d;
        int rc = schakel_consumer_next(c, &d, 300, why);
        if (rc == SCHAKEL_ETIMEOUT) continue;
        if (rc) {
            schakel_log(SCHAKEL_LOG_WARN, "adapter", "event=inbox_retry reason=\"%s\"", why);
            schakel_outbox_error(a->outbox, why, now_ms());
            sleep(1);
            continue;
        }
        char idhex[33], type[40];
        char *text = inbox_json(d, idhex, type);
        for (int backoff = 1000; !atomic_load(&a->stop); backoff = backoff * 2 > 30000 ? 30000 : backoff * 2) {
            if (text && hand_over(a, d, text, idhex, type, why) == 0) {
                /* a position in org/<us>: a delivery decided late (a hold
                 * released) has a later position than its event's seq */
                schakel_outbox_set(a->outbox, "inbox_cursor", d->position ? d->position : d->seq);
                schakel_log(SCHAKEL_LOG_INFO, "adapter", "event=delivered seq=%llu type=%s",
                            (unsigned long long)d->seq, type);
                break;
            }
            schakel_log(SCHAKEL_LOG_WARN, "adapter", "event=handover_retry seq=%llu reason=\"%s\"",
                        (unsigned long long)d->seq, text ? why : "out of memory");
            schakel_outbox_error(a->outbox, why, now_ms());
            for (int t = 0; t < backoff && !atomic_load(&a->stop); t += 50) usleep(50000);
        }
        free(text);
    }
    schakel_consumer_destroy(&c);
    return NULL;
}

/* ---- status ---- */

static json_t *status_json(adapter_t *a)
{
    schakel_outbox_status_t s;
    schakel_outbox_status(a->outbox, &s);
    char last_ack[32] = "", last_err[32] = "", oldest[32] = "";
    if (s.last_ack_ms) schakel_time_format(s.last_ack_ms, last_ack);
    if (s.last_error_ms) schakel_time_format(s.last_error_ms, last_err);
    if (s.oldest_pending_ms) schakel_time_format(s.oldest_pending_ms, oldest);
    json_t *o = json_pack("{s:s, s:I, s:I, s:I, s:I}", "org", a->conn.as_org, "outbox_depth", (json_int_t)s.pending,
                          "acked", (json_int_t)s.acked, "dead_letters", (json_int_t)s.dead, "inbox_cursor",
                          (json_int_t)s.inbox_cursor);
    json_object_set_new(o, "oldest_unacknowledged", oldest[0] ? json_string(oldest) : json_null());
    if (s.oldest_pending_ms)
        json_object_set_new(o, "oldest_unacknowledged_seconds", json_integer((now_ms() - s.oldest_pending_ms) / 1000));
    json_object_set_new(o, "last_ack", last_ack[0] ? json_string(last_ack) : json_null());
    json_object_set_new(o, "last_error", s.last_error[0] ? json_string(s.last_error) : json_null());
    json_object_set_new(o, "last_error_at", last_err[0] ? json_string(last_err) : json_null());
    return o;
}

/* ---- the commands ---- */

static const char usage[] =
    "usage: schakel adapter --config FILE [--stdin] [--once]\n"
    "       schakel adapter status --config FILE\n"
    "       schakel adapter dead-letters --config FILE\n"
    "       schakel adapter requeue --config FILE (--id EVENT_ID | --all)\n"
    "       schakel adapter check --profile FILE [--org ORG] [--region-key FILE] EXPORT...\n"
    "\n"
    "Runs an organisation's adapter (docs/adapters.md): rows from the spool\n"
    "directory, standard input (--stdin: JSON lines, one acknowledgement line\n"
    "each) and POST /events on the local HTTP endpoint are mapped by the\n"
    "profile, kept in the outbox, and forwarded to the broker until ACKed;\n"
    "what the bus delivers to the organisation goes to its inbox. --once: take\n"
    "the spool and standard input, wait until every event is ACKed, then stop.\n"
    "Stops cleanly on SIGTERM; a SIGKILL loses nothing acknowledged.\n"
    "\n"
    "status: outbox depth, oldest unacknowledged event, last ACK, last error.\n"
    "dead-letters: the events the broker refused for good, a JSON line each\n"
    "(event_id, type, refused_at, reason). requeue: after fixing the cause,\n"
    "puts them back in the outbox to be sent again (exit 1: no such letter).\n"
    "check: maps an export with a profile and prints the events as JSON lines\n"
    "and the rows it would reject, without sending anything (to write a profile).\n";

static atomic_int *stop_flag;

static void on_signal(int sig)
{
    (void)sig;
    if (stop_flag) atomic_store(stop_flag, 1);
}

/* dead-letters and requeue (outbox_cli.c): they need only the state */
static int cmd_outbox(int argc, char **argv)
{
    adapter_t a;
    memset(&a, 0, sizeof a);
    const char *config = NULL;
    for (int i = 2; i < argc; i++)
        if (!strcmp(argv[i], "--config") && i + 1 < argc) config = argv[++i];
    int rc = config ? configure(&a, config, 0) : schakel_fail(a.why, SCHAKEL_ECONFIG, "--config FILE is required");
    schakel_profile_destroy(&a.profile);
    memset(a.region_key, 0, sizeof a.region_key);
    if (rc) fprintf(stderr, "schakel adapter %s: %s\n", argv[1], a.why);
    return rc ? 2 : schakel_outbox_cli(argc, argv, a.state);
}

static int cmd_status(int argc, char **argv)
{
    adapter_t a;
    memset(&a, 0, sizeof a);
    const char *config = NULL;
    for (int i = 2; i < argc; i++)
        if (!strcmp(argv[i], "--config") && i + 1 < argc) config = argv[++i];
    if (!config) {
        fprintf(stderr, "schakel adapter status: --config FILE is required\n");
        return 2;
    }
    if (configure(&a, config, 0) != 0) {
        fprintf(stderr, "schakel adapter status: %s\n", a.why);
        return 2;
    }
    a.outbox = schakel_outbox_open(a.state, 1, a.why);
    schakel_profile_destroy(&a.profile);
    if (!a.outbox) {
        fprintf(stderr, "schakel adapter status: %s\n", a.why);
        return 1;
    }
    json_t *st = status_json(&a);
    char *t = json_dumps(st, JSON_INDENT(2));
    printf("%s\n", t);
    free(t);
    json_decref(st);
    schakel_outbox_close(&a.outbox);
    return 0;
}

typedef struct {
    const schakel_profile_t *p;
    const char *org;
    const uint8_t *key;
    const char *file;
    size_t ok, bad;
} check_t;

static int check_row(void *arg, const schakel_row_t *row, size_t number)
{
    check_t *c = arg;
    uint8_t *buf, id[16];
    size_t len;
    char why[SCHAKEL_ERRLEN] = "";
    if (schakel_profile_map(c->p, c->org, c->key, row, &buf, &len, id, why) != 0) {
        json_t *r = json_pack("{s:s, s:I, s:s}", "file", c->file, "row", (json_int_t)number, "rejected", why);
        char *t = json_dumps(r, JSON_COMPACT);
        printf("%s\n", t);
        free(t);
        json_decref(r);
        c->bad++;
        return 0;
    }
    schakel_envelope_t *e = schakel_envelope_decode(buf, len, NULL);
    json_t *j = schakel_json_from_envelope(e);
    char *t = json_dumps(j, JSON_COMPACT);
    printf("%s\n", t);
    free(t);
    json_decref(j);
    schakel_envelope_free(e);
    free(buf);
    c->ok++;
    return 0;
}

static int cmd_check(int argc, char **argv)
{
    const char *profile = NULL, *org = "check-org", *keyfile = NULL;
    int files = 0, status = 0;
    uint8_t key[SCHAKEL_REGION_KEY_LEN];
    schakel_random(key, sizeof key); /* without a region key: pseudonyms are only for show */
    schakel_profile_t *p = NULL;
    char why[SCHAKEL_ERRLEN] = "";
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--profile") && i + 1 < argc) profile = argv[++i];
        else if (!strcmp(argv[i], "--org") && i + 1 < argc) org = argv[++i];
        else if (!strcmp(argv[i], "--region-key") && i + 1 < argc) keyfile = argv[++i];
    }
    if (!profile || !(p = schakel_profile_load(profile, why))) {
        fprintf(stderr, "schakel adapter check: %s\n", profile ? why : "--profile FILE is required");
        return 2;
    }
    if (keyfile && read_region_key(keyfile, key, why) != 0) {
        fprintf(stderr, "schakel adapter check: %s\n", why);
        schakel_profile_destroy(&p);
        return 2;
    }
    for (int i = 2; i < argc; i++) {
        if (argv[i][0] == '-') {
            i++;
            continue;
        }
        size_t len;
        char *text = schakel_file_read(argv[i], FILE_MAX, &len);
        check_t c = {p, org, key, argv[i], 0, 0};
        size_t l = strlen(argv[i]);
        int rc = !text ? schakel_fail(why, SCHAKEL_EIO, "%s: %s", argv[i], strerror(errno))
                 : l > 4 && !strcasecmp(argv[i] + l - 4, ".csv") ? schakel_rows_csv(p, text, len, check_row, &c, why)
                                                                  : schakel_rows_jsonl(text, len, check_row, &c, why);
        free(text);
        fprintf(stderr, "schakel adapter check: %s: %zu events, %zu rows rejected%s%s\n", argv[i], c.ok, c.bad,
                rc ? ": " : "", rc ? why : "");
        if (rc || c.bad) status = 1;
        files++;
    }
    schakel_profile_destroy(&p);
    memset(key, 0, sizeof key);
    if (!files) fprintf(stderr, "schakel adapter check: give one or more export files\n");
    return files ? status : 2;
}

static int make_dirs(adapter_t *a)
{
    char p[4400];
    const char *dirs[] = {a->spool, "done", "rejected"};
    if (!a->spool[0]) return 0;
    for (int i = 0; i < 3; i++) {
        if (i) snprintf(p, sizeof p, "%s/%s", a->spool, dirs[i]);
        else snprintf(p, sizeof p, "%s", dirs[0]);
        if (mkdir(p, 0700) != 0 && errno != EEXIST)
            return schakel_fail(a->why, SCHAKEL_EIO, "cannot create %s: %s", p, strerror(errno));
    }
    if (a->inbox == INBOX_DIR && mkdir(a->inbox_target, 0700) != 0 && errno != EEXIST)
        return schakel_fail(a->why, SCHAKEL_EIO, "cannot create %s: %s", a->inbox_target, strerror(errno));
    return 0;
}

static int cmd_run(int argc, char **argv)
{
    adapter_t *a = calloc(1, sizeof *a);
    const char *config = NULL;
    int rc = 2;
    if (!a) return 1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--config") && i + 1 < argc) config = argv[++i];
        else if (!strcmp(argv[i], "--stdin")) a->use_stdin = 1;
        else if (!strcmp(argv[i], "--once")) a->once = 1;
        else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(usage, stdout);
            free(a);
            return 0;
        } else {
            fprintf(stderr, "schakel adapter: unexpected %s\n\n%s", argv[i], usage);
            free(a);
            return 2;
        }
    }
    int use_stdin = a->use_stdin;
    if (!config || configure(a, config, 1) != 0 || make_dirs(a) != 0 ||
        schakel_conn_finish(&a->conn, "adapter") != 0) {
        fprintf(stderr, "schakel adapter: %s\n", config ? a->why : "--config FILE is required (see --help)");
        goto out;
    }
    a->use_stdin |= use_stdin;
    if (a->profile) { /* minted ids only this organisation can compute */
        uint8_t idk[SCHAKEL_SHA256_LEN];
        static const char label[] = "schakel/v1/adapter-id-key";
        if (schakel_hmac_sha256(a->conn.keys.sign_secret, sizeof a->conn.keys.sign_secret,
                                (const uint8_t *)label, sizeof label - 1, idk) != 0) {
            fprintf(stderr, "schakel adapter: cannot derive the id key\n");
            goto out;
        }
        schakel_profile_set_id_key(a->profile, idk);
        memset(idk, 0, sizeof idk);
    }
    if (!(a->outbox = schakel_outbox_open(a->state, 0, a->why))) {
        fprintf(stderr, "schakel adapter: %s\n", a->why);
        rc = 1;
        goto out;
    }
    if (a->http_port && !a->once && load_http_token(a) != 0) {
        fprintf(stderr, "schakel adapter: %s\n", a->why);
        goto out;
    }
    a->ctx = zmq_ctx_new();
    pthread_mutex_init(&a->wake_lock, NULL);
    pthread_mutex_init(&a->map_lock, NULL);
    pthread_cond_init(&a->wake, NULL);
    stop_flag = &a->stop;
    schakel_signals_on_stop(on_signal);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    pthread_t fwd, inbox, in;
    pthread_create(&fwd, NULL, forward_main, a);
    int have_inbox = a->inbox != INBOX_NONE && !a->once;
    if (have_inbox) pthread_create(&inbox, NULL, inbox_main, a);
    if (a->use_stdin) pthread_create(&in, NULL, stdin_main, a);
    struct MHD_Daemon *http = NULL;
    rc = 0;
    if (a->http_port && !a->once) {
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
        http = MHD_start_daemon(MHD_USE_AUTO | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG,
                                (uint16_t)a->http_port, NULL, NULL, on_http, a, MHD_OPTION_SOCK_ADDR, &sin,
                                MHD_OPTION_NOTIFY_COMPLETED, on_http_done, a, MHD_OPTION_CONNECTION_TIMEOUT,
                                a->http_timeout, MHD_OPTION_CONNECTION_LIMIT, a->http_max_connections,
                                MHD_OPTION_PER_IP_CONNECTION_LIMIT, a->http_max_per_ip, MHD_OPTION_END);
        if (!http) {
            fprintf(stderr, "schakel adapter: http: cannot listen on %s:%d\n", a->http_host, a->http_port);
            atomic_store(&a->stop, 1);
            rc = 1;
        } else if ((a->http_addr >> 24) != 127) {
            schakel_log(SCHAKEL_LOG_WARN, "adapter",
                        "event=http_not_loopback listen=%s:%d reason=\"the HTTP input is reachable from other "
                        "machines: anyone who gets the token there can post as %s; use 127.0.0.1 unless another "
                        "machine must post\"", a->http_host, a->http_port, a->conn.as_org);
        }
    }
    schakel_log(SCHAKEL_LOG_INFO, "adapter", "event=started org=%s profile=%s spool=%s http=%d inbox=%d",
                a->conn.as_org, schakel_profile_kind(a->profile), a->spool[0] ? "yes" : "no", a->http_port,
                (int)a->inbox);
    while (!atomic_load(&a->stop)) {
        size_t files = a->spool[0] ? scan_spool(a) : 0;
        if (a->once && !files && (!a->use_stdin || atomic_load(&a->stdin_done))) {
            schakel_outbox_status_t s;
            schakel_outbox_status(a->outbox, &s);
            if (!s.pending) break;
        }
        for (int t = 0; t < 4 && !atomic_load(&a->stop); t++) usleep(50000);
    }
    atomic_store(&a->stop, 1);
    wake_forwarder(a);
    if (http) MHD_stop_daemon(http);
    pthread_join(fwd, NULL);
    if (have_inbox) pthread_join(inbox, NULL);
    if (a->use_stdin) {
        if (!atomic_load(&a->stdin_done)) pthread_cancel(in); /* blocked in a read */
        pthread_join(in, NULL);
    }
    schakel_log(SCHAKEL_LOG_INFO, "adapter", "event=stopped org=%s", a->conn.as_org);
    curl_global_cleanup();
    zmq_ctx_term(a->ctx);
    pthread_cond_destroy(&a->wake);
    pthread_mutex_destroy(&a->wake_lock);
    pthread_mutex_destroy(&a->map_lock);
out:
    stop_flag = NULL;
    schakel_outbox_close(&a->outbox);
    schakel_profile_destroy(&a->profile);
    schakel_keys_wipe(&a->conn.keys);
    memset(a->region_key, 0, sizeof a->region_key);
    free(a);
    return rc;
}

int schakel_adapter_cli(int argc, char **argv)
{
    if (argc >= 2 && !strcmp(argv[1], "status")) return cmd_status(argc, argv);
    if (argc >= 2 && !strcmp(argv[1], "check")) return cmd_check(argc, argv);
    if (argc >= 2 && (!strcmp(argv[1], "dead-letters") || !strcmp(argv[1], "requeue"))) return cmd_outbox(argc, argv);
    if (argc < 2) {
        fputs(usage, stderr);
        return 2;
    }
    return cmd_run(argc, argv);
}
