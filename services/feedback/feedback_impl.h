/* What the files of the feedback engine share, and nobody else sees: a
 * loop and its steps as the state keeps them (loop_t, step_t), the
 * policy's deadlines, the engine's struct, and the functions one file
 * calls in another. Listed in the order a record meets them:
 *   feedback.c (the state; each record to its handler, the daily scan)
 *   -> feedback_loop.c (referral and signal loops: opened, delivered, moved)
 *      or feedback_flows.c (reports to Veilig Thuis, warm handovers, MAZL)
 *   -> feedback_notice.c (the status, reminder or alert it publishes)
 *   -> feedback_deadlines.c (once per day of log time, every open loop)
 * with feedback_policy.c for the policy file and feedback_views.c for what
 * `schakel loops` reads. The engine runs on its service's thread, one
 * record per write transaction; the views open the state read-only, in
 * another process.
 *
 * The state, all derived from the log, and none of it content:
 * organisation ids, the child's pseudonym, states, days and seqs (no case
 * reference: the referrer has its own, and it is on the log, encrypted).
 * A loop is its referral id (or a signal's event id, or a Veilig Thuis
 * report's report id) *and* its referrer: the same id from another
 * organisation is another loop, and only the referrer and the receiver of
 * a loop move it.
 *   loops       loop key -> loop_t; the key is SHA-256("schakel/v1/
 *               feedback/loop", loop id, referrer)[:16]
 *   open        loop key -> "" for loops not closed, and closed loops whose
 *               family has still to be told of a step (scanned once a day)
 *   history     loop key || u64be(seq) -> step_t (every transition)
 *   by_event    u64be(seq of the referral or signal) -> loop key
 *   by_referral loop id || loop key -> "" (every referrer of that id)
 *   state       "directory" -> the directory in force, "day" -> last day
 *               scanned, "format" -> 3, "decree_days" -> the days equated
 *               by royal decree in the directory in force (int32 days, for
 *               schakel loops --figures)
 * Work per record is a lookup or two; once per day of log time the open
 * loops are scanned for deadlines. */
#ifndef SCHAKEL_FEEDBACK_IMPL_H
#define SCHAKEL_FEEDBACK_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "enums.h"
#include "directory.h"
#include "feedback.h"

#define LOOP_VERSION 3                   /* 1: kept the referrer's case reference; 2: no family steps */
#define STATE_FORMAT 3                   /* the format of the whole state: 2 had loops of version 2 */
#define STEPS (SCHAKEL_LOOP(CLOSED) + 1) /* LoopState values of the steps, 0..8 */
/* A loop_reminder's waiting_for when the family was not told of step s */
#define FAMILY_OF(s) (SCHAKEL_LOOP(FAMILY_INFORMED_OF_RECEIVED) - SCHAKEL_LOOP(RECEIVED) + (s))

/* What opened a loop. Referrals and signals have deadlines of the
 * region's policy (ORIGINS of them); a report to Veilig Thuis has the
 * deadline Veilig Thuis works to, in code (VT_DECISION_DAYS). A warm
 * handover is closed by both sides' confirmation, a MAZL request by the
 * jeugdarts's advice: one deadline each (policy), no per-kind deadlines;
 * in their loop_t, received_day is the day the giving side confirmed,
 * first_contact_day the receiving side's, due_received the deadline. */
enum {
    ORIGIN_REFERRAL = 0,
    ORIGIN_SIGNAL = 1,
    ORIGINS,
    ORIGIN_REPORT = ORIGINS,
    ORIGIN_HANDOVER,
    ORIGIN_MAZL
};
#define IS_FLOW(origin) ((origin) == ORIGIN_HANDOVER || (origin) == ORIGIN_MAZL)

/* Veilig Thuis decides within 5 working days of a report whether and how
 * it follows it up (its triage, Handelingsprotocol Veilig Thuis) and tells
 * a professional reporter what it decided. */
#define VT_DECISION_DAYS 5

enum {
    F_DELIVERED = 1,       /* a receiver has it: the clock runs */
    F_REMIND_RECEIVED = 2, /* reminders and escalations sent, per step */
    F_ESC_RECEIVED = 4,
    F_REMIND_FIRST = 8,
    F_ESC_FIRST = 16,
    F_BRIDGING = 32,   /* bridging care while waiting */
    F_STALLED = 64,    /* the referrer has been alerted */
    F_REDIRECTED = 128 /* a new receiver: the steps start again */
};

