/* Referral and signal loops: opened by the referral (or a signal that asks
 * for follow-up), delivered when the consent service lets the receiver
 * have it (the clock starts), and moved along
 *   sent -> received -> first contact -> help started | waiting list |
 *                                        declined | redirected -> closed
 * by the receiver's events that carry the loop's referral_id
 * (feedback_on_loop_event). Each step is stored (feedback.c) and told to
 * the referrer (feedback_notice.c). Reports, handovers and MAZL requests
 * are opened and delivered here too; what moves them is in
 * feedback_flows.c. */
#include <stdio.h>
#include <string.h>

#include "bytes.h"
#include "calendar.h"
#include "feedback_impl.h"
#include "logging.h"

/* How far a state is along the loop; the four outcomes after first
 * contact share a rank, so any of them may follow another. */
static int state_rank(int state)
{
    switch (state) {
    case SCHAKEL_LOOP(SENT): return 1;
    case SCHAKEL_LOOP(RECEIVED): return 2;
    case SCHAKEL_LOOP(FIRST_CONTACT): return 3;
    case SCHAKEL_LOOP(CLOSED): return 5;
    default: return 4;
    }
}

/* How far a loop has come: a new receiver after a redirect starts over. */
int feedback_rank(const loop_t *l)
{
    return (l->flags & F_REDIRECTED) && l->state == SCHAKEL_LOOP(REDIRECTED) ? 1 : state_rank(l->state);
}

/* Sets the clock for a (new) receiver, from day on. */
static void start_clock(schakel_feedback_t *f, loop_t *l, const char *receiver, int32_t day)
{
    snprintf(l->receiver, sizeof l->receiver, "%s", receiver);
    l->receiver_kind = feedback_kind_of(f, receiver);
    int k = l->receiver_kind > 0 && l->receiver_kind < SCHAKEL_ORG_KINDS ? l->receiver_kind : 0;
    l->delivered_day = day;
    if (l->origin == ORIGIN_REPORT) { /* one step: the decision, told to the reporter */
        l->due_received = l->due_first_contact =
            schakel_add_working_days(feedback_decree(f), day, VT_DECISION_DAYS);
    } else {
        const deadline_t *d = &f->deadlines[l->origin][k];
        l->due_received = schakel_add_working_days(feedback_decree(f), day, d->received);
        l->due_first_contact = schakel_add_working_days(feedback_decree(f), day, d->first_contact);
    }
    l->flags = (uint8_t)((l->flags & F_REDIRECTED) | F_DELIVERED);
}

/* A receiver's intake redirected the loop to org: org is the receiver
 * from now on, and its clock starts when the consent service delivers it
 * that intake (feedback_on_delivered; until then the loop has no clock,
 * as a referral that is held). The intake's seq finds the loop. */
static int redirect(schakel_feedback_t *f, MDB_txn *txn, const uint8_t key[16], loop_t *l, const char *org,
                    uint64_t seq)
{
    uint8_t sk[8];
    snprintf(l->receiver, sizeof l->receiver, "%s", org);
    l->receiver_kind = feedback_kind_of(f, org);
    l->flags = F_REDIRECTED;
    schakel_put_be64(sk, seq);
    return schakel_kv_put(txn, f->by_event, sk, 8, key, 16);
}

/* Moves the loop to state when that is a step forward; records it and
 * tells the referrer. Returns 0, or 1 when it was no step. */
