/* The routing engine: rules (data) over the directory in force on the log.
 * State in LMDB: the last directory_update seen, who sent each referral
 * and Veilig Thuis report (by id and child, the first sender kept), and
 * whom each consent was for (by id and recording organisation), so that
 * later events can be routed back ("referrer", "reporter"). In "flows",
 * keyed by a tag, the 16-byte id and the child:
 *   'R' id child NUL org -> ""   an organisation a referral was routed to
 *   'H' id child -> giver NUL to  a warm handover's two sides
 *   'M' id child -> school        who asked a MAZL advice
 * Everything it decides follows from the log, which `schakel audit
 * replay` checks. */
#include "routing.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "directory.h"
#include "error.h"
#include "json.h"
#include "logging.h"

#define MAX_RULES 128
#define MAX_RECIPIENTS 32

typedef struct {
    char id[64];
    uint8_t on[SCHAKEL_EVENT_TYPE_LIMIT]; /* event types it applies to */
    int target;
    unsigned kinds;      /* bit per OrgKind a target may name; 0: all */
    char field[64];      /* for the "field" target */
    json_t *when;        /* body fields that must match; NULL: always */
} rule_t;

enum {
    T_ADDRESSEES, T_SCHOOL_TEAM, T_HOME_WIJKTEAM, T_REFERRAL_TARGET, T_CONSULTED,
    T_CONSENT_RECIPIENT, T_VEILIGTHUIS, T_LEERPLICHT, T_REFERRER, T_REPORTER, T_FIELD, T_SCHOOL,
    T_PARTICIPANTS, T_REFERRAL_LOOP, T_HANDOVER_SIDES, T_REQUESTER,
    T_COUNT
};

static const char *const target_names[T_COUNT] = {
    "addressees", "school_team", "home_wijkteam", "referral_target", "consulted",
    "consent_recipient", "veiligthuis", "leerplicht", "referrer", "reporter", "field", "school",
    "participants", "referral_loop", "handover_sides", "requester"};

struct schakel_routing {
    char org[SCHAKEL_ID_MAX];
    rule_t rules[MAX_RULES];
    size_t n_rules;
    uint8_t policy[SCHAKEL_SHA256_LEN];
    MDB_dbi dbi_state, dbi_referrals, dbi_reports, dbi_consents, dbi_flows;
    schakel_directory_t *dir; /* the directory in force; NULL until one is on the log */
};

/* ---- rules ---- */

static int parse_rule(schakel_routing_t *r, json_t *o, size_t i, char *why)
{
    rule_t *rule = &r->rules[i];
    const char *id = json_string_value(json_object_get(o, "id"));
    if (!json_is_object(o) || !id || !schakel_id_valid(id) || strlen(id) >= sizeof rule->id)
        return schakel_fail(why, SCHAKEL_ECONFIG, "rules[%zu].id: a name of 1 to 63 characters of "
                            "a-z 0-9 . _ / - (it is named in every decision)", i);
    snprintf(rule->id, sizeof rule->id, "%s", id);
    const char *key;
    json_t *v;
    int have_to = 0;
    json_object_foreach(o, key, v) {
        if (!strcmp(key, "id")) continue;
        if (!strcmp(key, "on")) {
            size_t j;
            json_t *e;
            if (!json_is_array(v) || !json_array_size(v))
                return schakel_fail(why, SCHAKEL_ECONFIG, "rules[%zu] (%s).on: a list of event types", i, id);
            json_array_foreach(v, j, e) {
                const char *t = json_string_value(e);
                if (t && !strcmp(t, "*")) {
                    memset(rule->on, 1, sizeof rule->on);
                    continue;
                }
                int type = t ? schakel_event_type_parse(t) : 0;
                if (type <= 0 || type >= SCHAKEL_EVENT_TYPE_LIMIT)
                    return schakel_fail(why, SCHAKEL_ECONFIG, "rules[%zu] (%s).on[%zu]: unknown event "
                                        "type \"%s\"", i, id, j, t ? t : "?");
                rule->on[type] = 1;
            }
        } else if (!strcmp(key, "to")) {
            const char *t = json_string_value(v);
            rule->target = -1;
            for (int k = 0; t && k < T_COUNT; k++)
                if (!strcmp(t, target_names[k])) rule->target = k;
            if (rule->target < 0)
                return schakel_fail(why, SCHAKEL_ECONFIG, "rules[%zu] (%s).to: unknown target \"%s\" "
                                    "(docs/routing.md lists them)", i, id, t ? t : "?");
            have_to = 1;
        } else if (!strcmp(key, "kinds")) {
            size_t j;
            json_t *e;
            if (!json_is_array(v)) return schakel_fail(why, SCHAKEL_ECONFIG, "rules[%zu] (%s).kinds: a list", i, id);
            json_array_foreach(v, j, e) {
                int k = json_is_string(e) ? schakel_org_kind_parse(json_string_value(e)) : -1;
                if (k <= 0) return schakel_fail(why, SCHAKEL_ECONFIG, "rules[%zu] (%s).kinds[%zu]: not an "
                                                "organisation kind", i, id, j);
                rule->kinds |= 1u << k;
            }
        } else if (!strcmp(key, "field")) {
            const char *f = json_string_value(v);
            if (!f || !f[0] || strlen(f) >= sizeof rule->field ||
                strspn(f, "abcdefghijklmnopqrstuvwxyz0123456789_") != strlen(f))
                return schakel_fail(why, SCHAKEL_ECONFIG, "rules[%zu] (%s).field: a body field name "
                                    "(a-z 0-9 _)", i, id);
            snprintf(rule->field, sizeof rule->field, "%s", f);
        } else if (!strcmp(key, "when")) {
            const char *k2;
            json_t *v2;
            if (!json_is_object(v)) return schakel_fail(why, SCHAKEL_ECONFIG, "rules[%zu] (%s).when: an object", i, id);
            json_object_foreach(v, k2, v2)
                if (json_is_object(v2) || json_is_array(v2) || json_is_null(v2))
                    return schakel_fail(why, SCHAKEL_ECONFIG, "rules[%zu] (%s).when: each field "
                                        "equals a string, a number or true/false", i, id);
            rule->when = json_incref(v);
        } else {
            return schakel_fail(why, SCHAKEL_ECONFIG, "rules[%zu] (%s): unknown field \"%s\"", i, id, key);
        }
    }
    if (!have_to) return schakel_fail(why, SCHAKEL_ECONFIG, "rules[%zu] (%s).to: missing", i, id);
    if (rule->target == T_FIELD && !rule->field[0])
        return schakel_fail(why, SCHAKEL_ECONFIG, "rules[%zu] (%s): target \"field\" needs \"field\"", i, id);
    if (rule->kinds && rule->target != T_SCHOOL_TEAM && rule->target != T_ADDRESSEES &&
        rule->target != T_REFERRAL_TARGET && rule->target != T_FIELD &&
        rule->target != T_PARTICIPANTS && rule->target != T_HANDOVER_SIDES)
        return schakel_fail(why, SCHAKEL_ECONFIG, "rules[%zu] (%s).kinds: only for the targets "
                            "school_team, addressees, referral_target, field, participants and "
                            "handover_sides", i, id);
    for (size_t j = 0; j < i; j++)
        if (!strcmp(r->rules[j].id, id))
            return schakel_fail(why, SCHAKEL_ECONFIG, "rules[%zu]: id %s is used twice", i, id);
    return 0;
}

