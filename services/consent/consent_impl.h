/* What the files of the consent engine share, and nobody else sees: the
 * engine's struct, a verdict (what was decided for one recipient, and
 * why), the key sizes of its tables, and the functions one part calls in
 * another. Listed in the order a record meets them:
 *   consent.c (open the tables; consent_process: one record of the log)
 *   -> consents.c (a consent given or withdrawn is kept)
 *   -> decisions.c (a routing decision: a verdict per recipient, emitted)
 *      -> rules.c (consent_decide: legal bases, consent matching, gezag)
 *         -> loops.c (the referral loop, feedback to the referrer)
 *   -> holds.c (held until a consent arrives, or the hold time ends)
 *   -> match.c (the verwijsindex: signallers about a child told of each
 *      other)
 *   -> erase.c (the broker's erasure: all of it about the child goes)
 * policy.c reads the policy file the engine is made with. The engine runs
 * in one thread, inside the service runner's write transaction (txn);
 * all its time is the log's (rec->now). */
#ifndef SCHAKEL_CONSENT_IMPL_H
#define SCHAKEL_CONSENT_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "enums.h"
#include "consent.h"
#include "directory.h"

/* Goes into the policy hash every decision carries: bump when a coded
 * rule changes (rules.c, loops.c, holds.c, match.c). */
#define RULES_VERSION "schakel/v1/consent-rules/7"
#define SUBJECT_LEN 64
#define CONSENT_KEY_MAX (16 + SCHAKEL_ID_MAX)
#define DELIVERY_KEY_MAX (1 + 16 + 2 * SCHAKEL_ID_MAX)
#define CONSENT_CACHE 32768 /* decoded consents kept (consents.c); a power of two */

typedef Schakel__V1__ConsentOutcome outcome_t;

struct schakel_consent {
    char org[SCHAKEL_ID_MAX];
    uint8_t policy[SCHAKEL_SHA256_LEN];
    int64_t hold_ms;
    uint8_t fallback[SCHAKEL_EVENT_TYPE_LIMIT]; /* SCHAKEL_OUTCOME(HOLD) or SCHAKEL_OUTCOME(DENY) */
    MDB_dbi state, consents, by_subject, holds, deadlines, deliveries, origins;
    MDB_dbi matches, match_deadlines, match_told; /* the verwijsindex */
    schakel_directory_t *dir;
    uint64_t ignored;             /* events that named an id they may not use (log lines say which) */
    struct consent_cached *cache; /* CONSENT_CACHE decoded consents (consents.c) */
    /* the last event read back (consent_load_event): at seq read_seq, for
     * the record at read_rec; read_owned when it was decoded for us */
    uint64_t read_rec, read_seq;
    const schakel_envelope_t *read_env;
    schakel_envelope_t *read_owned;
    /* nothing in deadlines (holds) or match_deadlines (matches) was due at
     * log time *_now in the runner's transaction *_txn: puts add deadlines
     * after now only, so until now moves or another transaction begins
     * there is nothing to look for (consent_process) */
    int holds_clear, matches_clear;
    uint64_t holds_txn, matches_txn;
    int64_t holds_now, matches_now;
};

/* What was decided for one recipient, and why. */
typedef struct {
    int outcome, basis, duty;
    const char *rule;
    uint8_t consent_id[16];
    int has_consent;
    char consent_org[SCHAKEL_ID_MAX]; /* who recorded that consent */
    int not_entitled;                 /* a consent would cover it, but not given by whom the law asks */
} verdict_t;

/* What a consent must name to cover an event for a recipient. */
enum {
    COVER_EVENT,   /* the recipient or its kind, the event's purpose and categories */
    COVER_FEEDBACK /* the recipient itself (never a kind), purpose feedback, the categories */
};

/* ---- consent.c: lookups every part uses ---- */

/* The event a decision is about, read back from the log: NULL when it was
 * erased, is not what the reference says (another organisation's event of
 * the same id), or is of a kind no decision is about. An error only when
 * the log cannot be read (*rc). Not the caller's: valid until the next
 * consent_load_event. */
const schakel_envelope_t *consent_load_event(schakel_consent_t *c, const schakel_logrec_t *rec, uint64_t seq,
                                             const ProtobufCBinaryData *id, int *rc, char *why);
/* The kind of org in the directory in force; 0 when it is not in it. */
int consent_kind_of(schakel_consent_t *c, const char *org);

/* ---- consents.c: consents given and withdrawn ---- */

/* The key of a consent: its id, then the organisation that recorded it. */
size_t consent_key(uint8_t *key, const uint8_t id[16], const char *org);
/* A consent recorded by org, and whether it was withdrawn. *env (when
 * env is not NULL) is the engine's: valid until the next consent_load. */
int consent_load(schakel_consent_t *c, MDB_txn *txn, const uint8_t id[16], const char *org,
                 const schakel_envelope_t **env, int *withdrawn);
