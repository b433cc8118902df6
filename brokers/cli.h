/* Command-line front of the broker, shared by `schakel-broker` and
 * `schakel broker`. */
#ifndef SCHAKEL_BROKER_CLI_H
#define SCHAKEL_BROKER_CLI_H

#include "broker.h"

/* Parses flags (and --config FILE, a JSON object with the same keys) into
 * cfg. Strings point into argv or into a buffer that lives as long as the
 * process. Returns 0, 1 after printing --help, or -1 after printing what
 * is wrong. */
int schakel_broker_parse_args(int argc, char **argv, schakel_broker_config_t *cfg);

/* Runs a broker until SIGTERM/SIGINT. Returns the process exit code. */
int schakel_broker_cli(int argc, char **argv);

/* Runs the broker with cfg until SIGTERM/SIGINT. */
int schakel_broker_serve(const schakel_broker_config_t *cfg);

#endif
