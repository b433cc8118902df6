/* The referral loop and feedback to the referrer. A delivered referral,
 * follow-up signal, warm handover, MAZL request or Veilig Thuis report is
 * recorded (deliveries; who sent a loop's opening event: origins), so
 * that news about it travels between its sides on the ground it was
 * delivered on, and a receiver's news for the referrer only as far as
 * that ground (or a consent for feedback) allows. rules.c asks here;
 * decisions.c and holds.c record each delivery (consent_delivered). */
#include <stdio.h>
#include <string.h>

#include "consent_impl.h"

/* A delivery of a referral (or report) to a receiver: on which basis,
 * which consent. */
typedef struct {
    uint8_t basis;
    uint8_t consent_id[16];
    char consent_org[SCHAKEL_ID_MAX];
    char subject[SUBJECT_LEN + 1]; /* whom it was about */
} delivery_t;

size_t consent_delivery_key(uint8_t *key, char tag, const uint8_t id[16], const char *sender)
{
    size_t n = strnlen(sender, SCHAKEL_ID_MAX - 1);
    key[0] = (uint8_t)tag;
    memcpy(key + 1, id, 16);
    memcpy(key + 17, sender, n);
    key[17 + n] = 0;
    return 18 + n;
}

static int record_delivery(schakel_consent_t *c, MDB_txn *txn, char tag, const uint8_t id[16],
                           const char *sender, const char *receiver, const char *subject, const verdict_t *v)
{
    uint8_t key[DELIVERY_KEY_MAX];
    size_t n = consent_delivery_key(key, tag, id, sender), r = strnlen(receiver, SCHAKEL_ID_MAX - 1);
    memcpy(key + n, receiver, r);
    delivery_t d;
    memset(&d, 0, sizeof d);
    d.basis = (uint8_t)v->basis;
    snprintf(d.subject, sizeof d.subject, "%s", subject);
    if (v->has_consent) {
        memcpy(d.consent_id, v->consent_id, 16);
        snprintf(d.consent_org, sizeof d.consent_org, "%s", v->consent_org);
    }
    return schakel_kv_put(txn, c->deliveries, key, n + r, &d, sizeof d);
}

/* A walk over the deliveries of one loop id (tag + id): each entry's
 * sender and receiver (from its key, not NUL-terminated: sl, rl bytes)
 * and its delivery, whose strings are terminated. */
typedef struct {
    MDB_cursor *cur;
    uint8_t prefix[17];
    int started;
    const char *sender, *receiver;
    size_t sl, rl;
    delivery_t d;
} dwalk_t;

static int dwalk_open(schakel_consent_t *c, MDB_txn *txn, char tag, const uint8_t id[16], dwalk_t *w)
{
    memset(w, 0, sizeof *w);
    w->prefix[0] = (uint8_t)tag;
    memcpy(w->prefix + 1, id, 16);
    return mdb_cursor_open(txn, c->deliveries, &w->cur) == 0;
}

/* The next well-formed entry of the id: 1, or 0 at the end. */
static int dwalk_next(dwalk_t *w)
{
    MDB_val k = {17, w->prefix}, v;
    for (;;) {
        if (mdb_cursor_get(w->cur, &k, &v, w->started ? MDB_NEXT : MDB_SET_RANGE) != 0) return 0;
        w->started = 1;
        if (k.mv_size < 18 || memcmp(k.mv_data, w->prefix, 17) != 0) return 0;
        const char *ks = (const char *)k.mv_data + 17;
        size_t rest = k.mv_size - 17, sl = strnlen(ks, rest);
        if (sl == rest || sl >= SCHAKEL_ID_MAX || v.mv_size != sizeof(delivery_t)) continue;
        w->sender = ks, w->sl = sl;
        w->receiver = ks + sl + 1, w->rl = rest - sl - 1;
        memcpy(&w->d, v.mv_data, sizeof w->d);
        w->d.consent_org[sizeof w->d.consent_org - 1] = 0;
        w->d.subject[sizeof w->d.subject - 1] = 0;
        return 1;
    }
}

