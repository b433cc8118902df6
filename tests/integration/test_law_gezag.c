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

/* The consent that shares is the sharer's (docs/routing.md, "Whose
 * consents count"): a consent another school recorded, or one the
 * recipient recorded for itself, releases nothing of this school's
 * referral; the school's own consent does. Seen failing before the fix:
 * the other school's consent released the referral. */
static void only_the_publishers_consent_releases_its_referral(void **state)
{
    (void)state;
    char p[65], other[33], own[33], json[1024];
    uint8_t ref[16], id[16];
    child("consent-owner", p);
    referral("school-34cd01", p, "\"district\":\"zuid\",\"age_band\":\"under_12\",", "wijkteam", ref);
    decisions_t ds;
    wait_decisions(ref, 1, &ds);
    assert_non_null(find(&ds, "wijkteam-zuid", SCHAKEL__V1__CONSENT_OUTCOME__CONSENT_OUTCOME_HOLD));
    consent("school-12ab00", p, "parents", "under_12", "wijkteam", other, id);
    new_id(other);
    snprintf(json, sizeof json,
             "{\"type\":\"consent_given\",\"subject\":\"%s\",\"purpose\":\"consent_admin\","
             "\"legal_basis\":\"consent\",\"consent_given\":{\"consent_id\":\"%s\",\"given_by\":\"parents\","
             "\"age_band\":\"under_12\",\"recipient_org\":\"wijkteam-zuid\",\"purposes\":[\"support\"],"
             "\"valid_from\":\"2020-01-01\"}}",
             p, other);
    publish("wijkteam-zuid", json, id);
    consent("school-34cd01", p, "parents", "under_12", "wijkteam", own, id);
    wait_decisions(ref, 2, &ds);
    size_t delivers = 0;
    for (size_t i = 0; i < ds.n; i++) {
        if (strcmp(ds.d[i].recipient, "wijkteam-zuid") ||
            ds.d[i].outcome != SCHAKEL__V1__CONSENT_OUTCOME__CONSENT_OUTCOME_DELIVER)
            continue;
        delivers++;
        if (strcmp(ds.d[i].consent_id, own))
            fail_msg("released on consent %s (%s), not the referrer's own %s", ds.d[i].consent_id,
                     ds.d[i].rule, own);
    }
    assert_int_equal(delivers, 1);
}

/* Children only get older: a consent recorded when the youth was 16
 * (given by the youth alone) is not made the parents' to give again by
 * an event that says the child is under 12, and a parents' consent for a
 * child of 10 does not count once an event says 16 (the older of the
 * two age bands decides). Seen failing before the fix. */
static const decision_t *age_case(const char *label, const char *consent_age, const char *event_age,
                                  decisions_t *ds)
{
    char p[65], cid[33], extra[96];
    uint8_t id[16], ref[16];
    child(label, p);
    consent("school-34cd01", p, "parents", consent_age, "wijkteam", cid, id);
    snprintf(extra, sizeof extra, "\"district\":\"zuid\",\"age_band\":\"%s\",", event_age);
    referral("school-34cd01", p, extra, "wijkteam", ref);
    wait_decisions(ref, 1, ds);
    const decision_t *d = find(ds, "wijkteam-zuid", 0);
    if (!d) fail_msg("no consent decision for wijkteam-zuid about %s", label);
    return d;
}

static void the_older_age_band_decides(void **state)
{
    (void)state;
    decisions_t ds;
    not_entitled(age_case("consent-age-16-event-10", "16_17", "under_12", &ds));
    not_entitled(age_case("consent-age-10-event-16", "under_12", "16_17", &ds));
    delivered(age_case("consent-age-10-event-10", "under_12", "under_12", &ds));
}

static void withdraw(const char *subject, const char *cid, const char *by)
{
    char json[512];
    uint8_t id[16];
    snprintf(
        json, sizeof json,
        "{\"type\":\"consent_withdrawn\",\"subject\":\"%s\",\"purpose\":\"consent_admin\","
        "\"legal_basis\":\"consent\",\"age_band\":\"16_17\",\"consent_withdrawn\":{\"consent_id\":\"%s\","
        "\"withdrawn_by\":\"%s\",\"effective_on\":\"2020-02-01\"}}",
        subject, cid, by);
    publish("school-34cd01", json, id);
}

static const decision_t *refer_16(const char *subject, decisions_t *ds)
{
    uint8_t ref[16];
    referral("school-34cd01", subject, "\"district\":\"zuid\",\"age_band\":\"16_17\",", "wijkteam", ref);
    wait_decisions(ref, 1, ds);
    const decision_t *d = find(ds, "wijkteam-zuid", 0);
    if (!d) fail_msg("no consent decision for wijkteam-zuid");
    return d;
}

/* A youth of 16 consents alone, and only the youth can take it back: the
 * parents' withdrawal is ignored (logged not_entitled), the youth's
 * counts. Seen failing before the fix (the parents' withdrawal held the
 * referral). */
static void only_a_youth_of_16_takes_back_their_consent(void **state)
{
    (void)state;
    char p[65], cid[33];
    uint8_t id[16];
    decisions_t ds;
    child("withdraw-16", p);
    consent("school-34cd01", p, "youth_alone", "16_17", "wijkteam", cid, id);
    withdraw(p, cid, "parents");
    delivered(refer_16(p, &ds));
    withdraw(p, cid, "youth_alone");
    const decision_t *d = refer_16(p, &ds);
    if (d->outcome == SCHAKEL__V1__CONSENT_OUTCOME__CONSENT_OUTCOME_DELIVER)
        fail_msg("delivered (%s) after the youth withdrew", d->rule);
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
        cmocka_unit_test(only_the_publishers_consent_releases_its_referral),
        cmocka_unit_test(the_older_age_band_decides),
        cmocka_unit_test(only_a_youth_of_16_takes_back_their_consent),
    };
    return cmocka_run_group_tests(tests, setup, node_teardown);
}
