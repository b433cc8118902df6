/* What the two files of the directory share, and nobody else sees
 * (directory.h is the interface): the parsed directory itself. The parts:
 *   directory_parse.c  the JSON document to this struct, strictly (an
 *                      error names the organisation and the field), with
 *                      the least-privilege rules on rights
 *   directory.c        lookups on it (by id, by CURVE key, schools,
 *                      districts, municipalities) and the check of the
 *                      organisations an event names
 * Immutable once parsed: every thread may read it without a lock of its
 * own (the broker swaps in a new one under dir_lock). */
#ifndef SCHAKEL_DIRECTORY_IMPL_H
#define SCHAKEL_DIRECTORY_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "directory.h"

typedef struct {
    char code[SCHAKEL_ID_MAX];
    char wijkteam[SCHAKEL_ID_MAX];
} district_t;

/* A municipality: its leerplicht office and the districts in it. */
typedef struct {
    char code[SCHAKEL_ID_MAX];
    char leerplicht[SCHAKEL_ID_MAX];
} municipality_t;

typedef struct {
    char district[SCHAKEL_ID_MAX];
    size_t municipality; /* index into municipalities */
} district_in_t;

struct schakel_directory {
    uint64_t version;
    unsigned flags; /* SCHAKEL_DIRECTORY_* it was parsed with */
    schakel_org_t *orgs;
    size_t n;
    size_t *by_id; /* indices into orgs in id order: lookups by id are a binary search */
    schakel_school_t *schools;
    size_t n_schools;
    district_t *districts;
    size_t n_districts;
    municipality_t *municipalities;
    size_t n_municipalities;
    district_in_t *district_in;
    size_t n_district_in;
    char veiligthuis[SCHAKEL_ID_MAX], leerplicht[SCHAKEL_ID_MAX];
    schakel_decree_days_t decree; /* Algemene termijnenwet art. 3 lid 3 */
    uint8_t hash[SCHAKEL_SHA256_LEN];
    char *text;
};

#endif
