/* The directory, parsing: a directory document (a file at start-up, or
 * the document_json of a directory_update the broker is about to install)
 * becomes a schakel_directory_t. Strict: unknown fields, duplicate keys,
 * duplicate ids or keys are errors, every organisation a section names
 * must be listed with the right kind, and an error names the organisation
 * and the field. Least privilege is refused here, not at use. The lookups
 * on the result are in directory.c. */
#include "directory.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "calendar.h"
#include "codec.h"
#include "error.h"
#include "fileio.h"
#include "schakel/v1/common.pb-c.h"
#include "validate.h"
#include "directory_impl.h"

static const char *right_name(unsigned right)
{
    switch (right) {
    case SCHAKEL_RIGHT_READ_ALL: return "read_all";
    case SCHAKEL_RIGHT_DECIDE: return "decide";
    case SCHAKEL_RIGHT_DIRECTORY: return "directory";
    default: return "clock";
    }
}

/* Least privilege (docs/operations.md): an organisation that holds data
 * about children may read only its own stream and never decide, change the
 * directory or move time; the directory right belongs to an administration
 * identity that has no other right and publishes nothing but
 * directory_update. */
static int check_rights(const schakel_org_t *org, size_t i, char *why)
{
    const char *kind = schakel_org_kind_name(org->kind);
    for (unsigned r = 1; r <= SCHAKEL_RIGHT_CLOCK; r <<= 1) {
        if (!(org->rights & r)) continue;
        if (schakel_org_kind_data_holding(org->kind))
            return schakel_fail(why, SCHAKEL_ECONFIG,
                                "organisations[%zu] (%s).rights: a %s holds data about children and "
                                "may not have \"%s\"; give it to a service or an admin identity",
                                i, org->id, kind, right_name(r));
        if (r == SCHAKEL_RIGHT_DIRECTORY && org->kind != SCHAKEL_ORG_KIND_ADMIN)
            return schakel_fail(why, SCHAKEL_ECONFIG,
                                "organisations[%zu] (%s).rights: only an organisation of kind "
                                "\"admin\" may have \"directory\"",
                                i, org->id);
        if (r != SCHAKEL_RIGHT_DIRECTORY && org->kind == SCHAKEL_ORG_KIND_ADMIN)
            return schakel_fail(why, SCHAKEL_ECONFIG,
                                "organisations[%zu] (%s).rights: an admin may have only "
                                "\"directory\", not \"%s\"",
                                i, org->id, right_name(r));
    }
    /* what the bus's services decide and the bus itself records is never a
     * data holder's to publish; its adapter's health is */
    for (int t = SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_ROUTING_DECISION;
         schakel_org_kind_data_holding(org->kind) && t < SCHAKEL_EVENT_TYPE_LIMIT; t++)
        if (org->may_publish[t] && t != SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_ADAPTER_STATUS)
            return schakel_fail(why, SCHAKEL_ECONFIG,
                                "organisations[%zu] (%s).publish: a %s holds data about children and may "
                                "not publish %s: only the bus's services and the bus itself do",
                                i, org->id, kind, schakel_event_type_name(t));
    for (int t = 1; org->kind == SCHAKEL_ORG_KIND_ADMIN && t < SCHAKEL_EVENT_TYPE_LIMIT; t++)
        if (org->may_publish[t] && t != SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_DIRECTORY_UPDATE)
            return schakel_fail(why, SCHAKEL_ECONFIG,
                                "organisations[%zu] (%s).publish: an admin may publish only "
                                "directory_update, not %s",
                                i, org->id, schakel_event_type_name(t));
    return 0;
}

