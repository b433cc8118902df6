/* The rules: may recipient x know event e (consent_decide)? In order:
 * an unknown recipient is denied; then the legal bases coded here because
 * they are law (own organisation, anonymous, the meldcode report and its
 * reminder, Veilig Thuis's feedback, leerplicht); consent news to whom it
 * names; news for a referrer (loops.c); a consent that covers it, given
 * by whom the child's age asks (gezag); the referral loop (loops.c); else
 * the policy's fallback. Called by decisions.c for each recipient of a
 * routing decision and by holds.c when a consent arrives. */
#include <stdio.h>
#include <string.h>

#include "calendar.h"
#include "consent_impl.h"

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

/* May `by` withdraw consent cg of a child of age band age? Whoever's
 * consent was needed may take theirs back: under 12 the holders (or one
 * of them: then the holders' consent is no longer whole); 12-15 the youth
 * or the holders, for both were needed; 16-17 and adults only who alone
 * could give it (the holders only where they gave it because the youth
 * cannot judge). */
int consent_withdrawal_counts(int age, int by, const Schakel__V1__ConsentGiven *cg)
{
    int holder = by == SCHAKEL__V1__GIVEN_BY__GIVEN_BY_PARENTS ||
                 by == SCHAKEL__V1__GIVEN_BY__GIVEN_BY_GUARDIAN ||
                 by == SCHAKEL__V1__GIVEN_BY__GIVEN_BY_ONE_PARENT;
    int youth = by == SCHAKEL__V1__GIVEN_BY__GIVEN_BY_YOUTH_ALONE ||
                by == SCHAKEL__V1__GIVEN_BY__GIVEN_BY_YOUTH_WITH_PARENTS ||
                by == SCHAKEL__V1__GIVEN_BY__GIVEN_BY_YOUTH_WITH_GUARDIAN;
    if ((int)cg->age_band > age) age = (int)cg->age_band;
    switch (age) {
    case SCHAKEL__V1__AGE_BAND__AGE_BAND_UNDER_12: return holder;
    case SCHAKEL__V1__AGE_BAND__AGE_BAND_12_15: return holder || youth;
    case SCHAKEL__V1__AGE_BAND__AGE_BAND_16_17: return youth || (holder && cg->youth_cannot_judge);
    case SCHAKEL__V1__AGE_BAND__AGE_BAND_ADULT: return by == SCHAKEL__V1__GIVEN_BY__GIVEN_BY_ADULT_STUDENT;
    default: return holder || youth;
    }
}

enum { COVERS_NOT = 0, COVERS = 1, COVERS_NOT_ENTITLED = 2 };

/* Does consent cg (not withdrawn) cover recipient x of event e on `date`,
 * as mode asks? COVERS_NOT_ENTITLED: it would, but it was not given by
 * whom the child's age asks. */
static int covers(schakel_consent_t *c, const Schakel__V1__ConsentGiven *cg, const schakel_envelope_t *e,
                  const char *x, const char *date, int mode)
{
    if (cg->recipient_org[0] ? strcmp(cg->recipient_org, x) != 0
                             : mode == COVER_FEEDBACK || !cg->recipient_kind ||
                                   (int)cg->recipient_kind != consent_kind_of(c, x))
        return 0;
    if (strcmp(date, cg->valid_from) < 0 || (cg->valid_until[0] && strcmp(date, cg->valid_until) > 0))
        return 0;
    /* children only get older: the older of the two bands decides */
    int age = (int)e->age_band > (int)cg->age_band ? (int)e->age_band : (int)cg->age_band;
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

/* Whose consents count (docs/routing.md): for an event, only those its
 * publisher recorded (the organisation that shares holds the ground); for
 * news to a referrer, also those the referrer recorded naming itself
 * (asked when it referred). */
static int recorder_counts(const char *org, const schakel_envelope_t *e, const char *x, int mode)
{
    return !strcmp(org, e->source_org) || (mode == COVER_FEEDBACK && !strcmp(org, x));
}

int consent_may_release(schakel_consent_t *c, const Schakel__V1__ConsentGiven *cg, const char *recorder,
                        const schakel_envelope_t *e, const char *x, const char *date)
{
    return (recorder_counts(recorder, e, x, COVER_EVENT) &&
            covers(c, cg, e, x, date, COVER_EVENT) == COVERS) ||
           (recorder_counts(recorder, e, x, COVER_FEEDBACK) &&
            covers(c, cg, e, x, date, COVER_FEEDBACK) == COVERS);
}

/* The first consent of the event's subject (in consent id order) that
 * counts for it and covers recipient x today, as mode asks. */
int consent_find(schakel_consent_t *c, MDB_txn *txn, const schakel_envelope_t *e, const char *x,
                 const char *date, int mode, verdict_t *out)
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
        if (!recorder_counts(org, e, x, mode)) continue;
        const schakel_envelope_t *ce;
        int withdrawn;
        int cv = consent_load(c, txn, id, org, &ce, &withdrawn) == 0 && !withdrawn
                     ? covers(c, ce->consent_given, e, x, date, mode)
                     : COVERS_NOT;
        if (cv == COVERS) {
            memcpy(out->consent_id, id, 16);
            snprintf(out->consent_org, sizeof out->consent_org, "%s", org);
            found = 1;
        } else if (cv == COVERS_NOT_ENTITLED) {
            out->not_entitled = 1;
        }
    }
    mdb_cursor_close(cur);
    return found;
}
/* Is x the leerplicht office of the child's home municipality, the one
 * routing chose (docs/routing.md)? */
