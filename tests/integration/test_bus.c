/* The bus core against a real broker process: authentication, validation
 * before storage, rejects with reasons, dedup, streams and cursors, and
 * delivery through consent decisions. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "harness.h"
#include "wire.h"

static harness_t *H;

static int setup(void **state)
{
    (void)state;
    H = harness_new();
    return harness_start(H);
}

static int teardown(void **state)
{
    (void)state;
    int bad = harness_shutdown(H);
    harness_destroy(&H);
    return bad ? -1 : 0;
}

/* A raw CURVE DEALER for org, to send what a well-behaved client never would. */
static void *raw_socket(const char *org)
{
    schakel_keys_t k;
    harness_keys(H, org, &k);
    void *s = zmq_socket(H->ctx, ZMQ_DEALER);
    int zero = 0, t = 5000;
    zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(s, ZMQ_RCVTIMEO, &t, sizeof t);
    assert_int_equal(schakel_wire_curve_client(s, &k, H->server_public), 0);
    assert_int_equal(zmq_connect(s, H->endpoint), 0);
    return s;
}

/* Sends [name][id][body] raw and returns the reply's name and decoded body. */
static void raw_call(void *s, const char *name, const void *body, size_t len, char *reply_name,
                     zmq_msg_t *reply_body)
{
    uint8_t id[8] = {0, 0, 0, 0, 0, 0, 0, 42};
    zmq_send(s, name, strlen(name), ZMQ_SNDMORE);
    zmq_send(s, id, 8, ZMQ_SNDMORE);
    zmq_send(s, body, len, 0);
    schakel_wire_msg_t m;
    assert_int_equal(schakel_wire_recv(s, 0, &m, 0), 0);
    snprintf(reply_name, 17, "%s", m.name);
    zmq_msg_init(reply_body);
    zmq_msg_copy(reply_body, &m.body);
    schakel_wire_close(&m);
}

static Schakel__V1__Ack *raw_publish(void *s, const void *body, size_t len)
{
    char name[17];
    zmq_msg_t b;
    raw_call(s, "PUBLISH", body, len, name, &b);
    assert_string_equal(name, "ACK");
    Schakel__V1__Ack *a = schakel__v1__ack__unpack(NULL, zmq_msg_size(&b), zmq_msg_data(&b));
    zmq_msg_close(&b);
    assert_non_null(a);
    return a;
}

/* A valid publish works and the broker keeps serving: used after each abuse. */
static void assert_still_serving(void)
{
    schakel_client_t *c = harness_client(H, "smw-b");
    uint8_t id[16], *buf;
    size_t len;
    harness_event_id(id);
    harness_signal("smw-b", id, 7, &buf, &len);
    Schakel__V1__Ack *a = harness_publish1(c, buf, len);
    assert_non_null(a);
    assert_int_equal(a->entries[0]->code, 0);
    assert_true(a->entries[0]->seq > 0);
    schakel__v1__ack__free_unpacked(a, NULL);
    free(buf);
    schakel_client_destroy(&c);
}

static void publish_is_acked_with_seq(void **state)
{
    (void)state;
    schakel_client_t *c = harness_client(H, "school-a");
    uint8_t id[16], *buf;
    size_t len;
    harness_event_id(id);
    harness_signal("school-a", id, 1, &buf, &len);
    Schakel__V1__Ack *a = harness_publish1(c, buf, len);
    assert_non_null(a);
    assert_int_equal(a->n_entries, 1);
    assert_int_equal(a->entries[0]->code, 0);
    assert_true(a->entries[0]->seq >= 1);
    assert_memory_equal(a->entries[0]->event_id.data, id, 16);
    schakel__v1__ack__free_unpacked(a, NULL);
    free(buf);
    schakel_client_destroy(&c);
}

static void unknown_key_is_refused(void **state)
{
    (void)state;
    uint64_t before = harness_head(H);
    schakel_client_t *c = harness_client(H, "stranger");
    uint8_t id[16], *buf;
    size_t len;
    harness_event_id(id);
    harness_signal("stranger", id, 1, &buf, &len);
    Schakel__V1__Ack *ack = NULL;
    const uint8_t *evs[1] = {buf};
    int rc = schakel_client_publish(c, evs, &len, 1, &ack, 3000);
    assert_true(rc == SCHAKEL_EAUTH || rc == SCHAKEL_ETIMEOUT);
    assert_null(ack);
    assert_int_equal(harness_head(H), before);
    free(buf);
    schakel_client_destroy(&c);
    assert_still_serving();
}

