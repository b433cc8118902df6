/* schakel node: a whole bus in one process on LMDB under one data
 * directory: the broker in the main thread, each service in a thread of
 * its own that reads the log straight from the broker's store (up to its
 * durable head) and publishes its decisions to the broker over CURVE on
 * loopback, signed, exactly as it would from another machine. First run
 * writes keys, a sample directory and the services' default rules and
 * policy. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "broker.h"
#include "cli.h"
#include "error.h"
#include "fileio.h"
#include "logging.h"
#include "monitor.h"
#include "runner.h"
#include "store_jetstream.h"
#include "tool.h"
#include "wire.h"

static const char usage[] =
    "usage: schakel node [--data DIR] [--endpoint EP] [--pub EP] [--tick-ms MS]\n"
    "                    [--checkers N] [--no-services] [--http ADDR:PORT|off]\n"
    "                    [--http-token FILE] [--log nats://HOST:PORT[,...][/REGION]]\n"
    "\n"
    "Runs a whole bus under DIR (default var/node): the broker with its log in\n"
    "DIR/log, and the routing, consent and feedback services with their state in\n"
    "DIR/services/. On first run it makes keys for a sample region in DIR/keys,\n"
    "a directory in DIR/directory.json (edit it; it is reloaded on change and\n"
    "put on the log), and the services' rules in DIR/routing.json,\n"
    "DIR/consent.json and DIR/feedback.json (docs/routing.md, docs/feedback.md;\n"
    "the days a royal decree equates with holidays are in the directory): edit\n"
    "them and the broker puts them on the log as rules_update events, from\n"
    "which the services take them. A rule file that does not parse stops the\n"
    "start (exit 1, naming the file and field); changed while running, it is\n"
    "refused and the rules in force stay.\n"
    "--no-services runs the broker alone. --tick-ms sets how\n"
    "often the broker puts its clock on the\n"
    "log (default 60000). --checkers: threads that check what is\n"
    "published (default one per core, at most 4). --http: where the dashboard,\n"
    "/metrics and /healthz are served (default 127.0.0.1:7480; off: not at all),\n"
    "by a `schakel monitor` process the node starts and stops (docs/operations.md,\n"
    "\"Watching the bus\"); --http-token FILE: every page but /healthz wants the\n"
    "token in FILE, and an address that is not loopback is refused without\n"
    "it. Stops cleanly on SIGTERM or Ctrl-C: services first,\n"
    "then the broker. --log keeps the log on a replicated NATS JetStream\n"
    "stream of three servers, DIR/log being its local index (docs/scale-out.md);\n"
    "the default is the LMDB log alone.\n"
    "\n"
    "Then, in another terminal:\n"
    "  schakel tail --node DIR --as svc-audit --stream all --follow\n"
    "  schakel publish --node DIR --as school-12ab00 < events.jsonl\n"
    "  schakel explain --node DIR --purpose TEXT EVENT_ID\n";

static atomic_int stopping;

static void on_signal(int sig)
{
    (void)sig;
    atomic_store(&stopping, 1);
}

typedef struct {
    schakel_broker_t *broker;
    schakel_svc_t *svcs[8];
    size_t n;
    int failed;
    pid_t monitor;
} node_t;

/* Waits for a signal, stops the services while the broker still serves
 * them, then the broker. */
static void *supervisor(void *arg)
{
    node_t *n = arg;
    while (!atomic_load(&stopping)) usleep(50000);
    mon_reap(n->monitor);
    for (size_t i = n->n; i-- > 0;)
        if (schakel_svc_stop(&n->svcs[i]) != 0) n->failed = 1;
    schakel_broker_stop(n->broker);
    return NULL;
}

