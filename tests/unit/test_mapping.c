/* Profiles without a bus: the elfproef and the pseudonym, a profile's
 * settings checked strictly, dates and age bands, CSV quoting, ids named
 * with "as", and reasons that name the column but never the BSN. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "error.h"
#include "json.h"
#include "mapping.h"

static const uint8_t key[32] = {7, 7, 7};

static void elfproef_and_pseudonym(void **state)
{
    (void)state;
    assert_true(schakel_bsn_valid("999990019"));
    assert_true(schakel_bsn_valid("99990003")); /* 8 digits: a leading zero */
    assert_false(schakel_bsn_valid("999990018"));
    assert_false(schakel_bsn_valid("000000000"));
    assert_false(schakel_bsn_valid("99999001a"));
    assert_false(schakel_bsn_valid("9999900190"));
    char a[65], b[65], c[65];
    uint8_t other[32] = {8};
    assert_int_equal(schakel_bsn_pseudonym(key, "999990019", a), 0);
    assert_int_equal(schakel_bsn_pseudonym(key, "999990019", b), 0);
    assert_int_equal(schakel_bsn_pseudonym(other, "999990019", c), 0);
    assert_string_equal(a, b);            /* the same child, the same pseudonym */
    assert_string_not_equal(a, c);        /* another region key, another one */
    assert_int_equal(strlen(a), 64);
    assert_int_equal(schakel_bsn_pseudonym(key, "123", a), SCHAKEL_EINVAL);
}

static schakel_profile_t *profile(const char *json, char *why)
{
    return schakel_profile_parse(json, strlen(json), why);
}

#define BASE "\"version\": 1, \"kind\": \"school\", \"source_system\": \"t\", \"record_id\": [\"nr\"], "

