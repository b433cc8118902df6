/* Issue 16 item 2: feedback on its own ground, and the family.
 *  - news about a referral for its referrer travels on the referral's own
 *    ground only as far as "it arrived, someone is on it" (received,
 *    first contact); every further step needs a consent of the child that
 *    names the referrer itself for the purpose feedback; a consent for the
 *    referrer's kind does not count; denied steps are decisions with a
 *    rule, not silence;
 *  - the receiver says when it told the family of each step
 *    (family_informed); a step the family was not told of in time earns
 *    the receiver a reminder;
 *  - the municipality's youth care and its leerplicht office are two
 *    kinds: a consent for "the gemeente" does not reach leerplicht.
 * On a real node with a log clock the test controls. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "json.h"
#include "scenario.h"

#define SCHOOL "school-34cd01"
#define WIJKTEAM "wijkteam-zuid"
#define O(x) SCHAKEL__V1__CONSENT_OUTCOME__CONSENT_OUTCOME_##x
#define S(x) SCHAKEL__V1__LOOP_STATE__LOOP_STATE_##x

/* A consent of the child recorded by the school: for recipient (an org id,
 * or a kind with by_kind) and purposes (a JSON list). */
static char last_consent[33]; /* the id of the last consent_for */

static void consent_for(const char *p, const char *recipient, int by_kind, const char *purposes)
{
    char json[1024], *cid = last_consent;
    new_id(cid);
    snprintf(json, sizeof json,
             "{\"type\":\"consent_given\",\"subject\":\"%s\",\"purpose\":\"consent_admin\","
             "\"legal_basis\":\"consent\",\"consent_given\":{\"consent_id\":\"%s\",\"given_by\":\"parents\","
             "\"age_band\":\"under_12\",\"%s\":\"%s\",\"purposes\":%s,\"valid_from\":\"2020-01-01\"}}",
             p, cid, by_kind ? "recipient_kind" : "recipient_org", recipient, purposes);
    wait_services(publish(SCHOOL, json, NULL));
}

/* A referral from the school to its wijkteam, delivered on a consent for
 * the wijkteam (support). */
static void delivered_referral(const char *label, char p[65], char rid[33])
{
    uint8_t ref[16];
    child(label, p);
    consent_for(p, "wijkteam", 1, "[\"support\"]");
    referral_with_id(SCHOOL, p, "\"district\":\"zuid\",\"age_band\":\"under_12\",", "wijkteam", rid, ref);
    decisions_t ds;
    wait_decisions(ref, 1, &ds);
    assert_non_null(find(&ds, WIJKTEAM, O(DELIVER)));
    wait_services(harness_head(H));
}

/* The receiver's event about the referral; with to_school, addressed to
 * the referrer too. Returns its event id. */
static void answer(const char *p, const char *rid, const char *type, const char *body, int to_school,
                   uint8_t id[16])
{
    char json[1024];
    snprintf(json, sizeof json,
             "{\"type\":\"%s\",\"subject\":\"%s\",\"purpose\":\"feedback\",\"legal_basis\":\"consent\","
             "%s\"%s\":{\"referral_id\":\"%s\"%s%s}}",
             type, p, to_school ? "\"school\":\"34CD01\",\"addressees\":[\"" SCHOOL "\"]," : "", type, rid,
             body[0] ? "," : "", body);
    wait_services(publish(WIJKTEAM, json, id));
}

/* The feedback service's status notices about the loop: their ids and
 * states, in log order. */
typedef struct {
    uint8_t id[16];
    int state;
} status_t;

static size_t statuses(const char *rid_hex, status_t *out, size_t max)
{
    uint8_t rid[16];
    schakel_hex_decode(rid_hex, rid, 16);
    harness_reader_t rd = harness_read(H, "svc-audit", "all");
    size_t n = 0;
    while (harness_next(&rd)) {
        const schakel_envelope_t *e = rd.e;
        if (!strcmp(e->source_org, "svc-feedback") &&
            e->type == SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_FEEDBACK_STATUS &&
            !memcmp(e->feedback_status->referral_id.data, rid, 16) && n < max) {
            memcpy(out[n].id, e->event_id.data, 16);
            out[n++].state = e->feedback_status->state;
        }
    }
    return n;
}

