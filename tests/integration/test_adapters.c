/* Adapters on a real node: real `schakel adapter` processes with a profile,
 * a spool, an outbox in LMDB and an inbox, against a real broker and its
 * services. A school's export reaches the log signed by the school with a
 * pseudonym and the BSN nowhere; bad rows are rejected with reasons;
 * SIGKILLing the broker or the adapter loses and doubles nothing; a
 * delivery reaches the organisation's system once, even when the hand-over
 * fails first; the HTTP and standard-input inputs answer per row; and the
 * six profiles of adapters/profiles map their example exports onto the
 * log. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "adapters_harness.h"
#include "fileio.h"
#include "harness.h"
#include "mapping.h"
#include "scenario.h"

#define FIXTURE SCHAKEL_SOURCE_DIR "/tests/fixtures/adapters/school-profile.json"

/* ---- helpers ---- */

/* Waits (60 s at most) until the spool is taken and the outbox is empty. */
static void wait_drained(adapter_t *a)
{
    for (int i = 0; i < 600; i++) {
        json_t *s = adapter_spool_empty(a) ? adapter_status(a) : NULL;
        json_int_t depth = s ? json_integer_value(json_object_get(s, "outbox_depth")) : -1;
        json_decref(s);
        if (depth == 0) return;
        usleep(100000);
    }
    fail_msg("%s: the outbox did not drain in 60 s", a->org);
}

/* Events on the log from org, of type (0: any the organisation's system
 * gave, not the adapter's own adapter_status), and whether ids repeat. */
static size_t on_log(const char *org, int type, size_t *distinct)
{
    harness_reader_t rd = harness_read(H, "svc-audit", "all");
    size_t n = 0, cap = 1024;
    uint8_t(*ids)[16] = malloc(cap * 16);
    while (harness_next(&rd)) {
        const schakel_envelope_t *e = rd.e;
        int own = e->type == SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_ADAPTER_STATUS;
        if (!strcmp(e->source_org, org) && (type ? (int)e->type == type : !own)) {
            if (n == cap) ids = realloc(ids, (cap *= 2) * 16);
            memcpy(ids[n++], e->event_id.data, 16);
        }
    }
    size_t d = 0;
    for (size_t i = 0; i < n; i++) {
        int seen = 0;
        for (size_t j = 0; j < i && !seen; j++) seen = !memcmp(ids[i], ids[j], 16);
        d += !seen;
    }
    free(ids);
    if (distinct) *distinct = d;
    return n;
}

/* A signal export of n rows, record numbers from `first`. */
static char *signals_csv(size_t n, unsigned first)
{
    char(*b)[10] = malloc(n * 10);
    synthetic_bsns(n, b);
    size_t cap = 200 + n * 120, len = 0;
    char *csv = malloc(cap);
    len += (size_t)snprintf(
        csv, cap, "registratienummer;bsn;geboortedatum;wijk;soort;datum;categorie;urgentie;naar;door\n");
    for (size_t i = 0; i < n; i++)
        len += (size_t)snprintf(csv + len, cap - len,
                                "R%u;%s;14-02-2016;Zuid;zorgsignaal;20-11-2026;gedrag;middel;;\n",
                                first + (unsigned)i, b[i]);
    free(b);
    return csv;
}

/* ---- the tests ---- */

