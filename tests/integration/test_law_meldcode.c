/* The meldcode (Meldcode huiselijk geweld en kindermishandeling) on a real
 * node: a report to Veilig Thuis records the duty to inform the family as
 * the report says (the parents told, or not told on one of the meldcode's
 * grounds, or refused at publish); step 2 reaches Veilig Thuis only as an
 * anonymous consultation, never as the named step record; Veilig Thuis
 * owes the reporter a decision within 5 working days, and the feedback
 * loop reminds it; a report with no Veilig Thuis in the directory is an
 * alarm to the sender and to the operator. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "json.h"
#include "scenario.h"

#define SCHOOL "school-12ab00"
#define VT "veiligthuis-region"
#define VT_ESCALATION "gemeente-region"

#define D(x) SCHAKEL__V1__CONSENT_OUTCOME__CONSENT_OUTCOME_##x

/* A report of SCHOOL about child p; body is spliced into the report. */
#define REPORT_JSON                                                                    \
    "{\"type\":\"veiligthuis_report\",\"subject\":\"%s\",\"purpose\":\"safety\","      \
    "\"legal_basis\":\"meldcode\",\"categories\":[\"safety\"],\"veiligthuis_report\":" \
    "{\"report_id\":\"%s\",\"reported_on\":\"2027-03-01\",\"assessment\":\"structural\"%s}}"

static int setup(void **state)
{
    (void)state;
    return node_start(0, now_ms()); /* also: the new directory is in force at the broker */
}

/* A node of its own, for a scenario that changes the directory. */
static int fresh_node(void **state)
{
    node_teardown(state);
    return setup(state);
}

/* A report about the child of `label`, with body spliced in; its report
 * id in rep (hex), its event id in id. Returns its seq. */
static uint64_t report(const char *label, const char *body, char rep[33], uint8_t id[16])
{
    char p[65], json[1024];
    child(label, p);
    new_id(rep);
    snprintf(json, sizeof json, REPORT_JSON, p, rep, body);
    return publish(SCHOOL, json, id);
}

/* The decision that delivered event id to Veilig Thuis. */
static decision_t to_veiligthuis(const uint8_t id[16])
{
    decisions_t ds;
    wait_decisions(id, 1, &ds);
    const decision_t *d = find(&ds, VT, D(DELIVER));
    if (!d) fail_msg("not delivered to Veilig Thuis");
    assert_int_equal(d->basis, SCHAKEL__V1__LEGAL_BASIS__LEGAL_BASIS_MELDCODE);
    return *d;
}

/* ---- 1. the duty to inform follows the report ---- */

/* The meldcode has the professional talk to the parents before a report
 * (step 3), unless that would put the child, someone else or the
 * professional at risk, or the family would break off contact. The
 * consent decision records whether the family is still to be told. */
static void duty_to_inform_follows_the_report(void **state)
{
    (void)state;
    char rep[33];
    uint8_t id[16];
    /* the parents were told: no duty left */
    report("meldcode-informed", ",\"parents_informed\":true", rep, id);
    decision_t d = to_veiligthuis(id);
    assert_string_equal(d.rule, "legal/meldcode-report");
    assert_false(d.duty);
    assert_true(received(VT, id, 0));
    /* not told, on a ground of the meldcode: no duty, and the rule says why */
    const char *grounds[] = {"safety_risk", "risk_to_others", "risk_to_reporter", "contact_lost"};
    for (size_t i = 0; i < 4; i++) {
        char label[64], body[96];
        snprintf(label, sizeof label, "meldcode-not-informed-%zu", i);
        snprintf(body, sizeof body, ",\"parents_informed\":false,\"not_informed_reason\":\"%s\"", grounds[i]);
        report(label, body, rep, id);
        d = to_veiligthuis(id);
        assert_string_equal(d.rule, "legal/meldcode-report-not-informed");
        assert_false(d.duty);
        assert_true(received(VT, id, 0));
    }
}

/* Not told and no ground: refused at publish, saying what to do. */
static void report_without_a_ground_is_refused(void **state)
{
    (void)state;
    char p[65], rep[33], json[1024], reason[SCHAKEL_ERRLEN];
    child("meldcode-no-ground", p);
    new_id(rep);
    snprintf(json, sizeof json, REPORT_JSON, p, rep, "");
    assert_int_equal(publish_code(SCHOOL, json, reason), SCHAKEL__V1__REJECT_CODE__REJECT_INVALID);
    assert_non_null(strstr(reason,
                           "parents_informed is false: give not_informed_reason (one of safety_risk, "
                           "risk_to_others, risk_to_reporter, contact_lost) or inform the parents first"));
    snprintf(json, sizeof json, REPORT_JSON, p, rep, ",\"not_informed_reason\":\"unreachable\"");
    assert_int_equal(publish_code(SCHOOL, json, reason), SCHAKEL__V1__REJECT_CODE__REJECT_INVALID);
    assert_non_null(strstr(reason, "not_informed_reason: not a known code: give one of safety_risk"));
    assert_null(strstr(reason, "unreachable")); /* a reason never repeats a value */
}

