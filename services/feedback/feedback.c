/* The feedback-loop engine. State in LMDB, all derived from the log, and
 * none of it content: organisation ids, the child's pseudonym, states,
 * days and seqs (no case reference: the referrer has its own, and it is on
 * the log, encrypted). A loop is its referral id (or a signal's event id,
 * or a Veilig Thuis report's report id) *and* its referrer: the same id from another organisation is another
 * loop, and only the referrer and the receiver of a loop move it.
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
#include "feedback.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "calendar.h"
#include "directory.h"
#include "error.h"
#include "logging.h"

#define LOOP_VERSION 3 /* 1: kept the referrer's case reference; 2: no family steps */
#define STATE_FORMAT 3 /* the format of the whole state: 2 had loops of version 2 */
#define STEPS (S(CLOSED) + 1) /* LoopState values of the steps, 0..8 */
/* A loop_reminder's waiting_for when the family was not told of step s */
#define FAMILY_OF(s) (S(FAMILY_INFORMED_OF_RECEIVED) - S(RECEIVED) + (s))
#define T(x) SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_##x
#define S(x) SCHAKEL__V1__LOOP_STATE__LOOP_STATE_##x
#define L(x) SCHAKEL__V1__REMINDER_LEVEL__REMINDER_LEVEL_##x

/* What opened a loop. Referrals and signals have deadlines of the
 * region's policy (ORIGINS of them); a report to Veilig Thuis has the
 * deadline Veilig Thuis works to, in code (VT_DECISION_DAYS). A warm
 * handover is closed by both sides' confirmation, a MAZL request by the
 * jeugdarts's advice: one deadline each (policy), no per-kind deadlines;
 * in their loop_t, received_day is the day the giving side confirmed,
 * first_contact_day the receiving side's, due_received the deadline. */
enum { ORIGIN_REFERRAL = 0, ORIGIN_SIGNAL = 1, ORIGINS, ORIGIN_REPORT = ORIGINS, ORIGIN_HANDOVER, ORIGIN_MAZL };
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
    F_BRIDGING = 32,       /* bridging care while waiting */
    F_STALLED = 64,        /* the referrer has been alerted */
    F_REDIRECTED = 128     /* a new receiver: the steps start again */
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
    int32_t type; /* the event that made the step */
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

/* ---- policy ---- */

static int parse_deadline(json_t *o, deadline_t *d, const char *where, char *why)
{
    const char *k;
    json_t *v;
    json_object_foreach(o, k, v) {
        int n = json_is_integer(v) ? (int)json_integer_value(v) : -1;
        if (n < 0 || n > 100)
            return schakel_fail(why, SCHAKEL_ECONFIG, "feedback policy: %s.%s: 0 to 100 working days", where, k);
        if (!strcmp(k, "received")) d->received = n;
        else if (!strcmp(k, "first_contact")) d->first_contact = n;
        else return schakel_fail(why, SCHAKEL_ECONFIG, "feedback policy: %s: unknown step \"%s\"", where, k);
    }
    return 0;
}

schakel_feedback_t *schakel_feedback_new(const char *org_id, const char *text, size_t len, char *why)
{
    schakel_feedback_t *f = calloc(1, sizeof *f);
    if (!f) return NULL;
    snprintf(f->org, sizeof f->org, "%s", org_id);
    json_error_t err;
    json_t *doc = json_loadb(text, len, 0, &err);
    if (!doc) {
        schakel_fail(why, SCHAKEL_ECONFIG, "feedback policy: line %d: %s", err.line, err.text);
        goto fail;
    }
    f->escalate_after = 2;
    f->bridging_within = 5;
    f->family_within = 5;
    f->handover_within = 10;
    f->mazl_within = 10;
    const char *names[ORIGINS] = {"referral", "signal"};
    json_t *dl = json_object_get(doc, "deadlines");
    for (int o = 0; o < ORIGINS; o++) {
        for (int k = 0; k < SCHAKEL_ORG_KINDS; k++) f->deadlines[o][k] = (deadline_t){2, 5};
        json_t *per = json_object_get(dl, names[o]);
        if (!per) continue;
        json_t *all = json_object_get(per, "*");
        char where[64];
        snprintf(where, sizeof where, "deadlines.%s.*", names[o]);
        for (int k = 0; all && k < SCHAKEL_ORG_KINDS; k++)
            if (parse_deadline(all, &f->deadlines[o][k], where, why)) goto fail;
        const char *key;
        json_t *v;
        json_object_foreach(per, key, v) {
            if (!strcmp(key, "*")) continue;
            int kind = schakel_org_kind_parse(key);
            snprintf(where, sizeof where, "deadlines.%s.%s", names[o], key);
            if (kind <= 0) {
                schakel_fail(why, SCHAKEL_ECONFIG, "feedback policy: %s: not an organisation kind", where);
                goto fail;
            }
            if (parse_deadline(v, &f->deadlines[o][kind], where, why)) goto fail;
        }
    }
    json_t *e = json_object_get(doc, "escalate_after"), *b = json_object_get(doc, "bridging_within");
    if (e) f->escalate_after = json_is_integer(e) ? (int)json_integer_value(e) : -1;
    if (b) f->bridging_within = json_is_integer(b) ? (int)json_integer_value(b) : -1;
    if (f->escalate_after < 0 || f->escalate_after > 100 || f->bridging_within < 0 || f->bridging_within > 100) {
        schakel_fail(why, SCHAKEL_ECONFIG, "feedback policy: escalate_after and bridging_within: 0 to 100 working days");
        goto fail;
    }
    json_t *fw = json_object_get(doc, "family_informed_within");
    if (fw) f->family_within = json_is_integer(fw) ? (int)json_integer_value(fw) : -1;
    if (f->family_within < 0 || f->family_within > 100) {
        schakel_fail(why, SCHAKEL_ECONFIG, "feedback policy: family_informed_within: 0 to 100 working days");
        goto fail;
    }
    json_t *h = json_object_get(doc, "handover_within"), *m = json_object_get(doc, "mazl_advice_within");
    if (h) f->handover_within = json_is_integer(h) ? (int)json_integer_value(h) : -1;
    if (m) f->mazl_within = json_is_integer(m) ? (int)json_integer_value(m) : -1;
    if (f->handover_within < 0 || f->handover_within > 100 || f->mazl_within < 0 || f->mazl_within > 100) {
        schakel_fail(why, SCHAKEL_ECONFIG, "feedback policy: handover_within and mazl_advice_within: 0 to 100 working days");
        goto fail;
    }
    json_decref(doc);
    return f;
fail:
    json_decref(doc);
    schakel_feedback_destroy(&f);
    return NULL;
}

void schakel_feedback_destroy(schakel_feedback_t **self_p)
{
    schakel_feedback_t *f = *self_p;
    if (!f) return;
    schakel_directory_destroy(&f->dir);
    free(f);
    *self_p = NULL;
}

