/* The consent engine. State in LMDB, all of it derived from the log, and
 * none of it content (no event is kept: what a decision is about is read
 * back from the log by its seq, schakel_log_event):
 *   consents      consent id || org that recorded it -> withdrawn flag ||
 *                 the consent reduced to what decisions need (subject,
 *                 age band, consent_given without recorded_by)
 *   by_subject    subject || consent id || org -> ""
 *   holds         subject || u64be(about seq) || recipient -> deadline, seq
 *   deadlines     u64be(deadline) || hold key -> ""
 *   deliveries    tag || id || sender NUL receiver -> basis, consent
 *                 (tag 'L': a referral or follow-up signal, by loop id;
 *                 'H': a warm handover, by handover id; 'M': a MAZL
 *                 request, by request id; 'V': a Veilig Thuis report,
 *                 by report id)
 *   origins       'L', 'H' or 'M' || loop id || sender -> ""
 *   matches       subject || org -> entered at, deadline, seq of the org's
 *                 latest signal (the verwijsindex: who signalled, no content)
 *   match_deadlines  u64be(deadline) || match key -> ""
 *   match_told    subject || org NUL org (the smaller id first) -> "": this
 *                 pair was told of its match
 *   state         "directory" -> the directory in force, "format" -> 3
 * Ids that organisations choose (consent, referral and report ids) are
 * scoped to the organisation that published them: the same id from
 * another organisation is another consent, referral or report.
 * Time is the log's (rec->now); ids of decisions are derived from what
 * they are about, so replay yields the same bytes. */
#include "consent.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "calendar.h"
#include "directory.h"
#include "error.h"
#include "logging.h"

#define RULES_VERSION "schakel/v1/consent-rules/4" /* bump when a coded rule changes */
#define STATE_FORMAT 3 /* 1: kept whole events in clear (table "events"); 2: no match index */
#define SUBJECT_LEN 64
#define HOLD_KEY_MAX (SUBJECT_LEN + 8 + SCHAKEL_ID_MAX)
#define CONSENT_KEY_MAX (16 + SCHAKEL_ID_MAX)
#define DELIVERY_KEY_MAX (1 + 16 + 2 * SCHAKEL_ID_MAX)

typedef Schakel__V1__ConsentOutcome outcome_t;
#define O(x) SCHAKEL__V1__CONSENT_OUTCOME__CONSENT_OUTCOME_##x
#define B(x) SCHAKEL__V1__LEGAL_BASIS__LEGAL_BASIS_##x
#define T(x) SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_##x
#define K(x) SCHAKEL__V1__ORG_KIND__ORG_KIND_##x

struct schakel_consent {
    char org[SCHAKEL_ID_MAX];
    uint8_t policy[SCHAKEL_SHA256_LEN];
    int64_t hold_ms;
    uint8_t fallback[SCHAKEL_EVENT_TYPE_LIMIT]; /* O(HOLD) or O(DENY) */
    MDB_dbi state, consents, by_subject, holds, deadlines, deliveries, origins;
    MDB_dbi matches, match_deadlines, match_told; /* the verwijsindex */
    schakel_directory_t *dir;
    uint64_t ignored; /* events that named an id they may not use (log lines say which) */
};

/* What was decided for one recipient, and why. */
typedef struct {
    int outcome, basis, duty;
    const char *rule;
    uint8_t consent_id[16];
    int has_consent;
    char consent_org[SCHAKEL_ID_MAX]; /* who recorded that consent */
    int not_entitled; /* a consent would cover it, but not given by whom the law asks */
} verdict_t;

/* ---- policy ---- */

static int fallback_parse(const char *s)
{
    if (!s) return 0;
    if (!strcmp(s, "hold")) return O(HOLD);
    if (!strcmp(s, "deny")) return O(DENY);
    return 0;
}

/* "notice" told a routed recipient without consent that the sender had a
 * concern; that is not what the verwijsindex allows (it tells only
 * signallers, of each other), so a policy that still says so is refused
 * with what to write instead. key is "*" or a known event type. */
static int notice_refused(const char *key, const json_t *v, char *why)
{
    const char *s = json_string_value(v);
    if (!s || strcmp(s, "notice") != 0) return 0;
    return schakel_fail(why, SCHAKEL_ECONFIG,
                        "consent policy: without_consent.%s: \"notice\" is no longer a policy value: "
                        "signals now go to the match index (the verwijsindex tells two or more "
                        "organisations that signal about the same child of each other, on no "
                        "policy); write \"hold\" or \"deny\"", key);
}

schakel_consent_t *schakel_consent_new(const char *org_id, const char *text, size_t len, char *why)
{
    schakel_consent_t *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    snprintf(c->org, sizeof c->org, "%s", org_id);
    json_error_t err;
    json_t *doc = json_loadb(text, len, 0, &err);
    json_t *days = json_object_get(doc, "hold_days"), *wc = json_object_get(doc, "without_consent");
    if (!doc) {
        schakel_fail(why, SCHAKEL_ECONFIG, "consent policy: line %d: %s", err.line, err.text);
        goto fail;
    }
    if (!json_is_integer(days) || json_integer_value(days) < 1 || json_integer_value(days) > 366) {
        schakel_fail(why, SCHAKEL_ECONFIG, "consent policy: hold_days must be 1 to 366");
        goto fail;
    }
    c->hold_ms = json_integer_value(days) * 86400000LL;
    int def = fallback_parse(json_string_value(json_object_get(wc, "*")));
    if (json_is_object(wc) && notice_refused("*", json_object_get(wc, "*"), why)) goto fail;
    if (!json_is_object(wc) || !def) {
        schakel_fail(why, SCHAKEL_ECONFIG, "consent policy: without_consent must be an object with "
                                           "\"*\": \"hold\" or \"deny\"");
        goto fail;
    }
    memset(c->fallback, def, sizeof c->fallback);
    const char *key;
    json_t *v;
    json_object_foreach(wc, key, v) {
        if (!strcmp(key, "*")) continue;
        int t = schakel_event_type_parse(key), f = fallback_parse(json_string_value(v));
        if (t > 0 && t < SCHAKEL_EVENT_TYPE_LIMIT && notice_refused(key, v, why)) goto fail;
        if (t <= 0 || t >= SCHAKEL_EVENT_TYPE_LIMIT || !f) {
            schakel_fail(why, SCHAKEL_ECONFIG, "consent policy: without_consent.%s: an event type "
                                               "with \"hold\" or \"deny\"", key);
            goto fail;
        }
        c->fallback[t] = (uint8_t)f;
    }
    json_object_foreach(doc, key, v) {
        if (strcmp(key, "version") && strcmp(key, "hold_days") && strcmp(key, "without_consent")) {
            schakel_fail(why, SCHAKEL_ECONFIG, "consent policy: unknown field \"%s\"", key);
            goto fail;
        }
    }
    schakel_sha256_t h;
    schakel_sha256_init(&h);
    schakel_sha256_update(&h, RULES_VERSION, sizeof RULES_VERSION);
    schakel_sha256_update(&h, text, len);
    schakel_sha256_final(&h, c->policy);
    json_decref(doc);
    return c;
fail:
    json_decref(doc);
    schakel_consent_destroy(&c);
    return NULL;
}

void schakel_consent_destroy(schakel_consent_t **self_p)
{
    schakel_consent_t *c = *self_p;
    if (!c) return;
    schakel_directory_destroy(&c->dir);
    free(c);
    *self_p = NULL;
}

const uint8_t *schakel_consent_policy(const schakel_consent_t *c)
{
    return c->policy;
}

