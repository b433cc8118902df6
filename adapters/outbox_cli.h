/* `schakel adapter dead-letters` and `schakel adapter requeue`: what the
 * broker refused for good, and sending it again after the cause is fixed
 * (docs/adapters.md §10). */
#ifndef SCHAKEL_OUTBOX_CLI_H
#define SCHAKEL_OUTBOX_CLI_H

/* cmd is "dead-letters" or "requeue"; state is the adapter's state
 * directory (its outbox), from its configuration; for requeue, only (an
 * event id, --id) or all (--all), exactly one. Returns the exit code. */
int schakel_outbox_cli(const char *cmd, const char *state, const char *only, int all);

#endif