/* Waits until consent decided about each notice: then the school's
 * stream holds what it may have. */
static void settle(const status_t *st, size_t n)
{
    decisions_t ds;
    for (size_t i = 0; i < n; i++) wait_decisions(st[i].id, 1, &ds);
}

/* How many status notices about the loop reached the school, by state. */
static size_t school_heard(const char *rid_hex, int state)
{
    uint8_t rid[16];
    schakel_hex_decode(rid_hex, rid, 16);
    harness_reader_t rd = harness_read(H, SCHOOL, "org/" SCHOOL);
    size_t n = 0;
    while (harness_next(&rd)) {
        const schakel_envelope_t *e = rd.e;
        if (e->type == SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_FEEDBACK_STATUS &&
            !memcmp(e->feedback_status->referral_id.data, rid, 16) &&
            (!state || (int)e->feedback_status->state == state))
            n++;
    }
    return n;
}

/* The consent decision for the school about an event: its rule. */
static const char *decided_for_school(const uint8_t id[16], int outcome, decisions_t *ds)
{
    wait_decisions(id, 1, ds);
    const decision_t *d = find(ds, SCHOOL, outcome);
    if (!d) fail_msg("no decision with outcome %d for the school", outcome);
    return d->rule;
}

/* The whole way through: received, first contact, waiting list, left it
 * (declined), closed. */
static void walk(const char *p, const char *rid, uint8_t intake[16], uint8_t received[16])
{
    answer(p, rid, "referral_received", "\"received_on\":\"2027-09-06\"", 1, received);
    answer(p, rid, "first_contact", "\"contact_on\":\"2027-09-06\"", 0, NULL);
    answer(p, rid, "intake", "\"intake_on\":\"2027-09-07\",\"outcome\":\"specialised_care\"", 1, intake);
    answer(p, rid, "waiting_list",
           "\"provider_ref\":\"provider-7\",\"status\":\"placed\",\"on\":\"2027-09-07\"", 0, NULL);
    answer(p, rid, "waiting_list",
           "\"provider_ref\":\"provider-7\",\"status\":\"left\",\"on\":\"2027-09-08\"", 0, NULL);
    answer(p, rid, "closure", "\"closed_on\":\"2027-09-08\",\"reason_code\":\"moved\"", 0, NULL);
}

static int setup(void **state)
{
    (void)state;
    return node_start(0, at("2027-09-06T08:00:00Z")); /* Monday 6 September 2027 */
}

/* Delivered on a consent without the purpose feedback: the school hears
 * received and first contact, and every further step is denied with the
 * rule that says why. The service still tracks every step. */
static void without_feedback_consent_the_school_hears_arrival_only(void **state)
{
    (void)state;
    char p[65], rid[33];
    uint8_t intake[16], rec[16];
    status_t st[16];
    decisions_t ds;
    delivered_referral("fb-none", p, rid);
    walk(p, rid, intake, rec);

    size_t n = statuses(rid, st, 16);
    settle(st, n);
    assert_int_equal(n, 5); /* received, first contact, waiting list, declined, closed */
    assert_int_equal(school_heard(rid, 0), 2);
    assert_int_equal(school_heard(rid, S(RECEIVED)), 1);
    assert_int_equal(school_heard(rid, S(FIRST_CONTACT)), 1);
    assert_string_equal(decided_for_school(st[0].id, O(DELIVER), &ds), "consent/referral-loop-minimal");
    assert_string_equal(decided_for_school(st[1].id, O(DELIVER), &ds), "consent/referral-loop-minimal");
    for (size_t i = 2; i < n; i++)
        assert_string_equal(decided_for_school(st[i].id, O(DENY), &ds), "consent/feedback-not-given");
    /* the receiver's own events, addressed to the school: likewise */
    assert_string_equal(decided_for_school(rec, O(DELIVER), &ds), "consent/referral-loop-minimal");
    assert_string_equal(decided_for_school(intake, O(DENY), &ds), "consent/feedback-not-given");
    assert_false(received(SCHOOL, intake, 0));
}