const char *schakel_consent_default_policy(void)
{
    return "{\n"
           "  \"version\": 1,\n"
           "  \"hold_days\": 20,\n"
           "  \"without_consent\": {\n"
           "    \"signal\": \"hold\",\n"
           "    \"referral\": \"hold\",\n"
           "    \"*\": \"hold\"\n"
           "  }\n"
           "}\n";
}

/* ---- state ---- */

static int consent_open(void *engine, MDB_txn *txn, char *why)
{
    schakel_consent_t *c = engine;
    MDB_dbi old;
    if (mdb_dbi_open(txn, "events", 0, &old) == 0)
        return schakel_fail(why, SCHAKEL_ECONFIG,
                            "consent: this state directory was written by an older version that kept "
                            "events in clear: stop the service, delete the directory (it is rebuilt "
                            "from the log) and start it again");
    const char *const names[] = {"state",      "consents", "by_subject",      "holds",     "deadlines",
                                 "deliveries", "origins",  "matches", "match_deadlines", "match_told"};
    MDB_dbi *const dbis[] = {&c->state,      &c->consents, &c->by_subject, &c->holds,
                             &c->deadlines,  &c->deliveries, &c->origins,  &c->matches,
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
    return rc ? rc : schakel_engine_directory_load(txn, c->state, &c->dir);
}

/* The event a decision is about, read back from the log: NULL when it was
 * erased, is not what the reference says (another organisation's event of
 * the same id), or is of a kind no decision is about. An error only when
 * the log cannot be read (*rc). */
static schakel_envelope_t *load_event(schakel_consent_t *c, const schakel_logrec_t *rec, uint64_t seq,
                                      const ProtobufCBinaryData *id, int *rc, char *why)
{
    schakel_envelope_t *e = NULL;
    int r = schakel_log_event(rec->log, seq, &e, why);
    *rc = r == SCHAKEL_ENOTFOUND ? 0 : r;
    if (!e) return NULL;
    int ok = (!id || (id->len == 16 && e->event_id.len == 16 && !memcmp(id->data, e->event_id.data, 16)));
    switch ((int)e->type) {
    case T(ROUTING_DECISION):
    case T(CONSENT_DECISION):
    case T(CLOCK_TICK):
    case T(AUDIT_ACCESS):
    case T(DIRECTORY_UPDATE): ok = 0; break;
    default: break;
    }
    if (!ok) {
        c->ignored++;
        schakel_log(SCHAKEL_LOG_WARN, "consent", "event=about_mismatch about_seq=%llu seq=%llu ignored=%llu",
                    (unsigned long long)seq, (unsigned long long)rec->seq, (unsigned long long)c->ignored);
        schakel_envelope_free(e);
        return NULL;
    }
    return e;
}

static size_t consent_key(uint8_t *key, const uint8_t id[16], const char *org)
{
    size_t n = strnlen(org, SCHAKEL_ID_MAX - 1);
    memcpy(key, id, 16);
    memcpy(key + 16, org, n);
    return 16 + n;
}

/* A consent recorded by org, and whether it was withdrawn. Caller frees
 * *env. */
static int load_consent(schakel_consent_t *c, MDB_txn *txn, const uint8_t id[16], const char *org,
                        schakel_envelope_t **env, int *withdrawn)
{
    MDB_val v;
    uint8_t key[CONSENT_KEY_MAX];
    *env = NULL;
    if (schakel_kv_get(txn, c->consents, key, consent_key(key, id, org), &v) != 0 || v.mv_size < 2)
        return SCHAKEL_ENOTFOUND;
    const uint8_t *p = v.mv_data;
    *withdrawn = p[0];
    *env = schakel_envelope_decode(p + 1, v.mv_size - 1, NULL);
    return *env ? 0 : SCHAKEL_ECORRUPT;
}

static int kind_of(schakel_consent_t *c, const char *org)
{
    const schakel_org_t *o = c->dir ? schakel_directory_by_id(c->dir, org) : NULL;
    return o ? o->kind : 0;
}

/* ---- the rules ---- */

/* Whose consent counts, by the child's age (WGBO art. 7:450 and 7:465 BW;
 * docs/routing.md, "Whose consent counts"): under 12 the holders of
 * parental authority (gezag) or the guardian; 12-15 the youth together
 * with them (or with the guardian); 16-17 the youth alone; a youth of 12
 * to 17 who cannot reasonably judge their interests is represented by the
 * holders alone. One parent counts alone only when holding authority
 * alone; a parent without authority never does. */
static int by_holders(const Schakel__V1__ConsentGiven *cg)
{
    return cg->given_by == SCHAKEL__V1__GIVEN_BY__GIVEN_BY_PARENTS ||
           cg->given_by == SCHAKEL__V1__GIVEN_BY__GIVEN_BY_GUARDIAN ||
           (cg->given_by == SCHAKEL__V1__GIVEN_BY__GIVEN_BY_ONE_PARENT &&
            cg->authority == SCHAKEL__V1__PARENTAL_AUTHORITY__PARENTAL_AUTHORITY_SOLE);
}

static int given_by_counts(int age, const Schakel__V1__ConsentGiven *cg)
{
    switch (age) {
    case SCHAKEL__V1__AGE_BAND__AGE_BAND_UNDER_12: return by_holders(cg);
    case SCHAKEL__V1__AGE_BAND__AGE_BAND_12_15:
        return cg->given_by == SCHAKEL__V1__GIVEN_BY__GIVEN_BY_YOUTH_WITH_PARENTS ||
               cg->given_by == SCHAKEL__V1__GIVEN_BY__GIVEN_BY_YOUTH_WITH_GUARDIAN ||
               (cg->youth_cannot_judge && by_holders(cg));
    case SCHAKEL__V1__AGE_BAND__AGE_BAND_16_17:
        return cg->given_by == SCHAKEL__V1__GIVEN_BY__GIVEN_BY_YOUTH_ALONE ||
               (cg->youth_cannot_judge && by_holders(cg));
    case SCHAKEL__V1__AGE_BAND__AGE_BAND_ADULT:
        return cg->given_by == SCHAKEL__V1__GIVEN_BY__GIVEN_BY_ADULT_STUDENT;
    default: return 0;
    }
}

/* What a consent must name to cover an event for a recipient. */
enum {
    COVER_EVENT,   /* the recipient or its kind, the event's purpose and categories */
    COVER_FEEDBACK /* the recipient itself (never a kind), purpose feedback, the categories */
};

enum { COVERS_NOT = 0, COVERS = 1, COVERS_NOT_ENTITLED = 2 };

/* Does consent cg (not withdrawn) cover recipient x of event e on `date`,
 * as mode asks? COVERS_NOT_ENTITLED: it would, but it was not given by
 * whom the child's age asks. */
static int covers(schakel_consent_t *c, const Schakel__V1__ConsentGiven *cg, const schakel_envelope_t *e,
                  const char *x, const char *date, int mode)
{
    if (cg->recipient_org[0] ? strcmp(cg->recipient_org, x) != 0
                             : mode == COVER_FEEDBACK || !cg->recipient_kind ||
                                   (int)cg->recipient_kind != kind_of(c, x))
        return 0;
    if (strcmp(date, cg->valid_from) < 0 || (cg->valid_until[0] && strcmp(date, cg->valid_until) > 0))
        return 0;
    int age = e->age_band ? (int)e->age_band : (int)cg->age_band;
    int ok = given_by_counts(age, cg) ? COVERS : COVERS_NOT_ENTITLED;
    int want = mode == COVER_FEEDBACK ? SCHAKEL__V1__PURPOSE__PURPOSE_FEEDBACK : (int)e->purpose, purpose = 0;
    for (size_t i = 0; i < cg->n_purposes && !purpose; i++) purpose = (int)cg->purposes[i] == want;
    if (!purpose) return COVERS_NOT;
    for (size_t i = 0; i < e->n_categories && cg->n_categories; i++) {
        int in = 0;
        for (size_t j = 0; j < cg->n_categories && !in; j++) in = cg->categories[j] == e->categories[i];
        if (!in) return COVERS_NOT;
    }
    return ok;
}

/* The first consent of the event's subject (in consent id order) that
 * covers recipient x today, as mode asks. */
static int find_consent(schakel_consent_t *c, MDB_txn *txn, const schakel_envelope_t *e,
                        const char *x, const char *date, int mode, verdict_t *out)
{
    MDB_cursor *cur;
    if (!e->subject[0] || mdb_cursor_open(txn, c->by_subject, &cur) != 0) return 0;
    MDB_val k = {SUBJECT_LEN, e->subject}, v;
    int found = 0;
    for (int rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0 && !found;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size <= SUBJECT_LEN + 16 || k.mv_size >= SUBJECT_LEN + CONSENT_KEY_MAX ||
            memcmp(k.mv_data, e->subject, SUBJECT_LEN))
            break;
        const uint8_t *id = (const uint8_t *)k.mv_data + SUBJECT_LEN;
        char org[SCHAKEL_ID_MAX];
        size_t on = k.mv_size - SUBJECT_LEN - 16;
        memcpy(org, id + 16, on);
        org[on] = 0;
        schakel_envelope_t *ce;
        int withdrawn;
        int cv = load_consent(c, txn, id, org, &ce, &withdrawn) == 0 && !withdrawn
                     ? covers(c, ce->consent_given, e, x, date, mode)
                     : COVERS_NOT;
        if (cv == COVERS) {
            memcpy(out->consent_id, id, 16);
            snprintf(out->consent_org, sizeof out->consent_org, "%s", org);
            found = 1;
        } else if (cv == COVERS_NOT_ENTITLED) {
            out->not_entitled = 1;
        }
        schakel_envelope_free(ce);
    }
    mdb_cursor_close(cur);
    return found;
}