static int move(schakel_feedback_t *f, MDB_txn *txn, schakel_emit_t *out, const uint8_t key[16], loop_t *l,
                int state, const schakel_logrec_t *rec, int *rc)
{
    int from = feedback_rank(l), to = state_rank(state);
    if (!l->open || (to < from) || (to == from && (to != 4 || state == l->state))) return 1;
    int32_t day = schakel_day_of(rec->now);
    /* help started or a waiting list with no first contact said: someone
     * is on it all the same, and a referrer without consent for feedback
     * hears only that (docs/feedback.md) */
    int implied_contact =
        !l->first_contact_day && (state == SCHAKEL_LOOP(HELP_STARTED) || state == SCHAKEL_LOOP(WAITING_LIST));
    if (to >= 2 && !l->received_day) l->received_day = day;
    if (to >= 3 && !l->first_contact_day && state != SCHAKEL_LOOP(DECLINED) &&
        state != SCHAKEL_LOOP(REDIRECTED))
        l->first_contact_day = day;
    if (state == SCHAKEL_LOOP(HELP_STARTED) && !l->help_day) l->help_day = day;
    if (state == SCHAKEL_LOOP(WAITING_LIST)) {
        l->waiting_day = day;
        l->due_bridging = schakel_add_working_days(feedback_decree(f), day, f->bridging_within);
    }
    if (state == SCHAKEL_LOOP(CLOSED)) {
        l->closed_day = day;
        l->open = 0;
    }
    l->state = (uint8_t)state;
    if (state != SCHAKEL_LOOP(REDIRECTED)) l->flags &= (uint8_t)~F_REDIRECTED;
    /* the receiver tells the family of each step it reaches (referrals and
     * signals: Veilig Thuis tells the family by its own protocol, and a
     * handover or MAZL request is no help the family waits on) */
    if (l->origin < ORIGINS && l->receiver[0] && state >= SCHAKEL_LOOP(RECEIVED) && state < STEPS &&
        !l->family_due[state])
        l->family_due[state] = schakel_add_working_days(feedback_decree(f), day, f->family_within);
    *rc = feedback_add_step(f, txn, key, rec->seq, state, day, rec->env->type, rec->env->source_org);
    if (*rc == 0 && implied_contact) *rc = feedback_notify(f, out, key, l, SCHAKEL_LOOP(FIRST_CONTACT), rec);
    if (*rc == 0) *rc = feedback_notify(f, out, key, l, state, rec);
    return 0;
}

/* Referral and signal loops share one key space (a signal's id is an
 * event id); a report's, a handover's and a MAZL request's ids are keys of their own,
 * so that one cannot reach another kind of loop by reusing its id. */
static void loop_key(uint8_t key[16], const uint8_t id[16], const char *referrer, int origin)
{
    const char *label = origin == ORIGIN_HANDOVER ? "schakel/v1/feedback/handover"
                        : origin == ORIGIN_MAZL   ? "schakel/v1/feedback/mazl"
                        : origin == ORIGIN_REPORT ? "schakel/v1/feedback/report"
                                                  : "schakel/v1/feedback/loop";
    schakel_derive_id(key, label, id, (size_t)16, referrer, strlen(referrer), NULL);
}

/* Which loops an event may move: referral and signal loops (0), or the
 * loops of reports, handovers or MAZL requests (their origin). */
static int loop_class(int origin)
{
    return origin >= ORIGINS ? origin : 0;
}

int feedback_open_loop(schakel_feedback_t *f, MDB_txn *txn, const ProtobufCBinaryData *rid, int origin,
                       const schakel_logrec_t *rec)
{
    const schakel_envelope_t *e = rec->env;
    loop_t l;
    uint8_t key[16], sk[8], rk[32];
    if (!rid || rid->len != 16) return 0;
    loop_key(key, rid->data, e->source_org, origin);
    if (feedback_load_loop(f, txn, key, &l) == 0) return 0; /* the referrer's first one counts */
    const ProtobufCBinaryData *id = &(ProtobufCBinaryData){16, key};
    memset(&l, 0, sizeof l);
    memcpy(l.referral_id, rid->data, 16);
    l.version = LOOP_VERSION;
    l.origin = (uint8_t)origin;
    l.state = SCHAKEL_LOOP(SENT);
    l.open = 1;
    snprintf(l.referrer, sizeof l.referrer, "%s", e->source_org);
    snprintf(l.subject, sizeof l.subject, "%s", e->subject);
    if (origin == ORIGIN_HANDOVER) { /* its receiver is named; the clock starts on delivery */
        snprintf(l.receiver, sizeof l.receiver, "%s", e->handover->to_org);
        l.receiver_kind = feedback_kind_of(f, l.receiver);
    }
    l.sent_day = schakel_day_of(rec->now);
    memcpy(l.event_id, e->event_id.data, 16);
    l.event_seq = rec->seq;
    int rc = feedback_save_loop(f, txn, id->data, &l);
    schakel_put_be64(sk, rec->seq);
    memcpy(rk, rid->data, 16);
    memcpy(rk + 16, key, 16);
    if (rc == 0) rc = schakel_kv_put(txn, f->by_event, sk, 8, key, 16);
    if (rc == 0) rc = schakel_kv_put(txn, f->by_referral, rk, 32, "", 0);
    if (rc == 0)
        rc = feedback_add_step(f, txn, id->data, rec->seq, SCHAKEL_LOOP(SENT), l.sent_day, e->type,
                               e->source_org);
    return rc;
}

