/* Civil-date arithmetic after Howard Hinnant's days_from_civil, the EU
 * summer-time rule, the anonymous Gregorian Easter algorithm, and the
 * holidays of the Algemene termijnenwet (art. 3). */
#include "calendar.h"

#include <stdio.h>

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

int schakel_is_holiday(int32_t days)
{
    int y;
    unsigned m, d;
    civil_from_days(days, &y, &m, &d);
    if ((m == 1 && d == 1) || (m == 12 && (d == 25 || d == 26))) return 1;
    int32_t kings = days_from_civil(y, 4, 27);
    if (weekday(kings) == 0) kings--;
    if (days == kings) return 1;
    if (m == 5 && d == 5) return 1; /* Bevrijdingsdag: every year, by the termijnenwet */
    int32_t e = easter(y);
    return days == e || days == e + 1 || days == e + 39 || days == e + 49 || days == e + 50;
}

static int working(int32_t days)
{
    return !schakel_is_weekend(days) && !schakel_is_holiday(days);
}

int32_t schakel_add_working_days(int32_t from, int n)
{
    int32_t d = from;
    while (n > 0) {
        d++;
        if (working(d)) n--;
    }
    return d;
}

int schakel_working_days_between(int32_t from, int32_t to)
{
    int n = 0;
    for (int32_t d = from + 1; d <= to; d++) n += working(d);
    return n;
}
