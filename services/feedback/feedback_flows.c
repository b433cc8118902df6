/* The loops that are not a referral's: a report to Veilig Thuis, moved by
 * Veilig Thuis's feedback to the reporter (feedback_on_report_feedback);
 * a warm handover, closed when both sides confirmed, and a MAZL request,
 * closed by the GGD's advice (feedback_on_flow_event); and the one
 * reminder a handover or MAZL loop earns past its deadline
 * (feedback_flow_deadline, from the daily scan in feedback_deadlines.c).
 * They are opened and delivered like referrals, in feedback_loop.c. */
#include <string.h>

#include "calendar.h"
#include "feedback_impl.h"
#include "logging.h"

/* Veilig Thuis's feedback to the reporter moves the report's loop: "received"
 * is an acknowledgement and stops no clock; any decision on the follow-up
 * ends the loop (Veilig Thuis owes the reporter nothing more by a
 * deadline). Only the Veilig Thuis the report was delivered to, about the
 * report's own child, moves it; the reporter hears from Veilig Thuis
 * itself, so the loop sends no status of its own. */
int feedback_on_report_feedback(schakel_feedback_t *f, MDB_txn *txn, const schakel_logrec_t *rec)
{
    const schakel_envelope_t *e = rec->env;
    const Schakel__V1__VeiligThuisFeedback *fb = e->veiligthuis_feedback;
    uint8_t key[16];
    loop_t l;
    if (fb->report_id.len != 16) return 0;
    int found =
        feedback_find_loop(f, txn, fb->report_id.data, e->source_org, 0, ORIGIN_REPORT, e->subject, key, &l);
    if (found <= 0 || !(l.flags & F_DELIVERED) || strcmp(e->source_org, l.receiver) != 0) {
        if (found != 0) {
            f->ignored++;
            schakel_log(SCHAKEL_LOG_WARN, "feedback",
                        "event=loop_event_ignored seq=%llu reason=not_in_loop ignored=%llu",
                        (unsigned long long)rec->seq, (unsigned long long)f->ignored);
        }
        return 0;
    }
    int32_t day = schakel_day_of(rec->now);
    int state;
    switch (fb->outcome) {
    case SCHAKEL__V1__VEILIG_THUIS_OUTCOME__VT_OUTCOME_RECEIVED:
        if (l.state != SCHAKEL_LOOP(SENT)) return 0;
        state = SCHAKEL_LOOP(RECEIVED);
        l.received_day = day;
        break;
    case SCHAKEL__V1__VEILIG_THUIS_OUTCOME__VT_OUTCOME_CLOSED_NO_ACTION: state = SCHAKEL_LOOP(CLOSED); break;
    default: state = SCHAKEL_LOOP(VEILIGTHUIS_DECIDED); break;
    }
    if (state != SCHAKEL_LOOP(RECEIVED)) {
        if (!l.received_day) l.received_day = day;
        l.closed_day = day;
        l.open = 0;
    }
    l.state = (uint8_t)state;
    int rc = feedback_add_step(f, txn, key, rec->seq, state, day, e->type, e->source_org);
    return rc ? rc : feedback_save_loop(f, txn, key, &l);
}

/* A handover confirmed by one side (only by that side's organisation),
 * or a MAZL advice by the GGD the request was delivered to. The loop
 * closes when both sides confirmed, or with the advice. Neither sends a
 * feedback_status: the other side receives the event itself. */
