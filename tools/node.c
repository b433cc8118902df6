/* schakel node: a whole bus in one process on LMDB under one data
 * directory. First run writes keys and a sample directory. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "tool.h"

static const char usage[] =
    "usage: schakel node [--data DIR] [--endpoint EP] [--pub EP]\n"
    "\n"
    "Runs a whole bus under DIR (default var/node): the broker with its log in\n"
    "DIR/log. On first run it makes keys for a sample region in DIR/keys and a\n"
    "directory in DIR/directory.json (edit it; it is reloaded on change).\n"
    "Stops cleanly on SIGTERM or Ctrl-C.\n"
    "\n"
    "Then, in another terminal:\n"
    "  schakel tail --node DIR --as svc-audit --stream all --follow\n"
    "  schakel publish --node DIR --as school-12ab00 < events.jsonl\n";

int cmd_node(int argc, char **argv)
{
    const char *dir = "var/node";
    const char *ep = "tcp://127.0.0.1:7400", *pep = "tcp://127.0.0.1:7401";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(usage, stdout);
            return 0;
        } else if (!strcmp(argv[i], "--data") && i + 1 < argc) {
            dir = argv[++i];
        } else if (!strcmp(argv[i], "--endpoint") && i + 1 < argc) {
            ep = argv[++i];
        } else if (!strcmp(argv[i], "--pub") && i + 1 < argc) {
            pep = argv[++i];
        } else {
            fprintf(stderr, "schakel node: unexpected %s\n\n%s", argv[i], usage);
            return 2;
        }
    }
    if (tool_region_init(dir, ep, pep) != 0) return 1;
    char key[4200], directory[4200];
    snprintf(key, sizeof key, "%s/keys/broker.key", dir);
    snprintf(directory, sizeof directory, "%s/directory.json", dir);
    schakel_broker_config_t cfg = {0};
    cfg.data_dir = dir;
    cfg.key_path = key;
    cfg.directory_path = directory;
    cfg.endpoint = ep;
    cfg.pub_endpoint = pep;
    fprintf(stderr,
            "schakel node: data in %s; follow the log with\n"
            "  schakel tail --node %s --as svc-audit --stream all --follow\n"
            "publish as a school with\n"
            "  schakel publish --node %s --as school-12ab00 < events.jsonl\n",
            dir, dir, dir);
    return schakel_broker_serve(&cfg);
}
