/* The feedback loop on a real node with a log clock the test controls:
 * deadlines in working days (across a weekend and King's Day 2027, a
 * Tuesday; across Ascension 2028 and the days equated with holidays in
 * the directory), reminders and escalation, one status notice per
 * transition and nothing more, alerts when a handover stalls, and
 * identical loops and events after the state is wiped and the log
 * replayed. */
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

#include "fileio.h"
#include "harness.h"
#include "json.h"
#include "scenario.h"
#include "service.h"

#define SCHOOL "school-34cd01"
#define WIJKTEAM "wijkteam-zuid"
#define ESCALATION "gemeente-region"

/* What svc-feedback said about a loop, read from the whole log. */
typedef struct {
    int state; /* feedback_status: the state */
    int level; /* loop_reminder: the level */
    int waiting_for;
    char due_on[11], to[64], overdue[64];
    int has_subject;
} said_t;

static size_t feedback_said(const char *rid_hex, said_t *out, size_t max)
{
    uint8_t rid[16];
    schakel_hex_decode(rid_hex, rid, 16);
    harness_reader_t rd = harness_read(H, "svc-audit", "all");
    size_t n = 0;
    while (harness_next(&rd)) {
        const schakel_envelope_t *e = rd.e;
        if (!strcmp(e->source_org, "svc-feedback") && n < max) {
            said_t *s = &out[n];
            memset(s, 0, sizeof *s);
            if (e->type == SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_FEEDBACK_STATUS &&
                !memcmp(e->feedback_status->referral_id.data, rid, 16)) {
                s->state = e->feedback_status->state;
                s->has_subject = e->subject[0] != 0;
                n++;
            } else if (e->type == SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_LOOP_REMINDER &&
                       !memcmp(e->loop_reminder->referral_id.data, rid, 16)) {
                s->level = e->loop_reminder->level;
                s->waiting_for = e->loop_reminder->waiting_for;
                snprintf(s->due_on, sizeof s->due_on, "%s", e->loop_reminder->due_on);
                snprintf(s->to, sizeof s->to, "%s", e->loop_reminder->to_org);
                snprintf(s->overdue, sizeof s->overdue, "%s", e->loop_reminder->overdue_org);
                s->has_subject = e->subject[0] != 0;
                n++;
            }
        }
    }
    return n;
}

/* A referral from the school to its wijkteam, with consent: delivered.
 * The parents also consented to the school hearing how it goes (a
 * consent that names the school for feedback: without it the school
 * hears only received and first contact, test_law_feedback.c). */
static void delivered_referral(const char *label, char p[65], char rid[33])
{
    char cid[33], json[1024];
    uint8_t c[16], ref[16];
    child(label, p);
    consent(SCHOOL, p, "parents", "under_12", "wijkteam", cid, c);
    new_id(cid);
    snprintf(json, sizeof json,
             "{\"type\":\"consent_given\",\"subject\":\"%s\",\"purpose\":\"consent_admin\","
             "\"legal_basis\":\"consent\",\"consent_given\":{\"consent_id\":\"%s\",\"given_by\":\"parents\","
             "\"age_band\":\"under_12\",\"recipient_org\":\"" SCHOOL "\",\"purposes\":[\"feedback\"],"
             "\"valid_from\":\"2020-01-01\"}}",
             p, cid);
    publish(SCHOOL, json, c);
    referral_with_id(SCHOOL, p, "\"district\":\"zuid\",\"age_band\":\"under_12\",", "wijkteam", rid, ref);
    decisions_t ds;
    wait_decisions(ref, 1, &ds);
    assert_non_null(find(&ds, WIJKTEAM, SCHAKEL__V1__CONSENT_OUTCOME__CONSENT_OUTCOME_DELIVER));
    wait_services(harness_head(H));
}

/* The receiver tells the bus what happened with the referral. */
static void answer(const char *p, const char *rid, const char *type, const char *body)
{
    char json[1024];
    snprintf(json, sizeof json,
             "{\"type\":\"%s\",\"subject\":\"%s\",\"purpose\":\"feedback\",\"legal_basis\":\"consent\","
             "\"%s\":{\"referral_id\":\"%s\"%s%s}}",
             type, p, type, rid, body[0] ? "," : "", body);
    wait_services(publish(WIJKTEAM, json, NULL));
}