/* With a consent that names the school itself for feedback: every step. */
static void consent_naming_the_school_for_feedback_gives_every_step(void **state)
{
    (void)state;
    char p[65], rid[33];
    uint8_t intake[16], rec[16];
    status_t st[16];
    decisions_t ds;
    delivered_referral("fb-named", p, rid);
    consent_for(p, SCHOOL, 0, "[\"feedback\"]");
    walk(p, rid, intake, rec);
    size_t n = statuses(rid, st, 16);
    settle(st, n);
    assert_int_equal(n, 5);
    assert_int_equal(school_heard(rid, 0), 5);
    assert_int_equal(school_heard(rid, S(DECLINED)), 1);
    assert_int_equal(school_heard(rid, S(CLOSED)), 1);
    for (size_t i = 0; i < n; i++)
        assert_string_equal(decided_for_school(st[i].id, O(DELIVER), &ds), "consent/feedback");
    assert_string_equal(decided_for_school(intake, O(DELIVER), &ds), "consent/feedback");
    assert_true(received(SCHOOL, intake, 0));
}

/* A consent for every school (the kind), even for feedback, or one that
 * names the school for another purpose, is no ground for feedback. */
static void consent_for_the_kind_or_another_purpose_does_not_count(void **state)
{
    (void)state;
    char p[65], rid[33];
    uint8_t intake[16], rec[16];
    status_t st[16];
    decisions_t ds;
    delivered_referral("fb-kind", p, rid);
    consent_for(p, "school", 1, "[\"feedback\", \"support\"]");
    consent_for(p, SCHOOL, 0, "[\"support\"]");
    walk(p, rid, intake, rec);
    size_t n = statuses(rid, st, 16);
    settle(st, n);
    assert_int_equal(n, 5);
    assert_int_equal(school_heard(rid, 0), 2);
    assert_int_equal(school_heard(rid, S(WAITING_LIST)), 0);
    assert_int_equal(school_heard(rid, S(DECLINED)), 0);
    assert_int_equal(school_heard(rid, S(CLOSED)), 0);
    assert_string_equal(decided_for_school(st[4].id, O(DENY), &ds), "consent/feedback-not-given");
}

/* The consent the referral was delivered on is withdrawn: not even that
 * it arrived reaches the school any more, and it is said why. */
static void withdrawn_ground_carries_nothing(void **state)
{
    (void)state;
    char p[65], rid[33], json[1024];
    status_t st[16];
    decisions_t ds;
    delivered_referral("fb-withdrawn", p, rid);
    snprintf(json, sizeof json,
             "{\"type\":\"consent_withdrawn\",\"subject\":\"%s\",\"purpose\":\"consent_admin\","
             "\"legal_basis\":\"consent\",\"consent_withdrawn\":{\"consent_id\":\"%s\","
             "\"withdrawn_by\":\"parents\",\"effective_on\":\"2027-09-06\"}}",
             p, last_consent);
    wait_services(publish(SCHOOL, json, NULL));
    answer(p, rid, "referral_received", "\"received_on\":\"2027-09-06\"", 0, NULL);
    assert_int_equal(statuses(rid, st, 16), 1);
    assert_string_equal(decided_for_school(st[0].id, O(DENY), &ds), "consent/referral-loop-withdrawn");
    assert_int_equal(school_heard(rid, 0), 0);
}

/* Help that starts with no first contact said first: the school still
 * hears that someone is on it, and nothing of the help. */
static void help_started_at_once_still_says_someone_is_on_it(void **state)
{
    (void)state;
    char p[65], rid[33];
    status_t st[16];
    decisions_t ds;
    delivered_referral("fb-at-once", p, rid);
    answer(p, rid, "intake", "\"intake_on\":\"2027-09-06\",\"outcome\":\"short_help\"", 0, NULL);
    assert_int_equal(statuses(rid, st, 16), 2);
    settle(st, 2);
    assert_int_equal(st[0].state, S(FIRST_CONTACT));
    assert_int_equal(st[1].state, S(HELP_STARTED));
    assert_string_equal(decided_for_school(st[0].id, O(DELIVER), &ds), "consent/referral-loop-minimal");
    assert_string_equal(decided_for_school(st[1].id, O(DENY), &ds), "consent/feedback-not-given");
    assert_int_equal(school_heard(rid, 0), 1);
}

