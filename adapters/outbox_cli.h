/* `schakel adapter dead-letters` and `schakel adapter requeue`: what the
 * broker refused for good, and sending it again after the cause is fixed
 * (docs/adapters.md §10). */
#ifndef SCHAKEL_OUTBOX_CLI_H
#define SCHAKEL_OUTBOX_CLI_H

/* argv[1] is "dead-letters" or "requeue"; state is the adapter's state
 * directory (its outbox), from its configuration. Returns the exit code. */
int schakel_outbox_cli(int argc, char **argv, const char *state);

#endif
