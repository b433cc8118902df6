/* schakel audit erase: the node's operator erases a child's data through
 * the running broker (ERASE, protocol.md): the broker destroys the data
 * key, overwrites every copy of it left in the log's file, and logs an
 * `erasure` event. It connects with the broker's own key
 * (DIR/keys/broker.key), which only the node's operator holds: no
 * organisation can erase over the wire, and nothing here opens the log
 * itself, so it never writes beside a running broker. */
#include <ctype.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "client.h"
#include "error.h"
#include "json.h"
#include "tool.h"
#include "validate.h"
#include "wire.h"

static const char usage[] =
    "usage: schakel audit erase --node DIR --subject PSEUDONYM --basis CODE --purpose TEXT\n"
    "\n"
    "Erases everything the log of the node in DIR holds about one child: the\n"
    "running broker destroys the child's data key (its events up to now can no\n"
    "longer be read by anyone, the chain still verifies), overwrites the copies\n"
    "of that key LMDB left in freed pages, and records an `erasure` event on the\n"
    "log: the pseudonym, CODE, TEXT, your account and the last sequence number\n"
    "erased. It connects with the broker's own key, DIR/keys/broker.key.\n"
    "\n"
    "  --subject PSEUDONYM  the child's pseudonym, 64 lower-case hex characters\n"
    "  --basis CODE         avg17_request, retention, age_23, deceased or unlawful\n"
    "  --purpose TEXT       your reference for the request, e.g. a ticket number:\n"
    "                       1 to 80 letters, digits or \" ._:/#@-\"; never a name\n"
    "\n"
    "Prints one JSON line. Exit status 0: erased; 1: there was nothing to erase\n"
    "(the subject never had an event on this log); 2: a wrong argument; 3: the\n"
    "broker does not answer, or could not erase now (nothing was erased: start\n"
    "the node, or ask again); 4: erased, but the erasure event could not be\n"
    "logged (the broker raised an alarm); 5: already erased on the date printed,\n"
    "and nothing about the child was recorded since: nothing to erase.\n";

/* CODE as ErasureBasis: "avg17_request" is ERASURE_BASIS_AVG17_REQUEST. */
static int basis_parse(const char *code)
{
    char name[64];
    size_t n = strlen(code);
    if (n == 0 || n > 32) return 0;
    int k = snprintf(name, sizeof name, "ERASURE_BASIS_");
    for (size_t i = 0; i < n; i++) {
        if (!islower((unsigned char)code[i]) && !isdigit((unsigned char)code[i]) && code[i] != '_') return 0;
        name[k++] = (char)toupper((unsigned char)code[i]);
    }
    name[k] = 0;
    const ProtobufCEnumValue *v =
        protobuf_c_enum_descriptor_get_value_by_name(&schakel__v1__erasure_basis__descriptor, name);
    return v && v->value > 0 ? v->value : 0;
}

/* Who asks: the account running the command (an operator's login, not a
 * child's data), or its uid when the name does not fit the field. */
static void operator_name(char *out, size_t cap)
{
    const struct passwd *pw = getpwuid(geteuid());
    if (pw && schakel_ref_text_valid(pw->pw_name) && strlen(pw->pw_name) < cap)
        snprintf(out, cap, "%s", pw->pw_name);
    else snprintf(out, cap, "uid-%lu", (unsigned long)geteuid());
}