/* A delivery of a referral (or report) to a receiver: on which basis,
 * which consent. */
typedef struct {
    uint8_t basis;
    uint8_t consent_id[16];
    char consent_org[SCHAKEL_ID_MAX];
    char subject[SUBJECT_LEN + 1]; /* whom it was about */
} delivery_t;

static size_t delivery_key(uint8_t *key, char tag, const uint8_t id[16], const char *sender)
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
    size_t n = delivery_key(key, tag, id, sender), r = strnlen(receiver, SCHAKEL_ID_MAX - 1);
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

/* Is x the leerplicht office of the child's home municipality, the one
 * routing chose (docs/routing.md)? */
static int is_home_leerplicht(const schakel_directory_t *d, const schakel_envelope_t *e, const char *x)
{
    const char *reason, *o = schakel_directory_home_leerplicht(d, schakel_body_string(e, "municipality"),
                                                               e->district, &reason);
    return o && !strcmp(o, x);
}

/* Was the referral (tag 'L') or report ('V') id that sender sent
 * delivered to receiver, on a ground that still holds? sender or receiver
 * NULL: any. With subject, only one about that child. Fills the
 * verdict's basis. */
static int delivered_on(schakel_consent_t *c, MDB_txn *txn, char tag, const uint8_t id[16],
                        const char *sender, const char *receiver, const char *subject, int any_ground,
                        verdict_t *out);

static int delivered_about(schakel_consent_t *c, MDB_txn *txn, char tag, const uint8_t id[16],
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
    MDB_cursor *cur;
    if (mdb_cursor_open(txn, c->deliveries, &cur) != 0) return 0;
    uint8_t prefix[17];
    prefix[0] = (uint8_t)tag;
    memcpy(prefix + 1, id, 16);
    MDB_val k = {17, prefix}, v;
    int ok = 0;
    for (int rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0 && !ok;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size < 18 || memcmp(k.mv_data, prefix, 17) != 0) break;
        const char *ks = (const char *)k.mv_data + 17;
        size_t rest = k.mv_size - 17, sl = strnlen(ks, rest);
        if (sl == rest) continue;
        const char *kr = ks + sl + 1;
        size_t rl = rest - sl - 1;
        if (sender && (sl != strlen(sender) || memcmp(ks, sender, sl) != 0)) continue;
        if (receiver && (rl != strlen(receiver) || memcmp(kr, receiver, rl) != 0)) continue;
        if (v.mv_size != sizeof(delivery_t)) continue;
        delivery_t d;
        memcpy(&d, v.mv_data, sizeof d);
        d.consent_org[sizeof d.consent_org - 1] = 0;
        d.subject[sizeof d.subject - 1] = 0;
        if (subject && strcmp(subject, d.subject) != 0) continue;
        if (d.basis == B(CONSENT)) {
            schakel_envelope_t *ce;
            int withdrawn = 1;
            load_consent(c, txn, d.consent_id, d.consent_org, &ce, &withdrawn);
            schakel_envelope_free(ce);
            if (withdrawn && !any_ground) continue;
            memcpy(out->consent_id, d.consent_id, 16);
            snprintf(out->consent_org, sizeof out->consent_org, "%s", d.consent_org);
            out->has_consent = 1;
        }
        out->basis = d.basis;
        ok = 1;
    }
    mdb_cursor_close(cur);
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
    return schakel_kv_get(txn, c->origins, key, delivery_key(key, tag, id->data, org), &v) == 0;
}

/* The loop an event is news about, and its tag: a referral's
 * (referral_id), a handover's (handover_id) or a MAZL request's
 * (request_id). */
static const ProtobufCBinaryData *news_of(const schakel_envelope_t *e, char *tag)
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
 * for the referrer: feedback_to_referrer). The referral is the one with
 * that id that the referrer itself sent, about the same child. A warm
 * handover and a MAZL request are loops alike: their confirmations and
 * advice travel between their two sides, both ways. */
static int referral_loop(schakel_consent_t *c, MDB_txn *txn, const schakel_envelope_t *e,
                         const char *x, verdict_t *v)
{
    char tag = 0;
    const ProtobufCBinaryData *rid = news_of(e, &tag);
    if (!rid || rid->len != 16) return 0;
    int from_service = kind_of(c, e->source_org) == K(SERVICE);
    /* the feedback service names every loop's id in referral_id */
    if (from_service && tag == 'L')
        for (const char *t = "LHM"; *t; t++)
            if (loop_news(c, txn, e, *t, rid, x, v)) return 1;
    return loop_news(c, txn, e, tag, rid, x, v);
}

static int loop_news(schakel_consent_t *c, MDB_txn *txn, const schakel_envelope_t *e, char tag,
                     const ProtobufCBinaryData *rid, const char *x, verdict_t *v)
{
    int from_service = kind_of(c, e->source_org) == K(SERVICE);
    const char *about = e->subject; /* news about the referral's own child */
    /* to a handover's giver or a MAZL request's school: from the other
     * side, or from a service (a referrer's news: feedback_to_referrer) */
    if (tag != 'L' && is_origin(c, txn, tag, rid, x) &&
        delivered_about(c, txn, tag, rid->data, x, from_service ? NULL : e->source_org, about, v))
        return 1;
    /* to a receiver: from the referrer, or from a service */
    if (is_origin(c, txn, tag, rid, e->source_org) &&
        delivered_about(c, txn, tag, rid->data, e->source_org, x, about, v))
        return 1;
    return from_service && delivered_about(c, txn, tag, rid->data, NULL, x, about, v);
}

