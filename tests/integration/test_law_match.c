/* The verwijsindex on a real node (broker, routing and consent services,
 * sample region): a signal reaches nobody by itself; when two or more
 * organisations signal about the same child, each signaller hears of each
 * other once, as a notice with who and whom to contact, and nobody else
 * hears anything; an entry lives two years of log time from its
 * organisation's latest signal; a policy that still says "notice" is
 * refused. The scenarios share one node and run in order: the last one
 * moves the log's time years ahead. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <lmdb.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "consent.h"
#include "harness.h"
#include "runner.h"
#include "scenario.h"
#include "service.h"

#define DAY_MS 86400000LL
#define NOTICE_ONLY SCHAKEL__V1__CONSENT_OUTCOME__CONSENT_OUTCOME_NOTICE_ONLY

/* Every organisation of the sample region that can receive anything. */
static const char *const ORGS[] = {"school-12ab00",   "school-34cd01",      "smw-farent",
                                   "ggd-jgz",         "wijkteam-noord",     "wijkteam-zuid",
                                   "ppo-region",      "veiligthuis-region", "gemeente-region",
                                   "leerplicht-stad", "leerplicht-dorp",    NULL};

static int setup(void **state)
{
    (void)state;
    return node_start(1, now_ms()); /* also: the new directory is in force at the broker */
}

/* A signal of org about subject, with the org's own contact desk; the
 * school's names its school, so routing sends it to the school's smw. */
static uint64_t signal_about(const char *org, const char *subject, uint8_t id[16])
{
    char json[1024];
    snprintf(json, sizeof json,
             "{\"type\":\"signal\",\"subject\":\"%s\",\"purpose\":\"support\",\"legal_basis\":\"consent\","
             "\"categories\":[\"behaviour\"],%s\"signal\":{\"concerns\":[\"behaviour\"],"
             "\"observed_on\":\"2026-11-16\",\"contact\":{\"org_id\":\"%s\",\"role\":\"intern_begeleider\","
             "\"ref\":\"desk/%s\"}}}",
             subject, !strncmp(org, "school-12ab00", 13) ? "\"school\":\"12AB00\"," : "", org, org);
    return publish(org, json, id);
}

/* A match notice as the recipient reads it in its own stream. */
typedef struct {
    char concerned[64], contact_org[64], contact_ref[64], rule[64];
    int basis, duty, has_correlation;
    uint8_t about[16];
} notice_t;

/* The notices about subject in org's stream, read as org. */
static size_t notices(const char *org, const char *subject, notice_t *out, size_t max)
{
    harness_reader_t rd = harness_read(H, org, NULL); /* aborts without a consumer */
    size_t n = 0;
    while (harness_next(&rd)) {
        const schakel_envelope_t *e = rd.e;
        if (e->type == SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_CONSENT_DECISION &&
            e->consent_decision->outcome == NOTICE_ONLY && !strcmp(e->subject, subject)) {
            const Schakel__V1__ConsentDecision *d = e->consent_decision;
            if (n < max) {
                notice_t *x = &out[n];
                memset(x, 0, sizeof *x);
                snprintf(x->concerned, sizeof x->concerned, "%s", d->notice ? d->notice->concerned_org : "");
                if (d->notice && d->notice->contact) {
                    snprintf(x->contact_org, sizeof x->contact_org, "%s", d->notice->contact->org_id);
                    snprintf(x->contact_ref, sizeof x->contact_ref, "%s", d->notice->contact->ref);
                }
                snprintf(x->rule, sizeof x->rule, "%s", d->rule_id);
                x->basis = d->legal_basis;
                x->duty = d->duty_to_inform;
                x->has_correlation = e->correlation_id.len != 0;
                if (d->about_event_id.len == 16) memcpy(x->about, d->about_event_id.data, 16);
            }
            n++;
        }
    }
    assert_int_equal(rd.undecoded, 0);
    return n;
}

