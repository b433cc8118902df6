/* The consent engine alone (services/consent), fed a synthetic log
 * (engine_fixture.h): no broker, no node, real LMDB. A referral routed to
 * a wijkteam without a consent is held; the parents' consent for that
 * kind of recipient releases it at once, naming the consent; a hold
 * nobody releases expires after the policy's hold time and the sender is
 * told. Decisions carry the log's time and ids derived from what they are
 * about, so the same log gives the same bytes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "consent.h"
#include "engine_fixture.h"

#define T(x) SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_##x
#define O(x) SCHAKEL__V1__CONSENT_OUTCOME__CONSENT_OUTCOME_##x

static efx_t *open_consent(schakel_consent_t **c)
{
    char why[SCHAKEL_ERRLEN] = "";
    const char *policy = schakel_consent_default_policy();
    *c = schakel_consent_new("svc", policy, strlen(policy), why);
    if (!*c) fail_msg("consent policy: %s", why);
    return efx_open(&schakel_consent_ops, *c, "svc");
}

/* A referral of child p from school-1, and the routing decision that
 * sends it to wijkteam-zuid (as the routing service would put it on the
 * log). Returns the referral's seq. */
static uint64_t routed_referral(efx_t *fx, const char *p, uint8_t id[16])
{
    uint64_t seq = efx_feed(
        fx, "school-1", id,
        "{\"type\":\"referral\",\"subject\":\"%s\",\"district\":\"zuid\",\"age_band\":\"under_12\","
        "\"purpose\":\"support\",\"legal_basis\":\"consent\",\"categories\":[\"home_situation\"],"
        "\"referral\":{\"referral_id\":\"00112233445566778899aabbccddeeff\",\"to_kind\":\"wijkteam\","
        "\"reasons\":[\"home_situation\"],\"urgency\":\"soon\",\"request_code\":\"intake\"}}",
        p);
    assert_int_equal(fx->n_emitted, 0); /* nothing is decided before routing has spoken */
    char hexid[33];
    schakel_hex_encode(id, 16, hexid);
    efx_feed(fx, "svc", NULL,
             "{\"type\":\"routing_decision\",\"subject\":\"%s\",\"purpose\":\"bus\",\"legal_basis\":\"bus\","
             "\"routing_decision\":{\"about_event_id\":\"%s\",\"about_seq\":%llu,"
             "\"recipients\":[{\"org_id\":\"wijkteam-zuid\",\"rule_id\":\"referral/target\"}]}}",
             p, hexid, (unsigned long long)seq);
    return seq;
}

/* The one consent decision the last record earned, about the event at seq. */
static const Schakel__V1__ConsentDecision *decision(efx_t *fx, uint64_t seq, const uint8_t id[16])
{
    assert_int_equal(fx->n_emitted, 1);
    assert_int_equal(fx->emitted[0]->type, T(CONSENT_DECISION));
    assert_string_equal(fx->emitted[0]->source_org, "svc");
    const Schakel__V1__ConsentDecision *d = fx->emitted[0]->consent_decision;
    assert_true(d->about_seq == seq);
    assert_memory_equal(d->about_event_id.data, id, 16);
    assert_string_equal(d->recipient_org, "wijkteam-zuid");
    return d;
}

static void parents_consent(efx_t *fx, const char *p, const char *cid)
{
    efx_feed(
        fx, "school-1", NULL,
        "{\"type\":\"consent_given\",\"subject\":\"%s\",\"purpose\":\"consent_admin\","
        "\"legal_basis\":\"consent\",\"consent_given\":{\"consent_id\":\"%s\",\"given_by\":\"parents\","
        "\"age_band\":\"under_12\",\"recipient_kind\":\"wijkteam\",\"purposes\":[\"support\",\"feedback\"],"
        "\"categories\":[\"home_situation\",\"behaviour\"],\"valid_from\":\"2020-01-01\"}}",
        p, cid);
}

