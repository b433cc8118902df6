/* No plaintext at rest (issue 10): a whole node with two real adapters.
 * Marker strings travel in every free-ish string a publisher may fill in
 * (case_ref, a contact's ref, a consent's recorded_by ref), through a
 * school's spool export and through publish; the events are routed, held,
 * released by a consent, delivered into the wijkteam's inbox, and looped
 * (received, first contact, closure). Then every file under the test's
 * root - the node (log, services' state, keys, logs) and both adapters
 * (outbox, state, logs) - is searched byte for byte. The markers may be
 * only in the school's own export (its spool) and in the wijkteam's inbox
 * directory, which is the receiving system's output by design (it holds
 * the delivered referral, with the school's case_ref). And an erased
 * child's held referral is forgotten by the consent service. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <time.h>
#include <jansson.h>
#include <lmdb.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "adapters_harness.h"
#include "fileio.h"
#include "harness.h"
#include "mapping.h"
#include "runner.h"
#include "store_lmdb.h"
#include "scenario.h"

#define FIXTURE SCHAKEL_SOURCE_DIR "/tests/fixtures/adapters/school-profile.json"
#define WIJKTEAM_PROFILE SCHAKEL_SOURCE_DIR "/adapters/profiles/wijkteam/profile.json"
#define MARK "zq7MARKERx" /* + a letter per place it was put */

/* An adapter of org, its inbox a directory (as the receiving system's). */
static void adapter_begin(adapter_t *a, const char *org, const char *profile)
{
    adapter_init(a, NULL, org, profile, "\"inbox\": {\"dir\": \"inbox\"}");
    mkdir(a->spool, 0700);
    adapter_start(a);
}

/* The school's referral from its export, as the log has it. */
static int find_referral(char rid[33], char subject[65], uint8_t id[16])
{
    harness_reader_t rd = harness_read(H, "svc-audit", "all");
    int found = 0;
    while (!found && harness_next(&rd)) {
        const schakel_envelope_t *e = rd.e;
        if (e->type == SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_REFERRAL &&
            !strcmp(e->source_org, "school-34cd01")) {
            hex(e->referral->referral_id.data, 16, rid);
            snprintf(subject, 65, "%s", e->subject);
            memcpy(id, e->event_id.data, 16);
            found = 1;
        }
    }
    harness_read_end(&rd);
    return found;
}