schakel_routing_t *schakel_routing_new(const char *org_id, const char *text, size_t len, char *why)
{
    schakel_routing_t *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    snprintf(r->org, sizeof r->org, "%s", org_id);
    json_error_t err;
    json_t *doc = json_loadb(text, len, JSON_REJECT_DUPLICATES, &err);
    json_t *rules = doc ? json_object_get(doc, "rules") : NULL;
    if (!doc || !json_is_object(doc)) {
        schakel_fail(why, SCHAKEL_ECONFIG, "routing rules: line %d: %s", doc ? 1 : err.line,
                     doc ? "not a JSON object" : err.text);
        goto fail;
    }
    const char *key;
    json_t *v;
    json_object_foreach(doc, key, v) {
        if (!strcmp(key, "rules")) continue;
        if (strcmp(key, "version") != 0) {
            schakel_fail(why, SCHAKEL_ECONFIG, "routing rules: unknown field \"%.40s\" (version, rules)", key);
            goto fail;
        }
        if (!json_is_integer(v) || json_integer_value(v) <= 0) {
            schakel_fail(why, SCHAKEL_ECONFIG, "routing rules: version: a positive whole number");
            goto fail;
        }
    }
    if (!json_is_array(rules) || json_array_size(rules) > MAX_RULES) {
        schakel_fail(why, SCHAKEL_ECONFIG, "routing rules: \"rules\" must be a list of at most %d", MAX_RULES);
        goto fail;
    }
    for (size_t i = 0; i < json_array_size(rules); i++, r->n_rules++)
        if (parse_rule(r, json_array_get(rules, i), i, why) != 0) goto fail;
    schakel_sha256(text, len, r->policy);
    json_decref(doc);
    return r;
fail:
    json_decref(doc);
    schakel_routing_destroy(&r);
    return NULL;
}

void schakel_routing_destroy(schakel_routing_t **self_p)
{
    schakel_routing_t *r = *self_p;
    if (!r) return;
    for (size_t i = 0; i < MAX_RULES; i++) json_decref(r->rules[i].when);
    schakel_directory_destroy(&r->dir);
    free(r);
    *self_p = NULL;
}

const uint8_t *schakel_routing_policy(const schakel_routing_t *r)
{
    return r->policy;
}

/* ---- state ---- */