static int same_name(const char *s, size_t n, const char *name)
{
    return n == strlen(name) && memcmp(s, name, n) == 0;
}

/* Was the referral (tag 'L') or report ('V') id that sender sent
 * delivered to receiver, on a ground that still holds? sender or receiver
 * NULL: any. With subject, only one about that child. Fills the
 * verdict's basis. */
static int delivered_on(schakel_consent_t *c, MDB_txn *txn, char tag, const uint8_t id[16],
                        const char *sender, const char *receiver, const char *subject, int any_ground,
                        verdict_t *out);

int consent_delivered_about(schakel_consent_t *c, MDB_txn *txn, char tag, const uint8_t id[16],
                            const char *sender, const char *receiver, const char *subject, verdict_t *out)
{
    return delivered_on(c, txn, tag, id, sender, receiver, subject, 0, out);
}

/* The same; with any_ground, also when the ground no longer holds (the
 * consent it rested on was withdrawn): who is in the loop, not on what. */
static int delivered_on(schakel_consent_t *c, MDB_txn *txn, char tag, const uint8_t id[16],
                        const char *sender, const char *receiver, const char *subject, int any_ground,
                        verdict_t *out)
{
    dwalk_t w;
    if (!dwalk_open(c, txn, tag, id, &w)) return 0;
    int ok = 0;
    while (!ok && dwalk_next(&w)) {
        const delivery_t *d = &w.d;
        if (sender && !same_name(w.sender, w.sl, sender)) continue;
        if (receiver && !same_name(w.receiver, w.rl, receiver)) continue;
        if (subject && strcmp(subject, d->subject) != 0) continue;
        if (d->basis == SCHAKEL_BASIS(CONSENT)) {
            int withdrawn = 1;
            (void)consent_load(c, txn, d->consent_id, d->consent_org, NULL, &withdrawn); /* not found: 1 */
            if (withdrawn && !any_ground) continue;
            memcpy(out->consent_id, d->consent_id, 16);
            snprintf(out->consent_org, sizeof out->consent_org, "%s", d->consent_org);
            out->has_consent = 1;
        }
        out->basis = d->basis;
        ok = 1;
    }
    mdb_cursor_close(w.cur);
    return ok;
}

/* Did org send a referral (or follow-up signal, handover, MAZL request:
 * the tag says which) with this loop id? */
static int is_origin(schakel_consent_t *c, MDB_txn *txn, char tag, const ProtobufCBinaryData *id,
                     const char *org)
{
    uint8_t key[DELIVERY_KEY_MAX];
    MDB_val v;
    if (!id || id->len != 16) return 0;
    return schakel_kv_get(txn, c->origins, key, consent_delivery_key(key, tag, id->data, org), &v) == 0;
}

/* The loop an event is news about, and its tag: a referral's
 * (referral_id), a handover's (handover_id) or a MAZL request's
 * (request_id). */
const ProtobufCBinaryData *consent_news_id(const schakel_envelope_t *e, char *tag)
{
    const ProtobufCBinaryData *id;
    if ((id = schakel_body_bytes(e, "referral_id"))) *tag = 'L';
    else if ((id = schakel_body_bytes(e, "handover_id"))) *tag = 'H';
    else if ((id = schakel_body_bytes(e, "request_id"))) *tag = 'M';
    return id;
}

static int loop_news(schakel_consent_t *c, MDB_txn *txn, const schakel_envelope_t *e, char tag,
                     const ProtobufCBinaryData *rid, const char *x, verdict_t *v);

/* The referral loop: news about a referral from its referrer to its
 * receivers travels on the ground the referral was delivered on (news
 * for the referrer: consent_feedback_to_referrer). The referral is the one with
 * that id that the referrer itself sent, about the same child. A warm
 * handover and a MAZL request are loops alike: their confirmations and
 * advice travel between their two sides, both ways. */
