/* Profile mapping: rows of an organisation's export to events, as
 * mapping.h describes. A row is built into the event's JSON form field by
 * field (each value coerced to what the protobuf field wants), then read
 * by the JSON codec and validated exactly as the broker will. Reasons for
 * a rejected row name the column and the problem; a BSN is never quoted. */
#include "mapping.h"

#include <csv.h>
#include <jansson.h>
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

#define MAX_ENTRIES 64
#define MAX_RECORD_ID 8
#define VALUE_MAX 256

typedef struct {
    json_t *when;   /* column -> value or list */
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

void schakel_profile_set_id_key(schakel_profile_t *p, const uint8_t key[32])
{
    memcpy(p->id_key, key, sizeof p->id_key);
    p->has_id_key = 1;
}

/* The start of every id the adapter derives: with the organisation's id
 * key (the adapter always sets one), no other organisation can compute
 * the id from the same columns and publish it first. */
static void id_hash_init(schakel_sha256_t *h, const schakel_profile_t *p, const char *label, size_t len)
{
    schakel_sha256_init(h);
    schakel_sha256_update(h, label, len);
    if (p->has_id_key) schakel_sha256_update(h, p->id_key, sizeof p->id_key);
}

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

/* ---- the profile ---- */

static const ProtobufCFieldDescriptor *path_field(const char *path)
{
    char buf[128];
    snprintf(buf, sizeof buf, "%s", path);
    const ProtobufCMessageDescriptor *d = &schakel__v1__envelope__descriptor;
    const ProtobufCFieldDescriptor *f = NULL;
    char *save = NULL;
    for (char *seg = strtok_r(buf, ".", &save); seg; seg = strtok_r(NULL, ".", &save)) {
        if (!d) return NULL;
        f = protobuf_c_message_descriptor_get_field_by_name(d, seg);
        if (!f) return NULL;
        d = f->type == PROTOBUF_C_TYPE_MESSAGE ? f->descriptor : NULL;
    }
    return f;
}

/* Is every key of o one of the space-separated names in allowed? Names the
 * first stranger in why: a typo must not silently do nothing. */
static int only_keys(json_t *o, const char *allowed, const char *where, char *why)
{
    const char *k;
    json_t *v;
    json_object_foreach(o, k, v) {
        size_t n = strlen(k);
        const char *p = allowed;
        int ok = 0;
        while (!ok && n && (p = strstr(p, k))) { /* n: an empty key would match everywhere */
            ok = (p == allowed || p[-1] == ' ') && (p[n] == ' ' || p[n] == 0);
            p += n;
        }
        if (!ok) return schakel_fail(why, SCHAKEL_ECONFIG, "%s: unknown setting \"%s\" (one of: %s)", where, k, allowed);
    }
    return 0;
}

static int check_spec(const char *path, json_t *spec, size_t i, char *why)
{
    char where[160];
    snprintf(where, sizeof where, "rows[%zu].fields.%s", i, path);
    if (!json_is_object(spec))
        return schakel_fail(why, SCHAKEL_ECONFIG, "%s: an object such as {\"column\": ...}", where);
    if (!path_field(path))
        return schakel_fail(why, SCHAKEL_ECONFIG, "%s: no such field (see docs/events.md)", where);
    if (only_keys(spec, "const column bsn id as age_from on date clock map split optional default omit", where, why))
        return SCHAKEL_ECONFIG;
    int kinds = !!json_object_get(spec, "const") + !!json_object_get(spec, "column") + !!json_object_get(spec, "bsn") +
                !!json_object_get(spec, "id") + !!json_object_get(spec, "age_from") + json_is_true(json_object_get(spec, "omit"));
    if (kinds != 1)
        return schakel_fail(why, SCHAKEL_ECONFIG, "%s: exactly one of const, column, bsn, id, age_from, omit", where);
    if (json_object_get(spec, "bsn") && strcmp(path, "subject") != 0)
        return schakel_fail(why, SCHAKEL_ECONFIG, "%s: a BSN may only become the subject", where);
    json_t *map = json_object_get(spec, "map");
    if (map && !json_is_object(map)) return schakel_fail(why, SCHAKEL_ECONFIG, "%s.map: an object", where);
    json_t *id = json_object_get(spec, "id");
    if (id && (!json_is_array(id) || !json_array_size(id)))
        return schakel_fail(why, SCHAKEL_ECONFIG, "%s.id: a list of columns", where);
    const char *date = json_string_value(json_object_get(spec, "date"));
    if (json_object_get(spec, "date") && (!date || (strcmp(date, "dd-mm-yyyy") && strcmp(date, "d-m-yyyy") &&
                                                    strcmp(date, "dd/mm/yyyy") && strcmp(date, "yyyy-mm-dd") &&
                                                    strcmp(date, "yyyymmdd"))))
        return schakel_fail(why, SCHAKEL_ECONFIG, "%s.date: dd-mm-yyyy, d-m-yyyy, dd/mm/yyyy, yyyy-mm-dd or yyyymmdd", where);
    return 0;
}

static int parse_entry(schakel_profile_t *p, json_t *o, json_t *defaults, size_t i, char *why)
{
    entry_t *e = &p->entries[i];
    char where[32];
    snprintf(where, sizeof where, "rows[%zu]", i);
    if (!json_is_object(o)) return schakel_fail(why, SCHAKEL_ECONFIG, "%s: an object", where);
    if (only_keys(o, "when type fields", where, why)) return SCHAKEL_ECONFIG;
    const char *type = json_string_value(json_object_get(o, "type"));
    e->type = type ? schakel_event_type_parse(type) : 0;
    if (!e->type)
        return schakel_fail(why, SCHAKEL_ECONFIG, "rows[%zu].type: an event type (docs/events.md)", i);
    e->when = json_object_get(o, "when");
    if (e->when && !json_is_object(e->when))
        return schakel_fail(why, SCHAKEL_ECONFIG, "rows[%zu].when: an object of column -> value", i);
    json_t *fields = json_object_get(o, "fields");
    if (!json_is_object(fields)) return schakel_fail(why, SCHAKEL_ECONFIG, "rows[%zu].fields: an object", i);
    e->fields = defaults ? json_deep_copy(defaults) : json_object();
    json_object_update(e->fields, fields);
    const char *path;
    json_t *spec;
    json_object_foreach(e->fields, path, spec) {
        if (check_spec(path, spec, i, why)) return SCHAKEL_ECONFIG;
        /* a body field must be this entry's type's body */
        char head[64];
        snprintf(head, sizeof head, "%.*s", (int)strcspn(path, "."), path);
        const ProtobufCFieldDescriptor *hf =
            protobuf_c_message_descriptor_get_field_by_name(&schakel__v1__envelope__descriptor, head);
        if (hf && (hf->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) && strcmp(head, type) != 0)
            return schakel_fail(why, SCHAKEL_ECONFIG, "rows[%zu].fields.%s: this entry makes a %s, not a %s",
                                i, path, type, head);
    }
    if (!json_object_get(e->fields, "occurred_at"))
        return schakel_fail(why, SCHAKEL_ECONFIG, "rows[%zu].fields.occurred_at: required, from a date "
                                                  "column: nothing may depend on the wall clock", i);
    return 0;
}

schakel_profile_t *schakel_profile_parse(const char *text, size_t len, char *why)
{
    schakel_profile_t *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    json_error_t err;
    p->doc = json_loadb(text, len, 0, &err);
    if (!p->doc || !json_is_object(p->doc)) {
        schakel_fail(why, SCHAKEL_ECONFIG, "profile: line %d: %s", err.line, p->doc ? "not an object" : err.text);
        goto fail;
    }
    if (only_keys(p->doc, "version kind source_system csv record_id defaults rows", "profile", why)) goto fail;
    json_t *ver = json_object_get(p->doc, "version");
    if (!json_is_integer(ver) || json_integer_value(ver) != 1) {
        schakel_fail(why, SCHAKEL_ECONFIG, "profile: \"version\": 1 is the format this adapter reads");
        goto fail;
    }
    const char *kind = json_string_value(json_object_get(p->doc, "kind"));
    const char *src = json_string_value(json_object_get(p->doc, "source_system"));
    json_t *rows = json_object_get(p->doc, "rows"), *rid = json_object_get(p->doc, "record_id");
    json_t *csv = json_object_get(p->doc, "csv"), *defaults = json_object_get(p->doc, "defaults");
    if (!kind || !src || !src[0] || strlen(src) >= sizeof p->source_system) {
        schakel_fail(why, SCHAKEL_ECONFIG, "profile: \"kind\" and \"source_system\" (a name) are required");
        goto fail;
    }
    snprintf(p->kind, sizeof p->kind, "%s", kind);
    snprintf(p->source_system, sizeof p->source_system, "%s", src);
    if (!json_is_array(rid) || !json_array_size(rid) || json_array_size(rid) > MAX_RECORD_ID) {
        schakel_fail(why, SCHAKEL_ECONFIG, "profile: \"record_id\": the columns that identify a record "
                                           "in the source system (1 to %d)", MAX_RECORD_ID);
        goto fail;
    }
    for (size_t i = 0; i < json_array_size(rid); i++) {
        const char *c = json_string_value(json_array_get(rid, i));
        if (!c || strlen(c) >= sizeof p->record_id[0]) {
            schakel_fail(why, SCHAKEL_ECONFIG, "profile: record_id[%zu]: a column name", i);
            goto fail;
        }
        snprintf(p->record_id[p->n_record_id++], sizeof p->record_id[0], "%s", c);
    }
    if (csv && (!json_is_object(csv) || only_keys(csv, "delimiter quote", "profile.csv", why))) {
        if (!json_is_object(csv)) schakel_fail(why, SCHAKEL_ECONFIG, "profile.csv: an object");
        goto fail;
    }
    p->delim = ',';
    p->quote = '"';
    const char *dl = json_string_value(json_object_get(csv, "delimiter"));
    const char *qt = json_string_value(json_object_get(csv, "quote"));
    if (dl) p->delim = (unsigned char)(strcmp(dl, "\\t") == 0 ? '\t' : dl[0]);
    if (qt) p->quote = (unsigned char)qt[0];
    if (defaults && !json_is_object(defaults)) {
        schakel_fail(why, SCHAKEL_ECONFIG, "profile: \"defaults\": an object of field -> spec");
        goto fail;
    }
    if (!json_is_array(rows) || !json_array_size(rows) || json_array_size(rows) > MAX_ENTRIES) {
        schakel_fail(why, SCHAKEL_ECONFIG, "profile: \"rows\": a list of 1 to %d entries", MAX_ENTRIES);
        goto fail;
    }
    for (size_t i = 0; i < json_array_size(rows); i++, p->n_entries++)
        if (parse_entry(p, json_array_get(rows, i), defaults, i, why)) goto fail;
    return p;
fail:
    schakel_profile_destroy(&p);
    return NULL;
}

schakel_profile_t *schakel_profile_load(const char *path, char *why)
{
    json_error_t err;
    json_t *doc = json_load_file(path, 0, &err);
    if (!doc) {
        schakel_fail(why, SCHAKEL_ECONFIG, "%s: line %d: %s", path, err.line, err.text);
        return NULL;
    }
    char *text = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    schakel_profile_t *p = text ? schakel_profile_parse(text, strlen(text), why) : NULL;
    free(text);
    if (!p && why) {
        char inner[SCHAKEL_ERRLEN];
        snprintf(inner, sizeof inner, "%s", why);
        schakel_fail(why, SCHAKEL_ECONFIG, "%s: %s", path, inner);
    }
    return p;
}

void schakel_profile_destroy(schakel_profile_t **self_p)
{
    schakel_profile_t *p = *self_p;
    if (!p) return;
    for (size_t i = 0; i < MAX_ENTRIES; i++) json_decref(p->entries[i].fields);
    json_decref(p->doc);
    free(p);
    *self_p = NULL;
}

const char *schakel_profile_kind(const schakel_profile_t *p)
{
    return p->kind;
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
static const char *value_of(const schakel_row_t *row, const char *column, char *buf, size_t cap)
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
    snprintf(out, 11, "%04d-%02d-%02d", y, m, d);
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
        if (!s) schakel_fail(why, SCHAKEL_EINVAL, "column %s: not UTF-8 text: save the export as UTF-8", column);
        return s;
    }
    }
}

