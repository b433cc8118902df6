/* The directory parser with hostile input: every document here is one
 * mutation of a valid region, and each must be refused with a reason that
 * names the organisation and the field (never a crash, never a silent
 * fix-up). Least privilege: data-holding kinds get no rights, only an
 * admin gets "directory", and an admin gets nothing else. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "directory.h"
#include "error.h"
#include "keys.h"

/* An organisation entry with fresh keys. */
static json_t *org(const char *id, const char *kind, const char *publish, const char *rights)
{
    schakel_keys_t k;
    assert_int_equal(schakel_keys_generate(&k, id), 0);
    char sign[65];
    schakel_hex_encode(k.sign_public, 32, sign);
    json_t *o =
        json_pack("{s:s, s:s, s:s, s:s, s:s, s:[], s:[]}", "id", id, "kind", kind, "name", "synthetic",
                  "curve_public", k.curve_public, "sign_public", sign, "publish", "rights");
    char buf[256];
    char *save = NULL;
    snprintf(buf, sizeof buf, "%s", publish);
    for (char *w = strtok_r(buf, " ", &save); w; w = strtok_r(NULL, " ", &save))
        json_array_append_new(json_object_get(o, "publish"), json_string(w));
    snprintf(buf, sizeof buf, "%s", rights);
    for (char *w = strtok_r(buf, " ", &save); w; w = strtok_r(NULL, " ", &save))
        json_array_append_new(json_object_get(o, "rights"), json_string(w));
    schakel_keys_wipe(&k);
    return o;
}

/* A valid region: two schools' worth of kinds, services, an admin. Index
 * in "organisations": 0 school, 1 smw, 2 ggd, 3 wijkteam, 4 ppo,
 * 5 veiligthuis, 6 gemeente, 7 service, 8 admin, 9 leerplicht. */
static json_t *region(void)
{
    json_t *orgs = json_array();
    json_array_append_new(orgs, org("school-1", "school", "signal referral", ""));
    json_array_append_new(orgs, org("smw-1", "smw", "signal", ""));
    json_array_append_new(orgs, org("ggd-1", "ggd", "signal absence", ""));
    json_array_append_new(orgs, org("wijkteam-1", "wijkteam", "referral_received", ""));
    json_array_append_new(orgs, org("ppo-1", "ppo", "tlv", ""));
    json_array_append_new(orgs, org("veiligthuis-1", "veiligthuis", "veiligthuis_feedback", ""));
    json_array_append_new(orgs, org("gemeente-1", "gemeente", "beschikking", ""));
    json_array_append_new(orgs,
                          org("svc-1", "service", "consent_decision clock_tick", "read_all decide clock"));
    json_array_append_new(orgs, org("admin-1", "admin", "directory_update", "directory"));
    json_array_append_new(orgs, org("leerplicht-1", "leerplicht", "absence", ""));
    return json_pack("{s:i, s:o, s:[{s:s, s:s, s:s, s:{s:s, s:s}}], s:[{s:s, s:s}], s:{s:s, s:s}}", "version",
                     1, "organisations", orgs, "schools", "brinvest", "12AB00", "org", "school-1", "district",
                     "noord", "team", "smw", "smw-1", "wijkteam", "wijkteam-1", "districts", "code", "noord",
                     "wijkteam", "wijkteam-1", "region", "veiligthuis", "veiligthuis-1", "leerplicht",
                     "leerplicht-1");
}

static json_t *org_at(json_t *d, size_t i)
{
    return json_array_get(json_object_get(d, "organisations"), i);
}

/* Parses text; fails the test unless it is refused with a reason that
 * contains want. */
static void refused_text(const char *text, size_t len, const char *want)
{
    char why[SCHAKEL_ERRLEN] = "";
    schakel_directory_t *d = schakel_directory_parse(text, len, why);
    if (d) {
        schakel_directory_destroy(&d);
        fail_msg("accepted a directory that should be refused (%s)", want);
    }
    if (!strstr(why, want)) fail_msg("reason \"%s\" does not say \"%s\"", why, want);
    assert_true(strlen(why) < SCHAKEL_ERRLEN);
}

