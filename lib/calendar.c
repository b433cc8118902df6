/* Civil-date arithmetic after Howard Hinnant's days_from_civil, the EU
 * summer-time rule, the anonymous Gregorian Easter algorithm, and the
 * holidays of the Algemene termijnenwet (art. 3 lid 1 and 2 computed, lid
 * 3 from the holidays file). */
#include "calendar.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "error.h"
#include "validate.h"

static int32_t days_from_civil(int y, unsigned m, unsigned d)
{
    y -= m <= 2;
    const int era = (y >= 0 ? y : y - 399) / 400;
    const unsigned yoe = (unsigned)(y - era * 400);
    const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int32_t)doe - 719468;
}

static void civil_from_days(int32_t z, int *y, unsigned *m, unsigned *d)
{
    z += 719468;
    const int era = (z >= 0 ? z : z - 146096) / 146097;
    const unsigned doe = (unsigned)(z - era * 146097);
    const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    const unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int)yoe + era * 400 + (*m <= 2);
}

/* 0 = Sunday ... 6 = Saturday */
static int weekday(int32_t days)
{
    return (int)(((days % 7) + 11) % 7);
}

/* The last Sunday of month m in year y. */
static int32_t last_sunday(int y, unsigned m)
{
    int32_t last = days_from_civil(y, m + 1, 1) - 1;
    return last - weekday(last);
}

/* Summer time runs from 01:00 UTC on the last Sunday of March to 01:00 UTC
 * on the last Sunday of October. */
static int64_t offset_ms(int64_t ms)
{
    int32_t days = (int32_t)(ms >= 0 ? ms / 86400000 : (ms - 86399999) / 86400000);
    int y;
    unsigned m, d;
    civil_from_days(days, &y, &m, &d);
    int64_t start = (int64_t)last_sunday(y, 3) * 86400000 + 3600000;
    int64_t end = (int64_t)last_sunday(y, 10) * 86400000 + 3600000;
    return ms >= start && ms < end ? 7200000 : 3600000;
}

int32_t schakel_day_of(int64_t ms)
{
    int64_t local = ms + offset_ms(ms);
    return (int32_t)(local >= 0 ? local / 86400000 : (local - 86399999) / 86400000);
}

void schakel_date_of(int64_t ms, char out[11])
{
    schakel_date_from_days(schakel_day_of(ms), out);
}

int32_t schakel_date_days(const char *s)
{
    int y = (s[0] - '0') * 1000 + (s[1] - '0') * 100 + (s[2] - '0') * 10 + (s[3] - '0');
    unsigned m = (unsigned)((s[5] - '0') * 10 + (s[6] - '0'));
    unsigned d = (unsigned)((s[8] - '0') * 10 + (s[9] - '0'));
    return days_from_civil(y, m, d);
}

void schakel_date_from_days(int32_t days, char out[11])
{
    int y;
    unsigned m, d;
    civil_from_days(days, &y, &m, &d);
    snprintf(out, 11, "%04d-%02u-%02u", y, m, d);
}

int64_t schakel_day_start_ms(int32_t days)
{
    int64_t utc_midnight = (int64_t)days * 86400000;
    /* the offset at local midnight equals the offset two hours earlier in UTC */
    return utc_midnight - offset_ms(utc_midnight - 7200000);
}

int schakel_is_weekend(int32_t days)
{
    int w = weekday(days);
    return w == 0 || w == 6;
}

static int32_t easter(int y)
{
    int a = y % 19, b = y / 100, c = y % 100, d = b / 4, e = b % 4;
    int f = (b + 8) / 25, g = (b - f + 1) / 3, h = (19 * a + b - d - g + 15) % 30;
    int i = c / 4, k = c % 4, l = (32 + 2 * e + 2 * i - h - k) % 7;
    int m = (a + 11 * h + 22 * l) / 451;
    int month = (h + l - 7 * m + 114) / 31, day = ((h + l - 7 * m + 114) % 31) + 1;
    return days_from_civil(y, (unsigned)month, (unsigned)day);
}

static int decreed(const schakel_decree_days_t *decree, int32_t days)
{
    if (!decree) return 0;
    size_t lo = 0, hi = decree->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (decree->days[mid] == days) return 1;
        if (decree->days[mid] < days) lo = mid + 1;
        else hi = mid;
    }
    return 0;
}

