/* What the files of profile mapping share, and nobody else sees
 * (mapping.h is the interface). The parts, in the order a row meets them:
 *   mapping_csv.c     an export's CSV text cut into rows (libcsv, strict)
 *   mapping_jsonl.c   JSON lines, or a JSON list, cut into rows
 *   mapping_row.c     a row to an event: the entry whose "when" takes
 *                     it, the event id from the record's columns, the
 *                     fields, then the codec and the broker's validation
 *   mapping_fields.c  one field spec to its JSON value: constants,
 *                     columns, dates and times, codes through a map, age
 *                     bands, minted ids, the BSN to a pseudonym
 *   mapping.c         the profile itself: parsed strictly, immutable
 * Reasons name the column and the problem, never a row's values. */
#ifndef SCHAKEL_MAPPING_IMPL_H
#define SCHAKEL_MAPPING_IMPL_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "codec.h"
#include "crypto.h"
#include "mapping.h"

#define MAX_ENTRIES 64
#define MAX_RECORD_ID 8
#define VALUE_MAX 256

typedef struct {
    json_t *when; /* column -> value or list */
    int type;
    json_t *fields; /* path -> spec, defaults merged in */
} entry_t;

struct schakel_profile {
    char kind[32];
    char source_system[64];
    unsigned char delim, quote;
    char record_id[MAX_RECORD_ID][64];
    size_t n_record_id;
    entry_t entries[MAX_ENTRIES];
    size_t n_entries;
    json_t *doc;
    uint8_t id_key[SCHAKEL_SHA256_LEN]; /* the organisation's secret for minted ids */
    int has_id_key;
};

/* One row being mapped: the profile, the publishing organisation, the
 * region key for pseudonyms, the row and the entry that took it. */
typedef struct {
    const schakel_profile_t *p;
    const char *org;
    const uint8_t *key;
    const schakel_row_t *row;
    const entry_t *e;
    char *why;
} mapctx_t;

/* The start of every id the adapter derives: with the organisation's id
 * key (the adapter always sets one), no other organisation can compute
 * the id from the same columns and publish it first (mapping.c). */
void mapping_id_hash_init(schakel_sha256_t *h, const schakel_profile_t *p, const char *label, size_t len);

/* The field descriptor a dotted field path names under the envelope, or
 * NULL (mapping.c). */
const ProtobufCFieldDescriptor *mapping_path_field(const char *path);

/* The trimmed value of column into buf; NULL when the row has no such
 * column (mapping_fields.c). */
const char *mapping_value_of(const schakel_row_t *row, const char *column, char *buf, size_t cap);

/* The length of column's trimmed value (SIZE_MAX: no such column), and
 * the first column entry e or the record id reads whose value is
 * VALUE_MAX bytes or longer, or NULL (mapping_fields.c). */
size_t mapping_value_len(const schakel_row_t *row, const char *column);
const char *mapping_long_column(const schakel_profile_t *p, const entry_t *e, const schakel_row_t *row);

/* The JSON value of one field spec; *skip when an optional cell is empty
 * or the entry omits a default. NULL with the reason in m->why when the
 * row does not give what the spec needs (mapping_fields.c). */
json_t *mapping_field_value(mapctx_t *m, const char *path, json_t *spec, int *skip);

#endif
