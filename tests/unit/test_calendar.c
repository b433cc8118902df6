/* The calendar the feedback loop counts working days with: Amsterdam
 * dates across both daylight-saving switches, Easter and the holidays
 * that hang on it, King's Day moved off a Sunday, the Algemene
 * termijnenwet's list (art. 3 lid 1: Liberation Day every year; lid 2:
 * Good Friday; lid 3: the days a royal decree equates, from the holidays
 * file, which is parsed strictly), and working-day arithmetic across
 * them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "calendar.h"
#include "error.h"
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
    const char *off[] = {"2026-01-01", "2026-04-05", "2026-04-06", "2026-04-27", "2026-05-05", "2026-05-14",
                         "2026-05-24", "2026-05-25", "2026-12-25", "2026-12-26", "2025-04-20", "2025-04-21",
                         "2025-04-26" /* the 27th was a Sunday */, "2025-05-05", "2027-03-29", "2027-04-27",
                         "2027-05-05", "2027-05-06", "2027-05-17",
                         /* Good Friday, art. 3 lid 2 */
                         "2025-04-18", "2026-04-03", "2027-03-26", "2028-04-14"};
    for (size_t i = 0; i < sizeof off / sizeof off[0]; i++) {
        if (!schakel_is_holiday(NULL, d(off[i]))) fail_msg("%s is a public holiday", off[i]);
        char what[40];
        snprintf(what, sizeof what, "%s is not a working day", off[i]);
        if (schakel_working_days_between(NULL, d(off[i]) - 1, d(off[i])) != 0) fail_msg("%s", what);
    }
    const char *on[] = {"2026-04-02" /* Maundy Thursday */,
                        "2027-03-25",
                        "2025-04-27",
                        "2026-04-28",
                        "2027-04-26",
                        "2026-12-24",
                        "2026-05-04",
                        "2026-05-15" /* only by decree */,
                        "2027-05-07"};
    for (size_t i = 0; i < sizeof on / sizeof on[0]; i++)
        if (schakel_is_holiday(NULL, d(on[i])))
            fail_msg("%s is not a public holiday by the law alone", on[i]);
    assert_true(schakel_is_weekend(d("2026-11-21")));
    assert_true(schakel_is_weekend(d("2026-11-22")));
    assert_false(schakel_is_weekend(d("2026-11-23")));
}

static void working_days(void **state)
{
    (void)state;
    char s[11];
    /* Friday 23 April 2027 + 2: Monday 26, King's Day Tuesday 27 skipped */
    schakel_date_from_days(schakel_add_working_days(NULL, d("2027-04-23"), 2), s);
    assert_string_equal(s, "2027-04-28");
    /* + 5 crosses King's Day and a weekend */
    schakel_date_from_days(schakel_add_working_days(NULL, d("2027-04-23"), 5), s);
    assert_string_equal(s, "2027-05-03");
    /* Christmas: Thursday 24 December 2026 + 1 is Monday 28 */
    schakel_date_from_days(schakel_add_working_days(NULL, d("2026-12-24"), 1), s);
    assert_string_equal(s, "2026-12-28");
    /* Easter 2026: Thursday 2 April + 1 skips Good Friday 3 April, the
     * weekend and Easter Monday: Tuesday 7 April */
    schakel_date_from_days(schakel_add_working_days(NULL, d("2026-04-02"), 1), s);
    assert_string_equal(s, "2026-04-07");
    schakel_date_from_days(schakel_add_working_days(NULL, d("2026-04-02"), 2), s);
    assert_string_equal(s, "2026-04-08");
    /* Easter 2027 is 28 March: Thursday 25 March + 5 skips Good Friday 26,
     * the weekend and Easter Monday 29: Monday 5 April. Thursday 1 April
     * 2027 is after Easter: + 5 is Thursday 8 April. */
    schakel_date_from_days(schakel_add_working_days(NULL, d("2027-03-25"), 5), s);
    assert_string_equal(s, "2027-04-05");
    schakel_date_from_days(schakel_add_working_days(NULL, d("2027-04-01"), 5), s);
    assert_string_equal(s, "2027-04-08");
    assert_int_equal(schakel_add_working_days(NULL, d("2026-11-23"), 0), d("2026-11-23"));
    assert_int_equal(schakel_working_days_between(NULL, d("2027-04-23"), d("2027-04-28")), 2);
    assert_int_equal(schakel_working_days_between(NULL, d("2027-04-28"), d("2027-04-23")), 0);
    /* Good Friday and Easter Monday do not count: 1 to 7 April 2026 */
    assert_int_equal(schakel_working_days_between(NULL, d("2026-04-01"), d("2026-04-07")), 2);
}

