/* The event codec and its JSON form, for every event type: each type is
 * filled with a valid value in every field (walking the protobuf-c
 * descriptors, so a new field is covered without a new test), then must
 * validate, round-trip through protobuf and through JSON text byte for
 * byte, and be rejected with a reason naming the field when any field it
 * requires is cleared or a value is malformed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "codec.h"
#include "error.h"
#include "json.h"
#include "validate.h"

/* ---- an arena, so that filled messages free in one go ---- */

static void *arena[8192];
static size_t n_arena;

static void *alloc(size_t n)
{
    assert_true(n_arena < sizeof arena / sizeof arena[0]);
    void *p = calloc(1, n ? n : 1);
    assert_non_null(p);
    arena[n_arena++] = p;
    return p;
}

static void arena_free(void)
{
    while (n_arena) free(arena[--n_arena]);
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && !strcmp(s + n - m, suffix);
}

/* A valid value for a string field, chosen by the field's name. */
static const char *string_for(const char *name)
{
    if (ends_with(name, "_on") || !strcmp(name, "on") || !strcmp(name, "since") ||
        !strcmp(name, "valid_from") || !strcmp(name, "valid_until") || !strcmp(name, "period_from") ||
        !strcmp(name, "period_to"))
        return "2026-11-20";
    if (ends_with(name, "_org") || !strcmp(name, "org_id") || !strcmp(name, "redirected_to") ||
        !strcmp(name, "addressees") || !strcmp(name, "participant_orgs"))
        return "wijkteam-noord";
    if (!strcmp(name, "school")) return "12AB00";
    if (!strcmp(name, "not_informed_reason")) return "safety_risk"; /* a code of the list */
    if (!strcmp(name, "document_json")) return "{\"version\": 2, \"organisations\": []}";
    if (!strcmp(name, "subject")) return "4f0c0d8a3e1b2c7d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d";
    if (!strcmp(name, "how")) return "conversation"; /* family_informed: a-z and _ only */
    return "code-7";
}

static void fill_message(ProtobufCMessage *m, int body_case);

static void fill_value(const ProtobufCFieldDescriptor *f, void *p, int k)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_STRING: *(const char **)p = string_for(f->name); break;
    case PROTOBUF_C_TYPE_BYTES: {
        ProtobufCBinaryData *b = p;
        b->len = !strcmp(f->name, "policy_version") ? 32 : ends_with(f->name, "_id") ? 16 : 8;
        b->data = alloc(b->len);
        for (size_t i = 0; i < b->len; i++) b->data[i] = (uint8_t)(i * 7 + k + 1);
        break;
    }
    case PROTOBUF_C_TYPE_ENUM: {
        const ProtobufCEnumDescriptor *ed = f->descriptor;
        *(int *)p = ed->values[ed->n_values - 1 - (unsigned)k % (ed->n_values - 1)].value;
        /* family_informed.step is a step (the family_informed_of_* values
         * are for a reminder's waiting_for only) */
        if (ed == &schakel__v1__loop_state__descriptor && !strcmp(f->name, "step"))
            *(int *)p = SCHAKEL__V1__LOOP_STATE__LOOP_STATE_CLOSED - (k & 1);
        break;
    }
    case PROTOBUF_C_TYPE_BOOL: *(protobuf_c_boolean *)p = 1; break;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_UINT64: *(int64_t *)p = 1795000000000LL + k; break;
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_UINT32: *(uint32_t *)p = 3 + (uint32_t)k; break;
    case PROTOBUF_C_TYPE_MESSAGE: {
        const ProtobufCMessageDescriptor *d = f->descriptor;
        ProtobufCMessage *sub = alloc(d->sizeof_message);
        d->message_init(sub);
        fill_message(sub, 0);
        *(ProtobufCMessage **)p = sub;
        break;
    }
    default: fail_msg("field %s has a type the filler does not know", f->name);
    }
}

static size_t value_size(const ProtobufCFieldDescriptor *f)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_STRING:
    case PROTOBUF_C_TYPE_MESSAGE: return sizeof(void *);
    case PROTOBUF_C_TYPE_BYTES: return sizeof(ProtobufCBinaryData);
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_UINT64: return 8;
    default: return 4;
    }
}

/* Sets every field of m; of a oneof only the member numbered body_case. */
static void fill_message(ProtobufCMessage *m, int body_case)
{
    const ProtobufCMessageDescriptor *d = m->descriptor;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        char *base = (char *)m;
        if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
            if ((int)f->id != body_case) continue;
            *(uint32_t *)(base + f->quantifier_offset) = f->id;
        }
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t sz = value_size(f);
            char *arr = alloc(2 * sz);
            for (int k = 0; k < 2; k++) fill_value(f, arr + k * sz, k);
            *(size_t *)(base + f->quantifier_offset) = 2;
            *(void **)(base + f->offset) = arr;
        } else {
            fill_value(f, base + f->offset, 0);
        }
    }
}

