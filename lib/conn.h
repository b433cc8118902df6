/* How a command or service reaches the broker: explicit flags, or a
 * node's data directory (node.json names the endpoints and the key
 * directory; keys/<org>.key is an organisation's). */
#ifndef SCHAKEL_CONN_H
#define SCHAKEL_CONN_H

#include "keys.h"

typedef struct {
    char endpoint[256];
    char pub_endpoint[256];
    char server_public[SCHAKEL_Z85_KEY_LEN + 1];
    char key_path[4096];
    char server_arg[4096]; /* --server-key as given */
    char node_dir[4096];
    char as_org[SCHAKEL_ID_MAX];
    schakel_keys_t keys;
} schakel_conn_t;

/* Consumes the connection flags at argv[*i] (--node DIR, --as ORG,
 * --endpoint EP, --pub EP, --server-key FILE|Z85, --key FILE). Returns 1 if
 * it took a flag (and advanced *i), 0 if argv[*i] is not one of them, -1 on
 * a missing value. */
int schakel_conn_flag(schakel_conn_t *c, int argc, char **argv, int *i);

/* Completes c after the flags: loads the key file and the broker key.
 * Prints what is missing and returns -1 on failure. */
int schakel_conn_finish(schakel_conn_t *c, const char *cmd);

/* Help text for the connection flags. */
extern const char schakel_conn_help[];

#endif
