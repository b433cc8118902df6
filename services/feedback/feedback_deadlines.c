/* The daily scan: once per day of log time (feedback_process), every open
 * loop against its deadlines. A receiver late for a step gets a reminder,
 * and escalate_after working days later its escalation contact an
 * escalation; a waiting list without bridging care raises a
 * stalled-handover alert; a step the family was not told of earns the
 * receiver a reminder. Handover and MAZL loops have their own reminder
 * (feedback_flows.c). What is sent is flagged in the loop, so that each is
 * sent once. */
#include <stdlib.h>
#include <string.h>

#include "calendar.h"
#include "error.h"
#include "feedback_impl.h"

static const char *escalation_of(schakel_feedback_t *f, const char *org)
{
    const schakel_org_t *o = f->dir ? schakel_directory_by_id(f->dir, org) : NULL;
    return o && o->escalation[0] ? o->escalation : NULL;
}

/* Once per day of log time: every open loop against its deadlines. */
int feedback_check_deadlines(schakel_feedback_t *f, MDB_txn *txn, schakel_emit_t *out, int32_t today,
                             int64_t now)
{
    MDB_cursor *cur;
    if (mdb_cursor_open(txn, f->open, &cur) != 0) return SCHAKEL_ESTORE;
    uint8_t(*keys)[16] = NULL;
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
        if (feedback_load_loop(f, txn, keys[i], &l) != 0 || !(l.flags & F_DELIVERED)) continue;
        uint8_t before = l.flags;
        if (IS_FLOW(l.origin)) {
            rc = feedback_flow_deadline(f, out, keys[i], &l, today, now);
            if (rc == 0 && l.flags != before) rc = feedback_save_loop(f, txn, keys[i], &l);
            continue;
        }
        int r = feedback_rank(&l);
        const char *esc = escalation_of(f, l.receiver);
        struct {
            int step, rank, remind_flag, esc_flag;
            int32_t due;
        } steps[2] = {{SCHAKEL_LOOP(RECEIVED), 2, F_REMIND_RECEIVED, F_ESC_RECEIVED, l.due_received},
                      {SCHAKEL_LOOP(FIRST_CONTACT), 3, F_REMIND_FIRST, F_ESC_FIRST, l.due_first_contact}};
        if (l.origin == ORIGIN_REPORT) { /* one step: Veilig Thuis's decision, whatever it acknowledged */
            steps[0].rank = 0;
            steps[1].step = SCHAKEL_LOOP(VEILIGTHUIS_DECIDED);
        }
        for (int s = 0; s < 2 && rc == 0; s++) {
            if (r >= steps[s].rank || today <= steps[s].due) continue;
            if (!(l.flags & steps[s].remind_flag)) {
                l.flags |= (uint8_t)steps[s].remind_flag;
                rc = feedback_remind(f, out, keys[i], &l, SCHAKEL_LEVEL(REMINDER), steps[s].step,
                                     steps[s].due, l.receiver, now);
            }
            if (rc == 0 && !(l.flags & steps[s].esc_flag) &&
                today > schakel_add_working_days(feedback_decree(f), steps[s].due, f->escalate_after)) {
                l.flags |= (uint8_t)steps[s].esc_flag;
                rc = feedback_remind(f, out, keys[i], &l, SCHAKEL_LEVEL(ESCALATION), steps[s].step,
                                     steps[s].due, esc, now);
            }
        }
        if (rc == 0 && l.open && l.state == SCHAKEL_LOOP(WAITING_LIST) && !(l.flags & F_BRIDGING) &&
            today > l.due_bridging)
            rc = feedback_stalled(f, out, keys[i], &l, SCHAKEL_LOOP(HELP_STARTED), l.due_bridging, now);
        uint16_t told_before = l.family_reminded;
        for (int st = SCHAKEL_LOOP(RECEIVED); st < STEPS && rc == 0; st++) {
            if (!l.family_due[st] || l.family_on[st] || (l.family_reminded & (1u << st)) ||
                today <= l.family_due[st])
                continue;
            l.family_reminded |= (uint16_t)(1u << st);
            rc = feedback_remind(f, out, keys[i], &l, SCHAKEL_LEVEL(REMINDER), FAMILY_OF(st),
                                 l.family_due[st], l.receiver, now);
        }
        if (rc == 0 && (l.flags != before || l.family_reminded != told_before))
            rc = feedback_save_loop(f, txn, keys[i], &l);
    }
    free(keys);
    return rc;
}