const char *schakel_feedback_default_policy(void)
{
    return "{\n"
           "  \"version\": 1,\n"
           "  \"deadlines\": {\n"
           "    \"referral\": {\"*\": {\"received\": 2, \"first_contact\": 5}},\n"
           "    \"signal\": {\"*\": {\"received\": 2, \"first_contact\": 5}}\n"
           "  },\n"
           "  \"escalate_after\": 2,\n"
           "  \"bridging_within\": 5,\n"
           "  \"family_informed_within\": 5,\n"
           "  \"handover_within\": 10,\n"
           "  \"mazl_advice_within\": 10\n"
           "}\n";
}

/* ---- state ---- */

static int feedback_open(void *engine, MDB_txn *txn, char *why)
{
    schakel_feedback_t *f = engine;
    const char *const names[] = {"loops", "open", "history", "by_event", "by_referral", "state"};
    MDB_dbi *const dbis[] = {&f->loops, &f->open, &f->history, &f->by_event, &f->by_referral, &f->state};
    int rc = schakel_engine_tables(txn, "feedback", names, dbis, 6, why);
    MDB_val v;
    MDB_stat st;
    int have = rc == 0 && schakel_kv_get(txn, f->state, "format", 6, &v) == 0 && v.mv_size == 1;
    int old = have ? ((const uint8_t *)v.mv_data)[0] : 0;
    if (rc == 0 && old != STATE_FORMAT && mdb_stat(txn, f->loops, &st) == 0 && st.ms_entries)
        return schakel_fail(why, SCHAKEL_ECONFIG,
                            "feedback: this state directory was written by an older version (%s): "
                            "stop the service, delete the directory (it is rebuilt from the log) and "
                            "start it again",
                            old ? "without the family's steps" : "that kept case references");
    uint8_t format = STATE_FORMAT;
    if (rc == 0) rc = schakel_kv_put(txn, f->state, "format", 6, &format, 1);
    return rc ? rc : schakel_engine_directory_load(txn, f->state, &f->dir);
}

/* The days a royal decree equates with holidays (Algemene termijnenwet
 * art. 3 lid 3): the directory's, on the log, so that a replay counts
 * the same days; none before the first directory. */
static const schakel_decree_days_t *decree(const schakel_feedback_t *f)
{
    return f->dir ? schakel_directory_decree_days(f->dir) : NULL;
}

/* A new directory on the log: it may bring other decree days. */
static int on_directory(schakel_feedback_t *f, MDB_txn *txn, const schakel_envelope_t *e)
{
    int rc = schakel_engine_directory_update(txn, f->state, e, &f->dir);
    const schakel_decree_days_t *dd = decree(f);
    if (rc == 0 && dd) rc = schakel_kv_put(txn, f->state, "decree_days", 11, dd->days, dd->n * sizeof dd->days[0]);
    return rc;
}

static int load_loop(schakel_feedback_t *f, MDB_txn *txn, const uint8_t id[16], loop_t *l)
{
    MDB_val v;
    if (schakel_kv_get(txn, f->loops, id, 16, &v) != 0 || v.mv_size != sizeof *l) return SCHAKEL_ENOTFOUND;
    memcpy(l, v.mv_data, sizeof *l);
    return l->version == LOOP_VERSION ? 0 : SCHAKEL_ENOTFOUND;
}

/* Is a step's family still to be told, and its receiver not yet reminded? */
static int family_pending(const loop_t *l)
{
    for (int s = S(RECEIVED); s < STEPS; s++)
        if (l->family_due[s] && !l->family_on[s] && !(l->family_reminded & (1u << s))) return 1;
    return 0;
}

static int save_loop(schakel_feedback_t *f, MDB_txn *txn, const uint8_t id[16], const loop_t *l)
{
    int rc = schakel_kv_put(txn, f->loops, id, 16, l, sizeof *l);
    if (rc) return rc;
    /* a closed loop stays in the daily scan while its family may be owed
     * a word about the closing */
    return l->open || family_pending(l) ? schakel_kv_put(txn, f->open, id, 16, "", 0)
                                        : schakel_kv_del(txn, f->open, id, 16);
}

/* to: for a delivery, the organisation that received the loop's event
 * (org is then the service that decided it); "" otherwise. */
static int add_step_to(schakel_feedback_t *f, MDB_txn *txn, const uint8_t id[16], uint64_t seq, int state,
                       int32_t day, int type, const char *org, const char *to)
{
    uint8_t key[24];
    memcpy(key, id, 16);
    schakel_put_be64(key + 16, seq);
    step_t s;
    memset(&s, 0, sizeof s); /* the padding too: the state file holds no stray bytes */
    s.state = (uint8_t)state, s.day = day, s.type = type;
    snprintf(s.org, sizeof s.org, "%s", org);
    snprintf(s.to, sizeof s.to, "%s", to);
    return schakel_kv_put(txn, f->history, key, sizeof key, &s, sizeof s);
}

static int add_step(schakel_feedback_t *f, MDB_txn *txn, const uint8_t id[16], uint64_t seq, int state,
                    int32_t day, int type, const char *org)
{
    return add_step_to(f, txn, id, seq, state, day, type, org, "");
}

static int kind_of(schakel_feedback_t *f, const char *org)
{
    const schakel_org_t *o = f->dir ? schakel_directory_by_id(f->dir, org) : NULL;
    return o ? o->kind : 0;
}

/* ---- what the engine publishes ---- */

