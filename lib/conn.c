/* Connection flags and node directories; see conn.h. */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "error.h"
#include "conn.h"

const char schakel_conn_help[] =
    "  --node DIR          use the node in DIR (endpoints and keys from DIR/node.json)\n"
    "  --as ORG            with --node: act as organisation ORG (DIR/keys/ORG.key)\n"
    "  --endpoint EP       broker command endpoint (default tcp://127.0.0.1:7400)\n"
    "  --pub EP            broker notification endpoint (default tcp://127.0.0.1:7401)\n"
    "  --server-key K      broker public key: a .pub file or 40 Z85 characters\n"
    "  --key FILE          this organisation's .key file\n";

int schakel_conn_flag(schakel_conn_t *c, int argc, char **argv, int *i)
{
    const char *a = argv[*i];
    char *dst = NULL;
    size_t cap = 0;
    if (!strcmp(a, "--node")) dst = c->node_dir, cap = sizeof c->node_dir;
    else if (!strcmp(a, "--as")) dst = c->as_org, cap = sizeof c->as_org;
    else if (!strcmp(a, "--endpoint")) dst = c->endpoint, cap = sizeof c->endpoint;
    else if (!strcmp(a, "--pub")) dst = c->pub_endpoint, cap = sizeof c->pub_endpoint;
    else if (!strcmp(a, "--server-key")) dst = c->server_arg, cap = sizeof c->server_arg;
    else if (!strcmp(a, "--key")) dst = c->key_path, cap = sizeof c->key_path;
    else return 0;
    if (*i + 1 >= argc) {
        fprintf(stderr, "schakel: %s needs a value\n", a);
        return -1;
    }
    snprintf(dst, cap, "%s", argv[++*i]);
    return 1;
}

static int read_node(schakel_conn_t *c, const char *cmd)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/node.json", c->node_dir);
    json_error_t err;
    json_t *n = json_load_file(path, 0, &err);
    if (!n) {
        fprintf(stderr, "schakel %s: %s: %s (is %s a node directory?)\n", cmd, path, err.text,
                c->node_dir);
        return -1;
    }
    const char *ep = json_string_value(json_object_get(n, "endpoint"));
    const char *pep = json_string_value(json_object_get(n, "pub"));
    const char *keys = json_string_value(json_object_get(n, "keys"));
    int rc = 0;
    if (!c->endpoint[0] && ep) snprintf(c->endpoint, sizeof c->endpoint, "%s", ep);
    if (!c->pub_endpoint[0] && pep) snprintf(c->pub_endpoint, sizeof c->pub_endpoint, "%s", pep);
    if (keys && !c->server_arg[0])
        snprintf(c->server_arg, sizeof c->server_arg, "%s/%s/broker.pub", c->node_dir, keys);
    if (keys && !c->key_path[0]) {
        if (!c->as_org[0]) {
            fprintf(stderr, "schakel %s: with --node, say which organisation with --as ORG\n", cmd);
            rc = -1;
        } else {
            snprintf(c->key_path, sizeof c->key_path, "%s/%s/%s.key", c->node_dir, keys, c->as_org);
        }
    }
    json_decref(n);
    return rc;
}

int schakel_conn_finish(schakel_conn_t *c, const char *cmd)
{
    if (c->node_dir[0] && read_node(c, cmd)) return -1;
    if (!c->endpoint[0]) snprintf(c->endpoint, sizeof c->endpoint, "tcp://127.0.0.1:7400");
    if (!c->pub_endpoint[0]) snprintf(c->pub_endpoint, sizeof c->pub_endpoint, "tcp://127.0.0.1:7401");
    if (!c->server_arg[0]) {
        fprintf(stderr, "schakel %s: give the broker's public key with --server-key (or --node DIR)\n", cmd);
        return -1;
    }
    char why[SCHAKEL_ERRLEN] = "";
    if (strlen(c->server_arg) == SCHAKEL_Z85_KEY_LEN && !strchr(c->server_arg, '/')) {
        snprintf(c->server_public, sizeof c->server_public, "%s", c->server_arg);
    } else {
        schakel_keys_t k;
        if (schakel_keys_load(&k, c->server_arg, why) != 0) {
            fprintf(stderr, "schakel %s: broker key %s: %s\n", cmd, c->server_arg, why);
            return -1;
        }
        snprintf(c->server_public, sizeof c->server_public, "%s", k.curve_public);
        schakel_keys_wipe(&k);
    }
    if (!c->key_path[0]) {
        fprintf(stderr, "schakel %s: give this organisation's key with --key FILE (or --node DIR --as ORG)\n", cmd);
        return -1;
    }
    if (schakel_keys_load(&c->keys, c->key_path, why) != 0 || !c->keys.has_secret) {
        fprintf(stderr, "schakel %s: %s: %s\n", cmd, c->key_path, why[0] ? why : "no secret keys in it");
        return -1;
    }
    return 0;
}
