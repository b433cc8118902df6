/* Reading a feedback service's state, for `schakel loops` (tools/loops.c):
 * the open loops of an organisation, one loop with its history, and the
 * figures per receiving organisation (aggregates only, small counts shown
 * as "<5"). Read-only: another process opens the state directory while the
 * service may be writing it, and today is the log's time the service last
 * saw, so the views agree with what the service decides. */
#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "calendar.h"
#include "error.h"
#include "feedback_impl.h"

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
    if (s == SCHAKEL_LOOP(VEILIGTHUIS_DECIDED)) return "veiligthuis_decided";
    if (s == SCHAKEL_LOOP(HANDOVER_CONFIRMED)) return "handover_confirmed";
    if (s == SCHAKEL_LOOP(ADVICE_GIVEN)) return "advice_given";
    static const char *const names[] = {"unspecified",   "sent",         "received",
                                        "first_contact", "help_started", "waiting_list",
                                        "declined",      "redirected",   "closed"};
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
    int r = feedback_rank(l);
    return (r < 2 && today > l->due_received) || (r < 3 && today > l->due_first_contact) ||
           (l->state == SCHAKEL_LOOP(WAITING_LIST) && !(l->flags & F_BRIDGING) && today > l->due_bridging);
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
                          "state", state_name(l->state), "referrer", l->referrer, "receiver", l->receiver,
                          "sent_on", date_or_null(l->sent_day), "delivered_on",
                          date_or_null(l->delivered_day), "open", l->open != 0, "overdue", overdue(l, today));
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
    for (int s = SCHAKEL_LOOP(RECEIVED); s < STEPS; s++) {
        if (!l->family_due[s]) continue;
        json_t *x = json_pack("{s:s, s:o, s:o}", "step", state_name(s), "due_on",
                              date_or_null(l->family_due[s]), "informed_on", date_or_null(l->family_on[s]));
        if (l->family_reminded & (1u << s)) json_object_set_new(x, "reminded", json_true());
        json_array_append_new(fam, x);
    }
    json_object_set_new(o, "family_informed", fam);
    return o;
}

/* The loops table's next loop of this version into l (op: MDB_FIRST,
 * then MDB_NEXT by itself): 1, or 0 at the end. */
static int next_loop(MDB_cursor *cur, MDB_cursor_op *op, loop_t *l)
{
    MDB_val k, v;
    while (mdb_cursor_get(cur, &k, &v, *op) == 0) {
        *op = MDB_NEXT;
        if (k.mv_size != 16 || v.mv_size != sizeof *l) continue;
        memcpy(l, v.mv_data, sizeof *l);
        if (l->version == LOOP_VERSION) return 1;
    }
    return 0;
}