typedef struct {
    uint8_t version, origin, state, flags, open;
    char referrer[SCHAKEL_ID_MAX], receiver[SCHAKEL_ID_MAX], lead[SCHAKEL_ID_MAX];
    char subject[65];
    uint8_t referral_id[16]; /* the loop id as the organisations know it */
    int32_t receiver_kind;
    int32_t sent_day, delivered_day, received_day, first_contact_day, help_day, waiting_day, closed_day;
    int32_t due_received, due_first_contact, due_bridging;
    uint8_t event_id[16];
    uint64_t event_seq;
    /* the family, per step (indexed by LoopState): the last day to tell it
     * (0: step not reached), the day the receiver says it did (0: not
     * yet), and whether the receiver was reminded */
    int32_t family_due[STEPS], family_on[STEPS];
    uint16_t family_reminded;
} loop_t;

typedef struct {
    uint8_t state;
    int32_t day;
    int32_t type;             /* the event that made the step */
    char org[SCHAKEL_ID_MAX]; /* who published that event */
    char to[SCHAKEL_ID_MAX];  /* a delivery: who received the referral or signal */
} step_t;

/* A step as written before `to` existed: org was the recipient for a
 * delivery (a consent decision), the publisher otherwise. Still read. */
#define STEP_V1_SIZE offsetof(step_t, to)

typedef struct {
    int received, first_contact;
} deadline_t;

struct schakel_feedback {
    char org[SCHAKEL_ID_MAX];
    deadline_t deadlines[ORIGINS][SCHAKEL_ORG_KINDS];
    int escalate_after, bridging_within, family_within;
    int handover_within, mazl_within; /* working days for both confirmations, for the advice */
    MDB_dbi loops, open, history, by_event, by_referral, state;
    schakel_directory_t *dir;
    uint64_t ignored; /* loop events from an organisation not in that loop */
};

/* ---- the state (feedback.c) ---- */

const schakel_decree_days_t *feedback_decree(const schakel_feedback_t *f);
int feedback_load_loop(schakel_feedback_t *f, MDB_txn *txn, const uint8_t id[16], loop_t *l);
int feedback_save_loop(schakel_feedback_t *f, MDB_txn *txn, const uint8_t id[16], const loop_t *l);
int feedback_add_step_to(schakel_feedback_t *f, MDB_txn *txn, const uint8_t id[16], uint64_t seq, int state,
                         int32_t day, int type, const char *org, const char *to);
int feedback_add_step(schakel_feedback_t *f, MDB_txn *txn, const uint8_t id[16], uint64_t seq, int state,
                      int32_t day, int type, const char *org);
int feedback_kind_of(schakel_feedback_t *f, const char *org);

/* ---- referral and signal loops (feedback_loop.c) ---- */

int feedback_rank(const loop_t *l);
int feedback_open_loop(schakel_feedback_t *f, MDB_txn *txn, const ProtobufCBinaryData *rid, int origin,
                       const schakel_logrec_t *rec);
int feedback_on_delivered(schakel_feedback_t *f, MDB_txn *txn, const schakel_logrec_t *rec,
                          schakel_emit_t *out);
int feedback_find_loop(schakel_feedback_t *f, MDB_txn *txn, const uint8_t rid[16], const char *org,
                       int closed_too, int cls, const char *subject, uint8_t key[16], loop_t *l);
int feedback_on_loop_event(schakel_feedback_t *f, MDB_txn *txn, const schakel_logrec_t *rec,
                           schakel_emit_t *out);

/* ---- reports, handovers, MAZL requests (feedback_flows.c) ---- */

int feedback_on_report_feedback(schakel_feedback_t *f, MDB_txn *txn, const schakel_logrec_t *rec);
int feedback_on_flow_event(schakel_feedback_t *f, MDB_txn *txn, const schakel_logrec_t *rec);
int feedback_flow_deadline(schakel_feedback_t *f, schakel_emit_t *out, const uint8_t key[16], loop_t *l,
                           int32_t today, int64_t now);

/* ---- what the engine publishes (feedback_notice.c) ---- */

void feedback_envelope(schakel_feedback_t *f, Schakel__V1__Envelope *e, uint8_t id[16], int64_t now,
                       const char *subject, int basis);
int feedback_notify(schakel_feedback_t *f, schakel_emit_t *out, const uint8_t key[16], const loop_t *l,
                    int state, const schakel_logrec_t *rec);
int feedback_remind(schakel_feedback_t *f, schakel_emit_t *out, const uint8_t key[16], const loop_t *l,
                    int level, int waiting_for, int32_t due_day, const char *to, int64_t now);
int feedback_stalled(schakel_feedback_t *f, schakel_emit_t *out, const uint8_t key[16], loop_t *l,
                     int waiting_for, int32_t day, int64_t now);

/* ---- an erasure (feedback_erase.c) ---- */

/* Deletes every loop about subject, with its steps and indexes; *n loops. */
int feedback_forget(schakel_feedback_t *f, MDB_txn *txn, const char *subject, size_t *n);

/* ---- the daily scan (feedback_deadlines.c) ---- */

int feedback_check_deadlines(schakel_feedback_t *f, MDB_txn *txn, schakel_emit_t *out, int32_t today,
                             int64_t now);

#endif