/* Refuses d (and frees it). */
static void refused(json_t *d, const char *want)
{
    char *text = json_dumps(d, JSON_COMPACT);
    assert_non_null(text);
    refused_text(text, strlen(text), want);
    free(text);
    json_decref(d);
}

static void a_least_privilege_region_parses(void **state)
{
    (void)state;
    json_t *j = region();
    char *text = json_dumps(j, JSON_COMPACT);
    char why[SCHAKEL_ERRLEN] = "";
    schakel_directory_t *d = schakel_directory_parse(text, strlen(text), why);
    if (!d) fail_msg("refused: %s", why);
    const schakel_org_t *a = schakel_directory_by_id(d, "admin-1");
    assert_non_null(a);
    assert_int_equal(a->kind, SCHAKEL_ORG_KIND_ADMIN);
    assert_string_equal(schakel_org_kind_name(a->kind), "admin");
    assert_int_equal(a->rights, SCHAKEL_RIGHT_DIRECTORY);
    assert_int_equal(schakel_directory_count_right(d, SCHAKEL_RIGHT_DIRECTORY), 1);
    assert_int_equal(schakel_directory_count_right(d, SCHAKEL_RIGHT_READ_ALL), 1);
    /* "admin" is the directory's, never an OrgKind elsewhere (routing
     * rules, feedback deadlines, consent recipients) */
    assert_int_equal(schakel_org_kind_parse("admin"), -1);
    schakel_directory_destroy(&d);
    free(text);
    json_decref(j);
}

/* The attack of issue 10: a data holder that grants itself read_all. */
static void data_holding_kinds_get_no_rights(void **state)
{
    (void)state;
    const char *rights[] = {"read_all", "decide", "directory", "clock"};
    for (size_t i = 0; i <= 6; i++) {
        for (size_t r = 0; r < 4; r++) {
            json_t *d = region();
            json_array_append_new(json_object_get(org_at(d, i), "rights"), json_string(rights[r]));
            char want[128];
            snprintf(want, sizeof want, "holds data about children and may not have \"%s\"", rights[r]);
            refused(d, want);
        }
    }
}

/* The rules on the log come from the bus itself: no organisation, of any
 * kind or right, may list rules_update. */
static void no_organisation_may_publish_rules_update(void **state)
{
    (void)state;
    for (size_t i = 0; i <= 8; i++) {
        json_t *d = region();
        json_array_append_new(json_object_get(org_at(d, i), "publish"), json_string("rules_update"));
        refused(d, "no organisation may publish rules_update");
    }
}

/* An attack review: a school allowed to publish routing_decision had the
 * consent service decide another school's referral for it. A data holder
 * publishes domain events and its adapter's health, never what the bus's
 * services decide or the bus itself records. */
static void a_data_holder_may_not_publish_system_events(void **state)
{
    (void)state;
    const char *system[] = {"routing_decision", "consent_decision", "loop_reminder", "directory_update",
                            "clock_tick",       "audit_access",     "erasure"};
    for (size_t i = 0; i <= 6; i++) {
        for (size_t t = 0; t < sizeof system / sizeof system[0]; t++) {
            json_t *d = region();
            json_array_append_new(json_object_get(org_at(d, i), "publish"), json_string(system[t]));
            char want[160];
            snprintf(want, sizeof want, "holds data about children and may not publish %s", system[t]);
            refused(d, want);
        }
    }
    json_t *d = region();
    json_array_append_new(json_object_get(org_at(d, 0), "publish"), json_string("adapter_status"));
    char *text = json_dumps(d, JSON_COMPACT);
    char why[SCHAKEL_ERRLEN] = "";
    schakel_directory_t *dir = schakel_directory_parse(text, strlen(text), why);
    if (!dir) fail_msg("adapter_status refused: %s", why);
    schakel_directory_destroy(&dir);
    free(text);
    json_decref(d);
}

/* A cursor is kept under org/consumer/stream: "svc-1" with consumer "x"
 * must not meet an organisation "svc-1/x" (an attack review). */