static int parse_org(json_t *o, size_t i, schakel_org_t *org, unsigned flags, char *why)
{
    const char *id = json_string_value(json_object_get(o, "id"));
    if (!json_is_object(o)) return schakel_fail(why, SCHAKEL_ECONFIG, "organisations[%zu]: not an object", i);
    if (!id || !schakel_id_valid(id))
        return schakel_fail(why, SCHAKEL_ECONFIG,
                            "organisations[%zu].id: missing or not a valid id (a-z 0-9 . _ / -)", i);
    if (!strcmp(id, "broker")) /* the broker's own events are published as "broker" */
        return schakel_fail(why, SCHAKEL_ECONFIG,
                            "organisations[%zu].id: \"broker\" is reserved for the broker itself: "
                            "choose another id",
                            i);
    snprintf(org->id, sizeof org->id, "%s", id);
    const char *key;
    json_t *v;
    json_object_foreach(o, key, v) {
        if (!strcmp(key, "id")) continue;
        if (!strcmp(key, "kind")) {
            const char *k = json_string_value(v);
            org->kind = !k ? -1 : !strcmp(k, "admin") ? SCHAKEL_ORG_KIND_ADMIN : schakel_org_kind_parse(k);
            if (org->kind < 0)
                return schakel_fail(why, SCHAKEL_ECONFIG,
                                    "organisations[%zu] (%s).kind: one of school smw ggd wijkteam "
                                    "ppo veiligthuis gemeente leerplicht service admin",
                                    i, id);
        } else if (!strcmp(key, "name")) {
            if (!json_is_string(v) || json_string_length(v) >= sizeof org->name)
                return schakel_fail(why, SCHAKEL_ECONFIG,
                                    "organisations[%zu] (%s).name: a string of "
                                    "at most %zu bytes",
                                    i, id, sizeof org->name - 1);
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
                return schakel_fail(why, SCHAKEL_ECONFIG, "organisations[%zu] (%s).%s: not a list", i, id,
                                    key);
            size_t j;
            json_t *e;
            json_array_foreach(v, j, e) {
                const char *s = json_string_value(e);
                if (!strcmp(key, "publish")) {
                    int t = s ? schakel_event_type_parse(s) : 0;
                    if (t <= 0 || t >= SCHAKEL_EVENT_TYPE_LIMIT)
                        return schakel_fail(why, SCHAKEL_ECONFIG,
                                            "organisations[%zu] (%s).publish[%zu]: unknown event type "
                                            "\"%s\" (see docs/events.md)",
                                            i, id, j, s ? s : "?");
                    if (t == SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_RULES_UPDATE)
                        return schakel_fail(why, SCHAKEL_ECONFIG,
                                            "organisations[%zu] (%s).publish[%zu]: no organisation may "
                                            "publish rules_update: the bus puts the node's rule files on "
                                            "the log itself (docs/operations.md)",
                                            i, id, j);
                    org->may_publish[t] = 1;
                } else if (s && !strcmp(s, "read_all")) {
                    org->rights |= SCHAKEL_RIGHT_READ_ALL;
                } else if (s && !strcmp(s, "decide")) {
                    org->rights |= SCHAKEL_RIGHT_DECIDE;
                } else if (s && !strcmp(s, "directory")) {
                    org->rights |= SCHAKEL_RIGHT_DIRECTORY;
                } else if (s && !strcmp(s, "clock")) {
                    org->rights |= SCHAKEL_RIGHT_CLOCK;
                } else {
                    return schakel_fail(why, SCHAKEL_ECONFIG,
                                        "organisations[%zu] (%s).rights[%zu]: \"read_all\", "
                                        "\"decide\", \"directory\" or \"clock\"",
                                        i, id, j);
                }
            }
        } else if (!strcmp(key, "escalation")) {
            const char *e = json_string_value(v);
            if (!e || !schakel_id_valid(e))
                return schakel_fail(why, SCHAKEL_ECONFIG,
                                    "organisations[%zu] (%s).escalation: an organisation id", i, id);
            snprintf(org->escalation, sizeof org->escalation, "%s", e);
        } else {
            return schakel_fail(why, SCHAKEL_ECONFIG, "organisations[%zu] (%s): unknown field \"%s\"", i, id,
                                key);
        }
    }
    if (org->kind <= 0)
        return schakel_fail(why, SCHAKEL_ECONFIG, "organisations[%zu] (%s).kind: missing", i, id);
    if (!org->curve_public[0])
        return schakel_fail(why, SCHAKEL_ECONFIG, "organisations[%zu] (%s).curve_public: missing", i, id);
    static const uint8_t zero[32];
    if (!memcmp(org->sign_public, zero, 32))
        return schakel_fail(why, SCHAKEL_ECONFIG, "organisations[%zu] (%s).sign_public: missing", i, id);
    return flags & SCHAKEL_DIRECTORY_HISTORY ? 0 : check_rights(org, i, why);
}

/* An organisation reference at `where`: must be listed, and of kind `kind`
 * unless kind is 0. Copies it to out. */