static void a_referral_without_consent_is_held_until_a_consent_releases_it(void **state)
{
    (void)state;
    schakel_consent_t *c;
    efx_t *fx = open_consent(&c);
    efx_directory(fx, efx_region(1, 0));
    char p[65];
    efx_child("consent-held-released", p);
    uint8_t ref[16];
    uint64_t seq = routed_referral(fx, p, ref);
    const Schakel__V1__ConsentDecision *d = decision(fx, seq, ref);
    assert_int_equal(d->outcome, O(HOLD));
    assert_int_equal(d->consent_id.len, 0);
    /* its own decision on the log changes nothing */
    efx_feed_emitted(fx, 0);
    assert_int_equal(fx->n_emitted, 0);
    /* a consent of another child releases nothing */
    char other[65];
    efx_child("consent-someone-else", other);
    parents_consent(fx, other, "ffeeddccbbaa99887766554433221100");
    assert_int_equal(fx->n_emitted, 0);
    /* the parents' consent for a wijkteam does, at once */
    const char *cid = "0f0e0d0c0b0a09080706050403020100";
    parents_consent(fx, p, cid);
    d = decision(fx, seq, ref);
    assert_int_equal(d->outcome, O(DELIVER));
    assert_string_equal(d->rule_id, "consent/released");
    assert_int_equal(d->legal_basis, SCHAKEL__V1__LEGAL_BASIS__LEGAL_BASIS_CONSENT);
    char hexcid[33];
    assert_int_equal(d->consent_id.len, 16);
    schakel_hex_encode(d->consent_id.data, 16, hexcid);
    assert_string_equal(hexcid, cid);
    /* released once: a second consent finds no hold */
    parents_consent(fx, p, "1f0e0d0c0b0a09080706050403020100");
    assert_int_equal(fx->n_emitted, 0);
    efx_close(&fx);
    schakel_consent_destroy(&c);
}

/* A consent by org of child p for recipient kind `kind` and purposes. */
static void consent_by(efx_t *fx, const char *org, const char *p, const char *cid, const char *kind,
                       const char *purposes)
{
    efx_feed(fx, org, NULL,
             "{\"type\":\"consent_given\",\"subject\":\"%s\",\"purpose\":\"consent_admin\","
             "\"legal_basis\":\"consent\",\"consent_given\":{\"consent_id\":\"%s\",\"given_by\":\"parents\","
             "\"age_band\":\"under_12\",\"recipient_kind\":\"%s\",\"purposes\":[%s],"
             "\"valid_from\":\"2020-01-01\"}}",
             p, cid, kind, purposes);
}

/* One organisation's consents about a child cost another's holds of it
 * no read back (so many of them cannot stall the service for everyone):
 * a consent re-decides only the holds it may release, those of events
 * its recorder published, for a recipient it covers. With the held
 * referral out of the runner's cache, a read back would find nothing
 * and drop the hold as erased; it is still there for the consent that
 * does release it. */
static void a_consent_reads_back_only_the_holds_it_may_release(void **state)
{
    (void)state;
    schakel_consent_t *c;
    efx_t *fx = open_consent(&c);
    efx_directory(fx, efx_region(1, 0));
    char p[65];
    efx_child("consent-reads-few", p);
    uint8_t ref[16];
    uint64_t seq = routed_referral(fx, p, ref);
    assert_int_equal(decision(fx, seq, ref)->outcome, O(HOLD));
    size_t slot = seq % RECENT;
    fx->log->recent[slot].seq = 0; /* a read back of the referral now finds nothing */
    consent_by(fx, "school-2", p, "a0000000000000000000000000000001", "wijkteam",
               "\"support\""); /* not its recorder */
    assert_int_equal(fx->n_emitted, 0);
    consent_by(fx, "school-1", p, "a0000000000000000000000000000002", "ggd",
               "\"support\""); /* another kind */
    assert_int_equal(fx->n_emitted, 0);
    consent_by(fx, "school-1", p, "a0000000000000000000000000000003", "wijkteam",
               "\"feedback\""); /* another purpose */
    assert_int_equal(fx->n_emitted, 0);
    fx->log->recent[slot].seq = seq;
    consent_by(fx, "school-1", p, "a0000000000000000000000000000004", "wijkteam", "\"support\"");
    const Schakel__V1__ConsentDecision *d = decision(fx, seq, ref);
    assert_int_equal(d->outcome, O(DELIVER));
    assert_string_equal(d->rule_id, "consent/released");
    efx_close(&fx);
    schakel_consent_destroy(&c);
}

/* A release can open the way for more: the school's closure of its held
 * referral, for a purpose the consent does not cover, waits with it;
 * once the consent releases the referral, the closure travels on the
 * referral's own ground, in the same pass of holds as before. */