static void envelope(schakel_feedback_t *f, Schakel__V1__Envelope *e, uint8_t id[16], int64_t now,
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
static int notify(schakel_feedback_t *f, schakel_emit_t *out, const uint8_t key[16], const loop_t *l,
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
    envelope(f, &e, id, rec->now, l->subject, SCHAKEL__V1__LEGAL_BASIS__LEGAL_BASIS_CONSENT);
    e.causation_id = *cause;
    e.type = T(FEEDBACK_STATUS);
    e.body_case = SCHAKEL__V1__ENVELOPE__BODY_FEEDBACK_STATUS;
    e.feedback_status = &s;
    return schakel_emit(out, &e);
}

/* A reminder, an escalation or a stalled-handover alert. An escalation
 * goes to someone who need not know the child: it names the referral and
 * the late organisation, not the subject. */
static int remind(schakel_feedback_t *f, schakel_emit_t *out, const uint8_t key[16], const loop_t *l,
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
    int escalation = level == L(ESCALATION);
    Schakel__V1__Envelope e;
    envelope(f, &e, id, now, escalation ? "" : l->subject,
             escalation                     ? SCHAKEL__V1__LEGAL_BASIS__LEGAL_BASIS_ANONYMOUS
             : l->origin == ORIGIN_REPORT ? SCHAKEL__V1__LEGAL_BASIS__LEGAL_BASIS_MELDCODE
                                            : SCHAKEL__V1__LEGAL_BASIS__LEGAL_BASIS_CONSENT);
    e.type = T(LOOP_REMINDER);
    e.body_case = SCHAKEL__V1__ENVELOPE__BODY_LOOP_REMINDER;
    e.loop_reminder = &r;
    return schakel_emit(out, &e);
}

static const char *escalation_of(schakel_feedback_t *f, const char *org)
{
    const schakel_org_t *o = f->dir ? schakel_directory_by_id(f->dir, org) : NULL;
    return o && o->escalation[0] ? o->escalation : NULL;
}

/* ---- the state machine ---- */

/* How far a state is along the loop; the four outcomes after first
 * contact share a rank, so any of them may follow another. */
static int state_rank(int state)
{
    switch (state) {
    case S(SENT): return 1;
    case S(RECEIVED): return 2;
    case S(FIRST_CONTACT): return 3;
    case S(CLOSED): return 5;
    default: return 4;
    }
}

/* How far a loop has come: a new receiver after a redirect starts over. */
static int rank(const loop_t *l)
{
    return (l->flags & F_REDIRECTED) && l->state == S(REDIRECTED) ? 1 : state_rank(l->state);
}

/* Sets the clock for a (new) receiver, from day on. */
static void start_clock(schakel_feedback_t *f, loop_t *l, const char *receiver, int32_t day)
{
    snprintf(l->receiver, sizeof l->receiver, "%s", receiver);
    l->receiver_kind = kind_of(f, receiver);
    int k = l->receiver_kind > 0 && l->receiver_kind < SCHAKEL_ORG_KINDS ? l->receiver_kind : 0;
    l->delivered_day = day;
    if (l->origin == ORIGIN_REPORT) { /* one step: the decision, told to the reporter */
        l->due_received = l->due_first_contact = schakel_add_working_days(decree(f), day, VT_DECISION_DAYS);
    } else {
        const deadline_t *d = &f->deadlines[l->origin][k];
        l->due_received = schakel_add_working_days(decree(f), day, d->received);
        l->due_first_contact = schakel_add_working_days(decree(f), day, d->first_contact);
    }
    l->flags = (uint8_t)((l->flags & F_REDIRECTED) | F_DELIVERED);
}

/* Moves the loop to state when that is a step forward; records it and
 * tells the referrer. Returns 0, or 1 when it was no step. */
static int move(schakel_feedback_t *f, MDB_txn *txn, schakel_emit_t *out, const uint8_t key[16],
                loop_t *l, int state, const schakel_logrec_t *rec, int *rc)
{
    int from = rank(l), to = state_rank(state);
    if (!l->open || (to < from) || (to == from && (to != 4 || state == l->state))) return 1;
    int32_t day = schakel_day_of(rec->now);
    /* help started or a waiting list with no first contact said: someone
     * is on it all the same, and a referrer without consent for feedback
     * hears only that (docs/feedback.md) */
    int implied_contact = !l->first_contact_day && (state == S(HELP_STARTED) || state == S(WAITING_LIST));
    if (to >= 2 && !l->received_day) l->received_day = day;
    if (to >= 3 && !l->first_contact_day && state != S(DECLINED) && state != S(REDIRECTED))
        l->first_contact_day = day;
    if (state == S(HELP_STARTED) && !l->help_day) l->help_day = day;
    if (state == S(WAITING_LIST)) {
        l->waiting_day = day;
        l->due_bridging = schakel_add_working_days(decree(f), day, f->bridging_within);
    }
    if (state == S(CLOSED)) {
        l->closed_day = day;
        l->open = 0;
    }
    l->state = (uint8_t)state;
    if (state != S(REDIRECTED)) l->flags &= (uint8_t)~F_REDIRECTED;
    /* the receiver tells the family of each step it reaches (referrals and
     * signals: Veilig Thuis tells the family by its own protocol, and a
     * handover or MAZL request is no help the family waits on) */
    if (l->origin < ORIGINS && l->receiver[0] && state >= S(RECEIVED) && state < STEPS &&
        !l->family_due[state])
        l->family_due[state] = schakel_add_working_days(decree(f), day, f->family_within);
    *rc = add_step(f, txn, key, rec->seq, state, day, rec->env->type, rec->env->source_org);
    if (*rc == 0 && implied_contact) *rc = notify(f, out, key, l, S(FIRST_CONTACT), rec);
    if (*rc == 0) *rc = notify(f, out, key, l, state, rec);
    return 0;
}

/* A handover that let go: the referrer is alerted once. */
static int stalled(schakel_feedback_t *f, schakel_emit_t *out, const uint8_t key[16], loop_t *l,
                   int waiting_for, int32_t day, int64_t now)
{
    if (l->flags & F_STALLED) return 0;
    l->flags |= F_STALLED;
    return remind(f, out, key, l, L(STALLED), waiting_for, day, l->referrer, now);
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

static int open_loop(schakel_feedback_t *f, MDB_txn *txn, const ProtobufCBinaryData *rid, int origin,
                     const schakel_logrec_t *rec)
{
    const schakel_envelope_t *e = rec->env;
    loop_t l;
    uint8_t key[16], sk[8], rk[32];
    if (!rid || rid->len != 16) return 0;
    loop_key(key, rid->data, e->source_org, origin);
    if (load_loop(f, txn, key, &l) == 0) return 0; /* the referrer's first one counts */
    const ProtobufCBinaryData *id = &(ProtobufCBinaryData){16, key};
    memset(&l, 0, sizeof l);
    memcpy(l.referral_id, rid->data, 16);
    l.version = LOOP_VERSION;
    l.origin = (uint8_t)origin;
    l.state = S(SENT);
    l.open = 1;
    snprintf(l.referrer, sizeof l.referrer, "%s", e->source_org);
    snprintf(l.subject, sizeof l.subject, "%s", e->subject);
    if (origin == ORIGIN_HANDOVER) { /* its receiver is named; the clock starts on delivery */
        snprintf(l.receiver, sizeof l.receiver, "%s", e->handover->to_org);
        l.receiver_kind = kind_of(f, l.receiver);
    }
    l.sent_day = schakel_day_of(rec->now);
    memcpy(l.event_id, e->event_id.data, 16);
    l.event_seq = rec->seq;
    int rc = save_loop(f, txn, id->data, &l);
    schakel_put_be64(sk, rec->seq);
    memcpy(rk, rid->data, 16);
    memcpy(rk + 16, key, 16);
    if (rc == 0) rc = schakel_kv_put(txn, f->by_event, sk, 8, key, 16);
    if (rc == 0) rc = schakel_kv_put(txn, f->by_referral, rk, 32, "", 0);
    if (rc == 0) rc = add_step(f, txn, id->data, rec->seq, S(SENT), l.sent_day, e->type, e->source_org);
    return rc;
}

/* The consent service delivered the referral (or signal): the receiver is
 * known and the clock starts. */
static int on_delivered(schakel_feedback_t *f, MDB_txn *txn, const schakel_logrec_t *rec)
{
    const Schakel__V1__ConsentDecision *d = rec->env->consent_decision;
    MDB_val v;
    loop_t l;
    uint8_t sk[8];
    schakel_put_be64(sk, d->about_seq);
    if (d->outcome != SCHAKEL__V1__CONSENT_OUTCOME__CONSENT_OUTCOME_DELIVER || d->about_event_id.len != 16 ||
        kind_of(f, rec->env->source_org) != SCHAKEL__V1__ORG_KIND__ORG_KIND_SERVICE ||
        schakel_kv_get(txn, f->by_event, sk, 8, &v) != 0 || v.mv_size != 16)
        return 0;
    uint8_t key[16];
    memcpy(key, v.mv_data, 16);
    if (load_loop(f, txn, key, &l) != 0 || memcmp(l.event_id, d->about_event_id.data, 16) != 0 ||
        (l.flags & F_DELIVERED) || !l.open || !strcmp(d->recipient_org, l.referrer))
        return 0;
    /* a report's loop is with Veilig Thuis, whoever else may have it */
    if (l.origin == ORIGIN_REPORT && kind_of(f, d->recipient_org) != SCHAKEL__V1__ORG_KIND__ORG_KIND_VEILIGTHUIS)
        return 0;
    if (IS_FLOW(l.origin)) {
        /* the handover's named receiver, the MAZL request's GGD: an
         * addressee beside them does not start the clock */
        if (l.origin == ORIGIN_HANDOVER ? strcmp(d->recipient_org, l.receiver) != 0
                                        : kind_of(f, d->recipient_org) != SCHAKEL__V1__ORG_KIND__ORG_KIND_GGD)
            return 0;
        int32_t day = schakel_day_of(rec->now);
        snprintf(l.receiver, sizeof l.receiver, "%s", d->recipient_org);
        l.receiver_kind = kind_of(f, l.receiver);
        l.delivered_day = day;
        l.due_received = schakel_add_working_days(decree(f), day,
                                                  l.origin == ORIGIN_HANDOVER ? f->handover_within : f->mazl_within);
        l.flags |= F_DELIVERED;
    } else {
        start_clock(f, &l, d->recipient_org, schakel_day_of(rec->now));
    }
    /* decided by the consent service, received by the recipient */
    int rc = add_step_to(f, txn, key, rec->seq, S(SENT), l.delivered_day, rec->env->type, rec->env->source_org,
                         d->recipient_org);
    return rc ? rc : save_loop(f, txn, key, &l);
}

/* The open loop with id rid that org takes part in (as its receiver, or
 * its referrer), among the loops of reports to Veilig Thuis (reports 1;
 * about subject, unless NULL) or among the others (0): 1 and its key; 0
 * when no such open loop has that id; -1 when open loops have it but org
 * is in none of them. With closed_too, closed loops count as well (the
 * family may be told of the closing after it). */
static int find_loop(schakel_feedback_t *f, MDB_txn *txn, const uint8_t rid[16], const char *org,
                     int closed_too, int cls, const char *subject, uint8_t key[16], loop_t *l)
{
    MDB_cursor *cur;
    if (mdb_cursor_open(txn, f->by_referral, &cur) != 0) return 0;
    MDB_val k = {16, (void *)rid}, v;
    int found = 0;
    for (int g = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); g == 0 && found != 1;
         g = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size != 32 || memcmp(k.mv_data, rid, 16) != 0) break;
        if (load_loop(f, txn, (const uint8_t *)k.mv_data + 16, l) != 0 || (!l->open && !closed_too) ||
            loop_class(l->origin) != cls || (subject && strcmp(subject, l->subject) != 0))
            continue;
        found = -1;
        if (!strcmp(org, l->referrer) || (l->receiver[0] && !strcmp(org, l->receiver))) {
            memcpy(key, (const uint8_t *)k.mv_data + 16, 16);
            found = 1;
        }
    }
    mdb_cursor_close(cur);
    return found;
}