static void school_export_reaches_the_log_without_the_bsn(void **state)
{
    (void)state;
    adapter_t a;
    adapter_init(&a, NULL, "school-34cd01", FIXTURE, NULL);
    adapter_start(&a);
    adapter_drop_text(&a, "signalen-2026-11-20.csv",
                      "registratienummer;bsn;geboortedatum;wijk;soort;datum;categorie;urgentie;naar;door\n"
                      "S1;999990019;14-02-2016;Zuid;zorgsignaal;20-11-2026;gedrag|thuis;hoog;;\n");
    wait_drained(&a);
    size_t n = on_log("school-34cd01", SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_SIGNAL, NULL);
    assert_int_equal(n, 1);

    /* the subject is the region's pseudonym of that BSN */
    char keypath[600], pseudo[65];
    snprintf(keypath, sizeof keypath, "%s/keys/region.key", H->data);
    uint8_t key[32];
    assert_int_equal(schakel_secret_file(keypath, key, 32, 0, NULL, NULL), 0);
    assert_int_equal(schakel_bsn_pseudonym(key, "999990019", pseudo), 0);
    harness_reader_t rd = harness_read(H, "svc-audit", "all");
    int seen = 0;
    while (harness_next(&rd)) {
        const schakel_envelope_t *e = rd.e;
        if (e->type == SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_SIGNAL &&
            !strcmp(e->source_org, "school-34cd01")) {
            assert_string_equal(e->subject, pseudo);
            assert_string_equal(e->district, "zuid");
            assert_int_equal(e->age_band, SCHAKEL__V1__AGE_BAND__AGE_BAND_UNDER_12);
            seen = 1;
        }
    }
    assert_true(seen);
    assert_int_equal(adapter_stop(&a, SIGTERM), 0);

    /* the BSN in no LMDB file, no log, nothing the adapter keeps */
    char where[1200];
    const char *spools[] = {"spool", NULL}; /* the organisation's own exports */
    if (has_bytes(H->dir, "999990019", spools, where, sizeof where)) fail_msg("the BSN is in %s", where);
    /* ...and the check can fail: the export itself, in done/, does hold it */
    char done[800];
    snprintf(done, sizeof done, "%s/done", a.spool);
    assert_true(has_bytes(done, "999990019", NULL, where, sizeof where));
}

static void bad_rows_are_rejected_with_reasons(void **state)
{
    (void)state;
    adapter_t a;
    adapter_init(&a, NULL, "school-12ab00", FIXTURE, NULL);
    adapter_start(&a);
    adapter_drop_text(
        &a, "export-met-fouten.csv",
        "registratienummer;bsn;geboortedatum;wijk;soort;datum;categorie;urgentie;naar;door\n"
        "B1;999990032;14-02-2016;Noord;zorgsignaal;20-11-2026;gedrag;laag;;\n"
        "B2;999990033;14-02-2016;Noord;zorgsignaal;20-11-2026;gedrag;laag;;\n" /* fails the elfproef */
        "B3;999990044;14-02-2016;Noord;zorgsignaal;31-11-2026;gedrag;laag;;\n" /* no 31 November */
        "B4;999990056;14-02-2016;Noord;zorgsignaal;20-11-2026;pesten;laag;;\n" /* an unknown code */
        "B5;999990068;14-02-2016;Noord;\"zorgsignaal\";20-11-2026;leren;middel;;\n");
    wait_drained(&a);
    assert_int_equal(on_log("school-12ab00", SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_SIGNAL, NULL), 2);

    char path[900], text[8192];
    snprintf(path, sizeof path, "%s/rejected/export-met-fouten.csv.reasons.jsonl", a.spool);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    size_t n = fread(text, 1, sizeof text - 1, f);
    text[n] = 0;
    fclose(f);
    assert_non_null(strstr(text, "\"row\":3"));
    assert_non_null(strstr(text, "elfproef"));
    assert_non_null(strstr(text, "\"row\":4"));
    assert_non_null(strstr(text, "column datum"));
    assert_non_null(strstr(text, "\"row\":5"));
    assert_non_null(strstr(text, "column categorie: unknown code"));
    assert_null(strstr(text, "pesten"));    /* nor any other value of a row */
    assert_null(strstr(text, "999990033")); /* a reason never quotes a BSN */
    /* the bad rows themselves, with the header, ready to fix and drop back */
    snprintf(path, sizeof path, "%s/rejected/export-met-fouten.csv", a.spool);
    f = fopen(path, "r");
    assert_non_null(f);
    n = fread(text, 1, sizeof text - 1, f);
    text[n] = 0;
    fclose(f);
    assert_non_null(strstr(text, "registratienummer;bsn"));
    assert_non_null(strstr(text, "B2;"));
    assert_non_null(strstr(text, "B4;"));
    assert_null(strstr(text, "B1;"));
    snprintf(path, sizeof path, "%s/done/export-met-fouten.csv", a.spool);
    assert_int_equal(access(path, F_OK), 0);

    /* a corrected row under the same record number is refused, not dropped */
    adapter_drop_text(&a, "correctie.csv",
                      "registratienummer;bsn;geboortedatum;wijk;soort;datum;categorie;urgentie;naar;door\n"
                      "B1;999990032;14-02-2016;Noord;zorgsignaal;20-11-2026;thuis;laag;;\n");
    wait_drained(&a);
    snprintf(path, sizeof path, "%s/rejected/correctie.csv.reasons.jsonl", a.spool);
    for (int i = 0; i < 50 && access(path, F_OK) != 0; i++) usleep(100000);
    f = fopen(path, "r");
    assert_non_null(f);
    n = fread(text, 1, sizeof text - 1, f);
    text[n] = 0;
    fclose(f);
    assert_non_null(strstr(text, "sent before with other content"));

    /* a file's name never reaches the log: not a surname in it, not a
     * line break that would forge a log line; a keyed reference does */
    const char *name = "melding_Jansen\nevent=forged level=error.csv";
    adapter_drop_text(&a, name,
                      "registratienummer;bsn;geboortedatum;wijk;soort;datum;categorie;urgentie;naar;door\n"
                      "N1;999990033;14-02-2016;Noord;zorgsignaal;20-11-2026;gedrag;laag;;\n");
    snprintf(path, sizeof path, "%s/rejected/%s.reasons.jsonl", a.spool, name);
    for (int i = 0; i < 100 && access(path, F_OK) != 0; i++) usleep(100000);
    assert_int_equal(access(path, F_OK), 0);
    for (int i = 0; i < 50 && count_in_file(a.log, "event=file_done") < 3; i++) usleep(100000);
    assert_int_equal(count_in_file(a.log, "Jansen"), 0);
    assert_int_equal(count_in_file(a.log, "\nevent=forged"), 0);
    assert_true(count_in_file(a.log, "event=file_done file_ref=") >= 3);
    assert_true(count_in_file(path, "\"file_ref\":") >= 1);
    assert_int_equal(adapter_stop(&a, SIGTERM), 0);
}

