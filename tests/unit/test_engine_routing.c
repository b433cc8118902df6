/* The routing engine alone (services/routing), fed a synthetic log
 * (engine_fixture.h): no broker, no node, real LMDB. Who should know is
 * decided by the rules and the directory in force on the log, nothing
 * else: a referral to a wijkteam goes to the wijkteam of the child's home
 * district, and a directory update changes that from the next record on,
 * while an older directory version coming late changes nothing. The rules
 * too are the log's: a rules_update from the bus replaces them from the
 * next record on; one from anyone else, with a wrong version or that does
 * not parse changes nothing and is counted. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "engine_fixture.h"
#include "routing.h"

#define T(x) SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_##x

static efx_t *open_routing(schakel_routing_t **r)
{
    char why[SCHAKEL_ERRLEN] = "";
    const char *rules = schakel_routing_default_rules();
    *r = schakel_routing_new("svc", rules, strlen(rules), why);
    if (!*r) fail_msg("routing rules: %s", why);
    return efx_open(&schakel_routing_ops, *r, "svc");
}

/* A referral from school-1 to a wijkteam; district NULL: none given. */
static uint64_t referral(efx_t *fx, const char *label, const char *district, uint8_t id[16])
{
    char p[65], dist[64] = "";
    efx_child(label, p);
    if (district) snprintf(dist, sizeof dist, "\"district\":\"%s\",", district);
    return efx_feed(
        fx, "school-1", id,
        "{\"type\":\"referral\",\"subject\":\"%s\",%s\"age_band\":\"under_12\","
        "\"purpose\":\"support\",\"legal_basis\":\"consent\",\"categories\":[\"home_situation\"],"
        "\"referral\":{\"referral_id\":\"0123456789abcdef0123456789abcdef\",\"to_kind\":\"wijkteam\","
        "\"reasons\":[\"home_situation\"],\"urgency\":\"soon\",\"request_code\":\"intake\"}}",
        p, dist);
}

/* The one routing decision the last record earned: its only recipient
 * (NULL: none), checked to be about the event at seq. */
static const char *routed_to(efx_t *fx, uint64_t seq, const uint8_t id[16], const char **rule)
{
    assert_int_equal(fx->n_emitted, 1);
    const schakel_envelope_t *e = fx->emitted[0];
    assert_int_equal(e->type, T(ROUTING_DECISION));
    assert_string_equal(e->source_org, "svc");
    const Schakel__V1__RoutingDecision *d = e->routing_decision;
    assert_true(d->about_seq == seq);
    assert_int_equal(d->about_event_id.len, 16);
    assert_memory_equal(d->about_event_id.data, id, 16);
    if (d->n_recipients == 0) return NULL;
    assert_int_equal(d->n_recipients, 1);
    if (rule) *rule = d->recipients[0]->rule_id;
    return d->recipients[0]->org_id;
}

static void a_referral_to_a_wijkteam_routes_by_the_childs_district(void **state)
{
    (void)state;
    schakel_routing_t *r;
    efx_t *fx = open_routing(&r);
    efx_directory(fx, efx_region(1, 0));
    assert_int_equal(fx->n_emitted, 0); /* the directory itself is routed to nobody */
    uint8_t id[16];
    const char *rule = NULL;
    uint64_t seq = referral(fx, "routing-zuid", "zuid", id);
    assert_string_equal(routed_to(fx, seq, id, &rule), "wijkteam-zuid");
    assert_string_equal(rule, "referral/target");
    assert_true(fx->emitted[0]->routing_decision->directory_version == 1);
    seq = referral(fx, "routing-noord", "noord", id);
    assert_string_equal(routed_to(fx, seq, id, NULL), "wijkteam-noord");
    /* no district: the wijkteam of the child's school */
    seq = referral(fx, "routing-unknown", NULL, id);
    assert_string_equal(routed_to(fx, seq, id, NULL), "wijkteam-noord");
    /* a district the directory does not know: the school's wijkteam too */
    seq = referral(fx, "routing-elsewhere", "elders", id);
    assert_string_equal(routed_to(fx, seq, id, NULL), "wijkteam-noord");
    /* the engine's own decision on the log is routed to nobody again */
    efx_feed_emitted(fx, 0);
    assert_int_equal(fx->n_emitted, 0);
    efx_close(&fx);
    schakel_routing_destroy(&r);
}