/* ---- 2. step 2 is a consultation, anonymous ---- */

#define STEP2_JSON                                                                    \
    "{\"type\":\"meldcode_step\",\"subject\":\"%s\",\"purpose\":\"safety\","          \
    "\"legal_basis\":\"own_organisation\",%s\"meldcode_step\":{\"step\":\"consult\"," \
    "\"done_on\":\"2027-03-01\",\"consulted_veiligthuis\":true}}"

/* The school's record that it consulted Veilig Thuis names the child: it
 * is the school's own, and does not reach Veilig Thuis, not by the default
 * rules and not when the school names Veilig Thuis as addressee. */
static void named_step_two_stays_with_the_school(void **state)
{
    (void)state;
    char p[65], json[1024];
    uint8_t id[16];
    decisions_t ds;
    child("meldcode-step2", p);
    snprintf(json, sizeof json, STEP2_JSON, p, "");
    wait_services(publish(SCHOOL, json, id)); /* a valid record */
    read_decisions(id, &ds);
    assert_false(routed_to(&ds, VT));
    assert_null(find(&ds, VT, D(DELIVER)));
    assert_false(received(VT, id, 0));

    snprintf(json, sizeof json, STEP2_JSON, p, "\"addressees\":[\"" VT "\"],");
    publish(SCHOOL, json, id);
    wait_decisions(id, 1, &ds);
    assert_true(routed_to(&ds, VT));
    assert_null(find(&ds, VT, D(DELIVER)));
    assert_null(find(&ds, VT, D(NOTICE_ONLY)));
    for (size_t i = 0; i < ds.n; i++) assert_true(strncmp(ds.d[i].rule, "legal/meldcode", 14) != 0);
    assert_false(received(VT, id, 0));
}

/* The consultation itself: no subject, reaches the region's Veilig Thuis
 * as anonymous. With a subject it is refused at publish. */
static void step_two_consultation_reaches_veiligthuis_without_the_child(void **state)
{
    (void)state;
    uint8_t id[16];
    const char *json = "{\"type\":\"consultation\",\"purpose\":\"safety\",\"legal_basis\":\"anonymous\","
                       "\"consultation\":{\"consulted_kind\":\"veiligthuis\",\"topics\":[\"safety\"],"
                       "\"meldcode\":true,\"question_code\":\"advice\"}}";
    publish(SCHOOL, json, id);
    decisions_t ds;
    wait_decisions(id, 1, &ds);
    const decision_t *d = find(&ds, VT, D(DELIVER));
    assert_non_null(d);
    assert_string_equal(d->rule, "legal/anonymous");
    assert_int_equal(d->basis, SCHAKEL__V1__LEGAL_BASIS__LEGAL_BASIS_ANONYMOUS);
    harness_reader_t rd = harness_read(H, VT, "org/" VT);
    int seen = 0;
    while (harness_next(&rd)) {
        const schakel_envelope_t *e = rd.e;
        if (!memcmp(e->event_id.data, id, 16)) {
            assert_string_equal(e->subject, "");
            assert_string_equal(e->case_ref, "");
            seen = 1;
        }
    }
    assert_true(seen);

    char p[65], named[1024], reason[SCHAKEL_ERRLEN];
    child("meldcode-consult-named", p);
    snprintf(
        named, sizeof named,
        "{\"type\":\"consultation\",\"subject\":\"%s\",\"purpose\":\"safety\",\"legal_basis\":\"anonymous\","
        "\"consultation\":{\"consulted_kind\":\"veiligthuis\",\"topics\":[\"safety\"],\"meldcode\":true}}",
        p);
    assert_int_equal(publish_code(SCHOOL, named, reason), SCHAKEL__V1__REJECT_CODE__REJECT_INVALID);
    assert_non_null(strstr(reason, "must not name a subject"));
}

/* ---- 3. Veilig Thuis decides within 5 working days ---- */

/* `schakel loops --node DIR --referral ID`: the loop as JSON (caller frees). */
static json_t *loop_of(const char *rep_hex)
{
    char out[600];
    snprintf(out, sizeof out, "%s/loop.json", H->dir);
    const char *args[] = {"loops", "--node", H->data, "--referral", rep_hex, NULL};
    assert_int_equal(harness_run_tool(out, args), 0);
    json_error_t err;
    json_t *j = json_load_file(out, 0, &err);
    if (!j) fail_msg("schakel loops: %s", err.text);
    return j;
}

