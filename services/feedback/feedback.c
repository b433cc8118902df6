/* The feedback-loop engine: its state in LMDB (the tables are listed in
 * feedback_impl.h), the loops and steps it stores there, and the record
 * loop that gives each event on the log to its handler
 * (feedback_process): referral and signal loops in feedback_loop.c,
 * reports, handovers and MAZL requests in feedback_flows.c; once per day
 * of log time every open loop goes past its deadlines
 * (feedback_deadlines.c). It sits behind the service runner
 * (lib/service.c), which commits what this derives with the engine's
 * state and place in the log. */
#include <stdio.h>
#include <string.h>

#include "bytes.h"
#include "calendar.h"
#include "error.h"
#include "feedback_impl.h"

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
    if (rc == 0) rc = schakel_engine_rules_load(txn, f->state, schakel_feedback_install, f, "feedback", why);
    return rc ? rc : schakel_engine_directory_load(txn, f->state, &f->dir);
}

/* The days a royal decree equates with holidays (Algemene termijnenwet
 * art. 3 lid 3): the directory's, on the log, so that a replay counts
 * the same days; none before the first directory. */
const schakel_decree_days_t *feedback_decree(const schakel_feedback_t *f)
{
    return f->dir ? schakel_directory_decree_days(f->dir) : NULL;
}

/* A new directory on the log: it may bring other decree days. */
static int on_directory(schakel_feedback_t *f, MDB_txn *txn, const schakel_envelope_t *e)
{
    int rc = schakel_engine_directory_update(txn, f->state, e, &f->dir);
    const schakel_decree_days_t *dd = feedback_decree(f);
    if (rc == 0 && dd)
        rc = schakel_kv_put(txn, f->state, "decree_days", 11, dd->days, dd->n * sizeof dd->days[0]);
    return rc;
}

int feedback_load_loop(schakel_feedback_t *f, MDB_txn *txn, const uint8_t id[16], loop_t *l)
{
    MDB_val v;
    if (schakel_kv_get(txn, f->loops, id, 16, &v) != 0 || v.mv_size != sizeof *l) return SCHAKEL_ENOTFOUND;
    memcpy(l, v.mv_data, sizeof *l);
    return l->version == LOOP_VERSION ? 0 : SCHAKEL_ENOTFOUND;
}

/* Is a step's family still to be told, and its receiver not yet reminded? */
static int family_pending(const loop_t *l)
{
    for (int s = SCHAKEL_LOOP(RECEIVED); s < STEPS; s++)
        if (l->family_due[s] && !l->family_on[s] && !(l->family_reminded & (1u << s))) return 1;
    return 0;
}