static void broker_killed_while_sending_loses_and_doubles_nothing(void **state)
{
    (void)state;
    adapter_t a, b;
    adapter_init(&a, NULL, "school-12ab00", FIXTURE, NULL);
    adapter_init(&b, NULL, "school-34cd01", FIXTURE, NULL);
    size_t before_a = on_log("school-12ab00", 0, NULL), before_b = on_log("school-34cd01", 0, NULL);
    adapter_start(&a);
    adapter_start(&b);
    char *ca = signals_csv(1500, 10000), *cb = signals_csv(1500, 20000);
    adapter_drop_text(&a, "groot-a.csv", ca);
    adapter_drop_text(&b, "groot-b.csv", cb);
    free(ca);
    free(cb);
    for (int round = 0; round < 3; round++) {
        usleep(150000 + 100000 * (useconds_t)round);
        harness_stop(H, SIGKILL);
        usleep(300000);
        assert_int_equal(harness_start(H), 0);
    }
    wait_drained(&a);
    wait_drained(&b);
    size_t da, db;
    assert_int_equal(on_log("school-12ab00", 0, &da) - before_a, 1500);
    assert_int_equal(on_log("school-34cd01", 0, &db) - before_b, 1500);
    assert_int_equal(da, on_log("school-12ab00", 0, NULL));
    assert_int_equal(db, on_log("school-34cd01", 0, NULL));
    adapter_stop(&a, SIGTERM);
    adapter_stop(&b, SIGTERM);
}

