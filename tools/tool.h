/* Shared pieces of the `schakel` command's subcommands: how they find the
 * broker and their keys (flags or a node directory), and the subcommand
 * entry points. */
#ifndef SCHAKEL_TOOL_H
#define SCHAKEL_TOOL_H

#include "keys.h"

#include "conn.h"


int cmd_keygen(int argc, char **argv);
int cmd_node(int argc, char **argv);
int cmd_publish(int argc, char **argv);
int cmd_tail(int argc, char **argv);
int cmd_audit(int argc, char **argv);
int cmd_explain(int argc, char **argv);
int cmd_loops(int argc, char **argv);
int cmd_health(int argc, char **argv);

/* Writes a sample region under dir (keys/, directory.json, node.json) if
 * it has none; used by `schakel node` on first run. */
int tool_region_init(const char *dir, const char *endpoint, const char *pub_endpoint);

#endif
