/* The routing rules: data (JSON, per event type), read once when the
 * engine is made; every rule is checked and a wrong one named with the
 * field that is wrong (routing.h shows the file). The SHA-256 of the text
 * is the policy_version of every decision. Here too: whether a rule's
 * "when" matches an event, and the rules a fresh node starts with. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "json.h"
#include "routing_impl.h"

static const char *const target_names[T_COUNT] = {
    "addressees",   "school_team",   "home_wijkteam",  "referral_target", "consulted", "consent_recipient",
    "veiligthuis",  "leerplicht",    "referrer",       "reporter",        "field",     "school",
    "participants", "referral_loop", "handover_sides", "requester"};

static int parse_rule(schakel_routing_t *r, json_t *o, size_t i, char *why)
{
    rule_t *rule = &r->rules[i];
    const char *id = json_string_value(json_object_get(o, "id"));
    if (!json_is_object(o) || !id || !schakel_id_valid(id) || strlen(id) >= sizeof rule->id)
        return schakel_fail(why, SCHAKEL_ECONFIG,
                            "rules[%zu].id: a name of 1 to 63 characters of "
                            "a-z 0-9 . _ / - (it is named in every decision)",
                            i);
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
                    return schakel_fail(why, SCHAKEL_ECONFIG,
                                        "rules[%zu] (%s).on[%zu]: unknown event "
                                        "type \"%s\"",
                                        i, id, j, t ? t : "?");
                rule->on[type] = 1;
            }
        } else if (!strcmp(key, "to")) {
            const char *t = json_string_value(v);
            rule->target = -1;
            for (int k = 0; t && k < T_COUNT; k++)
                if (!strcmp(t, target_names[k])) rule->target = k;
            if (rule->target < 0)
                return schakel_fail(why, SCHAKEL_ECONFIG,
                                    "rules[%zu] (%s).to: unknown target \"%s\" "
                                    "(docs/routing.md lists them)",
                                    i, id, t ? t : "?");
            have_to = 1;
        } else if (!strcmp(key, "kinds")) {
            size_t j;
            json_t *e;
            if (!json_is_array(v))
                return schakel_fail(why, SCHAKEL_ECONFIG, "rules[%zu] (%s).kinds: a list", i, id);
            json_array_foreach(v, j, e) {
                int k = json_is_string(e) ? schakel_org_kind_parse(json_string_value(e)) : -1;
                if (k <= 0)
                    return schakel_fail(why, SCHAKEL_ECONFIG,
                                        "rules[%zu] (%s).kinds[%zu]: not an "
                                        "organisation kind",
                                        i, id, j);
                rule->kinds |= 1u << k;
            }
        } else if (!strcmp(key, "field")) {
            const char *f = json_string_value(v);
            if (!f || !f[0] || strlen(f) >= sizeof rule->field ||
                strspn(f, "abcdefghijklmnopqrstuvwxyz0123456789_") != strlen(f))
                return schakel_fail(why, SCHAKEL_ECONFIG,
                                    "rules[%zu] (%s).field: a body field name "
                                    "(a-z 0-9 _)",
                                    i, id);
            snprintf(rule->field, sizeof rule->field, "%s", f);
        } else if (!strcmp(key, "when")) {
            const char *k2;
            json_t *v2;
            if (!json_is_object(v))
                return schakel_fail(why, SCHAKEL_ECONFIG, "rules[%zu] (%s).when: an object", i, id);
            json_object_foreach(v, k2, v2)
                if (json_is_object(v2) || json_is_array(v2) || json_is_null(v2))
                    return schakel_fail(why, SCHAKEL_ECONFIG,
                                        "rules[%zu] (%s).when: each field "
                                        "equals a string, a number or true/false",
                                        i, id);
            rule->when = json_incref(v);
        } else {
            return schakel_fail(why, SCHAKEL_ECONFIG, "rules[%zu] (%s): unknown field \"%s\"", i, id, key);
        }
    }
    if (!have_to) return schakel_fail(why, SCHAKEL_ECONFIG, "rules[%zu] (%s).to: missing", i, id);
    if (rule->target == T_FIELD && !rule->field[0])
        return schakel_fail(why, SCHAKEL_ECONFIG, "rules[%zu] (%s): target \"field\" needs \"field\"", i, id);
    if (rule->kinds && rule->target != T_SCHOOL_TEAM && rule->target != T_ADDRESSEES &&
        rule->target != T_REFERRAL_TARGET && rule->target != T_FIELD && rule->target != T_PARTICIPANTS &&
        rule->target != T_HANDOVER_SIDES)
        return schakel_fail(why, SCHAKEL_ECONFIG,
                            "rules[%zu] (%s).kinds: only for the targets "
                            "school_team, addressees, referral_target, field, participants and "
                            "handover_sides",
                            i, id);
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
            schakel_fail(why, SCHAKEL_ECONFIG, "routing rules: unknown field \"%.40s\" (version, rules)",
                         key);
            goto fail;
        }
        if (!json_is_integer(v) || json_integer_value(v) <= 0) {
            schakel_fail(why, SCHAKEL_ECONFIG, "routing rules: version: a positive whole number");
            goto fail;
        }
    }
    if (!json_is_array(rules) || json_array_size(rules) > MAX_RULES) {
        schakel_fail(why, SCHAKEL_ECONFIG, "routing rules: \"rules\" must be a list of at most %d",
                     MAX_RULES);
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

int schakel_routing_install(void *engine, const char *text, size_t len, char *why)
{
    schakel_routing_t *r = engine, *n = schakel_routing_new(r->org, text, len, why);
    if (!n) return SCHAKEL_ECONFIG;
    for (size_t i = 0; i < MAX_RULES; i++) { /* the old rules leave with n */
        rule_t t = r->rules[i];
        r->rules[i] = n->rules[i];
        n->rules[i] = t;
    }
    r->n_rules = n->n_rules;
    memcpy(r->policy, n->policy, sizeof r->policy);
    schakel_routing_destroy(&n);
    return 0;
}

