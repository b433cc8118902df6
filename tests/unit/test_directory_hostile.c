/* The directory parser (lib/directory.c) with input no honest admin
 * writes, beyond the one-field mutations of test_directory.c: nesting deep
 * enough to exhaust a recursive parser, arrays of hundreds of thousands of
 * entries, bytes that are not UTF-8, the same key twice at every depth of
 * the document, and the wrong JSON type for every field of the schools,
 * districts, municipalities, region and holidays sections. Each is refused
 * with a reason that names where (or accepted, for a long list that says
 * the same thing many times), never a crash, a hang or a silent fix-up. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#include "crypto.h"
#include "directory.h"
#include "error.h"

/* Keys that parse: a Z85 and a hex form of 32 bytes made from n (the
 * parser checks their form and that no two organisations share a key). */
static json_t *org(const char *id, const char *kind, const char *publish, const char *rights, unsigned n)
{
    uint8_t raw[32] = {0};
    memcpy(raw, &n, sizeof n);
    raw[31] = 0x5a;
    char z85[41], sign[65];
    assert_non_null(zmq_z85_encode(z85, raw, 32));
    raw[30] = 0x11;
    schakel_hex_encode(raw, 32, sign);
    json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:[], s:[]}", "id", id, "kind", kind, "name",
                          "synthetic", "curve_public", z85, "sign_public", sign, "publish", "rights");
    char buf[256];
    char *save = NULL;
    snprintf(buf, sizeof buf, "%s", publish);
    for (char *w = strtok_r(buf, " ", &save); w; w = strtok_r(NULL, " ", &save))
        json_array_append_new(json_object_get(o, "publish"), json_string(w));
    snprintf(buf, sizeof buf, "%s", rights);
    for (char *w = strtok_r(buf, " ", &save); w; w = strtok_r(NULL, " ", &save))
        json_array_append_new(json_object_get(o, "rights"), json_string(w));
    return o;
}

/* A valid region. Index in "organisations": 0 school-1, 1 smw-1,
 * 2 wijkteam-1, 3 veiligthuis-1, 4 leerplicht-1, 5 svc-1, 6 admin-1. */
static json_t *region(void)
{
    json_t *orgs = json_array();
    json_array_append_new(orgs, org("school-1", "school", "signal referral", "", 1));
    json_array_append_new(orgs, org("smw-1", "smw", "signal", "", 2));
    json_array_append_new(orgs, org("wijkteam-1", "wijkteam", "referral_received", "", 3));
    json_array_append_new(orgs, org("veiligthuis-1", "veiligthuis", "veiligthuis_feedback", "", 4));
    json_array_append_new(orgs, org("leerplicht-1", "leerplicht", "absence", "", 5));
    json_array_append_new(orgs,
                          org("svc-1", "service", "consent_decision clock_tick", "read_all decide clock", 6));
    json_array_append_new(orgs, org("admin-1", "admin", "directory_update", "directory", 7));
    return json_pack("{s:i, s:o, s:[{s:s, s:s, s:s, s:{s:s, s:s}}], s:[{s:s, s:s}],"
                     " s:[{s:s, s:s, s:[s]}], s:{s:s, s:s}, s:{s:s, s:[s]}}",
                     "version", 1, "organisations", orgs, "schools", "brinvest", "12AB00", "org", "school-1",
                     "district", "noord", "team", "smw", "smw-1", "wijkteam", "wijkteam-1", "districts",
                     "code", "noord", "wijkteam", "wijkteam-1", "municipalities", "code", "stad",
                     "leerplicht", "leerplicht-1", "districts", "noord", "region", "veiligthuis",
                     "veiligthuis-1", "leerplicht", "leerplicht-1", "holidays", "decree", "synthetic decree",
                     "decree_days", "2026-12-24");
}

static char *text_of(json_t *d)
{
    char *t = json_dumps(d, JSON_COMPACT | JSON_SORT_KEYS);
    assert_non_null(t);
    return t;
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
}