/* Is there, among ns, a match notice naming org, about event about? */
static int names(const notice_t *ns, size_t n, const char *org, const uint8_t about[16])
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(ns[i].concerned, org) && !memcmp(ns[i].about, about, 16)) return 1;
    return 0;
}

/* Each org of `orgs` (NULL-ended) has exactly want[i] notices about
 * subject, every one a verwijsindex match with the other's contact; every
 * other organisation none. Call after wait_services. */
static void expect_notices(const char *subject, const char *const *orgs, const size_t *want)
{
    for (size_t k = 0; ORGS[k]; k++) {
        size_t expected = 0;
        for (size_t i = 0; orgs[i]; i++)
            if (!strcmp(orgs[i], ORGS[k])) expected = want[i];
        notice_t ns[8];
        size_t n = notices(ORGS[k], subject, ns, 8);
        if (n != expected) fail_msg("%s has %zu notices about the child, wanted %zu", ORGS[k], n, expected);
        for (size_t i = 0; i < n && i < 8; i++) {
            assert_string_equal(ns[i].rule, "verwijsindex/match");
            assert_int_equal(ns[i].basis, SCHAKEL__V1__LEGAL_BASIS__LEGAL_BASIS_VERWIJSINDEX);
            assert_true(ns[i].duty);
            assert_false(ns[i].has_correlation);
            assert_string_not_equal(ns[i].concerned, ORGS[k]);
            assert_string_equal(ns[i].contact_org, ns[i].concerned); /* the other signal's contact */
            char ref[80];
            snprintf(ref, sizeof ref, "desk/%s", ns[i].concerned);
            assert_string_equal(ns[i].contact_ref, ref);
        }
    }
}

/* (a) One school's signal, without consent, reaches nobody: no delivery
 * and no notice in any organisation's stream; the smw that routing names
 * (the school's team) gets a hold, not a notice. Its second signal about
 * the child matches nothing. */
static void one_signal_reaches_nobody(void **state)
{
    (void)state;
    char p[65];
    uint8_t s[16];
    child("match-alone", p);
    uint64_t seq = signal_about("school-12ab00", p, s);
    decisions_t ds;
    wait_decisions(s, 1, &ds);
    wait_services(seq);
    assert_true(routed_to(&ds, "smw-farent"));
    assert_non_null(find(&ds, "smw-farent", SCHAKEL__V1__CONSENT_OUTCOME__CONSENT_OUTCOME_HOLD));
    for (size_t i = 0; i < ds.n; i++) assert_int_not_equal(ds.d[i].outcome, NOTICE_ONLY);
    for (size_t k = 0; ORGS[k]; k++) {
        if (strcmp(ORGS[k], "school-12ab00") != 0) assert_false(received(ORGS[k], s, 0));
        assert_false(received(ORGS[k], s, NOTICE_ONLY));
    }
    const char *none[] = {NULL};
    expect_notices(p, none, NULL);
    /* the same organisation twice is no match */
    uint8_t s2[16];
    wait_services(signal_about("school-12ab00", p, s2));
    expect_notices(p, none, NULL);
}

/* (b) A second organisation's signal about the same child: both signallers
 * hear of the match, each exactly once and naming the other; nobody else
 * hears anything. (c) A third: it hears of both, both hear of it; a later
 * signal of any of them tells nobody again. */
