/* The `schakel` command: one binary, a subcommand per task. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "adapter.h"
#include "runner.h"
#include "tool.h"

static const char usage[] =
    "usage: schakel <command> [options]   (schakel <command> --help for more)\n"
    "\n"
    "  node      run a whole bus (broker and services) under one data directory\n"
    "  demo      a living demo region: a node, an adapter per organisation, synthetic flows\n"
    "  broker    run the broker alone\n"
    "  keygen    make an organisation's key file, or a region's pseudonym key\n"
    "  adapter   plug an organisation's system in: spool, stdin, HTTP in; inbox out\n"
    "  publish   publish events written as JSON lines, one ACK line per event\n"
    "  tail      follow a stream as JSON lines\n"
    "  audit     verify the hash chain and checkpoints of a log; replay the services;\n"
    "            one child's history across every organisation (audit subject)\n"
    "  explain   who received an event, in which form, and why\n"
    "  log       copy a node's log onto a replicated JetStream stream, or back (log copy)\n"
    "  routing   run the routing service alone\n"
    "  consent   run the consent service alone\n"
    "  feedback  run the feedback-loop service alone\n"
    "  loops     an organisation's open and overdue loops, one loop's history, figures\n"
    "  health    broker up, and any alarms of the broker and the services (exit 1)\n"
    "  indicators the monitoring figures per school, district and month (small cells suppressed)\n"
    "  top       the node's live picture in a terminal, from its /metrics\n"
    "  monitor   the dashboard, /metrics and /healthz over HTTP beside a broker\n";

int main(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        fputs(usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *cmd = argv[1];
    argc--;
    argv++;
    if (!strcmp(cmd, "node")) return cmd_node(argc, argv);
    if (!strcmp(cmd, "demo")) return cmd_demo(argc, argv);
    if (!strcmp(cmd, "broker")) return schakel_broker_cli(argc, argv);
    if (!strcmp(cmd, "keygen")) return cmd_keygen(argc, argv);
    if (!strcmp(cmd, "publish")) return cmd_publish(argc, argv);
    if (!strcmp(cmd, "tail")) return cmd_tail(argc, argv);
    if (!strcmp(cmd, "audit")) return cmd_audit(argc, argv);
    if (!strcmp(cmd, "explain")) return cmd_explain(argc, argv);
    if (!strcmp(cmd, "log")) return cmd_log(argc, argv);
    if (!strcmp(cmd, "routing") || !strcmp(cmd, "consent") || !strcmp(cmd, "feedback"))
        return schakel_svc_cli(cmd, argc, argv);
    if (!strcmp(cmd, "loops")) return cmd_loops(argc, argv);
    if (!strcmp(cmd, "health")) return cmd_health(argc, argv);
    if (!strcmp(cmd, "indicators")) return cmd_indicators(argc, argv);
    if (!strcmp(cmd, "top")) return cmd_top(argc, argv);
    if (!strcmp(cmd, "monitor")) return cmd_monitor(argc, argv);
    if (!strcmp(cmd, "adapter")) return schakel_adapter_cli(argc, argv);
    fprintf(stderr, "schakel: unknown command \"%s\"\n\n%s", cmd, usage);
    return 2;
}