json_t *schakel_feedback_loops(const char *dir, const char *org, char *why)
{
    reader_t r;
    if (reader_open(&r, dir, why) != 0) return NULL;
    int32_t today = reader_today(&r);
    json_t *list = json_array();
    MDB_cursor *cur;
    if (mdb_cursor_open(r.txn, r.loops, &cur) == 0) {
        loop_t l;
        for (MDB_cursor_op op = MDB_FIRST; next_loop(cur, &op, &l);) {
            if (!l.open) continue;
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
    /* the loop with that id that org takes part in (any, with org NULL)
     * first on the log (lowest event_seq: the one a step goes to,
     * feedback_find_loop); the others are counted */
    uint8_t key[16];
    size_t loops = 0, mine = 0;
    uint64_t first = UINT64_MAX;
    MDB_cursor *rc;
    if (mdb_cursor_open(r.txn, r.by_referral, &rc) == 0) {
        MDB_val k = {16, (void *)rid}, lv;
        for (int g = mdb_cursor_get(rc, &k, &v, MDB_SET_RANGE); g == 0;
             g = mdb_cursor_get(rc, &k, &v, MDB_NEXT)) {
            if (k.mv_size != 32 || memcmp(k.mv_data, rid, 16) != 0) break;
            loops++;
            if (schakel_kv_get(r.txn, r.loops, (const uint8_t *)k.mv_data + 16, 16, &lv) != 0 ||
                lv.mv_size != sizeof l)
                continue;
            memcpy(&l, lv.mv_data, sizeof l);
            if (org && strcmp(org, l.referrer) != 0 && strcmp(org, l.receiver) != 0) continue;
            if (mine && l.event_seq >= first) continue;
            memcpy(key, (const uint8_t *)k.mv_data + 16, 16);
            first = l.event_seq;
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
        if (loops > 1)
            json_object_set_new(o, "other_loops_with_this_id", json_integer((json_int_t)(loops - 1)));
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
                json_t *step =
                    json_pack("{s:I, s:o, s:s, s:s}", "seq", (json_int_t)seq, "on", date_or_null(s.day),
                              "state", state_name(s.state), "event",
                              schakel_event_type_name(s.type) ? schakel_event_type_name(s.type) : "?");
                if (v.mv_size == STEP_V1_SIZE && s.type == SCHAKEL_EVENT(CONSENT_DECISION))
                    json_object_set_new(step, "to", json_string(s.org)); /* the decider was not kept */
                else json_object_set_new(step, "by", json_string(s.org));
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
    if (mdb_cursor_open(r.txn, r.loops, &cur) == 0) {
        loop_t l;
        for (MDB_cursor_op op = MDB_FIRST; next_loop(cur, &op, &l);) {
            /* referrals and signals only: a handover's or MAZL request's
             * days say nothing about first contact */
            if (!(l.flags & F_DELIVERED) || IS_FLOW(l.origin)) continue;
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
        json_t *o =
            json_pack("{s:s, s:o, s:o, s:o, s:o}", "org", x->org, "open", cell(x->open), "overdue",
                      cell(x->overdue), "working_days_to_first_contact", spread(x->to_contact, x->n_contact),
                      "working_days_to_help", spread(x->to_help, x->n_help));
        json_object_set_new(o, "first_contact_within_deadline",
                            x->contacted >= 5 ? json_real((double)x->in_time / (double)x->contacted)
                                              : json_null());
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

/* ---- the deadline check of a whole state: schakel demo --soak ---- */

typedef struct {
    size_t loops, closed, undelivered, redirect_alerted, in_time, reminded, escalated, stalled, unreminded;
} tally_t;

/* One loop against the deadline scan (feedback_deadlines.c): closed, not
 * delivered (no clock), redirected with no new receiver (a redirect's
 * intake that never reached it, or none named) and the referrer alerted,
 * within every deadline, or past one with what the scan owes it (the
 * reminder; the stalled-handover alert for a waiting list without
 * bridging care); or past one without it. */
static void tally_loop(tally_t *t, const loop_t *l, int32_t today)
{
    t->loops++;
    if (!l->open) {
        t->closed++;
        return;
    }
    if (!(l->flags & F_DELIVERED)) {
        t->undelivered++;
        return;
    }
    if (l->state == SCHAKEL_LOOP(REDIRECTED) && (l->flags & F_STALLED)) {
        t->redirect_alerted++;
        return;
    }
    int late = 0, missing = 0;
    if (IS_FLOW(l->origin)) {
        late = today > l->due_received;
        missing = late && !(l->flags & F_REMIND_RECEIVED);
    } else {
        int r = feedback_rank(l);
        struct {
            int rank, flag;
            int32_t due;
        } st[2] = {{2, F_REMIND_RECEIVED, l->due_received}, {3, F_REMIND_FIRST, l->due_first_contact}};
        if (l->origin == ORIGIN_REPORT) st[0].rank = 0; /* one step: the decision */
        for (int s = 0; s < 2; s++)
            if (r < st[s].rank && today > st[s].due) {
                late = 1;
                missing |= !(l->flags & st[s].flag);
            }
        if (l->state == SCHAKEL_LOOP(WAITING_LIST) && !(l->flags & F_BRIDGING) && today > l->due_bridging) {
            late = 1;
            missing |= !(l->flags & F_STALLED);
        }
    }
    if (!late) t->in_time++;
    else if (missing) t->unreminded++;
    else {
        t->reminded++;
        t->escalated += (l->flags & (F_ESC_RECEIVED | F_ESC_FIRST)) != 0;
        t->stalled += (l->flags & F_STALLED) != 0;
    }
}

const char *const schakel_feedback_origins[5] = {"referral", "signal", "report", "handover", "mazl"};

json_t *schakel_feedback_deadline_check(const char *dir, char *why)
{
    reader_t r;
    if (reader_open(&r, dir, why) != 0) return NULL;
    int32_t today = reader_today(&r);
    tally_t t[5] = {0};
    MDB_cursor *cur;
    if (mdb_cursor_open(r.txn, r.loops, &cur) == 0) {
        loop_t l;
        for (MDB_cursor_op op = MDB_FIRST; next_loop(cur, &op, &l);)
            if (l.origin < 5) tally_loop(&t[l.origin], &l, today);
        mdb_cursor_close(cur);
    }
    reader_close(&r);
    json_t *out = json_object();
    json_object_set_new(out, "today", date_or_null(today));
    for (int o = 0; o < 5; o++)
        json_object_set_new(
            out, schakel_feedback_origins[o],
            json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "loops", (json_int_t)t[o].loops,
                      "closed", (json_int_t)t[o].closed, "not_delivered", (json_int_t)t[o].undelivered,
                      "redirect_alerted", (json_int_t)t[o].redirect_alerted, "within_deadline",
                      (json_int_t)t[o].in_time, "late_reminded", (json_int_t)t[o].reminded, "escalated",
                      (json_int_t)t[o].escalated, "stalled_alerted", (json_int_t)t[o].stalled,
                      "late_unreminded", (json_int_t)t[o].unreminded));
    return out;
}