static int org_ref(const schakel_directory_t *d, json_t *v, int kind, char out[SCHAKEL_ID_MAX],
                   const char *where, char *why)
{
    const char *id = json_string_value(v);
    const schakel_org_t *o = id ? schakel_directory_by_id(d, id) : NULL;
    if (!o)
        return schakel_fail(why, SCHAKEL_ECONFIG, "%s: \"%s\" is not an organisation listed here", where,
                            id ? id : "?");
    if (kind && o->kind != kind)
        return schakel_fail(why, SCHAKEL_ECONFIG, "%s: %s is a %s, not a %s", where, id,
                            schakel_org_kind_name(o->kind), schakel_org_kind_name(kind));
    snprintf(out, SCHAKEL_ID_MAX, "%s", id);
    return 0;
}

/* A leerplicht office at `where`: of kind leerplicht. A document already on
 * the log may name a gemeente: it was written before leerplicht was a kind
 * of its own, and replay must read it as it was. */
static int leerplicht_ref(const schakel_directory_t *d, json_t *v, char out[SCHAKEL_ID_MAX],
                          const char *where, char *why)
{
    const char *id = json_string_value(v);
    const schakel_org_t *o = id ? schakel_directory_by_id(d, id) : NULL;
    if ((d->flags & SCHAKEL_DIRECTORY_HISTORY) && o && o->kind == SCHAKEL__V1__ORG_KIND__ORG_KIND_GEMEENTE)
        return org_ref(d, v, SCHAKEL__V1__ORG_KIND__ORG_KIND_GEMEENTE, out, where, why);
    if (o && o->kind == SCHAKEL__V1__ORG_KIND__ORG_KIND_GEMEENTE)
        return schakel_fail(why, SCHAKEL_ECONFIG,
                            "%s: %s is a gemeente, not a leerplicht: a leerplicht office is an "
                            "organisation of kind \"leerplicht\" (the municipality's youth care "
                            "stays a gemeente, and a consent for the gemeente does not reach it)",
                            where, id);
    return org_ref(d, v, SCHAKEL__V1__ORG_KIND__ORG_KIND_LEERPLICHT, out, where, why);
}

static int parse_school(schakel_directory_t *d, json_t *o, size_t i, schakel_school_t *sc, char *why)
{
    char where[96];
    if (!json_is_object(o)) return schakel_fail(why, SCHAKEL_ECONFIG, "schools[%zu]: not an object", i);
    const char *key;
    json_t *v;
    json_object_foreach(o, key, v) {
        snprintf(where, sizeof where, "schools[%zu].%s", i, key);
        if (!strcmp(key, "brinvest")) {
            const char *b = json_string_value(v);
            if (!b || !schakel_brinvest_valid(b))
                return schakel_fail(why, SCHAKEL_ECONFIG, "%s: a BRINVEST code such as 12AB00", where);
            snprintf(sc->brinvest, sizeof sc->brinvest, "%s", b);
        } else if (!strcmp(key, "org")) {
            if (org_ref(d, v, SCHAKEL__V1__ORG_KIND__ORG_KIND_SCHOOL, sc->org, where, why))
                return SCHAKEL_ECONFIG;
        } else if (!strcmp(key, "district")) {
            const char *c = json_string_value(v);
            if (!c || !schakel_id_valid(c))
                return schakel_fail(why, SCHAKEL_ECONFIG, "%s: a district code (a-z 0-9 . _ / -)", where);
            snprintf(sc->district, sizeof sc->district, "%s", c);
        } else if (!strcmp(key, "wijkteam_override")) {
            if (org_ref(d, v, SCHAKEL__V1__ORG_KIND__ORG_KIND_WIJKTEAM, sc->wijkteam_override, where, why))
                return SCHAKEL_ECONFIG;
        } else if (!strcmp(key, "team")) {
            if (!json_is_object(v)) return schakel_fail(why, SCHAKEL_ECONFIG, "%s: an object", where);
            const char *k2;
            json_t *v2;
            json_object_foreach(v, k2, v2) {
                int kind = schakel_org_kind_parse(k2);
                snprintf(where, sizeof where, "schools[%zu].team.%s", i, k2);
                if (kind <= 0 || !schakel_org_kind_data_holding(kind))
                    return schakel_fail(why, SCHAKEL_ECONFIG, "%s: not an organisation kind", where);
                if (org_ref(d, v2, kind, sc->team[kind], where, why)) return SCHAKEL_ECONFIG;
            }
        } else {
            return schakel_fail(why, SCHAKEL_ECONFIG, "schools[%zu]: unknown field \"%s\"", i, key);
        }
    }
    if (!sc->brinvest[0]) return schakel_fail(why, SCHAKEL_ECONFIG, "schools[%zu].brinvest: missing", i);
    for (size_t j = 0; j < i; j++)
        if (!strcmp(d->schools[j].brinvest, sc->brinvest))
            return schakel_fail(why, SCHAKEL_ECONFIG, "schools[%zu]: %s is listed twice", i, sc->brinvest);
    return 0;
}

