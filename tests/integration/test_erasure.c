/* Erasure by the node's operator (`schakel audit erase`, issue 17): a
 * whole node, a child's events with a marker in their case reference and
 * contact, other children's events around them (each new child's key
 * makes LMDB copy the page of table `keys` that holds this child's
 * wrapped key, leaving the old copy in a freed page). After the erasure,
 * a byte search of every file under the test's root (log, services'
 * state, keys, logs, and a wijkteam's adapter that had received the
 * child's referral into its directory inbox) finds neither the marker
 * nor the child's wrapped data key nor the data key itself; `audit verify` passes and counts the
 * erased records; the `erasure` event is on the log, from the broker,
 * without content. Only the broker's own key may ERASE. A service stopped
 * before it overwrote the copies does it when it starts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <lmdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "adapters_harness.h"
#include "json.h"
#include "crypto.h"
#include "fileio.h"
#include "harness.h"
#include "scenario.h"
#include "service.h"
#include "store_lmdb_impl.h"

#define MARK "zq7ERASEMARKx"
#define WIJKTEAM_PROFILE SCHAKEL_SOURCE_DIR "/adapters/profiles/wijkteam/profile.json"
#define MAX_KEYS 256

typedef struct {
    uint8_t id[KEY_ID_LEN];
    uint8_t val[TOMB_LEN + WRAPPED_LEN];
    size_t len;
} key_rec_t;

static unsigned long long erased_records; /* by the first test, what verify counts */

/* The "erased" count of `audit verify`'s JSON line. */
static unsigned long long erased_in(const char *out)
{
    const char *e = strstr(out, "\"erased\":");
    assert_non_null(e);
    return strtoull(e + 9, NULL, 10);
}

static int setup(void **state)
{
    (void)state;
    return node_start(0, now_ms());
}

/* Does a file under dir hold the n bytes at needle? Names it in where. */
static int dir_has(const char *dir, const void *needle, size_t n, char *where, size_t cap)
{
    return has_bytes_n(dir, needle, n, NULL, where, cap);
}

/* Every record of table `keys` of the running node's log, read-only. */
static size_t read_keys(key_rec_t *out, size_t max)
{
    char logdir[600];
    snprintf(logdir, sizeof logdir, "%s/log", H->data);
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    MDB_cursor *cur;
    assert_int_equal(mdb_env_create(&env), 0);
    assert_int_equal(mdb_env_set_maxdbs(env, 16), 0);
    assert_int_equal(mdb_env_set_mapsize(env, 1ull << 34), 0);
    assert_int_equal(mdb_env_open(env, logdir, MDB_RDONLY | MDB_NOTLS, 0600), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, "keys", 0, &dbi), 0);
    assert_int_equal(mdb_cursor_open(txn, dbi, &cur), 0);
    MDB_val k, v;
    size_t n = 0;
    for (int op = MDB_FIRST; n < max && mdb_cursor_get(cur, &k, &v, op) == 0; op = MDB_NEXT) {
        assert_int_equal(k.mv_size, KEY_ID_LEN);
        assert_true(v.mv_size <= sizeof out[n].val);
        memcpy(out[n].id, k.mv_data, KEY_ID_LEN);
        memcpy(out[n].val, v.mv_data, v.mv_size);
        out[n++].len = v.mv_size;
    }
    mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    mdb_env_close(env);
    return n;
}

/* The data key inside a wrapped key, unwrapped with the node's master key. */
static void unwrap(const uint8_t *wrapped, const uint8_t id[KEY_ID_LEN], uint8_t key[SCHAKEL_AEAD_KEY_LEN])
{
    char path[600], why[SCHAKEL_ERRLEN];
    uint8_t master[32], wrap[32];
    snprintf(path, sizeof path, "%s/master.key", H->data);
    assert_int_equal(schakel_secret_file(path, master, 32, 0, NULL, why), 0);
    lmdb_derive(master, "schakel/v1/wrap", wrap);
    assert_int_equal(schakel_aead_open(wrap, wrapped, id, KEY_ID_LEN, wrapped + SCHAKEL_AEAD_NONCE_LEN,
                                       WRAPPED_LEN - SCHAKEL_AEAD_NONCE_LEN, key),
                     0);
}

