/* schakel publish: JSON lines in, signed batches out, one ACK line per
 * input line. What is wrong with a line is said before anything is sent;
 * the broker's verdict comes back per line. */
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "client.h"
#include "clock.h"
#include "codec.h"
#include "error.h"
#include "json.h"
#include "tool.h"
#include "validate.h"
#include "wire.h"

#define BATCH 256

static const char usage[] =
    "usage: schakel publish [connection options] [--timeout-ms MS] < events.jsonl\n"
    "\n"
    "Reads one event per line as JSON (docs/events.md), signs them in batches\n"
    "with the organisation's key and publishes them. Prints one JSON line per\n"
    "input line: {\"line\":N,\"event_id\":...,\"seq\":S} when stored (\"duplicate\":true\n"
    "when it was stored before), or {\"line\":N,\"error\":CODE,\"reason\":...}.\n"
    "Filled in when missing: source_org (this organisation), occurred_at (now),\n"
    "event_id (derived from the line, so publishing the same line twice\n"
    "stores it once).\n"
    "\n"
    "Exit status: 0 all stored; 1 some lines rejected (each line says why);\n"
    "2 wrong arguments or key files; 3 no broker answered in time (publish the\n"
    "same lines again later: they are stored once); 4 the broker refused this\n"
    "organisation's key (it is not in the directory, or with another key):\n"
    "sending again does not help until the directory keeper adds it.\n"
    "\n";

static const char *code_name(int code)
{
    const ProtobufCEnumValue *v =
        protobuf_c_enum_descriptor_get_value(&schakel__v1__reject_code__descriptor, code);
    static char buf[32];
    if (!v) return "unknown";
    const char *n = v->name + 7; /* REJECT_ */
    size_t i = 0;
    for (; n[i] && i < sizeof buf - 1; i++) buf[i] = (char)(n[i] >= 'A' && n[i] <= 'Z' ? n[i] + 32 : n[i]);
    buf[i] = 0;
    return buf;
}

static void print_line(long line, const char *event_id, const char *error, const char *reason, uint64_t seq,
                       int dup)
{
    json_t *o = json_object();
    json_object_set_new(o, "line", json_integer(line));
    if (event_id) json_object_set_new(o, "event_id", json_string(event_id));
    if (error) {
        json_object_set_new(o, "error", json_string(error));
        json_object_set_new(o, "reason", json_string(reason ? reason : ""));
    } else {
        json_object_set_new(o, "seq", json_integer((json_int_t)seq));
        if (dup) json_object_set_new(o, "duplicate", json_true());
    }
    char *s = json_dumps(o, JSON_COMPACT);
    if (s) puts(s);
    free(s);
    json_decref(o);
}

/* Fills what a person may leave out; the event id comes from the line. */
static void complete(schakel_envelope_t *env, const char *org, const char *text, size_t len)
{
    if (!env->source_org[0] || !strcmp(env->source_org, "")) {
        if (env->source_org != protobuf_c_empty_string) free(env->source_org);
        env->source_org = strdup(org);
    }
    if (env->occurred_at == 0) env->occurred_at = schakel_wall_ms();
    if (env->event_id.len == 0) {
        uint8_t h[SCHAKEL_SHA256_LEN];
        schakel_sha256_t c;
        schakel_sha256_init(&c);
        schakel_sha256_update(&c, "schakel/v1/event-id", 19);
        schakel_sha256_update(&c, org, strlen(org) + 1);
        schakel_sha256_update(&c, text, len);
        schakel_sha256_final(&c, h);
        env->event_id.data = malloc(SCHAKEL_EVENT_ID_LEN);
        if (env->event_id.data) {
            memcpy(env->event_id.data, h, SCHAKEL_EVENT_ID_LEN);
            env->event_id.len = SCHAKEL_EVENT_ID_LEN;
        }
    }
}

/* Lines in input order; those rejected before sending keep their reason so
 * that the output stays in input order too. */
typedef struct {
    long line[BATCH];
    char id[BATCH][33];
    char *error[BATCH], *reason[BATCH];
    uint8_t *buf[BATCH];
    size_t len[BATCH];
    size_t n;
} batch_t;

