/* The feedback engine alone (services/feedback), fed a synthetic log
 * (engine_fixture.h): no broker, no node, real LMDB. A referral delivered
 * to a wijkteam on Monday must be acknowledged within 2 working days (the
 * default policy): on Thursday the wijkteam gets one LoopReminder, not
 * before and not twice. A referral_received in time tells the referrer
 * and earns no reminder. Time is the log's (clock ticks), never the wall
 * clock. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "engine_fixture.h"
#include "feedback.h"

#define T(x) SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_##x

static const char *RID = "a0a1a2a3a4a5a6a7a8a9aaabacadaeaf";

static efx_t *open_feedback(schakel_feedback_t **f)
{
    char why[SCHAKEL_ERRLEN] = "";
    const char *policy = schakel_feedback_default_policy();
    *f = schakel_feedback_new("svc", policy, strlen(policy), why);
    if (!*f) fail_msg("feedback policy: %s", why);
    return efx_open(&schakel_feedback_ops, *f, "svc");
}

/* On Monday 2 November: a referral from school-1, and the consent
 * service's decision that delivers it to wijkteam-noord. */
static void delivered_referral(efx_t *fx, const char *label)
{
    char p[65], hexid[33];
    efx_child(label, p);
    efx_directory(fx, efx_region(1, 0));
    uint8_t id[16];
    uint64_t seq =
        efx_feed(fx, "school-1", id,
                 "{\"type\":\"referral\",\"subject\":\"%s\",\"district\":\"noord\",\"age_band\":\"under_12\","
                 "\"purpose\":\"support\",\"legal_basis\":\"consent\",\"categories\":[\"home_situation\"],"
                 "\"referral\":{\"referral_id\":\"%s\",\"to_kind\":\"wijkteam\","
                 "\"reasons\":[\"home_situation\"],\"urgency\":\"soon\",\"request_code\":\"intake\"}}",
                 p, RID);
    schakel_hex_encode(id, 16, hexid);
    efx_feed(fx, "svc", NULL,
             "{\"type\":\"consent_decision\",\"subject\":\"%s\",\"purpose\":\"bus\",\"legal_basis\":\"bus\","
             "\"consent_decision\":{\"about_event_id\":\"%s\",\"about_seq\":%llu,\"recipient_org\":"
             "\"wijkteam-noord\","
             "\"outcome\":\"deliver\",\"legal_basis\":\"consent\",\"rule_id\":\"consent/specific\"}}",
             p, hexid, (unsigned long long)seq);
    assert_int_equal(efx_count(fx, T(LOOP_REMINDER)), 0);
}

static void a_delivered_referral_past_its_deadline_earns_one_reminder(void **state)
{
    (void)state;
    schakel_feedback_t *f;
    efx_t *fx = open_feedback(&f);
    delivered_referral(fx, "feedback-overdue");
    /* Tuesday and Wednesday: still within 2 working days */
    efx_tick(fx, EFX_START + 1 * EFX_DAY);
    assert_int_equal(efx_count(fx, T(LOOP_REMINDER)), 0);
    efx_tick(fx, EFX_START + 2 * EFX_DAY);
    assert_int_equal(efx_count(fx, T(LOOP_REMINDER)), 0);
    /* Thursday: overdue */
    efx_tick(fx, EFX_START + 3 * EFX_DAY);
    assert_int_equal(fx->n_emitted, 1);
    assert_int_equal(fx->emitted[0]->type, T(LOOP_REMINDER));
    const Schakel__V1__LoopReminder *r = fx->emitted[0]->loop_reminder;
    char hexrid[33];
    schakel_hex_encode(r->referral_id.data, r->referral_id.len == 16 ? 16 : 0, hexrid);
    assert_string_equal(hexrid, RID);
    assert_int_equal(r->level, SCHAKEL__V1__REMINDER_LEVEL__REMINDER_LEVEL_REMINDER);
    assert_int_equal(r->waiting_for, SCHAKEL__V1__LOOP_STATE__LOOP_STATE_RECEIVED);
    assert_string_equal(r->to_org, "wijkteam-noord");
    assert_string_equal(r->overdue_org, "wijkteam-noord");
    assert_string_equal(r->due_on, "2026-11-04");
    assert_true(fx->emitted[0]->occurred_at == EFX_START + 3 * EFX_DAY); /* the log's time */
    /* the reminder on the log, and Friday: no second one */
    efx_feed_emitted(fx, 0);
    efx_tick(fx, EFX_START + 4 * EFX_DAY);
    assert_int_equal(efx_count(fx, T(LOOP_REMINDER)), 0);
    efx_close(&fx);
    schakel_feedback_destroy(&f);
}