/* The receiver told the family of a step (else it is reminded of that). */
static void told(const char *p, const char *rid, const char *step)
{
    char json[1024];
    snprintf(json, sizeof json,
             "{\"type\":\"family_informed\",\"subject\":\"%s\",\"purpose\":\"feedback\",\"legal_basis\":"
             "\"consent\","
             "\"family_informed\":{\"referral_id\":\"%s\",\"step\":\"%s\",\"informed_on\":\"2027-05-06\","
             "\"how\":\"phone\"}}",
             p, rid, step);
    wait_services(publish(WIJKTEAM, json, NULL));
}

static int setup(void **state)
{
    (void)state;
    return node_start(0, at("2027-04-23T08:00:00Z")); /* Friday 23 April 2027, 10:00 in Amsterdam */
}

static void unanswered_referral_is_reminded_then_escalated(void **state)
{
    (void)state;
    char p[65], rid[33];
    said_t s[16];
    delivered_referral("loop-unanswered", p, rid);
    /* received within 2 working days of Friday: Monday 26, not King's Day
     * (Tuesday 27), so Wednesday 28 April is the last day */
    clock_to("2027-04-28T21:30:00Z"); /* Wednesday 23:30 */
    assert_int_equal(feedback_said(rid, s, 16), 0);
    clock_to("2027-04-28T22:30:00Z"); /* Thursday 00:30 */
    assert_int_equal(feedback_said(rid, s, 16), 1);
    assert_int_equal(s[0].level, SCHAKEL__V1__REMINDER_LEVEL__REMINDER_LEVEL_REMINDER);
    assert_int_equal(s[0].waiting_for, SCHAKEL__V1__LOOP_STATE__LOOP_STATE_RECEIVED);
    assert_string_equal(s[0].due_on, "2027-04-28");
    assert_string_equal(s[0].to, WIJKTEAM);
    assert_true(s[0].has_subject);
    assert_int_equal(in_stream_soon(WIJKTEAM, rid, SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_LOOP_REMINDER, 1), 1);

    /* two more working days (Thursday 29, Friday 30): then escalation */
    clock_to("2027-04-30T21:30:00Z");
    assert_int_equal(feedback_said(rid, s, 16), 1);
    clock_to("2027-04-30T22:30:00Z");
    assert_int_equal(feedback_said(rid, s, 16), 2);
    assert_int_equal(s[1].level, SCHAKEL__V1__REMINDER_LEVEL__REMINDER_LEVEL_ESCALATION);
    assert_string_equal(s[1].to, ESCALATION);
    assert_string_equal(s[1].overdue, WIJKTEAM);
    assert_false(s[1].has_subject); /* the escalation contact learns no child */
    assert_int_equal(in_stream_soon(ESCALATION, rid, SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_LOOP_REMINDER, 1),
                     1);

    /* first contact within 5 working days: Monday 3 May; the reminder on the 4th */
    clock_to("2027-05-03T21:30:00Z");
    assert_int_equal(feedback_said(rid, s, 16), 2);
    clock_to("2027-05-03T22:30:00Z");
    assert_int_equal(feedback_said(rid, s, 16), 3);
    assert_int_equal(s[2].waiting_for, SCHAKEL__V1__LOOP_STATE__LOOP_STATE_FIRST_CONTACT);
    assert_string_equal(s[2].due_on, "2027-05-03");
}

