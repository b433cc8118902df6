/* The directory of organisations: parsed strictly (an error names the
 * organisation and the field), immutable once loaded. Lookups are linear:
 * a region has tens to a few hundred organisations. */
#include "directory.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "codec.h"
#include "error.h"
#include "schakel/v1/common.pb-c.h"

struct schakel_directory {
    uint64_t version;
    schakel_org_t *orgs;
    size_t n;
};

static const char *const kinds[] = {NULL,       "school",      "smw",      "ggd",    "wijkteam",
                                    "ppo",      "veiligthuis", "gemeente", "service"};

int schakel_org_kind_parse(const char *name)
{
    for (int i = 1; i < (int)(sizeof kinds / sizeof kinds[0]); i++)
        if (!strcmp(kinds[i], name)) return i;
    return -1;
}

const char *schakel_org_kind_name(int kind)
{
    return kind > 0 && kind < (int)(sizeof kinds / sizeof kinds[0]) ? kinds[kind] : NULL;
}

static int parse_org(json_t *o, size_t i, schakel_org_t *org, char *why)
{
    const char *id = json_string_value(json_object_get(o, "id"));
    if (!json_is_object(o)) return schakel_fail(why, SCHAKEL_ECONFIG, "organisations[%zu]: not an object", i);
    if (!id || !schakel_id_valid(id))
        return schakel_fail(why, SCHAKEL_ECONFIG,
                            "organisations[%zu].id: missing or not a valid id (a-z 0-9 . _ / -)", i);
    snprintf(org->id, sizeof org->id, "%s", id);
    const char *key;
    json_t *v;
    json_object_foreach(o, key, v) {
        if (!strcmp(key, "id")) continue;
        if (!strcmp(key, "kind")) {
            org->kind = json_is_string(v) ? schakel_org_kind_parse(json_string_value(v)) : -1;
            if (org->kind < 0)
                return schakel_fail(why, SCHAKEL_ECONFIG,
                                    "organisations[%zu] (%s).kind: one of school smw ggd wijkteam "
                                    "ppo veiligthuis gemeente service", i, id);
        } else if (!strcmp(key, "name")) {
            if (!json_is_string(v))
                return schakel_fail(why, SCHAKEL_ECONFIG, "organisations[%zu] (%s).name: not a string", i, id);
            snprintf(org->name, sizeof org->name, "%s", json_string_value(v));
        } else if (!strcmp(key, "curve_public")) {
            uint8_t raw[32];
            const char *s = json_string_value(v);
            if (!s || strlen(s) != SCHAKEL_Z85_KEY_LEN || !zmq_z85_decode(raw, s))
                return schakel_fail(why, SCHAKEL_ECONFIG,
                                    "organisations[%zu] (%s).curve_public: 40 Z85 characters", i, id);
            memcpy(org->curve_public, s, SCHAKEL_Z85_KEY_LEN + 1);
        } else if (!strcmp(key, "sign_public")) {
            const char *s = json_string_value(v);
            if (!s || schakel_hex_decode(s, org->sign_public, 32) != 0)
                return schakel_fail(why, SCHAKEL_ECONFIG,
                                    "organisations[%zu] (%s).sign_public: 64 hex characters", i, id);
        } else if (!strcmp(key, "publish") || !strcmp(key, "rights")) {
            if (!json_is_array(v))
                return schakel_fail(why, SCHAKEL_ECONFIG, "organisations[%zu] (%s).%s: not a list", i, id, key);
            size_t j;
            json_t *e;
            json_array_foreach(v, j, e) {
                const char *s = json_string_value(e);
                if (!strcmp(key, "publish")) {
                    int t = s ? schakel_event_type_parse(s) : 0;
                    if (t <= 0 || t >= SCHAKEL_EVENT_TYPE_LIMIT)
                        return schakel_fail(why, SCHAKEL_ECONFIG,
                                            "organisations[%zu] (%s).publish[%zu]: unknown event type "
                                            "\"%s\" (see docs/events.md)", i, id, j, s ? s : "?");
                    org->may_publish[t] = 1;
                } else if (s && !strcmp(s, "read_all")) {
                    org->rights |= SCHAKEL_RIGHT_READ_ALL;
                } else if (s && !strcmp(s, "decide")) {
                    org->rights |= SCHAKEL_RIGHT_DECIDE;
                } else {
                    return schakel_fail(why, SCHAKEL_ECONFIG,
                                        "organisations[%zu] (%s).rights[%zu]: \"read_all\" or \"decide\"",
                                        i, id, j);
                }
            }
        } else {
            return schakel_fail(why, SCHAKEL_ECONFIG, "organisations[%zu] (%s): unknown field \"%s\"",
                                i, id, key);
        }
    }
    if (org->kind <= 0)
        return schakel_fail(why, SCHAKEL_ECONFIG, "organisations[%zu] (%s).kind: missing", i, id);
    if (!org->curve_public[0])
        return schakel_fail(why, SCHAKEL_ECONFIG, "organisations[%zu] (%s).curve_public: missing", i, id);
    static const uint8_t zero[32];
    if (!memcmp(org->sign_public, zero, 32))
        return schakel_fail(why, SCHAKEL_ECONFIG, "organisations[%zu] (%s).sign_public: missing", i, id);
    return 0;
}

