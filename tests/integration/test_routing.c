/* Routing and consent on a real node (broker, routing and consent
 * services, sample region), one scenario per flow of docs/flows.md. Time is
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
#include "json.h"
#include "scenario.h"
#include "service.h"

/* ---- the node ---- */

static int setup(void **state)
{
    (void)state;
    return node_start(1, now_ms()); /* also: the new directory is in force at the broker */
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
    harness_reader_t rd = harness_read(H, "smw-farent", "org/smw-farent");
    int seen = 0;
    while (harness_next(&rd)) {
        const schakel_envelope_t *e = rd.e;
        if (!memcmp(e->event_id.data, id, 16)) {
            assert_string_equal(e->subject, "");
            seen = 1;
        }
    }
    assert_int_equal(rd.undecoded, 0);
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
    /* a reader of org/wijkteam-zuid that has handled everything up to the
     * head of the log, so past the referral's seq */
    char why[SCHAKEL_ERRLEN];
    schakel_consumer_t *c = harness_consumer(H, "wijkteam-zuid", "org/wijkteam-zuid", "late-reader");
    assert_non_null(c);
    assert_int_equal(schakel_consumer_commit(c, harness_head(H), why), 0);
    schakel_consumer_destroy(&c);

    consent("school-34cd01", p, "parents", "under_12", "wijkteam", cid, cons);
    wait_decisions(ref, 2, &ds);
    const decision_t *d = find(&ds, "wijkteam-zuid", SCHAKEL__V1__CONSENT_OUTCOME__CONSENT_OUTCOME_DELIVER);
    assert_non_null(d);
    assert_string_equal(d->rule, "consent/released");
    assert_string_equal(d->consent_id, cid);
    assert_int_equal(d->basis, SCHAKEL__V1__LEGAL_BASIS__LEGAL_BASIS_CONSENT);
    assert_true(received("wijkteam-zuid", ref, 0));
    /* the released referral comes after that reader's cursor: it has the
     * position of the decision that released it, not its old seq */
    c = harness_consumer(H, "wijkteam-zuid", "org/wijkteam-zuid", "late-reader");
    const Schakel__V1__Delivered *r;
    int late = 0;
    while (!late && schakel_consumer_next(c, &r, 0, why) == 0) {
        schakel_envelope_t *e = schakel_envelope_decode(r->event.data, r->event.len, NULL);
        assert_non_null(e);
        if (!memcmp(e->event_id.data, ref, 16)) {
            late = 1;
            assert_true(r->position > r->seq);
        }
        schakel_envelope_free(e);
    }
    schakel_consumer_destroy(&c);
    assert_true(late);
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
    /* not told on a ground of the meldcode: no duty (test_law_meldcode.c) */
    assert_string_equal(d->rule, "legal/meldcode-report-not-informed");
    assert_false(d->duty);
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

/* The region's directory keeper (admin-region, kind admin) changes the
 * directory with a signed event:
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
    json_t *ev = json_pack("{s:s, s:s, s:s, s:{s:I, s:s}}", "type", "directory_update", "purpose", "bus",
                           "legal_basis", "bus", "directory_update", "version", (json_int_t)(v + 1),
                           "document_json", doc);
    char *text = json_dumps(ev, JSON_COMPACT);
    /* a school may not do this */
    assert_int_equal(harness_publish_json(H, "school-12ab00", text, NULL), 0);
    uint8_t did[16];
    uint64_t seq = publish("admin-region", text, did);
    /* the same version again is refused with a reason: versions only go up */
    assert_int_equal(harness_publish_json(H, "admin-region", text, NULL), 0);
    /* but a retry of the stored event (its ACK lost) is a duplicate with
     * the first seq, though its version is no longer above the one in force */
    char hex[33];
    schakel_hex_encode(did, 16, hex);
    json_object_set_new(ev, "event_id", json_string(hex));
    char *again = json_dumps(ev, JSON_COMPACT);
    assert_int_equal(harness_publish_json(H, "admin-region", again, NULL), seq);
    free(again);
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

/* A referral of subject from org with a chosen event id; returns its seq. */
static uint64_t referral_as(const char *org, const char *id_hex, const char *subject, const char *district)
{
    char json[1024], rid[33];
    new_id(rid);
    snprintf(json, sizeof json,
             "{\"event_id\":\"%s\",\"type\":\"referral\",\"subject\":\"%s\",\"district\":\"%s\","
             "\"purpose\":\"support\",\"legal_basis\":\"consent\",\"categories\":[\"home_situation\"],"
             "\"referral\":{\"referral_id\":\"%s\",\"to_kind\":\"wijkteam\",\"reasons\":[\"home_situation\"],"
             "\"urgency\":\"soon\",\"request_code\":\"intake\"}}",
             id_hex, subject, district, rid);
    return publish(org, json, NULL);
}

/* A signal of org with a chosen event id; returns its seq. */
static uint64_t signal_as(const char *org, const uint8_t id[16])
{
    char json[512], h[33], p[65];
    hex(id, 16, h);
    child("scenario-squatter", p);
    snprintf(
        json, sizeof json,
        "{\"event_id\":\"%s\",\"type\":\"signal\",\"subject\":\"%s\",\"purpose\":\"support\","
        "\"legal_basis\":\"consent\",\"categories\":[\"behaviour\"],\"signal\":{\"concerns\":[\"behaviour\"],"
        "\"urgency\":\"routine\",\"observed_on\":\"2026-11-20\",\"raised_by\":\"teacher\"}}",
        h, p);
    return publish(org, json, NULL);
}

/* The referral of school 34CD01 to wijkteam-noord, with consent: delivered. */
static uint64_t delivered_referral(const char *label, const char *id_hex, uint8_t id[16])
{
    char p[65], cid[33];
    uint8_t c1[16];
    child(label, p);
    consent("school-34cd01", p, "parents", "under_12", "wijkteam", cid, c1);
    uint64_t seq = referral_as("school-34cd01", id_hex, p, "noord");
    assert_int_equal(schakel_hex_decode(id_hex, id, 16), 0);
    decisions_t ds;
    wait_decisions_at(id, seq, 1, &ds);
    assert_true(routed_to(&ds, "wijkteam-noord"));
    assert_non_null(find(&ds, "wijkteam-noord", SCHAKEL__V1__CONSENT_OUTCOME__CONSENT_OUTCOME_DELIVER));
    assert_true(received("wijkteam-noord", id, 0));
    return seq;
}

/* Attack: another school computes the referral's id (adapters derive ids
 * from export columns) and publishes it first. The referral is still
 * stored, routed and delivered, and explain tells the two apart. */
static void squatted_referral_id_is_still_routed(void **state)
{
    (void)state;
    char idhex[33], q[65];
    uint8_t id[16];
    new_id(idhex);
    child("scenario-squat-other-child", q);
    uint64_t squat = referral_as("school-12ab00", idhex, q, "zuid");
    uint64_t seq = delivered_referral("scenario-squat-referral", idhex, id);
    assert_true(seq > squat);
    /* explain, by publisher: the referral, delivered to wijkteam-noord */
    char out[600];
    snprintf(out, sizeof out, "%s/explain.json", H->dir);
    const char *args[] = {"explain", "--node",    H->data, "--org", "school-34cd01",
                          "--json",  "--purpose", "test",  idhex,   NULL};
    assert_int_equal(harness_run_tool(out, args), 0);
    json_error_t err;
    json_t *x = json_load_file(out, 0, &err);
    assert_non_null(x);
    assert_string_equal(json_string_value(json_object_get(json_object_get(x, "event"), "source_org")),
                        "school-34cd01");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(x, "event"), "seq")), seq);
    assert_string_equal(
        json_string_value(json_object_get(
            json_object_get(json_object_get(x, "organisations"), "wijkteam-noord"), "received")),
        "event");
    json_decref(x);
    /* without --org: both events, each on its own */
    const char *all[] = {"explain", "--node", H->data, "--json", "--purpose", "test", idhex, NULL};
    assert_int_equal(harness_run_tool(out, all), 0);
    x = json_load_file(out, 0, &err);
    assert_non_null(x);
    assert_int_equal(json_array_size(json_object_get(x, "events")), 2);
    json_decref(x);
    /* and in text: both, said so */
    const char *text[] = {"explain", "--node", H->data, "--purpose", "test", idhex, NULL};
    assert_int_equal(harness_run_tool(out, text), 0);
    FILE *f = fopen(out, "r");
    char buf[8192];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    fclose(f);
    assert_non_null(strstr(buf, "2 organisations published an event with id"));
    assert_non_null(strstr(buf, "referral from school-12ab00"));
    assert_non_null(strstr(buf, "referral from school-34cd01"));
}