static void parse(const char *text, schakel_decree_days_t *out, int want_ok, const char *want_why)
{
    char why[SCHAKEL_ERRLEN] = "";
    int rc = schakel_decree_days_parse(text, strlen(text), out, why);
    if (want_ok && rc != 0) fail_msg("refused %s: %s", text, why);
    if (!want_ok && rc == 0) fail_msg("accepted %s", text);
    if (want_why && !strstr(why, want_why))
        fail_msg("%s: reason \"%s\" does not say \"%s\"", text, why, want_why);
}

/* Art. 3 lid 3: the days a royal decree equates, from the directory;
 * the default is the decree for 2026-2028. */
static void decree_days(void **state)
{
    (void)state;
    schakel_decree_days_t *dd = calloc(1, sizeof *dd);
    assert_non_null(dd);
    parse(schakel_decree_days_default(), dd, 1, NULL);
    assert_int_equal(dd->n, 5);
    const char *off[] = {"2026-01-02", "2026-05-15", "2027-05-07", "2028-04-28", "2028-05-26"};
    for (size_t i = 0; i < sizeof off / sizeof off[0]; i++) {
        if (!schakel_is_holiday(dd, d(off[i]))) fail_msg("%s is equated with a holiday by decree", off[i]);
        if (schakel_working_days_between(dd, d(off[i]) - 1, d(off[i])) != 0)
            fail_msg("%s is not a working day", off[i]);
    }
    const char *on[] = {"2026-01-05", "2026-05-13", "2027-05-10", "2028-05-01"};
    for (size_t i = 0; i < sizeof on / sizeof on[0]; i++)
        if (schakel_is_holiday(dd, d(on[i]))) fail_msg("%s is not a holiday, not even by decree", on[i]);
    char s[11];
    /* Wednesday 13 May 2026 + 1: Ascension Thursday 14 and the decree's
     * Friday 15 skipped, then the weekend: Monday 18 */
    schakel_date_from_days(schakel_add_working_days(dd, d("2026-05-13"), 1), s);
    assert_string_equal(s, "2026-05-18");
    schakel_date_from_days(schakel_add_working_days(NULL, d("2026-05-13"), 1), s);
    assert_string_equal(s, "2026-05-15"); /* without the decree it would count */
    /* Wednesday 31 December 2025 + 1: 1 and 2 January, the weekend: Monday 5 */
    schakel_date_from_days(schakel_add_working_days(dd, d("2025-12-31"), 1), s);
    assert_string_equal(s, "2026-01-05");
    /* the region's own list, in any order */
    parse("{\"decree_days\": [\"2027-05-07\", \"2026-05-15\"]}", dd, 1, NULL);
    assert_int_equal(dd->n, 2);
    assert_true(schakel_is_holiday(dd, d("2026-05-15")));
    assert_true(schakel_is_holiday(dd, d("2027-05-07")));
    assert_false(schakel_is_holiday(dd, d("2026-01-02")));
    parse("{\"decree_days\": []}", dd, 1, NULL);
    assert_int_equal(dd->n, 0);
    free(dd);
}

static void decree_file_refused(void **state)
{
    (void)state;
    schakel_decree_days_t *dd = calloc(1, sizeof *dd);
    assert_non_null(dd);
    parse("{\"decree_days\": [\"2026-05-15\"], \"extra_days\": []}", dd, 0, "extra_days");
    assert_int_equal(dd->n, 0);
    parse("{\"decree_days\": [\"2026-02-30\"]}", dd, 0, "decree_days[0]");
    parse("{\"decree_days\": [\"2026-05-15\", \"2027-13-01\"]}", dd, 0, "decree_days[1]");
    parse("{\"decree_days\": [\"2027-02-29\"]}", dd, 0, "decree_days[0]");
    parse("{\"decree_days\": [\"15-05-2026\"]}", dd, 0, "not a real date");
    parse("{\"decree_days\": [\"2026-05-15T00:00\"]}", dd, 0, "decree_days[0]");
    parse("{\"decree_days\": [20260515]}", dd, 0, "decree_days[0]");
    parse("{\"decree_days\": [\"2026-05-15\", \"2026-05-15\"]}", dd, 0, "twice");
    parse("{\"decree_days\": \"2026-05-15\"}", dd, 0, "decree_days: must be an array");
    parse("{\"decree\": \"a title\"}", dd, 0, "decree_days");
    parse("{\"version\": 1, \"decree_days\": []}", dd, 0, "unknown key \"version\"");
    parse("{\"decree\": 7, \"decree_days\": []}", dd, 0, "decree: must be a string");
    parse("{\"decree_days\": [], \"decree_days\": []}", dd, 0, "line 1");
    parse("[\"2026-05-15\"]", dd, 0, "an object");
    parse("{\"decree_days\": [", dd, 0, "line 1");
    free(dd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(amsterdam_dates),     cmocka_unit_test(holidays),
        cmocka_unit_test(working_days),        cmocka_unit_test(decree_days),
        cmocka_unit_test(decree_file_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