const uint8_t *schakel_routing_policy(const schakel_routing_t *r)
{
    return r->policy;
}

/* Do the body's fields (in their JSON form) equal the rule's "when"? */
int routing_when_matches(const rule_t *rule, const schakel_envelope_t *env, json_t **body_json)
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

const char *schakel_routing_default_rules(void)
{
    return "{\n"
           "  \"version\": 1,\n"
           "  \"rules\": [\n"
           "    {\"id\": \"explicit/addressees\", \"on\": [\"*\"], \"to\": \"addressees\", \"kinds\": "
           "[\"school\", \"smw\", \"ggd\", \"wijkteam\", \"ppo\", \"veiligthuis\", \"gemeente\", "
           "\"leerplicht\"]},\n"
           "    {\"id\": \"signal/school-smw\", \"on\": [\"signal\"], \"to\": \"school_team\", \"kinds\": "
           "[\"smw\"]},\n"
           "    {\"id\": \"consultation/consulted\", \"on\": [\"consultation\"], \"to\": \"consulted\"},\n"
           "    {\"id\": \"consent/recipient\", \"on\": [\"consent_given\", \"consent_withdrawn\"], \"to\": "
           "\"consent_recipient\"},\n"
           "    {\"id\": \"referral/target\", \"on\": [\"referral\"], \"to\": \"referral_target\", "
           "\"kinds\": [\"smw\", \"ggd\", \"wijkteam\", \"ppo\", \"veiligthuis\", \"gemeente\", "
           "\"leerplicht\"]},\n"
           "    {\"id\": \"intake/redirected-to\", \"on\": [\"intake\"], \"when\": {\"outcome\": "
           "\"redirected\"}, \"to\": \"field\", \"field\": \"redirected_to\", \"kinds\": [\"smw\", \"ggd\", "
           "\"wijkteam\", \"ppo\", \"veiligthuis\", \"gemeente\", \"leerplicht\"]},\n"
           "    {\"id\": \"meldcode/veiligthuis\", \"on\": [\"veiligthuis_report\"], \"to\": "
           "\"veiligthuis\"},\n"
           "    {\"id\": \"veiligthuis/feedback-to-reporter\", \"on\": [\"veiligthuis_feedback\"], \"to\": "
           "\"reporter\"},\n"
           "    {\"id\": \"absence/leerplicht\", \"on\": [\"absence\"], \"when\": {\"leerplicht_report\": "
           "true}, \"to\": \"leerplicht\"},\n"
           "    {\"id\": \"loop/status-to-referrer\", \"on\": [\"feedback_status\"], \"to\": \"referrer\"},\n"
           "    {\"id\": \"loop/reminder-to\", \"on\": [\"loop_reminder\"], \"to\": \"field\", \"field\": "
           "\"to_org\"},\n"
           "    {\"id\": \"thuiszitter/leerplicht\", \"on\": [\"thuiszitter_status\"], \"to\": "
           "\"leerplicht\"},\n"
           "    {\"id\": \"thuiszitter/ppo\", \"on\": [\"thuiszitter_status\"], \"to\": \"school_team\", "
           "\"kinds\": [\"ppo\"]},\n"
           "    {\"id\": \"action/owner\", \"on\": [\"action_item\"], \"to\": \"field\", \"field\": "
           "\"owner_org\", \"kinds\": [\"school\", \"smw\", \"ggd\", \"wijkteam\", \"ppo\", \"veiligthuis\", "
           "\"gemeente\", \"leerplicht\"]},\n"
           "    {\"id\": \"decision/school\", \"on\": [\"beschikking\", \"tlv\", "
           "\"education_care_arrangement\"], \"to\": \"school\"},\n"
           "    {\"id\": \"meeting/participants\", \"on\": [\"meeting\"], \"to\": \"participants\", "
           "\"kinds\": [\"school\", \"smw\", \"ggd\", \"wijkteam\", \"ppo\", \"veiligthuis\", \"gemeente\", "
           "\"leerplicht\"]},\n"
           "    {\"id\": \"case-lead/lead\", \"on\": [\"case_lead\"], \"to\": \"field\", \"field\": "
           "\"lead_org\", \"kinds\": [\"school\", \"smw\", \"ggd\", \"wijkteam\", \"ppo\", \"veiligthuis\", "
           "\"gemeente\", \"leerplicht\"]},\n"
           "    {\"id\": \"case-lead/referral-loop\", \"on\": [\"case_lead\"], \"to\": \"referral_loop\"},\n"
           "    {\"id\": \"handover/other-side\", \"on\": [\"handover\", \"handover_confirmed\"], \"to\": "
           "\"handover_sides\", \"kinds\": [\"school\", \"smw\", \"ggd\", \"wijkteam\", \"ppo\", "
           "\"veiligthuis\", \"gemeente\"]},\n"
           "    {\"id\": \"mazl/jeugdarts\", \"on\": [\"mazl_request\"], \"to\": \"school_team\", \"kinds\": "
           "[\"ggd\"]},\n"
           "    {\"id\": \"mazl/requester\", \"on\": [\"mazl_advice\"], \"to\": \"requester\"}\n"
           "  ]\n"
           "}\n";
}
