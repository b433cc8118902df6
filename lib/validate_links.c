/* Validation, the rules that tie one field to another: what one value of
 * a field asks of another field of the same event (a report that does not
 * inform the parents gives its ground, a consent by one parent says
 * whether that parent holds authority, a period does not end before it
 * starts). Called last by schakel_envelope_validate (validate.c), on an
 * envelope whose fields each passed on their own. */
#include <string.h>

#include "error.h"
#include "validate.h"
#include "validate_impl.h"

/* The grounds the meldcode gives for reporting to Veilig Thuis without
 * having told the parents first (step 3 may be left out): telling them
 * would put at risk the child's safety, someone else's, or the
 * reporter's own, or there is good reason to think the family would then
 * break off contact. Codes, as veiligthuis_report.not_informed_reason. */
static const char *const not_informed_reasons[] = {"safety_risk", "risk_to_others", "risk_to_reporter",
                                                   "contact_lost"};
#define NOT_INFORMED_LIST "safety_risk, risk_to_others, risk_to_reporter, contact_lost"

/* A report says whether the parents were told, and if not, on which
 * ground: the consent service records the duty to inform from it. */
static int check_report(const Schakel__V1__VeiligThuisReport *r, char *why)
{
    const char *reason = r->not_informed_reason;
    if (!reason[0] && r->parents_informed) return 0;
    if (!reason[0])
        return schakel_fail(why, SCHAKEL_EINVAL,
                            "veiligthuis_report.not_informed_reason: parents_informed is false: give "
                            "not_informed_reason (one of " NOT_INFORMED_LIST ") or inform the parents "
                            "first");
    for (size_t i = 0; i < sizeof not_informed_reasons / sizeof not_informed_reasons[0]; i++)
        if (!strcmp(reason, not_informed_reasons[i])) return 0;
    return schakel_fail(
        why, SCHAKEL_EINVAL,
        "veiligthuis_report.not_informed_reason: not a known code: give one of " NOT_INFORMED_LIST
        " (docs/events.md), or inform the parents first");
}

/* An adapter's status is for operators: counts, a code and a version,
 * and nothing that could point at a child or route it to anyone. */
static int check_adapter_status(const schakel_envelope_t *env, char *why)
{
    const char *v = env->adapter_status->adapter_version;
    size_t n = strlen(v);
    if (n > 32 || strspn(v, "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.+~-") != n)
        return schakel_fail(why, SCHAKEL_EINVAL,
                            "adapter_status.adapter_version: at most 32 letters, digits and . + ~ -, "
                            "e.g. \"0.24.0\"");
    const char *field = env->school[0]                                                  ? "school"
                        : env->age_band                                                 ? "age_band"
                        : env->n_addressees                                             ? "addressees"
                        : env->n_categories                                             ? "categories"
                        : env->correlation_id.len                                       ? "correlation_id"
                        : env->causation_id.len                                         ? "causation_id"
                        : env->purpose != SCHAKEL__V1__PURPOSE__PURPOSE_BUS             ? "purpose"
                        : env->legal_basis != SCHAKEL__V1__LEGAL_BASIS__LEGAL_BASIS_BUS ? "legal_basis"
                                                                                        : NULL;
    if (field)
        return schakel_fail(why, SCHAKEL_EINVAL,
                            "%s: adapter_status is about the adapter, not a child, and goes to nobody: "
                            "purpose and legal_basis \"bus\", no school, age_band, addressees, "
                            "categories, correlation_id or causation_id",
                            field);
    return 0;
}