static void adapter_killed_mid_file_loses_and_doubles_nothing(void **state)
{
    (void)state;
    adapter_t a;
    adapter_init(&a, NULL, "school-12ab00", FIXTURE, NULL);
    size_t before = on_log("school-12ab00", 0, NULL);
    char *csv = signals_csv(3000, 30000);
    adapter_start(&a);
    adapter_drop_text(&a, "nog-groter.csv", csv);
    for (int round = 0; round < 4; round++) {
        usleep(120000 + 90000 * (useconds_t)round);
        assert_int_equal(WTERMSIG(adapter_stop(&a, SIGKILL)), SIGKILL);
        adapter_start(&a);
    }
    wait_drained(&a);
    size_t distinct;
    assert_int_equal(on_log("school-12ab00", 0, &distinct) - before, 3000);
    assert_int_equal(distinct, before + 3000);
    /* the same export again changes nothing */
    adapter_drop_text(&a, "nog-groter-opnieuw.csv", csv);
    wait_drained(&a);
    assert_int_equal(on_log("school-12ab00", 0, NULL) - before, 3000);
    free(csv);
    assert_int_equal(adapter_stop(&a, SIGTERM), 0);
}

static size_t count_lines_with(const char *path, const char *needle)
{
    FILE *f = fopen(path, "r");
    char line[512];
    size_t n = 0;
    while (f && fgets(line, sizeof line, f)) n += strstr(line, needle) != NULL;
    if (f) fclose(f);
    return n;
}

static void delivery_lands_once_though_the_hand_over_fails_first(void **state)
{
    (void)state;
    /* the wijkteam's system: a command that fails the first time it runs */
    adapter_t w, s;
    char extra[1600];
    snprintf(extra, sizeof extra,
             "\"inbox\": {\"command\": \"if [ ! -e %s/adapters/failed-once ]; then touch "
             "%s/adapters/failed-once; exit 1; fi; "
             "cat > /dev/null; echo $SCHAKEL_EVENT_ID $SCHAKEL_EVENT_TYPE >> %s/adapters/handed.txt\"}",
             H->dir, H->dir, H->dir);
    adapter_init(&w, NULL, "wijkteam-zuid", FIXTURE, extra);
    adapter_start(&w);
    /* the school refers a child living in zuid, with the parents' consent */
    adapter_init(&s, NULL, "school-34cd01", FIXTURE, NULL);
    adapter_start(&s);
    adapter_drop_text(&s, "aanmelding.csv",
                      "registratienummer;bsn;geboortedatum;wijk;soort;datum;categorie;urgentie;naar;door\n"
                      "T1;999990081;14-02-2016;Zuid;toestemming;01-11-2026;thuis;laag;wijkteam;ouders\n"
                      "A1;999990081;14-02-2016;Zuid;aanmelding;01-11-2026;thuis;middel;wijkteam;\n");
    wait_drained(&s);
    char handed[700];
    snprintf(handed, sizeof handed, "%s/adapters/handed.txt", H->dir);
    for (int i = 0; i < 300 && count_lines_with(handed, " referral") < 1; i++) usleep(100000);
    usleep(1500000); /* time for a second hand-over, if there were to be one */
    assert_int_equal(count_lines_with(handed, " referral"), 1);
    assert_int_equal(count_lines_with(handed, " consent_given"), 1);
    char failed[700];
    snprintf(failed, sizeof failed, "%s/adapters/failed-once", H->dir);
    assert_int_equal(access(failed, F_OK), 0);
    assert_true(count_lines_with(w.log, "event=handover_retry") >= 1);
    /* after a restart nothing is handed over again */
    assert_int_equal(adapter_stop(&w, SIGTERM), 0);
    adapter_start(&w);
    usleep(1500000);
    assert_int_equal(count_lines_with(handed, " referral"), 1);
    json_t *st = adapter_status(&w);
    assert_true(json_integer_value(json_object_get(st, "inbox_cursor")) > 0);
    json_decref(st);
    adapter_stop(&w, SIGTERM);
    adapter_stop(&s, SIGTERM);
}

/* One record Veilig Thuis's system refuses does not hold up the next
 * safety report: after INBOX_TRIES failures it is set aside (a note, no
 * content), the inbox moves on, and an operator re-delivers it by moving
 * the note. */