static void signal_with_marker(const char *org, const char *subject, const char *mark, uint8_t id[16])
{
    char json[1024];
    snprintf(json, sizeof json,
             "{\"type\":\"signal\",\"subject\":\"%s\",\"purpose\":\"support\",\"legal_basis\":\"consent\","
             "\"case_ref\":\"%s-case\",\"categories\":[\"behaviour\"],\"school\":\"12AB00\","
             "\"signal\":{\"concerns\":[\"behaviour\"],\"observed_on\":\"2026-11-16\","
             "\"contact\":{\"org_id\":\"%s\",\"role\":\"intern_begeleider\",\"ref\":\"%s-desk\"}}}",
             subject, mark, org, mark);
    publish(org, json, id);
}

static int run_erase(const char *subject, const char *basis, char **out, char **err)
{
    const char *args[] = {"audit", "erase",     "--node",           H->data, "--subject", subject, "--basis",
                          basis,   "--purpose", "TICKET-2026/0042", NULL};
    return harness_run_captured(H->dir, args, out, err);
}

/* A second erasure with nothing about the child recorded since: exit 5,
 * "already erased on <date>", and no second event. */
static void erased_again_says_when(const char *p, const char *erased_at)
{
    char *out = NULL, *err = NULL, said[64];
    assert_int_equal(run_erase(p, "avg17_request", &out, &err), 5);
    snprintf(said, sizeof said, "already erased on %.10s", erased_at);
    if (!strstr(err, said)) fail_msg("no \"%s\" in %s", said, err);
    assert_non_null(strstr(out, "\"already_erased\":true"));
    free(out);
    free(err);
}

/* How many looks with `audit subject` the child's history lists (this
 * one is recorded after it is read, so it is not among them). */
static int looks_at(const char *p)
{
    char *out = NULL, *err = NULL;
    const char *args[] = {"audit", "subject",   "--node",           H->data, "--subject",
                          p,       "--purpose", "TICKET-2026/0043", NULL};
    assert_int_equal(harness_run_captured(H->dir, args, &out, &err), 0);
    int n = 0;
    for (const char *q = out; (q = strstr(q, "\"command\": \"audit_subject\"")); q++) n++;
    free(out);
    free(err);
    return n;
}