static void news_held_with_its_referral_follows_it_on_release(void **state)
{
    (void)state;
    schakel_consent_t *c;
    efx_t *fx = open_consent(&c);
    efx_directory(fx, efx_region(1, 0));
    char p[65], hexid[33];
    efx_child("consent-news-follows", p);
    uint8_t ref[16], close_id[16];
    uint64_t seq = routed_referral(fx, p, ref);
    assert_int_equal(decision(fx, seq, ref)->outcome, O(HOLD));
    uint64_t cseq = efx_feed(fx, "school-1", close_id,
                             "{\"type\":\"closure\",\"subject\":\"%s\",\"purpose\":\"coordination\","
                             "\"legal_basis\":\"consent\",\"categories\":[\"home_situation\"],"
                             "\"closure\":{\"referral_id\":\"00112233445566778899aabbccddeeff\","
                             "\"closed_on\":\"2026-11-03\",\"reason_code\":\"moved\"}}",
                             p);
    schakel_hex_encode(close_id, 16, hexid);
    efx_feed(fx, "svc", NULL,
             "{\"type\":\"routing_decision\",\"subject\":\"%s\",\"purpose\":\"bus\",\"legal_basis\":\"bus\","
             "\"routing_decision\":{\"about_event_id\":\"%s\",\"about_seq\":%llu,"
             "\"recipients\":[{\"org_id\":\"wijkteam-zuid\",\"rule_id\":\"loop/news\"}]}}",
             p, hexid, (unsigned long long)cseq);
    assert_int_equal(decision(fx, cseq, close_id)->outcome, O(HOLD));
    parents_consent(fx, p, "5f0e0d0c0b0a09080706050403020100"); /* support and feedback, not coordination */
    assert_int_equal(fx->n_emitted, 2);
    const Schakel__V1__ConsentDecision *d = fx->emitted[0]->consent_decision;
    assert_true(d->about_seq == seq);
    assert_int_equal(d->outcome, O(DELIVER));
    d = fx->emitted[1]->consent_decision;
    assert_true(d->about_seq == cseq);
    assert_int_equal(d->outcome, O(DELIVER)); /* on the referral's ground: its consent */
    efx_close(&fx);
    schakel_consent_destroy(&c);
}

/* The engine keeps consents decoded in memory, but answers only for the
 * bytes in its state: a consent stored in a group that was not committed
 * is not used once another consent of the same id and organisation is
 * stored instead. */
static void a_consent_of_a_group_not_committed_is_not_used_from_memory(void **state)
{
    (void)state;
    schakel_consent_t *c;
    efx_t *fx = open_consent(&c);
    efx_directory(fx, efx_region(1, 0));
    char p[65];
    efx_child("consent-group-aborted", p);
    uint8_t ref[16];
    uint64_t seq = routed_referral(fx, p, ref);
    assert_int_equal(decision(fx, seq, ref)->outcome, O(HOLD));
    efx_feed_emitted(fx, 0);
    const char *cid = "2f0e0d0c0b0a09080706050403020100";
    /* the parents' consent for a wijkteam releases the hold, in a group
     * whose transaction aborts */
    fx->abort_next = 1;
    parents_consent(fx, p, cid);
    assert_int_equal(decision(fx, seq, ref)->outcome, O(DELIVER));
    /* the same consent id from the same school, for another recipient:
     * stored now (the first one never was), and it covers nothing here */
    efx_feed(fx, "school-1", NULL,
             "{\"type\":\"consent_given\",\"subject\":\"%s\",\"purpose\":\"consent_admin\","
             "\"legal_basis\":\"consent\",\"consent_given\":{\"consent_id\":\"%s\",\"given_by\":"
             "\"parents\",\"age_band\":\"under_12\",\"recipient_org\":\"someone-else\","
             "\"purposes\":[\"support\"],\"categories\":[\"home_situation\"],\"valid_from\":"
             "\"2020-01-01\"}}",
             p, cid);
    assert_int_equal(fx->n_emitted, 0); /* still held */
    efx_close(&fx);
    schakel_consent_destroy(&c);
}

/* The engine remembers, per transaction of the runner, that nothing was
 * due at the log's time: a hold expired in a group that was not committed
 * expires again when the group is processed again at the same time. */
static void a_hold_expired_in_a_group_not_committed_expires_again(void **state)
{
    (void)state;
    schakel_consent_t *c;
    efx_t *fx = open_consent(&c);
    efx_directory(fx, efx_region(1, 0));
    char p[65];
    efx_child("consent-expires-again", p);
    uint8_t ref[16];
    uint64_t seq = routed_referral(fx, p, ref);
    assert_int_equal(decision(fx, seq, ref)->outcome, O(HOLD));
    fx->abort_next = 1;
    efx_tick(fx, EFX_START + 21 * EFX_DAY);
    assert_int_equal(decision(fx, seq, ref)->outcome, O(EXPIRED));
    efx_tick(fx, EFX_START + 21 * EFX_DAY); /* the same record again, in a new transaction */
    assert_int_equal(decision(fx, seq, ref)->outcome, O(EXPIRED));
    efx_tick(fx, EFX_START + 21 * EFX_DAY); /* committed: expired once */
    assert_int_equal(fx->n_emitted, 0);
    efx_close(&fx);
    schakel_consent_destroy(&c);
}

