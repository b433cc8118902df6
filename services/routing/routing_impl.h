/* What the files of the routing engine share, and nobody else sees: a
 * rule as parsed (rule_t) and its targets, the engine's struct, the
 * recipients a decision is being built from (recipients_t), and the
 * functions one file calls in another. Listed in the order a record
 * meets them:
 *   routing.c (each record: remember what later events refer to, match
 *   the rules, publish the decision)
 *   -> routing_state.c (what routing remembers: referrers, reporters,
 *      consents, flows)
 *   -> routing_rules.c (does a rule's "when" match)
 *   -> routing_targets.c (who a rule's target names, and what it refuses)
 * with routing_rules.c also reading the rules file. The engine runs on its
 * service's thread, one record per write transaction. */
#ifndef SCHAKEL_ROUTING_IMPL_H
#define SCHAKEL_ROUTING_IMPL_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "directory.h"
#include "routing.h"

#define MAX_RULES 128
#define MAX_RECIPIENTS 32

typedef struct {
    char id[64];
    uint8_t on[SCHAKEL_EVENT_TYPE_LIMIT]; /* event types it applies to */
    int target;
    unsigned kinds; /* bit per OrgKind a target may name; 0: all */
    char field[64]; /* for the "field" target */
    json_t *when;   /* body fields that must match; NULL: always */
} rule_t;

enum {
    T_ADDRESSEES,
    T_SCHOOL_TEAM,
    T_HOME_WIJKTEAM,
    T_REFERRAL_TARGET,
    T_CONSULTED,
    T_CONSENT_RECIPIENT,
    T_VEILIGTHUIS,
    T_LEERPLICHT,
    T_REFERRER,
    T_REPORTER,
    T_FIELD,
    T_SCHOOL,
    T_PARTICIPANTS,
    T_REFERRAL_LOOP,
    T_HANDOVER_SIDES,
    T_REQUESTER,
    T_COUNT
};

struct schakel_routing {
    char org[SCHAKEL_ID_MAX];
    rule_t rules[MAX_RULES];
    size_t n_rules;
    uint8_t policy[SCHAKEL_SHA256_LEN];
    MDB_dbi dbi_state, dbi_referrals, dbi_reports, dbi_consents, dbi_flows;
    schakel_directory_t *dir; /* the directory in force; NULL until one is on the log */
};

/* An organisation the publisher named that the rules do not allow. */
typedef struct {
    char field[80];  /* what named it: "addressees[0]", "referral.to_org" */
    const char *org; /* its directory id; "" when it is not in the directory */
    const char *rule, *reason;
} refusal_t;

typedef struct {
    const char *org[MAX_RECIPIENTS];
    const char *rule[MAX_RECIPIENTS];
    size_t n;
    refusal_t refused[MAX_RECIPIENTS];
    size_t n_refused;
    int no_veiligthuis; /* a rule sends it to Veilig Thuis, and the region has none */
} recipients_t;

#define FLOW_KEY_MAX (18 + 100 + SCHAKEL_ID_MAX)

/* ---- the rules (routing_rules.c) ---- */

int routing_when_matches(const rule_t *rule, const schakel_envelope_t *env, json_t **body_json);

/* ---- the state (routing_state.c) ---- */

int routing_open(void *engine, MDB_txn *txn, char *why);
int routing_remember(MDB_txn *txn, MDB_dbi dbi, const ProtobufCBinaryData *id, const char *scope,
                     const char *org);
const char *routing_recall(MDB_txn *txn, MDB_dbi dbi, const ProtobufCBinaryData *id, const char *scope);
size_t routing_flow_key(uint8_t *key, char tag, const ProtobufCBinaryData *id, const char *subject,
                        const char *org);
int routing_remember_flow(MDB_txn *txn, MDB_dbi dbi, char tag, const ProtobufCBinaryData *id,
                          const char *subject, const char *org, const void *val, size_t vlen);
const char *routing_recall_flow(MDB_txn *txn, MDB_dbi dbi, char tag, const ProtobufCBinaryData *id,
                                const char *subject, size_t *len);
/* An erasure: drops the child's referrers, reporters and flows. */
int routing_forget(schakel_routing_t *r, MDB_txn *txn, const char *subject);
int routing_remember_handover(MDB_txn *txn, MDB_dbi dbi, const schakel_envelope_t *env);

/* ---- the targets (routing_targets.c) ---- */

/* Adds to out the recipients rule names for env, and what it refuses. */
void routing_apply(schakel_routing_t *r, MDB_txn *txn, const rule_t *rule, const schakel_envelope_t *env,
                   recipients_t *out);

#endif