/* Attack: an organisation publishes, first, the ids routing would derive
 * for its decision about a referral (today's derivation and the one
 * before ids were scoped). Routing still decides; nothing changes. */
static void squatted_routing_decision_id_changes_nothing(void **state)
{
    (void)state;
    char idhex[33];
    uint8_t id[16], old_form[16], new_form[16];
    new_id(idhex);
    assert_int_equal(schakel_hex_decode(idhex, id, 16), 0);
    schakel_derive_id(old_form, "schakel/v1/routing", id, (size_t)16, NULL);
    schakel_derive_id(new_form, "schakel/v1/routing", "school-34cd01", strlen("school-34cd01"), id,
                      (size_t)16, NULL);
    signal_as("school-12ab00", old_form);
    signal_as("school-12ab00", new_form);
    delivered_referral("scenario-squat-decision", idhex, id);
}

static void replay_yields_the_same_decisions(void **state)
{
    (void)state;
    /* let the services catch up with everything above, then stop */
    uint64_t head = harness_head(H);
    wait_services(head);
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
    wait_services(head);
    assert_int_equal(harness_head(H), head);
    assert_int_equal(count_in_log("derived_rejected"), rejected_before);
    assert_int_equal(harness_shutdown(H), 0);
}

/* A decision the broker refuses (here: the directory no longer lets
 * svc-routing publish routing_decision) is an alarm: an error line, the
 * routing service's count, and `schakel health` exits 1. */