int consent_referral_loop(schakel_consent_t *c, MDB_txn *txn, const schakel_envelope_t *e, const char *x,
                          verdict_t *v)
{
    char tag = 0;
    const ProtobufCBinaryData *rid = consent_news_id(e, &tag);
    if (!rid || rid->len != 16) return 0;
    int from_service = consent_kind_of(c, e->source_org) == SCHAKEL_KIND(SERVICE);
    /* the feedback service names every loop's id in referral_id */
    if (from_service && tag == 'L')
        for (const char *t = "LHM"; *t; t++)
            if (loop_news(c, txn, e, *t, rid, x, v)) return 1;
    return loop_news(c, txn, e, tag, rid, x, v);
}

static int loop_news(schakel_consent_t *c, MDB_txn *txn, const schakel_envelope_t *e, char tag,
                     const ProtobufCBinaryData *rid, const char *x, verdict_t *v)
{
    int from_service = consent_kind_of(c, e->source_org) == SCHAKEL_KIND(SERVICE);
    const char *about = e->subject; /* news about the referral's own child */
    /* to a handover's giver or a MAZL request's school: from the other
     * side, or from a service (a referrer's news: consent_feedback_to_referrer) */
    if (tag != 'L' && is_origin(c, txn, tag, rid, x) &&
        consent_delivered_about(c, txn, tag, rid->data, x, from_service ? NULL : e->source_org, about, v))
        return 1;
    /* to a receiver: from the referrer, or from a service */
    if (is_origin(c, txn, tag, rid, e->source_org) &&
        consent_delivered_about(c, txn, tag, rid->data, e->source_org, x, about, v))
        return 1;
    return from_service && consent_delivered_about(c, txn, tag, rid->data, NULL, x, about, v);
}

/* Does news about a referral tell its referrer no more than the referral's
 * own ground allows: that it arrived, and that someone is on it? */
static int minimal_step(const schakel_envelope_t *e)
{
    switch ((int)e->type) {
    case SCHAKEL_EVENT(REFERRAL_RECEIVED):
    case SCHAKEL_EVENT(FIRST_CONTACT): return 1;
    case SCHAKEL_EVENT(FEEDBACK_STATUS):
        return e->feedback_status->state == SCHAKEL__V1__LOOP_STATE__LOOP_STATE_RECEIVED ||
               e->feedback_status->state == SCHAKEL__V1__LOOP_STATE__LOOP_STATE_FIRST_CONTACT;
    default: return 0;
    }
}

/* News about a referral for its referrer, from a receiver it was delivered
 * to or from a service. How the help goes (help started, waiting list,
 * declined, redirected, closed, the intake itself) is the family's to
 * share: it needs its own ground, a consent of the child that names the
 * referrer itself (a consent for its kind does not count) for the purpose
 * feedback. Without one, the referral's own ground carries only
 * `received` and `first_contact`; the rest is denied, with the reason. */
int consent_feedback_to_referrer(schakel_consent_t *c, MDB_txn *txn, const schakel_envelope_t *e,
                                 const char *x, const char *date, verdict_t *v)
{
    const ProtobufCBinaryData *rid = schakel_body_bytes(e, "referral_id");
    if (!rid || rid->len != 16 || !is_origin(c, txn, 'L', rid, x)) return 0;
    const char *from = consent_kind_of(c, e->source_org) == SCHAKEL_KIND(SERVICE) ? NULL : e->source_org;
    if (!delivered_on(c, txn, 'L', rid->data, x, from, e->subject, 1, &(verdict_t){0})) return 0;
    if (consent_find(c, txn, e, x, date, COVER_FEEDBACK, v)) {
        v->outcome = SCHAKEL_OUTCOME(DELIVER), v->basis = SCHAKEL_BASIS(CONSENT),
        v->rule = "consent/feedback", v->has_consent = 1;
        return 1;
    }
    int minimal = minimal_step(e);
    if (minimal && consent_delivered_about(c, txn, 'L', rid->data, x, from, e->subject, v)) {
        v->outcome = SCHAKEL_OUTCOME(DELIVER), v->rule = "consent/referral-loop-minimal";
        return 1;
    }
    memset(v, 0, sizeof *v);
    v->outcome = SCHAKEL_OUTCOME(DENY), v->basis = SCHAKEL_BASIS(CONSENT);
    v->rule = minimal ? "consent/referral-loop-withdrawn" : "consent/feedback-not-given";
    return 1;
}

