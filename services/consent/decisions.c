/* Decisions on the log: a routing decision names recipients; for each,
 * rules.c gives a verdict and consent_emit_decision publishes it as a
 * consent_decision, the event the broker delivers on. Its id is derived
 * from what it is about and its cause, its time is the log's, so replay
 * yields the same bytes. A delivery is recorded (loops.c), a hold stored
 * (holds.c). */
#include <string.h>

#include "consent_impl.h"
#include "error.h"
#include "logging.h"

int consent_emit_decision(schakel_consent_t *c, schakel_emit_t *out, const schakel_envelope_t *e,
                          uint64_t about_seq, const char *x, const verdict_t *v,
                          const ProtobufCBinaryData *cause, int64_t now, char *why)
{
    Schakel__V1__ConsentDecision d = SCHAKEL__V1__CONSENT_DECISION__INIT;
    Schakel__V1__Notice notice = SCHAKEL__V1__NOTICE__INIT;
    d.about_event_id = e->event_id;
    d.about_seq = about_seq;
    d.recipient_org = (char *)x;
    d.outcome = v->outcome;
    d.legal_basis = v->basis;
    if (v->has_consent) {
        d.consent_id.data = (uint8_t *)v->consent_id;
        d.consent_id.len = 16;
    }
    d.rule_id = (char *)v->rule;
    d.policy_version.data = c->policy;
    d.policy_version.len = sizeof c->policy;
    d.duty_to_inform = v->duty;
    if (v->outcome == SCHAKEL_OUTCOME(NOTICE_ONLY)) {
        notice.concerned_org = e->source_org;
        const ProtobufCMessage *b = schakel_envelope_body(e);
        const ProtobufCFieldDescriptor *f =
            b ? protobuf_c_message_descriptor_get_field_by_name(b->descriptor, "contact") : NULL;
        if (f && f->type == PROTOBUF_C_TYPE_MESSAGE && f->descriptor == &schakel__v1__contact_ref__descriptor)
            notice.contact = *(Schakel__V1__ContactRef **)((char *)b + f->offset);
        d.notice = &notice;
    }
    if ((v->outcome == SCHAKEL_OUTCOME(DENY) || v->outcome == SCHAKEL_OUTCOME(EXPIRED)) &&
        strcmp(e->source_org, x) != 0 && consent_kind_of(c, e->source_org))
        d.inform_org = e->source_org;
    uint8_t id[16];
    schakel_derive_id(id, "schakel/v1/consent", e->event_id.data, (size_t)16, e->source_org,
                      strlen(e->source_org), x, strlen(x), cause->data, cause->len, NULL);
    Schakel__V1__Envelope env = SCHAKEL__V1__ENVELOPE__INIT;
    env.event_id.data = id;
    env.event_id.len = 16;
    env.type = SCHAKEL_EVENT(CONSENT_DECISION);
    env.source_org = c->org;
    env.occurred_at = now;
    env.subject = e->subject;
    /* a match notice says who and whom to contact; the other
     * organisation's flow is none of the recipient's business */
    if (v->basis != SCHAKEL_BASIS(VERWIJSINDEX)) env.correlation_id = e->correlation_id;
    env.causation_id = *cause;
    env.purpose = SCHAKEL__V1__PURPOSE__PURPOSE_BUS;
    env.legal_basis = SCHAKEL_BASIS(BUS);
    env.body_case = SCHAKEL__V1__ENVELOPE__BODY_CONSENT_DECISION;
    env.consent_decision = &d;
    int rc = schakel_emit(out, &env);
    return rc ? schakel_fail(why, rc, "consent: cannot emit a decision") : 0;
}

/* A routing decision: decide for each recipient. */
int consent_on_routing(schakel_consent_t *c, MDB_txn *txn, const schakel_logrec_t *rec, schakel_emit_t *out,
                       char *why)
{
    const Schakel__V1__RoutingDecision *r = rec->env->routing_decision;
    if (r->about_event_id.len != 16 || !r->about_seq || r->about_seq >= rec->seq) return 0;
    if (consent_kind_of(c, rec->env->source_org) != SCHAKEL_KIND(SERVICE)) {
        /* the directory lets no data holder publish one; should an older
         * log hold one, it decides nothing */
        c->ignored++;
        schakel_log(SCHAKEL_LOG_WARN, "consent", "event=routing_not_from_a_service seq=%llu ignored=%llu",
                    (unsigned long long)rec->seq, (unsigned long long)c->ignored);
        return 0;
    }
    int rc = 0;
    const schakel_envelope_t *e = consent_load_event(c, rec, r->about_seq, &r->about_event_id, &rc, why);
    if (!e) { /* erased, or not the event it names */
        if (rc == 0)
            schakel_log(SCHAKEL_LOG_WARN, "consent", "event=about_unknown seq=%llu",
                        (unsigned long long)rec->seq);
        return rc;
    }
    for (size_t i = 0; i < r->n_recipients && rc == 0; i++) {
        const char *x = r->recipients[i]->org_id;
        verdict_t v;
        consent_decide(c, txn, e, x, rec->now, &v);
        if (e->type == SCHAKEL_EVENT(VEILIGTHUIS_FEEDBACK) &&
            consent_kind_of(c, e->source_org) == SCHAKEL_KIND(VEILIGTHUIS) &&
            consent_kind_of(c, x) != SCHAKEL_KIND(VEILIGTHUIS) &&
            v.basis != SCHAKEL_BASIS(VEILIGTHUIS_FEEDBACK)) {
            /* routed to someone who did not send that report about this child */
            c->ignored++;
            schakel_log(SCHAKEL_LOG_WARN, "consent",
                        "event=feedback_not_the_reporter about_seq=%llu rule=%s ignored=%llu",
                        (unsigned long long)r->about_seq, v.rule, (unsigned long long)c->ignored);
        }
        rc = consent_emit_decision(c, out, e, r->about_seq, x, &v, &rec->env->event_id, rec->now, why);
        if (rc == 0) rc = consent_delivered(c, txn, e, x, &v);
        if (rc == 0 && v.outcome == SCHAKEL_OUTCOME(HOLD))
            rc = consent_hold_put(c, txn, e, r->about_seq, x, rec->now + c->hold_ms);
    }
    return rc ? schakel_fail(why, rc, "consent: cannot store a decision") : 0;
}