static void answered_referral_gets_one_notice_per_transition(void **state)
{
    (void)state;
    char p[65], rid[33];
    said_t s[16];
    delivered_referral("loop-answered", p, rid); /* delivered on Tuesday 4 May */
    answer(p, rid, "referral_received", "\"received_on\":\"2027-05-04\"");
    answer(p, rid, "referral_received", "\"received_on\":\"2027-05-04\""); /* said twice: one step */
    clock_to("2027-05-05T08:00:00Z");
    answer(p, rid, "first_contact", "\"contact_on\":\"2027-05-05\"");
    answer(p, rid, "intake", "\"intake_on\":\"2027-05-06\",\"outcome\":\"short_help\"");
    answer(p, rid, "case_lead", "\"lead_org\":\"wijkteam-zuid\",\"since\":\"2027-05-06\""); /* not a step */
    told(p, rid, "received");
    told(p, rid, "first_contact");
    told(p, rid, "help_started");
    clock_to("2027-06-01T08:00:00Z"); /* every deadline long past */
    answer(p, rid, "closure", "\"closed_on\":\"2027-06-01\",\"reason_code\":\"goals_met\"");

    size_t n = feedback_said(rid, s, 16);
    int want[] = {
        SCHAKEL__V1__LOOP_STATE__LOOP_STATE_RECEIVED, SCHAKEL__V1__LOOP_STATE__LOOP_STATE_FIRST_CONTACT,
        SCHAKEL__V1__LOOP_STATE__LOOP_STATE_HELP_STARTED, SCHAKEL__V1__LOOP_STATE__LOOP_STATE_CLOSED};
    assert_int_equal(n, 4); /* no reminder among them */
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(s[i].level, 0);
        assert_int_equal(s[i].state, want[i]);
    }
    /* the school got exactly those notices, and not the wijkteam's own events */
    assert_int_equal(in_stream(SCHOOL, rid, SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_FEEDBACK_STATUS), 4);
    assert_int_equal(in_stream(SCHOOL, rid, SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_INTAKE), 0);
    assert_int_equal(in_stream(SCHOOL, rid, SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_REFERRAL_RECEIVED), 0);
}

static void declined_without_new_receiver_alerts_the_school(void **state)
{
    (void)state;
    char p[65], rid[33];
    said_t s[16];
    delivered_referral("loop-declined", p, rid);
    answer(p, rid, "referral_received", "\"received_on\":\"2027-06-01\"");
    answer(p, rid, "intake", "\"intake_on\":\"2027-06-02\",\"outcome\":\"declined\"");
    size_t n = feedback_said(rid, s, 16);
    assert_int_equal(n, 3);
    assert_int_equal(s[1].state, SCHAKEL__V1__LOOP_STATE__LOOP_STATE_DECLINED);
    assert_int_equal(s[2].level, SCHAKEL__V1__REMINDER_LEVEL__REMINDER_LEVEL_STALLED);
    assert_string_equal(s[2].to, SCHOOL);
    assert_string_equal(s[2].overdue, WIJKTEAM);
    assert_int_equal(in_stream_soon(SCHOOL, rid, SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_LOOP_REMINDER, 1), 1);
}

static void waiting_list_without_bridging_care_alerts_the_school(void **state)
{
    (void)state;
    char p[65], q[65], rid[33], rid2[33];
    said_t s[16];
    delivered_referral("loop-waiting", p, rid);
    delivered_referral("loop-bridged", q, rid2);
    answer(p, rid, "intake", "\"intake_on\":\"2027-06-02\",\"outcome\":\"specialised_care\"");
    answer(p, rid, "waiting_list",
           "\"provider_ref\":\"provider-7\",\"status\":\"placed\",\"on\":\"2027-06-02\"");
    answer(q, rid2, "intake", "\"intake_on\":\"2027-06-02\",\"outcome\":\"specialised_care\"");
    answer(q, rid2, "waiting_list",
           "\"provider_ref\":\"provider-7\",\"status\":\"placed\",\"on\":\"2027-06-02\"");
    answer(q, rid2, "bridging_care", "\"by_org\":\"smw-farent\",\"started_on\":\"2027-06-03\"");
    clock_to("2027-06-20T08:00:00Z");
    size_t n = feedback_said(rid, s, 16), stalled = 0;
    for (size_t i = 0; i < n; i++) /* among the family reminders to the wijkteam */
        if (s[i].level == SCHAKEL__V1__REMINDER_LEVEL__REMINDER_LEVEL_STALLED) {
            assert_string_equal(s[i].to, SCHOOL);
            stalled++;
        }
    assert_int_equal(stalled, 1);
    n = feedback_said(rid2, s, 16);
    for (size_t i = 0; i < n; i++)
        assert_int_not_equal(s[i].level, SCHAKEL__V1__REMINDER_LEVEL__REMINDER_LEVEL_STALLED);
}