static void refused_decision_raises_the_alarm(void **state)
{
    (void)state;
    assert_int_equal(harness_start(H), 0);
    char out[600];
    snprintf(out, sizeof out, "%s/health.json", H->dir);
    const char *args[] = {"health", "--node", H->data, NULL};
    assert_int_equal(harness_run_tool(out, args), 0);

    json_error_t err;
    json_t *d = json_load_file(H->directory, 0, &err);
    assert_non_null(d);
    size_t i;
    json_t *o;
    json_array_foreach(json_object_get(d, "organisations"), i, o)
        if (!strcmp(json_string_value(json_object_get(o, "id")), "svc-routing"))
            json_object_set_new(o, "publish", json_array());
    json_int_t v = json_integer_value(json_object_get(d, "version")) + 1;
    json_object_set_new(d, "version", json_integer(v));
    char tmp[600], loaded[64];
    snprintf(tmp, sizeof tmp, "%s.tmp", H->directory);
    assert_int_equal(json_dump_file(d, tmp, JSON_INDENT(2)), 0);
    assert_int_equal(rename(tmp, H->directory), 0);
    json_decref(d);
    snprintf(loaded, sizeof loaded, "event=directory_loaded version=%lld", (long long)v);
    for (int k = 0; k < 100 && !count_in_log(loaded); k++) usleep(50000);
    assert_true(count_in_log(loaded) > 0);

    char p[65];
    uint8_t id[16];
    child("scenario-refused-decision", p);
    char idhex[33];
    new_id(idhex);
    uint64_t seq = referral_as("school-34cd01", idhex, p, "noord");
    for (int k = 0; k < 300 && service_cursor("routing") < seq; k++) usleep(50000);
    assert_true(service_cursor("routing") >= seq);
    assert_int_equal(schakel_hex_decode(idhex, id, 16), 0);
    decisions_t ds;
    read_decisions(id, &ds);
    assert_int_equal(ds.n_routed, 0); /* not on the log: refused */
    /* exactly once: the outbox removes a refused entry with its count */
    assert_int_equal(
        count_in_log("level=error component=routing event=derived_rejected alarm=derived_refused"), 1);
    assert_int_equal(harness_run_tool(out, args), 1);
    json_t *h = json_load_file(out, 0, &err);
    assert_non_null(h);
    assert_true(json_is_false(json_object_get(h, "ok")));
    assert_int_equal(json_integer_value(json_object_get(
                         json_object_get(json_object_get(h, "services"), "routing"), "alarms")),
                     1);
    json_decref(h);
    assert_int_equal(harness_shutdown(H), 0);
}

/* ---- least privilege (issue 10, item 6) ---- */

/* A directory_update event with the node's directory, changed by edit,
 * at the next version. */
static char *directory_event_at(void (*edit)(json_t *orgs), json_int_t above)
{
    json_error_t err;
    json_t *d = json_load_file(H->directory, 0, &err);
    assert_non_null(d);
    json_int_t v = json_integer_value(json_object_get(d, "version")) + above;
    if (edit) edit(json_object_get(d, "organisations"));
    json_object_set_new(d, "version", json_integer(v));
    char *doc = json_dumps(d, JSON_COMPACT);
    json_t *ev = json_pack("{s:s, s:s, s:s, s:{s:I, s:s}}", "type", "directory_update", "purpose", "bus",
                           "legal_basis", "bus", "directory_update", "version", v, "document_json", doc);
    char *text = json_dumps(ev, JSON_COMPACT);
    free(doc);
    json_decref(ev);
    json_decref(d);
    return text;
}

static char *directory_event(void (*edit)(json_t *orgs))
{
    return directory_event_at(edit, 1);
}

static json_t *entry(json_t *orgs, const char *id)
{
    size_t i;
    json_t *o;
    json_array_foreach(orgs, i, o)
        if (!strcmp(json_string_value(json_object_get(o, "id")), id)) return o;
    fail_msg("%s is not in the directory", id);
    return NULL;
}

static void gemeente_reads_all(json_t *orgs)
{
    json_t *g = entry(orgs, "gemeente-region");
    json_array_append_new(json_object_get(g, "rights"), json_string("read_all"));
    json_array_append_new(json_object_get(g, "publish"), json_string("directory_update"));
}

static void gemeente_keeps_the_directory(json_t *orgs)
{
    json_array_append_new(json_object_get(entry(orgs, "gemeente-region"), "rights"),
                          json_string("directory"));
    json_array_clear(json_object_get(entry(orgs, "admin-region"), "rights"));
}

static void routing_keeps_the_directory(json_t *orgs)
{
    json_array_append_new(json_object_get(entry(orgs, "svc-routing"), "rights"), json_string("directory"));
}

static void nobody_keeps_the_directory(json_t *orgs)
{
    json_array_clear(json_object_get(entry(orgs, "admin-region"), "rights"));
}

static void smw_reads_all_but_it_may_not(json_t *orgs)
{
    json_object_set_new(entry(orgs, "smw-farent"), "name", json_string("Farent (renamed)"));
}

/* Versions only go up, also within one batch: the checker judged each
 * update against the directory in force, so a second update that is not
 * above the first (lower, or another document at the same version) must
 * be refused when the batch is stored, not installed after it. */
static void directory_updates_in_one_batch_only_go_up(void **state)
{
    (void)state;
    json_error_t err;
    json_t *d = json_load_file(H->directory, 0, &err);
    assert_non_null(d);
    json_int_t v = json_integer_value(json_object_get(d, "version"));
    json_decref(d);
    char *texts[3] = {directory_event_at(NULL, 2), directory_event_at(NULL, 1),
                      directory_event_at(smw_reads_all_but_it_may_not, 2)};
    uint8_t *bufs[3], ids[3][16];
    size_t lens[3];
    for (int i = 0; i < 3; i++) {
        char why[SCHAKEL_ERRLEN] = "";
        schakel_envelope_t *e = schakel_json_parse_envelope(texts[i], strlen(texts[i]), why);
        if (!e) fail_msg("%s", why);
        harness_event_id(ids[i]);
        e->event_id.data = ids[i];
        e->event_id.len = 16;
        e->source_org = "admin-region";
        e->occurred_at = now_ms();
        lens[i] = schakel__v1__envelope__get_packed_size(e);
        bufs[i] = malloc(lens[i]);
        schakel__v1__envelope__pack(e, bufs[i]);
        e->event_id.data = NULL, e->event_id.len = 0, e->source_org = NULL;
        schakel_envelope_free(e);
        free(texts[i]);
    }
    schakel_client_t *c = harness_client(H, "admin-region");
    Schakel__V1__Ack *a = NULL;
    assert_int_equal(schakel_client_publish(c, (const uint8_t *const *)bufs, lens, 3, &a, 10000), 0);
    assert_non_null(a);
    assert_int_equal(a->n_entries, 3);
    assert_int_equal(a->entries[0]->code, 0);
    for (int i = 1; i < 3; i++) {
        assert_int_equal(a->entries[i]->code, SCHAKEL__V1__REJECT_CODE__REJECT_INVALID);
        if (!strstr(a->entries[i]->reason, "above the version in force"))
            fail_msg("entry %d: %s", i, a->entries[i]->reason);
    }
    schakel__v1__ack__free_unpacked(a, NULL);
    schakel_client_destroy(&c);
    for (int i = 0; i < 3; i++) free(bufs[i]);
    /* the broker is on the first: its file says so, and the smw kept its name */
    d = json_load_file(H->directory, 0, &err);
    assert_non_null(d);
    assert_int_equal(json_integer_value(json_object_get(d, "version")), v + 2);
    assert_string_not_equal(
        json_string_value(json_object_get(entry(json_object_get(d, "organisations"), "smw-farent"), "name")),
        "Farent (renamed)");
    json_decref(d);
}