static void refused(json_t *d, const char *want)
{
    char *t = text_of(d);
    refused_text(t, strlen(t), want);
    free(t);
    json_decref(d);
}

/* Replaces the first occurrence of from in text by to (a new string). */
static char *splice(const char *text, const char *from, const char *to)
{
    const char *at = strstr(text, from);
    if (!at) fail_msg("\"%s\" not in the test document", from);
    size_t len = strlen(text) - strlen(from) + strlen(to) + 1;
    char *out = malloc(len);
    snprintf(out, len, "%.*s%s%s", (int)(at - text), text, to, at + strlen(from));
    return out;
}

static void refused_spliced(const char *from, const char *to, const char *want)
{
    json_t *d = region();
    char *t = text_of(d);
    char *evil = splice(t, from, to);
    refused_text(evil, strlen(evil), want);
    free(evil);
    free(t);
    json_decref(d);
}

static double seconds_since(const struct timespec *t0)
{
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (double)(t1.tv_sec - t0->tv_sec) + (double)(t1.tv_nsec - t0->tv_nsec) / 1e9;
}

static void the_test_region_parses(void **state)
{
    (void)state;
    json_t *j = region();
    char *t = text_of(j);
    char why[SCHAKEL_ERRLEN] = "";
    schakel_directory_t *d = schakel_directory_parse(t, strlen(t), why);
    if (!d) fail_msg("the test's own region is refused: %s", why);
    assert_int_equal(schakel_directory_count(d), 7);
    schakel_directory_destroy(&d);
    free(t);
    json_decref(j);
}

/* [[[[...]]]] a hundred thousand deep: as the whole document, as a field
 * value, as a list element. The JSON parser stops at its depth limit;
 * nothing recurses that deep. Within the limit, the field is named. */
static void deep_nesting_is_refused_without_recursing(void **state)
{
    (void)state;
    size_t depth = 100000;
    char *deep = malloc(2 * depth + 1);
    memset(deep, '[', depth);
    memset(deep + depth, ']', depth);
    deep[2 * depth] = 0;
    refused_text(deep, strlen(deep), "directory: line 1");
    for (size_t i = 0; i < depth; i++) deep[i] = i % 2 ? '[' : '{'; /* not JSON at all: {[{[ */
    refused_text(deep, strlen(deep), "directory: line 1");
    memset(deep, '[', depth);
    refused_spliced("\"name\":\"synthetic\"", "\"name\":\"synthetic\",\"extra\":[[[[[[[[[[",
                    "directory: line 1");
    char *value = malloc(2 * depth + 32);
    snprintf(value, 2 * depth + 32, "\"name\":%s", deep);
    refused_spliced("\"name\":\"synthetic\"", value, "directory: line 1");
    snprintf(value, 2 * depth + 32, "\"publish\":[\"signal\",%s", deep);
    refused_spliced("\"publish\":[\"signal\"", value, "directory: line 1");
    /* 500 deep is within what JSON allows: then the directory's own check
     * names the field */
    size_t ok = 500;
    snprintf(value, 2 * depth + 32, "\"name\":%.*s%.*s", (int)ok, deep, (int)ok, deep + depth);
    refused_spliced("\"name\":\"synthetic\"", value, "organisations[0] (school-1).name: a string");
    snprintf(value, 2 * depth + 32, "\"district\":%.*s%.*s", (int)ok, deep, (int)ok, deep + depth);
    refused_spliced("\"district\":\"noord\"", value, "schools[0].district: a district code");
    snprintf(value, 2 * depth + 32, "\"decree\":%.*s%.*s", (int)ok, deep, (int)ok, deep + depth);
    refused_spliced("\"decree\":\"synthetic decree\"", value, "directory.holidays.decree: must be a string");
    free(value);
    free(deep);
}

/* Long lists: refused at the first bad entry, or, when every entry is
 * good, parsed in bounded time. */
