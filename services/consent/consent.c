/* The consent engine. State in LMDB, all of it derived from the log, and
 * none of it content (no event is kept: what a decision is about is read
 * back from the log by its seq, schakel_log_event):
 *   consents      consent id || org that recorded it -> withdrawn flag ||
 *                 the consent reduced to what decisions need (subject,
 *                 age band, consent_given without recorded_by)
 *   by_subject    subject || consent id || org -> ""
 *   holds         subject || u64be(about seq) || recipient -> deadline, seq,
 *                 the held event's publisher, purpose, age band, categories
 *   deadlines     u64be(deadline) || hold key -> ""
 *   deliveries    tag || id || sender NUL receiver -> basis, consent
 *                 (tag 'L': a referral or follow-up signal, by loop id;
 *                 'H': a warm handover, by handover id; 'M': a MAZL
 *                 request, by request id; 'V': a Veilig Thuis report,
 *                 by report id)
 *   origins       'L', 'H' or 'M' || loop id || sender -> subject ("" when
 *                 written by a version before erasure dropped them)
 *   matches       subject || org -> entered at, deadline, seq of the org's
 *                 latest signal (the verwijsindex: who signalled, no content)
 *   match_deadlines  u64be(deadline) || match key -> "" (also the keys of
 *                 deadlines that a later signal moved: live only when the
 *                 entry in matches has that deadline)
 *   match_told    subject || org NUL org (the smaller id first) -> "": this
 *                 pair was told of its match
 *   state         "directory" -> the directory in force, "format" -> 3
 * Ids that organisations choose (consent, referral and report ids) are
 * scoped to the organisation that published them: the same id from
 * another organisation is another consent, referral or report.
 * Time is the log's (rec->now); ids of decisions are derived from what
 * they are about, so replay yields the same bytes.
 * This file opens those tables and hands each record of the log to the
 * part it is about (consent_process); consent_impl.h lists the parts in
 * the order a record meets them. */
#include "consent.h"

#include <string.h>

#include "consent_impl.h"
#include "error.h"
#include "logging.h"

#define STATE_FORMAT 3 /* 1: kept whole events in clear (table "events"); 2: no match index */

static int consent_open(void *engine, MDB_txn *txn, char *why)
{
    schakel_consent_t *c = engine;
    MDB_dbi old;
    if (mdb_dbi_open(txn, "events", 0, &old) == 0)
        return schakel_fail(why, SCHAKEL_ECONFIG,
                            "consent: this state directory was written by an older version that kept "
                            "events in clear: stop the service, delete the directory (it is rebuilt "
                            "from the log) and start it again");
    const char *const names[] = {"state",      "consents", "by_subject", "holds",           "deadlines",
                                 "deliveries", "origins",  "matches",    "match_deadlines", "match_told"};
    MDB_dbi *const dbis[] = {&c->state,           &c->consents,   &c->by_subject, &c->holds,
                             &c->deadlines,       &c->deliveries, &c->origins,    &c->matches,
                             &c->match_deadlines, &c->match_told};
    int rc = schakel_engine_tables(txn, "consent", names, dbis, 10, why);
    MDB_val v;
    if (rc == 0 && schakel_kv_get(txn, c->state, "format", 6, &v) == 0 && v.mv_size == 1 &&
        *(const uint8_t *)v.mv_data < STATE_FORMAT)
        /* its match index would lack every signal it has read */
        return schakel_fail(why, SCHAKEL_ECONFIG,
                            "consent: this state directory was written by an older version without "
                            "the verwijsindex match index: stop the service, delete the directory (it "
                            "is rebuilt from the log) and start it again");
    uint8_t format = STATE_FORMAT;
    if (rc == 0) rc = schakel_kv_put(txn, c->state, "format", 6, &format, 1);
    if (rc == 0) rc = schakel_engine_rules_load(txn, c->state, schakel_consent_install, c, "consent", why);
    return rc ? rc : schakel_engine_directory_load(txn, c->state, &c->dir);
}

/* The event a decision is about, read back from the log: NULL when it was
 * erased, is not what the reference says (another organisation's event of
 * the same id), or is of a kind no decision is about. An error only when
 * the log cannot be read (*rc). The event is the engine's (or the log
 * source's), valid until the next read back: a record that asks for the
 * same seq again (a hold per recipient of one event) gets it without a
 * second read and decode; the next record reads it again. */
