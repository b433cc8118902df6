/* "Who shared what about my child" on a real node: `schakel audit subject`
 * lists one child's referral (delivered on consent), held signal and
 * Veilig Thuis report (delivered on the meldcode) with their decisions,
 * and nothing of another child; --bsn finds the same child from its BSN
 * and the region key without the BSN showing anywhere; every look is then
 * in the child's history; `explain` takes the referral's id; the report
 * for the family renders in headless Chromium, in Dutch, without console
 * errors, ids or the other child; and a hold released by consent shows as
 * delivered. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fileio.h"
#include "harness.h"
#include "mapping.h"
#include "scenario.h"

#define SCHOOL "school-12ab00"
#define WIJKTEAM "wijkteam-noord"
#define SMW "smw-farent"
#define VT "veiligthuis-region"
#define BSN "123456782" /* passes the elfproef; synthetic */

#define D(x) SCHAKEL__V1__CONSENT_OUTCOME__CONSENT_OUTCOME_##x

/* What the scenario put on the log, by child. */
static struct {
    char a[65], b[65];                   /* child A (from BSN) and child B */
    char referral[33], rid[33], cid[33]; /* A's referral: event id, referral id, consent id */
    char signal[33], report[33];         /* A's held signal and Veilig Thuis report */
    char b_ids[3][33];                   /* B's event ids */
} S;

static void hexid(const uint8_t id[16], char out[33])
{
    hex(id, 16, out);
}

static void signal_about(const char *subject, uint8_t id[16])
{
    char json[1024];
    snprintf(json, sizeof json,
             "{\"type\":\"signal\",\"subject\":\"%s\",\"purpose\":\"support\",\"legal_basis\":\"consent\","
             "\"categories\":[\"behaviour\"],\"school\":\"12AB00\",\"signal\":{\"concerns\":[\"behaviour\"],"
             "\"observed_on\":\"2026-11-16\",\"raised_by\":\"teacher\"}}",
             subject);
    publish(SCHOOL, json, id);
}

static void report_about(const char *subject, uint8_t id[16])
{
    char json[1024], rep[33];
    new_id(rep);
    snprintf(json, sizeof json,
             "{\"type\":\"veiligthuis_report\",\"subject\":\"%s\",\"purpose\":\"safety\","
             "\"legal_basis\":\"meldcode\",\"categories\":[\"safety\"],\"veiligthuis_report\":"
             "{\"report_id\":\"%s\",\"reported_on\":\"2027-03-01\",\"assessment\":\"structural\","
             "\"parents_informed\":true}}",
             subject, rep);
    publish(SCHOOL, json, id);
}

/* Child A (its pseudonym made from BSN with the node's region key, as an
 * adapter would) with a referral on consent, a held signal and a report
 * to Veilig Thuis; child B with a signal, a referral and a report. */
static int setup(void **state)
{
    (void)state;
    if (node_start(0, now_ms()) != 0) return -1;
    char path[600], why[SCHAKEL_ERRLEN];
    uint8_t key[SCHAKEL_REGION_KEY_LEN], id[16];
    snprintf(path, sizeof path, "%s/keys/region.key", H->data);
    assert_int_equal(schakel_secret_file(path, key, sizeof key, 0, NULL, why), 0);
    assert_int_equal(schakel_bsn_pseudonym(key, BSN, S.a), 0);
    child("audit-subject-other-child", S.b);

    consent(SCHOOL, S.a, "parents", "under_12", "wijkteam", S.cid, id);
    referral_with_id(SCHOOL, S.a, "\"district\":\"noord\",\"age_band\":\"under_12\",", "wijkteam", S.rid, id);
    hexid(id, S.referral);
    decisions_t ds;
    wait_decisions(id, 1, &ds);
    assert_non_null(find(&ds, WIJKTEAM, D(DELIVER)));
    signal_about(S.a, id);
    hexid(id, S.signal);
    wait_decisions(id, 1, &ds);
    assert_non_null(find(&ds, SMW, D(HOLD)));
    report_about(S.a, id);
    hexid(id, S.report);
    wait_decisions(id, 1, &ds);
    assert_non_null(find(&ds, VT, D(DELIVER)));

    signal_about(S.b, id);
    hexid(id, S.b_ids[0]);
    referral(SCHOOL, S.b, "\"district\":\"noord\",\"age_band\":\"under_12\",", "wijkteam", id);
    hexid(id, S.b_ids[1]);
    report_about(S.b, id);
    hexid(id, S.b_ids[2]);
    wait_decisions(id, 1, &ds);
    wait_services(harness_head(H));
    return 0;
}

