/* `schakel adapter ...`: the command line. Only the dispatch lives here,
 * as a table of subcommands (a new one is a line in it and a line of the
 * usage); what each does is in its own file: run.c (the adapter itself),
 * commands.c (status, check, dead-letters, requeue). */
#include "adapter.h"

#include <stdio.h>
#include <string.h>

#include "error.h"

#include "adapter_impl.h"

const char adapter_usage[] =
    "usage: schakel adapter [run] --config FILE [--stdin] [--once]\n"
    "       schakel adapter status --config FILE\n"
    "       schakel adapter dead-letters --config FILE\n"
    "       schakel adapter requeue --config FILE (--id EVENT_ID | --all)\n"
    "       schakel adapter check --profile FILE [--org ORG] [--region-key FILE] EXPORT...\n"
    "\n"
    "Runs an organisation's adapter (docs/adapters.md): rows from the spool\n"
    "directory, standard input (--stdin: JSON lines, one acknowledgement line\n"
    "each) and POST /events on the local HTTP endpoint are mapped by the\n"
    "profile, kept in the outbox, and forwarded to the broker until ACKed;\n"
    "what the bus delivers to the organisation goes to its inbox. --once: take\n"
    "the spool and standard input, wait until every event is ACKed, then stop.\n"
    "Stops cleanly on SIGTERM; a SIGKILL loses nothing acknowledged.\n"
    "\n"
    "status: outbox depth, oldest unacknowledged event, last ACK, last error.\n"
    "dead-letters: the events the broker refused for good, a JSON line each\n"
    "(event_id, type, refused_at, reason). requeue: after fixing the cause,\n"
    "puts them back in the outbox to be sent again (exit 1: no such letter).\n"
    "check: maps an export with a profile and prints the events as JSON lines\n"
    "and the rows it would reject, without sending anything (to write a profile).\n";

int adapter_flags(const char *sub, schakel_flag_t *t, int argc, char **argv, int first)
{
    char why[SCHAKEL_ERRLEN] = "";
    int rc = schakel_flags_parse(t, argc, argv, first, why);
    if (rc == SCHAKEL_FLAGS_HELP) {
        fputs(adapter_usage, stdout);
        return 0;
    }
    if (rc) {
        fprintf(stderr, "schakel adapter%s%s: %s\n", sub[0] ? " " : "", sub, why);
        return 2;
    }
    return -1;
}

/* The subcommands: argv[1] names one; anything else (or `run`) runs the
 * adapter. */
static const struct {
    const char *name;
    int (*run)(int argc, char **argv);
} subcommands[] = {
    {"run", adapter_cmd_run},        {"status", adapter_cmd_status},
    {"check", adapter_cmd_check},    {"dead-letters", adapter_cmd_outbox},
    {"requeue", adapter_cmd_outbox},
};

int schakel_adapter_cli(int argc, char **argv)
{
    for (size_t i = 0; argc >= 2 && i < sizeof subcommands / sizeof subcommands[0]; i++)
        if (!strcmp(argv[1], subcommands[i].name)) return subcommands[i].run(argc, argv);
    if (argc < 2) {
        fputs(adapter_usage, stderr);
        return 2;
    }
    return adapter_cmd_run(argc, argv);
}