/* The key the edit gives ggd-jgz (generated by the test). */
static char ggd_new_curve[SCHAKEL_Z85_KEY_LEN + 1];

static void ggd_gets_a_new_key(json_t *orgs)
{
    json_object_set_new(entry(orgs, "ggd-jgz"), "curve_public", json_string(ggd_new_curve));
}

/* A stolen key is replaced in the directory: a connection the thief
 * opened with it before is refused from the next command on (not only
 * new connections), and the organisation's new key works. */
static void a_replaced_key_closes_open_connections(void **state)
{
    (void)state;
    schakel_consumer_t *thief = harness_consumer(H, "ggd-jgz", "org/ggd-jgz", NULL);
    const Schakel__V1__Delivered *r;
    char why[SCHAKEL_ERRLEN] = "";
    int rc = schakel_consumer_next(thief, &r, 500, why);
    assert_true(rc == 0 || rc == SCHAKEL_ETIMEOUT); /* the connection works */

    schakel_keys_t k;
    assert_int_equal(schakel_keys_generate(&k, "ggd-jgz"), 0);
    snprintf(ggd_new_curve, sizeof ggd_new_curve, "%s", k.curve_public);
    char *text = directory_event(ggd_gets_a_new_key);
    uint8_t did[16];
    publish("admin-region", text, did);
    free(text);

    do rc = schakel_consumer_next(thief, &r, 2000, why);
    while (rc == 0);
    assert_int_equal(rc, SCHAKEL_EREJECTED);
    if (!strstr(why, "gives ggd-jgz another CURVE key")) fail_msg("reason: %s", why);
    schakel_consumer_destroy(&thief);

    /* the organisation, with its new key, reads on */
    char rm[600];
    snprintf(rm, sizeof rm, "rm -f '%s'/ggd-jgz.*", H->keys);
    assert_int_equal(system(rm), 0);
    assert_int_equal(schakel_keys_save(&k, H->keys), 0);
    schakel_keys_wipe(&k);
    schakel_consumer_t *c = harness_consumer(H, "ggd-jgz", "org/ggd-jgz", NULL);
    rc = schakel_consumer_next(c, &r, 500, why);
    if (rc != 0 && rc != SCHAKEL_ETIMEOUT) fail_msg("the new key: %s", why);
    schakel_consumer_destroy(&c);
}

/* The attack of issue 10: an organisation that holds data gets itself the
 * right to read everything through a directory update. Neither it nor the
 * admin can make that happen, and the directory stays as it was. */