const schakel_envelope_t *consent_load_event(schakel_consent_t *c, const schakel_logrec_t *rec, uint64_t seq,
                                             const ProtobufCBinaryData *id, int *rc, char *why)
{
    *rc = 0;
    if (c->read_rec != rec->seq || c->read_seq != seq) {
        schakel_envelope_free(c->read_owned);
        c->read_owned = NULL;
        c->read_rec = c->read_seq = 0;
        const schakel_envelope_t *held;
        if (schakel_log_event_held(rec->log, seq, &held)) {
            c->read_env = held;
        } else {
            int r = schakel_log_event(rec->log, seq, &c->read_owned, why);
            if (r && r != SCHAKEL_ENOTFOUND) { /* not kept: asked again, read again */
                *rc = r;
                return NULL;
            }
            c->read_env = c->read_owned;
        }
        c->read_rec = rec->seq;
        c->read_seq = seq;
    }
    const schakel_envelope_t *e = c->read_env;
    if (!e) return NULL;
    int ok = (!id || (id->len == 16 && e->event_id.len == 16 && !memcmp(id->data, e->event_id.data, 16)));
    switch ((int)e->type) {
    case SCHAKEL_EVENT(ROUTING_DECISION):
    case SCHAKEL_EVENT(CONSENT_DECISION):
    case SCHAKEL_EVENT(CLOCK_TICK):
    case SCHAKEL_EVENT(AUDIT_ACCESS):
    case SCHAKEL_EVENT(RULES_UPDATE):
    case SCHAKEL_EVENT(ERASURE):
    case SCHAKEL_EVENT(ADAPTER_STATUS):
    case SCHAKEL_EVENT(DIRECTORY_UPDATE): ok = 0; break;
    default: break;
    }
    if (!ok) {
        c->ignored++;
        schakel_log(SCHAKEL_LOG_WARN, "consent", "event=about_mismatch about_seq=%llu seq=%llu ignored=%llu",
                    (unsigned long long)seq, (unsigned long long)rec->seq, (unsigned long long)c->ignored);
        return NULL;
    }
    return e;
}

int consent_kind_of(schakel_consent_t *c, const char *org)
{
    const schakel_org_t *o = c->dir ? schakel_directory_by_id(c->dir, org) : NULL;
    return o ? o->kind : 0;
}

static int consent_process(void *engine, MDB_txn *txn, const schakel_logrec_t *rec, schakel_emit_t *out,
                           char *why)
{
    schakel_consent_t *c = engine;
    const schakel_envelope_t *e = rec->env;
    /* first: an entry two years old matches nothing, not even this record */
    int rc = 0;
    if (!c->matches_clear || c->matches_txn != rec->txn || c->matches_now != rec->now) {
        rc = consent_expire_matches(c, txn, rec->now);
        c->matches_clear = rc == 0, c->matches_txn = rec->txn, c->matches_now = rec->now;
    }
    if (rc == 0 && e) {
        switch ((int)e->type) {
        case SCHAKEL_EVENT(DIRECTORY_UPDATE):
            rc = schakel_engine_directory_update(txn, c->state, e, &c->dir);
            break;
        case SCHAKEL_EVENT(RULES_UPDATE):
            rc = schakel_engine_rules_update(txn, c->state, rec, SCHAKEL__V1__RULE_SET__RULE_SET_CONSENT,
                                             schakel_consent_install, c, "consent");
            break;
        case SCHAKEL_EVENT(ROUTING_DECISION): rc = consent_on_routing(c, txn, rec, out, why); break;
        case SCHAKEL_EVENT(ERASURE): /* the broker's own: the child goes from the state */
            if (!strcmp(e->source_org, "broker") && e->erasure)
                rc = consent_forget(c, txn, e->erasure->erased_subject, rec->seq);
            break;
        case SCHAKEL_EVENT(CONSENT_DECISION):
        case SCHAKEL_EVENT(CLOCK_TICK):
        case SCHAKEL_EVENT(AUDIT_ACCESS):
        case SCHAKEL_EVENT(ADAPTER_STATUS): break;
        case SCHAKEL_EVENT(CONSENT_GIVEN):
            rc = consent_on_given(c, txn, e);
            if (rc == 0) rc = consent_release_holds(c, txn, rec, out, why);
            break;
        case SCHAKEL_EVENT(CONSENT_WITHDRAWN): rc = consent_on_withdrawn(c, txn, rec); break;
        default: {
            /* who sent a loop's referral: the event itself is read back
             * from the log when a decision is about it */
            char tag;
            const ProtobufCBinaryData *id = consent_loop_id(e, &tag);
            uint8_t key[DELIVERY_KEY_MAX];
            if (id && id->len == 16) /* the child, for an erasure (erase.c) */
                rc = schakel_kv_put(txn, c->origins, key,
                                    consent_delivery_key(key, tag, id->data, e->source_org), e->subject,
                                    strlen(e->subject));
            if (rc == 0 && e->type == SCHAKEL_EVENT(SIGNAL)) rc = consent_on_signal(c, txn, rec, out, why);
        }
        }
    }
    if (rc == 0 && (!c->holds_clear || c->holds_txn != rec->txn || c->holds_now != rec->now)) {
        rc = consent_expire_holds(c, txn, rec, out, why);
        c->holds_clear = rc == 0, c->holds_txn = rec->txn, c->holds_now = rec->now;
    }
    /* consent_emit_decision and the log source name their own failure;
     * storage errors are named here */
    return rc && !why[0]
               ? schakel_fail(why, rc, "consent: cannot store state (seq %llu)", (unsigned long long)rec->seq)
               : rc;
}

/* What consent_process passes over (its switch's empty cases; the holds
 * and matches that expire go as for any record): the runner of a node
 * need not decrypt or decode them (service.h). */
static int consent_ignores(int type)
{
    switch (type) {
    case SCHAKEL_EVENT(CONSENT_DECISION):
    case SCHAKEL_EVENT(AUDIT_ACCESS):
    case SCHAKEL_EVENT(ADAPTER_STATUS): return 1;
    default: return 0;
    }
}

const schakel_engine_ops_t schakel_consent_ops = {"consent", consent_open, consent_process, consent_ignores};