static int is_home_leerplicht(const schakel_directory_t *d, const schakel_envelope_t *e, const char *x)
{
    const char *reason, *o = schakel_directory_home_leerplicht(d, schakel_body_string(e, "municipality"),
                                                               e->district, &reason);
    return o && !strcmp(o, x);
}

/* A report to Veilig Thuis: the family is still to be told unless the
 * reporter told the parents, or names a ground of the meldcode for not
 * telling them (validation admits only those; docs/events.md). A report
 * with neither is refused at publish; one on the log from before that
 * rule keeps the duty. */
static void report_duty(const Schakel__V1__VeiligThuisReport *r, verdict_t *v)
{
    v->basis = SCHAKEL_BASIS(MELDCODE), v->rule = "legal/meldcode-report", v->duty = 1;
    if (r->parents_informed) {
        v->duty = 0;
    } else if (r->not_informed_reason[0]) {
        v->rule = "legal/meldcode-report-not-informed", v->duty = 0;
    }
}

/* The coded legal bases. */
static int legal_basis(schakel_consent_t *c, MDB_txn *txn, const schakel_envelope_t *e, const char *x,
                       verdict_t *v)
{
    int kx = consent_kind_of(c, x), ks = consent_kind_of(c, e->source_org);
    v->duty = 1;
    if (!strcmp(x, e->source_org)) {
        v->basis = SCHAKEL_BASIS(OWN_ORGANISATION), v->rule = "legal/own-organisation", v->duty = 0;
    } else if (!e->subject[0]) {
        v->basis = SCHAKEL_BASIS(ANONYMOUS), v->rule = "legal/anonymous", v->duty = 0;
    } else if (e->type == SCHAKEL_EVENT(VEILIGTHUIS_REPORT) && kx == SCHAKEL_KIND(VEILIGTHUIS)) {
        report_duty(e->veiligthuis_report, v);
    } else if (e->type == SCHAKEL_EVENT(LOOP_REMINDER) && ks == SCHAKEL_KIND(SERVICE) &&
               kx == SCHAKEL_KIND(VEILIGTHUIS) && e->loop_reminder->referral_id.len == 16 &&
               consent_delivered_about(c, txn, 'V', e->loop_reminder->referral_id.data, NULL, x, e->subject,
                                       &(verdict_t){0})) {
        /* the feedback loop reminds Veilig Thuis of a report of this child
         * that it has on the meldcode: the reminder tells it nothing new */
        v->basis = SCHAKEL_BASIS(MELDCODE), v->rule = "legal/meldcode-report-reminder", v->duty = 0;
    } else if (e->type == SCHAKEL_EVENT(VEILIGTHUIS_FEEDBACK) && ks == SCHAKEL_KIND(VEILIGTHUIS) &&
               e->veiligthuis_feedback->report_id.len == 16 &&
               consent_delivered_about(c, txn, 'V', e->veiligthuis_feedback->report_id.data, x, e->source_org,
                                       e->subject, &(verdict_t){0})) {
        /* Veilig Thuis tells the family itself; the reporter only hears
         * back, about a report of this child that it sent itself to this
         * Veilig Thuis */
        v->basis = SCHAKEL_BASIS(VEILIGTHUIS_FEEDBACK), v->rule = "legal/veiligthuis-feedback", v->duty = 0;
    } else if (((e->type == SCHAKEL_EVENT(ABSENCE) && e->absence->leerplicht_report) ||
                e->type == SCHAKEL_EVENT(THUISZITTER_STATUS)) &&
               (ks == SCHAKEL_KIND(SCHOOL) || ks == SCHAKEL_KIND(PPO)) && c->dir &&
               is_home_leerplicht(c->dir, e, x)) {
        v->basis = SCHAKEL_BASIS(LEERPLICHT), v->rule = "legal/leerplicht";
    } else {
        v->duty = 0;
        return 0;
    }
    v->outcome = SCHAKEL_OUTCOME(DELIVER);
    return 1;
}

