/* schakel tail: follow a stream as JSON lines. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "codec.h"
#include "consumer.h"
#include "error.h"
#include "json.h"
#include "tool.h"
#include "wire.h"

static const char usage[] = "usage: schakel tail [connection options] [--stream S] [--from SEQ] [--follow]\n"
                            "                    [--consumer NAME] [--count N]\n"
                            "\n"
                            "Prints the records of a stream as JSON lines: {\"seq\":..,\"recorded_at\":..,\n"
                            "\"hash\":..,\"event\":{...}}. S is \"all\" (services with read_all) or\n"
                            "\"org/<id>\" (what was delivered to organisation <id>; the default is the\n"
                            "own one). Without --follow it stops at the head. With --consumer the\n"
                            "position is kept by the broker and the next run goes on from there.\n"
                            "Exit status: 0 read to the head, or nothing more came (also when no broker\n"
                            "answers), or stopped; 1 refused, e.g. a stream this organisation may not\n"
                            "read (the reason once on standard error); 2 wrong arguments.\n"
                            "\n";

static volatile sig_atomic_t stop;

static void on_signal(int s)
{
    (void)s;
    stop = 1;
}

static void print_record(const Schakel__V1__Delivered *r)
{
    json_t *o = json_object();
    char t[32], h[65];
    schakel_time_format(r->recorded_at, t);
    json_object_set_new(o, "seq", json_integer((json_int_t)r->seq));
    if (r->position && r->position != r->seq) /* delivered later than it was recorded */
        json_object_set_new(o, "position", json_integer((json_int_t)r->position));
    json_object_set_new(o, "recorded_at", json_string(t));
    if (r->hash.len == 32) {
        schakel_hex_encode(r->hash.data, 32, h);
        json_object_set_new(o, "hash", json_string(h));
    }
    if (r->event.len == 0) {
        json_object_set_new(o, "erased", json_true());
    } else {
        schakel_envelope_t *env = schakel_envelope_decode(r->event.data, r->event.len, NULL);
        if (env) json_object_set_new(o, "event", schakel_json_from_envelope(env));
        else json_object_set_new(o, "undecodable", json_true());
        schakel_envelope_free(env);
    }
    char *s = json_dumps(o, JSON_COMPACT);
    if (s) puts(s);
    free(s);
    json_decref(o);
}

int cmd_tail(int argc, char **argv)
{
    schakel_conn_t conn;
    memset(&conn, 0, sizeof conn);
    const char *stream = NULL, *consumer = NULL;
    uint64_t from = 0, count = 0;
    int follow = 0;
    schakel_flag_t flags[] = {
        SCHAKEL_CONN_FLAGS(&conn),
        SCHAKEL_FLAG_S("--stream", "S", &stream),
        SCHAKEL_FLAG_S("--consumer", "NAME", &consumer),
        SCHAKEL_FLAG_U("--from", &from, 0, UINT64_MAX),
        SCHAKEL_FLAG_U("--count", &count, 0, UINT64_MAX),
        SCHAKEL_FLAG_B("--follow", "-f", &follow),
        SCHAKEL_FLAGS_END,
    };
    int status = tool_flags("tail", flags, argc, argv, 1, usage, schakel_conn_help, NULL);
    if (status >= 0) return status;
    if (tool_conn_finish(&conn, "tail")) return 2;
    char own[SCHAKEL_ID_MAX + 8];
    snprintf(own, sizeof own, "org/%s", conn.keys.id);
    if (!stream) stream = own;
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    void *ctx = zmq_ctx_new();
    char why[SCHAKEL_ERRLEN] = "";
    schakel_consumer_options_t o = {0};
    o.endpoint = conn.endpoint;
    o.pub_endpoint = follow ? conn.pub_endpoint : NULL;
    o.server_public = conn.server_public;
    o.keys = &conn.keys;
    o.stream = stream;
    o.consumer = consumer;
    o.from_seq = from;
    schakel_consumer_t *c = schakel_consumer_new(ctx, &o, why);
    int rc = c ? 0 : 1;
    if (!c) fprintf(stderr, "schakel tail: %s\n", why[0] ? why : "cannot reach the broker");
    uint64_t seen = 0;
    uint64_t last = 0;
    while (c && !stop && (!count || seen < count)) {
        const Schakel__V1__Delivered *r;
        int e = schakel_consumer_next(c, &r, follow ? 500 : 300, why);
        if (e == SCHAKEL_ETIMEOUT) {
            /* on the way out it commits again, and says so if that fails */
            if (consumer && last) SCHAKEL_DROP(schakel_consumer_commit(c, last, why));
            fflush(stdout);
            if (!follow) break;
            continue;
        }
        if (e) { /* said once, here: not again on the way out */
            fprintf(stderr, "schakel tail: %s\n", why[0] ? why : schakel_strerror(e));
            rc = 1;
            break;
        }
        print_record(r);
        last = r->position ? r->position : r->seq; /* cursors are positions */
        seen++;
    }
    fflush(stdout);
    if (c && consumer && last && schakel_consumer_commit(c, last, why) != 0)
        fprintf(stderr, "schakel tail: cursor not stored: %s\n", why);
    schakel_consumer_destroy(&c);
    schakel_keys_wipe(&conn.keys);
    schakel_wire_ctx_term(ctx);
    return rc;
}