/* Frees the decoded consents kept (schakel_consent_destroy). */
void consent_cache_free(schakel_consent_t *c);
/* Forgets the decoded consent kept for this key (an erased child's). */
void consent_cache_drop(schakel_consent_t *c, const uint8_t *key, size_t kl);
int consent_on_given(schakel_consent_t *c, MDB_txn *txn, const schakel_envelope_t *e);
int consent_on_withdrawn(schakel_consent_t *c, MDB_txn *txn, const schakel_logrec_t *rec);

/* ---- rules.c: may they know? ---- */

/* The first consent of the event's subject (in consent id order) that
 * covers recipient x today, as mode asks. */
int consent_withdrawal_counts(int age, int by, const Schakel__V1__ConsentGiven *cg);
int consent_find(schakel_consent_t *c, MDB_txn *txn, const schakel_envelope_t *e, const char *x,
                 const char *date, int mode, verdict_t *out);
/* Could consent cg, just recorded by `recorder`, release held event e
 * (only its source_org, purpose, age_band and categories are read) for
 * recipient x on `date`: does it count for e and cover x? When not, the
 * hold stays as it is and e need not be read back. */
int consent_may_release(schakel_consent_t *c, const Schakel__V1__ConsentGiven *cg, const char *recorder,
                        const schakel_envelope_t *e, const char *x, const char *date);
/* May recipient x know event e, at log time now? */
void consent_decide(schakel_consent_t *c, MDB_txn *txn, const schakel_envelope_t *e, const char *x,
                    int64_t now, verdict_t *v);

/* ---- loops.c: the referral loop and feedback to the referrer ---- */

/* The key of a delivery or an origin: tag, loop id, sender, NUL. */
size_t consent_delivery_key(uint8_t *key, char tag, const uint8_t id[16], const char *sender);
/* Was the referral (tag 'L') or report ('V') id that sender sent
 * delivered to receiver, on a ground that still holds? sender or receiver
 * NULL: any. With subject, only one about that child. Fills the
 * verdict's basis. */
int consent_delivered_about(schakel_consent_t *c, MDB_txn *txn, char tag, const uint8_t id[16],
                            const char *sender, const char *receiver, const char *subject, verdict_t *out);
/* News about a loop between its two sides, on the loop's own ground. */
int consent_referral_loop(schakel_consent_t *c, MDB_txn *txn, const schakel_envelope_t *e, const char *x,
                          verdict_t *v);
/* News about a referral for its referrer: 1 when this rule decided. */
int consent_feedback_to_referrer(schakel_consent_t *c, MDB_txn *txn, const schakel_envelope_t *e,
                                 const char *x, const char *date, verdict_t *v);
/* The loop an event is news about (its referral_id, handover_id or
 * request_id) and its tag; NULL for others. */
const ProtobufCBinaryData *consent_news_id(const schakel_envelope_t *e, char *tag);
/* The loop an event opens and its tag ('L', 'H', 'M'); NULL for others. */
const ProtobufCBinaryData *consent_loop_id(const schakel_envelope_t *e, char *tag);
/* Bookkeeping after a delivery (a loop opened, a report answerable). */
int consent_delivered(schakel_consent_t *c, MDB_txn *txn, const schakel_envelope_t *e, const char *x,
                      const verdict_t *v);

/* ---- decisions.c: decisions on the log ---- */

/* Emits the consent_decision about e (at about_seq) for recipient x,
 * caused by cause; its id is derived from those, its time is now. */
int consent_emit_decision(schakel_consent_t *c, schakel_emit_t *out, const schakel_envelope_t *e,
                          uint64_t about_seq, const char *x, const verdict_t *v,
                          const ProtobufCBinaryData *cause, int64_t now, char *why);
int consent_on_routing(schakel_consent_t *c, MDB_txn *txn, const schakel_logrec_t *rec, schakel_emit_t *out,
                       char *why);

/* ---- holds.c: held until a consent arrives, or expired ---- */

int consent_hold_put(schakel_consent_t *c, MDB_txn *txn, const schakel_envelope_t *e, uint64_t seq,
                     const char *x, int64_t deadline);
int consent_release_holds(schakel_consent_t *c, MDB_txn *txn, const schakel_logrec_t *rec,
                          schakel_emit_t *out, char *why);
int consent_expire_holds(schakel_consent_t *c, MDB_txn *txn, const schakel_logrec_t *rec, schakel_emit_t *out,
                         char *why);

/* ---- match.c: the verwijsindex ---- */

int consent_expire_matches(schakel_consent_t *c, MDB_txn *txn, int64_t now);
int consent_on_signal(schakel_consent_t *c, MDB_txn *txn, const schakel_logrec_t *rec, schakel_emit_t *out,
                      char *why);

/* ---- erase.c: the broker's erasure of a child ---- */

/* Drops everything kept about subject (the erasure at seq). */
int consent_forget(schakel_consent_t *c, MDB_txn *txn, const char *subject, uint64_t seq);

#endif