/* Does news about a referral tell its referrer no more than the referral's
 * own ground allows: that it arrived, and that someone is on it? */
static int minimal_step(const schakel_envelope_t *e)
{
    switch ((int)e->type) {
    case T(REFERRAL_RECEIVED):
    case T(FIRST_CONTACT): return 1;
    case T(FEEDBACK_STATUS):
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
static int feedback_to_referrer(schakel_consent_t *c, MDB_txn *txn, const schakel_envelope_t *e,
                                const char *x, const char *date, verdict_t *v)
{
    const ProtobufCBinaryData *rid = schakel_body_bytes(e, "referral_id");
    if (!rid || rid->len != 16 || !is_origin(c, txn, 'L', rid, x)) return 0;
    const char *from = kind_of(c, e->source_org) == K(SERVICE) ? NULL : e->source_org;
    if (!delivered_on(c, txn, 'L', rid->data, x, from, e->subject, 1, &(verdict_t){0})) return 0;
    if (find_consent(c, txn, e, x, date, COVER_FEEDBACK, v)) {
        v->outcome = O(DELIVER), v->basis = B(CONSENT), v->rule = "consent/feedback", v->has_consent = 1;
        return 1;
    }
    int minimal = minimal_step(e);
    if (minimal && delivered_about(c, txn, 'L', rid->data, x, from, e->subject, v)) {
        v->outcome = O(DELIVER), v->rule = "consent/referral-loop-minimal";
        return 1;
    }
    memset(v, 0, sizeof *v);
    v->outcome = O(DENY), v->basis = B(CONSENT);
    v->rule = minimal ? "consent/referral-loop-withdrawn" : "consent/feedback-not-given";
    return 1;
}

/* A report to Veilig Thuis: the family is still to be told unless the
 * reporter told the parents, or names a ground of the meldcode for not
 * telling them (validation admits only those; docs/events.md). A report
 * with neither is refused at publish; one on the log from before that
 * rule keeps the duty. */
static void report_duty(const Schakel__V1__VeiligThuisReport *r, verdict_t *v)
{
    v->basis = B(MELDCODE), v->rule = "legal/meldcode-report", v->duty = 1;
    if (r->parents_informed) {
        v->duty = 0;
    } else if (r->not_informed_reason[0]) {
        v->rule = "legal/meldcode-report-not-informed", v->duty = 0;
    }
}

/* The coded legal bases. */
static int legal_basis(schakel_consent_t *c, MDB_txn *txn, const schakel_envelope_t *e,
                       const char *x, verdict_t *v)
{
    int kx = kind_of(c, x), ks = kind_of(c, e->source_org);
    v->duty = 1;
    if (!strcmp(x, e->source_org)) {
        v->basis = B(OWN_ORGANISATION), v->rule = "legal/own-organisation", v->duty = 0;
    } else if (!e->subject[0]) {
        v->basis = B(ANONYMOUS), v->rule = "legal/anonymous", v->duty = 0;
    } else if (e->type == T(VEILIGTHUIS_REPORT) && kx == K(VEILIGTHUIS)) {
        report_duty(e->veiligthuis_report, v);
    } else if (e->type == T(LOOP_REMINDER) && ks == K(SERVICE) && kx == K(VEILIGTHUIS) &&
               e->loop_reminder->referral_id.len == 16 &&
               delivered_about(c, txn, 'V', e->loop_reminder->referral_id.data, NULL, x, e->subject,
                               &(verdict_t){0})) {
        /* the feedback loop reminds Veilig Thuis of a report of this child
         * that it has on the meldcode: the reminder tells it nothing new */
        v->basis = B(MELDCODE), v->rule = "legal/meldcode-report-reminder", v->duty = 0;
    } else if (e->type == T(VEILIGTHUIS_FEEDBACK) && ks == K(VEILIGTHUIS) &&
               e->veiligthuis_feedback->report_id.len == 16 &&
               delivered_about(c, txn, 'V', e->veiligthuis_feedback->report_id.data, x, e->source_org,
                               e->subject, &(verdict_t){0})) {
        /* Veilig Thuis tells the family itself; the reporter only hears
         * back, about a report of this child that it sent itself to this
         * Veilig Thuis */
        v->basis = B(VEILIGTHUIS_FEEDBACK), v->rule = "legal/veiligthuis-feedback", v->duty = 0;
    } else if (((e->type == T(ABSENCE) && e->absence->leerplicht_report) ||
                e->type == T(THUISZITTER_STATUS)) &&
               (ks == K(SCHOOL) || ks == K(PPO)) && c->dir &&
               is_home_leerplicht(c->dir, e, x)) {
        v->basis = B(LEERPLICHT), v->rule = "legal/leerplicht";
    } else {
        v->duty = 0;
        return 0;
    }
    v->outcome = O(DELIVER);
    return 1;
}

/* Consent given or withdrawn goes to the recipient it names, on itself.
 * A withdrawal names a consent recorded by the same organisation. */
static int consent_news(schakel_consent_t *c, MDB_txn *txn, const schakel_envelope_t *e,
                        const char *x, verdict_t *v)
{
    const ProtobufCBinaryData *id = e->type == T(CONSENT_GIVEN)       ? &e->consent_given->consent_id
                                    : e->type == T(CONSENT_WITHDRAWN) ? &e->consent_withdrawn->consent_id
                                                                      : NULL;
    if (!id || id->len != 16) return 0;
    schakel_envelope_t *ce = NULL;
    int withdrawn, ok = 0;
    if (load_consent(c, txn, id->data, e->source_org, &ce, &withdrawn) == 0) {
        const Schakel__V1__ConsentGiven *cg = ce->consent_given;
        ok = cg->recipient_org[0] ? !strcmp(cg->recipient_org, x)
                                  : cg->recipient_kind && (int)cg->recipient_kind == kind_of(c, x);
    }
    schakel_envelope_free(ce);
    if (!ok) return 0;
    v->outcome = O(DELIVER), v->basis = B(CONSENT);
    v->rule = e->type == T(CONSENT_GIVEN) ? "consent/registered" : "consent/withdrawn";
    memcpy(v->consent_id, id->data, 16);
    snprintf(v->consent_org, sizeof v->consent_org, "%s", e->source_org);
    v->has_consent = 1;
    return 1;
}

/* May recipient x know event e, at log time now? */
static void decide(schakel_consent_t *c, MDB_txn *txn, const schakel_envelope_t *e, const char *x,
                   int64_t now, verdict_t *v)
{
    memset(v, 0, sizeof *v);
    char date[11];
    schakel_date_of(now, date);
    if (!kind_of(c, x)) {
        v->outcome = O(DENY), v->basis = B(CONSENT), v->rule = "directory/unknown-recipient";
        return;
    }
    if (legal_basis(c, txn, e, x, v) || consent_news(c, txn, e, x, v) ||
        feedback_to_referrer(c, txn, e, x, date, v))
        return;
    if (find_consent(c, txn, e, x, date, COVER_EVENT, v)) {
        v->outcome = O(DELIVER), v->basis = B(CONSENT), v->rule = "consent/specific", v->has_consent = 1;
        return;
    }
    if (referral_loop(c, txn, e, x, v)) {
        v->outcome = O(DELIVER), v->rule = "consent/referral-loop";
        return;
    }
    v->outcome = c->fallback[e->type];
    v->basis = B(CONSENT);
    /* held or denied as without consent; consent/not-entitled says why
     * the consent there is does not count */
    v->rule = v->not_entitled ? "consent/not-entitled" : v->outcome == O(HOLD) ? "fallback/hold" : "fallback/deny";
}

/* ---- decisions on the log ---- */

static int emit_decision(schakel_consent_t *c, schakel_emit_t *out, const schakel_envelope_t *e,
                         uint64_t about_seq, const char *x, const verdict_t *v,
                         const ProtobufCBinaryData *cause, int64_t now, char *why)
{
    Schakel__V1__ConsentDecision d = SCHAKEL__V1__CONSENT_DECISION__INIT;
    Schakel__V1__Notice notice = SCHAKEL__V1__NOTICE__INIT;
    d.about_event_id = e->event_id;
    d.about_seq = about_seq;
    d.recipient_org = (char *)x;
    d.outcome = v->outcome;
    d.legal_basis = v->basis;
    if (v->has_consent) {
        d.consent_id.data = (uint8_t *)v->consent_id;
        d.consent_id.len = 16;
    }
    d.rule_id = (char *)v->rule;
    d.policy_version.data = c->policy;
    d.policy_version.len = sizeof c->policy;
    d.duty_to_inform = v->duty;
    if (v->outcome == O(NOTICE_ONLY)) {
        notice.concerned_org = e->source_org;
        const ProtobufCMessage *b = schakel_envelope_body(e);
        const ProtobufCFieldDescriptor *f =
            b ? protobuf_c_message_descriptor_get_field_by_name(b->descriptor, "contact") : NULL;
        if (f && f->type == PROTOBUF_C_TYPE_MESSAGE && f->descriptor == &schakel__v1__contact_ref__descriptor)
            notice.contact = *(Schakel__V1__ContactRef **)((char *)b + f->offset);
        d.notice = &notice;
    }
    if ((v->outcome == O(DENY) || v->outcome == O(EXPIRED)) && strcmp(e->source_org, x) != 0 &&
        kind_of(c, e->source_org))
        d.inform_org = e->source_org;
    uint8_t id[16];
    schakel_derive_id(id, "schakel/v1/consent", e->event_id.data, (size_t)16, e->source_org,
                      strlen(e->source_org), x, strlen(x), cause->data, cause->len, NULL);
    Schakel__V1__Envelope env = SCHAKEL__V1__ENVELOPE__INIT;
    env.event_id.data = id;
    env.event_id.len = 16;
    env.type = T(CONSENT_DECISION);
    env.source_org = c->org;
    env.occurred_at = now;
    env.subject = e->subject;
    /* a match notice says who and whom to contact; the other
     * organisation's flow is none of the recipient's business */
    if (v->basis != B(VERWIJSINDEX)) env.correlation_id = e->correlation_id;
    env.causation_id = *cause;
    env.purpose = SCHAKEL__V1__PURPOSE__PURPOSE_BUS;
    env.legal_basis = B(BUS);
    env.body_case = SCHAKEL__V1__ENVELOPE__BODY_CONSENT_DECISION;
    env.consent_decision = &d;
    int rc = schakel_emit(out, &env);
    return rc ? schakel_fail(why, rc, "consent: cannot emit a decision") : 0;
}

/* The loop an event opens and its tag: a referral's id, or the id of a
 * signal that asks for follow-up ('L'), a handover's ('H'), a MAZL
 * request's ('M'); NULL for other events. */
static const ProtobufCBinaryData *loop_id(const schakel_envelope_t *e, char *tag)
{
    *tag = 'L';
    if (e->type == T(REFERRAL)) return &e->referral->referral_id;
    if (e->type == T(SIGNAL) && e->signal->follow_up_requested) return &e->event_id;
    *tag = 'H';
    if (e->type == T(HANDOVER)) return &e->handover->handover_id;
    *tag = 'M';
    if (e->type == T(MAZL_REQUEST)) return &e->mazl_request->request_id;
    return NULL;
}

/* Bookkeeping after a delivery: a delivered referral opens its loop, a
 * delivered report lets Veilig Thuis answer its reporter. */
static int delivered(schakel_consent_t *c, MDB_txn *txn, const schakel_envelope_t *e, const char *x,
                     const verdict_t *v)
{
    if (v->outcome != O(DELIVER)) return 0;
    char tag;
    const ProtobufCBinaryData *id = loop_id(e, &tag);
    if (id && id->len == 16) return record_delivery(c, txn, tag, id->data, e->source_org, x, e->subject, v);
    if (e->type == T(VEILIGTHUIS_REPORT) && e->veiligthuis_report->report_id.len == 16)
        return record_delivery(c, txn, 'V', e->veiligthuis_report->report_id.data, e->source_org, x,
                               e->subject, v);
    return 0;
}

static size_t hold_key(uint8_t *key, const char *subject, uint64_t about_seq, const char *x)
{
    size_t n = strnlen(x, SCHAKEL_ID_MAX - 1);
    memcpy(key, subject, SUBJECT_LEN);
    schakel_put_be64(key + SUBJECT_LEN, about_seq);
    memcpy(key + SUBJECT_LEN + 8, x, n);
    return SUBJECT_LEN + 8 + n;
}

typedef struct {
    int64_t deadline;
    uint64_t about_seq;
} hold_t;

static int hold_put(schakel_consent_t *c, MDB_txn *txn, const schakel_envelope_t *e, uint64_t seq,
                    const char *x, int64_t deadline)
{
    uint8_t key[HOLD_KEY_MAX], dkey[8 + HOLD_KEY_MAX];
    size_t n = hold_key(key, e->subject, seq, x);
    hold_t h = {deadline, seq};
    schakel_put_be64(dkey, (uint64_t)deadline);
    memcpy(dkey + 8, key, n);
    int rc = schakel_kv_put(txn, c->holds, key, n, &h, sizeof h);
    return rc ? rc : schakel_kv_put(txn, c->deadlines, dkey, 8 + n, "", 0);
}

static int hold_del(schakel_consent_t *c, MDB_txn *txn, const uint8_t *key, size_t n, int64_t deadline)
{
    uint8_t dkey[8 + HOLD_KEY_MAX];
    schakel_put_be64(dkey, (uint64_t)deadline);
    memcpy(dkey + 8, key, n);
    int rc = schakel_kv_del(txn, c->holds, key, n);
    return rc ? rc : schakel_kv_del(txn, c->deadlines, dkey, 8 + n);
}

/* ---- the verwijsindex: who signalled about a child, and nothing else ---- */

/* An entry lives two years of log time from its organisation's latest
 * signal (Jeugdwet 7.1.1.1 ff: a melding is removed after at most two
 * years).
 * The other removal grounds (the youth turns 23, death) cannot be told
 * from what the bus knows. */
#define MATCH_MS (730LL * 86400000)
#define MATCH_KEY_MAX (SUBJECT_LEN + SCHAKEL_ID_MAX)
#define TOLD_KEY_MAX (SUBJECT_LEN + 2 * SCHAKEL_ID_MAX)

typedef struct {
    int64_t entered_at; /* log time of the signal that made this entry */
    int64_t deadline;   /* log time of the latest signal + two years */
    uint64_t seq;       /* the latest signal: read back for its contact */
} match_t;

typedef struct {
    char org[SCHAKEL_ID_MAX];
    match_t m;
} signaller_t;

static size_t match_key(uint8_t *key, const char *subject, const char *org)
{
    size_t n = strnlen(org, SCHAKEL_ID_MAX - 1);
    memcpy(key, subject, SUBJECT_LEN);
    memcpy(key + SUBJECT_LEN, org, n);
    return SUBJECT_LEN + n;
}

/* A pair is one mark whoever signalled first: the smaller id, NUL, the
 * larger. */
static size_t told_key(uint8_t *key, const char *subject, const char *a, const char *b)
{
    if (strcmp(a, b) > 0) {
        const char *t = a;
        a = b;
        b = t;
    }
    size_t na = strnlen(a, SCHAKEL_ID_MAX - 1), nb = strnlen(b, SCHAKEL_ID_MAX - 1);
    memcpy(key, subject, SUBJECT_LEN);
    memcpy(key + SUBJECT_LEN, a, na);
    key[SUBJECT_LEN + na] = 0;
    memcpy(key + SUBJECT_LEN + na + 1, b, nb);
    return SUBJECT_LEN + na + 1 + nb;
}

static int match_put(schakel_consent_t *c, MDB_txn *txn, const char *subject, const char *org,
                     const match_t *m)
{
    uint8_t key[MATCH_KEY_MAX], dkey[8 + MATCH_KEY_MAX];
    size_t n = match_key(key, subject, org);
    schakel_put_be64(dkey, (uint64_t)m->deadline);
    memcpy(dkey + 8, key, n);
    int rc = schakel_kv_put(txn, c->matches, key, n, m, sizeof *m);
    return rc ? rc : schakel_kv_put(txn, c->match_deadlines, dkey, 8 + n, "", 0);
}

/* Forgets that org signalled about subject, and every pair it was in: a
 * later signal of it is a new entry, and its matches are told again. */
static int match_drop(schakel_consent_t *c, MDB_txn *txn, const char *subject, const char *org,
                      int64_t deadline)
{
    uint8_t key[MATCH_KEY_MAX], dkey[8 + MATCH_KEY_MAX];
    size_t n = match_key(key, subject, org), ol = n - SUBJECT_LEN;
    schakel_put_be64(dkey, (uint64_t)deadline);
    memcpy(dkey + 8, key, n);
    int rc = schakel_kv_del(txn, c->matches, key, n);
    if (rc == 0) rc = schakel_kv_del(txn, c->match_deadlines, dkey, 8 + n);
    if (rc) return rc;
    for (;;) { /* one mark at a time: deleting under a live cursor is easy to get wrong */
        MDB_cursor *cur;
        if (mdb_cursor_open(txn, c->match_told, &cur) != 0) return SCHAKEL_ESTORE;
        MDB_val k = {SUBJECT_LEN, (void *)subject}, v;
        uint8_t tkey[TOLD_KEY_MAX];
        size_t tl = 0;
        for (int g = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); g == 0 && !tl;
             g = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
            if (k.mv_size <= SUBJECT_LEN || memcmp(k.mv_data, subject, SUBJECT_LEN) != 0) break;
            const char *a = (const char *)k.mv_data + SUBJECT_LEN;
            size_t rest = k.mv_size - SUBJECT_LEN, al = strnlen(a, rest);
            if (al == rest || k.mv_size > sizeof tkey) continue;
            size_t bl = rest - al - 1;
            if ((al == ol && !memcmp(a, org, ol)) || (bl == ol && !memcmp(a + al + 1, org, ol))) {
                tl = k.mv_size;
                memcpy(tkey, k.mv_data, tl);
            }
        }
        mdb_cursor_close(cur);
        if (!tl) return 0;
        if ((rc = schakel_kv_del(txn, c->match_told, tkey, tl)) != 0) return rc;
    }
}

/* Entries whose two years have passed by the log's time are removed;
 * nobody is told. */
static int expire_matches(schakel_consent_t *c, MDB_txn *txn, int64_t now)
{
    for (;;) {
        MDB_cursor *cur;
        MDB_val k, v;
        if (mdb_cursor_open(txn, c->match_deadlines, &cur) != 0) return SCHAKEL_ESTORE;
        int g = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
        uint8_t key[8 + MATCH_KEY_MAX];
        size_t n = g == 0 && k.mv_size > 8 + SUBJECT_LEN && k.mv_size < sizeof key ? k.mv_size : 0;
        if (n) memcpy(key, k.mv_data, n);
        mdb_cursor_close(cur);
        if (!n) return 0;
        int64_t deadline = (int64_t)schakel_get_be64(key);
        if (deadline > now) return 0;
        char subject[SUBJECT_LEN + 1], org[SCHAKEL_ID_MAX];
        memcpy(subject, key + 8, SUBJECT_LEN);
        subject[SUBJECT_LEN] = 0;
        memcpy(org, key + 8 + SUBJECT_LEN, n - 8 - SUBJECT_LEN);
        org[n - 8 - SUBJECT_LEN] = 0;
        int rc = match_drop(c, txn, subject, org, deadline);
        if (rc) return rc;
    }
}

/* The live entries of subject, the signaller's own apart (*mine, *had). */
static int match_entries(schakel_consent_t *c, MDB_txn *txn, const char *subject, const char *self,
                         int64_t now, signaller_t **out, size_t *n_out, match_t *mine, int *had)
{
    MDB_cursor *cur;
    if (mdb_cursor_open(txn, c->matches, &cur) != 0) return SCHAKEL_ESTORE;
    signaller_t *s = NULL;
    size_t n = 0, cap = 0, self_len = strlen(self);
    int rc = 0;
    *had = 0;
    MDB_val k = {SUBJECT_LEN, (void *)subject}, v;
    for (int g = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); g == 0; g = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size <= SUBJECT_LEN || memcmp(k.mv_data, subject, SUBJECT_LEN) != 0) break;
        size_t ol = k.mv_size - SUBJECT_LEN;
        if (ol >= SCHAKEL_ID_MAX || v.mv_size != sizeof(match_t)) continue;
        match_t m;
        memcpy(&m, v.mv_data, sizeof m);
        if (ol == self_len && !memcmp((const char *)k.mv_data + SUBJECT_LEN, self, ol)) {
            *mine = m;
            *had = 1;
            continue;
        }
        if (m.deadline <= now) continue; /* expire_matches removes it */
        if (n == cap) {
            cap = cap ? cap * 2 : 4;
            signaller_t *ns = realloc(s, cap * sizeof *s);
            if (!ns) {
                rc = SCHAKEL_ENOMEM;
                break;
            }
            s = ns;
        }
        memcpy(s[n].org, (const char *)k.mv_data + SUBJECT_LEN, ol);
        s[n].org[ol] = 0;
        s[n].m = m;
        n++;
    }
    mdb_cursor_close(cur);
    if (rc) {
        free(s);
        s = NULL, n = 0;
    }
    *out = s;
    *n_out = n;
    return rc;
}

