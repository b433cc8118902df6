/* lib/indicators.c on a real LMDB log in a temp node directory: the
 * monitoring figures per school, district and month. A cell of 3 shows
 * "<5", a cell of 7 shows 7, in JSON and in CSV; the median of working
 * days to first contact is given over five referrals and not over three;
 * no pseudonym, case reference, event id or referral id is written. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store_fixture.h"

#include "bytes.h"
#include "codec.h"
#include "fileio.h"
#include "indicators.h"
#include "json.h"

typedef struct {
    char dir[64];
    schakel_store_t *s;
    unsigned next;
    char secrets[128][65]; /* every pseudonym and id written, to look for in the output */
    size_t n_secrets;
} node_t;

static void keep_secret(node_t *n, const char *s)
{
    assert_true(n->n_secrets < 128);
    snprintf(n->secrets[n->n_secrets++], 65, "%s", s);
}

/* A synthetic pseudonym (64 hex) or id (32 hex) numbered k. */
static void hex_of(unsigned k, char *out, size_t hexlen)
{
    uint8_t raw[32];
    uint8_t seed[4] = {(uint8_t)(k >> 24), (uint8_t)(k >> 16), (uint8_t)(k >> 8), (uint8_t)k};
    schakel_sha256(seed, sizeof seed, raw);
    schakel_hex_encode(raw, hexlen / 2, out);
}

/* Appends the event json (without event_id and subject) from org about
 * child number child (0: none). */
static void put(node_t *n, const char *org, unsigned child, const char *json)
{
    char why[SCHAKEL_ERRLEN] = "", subject[65] = "", id[33];
    json_error_t err;
    json_t *o = json_loads(json, 0, &err);
    if (!o) fail_msg("%s: %s", json, err.text);
    hex_of(1000 + n->next, id, 32);
    json_object_set_new(o, "event_id", json_string(id));
    json_object_set_new(o, "source_org", json_string(org));
    keep_secret(n, id);
    if (child) {
        hex_of(child, subject, 64);
        json_object_set_new(o, "subject", json_string(subject));
        keep_secret(n, subject);
    }
    schakel_envelope_t *e = schakel_json_to_envelope(o, why);
    json_decref(o);
    if (!e) fail_msg("%s: %s", json, why);
    uint8_t *buf;
    size_t len;
    assert_int_equal(schakel_envelope_encode(e, &buf, &len), 0);
    schakel_append_item_t it = {0};
    it.event = buf;
    it.event_len = len;
    it.event_id = e->event_id.data;
    it.type = (int)e->type;
    it.subject = e->subject;
    schakel_sha256(buf, len, it.event_hash);
    uint8_t sig[64] = {1}, hashes[1][32];
    memcpy(hashes[0], it.event_hash, 32);
    schakel_append_batch_t b = {org, sig, (const uint8_t(*)[32])hashes, 1, &it, 1};
    assert_int_equal(schakel_store_append(n->s, &b, 1, 1795000000000LL + n->next, why), 0);
    n->next++;
    free(buf);
    schakel_envelope_free(e);
}

static void signal(node_t *n, const char *school_org, const char *brin, const char *district, unsigned child)
{
    char j[1024];
    snprintf(
        j, sizeof j,
        "{\"type\":\"signal\",\"occurred_at\":\"2026-11-20T09:30:00Z\",\"school\":\"%s\","
        "\"district\":\"%s\",\"case_ref\":\"CASE-%u\",\"purpose\":\"support\",\"legal_basis\":\"consent\","
        "\"categories\":[\"behaviour\"],\"signal\":{\"concerns\":[\"behaviour\"],\"observed_on\":\"2026-11-"
        "20\"}}",
        brin, district, child);
    put(n, school_org, child, j);
    char ref[32];
    snprintf(ref, sizeof ref, "CASE-%u", child);
    keep_secret(n, ref);
}

/* A referral on Monday 2 November 2026 and its first contact `days`
 * working days later. */