static void a_referral_received_in_time_tells_the_referrer_and_earns_no_reminder(void **state)
{
    (void)state;
    schakel_feedback_t *f;
    efx_t *fx = open_feedback(&f);
    delivered_referral(fx, "feedback-in-time");
    efx_tick(fx, EFX_START + 1 * EFX_DAY);
    char p[65];
    efx_child("feedback-in-time", p);
    efx_feed(fx, "wijkteam-noord", NULL,
             "{\"type\":\"referral_received\",\"subject\":\"%s\",\"purpose\":\"feedback\",\"legal_basis\":"
             "\"consent\","
             "\"referral_received\":{\"referral_id\":\"%s\",\"received_on\":\"2026-11-03\"}}",
             p, RID);
    assert_int_equal(efx_count(fx, T(FEEDBACK_STATUS)), 1);
    const Schakel__V1__FeedbackStatus *s = fx->emitted[0]->feedback_status;
    assert_int_equal(s->state, SCHAKEL__V1__LOOP_STATE__LOOP_STATE_RECEIVED);
    char hexrid[33];
    schakel_hex_encode(s->referral_id.data, s->referral_id.len == 16 ? 16 : 0, hexrid);
    assert_string_equal(hexrid, RID);
    efx_feed_emitted(fx, 0);
    /* Thursday and Friday: received is done, first contact is due Monday 9th */
    efx_tick(fx, EFX_START + 3 * EFX_DAY);
    assert_int_equal(efx_count(fx, T(LOOP_REMINDER)), 0);
    efx_tick(fx, EFX_START + 4 * EFX_DAY);
    assert_int_equal(efx_count(fx, T(LOOP_REMINDER)), 0);
    /* the weekend does not count: first contact is overdue on Tuesday the 10th */
    efx_tick(fx, EFX_START + 7 * EFX_DAY);
    assert_int_equal(efx_count(fx, T(LOOP_REMINDER)), 0);
    efx_tick(fx, EFX_START + 8 * EFX_DAY);
    assert_int_equal(efx_count(fx, T(LOOP_REMINDER)), 1);
    efx_close(&fx);
    schakel_feedback_destroy(&f);
}

/* After the broker's erasure of the child, its loop is gone, as in a
 * replay, which cannot read the erased referral: no reminder when it is
 * overdue, no status when the receiver answers. */
static void an_erased_childs_loop_is_gone_as_a_replay_never_opened_it(void **state)
{
    (void)state;
    schakel_feedback_t *f;
    efx_t *fx = open_feedback(&f);
    delivered_referral(fx, "feedback-erased");
    char p[65];
    efx_child("feedback-erased", p);
    efx_feed(fx, "broker", NULL,
             "{\"type\":\"erasure\",\"purpose\":\"bus\",\"legal_basis\":\"bus\",\"erasure\":{"
             "\"erased_subject\":\"%s\",\"basis\":\"avg17_request\",\"requested_by\":\"beheer\","
             "\"erased_upto\":%llu}}",
             p, (unsigned long long)fx->seq);
    assert_int_equal(fx->n_emitted, 0);
    /* Thursday: it would be overdue */
    efx_tick(fx, EFX_START + 3 * EFX_DAY);
    assert_int_equal(efx_count(fx, T(LOOP_REMINDER)), 0);
    efx_feed(fx, "wijkteam-noord", NULL,
             "{\"type\":\"referral_received\",\"subject\":\"%s\",\"purpose\":\"feedback\",\"legal_basis\":"
             "\"consent\",\"referral_received\":{\"referral_id\":\"%s\",\"received_on\":\"2026-11-05\"}}",
             p, RID);
    assert_int_equal(efx_count(fx, T(FEEDBACK_STATUS)), 0);
    efx_close(&fx);
    schakel_feedback_destroy(&f);
}

/* The reminders of a step not reached (not of a family not told), and
 * the last of them in *last. */
static size_t step_reminders(const efx_t *fx, const Schakel__V1__LoopReminder **last)
{
    size_t n = 0;
    for (size_t i = 0; i < fx->n_emitted; i++) {
        const schakel_envelope_t *e = fx->emitted[i];
        if ((int)e->type != T(LOOP_REMINDER) ||
            e->loop_reminder->waiting_for >= SCHAKEL__V1__LOOP_STATE__LOOP_STATE_FAMILY_INFORMED_OF_RECEIVED)
            continue;
        n++;
        if (last) *last = e->loop_reminder;
    }
    return n;
}

/* A receiver's intake that redirects the loop: the new receiver's clock
 * starts when the consent service delivers it that intake, not at the
 * intake (a redirect held for want of consent has no clock, as a held
 * referral); from then on its deadlines are its own. */
