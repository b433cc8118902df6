/* The flows of issue 16 item 7 on a real node with a log clock the test
 * controls: the secondary school's zorg- en adviesteam (ZAT) reaches the
 * organisations that attended and nobody else; a case_lead reaches the
 * organisations of its referral's loop; a warm handover is closed by both
 * sides' confirmation and followed up at the side that did not confirm;
 * a MAZL request reaches the school's jeugdarts (GGD), the advice comes
 * back to the school, and an unanswered request is followed up. Audit
 * replay re-derives every decision and reminder. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "json.h"
#include "scenario.h"

#define DELIVER SCHAKEL__V1__CONSENT_OUTCOME__CONSENT_OUTCOME_DELIVER

/* The rule a delivery to org rests on; fails when org got no delivery. */
static const char *delivered_on(const decisions_t *ds, const char *org)
{
    const decision_t *d = find(ds, org, DELIVER);
    if (!d) fail_msg("%s: no delivery", org);
    return d->rule;
}

/* A consent recorded by org for every organisation of a kind, for the
 * purposes and categories given (JSON lists without brackets). */
static void consent_for(const char *org, const char *subject, const char *kind, const char *purposes,
                        const char *categories)
{
    char json[1024], cid[33];
    new_id(cid);
    snprintf(json, sizeof json,
             "{\"type\":\"consent_given\",\"subject\":\"%s\",\"purpose\":\"consent_admin\","
             "\"legal_basis\":\"consent\",\"consent_given\":{\"consent_id\":\"%s\",\"given_by\":\"youth_with_"
             "parents\","
             "\"age_band\":\"12_15\",\"recipient_kind\":\"%s\",\"purposes\":[%s],"
             "\"categories\":[%s],\"valid_from\":\"2020-01-01\"}}",
             subject, cid, kind, purposes, categories);
    wait_services(publish(org, json, NULL));
}

static int setup(void **state)
{
    (void)state;
    return node_start(0, at("2027-05-10T08:00:00Z")); /* Monday 10 May 2027, 10:00 in Amsterdam */
}

/* A ZAT session (no child named: it records who attended) reaches every
 * organisation that attended but the host, and no other. */
static void zat_meeting_reaches_the_participants_and_nobody_else(void **state)
{
    (void)state;
    char json[1024], mid[33];
    uint8_t id[16];
    new_id(mid);
    snprintf(json, sizeof json,
             "{\"type\":\"meeting\",\"purpose\":\"coordination\",\"legal_basis\":\"anonymous\","
             "\"school\":\"12AB00\",\"meeting\":{\"meeting_id\":\"%s\",\"kind\":\"zat\","
             "\"held_on\":\"2027-05-10\",\"participant_orgs\":[\"school-12ab00\",\"smw-farent\","
             "\"ggd-jgz\",\"wijkteam-noord\",\"leerplicht-stad\"]}}",
             mid);
    publish("school-12ab00", json, id);
    decisions_t ds;
    wait_decisions(id, 4, &ds);
    const char *attended[] = {"smw-farent", "ggd-jgz", "wijkteam-noord", "leerplicht-stad"};
    for (size_t i = 0; i < 4; i++) {
        assert_true(routed_to(&ds, attended[i]));
        const decision_t *d = find(&ds, attended[i], DELIVER);
        assert_non_null(d);
        assert_string_equal(d->rule, "legal/anonymous");
        assert_true(received(attended[i], id, 0));
    }
    assert_int_equal(ds.n_routed, 4);
    assert_int_equal(ds.n, 4);
    const char *absent[] = {"ppo-region",      "wijkteam-zuid", "veiligthuis-region",
                            "gemeente-region", "school-34cd01", "leerplicht-dorp"};
    for (size_t i = 0; i < 6; i++) assert_false(received(absent[i], id, 0));
}

/* A referral from the school to its wijkteam, with social work named too:
 * both are receivers of the loop. The school's case_lead (the wijkteam
 * takes the lead) reaches both on the referral's own ground; the
 * wijkteam's reaches the school that referred, and social work, which
 * consent then decides on. The GGD and the PPO are not in the loop. */