/* A receiver's intake redirected to another organisation goes to that
 * organisation (rule intake/redirected-to), which then is one of the
 * loop's organisations: a case lead about the referral reaches it. */
static void a_redirected_intake_goes_to_the_organisation_it_names(void **state)
{
    (void)state;
    schakel_routing_t *r;
    efx_t *fx = open_routing(&r);
    efx_directory(fx, efx_region(1, 0));
    uint8_t id[16];
    const char *rule = NULL;
    uint64_t seq = referral(fx, "routing-redirect", "noord", id);
    assert_string_equal(routed_to(fx, seq, id, NULL), "wijkteam-noord");
    char p[65];
    efx_child("routing-redirect", p);
    const char *intake =
        "{\"type\":\"intake\",\"subject\":\"%s\",\"purpose\":\"support\",\"legal_basis\":\"consent\","
        "\"categories\":[\"care_status\"],\"intake\":{\"referral_id\":\"0123456789abcdef0123456789abcdef\","
        "\"intake_on\":\"2026-11-03\",\"outcome\":\"%s\"%s}}";
    seq = efx_feed(fx, "wijkteam-noord", id, intake, p, "short_help", "");
    assert_null(routed_to(fx, seq, id, NULL));
    seq = efx_feed(fx, "wijkteam-noord", id, intake, p, "redirected", ",\"redirected_to\":\"smw-1\"");
    assert_string_equal(routed_to(fx, seq, id, &rule), "smw-1");
    assert_string_equal(rule, "intake/redirected-to");
    /* a school is no organisation to redirect to: refused, the publisher told */
    seq = efx_feed(fx, "wijkteam-noord", id, intake, p, "redirected", ",\"redirected_to\":\"school-1\"");
    assert_null(routed_to(fx, seq, id, NULL));
    assert_int_equal(fx->emitted[0]->routing_decision->n_refused, 1);
    assert_string_equal(fx->emitted[0]->routing_decision->refused[0]->reason_code, "kind_not_allowed");
    /* the case lead of the referral reaches the new receiver too */
    seq = efx_feed(
        fx, "school-1", id,
        "{\"type\":\"case_lead\",\"subject\":\"%s\",\"purpose\":\"coordination\",\"legal_basis\":"
        "\"consent\",\"case_lead\":{\"lead_org\":\"wijkteam-noord\",\"since\":\"2026-11-04\","
        "\"referral_id\":\"0123456789abcdef0123456789abcdef\",\"lead\":{\"role\":\"social_worker\"}}}",
        p);
    const Schakel__V1__RoutingDecision *d = fx->emitted[0]->routing_decision;
    int smw = 0;
    for (size_t i = 0; i < d->n_recipients; i++) smw |= !strcmp(d->recipients[i]->org_id, "smw-1");
    assert_true(smw);
    efx_close(&fx);
    schakel_routing_destroy(&r);
}

static void the_directory_in_force_on_the_log_decides(void **state)
{
    (void)state;
    schakel_routing_t *r;
    efx_t *fx = open_routing(&r);
    uint8_t id[16];
    /* no directory on the log yet: a decision, but nobody to send to */
    uint64_t seq = referral(fx, "routing-early", "zuid", id);
    assert_null(routed_to(fx, seq, id, NULL));
    assert_true(fx->emitted[0]->routing_decision->directory_version == 0);
    /* version 2 has district zuid served by wijkteam-noord */
    efx_directory(fx, efx_region(2, 1));
    seq = referral(fx, "routing-moved", "zuid", id);
    assert_string_equal(routed_to(fx, seq, id, NULL), "wijkteam-noord");
    assert_true(fx->emitted[0]->routing_decision->directory_version == 2);
    /* an older version arriving late is not the directory in force */
    efx_directory(fx, efx_region(1, 0));
    seq = referral(fx, "routing-late-old", "zuid", id);
    assert_string_equal(routed_to(fx, seq, id, NULL), "wijkteam-noord");
    assert_true(fx->emitted[0]->routing_decision->directory_version == 2);
    /* a newer one is */
    efx_directory(fx, efx_region(3, 0));
    seq = referral(fx, "routing-back", "zuid", id);
    assert_string_equal(routed_to(fx, seq, id, NULL), "wijkteam-zuid");
    efx_close(&fx);
    schakel_routing_destroy(&r);
}