/* Rules that tie one field to another. */
int validate_links(const schakel_envelope_t *env, char *why)
{
    switch ((int)env->type) {
    case SCHAKEL_EVENT(VEILIGTHUIS_REPORT): return check_report(env->veiligthuis_report, why);
    case SCHAKEL_EVENT(ADAPTER_STATUS): return check_adapter_status(env, why);
    case SCHAKEL_EVENT(CONSENT_GIVEN): {
        const Schakel__V1__ConsentGiven *c = env->consent_given;
        if (!c->recipient_org[0] && !c->recipient_kind)
            return schakel_fail(why, SCHAKEL_EINVAL,
                                "consent_given: name the recipient_org or the recipient_kind");
        if (c->valid_until[0] && strcmp(c->valid_until, c->valid_from) < 0)
            return schakel_fail(why, SCHAKEL_EINVAL, "consent_given.valid_until: before valid_from");
        /* gezag (docs/routing.md, "Whose consent counts") */
        if (c->given_by == SCHAKEL__V1__GIVEN_BY__GIVEN_BY_ONE_PARENT && !c->authority)
            return schakel_fail(why, SCHAKEL_EINVAL,
                                "consent_given.authority: required with given_by one_parent: say "
                                "whether this parent holds parental authority (gezag) alone "
                                "(sole), with another holder (joint) or not at all (none)");
        if (c->youth_cannot_judge && (c->given_by == SCHAKEL__V1__GIVEN_BY__GIVEN_BY_YOUTH_WITH_PARENTS ||
                                      c->given_by == SCHAKEL__V1__GIVEN_BY__GIVEN_BY_YOUTH_WITH_GUARDIAN ||
                                      c->given_by == SCHAKEL__V1__GIVEN_BY__GIVEN_BY_YOUTH_ALONE ||
                                      c->given_by == SCHAKEL__V1__GIVEN_BY__GIVEN_BY_ADULT_STUDENT))
            return schakel_fail(why, SCHAKEL_EINVAL,
                                "consent_given.youth_cannot_judge: a youth who cannot judge does not "
                                "consent: given_by must be parents, one_parent or guardian");
        if (c->youth_cannot_judge && c->age_band != SCHAKEL__V1__AGE_BAND__AGE_BAND_12_15 &&
            c->age_band != SCHAKEL__V1__AGE_BAND__AGE_BAND_16_17)
            return schakel_fail(why, SCHAKEL_EINVAL,
                                "consent_given.youth_cannot_judge: only for a youth of 12 to 17 "
                                "(age_band 12_15 or 16_17)");
        if (c->given_by == SCHAKEL__V1__GIVEN_BY__GIVEN_BY_YOUTH_WITH_GUARDIAN &&
            c->age_band != SCHAKEL__V1__AGE_BAND__AGE_BAND_12_15)
            return schakel_fail(why, SCHAKEL_EINVAL,
                                "consent_given.given_by: youth_with_guardian is for a youth of 12 to 15 "
                                "(age_band 12_15)");
        break;
    }
    case SCHAKEL_EVENT(INTAKE):
        if (env->intake->outcome == SCHAKEL__V1__INTAKE_OUTCOME__INTAKE_OUTCOME_REDIRECTED &&
            !env->intake->redirected_to[0])
            return schakel_fail(why, SCHAKEL_EINVAL,
                                "intake.redirected_to: required with outcome redirected");
        break;
    case SCHAKEL_EVENT(MELDCODE_STEP):
        if (env->meldcode_step->step == SCHAKEL__V1__MELDCODE_STEP_KIND__MELDCODE_STEP_DECIDE &&
            !env->meldcode_step->decision)
            return schakel_fail(why, SCHAKEL_EINVAL, "meldcode_step.decision: required with step decide");
        break;
    case SCHAKEL_EVENT(ABSENCE): {
        const Schakel__V1__Absence *a = env->absence;
        if (strcmp(a->period_to, a->period_from) < 0)
            return schakel_fail(why, SCHAKEL_EINVAL, "absence.period_to: before period_from");
        /* DUO's kinds (docs/events.md); "unauthorised" stays readable in
         * old records only */
        if (a->kind == SCHAKEL__V1__ABSENCE_KIND__ABSENCE_KIND_UNAUTHORISED)
            return schakel_fail(why, SCHAKEL_EINVAL,
                                "absence.kind: \"unauthorised\" is no longer accepted: use DUO's kind "
                                "(statutory, long_term_relative, luxury, rmc, other) or absolute");
        if (a->leerplicht_report && (a->kind == SCHAKEL__V1__ABSENCE_KIND__ABSENCE_KIND_AUTHORISED ||
                                     a->kind == SCHAKEL__V1__ABSENCE_KIND__ABSENCE_KIND_SICKNESS))
            return schakel_fail(why, SCHAKEL_EINVAL,
                                "absence.leerplicht_report: authorised absence and sickness are not "
                                "reported to leerplicht; report a DUO kind or absolute");
        break;
    }
    case SCHAKEL_EVENT(THUISZITTER_STATUS): {
        const Schakel__V1__ThuiszitterStatus *t = env->thuiszitter_status;
        if (t->reason >= SCHAKEL__V1__THUISZITTER_REASON__THUISZITTER_REASON_NO_SUITABLE_PLACE &&
            t->reason <= SCHAKEL__V1__THUISZITTER_REASON__THUISZITTER_REASON_EXEMPTED)
            return schakel_fail(why, SCHAKEL_EINVAL,
                                "thuiszitter_status.reason: an old code, no longer accepted: use one "
                                "of the nine monitor reasons (docs/events.md)%s",
                                t->reason == SCHAKEL__V1__THUISZITTER_REASON__THUISZITTER_REASON_EXEMPTED
                                    ? "; an exemption is \"exempted\": true"
                                    : "");
        if (t->exempted && t->reason)
            return schakel_fail(why, SCHAKEL_EINVAL,
                                "thuiszitter_status.reason: an exempted child (vrijstelling) has no "
                                "thuiszitter reason: leave it out");
        break;
    }
    case SCHAKEL_EVENT(FEEDBACK_STATUS): {
        int st = env->feedback_status->state;
        if ((st < SCHAKEL__V1__LOOP_STATE__LOOP_STATE_SENT ||
             st > SCHAKEL__V1__LOOP_STATE__LOOP_STATE_CLOSED) &&
            st != SCHAKEL__V1__LOOP_STATE__LOOP_STATE_VEILIGTHUIS_DECIDED)
            return schakel_fail(
                why, SCHAKEL_EINVAL,
                "feedback_status.state: a loop's step, sent to closed, or veiligthuis_decided "
                "(the others are for loop_reminder.waiting_for and the flows' own events)");
        break;
    }
    case SCHAKEL_EVENT(FAMILY_INFORMED): {
        const Schakel__V1__FamilyInformed *f = env->family_informed;
        if (f->step < SCHAKEL__V1__LOOP_STATE__LOOP_STATE_RECEIVED ||
            f->step > SCHAKEL__V1__LOOP_STATE__LOOP_STATE_CLOSED)
            return schakel_fail(why, SCHAKEL_EINVAL,
                                "family_informed.step: a step the receiver reached, received to closed "
                                "(docs/events.md)");
        /* how, never what: a short code, so that no content rides along */
        size_t n = strlen(f->how);
        if (n > 32 || strspn(f->how, "abcdefghijklmnopqrstuvwxyz_") != n)
            return schakel_fail(why, SCHAKEL_EINVAL,
                                "family_informed.how: a code of at most 32 characters a-z and _, e.g. "
                                "\"conversation\", \"letter\" (never what was said)");
        break;
    }
    case SCHAKEL_EVENT(HANDOVER):
        if (!strcmp(env->handover->to_org, env->source_org))
            return schakel_fail(why, SCHAKEL_EINVAL,
                                "handover.to_org: a handover goes to another organisation, not the "
                                "publisher itself");
        break;
    case SCHAKEL_EVENT(MAZL_REQUEST): {
        const Schakel__V1__MazlRequest *m = env->mazl_request;
        /* the school asks the jeugdarts only with the parents' knowledge */
        if (!m->parents_informed)
            return schakel_fail(why, SCHAKEL_EINVAL,
                                "mazl_request.parents_informed: must be true: tell the parents "
                                "before asking the jeugdarts");
        if (strcmp(m->period_to, m->period_from) < 0)
            return schakel_fail(why, SCHAKEL_EINVAL, "mazl_request.period_to: before period_from");
        break;
    }
    case SCHAKEL_EVENT(CONSENT_DECISION): {
        const Schakel__V1__ConsentDecision *d = env->consent_decision;
        if (d->outcome == SCHAKEL__V1__CONSENT_OUTCOME__CONSENT_OUTCOME_NOTICE_ONLY &&
            (!d->notice || !d->notice->concerned_org[0]))
            return schakel_fail(why, SCHAKEL_EINVAL,
                                "consent_decision.notice: required with "
                                "outcome notice_only, naming concerned_org");
        if (d->legal_basis == SCHAKEL__V1__LEGAL_BASIS__LEGAL_BASIS_CONSENT &&
            (d->outcome == SCHAKEL__V1__CONSENT_OUTCOME__CONSENT_OUTCOME_DELIVER ||
             d->outcome == SCHAKEL__V1__CONSENT_OUTCOME__CONSENT_OUTCOME_NOTICE_ONLY) &&
            !d->consent_id.len)
            return schakel_fail(why, SCHAKEL_EINVAL,
                                "consent_decision.consent_id: a delivery on consent names it");
        break;
    }
    case SCHAKEL_EVENT(RULES_UPDATE): {
        /* the version is what decisions name: it must be this document's */
        const Schakel__V1__RulesUpdate *u = env->rules_update;
        uint8_t h[SCHAKEL_SHA256_LEN];
        schakel_sha256(u->document_json, strlen(u->document_json), h);
        if (u->version.len != sizeof h || memcmp(u->version.data, h, sizeof h) != 0)
            return schakel_fail(why, SCHAKEL_EINVAL,
                                "rules_update.version: must be the SHA-256 of document_json");
        break;
    }
    default: break;
    }
    return 0;
}
