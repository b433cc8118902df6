/* retention.json (lib/retention.c): the documented fields parse, every
 * mistake is refused naming the field, and the arithmetic of the age
 * bands (surely 23 at the band's lowest age plus the years to 23). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "codec.h"
#include "error.h"
#include "retention.h"

static int parse(const char *text, schakel_retention_t *r, char *why)
{
    return schakel_retention_parse(text, strlen(text), r, why);
}

static void the_documented_example_parses(void **state)
{
    (void)state;
    schakel_retention_t r;
    char why[SCHAKEL_ERRLEN] = "";
    assert_int_equal(
        parse("{\"version\": 2, \"default_days\": 730, \"kinds\": {\"signal\": 730, \"referral\": "
              "1825, \"veiligthuis_report\": 7300}, \"age_23\": true}",
              &r, why),
        0);
    assert_int_equal(r.version, 2);
    assert_int_equal(r.age_23, 1);
    assert_int_equal(schakel_retention_days(&r, SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_REFERRAL), 1825);
    assert_int_equal(schakel_retention_days(&r, SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_ABSENCE), 730);
}

static void mistakes_name_the_field(void **state)
{
    (void)state;
    static const struct {
        const char *text, *says;
    } bad[] = {
        {"[]", "not a JSON object"},
        {"{\"default_days\": 730}", "version is required"},
        {"{\"version\": 1}", "default_days is required"},
        {"{\"version\": 1, \"default_days\": 0}", "default_days: a whole number of days"},
        {"{\"version\": 1, \"default_days\": 99999}", "default_days: a whole number of days"},
        {"{\"version\": 1, \"default_days\": 730, \"kinds\": {\"signaal\": 730}}",
         "\"signaal\" is no event type"},
        {"{\"version\": 1, \"default_days\": 730, \"kinds\": {\"signal\": \"2y\"}}", "kinds.signal"},
        {"{\"version\": 1, \"default_days\": 730, \"age_23\": 1}", "age_23: true or false"},
        {"{\"version\": 1, \"default_days\": 730, \"keep\": 1}", "unknown field \"keep\""},
        {"{\"version\": 1, \"version\": 2, \"default_days\": 730}", "not a JSON object"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        schakel_retention_t r;
        char why[SCHAKEL_ERRLEN] = "";
        assert_int_equal(parse(bad[i].text, &r, why), SCHAKEL_ECONFIG);
        if (!strstr(why, bad[i].says)) fail_msg("%s: said \"%s\", not \"%s\"", bad[i].text, why, bad[i].says);
    }
}

static void age_bands_give_the_time_the_child_is_surely_23(void **state)
{
    (void)state;
    const int64_t year = 31557600000LL, t = 1800000000000LL;
    assert_int_equal(schakel_retention_age23_at(SCHAKEL__V1__AGE_BAND__AGE_BAND_ADULT, t), t + 5 * year);
    assert_int_equal(schakel_retention_age23_at(SCHAKEL__V1__AGE_BAND__AGE_BAND_16_17, t), t + 7 * year);
    assert_int_equal(schakel_retention_age23_at(SCHAKEL__V1__AGE_BAND__AGE_BAND_12_15, t), t + 11 * year);
    assert_int_equal(schakel_retention_age23_at(SCHAKEL__V1__AGE_BAND__AGE_BAND_UNDER_12, t), t + 23 * year);
    assert_int_equal(schakel_retention_age23_at(0, t), INT64_MAX);
}

/* The floor: a band's ages are below 12, 16, 18, so the child cannot be
 * 23 sooner than 11, 7, 5 years on; an adult may be already. Bands that
 * disagree (under 12 and adult at t) leave the floor after the bound. */
static void age_bands_give_the_time_before_which_the_child_cannot_be_23(void **state)
{
    (void)state;
    const int64_t year = 31557600000LL, t = 1800000000000LL;
    assert_int_equal(schakel_retention_age23_floor(SCHAKEL__V1__AGE_BAND__AGE_BAND_ADULT, t), t);
    assert_int_equal(schakel_retention_age23_floor(SCHAKEL__V1__AGE_BAND__AGE_BAND_16_17, t), t + 5 * year);
    assert_int_equal(schakel_retention_age23_floor(SCHAKEL__V1__AGE_BAND__AGE_BAND_12_15, t), t + 7 * year);
    assert_int_equal(schakel_retention_age23_floor(SCHAKEL__V1__AGE_BAND__AGE_BAND_UNDER_12, t),
                     t + 11 * year);
    assert_int_equal(schakel_retention_age23_floor(0, t), INT64_MIN);
    assert_true(schakel_retention_age23_floor(SCHAKEL__V1__AGE_BAND__AGE_BAND_UNDER_12, t) >
                schakel_retention_age23_at(SCHAKEL__V1__AGE_BAND__AGE_BAND_ADULT, t));
    /* agreeing bands: the floor never passes the bound */
    for (int band = SCHAKEL__V1__AGE_BAND__AGE_BAND_UNDER_12; band <= SCHAKEL__V1__AGE_BAND__AGE_BAND_ADULT;
         band++)
        assert_true(schakel_retention_age23_floor(band, t) <= schakel_retention_age23_at(band, t));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(the_documented_example_parses),
        cmocka_unit_test(mistakes_name_the_field),
        cmocka_unit_test(age_bands_give_the_time_the_child_is_surely_23),
        cmocka_unit_test(age_bands_give_the_time_before_which_the_child_cannot_be_23),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