static void signallers_hear_of_each_other_once(void **state)
{
    (void)state;
    char p[65];
    uint8_t school[16], smw[16], ggd[16], again[16], again2[16];
    child("match-three", p);
    signal_about("school-12ab00", p, school);
    wait_services(signal_about("smw-farent", p, smw));
    const char *two[] = {"school-12ab00", "smw-farent", NULL};
    const size_t one_each[] = {1, 1};
    expect_notices(p, two, one_each);
    notice_t ns[8];
    assert_int_equal(notices("school-12ab00", p, ns, 8), 1);
    assert_true(names(ns, 1, "smw-farent", smw)); /* about the smw's signal */
    assert_int_equal(notices("smw-farent", p, ns, 8), 1);
    assert_true(names(ns, 1, "school-12ab00", school));
    /* the school's signal was not delivered to the smw by the match */
    assert_false(received("smw-farent", school, 0));
    assert_false(received("school-12ab00", smw, 0));

    wait_services(signal_about("ggd-jgz", p, ggd));
    const char *three[] = {"school-12ab00", "smw-farent", "ggd-jgz", NULL};
    const size_t two_each[] = {2, 2, 2};
    expect_notices(p, three, two_each);
    assert_int_equal(notices("ggd-jgz", p, ns, 8), 2);
    assert_true(names(ns, 2, "school-12ab00", school));
    assert_true(names(ns, 2, "smw-farent", smw));
    assert_int_equal(notices("school-12ab00", p, ns, 8), 2);
    assert_true(names(ns, 2, "ggd-jgz", ggd));
    assert_int_equal(notices("smw-farent", p, ns, 8), 2);
    assert_true(names(ns, 2, "ggd-jgz", ggd));

    /* signalling again tells nobody anything new */
    signal_about("school-12ab00", p, again);
    wait_services(signal_about("ggd-jgz", p, again2));
    expect_notices(p, three, two_each);
}

/* (d) An entry lives two years of log time from its organisation's latest
 * signal: within them a new signaller matches; after them the old entry
 * matches nothing and its organisation hears nothing; a new signal of
 * that organisation is a new entry, and is told again. */
static void entries_expire_after_two_years(void **state)
{
    (void)state;
    char p[65];
    uint8_t a[16], b[16], c[16], a2[16];
    child("match-expiry", p);
    int64_t t0 = now_ms() + 1000 * DAY_MS; /* after every hold of the scenarios before */
    tick(t0);
    signal_about("school-34cd01", p, a);
    /* 729 days later the school's entry is live: the wijkteam matches it */
    tick(t0 + 729 * DAY_MS);
    wait_services(signal_about("wijkteam-noord", p, b));
    const char *two[] = {"school-34cd01", "wijkteam-noord", NULL};
    const size_t one_each[] = {1, 1};
    expect_notices(p, two, one_each);
    /* 731 days after the school's signal (2 after the wijkteam's): the
     * school's entry is gone, the wijkteam's lives */
    tick(t0 + 731 * DAY_MS);
    wait_services(signal_about("ggd-jgz", p, c));
    const char *three[] = {"school-34cd01", "wijkteam-noord", "ggd-jgz", NULL};
    const size_t after[] = {1, 2, 1};
    expect_notices(p, three, after);
    notice_t ns[8];
    assert_int_equal(notices("ggd-jgz", p, ns, 8), 1);
    assert_true(names(ns, 1, "wijkteam-noord", b));
    /* the school signals again: a new entry, matched with both live ones */
    wait_services(signal_about("school-34cd01", p, a2));
    const size_t renewed[] = {3, 3, 2};
    expect_notices(p, three, renewed);
    assert_int_equal(notices("school-34cd01", p, ns, 8), 3);
    assert_true(names(ns, 3, "ggd-jgz", c));
    assert_int_equal(notices("ggd-jgz", p, ns, 8), 2);
    assert_true(names(ns, 2, "school-34cd01", a2));
}

/* A consent state from before the match index (format 2) is refused with
 * what to do: its index would lack every signal it has read. */