static void a_hold_expires_after_the_hold_time_and_the_sender_is_told(void **state)
{
    (void)state;
    schakel_consent_t *c;
    efx_t *fx = open_consent(&c);
    efx_directory(fx, efx_region(1, 0));
    char p[65];
    efx_child("consent-expires", p);
    uint8_t ref[16];
    uint64_t seq = routed_referral(fx, p, ref);
    assert_int_equal(decision(fx, seq, ref)->outcome, O(HOLD));
    /* the default policy holds for 20 days of log time */
    efx_tick(fx, EFX_START + 19 * EFX_DAY);
    assert_int_equal(fx->n_emitted, 0);
    efx_tick(fx, EFX_START + 20 * EFX_DAY + 3600000);
    const Schakel__V1__ConsentDecision *d = decision(fx, seq, ref);
    assert_int_equal(d->outcome, O(EXPIRED));
    assert_string_equal(d->rule_id, "hold/expired");
    assert_string_equal(d->inform_org, "school-1");
    assert_true(fx->emitted[0]->occurred_at == EFX_START + 20 * EFX_DAY + 3600000); /* the log's time */
    /* a consent that comes after the hold expired releases nothing */
    parents_consent(fx, p, "2f0e0d0c0b0a09080706050403020100");
    assert_int_equal(fx->n_emitted, 0);
    efx_close(&fx);
    schakel_consent_destroy(&c);
}

/* A routing decision that sends the event at seq (id) to org under rule. */
static void routed(efx_t *fx, const char *p, uint64_t seq, const uint8_t id[16], const char *org,
                   const char *rule)
{
    char hexid[33];
    schakel_hex_encode(id, 16, hexid);
    efx_feed(fx, "svc", NULL,
             "{\"type\":\"routing_decision\",\"subject\":\"%s\",\"purpose\":\"bus\",\"legal_basis\":\"bus\","
             "\"routing_decision\":{\"about_event_id\":\"%s\",\"about_seq\":%llu,"
             "\"recipients\":[{\"org_id\":\"%s\",\"rule_id\":\"%s\"}]}}",
             p, hexid, (unsigned long long)seq, org, rule);
}

/* The receiver's intake redirected to smw-1 is a delivery like any: held
 * without a consent that covers smw-1, released by one. Once smw-1 has it,
 * smw-1 is a receiver of the loop: that it received the referral reaches
 * the referrer on the referral's own ground, as from the first receiver. */