static void a_redirect_starts_the_new_receivers_clock_when_the_intake_reaches_it(void **state)
{
    (void)state;
    schakel_feedback_t *f;
    efx_t *fx = open_feedback(&f);
    delivered_referral(fx, "feedback-redirect");
    char p[65], hexid[33];
    efx_child("feedback-redirect", p);
    efx_tick(fx, EFX_START + 1 * EFX_DAY);
    efx_feed(fx, "wijkteam-noord", NULL,
             "{\"type\":\"referral_received\",\"subject\":\"%s\",\"purpose\":\"feedback\",\"legal_basis\":"
             "\"consent\",\"referral_received\":{\"referral_id\":\"%s\",\"received_on\":\"2026-11-03\"}}",
             p, RID);
    uint8_t iid[16];
    uint64_t iseq =
        efx_feed(fx, "wijkteam-noord", iid,
                 "{\"type\":\"intake\",\"subject\":\"%s\",\"purpose\":\"support\",\"legal_basis\":"
                 "\"consent\",\"categories\":[\"care_status\"],\"intake\":{\"referral_id\":\"%s\","
                 "\"intake_on\":\"2026-11-03\",\"outcome\":\"redirected\",\"redirected_to\":\"smw-1\"}}",
                 p, RID);
    assert_int_equal(efx_count(fx, T(FEEDBACK_STATUS)), 1);
    assert_int_equal(fx->emitted[0]->feedback_status->state, SCHAKEL__V1__LOOP_STATE__LOOP_STATE_REDIRECTED);
    /* not delivered to smw-1 yet: no clock, no reminder to anyone */
    for (int d = 2; d <= 7; d++) {
        efx_tick(fx, EFX_START + d * EFX_DAY);
        assert_int_equal(step_reminders(fx, NULL), 0);
    }
    /* a delivery of the intake to someone else starts nothing */
    schakel_hex_encode(iid, 16, hexid);
    const char *deliver =
        "{\"type\":\"consent_decision\",\"subject\":\"%s\",\"purpose\":\"bus\",\"legal_basis\":\"bus\","
        "\"consent_decision\":{\"about_event_id\":\"%s\",\"about_seq\":%llu,\"recipient_org\":\"%s\","
        "\"outcome\":\"deliver\",\"legal_basis\":\"consent\",\"rule_id\":\"consent/released\"}}";
    efx_feed(fx, "svc", NULL, deliver, p, hexid, (unsigned long long)iseq, "wijkteam-zuid");
    /* Monday 9th: the consent service delivers it to smw-1 */
    efx_feed(fx, "svc", NULL, deliver, p, hexid, (unsigned long long)iseq, "smw-1");
    efx_tick(fx, EFX_START + 8 * EFX_DAY);
    efx_tick(fx, EFX_START + 9 * EFX_DAY);
    assert_int_equal(step_reminders(fx, NULL), 0);
    /* Thursday 12th: smw-1 has not said it received it in 2 working days */
    efx_tick(fx, EFX_START + 10 * EFX_DAY);
    const Schakel__V1__LoopReminder *r = NULL;
    assert_int_equal(step_reminders(fx, &r), 1);
    assert_string_equal(r->to_org, "smw-1");
    assert_int_equal(r->waiting_for, SCHAKEL__V1__LOOP_STATE__LOOP_STATE_RECEIVED);
    assert_string_equal(r->due_on, "2026-11-11");
    /* smw-1 moves the loop now, the old receiver no more */
    efx_feed(fx, "wijkteam-noord", NULL,
             "{\"type\":\"first_contact\",\"subject\":\"%s\",\"purpose\":\"feedback\",\"legal_basis\":"
             "\"consent\",\"first_contact\":{\"referral_id\":\"%s\",\"contact_on\":\"2026-11-12\"}}",
             p, RID);
    assert_int_equal(efx_count(fx, T(FEEDBACK_STATUS)), 0);
    efx_feed(fx, "smw-1", NULL,
             "{\"type\":\"referral_received\",\"subject\":\"%s\",\"purpose\":\"feedback\",\"legal_basis\":"
             "\"consent\",\"referral_received\":{\"referral_id\":\"%s\",\"received_on\":\"2026-11-12\"}}",
             p, RID);
    assert_int_equal(efx_count(fx, T(FEEDBACK_STATUS)), 1);
    assert_int_equal(fx->emitted[0]->feedback_status->state, SCHAKEL__V1__LOOP_STATE__LOOP_STATE_RECEIVED);
    efx_close(&fx);
    schakel_feedback_destroy(&f);
}

/* A redirect whose intake never reaches the new receiver: its hold
 * expired (the family gave no consent for smw-1). The loop goes back to
 * the organisation that redirected, redirected with no new receiver, and
 * the referrer gets the stalled-handover alert, once, naming that
 * organisation; a decision about the intake for anyone else changes
 * nothing, and the redirecting organisation can close the loop. */
