/* Profile mapping, one field at a time: the value a field spec of the
 * profile gives for a row, in the event's JSON form (mapping_row.c builds
 * the event from them). A column's text is trimmed, mapped through the
 * spec's codes, read as a date in the spec's form, or coerced to what the
 * protobuf field wants; an age band is reckoned from a birth date that is
 * wiped once used; an id is minted from columns under the organisation's
 * id key; a BSN becomes the subject's pseudonym under the region key and
 * is never kept or quoted. */
#include "mapping.h"

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "calendar.h"
#include "codec.h"
#include "crypto.h"
#include "error.h"
#include "json.h"
#include "validate.h"
#include "mapping_impl.h"

/* ---- the BSN ---- */

int schakel_bsn_valid(const char *s)
{
    size_t n = strlen(s);
    if (n != 8 && n != 9) return 0;
    int d[9], sum = 0, nonzero = 0;
    for (size_t i = 0; i < 9; i++) {
        char c = i < 9 - n ? '0' : s[i - (9 - n)];
        if (c < '0' || c > '9') return 0;
        d[i] = c - '0';
        nonzero |= d[i];
    }
    for (int i = 0; i < 8; i++) sum += (9 - i) * d[i];
    sum -= d[8];
    return nonzero && sum % 11 == 0;
}

int schakel_bsn_pseudonym(const uint8_t key[SCHAKEL_REGION_KEY_LEN], const char *bsn, char out[65])
{
    if (!schakel_bsn_valid(bsn)) return SCHAKEL_EINVAL;
    char msg[32];
    size_t n = strlen(bsn);
    int len = snprintf(msg, sizeof msg, "schakel/v1/bsn:%s%s", n == 8 ? "0" : "", bsn);
    uint8_t mac[SCHAKEL_SHA256_LEN];
    int rc = schakel_hmac_sha256(key, SCHAKEL_REGION_KEY_LEN, msg, (size_t)len, mac);
    memset(msg, 0, sizeof msg);
    if (rc) return rc;
    schakel_hex_encode(mac, sizeof mac, out);
    return 0;
}

/* ---- values ---- */

static const char *cell(const schakel_row_t *row, const char *column)
{
    for (size_t i = 0; i < row->n; i++)
        if (!strcmp(row->names[i], column)) return row->values[i] ? row->values[i] : "";
    return NULL;
}

/* The trimmed value of column into buf; NULL when the row has no such
 * column. */
const char *mapping_value_of(const schakel_row_t *row, const char *column, char *buf, size_t cap)
{
    const char *v = cell(row, column);
    if (!v) return NULL;
    while (*v == ' ' || *v == '\t') v++;
    size_t n = strlen(v);
    while (n && (v[n - 1] == ' ' || v[n - 1] == '\t' || v[n - 1] == '\r' || v[n - 1] == '\n')) n--;
    if (n >= cap) n = cap - 1;
    memcpy(buf, v, n);
    buf[n] = 0;
    return buf;
}

/* The length of column's trimmed value; SIZE_MAX when the row has no
 * such column. */
size_t mapping_value_len(const schakel_row_t *row, const char *column)
{
    const char *v = cell(row, column);
    if (!v) return SIZE_MAX;
    while (*v == ' ' || *v == '\t') v++;
    size_t n = strlen(v);
    while (n && (v[n - 1] == ' ' || v[n - 1] == '\t' || v[n - 1] == '\r' || v[n - 1] == '\n')) n--;
    return n;
}

static int too_long(const schakel_row_t *row, const char *column)
{
    size_t n = column ? mapping_value_len(row, column) : SIZE_MAX;
    return n != SIZE_MAX && n >= VALUE_MAX;
}

/* The first column the entry e or the record's id reads whose value is
 * longer than a value may be (VALUE_MAX - 1 bytes), or NULL. A value is
 * never cut short: two ids that share their first bytes would be one. */
const char *mapping_long_column(const schakel_profile_t *p, const entry_t *e, const schakel_row_t *row)
{
    for (size_t i = 0; i < p->n_record_id; i++)
        if (too_long(row, p->record_id[i])) return p->record_id[i];
    const char *key;
    json_t *spec;
    json_object_foreach(e->when, key, spec)
        if (too_long(row, key)) return key;
    json_object_foreach(e->fields, key, spec) {
        static const char *const named[] = {"column", "bsn", "age_from", "on", "clock"};
        for (size_t i = 0; i < sizeof named / sizeof *named; i++) {
            const char *col = json_string_value(json_object_get(spec, named[i]));
            if (too_long(row, col)) return col;
        }
        size_t i;
        json_t *cj;
        json_array_foreach(json_object_get(spec, "id"), i, cj) {
            if (too_long(row, json_string_value(cj))) return json_string_value(cj);
        }
    }
    return NULL;
}