/* Runs `schakel loops` with args and returns its stdout (caller frees). */
static char *loops(const char *a1, const char *a2)
{
    char out[600];
    snprintf(out, sizeof out, "%s/loops.json", H->dir);
    const char *args[] = {"loops", "--node", H->data, a1, a2, NULL};
    assert_int_equal(harness_run_tool(out, args), 0);
    FILE *f = fopen(out, "r");
    assert_non_null(f);
    char *buf = calloc(1, 1 << 20);
    size_t n = fread(buf, 1, (1 << 20) - 1, f);
    buf[n] = 0;
    fclose(f);
    return buf;
}

/* Issue 10: a loop is its referral id *and* its referrer. Another school
 * that uses the same referral id first (for another child), and closes
 * "its" loop, and social work that claims to have received it, cannot
 * open, advance or close the school's loop: the school still hears each
 * step of its own receiver, and nothing of the others. */
static void reused_referral_id_cannot_open_move_or_close_the_loop(void **state)
{
    (void)state;
    char p[65], q[65], rid[33], cid[33], json[1024];
    uint8_t c[16], squat[16], ref[16];
    child("loop-squatted", p);
    child("loop-squatter", q);
    new_id(rid);
#define REFERRAL_JSON                                                                 \
    "{\"type\":\"referral\",\"subject\":\"%s\",\"district\":\"zuid\","                \
    "\"age_band\":\"under_12\",\"purpose\":\"support\",\"legal_basis\":\"consent\","  \
    "\"categories\":[\"home_situation\"],\"referral\":{\"referral_id\":\"%s\","       \
    "\"to_kind\":\"wijkteam\",\"reasons\":[\"home_situation\"],\"urgency\":\"soon\"," \
    "\"request_code\":\"intake\"}}"
    snprintf(json, sizeof json, REFERRAL_JSON, q, rid);
    wait_services(publish("school-12ab00", json, squat)); /* first, and held: no consent */
    consent(SCHOOL, p, "parents", "under_12", "wijkteam", cid, c);
    snprintf(json, sizeof json, REFERRAL_JSON, p, rid);
    publish(SCHOOL, json, ref);
    decisions_t ds;
    wait_decisions(ref, 1, &ds);
    assert_non_null(find(&ds, WIJKTEAM, SCHAKEL__V1__CONSENT_OUTCOME__CONSENT_OUTCOME_DELIVER));
    wait_services(harness_head(H));

    int ignored = count_in_log("event=loop_event_ignored");
    snprintf(
        json, sizeof json,
        "{\"type\":\"closure\",\"subject\":\"%s\",\"purpose\":\"feedback\",\"legal_basis\":\"consent\","
        "\"closure\":{\"referral_id\":\"%s\",\"closed_on\":\"2027-06-03\",\"reason_code\":\"goals_met\"}}",
        q, rid);
    wait_services(publish("school-12ab00", json, NULL)); /* closes the squatter's own loop only */
    snprintf(json, sizeof json,
             "{\"type\":\"referral_received\",\"subject\":\"%s\",\"purpose\":\"feedback\","
             "\"legal_basis\":\"consent\",\"referral_received\":{\"referral_id\":\"%s\","
             "\"received_on\":\"2027-06-03\"}}",
             p, rid);
    wait_services(publish("smw-farent", json, NULL)); /* not in the loop */
    assert_int_equal(in_stream(SCHOOL, rid, SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_FEEDBACK_STATUS), 0);

    /* the school's own receiver moves the school's loop */
    answer(p, rid, "referral_received", "\"received_on\":\"2027-06-03\"");
    answer(p, rid, "first_contact", "\"contact_on\":\"2027-06-03\"");
    assert_int_equal(in_stream(SCHOOL, rid, SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_FEEDBACK_STATUS), 2);
    assert_int_equal(in_stream("school-12ab00", rid, SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_FEEDBACK_STATUS), 0);
    char out[600];
    snprintf(out, sizeof out, "%s/loop.json", H->dir);
    const char *args[] = {"loops", "--node", H->data, "--referral", rid, "--org", SCHOOL, NULL};
    assert_int_equal(harness_run_tool(out, args), 0);
    FILE *f = fopen(out, "r");
    assert_non_null(f);
    char *one = calloc(1, 1 << 16);
    one[fread(one, 1, (1 << 16) - 1, f)] = 0;
    fclose(f);
    assert_non_null(strstr(one, "\"state\": \"first_contact\""));
    assert_non_null(strstr(one, "\"other_loops_with_this_id\": 1"));
    assert_non_null(strstr(one, "\"referrer\": \"" SCHOOL "\""));
    free(one);
    assert_true(count_in_log("event=loop_event_ignored") > ignored); /* said, without the child */
}