typedef struct {
    const schakel_profile_t *p;
    const char *org;
    const uint8_t *key;
    const schakel_row_t *row;
    const entry_t *e;
    char *why;
} mapctx_t;

/* The date of the event: occurred_at's column, for age bands. */
static int event_date(mapctx_t *m, char out[11])
{
    json_t *spec = json_object_get(m->e->fields, "occurred_at");
    const char *col = json_string_value(json_object_get(spec, "column"));
    const char *form = json_string_value(json_object_get(spec, "date"));
    char buf[VALUE_MAX];
    const char *v = col ? value_of(m->row, col, buf, sizeof buf) : NULL;
    return v && form && parse_date(v, form, out) == 0 ? 0 : -1;
}

static int age_band(mapctx_t *m, json_t *spec, const char *path, json_t **out)
{
    const char *col = json_string_value(json_object_get(spec, "age_from"));
    const char *form = json_string_value(json_object_get(spec, "date"));
    const char *on = json_string_value(json_object_get(spec, "on"));
    char buf[VALUE_MAX], birth[11], at[11], obuf[VALUE_MAX];
    const char *v = value_of(m->row, col, buf, sizeof buf);
    if (!v) return schakel_fail(m->why, SCHAKEL_EINVAL, "column %s: missing (for %s)", col, path);
    if (!v[0] && json_is_true(json_object_get(spec, "optional"))) return 1;
    if (!form || parse_date(v, form, birth) != 0)
        return schakel_fail(m->why, SCHAKEL_EINVAL, "column %s: not a date in the form %s", col, form ? form : "?");
    const char *ov = on ? value_of(m->row, on, obuf, sizeof obuf) : NULL;
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
            schakel_fail(m->why, SCHAKEL_EINVAL, "column %s: unknown code (not in the profile's map); known: %s",
                         column, known);
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
            const char *cv = value_of(m->row, clock, cbuf, sizeof cbuf);
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
    return coerce(f, v, column, m->why);
}