/* municipalities: [{"code": <municipality>, "leerplicht": <leerplicht org>,
 * "districts": [<district>, ...]}]; a district lies in one municipality. */
static int parse_municipalities(schakel_directory_t *d, json_t *v, char *why)
{
    const char *form = "{\"code\": <municipality>, \"leerplicht\": <org>, \"districts\": [<district>, ...]}";
    if (!json_is_array(v)) return schakel_fail(why, SCHAKEL_ECONFIG, "directory.municipalities: a list");
    size_t n_in = 0, i;
    json_t *e;
    json_array_foreach(v, i, e) n_in += json_array_size(json_object_get(e, "districts"));
    d->municipalities = calloc(json_array_size(v) + 1, sizeof *d->municipalities);
    d->district_in = calloc(n_in + 1, sizeof *d->district_in);
    if (!d->municipalities || !d->district_in) return SCHAKEL_ENOMEM;
    json_array_foreach(v, i, e) {
        char where[64];
        const char *code = json_string_value(json_object_get(e, "code"));
        json_t *ds = json_object_get(e, "districts");
        if (!json_is_object(e) || !code || !schakel_id_valid(code) || !json_is_array(ds) ||
            !json_object_get(e, "leerplicht") || json_object_size(e) != 3)
            return schakel_fail(why, SCHAKEL_ECONFIG, "municipalities[%zu]: %s", i, form);
        municipality_t *m = &d->municipalities[d->n_municipalities++];
        snprintf(m->code, sizeof m->code, "%s", code);
        snprintf(where, sizeof where, "municipalities[%zu].leerplicht", i);
        if (leerplicht_ref(d, json_object_get(e, "leerplicht"), m->leerplicht, where, why))
            return SCHAKEL_ECONFIG;
        for (size_t j = 0; j + 1 < d->n_municipalities; j++)
            if (!strcmp(d->municipalities[j].code, code))
                return schakel_fail(why, SCHAKEL_ECONFIG, "municipalities[%zu]: %s is listed twice", i, code);
        size_t k;
        json_t *dc;
        json_array_foreach(ds, k, dc) {
            const char *c = json_string_value(dc);
            if (!c || !schakel_id_valid(c))
                return schakel_fail(why, SCHAKEL_ECONFIG,
                                    "municipalities[%zu].districts[%zu]: a district "
                                    "code (a-z 0-9 . _ / -)",
                                    i, k);
            for (size_t j = 0; j < d->n_district_in; j++)
                if (!strcmp(d->district_in[j].district, c))
                    return schakel_fail(why, SCHAKEL_ECONFIG,
                                        "municipalities[%zu].districts[%zu]: %s is "
                                        "already in municipality %s",
                                        i, k, c, d->municipalities[d->district_in[j].municipality].code);
            district_in_t *di = &d->district_in[d->n_district_in++];
            snprintf(di->district, sizeof di->district, "%s", c);
            di->municipality = d->n_municipalities - 1;
        }
    }
    return 0;
}

/* The routing sections: schools, districts, municipalities, region. All
 * optional. */