/* The same attack after the fact: another school learns the referral id
 * (say as an addressee) and refers a child of its own, with consent, to
 * the same receiver under that id. The receiver's steps about the first
 * child move only the first school's loop, whichever loop the id finds
 * first (three rounds, so that key order cannot hide it). */
static void reused_referral_id_of_a_delivered_referral_cannot_take_its_steps(void **state)
{
    (void)state;
    for (int round = 0; round < 3; round++) {
        char p[65], q[65], rid[33], cid[33], json[1024], label[40];
        uint8_t c[16], ref[16], squat[16];
        snprintf(label, sizeof label, "loop-taken-%d", round);
        child(label, p);
        snprintf(label, sizeof label, "loop-taker-%d", round);
        child(label, q);
        new_id(rid);
        consent(SCHOOL, p, "parents", "under_12", "wijkteam", cid, c);
        snprintf(json, sizeof json, REFERRAL_JSON, p, rid);
        publish(SCHOOL, json, ref);
        decisions_t ds;
        wait_decisions(ref, 1, &ds);
        assert_non_null(find(&ds, WIJKTEAM, SCHAKEL__V1__CONSENT_OUTCOME__CONSENT_OUTCOME_DELIVER));
        consent("school-12ab00", q, "parents", "under_12", "wijkteam", cid, c);
        snprintf(json, sizeof json, REFERRAL_JSON, q, rid);
        publish("school-12ab00", json, squat);
        wait_decisions(squat, 1, &ds);
        assert_non_null(find(&ds, WIJKTEAM, SCHAKEL__V1__CONSENT_OUTCOME__CONSENT_OUTCOME_DELIVER));
        wait_services(harness_head(H));

        answer(p, rid, "referral_received", "\"received_on\":\"2027-06-03\"");
        assert_int_equal(in_stream(SCHOOL, rid, SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_FEEDBACK_STATUS), 1);
        assert_int_equal(in_stream("school-12ab00", rid, SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_FEEDBACK_STATUS),
                         0);
        answer(q, rid, "referral_received", "\"received_on\":\"2027-06-03\"");
        assert_int_equal(in_stream("school-12ab00", rid, SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_FEEDBACK_STATUS),
                         1);
        assert_int_equal(in_stream(SCHOOL, rid, SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_FEEDBACK_STATUS), 1);
    }
}

/* A follow-up signal's loop id is its event id. A co-signaller hears of
 * the signal from the verwijsindex (its notice names the signal by
 * about_event_id), refers the same child to the same receiver under that
 * id, and must not take the receiver's steps from the first loop. The
 * attacker is one whose loop key sorts first (feedback_loop.c, loop_key),
 * so that key order cannot hide it. */
static void loop_key_of(const char *rid_hex, const char *org, uint8_t key[16])
{
    uint8_t rid[16];
    schakel_hex_decode(rid_hex, rid, 16);
    schakel_derive_id(key, "schakel/v1/feedback/loop", rid, (size_t)16, org, strlen(org), NULL);
}