/* An envelope of `type` with every field set and valid. */
static schakel_envelope_t *filled(int type)
{
    schakel_envelope_t *e = alloc(sizeof *e);
    schakel__v1__envelope__init(e);
    fill_message(&e->base, type);
    e->type = type;
    e->source_org = "school-12ab00";
    if (schakel_envelope_subject_rule(type) < 0) {
        e->subject = e->case_ref = e->district = "";
        /* an event about no child links to no flow (domain events) */
        if (type < SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_ROUTING_DECISION)
            e->correlation_id.len = e->causation_id.len = 0;
    }
    if (type <
        SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_ROUTING_DECISION) { /* bus and verwijsindex are the bus's */
        e->purpose = SCHAKEL__V1__PURPOSE__PURPOSE_SUPPORT;
        e->legal_basis = SCHAKEL__V1__LEGAL_BASIS__LEGAL_BASIS_CONSENT;
    }
    if (type == SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_CONSENT_DECISION)
        e->consent_decision->legal_basis = SCHAKEL__V1__LEGAL_BASIS__LEGAL_BASIS_MELDCODE;
    if (type == SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_RULES_UPDATE) { /* the version is the document's hash */
        Schakel__V1__RulesUpdate *u = e->rules_update;
        u->version.len = SCHAKEL_SHA256_LEN;
        u->version.data = alloc(SCHAKEL_SHA256_LEN);
        schakel_sha256(u->document_json, strlen(u->document_json), u->version.data);
    }
    if (type == SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_THUISZITTER_STATUS)
        e->thuiszitter_status->exempted = 0;                          /* an exempted child has no reason */
    if (type == SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_ADAPTER_STATUS) { /* for operators, about no child */
        e->school = "";
        e->age_band = 0;
        e->n_addressees = e->n_categories = 0;
        e->correlation_id.len = e->causation_id.len = 0;
        e->purpose = SCHAKEL__V1__PURPOSE__PURPOSE_BUS;
        e->legal_basis = SCHAKEL__V1__LEGAL_BASIS__LEGAL_BASIS_BUS;
    }
    if (type == SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_CONSENT_GIVEN) {
        /* a youth who cannot judge: the guardian consents (every field set) */
        e->consent_given->given_by = SCHAKEL__V1__GIVEN_BY__GIVEN_BY_GUARDIAN;
        e->consent_given->age_band = SCHAKEL__V1__AGE_BAND__AGE_BAND_12_15;
    }
    return e;
}

static uint8_t *pack(const schakel_envelope_t *e, size_t *len)
{
    *len = schakel__v1__envelope__get_packed_size(e);
    uint8_t *b = malloc(*len);
    schakel__v1__envelope__pack(e, b);
    return b;
}

/* With SCHAKEL_TEST_EVENT_DUMP set, leaves the bytes for the second
 * parser (tests/second_parser): every type with every field set. */
static void dump_for_second_parser(const char *name, const uint8_t *buf, size_t len)
{
    const char *root = getenv("SCHAKEL_TEST_EVENT_DUMP");
    if (!root) return;
    char path[512];
    snprintf(path, sizeof path, "%s/unit_test_codec", root);
    mkdir(root, 0700);
    mkdir(path, 0700);
    snprintf(path, sizeof path, "%s/unit_test_codec/%s.pb", root, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(buf, 1, len, f), len);
    fclose(f);
}

static void every_type_round_trips(void **state)
{
    (void)state;
    const int *types;
    size_t n = schakel_event_types(&types);
    assert_int_equal(n, 37);
    for (size_t i = 0; i < n; i++) {
        const char *name = schakel_event_type_name(types[i]);
        assert_non_null(name);
        assert_int_equal(schakel_event_type_parse(name), types[i]);
        schakel_envelope_t *e = filled(types[i]);
        char why[SCHAKEL_ERRLEN] = "";
        if (schakel_envelope_validate(e, why) != 0) fail_msg("%s: %s", name, why);

        size_t len, len2, len3;
        uint8_t *a = pack(e, &len);
        dump_for_second_parser(name, a, len);
        schakel_envelope_t *d = schakel_envelope_decode(a, len, why);
        assert_non_null(d);
        if (schakel_envelope_validate_bytes(d, a, len, why) != 0) fail_msg("%s: %s", name, why);
        uint8_t *b = pack(d, &len2);
        assert_int_equal(len, len2);
        assert_memory_equal(a, b, len);

        /* JSON, through text, and back */
        json_t *j = schakel_json_from_envelope(d);
        char *text = json_dumps(j, JSON_COMPACT);
        schakel_envelope_t *fromjson = schakel_json_parse_envelope(text, strlen(text), why);
        if (!fromjson) fail_msg("%s: JSON %s does not parse back: %s", name, text, why);
        uint8_t *c = pack(fromjson, &len3);
        if (len3 != len || memcmp(a, c, len) != 0)
            fail_msg("%s: JSON round trip changed the event: %s", name, text);
        json_t *j2 = schakel_json_from_envelope(fromjson);
        assert_true(json_equal(j, j2));
        /* the type travels by name, never by number */
        assert_non_null(strstr(text, name));

        json_decref(j);
        json_decref(j2);
        free(text);
        free(a);
        free(b);
        free(c);
        schakel_envelope_free(d);
        schakel_envelope_free(fromjson);
        arena_free();
    }
}

/* Clears field `name` of message m to its default. */
static void clear_field(ProtobufCMessage *m, const char *name)
{
    const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field_by_name(m->descriptor, name);
    assert_non_null(f);
    char *base = (char *)m;
    if (f->label == PROTOBUF_C_LABEL_REPEATED) {
        *(size_t *)(base + f->quantifier_offset) = 0;
        return;
    }
    switch (f->type) {
    case PROTOBUF_C_TYPE_STRING: *(const char **)(base + f->offset) = ""; break;
    case PROTOBUF_C_TYPE_BYTES: ((ProtobufCBinaryData *)(base + f->offset))->len = 0; break;
    case PROTOBUF_C_TYPE_MESSAGE: *(void **)(base + f->offset) = NULL; break;
    default: memset(base + f->offset, 0, value_size(f)); break;
    }
}

static ProtobufCMessage *body(schakel_envelope_t *e)
{
    const ProtobufCFieldDescriptor *f =
        protobuf_c_message_descriptor_get_field(&schakel__v1__envelope__descriptor, e->type);
    return *(ProtobufCMessage **)((char *)e + f->offset);
}

static void expect_reject(schakel_envelope_t *e, const char *needle)
{
    char why[SCHAKEL_ERRLEN] = "";
    int rc = schakel_envelope_validate(e, why);
    if (rc != SCHAKEL_EINVAL) fail_msg("accepted, expected a reject naming %s", needle);
    if (!strstr(why, needle)) fail_msg("reason \"%s\" does not name %s", why, needle);
}