static void no_id_is_under_another(void **state)
{
    (void)state;
    json_t *d = region();
    const char *under = json_string_value(json_object_get(org_at(d, 7), "id"));
    char id[80];
    snprintf(id, sizeof id, "%s/x", under);
    json_object_set_new(org_at(d, 6), "id", json_string(id));
    char want[160];
    snprintf(want, sizeof want, "organisations[6].id: %s is under the id of %s", id, under);
    refused(d, want);
}

static void only_an_admin_has_the_directory_right(void **state)
{
    (void)state;
    json_t *d = region();
    json_array_append_new(json_object_get(org_at(d, 7), "rights"), json_string("directory"));
    refused(d, "organisations[7] (svc-1).rights: only an organisation of kind \"admin\" may have");

    const char *other[] = {"read_all", "decide", "clock"};
    for (size_t r = 0; r < 3; r++) {
        d = region();
        json_array_append_new(json_object_get(org_at(d, 8), "rights"), json_string(other[r]));
        refused(d, "organisations[8] (admin-1).rights: an admin may have only \"directory\"");
    }
    d = region();
    json_array_append_new(json_object_get(org_at(d, 8), "publish"), json_string("signal"));
    refused(d, "organisations[8] (admin-1).publish: an admin may publish only directory_update, not signal");

    /* nor is an admin a team member, a district's wijkteam or a kind
     * anyone can be routed to */
    d = region();
    json_object_set_new(json_object_get(json_array_get(json_object_get(d, "schools"), 0), "team"), "admin",
                        json_string("admin-1"));
    refused(d, "schools[0].team.admin: not an organisation kind");
    d = region();
    json_object_set_new(json_object_get(json_array_get(json_object_get(d, "schools"), 0), "team"), "smw",
                        json_string("admin-1"));
    refused(d, "admin-1 is a admin, not a smw");
}

/* A document already on the log was admitted under the rules of its day:
 * the services replay it as it was. */
static void history_skips_the_rights_policy_only(void **state)
{
    (void)state;
    json_t *j = region();
    json_array_append_new(json_object_get(org_at(j, 6), "rights"), json_string("directory"));
    char *text = json_dumps(j, JSON_COMPACT);
    char why[SCHAKEL_ERRLEN] = "";
    assert_null(schakel_directory_parse(text, strlen(text), why));
    schakel_directory_t *d = schakel_directory_parse_with(text, strlen(text), SCHAKEL_DIRECTORY_HISTORY, why);
    if (!d) fail_msg("history refused: %s", why);
    assert_true(schakel_directory_by_id(d, "gemeente-1")->rights & SCHAKEL_RIGHT_DIRECTORY);
    schakel_directory_destroy(&d);
    free(text);
    json_decref(j);
    /* but not the rest of the checks */
    j = region();
    json_object_set_new(org_at(j, 0), "colour", json_string("red"));
    text = json_dumps(j, JSON_COMPACT);
    assert_null(schakel_directory_parse_with(text, strlen(text), SCHAKEL_DIRECTORY_HISTORY, why));
    free(text);
    json_decref(j);
}