/* An event about a loop from one of its organisations. */
static int on_loop_event(schakel_feedback_t *f, MDB_txn *txn, const schakel_logrec_t *rec,
                         schakel_emit_t *out)
{
    const schakel_envelope_t *e = rec->env;
    const ProtobufCBinaryData *rid = schakel_body_bytes(e, "referral_id");
    loop_t l;
    uint8_t keybuf[16];
    if (!rid || rid->len != 16) return 0;
    int found = find_loop(f, txn, rid->data, e->source_org, e->type == T(FAMILY_INFORMED), 0, NULL, keybuf, &l);
    if (found <= 0) {
        if (found < 0) { /* loops with that id exist, but this organisation is in none */
            f->ignored++;
            schakel_log(SCHAKEL_LOG_WARN, "feedback", "event=loop_event_ignored seq=%llu reason=not_in_loop ignored=%llu",
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
    case T(REFERRAL_RECEIVED):
        if (from_receiver) move(f, txn, out, key, &l, S(RECEIVED), rec, &rc);
        break;
    case T(FIRST_CONTACT):
        if (from_receiver) move(f, txn, out, key, &l, S(FIRST_CONTACT), rec, &rc);
        break;
    case T(INTAKE): {
        if (!from_receiver) break;
        const Schakel__V1__Intake *in = e->intake;
        switch (in->outcome) {
        case SCHAKEL__V1__INTAKE_OUTCOME__INTAKE_OUTCOME_SHORT_HELP:
        case SCHAKEL__V1__INTAKE_OUTCOME__INTAKE_OUTCOME_PREVENTIVE_SERVICES:
            move(f, txn, out, key, &l, S(HELP_STARTED), rec, &rc);
            break;
        case SCHAKEL__V1__INTAKE_OUTCOME__INTAKE_OUTCOME_NO_HELP_NEEDED:
            move(f, txn, out, key, &l, S(CLOSED), rec, &rc);
            break;
        case SCHAKEL__V1__INTAKE_OUTCOME__INTAKE_OUTCOME_DECLINED:
            if (move(f, txn, out, key, &l, S(DECLINED), rec, &rc) == 0 && rc == 0)
                rc = stalled(f, out, key, &l, S(HELP_STARTED), day, rec->now);
            break;
        case SCHAKEL__V1__INTAKE_OUTCOME__INTAKE_OUTCOME_REDIRECTED:
            if (move(f, txn, out, key, &l, S(REDIRECTED), rec, &rc) != 0 || rc) break;
            if (in->redirected_to[0] && strcmp(in->redirected_to, l.receiver) != 0) {
                l.flags |= F_REDIRECTED;
                start_clock(f, &l, in->redirected_to, day);
            } else {
                rc = stalled(f, out, key, &l, S(RECEIVED), day, rec->now);
            }
            break;
        default: /* specialised care: the waiting list says what comes */
            move(f, txn, out, key, &l, S(FIRST_CONTACT), rec, &rc);
            break;
        }
        break;
    }
    case T(WAITING_LIST):
        if (!from_receiver) break;
        if (e->waiting_list->status == SCHAKEL__V1__WAITING_STATUS__WAITING_STATUS_PLACED) {
            move(f, txn, out, key, &l, S(WAITING_LIST), rec, &rc);
        } else if (e->waiting_list->status == SCHAKEL__V1__WAITING_STATUS__WAITING_STATUS_STARTED) {
            move(f, txn, out, key, &l, S(HELP_STARTED), rec, &rc);
        } else if (e->waiting_list->status == SCHAKEL__V1__WAITING_STATUS__WAITING_STATUS_LEFT) {
            if (move(f, txn, out, key, &l, S(DECLINED), rec, &rc) == 0 && rc == 0)
                rc = stalled(f, out, key, &l, S(HELP_STARTED), day, rec->now);
        }
        break;
    case T(BRIDGING_CARE):
        l.flags |= F_BRIDGING;
        break;
    case T(CASE_LEAD):
        snprintf(l.lead, sizeof l.lead, "%s", e->case_lead->lead_org);
        break;
    case T(FEEDBACK_STATUS):
        if (from_receiver && e->feedback_status->state) {
            int st = e->feedback_status->state;
            if (move(f, txn, out, key, &l, st, rec, &rc) == 0 && rc == 0 &&
                (st == S(DECLINED) || st == S(REDIRECTED)))
                rc = stalled(f, out, key, &l, S(HELP_STARTED), day, rec->now);
        }
        break;
    case T(CLOSURE):
        if (from_receiver || from_referrer) move(f, txn, out, key, &l, S(CLOSED), rec, &rc);
        break;
    case T(FAMILY_INFORMED): {
        /* the receiver's word that it told the family; the first counts */
        int st = e->family_informed->step;
        if (!from_receiver || st < S(RECEIVED) || st >= STEPS || l.family_on[st]) break;
        int32_t said = schakel_date_days(e->family_informed->informed_on);
        l.family_on[st] = said > 0 ? said : day;
        break;
    }
    default: break;
    }
    return rc ? rc : save_loop(f, txn, key, &l);
}

/* Veilig Thuis's feedback to the reporter moves the report's loop: "received"
 * is an acknowledgement and stops no clock; any decision on the follow-up
 * ends the loop (Veilig Thuis owes the reporter nothing more by a
 * deadline). Only the Veilig Thuis the report was delivered to, about the
 * report's own child, moves it; the reporter hears from Veilig Thuis
 * itself, so the loop sends no status of its own. */
static int on_report_feedback(schakel_feedback_t *f, MDB_txn *txn, const schakel_logrec_t *rec)
{
    const schakel_envelope_t *e = rec->env;
    const Schakel__V1__VeiligThuisFeedback *fb = e->veiligthuis_feedback;
    uint8_t key[16];
    loop_t l;
    if (fb->report_id.len != 16) return 0;
    int found = find_loop(f, txn, fb->report_id.data, e->source_org, 0, ORIGIN_REPORT, e->subject, key, &l);
    if (found <= 0 || !(l.flags & F_DELIVERED) || strcmp(e->source_org, l.receiver) != 0) {
        if (found != 0) {
            f->ignored++;
            schakel_log(SCHAKEL_LOG_WARN, "feedback", "event=loop_event_ignored seq=%llu reason=not_in_loop ignored=%llu",
                        (unsigned long long)rec->seq, (unsigned long long)f->ignored);
        }
        return 0;
    }
    int32_t day = schakel_day_of(rec->now);
    int state;
    switch (fb->outcome) {
    case SCHAKEL__V1__VEILIG_THUIS_OUTCOME__VT_OUTCOME_RECEIVED:
        if (l.state != S(SENT)) return 0;
        state = S(RECEIVED);
        l.received_day = day;
        break;
    case SCHAKEL__V1__VEILIG_THUIS_OUTCOME__VT_OUTCOME_CLOSED_NO_ACTION: state = S(CLOSED); break;
    default: state = S(VEILIGTHUIS_DECIDED); break;
    }
    if (state != S(RECEIVED)) {
        if (!l.received_day) l.received_day = day;
        l.closed_day = day;
        l.open = 0;
    }
    l.state = (uint8_t)state;
    int rc = add_step(f, txn, key, rec->seq, state, day, e->type, e->source_org);
    return rc ? rc : save_loop(f, txn, key, &l);
}

/* A handover confirmed by one side (only by that side's organisation),
 * or a MAZL advice by the GGD the request was delivered to. The loop
 * closes when both sides confirmed, or with the advice. Neither sends a
 * feedback_status: the other side receives the event itself. */
static int on_flow_event(schakel_feedback_t *f, MDB_txn *txn, const schakel_logrec_t *rec)
{
    const schakel_envelope_t *e = rec->env;
    int handover = e->type == T(HANDOVER_CONFIRMED);
    const ProtobufCBinaryData *id = schakel_body_bytes(e, handover ? "handover_id" : "request_id");
    uint8_t key[16];
    loop_t l;
    if (!id || id->len != 16) return 0;
    int found = find_loop(f, txn, id->data, e->source_org, 0, handover ? ORIGIN_HANDOVER : ORIGIN_MAZL, NULL, key, &l);
    const char *reason = found < 0 ? "not_in_loop" : NULL;
    int32_t day = schakel_day_of(rec->now);
    int state = handover ? S(HANDOVER_CONFIRMED) : S(ADVICE_GIVEN);
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
        state = S(CLOSED);
        l.closed_day = day;
        l.open = 0;
    }
    l.state = (uint8_t)state;
    int rc = add_step(f, txn, key, rec->seq, state, day, e->type, e->source_org);
    return rc ? rc : save_loop(f, txn, key, &l);
}

/* A reminder in a handover or MAZL loop, to the side that is late. The
 * id names the side, as both sides of a handover may be reminded. */
static int remind_flow(schakel_feedback_t *f, schakel_emit_t *out, const uint8_t key[16], const loop_t *l,
                       int waiting_for, const char *to, int64_t now)
{
    char due[11];
    schakel_date_from_days(l->due_received, due);
    uint8_t id[16], wf = (uint8_t)waiting_for;
    schakel_derive_id(id, "schakel/v1/feedback/flow-reminder", key, (size_t)16, &wf, (size_t)1, due, strlen(due),
                      to, strlen(to), NULL);
    Schakel__V1__LoopReminder r = SCHAKEL__V1__LOOP_REMINDER__INIT;
    r.referral_id.data = (uint8_t *)l->referral_id;
    r.referral_id.len = 16;
    r.level = L(REMINDER);
    r.waiting_for = waiting_for;
    r.due_on = due;
    r.to_org = (char *)to;
    r.overdue_org = (char *)to;
    Schakel__V1__Envelope e;
    envelope(f, &e, id, now, l->subject, SCHAKEL__V1__LEGAL_BASIS__LEGAL_BASIS_CONSENT);
    e.type = T(LOOP_REMINDER);
    e.body_case = SCHAKEL__V1__ENVELOPE__BODY_LOOP_REMINDER;
    e.loop_reminder = &r;
    return schakel_emit(out, &e);
}

/* A handover or MAZL loop past its deadline: once, a reminder to each
 * side that has not confirmed (handover), or to the jeugdarts (MAZL). */
static int flow_deadline(schakel_feedback_t *f, schakel_emit_t *out, const uint8_t key[16], loop_t *l,
                         int32_t today, int64_t now)
{
    if (today <= l->due_received || (l->flags & F_REMIND_RECEIVED)) return 0;
    l->flags |= F_REMIND_RECEIVED;
    if (l->origin == ORIGIN_MAZL) return remind_flow(f, out, key, l, S(ADVICE_GIVEN), l->receiver, now);
    int rc = 0;
    if (!l->received_day) rc = remind_flow(f, out, key, l, S(HANDOVER_CONFIRMED), l->referrer, now);
    if (rc == 0 && !l->first_contact_day) rc = remind_flow(f, out, key, l, S(HANDOVER_CONFIRMED), l->receiver, now);
    return rc;
}

/* Once per day of log time: every open loop against its deadlines. */
static int check_deadlines(schakel_feedback_t *f, MDB_txn *txn, schakel_emit_t *out, int32_t today,
                           int64_t now)
{
    MDB_cursor *cur;
    if (mdb_cursor_open(txn, f->open, &cur) != 0) return SCHAKEL_ESTORE;
    uint8_t (*keys)[16] = NULL;
    size_t n = 0, cap = 0;
    MDB_val k, v;
    for (int g = mdb_cursor_get(cur, &k, &v, MDB_FIRST); g == 0; g = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size != 16) continue;
        if (n == cap) {
            void *nk = realloc(keys, (cap = cap ? cap * 2 : 64) * 16);
            if (!nk) {
                mdb_cursor_close(cur);
                free(keys);
                return SCHAKEL_ENOMEM;
            }
            keys = nk;
        }
        memcpy(keys[n++], k.mv_data, 16);
    }
    mdb_cursor_close(cur);
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        loop_t l;
        if (load_loop(f, txn, keys[i], &l) != 0 || !(l.flags & F_DELIVERED)) continue;
        uint8_t before = l.flags;
        if (IS_FLOW(l.origin)) {
            rc = flow_deadline(f, out, keys[i], &l, today, now);
            if (rc == 0 && l.flags != before) rc = save_loop(f, txn, keys[i], &l);
            continue;
        }
        int r = rank(&l);
        const char *esc = escalation_of(f, l.receiver);
        struct {
            int step, rank, remind_flag, esc_flag;
            int32_t due;
        } steps[2] = {{S(RECEIVED), 2, F_REMIND_RECEIVED, F_ESC_RECEIVED, l.due_received},
                      {S(FIRST_CONTACT), 3, F_REMIND_FIRST, F_ESC_FIRST, l.due_first_contact}};
        if (l.origin == ORIGIN_REPORT) { /* one step: Veilig Thuis's decision, whatever it acknowledged */
            steps[0].rank = 0;
            steps[1].step = S(VEILIGTHUIS_DECIDED);
        }
        for (int s = 0; s < 2 && rc == 0; s++) {
            if (r >= steps[s].rank || today <= steps[s].due) continue;
            if (!(l.flags & steps[s].remind_flag)) {
                l.flags |= (uint8_t)steps[s].remind_flag;
                rc = remind(f, out, keys[i], &l, L(REMINDER), steps[s].step, steps[s].due, l.receiver, now);
            }
            if (rc == 0 && !(l.flags & steps[s].esc_flag) &&
                today > schakel_add_working_days(decree(f), steps[s].due, f->escalate_after)) {
                l.flags |= (uint8_t)steps[s].esc_flag;
                rc = remind(f, out, keys[i], &l, L(ESCALATION), steps[s].step, steps[s].due, esc, now);
            }
        }
        if (rc == 0 && l.open && l.state == S(WAITING_LIST) && !(l.flags & F_BRIDGING) && today > l.due_bridging)
            rc = stalled(f, out, keys[i], &l, S(HELP_STARTED), l.due_bridging, now);
        uint16_t told_before = l.family_reminded;
        for (int st = S(RECEIVED); st < STEPS && rc == 0; st++) {
            if (!l.family_due[st] || l.family_on[st] || (l.family_reminded & (1u << st)) ||
                today <= l.family_due[st])
                continue;
            l.family_reminded |= (uint16_t)(1u << st);
            rc = remind(f, out, keys[i], &l, L(REMINDER), FAMILY_OF(st), l.family_due[st], l.receiver, now);
        }
        if (rc == 0 && (l.flags != before || l.family_reminded != told_before)) rc = save_loop(f, txn, keys[i], &l);
    }
    free(keys);
    return rc;
}

