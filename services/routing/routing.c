/* The routing engine: who should know about an event. Each record of the
 * log (routing_process): first what later events will refer to is
 * remembered (routing_state.c), then every rule on its type whose "when"
 * matches (routing_rules.c) adds the recipients its target names
 * (routing_targets.c), and the engine publishes one routing_decision
 * naming each recipient and its rule, and what was refused. Its id is
 * derived from the event it is about and its time is the log's, so that
 * `schakel audit replay` derives the same decisions. The service runner
 * (lib/service.c) commits it with the engine's state and place in the
 * log. */
#include <stdio.h>
#include <string.h>

#include "error.h"
#include "routing_impl.h"

/* An intake with outcome redirected, from an organisation the referral
 * was routed to (or an earlier redirect's): the organisation it names,
 * when routed to, is one of the loop's organisations from now on, for
 * news about the loop (case_lead, the target referral_loop). Nonzero on a
 * store error. */
static int redirect_joins_loop(schakel_routing_t *r, MDB_txn *txn, const schakel_envelope_t *env,
                               const recipients_t *to)
{
    if (env->type != SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_INTAKE ||
        env->intake->outcome != SCHAKEL__V1__INTAKE_OUTCOME__INTAKE_OUTCOME_REDIRECTED ||
        env->intake->referral_id.len != 16)
        return 0;
    uint8_t key[FLOW_KEY_MAX];
    MDB_val v;
    size_t n = routing_flow_key(key, 'R', &env->intake->referral_id, env->subject, env->source_org);
    if (schakel_kv_get(txn, r->dbi_flows, key, n, &v) != 0) return 0;
    for (size_t i = 0; i < to->n; i++)
        if (!strcmp(to->org[i], env->intake->redirected_to))
            return routing_remember_flow(txn, r->dbi_flows, 'R', &env->intake->referral_id, env->subject,
                                         to->org[i], "", 0);
    return 0;
}

/* What routing_process passes over, to nobody and with no state: the
 * runner of a node need not decrypt or decode them (service.h). */
static int routing_ignores(int type)
{
    switch (type) {
    case SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_ROUTING_DECISION:
    case SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_CONSENT_DECISION:
    case SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_AUDIT_ACCESS:
    case SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_ADAPTER_STATUS: return 1;
    default: return 0;
    }
}

