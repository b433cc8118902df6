/* Profiles without a bus: the elfproef and the pseudonym, a profile's
 * settings checked strictly, dates and age bands, CSV quoting, ids named
 * with "as", and reasons that name the column but never the BSN; strict
 * CSV (a quote never closed, NUL, not UTF-8, a column too many) and JSON
 * errors by line and column, never quoting the text. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
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
    assert_string_equal(a, b);     /* the same child, the same pseudonym */
    assert_string_not_equal(a, c); /* another region key, another one */
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
         "\"date\": \"dd-mm-yyyy\", \"optinal\": true}}}]}",
         "optinal"},
        {"{" BASE "\"rows\": [{\"type\": \"signal\", \"feilds\": {}}]}", "feilds"},
        {"{" BASE "\"rowz\": []}", "rowz"},
        {"{" BASE "\"rows\": [{\"type\": \"signal\", \"fields\": {\"signal.concern\": {\"const\": 1}, "
         "\"occurred_at\": {\"column\": \"d\", \"date\": \"dd-mm-yyyy\"}}}]}",
         "signal.concern"},
        {"{" BASE "\"rows\": [{\"type\": \"signal\", \"fields\": {\"case_ref\": {\"bsn\": \"bsn\"}, "
         "\"occurred_at\": {\"column\": \"d\", \"date\": \"dd-mm-yyyy\"}}}]}",
         "only become the subject"},
        {"{" BASE
         "\"rows\": [{\"type\": \"signal\", \"fields\": {\"signal.observed_on\": {\"column\": \"d\"}}}]}",
         "occurred_at"},
        {"{" BASE "\"rows\": [{\"type\": \"signal\", \"fields\": {\"referral.reasons\": {\"const\": []}, "
         "\"occurred_at\": {\"column\": \"d\", \"date\": \"dd-mm-yyyy\"}}}]}",
         "makes a signal"},
        {"{\"version\": 2, \"kind\": \"school\", \"source_system\": \"t\", \"record_id\": [\"nr\"], "
         "\"rows\": []}",
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
    "  \"legal_basis\": {\"const\": \"consent\"}, \"occurred_at\": {\"column\": \"datum\", \"date\": "
    "\"d-m-yyyy\"}},"
    "\"rows\": ["
    " {\"when\": {\"soort\": 1}, \"type\": \"referral\", \"fields\": {"
    "   \"age_band\": {\"age_from\": \"geb\", \"date\": \"d-m-yyyy\"},"
    "   \"referral.referral_id\": {\"id\": [\"nr\"], \"as\": \"referral\"},"
    "   \"referral.to_kind\": {\"const\": \"wijkteam\"},"
    "   \"referral.reasons\": {\"column\": \"cat\", \"split\": \"|\", \"map\": {\"a\": \"behaviour\", \"b\": "
    "\"learning\"}}}},"
    " {\"when\": {\"soort\": \"2\"}, \"type\": \"closure\", \"fields\": {"
    "   \"closure.referral_id\": {\"id\": [\"nr\"], \"as\": \"referral\"},"
    "   \"closure.closed_on\": {\"column\": \"datum\", \"date\": \"d-m-yyyy\"},"
    "   \"closure.reason_code\": {\"const\": \"goals_met\"}}},"
    " {\"when\": {\"soort\": \"3\"}, \"type\": \"consultation\", \"fields\": {"
    "   \"subject\": {\"omit\": true}, \"legal_basis\": {\"const\": \"anonymous\"}, "
    "   \"purpose\": {\"const\": \"consultation\"},"
    "   \"consultation.consulted_kind\": {\"const\": \"smw\"}, \"consultation.topics\": {\"const\": "
    "[\"behaviour\"]}}}"
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

static int take_none(void *arg, const schakel_row_t *row, size_t number)
{
    (void)row, (void)number;
    ((rows_t *)arg)->n++;
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
        "7;999990019;3-4-2010;1;5-11-2026;\"a|b\"\r\n"   /* 16 years on 5 November 2026: 16_17 */
        "7;999990019;3-4-2010;2;9-11-2026;a\r\n"         /* its closure: the same referral id */
        "8;999990018;3-4-2010;1;5-11-2026;a\r\n"         /* fails the elfproef */
        "9;999990019;3-4-2010;1;5-11-2026;\"a;\nc\"\r\n" /* a quoted ; and newline, and code c */
        "10;;;3;5-11-2026;\r\n";                         /* anonymous: the default subject omitted */
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
    assert_null(strstr(r.why[3], "\"c\"")); /* the code itself is not quoted */
    assert_non_null(r.e[4]);
    assert_string_equal(r.e[4]->subject, "");
    for (size_t i = 0; i < r.n; i++) schakel_envelope_free(r.e[i]);
    schakel_profile_destroy(&p);
}

/* The ids an adapter mints (a referral id, the event id) include its
 * organisation's id key: another organisation that has the same export
 * columns, and the same profile, computes other ids and so cannot
 * publish them first. */
static void minted_ids_need_the_organisations_key(void **state)
{
    (void)state;
    char why[SCHAKEL_ERRLEN] = "";
    const char *csv = "nr;bsn;geb;soort;datum;cat\n7;999990019;3-4-2010;1;5-11-2026;a\n";
    uint8_t keys[2][32];
    memset(keys[0], 0x11, 32);
    memset(keys[1], 0x22, 32);
    schakel_envelope_t *e[3] = {0};
    for (int k = 0; k < 3; k++) {
        schakel_profile_t *p = profile(PROFILE, why);
        if (!p) fail_msg("%s", why);
        if (k < 2) schakel_profile_set_id_key(p, keys[k]);
        rows_t r = {p, {0}, {{0}}, 0};
        assert_int_equal(schakel_rows_csv(p, csv, strlen(csv), take, &r, why), 0);
        assert_int_equal(r.n, 1);
        assert_non_null(r.e[0]);
        e[k] = r.e[0];
        schakel_profile_destroy(&p);
    }
    for (int a = 0; a < 3; a++)
        for (int b = a + 1; b < 3; b++) {
            assert_memory_not_equal(e[a]->referral->referral_id.data, e[b]->referral->referral_id.data, 16);
            assert_memory_not_equal(e[a]->event_id.data, e[b]->event_id.data, 16);
        }
    /* the same key gives the same ids: a re-import is a duplicate */
    schakel_profile_t *p = profile(PROFILE, why);
    schakel_profile_set_id_key(p, keys[0]);
    rows_t r = {p, {0}, {{0}}, 0};
    assert_int_equal(schakel_rows_csv(p, csv, strlen(csv), take, &r, why), 0);
    assert_memory_equal(r.e[0]->referral->referral_id.data, e[0]->referral->referral_id.data, 16);
    assert_memory_equal(r.e[0]->event_id.data, e[0]->event_id.data, 16);
    schakel_envelope_free(r.e[0]);
    schakel_profile_destroy(&p);
    for (int k = 0; k < 3; k++) schakel_envelope_free(e[k]);
}

/* A value is never cut short: two record ids that share their first 255
 * bytes would give one event id, and the second row would be "known" and
 * dropped. An over-long value is refused naming its column. */
static void over_long_values_are_refused_not_cut_short(void **state)
{
    (void)state;
    char why[SCHAKEL_ERRLEN] = "";
    schakel_profile_t *p = profile(PROFILE, why);
    if (!p) fail_msg("%s", why);
    char nr[2][301], csv[1024];
    for (int k = 0; k < 2; k++) {
        memset(nr[k], 'N', 300);
        nr[k][299] = (char)('1' + k); /* they differ in the last byte only */
        nr[k][300] = 0;
    }
    snprintf(csv, sizeof csv,
             "nr;bsn;geb;soort;datum;cat\n%s;999990019;3-4-2010;1;5-11-2026;a\n"
             "%s;999990019;3-4-2010;1;5-11-2026;a\n8;999990019;3-4-2010;1;5-11-2026;a\n",
             nr[0], nr[1]);
    rows_t r = {p, {0}, {{0}}, 0};
    assert_int_equal(schakel_rows_csv(p, csv, strlen(csv), take, &r, why), 0);
    assert_int_equal(r.n, 3);
    for (int k = 0; k < 2; k++) {
        if (r.e[k]) fail_msg("row %d: a 300-byte record id was mapped (cut short?)", k + 1);
        assert_non_null(strstr(r.why[k], "column nr: longer than 255 bytes"));
        assert_null(strstr(r.why[k], "NNNN"));
    }
    assert_non_null(r.e[2]); /* a row of ordinary length still maps */
    for (size_t i = 0; i < r.n; i++) schakel_envelope_free(r.e[i]);
    schakel_profile_destroy(&p);
}

/* A reference (contact.ref, provider_ref) is an id in the publisher's
 * own system: a cell that looks like free text (a space, an accent) is
 * refused naming the column, not sent. */
static void a_reference_cell_with_free_text_is_refused(void **state)
{
    (void)state;
    char why[SCHAKEL_ERRLEN] = "";
    const char *json =
        "{" BASE "\"csv\": {\"delimiter\": \";\"}, \"rows\": ["
        " {\"when\": {\"soort\": \"3\"}, \"type\": \"consultation\", \"fields\": {"
        "   \"legal_basis\": {\"const\": \"anonymous\"}, \"purpose\": {\"const\": \"consultation\"},"
        "   \"occurred_at\": {\"column\": \"datum\", \"date\": \"d-m-yyyy\"},"
        "   \"consultation.consulted_kind\": {\"const\": \"smw\"}, \"consultation.topics\": {\"const\": "
        "[\"behaviour\"]},"
        "   \"consultation.contact.role\": {\"const\": \"intern_begeleider\"},"
        "   \"consultation.contact.ref\": {\"column\": \"mw\"}}}]}";
    schakel_profile_t *p = profile(json, why);
    if (!p) fail_msg("%s", why);
    const char *csv = "nr;soort;datum;mw\n"
                      "1;3;5-11-2026;desk/ib-02\n"
                      "2;3;5-11-2026;Anna de Vries\n"
                      "3;3;5-11-2026;Br\xc3\xbchl\n";
    rows_t r = {p, {0}, {{0}}, 0};
    assert_int_equal(schakel_rows_csv(p, csv, strlen(csv), take, &r, why), 0);
    assert_int_equal(r.n, 3);
    if (!r.e[0]) fail_msg("an id was refused: %s", r.why[0]);
    assert_string_equal(r.e[0]->consultation->contact->ref, "desk/ib-02");
    for (int k = 1; k < 3; k++) {
        if (r.e[k]) fail_msg("row %d: free text went into contact.ref", k + 1);
        assert_non_null(strstr(r.why[k], "column mw: not a reference"));
        assert_null(strstr(r.why[k], "Vries"));
    }
    for (size_t i = 0; i < r.n; i++) schakel_envelope_free(r.e[i]);
    schakel_profile_destroy(&p);
}

static int no_text(const char *why, const char *const *secrets)
{
    for (size_t i = 0; secrets[i]; i++)
        if (strstr(why, secrets[i])) return 0;
    return why[0] != 0;
}

static void strict_csv_names_line_and_column_never_the_text(void **state)
{
    (void)state;
    char why[SCHAKEL_ERRLEN] = "";
    schakel_profile_t *p = profile(PROFILE, why);
    if (!p) fail_msg("%s", why);
    const char *secrets[] = {"999990019", "999990032", "999990044", "Jansen", NULL};
    /* a quote that is never closed: the whole text is refused, naming the
     * line it opened on, and nothing after it is read as rows */
    const char *open = "nr;bsn;geb;soort;datum;cat\n"
                       "7;999990019;3-4-2010;1;5-11-2026;a\n"
                       "8;999990032;3-4-2010;1;5-11-2026;\"a|b\n"
                       "9;999990044;3-4-2010;1;5-11-2026;Jansen\n";
    rows_t r = {p, {0}, {{0}}, 0};
    why[0] = 0;
    assert_int_equal(schakel_rows_csv(p, open, strlen(open), take, &r, why), SCHAKEL_EINVAL);
    if (!strstr(why, "line 3") || !no_text(why, secrets)) fail_msg("reason: %s", why);
    assert_int_equal(r.n, 1);
    for (size_t i = 0; i < r.n; i++) schakel_envelope_free(r.e[i]);

    /* bad cells reject their own row, by line and column */
    static const char cells[] = "nr;bsn;geb;soort;datum;cat\r\n"
                                "7;999990019;3-4-2010;1;5-11-2026;\"a|\nb\"\r\n"     /* lines 2-3 */
                                "8;999990032;3-4-2010;1;5-11-2026;a\351\r\n"         /* Latin-1 e-acute */
                                "9;999990044\0Jansen;3-4-2010;1;5-11-2026;a\r\n"     /* a NUL */
                                "10;999990019;3-4-2010;1;5-11-2026;a;extra\r\n"      /* a column too many */
                                "11;\"999990032\"Jansen;3-4-2010;1;5-11-2026;a\r\n"; /* text after a quote */
    memset(&r, 0, sizeof r);
    r.p = p;
    assert_int_equal(schakel_rows_csv(p, cells, sizeof cells - 1, take, &r, why), 0);
    assert_int_equal(r.n, 5);
    assert_null(r.e[0]); /* "\nb" is no code */
    assert_non_null(strstr(r.why[0], "unknown code"));
    const char *expect[][2] = {{"line 4, column 6", "UTF-8"},
                               {"line 5, column 2", "NUL"},
                               {"line 6", "7 columns"},
                               {"line 7, column 2", "closing quote"}};
    for (size_t i = 1; i < 5; i++) {
        assert_null(r.e[i]);
        if (!strstr(r.why[i], expect[i - 1][0]) || !strstr(r.why[i], expect[i - 1][1]) ||
            !no_text(r.why[i], secrets))
            fail_msg("row %zu: %s", i, r.why[i]);
    }
    for (size_t i = 0; i < r.n; i++) schakel_envelope_free(r.e[i]);

    /* a value that lands in the wrong column is not quoted either */
    static const char shifted[] = "nr;bsn;geb;soort;datum;cat\n"
                                  "12;;999990019;1;5-11-2026;a\n"         /* the BSN in the birth date */
                                  "13;999990019;3-4-2010;1;999990032;a\n" /* and in the date */
                                  "14;999990019;3-4-2010;1;5-11-2026;999990044\n"  /* and in a code */
                                  "15;999990019;3-4-2010;999990032;5-11-2026;a\n"; /* and in "when" */
    memset(&r, 0, sizeof r);
    r.p = p;
    assert_int_equal(schakel_rows_csv(p, shifted, sizeof shifted - 1, take, &r, why), 0);
    assert_int_equal(r.n, 4);
    for (size_t i = 0; i < 4; i++) {
        assert_null(r.e[i]);
        if (!no_text(r.why[i], secrets)) fail_msg("row %zu: %s", i, r.why[i]);
    }
    schakel_profile_destroy(&p);
}

static void json_errors_name_line_and_column_never_the_text(void **state)
{
    (void)state;
    char why[SCHAKEL_ERRLEN] = "";
    const char *secrets[] = {"999990019", "Jansen", NULL};
    const char *bad[][2] = {
        {"{\"nr\": \"1\"}\n{\"bsn\": 999990019x, \"naam\": \"Jansen\"}\n", "line 2, column"},
        {"{\"nr\": \"1\"}\n\n{\"bsn\": \"999990019\", \"naam\": \"Jansen\n", "line 3, column"},
        {"{\"bsn\": \"999990019\", \"naam\": \"Jans\351n\"}\n", "UTF-8"},
        {"{\"bsn\": \"999990019\\u0000Jansen\"}\n", "NUL"},
        {"{\"bsn\": \"999990019\", \"bsn\": \"Jansen\"}\n", "twice"},
        {"[{\"bsn\": \"999990019\"},\n {\"naam\": Jansen}]", "line 2, column"},
        {"\"999990019 Jansen\"\n", "not a JSON object"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        rows_t r = {NULL, {0}, {{0}}, 0};
        why[0] = 0;
        assert_int_equal(schakel_rows_jsonl(bad[i][0], strlen(bad[i][0]), take_none, &r, why),
                         SCHAKEL_EINVAL);
        if (!strstr(why, bad[i][1]) || !no_text(why, secrets)) fail_msg("case %zu: %s", i, why);
    }
    /* the scrubber: quoted values and long digit runs go */
    char s[SCHAKEL_ERRLEN] = "school: \"Jansen\" is not a code; 999990019 and 12 rows";
    schakel_reason_scrub(s);
    assert_string_equal(s, "school: (value not shown) is not a code; # and 12 rows");
}

/* Rows as text: number, error or the cells joined with |. */
typedef struct {
    char got[8][200];
    size_t n;
} seen_t;

static int see(void *arg, const schakel_row_t *row, size_t number)
{
    seen_t *s = arg;
    if (s->n == 8) return 1;
    char *o = s->got[s->n++];
    int k = snprintf(o, 200, "%zu:", number);
    if (row->error) {
        snprintf(o + k, 200 - (size_t)k, "%s", row->error);
        return 0;
    }
    for (size_t i = 0; i < row->n; i++)
        k += snprintf(o + k, 200 - (size_t)k, "%s%s", i ? "|" : "", row->values[i]);
    return 0;
}

/* libcsv's strict mode as docs/adapters.md says it: a quote inside an
 * unquoted cell rejects the row; spaces around an unquoted cell go; a
 * lone CR ends a line; a quote never closed at the very end refuses the
 * text; the record ends schakel_csv_record_end finds give the same row
 * numbers. */
static void csv_strict_edges(void **state)
{
    (void)state;
    char why[SCHAKEL_ERRLEN] = "";
    schakel_profile_t *p = profile(PROFILE, why);
    if (!p) fail_msg("%s", why);
    const char *secrets[] = {"999990019", "Jansen", NULL};
    seen_t s = {0};
    static const char quote_in[] = "a;b\n1;999990019\"Jansen\n2;\"x\ny\"Jansen;3\n";
    assert_int_equal(schakel_rows_csv(p, quote_in, sizeof quote_in - 1, see, &s, why), 0);
    assert_int_equal(s.n, 2);
    if (!strstr(s.got[0], "2:line 2, column 2: a quote inside a cell that does not start with one") ||
        !no_text(s.got[0], secrets))
        fail_msg("%s", s.got[0]);
    if (!strstr(s.got[1], "3:line 4, column 2: text after the closing quote") || !no_text(s.got[1], secrets))
        fail_msg("%s", s.got[1]);

    memset(&s, 0, sizeof s);
    static const char spaces[] = "\xef\xbb\xbf a ;\tb\t\r\n\r\n \t \r\n 1 ;  \" x \"  \r\n";
    assert_int_equal(schakel_rows_csv(p, spaces, sizeof spaces - 1, see, &s, why), 0);
    assert_int_equal(s.n, 1);
    assert_string_equal(s.got[0], "4:1| x ");

    memset(&s, 0, sizeof s);
    static const char cr[] = "a;b\r1;2\r\r3;\"x\ny\"\r4;5";
    assert_int_equal(schakel_rows_csv(p, cr, sizeof cr - 1, see, &s, why), 0);
    assert_int_equal(s.n, 3);
    assert_string_equal(s.got[0], "2:1|2");
    assert_string_equal(s.got[1], "4:3|x\ny");
    assert_string_equal(s.got[2], "6:4|5");
    size_t starts[8], n_starts = 0;
    for (size_t at = 0, line = 1; at < sizeof cr - 1 && n_starts < 8;) {
        size_t first = line, end = schakel_csv_record_end(p, cr, sizeof cr - 1, at, &line);
        assert_true(end > at);
        if (end - at > 1) starts[n_starts++] = first; /* not the blank line */
        at = end;
    }
    assert_int_equal(n_starts, 4);
    assert_int_equal(starts[0], 1);
    assert_int_equal(starts[1], 2);
    assert_int_equal(starts[2], 4);
    assert_int_equal(starts[3], 6);

    memset(&s, 0, sizeof s);
    static const char open_end[] = "a;b\n1;2\n\n3;\"Jansen";
    assert_int_equal(schakel_rows_csv(p, open_end, sizeof open_end - 1, see, &s, why), SCHAKEL_EINVAL);
    if (!strstr(why, "line 4: a quote opens a cell that is never closed") || !no_text(why, secrets))
        fail_msg("%s", why);
    static const char open_header[] = "a;\"b\n";
    assert_int_equal(schakel_rows_csv(p, open_header, sizeof open_header - 1, see, &s, why), SCHAKEL_EINVAL);
    if (!strstr(why, "line 1: a quote opens")) fail_msg("%s", why);
    static const char bad_header[] = "a;b\"c\n1;2\n";
    assert_int_equal(schakel_rows_csv(p, bad_header, sizeof bad_header - 1, see, &s, why), SCHAKEL_EINVAL);
    if (!strstr(why, "the header: line 1, column 2: a quote inside")) fail_msg("%s", why);
    schakel_profile_destroy(&p);
}

/* Crafted exports take time in proportion to their size: a 4 MB quoted
 * cell (libcsv's buffer grows by a fixed step unless told otherwise:
 * quadratic where realloc copies, as under ASan) and a row of 200000
 * quoted cells with line breaks (the line of a bad cell). Quadratic, the
 * first takes a minute under ASan; linear, a fraction of a second. */
static void csv_reads_in_linear_time(void **state)
{
    (void)state;
    char why[SCHAKEL_ERRLEN] = "";
    schakel_profile_t *p = profile(PROFILE, why);
    if (!p) fail_msg("%s", why);
    size_t n = (size_t)4 << 20, cells = 200000, l = 0;
    char *t = malloc(n + cells * 6 + 16);
    assert_non_null(t);
    memcpy(t, "a\n\"", 3), l = 3;
    memset(t + l, 'x', n), l += n;
    memcpy(t + l, "\"\n", 2), l += 2;
    rows_t r = {0};
    double t0 = schakel_mono_secs();
    assert_int_equal(schakel_rows_csv(p, t, l, take_none, &r, why), 0);
    double big = schakel_mono_secs() - t0;
    assert_int_equal(r.n, 1);
    l = 2;
    for (size_t i = 0; i < cells; i++) memcpy(t + l, "\"x\ny\";", 6), l += 6;
    memcpy(t + l, "\"\0\"\n", 4), l += 4; /* the last cell bad: its line found */
    seen_t s = {0};
    t0 = schakel_mono_secs();
    assert_int_equal(schakel_rows_csv(p, t, l, see, &s, why), 0);
    double many = schakel_mono_secs() - t0;
    assert_int_equal(s.n, 1);
    char expect[80];
    snprintf(expect, sizeof expect, "2:line %zu, column %zu: a NUL", cells + 2, cells + 1);
    if (!strstr(s.got[0], expect)) fail_msg("%s", s.got[0]);
    free(t);
    print_message("4 MB cell: %.3f s; %zu cells on %zu lines: %.3f s\n", big, cells, cells + 1, many);
    schakel_profile_destroy(&p);
    assert_true(big < 5.0);
    assert_true(many < 5.0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(elfproef_and_pseudonym),
        cmocka_unit_test(typos_are_errors),
        cmocka_unit_test(rows_become_events),
        cmocka_unit_test(minted_ids_need_the_organisations_key),
        cmocka_unit_test(strict_csv_names_line_and_column_never_the_text),
        cmocka_unit_test(json_errors_name_line_and_column_never_the_text),
        cmocka_unit_test(csv_strict_edges),
        cmocka_unit_test(csv_reads_in_linear_time),
        cmocka_unit_test(over_long_values_are_refused_not_cut_short),
        cmocka_unit_test(a_reference_cell_with_free_text_is_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