/* Reads up to max digits at *p (at least one); -1 when there are none. */
static int read_num(const char **p, int max, int *digits)
{
    int v = 0;
    *digits = 0;
    while (**p >= '0' && **p <= '9' && *digits < max) v = v * 10 + (*(*p)++ - '0'), (*digits)++;
    return *digits ? v : -1;
}

/* A date in one of the supported forms to YYYY-MM-DD. 0 or -1. */
static int parse_date(const char *s, const char *form, char out[11])
{
    int y, m, d, n1, n2, n3;
    const char *p = s;
    if (!strcmp(form, "yyyy-mm-dd")) {
        y = read_num(&p, 4, &n1);
        if (*p++ != '-') return -1;
        m = read_num(&p, 2, &n2);
        if (*p++ != '-') return -1;
        d = read_num(&p, 2, &n3);
        if (n1 != 4 || n2 != 2 || n3 != 2) return -1;
    } else if (!strcmp(form, "yyyymmdd")) {
        y = read_num(&p, 4, &n1);
        m = read_num(&p, 2, &n2);
        d = read_num(&p, 2, &n3);
        if (n1 != 4 || n2 != 2 || n3 != 2) return -1;
    } else if (!strcmp(form, "dd-mm-yyyy") || !strcmp(form, "d-m-yyyy") || !strcmp(form, "dd/mm/yyyy")) {
        char sep = strchr(form, '/') ? '/' : '-';
        d = read_num(&p, 2, &n1);
        if (*p++ != sep) return -1;
        m = read_num(&p, 2, &n2);
        if (*p++ != sep) return -1;
        y = read_num(&p, 4, &n3);
        if (n1 < 1 || n2 < 1 || n3 != 4) return -1;
    } else {
        return -1;
    }
    if (*p || y < 0 || m < 0 || d < 0) return -1;
    if (snprintf(out, 11, "%04d-%02d-%02d", y, m, d) != 10) return -1; /* a part had too many digits */
    return schakel_date_valid(out) ? 0 : -1;
}

/* HH:MM to minutes. */
static int parse_clock(const char *s)
{
    const char *p = s;
    int n1, n2, h = read_num(&p, 2, &n1);
    if (*p++ != ':') return -1;
    int m = read_num(&p, 2, &n2);
    if (*p || h < 0 || h > 23 || m < 0 || m > 59 || n2 != 2) return -1;
    return h * 60 + m;
}

static int is_time_path(const char *path)
{
    size_t n = strlen(path);
    return !strcmp(path, "occurred_at") || (n > 3 && !strcmp(path + n - 3, "_at"));
}

/* A column's text as what the protobuf field f wants in JSON. */
static json_t *coerce(const ProtobufCFieldDescriptor *f, const char *v, const char *column, char *why)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_BOOL:
        if (!strcmp(v, "1") || !strcasecmp(v, "ja") || !strcasecmp(v, "j") || !strcasecmp(v, "true") ||
            !strcasecmp(v, "yes") || !strcasecmp(v, "y"))
            return json_true();
        if (!strcmp(v, "0") || !strcasecmp(v, "nee") || !strcasecmp(v, "n") || !strcasecmp(v, "false") ||
            !strcasecmp(v, "no") || !v[0])
            return json_false();
        schakel_fail(why, SCHAKEL_EINVAL, "column %s: not yes or no (ja, nee, 1, 0, ...)", column);
        return NULL;
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_UINT64: {
        char *end;
        long long x = strtoll(v, &end, 10);
        if (!*v || *end || x < 0) {
            schakel_fail(why, SCHAKEL_EINVAL, "column %s: not a whole number", column);
            return NULL;
        }
        return json_integer(x);
    }
    default: {
        json_t *s = json_string(v); /* NULL when v is not UTF-8 */
        if (!s)
            schakel_fail(why, SCHAKEL_EINVAL, "column %s: not UTF-8 text: save the export as UTF-8", column);
        return s;
    }
    }
}

/* The date of the event: occurred_at's column, for age bands. */
static int event_date(mapctx_t *m, char out[11])
{
    json_t *spec = json_object_get(m->e->fields, "occurred_at");
    const char *col = json_string_value(json_object_get(spec, "column"));
    const char *form = json_string_value(json_object_get(spec, "date"));
    char buf[VALUE_MAX];
    const char *v = col ? mapping_value_of(m->row, col, buf, sizeof buf) : NULL;
    return v && form && parse_date(v, form, out) == 0 ? 0 : -1;
}