static int parse_region(schakel_directory_t *d, json_t *doc, char *why)
{
    const char *key;
    json_t *v;
    json_object_foreach(doc, key, v) {
        if (!strcmp(key, "version") || !strcmp(key, "organisations")) continue;
        if (!strcmp(key, "schools")) {
            if (!json_is_array(v)) return schakel_fail(why, SCHAKEL_ECONFIG, "directory.schools: a list");
            d->schools = calloc(json_array_size(v) + 1, sizeof *d->schools);
            if (!d->schools) return SCHAKEL_ENOMEM;
            for (size_t i = 0; i < json_array_size(v); i++, d->n_schools++)
                if (parse_school(d, json_array_get(v, i), i, &d->schools[i], why)) return SCHAKEL_ECONFIG;
        } else if (!strcmp(key, "districts")) {
            if (!json_is_array(v)) return schakel_fail(why, SCHAKEL_ECONFIG, "directory.districts: a list");
            d->districts = calloc(json_array_size(v) + 1, sizeof *d->districts);
            if (!d->districts) return SCHAKEL_ENOMEM;
            size_t i;
            json_t *e;
            json_array_foreach(v, i, e) {
                char where[64];
                snprintf(where, sizeof where, "districts[%zu].wijkteam", i);
                const char *code = json_string_value(json_object_get(e, "code"));
                if (!code || !schakel_id_valid(code) || json_object_size(e) != 2)
                    return schakel_fail(why, SCHAKEL_ECONFIG,
                                        "districts[%zu]: {\"code\": <district>, \"wijkteam\": <org>}", i);
                district_t *di = &d->districts[d->n_districts++];
                snprintf(di->code, sizeof di->code, "%s", code);
                if (org_ref(d, json_object_get(e, "wijkteam"), SCHAKEL__V1__ORG_KIND__ORG_KIND_WIJKTEAM,
                            di->wijkteam, where, why))
                    return SCHAKEL_ECONFIG;
                for (size_t j = 0; j + 1 < d->n_districts; j++)
                    if (!strcmp(d->districts[j].code, code))
                        return schakel_fail(why, SCHAKEL_ECONFIG, "districts[%zu]: %s is listed twice", i,
                                            code);
            }
        } else if (!strcmp(key, "municipalities")) {
            if (parse_municipalities(d, v, why)) return SCHAKEL_ECONFIG;
        } else if (!strcmp(key, "holidays")) {
            if (schakel_decree_days_from_json(v, &d->decree, "directory.holidays", why))
                return SCHAKEL_ECONFIG;
        } else if (!strcmp(key, "region")) {
            const char *k2;
            json_t *v2;
            if (!json_is_object(v)) return schakel_fail(why, SCHAKEL_ECONFIG, "directory.region: an object");
            json_object_foreach(v, k2, v2) {
                char where[64];
                snprintf(where, sizeof where, "region.%s", k2);
                if (!strcmp(k2, "veiligthuis")) {
                    if (org_ref(d, v2, SCHAKEL__V1__ORG_KIND__ORG_KIND_VEILIGTHUIS, d->veiligthuis, where,
                                why))
                        return SCHAKEL_ECONFIG;
                } else if (!strcmp(k2, "leerplicht")) {
                    if (leerplicht_ref(d, v2, d->leerplicht, where, why)) return SCHAKEL_ECONFIG;
                } else {
                    return schakel_fail(why, SCHAKEL_ECONFIG, "%s: \"veiligthuis\" or \"leerplicht\"", where);
                }
            }
        } else {
            return schakel_fail(why, SCHAKEL_ECONFIG, "directory: unknown field \"%s\"", key);
        }
    }
    for (size_t i = 0; i < d->n; i++) {
        char where[128]; /* room for 20 digits and an id of SCHAKEL_ID_MAX */
        snprintf(where, sizeof where, "organisations[%zu] (%s).escalation", i, d->orgs[i].id);
        if (d->orgs[i].escalation[0] && !schakel_directory_by_id(d, d->orgs[i].escalation))
            return schakel_fail(why, SCHAKEL_ECONFIG, "%s: %s is not listed here", where,
                                d->orgs[i].escalation);
    }
    return 0;
}

/* Orders indices of the directory's organisations (arg) by id, or by
 * CURVE key; ties by position. */
static int by_position(size_t x, size_t y, int c)
{
    return c ? c : (x > y) - (x < y);
}

static int cmp_id(const void *a, const void *b, void *arg)
{
    const schakel_org_t *o = ((const schakel_directory_t *)arg)->orgs;
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return by_position(x, y, strcmp(o[x].id, o[y].id));
}

static int cmp_curve(const void *a, const void *b, void *arg)
{
    const schakel_org_t *o = ((const schakel_directory_t *)arg)->orgs;
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return by_position(x, y, strcmp(o[x].curve_public, o[y].curve_public));
}

/* The organisations in id order (d->by_id), and no id or CURVE key twice:
 * sorting finds both in n log n, so a large directory costs no quadratic
 * time. The error names the first organisation (in list order) that
 * repeats an earlier one, as a scan in order would. */