/* A rules_update of set with doc from source; version: the document's
 * hash unless bad_version. */
static uint64_t rules_update(efx_t *fx, const char *source, const char *set, const char *doc, int bad_version)
{
    uint8_t h[SCHAKEL_SHA256_LEN];
    char hexv[65];
    schakel_sha256(doc, strlen(doc), h);
    h[0] ^= (uint8_t)bad_version;
    schakel_hex_encode(h, sizeof h, hexv);
    json_t *j =
        json_pack("{s:s, s:s, s:s, s:{s:s, s:s, s:s}}", "type", "rules_update", "purpose", "bus",
                  "legal_basis", "bus", "rules_update", "set", set, "version", hexv, "document_json", doc);
    char *text = json_dumps(j, 0);
    uint64_t seq = efx_feed(fx, source, NULL, "%s", text);
    free(text);
    json_decref(j);
    return seq;
}

/* The policy_version of the last decision is the SHA-256 of doc. */
static void decided_under(efx_t *fx, const char *doc)
{
    uint8_t h[SCHAKEL_SHA256_LEN];
    schakel_sha256(doc, strlen(doc), h);
    const Schakel__V1__RoutingDecision *d = fx->emitted[0]->routing_decision;
    assert_int_equal(d->policy_version.len, sizeof h);
    assert_memory_equal(d->policy_version.data, h, sizeof h);
}

static uint64_t refused_count(efx_t *fx)
{
    MDB_txn *txn;
    MDB_dbi dbi;
    assert_int_equal(mdb_txn_begin(fx->s.env, NULL, MDB_RDONLY, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, "state", 0, &dbi), 0);
    uint64_t n = service_get_u64(txn, dbi, "rules_refused");
    mdb_txn_abort(txn);
    return n;
}

static void the_rules_on_the_log_decide_and_a_bad_or_foreign_update_changes_nothing(void **state)
{
    (void)state;
    schakel_routing_t *r;
    efx_t *fx = open_routing(&r);
    efx_directory(fx, efx_region(1, 0));
    uint8_t id[16];
    uint64_t seq = referral(fx, "rules-before", "zuid", id);
    assert_string_equal(routed_to(fx, seq, id, NULL), "wijkteam-zuid");
    decided_under(fx, schakel_routing_default_rules());
    /* the bus's new rules: a referral reaches only whom it names */
    const char *only = "{\"version\": 2, \"rules\": [{\"id\": \"referral/named\", \"on\": [\"referral\"], "
                       "\"to\": \"addressees\"}]}\n";
    rules_update(fx, "broker", "routing", only, 0);
    assert_int_equal(fx->n_emitted, 0); /* routed to nobody itself */
    seq = referral(fx, "rules-after", "zuid", id);
    assert_null(routed_to(fx, seq, id, NULL));
    decided_under(fx, only);
    /* none of these is used: from an organisation, a version that is not
     * the document's, a document that does not parse; another service's
     * set is passed over */
    const char *def = schakel_routing_default_rules();
    rules_update(fx, "school-1", "routing", def, 0);
    rules_update(fx, "broker", "routing", def, 1);
    rules_update(fx, "broker", "routing",
                 "{\"version\": 3, \"rules\": [{\"id\": \"x\", \"on\": [\"referral\"]}]}", 0);
    rules_update(fx, "broker", "consent", def, 0);
    seq = referral(fx, "rules-kept", "zuid", id);
    assert_null(routed_to(fx, seq, id, NULL));
    decided_under(fx, only);
    assert_true(refused_count(fx) == 3);
    /* back to the default: in force again */
    rules_update(fx, "broker", "routing", def, 0);
    seq = referral(fx, "rules-back", "zuid", id);
    assert_string_equal(routed_to(fx, seq, id, NULL), "wijkteam-zuid");
    decided_under(fx, def);
    efx_close(&fx);
    schakel_routing_destroy(&r);
}

