/* Validation of an envelope before anything is stored: the broker runs it
 * on every published event (brokers/check.c), clients and adapters run it
 * before they sign. This file is the entry: schakel_envelope_validate
 * checks the envelope's own fields (event id, type and body, source_org,
 * subject), walks every field by kind (validate_fields.c), checks the
 * table of the fields each event type needs, and last the rules that tie
 * fields together (validate_links.c). schakel_envelope_validate_bytes
 * first runs the wire walk over the bytes (validate_wire.c). Untrusted
 * input: everything is bounded, and no reason repeats a value. */
#include <assert.h>
#include <pthread.h>
#include <stdio.h>
#include <stdint.h>
#include <string.h>

#include "codec.h"
#include "error.h"
#include "keys.h"
#include "validate.h"
#include "validate_impl.h"

typedef Schakel__V1__EventType etype_t;

/* ---- what each event type needs ---- */

typedef struct {
    etype_t type;
    const char *fields; /* space-separated body fields that must be set */
    int subject;        /* 1: required, 0: optional, -1: forbidden */
} rule_t;

static const rule_t rules[] = {
    {SCHAKEL_EVENT(SIGNAL), "concerns observed_on", 1},
    {SCHAKEL_EVENT(CONSULTATION), "consulted_kind topics", -1},
    {SCHAKEL_EVENT(CONSENT_GIVEN), "consent_id given_by age_band purposes valid_from", 1},
    {SCHAKEL_EVENT(CONSENT_WITHDRAWN), "consent_id withdrawn_by effective_on", 1},
    {SCHAKEL_EVENT(REFERRAL), "referral_id to_kind reasons", 1},
    {SCHAKEL_EVENT(REFERRAL_RECEIVED), "referral_id received_on", 1},
    {SCHAKEL_EVENT(INTAKE), "referral_id intake_on outcome", 1},
    {SCHAKEL_EVENT(FIRST_CONTACT), "referral_id contact_on", 1},
    {SCHAKEL_EVENT(CASE_LEAD), "lead_org since", 1},
    {SCHAKEL_EVENT(MEETING), "meeting_id kind held_on", 0},
    {SCHAKEL_EVENT(ACTION_ITEM), "meeting_id action_id owner_org action_code status", 0},
    {SCHAKEL_EVENT(WAITING_LIST), "referral_id provider_ref status on", 1},
    {SCHAKEL_EVENT(BRIDGING_CARE), "referral_id by_org started_on", 1},
    {SCHAKEL_EVENT(MELDCODE_STEP), "step done_on", 1},
    {SCHAKEL_EVENT(VEILIGTHUIS_REPORT), "report_id reported_on assessment", 1},
    {SCHAKEL_EVENT(VEILIGTHUIS_FEEDBACK), "report_id outcome on", 1},
    {SCHAKEL_EVENT(BESCHIKKING), "beschikking_id decision decided_on", 1},
    {SCHAKEL_EVENT(TLV), "tlv_id tlv_type decision decided_on", 1},
    {SCHAKEL_EVENT(EDUCATION_CARE_ARRANGEMENT), "arrangement_id arrangement_code funded_by start_on", 1},
    {SCHAKEL_EVENT(ABSENCE), "kind period_from period_to", 1},
    {SCHAKEL_EVENT(THUISZITTER_STATUS), "state since", 1},
    {SCHAKEL_EVENT(FEEDBACK_STATUS), "referral_id state on", 1},
    {SCHAKEL_EVENT(CLOSURE), "referral_id closed_on reason_code", 1},
    {SCHAKEL_EVENT(FAMILY_INFORMED), "referral_id step informed_on how", 1},
    {SCHAKEL_EVENT(HANDOVER), "handover_id to_org reason_code planned_on", 1},
    {SCHAKEL_EVENT(HANDOVER_CONFIRMED), "handover_id side confirmed_on", 1},
    {SCHAKEL_EVENT(MAZL_REQUEST), "request_id ground sick_reports period_from period_to", 1},
    {SCHAKEL_EVENT(MAZL_ADVICE), "request_id advice given_on", 1},
    {SCHAKEL_EVENT(ROUTING_DECISION), "about_event_id about_seq policy_version", 0},
    {SCHAKEL_EVENT(CONSENT_DECISION),
     "about_event_id about_seq recipient_org outcome legal_basis rule_id "
     "policy_version",
     0},
    {SCHAKEL_EVENT(LOOP_REMINDER), "referral_id level waiting_for due_on to_org", 0},
    {SCHAKEL_EVENT(DIRECTORY_UPDATE), "version document_json", -1},
    {SCHAKEL_EVENT(CLOCK_TICK), "at_ms", -1},
    {SCHAKEL_EVENT(AUDIT_ACCESS), "auditor_ref request_code", 0},
    {SCHAKEL_EVENT(RULES_UPDATE), "set version document_json", -1},
    {SCHAKEL_EVENT(ERASURE), "erased_subject basis requested_by erased_upto", -1},
    {SCHAKEL_EVENT(ADAPTER_STATUS), "last_error adapter_version", -1},
};

