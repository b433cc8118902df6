/* Profiles: how an organisation's export becomes schakel events, as data.
 * A profile maps rows (a CSV record with its header, or a JSON object) to
 * events, field by field, so that an organisation with another export
 * writes a profile, not C. The BSN is checked (elfproef) and turned into
 * the subject pseudonym here, inside the adapter; it never reaches an
 * event, a log line or an error message. Every event is derived from its
 * row alone, event id included, so re-importing a file changes nothing.
 *
 *   {"version": 1, "kind": "school", "source_system": "lvs-export",
 *    "csv": {"delimiter": ";"},
 *    "record_id": ["registratienummer"],
 *    "defaults": {"school": {"const": "12AB00"}},
 *    "rows": [
 *      {"when": {"soort": "zorgsignaal"}, "type": "signal",
 *       "fields": {
 *         "subject":     {"bsn": "bsn"},
 *         "occurred_at": {"column": "datum", "date": "dd-mm-yyyy"},
 *         "age_band":    {"age_from": "geboortedatum", "date": "dd-mm-yyyy",
 *                         "on": "datum"},
 *         "signal.concerns": {"column": "categorie", "split": "|",
 *                             "map": {"gedrag": "behaviour"}},
 *         "signal.observed_on": {"column": "datum", "date": "dd-mm-yyyy"},
 *         "signal.raised_by": {"const": "teacher"}}}]}
 *
 * A row takes the first entry of "rows" whose "when" matches (column ->
 * value, or a list of values); "defaults" apply to every entry unless it
 * sets the field itself. Field paths are envelope fields ("subject",
 * "case_ref", "district", ...) or "<type>.<field>[.<field>]" in the body.
 * A field is one of:
 *   {"const": V}                       a fixed value (JSON form)
 *   {"column": C, ...}                 the value of column C, trimmed, with
 *       "map": {...}                   codes of the source -> schakel codes
 *                                      (a value not in the map rejects the row)
 *       "split": "|"                   a list
 *       "date": "dd-mm-yyyy"           a date in this form (also d-m-yyyy,
 *                                      dd/mm/yyyy, yyyy-mm-dd, yyyymmdd);
 *                                      for occurred_at the day's start in
 *                                      Amsterdam, or with "clock": C2 (HH:MM)
 *                                      that time
 *       "optional": true               an empty cell leaves the field out
 *       "default": V                   ... or gives V
 *   {"bsn": C}                         the subject pseudonym of the BSN in C
 *   {"id": [C1, ...], "as": NAME}      a 16-byte id derived from these
 *                                      columns (an id this organisation
 *                                      mints); entries that name the same
 *                                      "as" (default: the field path) derive
 *                                      the same id from the same values
 *   {"age_from": C, "date": F, "on": C2}  the age band on the date in C2
 *                                      (default: the event's date) of the
 *                                      birth date in C, which stays here
 *   {"omit": true}                     leave out a field "defaults" would set
 * Unknown settings anywhere are errors: a typo must not silently do nothing.
 * Every entry must give occurred_at: nothing may depend on the wall clock. */
#ifndef SCHAKEL_MAPPING_H
#define SCHAKEL_MAPPING_H

#include <stddef.h>
#include <stdint.h>

#define SCHAKEL_REGION_KEY_LEN 32

typedef struct schakel_profile schakel_profile_t;

/* A row of an export: column names and their values. error, when not
 * NULL, says why the row could not be read as it is (a NUL byte or a
 * cell that is not UTF-8, a wrong number of columns; by line and column,
 * never the text): schakel_profile_map rejects such a row with it. */
typedef struct {
    const char *const *names;
    const char *const *values;
    size_t n;
    const char *error;
} schakel_row_t;

schakel_profile_t *schakel_profile_load(const char *path, char *why);
schakel_profile_t *schakel_profile_parse(const char *json, size_t len, char *why);
void schakel_profile_destroy(schakel_profile_t **self_p);
const char *schakel_profile_kind(const schakel_profile_t *self);

/* Sets the organisation's secret that every id the profile derives (event
 * ids, and the ids of "id" specs) includes, so that no other organisation
 * can compute them from the same columns. The adapter derives it from the
 * organisation's signing key; without one (checks, tests) ids are derived
 * from the columns alone. */
void schakel_profile_set_id_key(schakel_profile_t *self, const uint8_t key[32]);

/* Maps one row to a validated, serialized envelope from org (malloc'd
 * *out), with its event id. Returns 0, or SCHAKEL_EINVAL with the reason
 * in why: the column and what is wrong with it, never a BSN. */
int schakel_profile_map(const schakel_profile_t *self, const char *org,
                        const uint8_t region_key[SCHAKEL_REGION_KEY_LEN], const schakel_row_t *row,
                        uint8_t **out, size_t *outlen, uint8_t event_id[16], char *why);

/* Reads rows: a CSV text with a header line (the profile's delimiter and
 * quote), or JSON lines (one object per line; strings, numbers and
 * booleans as text), or a JSON list of such objects. fn gets each row and
 * its row number (CSV: the line the row starts on, the header being line
 * 1; a JSON line its line number; a list's element its place from 1) and
 * returns non-zero to stop. CSV is libcsv's strict mode (spaces around a
 * cell dropped): a quote that is never closed refuses the whole text; a
 * cell with a NUL byte or not UTF-8, text after a closing quote, a quote
 * inside an unquoted cell, or another number of columns than the header's
 * gives the row an error (fn still gets it). Returns 0, or SCHAKEL_EINVAL when
 * the text itself does not parse (why says where by line and column and
 * the kind of problem, never the text), or fn's non-zero value. */
typedef int (*schakel_row_fn)(void *arg, const schakel_row_t *row, size_t number);
int schakel_rows_csv(const schakel_profile_t *self, const char *text, size_t len, schakel_row_fn fn,
                     void *arg, char *why);
int schakel_rows_jsonl(const char *text, size_t len, schakel_row_fn fn, void *arg, char *why);
/* The same, numbering lines from first_line; a JSON list only when
 * allow_list (standard input takes one object per line, nothing else). */
int schakel_rows_jsonl_at(const char *text, size_t len, size_t first_line, int allow_list, schakel_row_fn fn,
                          void *arg, char *why);

/* The end of the CSV record that starts at offset start (just past its
 * line end); *line: the line it starts on, then the line after it. To
 * copy a row out by the number schakel_rows_csv gave it. */
size_t schakel_csv_record_end(const schakel_profile_t *self, const char *text, size_t len, size_t start,
                              size_t *line);

/* A reason for jansson's json_error_t *json_error: line (or the error's own
 * when 0), column (plus column_offset) and the kind of problem, never the
 * text near it, which jansson's own text quotes. */
void schakel_json_error_reason(const void *json_error, size_t line, size_t column_offset, char *out,
                               size_t cap);

/* Takes out of a reason what may be a row's value: text in double quotes
 * becomes "(value not shown)", a run of 8 or more digits becomes "#". */
void schakel_reason_scrub(char *why);

/* 1 if s is a BSN that passes the elfproef (8 or 9 digits), else 0. */
int schakel_bsn_valid(const char *s);

/* The subject pseudonym of a valid BSN: lower-case hex of
 * HMAC-SHA-256(region key, "schakel/v1/bsn:" || the 9-digit BSN). */
int schakel_bsn_pseudonym(const uint8_t region_key[SCHAKEL_REGION_KEY_LEN], const char *bsn, char out[65]);

#endif