/* A redirect's intake that will not reach the new receiver: its hold
 * expired, or it was denied (consent decision about the intake, for the
 * loop's new receiver). The loop goes back to the organisation that
 * redirected (the decision's inform_org: the intake's sender), as a
 * redirect with no new receiver, its clock as it was; and the referrer,
 * whom the consent service does not tell, gets the stalled-handover
 * alert (docs/feedback.md, "Redirected"). */
static int redirect_lost(schakel_feedback_t *f, MDB_txn *txn, schakel_emit_t *out, const uint8_t key[16],
                         loop_t *l, const schakel_logrec_t *rec)
{
    const Schakel__V1__ConsentDecision *d = rec->env->consent_decision;
    if (!(l->flags & F_REDIRECTED) || strcmp(d->recipient_org, l->receiver) != 0 ||
        !memcmp(l->event_id, d->about_event_id.data, 16) || !d->inform_org || !d->inform_org[0] ||
        !strcmp(d->inform_org, l->receiver))
        return 0;
    snprintf(l->receiver, sizeof l->receiver, "%s", d->inform_org);
    l->receiver_kind = feedback_kind_of(f, l->receiver);
    l->flags = (uint8_t)((l->flags & (uint8_t)~F_REDIRECTED) | F_DELIVERED);
    int rc = feedback_stalled(f, out, key, l, SCHAKEL_LOOP(RECEIVED), schakel_day_of(rec->now), rec->now);
    return rc ? rc : feedback_save_loop(f, txn, key, l);
}

/* The consent service delivered the referral (or signal): the receiver is
 * known and the clock starts. Or it let a redirect's intake go
 * (redirect_lost). */
int feedback_on_delivered(schakel_feedback_t *f, MDB_txn *txn, const schakel_logrec_t *rec,
                          schakel_emit_t *out)
{
    const Schakel__V1__ConsentDecision *d = rec->env->consent_decision;
    MDB_val v;
    loop_t l;
    uint8_t sk[8];
    schakel_put_be64(sk, d->about_seq);
    int lost = d->outcome == SCHAKEL__V1__CONSENT_OUTCOME__CONSENT_OUTCOME_EXPIRED ||
               d->outcome == SCHAKEL__V1__CONSENT_OUTCOME__CONSENT_OUTCOME_DENY;
    if ((d->outcome != SCHAKEL__V1__CONSENT_OUTCOME__CONSENT_OUTCOME_DELIVER && !lost) ||
        d->about_event_id.len != 16 ||
        feedback_kind_of(f, rec->env->source_org) != SCHAKEL__V1__ORG_KIND__ORG_KIND_SERVICE ||
        schakel_kv_get(txn, f->by_event, sk, 8, &v) != 0 || v.mv_size != 16)
        return 0;
    uint8_t key[16];
    memcpy(key, v.mv_data, 16);
    if (feedback_load_loop(f, txn, key, &l) != 0 || (l.flags & F_DELIVERED) || !l.open ||
        !strcmp(d->recipient_org, l.referrer))
        return 0;
    if (lost) return redirect_lost(f, txn, out, key, &l, rec);
    /* the event that opened the loop, or a redirect's intake to the new
     * receiver (the loop's receiver since the redirect) */
    if (memcmp(l.event_id, d->about_event_id.data, 16) != 0 &&
        (!(l.flags & F_REDIRECTED) || strcmp(d->recipient_org, l.receiver) != 0))
        return 0;
    /* a report's loop is with Veilig Thuis, whoever else may have it */
    if (l.origin == ORIGIN_REPORT &&
        feedback_kind_of(f, d->recipient_org) != SCHAKEL__V1__ORG_KIND__ORG_KIND_VEILIGTHUIS)
        return 0;
    if (IS_FLOW(l.origin)) {
        /* the handover's named receiver, the MAZL request's GGD: an
         * addressee beside them does not start the clock */
        if (l.origin == ORIGIN_HANDOVER
                ? strcmp(d->recipient_org, l.receiver) != 0
                : feedback_kind_of(f, d->recipient_org) != SCHAKEL__V1__ORG_KIND__ORG_KIND_GGD)
            return 0;
        int32_t day = schakel_day_of(rec->now);
        snprintf(l.receiver, sizeof l.receiver, "%s", d->recipient_org);
        l.receiver_kind = feedback_kind_of(f, l.receiver);
        l.delivered_day = day;
        l.due_received = schakel_add_working_days(
            feedback_decree(f), day, l.origin == ORIGIN_HANDOVER ? f->handover_within : f->mazl_within);
        l.flags |= F_DELIVERED;
    } else {
        start_clock(f, &l, d->recipient_org, schakel_day_of(rec->now));
    }
    /* decided by the consent service, received by the recipient */
    int rc = feedback_add_step_to(f, txn, key, rec->seq, SCHAKEL_LOOP(SENT), l.delivered_day, rec->env->type,
                                  rec->env->source_org, d->recipient_org);
    return rc ? rc : feedback_save_loop(f, txn, key, &l);
}