static int feedback_process(void *engine, MDB_txn *txn, const schakel_logrec_t *rec,
                            schakel_emit_t *out, char *why)
{
    schakel_feedback_t *f = engine;
    const schakel_envelope_t *e = rec->env;
    int rc = 0;
    if (e) {
        switch ((int)e->type) {
        case T(DIRECTORY_UPDATE): rc = on_directory(f, txn, e); break;
        case T(REFERRAL): rc = open_loop(f, txn, &e->referral->referral_id, ORIGIN_REFERRAL, rec); break;
        case T(SIGNAL):
            if (e->signal->follow_up_requested) rc = open_loop(f, txn, &e->event_id, ORIGIN_SIGNAL, rec);
            break;
        case T(VEILIGTHUIS_REPORT):
            rc = open_loop(f, txn, &e->veiligthuis_report->report_id, ORIGIN_REPORT, rec);
            break;
        case T(VEILIGTHUIS_FEEDBACK):
            if (kind_of(f, e->source_org) == SCHAKEL__V1__ORG_KIND__ORG_KIND_VEILIGTHUIS)
                rc = on_report_feedback(f, txn, rec);
            break;
        case T(HANDOVER): rc = open_loop(f, txn, &e->handover->handover_id, ORIGIN_HANDOVER, rec); break;
        case T(MAZL_REQUEST): rc = open_loop(f, txn, &e->mazl_request->request_id, ORIGIN_MAZL, rec); break;
        case T(HANDOVER_CONFIRMED):
        case T(MAZL_ADVICE): rc = on_flow_event(f, txn, rec); break;
        case T(CONSENT_DECISION): rc = on_delivered(f, txn, rec); break;
        case T(FEEDBACK_STATUS):
            if (kind_of(f, e->source_org) == SCHAKEL__V1__ORG_KIND__ORG_KIND_SERVICE) break; /* ours */
            rc = on_loop_event(f, txn, rec, out);
            break;
        case T(REFERRAL_RECEIVED):
        case T(FIRST_CONTACT):
        case T(INTAKE):
        case T(WAITING_LIST):
        case T(BRIDGING_CARE):
        case T(CASE_LEAD):
        case T(CLOSURE):
        case T(FAMILY_INFORMED): rc = on_loop_event(f, txn, rec, out); break;
        default: break;
        }
        if (rc) return schakel_fail(why, rc, "feedback: cannot store a loop");
    }
    /* the deadlines, once per day of log time */
    int32_t today = schakel_day_of(rec->now);
    MDB_val v;
    int32_t last = 0;
    if (schakel_kv_get(txn, f->state, "day", 3, &v) == 0 && v.mv_size == sizeof last) memcpy(&last, v.mv_data, sizeof last);
    if (today <= last) return 0;
    rc = schakel_kv_put(txn, f->state, "day", 3, &today, sizeof today);
    if (rc == 0) rc = check_deadlines(f, txn, out, today, rec->now);
    return rc ? schakel_fail(why, rc, "feedback: cannot check deadlines") : 0;
}