static void event_claiming_other_org_is_rejected(void **state)
{
    (void)state;
    schakel_client_t *c = harness_client(H, "school-a");
    uint8_t id[16], *buf;
    size_t len;
    harness_event_id(id);
    harness_signal("smw-b", id, 1, &buf, &len); /* claims smw-b, signed by school-a */
    Schakel__V1__Ack *a = harness_publish1(c, buf, len);
    assert_non_null(a);
    assert_int_equal(a->entries[0]->code, SCHAKEL__V1__REJECT_CODE__REJECT_WRONG_SOURCE);
    assert_non_null(strstr(a->entries[0]->reason, "school-a"));
    assert_int_equal(a->entries[0]->seq, 0);
    schakel__v1__ack__free_unpacked(a, NULL);
    free(buf);
    schakel_client_destroy(&c);
}

static void type_not_allowed_is_rejected(void **state)
{
    (void)state;
    /* svc-decide may publish consent_decision only, not a signal */
    schakel_client_t *c = harness_client(H, "svc-decide");
    uint8_t id[16], *buf;
    size_t len;
    harness_event_id(id);
    harness_signal("svc-decide", id, 1, &buf, &len);
    Schakel__V1__Ack *a = harness_publish1(c, buf, len);
    assert_non_null(a);
    assert_int_equal(a->entries[0]->code, SCHAKEL__V1__REJECT_CODE__REJECT_NOT_ALLOWED);
    assert_non_null(strstr(a->entries[0]->reason, "signal"));
    schakel__v1__ack__free_unpacked(a, NULL);
    free(buf);
    schakel_client_destroy(&c);
}

static void garbage_frames_get_reasons(void **state)
{
    (void)state;
    void *s = raw_socket("school-a");
    uint64_t before = harness_head(H);

    /* garbage body */
    uint8_t junk[300];
    for (size_t i = 0; i < sizeof junk; i++) junk[i] = (uint8_t)(i * 37 + 11);
    Schakel__V1__Ack *a = raw_publish(s, junk, sizeof junk);
    assert_int_equal(a->batch_code, SCHAKEL__V1__REJECT_CODE__REJECT_MALFORMED);
    assert_true(strlen(a->batch_reason) > 10);
    schakel__v1__ack__free_unpacked(a, NULL);

    /* a truncated, validly signed batch */
    uint8_t id[16], *buf;
    size_t len;
    harness_event_id(id);
    harness_signal("school-a", id, 1, &buf, &len);
    Schakel__V1__Publish p = SCHAKEL__V1__PUBLISH__INIT;
    ProtobufCBinaryData ev = {len, buf};
    uint8_t sig[64] = {0};
    p.n_events = 1;
    p.events = &ev;
    p.signature.data = sig;
    p.signature.len = 64;
    size_t plen = schakel__v1__publish__get_packed_size(&p);
    uint8_t *pb = malloc(plen);
    schakel__v1__publish__pack(&p, pb);
    a = raw_publish(s, pb, plen / 2);
    assert_int_equal(a->batch_code, SCHAKEL__V1__REJECT_CODE__REJECT_MALFORMED);
    schakel__v1__ack__free_unpacked(a, NULL);

    /* whole, but the signature is zeros: wrongly signed */
    a = raw_publish(s, pb, plen);
    assert_int_equal(a->batch_code, SCHAKEL__V1__REJECT_CODE__REJECT_BAD_SIGNATURE);
    assert_non_null(strstr(a->batch_reason, "signature"));
    assert_int_equal(a->entries[0]->code, SCHAKEL__V1__REJECT_CODE__REJECT_BAD_SIGNATURE);
    schakel__v1__ack__free_unpacked(a, NULL);
    free(pb);

    /* oversized frame: 9 MiB */
    size_t big = 9u << 20;
    uint8_t *huge = calloc(1, big);
    a = raw_publish(s, huge, big);
    assert_int_equal(a->batch_code, SCHAKEL__V1__REJECT_CODE__REJECT_TOO_LARGE);
    assert_non_null(strstr(a->batch_reason, "limit"));
    schakel__v1__ack__free_unpacked(a, NULL);
    free(huge);

    /* unknown command and wrong frame count */
    char name[17];
    zmq_msg_t b;
    raw_call(s, "SHOUT", "x", 1, name, &b);
    assert_string_equal(name, "ERROR");
    Schakel__V1__Error *e = schakel__v1__error__unpack(NULL, zmq_msg_size(&b), zmq_msg_data(&b));
    assert_non_null(e);
    assert_int_equal(e->code, SCHAKEL__V1__REJECT_CODE__REJECT_UNKNOWN_COMMAND);
    schakel__v1__error__free_unpacked(e, NULL);
    zmq_msg_close(&b);
    zmq_send(s, "PUBLISH", 7, 0); /* one frame only */
    schakel_wire_msg_t m;
    assert_int_equal(schakel_wire_recv(s, 0, &m, 0), 0);
    assert_string_equal(m.name, "ERROR");
    schakel_wire_close(&m);

    free(buf);
    zmq_close(s);
    assert_int_equal(harness_head(H), before); /* nothing of it was stored */
    assert_still_serving();
}