static void a_redirect_reaches_the_new_receiver_on_consent_and_joins_it_to_the_loop(void **state)
{
    (void)state;
    schakel_consent_t *c;
    efx_t *fx = open_consent(&c);
    efx_directory(fx, efx_region(1, 0));
    char p[65];
    efx_child("consent-redirect", p);
    parents_consent(fx, p, "3f0e0d0c0b0a09080706050403020100");
    uint8_t ref[16];
    uint64_t seq = routed_referral(fx, p, ref);
    assert_int_equal(decision(fx, seq, ref)->outcome, O(DELIVER));
    uint8_t iid[16];
    uint64_t iseq = efx_feed(
        fx, "wijkteam-zuid", iid,
        "{\"type\":\"intake\",\"subject\":\"%s\",\"age_band\":\"under_12\",\"purpose\":\"support\","
        "\"legal_basis\":\"consent\",\"categories\":[\"care_status\"],\"intake\":{\"referral_id\":"
        "\"00112233445566778899aabbccddeeff\",\"intake_on\":\"2026-11-03\",\"outcome\":\"redirected\","
        "\"redirected_to\":\"smw-1\"}}",
        p);
    routed(fx, p, iseq, iid, "smw-1", "intake/redirected-to");
    assert_int_equal(fx->n_emitted, 1);
    const Schakel__V1__ConsentDecision *d = fx->emitted[0]->consent_decision;
    assert_string_equal(d->recipient_org, "smw-1");
    assert_int_equal(d->outcome, O(HOLD)); /* the parents consented to a wijkteam, not to smw */
    efx_feed(
        fx, "wijkteam-zuid", NULL,
        "{\"type\":\"consent_given\",\"subject\":\"%s\",\"purpose\":\"consent_admin\","
        "\"legal_basis\":\"consent\",\"consent_given\":{\"consent_id\":\"4f0e0d0c0b0a09080706050403020100\","
        "\"given_by\":\"parents\",\"age_band\":\"under_12\",\"recipient_kind\":\"smw\","
        "\"purposes\":[\"support\",\"feedback\"],\"valid_from\":\"2020-01-01\"}}",
        p);
    assert_int_equal(fx->n_emitted, 1);
    d = fx->emitted[0]->consent_decision;
    assert_string_equal(d->recipient_org, "smw-1");
    assert_true(d->about_seq == iseq);
    assert_int_equal(d->outcome, O(DELIVER));
    efx_feed_emitted(fx, 0);
    /* smw-1's word that it has the referral, for the referrer */
    uint8_t rid[16];
    uint64_t rseq =
        efx_feed(fx, "smw-1", rid,
                 "{\"type\":\"referral_received\",\"subject\":\"%s\",\"age_band\":\"under_12\",\"purpose\":"
                 "\"feedback\",\"legal_basis\":\"consent\",\"categories\":[\"care_status\"],"
                 "\"referral_received\":{\"referral_id\":\"00112233445566778899aabbccddeeff\","
                 "\"received_on\":\"2026-11-04\"}}",
                 p);
    routed(fx, p, rseq, rid, "school-1", "explicit/addressees");
    assert_int_equal(fx->n_emitted, 1);
    d = fx->emitted[0]->consent_decision;
    assert_string_equal(d->recipient_org, "school-1");
    assert_int_equal(d->outcome, O(DELIVER));
    assert_string_equal(d->rule_id, "consent/referral-loop-minimal");
    efx_close(&fx);
    schakel_consent_destroy(&c);
}

/* A signal about p by org: the verwijsindex enters org for the child. */
static void signal_by(efx_t *fx, const char *org, const char *p)
{
    efx_feed(fx, org, NULL,
             "{\"type\":\"signal\",\"subject\":\"%s\",\"purpose\":\"support\",\"legal_basis\":\"consent\","
             "\"categories\":[\"behaviour\"],\"signal\":{\"concerns\":[\"behaviour\"],"
             "\"observed_on\":\"2026-11-16\"}}",
             p);
}

/* The notices the last signal earned: both sides of each new pair. */
static size_t match_notices(const efx_t *fx)
{
    for (size_t i = 0; i < fx->n_emitted; i++) {
        assert_int_equal(fx->emitted[i]->type, T(CONSENT_DECISION));
        assert_int_equal(fx->emitted[i]->consent_decision->outcome, O(NOTICE_ONLY));
        assert_string_equal(fx->emitted[i]->consent_decision->rule_id, "verwijsindex/match");
    }
    return fx->n_emitted;
}

/* An entry of the verwijsindex lives two years from its organisation's
 * LATEST signal: a second signal moves its deadline, and the first
 * deadline passing removes nothing (the engine leaves the old deadline's
 * key behind and must tell it from the live one). */
static void a_second_signal_moves_the_match_deadline(void **state)
{
    (void)state;
    schakel_consent_t *c;
    efx_t *fx = open_consent(&c);
    efx_directory(fx, efx_region(1, 0));
    char p[65];
    efx_child("consent-match-moved", p);
    efx_tick(fx, EFX_START);
    signal_by(fx, "school-1", p);
    assert_int_equal(fx->n_emitted, 0);
    efx_tick(fx, EFX_START + 400 * EFX_DAY);
    signal_by(fx, "school-1", p); /* deadline: day 1130 */
    assert_int_equal(fx->n_emitted, 0);
    /* day 731: the first deadline has passed, the entry lives */
    efx_tick(fx, EFX_START + 731 * EFX_DAY);
    assert_int_equal(fx->n_emitted, 0);
    signal_by(fx, "smw-1", p);
    assert_int_equal(match_notices(fx), 2);
    /* day 1131: the school's entry is gone, and with it the pair's mark:
     * its next signal is a new entry, and the pair is told again */
    efx_tick(fx, EFX_START + 1131 * EFX_DAY);
    assert_int_equal(fx->n_emitted, 0);
    signal_by(fx, "smw-1", p);
    assert_int_equal(fx->n_emitted, 0);
    signal_by(fx, "school-1", p);
    assert_int_equal(match_notices(fx), 2);
    efx_close(&fx);
    schakel_consent_destroy(&c);
}