static void missing_fields_are_named(void **state)
{
    (void)state;
    const struct {
        const char *field, *want;
    } cases[] = {
        {"id", "organisations[1].id: missing or not a valid id"},
        {"kind", "organisations[1] (smw-1).kind: missing"},
        {"curve_public", "organisations[1] (smw-1).curve_public: missing"},
        {"sign_public", "organisations[1] (smw-1).sign_public: missing"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *d = region();
        json_object_del(org_at(d, 1), cases[i].field);
        refused(d, cases[i].want);
    }
    json_t *d = region();
    json_object_del(d, "version");
    refused(d, "directory.version: a positive whole number is needed");
    d = region();
    json_object_del(d, "organisations");
    refused(d, "directory.organisations: a list is needed");
    d = region();
    json_object_del(json_array_get(json_object_get(d, "schools"), 0), "brinvest");
    refused(d, "schools[0].brinvest: missing");
}

static void wrong_types_are_named(void **state)
{
    (void)state;
    const struct {
        const char *field;
        json_t *(*value)(void);
        const char *want;
    } cases[] = {
        {"id", json_true, "organisations[2].id: missing or not a valid id"},
        {"kind", json_null, "organisations[2] (ggd-1).kind: one of school"},
        {"name", json_false, "organisations[2] (ggd-1).name: a string of at most 127 bytes"},
        {"publish", json_object, "organisations[2] (ggd-1).publish: not a list"},
        {"rights", json_true, "organisations[2] (ggd-1).rights: not a list"},
        {"curve_public", json_array, "organisations[2] (ggd-1).curve_public: 40 Z85 characters"},
        {"sign_public", json_null, "organisations[2] (ggd-1).sign_public: 64 hex characters"},
        {"escalation", json_array, "organisations[2] (ggd-1).escalation: an organisation id"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *d = region();
        json_object_set_new(org_at(d, 2), cases[i].field, cases[i].value());
        refused(d, cases[i].want);
    }
    json_t *d = region();
    json_array_append_new(json_object_get(org_at(d, 2), "publish"), json_integer(100));
    refused(d, "organisations[2] (ggd-1).publish[2]: unknown event type \"?\"");
    d = region();
    json_array_append_new(json_object_get(org_at(d, 0), "rights"), json_integer(1));
    refused(d, "organisations[0] (school-1).rights[0]: \"read_all\", \"decide\", \"directory\" or \"clock\"");
    d = region();
    json_object_set_new(d, "version", json_string("2"));
    refused(d, "directory.version");
    d = region();
    json_object_set_new(d, "version", json_integer(-3));
    refused(d, "directory.version");
    d = region();
    json_object_set_new(d, "organisations", json_object());
    refused(d, "directory.organisations: a list is needed");
    d = region();
    json_array_set_new(json_object_get(d, "organisations"), 3, json_string("wijkteam-1"));
    refused(d, "organisations[3]: not an object");
    d = region();
    json_object_set_new(d, "schools", json_object());
    refused(d, "directory.schools: a list");
    d = region();
    json_object_set_new(d, "region", json_array());
    refused(d, "directory.region: an object");
    d = region();
    json_object_set_new(json_object_get(d, "region"), "veiligthuis", json_string("school-1"));
    refused(d, "region.veiligthuis: school-1 is a school, not a veiligthuis");
    refused_text("[1, 2]", 6, "directory: line");
    refused_text("", 0, "directory: line");
    refused_text("{\"version\": 1, \"organisations\": [", 33, "directory: line 1");
    refused_text("{\"version\": 1, \"organisations\": []}   \x01", 39, "directory: line 1");
}

static void duplicates_are_refused(void **state)
{
    (void)state;
    json_t *d = region();
    json_object_set_new(org_at(d, 4), "id", json_string("smw-1"));
    refused(d, "organisations[4]: id smw-1 is listed twice");
    d = region();
    json_object_set(org_at(d, 5), "curve_public", json_object_get(org_at(d, 3), "curve_public"));
    refused(d, "organisations[5] (veiligthuis-1).curve_public: the same key as wijkteam-1");
    d = region();
    json_array_append(json_object_get(d, "schools"), json_array_get(json_object_get(d, "schools"), 0));
    refused(d, "schools[1]: 12AB00 is listed twice");
    d = region();
    json_array_append_new(json_object_get(d, "districts"),
                          json_pack("{s:s, s:s}", "code", "noord", "wijkteam", "wijkteam-1"));
    refused(d, "districts[1]: noord is listed twice");
    /* the same key twice in one object: which one would count? neither */
    const char *twice = "{\"version\": 1, \"version\": 2, \"organisations\": []}";
    refused_text(twice, strlen(twice), "duplicate object key");
    json_t *j = region();
    char *text = json_dumps(j, JSON_COMPACT);
    char *k = strstr(text, "\"kind\":\"school\"");
    assert_non_null(k);
    size_t len = strlen(text) + 32;
    char *evil = malloc(len);
    snprintf(evil, len, "%.*s\"kind\":\"service\",%s", (int)(k - text), text, k);
    refused_text(evil, strlen(evil), "duplicate object key");
    free(evil);
    free(text);
    json_decref(j);
}

static void huge_strings_are_refused_not_truncated(void **state)
{
    (void)state;
    size_t n = 100000;
    char *big = malloc(n + 1);
    memset(big, 'a', n);
    big[n] = 0;
    json_t *d = region();
    json_object_set_new(org_at(d, 0), "name", json_string(big));
    refused(d, "organisations[0] (school-1).name: a string of at most 127 bytes");
    d = region();
    json_object_set_new(org_at(d, 0), "id", json_string(big));
    refused(d, "organisations[0].id: missing or not a valid id");
    d = region();
    json_object_set_new(org_at(d, 1), "escalation", json_string(big));
    refused(d, "organisations[1] (smw-1).escalation: an organisation id");
    d = region();
    json_array_append_new(json_object_get(org_at(d, 1), "publish"), json_string(big));
    refused(d, "organisations[1] (smw-1).publish[1]: unknown event type");
    d = region();
    json_object_set_new(json_array_get(json_object_get(d, "districts"), 0), "code", json_string(big));
    refused(d, "districts[0]");
    d = region();
    json_object_set_new(org_at(d, 1), big, json_true());
    refused(d, "organisations[1] (smw-1): unknown field");
    /* 128 bytes is one too many, 127 fits */
    big[128] = 0;
    d = region();
    json_object_set_new(org_at(d, 0), "name", json_string(big));
    refused(d, "name: a string of at most 127 bytes");
    big[127] = 0;
    d = region();
    json_object_set_new(org_at(d, 0), "name", json_string(big));
    char *text = json_dumps(d, JSON_COMPACT);
    schakel_directory_t *dir = schakel_directory_parse(text, strlen(text), NULL);
    assert_non_null(dir);
    assert_int_equal(strlen(schakel_directory_by_id(dir, "school-1")->name), 127);
    schakel_directory_destroy(&dir);
    free(text);
    json_decref(d);
    free(big);
}

static void bad_and_reserved_ids_are_refused(void **state)
{
    (void)state;
    const char *bad[] = {"", "-school", "School-1", "school 1", "school\"1", "sch\xc3\xa9ol", "a\\nb"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        json_t *d = region();
        json_object_set_new(org_at(d, 0), "id", json_string(bad[i]));
        refused(d, "organisations[0].id: missing or not a valid id");
    }
    /* a NUL inside a string: never cut off at it */
    const char *nul = "{\"version\": 1, \"organisations\": [{\"id\": \"school-1\\u0000x\"}]}";
    refused_text(nul, strlen(nul), "directory: line 1");
    json_t *j = region();
    char *text = json_dumps(j, JSON_COMPACT);
    char *k = strstr(text, "\"synthetic\"");
    assert_non_null(k);
    size_t len = strlen(text) + 32;
    char *evil = malloc(len);
    snprintf(evil, len, "%.*s\"synth\\u0000etic\"%s", (int)(k - text), text, k + strlen("\"synthetic\""));
    refused_text(evil, strlen(evil), "directory: line 1");
    free(evil);
    free(text);
    json_decref(j);
    /* escalation and references must name a listed organisation */
    json_t *d = region();
    json_object_set_new(org_at(d, 1), "escalation", json_string("nobody"));
    refused(d, "organisations[1] (smw-1).escalation: nobody is not listed here");
    d = region();
    json_object_set_new(json_array_get(json_object_get(d, "schools"), 0), "org", json_string("nobody"));
    refused(d, "schools[0].org: \"nobody\" is not an organisation listed here");
}

static void unknown_keys_are_refused(void **state)
{
    (void)state;
    json_t *d = region();
    json_object_set_new(org_at(d, 0), "superuser", json_true());
    refused(d, "organisations[0] (school-1): unknown field \"superuser\"");
    d = region();
    json_object_set_new(d, "admins", json_array());
    refused(d, "directory: unknown field \"admins\"");
    d = region();
    json_object_set_new(json_array_get(json_object_get(d, "schools"), 0), "grants", json_true());
    refused(d, "schools[0]: unknown field \"grants\"");
    d = region();
    json_object_set_new(json_object_get(d, "region"), "admin", json_string("admin-1"));
    refused(d, "region.admin: \"veiligthuis\" or \"leerplicht\"");
    d = region();
    json_object_set_new(json_array_get(json_object_get(d, "districts"), 0), "extra", json_true());
    refused(d, "districts[0]: {\"code\"");
    d = region();
    json_array_append_new(json_object_get(org_at(d, 7), "rights"), json_string("root"));
    refused(d, "organisations[7] (svc-1).rights[3]");
    d = region();
    json_object_set_new(org_at(d, 7), "kind", json_string("superservice"));
    refused(d, "organisations[7] (svc-1).kind: one of school smw ggd wijkteam ppo veiligthuis gemeente "
               "leerplicht service admin");
}

/* What the broker checks at publish about the organisations an event
 * names, from the directory alone. */
static void named_recipients_are_checked(void **state)
{
    (void)state;
    json_t *j = region();
    json_array_append_new(json_object_get(j, "organisations"), org("school-2", "school", "signal", ""));
    char *text = json_dumps(j, JSON_COMPACT);
    schakel_directory_t *d = schakel_directory_parse(text, strlen(text), NULL);
    assert_non_null(d);
    const schakel_org_t *school = schakel_directory_by_id(d, "school-1");
    const schakel_org_t *smw = schakel_directory_by_id(d, "smw-1");
    Schakel__V1__Envelope e = SCHAKEL__V1__ENVELOPE__INIT;
    char *names[2] = {"smw-1", NULL};
    e.addressees = names;
    e.n_addressees = 2;
    const struct {
        const char *name;
        int from_smw;
        const char *want;
    } cases[] = {
        {"school-1", 0, ""}, /* itself: routing leaves it out */
        {"wijkteam-1", 0, ""},
        {"school-2", 0, "addressees[1]: a school may not name another school (school-2)"},
        {"bsn-123456782", 0, "addressees[1]: not an organisation in the directory"},
        {"admin-1", 0, "addressees[1]: admin-1 keeps the directory and receives no events"},
        {"school-2", 1, ""}, /* from the smw: the routing rules decide */
    };
    char why[SCHAKEL_ERRLEN];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        names[1] = (char *)cases[i].name;
        why[0] = 0;
        int rc = schakel_directory_check_named(d, cases[i].from_smw ? smw : school, &e, why);
        if (cases[i].want[0] ? rc != SCHAKEL_EINVAL || !strstr(why, cases[i].want) : rc != 0)
            fail_msg("%s: rc %d, reason \"%s\", wanted \"%s\"", cases[i].name, rc, why, cases[i].want);
        assert_null(strstr(why, "123456782"));
    }
    e.n_addressees = 0;
    Schakel__V1__Referral ref = SCHAKEL__V1__REFERRAL__INIT;
    e.body_case = SCHAKEL__V1__ENVELOPE__BODY_REFERRAL;
    e.referral = &ref;
    ref.to_kind = SCHAKEL__V1__ORG_KIND__ORG_KIND_WIJKTEAM;
    ref.to_org = "wijkteam-1";
    assert_int_equal(schakel_directory_check_named(d, school, &e, why), 0);
    ref.to_org = "ggd-1";
    assert_int_equal(schakel_directory_check_named(d, school, &e, why), SCHAKEL_EINVAL);
    assert_non_null(strstr(why, "referral.to_org: ggd-1 is a ggd, not the wijkteam that to_kind names"));
    Schakel__V1__ConsentGiven cg = SCHAKEL__V1__CONSENT_GIVEN__INIT;
    e.body_case = SCHAKEL__V1__ENVELOPE__BODY_CONSENT_GIVEN;
    e.consent_given = &cg;
    cg.recipient_org = "school-2";
    assert_int_equal(schakel_directory_check_named(d, school, &e, why), SCHAKEL_EINVAL);
    assert_non_null(strstr(why, "consent_given.recipient_org: a school may not name another school"));
    schakel_directory_destroy(&d);
    free(text);
    json_decref(j);
}

/* Issue 16: municipalities with their leerplicht office, parsed strictly,
 * and the office of a child's home municipality. */
static void municipalities_choose_the_leerplicht_office(void **state)
{
    (void)state;
    char why[SCHAKEL_ERRLEN] = "";
    const char *reason;
    /* without municipalities: the region's office */
    json_t *j = region();
    char *text = json_dumps(j, JSON_COMPACT);
    schakel_directory_t *d = schakel_directory_parse(text, strlen(text), why);
    assert_non_null(d);
    assert_string_equal(schakel_directory_home_leerplicht(d, NULL, "", &reason), "leerplicht-1");
    schakel_directory_destroy(&d);
    free(text);
    json_decref(j);

#define MUNI(extra) json_pack("[{s:s, s:s, s:[s, s]}" extra "]", "code", "stad", "leerplicht", "leerplicht-1", \
                              "districts", "noord", "centrum"
    j = region();
    json_array_append_new(json_object_get(j, "organisations"),
                          org("leerplicht-2", "leerplicht", "absence", ""));
    json_object_set_new(j, "municipalities", MUNI(", {s:s, s:s, s:[s]}"), "code", "dorp", "leerplicht",
                                                  "leerplicht-2", "districts", "zuid"));
    text = json_dumps(j, JSON_COMPACT);
    d = schakel_directory_parse(text, strlen(text), why);
    if (!d) fail_msg("refused: %s", why);
    assert_string_equal(schakel_directory_home_leerplicht(d, NULL, "zuid", &reason), "leerplicht-2");
    assert_string_equal(schakel_directory_home_leerplicht(d, NULL, "centrum", &reason), "leerplicht-1");
    assert_string_equal(schakel_directory_home_leerplicht(d, "dorp", "noord", &reason), "leerplicht-2");
    assert_null(schakel_directory_home_leerplicht(d, NULL, "", &reason));
    assert_string_equal(reason, "home_municipality_unknown");
    assert_null(schakel_directory_home_leerplicht(d, NULL, "oost", &reason));
    assert_string_equal(reason, "district_not_in_a_municipality");
    assert_null(schakel_directory_home_leerplicht(d, "elders", "zuid", &reason));
    assert_string_equal(reason, "municipality_not_in_directory");
    schakel_directory_destroy(&d);
    free(text);

    /* strict: each mistake refused with the place named */
    json_t *m = json_deep_copy(j);
    json_object_set_new(json_array_get(json_object_get(m, "municipalities"), 0), "extra", json_true());
    refused(m, "municipalities[0]: {\"code\"");
    m = json_deep_copy(j);
    json_object_set_new(json_array_get(json_object_get(m, "municipalities"), 1), "leerplicht",
                        json_string("ppo-1"));
    refused(m, "municipalities[1].leerplicht: ppo-1 is a ppo, not a leerplicht");
    /* the municipality's youth care is not its leerplicht office: refused
     * in a new document, read as it was in one already on the log */
    m = json_deep_copy(j);
    json_object_set_new(json_array_get(json_object_get(m, "municipalities"), 1), "leerplicht",
                        json_string("gemeente-1"));
    text = json_dumps(m, JSON_COMPACT);
    d = schakel_directory_parse_with(text, strlen(text), SCHAKEL_DIRECTORY_HISTORY, why);
    if (!d) fail_msg("a document on the log refused: %s", why);
    assert_string_equal(schakel_directory_home_leerplicht(d, "dorp", "", &reason), "gemeente-1");
    schakel_directory_destroy(&d);
    free(text);
    refused(m, "municipalities[1].leerplicht: gemeente-1 is a gemeente, not a leerplicht");
    m = json_deep_copy(j);
    json_object_set_new(json_object_get(m, "region"), "leerplicht", json_string("gemeente-1"));
    refused(m, "region.leerplicht: gemeente-1 is a gemeente, not a leerplicht");
    m = json_deep_copy(j);
    json_object_set_new(json_array_get(json_object_get(m, "municipalities"), 1), "leerplicht",
                        json_string("nobody"));
    refused(m, "municipalities[1].leerplicht: \"nobody\" is not an organisation listed here");
    m = json_deep_copy(j);
    json_array_append_new(
        json_object_get(json_array_get(json_object_get(m, "municipalities"), 1), "districts"),
        json_string("noord"));
    refused(m, "municipalities[1].districts[1]: noord is already in municipality stad");
    m = json_deep_copy(j);
    json_object_set_new(json_array_get(json_object_get(m, "municipalities"), 1), "code", json_string("stad"));
    refused(m, "municipalities[1]: stad is listed twice");
    m = json_deep_copy(j);
    json_array_set_new(json_object_get(json_array_get(json_object_get(m, "municipalities"), 1), "districts"),
                       0, json_string("Zuid Oost"));
    refused(m, "municipalities[1].districts[0]: a district code");
    m = json_deep_copy(j);
    json_object_set_new(m, "municipalities", json_object());
    refused(m, "directory.municipalities: a list");
    json_decref(j);
#undef MUNI
}

