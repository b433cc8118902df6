/* How a command or service reaches the broker: explicit flags, or a
 * node's data directory (node.json names the endpoints and the key
 * directory; keys/<org>.key is an organisation's). */
#ifndef SCHAKEL_CONN_H
#define SCHAKEL_CONN_H

#include "fileio.h"
#include "flags.h"
#include "keys.h"

typedef struct {
    char endpoint[256];
    char pub_endpoint[256];
    char server_public[SCHAKEL_Z85_KEY_LEN + 1];
    char key_path[SCHAKEL_PATH_MAX];
    char server_arg[SCHAKEL_PATH_MAX]; /* --server-key as given */
    char node_dir[SCHAKEL_PATH_MAX];
    char as_org[SCHAKEL_ID_MAX];
    schakel_keys_t keys;
} schakel_conn_t;

/* The connection flags (--node DIR, --as ORG, --endpoint EP, --pub EP,
 * --server-key FILE|Z85, --key FILE) as entries of a flags table (flags.h),
 * for a command to put in its own table: SCHAKEL_CONN_FLAGS(&conn), ... */
#define SCHAKEL_CONN_FLAGS(c)                                                                             \
    SCHAKEL_FLAG_BUFFER("--node", "DIR", (c)->node_dir), SCHAKEL_FLAG_BUFFER("--as", "ORG", (c)->as_org), \
        SCHAKEL_FLAG_BUFFER("--endpoint", "EP", (c)->endpoint),                                           \
        SCHAKEL_FLAG_BUFFER("--pub", "EP", (c)->pub_endpoint),                                            \
        SCHAKEL_FLAG_BUFFER("--server-key", "FILE or Z85", (c)->server_arg),                              \
        SCHAKEL_FLAG_BUFFER("--key", "FILE", (c)->key_path)

/* Completes c after the flags: reads the node directory, loads the key
 * file and the broker key. Returns 0, or SCHAKEL_ECONFIG with why saying
 * what is missing and which flag gives it; prints nothing. */
int schakel_conn_finish(schakel_conn_t *c, char *why);

/* Help text for the connection flags. */
extern const char schakel_conn_help[];

#endif