/* Veilig Thuis tells the reporter about the report of child `label`. */
static void vt_feedback(const char *label, const char *rep, const char *outcome)
{
    char p[65], json[1024];
    child(label, p);
    snprintf(json, sizeof json,
             "{\"type\":\"veiligthuis_feedback\",\"subject\":\"%s\",\"purpose\":\"feedback\","
             "\"legal_basis\":\"veiligthuis_feedback\",\"veiligthuis_feedback\":{\"report_id\":\"%s\","
             "\"outcome\":\"%s\",\"on\":\"2027-03-03\"}}",
             p, rep, outcome);
    wait_services(publish(VT, json, NULL));
}

/* Delivered Monday 1 March 2027: Veilig Thuis's decision is due Monday 8
 * March (5 working days); a report without it earns Veilig Thuis a
 * reminder from Tuesday 9 March, its escalation contact an escalation
 * (without the child) 2 working days later. A decision told to the
 * reporter ends the loop; an acknowledgement ("received") does not. */
static void veiligthuis_owes_a_decision_within_five_working_days(void **state)
{
    (void)state;
    char silent[33], decided[33], acknowledged[33];
    uint8_t id[16];
    clock_to("2027-03-01T08:00:00Z"); /* Monday, 09:00 in Amsterdam */
    report("vt-loop-silent", ",\"parents_informed\":true", silent, id);
    to_veiligthuis(id);
    report("vt-loop-decided", ",\"parents_informed\":true", decided, id);
    to_veiligthuis(id);
    report("vt-loop-acknowledged", ",\"not_informed_reason\":\"contact_lost\"", acknowledged, id);
    to_veiligthuis(id);
    wait_services(harness_head(H));
    clock_to("2027-03-03T09:00:00Z");
    vt_feedback("vt-loop-decided", decided, "investigation");
    vt_feedback("vt-loop-acknowledged", acknowledged, "received");

    reminder_t s[8];
    clock_to("2027-03-08T22:30:00Z"); /* Monday 8 March, 23:30: still in time */
    assert_int_equal(reminders(silent, s, 8), 0);
    clock_to("2027-03-08T23:30:00Z"); /* Tuesday 00:30 */
    assert_int_equal(reminders(silent, s, 8), 1);
    assert_int_equal(s[0].level, SCHAKEL__V1__REMINDER_LEVEL__REMINDER_LEVEL_REMINDER);
    assert_int_equal(s[0].waiting_for, SCHAKEL__V1__LOOP_STATE__LOOP_STATE_VEILIGTHUIS_DECIDED);
    assert_string_equal(s[0].due_on, "2027-03-08");
    assert_string_equal(s[0].to, VT);
    assert_string_equal(s[0].overdue, VT);
    assert_true(s[0].has_subject);
    assert_int_equal(in_stream_soon(VT, silent, SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_LOOP_REMINDER, 1),
                     1); /* delivered, on the meldcode */
    assert_int_equal(in_stream(SCHOOL, silent, SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_LOOP_REMINDER), 0);
    /* an acknowledgement is no decision */
    assert_int_equal(reminders(acknowledged, s, 8), 1);
    assert_int_equal(s[0].waiting_for, SCHAKEL__V1__LOOP_STATE__LOOP_STATE_VEILIGTHUIS_DECIDED);
    /* the decision came: nothing */
    assert_int_equal(reminders(decided, s, 8), 0);
    json_t *l = loop_of(silent);
    assert_string_equal(json_string_value(json_object_get(l, "origin")), "report");
    assert_string_equal(json_string_value(json_object_get(l, "state")), "sent");
    assert_string_equal(json_string_value(json_object_get(l, "referrer")), SCHOOL);
    assert_string_equal(json_string_value(json_object_get(l, "receiver")), VT);
    assert_string_equal(json_string_value(json_object_get(l, "decision_due")), "2027-03-08");
    assert_true(json_is_true(json_object_get(l, "overdue")));
    json_decref(l);
    l = loop_of(decided);
    assert_string_equal(json_string_value(json_object_get(l, "state")), "veiligthuis_decided");
    assert_true(json_is_false(json_object_get(l, "open")));
    json_decref(l);

    clock_to("2027-03-10T22:30:00Z"); /* Wednesday 23:30 */
    assert_int_equal(reminders(silent, s, 8), 1);
    clock_to("2027-03-10T23:30:00Z"); /* Thursday 00:30: escalation */
    assert_int_equal(reminders(silent, s, 8), 2);
    assert_int_equal(s[1].level, SCHAKEL__V1__REMINDER_LEVEL__REMINDER_LEVEL_ESCALATION);
    assert_string_equal(s[1].to, VT_ESCALATION);
    assert_string_equal(s[1].overdue, VT);
    assert_false(s[1].has_subject);
    assert_int_equal(
        in_stream_soon(VT_ESCALATION, silent, SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_LOOP_REMINDER, 1), 1);
    assert_int_equal(reminders(decided, s, 8), 0);

    /* the log still explains itself: svc-feedback's events replay byte for byte */
    wait_services(harness_head(H));
    assert_int_equal(harness_shutdown(H), 0);
    char out[600];
    snprintf(out, sizeof out, "%s/replay.txt", H->dir);
    const char *services[] = {"routing", "consent", "feedback"};
    for (size_t i = 0; i < 3; i++) {
        const char *args[] = {"audit", "replay", "--data", H->data, "--service", services[i], NULL};
        if (harness_run_tool(out, args) != 0) fail_msg("replay of %s differs", services[i]);
    }
    assert_int_equal(harness_start(H), 0);
}

