/* The adapter's configuration file (docs/adapters.md, "Configuration"):
 * each setting read and checked, paths made relative to the file, an
 * unknown or mistyped setting an error that names it; and the
 * directories the adapter works in. The first thing `schakel adapter`
 * does, before any thread starts. */
#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "adapter_impl.h"
#include "fileio.h"

static void resolve(const adapter_t *a, const char *path, char *out, size_t cap)
{
    if (path[0] == '/') snprintf(out, cap, "%s", path);
    else snprintf(out, cap, "%s/%s", a->base, path);
}

int adapter_read_region_key(const char *path, uint8_t key[SCHAKEL_REGION_KEY_LEN], char *why)
{
    int rc = schakel_secret_file(path, key, SCHAKEL_REGION_KEY_LEN, 0, NULL, why);
    if (rc && why) {
        char inner[SCHAKEL_ERRLEN];
        snprintf(inner, sizeof inner, "%s", why);
        schakel_fail(why, SCHAKEL_ECONFIG, "region key: %s", inner);
    }
    return rc;
}

int adapter_configure(adapter_t *a, const char *path, int need_profile)
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
            if (strlen(s) == SCHAKEL_Z85_KEY_LEN && !strchr(s, '/'))
                snprintf(a->conn.server_arg, sizeof a->conn.server_arg, "%s", s);
            else resolve(a, s, a->conn.server_arg, sizeof a->conn.server_arg);
        } else if (!strcmp(key, "endpoint") && s)
            snprintf(a->conn.endpoint, sizeof a->conn.endpoint, "%s", s);
        else if (!strcmp(key, "pub") && s)
            snprintf(a->conn.pub_endpoint, sizeof a->conn.pub_endpoint, "%s", s);
        else if (!strcmp(key, "region_key") && s) {
            resolve(a, s, p, sizeof p);
            if (adapter_read_region_key(p, a->region_key, a->why)) goto out;
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
                schakel_fail(a->why, SCHAKEL_ECONFIG,
                             "%s: http: \"host:port\" or a port, e.g. \"127.0.0.1:7480\" "
                             "or \"7480\" (loopback)",
                             path);
                goto out;
            }
            a->http_port = (int)n;
            snprintf(a->http_host, sizeof a->http_host, "%.*s", colon && colon > s ? (int)(colon - s) : 9,
                     colon && colon > s ? s : "127.0.0.1");
        } else if (!strcmp(key, "http_token") && s) {
            resolve(a, s, a->http_token_path, sizeof a->http_token_path);
        } else if ((!strcmp(key, "http_max_connections") || !strcmp(key, "http_max_per_ip") ||
                    !strcmp(key, "http_timeout_seconds")) &&
                   json_is_integer(v)) {
            json_int_t n = json_integer_value(v);
            int per_ip = !strcmp(key, "http_max_per_ip");
            if (n < (per_ip ? 0 : 1) || n > 100000) {
                schakel_fail(a->why, SCHAKEL_ECONFIG, "%s: %s: a whole number from %d to 100000", path, key,
                             per_ip ? 0 : 1);
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
                schakel_fail(a->why, SCHAKEL_ECONFIG, "%s: inbox: one of {\"dir\"}, {\"command\"}, {\"url\"}",
                             path);
                goto out;
            }
            a->inbox = d ? INBOX_DIR : cmd ? INBOX_COMMAND : INBOX_URL;
            if (d) resolve(a, d, a->inbox_target, sizeof a->inbox_target);
            else snprintf(a->inbox_target, sizeof a->inbox_target, "%s", cmd ? cmd : url);
        } else {
            schakel_fail(a->why, SCHAKEL_ECONFIG, "%s: unknown or mistyped setting \"%s\" (docs/adapters.md)",
                         path, key);
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
            schakel_fail(a->why, SCHAKEL_ECONFIG, "%s: http: %s is not an IPv4 address (use 127.0.0.1)", path,
                         a->http_host);
            goto out;
        }
        a->http_addr = ntohl(in.s_addr);
        if (!a->http_token_path[0])
            snprintf(a->http_token_path, sizeof a->http_token_path, "%s/http.token", a->state);
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

int adapter_make_dirs(adapter_t *a)
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
