/* The calendar the feedback loop counts working days with: Amsterdam
 * dates across both daylight-saving switches, Easter and the holidays
 * that hang on it, King's Day moved off a Sunday, the Algemene
 * termijnenwet's list (Liberation Day every year, not Good Friday), and
 * working-day arithmetic across them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "calendar.h"
#include "json.h"

static int32_t d(const char *date)
{
    return schakel_date_days(date);
}

static void date_of(const char *utc, const char *want)
{
    int64_t ms;
    assert_int_equal(schakel_time_parse(utc, &ms), 0);
    char got[11];
    schakel_date_of(ms, got);
    if (strcmp(got, want)) fail_msg("%s in Amsterdam is %s, not %s", utc, want, got);
}

static void amsterdam_dates(void **state)
{
    (void)state;
    date_of("2026-01-15T22:59:59Z", "2026-01-15"); /* winter: UTC+1 */
    date_of("2026-01-15T23:00:00Z", "2026-01-16");
    date_of("2026-07-15T21:59:59Z", "2026-07-15"); /* summer: UTC+2 */
    date_of("2026-07-15T22:00:00Z", "2026-07-16");
    date_of("2026-03-29T00:59:59Z", "2026-03-29"); /* the spring switch, 01:00 UTC */
    date_of("2026-03-28T23:00:00Z", "2026-03-29");
    date_of("2026-10-24T22:00:00Z", "2026-10-25"); /* still summer time */
    date_of("2026-10-25T22:59:00Z", "2026-10-25"); /* winter again */
    date_of("2026-12-31T23:30:00Z", "2027-01-01");
    char s[11];
    schakel_date_from_days(d("2024-02-29"), s);
    assert_string_equal(s, "2024-02-29");
    assert_int_equal(d("1970-01-02"), 1);
    int64_t start = schakel_day_start_ms(d("2026-07-16"));
    char utc[32];
    schakel_time_format(start, utc);
    assert_string_equal(utc, "2026-07-15T22:00:00.000Z");
}

static void holidays(void **state)
{
    (void)state;
    const char *off[] = {"2026-01-01", "2026-04-05", "2026-04-06", "2026-04-27", "2026-05-05",
                         "2026-05-14", "2026-05-24", "2026-05-25", "2026-12-25", "2026-12-26",
                         "2025-04-20", "2025-04-21", "2025-04-26" /* the 27th was a Sunday */,
                         "2025-05-05", "2027-03-29", "2027-04-27", "2027-05-05", "2027-05-06",
                         "2027-05-17"};
    for (size_t i = 0; i < sizeof off / sizeof off[0]; i++)
        if (!schakel_is_holiday(d(off[i]))) fail_msg("%s is a public holiday", off[i]);
    const char *on[] = {"2026-04-03" /* Good Friday */, "2027-03-26", "2025-04-27", "2026-04-28",
                        "2027-04-26", "2026-12-24", "2026-05-15"};
    for (size_t i = 0; i < sizeof on / sizeof on[0]; i++)
        if (schakel_is_holiday(d(on[i]))) fail_msg("%s is not a public holiday", on[i]);
    assert_true(schakel_is_weekend(d("2026-11-21")));
    assert_true(schakel_is_weekend(d("2026-11-22")));
    assert_false(schakel_is_weekend(d("2026-11-23")));
}

static void working_days(void **state)
{
    (void)state;
    char s[11];
    /* Friday 23 April 2027 + 2: Monday 26, King's Day Tuesday 27 skipped */
    schakel_date_from_days(schakel_add_working_days(d("2027-04-23"), 2), s);
    assert_string_equal(s, "2027-04-28");
    /* + 5 crosses King's Day and a weekend */
    schakel_date_from_days(schakel_add_working_days(d("2027-04-23"), 5), s);
    assert_string_equal(s, "2027-05-03");
    /* Christmas: Thursday 24 December 2026 + 1 is Monday 28 */
    schakel_date_from_days(schakel_add_working_days(d("2026-12-24"), 1), s);
    assert_string_equal(s, "2026-12-28");
    /* Easter 2026: Thursday 2 April + 1 is Good Friday 3 April; + 2 is
     * Tuesday 7 April, after Easter Monday */
    schakel_date_from_days(schakel_add_working_days(d("2026-04-02"), 1), s);
    assert_string_equal(s, "2026-04-03");
    schakel_date_from_days(schakel_add_working_days(d("2026-04-02"), 2), s);
    assert_string_equal(s, "2026-04-07");
    assert_int_equal(schakel_add_working_days(d("2026-11-23"), 0), d("2026-11-23"));
    assert_int_equal(schakel_working_days_between(d("2027-04-23"), d("2027-04-28")), 2);
    assert_int_equal(schakel_working_days_between(d("2027-04-28"), d("2027-04-23")), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(amsterdam_dates),
        cmocka_unit_test(holidays),
        cmocka_unit_test(working_days),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