/* A publish of buf by school-a; returns the entry's code, its reason in why. */
static int publish_code(schakel_client_t *c, const uint8_t *buf, size_t len, char *why)
{
    Schakel__V1__Ack *a = harness_publish1(c, buf, len);
    assert_non_null(a);
    assert_int_equal(a->n_entries, 1);
    int code = a->entries[0]->code;
    snprintf(why, SCHAKEL_ERRLEN, "%s", a->entries[0]->reason);
    schakel__v1__ack__free_unpacked(a, NULL);
    return code;
}

static void nul_and_unknown_fields_are_refused(void **state)
{
    (void)state;
    uint64_t before = harness_head(H);
    schakel_client_t *c = harness_client(H, "school-a");
    char why[SCHAKEL_ERRLEN];
    uint8_t id[16], *buf;
    size_t len;

    /* case_ref "ZR-1\0QZXW": the unpacked char* reads "ZR-1" */
    harness_event_id(id);
    harness_signal("school-a", id, 11, &buf, &len);
    uint8_t *at = memmem(buf, len, "case-0001", 9);
    assert_non_null(at);
    memcpy(at, "ZR-1\0QZXW", 9);
    assert_int_equal(publish_code(c, buf, len, why), SCHAKEL__V1__REJECT_CODE__REJECT_INVALID);
    assert_non_null(strstr(why, "case_ref"));
    assert_non_null(strstr(why, "NUL"));
    assert_null(strstr(why, "QZXW"));
    /* and invalid UTF-8 after the NUL */
    at[5] = 0xff;
    assert_int_equal(publish_code(c, buf, len, why), SCHAKEL__V1__REJECT_CODE__REJECT_INVALID);
    assert_non_null(strstr(why, "case_ref"));
    free(buf);

    /* an unknown field after the envelope's fields */
    harness_event_id(id);
    harness_signal("school-a", id, 12, &buf, &len);
    buf = realloc(buf, len + 3);
    memcpy(buf + len, "\x98\x06\x01", 3);
    assert_int_equal(publish_code(c, buf, len + 3, why), SCHAKEL__V1__REJECT_CODE__REJECT_INVALID);
    assert_string_equal(why, "unknown field 99 in schakel.v1.Envelope: remove it");
    free(buf);

    /* and one inside the body, carrying text */
    harness_event_id(id);
    harness_signal("school-a", id, 13, &buf, &len);
    schakel_envelope_t *e = schakel_envelope_decode(buf, len, why);
    assert_non_null(e);
    static uint8_t text[] = "\x04QZXW";
    ProtobufCMessageUnknownField u = {.tag = 99,
                                      .wire_type = PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED,
                                      .len = 5,
                                      .data = text};
    e->signal->base.n_unknown_fields = 1;
    e->signal->base.unknown_fields = &u;
    uint8_t *nested = malloc(schakel__v1__envelope__get_packed_size(e));
    size_t nlen = schakel__v1__envelope__pack(e, nested);
    e->signal->base.n_unknown_fields = 0;
    e->signal->base.unknown_fields = NULL;
    schakel_envelope_free(e);
    assert_int_equal(publish_code(c, nested, nlen, why), SCHAKEL__V1__REJECT_CODE__REJECT_INVALID);
    assert_string_equal(why, "unknown field 99 in schakel.v1.Signal: remove it");
    free(nested);
    free(buf);
    schakel_client_destroy(&c);

    /* the other commands: a NUL in a stream name, an unknown field */
    void *s = raw_socket("svc-reader");
    struct {
        const char *cmd;
        const char *body;
        size_t len;
        const char *needle;
    } cases[] = {
        {"FETCH", "\x0a\x05" "all\0x", 7, "stream"},
        {"FETCH", "\x2a\x03" "c\0x", 5, "consumer"},
        {"COMMIT", "\x0a\x03" "all\x12\x01" "c\x98\x06\x01", 11,
         "unknown field 99 in schakel.v1.Commit"},
        {"PING", "\x08\x01\x98\x06\x01", 5, "unknown field 99 in schakel.v1.Ping"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char name[17];
        zmq_msg_t b;
        raw_call(s, cases[i].cmd, cases[i].body, cases[i].len, name, &b);
        assert_string_equal(name, "ERROR");
        Schakel__V1__Error *err =
            schakel__v1__error__unpack(NULL, zmq_msg_size(&b), zmq_msg_data(&b));
        assert_non_null(err);
        assert_int_equal(err->code, SCHAKEL__V1__REJECT_CODE__REJECT_INVALID);
        if (!strstr(err->reason, cases[i].needle))
            fail_msg("%s: reason \"%s\" does not name %s", cases[i].cmd, err->reason,
                     cases[i].needle);
        schakel__v1__error__free_unpacked(err, NULL);
        zmq_msg_close(&b);
    }
    zmq_close(s);
    assert_int_equal(harness_head(H), before); /* nothing of it was stored */
    assert_still_serving();
}

static void same_event_twice_is_stored_once(void **state)
{
    (void)state;
    schakel_client_t *c = harness_client(H, "school-a");
    uint8_t id[16], *buf;
    size_t len;
    harness_event_id(id);
    harness_signal("school-a", id, 3, &buf, &len);
    Schakel__V1__Ack *a1 = harness_publish1(c, buf, len);
    uint64_t head = harness_head(H);
    Schakel__V1__Ack *a2 = harness_publish1(c, buf, len);
    /* and twice inside one batch */
    const uint8_t *evs[2] = {buf, buf};
    size_t lens[2] = {len, len};
    Schakel__V1__Ack *a3 = NULL;
    assert_int_equal(schakel_client_publish(c, evs, lens, 2, &a3, 10000), 0);
    assert_non_null(a1);
    assert_non_null(a2);
    assert_int_equal(a1->entries[0]->duplicate, 0);
    assert_int_equal(a2->entries[0]->duplicate, 1);
    assert_int_equal(a2->entries[0]->seq, a1->entries[0]->seq);
    assert_int_equal(a3->entries[0]->seq, a1->entries[0]->seq);
    assert_int_equal(a3->entries[1]->seq, a1->entries[0]->seq);
    assert_int_equal(harness_head(H), head);
    schakel__v1__ack__free_unpacked(a1, NULL);
    schakel__v1__ack__free_unpacked(a2, NULL);
    schakel__v1__ack__free_unpacked(a3, NULL);
    free(buf);
    schakel_client_destroy(&c);
}

/* Publishes a consent decision by svc-decide about (seq, id) for recipient. */
static Schakel__V1__Ack *decide(uint64_t seq, const uint8_t id[16], const char *recipient, int outcome)
{
    Schakel__V1__Envelope e = SCHAKEL__V1__ENVELOPE__INIT;
    Schakel__V1__ConsentDecision d = SCHAKEL__V1__CONSENT_DECISION__INIT;
    uint8_t eid[16];
    harness_event_id(eid);
    e.event_id.data = eid;
    e.event_id.len = 16;
    e.type = SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_CONSENT_DECISION;
    e.source_org = "svc-decide";
    e.occurred_at = 1795000000000LL;
    e.purpose = SCHAKEL__V1__PURPOSE__PURPOSE_BUS;
    e.legal_basis = SCHAKEL__V1__LEGAL_BASIS__LEGAL_BASIS_BUS;
    d.about_event_id.data = (uint8_t *)id;
    d.about_event_id.len = 16;
    d.about_seq = seq;
    d.recipient_org = (char *)recipient;
    d.outcome = outcome;
    uint8_t consent_id[16] = {1, 2, 3}, policy[32] = {9};
    Schakel__V1__Notice notice = SCHAKEL__V1__NOTICE__INIT;
    notice.concerned_org = "school-a";
    d.legal_basis = SCHAKEL__V1__LEGAL_BASIS__LEGAL_BASIS_CONSENT;
    d.consent_id.data = consent_id;
    d.consent_id.len = 16;
    d.policy_version.data = policy;
    d.policy_version.len = 32;
    if (outcome == SCHAKEL__V1__CONSENT_OUTCOME__CONSENT_OUTCOME_NOTICE_ONLY) d.notice = &notice;
    d.rule_id = "test-rule";
    e.body_case = SCHAKEL__V1__ENVELOPE__BODY_CONSENT_DECISION;
    e.consent_decision = &d;
    size_t len = schakel__v1__envelope__get_packed_size(&e);
    uint8_t *buf = malloc(len);
    schakel__v1__envelope__pack(&e, buf);
    schakel_client_t *c = harness_client(H, "svc-decide");
    Schakel__V1__Ack *a = harness_publish1(c, buf, len);
    schakel_client_destroy(&c);
    free(buf);
    return a;
}

static void streams_deliver_through_consent_decisions(void **state)
{
    (void)state;
    schakel_client_t *c = harness_client(H, "school-a");
    uint8_t id[16], *buf;
    size_t len;
    harness_event_id(id);
    harness_signal("school-a", id, 4, &buf, &len);
    Schakel__V1__Ack *a = harness_publish1(c, buf, len);
    uint64_t seq = a->entries[0]->seq;
    schakel__v1__ack__free_unpacked(a, NULL);

    /* smw-b cannot read "all", and has nothing in its own stream yet */
    schakel_consumer_t *all = harness_consumer(H, "smw-b", "all", NULL);
    const Schakel__V1__Delivered *r;
    char why[SCHAKEL_ERRLEN] = "";
    assert_int_equal(schakel_consumer_next(all, &r, 1000, why), SCHAKEL_EREJECTED);
    assert_non_null(strstr(why, "may not read"));
    schakel_consumer_destroy(&all);
    schakel_consumer_t *own = harness_consumer(H, "smw-b", "org/smw-b", "inbox");
    int rc = schakel_consumer_next(own, &r, 300, why);
    assert_int_equal(rc, SCHAKEL_ETIMEOUT);

    /* a decision about a wrong id is rejected; a right one delivers */
    uint8_t wrong[16];
    harness_event_id(wrong);
    a = decide(seq, wrong, "smw-b", SCHAKEL__V1__CONSENT_OUTCOME__CONSENT_OUTCOME_DELIVER);
    assert_int_equal(a->entries[0]->code, SCHAKEL__V1__REJECT_CODE__REJECT_INVALID);
    schakel__v1__ack__free_unpacked(a, NULL);
    a = decide(seq, id, "smw-b", SCHAKEL__V1__CONSENT_OUTCOME__CONSENT_OUTCOME_DELIVER);
    assert_int_equal(a->entries[0]->code, 0);
    schakel__v1__ack__free_unpacked(a, NULL);

    assert_int_equal(schakel_consumer_next(own, &r, 5000, why), 0);
    assert_int_equal(r->seq, seq);
    assert_int_equal(r->event.len, len);
    assert_memory_equal(r->event.data, buf, len); /* decrypted back to what was signed */
    assert_int_equal(schakel_consumer_commit(own, r->seq, why), 0);
    schakel_consumer_destroy(&own);

    /* the cursor survives: a new consumer with the same name starts after it */
    a = decide(seq, id, "smw-b", SCHAKEL__V1__CONSENT_OUTCOME__CONSENT_OUTCOME_NOTICE_ONLY);
    uint64_t notice_seq = a->entries[0]->seq;
    schakel__v1__ack__free_unpacked(a, NULL);
    own = harness_consumer(H, "smw-b", "org/smw-b", "inbox");
    assert_int_equal(schakel_consumer_next(own, &r, 5000, why), 0);
    assert_int_equal(r->seq, notice_seq); /* the notice itself, not the signal */
    schakel_consumer_destroy(&own);

    /* school-a received nothing */
    schakel_consumer_t *other = harness_consumer(H, "school-a", "org/school-a", NULL);
    assert_int_equal(schakel_consumer_next(other, &r, 300, why), SCHAKEL_ETIMEOUT);
    schakel_consumer_destroy(&other);
    free(buf);
    schakel_client_destroy(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(publish_is_acked_with_seq),
        cmocka_unit_test(unknown_key_is_refused),
        cmocka_unit_test(event_claiming_other_org_is_rejected),
        cmocka_unit_test(type_not_allowed_is_rejected),
        cmocka_unit_test(garbage_frames_get_reasons),
        cmocka_unit_test(nul_and_unknown_fields_are_refused),
        cmocka_unit_test(same_event_twice_is_stored_once),
        cmocka_unit_test(streams_deliver_through_consent_decisions),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