static void every_required_field_is_named(void **state)
{
    (void)state;
    const int *types;
    size_t n = schakel_event_types(&types);
    size_t checked = 0;
    for (size_t i = 0; i < n; i++) {
        const char *name = schakel_event_type_name(types[i]);
        char list[200], want[120];
        snprintf(list, sizeof list, "%s", schakel_envelope_required(types[i]));
        char *save = NULL;
        for (char *f = strtok_r(list, " ", &save); f; f = strtok_r(NULL, " ", &save)) {
            schakel_envelope_t *e = filled(types[i]);
            clear_field(body(e), f);
            snprintf(want, sizeof want, "%s.%s", name, f);
            expect_reject(e, want);
            arena_free();
            checked++;
        }
        /* the subject rule */
        int rule = schakel_envelope_subject_rule(types[i]);
        schakel_envelope_t *e = filled(types[i]);
        if (rule > 0) {
            e->subject = "";
            expect_reject(e, "subject");
        } else if (rule < 0) {
            e->subject = (char *)string_for("subject");
            expect_reject(e, "subject");
        } else { /* optional: without a subject it is about no child, and has no case reference */
            e->subject = "";
            e->case_ref = "dossier-4711";
            expect_reject(e, "case_ref");
        }
        arena_free();
    }
    assert_true(checked > 60);
}

static void malformed_values_are_named(void **state)
{
    (void)state;
    schakel_envelope_t *e;
    const int referral = SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_REFERRAL;

    /* a feedback_status names a loop's step or Veilig Thuis's decision,
     * never a reminder's "family not told" or another flow's state */
    const int fs = SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_FEEDBACK_STATUS;
    const int bad_states[] = {SCHAKEL__V1__LOOP_STATE__LOOP_STATE_FAMILY_INFORMED_OF_RECEIVED,
                              SCHAKEL__V1__LOOP_STATE__LOOP_STATE_HANDOVER_CONFIRMED,
                              SCHAKEL__V1__LOOP_STATE__LOOP_STATE_ADVICE_GIVEN};
    for (size_t i = 0; i < sizeof bad_states / sizeof bad_states[0]; i++) {
        e = filled(fs);
        e->feedback_status->state = bad_states[i];
        expect_reject(e, "feedback_status.state");
        arena_free();
    }
    e = filled(fs);
    e->feedback_status->state = SCHAKEL__V1__LOOP_STATE__LOOP_STATE_VEILIGTHUIS_DECIDED;
    char fwhy[SCHAKEL_ERRLEN] = "";
    if (schakel_envelope_validate(e, fwhy) != 0) fail_msg("veiligthuis_decided refused: %s", fwhy);
    arena_free();

    e = filled(referral);
    e->referral->request_code = "bad\xc3\x28utf8";
    expect_reject(e, "referral.request_code");
    e->referral->request_code = "overlong \xc0\xaf slash";
    expect_reject(e, "UTF-8");
    e->referral->request_code = "surrogate \xed\xa0\x80";
    expect_reject(e, "UTF-8");
    e->referral->request_code = "new\nline";
    expect_reject(e, "control");
    char longtext[200];
    memset(longtext, 'a', sizeof longtext - 1);
    longtext[sizeof longtext - 1] = 0;
    e->referral->request_code = longtext;
    expect_reject(e, "not text");
    arena_free();

    e = filled(referral);
    e->referral->urgency = 99;
    expect_reject(e, "referral.urgency: unknown value 99");
    e->referral->urgency = SCHAKEL__V1__URGENCY__URGENCY_URGENT;
    e->referral->reasons[1] = 1234;
    expect_reject(e, "referral.reasons");
    e->referral->reasons[1] = SCHAKEL__V1__DATA_CATEGORY__DATA_CATEGORY_SAFETY;
    e->referral->contact->role = -5;
    expect_reject(e, "referral.contact.role");
    arena_free();

    e = filled(referral);
    e->referral->referral_id.len = 15;
    expect_reject(e, "referral.referral_id: an id is 16 bytes");
    arena_free();

    e = filled(SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_SIGNAL);
    e->signal->observed_on = "2026-02-30";
    expect_reject(e, "signal.observed_on");
    e->signal->observed_on = "2025-02-29";
    expect_reject(e, "YYYY-MM-DD");
    e->signal->observed_on = "2024-02-29"; /* a leap day is a date */
    char why[SCHAKEL_ERRLEN];
    assert_int_equal(schakel_envelope_validate(e, why), 0);
    e->subject = "123456782"; /* a BSN-shaped subject */
    expect_reject(e, "never a BSN");
    e->subject = (char *)string_for("subject");
    e->school = "school 1";
    expect_reject(e, "BRINVEST");
    e->school = "12AB00";
    e->addressees[0] = "Wijkteam Noord";
    expect_reject(e, "addressees");
    e->addressees[0] = "wijkteam-noord";
    e->purpose = 0;
    expect_reject(e, "purpose");
    arena_free();

    e = filled(SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_INTAKE);
    e->intake->outcome = SCHAKEL__V1__INTAKE_OUTCOME__INTAKE_OUTCOME_REDIRECTED;
    e->intake->redirected_to = "";
    expect_reject(e, "intake.redirected_to");
    arena_free();

    e = filled(SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_CONSENT_DECISION);
    e->consent_decision->legal_basis = SCHAKEL__V1__LEGAL_BASIS__LEGAL_BASIS_CONSENT;
    e->consent_decision->outcome = SCHAKEL__V1__CONSENT_OUTCOME__CONSENT_OUTCOME_DELIVER;
    e->consent_decision->consent_id.len = 0;
    expect_reject(e, "consent_decision.consent_id");
    arena_free();

    e = filled(SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_CONSENT_GIVEN);
    e->consent_given->recipient_org = "";
    e->consent_given->recipient_kind = 0;
    expect_reject(e, "recipient_org or the recipient_kind");
    arena_free();

    /* a *_code field holds a code, never words (an attack review put a
     * child's name into consultation.question_code) */
    e = filled(SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_CLOSURE);
    e->closure->reason_code = "Piet Jansen groep 5";
    expect_reject(e, "closure.reason_code: not a code");
    e->closure->reason_code = "Goals_met";
    expect_reject(e, "closure.reason_code: not a code");
    char code65[66];
    memset(code65, 'a', 65);
    code65[65] = 0;
    e->closure->reason_code = code65;
    expect_reject(e, "closure.reason_code: not a code: 1 to 64");
    e->closure->reason_code = "goals_met-2";
    char cwhy[SCHAKEL_ERRLEN] = "";
    if (schakel_envelope_validate(e, cwhy) != 0) fail_msg("goals_met-2 refused: %s", cwhy);
    arena_free();

    /* a reference is an id in the publisher's system, never words (the
     * adapters refuse the same: docs/adapters.md) */
    e = filled(referral);
    e->case_ref = "Dossier Jansen";
    expect_reject(e, "case_ref: not a reference");
    e->case_ref = "DOS-2026/0042#3";
    e->referral->contact->ref = "mw. de Vries";
    expect_reject(e, "referral.contact.ref: not a reference");
    e->referral->contact->ref = "medewerker:0042";
    if (schakel_envelope_validate(e, cwhy) != 0) fail_msg("a reference refused: %s", cwhy);
    arena_free();

    /* an organisation's event cannot claim the bus's own purpose or
     * grounds (a verwijsindex notice is the consent service's) */
    e = filled(SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_SIGNAL);
    e->legal_basis = SCHAKEL__V1__LEGAL_BASIS__LEGAL_BASIS_VERWIJSINDEX;
    expect_reject(e, "legal_basis: verwijsindex is the bus's own");
    e->legal_basis = SCHAKEL__V1__LEGAL_BASIS__LEGAL_BASIS_BUS;
    expect_reject(e, "legal_basis: bus is the bus's own");
    e->legal_basis = SCHAKEL__V1__LEGAL_BASIS__LEGAL_BASIS_CONSENT;
    e->purpose = SCHAKEL__V1__PURPOSE__PURPOSE_BUS;
    expect_reject(e, "purpose: bus is for the bus's own events");
    arena_free();

    /* an auditor's stated purpose, an erasure's purpose and requester:
     * references a person types, never a sentence (docs/audit.md) */
    e = filled(SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_AUDIT_ACCESS);
    e->audit_access->stated_purpose = "mevrouw Jansen, dochter";
    expect_reject(e, "audit_access.stated_purpose: not a reference: 1 to 80");
    e->audit_access->stated_purpose = "subject access request 2027-041";
    if (schakel_envelope_validate(e, cwhy) != 0) fail_msg("a stated purpose refused: %s", cwhy);
    arena_free();
    e = filled(SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_ERASURE);
    e->erasure->requested_by = "Jan (beheer)";
    expect_reject(e, "erasure.requested_by: not a reference");
    arena_free();

    /* an anonymous consultation links to no flow: a correlation or
     * causation id naming a referral would identify the child after all */
    const int cons = SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_CONSULTATION;
    e = filled(cons);
    e->correlation_id.len = 16, e->correlation_id.data = alloc(16);
    memset(e->correlation_id.data, 0xbb, 16);
    expect_reject(e, "correlation_id: a consultation without a subject");
    e->correlation_id.len = 0;
    e->causation_id.len = 16, e->causation_id.data = alloc(16);
    memset(e->causation_id.data, 0xcc, 16);
    expect_reject(e, "causation_id: a consultation without a subject");
    arena_free();
    e = filled(SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_MEETING);
    e->subject = "";
    e->case_ref = "";
    e->correlation_id.len = 0;
    e->causation_id.len = 16, e->causation_id.data = alloc(16);
    memset(e->causation_id.data, 0xcc, 16);
    expect_reject(e, "causation_id: a meeting without a subject");
    arena_free();

    /* a type whose body is another type's */
    e = filled(SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_SIGNAL);
    e->type = referral;
    expect_reject(e, "body for type referral is missing");
    arena_free();
}

