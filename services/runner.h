/* Running the services: each as its own process (schakel-routing,
 * schakel-consent) or as a thread of `schakel node`, with the same code.
 * A service finds everything under a node directory:
 *   DIR/node.json                 endpoints
 *   DIR/keys/svc-<name>.key       its organisation's keys (--as to change)
 *   DIR/keys/broker.pub           the broker's public key
 *   DIR/<name>.json               its rules or policy (--policy to change)
 *   DIR/services/<name>/          its state (LMDB; --state to change) */
#ifndef SCHAKEL_RUNNER_H
#define SCHAKEL_RUNNER_H

typedef struct schakel_svc schakel_svc_t;

/* The services a node runs, in order. */
extern const char *const schakel_service_names[];

/* Main of a service process: flags, signals, run until SIGTERM/SIGINT.
 * Returns the exit code. */
int schakel_svc_cli(const char *name, int argc, char **argv);

/* Starts service `name` of the node in DIR as a thread on ctx. NULL on
 * failure with the reason in why. log: the broker's store when the
 * broker runs in this process (the service reads the log from it, up to
 * its durable head, and publishes over CURVE as always); NULL: FETCH.
 * The store must stay open until schakel_svc_stop returned. */
struct schakel_store;
schakel_svc_t *schakel_svc_start(void *ctx, const char *name, const char *node_dir, struct schakel_store *log,
                                 char *why);

/* Asks the service to stop, waits for it, frees it. Returns the service's
 * result: 0 after a clean stop. */
int schakel_svc_stop(schakel_svc_t **self_p);

/* The engine of service `name` acting as org, with the rules or policy
 * in the file at policy_path. 0, or an error with the reason in why. */
#include "service.h"
int schakel_svc_engine(const char *name, const char *org, const char *policy_path,
                       const schakel_engine_ops_t **ops, void **engine, char *why);
void schakel_svc_engine_free(const schakel_engine_ops_t *ops, void **engine);
/* The same with the rules or policy in text (len bytes). */
int schakel_svc_engine_text(const char *name, const char *org, const char *text, size_t len,
                            const schakel_engine_ops_t **ops, void **engine, char *why);

/* Do text's rules parse as service name's? 0, or SCHAKEL_ECONFIG with the
 * field that is wrong in why (what the broker checks before it puts a
 * rule file on the log). */
int schakel_svc_rules_check(const char *name, const char *text, size_t len, char *why);

/* The rules or policy a fresh node starts with, for service name (NULL:
 * no such service). */
const char *schakel_svc_default_rules(const char *name);

/* Writes the default rules or policy of every service into node_dir
 * where there is none yet. 0 or -1 (printed). */
int schakel_svc_write_defaults(const char *node_dir);

#endif