static void erased_child_leaves_no_key_and_no_content_on_disk(void **state)
{
    (void)state;
    char p[65], other[65], label[32], where[1200], cid[33], rid[33];
    uint8_t id[16];
    child("erase-me", p);
    signal_with_marker("school-12ab00", p, MARK, id);
    /* the wijkteam's adapter receives the child's referral, with a
     * marker, into its directory inbox, as the receiving system's */
    adapter_t wijkteam;
    adapter_init(&wijkteam, NULL, "wijkteam-zuid", WIJKTEAM_PROFILE, "\"inbox\": {\"dir\": \"inbox\"}");
    mkdir(wijkteam.spool, 0700);
    adapter_start(&wijkteam);
    consent("school-34cd01", p, "parents", "under_12", "wijkteam", cid, id);
    referral_with_id("school-34cd01", p, "\"district\":\"zuid\",\"case_ref\":\"" MARK "-referral\",",
                     "wijkteam", rid, id);
    wait_bytes(wijkteam.inbox, MARK "-referral");
    /* other children after this one: each new key rewrites a page of
     * `keys`, and the copies with this child's key go to freed pages */
    for (int i = 0; i < 40; i++) {
        snprintf(label, sizeof label, "erase-other-%d", i);
        child(label, other);
        signal_with_marker("school-12ab00", other, "zq7OTHER", id);
        if (i == 5) signal_with_marker("school-12ab00", p, MARK, id);
    }
    wait_services(harness_head(H));

    static key_rec_t before[MAX_KEYS], after[MAX_KEYS];
    size_t nb = read_keys(before, MAX_KEYS);
    assert_true(nb >= 41);

    char *out = NULL, *err = NULL;
    int rc = run_erase(p, "avg17_request", &out, &err);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "\"ok\":true"));
    free(out);
    free(err);

    /* the services (routing, consent, feedback) forgot the child as soon
     * as they read the erasure: no copy of its pseudonym is left in their
     * state files, in an entry, in a freed page or in the unused middle of
     * a page (and none comes back with the writes below) */
    char state_dir[700];
    snprintf(state_dir, sizeof state_dir, "%s/services", H->data);
    wait_services(harness_head(H));
    if (dir_has(state_dir, p, 64, where, sizeof where))
        fail_msg("the erased child's pseudonym is still in a service's state: %s", where);

    /* the erased key: the one that is now an erasure record alone */
    size_t na = read_keys(after, MAX_KEYS);
    const key_rec_t *gone = NULL;
    for (size_t i = 0; i < na; i++)
        if (after[i].len == TOMB_LEN)
            for (size_t j = 0; j < nb; j++)
                if (!memcmp(before[j].id, after[i].id, KEY_ID_LEN) && before[j].len == WRAPPED_LEN)
                    gone = &before[j];
    assert_non_null(gone);
    uint8_t key[SCHAKEL_AEAD_KEY_LEN];
    unwrap(gone->val, gone->id, key);
    /* more writes after the erasure: LMDB reuses its page buffers, and
     * none may carry a copy of the erased key back into the file */
    for (int i = 0; i < 30; i++) {
        snprintf(label, sizeof label, "erase-later-%d", i);
        child(label, other);
        signal_with_marker("school-12ab00", other, "zq7OTHER", id);
    }
    wait_services(harness_head(H));
    /* the erasure reaches the wijkteam's adapter: the notice is handed
     * over, and the child's referral is no longer in its inbox */
    wait_bytes(wijkteam.inbox, "\"type\":\"erasure\"");
    assert_true(has_bytes(wijkteam.inbox, p, NULL, where, sizeof where)); /* the notice names the child */
    if (has_bytes(wijkteam.inbox, MARK, NULL, where, sizeof where))
        fail_msg("the erased child's referral is still in the receiving adapter's inbox: %s", where);
    assert_int_equal(adapter_stop(&wijkteam, SIGTERM), 0);

    /* every file of the node and of the receiving adapter */
    if (dir_has(H->dir, gone->val, WRAPPED_LEN, where, sizeof where))
        fail_msg("the erased child's wrapped data key is still in %s", where);
    if (dir_has(H->dir, key, sizeof key, where, sizeof where))
        fail_msg("the erased child's data key is in %s", where);
    if (dir_has(H->dir, MARK, strlen(MARK), where, sizeof where))
        fail_msg("the erased child's content is in %s", where);
    if (dir_has(state_dir, p, 64, where, sizeof where))
        fail_msg("the erased child's pseudonym is still in a service's state: %s", where);
    /* the other children's keys are untouched */
    for (size_t j = 0; j < nb; j++)
        if (&before[j] != gone && before[j].len == WRAPPED_LEN) {
            uint8_t k2[SCHAKEL_AEAD_KEY_LEN];
            unwrap(before[j].val, before[j].id, k2);
        }

    /* the log still verifies, and says what is erased */
    const char *vargs[] = {"audit", "verify", "--data", H->data, NULL};
    rc = harness_run_captured(H->dir, vargs, &out, &err);
    assert_int_equal(rc, 0);
    erased_records = erased_in(out);
    assert_true(erased_records >= 2); /* its two signals, and the decisions about them that name it */
    free(out);
    free(err);

    /* the erasure event, the broker's own, names the child and why */
    int found = 0;
    char erased_at[32] = "";
    for (harness_reader_t rd = harness_read(H, "svc-audit", "all"); harness_next(&rd);) {
        if (rd.e->type != SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_ERASURE) continue;
        const Schakel__V1__Erasure *e = rd.e->erasure;
        assert_string_equal(rd.e->source_org, "broker");
        assert_string_equal(rd.e->subject, "");
        assert_string_equal(e->erased_subject, p);
        assert_int_equal(e->basis, SCHAKEL__V1__ERASURE_BASIS__ERASURE_BASIS_AVG17_REQUEST);
        assert_string_equal(e->purpose, "TICKET-2026/0042");
        assert_true(e->requested_by[0]);
        assert_true(e->erased_upto > 0 && e->erased_upto < rd.r->seq);
        schakel_time_format(rd.r->recorded_at, erased_at);
        found++;
    }
    assert_int_equal(found, 1);

    /* a second time: already erased, when, and no second event */
    erased_again_says_when(p, erased_at);

    /* the child's history says it was erased, when and why, in JSON and
     * in the report for the family; nothing else is left to show */
    char html[700];
    snprintf(html, sizeof html, "%s/erased-report.html", H->dir);
    const char *sargs[] = {"audit",     "subject",          "--node", H->data, "--subject", p,
                           "--purpose", "TICKET-2026/0042", "--html", html,    NULL};
    rc = harness_run_captured(H->dir, sargs, &out, &err);
    assert_int_equal(rc, 0);
    char said[64];
    snprintf(said, sizeof said, "\"erased\": \"erased on %.10s under avg17_request\"", erased_at);
    if (!strstr(out, said)) fail_msg("no \"%s\" in %s", said, out);
    assert_non_null(strstr(out, "\"purpose\": \"TICKET-2026/0042\""));
    assert_null(strstr(out, MARK));
    free(out);
    free(err);
    size_t hl = 0;
    char *page = schakel_file_read(html, 1 << 20, &hl);
    assert_non_null(page);
    assert_non_null(strstr(page,
                           "zijn de gegevens over uw kind gewist, vanwege een verzoek om de gegevens te "
                           "verwijderen (AVG artikel 17)"));
    assert_null(strstr(page, p));
    free(page);
    /* that look is the controller's record, not the child's data: it
     * gave the child no new key, so there is still nothing to erase, and
     * the look is listed */
    erased_again_says_when(p, erased_at);
    assert_int_equal(looks_at(p), 1);

    /* the wijkteam answers the erased referral (last: it gives the child a
     * new key): the services decide as a replay does, which never read
     * the referral, and a decision about an erased event is not extra */
    char json[1024], rep[16384], rid2[33];
    /* a new referral of the child (new content, a new key): the consent
     * given before the erasure went with it, as for a replay, which never
     * read it, so the referral is held */
    uint8_t id2[16];
    decisions_t ds;
    referral_with_id("school-34cd01", p, "\"district\":\"zuid\",", "wijkteam", rid2, id2);
    wait_decisions(id2, 1, &ds);
    assert_non_null(find(&ds, "wijkteam-zuid", SCHAKEL__V1__CONSENT_OUTCOME__CONSENT_OUTCOME_HOLD));
    snprintf(json, sizeof json,
             "{\"type\":\"referral_received\",\"subject\":\"%s\",\"purpose\":\"feedback\","
             "\"legal_basis\":\"consent\",\"categories\":[\"care_status\"],"
             "\"referral_received\":{\"referral_id\":\"%s\",\"received_on\":\"2026-11-20\"}}",
             p, rid);
    publish("wijkteam-zuid", json, id);
    wait_services(harness_head(H));
    if (harness_replay(H, rep, sizeof rep) != 0) fail_msg("replay differs after the erasure: %s", rep);

    /* the new referral is new data under a new key: it is erased, and
     * the record of who looked survives this erasure too */
    rc = run_erase(p, "avg17_request", &out, &err);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "\"ok\":true"));
    free(out);
    free(err);
    assert_int_equal(looks_at(p), 2);
    const char *vargs2[] = {"audit", "verify", "--data", H->data, NULL};
    assert_int_equal(harness_run_captured(H->dir, vargs2, &out, &err), 0);
    erased_records = erased_in(out); /* both erasures' records */
    free(out);
    free(err);
}

