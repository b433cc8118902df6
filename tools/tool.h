/* Shared pieces of the `schakel` command's subcommands: how they find the
 * broker and their keys (flags or a node directory), and the subcommand
 * entry points. */
#ifndef SCHAKEL_TOOL_H
#define SCHAKEL_TOOL_H

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
} tool_conn_t;

/* Consumes the connection flags at argv[*i] (--node DIR, --as ORG,
 * --endpoint EP, --pub EP, --server-key FILE|Z85, --key FILE). Returns 1 if
 * it took a flag (and advanced *i), 0 if argv[*i] is not one of them, -1 on
 * a missing value. */
int tool_conn_flag(tool_conn_t *c, int argc, char **argv, int *i);

/* Completes c after the flags: loads the key file and the broker key.
 * Prints what is missing and returns -1 on failure. */
int tool_conn_finish(tool_conn_t *c, const char *cmd);

/* Help text for the connection flags. */
extern const char tool_conn_help[];

int cmd_keygen(int argc, char **argv);
int cmd_node(int argc, char **argv);
int cmd_publish(int argc, char **argv);
int cmd_tail(int argc, char **argv);
int cmd_audit(int argc, char **argv);

/* Writes a sample region under dir (keys/, directory.json, node.json) if
 * it has none; used by `schakel node` on first run. */
int tool_region_init(const char *dir, const char *endpoint, const char *pub_endpoint);

#endif