static void follow_up_signal_id_learnt_from_a_match_notice_cannot_take_its_steps(void **state)
{
    (void)state;
    static const char *const takers[] = {"school-12ab00", "smw-farent", "ggd-jgz", "wijkteam-noord"};
    char p[65], sid[33], cid[33], json[1024], label[40];
    const char *taker = NULL;
    uint8_t c[16], sig[16], mine[16], theirs[16];
    for (int round = 0; round < 8 && !taker; round++) {
        snprintf(label, sizeof label, "match-leak-%d", round);
        child(label, p);
        consent(SCHOOL, p, "parents", "under_12", "wijkteam", cid, c);
        snprintf(json, sizeof json,
                 "{\"type\":\"signal\",\"subject\":\"%s\",\"district\":\"zuid\",\"age_band\":\"under_12\","
                 "\"purpose\":\"support\",\"legal_basis\":\"consent\",\"categories\":[\"home_situation\"],"
                 "\"addressees\":[\"" WIJKTEAM "\"],\"signal\":{\"concerns\":[\"home_situation\"],"
                 "\"observed_on\":\"2027-06-01\",\"follow_up_requested\":true}}",
                 p);
        publish(SCHOOL, json, sig);
        decisions_t ds;
        wait_decisions(sig, 1, &ds);
        assert_non_null(find(&ds, WIJKTEAM, SCHAKEL__V1__CONSENT_OUTCOME__CONSENT_OUTCOME_DELIVER));
        hex(sig, 16, sid);
        loop_key_of(sid, SCHOOL, mine);
        for (size_t i = 0; i < sizeof takers / sizeof takers[0] && !taker; i++) {
            loop_key_of(sid, takers[i], theirs);
            if (memcmp(theirs, mine, 16) < 0) taker = takers[i];
        }
    }
    assert_non_null(taker);
    /* the taker signals about the child too: the verwijsindex tells it of
     * the school's signal, naming it */
    snprintf(json, sizeof json,
             "{\"type\":\"signal\",\"subject\":\"%s\",\"purpose\":\"support\",\"legal_basis\":"
             "\"own_organisation\",\"categories\":[\"behaviour\"],\"signal\":{\"concerns\":[\"behaviour\"],"
             "\"observed_on\":\"2027-06-02\"}}",
             p);
    wait_services(publish(taker, json, NULL));
    char learnt[33] = "";
    for (int tries = 0; tries < 100 && !learnt[0]; tries++) {
        for (harness_reader_t rd = harness_read(H, taker, NULL); harness_next(&rd);)
            if (rd.e->type == SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_CONSENT_DECISION &&
                rd.e->consent_decision->outcome ==
                    SCHAKEL__V1__CONSENT_OUTCOME__CONSENT_OUTCOME_NOTICE_ONLY &&
                !strcmp(rd.e->subject, p) && rd.e->consent_decision->about_event_id.len == 16)
                hex(rd.e->consent_decision->about_event_id.data, 16, learnt);
        if (!learnt[0]) usleep(100 * 1000);
    }
    assert_string_equal(learnt, sid);
    /* ... and refers the same child to the same wijkteam under that id */
    uint8_t squat[16];
    consent(taker, p, "parents", "under_12", "wijkteam", cid, c);
    snprintf(json, sizeof json, REFERRAL_JSON, p, learnt);
    publish(taker, json, squat);
    decisions_t ds;
    wait_decisions(squat, 1, &ds);
    assert_non_null(find(&ds, WIJKTEAM, SCHAKEL__V1__CONSENT_OUTCOME__CONSENT_OUTCOME_DELIVER));
    wait_services(harness_head(H));

    /* the wijkteam answers the school's signal: the school's loop moves */
    answer(p, sid, "referral_received", "\"received_on\":\"2027-06-03\"");
    char out[600];
    snprintf(out, sizeof out, "%s/loop-match.json", H->dir);
    const char *args[] = {"loops", "--node", H->data, "--referral", sid, "--org", SCHOOL, NULL};
    assert_int_equal(harness_run_tool(out, args), 0);
    FILE *f = fopen(out, "r");
    assert_non_null(f);
    char *one = calloc(1, 1 << 16);
    assert_non_null(one);
    one[fread(one, 1, (1 << 16) - 1, f)] = 0;
    fclose(f);
    assert_non_null(strstr(one, "\"referrer\": \"" SCHOOL "\""));
    assert_non_null(strstr(one, "\"state\": \"received\""));
    free(one);
    /* the receiver's view of that id is the same loop, the first on the
     * log, not the taker's that comes first in key order */
    const char *recv[] = {"loops", "--node", H->data, "--referral", sid, "--org", WIJKTEAM, NULL};
    assert_int_equal(harness_run_tool(out, recv), 0);
    size_t n = 0;
    one = schakel_file_read(out, 1 << 16, &n);
    assert_non_null(one);
    assert_non_null(strstr(one, "\"referrer\": \"" SCHOOL "\""));
    assert_non_null(strstr(one, "\"other_loops_with_this_id\": 1"));
    free(one);
}