static void a_refused_record_is_set_aside_and_the_next_report_still_arrives(void **state)
{
    (void)state;
    adapter_t v, s;
    char extra[4200], d[700];
    snprintf(d, sizeof d, "%s/adapters", H->dir);
    snprintf(
        extra, sizeof extra,
        "\"inbox\": {\"command\": \"cat > /dev/null; if [ \\\"$SCHAKEL_EVENT_TYPE\\\" = veiligthuis_report "
        "]; "
        "then [ -e %s/vt-first ] || echo $SCHAKEL_EVENT_ID > %s/vt-first; "
        "if [ \\\"$(cat %s/vt-first)\\\" = $SCHAKEL_EVENT_ID ] && [ ! -e %s/vt-fixed ]; then exit 1; fi; fi; "
        "echo $SCHAKEL_EVENT_ID $SCHAKEL_EVENT_TYPE >> %s/vt-handed.txt\"}",
        d, d, d, d, d);
    char vt_profile[800], school_profile[800];
    snprintf(vt_profile, sizeof vt_profile, "%s/adapters/profiles/veiligthuis/profile.json",
             SCHAKEL_SOURCE_DIR);
    snprintf(school_profile, sizeof school_profile, "%s/adapters/profiles/school/profile.json",
             SCHAKEL_SOURCE_DIR);
    adapter_init(&v, "vt-inbox", "veiligthuis-region", vt_profile, extra);
    adapter_start(&v);
    adapter_init(&s, "school-vt", "school-12ab00", school_profile, NULL);
    adapter_start(&s);
    const char *head =
        "registratienummer;leerlingnummer;bsn;geboortedatum;groep;brin_vestiging;wijk;soort;datum;"
        "tijd;stap;besluit;vt_geraadpleegd;categorie;taxatie;ouders_geinformeerd;"
        "reden_niet_geinformeerd;medewerker_id;functie;notitie\n";
    char csv[2048];
    snprintf(csv, sizeof csv,
             "%sVT-T1;1;999990019;09-08-2013;8;12AB00;Noord;melding VT;01-12-2026;08:20;;;;veiligheid;"
             "structureel;ja;;AF-01;IB;\n",
             head);
    adapter_drop_text(&s, "melding-1.csv", csv);
    char first[800], handed[800];
    snprintf(first, sizeof first, "%s/vt-first", d);
    snprintf(handed, sizeof handed, "%s/vt-handed.txt", d);
    for (int i = 0; i < 300 && access(first, F_OK) != 0; i++) usleep(100000);
    assert_int_equal(access(first, F_OK), 0); /* the first report reached the command, which refuses it */
    snprintf(csv, sizeof csv,
             "%sVT-T2;2;999990020;09-08-2013;8;12AB00;Noord;melding VT;02-12-2026;09:00;;;;veiligheid;"
             "acuut;ja;;AF-01;IB;\n",
             head);
    adapter_drop_text(&s, "melding-2.csv", csv);
    for (int i = 0; i < 300 && count_lines_with(handed, " veiligthuis_report") < 1; i++) usleep(100000);
    if (count_lines_with(handed, " veiligthuis_report") != 1)
        fail_msg("the second report was not handed over in 30 s: the refused one holds up the inbox");
    /* the refused one: a note without content, said in the log and the status */
    char aside[900], redeliver[900];
    snprintf(aside, sizeof aside, "%s/state/inbox-set-aside", v.dir);
    snprintf(redeliver, sizeof redeliver, "%s/state/inbox-redeliver", v.dir);
    assert_true(count_in_file(v.log, "event=inbox_set_aside") == 1);
    assert_false(has_bytes(aside, "999990019", NULL, NULL, 0));
    assert_true(has_bytes(aside, "\"type\":\"veiligthuis_report\"", NULL, NULL, 0));
    json_t *st = adapter_status(&v);
    assert_int_equal(json_integer_value(json_object_get(st, "inbox_set_aside")), 1);
    assert_non_null(strstr(json_string_value(json_object_get(st, "last_error")), "set aside"));
    json_decref(st);
    /* the operator fixed the system and moves the note: it is handed over */
    char fixed[800];
    snprintf(fixed, sizeof fixed, "%s/vt-fixed", d);
    write_bytes(fixed, "", 0, 0600);
    char cmd[3000];
    snprintf(cmd, sizeof cmd, "mv '%s'/*.json '%s'/", aside, redeliver);
    assert_int_equal(system(cmd), 0);
    for (int i = 0; i < 300 && count_lines_with(handed, " veiligthuis_report") < 2; i++) usleep(100000);
    assert_int_equal(count_lines_with(handed, " veiligthuis_report"), 2);
    for (int i = 0; i < 50 && count_in_file(v.log, "event=inbox_redelivered") < 1; i++) usleep(100000);
    st = adapter_status(&v);
    assert_int_equal(json_integer_value(json_object_get(st, "inbox_set_aside")), 0);
    json_decref(st);
    /* no answer from the bus is not a refusal (a review): a note the bus
     * does not answer for (here a position past the head) stays to be
     * tried again, and is not put back aside as "not in the stream" */
    char late[1000];
    snprintf(late, sizeof late, "%s/00000000000099999999.json", redeliver);
    write_bytes(late, "{}", 2, 0600);
    for (int i = 0; i < 150 && count_in_file(v.log, "event=inbox_redeliver_retry") < 1; i++) usleep(100000);
    assert_true(count_in_file(v.log, "event=inbox_redeliver_retry") >= 1);
    assert_int_equal(access(late, F_OK), 0);
    assert_int_equal(count_in_file(v.log, "event=inbox_redeliver_refused"), 0);
    assert_int_equal(adapter_stop(&v, SIGTERM), 0);
    assert_int_equal(adapter_stop(&s, SIGTERM), 0);
}