static void json_errors_name_the_field(void **state)
{
    (void)state;
    struct {
        const char *json, *needle;
    } cases[] = {
        {"{\"type\":\"signal\",\"signal\":{\"urgency\":\"hi\"}}", "signal.urgency"},
        {"{\"type\":\"signal\",\"signal\":{\"concerns\":\"behaviour\"}}", "signal.concerns"},
        {"{\"type\":\"no_such_type\"}", "type"},
        {"{\"type\":\"signal\",\"colour\":\"red\"}", "colour"},
        {"{\"type\":\"signal\",\"event_id\":\"zz\"}", "event_id"},
        {"{\"type\":\"signal\",\"occurred_at\":\"yesterday\"}", "occurred_at"},
        {"[1,2]", "object"},
        {"{\"type\":", "JSON"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char why[SCHAKEL_ERRLEN] = "";
        schakel_envelope_t *e = schakel_json_parse_envelope(cases[i].json, strlen(cases[i].json), why);
        if (e) fail_msg("accepted %s", cases[i].json);
        if (!strstr(why, cases[i].needle))
            fail_msg("%s: reason \"%s\" does not name %s", cases[i].json, why, cases[i].needle);
    }
}

static void oversized_and_garbage_do_not_decode(void **state)
{
    (void)state;
    char why[SCHAKEL_ERRLEN] = "";
    uint8_t *big = calloc(1, SCHAKEL_MAX_DIRECTORY_BYTES + 1);
    assert_null(schakel_envelope_decode(big, SCHAKEL_MAX_DIRECTORY_BYTES + 1, why));
    assert_non_null(strstr(why, "limit"));
    free(big);

    /* a decodable signal over 64 KiB: only a directory_update may be that big */
    schakel_envelope_t *e = filled(SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_SIGNAL);
    char *pad = malloc(SCHAKEL_MAX_EVENT_BYTES + 1);
    memset(pad, 'x', SCHAKEL_MAX_EVENT_BYTES);
    pad[SCHAKEL_MAX_EVENT_BYTES] = 0;
    e->case_ref = pad;
    size_t len;
    uint8_t *buf = pack(e, &len);
    assert_null(schakel_envelope_decode(buf, len, why));
    assert_non_null(strstr(why, "limit"));
    free(buf);
    /* nor by claiming to be one: the exception goes by the body there */
    e->type = SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_DIRECTORY_UPDATE;
    buf = pack(e, &len);
    assert_null(schakel_envelope_decode(buf, len, why));
    assert_non_null(strstr(why, "limit"));
    free(buf);
    free(pad);
    arena_free();
    uint8_t junk[64];
    for (size_t i = 0; i < sizeof junk; i++) junk[i] = (uint8_t)(0xff - i);
    assert_null(schakel_envelope_decode(junk, sizeof junk, why));
    assert_non_null(strstr(why, "does not decode"));
}

/* ---- the wire form: strings over their full length, unknown fields ---- */

/* Validates the bytes as the broker does; fails the test unless they are
 * refused with a reason holding `needle` that never echoes the smuggled
 * text (marked "Q7Z"). */
static void expect_bytes_reject(const uint8_t *buf, size_t len, const char *needle)
{
    char why[SCHAKEL_ERRLEN] = "";
    schakel_envelope_t *d = schakel_envelope_decode(buf, len, why);
    if (!d) fail_msg("protobuf-c does not decode the test's bytes: %s", why);
    int rc = schakel_envelope_validate_bytes(d, buf, len, why);
    schakel_envelope_free(d);
    if (rc != SCHAKEL_EINVAL) fail_msg("accepted (%d), expected a reject naming %s", rc, needle);
    if (!strstr(why, needle)) fail_msg("reason \"%s\" does not name %s", why, needle);
    if (strstr(why, "Q7Z") || strstr(why, "123456782")) fail_msg("reason echoes input: %s", why);
}

/* Sets string field f (element 1 when repeated) of m to its value, a
 * 0x01 and text; packs e and turns the 0x01 into a NUL on the wire, then
 * also the text's first byte into invalid UTF-8. Both must be refused
 * naming f, though protobuf-c's char* shows only the valid prefix. */
static void smuggle_after_nul(schakel_envelope_t *e, ProtobufCMessage *m, const ProtobufCFieldDescriptor *f)
{
    char *base = (char *)m;
    char **slot = f->label == PROTOBUF_C_LABEL_REPEATED ? &(*(char ***)(base + f->offset))[1]
                                                        : (char **)(base + f->offset);
    char *saved = *slot, marker[256];
    snprintf(marker, sizeof marker, "%s\001Q7Z BSN 123456782, Jan Jansen", saved);
    *slot = marker;
    size_t len;
    uint8_t *buf = pack(e, &len);
    *slot = saved;
    uint8_t *at = memmem(buf, len, "\001Q7Z", 4);
    assert_non_null(at);
    *at = 0;
    char why[SCHAKEL_ERRLEN] = "";
    schakel_envelope_t *d = schakel_envelope_decode(buf, len, why);
    assert_non_null(d);
    /* what the unpacked form shows is valid: only the bytes tell */
    if (schakel_envelope_validate(d, why) != 0) fail_msg("%s: prefix rejected: %s", f->name, why);
    schakel_envelope_free(d);
    expect_bytes_reject(buf, len, f->name);
    expect_bytes_reject(buf, len, "NUL");
    at[1] = 0xff;
    expect_bytes_reject(buf, len, f->name);
    free(buf);
}

/* Every string field of m and of the messages in it, repeated ones too. */
static size_t smuggle_everywhere(schakel_envelope_t *e, ProtobufCMessage *m)
{
    size_t n = 0;
    const ProtobufCMessageDescriptor *d = m->descriptor;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        char *base = (char *)m;
        if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) && *(uint32_t *)(base + f->quantifier_offset) != f->id)
            continue;
        int rep = f->label == PROTOBUF_C_LABEL_REPEATED;
        /* a list the type leaves empty (adapter_status's addressees) has no element 1 */
        if (f->type == PROTOBUF_C_TYPE_STRING && (!rep || *(size_t *)(base + f->quantifier_offset) > 1)) {
            smuggle_after_nul(e, m, f);
            n++;
        } else if (f->type == PROTOBUF_C_TYPE_MESSAGE) {
            size_t k = rep ? *(size_t *)(base + f->quantifier_offset) : 1;
            ProtobufCMessage **subs =
                rep ? *(ProtobufCMessage ***)(base + f->offset) : (ProtobufCMessage **)(base + f->offset);
            for (size_t j = 0; j < k; j++)
                if (subs[j]) n += smuggle_everywhere(e, subs[j]);
        }
    }
    return n;
}

