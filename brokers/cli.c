/* Flags, config file and signals for the broker process. */
#include "cli.h"

#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "error.h"
#include "fileio.h"
#include "flags.h"
#include "logging.h"
#include "store_jetstream.h"
#include "wire.h"

static const char usage[] =
    "usage: schakel broker --data DIR --key FILE --directory FILE [options]\n"
    "\n"
    "Runs the broker: authenticates organisations by their CURVE key, validates\n"
    "and stores their events in a hash-chained LMDB log under DIR/log, and\n"
    "serves FETCH/COMMIT to consumers. Stops cleanly on SIGTERM or SIGINT.\n"
    "\n"
    "  --data DIR             data directory (log/, master.key; retention.json, the\n"
    "                         retention rules, put on the log as a rules_update\n"
    "                         when it changes: docs/privacy.md)\n"
    "  --key FILE             the broker's key file (schakel keygen --id broker)\n"
    "  --directory FILE       organisations, keys and rights (JSON; reloaded on change)\n"
    "  --rules DIR            the services' rule files DIR/routing.json, consent.json\n"
    "                         and feedback.json: put on the log as rules_update\n"
    "                         events at start and when they change (default: none)\n"
    "  --endpoint EP          command endpoint (default tcp://127.0.0.1:7400)\n"
    "  --pub EP               head notifications (default tcp://127.0.0.1:7401)\n"
    "  --log nats://HOST:PORT[,HOST:PORT...][/REGION]\n"
    "                         keep the log on a replicated NATS JetStream stream\n"
    "                         (three servers; DIR/log is then its local index;\n"
    "                         docs/scale-out.md); default: the LMDB log alone\n"
    "  --lease-ms MS          with --log: the writer lease lapses MS ms after its\n"
    "                         holder last renewed it; a standby broker takes over\n"
    "                         then (default 10000)\n"
    "  --map-max BYTES        the log may not grow past this (default 1 TiB)\n"
    "  --checkpoint-every N   sign a checkpoint every N events (default 1000)\n"
    "  --checkpoint-ms MS     ... or after MS milliseconds (default 1000)\n"
    "  --tick-ms MS           put the broker's clock on the log this often, for\n"
    "                         the services' timers (default 60000; 0: never)\n"
    "  --checkers N           threads that check PUBLISHes (default: one per\n"
    "                         core, at most 4)\n"
    "  --config FILE          JSON object with any of: data, key, directory,\n"
    "                         rules, endpoint, pub, log, lease_ms, map_max,\n"
    "                         checkpoint_every, checkpoint_ms, tick_ms; flags given\n"
    "                         on the command line win\n"
    "\n"
    "The directory file and the log stay in step: a newer file is put on the\n"
    "log as a directory_update; a directory_update published by an organisation\n"
    "with the \"directory\" right is written to the file. With --rules, a rule file\n"
    "that differs from the last one on the log is put on the log; one that does\n"
    "not parse stops the start (exit 1, naming the file and field) or, changed\n"
    "while running, is refused with the rules in force kept.\n";

static schakel_broker_t *running; /* for the signal handler only */

static void on_signal(int sig)
{
    (void)sig;
    if (running) schakel_broker_stop(running);
}

static json_t *config_doc; /* keeps config strings alive */

static int apply_config(const char *path, schakel_broker_config_t *cfg)
{
    json_error_t err;
    config_doc = json_load_file(path, 0, &err);
    if (!config_doc || !json_is_object(config_doc)) {
        fprintf(stderr, "schakel broker: %s:%d: %s\n", path, err.line, err.text);
        return -1;
    }
    const char *k;
    json_t *v;
    json_object_foreach(config_doc, k, v) {
        const char *s = json_string_value(v);
        if (!strcmp(k, "data") && s) cfg->data_dir = s;
        else if (!strcmp(k, "key") && s) cfg->key_path = s;
        else if (!strcmp(k, "directory") && s) cfg->directory_path = s;
        else if (!strcmp(k, "rules") && s) cfg->rules_dir = s;
        else if (!strcmp(k, "endpoint") && s) cfg->endpoint = s;
        else if (!strcmp(k, "pub") && s) cfg->pub_endpoint = s;
        else if (!strcmp(k, "log") && s) cfg->log_url = s;
        else if (!strcmp(k, "lease_ms") && json_is_integer(v) && json_integer_value(v) >= 1000)
            cfg->lease_ms = json_integer_value(v);
        else if (!strcmp(k, "map_max") && json_is_integer(v)) cfg->map_max = (size_t)json_integer_value(v);
        else if (!strcmp(k, "checkpoint_every") && json_is_integer(v))
            cfg->checkpoint_every = (uint64_t)json_integer_value(v);
        else if (!strcmp(k, "checkpoint_ms") && json_is_integer(v))
            cfg->checkpoint_ms = json_integer_value(v);
        else if (!strcmp(k, "tick_ms") && json_is_integer(v))
            cfg->tick_ms = json_integer_value(v) ? json_integer_value(v) : -1;
        else {
            fprintf(stderr, "schakel broker: %s: unknown or mistyped key \"%s\"\n", path, k);
            return -1;
        }
    }
    return 0;
}