static void state_without_match_index_is_refused(void **state)
{
    (void)state;
    char dir[600], policy[600], why[SCHAKEL_ERRLEN] = "";
    snprintf(dir, sizeof dir, "%s/format-2-consent-state", H->dir);
    snprintf(policy, sizeof policy, "%s/consent.json", H->data);
    mkdir(dir, 0700);
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    assert_int_equal(mdb_env_create(&env), 0);
    mdb_env_set_maxdbs(env, 32);
    assert_int_equal(mdb_env_open(env, dir, MDB_NOTLS, 0600), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, "state", MDB_CREATE, &dbi), 0);
    uint8_t two = 2;
    MDB_val k = {6, "format"}, v = {1, &two};
    assert_int_equal(mdb_put(txn, dbi, &k, &v, 0), 0);
    assert_int_equal(mdb_txn_commit(txn), 0);
    mdb_env_close(env);

    const schakel_engine_ops_t *ops;
    void *engine;
    assert_int_equal(schakel_svc_engine("consent", "svc-consent", policy, &ops, &engine, why), 0);
    schakel_keys_t keys;
    harness_keys(H, "svc-consent", &keys);
    schakel_service_options_t o = {dir, "tcp://127.0.0.1:1", NULL, H->server_public, &keys, NULL};
    atomic_int stop = 1; /* without the refusal: returns at once, 0 */
    assert_int_equal(schakel_service_run(H->ctx, ops, engine, &o, &stop, why), SCHAKEL_ECONFIG);
    assert_non_null(strstr(why, "older version without the verwijsindex match index"));
    assert_non_null(strstr(why, "delete the directory (it is rebuilt from the log)"));
    schakel_svc_engine_free(ops, &engine);
}

/* The decisions replay byte for byte: their ids and times come from the
 * log, not the clock. */
static void matches_replay_byte_equal(void **state)
{
    (void)state;
    wait_services(harness_head(H));
    assert_int_equal(harness_shutdown(H), 0);
    char out[600];
    snprintf(out, sizeof out, "%s/replay.json", H->dir);
    const char *args[] = {"audit", "replay", "--data", H->data, "--service", "consent", NULL};
    assert_int_equal(harness_run_tool(out, args), 0);
}

/* (e) A policy that still says "notice" is refused, naming the key and
 * where signals go now; "hold" and "deny" are accepted. */
static void notice_policy_is_refused(void **state)
{
    (void)state;
    char path[600], why[SCHAKEL_ERRLEN] = "";
    snprintf(path, sizeof path, "%s/consent-notice.json", H->dir);
    const schakel_engine_ops_t *ops;
    void *engine = NULL;
    const struct {
        const char *text, *needle;
    } cases[] = {
        {"{\"version\":1,\"hold_days\":20,\"without_consent\":{\"signal\":\"notice\",\"*\":\"hold\"}}",
         "without_consent.signal: \"notice\" is no longer a policy value: signals now go to the match index"},
        {"{\"version\":1,\"hold_days\":20,\"without_consent\":{\"*\":\"notice\"}}",
         "without_consent.*: \"notice\" is no longer a policy value: signals now go to the match index"},
        {"{\"version\":1,\"hold_days\":20,\"without_consent\":{\"referral\":\"notice\",\"*\":\"deny\"}}",
         "without_consent.referral: \"notice\""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        FILE *f = fopen(path, "w");
        assert_non_null(f);
        fputs(cases[i].text, f);
        fclose(f);
        why[0] = 0;
        assert_int_equal(schakel_svc_engine("consent", "svc-consent", path, &ops, &engine, why),
                         SCHAKEL_ECONFIG);
        assert_null(engine);
        if (!strstr(why, cases[i].needle)) fail_msg("case %zu: %s", i, why);
        assert_non_null(strstr(why, "write \"hold\" or \"deny\""));
    }
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("{\"version\":1,\"hold_days\":20,\"without_consent\":{\"signal\":\"deny\",\"*\":\"hold\"}}", f);
    fclose(f);
    assert_int_equal(schakel_svc_engine("consent", "svc-consent", path, &ops, &engine, why), 0);
    schakel_svc_engine_free(ops, &engine);
    /* the default policy holds signals, like referrals */
    const char *def = schakel_consent_default_policy();
    assert_non_null(strstr(def, "\"signal\": \"hold\""));
    assert_null(strstr(def, "notice"));
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(one_signal_reaches_nobody),
        cmocka_unit_test(signallers_hear_of_each_other_once),
        cmocka_unit_test(entries_expire_after_two_years),
        cmocka_unit_test(notice_policy_is_refused),
        cmocka_unit_test(state_without_match_index_is_refused),
        cmocka_unit_test(matches_replay_byte_equal),
    };
    return cmocka_run_group_tests(tests, setup, node_teardown);
}