/* ERASE over the wire from an organisation's key, even one that may read
 * everything, is refused; so is an `erasure` event it publishes. */
static void only_the_brokers_own_key_may_erase(void **state)
{
    (void)state;
    char p[65], why[SCHAKEL_ERRLEN] = "";
    child("erase-me-not", p);
    uint8_t id[16];
    signal_with_marker("school-12ab00", p, "zq7KEEP", id);
    schakel_client_t *c = harness_client(H, "svc-audit");
    Schakel__V1__Erase req = SCHAKEL__V1__ERASE__INIT;
    req.subject = p;
    req.basis = SCHAKEL__V1__ERASURE_BASIS__ERASURE_BASIS_AVG17_REQUEST;
    req.purpose = "x";
    req.requested_by = "x";
    ProtobufCMessage *reply = NULL;
    assert_int_equal(
        schakel_client_call(c, "ERASE", &req.base, &schakel__v1__erased__descriptor, &reply, 5000, why),
        SCHAKEL_EREJECTED);
    assert_null(reply);
    assert_non_null(strstr(why, "ERASE is for the node's operator"));
    schakel_client_destroy(&c);

    char json[512], reason[SCHAKEL_ERRLEN];
    snprintf(
        json, sizeof json,
        "{\"type\":\"erasure\",\"purpose\":\"bus\",\"legal_basis\":\"bus\",\"erasure\":{\"erased_subject\":"
        "\"%s\",\"basis\":\"avg17_request\",\"requested_by\":\"x\",\"erased_upto\":1}}",
        p);
    assert_int_equal(publish_code("school-12ab00", json, reason),
                     SCHAKEL__V1__REJECT_CODE__REJECT_NOT_ALLOWED);
    assert_non_null(strstr(reason, "erasure: only the broker writes erasure events"));
    /* an ERASE body the broker would not even decode is refused for its sender */
    c = harness_client(H, "svc-audit");
    Schakel__V1__Ping odd = SCHAKEL__V1__PING__INIT;
    odd.nonce = 7; /* field 1 of Erase is a string: a varint there is broken structure */
    assert_int_equal(
        schakel_client_call(c, "ERASE", &odd.base, &schakel__v1__erased__descriptor, &reply, 5000, why),
        SCHAKEL_EREJECTED);
    assert_non_null(strstr(why, "ERASE is for the node's operator"));
    schakel_client_destroy(&c);

    /* wrong arguments: exit 2, nothing erased */
    char *out = NULL, *err = NULL;
    assert_int_equal(run_erase(p, "because", &out, &err), 2);
    assert_non_null(strstr(err, "--basis"));
    free(out);
    free(err);
    const char *args[] = {"audit", "erase",   "--node",    H->data,     "--subject",
                          p,       "--basis", "retention", "--purpose", "mevrouw Jansen, dochter",
                          NULL};
    assert_int_equal(harness_run_captured(H->dir, args, &out, &err), 2);
    assert_non_null(strstr(err, "--purpose"));
    free(out);
    free(err);
    const char *vargs[] = {"audit", "verify", "--data", H->data, NULL};
    assert_int_equal(harness_run_captured(H->dir, vargs, &out, &err), 0);
    assert_int_equal(erased_in(out), erased_records); /* still only the first child's */
    free(out);
    free(err);
}

