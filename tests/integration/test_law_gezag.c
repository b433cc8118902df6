/* Whose consent counts (issue 16, item 4): parental authority (gezag),
 * the guardian, and a youth who cannot judge, by WGBO art. 7:450 and
 * 7:465 BW (docs/routing.md, "Whose consent counts"). Each case records a
 * consent for the wijkteam and refers the child there: the referral is
 * delivered on that consent, or held with the rule that says the consent
 * was not given by whom the law asks. Synthetic children only. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "harness.h"
#include "scenario.h"

static int setup(void **state)
{
    (void)state;
    return node_start(1, now_ms());
}

/* A consent for the wijkteam of the child labelled `label`, whose body
 * holds `giver` (given_by and what goes with it), then a referral of that
 * child to the wijkteam: the consent decision for wijkteam-zuid. */
static decision_t refer_after(const char *label, const char *age, const char *giver)
{
    char p[65], cid[33], json[1024];
    uint8_t cons[16], ref[16];
    child(label, p);
    new_id(cid);
    snprintf(json, sizeof json,
             "{\"type\":\"consent_given\",\"subject\":\"%s\",\"purpose\":\"consent_admin\","
             "\"legal_basis\":\"consent\",\"consent_given\":{\"consent_id\":\"%s\",%s,"
             "\"age_band\":\"%s\",\"recipient_kind\":\"wijkteam\",\"purposes\":[\"support\",\"feedback\"],"
             "\"categories\":[\"home_situation\",\"behaviour\"],\"valid_from\":\"2020-01-01\"}}",
             p, cid, giver, age);
    publish("school-34cd01", json, cons);
    char extra[96];
    snprintf(extra, sizeof extra, "\"district\":\"zuid\",\"age_band\":\"%s\",", age);
    referral("school-34cd01", p, extra, "wijkteam", ref);
    decisions_t ds;
    wait_decisions(ref, 1, &ds);
    const decision_t *d = find(&ds, "wijkteam-zuid", 0);
    if (!d) fail_msg("no consent decision for wijkteam-zuid about %s", label);
    return *d;
}

static void delivered(const decision_t *d)
{
    if (d->outcome != SCHAKEL__V1__CONSENT_OUTCOME__CONSENT_OUTCOME_DELIVER)
        fail_msg("held or denied (%s), should be delivered", d->rule);
    assert_string_equal(d->rule, "consent/specific");
}

static void not_entitled(const decision_t *d)
{
    if (d->outcome != SCHAKEL__V1__CONSENT_OUTCOME__CONSENT_OUTCOME_HOLD)
        fail_msg("outcome %d (%s), should be held", d->outcome, d->rule);
    assert_string_equal(d->rule, "consent/not-entitled");
}

/* The case of the issue: a parent without gezag cannot consent for a
 * child of 10; nor can one of two holders alone. */
static void a_parent_without_authority_cannot_consent_under_12(void **state)
{
    (void)state;
    decision_t d =
        refer_after("gezag-none-10", "under_12", "\"given_by\":\"one_parent\",\"authority\":\"none\"");
    not_entitled(&d);
    d = refer_after("gezag-joint-10", "under_12", "\"given_by\":\"one_parent\",\"authority\":\"joint\"");
    not_entitled(&d);
}

static void holders_of_authority_consent_under_12(void **state)
{
    (void)state;
    decision_t d =
        refer_after("gezag-sole-10", "under_12", "\"given_by\":\"one_parent\",\"authority\":\"sole\"");
    delivered(&d);
    d = refer_after("gezag-parents-10", "under_12", "\"given_by\":\"parents\"");
    delivered(&d);
    d = refer_after("gezag-guardian-10", "under_12", "\"given_by\":\"guardian\"");
    delivered(&d);
}

/* 12-15: the youth together with the holders, or with the guardian; the
 * holders alone only for a youth who cannot judge. */
static void youth_of_12_to_15_consents_with_the_holders(void **state)
{
    (void)state;
    decision_t d = refer_after("gezag-13-with-guardian", "12_15", "\"given_by\":\"youth_with_guardian\"");
    delivered(&d);
    d = refer_after("gezag-13-parents", "12_15", "\"given_by\":\"parents\"");
    not_entitled(&d);
    d = refer_after("gezag-13-cannot-judge", "12_15", "\"given_by\":\"parents\",\"youth_cannot_judge\":true");
    delivered(&d);
    d = refer_after("gezag-13-cannot-judge-joint", "12_15",
                    "\"given_by\":\"one_parent\",\"authority\":\"joint\",\"youth_cannot_judge\":true");
    not_entitled(&d);
}

static void youth_of_16_consents_alone_unless_unable_to_judge(void **state)
{
    (void)state;
    decision_t d = refer_after("gezag-16-guardian", "16_17", "\"given_by\":\"guardian\"");
    not_entitled(&d);
    d = refer_after("gezag-16-guardian-cannot-judge", "16_17",
                    "\"given_by\":\"guardian\",\"youth_cannot_judge\":true");
    delivered(&d);
}

static void rejected_invalid(const char *giver, const char *age, const char *want)
{
    char p[65], cid[33], json[1024], reason[SCHAKEL_ERRLEN];
    child("gezag-invalid", p);
    new_id(cid);
    snprintf(json, sizeof json,
             "{\"type\":\"consent_given\",\"subject\":\"%s\",\"purpose\":\"consent_admin\","
             "\"legal_basis\":\"consent\",\"consent_given\":{\"consent_id\":\"%s\",%s,"
             "\"age_band\":\"%s\",\"recipient_kind\":\"wijkteam\",\"purposes\":[\"support\"],"
             "\"valid_from\":\"2020-01-01\"}}",
             p, cid, giver, age);
    int code = publish_code("school-34cd01", json, reason);
    if (code != SCHAKEL__V1__REJECT_CODE__REJECT_INVALID || !strstr(reason, want))
        fail_msg("code %d, reason \"%s\"; wanted REJECT_INVALID saying \"%s\"", code, reason, want);
}

/* What the law cannot mean is refused at publish, saying what to fix. */
static void consents_that_say_too_little_are_refused(void **state)
{
    (void)state;
    rejected_invalid("\"given_by\":\"one_parent\"", "under_12",
                     "consent_given.authority: required with given_by one_parent");
    rejected_invalid("\"given_by\":\"youth_alone\",\"youth_cannot_judge\":true", "16_17",
                     "a youth who cannot judge does not consent");
    rejected_invalid("\"given_by\":\"parents\",\"youth_cannot_judge\":true", "under_12",
                     "only for a youth of 12 to 17");
    rejected_invalid("\"given_by\":\"youth_with_guardian\"", "under_12",
                     "youth_with_guardian is for a youth of 12 to 15");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_parent_without_authority_cannot_consent_under_12),
        cmocka_unit_test(holders_of_authority_consent_under_12),
        cmocka_unit_test(youth_of_12_to_15_consents_with_the_holders),
        cmocka_unit_test(youth_of_16_consents_alone_unless_unable_to_judge),
        cmocka_unit_test(consents_that_say_too_little_are_refused),
    };
    return cmocka_run_group_tests(tests, setup, node_teardown);
}