/* Runs schakel args; its exit status, stdout and stderr (caller frees). */
static int run(const char *const *args, char **out, char **err)
{
    int rc = harness_run_captured(H->dir, args, out, err);
    assert_true(rc >= 0);
    return rc;
}

static json_t *event_of(const json_t *h, const char *event_id)
{
    size_t i;
    json_t *ev;
    json_array_foreach(json_object_get(h, "events"), i, ev) {
        const char *id = json_string_value(json_object_get(ev, "event_id"));
        if (id && !strcmp(id, event_id)) return ev;
    }
    fail_msg("event %s is not in the history", event_id);
    return NULL;
}

static const json_t *decision_for(const json_t *ev, const char *recipient)
{
    size_t i;
    json_t *d;
    json_array_foreach(json_object_get(ev, "decisions"), i, d) {
        if (!strcmp(json_string_value(json_object_get(d, "recipient")), recipient)) return d;
    }
    fail_msg("no decision for %s", recipient);
    return NULL;
}

static const char *str(const json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

/* Nothing of child B in text: neither its pseudonym nor an event id. */
static void nothing_of_b(const char *text)
{
    if (strstr(text, S.b)) fail_msg("the other child's pseudonym is in it");
    for (size_t i = 0; i < 3; i++)
        if (strstr(text, S.b_ids[i])) fail_msg("the other child's event %s is in it", S.b_ids[i]);
}

static void a_childs_history_lists_its_events_and_nothing_of_another(void **state)
{
    (void)state;
    const char *args[] = {"audit",     "subject",        "--node", H->data,     "--subject", S.a,
                          "--purpose", "request 2027-1", "--html", "/dev/null", NULL};
    char *out, *err;
    assert_int_equal(run(args, &out, &err), 0);
    nothing_of_b(out);
    json_error_t jerr;
    json_t *h = json_loads(out, 0, &jerr);
    if (!h) fail_msg("not JSON: %s", jerr.text);
    assert_string_equal(str(h, "subject"), S.a);

    const json_t *ref = event_of(h, S.referral);
    assert_string_equal(str(ref, "type"), "referral");
    assert_string_equal(str(ref, "source_org"), SCHOOL);
    assert_string_equal(str(ref, "referral_id"), S.rid);
    const json_t *to_wijkteam = decision_for(ref, WIJKTEAM);
    assert_string_equal(str(to_wijkteam, "outcome"), "deliver");
    assert_string_equal(str(to_wijkteam, "legal_basis"), "consent");
    assert_string_equal(str(to_wijkteam, "consent_id"), S.cid);
    assert_int_equal(json_array_size(json_object_get(json_object_get(ref, "routing"), "recipients")), 1);

    const json_t *sig = event_of(h, S.signal);
    assert_string_equal(str(decision_for(sig, SMW), "outcome"), "hold");
    const json_t *held = json_array_get(json_object_get(h, "held"), 0);
    assert_non_null(held);
    assert_int_equal(json_array_size(json_object_get(h, "held")), 1);
    assert_string_equal(str(held, "recipient"), SMW);
    assert_string_equal(str(held, "then"), "still held");
    assert_true(json_equal(json_object_get(held, "event_seq"), json_object_get(sig, "seq")));

    const json_t *rep = event_of(h, S.report);
    assert_string_equal(str(rep, "type"), "veiligthuis_report");
    assert_string_equal(str(decision_for(rep, VT), "outcome"), "deliver");
    assert_string_equal(str(decision_for(rep, VT), "legal_basis"), "meldcode");
    json_decref(h);
    free(out);
    free(err);

    /* by BSN: the same child; the BSN is nowhere in what it says or logs */
    char key[600];
    snprintf(key, sizeof key, "%s/keys/region.key", H->data);
    const char *by_bsn[] = {"audit",        "subject", "--node",    H->data,          "--bsn", BSN,
                            "--region-key", key,       "--purpose", "request 2027-2", NULL};
    assert_int_equal(run(by_bsn, &out, &err), 0);
    h = json_loads(out, 0, &jerr);
    assert_non_null(h);
    assert_string_equal(str(h, "subject"), S.a);
    if (strstr(out, BSN) || strstr(err, BSN)) fail_msg("the BSN is in the output");
    assert_int_equal(count_in_log(BSN), 0);
    /* the first look is in the history now, with its purpose */
    const json_t *look = json_array_get(json_object_get(h, "accesses"), 0);
    assert_non_null(look);
    assert_string_equal(str(look, "command"), "audit_subject");
    assert_string_equal(str(look, "purpose"), "request 2027-1");
    json_decref(h);
    free(out);
    free(err);

    /* the other child's history has its own events and none of A's */
    const char *other[] = {"audit", "subject",   "--node", H->data, "--subject",
                           S.b,     "--purpose", "test",   NULL};
    assert_int_equal(run(other, &out, &err), 0);
    assert_null(strstr(out, S.referral));
    assert_null(strstr(out, S.signal));
    assert_null(strstr(out, S.report));
    assert_non_null(strstr(out, S.b_ids[1]));
    free(out);
    free(err);

    /* a child with nothing on the log: exit 1, said */
    char nobody[65];
    child("audit-subject-nobody", nobody);
    const char *none[] = {"audit", "subject",   "--node", H->data, "--subject",
                          nobody,  "--purpose", "test",   NULL};
    assert_int_equal(run(none, &out, &err), 1);
    assert_non_null(strstr(err, "no events about this child"));
    free(out);
    free(err);
}

/* explain takes a referral id: it explains the event that carries it. */
static void explain_takes_a_referral_id(void **state)
{
    (void)state;
    const char *args[] = {"explain", "--node", H->data, "--json", "--purpose", "test", S.rid, NULL};
    char *out, *err;
    assert_int_equal(run(args, &out, &err), 0);
    json_t *j = json_loads(out, 0, NULL);
    assert_non_null(j);
    assert_string_equal(str(j, "referral_id"), S.rid);
    assert_string_equal(str(j, "event_id"), S.referral);
    assert_string_equal(str(json_object_get(json_object_get(j, "organisations"), WIJKTEAM), "received"),
                        "event");
    json_decref(j);
    free(out);
    free(err);
}

/* Headless Chromium renders file into dom; returns its exit status and
 * whether its log shows a console message (a script error among them). */
static int chromium(const char *file, const char *dom, int *console)
{
    char url[700], profile[600], log[600];
    snprintf(url, sizeof url, "file://%s", file);
    snprintf(profile, sizeof profile, "--user-data-dir=%s/chromium", H->dir);
    snprintf(log, sizeof log, "%s/chromium.log", H->dir);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int o = open(dom, O_WRONLY | O_CREAT | O_TRUNC, 0600),
            e = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (o < 0 || e < 0 || dup2(o, 1) < 0 || dup2(e, 2) < 0) _exit(126);
        execlp("chromium", "chromium", "--headless", "--no-sandbox", "--disable-gpu",
               "--enable-logging=stderr", profile, "--dump-dom", url, (char *)NULL);
        _exit(127);
    }
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    size_t n;
    char *text = schakel_file_read(log, 1 << 24, &n);
    *console = text && strstr(text, "CONSOLE") != NULL;
    free(text);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static void the_report_for_the_family_renders_in_dutch(void **state)
{
    (void)state;
    char html[600], dom[600];
    snprintf(html, sizeof html, "%s/rapport.html", H->dir);
    snprintf(dom, sizeof dom, "%s/rapport.dom", H->dir);
    /* a purpose is a reference, never words to escape: refused, nothing
     * read; then a look whose reference uses every sign it may hold */
    const char *words[] = {"audit",     "subject", "--node",    H->data,
                           "--subject", S.a,       "--purpose", "verzoek <ouder> & \"school\"",
                           NULL};
    char *out, *err;
    assert_int_equal(run(words, &out, &err), 2);
    assert_non_null(strstr(err, "--purpose: not a reference"));
    free(out);
    free(err);
    const char *look[] = {"audit",     "subject", "--node",    H->data,
                          "--subject", S.a,       "--purpose", "verzoek 2027/41 #3 ouder@balie: a_b.c-d",
                          NULL};
    assert_int_equal(run(look, &out, &err), 0);
    free(out);
    free(err);
    const char *args[] = {"audit",     "subject", "--node", H->data, "--subject", S.a,
                          "--purpose", "afdruk",  "--html", html,    NULL};
    assert_int_equal(run(args, &out, &err), 0);
    free(out);
    free(err);
    size_t n;
    char *page = schakel_file_read(html, 1 << 20, &n);
    assert_non_null(page);
    /* self-contained: nothing loaded from elsewhere, no script */
    assert_null(strstr(page, "<script"));
    assert_null(strstr(page, "http"));
    assert_null(strstr(page, "src="));
    free(page);

    int console = 0;
    int rc = chromium(html, dom, &console);
    if (rc == 127) fail_msg("chromium is not installed (scripts/packages.txt lists it)");
    assert_int_equal(rc, 0);
    assert_false(console);
    char *text = schakel_file_read(dom, 1 << 22, &n);
    assert_non_null(text);
    static const char *const lines[] = {
        "Wie deelde wat over uw kind",
        "Basisschool De Linde (synthetic) stuurde een verwijzing (aanmelding voor hulp)",
        "ontving dit, met toestemming",
        "stuurde een signaal van zorg",
        "kreeg dit niet meteen: het werd vastgehouden tot er toestemming is",
        "stuurde een melding bij Veilig Thuis",
        "zonder toestemming, op grond van de meldcode huiselijk geweld en kindermishandeling",
        "kreeg een signaal van zorg van Basisschool De Linde (synthetic) niet meteen: het wachtte op "
        "toestemming",
        "Het wacht nog; zonder toestemming wordt het niet gedeeld.",
        "vroeg dit overzicht van uw kind op. Opgegeven reden: \xe2\x80\x9crequest 2027-1\xe2\x80\x9d",
        "verzoek 2027/41 #3 ouder@balie: a_b.c-d",
    };
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++)
        if (!strstr(text, lines[i])) fail_msg("the report lacks: %s", lines[i]);
    /* no ids, no codes, nothing of the other child */
    nothing_of_b(text);
    static const char *const absent[] = {S.a,
                                         S.referral,
                                         S.rid,
                                         S.cid,
                                         S.signal,
                                         S.report,
                                         "fallback/hold",
                                         "consent/specific",
                                         "legal/meldcode",
                                         "<ouder>"};
    for (size_t i = 0; i < sizeof absent / sizeof absent[0]; i++)
        if (strstr(text, absent[i])) fail_msg("the report shows %s", absent[i]);
    free(text);
}