static int routing_open(void *engine, MDB_txn *txn, char *why)
{
    schakel_routing_t *r = engine;
    MDB_dbi old;
    if (mdb_dbi_open(txn, "referrals", 0, &old) == 0)
        return schakel_fail(why, SCHAKEL_ECONFIG,
                            "routing: this state directory was written by an older version that let "
                            "a later publisher of an id take over its referrer: stop the service, "
                            "delete the directory (it is rebuilt from the log) and start it again");
    /* a state from before "flows" lacks the receivers of old referrals:
     * case_lead would be routed differently from a replay */
    MDB_stat st;
    if (mdb_dbi_open(txn, "flows", 0, &old) != 0 && mdb_dbi_open(txn, "referrers", 0, &old) == 0 &&
        mdb_stat(txn, old, &st) == 0 && st.ms_entries)
        return schakel_fail(why, SCHAKEL_ECONFIG,
                            "routing: this state directory was written by an older version that did "
                            "not keep whom a referral was routed to: stop the service, delete the "
                            "directory (it is rebuilt from the log) and start it again");
    const char *const names[] = {"state", "referrers", "reporters", "consent_for", "flows"};
    MDB_dbi *const dbis[] = {&r->dbi_state, &r->dbi_referrals, &r->dbi_reports, &r->dbi_consents, &r->dbi_flows};
    int rc = schakel_engine_tables(txn, "routing", names, dbis, 5, why);
    return rc ? rc : schakel_engine_directory_load(txn, r->dbi_state, &r->dir);
}

/* Key of an id as routing remembers it: the 16-byte id and who may refer
 * to it with that id (the child's pseudonym for a referral or a report,
 * the recording organisation for a consent). Ids are chosen by
 * publishers and can be reused or guessed by another organisation. */
static size_t id_key(uint8_t *key, const ProtobufCBinaryData *id, const char *scope)
{
    size_t n = strnlen(scope, 100); /* a pseudonym is 64, an org id shorter */
    memcpy(key, id->data, 16);
    memcpy(key + 16, scope, n);
    return 16 + n;
}

/* Remembers the organisation behind an id (a referral, a report, a
 * consent) for events that refer to it later. The first one stays: a
 * later event that reuses the id cannot take over where news about an
 * earlier referral, report or consent goes. */
static int remember(MDB_txn *txn, MDB_dbi dbi, const ProtobufCBinaryData *id, const char *scope,
                    const char *org)
{
    if (!id || id->len != 16) return 0;
    uint8_t key[16 + 128];
    MDB_val k = {id_key(key, id, scope), key}, v = {strlen(org) + 1, (void *)org};
    int rc = mdb_put(txn, dbi, &k, &v, MDB_NOOVERWRITE);
    return rc == MDB_KEYEXIST ? 0 : rc ? SCHAKEL_ESTORE : 0;
}

static const char *recall(MDB_txn *txn, MDB_dbi dbi, const ProtobufCBinaryData *id, const char *scope)
{
    MDB_val v;
    uint8_t key[16 + 128];
    if (!id || id->len != 16 || schakel_kv_get(txn, dbi, key, id_key(key, id, scope), &v) != 0) return NULL;
    const char *s = v.mv_data;
    return v.mv_size > 0 && s[v.mv_size - 1] == 0 ? s : NULL;
}

/* Key in "flows": tag, id, the child, and (for 'R') NUL and an org. */
static size_t flow_key(uint8_t *key, char tag, const ProtobufCBinaryData *id, const char *subject,
                       const char *org)
{
    size_t n = strnlen(subject, 100), m = org ? strnlen(org, SCHAKEL_ID_MAX) : 0;
    key[0] = (uint8_t)tag;
    memcpy(key + 1, id->data, 16);
    memcpy(key + 17, subject, n);
    if (!org) return 17 + n;
    key[17 + n] = 0;
    memcpy(key + 18 + n, org, m);
    return 18 + n + m;
}

#define FLOW_KEY_MAX (18 + 100 + SCHAKEL_ID_MAX)

/* Remembers a flow's organisations (value), the first one kept. */
static int remember_flow(MDB_txn *txn, MDB_dbi dbi, char tag, const ProtobufCBinaryData *id,
                         const char *subject, const char *org, const void *val, size_t vlen)
{
    if (!id || id->len != 16) return 0;
    uint8_t key[FLOW_KEY_MAX];
    MDB_val k = {flow_key(key, tag, id, subject, org), key}, v = {vlen, (void *)val};
    int rc = mdb_put(txn, dbi, &k, &v, MDB_NOOVERWRITE);
    return rc == MDB_KEYEXIST ? 0 : rc ? SCHAKEL_ESTORE : 0;
}

static const char *recall_flow(MDB_txn *txn, MDB_dbi dbi, char tag, const ProtobufCBinaryData *id,
                               const char *subject, size_t *len)
{
    uint8_t key[FLOW_KEY_MAX];
    MDB_val v;
    if (!id || id->len != 16 || schakel_kv_get(txn, dbi, key, flow_key(key, tag, id, subject, NULL), &v) != 0 ||
        !v.mv_size || ((const char *)v.mv_data)[v.mv_size - 1])
        return NULL;
    *len = v.mv_size;
    return v.mv_data;
}

/* A handover's sides, "giver NUL to NUL". */
static int remember_handover(MDB_txn *txn, MDB_dbi dbi, const schakel_envelope_t *env)
{
    char v[2 * SCHAKEL_ID_MAX + 2];
    int n = snprintf(v, sizeof v, "%s%c%s", env->source_org, 0, env->handover->to_org);
    if (n < 0 || (size_t)n >= sizeof v) return 0;
    return remember_flow(txn, dbi, 'H', &env->handover->handover_id, env->subject, NULL, v, (size_t)n + 1);
}