/* A body the adapter cannot keep in memory is refused whole (503), not
 * parsed with a chunk missing: the adapter runs with a data limit a few
 * MiB above what it uses, and gets a body larger than that. */
static void a_body_that_cannot_be_kept_is_refused_whole(void **state)
{
    (void)state;
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
    skip(); /* a sanitizer's allocator does not live within a data limit */
#else
    adapter_t a;
    char http[100];
    int port = harness_free_port();
    assert_true(port > 0);
    snprintf(http, sizeof http, "\"http\": \"127.0.0.1:%d\"", port);
    adapter_init(&a, "school-membound", "school-12ab00", FIXTURE, http);
    a.port = port;
    setenv("MALLOC_ARENA_MAX", "1", 1); /* every allocation under the one limit */
    adapter_start_ready(&a);
    unsetenv("MALLOC_ARENA_MAX");
    usleep(500000);
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)a.pid);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    long data_kb = -1;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "VmData:", 7)) data_kb = strtol(line + 7, NULL, 10);
    fclose(f);
    assert_true(data_kb > 0);
    struct rlimit lim;
    assert_int_equal(prlimit(a.pid, RLIMIT_DATA, NULL, &lim), 0);
    lim.rlim_cur = (rlim_t)data_kb * 1024 + ((rlim_t)3 << 20);
    assert_int_equal(prlimit(a.pid, RLIMIT_DATA, &lim, NULL), 0);
    /* 6 MiB of rows (under the 8 MiB bound) */
    size_t cap = (size_t)6 << 20, len = 0;
    char *body = malloc(cap + 512);
    assert_non_null(body);
    for (unsigned i = 0; len < cap; i++)
        len += (size_t)snprintf(body + len, 512,
                                "{\"registratienummer\":\"M%u\",\"bsn\":\"999990093\",\"geboortedatum\":"
                                "\"14-02-2016\",\"wijk\":\"Noord\",\"soort\":\"zorgsignaal\",\"datum\":"
                                "\"20-11-2026\",\"categorie\":\"gedrag\",\"urgentie\":\"hoog\"}\n",
                                i);
    char tokpath[800], auth[200] = "Authorization: Bearer ";
    snprintf(tokpath, sizeof tokpath, "%s/state/http.token", a.dir);
    size_t toklen = 0;
    char *tok = schakel_file_read(tokpath, 4096, &toklen);
    assert_non_null(tok);
    strncat(auth, tok, strcspn(tok, "\n"));
    free(tok);
    const char *hdr[] = {auth, "Content-Type: application/json", NULL};
    buf_t ans = {0};
    long code = adapter_http(&a, "POST", "/events", hdr, body, len, &ans, 60000);
    free(body);
    if (code != 503 || !ans.data || !strstr(ans.data, "while receiving the body"))
        fail_msg("a body that could not be kept: status %ld, %.200s", code, ans.data ? ans.data : "");
    free(ans.data);
    json_t *st = adapter_status(&a);
    assert_int_equal(json_integer_value(json_object_get(st, "outbox_depth")) +
                         json_integer_value(json_object_get(st, "acked")),
                     0); /* nothing of it was kept */
    json_decref(st);
    assert_int_equal(adapter_stop(&a, SIGTERM), 0);
