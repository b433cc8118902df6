/* Shared pieces of the `schakel` command's subcommands: how they find the
 * broker and their keys (flags or a node directory), and the subcommand
 * entry points. */
#ifndef SCHAKEL_TOOL_H
#define SCHAKEL_TOOL_H

#include "keys.h"

#include "conn.h"
#include "flags.h"

/* Parses argv[first..] with the table t for `schakel cmd`. --help prints
 * help and then extra (may be NULL) on standard output; an error prints
 * "schakel cmd: <reason>", then usage if not NULL, on standard error.
 * Returns -1 to go on, or the exit status: 0 after help, 2 after an
 * error. */
int tool_flags(const char *cmd, schakel_flag_t *t, int argc, char **argv, int first, const char *help,
               const char *extra, const char *usage);

/* Completes c (conn.h) for `schakel cmd`; says what is missing. Returns 0
 * or 2, the exit status for wrong arguments. */
int tool_conn_finish(schakel_conn_t *c, const char *cmd);

/* Joins dir and name into out (cap bytes) for `schakel cmd`: a path too
 * long is said ("schakel cmd: path too long: ...") rather than cut.
 * Returns 0, or 2, the exit status for wrong arguments. */
int tool_path(const char *cmd, char *out, size_t cap, const char *dir, const char *name);

int cmd_keygen(int argc, char **argv);
int cmd_node(int argc, char **argv);
int cmd_demo(int argc, char **argv); /* demo.c */
int cmd_publish(int argc, char **argv);
int cmd_tail(int argc, char **argv);
int cmd_audit(int argc, char **argv);
int cmd_audit_erase(int argc, char **argv); /* schakel audit erase (erase.c) */
int cmd_explain(int argc, char **argv);
int cmd_log(int argc, char **argv);     /* schakel log copy (log.c) */
int cmd_subject(int argc, char **argv); /* schakel audit subject: argv[1] is "subject" */
int cmd_loops(int argc, char **argv);
int cmd_health(int argc, char **argv);
int cmd_indicators(int argc, char **argv);
int cmd_top(int argc, char **argv);
int cmd_monitor(int argc, char **argv); /* monitor.c */

/* For a node already holding dir's lock: node.json and the flags agree
 * afterwards. An endpoint given (*_given) that differs from node.json's is
 * written into node.json, and said on stderr, so that the commands that
 * read node.json (--node DIR) follow the node; one not given is taken from
 * node.json (into buf, 256 bytes). The same for the HTTP endpoint
 * ("http", as --http: ADDR:PORT or "off"), which `schakel top --node DIR`
 * reads. 0, or -1 said on stderr. */
int tool_node_endpoints(const char *dir, const char **endpoint, int endpoint_given, char *endpoint_buf,
                        const char **pub, int pub_given, char *pub_buf, const char **http, int http_given,
                        char *http_buf);

/* Writes a sample region under dir (keys/, directory.json, node.json) if
 * it has none; used by `schakel node` on first run. */
int tool_region_init(const char *dir, const char *endpoint, const char *pub_endpoint);

#endif