/* ---- targets ---- */

/* An organisation the publisher named that the rules do not allow. */
typedef struct {
    char field[80];      /* what named it: "addressees[0]", "referral.to_org" */
    const char *org;     /* its directory id; "" when it is not in the directory */
    const char *rule, *reason;
} refusal_t;

typedef struct {
    const char *org[MAX_RECIPIENTS];
    const char *rule[MAX_RECIPIENTS];
    size_t n;
    refusal_t refused[MAX_RECIPIENTS];
    size_t n_refused;
    int no_veiligthuis; /* a rule sends it to Veilig Thuis, and the region has none */
} recipients_t;

static void refuse(recipients_t *out, const char *field, const char *org, const rule_t *rule,
                   const char *reason)
{
    for (size_t i = 0; i < out->n_refused; i++)
        if (!strcmp(out->refused[i].field, field)) return;
    if (out->n_refused == MAX_RECIPIENTS) return;
    refusal_t *f = &out->refused[out->n_refused++];
    snprintf(f->field, sizeof f->field, "%s", field);
    f->org = org;
    f->rule = rule->id;
    f->reason = reason;
}

static int kind_of(schakel_routing_t *r, const char *org)
{
    const schakel_org_t *o = r->dir ? schakel_directory_by_id(r->dir, org) : NULL;
    return o ? o->kind : 0;
}

/* Adds org as a recipient under rule. field is NULL when the organisation
 * comes from the directory or the routing state; when the publisher named
 * it (field says where), it must also pass what the rules allow: listed in
 * the directory, of a kind in the rule's "kinds", never the admin, never a
 * school for another school, and a school only as the child's school (the
 * envelope's "school"; our services, e.g. the feedback loop naming the
 * referrer, are exempt). What fails is recorded in the decision, not
 * delivered. */
static void add(schakel_routing_t *r, recipients_t *out, const schakel_envelope_t *env,
                const char *org, const rule_t *rule, const char *field)
{
    if (!org || !org[0] || !strcmp(org, env->source_org) || !r->dir) return;
    const schakel_org_t *o = schakel_directory_by_id(r->dir, org);
    if (!o) {
        if (field) refuse(out, field, "", rule, "not_in_directory");
        return;
    }
    const char *no = NULL;
    const int school = SCHAKEL__V1__ORG_KIND__ORG_KIND_SCHOOL;
    if (o->kind == SCHAKEL_ORG_KIND_ADMIN) {
        no = "not_a_recipient";
    } else if (o->kind == school && kind_of(r, env->source_org) == school) {
        no = "school_to_school";
    } else if (field && rule->kinds && !(rule->kinds & (1u << o->kind))) {
        no = "kind_not_allowed";
    } else if (field && o->kind == school &&
               kind_of(r, env->source_org) != SCHAKEL__V1__ORG_KIND__ORG_KIND_SERVICE) {
        const schakel_school_t *sc = env->school[0] ? schakel_directory_school(r->dir, env->school) : NULL;
        if (!sc || strcmp(sc->org, o->id)) no = "not_the_childs_school";
    }
    if (no) {
        if (field) refuse(out, field, o->id, rule, no);
        return;
    }
    for (size_t i = 0; i < out->n; i++)
        if (!strcmp(out->org[i], o->id)) return;
    if (out->n == MAX_RECIPIENTS) return;
    out->org[out->n] = o->id;
    out->rule[out->n++] = rule->id;
}

static const schakel_school_t *child_school(schakel_routing_t *r, const schakel_envelope_t *env)
{
    if (!r->dir) return NULL;
    if (env->school[0]) return schakel_directory_school(r->dir, env->school);
    return schakel_directory_school_of(r->dir, env->source_org);
}

static const char *home_wijkteam(schakel_routing_t *r, const schakel_envelope_t *env)
{
    const schakel_school_t *sc = child_school(r, env);
    if (sc && sc->wijkteam_override[0]) return sc->wijkteam_override;
    const char *w = env->district[0] ? schakel_directory_district_wijkteam(r->dir, env->district) : NULL;
    if (w) return w;
    return sc ? sc->team[SCHAKEL__V1__ORG_KIND__ORG_KIND_WIJKTEAM] : NULL;
}

/* The organisation of a kind for this child. */
static const char *of_kind(schakel_routing_t *r, const schakel_envelope_t *env, int kind)
{
    if (!r->dir) return NULL;
    switch (kind) {
    case SCHAKEL__V1__ORG_KIND__ORG_KIND_WIJKTEAM: return home_wijkteam(r, env);
    case SCHAKEL__V1__ORG_KIND__ORG_KIND_VEILIGTHUIS: return schakel_directory_veiligthuis(r->dir);
    case SCHAKEL__V1__ORG_KIND__ORG_KIND_LEERPLICHT: {
        /* the office of the child's home municipality; a gemeente (its
         * youth care) is never chosen for leerplicht, nor the other way */
        const char *reason;
        return schakel_directory_home_leerplicht(r->dir, schakel_body_string(env, "municipality"),
                                                 env->district, &reason);
    }
    default: {
        const schakel_school_t *sc = child_school(r, env);
        return sc && kind > 0 && kind < SCHAKEL_ORG_KINDS ? sc->team[kind] : NULL;
    }
    }
}