/* The days a royal decree equates with holidays travel in the directory
 * (docs/feedback.md, "Deadlines"): parsed as strictly as the rest. */
static void holidays_are_the_decree_days(void **state)
{
    (void)state;
    char why[SCHAKEL_ERRLEN] = "";
    json_t *d = region();
    json_object_set_new(
        d, "holidays",
        json_pack("{s:s, s:[s, s]}", "decree", "a decree", "decree_days", "2027-05-07", "2026-05-15"));
    char *text = json_dumps(d, 0);
    schakel_directory_t *dir = schakel_directory_parse(text, strlen(text), why);
    free(text);
    if (!dir) fail_msg("refused: %s", why);
    const schakel_decree_days_t *dd = schakel_directory_decree_days(dir);
    assert_int_equal(dd->n, 2);
    assert_true(schakel_is_holiday(dd, schakel_date_days("2026-05-15")));
    assert_true(schakel_is_holiday(dd, schakel_date_days("2027-05-07")));
    schakel_directory_destroy(&dir);
    json_object_set_new(d, "holidays", json_pack("{s:[s]}", "decree_days", "2028-02-30"));
    refused(json_incref(d), "directory.holidays.decree_days[0]: not a real date");
    json_object_set_new(d, "holidays", json_pack("{s:[], s:i}", "decree_days", "version", 1));
    refused(json_incref(d), "directory.holidays: unknown key \"version\"");
    json_object_set_new(d, "holidays", json_pack("[s]", "2026-05-15"));
    refused(json_incref(d), "directory.holidays: an object");
    json_decref(d);
    /* no section: no decree days */
    d = region();
    text = json_dumps(d, 0);
    dir = schakel_directory_parse(text, strlen(text), why);
    free(text);
    assert_non_null(dir);
    assert_int_equal(schakel_directory_decree_days(dir)->n, 0);
    schakel_directory_destroy(&dir);
    json_decref(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_least_privilege_region_parses),
        cmocka_unit_test(data_holding_kinds_get_no_rights),
        cmocka_unit_test(no_organisation_may_publish_rules_update),
        cmocka_unit_test(only_an_admin_has_the_directory_right),
        cmocka_unit_test(a_data_holder_may_not_publish_system_events),
        cmocka_unit_test(no_id_is_under_another),
        cmocka_unit_test(history_skips_the_rights_policy_only),
        cmocka_unit_test(missing_fields_are_named),
        cmocka_unit_test(wrong_types_are_named),
        cmocka_unit_test(duplicates_are_refused),
        cmocka_unit_test(huge_strings_are_refused_not_truncated),
        cmocka_unit_test(bad_and_reserved_ids_are_refused),
        cmocka_unit_test(unknown_keys_are_refused),
        cmocka_unit_test(named_recipients_are_checked),
        cmocka_unit_test(municipalities_choose_the_leerplicht_office),
        cmocka_unit_test(holidays_are_the_decree_days),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
