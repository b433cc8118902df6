/* schakel-feedback: no referral disappears, and the school hears back.
 * Keeps a loop per referral (and per signal that asks for follow-up):
 *
 *   sent -> received -> first contact -> help started | waiting list |
 *                                        declined | redirected -> closed
 *
 * Every transition comes from an event on the log: the referral itself,
 * the consent decision that delivered it (which names the receiver and
 * starts the clock), and the receiver's referral_received, first_contact,
 * intake, waiting_list, bridging_care, case_lead, feedback_status and
 * closure events that carry the loop's referral_id (for a signal: the
 * signal's event id).
 *
 * Each transition sends the referrer a FeedbackStatus notice (state, date,
 * lead organisation; no content); the consent service delivers those past
 * received and first contact only on a consent for feedback that names the
 * referrer (docs/feedback.md). Deadlines are in working days from the
 * delivery (weekends, the holidays of the Algemene termijnenwet and the
 * days a royal decree equates off: the directory's "holidays"), per kind of receiver
 * and kind of loop; an overdue step earns the receiver a LoopReminder, and
 * escalate_after working days later its escalation contact an escalation
 * (without the child's subject). A loop declined or redirected with no new
 * receiver, or on a waiting list with no bridging care within
 * bridging_within working days, raises a stalled-handover alert to the
 * referrer. The receiver tells the family of every step it reaches and says
 * so with family_informed (step, date, how); a step the family was not told
 * of within family_informed_within working days earns the receiver a
 * LoopReminder whose waiting_for is FAMILY_INFORMED_OF_<step>. Time is the
 * log's, so replay gives the same loops and events.
 *
 * A report to Veilig Thuis (veiligthuis_report) is a loop too, from the
 * reporter to the Veilig Thuis it is delivered to: Veilig Thuis decides
 * within 5 working days whether and how it follows the report up, and
 * tells the reporter (veiligthuis_feedback); past that, a reminder to
 * Veilig Thuis and later an escalation, as above. The deadline is code
 * (Handelingsprotocol Veilig Thuis), not policy.
 *
 * A warm handover is a loop too, closed when both sides published their
 * handover_confirmed; a MAZL request one closed by the GGD's mazl_advice.
 * handover_within / mazl_advice_within working days (10) after delivery,
 * the side that has not confirmed, or the GGD, gets one LoopReminder.
 *
 * Policy file:
 *   {"version": 1,
 *    "deadlines": {"referral": {"*": {"received": 2, "first_contact": 5},
 *                               "ppo": {"first_contact": 10}},
 *                  "signal": {"*": {"received": 2, "first_contact": 5}}},
 *    "escalate_after": 2, "bridging_within": 5, "family_informed_within": 5,
 *    "handover_within": 10, "mazl_advice_within": 10}
 */
#ifndef SCHAKEL_FEEDBACK_H
#define SCHAKEL_FEEDBACK_H

#include <jansson.h>
#include <stddef.h>

#include "service.h"

typedef struct schakel_feedback schakel_feedback_t;

schakel_feedback_t *schakel_feedback_new(const char *org_id, const char *policy_json, size_t len, char *why);
void schakel_feedback_destroy(schakel_feedback_t **self_p);

const char *schakel_feedback_default_policy(void);

/* Makes the policy in text the engine's (engine: a schakel_feedback_t),
 * as a rules_update on the log does; 0, or an error naming the field in
 * why and the policy in force unchanged. */
int schakel_feedback_install(void *engine, const char *text, size_t len, char *why);

extern const schakel_engine_ops_t schakel_feedback_ops;

/* ---- reading a feedback service's state (schakel loops) ---- */

/* The open and overdue loops an organisation takes part in (as referrer or
 * receiver), by referral id, never by name or case reference (the service
 * keeps none); or with org NULL, all. A JSON array; NULL when state_dir
 * holds no feedback state. */
json_t *schakel_feedback_loops(const char *state_dir, const char *org, char *why);

/* One loop and its history (every transition: state, day, event, seq).
 * When organisations used the same referral id for loops of their own,
 * the first that org (NULL: any) takes part in is shown, and
 * "other_loops_with_this_id" counts the rest. */
json_t *schakel_feedback_loop(const char *state_dir, const uint8_t referral_id[16], const char *org,
                              char *why);

/* Aggregates only: per receiving organisation the open and overdue loops,
 * working days from delivery to first contact and to start of help
 * (median, p90) and the share of first contacts within the deadline.
 * Counts from 1 to 4 are shown as "<5": small numbers identify children. */
json_t *schakel_feedback_figures(const char *state_dir, char *why);

/* The kinds of loop the feedback service follows, by their origin code
 * (0..4), as schakel_feedback_deadline_check names them. */
extern const char *const schakel_feedback_origins[5];

/* Every loop against its deadlines, as the daily scan sees them (the
 * soak of `schakel demo`): per origin ("referral", "signal", "report",
 * "handover", "mazl") exact counts of the loops closed, not delivered (no
 * clock), redirected with no new receiver and the referrer alerted (a
 * redirect that was never delivered, or named nobody), open within every
 * deadline, past one with the reminder (or the
 * stalled-handover alert) the scan owes them (of which escalated, and
 * alerted), and past one without it: the last is a fault. "today" is the
 * log's day the service last saw. Counts, no ids: but exact, so meant for
 * synthetic data, not for operators' figures. */
json_t *schakel_feedback_deadline_check(const char *state_dir, char *why);

#endif