/* Where a referral stands, for the referral of referral() about the
 * child labelled label. */
static uint64_t status_of(efx_t *fx, const char *label, uint8_t id[16])
{
    char p[65];
    efx_child(label, p);
    return efx_feed(fx, "svc-feedback", id,
                    "{\"type\":\"feedback_status\",\"subject\":\"%s\",\"purpose\":\"feedback\","
                    "\"legal_basis\":\"consent\",\"categories\":[\"care_status\"],"
                    "\"feedback_status\":{\"referral_id\":\"0123456789abcdef0123456789abcdef\","
                    "\"state\":\"waiting_list\",\"on\":\"2026-12-15\",\"lead_org\":\"wijkteam-zuid\"}}",
                    p);
}

/* After the broker's erasure of a child, routing no longer knows who
 * referred it: a replay, which cannot read the erased referral, never
 * learnt it either, so news about it goes to nobody in both. Another
 * child's referral with the same id keeps its referrer. */
static void an_erased_childs_referrer_is_forgotten_as_a_replay_never_learnt_it(void **state)
{
    (void)state;
    schakel_routing_t *r;
    efx_t *fx = open_routing(&r);
    efx_directory(fx, efx_region(1, 0));
    uint8_t id[16];
    uint64_t seq = referral(fx, "erase-referred", "zuid", id);
    assert_string_equal(routed_to(fx, seq, id, NULL), "wijkteam-zuid");
    seq = referral(fx, "erase-kept", "zuid", id);
    assert_string_equal(routed_to(fx, seq, id, NULL), "wijkteam-zuid");
    seq = status_of(fx, "erase-referred", id);
    assert_string_equal(routed_to(fx, seq, id, NULL), "school-1");

    char p[65];
    efx_child("erase-referred", p);
    /* from anyone but the broker, nothing is forgotten */
    const char *erasure = "{\"type\":\"erasure\",\"purpose\":\"bus\",\"legal_basis\":\"bus\","
                          "\"erasure\":{\"erased_subject\":\"%s\",\"basis\":\"avg17_request\","
                          "\"requested_by\":\"beheer\",\"erased_upto\":%llu}}";
    efx_feed(fx, "school-1", NULL, erasure, p, (unsigned long long)seq);
    assert_int_equal(fx->n_emitted, 0);
    seq = status_of(fx, "erase-referred", id);
    assert_string_equal(routed_to(fx, seq, id, NULL), "school-1");

    efx_feed(fx, "broker", NULL, erasure, p, (unsigned long long)seq);
    assert_int_equal(fx->n_emitted, 0); /* routed to nobody itself */
    seq = status_of(fx, "erase-referred", id);
    assert_null(routed_to(fx, seq, id, NULL));
    seq = status_of(fx, "erase-kept", id);
    assert_string_equal(routed_to(fx, seq, id, NULL), "school-1");
    efx_close(&fx);
    schakel_routing_destroy(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_referral_to_a_wijkteam_routes_by_the_childs_district),
        cmocka_unit_test(the_directory_in_force_on_the_log_decides),
        cmocka_unit_test(a_redirected_intake_goes_to_the_organisation_it_names),
        cmocka_unit_test(the_rules_on_the_log_decide_and_a_bad_or_foreign_update_changes_nothing),
        cmocka_unit_test(an_erased_childs_referrer_is_forgotten_as_a_replay_never_learnt_it),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
