/* Calendar days as the Dutch field counts them: the date of a moment in
 * Europe/Amsterdam (CET/CEST by the EU rule, no tz database needed), day
 * arithmetic, and working days (weekends and Dutch public holidays off,
 * Easter computed). Pure functions of their arguments, so that services
 * that time by the log replay the same way anywhere. */
#ifndef SCHAKEL_CALENDAR_H
#define SCHAKEL_CALENDAR_H

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

/* 1 if the day is a generally recognised holiday of the Algemene
 * termijnenwet, the Dutch law on how deadlines in days are counted: New
 * Year's Day, Easter Sunday and Monday, King's Day (27 April, 26 when the
 * 27th is a Sunday), Liberation Day (5 May), Ascension Day, Whit Sunday
 * and Monday, Christmas Day and Boxing Day. Good Friday is not among them. */
int schakel_is_holiday(int32_t days);

/* The day that is n working days after day `from` (n >= 0; day `from`
 * itself does not count). */
int32_t schakel_add_working_days(int32_t from, int n);

/* Working days after `from` up to and including `to` (0 when to <= from). */
int schakel_working_days_between(int32_t from, int32_t to);

#endif
