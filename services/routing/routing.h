/* schakel-routing: who should know about an event. Reads the log, applies
 * routing rules that are data (JSON, per event type) to the directory in
 * force on the log, and publishes a RoutingDecision naming each recipient
 * and the rule that chose it. Whether a recipient may know is the consent
 * service's question, not this one's.
 *
 * Rules file:
 *   {"version": 1,
 *    "rules": [
 *      {"id": "signal/school-smw", "on": ["signal"], "to": "school_team",
 *       "kinds": ["smw"]},
 *      {"id": "absence/leerplicht", "on": ["absence"],
 *       "when": {"leerplicht_report": true}, "to": "leerplicht"}]}
 *
 * "on": event type names, or "*". "when": body fields (JSON form) that must
 * equal the given values. "to", the target:
 *   addressees        the envelope's explicit addressees
 *   school_team       the team serving the child's school (envelope
 *                     "school", else the school that published), the
 *                     kinds listed in "kinds" (all when absent)
 *   home_wijkteam     the wijkteam of the child's home district (envelope
 *                     "district"), unless the school's directory entry
 *                     overrides it; the school's wijkteam when unknown
 *   referral_target   referral.to_org, else the organisation of kind
 *                     referral.to_kind for this child (wijkteam: home
 *                     wijkteam; veiligthuis: the region's; leerplicht:
 *                     the office of the home municipality; other kinds,
 *                     gemeente too: the school's team)
 *   consulted         the same for consultation.consulted_kind
 *   consent_recipient who a consent (given or withdrawn) is for
 *   veiligthuis       the region's Veilig Thuis
 *   leerplicht        the leerplicht office of the child's home
 *                     municipality (body "municipality", else the one
 *                     the envelope's district lies in); the region's
 *                     office when the directory lists no municipalities;
 *                     refused (publisher told) when it cannot be placed
 *   referrer          who sent the referral named by the body's referral_id
 *   reporter          who sent the Veilig Thuis report named by report_id
 *   field             the organisation id in body field "field"
 *   school            the child's school itself
 * The publisher never receives its own event back; a recipient named by
 * two rules is listed once, under the first.
 *
 * "kinds" (school_team, addressees, referral_target, field): the kinds the
 * target may reach. What the publisher named (addressees, referral.to_org,
 * consent_given.recipient_org, a "field") is delivered only when it is in the directory, not the admin,
 * of an allowed kind, a school only as the envelope's "school", and a
 * to_org of the referral's to_kind; no school ever reaches another school.
 * What fails goes into the decision's "refused" with a reason code, and
 * inform_org names the publisher so that the broker puts the decision in
 * its stream (docs/routing.md, "What a publisher may name"). */
#ifndef SCHAKEL_ROUTING_H
#define SCHAKEL_ROUTING_H

#include <stddef.h>

#include "service.h"

typedef struct schakel_routing schakel_routing_t;

/* A routing engine publishing as org_id with the rules in rules_json.
 * NULL on failure; why names the rule and field that is wrong. */
schakel_routing_t *schakel_routing_new(const char *org_id, const char *rules_json, size_t len, char *why);
void schakel_routing_destroy(schakel_routing_t **self_p);

/* Makes the rules in text the engine's (engine: a schakel_routing_t), as
 * a rules_update on the log does; 0, or an error with the rule and field
 * that is wrong in why and the rules in force unchanged. */
int schakel_routing_install(void *engine, const char *text, size_t len, char *why);

/* SHA-256 of the rules text: the policy_version of every decision. */
const uint8_t *schakel_routing_policy(const schakel_routing_t *self);

/* The rules a fresh node starts with (see docs/routing.md). */
const char *schakel_routing_default_rules(void);

extern const schakel_engine_ops_t schakel_routing_ops;

#endif
