/* The services' rules are on the log: a whole `schakel node` puts its rule
 * files there as rules_update events (source broker, its own key), the
 * services decide by the rules in force at each point of the log, and
 * after the routing rules changed twice mid-scenario `schakel audit
 * replay` is byte-equal with the services' state and every rule file
 * gone. A restart with empty state rebuilds the same decisions from the
 * log and writes the files back. No organisation may publish rules. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "consumer.h"
#include "crypto.h"
#include "fileio.h"
#include "harness.h"
#include "scenario.h"
#include "service.h"

#define SCHOOL "school-12ab00"
#define NAMED_ONLY                                                                               \
    "{\"version\": 2, \"rules\": [{\"id\": \"referral/named\", \"on\": [\"referral\"], \"to\": " \
    "\"addressees\"}]}\n"

static char *before;        /* the default routing rules, as the node wrote them */
static char *changed;       /* the rules after the second change */
static uint8_t last_id[16]; /* the event id of the last referral */

static int setup(void **state)
{
    (void)state;
    return node_start(0, at("2027-05-10T08:00:00Z"));
}

static int teardown(void **state)
{
    free(before);
    free(changed);
    return node_teardown(state);
}

static void data_path(const char *name, char *out, size_t cap)
{
    snprintf(out, cap, "%s/%s", H->data, name);
}

static char *read_text(const char *name)
{
    char path[600];
    size_t len;
    data_path(name, path, sizeof path);
    char *t = schakel_file_read(path, 1u << 20, &len);
    if (!t) fail_msg("cannot read %s", path);
    return t;
}

static void write_text(const char *name, const char *text)
{
    char path[600];
    data_path(name, path, sizeof path);
    assert_int_equal(schakel_file_write_atomic(path, text, strlen(text)), 0);
}

/* Waits (15 s at most) until a rules_update of set with text is on the
 * log, from the broker; returns its seq. */
static uint64_t wait_set_on_log(int set, const char *text)
{
    uint8_t h[SCHAKEL_SHA256_LEN];
    schakel_sha256(text, strlen(text), h);
    for (int i = 0; i < 300; i++) {
        uint64_t seq = 0;
        for (harness_reader_t rd = harness_read(H, "svc-audit", "all"); harness_next(&rd);) {
            const Schakel__V1__RulesUpdate *u = rd.e->rules_update;
            if (rd.e->type == SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_RULES_UPDATE && (int)u->set == set &&
                u->version.len == sizeof h && !memcmp(u->version.data, h, sizeof h)) {
                assert_string_equal(rd.e->source_org, "broker");
                assert_string_equal(u->document_json, text);
                seq = rd.r->seq;
            }
        }
        if (seq) return seq;
        usleep(50000);
    }
    fail_msg("the changed rules (set %d) did not reach the log in 15 s", set);
    return 0;
}

static uint64_t wait_rules_on_log(const char *text)
{
    return wait_set_on_log(SCHAKEL__V1__RULE_SET__RULE_SET_ROUTING, text);
}

/* A referral of a child in district zuid to a wijkteam, routed: returns
 * how many recipients its routing decision names, and checks that the
 * decision names the rules text as its policy_version. */
static size_t referral_routed_under(const char *label, const char *rules)
{
    char p[65];
    uint8_t id[16], want[SCHAKEL_SHA256_LEN];
    child(label, p);
    referral(SCHOOL, p, "\"district\":\"zuid\",", "wijkteam", id);
    memcpy(last_id, id, 16);
    wait_services(harness_head(H));
    schakel_sha256(rules, strlen(rules), want);
    char stream[64], h[33];
    hex(id, 16, h);
    snprintf(stream, sizeof stream, "about/%s", h);
    size_t n = (size_t)-1;
    for (harness_reader_t rd = harness_read(H, "svc-audit", stream); harness_next(&rd);) {
        if (rd.e->type != SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_ROUTING_DECISION) continue;
        const Schakel__V1__RoutingDecision *d = rd.e->routing_decision;
        assert_int_equal(d->policy_version.len, sizeof want);
        assert_memory_equal(d->policy_version.data, want, sizeof want);
        n = d->n_recipients;
    }
    if (n == (size_t)-1) fail_msg("no routing decision about %s", label);
    return n;
}