static void huge_arrays_are_parsed_or_refused_in_bounded_time(void **state)
{
    (void)state;
    size_t n = 100000;
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    /* a publish list that names one type 100000 times says "signal" */
    json_t *d = region();
    json_t *pub = json_object_get(json_array_get(json_object_get(d, "organisations"), 1), "publish");
    for (size_t i = 0; i < n; i++) json_array_append_new(pub, json_string("signal"));
    char *t = text_of(d);
    char why[SCHAKEL_ERRLEN] = "";
    schakel_directory_t *dir = schakel_directory_parse(t, strlen(t), why);
    if (!dir) fail_msg("refused: %s", why);
    const schakel_org_t *smw = schakel_directory_by_id(dir, "smw-1");
    assert_true(smw->may_publish[SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_SIGNAL]);
    assert_false(smw->may_publish[SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_REFERRAL]);
    schakel_directory_destroy(&dir);
    free(t);
    /* ... and one bad entry at the very end is found and named */
    json_array_append_new(pub, json_string("referral_everything"));
    char want[96];
    snprintf(want, sizeof want, "organisations[1] (smw-1).publish[%zu]: unknown event type", n + 1);
    refused(d, want);
    /* 100000 entries that are not organisations, schools, districts or
     * municipalities: the first is named */
    const char *lists[] = {"organisations", "schools", "districts", "municipalities"};
    const char *wants[] = {"organisations[0]: not an object", "schools[0]: not an object", "districts[0]: {",
                           "municipalities[0]"};
    for (size_t k = 0; k < 4; k++) {
        d = region();
        json_t *big = json_array();
        for (size_t i = 0; i < n; i++) json_array_append_new(big, json_integer((json_int_t)i));
        json_object_set_new(d, lists[k], big);
        refused(d, wants[k]);
    }
    /* rights repeated 100000 times on a service are its three rights */
    d = region();
    json_t *rights = json_object_get(json_array_get(json_object_get(d, "organisations"), 5), "rights");
    for (size_t i = 0; i < n; i++) json_array_append_new(rights, json_string("decide"));
    t = text_of(d);
    dir = schakel_directory_parse(t, strlen(t), why);
    if (!dir) fail_msg("refused: %s", why);
    assert_int_equal(schakel_directory_by_id(dir, "svc-1")->rights,
                     SCHAKEL_RIGHT_READ_ALL | SCHAKEL_RIGHT_DECIDE | SCHAKEL_RIGHT_CLOCK);
    schakel_directory_destroy(&dir);
    free(t);
    json_decref(d);
    /* a region of 2000 organisations, every one found by id and by key */
    d = region();
    json_t *orgs = json_object_get(d, "organisations");
    for (unsigned i = 0; i < 2000; i++) {
        char id[32];
        snprintf(id, sizeof id, "smw-%u", 1000 + i);
        json_array_append_new(orgs, org(id, "smw", "signal", "", 100 + i));
    }
    t = text_of(d);
    dir = schakel_directory_parse(t, strlen(t), why);
    if (!dir) fail_msg("refused: %s", why);
    assert_int_equal(schakel_directory_count(dir), 2007);
    for (size_t i = 0; i < schakel_directory_count(dir); i++) {
        const schakel_org_t *o = schakel_directory_at(dir, i);
        assert_ptr_equal(schakel_directory_by_id(dir, o->id), o);
        assert_ptr_equal(schakel_directory_by_curve(dir, o->curve_public), o);
    }
    schakel_directory_destroy(&dir);
    free(t);
    json_decref(d);
    double s = seconds_since(&t0);
    if (s > 30.0) fail_msg("the huge lists took %.1f s: something is quadratic", s); /* about 0.5 s */
}

/* JSON text is UTF-8; anything else is refused before any field is read,
 * so a name can never carry bytes a terminal or log viewer would read as
 * control sequences. Valid UTF-8 in a name is a name. */