/* The seq of the (one) erasure of subject on the log. */
static uint64_t erasure_seq(const char *subject)
{
    uint64_t seq = 0;
    for (harness_reader_t rd = harness_read(H, "svc-audit", "all"); harness_next(&rd);)
        if (rd.e->type == SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_ERASURE &&
            !strcmp(rd.e->erasure->erased_subject, subject))
            seq = rd.r->seq;
    assert_true(seq > 0);
    return seq;
}

/* Leaves a copy of subject in a freed page of the stopped routing
 * service's state (an entry put, then deleted: LMDB keeps the old page),
 * and the note that the scrub of the erasure at seq is still to do: as a
 * kill between the commit that read the erasure and the overwrite leaves
 * the state. */
static void leave_copy_and_note(const char *subject, uint64_t seq)
{
    char dir[600];
    snprintf(dir, sizeof dir, "%s/services/routing", H->data);
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    assert_int_equal(mdb_env_create(&env), 0);
    assert_int_equal(mdb_env_set_maxdbs(env, 32), 0);
    assert_int_equal(mdb_env_open(env, dir, MDB_NOTLS, 0600), 0);
    MDB_val k = {9, "test-copy"}, v = {64, (void *)subject};
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, "runner", 0, &dbi), 0);
    assert_int_equal(mdb_put(txn, dbi, &k, &v, 0), 0);
    assert_int_equal(mdb_txn_commit(txn), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
    assert_int_equal(mdb_del(txn, dbi, &k, NULL), 0);
    MDB_val sk = {strlen(SCHAKEL_SERVICE_SCRUB_KEY), SCHAKEL_SERVICE_SCRUB_KEY}, sv = {8, &seq};
    assert_int_equal(mdb_put(txn, dbi, &sk, &sv, 0), 0);
    assert_int_equal(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
}

/* A node killed after a service committed the transaction that read an
 * erasure and before it overwrote the pseudonym's copies: the service
 * does the overwrite when it starts again. */
static void a_scrub_left_undone_is_done_when_the_service_starts(void **state)
{
    (void)state;
    char p[65], where[1200], dir[700];
    uint8_t id[16];
    child("erase-then-kill", p);
    signal_with_marker("school-12ab00", p, "zq7KILL", id);
    wait_services(harness_head(H));
    char *out = NULL, *err = NULL;
    assert_int_equal(run_erase(p, "avg17_request", &out, &err), 0);
    free(out);
    free(err);
    wait_services(harness_head(H));
    uint64_t seq = erasure_seq(p);
    harness_stop(H, SIGKILL);
    leave_copy_and_note(p, seq);
    snprintf(dir, sizeof dir, "%s/services/routing", H->data);
    assert_true(dir_has(dir, p, 64, where, sizeof where)); /* the copy is there to find */
    assert_int_equal(harness_start(H), 0);
    wait_services(harness_head(H)); /* published, and no scrub pending */
    if (dir_has(dir, p, 64, where, sizeof where))
        fail_msg("the erased child's pseudonym is still in the routing state after its start: %s", where);
}

/* Has the log an erasure event of this child with this basis? Polls
 * (10 s at most) when wait is set. */
static int erased_by(const char *subject, int basis, int wait)
{
    for (int i = 0; i < (wait ? 100 : 1); i++) {
        int found = 0;
        for (harness_reader_t rd = harness_read(H, "svc-audit", "all"); harness_next(&rd);)
            if (rd.e->type == SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_ERASURE &&
                !strcmp(rd.e->erasure->erased_subject, subject) && (int)rd.e->erasure->basis == basis &&
                !strcmp(rd.e->erasure->requested_by, "retention"))
                found = 1;
        if (found) return 1;
        if (wait) usleep(100000);
    }
    return 0;
}

/* How many rules_updates of set retention from the broker carry doc; the
 * last on the log must be doc when last is set. */
static int retention_rules_on_log(const char *doc, int last)
{
    int n = 0, is_last = 0;
    for (int i = 0; i < 100 && !n; i++) {
        for (harness_reader_t rd = harness_read(H, "svc-audit", "all"); harness_next(&rd);) {
            if (rd.e->type != SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_RULES_UPDATE ||
                rd.e->rules_update->set != SCHAKEL__V1__RULE_SET__RULE_SET_RETENTION)
                continue;
            assert_string_equal(rd.e->source_org, "broker");
            is_last = !strcmp(rd.e->rules_update->document_json, doc);
            n += is_last;
        }
        if (!last) break;
        usleep(100000); /* the broker looks at the file once a second */
    }
    if (last) assert_true(is_last);
    return n;
}

/* retention.json in the node's directory: a child whose last event is a
 * signal goes two years (730 days) of log time after it; a referral keeps
 * its child ten years, unless the age band says the child is surely 23
 * before that (an adult at the referral: five years). One organisation's
 * band does not erase early what another holds: a child a school refers
 * as under 12 and the GGD signals as an adult is not erased by age until
 * every band says it is surely 23 (its referral's ten years come
 * first), and the disagreement is logged. */
static void retention_erases_by_the_logs_clock(void **state)
{
    (void)state;
    char path[600];
    snprintf(path, sizeof path, "%s/retention.json", H->data);
    static const char rules[] = "{\"version\": 3, \"default_days\": 730, \"kinds\": {\"signal\": 730, "
                                "\"referral\": 3650}, \"age_23\": true}";
    assert_int_equal(schakel_file_write_atomic(path, rules, strlen(rules)), 0);
    char a[65], b[65], c[65], d[65], json[512];
    uint8_t id[16];
    child("retention-signalled", a);
    child("retention-referred-young", b);
    child("retention-referred-adult", c);
    child("retention-bands-disagree", d);
    int64_t t0 = now_ms();
    wait_services(tick(t0));
    int conflicts = count_in_log("event=age_band_conflict");
    signal_with_marker("school-12ab00", a, "zq7RET", id);
    referral("school-34cd01", b, "\"district\":\"zuid\",\"age_band\":\"under_12\",", "wijkteam", id);
    referral("school-34cd01", c, "\"district\":\"zuid\",\"age_band\":\"adult\",", "wijkteam", id);
    referral("school-34cd01", d, "\"district\":\"zuid\",\"age_band\":\"under_12\",", "wijkteam", id);
    snprintf(json, sizeof json,
             "{\"type\":\"signal\",\"subject\":\"%s\",\"age_band\":\"adult\",\"purpose\":\"support\","
             "\"legal_basis\":\"own_organisation\",\"categories\":[\"behaviour\"],"
             "\"signal\":{\"concerns\":[\"behaviour\"],\"observed_on\":\"2026-11-16\"}}",
             d);
    publish("ggd-jgz", json, id);
    wait_services(harness_head(H));

    /* the rules go on the log, byte for byte, as the broker's own */
    assert_int_equal(retention_rules_on_log(rules, 1), 1);
    /* a file that does not parse is refused, naming the field; the rules
     * on the log stay in force (the erasures below follow them) */
    int refused = count_in_log("kinds.signal: a whole number of days");
    static const char bad[] = "{\"version\": 4, \"default_days\": 1, \"kinds\": {\"signal\": 0}}";
    assert_int_equal(schakel_file_write_atomic(path, bad, strlen(bad)), 0);
    for (int i = 0; i < 50 && count_in_log("kinds.signal: a whole number of days") == refused; i++)
        usleep(100000);
    assert_int_equal(count_in_log("kinds.signal: a whole number of days"), refused + 1);
    assert_int_equal(retention_rules_on_log(bad, 0), 0);

    /* a year on: nothing is due */
    wait_services(tick(t0 + 365LL * 86400000));
    sleep(2); /* a retention pass runs at most once a second */
    assert_false(erased_by(a, SCHAKEL__V1__ERASURE_BASIS__ERASURE_BASIS_RETENTION, 0));

    /* two years and a day: the signalled child goes, the referred stay */
    wait_services(tick(t0 + 731LL * 86400000));
    assert_true(erased_by(a, SCHAKEL__V1__ERASURE_BASIS__ERASURE_BASIS_RETENTION, 1));
    assert_false(erased_by(b, SCHAKEL__V1__ERASURE_BASIS__ERASURE_BASIS_RETENTION, 0));
    assert_false(erased_by(c, SCHAKEL__V1__ERASURE_BASIS__ERASURE_BASIS_AGE_23, 0));

    /* six years: the adult is surely 23; the young child's referral stays */
    wait_services(tick(t0 + 6LL * 366 * 86400000));
    assert_true(erased_by(c, SCHAKEL__V1__ERASURE_BASIS__ERASURE_BASIS_AGE_23, 1));
    assert_false(erased_by(b, SCHAKEL__V1__ERASURE_BASIS__ERASURE_BASIS_RETENTION, 0));
    sleep(2); /* another pass: the GGD's "adult" does not erase the school's pupil */
    assert_false(erased_by(d, SCHAKEL__V1__ERASURE_BASIS__ERASURE_BASIS_AGE_23, 0));
    assert_int_equal(count_in_log("event=age_band_conflict"), conflicts + 1);
    /* eleven years: under 12 then, it may be 23 now, but not surely by
     * the school's band (that takes 23 years); its referral's ten years
     * of retention erase it, not an age */
    wait_services(tick(t0 + 11LL * 366 * 86400000));
    assert_true(erased_by(d, SCHAKEL__V1__ERASURE_BASIS__ERASURE_BASIS_RETENTION, 1));
    assert_false(erased_by(d, SCHAKEL__V1__ERASURE_BASIS__ERASURE_BASIS_AGE_23, 0));

    char *out = NULL, *err = NULL;
    const char *vargs[] = {"audit", "verify", "--data", H->data, NULL};
    assert_int_equal(harness_run_captured(H->dir, vargs, &out, &err), 0);
    free(out);
    free(err);
    /* erased: nothing left to erase by hand, and it says when */
    assert_int_equal(run_erase(a, "avg17_request", &out, &err), 5);
    assert_non_null(strstr(err, "already erased on "));
    free(out);
    free(err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(erased_child_leaves_no_key_and_no_content_on_disk),
        cmocka_unit_test(only_the_brokers_own_key_may_erase),
        cmocka_unit_test(a_scrub_left_undone_is_done_when_the_service_starts),
        cmocka_unit_test(retention_erases_by_the_logs_clock),
    };
    return cmocka_run_group_tests(tests, setup, node_teardown);
}