static int age_band(mapctx_t *m, json_t *spec, const char *path, json_t **out)
{
    const char *col = json_string_value(json_object_get(spec, "age_from"));
    const char *form = json_string_value(json_object_get(spec, "date"));
    const char *on = json_string_value(json_object_get(spec, "on"));
    char buf[VALUE_MAX], birth[11], at[11], obuf[VALUE_MAX];
    const char *v = mapping_value_of(m->row, col, buf, sizeof buf);
    if (!v) return schakel_fail(m->why, SCHAKEL_EINVAL, "column %s: missing (for %s)", col, path);
    if (!v[0] && json_is_true(json_object_get(spec, "optional"))) return 1;
    if (!form || parse_date(v, form, birth) != 0)
        return schakel_fail(m->why, SCHAKEL_EINVAL, "column %s: not a date in the form %s", col,
                            form ? form : "?");
    const char *ov = on ? mapping_value_of(m->row, on, obuf, sizeof obuf) : NULL;
    if (on ? (!ov || parse_date(ov, form, at) != 0) : event_date(m, at) != 0)
        return schakel_fail(m->why, SCHAKEL_EINVAL, "column %s: no date to reckon the age on", on ? on : col);
    int years = atoi(at) - atoi(birth);
    if (strcmp(at + 5, birth + 5) < 0) years--;
    if (years < 0) return schakel_fail(m->why, SCHAKEL_EINVAL, "column %s: born after the event", col);
    *out = json_string(years < 12 ? "under_12" : years < 16 ? "12_15" : years < 18 ? "16_17" : "adult");
    memset(buf, 0, sizeof buf); /* a birth date stays no longer than needed */
    memset(birth, 0, sizeof birth);
    return 0;
}

/* A reference (ContactRef.ref, provider_ref, case_ref: a field whose
 * last name is "ref" or ends in "_ref") points into the publisher's own
 * system and is never a name or a note. A cell is one when it holds 1 to
 * REF_MAX bytes of ASCII letters, digits and - _ . / : # only; a space, a
 * letter with an accent or any other character is taken for free text. */
#define REF_MAX 128
static int is_ref_path(const char *path)
{
    const char *last = strrchr(path, '.');
    last = last ? last + 1 : path;
    size_t n = strlen(last);
    return !strcmp(last, "ref") || (n > 4 && !strcmp(last + n - 4, "_ref"));
}

static int ref_ok(const char *v)
{
    size_t n = strlen(v);
    if (!n || n > REF_MAX) return 0;
    for (size_t i = 0; i < n; i++) {
        char c = v[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              strchr("-_./:#", c)))
            return 0;
    }
    return 1;
}

/* One value of a column spec: map, date, coerce. */
static json_t *one_value(mapctx_t *m, const ProtobufCFieldDescriptor *f, json_t *spec, const char *path,
                         const char *column, const char *v)
{
    json_t *map = json_object_get(spec, "map");
    const char *form = json_string_value(json_object_get(spec, "date"));
    if (map) {
        json_t *to = json_object_get(map, v);
        if (!to) {
            char known[160] = "";
            const char *k;
            json_t *x;
            size_t len = 0;
            json_object_foreach(map, k, x) {
                int w = snprintf(known + len, sizeof known - len, "%s%s", len ? ", " : "", k);
                if (w < 0 || (size_t)w >= sizeof known - len) break;
                len += (size_t)w;
            }
            schakel_fail(m->why, SCHAKEL_EINVAL,
                         "column %s: unknown code (not in the profile's map); known: %s", column, known);
            return NULL;
        }
        return json_incref(to);
    }
    if (form) {
        char date[11];
        if (parse_date(v, form, date) != 0) {
            schakel_fail(m->why, SCHAKEL_EINVAL, "column %s: not a date in the form %s", column, form);
            return NULL;
        }
        if (!is_time_path(path)) return json_string(date);
        int64_t ms = schakel_day_start_ms(schakel_date_days(date));
        const char *clock = json_string_value(json_object_get(spec, "clock"));
        if (clock) {
            char cbuf[32];
            const char *cv = mapping_value_of(m->row, clock, cbuf, sizeof cbuf);
            int min = cv && cv[0] ? parse_clock(cv) : 0;
            if (min < 0) {
                schakel_fail(m->why, SCHAKEL_EINVAL, "column %s: not a time HH:MM", clock);
                return NULL;
            }
            ms += (int64_t)min * 60000;
        }
        char text[32];
        schakel_time_format(ms, text);
        return json_string(text);
    }
    if (is_ref_path(path) && !ref_ok(v)) {
        schakel_fail(m->why, SCHAKEL_EINVAL,
                     "column %s: not a reference for %s (1 to %d letters, digits and - _ . / : # only): "
                     "map a column with the id of a person, desk or team, never a name or a note",
                     column, path, REF_MAX);
        return NULL;
    }
    return coerce(f, v, column, m->why);
}