static void bytes_that_are_not_utf8_are_refused(void **state)
{
    (void)state;
    const struct {
        const char *from, *to;
    } cases[] = {
        {"\"name\":\"synthetic\"", "\"name\":\"synth\xff"
                                   "etic\""}, /* never valid */
        {"\"name\":\"synthetic\"", "\"name\":\"synth\xc0\xaf"
                                   "etic\""}, /* overlong '/' */
        {"\"name\":\"synthetic\"", "\"name\":\"synth\xed\xa0\x80"
                                   "etic\""}, /* a surrogate as UTF-8 */
        {"\"name\":\"synthetic\"", "\"name\":\"synth\xf4\x90\x80\x80"
                                   "etic\""},                         /* above U+10FFFF */
        {"\"name\":\"synthetic\"", "\"name\":\"synthetic\xe2\x82\""}, /* cut short */
        {"\"name\":\"synthetic\"", "\"name\":\"synth\\ud800etic\""},  /* a lone surrogate escaped */
        {"\"name\":\"synthetic\"", "\"name\":\"synth\\udc00etic\""},
        {"\"id\":\"school-1\"", "\"\xfe\xff"
                                "id\":\"school-1\""}, /* in a key */
        {"\"district\":\"noord\"", "\"district\":\"no\x80rd\""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        refused_spliced(cases[i].from, cases[i].to, "directory: line 1");
    /* Latin-1 é is not UTF-8 */
    refused_spliced("\"name\":\"synthetic\"", "\"name\":\"Caf\xe9\"", "directory: line 1");
    /* UTF-8 é is, and stays a name (not an id: ids are a-z 0-9 . _ / -) */
    json_t *d = region();
    char *t = text_of(d);
    char *ok = splice(t, "\"name\":\"synthetic\"", "\"name\":\"OBS Caf\xc3\xa9 \\u00e9\"");
    char why[SCHAKEL_ERRLEN] = "";
    schakel_directory_t *dir = schakel_directory_parse(ok, strlen(ok), why);
    if (!dir) fail_msg("refused: %s", why);
    assert_string_equal(schakel_directory_by_id(dir, "school-1")->name, "OBS Caf\xc3\xa9 \xc3\xa9");
    schakel_directory_destroy(&dir);
    free(ok);
    free(t);
    json_decref(d);
    refused_spliced("\"id\":\"school-1\"", "\"id\":\"sch\xc3\xb6ol-1\"",
                    "organisations[0].id: missing or not a valid id");
}

/* The same key twice: which one would count? Neither, at any depth. */
static void the_same_key_twice_is_refused_at_every_depth(void **state)
{
    (void)state;
    const struct {
        const char *from, *to;
    } cases[] = {
        {"\"brinvest\":\"12AB00\"", "\"brinvest\":\"12AB00\",\"brinvest\":\"34CD00\""},
        {"\"org\":\"school-1\"", "\"org\":\"school-1\",\"org\":\"school-1\""},
        {"\"smw\":\"smw-1\"", "\"smw\":\"smw-1\",\"smw\":\"svc-1\""},
        {"\"code\":\"noord\"", "\"code\":\"noord\",\"code\":\"zuid\""},
        {"\"veiligthuis\":\"veiligthuis-1\"",
         "\"veiligthuis\":\"veiligthuis-1\",\"veiligthuis\":\"school-1\""},
        {"\"decree\":\"synthetic decree\"", "\"decree\":\"synthetic decree\",\"decree\":\"other\""},
        {"\"code\":\"stad\"", "\"code\":\"stad\",\"code\":\"dorp\""},
        {"\"rights\":[\"directory\"]", "\"rights\":[\"directory\"],\"rights\":[]"},
        {"\"holidays\":", "\"holidays\":{},\"holidays\":"},
        {"\"schools\":", "\"schools\":[],\"schools\":"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        refused_spliced(cases[i].from, cases[i].to, "duplicate object key");
}

/* The wrong JSON type for each field outside the organisations (those
 * are in test_directory.c): the reason names the section and the field. */
static void wrong_types_outside_the_organisations_are_named(void **state)
{
    (void)state;
    const struct {
        const char *from, *to, *want;
    } cases[] = {
        {"\"brinvest\":\"12AB00\"", "\"brinvest\":1200", "schools[0].brinvest: a BRINVEST code"},
        {"\"brinvest\":\"12AB00\"", "\"brinvest\":\"12ab00\\n\"", "schools[0].brinvest: a BRINVEST code"},
        {"\"org\":\"school-1\"", "\"org\":[\"school-1\"]", "schools[0].org"},
        {"\"org\":\"school-1\"", "\"org\":\"smw-1\"", "schools[0].org"},
        {"\"district\":\"noord\"", "\"district\":7", "schools[0].district: a district code"},
        {"\"district\":\"noord\"", "\"district\":null", "schools[0].district: a district code"},
        {"\"team\":{", "\"team\":[],\"x\":{", "schools[0].team: an object"},
        {"\"smw\":\"smw-1\"", "\"smw\":1", "schools[0].team.smw"},
        {"\"smw\":\"smw-1\"", "\"smw\":\"wijkteam-1\"", "schools[0].team.smw"},
        {"\"smw\":\"smw-1\"", "\"service\":\"svc-1\"", "schools[0].team.service: not an organisation kind"},
        {"\"smw\":\"smw-1\"", "\"admin\":\"admin-1\"", "schools[0].team.admin: not an organisation kind"},
        {"\"org\":\"school-1\"", "\"org\":\"school-1\",\"wijkteam_override\":{}",
         "schools[0].wijkteam_override"},
        {"\"districts\":[{", "\"districts\":[\"noord\",{", "districts[0]: {\"code\""},
        {"\"wijkteam\":\"wijkteam-1\"}", "\"wijkteam\":true}", "districts[0].wijkteam"},
        {"\"municipalities\":[", "\"municipalities\":{},\"x\":[", "directory.municipalities: a list"},
        {"\"districts\":[\"noord\"]", "\"districts\":\"noord\"", "municipalities[0]"},
        {"\"districts\":[\"noord\"]", "\"districts\":[7]", "municipalities[0]"},
        {"\"leerplicht\":\"leerplicht-1\",\"veiligthuis\"", "\"leerplicht\":5,\"veiligthuis\"",
         "region.leerplicht"},
        {"\"veiligthuis\":\"veiligthuis-1\"", "\"veiligthuis\":[]", "region.veiligthuis"},
        {"\"holidays\":{", "\"holidays\":[],\"x\":{", "directory.holidays: an object"},
        {"\"decree\":\"synthetic decree\"", "\"decree\":12", "directory.holidays.decree: must be a string"},
        {"\"decree_days\":[\"2026-12-24\"]", "\"decree_days\":\"2026-12-24\"",
         "directory.holidays.decree_days"},
        {"\"decree_days\":[\"2026-12-24\"]", "\"decree_days\":[20261224]",
         "directory.holidays.decree_days[0]"},
        {"\"decree_days\":[\"2026-12-24\"]", "\"decree_days\":[\"2026-02-30\"]",
         "directory.holidays.decree_days[0]"},
        {"\"version\":1", "\"version\":1.0", "directory.version: a positive whole number"},
        {"\"version\":1", "\"version\":true", "directory.version: a positive whole number"},
        {"\"version\":1", "\"version\":0", "directory.version: a positive whole number"},
        {"\"version\":1", "\"version\":99999999999999999999999", "directory: line 1"},
        {"\"organisations\":[", "\"organisations\":[null,", "organisations[0]: not an object"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        refused_spliced(cases[i].from, cases[i].to, cases[i].want);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(the_test_region_parses),
        cmocka_unit_test(deep_nesting_is_refused_without_recursing),
        cmocka_unit_test(huge_arrays_are_parsed_or_refused_in_bounded_time),
        cmocka_unit_test(bytes_that_are_not_utf8_are_refused),
        cmocka_unit_test(the_same_key_twice_is_refused_at_every_depth),
        cmocka_unit_test(wrong_types_outside_the_organisations_are_named),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