#endif
}

static void http_and_stdin_answer_per_row(void **state)
{
    (void)state;
    adapter_t a;
    char http[100];
    int port = harness_free_port();
    assert_true(port > 0);
    snprintf(http, sizeof http, "\"http\": \"127.0.0.1:%d\"", port);
    adapter_init(&a, NULL, "school-12ab00", FIXTURE, http);
    a.port = port;
    adapter_start(&a);
    const char *rows =
        "[{\"registratienummer\":\"H1\",\"bsn\":\"999990093\",\"geboortedatum\":\"14-02-2016\","
        "\"wijk\":\"Noord\",\"soort\":\"zorgsignaal\",\"datum\":\"20-11-2026\",\"categorie\":\"gedrag\","
        "\"urgentie\":\"hoog\"},"
        "{\"registratienummer\":\"H2\",\"bsn\":\"123\",\"geboortedatum\":\"14-02-2016\","
        "\"wijk\":\"Noord\",\"soort\":\"zorgsignaal\",\"datum\":\"20-11-2026\",\"categorie\":\"gedrag\","
        "\"urgentie\":\"hoog\"}]";
    long code = -1;
    /* the adapter makes its token file (state/http.token) on first start */
    char tokpath[800], auth[200] = "Authorization: Bearer ";
    snprintf(tokpath, sizeof tokpath, "%s/state/http.token", a.dir);
    size_t toklen = 0;
    char *tok = NULL;
    for (int i = 0; i < 100 && !(tok = schakel_file_read(tokpath, 4096, &toklen)); i++) usleep(100000);
    assert_non_null(tok);
    strncat(auth, tok, strcspn(tok, "\n"));
    free(tok);
    const char *hdrs[] = {auth, "Content-Type: application/json", NULL};
    buf_t body = {0};
    for (int i = 0; i < 50 && code < 0; i++) { /* until it listens */
        free(body.data);
        body = (buf_t){0};
        code = adapter_http(&a, "POST", "/events", hdrs, rows, strlen(rows), &body, 10000);
        if (code < 0) usleep(100000);
    }
    json_error_t err;
    json_t *answer = body.data ? json_loadb(body.data, body.len, 0, &err) : NULL;
    free(body.data);
    assert_non_null(answer);
    assert_int_equal(code, 200);
    assert_int_equal(json_array_size(answer), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(answer, 0), "status")), "queued");
    assert_string_equal(json_string_value(json_object_get(json_array_get(answer, 1), "status")), "rejected");
    assert_non_null(
        strstr(json_string_value(json_object_get(json_array_get(answer, 1), "reason")), "column bsn"));
    json_decref(answer);
    wait_drained(&a);
    assert_int_equal(adapter_stop(&a, SIGTERM), 0);

    /* standard input, until everything is ACKed */
    char cmd[2400], out[800];
    snprintf(out, sizeof out, "%s/stdin-acks.jsonl", a.dir);
    int cmd_len = snprintf(
        cmd, sizeof cmd,
        "printf '%%s\\n' "
        "'{\"registratienummer\":\"I1\",\"bsn\":\"999990081\",\"geboortedatum\":\"14-02-2016\","
        "\"wijk\":\"Noord\",\"soort\":\"zorgsignaal\",\"datum\":\"20-11-2026\",\"categorie\":\"leren\","
        "\"urgentie\":\"laag\"}' 'not json' | %s/schakel adapter --config %s --stdin --once > %s 2>>%s",
        SCHAKEL_BIN_DIR, a.config, out, a.log);
    assert_true(cmd_len < (int)sizeof cmd);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(count_lines_with(out, "\"status\":\"queued\""), 1);
    assert_int_equal(count_lines_with(out, "\"status\":\"rejected\""), 1);
    assert_int_equal(count_lines_with(out, "\"reason\":\"line 2, column "), 1); /* where, not what */
    json_t *st = adapter_status(&a);
    assert_int_equal(json_integer_value(json_object_get(st, "outbox_depth")), 0);
    json_decref(st);
    assert_int_equal(count_lines_with(a.log, "Sanitizer") + count_lines_with(a.log, "runtime error"), 0);
}

