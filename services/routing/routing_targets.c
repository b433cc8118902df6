/* The targets of the routing rules: who "school_team", "home_wijkteam",
 * "referral_target", "leerplicht" and the others name for an event
 * (routing.h lists them), from the directory in force and what routing
 * remembers. An organisation the publisher named itself passes what the
 * rules allow (add) or goes into the decision's "refused" with a
 * reason code (docs/routing.md, "What a publisher may name"). routing.c
 * calls routing_apply once per matching rule. */
#include <stdio.h>
#include <string.h>

#include "routing_impl.h"

static void refuse(recipients_t *out, const char *field, const char *org, const rule_t *rule,
                   const char *reason)
{
    for (size_t i = 0; i < out->n_refused; i++)
        if (!strcmp(out->refused[i].field, field)) return;
    if (out->n_refused == MAX_RECIPIENTS) return;
    refusal_t *f = &out->refused[out->n_refused++];
    snprintf(f->field, sizeof f->field, "%s", field);
    f->org = org;
    f->rule = rule->id;
    f->reason = reason;
}

static int kind_of(schakel_routing_t *r, const char *org)
{
    const schakel_org_t *o = r->dir ? schakel_directory_by_id(r->dir, org) : NULL;
    return o ? o->kind : 0;
}

/* Adds org as a recipient under rule. field is NULL when the organisation
 * comes from the directory or the routing state; when the publisher named
 * it (field says where), it must also pass what the rules allow: listed in
 * the directory, of a kind in the rule's "kinds", never the admin, never a
 * school for another school, and a school only as the child's school (the
 * envelope's "school"; our services, e.g. the feedback loop naming the
 * referrer, are exempt). What fails is recorded in the decision, not
 * delivered. */
static void add(schakel_routing_t *r, recipients_t *out, const schakel_envelope_t *env, const char *org,
                const rule_t *rule, const char *field)
{
    if (!org || !org[0] || !strcmp(org, env->source_org) || !r->dir) return;
    const schakel_org_t *o = schakel_directory_by_id(r->dir, org);
    if (!o) {
        if (field) refuse(out, field, "", rule, "not_in_directory");
        return;
    }
    const char *no = NULL;
    const int school = SCHAKEL__V1__ORG_KIND__ORG_KIND_SCHOOL;
    if (o->kind == SCHAKEL_ORG_KIND_ADMIN) {
        no = "not_a_recipient";
    } else if (o->kind == school && kind_of(r, env->source_org) == school) {
        no = "school_to_school";
    } else if (field && rule->kinds && !(rule->kinds & (1u << o->kind))) {
        no = "kind_not_allowed";
    } else if (field && o->kind == school &&
               kind_of(r, env->source_org) != SCHAKEL__V1__ORG_KIND__ORG_KIND_SERVICE) {
        const schakel_school_t *sc = env->school[0] ? schakel_directory_school(r->dir, env->school) : NULL;
        if (!sc || strcmp(sc->org, o->id)) no = "not_the_childs_school";
    }
    if (no) {
        if (field) refuse(out, field, o->id, rule, no);
        return;
    }
    for (size_t i = 0; i < out->n; i++)
        if (!strcmp(out->org[i], o->id)) return;
    if (out->n == MAX_RECIPIENTS) return;
    out->org[out->n] = o->id;
    out->rule[out->n++] = rule->id;
}

static const schakel_school_t *child_school(schakel_routing_t *r, const schakel_envelope_t *env)
{
    if (!r->dir) return NULL;
    if (env->school[0]) return schakel_directory_school(r->dir, env->school);
    return schakel_directory_school_of(r->dir, env->source_org);
}

static const char *home_wijkteam(schakel_routing_t *r, const schakel_envelope_t *env)
{
    const schakel_school_t *sc = child_school(r, env);
    if (sc && sc->wijkteam_override[0]) return sc->wijkteam_override;
    const char *w = env->district[0] ? schakel_directory_district_wijkteam(r->dir, env->district) : NULL;
    if (w) return w;
    return sc ? sc->team[SCHAKEL__V1__ORG_KIND__ORG_KIND_WIJKTEAM] : NULL;
}