/* The leerplicht office of the child's home municipality: the one the body
 * names ("municipality"), else the one the envelope's home district lies
 * in. A directory without municipalities has one office for the region.
 * What cannot be routed is refused, so that the publisher hears of it. */
static void leerplicht(schakel_routing_t *r, recipients_t *out, const schakel_envelope_t *env,
                       const rule_t *rule)
{
    const char *named = schakel_body_string(env, "municipality"), *reason = NULL;
    const char *o = r->dir ? schakel_directory_home_leerplicht(r->dir, named, env->district, &reason) : NULL;
    if (o) {
        add(r, out, env, o, rule, NULL);
    } else if (reason) {
        char field[80] = "district";
        if (named && named[0])
            snprintf(field, sizeof field, "%s.municipality", schakel_event_type_name(env->type));
        refuse(out, field, "", rule, reason);
    }
}

/* Do the body's fields (in their JSON form) equal the rule's "when"? */
static int when_matches(const rule_t *rule, const schakel_envelope_t *env, json_t **body_json)
{
    if (!rule->when) return 1;
    if (!*body_json) {
        const ProtobufCMessage *b = schakel_envelope_body(env);
        *body_json = b ? schakel_json_from_message(b) : json_object();
    }
    const char *key;
    json_t *want;
    json_object_foreach(rule->when, key, want) {
        json_t *have = json_object_get(*body_json, key);
        if (have ? !json_equal(have, want)
                 : !(json_is_false(want) || (json_is_integer(want) && !json_integer_value(want)) ||
                     (json_is_string(want) && !json_string_length(want))))
            return 0;
    }
    return 1;
}

/* The organisations of the loop of the referral the body names: who sent
 * it (about this child) and whom routing sent it to. */
static void referral_loop(schakel_routing_t *r, MDB_txn *txn, const schakel_envelope_t *env,
                          const rule_t *rule, recipients_t *out)
{
    const ProtobufCBinaryData *rid = schakel_body_bytes(env, "referral_id");
    if (!rid || rid->len != 16) return;
    add(r, out, env, recall(txn, r->dbi_referrals, rid, env->subject), rule, NULL);
    uint8_t key[FLOW_KEY_MAX];
    size_t n = flow_key(key, 'R', rid, env->subject, "");
    MDB_cursor *cur;
    if (mdb_cursor_open(txn, r->dbi_flows, &cur) != 0) return;
    MDB_val k = {n, key}, v;
    for (int g = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); g == 0; g = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size <= n || memcmp(k.mv_data, key, n) != 0) break;
        char org[SCHAKEL_ID_MAX];
        size_t m = k.mv_size - n < sizeof org - 1 ? k.mv_size - n : sizeof org - 1;
        memcpy(org, (const char *)k.mv_data + n, m);
        org[m] = 0;
        /* add keeps a pointer: the directory's own copy of the id */
        const schakel_org_t *o = r->dir ? schakel_directory_by_id(r->dir, org) : NULL;
        if (o) add(r, out, env, o->id, rule, NULL);
    }
    mdb_cursor_close(cur);
}

/* A handover goes to its receiving side (handover.to_org, which the
 * publisher names); a confirmation to the side that did not publish it. */
static void handover_sides(schakel_routing_t *r, MDB_txn *txn, const schakel_envelope_t *env,
                           const rule_t *rule, recipients_t *out)
{
    if (env->type == SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_HANDOVER) {
        const Schakel__V1__Handover *h = env->handover;
        const schakel_org_t *o = r->dir ? schakel_directory_by_id(r->dir, h->to_org) : NULL;
        if (o && h->to_kind && o->kind != (int)h->to_kind)
            refuse(out, "handover.to_org", o->id, rule, "kind_mismatch");
        else
            add(r, out, env, h->to_org, rule, "handover.to_org");
        return;
    }
    size_t n;
    const char *sides = recall_flow(txn, r->dbi_flows, 'H', schakel_body_bytes(env, "handover_id"), env->subject, &n);
    if (!sides) return;
    const char *giver = sides, *to = sides + strlen(sides) + 1;
    if (to >= sides + n) return;
    /* only a side's own confirmation reaches the other side */
    int giving = env->type == SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_HANDOVER_CONFIRMED &&
                 env->handover_confirmed->side == SCHAKEL__V1__HANDOVER_SIDE__HANDOVER_SIDE_GIVING;
    if (strcmp(env->source_org, giving ? giver : to) != 0) return;
    const schakel_org_t *g = r->dir ? schakel_directory_by_id(r->dir, giver) : NULL;
    const schakel_org_t *t = r->dir ? schakel_directory_by_id(r->dir, to) : NULL;
    add(r, out, env, g ? g->id : NULL, rule, NULL);
    add(r, out, env, t ? t->id : NULL, rule, NULL);
}