/* Algemene termijnenwet art. 3 lid 3: the days a royal decree equates are
 * the directory's "holidays", on the log, which the region edits. The
 * sample's decree holds Friday 26 May 2028 (after Ascension); the region
 * adds a day of its own test, Monday 29 May, in a new directory version. A
 * referral delivered on Wednesday 24 May 2028 must be received within 2
 * working days: Thursday 25 (Ascension), 26 and 29 are off, so Wednesday
 * 31 May is the last day (29 May by the law alone, 30 May with the
 * sample's decree). A holidays.json left from before keeps the feedback
 * service (here: audit replay) from starting, saying where the days go. */
static void decree_days_from_the_directory_move_deadlines(void **state)
{
    (void)state;
    char p[65], rid[33], path[600], out[600];
    said_t s[16];
    assert_int_equal(harness_shutdown(H), 0);
    snprintf(path, sizeof path, "%s/holidays.json", H->data);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("{\"version\": 1, \"decree_days\": [\"2028-05-29\"]}\n", f);
    assert_int_equal(fclose(f), 0);
    snprintf(out, sizeof out, "%s/replay-refused.json", H->dir);
    const char *args[] = {"audit", "replay", "--data", H->data, "--service", "feedback", NULL};
    assert_int_equal(harness_run_tool(out, args), 2);
    assert_int_equal(unlink(path), 0);

    json_error_t err;
    json_t *d = json_load_file(H->directory, 0, &err);
    assert_non_null(d);
    json_t *days = json_object_get(json_object_get(d, "holidays"), "decree_days");
    assert_true(json_array_size(days) >= 5); /* the sample's decree */
    json_array_append_new(days, json_string("2028-05-29"));
    directory_save_next(d);
    assert_int_equal(harness_start(H), 0);

    clock_to("2028-05-24T08:00:00Z"); /* Wednesday 24 May 2028, 10:00 in Amsterdam */
    delivered_referral("loop-decree", p, rid);
    clock_to("2028-05-31T21:30:00Z"); /* Wednesday 31 May, 23:30 */
    assert_int_equal(feedback_said(rid, s, 16), 0);
    clock_to("2028-05-31T22:30:00Z"); /* Thursday 1 June, 00:30 */
    assert_int_equal(feedback_said(rid, s, 16), 1);
    assert_int_equal(s[0].level, SCHAKEL__V1__REMINDER_LEVEL__REMINDER_LEVEL_REMINDER);
    assert_int_equal(s[0].waiting_for, SCHAKEL__V1__LOOP_STATE__LOOP_STATE_RECEIVED);
    assert_string_equal(s[0].due_on, "2028-05-31");
}

/* A redirect on a whole node: the wijkteam's intake redirected to the GGD
 * reaches the GGD only on a consent that covers it (held, then released
 * by the wijkteam's record of the parents' consent for the GGD); from
 * then on the loop is the GGD's: its clock starts on that day, it is
 * reminded when late, and its word that it has the referral reaches the
 * school (docs/feedback.md, "Redirected"). */