/* The family: told of received in time, not told of first contact: one
 * reminder to the receiver, about first contact, after 5 working days. */
static void family_not_informed_in_time_reminds_the_receiver(void **state)
{
    (void)state;
    char p[65], rid[33], json[1024];
    reminder_t rm[16];
    clock_to("2027-09-13T08:00:00Z"); /* Monday 13 September */
    delivered_referral("fb-family", p, rid);
    answer(p, rid, "referral_received", "\"received_on\":\"2027-09-13\"", 0, NULL);
    answer(p, rid, "first_contact", "\"contact_on\":\"2027-09-13\"", 0, NULL);
    snprintf(
        json, sizeof json,
        "{\"type\":\"family_informed\",\"subject\":\"%s\",\"purpose\":\"feedback\",\"legal_basis\":"
        "\"consent\","
        "\"family_informed\":{\"referral_id\":\"%s\",\"step\":\"received\",\"informed_on\":\"2027-09-14\","
        "\"how\":\"conversation\"}}",
        p, rid);
    wait_services(publish(WIJKTEAM, json, NULL));
    /* 5 working days after Monday 13: Monday 20 is the last day */
    clock_to("2027-09-20T21:30:00Z");
    assert_int_equal(reminders(rid, rm, 16), 0);
    clock_to("2027-09-20T22:30:00Z"); /* Tuesday 21, 00:30 in Amsterdam */
    assert_int_equal(reminders(rid, rm, 16), 1);
    assert_int_equal(rm[0].waiting_for, S(FAMILY_INFORMED_OF_FIRST_CONTACT));
    assert_string_equal(rm[0].to, WIJKTEAM);
    clock_to("2027-10-20T08:00:00Z"); /* once only */
    assert_int_equal(reminders(rid, rm, 16), 1);

    char out[600];
    snprintf(out, sizeof out, "%s/family.json", H->dir);
    const char *args[] = {"loops", "--node", H->data, "--referral", rid, NULL};
    assert_int_equal(harness_run_tool(out, args), 0);
    json_error_t err;
    json_t *o = json_load_file(out, 0, &err);
    assert_non_null(o);
    json_t *fam = json_object_get(o, "family_informed");
    assert_int_equal(json_array_size(fam), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(fam, 0), "step")), "received");
    assert_string_equal(json_string_value(json_object_get(json_array_get(fam, 0), "informed_on")),
                        "2027-09-14");
    assert_string_equal(json_string_value(json_object_get(json_array_get(fam, 1), "step")), "first_contact");
    assert_true(json_is_null(json_object_get(json_array_get(fam, 1), "informed_on")));
    assert_true(json_is_true(json_object_get(json_array_get(fam, 1), "reminded")));
    json_decref(o);
}

/* Told in time of every step, the closing too (after the loop closed): no
 * reminder. A family_informed from someone outside the loop counts for
 * nothing. */
static void family_informed_in_time_earns_no_reminder(void **state)
{
    (void)state;
    char p[65], rid[33], json[1024];
    reminder_t rm[16];
    clock_to("2027-11-01T08:00:00Z"); /* Monday 1 November */
    delivered_referral("fb-family-told", p, rid);
    const char *steps[] = {"received", "first_contact", "closed"};
    answer(p, rid, "referral_received", "\"received_on\":\"2027-11-01\"", 0, NULL);
    answer(p, rid, "first_contact", "\"contact_on\":\"2027-11-01\"", 0, NULL);
    answer(p, rid, "closure", "\"closed_on\":\"2027-11-02\",\"reason_code\":\"goals_met\"", 0, NULL);
    for (size_t i = 0; i < 3; i++) {
        snprintf(json, sizeof json,
                 "{\"type\":\"family_informed\",\"subject\":\"%s\",\"purpose\":\"feedback\","
                 "\"legal_basis\":\"consent\",\"family_informed\":{\"referral_id\":\"%s\",\"step\":\"%s\","
                 "\"informed_on\":\"2027-11-03\",\"how\":\"letter\"}}",
                 p, rid, steps[i]);
        wait_services(publish(i == 2 ? "smw-farent" : WIJKTEAM, json, NULL));
        if (i == 2) wait_services(publish(WIJKTEAM, json, NULL));
    }
    clock_to("2027-12-01T08:00:00Z");
    assert_int_equal(reminders(rid, rm, 16), 0);
}