static int flush(schakel_client_t *cl, batch_t *b, int timeout_ms, int *rejected)
{
    if (b->n == 0) return 0;
    Schakel__V1__Ack *ack = NULL;
    const uint8_t *bufs[BATCH];
    size_t lens[BATCH], n = 0, k = 0;
    for (size_t i = 0; i < b->n; i++) {
        if (b->error[i]) continue;
        bufs[n] = b->buf[i];
        lens[n++] = b->len[i];
    }
    int rc = n ? schakel_client_publish(cl, bufs, lens, n, &ack, timeout_ms) : 0;
    for (size_t j = 0; j < b->n; j++) {
        if (b->error[j]) {
            print_line(b->line[j], b->id[j][0] ? b->id[j] : NULL, b->error[j], b->reason[j], 0, 0);
            (*rejected)++;
            free(b->reason[j]);
            b->error[j] = b->reason[j] = NULL;
            continue;
        }
        size_t i = k++;
        if (rc) {
            print_line(b->line[j], b->id[j], rc == SCHAKEL_EAUTH ? "unauthenticated" : "no_answer",
                       rc == SCHAKEL_EAUTH ? "the broker refused this organisation's key: not sent"
                                           : "no answer from the broker: not known to be stored",
                       0, 0);
            (*rejected)++;
        } else if (i >= ack->n_entries || ack->entries[i]->code) {
            int code = i < ack->n_entries ? ack->entries[i]->code : ack->batch_code;
            const char *reason = i < ack->n_entries && ack->entries[i]->reason[0] ? ack->entries[i]->reason
                                                                                  : ack->batch_reason;
            print_line(b->line[j], b->id[j], code_name(code), reason, 0, 0);
            (*rejected)++;
        } else {
            print_line(b->line[j], b->id[j], NULL, NULL, ack->entries[i]->seq, ack->entries[i]->duplicate);
        }
        free(b->buf[j]);
    }
    fflush(stdout);
    if (ack) schakel__v1__ack__free_unpacked(ack, NULL);
    b->n = 0;
    return rc;
}

static int stdin_ready(void)
{
    struct pollfd p = {0, POLLIN, 0};
    return poll(&p, 1, 0) > 0;
}

int cmd_publish(int argc, char **argv)
{
    schakel_conn_t conn;
    memset(&conn, 0, sizeof conn);
    uint64_t timeout = 30000;
    schakel_flag_t flags[] = {
        SCHAKEL_CONN_FLAGS(&conn),
        SCHAKEL_FLAG_U("--timeout-ms", &timeout, 1, INT_MAX),
        SCHAKEL_FLAGS_END,
    };
    int status = tool_flags("publish", flags, argc, argv, 1, usage, schakel_conn_help, NULL);
    if (status >= 0) return status;
    int timeout_ms = (int)timeout;
    if (tool_conn_finish(&conn, "publish")) return 2;
    void *ctx = zmq_ctx_new();
    char why[SCHAKEL_ERRLEN] = "";
    schakel_client_options_t o = {0};
    o.endpoint = conn.endpoint;
    o.server_public = conn.server_public;
    o.keys = &conn.keys;
    schakel_client_t *cl = schakel_client_new(ctx, &o, why);
    if (!cl) {
        fprintf(stderr, "schakel publish: %s\n", why);
        return 3;
    }
    static batch_t b;
    char *text = NULL;
    size_t cap = 0;
    ssize_t len;
    long line = 0;
    int rejected = 0, fatal = 0; /* fatal: the error code of a batch that was not taken */
    while (!fatal && (len = getline(&text, &cap, stdin)) >= 0) {
        line++;
        while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r')) text[--len] = 0;
        if (len == 0) continue;
        size_t i = b.n++;
        b.line[i] = line;
        b.id[i][0] = 0;
        schakel_envelope_t *env = schakel_json_parse_envelope(text, (size_t)len, why);
        if (env) {
            complete(env, conn.keys.id, text, (size_t)len);
            if (env->event_id.len == 16) schakel_hex_encode(env->event_id.data, 16, b.id[i]);
        }
        if (!env || schakel_envelope_validate(env, why) != 0) {
            b.error[i] = "invalid";
            b.reason[i] = strdup(why);
        } else if (schakel_envelope_encode(env, &b.buf[i], &b.len[i]) != 0) {
            b.error[i] = "too_large";
            b.reason[i] = strdup("event is over 64 KiB encoded: carry facts and pointers, not content");
        }
        schakel_envelope_free(env);
        if (b.n == BATCH || !stdin_ready()) fatal = flush(cl, &b, timeout_ms, &rejected);
    }
    if (!fatal) fatal = flush(cl, &b, timeout_ms, &rejected);
    if (fatal == SCHAKEL_EAUTH) /* resending cannot help: say what can */
        fprintf(stderr,
                "schakel publish: stopped at line %ld: the broker at %s refused the key of %s: it is "
                "not in the broker's directory, or the directory has another key for it. Send %s.pub to "
                "the directory keeper (docs/operations.md, \"The directory\")\n",
                line, conn.endpoint, conn.keys.id, conn.keys.id);
    else if (fatal)
        fprintf(stderr,
                "schakel publish: stopped at line %ld: the broker at %s did not take the "
                "batch; publish the same lines again, they are stored once\n",
                line, conn.endpoint);
    free(text);
    schakel_client_destroy(&cl);
    schakel_keys_wipe(&conn.keys);
    schakel_wire_ctx_term(ctx);
    return fatal == SCHAKEL_EAUTH ? 4 : fatal ? 3 : rejected ? 1 : 0;
}
