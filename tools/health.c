/* schakel health: one answer an operator (or a monitor) can act on. Asks
 * the broker (PING: is it up, its head, how many of its own appends it
 * could not make) and reads the alarm count each service of the node keeps
 * in its state (derived events the broker refused). Exits 0 only when the
 * broker answers and nothing raised an alarm. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zmq.h>

#include "client.h"
#include "error.h"
#include "runner.h"
#include "service.h"
#include "tool.h"
#include "wire.h"

static const char usage[] = "usage: schakel health [--node DIR] [--as ORG] [connection options]\n"
                            "\n"
                            "Prints one JSON line: whether the broker answers PING (as ORG, default\n"
                            "svc-audit), its head and its alarm count (appends of its own events, the\n"
                            "directory and the clock, that it could not make), and with --node the\n"
                            "alarm count of each service under DIR/services/ (derived events the broker\n"
                            "refused). Every alarm also has an error line in the broker's or the\n"
                            "service's log (alarm=...). Exit status: 0 healthy, 1 an alarm or the\n"
                            "broker does not answer, 2 usage.\n"
                            "\n";

int cmd_health(int argc, char **argv)
{
    schakel_conn_t c;
    memset(&c, 0, sizeof c);
    schakel_flag_t flags[] = {SCHAKEL_CONN_FLAGS(&c), SCHAKEL_FLAGS_END};
    int rc = tool_flags("health", flags, argc, argv, 1, usage, schakel_conn_help, usage);
    if (rc >= 0) return rc;
    if (!c.as_org[0]) snprintf(c.as_org, sizeof c.as_org, "svc-audit");
    if (tool_conn_finish(&c, "health") != 0) return 2;
    int healthy = 1;
    json_t *out = json_object(), *broker = json_object();
    void *ctx = zmq_ctx_new();
    schakel_client_options_t o = {0};
    o.endpoint = c.endpoint;
    o.server_public = c.server_public;
    o.keys = &c.keys;
    char why[SCHAKEL_ERRLEN] = "";
    schakel_client_t *cl = schakel_client_new(ctx, &o, why);
    Schakel__V1__Ping ping = SCHAKEL__V1__PING__INIT;
    ProtobufCMessage *reply = NULL;
    rc = cl ? schakel_client_call(cl, "PING", &ping.base, &schakel__v1__pong__descriptor, &reply, 3000, why)
            : SCHAKEL_EZMQ;
    if (rc == 0 && reply) {
        const Schakel__V1__Pong *p = (const Schakel__V1__Pong *)reply;
        json_object_set_new(broker, "answers", json_true());
        json_object_set_new(broker, "head", json_integer((json_int_t)p->head));
        json_object_set_new(broker, "alarms", json_integer((json_int_t)p->alarms));
        if (p->alarms) healthy = 0;
    } else {
        json_object_set_new(broker, "answers", json_false());
        json_object_set_new(broker, "reason", json_string(why[0] ? why : schakel_strerror(rc)));
        healthy = 0;
    }
    if (reply) protobuf_c_message_free_unpacked(reply, NULL);
    schakel_client_destroy(&cl);
    schakel_wire_ctx_term(ctx);
    json_object_set_new(out, "broker", broker);
    if (c.node_dir[0]) {
        json_t *svcs = json_object();
        for (size_t i = 0; schakel_service_names[i]; i++) {
            char dir[SCHAKEL_PATH_MAX];
            struct stat st;
            if (schakel_path_fmt(dir, sizeof dir, NULL, "%s/services/%s", c.node_dir,
                                 schakel_service_names[i]) ||
                stat(dir, &st) != 0)
                continue; /* not run on this node (yet); too long, it never ran */
            uint64_t alarms = 0;
            json_t *s = json_object();
            if (schakel_service_alarms(dir, &alarms) != 0) {
                json_object_set_new(s, "reason", json_string("state cannot be read"));
                healthy = 0;
            }
            json_object_set_new(s, "alarms", json_integer((json_int_t)alarms));
            if (alarms) healthy = 0;
            json_object_set_new(svcs, schakel_service_names[i], s);
        }
        json_object_set_new(out, "services", svcs);
    }
    json_object_set_new(out, "ok", json_boolean(healthy));
    char *text = json_dumps(out, JSON_COMPACT | JSON_SORT_KEYS);
    if (text) puts(text);
    free(text);
    json_decref(out);
    schakel_keys_wipe(&c.keys);
    return healthy ? 0 : 1;
}