int feedback_save_loop(schakel_feedback_t *f, MDB_txn *txn, const uint8_t id[16], const loop_t *l)
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
int feedback_add_step_to(schakel_feedback_t *f, MDB_txn *txn, const uint8_t id[16], uint64_t seq, int state,
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

int feedback_add_step(schakel_feedback_t *f, MDB_txn *txn, const uint8_t id[16], uint64_t seq, int state,
                      int32_t day, int type, const char *org)
{
    return feedback_add_step_to(f, txn, id, seq, state, day, type, org, "");
}

int feedback_kind_of(schakel_feedback_t *f, const char *org)
{
    const schakel_org_t *o = f->dir ? schakel_directory_by_id(f->dir, org) : NULL;
    return o ? o->kind : 0;
}

static int feedback_process(void *engine, MDB_txn *txn, const schakel_logrec_t *rec, schakel_emit_t *out,
                            char *why)
{
    schakel_feedback_t *f = engine;
    const schakel_envelope_t *e = rec->env;
    int rc = 0;
    if (e) {
        switch ((int)e->type) {
        case SCHAKEL_EVENT(DIRECTORY_UPDATE): rc = on_directory(f, txn, e); break;
        case SCHAKEL_EVENT(RULES_UPDATE):
            rc = schakel_engine_rules_update(txn, f->state, rec, SCHAKEL__V1__RULE_SET__RULE_SET_FEEDBACK,
                                             schakel_feedback_install, f, "feedback");
            break;
        case SCHAKEL_EVENT(REFERRAL):
            rc = feedback_open_loop(f, txn, &e->referral->referral_id, ORIGIN_REFERRAL, rec);
            break;
        case SCHAKEL_EVENT(SIGNAL):
            if (e->signal->follow_up_requested)
                rc = feedback_open_loop(f, txn, &e->event_id, ORIGIN_SIGNAL, rec);
            break;
        case SCHAKEL_EVENT(VEILIGTHUIS_REPORT):
            rc = feedback_open_loop(f, txn, &e->veiligthuis_report->report_id, ORIGIN_REPORT, rec);
            break;
        case SCHAKEL_EVENT(VEILIGTHUIS_FEEDBACK):
            if (feedback_kind_of(f, e->source_org) == SCHAKEL__V1__ORG_KIND__ORG_KIND_VEILIGTHUIS)
                rc = feedback_on_report_feedback(f, txn, rec);
            break;
        case SCHAKEL_EVENT(HANDOVER):
            rc = feedback_open_loop(f, txn, &e->handover->handover_id, ORIGIN_HANDOVER, rec);
            break;
        case SCHAKEL_EVENT(MAZL_REQUEST):
            rc = feedback_open_loop(f, txn, &e->mazl_request->request_id, ORIGIN_MAZL, rec);
            break;
        case SCHAKEL_EVENT(HANDOVER_CONFIRMED):
        case SCHAKEL_EVENT(MAZL_ADVICE): rc = feedback_on_flow_event(f, txn, rec); break;
        case SCHAKEL_EVENT(CONSENT_DECISION): rc = feedback_on_delivered(f, txn, rec, out); break;
        case SCHAKEL_EVENT(FEEDBACK_STATUS):
            if (feedback_kind_of(f, e->source_org) == SCHAKEL__V1__ORG_KIND__ORG_KIND_SERVICE)
                break; /* ours */
            rc = feedback_on_loop_event(f, txn, rec, out);
            break;
        case SCHAKEL_EVENT(REFERRAL_RECEIVED):
        case SCHAKEL_EVENT(FIRST_CONTACT):
        case SCHAKEL_EVENT(INTAKE):
        case SCHAKEL_EVENT(WAITING_LIST):
        case SCHAKEL_EVENT(BRIDGING_CARE):
        case SCHAKEL_EVENT(CASE_LEAD):
        case SCHAKEL_EVENT(CLOSURE):
        case SCHAKEL_EVENT(FAMILY_INFORMED): rc = feedback_on_loop_event(f, txn, rec, out); break;
        case SCHAKEL_EVENT(ERASURE): /* the broker's own: the child's loops go */
            if (!strcmp(e->source_org, "broker") && e->erasure) {
                size_t n = 0;
                rc = feedback_forget(f, txn, e->erasure->erased_subject, &n);
            }
            break;
        default: break;
        }
        if (rc) return schakel_fail(why, rc, "feedback: cannot store a loop");
    }
    /* the deadlines, once per day of log time */
    int32_t today = schakel_day_of(rec->now);
    MDB_val v;
    int32_t last = 0;
    if (schakel_kv_get(txn, f->state, "day", 3, &v) == 0 && v.mv_size == sizeof last)
        memcpy(&last, v.mv_data, sizeof last);
    if (today <= last) return 0;
    rc = schakel_kv_put(txn, f->state, "day", 3, &today, sizeof today);
    if (rc == 0) rc = feedback_check_deadlines(f, txn, out, today, rec->now);
    return rc ? schakel_fail(why, rc, "feedback: cannot check deadlines") : 0;
}

/* What feedback_process passes over (the deadlines go as for any
 * record): the runner of a node need not decrypt or decode them
 * (service.h). */
static int feedback_ignores(int type)
{
    switch (type) {
    case SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_ROUTING_DECISION:
    case SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_LOOP_REMINDER:
    case SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_AUDIT_ACCESS:
    case SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_ADAPTER_STATUS: return 1;
    default: return 0;
    }
}

const schakel_engine_ops_t schakel_feedback_ops = {"feedback", feedback_open, feedback_process,
                                                   feedback_ignores};