static void case_lead_reaches_the_organisations_of_the_referral_loop(void **state)
{
    (void)state;
    char p[65], rid[33], json[1024];
    uint8_t ref[16], id[16];
    child("flows-case-lead", p);
    consent_for("school-34cd01", p, "wijkteam", "\"support\"", "\"home_situation\"");
    consent_for("school-34cd01", p, "smw", "\"support\"", "\"home_situation\"");
    referral_with_id("school-34cd01", p,
                     "\"district\":\"zuid\",\"age_band\":\"12_15\",\"addressees\":[\"smw-farent\"],",
                     "wijkteam", rid, ref);
    decisions_t ds;
    wait_decisions(ref, 2, &ds);
    assert_non_null(find(&ds, "wijkteam-zuid", DELIVER));
    assert_non_null(find(&ds, "smw-farent", DELIVER));
    wait_services(harness_head(H));

    snprintf(
        json, sizeof json,
        "{\"type\":\"case_lead\",\"subject\":\"%s\",\"purpose\":\"coordination\",\"legal_basis\":\"consent\","
        "\"categories\":[\"care_status\"],\"case_lead\":{\"lead_org\":\"wijkteam-zuid\","
        "\"since\":\"2027-05-10\",\"referral_id\":\"%s\"}}",
        p, rid);
    publish("school-34cd01", json, id);
    wait_decisions(id, 2, &ds);
    assert_int_equal(ds.n_routed, 2);
    assert_true(routed_to(&ds, "wijkteam-zuid"));
    assert_true(routed_to(&ds, "smw-farent"));
    assert_string_equal(delivered_on(&ds, "wijkteam-zuid"), "consent/referral-loop");
    assert_string_equal(delivered_on(&ds, "smw-farent"), "consent/referral-loop");
    assert_true(received("smw-farent", id, 0));
    assert_false(received("ggd-jgz", id, 0));
    assert_false(received("ppo-region", id, 0));

    /* the receiver takes the lead itself: routed to the referrer, who
     * hears how the help is organised only with the family's consent to
     * feedback for it by name (routing.md, "Feedback to the referrer") */
    snprintf(
        json, sizeof json,
        "{\"type\":\"case_lead\",\"subject\":\"%s\",\"purpose\":\"coordination\",\"legal_basis\":\"consent\","
        "\"categories\":[\"care_status\"],\"case_lead\":{\"lead_org\":\"wijkteam-zuid\","
        "\"since\":\"2027-05-11\",\"referral_id\":\"%s\"}}",
        p, rid);
    publish("wijkteam-zuid", json, id);
    wait_decisions(id, 2, &ds);
    assert_int_equal(ds.n_routed, 2);
    assert_true(routed_to(&ds, "school-34cd01"));
    assert_true(routed_to(&ds, "smw-farent"));
    const decision_t *d = find(&ds, "school-34cd01", SCHAKEL__V1__CONSENT_OUTCOME__CONSENT_OUTCOME_DENY);
    assert_non_null(d);
    assert_string_equal(d->rule, "consent/feedback-not-given");
    assert_false(received("school-34cd01", id, 0));
}

/* Social work hands a child over to the wijkteam. */
static void handover(const char *p, char hid[33], uint8_t id[16])
{
    char json[1024];
    new_id(hid);
    snprintf(json, sizeof json,
             "{\"type\":\"handover\",\"subject\":\"%s\",\"purpose\":\"support\",\"legal_basis\":\"consent\","
             "\"district\":\"zuid\",\"age_band\":\"12_15\",\"categories\":[\"home_situation\"],"
             "\"handover\":{\"handover_id\":\"%s\",\"to_org\":\"wijkteam-zuid\",\"to_kind\":\"wijkteam\","
             "\"reason_code\":\"care_continues\",\"planned_on\":\"2027-05-11\"}}",
             p, hid);
    publish("smw-farent", json, id);
    decisions_t ds;
    wait_decisions(id, 1, &ds);
    assert_int_equal(ds.n_routed, 1);
    assert_non_null(find(&ds, "wijkteam-zuid", DELIVER));
    wait_services(harness_head(H));
}

static void confirm(const char *org, const char *p, const char *hid, const char *side, uint8_t id[16])
{
    char json[1024];
    snprintf(
        json, sizeof json,
        "{\"type\":\"handover_confirmed\",\"subject\":\"%s\",\"purpose\":\"feedback\",\"legal_basis\":"
        "\"consent\","
        "\"handover_confirmed\":{\"handover_id\":\"%s\",\"side\":\"%s\",\"confirmed_on\":\"2027-05-11\"}}",
        p, hid, side);
    wait_services(publish(org, json, id));
}

/* Both sides confirm: each confirmation reaches the other side, and the
 * loop is closed (no reminder later). One side only: after 10 working
 * days (Whit Monday 17 May 2027 is off, so Tuesday 25 May is the last
 * day) the side that did not confirm is reminded, and only that side. */