static void a_redirect_whose_hold_expires_alerts_the_referrer_and_goes_back(void **state)
{
    (void)state;
    schakel_feedback_t *f;
    efx_t *fx = open_feedback(&f);
    delivered_referral(fx, "feedback-redirect-expired");
    char p[65], hexid[33];
    efx_child("feedback-redirect-expired", p);
    efx_tick(fx, EFX_START + 1 * EFX_DAY);
    efx_feed(fx, "wijkteam-noord", NULL,
             "{\"type\":\"referral_received\",\"subject\":\"%s\",\"purpose\":\"feedback\",\"legal_basis\":"
             "\"consent\",\"referral_received\":{\"referral_id\":\"%s\",\"received_on\":\"2026-11-03\"}}",
             p, RID);
    uint8_t iid[16];
    uint64_t iseq =
        efx_feed(fx, "wijkteam-noord", iid,
                 "{\"type\":\"intake\",\"subject\":\"%s\",\"purpose\":\"support\",\"legal_basis\":"
                 "\"consent\",\"categories\":[\"care_status\"],\"intake\":{\"referral_id\":\"%s\","
                 "\"intake_on\":\"2026-11-03\",\"outcome\":\"redirected\",\"redirected_to\":\"smw-1\"}}",
                 p, RID);
    schakel_hex_encode(iid, 16, hexid);
    const char *lost =
        "{\"type\":\"consent_decision\",\"subject\":\"%s\",\"purpose\":\"bus\",\"legal_basis\":\"bus\","
        "\"consent_decision\":{\"about_event_id\":\"%s\",\"about_seq\":%llu,\"recipient_org\":\"%s\","
        "\"outcome\":\"%s\",\"legal_basis\":\"consent\",\"rule_id\":\"%s\",\"inform_org\":\"wijkteam-noord\"}"
        "}";
    /* the intake denied to the referrer (no feedback consent) is not the redirect's */
    efx_tick(fx, EFX_START + 7 * EFX_DAY);
    efx_feed(fx, "svc", NULL, lost, p, hexid, (unsigned long long)iseq, "school-1", "deny",
             "consent/feedback-not-given");
    assert_int_equal(fx->n_emitted, 0);
    /* Monday 16th: the hold on smw-1 expires */
    efx_tick(fx, EFX_START + 14 * EFX_DAY);
    efx_clear_emitted(fx);
    efx_feed(fx, "svc", NULL, lost, p, hexid, (unsigned long long)iseq, "smw-1", "expired", "hold/expired");
    assert_int_equal(efx_count(fx, T(LOOP_REMINDER)), 1);
    const Schakel__V1__LoopReminder *r = fx->emitted[0]->loop_reminder;
    assert_int_equal(r->level, SCHAKEL__V1__REMINDER_LEVEL__REMINDER_LEVEL_STALLED);
    assert_int_equal(r->waiting_for, SCHAKEL__V1__LOOP_STATE__LOOP_STATE_RECEIVED);
    assert_string_equal(r->to_org, "school-1");
    assert_string_equal(r->overdue_org, "wijkteam-noord");
    assert_string_equal(r->due_on, "2026-11-16");
    assert_string_equal(fx->emitted[0]->subject, p);
    efx_feed_emitted(fx, 0);
    /* said again: no second alert; and no step reminders to anyone later */
    efx_feed(fx, "svc", NULL, lost, p, hexid, (unsigned long long)iseq, "smw-1", "expired", "hold/expired");
    assert_int_equal(fx->n_emitted, 0);
    efx_tick(fx, EFX_START + 21 * EFX_DAY);
    assert_int_equal(step_reminders(fx, NULL), 0);
    /* the loop is the redirecting organisation's again: it may close it */
    efx_feed(fx, "wijkteam-noord", NULL,
             "{\"type\":\"closure\",\"subject\":\"%s\",\"purpose\":\"feedback\",\"legal_basis\":\"consent\","
             "\"closure\":{\"referral_id\":\"%s\",\"closed_on\":\"2026-11-23\",\"reason_code\":\"family_"
             "stopped\"}}",
             p, RID);
    assert_int_equal(efx_count(fx, T(FEEDBACK_STATUS)), 1);
    assert_int_equal(fx->emitted[0]->feedback_status->state, SCHAKEL__V1__LOOP_STATE__LOOP_STATE_CLOSED);
    efx_close(&fx);
    schakel_feedback_destroy(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_delivered_referral_past_its_deadline_earns_one_reminder),
        cmocka_unit_test(a_referral_received_in_time_tells_the_referrer_and_earns_no_reminder),
        cmocka_unit_test(an_erased_childs_loop_is_gone_as_a_replay_never_opened_it),
        cmocka_unit_test(a_redirect_starts_the_new_receivers_clock_when_the_intake_reaches_it),
        cmocka_unit_test(a_redirect_whose_hold_expires_alerts_the_referrer_and_goes_back),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