/* The six profiles of adapters/profiles, each with its example exports,
 * each as the sample organisation of its kind. */
static void six_profiles_map_their_examples_onto_the_log(void **state)
{
    (void)state;
    const char *kinds[][2] = {{"school", "school-12ab00"}, {"smw", "smw-farent"},
                              {"ggd", "ggd-jgz"},          {"wijkteam", "wijkteam-noord"},
                              {"ppo", "ppo-region"},       {"veiligthuis", "veiligthuis-region"}};
    adapter_t a[6];
    size_t before[6], expect[6];
    for (int k = 0; k < 6; k++) {
        char profile[800], examples[800];
        snprintf(profile, sizeof profile, "%s/adapters/profiles/%s/profile.json", SCHAKEL_SOURCE_DIR,
                 kinds[k][0]);
        snprintf(examples, sizeof examples, "%s/adapters/profiles/%s/examples", SCHAKEL_SOURCE_DIR,
                 kinds[k][0]);
        adapter_init(&a[k], NULL, kinds[k][1], profile, NULL);
        before[k] = on_log(kinds[k][1], 0, NULL);
        /* how many events the examples make, by the mapper itself */
        char out[900];
        snprintf(out, sizeof out, "%s/check.jsonl", a[k].dir);
        DIR *d = opendir(examples);
        assert_non_null(d);
        struct dirent *e;
        expect[k] = 0;
        while ((e = readdir(d))) {
            if (e->d_name[0] == '.') continue;
            char file[1200], text[1 << 16];
            snprintf(file, sizeof file, "%s/%s", examples, e->d_name);
            const char *args[] = {"adapter", "check", "--profile", profile, "--org", kinds[k][1], file, NULL};
            assert_int_equal(harness_run_tool(out, args), 0); /* no row rejected */
            expect[k] += count_lines_with(out, "\"event_id\"");
            FILE *f = fopen(file, "r");
            size_t n = fread(text, 1, sizeof text - 1, f);
            text[n] = 0;
            fclose(f);
            adapter_drop_text(&a[k], e->d_name, text);
        }
        closedir(d);
        assert_true(expect[k] > 0);
        adapter_start(&a[k]);
    }
    for (int k = 0; k < 6; k++) {
        wait_drained(&a[k]);
        json_t *st = adapter_status(&a[k]);
        assert_int_equal(json_integer_value(json_object_get(st, "dead_letters")), 0);
        json_decref(st);
        size_t got = on_log(kinds[k][1], 0, NULL) - before[k];
        if (got != expect[k])
            fail_msg("%s: %zu events on the log, the examples make %zu", kinds[k][0], got, expect[k]);
        assert_int_equal(adapter_stop(&a[k], SIGTERM), 0);
    }
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(school_export_reaches_the_log_without_the_bsn),
        cmocka_unit_test(bad_rows_are_rejected_with_reasons),
        cmocka_unit_test(broker_killed_while_sending_loses_and_doubles_nothing),
        cmocka_unit_test(adapter_killed_mid_file_loses_and_doubles_nothing),
        cmocka_unit_test(delivery_lands_once_though_the_hand_over_fails_first),
        cmocka_unit_test(a_refused_record_is_set_aside_and_the_next_report_still_arrives),
        cmocka_unit_test(http_and_stdin_answer_per_row),
        cmocka_unit_test(a_body_that_cannot_be_kept_is_refused_whole),
        cmocka_unit_test(six_profiles_map_their_examples_onto_the_log),
    };
    int rc = cmocka_run_group_tests(tests, adapters_node_setup, adapters_node_teardown);
    curl_global_cleanup();
    return rc;
}