/* The parents consent to school social work: the held signal is delivered,
 * and the history says so (then: delivered), as does the report. */
static void a_hold_released_by_consent_shows_as_delivered(void **state)
{
    (void)state;
    char cid[33], html[600], dom[600];
    uint8_t id[16], sig[16];
    assert_int_equal(schakel_hex_decode(S.signal, sig, 16), 0);
    consent(SCHOOL, S.a, "parents", "under_12", "smw", cid, id);
    decisions_t ds;
    wait_decisions(sig, 2, &ds);
    assert_non_null(find(&ds, SMW, D(DELIVER)));
    wait_services(harness_head(H));
    snprintf(html, sizeof html, "%s/rapport2.html", H->dir);
    snprintf(dom, sizeof dom, "%s/rapport2.dom", H->dir);
    const char *args[] = {"audit",     "subject", "--node", H->data, "--subject", S.a,
                          "--purpose", "test",    "--html", html,    NULL};
    char *out, *err;
    assert_int_equal(run(args, &out, &err), 0);
    json_t *h = json_loads(out, 0, NULL);
    assert_non_null(h);
    const json_t *held = json_array_get(json_object_get(h, "held"), 0);
    assert_non_null(held);
    assert_string_equal(str(held, "then"), "delivered");
    assert_true(json_integer_value(json_object_get(held, "then_seq")) >
                json_integer_value(json_object_get(held, "seq")));
    json_decref(h);
    free(out);
    free(err);
    int console = 0;
    assert_int_equal(chromium(html, dom, &console), 0);
    assert_false(console);
    size_t n;
    char *text = schakel_file_read(dom, 1 << 22, &n);
    assert_non_null(text);
    if (!strstr(text, "Het is gedeeld nadat er toestemming kwam"))
        fail_msg("the report does not say the held signal was shared after consent");
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_childs_history_lists_its_events_and_nothing_of_another),
        cmocka_unit_test(explain_takes_a_referral_id),
        cmocka_unit_test(the_report_for_the_family_renders_in_dutch),
        cmocka_unit_test(a_hold_released_by_consent_shows_as_delivered),
    };
    return cmocka_run_group_tests(tests, setup, node_teardown);
}