/* Consent given or withdrawn goes to the recipient it names, on itself.
 * A withdrawal names a consent recorded by the same organisation. */
static int consent_news(schakel_consent_t *c, MDB_txn *txn, const schakel_envelope_t *e, const char *x,
                        verdict_t *v)
{
    const ProtobufCBinaryData *id = e->type == SCHAKEL_EVENT(CONSENT_GIVEN) ? &e->consent_given->consent_id
                                    : e->type == SCHAKEL_EVENT(CONSENT_WITHDRAWN)
                                        ? &e->consent_withdrawn->consent_id
                                        : NULL;
    if (!id || id->len != 16) return 0;
    const schakel_envelope_t *ce = NULL;
    int withdrawn, ok = 0;
    if (consent_load(c, txn, id->data, e->source_org, &ce, &withdrawn) == 0) {
        const Schakel__V1__ConsentGiven *cg = ce->consent_given;
        ok = cg->recipient_org[0] ? !strcmp(cg->recipient_org, x)
                                  : cg->recipient_kind && (int)cg->recipient_kind == consent_kind_of(c, x);
    }
    if (!ok) return 0;
    v->outcome = SCHAKEL_OUTCOME(DELIVER), v->basis = SCHAKEL_BASIS(CONSENT);
    v->rule = e->type == SCHAKEL_EVENT(CONSENT_GIVEN) ? "consent/registered" : "consent/withdrawn";
    memcpy(v->consent_id, id->data, 16);
    snprintf(v->consent_org, sizeof v->consent_org, "%s", e->source_org);
    v->has_consent = 1;
    return 1;
}

/* May recipient x know event e, at log time now? */
void consent_decide(schakel_consent_t *c, MDB_txn *txn, const schakel_envelope_t *e, const char *x,
                    int64_t now, verdict_t *v)
{
    memset(v, 0, sizeof *v);
    char date[11];
    schakel_date_of(now, date);
    if (!consent_kind_of(c, x)) {
        v->outcome = SCHAKEL_OUTCOME(DENY), v->basis = SCHAKEL_BASIS(CONSENT),
        v->rule = "directory/unknown-recipient";
        return;
    }
    if (legal_basis(c, txn, e, x, v) || consent_news(c, txn, e, x, v) ||
        consent_feedback_to_referrer(c, txn, e, x, date, v))
        return;
    if (consent_find(c, txn, e, x, date, COVER_EVENT, v)) {
        v->outcome = SCHAKEL_OUTCOME(DELIVER), v->basis = SCHAKEL_BASIS(CONSENT),
        v->rule = "consent/specific", v->has_consent = 1;
        return;
    }
    if (consent_referral_loop(c, txn, e, x, v)) {
        v->outcome = SCHAKEL_OUTCOME(DELIVER), v->rule = "consent/referral-loop";
        return;
    }
    v->outcome = c->fallback[e->type];
    v->basis = SCHAKEL_BASIS(CONSENT);
    /* held or denied as without consent; consent/not-entitled says why
     * the consent there is does not count */
    v->rule = v->not_entitled                       ? "consent/not-entitled"
              : v->outcome == SCHAKEL_OUTCOME(HOLD) ? "fallback/hold"
                                                    : "fallback/deny";
}