/* The organisation of a kind for this child. */
static const char *of_kind(schakel_routing_t *r, const schakel_envelope_t *env, int kind)
{
    if (!r->dir) return NULL;
    switch (kind) {
    case SCHAKEL__V1__ORG_KIND__ORG_KIND_WIJKTEAM: return home_wijkteam(r, env);
    case SCHAKEL__V1__ORG_KIND__ORG_KIND_VEILIGTHUIS: return schakel_directory_veiligthuis(r->dir);
    case SCHAKEL__V1__ORG_KIND__ORG_KIND_LEERPLICHT: {
        /* the office of the child's home municipality; a gemeente (its
         * youth care) is never chosen for leerplicht, nor the other way */
        const char *reason;
        return schakel_directory_home_leerplicht(r->dir, schakel_body_string(env, "municipality"),
                                                 env->district, &reason);
    }
    default: {
        const schakel_school_t *sc = child_school(r, env);
        return sc && kind > 0 && kind < SCHAKEL_ORG_KINDS ? sc->team[kind] : NULL;
    }
    }
}

/* The leerplicht office of the child's home municipality: the one the body
 * names ("municipality"), else the one the envelope's home district lies
 * in. A directory without municipalities has one office for the region.
 * What cannot be routed is refused, so that the publisher hears of it. */
static void leerplicht(schakel_routing_t *r, recipients_t *out, const schakel_envelope_t *env,
                       const rule_t *rule)
{
    const char *named = schakel_body_string(env, "municipality"), *reason = NULL;
    const char *o = r->dir ? schakel_directory_home_leerplicht(r->dir, named, env->district, &reason) : NULL;
    if (o) {
        add(r, out, env, o, rule, NULL);
    } else if (reason) {
        char field[80] = "district";
        if (named && named[0])
            snprintf(field, sizeof field, "%s.municipality", schakel_event_type_name(env->type));
        refuse(out, field, "", rule, reason);
    }
}

/* The organisations of the loop of the referral the body names: who sent
 * it (about this child) and whom routing sent it to. */
static void referral_loop(schakel_routing_t *r, MDB_txn *txn, const schakel_envelope_t *env,
                          const rule_t *rule, recipients_t *out)
{
    const ProtobufCBinaryData *rid = schakel_body_bytes(env, "referral_id");
    if (!rid || rid->len != 16) return;
    add(r, out, env, routing_recall(txn, r->dbi_referrals, rid, env->subject), rule, NULL);
    uint8_t key[FLOW_KEY_MAX];
    size_t n = routing_flow_key(key, 'R', rid, env->subject, "");
    MDB_cursor *cur;
    if (mdb_cursor_open(txn, r->dbi_flows, &cur) != 0) return;
    MDB_val k = {n, key}, v;
    for (int g = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); g == 0;
         g = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size <= n || memcmp(k.mv_data, key, n) != 0) break;
        char org[SCHAKEL_ID_MAX];
        size_t m = k.mv_size - n < sizeof org - 1 ? k.mv_size - n : sizeof org - 1;
        memcpy(org, (const char *)k.mv_data + n, m);
        org[m] = 0;
        /* add keeps a pointer: the directory's own copy of the id */
        const schakel_org_t *o = r->dir ? schakel_directory_by_id(r->dir, org) : NULL;
        if (o) add(r, out, env, o->id, rule, NULL);
    }
    mdb_cursor_close(cur);
}

/* A handover goes to its receiving side (handover.to_org, which the
 * publisher names); a confirmation to the side that did not publish it. */
static void handover_sides(schakel_routing_t *r, MDB_txn *txn, const schakel_envelope_t *env,
                           const rule_t *rule, recipients_t *out)
{
    if (env->type == SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_HANDOVER) {
        const Schakel__V1__Handover *h = env->handover;
        const schakel_org_t *o = r->dir ? schakel_directory_by_id(r->dir, h->to_org) : NULL;
        if (o && h->to_kind && o->kind != (int)h->to_kind)
            refuse(out, "handover.to_org", o->id, rule, "kind_mismatch");
        else add(r, out, env, h->to_org, rule, "handover.to_org");
        return;
    }
    size_t n;
    const char *sides =
        routing_recall_flow(txn, r->dbi_flows, 'H', schakel_body_bytes(env, "handover_id"), env->subject, &n);
    if (!sides) return;
    const char *giver = sides, *to = sides + strlen(sides) + 1;
    if (to >= sides + n) return;
    /* only a side's own confirmation reaches the other side */
    int giving = env->type == SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_HANDOVER_CONFIRMED &&
                 env->handover_confirmed->side == SCHAKEL__V1__HANDOVER_SIDE__HANDOVER_SIDE_GIVING;
    if (strcmp(env->source_org, giving ? giver : to) != 0) return;
    const schakel_org_t *g = r->dir ? schakel_directory_by_id(r->dir, giver) : NULL;
    const schakel_org_t *t = r->dir ? schakel_directory_by_id(r->dir, to) : NULL;
    add(r, out, env, g ? g->id : NULL, rule, NULL);
    add(r, out, env, t ? t->id : NULL, rule, NULL);
}