/* Tells the pair (the signal at rec, and other's latest about the same
 * child) of each other, unless it was told before. */
static int match_tell(schakel_consent_t *c, MDB_txn *txn, const schakel_logrec_t *rec,
                      const signaller_t *other, schakel_emit_t *out, char *why)
{
    const schakel_envelope_t *e = rec->env;
    uint8_t tkey[TOLD_KEY_MAX];
    size_t tl = told_key(tkey, e->subject, e->source_org, other->org);
    MDB_val v;
    if (schakel_kv_get(txn, c->match_told, tkey, tl, &v) == 0) return 0;
    if (!kind_of(c, other->org)) return 0; /* left the directory: can be told nothing */
    int rc = 0;
    schakel_envelope_t *o = load_event(c, rec, other->m.seq, NULL, &rc, why);
    if (o && (o->type != T(SIGNAL) || strcmp(o->source_org, other->org) != 0 ||
              strcmp(o->subject, e->subject) != 0)) {
        schakel_envelope_free(o);
        o = NULL;
    }
    if (!o) /* erased (or not what the index says): there is no signal left to match */
        return rc ? rc : match_drop(c, txn, e->subject, other->org, other->m.deadline);
    verdict_t vd = {.outcome = O(NOTICE_ONLY), .basis = B(VERWIJSINDEX), .duty = 1, .rule = "verwijsindex/match"};
    rc = emit_decision(c, out, e, rec->seq, other->org, &vd, &e->event_id, rec->now, why);
    if (rc == 0) rc = emit_decision(c, out, o, other->m.seq, e->source_org, &vd, &e->event_id, rec->now, why);
    if (rc == 0) rc = schakel_kv_put(txn, c->match_told, tkey, tl, "", 0);
    schakel_envelope_free(o);
    return rc;
}

