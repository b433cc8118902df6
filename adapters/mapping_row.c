/* Profile mapping, one row to one event: the first entry of the profile
 * whose "when" takes the row, the event id derived from the columns that
 * identify the record in the source system (so a file sent twice gives
 * the same ids), each field by its spec (mapping_fields.c), then the JSON
 * codec and the broker's own validation (lib/validate.c) before the event
 * is encoded. A rejected row's reason is scrubbed of anything that could
 * be a value before it leaves. Called by adapters/rows.c for every row
 * the readers (mapping_csv.c, mapping_jsonl.c) give. */
#include "mapping.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "codec.h"
#include "crypto.h"
#include "error.h"
#include "json.h"
#include "validate.h"
#include "mapping_impl.h"

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
        /* a value too long for buf is no code: cut short it could be one */
        if (mapping_value_len(row, col) >= sizeof buf) return 0;
        const char *v = mapping_value_of(row, col, buf, sizeof buf);
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
                       const schakel_row_t *row, uint8_t **out, size_t *outlen, uint8_t event_id[16],
                       char *why)
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
            const char *v = mapping_value_of(row, col, buf, sizeof buf);
            snprintf(what, sizeof what, " (column %s: %s)", col,
                     v ? "a code that no entry's when names" : "missing");
            break;
        }
        return schakel_fail(why, SCHAKEL_EINVAL, "no entry of the profile takes this row%s", what);
    }
    const char *longcol = mapping_long_column(p, e, row);
    if (longcol)
        return schakel_fail(why, SCHAKEL_EINVAL,
                            "column %s: longer than %d bytes: a value is never cut short (two records "
                            "would become one); shorten it in the export",
                            longcol, VALUE_MAX - 1);
    /* the record's id in the source system decides the event id */
    schakel_sha256_t h;
    mapping_id_hash_init(&h, p, "schakel/v1/adapter-event", 25);
    schakel_sha256_update(&h, org, strlen(org) + 1);
    schakel_sha256_update(&h, p->source_system, strlen(p->source_system) + 1);
    const char *tname = schakel_event_type_name(e->type);
    schakel_sha256_update(&h, tname, strlen(tname) + 1);
    for (size_t i = 0; i < p->n_record_id; i++) {
        char buf[VALUE_MAX];
        const char *v = mapping_value_of(row, p->record_id[i], buf, sizeof buf);
        if (!v || !v[0])
            return schakel_fail(why, SCHAKEL_EINVAL, "column %s: empty, and it identifies the record",
                                p->record_id[i]);
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
        json_t *v = mapping_field_value(&m, path, spec, &skip);
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
