/* Calendar days as the Dutch field counts them: the date of a moment in
 * Europe/Amsterdam (CET/CEST by the EU rule, no tz database needed), day
 * arithmetic, and working days by the Algemene termijnenwet (weekends, the
 * holidays of art. 3 lid 1, Good Friday by lid 2, Easter computed, and the
 * days a royal decree equates by lid 3, which are data: the directory's
 * "holidays" section, on the log).
 * Pure functions of their arguments, so that services that time by the log
 * replay the same way anywhere. */
#ifndef SCHAKEL_CALENDAR_H
#define SCHAKEL_CALENDAR_H

#include <stddef.h>
#include <stdint.h>

/* The Amsterdam calendar date of unix milliseconds ms, "YYYY-MM-DD", and
 * the same day as days since 1970-01-01. */
void schakel_date_of(int64_t ms, char out[11]);
int32_t schakel_day_of(int64_t ms);

/* Days since 1970-01-01 of a valid "YYYY-MM-DD" date (see
 * schakel_date_valid), and back. */
int32_t schakel_date_days(const char *date);
void schakel_date_from_days(int32_t days, char out[11]);

/* Unix ms of 00:00 Amsterdam time on the given day. */
int64_t schakel_day_start_ms(int32_t days);

/* 1 on Saturday or Sunday, 0 otherwise. */
int schakel_is_weekend(int32_t days);

/* The days a royal decree equates with the holidays for the Algemene
 * termijnenwet (art. 3 lid 3), as days since 1970-01-01, sorted, no day
 * twice. Zeroed: none. */
#define SCHAKEL_DECREE_DAYS_MAX 256
typedef struct {
    size_t n;
    int32_t days[SCHAKEL_DECREE_DAYS_MAX];
} schakel_decree_days_t;

struct json_t;

/* The days equated by royal decree, from the directory's "holidays"
 * section (docs/feedback.md, "Deadlines"):
 *   {"decree": "<title>", "decree_days": ["2026-01-02", ...]}
 * strictly: unknown keys refused, every day a real YYYY-MM-DD date, none
 * twice. 0, or SCHAKEL_ECONFIG with a reason that starts with `where` and
 * names the field; out is then emptied. */
int schakel_decree_days_from_json(const struct json_t *section, schakel_decree_days_t *out, const char *where,
                                  char *why);

/* The same from JSON text (reasons start with "holidays"). */
int schakel_decree_days_parse(const char *text, size_t len, schakel_decree_days_t *out, char *why);

/* The section for a region that has written none: the decree in force for
 * 2026-2028, "Besluit gelijkstelling van 2 januari 2026, 15 mei 2026, 7
 * mei 2027, 28 april 2028 en 26 mei 2028 met een algemeen erkende
 * feestdag" (the sample region's directory carries it). */
const char *schakel_decree_days_default(void);

/* 1 if the day is a generally recognised holiday of the Algemene
 * termijnenwet, the Dutch law on how deadlines in days are counted, or a
 * day equated with one: New Year's Day, Easter Monday, Ascension Day, Whit
 * Monday, Christmas Day and Boxing Day, King's Day (27 April, 26 when the
 * 27th is a Sunday) and 5 May (art. 3 lid 1); Good Friday (lid 2); the days
 * in decree (lid 3; NULL: none). Easter and Whit Sunday count too (they
 * are Sundays anyway). */
int schakel_is_holiday(const schakel_decree_days_t *decree, int32_t days);

/* The day that is n working days after day `from` (n >= 0; day `from`
 * itself does not count): a working day is neither a Saturday or Sunday
 * nor a day schakel_is_holiday(decree, day). */
int32_t schakel_add_working_days(const schakel_decree_days_t *decree, int32_t from, int n);

/* Working days after `from` up to and including `to` (0 when to <= from). */
int schakel_working_days_between(const schakel_decree_days_t *decree, int32_t from, int32_t to);

#endif