static void referral_and_contact(node_t *n, const char *brin, const char *district, unsigned child, int days)
{
    char rid[33], j[1024];
    hex_of(50000 + child, rid, 32);
    keep_secret(n, rid);
    snprintf(j, sizeof j,
             "{\"type\":\"referral\",\"occurred_at\":\"2026-11-02T09:00:00Z\",\"school\":\"%s\",\"district\":"
             "\"%s\","
             "\"purpose\":\"support\",\"legal_basis\":\"consent\",\"categories\":[\"behaviour\"],"
             "\"referral\":{\"referral_id\":\"%s\",\"to_kind\":\"wijkteam\",\"reasons\":[\"behaviour\"]}}",
             brin, district, rid);
    put(n, "school-x", child, j);
    /* 2 Nov is a Monday: +days working days, no holiday in between */
    static const char *const on[] = {"2026-11-02", "2026-11-03", "2026-11-04", "2026-11-05",
                                     "2026-11-06", "2026-11-09", "2026-11-10", "2026-11-11"};
    snprintf(j, sizeof j,
             "{\"type\":\"first_contact\",\"occurred_at\":\"%sT12:00:00Z\",\"purpose\":\"feedback\","
             "\"legal_basis\":\"consent\",\"first_contact\":{\"referral_id\":\"%s\",\"contact_on\":\"%s\"}}",
             on[days], rid, on[days]);
    put(n, "wijkteam-x", child, j);
}

/* A thuiszitter_status of child with body fields. */
static void thuiszitter(node_t *n, unsigned child, const char *fields)
{
    char j[1024];
    snprintf(
        j, sizeof j,
        "{\"type\":\"thuiszitter_status\",\"occurred_at\":\"2026-11-16T09:00:00Z\",\"school\":\"12AB00\","
        "\"district\":\"noord\",\"purpose\":\"absence\",\"legal_basis\":\"leerplicht\","
        "\"thuiszitter_status\":{%s}}",
        fields);
    put(n, "school-a", child, j);
}

static int setup(void **state)
{
    node_t *n = calloc(1, sizeof *n);
    snprintf(n->dir, sizeof n->dir, "/tmp/schakel-ind-XXXXXX");
    if (!mkdtemp(n->dir)) return -1;
    char path[SCHAKEL_PATH_MAX], why[SCHAKEL_ERRLEN] = "";
    schakel_lmdb_options_t o = {0};
    snprintf(path, sizeof path, "%s/master.key", n->dir);
    if (schakel_secret_file(path, o.master_key, 32, 1, NULL, why) != 0) return -1;
    snprintf(path, sizeof path, "%s/log", n->dir);
    o.dir = path;
    n->s = schakel_store_open_lmdb(&o, why);
    if (!n->s) return -1;
    for (unsigned c = 1; c <= 3; c++) signal(n, "school-a", "12AB00", "noord", c);
    for (unsigned c = 11; c <= 17; c++) signal(n, "school-b", "34CD01", "zuid", c);
    for (unsigned c = 21; c <= 25; c++)
        referral_and_contact(n, "34CD01", "zuid", c, (int)(c - 19)); /* 2..6 */
    for (unsigned c = 31; c <= 33; c++) referral_and_contact(n, "12AB00", "noord", c, 3);
    /* the latest status counts: ended after 75 days, for refusal */
    thuiszitter(n, 41, "\"state\":\"started\",\"reason\":\"other\",\"since\":\"2026-09-01\"");
    thuiszitter(n, 41,
                "\"state\":\"ended\",\"reason\":\"refusal\",\"since\":\"2026-09-01\","
                "\"ended_on\":\"2026-11-15\"");
    thuiszitter(n, 42, "\"state\":\"started\",\"exempted\":true,\"since\":\"2026-09-01\""); /* not one */
    schakel_store_close(&n->s);
    *state = n;
    return 0;
}

static int teardown(void **state)
{
    node_t *n = *state;
    nftw(n->dir, store_fx_rm_one, 8, FTW_DEPTH | FTW_PHYS);
    free(n);
    return 0;
}

static char *render(node_t *n, const char *format)
{
    char *out = NULL, why[SCHAKEL_ERRLEN] = "";
    size_t len = 0;
    if (schakel_indicators_render(n->dir, format, &out, &len, why) != 0) fail_msg("%s", why);
    assert_int_equal(strlen(out), len);
    for (size_t i = 0; i < n->n_secrets; i++)
        if (strstr(out, n->secrets[i])) fail_msg("%s shows %s:\n%s", format, n->secrets[i], out);
    return out;
}

