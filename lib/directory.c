/* The directory of organisations, once parsed (directory_parse.c): the
 * names of organisation kinds, lookups by id, CURVE key (the broker's ZAP
 * handler), school, district and municipality (routing), and the check of
 * the organisations a published event names (the broker's checker).
 * Lookups are linear: a region has tens to a few hundred organisations. */
#include "directory.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "error.h"
#include "schakel/v1/common.pb-c.h"
#include "directory_impl.h"

/* Indexed by kind; "admin" (SCHAKEL_ORG_KIND_ADMIN) is the directory's own
 * and never an OrgKind on the wire. */
static const char *const kinds[] = {NULL,          "school",   "smw",     "ggd",        "wijkteam", "ppo",
                                    "veiligthuis", "gemeente", "service", "leerplicht", "admin"};

int schakel_org_kind_parse(const char *name)
{
    for (int i = 1; i < SCHAKEL_ORG_KINDS; i++)
        if (!strcmp(kinds[i], name)) return i;
    return -1;
}

int schakel_org_kind_data_holding(int kind)
{
    return (kind >= SCHAKEL__V1__ORG_KIND__ORG_KIND_SCHOOL &&
            kind <= SCHAKEL__V1__ORG_KIND__ORG_KIND_GEMEENTE) ||
           kind == SCHAKEL__V1__ORG_KIND__ORG_KIND_LEERPLICHT;
}

const char *schakel_org_kind_name(int kind)
{
    return kind > 0 && kind < (int)(sizeof kinds / sizeof kinds[0]) ? kinds[kind] : NULL;
}

const schakel_decree_days_t *schakel_directory_decree_days(const schakel_directory_t *d)
{
    return &d->decree;
}

void schakel_directory_destroy(schakel_directory_t **self_p)
{
    if (!*self_p) return;
    free((*self_p)->orgs);
    free((*self_p)->by_id);
    free((*self_p)->schools);
    free((*self_p)->text);
    free((*self_p)->districts);
    free((*self_p)->municipalities);
    free((*self_p)->district_in);
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
    size_t lo = 0, hi = d && d->by_id ? d->n : 0;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const schakel_org_t *o = &d->orgs[d->by_id[mid]];
        int c = strcmp(o->id, id);
        if (c == 0) return o;
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}

const schakel_org_t *schakel_directory_by_curve(const schakel_directory_t *d, const char *z85)
{
    for (size_t i = 0; d && i < d->n; i++)
        if (!strcmp(d->orgs[i].curve_public, z85)) return &d->orgs[i];
    return NULL;
}

const schakel_school_t *schakel_directory_school(const schakel_directory_t *d, const char *brinvest)
{
    for (size_t i = 0; d && i < d->n_schools; i++)
        if (!strcmp(d->schools[i].brinvest, brinvest)) return &d->schools[i];
    return NULL;
}

const schakel_school_t *schakel_directory_school_of(const schakel_directory_t *d, const char *org)
{
    for (size_t i = 0; d && i < d->n_schools; i++)
        if (d->schools[i].org[0] && !strcmp(d->schools[i].org, org)) return &d->schools[i];
    return NULL;
}

const char *schakel_directory_district_wijkteam(const schakel_directory_t *d, const char *district)
{
    for (size_t i = 0; d && i < d->n_districts; i++)
        if (!strcmp(d->districts[i].code, district)) return d->districts[i].wijkteam;
    return NULL;
}

/* One organisation the publisher named in field; want_kind: the kind it
 * must have (0: any). The text of a name that is not listed is never
 * repeated: it came from the publisher. */