/* The open loop with id rid that org takes part in (as its receiver, or
 * its referrer), among the loops of reports to Veilig Thuis (reports 1;
 * about subject, unless NULL) or among the others (0): 1 and its key; 0
 * when no such open loop has that id; -1 when open loops have it but org
 * is in none of them. When org is in several (an id another organisation
 * learnt, to the same receiver for the same child), the one opened first
 * on the log (lowest event_seq) is it, as routing keeps the first: key
 * order says nothing. With closed_too, closed loops count as well (the
 * family may be told of the closing after it). */
int feedback_find_loop(schakel_feedback_t *f, MDB_txn *txn, const uint8_t rid[16], const char *org,
                       int closed_too, int cls, const char *subject, uint8_t key[16], loop_t *l)
{
    MDB_cursor *cur;
    if (mdb_cursor_open(txn, f->by_referral, &cur) != 0) return 0;
    MDB_val k = {16, (void *)rid}, v;
    loop_t c;
    int found = 0;
    for (int g = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); g == 0;
         g = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size != 32 || memcmp(k.mv_data, rid, 16) != 0) break;
        if (feedback_load_loop(f, txn, (const uint8_t *)k.mv_data + 16, &c) != 0 ||
            (!c.open && !closed_too) || loop_class(c.origin) != cls ||
            (subject && strcmp(subject, c.subject) != 0))
            continue;
        if (strcmp(org, c.referrer) != 0 && (!c.receiver[0] || strcmp(org, c.receiver) != 0)) {
            if (!found) found = -1;
            continue;
        }
        if (found == 1 && c.event_seq >= l->event_seq) continue;
        memcpy(key, (const uint8_t *)k.mv_data + 16, 16);
        *l = c;
        found = 1;
    }
    mdb_cursor_close(cur);
    return found;
}

