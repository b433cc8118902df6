/* Looking is recorded (audit_access.h): the one place where an auditor's
 * command puts its audit_access event on the log, checks its --purpose,
 * and reads the broker's streams. Used by explain, audit subject, audit
 * verify and audit replay; audit export and erase call the same. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "audit_access.h"
#include "client.h"
#include "clock.h"
#include "consumer.h"
#include "crypto.h"
#include "error.h"
#include "tool.h"
#include "validate.h"

#define AUDIT_CODE_MAX 64

/* The envelope of one audit_access; body and id filled by the caller. */
static void fill(Schakel__V1__Envelope *e, Schakel__V1__AuditAccess *b, const char *org,
                 const audit_access_t *a, uint8_t id[16], char code[AUDIT_CODE_MAX])
{
    /* the command as a code: "audit verify" is audit_verify (events.md) */
    snprintf(code, AUDIT_CODE_MAX, "%s", a->command);
    for (char *p = code; *p; p++)
        if (*p == ' ') *p = '_';
    b->auditor_ref = (char *)org;
    b->request_code = code;
    b->query_ref = (char *)(a->query_ref ? a->query_ref : "");
    b->stated_purpose = (char *)(a->purpose ? a->purpose : "");
    b->from_seq = a->from_seq;
    b->to_seq = a->to_seq;
    e->event_id.data = id;
    e->event_id.len = 16;
    e->type = SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_AUDIT_ACCESS;
    e->source_org = (char *)org;
    e->occurred_at = schakel_wall_ms();
    e->subject = (char *)(a->subject ? a->subject : "");
    e->purpose = SCHAKEL__V1__PURPOSE__PURPOSE_BUS;
    e->legal_basis = SCHAKEL__V1__LEGAL_BASIS__LEGAL_BASIS_BUS;
    e->body_case = SCHAKEL__V1__ENVELOPE__BODY_AUDIT_ACCESS;
    e->audit_access = b;
}

static int ping(void *ctx, schakel_conn_t *c, uint64_t *head, int timeout_ms, char *why);

int audit_purpose_check(const char *cmd, const char *purpose, int required)
{
    if (!purpose || !purpose[0]) {
        if (!required) return 0;
        fprintf(stderr,
                "schakel %s: give --purpose TEXT: why you look at this child's records (a request or "
                "case number, \"subject access request\", \"complaint 2027-12\"); it is recorded on the "
                "log with your look. No names or other personal data in it.\n",
                cmd);
        return 2;
    }
    /* the broker's own check, here, before anything is read */
    Schakel__V1__Envelope e = SCHAKEL__V1__ENVELOPE__INIT;
    Schakel__V1__AuditAccess b = SCHAKEL__V1__AUDIT_ACCESS__INIT;
    audit_access_t a = {.command = cmd, .purpose = purpose};
    uint8_t id[16] = {1};
    char code[AUDIT_CODE_MAX];
    fill(&e, &b, "svc-audit", &a, id, code);
    char why[SCHAKEL_ERRLEN] = "";
    if (schakel_envelope_validate(&e, why) == 0) return 0;
    fprintf(stderr, "schakel %s: --purpose: %s\n", cmd,
            strstr(why, "stated_purpose") ? strstr(why, "stated_purpose") + strlen("stated_purpose: ") : why);
    return 2;
}

int audit_access_record(void *ctx, schakel_conn_t *c, const audit_access_t *a, char *why)
{
    schakel_client_options_t o = {0};
    o.endpoint = c->endpoint;
    o.server_public = c->server_public;
    o.keys = &c->keys;
    schakel_client_t *cl = schakel_client_new(ctx, &o, why);
    if (!cl) return SCHAKEL_EZMQ;
    uint8_t id[16];
    if (schakel_random(id, 16) != 0) {
        schakel_client_destroy(&cl);
        return schakel_fail(why, SCHAKEL_ECRYPTO, "no random event id");
    }
    Schakel__V1__Envelope e = SCHAKEL__V1__ENVELOPE__INIT;
    Schakel__V1__AuditAccess b = SCHAKEL__V1__AUDIT_ACCESS__INIT;
    char code[AUDIT_CODE_MAX];
    fill(&e, &b, c->keys.id, a, id, code);
    uint8_t *buf = NULL;
    size_t len = 0;
    Schakel__V1__Ack *ack = NULL;
    int rc = schakel_envelope_encode(&e, &buf, &len);
    if (rc) {
        schakel_fail(why, rc, "the audit_access event does not encode");
    } else {
        const uint8_t *evs[1] = {buf};
        rc = schakel_client_publish(cl, evs, &len, 1, &ack, 5000);
        if (rc || !ack || ack->n_entries != 1) {
            schakel_fail(why, rc ? rc : SCHAKEL_ETIMEOUT, "the broker did not acknowledge it");
            rc = rc ? rc : SCHAKEL_ETIMEOUT;
        } else if (ack->entries[0]->code) {
            schakel_fail(why, SCHAKEL_EREJECTED, "the broker refused it: %s", ack->entries[0]->reason);
            rc = SCHAKEL_EREJECTED;
        }
    }
    if (ack) schakel__v1__ack__free_unpacked(ack, NULL);
    free(buf);
    schakel_client_destroy(&cl);
    return rc;
}