/* The policy_version of the consent decision about the last referral. */
static void consent_policy(uint8_t out[SCHAKEL_SHA256_LEN])
{
    char stream[64], h[33];
    int found = 0;
    hex(last_id, 16, h);
    snprintf(stream, sizeof stream, "about/%s", h);
    for (harness_reader_t rd = harness_read(H, "svc-audit", stream); harness_next(&rd);) {
        if (rd.e->type != SCHAKEL__V1__EVENT_TYPE__EVENT_TYPE_CONSENT_DECISION) continue;
        assert_int_equal(rd.e->consent_decision->policy_version.len, SCHAKEL_SHA256_LEN);
        memcpy(out, rd.e->consent_decision->policy_version.data, SCHAKEL_SHA256_LEN);
        found = 1;
    }
    assert_true(found);
}

/* audit replay: its JSON lines into text; what the services said while
 * replaying (a rules_installed per update) is counted in one line on
 * stderr, not repeated line by line. */
static int replay_status(char *text, size_t cap)
{
    const char *args[] = {"audit", "replay", "--data", H->data, NULL};
    char *out = NULL, *err = NULL;
    int status = harness_run_captured(H->dir, args, &out, &err);
    assert_non_null(out);
    assert_non_null(err);
    snprintf(text, cap, "%s", out);
    printf("%s%s", out, err);
    assert_null(strstr(err, "event=rules_installed"));
    assert_non_null(strstr(err, "info and warn lines while replaying"));
    free(out);
    free(err);
    return status;
}

/* Every service replays equal and in full; routing and consent compared
 * what they derived (feedback has no delivered loop here: nothing). */
static void replay_clean(void)
{
    char text[4096];
    assert_int_equal(replay_status(text, sizeof text), 0);
    const char *names[] = {"routing", "consent", "feedback"};
    for (size_t i = 0; i < 3; i++) {
        char key[64], line[512];
        snprintf(key, sizeof key, "{\"service\":\"%s\",\"ok\":true,", names[i]);
        const char *at = strstr(text, key);
        if (!at) fail_msg("%s does not replay clean:\n%s", names[i], text);
        snprintf(line, sizeof line, "%.*s", (int)strcspn(at, "\n"), at);
        assert_non_null(strstr(line, "\"differ\":0,\"missing\":0,\"extra\":0"));
        if (i < 2) assert_null(strstr(line, "\"derived\":0,"));
    }
}

static int rm_one(const char *p, const struct stat *s, int f, struct FTW *w)
{
    (void)s, (void)f, (void)w;
    return remove(p);
}

/* The services' state and every rule file: gone. */
static void wipe_state_and_rules(void)
{
    char path[600];
    data_path("services", path, sizeof path);
    assert_int_equal(nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS), 0);
    const char *files[] = {"routing.json", "consent.json", "feedback.json"};
    for (size_t i = 0; i < 3; i++) {
        data_path(files[i], path, sizeof path);
        assert_int_equal(unlink(path), 0);
    }
}

static void rules_changed_twice_replay_byte_equal_without_files_or_state(void **state)
{
    (void)state;
    before = read_text("routing.json");
    assert_true(referral_routed_under("rules-log-1", before) >= 1);

    /* first change: a referral reaches only whom it names (here: nobody) */
    write_text("routing.json", NAMED_ONLY);
    wait_rules_on_log(NAMED_ONLY);
    assert_int_equal(referral_routed_under("rules-log-2", NAMED_ONLY), 0);

    /* second change: the default rules again, in another text */
    if (asprintf(&changed, "%s\n", before) < 0) fail();
    write_text("routing.json", changed);
    wait_rules_on_log(changed);
    assert_true(referral_routed_under("rules-log-3", changed) >= 1);

    /* the consent policy changes too: a longer hold, a new policy_version */
    uint8_t old_policy[SCHAKEL_SHA256_LEN], new_policy[SCHAKEL_SHA256_LEN];
    consent_policy(old_policy);
    char *consent = read_text("consent.json");
    char *at = strstr(consent, "\"hold_days\": 20");
    assert_non_null(at);
    memcpy(at, "\"hold_days\": 30", 15);
    write_text("consent.json", consent);
    wait_set_on_log(SCHAKEL__V1__RULE_SET__RULE_SET_CONSENT, consent);
    free(consent);
    assert_true(referral_routed_under("rules-log-3b", changed) >= 1);
    consent_policy(new_policy);
    assert_memory_not_equal(old_policy, new_policy, sizeof old_policy);

    /* a file that does not parse is refused: the rules in force stay */
    write_text("routing.json", "{\"version\": 3, \"rules\": [{\"id\": \"x\", \"on\": [\"referral\"]}]}");
    for (int i = 0; i < 100 && count_in_log("event=rules_rejected") == 0; i++) usleep(50000);
    assert_true(count_in_log("event=rules_rejected") > 0);
    assert_true(referral_routed_under("rules-log-4", changed) >= 1);
    write_text("routing.json", changed);

    wait_services(harness_head(H));
    assert_int_equal(harness_shutdown(H), 0);
    wipe_state_and_rules();
    replay_clean();
}