/* The cell of figure for school in the JSON figures. */
static const json_t *cell(const json_t *doc, const char *school, const char *figure)
{
    size_t i;
    const json_t *c;
    json_array_foreach(json_object_get(doc, "cells"), i, c) {
        if (!strcmp(json_string_value(json_object_get(c, "school")), school) &&
            !strcmp(json_string_value(json_object_get(c, "figure")), figure))
            return c;
    }
    fail_msg("no %s cell for %s", figure, school);
    return NULL;
}

static void a_cell_of_3_shows_under_5_and_one_of_7_shows_7(void **state)
{
    node_t *n = *state;
    char *text = render(n, "json");
    json_error_t err;
    json_t *doc = json_loads(text, 0, &err);
    assert_non_null(doc);
    const json_t *few = cell(doc, "12AB00", "signals"), *more = cell(doc, "34CD01", "signals");
    assert_string_equal(json_string_value(json_object_get(few, "value")), "<5");
    assert_string_equal(json_string_value(json_object_get(few, "month")), "2026-11");
    assert_string_equal(json_string_value(json_object_get(few, "district")), "noord");
    assert_int_equal(json_integer_value(json_object_get(more, "value")), 7);
    const json_t *refs = cell(doc, "34CD01", "referrals");
    assert_string_equal(json_string_value(json_object_get(refs, "breakdown")), "wijkteam");
    assert_int_equal(json_integer_value(json_object_get(refs, "value")), 5);
    /* five first contacts after 2, 3, 4, 5 and 6 working days: median 4;
     * three: no median */
    const json_t *m5 = cell(doc, "34CD01", "median_working_days_to_first_contact");
    assert_int_equal(json_integer_value(json_object_get(m5, "value")), 4);
    assert_int_equal(json_integer_value(json_object_get(m5, "cases")), 5);
    const json_t *m3 = cell(doc, "12AB00", "median_working_days_to_first_contact");
    assert_true(json_is_null(json_object_get(m3, "value")));
    assert_string_equal(json_string_value(json_object_get(m3, "cases")), "<5");
    assert_true(json_array_size(json_object_get(doc, "not_available")) > 0);
    const json_t *tz = cell(doc, "12AB00", "thuiszitters");
    assert_string_equal(json_string_value(json_object_get(tz, "breakdown")), "refusal/4w_3m");
    assert_string_equal(json_string_value(json_object_get(tz, "month")), "2026-09");
    assert_string_equal(json_string_value(json_object_get(tz, "value")), "<5");
    size_t thuiszitter_cells = 0, i;
    const json_t *c;
    json_array_foreach(json_object_get(doc, "cells"), i, c)
        thuiszitter_cells += !strcmp(json_string_value(json_object_get(c, "figure")), "thuiszitters");
    assert_int_equal(thuiszitter_cells, 1); /* not the first status, not the exempted child */
    json_decref(doc);
    free(text);

    char *csv = render(n, "csv");
    assert_true(!strncmp(csv, "month,school,district,figure,breakdown,value,cases\n", 51));
    assert_non_null(strstr(csv, "\n2026-11,12AB00,noord,signals,,<5,\n"));
    assert_non_null(strstr(csv, "\n2026-11,34CD01,zuid,signals,,7,\n"));
    assert_non_null(strstr(csv, "\n2026-11,34CD01,zuid,median_working_days_to_first_contact,,4,5\n"));
    assert_non_null(strstr(csv, "\n2026-11,12AB00,noord,median_working_days_to_first_contact,,,<5\n"));
    free(csv);
}

static void another_format_or_no_log_is_refused(void **state)
{
    node_t *n = *state;
    char *out = NULL, why[SCHAKEL_ERRLEN] = "";
    size_t len = 0;
    assert_int_equal(schakel_indicators_render(n->dir, "xml", &out, &len, why), SCHAKEL_EINVAL);
    assert_non_null(strstr(why, "\"json\" or \"csv\""));
    assert_int_not_equal(schakel_indicators_render("/nonexistent-schakel-node", "json", &out, &len, why), 0);
    assert_null(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(a_cell_of_3_shows_under_5_and_one_of_7_shows_7, setup, teardown),
        cmocka_unit_test_setup_teardown(another_format_or_no_log_is_refused, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