static int routing_process(void *engine, MDB_txn *txn, const schakel_logrec_t *rec, schakel_emit_t *out,
                           char *why)
{
    schakel_routing_t *r = engine;
    const schakel_envelope_t *env = rec->env;
    if (!env) return 0;
    switch ((int)env->type) {
    case SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_DIRECTORY_UPDATE:
        return schakel_engine_directory_update(txn, r->dbi_state, env, &r->dir)
                   ? schakel_fail(why, SCHAKEL_ESTORE, "routing: cannot store the directory")
                   : 0;
    case SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_RULES_UPDATE: /* routed to nobody: rules for what follows */
        return schakel_engine_rules_update(txn, r->dbi_state, rec, SCHAKEL__V1__RULE_SET__RULE_SET_ROUTING,
                                           schakel_routing_install, r, "routing")
                   ? schakel_fail(why, SCHAKEL_ESTORE, "routing: cannot store the rules")
                   : 0;
    case SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_ROUTING_DECISION:
    case SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_CONSENT_DECISION:
    case SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_CLOCK_TICK:
    case SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_AUDIT_ACCESS:
    case SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_ADAPTER_STATUS: return 0; /* for operators: to nobody */
    case SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_ERASURE: /* the broker's own: the child goes from the state */
        if (strcmp(env->source_org, "broker") != 0 || !env->erasure) return 0;
        return routing_forget(r, txn, env->erasure->erased_subject)
                   ? schakel_fail(why, SCHAKEL_ESTORE, "routing: cannot drop an erased child's state")
                   : 0;
    case SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_REFERRAL:
        if (routing_remember(txn, r->dbi_referrals, &env->referral->referral_id, env->subject,
                             env->source_org))
            goto store;
        break;
    case SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_SIGNAL: /* a signal that asks for follow-up opens a loop */
        if (env->signal->follow_up_requested &&
            routing_remember(txn, r->dbi_referrals, &env->event_id, env->subject, env->source_org))
            goto store;
        break;
    case SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_VEILIGTHUIS_REPORT:
        if (routing_remember(txn, r->dbi_reports, &env->veiligthuis_report->report_id, env->subject,
                             env->source_org))
            goto store;
        break;
    case SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_HANDOVER:
        if (routing_remember_handover(txn, r->dbi_flows, env)) goto store;
        break;
    case SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_MAZL_REQUEST:
        if (routing_remember_flow(txn, r->dbi_flows, 'M', &env->mazl_request->request_id, env->subject, NULL,
                                  env->source_org, strlen(env->source_org) + 1))
            goto store;
        break;
    default: break;
    }

    recipients_t to = {0};
    json_t *body_json = NULL;
    for (size_t i = 0; i < r->n_rules; i++) {
        const rule_t *rule = &r->rules[i];
        if (rule->on[env->type] && routing_when_matches(rule, env, &body_json))
            routing_apply(r, txn, rule, env, &to);
    }
    json_decref(body_json);
    if (env->type == SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_CONSENT_GIVEN && to.n &&
        routing_remember(txn, r->dbi_consents, &env->consent_given->consent_id, env->source_org, to.org[0]))
        goto store;
    /* a referral's receivers, for news about its loop (case_lead); the
     * first referral of that id by this sender about this child counts */
    const char *referrer =
        env->type == SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_REFERRAL
            ? routing_recall(txn, r->dbi_referrals, &env->referral->referral_id, env->subject)
            : NULL;
    if (referrer && !strcmp(referrer, env->source_org))
        for (size_t i = 0; i < to.n; i++)
            if (routing_remember_flow(txn, r->dbi_flows, 'R', &env->referral->referral_id, env->subject,
                                      to.org[i], "", 0))
                goto store;

    /* a receiver's redirect: the new organisation joins the loop */
    if (redirect_joins_loop(r, txn, env, &to)) goto store;

    Schakel__V1__RoutedRecipient rr[MAX_RECIPIENTS], *rp[MAX_RECIPIENTS];
    for (size_t i = 0; i < to.n; i++) {
        schakel__v1__routed_recipient__init(&rr[i]);
        rr[i].org_id = (char *)to.org[i];
        rr[i].rule_id = (char *)to.rule[i];
        rp[i] = &rr[i];
    }
    /* refused by one rule, chosen by another: it is a recipient */
    Schakel__V1__RefusedRecipient rf[MAX_RECIPIENTS], *rfp[MAX_RECIPIENTS];
    size_t n_refused = 0;
    for (size_t i = 0; i < to.n_refused; i++) {
        const refusal_t *x = &to.refused[i];
        int chosen = 0;
        for (size_t j = 0; x->org[0] && j < to.n; j++) chosen |= !strcmp(to.org[j], x->org);
        if (chosen) continue;
        schakel__v1__refused_recipient__init(&rf[n_refused]);
        rf[n_refused].field = (char *)x->field;
        rf[n_refused].org_id = (char *)x->org;
        rf[n_refused].rule_id = (char *)x->rule;
        rf[n_refused].reason_code = (char *)x->reason;
        rfp[n_refused] = &rf[n_refused];
        n_refused++;
    }
    Schakel__V1__RoutingDecision d = SCHAKEL__V1__ROUTING_DECISION__INIT;
    d.about_event_id = env->event_id;
    d.about_seq = rec->seq;
    d.recipients = rp;
    d.n_recipients = to.n;
    d.policy_version.data = r->policy;
    d.policy_version.len = sizeof r->policy;
    d.directory_version = r->dir ? schakel_directory_version(r->dir) : 0;
    d.refused = rfp;
    d.n_refused = n_refused;
    if (n_refused && r->dir && schakel_directory_by_id(r->dir, env->source_org))
        d.inform_org = (char *)env->source_org; /* the publisher hears what was refused */
    uint8_t id[16];
    /* the publisher is part of what the decision is about: ids are scoped
     * to their publisher, so two organisations' events with one id get two
     * decisions */
    schakel_derive_id(id, "schakel/v1/routing", env->source_org, strlen(env->source_org), env->event_id.data,
                      env->event_id.len, NULL);
    Schakel__V1__Envelope e = SCHAKEL__V1__ENVELOPE__INIT;
    e.event_id.data = id;
    e.event_id.len = 16;
    e.type = SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_ROUTING_DECISION;
    e.source_org = r->org;
    e.occurred_at = rec->now;
    e.subject = env->subject;
    e.correlation_id = env->correlation_id;
    e.causation_id = env->event_id;
    e.purpose = SCHAKEL__V1__PURPOSE__PURPOSE_BUS;
    e.legal_basis = SCHAKEL__V1__LEGAL_BASIS__LEGAL_BASIS_BUS;
    e.body_case = SCHAKEL__V1__ENVELOPE__BODY_ROUTING_DECISION;
    e.routing_decision = &d;
    int rc = schakel_emit(out, &e);
    if (rc == 0 && to.no_veiligthuis) {
        char detail[160];
        snprintf(detail, sizeof detail, "seq=%llu type=%s source_org=%s", (unsigned long long)rec->seq,
                 schakel_event_type_name(env->type), env->source_org);
        rc = schakel_emit_alarm(out, "unroutable", "no_veiligthuis", detail);
    }
    return rc ? schakel_fail(why, rc, "routing: cannot emit a decision") : 0;
store:
    return schakel_fail(why, SCHAKEL_ESTORE, "routing: cannot store state");
}

const schakel_engine_ops_t schakel_routing_ops = {"routing", routing_open, routing_process, routing_ignores};