int feedback_on_flow_event(schakel_feedback_t *f, MDB_txn *txn, const schakel_logrec_t *rec)
{
    const schakel_envelope_t *e = rec->env;
    int handover = e->type == SCHAKEL_EVENT(HANDOVER_CONFIRMED);
    const ProtobufCBinaryData *id = schakel_body_bytes(e, handover ? "handover_id" : "request_id");
    uint8_t key[16];
    loop_t l;
    if (!id || id->len != 16) return 0;
    /* about the loop's child only: an id learnt for one child moves
     * nothing of another's handover or request */
    int found =
        feedback_find_loop(f, txn, id->data, e->source_org, 0, handover ? ORIGIN_HANDOVER : ORIGIN_MAZL,
                           e->subject && e->subject[0] ? e->subject : NULL, key, &l);
    const char *reason = found < 0 ? "not_in_loop" : NULL;
    int32_t day = schakel_day_of(rec->now);
    int state = handover ? SCHAKEL_LOOP(HANDOVER_CONFIRMED) : SCHAKEL_LOOP(ADVICE_GIVEN);
    if (found > 0 && handover) {
        int side = e->handover_confirmed->side;
        int giving = side == SCHAKEL__V1__HANDOVER_SIDE__HANDOVER_SIDE_GIVING;
        if (strcmp(e->source_org, giving ? l.referrer : l.receiver) != 0) reason = "not_that_side";
        else if (giving && !l.received_day) l.received_day = day;
        else if (!giving && !l.first_contact_day) l.first_contact_day = day;
        else found = 0; /* said twice: no step */
    } else if (found > 0 && strcmp(e->source_org, l.receiver) != 0) {
        reason = "not_the_jeugdarts"; /* the requesting school cannot give the advice */
    }
    if (reason) {
        f->ignored++;
        schakel_log(SCHAKEL_LOG_WARN, "feedback", "event=loop_event_ignored seq=%llu reason=%s ignored=%llu",
                    (unsigned long long)rec->seq, reason, (unsigned long long)f->ignored);
        return 0;
    }
    if (found <= 0) return 0;
    if (!handover || (l.received_day && l.first_contact_day)) {
        state = SCHAKEL_LOOP(CLOSED);
        l.closed_day = day;
        l.open = 0;
    }
    l.state = (uint8_t)state;
    int rc = feedback_add_step(f, txn, key, rec->seq, state, day, e->type, e->source_org);
    return rc ? rc : feedback_save_loop(f, txn, key, &l);
}

/* A reminder in a handover or MAZL loop, to the side that is late. The
 * id names the side, as both sides of a handover may be reminded. */
static int remind_flow(schakel_feedback_t *f, schakel_emit_t *out, const uint8_t key[16], const loop_t *l,
                       int waiting_for, const char *to, int64_t now)
{
    char due[11];
    schakel_date_from_days(l->due_received, due);
    uint8_t id[16], wf = (uint8_t)waiting_for;
    schakel_derive_id(id, "schakel/v1/feedback/flow-reminder", key, (size_t)16, &wf, (size_t)1, due,
                      strlen(due), to, strlen(to), NULL);
    Schakel__V1__LoopReminder r = SCHAKEL__V1__LOOP_REMINDER__INIT;
    r.referral_id.data = (uint8_t *)l->referral_id;
    r.referral_id.len = 16;
    r.level = SCHAKEL_LEVEL(REMINDER);
    r.waiting_for = waiting_for;
    r.due_on = due;
    r.to_org = (char *)to;
    r.overdue_org = (char *)to;
    Schakel__V1__Envelope e;
    feedback_envelope(f, &e, id, now, l->subject, SCHAKEL__V1__LEGAL_BASIS__LEGAL_BASIS_CONSENT);
    e.type = SCHAKEL_EVENT(LOOP_REMINDER);
    e.body_case = SCHAKEL__V1__ENVELOPE__BODY_LOOP_REMINDER;
    e.loop_reminder = &r;
    return schakel_emit(out, &e);
}

/* A handover or MAZL loop past its deadline: once, a reminder to each
 * side that has not confirmed (handover), or to the jeugdarts (MAZL). */
int feedback_flow_deadline(schakel_feedback_t *f, schakel_emit_t *out, const uint8_t key[16], loop_t *l,
                           int32_t today, int64_t now)
{
    if (today <= l->due_received || (l->flags & F_REMIND_RECEIVED)) return 0;
    l->flags |= F_REMIND_RECEIVED;
    if (l->origin == ORIGIN_MAZL)
        return remind_flow(f, out, key, l, SCHAKEL_LOOP(ADVICE_GIVEN), l->receiver, now);
    int rc = 0;
    if (!l->received_day)
        rc = remind_flow(f, out, key, l, SCHAKEL_LOOP(HANDOVER_CONFIRMED), l->referrer, now);
    if (rc == 0 && !l->first_contact_day)
        rc = remind_flow(f, out, key, l, SCHAKEL_LOOP(HANDOVER_CONFIRMED), l->receiver, now);
    return rc;
}
