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
#include "scenario.h"

/* ---- the node ---- */

static int setup(void **state)
{
    (void)state;
    H = harness_new_node();
    if (harness_start(H) != 0) return -1;
    change_directory(1);
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

#define VT_REPORT "{\"type\":\"veiligthuis_report\",\"subject\":\"%s\",\"purpose\":\"safety\"," \
    "\"legal_basis\":\"meldcode\",\"categories\":[\"safety\"],\"veiligthuis_report\":" \
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
    /* whoever routing named: the reporter may have it on the meldcode, nobody else */
    for (size_t i = 0; i < ds.n; i++)
        if (ds.d[i].outcome == SCHAKEL__V1__CONSENT_OUTCOME__CONSENT_OUTCOME_DELIVER &&
            ds.d[i].basis == SCHAKEL__V1__LEGAL_BASIS__LEGAL_BASIS_VEILIGTHUIS_FEEDBACK)
            assert_string_equal(ds.d[i].recipient, "school-34cd01");
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
        cmocka_unit_test(withdrawal_by_another_organisation_changes_nothing),
        cmocka_unit_test(veiligthuis_feedback_only_to_its_reporter),
        cmocka_unit_test(replay_yields_the_same_decisions),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