void routing_apply(schakel_routing_t *r, MDB_txn *txn, const rule_t *rule, const schakel_envelope_t *env,
                   recipients_t *out)
{
    const rule_t *id = rule; /* the rule each recipient is listed under */
    char field[80];
    switch (rule->target) {
    case T_ADDRESSEES:
        for (size_t i = 0; i < env->n_addressees; i++) {
            snprintf(field, sizeof field, "addressees[%zu]", i);
            add(r, out, env, env->addressees[i], id, field);
        }
        break;
    case T_SCHOOL_TEAM: {
        const schakel_school_t *sc = child_school(r, env);
        for (int k = 1; sc && k < SCHAKEL_ORG_KINDS; k++)
            if (!rule->kinds || (rule->kinds & (1u << k))) add(r, out, env, sc->team[k], id, NULL);
        break;
    }
    case T_HOME_WIJKTEAM: add(r, out, env, r->dir ? home_wijkteam(r, env) : NULL, id, NULL); break;
    case T_REFERRAL_TARGET: {
        if (env->type != SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_REFERRAL) break;
        const Schakel__V1__Referral *ref = env->referral;
        if (!ref->to_org[0]) {
            add(r, out, env, of_kind(r, env, ref->to_kind), id, NULL);
        } else if (r->dir && schakel_directory_by_id(r->dir, ref->to_org) &&
                   strcmp(ref->to_org, env->source_org) != 0 &&
                   kind_of(r, ref->to_org) != (int)ref->to_kind) {
            refuse(out, "referral.to_org", schakel_directory_by_id(r->dir, ref->to_org)->id, rule,
                   "kind_mismatch");
        } else {
            add(r, out, env, ref->to_org, id, "referral.to_org");
        }
        break;
    }
    case T_CONSULTED:
        if (env->type == SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_CONSULTATION)
            add(r, out, env, of_kind(r, env, env->consultation->consulted_kind), id, NULL);
        break;
    case T_CONSENT_RECIPIENT:
        if (env->type == SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_CONSENT_GIVEN) {
            const Schakel__V1__ConsentGiven *c = env->consent_given;
            if (c->recipient_org[0]) add(r, out, env, c->recipient_org, id, "consent_given.recipient_org");
            else add(r, out, env, of_kind(r, env, c->recipient_kind), id, NULL);
        } else if (env->type == SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_CONSENT_WITHDRAWN) {
            add(r, out, env,
                routing_recall(txn, r->dbi_consents, &env->consent_withdrawn->consent_id, env->source_org),
                id, NULL);
        }
        break;
    case T_VEILIGTHUIS: {
        const char *vt = r->dir ? schakel_directory_veiligthuis(r->dir) : NULL;
        if (vt && vt[0]) {
            add(r, out, env, vt, id, NULL);
        } else { /* a report that goes nowhere: the sender and the operator hear of it */
            refuse(out, "region.veiligthuis", "", rule, "no_veiligthuis_in_directory");
            out->no_veiligthuis = 1;
        }
        break;
    }
    case T_LEERPLICHT: leerplicht(r, out, env, id); break;
    case T_REFERRER:
        add(r, out, env,
            routing_recall(txn, r->dbi_referrals, schakel_body_bytes(env, "referral_id"), env->subject), id,
            NULL);
        break;
    case T_REPORTER:
        add(r, out, env,
            routing_recall(txn, r->dbi_reports, schakel_body_bytes(env, "report_id"), env->subject), id,
            NULL);
        break;
    case T_FIELD:
        snprintf(field, sizeof field, "%s.%s", schakel_event_type_name(env->type), rule->field);
        add(r, out, env, schakel_body_string(env, rule->field), id, field);
        break;
    case T_SCHOOL: {
        const schakel_school_t *sc = child_school(r, env);
        add(r, out, env, sc ? sc->org : NULL, id, "school");
        break;
    }
    case T_PARTICIPANTS:
        if (env->type != SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_MEETING) break;
        for (size_t i = 0; i < env->meeting->n_participant_orgs; i++) {
            snprintf(field, sizeof field, "meeting.participant_orgs[%zu]", i);
            add(r, out, env, env->meeting->participant_orgs[i], id, field);
        }
        break;
    case T_REFERRAL_LOOP: referral_loop(r, txn, env, id, out); break;
    case T_HANDOVER_SIDES: handover_sides(r, txn, env, id, out); break;
    case T_REQUESTER: {
        size_t n;
        add(r, out, env,
            routing_recall_flow(txn, r->dbi_flows, 'M', schakel_body_bytes(env, "request_id"), env->subject,
                                &n),
            id, NULL);
        break;
    }
    }
}