static void markers_rest_only_in_the_export_and_the_inbox(void **state)
{
    (void)state;
    /* the school's profile, with a case reference column */
    json_error_t err;
    json_t *prof = json_load_file(FIXTURE, 0, &err);
    assert_non_null(prof);
    json_object_set_new(json_object_get(prof, "defaults"), "case_ref",
                        json_pack("{s:s}", "column", "dossier"));
    char profile[600];
    snprintf(profile, sizeof profile, "%s/school-profile.json", H->dir);
    assert_int_equal(json_dump_file(prof, profile, JSON_INDENT(1)), 0);
    json_decref(prof);

    adapter_t school, wijkteam;
    adapter_begin(&school, "school-34cd01", profile);

    /* 1. by export: a referral (held: no consent yet) and a signal */
    char b[2][10], csv[2048];
    synthetic_bsns(2, b);
    snprintf(csv, sizeof csv,
             "registratienummer;bsn;geboortedatum;wijk;soort;datum;categorie;urgentie;naar;door;dossier\n"
             "AR1;%s;14-02-2016;Zuid;aanmelding;20-11-2026;thuis;middel;wijkteam;;" MARK "A\n"
             "AR2;%s;14-02-2016;Zuid;zorgsignaal;20-11-2026;gedrag;hoog;;;" MARK "B\n",
             b[0], b[1]);
    adapter_drop_text(&school, "export-1.csv", csv);
    char rid[33] = "", p[65] = "";
    uint8_t ref[16];
    for (int i = 0; i < 600 && !find_referral(rid, p, ref); i++) usleep(100000);
    assert_true(rid[0]);
    wait_services(harness_head(H));
    assert_int_equal(count_in_log("event=about_unknown"), 0);

    /* 2. by publish: a follow-up signal with a contact, and a consent
     * recorded by someone, each with markers */
    char q[65], json[2048], cid[33];
    child("at-rest-published", q);
    snprintf(
        json, sizeof json,
        "{\"type\":\"signal\",\"subject\":\"%s\",\"case_ref\":\"" MARK "D\",\"purpose\":\"support\","
        "\"legal_basis\":\"consent\",\"categories\":[\"behaviour\"],\"district\":\"zuid\","
        "\"signal\":{\"concerns\":[\"behaviour\"],\"urgency\":\"soon\",\"observed_on\":\"2026-11-20\","
        "\"raised_by\":\"teacher\",\"follow_up_requested\":true,\"contact\":{\"org_id\":\"school-34cd01\","
        "\"role\":\"intern_begeleider\",\"ref\":\"" MARK "E\"}}}",
        q);
    publish("school-34cd01", json, NULL);
    new_id(cid);
    snprintf(
        json, sizeof json,
        "{\"type\":\"consent_given\",\"subject\":\"%s\",\"case_ref\":\"" MARK
        "F\",\"purpose\":\"consent_admin\","
        "\"legal_basis\":\"consent\",\"consent_given\":{\"consent_id\":\"%s\",\"given_by\":\"parents\","
        "\"age_band\":\"under_12\",\"recipient_kind\":\"wijkteam\",\"purposes\":[\"support\",\"feedback\"],"
        "\"valid_from\":\"2020-01-01\",\"recorded_by\":{\"org_id\":\"school-34cd01\","
        "\"role\":\"intern_begeleider\",\"ref\":\"" MARK "G\"}}}",
        q, cid);
    publish("school-34cd01", json, NULL);

    adapter_begin(&wijkteam, "wijkteam-zuid", WIJKTEAM_PROFILE);

    /* 3. by export: the parents' consent for the referral's child: the
     * hold is released and the referral reaches the wijkteam's system */
    snprintf(csv, sizeof csv,
             "registratienummer;bsn;geboortedatum;wijk;soort;datum;categorie;urgentie;naar;door;dossier\n"
             "AT1;%s;14-02-2016;Zuid;toestemming;20-11-2026;thuis;;wijkteam;ouders;" MARK "C\n",
             b[0]);
    adapter_drop_text(&school, "export-2.csv", csv);
    decisions_t ds;
    wait_decisions(ref, 2, &ds); /* held, then released */
    assert_non_null(find(&ds, "wijkteam-zuid", SCHAKEL__V1__CONSENT_OUTCOME__CONSENT_OUTCOME_DELIVER));
    /* the released referral reaches the wijkteam's system, whose inbox
     * has been reading org/wijkteam-zuid since before the release */
    wait_bytes(wijkteam.inbox, MARK "A");

    /* 4. the loop: the wijkteam answers; the school hears each step (the
     * parents consented to the school hearing how it goes: a consent that
     * names the school for feedback) */
    new_id(cid);
    snprintf(json, sizeof json,
             "{\"type\":\"consent_given\",\"subject\":\"%s\",\"purpose\":\"consent_admin\","
             "\"legal_basis\":\"consent\",\"consent_given\":{\"consent_id\":\"%s\",\"given_by\":\"parents\","
             "\"age_band\":\"under_12\",\"recipient_org\":\"school-34cd01\",\"purposes\":[\"feedback\"],"
             "\"valid_from\":\"2020-01-01\"}}",
             p, cid);
    publish("school-34cd01", json, NULL);
    const char *steps[][2] = {{"referral_received", "\"received_on\":\"2026-11-23\""},
                              {"first_contact", "\"contact_on\":\"2026-11-24\""},
                              {"closure", "\"closed_on\":\"2026-11-30\",\"reason_code\":\"goals_met\""}};
    for (size_t i = 0; i < 3; i++) {
        snprintf(json, sizeof json,
                 "{\"type\":\"%s\",\"subject\":\"%s\",\"case_ref\":\"" MARK "H\",\"purpose\":\"feedback\","
                 "\"legal_basis\":\"consent\",\"%s\":{\"referral_id\":\"%s\",%s}}",
                 steps[i][0], p, steps[i][0], rid, steps[i][1]);
        publish("wijkteam-zuid", json, NULL);
    }
    wait_services(harness_head(H));
    wait_bytes(school.inbox, "\"closed\"");

    assert_int_equal(adapter_stop(&school, SIGTERM), 0);
    assert_int_equal(adapter_stop(&wijkteam, SIGTERM), 0);
    assert_int_equal(harness_shutdown(H), 0);

    /* the services' decisions still replay byte for byte, events read back
     * from the log (its output goes outside the searched tree) */
    char out[600];
    snprintf(out, sizeof out, "%s.replay.json", H->dir);
    const char *args[] = {"audit", "replay", "--data", H->data, NULL};
    assert_int_equal(harness_run_tool(out, args), 0);
    unlink(out);

    /* every file, but the export and the receiving system's inbox */
    const char *skip[] = {school.spool, wijkteam.inbox, NULL};
    const char *marks[] = {MARK "A", MARK "B", MARK "C", MARK "D", MARK "E", MARK "F", MARK "G", MARK "H"};
    char where[1200];
    for (size_t i = 0; i < sizeof marks / sizeof marks[0]; i++)
        if (has_bytes(H->dir, marks[i], skip, where, sizeof where))
            fail_msg("%s is at rest in %s", marks[i], where);
    /* ...and the search can find: the export holds its markers, the inbox
     * the delivered referral's case_ref */
    assert_true(has_bytes(school.spool, MARK "A", NULL, where, sizeof where));
    assert_true(has_bytes(school.spool, MARK "C", NULL, where, sizeof where));
    assert_true(has_bytes(wijkteam.inbox, MARK "A", NULL, where, sizeof where));
}