static void typos_are_errors(void **state)
{
    (void)state;
    char why[SCHAKEL_ERRLEN];
    const char *bad[][2] = {
        {"{" BASE "\"rows\": [{\"type\": \"signal\", \"fields\": {\"occurred_at\": {\"column\": \"d\", "
         "\"date\": \"dd-mm-yyyy\", \"optinal\": true}}}]}", "optinal"},
        {"{" BASE "\"rows\": [{\"type\": \"signal\", \"feilds\": {}}]}", "feilds"},
        {"{" BASE "\"rowz\": []}", "rowz"},
        {"{" BASE "\"rows\": [{\"type\": \"signal\", \"fields\": {\"signal.concern\": {\"const\": 1}, "
         "\"occurred_at\": {\"column\": \"d\", \"date\": \"dd-mm-yyyy\"}}}]}", "signal.concern"},
        {"{" BASE "\"rows\": [{\"type\": \"signal\", \"fields\": {\"case_ref\": {\"bsn\": \"bsn\"}, "
         "\"occurred_at\": {\"column\": \"d\", \"date\": \"dd-mm-yyyy\"}}}]}", "only become the subject"},
        {"{" BASE "\"rows\": [{\"type\": \"signal\", \"fields\": {\"signal.observed_on\": {\"column\": \"d\"}}}]}",
         "occurred_at"},
        {"{" BASE "\"rows\": [{\"type\": \"signal\", \"fields\": {\"referral.reasons\": {\"const\": []}, "
         "\"occurred_at\": {\"column\": \"d\", \"date\": \"dd-mm-yyyy\"}}}]}", "makes a signal"},
        {"{\"version\": 2, \"kind\": \"school\", \"source_system\": \"t\", \"record_id\": [\"nr\"], \"rows\": []}",
         "version"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        why[0] = 0;
        schakel_profile_t *p = profile(bad[i][0], why);
        if (p) fail_msg("accepted profile %zu", i);
        if (!strstr(why, bad[i][1])) fail_msg("profile %zu: \"%s\" does not name %s", i, why, bad[i][1]);
    }
}

static const char *PROFILE =
    "{" BASE "\"csv\": {\"delimiter\": \";\"}, "
    "\"defaults\": {\"subject\": {\"bsn\": \"bsn\"}, \"purpose\": {\"const\": \"support\"}, "
    "  \"legal_basis\": {\"const\": \"consent\"}, \"occurred_at\": {\"column\": \"datum\", \"date\": \"d-m-yyyy\"}},"
    "\"rows\": ["
    " {\"when\": {\"soort\": 1}, \"type\": \"referral\", \"fields\": {"
    "   \"age_band\": {\"age_from\": \"geb\", \"date\": \"d-m-yyyy\"},"
    "   \"referral.referral_id\": {\"id\": [\"nr\"], \"as\": \"referral\"},"
    "   \"referral.to_kind\": {\"const\": \"wijkteam\"},"
    "   \"referral.reasons\": {\"column\": \"cat\", \"split\": \"|\", \"map\": {\"a\": \"behaviour\", \"b\": \"learning\"}}}},"
    " {\"when\": {\"soort\": \"2\"}, \"type\": \"closure\", \"fields\": {"
    "   \"closure.referral_id\": {\"id\": [\"nr\"], \"as\": \"referral\"},"
    "   \"closure.closed_on\": {\"column\": \"datum\", \"date\": \"d-m-yyyy\"},"
    "   \"closure.reason_code\": {\"const\": \"goals_met\"}}},"
    " {\"when\": {\"soort\": \"3\"}, \"type\": \"consultation\", \"fields\": {"
    "   \"subject\": {\"omit\": true}, \"legal_basis\": {\"const\": \"anonymous\"}, "
    "   \"purpose\": {\"const\": \"consultation\"},"
    "   \"consultation.consulted_kind\": {\"const\": \"smw\"}, \"consultation.topics\": {\"const\": [\"behaviour\"]}}}"
    "]}";

typedef struct {
    const schakel_profile_t *p;
    schakel_envelope_t *e[8];
    char why[8][SCHAKEL_ERRLEN];
    size_t n;
} rows_t;

static int take(void *arg, const schakel_row_t *row, size_t number)
{
    rows_t *r = arg;
    assert_true(r->n < 8);
    (void)number;
    uint8_t *buf = NULL, id[16];
    size_t len;
    r->why[r->n][0] = 0;
    if (schakel_profile_map(r->p, "school-12ab00", key, row, &buf, &len, id, r->why[r->n]) == 0) {
        r->e[r->n] = schakel_envelope_decode(buf, len, NULL);
        assert_memory_equal(r->e[r->n]->event_id.data, id, 16);
    }
    free(buf);
    r->n++;
    return 0;
}

static void rows_become_events(void **state)
{
    (void)state;
    char why[SCHAKEL_ERRLEN] = "";
    schakel_profile_t *p = profile(PROFILE, why);
    if (!p) fail_msg("%s", why);
    const char *csv =
        "nr;bsn;geb;soort;datum;cat\r\n"
        "7;999990019;3-4-2010;1;5-11-2026;\"a|b\"\r\n"       /* 16 years on 5 November 2026: 16_17 */
        "7;999990019;3-4-2010;2;9-11-2026;a\r\n"             /* its closure: the same referral id */
        "8;999990018;3-4-2010;1;5-11-2026;a\r\n"             /* fails the elfproef */
        "9;999990019;3-4-2010;1;5-11-2026;\"a;\nc\"\r\n"     /* a quoted ; and newline, and code c */
        "10;;;3;5-11-2026;\r\n";                             /* anonymous: the default subject omitted */
    rows_t r = {p, {0}, {{0}}, 0};
    assert_int_equal(schakel_rows_csv(p, csv, strlen(csv), take, &r, why), 0);
    assert_int_equal(r.n, 5);
    assert_non_null(r.e[0]);
    assert_int_equal(r.e[0]->age_band, SCHAKEL__V1__AGE_BAND__AGE_BAND_16_17);
    assert_int_equal(r.e[0]->referral->n_reasons, 2);
    assert_non_null(r.e[1]);
    assert_memory_equal(r.e[1]->closure->referral_id.data, r.e[0]->referral->referral_id.data, 16);
    assert_null(r.e[2]);
    assert_non_null(strstr(r.why[2], "column bsn"));
    assert_null(strstr(r.why[2], "999990018"));
    assert_null(r.e[3]);
    assert_non_null(strstr(r.why[3], "unknown code"));
    assert_non_null(r.e[4]);
    assert_string_equal(r.e[4]->subject, "");
    for (size_t i = 0; i < r.n; i++) schakel_envelope_free(r.e[i]);
    schakel_profile_destroy(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(elfproef_and_pseudonym),
        cmocka_unit_test(typos_are_errors),
        cmocka_unit_test(rows_become_events),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
