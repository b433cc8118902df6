/* Connection flags and node directories; see conn.h. */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "error.h"
#include "fileio.h"
#include "conn.h"

const char schakel_conn_help[] =
    "  --node DIR          use the node in DIR (endpoints and keys from DIR/node.json)\n"
    "  --as ORG            with --node: act as organisation ORG (DIR/keys/ORG.key)\n"
    "  --endpoint EP       broker command endpoint (default tcp://127.0.0.1:7400)\n"
    "  --pub EP            broker notification endpoint (default tcp://127.0.0.1:7401)\n"
    "  --server-key K      broker public key: a .pub file or 40 Z85 characters\n"
    "  --key FILE          this organisation's .key file\n";

static int copy_endpoint(char *out, size_t cap, const char *file, const char *key, const char *ep, char *why)
{
    size_t n = strlen(ep);
    if (n >= cap)
        return schakel_fail(why, SCHAKEL_ECONFIG, "%s: \"%s\" is %zu characters long; at most %zu", file, key,
                            n, cap - 1);
    memcpy(out, ep, n + 1);
    return 0;
}

static int read_node(schakel_conn_t *c, char *why)
{
    char path[SCHAKEL_PATH_MAX];
    int rc = schakel_path_join(path, sizeof path, c->node_dir, "node.json", why);
    if (rc) return rc;
    json_error_t err;
    json_t *n = json_load_file(path, 0, &err);
    if (!n)
        return schakel_fail(why, SCHAKEL_ECONFIG, "%s: %s (is %s a node directory?)", path, err.text,
                            c->node_dir);
    const char *ep = json_string_value(json_object_get(n, "endpoint"));
    const char *pep = json_string_value(json_object_get(n, "pub"));
    const char *keys = json_string_value(json_object_get(n, "keys"));
    /* an endpoint cut short would name another host or port: refused */
    if (!c->endpoint[0] && ep) rc = copy_endpoint(c->endpoint, sizeof c->endpoint, path, "endpoint", ep, why);
    if (!rc && !c->pub_endpoint[0] && pep)
        rc = copy_endpoint(c->pub_endpoint, sizeof c->pub_endpoint, path, "pub", pep, why);
    if (!rc && keys && !c->server_arg[0])
        rc =
            schakel_path_fmt(c->server_arg, sizeof c->server_arg, why, "%s/%s/broker.pub", c->node_dir, keys);
    if (!rc && keys && !c->key_path[0]) {
        if (!c->as_org[0]) {
            rc = schakel_fail(why, SCHAKEL_ECONFIG, "with --node, say which organisation with --as ORG");
        } else {
            rc = schakel_path_fmt(c->key_path, sizeof c->key_path, why, "%s/%s/%s.key", c->node_dir, keys,
                                  c->as_org);
        }
    }
    json_decref(n);
    return rc;
}

int schakel_conn_finish(schakel_conn_t *c, char *why)
{
    int rc;
    if (c->node_dir[0] && (rc = read_node(c, why)) != 0) return rc;
    if (!c->endpoint[0]) snprintf(c->endpoint, sizeof c->endpoint, "tcp://127.0.0.1:7400");
    if (!c->pub_endpoint[0]) snprintf(c->pub_endpoint, sizeof c->pub_endpoint, "tcp://127.0.0.1:7401");
    if (!c->server_arg[0])
        return schakel_fail(why, SCHAKEL_ECONFIG,
                            "give the broker's public key with --server-key (or --node DIR)");
    char e[SCHAKEL_ERRLEN] = "";
    if (strlen(c->server_arg) == SCHAKEL_Z85_KEY_LEN && !strchr(c->server_arg, '/')) {
        memcpy(c->server_public, c->server_arg, SCHAKEL_Z85_KEY_LEN + 1); /* 40 characters and the NUL */
    } else {
        schakel_keys_t k;
        if (schakel_keys_load(&k, c->server_arg, e) != 0)
            return schakel_fail(why, SCHAKEL_ECONFIG, "broker key %s: %s", c->server_arg, e);
        snprintf(c->server_public, sizeof c->server_public, "%s", k.curve_public);
        schakel_keys_wipe(&k);
    }
    if (!c->key_path[0])
        return schakel_fail(why, SCHAKEL_ECONFIG,
                            "give this organisation's key with --key FILE (or --node DIR --as ORG)");
    if (schakel_keys_load(&c->keys, c->key_path, e) != 0 || !c->keys.has_secret)
        return schakel_fail(why, SCHAKEL_ECONFIG, "%s: %s", c->key_path, e[0] ? e : "no secret keys in it");
    return 0;
}