schakel_directory_t *schakel_directory_parse(const char *text, size_t len, char *why)
{
    json_error_t err;
    json_t *doc = json_loadb(text, len, 0, &err);
    if (!doc || !json_is_object(doc)) {
        schakel_fail(why, SCHAKEL_ECONFIG, "directory: line %d: %s", err.line,
                     doc ? "not a JSON object" : err.text);
        json_decref(doc);
        return NULL;
    }
    schakel_directory_t *d = calloc(1, sizeof *d);
    json_t *ver = json_object_get(doc, "version");
    json_t *orgs = json_object_get(doc, "organisations");
    if (!d) goto fail;
    if (!json_is_integer(ver) || json_integer_value(ver) <= 0) {
        schakel_fail(why, SCHAKEL_ECONFIG, "directory.version: a positive whole number is needed");
        goto fail;
    }
    d->version = (uint64_t)json_integer_value(ver);
    if (!json_is_array(orgs)) {
        schakel_fail(why, SCHAKEL_ECONFIG, "directory.organisations: a list is needed");
        goto fail;
    }
    d->n = json_array_size(orgs);
    d->orgs = calloc(d->n ? d->n : 1, sizeof *d->orgs);
    if (!d->orgs) goto fail;
    for (size_t i = 0; i < d->n; i++) {
        if (parse_org(json_array_get(orgs, i), i, &d->orgs[i], why) != 0) goto fail;
        for (size_t j = 0; j < i; j++) {
            if (!strcmp(d->orgs[j].id, d->orgs[i].id)) {
                schakel_fail(why, SCHAKEL_ECONFIG, "organisations[%zu]: id %s is listed twice", i,
                             d->orgs[i].id);
                goto fail;
            }
            if (!strcmp(d->orgs[j].curve_public, d->orgs[i].curve_public)) {
                schakel_fail(why, SCHAKEL_ECONFIG,
                             "organisations[%zu] (%s).curve_public: the same key as %s", i,
                             d->orgs[i].id, d->orgs[j].id);
                goto fail;
            }
        }
    }
    json_decref(doc);
    return d;
fail:
    json_decref(doc);
    schakel_directory_destroy(&d);
    return NULL;
}

schakel_directory_t *schakel_directory_load(const char *path, char *why)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        schakel_fail(why, SCHAKEL_EIO, "%s: cannot be opened", path);
        return NULL;
    }
    char *buf = NULL;
    size_t cap = 0, len = 0, n;
    do {
        if (len + 65536 > cap) {
            char *nb = realloc(buf, cap = (cap ? cap * 2 : 65536) + 65536);
            if (!nb) break;
            buf = nb;
        }
        n = fread(buf + len, 1, cap - len, f);
        len += n;
    } while (n > 0 && len < (64u << 20));
    fclose(f);
    schakel_directory_t *d = buf ? schakel_directory_parse(buf, len, why) : NULL;
    free(buf);
    if (!d && why) {
        char inner[SCHAKEL_ERRLEN];
        snprintf(inner, sizeof inner, "%s", why);
        schakel_fail(why, SCHAKEL_ECONFIG, "%s: %s", path, inner);
    }
    return d;
}

void schakel_directory_destroy(schakel_directory_t **self_p)
{
    if (!*self_p) return;
    free((*self_p)->orgs);
    free(*self_p);
    *self_p = NULL;
}

uint64_t schakel_directory_version(const schakel_directory_t *d)
{
    return d->version;
}

size_t schakel_directory_count(const schakel_directory_t *d)
{
    return d->n;
}

const schakel_org_t *schakel_directory_at(const schakel_directory_t *d, size_t i)
{
    return i < d->n ? &d->orgs[i] : NULL;
}

const schakel_org_t *schakel_directory_by_id(const schakel_directory_t *d, const char *id)
{
    for (size_t i = 0; d && i < d->n; i++)
        if (!strcmp(d->orgs[i].id, id)) return &d->orgs[i];
    return NULL;
}

const schakel_org_t *schakel_directory_by_curve(const schakel_directory_t *d, const char *z85)
{
    for (size_t i = 0; d && i < d->n; i++)
        if (!strcmp(d->orgs[i].curve_public, z85)) return &d->orgs[i];
    return NULL;
}
