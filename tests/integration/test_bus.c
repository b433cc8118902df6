/* The bus core against a real broker process: authentication, validation
 * before storage, rejects with reasons, dedup, streams and cursors, and
 * delivery through consent decisions. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "bytes.h"
#include "clock.h"
#include "directory.h"
#include "harness.h"
#include "wire.h"

static harness_t *H;

static int setup(void **state)
{
    (void)state;
    H = harness_new();
    /* more checkers than batches need: they finish out of order */
    snprintf(H->extra_args[H->n_extra++], sizeof H->extra_args[0], "--checkers");
    snprintf(H->extra_args[H->n_extra++], sizeof H->extra_args[0], "4");
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

#define ORDER_BATCHES 48

static void note_first_seq(void *arg, void *batch_user, const Schakel__V1__Ack *ack)
{
    uint64_t *first = arg;
    size_t i = (size_t)(uintptr_t)batch_user;
    if (ack->n_entries && ack->entries[0]->code == 0) first[i] = ack->entries[0]->seq;
}

/* Checker threads finish a big batch after the small one behind it, but
 * the log keeps the order in which one connection sent its batches. The
 * batches go out on a fresh client: the first ones wait for the CURVE
 * handshake, and the ones submitted after it must not overtake them. */
static void pipelined_batches_keep_their_order(void **state)
{
    (void)state;
    schakel_client_t *c = harness_client(H, "school-a");
    uint64_t first[ORDER_BATCHES] = {0};
    for (size_t b = 0; b < ORDER_BATCHES; b++) {
        size_t n = b % 2 ? 1 : 300;
        uint8_t **bufs = calloc(n, sizeof *bufs), id[16];
        size_t *lens = calloc(n, sizeof *lens);
        for (size_t i = 0; i < n; i++) {
            harness_event_id(id);
            harness_signal("school-a", id, (unsigned)i % 40, &bufs[i], &lens[i]);
        }
        assert_int_equal(schakel_client_submit(c, (const uint8_t *const *)bufs, lens, n, (void *)(uintptr_t)b,
                                               note_first_seq, first),
                         0);
        for (size_t i = 0; i < n; i++) free(bufs[i]);
        free(bufs);
        free(lens);
    }
    int64_t until = schakel_mono_ns() + 60 * 1000000000LL;
    while (schakel_client_poll(c, 100, note_first_seq, first) && schakel_mono_ns() < until) {
    }
    for (size_t b = 0; b < ORDER_BATCHES; b++) {
        assert_true(first[b] > 0);
        if (b && first[b] < first[b - 1])
            fail_msg("batch %zu was sent after batch %zu but stored before it (seq %llu < %llu)", b, b - 1,
                     (unsigned long long)first[b], (unsigned long long)first[b - 1]);
    }
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
    /* a name with a NUL in it is not the name before the NUL */
    static const uint8_t rid[8] = {0, 0, 0, 0, 0, 0, 0, 9};
    zmq_send(s, "PING\0xx", 7, ZMQ_SNDMORE);
    zmq_send(s, rid, 8, ZMQ_SNDMORE);
    zmq_send(s, "", 0, 0);
    assert_int_equal(schakel_wire_recv(s, 0, &m, 0), 0);
    assert_string_equal(m.name, "ERROR");
    e = schakel__v1__error__unpack(NULL, zmq_msg_size(&m.body), zmq_msg_data(&m.body));
    assert_non_null(e);
    assert_int_equal(e->code, SCHAKEL__V1__REJECT_CODE__REJECT_MALFORMED);
    schakel__v1__error__free_unpacked(e, NULL);
    schakel_wire_close(&m);
    /* a FETCH consumer name over 80 bytes is refused, as COMMIT refuses it,
     * never cut to another consumer's cursor */
    char longname[100];
    memset(longname, 'c', 99);
    longname[99] = 0;
    Schakel__V1__Fetch f = SCHAKEL__V1__FETCH__INIT;
    f.stream = "org/school-a";
    f.consumer = longname;
    uint8_t fb[256];
    size_t fl = schakel__v1__fetch__pack(&f, fb);
    raw_call(s, "FETCH", fb, fl, name, &b);
    assert_string_equal(name, "ERROR");
    e = schakel__v1__error__unpack(NULL, zmq_msg_size(&b), zmq_msg_data(&b));
    assert_non_null(e);
    assert_int_equal(e->code, SCHAKEL__V1__REJECT_CODE__REJECT_MALFORMED);
    schakel__v1__error__free_unpacked(e, NULL);
    zmq_msg_close(&b);

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
    ProtobufCMessageUnknownField u = {
        .tag = 99, .wire_type = PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED, .len = 5, .data = text};
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
        {"FETCH",
         "\x0a\x05"
         "all\0x",
         7, "stream"},
        {"FETCH",
         "\x2a\x03"
         "c\0x",
         5, "consumer"},
        {"COMMIT",
         "\x0a\x03"
         "all\x12\x01"
         "c\x98\x06\x01",
         11, "unknown field 99 in schakel.v1.Commit"},
        {"PING", "\x08\x01\x98\x06\x01", 5, "unknown field 99 in schakel.v1.Ping"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char name[17];
        zmq_msg_t b;
        raw_call(s, cases[i].cmd, cases[i].body, cases[i].len, name, &b);
        assert_string_equal(name, "ERROR");
        Schakel__V1__Error *err = schakel__v1__error__unpack(NULL, zmq_msg_size(&b), zmq_msg_data(&b));
        assert_non_null(err);
        assert_int_equal(err->code, SCHAKEL__V1__REJECT_CODE__REJECT_INVALID);
        if (!strstr(err->reason, cases[i].needle))
            fail_msg("%s: reason \"%s\" does not name %s", cases[i].cmd, err->reason, cases[i].needle);
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
    /* nor another organisation's stream */
    schakel_consumer_t *theirs = harness_consumer(H, "smw-b", "org/school-a", NULL);
    assert_int_equal(schakel_consumer_next(theirs, &r, 1000, why), SCHAKEL_EREJECTED);
    assert_non_null(strstr(why, "may not read"));
    schakel_consumer_destroy(&theirs);
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
    uint64_t decision_seq = a->entries[0]->seq;
    schakel__v1__ack__free_unpacked(a, NULL);

    assert_int_equal(schakel_consumer_next(own, &r, 5000, why), 0);
    assert_int_equal(r->seq, seq);
    /* its place in org/smw-b is the decision that delivered it */
    assert_int_equal(r->position, decision_seq);
    assert_int_equal(r->event.len, len);
    assert_memory_equal(r->event.data, buf, len); /* decrypted back to what was signed */
    assert_int_equal(schakel_consumer_commit(own, r->position, why), 0);
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

/* Event ids belong to their publisher: smw-b takes the id school-a's
 * next event will have (ids are predictable), and school-a's event is
 * still stored, under its own seq; retries stay idempotent per
 * organisation; a decision names the one event at about_seq. */
static void another_org_cannot_take_an_id_first(void **state)
{
    (void)state;
    uint8_t id[16], *mine, *squat;
    size_t mine_len, squat_len;
    harness_event_id(id);
    harness_signal("smw-b", id, 8, &squat, &squat_len);
    harness_signal("school-a", id, 9, &mine, &mine_len);
    schakel_client_t *b = harness_client(H, "smw-b"), *a = harness_client(H, "school-a");
    Schakel__V1__Ack *s1 = harness_publish1(b, squat, squat_len);
    assert_non_null(s1);
    assert_int_equal(s1->entries[0]->code, 0);
    Schakel__V1__Ack *a1 = harness_publish1(a, mine, mine_len);
    assert_non_null(a1);
    assert_int_equal(a1->entries[0]->code, 0); /* stored, not "already used" */
    assert_int_equal(a1->entries[0]->duplicate, 0);
    assert_true(a1->entries[0]->seq > s1->entries[0]->seq);
    /* each organisation's retry is a duplicate of its own copy */
    Schakel__V1__Ack *a2 = harness_publish1(a, mine, mine_len);
    Schakel__V1__Ack *s2 = harness_publish1(b, squat, squat_len);
    assert_int_equal(a2->entries[0]->duplicate, 1);
    assert_int_equal(a2->entries[0]->seq, a1->entries[0]->seq);
    assert_int_equal(s2->entries[0]->duplicate, 1);
    assert_int_equal(s2->entries[0]->seq, s1->entries[0]->seq);
    /* a decision reaches exactly the event at about_seq: school-a's signal */
    Schakel__V1__Ack *d =
        decide(a1->entries[0]->seq, id, "svc-reader", SCHAKEL__V1__CONSENT_OUTCOME__CONSENT_OUTCOME_DELIVER);
    assert_int_equal(d->entries[0]->code, 0);
    schakel_consumer_t *r = harness_consumer(H, "svc-reader", "org/svc-reader", NULL);
    const Schakel__V1__Delivered *rec;
    char why[SCHAKEL_ERRLEN] = "";
    assert_int_equal(schakel_consumer_next(r, &rec, 5000, why), 0);
    assert_int_equal(rec->seq, a1->entries[0]->seq);
    assert_int_equal(rec->event.len, mine_len);
    assert_memory_equal(rec->event.data, mine, mine_len);
    schakel_consumer_destroy(&r);
    schakel__v1__ack__free_unpacked(d, NULL);
    schakel__v1__ack__free_unpacked(s1, NULL);
    schakel__v1__ack__free_unpacked(s2, NULL);
    schakel__v1__ack__free_unpacked(a1, NULL);
    schakel__v1__ack__free_unpacked(a2, NULL);
    free(mine);
    free(squat);
    schakel_client_destroy(&a);
    schakel_client_destroy(&b);
}

/* The broker's own events are published as "broker": no organisation of
 * the directory may have that id. */
static void broker_id_is_reserved_in_the_directory(void **state)
{
    (void)state;
    json_error_t err;
    json_t *d = json_load_file(H->directory, 0, &err);
    assert_non_null(d);
    json_t *first = json_deep_copy(json_array_get(json_object_get(d, "organisations"), 0));
    json_object_set_new(first, "id", json_string("broker"));
    json_array_append_new(json_object_get(d, "organisations"), first);
    char *text = json_dumps(d, 0);
    char why[SCHAKEL_ERRLEN] = "";
    schakel_directory_t *dir = schakel_directory_parse(text, strlen(text), why);
    assert_null(dir);
    assert_non_null(strstr(why, "\"broker\" is reserved"));
    free(text);
    json_decref(d);
}

/* The id the broker gives its clock_tick at ms (brokers/system.c). */
static void tick_id(int64_t ms, uint8_t id[16])
{
    uint8_t at[8], h[32];
    schakel_put_be64(at, (uint64_t)ms);
    schakel_sha256_t c;
    schakel_sha256_init(&c);
    schakel_sha256_update(&c, "schakel/v1/tick", 15);
    schakel_sha256_update(&c, at, 8);
    schakel_sha256_final(&c, h);
    memcpy(id, h, 16);
}

/* PING h as svc-reader; returns the Pong (free it) or NULL. */
static Schakel__V1__Pong *ping(harness_t *h)
{
    schakel_keys_t k;
    harness_keys(h, "svc-reader", &k);
    schakel_client_options_t o = {0};
    o.endpoint = h->endpoint;
    o.server_public = h->server_public;
    o.keys = &k;
    schakel_client_t *c = schakel_client_new(h->ctx, &o, NULL);
    Schakel__V1__Ping p = SCHAKEL__V1__PING__INIT;
    ProtobufCMessage *reply = NULL;
    /* a failed call leaves reply NULL, which every caller asserts on */
    SCHAKEL_DROP(schakel_client_call(c, "PING", &p.base, &schakel__v1__pong__descriptor, &reply, 5000, NULL));
    schakel_client_destroy(&c);
    return (Schakel__V1__Pong *)reply;
}

/* `schakel health` against h as svc-reader: its exit status. */
static int health(harness_t *h)
{
    char key[400], out[400];
    snprintf(key, sizeof key, "%s/svc-reader.key", h->keys);
    snprintf(out, sizeof out, "%s/health.json", h->dir);
    char pub[400];
    snprintf(pub, sizeof pub, "%s/broker.pub", h->keys);
    const char *args[] = {"health", "--endpoint", h->endpoint, "--server-key", pub, "--key", key, NULL};
    return harness_run_tool(out, args);
}

/* Attack: school-a publishes, first, the ids of the broker's clock ticks
 * for the next four seconds (they are derived from the time). The ticks
 * land all the same: the broker's ids are its own. Only the ticks after
 * the last squat was in count, so a slow machine (sanitizers, load) makes
 * the window shorter, not the test wrong. */
static void squatted_clock_tick_ids_change_nothing(void **state)
{
    (void)state;
    harness_t *h = harness_new();
    snprintf(h->extra_args[h->n_extra++], 64, "--tick-ms");
    snprintf(h->extra_args[h->n_extra++], 64, "20");
    assert_int_equal(harness_start(h), 0);
    enum { N = 4096, BATCH = 1024 };
    uint8_t **bufs = calloc(N, sizeof *bufs);
    size_t *lens = calloc(N, sizeof *lens);
    schakel_client_t *c = harness_client(h, "school-a");
    /* how fast this machine publishes (a sanitizer, load): one batch of
     * fresh ids first, and the squatted window starts after the squats
     * can be in */
    int64_t w0 = schakel_wall_ms();
    for (int i = 0; i < BATCH; i++) {
        uint8_t id[16];
        harness_event_id(id);
        harness_signal("school-a", id, 10, &bufs[i], &lens[i]);
    }
    Schakel__V1__Ack *warm = NULL;
    assert_int_equal(schakel_client_publish(c, (const uint8_t *const *)bufs, lens, BATCH, &warm, 10000), 0);
    schakel__v1__ack__free_unpacked(warm, NULL);
    for (int i = 0; i < BATCH; i++) free(bufs[i]);
    int64_t t0 = schakel_wall_ms() + 500 + 2 * (N / BATCH) * (schakel_wall_ms() - w0);
    for (int i = 0; i < N; i++) {
        uint8_t id[16];
        tick_id(t0 + i, id);
        harness_signal("school-a", id, 10, &bufs[i], &lens[i]);
    }
    for (int at = 0; at < N; at += BATCH) {
        Schakel__V1__Ack *a = NULL;
        assert_int_equal(
            schakel_client_publish(c, (const uint8_t *const *)&bufs[at], &lens[at], BATCH, &a, 10000), 0);
        for (size_t i = 0; i < a->n_entries; i++) assert_int_equal(a->entries[i]->code, 0);
        schakel__v1__ack__free_unpacked(a, NULL);
    }
    int64_t done = schakel_wall_ms(); /* every squat is in: ticks from here on were squatted */
    if (done < t0) done = t0;
    if (t0 + N - done < 1000)
        fail_msg("publishing %d events took until %lld ms into the %d ms window: too slow to tell", N,
                 (long long)(done - t0), N);
    while (schakel_wall_ms() < t0 + N + 200) usleep(50000);
    size_t ticks = 0;
    harness_reader_t rd = harness_read(h, "svc-reader", "all");
    while (harness_next(&rd)) {
        const schakel_envelope_t *e = rd.e;
        if (e->type == SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_CLOCK_TICK && !strcmp(e->source_org, "broker") &&
            e->clock_tick->at_ms >= done && e->clock_tick->at_ms < t0 + N)
            ticks++;
    }
    printf("clock ticks in the squatted window: %zu\n", ticks);
    assert_true(ticks >= 5); /* one every 20 ms, when the idle loop wakes (100 ms): 10 a second */
    Schakel__V1__Pong *p = ping(h);
    assert_non_null(p);
    assert_int_equal(p->alarms, 0);
    protobuf_c_message_free_unpacked(&p->base, NULL);
    assert_int_equal(health(h), 0);
    for (int i = 0; i < N; i++) free(bufs[i]);
    free(bufs);
    free(lens);
    schakel_client_destroy(&c);
    assert_int_equal(harness_shutdown(h), 0);
    harness_destroy(&h);
}

/* The broker cannot append its own clock tick (its log is full): an
 * alarm, in PONG and in `schakel health`, never a silent skip. */
static void refused_own_append_raises_an_alarm(void **state)
{
    (void)state;
    harness_t *h = harness_new();
    snprintf(h->extra_args[h->n_extra++], 64, "--tick-ms");
    snprintf(h->extra_args[h->n_extra++], 64, "20");
    snprintf(h->extra_args[h->n_extra++], 64, "--map-max");
    snprintf(h->extra_args[h->n_extra++], 64, "1048576");
    assert_int_equal(harness_start(h), 0);
    assert_int_equal(health(h), 0);
    schakel_client_t *c = harness_client(h, "school-a");
    int full = 0;
    for (int i = 0; i < 20000 && !full; i++) {
        uint8_t id[16], *buf;
        size_t len;
        harness_event_id(id);
        harness_signal("school-a", id, 11, &buf, &len);
        /* the client resends what is "retry later" until its timeout */
        Schakel__V1__Ack *a = NULL;
        const uint8_t *evs[1] = {buf};
        full = schakel_client_publish(c, evs, &len, 1, &a, 1000) == SCHAKEL_ETIMEOUT ||
               (a && a->entries[0]->code == SCHAKEL__V1__REJECT_CODE__REJECT_RETRY_LATER);
        if (a) schakel__v1__ack__free_unpacked(a, NULL);
        free(buf);
    }
    assert_true(full);
    uint64_t alarms = 0;
    for (int i = 0; i < 100 && !alarms; i++) {
        Schakel__V1__Pong *p = ping(h);
        assert_non_null(p);
        alarms = p->alarms;
        protobuf_c_message_free_unpacked(&p->base, NULL);
        if (!alarms) usleep(50000);
    }
    assert_true(alarms > 0);
    assert_int_equal(health(h), 1);
    char path[400], line[1024];
    snprintf(path, sizeof path, "%s/broker.log", h->dir);
    FILE *f = fopen(path, "r");
    int lines = 0;
    while (f && fgets(line, sizeof line, f))
        lines += strstr(line, "level=error") && strstr(line, "alarm=own_append_refused type=clock_tick");
    if (f) fclose(f);
    assert_true(lines > 0);
    schakel_client_destroy(&c);
    assert_int_equal(harness_shutdown(h), 0);
    harness_destroy(&h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(publish_is_acked_with_seq),
        cmocka_unit_test(pipelined_batches_keep_their_order),
        cmocka_unit_test(unknown_key_is_refused),
        cmocka_unit_test(event_claiming_other_org_is_rejected),
        cmocka_unit_test(type_not_allowed_is_rejected),
        cmocka_unit_test(garbage_frames_get_reasons),
        cmocka_unit_test(nul_and_unknown_fields_are_refused),
        cmocka_unit_test(same_event_twice_is_stored_once),
        cmocka_unit_test(streams_deliver_through_consent_decisions),
        cmocka_unit_test(another_org_cannot_take_an_id_first),
        cmocka_unit_test(broker_id_is_reserved_in_the_directory),
        cmocka_unit_test(squatted_clock_tick_ids_change_nothing),
        cmocka_unit_test(refused_own_append_raises_an_alarm),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
