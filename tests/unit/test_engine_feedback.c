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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_delivered_referral_past_its_deadline_earns_one_reminder),
        cmocka_unit_test(a_referral_received_in_time_tells_the_referrer_and_earns_no_reminder),
        cmocka_unit_test(an_erased_childs_loop_is_gone_as_a_replay_never_opened_it),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