/* The JSON value of one field spec; *skip when an optional cell is empty. */
json_t *mapping_field_value(mapctx_t *m, const char *path, json_t *spec, int *skip)
{
    const ProtobufCFieldDescriptor *f = mapping_path_field(path);
    json_t *c = json_object_get(spec, "const");
    *skip = 0;
    if (json_is_true(json_object_get(spec, "omit"))) { /* this entry leaves a default out */
        *skip = 1;
        return NULL;
    }
    if (c) return json_incref(c);
    if (json_object_get(spec, "age_from")) {
        json_t *out = NULL;
        int rc = age_band(m, spec, path, &out);
        if (rc == 1) *skip = 1;
        return rc ? NULL : out;
    }
    char buf[VALUE_MAX];
    if (json_object_get(spec, "bsn")) {
        const char *col = json_string_value(json_object_get(spec, "bsn"));
        const char *v = col ? mapping_value_of(m->row, col, buf, sizeof buf) : NULL;
        char pseudo[65];
        int ok = v && schakel_bsn_pseudonym(m->key, v, pseudo) == 0;
        memset(buf, 0, sizeof buf); /* the BSN stays no longer than needed */
        if (!ok) {
            schakel_fail(m->why, SCHAKEL_EINVAL, "column %s: %s", col ? col : "?",
                         v ? "not a valid BSN (9 digits that pass the elfproef)" : "missing");
            return NULL;
        }
        return json_string(pseudo);
    }
    if (json_object_get(spec, "id")) {
        json_t *cols = json_object_get(spec, "id");
        schakel_sha256_t h;
        mapping_id_hash_init(&h, m->p, "schakel/v1/adapter-id", 22);
        schakel_sha256_update(&h, m->org, strlen(m->org) + 1);
        schakel_sha256_update(&h, m->p->source_system, strlen(m->p->source_system) + 1);
        /* "as" names the id, so that two entries (a referral and its
         * closure) derive the same one; by default the field path does */
        const char *as = json_string_value(json_object_get(spec, "as"));
        schakel_sha256_update(&h, as ? as : path, strlen(as ? as : path) + 1);
        size_t i;
        json_t *cj;
        json_array_foreach(cols, i, cj) {
            const char *col = json_string_value(cj);
            const char *v = col ? mapping_value_of(m->row, col, buf, sizeof buf) : NULL;
            if (!v || !v[0]) {
                schakel_fail(m->why, SCHAKEL_EINVAL, "column %s: empty, and %s is made from it",
                             col ? col : "?", path);
                return NULL;
            }
            schakel_sha256_update(&h, v, strlen(v) + 1);
        }
        uint8_t d[SCHAKEL_SHA256_LEN];
        char hex[33];
        schakel_sha256_final(&h, d);
        schakel_hex_encode(d, 16, hex);
        return json_string(hex);
    }
    const char *col = json_string_value(json_object_get(spec, "column"));
    const char *v = col ? mapping_value_of(m->row, col, buf, sizeof buf) : NULL;
    if (!v) {
        schakel_fail(m->why, SCHAKEL_EINVAL, "column %s: missing from this file", col ? col : "?");
        return NULL;
    }
    if (!v[0]) {
        json_t *def = json_object_get(spec, "default");
        if (def) return json_incref(def);
        if (json_is_true(json_object_get(spec, "optional"))) {
            *skip = 1;
            return NULL;
        }
        schakel_fail(m->why, SCHAKEL_EINVAL, "column %s: empty", col);
        return NULL;
    }
    const char *split = json_string_value(json_object_get(spec, "split"));
    if (f->label != PROTOBUF_C_LABEL_REPEATED) return one_value(m, f, spec, path, col, v);
    json_t *list = json_array();
    char *save = NULL;
    for (char *part = strtok_r((char *)v, split && split[0] ? split : "\x01", &save); part;
         part = strtok_r(NULL, split && split[0] ? split : "\x01", &save)) {
        while (*part == ' ') part++;
        size_t n = strlen(part);
        while (n && part[n - 1] == ' ') part[--n] = 0;
        if (!n) continue;
        json_t *x = one_value(m, f, spec, path, col, part);
        if (!x) {
            json_decref(list);
            return NULL;
        }
        json_array_append_new(list, x);
    }
    return list;
}