#define N_RULES (sizeof rules / sizeof rules[0])
#define REQ_MAX 8

/* The descriptors of each rule's required fields, looked up once. */
static const ProtobufCFieldDescriptor *required[N_RULES][REQ_MAX];
static pthread_once_t required_once = PTHREAD_ONCE_INIT;

static void required_build(void)
{
    for (size_t i = 0; i < N_RULES; i++) {
        const ProtobufCFieldDescriptor *b = protobuf_c_message_descriptor_get_field(
            &schakel__v1__envelope__descriptor, (unsigned)rules[i].type);
        char list[160];
        snprintf(list, sizeof list, "%s", rules[i].fields);
        char *save = NULL;
        size_t n = 0;
        for (char *f = strtok_r(list, " ", &save); f && n < REQ_MAX; f = strtok_r(NULL, " ", &save)) {
            const ProtobufCFieldDescriptor *fd =
                protobuf_c_message_descriptor_get_field_by_name(b->descriptor, f);
            assert(fd); /* a name in the table that the .proto does not have */
            required[i][n++] = fd;
        }
    }
}

static const rule_t *rule_for(int type)
{
    for (size_t i = 0; i < N_RULES; i++)
        if ((int)rules[i].type == type) return &rules[i];
    return NULL;
}

/* Is field f of message m set to something other than its default? */
static int field_set(const ProtobufCMessage *m, const ProtobufCFieldDescriptor *f)
{
    const char *base = (const char *)m;
    const void *p = base + f->offset;
    if (f->label == PROTOBUF_C_LABEL_REPEATED) return *(const size_t *)(base + f->quantifier_offset) > 0;
    switch (f->type) {
    case PROTOBUF_C_TYPE_STRING: return *(char *const *)p && **(char *const *)p;
    case PROTOBUF_C_TYPE_BYTES: return ((const ProtobufCBinaryData *)p)->len > 0;
    case PROTOBUF_C_TYPE_MESSAGE: return *(void *const *)p != NULL;
    case PROTOBUF_C_TYPE_BOOL: return *(const protobuf_c_boolean *)p != 0;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_FIXED64:
    case PROTOBUF_C_TYPE_SFIXED64: return *(const uint64_t *)p != 0;
    default: return *(const uint32_t *)p != 0;
    }
}