static void handover_is_closed_by_both_sides_and_followed_up_at_one(void **state)
{
    (void)state;
    char p[65], q[65], both[33], one[33];
    uint8_t id[16], c1[16], c2[16];
    child("flows-handover-both", p);
    child("flows-handover-one", q);
    consent_for("smw-farent", p, "wijkteam", "\"support\"", "\"home_situation\"");
    consent_for("smw-farent", q, "wijkteam", "\"support\"", "\"home_situation\"");
    handover(p, both, id);
    handover(q, one, id);

    /* a handover to oneself, or a confirmation without its side: refused */
    char json[1024];
    snprintf(json, sizeof json,
             "{\"type\":\"handover\",\"subject\":\"%s\",\"purpose\":\"support\",\"legal_basis\":\"consent\","
             "\"handover\":{\"handover_id\":\"%s\",\"to_org\":\"smw-farent\",\"reason_code\":\"x\","
             "\"planned_on\":\"2027-05-11\"}}",
             p, both);
    assert_int_equal(harness_publish_json(H, "smw-farent", json, NULL), 0);

    confirm("smw-farent", p, both, "giving", c2);
    confirm("smw-farent", q, one, "giving", id);
    /* the receiver cannot confirm for the giving side, nor an outsider for
     * the receiving one: neither closes the handover, nor reaches anyone */
    int ignored = count_in_log("event=loop_event_ignored");
    confirm("wijkteam-zuid", q, one, "giving", id);
    assert_int_equal(count_in_log("reason=not_that_side"), 1);
    decisions_t ds;
    read_decisions(id, &ds);
    assert_int_equal(ds.n_routed, 0);
    confirm("ggd-jgz", q, one, "receiving", c1);
    read_decisions(c1, &ds);
    assert_int_equal(ds.n_routed, 0);
    assert_int_equal(count_in_log("event=loop_event_ignored"), ignored + 2);
    /* the receiver, about another child: not this handover's step (it is
     * still reminded below) */
    uint8_t c3[16];
    confirm("wijkteam-zuid", p, one, "receiving", c3);
    confirm("wijkteam-zuid", p, both, "receiving", c1);
    wait_decisions(c1, 1, &ds);
    assert_int_equal(ds.n_routed, 1);
    assert_string_equal(delivered_on(&ds, "smw-farent"), "consent/referral-loop");
    wait_decisions(c2, 1, &ds);
    assert_int_equal(ds.n_routed, 1);
    assert_string_equal(delivered_on(&ds, "wijkteam-zuid"), "consent/referral-loop");
    assert_true(received("wijkteam-zuid", c2, 0));

    reminder_t r[8];
    clock_to("2027-05-25T21:30:00Z"); /* Tuesday 25 May, 23:30 */
    assert_int_equal(reminders(one, r, 8), 0);
    clock_to("2027-05-25T22:30:00Z"); /* Wednesday 26 May, 00:30 */
    assert_int_equal(reminders(both, r, 8), 0);
    assert_int_equal(reminders(one, r, 8), 1);
    assert_string_equal(r[0].to, "wijkteam-zuid");
    assert_string_equal(r[0].due_on, "2027-05-25");
    assert_int_equal(r[0].waiting_for, SCHAKEL__V1__LOOP_STATE__LOOP_STATE_HANDOVER_CONFIRMED);
    assert_int_equal(r[0].level, SCHAKEL__V1__REMINDER_LEVEL__REMINDER_LEVEL_REMINDER);
    assert_int_equal(in_stream("wijkteam-zuid", one, SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_LOOP_REMINDER), 1);
    assert_int_equal(in_stream("smw-farent", one, SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_LOOP_REMINDER), 0);

    /* `schakel loops`: the open handover, with the giving side's
     * confirmation; the closed one is not listed */
    char out[600];
    snprintf(out, sizeof out, "%s/loops.json", H->dir);
    const char *args[] = {"loops", "--node", H->data, "--org", "smw-farent", NULL};
    assert_int_equal(harness_run_tool(out, args), 0);
    FILE *f = fopen(out, "r");
    assert_non_null(f);
    char *list = calloc(1, 1 << 16);
    list[fread(list, 1, (1 << 16) - 1, f)] = 0;
    fclose(f);
    assert_non_null(strstr(list, one));
    assert_null(strstr(list, both));
    assert_non_null(strstr(list, "\"origin\": \"handover\""));
    assert_non_null(strstr(list, "\"giving_confirmed_on\": \"2027-05-10\""));
    assert_non_null(strstr(list, "\"receiving_confirmed_on\": null"));
    assert_non_null(strstr(list, "\"due\": \"2027-05-25\""));
    free(list);
}

