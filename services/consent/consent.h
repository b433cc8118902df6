/* schakel-consent: may they know? For every recipient a routing decision
 * names, the consent engine decides, and publishes a ConsentDecision that
 * the broker acts on:
 *   deliver      on a legal basis that needs no consent (coded rules,
 *                below), or on a consent that covers it;
 *   notice_only  a verwijsindex match, never for a routed recipient:
 *                when a second organisation signals about a child, each
 *                signaller hears that the other signalled and whom to
 *                contact, nothing more (the match index, match.c);
 *   hold         no consent yet: released the moment one arrives, expired
 *                after the policy's hold time with a notice to the sender;
 *   deny         no ground at all (the sender is told).
 *
 * Legal bases, coded here because they are law, not policy:
 *   legal/own-organisation       the recipient is the publisher itself
 *   legal/anonymous              the event names no child
 *   legal/meldcode-report        a veiligthuis_report to Veilig Thuis (the
 *                                family still to be told unless the parents
 *                                were informed)
 *   legal/meldcode-report-not-informed
 *                                the same, the parents not told on a ground
 *                                of the meldcode (not_informed_reason)
 *   legal/meldcode-report-reminder
 *                                the feedback loop's reminder to the Veilig
 *                                Thuis that has that report
 *   (meldcode step 2 reaches Veilig Thuis only as an anonymous
 *   consultation: legal/anonymous)
 *   legal/veiligthuis-feedback   Veilig Thuis's feedback to the reporter
 *   legal/leerplicht             a school's absence report to leerplicht
 *   verwijsindex/match           a signal about a child another
 *                                organisation signalled about in the last
 *                                two years (Jeugdwet 7.1.1.1 ff): a notice
 *                                to both, once per pair
 * Consent rules:
 *   consent/specific             a consent of this child for this
 *                                recipient (organisation or kind), this
 *                                purpose, these categories, valid today,
 *                                given by whom the child's age requires
 *                                (under 12: parents, one parent or a
 *                                guardian; 12-15: the youth with the
 *                                parents; 16-17: the youth alone; 18+:
 *                                the student)
 *   consent/referral-loop        news about a referral (received, intake,
 *                                status, reminders) between its referrer
 *                                and its receivers, on the ground the
 *                                referral itself was delivered on
 * Consent given or withdrawn goes to whom it names, on that consent.
 * Withdrawal takes effect at once for everything not yet delivered.
 *
 * Policy file (data):
 *   {"version": 1, "hold_days": 20,
 *    "without_consent": {"signal": "hold", "referral": "hold", "*": "deny"}}
 * Values are "hold" or "deny"; "notice" is refused (signals reach other
 * signallers through the match index, on no policy).
 */
#ifndef SCHAKEL_CONSENT_H
#define SCHAKEL_CONSENT_H

#include <stddef.h>

#include "service.h"

typedef struct schakel_consent schakel_consent_t;

schakel_consent_t *schakel_consent_new(const char *org_id, const char *policy_json, size_t len, char *why);
void schakel_consent_destroy(schakel_consent_t **self_p);

/* Makes the policy in text the engine's (engine: a schakel_consent_t), as
 * a rules_update on the log does; 0, or an error naming the field in why
 * and the policy in force unchanged. */
int schakel_consent_install(void *engine, const char *text, size_t len, char *why);

/* SHA-256 of the policy text and the version of the coded rules. */
const uint8_t *schakel_consent_policy(const schakel_consent_t *self);

/* The policy a fresh node starts with. */
const char *schakel_consent_default_policy(void);

extern const schakel_engine_ops_t schakel_consent_ops;

#endif