/* The loop an event opens and its tag: a referral's id, or the id of a
 * signal that asks for follow-up ('L'), a handover's ('H'), a MAZL
 * request's ('M'); NULL for other events. */
const ProtobufCBinaryData *consent_loop_id(const schakel_envelope_t *e, char *tag)
{
    *tag = 'L';
    if (e->type == SCHAKEL_EVENT(REFERRAL)) return &e->referral->referral_id;
    if (e->type == SCHAKEL_EVENT(SIGNAL) && e->signal->follow_up_requested) return &e->event_id;
    *tag = 'H';
    if (e->type == SCHAKEL_EVENT(HANDOVER)) return &e->handover->handover_id;
    *tag = 'M';
    if (e->type == SCHAKEL_EVENT(MAZL_REQUEST)) return &e->mazl_request->request_id;
    return NULL;
}

/* The referrer of the loop rid that receiver was delivered (a referral,
 * or an earlier redirect) about subject, into out; 0 when none. */
static int referrer_of(schakel_consent_t *c, MDB_txn *txn, const uint8_t rid[16], const char *receiver,
                       const char *subject, char out[SCHAKEL_ID_MAX])
{
    dwalk_t w;
    if (!dwalk_open(c, txn, 'L', rid, &w)) return 0;
    int ok = 0;
    while (!ok && dwalk_next(&w)) {
        if (!same_name(w.receiver, w.rl, receiver) || strcmp(subject, w.d.subject) != 0) continue;
        memcpy(out, w.sender, w.sl);
        out[w.sl] = 0;
        ok = 1;
    }
    mdb_cursor_close(w.cur);
    return ok;
}

/* Bookkeeping after a delivery: a delivered referral opens its loop, a
 * delivered report lets Veilig Thuis answer its reporter, and a receiver's
 * intake redirected to x, delivered to x, makes x a receiver of the loop:
 * news about it travels between x and the referrer on the ground the
 * intake was delivered to x on (docs/feedback.md, "Redirected"). */
int consent_delivered(schakel_consent_t *c, MDB_txn *txn, const schakel_envelope_t *e, const char *x,
                      const verdict_t *v)
{
    if (v->outcome != SCHAKEL_OUTCOME(DELIVER)) return 0;
    char tag;
    const ProtobufCBinaryData *id = consent_loop_id(e, &tag);
    if (id && id->len == 16) return record_delivery(c, txn, tag, id->data, e->source_org, x, e->subject, v);
    if (e->type == SCHAKEL_EVENT(INTAKE) &&
        e->intake->outcome == SCHAKEL__V1__INTAKE_OUTCOME__INTAKE_OUTCOME_REDIRECTED &&
        e->intake->referral_id.len == 16 && !strcmp(e->intake->redirected_to, x)) {
        char referrer[SCHAKEL_ID_MAX];
        if (!referrer_of(c, txn, e->intake->referral_id.data, e->source_org, e->subject, referrer) ||
            !strcmp(referrer, x))
            return 0;
        return record_delivery(c, txn, 'L', e->intake->referral_id.data, referrer, x, e->subject, v);
    }
    if (e->type == SCHAKEL_EVENT(VEILIGTHUIS_REPORT) && e->veiligthuis_report->report_id.len == 16)
        return record_delivery(c, txn, 'V', e->veiligthuis_report->report_id.data, e->source_org, x,
                               e->subject, v);
    return 0;
}