/* An event about a loop from one of its organisations. */
int feedback_on_loop_event(schakel_feedback_t *f, MDB_txn *txn, const schakel_logrec_t *rec,
                           schakel_emit_t *out)
{
    const schakel_envelope_t *e = rec->env;
    const ProtobufCBinaryData *rid = schakel_body_bytes(e, "referral_id");
    loop_t l;
    uint8_t keybuf[16];
    if (!rid || rid->len != 16) return 0;
    /* the child too: another organisation that reuses a referral id it
     * learnt, for a child of its own, to the same receiver, must not get
     * this child's steps (nor its receiver's steps about that child move
     * this loop) */
    int found =
        feedback_find_loop(f, txn, rid->data, e->source_org, e->type == SCHAKEL_EVENT(FAMILY_INFORMED), 0,
                           e->subject && e->subject[0] ? e->subject : NULL, keybuf, &l);
    if (found <= 0) {
        if (found < 0) { /* loops with that id exist, but this organisation is in none */
            f->ignored++;
            schakel_log(SCHAKEL_LOG_WARN, "feedback",
                        "event=loop_event_ignored seq=%llu reason=not_in_loop ignored=%llu",
                        (unsigned long long)rec->seq, (unsigned long long)f->ignored);
        }
        return 0;
    }
    const uint8_t *key = keybuf;
    int from_receiver = l.receiver[0] && !strcmp(e->source_org, l.receiver);
    int from_referrer = !strcmp(e->source_org, l.referrer);
    int32_t day = schakel_day_of(rec->now);
    int rc = 0;
    switch ((int)e->type) {
    case SCHAKEL_EVENT(REFERRAL_RECEIVED):
        if (from_receiver) move(f, txn, out, key, &l, SCHAKEL_LOOP(RECEIVED), rec, &rc);
        break;
    case SCHAKEL_EVENT(FIRST_CONTACT):
        if (from_receiver) move(f, txn, out, key, &l, SCHAKEL_LOOP(FIRST_CONTACT), rec, &rc);
        break;
    case SCHAKEL_EVENT(INTAKE): {
        if (!from_receiver) break;
        const Schakel__V1__Intake *in = e->intake;
        switch (in->outcome) {
        case SCHAKEL__V1__INTAKE_OUTCOME__INTAKE_OUTCOME_SHORT_HELP:
        case SCHAKEL__V1__INTAKE_OUTCOME__INTAKE_OUTCOME_PREVENTIVE_SERVICES:
            move(f, txn, out, key, &l, SCHAKEL_LOOP(HELP_STARTED), rec, &rc);
            break;
        case SCHAKEL__V1__INTAKE_OUTCOME__INTAKE_OUTCOME_NO_HELP_NEEDED:
            move(f, txn, out, key, &l, SCHAKEL_LOOP(CLOSED), rec, &rc);
            break;
        case SCHAKEL__V1__INTAKE_OUTCOME__INTAKE_OUTCOME_DECLINED:
            if (move(f, txn, out, key, &l, SCHAKEL_LOOP(DECLINED), rec, &rc) == 0 && rc == 0)
                rc = feedback_stalled(f, out, key, &l, SCHAKEL_LOOP(HELP_STARTED), day, rec->now);
            break;
        case SCHAKEL__V1__INTAKE_OUTCOME__INTAKE_OUTCOME_REDIRECTED:
            if (move(f, txn, out, key, &l, SCHAKEL_LOOP(REDIRECTED), rec, &rc) != 0 || rc) break;
            if (in->redirected_to[0] && strcmp(in->redirected_to, l.receiver) != 0) {
                rc = redirect(f, txn, key, &l, in->redirected_to, rec->seq);
            } else {
                rc = feedback_stalled(f, out, key, &l, SCHAKEL_LOOP(RECEIVED), day, rec->now);
            }
            break;
        default: /* specialised care: the waiting list says what comes */
            move(f, txn, out, key, &l, SCHAKEL_LOOP(FIRST_CONTACT), rec, &rc);
            break;
        }
        break;
    }
    case SCHAKEL_EVENT(WAITING_LIST):
        if (!from_receiver) break;
        if (e->waiting_list->status == SCHAKEL__V1__WAITING_STATUS__WAITING_STATUS_PLACED) {
            move(f, txn, out, key, &l, SCHAKEL_LOOP(WAITING_LIST), rec, &rc);
        } else if (e->waiting_list->status == SCHAKEL__V1__WAITING_STATUS__WAITING_STATUS_STARTED) {
            move(f, txn, out, key, &l, SCHAKEL_LOOP(HELP_STARTED), rec, &rc);
        } else if (e->waiting_list->status == SCHAKEL__V1__WAITING_STATUS__WAITING_STATUS_LEFT) {
            if (move(f, txn, out, key, &l, SCHAKEL_LOOP(DECLINED), rec, &rc) == 0 && rc == 0)
                rc = feedback_stalled(f, out, key, &l, SCHAKEL_LOOP(HELP_STARTED), day, rec->now);
        }
        break;
    case SCHAKEL_EVENT(BRIDGING_CARE): l.flags |= F_BRIDGING; break;
    case SCHAKEL_EVENT(CASE_LEAD): snprintf(l.lead, sizeof l.lead, "%s", e->case_lead->lead_org); break;
    case SCHAKEL_EVENT(FEEDBACK_STATUS):
        /* a step of a referral's loop only: not a report loop's decision,
         * nor a reminder's "family not told" (events.md, LoopState) */
        if (from_receiver && e->feedback_status->state >= SCHAKEL_LOOP(RECEIVED) &&
            e->feedback_status->state <= SCHAKEL_LOOP(CLOSED)) {
            int st = e->feedback_status->state;
            if (move(f, txn, out, key, &l, st, rec, &rc) == 0 && rc == 0 &&
                (st == SCHAKEL_LOOP(DECLINED) || st == SCHAKEL_LOOP(REDIRECTED)))
                rc = feedback_stalled(f, out, key, &l, SCHAKEL_LOOP(HELP_STARTED), day, rec->now);
        }
        break;
    case SCHAKEL_EVENT(CLOSURE):
        if (from_receiver || from_referrer) move(f, txn, out, key, &l, SCHAKEL_LOOP(CLOSED), rec, &rc);
        break;
    case SCHAKEL_EVENT(FAMILY_INFORMED): {
        /* the receiver's word that it told the family; the first counts */
        int st = e->family_informed->step;
        if (!from_receiver || st < SCHAKEL_LOOP(RECEIVED) || st >= STEPS || l.family_on[st]) break;
        int32_t said = schakel_date_days(e->family_informed->informed_on);
        l.family_on[st] = said > 0 ? said : day;
        break;
    }
    default: break;
    }
    return rc ? rc : feedback_save_loop(f, txn, key, &l);
}