const schakel_engine_ops_t schakel_feedback_ops = {"feedback", feedback_open, feedback_process};

/* ---- reading the state: schakel loops ---- */

typedef struct {
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi loops, history, by_referral, state, runner;
} reader_t;

static int reader_open(reader_t *r, const char *dir, char *why)
{
    memset(r, 0, sizeof *r);
    int rc = mdb_env_create(&r->env);
    if (rc == 0) rc = mdb_env_set_maxdbs(r->env, 32);
    if (rc == 0) rc = mdb_env_open(r->env, dir, MDB_RDONLY | MDB_NOTLS, 0600);
    if (rc == 0) rc = mdb_txn_begin(r->env, NULL, MDB_RDONLY, &r->txn);
    if (rc == 0) rc = mdb_dbi_open(r->txn, "loops", 0, &r->loops);
    if (rc == 0) rc = mdb_dbi_open(r->txn, "history", 0, &r->history);
    if (rc == 0) rc = mdb_dbi_open(r->txn, "by_referral", 0, &r->by_referral);
    if (rc == 0) rc = mdb_dbi_open(r->txn, "state", 0, &r->state);
    if (rc == 0) rc = mdb_dbi_open(r->txn, "runner", 0, &r->runner);
    if (rc) {
        if (r->txn) mdb_txn_abort(r->txn);
        if (r->env) mdb_env_close(r->env);
        return schakel_fail(why, SCHAKEL_EIO, "%s: no feedback state here (%s)", dir, mdb_strerror(rc));
    }
    return 0;
}