int schakel_is_holiday(const schakel_decree_days_t *decree, int32_t days)
{
    int y;
    unsigned m, d;
    civil_from_days(days, &y, &m, &d);
    /* art. 3 lid 1: Nieuwjaarsdag, de beide Kerstdagen */
    if ((m == 1 && d == 1) || (m == 12 && (d == 25 || d == 26))) return 1;
    /* lid 1: the day the King's birthday is celebrated (Koningsdag) */
    int32_t kings = days_from_civil(y, 4, 27);
    if (weekday(kings) == 0) kings--;
    if (days == kings) return 1;
    if (m == 5 && d == 5) return 1; /* lid 1: de vijfde mei, every year */
    int32_t e = easter(y);
    /* lid 2: Goede Vrijdag; lid 1: tweede Paasdag, Hemelvaartsdag, tweede
     * Pinksterdag (and the Sundays before them, Sundays anyway) */
    if (days == e - 2 || days == e || days == e + 1 || days == e + 39 || days == e + 49 || days == e + 50)
        return 1;
    return decreed(decree, days); /* lid 3 */
}

static int working(const schakel_decree_days_t *decree, int32_t days)
{
    return !schakel_is_weekend(days) && !schakel_is_holiday(decree, days);
}

int32_t schakel_add_working_days(const schakel_decree_days_t *decree, int32_t from, int n)
{
    int32_t d = from;
    while (n > 0) {
        d++;
        if (working(decree, d)) n--;
    }
    return d;
}

int schakel_working_days_between(const schakel_decree_days_t *decree, int32_t from, int32_t to)
{
    int n = 0;
    for (int32_t d = from + 1; d <= to; d++) n += working(decree, d);
    return n;
}

/* ---- the days equated by royal decree ---- */

const char *schakel_decree_days_default(void)
{
    return "{\"decree\": \"Besluit gelijkstelling van 2 januari 2026, 15 mei 2026, 7 mei 2027, "
           "28 april 2028 en 26 mei 2028 met een algemeen erkende feestdag\",\n"
           " \"decree_days\": [\"2026-01-02\", \"2026-05-15\", \"2027-05-07\", \"2028-04-28\", "
           "\"2028-05-26\"]}\n";
}

static int cmp_day(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

int schakel_decree_days_from_json(const json_t *doc, schakel_decree_days_t *out, const char *where, char *why)
{
    out->n = 0;
    int rc = 0;
    if (!json_is_object(doc))
        return schakel_fail(why, SCHAKEL_ECONFIG, "%s: an object {\"decree\": ..., \"decree_days\": [...]}",
                            where);
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)doc, k, v) {
        if (strcmp(k, "decree") && strcmp(k, "decree_days")) {
            rc = schakel_fail(why, SCHAKEL_ECONFIG, "%s: unknown key \"%.40s\" (known: decree, decree_days)",
                              where, k);
            goto done;
        }
    }
    json_t *note = json_object_get(doc, "decree"), *list = json_object_get(doc, "decree_days");
    if (note && !json_is_string(note)) {
        rc = schakel_fail(why, SCHAKEL_ECONFIG, "%s.decree: must be a string (the decree's title)", where);
        goto done;
    }
    if (!json_is_array(list)) {
        rc = schakel_fail(why, SCHAKEL_ECONFIG, "%s.decree_days: must be an array of \"YYYY-MM-DD\" dates",
                          where);
        goto done;
    }
    if (json_array_size(list) > SCHAKEL_DECREE_DAYS_MAX) {
        rc = schakel_fail(why, SCHAKEL_ECONFIG, "%s.decree_days: at most %d days", where,
                          SCHAKEL_DECREE_DAYS_MAX);
        goto done;
    }
    size_t i;
    json_array_foreach(list, i, v) {
        const char *s = json_string_value(v);
        if (!s || !schakel_date_valid(s)) {
            rc = schakel_fail(why, SCHAKEL_ECONFIG, "%s.decree_days[%zu]: not a real date \"YYYY-MM-DD\"",
                              where, i);
            goto done;
        }
        out->days[out->n++] = schakel_date_days(s);
    }
    qsort(out->days, out->n, sizeof out->days[0], cmp_day);
    for (i = 1; i < out->n; i++)
        if (out->days[i] == out->days[i - 1]) {
            char d[11];
            schakel_date_from_days(out->days[i], d);
            rc = schakel_fail(why, SCHAKEL_ECONFIG, "%s.decree_days: %s is listed twice", where, d);
            goto done;
        }
done:
    if (rc) out->n = 0;
    return rc;
}

int schakel_decree_days_parse(const char *text, size_t len, schakel_decree_days_t *out, char *why)
{
    json_error_t err;
    json_t *doc = json_loadb(text, len, JSON_REJECT_DUPLICATES, &err);
    out->n = 0;
    if (!doc) return schakel_fail(why, SCHAKEL_ECONFIG, "holidays: line %d: %s", err.line, err.text);
    int rc = schakel_decree_days_from_json(doc, out, "holidays", why);
    json_decref(doc);
    return rc;
}