/* The JSON value of one field spec; *skip when an optional cell is empty. */
static json_t *field_value(mapctx_t *m, const char *path, json_t *spec, int *skip)
{
    const ProtobufCFieldDescriptor *f = path_field(path);
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
        const char *v = col ? value_of(m->row, col, buf, sizeof buf) : NULL;
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
        id_hash_init(&h, m->p, "schakel/v1/adapter-id", 22);
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
            const char *v = col ? value_of(m->row, col, buf, sizeof buf) : NULL;
            if (!v || !v[0]) {
                schakel_fail(m->why, SCHAKEL_EINVAL, "column %s: empty, and %s is made from it", col ? col : "?", path);
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
    const char *v = col ? value_of(m->row, col, buf, sizeof buf) : NULL;
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

/* Sets value at a dotted path in obj, making the objects on the way. */
static void set_path(json_t *obj, const char *path, json_t *value)
{
    char buf[128];
    snprintf(buf, sizeof buf, "%s", path);
    char *dot, *seg = buf;
    while ((dot = strchr(seg, '.'))) {
        *dot = 0;
        json_t *next = json_object_get(obj, seg);
        if (!json_is_object(next)) {
            next = json_object();
            json_object_set_new(obj, seg, next);
        }
        obj = next;
        seg = dot + 1;
    }
    json_object_set_new(obj, seg, value);
}

/* A "when" value against a cell: strings as they are, numbers as their
 * digits (an export's 3 and a profile's 3 are the same code). */
static int same_text(json_t *want, const char *v)
{
    if (json_is_string(want)) return !strcmp(json_string_value(want), v);
    if (json_is_integer(want)) {
        char n[32];
        snprintf(n, sizeof n, "%lld", (long long)json_integer_value(want));
        return !strcmp(n, v);
    }
    return 0;
}

static int when_matches(const entry_t *e, const schakel_row_t *row)
{
    const char *col;
    json_t *want;
    char buf[VALUE_MAX];
    json_object_foreach(e->when, col, want) {
        const char *v = value_of(row, col, buf, sizeof buf);
        if (!v) return 0;
        if (json_is_array(want)) {
            int any = 0;
            size_t i;
            json_t *w;
            json_array_foreach(want, i, w) any |= same_text(w, v);
            if (!any) return 0;
        } else if (!same_text(want, v)) {
            return 0;
        }
    }
    return 1;
}

static int profile_map(const schakel_profile_t *p, const char *org, const uint8_t key[SCHAKEL_REGION_KEY_LEN],
                       const schakel_row_t *row, uint8_t **out, size_t *outlen, uint8_t event_id[16], char *why)
{
    if (row->error) return schakel_fail(why, SCHAKEL_EINVAL, "%s", row->error);
    const entry_t *e = NULL;
    for (size_t i = 0; i < p->n_entries && !e; i++)
        if (when_matches(&p->entries[i], row)) e = &p->entries[i];
    if (!e) {
        char what[128] = "";
        const char *col;
        json_t *w;
        char buf[64];
        json_object_foreach(p->entries[0].when, col, w) {
            const char *v = value_of(row, col, buf, sizeof buf);
            snprintf(what, sizeof what, " (column %s: %s)", col, v ? "a code that no entry's when names" : "missing");
            break;
        }
        return schakel_fail(why, SCHAKEL_EINVAL, "no entry of the profile takes this row%s", what);
    }
    /* the record's id in the source system decides the event id */
    schakel_sha256_t h;
    id_hash_init(&h, p, "schakel/v1/adapter-event", 25);
    schakel_sha256_update(&h, org, strlen(org) + 1);
    schakel_sha256_update(&h, p->source_system, strlen(p->source_system) + 1);
    const char *tname = schakel_event_type_name(e->type);
    schakel_sha256_update(&h, tname, strlen(tname) + 1);
    for (size_t i = 0; i < p->n_record_id; i++) {
        char buf[VALUE_MAX];
        const char *v = value_of(row, p->record_id[i], buf, sizeof buf);
        if (!v || !v[0])
            return schakel_fail(why, SCHAKEL_EINVAL, "column %s: empty, and it identifies the record", p->record_id[i]);
        schakel_sha256_update(&h, v, strlen(v) + 1);
    }
    uint8_t d[SCHAKEL_SHA256_LEN];
    schakel_sha256_final(&h, d);
    memcpy(event_id, d, 16);
    char idhex[33];
    schakel_hex_encode(event_id, 16, idhex);

    json_t *obj = json_pack("{s:s, s:s, s:s}", "event_id", idhex, "type", tname, "source_org", org);
    mapctx_t m = {p, org, key, row, e, why};
    const char *path;
    json_t *spec;
    json_object_foreach(e->fields, path, spec) {
        int skip;
        json_t *v = field_value(&m, path, spec, &skip);
        if (skip) continue;
        if (!v) {
            json_decref(obj);
            return SCHAKEL_EINVAL;
        }
        set_path(obj, path, v);
    }
    if (!json_object_get(obj, tname)) json_object_set_new(obj, tname, json_object());
    char inner[SCHAKEL_ERRLEN] = "";
    schakel_envelope_t *env = schakel_json_to_envelope(obj, inner);
    json_decref(obj);
    if (!env) return schakel_fail(why, SCHAKEL_EINVAL, "%s", inner);
    int rc = schakel_envelope_validate(env, inner);
    if (rc == 0) rc = schakel_envelope_encode(env, out, outlen);
    schakel_envelope_free(env);
    if (rc) return schakel_fail(why, SCHAKEL_EINVAL, "%s", inner[0] ? inner : schakel_strerror(rc));
    return 0;
}

int schakel_profile_map(const schakel_profile_t *p, const char *org,
                        const uint8_t key[SCHAKEL_REGION_KEY_LEN], const schakel_row_t *row, uint8_t **out,
                        size_t *outlen, uint8_t event_id[16], char *why)
{
    int rc = profile_map(p, org, key, row, out, outlen, event_id, why);
    /* the codec's and the validator's reasons may quote a value */
    if (rc && why) schakel_reason_scrub(why);
    return rc;
}

void schakel_reason_scrub(char *why)
{
    static const char hidden[] = "(value not shown)";
    char out[SCHAKEL_ERRLEN];
    size_t o = 0;
    for (const char *s = why; *s && o + 1 < sizeof out;) {
        const char *close = *s == '"' ? strchr(s + 1, '"') : NULL;
        if (close) {
            for (const char *h = hidden; *h && o + 1 < sizeof out; h++) out[o++] = *h;
            s = close + 1;
            continue;
        }
        size_t digits = strspn(s, "0123456789");
        if (digits >= 8) {
            out[o++] = '#';
            s += digits;
            continue;
        }
        if (digits) {
            for (size_t k = 0; k < digits && o + 1 < sizeof out; k++) out[o++] = s[k];
            s += digits;
            continue;
        }
        out[o++] = *s++;
    }
    out[o] = 0;
    memcpy(why, out, o + 1);
}

/* ---- reading rows ---- */

/* Reasons about the text itself say where (line, column) and what kind of
 * problem, never the text: what is near a broken quote or a broken JSON
 * line is as likely as not a BSN or a name. */

/* The offset of the first byte of s that is not well-formed UTF-8
 * (overlong forms, surrogates and code points above U+10FFFF included),
 * or len when all of it is. */
static size_t utf8_bad_at(const unsigned char *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        unsigned char c = s[i];
        size_t n;
        unsigned lo = 0x80, hi = 0xbf;
        if (c < 0x80) {
            i++;
            continue;
        } else if (c >= 0xc2 && c <= 0xdf) {
            n = 1;
        } else if (c >= 0xe0 && c <= 0xef) {
            n = 2;
            if (c == 0xe0) lo = 0xa0;
            if (c == 0xed) hi = 0x9f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            n = 3;
            if (c == 0xf0) lo = 0x90;
            if (c == 0xf4) hi = 0x8f;
        } else {
            return i;
        }
        for (size_t k = 1; k <= n; k++) {
            if (i + k >= len) return i;
            unsigned char d = s[i + k];
            if (d < (k == 1 ? lo : 0x80) || d > (k == 1 ? hi : 0xbf)) return i;
        }
        i += n + 1;
    }
    return len;
}

/* CSV is parsed by libcsv in strict mode. libcsv reports cells and row
 * ends but no positions, so the text is fed one line at a time (a line
 * ends in LF, CRLF or a lone CR, inside a quoted cell too): the reader
 * then knows the line each record starts on and each cell starts on.
 * With CSV_REPALL_NL every line end outside a quoted cell reaches
 * csv_row, so a line that ends without one is inside a quoted cell. */
#define CSV_OPTS (CSV_STRICT | CSV_STRICT_FINI | CSV_REPALL_NL)
#define CSV_SLICE 4096

typedef struct {
    struct csv_parser p;
    unsigned char delim;
    size_t line;       /* the line being fed */
    size_t rec_line;   /* the line the record starts on */
    size_t cell_line;  /* the line the next cell starts on */
    int pending;       /* a record is begun and not ended */
    int row_end;       /* libcsv ended a row (or a blank line) in this line */
    int nomem;
    char *buf;         /* the record's cells, each NUL-terminated */
    size_t used, cap;
    size_t *off;       /* where each cell starts in buf */
    size_t n, ncap;
    char bad[160];     /* what is wrong with this record (empty: nothing) */
} csv_reader_t;

/* libcsv's cell callback: checks the cell over its full length (libcsv
 * gives its bytes with their length, a NUL included) and keeps it. */
static void csv_cell(void *s, size_t len, void *arg)
{
    csv_reader_t *r = arg;
    if (r->nomem) return;
    if (!r->bad[0] && len && memchr(s, 0, len))
        snprintf(r->bad, sizeof r->bad, "line %zu, column %zu: a NUL byte in the cell (the export is "
                 "damaged or not text)", r->cell_line, r->n + 1);
    else if (!r->bad[0] && utf8_bad_at(s, len) != len)
        snprintf(r->bad, sizeof r->bad, "line %zu, column %zu: the cell is not UTF-8 (an export in "
                 "Latin-1 or Windows-1252? export as UTF-8)", r->cell_line, r->n + 1);
    r->cell_line = r->line;
    if (r->n == r->ncap) {
        size_t nc = r->ncap ? r->ncap * 2 : 32;
        size_t *no = realloc(r->off, nc * sizeof *no);
        if (!no) goto nomem;
        r->off = no, r->ncap = nc;
    }
    if (r->cap - r->used < len + 1) {
        size_t nc = r->cap ? r->cap : 256;
        while (nc - r->used < len + 1) nc *= 2;
        char *nb = realloc(r->buf, nc);
        if (!nb) goto nomem;
        r->buf = nb, r->cap = nc;
    }
    if (len) memcpy(r->buf + r->used, s, len);
    r->buf[r->used + len] = 0;
    r->off[r->n++] = r->used;
    r->used += len + 1;
    return;
nomem:
    r->nomem = 1;
}

/* libcsv's row callback: a row's end, or (no cells) a blank line or the
 * LF of a CRLF. */
static void csv_row(int c, void *arg)
{
    csv_reader_t *r = arg;
    (void)c;
    r->row_end = 1;
}

/* Feeds part of one line to libcsv. On a strict-mode error, names it in
 * r->bad, skips the rest of the cell and goes on from the delimiter or
 * the line end after it. In slices, the buffer's growth set to its size
 * before each: a long cell grows it by doubling, not by libcsv's fixed
 * step, so reading stays linear. */
static int csv_feed(csv_reader_t *r, const char *s, size_t len)
{
    size_t at = 0;
    while (at < len) {
        size_t k = len - at < CSV_SLICE ? len - at : CSV_SLICE, size = csv_get_buffer_size(&r->p);
        csv_set_blk_size(&r->p, size > CSV_SLICE ? size : CSV_SLICE);
        size_t done = csv_parse(&r->p, s + at, k, csv_cell, csv_row, r);
        if (r->nomem) return SCHAKEL_ENOMEM;
        if (done == k) {
            at += k;
            continue;
        }
        if (csv_error(&r->p) != CSV_EPARSE) return SCHAKEL_ENOMEM;
        /* a quote where strict CSV has none: text after a closing quote
         * (libcsv: a quoted field ends in the quote), or a quote inside an
         * unquoted cell (the state libcsv keeps says which) */
        if (!r->bad[0]) {
            if (r->p.quoted)
                snprintf(r->bad, sizeof r->bad, "line %zu, column %zu: text after the closing quote of a "
                         "quoted cell (double a quote inside a quoted cell)", r->line, r->n + 1);
            else
                snprintf(r->bad, sizeof r->bad, "line %zu, column %zu: a quote inside a cell that does not "
                         "start with one (quote the whole cell and double the quote)", r->line, r->n + 1);
        }
        at += done;
        while (at < len && (unsigned char)s[at] != r->delim && s[at] != '\n' && s[at] != '\r') at++;
        /* a fresh row state: from the delimiter, libcsv gives an empty
         * cell in place of the broken one; from the line end, the row's end */
        csv_set_opts(&r->p, CSV_STRICT | CSV_REPALL_NL);
        csv_fini(&r->p, NULL, NULL, NULL);
        csv_set_opts(&r->p, CSV_OPTS);
    }
    return 0;
}

static int csv_reader_init(csv_reader_t *r, const schakel_profile_t *p, size_t line)
{
    memset(r, 0, sizeof *r);
    if (csv_init(&r->p, CSV_OPTS)) return SCHAKEL_ENOMEM;
    r->delim = p ? p->delim : ',';
    csv_set_delim(&r->p, r->delim);
    csv_set_quote(&r->p, p ? p->quote : '"');
    r->line = line;
    return 0;
}

static void csv_reader_free(csv_reader_t *r)
{
    csv_free(&r->p);
    free(r->buf);
    free(r->off);
}

/* Reads the record at *pos: returns 1 with its cells in r (r->bad says
 * what is wrong with it, if anything; no cells and no bad: a blank line),
 * 0 at the end of the text, SCHAKEL_EINVAL for a quote that is never
 * closed (the line it opened on in r->cell_line), or SCHAKEL_ENOMEM. */
static int csv_next(csv_reader_t *r, const char *text, size_t len, size_t *pos)
{
    r->n = r->used = 0;
    r->bad[0] = 0;
    while (*pos < len) {
        const char *s = text + *pos, *e = s;
        while (e < text + len && *e != '\n' && *e != '\r') e++;
        int ends = e < text + len;
        if (ends) e += *e == '\r' && e + 1 < text + len && e[1] == '\n' ? 2 : 1;
        if (!r->pending) r->rec_line = r->cell_line = r->line;
        r->row_end = 0;
        int rc = csv_feed(r, s, (size_t)(e - s));
        if (rc) return rc;
        *pos = (size_t)(e - text);
        if (!ends) break;
        r->line++;
        r->pending = !r->row_end;
        if (!r->pending) return 1;
    }
    /* the text's end: libcsv ends a last line without a line end, or
     * finds the quote never closed */
    if (csv_fini(&r->p, csv_cell, csv_row, r)) return SCHAKEL_EINVAL;
    if (r->nomem) return SCHAKEL_ENOMEM;
    r->pending = 0;
    return r->n || r->bad[0] ? 1 : 0;
}

static size_t csv_start(const char *text, size_t len)
{
    return len >= 3 && !memcmp(text, "\xef\xbb\xbf", 3) ? 3 : 0; /* a byte order mark */
}

size_t schakel_csv_record_end(const schakel_profile_t *p, const char *text, size_t len, size_t start,
                              size_t *first_line)
{
    csv_reader_t r;
    size_t pos = csv_start(text, len);
    if (start > pos) pos = start;
    if (csv_reader_init(&r, p, *first_line)) return len;
    int rc = csv_next(&r, text, len, &pos);
    *first_line = r.line;
    csv_reader_free(&r);
    return rc == 1 ? pos : len;
}

int schakel_rows_csv(const schakel_profile_t *p, const char *text, size_t len, schakel_row_fn fn, void *arg,
                     char *why)
{
    csv_reader_t r;
    size_t pos = csv_start(text, len);
    char *hbuf = NULL;
    const char **header = NULL, **values = NULL;
    size_t n_header = 0;
    int rc = 0, stop = 0;
    if (csv_reader_init(&r, p, 1)) return schakel_fail(why, SCHAKEL_ENOMEM, "csv: out of memory");
    while (!stop) {
        rc = csv_next(&r, text, len, &pos);
        if (rc == 0) break;
        if (rc == SCHAKEL_EINVAL) {
            rc = schakel_fail(why, SCHAKEL_EINVAL, "csv: line %zu: a quote opens a cell that is never closed: "
                              "the whole file is refused (close or double the quote)", r.cell_line);
            break;
        }
        if (rc < 0) {
            schakel_fail(why, rc, "csv: out of memory");
            break;
        }
        rc = 0;
        if (!r.n && !r.bad[0]) continue; /* a blank line */
        if (!header) { /* the first line names the columns */
            if (r.bad[0]) {
                rc = schakel_fail(why, SCHAKEL_EINVAL, "csv: the header: %s", r.bad);
                break;
            }
            hbuf = malloc(r.used);
            header = calloc(r.n, sizeof *header);
            values = calloc(r.n + 1, sizeof *values);
            if (!hbuf || !header || !values) {
                rc = schakel_fail(why, SCHAKEL_ENOMEM, "csv: out of memory");
                break;
            }
            memcpy(hbuf, r.buf, r.used);
            for (size_t i = 0; i < r.n; i++) header[i] = hbuf + r.off[i];
            n_header = r.n;
            continue;
        }
        if (!r.bad[0] && r.n != n_header)
            snprintf(r.bad, sizeof r.bad, "line %zu: %zu columns, and the header has %zu (a delimiter too many "
                     "or too few?)", r.rec_line, r.n, n_header);
        for (size_t i = 0; i < n_header; i++) values[i] = i < r.n ? r.buf + r.off[i] : "";
        schakel_row_t row = {header, values, n_header, r.bad[0] ? r.bad : NULL};
        stop = fn(arg, &row, r.rec_line);
    }
    if (!rc && !stop && !header) rc = schakel_fail(why, SCHAKEL_EINVAL, "csv: no header line naming the columns");
    csv_reader_free(&r);
    free(hbuf);
    free(header);
    free(values);
    return rc ? rc : stop;
}

void schakel_json_error_reason(const void *json_error, size_t line, size_t column_offset, char *out, size_t cap)
{
    const json_error_t *e = json_error;
    const char *kind;
    switch (json_error_code(e)) {
    case json_error_invalid_utf8: kind = "not UTF-8 (export as UTF-8)"; break;
    case json_error_premature_end_of_input: kind = "the text ends too early (a string, object or list is not closed)"; break;
    case json_error_end_of_input_expected: kind = "more text after the end of the value (one object per line)"; break;
    case json_error_null_character: kind = "a NUL character, which JSON text may not hold"; break;
    case json_error_null_byte_in_key: kind = "a NUL character in a key"; break;
    case json_error_duplicate_key: kind = "a key that appears twice in one object"; break;
    case json_error_numeric_overflow: kind = "a number too large"; break;
    case json_error_stack_overflow: kind = "nested too deeply"; break;
    case json_error_out_of_memory: kind = "out of memory"; break;
    default: kind = "unexpected character (not valid JSON)"; break;
    }
    size_t l = line ? line : (e->line > 0 ? (size_t)e->line : 1);
    if (e->column > 0) snprintf(out, cap, "line %zu, column %zu: %s", l, (size_t)e->column + column_offset, kind);
    else snprintf(out, cap, "line %zu: %s", l, kind);
}

/* One JSON object as a row: strings as they are, null as an empty cell,
 * numbers and booleans (and anything else) as their JSON text. */
static int json_row(json_t *o, size_t number, schakel_row_fn fn, void *arg)
{
    size_t n = json_object_size(o), i = 0;
    const char **names = calloc(n + 1, sizeof *names), **values = calloc(n + 1, sizeof *values);
    char **owned = calloc(n + 1, sizeof *owned);
    if (!names || !values || !owned) {
        free(names), free(values), free(owned);
        return SCHAKEL_ENOMEM;
    }
    const char *k;
    json_t *v;
    json_object_foreach(o, k, v) {
        names[i] = k;
        if (json_is_string(v)) {
            values[i] = json_string_value(v);
        } else if (json_is_null(v)) {
            values[i] = "";
        } else {
            owned[i] = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
            values[i] = owned[i] ? owned[i] : "";
        }
        i++;
    }
    schakel_row_t r = {names, values, n, NULL};
    int stop = fn(arg, &r, number);
    for (size_t j = 0; j < n; j++) free(owned[j]);
    free(owned);
    free(names);
    free(values);
    return stop;
}

int schakel_rows_jsonl(const char *text, size_t len, schakel_row_fn fn, void *arg, char *why)
{
    return schakel_rows_jsonl_at(text, len, 1, 1, fn, arg, why);
}

int schakel_rows_jsonl_at(const char *text, size_t len, size_t first_line, int allow_list, schakel_row_fn fn,
                          void *arg, char *why)
{
    size_t first = 0;
    while (first < len && (text[first] == ' ' || text[first] == '\r' || text[first] == '\t' || text[first] == '\n'))
        first++;
    if (first < len && text[first] == '[' && allow_list) { /* a JSON list of rows */
        json_error_t err;
        json_t *list = json_loadb(text, len, JSON_REJECT_DUPLICATES, &err);
        if (!list) {
            char reason[SCHAKEL_ERRLEN];
            schakel_json_error_reason(&err, 0, 0, reason, sizeof reason);
            return schakel_fail(why, SCHAKEL_EINVAL, "%s", reason);
        }
        size_t i;
        json_t *o;
        json_array_foreach(list, i, o) {
            if (!json_is_object(o)) {
                json_decref(list);
                return schakel_fail(why, SCHAKEL_EINVAL, "row %zu of the list: not a JSON object (one flat "
                                    "object per row)", i + 1);
            }
        }
        int stop = 0;
        json_array_foreach(list, i, o) {
            if ((stop = json_row(o, i + 1, fn, arg))) break;
        }
        json_decref(list);
        return stop;
    }
    size_t line = first_line - 1;
    for (size_t at = 0; at < len;) {
        const char *nl = memchr(text + at, '\n', len - at);
        size_t end = nl ? (size_t)(nl - text) : len;
        line++;
        size_t a = at;
        while (a < end && (text[a] == ' ' || text[a] == '\r' || text[a] == '\t')) a++;
        if (a < end) {
            json_error_t err;
            json_t *o = json_loadb(text + a, end - a, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &err);
            if (!o) {
                char reason[SCHAKEL_ERRLEN];
                schakel_json_error_reason(&err, line, a - at, reason, sizeof reason);
                return schakel_fail(why, SCHAKEL_EINVAL, "%s", reason);
            }
            if (!json_is_object(o)) {
                json_decref(o);
                return schakel_fail(why, SCHAKEL_EINVAL, "line %zu: not a JSON object (one flat object per line)", line);
            }
            int stop = json_row(o, line, fn, arg);
            json_decref(o);
            if (stop) return stop;
        }
        at = end + 1;
    }
    return 0;
}