/* What audit replay relies on: two engines fed the same log emit the same
 * bytes (no wall clock, no random ids). */
static void the_same_log_gives_the_same_bytes(void **state)
{
    (void)state;
    uint8_t *first = NULL;
    size_t first_len = 0;
    for (int run = 0; run < 2; run++) {
        schakel_consent_t *c;
        efx_t *fx = open_consent(&c);
        efx_directory(fx, efx_region(1, 0));
        char p[65];
        efx_child("consent-replay", p);
        uint8_t ref[16];
        (void)routed_referral(fx, p, ref);
        assert_int_equal(fx->out.n, 1);
        if (run == 0) {
            first_len = fx->out.lens[0];
            first = malloc(first_len);
            memcpy(first, fx->out.bufs[0], first_len);
        } else {
            assert_int_equal(fx->out.lens[0], first_len);
            assert_memory_equal(fx->out.bufs[0], first, first_len);
        }
        efx_close(&fx);
        schakel_consent_destroy(&c);
    }
    free(first);
}

static void erase(efx_t *fx, const char *by, const char *p)
{
    efx_feed(fx, by, NULL,
             "{\"type\":\"erasure\",\"purpose\":\"bus\",\"legal_basis\":\"bus\","
             "\"erasure\":{\"erased_subject\":\"%s\",\"basis\":\"avg17_request\","
             "\"requested_by\":\"beheer\",\"erased_upto\":%llu}}",
             p, (unsigned long long)fx->seq);
    assert_int_equal(fx->n_emitted, 0);
}

/* After the broker's `erasure` of a child, the engine knows of it what a
 * replay, which cannot read the child's erased events, knows: nothing. A
 * hold of the child is gone (a consent given after the erasure releases
 * nothing: the held referral is never delivered), a consent given before
 * the erasure covers nothing after it, and a signal before it matches no
 * signal after it. An erasure from anyone but the broker changes nothing. */
static void an_erased_childs_holds_consents_and_matches_are_forgotten_as_in_a_replay(void **state)
{
    (void)state;
    schakel_consent_t *c;
    efx_t *fx = open_consent(&c);
    efx_directory(fx, efx_region(1, 0));
    char p[65], q[65];
    efx_child("consent-erased-held", p);
    efx_child("consent-erased-consent", q);
    uint8_t ref[16];
    uint64_t seq = routed_referral(fx, p, ref);
    assert_int_equal(decision(fx, seq, ref)->outcome, O(HOLD));
    signal_by(fx, "school-1", p);
    parents_consent(fx, q, "2f0e0d0c0b0a09080706050403020100");
    erase(fx, "school-1", q); /* not the broker's: nothing is forgotten */
    seq = routed_referral(fx, q, ref);
    assert_int_equal(decision(fx, seq, ref)->outcome, O(DELIVER));

    erase(fx, "broker", p);
    erase(fx, "broker", q);
    parents_consent(fx, p, "0f0e0d0c0b0a09080706050403020100");
    assert_int_equal(fx->n_emitted, 0); /* no hold left to release */
    signal_by(fx, "smw-1", p);
    assert_int_equal(fx->n_emitted, 0); /* no entry of school-1 left to match */
    seq = routed_referral(fx, q, ref);
    assert_int_equal(decision(fx, seq, ref)->outcome, O(HOLD)); /* the consent went with the child */
    efx_close(&fx);
    schakel_consent_destroy(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_referral_without_consent_is_held_until_a_consent_releases_it),
        cmocka_unit_test(a_consent_reads_back_only_the_holds_it_may_release),
        cmocka_unit_test(news_held_with_its_referral_follows_it_on_release),
        cmocka_unit_test(a_consent_of_a_group_not_committed_is_not_used_from_memory),
        cmocka_unit_test(a_hold_expires_after_the_hold_time_and_the_sender_is_told),
        cmocka_unit_test(a_redirect_reaches_the_new_receiver_on_consent_and_joins_it_to_the_loop),
        cmocka_unit_test(a_hold_expired_in_a_group_not_committed_expires_again),
        cmocka_unit_test(a_second_signal_moves_the_match_deadline),
        cmocka_unit_test(the_same_log_gives_the_same_bytes),
        cmocka_unit_test(an_erased_childs_holds_consents_and_matches_are_forgotten_as_in_a_replay),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
