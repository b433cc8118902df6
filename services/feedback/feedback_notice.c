/* What the feedback engine publishes, the end of its part of the data
 * path: a feedback_status to the referrer for every step of a loop, a
 * loop_reminder to a late receiver (an escalation to its escalation
 * contact, a stalled-handover alert to the referrer). Each id is derived
 * from what it is about and the time is the log's, so a replay publishes
 * the same events. The service runner publishes them (schakel_emit). */
#include <string.h>

#include "calendar.h"
#include "feedback_impl.h"

void feedback_envelope(schakel_feedback_t *f, Schakel__V1__Envelope *e, uint8_t id[16], int64_t now,
                       const char *subject, int basis)
{
    schakel__v1__envelope__init(e);
    e->event_id.data = id;
    e->event_id.len = 16;
    e->source_org = f->org;
    e->occurred_at = now;
    e->subject = (char *)subject;
    e->purpose = SCHAKEL__V1__PURPOSE__PURPOSE_FEEDBACK;
    e->legal_basis = basis;
}

/* The referrer hears of every transition: state, date, who leads. */
int feedback_notify(schakel_feedback_t *f, schakel_emit_t *out, const uint8_t key[16], const loop_t *l,
                    int state, const schakel_logrec_t *rec)
{
    char on[11];
    schakel_date_of(rec->now, on);
    uint8_t id[16], st = (uint8_t)state;
    const ProtobufCBinaryData *cause = &rec->env->event_id;
    schakel_derive_id(id, "schakel/v1/feedback/status", key, (size_t)16, &st, (size_t)1, cause->data,
                      cause->len, NULL);
    Schakel__V1__FeedbackStatus s = SCHAKEL__V1__FEEDBACK_STATUS__INIT;
    s.referral_id.data = (uint8_t *)l->referral_id;
    s.referral_id.len = 16;
    s.state = state;
    s.on = on;
    s.lead_org = (char *)(l->lead[0] ? l->lead : l->receiver);
    Schakel__V1__Envelope e;
    feedback_envelope(f, &e, id, rec->now, l->subject, SCHAKEL__V1__LEGAL_BASIS__LEGAL_BASIS_CONSENT);
    e.causation_id = *cause;
    e.type = SCHAKEL_EVENT(FEEDBACK_STATUS);
    e.body_case = SCHAKEL__V1__ENVELOPE__BODY_FEEDBACK_STATUS;
    e.feedback_status = &s;
    return schakel_emit(out, &e);
}

/* A reminder, an escalation or a stalled-handover alert. An escalation
 * goes to someone who need not know the child: it names the referral and
 * the late organisation, not the subject. */
int feedback_remind(schakel_feedback_t *f, schakel_emit_t *out, const uint8_t key[16], const loop_t *l,
                    int level, int waiting_for, int32_t due_day, const char *to, int64_t now)
{
    if (!to || !to[0]) return 0;
    char due[11];
    schakel_date_from_days(due_day, due);
    uint8_t id[16], lv = (uint8_t)level, wf = (uint8_t)waiting_for;
    schakel_derive_id(id, "schakel/v1/feedback/reminder", key, (size_t)16, &lv, (size_t)1, &wf, (size_t)1,
                      due, strlen(due), l->receiver, strlen(l->receiver), NULL);
    Schakel__V1__LoopReminder r = SCHAKEL__V1__LOOP_REMINDER__INIT;
    r.referral_id.data = (uint8_t *)l->referral_id;
    r.referral_id.len = 16;
    r.level = level;
    r.waiting_for = waiting_for;
    r.due_on = due;
    r.to_org = (char *)to;
    r.overdue_org = (char *)l->receiver;
    int escalation = level == SCHAKEL_LEVEL(ESCALATION);
    Schakel__V1__Envelope e;
    feedback_envelope(f, &e, id, now, escalation ? "" : l->subject,
                      escalation                   ? SCHAKEL__V1__LEGAL_BASIS__LEGAL_BASIS_ANONYMOUS
                      : l->origin == ORIGIN_REPORT ? SCHAKEL__V1__LEGAL_BASIS__LEGAL_BASIS_MELDCODE
                                                   : SCHAKEL__V1__LEGAL_BASIS__LEGAL_BASIS_CONSENT);
    e.type = SCHAKEL_EVENT(LOOP_REMINDER);
    e.body_case = SCHAKEL__V1__ENVELOPE__BODY_LOOP_REMINDER;
    e.loop_reminder = &r;
    return schakel_emit(out, &e);
}

/* A handover that let go: the referrer is alerted once. */
int feedback_stalled(schakel_feedback_t *f, schakel_emit_t *out, const uint8_t key[16], loop_t *l,
                     int waiting_for, int32_t day, int64_t now)
{
    if (l->flags & F_STALLED) return 0;
    l->flags |= F_STALLED;
    return feedback_remind(f, out, key, l, SCHAKEL_LEVEL(STALLED), waiting_for, day, l->referrer, now);
}