static void apply(schakel_routing_t *r, MDB_txn *txn, const rule_t *rule,
                  const schakel_envelope_t *env, recipients_t *out)
{
    const rule_t *id = rule; /* the rule each recipient is listed under */
    char field[80];
    switch (rule->target) {
    case T_ADDRESSEES:
        for (size_t i = 0; i < env->n_addressees; i++) {
            snprintf(field, sizeof field, "addressees[%zu]", i);
            add(r, out, env, env->addressees[i], id, field);
        }
        break;
    case T_SCHOOL_TEAM: {
        const schakel_school_t *sc = child_school(r, env);
        for (int k = 1; sc && k < SCHAKEL_ORG_KINDS; k++)
            if (!rule->kinds || (rule->kinds & (1u << k))) add(r, out, env, sc->team[k], id, NULL);
        break;
    }
    case T_HOME_WIJKTEAM: add(r, out, env, r->dir ? home_wijkteam(r, env) : NULL, id, NULL); break;
    case T_REFERRAL_TARGET: {
        if (env->type != SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_REFERRAL) break;
        const Schakel__V1__Referral *ref = env->referral;
        if (!ref->to_org[0]) {
            add(r, out, env, of_kind(r, env, ref->to_kind), id, NULL);
        } else if (r->dir && schakel_directory_by_id(r->dir, ref->to_org) &&
                   strcmp(ref->to_org, env->source_org) != 0 &&
                   kind_of(r, ref->to_org) != (int)ref->to_kind) {
            refuse(out, "referral.to_org", schakel_directory_by_id(r->dir, ref->to_org)->id, rule,
                   "kind_mismatch");
        } else {
            add(r, out, env, ref->to_org, id, "referral.to_org");
        }
        break;
    }
    case T_CONSULTED:
        if (env->type == SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_CONSULTATION)
            add(r, out, env, of_kind(r, env, env->consultation->consulted_kind), id, NULL);
        break;
    case T_CONSENT_RECIPIENT:
        if (env->type == SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_CONSENT_GIVEN) {
            const Schakel__V1__ConsentGiven *c = env->consent_given;
            if (c->recipient_org[0]) add(r, out, env, c->recipient_org, id, "consent_given.recipient_org");
            else add(r, out, env, of_kind(r, env, c->recipient_kind), id, NULL);
        } else if (env->type == SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_CONSENT_WITHDRAWN) {
            add(r, out, env, recall(txn, r->dbi_consents, &env->consent_withdrawn->consent_id, env->source_org), id, NULL);
        }
        break;
    case T_VEILIGTHUIS: {
        const char *vt = r->dir ? schakel_directory_veiligthuis(r->dir) : NULL;
        if (vt && vt[0]) {
            add(r, out, env, vt, id, NULL);
        } else { /* a report that goes nowhere: the sender and the operator hear of it */
            refuse(out, "region.veiligthuis", "", rule, "no_veiligthuis_in_directory");
            out->no_veiligthuis = 1;
        }
        break;
    }
    case T_LEERPLICHT: leerplicht(r, out, env, id); break;
    case T_REFERRER:
        add(r, out, env, recall(txn, r->dbi_referrals, schakel_body_bytes(env, "referral_id"), env->subject), id, NULL);
        break;
    case T_REPORTER:
        add(r, out, env, recall(txn, r->dbi_reports, schakel_body_bytes(env, "report_id"), env->subject), id, NULL);
        break;
    case T_FIELD:
        snprintf(field, sizeof field, "%s.%s", schakel_event_type_name(env->type), rule->field);
        add(r, out, env, schakel_body_string(env, rule->field), id, field);
        break;
    case T_SCHOOL: {
        const schakel_school_t *sc = child_school(r, env);
        add(r, out, env, sc ? sc->org : NULL, id, "school");
        break;
    }
    case T_PARTICIPANTS:
        if (env->type != SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_MEETING) break;
        for (size_t i = 0; i < env->meeting->n_participant_orgs; i++) {
            snprintf(field, sizeof field, "meeting.participant_orgs[%zu]", i);
            add(r, out, env, env->meeting->participant_orgs[i], id, field);
        }
        break;
    case T_REFERRAL_LOOP: referral_loop(r, txn, env, id, out); break;
    case T_HANDOVER_SIDES: handover_sides(r, txn, env, id, out); break;
    case T_REQUESTER: {
        size_t n;
        add(r, out, env, recall_flow(txn, r->dbi_flows, 'M', schakel_body_bytes(env, "request_id"), env->subject, &n),
            id, NULL);
        break;
    }
    }
}

/* ---- the engine ---- */