static void reader_close(reader_t *r)
{
    mdb_txn_abort(r->txn);
    mdb_env_close(r->env);
}

static int32_t reader_today(reader_t *r)
{
    MDB_val v;
    int64_t now = 0;
    if (schakel_kv_get(r->txn, r->runner, "time", 4, &v) == 0 && v.mv_size == 8) memcpy(&now, v.mv_data, 8);
    return schakel_day_of(now);
}

static const char *state_name(int s)
{
    if (s == S(VEILIGTHUIS_DECIDED)) return "veiligthuis_decided";
    if (s == S(HANDOVER_CONFIRMED)) return "handover_confirmed";
    if (s == S(ADVICE_GIVEN)) return "advice_given";
    static const char *const names[] = {"unspecified", "sent", "received", "first_contact", "help_started",
                                        "waiting_list", "declined", "redirected", "closed"};
    return s >= 0 && s < (int)(sizeof names / sizeof names[0]) ? names[s] : "?";
}

static json_t *date_or_null(int32_t day)
{
    char d[11];
    if (!day) return json_null();
    schakel_date_from_days(day, d);
    return json_string(d);
}

static int overdue(const loop_t *l, int32_t today)
{
    if (!l->open || !(l->flags & F_DELIVERED)) return 0;
    if (IS_FLOW(l->origin)) return today > l->due_received;
    int r = rank(l);
    return (r < 2 && today > l->due_received) || (r < 3 && today > l->due_first_contact) ||
           (l->state == S(WAITING_LIST) && !(l->flags & F_BRIDGING) && today > l->due_bridging);
}

static json_t *loop_json(const loop_t *l, int32_t today)
{
    char id[33];
    schakel_hex_encode(l->referral_id, 16, id);
    json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:o, s:o, s:b, s:b}", "referral_id", id, "origin",
                          l->origin == ORIGIN_SIGNAL     ? "signal"
                          : l->origin == ORIGIN_REPORT   ? "report"
                          : l->origin == ORIGIN_HANDOVER ? "handover"
                          : l->origin == ORIGIN_MAZL     ? "mazl"
                                                         : "referral",
                          "state", state_name(l->state),
                          "referrer", l->referrer, "receiver", l->receiver, "sent_on", date_or_null(l->sent_day),
                          "delivered_on", date_or_null(l->delivered_day), "open", l->open != 0, "overdue",
                          overdue(l, today));
    /* no receiver until an organisation got the event itself: a notice
     * (no consent yet) or a hold is no delivery, and the clock does not run */
    if (!l->receiver[0]) json_object_set_new(o, "receiver", json_null());
    if (l->lead[0]) json_object_set_new(o, "lead", json_string(l->lead));
    if (IS_FLOW(l->origin)) { /* the two confirmations, or the advice */
        if (l->flags & F_DELIVERED) json_object_set_new(o, "due", date_or_null(l->due_received));
        if (l->origin == ORIGIN_HANDOVER) {
            json_object_set_new(o, "giving_confirmed_on", date_or_null(l->received_day));
            json_object_set_new(o, "receiving_confirmed_on", date_or_null(l->first_contact_day));
        }
        return o;
    }
    if ((l->flags & F_DELIVERED) && l->origin == ORIGIN_REPORT) { /* one step: the decision */
        json_object_set_new(o, "decision_due", date_or_null(l->due_first_contact));
    } else if (l->flags & F_DELIVERED) {
        json_object_set_new(o, "received_due", date_or_null(l->due_received));
        json_object_set_new(o, "first_contact_due", date_or_null(l->due_first_contact));
    }
    if (l->flags & F_BRIDGING) json_object_set_new(o, "bridging_care", json_true());
    if (l->flags & F_STALLED) json_object_set_new(o, "stalled", json_true());
    /* per step reached: was the family told, by when it had to be */
    json_t *fam = json_array();
    for (int s = S(RECEIVED); s < STEPS; s++) {
        if (!l->family_due[s]) continue;
        json_t *x = json_pack("{s:s, s:o, s:o}", "step", state_name(s), "due_on", date_or_null(l->family_due[s]),
                              "informed_on", date_or_null(l->family_on[s]));
        if (l->family_reminded & (1u << s)) json_object_set_new(x, "reminded", json_true());
        json_array_append_new(fam, x);
    }
    json_object_set_new(o, "family_informed", fam);
    return o;
}

json_t *schakel_feedback_loops(const char *dir, const char *org, char *why)
{
    reader_t r;
    if (reader_open(&r, dir, why) != 0) return NULL;
    int32_t today = reader_today(&r);
    json_t *list = json_array();
    MDB_cursor *cur;
    MDB_val k, v;
    if (mdb_cursor_open(r.txn, r.loops, &cur) == 0) {
        for (int g = mdb_cursor_get(cur, &k, &v, MDB_FIRST); g == 0; g = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
            loop_t l;
            if (k.mv_size != 16 || v.mv_size != sizeof l) continue;
            memcpy(&l, v.mv_data, sizeof l);
            if (l.version != LOOP_VERSION || !l.open) continue;
            if (org && strcmp(org, l.referrer) != 0 && strcmp(org, l.receiver) != 0) continue;
            json_array_append_new(list, loop_json(&l, today));
        }
        mdb_cursor_close(cur);
    }
    reader_close(&r);
    return list;
}