int audit_access_record_offline(const char *cmd, schakel_conn_t *c, const char *data_dir,
                                const audit_access_t *a)
{
    char why[SCHAKEL_ERRLEN] = "", node[SCHAKEL_PATH_MAX];
    /* no broker named by the flags: the node whose data this is */
    if (!c->node_dir[0] && !c->endpoint[0] &&
        schakel_path_join(node, sizeof node, data_dir, "node.json", NULL) == 0 && access(node, R_OK) == 0)
        snprintf(c->node_dir, sizeof c->node_dir, "%s", data_dir);
    if (!c->as_org[0]) snprintf(c->as_org, sizeof c->as_org, "svc-audit");
    int rc = schakel_conn_finish(c, why);
    void *ctx = NULL;
    if (!rc) {
        ctx = zmq_ctx_new();
        rc = ping(ctx, c, NULL, 1500, why); /* a stopped broker: do not hold the audit up */
        if (rc) {
            char inner[SCHAKEL_ERRLEN];
            snprintf(inner, sizeof inner, "%s", why);
            schakel_textf(why, SCHAKEL_ERRLEN, "the broker at %s does not answer (%s)", c->endpoint,
                          inner[0] ? inner : "no reply");
        }
    }
    if (!rc) rc = audit_access_record(ctx, c, a, why);
    schakel_keys_wipe(&c->keys);
    if (ctx) schakel_wire_ctx_term(ctx);
    if (rc) {
        fprintf(stderr,
                "schakel %s: this audit was NOT recorded on the log: %s. Start the node (or give --node "
                "DIR / --endpoint of the running one) and run it again to have it recorded.\n",
                cmd, why[0] ? why : schakel_strerror(rc));
        return -1;
    }
    return 0;
}

static int ping(void *ctx, schakel_conn_t *c, uint64_t *head, int timeout_ms, char *why)
{
    schakel_client_options_t o = {0};
    o.endpoint = c->endpoint;
    o.server_public = c->server_public;
    o.keys = &c->keys;
    schakel_client_t *cl = schakel_client_new(ctx, &o, why);
    Schakel__V1__Ping p = SCHAKEL__V1__PING__INIT;
    ProtobufCMessage *reply = NULL;
    int rc =
        cl ? schakel_client_call(cl, "PING", &p.base, &schakel__v1__pong__descriptor, &reply, timeout_ms, why)
           : SCHAKEL_EZMQ;
    if (rc == 0 && head) *head = ((Schakel__V1__Pong *)reply)->head;
    if (reply) protobuf_c_message_free_unpacked(reply, NULL);
    schakel_client_destroy(&cl);
    return rc;
}

int audit_broker_answers(void *ctx, schakel_conn_t *c, uint64_t *head, char *why)
{
    return ping(ctx, c, head, 3000, why);
}

int audit_read_stream(void *ctx, schakel_conn_t *c, const char *stream, uint64_t from, size_t max,
                      void (*fn)(void *, const Schakel__V1__Delivered *), void *arg, char *why)
{
    schakel_consumer_options_t o = {0};
    o.endpoint = c->endpoint;
    o.server_public = c->server_public;
    o.keys = &c->keys;
    o.stream = stream;
    o.from_seq = from;
    o.batch = max < 500 ? (uint32_t)max : 500;
    schakel_consumer_t *cons = schakel_consumer_new(ctx, &o, why);
    if (!cons) return SCHAKEL_EZMQ;
    const Schakel__V1__Delivered *d;
    int rc = 0;
    size_t n = 0;
    while (n < max && (rc = schakel_consumer_next(cons, &d, 0, why)) == 0) {
        fn(arg, d);
        n++;
    }
    schakel_consumer_destroy(&cons);
    return n == max || rc == SCHAKEL_ETIMEOUT ? 0 : rc; /* caught up, or had all it wanted */
}
