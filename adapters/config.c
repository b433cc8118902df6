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

/* A path of the setting key, relative to the configuration file's
 * directory unless absolute; room: what the adapter adds to it later. */
static int resolve(adapter_t *a, const char *key, const char *path, char *out, size_t cap, size_t room)
{
    char why[SCHAKEL_ERRLEN];
    int rc = path[0] == '/' ? schakel_path_fmt(out, cap - room, why, "%s", path)
                            : schakel_path_join(out, cap - room, a->base, path, why);
    return rc ? schakel_fail(a->why, SCHAKEL_ECONFIG, "%s: %s", key, why) : 0;
}

/* A setting that is not a path, copied whole or refused: a cut id or
 * endpoint names another one. */
static int copy_setting(adapter_t *a, const char *file, const char *key, const char *s, char *out, size_t cap)
{
    if (strlen(s) >= cap)
        return schakel_fail(a->why, SCHAKEL_ECONFIG, "%s: %s: too long (at most %zu characters)", file, key,
                            cap - 1);
    memcpy(out, s, strlen(s) + 1);
    return 0;
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
    int rc = SCHAKEL_ECONFIG;
    if (schakel_path_fmt(a->base, sizeof a->base, a->why, "%s", path)) goto out;
    char *slash = strrchr(a->base, '/');
    if (slash) *slash = 0;
    else memcpy(a->base, ".", 2);
    const char *key;
    json_t *v;
    char p[SCHAKEL_PATH_MAX];
    json_object_foreach(c, key, v) {
        const char *s = json_string_value(v);
        if (!strcmp(key, "org") && s) {
            if (copy_setting(a, path, key, s, a->conn.as_org, sizeof a->conn.as_org)) goto out;
        } else if (!strcmp(key, "node") && s) {
            if (resolve(a, key, s, a->conn.node_dir, sizeof a->conn.node_dir, 0)) goto out;
        } else if (!strcmp(key, "key") && s) {
            if (resolve(a, key, s, a->conn.key_path, sizeof a->conn.key_path, 0)) goto out;
        } else if (!strcmp(key, "server_key") && s) {
            if (strlen(s) == SCHAKEL_Z85_KEY_LEN && !strchr(s, '/'))
                memcpy(a->conn.server_arg, s, SCHAKEL_Z85_KEY_LEN + 1);
            else if (resolve(a, key, s, a->conn.server_arg, sizeof a->conn.server_arg, 0)) goto out;
        } else if (!strcmp(key, "endpoint") && s) {
            if (copy_setting(a, path, key, s, a->conn.endpoint, sizeof a->conn.endpoint)) goto out;
        } else if (!strcmp(key, "pub") && s) {
            if (copy_setting(a, path, key, s, a->conn.pub_endpoint, sizeof a->conn.pub_endpoint)) goto out;
        } else if (!strcmp(key, "region_key") && s) {
            if (resolve(a, key, s, p, sizeof p, 0) || adapter_read_region_key(p, a->region_key, a->why))
                goto out;
        } else if (!strcmp(key, "profile") && s) {
            if (resolve(a, key, s, p, sizeof p, 0)) goto out;
            if (!(a->profile = schakel_profile_load(p, a->why))) goto out;
        } else if (!strcmp(key, "state") && s) { /* room for its files: data.mdb, outbox.key, http.token */
            if (resolve(a, key, s, a->state, sizeof a->state,
                        sizeof "/inbox-set-aside/01234567890123456789.json.tmp"))
                goto out;
        } else if (!strcmp(key, "spool") && s) {
            if (resolve(a, key, s, a->spool, sizeof a->spool, SPOOL_ROOM)) goto out;
        } else if (!strcmp(key, "stdin") && json_is_boolean(v)) a->use_stdin = json_is_true(v);
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
            if (resolve(a, key, s, a->http_token_path, sizeof a->http_token_path, sizeof ".tmp")) goto out;
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
            const char *target = cmd ? cmd : url;
            if (d) {
                if (resolve(a, "inbox.dir", d, a->inbox_target, sizeof a->inbox_target, INBOX_ROOM)) goto out;
            } else if (copy_setting(a, path, cmd ? "inbox.command" : "inbox.url", target, a->inbox_target,
                                    sizeof a->inbox_target)) {
                goto out;
            }
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
        if (!a->http_token_path[0]) /* fits: state has room for it */
            SCHAKEL_DROP(schakel_path_join(a->http_token_path, sizeof a->http_token_path, a->state,
                                           "http.token", NULL));
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
    char p[SCHAKEL_PATH_MAX];
    const char *dirs[] = {"", "done", "rejected"};
    for (int i = 0; a->spool[0] && i < 3; i++) {
        int rc = schakel_path_join(p, sizeof p, a->spool, dirs[i], a->why);
        if (rc) return rc;
        if (mkdir(p, 0700) != 0 && errno != EEXIST)
            return schakel_fail(a->why, SCHAKEL_EIO, "cannot create %s: %s", p, strerror(errno));
    }
    if (a->inbox == INBOX_DIR && mkdir(a->inbox_target, 0700) != 0 && errno != EEXIST)
        return schakel_fail(a->why, SCHAKEL_EIO, "cannot create %s: %s", a->inbox_target, strerror(errno));
    /* the inbox's set-aside notes, and where an operator moves them to re-deliver */
    const char *notes[] = {"", "inbox-set-aside", "inbox-redeliver"}; /* "": the state, first */
    for (int i = 0; a->inbox != INBOX_NONE && i < 3; i++) {
        int rc = schakel_path_join(p, sizeof p, a->state, notes[i], a->why);
        if (rc) return rc;
        if (mkdir(p, 0700) != 0 && errno != EEXIST)
            return schakel_fail(a->why, SCHAKEL_EIO, "cannot create %s: %s", p, strerror(errno));
    }
    return 0;
}