/* ---- 4. no Veilig Thuis: an alarm ---- */

/* The region's directory names no Veilig Thuis: a report goes nowhere.
 * The school reads why in its own stream, and the operator has an error
 * line and a count that makes `schakel health` exit 1. */
static void report_without_veiligthuis_raises_the_alarm(void **state)
{
    (void)state;
    char out[600];
    snprintf(out, sizeof out, "%s/health.json", H->dir);
    const char *args[] = {"health", "--node", H->data, NULL};
    assert_int_equal(harness_run_tool(out, args), 0);

    json_error_t err;
    json_t *d = json_load_file(H->directory, 0, &err);
    assert_non_null(d);
    json_object_del(json_object_get(d, "region"), "veiligthuis");
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

    char rep[33];
    uint8_t id[16];
    uint64_t seq = report("meldcode-no-vt", ",\"parents_informed\":true", rep, id);
    /* the sender is told, in its own stream */
    char got[512] = "";
    for (int tries = 0; tries < 150 && !got[0]; tries++) {
        harness_reader_t rd = harness_read(H, SCHOOL, "org/" SCHOOL);
        while (harness_next(&rd)) {
            const schakel_envelope_t *e = rd.e;
            if (e->type == SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_ROUTING_DECISION &&
                !memcmp(e->routing_decision->about_event_id.data, id, 16)) {
                const Schakel__V1__RoutingDecision *dec = e->routing_decision;
                assert_string_equal(dec->inform_org, SCHOOL);
                assert_int_equal(dec->n_recipients, 0);
                for (size_t i = 0; i < dec->n_refused; i++) {
                    size_t n = strlen(got);
                    snprintf(got + n, sizeof got - n, "%s %s %s %s;", dec->refused[i]->field,
                             dec->refused[i]->org_id, dec->refused[i]->rule_id, dec->refused[i]->reason_code);
                }
            }
        }
        if (!got[0]) usleep(100000);
    }
    assert_string_equal(got, "region.veiligthuis  meldcode/veiligthuis no_veiligthuis_in_directory;");
    assert_false(received(VT, id, 0));
    /* the operator: an error line and the count */
    for (int k = 0; k < 300 && service_cursor("routing") < seq; k++) usleep(50000);
    for (int k = 0; k < 100 && !count_in_log("alarm=no_veiligthuis"); k++) usleep(50000);
    char line[160];
    snprintf(line, sizeof line,
             "level=error component=routing event=unroutable alarm=no_veiligthuis seq=%llu "
             "type=veiligthuis_report source_org=" SCHOOL " alarms=1",
             (unsigned long long)seq);
    assert_int_equal(count_in_log(line), 1);
    assert_int_equal(harness_run_tool(out, args), 1);
    json_t *h = json_load_file(out, 0, &err);
    assert_non_null(h);
    assert_true(json_is_false(json_object_get(h, "ok")));
    assert_int_equal(json_integer_value(json_object_get(
                         json_object_get(json_object_get(h, "services"), "routing"), "alarms")),
                     1);
    json_decref(h);

    /* cleared by rebuilding the state: the same decision again is a
     * duplicate and raises nothing twice */
    uint64_t head = harness_head(H);
    assert_int_equal(harness_shutdown(H), 0);
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s/services/routing'", H->data);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(harness_start(H), 0);
    wait_services(head);
    assert_int_equal(count_in_log("alarm=no_veiligthuis"), 1);
    assert_int_equal(harness_run_tool(out, args), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(duty_to_inform_follows_the_report),
        cmocka_unit_test(report_without_a_ground_is_refused),
        cmocka_unit_test(named_step_two_stays_with_the_school),
        cmocka_unit_test(step_two_consultation_reaches_veiligthuis_without_the_child),
        cmocka_unit_test(veiligthuis_owes_a_decision_within_five_working_days),
        cmocka_unit_test_setup(report_without_veiligthuis_raises_the_alarm, fresh_node),
    };
    return cmocka_run_group_tests(tests, setup, node_teardown);
}