static void a_redirect_reaches_the_new_organisation_on_consent_and_the_loop_follows(void **state)
{
    (void)state;
    char p[65], rid[33], json[1024], cid[33];
    uint8_t in[16];
    said_t s[16];
    clock_to("2028-06-12T08:00:00Z"); /* Monday 12 June 2028 */
    delivered_referral("loop-redirect", p, rid);
    answer(p, rid, "referral_received", "\"received_on\":\"2028-06-12\"");
    snprintf(
        json, sizeof json,
        "{\"type\":\"intake\",\"subject\":\"%s\",\"age_band\":\"under_12\",\"purpose\":\"support\","
        "\"legal_basis\":\"consent\",\"categories\":[\"care_status\"],\"intake\":{\"referral_id\":\"%s\","
        "\"intake_on\":\"2028-06-12\",\"outcome\":\"redirected\",\"redirected_to\":\"ggd-jgz\"}}",
        p, rid);
    uint64_t seq = publish(WIJKTEAM, json, in);
    decisions_t ds;
    wait_decisions_at(in, seq, 1, &ds);
    assert_true(routed_to(&ds, "ggd-jgz"));
    assert_non_null(find(&ds, "ggd-jgz", SCHAKEL__V1__CONSENT_OUTCOME__CONSENT_OUTCOME_HOLD));
    new_id(cid);
    snprintf(json, sizeof json,
             "{\"type\":\"consent_given\",\"subject\":\"%s\",\"purpose\":\"consent_admin\","
             "\"legal_basis\":\"consent\",\"consent_given\":{\"consent_id\":\"%s\",\"given_by\":\"parents\","
             "\"age_band\":\"under_12\",\"recipient_kind\":\"ggd\",\"purposes\":[\"support\",\"feedback\"],"
             "\"valid_from\":\"2020-01-01\"}}",
             p, cid);
    publish(WIJKTEAM, json, NULL);
    wait_decisions_at(in, seq, 2, &ds);
    assert_non_null(find(&ds, "ggd-jgz", SCHAKEL__V1__CONSENT_OUTCOME__CONSENT_OUTCOME_DELIVER));
    assert_true(received("ggd-jgz", in, 0));
    wait_services(harness_head(H));
    /* the GGD had it on Monday: received is due Wednesday 14th */
    clock_to("2028-06-14T21:30:00Z");
    assert_int_equal(in_stream("ggd-jgz", rid, SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_LOOP_REMINDER), 0);
    clock_to("2028-06-14T22:30:00Z");
    assert_int_equal(in_stream_soon("ggd-jgz", rid, SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_LOOP_REMINDER, 1), 1);
    assert_int_equal(in_stream(WIJKTEAM, rid, SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_LOOP_REMINDER), 0);
    snprintf(json, sizeof json,
             "{\"type\":\"referral_received\",\"subject\":\"%s\",\"purpose\":\"feedback\",\"legal_basis\":"
             "\"consent\",\"referral_received\":{\"referral_id\":\"%s\",\"received_on\":\"2028-06-15\"}}",
             p, rid);
    wait_services(publish("ggd-jgz", json, NULL));
    size_t n = feedback_said(rid, s, 16);
    assert_true(n >= 3);
    assert_int_equal(s[n - 1].state, SCHAKEL__V1__LOOP_STATE__LOOP_STATE_RECEIVED);
    /* received from the wijkteam, redirected, received from the GGD */
    assert_int_equal(in_stream_soon(SCHOOL, rid, SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_FEEDBACK_STATUS, 3), 3);
}

static void replay_yields_identical_loops_and_events(void **state)
{
    (void)state;
    uint64_t head = harness_head(H);
    wait_services(head);
    char *list = loops("--org", SCHOOL), *figures = loops("--figures", NULL);
    assert_non_null(strstr(list, "\"state\": \"waiting_list\""));
    assert_int_equal(harness_shutdown(H), 0);
    head = harness_head(H);

    char out[600];
    snprintf(out, sizeof out, "%s/replay.json", H->dir);
    const char *args[] = {"audit", "replay", "--data", H->data, "--service", "feedback", NULL};
    assert_int_equal(harness_run_tool(out, args), 0);

    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s/services/feedback'", H->data);
    assert_int_equal(system(cmd), 0);
    int rejected = count_in_log("derived_rejected");
    assert_int_equal(harness_start(H), 0);
    wait_services(head);
    assert_int_equal(harness_head(H), head); /* every event again, all duplicates */
    assert_int_equal(count_in_log("derived_rejected"), rejected);
    char *list2 = loops("--org", SCHOOL), *figures2 = loops("--figures", NULL);
    assert_string_equal(list, list2);
    assert_string_equal(figures, figures2);
    free(list);
    free(list2);
    free(figures);
    free(figures2);
    assert_int_equal(harness_shutdown(H), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(unanswered_referral_is_reminded_then_escalated),
        cmocka_unit_test(answered_referral_gets_one_notice_per_transition),
        cmocka_unit_test(declined_without_new_receiver_alerts_the_school),
        cmocka_unit_test(waiting_list_without_bridging_care_alerts_the_school),
        cmocka_unit_test(reused_referral_id_cannot_open_move_or_close_the_loop),
        cmocka_unit_test(reused_referral_id_of_a_delivered_referral_cannot_take_its_steps),
        cmocka_unit_test(follow_up_signal_id_learnt_from_a_match_notice_cannot_take_its_steps),
        cmocka_unit_test(decree_days_from_the_directory_move_deadlines),
        cmocka_unit_test(a_redirect_reaches_the_new_organisation_on_consent_and_the_loop_follows),
        cmocka_unit_test(replay_yields_identical_loops_and_events),
    };
    return cmocka_run_group_tests(tests, setup, node_teardown);
}