/* A signal about a child enters its publisher in the index, whatever
 * routing and consent do with its content: the verwijsindex is its own
 * legal ground. Every other organisation with a live entry for the child
 * and its publisher hear of each other. */
static int on_signal(schakel_consent_t *c, MDB_txn *txn, const schakel_logrec_t *rec, schakel_emit_t *out,
                     char *why)
{
    const schakel_envelope_t *e = rec->env;
    if (strnlen(e->subject, SUBJECT_LEN + 1) != SUBJECT_LEN) return 0; /* names no child */
    signaller_t *others;
    size_t n;
    match_t mine = {rec->now, 0, 0};
    int had, rc = match_entries(c, txn, e->subject, e->source_org, rec->now, &others, &n, &mine, &had);
    if (rc) return rc;
    if (had) { /* the entry lives on: its deadline moves */
        uint8_t dkey[8 + MATCH_KEY_MAX];
        schakel_put_be64(dkey, (uint64_t)mine.deadline);
        size_t kl = match_key(dkey + 8, e->subject, e->source_org);
        rc = schakel_kv_del(txn, c->match_deadlines, dkey, 8 + kl);
    }
    mine.deadline = rec->now + MATCH_MS;
    mine.seq = rec->seq;
    if (rc == 0) rc = match_put(c, txn, e->subject, e->source_org, &mine);
    for (size_t i = 0; i < n && rc == 0; i++) rc = match_tell(c, txn, rec, &others[i], out, why);
    free(others);
    return rc;
}