static int check_named(const schakel_directory_t *d, const schakel_org_t *from, const char *id,
                       const char *field, int want_kind, char *why)
{
    const schakel_org_t *o = schakel_directory_by_id(d, id);
    const int school = SCHAKEL__V1__ORG_KIND__ORG_KIND_SCHOOL;
    if (!o) return schakel_fail(why, SCHAKEL_EINVAL, "%s: not an organisation in the directory", field);
    if (o == from) return 0;
    if (o->kind == SCHAKEL_ORG_KIND_ADMIN)
        return schakel_fail(why, SCHAKEL_EINVAL, "%s: %s keeps the directory and receives no events", field,
                            o->id);
    if (from->kind == school && o->kind == school)
        return schakel_fail(why, SCHAKEL_EINVAL, "%s: a school may not name another school (%s)", field,
                            o->id);
    if (want_kind && o->kind != want_kind)
        return schakel_fail(why, SCHAKEL_EINVAL, "%s: %s is a %s, not the %s that to_kind names", field,
                            o->id, schakel_org_kind_name(o->kind),
                            schakel_org_kind_name(want_kind) ? schakel_org_kind_name(want_kind) : "kind");
    return 0;
}

int schakel_directory_check_named(const schakel_directory_t *d, const schakel_org_t *from,
                                  const schakel_envelope_t *env, char *why)
{
    char field[48]; /* "addressees[" 20 digits "]" */
    for (size_t i = 0; i < env->n_addressees; i++) {
        snprintf(field, sizeof field, "addressees[%zu]", i);
        if (env->addressees[i][0] && check_named(d, from, env->addressees[i], field, 0, why))
            return SCHAKEL_EINVAL;
    }
    if (env->body_case == SCHAKEL__V1__ENVELOPE__BODY_REFERRAL && env->referral->to_org[0])
        return check_named(d, from, env->referral->to_org, "referral.to_org", (int)env->referral->to_kind,
                           why);
    if (env->body_case == SCHAKEL__V1__ENVELOPE__BODY_CONSENT_GIVEN && env->consent_given->recipient_org[0])
        return check_named(d, from, env->consent_given->recipient_org, "consent_given.recipient_org", 0, why);
    return 0;
}

size_t schakel_directory_count_right(const schakel_directory_t *d, unsigned right)
{
    size_t n = 0;
    for (size_t i = 0; d && i < d->n; i++)
        if (d->orgs[i].rights & right) n++;
    return n;
}

const char *schakel_directory_veiligthuis(const schakel_directory_t *d)
{
    return d->veiligthuis;
}

const char *schakel_directory_leerplicht(const schakel_directory_t *d)
{
    return d->leerplicht;
}

size_t schakel_directory_municipality_count(const schakel_directory_t *d)
{
    return d ? d->n_municipalities : 0;
}

const char *schakel_directory_district_municipality(const schakel_directory_t *d, const char *district)
{
    for (size_t i = 0; d && i < d->n_district_in; i++)
        if (!strcmp(d->district_in[i].district, district))
            return d->municipalities[d->district_in[i].municipality].code;
    return NULL;
}

const char *schakel_directory_municipality_leerplicht(const schakel_directory_t *d, const char *code)
{
    for (size_t i = 0; d && i < d->n_municipalities; i++)
        if (!strcmp(d->municipalities[i].code, code)) return d->municipalities[i].leerplicht;
    return NULL;
}

const char *schakel_directory_home_leerplicht(const schakel_directory_t *d, const char *municipality,
                                              const char *district, const char **reason)
{
    *reason = NULL;
    if (!d) return NULL;
    if (!d->n_municipalities) return d->leerplicht[0] ? d->leerplicht : NULL;
    const char *o = NULL;
    if (municipality && municipality[0]) {
        if (!(o = schakel_directory_municipality_leerplicht(d, municipality)))
            *reason = "municipality_not_in_directory";
        return o;
    }
    const char *m = district && district[0] ? schakel_directory_district_municipality(d, district) : NULL;
    if (!m)
        *reason = district && district[0] ? "district_not_in_a_municipality" : "home_municipality_unknown";
    return m ? schakel_directory_municipality_leerplicht(d, m) : NULL;
}

const uint8_t *schakel_directory_hash(const schakel_directory_t *d)
{
    return d->hash;
}

const char *schakel_directory_text(const schakel_directory_t *d)
{
    return d->text;
}
