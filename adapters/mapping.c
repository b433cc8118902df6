/* Profile mapping, the profile: the JSON document that says how an
 * organisation's export becomes events (docs/adapters.md), parsed
 * strictly once at start-up: a setting it does not know is an error, so
 * that a typo does not silently do nothing. Immutable afterwards; rows
 * are mapped by mapping_row.c, field by field in mapping_fields.c, as
 * mapping.h describes. */
#include "mapping.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "crypto.h"
#include "error.h"
#include "mapping_impl.h"

void schakel_profile_set_id_key(schakel_profile_t *p, const uint8_t key[32])
{
    memcpy(p->id_key, key, sizeof p->id_key);
    p->has_id_key = 1;
}

/* The start of every id the adapter derives: with the organisation's id
 * key (the adapter always sets one), no other organisation can compute
 * the id from the same columns and publish it first. */
void mapping_id_hash_init(schakel_sha256_t *h, const schakel_profile_t *p, const char *label, size_t len)
{
    schakel_sha256_init(h);
    schakel_sha256_update(h, label, len);
    if (p->has_id_key) schakel_sha256_update(h, p->id_key, sizeof p->id_key);
}

/* ---- the profile ---- */

const ProtobufCFieldDescriptor *mapping_path_field(const char *path)
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
        if (!ok)
            return schakel_fail(why, SCHAKEL_ECONFIG, "%s: unknown setting \"%s\" (one of: %s)", where, k,
                                allowed);
    }
    return 0;
}

static int check_spec(const char *path, json_t *spec, size_t i, char *why)
{
    char where[160];
    snprintf(where, sizeof where, "rows[%zu].fields.%s", i, path);
    if (!json_is_object(spec))
        return schakel_fail(why, SCHAKEL_ECONFIG, "%s: an object such as {\"column\": ...}", where);
    if (!mapping_path_field(path))
        return schakel_fail(why, SCHAKEL_ECONFIG, "%s: no such field (see docs/events.md)", where);
    if (only_keys(spec, "const column bsn id as age_from on date clock map split optional default omit",
                  where, why))
        return SCHAKEL_ECONFIG;
    int kinds = !!json_object_get(spec, "const") + !!json_object_get(spec, "column") +
                !!json_object_get(spec, "bsn") + !!json_object_get(spec, "id") +
                !!json_object_get(spec, "age_from") + json_is_true(json_object_get(spec, "omit"));
    if (kinds != 1)
        return schakel_fail(why, SCHAKEL_ECONFIG, "%s: exactly one of const, column, bsn, id, age_from, omit",
                            where);
    if (json_object_get(spec, "bsn") && strcmp(path, "subject") != 0)
        return schakel_fail(why, SCHAKEL_ECONFIG, "%s: a BSN may only become the subject", where);
    json_t *map = json_object_get(spec, "map");
    if (map && !json_is_object(map)) return schakel_fail(why, SCHAKEL_ECONFIG, "%s.map: an object", where);
    json_t *id = json_object_get(spec, "id");
    if (id && (!json_is_array(id) || !json_array_size(id)))
        return schakel_fail(why, SCHAKEL_ECONFIG, "%s.id: a list of columns", where);
    const char *date = json_string_value(json_object_get(spec, "date"));
    if (json_object_get(spec, "date") &&
        (!date || (strcmp(date, "dd-mm-yyyy") && strcmp(date, "d-m-yyyy") && strcmp(date, "dd/mm/yyyy") &&
                   strcmp(date, "yyyy-mm-dd") && strcmp(date, "yyyymmdd"))))
        return schakel_fail(why, SCHAKEL_ECONFIG,
                            "%s.date: dd-mm-yyyy, d-m-yyyy, dd/mm/yyyy, yyyy-mm-dd or yyyymmdd", where);
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
        return schakel_fail(why, SCHAKEL_ECONFIG,
                            "rows[%zu].fields.occurred_at: required, from a date "
                            "column: nothing may depend on the wall clock",
                            i);
    return 0;
}

schakel_profile_t *schakel_profile_parse(const char *text, size_t len, char *why)
{
    schakel_profile_t *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    json_error_t err;
    p->doc = json_loadb(text, len, 0, &err);
    if (!p->doc || !json_is_object(p->doc)) {
        schakel_fail(why, SCHAKEL_ECONFIG, "profile: line %d: %s", err.line,
                     p->doc ? "not an object" : err.text);
        goto fail;
    }
    if (only_keys(p->doc, "version kind source_system csv record_id defaults rows", "profile", why))
        goto fail;
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
        schakel_fail(why, SCHAKEL_ECONFIG,
                     "profile: \"record_id\": the columns that identify a record "
                     "in the source system (1 to %d)",
                     MAX_RECORD_ID);
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