/* Erasing a child's data key erases what the consent service could still
 * deliver about it: the service kept no copy of the held referral, so
 * when the hold runs out nothing is decided about it any more (another
 * child's hold, not erased, expires as ever). */
static void erased_child_is_forgotten_by_consent(void **state)
{
    (void)state;
    assert_int_equal(harness_start(H), 0);
    change_directory(0);
    tick(now_ms());
    char p[65], q[65];
    uint8_t ref[16], other[16];
    child("at-rest-erased", p);
    child("at-rest-kept", q);
    referral("school-34cd01", p, "\"district\":\"zuid\",\"age_band\":\"under_12\",", "wijkteam", ref);
    referral("school-34cd01", q, "\"district\":\"zuid\",\"age_band\":\"under_12\",", "wijkteam", other);
    decisions_t ds;
    wait_decisions(ref, 1, &ds);
    assert_non_null(find(&ds, "wijkteam-zuid", SCHAKEL__V1__CONSENT_OUTCOME__CONSENT_OUTCOME_HOLD));
    wait_decisions(other, 1, &ds);
    wait_services(harness_head(H));
    assert_int_equal(harness_shutdown(H), 0);

    /* the erasure: the subject's data key is destroyed in the log */
    char keypath[600], logdir[600], why[SCHAKEL_ERRLEN];
    snprintf(keypath, sizeof keypath, "%s/master.key", H->data);
    snprintf(logdir, sizeof logdir, "%s/log", H->data);
    schakel_lmdb_options_t lo = {0};
    lo.dir = logdir;
    assert_int_equal(schakel_secret_file(keypath, lo.master_key, 32, 0, NULL, why), 0);
    schakel_store_t *log = schakel_store_open_lmdb(&lo, why);
    assert_non_null(log);
    assert_int_equal(schakel_store_erase_subject(log, p), 0);
    schakel_store_close(&log);

    /* 21 days on: past hold_days (20) */
    int rejected = count_in_log("event=derived_rejected");
    assert_int_equal(harness_start(H), 0);
    wait_services(tick(now_ms() + 21LL * 86400000));
    read_decisions(other, &ds);
    assert_non_null(find(&ds, "wijkteam-zuid", SCHAKEL__V1__CONSENT_OUTCOME__CONSENT_OUTCOME_EXPIRED));
    read_decisions(ref, &ds);
    assert_null(find(&ds, "wijkteam-zuid", SCHAKEL__V1__CONSENT_OUTCOME__CONSENT_OUTCOME_EXPIRED));
    assert_null(find(&ds, "wijkteam-zuid", SCHAKEL__V1__CONSENT_OUTCOME__CONSENT_OUTCOME_DELIVER));
    /* ...not even tried: a decision about an erased event, naming its
     * child, is nothing the broker should have to refuse */
    assert_int_equal(count_in_log("event=derived_rejected"), rejected);
    assert_int_equal(harness_shutdown(H), 0);
}

/* A service's state written by an older version (the consent service kept
 * whole events in a table "events") is refused with what to do, before
 * the service connects or reads anything. */
static void old_consent_state_is_refused(void **state)
{
    (void)state;
    char dir[600], policy[600], why[SCHAKEL_ERRLEN] = "";
    snprintf(dir, sizeof dir, "%s/old-consent-state", H->dir);
    snprintf(policy, sizeof policy, "%s/consent.json", H->data);
    mkdir(dir, 0700);
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    assert_int_equal(mdb_env_create(&env), 0);
    mdb_env_set_maxdbs(env, 32);
    assert_int_equal(mdb_env_open(env, dir, MDB_NOTLS, 0600), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, "events", MDB_CREATE, &dbi), 0);
    assert_int_equal(mdb_txn_commit(txn), 0);
    mdb_env_close(env);

    const schakel_engine_ops_t *ops;
    void *engine;
    assert_int_equal(schakel_svc_engine("consent", "svc-consent", policy, &ops, &engine, why), 0);
    schakel_keys_t k;
    harness_keys(H, "svc-consent", &k);
    schakel_service_options_t o = {dir, "tcp://127.0.0.1:1", NULL, H->server_public, &k, NULL};
    atomic_int stop = 1; /* without the refusal: returns at once, 0 */
    assert_int_equal(schakel_service_run(H->ctx, ops, engine, &o, &stop, why), SCHAKEL_ECONFIG);
    assert_non_null(strstr(why, "older version that kept events in clear"));
    assert_non_null(strstr(why, "delete the directory (it is rebuilt from the log)"));
    schakel_svc_engine_free(ops, &engine);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(markers_rest_only_in_the_export_and_the_inbox),
        cmocka_unit_test(erased_child_is_forgotten_by_consent),
        cmocka_unit_test(old_consent_state_is_refused),
    };
    return cmocka_run_group_tests(tests, adapters_node_setup, adapters_node_teardown);
}