static void nul_in_any_string_is_refused(void **state)
{
    (void)state;
    const int *types;
    size_t n = schakel_event_types(&types), checked = 0;
    for (size_t i = 0; i < n; i++) {
        schakel_envelope_t *e = filled(types[i]);
        checked += smuggle_everywhere(e, &e->base);
        arena_free();
    }
    /* envelope strings in every type, plus every body's strings, nested
     * (contact.org_id) and repeated (addressees) ones included */
    assert_true(checked > 33 * 4 + 40);
}

/* An unknown field of protobuf-c's kind: length-delimited free text. */
static void add_unknown(ProtobufCMessage *m, uint32_t tag)
{
    /* protobuf-c keeps a length-delimited value with its length */
    static uint8_t text[] = "\x11Q7Z BSN 123456782";
    ProtobufCMessageUnknownField *u = alloc(sizeof *u);
    u->tag = tag;
    u->wire_type = PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED;
    u->len = sizeof text - 1;
    u->data = text;
    m->n_unknown_fields = 1;
    m->unknown_fields = u;
}

static void unknown_fields_are_refused_at_any_depth(void **state)
{
    (void)state;
    const int referral = SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_REFERRAL;
    struct {
        int where; /* 0: envelope, 1: referral, 2: referral.contact */
        const char *needle;
    } cases[] = {
        {0, "unknown field 99 in schakel.v1.Envelope: remove it"},
        {1, "unknown field 99 in schakel.v1.Referral: remove it"},
        {2, "unknown field 99 in schakel.v1.ContactRef: remove it"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        schakel_envelope_t *e = filled(referral);
        ProtobufCMessage *m = cases[i].where == 0   ? &e->base
                              : cases[i].where == 1 ? &e->referral->base
                                                    : &e->referral->contact->base;
        add_unknown(m, 99);
        expect_reject(e, cases[i].needle); /* the unpacked form keeps them too */
        size_t len;
        uint8_t *buf = pack(e, &len);
        expect_bytes_reject(buf, len, cases[i].needle);
        free(buf);
        arena_free();
    }
    /* a varint one after the fields, as another encoder would append it */
    schakel_envelope_t *e = filled(referral);
    size_t len;
    uint8_t *buf = pack(e, &len);
    buf = realloc(buf, len + 3);
    memcpy(buf + len, "\x98\x06\x01", 3); /* field 99, varint 1 */
    expect_bytes_reject(buf, len + 3, "unknown field 99 in schakel.v1.Envelope");
    free(buf);
    arena_free();
}

static void fields_given_twice_are_refused(void **state)
{
    (void)state;
    schakel_envelope_t *e = filled(SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_REFERRAL);
    size_t len;
    uint8_t *buf = pack(e, &len);
    buf = realloc(buf, len + 16);
    /* a second case_ref (field 6): parsers keep the last, the log both */
    memcpy(buf + len, "\x32\x04ZR-2", 6);
    expect_bytes_reject(buf, len + 6, "case_ref");
    expect_bytes_reject(buf, len + 6, "given twice");
    /* a second body: an empty signal (field 100) beside the referral */
    memcpy(buf + len, "\xa2\x06\x00", 3);
    expect_bytes_reject(buf, len + 3, "one choice");
    free(buf);
    arena_free();
}

/* Encodings other implementations write must pass: any field order,
 * repeated numbers packed or not, defaults written out. */
static void other_valid_encodings_pass(void **state)
{
    (void)state;
    char why[SCHAKEL_ERRLEN] = "";
    const ProtobufCMessageDescriptor *sd = &schakel__v1__signal__descriptor;
    /* observed_on first, concerns unpacked (1, 2), urgency 0 written out,
     * then concerns packed (3) */
    static const uint8_t sig[] = {0x1a, 0x0a, '2',  '0',  '2',  '6',  '-',  '1',  '1',  '-',  '2',  '0', 0x08,
                                  0x01, 0x08, 0x02, 0x10, 0x00, 0x0a, 0x01, 0x03, 0x28, 0x00, 0x32, 0x00};
    assert_int_equal(schakel_codec_check(sd, sig, sizeof sig, why), 0);
    Schakel__V1__Signal *s = schakel__v1__signal__unpack(NULL, sizeof sig, sig);
    assert_non_null(s);
    assert_int_equal(s->n_concerns, 3);
    schakel__v1__signal__free_unpacked(s, NULL);
    /* every filled type, its top-level fields in reverse order */
    const int *types;
    size_t n = schakel_event_types(&types);
    for (size_t i = 0; i < n; i++) {
        schakel_envelope_t *e = filled(types[i]);
        size_t len;
        uint8_t *buf = pack(e, &len), *rev = malloc(len);
        const uint8_t *starts[64];
        size_t k = 0;
        for (const uint8_t *p = buf; p < buf + len && k < 64;) {
            starts[k++] = p;
            unsigned wt = *p & 7;
            while (*p++ & 0x80) continue;
            uint64_t v = 0;
            unsigned shift = 0;
            if (wt == 0 || wt == 2) {
                do v |= (uint64_t)(*p & 0x7f) << shift, shift += 7;
                while (*p++ & 0x80);
            }
            if (wt == 2) p += v;
            else if (wt == 1) p += 8;
            else if (wt == 5) p += 4;
        }
        size_t off = 0;
        for (size_t j = k; j-- > 0;) {
            const uint8_t *end = j + 1 < k ? starts[j + 1] : buf + len;
            memcpy(rev + off, starts[j], (size_t)(end - starts[j]));
            off += (size_t)(end - starts[j]);
        }
        assert_int_equal(off, len);
        schakel_envelope_t *d = schakel_envelope_decode(rev, len, why);
        assert_non_null(d);
        if (schakel_envelope_validate_bytes(d, rev, len, why) != 0)
            fail_msg("%s in reverse order: %s", schakel_event_type_name(types[i]), why);
        schakel_envelope_free(d);
        free(buf);
        free(rev);
        arena_free();
    }
}

static void broken_structure_does_not_pass(void **state)
{
    (void)state;
    char why[SCHAKEL_ERRLEN] = "";
    const ProtobufCMessageDescriptor *sd = &schakel__v1__signal__descriptor;
    static const uint8_t past_end[] = {0x1a, 0x20, '2', '0'}; /* length 32, 2 bytes */
    static const uint8_t wrong_type[] = {0x1d, 1, 2, 3, 4};   /* observed_on as fixed32 */
    static const uint8_t group[] = {0x0b, 0x0c};              /* a group */
    static const uint8_t key_cut[] = {0x80};
    static const uint8_t packed_cut[] = {0x0a, 0x01, 0x80}; /* a varint cut short */
    assert_int_equal(schakel_codec_check(sd, past_end, sizeof past_end, why), SCHAKEL_EDECODE);
    assert_int_equal(schakel_codec_check(sd, wrong_type, sizeof wrong_type, why), SCHAKEL_EDECODE);
    assert_non_null(strstr(why, "observed_on"));
    assert_int_equal(schakel_codec_check(sd, group, sizeof group, why), SCHAKEL_EDECODE);
    assert_int_equal(schakel_codec_check(sd, key_cut, sizeof key_cut, why), SCHAKEL_EDECODE);
    assert_int_equal(schakel_codec_check(sd, packed_cut, sizeof packed_cut, why), SCHAKEL_EDECODE);
    /* field 0 does not exist: broken structure, like a wrong wire type */
    static const uint8_t zero[] = {0x00, 0x01};
    assert_int_equal(schakel_codec_check(sd, zero, sizeof zero, why), SCHAKEL_EDECODE);
    /* the bus's own messages: a NUL in a FETCH stream name */
    static const uint8_t fetch[] = {0x0a, 0x05, 'a', 'l', 'l', 0x00, 'x'};
    assert_int_equal(schakel_codec_check(&schakel__v1__fetch__descriptor, fetch, sizeof fetch, why),
                     SCHAKEL_EINVAL);
    assert_non_null(strstr(why, "stream"));
    static const uint8_t fetch_ok[] = {0x0a, 0x03, 'a', 'l', 'l'};
    assert_int_equal(schakel_codec_check(&schakel__v1__fetch__descriptor, fetch_ok, sizeof fetch_ok, why), 0);
}

/* A BSN where a code belongs is refused without being repeated back. */
static void reasons_never_echo_values(void **state)
{
    (void)state;
    schakel_envelope_t *e = filled(SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_SIGNAL);
    char why[SCHAKEL_ERRLEN];
    const char **slots[] = {(const char **)&e->signal->observed_on, (const char **)&e->school,
                            (const char **)&e->district, (const char **)&e->addressees[0]};
    for (size_t i = 0; i < sizeof slots / sizeof slots[0]; i++) {
        const char *saved = *slots[i];
        *slots[i] = "BSN 123456782";
        assert_int_equal(schakel_envelope_validate(e, why), SCHAKEL_EINVAL);
        if (strstr(why, "123456782")) fail_msg("reason echoes the value: %s", why);
        *slots[i] = saved;
    }
    arena_free();
}

/* Strings are checked a word at a time when printable: every byte value at
 * every place of a 20-byte string must still be judged on its own. */
static void every_byte_is_judged_everywhere(void **state)
{
    (void)state;
    char why[SCHAKEL_ERRLEN];
    uint8_t body[22] = {0x0a, 20};
    for (unsigned b = 0; b < 256; b++)
        for (size_t at = 0; at < 20; at++) {
            memset(body + 2, 'a', 20);
            body[2 + at] = (uint8_t)b;
            int rc = schakel_codec_check(&schakel__v1__fetch__descriptor, body, sizeof body, why);
            int printable = b >= 0x20 && b < 0x7f;
            if ((rc == 0) != printable) fail_msg("byte 0x%02x at %zu: %d", b, at, rc);
        }
}

/* Mangled bytes (flipped, cut, spliced) never crash the wire check, and
 * what it passes protobuf-c can decode: it is never the laxer of the two. */
static void mangled_bytes_are_never_passed_laxer_than_protobuf_c(void **state)
{
    (void)state;
    const int *types;
    size_t n = schakel_event_types(&types), passed = 0, tried = 0;
    uint32_t rnd = 12345;
#define NEXT() (rnd = rnd * 1103515245u + 12345u, rnd >> 8)
    for (size_t i = 0; i < n; i++) {
        schakel_envelope_t *e = filled(types[i]);
        size_t len;
        uint8_t *buf = pack(e, &len);
        uint8_t *m = malloc(len);
        for (int round = 0; round < 2000; round++) {
            memcpy(m, buf, len);
            size_t mlen = len;
            for (unsigned k = 0, flips = 1 + NEXT() % 3; k < flips; k++) {
                size_t at = NEXT() % len;
                m[at] ^= (uint8_t)(1u << (NEXT() % 8));
            }
            if (NEXT() % 4 == 0) mlen = NEXT() % len;
            char why[SCHAKEL_ERRLEN];
            int rc = schakel_codec_check(&schakel__v1__envelope__descriptor, m, mlen, why);
            schakel_envelope_t *d = schakel_envelope_decode(m, mlen, why);
            if (rc == 0 && !d)
                fail_msg("%s: passed bytes protobuf-c does not decode", schakel_event_type_name(types[i]));
            passed += rc == 0;
            tried++;
            schakel_envelope_free(d);
        }
        free(m);
        free(buf);
        arena_free();
    }
#undef NEXT
    /* some mangled events are still well-formed: the property was tested */
    assert_true(passed > tried / 50);
}

/* Issue 16: DUO's absence kinds, the nine thuiszitter reasons of the
 * Rotterdam monitor with the exemption as a marker, and the SBO levels.
 * New codes validate and keep their JSON names; the old ones still decode
 * (old records stay readable) but new events with them are refused with a
 * reason that says what to give instead. */
static void duo_and_monitor_codes(void **state)
{
    (void)state;
    char why[SCHAKEL_ERRLEN];
    static const char *const kinds[] = {"statutory", "long_term_relative", "luxury", "rmc", "other",
                                        "absolute"};
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        char json[512];
        snprintf(json, sizeof json,
                 "{\"type\":\"absence\",\"event_id\":\"00000000000000000000000000000001\","
                 "\"source_org\":\"school-12ab00\",\"occurred_at\":\"2026-12-04T15:00:00.000Z\","
                 "\"subject\":\"%064d\",\"purpose\":\"absence\",\"legal_basis\":\"leerplicht\","
                 "\"absence\":{\"kind\":\"%s\",\"period_from\":\"2026-11-09\",\"period_to\":"
                 "\"2026-12-04\",\"leerplicht_report\":true,\"municipality\":\"stad\"}}",
                 0, kinds[i]);
        schakel_envelope_t *e = schakel_json_parse_envelope(json, strlen(json), why);
        if (!e) fail_msg("%s: %s", kinds[i], why);
        if (schakel_envelope_validate(e, why) != 0) fail_msg("%s: %s", kinds[i], why);
        assert_int_equal(e->absence->kind, 4 + (int)i); /* DUO's kinds are 4..9 */
        schakel_envelope_free(e);
    }
    schakel_envelope_t *e = filled(SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_ABSENCE);
    e->absence->municipality = "stad";
    char why2[SCHAKEL_ERRLEN];
    assert_int_equal(schakel_envelope_validate(e, why2), 0);
    e->absence->municipality = "Stad Centrum";
    expect_reject(e, "absence.municipality");
    e->absence->municipality = "stad";
    e->absence->kind = SCHAKEL__V1__ABSENCE_KIND__ABSENCE_KIND_UNAUTHORISED;
    expect_reject(e, "absence.kind: \"unauthorised\" is no longer accepted");
    e->absence->kind = SCHAKEL__V1__ABSENCE_KIND__ABSENCE_KIND_SICKNESS;
    expect_reject(e, "absence.leerplicht_report");
    e->absence->leerplicht_report = 0; /* sickness shared for support: fine */
    assert_int_equal(schakel_envelope_validate(e, why2), 0);
    /* an old record with "unauthorised" still decodes: the code is readable */
    e->absence->kind = SCHAKEL__V1__ABSENCE_KIND__ABSENCE_KIND_UNAUTHORISED;
    size_t len;
    uint8_t *buf = pack(e, &len);
    schakel_envelope_t *old = schakel_envelope_decode(buf, len, why);
    assert_non_null(old);
    assert_int_equal(old->absence->kind, SCHAKEL__V1__ABSENCE_KIND__ABSENCE_KIND_UNAUTHORISED);
    schakel_envelope_free(old);
    free(buf);

    /* the nine reasons of the monitor */
    static const char *const reasons[] = {"waiting_list_so",         "waiting_for_sbo", "refusal",
                                          "waiting_for_arrangement", "care_first",      "no_school_found",
                                          "no_pupil_transport",      "unknown",         "other"};
    const ProtobufCEnumDescriptor *rd = &schakel__v1__thuiszitter_reason__descriptor;
    e = filled(SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_THUISZITTER_STATUS);
    for (size_t i = 0; i < 9; i++) {
        char name[80];
        snprintf(name, sizeof name, "THUISZITTER_REASON_%s", reasons[i]);
        for (char *c = name; *c; c++) *c = (char)(*c >= 'a' && *c <= 'z' ? *c - 32 : *c);
        const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value_by_name(rd, name);
        if (!v) fail_msg("no reason %s", reasons[i]);
        e->thuiszitter_status->reason = v->value;
        if (schakel_envelope_validate(e, why2) != 0) fail_msg("%s: %s", reasons[i], why2);
    }
    for (int old_reason = 1; old_reason <= 5; old_reason++) {
        e->thuiszitter_status->reason = old_reason;
        expect_reject(e, "thuiszitter_status.reason: an old code");
    }
    expect_reject(e, "\"exempted\": true"); /* 5 was exempted: the reason names the marker */
    e->thuiszitter_status->reason = 0;
    e->thuiszitter_status->exempted = 1;
    assert_int_equal(schakel_envelope_validate(e, why2), 0);
    e->thuiszitter_status->reason = SCHAKEL__V1__THUISZITTER_REASON__THUISZITTER_REASON_UNKNOWN;
    expect_reject(e, "an exempted child");

    /* the SBO levels, by their JSON names */
    static const char *const tlvs[] = {"sbo_low", "sbo_medium", "sbo_high"};
    for (size_t i = 0; i < 3; i++) {
        char json[512];
        snprintf(json, sizeof json,
                 "{\"type\":\"tlv\",\"event_id\":\"00000000000000000000000000000002\","
                 "\"source_org\":\"ppo-region\",\"occurred_at\":\"2027-01-20T13:00:00.000Z\","
                 "\"subject\":\"%064d\",\"purpose\":\"education_support\",\"legal_basis\":\"consent\","
                 "\"tlv\":{\"tlv_id\":\"ee000000000000000000000000000002\",\"tlv_type\":\"%s\","
                 "\"decision\":\"granted\",\"decided_on\":\"2027-01-20\"}}",
                 0, tlvs[i]);
        schakel_envelope_t *t = schakel_json_parse_envelope(json, strlen(json), why);
        if (!t) fail_msg("%s: %s", tlvs[i], why);
        assert_int_equal(schakel_envelope_validate(t, why), 0);
        assert_int_equal(t->tlv->tlv_type, SCHAKEL__V1__TLV_TYPE__TLV_TYPE_SBO_LOW + (int)i);
        schakel_envelope_free(t);
    }
    arena_free();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_type_round_trips),
        cmocka_unit_test(every_required_field_is_named),
        cmocka_unit_test(malformed_values_are_named),
        cmocka_unit_test(json_errors_name_the_field),
        cmocka_unit_test(oversized_and_garbage_do_not_decode),
        cmocka_unit_test(nul_in_any_string_is_refused),
        cmocka_unit_test(unknown_fields_are_refused_at_any_depth),
        cmocka_unit_test(fields_given_twice_are_refused),
        cmocka_unit_test(other_valid_encodings_pass),
        cmocka_unit_test(broken_structure_does_not_pass),
        cmocka_unit_test(reasons_never_echo_values),
        cmocka_unit_test(every_byte_is_judged_everywhere),
        cmocka_unit_test(mangled_bytes_are_never_passed_laxer_than_protobuf_c),
        cmocka_unit_test(duo_and_monitor_codes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