/* A routing decision: decide for each recipient. */
static int on_routing(schakel_consent_t *c, MDB_txn *txn, const schakel_logrec_t *rec,
                      schakel_emit_t *out, char *why)
{
    const Schakel__V1__RoutingDecision *r = rec->env->routing_decision;
    if (r->about_event_id.len != 16 || !r->about_seq || r->about_seq >= rec->seq) return 0;
    int rc = 0;
    schakel_envelope_t *e = load_event(c, rec, r->about_seq, &r->about_event_id, &rc, why);
    if (!e) { /* erased, or not the event it names */
        if (rc == 0)
            schakel_log(SCHAKEL_LOG_WARN, "consent", "event=about_unknown seq=%llu",
                        (unsigned long long)rec->seq);
        return rc;
    }
    for (size_t i = 0; i < r->n_recipients && rc == 0; i++) {
        const char *x = r->recipients[i]->org_id;
        verdict_t v;
        decide(c, txn, e, x, rec->now, &v);
        if (e->type == T(VEILIGTHUIS_FEEDBACK) && kind_of(c, e->source_org) == K(VEILIGTHUIS) &&
            kind_of(c, x) != K(VEILIGTHUIS) && v.basis != B(VEILIGTHUIS_FEEDBACK)) {
            /* routed to someone who did not send that report about this child */
            c->ignored++;
            schakel_log(SCHAKEL_LOG_WARN, "consent",
                        "event=feedback_not_the_reporter about_seq=%llu rule=%s ignored=%llu",
                        (unsigned long long)r->about_seq, v.rule, (unsigned long long)c->ignored);
        }
        rc = emit_decision(c, out, e, r->about_seq, x, &v, &rec->env->event_id, rec->now, why);
        if (rc == 0) rc = delivered(c, txn, e, x, &v);
        if (rc == 0 && v.outcome == O(HOLD))
            rc = hold_put(c, txn, e, r->about_seq, x, rec->now + c->hold_ms);
    }
    schakel_envelope_free(e);
    return rc ? schakel_fail(why, rc, "consent: cannot store a decision") : 0;
}

/* Consent arrived: re-decide every hold of this child. */
static int release_holds(schakel_consent_t *c, MDB_txn *txn, const schakel_logrec_t *rec,
                         schakel_emit_t *out, char *why)
{
    const char *subject = rec->env->subject;
    MDB_cursor *cur;
    if (mdb_cursor_open(txn, c->holds, &cur) != 0) return SCHAKEL_ESTORE;
    /* collect first: deleting under a live cursor is easy to get wrong */
    uint8_t (*keys)[HOLD_KEY_MAX] = NULL;
    size_t *lens = NULL, n = 0, cap = 0;
    hold_t *holds = NULL;
    MDB_val k = {SUBJECT_LEN, (void *)subject}, v;
    int rc = 0;
    for (int g = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); g == 0; g = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size <= SUBJECT_LEN + 8 || memcmp(k.mv_data, subject, SUBJECT_LEN) != 0) break;
        if (k.mv_size >= HOLD_KEY_MAX || v.mv_size != sizeof(hold_t)) continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 8;
            void *nk = realloc(keys, cap * sizeof *keys), *nl = realloc(lens, cap * sizeof *lens),
                 *nh = realloc(holds, cap * sizeof *holds);
            if (nk) keys = nk;
            if (nl) lens = nl;
            if (nh) holds = nh;
            if (!nk || !nl || !nh) {
                rc = SCHAKEL_ENOMEM;
                break;
            }
        }
        memcpy(keys[n], k.mv_data, k.mv_size);
        lens[n] = k.mv_size;
        memcpy(&holds[n], v.mv_data, sizeof(hold_t));
        n++;
    }
    mdb_cursor_close(cur);
    for (size_t i = 0; i < n && rc == 0; i++) {
        char x[SCHAKEL_ID_MAX];
        size_t xl = lens[i] - SUBJECT_LEN - 8;
        memcpy(x, keys[i] + SUBJECT_LEN + 8, xl);
        x[xl] = 0;
        schakel_envelope_t *e = load_event(c, rec, holds[i].about_seq, NULL, &rc, why);
        if (!e) { /* erased meanwhile: nothing left to deliver */
            if (rc == 0) rc = hold_del(c, txn, keys[i], lens[i], holds[i].deadline);
            continue;
        }
        verdict_t vd;
        decide(c, txn, e, x, rec->now, &vd);
        if (vd.outcome == O(DELIVER)) {
            vd.rule = vd.basis == B(CONSENT) && vd.has_consent ? "consent/released" : vd.rule;
            rc = emit_decision(c, out, e, holds[i].about_seq, x, &vd, &rec->env->event_id, rec->now, why);
            if (rc == 0) rc = delivered(c, txn, e, x, &vd);
            if (rc == 0) rc = hold_del(c, txn, keys[i], lens[i], holds[i].deadline);
        }
        schakel_envelope_free(e);
    }
    free(keys);
    free(lens);
    free(holds);
    return rc;
}

/* Holds whose deadline has passed by the log's time expire, and their
 * senders are told. */