static void a_data_holder_cannot_grant_itself_read_all(void **state)
{
    (void)state;
    json_error_t err;
    json_t *before = json_load_file(H->directory, 0, &err);
    assert_non_null(before);
    char reason[SCHAKEL_ERRLEN];
    char *text = directory_event(gemeente_reads_all);
    /* the municipality holds no directory right in the sample region */
    assert_int_equal(publish_code("gemeente-region", text, reason),
                     SCHAKEL__V1__REJECT_CODE__REJECT_NOT_ALLOWED);
    /* and not even the admin can give it read_all */
    assert_int_equal(publish_code("admin-region", text, reason), SCHAKEL__V1__REJECT_CODE__REJECT_INVALID);
    assert_non_null(strstr(reason, "(gemeente-region).rights: a gemeente holds data about children and "
                                   "may not have \"read_all\""));
    free(text);

    struct {
        void (*edit)(json_t *);
        const char *want;
    } cases[] = {
        {gemeente_keeps_the_directory, "a gemeente holds data about children and may not have \"directory\""},
        {routing_keeps_the_directory, "(svc-routing).rights: only an organisation of kind \"admin\""},
        {nobody_keeps_the_directory, "no organisation keeps the \"directory\" right"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        text = directory_event(cases[i].edit);
        assert_int_equal(publish_code("admin-region", text, reason),
                         SCHAKEL__V1__REJECT_CODE__REJECT_INVALID);
        if (!strstr(reason, cases[i].want))
            fail_msg("reason \"%s\" does not say \"%s\"", reason, cases[i].want);
        free(text);
    }
    /* nothing changed: the file, and what the municipality may read */
    json_t *after = json_load_file(H->directory, 0, &err);
    assert_non_null(after);
    assert_true(json_equal(before, after));
    json_decref(before);
    json_decref(after);
    schakel_consumer_t *c = harness_consumer(H, "gemeente-region", "all", NULL);
    const Schakel__V1__Delivered *r;
    char why[SCHAKEL_ERRLEN] = "";
    assert_int_equal(schakel_consumer_next(c, &r, 2000, why), SCHAKEL_EREJECTED);
    schakel_consumer_destroy(&c);
}

/* What routing refused about event id, as the publisher org reads it in
 * its own stream: "field org reason;" per refused organisation, waiting up
 * to 15 s for the decision. "" when no decision reached org. */
static void told(const char *org, const uint8_t id[16], char *out, size_t size)
{
    char stream[80];
    snprintf(stream, sizeof stream, "org/%s", org);
    out[0] = 0;
    for (int tries = 0; tries < 150 && !out[0]; tries++) {
        harness_reader_t rd = harness_read(H, org, stream);
        while (harness_next(&rd)) {
            const schakel_envelope_t *e = rd.e;
            const Schakel__V1__RoutingDecision *d = e->routing_decision;
            if (e->type == SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_ROUTING_DECISION &&
                !memcmp(d->about_event_id.data, id, 16)) {
                assert_string_equal(d->inform_org, org);
                for (size_t i = 0; i < d->n_refused; i++) {
                    size_t n = strlen(out);
                    snprintf(out + n, size - n, "%s %s %s;", d->refused[i]->field, d->refused[i]->org_id,
                             d->refused[i]->reason_code);
                }
            }
        }
        assert_int_equal(rd.undecoded, 0);
        if (!out[0]) usleep(100000);
    }
}

/* Publishes json as org and checks that the broker refuses it
 * REJECT_NOT_ALLOWED with a reason that says want. */
static void rejected(const char *org, const char *json, const char *want)
{
    char reason[SCHAKEL_ERRLEN];
    int code = publish_code(org, json, reason);
    if (code != SCHAKEL__V1__REJECT_CODE__REJECT_NOT_ALLOWED || !strstr(reason, want))
        fail_msg("code %d, reason \"%s\"; wanted REJECT_NOT_ALLOWED saying \"%s\"", code, reason, want);
    assert_null(strstr(reason, "123456782")); /* a name not listed is never repeated */
}

/* The attack of issue 10: a school names an unrelated school as addressee,
 * as a referral's to_org or as a consent's recipient; that school would
 * learn that there is a concern about the child. What the directory alone
 * rules out the broker refuses at publish; what the routing rules rule out
 * routing refuses, delivers the rest, and the publisher reads why in its
 * own stream. */
static void a_school_cannot_reach_an_unrelated_school(void **state)
{
    (void)state;
    char p[65], json[1200], cid[33];
    child("scenario-unrelated-school", p);
#define SIGNAL                                                                          \
    "{\"type\":\"signal\",\"subject\":\"%s\",\"purpose\":\"support\","                  \
    "\"legal_basis\":\"consent\",\"categories\":[\"behaviour\"],\"school\":\"12AB00\"," \
    "\"addressees\":[\"ggd-jgz\",\"%s\"],"                                              \
    "\"signal\":{\"concerns\":[\"behaviour\"],\"observed_on\":\"2026-11-16\"}}"
    snprintf(json, sizeof json, SIGNAL, p, "school-34cd01");
    rejected("school-12ab00", json, "addressees[1]: a school may not name another school (school-34cd01)");
    snprintf(json, sizeof json, SIGNAL, p, "bsn-123456782");
    rejected("school-12ab00", json, "addressees[1]: not an organisation in the directory");
    snprintf(json, sizeof json, SIGNAL, p, "admin-region");
    rejected("school-12ab00", json, "addressees[1]: admin-region keeps the directory and receives no events");
#define REFERRAL                                                         \
    "{\"type\":\"referral\",\"subject\":\"%s\",\"purpose\":\"support\"," \
    "\"legal_basis\":\"consent\",\"referral\":{\"referral_id\":\"%s\","  \
    "\"to_kind\":\"%s\",\"to_org\":\"school-34cd01\",\"reasons\":[\"home_situation\"]}}"
    new_id(cid);
    snprintf(json, sizeof json, REFERRAL, p, cid, "school");
    rejected("school-12ab00", json, "referral.to_org: a school may not name another school");
    snprintf(json, sizeof json, REFERRAL, p, cid, "wijkteam");
    rejected("smw-farent", json,
             "referral.to_org: school-34cd01 is a school, not the wijkteam that to_kind names");
    new_id(cid);
    snprintf(json, sizeof json,
             "{\"type\":\"consent_given\",\"subject\":\"%s\",\"purpose\":\"consent_admin\","
             "\"legal_basis\":\"consent\",\"consent_given\":{\"consent_id\":\"%s\",\"given_by\":\"parents\","
             "\"age_band\":\"under_12\",\"recipient_org\":\"school-34cd01\",\"purposes\":[\"support\"],"
             "\"valid_from\":\"2020-01-01\"}}",
             p, cid);
    rejected("school-12ab00", json, "consent_given.recipient_org: a school may not name another school");

    /* the rules: a school's addressee must be of a kind the rule lists (a
     * service is not); the rest of the event is routed, the school told */
    uint8_t s1[16];
    snprintf(json, sizeof json, SIGNAL, p, "svc-audit");
    publish("school-12ab00", json, s1);
    decisions_t ds;
    wait_decisions(s1, 2, &ds); /* ggd-jgz as addressee, smw-farent by the school's team */
    assert_true(routed_to(&ds, "ggd-jgz"));
    assert_true(routed_to(&ds, "smw-farent"));
    assert_false(routed_to(&ds, "svc-audit"));
    char why[1024];
    told("school-12ab00", s1, why, sizeof why);
    assert_string_equal(why, "addressees[1] svc-audit kind_not_allowed;");

    /* a care organisation may name the child's school, and only that one */
    uint8_t f1[16];
    snprintf(json, sizeof json,
             "{\"type\":\"referral_received\",\"subject\":\"%s\",\"purpose\":\"feedback\","
             "\"legal_basis\":\"consent\",\"school\":\"12AB00\","
             "\"addressees\":[\"school-12ab00\",\"school-34cd01\"],"
             "\"referral_received\":{\"referral_id\":\"%s\",\"received_on\":\"2026-11-17\"}}",
             p, "ab000000000000000000000000000077");
    publish("wijkteam-noord", json, f1);
    told("wijkteam-noord", f1, why, sizeof why);
    assert_string_equal(why, "addressees[1] school-34cd01 not_the_childs_school;");
    wait_decisions(f1, 1, &ds);
    assert_true(routed_to(&ds, "school-12ab00"));
    assert_false(routed_to(&ds, "school-34cd01"));
    /* the other school saw none of it, not even a notice */
    assert_false(received("school-34cd01", s1, 0));
    assert_false(received("school-34cd01", s1, SCHAKEL__V1__CONSENT_OUTCOME__CONSENT_OUTCOME_NOTICE_ONLY));
    assert_false(received("school-34cd01", f1, 0));
    assert_false(received("school-34cd01", f1, SCHAKEL__V1__CONSENT_OUTCOME__CONSENT_OUTCOME_NOTICE_ONLY));
#undef SIGNAL
#undef REFERRAL
}

/* Issue 10: a consent is its id *and* the organisation that recorded it.
 * Another school withdrawing the same consent id for the same child
 * changes nothing: the wijkteam still gets the referral on that consent. */
static void withdrawal_by_another_organisation_changes_nothing(void **state)
{
    (void)state;
    char p[65], cid[33], json[512];
    uint8_t cons[16], wd[16], ref[16];
    child("scenario-foreign-withdrawal", p);
    consent("school-34cd01", p, "parents", "under_12", "wijkteam", cid, cons);
    int ignored = count_in_log("event=withdrawal_ignored");
    snprintf(json, sizeof json,
             "{\"type\":\"consent_withdrawn\",\"subject\":\"%s\",\"purpose\":\"consent_admin\","
             "\"legal_basis\":\"consent\",\"consent_withdrawn\":{\"consent_id\":\"%s\","
             "\"withdrawn_by\":\"parents\",\"effective_on\":\"2026-11-20\"}}",
             p, cid);
    wait_services(publish("school-12ab00", json, wd));
    referral("school-34cd01", p, "\"district\":\"zuid\",", "wijkteam", ref);
    decisions_t ds;
    wait_decisions(ref, 1, &ds);
    const decision_t *d = find(&ds, "wijkteam-zuid", SCHAKEL__V1__CONSENT_OUTCOME__CONSENT_OUTCOME_DELIVER);
    assert_non_null(d);
    assert_string_equal(d->consent_id, cid);
    assert_true(received("wijkteam-zuid", ref, 0));
    assert_true(count_in_log("event=withdrawal_ignored") > ignored);
}

#define VT_REPORT                                                                         \
    "{\"type\":\"veiligthuis_report\",\"subject\":\"%s\",\"purpose\":\"safety\","         \
    "\"legal_basis\":\"meldcode\",\"categories\":[\"safety\"],\"veiligthuis_report\":"    \
    "{\"report_id\":\"%s\",\"reported_on\":\"2026-11-20\",\"assessment\":\"structural\"," \
    "\"not_informed_reason\":\"safety_risk\"}}"

/* Issue 10: Veilig Thuis's feedback about a report goes, on the meldcode's
 * legal basis, only to an organisation that sent a report of that id about
 * that child to it. Another school that reuses the report id (for another
 * child) gets nothing, whoever routing names. */
static void veiligthuis_feedback_only_to_its_reporter(void **state)
{
    (void)state;
    char p[65], q[65], rep[33], json[1024];
    uint8_t r1[16], r2[16], fb[16];
    child("scenario-vt-reporter", p);
    child("scenario-vt-squatter", q);
    new_id(rep);
    snprintf(json, sizeof json, VT_REPORT, p, rep);
    publish("school-34cd01", json, r1);
    snprintf(json, sizeof json, VT_REPORT, q, rep);
    publish("school-12ab00", json, r2);
    decisions_t ds;
    wait_decisions(r2, 1, &ds);
    assert_non_null(find(&ds, "veiligthuis-region", SCHAKEL__V1__CONSENT_OUTCOME__CONSENT_OUTCOME_DELIVER));
    /* the other school also reuses the id for the same child, after the
     * real report: the first reporter stays the one routing remembers */
    uint8_t r3[16];
    snprintf(json, sizeof json, VT_REPORT, p, rep);
    publish("school-12ab00", json, r3);
    wait_decisions(r3, 1, &ds);
    snprintf(json, sizeof json,
             "{\"type\":\"veiligthuis_feedback\",\"subject\":\"%s\",\"purpose\":\"feedback\","
             "\"legal_basis\":\"veiligthuis_feedback\",\"veiligthuis_feedback\":{\"report_id\":\"%s\","
             "\"outcome\":\"investigation\",\"on\":\"2026-11-22\"}}",
             p, rep);
    wait_services(publish("veiligthuis-region", json, fb));
    read_decisions(fb, &ds);
    assert_null(find(&ds, "school-12ab00", SCHAKEL__V1__CONSENT_OUTCOME__CONSENT_OUTCOME_DELIVER));
    assert_null(find(&ds, "school-12ab00", SCHAKEL__V1__CONSENT_OUTCOME__CONSENT_OUTCOME_NOTICE_ONLY));
    assert_false(received("school-12ab00", fb, 0));
    /* the reporter has it on the meldcode, nobody else */
    const decision_t *d = find(&ds, "school-34cd01", SCHAKEL__V1__CONSENT_OUTCOME__CONSENT_OUTCOME_DELIVER);
    assert_non_null(d);
    assert_int_equal(d->basis, SCHAKEL__V1__LEGAL_BASIS__LEGAL_BASIS_VEILIGTHUIS_FEEDBACK);
    for (size_t i = 0; i < ds.n; i++)
        if (ds.d[i].outcome == SCHAKEL__V1__CONSENT_OUTCOME__CONSENT_OUTCOME_DELIVER &&
            ds.d[i].basis == SCHAKEL__V1__LEGAL_BASIS__LEGAL_BASIS_VEILIGTHUIS_FEEDBACK)
            assert_string_equal(ds.d[i].recipient, "school-34cd01");
}

/* ---- issue 16: leerplicht by the home municipality, DUO's and the monitor's codes ---- */

/* A node of its own: the scenarios before leave theirs stopped, with a
 * routing service that may not publish. */
static int fresh_node(void **state)
{
    node_teardown(state);
    return setup(state);
}

#define ABSENCE_JSON                                                                                     \
    "{\"type\":\"absence\",\"subject\":\"%s\",\"purpose\":\"absence\",\"legal_basis\":\"leerplicht\","   \
    "\"categories\":[\"attendance\"],\"school\":\"12AB00\",%s\"absence\":{\"kind\":\"%s\",\"hours\":16," \
    "\"period_from\":\"2026-11-09\",\"period_to\":\"2026-12-04\",\"leerplicht_report\":true%s}}"

/* Publishes an absence report of school-12ab00 (in Noord, municipality
 * Stad) about a child; extra goes into the envelope, body into the body. */
static void absence(const char *label, const char *extra, const char *kind, const char *body, uint8_t id[16])
{
    char p[65], json[1024];
    child(label, p);
    snprintf(json, sizeof json, ABSENCE_JSON, p, extra, kind, body);
    publish("school-12ab00", json, id);
}

/* Delivered to exactly one leerplicht office, on the legal basis
 * leerplicht: `office`. */
static void only_to(const uint8_t id[16], const char *office)
{
    decisions_t ds;
    wait_decisions(id, 1, &ds);
    const decision_t *d = find(&ds, office, SCHAKEL__V1__CONSENT_OUTCOME__CONSENT_OUTCOME_DELIVER);
    if (!d) fail_msg("not delivered to %s", office);
    assert_string_equal(d->rule, "legal/leerplicht");
    assert_int_equal(d->basis, SCHAKEL__V1__LEGAL_BASIS__LEGAL_BASIS_LEERPLICHT);
    assert_true(received(office, id, 0));
    const char *others[] = {"leerplicht-stad", "leerplicht-dorp", "gemeente-region"};
    for (size_t i = 0; i < 3; i++)
        if (strcmp(others[i], office) && routed_to(&ds, others[i])) fail_msg("also routed to %s", others[i]);
}

/* Leerplichtwet art. 21a: the school reports to the municipality where the
 * pupil lives. The sample region has two (Stad: noord, centrum; Dorp:
 * zuid); the school stands in Stad. A report that cannot be placed is
 * refused and the school reads why in its own stream. */
static void absence_goes_to_the_home_municipality(void **state)
{
    (void)state;
    uint8_t id[16];
    absence("scenario-lp-zuid", "\"district\":\"zuid\",", "statutory", "", id);
    only_to(id, "leerplicht-dorp"); /* not the school's own municipality */
    absence("scenario-lp-noord", "\"district\":\"noord\",", "statutory", "", id);
    only_to(id, "leerplicht-stad");
    /* the municipality the body names comes before the district */
    absence("scenario-lp-named", "\"district\":\"noord\",", "luxury", ",\"municipality\":\"dorp\"", id);
    only_to(id, "leerplicht-dorp");
    /* each of DUO's kinds, and absolute absence */
    const char *kinds[] = {"statutory", "long_term_relative", "luxury", "rmc", "other", "absolute"};
    for (size_t i = 0; i < 6; i++) {
        char label[64];
        snprintf(label, sizeof label, "scenario-lp-kind-%zu", i);
        absence(label, "\"district\":\"centrum\",", kinds[i], "", id);
        only_to(id, "leerplicht-stad");
    }
    /* not placed: nobody receives it, the school is told */
    char got[512];
    absence("scenario-lp-nowhere", "", "statutory", "", id);
    told("school-12ab00", id, got, sizeof got);
    assert_string_equal(got, "district  home_municipality_unknown;");
    absence("scenario-lp-oost", "\"district\":\"oost\",", "statutory", "", id);
    told("school-12ab00", id, got, sizeof got);
    assert_string_equal(got, "district  district_not_in_a_municipality;");
    absence("scenario-lp-elders", "\"district\":\"zuid\",", "statutory", ",\"municipality\":\"elders\"", id);
    told("school-12ab00", id, got, sizeof got);
    assert_string_equal(got, "absence.municipality  municipality_not_in_directory;");
    decisions_t ds;
    read_decisions(id, &ds);
    assert_int_equal(ds.n_routed, 0);
    assert_false(received("leerplicht-dorp", id, 0));
    assert_false(received("gemeente-region", id, 0));
    /* the old code is refused at publish, saying what to use */
    char p[65], json[1024], reason[SCHAKEL_ERRLEN];
    child("scenario-lp-old", p);
    snprintf(json, sizeof json, ABSENCE_JSON, p, "\"district\":\"zuid\",", "unauthorised", "");
    assert_int_equal(publish_code("school-12ab00", json, reason), SCHAKEL__V1__REJECT_CODE__REJECT_INVALID);
    assert_non_null(strstr(reason, "statutory, long_term_relative, luxury, rmc, other"));
}

/* The nine reasons of Rotterdam's thuiszitter monitor: each is accepted,
 * reaches the home municipality's leerplicht office and the school's
 * samenwerkingsverband, and the office can count it in its own cell (no
 * aggregate command counts thuiszitters yet: the count here is the
 * office's own tally of what it received). The old codes are refused;
 * an exemption is a marker, not a reason. */
static void thuiszitter_reasons_are_the_monitors_nine(void **state)
{
    (void)state;
    static const char *const reasons[] = {"waiting_list_so",         "waiting_for_sbo", "refusal",
                                          "waiting_for_arrangement", "care_first",      "no_school_found",
                                          "no_pupil_transport",      "unknown",         "other"};
#define TZ_JSON                                                                             \
    "{\"type\":\"thuiszitter_status\",\"subject\":\"%s\",\"purpose\":\"absence\","          \
    "\"legal_basis\":\"leerplicht\",\"categories\":[\"attendance\"],\"school\":\"34CD01\"," \
    "\"district\":\"zuid\",\"thuiszitter_status\":{\"state\":\"started\",%s\"since\":\"2026-11-02\"}}"
    uint8_t ids[9][16], id[16];
    char p[65], json[1024], body[128], label[64];
    decisions_t ds;
    for (size_t i = 0; i < 9; i++) {
        snprintf(label, sizeof label, "scenario-tz-%s", reasons[i]);
        child(label, p);
        snprintf(body, sizeof body, "\"reason\":\"%s\",", reasons[i]);
        snprintf(json, sizeof json, TZ_JSON, p, body);
        publish("school-34cd01", json, ids[i]);
    }
    for (size_t i = 0; i < 9; i++) {
        wait_decisions(ids[i], 1, &ds);
        assert_non_null(find(&ds, "leerplicht-dorp", SCHAKEL__V1__CONSENT_OUTCOME__CONSENT_OUTCOME_DELIVER));
        assert_true(routed_to(&ds, "ppo-region"));
        assert_false(routed_to(&ds, "leerplicht-stad"));
    }
    /* the office's tally: one in each of the nine cells */
    size_t cell[9] = {0};
    harness_reader_t rd = harness_read(H, "leerplicht-dorp", "org/leerplicht-dorp");
    while (harness_next(&rd)) {
        const schakel_envelope_t *e = rd.e;
        for (size_t i = 0; i < 9; i++)
            if (e->type == SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_THUISZITTER_STATUS &&
                !memcmp(e->event_id.data, ids[i], 16)) {
                json_t *j = schakel_json_from_envelope(e);
                const char *got =
                    json_string_value(json_object_get(json_object_get(j, "thuiszitter_status"), "reason"));
                for (size_t k = 0; k < 9; k++) cell[k] += got && !strcmp(got, reasons[k]);
                json_decref(j);
            }
    }
    assert_int_equal(rd.undecoded, 0);
    for (size_t k = 0; k < 9; k++)
        if (cell[k] != 1) fail_msg("reason %s: %zu in its cell", reasons[k], cell[k]);
    /* old codes refused, each saying what to give */
    const char *old[] = {"no_suitable_place", "waiting_for_care", "health", "suspended", "exempted"};
    char reason[SCHAKEL_ERRLEN];
    child("scenario-tz-old", p);
    for (size_t i = 0; i < 5; i++) {
        snprintf(body, sizeof body, "\"reason\":\"%s\",", old[i]);
        snprintf(json, sizeof json, TZ_JSON, p, body);
        assert_int_equal(publish_code("school-34cd01", json, reason),
                         SCHAKEL__V1__REJECT_CODE__REJECT_INVALID);
        assert_non_null(strstr(reason, "nine monitor reasons"));
    }
    /* vrijstelling: the marker, without a reason */
    child("scenario-tz-exempted", p);
    snprintf(json, sizeof json, TZ_JSON, p, "\"exempted\":true,");
    publish("school-34cd01", json, id);
    wait_decisions(id, 1, &ds);
    assert_non_null(find(&ds, "leerplicht-dorp", SCHAKEL__V1__CONSENT_OUTCOME__CONSENT_OUTCOME_DELIVER));
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
        cmocka_unit_test(squatted_referral_id_is_still_routed),
        cmocka_unit_test(squatted_routing_decision_id_changes_nothing),
        cmocka_unit_test(a_data_holder_cannot_grant_itself_read_all),
        cmocka_unit_test(a_school_cannot_reach_an_unrelated_school),
        cmocka_unit_test(withdrawal_by_another_organisation_changes_nothing),
        cmocka_unit_test(veiligthuis_feedback_only_to_its_reporter),
        cmocka_unit_test(replay_yields_the_same_decisions),
        cmocka_unit_test(refused_decision_raises_the_alarm),
        cmocka_unit_test_setup(absence_goes_to_the_home_municipality, fresh_node),
        cmocka_unit_test_setup(thuiszitter_reasons_are_the_monitors_nine, fresh_node),
        cmocka_unit_test_setup(a_replaced_key_closes_open_connections, fresh_node),
        cmocka_unit_test_setup(directory_updates_in_one_batch_only_go_up, fresh_node),
    };
    return cmocka_run_group_tests(tests, setup, node_teardown);
}