json_t *schakel_feedback_loop(const char *dir, const uint8_t rid[16], const char *org, char *why)
{
    reader_t r;
    if (reader_open(&r, dir, why) != 0) return NULL;
    MDB_val v;
    loop_t l;
    json_t *o = NULL;
    /* the first loop (in key order) with that id that org takes part in
     * (any, with org NULL); the others are counted */
    uint8_t key[16];
    size_t loops = 0, mine = 0;
    MDB_cursor *rc;
    if (mdb_cursor_open(r.txn, r.by_referral, &rc) == 0) {
        MDB_val k = {16, (void *)rid}, lv;
        for (int g = mdb_cursor_get(rc, &k, &v, MDB_SET_RANGE); g == 0; g = mdb_cursor_get(rc, &k, &v, MDB_NEXT)) {
            if (k.mv_size != 32 || memcmp(k.mv_data, rid, 16) != 0) break;
            loops++;
            if (mine || schakel_kv_get(r.txn, r.loops, (const uint8_t *)k.mv_data + 16, 16, &lv) != 0 ||
                lv.mv_size != sizeof l)
                continue;
            memcpy(&l, lv.mv_data, sizeof l);
            if (org && strcmp(org, l.referrer) != 0 && strcmp(org, l.receiver) != 0) continue;
            memcpy(key, (const uint8_t *)k.mv_data + 16, 16);
            mine = 1;
        }
        mdb_cursor_close(rc);
    }
    if (!mine) loops = 0;
    if (!loops || schakel_kv_get(r.txn, r.loops, key, 16, &v) != 0 || v.mv_size != sizeof l) {
        schakel_fail(why, SCHAKEL_ENOTFOUND, "no loop with that referral id");
    } else {
        memcpy(&l, v.mv_data, sizeof l);
        o = loop_json(&l, reader_today(&r));
        if (loops > 1) json_object_set_new(o, "other_loops_with_this_id", json_integer((json_int_t)(loops - 1)));
        json_t *hist = json_array();
        MDB_cursor *cur;
        MDB_val k = {16, (void *)key};
        if (mdb_cursor_open(r.txn, r.history, &cur) == 0) {
            for (int g = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); g == 0;
                 g = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
                if (k.mv_size != 24 || memcmp(k.mv_data, key, 16) != 0) break;
                step_t s;
                if (v.mv_size != sizeof s && v.mv_size != STEP_V1_SIZE) continue;
                memset(&s, 0, sizeof s);
                memcpy(&s, v.mv_data, v.mv_size);
                uint64_t seq = schakel_get_be64((const uint8_t *)k.mv_data + 16);
                json_t *step = json_pack("{s:I, s:o, s:s, s:s}", "seq", (json_int_t)seq, "on", date_or_null(s.day),
                                         "state", state_name(s.state), "event",
                                         schakel_event_type_name(s.type) ? schakel_event_type_name(s.type) : "?");
                if (v.mv_size == STEP_V1_SIZE && s.type == T(CONSENT_DECISION))
                    json_object_set_new(step, "to", json_string(s.org)); /* the decider was not kept */
                else
                    json_object_set_new(step, "by", json_string(s.org));
                if (s.to[0]) json_object_set_new(step, "to", json_string(s.to));
                json_array_append_new(hist, step);
            }
            mdb_cursor_close(cur);
        }
        json_object_set_new(o, "history", hist);
    }
    reader_close(&r);
    return o;
}

static int cmp_int(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

/* A count as it may be shown: exact from 5, "<5" below, 0 as 0. */
static json_t *cell(size_t n)
{
    return n == 0 || n >= 5 ? json_integer((json_int_t)n) : json_string("<5");
}

/* Median and p90 of n values, or null when too few to show. */
static json_t *spread(int *v, size_t n)
{
    if (n < 5) return json_null();
    qsort(v, n, sizeof *v, cmp_int);
    return json_pack("{s:i, s:i, s:I}", "median", v[n / 2], "p90", v[(n * 9) / 10 < n ? (n * 9) / 10 : n - 1],
                     "n", (json_int_t)n);
}

typedef struct {
    char org[SCHAKEL_ID_MAX];
    size_t open, overdue, contacted, in_time;
    int *to_contact, *to_help;
    size_t n_contact, n_help;
} figures_t;

json_t *schakel_feedback_figures(const char *dir, char *why)
{
    reader_t r;
    if (reader_open(&r, dir, why) != 0) return NULL;
    int32_t today = reader_today(&r);
    schakel_decree_days_t dd = {0}; /* the days the service counted with */
    MDB_val dv;
    if (schakel_kv_get(r.txn, r.state, "decree_days", 11, &dv) == 0 && dv.mv_size <= sizeof dd.days) {
        dd.n = dv.mv_size / sizeof dd.days[0];
        memcpy(dd.days, dv.mv_data, dd.n * sizeof dd.days[0]);
    }
    figures_t *fs = NULL;
    size_t nf = 0;
    MDB_cursor *cur;
    MDB_val k, v;
    if (mdb_cursor_open(r.txn, r.loops, &cur) == 0) {
        for (int g = mdb_cursor_get(cur, &k, &v, MDB_FIRST); g == 0; g = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
            loop_t l;
            if (v.mv_size != sizeof l) continue;
            memcpy(&l, v.mv_data, sizeof l);
            /* referrals and signals only: a handover's or MAZL request's
             * days say nothing about first contact */
            if (l.version != LOOP_VERSION || !(l.flags & F_DELIVERED) || IS_FLOW(l.origin)) continue;
            figures_t *x = NULL;
            for (size_t i = 0; i < nf && !x; i++)
                if (!strcmp(fs[i].org, l.receiver)) x = &fs[i];
            if (!x) {
                figures_t *nfs = realloc(fs, (nf + 1) * sizeof *fs);
                if (!nfs) break;
                fs = nfs;
                x = &fs[nf++];
                memset(x, 0, sizeof *x);
                snprintf(x->org, sizeof x->org, "%s", l.receiver);
            }
            x->open += l.open != 0;
            x->overdue += (size_t)overdue(&l, today);
            if (l.first_contact_day) {
                int *nv = realloc(x->to_contact, (x->n_contact + 1) * sizeof *nv);
                if (nv) {
                    x->to_contact = nv;
                    x->to_contact[x->n_contact++] =
                        schakel_working_days_between(&dd, l.delivered_day, l.first_contact_day);
                }
                x->contacted++;
                x->in_time += l.first_contact_day <= l.due_first_contact;
            }
            if (l.help_day) {
                int *nv = realloc(x->to_help, (x->n_help + 1) * sizeof *nv);
                if (nv) {
                    x->to_help = nv;
                    x->to_help[x->n_help++] = schakel_working_days_between(&dd, l.delivered_day, l.help_day);
                }
            }
        }
        mdb_cursor_close(cur);
    }
    reader_close(&r);
    json_t *out = json_object(), *orgs = json_array();
    size_t open = 0, over = 0;
    for (size_t i = 0; i < nf; i++) {
        figures_t *x = &fs[i];
        open += x->open;
        over += x->overdue;
        json_t *o = json_pack("{s:s, s:o, s:o, s:o, s:o}", "org", x->org, "open", cell(x->open), "overdue",
                              cell(x->overdue), "working_days_to_first_contact",
                              spread(x->to_contact, x->n_contact), "working_days_to_help",
                              spread(x->to_help, x->n_help));
        json_object_set_new(o, "first_contact_within_deadline",
                            x->contacted >= 5 ? json_real((double)x->in_time / (double)x->contacted) : json_null());
        json_array_append_new(orgs, o);
        free(x->to_contact);
        free(x->to_help);
    }
    free(fs);
    json_object_set_new(out, "open", cell(open));
    json_object_set_new(out, "overdue", cell(over));
    json_object_set_new(out, "organisations", orgs);
    return out;
}