static int routing_process(void *engine, MDB_txn *txn, const schakel_logrec_t *rec,
                           schakel_emit_t *out, char *why)
{
    schakel_routing_t *r = engine;
    const schakel_envelope_t *env = rec->env;
    if (!env) return 0;
    switch ((int)env->type) {
    case SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_DIRECTORY_UPDATE:
        return schakel_engine_directory_update(txn, r->dbi_state, env, &r->dir) ? schakel_fail(why, SCHAKEL_ESTORE, "routing: cannot store the directory") : 0;
    case SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_ROUTING_DECISION:
    case SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_CONSENT_DECISION:
    case SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_CLOCK_TICK:
    case SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_AUDIT_ACCESS: return 0;
    case SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_REFERRAL:
        if (remember(txn, r->dbi_referrals, &env->referral->referral_id, env->subject, env->source_org)) goto store;
        break;
    case SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_SIGNAL: /* a signal that asks for follow-up opens a loop */
        if (env->signal->follow_up_requested &&
            remember(txn, r->dbi_referrals, &env->event_id, env->subject, env->source_org))
            goto store;
        break;
    case SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_VEILIGTHUIS_REPORT:
        if (remember(txn, r->dbi_reports, &env->veiligthuis_report->report_id, env->subject, env->source_org)) goto store;
        break;
    case SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_HANDOVER:
        if (remember_handover(txn, r->dbi_flows, env)) goto store;
        break;
    case SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_MAZL_REQUEST:
        if (remember_flow(txn, r->dbi_flows, 'M', &env->mazl_request->request_id, env->subject, NULL,
                          env->source_org, strlen(env->source_org) + 1))
            goto store;
        break;
    default: break;
    }

    recipients_t to = {0};
    json_t *body_json = NULL;
    for (size_t i = 0; i < r->n_rules; i++) {
        const rule_t *rule = &r->rules[i];
        if (rule->on[env->type] && when_matches(rule, env, &body_json)) apply(r, txn, rule, env, &to);
    }
    json_decref(body_json);
    if (env->type == SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_CONSENT_GIVEN && to.n &&
        remember(txn, r->dbi_consents, &env->consent_given->consent_id, env->source_org, to.org[0]))
        goto store;
    /* a referral's receivers, for news about its loop (case_lead); the
     * first referral of that id by this sender about this child counts */
    const char *referrer = env->type == SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_REFERRAL
                               ? recall(txn, r->dbi_referrals, &env->referral->referral_id, env->subject)
                               : NULL;
    if (referrer && !strcmp(referrer, env->source_org))
        for (size_t i = 0; i < to.n; i++)
            if (remember_flow(txn, r->dbi_flows, 'R', &env->referral->referral_id, env->subject, to.org[i], "", 0))
                goto store;

    Schakel__V1__RoutedRecipient rr[MAX_RECIPIENTS], *rp[MAX_RECIPIENTS];
    for (size_t i = 0; i < to.n; i++) {
        schakel__v1__routed_recipient__init(&rr[i]);
        rr[i].org_id = (char *)to.org[i];
        rr[i].rule_id = (char *)to.rule[i];
        rp[i] = &rr[i];
    }
    /* refused by one rule, chosen by another: it is a recipient */
    Schakel__V1__RefusedRecipient rf[MAX_RECIPIENTS], *rfp[MAX_RECIPIENTS];
    size_t n_refused = 0;
    for (size_t i = 0; i < to.n_refused; i++) {
        const refusal_t *x = &to.refused[i];
        int chosen = 0;
        for (size_t j = 0; x->org[0] && j < to.n; j++) chosen |= !strcmp(to.org[j], x->org);
        if (chosen) continue;
        schakel__v1__refused_recipient__init(&rf[n_refused]);
        rf[n_refused].field = (char *)x->field;
        rf[n_refused].org_id = (char *)x->org;
        rf[n_refused].rule_id = (char *)x->rule;
        rf[n_refused].reason_code = (char *)x->reason;
        rfp[n_refused] = &rf[n_refused];
        n_refused++;
    }
    Schakel__V1__RoutingDecision d = SCHAKEL__V1__ROUTING_DECISION__INIT;
    d.about_event_id = env->event_id;
    d.about_seq = rec->seq;
    d.recipients = rp;
    d.n_recipients = to.n;
    d.policy_version.data = r->policy;
    d.policy_version.len = sizeof r->policy;
    d.directory_version = r->dir ? schakel_directory_version(r->dir) : 0;
    d.refused = rfp;
    d.n_refused = n_refused;
    if (n_refused && r->dir && schakel_directory_by_id(r->dir, env->source_org))
        d.inform_org = (char *)env->source_org; /* the publisher hears what was refused */
    uint8_t id[16];
    /* the publisher is part of what the decision is about: ids are scoped
     * to their publisher, so two organisations' events with one id get two
     * decisions */
    schakel_derive_id(id, "schakel/v1/routing", env->source_org, strlen(env->source_org),
                      env->event_id.data, env->event_id.len, NULL);
    Schakel__V1__Envelope e = SCHAKEL__V1__ENVELOPE__INIT;
    e.event_id.data = id;
    e.event_id.len = 16;
    e.type = SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_ROUTING_DECISION;
    e.source_org = r->org;
    e.occurred_at = rec->now;
    e.subject = env->subject;
    e.correlation_id = env->correlation_id;
    e.causation_id = env->event_id;
    e.purpose = SCHAKEL__V1__PURPOSE__PURPOSE_BUS;
    e.legal_basis = SCHAKEL__V1__LEGAL_BASIS__LEGAL_BASIS_BUS;
    e.body_case = SCHAKEL__V1__ENVELOPE__BODY_ROUTING_DECISION;
    e.routing_decision = &d;
    int rc = schakel_emit(out, &e);
    if (rc == 0 && to.no_veiligthuis) {
        char detail[160];
        snprintf(detail, sizeof detail, "seq=%llu type=%s source_org=%s", (unsigned long long)rec->seq,
                 schakel_event_type_name(env->type), env->source_org);
        rc = schakel_emit_alarm(out, "unroutable", "no_veiligthuis", detail);
    }
    return rc ? schakel_fail(why, rc, "routing: cannot emit a decision") : 0;
store:
    return schakel_fail(why, SCHAKEL_ESTORE, "routing: cannot store state");
}