static int index_orgs(schakel_directory_t *d, char *why)
{
    size_t n = d->n, *by_curve = calloc(n ? n : 1, sizeof *by_curve);
    d->by_id = calloc(n ? n : 1, sizeof *d->by_id);
    if (!d->by_id || !by_curve) {
        free(by_curve);
        return SCHAKEL_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) d->by_id[i] = by_curve[i] = i;
    qsort_r(d->by_id, n, sizeof *d->by_id, cmp_id, d);
    qsort_r(by_curve, n, sizeof *by_curve, cmp_curve, d);
    size_t id_at = n, curve_at = n, curve_first = 0; /* the later one of the first repeat found */
    for (size_t k = 1; k < n; k++) {
        size_t a = d->by_id[k - 1], b = d->by_id[k];
        if (!strcmp(d->orgs[a].id, d->orgs[b].id) && b < id_at) id_at = b;
        a = by_curve[k - 1], b = by_curve[k];
        if (!strcmp(d->orgs[a].curve_public, d->orgs[b].curve_public) && b < curve_at) {
            curve_at = b;
            curve_first = a;
        }
    }
    free(by_curve);
    /* no id under another's: a cursor is kept under org/consumer/stream,
     * and "a" with consumer "b" must not meet "a/b" (docs/protocol.md) */
    for (size_t i = 0; i < n && id_at == n && curve_at == n; i++) {
        const char *id = d->orgs[i].id;
        for (const char *slash = strchr(id, '/'); slash; slash = strchr(slash + 1, '/')) {
            size_t lo = 0, hi = n, plen = (size_t)(slash - id);
            while (lo < hi) { /* the first id not below the prefix */
                size_t mid = (lo + hi) / 2;
                if (strncmp(d->orgs[d->by_id[mid]].id, id, plen) < 0) lo = mid + 1;
                else hi = mid;
            }
            const char *at = lo < n ? d->orgs[d->by_id[lo]].id : "";
            if (strlen(at) == plen && !strncmp(at, id, plen))
                return schakel_fail(why, SCHAKEL_ECONFIG,
                                    "organisations[%zu].id: %s is under the id of %s: choose an id that "
                                    "does not start with another organisation's id and '/'",
                                    i, id, at);
        }
    }
    if (id_at < n && id_at <= curve_at)
        return schakel_fail(why, SCHAKEL_ECONFIG, "organisations[%zu]: id %s is listed twice", id_at,
                            d->orgs[id_at].id);
    if (curve_at < n)
        return schakel_fail(why, SCHAKEL_ECONFIG, "organisations[%zu] (%s).curve_public: the same key as %s",
                            curve_at, d->orgs[curve_at].id, d->orgs[curve_first].id);
    return 0;
}

schakel_directory_t *schakel_directory_parse(const char *text, size_t len, char *why)
{
    return schakel_directory_parse_with(text, len, 0, why);
}

schakel_directory_t *schakel_directory_parse_with(const char *text, size_t len, unsigned flags, char *why)
{
    json_error_t err;
    json_t *doc = json_loadb(text, len, JSON_REJECT_DUPLICATES, &err);
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
    d->flags = flags;
    if (!json_is_array(orgs)) {
        schakel_fail(why, SCHAKEL_ECONFIG, "directory.organisations: a list is needed");
        goto fail;
    }
    d->n = json_array_size(orgs);
    d->orgs = calloc(d->n ? d->n : 1, sizeof *d->orgs);
    if (!d->orgs) goto fail;
    for (size_t i = 0; i < d->n; i++)
        if (parse_org(json_array_get(orgs, i), i, &d->orgs[i], flags, why) != 0) goto fail;
    if (index_orgs(d, why) != 0) goto fail;
    if (parse_region(d, doc, why) != 0) goto fail;
    schakel_sha256(text, len, d->hash);
    d->text = strndup(text, len);
    if (!d->text) goto fail;
    json_decref(doc);
    return d;
fail:
    json_decref(doc);
    schakel_directory_destroy(&d);
    return NULL;
}

schakel_directory_t *schakel_directory_load(const char *path, char *why)
{
    size_t len;
    char *buf = schakel_file_read(path, 64u << 20, &len);
    if (!buf) {
        schakel_fail(why, SCHAKEL_EIO, "%s: cannot be read", path);
        return NULL;
    }
    schakel_directory_t *d = schakel_directory_parse(buf, len, why);
    free(buf);
    if (!d && why) {
        char inner[SCHAKEL_ERRLEN];
        snprintf(inner, sizeof inner, "%s", why);
        schakel_fail(why, SCHAKEL_ECONFIG, "%s: %s", path, inner);
    }
    return d;
}