static void mazl_request(const char *p, char rid[33], uint8_t id[16])
{
    char json[1024];
    new_id(rid);
    snprintf(
        json, sizeof json,
        "{\"type\":\"mazl_request\",\"subject\":\"%s\",\"purpose\":\"support\",\"legal_basis\":\"consent\","
        "\"school\":\"12AB00\",\"age_band\":\"12_15\",\"categories\":[\"attendance\"],"
        "\"mazl_request\":{\"request_id\":\"%s\",\"ground\":\"frequent\",\"sick_reports\":4,"
        "\"period_from\":\"2027-03-01\",\"period_to\":\"2027-05-21\",\"parents_informed\":true}}",
        p, rid);
    publish("school-12ab00", json, id);
    decisions_t ds;
    wait_decisions(id, 1, &ds);
    assert_int_equal(ds.n_routed, 1);
    assert_non_null(find(&ds, "ggd-jgz", DELIVER));
    wait_services(harness_head(H));
}

/* The school asks the jeugdarts of its own GGD: the request reaches
 * ggd-jgz and no one else; the advice reaches the school on the
 * request's ground and closes the loop. A request without advice after
 * 10 working days (Wednesday 26 May 2027: the last day is Wednesday 9
 * June) reminds the GGD. A request the parents do not know of is
 * refused. */
static void mazl_request_reaches_the_ggd_and_the_advice_the_school(void **state)
{
    (void)state;
    char p[65], q[65], answered[33], open[33], json[1024];
    uint8_t id[16], adv[16];
    clock_to("2027-05-26T08:00:00Z");
    child("flows-mazl-answered", p);
    child("flows-mazl-open", q);
    consent_for("school-12ab00", p, "ggd", "\"support\"", "\"attendance\"");
    consent_for("school-12ab00", q, "ggd", "\"support\"", "\"attendance\"");
    mazl_request(p, answered, id);
    assert_true(received("ggd-jgz", id, 0));
    assert_false(received("smw-farent", id, 0));
    mazl_request(q, open, id);

    snprintf(
        json, sizeof json,
        "{\"type\":\"mazl_request\",\"subject\":\"%s\",\"purpose\":\"support\",\"legal_basis\":\"consent\","
        "\"mazl_request\":{\"request_id\":\"%s\",\"ground\":\"long\",\"sick_reports\":1,"
        "\"period_from\":\"2027-03-01\",\"period_to\":\"2027-05-21\"}}",
        q, open);
    assert_int_equal(harness_publish_json(H, "school-12ab00", json, NULL), 0);

    snprintf(
        json, sizeof json,
        "{\"type\":\"mazl_advice\",\"subject\":\"%s\",\"purpose\":\"support\",\"legal_basis\":\"consent\","
        "\"mazl_advice\":{\"request_id\":\"%s\",\"advice\":\"refer_huisarts\",\"given_on\":\"2027-05-27\"}}",
        p, answered);
    publish("ggd-jgz", json, adv);
    decisions_t ds;
    wait_decisions(adv, 1, &ds);
    assert_int_equal(ds.n_routed, 1);
    assert_string_equal(delivered_on(&ds, "school-12ab00"), "consent/referral-loop");
    assert_true(received("school-12ab00", adv, 0));

    reminder_t r[8];
    clock_to("2027-06-09T21:30:00Z"); /* Wednesday 9 June, 23:30 */
    assert_int_equal(reminders(open, r, 8), 0);
    clock_to("2027-06-09T22:30:00Z"); /* Thursday 10 June, 00:30 */
    assert_int_equal(reminders(answered, r, 8), 0);
    assert_int_equal(reminders(open, r, 8), 1);
    assert_string_equal(r[0].to, "ggd-jgz");
    assert_string_equal(r[0].due_on, "2027-06-09");
    assert_int_equal(r[0].waiting_for, SCHAKEL__V1__LOOP_STATE__LOOP_STATE_ADVICE_GIVEN);
    assert_int_equal(in_stream("ggd-jgz", open, SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_LOOP_REMINDER), 1);
}

/* Every routing and consent decision and every reminder re-derives. */
static void replay_is_byte_equal(void **state)
{
    (void)state;
    wait_services(harness_head(H));
    assert_int_equal(harness_shutdown(H), 0);
    char out[600];
    snprintf(out, sizeof out, "%s/replay.json", H->dir);
    const char *args[] = {"audit", "replay", "--data", H->data, NULL};
    assert_int_equal(harness_run_tool(out, args), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(zat_meeting_reaches_the_participants_and_nobody_else),
        cmocka_unit_test(case_lead_reaches_the_organisations_of_the_referral_loop),
        cmocka_unit_test(handover_is_closed_by_both_sides_and_followed_up_at_one),
        cmocka_unit_test(mazl_request_reaches_the_ggd_and_the_advice_the_school),
        cmocka_unit_test(replay_is_byte_equal),
    };
    return cmocka_run_group_tests(tests, setup, node_teardown);
}
