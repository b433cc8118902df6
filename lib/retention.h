/* Retention rules (docs/privacy.md, "Retention"): how long the bus keeps
 * a child's events, as data. Parsed from a JSON document; today the
 * broker reads it from DIR/retention.json (schakel_retention_load), and
 * the same parse function is what a rules document carried on the log
 * would go through. */
#ifndef SCHAKEL_RETENTION_H
#define SCHAKEL_RETENTION_H

#include <stddef.h>
#include <stdint.h>

#define SCHAKEL_RETENTION_TYPES 256 /* event type numbers are below this */
#define SCHAKEL_RETENTION_DAYS_MAX 36525

typedef struct {
    uint64_t version;
    uint32_t default_days;                  /* a kind with no days of its own */
    uint32_t days[SCHAKEL_RETENTION_TYPES]; /* per event type; 0: default_days */
    int age_23;                             /* erase once the child is surely 23 */
} schakel_retention_t;

/* Parses a retention document (text, len bytes) into out. 0, or
 * SCHAKEL_ECONFIG with why naming the field and what it wants. */
int schakel_retention_parse(const char *text, size_t len, schakel_retention_t *out, char *why);

/* Reads and parses the file at path. 0; SCHAKEL_ENOTFOUND when there is
 * no file (no retention); SCHAKEL_ECONFIG / SCHAKEL_EIO with why. */
int schakel_retention_load(const char *path, schakel_retention_t *out, char *why);

/* The days a child with an event of this type is kept after its last
 * event (the type's own, or the default). */
uint32_t schakel_retention_days(const schakel_retention_t *r, int type);

/* With age_23: the log time (unix ms) by which a child in this age band
 * at log time at_ms is surely 23 (the band's lowest age; a year is
 * 365.25 days); INT64_MAX for no band. */
int64_t schakel_retention_age23_at(int age_band, int64_t at_ms);

/* With age_23: the log time (unix ms) before which a child in this age
 * band at log time at_ms cannot be 23 (the band's ages are below 12, 16,
 * 18: 11, 7 or 5 years on; an adult may be 23 already: at_ms); INT64_MIN
 * for no band. */
int64_t schakel_retention_age23_floor(int age_band, int64_t at_ms);

#endif