int schakel_broker_parse_args(int argc, char **argv, schakel_broker_config_t *cfg)
{
    const char *config = NULL, *data = NULL, *key = NULL, *directory = NULL, *endpoint = NULL, *pub = NULL,
               *rules = NULL, *log = NULL;
    uint64_t map_max = 0, every = 0, cp_ms = 0, tick = 0, checkers = 0, lease = 0;
    schakel_flag_t flags[] = {
        SCHAKEL_FLAG_S("--data", "DIR", &data),
        SCHAKEL_FLAG_S("--key", "FILE", &key),
        SCHAKEL_FLAG_S("--directory", "FILE", &directory),
        SCHAKEL_FLAG_S("--rules", "DIR", &rules),
        SCHAKEL_FLAG_S("--endpoint", "EP", &endpoint),
        SCHAKEL_FLAG_S("--pub", "EP", &pub),
        SCHAKEL_FLAG_S("--log", "URL", &log),
        SCHAKEL_FLAG_U("--lease-ms", &lease, 1000, 86400000),
        SCHAKEL_FLAG_U("--map-max", &map_max, 0, SIZE_MAX),
        SCHAKEL_FLAG_U("--checkpoint-every", &every, 0, UINT64_MAX),
        SCHAKEL_FLAG_U("--checkpoint-ms", &cp_ms, 0, INT64_MAX),
        SCHAKEL_FLAG_U("--tick-ms", &tick, 0, INT64_MAX),
        SCHAKEL_FLAG_U("--checkers", &checkers, 1, 4),
        SCHAKEL_FLAG_S("--config", "FILE", &config),
        SCHAKEL_FLAGS_END,
    };
    char why[SCHAKEL_ERRLEN] = "";
    int rc = schakel_flags_parse(flags, argc, argv, 1, why);
    if (rc == SCHAKEL_FLAGS_HELP) {
        fputs(usage, stdout);
        return 1;
    }
    if (rc) {
        fprintf(stderr, "schakel broker: %s\n", why);
        return -1;
    }
    /* the file first: flags given on the command line win */
    if (config && apply_config(config, cfg)) return -1;
    if (data) cfg->data_dir = data;
    if (key) cfg->key_path = key;
    if (directory) cfg->directory_path = directory;
    if (rules) cfg->rules_dir = rules;
    if (endpoint) cfg->endpoint = endpoint;
    if (pub) cfg->pub_endpoint = pub;
    if (log) cfg->log_url = log;
    if (schakel_flags_given(flags, "--lease-ms")) cfg->lease_ms = (int64_t)lease;
    if (schakel_flags_given(flags, "--map-max")) cfg->map_max = (size_t)map_max;
    if (schakel_flags_given(flags, "--checkpoint-every")) cfg->checkpoint_every = every;
    if (schakel_flags_given(flags, "--checkpoint-ms")) cfg->checkpoint_ms = (int64_t)cp_ms;
    if (schakel_flags_given(flags, "--tick-ms")) cfg->tick_ms = tick ? (int64_t)tick : -1; /* 0: never */
    if (schakel_flags_given(flags, "--checkers")) cfg->checkers = (size_t)checkers;
    if (!cfg->data_dir || !cfg->key_path || !cfg->directory_path) {
        fprintf(stderr, "schakel broker: --data, --key and --directory are required (see --help)\n");
        return -1;
    }
    schakel_js_url_t u;
    if (cfg->log_url && schakel_js_url_parse(cfg->log_url, &u, why) != 0) {
        fprintf(stderr, "schakel broker: %s\n", why);
        return -1;
    }
    return 0;
}

int schakel_broker_serve(const schakel_broker_config_t *cfg)
{
    void *ctx = zmq_ctx_new();
    char why[SCHAKEL_ERRLEN] = "";
    schakel_broker_t *b = schakel_broker_new(ctx, cfg, why);
    if (!b) {
        fprintf(stderr, "schakel broker: %s\n", why);
        schakel_wire_ctx_term(ctx);
        return 1;
    }
    running = b;
    schakel_signals_on_stop(on_signal);
    int rc = schakel_broker_run(b);
    running = NULL;
    schakel_broker_destroy(&b);
    schakel_wire_ctx_term(ctx);
    return rc ? 1 : 0;
}

int schakel_broker_cli(int argc, char **argv)
{
    schakel_broker_config_t cfg = {0};
    int rc = schakel_broker_parse_args(argc, argv, &cfg);
    if (rc) return rc > 0 ? 0 : 2;
    rc = schakel_broker_serve(&cfg);
    json_decref(config_doc);
    return rc;
}