static int expire_holds(schakel_consent_t *c, MDB_txn *txn, const schakel_logrec_t *rec,
                        schakel_emit_t *out, char *why)
{
    const ProtobufCBinaryData cause = rec->env ? rec->env->event_id : (ProtobufCBinaryData){0, NULL};
    uint8_t seqcause[8];
    ProtobufCBinaryData c2 = cause;
    if (!cause.len) { /* an erased record still moves time: name it by seq */
        schakel_put_be64(seqcause, rec->seq);
        c2.data = seqcause;
        c2.len = 8;
    }
    for (;;) {
        MDB_cursor *cur;
        MDB_val k, v;
        if (mdb_cursor_open(txn, c->deadlines, &cur) != 0) return SCHAKEL_ESTORE;
        int g = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
        uint8_t key[8 + HOLD_KEY_MAX];
        size_t n = g == 0 && k.mv_size > 8 + SUBJECT_LEN + 8 && k.mv_size < sizeof key ? k.mv_size : 0;
        if (n) memcpy(key, k.mv_data, n);
        mdb_cursor_close(cur);
        if (!n) return 0;
        int64_t deadline = (int64_t)schakel_get_be64(key);
        if (deadline > rec->now) return 0;
        hold_t h = {deadline, schakel_get_be64(key + 8 + SUBJECT_LEN)};
        char x[SCHAKEL_ID_MAX];
        size_t xl = n - 8 - SUBJECT_LEN - 8;
        memcpy(x, key + 8 + SUBJECT_LEN + 8, xl);
        x[xl] = 0;
        int rc = 0;
        schakel_envelope_t *e = load_event(c, rec, h.about_seq, NULL, &rc, why);
        if (e) {
            verdict_t vd = {.outcome = O(EXPIRED), .basis = B(CONSENT), .rule = "hold/expired"};
            rc = emit_decision(c, out, e, h.about_seq, x, &vd, &c2, rec->now, why);
            schakel_envelope_free(e);
        }
        if (rc == 0) rc = hold_del(c, txn, key + 8, n - 8, deadline);
        if (rc) return rc;
    }
}

/* A consent: kept reduced to what decisions need (no case reference, no
 * contact, no correlation), under its id and the organisation that
 * recorded it; the first one of that pair counts. */
static int on_consent_given(schakel_consent_t *c, MDB_txn *txn, const schakel_envelope_t *e)
{
    const ProtobufCBinaryData *id = &e->consent_given->consent_id;
    MDB_val v;
    uint8_t key[CONSENT_KEY_MAX];
    size_t kl = id->len == 16 ? consent_key(key, id->data, e->source_org) : 0;
    if (!kl || !e->subject[0] || schakel_kv_get(txn, c->consents, key, kl, &v) == 0) return 0;
    Schakel__V1__ConsentGiven cg = *e->consent_given;
    cg.recorded_by = NULL;
    Schakel__V1__Envelope r = SCHAKEL__V1__ENVELOPE__INIT;
    r.type = e->type;
    r.source_org = e->source_org;
    r.subject = e->subject;
    r.age_band = e->age_band;
    r.body_case = SCHAKEL__V1__ENVELOPE__BODY_CONSENT_GIVEN;
    r.consent_given = &cg;
    size_t len = schakel__v1__envelope__get_packed_size(&r);
    uint8_t *val = malloc(len + 1);
    if (!val) return SCHAKEL_ENOMEM;
    val[0] = 0;
    schakel__v1__envelope__pack(&r, val + 1);
    int rc = schakel_kv_put(txn, c->consents, key, kl, val, len + 1);
    free(val);
    uint8_t skey[SUBJECT_LEN + CONSENT_KEY_MAX];
    memcpy(skey, e->subject, SUBJECT_LEN);
    memcpy(skey + SUBJECT_LEN, key, kl);
    return rc ? rc : schakel_kv_put(txn, c->by_subject, skey, SUBJECT_LEN + kl, "", 0);
}

/* A withdrawal counts only for a consent of the same child that the same
 * organisation recorded. */
static int on_consent_withdrawn(schakel_consent_t *c, MDB_txn *txn, const schakel_logrec_t *rec)
{
    const schakel_envelope_t *e = rec->env;
    const ProtobufCBinaryData *id = &e->consent_withdrawn->consent_id;
    MDB_val v;
    uint8_t key[CONSENT_KEY_MAX];
    size_t kl = id->len == 16 ? consent_key(key, id->data, e->source_org) : 0;
    const char *reason = NULL;
    if (!kl || schakel_kv_get(txn, c->consents, key, kl, &v) != 0 || v.mv_size < 2) {
        reason = "no_consent_of_this_organisation";
    } else {
        schakel_envelope_t *ce = schakel_envelope_decode((uint8_t *)v.mv_data + 1, v.mv_size - 1, NULL);
        if (!ce || strcmp(ce->subject, e->subject) != 0) reason = "other_subject";
        schakel_envelope_free(ce);
    }
    if (reason) {
        c->ignored++;
        schakel_log(SCHAKEL_LOG_WARN, "consent", "event=withdrawal_ignored seq=%llu reason=%s ignored=%llu",
                    (unsigned long long)rec->seq, reason, (unsigned long long)c->ignored);
        return 0;
    }
    uint8_t *val = malloc(v.mv_size);
    if (!val) return SCHAKEL_ENOMEM;
    memcpy(val, v.mv_data, v.mv_size);
    val[0] = 1;
    int rc = schakel_kv_put(txn, c->consents, key, kl, val, v.mv_size);
    free(val);
    return rc;
}

static int consent_process(void *engine, MDB_txn *txn, const schakel_logrec_t *rec,
                           schakel_emit_t *out, char *why)
{
    schakel_consent_t *c = engine;
    const schakel_envelope_t *e = rec->env;
    /* first: an entry two years old matches nothing, not even this record */
    int rc = expire_matches(c, txn, rec->now);
    if (rc == 0 && e) {
        switch ((int)e->type) {
        case T(DIRECTORY_UPDATE): rc = schakel_engine_directory_update(txn, c->state, e, &c->dir); break;
        case T(ROUTING_DECISION): rc = on_routing(c, txn, rec, out, why); break;
        case T(CONSENT_DECISION):
        case T(CLOCK_TICK):
        case T(AUDIT_ACCESS): break;
        case T(CONSENT_GIVEN):
            rc = on_consent_given(c, txn, e);
            if (rc == 0) rc = release_holds(c, txn, rec, out, why);
            break;
        case T(CONSENT_WITHDRAWN): rc = on_consent_withdrawn(c, txn, rec); break;
        default: {
            /* who sent a loop's referral: the event itself is read back
             * from the log when a decision is about it */
            char tag;
            const ProtobufCBinaryData *id = loop_id(e, &tag);
            uint8_t key[DELIVERY_KEY_MAX];
            if (id && id->len == 16)
                rc = schakel_kv_put(txn, c->origins, key, delivery_key(key, tag, id->data, e->source_org), "", 0);
            if (rc == 0 && e->type == T(SIGNAL)) rc = on_signal(c, txn, rec, out, why);
        }
        }
    }
    if (rc == 0) rc = expire_holds(c, txn, rec, out, why);
    /* emit_decision and the log source name their own failure; storage
     * errors are named here */
    return rc && !why[0] ? schakel_fail(why, rc, "consent: cannot store state (seq %llu)",
                                        (unsigned long long)rec->seq)
                         : rc;
}

const schakel_engine_ops_t schakel_consent_ops = {"consent", consent_open, consent_process};