const schakel_engine_ops_t schakel_routing_ops = {"routing", routing_open, routing_process};

const char *schakel_routing_default_rules(void)
{
    return "{\n"
           "  \"version\": 1,\n"
           "  \"rules\": [\n"
           "    {\"id\": \"explicit/addressees\", \"on\": [\"*\"], \"to\": \"addressees\", \"kinds\": [\"school\", \"smw\", \"ggd\", \"wijkteam\", \"ppo\", \"veiligthuis\", \"gemeente\", \"leerplicht\"]},\n"
           "    {\"id\": \"signal/school-smw\", \"on\": [\"signal\"], \"to\": \"school_team\", \"kinds\": [\"smw\"]},\n"
           "    {\"id\": \"consultation/consulted\", \"on\": [\"consultation\"], \"to\": \"consulted\"},\n"
           "    {\"id\": \"consent/recipient\", \"on\": [\"consent_given\", \"consent_withdrawn\"], \"to\": \"consent_recipient\"},\n"
           "    {\"id\": \"referral/target\", \"on\": [\"referral\"], \"to\": \"referral_target\", \"kinds\": [\"smw\", \"ggd\", \"wijkteam\", \"ppo\", \"veiligthuis\", \"gemeente\", \"leerplicht\"]},\n"
           "    {\"id\": \"meldcode/veiligthuis\", \"on\": [\"veiligthuis_report\"], \"to\": \"veiligthuis\"},\n"
           "    {\"id\": \"veiligthuis/feedback-to-reporter\", \"on\": [\"veiligthuis_feedback\"], \"to\": \"reporter\"},\n"
           "    {\"id\": \"absence/leerplicht\", \"on\": [\"absence\"], \"when\": {\"leerplicht_report\": true}, \"to\": \"leerplicht\"},\n"
           "    {\"id\": \"loop/status-to-referrer\", \"on\": [\"feedback_status\"], \"to\": \"referrer\"},\n"
           "    {\"id\": \"loop/reminder-to\", \"on\": [\"loop_reminder\"], \"to\": \"field\", \"field\": \"to_org\"},\n"
           "    {\"id\": \"thuiszitter/leerplicht\", \"on\": [\"thuiszitter_status\"], \"to\": \"leerplicht\"},\n"
           "    {\"id\": \"thuiszitter/ppo\", \"on\": [\"thuiszitter_status\"], \"to\": \"school_team\", \"kinds\": [\"ppo\"]},\n"
           "    {\"id\": \"action/owner\", \"on\": [\"action_item\"], \"to\": \"field\", \"field\": \"owner_org\", \"kinds\": [\"school\", \"smw\", \"ggd\", \"wijkteam\", \"ppo\", \"veiligthuis\", \"gemeente\", \"leerplicht\"]},\n"
           "    {\"id\": \"decision/school\", \"on\": [\"beschikking\", \"tlv\", \"education_care_arrangement\"], \"to\": \"school\"},\n"
           "    {\"id\": \"meeting/participants\", \"on\": [\"meeting\"], \"to\": \"participants\", \"kinds\": [\"school\", \"smw\", \"ggd\", \"wijkteam\", \"ppo\", \"veiligthuis\", \"gemeente\", \"leerplicht\"]},\n"
           "    {\"id\": \"case-lead/lead\", \"on\": [\"case_lead\"], \"to\": \"field\", \"field\": \"lead_org\", \"kinds\": [\"school\", \"smw\", \"ggd\", \"wijkteam\", \"ppo\", \"veiligthuis\", \"gemeente\", \"leerplicht\"]},\n"
           "    {\"id\": \"case-lead/referral-loop\", \"on\": [\"case_lead\"], \"to\": \"referral_loop\"},\n"
           "    {\"id\": \"handover/other-side\", \"on\": [\"handover\", \"handover_confirmed\"], \"to\": \"handover_sides\", \"kinds\": [\"school\", \"smw\", \"ggd\", \"wijkteam\", \"ppo\", \"veiligthuis\", \"gemeente\"]},\n"
           "    {\"id\": \"mazl/jeugdarts\", \"on\": [\"mazl_request\"], \"to\": \"school_team\", \"kinds\": [\"ggd\"]},\n"
           "    {\"id\": \"mazl/requester\", \"on\": [\"mazl_advice\"], \"to\": \"requester\"}\n"
           "  ]\n"
           "}\n";
}