/* The municipality's youth care (gemeente) and its leerplicht office are
 * two kinds: a consent for the gemeente reaches the jeugdconsulent, never
 * leerplicht; a referral to the gemeente goes to youth care, one to
 * leerplicht to the home municipality's office. */
static void consent_for_the_gemeente_does_not_reach_leerplicht(void **state)
{
    (void)state;
    char p[65], json[1024];
    uint8_t id[16], ref[16];
    decisions_t ds;
    child("fb-gemeente", p);
    consent_for(p, "gemeente", 1, "[\"support\"]");
    snprintf(
        json, sizeof json,
        "{\"type\":\"signal\",\"subject\":\"%s\",\"purpose\":\"support\",\"legal_basis\":\"consent\","
        "\"school\":\"34CD01\",\"district\":\"zuid\",\"age_band\":\"under_12\","
        "\"addressees\":[\"gemeente-region\",\"leerplicht-dorp\"],"
        "\"signal\":{\"concerns\":[\"home_situation\"],\"urgency\":\"soon\",\"observed_on\":\"2027-12-01\"}}",
        p);
    publish(SCHOOL, json, id);
    wait_decisions(id, 3, &ds);
    const decision_t *g = find(&ds, "gemeente-region", O(DELIVER));
    assert_non_null(g);
    assert_string_equal(g->rule, "consent/specific");
    assert_true(routed_to(&ds, "leerplicht-dorp"));
    assert_null(find(&ds, "leerplicht-dorp", O(DELIVER)));
    assert_false(received("leerplicht-dorp", id, 0));

    referral(SCHOOL, p, "\"district\":\"zuid\",\"age_band\":\"under_12\",", "gemeente", ref);
    wait_decisions(ref, 1, &ds);
    assert_true(routed_to(&ds, "gemeente-region"));
    assert_false(routed_to(&ds, "leerplicht-dorp"));
    referral(SCHOOL, p, "\"district\":\"zuid\",\"age_band\":\"under_12\",", "leerplicht", ref);
    wait_decisions(ref, 1, &ds);
    assert_true(routed_to(&ds, "leerplicht-dorp"));
    assert_false(routed_to(&ds, "gemeente-region"));
    assert_null(find(&ds, "leerplicht-dorp", O(DELIVER))); /* the gemeente's consent is not its */
}

/* Every decision above re-derives byte for byte. */
static void replay_is_byte_equal(void **state)
{
    (void)state;
    wait_services(harness_head(H));
    assert_int_equal(harness_shutdown(H), 0);
    char out[600];
    snprintf(out, sizeof out, "%s/replay.json", H->dir);
    const char *args[] = {"audit", "replay", "--data", H->data, NULL};
    assert_int_equal(harness_run_tool(out, args), 0);
    assert_int_equal(harness_start(H), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(without_feedback_consent_the_school_hears_arrival_only),
        cmocka_unit_test(consent_naming_the_school_for_feedback_gives_every_step),
        cmocka_unit_test(consent_for_the_kind_or_another_purpose_does_not_count),
        cmocka_unit_test(help_started_at_once_still_says_someone_is_on_it),
        cmocka_unit_test(withdrawn_ground_carries_nothing),
        cmocka_unit_test(family_not_informed_in_time_reminds_the_receiver),
        cmocka_unit_test(family_informed_in_time_earns_no_reminder),
        cmocka_unit_test(consent_for_the_gemeente_does_not_reach_leerplicht),
        cmocka_unit_test(replay_is_byte_equal),
    };
    return cmocka_run_group_tests(tests, setup, node_teardown);
}