int cmd_node(int argc, char **argv)
{
    const char *dir = "var/node", *http = "127.0.0.1:7480", *token = NULL;
    schakel_broker_config_t cfg = {0};
    cfg.endpoint = "tcp://127.0.0.1:7400";
    cfg.pub_endpoint = "tcp://127.0.0.1:7401";
    int no_services = 0;
    uint64_t tick = 0, checkers = 0;
    schakel_flag_t flags[] = {
        SCHAKEL_FLAG_S("--data", "DIR", &dir),
        SCHAKEL_FLAG_S("--endpoint", "EP", &cfg.endpoint),
        SCHAKEL_FLAG_S("--pub", "EP", &cfg.pub_endpoint),
        SCHAKEL_FLAG_U("--tick-ms", &tick, 0, INT64_MAX),
        SCHAKEL_FLAG_U("--checkers", &checkers, 1, 4),
        SCHAKEL_FLAG_B("--no-services", NULL, &no_services),
        SCHAKEL_FLAG_S("--http", "ADDR:PORT", &http),
        SCHAKEL_FLAG_S("--http-token", "FILE", &token),
        SCHAKEL_FLAG_S("--log", "URL", &cfg.log_url),
        SCHAKEL_FLAGS_END,
    };
    int status = tool_flags("node", flags, argc, argv, 1, usage, NULL, usage);
    if (status >= 0) return status;
    if (schakel_flags_given(flags, "--tick-ms")) cfg.tick_ms = tick ? (int64_t)tick : -1; /* 0: never */
    if (schakel_flags_given(flags, "--checkers")) cfg.checkers = (size_t)checkers;
    int services = !no_services;
    char key[SCHAKEL_PATH_MAX], directory[SCHAKEL_PATH_MAX], why[SCHAKEL_ERRLEN] = "";
    char http_host[64];
    int http_port = 0, with_http = strcmp(http, "off") != 0;
    uint8_t token_hash[SCHAKEL_SHA256_LEN];
    int have_token = 0;
    if (with_http && mon_parse_listen(http, http_host, &http_port, why) != 0) {
        fprintf(stderr, "schakel node: %s\n", why);
        return 2;
    }
    schakel_js_url_t log_url;
    if (cfg.log_url && schakel_js_url_parse(cfg.log_url, &log_url, why) != 0) {
        fprintf(stderr, "schakel node: %s\n", why);
        return 2;
    }
    /* before anything is made or changed: a non-loopback --http wants a token */
    if (with_http && (status = mon_http_guard("node", http, http_host, token, token_hash, &have_token)) != 0)
        return status;
    /* before anything is made in dir: a path too long is a usage error */
    if ((status = tool_path("node", key, sizeof key, dir, "keys/broker.key")) ||
        (status = tool_path("node", directory, sizeof directory, dir, "directory.json")))
        return status;
    if (tool_region_init(dir, cfg.endpoint, cfg.pub_endpoint) != 0) return 1;
    /* One node per data directory, from here on (the broker keeps the lock):
     * only then may node.json be brought in line with the flags. */
    char ep_buf[256], pub_buf[256], http_buf[256];
    if (schakel_dir_lock(dir, "broker.lock", &cfg.lock_fd, why) != 0) {
        fprintf(stderr, "schakel node: %s\n", why);
        return 1;
    }
    cfg.lock_held = 1;
    if (tool_node_endpoints(dir, &cfg.endpoint, schakel_flags_given(flags, "--endpoint"), ep_buf,
                            &cfg.pub_endpoint, schakel_flags_given(flags, "--pub"), pub_buf, &http,
                            schakel_flags_given(flags, "--http"), http_buf) != 0) {
        (void)close(cfg.lock_fd); /* no broker took it */
        return 1;
    }
    with_http = strcmp(http, "off") != 0; /* node.json's, when --http was not given */
    if (with_http && mon_parse_listen(http, http_host, &http_port, why) != 0) {
        fprintf(stderr, "schakel node: node.json's \"http\": %s: give --http ADDR:PORT or --http off\n", why);
        (void)close(cfg.lock_fd);
        return 1;
    }
    if (with_http &&
        (status = mon_http_guard("node", http, http_host, token, token_hash, &have_token)) != 0) {
        (void)close(cfg.lock_fd); /* node.json's address, from an earlier start */
        return status;
    }
    cfg.data_dir = dir;
    cfg.rules_dir = dir; /* the broker writes the default rules where there are none */
    cfg.key_path = key;
    cfg.directory_path = directory;

    void *ctx = zmq_ctx_new();
    node_t n = {0};
    n.broker = schakel_broker_new(ctx, &cfg, why);
    if (!n.broker) {
        fprintf(stderr, "schakel node: %s\n", why);
        schakel_wire_ctx_term(ctx);
        return 1;
    }
    schakel_signals_on_stop(on_signal);
    for (size_t i = 0; services && schakel_service_names[i]; i++) {
        /* the services read the log from the broker's store, no FETCH */
        n.svcs[n.n] =
            schakel_svc_start(ctx, schakel_service_names[i], dir, schakel_broker_store(n.broker), why);
        if (!n.svcs[n.n]) {
            fprintf(stderr, "schakel node: %s\n", why);
            atomic_store(&stopping, 1);
            n.failed = 1;
            break;
        }
        n.n++;
    }
    if (with_http && !atomic_load(&stopping)) {
        n.monitor = mon_spawn(dir, http, token);
        if (n.monitor < 0)
            fprintf(stderr, "schakel node: cannot start the HTTP endpoint: %s\n", strerror(errno));
    }
    pthread_t sup;
    int err = pthread_create(&sup, NULL, supervisor, &n);
    if (err) { /* without it nothing would stop the services: stop them now */
        fprintf(stderr, "schakel node: cannot start a thread: %s\n", strerror(err));
        atomic_store(&stopping, 1);
        supervisor(&n);
        schakel_broker_destroy(&n.broker);
        schakel_wire_ctx_term(ctx);
        return 1;
    }
    fprintf(stderr,
            "schakel node: data in %s; follow the log with\n"
            "  schakel tail --node %s --as svc-audit --stream all --follow\n"
            "publish as a school with\n"
            "  schakel publish --node %s --as school-12ab00 < events.jsonl\n",
            dir, dir, dir);
    if (n.monitor > 0)
        fprintf(stderr, "schakel node: dashboard, /metrics and /healthz at http://%s:%d/\n", http_host,
                http_port);
    int rc = schakel_broker_run(n.broker);
    atomic_store(&stopping, 1);
    (void)pthread_join(sup, NULL); /* our own thread, joined once */
    schakel_broker_destroy(&n.broker);
    schakel_wire_ctx_term(ctx);
    return rc || n.failed ? 1 : 0;
}