int schakel_envelope_validate(const schakel_envelope_t *env, char *why)
{
    if (env->event_id.len != SCHAKEL_EVENT_ID_LEN)
        return schakel_fail(why, SCHAKEL_EINVAL, "event_id: 16 bytes are needed, not %zu", env->event_id.len);
    const char *name = schakel_event_type_name(env->type);
    const rule_t *rule = rule_for(env->type);
    if (!name || !rule) return schakel_fail(why, SCHAKEL_EINVAL, "type: unknown event type %d", env->type);
    const ProtobufCMessage *body = schakel_envelope_body(env);
    if ((int)env->body_case != (int)env->type || !body)
        return schakel_fail(why, SCHAKEL_EINVAL, "%s: the body for type %s is missing", name, name);
    if (!schakel_id_valid(env->source_org))
        return schakel_fail(why, SCHAKEL_EINVAL, "source_org: not a valid organisation id");
    if (env->occurred_at <= 0) return schakel_fail(why, SCHAKEL_EINVAL, "occurred_at: a time is needed");
    if (!env->purpose) return schakel_fail(why, SCHAKEL_EINVAL, "purpose: required");
    if (!env->legal_basis) return schakel_fail(why, SCHAKEL_EINVAL, "legal_basis: required");
    /* what only the bus itself writes: an organisation's event about a
     * child cannot claim it (docs/events.md, Purpose and LegalBasis) */
    if (env->type < SCHAKEL_EVENT(ROUTING_DECISION) && env->purpose == SCHAKEL__V1__PURPOSE__PURPOSE_BUS)
        return schakel_fail(
            why, SCHAKEL_EINVAL,
            "purpose: bus is for the bus's own events; give why %s shares this (e.g. support)", name);
    if (env->type < SCHAKEL_EVENT(ROUTING_DECISION) &&
        (env->legal_basis == SCHAKEL__V1__LEGAL_BASIS__LEGAL_BASIS_BUS ||
         env->legal_basis == SCHAKEL__V1__LEGAL_BASIS__LEGAL_BASIS_VERWIJSINDEX))
        return schakel_fail(
            why, SCHAKEL_EINVAL,
            "legal_basis: %s is the bus's own; a %s claims consent, meldcode, leerplicht, ... "
            "(docs/events.md, LegalBasis)",
            env->legal_basis == SCHAKEL__V1__LEGAL_BASIS__LEGAL_BASIS_BUS ? "bus" : "verwijsindex", name);
    if (env->subject[0]) {
        int hex = strlen(env->subject) == 64;
        for (const char *p = env->subject; hex && *p; p++)
            hex = (*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f');
        if (!hex)
            return schakel_fail(why, SCHAKEL_EINVAL,
                                "subject: a pseudonym of 64 lower-case hex characters is needed "
                                "(never a BSN or a name)");
        if (rule->subject < 0)
            return schakel_fail(why, SCHAKEL_EINVAL, "subject: %s must not name a subject%s", name,
                                env->type == SCHAKEL_EVENT(CONSULTATION) ? " (it is anonymous)" : "");
    } else if (rule->subject > 0) {
        return schakel_fail(why, SCHAKEL_EINVAL, "subject: %s is about a child: give the pseudonym", name);
    }
    /* Without a subject, a case reference or home district would let the
     * receiver identify the child after all. An event that may name a
     * child and does not (a meeting, an action) is delivered without
     * consent: it carries no case reference either. */
    if (rule->subject < 0 && (env->case_ref[0] || env->district[0]))
        return schakel_fail(why, SCHAKEL_EINVAL, "%s: %s must not carry case_ref or district",
                            env->case_ref[0] ? "case_ref" : "district", name);
    if (!env->subject[0] && env->case_ref[0])
        return schakel_fail(why, SCHAKEL_EINVAL,
                            "case_ref: a %s without a subject is about no child and carries no case "
                            "reference: give the subject, or leave case_ref out",
                            name);
    /* Nor does it link to a flow: an anonymous consultation (or a meeting
     * that names no child) that named a referral's id or event would tie
     * the anonymous question to an identified child after all. */
    if (!env->subject[0] && env->type < SCHAKEL_EVENT(ROUTING_DECISION) &&
        (env->correlation_id.len || env->causation_id.len))
        return schakel_fail(why, SCHAKEL_EINVAL,
                            "%s: a %s without a subject is about no child and links to no flow: leave "
                            "correlation_id and causation_id out",
                            env->correlation_id.len ? "correlation_id" : "causation_id", name);
    walk_t w = {.why = why};
    int rc = validate_walk(&w, &env->base);
    if (rc) return rc;

    pthread_once(&required_once, required_build);
    const ProtobufCFieldDescriptor *const *req = required[rule - rules];
    for (size_t i = 0; i < REQ_MAX && req[i]; i++)
        if (!field_set(body, req[i]))
            return schakel_fail(why, SCHAKEL_EINVAL, "%s.%s: required (docs/events.md)", name, req[i]->name);
    return validate_links(env, why);
}

int schakel_envelope_validate_bytes(const schakel_envelope_t *env, const uint8_t *buf, size_t len, char *why)
{
    int rc = schakel_codec_check(&schakel__v1__envelope__descriptor, buf, len, why);
    return rc ? rc : schakel_envelope_validate(env, why);
}

int schakel_envelope_subject_rule(int type)
{
    const rule_t *r = rule_for(type);
    return r ? r->subject : 0;
}

const char *schakel_envelope_required(int type)
{
    const rule_t *r = rule_for(type);
    return r ? r->fields : NULL;
}