/* Started again with no state and no rule files: the files come back from
 * the log, the services rebuild every decision from the log (the same
 * bytes: nothing refused, no alarm) and decide on by the rules in force. */
static void a_restart_with_empty_state_rebuilds_from_the_log(void **state)
{
    (void)state;
    assert_int_equal(harness_start(H), 0);
    char *back = read_text("routing.json");
    assert_string_equal(back, changed);
    free(back);
    wait_services(harness_head(H));
    const char *names[] = {"routing", "consent", "feedback"};
    for (size_t i = 0; i < 3; i++) {
        char dir[600];
        uint64_t alarms = 1;
        snprintf(dir, sizeof dir, "%s/services/%s", H->data, names[i]);
        assert_int_equal(schakel_service_alarms(dir, &alarms), 0);
        if (alarms) fail_msg("%s: %llu alarms after the rebuild", names[i], (unsigned long long)alarms);
    }
    assert_true(referral_routed_under("rules-log-5", changed) >= 1);
    assert_int_equal(harness_shutdown(H), 0);
    replay_clean();
    assert_int_equal(harness_start(H), 0);
}

/* Whatever its rights, an organisation that publishes a rules_update is
 * refused with REJECT_NOT_ALLOWED, and nothing reaches the log. */
static void no_organisation_may_publish_rules(void **state)
{
    (void)state;
    char json[512], reason[SCHAKEL_ERRLEN];
    const char *doc = "{\\\"version\\\": 9, \\\"rules\\\": []}";
    uint8_t h[SCHAKEL_SHA256_LEN];
    char hexv[65];
    const char *raw = "{\"version\": 9, \"rules\": []}";
    schakel_sha256(raw, strlen(raw), h);
    hex(h, sizeof h, hexv);
    snprintf(json, sizeof json,
             "{\"type\":\"rules_update\",\"purpose\":\"bus\",\"legal_basis\":\"bus\","
             "\"rules_update\":{\"set\":\"routing\",\"version\":\"%s\",\"document_json\":\"%s\"}}",
             hexv, doc);
    const char *orgs[] = {SCHOOL, "admin-region", "svc-routing"};
    uint64_t head = harness_head(H);
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(publish_code(orgs[i], json, reason), SCHAKEL__V1__REJECT_CODE__REJECT_NOT_ALLOWED);
        assert_non_null(strstr(reason, "rules_update: only the bus itself puts rules on the log"));
    }
    /* before any other check: a version that is not the document's hash
     * is not what it hears about */
    snprintf(json, sizeof json,
             "{\"type\":\"rules_update\",\"purpose\":\"bus\",\"legal_basis\":\"bus\","
             "\"rules_update\":{\"set\":\"routing\",\"version\":\"%064d\",\"document_json\":\"%s\"}}",
             0, doc);
    assert_int_equal(publish_code(SCHOOL, json, reason), SCHAKEL__V1__REJECT_CODE__REJECT_NOT_ALLOWED);
    assert_non_null(strstr(reason, "rules_update: only the bus itself puts rules on the log"));
    assert_true(harness_head(H) == head);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(rules_changed_twice_replay_byte_equal_without_files_or_state),
        cmocka_unit_test(a_restart_with_empty_state_rebuilds_from_the_log),
        cmocka_unit_test(no_organisation_may_publish_rules),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
