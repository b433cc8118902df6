/* Routing and consent on a real node (broker, routing and consent
 * services, sample region), one scenario per flow of DOMAIN.md. Time is
 * moved with clock_tick events from a test organisation that the test adds
 * to the directory, which also exercises directory changes on the log.
 * Every scenario uses its own synthetic children. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <lmdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

static harness_t *H;

/* ---- helpers ---- */

static void hex(const uint8_t *b, size_t n, char *out)
{
    schakel_hex_encode(b, n, out);
}

/* A synthetic child's pseudonym. */
static void child(const char *label, char out[65])
{
    uint8_t h[32];
    schakel_sha256(label, strlen(label), h);
    hex(h, 32, out);
}

static void new_id(char out[33])
{
    uint8_t id[16];
    harness_event_id(id);
    hex(id, 16, out);
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Where a service stands in the log: its own LMDB cursor. */
static uint64_t service_cursor(const char *name)
{
    char dir[600];
    snprintf(dir, sizeof dir, "%s/services/%s", H->data, name);
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    uint64_t seq = 0;
    if (mdb_env_create(&env)) return 0;
    mdb_env_set_maxdbs(env, 32);
    if (mdb_env_open(env, dir, MDB_RDONLY | MDB_NOTLS, 0600) == 0 &&
        mdb_txn_begin(env, NULL, MDB_RDONLY, &txn) == 0) {
        MDB_val k = {6, "cursor"}, v;
        if (mdb_dbi_open(txn, "runner", 0, &dbi) == 0 && mdb_get(txn, dbi, &k, &v) == 0 && v.mv_size == 8)
            memcpy(&seq, v.mv_data, 8);
        mdb_txn_abort(txn);
    }
    mdb_env_close(env);
    return seq;
}

/* Waits until both services have handled the log up to seq. */
static void wait_services(uint64_t seq)
{
    for (int i = 0; i < 300; i++) {
        if (service_cursor("routing") >= seq && service_cursor("consent") >= seq) return;
        usleep(50000);
    }
    fail_msg("the services did not reach seq %llu in 15 s", (unsigned long long)seq);
}

typedef struct {
    char recipient[64], rule[64], consent_id[33], inform[64];
    int outcome, basis, duty;
    uint64_t seq;
} decision_t;

typedef struct {
    decision_t d[32];
    size_t n;
    char routed[8][64];
    size_t n_routed;
} decisions_t;

/* Everything the log says about event id, read as svc-audit. */
static void read_decisions(const uint8_t id[16], decisions_t *out)
{
    memset(out, 0, sizeof *out);
    char stream[64], h[33];
    hex(id, 16, h);
    snprintf(stream, sizeof stream, "about/%s", h);
    schakel_consumer_t *c = harness_consumer(H, "svc-audit", stream, NULL);
    const Schakel__V1__Delivered *r;
    char why[SCHAKEL_ERRLEN];
    while (schakel_consumer_next(c, &r, 0, why) == 0) {
        schakel_envelope_t *e = schakel_envelope_decode(r->event.data, r->event.len, NULL);
        assert_non_null(e);
        if (e->type == SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_ROUTING_DECISION) {
            for (size_t i = 0; i < e->routing_decision->n_recipients && out->n_routed < 8; i++)
                snprintf(out->routed[out->n_routed++], 64, "%s", e->routing_decision->recipients[i]->org_id);
        } else if (e->type == SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_CONSENT_DECISION && out->n < 32) {
            const Schakel__V1__ConsentDecision *d = e->consent_decision;
            decision_t *x = &out->d[out->n++];
            snprintf(x->recipient, sizeof x->recipient, "%s", d->recipient_org);
            snprintf(x->rule, sizeof x->rule, "%s", d->rule_id);
            snprintf(x->inform, sizeof x->inform, "%s", d->inform_org);
            if (d->consent_id.len == 16) hex(d->consent_id.data, 16, x->consent_id);
            x->outcome = d->outcome;
            x->basis = d->legal_basis;
            x->duty = d->duty_to_inform;
            x->seq = r->seq;
        }
        schakel_envelope_free(e);
    }
    schakel_consumer_destroy(&c);
}

/* Waits (up to 15 s) until at least `want` consent decisions are about id. */
static void wait_decisions(const uint8_t id[16], size_t want, decisions_t *out)
{
    for (int i = 0; i < 300; i++) {
        read_decisions(id, out);
        if (out->n >= want) return;
        usleep(50000);
    }
    char h[33];
    hex(id, 16, h);
    fail_msg("event %s: %zu consent decisions after 15 s, wanted %zu", h, out->n, want);
}

static const decision_t *find(const decisions_t *ds, const char *recipient, int outcome)
{
    for (size_t i = 0; i < ds->n; i++)
        if (!strcmp(ds->d[i].recipient, recipient) && ds->d[i].outcome == outcome) return &ds->d[i];
    return NULL;
}

static int routed_to(const decisions_t *ds, const char *org)
{
    for (size_t i = 0; i < ds->n_routed; i++)
        if (!strcmp(ds->routed[i], org)) return 1;
    return 0;
}

/* Does org's own stream hold the event with this id (the event itself), or
 * with notice set, a notice-only or informing decision about it? Read as
 * org itself, as its adapter would. */
static int received(const char *org, const uint8_t id[16], int outcome_about)
{
    char stream[80];
    snprintf(stream, sizeof stream, "org/%s", org);
    schakel_consumer_t *c = harness_consumer(H, org, stream, NULL);
    const Schakel__V1__Delivered *r;
    char why[SCHAKEL_ERRLEN];
    int found = 0;
    while (!found && schakel_consumer_next(c, &r, 0, why) == 0) {
        schakel_envelope_t *e = schakel_envelope_decode(r->event.data, r->event.len, NULL);
        assert_non_null(e);
        if (!outcome_about) {
            found = !memcmp(e->event_id.data, id, 16);
        } else if (e->type == SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_CONSENT_DECISION) {
            found = !memcmp(e->consent_decision->about_event_id.data, id, 16) &&
                    (int)e->consent_decision->outcome == outcome_about;
        }
        schakel_envelope_free(e);
    }
    schakel_consumer_destroy(&c);
    return found;
}

/* Publishes, and fails the test when the broker rejects. */
static uint64_t publish(const char *org, const char *json, uint8_t id[16])
{
    uint64_t seq = harness_publish_json(H, org, json, id);
    if (!seq) fail_msg("%s could not publish %s", org, json);
    return seq;
}

static void referral(const char *org, const char *subject, const char *extra, const char *to_kind,
                     uint8_t id[16])
{
    char rid[33], json[1024];
    new_id(rid);
    snprintf(json, sizeof json,
             "{\"type\":\"referral\",\"subject\":\"%s\",%s\"purpose\":\"support\","
             "\"legal_basis\":\"consent\",\"categories\":[\"home_situation\"],"
             "\"referral\":{\"referral_id\":\"%s\",\"to_kind\":\"%s\",\"reasons\":[\"home_situation\"],"
             "\"urgency\":\"soon\",\"request_code\":\"intake\"}}",
             subject, extra, rid, to_kind);
    publish(org, json, id);
}

static void consent(const char *org, const char *subject, const char *given_by, const char *age,
                    const char *recipient_kind, char cid[33], uint8_t id[16])
{
    char json[1024];
    new_id(cid);
    snprintf(json, sizeof json,
             "{\"type\":\"consent_given\",\"subject\":\"%s\",\"purpose\":\"consent_admin\","
             "\"legal_basis\":\"consent\",\"consent_given\":{\"consent_id\":\"%s\",\"given_by\":\"%s\","
             "\"age_band\":\"%s\",\"recipient_kind\":\"%s\",\"purposes\":[\"support\",\"feedback\"],"
             "\"categories\":[\"home_situation\",\"behaviour\"],\"valid_from\":\"2020-01-01\"}}",
             subject, cid, given_by, age, recipient_kind);
    publish(org, json, id);
}

/* ---- the node, with a clock the test controls ---- */

/* Adds a test organisation with the clock right, and makes school 12AB00
 * send all its children to wijkteam-noord whatever their district: a new
 * directory version, which the broker puts on the log. */
static void change_directory(void)
{
    schakel_keys_t k;
    assert_int_equal(schakel_keys_generate(&k, "test-clock"), 0);
    assert_int_equal(schakel_keys_save(&k, H->keys), 0);
    char sign[65];
    hex(k.sign_public, 32, sign);
    json_error_t err;
    json_t *d = json_load_file(H->directory, 0, &err);
    assert_non_null(d);
    json_array_append_new(json_object_get(d, "organisations"),
                          json_pack("{s:s, s:s, s:s, s:s, s:s, s:[s], s:[s]}", "id", "test-clock",
                                    "kind", "service", "name", "test clock", "curve_public",
                                    k.curve_public, "sign_public", sign, "publish", "clock_tick",
                                    "rights", "clock"));
    size_t i;
    json_t *s;
    json_array_foreach(json_object_get(d, "schools"), i, s)
        if (!strcmp(json_string_value(json_object_get(s, "brinvest")), "12AB00"))
            json_object_set_new(s, "wijkteam_override", json_string("wijkteam-noord"));
    json_object_set_new(d, "version", json_integer(2));
    char tmp[600];
    snprintf(tmp, sizeof tmp, "%s.tmp", H->directory);
    assert_int_equal(json_dump_file(d, tmp, JSON_INDENT(2)), 0);
    assert_int_equal(rename(tmp, H->directory), 0);
    json_decref(d);
}

/* Publishes a clock tick at at_ms as the test clock; retries while the
 * broker has not yet loaded the directory that lists it. */
static uint64_t tick(int64_t at_ms)
{
    char json[256];
    for (int i = 0; i < 100; i++) {
        snprintf(json, sizeof json,
                 "{\"type\":\"clock_tick\",\"purpose\":\"bus\",\"legal_basis\":\"bus\","
                 "\"clock_tick\":{\"at_ms\":%lld}}",
                 (long long)at_ms);
        uint64_t seq = harness_publish_json(H, "test-clock", json, NULL);
        if (seq) return seq;
        usleep(100000);
    }
    fail_msg("the test clock was never accepted");
    return 0;
}

static int setup(void **state)
{
    (void)state;
    H = harness_new_node();
    if (harness_start(H) != 0) return -1;
    change_directory();
    tick(now_ms()); /* also: the new directory is in force at the broker */
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    harness_destroy(&H);
    return 0;
}

/* ---- the scenarios ---- */

static void anonymous_consultation_reaches_social_work(void **state)
{
    (void)state;
    uint8_t id[16];
    publish("school-12ab00",
            "{\"type\":\"consultation\",\"purpose\":\"consultation\",\"legal_basis\":\"anonymous\","
            "\"consultation\":{\"consulted_kind\":\"smw\",\"topics\":[\"behaviour\"],"
            "\"question_code\":\"advice\"}}",
            id);
    decisions_t ds;
    wait_decisions(id, 1, &ds);
    const decision_t *d = find(&ds, "smw-farent", SCHAKEL__V1__CONSENT_OUTCOME__CONSENT_OUTCOME_DELIVER);
    assert_non_null(d);
    assert_int_equal(d->basis, SCHAKEL__V1__LEGAL_BASIS__LEGAL_BASIS_ANONYMOUS);
    assert_string_equal(d->rule, "legal/anonymous");
    assert_true(received("smw-farent", id, 0));
    /* and it arrived with no subject */
    schakel_consumer_t *c = harness_consumer(H, "smw-farent", "org/smw-farent", NULL);
    const Schakel__V1__Delivered *r;
    char why[SCHAKEL_ERRLEN];
    int seen = 0;
    while (schakel_consumer_next(c, &r, 0, why) == 0) {
        schakel_envelope_t *e = schakel_envelope_decode(r->event.data, r->event.len, NULL);
        if (!memcmp(e->event_id.data, id, 16)) {
            assert_string_equal(e->subject, "");
            seen = 1;
        }
        schakel_envelope_free(e);
    }
    schakel_consumer_destroy(&c);
    assert_true(seen);
    assert_false(received("ggd-jgz", id, 0));
}

static void referral_is_held_then_released_by_consent(void **state)
{
    (void)state;
    char p[65], cid[33];
    uint8_t ref[16], cons[16];
    child("scenario-held-released", p);
    referral("school-34cd01", p, "\"district\":\"zuid\",\"age_band\":\"under_12\",", "wijkteam", ref);
    decisions_t ds;
    wait_decisions(ref, 1, &ds);
    assert_non_null(find(&ds, "wijkteam-zuid", SCHAKEL__V1__CONSENT_OUTCOME__CONSENT_OUTCOME_HOLD));
    assert_false(received("wijkteam-zuid", ref, 0));

    consent("school-34cd01", p, "parents", "under_12", "wijkteam", cid, cons);
    wait_decisions(ref, 2, &ds);
    const decision_t *d = find(&ds, "wijkteam-zuid", SCHAKEL__V1__CONSENT_OUTCOME__CONSENT_OUTCOME_DELIVER);
    assert_non_null(d);
    assert_string_equal(d->rule, "consent/released");
    assert_string_equal(d->consent_id, cid);
    assert_int_equal(d->basis, SCHAKEL__V1__LEGAL_BASIS__LEGAL_BASIS_CONSENT);
    assert_true(received("wijkteam-zuid", ref, 0));
    /* the wijkteam is also told about the consent itself */
    wait_decisions(cons, 1, &ds);
    assert_non_null(find(&ds, "wijkteam-zuid", SCHAKEL__V1__CONSENT_OUTCOME__CONSENT_OUTCOME_DELIVER));
}

static void held_referral_expires_and_the_school_is_told(void **state)
{
    (void)state;
    char p[65];
    uint8_t ref[16];
    child("scenario-expires", p);
    referral("school-34cd01", p, "\"district\":\"zuid\",\"age_band\":\"under_12\",", "wijkteam", ref);
    decisions_t ds;
    wait_decisions(ref, 1, &ds);
    assert_non_null(find(&ds, "wijkteam-zuid", SCHAKEL__V1__CONSENT_OUTCOME__CONSENT_OUTCOME_HOLD));
    wait_services(tick(now_ms() + 19LL * 86400000)); /* within the 20 days: still held */
    read_decisions(ref, &ds);
    assert_int_equal(ds.n, 1);
    tick(now_ms() + 21LL * 86400000);
    wait_decisions(ref, 2, &ds);
    const decision_t *d = find(&ds, "wijkteam-zuid", SCHAKEL__V1__CONSENT_OUTCOME__CONSENT_OUTCOME_EXPIRED);
    assert_non_null(d);
    assert_string_equal(d->inform, "school-34cd01");
    assert_true(received("school-34cd01", ref, SCHAKEL__V1__CONSENT_OUTCOME__CONSENT_OUTCOME_EXPIRED));
    assert_false(received("wijkteam-zuid", ref, 0));
}

static void wijkteam_consent_does_not_open_ggd(void **state)
{
    (void)state;
    char p[65], cid[33];
    uint8_t cons[16], to_ggd[16], to_wijk[16];
    child("scenario-ggd", p);
    consent("school-34cd01", p, "parents", "under_12", "wijkteam", cid, cons);
    referral("school-34cd01", p, "\"district\":\"zuid\",", "ggd", to_ggd);
    referral("school-34cd01", p, "\"district\":\"zuid\",", "wijkteam", to_wijk);
    decisions_t ds;
    wait_decisions(to_ggd, 1, &ds);
    assert_true(routed_to(&ds, "ggd-jgz"));
    assert_non_null(find(&ds, "ggd-jgz", SCHAKEL__V1__CONSENT_OUTCOME__CONSENT_OUTCOME_HOLD));
    assert_null(find(&ds, "ggd-jgz", SCHAKEL__V1__CONSENT_OUTCOME__CONSENT_OUTCOME_DELIVER));
    wait_decisions(to_wijk, 1, &ds);
    const decision_t *d = find(&ds, "wijkteam-zuid", SCHAKEL__V1__CONSENT_OUTCOME__CONSENT_OUTCOME_DELIVER);
    assert_non_null(d);
    assert_string_equal(d->rule, "consent/specific");
    assert_false(received("ggd-jgz", to_ggd, 0));
}

static void withdrawn_consent_holds_what_follows(void **state)
{
    (void)state;
    char p[65], cid[33], json[512];
    uint8_t cons[16], before[16], wd[16], after[16];
    child("scenario-withdrawn", p);
    consent("school-34cd01", p, "parents", "under_12", "wijkteam", cid, cons);
    referral("school-34cd01", p, "\"district\":\"zuid\",", "wijkteam", before);
    decisions_t ds;
    wait_decisions(before, 1, &ds);
    assert_non_null(find(&ds, "wijkteam-zuid", SCHAKEL__V1__CONSENT_OUTCOME__CONSENT_OUTCOME_DELIVER));

    snprintf(json, sizeof json,
             "{\"type\":\"consent_withdrawn\",\"subject\":\"%s\",\"purpose\":\"consent_admin\","
             "\"legal_basis\":\"consent\",\"consent_withdrawn\":{\"consent_id\":\"%s\","
             "\"withdrawn_by\":\"parents\",\"effective_on\":\"2026-11-20\"}}",
             p, cid);
    uint64_t wd_seq = publish("school-34cd01", json, wd);
    referral("school-34cd01", p, "\"district\":\"zuid\",", "wijkteam", after);
    wait_decisions(after, 1, &ds);
    assert_non_null(find(&ds, "wijkteam-zuid", SCHAKEL__V1__CONSENT_OUTCOME__CONSENT_OUTCOME_HOLD));
    for (size_t i = 0; i < ds.n; i++)
        if (ds.d[i].outcome == SCHAKEL__V1__CONSENT_OUTCOME__CONSENT_OUTCOME_DELIVER)
            assert_true(strcmp(ds.d[i].consent_id, cid) != 0);
    assert_false(received("wijkteam-zuid", after, 0));
    /* the wijkteam hears of the withdrawal itself */
    wait_decisions(wd, 1, &ds);
    const decision_t *d = find(&ds, "wijkteam-zuid", SCHAKEL__V1__CONSENT_OUTCOME__CONSENT_OUTCOME_DELIVER);
    assert_non_null(d);
    assert_true(d->seq > wd_seq);
}

static void meldcode_report_and_feedback_need_no_consent(void **state)
{
    (void)state;
    char p[65], rep[33], json[1024];
    uint8_t report[16], feedback[16];
    child("scenario-meldcode", p);
    new_id(rep);
    snprintf(json, sizeof json,
             "{\"type\":\"veiligthuis_report\",\"subject\":\"%s\",\"purpose\":\"safety\","
             "\"legal_basis\":\"meldcode\",\"categories\":[\"safety\"],\"veiligthuis_report\":"
             "{\"report_id\":\"%s\",\"reported_on\":\"2026-11-20\",\"assessment\":\"structural\","
             "\"not_informed_reason\":\"safety_risk\"}}",
             p, rep);
    publish("school-12ab00", json, report);
    decisions_t ds;
    wait_decisions(report, 1, &ds);
    const decision_t *d =
        find(&ds, "veiligthuis-region", SCHAKEL__V1__CONSENT_OUTCOME__CONSENT_OUTCOME_DELIVER);
    assert_non_null(d);
    assert_int_equal(d->basis, SCHAKEL__V1__LEGAL_BASIS__LEGAL_BASIS_MELDCODE);
    assert_string_equal(d->rule, "legal/meldcode-report");
    assert_true(d->duty);
    assert_true(received("veiligthuis-region", report, 0));

    snprintf(json, sizeof json,
             "{\"type\":\"veiligthuis_feedback\",\"subject\":\"%s\",\"purpose\":\"feedback\","
             "\"legal_basis\":\"veiligthuis_feedback\",\"veiligthuis_feedback\":{\"report_id\":\"%s\","
             "\"outcome\":\"investigation\",\"on\":\"2026-11-22\"}}",
             p, rep);
    publish("veiligthuis-region", json, feedback);
    wait_decisions(feedback, 1, &ds);
    d = find(&ds, "school-12ab00", SCHAKEL__V1__CONSENT_OUTCOME__CONSENT_OUTCOME_DELIVER);
    assert_non_null(d);
    assert_int_equal(d->basis, SCHAKEL__V1__LEGAL_BASIS__LEGAL_BASIS_VEILIGTHUIS_FEEDBACK);
    assert_true(received("school-12ab00", feedback, 0));
}

static void home_district_decides_unless_overridden(void **state)
{
    (void)state;
    char p[65], q[65], cid[33];
    uint8_t c1[16], c2[16], r1[16], r2[16];
    /* school 34CD01 stands in zuid; this child lives in noord */
    child("scenario-district", p);
    consent("school-34cd01", p, "parents", "under_12", "wijkteam", cid, c1);
    referral("school-34cd01", p, "\"district\":\"noord\",", "wijkteam", r1);
    decisions_t ds;
    wait_decisions(r1, 1, &ds);
    assert_true(routed_to(&ds, "wijkteam-noord"));
    assert_false(routed_to(&ds, "wijkteam-zuid"));
    assert_true(received("wijkteam-noord", r1, 0));
    /* school 12AB00's directory entry sends every child to wijkteam-noord */
    child("scenario-override", q);
    consent("school-12ab00", q, "parents", "under_12", "wijkteam", cid, c2);
    referral("school-12ab00", q, "\"district\":\"zuid\",", "wijkteam", r2);
    wait_decisions(r2, 1, &ds);
    assert_true(routed_to(&ds, "wijkteam-noord"));
    assert_false(routed_to(&ds, "wijkteam-zuid"));
}

static void whose_consent_counts_depends_on_age(void **state)
{
    (void)state;
    char own[65], parents[65], cid[33];
    uint8_t c1[16], c2[16], r1[16], r2[16];
    child("scenario-16-own", own);
    consent("school-34cd01", own, "youth_alone", "16_17", "wijkteam", cid, c1);
    referral("school-34cd01", own, "\"district\":\"zuid\",\"age_band\":\"16_17\",", "wijkteam", r1);
    decisions_t ds;
    wait_decisions(r1, 1, &ds);
    assert_non_null(find(&ds, "wijkteam-zuid", SCHAKEL__V1__CONSENT_OUTCOME__CONSENT_OUTCOME_DELIVER));

    child("scenario-16-parents", parents);
    consent("school-34cd01", parents, "parents", "16_17", "wijkteam", cid, c2);
    referral("school-34cd01", parents, "\"district\":\"zuid\",\"age_band\":\"16_17\",", "wijkteam", r2);
    wait_decisions(r2, 1, &ds);
    assert_non_null(find(&ds, "wijkteam-zuid", SCHAKEL__V1__CONSENT_OUTCOME__CONSENT_OUTCOME_HOLD));
    assert_null(find(&ds, "wijkteam-zuid", SCHAKEL__V1__CONSENT_OUTCOME__CONSENT_OUTCOME_DELIVER));
}

/* The region's directory keeper changes the directory with a signed event:
 * the broker checks it, applies it, writes it to its file, and routing
 * follows it from that point of the log. */
static void signed_directory_update_changes_routing(void **state)
{
    (void)state;
    json_error_t err;
    json_t *d = json_load_file(H->directory, 0, &err);
    assert_non_null(d);
    json_int_t v = json_integer_value(json_object_get(d, "version"));
    size_t i;
    json_t *x;
    json_array_foreach(json_object_get(d, "districts"), i, x)
        if (!strcmp(json_string_value(json_object_get(x, "code")), "centrum"))
            json_object_set_new(x, "wijkteam", json_string("wijkteam-zuid"));
    json_object_set_new(d, "version", json_integer(v + 1));
    char *doc = json_dumps(d, JSON_COMPACT);
    json_t *ev = json_pack("{s:s, s:s, s:s, s:{s:I, s:s}}", "type", "directory_update", "purpose",
                           "bus", "legal_basis", "bus", "directory_update", "version",
                           (json_int_t)(v + 1), "document_json", doc);
    char *text = json_dumps(ev, JSON_COMPACT);
    /* a school may not do this */
    assert_int_equal(harness_publish_json(H, "school-12ab00", text, NULL), 0);
    uint64_t seq = publish("gemeente-region", text, NULL);
    /* the same version again is refused with a reason: versions only go up */
    assert_int_equal(harness_publish_json(H, "gemeente-region", text, NULL), 0);
    free(text);
    json_decref(ev);
    free(doc);
    json_decref(d);

    /* the broker wrote it to its file */
    d = json_load_file(H->directory, 0, &err);
    assert_non_null(d);
    assert_int_equal(json_integer_value(json_object_get(d, "version")), v + 1);
    json_decref(d);

    wait_services(seq);
    char p[65], cid[33];
    uint8_t c1[16], r1[16];
    child("scenario-centrum", p);
    consent("school-34cd01", p, "parents", "under_12", "wijkteam", cid, c1);
    referral("school-34cd01", p, "\"district\":\"centrum\",", "wijkteam", r1);
    decisions_t ds;
    wait_decisions(r1, 1, &ds);
    assert_true(routed_to(&ds, "wijkteam-zuid"));
    assert_false(routed_to(&ds, "wijkteam-noord"));
}

static int count_in_log(const char *needle)
{
    char path[600], line[2048];
    snprintf(path, sizeof path, "%s/broker.log", H->dir);
    FILE *f = fopen(path, "r");
    int n = 0;
    while (f && fgets(line, sizeof line, f)) n += strstr(line, needle) != NULL;
    if (f) fclose(f);
    return n;
}

static void replay_yields_the_same_decisions(void **state)
{
    (void)state;
    /* let the services catch up with everything above, then stop */
    uint64_t head = harness_head(H);
    for (int i = 0; i < 200 && (service_cursor("routing") < head || service_cursor("consent") < head); i++) {
        usleep(50000);
        head = harness_head(H);
    }
    assert_int_equal(harness_shutdown(H), 0);
    head = harness_head(H);

    /* an auditor's replay from an empty state, compared byte for byte */
    char out[600];
    snprintf(out, sizeof out, "%s/replay.json", H->dir);
    const char *args[] = {"audit", "replay", "--data", H->data, NULL};
    assert_int_equal(harness_run_tool(out, args), 0);
    FILE *f = fopen(out, "r");
    char text[2048];
    size_t n = fread(text, 1, sizeof text - 1, f);
    text[n] = 0;
    fclose(f);
    printf("%s", text);
    assert_null(strstr(text, "\"ok\":false"));
    assert_non_null(strstr(text, "\"service\":\"consent\",\"ok\":true"));

    /* and the live services, state wiped: they derive it all again, the
     * broker sees only duplicates of what it has, byte for byte */
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s/services'", H->data);
    assert_int_equal(system(cmd), 0);
    int rejected_before = count_in_log("derived_rejected");
    assert_int_equal(harness_start(H), 0);
    for (int i = 0; i < 300 && (service_cursor("routing") < head || service_cursor("consent") < head); i++)
        usleep(50000);
    assert_true(service_cursor("routing") >= head);
    assert_true(service_cursor("consent") >= head);
    assert_int_equal(harness_head(H), head);
    assert_int_equal(count_in_log("derived_rejected"), rejected_before);
    assert_int_equal(harness_shutdown(H), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(anonymous_consultation_reaches_social_work),
        cmocka_unit_test(referral_is_held_then_released_by_consent),
        cmocka_unit_test(held_referral_expires_and_the_school_is_told),
        cmocka_unit_test(wijkteam_consent_does_not_open_ggd),
        cmocka_unit_test(withdrawn_consent_holds_what_follows),
        cmocka_unit_test(meldcode_report_and_feedback_need_no_consent),
        cmocka_unit_test(home_district_decides_unless_overridden),
        cmocka_unit_test(whose_consent_counts_depends_on_age),
        cmocka_unit_test(signed_directory_update_changes_routing),
        cmocka_unit_test(replay_yields_the_same_decisions),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