static int erase_call(schakel_conn_t *c, Schakel__V1__Erase *req)
{
    void *ctx = zmq_ctx_new();
    schakel_client_options_t o = {0};
    o.endpoint = c->endpoint;
    o.server_public = c->server_public;
    o.keys = &c->keys;
    char why[SCHAKEL_ERRLEN] = "";
    schakel_client_t *cl = schakel_client_new(ctx, &o, why);
    Schakel__V1__Ping ping = SCHAKEL__V1__PING__INIT;
    ProtobufCMessage *reply = NULL;
    /* first PING: a stopped broker is said in seconds, not after the
     * long wait an erasure may take (the whole file is searched) */
    int rc =
        cl ? schakel_client_call(cl, "PING", &ping.base, &schakel__v1__pong__descriptor, &reply, 3000, why)
           : SCHAKEL_EZMQ;
    if (reply) protobuf_c_message_free_unpacked(reply, NULL);
    reply = NULL;
    if (rc == 0)
        rc = schakel_client_call(cl, "ERASE", &req->base, &schakel__v1__erased__descriptor, &reply, 120000,
                                 why);
    int status;
    const Schakel__V1__Erased *e = (const Schakel__V1__Erased *)reply;
    if (rc == 0 && e && e->no_key && e->already_erased) {
        char at[32];
        schakel_time_format(e->erased_at, at);
        printf("{\"ok\":false,\"no_key\":true,\"already_erased\":true,\"erased_at\":\"%s\",\"erased_upto\":%"
               "llu}\n",
               at, (unsigned long long)e->erased_upto);
        fprintf(
            stderr,
            "schakel audit erase: already erased on %.10s (its records up to seq %llu); nothing about this "
            "child was recorded since: nothing to erase\n",
            at, (unsigned long long)e->erased_upto);
        status = 5;
    } else if (rc == 0 && e && e->no_key) {
        printf("{\"ok\":false,\"no_key\":true}\n");
        fprintf(stderr,
                "schakel audit erase: nothing to erase: no data key for this subject (it had no event on "
                "this log)\n");
        status = 1;
    } else if (rc == 0 && e) {
        char id[33] = "";
        if (e->event_id.len == 16) schakel_hex_encode(e->event_id.data, 16, id);
        printf("{\"ok\":%s,\"erased_upto\":%llu,\"seq\":%llu,\"event_id\":\"%s\"}\n",
               e->seq ? "true" : "false", (unsigned long long)e->erased_upto, (unsigned long long)e->seq, id);
        if (!e->seq)
            fprintf(stderr,
                    "schakel audit erase: the data key is erased, but the erasure event could not be logged: "
                    "see the broker's log (alarm own_append_refused)\n");
        status = e->seq ? 0 : 4;
    } else {
        fprintf(stderr, "schakel audit erase: nothing was erased: %s (is the node in %s running?)\n",
                why[0] ? why : schakel_strerror(rc), c->node_dir);
        status = 3;
    }
    if (reply) protobuf_c_message_free_unpacked(reply, NULL);
    schakel_client_destroy(&cl);
    schakel_wire_ctx_term(ctx);
    return status;
}

int cmd_audit_erase(int argc, char **argv)
{
    schakel_conn_t c;
    memset(&c, 0, sizeof c);
    const char *subject = NULL, *basis = NULL, *purpose = NULL;
    schakel_flag_t flags[] = {
        SCHAKEL_FLAG_BUFFER("--node", "DIR", c.node_dir),
        SCHAKEL_FLAG_S("--subject", "PSEUDONYM", &subject),
        SCHAKEL_FLAG_S("--basis", "CODE", &basis),
        SCHAKEL_FLAG_S("--purpose", "TEXT", &purpose),
        SCHAKEL_FLAGS_END,
    };
    int status = tool_flags("audit erase", flags, argc, argv, 2, usage, NULL, usage);
    if (status >= 0) return status;
    const char *missing = !c.node_dir[0] ? "--node DIR"
                          : !subject     ? "--subject PSEUDONYM"
                          : !basis       ? "--basis CODE"
                          : !purpose     ? "--purpose TEXT"
                                         : NULL;
    if (missing) {
        fprintf(stderr, "schakel audit erase: %s is required\n", missing);
        return 2;
    }
    size_t n = strlen(subject), hex = strspn(subject, "0123456789abcdef");
    if (n != 64 || hex != 64) {
        fprintf(stderr,
                "schakel audit erase: --subject: a pseudonym of 64 lower-case hex characters is needed\n");
        return 2;
    }
    int b = basis_parse(basis);
    if (!b) {
        fprintf(
            stderr,
            "schakel audit erase: --basis: give avg17_request, retention, age_23, deceased or unlawful\n");
        return 2;
    }
    if (!schakel_ref_text_valid(purpose)) {
        fprintf(
            stderr,
            "schakel audit erase: --purpose: 1 to 80 letters, digits or \" ._:/#@-\" (a reference such as "
            "a ticket number, never a name)\n");
        return 2;
    }
    snprintf(c.as_org, sizeof c.as_org, "broker"); /* the bus's own key: the node's operator */
    if (tool_conn_finish(&c, "audit erase") != 0) return 2;
    char by[81];
    operator_name(by, sizeof by);
    Schakel__V1__Erase req = SCHAKEL__V1__ERASE__INIT;
    req.subject = (char *)subject;
    req.basis = (Schakel__V1__ErasureBasis)b;
    req.purpose = (char *)purpose;
    req.requested_by = by;
    status = erase_call(&c, &req);
    schakel_keys_wipe(&c.keys);
    return status;
}
